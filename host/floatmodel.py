"""The checkpoint's own arithmetic in numpy (float64): calibration and comparisons.

This is llama2.c's forward pass over a whole token sequence at once (causal attention),
used by the quantizer to collect the activations each weight tensor sees and to sample
calibration stories, and by tests to check the checkpoint reader against run.c's logits.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .checkpoint import Checkpoint

Hook = Callable[[str, int, np.ndarray], None]


def rope_tables(positions: int, head_size: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of run.c's RoPE angles (computed in float32 as run.c does)."""
    f32 = np.float32
    i = np.arange(0, head_size, 2).astype(f32)
    freq = (f32(1.0) / np.power(f32(10000.0), i / f32(head_size))).astype(f32)
    angle = (np.arange(positions, dtype=f32)[:, None] * freq[None, :]).astype(f32)
    return np.cos(angle.astype(np.float64)), np.sin(angle.astype(np.float64))


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)


def rmsnorm(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return gain * normalize(x)


def forward(ckpt: Checkpoint, tokens: list[int], weights: dict | None = None,
            hook: Hook | None = None, stop: tuple[str, int] | None = None):
    """Logits (len(tokens), vocab) for a sequence; `weights` overrides checkpoint tensors.

    hook(name, layer, x) sees the input of each matrix multiply: "qkv" and "w13" (the
    normalized x before its gain is applied, as the quantizer folds gains into the
    weights), "wo", "w2" and "cls" (the final norm's output, gain applied). With
    stop=(name, layer) the pass ends after that hook, for calibration.
    """
    c = ckpt.config
    w = dict(ckpt.weights)
    if weights:
        w.update(weights)
    T, hs, nh, nkv = len(tokens), c.head_size, c.n_heads, c.n_kv_heads
    rep = nh // nkv
    cos, sin = rope_tables(T, hs)

    def rope(t: np.ndarray, heads: int) -> np.ndarray:
        t = t.reshape(T, heads, hs // 2, 2)
        a, b = t[..., 0], t[..., 1]
        out = np.empty_like(t)
        out[..., 0] = a * cos[:, None] - b * sin[:, None]
        out[..., 1] = a * sin[:, None] + b * cos[:, None]
        return out.reshape(T, heads, hs)

    def emit(name: str, layer: int, x: np.ndarray) -> bool:
        if hook:
            hook(name, layer, x)
        return stop == (name, layer)

    mask = np.triu(np.full((T, T), -np.inf), 1)
    x = np.asarray(w["emb"], dtype=np.float64)[tokens]
    for l in range(c.n_layers):
        if emit("qkv", l, normalize(x)):
            return None
        xb = rmsnorm(x, w["rms_att"][l])
        q = rope(xb @ w["wq"][l].T, nh)
        k = rope(xb @ w["wk"][l].T, nkv)
        v = (xb @ w["wv"][l].T).reshape(T, nkv, hs)
        att = np.empty((T, nh, hs))
        for h in range(nh):
            s = q[:, h] @ k[:, h // rep].T / np.sqrt(hs) + mask
            s = np.exp(s - s.max(1, keepdims=True))
            att[:, h] = (s / s.sum(1, keepdims=True)) @ v[:, h // rep]
        att = att.reshape(T, -1)
        if emit("wo", l, att):
            return None
        x = x + att @ w["wo"][l].T
        if emit("w13", l, normalize(x)):
            return None
        xb = rmsnorm(x, w["rms_ffn"][l])
        h1 = xb @ w["w1"][l].T
        hb = h1 / (1.0 + np.exp(-h1)) * (xb @ w["w3"][l].T)
        if emit("w2", l, hb):
            return None
        x = x + hb @ w["w2"][l].T
    x = rmsnorm(x, w["rms_final"])
    if emit("cls", 0, x):
        return None
    cls = w["emb"] if ckpt.shared_classifier else w["cls"]
    return x @ np.asarray(cls, dtype=np.float64).T


def sample_stories(ckpt: Checkpoint, count: int, length: int, seed: int) -> list[list[int]]:
    """`count` stories sampled from BOS at temperature 1, each up to `length` tokens.

    Sampling is by inverse CDF over a sequential cumulative sum, so the same seed gives
    the same stories on any machine.
    """
    rng = np.random.default_rng(seed)
    stories = []
    for _ in range(count):
        tokens = [1]
        cache = _Incremental(ckpt)
        while len(tokens) < length:
            logits = cache.step(tokens[-1])
            p = np.exp(logits - logits.max())
            cdf = np.cumsum(p / p.sum())
            nxt = min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)
            if nxt == 1:
                break
            tokens.append(nxt)
        stories.append(tokens)
    return stories


class _Incremental:
    """llama2.c's forward one token at a time, with a KV cache (float64)."""

    def __init__(self, ckpt: Checkpoint):
        self.ckpt = ckpt
        c = ckpt.config
        self.k = np.zeros((c.n_layers, c.seq_len, c.kv_dim))
        self.v = np.zeros_like(self.k)
        self.cos, self.sin = rope_tables(c.seq_len, c.head_size)
        self.pos = 0

    def step(self, token: int) -> np.ndarray:
        c, w, pos = self.ckpt.config, self.ckpt.weights, self.pos
        hs, rep = c.head_size, c.n_heads // c.n_kv_heads
        cos, sin = self.cos[pos], self.sin[pos]

        def rope(t: np.ndarray) -> np.ndarray:
            t = t.reshape(-1, hs // 2, 2).copy()
            a, b = t[..., 0].copy(), t[..., 1].copy()
            t[..., 0] = a * cos - b * sin
            t[..., 1] = a * sin + b * cos
            return t.reshape(-1)

        x = np.asarray(w["emb"][token], dtype=np.float64)
        for l in range(c.n_layers):
            xb = rmsnorm(x, w["rms_att"][l])
            q = rope(w["wq"][l] @ xb)
            self.k[l, pos] = rope(w["wk"][l] @ xb)
            self.v[l, pos] = w["wv"][l] @ xb
            att = np.empty(c.dim)
            for h in range(c.n_heads):
                kh = self.k[l, : pos + 1, (h // rep) * hs: (h // rep + 1) * hs]
                s = kh @ q[h * hs: (h + 1) * hs] / np.sqrt(hs)
                s = np.exp(s - s.max())
                vh = self.v[l, : pos + 1, (h // rep) * hs: (h // rep + 1) * hs]
                att[h * hs: (h + 1) * hs] = (s / s.sum()) @ vh
            x = x + w["wo"][l] @ att
            xb = rmsnorm(x, w["rms_ffn"][l])
            h1 = w["w1"][l] @ xb
            x = x + w["w2"][l] @ (h1 / (1.0 + np.exp(-h1)) * (w["w3"][l] @ xb))
        self.pos += 1
        return self.ckpt.classifier @ rmsnorm(x, w["rms_final"])
