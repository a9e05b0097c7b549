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

3x3 layers (dilation 1, depth multiplier 1, an int8 input zero point, no left shift or
INT32_MIN multiplier in the requantization: the layers of mobilenet-style models; mac._dw_head
decides) take ``_dw3_*`` instead, which reads the int8 input in place: no band buffer, no
int16 copy. Each 32-channel block's nine taps are two int16 weight vectors each, one with the
even channels' weights (odd lanes 0) and one with the odd channels' (``dw3_weights``), so
``vpmaddwd`` of the sign-extended input (32 channels of one pixel, one vpmovsxbw) and a weight
vector is that tap's 16 products, no lane shuffle per tap (LLVM makes the multiply-adds
vpdpwssd on VNNI CPUs); the two accumulators hold the even and the odd channels, requantized by
mac_intrinsics._zrq64_store (one 64-bit rounding step per lane). The input offset is folded
into the bias (``bias + off * sum(w)``) and taps outside the input read ``-off`` (the zero
point: ``w * (-off)`` cancels its share), which is TFLite's sum modulo 2^32. The 32-byte loads
are not masked: a partial block's last channels read the next pixel's (times zero weights), and
rows whose loads could pass the array's end are gathered. Outputs go in strips of 4 pixels
(stride 1: 6 input vectors per kernel row serve the 4 pixels' 12 taps; the 1-3 pixels left at
a row's end are computed one by one). A band of rows with taps in the
padding is first copied into a scratch buffer padded with ``-off`` (int8, row runs copied 32
bytes at a time), so borders run the same strips.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .mac_intrinsics import HOST_CPU_NAME
from .mac_intrinsics import NJIT_OPTIONS as _NJ
from .mac_intrinsics import (_bcopy32, _bload_u, _bsplat32, _wload, _wmadd_acc, _wunpack_hi,
                             _wunpack_lo, _zchannels_hi, _zchannels_lo, _zeo_hi, _zeo_lo,
                             _zload_i32, _zq_consts, _zrq64_store, _zrq_consts, _zrq_store_c)
from ..arith import wrap_int32
from .fnptr import compiled_address
from .mac_pack import PackedDepthwiseWeights, aligned, unpack_depthwise_weights
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
    nb, ng = _plan(N, oh, ow, C32 // 32, nthreads, 256, False)
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


# ---------------------------------------------------------------------------
# 3x3 depthwise, int8 input read in place (see the module docstring)
# ---------------------------------------------------------------------------


def fold_bias(bias: np.ndarray, w: np.ndarray, off: int, size: int) -> np.ndarray:
    """int32 [size]: ``bias + off * sum over the taps of w`` per channel (w: int8 [taps, C]),
    modulo 2^32 as the int32 accumulator wraps (arith.wrap_int32), zero past channel C."""
    C = w.shape[1]
    bf = np.zeros(size, np.int64)
    bf[:C] = np.asarray(bias, np.int64) + int(off) * w.astype(np.int64).sum(0)
    return wrap_int32.py_func(bf).astype(np.int32)


def dw3_weights(pk: PackedDepthwiseWeights, bias: np.ndarray, off: int):
    """(weights, bias) of ``_dw3_*`` for 3x3 weights ``pk``: int16 [blocks][9 taps][even, odd][32]
    (the even vector has the weights of channels 0, 2, .. 30 of the block in those lanes and 0 in
    the odd lanes; the odd one the reverse) and int32 [blocks][even 16, odd 16] of
    ``bias + off * sum over the taps of w`` (modulo 2^32, as the int32 accumulator wraps)."""
    w = unpack_depthwise_weights(pk).reshape(9, -1)
    C = w.shape[1]
    NCB = (C + 31) // 32
    v = np.zeros((9, NCB * 32), np.int16)
    v[:, :C] = w
    v = v.reshape(9, NCB, 32).transpose(1, 0, 2)
    wk = np.zeros((NCB, 9, 2, 32), np.int16)
    wk[:, :, 0, 0::2] = v[:, :, 0::2]
    wk[:, :, 1, 1::2] = v[:, :, 1::2]
    bf = fold_bias(bias, w, off, NCB * 32)
    return aligned(wk.reshape(-1)), aligned(bf.reshape(NCB, 16, 2).transpose(0, 2, 1).reshape(-1))


#: the largest right shift of the one-step rounding: zp * 2^(31 + e) must leave the 64-bit sum
#: p + constant inside int64 (|p| < 2^62, |zp| <= 128)
Q64_MAX_SHIFT = 23


def dw3_requant(cp: np.ndarray, channels: int, zp: int) -> np.ndarray | None:
    """The constants of mac_intrinsics._zrq64_store for a FusedRequant's ``cp`` and output zero
    point ``zp``: int64 [blocks of 16 channels][m, 2^30 + (2^(e+30) or 0) + zp * 2^(31+e),
    2^31 or 0, 31 + e][even lanes, odd lanes][8] (e: the right shift); None when a channel has a
    left shift or an INT32_MIN multiplier (not ``fast``), a right shift above Q64_MAX_SHIFT, or
    zp is outside int8's range: the general requantization takes the layer."""
    if not cp[5, 0] or not -128 <= zp <= 127 or (cp[2, :channels] > Q64_MAX_SHIFT).any():
        return None
    C16 = (channels + 63) // 64 * 64  # blocks of 32 (depthwise_zmm) or 64 (depthwise_vnni) channels
    m = np.zeros(C16, np.int64)
    e = np.zeros(C16, np.int64)
    m[:channels] = cp[0, :channels]
    e[:channels] = cp[2, :channels]
    k = np.stack([m, (1 << 30) + np.where(e >= 1, np.int64(1) << (e + 30), 0) + (np.int64(zp) << (31 + e)),
                  np.where(e >= 1, np.int64(1) << 31, 0), 31 + e])
    return aligned(k.reshape(4, C16 // 16, 8, 2).transpose(1, 0, 3, 2).reshape(-1))


@njit(inline="always", **_NJ)
def _tap3(a, v0, v1, v2, wk, wb):
    """a + the three taps of one kernel row (weights from wk[wb]: even or odd lanes)."""
    return _wmadd_acc(_wmadd_acc(_wmadd_acc(a, v0, _wload(wk, wb)), v1, _wload(wk, wb + 64)), v2,
                      _wload(wk, wb + 128))


@njit(inline="always", **_NJ)
def _row1(src, o, cs, ae, ao, wk, wb):
    v0 = _bload_u(src, o)
    v1 = _bload_u(src, o + cs)
    v2 = _bload_u(src, o + 2 * cs)
    return _tap3(ae, v0, v1, v2, wk, wb), _tap3(ao, v0, v1, v2, wk, wb + 32)


@njit(inline="always", **_NJ)
def _row4s1(src, o, cs, a, wk, wb):
    """One kernel row of 4 adjacent output pixels at stride 1: 6 input vectors, 24 vpmaddwd."""
    v0 = _bload_u(src, o)
    v1 = _bload_u(src, o + cs)
    v2 = _bload_u(src, o + 2 * cs)
    v3 = _bload_u(src, o + 3 * cs)
    v4 = _bload_u(src, o + 4 * cs)
    v5 = _bload_u(src, o + 5 * cs)
    return (_tap3(a[0], v0, v1, v2, wk, wb), _tap3(a[1], v0, v1, v2, wk, wb + 32),
            _tap3(a[2], v1, v2, v3, wk, wb), _tap3(a[3], v1, v2, v3, wk, wb + 32),
            _tap3(a[4], v2, v3, v4, wk, wb), _tap3(a[5], v2, v3, v4, wk, wb + 32),
            _tap3(a[6], v3, v4, v5, wk, wb), _tap3(a[7], v3, v4, v5, wk, wb + 32))


@njit(inline="always", **_NJ)
def _row4s2(src, o, cs, a, wk, wb):
    """One kernel row of 4 adjacent output pixels at stride 2: 9 input vectors."""
    v0 = _bload_u(src, o)
    v1 = _bload_u(src, o + cs)
    v2 = _bload_u(src, o + 2 * cs)
    v3 = _bload_u(src, o + 3 * cs)
    v4 = _bload_u(src, o + 4 * cs)
    v5 = _bload_u(src, o + 5 * cs)
    v6 = _bload_u(src, o + 6 * cs)
    v7 = _bload_u(src, o + 7 * cs)
    v8 = _bload_u(src, o + 8 * cs)
    return (_tap3(a[0], v0, v1, v2, wk, wb), _tap3(a[1], v0, v1, v2, wk, wb + 32),
            _tap3(a[2], v2, v3, v4, wk, wb), _tap3(a[3], v2, v3, v4, wk, wb + 32),
            _tap3(a[4], v4, v5, v6, wk, wb), _tap3(a[5], v4, v5, v6, wk, wb + 32),
            _tap3(a[6], v6, v7, v8, wk, wb), _tap3(a[7], v6, v7, v8, wk, wb + 32))


@njit(inline="always", **_NJ)
def _st32(o8, oo, e, od, rq0, rq1, qzp, qlo, qhi, nv):
    _zrq64_store(o8, oo, _zeo_lo(e, od), rq0, qlo, qhi, nv)
    _zrq64_store(o8, oo + 16, _zeo_hi(e, od), rq1, qlo, qhi, nv - 16)


@njit(inline="always", **_NJ)
def _dw3_run(src, o, rs, cs, sw, nox, wk, wb, be, bo, rq0, rq1, qzp, qlo, qhi, o8, oo, Cout, nv):
    """nox output pixels of one row and 32-channel block; the first one's top-left tap at
    src[o], kernel rows rs apart, input pixels cs apart, output pixels at o8[oo], Cout apart;
    the block's bias (be, bo) and requantization constants (rq0, rq1) in registers."""
    p = 0
    step = sw * cs
    if sw <= 2:
        # strips while 4 pixels are left; the last 1-3 take the 1-pixel path below (an
        # overlapping last strip, which computes 4 for them, was 7-10 % slower on mobilenet_v2's
        # 14- and 7-pixel rows: both versions interleaved in one process, one thread, Zen 4)
        while p + 4 <= nox:
            q = o + p * step
            a = (be, bo, be, bo, be, bo, be, bo)
            # the kernel rows as a loop, not three calls: each call site of these inlined
            # helpers (8 _tap3 each) costs Numba ~0.3 s of compilation; LLVM unrolls the loop
            if sw == 1:
                for ky in range(3):
                    a = _row4s1(src, q + ky * rs, cs, a, wk, wb + 192 * ky)
            else:
                for ky in range(3):
                    a = _row4s2(src, q + ky * rs, cs, a, wk, wb + 192 * ky)
            d = oo + p * Cout
            _st32(o8, d, a[0], a[1], rq0, rq1, qzp, qlo, qhi, nv)
            _st32(o8, d + Cout, a[2], a[3], rq0, rq1, qzp, qlo, qhi, nv)
            _st32(o8, d + 2 * Cout, a[4], a[5], rq0, rq1, qzp, qlo, qhi, nv)
            _st32(o8, d + 3 * Cout, a[6], a[7], rq0, rq1, qzp, qlo, qhi, nv)
            p += 4
    while p < nox:
        q = o + p * step
        e, od = be, bo
        for ky in range(3):
            e, od = _row1(src, q + ky * rs, cs, e, od, wk, wb + 192 * ky)
        _st32(o8, oo + p * Cout, e, od, rq0, rq1, qzp, qlo, qhi, nv)
        p += 1


@njit(inline="always", **_NJ)
def _copy_run(dst, d0, src, s0, n, padv, flip):
    """dst[d0:d0+n] = src[s0:s0+n] in 32-byte steps, the last one masked (nothing past
    src[s0+n] is read) and padded with padv up to the next multiple of 32; every byte xor
    ``flip``."""
    i = 0
    while i + 32 <= n:
        _bcopy32(dst, d0 + i, src, s0 + i, np.int64(0xFFFFFFFF), padv, flip)
        i += 32
    if i < n:
        _bcopy32(dst, d0 + i, src, s0 + i, (np.int64(1) << (n - i)) - 1, padv, flip)


@njit(**_NJ)
def _gather(xf, n, H, W, C, iy0, ix0, rows, cols, k0, Cb, padv, scr, flip):
    """scr[(r * cols + j) * Cb + t] = x[n, iy0 + r, ix0 + j, k0 + t] xor flip for r < rows,
    j < cols, t < Cb (a multiple of 32); padv (the zero point) xor flip outside the input and
    past channel C (flip -128: the uint8 x + 128 of depthwise_vnni, 0: x itself)."""
    nval = min(Cb, C - k0)
    nrun = (nval + 31) // 32 * 32  # what a pixel's copy writes
    padf = padv ^ flip
    rowlen = cols * Cb
    j0 = min(cols, max(0, -ix0))  # the columns inside the input: j0 <= j < j1
    j1 = max(j0, min(cols, W - ix0))
    for r in range(rows):
        iy = iy0 + r
        d = r * rowlen
        if iy < 0 or iy >= H:
            for i in range(0, rowlen, 32):
                _bsplat32(scr, d + i, padf)
            continue
        for i in range(0, j0 * Cb, 32):
            _bsplat32(scr, d + i, padf)
        for i in range(j1 * Cb, rowlen, 32):
            _bsplat32(scr, d + i, padf)
        s0 = ((n * H + iy) * W + ix0) * C + k0
        if Cb == C:  # every channel, a multiple of 32: one contiguous run a row
            _copy_run(scr, d + j0 * Cb, xf, s0 + j0 * C, (j1 - j0) * C, padv, flip)
            continue
        for j in range(j0, j1):
            _copy_run(scr, d + j * Cb, xf, s0 + j * C, nval, padv, flip)
            for i in range(nrun, Cb, 32):  # 64-channel blocks: whole 32-byte runs past C
                _bsplat32(scr, d + j * Cb + i, padf)


@njit(inline="always", **_NJ)
def _band_item(item, nb, ng, oh, nblocks):
    """(image, first and end output row, first and end channel block) of a 3x3 kernel's work
    item ``item`` of ``part`` (nb, ng, ..): images outer, then bands, then block groups."""
    n = item // (nb * ng)
    rem = item - n * nb * ng
    b = rem // ng
    g = rem - b * ng
    return n, (b * oh) // nb, ((b + 1) * oh) // nb, (g * nblocks) // ng, ((g + 1) * nblocks) // ng


def dw3_serial_address(x, pre, nthreads, post) -> int:
    """The address fnptr.run_items_par calls for the 3x3 kernel's items: _dw3_serial compiled
    for ``(x, *pre, nthreads, *post, part)``."""
    i = np.int64(0)
    return compiled_address(_dw3_serial, (x, *pre, nthreads, *post, (i, i, i, i)))


#: A threaded 3x3 layer's bands split further when one band's gathered input would pass this
#: many bytes: each thread then runs several bands in a row, in a scratch that stays in its
#: L2. AMD Zen ("znver*"): half of a Zen 4 core's 1 MiB L2 (session 10, layers alone). Others:
#: 128 KiB, measured in the model (benchmarks/bench_ab.py, 2 threads, Sapphire Rapids, three
#: runs of 41 interleaved profiles against 512 KiB): DEPTHWISE 0.948-0.959x and the CONV_2D
#: around it 0.969-0.976x (less of their data evicted by the scratch); 64 and 256 KiB within
#: 1-2 % of 128.
DW3_BAND_BYTES = 1 << 19 if HOST_CPU_NAME.startswith("znver") else 1 << 17


def dw3_part(xshape, oh, ow, nthreads=1, block=32):
    """_dw3_serial's ``part`` for every work item of a layer, split for ``nthreads``: (bands
    of output rows, groups of channel blocks (``block`` channels: 32 here, 64 in
    depthwise_vnni), first item, end item).

    Alone: bands of about 256 output pixels (mac_tiles._plan). On threads: one band of rows
    a thread, every channel in it (or, below 64 pixels or 2 rows a thread, one group of
    channel blocks a thread), split again while a band's input passes DW3_BAND_BYTES.
    Numba's prange hands each thread a contiguous run of items. The 4-items-a-thread split
    of mac_tiles._plan was 5-7 % slower over mobilenet_v2's 17 layers on 2 threads (both
    splits interleaved in one process, Zen 4): items that split the channels gather their
    input a pixel at a time, and every item re-gathers its band's edge rows."""
    N, H, W, C = xshape
    NCB = (C + block - 1) // block
    if nthreads <= 1:
        nb, ng = _plan.py_func(N, oh, ow, NCB, nthreads, 256, False)
    elif N * oh >= 2 * nthreads and oh * ow >= 64:
        nb, ng = min(oh, nthreads), 1
        while nb < oh and (H // nb + 3) * (W + 2) * block * NCB > DW3_BAND_BYTES:
            nb = min(oh, nb + nthreads)
    else:
        nb, ng = 1, min(NCB, nthreads)
    return (np.int64(nb), np.int64(ng), np.int64(0), np.int64(N * nb * ng))


@njit(**_NJ)
def _dw3_serial(x, wk, bk, qk, padv, sh, sw, pt, pl, oh, ow, nthreads, cp, qzp, qlo, qhi, out8, part):
    """Work items: a band of output rows of one image x a range of 32-channel blocks; blocks
    outer, so a block's bias and requantization constants stay in registers. A band whose taps
    all lie inside the input is read in place; any other (padding, or a partial block's loads
    reaching the input's end) is first gathered into ``scr`` with the item's channels, padded
    with the zero point, so every row runs the same 4-pixel strips.

    The items and the serial driver are one function (as mac_tiles._conv_serial) so that a
    serial run compiles the kernel once: a separate item function was compiled on its own and
    then again inside the driver that linked it.
    ``part`` = (nb, ng, first item, end item) (dw3_part): every item from Python, one from
    fnptr.run_items_par; the same tuple type both ways, so a run that takes both compiles this
    function once (an omitted ``part`` was a second specialization: 2.4 s more cold start).
    The scratch is allocated here, on first need, for one band."""
    N, H, W, C = x.shape
    NCB = (C + 31) // 32
    nb, ng, i0, i1 = part
    scr = np.empty(0, np.int8)
    o8 = out8.reshape(out8.size)
    xf = x.reshape(x.size)
    Wp = (ow - 1) * sw + 3
    for item in range(i0, i1):
        n, oy0, oy1, cb0, cb1 = _band_item(item, nb, ng, oh, NCB)
        if oy1 <= oy0:
            continue
        rows = (oy1 - oy0 - 1) * sh + 3  # input rows of the band
        iy0 = oy0 * sh - pt
        inside = iy0 >= 0 and iy0 + rows <= H and pl <= 0 and Wp - pl <= W
        # in place unless a tap is in the padding or a 32-byte load of a partial last block could
        # pass the array's end; else the band's channels are gathered once for all its blocks
        gathered = not (inside and (C % 32 == 0 or cb1 < NCB or n < N - 1 or iy0 + rows < H))
        Cb = 32 * (cb1 - cb0)
        if gathered:
            if scr.size < rows * Wp * Cb:
                scr = np.empty(((oh + nb - 1) // nb * sh + 3) * Wp * 32 * (NCB // ng + 1), np.int8)
            _gather(xf, n, H, W, C, iy0, -pl, rows, Wp, 32 * cb0, Cb, padv, scr, np.int8(0))
        for cb in range(cb0, cb1):
            c0 = 32 * cb
            nv = min(32, C - c0)
            wb = cb * 576
            # the block's constants, loaded once for all its rows
            rq0 = _zq_consts(qk, 4 * c0)
            rq1 = _zq_consts(qk, 4 * c0 + 64)
            be = _zload_i32(bk, c0)
            bo = _zload_i32(bk, c0 + 16)
            if gathered:
                src, o, rs, cs = scr, 32 * (cb - cb0), Wp * Cb, Cb
            else:
                src, o, rs, cs = xf, ((n * H + iy0) * W - pl) * C + c0, W * C, C
            for oy in range(oy0, oy1):
                _dw3_run(src, o + (oy - oy0) * sh * rs, rs, cs, sw, ow, wk, wb, be, bo, rq0, rq1, qzp, qlo, qhi,
                         o8, ((n * oh + oy) * ow) * C + c0, C, nv)
