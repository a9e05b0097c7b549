"""gemmlowp-style fixed-point math (``gemmlowp/fixedpoint/fixedpoint.h`` and the helpers TFLite
adds in ``tensorflow/lite/kernels/internal/common.h``), for scalar int32 raw values.

A gemmlowp ``FixedPoint<int32_t, IntegerBits>`` is a raw int32 ``r`` standing for the real
``r / 2^(31 - IntegerBits)`` (Q<IntegerBits>.<31 - IntegerBits>). Here a fixed-point value is just
its raw integer; the number of integer bits is passed explicitly where a function needs it (it
is a template parameter in C++). Every function is a cached ``@njit``: the int32 Q-format
primitives compiled once and called (see ``_prim``), the helpers that only call them
(exp_on_interval..., the Newton steps, one_over_one_plus_x...) and the int16 ones inlined,
exp_on_negative_values, get_reciprocal, tanh and logistic compiled once and called. All are
callable from Python on scalars and from Numba kernels, take integers of any type and return
an int64 whose value is the int32 the C++ returns. Numba code calling the int32 primitives
passes int64 arguments (``np.int64(0)``, not ``0``): a literal compiles another copy.

C++ semantics reproduced exactly:
  * gemmlowp ``Add``/``Sub``/``Neg`` on int32 are plain C++ ``+``/``-``: they wrap mod 2^32
    (signed overflow is UB; the compiled x86-64 code wraps) -> :func:`fp_add` & co.
  * ``operator*`` of two FixedPoints is ``SaturatingRoundingDoublingHighMul`` (the result has
    the sum of the integer bits) -> :func:`fp_mul`.
  * ``Rescale``/``SaturatingRoundingMultiplyByPOT``: saturating left shift for a positive
    exponent, ``RoundingDivideByPOT`` (round half away from zero) for a negative one.
  * ``ExactMulByPot`` only relabels the integer bits: the raw value is unchanged.
  * Constants are the raw int32 values in fixedpoint.h (``RescaleConstantInitializer`` is the
    identity for int32 raws).

The rounding primitives come from :mod:`hwsim.arith`; nothing here rounds by itself.
"""
from __future__ import annotations

import numba
import numpy as np

from .arith import (INT32_MAX, INT32_MIN, round_shift_toward_zero, rounding_divide_by_pot,
                    saturate, saturating_rounding_doubling_high_mul, wrap_int32)

__all__ = [
    "fp_add", "fp_sub", "fp_neg", "fp_mul", "saturating_rounding_multiply_by_pot", "rescale",
    "rounding_half_sum", "count_leading_zeros32",
    "exp_on_interval_between_negative_one_quarter_and_0_excl", "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1", "one_minus_x_over_one_plus_x_for_x_in_0_1",
    "fp_tanh", "fp_logistic", "get_reciprocal",
    "srdhm_int16", "saturating_doubling_high_mul_int16", "saturating_left_shift_int16",
    "rounding_divide_by_pot_int16",
]

_jit = numba.njit(cache=True, inline="always")   # inlined into the caller
_njit = numba.njit(cache=True)                   # the larger functions: compiled once, called
# The Q-format primitives the transcendental functions call: compiled once each (for int64
# arguments: every call site passes int64, no literal, or each literal would compile another
# copy) and called, LLVM inlining them at link time. Numba's own inlining (inline="always")
# re-types the callee's IR at every call site and costs ~30 ms a site: ~40 sites made the
# 15-line exp_on_interval_between_negative_one_quarter_and_0_excl a 1 s compilation.
_prim = numba.njit(cache=True)

# gemmlowp exp_on_negative_values barrel shifter: (exponent k, raw Q0.31 of exp(-2^k)).
_EXP_BARREL_EXPONENTS = np.array([-2, -1, 0, 1, 2, 3, 4], dtype=np.int64)
_EXP_BARREL_MULTIPLIERS = np.array([1672461947, 1302514674, 790015084, 290630308, 39332535,
                                    720401, 242], dtype=np.int64)

# Constants of fixedpoint.h (raw int32 values).
_EXP_MINUS_ONE_EIGHTH_Q0 = np.int64(1895147668)      # exp(-1/8) in Q0.31
_ONE_THIRD_Q0 = np.int64(715827883)                  # 1/3 in Q0.31
_48_OVER_17_Q2 = np.int64(1515870810)                # 48/17 in Q2.29
_NEG_32_OVER_17_Q2 = np.int64(-1010580540)           # -32/17 in Q2.29


# ---------------------------------------------------------------------------------------------
# Elementary operations on int32 raws
# ---------------------------------------------------------------------------------------------

@_prim
def fp_add(a, b):
    """gemmlowp Add on int32: a + b, wrapping mod 2^32."""
    return wrap_int32(np.int64(a) + np.int64(b))


@_prim
def fp_sub(a, b):
    """gemmlowp Sub on int32: a - b, wrapping mod 2^32."""
    return wrap_int32(np.int64(a) - np.int64(b))


@_prim
def fp_neg(a):
    """gemmlowp Neg on int32: -a, wrapping (-INT32_MIN == INT32_MIN)."""
    return wrap_int32(-np.int64(a))


@_prim
def fp_mul(a, b):
    """FixedPoint operator*: SaturatingRoundingDoublingHighMul(a, b) (integer bits add up)."""
    return saturating_rounding_doubling_high_mul(a, b)


@_prim
def saturating_rounding_multiply_by_pot(x, exponent):
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent>(int32 x), exponent in [-31, 31].

    exponent > 0: x * 2^exponent, saturated to int32 (threshold test as in gemmlowp);
    exponent < 0: RoundingDivideByPOT(x, -exponent); exponent == 0: x.
    """
    x = wrap_int32(x)
    e = np.int64(exponent)
    if e == 0:
        return x
    if e > 0:
        threshold = (np.int64(1) << (np.int64(31) - e)) - 1
        if x > threshold:
            return np.int64(INT32_MAX)
        if x < -threshold:
            return np.int64(INT32_MIN)
        return x << e
    return rounding_divide_by_pot(x, -e)


@_prim
def rescale(x, src_integer_bits, dst_integer_bits):
    """gemmlowp Rescale<dst>(FixedPoint<int32, src> x): SaturatingRoundingMultiplyByPOT by
    (src - dst)."""
    return saturating_rounding_multiply_by_pot(x, np.int64(src_integer_bits) -
                                               np.int64(dst_integer_bits))


@_prim
def rounding_half_sum(a, b):
    """gemmlowp RoundingHalfSum(int32 a, int32 b) = int32((a + b + sign(a + b)) / 2), the C++
    division truncating toward zero (sign = +1 for a sum >= 0): halves rounded away from 0."""
    s = np.int64(a) + np.int64(b)
    t = s + 1 if s >= 0 else s - 1
    # C++ '/' truncates: for t < 0, -((-t) >> 1) == trunc(t / 2).
    q = t >> np.int64(1) if t >= 0 else -((-t) >> np.int64(1))
    return wrap_int32(q)


@_prim
def count_leading_zeros32(x):
    """TFLite CountLeadingZeros(static_cast<uint32_t>(x)): 32 for 0."""
    u = np.int64(x) & np.int64(0xFFFFFFFF)
    if u == 0:
        return np.int64(32)
    n = np.int64(0)
    while u < np.int64(0x80000000):
        u <<= np.int64(1)
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Transcendental functions (fixedpoint.h)
# ---------------------------------------------------------------------------------------------

@_jit
def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a Q0.31 raw a in [-1/4, 0): Taylor series around -1/8. Returns Q0.31."""
    x = fp_add(a, np.int64(1) << np.int64(28))  # a + 1/8 (ConstantPOT<-3>)
    x2 = fp_mul(x, x)
    x3 = fp_mul(x2, x)
    x4 = fp_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, np.int64(-2))
    poly = saturating_rounding_multiply_by_pot(
        fp_add(fp_mul(fp_add(x4_over_4, x3), _ONE_THIRD_Q0), x2), np.int64(-1))
    # AddSaturatingIf16Bit is a plain Add for int32.
    return fp_add(_EXP_MINUS_ONE_EIGHTH_Q0,
                  fp_mul(_EXP_MINUS_ONE_EIGHTH_Q0, fp_add(x, poly)))


@_njit
def exp_on_negative_values(a, integer_bits):
    """gemmlowp exp_on_negative_values(FixedPoint<int32, integer_bits> a) for a <= 0 -> Q0.31.

    integer_bits in [0, 29]. The argument is split into a remainder in [-1/4, 0) (polynomial)
    and multiples of 1/4, 1/2, 1, ..., 16 (barrel shifter of exp(-2^k) constants, for the
    k < integer_bits); below -32 the result is 0 (only reachable with > 5 integer bits); a == 0
    gives One (INT32_MAX).
    """
    a = wrap_int32(a)
    ib = np.int64(integer_bits)
    frac = np.int64(31) - ib
    one_quarter = np.int64(1) << (frac - 2)  # ConstantPOT<-2>
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = fp_sub(a & mask, one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, ib, np.int64(0)))
    remainder = fp_sub(a_mod_quarter_minus_one_quarter, a)
    for k in range(_EXP_BARREL_EXPONENTS.shape[0]):
        e = _EXP_BARREL_EXPONENTS[k]
        if ib > e:
            shift = frac + e
            if (remainder & (np.int64(1) << shift)) != 0:
                result = fp_mul(result, _EXP_BARREL_MULTIPLIERS[k])
    if ib > 5:
        clamp = -(np.int64(1) << (np.int64(36) - ib))  # -32.0 in Q<ib>
        if a < clamp:
            result = np.int64(0)
    if a == 0:
        result = np.int64(INT32_MAX)
    return result


@_jit
def _newton_reciprocal_q2(half_denominator):
    """The three Newton-Raphson steps shared by the two x-in-[0,1] functions: x ~ 1/half_den in
    Q2.29, starting from 48/17 - 32/17 * half_den."""
    x = fp_add(_48_OVER_17_Q2, fp_mul(half_denominator, _NEG_32_OVER_17_Q2))
    one_q2 = np.int64(1) << np.int64(29)
    for _ in range(3):
        half_denominator_times_x = fp_mul(half_denominator, x)          # Q2
        one_minus = fp_sub(one_q2, half_denominator_times_x)           # Q2
        x = fp_add(x, rescale(fp_mul(x, one_minus), np.int64(4), np.int64(2)))  # Q4 -> Q2
    return x


@_jit
def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1(Q0.31 a) -> Q0.31 of 1 / (1 + a)."""
    half_denominator = rounding_half_sum(a, np.int64(INT32_MAX))  # (a + One) / 2
    x = _newton_reciprocal_q2(half_denominator)
    # ExactMulByPot<-1>: Q2 -> Q1 (same raw), then Rescale<0> from 1 integer bit.
    return rescale(x, np.int64(1), np.int64(0))


@_njit
def one_minus_x_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1(Q0.31 a) -> Q0.31 of (1-a)/(1+a)."""
    half_denominator = rounding_half_sum(a, np.int64(INT32_MAX))
    x = _newton_reciprocal_q2(half_denominator)
    return rescale(fp_sub(x, np.int64(1) << np.int64(29)), np.int64(2), np.int64(0))


@_njit
def fp_tanh(a, integer_bits):
    """gemmlowp tanh(FixedPoint<int32, integer_bits> a) -> Q0.31. integer_bits in [0, 28]."""
    a = wrap_int32(a)
    negative = a < 0
    n = a if negative else fp_neg(a)  # n <= 0 (but INT32_MIN stays itself)
    # neg_tanh_on_negative_values: ExactMulByPot<1> adds one integer bit, same raw.
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, np.int64(integer_bits) + 1))
    if a == 0:
        return np.int64(0)
    return fp_neg(t) if negative else t


@_njit
def fp_logistic(a, integer_bits):
    """gemmlowp logistic(FixedPoint<int32, integer_bits> a) -> Q0.31. integer_bits in [0, 29]."""
    a = wrap_int32(a)
    positive = a > 0
    abs_input = a if positive else fp_neg(a)
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(fp_neg(abs_input), integer_bits))
    if a == 0:
        return np.int64(1 << 30)  # one half
    if positive:
        return result_if_positive
    return fp_sub(np.int64(INT32_MAX), result_if_positive)  # One - r


@_njit
def get_reciprocal(x, x_integer_digits):
    """TFLite GetReciprocal(int32 x, x_integer_digits) -> (Q0.31 raw, num_bits_over_unit).

    x (> 0) is normalised by its leading zeros h to [1, 2) (as x << h over 2^31),
    1/(1 + (that - 1)) is taken with one_over_one_plus_x_for_x_in_0_1, and
    num_bits_over_unit = x_integer_digits - h. The uint32 shift and subtraction wrap like C++
    (a zero x shifts by 32, which x86-64 performs as a shift by 0).
    """
    u = np.int64(x) & np.int64(0xFFFFFFFF)
    h = count_leading_zeros32(u)
    num_bits_over_unit = np.int64(x_integer_digits) - h
    shifted = (u << (h & np.int64(31))) & np.int64(0xFFFFFFFF)
    shifted_sum_minus_one = wrap_int32(shifted - np.int64(0x80000000))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# ---------------------------------------------------------------------------------------------
# int16 raws (HARD_SWISH works on int16 fixed point)
# ---------------------------------------------------------------------------------------------

@_jit
def srdhm_int16(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul(int16 a, int16 b).

    Same rounding as the int32 version with 15 fractional bits instead of 31:
    floor(a*b / 2^15 + 1/2), and a == b == -32768 saturates to 32767. Computed as the int32
    primitive on (a, b * 2^16) (exactly a*b*2^16 / 2^31), saturated to int16 (the only value
    out of range is that overflow case, 32768).
    """
    return saturate(saturating_rounding_doubling_high_mul(np.int64(a),
                                                         np.int64(b) << np.int64(16)), 16)


@_jit
def saturating_doubling_high_mul_int16(a, b):
    """TFLite reference_ops::SaturatingDoublingHighMul(int16 a, int16 b) (hard_swish.h):
    trunc(a*b / 2^15) (C++ division), -32768 * -32768 -> 32767."""
    return saturate(round_shift_toward_zero(np.int64(a) * np.int64(b), 15), 16)


@_jit
def saturating_left_shift_int16(value, amount):
    """TFLite reference_ops::SaturatingLeftShift(int16 value, int amount): clamp(value * 2^amount)
    to int16."""
    return saturate(np.int64(value) << np.int64(amount), 16)



@_jit
def rounding_divide_by_pot_int16(x, exponent):
    """gemmlowp RoundingDivideByPOT<int16_t>(x, exponent), exponent in [0, 31].

    For exponent <= 15 this is the int32 primitive (round half away from zero). For exponent >=
    16 gemmlowp's mask ``Dup<int16_t>((1ll << exponent) - 1)`` is truncated to int16, i.e. -1:
    remainder = x, threshold = -1 + (x < 0), so the result is (x >> exponent) + (x > threshold):
    1 for every x >= 0 and -1 for every x < 0 (exactly what the C++ computes).
    """
    x = saturate(x, 16)
    e = np.int64(exponent)
    if e <= 15:
        return rounding_divide_by_pot(x, e)
    return np.int64(1) if x >= 0 else np.int64(-1)
