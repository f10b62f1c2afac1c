"""Turn a llama2.c checkpoint and its tokenizer into one blob for the board.

    micro-llm quantize stories260K.bin tok512.bin -o stories260K.mlb

The int8 scheme (the default) stores each weight matrix as int8 with a 15-bit scale per
group of `group_size` weights in a row, plus, for tensors that need it, a 4-bit
refinement plane that makes them 12-bit (w = 16*q + r). Rows whose length is not a
multiple of the group size end in a shorter group: every weight is kept. Rounding is
GPTQ's: each column's rounding error is pushed onto the columns not yet rounded, weighted
by the inverse Hessian of that layer's inputs, which the quantizer gathers by running the
model on stories it samples itself (and, layer by layer, on its already-quantized
predecessors). RMSNorm gains, and 1/sqrt(head_size) for the queries, are folded into the
weights that follow them, so the firmware's norm is a single scale factor.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import floatmodel
from .blobio import write_blob
from .checkpoint import Checkpoint, Tokenizer
from .firmware_link import blobfmt as bf

log = logging.getLogger(__name__)

QUANTIZER_VERSION = 2  # part of the blob cache key: bump when the output changes

ALL_KINDS = ("emb", "wq", "wk", "wv", "wo", "w1", "w2", "w3", "cls")
_KIND_IDS = {name: i for i, name in enumerate(bf.KIND_NAMES)}


@dataclass
class Options:
    group_size: int = 64
    act_bits: int = 13
    refine: tuple[str, ...] = ALL_KINDS  # tensors that get the 4-bit refinement plane
    calibration_stories: int = 16
    calibration_length: int = 256
    seed: int = 20241204
    damp: float = 0.01


@dataclass
class Quantized:
    """One layer's matrix in blob form, plus its dequantized float values."""
    w: np.ndarray  # signed integer weights (16*q + r, or q)
    scales: np.ndarray  # (rows, groups) uint16 mantissas
    exponent: int
    refined: bool
    dequantized: np.ndarray = field(repr=False, default=None)


def tokenizer_section(tok: Tokenizer) -> bytes:
    n = len(tok.pieces)
    ranks_at, offsets_at, sorted_at, pieces_at = bf.tokenizer_layout(n)
    offsets, blob = [], bytearray()
    for p in tok.pieces:
        offsets.append(len(blob))
        blob += p
    offsets.append(len(blob))
    order = sorted(range(n), key=lambda i: (tok.pieces[i], i))
    distinct = sorted(set(float(s) for s in tok.scores))
    rank = {score: i for i, score in enumerate(distinct)}
    out = bytearray(struct.pack("<II", n, tok.max_token_length))
    out += np.asarray([rank[float(s)] for s in tok.scores], dtype="<u2").tobytes()
    out += bytes(offsets_at - len(out))
    out += np.asarray(offsets, dtype="<u4").tobytes()
    out += np.asarray(order, dtype="<u2").tobytes()
    assert len(out) == pieces_at
    return bytes(out + blob)


def group_scales(w: np.ndarray, group: int, limit: int) -> tuple[np.ndarray, int]:
    """Per-(row, group) step mantissas m < 2**15 and the tensor exponent E.

    The step of a group is max|w| / limit, stored as m * 2**-E with E chosen so the
    largest step uses all 15 bits.
    """
    rows, cols = w.shape
    groups = bf.n_groups(cols, group)
    amax = np.zeros((rows, groups))
    for g in range(groups):
        amax[:, g] = np.abs(w[:, g * group: (g + 1) * group]).max(axis=1)
    step = amax / limit
    biggest = step.max()
    if biggest == 0:
        return np.zeros((rows, groups), dtype=np.uint16), 0
    exponent = math.floor(math.log2(((1 << bf.SCALE_BITS) - 1) / biggest))
    m = np.clip(np.round(step * 2.0 ** exponent), 0, (1 << bf.SCALE_BITS) - 1)
    return m.astype(np.uint16), exponent


def gptq(w: np.ndarray, inputs: np.ndarray, group: int, refined: bool,
         damp: float) -> Quantized:
    """Quantize one matrix (rows = outputs) given calibration inputs (samples, cols)."""
    limit = bf.W_MAX if refined else bf.Q_MAX
    scales, exponent = group_scales(w, group, limit)
    cols = w.shape[1]
    step = np.repeat(scales.astype(np.float64), group, axis=1)[:, :cols] * 2.0 ** -exponent
    safe = np.where(step > 0, step, 1.0)

    h = inputs.T @ inputs
    h += damp * max(np.mean(np.diag(h)), 1e-12) * np.eye(cols)
    hinv = np.linalg.cholesky(np.linalg.inv(h)).T
    work = w.astype(np.float64).copy()
    q = np.zeros(w.shape, dtype=np.int64)
    for j in range(cols):
        qj = np.clip(np.round(work[:, j] / safe[:, j]), -limit, limit)
        qj = np.where(step[:, j] > 0, qj, 0)
        q[:, j] = qj
        err = (work[:, j] - qj * step[:, j]) / hinv[j, j]
        work[:, j + 1:] -= np.outer(err, hinv[j, j + 1:])
    return Quantized(q, scales, exponent, refined, q * step)


def encode_tensor(layers: list[Quantized]) -> list[tuple[int, bytes]]:
    """The parts (PART_Q8, [PART_R4], PART_SCALES) of a tensor's layers, as bytes."""
    w = np.stack([t.w for t in layers])
    refined = layers[0].refined
    if refined:
        q = (w + 8) // 16
        r = w - 16 * q
        q8 = (q + 128).astype(np.uint8)
        nib = (r + 8).astype(np.uint8)
        r4 = (nib[..., 0::2] | (nib[..., 1::2] << 4)).astype(np.uint8)
    else:
        q8 = (w + 128).astype(np.uint8)
    parts = [(bf.PART_Q8, q8.tobytes())]
    if refined:
        parts.append((bf.PART_R4, r4.tobytes()))
    scales = np.stack([t.scales for t in layers]).astype("<u2")
    parts.append((bf.PART_SCALES, scales.tobytes()))
    return parts


def rope_table(seq_len: int, head_size: int) -> bytes:
    cos, sin = floatmodel.rope_tables(seq_len, head_size)
    one = 1 << bf.ROPE_BITS
    table = np.stack([np.round(cos * one), np.round(sin * one)], axis=-1)
    return table.astype("<i2").tobytes()


def exp2_table() -> bytes:
    i = np.arange(bf.EXP_TABLE_STEPS + 1)
    return np.round(2.0 ** 30 * 2.0 ** (-i / bf.EXP_TABLE_STEPS)).astype("<i4").tobytes()


class _Calibrator:
    """Runs the float model with some tensors replaced, collecting one site's inputs."""

    def __init__(self, ckpt: Checkpoint, stories: list[list[int]]):
        self.ckpt = ckpt
        self.stories = stories
        self.replaced: dict[str, np.ndarray] = {}

    def inputs(self, site: str, layer: int) -> np.ndarray:
        seen = []

        def hook(name, l, x):
            if (name, l) == (site, layer):
                seen.append(x)

        for story in self.stories:
            floatmodel.forward(self.ckpt, story, self.replaced, hook, stop=(site, layer))
        return np.concatenate(seen)

    def replace(self, name: str, layer: int | None, value: np.ndarray) -> None:
        base = self.replaced.get(name)
        if base is None:
            base = np.array(self.ckpt.weights[name], dtype=np.float64)
        if layer is None:
            base = value
        else:
            base[layer] = value
        self.replaced[name] = base


def quantize_int8(ckpt: Checkpoint, tok: Tokenizer, opt: Options = Options()):
    """The header and sections of an int8 blob for `ckpt`."""
    c = ckpt.config
    h = bf.Header(bf.SCHEME_Q8, opt.group_size, opt.act_bits, c.dim, c.hidden_dim,
                  c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len)
    bf.check_config(h)
    w = ckpt.weights
    k = c.dim.bit_length()
    norm_fold = math.sqrt(c.dim / (1 << k))  # the firmware's norm leaves out sqrt(n/2**k)

    log.info("sampling %d calibration stories", opt.calibration_stories)
    stories = floatmodel.sample_stories(ckpt, opt.calibration_stories, opt.calibration_length,
                                        opt.seed)
    cal = _Calibrator(ckpt, stories)
    quantized: dict[str, list[Quantized]] = {}

    def run(name: str, matrix: np.ndarray, inputs: np.ndarray) -> Quantized:
        return gptq(matrix, inputs, opt.group_size, name in opt.refine, opt.damp)

    # The classifier first: when shared, the embedding lookups of every layer use it too.
    final = np.asarray(w["rms_final"], dtype=np.float64)
    classifier = np.asarray(ckpt.classifier, dtype=np.float64)
    cls_name = "emb" if ckpt.shared_classifier else "cls"
    qc = run(cls_name, classifier, cal.inputs("cls", 0))
    quantized[cls_name] = [qc]
    cal.replace(cls_name, None, qc.dequantized)
    if not ckpt.shared_classifier:
        rows = np.asarray(w["emb"], dtype=np.float64)
        qe = run("emb", rows, np.eye(c.dim))
        quantized["emb"] = [qe]
        cal.replace("emb", None, qe.dequantized)

    for l in range(c.n_layers):
        log.info("quantizing layer %d of %d", l + 1, c.n_layers)
        g_att = np.asarray(w["rms_att"][l], dtype=np.float64) * norm_fold
        g_ffn = np.asarray(w["rms_ffn"][l], dtype=np.float64) * norm_fold
        folds = {"wq": g_att / math.sqrt(c.head_size), "wk": g_att, "wv": g_att,
                 "wo": None, "w1": g_ffn, "w3": g_ffn, "w2": None}
        for site, names in (("qkv", ("wq", "wk", "wv")), ("wo", ("wo",)),
                            ("w13", ("w1", "w3")), ("w2", ("w2",))):
            inputs = cal.inputs(site, l)
            for name in names:
                fold = folds[name]
                matrix = np.asarray(w[name][l], dtype=np.float64)
                if fold is not None:
                    matrix = matrix * fold[None, :]
                    scaled_inputs = inputs / np.where(norm_fold > 0, norm_fold, 1.0)
                else:
                    scaled_inputs = inputs
                qt = run(name, matrix, scaled_inputs)
                quantized.setdefault(name, []).append(qt)
                unfolded = qt.dequantized
                if fold is not None:
                    unfolded = unfolded / np.where(fold != 0, fold, 1.0)[None, :]
                cal.replace(name, l, unfolded)

    gain = final * norm_fold
    gain_bits = 15
    while np.abs(np.round(gain * 2.0 ** gain_bits)).max() > 32767:
        gain_bits -= 1
    qk_bits = int(math.floor(math.log2(math.sqrt((1 << 30) / c.head_size) / math.sqrt(2))))
    qp = np.zeros(bf.qparams_count(h), dtype="<i4")
    qp[bf.P_EPS] = round(1e-5 * 2.0 ** 32 * c.dim / (1 << k))
    qp[bf.P_EMB_EXP] = quantized["emb"][0].exponent
    qp[bf.P_FINAL_GAIN_BITS] = gain_bits
    qp[bf.P_QK_CLAMP] = int(math.isqrt((1 << 30) // c.head_size))
    qp[bf.P_QK_BITS] = qk_bits
    qp[bf.P_CLS_EXP] = quantized[cls_name][0].exponent
    for l in range(c.n_layers):
        for i, name in enumerate(("wq", "wk", "wv", "wo", "w1", "w2", "w3")):
            qp[bf.P_LAYERS + bf.P_PER_LAYER * l + i] = quantized[name][l].exponent

    sections = [
        (bf.S_TOKENIZER, bf.T_BYTES, tokenizer_section(tok)),
        (bf.S_QPARAMS, bf.T_I32, qp.tobytes()),
        (bf.S_ROPE, bf.T_I16, rope_table(c.seq_len, c.head_size)),
        (bf.S_EXP2, bf.T_I32, exp2_table()),
        (bf.S_FINAL_GAIN, bf.T_I16, np.round(gain * 2.0 ** gain_bits).astype("<i2").tobytes()),
    ]
    types = {bf.PART_Q8: bf.T_U8, bf.PART_R4: bf.T_U8, bf.PART_SCALES: bf.T_U16}
    for name in ALL_KINDS:
        if name in quantized:
            for part, payload in encode_tensor(quantized[name]):
                sections.append((bf.section_id(_KIND_IDS[name], part), types[part], payload))
    return h, sections


def quantize_f32(ckpt: Checkpoint, tok: Tokenizer):
    """The header and sections of a float32 blob (the check mode)."""
    c = ckpt.config
    h = bf.Header(bf.SCHEME_F32, 0, 0, c.dim, c.hidden_dim, c.n_layers, c.n_heads,
                  c.n_kv_heads, c.vocab_size, c.seq_len)
    w = ckpt.weights

    def f32(a) -> bytes:
        return np.ascontiguousarray(a, dtype="<f4").tobytes()

    norms = f32(w["rms_att"]) + f32(w["rms_ffn"]) + f32(w["rms_final"])
    sections = [(bf.S_TOKENIZER, bf.T_BYTES, tokenizer_section(tok)),
                (bf.S_RMS_F32, bf.T_F32, norms)]
    for name in ALL_KINDS:
        if name == "cls" and ckpt.shared_classifier:
            continue
        sections.append((bf.section_id(_KIND_IDS[name], bf.PART_F32), bf.T_F32, f32(w[name])))
    return h, sections


def build(ckpt: Checkpoint, tok: Tokenizer, out: Path, dtype: str = "int8",
          options: Options = Options()) -> int:
    """Write the blob for `ckpt` to `out` (atomically); returns its size in bytes."""
    if dtype == "f32":
        header, sections = quantize_f32(ckpt, tok)
    else:
        header, sections = quantize_int8(ckpt, tok, options)
    return write_blob(out, header, sections)
