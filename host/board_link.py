"""The serial link to a board that runs MicroPython: open it, run code, write files.

    with BoardLink.open("/dev/ttyACM0") as link:
        print(link.exec("import sys\nprint(sys.implementation)"))

Two transports speak the raw REPL: mpremote (the default, with raw-paste mode) and
adafruit-ampy (plain raw REPL, for a board on which mpremote cannot get a raw-paste session).
Every failure a user can meet becomes a LinkError whose message says what to do.
"""

from __future__ import annotations

import binascii
import logging
import os
import stat
from typing import Callable

import serial

from .errors import UserError

log = logging.getLogger(__name__)

TRANSPORTS = ("mpremote", "ampy")
_WRITE_CHUNK = 2048  # bytes of file data per raw-REPL command
_READ_TIMEOUT = 5  # seconds one read of the port may wait


class LinkError(UserError):
    """The board cannot be reached, or the link to it was lost."""


class NoReplError(LinkError):
    """The port is there, but nothing on it answers MicroPython's raw REPL."""


class BoardExecError(UserError):
    """Code run on the board raised an exception; the message is the board's traceback."""


def check_port(port: str) -> None:
    """Fail with a sentence when the port does not exist or another program holds it."""
    if port.startswith("/dev/") or os.sep in port:
        try:
            mode = os.stat(port).st_mode
        except FileNotFoundError:
            raise LinkError(
                f"there is no serial port {port}: plug the board in and give its port "
                "(on Linux ls /dev/ttyACM* /dev/ttyUSB*, on macOS ls /dev/cu.*)"
            ) from None
        if not stat.S_ISCHR(mode):
            raise LinkError(f"{port} is not a serial port: give the board's port, "
                            "such as /dev/ttyACM0")
    try:
        probe = serial.Serial(port, exclusive=True)
    except serial.SerialException as e:
        text = str(e)
        if "exclusively lock" in text or "Resource temporarily unavailable" in text or (
                "busy" in text.lower()):
            raise LinkError(
                f"{port} is in use by another program (a serial monitor, Thonny, another "
                "mpremote or micro-llm talk): close it and try again"
            ) from None
        raise LinkError(f"cannot open {port} ({text}): check the port name and that you "
                        "may use it (on Linux, membership of the dialout group)") from None
    probe.close()


class BoardLink:
    """A raw-REPL session with one board."""

    def __init__(self, port: str, transport: str):
        self.port = port
        self.transport_name = transport
        self._mp = None  # mpremote SerialTransport
        self._ampy = None  # ampy Pyboard

    # ---- opening and closing

    @classmethod
    def open(cls, port: str, transport: str = "mpremote", soft_reset: bool = True) -> BoardLink:
        """Connect, interrupt whatever runs, and enter the raw REPL (after a soft reset)."""
        if transport not in TRANSPORTS:
            raise LinkError(f"unknown transport {transport!r}: use one of {', '.join(TRANSPORTS)}")
        check_port(port)
        link = cls(port, transport)
        try:
            if transport == "mpremote":
                from mpremote.transport_serial import SerialTransport

                # A read timeout, so that a port with nothing answering fails instead of
                # waiting forever (mpremote reads a pty without polling first).
                link._mp = SerialTransport(port, baudrate=115200, timeout=_READ_TIMEOUT)
                link._mp.enter_raw_repl(soft_reset=soft_reset)
            else:
                from ampy.pyboard import Pyboard

                link._ampy = Pyboard(port, baudrate=115200)
                link._ampy.serial.timeout = _READ_TIMEOUT
                link._ampy.enter_raw_repl()
        except Exception as e:  # each transport has its own error types
            link.close()
            log.info("raw REPL failed: %r", e)
            raise NoReplError(
                f"the board on {port} does not answer MicroPython's raw REPL: press its reset "
                "button and try again; if it has no MicroPython yet, flash it with --firmware"
            ) from None
        log.info("connected to %s with %s", port, transport)
        return link

    def close(self) -> None:
        try:
            if self._mp is not None:
                if self._mp.in_raw_repl:
                    self._mp.exit_raw_repl()
                self._mp.close()
            if self._ampy is not None:
                self._ampy.exit_raw_repl()
                self._ampy.close()
        except Exception:  # the link may be gone already; closing must not fail
            pass
        self._mp = self._ampy = None

    def __enter__(self) -> BoardLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def serial(self) -> serial.Serial:
        return self._mp.serial if self._mp is not None else self._ampy.serial

    def lost(self) -> LinkError:
        return LinkError(
            f"the link to the board on {self.port} was lost: plug it back in and run the "
            "same command again (finished files are kept; a half-written one is replaced)"
        )

    # ---- running code

    def exec(self, code: str, timeout: float = 10,
             stream: Callable[[bytes], None] | None = None) -> str:
        """Run code in the raw REPL; return what it printed. `timeout` is the longest
        silence allowed; `stream` gets the output as it arrives."""
        try:
            if self._mp is not None:
                out, err = self._mp.exec_raw(code, timeout=timeout, data_consumer=stream)
            else:
                out, err = self._ampy.exec_raw(code, timeout=timeout, data_consumer=stream)
        except (OSError, serial.SerialException) as e:
            log.info("link error: %r", e)
            raise self.lost() from None
        except Exception as e:  # TransportError / PyboardError: the board stopped answering
            log.info("transport error: %r", e)
            raise self.lost() from None
        if err:
            raise BoardExecError(err.decode(errors="replace").strip())
        return out.decode(errors="replace")

    def soft_reset(self) -> None:
        """Restart the board's interpreter (as after power-on, without main.py)."""
        try:
            if self._mp is not None:
                self._mp.enter_raw_repl(soft_reset=True)
            else:
                self._ampy.enter_raw_repl()
        except Exception as e:
            log.info("soft reset failed: %r", e)
            raise self.lost() from None

    def interrupt(self) -> None:
        """Ctrl-C: raise KeyboardInterrupt in the code that runs on the board."""
        self.serial.write(b"\x03")

    # ---- files

    def write_file(self, path: str, data: bytes,
                   progress: Callable[[int], None] | None = None) -> None:
        """Write data to a file on the board (replacing it), base64 in chunks."""
        self.exec(f"from binascii import a2b_base64 as _a\n_f=open({path!r},'wb')")
        try:
            for offset in range(0, len(data), _WRITE_CHUNK):
                chunk = data[offset:offset + _WRITE_CHUNK]
                encoded = binascii.b2a_base64(chunk, newline=False).decode()
                self.exec(f"_f.write(_a({encoded!r}))")
                if progress:
                    progress(len(chunk))
        finally:
            try:
                self.exec("_f.close()\ndel _f, _a")
            except LinkError:
                pass

    def read_file(self, path: str) -> bytes:
        """The contents of a file on the board."""
        out = self.exec(
            "from binascii import b2a_base64 as _b\n"
            f"with open({path!r},'rb') as _f:\n"
            " while True:\n"
            "  _c=_f.read(1536)\n"
            "  if not _c: break\n"
            "  print(_b(_c).decode(),end='')\n"
            "del _b, _f, _c"
        )
        return b"".join(binascii.a2b_base64(line) for line in out.split())
