"""CONV_2D / FULLY_CONNECTED on ``vpdpbusd`` (AVX512-VNNI or AVX-VNNI): four u8 x s8 products per
int32 lane per instruction, twice the MACs of the ``vpmaddwd`` kernels (hwsim.kernels.mac_tiles).

The same implicit GEMM and 4-pixel x 16-filter register tiles as mac_tiles, on bytes:

* The band buffer holds ``u = x + 128`` as uint8 (int8 activations only), and the padding
  ``128 - input_offset`` (in 0..255 for every int8 zero point; other offsets take the int16
  kernels). Then ``x + input_offset = u - (128 - input_offset)`` for inside taps, and a padding
  tap gives ``u - (128 - input_offset) = 0``, as TFLite's skipped tap. So
  ``acc = bias + sum (x + off) * w = [bias - (128 - off) * sum(w)] + sum u * w``, the bracket
  a per-filter constant over *all* taps (mac_pack.quad_weights' ``wsum``), the sum the
  ``vpdpbusd`` dot products. Every quad sum is at most 4 * 255 * 128 in magnitude; the int32
  lane arithmetic wraps exactly as TFLite's int32 accumulator (equal modulo 2**32, and both
  are int32).
* Weights: per group and block of 16 filters, runs of channel quads [quad][16 filters][4]
  (zeros past the run: a run's last quad may read up to three bytes past it).

Outputs: int32 accumulators, or (``cp`` given) int8 requantized in registers as in mac_tiles.
Called by hwsim.kernels.mac only on a CPU with VNNI (``mac_path() == "vnni"``): Numba compiles
these functions on their first call, so no other CPU ever builds them.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .mac_intrinsics import NJIT_OPTIONS as _NJ
from .mac_intrinsics import (_rq_store16, _vadd32, _vbcast_quad, _vcopy_flip32, _vdpbusd, _vload_i32x8, _vload_q,
                             _vrq_store, _vsplat_store32, _vstore_plain, _vzero32, _zadd,
                             _zbcast_quad, _zdpbusd, _zload_i32, _zload_q, _zrq_consts, _zrq_store_c,
                             _zstore_plain,
                             _zzero)
from .mac_tiles import plan_rows


@njit(inline="always", **_NJ)
def _fill_u8(buf, d0, n, pv):
    i = 0
    while i + 32 <= n:
        _vsplat_store32(buf, d0 + i, pv)
        i += 32
    while i < n:
        buf[np.uint64(d0 + i)] = pv  # unsigned: see mac_tiles._zero_run
        i += 1


@njit(**_NJ)
def _fill_band_u8(x, n, iy0, rows_in, pl, Wp, C, padv, buf):
    """buf[r, c, k] = x[n, iy0 + r, c - pl, k] + 128 as uint8; padv outside the input."""
    H = x.shape[1]
    W = x.shape[2]
    xf = x.reshape(x.size)
    pv = np.uint8(padv)
    c_lo = min(max(pl, 0), Wp)
    c_hi = max(c_lo, min(Wp, W + pl))
    rowlen = Wp * C
    for r in range(rows_in):
        iy = iy0 + r
        rb = r * rowlen
        if iy < 0 or iy >= H:
            _fill_u8(buf, rb, rowlen, pv)
            continue
        _fill_u8(buf, rb, c_lo * C, pv)
        _fill_u8(buf, rb + c_hi * C, rowlen - c_hi * C, pv)
        sbase = ((n * H + iy) * W + c_lo - pl) * C
        d0 = rb + c_lo * C
        nn = (c_hi - c_lo) * C
        i = 0
        while i + 32 <= nn:
            _vcopy_flip32(buf, d0 + i, xf, sbase + i)
            i += 32
        while i < nn:
            buf[np.uint64(d0 + i)] = np.uint8(np.int32(xf[np.uint64(sbase + i)]) + 128)
            i += 1


def conv_q_part(N, C, G, Coutg, OCBg, KH, KW, sw, dh, dw, oh, ow, bias, wsum, padv, nthreads=1):
    """The ``part`` of _conv_q_serial / _conv_z_serial for every work item of a layer: buffer
    width, packed bytes per 16 filters, the segments (xoff, woff, nquads), the per-block bias
    corrected for the padding byte (int32, wrapping as TFLite's int32 accumulator), the split
    for ``nthreads`` and the item range. In Python (no compilation): the callers in
    hwsim.kernels.mac make it once per layer plan."""
    Wp = (ow - 1) * sw + (KW - 1) * dw + 1
    CQg = (C // G + 3) // 4
    RQ = (KW * C + 3) // 4
    if G == 1 and dw == 1:  # a kernel row's taps are one run of channel quads
        blk = KH * RQ * 64
        ky = np.arange(KH, dtype=np.int64)
        sx, sw_, sn = ky * dh * Wp * C, ky * RQ * 64, np.full(KH, RQ, np.int64)
    else:
        blk = KH * KW * CQg * 64
        ky, kx = np.divmod(np.arange(KH * KW, dtype=np.int64), KW)
        sx, sw_, sn = (ky * dh * Wp + kx * dw) * C, (ky * KW + kx) * CQg * 64, np.full(KH * KW, CQg, np.int64)
    cb = (np.asarray(bias, np.int64) - np.int64(padv) * np.asarray(wsum, np.int64)).astype(np.int32)
    bp = np.zeros((G, OCBg * 16), np.int32)
    bp[:, :Coutg] = cb.reshape(G, Coutg)
    nb, ng = plan_rows(N, oh, ow, G * OCBg, nthreads)
    i64 = np.int64
    return (i64(Wp), i64(blk), np.ascontiguousarray(sx), np.ascontiguousarray(sw_), sn, bp.reshape(-1),
            i64(nb), i64(ng), i64(0), i64(N * nb * ng))


@njit(**_NJ)
def _conv_q_serial(x, wq, wsum, bias, padv, G, Coutg, OCBg, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow,
                   out, nthreads, fuse, cp, qzp, qlo, qhi, out8, part):
    """Work items (a band of output rows x a range of filter blocks), as mac_tiles._conv_serial:
    6 x 16, 4 x 8 and 1 x 16 tiles; accumulators start from bp (the corrected bias).

    The items and the serial driver are one function so that a serial run (every layer below
    PARALLEL_MIN_MACS) compiles the kernel once: a separate item function was compiled on its
    own and then again inside the driver that linked it (Numba re-optimizes linked code).
    ``part`` = the setup (conv_q_part) and the items to run: all of them from Python, one from
    the parallel driver; the same tuple type both ways, so the kernel compiles once.
    """
    Wp, blk, sx, sw_, sn, bp, nb, ng, i0, i1 = part
    Cg = x.shape[3] // G
    outf = out.reshape(out.size)
    o8 = out8.reshape(out8.size)
    for item in range(i0, i1):
        N, H, W, C = x.shape
        Cout = G * Coutg
        nblocks = G * OCBg
        n = item // (nb * ng)
        rem = item - n * nb * ng
        b = rem // ng
        q = rem - b * ng
        oy0 = (b * oh) // nb
        oy1 = ((b + 1) * oh) // nb
        R = oy1 - oy0
        jb0 = (q * nblocks) // ng
        jb1 = ((q + 1) * nblocks) // ng
        if R <= 0 or jb1 <= jb0:
            continue
        rows_in = (R - 1) * sh + (KH - 1) * dh + 1
        nbuf = rows_in * Wp * C
        buf = np.empty(nbuf + 4, np.uint8)
        for i in range(4):
            buf[nbuf + i] = 0
        _fill_band_u8(x, n, oy0 * sh - pt, rows_in, pl, Wp, C, padv, buf)
        M = R * ow
        pb = np.empty(M, np.int64)
        for r in range(R):
            for ox in range(ow):
                pb[r * ow + ox] = (r * sh * Wp + ox * sw) * C
        obase = ((n * oh + oy0) * ow) * Cout
        nseg = sx.shape[0]
        jb = jb0
        while jb < jb1:
            g = jb // OCBg
            j = jb - g * OCBg
            wb = jb * blk
            xg = g * Cg
            nv = min(16, Coutg - 16 * j)
            bidx = g * Coutg + 16 * j
            nv2 = Coutg - 16 * j - 16  # the filters of the group's next block
            if nv == 16 and 0 < nv2 <= 8 and jb + 1 < jb1 and M >= 4:
                # this block and a last one of 8 or fewer filters together: 4 pixels x 24
                # filters (12 accumulators, three weight loads a quad; the 8-filter block alone
                # would run 4 x 8 tiles, 4 chains: a third of its time issuing)
                wb2 = wb + blk
                ntile = (M + 3) // 4
                for t in range(ntile):
                    m = min(4 * t, M - 4)
                    o0 = obase + m * Cout + bidx
                    q0 = pb[m] + xg
                    q1 = pb[m + 1] + xg
                    q2 = pb[m + 2] + xg
                    q3 = pb[m + 3] + xg
                    a00 = _vload_i32x8(bp, 16 * jb)
                    a01 = _vload_i32x8(bp, 16 * jb + 8)
                    a02 = _vload_i32x8(bp, 16 * jb + 16)
                    a10 = a00
                    a11 = a01
                    a12 = a02
                    a20 = a00
                    a21 = a01
                    a22 = a02
                    a30 = a00
                    a31 = a01
                    a32 = a02
                    for s in range(nseg):
                        xo = sx[s]
                        p0 = q0 + xo
                        p1 = q1 + xo
                        p2 = q2 + xo
                        p3 = q3 + xo
                        wo = wb + sw_[s]
                        wo2 = wb2 + sw_[s]
                        for k in range(sn[s]):
                            w0 = _vload_q(wq, wo)
                            w1 = _vload_q(wq, wo + 32)
                            w2 = _vload_q(wq, wo2)
                            wo += 64
                            wo2 += 64
                            xv = _vbcast_quad(buf, p0)
                            a00 = _vdpbusd(a00, xv, w0)
                            a01 = _vdpbusd(a01, xv, w1)
                            a02 = _vdpbusd(a02, xv, w2)
                            xv = _vbcast_quad(buf, p1)
                            a10 = _vdpbusd(a10, xv, w0)
                            a11 = _vdpbusd(a11, xv, w1)
                            a12 = _vdpbusd(a12, xv, w2)
                            xv = _vbcast_quad(buf, p2)
                            a20 = _vdpbusd(a20, xv, w0)
                            a21 = _vdpbusd(a21, xv, w1)
                            a22 = _vdpbusd(a22, xv, w2)
                            xv = _vbcast_quad(buf, p3)
                            a30 = _vdpbusd(a30, xv, w0)
                            a31 = _vdpbusd(a31, xv, w1)
                            a32 = _vdpbusd(a32, xv, w2)
                            p0 += 4
                            p1 += 4
                            p2 += 4
                            p3 += 4
                    if cp is not None:
                        _rq_store16(o8, o0, a00, a01, cp, bidx, qzp, qlo, qhi, 16)
                        _vrq_store(o8, o0 + 16, a02, cp, bidx + 16, qzp, qlo, qhi, nv2)
                        _rq_store16(o8, o0 + Cout, a10, a11, cp, bidx, qzp, qlo, qhi, 16)
                        _vrq_store(o8, o0 + Cout + 16, a12, cp, bidx + 16, qzp, qlo, qhi, nv2)
                        _rq_store16(o8, o0 + 2 * Cout, a20, a21, cp, bidx, qzp, qlo, qhi, 16)
                        _vrq_store(o8, o0 + 2 * Cout + 16, a22, cp, bidx + 16, qzp, qlo, qhi, nv2)
                        _rq_store16(o8, o0 + 3 * Cout, a30, a31, cp, bidx, qzp, qlo, qhi, 16)
                        _vrq_store(o8, o0 + 3 * Cout + 16, a32, cp, bidx + 16, qzp, qlo, qhi, nv2)
                    else:
                        _vstore_plain(outf, o0, a00, 8)
                        _vstore_plain(outf, o0 + 8, a01, 8)
                        _vstore_plain(outf, o0 + 16, a02, nv2)
                        _vstore_plain(outf, o0 + Cout, a10, 8)
                        _vstore_plain(outf, o0 + Cout + 8, a11, 8)
                        _vstore_plain(outf, o0 + Cout + 16, a12, nv2)
                        _vstore_plain(outf, o0 + 2 * Cout, a20, 8)
                        _vstore_plain(outf, o0 + 2 * Cout + 8, a21, 8)
                        _vstore_plain(outf, o0 + 2 * Cout + 16, a22, nv2)
                        _vstore_plain(outf, o0 + 3 * Cout, a30, 8)
                        _vstore_plain(outf, o0 + 3 * Cout + 8, a31, 8)
                        _vstore_plain(outf, o0 + 3 * Cout + 16, a32, nv2)
                jb += 2
                continue
            # 6-pixel x 16-filter tiles (12 accumulators: vpdpbusd's latency of 5 cycles at two
            # a cycle needs 10 independent chains; 4 x 16 filled 0.8 of the issue slots). A
            # ragged end is one more tile ending at the last pixel (it recomputes up to 5 pixels
            # of the one before and stores the same values again).
            if nv > 8:
                n5 = (6 - M % 6) % 6 if M >= 20 else 0
                n6 = (M - 5 * n5) // 6
                ntile = n6
                if n5 == 0 and M > 6 and M % 6:
                    ntile += 1
                for t in range(ntile):
                    m = min(6 * t, M - 6)
                    o0 = obase + m * Cout + bidx
                    q0 = pb[m] + xg
                    q1 = pb[m + 1] + xg
                    q2 = pb[m + 2] + xg
                    q3 = pb[m + 3] + xg
                    q4 = pb[m + 4] + xg
                    q5 = pb[m + 5] + xg
                    a00 = _vload_i32x8(bp, 16 * jb)
                    a01 = _vload_i32x8(bp, 16 * jb + 8)
                    a10 = a00
                    a11 = a01
                    a20 = a00
                    a21 = a01
                    a30 = a00
                    a31 = a01
                    a40 = a00
                    a41 = a01
                    a50 = a00
                    a51 = a01
                    for s in range(nseg):
                        xo = sx[s]
                        p0 = q0 + xo
                        p1 = q1 + xo
                        p2 = q2 + xo
                        p3 = q3 + xo
                        p4 = q4 + xo
                        p5 = q5 + xo
                        wo = wb + sw_[s]
                        for k in range(sn[s]):
                            w0 = _vload_q(wq, wo)
                            w1 = _vload_q(wq, wo + 32)
                            wo += 64
                            xv = _vbcast_quad(buf, p0)
                            a00 = _vdpbusd(a00, xv, w0)
                            a01 = _vdpbusd(a01, xv, w1)
                            xv = _vbcast_quad(buf, p1)
                            a10 = _vdpbusd(a10, xv, w0)
                            a11 = _vdpbusd(a11, xv, w1)
                            xv = _vbcast_quad(buf, p2)
                            a20 = _vdpbusd(a20, xv, w0)
                            a21 = _vdpbusd(a21, xv, w1)
                            xv = _vbcast_quad(buf, p3)
                            a30 = _vdpbusd(a30, xv, w0)
                            a31 = _vdpbusd(a31, xv, w1)
                            xv = _vbcast_quad(buf, p4)
                            a40 = _vdpbusd(a40, xv, w0)
                            a41 = _vdpbusd(a41, xv, w1)
                            xv = _vbcast_quad(buf, p5)
                            a50 = _vdpbusd(a50, xv, w0)
                            a51 = _vdpbusd(a51, xv, w1)
                            p0 += 4
                            p1 += 4
                            p2 += 4
                            p3 += 4
                            p4 += 4
                            p5 += 4
                    if cp is not None:
                        _rq_store16(o8, o0, a00, a01, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + Cout, a10, a11, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + 2 * Cout, a20, a21, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + 3 * Cout, a30, a31, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + 4 * Cout, a40, a41, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + 5 * Cout, a50, a51, cp, bidx, qzp, qlo, qhi, nv)
                    else:
                        _vstore_plain(outf, o0, a00, 8)
                        _vstore_plain(outf, o0 + 8, a01, nv - 8)
                        _vstore_plain(outf, o0 + Cout, a10, 8)
                        _vstore_plain(outf, o0 + Cout + 8, a11, nv - 8)
                        _vstore_plain(outf, o0 + 2 * Cout, a20, 8)
                        _vstore_plain(outf, o0 + 2 * Cout + 8, a21, nv - 8)
                        _vstore_plain(outf, o0 + 3 * Cout, a30, 8)
                        _vstore_plain(outf, o0 + 3 * Cout + 8, a31, nv - 8)
                        _vstore_plain(outf, o0 + 4 * Cout, a40, 8)
                        _vstore_plain(outf, o0 + 4 * Cout + 8, a41, nv - 8)
                        _vstore_plain(outf, o0 + 5 * Cout, a50, 8)
                        _vstore_plain(outf, o0 + 5 * Cout + 8, a51, nv - 8)
                # then the five-pixel tiles: M = 6 a + 5 b exactly for every M >= 20 (b = -M
                # mod 6), where one more six-pixel tile would recompute up to 5 pixels (a 7x7
                # layer's 49: 54 computed)
                for t in range(n5):
                    m = 6 * n6 + 5 * t
                    o0 = obase + m * Cout + bidx
                    q0 = pb[m] + xg
                    q1 = pb[m + 1] + xg
                    q2 = pb[m + 2] + xg
                    q3 = pb[m + 3] + xg
                    q4 = pb[m + 4] + xg
                    a00 = _vload_i32x8(bp, 16 * jb)
                    a01 = _vload_i32x8(bp, 16 * jb + 8)
                    a10 = a00
                    a11 = a01
                    a20 = a00
                    a21 = a01
                    a30 = a00
                    a31 = a01
                    a40 = a00
                    a41 = a01
                    for s in range(nseg):
                        xo = sx[s]
                        p0 = q0 + xo
                        p1 = q1 + xo
                        p2 = q2 + xo
                        p3 = q3 + xo
                        p4 = q4 + xo
                        wo = wb + sw_[s]
                        for k in range(sn[s]):
                            w0 = _vload_q(wq, wo)
                            w1 = _vload_q(wq, wo + 32)
                            wo += 64
                            xv = _vbcast_quad(buf, p0)
                            a00 = _vdpbusd(a00, xv, w0)
                            a01 = _vdpbusd(a01, xv, w1)
                            xv = _vbcast_quad(buf, p1)
                            a10 = _vdpbusd(a10, xv, w0)
                            a11 = _vdpbusd(a11, xv, w1)
                            xv = _vbcast_quad(buf, p2)
                            a20 = _vdpbusd(a20, xv, w0)
                            a21 = _vdpbusd(a21, xv, w1)
                            xv = _vbcast_quad(buf, p3)
                            a30 = _vdpbusd(a30, xv, w0)
                            a31 = _vdpbusd(a31, xv, w1)
                            xv = _vbcast_quad(buf, p4)
                            a40 = _vdpbusd(a40, xv, w0)
                            a41 = _vdpbusd(a41, xv, w1)
                            p0 += 4
                            p1 += 4
                            p2 += 4
                            p3 += 4
                            p4 += 4
                    if cp is not None:
                        _rq_store16(o8, o0, a00, a01, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + Cout, a10, a11, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + 2 * Cout, a20, a21, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + 3 * Cout, a30, a31, cp, bidx, qzp, qlo, qhi, nv)
                        _rq_store16(o8, o0 + 4 * Cout, a40, a41, cp, bidx, qzp, qlo, qhi, nv)
                    else:
                        _vstore_plain(outf, o0, a00, 8)
                        _vstore_plain(outf, o0 + 8, a01, nv - 8)
                        _vstore_plain(outf, o0 + Cout, a10, 8)
                        _vstore_plain(outf, o0 + Cout + 8, a11, nv - 8)
                        _vstore_plain(outf, o0 + 2 * Cout, a20, 8)
                        _vstore_plain(outf, o0 + 2 * Cout + 8, a21, nv - 8)
                        _vstore_plain(outf, o0 + 3 * Cout, a30, 8)
                        _vstore_plain(outf, o0 + 3 * Cout + 8, a31, nv - 8)
                        _vstore_plain(outf, o0 + 4 * Cout, a40, 8)
                        _vstore_plain(outf, o0 + 4 * Cout + 8, a41, nv - 8)
                m = M if n5 else min(6 * ntile, M)
            else:
                ntile = M // 4
                if M > 4 and M % 4:
                    ntile += 1
                for t in range(ntile):
                    m = min(4 * t, M - 4)
                    o0 = obase + m * Cout + bidx
                    q0 = pb[m] + xg
                    q1 = pb[m + 1] + xg
                    q2 = pb[m + 2] + xg
                    q3 = pb[m + 3] + xg
                    a0 = _vload_i32x8(bp, 16 * jb)
                    a1 = a0
                    a2 = a0
                    a3 = a0
                    for s in range(nseg):
                        xo = sx[s]
                        p0 = q0 + xo
                        p1 = q1 + xo
                        p2 = q2 + xo
                        p3 = q3 + xo
                        wo = wb + sw_[s]
                        for k in range(sn[s]):
                            w0 = _vload_q(wq, wo)
                            wo += 64
                            a0 = _vdpbusd(a0, _vbcast_quad(buf, p0), w0)
                            a1 = _vdpbusd(a1, _vbcast_quad(buf, p1), w0)
                            a2 = _vdpbusd(a2, _vbcast_quad(buf, p2), w0)
                            a3 = _vdpbusd(a3, _vbcast_quad(buf, p3), w0)
                            p0 += 4
                            p1 += 4
                            p2 += 4
                            p3 += 4
                    if cp is not None:
                        _vrq_store(o8, o0, a0, cp, bidx, qzp, qlo, qhi, nv)
                        _vrq_store(o8, o0 + Cout, a1, cp, bidx, qzp, qlo, qhi, nv)
                        _vrq_store(o8, o0 + 2 * Cout, a2, cp, bidx, qzp, qlo, qhi, nv)
                        _vrq_store(o8, o0 + 3 * Cout, a3, cp, bidx, qzp, qlo, qhi, nv)
                    else:
                        _vstore_plain(outf, o0, a0, nv)
                        _vstore_plain(outf, o0 + Cout, a1, nv)
                        _vstore_plain(outf, o0 + 2 * Cout, a2, nv)
                        _vstore_plain(outf, o0 + 3 * Cout, a3, nv)
                m = min(4 * ntile, M)
            while m < M:
                o0 = obase + m * Cout + bidx
                q0 = pb[m] + xg
                a0 = _vload_i32x8(bp, 16 * jb)
                a1 = _vload_i32x8(bp, 16 * jb + 8)
                b0 = _vzero32()
                b1 = b0
                for s in range(nseg):
                    p0 = q0 + sx[s]
                    wo = wb + sw_[s]
                    ns = sn[s]
                    k = 0
                    while k + 1 < ns:
                        xv = _vbcast_quad(buf, p0)
                        a0 = _vdpbusd(a0, xv, _vload_q(wq, wo))
                        a1 = _vdpbusd(a1, xv, _vload_q(wq, wo + 32))
                        xv = _vbcast_quad(buf, p0 + 4)
                        b0 = _vdpbusd(b0, xv, _vload_q(wq, wo + 64))
                        b1 = _vdpbusd(b1, xv, _vload_q(wq, wo + 96))
                        wo += 128
                        p0 += 8
                        k += 2
                    if k < ns:
                        xv = _vbcast_quad(buf, p0)
                        a0 = _vdpbusd(a0, xv, _vload_q(wq, wo))
                        a1 = _vdpbusd(a1, xv, _vload_q(wq, wo + 32))
                if cp is not None:
                    _rq_store16(o8, o0, _vadd32(a0, b0), _vadd32(a1, b1), cp, bidx, qzp, qlo, qhi, nv)
                else:
                    _vstore_plain(outf, o0, _vadd32(a0, b0), nv)
                    _vstore_plain(outf, o0 + 8, _vadd32(a1, b1), nv - 8)
                m += 1
            jb += 1


# ---------------------------------------------------------------------------
# AVX-512 form: 8 pixels x 16 filters in zmm registers (one 64-byte weight load per quad)
# ---------------------------------------------------------------------------


@njit(**_NJ)
def _conv_z_serial(x, wq, wsum, bias, padv, G, Coutg, OCBg, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow,
                   out, nthreads, fuse, cp, qzp, qlo, qhi, out8, part):
    """_conv_q_serial with 512-bit vectors: a 16-filter block is one zmm of int32 lanes, so the
    tile is 8 pixels x 16 filters (8 independent accumulators) and the leftover pixels one at
    a time; the fused requantization works on 16 lanes.

    One function with its serial driver, and ``part`` as in _conv_q_serial.
    """
    Wp, blk, sx, sw_, sn, bp, nb, ng, i0, i1 = part
    Cg = x.shape[3] // G
    outf = out.reshape(out.size)
    o8 = out8.reshape(out8.size)
    for item in range(i0, i1):
        N, H, W, C = x.shape
        Cout = G * Coutg
        nblocks = G * OCBg
        n = item // (nb * ng)
        rem = item - n * nb * ng
        b = rem // ng
        q = rem - b * ng
        oy0 = (b * oh) // nb
        oy1 = ((b + 1) * oh) // nb
        R = oy1 - oy0
        jb0 = (q * nblocks) // ng
        jb1 = ((q + 1) * nblocks) // ng
        if R <= 0 or jb1 <= jb0:
            continue
        rows_in = (R - 1) * sh + (KH - 1) * dh + 1
        nbuf = rows_in * Wp * C
        buf = np.empty(nbuf + 4, np.uint8)
        for i in range(4):
            buf[nbuf + i] = 0
        _fill_band_u8(x, n, oy0 * sh - pt, rows_in, pl, Wp, C, padv, buf)
        M = R * ow
        pb = np.empty(M, np.int64)
        for r in range(R):
            for ox in range(ow):
                pb[r * ow + ox] = (r * sh * Wp + ox * sw) * C
        obase = ((n * oh + oy0) * ow) * Cout
        nseg = sx.shape[0]
        for jb in range(jb0, jb1):
            g = jb // OCBg
            j = jb - g * OCBg
            wb = jb * blk
            xg = g * Cg
            nv = min(16, Coutg - 16 * j)
            bidx = g * Coutg + 16 * j
            if cp is not None:
                rqc = _zrq_consts(cp, bidx)  # in registers for the block (see mac_tiles._dw_serial)
            # 8-pixel tiles; a ragged end is one more tile ending at the last pixel (it
            # recomputes up to 7 pixels of the one before and stores the same bytes again):
            # the single-pixel loop (one weight load per pixel) only for bands under 8 pixels
            ntile = (M + 7) // 8 if M >= 8 else 0
            for t in range(ntile):
                m = min(8 * t, M - 8)
                o0 = obase + m * Cout + bidx
                a0 = _zload_i32(bp, 16 * jb)
                a1 = a0
                a2 = a0
                a3 = a0
                a4 = a0
                a5 = a0
                a6 = a0
                a7 = a0
                for s in range(nseg):
                    xo = sx[s] + xg
                    p0 = pb[m] + xo
                    p1 = pb[m + 1] + xo
                    p2 = pb[m + 2] + xo
                    p3 = pb[m + 3] + xo
                    p4 = pb[m + 4] + xo
                    p5 = pb[m + 5] + xo
                    p6 = pb[m + 6] + xo
                    p7 = pb[m + 7] + xo
                    wo = wb + sw_[s]
                    for k in range(sn[s]):
                        w0 = _zload_q(wq, wo)
                        wo += 64
                        a0 = _zdpbusd(a0, _zbcast_quad(buf, p0), w0)
                        a1 = _zdpbusd(a1, _zbcast_quad(buf, p1), w0)
                        a2 = _zdpbusd(a2, _zbcast_quad(buf, p2), w0)
                        a3 = _zdpbusd(a3, _zbcast_quad(buf, p3), w0)
                        a4 = _zdpbusd(a4, _zbcast_quad(buf, p4), w0)
                        a5 = _zdpbusd(a5, _zbcast_quad(buf, p5), w0)
                        a6 = _zdpbusd(a6, _zbcast_quad(buf, p6), w0)
                        a7 = _zdpbusd(a7, _zbcast_quad(buf, p7), w0)
                        p0 += 4
                        p1 += 4
                        p2 += 4
                        p3 += 4
                        p4 += 4
                        p5 += 4
                        p6 += 4
                        p7 += 4
                if cp is not None:
                    _zrq_store_c(o8, o0, a0, rqc, qzp, qlo, qhi, nv)
                    _zrq_store_c(o8, o0 + Cout, a1, rqc, qzp, qlo, qhi, nv)
                    _zrq_store_c(o8, o0 + 2 * Cout, a2, rqc, qzp, qlo, qhi, nv)
                    _zrq_store_c(o8, o0 + 3 * Cout, a3, rqc, qzp, qlo, qhi, nv)
                    _zrq_store_c(o8, o0 + 4 * Cout, a4, rqc, qzp, qlo, qhi, nv)
                    _zrq_store_c(o8, o0 + 5 * Cout, a5, rqc, qzp, qlo, qhi, nv)
                    _zrq_store_c(o8, o0 + 6 * Cout, a6, rqc, qzp, qlo, qhi, nv)
                    _zrq_store_c(o8, o0 + 7 * Cout, a7, rqc, qzp, qlo, qhi, nv)
                else:
                    _zstore_plain(outf, o0, a0, nv)
                    _zstore_plain(outf, o0 + Cout, a1, nv)
                    _zstore_plain(outf, o0 + 2 * Cout, a2, nv)
                    _zstore_plain(outf, o0 + 3 * Cout, a3, nv)
                    _zstore_plain(outf, o0 + 4 * Cout, a4, nv)
                    _zstore_plain(outf, o0 + 5 * Cout, a5, nv)
                    _zstore_plain(outf, o0 + 6 * Cout, a6, nv)
                    _zstore_plain(outf, o0 + 7 * Cout, a7, nv)
            m = M if M >= 8 else 0
            while m < M:
                o0 = obase + m * Cout + bidx
                q0 = pb[m] + xg
                a0 = _zload_i32(bp, 16 * jb)
                b0 = _zzero()
                for s in range(nseg):
                    p0 = q0 + sx[s]
                    wo = wb + sw_[s]
                    ns = sn[s]
                    k = 0
                    while k + 1 < ns:
                        a0 = _zdpbusd(a0, _zbcast_quad(buf, p0), _zload_q(wq, wo))
                        b0 = _zdpbusd(b0, _zbcast_quad(buf, p0 + 4), _zload_q(wq, wo + 64))
                        wo += 128
                        p0 += 8
                        k += 2
                    if k < ns:
                        a0 = _zdpbusd(a0, _zbcast_quad(buf, p0), _zload_q(wq, wo))
                if cp is not None:
                    _zrq_store_c(o8, o0, _zadd(a0, b0), rqc, qzp, qlo, qhi, nv)
                else:
                    _zstore_plain(outf, o0, _zadd(a0, b0), nv)
                m += 1


