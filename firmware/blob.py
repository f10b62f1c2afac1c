"""Open a model blob: check it, and hand out each section as one buffer.

    b = Blob("/models/stories260K.mlb")
    b.header.dim, b.section(blobfmt.S_TOKENIZER)

A blob on a memory-mapped filesystem (ROMFS, /rom) is used in place: every section is a
memoryview of flash and costs no heap. Anywhere else each section is read with a single
readinto into a bytearray allocated once. Either way every section's CRC32 is checked
and its size compared with what the header's model needs, so a corrupt or truncated
blob is refused with a message that says what is wrong.
"""

import struct

import blobfmt as bf

try:
    from binascii import crc32
except ImportError:  # a port built without binascii.crc32
    crc32 = None


# Limitation: without binascii.crc32 (every MicroPython port this project targets has it)
# the check runs bit by bit in Python: some seconds per 100 KB on a board.
def _crc32_slow(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _crc_rest(f, count, crc, check):
    """The running CRC32 over the next `count` bytes of f, read in small pieces."""
    scratch = bytearray(512)
    view = memoryview(scratch)
    while count > 0:
        n = f.readinto(scratch) if count >= 512 else f.readinto(view[:count])
        if not n:
            raise bf.BlobError("blob truncated while checking a section")
        crc = check(view[:n], crc)
        count -= n
    return crc


class Blob:
    def __init__(self, path, keep=None):
        """keep: {section id: bytes} to hold only the start of a section (its CRC is still
        checked over all of it), e.g. the RoPE table for the positions a story uses."""
        self.path = path
        self.keep = keep or {}
        try:
            f = open(path, "rb")
        except OSError:
            raise bf.BlobError("no model blob at %s: deploy one, or give its path" % path)
        try:
            self._load(f)
        finally:
            f.close()

    def _load(self, f):
        try:
            mapped = memoryview(f)
        except (TypeError, OSError, ValueError):
            mapped = None
        self.mapped = mapped is not None

        head = f.read(bf.HEADER_SIZE)
        self.header = h = bf.parse_header(head)
        f.seek(h.table_offset)
        table = f.read(bf.ENTRY_SIZE * h.n_sections)
        if len(table) != bf.ENTRY_SIZE * h.n_sections:
            raise bf.BlobError("blob truncated inside its section table")
        entries = bf.parse_table(table, h)
        f.seek(0, 2)
        size = f.tell()
        self.size = size

        present = set(e[0] for e in entries)
        want = bf.expected_sections(h, present)
        self.sections = {}
        check = crc32 or _crc32_slow
        for sid, dtype, offset, length, crc in entries:
            name = bf.section_name(sid)
            if sid not in want:
                raise bf.BlobError("unexpected section %s in blob" % name)
            wtype, wlen = want[sid]
            if dtype != wtype or (wlen is not None and length != wlen):
                raise bf.BlobError(
                    "section %s holds %d bytes of type %d; this model needs %s bytes of "
                    "type %d" % (name, length, dtype, wlen, wtype))
            if offset + length > size:
                raise bf.BlobError("blob truncated: section %s ends at byte %d, the file "
                                   "has %d" % (name, offset + length, size))
            held = min(length, self.keep.get(sid, length))
            if mapped is not None:
                buf = mapped[offset:offset + held]
                got = check(mapped[offset:offset + length])
            else:
                buf = bytearray(held)
                f.seek(offset)
                if f.readinto(buf) != held:
                    raise bf.BlobError("could not read section %s" % name)
                got = check(buf)
                if held < length:
                    got = _crc_rest(f, length - held, got, check)
            if got & 0xFFFFFFFF != crc:
                raise bf.BlobError("section %s fails its CRC32 check: the blob is corrupt, "
                                   "build or upload it again" % name)
            self.sections[sid] = buf
        for sid in want:
            if sid not in self.sections:
                raise bf.BlobError("blob lacks section %s" % bf.section_name(sid))

    def section(self, sid):
        return self.sections[sid]

    def has(self, sid):
        return sid in self.sections

    def int32s(self, sid):
        """A small int32 section (parameters) as a tuple of ints."""
        data = self.sections[sid]
        return struct.unpack("<%di" % (len(data) // 4), data)
