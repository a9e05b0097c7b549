"""Quantized ONNX import (hwsim.frontends.onnx_quant -> hwsim.lower.onnxrt ->
hwsim.kernels.onnxrt) against onnxruntime's CPU execution provider, integer for integer.

The models are the bundled float examples quantized by ``onnxruntime.quantization
.quantize_static`` (after its recommended ``quant_pre_process``, which folds BatchNormalization
into the convolutions; for light_shufflenet the BN fold is done here): the digits CNN
(examples/digits), light_squeezenet and light_shufflenet (grouped and depthwise convs, channel
shuffle, Sum and Relu and one AveragePool that ORT runs in float32, QLinearConcat, QGemm) from
the onnx package's model zoo with random weights (tests/test_frontend_onnx.randomize_light),
in QDQ form
with int8 and with uint8 activations, per-channel and per-tensor weights, and in QOperator form.
On every input, hwsim's output equals ORT's (same dtype, same values) and so does every
intermediate tensor ORT can expose (each added to the ORT graph as an extra output).

One oracle case is named rather than mimicked: for light_squeezenet (and light_shufflenet) in
QDQ form with *int8* activations, ORT 1.x fuses only some of the Conv node groups into QLinearConv and runs the
others as float Conv between DequantizeLinear and QuantizeLinear (float32 sums in MLAS's order),
so a few elements of its output differ from any integer kernel. hwsim computes the QLinearConv
arithmetic there (docs/onnx.md); the test checks that hwsim on that QDQ model equals ORT on the
QOperator model of the same calibration (the same scales and weights, every Conv a
QLinearConv).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
from onnx import TensorProto, helper  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,  # noqa: E402
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402

from conftest import DIGITS_DIR  # noqa: E402
from hwsim.engine import Network  # noqa: E402
from hwsim.frontends.onnx_reader import read_onnx  # noqa: E402
from hwsim.ir import ModelError  # noqa: E402
from hwsim.lower import lower  # noqa: E402
from test_frontend_onnx import LIGHT_DIR, randomize_light, rnd  # noqa: E402

ONNX_TYPE = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
             np.dtype(np.float32): TensorProto.FLOAT}


class _Reader(CalibrationDataReader):
    def __init__(self, name, xs):
        self.it = iter([{name: x[None]} for x in xs])

    def get_next(self):
        return next(self.it, None)


def _data_input(model) -> str:
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def _quantize(src, out, calib, fmt, act, per_channel):
    name = _data_input(onnx.load(src))
    quantize_static(src, out, _Reader(name, calib),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QInt8 if act == "s8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel)
    return out


def _fold_batch_norm(model):
    """Fold each BatchNormalization that follows a Conv into it (what quant_pre_process's
    optimizer does, which fails on light_shufflenet's first layer and on its external data)."""
    from onnx import numpy_helper
    inits = {i.name: i for i in model.graph.initializer}
    arr = lambda n: numpy_helper.to_array(inits[n]).astype(np.float64)  # noqa: E731
    prod = {o: n for n in model.graph.node for o in n.output}
    keep = []
    for n in model.graph.node:
        c = prod.get(n.input[0]) if n.op_type == "BatchNormalization" else None
        if c is None or c.op_type != "Conv":
            keep.append(n)
            continue
        gamma, beta, mean, var = (arr(x) for x in n.input[1:5])
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
        s = gamma / np.sqrt(var + eps)
        w = arr(c.input[1]) * s[:, None, None, None]
        b = arr(c.input[2]) if len(c.input) > 2 and c.input[2] else 0.0
        inits[c.input[1]].CopyFrom(numpy_helper.from_array(w.astype(np.float32), c.input[1]))
        name = c.output[0] + "_folded_bias"
        model.graph.initializer.append(
            numpy_helper.from_array(((b - mean) * s + beta).astype(np.float32), name))
        inits[name] = model.graph.initializer[-1]
        del c.input[2:]
        c.input.append(name)
        c.output[0] = n.output[0]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def _light(name: str):
    m = randomize_light(onnx.load(os.path.join(LIGHT_DIR, f"light_{name}.onnx")))
    m.ir_version = 7  # initializers need not be graph inputs; opset 9 -> 13 for quantize_static
    return onnx.version_converter.convert_version(m, 13)


@pytest.fixture(scope="module")
def float_models(tmp_path_factory):
    """{name: (pre-processed float model path, calibration inputs, test inputs)}."""
    d = tmp_path_factory.mktemp("onnxq")
    rng = np.random.default_rng(0)
    digits = str(d / "digits.onnx")
    quant_pre_process(onnx.load(os.path.join(DIGITS_DIR, "digits_cnn.onnx")), digits,
                      skip_symbolic_shape=True)
    squeeze = str(d / "squeezenet.onnx")
    quant_pre_process(_light("squeezenet"), squeeze, skip_symbolic_shape=True)
    shuffle = str(d / "shufflenet.onnx")
    onnx.save(onnx.shape_inference.infer_shapes(_fold_batch_norm(_light("shufflenet"))),
              shuffle)
    return d, {
        "digits": (digits, rng.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32),
                   rng.uniform(0, 1, (3, 1, 8, 8)).astype(np.float32)),
        "squeezenet": (squeeze, rnd((2, 3, 224, 224), seed=1), rnd((2, 3, 224, 224), seed=7)),
        "shufflenet": (shuffle, rnd((2, 3, 224, 224), seed=1), rnd((1, 3, 224, 224), seed=7)),
    }


def _ort_run(model, x, extra: dict):
    """ORT's outputs and the values ``extra`` {name: numpy dtype} as extra graph outputs."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n, dt in extra.items():
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, ONNX_TYPE[dt], None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, {_data_input(model): x})))


def _hwsim_run(model, x):
    g = read_onnx(model)
    res = Network(lower(g), g).run(x, trace=True)  # ONNX layout in and out
    return g, res


def _assert_same(name, mine, ref):
    assert mine.dtype == ref.dtype and mine.shape == ref.shape, \
        f"{name}: {mine.dtype}{list(mine.shape)} vs ORT {ref.dtype}{list(ref.shape)}"
    diff = int(np.count_nonzero(mine != ref))
    assert diff == 0, f"{name}: {diff} of {mine.size} elements differ from ORT"


def _check_every_tensor(model, x, oracle=None) -> int:
    """hwsim vs ORT (on ``oracle``, default the model itself) on the output and every
    intermediate integer tensor; returns the number of tensors compared."""
    oracle = model if oracle is None else oracle
    g, res = _hwsim_run(model, x)
    onames = {o for n in oracle.graph.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    names = {n: g.tensors[t].dtype for n, (t, _) in g.value_map.items()
             if n in onames and n not in inits}
    ref = _ort_run(oracle, x, names)
    out = model.graph.output[0].name
    _assert_same(out, res.outputs[0], ref[out])
    checked = 0
    for n in names:
        t, perm = g.value_map[n]
        r = ref[n]
        _assert_same(n, res.trace.tensors[t], np.transpose(r, perm) if r.ndim == len(perm)
                     else r)
        checked += 1
    return checked


# The light models in QDQ form with int8 activations are the oracle case (module docstring).
CASES = [(m, f, a, pc) for m in ("digits", "squeezenet", "shufflenet") for f, a, pc in
         [("qdq", "s8", True), ("qdq", "u8", True), ("qdq", "s8", False), ("qdq", "u8", False),
          ("qop", "s8", True), ("qop", "u8", True), ("qop", "u8", False)]
         if not (m != "digits" and f == "qdq" and a == "s8")
         and not (m == "shufflenet" and f == "qdq" and not pc)]


@pytest.mark.parametrize("model,fmt,act,per_channel", CASES)
def test_quantize_static_model_equals_onnxruntime_every_tensor(float_models, model, fmt, act,
                                                               per_channel):
    d, models = float_models
    src, calib, xs = models[model]
    path = _quantize(src, str(d / f"{model}_{fmt}_{act}_{per_channel}.onnx"), calib, fmt, act,
                     per_channel)
    m = onnx.load(path)
    for x in xs:
        assert _check_every_tensor(m, x[None]) >= {"digits": 6, "squeezenet": 40,
                                                   "shufflenet": 150}[model]


def test_squeezenet_qdq_int8_oracle_case_ort_runs_float_convs(float_models):
    """ORT leaves most Conv groups of this s8 QDQ model unfused (float Conv): hwsim equals ORT
    on the QOperator model of the same calibration instead (module docstring)."""
    d, models = float_models
    src, calib, xs = models["squeezenet"]
    qdq = onnx.load(_quantize(src, str(d / "sq_qdq_s8.onnx"), calib, "qdq", "s8", True))
    qop = onnx.load(_quantize(src, str(d / "sq_qop_s8.onnx"), calib, "qop", "s8", True))
    g_qdq, r_qdq = _hwsim_run(qdq, xs[:1])
    g_qop, r_qop = _hwsim_run(qop, xs[:1])
    assert _check_every_tensor(qop, xs[:1]) >= 40  # hwsim == ORT on the QOperator model
    # Layer by layer the two imports are the same ops with the same parameters up to the
    # softmax, whose output scale the two formats choose differently (1/255 vs 1/256).
    assert [op.type for op in g_qdq.ops] == [op.type for op in g_qop.ops]
    compared = 0
    for a, b in zip(g_qdq.ops, g_qop.ops):
        if a.type == "ORT_SOFTMAX":
            break
        _assert_same(g_qdq.tensors[a.outputs[0]].name, r_qdq.trace.tensors[a.outputs[0]],
                     r_qop.trace.tensors[b.outputs[0]])
        compared += 1
    assert compared >= 40


def test_float_op_between_dq_and_q_is_refused(float_models):
    """BatchNormalization left between DequantizeLinear and QuantizeLinear (no
    quant_pre_process): ORT computes it in float; hwsim refuses it in one line naming it."""
    d, _ = float_models
    rng = np.random.default_rng(1)
    src = os.path.join(DIGITS_DIR, "digits_cnn.onnx")
    path = _quantize(src, str(d / "digits_bn.onnx"),
                     rng.uniform(0, 1, (8, 1, 8, 8)).astype(np.float32), "qdq", "s8", True)
    with pytest.raises(ModelError, match=r"BatchNormalization"):
        read_onnx(path)


def test_cli_run_trace_output_equals_onnxruntime(float_models, tmp_path):
    """The contract: `hwsim run model.onnx --input x.npy --trace T.h5` writes outputs/0 equal
    to ORT's output (dtype and values; the input in ONNX's NCHW layout, as ORT takes it), and
    the trace holds every tensor of the graph."""
    h5py = pytest.importorskip("h5py")
    from hwsim import cli
    d, models = float_models
    src, calib, xs = models["digits"]
    path = _quantize(src, str(d / "digits_cli_u8.onnx"), calib, "qdq", "u8", True)
    x = xs[:1]
    np.save(tmp_path / "x.npy", x)
    assert cli.main(["run", path, "--input", str(tmp_path / "x.npy"), "--trace",
                     str(tmp_path / "T.h5")]) == 0
    m = onnx.load(path)
    ref = _ort_run(m, x, {})[m.graph.output[0].name]
    g = read_onnx(path)
    with h5py.File(tmp_path / "T.h5") as f:
        _assert_same("outputs/0", f["outputs/0"][()], ref)
        assert len(f["tensors"]) == len(g.tensors)


@pytest.mark.parametrize("act", ["s8", "u8"])
def test_digits_qdq_equals_onnx_reference_evaluator_before_softmax(float_models, act):
    """The second oracle, onnx.reference (the model converted to opset 19, which its
    QuantizeLinear needs): it computes each QDQ group in float (DequantizeLinear, float Conv /
    Gemm in numpy, QuantizeLinear), so it agrees with ORT's integer kernels except where a
    float sum lands within rounding of a tie; on the digits CNN every integer tensor before the
    softmax is equal. The softmax is where they differ by design: the reference computes
    exp in float on the dequantized logits, ORT's QLinearSoftmax uses its float32 lookup
    table (docs/onnx.md); hwsim follows ORT, within one step of the reference."""
    from onnx.reference import ReferenceEvaluator
    d, models = float_models
    src, calib, xs = models["digits"]
    m = onnx.load(_quantize(src, str(d / f"digits_ref_{act}.onnx"), calib, "qdq", act, True))
    g, res = _hwsim_run(m, xs[:1])
    sm = next(n for n in m.graph.node if n.op_type == "Softmax")
    producers = {o: n for n in m.graph.node for o in n.output}
    names = [n for n in g.value_map if n in producers and producers[n].op_type ==
             "QuantizeLinear" and producers[n].input[0] not in sm.output]
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    for n in names:
        m2.graph.output.append(helper.make_tensor_value_info(
            n, ONNX_TYPE[g.tensors[g.value_map[n][0]].dtype], None))
    m2 = onnx.version_converter.convert_version(m2, 19)
    ref = dict(zip([o.name for o in m2.graph.output],
                   ReferenceEvaluator(m2).run(None, {_data_input(m): xs[:1]})))
    for n in names:
        t, perm = g.value_map[n]
        r = ref[n]
        _assert_same(n, res.trace.tensors[t], np.transpose(r, perm) if r.ndim == len(perm) else r)
    assert len(names) >= 6
    out = m.graph.output[0].name
    assert np.abs(res.outputs[0] - ref[out]).max() <= np.float32(1 / 255) * 1.0001


def _synthetic_float_model(path):
    """Conv -> LeakyRelu -> Conv -> Sigmoid -> Mul (SE-style, broadcast over H and W after a
    GlobalAveragePool) -> Resize (nearest, x2) -> GlobalAveragePool -> Flatten -> MatMul: the
    ops the zoo models lack."""
    from test_frontend_onnx import make_model
    N = helper.make_node
    inits = {"w1": rnd((8, 3, 3, 3), 1, 0.3), "b1": rnd((8,), 2, 0.1),
             "w2": rnd((8, 8, 1, 1), 3, 0.3), "b2": rnd((8,), 4, 0.1), "W": rnd((8, 5), 5, 0.3),
             "up": np.array([1, 1, 2, 2], np.float32)}
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             N("LeakyRelu", ["c1"], ["l1"], alpha=0.1),
             N("GlobalAveragePool", ["l1"], ["se"]),
             N("Conv", ["se", "w2", "b2"], ["c2"]),
             N("Sigmoid", ["c2"], ["s2"]),
             N("Mul", ["l1", "s2"], ["m"]),
             N("Resize", ["m", "", "up"], ["r"], mode="nearest"),
             N("GlobalAveragePool", ["r"], ["g"]),
             N("Flatten", ["g"], ["f"]),
             N("MatMul", ["f", "W"], ["y"])]
    onnx.save(make_model(nodes, {"x": (1, 3, 8, 8)}, ["y"], inits), path)
    return path


@pytest.mark.parametrize("fmt,act", [("qdq", "u8"), ("qdq", "s8"), ("qop", "s8"), ("qop", "u8")])
def test_leaky_relu_sigmoid_mul_resize_matmul_equal_onnxruntime(tmp_path, fmt, act):
    src = _synthetic_float_model(str(tmp_path / "syn.onnx"))
    path = _quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 8, 8), 9), fmt, act, True)
    m = onnx.load(path)
    types = {n.op_type for n in m.graph.node}
    assert ({"QLinearLeakyRelu", "QLinearSigmoid", "QLinearMul", "QLinearMatMul"} <= types
            if fmt == "qop" else {"LeakyRelu", "Sigmoid", "Mul", "Resize"} <= types)
    for seed in (11, 12, 13):
        assert _check_every_tensor(m, rnd((1, 3, 8, 8), seed)) >= 10


@pytest.mark.parametrize("op", ["QLinearSigmoid", "QLinearLeakyRelu"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("x_scale", [0.02, 0.1, 0.37])
def test_lookup_ops_on_all_256_codes(op, dtype, x_scale):
    """QLinearSigmoid (MLAS's FMA logistic approximation) and QLinearLeakyRelu build a
    256-entry table: every code of the input type is checked against ORT."""
    zp = 3 if dtype == np.int8 else 131
    yzp = -128 if dtype == np.int8 else 0
    codes = np.arange(256, dtype=np.uint8).view(dtype).astype(np.int64)
    x = ((codes - zp) * np.float32(x_scale)).astype(np.float32).reshape(1, 1, 16, 16)
    tq = TensorProto.INT8 if dtype == np.int8 else TensorProto.UINT8
    inits = [helper.make_tensor("xs", TensorProto.FLOAT, [], [x_scale]),
             helper.make_tensor("xz", tq, [], [zp]),
             helper.make_tensor("ys", TensorProto.FLOAT, [], [1 / 200.0]),
             helper.make_tensor("yz", tq, [], [yzp])]
    extra = {"alpha": 0.13} if op == "QLinearLeakyRelu" else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node(op, ["q", "xs", "xz", "ys", "yz"], ["o"], domain="com.microsoft",
                              **extra),
             helper.make_node("DequantizeLinear", ["o", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [1, 1, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("com.microsoft", 1)])
    gr, res = _hwsim_run(m, x)
    ref = _ort_run(m, x, {"q": np.dtype(dtype), "o": np.dtype(dtype)})
    assert np.array_equal(res.trace.tensors[gr.value_map["q"][0]].reshape(-1),
                          codes.astype(dtype))          # every code is exercised
    _assert_same("o", res.trace.tensors[gr.value_map["o"][0]], ref["o"])
    _assert_same("y", res.outputs[0], ref["y"])


def test_hwsim_quantize_format_onnx_qdq_runs_the_same_integers_in_ort(tmp_path, capsys):
    """`hwsim quantize model.onnx --format onnx-qdq`: a QDQ model with hwsim's calibrated
    activation ranges (its scales; zero points + 128 for uint8), which onnxruntime and
    `hwsim run` compute with the same integers on every tensor."""
    from hwsim import cli
    from hwsim.quant.quantize import quantize
    from hwsim.quant.float_exec import to_graph_layout
    from conftest import load_digits
    xtr, _, xte, _ = load_digits()
    calib = xtr[:64].reshape(-1, 1, 8, 8).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    src = os.path.join(DIGITS_DIR, "digits_cnn.onnx")
    out = tmp_path / "digits_qdq.onnx"
    assert cli.main(["quantize", src, "--calib", str(tmp_path / "calib.npy"), "--method", "kl",
                     "--format", "onnx-qdq", "--out", str(out), "--no-progress"]) == 0
    assert "onnx-qdq" in capsys.readouterr().out
    m = onnx.load(out)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= \
        {n.op_type for n in m.graph.node}
    # hwsim's own calibration: its scales, its zero points moved to uint8
    g = read_onnx(src)
    q = quantize(g, to_graph_layout(g, calib), "kl")
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for name in ("relu1", "relu2", "logits"):
        t = q.graph.tensors[g.value_map[name][0]]
        assert np.float32(inits[name + "_scale"]) == t.quant.scales[0]
        assert int(inits[name + "_zero_point"]) == int(t.quant.zero_points[0]) + 128
    for x in xte[:3]:
        assert _check_every_tensor(m, x.reshape(1, 1, 8, 8).astype(np.float32)) >= 6


@pytest.mark.parametrize("extra,message", [
    (["--pot"], "drop --pot"),
    (["--weights", "mse"], "drop --weights mse"),
    (["--activation-bits", "6"], "drop --activation-bits"),
])
def test_hwsim_quantize_onnx_qdq_refuses_what_it_cannot_write(tmp_path, capsys, extra, message):
    from hwsim import cli
    np.save(tmp_path / "c.npy", np.zeros((4, 1, 8, 8), np.float32))
    rc = cli.main(["quantize", os.path.join(DIGITS_DIR, "digits_cnn.onnx"), "--calib",
                   str(tmp_path / "c.npy"), "--format", "onnx-qdq", "--out",
                   str(tmp_path / "q.onnx"), "--no-progress"] + extra)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("hwsim: error: ")
    assert message in err and not (tmp_path / "q.onnx").exists()


def _qlinear_sigmoid_model(x_scale=0.05, zp_type=TensorProto.INT8, out_zp_type=None,
                           shape=(1, 1, 4, 4), q_scale="xs"):
    out_zp_type = zp_type if out_zp_type is None else out_zp_type
    inits = [helper.make_tensor("xs", TensorProto.FLOAT, [], [x_scale]),
             helper.make_tensor("xz", zp_type, [], [0]),
             helper.make_tensor("ys", TensorProto.FLOAT, [], [1 / 256]),
             helper.make_tensor("yz", out_zp_type, [], [0])]
    nodes = [helper.make_node("QuantizeLinear", ["x", q_scale, "xz"], ["q"]),
             helper.make_node("QLinearSigmoid", ["q", "xs", "xz", "ys", "yz"], ["o"],
                              domain="com.microsoft"),
             helper.make_node("DequantizeLinear", ["o", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                               helper.make_opsetid("com.microsoft", 1)])


@pytest.mark.parametrize("kw,message", [
    (dict(x_scale=0.0), "a scale must be a finite float > 0"),
    (dict(x_scale=float("nan")), "a scale must be a finite float > 0"),
    (dict(zp_type=TensorProto.INT32), "int8 or uint8 zero points"),
    (dict(out_zp_type=TensorProto.UINT8), "input of type int8 and output of type uint8"),
    (dict(shape=(1, 1, 1 << 20, 1 << 20)), "at most 2,147,483,647 elements"),
    (dict(q_scale=""), r"input 1 \(y_scale\) is missing"),
])
def test_bad_quantized_model_is_one_model_error_naming_it(kw, message):
    """Found by mutating quantized models (hwsim run on 900 mutants of the digits and the
    synthetic models, QDQ and QOperator: every one exits 0 or with one error line)."""
    with pytest.raises(ModelError, match=message):
        read_onnx(_qlinear_sigmoid_model(**kw))


def test_export_of_a_quantized_onnx_model_runs_every_layer_on_the_host(float_models, tmp_path):
    """A uint8 model's layers all have ONNX Runtime kernels (ort_*: uint8 MACs, pools,
    softmax), which no array unit runs: an export places every layer on the host and still
    writes each layer's golden vectors (hwsim/passes/place.py gives the reason; int8 MAC layers
    on onnxruntime-int8 are tests/test_requant_float32.py's)."""
    from hwsim import cli
    d, models = float_models
    src, calib, xs = models["digits"]
    path = _quantize(src, str(d / "digits_export.onnx"), calib, "qop", "u8", True)
    np.save(tmp_path / "x.npy", xs[:1])
    assert cli.main(["export", path, "--config", "tflite-int8", "--input",
                     str(tmp_path / "x.npy"), "--out", str(tmp_path / "exp")]) == 0
    import yaml
    man = yaml.safe_load((tmp_path / "exp" / "manifest.yaml").read_text())
    assert len(man["layers"]) == len(read_onnx(path).ops)
    assert {entry["placement"] for entry in man["layers"]} == {"host"}


def _weights_quantized_in_graph(model):
    """The weight pattern of Brevitas / Quark exports: a float initializer -> QuantizeLinear ->
    DequantizeLinear (instead of an int8 initializer -> DequantizeLinear)."""
    from onnx import numpy_helper
    inits = {i.name: i for i in model.graph.initializer}
    nodes = []
    for n in model.graph.node:
        w = inits.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if w is not None and w.data_type == TensorProto.INT8:
            q = numpy_helper.to_array(w).astype(np.float32)
            s = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if s.size > 1:
                shape[axis] = -1
            model.graph.initializer.append(numpy_helper.from_array(
                (q * s.reshape(shape)).astype(np.float32), w.name + "_float"))
            nodes.append(helper.make_node("QuantizeLinear", [w.name + "_float", n.input[1],
                                                             n.input[2]], [w.name + "_q"],
                                          axis=axis))
            n.input[0] = w.name + "_q"
        nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


@pytest.mark.parametrize("per_channel", [True, False])
def test_weights_quantized_in_the_graph_brevitas_style(float_models, per_channel):
    d, models = float_models
    src, calib, xs = models["digits"]
    m = onnx.load(_quantize(src, str(d / f"digits_bv_{per_channel}.onnx"), calib, "qdq", "u8",
                            per_channel))
    m = _weights_quantized_in_graph(m)
    assert sum(n.op_type == "QuantizeLinear" and n.input[0].endswith("_float")
               for n in m.graph.node) == 3
    for x in xs:
        assert _check_every_tensor(m, x[None]) >= 6


@pytest.mark.parametrize("fmt,act", [("qop", "u8"), ("qop", "s8"), ("qdq", "u8")])
def test_broadcast_add_follows_ort_scalar_span_paths(tmp_path, fmt, act):
    """QLinearAdd with broadcasting: ORT's broadcaster hands MLAS one input as a scalar per
    span (it then joins the fixed part by a multiply and an add, the other input by an fma)
    or two full spans. [C,H,W] + [C,1,1], [C,1,1] + [C,H,W] and [C,H,W] + [1,H,W]."""
    from test_frontend_onnx import make_model
    N = helper.make_node
    inits = {"w": rnd((6, 3, 3, 3), 1, 0.3), "b": rnd((6,), 2, 0.1),
             "w2": rnd((1, 6, 1, 1), 3, 0.3), "b2": rnd((1,), 4, 0.1)}
    nodes = [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             N("GlobalAveragePool", ["c"], ["g"]),
             N("Conv", ["c", "w2", "b2"], ["p"]),          # [1, 1, H, W]
             N("Add", ["c", "g"], ["a1"]),
             N("Add", ["g", "a1"], ["a2"]),
             N("Add", ["a2", "p"], ["y"])]
    src = str(tmp_path / "f.onnx")
    onnx.save(make_model(nodes, {"x": (1, 3, 8, 8)}, ["y"], inits), src)
    m = onnx.load(_quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 8, 8), 9), fmt, act,
                            True))
    if fmt == "qop":
        assert sum(n.op_type == "QLinearAdd" for n in m.graph.node) == 3
    for seed in (21, 22, 23):
        assert _check_every_tensor(m, rnd((1, 3, 8, 8), seed)) >= 6


# Scales and zero points found by search where the candidate float32 orders part (each on 1-2
# of the 65,536 pairs): which input enters the inner fma; whether GCC contracted MLAS's
# ``ratio_A * zp_A + ratio_B * zp_B`` into an fma (it did).
ADD_CASES = [(0.029867518693208694, 0.03172658756375313, 0.04317310452461243, -6, 17, -15),
             (0.03990037739276886, 0.019316596910357475, 0.04658976197242737, 46, -34, -4),
             (0.03223216161131859, 0.048546407371759415, 0.006979445926845074, 56, -15, 45)]


@pytest.mark.parametrize("case", range(len(ADD_CASES)))
@pytest.mark.parametrize("order", ["full+scalar", "scalar+full", "full+full"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_qlinear_add_on_all_code_pairs(order, dtype, case):
    """QLinearAdd on all 65,536 pairs of input codes, in each of MLAS's paths (one input a
    scalar per span, ORT's broadcaster putting it second; or both spans full): MLAS's second
    input in the inner fma, the first in the outer, the fixed part contracted."""
    tq = TensorProto.INT8 if dtype == np.int8 else TensorProto.UINT8
    codes = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
    sa, sb, sc, za, zb, zc = ADD_CASES[case]
    if dtype == np.uint8:
        za, zb, zc = za + 128, zb + 128, zc + 128
    xa = ((codes[None, None, None, :] - za) * np.float32(sa)).astype(np.float32)
    xa = np.broadcast_to(xa, (1, 256, 1, 256)).copy()
    xb = ((codes[None, :, None, None] - zb) * np.float32(sb)).astype(np.float32)  # [1,256,1,1]
    if order == "full+full":
        xb = np.broadcast_to(xb, (1, 256, 1, 256)).copy()
    ins = {"xa": xa, "xb": xb}
    first, second = ("qb", "qa") if order == "scalar+full" else ("qa", "qb")
    sc_first = (sb, "zb") if first == "qb" else (sa, "za")
    sc_second = (sa, "za") if first == "qb" else (sb, "zb")
    inits = [helper.make_tensor("sa", TensorProto.FLOAT, [], [sa]),
             helper.make_tensor("za", tq, [], [za]),
             helper.make_tensor("sb", TensorProto.FLOAT, [], [sb]),
             helper.make_tensor("zb", tq, [], [zb]),
             helper.make_tensor("sc", TensorProto.FLOAT, [], [sc]),
             helper.make_tensor("zc", tq, [], [zc])]
    nodes = [helper.make_node("QuantizeLinear", ["xa", "sa", "za"], ["qa"]),
             helper.make_node("QuantizeLinear", ["xb", "sb", "zb"], ["qb"]),
             helper.make_node("QLinearAdd", [first, "s" + sc_first[1][1], sc_first[1],
                                             second, "s" + sc_second[1][1], sc_second[1],
                                             "sc", "zc"], ["o"], domain="com.microsoft"),
             helper.make_node("DequantizeLinear", ["o", "sc", "zc"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, TensorProto.FLOAT,
                                                                     list(v.shape))
                                       for n, v in ins.items()],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("com.microsoft", 1)])
    gr = read_onnx(m)
    res = Network(lower(gr), gr).run([xa, xb], trace=True)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    mm = onnx.ModelProto()
    mm.CopyFrom(m)
    mm.graph.output.append(helper.make_tensor_value_info("o", tq, None))
    s = ort.InferenceSession(mm.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ref_y, ref_o = s.run(None, ins)
    t, perm = gr.value_map["o"]
    _assert_same("o", res.trace.tensors[t], np.transpose(ref_o, perm))
    _assert_same("y", res.outputs[0], ref_y)


def _rank_and_constant_operands_model(path):
    """Add / Mul with constant (initializer) operands of lower rank, first or second, and
    with a run-time operand of lower rank (a Reshape of a pooled tensor): numpy broadcasting
    over inputs of different ranks."""
    from test_frontend_onnx import make_model
    N = helper.make_node
    inits = {"w": rnd((6, 3, 3, 3), 1, 0.3), "b": rnd((6,), 2, 0.1),
             "k1": rnd((8,), 3, 0.5), "k2": rnd((6, 1, 1), 4, 0.8) + 1.0,
             "k3": np.array(0.7, np.float32), "k4": rnd((1, 8), 5, 0.6),
             "s": np.array([6, 1, 1], np.int64)}
    nodes = [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             N("Add", ["c", "k1"], ["a1"]),            # [1,6,8,8] + [8]
             N("Mul", ["k2", "a1"], ["m1"]),           # [6,1,1] * [1,6,8,8], constant first
             N("GlobalAveragePool", ["m1"], ["g"]),
             N("Reshape", ["g", "s"], ["gr"]),         # run-time [6,1,1]
             N("Add", ["gr", "m1"], ["a2"]),           # rank 3 + rank 4
             N("Mul", ["a2", "k3"], ["m2"]),           # a scalar constant
             N("Mul", ["m2", "gr"], ["m3"]),           # rank 4 * rank 3, run-time
             N("Add", ["k4", "m3"], ["y"])]            # [1,8] + [1,6,8,8], constant first
    onnx.save(make_model(nodes, {"x": (1, 3, 8, 8)}, ["y"], inits), path)
    return path


@pytest.mark.parametrize("fmt,act", [("qdq", "u8"), ("qdq", "s8"), ("qop", "s8"), ("qop", "u8")])
def test_add_mul_of_different_ranks_and_constant_operands_equal_onnxruntime(tmp_path, fmt,
                                                                             act):
    src = _rank_and_constant_operands_model(str(tmp_path / "f.onnx"))
    m = onnx.load(_quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 8, 8), 9), fmt, act,
                            False))
    if fmt == "qop":
        types = [n.op_type for n in m.graph.node]
        assert types.count("QLinearAdd") == 3 and types.count("QLinearMul") == 3, types
    for seed in (31, 32):
        assert _check_every_tensor(m, rnd((1, 3, 8, 8), seed)) >= 8


def _linear_resize_model(path):
    """Conv -> four linear Resizes: each coordinate transform ORT's quantizer keeps, up and
    down, and a height scale of 1 (ORT's dispatch then runs the NHWC integer data as an NCHW
    bilinear resize over W and C)."""
    from test_frontend_onnx import make_model
    N = helper.make_node
    sc = lambda *v: np.array([1, 1, *v], np.float32)  # noqa: E731
    inits = {"w": rnd((4, 3, 3, 3), 1, 0.3), "b": rnd((4,), 2, 0.1),
             "s1": sc(2.0, 1.5), "s2": sc(1.0, 2.0), "s3": sc(0.6, 0.5), "s4": sc(1.7, 2.3)}
    nodes = [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             N("Resize", ["c", "", "s1"], ["r1"], mode="linear",
               coordinate_transformation_mode="half_pixel"),
             N("Resize", ["r1", "", "s2"], ["r2"], mode="linear",
               coordinate_transformation_mode="align_corners"),
             N("Resize", ["r2", "", "s3"], ["r3"], mode="linear",
               coordinate_transformation_mode="asymmetric"),
             N("Resize", ["r3", "", "s4"], ["y"], mode="linear",
               coordinate_transformation_mode="pytorch_half_pixel")]
    onnx.save(make_model(nodes, {"x": (1, 3, 6, 6)}, ["y"], inits), path)
    return path


@pytest.mark.parametrize("fmt,act", [("qdq", "u8"), ("qdq", "s8"), ("qop", "s8"), ("qop", "u8")])
def test_linear_resize_of_quantized_data_equals_onnxruntime(tmp_path, fmt, act):
    """QOperator: ORT runs Resize on the integers in NHWC (10-bit weights, the sum divided
    by 2^20 toward zero); QDQ: ORT keeps DequantizeLinear -> float Resize -> QuantizeLinear."""
    src = _linear_resize_model(str(tmp_path / "f.onnx"))
    m = onnx.load(_quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 6, 6), 9), fmt, act,
                            True))
    g = read_onnx(m)
    assert sum(o.type == "ORT_RESIZE" for o in g.ops) == 4
    for seed in (41, 42, 43):
        assert _check_every_tensor(m, rnd((1, 3, 6, 6), seed)) >= 5


def _mac_model(path):
    """Conv, depthwise Conv (padded), Gemm and MatMul: the MAC ops whose weights get zero
    points."""
    from test_frontend_onnx import make_model
    N = helper.make_node
    inits = {"w1": rnd((6, 3, 3, 3), 1, 0.3) + 0.2, "b1": rnd((6,), 2, 0.1),
             "w2": rnd((6, 1, 3, 3), 3, 0.3) - 0.1, "b2": rnd((6,), 4, 0.1),
             "W": rnd((96, 10), 5, 0.2) + 0.05, "c": rnd((10,), 6, 0.1),
             "M": rnd((10, 7), 7, 0.3) - 0.1}
    nodes = [N("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             N("Conv", ["c1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=6),
             N("Flatten", ["c2"], ["f"]),
             N("Gemm", ["f", "W", "c"], ["g"]),
             N("MatMul", ["g", "M"], ["y"])]
    onnx.save(make_model(nodes, {"x": (1, 3, 8, 8)}, ["y"], inits), path)
    return path


def _give_weights_zero_points(model):
    """Each int8 weight initializer behind a DequantizeLinear gets zero points -3..3 per
    channel (the integers shifted by them, saturated): asymmetric per-channel weights."""
    from onnx import numpy_helper
    inits = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        w = inits.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if w is None or w.data_type != TensorProto.INT8 or len(w.dims) < 2:
            continue
        q = numpy_helper.to_array(w)
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        zp = (np.arange(q.shape[axis]) % 7 - 3).astype(np.int8)
        zp[zp == 0] = 2
        w.CopyFrom(numpy_helper.from_array(
            np.clip(q.astype(np.int16) + zp.reshape(shape), -128, 127).astype(np.int8), w.name))
        model.graph.initializer.append(numpy_helper.from_array(zp, n.output[0] + "_zp_asym"))
        del n.input[2:]
        n.input.append(n.output[0] + "_zp_asym")


@pytest.mark.parametrize("fmt", ["qdq", "qop"])
@pytest.mark.parametrize("act,weights", [("u8", "u8"), ("s8", "s8-asym"), ("u8", "s8-asym")])
@pytest.mark.parametrize("per_channel", [True, False])
def test_weights_with_zero_points_equal_onnxruntime(tmp_path, fmt, act, weights, per_channel):
    """uint8 weights and asymmetric int8 weights (non-zero weight zero points, per tensor and
    per output channel) in QLinearConv (grouped and depthwise), QGemm and QLinearMatMul and
    their QDQ forms: ``acc = bias + sum (x - x_zp) * (w - w_zp)``, as ORT computes it."""
    src = _mac_model(str(tmp_path / "f.onnx"))
    out = str(tmp_path / "q.onnx")
    quantize_static(src, out, _Reader("x", rnd((8, 3, 8, 8), 9)),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QInt8 if act == "s8" else QuantType.QUInt8,
                    weight_type=QuantType.QUInt8 if weights == "u8" else QuantType.QInt8,
                    per_channel=per_channel, extra_options={"WeightSymmetric": False})
    m = onnx.load(out)
    if fmt == "qdq" and weights == "s8-asym" and per_channel:
        _give_weights_zero_points(m)  # the QDQ quantizer keeps per-channel int8 symmetric
    g = read_onnx(m)
    zps = [o.attrs["w_zp"] for o in g.ops if o.type in ("ORT_CONV", "ORT_FC")]
    assert len(zps) == 4 and all(np.any(np.asarray(z) != 0) for z in zps)
    for seed in (51, 52):
        assert _check_every_tensor(m, rnd((1, 3, 8, 8), seed)) >= 4


def _integer_input(model):
    """The model without the QuantizeLinear of its float input: the graph input is that
    node's int8 / uint8 output."""
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear"
             and n.input[0] == model.graph.input[0].name)
    zp = next(i for i in model.graph.initializer if i.name == q.input[2])
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    model.graph.node.remove(q)
    del model.graph.input[:]
    model.graph.input.append(helper.make_tensor_value_info(q.output[0], zp.data_type, shape))
    return model


@pytest.mark.parametrize("fmt,act", [("qdq", "u8"), ("qdq", "s8"), ("qop", "s8"), ("qop", "u8")])
def test_integer_graph_input_equals_onnxruntime(tmp_path, fmt, act):
    """A model whose input is already int8 / uint8: the DequantizeLinear (QDQ) or the QLinear
    op (QOperator) that reads it gives its scale and zero point."""
    src = _mac_model(str(tmp_path / "f.onnx"))
    m = _integer_input(onnx.load(_quantize(src, str(tmp_path / "q.onnx"),
                                           rnd((8, 3, 8, 8), 9), fmt, act, True)))
    dt = np.int8 if act == "s8" else np.uint8
    g = read_onnx(m)
    assert g.tensors[g.inputs[0]].dtype == np.dtype(dt)
    rng = np.random.default_rng(61)
    for _ in range(2):
        x = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max + 1, (1, 3, 8, 8)).astype(dt)
        assert _check_every_tensor(m, x) >= 4


@pytest.mark.parametrize("fmt,act", [("qdq", "u8"), ("qop", "s8"), ("qop", "u8")])
@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool_ceil_mode_equals_onnxruntime(tmp_path, fmt, act, include_pad):
    """QLinearAveragePool with ceil_mode=1: the last window runs past the (padded) input and
    counts what it covers, or the whole kernel with count_include_pad=1; with pads [0, 1] on
    an even size, the extra window that would start in the padding is dropped."""
    from test_frontend_onnx import make_model
    N = helper.make_node
    inits = {"w": rnd((4, 3, 3, 3), 1, 0.3), "b": rnd((4,), 2, 0.1)}
    nodes = [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             N("AveragePool", ["c"], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
               ceil_mode=1, count_include_pad=include_pad),           # 8 -> 4
             N("AveragePool", ["p1"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
               pads=[0, 0, 1, 1], ceil_mode=1, count_include_pad=include_pad)]  # 4 -> 2
    src = str(tmp_path / "f.onnx")
    onnx.save(make_model(nodes, {"x": (1, 3, 8, 8)}, ["y"], inits), src)
    m = onnx.load(_quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 8, 8), 9), fmt, act,
                            True))
    if fmt == "qop":
        assert sum(n.op_type == "QLinearAveragePool" for n in m.graph.node) == 2
    g = read_onnx(m)
    assert [g.tensors[o.outputs[0]].shape[1:3] for o in g.ops
            if o.type == "ORT_AVG_POOL"] == [(4, 4), (2, 2)]
    for seed in (71, 72):
        assert _check_every_tensor(m, rnd((1, 3, 8, 8), seed)) >= 3


def _cubic_resize_model(path):
    """Conv -> cubic Resizes (half_pixel up; asymmetric down with exclude_outside and
    cubic_coeff_a -0.5; pytorch_half_pixel with a height scale of 1) and between them a linear
    Resize whose output keeps the input's shape (ORT copies it)."""
    from test_frontend_onnx import make_model
    N = helper.make_node
    sc = lambda *v: np.array([1, 1, *v], np.float32)  # noqa: E731
    inits = {"w": rnd((4, 3, 3, 3), 1, 0.3), "b": rnd((4,), 2, 0.1),
             "s1": sc(2.0, 1.5), "s2": sc(0.6, 0.7), "s3": sc(1.1, 1.1), "s4": sc(1.0, 2.3)}
    nodes = [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             N("Resize", ["c", "", "s1"], ["r1"], mode="cubic"),                  # 12 x 9
             N("Resize", ["r1", "", "s2"], ["r2"], mode="cubic", exclude_outside=1,
               cubic_coeff_a=-0.5, coordinate_transformation_mode="asymmetric"),  # 7 x 6
             N("Resize", ["r2", "", "s3"], ["r3"], mode="linear"),                # a copy
             N("Resize", ["r3", "", "s4"], ["y"], mode="cubic",
               coordinate_transformation_mode="pytorch_half_pixel")]              # 7 x 13
    onnx.save(make_model(nodes, {"x": (1, 3, 6, 6)}, ["y"], inits), path)
    return path


@pytest.mark.parametrize("act", ["u8", "s8"])
def test_cubic_resize_between_dq_and_q_equals_onnxruntime(tmp_path, act):
    """ORT keeps DequantizeLinear -> Resize (cubic) -> QuantizeLinear and runs ResizeBiCubic
    on the float values, its cache of 1-D interpolations included."""
    src = _cubic_resize_model(str(tmp_path / "f.onnx"))
    m = onnx.load(_quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 6, 6), 9), "qdq", act,
                            True))
    g = read_onnx(m)
    assert [o.attrs["mode"] for o in g.ops if o.type == "ORT_RESIZE"] == ["cubic"] * 3
    for seed in (81, 82):
        assert _check_every_tensor(m, rnd((1, 3, 6, 6), seed)) >= 5


def test_cubic_resize_of_integers_is_refused(tmp_path):
    """A QOperator model's Resize (cubic) on uint8: ORT 1.32's CPU kernel fails on it (a float
    write into the uint8 tensor); hwsim refuses it in one line naming the node."""
    src = _cubic_resize_model(str(tmp_path / "f.onnx"))
    m = onnx.load(_quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 6, 6), 9), "qop", "u8",
                            True))
    with pytest.raises(ModelError, match=r"\(Resize\): cubic Resize of int8 / uint8 data"):
        read_onnx(m)


def test_float_add_mul_sum_with_broadcasting_and_constants_equal_onnxruntime():
    """Add / Mul / Sum on dequantized values whose outputs are not quantized (ORT runs them in
    float32): a float constant of lower rank, a dequantized int8 constant as the first
    operand, a run-time operand of rank 2 against rank 4."""
    N = helper.make_node
    T = helper.make_tensor
    inits = [T("K1", TensorProto.FLOAT, [6], rnd((6,), 1, 0.5).tolist()),
             T("Wq", TensorProto.INT8, [4, 1, 1], [-70, 3, 99, -128]),
             T("ws", TensorProto.FLOAT, [], [0.013]),
             T("xs", TensorProto.FLOAT, [], [0.05]), T("xz", TensorProto.INT8, [], [-3]),
             T("zs", TensorProto.FLOAT, [], [0.021]), T("zz", TensorProto.UINT8, [], [131])]
    nodes = [N("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             N("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             N("QuantizeLinear", ["z", "zs", "zz"], ["zq"]),
             N("DequantizeLinear", ["zq", "zs", "zz"], ["zd"]),
             N("DequantizeLinear", ["Wq", "ws"], ["Wd"]),
             N("Add", ["xd", "K1"], ["a1"]),           # [1,4,5,6] + [6]
             N("Mul", ["Wd", "a1"], ["a2"]),           # [4,1,1] * [1,4,5,6]
             N("Sum", ["a2", "zd", "a1"], ["y"])]      # with [5,1]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, 4, 5, 6]),
                                       helper.make_tensor_value_info("z", TensorProto.FLOAT,
                                                                      [5, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    graph = read_onnx(m)
    assert sum(o.type == "ORT_FLOAT" for o in graph.ops) == 3
    rng = np.random.default_rng(91)
    for _ in range(2):
        x = rng.normal(0, 2, (1, 4, 5, 6)).astype(np.float32)
        z = rng.normal(0, 2, (5, 1)).astype(np.float32)
        res = Network(lower(graph), graph).run([x, z], trace=True)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        extra = onnx.ModelProto()
        extra.CopyFrom(m)
        for n in ("a1", "a2"):
            extra.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
        s = ort.InferenceSession(extra.SerializeToString(), so,
                                 providers=["CPUExecutionProvider"])
        ref = dict(zip([o.name for o in s.get_outputs()], s.run(None, {"x": x, "z": z})))
        _assert_same("y", res.outputs[0], ref["y"])
        for n in ("a1", "a2"):
            t, perm = graph.value_map[n]
            _assert_same(n, res.trace.tensors[t], np.transpose(ref[n], perm))


@pytest.mark.parametrize("kernel,strides,pads", [([3, 3], [2, 2], [0, 0, 0, 0]),
                                                 ([3, 2], [2, 3], [1, 1, 1, 1]),
                                                 ([2, 2], [2, 2], [0, 0, 1, 1]),
                                                 ([3, 3], [1, 1], [1, 1, 1, 1]),
                                                 ([2, 4], [1, 3], [0, 1, 0, 2]),
                                                 ([8, 8], [1, 1], [0, 0, 0, 0])])
@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("opset,channels", [(13, 3), (13, 16), (19, 3)])
def test_float_average_pool_equals_onnxruntime(kernel, strides, pads, include_pad, ceil_mode,
                                               opset, channels):
    """An AveragePool on dequantized values whose output is not quantized: ORT runs MLAS's
    float pool, where with count_include_pad a ceil_mode window past the padded input counts
    only what lies within the padded extent (8x8, kernel 3, stride 2: the last column of
    windows divides by 6, not 9). Before opset 19 ORT calls MLAS's pooling (except with
    ceil_mode and count_include_pad), which sums columns first (stride_w <= 2) in its own
    order (docs/onnx.md); 16 channels: ORT's NCHWc transformer takes the pool (AVX-512)
    and sums row by row."""
    N = helper.make_node
    T = helper.make_tensor
    inits = [T("xs", TensorProto.FLOAT, [], [0.05]), T("xz", TensorProto.INT8, [], [4])]
    nodes = [N("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             N("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             N("AveragePool", ["xd"], ["y"], kernel_shape=kernel, strides=strides, pads=pads,
               ceil_mode=ceil_mode, count_include_pad=include_pad)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      [1, channels, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9 if opset >= 19 else 7
    assert any(o.type == "ORT_FLOAT_AVG_POOL" for o in read_onnx(m).ops)
    for seed in (93, 94):
        assert _check_every_tensor(m, rnd((1, channels, 8, 8), seed, 3.0)) >= 2


@pytest.mark.parametrize("act", ["u8", "s8"])
def test_add_mul_ranks_and_constants_equal_onnx_reference_evaluator(tmp_path, act):
    """The second oracle on the QDQ model of Add / Mul with different ranks and constant
    operands: onnx.reference (opset 19) computes each group in float and quantizes; it equals
    hwsim (and ORT) on every quantized tensor. (On Resize it differs: docs/onnx.md.)"""
    from onnx.reference import ReferenceEvaluator
    src = _rank_and_constant_operands_model(str(tmp_path / "f.onnx"))
    m = onnx.load(_quantize(src, str(tmp_path / "q.onnx"), rnd((8, 3, 8, 8), 9), "qdq", act,
                            False))
    x = rnd((1, 3, 8, 8), 31)
    g, res = _hwsim_run(m, x)
    producers = {o: n for n in m.graph.node for o in n.output}
    names = [n for n in g.value_map if n in producers
             and producers[n].op_type == "QuantizeLinear"]
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    for n in names:
        m2.graph.output.append(helper.make_tensor_value_info(
            n, ONNX_TYPE[g.tensors[g.value_map[n][0]].dtype], None))
    m2 = onnx.version_converter.convert_version(m2, 19)
    ref = dict(zip([o.name for o in m2.graph.output],
                   ReferenceEvaluator(m2).run(None, {_data_input(m): x})))
    for n in names:
        t, perm = g.value_map[n]
        r = ref[n]
        _assert_same(n, res.trace.tensors[t], np.transpose(r, perm) if r.ndim == len(perm) else r)
    assert len(names) >= 9


def test_nchwc_block_follows_the_cpu_ort_runs_on():
    """ORT's NCHWc block (MlasNchwcGetBlockSize) decides which float pools it sums row by
    row; hwsim reads it from this machine's CPU flags, since ORT runs on the same machine."""
    from hwsim.frontends.onnx_quant import NCHWC_BLOCK, nchwc_block
    from hwsim.util import cpu_flags
    assert nchwc_block(frozenset({"avx2", "avx512f"})) == 16
    assert nchwc_block(frozenset({"avx2", "fma"})) == 8
    assert nchwc_block(frozenset({"sse4_2"})) == 0
    assert NCHWC_BLOCK == nchwc_block(cpu_flags())
