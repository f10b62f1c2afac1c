"""Benchmark the telling in the simulator: first sound, total time, underruns, callback delay.

    python bench/tell.py

Tells "Once upon a time" for 128 greedy steps with the firmware's storyteller on the
simulated board (host/sim), its heap limited to the default board's budget plus the
simulated DMA's buffers, and prints for each speed factor of the simulated DMA:

- 1000000: the DMA plays at once, so the run is as fast as the simulator computes: the
  time to the first sound and the total time of the telling are the simulator's own;
- 40: the board's pace (the board runs the model some 40 times slower than this machine's
  simulator): the underruns the DMA saw and the firmware counted, and the longest delay
  of the I2S callback, in the simulator's milliseconds and as the board's (x40);

then how long the kernel calls take (the scheduler, and so the I2S callback, cannot run
inside one), timed call by call in a separate run: median, 99th percentile and maximum
(the maximum is mostly the host's own scheduling on a shared machine); and the size of
the telling's modules compiled for the ESP32-S3, with their native code (IRAM). Figures,
not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from micro_llm import boards, models, simulator
from micro_llm.mpyinfo import mpy_sizes
from micro_llm.paths import FIRMWARE_DIR
from micro_llm.tell_cli import BOARD_SPEED_FACTOR, STAND_IN_HEAP

STEPS = 128
PROMPT = "Once upon a time"
TELLING_MODULES = ("storyteller", "narration", "lexicon", "audio", "led", "main")

# Runs in MicroPython; prints one JSON object.
_TELL = """
import sys, gc, time, json, simboard, storyteller
blob, profile, folder, speed = sys.argv[1:5]
simboard.setup(profile, record=folder, speed_factor=float(speed))
class Sink:
    def write(self, data):
        return len(data)
storyteller.load(blob, %(steps)d)
gc.collect()
started = time.ticks_us()
stats = storyteller.tell(%(prompt)r, steps=%(steps)d, temperature=0.0, model=blob,
                         board=profile, volume=100, out=Sink(), figures=False)
total = time.ticks_diff(time.ticks_us(), started)
simboard.close()
print(json.dumps({"first_sound_ms": stats.first_sound_ms, "total_ms": total / 1000,
                  "tok_s": stats.tok_s, "positions": stats.positions,
                  "spoken_s": stats.seconds_spoken, "pieces": len(stats.spoken),
                  "underruns": stats.underruns, "board": simboard.stats,
                  "heap_used": stats.heap_used}))
""" % {"steps": STEPS, "prompt": PROMPT}

# Every kernel call timed: the longest stretch each keeps the scheduler from running.
_KERNELS = """
import sys, time, json, simboard, storyteller, kernels, sam_render
blob, profile, folder = sys.argv[1:4]
simboard.setup(profile, record=folder, speed_factor=%(speed)d)
from array import array
times = {}
def timed(module, name):
    f = getattr(module, name)
    spent = times[name] = [array("I", bytes(4 * 40000)), 0]
    def call(*args):
        t = time.ticks_us()
        r = f(*args)
        if spent[1] < 40000:
            spent[0][spent[1]] = time.ticks_diff(time.ticks_us(), t)
            spent[1] += 1
        return r
    setattr(module, name, call)
for name in dir(kernels):
    if not name.startswith("_") and type(getattr(kernels, name)).__name__ == "function":
        timed(kernels, name)
timed(sam_render, "_render_frames")
class Sink:
    def write(self, data):
        return len(data)
storyteller.load(blob, %(steps)d)
storyteller.tell(%(prompt)r, steps=%(steps)d, temperature=0.0, model=blob, board=profile,
                 out=Sink(), figures=False)
simboard.close()
out = {}
for name, (spent, n) in times.items():
    if n:
        calls = sorted(spent[:n])
        out[name] = [n, calls[n // 2], calls[n * 99 // 100], calls[-1]]
print(json.dumps(out))
""" % {"steps": STEPS, "prompt": PROMPT, "speed": BOARD_SPEED_FACTOR}


def run(code: str, args: list[str], heap: int) -> dict:
    done = simulator.run(code, heap_bytes=heap, args=args, capture=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode(errors="replace"))
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default=boards.DEFAULT_BOARD)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs at the board's pace, to see how underruns vary")
    args = parser.parse_args()
    profile = boards.load_board(args.board)
    heap = profile.heap_budget_bytes + STAND_IN_HEAP
    blob = models.blob_for("stories260K", "int8")
    print(f"telling {PROMPT!r}, {STEPS} greedy steps, board {profile.id}, "
          f"heap {heap // 1024} KB (the board's {profile.heap_budget_bytes // 1024} KB and "
          f"{STAND_IN_HEAP // 1024} KB for the simulated DMA)")

    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        fast = run(_TELL, [str(blob), str(profile.path), folder, "1000000"], heap)
        wall = time.monotonic() - started
    print("as fast as the simulator computes (speed factor 1000000):")
    print(f"  first sound after {fast['first_sound_ms']} ms; telling {fast['total_ms']:.0f} ms "
          f"({wall:.1f} s with the interpreter's start and the model's load)")
    print(f"  {fast['positions']} tokens at {fast['tok_s']:.0f} tok/s; "
          f"{fast['spoken_s']:.1f} s of speech in {fast['pieces']} pieces; "
          f"heap {fast['heap_used'] // 1024} KB in use after the story")

    print(f"at the board's pace (speed factor {BOARD_SPEED_FACTOR}), {args.repeats} runs:")
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            paced = run(_TELL, [str(blob), str(profile.path), folder,
                                str(BOARD_SPEED_FACTOR)], heap)
        latency = paced["board"]["max_irq_latency_us"] / 1000
        print(f"  underruns: {paced['board']['underruns']} at the DMA, {paced['underruns']} "
              f"counted by the firmware; longest I2S callback delay {latency:.2f} ms "
              f"(the board's {latency * BOARD_SPEED_FACTOR:.0f} ms; the DMA holds 186 ms); "
              f"telling {paced['total_ms']:.0f} ms for {paced['spoken_s']:.1f} s of speech")

    with tempfile.TemporaryDirectory() as folder:
        calls = run(_KERNELS, [str(blob), str(profile.path), folder], 8 << 20)
    print("kernel calls (the scheduler, and the I2S callback, wait for each to return), in "
          f"the simulator's us; the board's ms are about x{BOARD_SPEED_FACTOR} / 1000:")
    print(f"  {'kernel':16} {'calls':>6} {'median':>7} {'p99':>7} {'max':>7}   board p99")
    for name, (n, median, p99, most) in sorted(calls.items(), key=lambda kv: -kv[1][2])[:8]:
        print(f"  {name:16} {n:6} {median:7} {p99:7} {most:7}   "
              f"~{p99 * BOARD_SPEED_FACTOR / 1000:.1f} ms")

    sizes = {m: mpy_sizes(FIRMWARE_DIR / f"{m}.py") for m in TELLING_MODULES}
    print("the telling's modules for the ESP32-S3: " + ", ".join(
        f"{m} {size} B" + (f" ({native} B native)" if native else "")
        for m, (size, native) in sizes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
