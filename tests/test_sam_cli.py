"""`micro-llm phonemes` and `micro-llm say` as a user runs them."""

from __future__ import annotations

import wave

import pytest

from conftest import load_golden
from micro_llm.cli import main
from micro_llm.firmware_link import firmware_module
from sam_support import MISSING, first_difference, golden_json, golden_pcm, golden_wavs

PHRASES = sorted((golden_json("phonemes.json") or {MISSING: ""}).items())


@pytest.mark.parametrize("text, expected", PHRASES, ids=[t for t, _ in PHRASES])
def test_phonemes_prints_the_originals_string(golden_dir, micropython, capsys, text,
                                              expected):
    load_golden(golden_dir, "sam/phonemes.json")
    assert main(["phonemes", text]) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_the_presets_are_the_manuals_voices():
    # SAM's manual, as speed / pitch / throat / mouth.
    manual = {
        "Elf": (72, 64, 110, 160),
        "Little Robot": (92, 60, 190, 190),
        "Stuffy Guy": (82, 72, 110, 105),
        "Little Old Lady": (82, 32, 145, 145),
        "Extra-Terrestrial": (100, 64, 150, 200),
        "SAM": (72, 64, 128, 128),
    }
    voices = firmware_module("sam_voices")
    assert {name: (v["speed"], v["pitch"], v["throat"], v["mouth"])
            for name, v in voices.PRESETS.items()} == manual
    assert voices.preset("little-robot") == voices.PRESETS["Little Robot"]


def _say(tmp_path, *argv: str) -> bytes:
    out = tmp_path / "out.wav"
    assert main(["say", *argv, "-o", str(out)]) == 0
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 1, 22050)
        return w.readframes(w.getnframes())


def _golden(golden_dir, name: str) -> tuple[bytes, int]:
    load_golden(golden_dir, "sam/index.json")
    case = next(w for w in golden_wavs() if w["file"] == name)
    return golden_pcm(golden_dir, case), max(case["uninitialized_sample_indices"]) + 1


PRESET_CASES = [("SAM", "i_am_sam.wav"), ("elf", "i_am_sam_elf.wav"),
                ("Little Robot", "i_am_sam_little_robot.wav"),
                ("stuffy guy", "i_am_sam_stuffy_guy.wav"),
                ("little_old_lady", "i_am_sam_little_old_lady.wav"),
                ("Extra-Terrestrial", "i_am_sam_extra_terrestrial.wav")]


@pytest.mark.parametrize("preset, golden", PRESET_CASES)
def test_say_with_a_preset_writes_the_originals_pcm(golden_dir, micropython, tmp_path,
                                                    preset, golden):
    expected, start = _golden(golden_dir, golden)
    got = _say(tmp_path, "I am Sam", "--preset", preset)
    assert len(got) == len(expected)
    assert got[:start] == b"\x80" * start  # samples the original never writes: silence
    assert got[start:] == expected[start:], first_difference(got, expected)


VOICE_CASES = [
    (["The little dog ran to the park.", "--speed", "40"], "little_dog_speed40.wav"),
    (["The little dog ran to the park.", "--mouth", "90", "--throat", "200"],
     "little_dog_mouth90_throat200.wav"),
    (["The little dog ran to the park.", "--mouth", "200", "--throat", "90"],
     "little_dog_mouth200_throat90.wav"),
    (["The little dog ran to the park.", "--sing", "--pitch", "40"],
     "little_dog_sing_pitch40.wav"),
    (["DHAX KWIHK BRAWN FAAKS", "--phonetic"], "ph_dhax_kwihk_brawn_faaks.wav"),
    (["Hello, my name is Sam."], "hello_my_name_is_sam.wav"),
]


@pytest.mark.parametrize("argv, golden", VOICE_CASES, ids=[g for _, g in VOICE_CASES])
def test_say_with_voice_flags_writes_the_originals_pcm(golden_dir, micropython, tmp_path,
                                                       argv, golden):
    expected, start = _golden(golden_dir, golden)
    got = _say(tmp_path, *argv)
    assert len(got) == len(expected)
    assert got[start:] == expected[start:], first_difference(got, expected)


def test_flags_override_the_presets_values(golden_dir, micropython, tmp_path):
    # Elf's voice with SAM's own mouth and throat is SAM's voice.
    expected, start = _golden(golden_dir, "i_am_sam.wav")
    got = _say(tmp_path, "I am Sam", "--preset", "elf", "--mouth", "128", "--throat", "128")
    assert got[start:] == expected[start:]


@pytest.mark.parametrize("text, message", [
    ("AY4 X", "invalid phoneme 'X' at position 4"),
    ("/HEH4LOW WER!D", "invalid phoneme '!' at position 12"),
    ("4AY", "stress mark '4' at position 0 follows no phoneme"),
    ("AY4 ÅM", "invalid phoneme 'Å' at position 4"),
])
def test_an_invalid_phoneme_is_a_one_line_error_naming_it(micropython, tmp_path, capsys,
                                                          text, message):
    out = tmp_path / "out.wav"
    assert main(["say", text, "--phonetic", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"micro-llm: error: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--preset", "robot"], "no voice 'robot'; the voices are: SAM, Elf, Little Robot, "
                            "Stuffy Guy, Little Old Lady, Extra-Terrestrial"),
    (["--speed", "0"], "speed must be 1..255, not 0"),
    (["--mouth", "256"], "mouth must be 0..255, not 256"),
])
def test_a_voice_out_of_range_is_a_one_line_error(micropython, tmp_path, capsys, argv,
                                                  message):
    assert main(["say", "Hi", *argv, "-o", str(tmp_path / "out.wav")]) == 2
    assert capsys.readouterr().err == f"micro-llm: error: {message}\n"
