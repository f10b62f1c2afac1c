"""Read llama2.c checkpoints and tokenizers.

Two checkpoint layouts are understood:
- legacy (version 0): seven int32 config fields, then float32 tensors in run.c's order
  (embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, two RoPE tables
  that run.c skips, then the classifier when vocab_size is negative, i.e. not shared);
- version 1 (export.py's float32 format): a 256-byte header with magic "ak42", version,
  config and a shared-classifier flag, then the norms, the embedding and the matrices.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

_V1_MAGIC = 0x616B3432  # "ak42"


@dataclass
class Config:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.dim * self.n_kv_heads // self.n_heads


@dataclass
class Checkpoint:
    config: Config
    shared_classifier: bool
    version: int
    # name -> float32 array; matrices are (layers, rows, cols) with rows = outputs
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def classifier(self) -> np.ndarray:
        return self.weights["emb"] if self.shared_classifier else self.weights["cls"]


@dataclass
class Tokenizer:
    max_token_length: int
    pieces: list[bytes]
    scores: np.ndarray  # float32


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def _config_ok(c: Config) -> bool:
    values = (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
              c.seq_len)
    return (all(0 < v < 1 << 20 for v in values) and c.dim % c.n_heads == 0
            and c.n_heads % c.n_kv_heads == 0)


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint at `path`, as float32 arrays; a clear UserError if it is not one."""
    data = _read(path, "checkpoint")
    if len(data) < 28:
        raise UserError(f"{path}: too short to be a llama2.c checkpoint ({len(data)} bytes)")
    magic, version = struct.unpack_from("<Ii", data, 0)
    if magic == _V1_MAGIC:
        if version != 1:
            raise UserError(
                f"{path}: llama2.c checkpoint version {version}; only the legacy layout and "
                "version 1 (float32) are supported: export with `--version 1`")
        config = Config(*struct.unpack_from("<7i", data, 8))
        shared = bool(data[36])
        body = data[256:]
    else:
        version = 0
        fields = struct.unpack_from("<7i", data, 0)
        shared = fields[5] > 0
        config = Config(*fields[:5], abs(fields[5]), fields[6])
        body = data[28:]
    if not _config_ok(config):
        raise UserError(f"{path}: not a llama2.c checkpoint (config {config} makes no sense)")

    floats = np.frombuffer(body[: len(body) // 4 * 4], dtype="<f4")
    c = config
    L, d, h, kv, V = c.n_layers, c.dim, c.hidden_dim, c.kv_dim, c.vocab_size
    hs = c.head_size
    if version == 0:
        plan = [("emb", (V, d)), ("rms_att", (L, d)), ("wq", (L, d, d)), ("wk", (L, kv, d)),
                ("wv", (L, kv, d)), ("wo", (L, d, d)), ("rms_ffn", (L, d)), ("w1", (L, h, d)),
                ("w2", (L, d, h)), ("w3", (L, h, d)), ("rms_final", (d,)),
                ("_rope_real", (c.seq_len * hs // 2,)), ("_rope_imag", (c.seq_len * hs // 2,))]
    else:
        plan = [("rms_att", (L, d)), ("rms_ffn", (L, d)), ("rms_final", (d,)),
                ("emb", (V, d)), ("wq", (L, d, d)), ("wk", (L, kv, d)), ("wv", (L, kv, d)),
                ("wo", (L, d, d)), ("w1", (L, h, d)), ("w2", (L, d, h)), ("w3", (L, h, d))]
    if not shared:
        plan.append(("cls", (V, d)))

    need = sum(int(np.prod(shape)) for _, shape in plan)
    if len(floats) < need:
        raise UserError(
            f"{path}: truncated checkpoint: {len(floats) * 4} bytes of weights, the config "
            f"needs {need * 4}")
    if not np.isfinite(floats[:need]).all():
        raise UserError(f"{path}: the checkpoint holds NaN or infinite weights: it is damaged "
                        "or not a trained model")
    weights = {}
    offset = 0
    for name, shape in plan:
        n = int(np.prod(shape))
        if not name.startswith("_"):
            weights[name] = floats[offset: offset + n].reshape(shape)
        offset += n
    return Checkpoint(config, shared, version, weights)


def read_tokenizer(path: Path, vocab_size: int) -> Tokenizer:
    """llama2.c's tokenizer.bin: max_token_length, then score, length, bytes per piece."""
    data = _read(path, "tokenizer")
    try:
        (max_len,) = struct.unpack_from("<i", data, 0)
        offset = 4
        pieces, scores = [], []
        for _ in range(vocab_size):
            score, length = struct.unpack_from("<fi", data, offset)
            offset += 8
            if not 0 <= length <= 1 << 16 or offset + length > len(data):
                raise struct.error("bad piece length")
            pieces.append(data[offset: offset + length])
            scores.append(score)
            offset += length
    except struct.error:
        raise UserError(
            f"{path}: not a tokenizer for a {vocab_size}-token vocabulary (it ends early or "
            "is not a llama2.c tokenizer.bin): use the tokenizer the checkpoint was trained "
            "with") from None
    if offset != len(data):
        raise UserError(
            f"{path}: tokenizer has {len(data) - offset} bytes beyond {vocab_size} pieces: it "
            "is not the tokenizer of this checkpoint (its vocabulary is larger)")
    if max(len(p) for p in pieces) > max_len:
        raise UserError(f"{path}: a piece is longer than the tokenizer's max_token_length")
    return Tokenizer(max_len, pieces, np.array(scores, dtype=np.float32))


def write_checkpoint_v1(ckpt: Checkpoint, path: Path) -> None:
    """Write `ckpt` in llama2.c's version-1 float32 layout (export.py's `--version 1`)."""
    c = ckpt.config
    header = struct.pack("<Ii7iB", _V1_MAGIC, 1, c.dim, c.hidden_dim, c.n_layers, c.n_heads,
                         c.n_kv_heads, c.vocab_size, c.seq_len, int(ckpt.shared_classifier))
    order = ["rms_att", "rms_ffn", "rms_final", "emb", "wq", "wk", "wv", "wo", "w1", "w2",
             "w3"]
    if not ckpt.shared_classifier:
        order.append("cls")
    with open(path, "wb") as f:
        f.write(header + bytes(256 - len(header)))
        for name in order:
            f.write(np.ascontiguousarray(ckpt.weights[name], dtype="<f4").tobytes())
