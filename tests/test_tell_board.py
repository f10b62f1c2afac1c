"""The storyteller as a board runs it: Ctrl-C, main.py at power-on, the speaker test, the
memory a token costs; and the simulator's `machine` checking what the board would.
"""

from __future__ import annotations

import array
import json
import signal
import tempfile
import time
from pathlib import Path

import pytest

from conftest import run_firmware
from micro_llm import simulator
from micro_llm.boards import load_board
from tell_support import SAMPLE_RATE, expected_speech, sam_pcm, split_at, to_16bit

HANG = 600  # seconds: only to catch a hang
HEAP = (1 << 20) + (64 << 10)  # the board's heap, and the simulated DMA's buffers
WAVESHARE = str(load_board("waveshare-esp32-s3-zero").path)
DEVKIT = str(load_board("esp32-s3-devkitc-1-n8r8").path)


def events_of(folder: str) -> list[dict]:
    return [json.loads(line) for line in (Path(folder) / "events.jsonl").read_text().splitlines()]


def played_of(folder: str) -> array.array:
    return array.array("h", (Path(folder) / "speaker.raw").read_bytes())


def run_board(code: str, *args: str) -> tuple[str, list[dict], array.array]:
    """Run code with (args..., record folder) as sys.argv[1:]: stdout, events, samples."""
    with tempfile.TemporaryDirectory() as folder:
        done = simulator.run(code, heap_bytes=HEAP, capture=True, timeout=HANG,
                             args=[*args, folder])
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode(), events_of(folder), played_of(folder)


def kinds(events: list[dict], *wanted: str) -> list[str]:
    return [e["event"] for e in events if e["event"] in wanted]


# ---- Ctrl-C

def test_ctrl_c_while_speaking_stops_the_sound_at_once_and_the_next_telling_works(int8_blob):
    code = """
import sys, json, simboard, storyteller
blob, profile, folder = sys.argv[1:4]
simboard.setup(profile, record=folder, speed_factor=1)
try:
    storyteller.tell("Once upon a time", steps=64, temperature=0.0, model=blob, board=profile,
                     figures=False)
    print("finished")
except KeyboardInterrupt:
    simboard.mark("interrupted")
    print("interrupted")
stats = storyteller.tell("Once upon a time", steps=20, temperature=0.0, model=blob,
                         board=profile, figures=False)
simboard.close()
print(json.dumps(stats.spoken))
"""
    with tempfile.TemporaryDirectory() as folder:
        proc = simulator.start(code, heap_bytes=HEAP, args=[str(int8_blob), WAVESHARE, folder])
        # In real time the story takes 14 s to say: press Ctrl-C once a few buffers are out.
        deadline = time.monotonic() + HANG
        while time.monotonic() < deadline and proc.poll() is None:
            events = Path(folder, "events.jsonl")
            if events.is_file() and events.read_text().count('"i2s_write"') >= 5:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=HANG)
        assert proc.returncode == 0, err.decode(errors="replace")
        events = events_of(folder)
        played = played_of(folder)

    lines = out.decode().splitlines()
    assert "interrupted" in lines and "finished" not in lines
    order = kinds(events, "i2s_init", "i2s_deinit", "interrupted", "i2s_write")
    stop = order.index("interrupted")
    # The first telling's I2S was released before the interrupt reached the caller, and
    # nothing was written to it after that.
    assert order[:stop][-1] == "i2s_deinit"
    assert order[stop + 1] == "i2s_init"
    interrupted = [e["event"] for e in events].index("interrupted")
    shown = [e["shown"][0] for e in events[:interrupted] if e["event"] == "neopixel"]
    assert shown[0] == [0, 0, 24] and shown[-1] == [0, 0, 0]  # the LED went out

    # The second telling is whole: everything it queued was played, in order (at the
    # default volume, half).
    deinits = [e for e in events if e["event"] == "i2s_deinit"]
    assert len(deinits) == 2 and deinits[1]["unsent"] == 0
    second = played[deinits[0]["played"]:]
    expected = expected_speech([tuple(p) for p in json.loads(lines[-1])], volume=50)
    heard, after = split_at(second, expected)
    assert heard == expected and not any(after)


def test_ctrl_c_while_the_model_writes_releases_the_speaker_and_the_model_stays_loaded(
        int8_blob):
    code = """
import sys, json, simboard, storyteller, llm
blob, profile, folder = sys.argv[1:4]
simboard.setup(profile, record=folder, speed_factor=40)
class CtrlC:
    written = 0
    def write(self, text):
        self.written += 1
        if self.written == 30:  # Ctrl-C at the 30th token
            raise KeyboardInterrupt
try:
    storyteller.tell("Once upon a time", steps=128, temperature=0.0, model=blob,
                     board=profile, out=CtrlC(), figures=False)
except KeyboardInterrupt:
    simboard.mark("interrupted")
loaded = storyteller._loaded[1]
stats = storyteller.tell("Once upon a time", steps=24, temperature=0.0, model=blob,
                         board=profile, figures=False)
simboard.close()
print(storyteller._loaded[1] is loaded, stats.positions)
"""
    out, events, _ = run_board(code, str(int8_blob), WAVESHARE)
    assert out.splitlines()[-1] == "True 24"
    order = kinds(events, "i2s_init", "i2s_deinit", "interrupted")
    assert order == ["i2s_init", "i2s_deinit", "interrupted", "i2s_init", "i2s_deinit"]


# ---- main.py at power-on

_POWER_ON = """
import sys, json, simboard, storyteller
settings, profile, inputs, folder = sys.argv[1:5]
simboard.setup(profile, record=folder, speed_factor=40, inputs=json.loads(inputs),
               interrupt_at_ms=60000)
storyteller.CONFIG = settings
storyteller.PROFILE = profile
try:
    import main
except KeyboardInterrupt:
    print("back to the REPL")
simboard.close()
"""


def power_on(tmp_path, int8_blob, teller: dict | None, inputs: dict | None = None):
    settings = {"board": "waveshare-esp32-s3-zero", "model": str(int8_blob)}
    if teller is not None:
        settings["storyteller"] = teller
    path = tmp_path / "micro_llm.json"
    path.write_text(json.dumps(settings))
    return run_board(_POWER_ON, str(path), WAVESHARE, json.dumps(inputs or {}))


def test_by_default_main_does_nothing_and_the_repl_comes_up(tmp_path, int8_blob):
    out, events, played = power_on(tmp_path, int8_blob, None)
    assert out == ""
    assert events == [] and len(played) == 0


def test_main_tells_a_story_at_power_on_when_the_settings_say_boot(tmp_path, int8_blob):
    out, events, played = power_on(tmp_path, int8_blob,
                                   {"start": "boot", "prompt": "Lily and Tom", "steps": 20})
    assert out.startswith("Lily and Tom")
    assert "tok/s" in out
    assert kinds(events, "i2s_init", "i2s_deinit") == ["i2s_init", "i2s_deinit"]
    assert any(played)


def test_main_tells_a_story_each_time_the_button_is_pressed(tmp_path, int8_blob):
    # The BOOT button (GPIO0) pressed at 1 s and released at 10 s; at 60 s, Ctrl-C.
    out, events, played = power_on(tmp_path, int8_blob,
                                   {"start": "button", "button": 0, "steps": 20},
                                   inputs={"0": [[1000, 0], [10000, 1]]})
    lines = out.splitlines()
    assert lines[0] == ("storyteller: press the button on GPIO0 for a story "
                        "(Ctrl-C for the REPL)")
    assert lines[1].startswith("Once upon a time")
    assert lines[-1] == "back to the REPL"
    assert kinds(events, "i2s_init") == ["i2s_init"]  # one press, one story
    assert any(played)


# ---- the speaker test

def test_the_speaker_test_plays_a_tone_then_says_hello(int8_blob):
    code = """
import sys, simboard, storyteller
profile, folder = sys.argv[1:3]
simboard.setup(profile, record=folder, speed_factor=40)
storyteller.speaker_test(board=profile)
simboard.close()
"""
    out, events, played = run_board(code, DEVKIT)
    assert out.startswith('speaker test: a 440 Hz tone, then "hello"')
    init = next(e for e in events if e["event"] == "i2s_init")
    assert init["pins"] == [4, 5, 6] and init["wired"]  # the DevKitC's BCLK, LRCLK, DIN

    tone = played[:SAMPLE_RATE * 400 // 1000]
    rises = sum(1 for a, b in zip(tone, tone[1:]) if a < 0 <= b)
    assert rises == 176  # 440 Hz for 0.4 s
    assert 5000 < max(tone) <= 6144  # half volume: SAM's 8-bit swing of 48 times 128
    gap = played[len(tone):len(tone) + SAMPLE_RATE // 4]
    assert len(gap) == SAMPLE_RATE // 4 and not any(gap)
    hello = to_16bit(sam_pcm(["hello"])[0], volume=50)
    said, after = split_at(played[len(tone) + len(gap):], hello)
    assert said == hello and not any(after)


# ---- memory per token

def test_a_token_costs_no_heap_while_the_speaker_is_busy_and_no_sentence_ends():
    code = """
import gc, storyteller, narration
from led import StatusLED
class Busy:
    playing = True
    def room(self):
        return False
class Out:
    def write(self, text):
        pass
telling = storyteller.Telling(Busy(), StatusLED(None), narration.load_lexicon(), {}, 0,
                              Out())
words = [b" and", b" the", b" little", b" girl", b" ran", b" to"]
def measure():
    gc.collect()
    before = gc.mem_alloc()
    for i in range(30):
        telling.write(words[i % 6])
    return gc.mem_alloc() - before
telling.write(b"Once")
measure()  # the first tokens settle what is made once
print(measure())
"""
    assert run_firmware(code, heap=1 << 20) == "0\n"


# ---- the simulator's machine checks what the board would

_CHECK = """
import sys, simboard
simboard.setup(sys.argv[1])
from machine import I2S, Pin
def attempt(f):
    try:
        f()
        print("ok")
    except Exception as e:
        print(type(e).__name__, e)
def i2s(**change):
    args = dict(sck=Pin(4), ws=Pin(5), sd=Pin(6), mode=I2S.TX, bits=16, format=I2S.STEREO,
                rate=22050, ibuf=8192)
    args.update(change)
    I2S(change.pop("id", 0), **args).deinit()
attempt(lambda: Pin(22))
attempt(lambda: Pin(35))
attempt(lambda: Pin(48))
attempt(lambda: i2s())
attempt(lambda: i2s(bits=24))
attempt(lambda: i2s(format=2))
attempt(lambda: i2s(mode=7))
attempt(lambda: i2s(ibuf=0))
attempt(lambda: I2S(2, sck=Pin(4), ws=Pin(5), sd=Pin(6), mode=I2S.TX, bits=16,
                    format=I2S.STEREO, rate=22050, ibuf=8192))
attempt(lambda: i2s(sck=4))
"""


def test_a_pin_or_an_i2s_setting_the_board_does_not_have_is_an_error():
    assert run_firmware(_CHECK, DEVKIT).splitlines() == [
        "ValueError invalid pin",      # the ESP32-S3 has no GPIO22
        "ValueError invalid pin",      # GPIO35 carries this board's octal PSRAM
        "ok",
        "ok",
        "ValueError invalid bits",
        "ValueError invalid format",
        "ValueError invalid mode",
        "ValueError invalid ibuf",
        "ValueError invalid id",
        "TypeError sck must be a Pin",
    ]
    assert run_firmware(_CHECK, WAVESHARE).splitlines()[1] == "ok"  # quad PSRAM: GPIO35 free


_MONO = """
import sys, time, array, simboard
from machine import I2S, Pin
profile, fmt, folder = sys.argv[1:4]
simboard.setup(profile, record=folder, speed_factor=1000)
out = I2S(0, sck=Pin(7), ws=Pin(8), sd=Pin(9), mode=I2S.TX, bits=16,
          format=I2S.MONO if fmt == "mono" else I2S.STEREO, rate=22050, ibuf=4096)
out.write(array.array("h", [1000, 3000, -2000, 2000, 4000, 4000, -300, -301]))
time.sleep_ms(20)  # 20 s of the DMA's time: it has played everything
out.deinit()
simboard.close()
"""


@pytest.mark.parametrize("fmt, heard", [("stereo", [2000, 0, 4000, -301]),
                                        ("mono", [2000, 0, 4000, -301])])
def test_the_amplifier_plays_left_plus_right_over_two_of_each_frame(fmt, heard):
    # On the ESP32-S3 a MONO stream puts successive samples in the two slots of a frame
    # (upstream #11635), so it plays as the same frames as this STEREO one: half as many
    # samples as were written, each the mean of two.
    _, _, played = run_board(_MONO, WAVESHARE, fmt)
    assert list(played) == heard


def test_deinit_stops_the_sound_at_once():
    code = """
import sys, simboard
from machine import I2S, Pin
profile, folder = sys.argv[1:3]
simboard.setup(profile, record=folder, speed_factor=1)
out = I2S(0, sck=Pin(7), ws=Pin(8), sd=Pin(9), mode=I2S.TX, bits=16, format=I2S.STEREO,
          rate=22050, ibuf=8192)
out.irq(lambda i2s: None)
out.write(bytearray(4 * 22050))  # a second of sound
out.deinit()
simboard.close()
"""
    _, events, played = run_board(code, WAVESHARE)
    deinit = next(e for e in events if e["event"] == "i2s_deinit")
    assert deinit["played"] + deinit["unplayed"] + deinit["unsent"] == 22050
    assert len(played) == deinit["played"] < 22050 // 10


def test_sound_sent_to_pins_the_amplifier_is_not_wired_to_is_not_heard():
    code = """
import sys, time, simboard
from machine import I2S, Pin
profile, folder = sys.argv[1:3]
simboard.setup(profile, record=folder, speed_factor=1000)
out = I2S(0, sck=Pin(1), ws=Pin(2), sd=Pin(3), mode=I2S.TX, bits=16, format=I2S.STEREO,
          rate=22050, ibuf=4096)
out.write(bytearray(b"\\x00\\x10" * 64))
time.sleep_ms(20)
out.deinit()
simboard.close()
"""
    _, events, played = run_board(code, WAVESHARE)
    init = next(e for e in events if e["event"] == "i2s_init")
    assert init["pins"] == [1, 2, 3] and init["wired"] is False
    assert len(played) == 0


def test_a_lost_callback_does_not_stop_the_speaker():
    # A Ctrl-C that lands inside the I2S callback is swallowed by the scheduler with the
    # rest of the callback: the next buffer is never written. The speaker must notice and
    # write it itself, so every block is still heard, in order.
    code = """
import sys, simboard, audio
profile, folder = sys.argv[1:3]
simboard.setup(profile, record=folder, speed_factor=1000)
speaker = audio.Speaker({"id": 0, "bclk": 7, "lrclk": 8, "din": 9}, volume=100)
speaker.open()
calls = [0]
def callback(i2s):
    calls[0] += 1
    if calls[0] != 3:
        speaker._sent(i2s)
speaker.i2s.irq(callback)
for k in range(1, 9):
    speaker.play(bytes([128 + k]) * audio.BLOCK)
speaker.drain()
speaker.close()
simboard.close()
print(calls[0])
"""
    out, _, played = run_board(code, WAVESHARE)
    assert int(out) > 3  # the callback that was dropped was indeed called
    heard = []
    for sample in played:
        if sample and (not heard or heard[-1] != sample):
            heard.append(sample)
    assert heard == [k << 8 for k in range(1, 9)]
