"""Integer kernels of the int8 forward pass, in viper.

    import kernels
    s = kernels.to_act(act, gsum, x, 0, 64)      # x as 13-bit block floating point
    kernels.matvec12(acc, q8, r4, scales, act, gsum, 64, 64, 0, 0, 1)

Every kernel here has an exact twin in host/reference.py; tests hold the two to the same
numbers. The arithmetic is the same on the ESP32-S3 (viper ints are 32 bits) as in the
unix-port simulator (64 bits) because no product or sum ever leaves int32: the reference
checks each bound, and the kernels are written so the host and the board agree bit for bit.

Data layout: every buffer is a bytearray viewed through a viper pointer.
- int32 buffers (residual x, matvec outputs, q/k/v, scores) are read back with
  `(v ^ sign) - sign`, sign = 1 << 31 made at run time: viper's ptr32 loads zero-extend
  on a 64-bit host, and a literal 2**31 would not even compile for the 32-bit board.
- activations for a matrix multiply are u16, a + 8192 with a in [-8192, 8191] (13-bit
  block floating point: the real value is a * 2**-e for one e per vector).
- weights are u8 q + 128 and, for refined tensors, a nibble r + 8 per weight (even column
  in the low nibble); group scales are u16 mantissas below 2**15, one per 64 weights.
- the KV cache holds k + k_bias and v + 16384 as u16: biased so that no load needs
  sign extension (the bias comes out of the sums exactly).

Some steps are written out in every kernel that needs them rather than called (e^y from
the 2**-i/256 table, the saturating shift): a call from viper to viper per element would
cost more than the element.
"""

import micropython
from micropython import const

_GROUP = const(64)
_ABIAS = const(8192)  # stored activation = a + _ABIAS
_AMAX = const(8191)
_W12_BIAS = const(2056)  # 16 * (q + 128) + (r + 8) = w + 2056
_W8_BIAS = const(128)
_MAXV = const(1073741823)  # 2**30 - 1: saturation bound of int32 activations
_SCORE_MAX = const(536870912)  # 2**29: attention scores are clamped to +-2**29
_EXP_FLOOR = const(-4194304)  # -2**22 in Q16: e**-64 is 0 in Q30
_LOG2E_HI = const(23637)  # round(log2(e) * 2**29) = 774541002, in 15-bit halves
_LOG2E_LO = const(3786)
_ROPE_HALF = const(8192)  # rounding for the Q14 rotation


@micropython.viper
def matvec12(out, q8, r4, scales, act, gsum, rows: int, cols: int, qoff: int, soff: int,
             gs: int):
    """out[i] = sum over groups g of (d_g * m_g) >> (15 + gs), d_g = sum w * a.

    w = 16 * q + r is a refined 12-bit weight; q8 and r4 start at byte qoff and qoff // 2
    of this layer's matrix (rows x cols, both multiples of 4), scales at element soff;
    gsum[g] = sum of a over group g of the activations; gs = bits of the number of groups
    per row, so the row's sum of group terms stays below 2**30. Four rows at a time share
    each load of the activations; eight weights per step, then four for a tail.
    """
    po = ptr32(out)
    pq = int(ptr8(q8)) + qoff
    pr = int(ptr8(r4)) + (qoff >> 1)
    ps = ptr16(scales)
    pa = int(ptr16(act))
    pg = ptr32(gsum)
    one = 1
    sign = one << 31
    groups = (cols + _GROUP - 1) >> 6
    half = cols >> 1
    si = soff
    i = 0
    while i < rows:
        acc0 = 0
        acc1 = 0
        acc2 = 0
        acc3 = 0
        for g in range(groups):
            j = g << 6
            stop = j + _GROUP
            if stop > cols:
                stop = cols
            d0 = 0
            d1 = 0
            d2 = 0
            d3 = 0
            while j + 8 <= stop:
                a = ptr16(pa + (j << 1))
                a0 = a[0] - _ABIAS
                a1 = a[1] - _ABIAS
                a2 = a[2] - _ABIAS
                a3 = a[3] - _ABIAS
                a4 = a[4] - _ABIAS
                a5 = a[5] - _ABIAS
                a6 = a[6] - _ABIAS
                a7 = a[7] - _ABIAS
                q = ptr8(pq + j)
                r = ptr8(pr + (j >> 1))
                d0 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3
                       + ((q[4] << 4) + (r[2] & 15)) * a4 + ((q[5] << 4) + (r[2] >> 4)) * a5
                       + ((q[6] << 4) + (r[3] & 15)) * a6 + ((q[7] << 4) + (r[3] >> 4)) * a7)
                q = ptr8(pq + cols + j)
                r = ptr8(pr + half + (j >> 1))
                d1 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3
                       + ((q[4] << 4) + (r[2] & 15)) * a4 + ((q[5] << 4) + (r[2] >> 4)) * a5
                       + ((q[6] << 4) + (r[3] & 15)) * a6 + ((q[7] << 4) + (r[3] >> 4)) * a7)
                q = ptr8(pq + 2 * cols + j)
                r = ptr8(pr + 2 * half + (j >> 1))
                d2 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3
                       + ((q[4] << 4) + (r[2] & 15)) * a4 + ((q[5] << 4) + (r[2] >> 4)) * a5
                       + ((q[6] << 4) + (r[3] & 15)) * a6 + ((q[7] << 4) + (r[3] >> 4)) * a7)
                q = ptr8(pq + 3 * cols + j)
                r = ptr8(pr + 3 * half + (j >> 1))
                d3 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3
                       + ((q[4] << 4) + (r[2] & 15)) * a4 + ((q[5] << 4) + (r[2] >> 4)) * a5
                       + ((q[6] << 4) + (r[3] & 15)) * a6 + ((q[7] << 4) + (r[3] >> 4)) * a7)
                j += 8
            if j < stop:
                a = ptr16(pa + (j << 1))
                a0 = a[0] - _ABIAS
                a1 = a[1] - _ABIAS
                a2 = a[2] - _ABIAS
                a3 = a[3] - _ABIAS
                q = ptr8(pq + j)
                r = ptr8(pr + (j >> 1))
                d0 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3)
                q = ptr8(pq + cols + j)
                r = ptr8(pr + half + (j >> 1))
                d1 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3)
                q = ptr8(pq + 2 * cols + j)
                r = ptr8(pr + 2 * half + (j >> 1))
                d2 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3)
                q = ptr8(pq + 3 * cols + j)
                r = ptr8(pr + 3 * half + (j >> 1))
                d3 += (((q[0] << 4) + (r[0] & 15)) * a0 + ((q[1] << 4) + (r[0] >> 4)) * a1
                       + ((q[2] << 4) + (r[1] & 15)) * a2 + ((q[3] << 4) + (r[1] >> 4)) * a3)
            gv = ((pg[g] ^ sign) - sign) * _W12_BIAS
            d0 -= gv
            d1 -= gv
            d2 -= gv
            d3 -= gv
            m = int(ps[si])
            acc0 += (((d0 >> 15) * m) + (((d0 & 32767) * m) >> 15)) >> gs
            m = int(ps[si + groups])
            acc1 += (((d1 >> 15) * m) + (((d1 & 32767) * m) >> 15)) >> gs
            m = int(ps[si + 2 * groups])
            acc2 += (((d2 >> 15) * m) + (((d2 & 32767) * m) >> 15)) >> gs
            m = int(ps[si + 3 * groups])
            acc3 += (((d3 >> 15) * m) + (((d3 & 32767) * m) >> 15)) >> gs
            si += 1
        po[i] = acc0
        po[i + 1] = acc1
        po[i + 2] = acc2
        po[i + 3] = acc3
        si += 3 * groups
        pq += cols << 2
        pr += cols << 1
        i += 4


@micropython.viper
def to_act(act, gsum, src, off: int, n: int) -> int:
    """Block floating point for a matrix multiply: returns s; act[i] = src[off+i] * 2**-s.

    s is the smallest shift that brings max|src| below 2**13; values are rounded (half
    up) and clamped to [-8192, 8191], stored as u16 + 8192. gsum[g] = sum of a over each
    group of 64.
    """
    pa = ptr16(act)
    pg = ptr32(gsum)
    px = ptr32(src)
    one = 1
    sign = one << 31
    mx = 0
    for i in range(n):
        v = (px[off + i] ^ sign) - sign
        if v < 0:
            v = -v
        if v > mx:
            mx = v
    s = 0
    while (mx >> s) > _AMAX:
        s += 1
    half = 0
    if s > 0:
        half = one << (s - 1)
    total = 0
    for i in range(n):
        v = (((px[off + i] ^ sign) - sign) + half) >> s
        if v > _AMAX:
            v = _AMAX
        elif v < -_ABIAS:
            v = -_ABIAS
        pa[i] = v + _ABIAS
        total += v
        if (i & 63) == 63 or i == n - 1:
            pg[i >> 6] = total
            total = 0
    return s


@micropython.viper
def block_heads(buf, n: int, size: int, limit: int, shifts):
    """In place, for each slice h of `size` values of buf[0:n] (int32): the values times
    2**-s, rounded, with s = shifts[h] the smallest shift that brings the slice's max|v|
    to `limit` (2**b - 1) or below; clamped to [-(limit + 1), limit] as to_act does."""
    p = ptr32(buf)
    ps = ptr32(shifts)
    one = 1
    sign = one << 31
    h = 0
    off = 0
    while off < n:
        mx = 0
        for i in range(off, off + size):
            v = (p[i] ^ sign) - sign
            if v < 0:
                v = -v
            if v > mx:
                mx = v
        s = 0
        while (mx >> s) > limit:
            s += 1
        if s > 0:
            half = one << (s - 1)
            for i in range(off, off + size):
                v = (((p[i] ^ sign) - sign) + half) >> s
                if v > limit:
                    v = limit
                elif v < -limit - 1:
                    v = -limit - 1
                p[i] = v
        ps[h] = s
        h += 1
        off += size


@micropython.viper
def scale_out(dst, doff: int, src, n: int, f: int, sh: int, add: int):
    """dst[doff+i] (+)= round(floor(src[i] * f / 2**30) * 2**-sh), saturated to +-(2**30-1).

    f < 2**30 is a scale mantissa (the RMSNorm factor), or 0 for none: round(src * 2**-sh);
    |src| < 2**30; sh may be negative (a saturating left shift). With add, the result is
    added to dst (the residual stream) and the sum saturated.
    """
    pd = ptr32(dst)
    ps = ptr32(src)
    one = 1
    sign = one << 31
    fh = f >> 15
    fl = f & 32767
    half = 0
    if 0 < sh <= 30:
        half = one << (sh - 1)
    left = 0
    lim = 0
    if sh < 0:
        left = -sh
        if left <= 30:
            lim = _MAXV >> left
    for i in range(n):
        v = (ps[i] ^ sign) - sign
        if f:
            ah = v >> 15
            al = v & 32767
            v = ah * fh + ((ah * fl + al * fh + ((al * fl) >> 15)) >> 15)
        if sh > 30:
            v = 0
        elif sh > 0:
            v = (v + half) >> sh
        elif sh < 0:
            if v > lim:
                v = _MAXV
            elif v < -lim:
                v = -_MAXV
            else:
                v = v << left
        if add:
            v += (pd[doff + i] ^ sign) - sign
        if v > _MAXV:
            v = _MAXV
        elif v < -_MAXV:
            v = -_MAXV
        pd[doff + i] = v


@micropython.viper
def rms_factor(x, n: int, eps: int, regs):
    """The integer RMSNorm's scale of x (int32, n values): regs[0:3] = F, t, s2.

    With xx = x * 2**-s2 (|xx| < 2**15) and ss = sum(xx*xx >> k) + eps * 2**-2s2, where
    k = bits(n): 1/sqrt(ss) = F * 2**(t - 44), F found by a digit-by-digit square root of
    ss * 4**t * 2**16 (ss * 4**t in [2**28, 2**30)) and a long division of 2**52.
    """
    px = ptr32(x)
    pr = ptr32(regs)
    one = 1
    sign = one << 31
    mx = 0
    for i in range(n):
        v = (px[i] ^ sign) - sign
        if v < 0:
            v = -v
        if v > mx:
            mx = v
    b = 0
    while (mx >> b) > 0:
        b += 1
    s2 = b - 15
    if s2 < -7:
        s2 = -7
    k = 0
    while (n >> k) > 0:
        k += 1
    ss = 0
    for i in range(n):
        v = (px[i] ^ sign) - sign
        if s2 >= 0:
            v = v >> s2
        else:
            v = v << (-s2)
        ss += (v * v) >> k
    if s2 >= 0:
        if 2 * s2 < 31:
            ss += eps >> (2 * s2)
    else:
        ss += eps << (-2 * s2)
    t = 0
    while ss < (one << 28):
        ss = ss << 2
        t += 1
    root = 0
    rem = 0
    for i in range(23):
        pair = 0
        if i < 15:
            pair = (ss >> (28 - 2 * i)) & 3
        rem = (rem << 2) | pair
        trial = (root << 2) | 1
        root = root << 1
        if rem >= trial:
            rem -= trial
            root = root | 1
    big = one << 30
    q = big // root
    r = big - q * root
    for i in range(22):
        r = r << 1
        q = q << 1
        if r >= root:
            r -= root
            q += 1
    if q > _MAXV:
        q = _MAXV
    pr[0] = q
    pr[1] = t
    pr[2] = s2


@micropython.viper
def embed(x, q8, r4, scales, qoff: int, soff: int, cols: int, sh: int, refined: int):
    """x[i] = round(w_i * m * 2**-sh), the embedding row at qoff in Q16 (sh = E - 16)."""
    px = ptr32(x)
    pq = ptr8(q8)
    pr = ptr8(r4)
    ps = ptr16(scales)
    one = 1
    half = 0
    if 0 < sh <= 30:
        half = one << (sh - 1)
    left = 0
    lim = 0
    if sh < 0:
        left = -sh
        if left <= 30:
            lim = _MAXV >> left
    for i in range(cols):
        if refined:
            nib = pr[(qoff + i) >> 1]
            if i & 1:
                nib = nib >> 4
            w = (int(pq[qoff + i]) << 4) + (nib & 15) - _W12_BIAS
        else:
            w = int(pq[qoff + i]) - _W8_BIAS
        v = w * int(ps[soff + (i >> 6)])
        if sh > 30:
            v = 0
        elif sh > 0:
            v = (v + half) >> sh
        elif sh < 0:
            if v > lim:
                v = _MAXV
            elif v < -lim:
                v = -_MAXV
            else:
                v = v << left
        px[i] = v


@micropython.viper
def rope(buf, off: int, n: int, table, toff: int, half_hs: int, clamp: int):
    """Rotate pairs (buf[2j], buf[2j+1]) of n values by the Q14 cos/sin of their frequency.

    table holds (cos, sin) int16 pairs for each position and frequency; toff is this
    position's first pair; the frequency of pair j is j modulo half_hs. Results are
    clamped to +-clamp.
    """
    p = ptr32(buf)
    t = ptr16(table)
    one = 1
    sign = one << 31
    j = 0
    while j < n:
        e = toff + 2 * ((j >> 1) % half_hs)
        c = ((t[e] ^ 0x8000) - 0x8000)
        s = ((t[e + 1] ^ 0x8000) - 0x8000)
        a = (p[off + j] ^ sign) - sign
        b = (p[off + j + 1] ^ sign) - sign
        ra = (a * c - b * s + _ROPE_HALF) >> 14
        rb = (a * s + b * c + _ROPE_HALF) >> 14
        if ra > clamp:
            ra = clamp
        elif ra < -clamp:
            ra = -clamp
        if rb > clamp:
            rb = clamp
        elif rb < -clamp:
            rb = -clamp
        p[off + j] = ra
        p[off + j + 1] = rb
        j += 2


@micropython.viper
def store16(dst, doff: int, src, soff: int, n: int, bias: int):
    """dst[doff+i] = src[soff+i] + bias as u16 (the KV cache), from int32 values that fit."""
    pd = ptr16(dst)
    ps = ptr32(src)
    for i in range(n):
        pd[doff + i] = (ps[soff + i] + bias) & 0xFFFF


@micropython.viper
def attention(out, q, qshift, kcache, vcache, kshift, vshift, scores, table, cfg):
    """Multi-head attention of one position over the cache, all heads.

    cfg (int32): pos, n_heads, kv_mul, head_size, kv_dim, cache offset of this layer
    (elements), shift offset of this layer, v shift max over 0..pos, k bias.
    The caches hold k + k_bias and v + 16384 as u16, so no load needs sign extension.
    For head h (kv head h // kv_mul): score[t] = q_h . k_t rescaled to Q16 with the shifts
    of q_h and k_t, clamped to +-2**29; p[t] = e**(score[t] - max) in Q16 (the 2**-i/256
    table, Q30, interpolated); p'[t] = p[t] * floor(2**46 / sum p) >> 30 (so sum p' <= 2**16);
    out_h[j] = sum of (p'[t] * v_t[j]) >> (vmax - vshift[t]), in units of 2**-(32 - vmax).
    Head size 8 (stories260K's) runs an unrolled path; others a loop.
    """
    po = ptr32(out)
    pq = ptr32(q)
    pqs = ptr32(qshift)
    pks = ptr8(kshift)
    pvs = ptr8(vshift)
    psc = ptr32(scores)
    tab = ptr32(table)
    c = ptr32(cfg)
    kbase = int(ptr16(kcache))
    vbase = int(ptr16(vcache))
    one = 1
    sign = one << 31
    big = one << 30
    pos = c[0]
    n_heads = c[1]
    kv_mul = c[2]
    hs = c[3]
    kv_dim = c[4]
    cache = c[5]
    shifts = c[6]
    vmax = c[7]
    kbias = c[8]
    stride = kv_dim << 1
    for h in range(n_heads):
        qo = h * hs
        head_at = (cache + (h // kv_mul) * hs) << 1
        qs = pqs[h]

        # scores: q_h . k_t, each in Q16
        qsum = 0
        for j in range(hs):
            qsum += (pq[qo + j] ^ sign) - sign
        qsum = qsum * kbias
        mx = -_SCORE_MAX
        ka = kbase + head_at
        if hs == 8:
            q0 = (pq[qo] ^ sign) - sign
            q1 = (pq[qo + 1] ^ sign) - sign
            q2 = (pq[qo + 2] ^ sign) - sign
            q3 = (pq[qo + 3] ^ sign) - sign
            q4 = (pq[qo + 4] ^ sign) - sign
            q5 = (pq[qo + 5] ^ sign) - sign
            q6 = (pq[qo + 6] ^ sign) - sign
            q7 = (pq[qo + 7] ^ sign) - sign
        for t in range(pos + 1):
            k = ptr16(ka)
            if hs == 8:
                dot = (q0 * k[0] + q1 * k[1] + q2 * k[2] + q3 * k[3] + q4 * k[4] + q5 * k[5]
                       + q6 * k[6] + q7 * k[7])
            else:
                dot = 0
                for j in range(hs):
                    dot += ((pq[qo + j] ^ sign) - sign) * k[j]
            dot -= qsum
            ka += stride
            sh = 16 - qs - pks[shifts + t]
            if sh > 0:
                if sh > 30:
                    dot = 0
                else:
                    dot = (dot + (one << (sh - 1))) >> sh
            elif sh < 0:
                lim = 0
                if -sh <= 30:
                    lim = _MAXV >> (-sh)
                if dot > lim:
                    dot = _MAXV
                elif dot < -lim:
                    dot = -_MAXV
                else:
                    dot = dot << (-sh)
            if dot > _SCORE_MAX:
                dot = _SCORE_MAX
            elif dot < -_SCORE_MAX:
                dot = -_SCORE_MAX
            psc[t] = dot
            if dot > mx:
                mx = dot

        # softmax numerators e**(score - max) in Q16, and their sum
        total = 0
        for t in range(pos + 1):
            y = ((psc[t] ^ sign) - sign) - mx
            if y < _EXP_FLOOR:
                y = _EXP_FLOOR
            a = (-y) << 1
            ah = a >> 15
            al = a & 32767
            z = ah * _LOG2E_HI + ((ah * _LOG2E_LO + al * _LOG2E_HI
                                   + ((al * _LOG2E_LO) >> 15)) >> 15)
            n = z >> 16
            f = z & 65535
            i = f >> 8
            t0 = tab[i]
            v = t0 - (((t0 - tab[i + 1]) * (f & 255)) >> 8)
            if n < 31:
                v = v >> n
            else:
                v = 0
            v = v >> 14
            psc[t] = v
            total += v

        # 2**46 / total by long division: the normalizing factor, below 2**30
        fq = big // total
        fr = big - fq * total
        for i in range(16):
            fr = fr << 1
            fq = fq << 1
            if fr >= total:
                fr -= total
                fq += 1
        if fq > _MAXV:
            fq = _MAXV
        fh = fq >> 15
        fl = fq & 32767

        # out_h = sum of p'[t] * v_t, each product shifted to the coarsest v exponent
        o0 = 0
        o1 = 0
        o2 = 0
        o3 = 0
        o4 = 0
        o5 = 0
        o6 = 0
        o7 = 0
        if hs != 8:
            for j in range(hs):
                po[qo + j] = 0
        va = vbase + head_at
        for t in range(pos + 1):
            p = psc[t]
            ph = p >> 15
            pl = p & 32767
            p = ph * fh + ((ph * fl + pl * fh + ((pl * fl) >> 15)) >> 15)
            vr = ptr16(va)
            va += stride
            if p == 0:
                continue  # a weight that rounds to nothing adds nothing
            sh = vmax - pvs[shifts + t]
            off = p << 14
            if hs == 8:
                o0 += (p * vr[0] - off) >> sh
                o1 += (p * vr[1] - off) >> sh
                o2 += (p * vr[2] - off) >> sh
                o3 += (p * vr[3] - off) >> sh
                o4 += (p * vr[4] - off) >> sh
                o5 += (p * vr[5] - off) >> sh
                o6 += (p * vr[6] - off) >> sh
                o7 += (p * vr[7] - off) >> sh
            else:
                for j in range(hs):
                    acc = (po[qo + j] ^ sign) - sign
                    po[qo + j] = acc + ((p * vr[j] - off) >> sh)
        if hs == 8:
            po[qo] = o0
            po[qo + 1] = o1
            po[qo + 2] = o2
            po[qo + 3] = o3
            po[qo + 4] = o4
            po[qo + 5] = o5
            po[qo + 6] = o6
            po[qo + 7] = o7


@micropython.viper
def swiglu(h1, h3, n: int, table) -> int:
    """In place h1[i] = silu(h1[i]) * h3[i] in block form; returns the total shift.

    silu = floor(h1 * sigmoid(h1) / 2**30) with sigmoid in Q30 from e**-|h1| and two
    16-bit divisions; then both factors are cut to 15 bits by their vector's maximum
    (shifts s1, s3) and multiplied: the result is in units of 2**(s1 + s3 - 32).
    """
    p1 = ptr32(h1)
    p3 = ptr32(h3)
    tab = ptr32(table)
    one = 1
    sign = one << 31
    big = one << 30
    m1 = 0
    m3 = 0
    for i in range(n):
        x = (p1[i] ^ sign) - sign
        y = x
        if y > 0:
            y = -y
        if y < _EXP_FLOOR:
            y = _EXP_FLOOR
        a = (-y) << 1
        ah = a >> 15
        al = a & 32767
        z = ah * _LOG2E_HI + ((ah * _LOG2E_LO + al * _LOG2E_HI
                               + ((al * _LOG2E_LO) >> 15)) >> 15)
        e = z >> 16
        f = z & 65535
        j = f >> 8
        t0 = tab[j]
        v = t0 - (((t0 - tab[j + 1]) * (f & 255)) >> 8)
        if e < 31:
            v = v >> e
        else:
            v = 0
        d = 32768 + (v >> 15)
        q1 = big // d
        r1 = big - q1 * d
        sg = (q1 << 15) + (r1 << 15) // d
        if x < 0:
            sg = big - sg
        xh = x >> 15
        xl = x & 32767
        sh_ = sg >> 15
        sl = sg & 32767
        x = xh * sh_ + ((xh * sl + xl * sh_ + ((xl * sl) >> 15)) >> 15)
        p1[i] = x
        if x < 0:
            x = -x
        if x > m1:
            m1 = x
        w = (p3[i] ^ sign) - sign
        if w < 0:
            w = -w
        if w > m3:
            m3 = w
    s1 = 0
    while (m1 >> s1) >= 32768:
        s1 += 1
    s3 = 0
    while (m3 >> s3) >= 32768:
        s3 += 1
    for i in range(n):
        p1[i] = (((p1[i] ^ sign) - sign) >> s1) * (((p3[i] ^ sign) - sign) >> s3)
    return s1 + s3


@micropython.viper
def apply_gain(dst, act, gains, n: int):
    """dst[i] = a[i] * g[i]: the final RMSNorm gain (int16) on block activations."""
    pd = ptr32(dst)
    pa = ptr16(act)
    pg = ptr16(gains)
    for i in range(n):
        pd[i] = (int(pa[i]) - _ABIAS) * ((pg[i] ^ 0x8000) - 0x8000)


@micropython.viper
def argmax(buf, n: int) -> int:
    """Index of the largest int32 in buf[0:n]; the first one on ties, as run.c's argmax."""
    p = ptr32(buf)
    one = 1
    sign = one << 31
    best = 0
    top = (p[0] ^ sign) - sign
    for i in range(1, n):
        v = (p[i] ^ sign) - sign
        if v > top:
            top = v
            best = i
    return best


@micropython.viper
def max_shift(shifts, off: int, n: int) -> int:
    """The largest byte in shifts[off:off+n]."""
    p = ptr8(shifts)
    m = 0
    for i in range(off, off + n):
        if int(p[i]) > m:
            m = int(p[i])
    return m


@micropython.viper
def softmax_q16(probs, logits, n: int, f: int, sh: int, table) -> int:
    """probs[i] = e**((logit[i] - max) / T) in Q16; returns their sum (<= n * 2**16).

    1/T is f * 2**(-30 - sh); (logit - max) is clamped to -(2**30 - 1) first.
    """
    pp = ptr32(probs)
    pl = ptr32(logits)
    tab = ptr32(table)
    one = 1
    sign = one << 31
    fh = f >> 15
    fl = f & 32767
    top = (pl[0] ^ sign) - sign
    for i in range(1, n):
        v = (pl[i] ^ sign) - sign
        if v > top:
            top = v
    total = 0
    for i in range(n):
        a = ((pl[i] ^ sign) - sign) - top
        if a < -_MAXV:
            a = -_MAXV
        ah = a >> 15
        al = a & 32767
        y = ah * fh + ((ah * fl + al * fh + ((al * fl) >> 15)) >> 15)
        if sh > 30:
            y = 0
        elif sh > 0:
            y = (y + (one << (sh - 1))) >> sh
        elif sh < 0:
            if y < -(_MAXV >> (-sh)):
                y = -_MAXV
            else:
                y = y << (-sh)
        if y < _EXP_FLOOR:
            y = _EXP_FLOOR
        a = (-y) << 1
        ah = a >> 15
        al = a & 32767
        z = ah * _LOG2E_HI + ((ah * _LOG2E_LO + al * _LOG2E_HI
                               + ((al * _LOG2E_LO) >> 15)) >> 15)
        e = z >> 16
        frac = z & 65535
        j = frac >> 8
        t0 = tab[j]
        v = t0 - (((t0 - tab[j + 1]) * (frac & 255)) >> 8)
        if e < 31:
            v = v >> e
        else:
            v = 0
        v = v >> 14
        pp[i] = v
        total += v
    return total


@micropython.viper
def pick(probs, n: int, r: int) -> int:
    """The first index whose cumulative probability exceeds r; the last one otherwise."""
    pp = ptr32(probs)
    cdf = 0
    for i in range(n):
        cdf += pp[i]
        if r < cdf:
            return i
    return n - 1


@micropython.viper
def gather(picked, probs, n: int, cut: int) -> int:
    """Indices i with probs[i] >= cut, in index order, into picked; returns their count."""
    pk = ptr32(picked)
    pp = ptr32(probs)
    count = 0
    for i in range(n):
        if pp[i] >= cut:
            pk[count] = i
            count += 1
    return count


@micropython.viper
def copy_bytes(dst, src, n: int):
    """dst[0:n] = src[0:n], byte for byte, between any two buffers."""
    pd = ptr8(dst)
    ps = ptr8(src)
    for i in range(n):
        pd[i] = ps[i]


@micropython.viper
def u32_at(buf, offset: int) -> int:
    """The little-endian u32 at byte `offset` of buf (a value below 2**30)."""
    p = ptr8(buf)
    return p[offset] | (p[offset + 1] << 8) | (p[offset + 2] << 16) | (p[offset + 3] << 24)
