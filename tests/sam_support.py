"""What the SAM tests share: the golden cases, and running code or the CLI with a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from micro_llm import paths, simulator

# Golden files, read at collection time so that every case is its own test; without the
# golden folder each test gets one placeholder case, which then skips (or fails under
# MICRO_LLM_REQUIRE_DATA=1) through the golden_dir fixture.
MISSING = "golden-data-missing"


def golden_json(name: str):
    folder = paths.golden_dir()
    path = folder / "sam" / name if folder else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def golden_wavs() -> list[dict]:
    wavs = []
    for name in ("index.json", "index_extra.json"):
        index = golden_json(name)
        if index is not None:
            wavs += index["wavs"]
    return wavs


def golden_pcm(golden_dir: Path, case: dict) -> bytes:
    data = (golden_dir / "sam" / case["file"]).read_bytes()
    start = case["pcm_offset"]
    return data[start:start + case["n_samples"]]


def run_micropython(code: str, *args: str, heap: int = 1 << 20, timeout: float = 300) -> str:
    """Run `code` in the simulator with the firmware importable; return its stdout."""
    done = simulator.run(code, heap_bytes=heap, args=list(args), capture=True,
                         timeout=timeout)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return done.stdout.decode()


def run_cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`micro-llm ARGV...` as a user runs it; killed with everything it started if it has
    not finished after `timeout` seconds (a hang detector, not a speed test)."""
    process = subprocess.Popen([sys.executable, "-m", "micro_llm.cli", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"micro-llm {argv[0]} did not finish in {timeout} s") from None
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def first_difference(a: bytes, b: bytes) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"sample {i}: {x} != {y}"
    return f"lengths {len(a)} != {len(b)}"
