"""The storyteller's engine: a llama2 transformer from a blob, and the generate loop.

    import llm
    model = llm.load("/models/stories260K.mlb", steps=256)
    stats = llm.generate(model, "Once upon a time", steps=256, temperature=0.0)

`generate` streams the story as it is written and returns its figures. The int8 blob
runs on integer kernels (kernels.py) that give the same tokens on the board as in the
simulator; a float32 blob runs run.c's float arithmetic (kernels_f32.py) as a check.
All run-time memory is allocated when the model is loaded; greedy decoding allocates
nothing per token.
"""

import gc
import sys
import time
from array import array

from micropython import const

import blobfmt as bf
import kernels
from blob import Blob
from sampler import IntSampler
from sampler import check as sampler_check
from tokenizer import BOS, Tokenizer

_QK_LIMIT = const(8191)  # q, k before RoPE in 13-bit block form
_V_LIMIT = const(16383)  # v in 14-bit block form
_V_BIAS = const(16384)  # the cache holds v + 16384 (and k + the q/k clamp)
_LAYER_KINDS = (bf.K_WQ, bf.K_WK, bf.K_WV, bf.K_WO, bf.K_W1, bf.K_W2, bf.K_W3)


def _bits(n):
    b = 0
    while n >> b:
        b += 1
    return b


class Tensor:
    """A weight tensor of an int8 blob: its sections and where each layer starts."""

    def __init__(self, blob, kind, layers, rows, cols):
        h = blob.header
        self.q8 = blob.section(bf.section_id(kind, bf.PART_Q8))
        rid = bf.section_id(kind, bf.PART_R4)
        self.r4 = blob.section(rid) if blob.has(rid) else None
        if self.r4 is None:
            import kernels_q8  # a plain int8 tensor: load its kernel only now
            self.matvec8 = kernels_q8.matvec8
        self.scales = blob.section(bf.section_id(kind, bf.PART_SCALES))
        self.rows = rows
        self.cols = cols
        groups = bf.n_groups(cols, h.group_size)
        self.gs = _bits(groups)
        self.q_step = rows * cols
        self.s_step = rows * groups

    def matvec(self, out, act, gsum, layer):
        if self.r4 is not None:
            kernels.matvec12(out, self.q8, self.r4, self.scales, act, gsum, self.rows,
                             self.cols, layer * self.q_step, layer * self.s_step, self.gs)
        else:
            self.matvec8(out, self.q8, self.scales, act, gsum, self.rows, self.cols,
                         layer * self.q_step, layer * self.s_step, self.gs)


class Transformer:
    """The int8 forward pass; logits are int32 in Q16 (logits buffer, bytearray)."""

    def __init__(self, blob, steps):
        h = self.h = blob.header
        self.steps = steps
        qp = blob.int32s(bf.S_QPARAMS)
        self.eps = qp[bf.P_EPS]
        self.emb_exp = qp[bf.P_EMB_EXP]
        self.cls_exp = qp[bf.P_CLS_EXP]
        self.gain_bits = qp[bf.P_FINAL_GAIN_BITS]
        self.clamp = qp[bf.P_QK_CLAMP]
        self.exps = [qp[bf.P_LAYERS + bf.P_PER_LAYER * l:bf.P_LAYERS + bf.P_PER_LAYER * l + 7]
                     for l in range(h.n_layers)]
        self.rope = blob.section(bf.S_ROPE)
        self.exp2 = blob.section(bf.S_EXP2)
        self.final_gain = blob.section(bf.S_FINAL_GAIN)

        dim, hidden, kv = h.dim, h.hidden_dim, h.kv_dim
        self.kv_dim = kv
        self.head_size = h.head_size
        shapes = {k: (rows, cols) for k, _, rows, cols in bf.tensor_shapes(h, False)}
        self.w = [Tensor(blob, k, h.n_layers, *shapes[k]) for k in _LAYER_KINDS]
        self.emb = Tensor(blob, bf.K_EMB, 1, *shapes[bf.K_EMB])
        cls_id = bf.section_id(bf.K_CLS, bf.PART_Q8)
        self.cls = Tensor(blob, bf.K_CLS, 1, *shapes[bf.K_CLS]) if blob.has(cls_id) \
            else self.emb

        # The run state: every buffer the forward pass touches, allocated once.
        wide = max(dim, hidden)
        self.x = bytearray(4 * dim)
        self.act = bytearray(2 * wide)
        self.gsum = bytearray(4 * bf.n_groups(wide, h.group_size))
        self.acc = bytearray(4 * max(wide, h.vocab_size, steps))
        self.q = bytearray(4 * dim)
        self.k = bytearray(4 * kv)
        self.v = bytearray(4 * kv)
        self.att = bytearray(4 * dim)
        self.h1 = bytearray(4 * hidden)
        self.h3 = self.acc  # w3's output is scaled in place and used before w2 needs acc
        self.logits = self.acc  # the classifier's output is scaled in place
        self.scores = self.acc  # attention's scores: acc is free between matvecs
        self.kcache = bytearray(2 * h.n_layers * steps * kv)
        self.vcache = bytearray(2 * h.n_layers * steps * kv)
        self.kshift = bytearray(h.n_layers * steps)
        self.vshift = bytearray(h.n_layers * steps)
        self.qshift = array("i", [0] * h.n_heads)
        self.regs = array("i", [0, 0, 0])
        self.cfg = array("i", [0, h.n_heads, h.n_heads // h.n_kv_heads, h.head_size, kv,
                               0, 0, 0, self.clamp])

    def forward(self, token, pos):
        # (Plain assignments: unpacking more than three values would build a tuple.)
        h = self.h
        K = kernels
        dim = h.dim
        hidden = h.hidden_dim
        kv = self.kv_dim
        hs = self.head_size
        x = self.x
        act = self.act
        gsum = self.gsum
        acc = self.acc
        regs = self.regs
        wq, wk, wv, wo, w1, w2, w3 = self.w

        emb = self.emb
        refined = emb.r4 is not None
        K.embed(x, emb.q8, emb.r4 if refined else emb.q8, emb.scales, token * dim,
                token * (emb.s_step // h.vocab_size), dim, self.emb_exp - 16, 1 if refined else 0)

        for l in range(h.n_layers):
            e_q, e_k, e_v, e_o, e_1, e_2, e_3 = self.exps[l]
            slot = l * self.steps + pos

            # attention: RMSNorm, q k v, RoPE, the KV cache, softmax over positions
            base = self._normalize()
            self._normed(wq, l, self.q, dim, base + e_q)
            self._normed(wk, l, self.k, kv, base + e_k)
            self._normed(wv, l, self.v, kv, base + e_v)
            K.block_heads(self.q, dim, hs, _QK_LIMIT, self.qshift)
            K.rope(self.q, 0, dim, self.rope, pos * hs, hs >> 1, self.clamp)
            K.block_heads(self.k, kv, kv, _QK_LIMIT, regs)
            self.kshift[slot] = regs[0]
            K.rope(self.k, 0, kv, self.rope, pos * hs, hs >> 1, self.clamp)
            K.block_heads(self.v, kv, kv, _V_LIMIT, regs)
            self.vshift[slot] = regs[0]
            K.store16(self.kcache, slot * kv, self.k, 0, kv, self.clamp)
            K.store16(self.vcache, slot * kv, self.v, 0, kv, _V_BIAS)

            cfg = self.cfg
            vmax = K.max_shift(self.vshift, l * self.steps, pos + 1)
            cfg[0] = pos
            cfg[5] = l * self.steps * kv
            cfg[6] = l * self.steps
            cfg[7] = vmax
            K.attention(self.att, self.q, self.qshift, self.kcache, self.vcache, self.kshift,
                        self.vshift, self.scores, self.exp2, cfg)
            s = K.to_act(act, gsum, self.att, 0, dim)
            wo.matvec(acc, act, gsum, l)
            K.scale_out(x, 0, acc, dim, 0, e_o - wo.gs + 1 - vmax - s, 1)

            # feed-forward: RMSNorm, w1 and w3, SwiGLU, w2
            base = self._normalize()
            self._normed(w1, l, self.h1, hidden, base + e_1)
            self._normed(w3, l, self.h3, hidden, base + e_3)
            shift = K.swiglu(self.h1, self.h3, hidden, self.exp2)
            s = K.to_act(act, gsum, self.h1, 0, hidden)
            w2.matvec(acc, act, gsum, l)
            K.scale_out(x, 0, acc, dim, 0, e_2 - w2.gs + 1 - shift - s, 1)

        # final RMSNorm (its gain applied to the activations: the classifier is shared)
        base = self._normalize()
        K.apply_gain(acc, act, self.final_gain, dim)
        s_u = K.to_act(act, gsum, acc, 0, dim)
        self._normed(self.cls, 0, self.logits, h.vocab_size,
                     base + self.cls_exp + self.gain_bits - s_u)
        return self.logits

    def _normalize(self):
        """RMSNorm's scale of x into regs and x in block form into act; returns the part
        of the output shift that comes from them."""
        regs = self.regs
        kernels.rms_factor(self.x, self.h.dim, self.eps, regs)
        s = kernels.to_act(self.act, self.gsum, self.x, 0, self.h.dim)
        return regs[2] - regs[1] - 17 - s

    def _normed(self, tensor, layer, out, n, sh):
        """out = W . RMSNorm(x) (gain folded into W) in Q16; sh = base + the exponent."""
        tensor.matvec(self.acc, self.act, self.gsum, layer)
        kernels.scale_out(out, 0, self.acc, n, self.regs[0], sh - tensor.gs, 0)


# ----------------------------------------------------------------------------------------
# Loading and generating

def load(path, steps=None):
    """The model in the blob at `path`, with a KV cache for `steps` positions (default:
    the model's whole context)."""
    try:
        with open(path, "rb") as f:
            h = bf.parse_header(f.read(bf.HEADER_SIZE))
    except OSError:
        raise bf.BlobError("no model blob at %s: deploy one, or give its path" % path)
    if steps is None:
        steps = h.seq_len
    if not 0 < steps <= h.seq_len:
        raise ValueError("steps must be between 1 and %d (the model's context), not %d"
                         % (h.seq_len, steps))
    # The RoPE table is held only for the positions a story can reach.
    blob = Blob(path, keep={bf.S_ROPE: 2 * steps * h.head_size})
    h = blob.header
    tok = Tokenizer(blob.section(bf.S_TOKENIZER))
    if tok.vocab_size != h.vocab_size:
        raise ValueError("the blob's tokenizer has %d pieces but the model %d: rebuild the "
                         "blob with the model's own tokenizer" % (tok.vocab_size, h.vocab_size))
    if h.scheme == bf.SCHEME_Q8:
        model = Transformer(blob, steps)
    else:
        from llm_f32 import F32Transformer
        model = F32Transformer(blob, steps)
    model.tok = tok
    model.scheme = bf.SCHEME_NAMES[h.scheme]
    gc.collect()
    return model


class Emitter:
    """Writes each token's text as soon as it is decoded, without allocating.

    As run.c: a piece's leading space is dropped after BOS, "<0xXX>" pieces are the byte
    they name, and a lone byte that is neither printable nor white space is dropped.
    Where run.c drops bytes of 0x80 and above, the emitter assembles them into whole
    UTF-8 characters instead (and drops what cannot be one).
    """

    def __init__(self, tok, out):
        self.tok = tok
        self.out = out
        self.bufs = [bytearray(n) for n in range(tok.max_token_length + 1)]
        self.utf8 = [bytearray(n) for n in range(5)]
        self.pending = bytearray(4)
        self.have = 0
        self.need = 0

    def write(self, prev, token):
        tok = self.tok
        data = tok.data
        start = tok.pieces_at + kernels.u32_at(data, tok.offsets_at + 4 * token)
        end = tok.pieces_at + kernels.u32_at(data, tok.offsets_at + 4 * token + 4)
        if end - start == 6 and data[start] == 0x3C and data[start + 1] == 0x30 \
                and data[start + 2] == 0x78 and data[start + 5] == 0x3E:
            hi = _hex(data[start + 3])
            lo = _hex(data[start + 4])
            if hi >= 0 and lo >= 0:
                self._byte(hi * 16 + lo)
                return
        if prev == BOS and end > start and data[start] == 0x20:
            start += 1
        n = end - start
        if n == 0:
            return
        if n == 1 and not _printable(data[start]):
            return
        self.have = 0
        buf = self.bufs[n]
        for i in range(n):
            buf[i] = data[start + i]
        self.out.write(buf)

    def _byte(self, b):
        if b < 0x80:
            self.have = 0
            if _printable(b):
                buf = self.bufs[1]
                buf[0] = b
                self.out.write(buf)
        elif b >= 0xC0 and b < 0xF8:
            self.pending[0] = b
            self.have = 1
            self.need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
        elif b < 0xC0 and self.have:
            self.pending[self.have] = b
            self.have += 1
            if self.have == self.need:
                buf = self.utf8[self.need]
                for i in range(self.need):
                    buf[i] = self.pending[i]
                self.out.write(buf)
                self.have = 0
        else:
            self.have = 0


def _hex(c):
    """The value of an ASCII hex digit, or -1."""
    if 0x30 <= c <= 0x39:
        return c - 0x30
    if 0x41 <= c <= 0x46:
        return c - 0x37
    if 0x61 <= c <= 0x66:
        return c - 0x57
    return -1


def _printable(b):
    return 0x20 <= b < 0x7F or 0x09 <= b <= 0x0D


class Stats:
    """What a generation did: tokens, speed, heap, and the seed to tell it again."""

    def __init__(self):
        self.positions = 0
        self.stop = "steps"
        self.seconds = 0.0
        self.tok_s = 0.0
        self.ms_per_token = 0.0
        self.heap_used = 0
        self.heap_free = 0
        self.alloc_per_token = 0
        self.seed = 0

    def line(self):
        return ("%d tokens, %.1f tok/s, %.2f ms/token, heap %d used %d free, "
                "%d bytes allocated per token, seed %d" % (
                    self.positions, self.tok_s, self.ms_per_token, self.heap_used,
                    self.heap_free, self.alloc_per_token, self.seed))


def generate(model, prompt="", steps=256, temperature=0.0, topp=0.9, seed=None, out=None):
    """Tell a story: stream its text to `out` (default stdout) and return its Stats.

    Steps count positions as run.c counts them, the prompt included; generation stops
    early at BOS. The text written is what run.c prints: the prompt, the story, "\\n".
    """
    h = model.h
    if not 0 < steps <= model.steps:
        raise ValueError("steps must be between 1 and %d, not %d" % (model.steps, steps))
    if isinstance(prompt, str):
        prompt = prompt.encode()
    if len(prompt) > h.seq_len * model.tok.max_token_length:
        # More tokens than the context whatever the merges: refuse before encoding.
        raise ValueError("the prompt is %d bytes: more than the model's context of %d "
                         "tokens holds" % (len(prompt), h.seq_len))
    tokens = model.tok.encode(prompt)
    if len(tokens) > h.seq_len:
        raise ValueError("the prompt is %d tokens; the model's context holds %d"
                         % (len(tokens), h.seq_len))
    sampler_check(temperature, topp)
    if seed is None or seed == 0:
        seed = (time.ticks_us() ^ int(time.time())) & 0x7FFFFFFF or 1
    if model.scheme == "f32":
        from llm_f32 import FloatSampler
        sampler = FloatSampler(h.vocab_size, temperature, topp, seed)
    else:
        sampler = IntSampler(h.vocab_size, temperature, topp, seed, model.exp2)
    if out is None:
        out = getattr(sys.stdout, "buffer", sys.stdout)
    emitter = Emitter(model.tok, out)
    stats = Stats()
    stats.seed = seed

    gc.collect()
    n_prompt = len(tokens)
    token = tokens[0]
    pos = 0
    started = time.ticks_us()
    first = started
    alloc_first = 0
    while pos < steps:
        logits = model.forward(token, pos)
        if pos < n_prompt - 1:
            following = tokens[pos + 1]
        else:
            following = sampler.sample(logits)
        pos += 1
        if following == BOS:
            stats.stop = "bos"
            break
        emitter.write(token, following)
        token = following
        if pos == 1:
            first = time.ticks_us()
            alloc_first = gc.mem_alloc()
    finished = time.ticks_us()
    alloc_last = gc.mem_alloc()
    out.write(b"\n")

    stats.positions = pos
    stats.seconds = time.ticks_diff(finished, started) / 1e6
    if pos > 1:
        elapsed = time.ticks_diff(finished, first)
        stats.ms_per_token = elapsed / 1000 / (pos - 1)
        stats.tok_s = (pos - 1) * 1e6 / elapsed if elapsed > 0 else 0.0
        stats.alloc_per_token = max(0, alloc_last - alloc_first) // (pos - 1)
    gc.collect()  # what stays in use, after the float mode's garbage
    stats.heap_used = gc.mem_alloc()
    stats.heap_free = gc.mem_free()
    return stats
