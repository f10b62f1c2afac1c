"""Choosing the next token: greedy, or temperature with top-p, as llama2.c's run does.

    s = IntSampler(vocab_size, temperature=1.0, topp=0.9, seed=42)
    token = s.sample(logits)

The random numbers are run.c's: xorshift64* from the seed (the caller passes the 64-bit
seed run.c would hold: `-s` read as a C int, then widened), a coin of 24 bits per token.

IntSampler works on the int8 model's Q16 logits with integers only (temperature and top-p
are fixed-point, the softmax is the 2**x table), so the board and the simulator pick the
same token whatever their float width. The float32 check mode's sampler is in llm_f32.
"""

from array import array

import kernels

_MASK64 = (1 << 64) - 1
MAX_TEMPERATURE = 1000000  # a flat distribution long before this
_MULT = 0x2545F4914F6CDD1D


class Rng:
    """run.c's random_u32: xorshift64* on a 64-bit state."""

    def __init__(self, seed):
        self.state = seed & _MASK64

    def u32(self):
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & _MASK64
        s ^= s >> 27
        self.state = s
        return ((s * _MULT) & _MASK64) >> 32

    def coin24(self):
        """random_f32() * 2**24: the coin as the integer it is exactly."""
        return self.u32() >> 8


def check(temperature, topp):
    """ValueError for sampling settings no sampler can use."""
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise ValueError("temperature must be between 0 (greedy) and %d, not %s"
                         % (MAX_TEMPERATURE, temperature))
    if not 0 <= topp <= 1:
        raise ValueError("top-p must be between 0 and 1, not %s" % topp)


def fixed16(value):
    """A temperature or top-p as an integer in units of 2**-16."""
    return int(value * 65536 + 0.5)


class IntSampler:
    def __init__(self, vocab_size, temperature=0.0, topp=0.9, seed=0, table=None):
        self.n = vocab_size
        check(temperature, topp)
        self.t16 = fixed16(temperature) if temperature > 0 else 0
        # top-p in 1/65536: a positive top-p keeps at least the likeliest token.
        self.p16 = max(1, fixed16(topp)) if 0 < topp < 1 else 0
        if self.p16 >= 65536:
            self.p16 = 0
        self.rng = Rng(seed)
        self.table = table
        if self.t16:
            self.probs = array("i", range(vocab_size))
            self.picked = array("i", range(vocab_size))
            # 1/T = f * 2**(-30 - sh), f in [2**29, 2**30): y = (z * f >> 30) >> sh.
            f, sh = (65536 << 30) // self.t16, 0
            while f >= 1 << 30:
                f >>= 1
                sh -= 1
            while f < 1 << 29:
                f <<= 1
                sh += 1
            self.f, self.sh = f, sh

    def sample(self, logits):
        if not self.t16:
            return kernels.argmax(logits, self.n)
        total = kernels.softmax_q16(self.probs, logits, self.n, self.f, self.sh, self.table)
        coin = self.rng.coin24()
        if not self.p16:
            return kernels.pick(self.probs, self.n, (coin * total) >> 24)
        return self._sample_topp(total, coin)

    def _sample_topp(self, total, coin):
        # Keep p >= (1 - topp) * total / (n - 1), run.c's cutoff, in exact integers.
        n = self.n
        num = (65536 - self.p16) * total
        den = (n - 1) * 65536
        cut = (num + den - 1) // den
        count = kernels.gather(self.picked, self.probs, n, cut)
        probs = self.probs
        picked = [self.picked[i] for i in range(count)]
        # Largest first; equal probabilities in index order (a total order: no tie left).
        picked.sort(key=lambda i: ((65536 - probs[i]) << 20) | i)
        cum, last = 0, len(picked) - 1
        for j in range(len(picked)):
            cum += probs[picked[j]]
            if cum * 65536 > self.p16 * total:
                last = j
                break
        r = (coin * cum) >> 24
        cdf = 0
        for j in range(last + 1):
            cdf += probs[picked[j]]
            if r < cdf:
                return picked[j]
        return picked[last]
