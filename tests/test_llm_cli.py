"""`micro-llm story` as a user runs it: stdout is run.c's, errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_ENV_KEYS = ("MICRO_LLM_MODELS", "MICRO_LLM_CACHE", "MICROPYTHON", "PATH", "HOME")


def micro_llm(*args, env_extra=None, timeout=600):
    env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "micro_llm.cli", *args], capture_output=True,
                          env=env, timeout=timeout)


def test_story_prints_run_c_output_and_the_seed(int8_blob, golden_llm_cases):
    case = next(c for c in golden_llm_cases if c["id"] == "lily_and_tom_n64_greedy")
    done = micro_llm("story", "Lily and Tom", "-n", "64", "-t", "0", "-s", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == case["expected_stdout"]
    err = done.stderr.decode().splitlines()
    assert err[0] == "seed: 5"
    assert "tok/s" in err[-1] and "0 bytes allocated per token" in err[-1]


def test_seed_is_read_as_run_c_reads_it(int8_blob):
    done = micro_llm("story", "-n", "2", "-s", "123456789012")
    assert done.stderr.decode().splitlines()[0] == "seed: 18446744072612289044"


@pytest.mark.parametrize("args,message", [
    (["--model", "stories999M"], "unknown model 'stories999M': known models are stories260K, "
                                 "or give a path to a checkpoint or blob"),
    (["-n", "-1"], "steps must be 0 (the whole context) or more, not -1"),
    (["-n", "513"], "steps must be at most 512 (the model's context), not 513"),
    (["-t", "-0.5"], "temperature must be 0 (greedy) or more, up to 1e+06, not -0.5"),
    (["-t", "inf"], "temperature must be 0 (greedy) or more, up to 1e+06, not inf"),
    (["-t", "nan"], "temperature must be 0 (greedy) or more, up to 1e+06, not nan"),
    (["-t", "2e9"], "temperature must be 0 (greedy) or more, up to 1e+06, not 2000000000.0"),
    (["-p", "1.5"], "top-p must be between 0 and 1, not 1.5"),
    (["-s", "tomorrow"], "seed must be an integer, not 'tomorrow'"),
    (["--model", "/nonexistent/model.bin"], "no such file: /nonexistent/model.bin"),
])
def test_bad_input_is_one_line_and_status_2(int8_blob, args, message):
    done = micro_llm("story", *args)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert err == f"micro-llm: error: {message}\n"


def test_a_prompt_longer_than_the_context_is_refused(int8_blob):
    done = micro_llm("story", "Once upon a time " * 200, "-n", "512")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines()[-1] == (
        "micro-llm: error: the prompt is 802 tokens; the model's context holds 512")


def test_a_prompt_that_is_not_utf8_is_refused(int8_blob):
    env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
    done = subprocess.run([sys.executable.encode(), b"-m", b"micro_llm.cli", b"story",
                           b"caf\xe9"], capture_output=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr == b"micro-llm: error: the prompt is not valid UTF-8 text\n"


def test_a_corrupt_blob_is_refused_with_what_is_wrong(int8_blob, tmp_path):
    data = bytearray(int8_blob.read_bytes())
    data[200_000] ^= 0xFF
    bad = tmp_path / "bad.mlb"
    bad.write_bytes(bytes(data))
    done = micro_llm("story", "--model", str(bad), "-n", "4")
    assert done.returncode == 2
    assert done.stderr.decode().startswith("seed: ")
    assert done.stderr.decode().splitlines()[-1] == (
        "micro-llm: error: section w1.q8 fails its CRC32 check: the blob is corrupt, build "
        "or upload it again")


def test_a_truncated_blob_is_refused(int8_blob, tmp_path):
    bad = tmp_path / "short.mlb"
    bad.write_bytes(int8_blob.read_bytes()[:100_000])
    done = micro_llm("story", "--model", str(bad), "-n", "4")
    assert done.returncode == 2
    assert "blob truncated: section" in done.stderr.decode().splitlines()[-1]


def test_a_checkpoint_with_a_foreign_tokenizer_is_refused(models_dir, tmp_path):
    other = tmp_path / "tok.bin"
    other.write_bytes((models_dir / "tok512.bin").read_bytes()[:3000])
    done = micro_llm("story", "--model", str(models_dir / "stories260K.bin"),
                     "--tokenizer", str(other))
    assert done.returncode == 2
    assert "tok.bin: not a tokenizer for a 512-token vocabulary" in done.stderr.decode()


def test_seed_takes_the_leading_digits_as_atoi_does(int8_blob):
    done = micro_llm("story", "-n", "2", "-s", "42abc")
    assert done.stderr.decode().splitlines()[0] == "seed: 42"


def test_a_tiny_top_p_keeps_the_likeliest_token(int8_blob, golden_llm_cases):
    case = next(c for c in golden_llm_cases if c["id"] == "once_upon_a_time_n64_greedy")
    done = micro_llm("story", "Once upon a time", "-n", "64", "-p", "1e-9", "-s", "1")
    assert done.stdout.decode() == case["expected_stdout"]


def test_characters_beyond_the_basic_plane_reach_the_firmware_whole(int8_blob):
    done = micro_llm("story", "\N{SLIGHTLY SMILING FACE}", "-n", "8", "-t", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("\N{SLIGHTLY SMILING FACE}")


def test_a_huge_prompt_is_refused_as_too_long(int8_blob):
    done = micro_llm("story", "x " * 5000, "-n", "4")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines()[-1] == (
        "micro-llm: error: the prompt is 10000 bytes: more than the model's context of 512 "
        "tokens holds")


def test_dtype_does_not_apply_to_a_built_blob(int8_blob):
    done = micro_llm("story", "--model", str(int8_blob), "--dtype", "f32")
    assert done.returncode == 2
    assert done.stderr.decode() == (
        f"micro-llm: error: {int8_blob} is a int8 blob: --dtype f32 needs the checkpoint, "
        "not a built blob\n")


def test_a_reader_that_stops_early_is_no_error(int8_blob):
    story = subprocess.Popen([sys.executable, "-m", "micro_llm.cli", "story", "-n", "200",
                              "-t", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={k: os.environ[k] for k in _ENV_KEYS if k in os.environ})
    story.stdout.read(20)
    story.stdout.close()
    err = story.stderr.read().decode()
    assert story.wait(timeout=120) == 0
    assert "error" not in err


@pytest.mark.parametrize("output,message", [
    (".", "is a folder: give the blob's file name"),
    ("/dev/null", "is not a regular file: refusing to replace it with a blob"),
    ("no/such/folder/m.mlb", "the folder no/such/folder does not exist: create it first"),
])
def test_quantize_refuses_outputs_it_must_not_write(models_dir, output, message):
    done = micro_llm("quantize", str(models_dir / "stories260K.bin"),
                     str(models_dir / "tok512.bin"), "-o", output)
    assert done.returncode == 2
    assert message in done.stderr.decode()
    assert done.stderr.decode().count("\n") == 1


def test_quantize_will_not_overwrite_its_input(models_dir, tmp_path):
    copy = tmp_path / "copy.bin"
    copy.write_bytes((models_dir / "stories260K.bin").read_bytes())
    done = micro_llm("quantize", str(copy), str(models_dir / "tok512.bin"), "-o", str(copy))
    assert done.returncode == 2
    assert done.stderr.decode() == (f"micro-llm: error: {copy} is the input {copy}: give "
                                    "another output file\n")
    assert copy.read_bytes() == (models_dir / "stories260K.bin").read_bytes()


def test_a_missing_checkpoint_or_tokenizer_is_one_line(models_dir, tmp_path):
    done = micro_llm("quantize", str(tmp_path / "none.bin"), str(models_dir / "tok512.bin"),
                     "-o", str(tmp_path / "m.mlb"))
    assert done.returncode == 2
    assert done.stderr.decode() == (f"micro-llm: error: cannot read the checkpoint "
                                    f"{tmp_path / 'none.bin'}: No such file or directory\n")
    done = micro_llm("story", "--model", str(models_dir / "stories260K.bin"), "--tokenizer",
                     str(tmp_path / "none.bin"))
    assert done.stderr.decode() == (f"micro-llm: error: no such tokenizer file: "
                                    f"{tmp_path / 'none.bin'}\n")
