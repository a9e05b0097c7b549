"""hwsim.fixedpoint against an independent plain-Python model of gemmlowp's fixedpoint.h.

The reference below is written separately from hwsim.fixedpoint: Python big integers, a tiny
FixedPoint class that carries its integer bits like the C++ template, and every rounding
expressed on exact rationals (fractions.Fraction) rather than with shifts and masks. Inputs are
edge values plus seeded random samples over each function's whole domain. Exact equality only.

(The end-to-end agreement with TFLite of the functions SOFTMAX uses is tested in
tests/test_ops_activation.py.)
"""
from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from hwsim import fixedpoint as fx

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
I16_MIN, I16_MAX = -(1 << 15), (1 << 15) - 1


# ----------------------------------------------------------------------------------------------
# Reference: integer semantics of the C++ on Python ints
# ----------------------------------------------------------------------------------------------

def wrap(v: int, bits: int) -> int:
    m = 1 << bits
    return (v + (m >> 1)) % m - (m >> 1)


def sat(v: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def c_div(a: int, b: int) -> int:
    """C++ integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def round_half_away(q: Fraction) -> int:
    s = 1 if q >= 0 else -1
    return s * math.floor(abs(q) + Fraction(1, 2))


def round_half_up(q: Fraction) -> int:
    return math.floor(q + Fraction(1, 2))


def ref_srdhm(a: int, b: int, bits: int = 32) -> int:
    """SaturatingRoundingDoublingHighMul on `bits`-bit ints: round(a*b / 2^(bits-1)), ties up."""
    lo = -(1 << (bits - 1))
    if a == b == lo:
        return (1 << (bits - 1)) - 1
    return wrap(round_half_up(Fraction(a * b, 1 << (bits - 1))), bits)


def ref_rdbpot(x: int, e: int) -> int:
    """RoundingDivideByPOT: round(x / 2^e), ties away from zero."""
    return round_half_away(Fraction(x, 1 << e))


def ref_srmpot(x: int, e: int, bits: int = 32) -> int:
    """SaturatingRoundingMultiplyByPOT<e>."""
    if e >= 0:
        return sat(x * (1 << e), bits)
    return ref_rdbpot(x, -e)


class FP:
    """gemmlowp FixedPoint<int32_t, ib>: raw int32, real value raw / 2^(31 - ib)."""

    def __init__(self, raw: int, ib: int):
        assert I32_MIN <= raw <= I32_MAX
        self.raw, self.ib = raw, ib

    def __add__(self, o):
        assert self.ib == o.ib
        return FP(wrap(self.raw + o.raw, 32), self.ib)

    def __sub__(self, o):
        assert self.ib == o.ib
        return FP(wrap(self.raw - o.raw, 32), self.ib)

    def __neg__(self):
        return FP(wrap(-self.raw, 32), self.ib)

    def __mul__(self, o):
        return FP(ref_srdhm(self.raw, o.raw), self.ib + o.ib)

    def rescale(self, ib: int):
        return FP(ref_srmpot(self.raw, self.ib - ib), ib)

    def mul_pot(self, e: int):  # SaturatingRoundingMultiplyByPOT<e> on a FixedPoint
        return FP(ref_srmpot(self.raw, e), self.ib)

    def exact_mul_pot(self, e: int):
        return FP(self.raw, self.ib + e)

    @staticmethod
    def one(ib: int):
        return FP(I32_MAX if ib == 0 else 1 << (31 - ib), ib)

    @staticmethod
    def constant_pot(e: int, ib: int):
        return FP(1 << (31 - ib + e), ib)


def ref_rounding_half_sum(a: int, b: int) -> int:
    s = a + b
    return wrap(c_div(s + (1 if s >= 0 else -1), 2), 32)


def ref_exp_quarter(a: FP) -> FP:
    c = FP(1895147668, 0)
    third = FP(715827883, 0)
    x = a + FP.constant_pot(-3, 0)
    x2 = x * x
    x3 = x2 * x
    x4 = x2 * x2
    x4_over_4 = x4.mul_pot(-2)
    poly = (((x4_over_4 + x3) * third) + x2).mul_pot(-1)
    return c + c * (x + poly)


def ref_exp_on_negative_values(a: FP) -> FP:
    ib = a.ib
    frac = 31 - ib
    quarter = FP.constant_pot(-2, ib)
    mask = quarter.raw - 1
    a_mod = FP(a.raw & mask, ib) - quarter
    result = ref_exp_quarter(a_mod.rescale(0))
    remainder = (a_mod - a).raw
    for k, mult in [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                    (2, 39332535), (3, 720401), (4, 242)]:
        if ib > k and remainder & (1 << (frac + k)):
            result = result * FP(mult, 0)
    if ib > 5 and a.raw < -(1 << (36 - ib)):
        result = FP(0, 0)
    if a.raw == 0:
        result = FP.one(0)
    return result


def _ref_newton(a: FP):
    half_den = FP(ref_rounding_half_sum(a.raw, I32_MAX), 0)
    x = FP(1515870810, 2) + half_den * FP(-1010580540, 2)
    for _ in range(3):
        one_minus = FP.one(2) - half_den * x
        x = x + (x * one_minus).rescale(2)
    return x


def ref_one_over_one_plus_x(a: FP) -> FP:
    return _ref_newton(a).exact_mul_pot(-1).rescale(0)


def ref_one_minus_x_over_one_plus_x(a: FP) -> FP:
    return (_ref_newton(a) - FP.one(2)).rescale(0)


def ref_tanh(a: FP) -> FP:
    n = a if a.raw < 0 else -a
    t = ref_one_minus_x_over_one_plus_x(ref_exp_on_negative_values(n.exact_mul_pot(1)))
    if a.raw == 0:
        return FP(0, 0)
    return -t if a.raw < 0 else t


def ref_logistic(a: FP) -> FP:
    abs_in = a if a.raw > 0 else -a
    r = ref_one_over_one_plus_x(ref_exp_on_negative_values(-abs_in))
    if a.raw == 0:
        return FP(1 << 30, 0)
    return r if a.raw > 0 else FP.one(0) - r


def ref_clz32(x: int) -> int:
    u = x % (1 << 32)
    return 32 - u.bit_length()


def ref_get_reciprocal(x: int, digits: int):
    h = ref_clz32(x)
    shifted = ((x % (1 << 32)) << h) % (1 << 32)
    ssmo = wrap(shifted - (1 << 31), 32)
    return ref_one_over_one_plus_x(FP(ssmo, 0)).raw, digits - h


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def _samples(lo: int, hi: int, n: int, seed: int, extra=()):
    rng = random.Random(seed)
    vals = {lo, hi, lo + 1, hi - 1, 0, 1, -1, *extra}
    # uniform, plus log-uniform magnitudes so small values are well represented
    for _ in range(n):
        vals.add(rng.randint(lo, hi))
        mag = int(2 ** rng.uniform(0, math.log2(max(abs(lo), abs(hi), 2))))
        vals.add(max(lo, min(hi, mag if rng.random() < 0.5 else -mag)))
    return sorted(v for v in vals if lo <= v <= hi)


def _assert_all_equal(name, pairs):
    bad = [(args, got, exp) for args, got, exp in pairs if got != exp]
    assert not bad, f"{name}: {len(bad)} mismatches, first: args {bad[0][0]} hwsim {bad[0][1]} " \
                    f"vs reference {bad[0][2]}"


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------

def test_elementary_ops():
    vals = _samples(I32_MIN, I32_MAX, 300, 1, extra=(I32_MIN + 1, 1 << 30, -(1 << 30)))
    rng = random.Random(2)
    pairs = [(rng.choice(vals), rng.choice(vals)) for _ in range(3000)]
    pairs += [(I32_MIN, I32_MIN), (I32_MAX, I32_MAX), (I32_MIN, I32_MAX), (I32_MIN, -1)]
    _assert_all_equal("fp_add", [((a, b), fx.fp_add(a, b), wrap(a + b, 32)) for a, b in pairs])
    _assert_all_equal("fp_sub", [((a, b), fx.fp_sub(a, b), wrap(a - b, 32)) for a, b in pairs])
    _assert_all_equal("fp_neg", [((a,), fx.fp_neg(a), wrap(-a, 32)) for a in vals])
    _assert_all_equal("fp_mul", [((a, b), fx.fp_mul(a, b), ref_srdhm(a, b)) for a, b in pairs])
    _assert_all_equal("rounding_half_sum", [((a, b), fx.rounding_half_sum(a, b),
                                             ref_rounding_half_sum(a, b)) for a, b in pairs])
    _assert_all_equal("count_leading_zeros32",
                      [((a,), fx.count_leading_zeros32(a), ref_clz32(a)) for a in vals] +
                      [((1 << k,), fx.count_leading_zeros32(1 << k), 31 - k) for k in range(31)])


def test_saturating_rounding_multiply_by_pot_and_rescale():
    vals = _samples(I32_MIN, I32_MAX, 150, 3)
    out = []
    for e in range(-31, 32):
        for x in vals:
            out.append(((x, e), fx.saturating_rounding_multiply_by_pot(x, e), ref_srmpot(x, e)))
    _assert_all_equal("saturating_rounding_multiply_by_pot", out)
    out = [((x, s, d), fx.rescale(x, s, d), FP(x, s).rescale(d).raw)
           for x in vals[::5] for s in range(0, 13) for d in range(0, 13)]
    _assert_all_equal("rescale", out)


@pytest.mark.parametrize("ib", [0, 1, 2, 3, 4, 5, 6, 8, 12, 20])
def test_exp_on_negative_values(ib):
    quarter = 1 << (29 - ib)
    extra = [-(k * quarter) for k in range(1, 200)] + [-(k * quarter) - 1 for k in range(1, 50)]
    if ib > 5:
        extra += [-(1 << (36 - ib)), -(1 << (36 - ib)) - 1, -(1 << (36 - ib)) + 1]
    xs = _samples(I32_MIN, 0, 1500, 10 + ib, extra=extra)
    _assert_all_equal(f"exp_on_negative_values<{ib}>",
                      [((x,), fx.exp_on_negative_values(x, ib),
                        ref_exp_on_negative_values(FP(x, ib)).raw) for x in xs])


def test_exp_on_interval_between_negative_one_quarter_and_0_excl():
    xs = _samples(-(1 << 29), -1, 2000, 4)
    _assert_all_equal("exp_on_interval", [
        ((x,), fx.exp_on_interval_between_negative_one_quarter_and_0_excl(x),
         ref_exp_quarter(FP(x, 0)).raw) for x in xs])


def test_one_over_and_one_minus_over_one_plus_x():
    xs = _samples(0, I32_MAX, 3000, 5, extra=(1 << 30, (1 << 31) - 2))
    _assert_all_equal("one_over_one_plus_x_for_x_in_0_1", [
        ((x,), fx.one_over_one_plus_x_for_x_in_0_1(x), ref_one_over_one_plus_x(FP(x, 0)).raw)
        for x in xs])
    _assert_all_equal("one_minus_x_over_one_plus_x_for_x_in_0_1", [
        ((x,), fx.one_minus_x_over_one_plus_x_for_x_in_0_1(x),
         ref_one_minus_x_over_one_plus_x(FP(x, 0)).raw) for x in xs])


@pytest.mark.parametrize("ib", [0, 1, 2, 3, 4, 5, 6])
def test_tanh_and_logistic(ib):
    xs = _samples(I32_MIN, I32_MAX, 1200, 20 + ib, extra=(I32_MIN + 1, 1 << (31 - ib)))
    _assert_all_equal(f"tanh<{ib}>", [((x,), fx.fp_tanh(x, ib), ref_tanh(FP(x, ib)).raw)
                                      for x in xs])
    _assert_all_equal(f"logistic<{ib}>", [((x,), fx.fp_logistic(x, ib),
                                           ref_logistic(FP(x, ib)).raw) for x in xs])


@pytest.mark.parametrize("digits", [0, 5, 12, 20])
def test_get_reciprocal(digits):
    xs = _samples(1, I32_MAX, 2000, 30 + digits,
                  extra=[1 << k for k in range(31)] + [(1 << k) + 1 for k in range(31)] +
                        [(1 << k) - 1 for k in range(2, 32)])
    out = []
    for x in xs:
        got = tuple(int(v) for v in fx.get_reciprocal(x, digits))
        out.append(((x, digits), got, ref_get_reciprocal(x, digits)))
    _assert_all_equal("get_reciprocal", out)


def test_int16_helpers():
    vals = _samples(I16_MIN, I16_MAX, 400, 6, extra=(I16_MIN + 1, 1 << 14))
    rng = random.Random(7)
    pairs = [(rng.choice(vals), rng.choice(vals)) for _ in range(4000)]
    pairs += [(I16_MIN, I16_MIN), (I16_MIN, I16_MAX), (I16_MAX, I16_MAX), (I16_MIN, 1)]
    _assert_all_equal("srdhm_int16", [((a, b), fx.srdhm_int16(a, b), ref_srdhm(a, b, 16))
                                      for a, b in pairs])
    # reference_ops::SaturatingDoublingHighMul: trunc(a*b / 2^15), -32768^2 saturates
    _assert_all_equal("saturating_doubling_high_mul_int16", [
        ((a, b), fx.saturating_doubling_high_mul_int16(a, b),
         I16_MAX if a == b == I16_MIN else wrap(c_div(a * b, 1 << 15), 16)) for a, b in pairs])
    _assert_all_equal("saturating_left_shift_int16", [
        ((a, k), fx.saturating_left_shift_int16(a, k), sat(a * (1 << k), 16))
        for a in vals for k in range(0, 31, 3)])


def test_rounding_divide_by_pot_int16():
    """gemmlowp RoundingDivideByPOT<int16_t>, transliterated including the int16 mask."""
    def ref(x, e):
        mask = wrap((1 << e) - 1, 16)
        remainder = wrap(x & mask, 16)
        threshold = wrap((mask >> 1) + (1 if x < 0 else 0), 16)
        return wrap((x >> e) + (1 if remainder > threshold else 0), 16)

    vals = _samples(I16_MIN, I16_MAX, 300, 8)
    out = [((x, e), fx.rounding_divide_by_pot_int16(x, e), ref(x, e))
           for x in vals for e in range(0, 32)]
    _assert_all_equal("rounding_divide_by_pot_int16", out)
    # below 16 it is the plain rounding rule
    _assert_all_equal("rounding_divide_by_pot_int16 (rational)", [
        ((x, e), fx.rounding_divide_by_pot_int16(x, e), ref_rdbpot(x, e))
        for x in vals for e in range(0, 16)])


def test_known_values():
    """A few values that follow from the definitions (One, one half, exp(0), 1/(1+0))."""
    assert fx.exp_on_negative_values(0, 5) == I32_MAX
    assert fx.fp_logistic(0, 4) == 1 << 30
    assert fx.fp_tanh(0, 4) == 0
    r, nbou = fx.get_reciprocal(1 << 19, 12)  # 1.0 in Q12.19
    assert nbou == 0 and r == fx.one_over_one_plus_x_for_x_in_0_1(0)
