"""hwsim/arith.py against the independent big-integer reference (arith_bigint_ref).

Exact equality everywhere, no tolerances.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import arith_bigint_ref as R
from hwsim import arith as A

I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1
I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1

MODE_NAMES = ["half_away_from_zero", "half_up", "half_even", "floor", "toward_zero"]
ALL_MODES = list(range(5))
SINGLE_MODE_FNS = [A.round_shift_half_away, A.round_shift_half_up, A.round_shift_half_even,
                   A.round_shift_floor, A.round_shift_toward_zero]

# ---------------------------------------------------------------------------
# @njit test helper: applies one arith primitive to every element of an array.
# It also proves the primitives inline into other @njit code.
# ---------------------------------------------------------------------------
OP_ROUND_SHIFT, OP_SATURATE, OP_SATURATE_U, OP_WRAP, OP_WRAP_U = 0, 1, 2, 3, 4
OP_RDBP, OP_MBQM_DOUBLE, OP_MBQM_SINGLE, OP_MBQM_INT64, OP_SRDHM = 5, 6, 7, 8, 9
OP_HALF_AWAY, OP_HALF_UP, OP_HALF_EVEN, OP_FLOOR, OP_TOWARD_ZERO = 10, 11, 12, 13, 14
OP_REQUANT = 15
SINGLE_MODE_OPS = [OP_HALF_AWAY, OP_HALF_UP, OP_HALF_EVEN, OP_FLOOR, OP_TOWARD_ZERO]


@numba.njit(cache=True)
def _apply(xs, op, p1, p2, p3):
    out = np.empty(xs.shape[0], dtype=np.int64)
    for i in range(xs.shape[0]):
        x = xs[i]
        if op == OP_ROUND_SHIFT:
            out[i] = A.round_shift(x, p1, p2)
        elif op == OP_SATURATE:
            out[i] = A.saturate(x, p1)
        elif op == OP_SATURATE_U:
            out[i] = A.saturate_unsigned(x, p1)
        elif op == OP_WRAP:
            out[i] = A.wrap(x, p1)
        elif op == OP_WRAP_U:
            out[i] = A.wrap_unsigned(x, p1)
        elif op == OP_RDBP:
            out[i] = A.rounding_divide_by_pot(x, p1)
        elif op == OP_MBQM_DOUBLE:
            out[i] = A.multiply_by_quantized_multiplier_double(x, p1, p2)
        elif op == OP_MBQM_SINGLE:
            out[i] = A.multiply_by_quantized_multiplier_single(x, p1, p2)
        elif op == OP_MBQM_INT64:
            out[i] = A.multiply_by_quantized_multiplier_int64(x, p1, p2)
        elif op == OP_SRDHM:
            out[i] = A.saturating_rounding_doubling_high_mul(x, p1)
        elif op == OP_HALF_AWAY:
            out[i] = A.round_shift_half_away(x, p1)
        elif op == OP_HALF_UP:
            out[i] = A.round_shift_half_up(x, p1)
        elif op == OP_HALF_EVEN:
            out[i] = A.round_shift_half_even(x, p1)
        elif op == OP_FLOOR:
            out[i] = A.round_shift_floor(x, p1)
        elif op == OP_TOWARD_ZERO:
            out[i] = A.round_shift_toward_zero(x, p1)
        elif op == OP_REQUANT:
            out[i] = A.requant_mult_shift(x, p1, p2, p3)
        else:
            out[i] = 0
    return out


def apply(xs, op, p1=0, p2=0, p3=0):
    return _apply(xs, op, np.int64(p1), np.int64(p2), np.int64(p3))


# All 65,536 products of two int8 values.  The reference is evaluated once per
# distinct product (9,390 of them) and expanded back with the inverse index, so
# the comparison below is still element by element over all 65,536 products.
_I8 = np.arange(-128, 128, dtype=np.int64)
PRODUCTS = np.multiply.outer(_I8, _I8).ravel()
_UNIQ, _INV = np.unique(PRODUCTS, return_inverse=True)
_UNIQ_PY = [int(u) for u in _UNIQ]


def reference_over_products(fn) -> np.ndarray:
    return np.array([fn(u) for u in _UNIQ_PY], dtype=np.int64)[_INV]


def assert_exact(got, expected, inputs, what):
    assert got.shape == expected.shape
    bad = np.flatnonzero(got != expected)
    if bad.size:
        i = bad[0]
        pytest.fail(f"{what}: {bad.size} mismatches of {got.size}; first at input {inputs[i]}: "
                    f"got {got[i]}, expected {expected[i]}")


# ---------------------------------------------------------------------------
# Exhaustive over all int8 x int8 products
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ALL_MODES, ids=MODE_NAMES)
def test_exhaustive_int8_products_round_shift_every_mode(mode):
    for s in range(17):
        expected = reference_over_products(lambda u: R.round_shift(u, s, mode))
        assert_exact(apply(PRODUCTS, OP_ROUND_SHIFT, s, mode), expected, PRODUCTS,
                     f"round_shift(s={s}, mode={MODE_NAMES[mode]})")
        assert_exact(apply(PRODUCTS, SINGLE_MODE_OPS[mode], s), expected, PRODUCTS,
                     f"round_shift_{MODE_NAMES[mode]}(s={s})")


def test_exhaustive_int8_products_saturate_and_wrap_8_to_16_bits():
    for bits in range(8, 17):
        for op, ref, name in [(OP_SATURATE, R.saturate, "saturate"),
                              (OP_SATURATE_U, R.saturate_unsigned, "saturate_unsigned"),
                              (OP_WRAP, R.wrap, "wrap"),
                              (OP_WRAP_U, R.wrap_unsigned, "wrap_unsigned")]:
            expected = reference_over_products(lambda u: ref(u, bits))
            assert_exact(apply(PRODUCTS, op, bits), expected, PRODUCTS, f"{name}(bits={bits})")


def test_exhaustive_int8_products_rounding_divide_by_pot():
    for e in list(range(17)) + [30, 31]:
        expected = reference_over_products(lambda u: R.rounding_divide_by_pot(u, e))
        assert_exact(apply(PRODUCTS, OP_RDBP, e), expected, PRODUCTS, f"rounding_divide_by_pot(e={e})")


# (multiplier, shift) pairs: typical normalized ones, extreme shifts, an odd
# multiplier, and large left shifts where the int32 multiply x * 2^shift wraps.
MBQM_CASES = [
    (1073741824, 0), (1717986918, -3), (1288490189, -1), (1431655765, -7),
    (2147483647, -31), (1073741824, -31), (1395864371, -8), (1999999999, -16),
    (1073741825, 7), (1518500250, 20), (1073741824, 30), (1610612736, 31),
    (0, 0), (1, 5), (12345, -2),
]


@pytest.mark.parametrize("m,shift", MBQM_CASES)
def test_exhaustive_int8_products_mbqm_double(m, shift):
    expected = reference_over_products(lambda u: R.mbqm_double(u, m, shift))
    assert_exact(apply(PRODUCTS, OP_MBQM_DOUBLE, m, shift), expected, PRODUCTS,
                 f"mbqm_double(m={m}, shift={shift})")


@pytest.mark.parametrize("m,shift", [(m, s) for m, s in MBQM_CASES if s <= 30])
def test_exhaustive_int8_products_mbqm_single(m, shift):
    expected = reference_over_products(lambda u: R.mbqm_single(u, m, shift))
    assert_exact(apply(PRODUCTS, OP_MBQM_SINGLE, m, shift), expected, PRODUCTS,
                 f"mbqm_single(m={m}, shift={shift})")


@pytest.mark.parametrize("m,shift", [(m, s) for m, s in MBQM_CASES if s <= 7]
                         + [(0x7FFF0000, -3), (0x7FFEFFFF, -3), (2147483647, 7)])
def test_exhaustive_int8_products_mbqm_int64(m, shift):
    xs = PRODUCTS * np.int64(2 ** 30 + 12345)  # spread the products over +-2^44
    expected = np.array([R.mbqm_int64(int(x), m, shift) for x in xs[::7]], dtype=np.int64)
    assert_exact(apply(xs[::7], OP_MBQM_INT64, m, shift), expected, xs[::7],
                 f"mbqm_int64(m={m}, shift={shift})")
    expected = reference_over_products(lambda u: R.mbqm_int64(u, m, shift))
    assert_exact(apply(PRODUCTS, OP_MBQM_INT64, m, shift), expected, PRODUCTS,
                 f"mbqm_int64(m={m}, shift={shift}) on raw products")


def test_exhaustive_int8_products_srdhm_and_requant():
    for b in [I32_MIN, -1, 1, 2 ** 30, I32_MAX, 1717986918, -1717986918, 3]:
        expected = reference_over_products(lambda u: R.srdhm(u, b))
        assert_exact(apply(PRODUCTS, OP_SRDHM, b), expected, PRODUCTS, f"srdhm(x, {b})")
    for mult, s in [(1717986918, 35), (255, 8), (3, 1), (-7, 2)]:
        for mode in ALL_MODES:
            expected = reference_over_products(lambda u: R.requant_mult_shift(u, mult, s, mode))
            assert_exact(apply(PRODUCTS, OP_REQUANT, mult, s, mode), expected, PRODUCTS,
                         f"requant_mult_shift(mult={mult}, s={s}, mode={mode})")


# ---------------------------------------------------------------------------
# The tests can fail: deliberately wrong variants are detected
# ---------------------------------------------------------------------------

def test_wrong_rounding_variant_is_detected_floor_vs_half_away():
    expected = reference_over_products(lambda u: R.round_shift(u, 3, R.HALF_AWAY))
    wrong = apply(PRODUCTS, OP_ROUND_SHIFT, 3, A.ROUND_FLOOR)
    assert np.count_nonzero(wrong != expected) > 1000
    with pytest.raises(pytest.fail.Exception):
        assert_exact(wrong, expected, PRODUCTS, "floor posing as half-away")


def test_every_pair_of_modes_differs_on_int8_products():
    results = [apply(PRODUCTS, OP_ROUND_SHIFT, 2, mode) for mode in ALL_MODES]
    for i in ALL_MODES:
        for j in ALL_MODES:
            if i != j:
                assert not np.array_equal(results[i], results[j]), (MODE_NAMES[i], MODE_NAMES[j])


def test_wrong_srdhm_with_floor_division_is_detected():
    # gemmlowp divides with C++ '/', which truncates.  A port using Python's
    # flooring '//' is wrong by one for most negative products.
    def srdhm_floor_division(a, b):
        ab = a * b
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        return (ab + nudge) // (1 << 31)

    pairs = [(-1000, 1717986918), (-5, 2 ** 30), (123456, -987654321)]
    for a, b in pairs:
        assert A.saturating_rounding_doubling_high_mul(a, b) == R.srdhm(a, b)
        assert srdhm_floor_division(a, b) != R.srdhm(a, b)


def test_wrong_quantize_multiplier_with_half_even_mantissa_is_detected():
    # real whose mantissa * 2^31 is exactly k + 1/2 with k even: std::round goes
    # up, Python's round() (half-even) would go down.
    real = (2 ** 30 + 0.5) / 2 ** 31  # mantissa*2^31 == 1073741824.5
    assert A.quantize_multiplier(real) == R.quantize_multiplier(real) == (1073741825, 0)
    assert round(math.frexp(real)[0] * 2 ** 31) == 1073741824


# ---------------------------------------------------------------------------
# Property-based over the full ranges
# ---------------------------------------------------------------------------
int32s = st.integers(I32_MIN, I32_MAX)
int64s = st.integers(I64_MIN, I64_MAX)
multipliers = st.integers(0, I32_MAX)
normalized_multipliers = st.integers(2 ** 30, I32_MAX)
modes = st.sampled_from(ALL_MODES)


@settings(max_examples=2000, deadline=None)
@given(x=int64s, s=st.integers(0, 63), mode=modes)
def test_property_round_shift_full_int64(x, s, mode):
    expected = R.round_shift(x, s, mode)
    assert A.round_shift(x, s, mode) == expected
    assert SINGLE_MODE_FNS[mode](x, s) == expected
    assert A.requant_shift_only(x, s, mode) == expected


@settings(max_examples=1500, deadline=None)
@given(x=int64s, bits=st.integers(1, 63))
def test_property_saturate_wrap_full_int64(x, bits):
    assert A.saturate(x, bits) == R.saturate(x, bits)
    assert A.saturate_unsigned(x, bits) == R.saturate_unsigned(x, bits)
    assert A.wrap(x, bits) == R.wrap(x, bits)
    assert A.wrap_unsigned(x, bits) == R.wrap_unsigned(x, bits)
    assert A.wrap_int32(x) == R.to_int32(x)


@settings(max_examples=1500, deadline=None)
@given(a=int32s, b=int32s)
def test_property_srdhm(a, b):
    assert A.saturating_rounding_doubling_high_mul(a, b) == R.srdhm(a, b)


@settings(max_examples=1500, deadline=None)
@given(x=int32s, e=st.integers(0, 31))
def test_property_rounding_divide_by_pot(x, e):
    assert A.rounding_divide_by_pot(x, e) == R.rounding_divide_by_pot(x, e)


@settings(max_examples=1500, deadline=None)
@given(x=int32s, m=multipliers, shift=st.integers(-31, 31))
def test_property_mbqm_double(x, m, shift):
    assert A.multiply_by_quantized_multiplier_double(x, m, shift) == R.mbqm_double(x, m, shift)


@settings(max_examples=1000, deadline=None)
@given(x=int32s, m=normalized_multipliers, shift=st.integers(-31, 31))
def test_property_mbqm_double_normalized(x, m, shift):
    assert A.multiply_by_quantized_multiplier_double(x, m, shift) == R.mbqm_double(x, m, shift)


@settings(max_examples=1500, deadline=None)
@given(x=int32s, m=multipliers, shift=st.integers(-31, 30))
def test_property_mbqm_single(x, m, shift):
    assert A.multiply_by_quantized_multiplier_single(x, m, shift) == R.mbqm_single(x, m, shift)


@settings(max_examples=1000, deadline=None)
@given(x=int32s, m=normalized_multipliers, shift=st.integers(-31, 30))
def test_property_mbqm_single_normalized(x, m, shift):
    assert A.multiply_by_quantized_multiplier_single(x, m, shift) == R.mbqm_single(x, m, shift)


@settings(max_examples=2000, deadline=None)
@given(x=st.integers(-(2 ** 47), 2 ** 47 - 1), m=multipliers, shift=st.integers(-31, 7))
def test_property_mbqm_int64(x, m, shift):
    assert A.multiply_by_quantized_multiplier_int64(x, m, shift) == R.mbqm_int64(x, m, shift)


@settings(max_examples=2000, deadline=None)
@given(acc=int32s, mult=st.integers(-(2 ** 31), 2 ** 31), s=st.integers(0, 63), mode=modes)
def test_property_requant_mult_shift(acc, mult, s, mode):
    assert A.requant_mult_shift(acc, mult, s, mode) == R.requant_mult_shift(acc, mult, s, mode)


finite_doubles = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=2000, deadline=None)
@given(real=finite_doubles, single=st.booleans())
def test_property_quantize_multiplier_any_double(real, single):
    assert A.quantize_multiplier(real, single) == R.quantize_multiplier(real, single)


@settings(max_examples=1500, deadline=None)
@given(real=st.floats(min_value=2.0 ** -40, max_value=2.0 ** 40), single=st.booleans())
def test_property_quantize_multiplier_scale_range(real, single):
    m, shift = A.quantize_multiplier(real, single)
    assert (m, shift) == R.quantize_multiplier(real, single)
    if not (single and real >= 2.0 ** 30) and real >= 2.0 ** -31:
        assert 2 ** 30 <= m <= I32_MAX  # normalized Q0.31 mantissa
        # |real - m 2^(shift-31)| <= 2^(shift-32), half an ulp of the mantissa
        err = abs(Fraction(real) - Fraction(m) * Fraction(2) ** (shift - 31))
        assert err <= Fraction(2) ** (shift - 32)


@settings(max_examples=500, deadline=None)
@given(k=st.integers(2 ** 30, 2 ** 31 - 1), e=st.integers(-40, 40), neg=st.booleans(),
       single=st.booleans())
def test_property_quantize_multiplier_exact_mantissa_ties(k, e, neg, single):
    # real = (k + 1/2) * 2^(e-31): q * 2^31 lands exactly on a tie, which
    # std::round breaks away from zero (a half-even port would differ).
    real = math.ldexp(k + 0.5, e - 31) * (-1.0 if neg else 1.0)
    m, shift = A.quantize_multiplier(real, single)
    assert (m, shift) == R.quantize_multiplier(real, single)
    if -31 <= e <= 30 and k < 2 ** 31 - 1:
        assert (m, shift) == ((-(k + 1), e) if neg else (k + 1, e))


@settings(max_examples=300, deadline=None)
@given(iib=st.integers(0, 30), ls=st.integers(0, 62))
def test_property_calculate_input_radius(iib, ls):
    assert A.calculate_input_radius(iib, ls) == R.calculate_input_radius(iib, ls)


@settings(max_examples=1000, deadline=None)
@given(beta=st.floats(min_value=1e-3, max_value=1e3),
       scale=st.floats(min_value=1e-8, max_value=10.0),
       iib=st.integers(1, 30), single=st.booleans())
def test_property_preprocess_softmax_scaling(beta, scale, iib, single):
    try:
        expected = R.preprocess_softmax_scaling(beta, scale, iib, single)
    except ValueError:
        with pytest.raises(ValueError):
            A.preprocess_softmax_scaling(beta, scale, iib, single)
        return
    assert A.preprocess_softmax_scaling(beta, scale, iib, single) == expected


# ---------------------------------------------------------------------------
# Named edge cases
# ---------------------------------------------------------------------------

def test_srdhm_int32_min_times_int32_min_saturates_to_int32_max():
    assert A.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN) == I32_MAX
    assert R.srdhm(I32_MIN, I32_MIN) == I32_MAX
    # neighbours do not saturate
    assert A.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN + 1) == I32_MAX
    assert A.saturating_rounding_doubling_high_mul(I32_MIN, I32_MAX) == -I32_MAX
    assert A.saturating_rounding_doubling_high_mul(I32_MIN, 2 ** 30) == -(2 ** 30)


def test_srdhm_ties_go_toward_plus_infinity():
    # a*b/2^31 = -0.5 -> 0, +0.5 -> 1, -1.5 -> -1, +1.5 -> 2
    assert A.saturating_rounding_doubling_high_mul(-1, 2 ** 30) == 0
    assert A.saturating_rounding_doubling_high_mul(1, 2 ** 30) == 1
    assert A.saturating_rounding_doubling_high_mul(-3, 2 ** 30) == -1
    assert A.saturating_rounding_doubling_high_mul(3, 2 ** 30) == 2


def test_negative_ties_in_every_mode():
    # x, s, expected per mode (half_away, half_up, half_even, floor, toward_zero)
    table = [
        (-5, 1, (-3, -2, -2, -3, -2)),   # -2.5
        (-3, 1, (-2, -1, -2, -2, -1)),   # -1.5
        (-12, 3, (-2, -1, -2, -2, -1)),  # -1.5
        (-20, 3, (-3, -2, -2, -3, -2)),  # -2.5
        (-1, 1, (-1, 0, 0, -1, 0)),      # -0.5
        (5, 1, (3, 3, 2, 2, 2)),         # +2.5
        (3, 1, (2, 2, 2, 1, 1)),         # +1.5
        (-7, 2, (-2, -2, -2, -2, -1)),   # -1.75
        (-5, 2, (-1, -1, -1, -2, -1)),   # -1.25
    ]
    for x, s, expected in table:
        for mode in ALL_MODES:
            assert A.round_shift(x, s, mode) == expected[mode], (x, s, MODE_NAMES[mode])
            assert SINGLE_MODE_FNS[mode](x, s) == expected[mode], (x, s, MODE_NAMES[mode])
            assert R.round_shift(x, s, mode) == expected[mode], (x, s, MODE_NAMES[mode])
    # RoundingDivideByPOT is half-away-from-zero
    assert A.rounding_divide_by_pot(-5, 1) == -3 and A.rounding_divide_by_pot(5, 1) == 3
    assert A.rounding_divide_by_pot(-1, 1) == -1 and A.rounding_divide_by_pot(-12, 3) == -2


def test_shift_0_is_identity_in_every_mode():
    for x in [0, 1, -1, I32_MIN, I32_MAX, I64_MIN, I64_MAX, -5]:
        for mode in ALL_MODES:
            assert A.round_shift(x, 0, mode) == x
        if I32_MIN <= x <= I32_MAX:
            assert A.rounding_divide_by_pot(x, 0) == x
            for m in [2 ** 30, I32_MAX, 1717986918]:  # shift 0: no shift on either side
                assert A.multiply_by_quantized_multiplier_double(x, m, 0) == R.mbqm_double(x, m, 0)
                assert A.multiply_by_quantized_multiplier_single(x, m, 0) == R.mbqm_single(x, m, 0)
            if abs(x) < 2 ** 30:  # 0.5 * 2^1 is an exact identity while x * 2 fits int32
                assert A.multiply_by_quantized_multiplier_double(x, 2 ** 30, 1) == x
                assert A.multiply_by_quantized_multiplier_single(x, 2 ** 30, 1) == x
    # INT32_MIN * 2 wraps to 0 in the double build's int32 pre-shift, not in single
    assert A.multiply_by_quantized_multiplier_double(I32_MIN, 2 ** 30, 1) == 0
    assert A.multiply_by_quantized_multiplier_single(I32_MIN, 2 ** 30, 1) == I32_MIN


def test_shift_31_and_extreme_shifts():
    # RoundingDivideByPOT at its maximum exponent 31
    assert A.rounding_divide_by_pot(I32_MIN, 31) == -1      # -1.0
    assert A.rounding_divide_by_pot(-(2 ** 30), 31) == -1   # -0.5 -> away
    assert A.rounding_divide_by_pot(2 ** 30, 31) == 1       # +0.5 -> away
    assert A.rounding_divide_by_pot(2 ** 30 - 1, 31) == 0
    assert A.rounding_divide_by_pot(I32_MAX, 31) == 1
    # shift -31 (largest right shift) for both rounding builds
    for x in [I32_MIN, I32_MAX, -1, 1, 2 ** 30]:
        assert A.multiply_by_quantized_multiplier_double(x, I32_MAX, -31) == R.mbqm_double(x, I32_MAX, -31)
        assert A.multiply_by_quantized_multiplier_single(x, I32_MAX, -31) == R.mbqm_single(x, I32_MAX, -31)
    # double build, shift +31: x * (1 << 31) wraps in int32 (x86 semantics)
    assert A.multiply_by_quantized_multiplier_double(1, 2 ** 30, 31) == R.mbqm_double(1, 2 ** 30, 31)
    assert A.multiply_by_quantized_multiplier_double(1, 2 ** 30, 31) == -(2 ** 30)  # 1<<31 == INT32_MIN
    assert A.multiply_by_quantized_multiplier_double(2, 2 ** 30, 31) == 0           # 2<<31 wraps to 0
    # single build, shift 30 (its cap): total_shift 1
    assert A.multiply_by_quantized_multiplier_single(3, I32_MAX, 30) == R.mbqm_single(3, I32_MAX, 30)
    # round_shift at s = 62, 63
    assert A.round_shift(I64_MIN, 63, A.ROUND_HALF_AWAY) == -1
    assert A.round_shift(I64_MAX, 63, A.ROUND_HALF_EVEN) == 1
    assert A.round_shift(-(2 ** 61), 62, A.ROUND_HALF_AWAY) == -1
    assert A.round_shift(-(2 ** 61), 62, A.ROUND_HALF_UP) == 0


def test_double_vs_single_rounding_builds_differ():
    # x=-2, m=2^30 (0.5), shift=-1: x*0.25 = -0.5.
    # double: SRDHM(-2, 2^30) = -1 (exact), then RDBP(-1, 1) = -0.5 -> away -> -1
    # single: floor(-0.5 + 0.5) = 0
    assert A.multiply_by_quantized_multiplier_double(-2, 2 ** 30, -1) == -1
    assert A.multiply_by_quantized_multiplier_single(-2, 2 ** 30, -1) == 0


def test_quantize_multiplier_known_table_by_hand():
    table = [
        (1.0, (1073741824, 1)),       # 0.5 * 2^1
        (0.5, (1073741824, 0)),
        (0.75, (1610612736, 0)),      # 0.75 * 2^31
        (2.0, (1073741824, 2)),
        (3.0, (1610612736, 2)),
        (0.1, (1717986918, -3)),      # 0.8*2^31 = 1717986918.4 -> 1717986918
        (0.3, (1288490189, -1)),      # 0.6*2^31 = 1288490188.8 -> 1288490189
        (1 / 3, (1431655765, -1)),    # (2/3)*2^31 = 1431655765.33 -> 1431655765
        (2.0 ** -31, (1073741824, -30)),
        (2.0 ** -32, (1073741824, -31)),
        (-0.5, (-1073741824, 0)),
        (-0.3, (-1288490189, -1)),    # std::round(-1288490188.8) = -1288490189
        (0.99999999999999, (1073741824, 1)),
    ]
    for real, expected in table:
        assert A.quantize_multiplier(real) == expected, real
        assert R.quantize_multiplier(real) == expected, real


def test_quantize_multiplier_mantissa_rounds_up_to_2_31():
    # frexp(0.99999999999999) = (0.99999999999999, 0); *2^31 = 2147483647.99998 -> 2^31
    # -> halved to 2^30 with shift + 1
    assert A.quantize_multiplier(0.99999999999999) == (2 ** 30, 1)
    assert A.quantize_multiplier(0.99999999999999 * 2.0 ** -10) == (2 ** 30, -9)
    # the largest double below 1 as well
    assert A.quantize_multiplier(1.0 - 2.0 ** -53) == (2 ** 30, 1)
    # just below the round-up threshold: mantissa stays at 2^31 - 1
    assert A.quantize_multiplier((2 ** 31 - 1) / 2 ** 31) == (I32_MAX, 0)


def test_quantize_multiplier_negative_reals_keep_tflite_behaviour():
    # frexp of a negative gives a negative q; a mantissa of -2^31 is NOT renormalised
    assert A.quantize_multiplier(-0.99999999999999) == (I32_MIN, 0)
    assert R.quantize_multiplier(-0.99999999999999) == (I32_MIN, 0)
    assert A.quantize_multiplier(-2.0) == (-(2 ** 30), 2)


def test_quantize_multiplier_tiny_scales_flush_to_zero():
    for real in [2.0 ** -33, 1e-10, 2.0 ** -40, 5e-324, 2.2250738585072014e-308, -(2.0 ** -33)]:
        assert A.quantize_multiplier(real) == (0, 0), real
        assert A.quantize_multiplier(real, single_rounding=True) == (0, 0), real
        assert R.quantize_multiplier(real) == (0, 0), real
    # boundary: 2^-32 itself is representable (shift -31) ...
    assert A.quantize_multiplier(2.0 ** -32) == (2 ** 30, -31)
    # ... and so is a value slightly BELOW 2^-32 whose mantissa rounds up to 2^31:
    assert A.quantize_multiplier(2.0 ** -32 * (1 - 2.0 ** -40)) == (2 ** 30, -31)
    # while one whose mantissa does not round up is flushed
    assert A.quantize_multiplier(2.0 ** -32 * (1 - 2.0 ** -20)) == (0, 0)


def test_quantize_multiplier_zero_scale():
    assert A.quantize_multiplier(0.0) == (0, 0)
    assert A.quantize_multiplier(-0.0) == (0, 0)
    assert A.quantize_multiplier(0.0, single_rounding=True) == (0, 0)
    m, s = A.quantize_multiplier_array(np.zeros(3))
    assert m.tolist() == [0, 0, 0] and s.tolist() == [0, 0, 0]


def test_quantize_multiplier_single_rounding_shift_cap_at_30():
    assert A.quantize_multiplier(2.0 ** 31, single_rounding=True) == (I32_MAX, 30)
    assert A.quantize_multiplier(2.0 ** 31) == (2 ** 30, 32)
    assert A.quantize_multiplier(2.0 ** 30, single_rounding=True) == (I32_MAX, 30)  # shift 31 capped
    assert A.quantize_multiplier(2.0 ** 30) == (2 ** 30, 31)
    assert A.quantize_multiplier(1.5 * 2.0 ** 29, single_rounding=True) == (1610612736, 30)  # not capped
    assert A.quantize_multiplier(1e30, single_rounding=True) == (I32_MAX, 30)
    assert A.quantize_multiplier(-1e30, single_rounding=True) == (I32_MAX, 30)  # sign lost, as in TFLite
    assert R.quantize_multiplier(2.0 ** 31, True) == (I32_MAX, 30)


def test_quantize_multiplier_rejects_non_finite():
    for bad in [math.inf, -math.inf, math.nan]:
        with pytest.raises(ValueError):
            A.quantize_multiplier(bad)


def test_quantize_multiplier_array_matches_scalar():
    reals = np.array([[0.1, 0.0, 1e-12], [2.5, -0.3, 0.99999999999999]], dtype=np.float32)
    m, s = A.quantize_multiplier_array(reals)
    assert m.dtype == np.int32 and s.dtype == np.int32 and m.shape == reals.shape
    for idx in np.ndindex(reals.shape):
        assert (int(m[idx]), int(s[idx])) == R.quantize_multiplier(float(reals[idx]))
    m, s = A.quantize_multiplier_array([2.0 ** 31], single_rounding=True)
    assert (m[0], s[0]) == (I32_MAX, 30)


def test_quantize_multiplier_smaller_than_one_and_greater_than_one():
    assert A.quantize_multiplier_smaller_than_one_exp(0.1) == (1717986918, -3)
    assert A.quantize_multiplier_smaller_than_one_exp(0.5) == (2 ** 30, 0)
    for bad in [0.0, 1.0, -0.5, 1.5, 0.99999999999999]:  # last rounds to shift 1
        with pytest.raises(ValueError):
            A.quantize_multiplier_smaller_than_one_exp(bad)
    assert A.quantize_multiplier_greater_than_one(2.0) == (2 ** 30, 2)
    assert A.quantize_multiplier_greater_than_one(1.5) == (1610612736, 1)
    for bad in [1.0, 0.5, -2.0]:
        with pytest.raises(ValueError):
            A.quantize_multiplier_greater_than_one(bad)


def test_preprocess_softmax_scaling_and_input_radius_by_hand():
    # beta=1, input_scale=0.1, 5 integer bits: real = 0.1 * 2^26 = 0.8 * 2^23
    assert A.preprocess_softmax_scaling(1.0, 0.1, 5) == (1717986918, 23)
    # radius = floor(31 * 2^26 / 2^23) = 248
    assert A.calculate_input_radius(5, 23) == 248
    assert A.calculate_input_radius(5, 0) == 31 * 2 ** 26
    assert A.calculate_input_radius(0, 3) == 0
    assert A.calculate_input_radius(5, 23, total_signed_bits=15) == 0  # floor(31*2^10/2^23)
    assert A.calculate_input_radius(4, 20, total_signed_bits=30) == 15 * 2 ** 6
    # capped multiplier: real = min(huge, 2^31 - 1) -> (2^31 - 1, 31); single: 2^30 - 1 -> (2^31 - 2, 30)
    assert A.preprocess_softmax_scaling(1e9, 1.0, 5) == (I32_MAX, 31)
    assert A.preprocess_softmax_scaling(1e9, 1.0, 5, single_rounding=True) == (2 ** 31 - 2, 30)
    # input_integer_bits = 0: C++ `1 << 31` is INT_MIN -> negative real -> CHECK fails
    with pytest.raises(ValueError):
        A.preprocess_softmax_scaling(1.0, 0.1, 0)
    # log-softmax variant: reverse = 2^(31-23) / 1717986918 (double division)
    m, ls, rm, rs = A.preprocess_log_softmax_scaling_exp(1.0, 0.1, 5)
    assert (m, ls) == (1717986918, 23)
    assert (rm, rs) == R.quantize_multiplier(2.0 ** 8 / 1717986918)
    assert rs <= 0


def test_rounding_mode_table():
    from hwsim.vocab import Rounding
    assert {m.name: int(m) for m in Rounding} == {"half_away_from_zero": 0, "half_up": 1,
                                                  "half_even": 2, "floor": 3, "toward_zero": 4}
    assert (A.ROUND_HALF_AWAY, A.ROUND_HALF_UP, A.ROUND_HALF_EVEN, A.ROUND_FLOOR,
            A.ROUND_TOWARD_ZERO) == (0, 1, 2, 3, 4)
    assert all(Rounding.from_name(m.name) is m for m in Rounding)
    with pytest.raises(ValueError):
        A.round_shift(5, 1, 7)


def test_scalar_calls_accept_any_integer_type():
    for t in [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, int]:
        v = t(100)
        assert A.saturate(v, 8) == 100
        assert A.wrap(t(200) if t is not np.int8 else t(-56), 8) == -56
        assert A.round_shift(v, t(3), A.ROUND_HALF_AWAY) == 13  # 12.5 -> 13
        assert A.multiply_by_quantized_multiplier_double(v, np.int32(1717986918), -3) == 10
        assert A.multiply_by_quantized_multiplier_single(v, 1717986918, -3) == 10
        assert A.multiply_by_quantized_multiplier_int64(v, 1717986918, -3) == 10
    assert A.wrap(np.uint64(2 ** 63 + 5), 8) == 5
    r = A.saturate(np.int8(-128), 4)
    assert r == -8 and isinstance(r, int | np.integer)


def test_round_half_away_is_exact_where_floor_plus_half_is_not():
    """arith.round_half_away / round_half_away_int: C's round on doubles. The largest double
    below 1/2 rounds to 0 (sign(v) * floor(|v| + 0.5) gives 1: |v| + 0.5 rounds up to 1.0);
    ties go away from zero; every copy of the rounding in hwsim goes through these two."""
    import math
    from hwsim.arith import round_half_away, round_half_away_int
    below_half = math.nextafter(0.5, 0.0)
    v = np.array([below_half, -below_half, 0.5, -0.5, 2.5, -2.5, 1.4999999999999998, 7.0,
                  -0.0, 2.0 ** 52 + 1.0])
    want = [0, 0, 1, -1, 3, -3, 1, 7, 0, 2 ** 52 + 1]
    assert round_half_away(v).tolist() == want
    assert [round_half_away_int(float(x)) for x in v] == want
    assert (np.sign(v) * np.floor(np.abs(v) + 0.5))[0] == 1.0  # the inexact form this replaces
