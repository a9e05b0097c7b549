"""Requantization: accumulators -> output activations, per channel (last axis).

    out = clamp(requant(acc, multiplier[c], shift[c]) + out_zero_point, act_min, act_max)

``scheme`` (:class:`hwsim.vocab.RequantScheme`):
  tflite_double  MultiplyByQuantizedMultiplier, gemmlowp double rounding (TFLite default build)
  tflite_single  TFLITE_SINGLE_ROUNDING: one rounding of acc*M >> (31 - shift)
  tflite_int64   the int64-accumulator variant (16x8 kernels): multiplier reduced to 16 bits
  mult_shift     round_shift(acc * multiplier, shift, rounding)   (shift = right shift >= 0)
  shift_only     round_shift(acc, shift, rounding)
  float32        round_half_even(float32(acc) * scale[c]) (hwsim.arith.requant_float32_half_even,
                 ONNX Runtime's MlasRequantizeOutput); ``multiplier[c]`` holds the float32
                 scale's IEEE bits, ``shift`` 0. Evaluated in numpy (one float32 multiply).
  double_round   int32(round(double(acc) * real[c])), C's round (ties away from zero). This is
                 what TFLite's *reference* FULLY_CONNECTED kernels do (fully_connected.cc passes
                 the float scales under kReference; reference_integer_ops/fully_connected.h).
                 The real is carried as integers: ``multiplier[c]`` = M (int64, the 53-bit
                 significand of the double) and ``shift[c]`` = E with real = M * 2^E exactly
                 (see :func:`hwsim.arith.real_to_m_e`), and evaluated by
                 :func:`double_round_int`, an exact integer emulation of the IEEE double
                 computation (the algorithm the RTL implements, docs/dev/accel-interface.md).
                 No floating point at run time.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..arith import (requant_float32_half_even, wrap_int32,
                     multiply_by_quantized_multiplier_double,
                     multiply_by_quantized_multiplier_double_lr, multiply_by_quantized_multiplier_int64,
                     multiply_by_quantized_multiplier_single, round_shift,
                     round_shift_half_away, round_shift_half_even)
from ..params import RequantParams
from ..vocab import RequantScheme

_jit = numba.njit(cache=True, inline="always")

# The scheme codes as plain ints (Numba freezes them as constants in the @njit dispatch).
TFLITE_DOUBLE = int(RequantScheme.tflite_double)
TFLITE_SINGLE = int(RequantScheme.tflite_single)
TFLITE_INT64 = int(RequantScheme.tflite_int64)
MULT_SHIFT = int(RequantScheme.mult_shift)
DOUBLE_ROUND = int(RequantScheme.double_round)

_MASK27 = (1 << 27) - 1
_MASK54 = (1 << 54) - 1


@_jit
def _bitlen(x):
    """Number of significant bits of x >= 0 (0 for 0), by binary search."""
    x = np.int64(x)
    n = np.int64(0)
    if x >= (np.int64(1) << 32):
        x >>= 32
        n += 32
    if x >= (np.int64(1) << 16):
        x >>= 16
        n += 16
    if x >= (np.int64(1) << 8):
        x >>= 8
        n += 8
    if x >= (np.int64(1) << 4):
        x >>= 4
        n += 4
    if x >= (np.int64(1) << 2):
        x >>= 2
        n += 2
    if x >= (np.int64(1) << 1):
        x >>= 1
        n += 1
    if x >= 1:
        n += 1
    return n


@_jit
def double_round_int(acc, m, e):
    """round_half_away(double(acc) * real) with real = m * 2^e, in integers only, exactly.

    IEEE double arithmetic, step by step:
      a  = |acc|; if a >= 2^53: a = round_half_even(a / 2^s0) with s0 = bitlen(a) - 53,
           e0 = s0 (what the int64 -> double conversion does); else e0 = 0.
      P  = a * m                                   (exact, < 2^107: two 54-bit limbs)
      s1 = max(bitlen(P) - 53, 0); P' = round_half_even(P / 2^s1)   (the double product)
      t  = s1 + e0 + e;  r = P' * 2^t if t >= 0 else round_half_away(P' / 2^-t)
      result = -r if acc < 0 else r    (IEEE rounding and C round() are sign-symmetric).
    A subnormal product would only matter below 2^-1022, where the result is 0 anyway.
    Domain: acc > -2^63; 0 <= m < 2^53; the result must fit int64 (no overflow check).
    """
    acc = np.int64(acc)
    m = np.int64(m)
    e = np.int64(e)
    a = -acc if acc < 0 else acc
    e0 = np.int64(0)
    if a >= (np.int64(1) << 53):
        s0 = _bitlen(a) - 53
        a = round_shift_half_even(a, s0)
        e0 = s0
    if a == 0 or m == 0:
        return np.int64(0)
    # P = a * m as H * 2^54 + L with 0 <= L < 2^54 (27-bit limbs: every product < 2^54).
    a0 = a & _MASK27
    a1 = a >> 27
    m0 = m & _MASK27
    m1 = m >> 27
    c = a1 * m0 + a0 * m1
    lf = a0 * m0 + ((c & _MASK27) << 27)
    h = a1 * m1 + (c >> 27) + (lf >> 54)
    lo = lf & _MASK54
    if h > 0:
        b = 54 + _bitlen(h)
    else:
        b = _bitlen(lo)
    s1 = b - 53
    if s1 <= 0:
        s1 = np.int64(0)
        q = lo
    else:
        # q = P >> s1 (< 2^53), r = P mod 2^s1, then round half to even.
        if s1 <= 54:
            q = (h << (54 - s1)) | (lo >> s1)
            r = lo & ((np.int64(1) << s1) - 1)
        else:
            q = h >> (s1 - 54)
            r = ((h & ((np.int64(1) << (s1 - 54)) - 1)) << 54) | lo
        half = np.int64(1) << (s1 - 1)
        if r > half or (r == half and (q & 1) != 0):
            q += 1
    t = s1 + e0 + e
    if t >= 0:
        res = q << t
    elif t < -60:
        res = np.int64(0)  # q <= 2^53 < 2^(-t-1): below one half
    else:
        res = round_shift_half_away(q, -t)
    return -res if acc < 0 else res


@_jit
def double_round_to_int32(acc, m, e):
    """TFLite's ``static_cast<int32_t>(round(double(acc) * real))``: double_round_int, then the
    conversion to int32. Outside int32 that conversion is undefined behaviour in C++; the x86
    code TFLite runs (cvttsd2si) gives INT32_MIN, which this reproduces (checked against
    TFLite's reference FULLY_CONNECTED: tests/test_ops_conv.py)."""
    v = double_round_int(acc, m, e)
    if v > np.int64(2147483647) or v < np.int64(-2147483648):
        return np.int64(-2147483648)
    return v



def double_round_float(acc: int, real: float) -> int:
    """The floating-point definition of double_round (for tests): round(double(acc) * real)."""
    v = float(acc) * float(real)
    a = abs(v)
    f = math.floor(a)
    if a - f >= 0.5:
        f += 1
    return int(-f if v < 0 else f)


@numba.njit(cache=True)
def requant_one(acc, multiplier, shift, scheme, rounding):
    """One accumulator requantized by ``scheme`` (module docstring), before the zero point."""
    if scheme == DOUBLE_ROUND:
        return double_round_to_int32(acc, multiplier, shift)
    if scheme == TFLITE_DOUBLE:
        return multiply_by_quantized_multiplier_double(acc, multiplier, shift)
    elif scheme == TFLITE_SINGLE:
        return multiply_by_quantized_multiplier_single(acc, multiplier, shift)
    elif scheme == TFLITE_INT64:
        return multiply_by_quantized_multiplier_int64(acc, multiplier, shift)
    elif scheme == MULT_SHIFT:
        return round_shift(np.int64(acc) * np.int64(multiplier), shift, rounding)
    else:  # shift_only
        return round_shift(np.int64(acc), shift, rounding)


@numba.njit(cache=True)
def _requantize(acc2d, multiplier, shift, out_zp, act_min, act_max, scheme, rounding, out2d):
    """Generic path: any scheme, one call of requant_one per element."""
    rows, channels = acc2d.shape
    per_channel = multiplier.shape[0] > 1
    for r in range(rows):
        for c in range(channels):
            k = c if per_channel else 0
            v = requant_one(acc2d[r, c], multiplier[k], shift[k], scheme, rounding) + out_zp
            if scheme <= TFLITE_INT64 or scheme == DOUBLE_ROUND:
                # TFLite adds the output offset to an int32 (`acc += output_offset`): it wraps
                v = wrap_int32(v)
            if v < act_min:
                v = act_min
            elif v > act_max:
                v = act_max
            out2d[r, c] = v


# Serial and parallel variants are separate top-level functions: Numba's cache is keyed by the
# function's qualified name and source line, so two closures of one factory that differ only in
# ``parallel=`` would share (and overwrite) one cache entry.
@_jit
def _rq_row_scalar(acc2d, r, left_shift, right_shift, multiplier, out_zp, act_min, act_max, out2d):
    """tflite_double (the hot path of every int8 CONV/DEPTHWISE layer) on one row: the same
    primitive as requant_one, with the scheme dispatch and the shift split hoisted out of the
    loop (per-channel arrays, broadcast to the channel count)."""
    for c in range(acc2d.shape[1]):
        v = wrap_int32(multiply_by_quantized_multiplier_double_lr(
            acc2d[r, c], multiplier[c], left_shift[c], right_shift[c]) + out_zp)
        out2d[r, c] = min(max(v, act_min), act_max)


@numba.njit(cache=True)
def _requantize_tflite_double(acc2d, left_shift, right_shift, multiplier, out_zp, act_min,
                              act_max, out2d):
    for r in range(acc2d.shape[0]):
        _rq_row_scalar(acc2d, r, left_shift, right_shift, multiplier, out_zp, act_min, act_max,
                       out2d)


@numba.njit(cache=True, parallel=True)
def _requantize_tflite_double_parallel(acc2d, left_shift, right_shift, multiplier, out_zp,
                                       act_min, act_max, out2d):
    for r in numba.prange(acc2d.shape[0]):
        _rq_row_scalar(acc2d, r, left_shift, right_shift, multiplier, out_zp, act_min, act_max,
                       out2d)


PARALLEL_MIN_ELEMENTS = 1 << 16  # below this a thread hand-off costs more than it saves
# HWSIM_SCALAR_REQUANT=1 forces the scalar tflite_double loop (the tests compare both paths).
VECTOR_REQUANT = os.environ.get("HWSIM_SCALAR_REQUANT", "") in ("", "0")


# --- tflite_double, eight channels at a time ---------------------------------------------------
# The same arithmetic as multiply_by_quantized_multiplier_double_lr + zero point + clamp, spelled
# as LLVM vector IR on <8 x i32> lanes so that it compiles to a handful of AVX2 instructions
# (vpsllvd, vpmuldq, vpsravd, vpmaxsd, ...) instead of scalar int64 code; on CPUs without AVX2
# LLVM lowers the same IR to SSE. Lane by lane, with every value an int32 as in TFLite:
#   xs  = x << ls                                   (int32 shift: wraps, as the C++ does)
#   ab  = int64(xs) * int64(m)
#   q   = low 32 bits of (ab + 2^30) >> 31          (SRDHM; logical and arithmetic shifts have
#         the same low 32 bits, and q fits int32 except for xs == m == INT32_MIN -> INT32_MAX)
#   mask = (1 << rs) - 1; r = (q >> rs) + ((q & mask) > (mask >> 1) + (q < 0))   (RDBP)
#   out = clamp(r + zp (int32 add: wraps), act_min, act_max)
# tests/test_requant.py checks it against the scalar primitive on edge and random values.
def vec_splat(c, lanes=8, bits=32):
    """An LLVM constant vector with every lane ``c``."""
    et = ir.IntType(bits)
    return ir.Constant(ir.VectorType(et, lanes), [ir.Constant(et, c)] * lanes)


def vec_splat_value(builder, val, lanes=8):
    """An <lanes x iN> with every lane the iN value ``val`` (i32 in most callers)."""
    v32 = ir.VectorType(val.type, lanes)
    vec = builder.insert_element(ir.Constant(v32, ir.Undefined), val, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(vec, ir.Constant(v32, ir.Undefined), vec_splat(0, lanes))


def vec_clamp(builder, v, lo, hi):
    v = builder.select(builder.icmp_signed("<", v, lo), lo, v)
    return builder.select(builder.icmp_signed(">", v, hi), hi, v)


def vec_mbqm_double_split(builder, x, m, ls, rs, mask, half, has_ls, may_ovf):
    """multiply_by_quantized_multiplier_double_lr on <n x i32> lanes (n even: 8 here, 16 in the
    AVX-512 MAC tiles; the arithmetic above),
    with per-lane ``mask`` = 2^rs - 1 and ``half`` = mask >> 1 given, the
    left shift omitted when no lane has one (``has_ls`` false), the INT32_MIN * INT32_MIN
    saturation omitted when no multiplier lane is INT32_MIN (``may_ovf`` false), and the 64-bit
    products formed on the even and the odd lanes separately (two vpmuldq, no cross-lane
    shuffles): even lanes keep bits 31..62 of their product in the low half of the 64-bit
    lane, odd lanes in the high half, and a blend interleaves them."""
    n = x.type.count
    h = n // 2
    v32 = ir.VectorType(ir.IntType(32), n)
    v64 = ir.VectorType(ir.IntType(64), h)
    xs = builder.shl(x, ls) if has_ls else x
    x64, m64 = builder.bitcast(xs, v64), builder.bitcast(m, v64)
    c32 = vec_splat(32, lanes=h, bits=64)
    nudge = vec_splat(1 << 30, lanes=h, bits=64)
    pe = builder.mul(builder.ashr(builder.shl(x64, c32), c32),
                     builder.ashr(builder.shl(m64, c32), c32))
    po = builder.mul(builder.ashr(x64, c32), builder.ashr(m64, c32))
    pe = builder.lshr(builder.add(pe, nudge), vec_splat(31, lanes=h, bits=64))
    po = builder.shl(builder.add(po, nudge), vec_splat(1, lanes=h, bits=64))
    q = builder.shuffle_vector(builder.bitcast(pe, v32), builder.bitcast(po, v32),
                               ir.Constant(v32, [ir.Constant(ir.IntType(32), k + (n if k & 1 else 0))
                                                 for k in range(n)]))
    if may_ovf:
        imin = vec_splat(-(1 << 31), lanes=n)
        ovf = builder.and_(builder.icmp_signed("==", xs, imin),
                           builder.icmp_signed("==", m, imin))
        q = builder.select(ovf, vec_splat((1 << 31) - 1, lanes=n), q)
    rem = builder.and_(q, mask)
    thr = builder.add(half, builder.lshr(q, vec_splat(31, lanes=n)))
    return builder.add(builder.ashr(q, rs),
                       builder.zext(builder.icmp_signed(">", rem, thr), v32))


def _make_vrequant8(has_ls: bool, may_ovf: bool):
    @intrinsic
    def vrequant8(typingctx, acc, aidx, out, oidx, cp, cidx, zp, lo, hi):
        """out[oidx:oidx+8] = tflite_double requant of acc[aidx:aidx+8]; ``cp`` is the int32
        [5, C] array of split_shifts (multiplier, left shift, right shift, mask, half), read
        at channels cidx..cidx+7 (out int8 or int16)."""
        if not all(isinstance(a, types.Array) and a.dtype == types.int32 for a in (acc, cp)):
            return None
        if not (isinstance(out, types.Array) and out.dtype in (types.int8, types.int16)):
            return None
        obits = out.dtype.bitwidth

        def codegen(context, builder, sig, args):
            aacc, aaidx, aout, aoidx, acp, acidx, azp, alo, ahi = args
            i64 = ir.IntType(64)
            v32 = ir.VectorType(ir.IntType(32), 8)
            vo = ir.VectorType(ir.IntType(obits), 8)

            def ptr(k, arr, idx, kidx, vt):
                a = context.make_array(sig.args[k])(context, builder, arr)
                i = context.cast(builder, idx, sig.args[kidx], types.int64)
                return builder.bitcast(builder.gep(a.data, [i]), vt.as_pointer())

            def splat(val, k):
                return vec_splat_value(builder, context.cast(builder, val, sig.args[k],
                                                             types.int32))

            x = builder.load(ptr(0, aacc, aaidx, 1, v32), align=4)
            cpa = context.make_array(sig.args[4])(context, builder, acp)
            nch = builder.extract_value(cpa.shape, 1)
            ci = context.cast(builder, acidx, sig.args[5], types.int64)

            def row(k):
                at = builder.add(builder.mul(ir.Constant(i64, k), nch), ci)
                p = builder.bitcast(builder.gep(cpa.data, [at]), v32.as_pointer())
                return builder.load(p, align=4)

            m, ls, rs, mask, half = (row(k) for k in range(5))
            r = vec_mbqm_double_split(builder, x, m, ls, rs, mask, half, has_ls, may_ovf)
            res = vec_clamp(builder, builder.add(r, splat(azp, 6)), splat(alo, 7), splat(ahi, 8))
            builder.store(builder.trunc(res, vo), ptr(2, aout, aoidx, 3, vo), align=obits // 8)
            return context.get_dummy_value()

        return types.none(acc, aidx, out, oidx, cp, cidx, zp, lo, hi), codegen
    return vrequant8


# Two variants, chosen per layer: the general one, and the one for layers whose shifts are all
# right shifts and whose multipliers are never INT32_MIN (every TFLite conv with scales < 1).
_vrequant8 = _make_vrequant8(True, True)
_vrequant8_fast = _make_vrequant8(False, False)


@_jit
def _rq_rows_vec(acc2d, r0, r1, cp, zp, lo, hi, fast, out2d):
    """Rows r0..r1-1 of tflite_double with _vrequant8 over blocks of eight channels (channels % 8
    == 0 and C-contiguous 2-D arrays: the caller checks)."""
    channels = acc2d.shape[1]
    acc = acc2d.reshape(acc2d.size)
    out = out2d.reshape(out2d.size)
    if fast:
        for r in range(r0, r1):
            base = r * channels
            for c in range(0, channels, 8):
                _vrequant8_fast(acc, base + c, out, base + c, cp, c, zp, lo, hi)
    else:
        for r in range(r0, r1):
            base = r * channels
            for c in range(0, channels, 8):
                _vrequant8(acc, base + c, out, base + c, cp, c, zp, lo, hi)


@numba.njit(cache=True, boundscheck=False)
def _requantize_vec(acc2d, cp, out_zp, act_min, act_max, fast, out2d):
    _rq_rows_vec(acc2d, 0, acc2d.shape[0], cp, np.int32(out_zp), np.int32(act_min),
                 np.int32(act_max), fast, out2d)


@numba.njit(cache=True, parallel=True, boundscheck=False)
def _requantize_vec_parallel(acc2d, cp, out_zp, act_min, act_max, fast, out2d, nchunks):
    rows = acc2d.shape[0]
    for k in numba.prange(nchunks):  # one contiguous band of rows per thread
        _rq_rows_vec(acc2d, rows * k // nchunks, rows * (k + 1) // nchunks, cp,
                     np.int32(out_zp), np.int32(act_min), np.int32(act_max), fast, out2d)


class SplitShifts(NamedTuple):
    """tflite_double's per-channel constants (see :func:`split_shifts`)."""
    multiplier: np.ndarray  # int64, scalar loop
    left_shift: np.ndarray  # int64
    right_shift: np.ndarray  # int64
    cp: np.ndarray  # int32 [5, C]: multiplier, left, right, mask, half (vector loop)
    fast: bool  # no left shift and no INT32_MIN multiplier anywhere
    vec_ok: bool  # every shift within the vector loop's 0..31


def split_shifts(rq: RequantParams, channels: int) -> SplitShifts:
    """tflite_double's per-channel constants for the hot loops, derived once (the MAC kernels'
    prepare step): (multiplier, left_shift, right_shift) as int64 arrays (the
    scalar loop), ``cp`` = int32 [5, channels] rows (multiplier wrapped to int32, left shift
    max(shift, 0), right shift max(-shift, 0), mask 2^right - 1, half mask >> 1) for the vector
    loop, ``fast``: no left shift and no INT32_MIN multiplier in any channel, and ``vec_ok``:
    every shift within the vector loop's range (0..31 each way)."""
    mult = np.broadcast_to(np.atleast_1d(rq.multiplier).astype(np.int64), (channels,))
    shift = np.broadcast_to(np.atleast_1d(rq.shift).astype(np.int64), (channels,))
    ls, rs = np.maximum(shift, 0), np.maximum(-shift, 0)
    m32 = mult.astype(np.int32)  # wraps, as the primitive's first step does
    mask = ((np.int64(1) << np.minimum(rs, 62)) - 1).astype(np.int32)  # rs <= 31 in range
    cp = np.ascontiguousarray(np.stack([m32, ls.astype(np.int32), rs.astype(np.int32), mask,
                                        (mask >> 1).astype(np.int32)]))
    fast = bool((ls == 0).all() and (m32 != np.int32(-(1 << 31))).all())
    vec_ok = bool((ls <= 31).all() and (rs <= 31).all())  # the int32 lanes' shift range
    return SplitShifts(np.ascontiguousarray(mult), np.ascontiguousarray(ls),
                       np.ascontiguousarray(rs), cp, fast, vec_ok)


def requantize(acc: np.ndarray, rq: RequantParams, out_dtype,
               split: SplitShifts | None = None) -> np.ndarray:
    """Apply ``rq`` (multiplier, shift, scheme, rounding, out_zp, act_min, act_max).

    ``multiplier``/``shift`` hold one entry per channel (last axis of ``acc``) or one for all.
    ``split``: ``split_shifts(rq, channels)`` if the caller prepared it (tflite_double only;
    derived here otherwise).
    """
    channels = acc.shape[-1] if acc.ndim else 1
    acc2d = np.ascontiguousarray(acc).reshape(-1, channels)
    out = np.empty(acc2d.shape, dtype=out_dtype)
    lo, hi, zp = np.int64(rq.act_min), np.int64(rq.act_max), np.int64(rq.out_zp)
    if rq.scheme == RequantScheme.float32:
        # the float32 unit (ONNX Runtime's MLAS): the scales are float32 bit patterns
        scale = np.atleast_1d(np.asarray(rq.multiplier)).astype(np.uint32).view(np.float32)
        v = requant_float32_half_even(acc2d, scale) + zp
        np.clip(v, lo, hi, out=v)
        out[...] = v
        return out.reshape(acc.shape)
    if rq.scheme == RequantScheme.tflite_double:
        if split is None or len(split.multiplier) != channels:
            split = split_shifts(rq, channels)
        big = acc2d.size >= PARALLEL_MIN_ELEMENTS
        if (VECTOR_REQUANT and channels % 8 == 0 and acc2d.dtype == np.int32 and split.vec_ok
                and out.dtype in (np.int8, np.int16)
                and -(1 << 31) <= min(int(zp), int(lo)) and max(int(zp), int(hi)) < (1 << 31)):
            if big:
                _requantize_vec_parallel(acc2d, split.cp, zp, lo, hi, split.fast, out,
                                         numba.get_num_threads())
            else:
                _requantize_vec(acc2d, split.cp, zp, lo, hi, split.fast, out)
        else:
            fn = _requantize_tflite_double_parallel if big else _requantize_tflite_double
            fn(acc2d, split.left_shift, split.right_shift, split.multiplier, zp, lo, hi, out)
    else:
        mult = np.ascontiguousarray(np.atleast_1d(rq.multiplier).astype(np.int64))
        shift = np.ascontiguousarray(np.atleast_1d(rq.shift).astype(np.int64))
        _requantize(acc2d, mult, shift, zp, lo, hi, np.int64(rq.scheme), np.int64(rq.rounding),
                    out)
    return out.reshape(acc.shape)
