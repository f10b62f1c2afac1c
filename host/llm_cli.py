"""`micro-llm story` and `micro-llm quantize`.

`story` runs the firmware's own modules in the MicroPython unix port: stdout carries
exactly what llama2.c's `run` prints for the same generation; figures go to stderr.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import time
from pathlib import Path

from . import boards, models, simulator
from .errors import UserError
from .firmware_link import blobfmt

F32_HEAP = 32 << 20  # the float32 check mode holds 1 MB of float weights and boxes floats

# The code MicroPython runs: load, generate, report; errors as one line and status 2.
_STORY = """
import sys, llm
blob, prompt, steps, temperature, topp, seed = sys.argv[1:7]
try:
    model = llm.load(blob, steps=int(steps))
    stats = llm.generate(model, prompt, steps=int(steps), temperature=float(temperature),
                         topp=float(topp), seed=int(seed))
except OSError as e:
    if e.errno == 32:  # stdout closed early (| head): the reader has what it wanted
        sys.exit(0)
    sys.stderr.write("error: %s\\n" % (e if e.errno is None else
                                        "cannot write the story (errno %d)" % e.errno))
    sys.exit(2)
except ValueError as e:
    sys.stderr.write("error: %s\\n" % e)
    sys.exit(2)
except MemoryError:
    sys.stderr.write("error: out of memory: the model does not fit this heap\\n")
    sys.exit(2)
sys.stderr.write(stats.line() + "\\n")
"""


MAX_TEMPERATURE = 1e6  # beyond this every token is as likely; the firmware refuses more


def check_sampling(temperature: float, topp: float) -> None:
    """One-line errors for sampling settings the firmware cannot use."""
    if not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
        raise UserError(f"temperature must be 0 (greedy) or more, up to {MAX_TEMPERATURE:g}, "
                        f"not {temperature}")
    if not 0.0 <= topp <= 1.0:
        raise UserError(f"top-p must be between 0 and 1, not {topp}")


def c_seed(text: str) -> int:
    """The seed run.c holds for `-s text`: atoi() (an int, wrapping), widened to 64 bits."""
    digits = re.match(r"\s*([+-]?[0-9]+)", text, re.ASCII)
    if digits is None:
        raise UserError(f"seed must be an integer, not {text!r}")
    value = int(digits.group(1))  # atoi reads the leading digits, as strtol does
    value = max(-(1 << 63), min((1 << 63) - 1, value))  # strtol saturates
    value = (value + (1 << 31)) % (1 << 32) - (1 << 31)  # then the cast to int wraps
    return value % (1 << 64)


def clock_seed() -> int:
    return (time.time_ns() // 1000) % (1 << 31) or 1


def add_story_options(p: argparse.ArgumentParser, steps: int, steps_help: str = "") -> None:
    """The options a story is told with: prompt, steps, sampling, seed and model."""
    p.add_argument("prompt", nargs="?", default="", help="the story's beginning (default: none)")
    p.add_argument("-n", "--steps", type=int, default=steps,
                   help=f"positions to run, prompt included (default {steps}"
                        + (f"; {steps_help})" if steps_help else ")"))
    p.add_argument("-t", "--temperature", type=float, default=1.0,
                   help="0 is greedy (default 1.0)")
    p.add_argument("-p", "--topp", type=float, default=0.9,
                   help="top-p (nucleus) sampling; 0 or 1 samples from all tokens (default 0.9)")
    p.add_argument("-s", "--seed", default=None,
                   help="random seed, read as run.c reads it (default: from the clock)")
    p.add_argument("--model", default=models.DEFAULT_MODEL,
                   help="a known model's name, or a path to a checkpoint or blob")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("story", help="tell a story in the simulator (the firmware's own code)",
                       description="Generate a story with the firmware's code in the "
                                   "MicroPython unix port, as llama2.c's run does.")
    add_story_options(p, steps=256, steps_help="0 = the whole context")
    p.add_argument("--tokenizer", default=None, help="tokenizer for a checkpoint path")
    p.add_argument("--dtype", choices=("int8", "f32"), default=None,
                   help="int8 (the board's format, the default) or f32 (the float32 check "
                        "mode)")
    p.add_argument("--board", default=boards.DEFAULT_BOARD,
                   help="board whose heap budget limits the simulator (int8 only)")
    p.set_defaults(run=run_story)

    q = sub.add_parser("quantize", help="build a blob from a llama2.c checkpoint",
                       description="Quantize a llama2.c checkpoint and its tokenizer into "
                                   "one blob; reports its size and, with golden data, "
                                   "its fidelity.")
    q.add_argument("checkpoint", type=Path)
    q.add_argument("tokenizer", type=Path)
    q.add_argument("-o", "--output", type=Path, required=True)
    q.add_argument("--dtype", choices=("int8", "f32"), default="int8")
    q.add_argument("--refine", default="all",
                   help="tensors with the 4-bit refinement plane: all, none, or a comma list "
                        "of emb,wq,wk,wv,wo,w1,w2,w3,cls (default all)")
    q.set_defaults(run=run_quantize)


def run_story(args: argparse.Namespace) -> int:
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError("the prompt is not valid UTF-8 text") from None
    if args.steps < 0:
        raise UserError(f"steps must be 0 (the whole context) or more, not {args.steps}")
    check_sampling(args.temperature, args.topp)
    seed = c_seed(args.seed) if args.seed is not None else 0
    if seed == 0:
        seed = clock_seed()

    blob = models.blob_for(args.model, args.dtype or "int8", args.tokenizer)
    with open(blob, "rb") as f:
        try:
            header = blobfmt.parse_header(f.read(blobfmt.HEADER_SIZE))
        except blobfmt.BlobError as e:
            raise UserError(f"{blob}: {e}") from None
    scheme = blobfmt.SCHEME_NAMES[header.scheme]
    if args.dtype and args.dtype != scheme:
        raise UserError(f"{args.model} is a {scheme} blob: --dtype {args.dtype} needs the "
                        "checkpoint, not a built blob")
    steps = args.steps or header.seq_len
    if steps > header.seq_len:
        raise UserError(f"steps must be at most {header.seq_len} (the model's context), "
                        f"not {steps}")
    if header.scheme == blobfmt.SCHEME_F32:
        heap = F32_HEAP
    else:
        heap = boards.load_board(args.board).heap_budget_bytes

    print(f"seed: {seed}", file=sys.stderr)
    argv = [str(blob), args.prompt, str(steps), repr(args.temperature), repr(args.topp),
            str(seed)]
    try:
        done = simulator.run(_STORY, heap_bytes=heap, args=argv, stderr=subprocess.PIPE)
    except KeyboardInterrupt:
        return 130
    if done.returncode in (130, -2) or b"KeyboardInterrupt" in (done.stderr or b""):
        return 130  # Ctrl-C reached MicroPython before it reached us
    errors = simulator.check(done)
    if errors:
        print(errors, file=sys.stderr)
    return 0


def run_quantize(args: argparse.Namespace) -> int:
    from . import quantize
    from .blobio import check_output_path
    from .checkpoint import read_checkpoint, read_tokenizer

    check_output_path(args.output, (args.checkpoint, args.tokenizer))
    ckpt = read_checkpoint(args.checkpoint)
    tok = read_tokenizer(args.tokenizer, ckpt.config.vocab_size)
    options = quantize.Options()
    if args.refine == "none":
        options.refine = ()
    elif args.refine != "all":
        names = tuple(n.strip() for n in args.refine.split(",") if n.strip())
        unknown = [n for n in names if n not in quantize.ALL_KINDS]
        if unknown:
            raise UserError(f"--refine: unknown tensor {', '.join(unknown)}")
        options.refine = names
    try:
        size = quantize.build(ckpt, tok, args.output, args.dtype, options)
    except OSError as e:
        raise UserError(f"cannot write {args.output}: {e.strerror or e}") from None
    original = args.checkpoint.stat().st_size
    print(f"{args.output}: {size:,} bytes ({100 * size / original:.1f}% of the checkpoint's "
          f"{original:,})")
    report_fidelity(args.output)
    return 0


def report_fidelity(blob_path: Path) -> None:
    """Teacher-forced agreement and first divergences on the golden cases, if available."""
    from . import paths
    from .blobio import read_blob
    from .evaluate import evaluate, greedy_cases
    from .reference import IntReference

    golden = paths.golden_dir()
    if golden is None or not (golden / "llm").is_dir():
        print("fidelity: set MICRO_LLM_GOLDEN to the golden folder to measure it")
        return
    blob = read_blob(blob_path)
    if blob.header.scheme != blobfmt.SCHEME_Q8:
        return
    agreement, results = evaluate(IntReference(blob).forward_sequence,
                                  greedy_cases(golden / "llm"))
    print(f"teacher-forced top-1 agreement: {100 * agreement:.2f}% over "
          f"{sum(r.positions for r in results)} positions")
    for r in results:
        where = "reproduced whole" if r.first_divergence is None \
            else f"first divergence at token {r.first_divergence}"
        print(f"  {r.case_id}: {r.agree}/{r.positions}, {where}")
