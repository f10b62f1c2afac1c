"""The matrix-vector kernel for plain int8 tensors (no refinement plane), in viper.

    kernels_q8.matvec8(out, q8, scales, act, gsum, rows, cols, qoff, soff, gs)

Imported only when a blob has a tensor without a refinement plane (`micro-llm quantize
--refine none` or a list), so its native code takes no executable RAM otherwise. Layout
and arithmetic are kernels.matvec12's with w = q.
"""

import micropython
from micropython import const

_GROUP = const(64)
_ABIAS = const(8192)  # stored activation = a + _ABIAS
_W8_BIAS = const(128)  # stored weight = q + 128


@micropython.viper
def matvec8(out, q8, scales, act, gsum, rows: int, cols: int, qoff: int, soff: int, gs: int):
    """matvec12 for a tensor without a refinement plane: w = q, 8 bits."""
    po = ptr32(out)
    pq = int(ptr8(q8)) + qoff
    ps = ptr16(scales)
    pa = int(ptr16(act))
    pg = ptr32(gsum)
    one = 1
    sign = one << 31
    groups = (cols + _GROUP - 1) >> 6
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
                d0 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3
                       + q[4] * a4 + q[5] * a5
                       + q[6] * a6 + q[7] * a7)
                q = ptr8(pq + cols + j)
                d1 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3
                       + q[4] * a4 + q[5] * a5
                       + q[6] * a6 + q[7] * a7)
                q = ptr8(pq + 2 * cols + j)
                d2 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3
                       + q[4] * a4 + q[5] * a5
                       + q[6] * a6 + q[7] * a7)
                q = ptr8(pq + 3 * cols + j)
                d3 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3
                       + q[4] * a4 + q[5] * a5
                       + q[6] * a6 + q[7] * a7)
                j += 8
            if j < stop:
                a = ptr16(pa + (j << 1))
                a0 = a[0] - _ABIAS
                a1 = a[1] - _ABIAS
                a2 = a[2] - _ABIAS
                a3 = a[3] - _ABIAS
                q = ptr8(pq + j)
                d0 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3)
                q = ptr8(pq + cols + j)
                d1 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3)
                q = ptr8(pq + 2 * cols + j)
                d2 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3)
                q = ptr8(pq + 3 * cols + j)
                d3 += (q[0] * a0 + q[1] * a1
                       + q[2] * a2 + q[3] * a3)
            gv = ((pg[g] ^ sign) - sign) * _W8_BIAS
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
        i += 4
