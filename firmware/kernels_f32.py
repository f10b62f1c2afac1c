"""Float kernels of the float32 check mode, in native code.

    kernels_f32.matvec(out, w, x, rows, cols, offset)

These follow run.c's float arithmetic: each result is stored into an array('f'), so it is
rounded to float32 where run.c rounds it (the sums inside a dot product run in the port's
own float width: 64 bits in the unix port, 32 on the board). This mode checks the
pipeline against run.c's own stories; it is slow and needs the weights as float32
(four times the int8 blob), so it is not the board's mode.
"""

import micropython
from math import exp, sqrt


@micropython.native
def matvec(out, w, x, rows: int, cols: int, offset: int):
    """out[i] = sum_j w[offset + i*cols + j] * x[j] (W is rows x cols, row-major)."""
    base = offset
    for i in range(rows):
        acc = 0.0
        for j in range(cols):
            acc += w[base + j] * x[j]
        out[i] = acc
        base += cols


@micropython.native
def rmsnorm(out, x, gain, offset: int, n: int):
    """out = gain[offset:offset+n] * x / sqrt(mean(x*x) + 1e-5), as run.c's rmsnorm."""
    ss = 0.0
    for j in range(n):
        ss += x[j] * x[j]
    ss = ss / n + 1e-5
    ss = 1.0 / sqrt(ss)
    for j in range(n):
        out[j] = gain[offset + j] * (ss * x[j])


@micropython.native
def rope(vec, n: int, head_size: int, cos_sin):
    """Rotate pairs of vec[0:n] by the position's cos/sin (cos_sin[2f], cos_sin[2f+1])."""
    i = 0
    while i < n:
        f = (i % head_size) >> 1
        fcr = cos_sin[2 * f]
        fci = cos_sin[2 * f + 1]
        v0 = vec[i]
        v1 = vec[i + 1]
        vec[i] = v0 * fcr - v1 * fci
        vec[i + 1] = v0 * fci + v1 * fcr
        i += 2


@micropython.native
def attention(out, q, kcache, vcache, att, pos: int, n_heads: int, kv_mul: int,
              head_size: int, kv_dim: int, layer_off: int):
    """run.c's multi-head attention for one position over the float KV cache."""
    scale = sqrt(head_size)
    for h in range(n_heads):
        qo = h * head_size
        ko = layer_off + (h // kv_mul) * head_size
        top = -1e30
        for t in range(pos + 1):
            kb = ko + t * kv_dim
            s = 0.0
            for i in range(head_size):
                s += q[qo + i] * kcache[kb + i]
            s = s / scale
            att[t] = s
            if s > top:
                top = s
        total = 0.0
        for t in range(pos + 1):
            e = exp(att[t] - top)
            att[t] = e
            total += e
        for t in range(pos + 1):
            att[t] = att[t] / total
        for i in range(head_size):
            out[qo + i] = 0.0
        for t in range(pos + 1):
            a = att[t]
            vb = ko + t * kv_dim
            for i in range(head_size):
                out[qo + i] += a * vcache[vb + i]


@micropython.native
def swiglu(h1, h3, n: int):
    """h1 = silu(h1) * h3."""
    for i in range(n):
        v = h1[i]
        h1[i] = v * (1.0 / (1.0 + exp(-v))) * h3[i]


@micropython.native
def add(x, y, n: int):
    for i in range(n):
        x[i] += y[i]
