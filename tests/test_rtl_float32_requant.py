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
    # accumulators wider than int32 (a config may pair float32 with a 48..64-bit accumulator):
    # int64 -> float32 rounds once (numpy's cast is correctly rounded, also where a rounding
    # through double would differ: 2^60 + 2^36 + 1)
    for a in ((1 << 53) + (1 << 29) + 1, (1 << 60) + (1 << 36) + 1, -(1 << 63), (1 << 63) - 1,
              *(int(v) for v in rng.integers(-(1 << 62), 1 << 62, 30))):
        for s in (2.0 ** -40, 2.0 ** -50 * 1.7, 2.0 ** -33 * 1.3):
            add(a, _bits(s), int(rng.integers(-128, 128)))
    add((1 << 60) + (1 << 36) + 1, _bits(2.0 ** -37))  # 2^23 + 1 (through double: 2^23)
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
    # subnormal scales (finite and positive: lowering takes them) and, beyond its domain, a zero
    # and negative scales (the sign bit is honoured as IEEE does)
    for bits in (1, 0x007FFFFF, 0, _bits(-0.37), _bits(-1e-10), _bits(-3e9)):
        for a in (INT32_MAX, INT32_MIN, 12345, -7, 3):
            add(a, bits, -9)
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
    from hwsim.arith import requant_float32_half_even
    cases = _float32_cases()
    assert {c["scheme"] for c in cases} == {6}
    # the engine's values are hwsim.arith's definition, + zero point, clamped
    acc = np.array([c["acc"] for c in cases], np.int64)
    scale = np.array([c["word"] & 0xFFFFFFFF for c in cases], np.uint32).view(np.float32)
    with np.errstate(over="ignore"):
        v = requant_float32_half_even(acc, scale)
    lo, hi, zp = (np.array([c[k] for c in cases], np.int64)
                  for k in ("act_min", "act_max", "output_offset"))
    assert np.array_equal(np.clip(v + zp, lo, hi), [c["expected"] for c in cases])
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
    assert by[((1 << 60) + (1 << 36) + 1, _bits(2.0 ** -37), 0, INT32_MIN)] == (1 << 23) + 1


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


# ---- a model of ONNX Runtime's arithmetic, exported for onnxruntime-int8, on the RTL ----------
def _qoperator_model(seed: int = 10):
    """int8 QOperator model (QLinearConv 3 -> 8, depthwise QLinearConv stride 2, Reshape,
    QLinearMatMul 128 -> 10), seeded, built with onnx.helper. Weights lie in [-64, 64], so
    ORT's u8 x s8 kernels without VNNI (vpmaddubsw, which saturates int16 pair sums:
    255 * 64 * 2 = 32,640 < 32,767) compute the exact sums too. Per-channel weight scales pick
    the float32 unit's edges in the first layer: channels 1 and 2 have biases beyond 2^25
    (int -> float32 rounds) with a scale of 1.5e-6; channel 3 has the scale 0.5 exactly (one
    tap of weight 1: odd accumulators are rint ties); channel 4 saturates. (Through an int8
    output the conversion's tie rule is all but invisible: a 1-ulp change of float32(acc) moves
    the product by ~6e-6. The unit vectors above, with 32-bit outputs, are where it shows.)"""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    f32 = np.float32
    w1 = rng.integers(-64, 65, (8, 3, 3, 3)).astype(np.int8)
    w1_s = rng.uniform(0.002, 0.02, 8).astype(f32)
    b1 = rng.integers(-2000, 2000, 8).astype(np.int32)
    w1_s[1:3] = f32(3e-6)
    b1[1:3] = ((1 << 25) + 12345, -(1 << 25) - 777)
    w1[3] = 0
    w1[3, 1, 1, 1] = 1
    w1_s[3], b1[3] = f32(1.0), 1  # scale 0.05f * 1 / 0.1f = 0.5 exactly (0.1f = 2 * 0.05f)
    b1[4] = 1 << 28
    inits = dict(
        x_s=f32(0.05), x_zp=np.int8(-3), y1_s=f32(0.1), y1_zp=np.int8(5), y2_s=f32(0.2),
        y2_zp=np.int8(-7), y3_s=f32(0.25), y3_zp=np.int8(2), w1=w1, w1_s=w1_s,
        w1_zp=np.zeros(8, np.int8), b1=b1,
        w2=rng.integers(-64, 65, (8, 1, 3, 3)).astype(np.int8),
        w2_s=rng.uniform(0.005, 0.03, 8).astype(f32), w2_zp=np.zeros(8, np.int8),
        b2=rng.integers(-500, 500, 8).astype(np.int32),
        wm=rng.integers(-64, 65, (128, 10)).astype(np.int8), wm_s=f32(0.01), wm_zp=np.int8(0),
        shp=np.array([1, 128], np.int64))
    N = helper.make_node
    nodes = [
        N("QLinearConv", ["x", "x_s", "x_zp", "w1", "w1_s", "w1_zp", "y1_s", "y1_zp", "b1"],
          ["c1"], pads=[1, 1, 1, 1]),
        N("QLinearConv", ["c1", "y1_s", "y1_zp", "w2", "w2_s", "w2_zp", "y2_s", "y2_zp", "b2"],
          ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=8),
        N("Reshape", ["c2", "shp"], ["f"]),
        N("QLinearMatMul", ["f", "y2_s", "y2_zp", "wm", "wm_s", "wm_zp", "y3_s", "y3_zp"],
          ["y"])]
    g = helper.make_graph(
        nodes, "float32_requant",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 10])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m)
    return m


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The model exported with `--config onnxruntime-int8` (strict legalization) for a seeded
    int8 input: the folder, the model's path and the input."""
    import onnx

    from hwsim.cli import main
    d = tmp_path_factory.mktemp("ort_int8")
    onnx.save(_qoperator_model(), d / "m.onnx")
    x = np.random.default_rng(11).integers(-128, 128, (1, 3, 8, 8)).astype(np.int8)
    np.save(d / "x.npy", x)
    assert main(["export", str(d / "m.onnx"), "--config", "onnxruntime-int8", "--input",
                 str(d / "x.npy"), "--out", str(d / "D"), "--quiet"]) == 0
    return d / "D", d / "m.onnx", x


def _layer(folder, name):
    import h5py
    with h5py.File(folder / "vectors.h5", "r") as h:
        return {k: h[f"layers/{name}/{k}"][()] for k in ("acc", "output", "requant_words")}


def test_the_export_reaches_the_float32_units_edges(exported):
    """What the co-simulation below runs through the float32 unit: the first layer's
    accumulators beyond 2^24 (that the conversion to float32 rounds), rint ties, saturated
    outputs."""
    import yaml
    folder, _, _ = exported
    man = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert man["exact"] and man["config"]["requant"]["scheme"] == "float32"
    array = [L for L in man["layers"] if L["placement"] == "array"]
    assert [L["op"] for L in array] == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    assert all(L["quantization"]["requant"]["scheme"] == "float32" for L in array)
    v = _layer(folder, "01_conv_2d")
    acc = v["acc"].reshape(-1, 8).astype(np.int64)
    scale = (v["requant_words"].astype(np.uint64) & 0xFFFFFFFF).astype(np.uint32) \
        .view(np.float32)
    assert scale[3] == np.float32(0.5)
    rounds = acc[:, 1:3].astype(np.float32).astype(np.int64) != acc[:, 1:3]
    assert rounds.sum() >= 40
    assert (acc[:, 3] % 2 != 0).sum() >= 10  # x.5 ties of rint
    assert np.all(v["output"].reshape(-1, 8)[:, 4] == 127)


def test_onnxruntime_int8_export_is_bit_exact_on_verilator_in_chain_mode(exported, capsys):
    from hwsim.cli import main
    from hwsim import cosim
    reason = cosim.simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    folder, _, _ = exported
    capsys.readouterr()
    assert main(["cosim", str(folder), "--sim", "verilator", "--mode", "chain"]) == 0
    report = capsys.readouterr().out
    rows = [r for r in (line.split() for line in report.splitlines()) if r and r[0].isdigit()]
    assert [r[1] for r in rows if r[2] == "OK"] == \
        ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    assert all(r[2] in ("OK", "HOST") for r in rows) and "PASS" in report


def test_a_rint_fault_in_the_float32_unit_is_caught_and_names_the_layer(exported, capsys):
    """HWSIM_FAULT_ROUNDING also truncates f_float32_round's rint: the first layer fails
    (Icarus: a small build)."""
    from hwsim.cli import main
    from hwsim import cosim
    reason = cosim.simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    folder, _, _ = exported
    capsys.readouterr()
    assert main(["cosim", str(folder), "--mode", "chain", "--fault", "rounding",
                 "--layers", "1"]) == 1
    report = capsys.readouterr().out
    row = next(r for r in (line.split() for line in report.splitlines()) if r and r[0] == "1")
    assert row[1:3] == ["CONV_2D", "MISMATCH"]


def test_onnxruntime_output_equals_the_exports_golden_output(exported):
    """ONNX Runtime (an independent oracle of the float32 requantization) on the same input
    gives the export's golden output."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the ONNX oracle")
    folder, model, x = exported
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    got = _layer(folder, "05_fully_connected")["output"].reshape(ref.shape)
    assert ref.dtype == np.int8 and np.array_equal(got, ref)
    # and the first layer's output, ORT's QLinearConv alone on that input
    import onnx
    m = onnx.load(model)
    m.graph.output[0].name = "c1"
    del m.graph.node[1:]
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    c1 = sess.run(None, {"x": x})[0]  # NCHW
    got1 = _layer(folder, "01_conv_2d")["output"].reshape(1, 8, 8, 8).transpose(0, 3, 1, 2)
    assert np.array_equal(got1, c1)
