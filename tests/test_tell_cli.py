"""`micro-llm tell`: the story on stdout as `micro-llm story` prints it, the speaker's
audio in a WAV file."""

from __future__ import annotations

import array
import json
import os
import subprocess
import sys
import wave

from conftest import run_firmware
from tell_support import expected_speech

HANG = 600

# The pieces the telling says for a text, as the firmware prepares them.
_PIECES = """
import sys, json, narration
lex = narration.load_lexicon("/no/such/lexicon.txt")
cut = narration.Sentences(lex)
cut.feed(sys.argv[1].encode())
out = []
while True:
    s = cut.next()
    if s is None:
        break
    pause = 11025 if s[1] else 5512
    parts = narration.breaths(narration.prepare(s[0].decode(), lex))
    out += [[p, pause if i == len(parts) - 1 else 0] for i, p in enumerate(parts)]
print(json.dumps(out))
"""


def micro_llm(*args: str, models_dir) -> subprocess.CompletedProcess:
    env = dict(os.environ, MICRO_LLM_MODELS=str(models_dir))
    return subprocess.run([sys.executable, "-m", "micro_llm.cli", *args], capture_output=True,
                          env=env, timeout=HANG)


def test_tell_prints_the_story_as_story_does_and_writes_what_the_speaker_played(
        tmp_path, models_dir, session_cache):
    wav_path = tmp_path / "story.wav"
    told = micro_llm("tell", "Once upon a time", "-n", "40", "-t", "0", "-o", str(wav_path),
                     models_dir=models_dir)
    assert told.returncode == 0, told.stderr.decode()
    story = micro_llm("story", "Once upon a time", "-n", "40", "-t", "0",
                      models_dir=models_dir)
    assert told.stdout == story.stdout

    with wave.open(str(wav_path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
        samples = array.array("h", w.readframes(w.getnframes()))
    # The speech, piece after piece; the silences (the pauses, and the gaps of any
    # underrun) are left out of the comparison, as their lengths depend on timing.
    pieces = json.loads(run_firmware(_PIECES, told.stdout.decode()))
    expected = expected_speech([tuple(p) for p in pieces], volume=100)
    assert [s for s in samples if s] == [s for s in expected if s]
    assert len(samples) >= len(expected)
    stderr = told.stderr.decode()
    assert "tok/s" in stderr and "first sound after" in stderr
    assert f"{wav_path}: {len(samples):,} samples" in stderr


def test_tell_refuses_a_volume_out_of_range_in_one_line(tmp_path, models_dir):
    told = micro_llm("tell", "-o", str(tmp_path / "x.wav"), "--volume", "150",
                     models_dir=models_dir)
    assert told.returncode == 2
    assert told.stderr.decode() == ("micro-llm: error: volume is a percentage, 0..100, "
                                    "not 150\n")


def test_tell_names_an_unknown_voice_in_one_line(tmp_path, models_dir):
    told = micro_llm("tell", "-o", str(tmp_path / "x.wav"), "--preset", "Robot",
                     models_dir=models_dir)
    assert told.returncode == 2
    assert told.stderr.decode().startswith("micro-llm: error: no voice 'Robot'; the voices are")
