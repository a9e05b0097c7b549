"""The TFLite cases a differential fuzz against BUILTIN_REF found (issue 12 item 5), each as a
regression case: hwsim computes what TFLite REF computes, or refuses in one line where TFLite
refuses the model or its result would depend on memory past a buffer.

* Weight zero points: FULLY_CONNECTED with per-tensor weights honours one
  (``(w - zp_w)(x - zp_in)``, int8 and 16x8); per-channel FULLY_CONNECTED and
  DEPTHWISE_CONV_2D ignore it; CONV_2D is refused by TFLite and by hwsim.
* 16x8 CONV_2D / FULLY_CONNECTED with an int32 bias: ``quantized_bias_type`` INT32 selects
  the int32 kernel; unset, TFLite reads the bias as int64 (past its buffer): refused.
  A bias type that contradicts quantized_bias_type, and 16x8 DEPTHWISE_CONV_2D with an int32
  bias, are refused as TFLite refuses them.
Cases the seeded fuzzer (tests/test_diff_fuzz.py) finds are added at the end.
"""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.frontends.builder import GraphBuilder
from oracle import hwsim_run, tflite_ref

INT32, INT64 = 2, 4  # TensorType codes of quantized_bias_type


def fc_model(dtype, w, w_zp, bias=None, bias_dtype=np.int32, per_channel=False, qbt=None,
             x_shape=(1, 2), x_zp=0):
    b = GraphBuilder("fc")
    x = b.input("x", x_shape, dtype, 1.0, x_zp)
    n = len(w)
    s = np.ones(n if per_channel else 1, np.float32)
    wt = b.const("w", np.array(w, np.int8), s, np.full(len(s), w_zp, np.int64), 0)
    ins = [x, wt]
    if bias is not None:
        ins.append(b.const("b", np.array(bias, bias_dtype), s, np.zeros(len(s), np.int64), 0))
    y = b.activation("y", (x_shape[0], n), dtype, 1.0, 0)
    attrs = dict(fused_activation_function="NONE", weights_format="DEFAULT", keep_num_dims=False)
    if qbt is not None:
        attrs["quantized_bias_type"] = qbt
    b.op("FULLY_CONNECTED", ins, [y], version=7 if dtype == np.int16 else 4, **attrs)
    b.output(y)
    return b.tflite()


def conv_model(op, dtype, w, w_zp, bias=None, bias_dtype=np.int32, qbt=None, per_channel=True):
    """A 1x1 CONV_2D (n output channels) or DEPTHWISE_CONV_2D (multiplier n) of a 1x1x1x1
    input, all scales 1."""
    b = GraphBuilder("conv")
    x = b.input("x", (1, 1, 1, 1), dtype, 1.0, 0)
    n = len(w)
    s = np.ones(n if per_channel else 1, np.float32)
    shape, axis = ((n, 1, 1, 1), 0) if op == "CONV_2D" else ((1, 1, 1, n), 3)
    wt = b.const("w", np.array(w, np.int8).reshape(shape), s, np.full(len(s), w_zp, np.int64),
                 axis)
    ins = [x, wt]
    if bias is not None:
        ins.append(b.const("b", np.array(bias, bias_dtype), s, np.zeros(len(s), np.int64), 0))
    y = b.activation("y", (1, 1, 1, n), dtype, 1.0, 0)
    attrs = dict(padding="VALID", stride_h=1, stride_w=1, dilation_h_factor=1,
                 dilation_w_factor=1, fused_activation_function="NONE")
    if op == "DEPTHWISE_CONV_2D":
        attrs["depth_multiplier"] = n
    if qbt is not None:
        attrs["quantized_bias_type"] = qbt
    b.op(op, ins, [y], version=4 if dtype == np.int16 else 3, **attrs)
    b.output(y)
    return b.tflite()


def x1(dtype, *v, shape=None):
    a = np.array(v, dtype)
    return a.reshape(shape or (1, len(v)))


def assert_equal_to_ref(model, x, want=None):
    ref = tflite_ref(model, x)[0]
    got = hwsim_run(model, x).outputs[0]
    assert got.dtype == ref.dtype and np.array_equal(got, ref), f"hwsim {got} vs REF {ref}"
    if want is not None:
        assert ref.reshape(-1).tolist() == want, f"REF gives {ref}: the case changed"


def assert_refused(model, x, *, ref_refuses: bool, match: str):
    import hwsim
    if ref_refuses:
        with pytest.raises(Exception, match="failed to prepare|Failed to allocate|ENSURE"):
            tflite_ref(model, x)
    with pytest.raises(hwsim.ModelError, match=match):
        hwsim_run(model, x)


# -- (a) weight zero points ---------------------------------------------------------------------
def test_fc_int8_per_tensor_weight_zero_point_is_honoured():
    """The issue's case: input [1, 2], weights [[10, 20]] with zero point 5 -> 35."""
    assert_equal_to_ref(fc_model(np.int8, [[10, 20]], 5), x1(np.int8, 1, 2), want=[35])


def test_fc_int8_weight_zero_point_with_input_zero_point_and_bias():
    model = fc_model(np.int8, [[10, 20, -128], [127, -7, 3]], -9, bias=[1000, -77], x_zp=-3,
                     x_shape=(2, 3))
    x = np.array([[1, 2, -128], [127, -128, 5]], np.int8)
    assert_equal_to_ref(model, x)


def test_fc_int8_weight_zero_point_random():
    rng = np.random.default_rng(12)
    for _ in range(5):
        w = rng.integers(-128, 128, (7, 19))
        model = fc_model(np.int8, w.tolist(), int(rng.integers(-128, 128)),
                         bias=rng.integers(-5000, 5000, 7).tolist(), x_shape=(3, 19),
                         x_zp=int(rng.integers(-128, 128)))
        assert_equal_to_ref(model, rng.integers(-128, 128, (3, 19)).astype(np.int8))


def test_fc_int16_per_tensor_weight_zero_point_is_honoured():
    assert_equal_to_ref(fc_model(np.int16, [[10, 20]], 5, bias=[7], bias_dtype=np.int64),
                        x1(np.int16, 1, 2), want=[42])


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_fc_per_channel_weight_zero_point_is_ignored(dtype):
    """The per-channel kernels never read weights_offset: [[10, 20], [1, 1]] . [1, 2]."""
    assert_equal_to_ref(fc_model(dtype, [[10, 20], [1, 1]], 5, per_channel=True,
                                 bias_dtype=np.int64 if dtype == np.int16 else np.int32),
                        x1(dtype, 1, 2), want=[50, 3])


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("per_channel", [True, False])
def test_depthwise_weight_zero_point_is_ignored(dtype, per_channel):
    """The issue's case: input 3, weight 10 with zero point 5 -> 30 (not 15)."""
    model = conv_model("DEPTHWISE_CONV_2D", dtype, [10], 5, per_channel=per_channel)
    assert_equal_to_ref(model, x1(dtype, 3, shape=(1, 1, 1, 1)), want=[30])


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_conv_weight_zero_point_is_refused_as_tflite_does(dtype):
    model = conv_model("CONV_2D", dtype, [10], 5, bias=[0],
                       bias_dtype=np.int64 if dtype == np.int16 else np.int32)
    assert_refused(model, x1(dtype, 3, shape=(1, 1, 1, 1)), ref_refuses=True,
                   match="CONV_2D requires weight zero points 0")


def test_fc_weight_zero_point_is_refused_on_the_accelerator(tmp_path):
    import hwsim
    from hwsim.hw import map_network
    p = tmp_path / "fc.tflite"
    p.write_bytes(fc_model(np.int8, [[10, 20]], 5))
    with pytest.raises(hwsim.HwsimError, match="no weight offset"):
        map_network(p, "tflite-int8")


def test_cli_export_of_a_weight_zero_point_fc_is_one_line(tmp_path, capsys):
    from hwsim import cli
    p, x = tmp_path / "fc.tflite", tmp_path / "x.npy"
    p.write_bytes(fc_model(np.int8, [[10, 20]], 5))
    np.save(x, x1(np.int8, 1, 2))
    assert cli.main(["export", str(p), "--input", str(x), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no weight offset" in err and "Traceback" not in err
    assert not (tmp_path / "e").exists()


# -- (b) 16x8 biases ----------------------------------------------------------------------------
X16 = x1(np.int16, 3, shape=(1, 1, 1, 1))


def test_conv16_int32_bias_with_quantized_bias_type_int32():
    model = conv_model("CONV_2D", np.int16, [1, 1], 0, bias=[100, 200], qbt=INT32)
    assert_equal_to_ref(model, X16, want=[103, 203])


def test_fc16_int32_bias_with_quantized_bias_type_int32():
    model = fc_model(np.int16, [[1], [1]], 0, bias=[100, 200], qbt=INT32, x_shape=(1, 1))
    assert_equal_to_ref(model, x1(np.int16, 3), want=[103, 203])


def test_fc16_int32_bias_overflowing_int32_wraps_as_tflite():
    """The int32 kernel's accumulator: bias 2^31 - 10 plus 3 * 5."""
    model = fc_model(np.int16, [[5]], 0, bias=[2**31 - 10], qbt=INT32, x_shape=(1, 1))
    assert_equal_to_ref(model, x1(np.int16, 3))


@pytest.mark.parametrize("op", ["CONV_2D", "FULLY_CONNECTED"])
def test_16x8_int32_bias_without_quantized_bias_type_is_refused(op):
    """TFLite reads the int32 bias as int64 (the issue's [103, 3] and [-32768, 3]): its
    result depends on the bytes after the bias buffer."""
    if op == "CONV_2D":
        model, x = conv_model(op, np.int16, [1, 1], 0, bias=[100, 200]), X16
    else:
        model, x = fc_model(np.int16, [[1], [1]], 0, bias=[100, 200], x_shape=(1, 1)), \
            x1(np.int16, 3)
    ref = tflite_ref(model, x)[0].reshape(-1).tolist()
    assert ref[1] != 203, f"TFLite now computes {ref}: revisit this refusal"
    assert_refused(model, x, ref_refuses=False, match="past the end of its buffer")


@pytest.mark.parametrize("bias_dtype,qbt", [(np.int32, INT64), (np.int64, INT32)])
def test_16x8_bias_type_contradicting_quantized_bias_type_is_refused(bias_dtype, qbt):
    model = conv_model("CONV_2D", np.int16, [1, 1], 0, bias=[100, 200], bias_dtype=bias_dtype,
                       qbt=qbt)
    assert_refused(model, X16, ref_refuses=True, match="quantized_bias_type says")


def test_16x8_int64_bias_with_quantized_bias_type_int64():
    model = conv_model("CONV_2D", np.int16, [1, 1], 0, bias=[100, 200], bias_dtype=np.int64,
                       qbt=INT64)
    assert_equal_to_ref(model, X16, want=[103, 203])


def test_depthwise16_int32_bias_is_refused_as_tflite_does():
    model = conv_model("DEPTHWISE_CONV_2D", np.int16, [1, 1], 0, bias=[100, 200])
    assert_refused(model, X16, ref_refuses=True, match="requires an int64 bias")


def test_cli_run_of_an_undefined_16x8_bias_is_one_line(tmp_path, capsys):
    from hwsim import cli
    p, x = tmp_path / "conv.tflite", tmp_path / "x.npy"
    p.write_bytes(conv_model("CONV_2D", np.int16, [1, 1], 0, bias=[100, 200]))
    np.save(x, X16)
    assert cli.main(["run", str(p), "--input", str(x), "--output", str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwsim: error: ") and err.count("\n") == 1
    assert "quantized_bias_type" in err and not (tmp_path / "y.npy").exists()


def test_tflm_semantics_follows_the_bias_tensor():
    """TFLM (fully_connected.cc) picks the int32 kernel from the bias tensor's type: the model
    TFLite's semantics refuses runs under semantics='tflm', as TFLM's interpreter runs it."""
    import os
    import tempfile

    import hwsim
    rt = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                             reason="tflite-micro is not installed (pip install -e .[dev])")
    model = fc_model(np.int16, [[1], [1]], 0, bias=[100, 200], x_shape=(1, 1))
    it = rt.Interpreter.from_bytes(model, arena_size=1 << 20)
    it.set_input(x1(np.int16, 3), 0)
    it.invoke()
    micro = np.array(it.get_output(0))
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.tflite")
        with open(p, "wb") as f:
            f.write(model)
        y = hwsim.load(p, semantics="tflm").run(x1(np.int16, 3)).outputs[0]
    assert np.array_equal(y, micro) and micro.reshape(-1).tolist() == [103, 203]
