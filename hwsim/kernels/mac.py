"""Exact MAC kernels: accumulators of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED.

The integers returned are those of TFLite's reference integer kernels *before*
requantization::

    acc[n, oy, ox, oc] = bias[oc] + sum over taps inside the input of (x + input_offset) * w

Taps that fall into the padding are skipped (they contribute nothing).  int8
activations give int32 accumulators (wrapping modulo 2**32 exactly like the
reference, should a sum ever overflow), int16 activations (16x8 mode) give
int64 accumulators.

Two implementations of each operation:

* ``*_acc_reference`` - plain njit loops with int64 accumulation; obviously right.
* the public ``*_acc`` functions - the fast path.  The work is split into items (a
  band of output rows of one image x a range of 16-channel blocks).  An item first
  converts the input rows its band needs into a small int16 buffer holding
  ``x + input_offset``, with the padding written as 0, so skipped taps contribute
  nothing without any special case (depthwise: channels expanded by the depth
  multiplier and padded with zeros to a multiple of 16).  The products are done
  with ``vpmaddwd`` (int16 x int16 pairs -> int32 sums) through small LLVM
  intrinsics:

  - conv / FC: implicit GEMM, no im2col.  A register tile of 4 output pixels x 16
    filters (8 accumulators) broadcasts a pair of buffer values and multiply-adds it
    with 16 filters' packed weight pairs.  With groups == 1 and dilation_w == 1 a
    kernel row's KW*Cin values are one contiguous run in both the buffer and the
    packed weights.  An odd run's last pair reads one value past the run, whose
    weight is 0.  Last blocks of <= 8 filters use a 4 x 8 tile, leftover pixels a
    1 x 16 one.
  - depthwise: the two taps of a tap pair are interleaved (vpunpck{l,h}wd) so one
    vpmaddwd sums both taps of 8 channels; two output pixels share each weight load.

  ``x + input_offset`` lies in [-255, 255] and ``w`` in [-128, 127], so every pair
  sum is exact in int32.  In 16x8 mode a pair sum is at most 2**23 in magnitude, so
  int32 partial sums over at most 255 pairs are exact; they are added into the int64
  result.

Layers with fewer than ``PARALLEL_MIN_MACS`` MACs (or NUMBA_NUM_THREADS=1) run on the
calling thread; larger ones on numba's thread pool (prange over items).

Weights can be packed once with the ``pack_*`` functions (the MAC kernels' prepare step does,
once per layer and Network: hwsim.kernels.conv); the public functions accept either the raw
TFLite weight array or the packed form.

The fast path is used whenever it is exact; the only cases handed to the reference
path are 16x8 with a non-zero input offset (TFLite requires a zero point of 0
there) and a depthwise kernel with more than 510 taps in 16x8 mode.
"""
from __future__ import annotations

import os

import numpy as np
from llvmlite import binding as _llvm_binding
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

__all__ = [
    "conv2d_acc",
    "conv2d_acc_reference",
    "depthwise_conv2d_acc",
    "depthwise_conv2d_acc_reference",
    "fully_connected_acc",
    "fully_connected_acc_reference",
    "pack_conv2d_weights",
    "pack_depthwise_weights",
    "pack_fully_connected_weights",
    "PackedConvWeights",
    "PackedDepthwiseWeights",
]

_NJ = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")

# ---------------------------------------------------------------------------
# SIMD vector values for numba: <16 x i16>, <8 x i32>, <8 x i64>
# ---------------------------------------------------------------------------


class _VecType(types.Type):
    def __init__(self, bits, lanes):
        self.bits = bits
        self.lanes = lanes
        super().__init__(name=f"hwsim_vec_i{bits}x{lanes}")


_i16x16 = _VecType(16, 16)
_i32x8 = _VecType(32, 8)
_i64x8 = _VecType(64, 8)


@register_model(_VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(fe_type.bits), fe_type.lanes))


def _host_has_avx2() -> bool:
    try:
        return "+avx2" in _llvm_binding.get_host_cpu_features().flatten().split(",")
    except Exception:  # pragma: no cover - unknown host
        return False


# HWSIM_PORTABLE_MAC=1 forces the portable multiply-add (the path CPUs without AVX2 take); the
# tests run both paths and require identical integers. Numba's cache is keyed by the CPU's
# features, so an AVX2 build is never loaded on a CPU without it.
_HAVE_AVX2 = _host_has_avx2() and os.environ.get("HWSIM_PORTABLE_MAC", "") in ("", "0")
_I32 = ir.IntType(32)
_V16 = ir.VectorType(ir.IntType(16), 16)
_V8 = ir.VectorType(_I32, 8)


def _elem_ptr(context, builder, arrty, arr, idx, elty):
    a = context.make_array(arrty)(context, builder, arr)
    return builder.bitcast(builder.gep(a.data, [idx]), elty.as_pointer())


def _mask(vals):
    return ir.Constant(ir.VectorType(_I32, len(vals)), list(vals))


@intrinsic
def _vload16(typingctx, arr, idx):
    """<16 x i16> loaded (unaligned) from int16 array ``arr`` at element ``idx``."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int16):
        return None

    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1], _V16)
        return builder.load(p, align=2)

    return _i16x16(arr, idx), codegen


@intrinsic
def _vbcast_pair(typingctx, arr, idx):
    """The int16 pair arr[idx], arr[idx+1] repeated 8 times as <16 x i16>."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int16):
        return None

    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1], _I32)
        v = builder.load(p, align=2)
        u = builder.insert_element(ir.Constant(_V8, ir.Undefined), v, ir.Constant(_I32, 0))
        s = builder.shuffle_vector(u, ir.Constant(_V8, ir.Undefined), _mask([0] * 8))
        return builder.bitcast(s, _V16)

    return _i16x16(arr, idx), codegen


def _madd_ir(context, builder, a, b):
    if _HAVE_AVX2:
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V8, [_V16, _V16]), "llvm.x86.avx2.pmadd.wd"
        )
        return builder.call(fn, [a, b])
    # portable form (correct everywhere; LLVM may or may not turn it into pmaddwd)
    u = ir.Constant(_V16, ir.Undefined)
    ev, od = _mask(range(0, 16, 2)), _mask(range(1, 16, 2))
    ae = builder.sext(builder.shuffle_vector(a, u, ev), _V8)
    ao = builder.sext(builder.shuffle_vector(a, u, od), _V8)
    be = builder.sext(builder.shuffle_vector(b, u, ev), _V8)
    bo = builder.sext(builder.shuffle_vector(b, u, od), _V8)
    return builder.add(builder.mul(ae, be), builder.mul(ao, bo))


@intrinsic
def _vmadd_acc(typingctx, acc, a, b):
    """acc + pmaddwd(a, b): int32 lane i += a[2i]*b[2i] + a[2i+1]*b[2i+1]."""
    if acc != _i32x8 or a != _i16x16 or b != _i16x16:
        return None

    def codegen(context, builder, sig, args):
        return builder.add(args[0], _madd_ir(context, builder, args[1], args[2]))

    return _i32x8(acc, a, b), codegen


@intrinsic
def _vzero32(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_V8, [0] * 8)

    return _i32x8(), codegen


@intrinsic
def _vunpack_lo(typingctx, a, b):
    """vpunpcklwd: per 128-bit lane interleave the low 4 words of a and b."""
    if a != _i16x16 or b != _i16x16:
        return None

    def codegen(context, builder, sig, args):
        m = [0, 16, 1, 17, 2, 18, 3, 19, 8, 24, 9, 25, 10, 26, 11, 27]
        return builder.shuffle_vector(args[0], args[1], _mask(m))

    return _i16x16(a, b), codegen


@intrinsic
def _vunpack_hi(typingctx, a, b):
    """vpunpckhwd: per 128-bit lane interleave the high 4 words of a and b."""
    if a != _i16x16 or b != _i16x16:
        return None

    def codegen(context, builder, sig, args):
        m = [4, 20, 5, 21, 6, 22, 7, 23, 12, 28, 13, 29, 14, 30, 15, 31]
        return builder.shuffle_vector(args[0], args[1], _mask(m))

    return _i16x16(a, b), codegen


@intrinsic
def _vperm_lo(typingctx, a, b):
    """Low 128 bits of a, then low 128 bits of b (vperm2i128 0x20)."""
    if a != _i32x8 or b != _i32x8:
        return None

    def codegen(context, builder, sig, args):
        return builder.shuffle_vector(args[0], args[1], _mask([0, 1, 2, 3, 8, 9, 10, 11]))

    return _i32x8(a, b), codegen


@intrinsic
def _vperm_hi(typingctx, a, b):
    """High 128 bits of a, then high 128 bits of b (vperm2i128 0x31)."""
    if a != _i32x8 or b != _i32x8:
        return None

    def codegen(context, builder, sig, args):
        return builder.shuffle_vector(args[0], args[1], _mask([4, 5, 6, 7, 12, 13, 14, 15]))

    return _i32x8(a, b), codegen


@intrinsic
def _vload_x16(typingctx, arr, idx):
    """16 elements of an int8 / int16 array from ``idx`` as <16 x i16> (int8 sign-extended)."""
    if not (isinstance(arr, types.Array) and arr.dtype in (types.int8, types.int16)):
        return None
    bits = arr.dtype.bitwidth

    def codegen(context, builder, sig, args):
        lt = ir.VectorType(ir.IntType(bits), 16)
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1], lt)
        v = builder.load(p, align=1)
        return builder.sext(v, _V16) if bits == 8 else v

    return _i16x16(arr, idx), codegen


@intrinsic
def _vadd16s(typingctx, v, s):
    """v + s in every int16 lane (wrapping)."""
    if v != _i16x16 or not isinstance(s, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        sv = builder.trunc(args[1], ir.IntType(16)) if sig.args[1].bitwidth > 16 else args[1]
        u = builder.insert_element(ir.Constant(_V16, ir.Undefined), sv, ir.Constant(_I32, 0))
        sp = builder.shuffle_vector(u, ir.Constant(_V16, ir.Undefined), _mask([0] * 16))
        return builder.add(args[0], sp)

    return _i16x16(v, s), codegen


@intrinsic
def _vstore16(typingctx, arr, idx, v):
    if not (isinstance(arr, types.Array) and arr.dtype == types.int16) or v != _i16x16:
        return None

    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1], _V16)
        builder.store(args[2], p, align=2)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


@intrinsic
def _vzero16(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_V16, [0] * 16)

    return _i16x16(), codegen


@intrinsic
def _vadd32(typingctx, a, b):
    if a != _i32x8 or b != _i32x8:
        return None

    def codegen(context, builder, sig, args):
        return builder.add(args[0], args[1])

    return _i32x8(a, b), codegen


@intrinsic
def _vstore_acc(typingctx, out, oidx, v, bias, bidx, first, nv):
    """out[oidx + i] = (bias[bidx + i] if first else out[oidx + i]) + v[i] for i < min(nv, 8).

    ``out`` and ``bias`` are both int32 or both int64 (then the int32 lanes of v are
    sign-extended).  Eight lanes go as one vector load/add/store.
    """
    if not (isinstance(out, types.Array) and isinstance(bias, types.Array)):
        return None
    if out.dtype not in (types.int32, types.int64) or bias.dtype != out.dtype or v != _i32x8:
        return None
    bits = out.dtype.bitwidth

    def codegen(context, builder, sig, args):
        aout, aoidx, av, abias, abidx, afirst, anv = args
        st = ir.IntType(bits)
        vt = ir.VectorType(st, 8)
        i64 = ir.IntType(64)
        oidx = context.cast(builder, aoidx, sig.args[1], types.int64)
        bidx = context.cast(builder, abidx, sig.args[4], types.int64)
        nv = context.cast(builder, anv, sig.args[6], types.int64)
        first = context.cast(builder, afirst, sig.args[5], types.boolean)
        vw = builder.sext(av, vt) if bits == 64 else av
        full = builder.icmp_signed(">=", nv, ir.Constant(i64, 8))
        with builder.if_else(full, likely=True) as (then, otherwise):
            with then:
                po = _elem_ptr(context, builder, sig.args[0], aout, oidx, vt)
                pb = _elem_ptr(context, builder, sig.args[3], abias, bidx, vt)
                base = builder.load(builder.select(first, pb, po), align=bits // 8)
                builder.store(builder.add(base, vw), po, align=bits // 8)
            with otherwise:
                for i in range(8):
                    ci = ir.Constant(i64, i)
                    with builder.if_then(builder.icmp_signed("<", ci, nv)):
                        po = _elem_ptr(context, builder, sig.args[0], aout, builder.add(oidx, ci), st)
                        pb = _elem_ptr(context, builder, sig.args[3], abias, builder.add(bidx, ci), st)
                        base = builder.load(builder.select(first, pb, po))
                        builder.store(builder.add(base, builder.extract_element(vw, ir.Constant(_I32, i))), po)
        return context.get_dummy_value()

    return types.none(out, oidx, v, bias, bidx, first, nv), codegen


@intrinsic
def _vload_i32x8(typingctx, arr, idx):
    if not (isinstance(arr, types.Array) and arr.dtype == types.int32):
        return None

    def codegen(context, builder, sig, args):
        p = _elem_ptr(context, builder, sig.args[0], args[0], args[1], _V8)
        return builder.load(p, align=4)

    return _i32x8(arr, idx), codegen


@intrinsic
def _vstore_plain(typingctx, out, oidx, v, nv):
    """out[oidx + i] = v[i] for i < min(nv, 8) (int32 out; int64 out gets sign-extended lanes)."""
    if not (isinstance(out, types.Array) and out.dtype in (types.int32, types.int64)) or v != _i32x8:
        return None
    bits = out.dtype.bitwidth

    def codegen(context, builder, sig, args):
        aout, aoidx, av, anv = args
        i64 = ir.IntType(64)
        st = ir.IntType(bits)
        vt = ir.VectorType(st, 8)
        vw = builder.sext(av, vt) if bits == 64 else av
        oidx = context.cast(builder, aoidx, sig.args[1], types.int64)
        nv = context.cast(builder, anv, sig.args[3], types.int64)
        full = builder.icmp_signed(">=", nv, ir.Constant(i64, 8))
        with builder.if_else(full, likely=True) as (then, otherwise):
            with then:
                builder.store(vw, _elem_ptr(context, builder, sig.args[0], aout, oidx, vt), align=bits // 8)
            with otherwise:
                for i in range(8):
                    ci = ir.Constant(i64, i)
                    with builder.if_then(builder.icmp_signed("<", ci, nv)):
                        po = _elem_ptr(context, builder, sig.args[0], aout, builder.add(oidx, ci), st)
                        builder.store(builder.extract_element(vw, ir.Constant(_I32, i)), po)
        return context.get_dummy_value()

    return types.none(out, oidx, v, nv), codegen


# ---------------------------------------------------------------------------
# Reference kernels (plain loops, int64 accumulation)
# ---------------------------------------------------------------------------


@njit(**_NJ)
def _conv_ref_kernel(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, groups, out):
    N, H, W, _ = x.shape
    Cout, KH, KW, Cg = w.shape
    fpg = Cout // groups
    for n in range(N):
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(Cout):
                    c0 = (oc // fpg) * Cg
                    s = np.int64(bias[oc])
                    for ky in range(KH):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= H:
                            continue
                        for kx in range(KW):
                            ix = ox * sw - pl + kx * dw
                            if ix < 0 or ix >= W:
                                continue
                            for c in range(Cg):
                                s += (np.int64(x[n, iy, ix, c0 + c]) + off) * np.int64(w[oc, ky, kx, c])
                    out[n, oy, ox, oc] = s


@njit(**_NJ)
def _dw_ref_kernel(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, dm, out):
    N, H, W, C = x.shape
    _, KH, KW, Cout = w.shape
    for n in range(N):
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(Cout):
                    ic = oc // dm
                    s = np.int64(bias[oc])
                    for ky in range(KH):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= H:
                            continue
                        for kx in range(KW):
                            ix = ox * sw - pl + kx * dw
                            if ix < 0 or ix >= W:
                                continue
                            s += (np.int64(x[n, iy, ix, ic]) + off) * np.int64(w[0, ky, kx, oc])
                    out[n, oy, ox, oc] = s


@njit(**_NJ)
def _fc_ref_kernel(x, w, bias, off, out):
    B, K = x.shape
    Cout = w.shape[0]
    for b in range(B):
        for o in range(Cout):
            s = np.int64(bias[o])
            for k in range(K):
                s += (np.int64(x[b, k]) + off) * np.int64(w[o, k])
            out[b, o] = s


# ---------------------------------------------------------------------------
# Work splitting and band buffers
# ---------------------------------------------------------------------------


@njit(**_NJ)
def _plan(N, oh, ow, nblocks, nthreads, target_pix):
    """Work split: (bands of output rows per image, groups of channel blocks).

    Bands of about target_pix output pixels; with fewer than 4 items per thread the
    channel blocks are split first (bands stay long, so the 4-pixel tiles stay full),
    then the rows.
    """
    rows = max(1, min(oh, (target_pix + ow - 1) // ow))
    nb = (oh + rows - 1) // rows
    ng = 1
    want = 4 * nthreads
    if nthreads > 1 and N * nb < want:
        ng = max(1, min(nblocks, (want + N * nb - 1) // (N * nb)))
        if N * nb * ng < want:
            nb = min(oh, max(nb, (want + N * ng - 1) // (N * ng)))
    return nb, ng


@njit(inline="always", **_NJ)
def _zero_run(buf, start, n):
    z = _vzero16()
    i = 0
    while i + 16 <= n:
        _vstore16(buf, start + i, z)
        i += 16
    while i < n:
        buf[start + i] = 0
        i += 1


@njit(inline="always", **_NJ)
def _convert_run(buf, d0, src, s0, n, off):
    """buf[d0:d0+n] = src[s0:s0+n] + off as int16."""
    i = 0
    while i + 16 <= n:
        _vstore16(buf, d0 + i, _vadd16s(_vload_x16(src, s0 + i), off))
        i += 16
    while i < n:
        buf[d0 + i] = np.int16(src[s0 + i] + off)
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
        else:
            for c in range(nc):
                d0 = rb + (c_lo + c) * Cb
                s0 = sbase + c * C
                for j in range(nval):
                    buf[d0 + j] = np.int16(xf[s0 + (k0 + j) // dm] + off)
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


@njit(**_NJ)
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


@njit(**_NJ)
def _conv_item(item, nb, ng, x, wpk, blk, bias, bp, plain, off, G, Cg, Coutg, OCBg, KH, KW,
               sh, sw, dh, pt, pl, oh, ow, Wp, outf, sx, sw_, sn, cks):
    """One work item: a band of output rows of one image x a range of filter blocks.

    The register tiles (4 pixels x 16 filters, 4 x 8, 1 x 16) are written out inline:
    numba does not inline calls to njit functions at the LLVM level here, and a call
    per tile (arrays pass as 7 scalars each) costs as much as a 1x1 conv tile's work.
    Accumulators start from bp (per-block padded int32 bias; zeros in 16x8 mode).
    plain (int32 result, one chunk): the sums are stored as they are; otherwise they are
    added to bias (first chunk) or to the partial result already stored.
    """
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
        return
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
        m = 0
        if nv > 8:
            # ---- 4 pixels x 16 filters: 8 accumulators, 2 weight vectors, 1 broadcast
            while m + 4 <= M:
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
                    if plain:
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
                m += 4
        else:
            # ---- 4 pixels x 8 filters (a last block of at most 8 filters)
            while m + 4 <= M:
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
                    if plain:
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
                m += 4
        # ---- remaining pixels one at a time, 16 filters, two interleaved pairs of sums
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
                if plain:
                    _vstore_plain(outf, o0, _vadd32(a0, b0), nv)
                    _vstore_plain(outf, o0 + 8, _vadd32(a1, b1), nv - 8)
                else:
                    f = c == 0
                    _vstore_acc(outf, o0, _vadd32(a0, b0), bias, bidx, f, nv)
                    _vstore_acc(outf, o0 + 8, _vadd32(a1, b1), bias, bidx + 8, f, nv - 8)
            m += 1


@njit(**_NJ)
def _conv_setup(N, C, G, Coutg, OCBg, KH, KW, sw, dh, dw, oh, ow, bias, int64_out, nthreads):
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
                bp[(g * OCBg + i // 16) * 16 + i % 16] = bias[g * Coutg + i]
    nb, ng = _plan(N, oh, ow, G * OCBg, nthreads, 256)
    return Wp, blk, sx, sw_, sn, cks, bp, nb, ng


@njit(parallel=True, **_NJ)
def _conv_par(x, wpk, bias, off, G, Coutg, OCBg, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, out,
              int64_out, nthreads):
    Wp, blk, sx, sw_, sn, cks, bp, nb, ng = _conv_setup(
        x.shape[0], x.shape[3], G, Coutg, OCBg, KH, KW, sw, dh, dw, oh, ow, bias, int64_out, nthreads)
    outf = out.reshape(out.size)
    for item in prange(x.shape[0] * nb * ng):
        _conv_item(np.int64(item), nb, ng, x, wpk, blk, bias, bp, not int64_out, off, G, x.shape[3] // G, Coutg,
                   OCBg, KH, KW, sh, sw, dh, pt, pl, oh, ow, Wp, outf, sx, sw_, sn, cks)


@njit(**_NJ)
def _conv_serial(x, wpk, bias, off, G, Coutg, OCBg, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, out,
                 int64_out, nthreads):
    Wp, blk, sx, sw_, sn, cks, bp, nb, ng = _conv_setup(
        x.shape[0], x.shape[3], G, Coutg, OCBg, KH, KW, sw, dh, dw, oh, ow, bias, int64_out, 1)
    outf = out.reshape(out.size)
    for item in range(x.shape[0] * nb * ng):
        _conv_item(item, nb, ng, x, wpk, blk, bias, bp, not int64_out, off, G, x.shape[3] // G, Coutg,
                   OCBg, KH, KW, sh, sw, dh, pt, pl, oh, ow, Wp, outf, sx, sw_, sn, cks)


#: Layers with fewer MACs than this run on the calling thread only (forking costs more).
PARALLEL_MIN_MACS = 1 << 20


def _conv_run(macs, *args):
    if macs >= PARALLEL_MIN_MACS:
        nt = get_num_threads()
        if nt > 1:
            _conv_par(*args, nt)
            return
    _conv_serial(*args, 1)


# ---------------------------------------------------------------------------
# Depthwise: two taps of the same channel per pmaddwd
# ---------------------------------------------------------------------------
# Packed weights, per block cb of 16 output channels and tap pair p (taps 2p, 2p+1;
# a missing odd tap has weight 0):
#   wpk[((cb*TP + p)*2 + h)*16 + 2*i + e] = w[tap 2p+e, channel 16*cb + LANE[h][i]]
#   LANE[0] = 0,1,2,3,8,9,10,11   LANE[1] = 4,5,6,7,12,13,14,15
# (the in-lane order of vpunpcklwd / vpunpckhwd).


@njit(**_NJ)
def _dw_item(item, nb, ng, x, wpk, bias, bp, plain, off, dm, KH, KW, sh, sw, dh, dw, pt, pl,
             oh, ow, outf, tapo):
    """One work item: a band of output rows of one image x a range of 16-channel blocks.

    Two output pixels at a time share each weight load.  Lane order inside the
    accumulators is that of vpunpck{l,h}wd (channels 0-3,8-11 | 4-7,12-15); bp holds
    the bias in that order (zeros in 16x8 mode, where the bias is added at the store).
    """
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
        return
    rows_in = (R - 1) * sh + (KH - 1) * dh + 1
    Cb = (cb1 - cb0) * 16  # channel slots in this item's buffer
    buf = np.empty(rows_in * Wp * Cb, np.int16)
    _fill_band(x, n, oy0 * sh - pt, rows_in, pl, Wp, C, dm, Cb, 16 * cb0, off, buf)
    xo = np.empty(2 * TP, np.int64)
    for t in range(2 * TP):
        xo[t] = tapo[t] * Cb
    step = sw * Cb
    for cb in range(cb0, cb1):
        blo = _vload_i32x8(bp, 16 * cb)
        bhi = _vload_i32x8(bp, 16 * cb + 8)
        nv = min(16, Cout - 16 * cb)
        wcb = cb * TP * 32
        for r in range(R):
            ob = ((n * oh + oy0 + r) * ow) * Cout + 16 * cb
            pc = r * sh * Wp * Cb + (cb - cb0) * 16
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
                if plain:
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
                if plain:
                    _vstore_plain(outf, o, _vperm_lo(lo, hi), nv)
                    _vstore_plain(outf, o + 8, _vperm_hi(lo, hi), nv - 8)
                else:
                    _vstore_acc(outf, o, _vperm_lo(lo, hi), bias, 16 * cb, True, nv)
                    _vstore_acc(outf, o + 8, _vperm_hi(lo, hi), bias, 16 * cb + 8, True, nv - 8)


@njit(**_NJ)
def _dw_setup(N, Cout, KH, KW, sw, dh, dw, oh, ow, bias, int64_out, nthreads):
    C16 = (Cout + 15) // 16 * 16
    T = KH * KW
    TP = (T + 1) // 2
    Wp = (ow - 1) * sw + (KW - 1) * dw + 1
    xo = np.empty(2 * TP, np.int64)  # tap offsets in buffer pixels
    for ky in range(KH):
        for kx in range(KW):
            xo[ky * KW + kx] = ky * dh * Wp + kx * dw
    if T & 1:
        xo[T] = xo[T - 1]
    bp = np.zeros(C16, np.int32)
    if not int64_out:
        for c in range(Cout):
            i = c % 16
            # lane order of the accumulators: lo = 0-3, 8-11; hi = 4-7, 12-15
            bp[c - i + (i % 4) + (4 if i >= 8 else 0) + (8 if (i % 8) >= 4 else 0)] = bias[c]
    nb, ng = _plan(N, oh, ow, C16 // 16, nthreads, 256)
    return xo, bp, nb, ng


@njit(parallel=True, **_NJ)
def _dw_par(x, wpk, bias, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, out, int64_out, nthreads):
    xo, bp, nb, ng = _dw_setup(x.shape[0], x.shape[3] * dm, KH, KW, sw, dh, dw, oh, ow, bias,
                               int64_out, nthreads)
    outf = out.reshape(out.size)
    for item in prange(x.shape[0] * nb * ng):
        _dw_item(np.int64(item), nb, ng, x, wpk, bias, bp, not int64_out, off, dm, KH, KW, sh, sw, dh, dw, pt, pl,
                 oh, ow, outf, xo)


@njit(**_NJ)
def _dw_serial(x, wpk, bias, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, out, int64_out, nthreads):
    xo, bp, nb, ng = _dw_setup(x.shape[0], x.shape[3] * dm, KH, KW, sw, dh, dw, oh, ow, bias,
                               int64_out, 1)
    outf = out.reshape(out.size)
    for item in range(x.shape[0] * nb * ng):
        _dw_item(item, nb, ng, x, wpk, bias, bp, not int64_out, off, dm, KH, KW, sh, sw, dh, dw, pt, pl,
                 oh, ow, outf, xo)


# ---------------------------------------------------------------------------
# Packing (once per layer: the kernels' prepare step)
# ---------------------------------------------------------------------------


class PackedConvWeights:
    """CONV_2D / FULLY_CONNECTED weights in the fast kernel's layout (see ``pack_conv2d_weights``)."""

    __slots__ = ("data", "data_run", "shape", "groups", "cout_g", "ocb_g")

    def __init__(self, data, data_run, shape, groups, cout_g, ocb_g):
        self.data = data
        self.data_run = data_run
        self.shape = shape
        self.groups = groups
        self.cout_g = cout_g
        self.ocb_g = ocb_g

    def __repr__(self):
        return f"PackedConvWeights(shape={self.shape}, groups={self.groups})"


class PackedDepthwiseWeights:
    """DEPTHWISE_CONV_2D weights in the fast kernel's layout (see ``pack_depthwise_weights``)."""

    __slots__ = ("data", "shape", "depth_multiplier")

    def __init__(self, data, shape, depth_multiplier):
        self.data = data
        self.shape = shape
        self.depth_multiplier = depth_multiplier

    def __repr__(self):
        return f"PackedDepthwiseWeights(shape={self.shape}, depth_multiplier={self.depth_multiplier})"


def _check_int8_weights(w, ndim, what):
    if not isinstance(w, np.ndarray) or w.ndim != ndim:
        raise ValueError(f"{what}: weights must be a {ndim}-d numpy array")
    if w.dtype != np.int8:
        raise ValueError(f"{what}: weights must be int8, got {w.dtype}")


def pack_conv2d_weights(w: np.ndarray, groups: int = 1) -> PackedConvWeights:
    """Pack TFLite OHWI int8 conv weights [Cout, KH, KW, Cin/groups] for ``conv2d_acc``.

    Returns a ``PackedConvWeights``; its ``data`` is a flat int16 array laid out as
    [groups][ceil(Cout_g/16)][KH*KW][ceil(Cin_g/2)][16 filters][2 channels], and (groups == 1)
    ``data_run`` as [ceil(Cout/16)][KH][ceil(KW*Cin/2)][16][2]: each kernel row's KW*Cin
    weights as one run (the same array as ``data`` when Cin is even).  Zeros pad.
    """
    _check_int8_weights(w, 4, "conv2d")
    Cout, KH, KW, Cg = (int(s) for s in w.shape)
    groups = int(groups)
    if groups < 1 or Cout % groups:
        raise ValueError(f"conv2d: {Cout} filters cannot be split into {groups} groups")
    Coutg = Cout // groups
    OCBg = (Coutg + 15) // 16
    data = _pack_runs(w.reshape(groups, Coutg, KH * KW, Cg), OCBg)
    data_run = data
    if groups == 1 and Cg % 2:
        data_run = _pack_runs(w.reshape(1, Cout, KH, KW * Cg), OCBg)
    return PackedConvWeights(data, data_run, (Cout, KH, KW, Cg), groups, Coutg, OCBg)


def _pack_runs(w4, OCB):
    """[G, Coutg, S, L] -> flat [G][OCB][S][ceil(L/2)][16][2] int16, zero padded."""
    G, Coutg, S, L = w4.shape
    L2 = L + (L & 1)
    wq = np.zeros((G, OCB * 16, S, L2), np.int16)
    wq[:, :Coutg, :, :L] = w4
    # move whole (channel pair) int32 units: much faster than a transpose of int16 pairs
    v = wq.view(np.int32).reshape(G, OCB, 16, S, L2 // 2).transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(v).view(np.int16).reshape(-1)


def pack_fully_connected_weights(w: np.ndarray) -> PackedConvWeights:
    """Pack int8 FC weights [Cout, K] for ``fully_connected_acc`` (a 1x1 conv packing)."""
    _check_int8_weights(w, 2, "fully_connected")
    return pack_conv2d_weights(w.reshape(w.shape[0], 1, 1, w.shape[1]), 1)


_DW_LANES = np.array([0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15])


def pack_depthwise_weights(w: np.ndarray, depth_multiplier: int = 1) -> PackedDepthwiseWeights:
    """Pack TFLite int8 depthwise weights [1, KH, KW, Cin*depth_multiplier] for ``depthwise_conv2d_acc``.

    Returns a ``PackedDepthwiseWeights`` whose ``data`` is a flat int16 array laid out as
    [ceil(Cout/16)][ceil(KH*KW/2) tap pairs][32]: per tap pair the two taps' weights of 16
    channels interleaved in vpunpck{l,h}wd lane order (zeros pad).
    """
    _check_int8_weights(w, 4, "depthwise_conv2d")
    if w.shape[0] != 1:
        raise ValueError(f"depthwise_conv2d: weights must be [1, KH, KW, C], got {w.shape}")
    _, KH, KW, Cout = (int(s) for s in w.shape)
    dm = int(depth_multiplier)
    if dm < 1 or Cout % dm:
        raise ValueError(f"depthwise_conv2d: {Cout} channels is not a multiple of depth_multiplier {dm}")
    T = KH * KW
    TP = (T + 1) // 2
    NCB = (Cout + 15) // 16
    wt = np.zeros((2 * TP, NCB * 16), np.int16)
    wt[:T, :Cout] = w.reshape(T, Cout)
    # [tap pair, e, block, half*8 + i] -> [block, pair, half, i, e]
    v = wt.reshape(TP, 2, NCB, 16)[:, :, :, _DW_LANES].reshape(TP, 2, NCB, 2, 8)
    data = np.ascontiguousarray(v.transpose(2, 0, 3, 4, 1)).reshape(-1)
    return PackedDepthwiseWeights(data, (1, KH, KW, Cout), dm)


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def _check_x(x, ndim, what):
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        raise ValueError(f"{what}: input must be a {ndim}-d numpy array")
    if x.dtype == np.int8:
        return False
    if x.dtype == np.int16:
        return True
    raise ValueError(f"{what}: input must be int8 or int16, got {x.dtype}")


def _bias_array(bias, cout, wide, what):
    dt = np.int64 if wide else np.int32
    if bias is None:
        return np.zeros(cout, dt)
    if type(bias) is np.ndarray and bias.dtype == dt and bias.shape == (cout,):
        return _req(bias)
    b = np.asarray(bias)
    if b.shape != (cout,) or b.dtype.kind not in "iu":
        raise ValueError(f"{what}: bias must be an integer array of shape ({cout},)")
    if b.dtype != dt:
        if not wide and b.size and (b.min() < -(2**31) or b.max() >= 2**31):
            raise ValueError(f"{what}: bias does not fit in int32")
        b = b.astype(dt)
    return _req(b)


def _req(a):
    """C-contiguous, aligned, writeable (one compiled signature per dtype)."""
    f = a.flags
    if f.c_contiguous and f.writeable and f.aligned:
        return a
    return np.array(a, order="C")


def _check_geometry(what, sh, sw, dh, dw, oh, ow):
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(f"{what}: strides and dilations must be >= 1")
    if oh < 0 or ow < 0:
        raise ValueError(f"{what}: negative output size")


def _offset_ok(wide, off):
    # int8: x + off must fit int16 (always true for |off| <= 32767 - 128); 16x8: needs off == 0
    return off == 0 if wide else -32000 <= off <= 32000


def conv2d_acc(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
               pad_top, pad_left, out_h, out_w, groups=1):
    """Exact CONV_2D accumulators (fast path).  ``w``: int8 OHWI array or ``pack_conv2d_weights(w, groups)``.

    Returns int32 [N, out_h, out_w, Cout] for int8 ``x``, int64 for int16 ``x``.
    """
    wide = _check_x(x, 4, "conv2d")
    if isinstance(w, PackedConvWeights):
        pk = w
        if pk.groups != groups:
            raise ValueError(f"conv2d: weights were packed for groups={pk.groups}, not {groups}")
    else:
        pk = pack_conv2d_weights(w, groups)
    Cout, KH, KW, Cg = pk.shape
    N, H, W, C = x.shape
    if C != Cg * groups:
        raise ValueError(f"conv2d: input has {C} channels, weights expect {Cg} x {groups} groups")
    sh, sw, dh, dw = int(stride_h), int(stride_w), int(dilation_h), int(dilation_w)
    pt, pl, oh, ow = int(pad_top), int(pad_left), int(out_h), int(out_w)
    off = int(input_offset)
    _check_geometry("conv2d", sh, sw, dh, dw, oh, ow)
    b = _bias_array(bias, Cout, wide, "conv2d")
    out = np.empty((N, oh, ow, Cout), np.int64 if wide else np.int32)
    if out.size == 0:
        return out
    if not _offset_ok(wide, off):
        _conv_ref_kernel(_req(x), _req(w) if isinstance(w, np.ndarray) else _unpack_conv(pk), b, off,
                         sh, sw, dh, dw, pt, pl, oh, ow, groups, out)
        return out
    x = _req(x)
    macs = out.size * KH * KW * Cg
    if KH == 1 and KW == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and oh == H and ow == W:
        # pointwise: fold the batch into the rows so tiles span images
        xr = x.reshape(1, N * H, W, C)
        outr = out.reshape(1, N * oh, ow, Cout)
        _conv_run(macs, xr, pk.data_run, b, off, groups, pk.cout_g, pk.ocb_g,
                  1, 1, 1, 1, 1, 1, 0, 0, N * oh, ow, outr, wide)
        return out
    wpk = pk.data_run if groups == 1 and dw == 1 else pk.data
    _conv_run(macs, x, wpk, b, off, groups, pk.cout_g, pk.ocb_g,
              KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, out, wide)
    return out


def _unpack_conv(pk: PackedConvWeights) -> np.ndarray:
    Cout, KH, KW, Cg = pk.shape
    G, Coutg, OCBg = pk.groups, pk.cout_g, pk.ocb_g
    Cg2 = Cg + (Cg & 1)
    v = pk.data.reshape(G, OCBg, KH * KW, Cg2 // 2, 16, 2).transpose(0, 1, 4, 2, 3, 5)
    v = v.reshape(G, OCBg * 16, KH * KW, Cg2)[:, :Coutg, :, :Cg]
    return np.ascontiguousarray(v.reshape(Cout, KH, KW, Cg)).astype(np.int8)


def _unpack_dw(pk: PackedDepthwiseWeights) -> np.ndarray:
    _, KH, KW, Cout = pk.shape
    T = KH * KW
    TP = (T + 1) // 2
    NCB = (Cout + 15) // 16
    v = pk.data.reshape(NCB, TP, 2, 8, 2).transpose(1, 4, 0, 2, 3).reshape(TP, 2, NCB, 16)
    wt = np.empty_like(v)
    wt[:, :, :, _DW_LANES] = v
    return wt.reshape(2 * TP, NCB * 16)[:T, :Cout].reshape(1, KH, KW, Cout).astype(np.int8)


def depthwise_conv2d_acc(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
                         pad_top, pad_left, out_h, out_w, depth_multiplier):
    """Exact DEPTHWISE_CONV_2D accumulators (fast path).

    ``w``: int8 [1, KH, KW, Cin*depth_multiplier] or ``pack_depthwise_weights(w, depth_multiplier)``.
    Returns int32 [N, out_h, out_w, Cout] for int8 ``x``, int64 for int16 ``x``.
    """
    wide = _check_x(x, 4, "depthwise_conv2d")
    dm = int(depth_multiplier)
    if isinstance(w, PackedDepthwiseWeights):
        pk = w
        if pk.depth_multiplier != dm:
            raise ValueError(
                f"depthwise_conv2d: weights were packed for depth_multiplier={pk.depth_multiplier}, not {dm}"
            )
    else:
        pk = pack_depthwise_weights(w, dm)
    _, KH, KW, Cout = pk.shape
    N, H, W, C = x.shape
    if C * dm != Cout:
        raise ValueError(f"depthwise_conv2d: {C} input channels x {dm} != {Cout} weight channels")
    sh, sw, dh, dw = int(stride_h), int(stride_w), int(dilation_h), int(dilation_w)
    pt, pl, oh, ow = int(pad_top), int(pad_left), int(out_h), int(out_w)
    off = int(input_offset)
    _check_geometry("depthwise_conv2d", sh, sw, dh, dw, oh, ow)
    b = _bias_array(bias, Cout, wide, "depthwise_conv2d")
    out = np.empty((N, oh, ow, Cout), np.int64 if wide else np.int32)
    if out.size == 0:
        return out
    if not _offset_ok(wide, off) or (wide and KH * KW > 510):
        _dw_ref_kernel(_req(x), _req(w) if isinstance(w, np.ndarray) else _unpack_dw(pk), b, off,
                       sh, sw, dh, dw, pt, pl, oh, ow, dm, out)
        return out
    x = _req(x)
    args = (x, pk.data, b, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, out, wide)
    nt = get_num_threads() if out.size * KH * KW >= PARALLEL_MIN_MACS else 1
    if nt > 1:
        _dw_par(*args, nt)
    else:
        _dw_serial(*args, 1)
    return out


def fully_connected_acc(x, w, bias, input_offset):
    """Exact FULLY_CONNECTED accumulators (fast path).  ``w``: int8 [Cout, K] or
    ``pack_fully_connected_weights(w)``.  Returns int32 [B, Cout] (int64 for int16 ``x``)."""
    wide = _check_x(x, 2, "fully_connected")
    pk = w if isinstance(w, PackedConvWeights) else pack_fully_connected_weights(w)
    Cout, KH, KW, K = pk.shape
    if KH != 1 or KW != 1 or pk.groups != 1:
        raise ValueError("fully_connected: weights were not packed by pack_fully_connected_weights")
    B = x.shape[0]
    if x.shape[1] != K:
        raise ValueError(f"fully_connected: input has {x.shape[1]} features, weights expect {K}")
    off = int(input_offset)
    b = _bias_array(bias, Cout, wide, "fully_connected")
    out = np.empty((B, Cout), np.int64 if wide else np.int32)
    if out.size == 0:
        return out
    if not _offset_ok(wide, off):
        _fc_ref_kernel(_req(x), _req(w) if isinstance(w, np.ndarray) else _unpack_conv(pk).reshape(Cout, K),
                       b, off, out)
        return out
    x = _req(x)
    _conv_run(out.size * K, x.reshape(1, B, 1, K), pk.data_run, b, off, 1, Cout, pk.ocb_g,
              1, 1, 1, 1, 1, 1, 0, 0, B, 1, out.reshape(1, B, 1, Cout), wide)
    return out


# -- reference wrappers ------------------------------------------------------


def conv2d_acc_reference(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
                         pad_top, pad_left, out_h, out_w, groups=1):
    """Plain-loop CONV_2D accumulators (int64 sums; int32 result for int8 ``x``)."""
    wide = _check_x(x, 4, "conv2d")
    if isinstance(w, PackedConvWeights):
        w = _unpack_conv(w)
    _check_int8_weights(w, 4, "conv2d")
    Cout = w.shape[0]
    if groups < 1 or Cout % groups or x.shape[3] != w.shape[3] * groups:
        raise ValueError("conv2d: channel counts do not match groups")
    _check_geometry("conv2d", stride_h, stride_w, dilation_h, dilation_w, out_h, out_w)
    b = _bias_array(bias, Cout, True, "conv2d")
    acc = np.empty((x.shape[0], int(out_h), int(out_w), Cout), np.int64)
    _conv_ref_kernel(_req(x), _req(w), b, int(input_offset), int(stride_h), int(stride_w), int(dilation_h),
                     int(dilation_w), int(pad_top), int(pad_left), int(out_h), int(out_w), int(groups), acc)
    return acc if wide else acc.astype(np.int32)


def depthwise_conv2d_acc_reference(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
                                   pad_top, pad_left, out_h, out_w, depth_multiplier):
    """Plain-loop DEPTHWISE_CONV_2D accumulators (int64 sums; int32 result for int8 ``x``)."""
    wide = _check_x(x, 4, "depthwise_conv2d")
    if isinstance(w, PackedDepthwiseWeights):
        w = _unpack_dw(w)
    _check_int8_weights(w, 4, "depthwise_conv2d")
    Cout = w.shape[3]
    if w.shape[0] != 1 or x.shape[3] * depth_multiplier != Cout:
        raise ValueError("depthwise_conv2d: channel counts do not match depth_multiplier")
    _check_geometry("depthwise_conv2d", stride_h, stride_w, dilation_h, dilation_w, out_h, out_w)
    b = _bias_array(bias, Cout, True, "depthwise_conv2d")
    acc = np.empty((x.shape[0], int(out_h), int(out_w), Cout), np.int64)
    _dw_ref_kernel(_req(x), _req(w), b, int(input_offset), int(stride_h), int(stride_w), int(dilation_h),
                   int(dilation_w), int(pad_top), int(pad_left), int(out_h), int(out_w),
                   int(depth_multiplier), acc)
    return acc if wide else acc.astype(np.int32)


def fully_connected_acc_reference(x, w, bias, input_offset):
    """Plain-loop FULLY_CONNECTED accumulators (int64 sums; int32 result for int8 ``x``)."""
    wide = _check_x(x, 2, "fully_connected")
    if isinstance(w, PackedConvWeights):
        w = _unpack_conv(w).reshape(w.shape[0], -1)
    _check_int8_weights(w, 2, "fully_connected")
    if x.shape[1] != w.shape[1]:
        raise ValueError("fully_connected: feature counts differ")
    b = _bias_array(bias, w.shape[0], True, "fully_connected")
    acc = np.empty((x.shape[0], w.shape[0]), np.int64)
    _fc_ref_kernel(_req(x), _req(w), b, int(input_offset), acc)
    return acc if wide else acc.astype(np.int32)
