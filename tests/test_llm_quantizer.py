"""The quantizer and the blob: size, layout, fidelity, and refusal of bad input."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from micro_llm import blobio, checkpoint, quantize, reference
from micro_llm.errors import UserError
from micro_llm.evaluate import evaluate, greedy_cases
from micro_llm.firmware_link import blobfmt as bf
from micro_llm.floatmodel import forward


@pytest.fixture(scope="module")
def ckpt(models_dir):
    return checkpoint.read_checkpoint(models_dir / "stories260K.bin")


@pytest.fixture(scope="module")
def blob(int8_blob):
    return blobio.read_blob(int8_blob)


def test_checkpoint_reader_gives_run_c_logits(ckpt, golden_dir):
    golden = np.load(golden_dir / "llm" / "logits_once_upon.npy")
    logits = forward(ckpt, [1, 403, 407])
    assert np.abs(logits - golden).max() < 1e-4


def test_int8_blob_is_at_most_40_percent_of_the_checkpoint(int8_blob, models_dir):
    size = int8_blob.stat().st_size
    assert size <= 0.40 * (models_dir / "stories260K.bin").stat().st_size


def test_sections_are_aligned_and_checksummed(int8_blob):
    data = int8_blob.read_bytes()
    header = bf.parse_header(data)
    entries = bf.parse_table(data[header.table_offset:], header)
    assert header.scheme == bf.SCHEME_Q8 and header.group_size == 64
    for sid, dtype, offset, length, crc in entries:
        assert offset % 16 == 0, bf.section_name(sid)
        assert zlib.crc32(data[offset:offset + length]) == crc


def test_ffn_rows_of_172_are_quantized_whole(blob):
    scales = blob.tensor(bf.K_W2, bf.PART_SCALES)
    q8 = blob.tensor(bf.K_W2, bf.PART_Q8)
    assert q8.shape == (5, 64, 172)
    assert scales.shape == (5, 64, 3)  # groups of 64, 64 and 44
    assert (scales[..., 2] > 0).all()


def test_int8_teacher_forced_agreement_and_once_upon_a_time(blob, golden_dir):
    model = reference.IntReference(blob)
    agreement, results = evaluate(model.forward_sequence, greedy_cases(golden_dir / "llm"))
    assert agreement >= 0.995
    by_id = {r.case_id: r for r in results}
    assert by_id["once_upon_a_time_n256_greedy"].first_divergence is None


def test_kernels_stay_in_int32_for_extreme_weights_and_activations():
    rows, cols, group = 4, 172, 64
    ng = bf.n_groups(cols, group)
    worst = np.full((rows, cols), 2039)
    worst[1] = -2039
    worst[2, ::2] = -2039
    worst[3, 1::2] = -2039
    w = worst
    q = (w + 8) // 16
    r = w - 16 * q
    q8 = (q + 128).astype(np.uint8)
    nib = (r + 8).astype(np.uint8)
    r4 = nib[:, 0::2] | (nib[:, 1::2] << 4)
    scales = np.full((rows, ng), (1 << 15) - 1, dtype=np.uint16)
    t = reference.Tensor(q8, r4, scales, 20, group)
    for a in (np.full((1, cols), -8192), np.full((1, cols), 8191),
              np.where(np.arange(cols) % 2, 8191, -8192)[None, :]):
        acc = t.matvec(a)  # raises reference.Overflow if any sum leaves int32
        assert np.abs(acc).max() < 1 << 30


def test_checkpoint_v1_gives_the_same_blob(ckpt, models_dir, tmp_path):
    v1 = tmp_path / "stories260K-v1.bin"
    checkpoint.write_checkpoint_v1(ckpt, v1)
    again = checkpoint.read_checkpoint(v1)
    assert again.version == 1
    for name, value in ckpt.weights.items():
        assert np.array_equal(again.weights[name], value), name
    tok = checkpoint.read_tokenizer(models_dir / "tok512.bin", 512)
    quantize.build(again, tok, tmp_path / "a.mlb", "f32")
    quantize.build(ckpt, tok, tmp_path / "b.mlb", "f32")
    assert (tmp_path / "a.mlb").read_bytes() == (tmp_path / "b.mlb").read_bytes()


def corrupt(path, tmp_path, change):
    data = bytearray(path.read_bytes())
    change(data)
    out = tmp_path / "bad.mlb"
    out.write_bytes(bytes(data))
    return out


def test_a_flipped_byte_fails_the_crc_of_its_section(int8_blob, tmp_path):
    data = int8_blob.read_bytes()
    header = bf.parse_header(data)
    entries = {e[0]: e for e in bf.parse_table(data[header.table_offset:], header)}
    at = entries[bf.section_id(bf.K_W1, bf.PART_Q8)][2] + 100
    bad = corrupt(int8_blob, tmp_path, lambda d: d.__setitem__(at, d[at] ^ 1))
    with pytest.raises(UserError, match="section w1.q8 fails its CRC32 check"):
        blobio.read_blob(bad)


def test_a_truncated_blob_is_refused(int8_blob, tmp_path):
    bad = corrupt(int8_blob, tmp_path, lambda d: d.__delitem__(slice(300_000, None)))
    with pytest.raises(UserError, match="truncated"):
        blobio.read_blob(bad)


def test_a_blob_of_another_format_version_is_refused(int8_blob, tmp_path):
    bad = corrupt(int8_blob, tmp_path, lambda d: d.__setitem__(4, 9))
    with pytest.raises(UserError, match="format version 9"):
        blobio.read_blob(bad)


def test_a_tokenizer_of_another_vocabulary_is_refused(models_dir, tmp_path):
    bigger = tmp_path / "tok.bin"
    bigger.write_bytes((models_dir / "tok512.bin").read_bytes() + b"\0\0\0\0\1\0\0\0x")
    with pytest.raises(UserError, match="not the tokenizer of this checkpoint"):
        checkpoint.read_tokenizer(bigger, 512)
    with pytest.raises(UserError, match="ends early"):
        checkpoint.read_tokenizer(models_dir / "tok512.bin", 1000)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(json.dumps({"not": "a model"}).encode() * 10)
    with pytest.raises(UserError, match="not a llama2.c checkpoint"):
        checkpoint.read_checkpoint(junk)
