"""The reciter (English to SAM phonemes) in MicroPython, against the original's strings."""

from __future__ import annotations

import json

import pytest

from conftest import load_golden
from sam_support import MISSING, golden_json, golden_wavs, run_micropython

_RECITE_ALL = """
import sys, json, sam
with open(sys.argv[1]) as f:
    texts = json.load(f)
with open(sys.argv[2], "w") as f:
    json.dump([sam.phonemes(t) for t in texts], f)
"""


def _cases() -> list[tuple[str, str, str]]:
    """(source, text, expected) from phonemes.json, reciter_words.json and the WAV index."""
    cases = []
    for name in ("phonemes.json", "reciter_words.json"):
        for text, expected in (golden_json(name) or {}).items():
            cases.append((name, text, expected))
    for wav in golden_wavs():
        if wav["mode"] == "text":
            cases.append((wav["file"], wav["input"], wav["phonemes"]))
    return cases or [(MISSING, "", "")]


CASES = _cases()


@pytest.fixture(scope="module")
def recited(golden_dir, micropython, tmp_path_factory) -> dict[str, str]:
    """The firmware's phonemes for every golden text, from one simulator run."""
    load_golden(golden_dir, "sam/phonemes.json")
    texts = sorted({text for _, text, _ in CASES})
    folder = tmp_path_factory.mktemp("reciter")
    (folder / "texts.json").write_text(json.dumps(texts))
    run_micropython(_RECITE_ALL, str(folder / "texts.json"), str(folder / "out.json"))
    return dict(zip(texts, json.loads((folder / "out.json").read_text())))


@pytest.mark.parametrize("source, text, expected", CASES,
                         ids=[f"{source}:{text}" for source, text, _ in CASES])
def test_reciter_writes_the_original_phonemes(recited, source, text, expected):
    assert recited[text] == expected


def test_every_golden_reciter_file_is_covered(golden_dir):
    words = load_golden(golden_dir, "sam/reciter_words.json")
    phrases = load_golden(golden_dir, "sam/phonemes.json")
    covered = {(source, text) for source, text, _ in CASES}
    assert {("reciter_words.json", t) for t in words} <= covered
    assert {("phonemes.json", t) for t in phrases} <= covered


_FOLD = """
import sys, json, sam
texts = [b"L\\xc3\\xadl\\xc3\\xbd", b"T\\xc3\\xaem", b"c\\xc3\\xa4t", b"don\\xe2\\x80\\x99t",
         b"L\\xedly", b"\\xe2\\x80\\x9cLook, Mom!\\xe2\\x80\\x9d Lily said."]
print(json.dumps([sam.phonemes(t) for t in texts]))
"""


def test_accented_letters_and_typographic_quotes_read_as_plain_ascii(golden_dir, micropython):
    words = load_golden(golden_dir, "sam/reciter_words.json")
    story = {w["input"]: w["phonemes"] for w in golden_wavs() if w["mode"] == "text"}
    got = json.loads(run_micropython(_FOLD))
    # "Lílý", "Tîm", "cät" (UTF-8), "don’t" (curly apostrophe), "Líly" (Latin-1 bytes),
    # and a sentence in curly quotes: each as its plain-ASCII spelling.
    assert got == [words["Lily"], words["Tim"], words["cat"], words["don't"], words["Lily"],
                   story['"Look, Mom!" Lily said.']]
