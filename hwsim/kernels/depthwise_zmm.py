"""DEPTHWISE_CONV_2D with requantization fused, on 512-bit vectors (AVX-512 CPUs): the tap-pair
``vpmaddwd`` kernel of hwsim.kernels.mac_tiles (``_dw_item``) with 32 channels per block
instead of 16, so each instruction does twice the work.

Per block of 32 channels and pair of taps, the int16 band buffer rows of the two taps are
interleaved with vpunpck{l,h}wd (per 128-bit lane) and multiply-added with the packed weight
pairs (mac_pack.depthwise_weights32, the same lane order); two output pixels share each weight
load. The two accumulators hold channels {0-3, 8-11, 16-19, 24-27} and {4-7, 12-15, 20-23,
28-31}; two shuffles put them in channel order for the 16-lane fused requantization
(mac_intrinsics._zrq_store_c). Only the int8 fused form exists here: accumulators (traced runs)
and int16 inputs take mac_tiles. Called by hwsim.kernels.mac where the CPU has AVX-512 (BW);
Numba compiles it on its first call only.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .mac_intrinsics import NJIT_OPTIONS as _NJ
from .mac_intrinsics import (_wload, _wmadd_acc, _wunpack_hi, _wunpack_lo, _zchannels_hi,
                             _zchannels_lo, _zload_i32, _zrq_consts, _zrq_store_c)
from .mac_tiles import _fill_band, _plan


@njit(**_NJ)
def _dw32_item(item, nb, ng, x, wpk, bp, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, tapo,
               cp, qzp, qlo, qhi, o8):
    """One work item: a band of output rows of one image x a range of 32-channel blocks."""
    N, H, W, C = x.shape
    Cout = C * dm
    NCB = (Cout + 31) // 32
    TP = (KH * KW + 1) // 2
    Wp = (ow - 1) * sw + (KW - 1) * dw + 1
    n = item // (nb * ng)
    rem = item - n * nb * ng
    b = rem // ng
    q = rem - b * ng
    oy0 = (b * oh) // nb
    oy1 = ((b + 1) * oh) // nb
    R = oy1 - oy0
    cb0 = (q * NCB) // ng
    cb1 = ((q + 1) * NCB) // ng
    if R <= 0 or cb1 <= cb0:
        return
    rows_in = (R - 1) * sh + (KH - 1) * dh + 1
    Cb = (cb1 - cb0) * 32  # channel slots in this item's buffer
    buf = np.empty(rows_in * Wp * Cb, np.int16)
    _fill_band(x, n, oy0 * sh - pt, rows_in, pl, Wp, C, dm, Cb, 32 * cb0, off, buf)
    xo = np.empty(2 * TP, np.int64)
    for t in range(2 * TP):
        xo[t] = tapo[t] * Cb
    step = sw * Cb
    for cb in range(cb0, cb1):
        rq0 = _zrq_consts(cp, 32 * cb)
        rq1 = _zrq_consts(cp, 32 * cb + 16)
        blo = _zload_i32(bp, 32 * cb)
        bhi = _zload_i32(bp, 32 * cb + 16)
        nv = min(32, Cout - 32 * cb)
        wcb = cb * TP * 64
        for r in range(R):
            ob = ((n * oh + oy0 + r) * ow) * Cout + 32 * cb
            pc = r * sh * Wp * Cb + (cb - cb0) * 32
            ox = 0
            while ox + 2 <= ow:
                lo = blo
                hi = bhi
                lo2 = blo
                hi2 = bhi
                wo = wcb
                for p in range(TP):
                    wl = _wload(wpk, wo)
                    wh = _wload(wpk, wo + 32)
                    wo += 64
                    o1 = pc + xo[2 * p]
                    o2 = pc + xo[2 * p + 1]
                    xa = _wload(buf, o1)
                    xb = _wload(buf, o2)
                    lo = _wmadd_acc(lo, _wunpack_lo(xa, xb), wl)
                    hi = _wmadd_acc(hi, _wunpack_hi(xa, xb), wh)
                    xa = _wload(buf, o1 + step)
                    xb = _wload(buf, o2 + step)
                    lo2 = _wmadd_acc(lo2, _wunpack_lo(xa, xb), wl)
                    hi2 = _wmadd_acc(hi2, _wunpack_hi(xa, xb), wh)
                o = ob + ox * Cout
                _zrq_store_c(o8, o, _zchannels_lo(lo, hi), rq0, qzp, qlo, qhi, nv)
                _zrq_store_c(o8, o + 16, _zchannels_hi(lo, hi), rq1, qzp, qlo, qhi, nv - 16)
                _zrq_store_c(o8, o + Cout, _zchannels_lo(lo2, hi2), rq0, qzp, qlo, qhi, nv)
                _zrq_store_c(o8, o + Cout + 16, _zchannels_hi(lo2, hi2), rq1, qzp, qlo, qhi, nv - 16)
                pc += 2 * step
                ox += 2
            if ox < ow:
                lo = blo
                hi = bhi
                wo = wcb
                for p in range(TP):
                    xa = _wload(buf, pc + xo[2 * p])
                    xb = _wload(buf, pc + xo[2 * p + 1])
                    lo = _wmadd_acc(lo, _wunpack_lo(xa, xb), _wload(wpk, wo))
                    hi = _wmadd_acc(hi, _wunpack_hi(xa, xb), _wload(wpk, wo + 32))
                    wo += 64
                o = ob + ox * Cout
                _zrq_store_c(o8, o, _zchannels_lo(lo, hi), rq0, qzp, qlo, qhi, nv)
                _zrq_store_c(o8, o + 16, _zchannels_hi(lo, hi), rq1, qzp, qlo, qhi, nv - 16)


@njit(**_NJ)
def _dw32_setup(N, Cout, KH, KW, sw, dh, dw, oh, ow, bias, nthreads):
    C32 = (Cout + 31) // 32 * 32
    T = KH * KW
    TP = (T + 1) // 2
    Wp = (ow - 1) * sw + (KW - 1) * dw + 1
    xo = np.empty(2 * TP, np.int64)  # tap offsets in buffer pixels
    for ky in range(KH):
        for kx in range(KW):
            xo[ky * KW + kx] = ky * dh * Wp + kx * dw
    if T & 1:
        xo[T] = xo[T - 1]
    bp = np.zeros(C32, np.int32)
    for c in range(Cout):
        i = c % 32
        # accumulator lane of channel i: lo = 0-3, 8-11, 16-19, 24-27; hi (+16) = the others
        bp[c - i + (i // 8) * 4 + i % 4 + (16 if i % 8 >= 4 else 0)] = bias[c]
    nb, ng = _plan(N, oh, ow, C32 // 32, nthreads, 256)
    return xo, bp, nb, ng


@njit(parallel=True, **_NJ)
def _dw32_par(x, wpk, bias, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, nthreads, cp, qzp, qlo,
              qhi, out8):
    xo, bp, nb, ng = _dw32_setup(x.shape[0], x.shape[3] * dm, KH, KW, sw, dh, dw, oh, ow, bias, nthreads)
    o8 = out8.reshape(out8.size)
    for item in prange(x.shape[0] * nb * ng):
        _dw32_item(np.int64(item), nb, ng, x, wpk, bp, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow,
                   xo, cp, qzp, qlo, qhi, o8)


@njit(**_NJ)
def _dw32_serial(x, wpk, bias, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, nthreads, cp, qzp, qlo,
                 qhi, out8):
    xo, bp, nb, ng = _dw32_setup(x.shape[0], x.shape[3] * dm, KH, KW, sw, dh, dw, oh, ow, bias, 1)
    o8 = out8.reshape(out8.size)
    for item in range(x.shape[0] * nb * ng):
        _dw32_item(item, nb, ng, x, wpk, bp, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow,
                   xo, cp, qzp, qlo, qhi, o8)
