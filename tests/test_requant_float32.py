"""The float32 requant scheme (issue 12 item 3): ``requant.scheme: float32``, rounding
half_even, ``saturate(round_half_even(float32(acc) * float32 scale) + zp)`` as ONNX Runtime's
MlasRequantizeOutput computes it; the onnxruntime-int8 preset; legalization; export of the
scale words. The reference RTL's float32 unit: tests/test_rtl_float32_requant.py."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.frontends.builder import GraphBuilder
from hwsim.hw.config import ConfigError, config_from_dict, load_config
from hwsim.lower.context import derive_requant, float32_scale_bits
from hwsim.kernels.requant import requantize
from hwsim.params import RequantParams
from hwsim.vocab import RequantScheme, Rounding


def _plain(acc, scale, zp, lo, hi):
    """The definition, element by element in Python floats (float32 product via numpy)."""
    out = []
    for a, s in zip(acc.reshape(-1), np.broadcast_to(scale, acc.shape).reshape(-1)):
        p = float(np.float32(np.float32(a) * np.float32(s)))
        r = round(p)  # Python's round: half to even
        out.append(min(max(r + zp, lo), hi))
    return np.array(out).reshape(acc.shape)


def _rq(scales, zp=3, lo=-128, hi=127):
    d = derive_requant(np.asarray(scales, np.float64), "float32")
    return RequantParams(**d._asdict(), out_zp=zp, act_min=lo, act_max=hi)


def test_scale_bits_round_trip_and_rounding():
    reals = np.array([0.5, 1 / 3, 0.0123456789, 2.0**-20])
    bits = float32_scale_bits(reals)
    back = bits.astype(np.uint32).view(np.float32)
    assert np.array_equal(back, reals.astype(np.float32))
    d = derive_requant(reals, "float32")
    assert d.scheme == RequantScheme.float32 and d.rounding == Rounding.half_even
    assert not np.any(d.shift)
    with pytest.raises(ValueError, match="finite"):
        float32_scale_bits([float("inf")])


def test_requantize_ties_go_to_even():
    acc = np.array([[1, 3, 5, -1, -3, -5, 7, 0]], np.int32)  # x 0.5: every value a tie
    out = requantize(acc, _rq([0.5], zp=0), np.int8)
    assert out.tolist() == [[0, 2, 2, 0, -2, -2, 4, 0]]


@pytest.mark.parametrize("per_channel", [False, True])
def test_requantize_equals_the_definition(per_channel):
    rng = np.random.default_rng(3)
    c = 8
    acc = rng.integers(-2**31, 2**31, (50, c)).astype(np.int32)
    acc[0] = [-2**31, 2**31 - 1, 0, 1, -1, 2**24 + 1, -(2**24 + 1), 12345]
    scales = rng.uniform(1e-9, 1e-6, c if per_channel else 1)
    rq = _rq(scales, zp=-5)
    got = requantize(acc, rq, np.int8)
    f32 = np.asarray(scales).astype(np.float32)
    assert np.array_equal(got, _plain(acc, f32, -5, -128, 127))


def test_config_and_preset():
    cfg = load_config("onnxruntime-int8")
    assert cfg.requant.scheme == "float32" and cfg.requant.rounding == "half_even"
    with pytest.raises(ConfigError, match="requant.rounding: half_away_from_zero with "
                                          "requant.scheme float32"):
        config_from_dict({**cfg.to_dict(), "requant": {**cfg.to_dict()["requant"],
                                                        "rounding": "half_away_from_zero"}})


def _fc_model(rng, units=6, depth=20):
    b = GraphBuilder("fc")
    x = b.input("x", (1, depth), np.int8, 0.02, -3)
    s_w = rng.uniform(0.002, 0.02, units).astype(np.float32)
    w = b.const("w", rng.integers(-127, 128, (units, depth)).astype(np.int8), s_w,
                np.zeros(units, np.int64), 0)
    bias = b.const("b", rng.integers(-3000, 3000, units).astype(np.int32),
                   (np.float32(0.02) * s_w).astype(np.float32), np.zeros(units, np.int64), 0)
    y = b.activation("y", (1, units), np.int8, 0.1, 4)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], version=4, fused_activation_function="NONE",
         weights_format="DEFAULT", keep_num_dims=False)
    b.output(y)
    return b.build(), s_w


def test_legalization_strict_refuses_tflite_arithmetic():
    from hwsim.hw import map_network
    from hwsim.ir import HwsimError
    g, _ = _fc_model(np.random.default_rng(0))
    with pytest.raises(HwsimError, match="requant scheme float32 cannot represent") as e:
        map_network(g, "onnxruntime-int8", legalize="strict")
    assert "no float32 requant unit" not in str(e.value)  # the reference RTL has one


def test_hardware_program_computes_the_float32_unit():
    from hwsim.hw import map_network
    rng = np.random.default_rng(1)
    g, s_w = _fc_model(rng)
    x = rng.integers(-128, 128, (1, 20)).astype(np.int8)
    hw = map_network(g, "onnxruntime-int8", legalize="approx")
    got = hw.run([x]).outputs[0]
    w = g.tensors[1].data.astype(np.int64)
    bias = g.tensors[2].data.astype(np.int64)
    acc = (x.astype(np.int64) + 3) @ w.T + bias
    real = np.float64(np.float32(0.02)) * s_w.astype(np.float64) / np.float64(np.float32(0.1))
    want = _plain(acc, real.astype(np.float32), 4, -128, 127)
    assert np.array_equal(got.astype(np.int64), want)
    row = [r for r in hw.report if r.op == "FULLY_CONNECTED"][0]
    assert not row.exact and not any("no float32 requant unit" in m for m in row.reasons)


def test_export_writes_the_scale_words(tmp_path):
    import yaml

    from hwsim.export.exporter import export
    from hwsim.frontends.tflite_writer import serialize_tflite
    from hwsim.hwif.requant import decode_requant_word
    rng = np.random.default_rng(2)
    g, s_w = _fc_model(rng)
    p = tmp_path / "fc.tflite"
    p.write_bytes(serialize_tflite(g))
    x = rng.integers(-128, 128, (1, 20)).astype(np.int8)
    res = export(p, "onnxruntime-int8", [x], tmp_path / "e", legalize="approx")
    man = yaml.safe_load((tmp_path / "e" / "manifest.yaml").read_text())
    rq = man["layers"][0]["quantization"]["requant"]
    assert rq["scheme"] == "float32"
    real = (np.float64(np.float32(0.02)) * s_w.astype(np.float64)
            / np.float64(np.float32(0.1))).astype(np.float32)
    assert np.array_equal(np.float32(rq["scale"]), real)
    import h5py
    with h5py.File(tmp_path / "e" / "vectors.h5", "r") as h:
        words = h["layers/00_fully_connected/requant_words"][()]
    scales = [decode_requant_word(int(wd), int(RequantScheme.float32))["scale"] for wd in words]
    assert np.array_equal(np.float32(scales), real)
    assert res.inexact  # approx: the FC layer is not TFLite's arithmetic


def test_onnx_qdq_model_exports_exactly_with_onnxruntime_int8(tmp_path, capsys):
    """The digits CNN quantized by onnxruntime.quantization (QDQ, int8, per channel): its
    int8 Conv/Gemm layers run on the array with the float32 unit, exactly (strict); the
    other ONNX Runtime layers run on the host; the export's FC output vector is the engine's
    tensor, and the engine's output is ORT's. tflite-int8 refuses it (strict)."""
    import h5py
    import onnx
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the ONNX oracle")
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)

    import hwsim
    from hwsim import cli
    from conftest import DIGITS_DIR
    import os
    pre, q = str(tmp_path / "digits.onnx"), str(tmp_path / "q.onnx")
    quant_pre_process(onnx.load(os.path.join(DIGITS_DIR, "digits_cnn.onnx")), pre,
                      skip_symbolic_shape=True)
    name = onnx.load(pre).graph.input[0].name
    calib = np.random.default_rng(0).uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{name: c[None]} for c in calib])

        def get_next(self):
            return next(self.it, None)

    quantize_static(pre, q, Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    x = calib[:1]
    xp = tmp_path / "x.npy"
    np.save(xp, x)
    out = tmp_path / "e"
    assert cli.main(["export", q, "--config", "onnxruntime-int8", "--input", str(xp),
                     "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "exact)" in cap.out and "requant unit" not in cap.err  # the RTL has the unit
    assert "FULLY_CONNECTED  FC" in cap.out and "CONV_2D          CONV" in cap.out
    net = hwsim.load(q)
    res = net.run([x], trace=True)
    sess = ort.InferenceSession(q, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {name: x})[0]
    assert np.array_equal(res.outputs[0], ref)
    fc = [L for L in net.program.layers if L.op == "FULLY_CONNECTED"][0]
    with h5py.File(out / "vectors.h5", "r") as h:
        key = [k for k in h["layers"] if k.endswith("fully_connected")][0]
        got = h[f"layers/{key}/output"][()]
    assert np.array_equal(got.reshape(-1), res.trace.tensors[fc.outputs[0]].reshape(-1))
    assert cli.main(["export", q, "--config", "tflite-int8", "--input", str(xp),
                     "--out", str(tmp_path / "e2")]) == 2
    assert "cannot represent the model's float32 requantization" in capsys.readouterr().err
