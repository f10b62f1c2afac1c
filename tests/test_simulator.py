"""Which MicroPython the simulator runs, and what it says when there is none."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from micro_llm import simulator
from micro_llm.errors import UserError


def test_micropython_names_the_interpreter_the_simulator_runs(micropython, monkeypatch,
                                                              tmp_path):
    # A wrapper that notes it ran, then runs the real interpreter.
    wrapper = tmp_path / "my-micropython"
    wrapper.write_text("#!/bin/sh\necho ran >> \"$0.log\"\nexec "
                       + " ".join(shlex.quote(part) for part in micropython) + ' "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("MICROPYTHON", str(wrapper))
    assert simulator.find_micropython() == [str(wrapper)]
    done = simulator.run("print(1 + 1)", heap_bytes=1 << 20, capture=True)
    assert done.stdout == b"2\n"
    assert (tmp_path / "my-micropython.log").read_text() == "ran\n"


def test_a_micropython_that_is_not_a_program_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROPYTHON", str(tmp_path / "nothing-here"))
    with pytest.raises(UserError, match="is not an executable file"):
        simulator.find_micropython()


def test_without_any_micropython_the_error_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv("MICROPYTHON", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(simulator.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError) as e:
        simulator.find_micropython()
    assert "set MICROPYTHON=/path/to/micropython" in str(e.value)


def test_the_simulator_is_micropython_with_the_board_heap(micropython):
    code = "import sys, gc\nprint(sys.implementation.name, gc.mem_free() + gc.mem_alloc())"
    done = simulator.run(code, heap_bytes=1 << 20, capture=True)
    name, heap = done.stdout.decode().split()
    assert name == "micropython"
    assert 1 << 20 >= int(heap) > 1000 << 10


def test_long_arguments_reach_the_firmware(micropython):
    text = "Once upon a time " * 40  # the unix port itself dies on 256-byte arguments
    done = simulator.run("import sys\nprint(len(sys.argv[1]), sys.argv[2])",
                         heap_bytes=1 << 20, args=[text, "x"], capture=True)
    assert done.stdout.decode().split() == [str(len(text)), "x"]


def test_quantize_reports_size_and_fidelity(models_dir, golden_dir, tmp_path):
    env = dict(os.environ, MICRO_LLM_GOLDEN=str(golden_dir))
    done = subprocess.run([sys.executable, "-m", "micro_llm.cli", "quantize",
                           str(models_dir / "stories260K.bin"), str(models_dir / "tok512.bin"),
                           "-o", str(tmp_path / "m.mlb")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    size = (tmp_path / "m.mlb").stat().st_size
    assert lines[0] == (f"{tmp_path / 'm.mlb'}: {size:,} bytes "
                        f"({100 * size / 1056540:.1f}% of the checkpoint's 1,056,540)")
    agreement = re.fullmatch(r"teacher-forced top-1 agreement: ([\d.]+)% over 2303 positions",
                             lines[1])
    assert agreement and float(agreement.group(1)) >= 99.5
    assert "  once_upon_a_time_n256_greedy: 252/252, reproduced whole" in lines
