"""The RTL's arithmetic against hwsim's, on random and corner cases (Icarus, cocotb).

hwsim_requant (every scheme the descriptors carry: 0 tflite_double, 1 tflite_single,
2 tflite_int64 (16x8, int64 accumulators), 3 mult_shift, 4 shift_only in every rounding mode,
5 double_round incl. int64 accumulators beyond 2^53) is built with a 32-bit output and an int32
clamp, so nothing hides behind the int8 saturation; hwsim_add_lane likewise, with 8- and 16-bit
inputs. hwsim_pe (the accumulator step of every PE) runs whole reductions for accumulators of
16..64 bits, wrapping and saturating, in both dataflows' order, bias first and last. Expected
values: hwsim.kernels.requant.requantize, hwsim.arith and hwsim.kernels.accumulate, the model's
single definitions.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from hwsim import cosim

from test_rtl_cosim import assert_cycles_match_the_model

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _run_unit(toplevel: str, testcase: str, parameters: dict, cases: list[dict],
              tmp_path: Path) -> list[int]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    reason = cosim.simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    from hwsim.hw.config import load_config
    b = cosim.build_rtl("icarus", load_config("tflite-int8"), toplevel=toplevel,
                        parameters=parameters)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {"HWSIM_UNIT_CASES": str(tmp_path / "cases.json"),
           "HWSIM_UNIT_RESULT": str(tmp_path / "got.json"), "COCOTB_LOG_LEVEL": "WARNING",
           # pytest's assertion rewriting for the bench only, not every module it imports
           "COCOTB_REWRITE_ASSERTION_FILES": "hwsim_unit_bench.py"}
    old = list(sys.path)
    sys.path.insert(0, str(cosim.TB_DIR))
    try:
        with cosim._sim_env("icarus"):
            b.runner.test(test_module="hwsim_unit_bench", hdl_toplevel=toplevel,
                          testcase=testcase, build_dir=str(b.build_dir),
                          test_dir=str(tmp_path), extra_env=env,
                          results_xml=str(tmp_path / "results.xml"),
                          log_file=str(tmp_path / "sim.log"))
    finally:
        sys.path[:] = old
    return json.loads((tmp_path / "got.json").read_text())


def _check(cases, got, expect_key="expected"):
    assert len(got) == len(cases)
    bad = [(c, g) for c, g in zip(cases, got) if c[expect_key] != g]
    assert not bad, f"{len(bad)} of {len(cases)} differ; first: {bad[0][0]} got {bad[0][1]}"


# ---- requant unit --------------------------------------------------------------------------------
def _requant_cases(seed: int = 1) -> list[dict]:
    from hwsim.arith import real_to_m_e
    from hwsim.kernels.requant import requantize
    from hwsim.params import RequantParams
    from hwsim.vocab import RequantScheme, Rounding
    rng = np.random.default_rng(seed)
    cases = []

    def add(acc, scheme, mult, shift, rounding=0, zp=0):
        if scheme == 5:
            word = (mult & ((1 << 53) - 1)) | ((shift & 0x7FF) << 53)
        else:
            word = (mult & 0xFFFFFFFF) | ((shift & 0xFF) << 32)
        # the engine's own requantization (incl. TFLite's int32 wrap of `acc + offset`)
        p = RequantParams(multiplier=np.array([mult], np.int64),
                          shift=np.array([shift], np.int64), scheme=RequantScheme(scheme),
                          rounding=Rounding(rounding), out_zp=zp, act_min=INT32_MIN,
                          act_max=INT32_MAX)
        r = int(requantize(np.array([[acc]], np.int64), p, np.int64)[0, 0])
        cases.append(dict(acc=int(acc), word=int(word), scheme=scheme, rounding=rounding,
                          output_offset=zp, act_min=INT32_MIN, act_max=INT32_MAX,
                          expected=r))

    def i32(n, small=False):
        hi = 1 << (16 if small else 31)
        return rng.integers(-hi, hi, n)

    # scheme 0 / 1: TFLite multipliers in [2^30, 2^31), shifts of both signs, corner values
    for scheme, smax in ((0, 31), (1, 30)):
        accs = np.concatenate([i32(150), i32(150, True), [0, 1, -1, INT32_MIN, INT32_MAX]])
        for a in accs:
            m = int(rng.integers(1 << 30, 1 << 31))
            sh = int(rng.integers(-31, smax + 1)) if rng.random() < 0.3 else \
                int(rng.integers(-12, 1))
            add(int(a), scheme, m, sh, zp=int(rng.integers(-128, 128)))
        add(INT32_MIN, scheme, INT32_MIN, 0)          # SRDHM's only overflow
        add(INT32_MIN, scheme, INT32_MAX, -31)
        add(12345, scheme, 0, 0)
        for k in range(1, 12):                        # exact ties of the right shift
            add(-(3 << (k - 1)), scheme, 1 << 30, -k + 1 if k > 1 else 0)
            add(3 << (k - 1), scheme, 1 << 30, -k + 1 if k > 1 else 0)
    # scheme 3 / 4: every rounding mode, ties included
    for rounding in range(5):
        for _ in range(60):
            a = int(i32(1)[0])
            m = int(rng.integers(-(1 << 15), 1 << 15))
            add(a, 3, m, int(rng.integers(0, 40)), rounding, int(rng.integers(-128, 128)))
            add(int(rng.integers(-(1 << 40), 1 << 40)), 4, 0, int(rng.integers(0, 64)),
                rounding)
        for s in range(1, 8):                         # exact ties, both signs
            for a in (1 << (s - 1), -(1 << (s - 1)), 3 << (s - 1), -(3 << (s - 1))):
                add(a, 4, 0, s, rounding)
                add(a, 3, 1, s, rounding)
    # scheme 2 (16x8): int64 accumulators within TFLite's |acc| < 2^47, shifts -31..7, the
    # multiplier reduced to 16 bits (0x7FFF from 0x7FFF0000 up), ties of the final shift
    for _ in range(250):
        bits = int(rng.choice([16, 31, 40, 47]))
        a = int(rng.integers(-(1 << bits), 1 << bits))
        m = int(rng.integers(0, 1 << 31)) if rng.random() < 0.9 else \
            int(rng.integers(0x7FFF0000, 1 << 31))
        add(a, 2, m, int(rng.integers(-31, 8)), zp=int(rng.integers(-32768, 32768)))
    for a in (1 << 46, -(1 << 46), (1 << 47) - 1, -(1 << 47), 0, 12345, -12345):
        add(a, 2, (1 << 31) - 1, -31)
        add(a, 2, 1 << 30, 7)
    for k in range(9):  # M = 2^30 reduces to 2^14: x = odd * 2^k with shift -k is an exact tie
        for odd in (1, -1, 3, -3):
            add(odd << k, 2, 1 << 30, -k)
    # scheme 5: real = M * 2^E; accumulators up to int64 (rounded to 53 bits first)
    for _ in range(300):
        real = float(10.0 ** rng.uniform(-7, 1))
        m, e = real_to_m_e(real)
        bits = int(rng.choice([20, 31, 52, 60, 62]))
        acc = int(rng.integers(-(1 << bits), 1 << bits))
        if abs(acc) * real >= 2.0 ** 62:
            continue  # the result must fit int64 (double_round_int's domain; C's UB)
        add(acc, 5, m, e, zp=int(rng.integers(-128, 128)))
    m, e = real_to_m_e(0.5)
    for a in (1, -1, 3, -3, 5, -5):                    # x.5 exactly: away from zero
        add(a, 5, m, e)
    m, e = real_to_m_e(1.0 / 3.0)
    add((1 << 53) + 1, 5, m, e)                        # int64 -> double rounding
    add(0, 5, m, e)
    return cases


def test_requant_unit_matches_requant_one(tmp_path):
    cases = _requant_cases()
    got = _run_unit("hwsim_requant", "requant_unit", {"ACC_BITS": 64, "OUT_BITS": 32}, cases,
                    tmp_path)
    _check(cases, got)
    assert {c["scheme"] for c in cases} == {0, 1, 2, 3, 4, 5}


# ---- ADD lane ------------------------------------------------------------------------------------
def _add_cases(seed: int = 2, in_bits: int = 8) -> list[dict]:
    from hwsim.arith import (multiply_by_quantized_multiplier_double,
                             multiply_by_quantized_multiplier_single,
                             quantize_multiplier_smaller_than_one_exp, wrap_int32)
    rng = np.random.default_rng(seed)
    cases = []
    lo, hi = -(1 << (in_bits - 1)), 1 << (in_bits - 1)
    for _ in range(400):
        single = bool(rng.random() < 0.25)
        s1, s2 = (float(10.0 ** rng.uniform(-3, -1)) for _ in range(2))
        so = float(10.0 ** rng.uniform(-3, -0.5))
        ls = 20 if in_bits == 8 else 15  # TFLite's left shift: int8 20, int16 (general) 15
        twice = 2.0 * max(s1, s2)
        real_out = twice / ((1 << ls) * so)
        if not 0.0 < real_out < 1.0:
            continue
        m1, e1 = quantize_multiplier_smaller_than_one_exp(s1 / twice, single)
        m2, e2 = quantize_multiplier_smaller_than_one_exp(s2 / twice, single)
        mo, eo = quantize_multiplier_smaller_than_one_exp(real_out, single)
        a, b = (int(v) for v in rng.integers(lo, hi, 2))
        off1, off2 = (int(v) for v in rng.integers(-127, 129, 2)) if in_bits == 8 else (0, 0)
        zo = int(rng.integers(-128, 128))
        mbqm = multiply_by_quantized_multiplier_single if single else \
            multiply_by_quantized_multiplier_double
        x1 = int(wrap_int32((off1 + a) << ls))
        x2 = int(wrap_int32((off2 + b) << ls))
        y = int(wrap_int32(int(mbqm(x1, m1, e1)) + int(mbqm(x2, m2, e2))))
        v = int(mbqm(y, mo, eo)) + zo
        cases.append(dict(a=a, b=b, op=0, input1_offset=off1, input2_offset=off2, left_shift=ls,
                          input1_multiplier=m1, input1_shift=e1, input2_multiplier=m2,
                          input2_shift=e2, output_multiplier=mo, output_shift=eo,
                          single=int(single), output_offset=zo, act_min=INT32_MIN,
                          act_max=INT32_MAX, expected=min(max(v, INT32_MIN), INT32_MAX)))
    return cases


@pytest.mark.parametrize("in_bits", [8, 16])
def test_add_lane_matches_tflite_add_arithmetic(tmp_path, in_bits):
    cases = _add_cases(in_bits=in_bits)
    assert len(cases) > 300
    got = _run_unit("hwsim_add_lane", "add_unit", {"IN_BITS": in_bits, "OUT_BITS": 32}, cases,
                    tmp_path)
    _check(cases, got)


# ---- PE accumulator step -------------------------------------------------------------------------
def _pe_cases(acc_bits: int, sat: bool, ws: bool, bias_first: bool, prod_bits: int,
              bias_bits: int, seed: int) -> tuple[list[dict], int]:
    """Whole reductions (K products, a chunk length `rows` for weight stationary) with the
    model's final accumulator (hwsim.kernels.accumulate: _start, _step, _finish); values near
    the accumulator's limits so that it wraps / saturates often. Returns (cases, overflows):
    how many reductions left the accumulator's range somewhere."""
    from hwsim.kernels.accumulate import _finish, _start, _step
    rng = np.random.default_rng(seed)
    amax = (1 << (acc_bits - 1)) - 1
    pmax = (1 << (prod_bits - 1)) - 1
    cases, overflows = [], 0
    for i in range(120):
        k = int(rng.integers(1, 40))
        rows = int(rng.choice([1, 2, 3, 4, 8])) if ws else 8
        scale = min(pmax, max(1, amax // int(rng.choice([2, 4, 16, 1 << 20]))))
        prods = [int(v) for v in rng.integers(-scale, scale + 1, k)]
        sign = 1 if i % 2 else -1
        if i % 3 == 0:  # one sign: a run to the limit
            prods = [abs(v) * sign for v in prods]
        bmax = min(amax, (1 << (bias_bits - 1)) - 1)
        bias = int(rng.integers(-bmax - 1, bmax + 1)) if i % 4 == 1 else \
            int(rng.choice([bmax, -bmax - 1, 0, sign * (bmax - int(rng.integers(0, 1 << 16)))]))
        acc = _start(bias, acc_bits, sat, bias_first)
        col = cnt = 0
        exact = bias if bias_first else 0
        out = False
        for p in prods:
            acc, col, cnt = _step(acc, col, cnt, p, acc_bits, sat, ws, rows)
            exact += p
            out |= not -amax - 1 <= exact <= amax
        acc = _finish(acc, col, cnt, bias, acc_bits, sat, ws, bias_first)
        out |= not bias_first and not -amax - 1 <= exact + bias <= amax
        overflows += out
        steps = [dict(p=p, kfirst=int(j == 0), klast=int(j == k - 1),
                      cfirst=int(j % rows == 0), clast=int(j % rows == rows - 1 or j == k - 1))
                 for j, p in enumerate(prods)]
        cases.append(dict(bias=bias, steps=steps, expected=int(acc)))
    return cases, overflows


@pytest.mark.parametrize("acc_bits, sat, ws, bias_first, prod_bits, bias_bits", [
    (16, True, False, True, 17, 32),    # the narrow 4-bit config's accumulator
    (16, False, True, False, 17, 32),
    (24, True, True, True, 17, 32),     # narrow-acc-24
    (32, False, False, True, 17, 32),   # tflite-int8
    (32, True, False, False, 17, 32),
    (48, True, True, False, 25, 64),
    (64, False, False, True, 25, 64),   # tflite-16x8: int16 x int8 products, int64 bias
    (64, True, True, True, 25, 64),
], ids=lambda v: str(v))
def test_pe_step_matches_the_accumulator_model(tmp_path, acc_bits, sat, ws, bias_first,
                                               prod_bits, bias_bits):
    cases, overflows = _pe_cases(acc_bits, sat, ws, bias_first, prod_bits, bias_bits,
                                 seed=acc_bits * 8 + sat * 4 + ws * 2 + bias_first)
    assert overflows > 10, "the cases must leave the accumulator's range"
    got = _run_unit("hwsim_pe", "pe_unit",
                    {"ACC_BITS": acc_bits, "SATURATE": int(sat), "BIAS_FIRST": int(bias_first),
                     "WEIGHT_STATIONARY": int(ws), "PROD_BITS": prod_bits,
                     "BIAS_BITS": bias_bits}, cases, tmp_path)
    _check(cases, got)


# ---- SUB and MUL on the ADD lane -----------------------------------------------------------------
def _sub_mul_cases(op: str, in_bits: int, seed: int) -> list[dict]:
    """Random and edge cases of SUB (op 1) or MUL (op 2) with the expected value from the
    engine's own kernels (hwsim.kernels.elementwise._add_sub_general, _mul) on one element,
    with an int32 clamp."""
    from hwsim.arith import quantize_multiplier, quantize_multiplier_smaller_than_one_exp
    from hwsim.kernels.elementwise import _add_sub_general, _mul
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    edges = [lo, lo + 1, -1, 0, 1, hi - 1, hi]
    cases = []
    for i in range(500):
        single = bool(rng.random() < 0.25)
        a, b = (int(v) for v in rng.integers(lo, hi + 1, 2))
        if i < len(edges) ** 2:  # every pair of edge values first
            a, b = edges[i // len(edges)], edges[i % len(edges)]
        off1, off2 = (int(v) for v in rng.integers(-127, 129, 2)) if in_bits == 8 else (0, 0)
        if i % 7 == 0 and in_bits == 8:
            off1, off2 = 128, -127                       # the zero points' extremes
        zo = int(rng.integers(-128, 128))
        c = dict(a=a, b=b, input1_offset=off1, input2_offset=off2, single=int(single),
                 output_offset=zo, act_min=INT32_MIN, act_max=INT32_MAX)
        out = np.zeros(1, np.int64)
        x1, x2 = np.array([a], np.int64), np.array([b], np.int64)
        if op == "SUB":
            ls = 20 if in_bits == 8 else 15
            s1, s2 = (float(10.0 ** rng.uniform(-3, -1)) for _ in range(2))
            twice = 2.0 * max(s1, s2)
            real_out = twice / ((1 << ls) * float(10.0 ** rng.uniform(-3, -0.5)))
            if not 0.0 < real_out < 1.0:
                continue
            m1, e1 = quantize_multiplier_smaller_than_one_exp(s1 / twice, single)
            m2, e2 = quantize_multiplier_smaller_than_one_exp(s2 / twice, single)
            mo, eo = quantize_multiplier_smaller_than_one_exp(real_out, single)
            _add_sub_general(x1, x2, out, True, np.int64(off1), np.int64(off2), np.int64(ls),
                             np.int64(m1), np.int64(e1), np.int64(m2), np.int64(e2),
                             np.int64(mo), np.int64(eo), np.int64(zo), np.int64(INT32_MIN),
                             np.int64(INT32_MAX), single)
            c.update(op=1, left_shift=ls, input1_multiplier=m1, input1_shift=e1,
                     input2_multiplier=m2, input2_shift=e2, output_multiplier=mo,
                     output_shift=eo)
        else:
            real = float(10.0 ** rng.uniform(-6, 0.5 if i % 5 else 3))
            mo, eo = quantize_multiplier(real, single)
            if not -31 <= eo <= (30 if single else 31):
                continue
            _mul(x1, x2, out, np.int64(off1), np.int64(off2), np.int64(mo), np.int64(eo),
                 np.int64(zo), np.int64(INT32_MIN), np.int64(INT32_MAX), single)
            c.update(op=2, left_shift=0, input1_multiplier=0, input1_shift=0,
                     input2_multiplier=0, input2_shift=0, output_multiplier=mo, output_shift=eo)
        c["expected"] = int(out[0])
        cases.append(c)
    return cases


@pytest.mark.parametrize("op, in_bits", [("SUB", 8), ("SUB", 16), ("MUL", 8), ("MUL", 16)])
def test_add_lane_sub_and_mul_match_the_engine_kernels(tmp_path, op, in_bits):
    cases = _sub_mul_cases(op, in_bits, seed=30 + in_bits + len(op))
    assert len(cases) > 300
    got = _run_unit("hwsim_add_lane", "add_unit", {"IN_BITS": in_bits, "OUT_BITS": 32}, cases,
                    tmp_path)
    _check(cases, got)


# ---- the activation table unit -------------------------------------------------------------------
def units_graph(seed: int = 11, shape=(1, 6, 5, 12)):
    """A network of the element units: CONV, then LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, SUB,
    RELU6, MUL, a MAXIMUM and a MINIMUM with constants that nothing absorbs (their input has
    several readers, or is not an array layer with a clamp), ADD, MEAN over H and W; 12
    channels by default (words of 8 lanes end part-way). Returns (tflite bytes, an input)."""
    from hwsim.frontends.builder import GraphBuilder
    rng = np.random.default_rng(seed)
    b = GraphBuilder("rtl_units")
    i8, shp = np.int8, tuple(shape)
    c = shp[3]
    x = b.input("x", shp, i8, scale=0.05, zero_point=-3)
    w = rng.integers(-127, 128, (c, 3, 3, c)).astype(np.int8)
    ws = (0.003 * rng.uniform(0.7, 1.3, c)).astype(np.float32)
    c0 = b.activation("conv", shp, i8, scale=0.06, zero_point=4)
    b.op("CONV_2D", [x, b.const("w", w, scales=ws, zero_points=np.zeros(c, np.int64)),
                     b.const("b", rng.integers(-2000, 2000, c).astype(np.int32),
                             scales=(np.float32(0.05) * ws).astype(np.float32),
                             zero_points=np.zeros(c, np.int64))], [c0], 3,
         padding="SAME", stride_w=1, stride_h=1, dilation_w_factor=1, dilation_h_factor=1,
         fused_activation_function="NONE")

    def unary(op, name, src, scale, zp, **attrs):
        y = b.activation(name, shp, i8, scale=scale, zero_point=zp)
        b.op(op, [src], [y], **attrs)
        return y

    l1 = unary("LEAKY_RELU", "leaky", c0, 0.04, -20, alpha=0.1)
    g2 = unary("LOGISTIC", "logistic", l1, 1.0 / 256, -128)
    t3 = unary("TANH", "tanh", c0, 1.0 / 128, 0)
    h4 = unary("HARD_SWISH", "hard_swish", c0, 0.05, -10)
    s5 = b.activation("sub", shp, i8, scale=0.01, zero_point=6)
    b.op("SUB", [g2, t3], [s5], 2, fused_activation_function="NONE")
    r6 = unary("RELU6", "relu6", s5, 0.02, -100)
    m7 = b.activation("mul", shp, i8, scale=0.03, zero_point=-1)
    b.op("MUL", [r6, h4], [m7], 2, fused_activation_function="NONE")
    mx8 = b.activation("maximum", shp, i8, scale=0.06, zero_point=4)
    b.op("MAXIMUM", [c0, b.const("lo", np.array([-20], np.int8), scales=np.float32(0.06),
                                 zero_points=4)], [mx8])
    mn9 = b.activation("minimum", shp, i8, scale=0.06, zero_point=4)
    b.op("MINIMUM", [mx8, b.const("hi", np.array([50], np.int8), scales=np.float32(0.06),
                                  zero_points=4)], [mn9])
    a10 = b.activation("add", shp, i8, scale=0.05, zero_point=2)
    b.op("ADD", [mn9, m7], [a10], 2, fused_activation_function="NONE")
    y = b.activation("mean", (shp[0], c), i8, scale=0.02, zero_point=-5)
    b.op("MEAN", [a10, b.const("axes", np.array([1, 2], np.int32))], [y], keep_dims=False)
    b.output(y)
    xs = rng.integers(-128, 128, shp).astype(np.int8)
    xs.reshape(-1)[:4] = [-128, 127, -128, 127]
    return b.tflite(), xs


def _table_layers(tmp_path):
    """The lowered layers of units_graph that the table unit runs, with their input shape."""
    import hwsim
    from hwsim.vocab import TABLE_OPS
    p = tmp_path / "units.tflite"
    p.write_bytes(units_graph()[0])
    prog = hwsim.load(p).program
    return [(layer, prog.tensors[layer.inputs[0]].shape) for layer in prog.layers
            if layer.op in TABLE_OPS]


@pytest.mark.parametrize("in_bits, lanes, msb_first", [(8, 8, 0), (8, 4, 1), (4, 8, 0)])
def test_table_unit_looks_up_the_engines_table(tmp_path, in_bits, lanes, msb_first):
    """hwsim_lut loaded with each table of units_graph (computed by hwsim.kernels.table from
    the layer's own kernel) returns, lane by lane, the entry of every input code (all codes,
    then random words); 4-bit data uses the first 16 codes of the 4-bit range."""
    from hwsim.export.pack import pack_words
    from hwsim.kernels.table import table_codes, unary_table
    layers = _table_layers(tmp_path)
    assert {layer.op for layer, _ in layers} >= {"LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH",
                                                  "RELU6", "MAXIMUM", "MINIMUM"}
    rng = np.random.default_rng(in_bits * 10 + lanes)
    wl = dict(elem_bits=8, signed=True, lanes_per_word=lanes, word_bits=64,
              lane_order="msb_first" if msb_first else "lsb_first")
    al = dict(elem_bits=8, signed=True, lanes_per_word=8, word_bits=64, lane_order="lsb_first")
    cases = []
    for layer, shape in layers:
        table = unary_table(layer, shape, np.int8, in_bits, True)
        codes = table_codes(in_bits, True)
        x = np.concatenate([codes, rng.choice(codes, 8 * 40)])
        x = np.concatenate([x, np.zeros(-len(x) % 8, np.int64)])
        expected = table[x - codes[0]]
        cases.append(dict(op=layer.op,
                          table_words=[int(v) for v in pack_words(
                              expected_table_bytes(table), **wl)],
                          words=[int(v) for v in pack_words(x, **al)],
                          expected=[int(v) for v in pack_words(
                              expected.astype(np.int8), **al)]))
    got = _run_unit("hwsim_lut", "lut_unit",
                    {"IN_BITS": in_bits, "OUT_BITS": 8, "L": 8, "EB": 8, "WGT_W": 64,
                     "WGT_L": lanes, "WGT_EB": 8, "WGT_MSB_FIRST": msb_first}, cases, tmp_path)
    _check(cases, got)


def expected_table_bytes(table: np.ndarray) -> np.ndarray:
    """Table entries as the weight memory's int8 lanes hold them (the output code's low byte)."""
    return (np.asarray(table, np.int64) & 0xFF).astype(np.uint8).view(np.int8)


# ---- the element units in a network: export, then co-simulation in chain mode ---------------------
@pytest.fixture(scope="module")
def units_export(tmp_path_factory):
    """units_graph exported for tflite-int8 (every layer on the array)."""
    from hwsim.export import export
    d = tmp_path_factory.mktemp("units")
    model, x = units_graph()
    (d / "units.tflite").write_bytes(model)
    np.save(d / "x.npy", x)
    export(d / "units.tflite", "tflite-int8", [d / "x.npy"], d / "export", formats=("hex",))
    return d / "export"


def test_element_units_are_placed_on_the_array_with_their_tables(units_export):
    import yaml
    man = yaml.safe_load((units_export / "manifest.yaml").read_text())
    by_op = {L["op"]: L for L in man["layers"]}
    for op in ("LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH", "RELU6", "MAXIMUM", "MINIMUM"):
        L = by_op[op]
        assert not L["host"] and L.get("placement", "array") == "array", L
        assert L["accel_op"] == "TABLE" and L["memory"]["table"]["words"] == 32  # 256 / 8 lanes
    assert {by_op[op]["accel_op"] for op in ("SUB", "MUL", "MEAN")} == {"SUB", "MUL", "MEAN"}
    assert not any(L["host"] for L in man["layers"]) and man["exact"]


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_element_units_bit_exact_in_chain_mode(units_export, sim):
    """Every layer of units_graph on the RTL back to back (chain mode): the tables, SUB, MUL,
    ADD and MEAN reproduce hwsim's outputs bit for bit; cycles within 10 % of the model."""
    from hwsim.cosim import run_cosim
    reason = cosim.simulator_available(sim)
    if reason:
        pytest.skip(reason)
    rep = run_cosim(units_export, sim, mode="chain")
    assert rep.error is None and not rep.file_problems, rep.error
    ran = [r for r in rep.layers if r["status"] != "host"]
    assert [r["op"] for r in ran] == ["CONV_2D", "LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH",
                                      "SUB", "RELU6", "MUL", "MAXIMUM", "MINIMUM", "ADD",
                                      "MEAN"], rep.table()
    for r in ran:
        assert r["status"] == "ok" and r["output"]["mismatches"] == 0, rep.table()
        assert r["output"]["elements"] > 0
    assert rep.ok
    # every layer within 10 % of the model, which counts the units' fixed latencies (9 cycles
    # word by word, 11 for the pool walk) and MEAN's 12 channels in 8-lane words (every other
    # pixel's first lane group straddles two words: 75 reads, not 60); docs/cosim.md
    assert_cycles_match_the_model(rep)


# ---- RESIZE_NEAREST_NEIGHBOR as address generation ------------------------------------------------
def resize_graph(seed: int = 12):
    """Three RESIZE_NEAREST_NEIGHBOR in a row on 16 channels: x2 / 13/7 up (default), a
    half-pixel-centers resize to 7 x 20, an align-corners one down to 4 x 5."""
    from hwsim.frontends.builder import GraphBuilder
    rng = np.random.default_rng(seed)
    b = GraphBuilder("rtl_resize")
    q = dict(scale=0.05, zero_point=-3)
    x = b.input("x", (1, 5, 7, 16), np.int8, **q)
    t = x
    for name, (h, w), attrs in (("up", (10, 13), {}),
                                ("hpc", (7, 20), {"half_pixel_centers": True}),
                                ("ac", (4, 5), {"align_corners": True})):
        y = b.activation(name, (1, h, w, 16), np.int8, **q)
        b.op("RESIZE_NEAREST_NEIGHBOR", [t, b.const(f"{name}/size", np.array([h, w], np.int32))],
             [y], 3, align_corners=attrs.get("align_corners", False),
             half_pixel_centers=attrs.get("half_pixel_centers", False))
        t = y
    b.output(t)
    return b.tflite(), rng.integers(-128, 128, (1, 5, 7, 16)).astype(np.int8)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_resize_nearest_is_address_generation_bit_exact(tmp_path, sim):
    """Each RESIZE_NEAREST_NEIGHBOR on the array (accel op RESIZE, its out_h + out_w source
    indices in the weight memory) copies exactly the pixels the engine's kernel picks, in
    chain mode; cycles within 10 % of the model (the index words, the wait for the last one,
    one cycle per lane group and the pool unit's fixed latency)."""
    import yaml

    from hwsim.cosim import run_cosim
    from hwsim.export import export
    reason = cosim.simulator_available(sim)
    if reason:
        pytest.skip(reason)
    model, x = resize_graph()
    (tmp_path / "r.tflite").write_bytes(model)
    np.save(tmp_path / "x.npy", x)
    export(tmp_path / "r.tflite", "tflite-int8", [tmp_path / "x.npy"], tmp_path / "e",
           formats=("hex",))
    man = yaml.safe_load((tmp_path / "e" / "manifest.yaml").read_text())
    assert [L["accel_op"] for L in man["layers"]] == ["RESIZE"] * 3 and man["exact"]
    assert [L["memory"]["table"]["entries"] for L in man["layers"]] == [23, 27, 9]
    rep = run_cosim(tmp_path / "e", sim, mode="chain")
    assert rep.error is None and not rep.file_problems, rep.error
    assert [r["status"] for r in rep.layers] == ["ok"] * 3, rep.table()
    assert all(r["output"]["mismatches"] == 0 and r["output"]["elements"] > 0
               for r in rep.layers) and rep.ok
    assert_cycles_match_the_model(rep)  # index words + 3 + a cycle per lane group + 11


def test_int16_mul_sub_and_mean_bit_exact_in_chain_mode(tmp_path):
    """The 16-bit lanes (tflite-16x8): MUL and SUB of two int16 tensors (zero points 0, the
    general path) and MEAN over H and W, extreme inputs included, in chain mode."""
    from hwsim.cosim import run_cosim
    from hwsim.export import export
    from hwsim.frontends.builder import GraphBuilder
    sim = "verilator" if cosim.simulator_available("verilator") is None else "icarus"
    reason = cosim.simulator_available(sim)
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(5)
    b = GraphBuilder("i16units")
    shp = (1, 6, 5, 12)
    x = b.input("x", shp, np.int16, scale=0.001, zero_point=0)
    y = b.input("y", shp, np.int16, scale=0.002, zero_point=0)
    m = b.activation("mul", shp, np.int16, scale=0.0005, zero_point=0)
    b.op("MUL", [x, y], [m], 2, fused_activation_function="NONE")
    s = b.activation("sub", shp, np.int16, scale=0.002, zero_point=0)
    b.op("SUB", [m, x], [s], 2, fused_activation_function="NONE")
    mean = b.activation("mean", (1, 12), np.int16, scale=0.001, zero_point=0)
    b.op("MEAN", [s, b.const("axes", np.array([1, 2], np.int32))], [mean], keep_dims=False)
    b.output(mean)
    (tmp_path / "m.tflite").write_bytes(b.tflite())
    xs = [rng.integers(-32768, 32768, shp).astype(np.int16) for _ in range(2)]
    xs[0].reshape(-1)[:4] = [-32768, 32767, 0, -1]
    xs[1].reshape(-1)[:4] = [-32768, -32768, 32767, 32767]
    np.save(tmp_path / "x.npy", xs[0])
    np.save(tmp_path / "y.npy", xs[1])
    export(tmp_path / "m.tflite", "tflite-16x8", [tmp_path / "x.npy", tmp_path / "y.npy"],
           tmp_path / "e", formats=("hex",))
    rep = run_cosim(tmp_path / "e", sim, mode="chain")
    assert rep.error is None and not rep.file_problems, rep.error
    assert [(r["op"], r["status"]) for r in rep.layers] == \
        [("MUL", "ok"), ("SUB", "ok"), ("MEAN", "ok")], rep.table()
    assert all(r["output"]["mismatches"] == 0 and r["output"]["elements"] > 0
               for r in rep.layers) and rep.ok
    assert_cycles_match_the_model(rep)  # 16-bit lanes: 4 a word, 12 channels in 3 groups
