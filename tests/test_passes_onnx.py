"""hwsim/passes/onnx_folds.py: the ONNX importer's folds as graph passes (ONNX_PASSES).

The contract of each pass (a name, "Preserves:", a new graph, its input left as it was) and what
it folds, on small float graphs built here; the importer runs the pipeline
(tests/test_frontend_onnx.py checks the imported light zoo models against onnxruntime, and
test_light_layout_handling that BN is folded and ReLU fused).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from hwsim.ir import Graph, Op, Tensor
from hwsim.passes import (FOLD_AFFINE_INTO_MAC, FUSE_ACTIVATION, ONNX_PASSES,
                          FoldAffineIntoMac, FuseActivation, GraphPass, run_passes)

F32 = np.dtype(np.float32)


def _graph(relu=True, affine=True, second_reader=False, fused="NONE"):
    """x -> CONV_2D (1x1, 2 -> 3 channels) [-> 1x1 DEPTHWISE affine] [-> RELU] -> y."""
    rng = np.random.default_rng(0)
    t = [Tensor(0, "x", (1, 4, 4, 2), F32),
         Tensor(1, "w", (3, 1, 1, 2), F32, data=rng.standard_normal((3, 1, 1, 2)).astype(F32)),
         Tensor(2, "b", (3,), F32, data=rng.standard_normal(3).astype(F32)),
         Tensor(3, "conv", (1, 4, 4, 3), F32)]
    ops = [Op(0, "CONV_2D", [0, 1, 2], [3], dict(padding="VALID", stride_h=1, stride_w=1,
                                                dilation_h_factor=1, dilation_w_factor=1,
                                                fused_activation_function=fused))]
    cur = 3
    s, sh = np.array([0.5, 2.0, 1.5]), np.array([0.1, -0.2, 0.3])
    if affine:
        t += [Tensor(4, "bn/weights", (1, 1, 1, 3), F32, data=s.reshape(1, 1, 1, 3).astype(F32)),
              Tensor(5, "bn/bias", (3,), F32, data=sh.astype(F32)),
              Tensor(6, "bn", (1, 4, 4, 3), F32)]
        ops.append(Op(len(ops), "DEPTHWISE_CONV_2D", [cur, 4, 5], [6], dict(
            padding="VALID", stride_h=1, stride_w=1, depth_multiplier=1, dilation_h_factor=1,
            dilation_w_factor=1, fused_activation_function="NONE", _affine=(s, sh, 1))))
        cur = 6
    if relu:
        t.append(Tensor(len(t), "relu", (1, 4, 4, 3), F32))
        ops.append(Op(len(ops), "RELU", [cur], [len(t) - 1], {}))
        cur = len(t) - 1
    outputs = [cur]
    if second_reader:  # the conv's output is also a graph output: nothing may fold into it
        outputs.append(3)
    g = Graph(t, ops, [0], outputs, "g", "test")
    g.value_map = {"x": (0, (0, 2, 3, 1)), "conv": (3, (0, 2, 3, 1)),
                   "bn": (6, (0, 2, 3, 1)), "relu": (cur, (0, 2, 3, 1))}
    return g, s, sh


def _snapshot(g):
    return ([(o.type, list(o.inputs), list(o.outputs), dict(o.attrs)) for o in g.ops],
            [(x.name, None if x.data is None else x.data.copy()) for x in g.tensors],
            list(g.outputs), dict(g.value_map))


def _same(a, b):
    return repr(a) == repr(b)


def test_onnx_pipeline_is_declared_and_the_passes_keep_the_contract():
    assert ONNX_PASSES == (FOLD_AFFINE_INTO_MAC, FUSE_ACTIVATION)
    for p in ONNX_PASSES:
        assert isinstance(p, GraphPass)
        assert p.name == type(p).__name__ and "Preserves:" in type(p).__doc__


@pytest.mark.parametrize("p", [FoldAffineIntoMac(), FuseActivation()])
def test_each_onnx_pass_returns_a_new_graph_and_leaves_its_input(p):
    g, *_ = _graph()
    before = _snapshot(g)
    data = [x.data for x in g.tensors]
    out = p.apply(g)
    assert out is not g and out.ops is not g.ops
    assert _same(_snapshot(g), before)
    assert all(x.data is d for x, d in zip(g.tensors, data))   # weights not refilled in place


def test_fold_affine_into_conv_weights_and_bias_in_float64():
    g, s, sh = _graph(relu=False)
    w, b = g.tensors[1].data, g.tensors[2].data
    out = FoldAffineIntoMac().apply(g)
    assert [o.type for o in out.ops] == ["CONV_2D"]
    conv = out.ops[0]
    assert conv.outputs == [3] and out.tensors[3].name == "bn" and out.outputs == [3]
    np.testing.assert_array_equal(out.tensors[1].data, (w.astype(np.float64) *
                                                        s.reshape(3, 1, 1, 1)).astype(F32))
    np.testing.assert_array_equal(out.tensors[2].data, (b.astype(np.float64) * s + sh)
                                  .astype(F32))
    assert out.value_map["bn"] == (3, (0, 2, 3, 1)) and "conv" not in out.value_map
    assert all("_affine" not in o.attrs for o in out.ops)


def test_fuse_activation_into_the_producer():
    g, *_ = _graph(affine=False)
    out = FuseActivation().apply(g)
    assert [(o.type, o.attrs["fused_activation_function"]) for o in out.ops] == \
        [("CONV_2D", "RELU")]
    assert out.outputs == [3] and out.tensors[3].name == "relu"
    assert out.value_map["relu"][0] == 3 and "conv" not in out.value_map


def test_pipeline_folds_bn_then_fuses_relu():
    g, *_ = _graph()
    out = run_passes(ONNX_PASSES, g)
    assert [(o.type, o.attrs["fused_activation_function"]) for o in out.ops] == \
        [("CONV_2D", "RELU")]
    assert out.tensors[out.outputs[0]].name == "relu"


@pytest.mark.parametrize("case", ["second_reader", "fused"])
def test_nothing_folds_into_a_tensor_read_elsewhere_or_already_fused(case):
    g, *_ = _graph(second_reader=case == "second_reader",
                   fused="RELU6" if case == "fused" else "NONE")
    out = run_passes(ONNX_PASSES, g)
    types = [o.type for o in out.ops]
    assert types[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    # the affine stays a 1x1 depthwise, unmarked; the RELU may still fuse into it
    assert all("_affine" not in o.attrs for o in out.ops)
    assert copy.copy(out.tensors[1].data).tobytes() == g.tensors[1].data.tobytes()


def test_importer_graph_equals_the_folded_pipeline_on_conv_bn_relu():
    """End to end through the importer: Conv -> BatchNormalization -> Relu is one CONV_2D
    with a fused RELU, its output named after the Relu."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from hwsim.frontends.onnx_reader import read_onnx
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((3, 2, 1, 1)).astype(F32), "w"),
             numpy_helper.from_array(rng.standard_normal(3).astype(F32), "b")] + \
        [numpy_helper.from_array(np.abs(rng.standard_normal(3)).astype(F32) + 0.5, n)
         for n in ("g", "beta", "m", "v")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    gr = helper.make_graph(nodes, "t",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(gr, opset_imports=[helper.make_opsetid("", 13)])
    g = read_onnx(m, output_layout="native")
    assert [(o.type, o.attrs["fused_activation_function"]) for o in g.ops] == \
        [("CONV_2D", "RELU")]
    assert g.tensors[g.outputs[0]].name == "y" and set(g.value_map) == {"x", "y"}
    assert onnx is not None
