"""The virtual board behind the simulator's `machine` and `neopixel` stand-ins.

MicroPython code (it runs in the unix port, next to the firmware). It knows the board
profile (which pins exist, where the amplifier is wired), keeps a virtual clock that runs
`speed` times as fast as the real one, and records what the hardware received:

    import simboard
    simboard.setup("boards/waveshare-esp32-s3-zero.json", record="/tmp/rec", speed=40)
    ... firmware runs: machine.I2S, machine.Pin and neopixel record into /tmp/rec ...
    simboard.mark("text", n=12)      # an event of the test's own, in the same timeline
    simboard.close()

The record folder holds:
- i2s.raw      every byte the I2S DMA took from the buffers written to it, in order;
- speaker.raw  the mono 16-bit samples the amplifier played (a MAX98357A with SD left
               open plays (left + right) / 2 of each frame), silence during underruns
               left out (events.jsonl says where and how long);
- events.jsonl one JSON object a line, each with "t" (virtual ms): i2s_init, i2s_write,
               underrun, i2s_deinit, pin, neopixel, and the test's own marks.

Without setup() the board is the one in /board.json (as on the virtual board of
tools/vboard.py), playing in real time and recording nothing.
"""

import json
import time

import micropython

# ESP32-S3 GPIOs, and those the board's flash and octal PSRAM take
_S3_GPIOS = tuple(range(0, 22)) + tuple(range(26, 49))
_FLASH_PINS = tuple(range(26, 33))
_OCTAL_PSRAM_PINS = (33, 34, 35, 36, 37)

profile = None
speed = 1
_record = None
_files = {}
_start_ns = 0
_inputs = {}       # pin -> [(virtual ms, level), ...]
_interrupt_at = None  # virtual ms after which polling an input raises KeyboardInterrupt
stats = {"underruns": 0, "writes": 0, "frames": 0, "played": 0, "max_irq_latency_us": 0}


def setup(profile_path=None, record=None, speed_factor=1, inputs=None, interrupt_at_ms=None):
    """Use the board profile at `profile_path`, record into the folder `record` (None: do
    not record), and run the virtual clock `speed_factor` times as fast as the real one.

    inputs: {pin: [(virtual ms, level), ...]}, levels an input pin reads from those times
    on (before the first, the pin reads 1, as with a pull-up). interrupt_at_ms: from that
    virtual time on, reading an input raises KeyboardInterrupt (the user's Ctrl-C)."""
    global profile, speed, _record, _start_ns, _inputs, _interrupt_at
    close()
    path = profile_path or "/board.json"
    with open(path) as f:
        profile = json.load(f)
    speed = speed_factor
    _record = record
    _inputs = {int(k): v for k, v in (inputs or {}).items()}
    _interrupt_at = interrupt_at_ms
    for k in stats:
        stats[k] = 0
    _start_ns = time.time_ns()
    if record:
        _files["i2s"] = open(record + "/i2s.raw", "wb")
        _files["speaker"] = open(record + "/speaker.raw", "wb")
        _files["events"] = open(record + "/events.jsonl", "w")


def close():
    """Flush and close the record."""
    for f in _files.values():
        f.close()
    _files.clear()


def board():
    """The board profile; /board.json unless setup() named another."""
    if profile is None:
        try:
            setup()
        except OSError:
            raise OSError("the simulated board has no profile: call simboard.setup(path) "
                          "or put one at /board.json")
    return profile


def now_us():
    """Virtual time since setup, in microseconds."""
    return int((time.time_ns() - _start_ns) * speed) // 1000


def real_us():
    return (time.time_ns() - _start_ns) // 1000


def valid_pin(pin):
    """The GPIO numbers the board has: the chip's, less those its flash and PSRAM use."""
    prof = board()
    if prof.get("chip") != "esp32s3":
        raise ValueError("the simulator knows the ESP32-S3 only, not %r" % prof.get("chip"))
    if pin not in _S3_GPIOS or pin in _FLASH_PINS:
        return False
    if prof.get("psram", {}).get("mode") == "octal" and pin in _OCTAL_PSRAM_PINS:
        return False
    return True


def amplifier_pins():
    """(bclk, lrclk, din) of the MAX98357A, as the board profile wires it."""
    i2s = board()["i2s"]
    return i2s["bclk"], i2s["lrclk"], i2s["din"]


def input_level(pin):
    """What an input pin reads now: the scripted level, else 1 (pulled up)."""
    t = now_us() // 1000
    if _interrupt_at is not None and t >= _interrupt_at:
        raise KeyboardInterrupt
    level = 1
    for at, value in _inputs.get(pin, ()):
        if t >= at:
            level = value
    return level


def event(kind, **fields):
    fields["event"] = kind
    fields["t"] = now_us() / 1000
    f = _files.get("events")
    if f is not None:
        f.write(json.dumps(fields))
        f.write("\n")


def mark(kind, **fields):
    """An event of the test's own, in the board's timeline."""
    event(kind, **fields)


def write_i2s(data):
    f = _files.get("i2s")
    if f is not None:
        f.write(data)


def write_speaker(data):
    f = _files.get("speaker")
    if f is not None:
        f.write(data)


def irq_latency(us):
    if us > stats["max_irq_latency_us"]:
        stats["max_irq_latency_us"] = us


def schedule(function, arg):
    """micropython.schedule, False when its queue is full (try again later)."""
    try:
        micropython.schedule(function, arg)
        return True
    except RuntimeError:
        return False
