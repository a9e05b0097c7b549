"""Requantization: the exact integer emulation of TFLite's double FC requantization (scheme 5),
and the hardware requant units' parameter derivations (mult_shift, shift_only, per-tensor).

double_round: TFLite's reference FULLY_CONNECTED computes int32(round(double(acc) * real));
hwsim (and the RTL) compute it in integers: real = M * 2^E, P = |acc| * M rounded to 53
significant bits half-even, scaled by 2^E rounded half away, sign restored. These tests prove
the integer algorithm equal to the IEEE double computation (Python floats are IEEE doubles).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import arith_bigint_ref as bigref
from hwsim.arith import real_to_m_e
from hwsim.kernels.requant import double_round_float, double_round_int, requantize
from hwsim.lower import collapse_reals, derive_requant, mult_shift_params, shift_only_params
from hwsim.params import ArithmeticParams, RequantParams
from hwsim.vocab import RequantScheme, Rounding

INT32 = st.integers(-2**31, 2**31 - 1)
REALS = st.floats(min_value=2.0**-60, max_value=2.0**20, allow_nan=False, allow_infinity=False)


def _int(acc, real):
    m, e = real_to_m_e(real)
    return int(double_round_int(acc, m, e))


def _exact_reference(acc: int, real: float) -> int:
    """A third, independent definition with Fractions: round each IEEE step by hand."""
    def to_double(q: Fraction) -> Fraction:  # round a positive rational to 53 bits, half even
        if q == 0:
            return q
        e = math.floor(math.log2(q.numerator) - math.log2(q.denominator)) - 2
        while Fraction(2) ** (e + 1) <= q:
            e += 1
        while Fraction(2) ** e > q:
            e -= 1
        ulp = Fraction(2) ** (e - 52)
        n = q / ulp
        f = math.floor(n)
        r = n - f
        if r > Fraction(1, 2) or (r == Fraction(1, 2) and f % 2):
            f += 1
        return f * ulp
    a = to_double(Fraction(abs(acc)))
    p = to_double(a * Fraction(real))
    f = math.floor(p)
    if p - f >= Fraction(1, 2):
        f += 1
    return -f if acc < 0 else f


# -- real_to_m_e ------------------------------------------------------------------------------

@given(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False))
def test_real_to_m_e_is_exact(real):
    m, e = real_to_m_e(real)
    assert 0 <= m < 2**53
    assert Fraction(m) * Fraction(2) ** e == Fraction(real)
    if real >= 2.0**-1022:
        assert 2**52 <= m  # normal: the hidden bit is set
        assert -1074 <= e <= 971


def test_real_to_m_e_rejects_bad_values():
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            real_to_m_e(bad)


# -- double_round: integer == IEEE double ------------------------------------------------------

@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(INT32, REALS)
@example(1, 0.5)
@example(-1, 0.5)
@example(3, 0.5)
@example(-3, 0.5)
@example(2**31 - 1, 1.0 - 2.0**-53)
@example(-2**31, 1.0 - 2.0**-53)
@example(-2**31, 2.0**-31)
@example(2**31 - 1, 2.0**20)
def test_double_round_int_equals_double(acc, real):
    assert _int(acc, real) == double_round_float(acc, real)


@settings(max_examples=1000, deadline=None)
@given(st.integers(-2**62, 2**62), st.floats(min_value=2.0**-40, max_value=0.5,
                                             allow_nan=False))
def test_double_round_int64_accumulators(acc, real):
    """16x8 layers: |acc| >= 2^53 is itself rounded by the int64 -> double conversion."""
    assert _int(acc, real) == double_round_float(acc, real)


@settings(max_examples=300, deadline=None)
@given(st.integers(-2**40, 2**40), REALS)
def test_double_round_matches_fraction_model(acc, real):
    assert _int(acc, real) == _exact_reference(acc, real)


def test_double_round_bulk_random():
    """10^6 pairs through the vectorized kernel vs numpy's IEEE float64 computation (and the
    float -> int32 conversion of x86: INT32_MIN when out of range)."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    acc = rng.integers(-2**31, 2**31, size=n, dtype=np.int64)
    acc[:1000] = rng.integers(-300, 300, size=1000)  # small accumulators: many ties
    reals = np.ldexp(rng.uniform(0.5, 1.0, size=64), rng.integers(-40, 4, size=64))
    reals[:8] = [0.5, 0.25, 1.5, 2.0**-20, 0.75, 1.0, 3.0, 2.0**-31]  # exact binary fractions
    for real in reals:
        v = acc.astype(np.float64) * real
        a = np.abs(v)
        f = np.floor(a)
        f = np.where(a - f >= 0.5, f + 1, f)
        want = np.where(v < 0, -f, f).astype(np.int64)
        # then TFLite's static_cast<int32_t>: INT32_MIN outside int32 (x86 cvttsd2si)
        want = np.where((want > 2**31 - 1) | (want < -2**31), -2**31, want)
        m, e = real_to_m_e(float(real))
        p = RequantParams(multiplier=np.array([m], np.int64), shift=np.array([e], np.int64),
                          scheme=RequantScheme.double_round, out_zp=0, act_min=-2**62,
                          act_max=2**62)
        got = requantize(acc.reshape(-1, 1), p, np.int64).reshape(-1)
        assert np.array_equal(got, want), float(real)


def test_double_round_ties_and_edges():
    cases = [
        (0, 0.123), (5, 0.0), (1, 0.5), (-1, 0.5), (2, 0.25), (-2, 0.25), (5, 0.1),
        (7, 0.5), (-7, 0.5), (2**31 - 1, 0.5), (-2**31, 0.5), (-2**31, 1.0),
        (2**31 - 1, 1.0 - 2.0**-53),           # the product must round (54+ bits)
        (3, 1.0 / 6.0),                        # 0.5 - tiny: product rounding decides
        (6004799503160661, 2.0**-53),          # M*2^-53 with odd products
        (2**53 + 1, 1.0), (-(2**53 + 1), 1.0),  # int64 -> double rounds to even
        (2**53 + 3, 0.5), (2**62, 2.0**-62),
        (1, 5e-324), (2**31 - 1, 5e-324),      # subnormal real: result 0
        (12345, 2.0**-14),                     # 0.7534... and exact ties below
        (3 * 2**13, 2.0**-14), (-3 * 2**13, 2.0**-14),
    ]
    for acc, real in cases:
        assert _int(acc, real) == double_round_float(acc, real) == _exact_reference(acc, real), \
            (acc, real)
    # ties are away from zero
    assert _int(3, 0.5) == 2 and _int(-3, 0.5) == -2 and _int(5, 0.5) == 3


def _product_rounds_onto_tie(acc: int):
    """A real = M * 2^-53 for which acc * real is just below k + 1/2 but the double product
    rounds exactly onto the tie: solve acc * M = 2^52 - d (mod 2^53) with 0 < d < half an
    ulp of the product (2^bitlen(acc) units of 2^-53)."""
    inv = pow(acc, -1, 2**53)
    for d in range(1, 1 << 16):
        m = ((2**52 - d) * inv) % 2**53
        if 2**52 <= m and d < 2**(acc.bit_length() - 1):
            return math.ldexp(m, -53)
    raise AssertionError("no construction")


@pytest.mark.parametrize("acc", [2**31 - 1, 1_000_003, 3**19, 12345677, 65537])
def test_double_round_product_tie_created_by_rounding(acc):
    """acc * real lies just below k + 1/2 but the double product rounds onto the tie: C's
    round() then goes away from zero although the exact value rounds toward zero. The integer
    emulation must follow the double, for both signs."""
    real = _product_rounds_onto_tie(acc)
    exact = Fraction(acc) * Fraction(real)
    v = float(acc) * real
    assert Fraction(v) - math.floor(v) == Fraction(1, 2) and exact < Fraction(v)
    for a in (acc, -acc):
        got = _int(a, real)
        assert got == double_round_float(a, real) == _exact_reference(a, real)
        assert abs(got) == math.floor(v) + 1 == math.floor(exact) + 1  # not the exact rounding


def test_requantize_scheme5_per_channel_with_clamp():
    rng = np.random.default_rng(1)
    acc = rng.integers(-2**20, 2**20, size=(7, 5)).astype(np.int32)
    reals = [0.0013, 0.5, 2.0**-12, 0.0078125, 1.7e-5]
    me = [real_to_m_e(r) for r in reals]
    p = RequantParams(multiplier=np.array([m for m, _ in me], np.int64),
                      shift=np.array([e for _, e in me], np.int64),
                      scheme=RequantScheme.double_round, out_zp=-3, act_min=-128, act_max=127)
    got = requantize(acc, p, np.int8)
    for (i, c), a in np.ndenumerate(acc):
        want = min(max(double_round_float(int(a), reals[c]) - 3, -128), 127)
        assert got[i, c] == want


# -- hardware unit derivations ------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=2.0**-40, max_value=2.0**10, allow_nan=False),
       st.integers(2, 32), st.integers(1, 6))
def test_mult_shift_params_rule(real, mbits, sbits):
    m, s, note = mult_shift_params(real, mbits, sbits)
    mmax = (1 << (mbits - 1)) - 1
    smax = (1 << sbits) - 1

    def rha(q: Fraction) -> int:
        f = math.floor(q)
        return f + 1 if q - f >= Fraction(1, 2) else f
    if note and "clamped" in note:
        assert (m, s) == (mmax, 0) and rha(Fraction(real)) > mmax
        return
    assert 0 <= s <= smax and m == rha(Fraction(real) * 2**s) and m <= mmax
    if s < smax:  # the largest shift: one more does not fit
        assert rha(Fraction(real) * 2**(s + 1)) > mmax
    assert bool(note) == (m == 0)


def test_mult_shift_params_examples():
    assert mult_shift_params(0.75, 8, 6) == (96, 7, "")  # 0.75 * 2^7 = 96; 2^8 -> 192 > 127
    m, s, _ = mult_shift_params(1.0, 16, 4)  # shift limited to 15: 2^15 > 32767 -> s = 14
    assert (m, s) == (16384, 14)
    m, s, note = mult_shift_params(300.0, 8, 6)
    assert (m, s) == (127, 0) and "clamped" in note
    m, s, note = mult_shift_params(2.0**-40, 8, 3)  # 2^-40 * 2^7 rounds to 0
    assert (m, s) == (0, 7) and "zero" in note
    # round half away: 0.5 * 2^0 ... with 2-bit multiplier (max 1): 0.75 -> s=0 gives 1
    assert mult_shift_params(0.75, 2, 1)[:2] == (1, 0)


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=2.0**-70, max_value=2.0**10, allow_nan=False), st.integers(1, 6))
def test_shift_only_params_nearest_power_of_two(real, sbits):
    s, note = shift_only_params(real, sbits)
    smax = (1 << sbits) - 1
    # brute force: the integer n minimizing |log2(real) + n| (compare squares exactly)
    best = None
    for n in range(-20, 90):
        # distance in log domain: compare real * 2^n against 1 via its square root-free ratio
        r = Fraction(real) * Fraction(2) ** n
        d = r if r >= 1 else 1 / r  # |log2(r)| is monotone in d
        if best is None or d < best[0]:
            best = (d, n)
    want = min(max(best[1], 0), smax)
    assert s == want
    assert bool(note) == (best[1] != want)


def test_collapse_rule_and_per_tensor_derivation():
    from hwsim.hw.config import RequantConfig
    reals = np.array([0.004, 0.001, 0.003, 0.002])
    assert collapse_reals(reals) == (0.002, False)  # lower median
    assert collapse_reals(np.array([0.5, 0.5, 0.5])) == (0.5, True)
    notes = []
    p = derive_requant(reals, "tflite_double", RequantConfig(per_channel=False), notes)
    assert len(p.multiplier) == 1 and "collapsed" in notes[0]
    p2 = derive_requant(np.array([0.002]), "tflite_double")
    assert p.multiplier[0] == p2.multiplier[0] and p.shift[0] == p2.shift[0]
    # per-channel unit: channels that share one real get one entry (exact, no note)
    notes = []
    p = derive_requant(np.full(6, 0.01), "mult_shift",
                       RequantConfig(scheme="mult_shift", multiplier_bits=16), notes)
    assert len(p.multiplier) == 1 and notes == []
    # TFLite path without a unit keeps one entry per channel (the engine's behaviour)
    assert len(derive_requant(np.full(6, 0.01), "tflite_double").multiplier) == 6


def test_mult_shift_and_shift_only_requantize():
    """Scheme 3 / 4 in the requant kernel: round_shift(acc * M, s) / round_shift(acc, s)."""
    from hwsim.arith import round_shift
    acc = np.arange(-300, 301, dtype=np.int32).reshape(-1, 1)
    for mode in Rounding:
        code = int(mode)
        p = RequantParams(multiplier=np.array([77], np.int64), shift=np.array([9], np.int64),
                          scheme=RequantScheme.mult_shift, rounding=mode, out_zp=4,
                          act_min=-128, act_max=127)
        got = requantize(acc, p, np.int8).reshape(-1)
        want = [min(max(int(round_shift(int(a) * 77, 9, code)) + 4, -128), 127)
                for a in acc.reshape(-1)]
        assert got.tolist() == want, mode
        p = p.replace(scheme=RequantScheme.shift_only, shift=np.array([3], np.int64))
        got = requantize(acc, p, np.int8).reshape(-1)
        want = [min(max(int(round_shift(int(a), 3, code)) + 4, -128), 127)
                for a in acc.reshape(-1)]
        assert got.tolist() == want, mode


# --- scheme 0's two kernels (eight-lane vector IR and scalar loop) vs the big-integer model ---
_I32MIN, _I32MAX = -(1 << 31), (1 << 31) - 1
_EDGES = np.array([_I32MIN, _I32MIN + 1, -(1 << 30), -12345, -1, 0, 1, 12345, 1 << 30,
                   _I32MAX - 1, _I32MAX], dtype=np.int64)


@pytest.mark.parametrize("vector", [True, False], ids=["vector", "scalar"])
@pytest.mark.parametrize("fast", [True, False], ids=["right-shifts", "any-shift"])
@pytest.mark.parametrize("out_dtype,act", [(np.int8, (-128, 127)), (np.int16, (-32768, 32767)),
                                           (np.int8, (-5, 100))])
def test_scheme0_kernels_match_bigint_model(monkeypatch, vector, fast, out_dtype, act):
    """Every lane of both scheme-0 kernels equals mbqm_double + wrapped zero point + clamp
    computed with Python integers, on random and edge accumulators, multipliers (including
    INT32_MIN, the SRDHM saturation) and every shift in [-31, 30], serial and parallel sizes."""
    from hwsim.kernels import requant as R
    monkeypatch.setattr(R, "VECTOR_REQUANT", vector)
    rng = np.random.default_rng(7)
    for rows, zp in ((5, -3), (40, _I32MAX), (1 << 13, 17), (3, _I32MIN)):
        C = 64
        acc = rng.integers(_I32MIN, _I32MAX + 1, size=(rows, C), dtype=np.int64)
        acc[rng.random((rows, C)) < 0.3] >>= 20
        pick = rng.random((rows, C)) < 0.2
        acc[pick] = rng.choice(_EDGES, size=int(pick.sum()))
        mult = rng.integers(_I32MIN, _I32MAX + 1, size=C)
        mult[:len(_EDGES)] = _EDGES
        shift = np.arange(-31, 33)[:C] % 62 - 31
        if fast:  # the variant for right shifts only and no INT32_MIN multiplier
            mult[mult == _I32MIN] = _I32MIN + 1
            shift = -np.abs(shift)
        p = RequantParams(multiplier=mult, shift=shift, scheme=RequantScheme.tflite_double,
                          out_zp=zp, act_min=act[0], act_max=act[1])
        split = R.split_shifts(p, C)
        assert split.fast == fast
        got = R.requantize(acc.astype(np.int32), p, out_dtype, split)
        assert np.array_equal(got, R.requantize(acc.astype(np.int32), p, out_dtype))
        assert got.dtype == out_dtype
        n = min(rows, 64)  # the big-integer model on a subset of rows (every column)
        for r in list(range(n)) + [rows - 1]:
            for c in range(C):
                v = bigref.to_int32(bigref.mbqm_double(int(acc[r, c]), int(mult[c]),
                                                       int(shift[c])) + zp)
                want = min(max(v, act[0]), act[1])
                assert int(got[r, c]) == want, (r, c, int(acc[r, c]), int(mult[c]),
                                                int(shift[c]))


@pytest.mark.parametrize("table", [True, False], ids=["table", "direct"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_add_sub_kernels_match_bigint_model(monkeypatch, table, dtype):
    """ADD/SUB's general path (int8: the 65,536-entry table, and the direct loop) equals
    TFLite's AddFunc / SubFunc computed with Python integers, for random parameters incl.
    extreme multipliers, shifts and offsets, at sizes below and above the table and parallel
    thresholds."""
    from types import SimpleNamespace

    from hwsim.kernels import elementwise as E
    from hwsim.registry import KERNELS
    monkeypatch.setattr(E, "ADD_TABLES", table)
    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    for trial in range(24):
        n = int(rng.choice([5, 67, 5000, (1 << 15) + 13]))
        a = rng.integers(info.min, info.max + 1, size=n).astype(dtype)
        b = rng.integers(info.min, info.max + 1, size=n).astype(dtype)
        mults = rng.choice(_EDGES, size=3) if trial % 4 == 0 else \
            rng.integers(1 << 30, (1 << 31) - 1, size=3)
        p = ArithmeticParams(pot=False, is_sub=bool(trial % 2), single_rounding=False,
                             out_shape=(n,), input1_offset=int(rng.integers(-128, 129)),
                             input2_offset=int(rng.integers(-128, 129)),
                             left_shift=int(rng.choice([20, 15, 0, 31])),
                             input1_multiplier=int(mults[0]),
                             input1_shift=int(rng.integers(-31, 3)),
                             input2_multiplier=int(mults[1]),
                             input2_shift=int(rng.integers(-31, 3)),
                             output_multiplier=int(mults[2]),
                             output_shift=int(rng.integers(-31, 3)),
                             output_offset=int(rng.choice([-3, 100, _I32MAX])),
                             act_min=int(info.min), act_max=int(info.max))
        layer = SimpleNamespace(params=p)
        got = KERNELS["add_sub"](layer, [a, b])[0][0]  # prepared on the spot
        for i in list(range(min(n, 40))) + list(range(n - 5, n)):
            x1 = bigref.to_int32((p.input1_offset + int(a[i])) << p.left_shift)
            x2 = bigref.to_int32((p.input2_offset + int(b[i])) << p.left_shift)
            y1 = bigref.mbqm_double(x1, p.input1_multiplier, p.input1_shift)
            y2 = bigref.mbqm_double(x2, p.input2_multiplier, p.input2_shift)
            raw = bigref.to_int32(y1 - y2 if p.is_sub else y1 + y2)
            v = bigref.mbqm_double(raw, p.output_multiplier, p.output_shift) \
                + p.output_offset
            want = min(max(v, p.act_min), p.act_max)
            assert int(got[i]) == want, (trial, i)


def test_add_table_gather_equals_the_direct_loop():
    """The int8 ADD table loop (8 elements a vpgatherdd where the CPU has AVX2, the tail one by
    one), serial and on two threads, against the direct loop on every input pair and a ragged
    tail, for one ADD and one SUB."""
    import numba

    from hwsim.kernels import elementwise as E
    pairs_a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256)
    pairs_b = np.tile(np.arange(-128, 128, dtype=np.int8), 256)
    rng = np.random.default_rng(5)
    a = np.concatenate([pairs_a, rng.integers(-128, 128, 13).astype(np.int8)])
    b = np.concatenate([pairs_b[::-1], rng.integers(-128, 128, 13).astype(np.int8)])
    for is_sub in (False, True):
        args = (np.int64(-3), np.int64(100), np.int64(20), np.int64(1518500250), np.int64(-1),
                np.int64(1234567891), np.int64(-2), np.int64(2000000001), np.int64(-18),
                np.int64(-7), np.int64(-128), np.int64(127))
        want = np.empty_like(a)
        E._add_sub_general(a, b, want, is_sub, *args, False)
        lut = E._add_sub_table(is_sub, args, False)
        assert lut.shape == (65536 + 4,)
        got = np.empty_like(a)
        E._add_sub_lut(a, b, got, lut)
        assert np.array_equal(got, want)
        if numba.config.NUMBA_NUM_THREADS > 1:
            got2 = np.empty_like(a)
            E._lut_parallel(a, b, got2, lut, 2)
            assert np.array_equal(got2, want)
