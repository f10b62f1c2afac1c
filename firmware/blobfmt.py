"""The blob: one flash-friendly file with a model's tokenizer, weights and tables.

Both sides of the cable use this module, so the layout is written once: host/ writes
blobs with it (CPython), the firmware reads them (MicroPython). It uses only what the two
share: struct, bytes and plain integers.

    import blobfmt
    header = blobfmt.parse_header(first_64_bytes)
    for sid, dtype, offset, length, crc in blobfmt.parse_table(table_bytes, header):
        ...

Layout (little-endian throughout):

    header        64 bytes: magic b"MLLM", format version, scheme, group size,
                  activation bits, the model config, section count, table offset
    section table 16 bytes per section: id, element type, offset, length, CRC32
    sections      each starts on a 16-byte boundary, so the board can readinto one
                  buffer per section or use it in place from a memory-mapped file

Schemes:
    SCHEME_F32  float32 weights as in the checkpoint (the check mode)
    SCHEME_Q8   int8 weights with a 15-bit scale per group of GROUP weights in a row,
                each weight tensor optionally with a 4-bit refinement plane that makes
                it a 12-bit tensor (w = 16*q + r); integer and fixed-point tables

A weight tensor of kind K (layers stacked, rows of `cols` values) has, in SCHEME_Q8:
    K_Q8      u8, q + 128 for each weight, row-major
    K_R4      u8, optional: r + 8 in a nibble per weight, even column in the low nibble
    K_SCALES  u16, one scale mantissa m per (row, group); the real weight is
              (16*q + r) * m * 2**-E, with E the tensor's exponent in QPARAMS
and in SCHEME_F32 a single K_F32 section.
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


MAGIC = b"MLLM"
VERSION = const(1)
HEADER_SIZE = const(64)
ENTRY_SIZE = const(16)
ALIGN = const(16)

_HEADER = "<4sHHBBBBIIIIIIIII"  # 48 bytes used, the rest reserved (zero)
_ENTRY = "<HHIII"

SCHEME_F32 = const(0)
SCHEME_Q8 = const(1)
SCHEME_NAMES = {SCHEME_F32: "f32", SCHEME_Q8: "int8"}

# Element types of sections.
T_U8 = const(1)
T_U16 = const(2)
T_I16 = const(3)
T_I32 = const(4)
T_F32 = const(5)
T_BYTES = const(6)

# Fixed-point constants of SCHEME_Q8, shared by the firmware kernels and the numpy reference.
W_BIAS = const(2056)  # stored 16*(q+128) + (r+8) = w + W_BIAS, w = 16*q + r
W_MAX = const(2039)  # |w| <= W_MAX for a refined tensor (|q| <= 127 and |r| <= 8)
Q_MAX = const(127)
SCALE_BITS = const(15)  # group scale mantissas are below 2**15
ROPE_BITS = const(14)  # cos and sin tables in Q14
RESIDUAL_BITS = const(16)  # the residual stream is int32 in Q16
EXP_TABLE_STEPS = const(256)  # 2**(-i/256) in Q30 for i in 0..256

# Sections with a single role.
S_TOKENIZER = const(1)
S_QPARAMS = const(2)  # int32 fixed-point parameters, see P_* below
S_ROPE = const(3)  # int16 cos, sin in Q14 for each position and frequency
S_EXP2 = const(4)  # int32 2**(-i/256) in Q30, i = 0..256
S_FINAL_GAIN = const(5)  # int16 final RMSNorm gain (scheme Q8; other gains are folded)
S_RMS_F32 = const(6)  # float32 RMSNorm weights: attention (layers), ffn (layers), final

# Weight tensor kinds; section id = 16 + 4*kind + part.
K_EMB = const(0)
K_WQ = const(1)
K_WK = const(2)
K_WV = const(3)
K_WO = const(4)
K_W1 = const(5)
K_W2 = const(6)
K_W3 = const(7)
K_CLS = const(8)  # only when the classifier is not shared with the embedding
KIND_NAMES = ("emb", "wq", "wk", "wv", "wo", "w1", "w2", "w3", "cls")
PART_Q8 = const(0)
PART_R4 = const(1)
PART_SCALES = const(2)
PART_F32 = const(3)
_PART_NAMES = ("q8", "r4", "scales", "f32")

# QPARAMS: model-wide entries, then P_PER_LAYER entries for each layer.
P_EPS = const(0)  # RMSNorm epsilon in the integer norm's units
P_EMB_EXP = const(1)  # exponent E of the embedding tensor
P_FINAL_GAIN_BITS = const(2)  # fixed-point bits of S_FINAL_GAIN
P_QK_CLAMP = const(3)  # |q|, |k| bound so a head's q.k stays below 2**30
P_CLS_EXP = const(4)  # exponent E of the classifier (the embedding's when shared)
P_QK_BITS = const(5)  # block bits of q and k before RoPE (rotation may add half a bit)
P_LAYERS = const(8)
P_PER_LAYER = const(8)  # exponents of wq, wk, wv, wo, w1, w2, w3, then one spare


def section_id(kind, part):
    return 16 + 4 * kind + part


def section_name(sid):
    if sid >= 16:
        kind, part = divmod(sid - 16, 4)
        if kind < len(KIND_NAMES):
            return KIND_NAMES[kind] + "." + _PART_NAMES[part]
    return {
        S_TOKENIZER: "tokenizer",
        S_QPARAMS: "qparams",
        S_ROPE: "rope",
        S_EXP2: "exp2",
        S_FINAL_GAIN: "final_gain",
        S_RMS_F32: "rms_f32",
    }.get(sid, "section %d" % sid)


class BlobError(ValueError):
    """The blob is not one this firmware can run; the message says what is wrong."""


class Header:
    """The blob header: format, scheme and the model's configuration."""

    def __init__(self, scheme, group_size, act_bits, dim, hidden_dim, n_layers, n_heads,
                 n_kv_heads, vocab_size, seq_len, n_sections=0, table_offset=HEADER_SIZE,
                 version=VERSION):
        self.version = version
        self.scheme = scheme
        self.group_size = group_size
        self.act_bits = act_bits
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.n_sections = n_sections
        self.table_offset = table_offset

    @property
    def head_size(self):
        return self.dim // self.n_heads

    @property
    def kv_dim(self):
        return self.dim * self.n_kv_heads // self.n_heads

    def pack(self):
        raw = struct.pack(
            _HEADER, MAGIC, self.version, HEADER_SIZE, self.scheme, self.group_size,
            self.act_bits, 0, self.dim, self.hidden_dim, self.n_layers, self.n_heads,
            self.n_kv_heads, self.vocab_size, self.seq_len, self.n_sections, self.table_offset)
        return raw + bytes(HEADER_SIZE - len(raw))


def parse_header(data):
    """The Header in the first HEADER_SIZE bytes of a blob, checked for sense."""
    if len(data) < HEADER_SIZE:
        raise BlobError("blob too short for its header (%d bytes): truncated file?" % len(data))
    fields = struct.unpack_from(_HEADER, data, 0)
    magic, version, header_size, scheme, group_size, act_bits = fields[:6]
    if magic != MAGIC:
        raise BlobError("not a micro-llm blob (magic %r, expected %r)" % (magic, MAGIC))
    if version != VERSION:
        raise BlobError(
            "blob format version %d, this firmware reads version %d: rebuild the blob "
            "with the matching micro-llm" % (version, VERSION))
    if header_size != HEADER_SIZE:
        raise BlobError("blob header size %d, expected %d" % (header_size, HEADER_SIZE))
    if scheme not in SCHEME_NAMES:
        raise BlobError("unknown weight scheme %d in blob" % scheme)
    h = Header(scheme, group_size, act_bits, *fields[7:])
    check_config(h)
    return h


def check_config(h):
    """Raise BlobError if the model configuration is not one the firmware can run."""
    for name in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                 "seq_len"):
        if not 0 < getattr(h, name) < 1 << 20:
            raise BlobError("model config %s=%d out of range" % (name, getattr(h, name)))
    if h.dim % h.n_heads or h.n_heads % h.n_kv_heads or h.head_size % 2:
        raise BlobError("model config: dim %d, %d heads, %d kv heads do not divide evenly"
                        % (h.dim, h.n_heads, h.n_kv_heads))
    if h.scheme == SCHEME_Q8:
        if h.group_size not in (32, 64) or h.act_bits not in (13, 14):
            raise BlobError("int8 blob with group size %d and %d activation bits: unsupported"
                            % (h.group_size, h.act_bits))
        if (W_BIAS + W_MAX) * h.group_size << h.act_bits >= 1 << 31:
            raise BlobError("int8 blob: group size and activation bits overflow 32 bits")
        if h.dim % 4 or h.hidden_dim % 4 or h.kv_dim % 4 or h.vocab_size % 4:
            raise BlobError("int8 blob: dim, hidden_dim, kv_dim and vocab_size must be "
                            "multiples of 4")


def parse_table(data, header):
    """The section table as a list of (id, type, offset, length, crc32) tuples."""
    entries = []
    for i in range(header.n_sections):
        entries.append(struct.unpack_from(_ENTRY, data, i * ENTRY_SIZE))
    return entries


def pack_entry(sid, dtype, offset, length, crc):
    return struct.pack(_ENTRY, sid, dtype, offset, length, crc)


def n_groups(cols, group_size):
    return (cols + group_size - 1) // group_size


def tensor_shapes(h, shared_classifier=True):
    """(kind, layers, rows, cols) of each weight tensor of a model."""
    shapes = [
        (K_EMB, 1, h.vocab_size, h.dim),
        (K_WQ, h.n_layers, h.dim, h.dim),
        (K_WK, h.n_layers, h.kv_dim, h.dim),
        (K_WV, h.n_layers, h.kv_dim, h.dim),
        (K_WO, h.n_layers, h.dim, h.dim),
        (K_W1, h.n_layers, h.hidden_dim, h.dim),
        (K_W2, h.n_layers, h.dim, h.hidden_dim),
        (K_W3, h.n_layers, h.hidden_dim, h.dim),
    ]
    if not shared_classifier:
        shapes.append((K_CLS, 1, h.vocab_size, h.dim))
    return shapes


def qparams_count(h):
    return P_LAYERS + P_PER_LAYER * h.n_layers


def expected_sections(h, present):
    """{section id: (type, byte length)} a blob with this header must (or may) hold.

    `present` is the set of ids in the blob; it decides the optional parts: whether the
    classifier is shared and which tensors have a refinement plane.
    """
    shared = section_id(K_CLS, PART_Q8) not in present and section_id(K_CLS, PART_F32) \
        not in present
    want = {S_TOKENIZER: (T_BYTES, None)}
    if h.scheme == SCHEME_F32:
        want[S_RMS_F32] = (T_F32, 4 * (2 * h.n_layers + 1) * h.dim)
        for kind, layers, rows, cols in tensor_shapes(h, shared):
            want[section_id(kind, PART_F32)] = (T_F32, 4 * layers * rows * cols)
        return want
    want[S_QPARAMS] = (T_I32, 4 * qparams_count(h))
    want[S_ROPE] = (T_I16, 2 * h.seq_len * h.head_size)
    want[S_EXP2] = (T_I32, 4 * (EXP_TABLE_STEPS + 1))
    want[S_FINAL_GAIN] = (T_I16, 2 * h.dim)
    for kind, layers, rows, cols in tensor_shapes(h, shared):
        want[section_id(kind, PART_Q8)] = (T_U8, layers * rows * cols)
        want[section_id(kind, PART_SCALES)] = (
            T_U16, 2 * layers * rows * n_groups(cols, h.group_size))
        if section_id(kind, PART_R4) in present:
            want[section_id(kind, PART_R4)] = (T_U8, layers * rows * cols // 2)
    return want


def align(offset):
    return (offset + ALIGN - 1) // ALIGN * ALIGN


# ---------------------------------------------------------------------------------------
# Tokenizer section:
#   u32 vocab_size, u32 max_token_length,
#   u16 ranks[vocab_size]: each piece's merge score as its rank among the distinct
#       scores (higher score, higher rank; equal scores, equal rank), which is all the
#       byte-pair merge compares,
#   u32 offsets[vocab_size + 1] into the piece bytes (4-aligned),
#   u16 sorted_ids[vocab_size] (pieces in byte order, for binary search),
#   the piece bytes.

def tokenizer_layout(vocab_size):
    """Byte offsets of (ranks, offsets, sorted ids, pieces) in the tokenizer section."""
    ranks = 8
    offsets = (ranks + 2 * vocab_size + 3) // 4 * 4
    sorted_ids = offsets + 4 * (vocab_size + 1)
    pieces = sorted_ids + 2 * vocab_size
    return ranks, offsets, sorted_ids, pieces
