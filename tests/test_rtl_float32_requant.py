"""The requant unit's scheme 6 (float32, ONNX Runtime's MlasRequantizeOutput) in the reference RTL.

hwsim_requant (hwsim/rtl/hwsim_arith.vh f_float32_round) against the engine's requantization
(hwsim.kernels.requant.requantize, which is hwsim.arith.requant_float32_half_even plus the zero
point and the clamp) on random and edge vectors: ties of both roundings (the float32 product's
and the final rint's), accumulators beyond 2^24 (int -> float32 rounds), INT32_MIN / MAX,
scales near 1e-10 and 1e10 up to FLT_MAX (products that overflow float32, clipped to 2^40),
tiny products, the clamp. Then the onnxruntime-int8 preset end to end: rtl-params and cosim
accept it, and a seeded QOperator model (int8 QLinearConv, depthwise QLinearConv,
QLinearMatMul) exported with ``--config onnxruntime-int8`` is bit-exact on Verilator in chain
mode; ONNX Runtime's own output for that model equals the export's golden output.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.test_rtl_units import INT32_MAX, INT32_MIN, _check, _run_unit

FLT_MAX_BITS = 0x7F7FFFFF
FLT_MIN_BITS = 0x00800000  # the smallest normal float32, 2^-126


def _bits(x) -> int:
    return int(np.array([x], np.float32).view(np.uint32)[0])


def _engine(acc: int, bits: int, zp: int, lo: int, hi: int) -> int:
    """The engine's float32 requantization of one accumulator (scale = the float32 bits)."""
    from hwsim.kernels.requant import requantize
    from hwsim.params import RequantParams
    from hwsim.vocab import RequantScheme, Rounding
    p = RequantParams(multiplier=np.array([bits], np.int64), shift=np.array([0], np.int64),
                      scheme=RequantScheme.float32, rounding=Rounding.half_even, out_zp=zp,
                      act_min=lo, act_max=hi)
    with np.errstate(over="ignore"):  # a product beyond FLT_MAX is inf, then clipped
        return int(requantize(np.array([[acc]], np.int64), p, np.int64)[0, 0])


def _float32_cases(seed: int = 6) -> list[dict]:
    from hwsim.hwif.requant import encode_requant_word
    from hwsim.vocab import RequantScheme
    rng = np.random.default_rng(seed)
    cases = []

    def add(acc, bits, zp=0, lo=INT32_MIN, hi=INT32_MAX):
        cases.append(dict(acc=int(acc), word=encode_requant_word(RequantScheme.float32, bits),
                          scheme=6, rounding=2, output_offset=zp, act_min=lo, act_max=hi,
                          expected=_engine(int(acc), bits, zp, lo, hi)))

    # random: accumulators of every magnitude, scales log-uniform over 1e-10 .. 1e10
    for _ in range(600):
        bits = int(rng.choice([8, 16, 24, 25, 31]))
        acc = int(rng.integers(-(1 << bits), 1 << bits)) if bits < 31 else \
            int(rng.integers(INT32_MIN, INT32_MAX, endpoint=True))
        scale = np.float32(10.0 ** rng.uniform(-10, 10))
        zp, lo, hi = int(rng.integers(-128, 128)), INT32_MIN, INT32_MAX
        if rng.random() < 0.3:  # an int8 clamp
            lo, hi = (-128, 127) if rng.random() < 0.5 else (0, 127)
        add(acc, _bits(scale), zp, lo, hi)
    # scales an ONNX model has (x_scale * w_scale / y_scale): 1e-5 .. 1 on int32 accumulators
    for _ in range(200):
        acc = int(rng.integers(-(1 << 22), 1 << 22))
        add(acc, _bits(np.float32(10.0 ** rng.uniform(-5, 0))), int(rng.integers(-128, 128)),
            -128, 127)
    # int -> float32 rounds beyond 2^24 (ties to even): scale 1 shows the converted value
    one = _bits(1.0)
    for a in ((1 << 24) + 1, (1 << 24) + 3, (1 << 24) + 2, (1 << 25) + 2, (1 << 25) + 6,
              (1 << 25) + 1, (1 << 30) + (1 << 6), (1 << 30) + (3 << 6), INT32_MAX, INT32_MIN,
              INT32_MIN + 1, (1 << 24) - 1, 1 << 24):
        add(a, one)
        add(-a, one)
    # ties of the final rint, both parities, both signs: x.5 exactly
    for a in (1, 3, 5, 7, 2047, 4095):
        for s in (0.5, 1.5, 2.0 ** -11):
            add(a if s != 2.0 ** -11 else a << 10, _bits(s))
            add(-a if s != 2.0 ** -11 else -(a << 10), _bits(s))
    # ties of the float32 product: acc = 2^k + 1, scale significand ms with its low k bits
    # 100..0, so acc * ms = ms * 2^k + ms has its discarded k bits exactly half (k <= 20 keeps
    # the product below 2^(24+k)); bit k of ms sets the parity the tie goes to. The exponent
    # makes the product's last kept bit worth 1, 1/2 or 2, so its rounding shows in the result
    # (and at 1/2 meets the rint's tie)
    for k in (2, 5, 9, 14, 20):
        for hi_bits in (0b1000, 0b1011, 0b1101):
            ms = (hi_bits << 20) | (1 << (k - 1))
            for parity in (0, 1):
                m = ms | (parity << k)
                for exp in (150 - k, 149 - k, 151 - k):  # scale = m * 2^(exp - 150)
                    bits = (exp << 23) | (m & 0x7FFFFF)
                    add((1 << k) + 1, bits)
                    add(-((1 << k) + 1), bits)
    # overflow: the product beyond 2^40 (and beyond FLT_MAX: inf) is clipped, then clamped
    for bits in (_bits(1e10), _bits(3e9), FLT_MAX_BITS, _bits(2.0 ** 40), _bits(2.0 ** 16)):
        for a in (INT32_MAX, INT32_MIN, 1 << 24, 1000, -1000, 1, -1):
            add(a, bits, 5)
            add(a, bits, -100, -128, 127)
    # tiny products: scales near 1e-10 and the smallest normal float32; acc 0
    for bits in (_bits(1e-10), _bits(1.01e-10), FLT_MIN_BITS, _bits(2.0 ** -32)):
        for a in (INT32_MAX, INT32_MIN, (1 << 24) + 1, 1, -1, 0):
            add(a, bits, 3)
    # products just below / at / above 0.5 and 1.5 at the float32 resolution (nextafter)
    for target in (0.5, 1.5, 2.5, 126.5, 127.5):
        for acc in (3, 7, 1001, (1 << 24) + 1):
            s = np.float32(target / np.float32(acc))
            for b in (_bits(s) - 1, _bits(s), _bits(s) + 1):
                add(acc, b, 0, -128, 127)
                add(-acc, b, 0, -128, 127)
    return cases


def test_float32_cases_cover_the_edges():
    """The edge vectors reach what they are meant to: products that tie, that overflow, that
    round in the int -> float32 conversion (checked on the engine's values, independently of
    the RTL)."""
    cases = _float32_cases()
    assert {c["scheme"] for c in cases} == {6}
    # 2^24 + 1 converts to 2^24 (tie to even), 2^24 + 3 to 2^24 + 4
    by = {(c["acc"], c["word"], c["output_offset"], c["act_min"]): c["expected"] for c in cases}
    one = _bits(1.0)
    assert by[((1 << 24) + 1, one, 0, INT32_MIN)] == 1 << 24
    assert by[((1 << 24) + 3, one, 0, INT32_MIN)] == (1 << 24) + 4
    assert by[(INT32_MAX, one, 0, INT32_MIN)] == INT32_MAX  # float32(2^31) = 2^31, clamped
    assert by[(3, _bits(0.5), 0, INT32_MIN)] == 2 and by[(5, _bits(0.5), 0, INT32_MIN)] == 2
    assert by[(-3, _bits(0.5), 0, INT32_MIN)] == -2
    assert by[(INT32_MIN, FLT_MAX_BITS, 5, INT32_MIN)] == INT32_MIN  # -inf clipped, clamped
    assert by[(1000, _bits(1e10), -100, -128)] == 127
    # the product ties really are ties of the float32 rounding: exact product half-way
    ties = 0
    for c in cases:
        bits = c["word"] & 0xFFFFFFFF
        e, m = bits >> 23 & 0xFF, (bits & 0x7FFFFF) | (1 << 23)
        a = abs(c["acc"])
        if e == 0 or a == 0 or a >= 1 << 24:
            continue
        p = a * m
        s1 = p.bit_length() - 24
        if s1 > 0 and p & ((1 << s1) - 1) == 1 << (s1 - 1):
            ties += 1
    assert ties >= 100


def test_requant_unit_scheme_6_matches_the_engine(tmp_path):
    cases = _float32_cases()
    got = _run_unit("hwsim_requant", "requant_unit", {"ACC_BITS": 64, "OUT_BITS": 32}, cases,
                    tmp_path)
    _check(cases, got)


def test_rtl_params_generates_the_onnxruntime_int8_header(tmp_path, capsys):
    """rtl-params accepts the float32 scheme (it refused it before the unit existed): the
    header carries requant scheme 6 and half-even rounding."""
    import re

    from hwsim import cli
    from hwsim.rtl_params import REQUANT_SCHEME_CODES
    assert REQUANT_SCHEME_CODES["float32"] == 6
    out = tmp_path / "p.vh"
    assert cli.main(["rtl-params", "onnxruntime-int8", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    d = dict(re.findall(r"^`define\s+HWSIM_(\w+)\s+(\S+)", out.read_text(), re.M))
    assert (d["REQUANT_SCHEME"], d["REQUANT_ROUNDING"], d["REQUANT_PER_CHANNEL"]) == \
        ("6", "2", "1")
