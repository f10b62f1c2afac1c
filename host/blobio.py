"""Write and read blobs on the computer, with the layout from firmware/blobfmt.py."""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .firmware_link import blobfmt as bf

_DTYPES = {bf.T_U8: "<u1", bf.T_U16: "<u2", bf.T_I16: "<i2", bf.T_I32: "<i4",
           bf.T_F32: "<f4", bf.T_BYTES: "<u1"}


@dataclass
class Blob:
    header: object  # blobfmt.Header
    sections: dict[int, np.ndarray]  # id -> 1-D array of the section's element type
    raw: dict[int, bytes]
    size: int

    def has(self, sid: int) -> bool:
        return sid in self.sections

    def tensor(self, kind: int, part: int) -> np.ndarray | None:
        """A weight tensor's part shaped (layers, rows, cols-ish), or None when absent."""
        sid = bf.section_id(kind, part)
        if sid not in self.sections:
            shared = kind == bf.K_CLS
            return self.tensor(bf.K_EMB, part) if shared else None
        h = self.header
        shapes = {k: (layers, rows, cols) for k, layers, rows, cols
                  in bf.tensor_shapes(h, shared_classifier=False)}
        layers, rows, cols = shapes[kind]
        if part == bf.PART_SCALES:
            cols = bf.n_groups(cols, h.group_size)
        elif part == bf.PART_R4:
            cols //= 2
        return self.sections[sid].reshape(layers, rows, cols)


def write_blob(path: Path, header, sections: list[tuple[int, int, bytes]]) -> int:
    """Write a blob atomically (temporary file, then rename); returns its size in bytes.

    `sections` is a list of (id, element type, payload bytes), written in that order.
    """
    header.n_sections = len(sections)
    header.table_offset = bf.HEADER_SIZE
    offset = bf.align(bf.HEADER_SIZE + bf.ENTRY_SIZE * len(sections))
    table, body = [], bytearray()
    for sid, dtype, payload in sections:
        start = bf.align(offset + len(body))
        body += bytes(start - offset - len(body))
        table.append(bf.pack_entry(sid, dtype, start, len(payload), zlib.crc32(payload)))
        body += payload
    head = header.pack() + b"".join(table)
    data = head + bytes(offset - len(head)) + bytes(body)

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would have made it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(path: Path, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an output path that a blob must not replace: a folder, a device, an input."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: give the blob's file name, e.g. {path}/model.mlb")
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file: refusing to replace it with a blob")
    for source in inputs:
        if path.exists() and Path(source).exists() and path.samefile(source):
            raise UserError(f"{path} is the input {source}: give another output file")
    if not path.parent.is_dir():
        raise UserError(f"the folder {path.parent} does not exist: create it first")


def read_blob(path: Path) -> Blob:
    """Read and fully check a blob; a UserError says what is wrong with a bad one."""
    data = Path(path).read_bytes()
    try:
        header = bf.parse_header(data)
        end = header.table_offset + bf.ENTRY_SIZE * header.n_sections
        if end > len(data):
            raise bf.BlobError("blob truncated inside its section table")
        entries = bf.parse_table(data[header.table_offset:end], header)
        present = {e[0] for e in entries}
        want = bf.expected_sections(header, present)
        sections, raw = {}, {}
        for sid, dtype, offset, length, crc in entries:
            name = bf.section_name(sid)
            if sid not in want:
                raise bf.BlobError(f"unexpected section {name} in blob")
            wtype, wlen = want[sid]
            if dtype != wtype or (wlen is not None and length != wlen):
                raise bf.BlobError(f"section {name} has type {dtype} and {length} bytes, "
                                   f"expected type {wtype} and {wlen} bytes")
            if offset + length > len(data):
                raise bf.BlobError(f"blob truncated: section {name} ends at {offset + length},"
                                   f" the file has {len(data)} bytes")
            payload = data[offset: offset + length]
            if zlib.crc32(payload) != crc:
                raise bf.BlobError(f"section {name} fails its CRC32 check: corrupt blob")
            raw[sid] = payload
            sections[sid] = np.frombuffer(payload, dtype=_DTYPES[dtype])
        missing = [bf.section_name(s) for s in want if s not in sections]
        if missing:
            raise bf.BlobError("blob lacks sections: " + ", ".join(missing))
    except (bf.BlobError, struct.error) as e:
        raise UserError(f"{path}: {e}") from None
    return Blob(header, sections, raw, len(data))
