"""The float32 check mode: run.c's forward pass and sampler in floating point.

    import llm
    model = llm.load("/models/stories260K-f32.mlb")   # a float32 blob loads this module

This mode holds the weights as float32 (four times the int8 blob) and is slow; it exists
to check the whole pipeline (blob, tokenizer, sampler, generate) against run.c's own
stories. Values are stored into array('f') where run.c stores a float, so they are
rounded to float32 where run.c rounds them.
"""

import gc
from array import array
from math import cos, exp, sin

import blobfmt as bf
import kernels
import kernels_f32
from sampler import Rng


class F32Transformer:
    """run.c's forward pass in floating point, from a float32 blob (the check mode)."""

    def __init__(self, blob, steps):
        h = self.h = blob.header
        self.steps = steps
        self.w = {}
        shapes = bf.tensor_shapes(h, not blob.has(bf.section_id(bf.K_CLS, bf.PART_F32)))
        for kind, layers, rows, cols in shapes:
            self.w[kind] = _floats(blob, bf.section_id(kind, bf.PART_F32))
            gc.collect()
        if bf.K_CLS not in self.w:
            self.w[bf.K_CLS] = self.w[bf.K_EMB]
        self.norms = _floats(blob, bf.S_RMS_F32)

        dim, hidden, kv = h.dim, h.hidden_dim, h.kv_dim
        self.x = array("f", bytes(4 * dim))
        self.xb = array("f", bytes(4 * dim))
        self.xb2 = array("f", bytes(4 * dim))
        self.q = array("f", bytes(4 * dim))
        self.k = array("f", bytes(4 * kv))
        self.v = array("f", bytes(4 * kv))
        self.hb = array("f", bytes(4 * hidden))
        self.hb2 = array("f", bytes(4 * hidden))
        self.att = array("f", bytes(4 * steps))
        self.logits = array("f", bytes(4 * h.vocab_size))
        self.kcache = array("f", bytes(4 * h.n_layers * steps * kv))
        self.vcache = array("f", bytes(4 * h.n_layers * steps * kv))
        self.cos_sin = array("f", bytes(4 * h.head_size))
        # run.c's RoPE frequencies, in float32: 1 / 10000**(i / head_size)
        self.freq = array("f", bytes(2 * h.head_size))
        for i in range(0, h.head_size, 2):
            exponent = _f32(i / h.head_size)
            self.freq[i // 2] = 1.0 / _f32(10000.0 ** exponent)

    def forward(self, token, pos):
        h, F = self.h, kernels_f32
        w, dim, hidden, kv, hs = self.w, h.dim, h.hidden_dim, h.kv_dim, h.head_size
        x, xb, xb2 = self.x, self.xb, self.xb2
        for i in range(dim):
            x[i] = w[bf.K_EMB][token * dim + i]
        cs = self.cos_sin
        for f in range(hs // 2):
            angle = _f32(pos * self.freq[f])
            cs[2 * f] = cos(angle)
            cs[2 * f + 1] = sin(angle)

        L = h.n_layers
        for l in range(L):
            F.rmsnorm(xb, x, self.norms, l * dim, dim)
            F.matvec(self.q, w[bf.K_WQ], xb, dim, dim, l * dim * dim)
            F.matvec(self.k, w[bf.K_WK], xb, kv, dim, l * kv * dim)
            F.matvec(self.v, w[bf.K_WV], xb, kv, dim, l * kv * dim)
            F.rope(self.q, dim, hs, cs)
            F.rope(self.k, kv, hs, cs)
            base = (l * self.steps + pos) * kv
            for i in range(kv):
                self.kcache[base + i] = self.k[i]
                self.vcache[base + i] = self.v[i]
            F.attention(xb, self.q, self.kcache, self.vcache, self.att, pos, h.n_heads,
                        h.n_heads // h.n_kv_heads, hs, kv, l * self.steps * kv)
            F.matvec(xb2, w[bf.K_WO], xb, dim, dim, l * dim * dim)
            F.add(x, xb2, dim)
            F.rmsnorm(xb, x, self.norms, (L + l) * dim, dim)
            F.matvec(self.hb, w[bf.K_W1], xb, hidden, dim, l * hidden * dim)
            F.matvec(self.hb2, w[bf.K_W3], xb, hidden, dim, l * hidden * dim)
            F.swiglu(self.hb, self.hb2, hidden)
            F.matvec(xb, w[bf.K_W2], self.hb, dim, hidden, l * dim * hidden)
            F.add(x, xb, dim)
        F.rmsnorm(x, x, self.norms, 2 * L * dim, dim)
        F.matvec(self.logits, w[bf.K_CLS], x, h.vocab_size, dim, 0)
        return self.logits


class FloatSampler:
    """run.c's sampler in floating point, for the float32 check mode."""

    def __init__(self, vocab_size, temperature=0.0, topp=0.9, seed=0):
        self.n = vocab_size
        self.temperature = _f32(temperature)
        self.topp = _f32(topp)
        self.rng = Rng(seed)
        self._r = array("f", [0.0])

    def _round(self, value):
        r = self._r
        r[0] = value
        return r[0]

    def sample(self, logits):
        n = self.n
        if self.temperature == 0.0:
            best = 0
            for i in range(1, n):
                if logits[i] > logits[best]:
                    best = i
            return best
        rd = self._round
        for i in range(n):
            logits[i] = logits[i] / self.temperature
        top = logits[0]
        for i in range(1, n):
            if logits[i] > top:
                top = logits[i]
        total = 0.0
        for i in range(n):
            logits[i] = exp(rd(logits[i] - top))
            total = rd(total + logits[i])
        for i in range(n):
            logits[i] = logits[i] / total
        coin = self.rng.coin24() / 16777216.0
        if self.topp <= 0 or self.topp >= 1:
            cdf = 0.0
            for i in range(n):
                cdf = rd(cdf + logits[i])
                if coin < cdf:
                    return i
            return n - 1
        cutoff = rd(rd(1.0 - self.topp) / (n - 1))
        picked = [i for i in range(n) if logits[i] >= cutoff]
        picked.sort(key=lambda i: (-logits[i], i))
        cum, last = 0.0, len(picked) - 1
        for j in range(len(picked)):
            cum = rd(cum + logits[picked[j]])
            if cum > self.topp:
                last = j
                break
        r = rd(coin * cum)
        cdf = 0.0
        for j in range(last + 1):
            cdf = rd(cdf + logits[picked[j]])
            if r < cdf:
                return picked[j]
        return picked[last]


def _floats(blob, sid):
    """A float32 section as an array('f'), its bytes released from the blob."""
    section = blob.sections.pop(sid)
    out = array("f", bytes(len(section)))
    kernels.copy_bytes(out, section, len(section))
    return out


def _f32(value):
    return array("f", [value])[0]
