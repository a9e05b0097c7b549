"""Every integer primitive of hwsim, defined exactly once.

All kernels (TFLite-reference emulation and hardware model alike) must build on
these functions, so that "bit-exact" has a single definition.

Conventions
-----------
* Integer primitives are Numba functions (``@njit(cache=True, inline="always")``):
  callable from plain Python on scalars *and* from other ``@njit`` kernels.
  Inputs may be any integer type; every value is converted to int64 first and
  all arithmetic is done on int64 scalars.  Every primitive returns an int64
  scalar.  Functions that model a C++ ``int32_t`` result return an int64 whose
  *value* is that int32 (already wrapped/saturated into [-2^31, 2^31-1]).
* Names state the rounding exactly (gemmlowp style).  In the comments,
  ``/`` is exact rational division, ``floor``/``trunc`` are the mathematical
  functions, and ``>>`` is an arithmetic (flooring) right shift.
* Parameters that are ``int32_t`` in TFLite/gemmlowp are converted to int32
  the way a C++ call would convert an out-of-range ``int64_t`` argument:
  two's-complement wrap (mod 2^32).  Callers should not rely on this;
  it only makes the emulation total.
* No domain checks are done inside the ``@njit`` primitives (they sit in inner
  loops).  Each docstring states the domain; outside it the result is
  unspecified (as the C++ behaviour is undefined there).  The Python-level
  helpers (``quantize_multiplier`` & co.) do check and raise ``ValueError``.

TFLite sources emulated: ``tensorflow/lite/kernels/internal/common.{h,cc}``
(``MultiplyByQuantizedMultiplier``), gemmlowp ``fixedpoint.h``
(``SaturatingRoundingDoublingHighMul``, ``RoundingDivideByPOT``) and
``tensorflow/lite/kernels/internal/quantization_util.cc``.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .vocab import Rounding

__all__ = [
    "INT32_MIN", "INT32_MAX",
    "ROUND_HALF_AWAY", "ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_FLOOR",
    "ROUND_TOWARD_ZERO",
    "saturate", "saturate_unsigned", "wrap", "wrap_unsigned", "wrap_int32",
    "round_shift_half_away", "round_shift_half_up", "round_shift_half_even",
    "round_shift_floor", "round_shift_toward_zero", "round_shift",
    "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier_double", "multiply_by_quantized_multiplier_double_lr",
    "multiply_by_quantized_multiplier_single",
    "multiply_by_quantized_multiplier_int64", "reduce_multiplier_q31_to_q15_half_up",
    "requant_mult_shift", "requant_shift_only",
    "quantize_multiplier", "quantize_multiplier_array",
    "quantize_multiplier_smaller_than_one_exp",
    "quantize_multiplier_greater_than_one",
    "preprocess_softmax_scaling", "preprocess_log_softmax_scaling_exp",
    "calculate_input_radius", "round_half_away_f32", "real_to_m_e",
    "round_half_away", "round_half_away_int",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# Rounding modes: the codes of hwsim.vocab.Rounding (names and codes are defined there), as
# plain ints that Numba freezes as compile-time constants inside @njit code.
ROUND_HALF_AWAY = int(Rounding.half_away_from_zero)  # nearest, ties away from zero
ROUND_HALF_UP = int(Rounding.half_up)                # nearest, ties toward +inf
ROUND_HALF_EVEN = int(Rounding.half_even)            # nearest, ties to even
ROUND_FLOOR = int(Rounding.floor)                    # toward -inf
ROUND_TOWARD_ZERO = int(Rounding.toward_zero)        # truncation

_jit = numba.njit(cache=True, inline="always")


# ---------------------------------------------------------------------------
# 1. Saturation and wrapping
# ---------------------------------------------------------------------------

@_jit
def saturate(x, bits):
    """Clamp x to the signed range [-2^(bits-1), 2^(bits-1) - 1]; bits in 1..63."""
    x = np.int64(x)
    b = np.int64(bits)
    hi = (np.int64(1) << (b - 1)) - 1
    lo = -hi - 1
    if x > hi:
        return hi
    if x < lo:
        return lo
    return x


@_jit
def saturate_unsigned(x, bits):
    """Clamp x to the unsigned range [0, 2^bits - 1]; bits in 1..63."""
    x = np.int64(x)
    b = np.int64(bits)
    hi = ~(np.int64(-1) << b)  # 2^b - 1 (no overflow even for b = 63)
    if x > hi:
        return hi
    if x < 0:
        return np.int64(0)
    return x


@_jit
def wrap(x, bits):
    """Two's-complement wrap of x to signed `bits` bits; bits in 1..63.

    Math: ((x + 2^(bits-1)) mod 2^bits) - 2^(bits-1).  Implemented as a
    sign extension: shift the low `bits` bits to the top of the int64 and
    arithmetic-shift back (int64 left shifts wrap mod 2^64, which preserves
    the value mod 2^bits).  Domain: any int64 x.
    """
    x = np.int64(x)
    s = np.int64(64) - np.int64(bits)
    return (x << s) >> s


@_jit
def wrap_unsigned(x, bits):
    """x mod 2^bits, in [0, 2^bits - 1]; bits in 1..63.  Domain: any int64 x."""
    x = np.int64(x)
    return x & ~(np.int64(-1) << np.int64(bits))


@_jit
def wrap_int32(x):
    """wrap(x, 32): what a C++ conversion int64_t -> int32_t does (mod 2^32)."""
    x = np.int64(x)
    return (x << np.int64(32)) >> np.int64(32)


# ---------------------------------------------------------------------------
# 2. Rounding right shifts:  result = round(x / 2^s)
# ---------------------------------------------------------------------------
# Common decomposition: x = q * 2^s + r  with  q = x >> s = floor(x / 2^s)
# and r = x & (2^s - 1) in [0, 2^s).  Then x / 2^s = q + r / 2^s, and
# with half = 2^(s-1):  r < half  -> below the midpoint,
#                       r == half -> exactly a tie,
#                       r > half  -> above the midpoint.
# Each mode is q or q + 1.  Only q + 1 could overflow, and it cannot because
# q <= (2^63 - 1) >> s < 2^63 - 1 when s >= 1.
# Domain of every round_shift_*: ANY int64 x, s in [0, 63].  (Wider than the
# |x| < 2^62, s <= 62 the model needs; no intermediate ever overflows.)
# s == 0 returns x unchanged in every mode.

@_jit
def round_shift_half_away(x, s):
    """round(x / 2^s), ties away from zero (-2.5 -> -3, 2.5 -> 3)."""
    x = np.int64(x)
    s = np.int64(s)
    if s == 0:
        return x
    q = x >> s
    r = x & ~(np.int64(-1) << s)
    half = np.int64(1) << (s - 1)
    # tie: x/2^s = q + 1/2 is positive exactly when q >= 0, i.e. x >= 0.
    if r > half or (r == half and x >= 0):
        return q + 1
    return q


@_jit
def round_shift_half_up(x, s):
    """floor(x / 2^s + 1/2): nearest, ties toward +inf (-2.5 -> -2, 2.5 -> 3).

    Same value as (x + 2^(s-1)) >> s, but without the overflow of that sum.
    """
    x = np.int64(x)
    s = np.int64(s)
    if s == 0:
        return x
    q = x >> s
    r = x & ~(np.int64(-1) << s)
    half = np.int64(1) << (s - 1)
    if r >= half:
        return q + 1
    return q


@_jit
def round_shift_half_even(x, s):
    """round(x / 2^s), ties to the even neighbour (-2.5 -> -2, 3.5 -> 4)."""
    x = np.int64(x)
    s = np.int64(s)
    if s == 0:
        return x
    q = x >> s
    r = x & ~(np.int64(-1) << s)
    half = np.int64(1) << (s - 1)
    if r > half or (r == half and (q & 1) != 0):
        return q + 1
    return q


@_jit
def round_shift_floor(x, s):
    """floor(x / 2^s) = x >> s (arithmetic shift)."""
    x = np.int64(x)
    s = np.int64(s)
    return x >> s


@_jit
def round_shift_toward_zero(x, s):
    """trunc(x / 2^s): C integer division by 2^s (-2.5 -> -2, 2.5 -> 2)."""
    x = np.int64(x)
    s = np.int64(s)
    if s == 0:
        return x
    q = x >> s
    r = x & ~(np.int64(-1) << s)
    if r != 0 and x < 0:
        return q + 1
    return q


@_jit
def round_shift(x, s, mode):
    """round(x / 2^s) in rounding `mode` (one of the ROUND_* codes).

    Domain: any int64 x, s in [0, 63].  An unknown mode raises ValueError.
    """
    if mode == ROUND_HALF_AWAY:
        return round_shift_half_away(x, s)
    elif mode == ROUND_HALF_UP:
        return round_shift_half_up(x, s)
    elif mode == ROUND_HALF_EVEN:
        return round_shift_half_even(x, s)
    elif mode == ROUND_FLOOR:
        return round_shift_floor(x, s)
    elif mode == ROUND_TOWARD_ZERO:
        return round_shift_toward_zero(x, s)
    raise ValueError("round_shift: unknown rounding mode")


# ---------------------------------------------------------------------------
# 3. gemmlowp / TFLite fixed-point primitives (exact int32 semantics)
# ---------------------------------------------------------------------------

@_jit
def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul(int32 a, int32 b) (= ARM VQRDMULH).

    C++:  nudge = (ab >= 0) ? 2^30 : 1 - 2^30;  result = int32((ab + nudge) / 2^31)
    with C++ *truncating* division, and a == b == INT32_MIN -> INT32_MAX.
    Math: trunc((ab + 1 - 2^30) / 2^31) == floor((ab + 2^30) / 2^31) for ab < 0,
    so the whole function is floor(ab / 2^31 + 1/2): round to nearest, ties
    toward +inf (NOT ties away from zero), saturated at the single overflow.
    a, b: int32 values (others are wrapped mod 2^32 first).
    """
    a = wrap_int32(a)
    b = wrap_int32(b)
    ab = a * b  # |ab| <= 2^62: exact in int64
    # floor((ab + 2^30) / 2^31), an arithmetic shift: branch-free so kernels vectorize. It
    # equals C++'s trunc((ab + nudge) / 2^31) (see the docstring; the big-integer tests check
    # the identity against the C++ definition).
    q = (ab + np.int64(1 << 30)) >> np.int64(31)
    # the single overflow: INT32_MIN * INT32_MIN = 2^62 gives q = 2^31 -> saturate
    return q if q <= INT32_MAX else np.int64(INT32_MAX)


@_jit
def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT(int32 x, int exponent), exponent in [0, 31].

    C++: mask = 2^e - 1; remainder = x & mask;
         threshold = (mask >> 1) + (x < 0 ? 1 : 0);
         result = (x >> e) + (remainder > threshold ? 1 : 0)
    Math: round(x / 2^e) with ties away from zero.
    x: an int32 value (others are wrapped mod 2^32 first).
    """
    x = wrap_int32(x)
    e = np.int64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> np.int64(1)) + (x < 0)
    return (x >> e) + (remainder > threshold)


@_jit
def multiply_by_quantized_multiplier_double(x, quantized_multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier(int32 x, int32 m, int shift), default
    ("double rounding") build.

    C++: left_shift = max(shift, 0); right_shift = max(-shift, 0);
         RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
                                 x * (1 << left_shift), m), right_shift)
    Math: round_half_away(round_half_up(wrap32(x * 2^ls) * m / 2^31) / 2^rs).
    `x * (1 << left_shift)` is an int32 multiply in C++: signed overflow is UB,
    and what the compiled x86-64 code does (imul / shl on 32-bit registers) is a
    two's-complement wrap to int32; we emulate exactly that wrap.
    Domain: shift in [-31, 31] (right_shift <= 31 is RoundingDivideByPOT's
    limit; shift >= 32 makes `1 << left_shift` UB in C++).
    """
    shift = np.int64(shift)
    left_shift = shift if shift > 0 else np.int64(0)
    right_shift = -shift if shift < 0 else np.int64(0)
    return multiply_by_quantized_multiplier_double_lr(x, quantized_multiplier, left_shift,
                                                      right_shift)


@_jit
def multiply_by_quantized_multiplier_double_lr(x, quantized_multiplier, left_shift, right_shift):
    """multiply_by_quantized_multiplier_double with the shift already split into
    left_shift = max(shift, 0) and right_shift = max(-shift, 0) (kernels hoist that split out
    of their loops so the body is branch-free and vectorizes)."""
    x = wrap_int32(x)
    m = wrap_int32(quantized_multiplier)
    x_shifted = wrap_int32(x << np.int64(left_shift))
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x_shifted, m), right_shift)


def multiply_by_quantized_multiplier_double_magnitude(x: int, quantized_multiplier: int, right_shift: int) -> int:
    """multiply_by_quantized_multiplier_double(x, m, -e) computed on |x| (m >= 0, no left
    shift, e = right_shift >= 1), as the AVX2 kernels' sign-magnitude form does (mac_intrinsics.
    _rq64s_dwords):

        sign(x) * floor((|x| * m + 2^30 + 2^(e+30)) / 2^(31+e))

    Math: with p = x * m, TFLite's high multiply is floor((p + 2^30) / 2^31) (ties toward
    +inf), so its magnitude is floor((|p| + 2^30 - [p < 0]) / 2^31), and RoundingDivideByPOT
    rounds half away from zero, sign(h) * floor((|h| + 2^(e-1)) / 2^e): nested floors give
    sign(x) * floor((|x| m + 2^30 + 2^(e+30) - [x < 0]) / 2^(31+e)) exactly. This form drops
    the ``- [x < 0]``, which changes the quotient only when |x| m + 2^30 + 2^(e+30) is a
    multiple of 2^(31+e) (a tie of both roundings at once), and only for x < 0, by one:
    ``magnitude_form_exact`` says when every such x has a quotient of 256 or more, so that
    zp + result saturates to int8 both ways (zp in [-128, 127]) and the clamped int8 output
    is the same. Python integers: exact for any x."""
    x, m, e = int(x), int(quantized_multiplier), int(right_shift)
    q = (abs(x) * m + (1 << 30) + (1 << (e + 30))) >> (31 + e)
    return -q if x < 0 else q


def magnitude_form_exact(quantized_multiplier: int, right_shift: int, limit: int = 256) -> bool:
    """Whether multiply_by_quantized_multiplier_double_magnitude equals
    multiply_by_quantized_multiplier_double(x, m, -e) for every int32 x where its quotient is
    below ``limit`` (m in [0, 2^31), e >= 1). They differ only at a tie, where
    |x| m + 2^30 + 2^(e+30) = 0 mod 2^(31+e); then |x| m = 0 mod 2^30, so |x| is a multiple of
    2^(30-k) (k: the trailing zero bits of m) and the magnitude is at least
    2^(30-k) m / 2^(31+e) = (m >> k) / 2^(1+e). So ``(m >> k) >= limit * 2^(1+e)`` suffices;
    m = 0 (every result 0) always passes."""
    m, e = int(quantized_multiplier), int(right_shift)
    if m == 0:
        return True
    if not (0 < m < (1 << 31)) or e < 1:
        return False
    k = (m & -m).bit_length() - 1
    return (m >> k) >= limit << (1 + e)


@_jit
def multiply_by_quantized_multiplier_single(x, quantized_multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier(int32 x, int32 m, int shift) built
    with TFLITE_SINGLE_ROUNDING.

    C++: total_shift = 31 - shift;
         result = (int64(x) * m + (1 << (total_shift - 1))) >> total_shift;
         return int32(result)
    Math: wrap32(floor(x * m / 2^(31 - shift) + 1/2)), ties toward +inf.
    Domain: shift in [-31, 30] (total_shift in [1, 62]); x, m int32 values.
    |x*m| <= 2^62 and the rounding term <= 2^61, so int64 never overflows.
    TFLite only DCHECKs that the result fits int32; we wrap like the cast.
    """
    x = wrap_int32(x)
    m = wrap_int32(quantized_multiplier)
    total_shift = np.int64(31) - np.int64(shift)
    rnd = np.int64(1) << (total_shift - 1)
    return wrap_int32((x * m + rnd) >> total_shift)


@_jit
def reduce_multiplier_q31_to_q15_half_up(quantized_multiplier):
    """The Q31 multiplier cut to Q15 by TFLite's and TFLM's int64 MultiplyByQuantizedMultiplier
    (common.h; the 16x8 FULLY_CONNECTED of TFLM and the 16x8 CONV layers of both).

    C++: (m < 0x7FFF0000) ? ((m + (1 << 15)) >> 16) : 0x7FFF
    Math: floor(m / 2^16 + 1/2), ties toward +inf, capped at 0x7FFF (2^15 - 1: the ties at
    and above 0x7FFF8000 would round to 2^15, which is not a Q15 value).
    Domain: m an int32 value >= 0 (others are wrapped mod 2^32 first).
    """
    m = wrap_int32(quantized_multiplier)
    if m < np.int64(0x7FFF0000):
        return (m + np.int64(1 << 15)) >> np.int64(16)
    return np.int64(0x7FFF)


@_jit
def multiply_by_quantized_multiplier_int64(x, quantized_multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier(int64 x, int32 m, int shift), the
    variant used by 16x8 kernels (identical in both rounding builds).

    C++: reduced = (m < 0x7FFF0000) ? ((m + 2^15) >> 16) : 0x7FFF;
         total_shift = 15 - shift;
         result = (x * reduced + (1 << (total_shift - 1))) >> total_shift;
         return int32(result)
    Math: reduced = floor(m / 2^16 + 1/2) (capped at 0x7FFF), then
          wrap32(floor(x * reduced / 2^(15 - shift) + 1/2)).
    Domain (TFLite's asserts): -2^47 <= x < 2^47, m in [0, 2^31-1],
    shift in [-31, 7]; then |x * reduced| < 2^62 and nothing overflows.
    """
    x = np.int64(x)
    reduced = reduce_multiplier_q31_to_q15_half_up(quantized_multiplier)
    total_shift = np.int64(15) - np.int64(shift)
    rnd = np.int64(1) << (total_shift - 1)
    return wrap_int32((x * reduced + rnd) >> total_shift)


# ---------------------------------------------------------------------------
# 4. Generic hardware requantization unit
# ---------------------------------------------------------------------------

@_jit
def requant_mult_shift(acc, multiplier, shift_right, mode):
    """round_shift(acc * multiplier, shift_right, mode), computed in int64.

    Math: round(acc * multiplier / 2^shift_right) in `mode`, no saturation.
    Domain: the product acc * multiplier must fit int64 (e.g. any int32 acc
    times any multiplier with |multiplier| <= 2^31 is fine: |product| <= 2^62);
    shift_right in [0, 63].  The rounding itself never overflows.
    """
    return round_shift(np.int64(acc) * np.int64(multiplier), shift_right, mode)


@_jit
def requant_shift_only(acc, shift_right, mode):
    """round(acc / 2^shift_right) in `mode`; any int64 acc, shift_right in [0, 63]."""
    return round_shift(acc, shift_right, mode)


# ---------------------------------------------------------------------------
# 5. Python-level helpers used at lowering time (float64 math, like TFLite)
# ---------------------------------------------------------------------------

def round_half_away_int(v: float) -> int:
    """std::round for a finite double, returned as a Python int (exact).

    Math: with f = floor(|v|), the result is sign(v) * (f + 1) when |v| - f >= 1/2, else
    sign(v) * f. Exact: |v| - floor(|v|) is exact in binary floating point, so the one
    comparison decides (no ``v + 0.5`` double rounding: 0.49999999999999994 rounds to 0).
    """
    a = abs(v)
    f = math.floor(a)
    if a - f >= 0.5:  # a - floor(a) is exact in binary floating point
        f += 1
    return int(-f if v < 0 else f)


_round_half_away_float = round_half_away_int  # the name lower/activation.py imports


def round_half_away(x) -> np.ndarray:
    """Round float64 values to the nearest integer, ties away from zero (C ``round``,
    TFLite's ``TfLiteRound`` on doubles), elementwise; returns float64 of the same shape.

    Math: with t = trunc(x), the result is t + sign(x) when |x - t| >= 1/2, else t. Exact for
    every float64 (x - t is exact), unlike ``sign(x) * floor(|x| + 0.5)``, which rounds
    0.49999999999999994 up to 1. NaN and +-inf come back unchanged.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.trunc(x)
    frac = x - t                      # exact
    return t + np.where(np.abs(frac) >= 0.5, np.sign(x), 0.0)


def round_half_away_f32(v) -> np.ndarray:
    """TfLiteRound on float32 values: std::round(float) (roundf), ties away from zero.

    C++: ``TfLiteRound(x) = std::round(x)`` on a ``float``, as TFLite's Quantize,
    CalculateActivationRangeQuantized, CheckedLog2 and the nearest-neighbour resize call it.
    Math: with r = trunc(v), the result is r + sign(v) when |v - r| >= 1/2, else r. Exact:
    r and v - r are exact in float32 (an integer-valued float32 and the fraction of v), so
    the one comparison decides, with no double rounding. Domain: any float32 array or scalar
    (NaN and +-inf come back unchanged); returns float32 values of the same shape.
    """
    v = np.asarray(v, dtype=np.float32)
    r = np.trunc(v)
    frac = np.abs(v - r)  # exact in floating point
    return np.where(frac >= np.float32(0.5), r + np.sign(v), r).astype(np.float32)


def real_to_m_e(real: float) -> tuple[int, int]:
    """A finite double ``real`` >= 0 as the integers (M, E) with real == M * 2^E exactly.

    The form in which requant scheme double_round (TFLite's reference FULLY_CONNECTED:
    ``round(double(acc) * real)``) carries its float multiplier in a Program: no floating
    point at run time (hwsim.kernels.requant.double_round_int evaluates it in integers).
    C++: the significand and exponent of an IEEE double (``std::frexp``).
    Normal doubles: M in [2^52, 2^53) (the significand with its hidden bit), E = exponent - 52.
    Subnormals: M < 2^52, E = -1074. 0.0 -> (0, 0). Exact (frexp and the power-of-two
    scaling by 2^53 are exact). Domain: finite real >= 0, else ValueError.
    """
    real = float(real)
    if not math.isfinite(real) or real < 0.0:
        raise ValueError(f"real_to_m_e: {real!r} is not a finite non-negative number")
    if real == 0.0:
        return 0, 0
    m, e = math.frexp(real)  # real = m * 2^e, m in [0.5, 1)
    big_m, big_e = int(m * (1 << 53)), e - 53
    if big_e < -1074:  # subnormal: the significand has fewer bits
        big_m >>= (-1074 - big_e)  # exact: the dropped bits are zero for a subnormal
        big_e = -1074
    return big_m, big_e


def _check_finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: {value!r} is not a finite number")
    return value


def _cpp_int_shl(amount: int) -> int:
    """The C++ `int` expression `1 << amount` for amount in [0, 31], as x86-64
    compilers evaluate it: 1 << 31 is INT_MIN (UB before C++20, defined as
    that since)."""
    if not 0 <= amount <= 31:
        raise ValueError(f"1 << {amount} is undefined for a 32-bit int")
    v = 1 << amount
    return v - (1 << 32) if v >= (1 << 31) else v


def quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite QuantizeMultiplier(double) -> (quantized_multiplier, shift).

    real ~= quantized_multiplier * 2^(shift - 31) with quantized_multiplier a
    Q0.31 mantissa in [2^30, 2^31) (or (-2^31, -2^30] for negative reals).
      0.0 -> (0, 0);  q, shift = frexp(real)  (|q| in [0.5, 1));
      q_fixed = std::round(q * 2^31)  (ties away from zero; q * 2^31 is exact);
      q_fixed == 2^31 -> (2^30, shift + 1);
      shift < -31 -> (0, 0)  (flush tiny multipliers);
      single_rounding and shift > 30 -> (2^31 - 1, 30)  (TFLITE_SINGLE_ROUNDING).
    Negative reals follow the same code path (frexp gives a negative q); the
    mantissa can then reach -2^31, which is NOT renormalised (as in TFLite).
    Non-finite input raises ValueError (undefined behaviour in TFLite).
    """
    real = _check_finite("quantize_multiplier", real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away_int(q * float(1 << 31))
    if q_fixed > (1 << 31):  # cannot happen; TFLITE_CHECK in the original
        raise AssertionError("quantize_multiplier: mantissa overflow")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if single_rounding and shift > 30:
        shift = 30
        q_fixed = (1 << 31) - 1
    return int(q_fixed), int(shift)


def quantize_multiplier_array(reals, single_rounding: bool = False):
    """Element-wise quantize_multiplier (TFLite QuantizeMultiplierArray).

    `reals` is converted to float64; returns (multipliers int32, shifts int32)
    arrays of the same shape.
    """
    arr = np.asarray(reals, dtype=np.float64)
    mult = np.empty(arr.shape, dtype=np.int32)
    shift = np.empty(arr.shape, dtype=np.int32)
    for idx in np.ndindex(arr.shape):
        mult[idx], shift[idx] = quantize_multiplier(float(arr[idx]), single_rounding)
    return mult, shift


def quantize_multiplier_smaller_than_one_exp(
        real: float, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite QuantizeMultiplierSmallerThanOneExp -> (multiplier, left_shift).

    Requires 0 < real < 1; left_shift (<= 0) is the QuantizeMultiplier shift.
    """
    real = _check_finite("quantize_multiplier_smaller_than_one_exp", real)
    if not 0.0 < real < 1.0:
        raise ValueError(f"quantize_multiplier_smaller_than_one_exp: need 0 < real < 1, got {real!r}")
    m, shift = quantize_multiplier(real, single_rounding)
    if shift > 0:  # TFLITE_CHECK_LE(shift, 0); only reachable by rounding up to 1.0
        raise ValueError(f"quantize_multiplier_smaller_than_one_exp: {real!r} rounds to shift {shift} > 0")
    return m, shift


def quantize_multiplier_greater_than_one(
        real: float, single_rounding: bool = False) -> tuple[int, int]:
    """TFLite QuantizeMultiplierGreaterThanOne -> (multiplier, left_shift >= 0).

    Requires real > 1.
    """
    real = _check_finite("quantize_multiplier_greater_than_one", real)
    if not real > 1.0:
        raise ValueError(f"quantize_multiplier_greater_than_one: need real > 1, got {real!r}")
    m, shift = quantize_multiplier(real, single_rounding)
    if shift < 0:  # TFLITE_CHECK_GE(left_shift, 0); unreachable for real > 1
        raise ValueError(f"quantize_multiplier_greater_than_one: negative shift {shift}")
    return m, shift


def preprocess_softmax_scaling(beta: float, input_scale: float, input_integer_bits: int,
                               single_rounding: bool = False) -> tuple[int, int]:
    """TFLite PreprocessSoftmaxScaling -> (quantized_multiplier, left_shift).

    real = min(beta * input_scale * (1 << (31 - input_integer_bits)), cap) with
    cap = 2^31 - 1 (2^30 - 1 under TFLITE_SINGLE_ROUNDING), evaluated in double
    left to right like the C++; then QuantizeMultiplierGreaterThanOne(real).
    `1 << (31 - input_integer_bits)` is a C++ int: input_integer_bits == 0 gives
    INT_MIN, so the real becomes negative and the GreaterThanOne check fails
    (ValueError), exactly as TFLite's TFLITE_CHECK would abort.
    """
    beta = _check_finite("preprocess_softmax_scaling beta", beta)
    input_scale = _check_finite("preprocess_softmax_scaling input_scale", input_scale)
    cap = float((1 << 30) - 1) if single_rounding else float((1 << 31) - 1)
    real = beta * input_scale * float(_cpp_int_shl(31 - int(input_integer_bits)))
    real = min(real, cap)
    return quantize_multiplier_greater_than_one(real, single_rounding)


def preprocess_log_softmax_scaling_exp(beta: float, input_scale: float, input_integer_bits: int,
                                       single_rounding: bool = False):
    """TFLite PreprocessLogSoftmaxScalingExp ->
    (quantized_multiplier, left_shift, reverse_scaling_divisor, reverse_scaling_left_shift).

    After preprocess_softmax_scaling: reverse = (1 << (31 - left_shift)) / double(m)
    (C++ int shift, see _cpp_int_shl), quantized with QuantizeMultiplierSmallerThanOneExp.
    """
    m, left_shift = preprocess_softmax_scaling(beta, input_scale, input_integer_bits,
                                               single_rounding)
    reverse = float(_cpp_int_shl(31 - left_shift)) / float(m)
    rm, rshift = quantize_multiplier_smaller_than_one_exp(reverse, single_rounding)
    return m, left_shift, rm, rshift


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """TFLite CalculateInputRadius (float build).

    floor(((2^iib - 1) * 2^(total_signed_bits - iib)) / 2^input_left_shift),
    evaluated in double like the C++ (every step is exact there: powers of two
    times an integer < 2^31).  Raises ValueError where the C++ shifts or the
    final int conversion would be undefined.
    """
    iib = int(input_integer_bits)
    ls = int(input_left_shift)
    tsb = int(total_signed_bits)
    if not (0 <= iib <= 30 and 0 <= tsb - iib <= 62 and 0 <= ls <= 62):
        raise ValueError(f"calculate_input_radius: shifts out of range "
                         f"(input_integer_bits={iib}, input_left_shift={ls}, total_signed_bits={tsb})")
    max_input_rescaled = 1.0 * float((1 << iib) - 1) * float(1 << (tsb - iib)) / float(1 << ls)
    r = math.floor(max_input_rescaled)
    if not INT32_MIN <= r <= INT32_MAX:
        raise ValueError(f"calculate_input_radius: result {r} does not fit a C++ int")
    return int(r)


# -- ONNX Runtime's float32 arithmetic (hwsim.lower.onnxrt, hwsim.kernels.onnxrt) ---------------
# ORT's quantized CPU kernels (MLAS) compute their rescaling in IEEE float32, rounding to the
# nearest integer with ties to even (cvtps2dq / nearbyintf in the default rounding mode). These
# are elementwise numpy functions: numpy's float32 multiply, divide and int -> float32
# conversion are the correctly rounded IEEE operations MLAS uses, and np.rint rounds half to
# even. They return int64 (the value before any saturation) or float32 arrays.

def requant_float32_half_even(acc, scale) -> np.ndarray:
    """MlasRequantizeOutput before the zero point: round_half_even(float32(acc) * scale).

    ``acc``: integer array (int32 accumulators, converted to float32 with one rounding as
    cvtdq2ps does); ``scale``: float32, broadcast against ``acc`` (per channel on the last
    axis). The product is one float32 multiply. Results are clipped to +-2^40 before the
    conversion (beyond any 8/16-bit range: the caller saturates).
    """
    v = np.asarray(acc).astype(np.float32) * np.asarray(scale, np.float32)
    return np.rint(np.clip(v, -2.0**40, 2.0**40)).astype(np.int64)


def quantize_float32_half_even(x, scale, zero_point: int, lo: int, hi: int) -> np.ndarray:
    """ONNX QuantizeLinear as MLAS computes it: saturate(round_half_even(x / scale) + zp) to
    [lo, hi], the division in float32 (MlasQuantizeLinear)."""
    v = np.asarray(x, np.float32) / np.float32(scale)
    v = np.rint(np.clip(v, np.float32(lo - zero_point), np.float32(hi - zero_point)))
    return v.astype(np.int64) + int(zero_point)


def dequantize_float32(q, scale, zero_point) -> np.ndarray:
    """ONNX DequantizeLinear as MLAS computes it: float32(q - zp) * scale, one float32
    multiply (``scale``/``zero_point`` broadcast against ``q``)."""
    d = (np.asarray(q).astype(np.int64) - np.asarray(zero_point, np.int64)).astype(np.float32)
    return d * np.asarray(scale, np.float32)


def fma_float32(a, b, c) -> np.ndarray:
    """fmaf(a, b, c): a * b + c rounded once to float32 (ties to even), as vfmadd does.

    a * b is exact in float64 (24 + 24 significant bits); the float64 sum s = a*b + c may
    round, and its error e is recovered exactly (TwoSum). Rounding s to float32 is then
    correct unless s lies exactly halfway between two float32 values and e != 0: the exact
    value is then on e's side of the midpoint.
    """
    p = np.asarray(a, np.float32).astype(np.float64) * np.asarray(b, np.float32).astype(np.float64)
    c = np.asarray(c, np.float32).astype(np.float64)
    s = p + c
    bb = s - p
    e = (p - (s - bb)) + (c - bb)
    f = s.astype(np.float32)
    fd = f.astype(np.float64)
    up = np.nextafter(f, np.float32(np.inf)).astype(np.float64)
    down = np.nextafter(f, np.float32(-np.inf)).astype(np.float64)
    other = np.where(s > fd, up, down)
    tie = (s != fd) & ((fd + other) / 2 == s) & (e != 0)
    fix = tie & (np.sign(e) == np.sign(other - fd))
    return np.where(fix, other.astype(np.float32), f).astype(np.float32)
