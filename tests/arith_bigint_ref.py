"""Independent big-integer reference for hwsim/arith.py.

Plain Python ints (unbounded) and exact rationals only: no bit masks, no
two's-complement tricks, no fixed-width types.  Each function states the
mathematical definition it implements; rounding is decided by comparing the
exact remainder of a division with half the divisor.

Used only by tests/test_arith.py.
"""
from __future__ import annotations

import math
from fractions import Fraction

HALF_AWAY, HALF_UP, HALF_EVEN, FLOOR, TOWARD_ZERO = range(5)
MODES = (HALF_AWAY, HALF_UP, HALF_EVEN, FLOOR, TOWARD_ZERO)

I32_LO = -(2 ** 31)
I32_HI = 2 ** 31 - 1


# --- ranges ------------------------------------------------------------------

def saturate(x: int, bits: int) -> int:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return min(max(x, lo), hi)


def saturate_unsigned(x: int, bits: int) -> int:
    return min(max(x, 0), 2 ** bits - 1)


def wrap_unsigned(x: int, bits: int) -> int:
    return x % (2 ** bits)  # Python % with positive modulus is in [0, 2^bits)


def wrap(x: int, bits: int) -> int:
    """The unique y in [-2^(bits-1), 2^(bits-1)) with y == x (mod 2^bits)."""
    y = x % (2 ** bits)
    return y - 2 ** bits if y >= 2 ** (bits - 1) else y


def to_int32(x: int) -> int:
    return wrap(x, 32)


# --- rounding of an exact rational ----------------------------------------

def round_div(num: int, den: int, mode: int) -> int:
    """Round the rational num/den (den > 0) to an integer in `mode`."""
    assert den > 0
    fl, rem = divmod(num, den)  # num = fl*den + rem, 0 <= rem < den: fl = floor(num/den)
    if mode == FLOOR:
        return fl
    if mode == TOWARD_ZERO:
        return fl + 1 if (rem != 0 and num < 0) else fl
    # nearest modes: compare the fractional part rem/den with 1/2
    twice = 2 * rem
    if twice < den:
        return fl
    if twice > den:
        return fl + 1
    # exact tie between fl and fl + 1
    if mode == HALF_UP:
        return fl + 1
    if mode == HALF_AWAY:
        return fl + 1 if Fraction(num, den) > 0 else fl
    if mode == HALF_EVEN:
        return fl if fl % 2 == 0 else fl + 1
    raise ValueError(mode)


def round_shift(x: int, s: int, mode: int) -> int:
    return round_div(x, 2 ** s, mode)


def round_fraction(v: Fraction, mode: int) -> int:
    return round_div(v.numerator, v.denominator, mode)


# --- gemmlowp / TFLite ------------------------------------------------------

def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul: nearest integer to a*b/2^31 with ties
    toward +inf (the gemmlowp nudge + truncating division works out to that),
    saturated to int32 (only a == b == -2^31 can overflow)."""
    a, b = to_int32(a), to_int32(b)
    return saturate(round_div(a * b, 2 ** 31, HALF_UP), 32)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """Nearest integer to x/2^exponent, ties away from zero."""
    return round_div(to_int32(x), 2 ** exponent, HALF_AWAY)


def mbqm_double(x: int, m: int, shift: int) -> int:
    x, m = to_int32(x), to_int32(m)
    left, right = max(shift, 0), max(-shift, 0)
    scaled = to_int32(x * 2 ** left)  # C++ int32 multiply, wraps on x86
    return rounding_divide_by_pot(srdhm(scaled, m), right)


def mbqm_single(x: int, m: int, shift: int) -> int:
    """Nearest integer to x*m/2^(31-shift), ties toward +inf, cast to int32."""
    x, m = to_int32(x), to_int32(m)
    return to_int32(round_div(x * m, 2 ** (31 - shift), HALF_UP))


def mbqm_int64(x: int, m: int, shift: int) -> int:
    """16x8 variant: m reduced to 15 fractional bits (nearest, ties up, capped
    at 0x7FFF), then nearest integer to x*reduced/2^(15-shift), ties up."""
    m = to_int32(m)
    reduced = round_div(m, 2 ** 16, HALF_UP) if m < 0x7FFF0000 else 0x7FFF
    return to_int32(round_div(x * reduced, 2 ** (15 - shift), HALF_UP))


def requant_mult_shift(acc: int, multiplier: int, shift_right: int, mode: int) -> int:
    return round_div(acc * multiplier, 2 ** shift_right, mode)


def requant_shift_only(acc: int, shift_right: int, mode: int) -> int:
    return round_div(acc, 2 ** shift_right, mode)


# --- QuantizeMultiplier family (exact rationals) ------------------------------

def _binary_exponent(v: Fraction) -> int:
    """The e with 1/2 <= |v| / 2^e < 1 (v != 0): frexp's exponent, computed exactly."""
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    # now 2^(e-1) < a < 2^(e+1); adjust to 2^(e-1) <= a < 2^e
    while a >= Fraction(2) ** e:
        e += 1
    while a < Fraction(2) ** (e - 1):
        e -= 1
    return e


def quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    """m * 2^(shift-31) ~= real, m = nearest integer (ties away from zero) to
    real * 2^(31 - e), e the binary exponent of real; renormalise if |m| hits
    +2^31; flush to (0, 0) when shift < -31; single-rounding cap at shift 30."""
    v = Fraction(real)  # exact value of the double
    if v == 0:
        return 0, 0
    e = _binary_exponent(v)
    m = round_fraction(v * Fraction(2) ** (31 - e), HALF_AWAY)
    if m == 2 ** 31:
        m, e = 2 ** 30, e + 1
    if e < -31:
        return 0, 0
    if single_rounding and e > 30:
        return 2 ** 31 - 1, 30
    return m, e


def double_mul(a: float, b: float) -> float:
    """IEEE double product a*b: exact product, correctly rounded (int/int true
    division in Python is correctly rounded to nearest-even)."""
    p = Fraction(a) * Fraction(b)
    return p.numerator / p.denominator


def preprocess_softmax_scaling(beta, input_scale, input_integer_bits, single_rounding=False):
    cap = 2 ** 30 - 1 if single_rounding else 2 ** 31 - 1
    p2 = to_int32(2 ** (31 - input_integer_bits))  # C++ `int` 1 << k
    real = min(Fraction(double_mul(beta, input_scale)) * p2, Fraction(cap))
    real = float(real)  # exact: a double times a power of two (no overflow here)
    if not real > 1:
        raise ValueError("not > 1")
    return quantize_multiplier(real, single_rounding)


def calculate_input_radius(input_integer_bits, input_left_shift, total_signed_bits=31):
    v = Fraction((2 ** input_integer_bits - 1) * 2 ** (total_signed_bits - input_integer_bits),
                 2 ** input_left_shift)
    return math.floor(v)
