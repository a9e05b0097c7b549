"""ONNX import (hwsim.frontends.onnx_reader) + the float executor (hwsim.quant.float_exec).

Float comparisons use a relative tolerance: hwsim's executor, onnxruntime and TFLite's float
kernels all compute in float32 but sum in different orders, so values agree to ~1e-6 of the
tensor's magnitude, not bit for bit. This is the float path (calibration, accuracy); the integer
claim (TFLite == hwsim, exactly) is tested in test_quant_quantize.py.

* every ``light_*.onnx`` model shipped in the ``onnx`` package vs onnxruntime, comparing every
  intermediate value that has an IR tensor (``graph.value_map``), plus the same models with
  random weights in place of their constant ``ConstantOfShape`` weights (the shipped weights
  are all 0.02, which hides channel-order mistakes); ``light_vgg19`` (20 GFLOPs, 550 MB of
  weights) only with HWSIM_SLOW=1;
* small generated graphs for each op variant vs onnxruntime AND vs TFLite's float reference
  kernels (the float graph written as a .tflite): the float executor must implement TFLite's
  semantics, since that is what the quantized model approximates.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hwsim.frontends.onnx_reader import read_onnx  # noqa: E402
from hwsim.ir import ModelError  # noqa: E402
from hwsim.quant.float_exec import FloatExecutor, from_graph_layout, to_graph_layout  # noqa: E402

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
SLOW = bool(os.environ.get("HWSIM_SLOW"))
RTOL = 2e-5  # of the largest magnitude of each compared tensor


# ------------------------------------------------------------------ helpers (also used by
# test_quant_quantize.py)

def make_model(nodes, inputs: dict, outputs, inits: dict | None = None, opset: int = 13):
    """An ONNX model: ``inputs`` {name: shape}, ``outputs`` [names], ``inits`` {name: array}."""
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7 if opset < 15 else 8
    return m


def ort_run(model, feeds: dict, extra_outputs=()):
    m = model
    if extra_outputs:
        m = onnx.ModelProto()
        m.CopyFrom(model)
        have = {o.name for o in m.graph.output}
        for n in extra_outputs:
            if n not in have:
                m.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in m.graph.output]
    return dict(zip(names, s.run(None, feeds)))


def assert_close(a, b, what="", rtol=RTOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    scale = max(np.abs(b).max(initial=0.0), 1e-30)
    err = np.abs(a - b).max(initial=0.0)
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol} x {scale:.3g}"


def rnd(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def randomize_light(model, seed=0):
    """Replace every ConstantOfShape weight by random values (He-scaled for >= 2-D)."""
    rng = np.random.default_rng(seed)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    keep = []
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(v) for v in inits[n.input[0]])
            if len(shape) >= 2:
                w = rng.standard_normal(shape) * np.sqrt(2.0 / int(np.prod(shape[1:])))
            else:
                w = rng.uniform(0.5, 1.5, shape)  # biases, BN scales and variances: positive
            model.graph.initializer.append(numpy_helper.from_array(w.astype(np.float32),
                                                                   n.output[0]))
        else:
            keep.append(n)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def data_input(model) -> str:
    inits = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


def compare_with_ort(model, x, skip_ops=()):
    """Float executor vs onnxruntime on every ONNX value that has an IR tensor."""
    g = read_onnx(model)
    outs, acts = FloatExecutor(g).run(x, keep=True)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    names = [n for n in g.value_map if n in producers and producers[n] not in skip_ops]
    ref = ort_run(model, {data_input(model): x}, names)
    checked = 0
    for name in names:
        t, perm = g.value_map[name]
        assert_close(acts[t], np.transpose(ref[name], perm), name)
        checked += 1
    return g, checked


# ------------------------------------------------------------------ the light model zoo

LIGHT = ["squeezenet", "shufflenet", "bvlc_alexnet", "zfnet512", "inception_v1", "inception_v2",
         "resnet50", "densenet121", "vgg19"]


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_float_matches_onnxruntime(name):
    if name == "vgg19" and not SLOW:
        pytest.skip("slow: light_vgg19 has 20 GFLOPs and 550 MB of weights; set HWSIM_SLOW=1")
    model = onnx.load(os.path.join(LIGHT_DIR, f"light_{name}.onnx"))
    x = rnd((1, 3, 224, 224), seed=1)
    # The shipped weights are all 0.02: every class gets the same logit (~1e9), so Softmax
    # compares 1000 near-equal huge numbers and its output depends on the last ulp.
    g, checked = compare_with_ort(model, x, skip_ops=("Softmax",))
    assert checked >= 10
    lay = g.io_layout
    assert lay.source_output_shapes[0] == tuple(
        d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim)


@pytest.mark.parametrize("name", ["shufflenet", "inception_v2", "densenet121", "squeezenet"])
def test_light_model_random_weights_float_matches_onnxruntime(name):
    model = randomize_light(onnx.load(os.path.join(LIGHT_DIR, f"light_{name}.onnx")))
    g, checked = compare_with_ort(model, rnd((1, 3, 224, 224), seed=2))
    assert checked >= 10


def test_light_layout_handling():
    """ShuffleNet's channel shuffle costs one TRANSPOSE (not three), BN is folded, ReLU fused,
    SqueezeNet's [N, C, 1, 1] softmax needs no TRANSPOSE at all."""
    g = read_onnx(os.path.join(LIGHT_DIR, "light_shufflenet.onnx"))
    types = [op.type for op in g.ops]
    assert types.count("TRANSPOSE") == 16          # one per shuffle
    assert "BATCH_NORM" not in types and types.count("CONV_2D") + \
        types.count("DEPTHWISE_CONV_2D") == 49
    assert types.count("DEPTHWISE_CONV_2D") == 16
    assert g.tensors[g.inputs[0]].shape == (1, 224, 224, 3)
    g = read_onnx(os.path.join(LIGHT_DIR, "light_squeezenet.onnx"))
    assert "TRANSPOSE" not in [op.type for op in g.ops]
    fused = [op.attrs.get("fused_activation_function") for op in g.ops if op.type == "CONV_2D"]
    assert fused == ["RELU"] * 26


# ------------------------------------------------------------------ generated graphs

def _conv_w(o, i, k, seed):
    return rnd((o, i, k, k), seed, np.sqrt(2.0 / (i * k * k)))


def _case(name):
    """(model, input shape) for each generated case."""
    C = 4
    x4 = {"x": (1, C, 9, 9)}
    w = _conv_w(6, C, 3, 1)
    b = rnd((6,), 2, 0.1)
    if name == "conv_asym_pads":
        return make_model([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 0, 2, 1],
                                            strides=[2, 2])], x4, ["y"], {"w": w, "b": b})
    if name == "conv_same_lower":
        return make_model([helper.make_node("Conv", ["x", "w4"], ["y"], auto_pad="SAME_LOWER",
                                            strides=[2, 2])], x4, ["y"],
                          {"w4": _conv_w(6, C, 4, 3)})
    if name == "conv_same_upper_dilated_group":
        return make_model([helper.make_node("Conv", ["x", "wg", "b"], ["y"], group=2,
                                            dilations=[2, 2], pads=[2, 2, 2, 2])], x4, ["y"],
                          {"wg": _conv_w(6, C // 2, 3, 4), "b": b})
    if name == "depthwise_multiplier":
        return make_model([helper.make_node("Conv", ["x", "wd", "bd"], ["y"], group=C,
                                            pads=[1, 1, 1, 1], strides=[2, 2]),
                           helper.make_node("Relu", ["y"], ["z"])], x4, ["z"],
                          {"wd": _conv_w(2 * C, 1, 3, 5), "bd": rnd((2 * C,), 6, 0.1)})
    if name == "maxpool_pads_ceil":
        return make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3],
                                            strides=[2, 2], pads=[1, 1, 1, 1]),
                           helper.make_node("MaxPool", ["x"], ["z"], kernel_shape=[2, 2],
                                            strides=[2, 2], ceil_mode=1),
                           helper.make_node("MaxPool", ["x"], ["u"], kernel_shape=[3, 3],
                                            strides=[1, 1], pads=[1, 1, 1, 1])],
                          x4, ["y", "z", "u"], opset=11)
    if name == "avgpool_variants":
        return make_model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                            strides=[2, 2], pads=[1, 1, 1, 1]),
                           helper.make_node("AveragePool", ["x"], ["z"], kernel_shape=[3, 3],
                                            strides=[1, 1], pads=[1, 1, 1, 1],
                                            count_include_pad=1),
                           helper.make_node("AveragePool", ["x"], ["u"], kernel_shape=[3, 3],
                                            strides=[1, 1], pads=[1, 1, 1, 1]),
                           helper.make_node("AveragePool", ["x"], ["v"], kernel_shape=[2, 2],
                                            strides=[2, 2], ceil_mode=1)],
                          x4, ["y", "z", "u", "v"], opset=11)
    if name == "gap_flatten_gemm":
        return make_model([helper.make_node("GlobalAveragePool", ["x"], ["g"]),
                           helper.make_node("Flatten", ["g"], ["f"]),
                           helper.make_node("Gemm", ["f", "B", "c"], ["y"], alpha=0.5, beta=2.0),
                           helper.make_node("GlobalMaxPool", ["x"], ["m"])],
                          x4, ["y", "m"], {"B": rnd((C, 5), 7), "c": rnd((1, 5), 8)})
    if name == "flatten_fc_permuted":
        return make_model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                           helper.make_node("Flatten", ["c"], ["f"]),
                           helper.make_node("Gemm", ["f", "W", "bb"], ["y"], transB=1)],
                          x4, ["y"], {"w": w, "b": b, "W": rnd((7, 6 * 81), 9, 0.05),
                                      "bb": rnd((7,), 10)})
    if name == "flatten_transposed":
        return make_model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                           helper.make_node("Flatten", ["c"], ["f"]),
                           helper.make_node("Relu", ["f"], ["y"]),
                           helper.make_node("MatMul", ["y", "M"], ["z"])],
                          x4, ["z", "y"], {"w": w, "b": b, "M": rnd((6 * 81, 3), 11, 0.05)})
    if name == "bn_mul_add_standalone":
        return make_model([helper.make_node("Conv", ["x", "w", "b"], ["c1"], pads=[1, 1, 1, 1]),
                           helper.make_node("Concat", ["c1", "x"], ["cat"], axis=1),
                           helper.make_node("BatchNormalization", ["cat", "s", "t", "m", "v"],
                                            ["bn"]),
                           helper.make_node("Relu", ["bn"], ["r"]),
                           helper.make_node("Mul", ["r", "k"], ["mu"]),
                           helper.make_node("Add", ["mu", "a"], ["ad"]),
                           helper.make_node("Sub", ["one", "ad"], ["sb"]),
                           helper.make_node("Div", ["sb", "two"], ["y"])],
                          x4, ["y"], {"w": w, "b": b, "s": rnd((10,), 12).__abs__() + 0.5,
                                      "t": rnd((10,), 13), "m": rnd((10,), 14),
                                      "v": np.abs(rnd((10,), 15)) + 0.5,
                                      "k": rnd((10, 1, 1), 16), "a": np.float32(0.3),
                                      "one": np.float32(1.0), "two": np.float32(2.0)})
    if name == "se_block_broadcast":
        return make_model([helper.make_node("GlobalAveragePool", ["x"], ["g"]),
                           helper.make_node("Sigmoid", ["g"], ["s"]),
                           helper.make_node("Mul", ["x", "s"], ["m"]),
                           helper.make_node("Add", ["m", "x"], ["a"]),
                           helper.make_node("Sum", ["a", "m", "x"], ["y"])], x4, ["y"])
    if name == "channel_shuffle":
        return make_model([helper.make_node("Conv", ["x", "w8", "b8"], ["c"], pads=[1, 1, 1, 1]),
                           helper.make_node("Reshape", ["c", "s5"], ["r5"]),
                           helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
                           helper.make_node("Reshape", ["t5", "s4"], ["r4"]),
                           helper.make_node("Conv", ["r4", "w2", "b2"], ["y"], group=2)],
                          x4, ["y", "r4"],
                          {"w8": _conv_w(8, C, 3, 17), "b8": rnd((8,), 18),
                           "s5": np.array([1, 2, 4, 9, 9], np.int64),
                           "s4": np.array([1, 8, 9, 9], np.int64),
                           "w2": _conv_w(4, 4, 1, 19), "b2": rnd((4,), 20)})
    if name == "pad_transpose_reshape":
        return make_model([helper.make_node("Pad", ["x", "p"], ["z"]),
                           helper.make_node("Pad", ["x", "p2", "cv"], ["u"]),
                           helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                           helper.make_node("Reshape", ["t", "s"], ["y"]),
                           helper.make_node("Unsqueeze", ["y", "ax"], ["uq"]),
                           helper.make_node("Squeeze", ["uq", "ax"], ["sq"]),
                           helper.make_node("Identity", ["sq"], ["id"]),
                           helper.make_node("Dropout", ["id"], ["d"])],
                          x4, ["z", "u", "d"],
                          {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64),
                           "p2": np.array([0, 1, 0, 0, 0, 1, 1, 1], np.int64),
                           "cv": np.float32(0.5), "s": np.array([1, 81, 4], np.int64),
                           "ax": np.array([1], np.int64)})
    if name == "resize_modes":
        x = {"x": (1, C, 5, 6)}
        nodes, outs = [], []
        for k, (mode, ctm, nm, sizes) in enumerate([
                ("nearest", "asymmetric", "floor", [1, C, 10, 12]),
                ("nearest", "half_pixel", "round_prefer_floor", [1, C, 10, 12]),
                ("nearest", "half_pixel", "round_prefer_ceil", [1, C, 7, 9]),
                ("nearest", "align_corners", "round_prefer_ceil", [1, C, 9, 11]),
                ("linear", "half_pixel", "", [1, C, 7, 9]),
                ("linear", "align_corners", "", [1, C, 9, 11]),
                ("linear", "asymmetric", "", [1, C, 10, 12])]):
            attrs = dict(mode=mode, coordinate_transformation_mode=ctm)
            if nm:
                attrs["nearest_mode"] = nm
            nodes.append(helper.make_node("Resize", ["x", "", "", f"sz{k}"], [f"y{k}"], **attrs))
            outs.append(f"y{k}")
        return make_model(nodes, x, outs, {f"sz{k}": np.array(s, np.int64) for k, s in
                                           enumerate([[1, C, 10, 12], [1, C, 10, 12],
                                                      [1, C, 7, 9], [1, C, 9, 11], [1, C, 7, 9],
                                                      [1, C, 9, 11], [1, C, 10, 12]])})
    if name == "upsample_opset9":
        return make_model([helper.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")],
                          x4, ["y"], {"sc": np.array([1, 1, 2, 3], np.float32)}, opset=9)
    if name == "softmax_opset11_4d":
        return make_model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], x4, ["y"],
                          opset=11)
    if name == "softmax_opset13_channels":
        return make_model([helper.make_node("Softmax", ["x"], ["y"], axis=1),
                           helper.make_node("Softmax", ["x"], ["z"], axis=-1)],
                          x4, ["y", "z"])
    if name == "lrn":
        return make_model([helper.make_node("LRN", ["x"], ["y"], size=3, alpha=0.5, beta=0.75,
                                            bias=1.5)], x4, ["y"])
    if name == "activations":
        return make_model([helper.make_node("Clip", ["x"], ["c6"], min=0.0, max=6.0),
                           helper.make_node("LeakyRelu", ["x"], ["lr"], alpha=0.2),
                           helper.make_node("Sigmoid", ["x"], ["sg"]),
                           helper.make_node("Tanh", ["x"], ["th"]),
                           helper.make_node("Clip", ["x"], ["c1"], min=-1.0, max=1.0)],
                          x4, ["c6", "lr", "sg", "th", "c1"], opset=6)
    if name == "clip_inputs_hardswish":
        return make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
                           helper.make_node("HardSwish", ["x"], ["h"])], x4, ["c", "h"],
                          {"lo": np.float32(0.0), "hi": np.float32(6.0)}, opset=14)
    if name == "slice_split_reducemean":
        return make_model([helper.make_node("Slice", ["x", "st", "en", "ax"], ["s"]),
                           helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=1),
                           helper.make_node("ReduceMean", ["b"], ["m"], axes=[2, 3], keepdims=0),
                           helper.make_node("Slice", ["x", "st1", "en1", "ax1"], ["s1"]),
                           helper.make_node("Concat", ["s", "s1"], ["y"], axis=1)],
                          x4, ["y", "m"],
                          {"st": np.array([1, -8], np.int64), "en": np.array([3, 100], np.int64),
                           "ax": np.array([1, 3], np.int64), "sp": np.array([1, 3], np.int64),
                           "st1": np.array([0, -8], np.int64), "en1": np.array([1, 100], np.int64),
                           "ax1": np.array([1, 3], np.int64)})
    raise KeyError(name)


CASES = ["conv_asym_pads", "conv_same_lower", "conv_same_upper_dilated_group",
         "depthwise_multiplier", "maxpool_pads_ceil", "avgpool_variants", "gap_flatten_gemm",
         "flatten_fc_permuted", "flatten_transposed", "bn_mul_add_standalone",
         "se_block_broadcast", "channel_shuffle", "pad_transpose_reshape", "resize_modes",
         "upsample_opset9", "softmax_opset11_4d", "softmax_opset13_channels", "lrn", "activations",
         "clip_inputs_hardswish", "slice_split_reducemean"]


def tflite_float(graph, x):
    """Run a float graph IR with TFLite's float reference kernels."""
    from oracle import tflite_ref

    from hwsim.frontends.tflite_writer import serialize_tflite
    return tflite_ref(serialize_tflite(graph), [to_graph_layout(graph, x)])


@pytest.mark.parametrize("case", CASES)
def test_generated_graph_float(case):
    model = _case(case)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = rnd(shape, seed=3)
    g = read_onnx(model)
    outs = FloatExecutor(g).run(x)
    ref = ort_run(model, {"x": x})
    for k, o in enumerate(model.graph.output):
        assert_close(from_graph_layout(g, outs[k], k), ref[o.name], f"{case}:{o.name}")
    if case == "lrn":
        # TFLite's reference LOCAL_RESPONSE_NORMALIZATION sums over channels [c - r, c + r)
        # (measured: radius 1 gives windows of 1, 2, 2, ... channels), one fewer than
        # TensorFlow's / ONNX's [c - r, c + r]; the float executor follows ONNX. LRN has no
        # integer kernel, so this never reaches a quantized model.
        return
    # TFLite's float kernels agree with the float executor (same op semantics)
    tfl = tflite_float(g, x)
    for k, (a, b) in enumerate(zip(outs, tfl)):
        assert_close(a, b, f"{case}: TFLite output {k}", rtol=1e-5)


def test_flatten_strategies():
    """Flatten -> Gemm permutes the FC weights (no TRANSPOSE); Flatten -> Relu transposes."""
    g = read_onnx(_case("flatten_fc_permuted"))
    assert [op.type for op in g.ops] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    g = read_onnx(_case("flatten_transposed"))
    assert "TRANSPOSE" in [op.type for op in g.ops]
    g = read_onnx(_case("bn_mul_add_standalone"))
    types = [op.type for op in g.ops]
    # BN + Relu + Mul + Add after a Concat: one 1x1 depthwise conv with a fused ReLU, then the
    # Mul/Add/Sub/Div chain folded into a second one
    assert types.count("DEPTHWISE_CONV_2D") == 2 and "MUL" not in types


def test_onnx_errors(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        read_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \x00\x01")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        read_onnx(bad)
    m = make_model([helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")],
                   {"x": (2, 3)}, ["y"])
    with pytest.raises(ModelError, match="unsupported ONNX op Einsum"):
        read_onnx(m)
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"])], {"x": (1, 2, 4, 4),
                                                                  "w": (3, 2, 1, 1)}, ["y"])
    with pytest.raises(ModelError, match="must be a constant"):
        read_onnx(m)
    m = make_model([helper.make_node("Clip", ["x"], ["y"], min=-2.0, max=3.0)],
                   {"x": (1, 2, 4, 4)}, ["y"], opset=6)
    with pytest.raises(ModelError, match="no TFLite equivalent"):
        read_onnx(m)


# ------------------------------------------------------------------ malformed files (found by
# tests/test_fuzz.py as tracebacks): one ModelError naming the file and the node or initializer

def _small_cnn(**edit):
    """x [1, 3, 8, 8] -> Conv 3x3 -> Relu -> MaxPool -> Flatten -> Gemm -> y."""
    inits = {"w": _conv_w(4, 3, 3, 1), "b": rnd((4,), 2, 0.1), "fw": rnd((5, 64), 3, 0.1),
             "fb": rnd((5,), 4, 0.1)}
    conv = dict(pads=[1, 1, 1, 1], strides=[1, 1])
    conv.update(edit.pop("conv", {}))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **conv),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    inits.update(edit.pop("inits", {}))
    return make_model(nodes, {"x": (1, 3, 8, 8)}, ["y"], inits, **edit)


def _with_init(model, name, **fields):
    for t in model.graph.initializer:
        if t.name == name:
            for k, v in fields.items():
                if k == "dims":
                    del t.dims[:]
                    t.dims.extend(v)
                else:
                    setattr(t, k, v)
    return model


MALFORMED_ONNX = [
    ("dims do not match the data", lambda: _with_init(_small_cnn(), "b", dims=[1]),
     "initializer 'b' (dims [1], data type 1) cannot be read: ValueError"),
    ("2^40 elements", lambda: _with_init(_small_cnn(), "b", dims=[2**40]),
     "initializer 'b' has dims [1099511627776] (at most 2,147,483,647 elements"),
    ("negative dimension", lambda: _with_init(_small_cnn(), "fb", dims=[-5]),
     "initializer 'fb' has dims [-5]"),
    ("NaN weights", lambda: _small_cnn(inits={"fb": np.array([1, np.nan, 0, 0, 0], np.float32)}),
     "initializer 'fb' holds NaN or infinity"),
    ("stride 0", lambda: _small_cnn(conv=dict(strides=[0, 0])),
     "Conv node producing ['c']: strides [0, 0]: each must be >= 1"),
    ("three strides", lambda: _small_cnn(conv=dict(strides=[1, 1, 1])),
     "strides [1, 1, 1]: expected 2 integers"),
    ("pads of opset 10", lambda: _small_cnn(opset=10),
     None),  # a valid model: must still import
]


@pytest.mark.parametrize("build, needle", [m[1:] for m in MALFORMED_ONNX],
                         ids=[m[0] for m in MALFORMED_ONNX])
def test_malformed_onnx_models(tmp_path, build, needle):
    path = tmp_path / "m.onnx"
    path.write_bytes(build().SerializeToString())
    if needle is None:
        read_onnx(path)
        return
    with pytest.raises(ModelError) as e:
        read_onnx(path)
    assert str(e.value).startswith(f"{path}: ") and needle in str(e.value), str(e.value)


def test_an_unforeseen_bad_attribute_names_the_node(tmp_path):
    """A Concat without its axis, a Pad (opset 10) without pads: node named, no traceback."""
    x = {"x": (1, 3, 4, 4)}
    m = make_model([helper.make_node("Relu", ["x"], ["r"]),
                    helper.make_node("Concat", ["r", "x"], ["y"])], x, ["y"])
    with pytest.raises(ModelError, match=r"Concat node producing \['y'\]: Concat needs its axis"):
        read_onnx(m)
    m = make_model([helper.make_node("Pad", ["x"], ["y"], mode="constant")], x, ["y"], opset=10)
    with pytest.raises(ModelError, match=r"Pad node producing \['y'\]: cannot import this node "
                                         r"\(IndexError"):
        read_onnx(m)
