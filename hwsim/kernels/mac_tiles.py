"""Tile kernels of the fast MAC path (hwsim.kernels.mac): work split, band buffers, the conv /
FC implicit-GEMM register tiles and the depthwise tap-pair kernel, serial and parallel.

Called through the public entry points of hwsim.kernels.mac, which check the arguments, pack
the weights (hwsim.kernels.mac_pack) and choose serial or parallel; the method is described
there. Built from the intrinsics of hwsim.kernels.mac_intrinsics.

Compile time is part of the design (a cold start compiles every kernel a model uses): each
kernel's work items are written inside its serial driver (``_conv_serial``, ``_dw_serial``),
the small helpers are inlined, and element loops index with np.uint64 (see ``_zero_run``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .mac_intrinsics import NJIT_OPTIONS as _NJ
from .mac_intrinsics import (_cvt8, _rq_store16, _vadd16s, _vadd32, _vbcast_pair, _vcat16, _vload16,
                             _vload_i32x8, _vload_x16, _vmadd_acc, _vperm_hi, _vperm_lo,
                             _vrq_store, _vstore16, _vstore_acc, _vstore_plain, _vunpack_hi,
                             _vunpack_lo, _vzero16, _vzero32, _zero8, _zrq_consts, _zrq_store_c)

# ---------------------------------------------------------------------------
# Work splitting and band buffers
# ---------------------------------------------------------------------------


#: _plan's rows-first split gives an image of a few rows that do not divide among the threads
#: one group of channel blocks a thread instead (read when a kernel compiles; by plan_rows, at
#: each call).
FEW_ROWS_BY_CHANNELS = True
#: The 16-channel depthwise kernel splits its items by rows first (_plan). Read when the kernel
#: compiles.
DW16_ROWS_FIRST = True


@njit(inline="always", **_NJ)
def _plan(N, oh, ow, nblocks, nthreads, target_pix, rows_first):
    """Work split: (bands of output rows per image, groups of channel blocks).

    Bands of about target_pix output pixels. With threads and ``rows_first`` (the conv
    kernels and the 16-channel depthwise kernel): the rows split into a multiple of the thread
    count, each item filling its own band buffer (a band is filled once), and the channel
    blocks only when there are fewer rows than threads. Otherwise (the 32-channel depthwise
    kernels): with fewer than 4 items per thread the channel blocks are split first (bands stay
    long, so the 4-pixel tiles stay full), then the rows.

    Groups of channel blocks first cost the 1x1 convs a fill of the same band per group (4 for
    mobilenet_v2's 14x14 layers on 2 threads); the 16-channel depthwise kernel, split that
    way, ran 14x14x384 only 1.38x faster on 2 threads than on 1 and 28x28x192 at stride 2
    1.05x (1.55x and 1.46x rows first; docs/performance.md, session 13).
    """
    rows = max(1, min(oh, (target_pix + ow - 1) // ow))
    nb = (oh + rows - 1) // rows
    ng = np.int64(1)  # not a literal 1: inlined with nthreads=1, that type would reach the callers
    if nthreads > 1 and rows_first:
        if FEW_ROWS_BY_CHANNELS and N == 1 and oh % nthreads and oh < 4 * nthreads and nblocks >= nthreads:
            # a few rows that do not divide evenly (7x7 on 2 threads: 4 and 3): the channel
            # blocks in one group a thread
            return np.int64(1), np.int64(nthreads)
        if N * oh >= nthreads:
            per = (N * nb + nthreads - 1) // nthreads  # items per thread
            nb = min(oh, max(1, (per * nthreads + N - 1) // N))
        else:
            ng = max(1, min(nblocks, (nthreads + N * oh - 1) // (N * oh)))
            nb = oh
        return nb, ng
    want = 4 * nthreads
    if nthreads > 1 and N * nb < want:
        ng = max(1, min(nblocks, (want + N * nb - 1) // (N * nb)))
        if N * nb * ng < want:
            nb = min(oh, max(nb, (want + N * ng - 1) // (N * ng)))
    return nb, ng


def plan_rows(N, oh, ow, nblocks, nthreads, target_pix=256):
    """_plan's rows-first split, in Python (the conv kernels' parts are made there)."""
    return _plan.py_func(N, oh, ow, nblocks, nthreads, target_pix, True)


# The element loops below index with np.uint64: numba maps a negative signed index to one
# from the end, and LLVM, unable to rule that out, vectorized each such tail loop into a
# 32-lane scalarized scatter (~600 instructions per loop, compiled again in every caller:
# most of the cold-start compile time of _fill_band and its callers). The indices are >= 0.


@njit(inline="always", **_NJ)
def _zero_run(buf, start, n):
    z = _vzero16()
    i = 0
    while i + 16 <= n:
        _vstore16(buf, start + i, z)
        i += 16
    if i + 8 <= n:
        _zero8(buf, start + i)
        i += 8
    while i < n:
        buf[np.uint64(start + i)] = 0
        i += 1


@njit(inline="always", **_NJ)
def _convert_run(buf, d0, src, s0, n, off):
    """buf[d0:d0+n] = src[s0:s0+n] + off as int16."""
    i = 0
    while i + 16 <= n:
        _vstore16(buf, d0 + i, _vadd16s(_vload_x16(src, s0 + i), off))
        i += 16
    if i + 8 <= n:  # pixels of 8..15 channels (small layers)
        _cvt8(buf, d0 + i, src, s0 + i, off)
        i += 8
    while i < n:
        buf[np.uint64(d0 + i)] = np.int16(src[np.uint64(s0 + i)] + off)
        i += 1


@njit(**_NJ)
def _fill_band(x, n, iy0, rows_in, pl, Wp, C, dm, Cb, k0, off, buf):
    """buf[r, c, j] = x[n, iy0 + r, c - pl, (k0 + j) // dm] + off (int16), 0 outside the input.

    Slot j of a pixel holds expanded channel k0 + j (the depth multiplier expands the
    channels for depthwise; a depthwise item only needs its own channel range); slots
    past the C*dm expanded channels are 0.  Cb = slots per pixel.
    """
    H = x.shape[1]
    W = x.shape[2]
    xf = x.reshape(x.size)
    c_lo = min(max(pl, 0), Wp)  # first buffer column inside the input
    c_hi = max(c_lo, min(Wp, W + pl))
    rowlen = Wp * Cb
    nval = max(0, min(Cb, C * dm - k0))  # slots holding a real channel
    # input channel of each slot, counted up (a division per slot vectorized into ~170 scalar
    # divisions per caller at compile time, and cost one per element at run time)
    src = np.empty(nval if dm > 1 else 0, np.int64)
    ic = k0 // dm
    rep = k0 - ic * dm
    for j in range(src.shape[0]):
        src[j] = ic
        rep += 1
        if rep == dm:
            rep = 0
            ic += 1
    for r in range(rows_in):
        iy = iy0 + r
        rb = r * rowlen
        if iy < 0 or iy >= H:
            _zero_run(buf, rb, rowlen)
            continue
        _zero_run(buf, rb, c_lo * Cb)
        _zero_run(buf, rb + c_hi * Cb, rowlen - c_hi * Cb)
        nc = c_hi - c_lo
        sbase = ((n * H + iy) * W + c_lo - pl) * C
        if dm == 1 and k0 == 0 and Cb == C:
            _convert_run(buf, rb + c_lo * Cb, xf, sbase, nc * C, off)
        elif dm == 1:
            for c in range(nc):
                d0 = rb + (c_lo + c) * Cb
                _convert_run(buf, d0, xf, sbase + c * C + k0, nval, off)
                _zero_run(buf, d0 + nval, Cb - nval)
        elif C == 1:
            # one input channel (a grayscale first layer with a depth multiplier): every real
            # slot of a pixel holds the same value
            for c in range(nc):
                d0 = rb + (c_lo + c) * Cb
                v = np.int16(xf[sbase + c] + off)
                sp = _vadd16s(_vzero16(), v)
                i = 0
                while i + 16 <= nval:
                    _vstore16(buf, d0 + i, sp)
                    i += 16
                while i < nval:
                    buf[np.uint64(d0 + i)] = v
                    i += 1
                _zero_run(buf, d0 + nval, Cb - nval)
        else:
            for c in range(nc):
                d0 = rb + (c_lo + c) * Cb
                s0 = sbase + c * C
                for j in range(nval):
                    buf[np.uint64(d0 + j)] = np.int16(xf[np.uint64(s0 + src[j])] + off)
                _zero_run(buf, d0 + nval, Cb - nval)


# ---------------------------------------------------------------------------
# Conv / FC: implicit GEMM with 4x16 / 4x8 / 1x16 / 1x8 register tiles
# ---------------------------------------------------------------------------
# Packed weights, per group g and block j of 16 output channels:
#   wpk[((g*OCBg + j)*T + t)*CPg*32 + cp*32 + 2*lane + e] = w[oc = g*Coutg + 16*j + lane, t, 2*cp + e]
# (T = KH*KW taps, CPg = ceil(Cg/2) channel pairs, zeros past the real channels/filters).
# A "segment" is a run of channel pairs contiguous in both the band buffer and wpk:
# xoff (element offset from the pixel's buffer position), woff (offset in the block), npairs.
# A "chunk" is a group of segments summed in int32 before being added to the output.


@njit(inline="always", **_NJ)
def _conv_segments(merged, KH, KW, C, CPg, RP, dh, dw, Wp, int64_out):
    """Segments (xoff, woff, npairs) and chunk starts; the group offset is added by the caller.

    merged (groups == 1, dilation_w == 1): one run of KW*C buffer elements per kernel row,
    RP = ceil(KW*C/2) pairs, weights in the run layout.  Otherwise one run of the group's
    channels per tap, CPg = ceil(Cg/2) pairs.  An odd run's last pair reads one element
    past the run; its weight is 0.
    """
    if merged:
        nseg0 = KH
    else:
        nseg0 = KH * KW
    sx0 = np.empty(nseg0, np.int64)
    sw0 = np.empty(nseg0, np.int64)
    sn0 = np.empty(nseg0, np.int64)
    if merged:
        for ky in range(KH):
            sx0[ky] = ky * dh * Wp * C
            sw0[ky] = ky * RP * 32
            sn0[ky] = RP
    else:
        for ky in range(KH):
            for kx in range(KW):
                t = ky * KW + kx
                sx0[t] = (ky * dh * Wp + kx * dw) * C
                sw0[t] = t * CPg * 32
                sn0[t] = CPg
    if not int64_out:
        cks = np.empty(2, np.int64)
        cks[0] = 0
        cks[1] = nseg0
        return sx0, sw0, sn0, cks
    # 16x8: split so that every chunk sums at most 255 pairs in int32
    LIM = 255
    cnt = 0
    for s in range(nseg0):
        cnt += (sn0[s] + LIM - 1) // LIM
    sx = np.empty(cnt, np.int64)
    sw = np.empty(cnt, np.int64)
    sn = np.empty(cnt, np.int64)
    j = 0
    for s in range(nseg0):
        done = 0
        while done < sn0[s]:
            m = min(LIM, sn0[s] - done)
            sx[j] = sx0[s] + 2 * done
            sw[j] = sw0[s] + 32 * done
            sn[j] = m
            done += m
            j += 1
    ck = np.empty(cnt + 1, np.int64)
    nck = 0
    tot = LIM + 1
    for s in range(cnt):
        if tot + sn[s] > LIM:
            ck[nck] = s
            nck += 1
            tot = 0
        tot += sn[s]
    ck[nck] = cnt
    return sx, sw, sn, ck[: nck + 1].copy()


@njit(inline="always", **_NJ)
def _conv_setup(N, C, G, Coutg, OCBg, KH, KW, sw, dh, dw, oh, ow, bias, int64_out):
    Wp = (ow - 1) * sw + (KW - 1) * dw + 1
    merged = G == 1 and dw == 1
    CPg = (C // G + 1) // 2
    RP = (KW * C + 1) // 2
    blk = KH * RP * 32 if merged else KH * KW * CPg * 32  # packed elements per 16 filters
    sx, sw_, sn, cks = _conv_segments(merged, KH, KW, C, CPg, RP, dh, dw, Wp, int64_out)
    bp = np.zeros(G * OCBg * 16, np.int32)
    if not int64_out:
        for g in range(G):
            for i in range(Coutg):
                bp[np.uint64((g * OCBg + (i >> 4)) * 16 + (i & 15))] = bias[np.uint64(g * Coutg + i)]
    return Wp, blk, sx, sw_, sn, cks, bp


@njit(**_NJ)
def conv_part(N, C, G, Coutg, OCBg, KH, KW, sw, dh, dw, oh, ow, bias, int64_out, nb, ng):
    """The ``part`` of _conv_serial for every work item, split into ``nb`` bands of rows per
    image x ``ng`` groups of filter blocks (plan_rows): made once per layer plan by the callers
    in hwsim.kernels.mac."""
    Wp, blk, sx, sw_, sn, cks, bp = _conv_setup(N, C, G, Coutg, OCBg, KH, KW, sw, dh, dw, oh, ow, bias,
                                                int64_out)
    return (np.int64(Wp), np.int64(blk), sx, sw_, sn, cks, bp, np.int64(nb), np.int64(ng), np.int64(0),
            np.int64(N * nb * ng))


@njit(**_NJ)
def _conv_serial(x, wpk, bias, off, G, Coutg, OCBg, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, out,
                 int64_out, nthreads, fuse, cp, qzp, qlo, qhi, out8, part):
    """Conv / FC work items: each a band of output rows of one image x a range of filter
    blocks.

    The register tiles (4 pixels x 16 filters, 4 x 8, 1 x 16) are written out inline:
    numba does not inline calls to njit functions at the LLVM level here, and a call
    per tile (arrays pass as 7 scalars each) costs as much as a 1x1 conv tile's work.
    Accumulators start from bp (per-block padded int32 bias; zeros in 16x8 mode).
    plain (int32 result, one chunk): the sums are stored as they are; otherwise they are
    added to bias (first chunk) or to the partial result already stored.
    cp not None (fused; int8, plain only): the sums are requantized in registers and stored
    as int8 into o8 (_rq_store16 / _vrq_store with the padded constants cp and qzp, qlo, qhi;
    or with mac.avx2_requant's uint64 constants, FusedRequant.ql); outf is not
    written. ``fuse`` is implied by cp: Numba compiles the fused stores only for an array cp
    and the others only for cp None, so a run compiles the stores it uses.

    The items and the serial driver are one function so that a serial run (every layer below
    PARALLEL_MIN_MACS) compiles the kernel once: a separate item function was compiled on its
    own and then again inside the driver that linked it (Numba re-optimizes linked code).
    ``part`` = the setup (conv_part) and the items to run: all of them from Python, one from the
    parallel driver; the same tuple type both ways, so the kernel compiles once.
    """
    Wp, blk, sx, sw_, sn, cks, bp, nb, ng, i0, i1 = part
    plain = not int64_out
    Cg = x.shape[3] // G
    outf = out.reshape(out.size)
    o8 = out8.reshape(out8.size)
    for item in range(i0, i1):
        N, H, W, C = x.shape
        Cout = G * Coutg
        nck = cks.shape[0] - 1
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
        buf = np.empty(nbuf + 2, np.int16)
        buf[nbuf] = 0
        buf[nbuf + 1] = 0
        _fill_band(x, n, oy0 * sh - pt, rows_in, pl, Wp, C, np.int64(1), C, np.int64(0), off, buf)
        M = R * ow
        pb = np.empty(M, np.int64)
        for r in range(R):
            for ox in range(ow):
                pb[r * ow + ox] = (r * sh * Wp + ox * sw) * C
        obase = ((n * oh + oy0) * ow) * Cout
        for jb in range(jb0, jb1):
            g = jb // OCBg
            j = jb - g * OCBg
            wb = jb * blk
            xg = g * Cg
            nv = min(16, Coutg - 16 * j)
            bidx = g * Coutg + 16 * j
            # 4-pixel tiles; a ragged end is one more tile ending at the last pixel when the
            # stores are idempotent (requantized or plain int32, not the int64 sums added chunk by chunk): it stores the same values again
            ntile = M // 4
            if M > 4 and M % 4 and (cp is not None or plain):
                ntile += 1
            if nv > 8:
                # ---- 4 pixels x 16 filters: 8 accumulators, 2 weight vectors, 1 broadcast
                for t in range(ntile):
                    m = min(4 * t, M - 4)
                    o0 = obase + m * Cout + bidx
                    q0 = pb[m] + xg
                    q1 = pb[m + 1] + xg
                    q2 = pb[m + 2] + xg
                    q3 = pb[m + 3] + xg
                    for c in range(nck):
                        a00 = _vload_i32x8(bp, 16 * jb)
                        a01 = _vload_i32x8(bp, 16 * jb + 8)
                        a10 = a00
                        a11 = a01
                        a20 = a00
                        a21 = a01
                        a30 = a00
                        a31 = a01
                        for s in range(cks[c], cks[c + 1]):
                            xo = sx[s]
                            p0 = q0 + xo
                            p1 = q1 + xo
                            p2 = q2 + xo
                            p3 = q3 + xo
                            wo = wb + sw_[s]
                            for k in range(sn[s]):
                                w0 = _vload16(wpk, wo)
                                w1 = _vload16(wpk, wo + 16)
                                wo += 32
                                xv = _vbcast_pair(buf, p0)
                                a00 = _vmadd_acc(a00, xv, w0)
                                a01 = _vmadd_acc(a01, xv, w1)
                                xv = _vbcast_pair(buf, p1)
                                a10 = _vmadd_acc(a10, xv, w0)
                                a11 = _vmadd_acc(a11, xv, w1)
                                xv = _vbcast_pair(buf, p2)
                                a20 = _vmadd_acc(a20, xv, w0)
                                a21 = _vmadd_acc(a21, xv, w1)
                                xv = _vbcast_pair(buf, p3)
                                a30 = _vmadd_acc(a30, xv, w0)
                                a31 = _vmadd_acc(a31, xv, w1)
                                p0 += 2
                                p1 += 2
                                p2 += 2
                                p3 += 2
                        if cp is not None:
                            _rq_store16(o8, o0, a00, a01, cp, bidx, qzp, qlo, qhi, nv)
                            _rq_store16(o8, o0 + Cout, a10, a11, cp, bidx, qzp, qlo, qhi, nv)
                            _rq_store16(o8, o0 + 2 * Cout, a20, a21, cp, bidx, qzp, qlo, qhi, nv)
                            _rq_store16(o8, o0 + 3 * Cout, a30, a31, cp, bidx, qzp, qlo, qhi, nv)
                        elif plain:
                            _vstore_plain(outf, o0, a00, 8)
                            _vstore_plain(outf, o0 + 8, a01, nv - 8)
                            _vstore_plain(outf, o0 + Cout, a10, 8)
                            _vstore_plain(outf, o0 + Cout + 8, a11, nv - 8)
                            _vstore_plain(outf, o0 + 2 * Cout, a20, 8)
                            _vstore_plain(outf, o0 + 2 * Cout + 8, a21, nv - 8)
                            _vstore_plain(outf, o0 + 3 * Cout, a30, 8)
                            _vstore_plain(outf, o0 + 3 * Cout + 8, a31, nv - 8)
                        else:
                            f = c == 0
                            _vstore_acc(outf, o0, a00, bias, bidx, f, 8)
                            _vstore_acc(outf, o0 + 8, a01, bias, bidx + 8, f, nv - 8)
                            _vstore_acc(outf, o0 + Cout, a10, bias, bidx, f, 8)
                            _vstore_acc(outf, o0 + Cout + 8, a11, bias, bidx + 8, f, nv - 8)
                            _vstore_acc(outf, o0 + 2 * Cout, a20, bias, bidx, f, 8)
                            _vstore_acc(outf, o0 + 2 * Cout + 8, a21, bias, bidx + 8, f, nv - 8)
                            _vstore_acc(outf, o0 + 3 * Cout, a30, bias, bidx, f, 8)
                            _vstore_acc(outf, o0 + 3 * Cout + 8, a31, bias, bidx + 8, f, nv - 8)
            else:
                # ---- 4 pixels x 8 filters (a last block of at most 8 filters)
                for t in range(ntile):
                    m = min(4 * t, M - 4)
                    o0 = obase + m * Cout + bidx
                    q0 = pb[m] + xg
                    q1 = pb[m + 1] + xg
                    q2 = pb[m + 2] + xg
                    q3 = pb[m + 3] + xg
                    for c in range(nck):
                        a0 = _vload_i32x8(bp, 16 * jb)
                        a1 = a0
                        a2 = a0
                        a3 = a0
                        for s in range(cks[c], cks[c + 1]):
                            xo = sx[s]
                            p0 = q0 + xo
                            p1 = q1 + xo
                            p2 = q2 + xo
                            p3 = q3 + xo
                            wo = wb + sw_[s]
                            for k in range(sn[s]):
                                w0 = _vload16(wpk, wo)
                                wo += 32
                                a0 = _vmadd_acc(a0, _vbcast_pair(buf, p0), w0)
                                a1 = _vmadd_acc(a1, _vbcast_pair(buf, p1), w0)
                                a2 = _vmadd_acc(a2, _vbcast_pair(buf, p2), w0)
                                a3 = _vmadd_acc(a3, _vbcast_pair(buf, p3), w0)
                                p0 += 2
                                p1 += 2
                                p2 += 2
                                p3 += 2
                        if cp is not None:
                            _vrq_store(o8, o0, a0, cp, bidx, qzp, qlo, qhi, nv)
                            _vrq_store(o8, o0 + Cout, a1, cp, bidx, qzp, qlo, qhi, nv)
                            _vrq_store(o8, o0 + 2 * Cout, a2, cp, bidx, qzp, qlo, qhi, nv)
                            _vrq_store(o8, o0 + 3 * Cout, a3, cp, bidx, qzp, qlo, qhi, nv)
                        elif plain:
                            _vstore_plain(outf, o0, a0, nv)
                            _vstore_plain(outf, o0 + Cout, a1, nv)
                            _vstore_plain(outf, o0 + 2 * Cout, a2, nv)
                            _vstore_plain(outf, o0 + 3 * Cout, a3, nv)
                        else:
                            f = c == 0
                            _vstore_acc(outf, o0, a0, bias, bidx, f, nv)
                            _vstore_acc(outf, o0 + Cout, a1, bias, bidx, f, nv)
                            _vstore_acc(outf, o0 + 2 * Cout, a2, bias, bidx, f, nv)
                            _vstore_acc(outf, o0 + 3 * Cout, a3, bias, bidx, f, nv)
            # ---- remaining pixels one at a time, 16 filters, two interleaved pairs of sums
            m = min(4 * ntile, M)
            while m < M:
                o0 = obase + m * Cout + bidx
                q0 = pb[m] + xg
                for c in range(nck):
                    a0 = _vload_i32x8(bp, 16 * jb)
                    a1 = _vload_i32x8(bp, 16 * jb + 8)
                    b0 = _vzero32()
                    b1 = b0
                    for s in range(cks[c], cks[c + 1]):
                        p0 = q0 + sx[s]
                        wo = wb + sw_[s]
                        ns = sn[s]
                        k = 0
                        while k + 1 < ns:
                            xv = _vbcast_pair(buf, p0)
                            a0 = _vmadd_acc(a0, xv, _vload16(wpk, wo))
                            a1 = _vmadd_acc(a1, xv, _vload16(wpk, wo + 16))
                            xv = _vbcast_pair(buf, p0 + 2)
                            b0 = _vmadd_acc(b0, xv, _vload16(wpk, wo + 32))
                            b1 = _vmadd_acc(b1, xv, _vload16(wpk, wo + 48))
                            wo += 64
                            p0 += 4
                            k += 2
                        if k < ns:
                            xv = _vbcast_pair(buf, p0)
                            a0 = _vmadd_acc(a0, xv, _vload16(wpk, wo))
                            a1 = _vmadd_acc(a1, xv, _vload16(wpk, wo + 16))
                    if cp is not None:
                        _rq_store16(o8, o0, _vadd32(a0, b0), _vadd32(a1, b1), cp, bidx, qzp, qlo, qhi, nv)
                    elif plain:
                        _vstore_plain(outf, o0, _vadd32(a0, b0), nv)
                        _vstore_plain(outf, o0 + 8, _vadd32(a1, b1), nv - 8)
                    else:
                        f = c == 0
                        _vstore_acc(outf, o0, _vadd32(a0, b0), bias, bidx, f, nv)
                        _vstore_acc(outf, o0 + 8, _vadd32(a1, b1), bias, bidx + 8, f, nv - 8)
                m += 1


# ---------------------------------------------------------------------------
# Depthwise: two taps of the same channel per pmaddwd
# ---------------------------------------------------------------------------
# Packed weights, per block cb of 16 output channels and tap pair p (taps 2p, 2p+1;
# a missing odd tap has weight 0):
#   wpk[((cb*TP + p)*2 + h)*16 + 2*i + e] = w[tap 2p+e, channel 16*cb + LANE[h][i]]
#   LANE[0] = 0,1,2,3,8,9,10,11   LANE[1] = 4,5,6,7,12,13,14,15
# (the in-lane order of vpunpcklwd / vpunpckhwd).


@njit(inline="always", **_NJ)
def _vpair(buf, o, RS):
    """The vertical tap pair at buffer offset o: rows 0 and 1 of one input column, interleaved."""
    xa = _vload16(buf, o)
    xb = _vload16(buf, o + RS)
    return _vunpack_lo(xa, xb), _vunpack_hi(xa, xb)


@njit(inline="always", **_NJ)
def _acc2(lo, hi, pl, ph, wv, wo):
    """(lo, hi) + one tap pair (pl, ph) times its weights wv[wo:wo+32]."""
    return _vmadd_acc(lo, pl, _vload16(wv, wo)), _vmadd_acc(hi, ph, _vload16(wv, wo + 16))


@njit(inline="always", **_NJ)
def _row2(lo, hi, x0, x1, x2, wv, wvb):
    """Kernel row 2 of one pixel (its input columns x0, x1, x2): kx = 0 and 1 paired, kx = 2 with 0."""
    lo, hi = _acc2(lo, hi, _vunpack_lo(x0, x1), _vunpack_hi(x0, x1), wv, wvb + 96)
    z = _vzero16()
    return _acc2(lo, hi, _vunpack_lo(x2, z), _vunpack_hi(x2, z), wv, wvb + 128)


def dw_part(N, Cout, KH, KW, sw, dh, dw, oh, ow, bias, int64_out, nthreads=1):
    """The ``part`` of _dw_serial for every work item of a layer split for ``nthreads``: the
    tap offsets in buffer pixels (in pairs: an odd tap count repeats the last), the bias in the
    accumulators' lane order (zeros in 16x8 mode, where the bias is added at the store), the
    split (_plan) and the item range. In Python: the callers in hwsim.kernels.mac make it once
    per layer plan and thread count."""
    T = KH * KW
    TP = (T + 1) // 2
    Wp = (ow - 1) * sw + (KW - 1) * dw + 1
    ky, kx = np.divmod(np.arange(T, dtype=np.int64), KW)
    tapo = np.empty(2 * TP, np.int64)
    tapo[:T] = ky * dh * Wp + kx * dw
    tapo[T:] = tapo[T - 1]
    C16 = (Cout + 15) // 16 * 16
    bp = np.zeros(C16, np.int32)
    if not int64_out:
        # lane order of the accumulators: lo = 0-3, 8-11; hi = 4-7, 12-15
        c = np.arange(Cout)
        i = c & 15
        bp[c - i + (i & 3) + ((i >> 3) << 2) + (((i >> 2) & 1) << 3)] = np.asarray(bias)[:Cout]
    nb, ng = _plan.py_func(N, oh, ow, C16 // 16, nthreads, 256, DW16_ROWS_FIRST)
    i64 = np.int64
    return tapo, bp, i64(nb), i64(ng), i64(0), i64(N * nb * ng)


@njit(**_NJ)
def _dw_serial(x, wpk, bias, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, wv, out, int64_out, nthreads,
               fuse, cp, qzp, qlo, qhi, out8, part):
    """Depthwise work items: each a band of output rows of one image x a range of 16-channel
    blocks.

    Two output pixels at a time share each weight load.  Lane order inside the
    accumulators is that of vpunpck{l,h}wd (channels 0-3,8-11 | 4-7,12-15); bp holds
    the bias in that order (zeros in 16x8 mode, where the bias is added at the store).
    cp not None: requantized in registers and stored as int8 into o8, as in _conv_serial.
    ``wv`` (mac_pack.depthwise_weights3v; empty for other layers): a fused 3x3 layer at stride
    1 and dilation 1 takes the vertical tap pairs, one input column at a time: column c's
    kernel rows 0 and 1, interleaved once, feed pixels c - 2, c - 1 and c (per pixel of 16
    channels 3 loads and 6 unpacks, against 10 and 10 for the pairs in tap order); row 2 pairs
    its kx = 0 and 1 and leaves kx = 2 with a zero.

    The items and the serial driver are one function so that a serial run (every layer below
    PARALLEL_MIN_MACS) compiles the kernel once: a separate item function was compiled on its
    own and then again inside the driver that linked it (Numba re-optimizes linked code).
    ``part`` = the setup (dw_part) and the items to run: all of them from Python, one from
    the parallel driver (fnptr.run_items_par); the same tuple type both ways, so the kernel
    compiles once.
    """
    tapo, bp, nb, ng, i0, i1 = part
    plain = not int64_out
    outf = out.reshape(out.size)
    o8 = out8.reshape(out8.size)
    for item in range(i0, i1):
        N, H, W, C = x.shape
        Cout = C * dm
        C16 = (Cout + 15) // 16 * 16
        NCB = C16 // 16
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
            continue
        rows_in = (R - 1) * sh + (KH - 1) * dh + 1
        Cb = (cb1 - cb0) * 16  # channel slots in this item's buffer
        buf = np.empty(rows_in * Wp * Cb, np.int16)
        _fill_band(x, n, oy0 * sh - pt, rows_in, pl, Wp, C, dm, Cb, 16 * cb0, off, buf)
        xo = np.empty(2 * TP, np.int64)
        for t in range(2 * TP):
            xo[t] = tapo[t] * Cb
        step = sw * Cb
        RS = Wp * Cb  # one buffer row
        vert = cp is not None and wv.size > 0
        # rows outer, blocks inner: the three (KH) buffer rows an output row reads stay in cache
        # while every block of channels uses them (blocks outer streamed the whole band per block)
        for r in range(R):
            for cb in range(cb0, cb1):
                if cp is not None:
                    rqc = _zrq_consts(cp, 16 * cb)  # the block's requantization constants, in registers
                blo = _vload_i32x8(bp, 16 * cb)
                bhi = _vload_i32x8(bp, 16 * cb + 8)
                nv = min(16, Cout - 16 * cb)
                wcb = cb * TP * 32
                ob = ((n * oh + oy0 + r) * ow) * Cout + 16 * cb
                pc = r * sh * Wp * Cb + (cb - cb0) * 16
                if vert:
                    # columns c = 0, 1, .. of the window's rows; column c finishes pixel c - 2
                    # (its kx = 2 and row 2), adds kx = 1 to pixel c - 1 and starts pixel c
                    wvb = cb * 160
                    r2 = pc + 2 * RS
                    vl, vh = _vpair(buf, pc, RS)
                    p0l, p0h = _acc2(blo, bhi, vl, vh, wv, wvb)
                    vl, vh = _vpair(buf, pc + Cb, RS)
                    p0l, p0h = _acc2(p0l, p0h, vl, vh, wv, wvb + 32)
                    p1l, p1h = _acc2(blo, bhi, vl, vh, wv, wvb)
                    y0 = _vload16(buf, r2)
                    y1 = _vload16(buf, r2 + Cb)
                    o = ob
                    for c in range(2, ow + 2):
                        vl, vh = _vpair(buf, pc + c * Cb, RS)
                        lo, hi = _acc2(p0l, p0h, vl, vh, wv, wvb + 64)
                        y2 = _vload16(buf, r2 + c * Cb)
                        lo, hi = _row2(lo, hi, y0, y1, y2, wv, wvb)
                        _zrq_store_c(o8, o, _vcat16(_vperm_lo(lo, hi), _vperm_hi(lo, hi)), rqc, qzp, qlo, qhi, nv)
                        o += Cout
                        if c <= ow:  # pixel c - 1
                            p0l, p0h = _acc2(p1l, p1h, vl, vh, wv, wvb + 32)
                            if c < ow:  # pixel c
                                p1l, p1h = _acc2(blo, bhi, vl, vh, wv, wvb)
                        y0 = y1
                        y1 = y2
                    continue
                ox = 0
                while ox + 2 <= ow:
                    lo = blo
                    hi = bhi
                    lo2 = blo
                    hi2 = bhi
                    wo = wcb
                    for p in range(TP):
                        wl = _vload16(wpk, wo)
                        wh = _vload16(wpk, wo + 16)
                        wo += 32
                        o1 = pc + xo[2 * p]
                        o2 = pc + xo[2 * p + 1]
                        xa = _vload16(buf, o1)
                        xb = _vload16(buf, o2)
                        lo = _vmadd_acc(lo, _vunpack_lo(xa, xb), wl)
                        hi = _vmadd_acc(hi, _vunpack_hi(xa, xb), wh)
                        xa = _vload16(buf, o1 + step)
                        xb = _vload16(buf, o2 + step)
                        lo2 = _vmadd_acc(lo2, _vunpack_lo(xa, xb), wl)
                        hi2 = _vmadd_acc(hi2, _vunpack_hi(xa, xb), wh)
                    o = ob + ox * Cout
                    if cp is not None:
                        # 16 lanes in channel order: one zmm requantization on AVX-512 (two ymm
                        # halves elsewhere, as before)
                        _zrq_store_c(o8, o, _vcat16(_vperm_lo(lo, hi), _vperm_hi(lo, hi)), rqc,
                                     qzp, qlo, qhi, nv)
                        _zrq_store_c(o8, o + Cout, _vcat16(_vperm_lo(lo2, hi2), _vperm_hi(lo2, hi2)), rqc,
                                     qzp, qlo, qhi, nv)
                    elif plain:
                        _vstore_plain(outf, o, _vperm_lo(lo, hi), nv)
                        _vstore_plain(outf, o + 8, _vperm_hi(lo, hi), nv - 8)
                        _vstore_plain(outf, o + Cout, _vperm_lo(lo2, hi2), nv)
                        _vstore_plain(outf, o + Cout + 8, _vperm_hi(lo2, hi2), nv - 8)
                    else:
                        _vstore_acc(outf, o, _vperm_lo(lo, hi), bias, 16 * cb, True, nv)
                        _vstore_acc(outf, o + 8, _vperm_hi(lo, hi), bias, 16 * cb + 8, True, nv - 8)
                        _vstore_acc(outf, o + Cout, _vperm_lo(lo2, hi2), bias, 16 * cb, True, nv)
                        _vstore_acc(outf, o + Cout + 8, _vperm_hi(lo2, hi2), bias, 16 * cb + 8, True, nv - 8)
                    pc += 2 * step
                    ox += 2
                if ox < ow:
                    lo = blo
                    hi = bhi
                    wo = wcb
                    for p in range(TP):
                        xa = _vload16(buf, pc + xo[2 * p])
                        xb = _vload16(buf, pc + xo[2 * p + 1])
                        lo = _vmadd_acc(lo, _vunpack_lo(xa, xb), _vload16(wpk, wo))
                        hi = _vmadd_acc(hi, _vunpack_hi(xa, xb), _vload16(wpk, wo + 16))
                        wo += 32
                    o = ob + ox * Cout
                    if cp is not None:
                        _zrq_store_c(o8, o, _vcat16(_vperm_lo(lo, hi), _vperm_hi(lo, hi)), rqc,
                                     qzp, qlo, qhi, nv)
                    elif plain:
                        _vstore_plain(outf, o, _vperm_lo(lo, hi), nv)
                        _vstore_plain(outf, o + 8, _vperm_hi(lo, hi), nv - 8)
                    else:
                        _vstore_acc(outf, o, _vperm_lo(lo, hi), bias, 16 * cb, True, nv)
                        _vstore_acc(outf, o + 8, _vperm_hi(lo, hi), bias, 16 * cb + 8, True, nv - 8)


