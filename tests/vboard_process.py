"""Start tools/vboard.py for a test and stop it afterwards."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from micro_llm.paths import ROOT

VBOARD = ROOT / "tools" / "vboard.py"
DEPLOY = ROOT / "tools" / "deploy.py"
HANG = 120  # seconds: only to catch a hang, never to measure anything


class VirtualBoardProcess:
    """A running virtual board; `port` is the pty the host connects to."""

    def __init__(self, folder: Path, *options: str):
        self.folder = folder
        self.proc = subprocess.Popen(
            [sys.executable, str(VBOARD), "--folder", str(folder), *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.port = self.next_port()

    def next_port(self) -> str:
        """The next port the board prints: the first, or the one after a cut link."""
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], HANG)
            if not ready:
                raise AssertionError("the virtual board printed no port")
            byte = os.read(self.proc.stdout.fileno(), 1)
            if not byte:
                raise AssertionError(f"the virtual board ended: {self.proc.stderr.read()!r}")
            line += byte
        return line.decode().strip()

    def stop(self) -> str:
        """Stop the board; return what it wrote on stderr."""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode()


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                          capture_output=True, text=True, timeout=HANG)


def run_deploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEPLOY), *args], capture_output=True, text=True,
                          timeout=HANG * 3)
