"""SAM's audio from the firmware in MicroPython, sample for sample against the original."""

from __future__ import annotations

import json

import pytest

from conftest import load_golden
from sam_support import MISSING, first_difference, golden_pcm, golden_wavs, run_micropython

_RENDER_ALL = """
import sys, json, sam
with open(sys.argv[1]) as f:
    cases = json.load(f)
for i, c in enumerate(cases):
    with open("%s/%d.pcm" % (sys.argv[2], i), "wb") as out:
        for block in sam.render(c["input"], phonetic=c["mode"] == "phonetic",
                                speed=c["speed"], pitch=c["pitch"], mouth=c["mouth"],
                                throat=c["throat"], sing=c["sing"]):
            out.write(block)
"""

WAVS = golden_wavs()
CASES = [w["file"] for w in WAVS] or [MISSING]
SILENCE = 0x80


def _voice(case: dict) -> tuple:
    return tuple(case[k] for k in ("input", "mode", "speed", "pitch", "mouth", "throat",
                                   "sing"))


@pytest.fixture(scope="module")
def rendered(golden_dir, micropython, tmp_path_factory) -> dict[str, bytes]:
    """The firmware's PCM for every golden WAV, from one simulator run."""
    load_golden(golden_dir, "sam/index.json")
    folder = tmp_path_factory.mktemp("render")
    (folder / "cases.json").write_text(json.dumps(WAVS))
    run_micropython(_RENDER_ALL, str(folder / "cases.json"), str(folder))
    return {w["file"]: (folder / f"{i}.pcm").read_bytes() for i, w in enumerate(WAVS)}


def _expected(golden_dir, case: dict) -> bytes:
    """The original's PCM, with the samples it never writes as SAM's silence (0x80)."""
    pcm = bytearray(golden_pcm(golden_dir, case))
    for i in case["uninitialized_sample_indices"]:
        pcm[i] = SILENCE
    return bytes(pcm)


@pytest.mark.parametrize("name", CASES)
def test_pcm_equals_the_originals_sample_for_sample(golden_dir, rendered, name):
    case = next(w for w in WAVS if w["file"] == name)
    got = rendered[name]
    if case["build_dependent"]:
        # The original read outside a table here; each build it was compiled with is a
        # faithful rendering, and the golden set holds every variant for the same input.
        variants = [w for w in WAVS if w["build_dependent"] and _voice(w) == _voice(case)]
        assert len(variants) >= 2
        expected = [_expected(golden_dir, w) for w in variants]
        assert got in expected, [first_difference(got, e) for e in expected]
    else:
        expected = _expected(golden_dir, case)
        assert got == expected, first_difference(got, expected)


def test_unwritten_samples_are_silence_and_the_rest_are_4_bit(golden_dir, rendered):
    load_golden(golden_dir, "sam/index.json")
    for case in WAVS:
        got = rendered[case["file"]]
        if not case["build_dependent"]:
            assert len(got) == case["n_samples"], case["file"]
        assert all(got[i] == SILENCE for i in case["uninitialized_sample_indices"])
        assert set(got) <= set(range(0, 256, 16)), case["file"]
