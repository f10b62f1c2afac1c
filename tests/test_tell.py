"""The board tells a story aloud: the firmware's storyteller on a simulated board.

Each test runs the real model and SAM in MicroPython with the simulator's `machine`
(host/sim), which records the I2S frames the firmware wrote and the samples the
amplifier played.
"""

from __future__ import annotations

import array
import json
import tempfile
from pathlib import Path

import pytest

from micro_llm import simulator
from micro_llm.boards import load_board
from micro_llm.tell_cli import Recording, simulate
from tell_support import (
    DRAIN_SAMPLES, SAMPLE_RATE, expected_speech, sam_pcm, split_at, stereo_frames,
)

PROMPT = "Once upon a time"
STEPS = 128
BOARD_SPEED = 40  # the board runs the model about 40 times slower than the simulator
HANG = 600        # seconds: only to catch a hang


def golden_story(cases: list[dict], prompt: str) -> str:
    for case in cases:
        if case["prompt"] == prompt and case["steps"] == 256 and case["temperature"] == 0:
            return case["expected_text"]
    raise AssertionError(f"no 256-step greedy golden case for {prompt!r}")


@pytest.fixture(scope="module")
def board_speed_telling(int8_blob):
    """The greedy 128-step story told with the model slowed to the board's speed."""
    return simulate(PROMPT, blob=int8_blob, steps=STEPS, temperature=0.0, volume=100,
                    speed_factor=BOARD_SPEED, timeout=HANG)


def spoken(recording: Recording) -> list[tuple[str, int]]:
    return [(text, pause) for text, pause in recording.telling["spoken"]]


def test_the_story_printed_while_telling_is_the_models_greedy_story(board_speed_telling,
                                                                   golden_llm_cases):
    printed = board_speed_telling.stdout.decode()
    assert printed.endswith("\n")
    assert len(printed) > 300
    assert golden_story(golden_llm_cases, PROMPT).startswith(printed[:-1])


def test_the_speaker_plays_each_prepared_piece_as_sam_says_it_in_order_with_its_pause(
        board_speed_telling):
    recording = board_speed_telling.recording
    pieces = spoken(recording)
    assert pieces[:2] == [
        ("Once upon a time, there was a little girl named Lilly.", SAMPLE_RATE // 4),
        ("She loved to play out side in the park.", SAMPLE_RATE // 4)]
    expected = expected_speech(pieces, volume=100)

    # Underruns (if the simulator's board fell behind) are silence between samples,
    # recorded apart: the samples themselves are all there, in order.
    heard, after = split_at(recording.played, expected)
    assert heard == expected
    assert 0 < len(after) <= DRAIN_SAMPLES and not any(after)

    # The frames as written: every sample in both slots, so an amplifier that plays
    # (left + right) / 2 plays each exactly once.
    left, right = stereo_frames(recording.frames)
    assert left == right
    assert left[:len(expected)] == expected
    assert not any(left[len(expected):])


def test_the_first_sentence_is_heard_before_the_story_is_finished(int8_blob, golden_llm_cases):
    code = """
import sys, simboard, storyteller
blob, profile, folder = sys.argv[1:4]
simboard.setup(profile, record=folder, speed_factor=40)
class Marked:
    def write(self, text):
        simboard.mark("text", text=bytes(text).decode())
storyteller.tell("Once upon a time", steps=128, temperature=0.0, model=blob, board=profile,
                 out=Marked(), figures=False)
simboard.close()
"""
    events = _run_marked(code, int8_blob)
    first_sound = next(i for i, e in enumerate(events) if e["event"] == "i2s_write")
    texts = [i for i, e in enumerate(events) if e["event"] == "text"]
    before = "".join(events[i]["text"] for i in texts if i < first_sound)
    after = "".join(events[i]["text"] for i in texts if i > first_sound)
    # The first sentence is spoken once the token after its period is written...
    assert before == "Once upon a time, there was a little girl named Lily. She"
    # ... and the rest of the story (four times as long) is written while it is heard.
    assert golden_story(golden_llm_cases, PROMPT).startswith((before + after)[:-1])
    assert len(after) > 4 * len(before) and after.endswith("\n")


def _run_marked(code: str, blob, *, board: str = "waveshare-esp32-s3-zero") -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        done = simulator.run(code, heap_bytes=(1 << 20) + (64 << 10), capture=True,
                             timeout=HANG,
                             args=[str(blob), str(load_board(board).path), folder])
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        lines = (Path(folder) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_underruns_are_counted_when_the_model_falls_far_behind_the_speaker(int8_blob,
                                                                           board_speed_telling):
    # A million times the simulator's speed: every buffer has been played out before the
    # next is written, so each write after the first comes after a gap.
    told = simulate(PROMPT, blob=int8_blob, steps=STEPS, temperature=0.0, volume=100,
                    speed_factor=1_000_000, timeout=HANG)
    recording = told.recording
    writes = sum(1 for e in recording.events if e["event"] == "i2s_write")
    assert len(recording.gaps()) == writes - 1
    assert recording.telling["board"]["underruns"] == writes - 1

    # The gaps are silence between buffers, never samples lost or repeated.
    pieces = spoken(recording)
    assert pieces == spoken(board_speed_telling.recording)
    expected = expected_speech(pieces, volume=100)
    heard, after = split_at(recording.played, expected)
    assert heard == expected
    assert 0 < len(after) <= DRAIN_SAMPLES and not any(after)
    assert len(recording.heard()) > len(recording.played)


def test_the_firmware_counts_each_block_that_comes_later_than_the_dma_can_cover(int8_blob):
    # In real time (speed factor 1, the firmware's clock and the DMA's agree), with a voice
    # that takes half a second per 93 ms block: after the first, every block comes some
    # 300 ms after the DMA has run dry, longer than the 186 ms it can hold.
    code = """
import sys, time, json, simboard, sam, storyteller
blob, profile, folder = sys.argv[1:4]
simboard.setup(profile, record=folder, speed_factor=1)
render = sam.render
def slow_render(text, **voice):
    first = True
    for block in render(text, **voice):
        if not first:
            time.sleep_ms(500)
        first = False
        yield block
sam.render = slow_render
storyteller.say("Hello there.", board=profile)
simboard.close()
print(json.dumps([storyteller._hardware["speaker"].underruns, simboard.stats["underruns"]]))
"""
    with tempfile.TemporaryDirectory() as folder:
        done = simulator.run(code, heap_bytes=1 << 20, capture=True, timeout=HANG,
                             args=[str(int8_blob), str(load_board().path), folder])
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    blocks = -(-len(sam_pcm(["Hello there."])[0]) // 2048)
    assert blocks > 4
    assert json.loads(done.stdout) == [blocks - 1, blocks - 1]  # [firmware's, the DMA's]


def test_at_the_boards_speed_the_gaps_are_counted_between_whole_buffers(board_speed_telling):
    recording = board_speed_telling.recording
    boundaries = set()
    at = 0
    for e in recording.events:
        if e["event"] == "i2s_write":
            at += e["bytes"] // 4
            boundaries.add(at)
    gaps = recording.gaps()
    assert len(gaps) == recording.telling["board"]["underruns"]
    assert all(where in boundaries for where, _ in gaps)
    told = recording.telling
    assert (f"first sound after {told['first_sound_ms']} ms, {told['underruns']} underruns"
            in board_speed_telling.stderr)


def test_the_amplifier_is_driven_on_the_board_profiles_pins(board_speed_telling):
    init = next(e for e in board_speed_telling.recording.events if e["event"] == "i2s_init")
    assert init["pins"] == [7, 8, 9]  # waveshare-esp32-s3-zero: BCLK, LRCLK, DIN
    assert init["wired"] is True
    assert (init["bits"], init["format"], init["rate"]) == (16, "stereo", 22050)


def test_the_led_is_blue_while_thinking_green_while_speaking_and_then_off(
        board_speed_telling):
    shown = [tuple(e["shown"][0]) for e in board_speed_telling.recording.events
             if e["event"] == "neopixel"]
    blue, cyan, green, off = (0, 0, 24), (0, 24, 24), (0, 24, 0), (0, 0, 0)
    assert shown[0] == blue
    assert shown[1] == cyan  # the first sentence is heard while the model writes on
    assert shown[-2:] == [green, off]
    assert set(shown) == {blue, cyan, green, off}


def test_a_plain_led_is_lit_while_thinking_blinks_while_speaking_and_goes_out(int8_blob):
    told = simulate(PROMPT, blob=int8_blob, board="seeed-xiao-esp32s3", steps=24,
                    temperature=0.0, speed_factor=BOARD_SPEED, timeout=HANG)
    levels = [e["value"] for e in told.recording.events
              if e["event"] == "pin" and e["pin"] == 21]
    # Active low: 1 is dark, 0 lit.
    assert levels[0] == 1 and levels[1] == 0
    assert levels[-1] == 1
    assert levels.count(0) > 3  # it blinked


def test_a_say_is_the_original_sam_without_the_tellings_text_preparation(int8_blob):
    code = """
import sys, simboard, storyteller
blob, profile, folder = sys.argv[1:4]
simboard.setup(profile, record=folder, speed_factor=40)
storyteller.say('"Lily" is OK.', volume=50, board=profile)
simboard.close()
"""
    with tempfile.TemporaryDirectory() as folder:
        done = simulator.run(code, heap_bytes=(1 << 20), capture=True, timeout=HANG,
                             args=[str(int8_blob), str(load_board().path), folder])
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        played = array.array("h", (Path(folder) / "speaker.raw").read_bytes())
    expected = expected_speech([('"Lily" is OK.', 0)], volume=50)
    heard, after = split_at(played, expected)
    assert heard == expected
    assert not any(after)
