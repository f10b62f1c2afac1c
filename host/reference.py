"""The firmware's int8 arithmetic in numpy, step for step, with 32-bit headroom checks.

Every function here mirrors a firmware kernel (firmware/kernels.py) or a step of the
forward pass (firmware/llm.py) exactly: same shifts, same rounding, same saturation. The
arrays are int64 so that nothing can wrap silently; `_i32` checks that every product and
accumulator a kernel forms stays inside int32, as it must on the ESP32-S3, where viper
integers are 32 bits. Rows are token positions, so a whole sequence runs at once
(teacher forcing) and gives the same numbers as the firmware's one token at a time.
"""

from __future__ import annotations

import numpy as np

from .blobio import Blob
from .firmware_link import blobfmt as bf

MAXV = (1 << 30) - 1  # saturation bound of int32 activations (Q16 residual, logits)
_INT32 = (-(1 << 31), (1 << 31) - 1)
_POW2 = np.array([1 << i for i in range(63)], dtype=np.int64)
LOG2E_Q29 = round(1.4426950408889634 * (1 << 29))


class Overflow(AssertionError):
    """An intermediate left int32: the kernel would be wrong on a 32-bit board."""


def _i32(x, what: str):
    x = np.asarray(x)
    if x.size and (x.min() < _INT32[0] or x.max() > _INT32[1]):
        raise Overflow(f"{what} leaves int32: range [{x.min()}, {x.max()}]")
    return x


def bitlen(v) -> np.ndarray:
    """Number of bits of each non-negative integer (0 for 0)."""
    return np.searchsorted(_POW2, np.asarray(v, dtype=np.int64), side="right")


def clamp30(v):
    return np.clip(v, -MAXV, MAXV)


def rescale(v, sh):
    """round(v * 2**-sh), saturated to +-MAXV; sh may be negative (a left shift)."""
    v = np.asarray(v, dtype=np.int64)
    sh = np.broadcast_to(np.asarray(sh, dtype=np.int64), v.shape)
    _i32(v, "rescale input")
    out = np.zeros_like(v)
    pos = (sh > 0) & (sh <= 30)
    s = np.where(pos, sh, 1)
    out = np.where(pos, (v + (np.int64(1) << (s - 1))) >> s, out)
    out = np.where(sh == 0, v, out)
    n = np.where(sh < 0, -sh, 0)
    lim = np.where(n <= 30, MAXV >> np.minimum(n, 30), 0)
    left = np.where(np.abs(v) > lim, np.sign(v) * MAXV, v << np.minimum(n, 32))
    out = np.where(sh < 0, left, out)
    return clamp30(out)


def mul_q30(a, f):
    """floor(a * f / 2**30) for |a| < 2**30 and 0 <= f <= 2**30, in 15-bit halves."""
    a = np.asarray(a, dtype=np.int64)
    f = np.asarray(f, dtype=np.int64)
    if np.any(np.abs(a) >= 1 << 30) or np.any(f < 0) or np.any(f > 1 << 30):
        raise Overflow("mul_q30 operand out of range")
    ah, al = a >> 15, a & 32767
    fh, fl = f >> 15, f & 32767
    lo = _i32(ah * fl, "mul_q30 ah*fl") + _i32(al * fh, "mul_q30 al*fh") + ((al * fl) >> 15)
    return _i32(ah * fh, "mul_q30 ah*fh") + (_i32(lo, "mul_q30 middle") >> 15)


def div_pow2(p: int, d):
    """floor(2**p / d) for 0 < d < 2**30 and 30 <= p, capped at 2**30 - 1 (long division)."""
    d = np.asarray(d, dtype=np.int64)
    q, r = (1 << 30) // d, (1 << 30) % d
    for _ in range(p - 30):
        r = r << 1
        q = q << 1
        ge = r >= d
        r = np.where(ge, r - d, r)
        q = np.where(ge, q + 1, q)
        _i32(r, "div_pow2 remainder")
    return np.minimum(q, MAXV)


def isqrt_q16(ss):
    """floor(sqrt(ss * 2**16)) for 2**28 <= ss < 2**30, digit by digit in 32 bits."""
    ss = np.asarray(ss, dtype=np.int64)
    root = np.zeros_like(ss)
    rem = np.zeros_like(ss)
    for i in range(23):
        pair = (ss >> (28 - 2 * i)) & 3 if i < 15 else 0
        rem = (rem << 2) | pair
        trial = (root << 2) | 1
        root = root << 1
        ge = rem >= trial
        rem = np.where(ge, rem - trial, rem)
        root = np.where(ge, root | 1, root)
        _i32(rem, "isqrt remainder")
    return root


def exp_q30(y, table: np.ndarray):
    """2**30 * e**y for y <= 0 in Q16 (clamped at -2**22), from the 2**(-i/256) table."""
    y = np.maximum(np.asarray(y, dtype=np.int64), -(1 << 22))
    z = mul_q30(-y << 1, LOG2E_Q29)  # -y * log2(e), Q16
    n, f = z >> 16, z & 65535
    i, r = f >> 8, f & 255
    t0, t1 = table[i], table[i + 1]
    v = t0 - (_i32((t0 - t1) * r, "exp interpolation") >> 8)
    return np.where(n < 31, v >> np.minimum(n, 31), 0)


def sigmoid_q30(y, table: np.ndarray):
    """2**30 * sigmoid(y) for y in Q16: two 16-bit integer divisions."""
    y = np.asarray(y, dtype=np.int64)
    e = exp_q30(-np.minimum(np.abs(y), 1 << 22), table)
    d = 32768 + (e >> 15)
    q1, r1 = (1 << 30) // d, (1 << 30) % d
    sp = (q1 << 15) + _i32(r1 << 15, "sigmoid remainder") // d
    return np.where(y >= 0, sp, (1 << 30) - sp)


def to_act(x, bits: int):
    """Block floating point: x * 2**-s rounded into [-2**bits, 2**bits), per row; (a, s)."""
    x = np.asarray(x, dtype=np.int64)
    mx = np.abs(x).max(axis=-1, keepdims=True)
    s = np.maximum(bitlen(mx) - bits, 0)
    a = np.clip(rescale(x, s), -(1 << bits), (1 << bits) - 1)
    return a, s[..., 0]


def rms_factor(x, eps_q: int):
    """(F, t, s2) with 1/sqrt(ss) = F * 2**(t-44): the integer RMSNorm's scale, per row."""
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[-1]
    k = int(bitlen(n))
    mx = np.abs(x).max(axis=-1, keepdims=True)
    s2 = np.maximum(bitlen(mx) - 15, -7)
    xx = np.where(s2 >= 0, x >> np.maximum(s2, 0), x << np.maximum(-s2, 0))
    _i32(xx * xx, "rmsnorm square")
    ss = (xx * xx >> k).sum(axis=-1, keepdims=True)
    eps = np.where(s2 >= 0, eps_q >> np.minimum(2 * np.maximum(s2, 0), 62),
                   eps_q << np.maximum(-2 * s2, 0))
    ss = _i32(ss + eps, "rmsnorm sum of squares")
    t = np.zeros_like(ss)
    while np.any(ss < 1 << 28):
        small = ss < 1 << 28
        ss = np.where(small, ss << 2, ss)
        t = t + small
    f = div_pow2(52, isqrt_q16(ss))
    return f[..., 0], t[..., 0], s2[..., 0]


class Tensor:
    """One layer's weight matrix in blob form: stored bytes and group scales."""

    def __init__(self, q8: np.ndarray, r4: np.ndarray | None, scales: np.ndarray,
                 exponent: int, group: int):
        self.q8 = q8.astype(np.int64)  # (rows, cols): q + 128
        self.r4 = None
        if r4 is not None:
            nib = r4.astype(np.int64)
            self.r4 = np.stack([nib & 15, nib >> 4], axis=-1).reshape(q8.shape)
        self.scales = scales.astype(np.int64)  # (rows, groups)
        self.exponent = exponent
        self.group = group
        self.rows, self.cols = q8.shape
        self.groups = scales.shape[1]
        self.gs = int(bitlen(self.groups))

    @property
    def stored(self) -> np.ndarray:
        """The unsigned stored weight the kernel multiplies: 16*q_u + r_u, or q_u."""
        return self.q8 * 16 + self.r4 if self.r4 is not None else self.q8

    @property
    def bias(self) -> int:
        return bf.W_BIAS if self.r4 is not None else 128

    def weights(self) -> np.ndarray:
        """The signed integer weights w (16*q + r, or q)."""
        return self.stored - self.bias

    def matvec(self, a) -> np.ndarray:
        """acc[row] = sum over groups of (d * m) >> (15 + gs), d the group's dot product."""
        a = np.asarray(a, dtype=np.int64)  # (T, cols), signed activations
        w = self.stored
        acc = np.zeros((a.shape[0], self.rows), dtype=np.int64)
        for g in range(self.groups):
            sl = slice(g * self.group, min((g + 1) * self.group, self.cols))
            _i32(np.abs(w[:, sl]) @ np.abs(a[:, sl]).T, "matvec group partial sums")
            d_raw = a[:, sl] @ w[:, sl].T  # (T, rows)
            psa = _i32(self.bias * a[:, sl].sum(axis=1, keepdims=True), "group sum")
            d = _i32(d_raw - psa, "group dot")
            m = self.scales[:, g][None, :]
            hi = _i32((d >> 15) * m, "group scale high")
            lo = _i32((d & 32767) * m, "group scale low") >> 15
            acc = _i32(acc + (_i32(hi + lo, "group term") >> self.gs), "matvec accumulator")
        return acc

    def row_q16(self, row: int) -> np.ndarray:
        """An embedding row in Q16: w * m * 2**(16 - E), rounded."""
        w = self.weights()[row]
        m = np.repeat(self.scales[row], self.group)[: self.cols]
        return rescale(_i32(w * m, "embedding row"), self.exponent - 16)


class IntReference:
    """The firmware's forward pass, in numpy, for a SCHEME_Q8 blob."""

    def __init__(self, blob: Blob):
        h = blob.header
        if h.scheme != bf.SCHEME_Q8:
            raise ValueError("the integer reference runs int8 blobs")
        self.h = h
        self.bits = h.act_bits
        qp = blob.sections[bf.S_QPARAMS].astype(np.int64)
        self.eps = int(qp[bf.P_EPS])
        self.final_gain_bits = int(qp[bf.P_FINAL_GAIN_BITS])
        self.clamp = int(qp[bf.P_QK_CLAMP])
        self.exp2 = blob.sections[bf.S_EXP2].astype(np.int64)
        self.rope = blob.sections[bf.S_ROPE].astype(np.int64).reshape(
            h.seq_len, h.head_size // 2, 2)
        self.final_gain = blob.sections[bf.S_FINAL_GAIN].astype(np.int64)

        def tensor(kind, layer, exponent):
            q8 = blob.tensor(kind, bf.PART_Q8)[layer]
            r4 = blob.tensor(kind, bf.PART_R4)
            sc = blob.tensor(kind, bf.PART_SCALES)[layer]
            return Tensor(q8, None if r4 is None else r4[layer], sc, exponent, h.group_size)

        self.emb = tensor(bf.K_EMB, 0, int(qp[bf.P_EMB_EXP]))
        cls_kind = bf.K_CLS if blob.has(bf.section_id(bf.K_CLS, bf.PART_Q8)) else bf.K_EMB
        self.cls = tensor(cls_kind, 0, int(qp[bf.P_CLS_EXP]))
        self.layers = []
        for l in range(h.n_layers):
            base = bf.P_LAYERS + bf.P_PER_LAYER * l
            kinds = (bf.K_WQ, bf.K_WK, bf.K_WV, bf.K_WO, bf.K_W1, bf.K_W2, bf.K_W3)
            self.layers.append([tensor(k, l, int(qp[base + i])) for i, k in enumerate(kinds)])

    # -- the steps of the forward pass ----------------------------------------------------

    def normed_matvec(self, t: Tensor, a, s, norm, target_bits: int):
        """W (gain folded in) times RMSNorm(x), in Q(target_bits), from x's block form."""
        f, tt, s2 = norm
        ea = 16 - s
        acc = t.matvec(a)
        sh = -(17 + t.gs - t.exponent - ea[:, None] - s2[:, None] + tt[:, None] + target_bits)
        return rescale(mul_q30(acc, f[:, None]), sh)

    def to_heads(self, v, heads: int, limit_bits: int):
        """Per head block form with |v| <= 2**limit_bits - 1; returns (values, shifts)."""
        T = v.shape[0]
        hs = self.h.head_size
        v = v.reshape(T, heads, hs)
        return to_act(v, limit_bits)

    def apply_rope(self, v, positions):
        """Rotate pairs by the Q14 table of each row's position; result clamped."""
        T, heads, hs = v.shape
        cs = self.rope[positions]  # (T, hs/2, 2)
        c, s = cs[:, None, :, 0], cs[:, None, :, 1]
        a, b = v[..., 0::2], v[..., 1::2]
        half = 1 << (bf.ROPE_BITS - 1)
        ra = (_i32(a * c - b * s, "rope") + half) >> bf.ROPE_BITS
        rb = (_i32(a * s + b * c, "rope") + half) >> bf.ROPE_BITS
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = ra, rb
        return np.clip(out, -self.clamp, self.clamp)

    def attend(self, qh, sq, kk, sk, vv, sv):
        """Causal attention of every row over the rows before it: (out, vmax per row).

        qh (T, heads, hs) and kk (T, kv heads, hs) are rotated block values with shifts
        sq (T, heads) and sk (T,); vv (T, kv heads, hs) with shifts sv (T,). out is in
        units of 2**-(32 - vmax) per row, as the firmware's attention kernel gives it.
        """
        T, nh, hs = qh.shape
        rep = nh // kk.shape[1]
        pos = np.arange(T)
        causal = pos[None, :] <= pos[:, None]  # (query, key)
        svmax = np.array([sv[: p + 1].max() for p in range(T)])
        att = np.zeros((T, nh, hs), dtype=np.int64)
        for head in range(nh):
            kv = head // rep
            # The cache holds k + clamp and v + 16384 (no sign extension on the board):
            # the kernel's sums of those biased products must stay in int32 too.
            _i32(np.einsum("pj,tj->pt", np.abs(qh[:, head]), kk[:, kv] + self.clamp),
                 "biased score dot")
            dot = _i32(np.einsum("pj,tj->pt", qh[:, head], kk[:, kv]), "score dot")
            sh = 16 - sq[:, head][:, None] - sk[None, :]
            sc = np.clip(rescale(dot, sh), -(1 << 29), 1 << 29)
            sc = np.where(causal, sc, -(1 << 29))
            delta = sc - sc.max(axis=1, keepdims=True)
            p = np.where(causal, exp_q30(delta, self.exp2) >> 14, 0)
            f = div_pow2(46, p.sum(axis=1))
            pn = mul_q30(p, f[:, None])
            shift = svmax[:, None] - sv[None, :]
            _i32(pn * (vv[:, kv, :].max() + 16384), "biased attention product")
            for j in range(hs):
                prod = _i32(pn * vv[None, :, kv, j], "attention product")
                att[:, head, j] = _i32((np.where(causal, prod >> np.maximum(shift, 0), 0))
                                       .sum(axis=1), "attention sum")
        return att, svmax

    def forward_sequence(self, tokens: list[int], trace: dict | None = None) -> np.ndarray:
        """Q16 logits (len(tokens), vocab) with each position seeing those before it.

        With `trace`, the residual stream after each layer is recorded in it ("x0", ...).
        """
        h = self.h
        T, hs, nh, nkv = len(tokens), h.head_size, h.n_heads, h.n_kv_heads
        rep = nh // nkv
        pos = np.arange(T)
        x = np.stack([self.emb.row_q16(t) for t in tokens])

        for wq, wk, wv, wo, w1, w2, w3 in self.layers:
            norm = rms_factor(x, self.eps)
            a, s = to_act(x, self.bits)
            q = self.normed_matvec(wq, a, s, norm, 16)
            k = self.normed_matvec(wk, a, s, norm, 16)
            v = self.normed_matvec(wv, a, s, norm, 16)

            qh, sq = to_act(q.reshape(T, nh, hs), 13)  # (T, nh, hs), (T, nh)
            qh = self.apply_rope(qh, pos)
            kk, sk = to_act(k, 13)
            kk = self.apply_rope(kk.reshape(T, nkv, hs), pos)
            vv, sv = to_act(v, 14)
            vv = vv.reshape(T, nkv, hs)

            att, svmax = self.attend(qh, sq, kk, sk, vv, sv)
            a, s_o = to_act(att.reshape(T, -1), self.bits)
            ea = 32 - svmax - s_o
            acc = wo.matvec(a)
            x = clamp30(x + rescale(acc, -(31 + wo.gs - wo.exponent - ea[:, None])))

            norm = rms_factor(x, self.eps)
            a, s = to_act(x, self.bits)
            h1 = self.normed_matvec(w1, a, s, norm, 16)
            h3 = self.normed_matvec(w3, a, s, norm, 16)
            silu = mul_q30(h1, sigmoid_q30(h1, self.exp2))
            s1 = np.maximum(bitlen(np.abs(silu).max(axis=1, keepdims=True)) - 15, 0)
            s3 = np.maximum(bitlen(np.abs(h3).max(axis=1, keepdims=True)) - 15, 0)
            prod = _i32((silu >> s1) * (h3 >> s3), "swiglu product")
            a, s_p = to_act(prod, self.bits)
            ea = 32 - s1[:, 0] - s3[:, 0] - s_p
            acc = w2.matvec(a)
            x = clamp30(x + rescale(acc, -(31 + w2.gs - w2.exponent - ea[:, None])))
            if trace is not None:
                trace[f"x{len(trace)}"] = x.copy()

        norm = rms_factor(x, self.eps)
        a, s = to_act(x, self.bits)
        u = _i32(a * self.final_gain[None, :], "final gain")
        a2, s_u = to_act(u, self.bits)
        ea = 16 + self.final_gain_bits - s - s_u
        f, tt, s2 = norm
        acc = self.cls.matvec(a2)
        sh = -(17 + self.cls.gs - self.cls.exponent - ea[:, None] - s2[:, None]
               + tt[:, None] + 16)
        return rescale(mul_q30(acc, f[:, None]), sh)


# -- the sampler ------------------------------------------------------------------------

class Rng:
    """run.c's xorshift64* generator."""

    def __init__(self, seed: int):
        self.state = seed % (1 << 64)

    def u32(self) -> int:
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) % (1 << 64)
        s ^= s >> 27
        self.state = s
        return (s * 0x2545F4914F6CDD1D) % (1 << 64) >> 32


def fixed16(value: float) -> int:
    return int(value * 65536 + 0.5)


class IntSampler:
    """firmware/sampler.py's IntSampler: integer temperature and top-p sampling."""

    def __init__(self, vocab: int, temperature: float, topp: float, seed: int,
                 table: np.ndarray):
        self.n = vocab
        self.t16 = fixed16(temperature) if temperature > 0 else 0
        self.p16 = max(1, fixed16(topp)) if 0 < topp < 1 else 0
        if self.p16 >= 65536:
            self.p16 = 0
        self.rng = Rng(seed)
        self.table = table
        if self.t16:
            f, sh = (65536 << 30) // self.t16, 0
            while f >= 1 << 30:
                f, sh = f >> 1, sh - 1
            while f < 1 << 29:
                f, sh = f << 1, sh + 1
            self.f, self.sh = f, sh

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        z = np.maximum(logits.astype(np.int64) - logits.max(), -MAXV)
        y = rescale(mul_q30(z, self.f), self.sh)
        return exp_q30(y, self.table) >> 14

    def sample(self, logits: np.ndarray) -> int:
        if not self.t16:
            return int(np.argmax(logits))
        p = [int(v) for v in self.probabilities(logits)]
        total = sum(p)
        coin = self.rng.u32() >> 8
        if not self.p16:
            r, cdf = (coin * total) >> 24, 0
            for i, v in enumerate(p):
                cdf += v
                if r < cdf:
                    return i
            return self.n - 1
        num, den = (65536 - self.p16) * total, (self.n - 1) * 65536
        cut = (num + den - 1) // den
        picked = sorted((i for i in range(self.n) if p[i] >= cut), key=lambda i: (-p[i], i))
        cum, last = 0, len(picked) - 1
        for j, i in enumerate(picked):
            cum += p[i]
            if cum * 65536 > self.p16 * total:
                last = j
                break
        r, cdf = (coin * cum) >> 24, 0
        for i in picked[: last + 1]:
            cdf += p[i]
            if r < cdf:
                return i
        return picked[last]


def generate(model: IntReference, tokens: list[int], steps: int, sampler: IntSampler,
             bos: int = 1) -> list[int]:
    """The token ids the firmware's generate() emits (BOS and prompt first), run.c's loop."""
    out = [tokens[0]]
    pos = 0
    while pos < steps:
        logits = model.forward_sequence(out)[-1]
        nxt = tokens[pos + 1] if pos < len(tokens) - 1 else sampler.sample(logits)
        pos += 1
        if nxt == bos:
            break
        out.append(nxt)
    return out
