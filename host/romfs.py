"""ROMFS images and the ESP32 partition table that makes room for one.

A ROMFS image is a read-only filesystem that MicroPython mounts at /rom straight from a flash
partition: files are used in place (weights through a memoryview, .mpy modules imported
without a copy in the heap). The format is a tree of records, each `kind, length, payload`
with lengths as big-endian base-128 numbers, after the 3-byte signature.
"""

from __future__ import annotations

import hashlib
import struct

SIGNATURE = b"\xd2\xcd\x31"
_PADDING, _DATA, _DIRECTORY, _FILE = 1, 2, 4, 5
DATA_ALIGNMENT = 16  # the model's bytes start 16-byte aligned in flash

ROMFS_SUBTYPE = 0x8F
PARTITION_TABLE_OFFSET = 0x8000
_ENTRY_MAGIC = 0x50AA
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14
_TABLE_BYTES = 0xC00
_TYPES = {"app": 0, "data": 1}
_SUBTYPES = {("app", "factory"): 0x00, ("data", "nvs"): 0x02, ("data", "phy"): 0x01,
             ("data", "fat"): 0x81, ("data", "romfs"): ROMFS_SUBTYPE}

# MicroPython's ESP32-S3 layout before the filesystem (nvs, phy_init, the application).
DEFAULT_PARTITIONS = [
    ("nvs", "data", "nvs", 0x9000, 0x6000),
    ("phy_init", "data", "phy", 0xF000, 0x1000),
    ("factory", "app", "factory", 0x10000, 0x210000),
]


def _uint(value: int) -> bytes:
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


def _record(kind: int, payload: bytes) -> bytes:
    return _uint(kind) + _uint(len(payload)) + payload


def _file(name: str, data: bytes) -> bytes:
    encoded = name.encode()
    return _record(_FILE, _uint(len(encoded)) + encoded + _record(_DATA, data))


def _directory(name: str, records: bytes) -> bytes:
    encoded = name.encode()
    return _record(_DIRECTORY, _uint(len(encoded)) + encoded + records)


def _image(root: bytes) -> bytes:
    length = _uint(len(root))
    if (len(SIGNATURE) + len(length) + len(root)) % 2:
        length = b"\x80" + length  # a leading zero group keeps the image an even length
    return SIGNATURE + length + root


def build_image(aligned: tuple[str, bytes], files: dict[str, bytes]) -> bytes:
    """A ROMFS image with `aligned` (name, data) at the root, its data starting on a
    DATA_ALIGNMENT boundary, and `files` ("dir/name" or "name": data) after it."""
    dirs: dict[str, list[bytes]] = {}
    root_files = []
    for path in sorted(files):
        folder, _, name = path.rpartition("/")
        (dirs.setdefault(folder, []) if folder else root_files).append(_file(name, files[path]))
    rest = b"".join(root_files) + b"".join(
        _directory(folder, b"".join(records)) for folder, records in sorted(dirs.items()))

    name, data = aligned
    head = _file(name, data)
    data_in_head = len(head) - len(data)
    # A padding record before the model moves its data. The image is kept an even length,
    # so the data's offset has the parity of what follows it: a 3-byte padding record at
    # the end flips that.
    for tail in (b"", _record(_PADDING, b"\0")):
        for padding_bytes in (0, *range(2, 2 + 2 * DATA_ALIGNMENT)):
            padding = _record(_PADDING, bytes(padding_bytes - 2)) if padding_bytes else b""
            root = padding + head + rest + tail
            image = _image(root)
            if (len(image) - len(root) + len(padding) + data_in_head) % DATA_ALIGNMENT == 0:
                return image
    raise AssertionError("ROMFS padding did not settle")


def table_csv(partitions: list[tuple[str, str, str, int, int]]) -> str:
    """A partition table in ESP-IDF's CSV form, for the user to read."""
    lines = ["# Name,   Type, SubType, Offset,   Size"]
    for name, kind, subtype, offset, size in partitions:
        shown = f"0x{ROMFS_SUBTYPE:x}" if subtype == "romfs" else subtype
        lines.append(f"{name + ',':<10}{kind + ',':<6}{shown + ',':<9}"
                     f"0x{offset:06x}, 0x{size:06x}")
    return "\n".join(lines) + "\n"


def table_binary(partitions: list[tuple[str, str, str, int, int]]) -> bytes:
    """The partition table as the bootloader reads it at 0x8000: 32-byte entries, an MD5
    entry over them, then 0xff to the end of the table's sector."""
    entries = b""
    for name, kind, subtype, offset, size in partitions:
        entries += struct.pack("<HBBII16sI", _ENTRY_MAGIC, _TYPES[kind],
                               _SUBTYPES[(kind, subtype)], offset, size, name.encode(), 0)
    table = entries + _MD5_MAGIC + hashlib.md5(entries).digest()
    return table + b"\xff" * (_TABLE_BYTES - len(table))


def layout_with_romfs(existing: list[tuple[str, str, str, int, int]] | None,
                      flash_bytes: int, romfs_bytes: int) -> list[tuple[str, str, str, int, int]]:
    """The board's partitions up to its application, then a ROMFS partition of romfs_bytes,
    then the filesystem ("vfs") to the end of the flash."""
    kept = [p for p in (existing or DEFAULT_PARTITIONS) if p[1] == "app" or p[2] in (
        "nvs", "phy")]
    app_end = max(offset + size for _, _, _, offset, size in kept)
    romfs_at = (app_end + 0xFFFF) & ~0xFFFF
    vfs_at = romfs_at + romfs_bytes
    if vfs_at >= flash_bytes:
        raise ValueError("no room for a filesystem after the ROMFS partition")
    return kept + [("romfs", "data", "romfs", romfs_at, romfs_bytes),
                   ("vfs", "data", "fat", vfs_at, flash_bytes - vfs_at)]
