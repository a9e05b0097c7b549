"""FULLY_CONNECTED of a few input rows (a classifier head: mobilenet_v2's 1280 -> 1000) as a
matrix-vector product on TFLite's own weight layout, requantized in the same kernel.

The tile kernels (hwsim.kernels.mac) compute a FULLY_CONNECTED as a 1x1 convolution of B pixels:
with B = 1 a tile of 4-8 pixels does one pixel's work. Here each output is one dot product
over K of ``x + input_offset`` (int16, computed once per row) and the int8 weights, in int32
lanes (LLVM makes it vpmaddwd / vpdpwssd), then TFLite's int8 ending: ``acc + bias`` (int32),
the requantization (tflite_double with the split shifts of hwsim.kernels.requant; any other
integer scheme through requant.requant_one, e.g. double_round, TFLite's reference
FULLY_CONNECTED, which mobilenet_v2's classifier uses), the zero point and the clamp.

Exact: ``|x + input_offset| <= 32767`` (the offset is checked) and ``|w| <= 128``, so a
product and the pair sums of vpmaddwd fit int32; the accumulation wraps modulo 2^32 exactly as
TFLite's int32 accumulator does.

On VNNI CPUs hwsim.kernels.conv takes ``gemv_vnni`` (AVX512-VNNI) or ``gemv_vnni256`` (AVX-VNNI
without AVX-512: ymm, 8 outputs) instead: 16 outputs a zmm, one
``vpdpbusd`` per input quad (x + 128 as uint8, broadcast, times the 16 outputs' weight quads,
packed once by ``vnni_pack``), the offset's term ``(off - 128) sum w`` added as a constant
(vpdpbusd adds its four exact products without saturation; all modulo 2^32), then the same
requantization loop. mobilenet_v2's classifier: 63 -> 13 us alone on one thread. tests/test_kernels_gemv.py compares it with the reference
accumulators + ``requantize`` on random and edge shapes.
"""
from __future__ import annotations

import numba
import numpy as np

from ..arith import multiply_by_quantized_multiplier_double_lr, wrap_int32
from ..params import RequantParams
from ..vocab import RequantScheme
from .mac_intrinsics import (_vadd32, _vbcast_quad, _vdpbusd, _vload_i32x8, _vload_q, _vstore_plain,
                             _vzero32, _zadd, _zbcast_quad, _zdpbusd, _zload_i32, _zload_q,
                             _zstore_plain, _zzero)
from .mac_pack import aligned
from .requant import DOUBLE_ROUND, TFLITE_INT64, requant_one, split_shifts

#: at most this many input rows take the matrix-vector kernel (more: the tile kernels)
MAX_ROWS = 4
_NJ = dict(cache=True, boundscheck=False)


@numba.njit(cache=True, inline="always")
def _requant_row(b, bias, rq, zp, lo, hi, acc32, out2d, o0, o1):
    """out2d[b, o0:o1] from the sums acc32[o0:o1] of row b: TFLite's int8 ending.
    ``rq``: (tflite_double?, its split shifts ls, rs and multiplier per output, the scheme's
    multiplier and shift per output, scheme, rounding)."""
    tfl, ls, rs, m64, mult, shift, scheme, rounding = rq
    for o in range(o0, o1):
        acc = wrap_int32(np.int64(acc32[o]) + np.int64(bias[o]))
        if tfl:  # hwsim.kernels.requant's hot loop, the shift split hoisted
            v = wrap_int32(multiply_by_quantized_multiplier_double_lr(acc, m64[o], ls[o], rs[o])
                           + zp)
        else:  # every other scheme as requant._requantize does it
            v = requant_one(acc, mult[o], shift[o], scheme, rounding) + zp
            if scheme <= TFLITE_INT64 or scheme == DOUBLE_ROUND:
                v = wrap_int32(v)
        out2d[b, o] = min(max(v, lo), hi)


@numba.njit(cache=True, inline="always")
def _rows(x2d, w, bias, rq, zp, lo, hi, xo, acc32, out2d, o0, o1):
    """Outputs o0..o1 of every row (xo: the rows' ``x + off`` as int16, filled by the caller;
    acc32: int32 [O] scratch); ``rq`` as _requant_row's."""
    rows, k_ = x2d.shape
    for b in range(rows):
        for o in range(o0, o1):
            s = np.int32(0)
            for k in range(k_):
                s += np.int32(xo[b, k]) * np.int32(w[o, k])
            acc32[o] = s  # an int32 store: LLVM then keeps the sums in 32-bit lanes (vpmaddwd)
        _requant_row(b, bias, rq, zp, lo, hi, acc32, out2d, o0, o1)


@numba.njit(cache=True, inline="always")
def _offset_rows(x2d, off, xo):
    rows, k_ = x2d.shape
    for b in range(rows):
        for k in range(k_):
            xo[b, k] = np.int16(np.int32(x2d[b, k]) + off)


@numba.njit(**_NJ)
def gemv_fused(x2d, w, bias, off, rq, zp, lo, hi, xo, acc32, out2d):
    """out2d[b, o] = clamp(requant(bias[o] + sum_k (x2d[b, k] + off) * w[o, k]) + zp): int8
    x2d [B, K], w [O, K], int32 bias [O], ``rq`` as :func:`requant_args` makes it; scratch
    arrays xo int16 [B, K] and acc32 int32 [O]."""
    _offset_rows(x2d, off, xo)
    _rows(x2d, w, bias, rq, zp, lo, hi, xo, acc32, out2d, 0, w.shape[0])


@numba.njit(parallel=True, **_NJ)
def gemv_fused_parallel(x2d, w, bias, off, rq, zp, lo, hi, xo, acc32, out2d, nchunks):
    """gemv_fused with the outputs split into ``nchunks`` contiguous bands, one per thread."""
    _offset_rows(x2d, off, xo)
    o_ = w.shape[0]
    for c in numba.prange(nchunks):
        _rows(x2d, w, bias, rq, zp, lo, hi, xo, acc32, out2d, o_ * c // nchunks,
              o_ * (c + 1) // nchunks)


# ---------------------------------------------------------------------------------------------
# AVX512-VNNI: vpdpbusd on 16 outputs at a time
# ---------------------------------------------------------------------------------------------

def vnni_pack(w: np.ndarray, off: int, block: int = 16):
    """(wq, c) of gemv_vnni (``block`` 16) or gemv_vnni256 (8) for int8 weights ``w`` [O, K] and
    input offset ``off``: wq int8 [ceil(O/block)][ceil(K/4)][block outputs][4] (the quads of a
    block's outputs for one input quad, zero past O and K: those products are 0), c int32
    [ceil(O/block) * block] = (off - 128) * sum_k w[o, k] modulo 2^32. The kernel multiplies the
    uint8 ``x + 128`` by w, so ``sum w (x + off) = sum w (x + 128) + c`` (int32 wrap, as
    TFLite's accumulator)."""
    o_, k_ = w.shape
    ob, kq = (o_ + block - 1) // block, (k_ + 3) // 4
    wp = np.zeros((ob * block, kq * 4), np.int8)
    wp[:o_, :k_] = w
    wq = np.ascontiguousarray(wp.reshape(ob, block, kq, 4).transpose(0, 2, 1, 3)).reshape(-1)
    c = np.zeros(ob * block, np.int64)
    c[:o_] = (int(off) - 128) * w.astype(np.int64).sum(1)
    return aligned(wq), aligned(wrap_int32.py_func(c).astype(np.int32))


@numba.njit(cache=True, inline="always")
def _offset_rows_u8(x2d, xu):
    """xu[b, k] = x2d[b, k] + 128 as uint8 (the sign bit flipped), 0 past K."""
    rows, k_ = x2d.shape
    for b in range(rows):
        for k in range(k_):
            xu[b, k] = np.uint8(np.int32(x2d[b, k]) + 128)
        for k in range(k_, xu.shape[1]):
            xu[b, k] = 0


@numba.njit(cache=True, inline="always")
def _rows_vnni(xu, wq, c, bias, rq, zp, lo, hi, acc32, out2d, blk0, blk1):
    """Blocks blk0..blk1 of 16 outputs of every row: four vpdpbusd chains over the input
    quads (x + 128 broadcast, the 16 outputs' weight quads), summed, plus c, into acc32; then
    _requant_row."""
    rows, o_ = out2d.shape
    kq = xu.shape[1] // 4
    for b in range(rows):
        xb = b * xu.shape[1]
        xf = xu.reshape(xu.size)
        for blk in range(blk0, blk1):
            wb = blk * kq * 64
            a0 = _zload_i32(c, 16 * blk)
            a1 = _zzero()
            a2 = _zzero()
            a3 = _zzero()
            q = 0
            while q + 4 <= kq:
                a0 = _zdpbusd(a0, _zbcast_quad(xf, xb + 4 * q), _zload_q(wq, wb + 64 * q))
                a1 = _zdpbusd(a1, _zbcast_quad(xf, xb + 4 * q + 4), _zload_q(wq, wb + 64 * q + 64))
                a2 = _zdpbusd(a2, _zbcast_quad(xf, xb + 4 * q + 8), _zload_q(wq, wb + 64 * q + 128))
                a3 = _zdpbusd(a3, _zbcast_quad(xf, xb + 4 * q + 12), _zload_q(wq, wb + 64 * q + 192))
                q += 4
            while q < kq:
                a0 = _zdpbusd(a0, _zbcast_quad(xf, xb + 4 * q), _zload_q(wq, wb + 64 * q))
                q += 1
            _zstore_plain(acc32, 16 * blk, _zadd(_zadd(a0, a1), _zadd(a2, a3)), o_ - 16 * blk)
        _requant_row(b, bias, rq, zp, lo, hi, acc32, out2d, 16 * blk0, min(o_, 16 * blk1))


@numba.njit(**_NJ)
def gemv_vnni(x2d, wq, c, bias, rq, zp, lo, hi, xu, acc32, out2d):
    """gemv_fused on AVX512-VNNI (vnni_pack's wq and c; scratch xu uint8 [B, 4 ceil(K/4)],
    acc32 int32 [O]). Compiled on its first call: only on such a CPU."""
    _offset_rows_u8(x2d, xu)
    _rows_vnni(xu, wq, c, bias, rq, zp, lo, hi, acc32, out2d, 0, (out2d.shape[1] + 15) // 16)


@numba.njit(parallel=True, **_NJ)
def gemv_vnni_parallel(x2d, wq, c, bias, rq, zp, lo, hi, xu, acc32, out2d, nchunks):
    """gemv_vnni with the blocks of 16 outputs split into ``nchunks`` contiguous bands."""
    _offset_rows_u8(x2d, xu)
    nb = (out2d.shape[1] + 15) // 16
    for t in numba.prange(nchunks):
        _rows_vnni(xu, wq, c, bias, rq, zp, lo, hi, acc32, out2d, nb * t // nchunks,
                   nb * (t + 1) // nchunks)


# ---------------------------------------------------------------------------------------------
# AVX-VNNI without AVX-512: vpdpbusd on ymm, 8 outputs at a time
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _rows_vnni256(xu, wq, c, bias, rq, zp, lo, hi, acc32, out2d, blk0, blk1):
    """_rows_vnni on ymm: blocks blk0..blk1 of 8 outputs (vnni_pack with block 8), four
    vpdpbusd chains over the input quads, summed, plus c, into acc32; then _requant_row."""
    rows, o_ = out2d.shape
    kq = xu.shape[1] // 4
    for b in range(rows):
        xb = b * xu.shape[1]
        xf = xu.reshape(xu.size)
        for blk in range(blk0, blk1):
            wb = blk * kq * 32
            a0 = _vload_i32x8(c, 8 * blk)
            a1 = _vzero32()
            a2 = _vzero32()
            a3 = _vzero32()
            q = 0
            while q + 4 <= kq:
                a0 = _vdpbusd(a0, _vbcast_quad(xf, xb + 4 * q), _vload_q(wq, wb + 32 * q))
                a1 = _vdpbusd(a1, _vbcast_quad(xf, xb + 4 * q + 4), _vload_q(wq, wb + 32 * q + 32))
                a2 = _vdpbusd(a2, _vbcast_quad(xf, xb + 4 * q + 8), _vload_q(wq, wb + 32 * q + 64))
                a3 = _vdpbusd(a3, _vbcast_quad(xf, xb + 4 * q + 12), _vload_q(wq, wb + 32 * q + 96))
                q += 4
            while q < kq:
                a0 = _vdpbusd(a0, _vbcast_quad(xf, xb + 4 * q), _vload_q(wq, wb + 32 * q))
                q += 1
            _vstore_plain(acc32, 8 * blk, _vadd32(_vadd32(a0, a1), _vadd32(a2, a3)), o_ - 8 * blk)
        _requant_row(b, bias, rq, zp, lo, hi, acc32, out2d, 8 * blk0, min(o_, 8 * blk1))


@numba.njit(**_NJ)
def gemv_vnni256(x2d, wq, c, bias, rq, zp, lo, hi, xu, acc32, out2d):
    """gemv_vnni on CPUs with AVX-VNNI but not AVX512-VNNI (vnni_pack's wq and c with block 8;
    scratch as gemv_vnni's). Compiled on its first call: only on such a CPU (or in the tests)."""
    _offset_rows_u8(x2d, xu)
    _rows_vnni256(xu, wq, c, bias, rq, zp, lo, hi, acc32, out2d, 0, (out2d.shape[1] + 7) // 8)


@numba.njit(parallel=True, **_NJ)
def gemv_vnni256_parallel(x2d, wq, c, bias, rq, zp, lo, hi, xu, acc32, out2d, nchunks):
    """gemv_vnni256 with the blocks of 8 outputs split into ``nchunks`` contiguous bands."""
    _offset_rows_u8(x2d, xu)
    nb = (out2d.shape[1] + 7) // 8
    for t in numba.prange(nchunks):
        _rows_vnni256(xu, wq, c, bias, rq, zp, lo, hi, acc32, out2d, nb * t // nchunks,
                      nb * (t + 1) // nchunks)


def requant_args(rq: RequantParams, channels: int, split=None) -> tuple:
    """``rq`` of the kernels above: tflite_double takes ``split`` (requant.split_shifts, made
    here if not given), any other integer scheme its multiplier and shift per output."""
    mult = np.ascontiguousarray(np.broadcast_to(
        np.atleast_1d(rq.multiplier).astype(np.int64), (channels,)))
    shift = np.ascontiguousarray(np.broadcast_to(
        np.atleast_1d(rq.shift).astype(np.int64), (channels,)))
    tfl = rq.scheme == RequantScheme.tflite_double
    if tfl:
        sp = split if split is not None else split_shifts(rq, channels)
        ls, rs, m64 = sp.left_shift, sp.right_shift, sp.multiplier
    else:
        ls = rs = m64 = mult
    return (tfl, ls, rs, m64, mult, shift, np.int64(rq.scheme), np.int64(rq.rounding))


def scheme_ok(rq: RequantParams) -> bool:
    """The integer schemes (float32, ONNX Runtime's, is requantized elsewhere)."""
    return rq.scheme != RequantScheme.float32


def applies(rows: int, input_offset: int) -> bool:
    """Whether an int8 FULLY_CONNECTED of ``rows`` input rows with this offset takes gemv."""
    return 1 <= rows <= MAX_ROWS and -32000 <= int(input_offset) <= 32000
