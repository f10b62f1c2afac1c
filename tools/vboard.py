#!/usr/bin/env python3
"""A virtual board: the MicroPython unix port behind a serial port, for deploys and tests.

    python tools/vboard.py --folder /tmp/board        # first line out: /dev/pts/N
    mpremote connect /dev/pts/N exec "print('hello')"

The interpreter sits behind one pty and the host talks to another; this process relays bytes
between them and makes the unix port behave as an ESP32-S3 board does on its USB serial port:

- A soft reset (Ctrl-D in the raw REPL, or on an empty line at `>>>`) ends the unix port,
  so the board starts a fresh interpreter, prints "MPY: soft reboot" and returns to the REPL
  it was in, as a board does. /boot.py runs at every start, as on a board.
- `/` is the folder given with --folder (the board's flash filesystem), and `os.statvfs`
  reports a filesystem of the board's size, so "no space" can happen as on the board.
- `vfs.rom_ioctl` answers as on an ESP32; with a ROMFS partition (--romfs-bytes) the board
  keeps the partition in a file beside the folder and mounts it at /rom when it holds an
  image.
- The heap is limited to the board profile's budget (`-X heapsize`).
- `--cut-after N` pulls the USB cable after N bytes from the host: the interpreter dies
  mid-command, the host's port goes away, and the board comes back on a new port (printed
  as another line), with whatever reached its filesystem before the cut.

It runs until stopped (SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import tty
from pathlib import Path

from micro_llm.boards import DEFAULT_BOARD, load_board
from micro_llm.errors import UserError
from micro_llm.paths import SIM_DIR
from micro_llm.simulator import find_micropython, heap_option

SOFT_REBOOT = b"MPY: soft reboot\r\n"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_BOOT_TIMEOUT = 30.0

# MicroPython code run at every start of the interpreter, before the host gets the REPL.
# {placeholders} are filled in by VirtualBoard.boot_code().
_BOOT = r"""
import sys, os, vfs

class _BoardFS:
    # The board's flash filesystem: a host folder (VfsPosix) that reports the board's size.
    # It wraps VfsPosix rather than subclassing it: the import system reads a VfsPosix
    # subclass's instance as if it were a plain VfsPosix and finds no files.
    def __init__(self, root, size):
        self._fs = vfs.VfsPosix(root)
        self._size = size
        for name in ('mount', 'umount', 'ilistdir', 'chdir', 'getcwd', 'mkdir', 'remove',
                     'rmdir', 'stat', 'open'):
            setattr(self, name, getattr(self._fs, name))

    def rename(self, old, new):
        # VfsPosix builds both host paths in one buffer, so an absolute source is
        # overwritten by an absolute destination; give it the destination relatively.
        if new[:1] == '/':
            depth = len([p for p in self._fs.getcwd().split('/') if p])
            new = '../' * depth + new[1:]
        return self._fs.rename(old, new)

    # Limitation: used space is counted in whole 4 KB blocks per file and directory, close
    # to littlefs on a board but not exact; listings show files with size 0, as VfsPosix
    # reports them.
    def _used(self, path):
        total = 0
        for entry in self._fs.ilistdir(path):
            name, kind = entry[0], entry[1]
            child = path.rstrip('/') + '/' + name
            if kind == 0x4000:
                total += 4096 + self._used(child)
            else:
                total += (self._fs.stat(child)[6] + 4095) // 4096 * 4096
        return total

    def statvfs(self, path):
        if not self._size:
            return self._fs.statvfs(path)
        blocks = self._size // 4096
        free = max(0, blocks - self._used('/') // 4096)
        return (4096, 4096, blocks, free, free, 0, 0, 0, 0, 255)

class _RomPartition:
    # One ROMFS partition, held in RAM and mirrored to a host file (the board's flash).
    def __init__(self, path, size):
        self.path = path
        self.data = bytearray(b'\xff' * size)
        try:
            with open(path, 'rb') as f:
                f.readinto(self.data)
        except OSError:
            with open(path, 'wb') as f:
                f.write(self.data)

    def write(self, offset, buf):
        self.data[offset:offset + len(buf)] = buf
        with open(self.path, 'r+b') as f:
            f.seek(offset)
            f.write(buf)

    def erase(self, length):
        length = min(len(self.data), (length + 4095) // 4096 * 4096)
        self.write(0, b'\xff' * length)

class _VfsWithRom:
    # The vfs module as a board with a ROMFS partition has it: vfs plus rom_ioctl.
    def __init__(self, partition):
        for name in dir(vfs):
            if not name.startswith('__'):
                setattr(self, name, getattr(vfs, name))
        self._partition = partition

    def rom_ioctl(self, op, *args):
        part = self._partition
        if op == 1:
            return 1 if part else 0
        if not part or not args or args[0] != 0:
            return -19
        if op == 2:
            return memoryview(part.data)
        if op == 3:
            part.erase(args[1] if len(args) > 1 else len(part.data))
            return 4
        if op == 4:
            part.write(args[1], args[2])
            return 0
        if op == 5:
            return 0
        return -22

class _VirtualBoard:
    CHIP = {chip!r}
    BOARD = {board!r}

vfs.umount('/')
vfs.mount(_BoardFS({folder!r}, {fs_bytes}), '/')
os.chdir('/')
sys.path[:] = ['', '.frozen', '/lib']
if {sim_dir!r}:
    vfs.mount(vfs.VfsPosix({sim_dir!r}), '/.sim', readonly=True)
    sys.path.insert(0, '/.sim')
sys.modules['_vboard'] = _VirtualBoard
_part = None
if {romfs_bytes}:
    vfs.mount(vfs.VfsPosix({romfs_dir!r}), '/.flash')
    _part = _RomPartition('/.flash/' + {romfs_name!r}, {romfs_bytes})
    if _part.data[:3] == b'\xd2\xcd\x31':
        vfs.mount(vfs.VfsRom(memoryview(_part.data)), '/rom')
        sys.path[1:1] = ['/rom', '/rom/lib']
# As MicroPython 1.25+ on an ESP32: vfs.rom_ioctl exists, with or without a partition.
sys.modules['vfs'] = _VfsWithRom(_part)
del _part
del _BoardFS, _RomPartition, _VfsWithRom, _VirtualBoard, sys, os, vfs
try:
    _boot = open('/boot.py').read()
except OSError:
    _boot = None
if _boot:
    exec(_boot)
del _boot
"""


class BoardStartError(RuntimeError):
    """The interpreter did not come up as a board."""


class VirtualBoard:
    """One virtual board: an interpreter process, its pty, and the host's pty."""

    def __init__(self, args: argparse.Namespace):
        profile = load_board(args.board)
        self.folder = Path(args.folder).resolve()
        if self.folder.exists() and not self.folder.is_dir():
            raise BoardStartError(f"--folder {args.folder} is a file, not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        # The hardware stand-ins (host/sim), as a private copy mounted read-only at /.sim:
        # nothing done on the board can change the project's own files.
        self.stand_ins = None
        if SIM_DIR.is_dir():
            self.stand_ins = Path(tempfile.mkdtemp(prefix="vboard-sim-"))
            for source in SIM_DIR.glob("*.py"):
                shutil.copy2(source, self.stand_ins / source.name)
        self.chip = args.chip or profile.chip
        self.board_id = profile.id
        self.fs_bytes = profile.flash_bytes - 0x220000 if args.fs_bytes is None else args.fs_bytes
        self.romfs_bytes = args.romfs_bytes
        self.romfs_image = Path(args.romfs_image or f"{self.folder}.romfs").resolve()
        # Limitation: the ROMFS partition lives in the interpreter's heap (a board maps it
        # from flash), so the heap is enlarged by the partition's size to leave the budget.
        self.heap_bytes = (args.heap or profile.heap_budget_bytes) + self.romfs_bytes
        self.cut_after = args.cut_after
        self.host_bytes = 0

        self.proc: subprocess.Popen | None = None
        self.board_fd = -1  # our end of the interpreter's pty
        self.host_fd = -1  # our end of the host's pty
        self.host_slave_fd = -1
        self.raw_mode = False
        self.tail = b""  # the last output bytes, to follow the REPL mode

    # ---- the host's side: a pty that looks like a serial port

    def open_host_port(self) -> str:
        master, slave = pty.openpty()
        tty.setraw(slave)
        # Keep the slave open so the port survives between host connections.
        self.host_fd, self.host_slave_fd = master, slave
        return os.ttyname(slave)

    def close_host_port(self) -> None:
        for fd in (self.host_fd, self.host_slave_fd):
            if fd >= 0:
                os.close(fd)
        self.host_fd = self.host_slave_fd = -1

    def to_host(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.host_fd, view)
            except BlockingIOError:
                select.select([], [self.host_fd], [], 1.0)
                continue
            view = view[n:]

    # ---- the board's side: the unix port in a pty of its own

    def boot_code(self) -> bytes:
        sim = str(self.stand_ins) if self.stand_ins else ""
        code = _BOOT.format(
            chip=self.chip, board=self.board_id, folder=str(self.folder),
            fs_bytes=int(self.fs_bytes), sim_dir=sim, romfs_bytes=int(self.romfs_bytes),
            romfs_dir=str(self.romfs_image.parent), romfs_name=self.romfs_image.name,
        )
        return code.encode()

    def spawn(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        # Ctrl-C while code runs must raise KeyboardInterrupt, as on a board: keep the
        # terminal's INTR signal (the unix port switches it off while it reads a line).
        attrs = termios.tcgetattr(slave)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(slave, termios.TCSANOW, attrs)

        def become_terminal_owner() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        command = find_micropython() + heap_option(self.heap_bytes)
        self.proc = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, cwd=self.folder,
            preexec_fn=become_terminal_owner, close_fds=True,
        )
        os.close(slave)
        self.board_fd = master

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.board_fd >= 0:
            os.close(self.board_fd)
            self.board_fd = -1

    def read_board_until(self, ending: bytes) -> bytes:
        data = b""
        while not data.endswith(ending):
            ready, _, _ = select.select([self.board_fd], [], [], _BOOT_TIMEOUT)
            if not ready:
                raise BoardStartError(f"no {ending!r} from the interpreter; it said {data!r}")
            try:
                chunk = os.read(self.board_fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise BoardStartError(f"the interpreter ended while starting: {data!r}")
            data += chunk
        return data

    def boot(self, announce: bytes) -> None:
        """Start an interpreter, run the board's start-up code, and return to the REPL mode
        the host had, printing what a board prints."""
        self.spawn()
        self.read_board_until(b">>> ")
        os.write(self.board_fd, b"\x01")
        self.read_board_until(RAW_BANNER + b">")
        os.write(self.board_fd, self.boot_code() + b"\x04")
        reply = self.read_board_until(b"\x04>")
        out, _, err = reply[2:-2].partition(b"\x04")
        if err:
            sys.stderr.write("vboard: start-up code failed:\n" + err.decode(errors="replace"))
        self.to_host(announce + out + err)
        if self.raw_mode:
            self.to_host(RAW_BANNER + b">")
        else:
            # Wait for the friendly prompt: until the interpreter reads its line, a Ctrl-C
            # from the host would be a signal that ends it rather than a key.
            os.write(self.board_fd, b"\x02")
            self.to_host(self.read_board_until(b">>> "))
        self.tail = b""

    def follow_mode(self, output: bytes) -> None:
        self.tail = (self.tail + output)[-64:]
        raw_at = self.tail.rfind(RAW_BANNER)
        friendly_at = self.tail.rfind(b"\n>>> ")
        if raw_at > friendly_at:
            self.raw_mode = True
        elif friendly_at > raw_at:
            self.raw_mode = False

    # ---- the relay

    def cut_link(self) -> None:
        """The cable is pulled: the board loses power and comes back on a new port."""
        self.kill()
        self.close_host_port()
        self.raw_mode = False
        self.cut_after = None
        print(self.open_host_port(), flush=True)
        self.boot(b"")

    def run(self) -> None:
        stop_r, stop_w = os.pipe()
        os.set_blocking(stop_w, False)
        signal.set_wakeup_fd(stop_w)
        stopping = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.append(True))

        print(self.open_host_port(), flush=True)
        self.boot(b"")
        while not stopping:
            try:
                ready, _, _ = select.select([self.board_fd, self.host_fd, stop_r], [], [])
            except InterruptedError:
                continue
            if self.board_fd in ready:
                try:
                    output = os.read(self.board_fd, 4096)
                except OSError:
                    output = b""
                if output:
                    self.follow_mode(output)
                    self.to_host(output)
                else:
                    # The unix port ended: that is a soft reset on a board.
                    self.kill()
                    self.boot(SOFT_REBOOT)
            if self.host_fd in ready:
                data = os.read(self.host_fd, 4096)
                if self.cut_after is not None:
                    room = self.cut_after - self.host_bytes
                    if len(data) >= room:
                        os.write(self.board_fd, data[:room])
                        self.cut_link()
                        continue
                self.host_bytes += len(data)
                os.write(self.board_fd, data)
        self.kill()
        self.close_host_port()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="A virtual ESP32-S3 board: the MicroPython unix port on a pty.")
    parser.add_argument("--board", default=DEFAULT_BOARD, help="board profile id or file")
    parser.add_argument("--folder", required=True, help="the board's filesystem (a folder)")
    parser.add_argument("--chip", help="the chip the board says it is (default: the profile's)")
    parser.add_argument("--heap", type=int, help="heap bytes (default: the profile's budget)")
    parser.add_argument("--fs-bytes", type=int,
                        help="filesystem size that statvfs reports (default: flash after "
                             "the firmware; 0 reports the host's)")
    parser.add_argument("--romfs-bytes", type=int, default=0,
                        help="size of a ROMFS partition (default: none)")
    parser.add_argument("--romfs-image",
                        help="file holding the ROMFS partition (default: FOLDER.romfs)")
    parser.add_argument("--cut-after", type=int,
                        help="pull the cable after this many bytes from the host")
    args = parser.parse_args(argv)

    try:
        board = VirtualBoard(args)
    except (BoardStartError, UserError) as e:
        print(f"vboard: {e}", file=sys.stderr)
        return 2
    try:
        board.run()
    except BoardStartError as e:
        board.kill()
        print(f"vboard: {e}", file=sys.stderr)
        return 1
    finally:
        if board.stand_ins:
            shutil.rmtree(board.stand_ins, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
