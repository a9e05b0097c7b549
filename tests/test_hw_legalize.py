"""Legalization: map_network(strict | approx), the HwNetwork API, config-aware lowering.

strict refuses (an HwsimError naming layer, op and reason) whatever the hardware cannot do
exactly; approx derives the nearest hardware parameters and reports per layer what that costs
on given inputs (end to end, and each layer fed the reference's input).
"""
from __future__ import annotations

import numpy as np
import pytest

from test_hw_dataflow import fc_graph, small_cnn

from hwsim import HwsimError
from hwsim.engine import Network, RunResult
from hwsim.frontends.builder import GraphBuilder
from hwsim.hw import (HwNetwork, LegalizationError, LegalizationRow, load_config,
                      map_network)
from hwsim.hw.config import config_from_dict
from hwsim.ir import Op, Tensor
from hwsim.arith import real_to_m_e
from hwsim.lower import lower, mult_shift_params
from hwsim.registry import KERNELS
from hwsim.params import FusedParams
from hwsim.vocab import Dataflow, Overflow, RequantScheme, Rounding


def _x(rng, shape=(1, 8, 8, 3), dtype=np.int8):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def _cfg(**sections):
    d = {"name": "test"}
    d.update(sections)
    return config_from_dict(d)


# -- strict: exact mappings -------------------------------------------------------------------

def test_strict_tflite_int8_maps_every_array_op_exactly():
    rng = np.random.default_rng(0)
    g = small_cnn(rng)
    x = _x(rng)
    hw = map_network(g, "tflite-int8", legalize="strict", inputs=x, host_tail=True)
    assert isinstance(hw, HwNetwork) and hw.exact and hw.legalize == "strict"
    assert hw.config.name == "tflite-int8" and hw.graph is g
    ops = [layer.op for layer in hw.program.layers]
    assert ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "ADD", "AVERAGE_POOL_2D",
                   "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert [hw.placement[layer.index] for layer in hw.program.layers] == \
        ["array"] * 5 + ["alias", "array", "host"]
    assert all(isinstance(r, LegalizationRow) and r.exact and r.reasons == [] for r in hw.report)
    assert all(r.changed_propagated == 0 == r.changed_isolated for r in hw.report)
    assert [r.elements for r in hw.report][:2] == [512, 128]
    res = hw.run(x)
    assert isinstance(res, RunResult) and res.trace is not None
    ref = Network(lower(g), g).run(x, trace=True)
    assert all(np.array_equal(a, b) for a, b in zip(res.outputs, ref.outputs))
    for k, acc in ref.trace.accumulators.items():
        assert np.array_equal(res.trace.accumulators[k], acc)
    assert hw.memory["weights"]["words"] > 0
    assert hw.memory["weights"]["capacity"] == load_config("tflite-int8").memories.weights.depth
    assert "FULLY_CONNECTED" in hw.format_report()
    assert len(hw.layer_stats()) == len(hw.program.layers)
    assert len(hw.headroom(res)) == 3 and all(r.out_of_range == 0 for r in hw.headroom(res))


def test_map_network_from_a_file_path(tmp_path):
    from hwsim.frontends.tflite_writer import serialize_tflite
    g = small_cnn(np.random.default_rng(1), tail=False)
    p = tmp_path / "m.tflite"
    p.write_bytes(serialize_tflite(g))
    hw = map_network(p, load_config("tflite-int8"))
    assert hw.exact and hw.placement[hw.program.layers[-1].index] == "array"
    assert hw.reference.requant_scheme == RequantScheme.tflite_double
    assert hw.program.requant_scheme == RequantScheme.tflite_double


def test_fc_double_round_params_are_integers_m_e():
    """FULLY_CONNECTED under a TFLite scheme: scheme 5 with multiplier = M, shift = E,
    real = M * 2^E exactly (the requant word of docs/dev/accel-interface.md)."""
    w = np.arange(-12, 12, dtype=np.int8).reshape(3, 8)
    g = fc_graph((1, 8), w, [1, 2, 3], s_in=0.02, s_out=0.05,
                 w_scales=[0.01, 0.003, 0.0071])
    hw = map_network(g, "tflite-int8")
    p = hw.program.layers[0].params.requant
    assert p.scheme == RequantScheme.double_round
    assert p.multiplier.dtype == np.int64 and p.shift.dtype == np.int64
    for c, ws in enumerate([0.01, 0.003, 0.0071]):
        real = float(np.float32(0.02)) * float(np.float32(ws)) / float(np.float32(0.05))
        assert (int(p.multiplier[c]), int(p.shift[c])) == real_to_m_e(real)
        assert 2**52 <= p.multiplier[c] < 2**53 and -1024 <= p.shift[c] <= 1023
    assert not hasattr(p, "real_multiplier")  # integers only


# -- strict refusals, each naming layer, op and reason -------------------------------------------

def _refused(g, cfg, match, **kw):
    with pytest.raises(LegalizationError, match=match) as e:
        map_network(g, cfg, **kw)
    assert isinstance(e.value, HwsimError)
    return str(e.value)


def test_host_layers_run_anywhere_head_middle_and_tail():
    g = small_cnn(np.random.default_rng(2))   # ... FC -> SOFTMAX: a host tail
    hw = map_network(g, "tflite-int8")   # no host_tail needed
    assert hw.placement[7] == "host" and "SOFTMAX is not an array op" in hw.host_reasons[7]
    # a host layer at the head and one in the middle, array layers after each
    b = GraphBuilder("mid")
    x = b.input("x", (1, 4, 4, 2), np.int8, scale=0.02, zero_point=0)
    r = b.activation("r", (1, 4, 4, 2), np.int8, scale=1.0 / 256, zero_point=-128)
    b.op("SOFTMAX", [x], [r], beta=1.0)
    w = b.const("w", np.ones((3, 1, 1, 2), np.int8), scales=np.full(3, 0.01, np.float32))
    y = b.activation("y", (1, 4, 4, 3), np.int8, scale=0.05, zero_point=0)
    b.op("CONV_2D", [r, w], [y], padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1,
         dilation_h_factor=1, fused_activation_function="NONE")
    t = b.activation("t", (1, 4, 4, 3), np.int8, scale=1.0 / 256, zero_point=-128)
    b.op("SOFTMAX", [y], [t], beta=1.0)
    w2 = b.const("w2", np.ones((2, 1, 1, 3), np.int8), scales=np.full(2, 0.01, np.float32))
    z = b.activation("z", (1, 4, 4, 2), np.int8, scale=0.05, zero_point=0)
    b.op("CONV_2D", [t, w2], [z], padding="VALID", stride_w=1, stride_h=1,
         dilation_w_factor=1, dilation_h_factor=1, fused_activation_function="NONE")
    b.output(z)
    g = b.build()
    hw = map_network(g, "tflite-int8")
    assert [hw.placement[i] for i in range(4)] == ["host", "array", "host", "array"]
    assert set(hw.host_reasons) == {0, 2}
    xs = np.random.default_rng(3).integers(-128, 128, (1, 4, 4, 2), dtype=np.int8)
    assert np.array_equal(hw.run(xs).outputs[0], Network(lower(g), g).run(xs).outputs[0])


def test_host_tail_is_accepted_as_a_no_op_with_a_note(capsys):
    g = small_cnn(np.random.default_rng(2))
    a = map_network(g, "tflite-int8", host_tail=True)
    assert capsys.readouterr().err.count("\n") == 1   # one line
    b = map_network(g, "tflite-int8")
    assert capsys.readouterr().err == ""
    assert a.placement == b.placement


def test_grouped_conv_is_not_an_array_op():
    b = GraphBuilder("grouped")
    x = b.input("x", (1, 4, 4, 4), np.int8, scale=0.02, zero_point=0)
    w = b.const("w", np.ones((4, 1, 1, 2), np.int8), scales=np.full(4, 0.01, np.float32))
    y = b.activation("y", (1, 4, 4, 4), np.int8, scale=0.05, zero_point=0)
    b.op("CONV_2D", [x, w], [y], padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1,
         dilation_h_factor=1, fused_activation_function="NONE")
    b.output(y)
    hw = map_network(b.build(), "tflite-int8")  # the whole net on the host
    assert hw.placement == {0: "host"}
    assert "CONV_2D with groups = 2" in hw.host_reasons[0]


def test_non_tflite_scheme_refused_in_strict():
    g = small_cnn(np.random.default_rng(3), tail=False)
    msg = _refused(g, "narrow-acc-24", r"layer 0 \(CONV_2D\): requant scheme mult_shift cannot "
                                       r"represent the model's tflite_double requantization")
    assert "layer 1 (DEPTHWISE_CONV_2D)" in msg and "layer 6 (FULLY_CONNECTED)" in msg
    assert "double_round" in msg  # the FC's TFLite requantization
    _refused(g, "shift-only-int8", r"requant scheme shift_only")


def test_per_tensor_unit_for_a_per_channel_model():
    cfg = _cfg(requant={"per_channel": False})
    g = small_cnn(np.random.default_rng(4), tail=False)
    _refused(g, cfg, r"layer 0 \(CONV_2D\): 8 per-channel reals collapsed to one \(lower "
                     r"median")
    # a per-tensor model maps exactly onto the per-tensor unit (one requant word per layer)
    g1 = small_cnn(np.random.default_rng(4), tail=False, per_channel=False)
    hw = map_network(g1, cfg)
    assert hw.exact
    assert all(len(layer.params.requant.multiplier) == 1 for layer in hw.program.layers
               if layer.has_acc)


def test_missing_fused_activation():
    cfg = _cfg(requant={"activations": ["none", "relu"]})
    g = small_cnn(np.random.default_rng(5), act1="RELU6", tail=False)
    _refused(g, cfg, r"layer 0 \(CONV_2D\): fused activation RELU6 is not in "
                     r"requant.activations \['none', 'relu'\]: RELU instead")
    hw = map_network(g, cfg, legalize="approx")
    p, ref = hw.program.layers[0].params.requant, hw.reference.layers[0].params.requant
    assert p.act_min == ref.act_min and p.act_max == 127 > ref.act_max
    assert not hw.report[0].exact and hw.report[1].exact


def test_no_output_zero_point():
    cfg = _cfg(requant={"zero_point": False})
    g = small_cnn(np.random.default_rng(6), tail=False)
    _refused(g, cfg, r"layer 0 \(CONV_2D\): output zero point -128: the requant unit adds "
                     r"none")
    hw = map_network(g, cfg, legalize="approx")
    assert hw.program.layers[0].params.requant.out_zp == 0


def test_data_widths_refused_in_both_modes():
    rng = np.random.default_rng(7)
    g = small_cnn(rng, tail=False)
    for mode in ("strict", "approx"):
        _refused(g, _cfg(data={"weight_bits": 4}), r"layer 0 \(CONV_2D\): weights in "
                 r"\[-\d+, \d+\] do not fit the 4-bit signed \[-8, 7\] weights", legalize=mode)
        _refused(g, _cfg(data={"input_signed": False}), r"layer 0 \(CONV_2D\): input tensor 0 "
                 r"'x' \(int8, values in \[-128, 127\]\) does not fit the 8-bit unsigned",
                 legalize=mode)
    # weights that happen to fit 4 bits are fine
    w = rng.integers(-8, 8, size=(2, 6)).astype(np.int8)
    assert map_network(fc_graph((1, 6), w, [5, -5]), _cfg(data={"weight_bits": 4})).exact
    # a bias wider than the accumulator
    _refused(fc_graph((1, 6), w, [2**20, 0]), _cfg(accumulator={"bits": 16}),
             r"layer 0 \(FULLY_CONNECTED\): bias values in \[0, 1048576\] do not fit the "
             r"16-bit accumulator", legalize="approx")


def test_int16_model():
    b = GraphBuilder("fc16")
    x = b.input("x", (1, 6), np.int16, scale=0.001, zero_point=0)
    wt = np.arange(-9, 9, dtype=np.int8).reshape(3, 6)
    w = b.const("w", wt, scales=np.full(3, 0.01, np.float32))
    bias = b.const("b", np.array([100, -7, 2**40], np.int64), scales=np.full(3, 1e-5, np.float32))
    y = b.activation("y", (1, 3), np.int16, scale=0.002, zero_point=0)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], fused_activation_function="NONE",
         weights_format="DEFAULT", keep_num_dims=False)
    b.output(y)
    g = b.build()
    _refused(g, "tflite-int8", r"input tensor 0 'x' \(int16, values in \[-32768, 32767\]\) "
                               r"does not fit the 8-bit signed")
    cfg16 = _cfg(data={"input_bits": 16, "output_bits": 16},
                 accumulator={"bits": 64},
                 memories={"activations": {"word_bits": 64, "lanes": 4},
                           "bias": {"word_bits": 64, "lanes": 1}})
    hw = map_network(g, cfg16)
    xs = np.array([[32767, -32768, 5, 0, 1, -1]], np.int16)
    r = hw.run(xs)
    ref = Network(lower(g), g).run(xs, trace=True)
    assert np.array_equal(r.outputs[0], ref.outputs[0])
    assert r.trace.accumulators[0].dtype == np.int64
    assert np.array_equal(r.trace.accumulators[0], ref.trace.accumulators[0])
    # with 32-bit bias lanes, the 2^40 bias does not fit
    _refused(g, _cfg(data={"input_bits": 16, "output_bits": 16}, accumulator={"bits": 64},
                     memories={"activations": {"word_bits": 64, "lanes": 4}}),
             r"bias values in \[-7, 1099511627776\] do not fit the 32-bit lanes of the bias "
             r"memory")


def test_memory_too_small():
    g = small_cnn(np.random.default_rng(8), tail=False)
    cfg = _cfg(memories={"weights": {"depth": 4, "banks": 2}})
    msg = _refused(g, cfg, r"memories\.weights: \d+ words needed up to here, capacity depth x "
                           r"banks = 4 x 2 = 8", legalize="approx")
    assert "layer 0 (CONV_2D)" in msg
    cfg = _cfg(memories={"activations": {"depth": 100}})
    _refused(g, cfg, r"memories\.activations: \d+ words needed", legalize="approx")
    ok = _cfg(memories={"weights": {"depth": 16, "banks": 8}})
    hw = map_network(g, ok)
    assert hw.memory["weights"]["words"] <= 128 == hw.memory["weights"]["capacity"]


def test_narrow_accumulator_strict_refuses_approx_reports():
    rng = np.random.default_rng(9)
    g = small_cnn(rng, tail=False)
    x = _x(rng)
    cfg = _cfg(accumulator={"bits": 14, "overflow": "saturate"})
    _refused(g, cfg, r"layer 0 \(CONV_2D\): accumulator: partial sums of channel \d+ can reach "
                     r"\[-?\d+, \d+\] \(\d+ bits\) for inputs in \[-128, 127\], beyond the 14-bit "
                     r"saturate accumulator \(the model accumulates in int32")
    hw = map_network(g, cfg, legalize="approx", inputs=x)
    assert not hw.exact
    row0 = hw.report[0]
    assert row0.changed_propagated == row0.changed_isolated > 0  # layer 0: the same input
    # 32-bit saturating: no 32-bit sum of this net can overflow -> exact
    assert map_network(g, _cfg(accumulator={"bits": 32, "overflow": "saturate"})).exact
    # 64-bit wrapping: the bound fits int32 -> exact as well
    assert map_network(g, _cfg(accumulator={"bits": 64})).exact


def test_bad_legalize_mode():
    with pytest.raises(HwsimError, match=r"legalize='fast': allowed values strict, approx"):
        map_network(small_cnn(np.random.default_rng(0)), "tflite-int8", legalize="fast")


# -- approx: nearest parameters and their cost ----------------------------------------------------

def test_approx_mult_shift_parameters_and_costs():
    rng = np.random.default_rng(10)
    g = small_cnn(rng)
    x = _x(rng)
    cfg = load_config("narrow-acc-24")
    hw = map_network(g, cfg, legalize="approx", inputs=x, host_tail=True)
    assert hw.legalize == "approx" and not hw.exact
    conv, ref_conv = hw.program.layers[0], hw.reference.layers[0]
    p, m = conv.params.requant, conv.params.accumulator
    assert p.scheme == RequantScheme.mult_shift and p.rounding == Rounding.half_up
    assert (m.acc_bits, m.overflow, m.dataflow, m.array_rows) == (
        24, Overflow.saturate, Dataflow.weight_stationary, 8)
    s_in, s_out = float(np.float32(0.02)), float(np.float32(0.05))
    wq = g.tensors[g.ops[0].inputs[1]].quant.scales
    for c in range(8):
        real = s_in * float(wq[c]) / s_out
        assert (p.multiplier[c], p.shift[c]) == mult_shift_params(real, 16, 6)[:2]
    # ADD keeps TFLite's arithmetic; pools are unchanged
    add = next(la for la in hw.program.layers if la.op == "ADD")
    ref_add = next(la for la in hw.reference.layers if la.op == "ADD")
    assert add.params.output_multiplier == ref_add.params.output_multiplier
    assert ref_conv.params.requant.scheme == RequantScheme.tflite_double
    # the report: inexact MAC layers, exact others, costs both ways
    by_op = {r.op: r for r in hw.report}
    assert not by_op["CONV_2D"].exact and "mult_shift" in by_op["CONV_2D"].reasons[0]
    assert by_op["MAX_POOL_2D"].exact and by_op["RESHAPE"].placement == "alias"
    assert by_op["MAX_POOL_2D"].changed_isolated == 0  # fed the reference input: exact
    # the costs, recomputed by hand
    ref = Network(hw.reference, g).run(x, trace=True).trace
    got = hw.run(x, trace=True).trace
    for row, layer in zip(hw.report, hw.program.layers):
        t = layer.outputs[0]
        d = np.abs(got.tensors[t].astype(np.float64) - ref.tensors[t].astype(np.float64))
        assert row.changed_propagated == int((d != 0).sum())
        assert row.max_abs_diff_propagated == d.max()
        iso, _ = KERNELS[layer.kernel](layer, [ref.tensors[i] for i in layer.inputs])
        di = np.abs(iso[0].astype(np.float64) - ref.tensors[t].astype(np.float64))
        assert row.changed_isolated == int((di != 0).sum())
        assert row.max_abs_diff_isolated == di.max()
    assert "mult_shift" in hw.format_report()


def test_approx_per_tensor_collapse_and_shift_only():
    rng = np.random.default_rng(11)
    g = small_cnn(rng, tail=False)
    x = _x(rng)
    hw = map_network(g, "shift-only-int8", legalize="approx", inputs=x)
    conv = hw.program.layers[0]
    assert conv.params.requant.scheme == RequantScheme.shift_only
    assert len(conv.params.requant.shift) == 1  # per-tensor unit
    assert any("collapsed" in r for r in hw.report[0].reasons)
    assert all(r.changed_propagated is not None for r in hw.report)
    # without inputs: no costs
    hw2 = map_network(g, "shift-only-int8", legalize="approx")
    assert hw2.report[0].changed_propagated is None and "-" in hw2.format_report()


# -- the lowering entry points ----------------------------------------------------------------

def test_requant_scheme_path_still_works():
    rng = np.random.default_rng(12)
    g = small_cnn(rng)
    x = _x(rng)
    base = Network(lower(g), g).run(x).outputs[0]
    assert np.array_equal(Network(lower(g, "tflite_double"), g).run(x).outputs[0], base)
    single = lower(g, requant_scheme="tflite_single")
    assert single.requant_scheme == RequantScheme.tflite_single
    Network(single, g).run(x)
    ms = lower(g, "mult_shift")  # a default mult_shift unit (32-bit multiplier) for MAC layers
    assert ms.layers[0].params.requant.scheme == RequantScheme.mult_shift
    assert ms.layers[0].params.accumulator is None  # no accumulator model without a config
    add = next(la for la in ms.layers if la.op == "ADD")  # ADD keeps TFLite's arithmetic
    ref_add = next(la for la in lower(g).layers if la.op == "ADD")
    assert add.params == ref_add.params and not add.params.diff(ref_add.params)
    Network(ms, g).run(x)
    with pytest.raises(ValueError, match="contradicts"):
        lower(g, "tflite-int8", requant_scheme="mult_shift")
    import hwsim
    assert hwsim.load  # the engine's loader keeps its signature (requant_scheme)


def test_lowering_with_a_preset_name_or_yaml(tmp_path):
    g = small_cnn(np.random.default_rng(13), tail=False)
    p = tmp_path / "c.yaml"
    p.write_text("name: c\naccumulator: {bits: 20, overflow: saturate}\n"
                 "array: {dataflow: weight_stationary, rows: 3}\n")
    prog = lower(g, str(p))
    m = prog.layers[0].params.accumulator
    assert (m.acc_bits, m.overflow, m.dataflow, m.array_rows, m.bias_first) == (
        20, Overflow.saturate, Dataflow.weight_stationary, 3, True)
    assert not hasattr(prog.layers[2].params, "accumulator")  # MAX_POOL: no accumulator


# -- clamps of b-bit activations: "fused" and "input" placements -------------------------------

def _clamp_cnn(rng, clamps, extra_reader=False, conv_is_output=False, const_shape=()):
    """x -> [input clamps] -> conv3x3 (RELU, zp -128) -> [clamps] -> maxpool -> [clamps] -> FC.
    ``clamps``: {"input" | "conv" | "pool": [(op, value), ...]}."""
    b = GraphBuilder("clamp_cnn")
    x = b.input("x", (1, 6, 6, 2), np.int8, scale=0.02, zero_point=-3)
    q = {}

    def chain(src, name, shape, scale, zp, ops):
        cur = src
        for k, (op, v) in enumerate(ops):
            c = b.const(f"{name}/c{k}", np.full(const_shape, v, np.int8), scales=[scale],
                        zero_points=[zp])
            out = b.activation(f"{name}/{k}", shape, np.int8, scale=scale, zero_point=zp)
            b.op(op, [cur, c], [out])
            cur = out
        return cur

    h = chain(x, "x", (1, 6, 6, 2), 0.02, -3, clamps.get("input", []))
    w = b.const("w", rng.integers(-127, 128, (4, 3, 3, 2)).astype(np.int8),
                scales=np.full(4, 0.01, np.float32), axis=0)
    bias = b.const("bias", rng.integers(-300, 300, 4).astype(np.int32),
                   scales=np.full(4, 0.0002, np.float32), axis=0)
    y = b.activation("conv", (1, 6, 6, 4), np.int8, scale=0.05, zero_point=-128)
    b.op("CONV_2D", [h, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
         dilation_w_factor=1, dilation_h_factor=1, fused_activation_function="RELU")
    q["conv"] = y
    y = chain(y, "conv", (1, 6, 6, 4), 0.05, -128, clamps.get("conv", []))
    p = b.activation("pool", (1, 3, 3, 4), np.int8, scale=0.05, zero_point=-128)
    b.op("MAX_POOL_2D", [y], [p], padding="VALID", stride_w=2, stride_h=2, filter_width=2,
         filter_height=2, fused_activation_function="NONE")
    p = chain(p, "pool", (1, 3, 3, 4), 0.05, -128, clamps.get("pool", []))
    shp = b.const("shape", np.array([1, 36], np.int32))
    f = b.activation("flat", (1, 36), np.int8, scale=0.05, zero_point=-128)
    b.op("RESHAPE", [p, shp], [f], new_shape=[1, 36])
    wf = b.const("wf", rng.integers(-127, 128, (3, 36)).astype(np.int8),
                 scales=np.full(3, 0.01, np.float32), axis=0)
    bf = b.const("bf", rng.integers(-300, 300, 3).astype(np.int32),
                 scales=np.full(3, 0.0005, np.float32), axis=0)
    out = b.activation("logits", (1, 3), np.int8, scale=0.1, zero_point=0)
    b.op("FULLY_CONNECTED", [f, wf, bf], [out], fused_activation_function="NONE",
         weights_format="DEFAULT", keep_num_dims=False)
    b.output(out)
    if extra_reader:   # a second reader of the conv's unclamped output
        o2 = b.activation("conv2", (1, 6, 6, 4), np.int8, scale=0.05, zero_point=-128)
        b.op("MAX_POOL_2D", [q["conv"]], [o2], padding="SAME", stride_w=1, stride_h=1,
             filter_width=1, filter_height=1, fused_activation_function="NONE")
        b.output(o2)
    if conv_is_output:
        b.output(q["conv"])
    return b.build()


def _same_as_reference(hw, g, rng, n=4):
    for _ in range(n):
        x = _x(rng, (1, 6, 6, 2))
        r, ref = hw.run(x), Network(lower(g), g).run(x, trace=True)
        assert all(np.array_equal(a, b) for a, b in zip(r.outputs, ref.outputs))
        for t, v in r.trace.tensors.items():
            assert np.array_equal(v, ref.trace.tensors[t])


def test_clamps_fuse_into_the_array_layer_and_the_input():
    rng = np.random.default_rng(30)
    a4 = _cfg(data={"input_bits": 4, "output_bits": 4})
    g = _clamp_cnn(rng, {"input": [("MAXIMUM", -8), ("MINIMUM", 7)], "conv": [("MINIMUM", -121)],
                         "pool": [("MAXIMUM", -125), ("MINIMUM", -122)]})
    hw = map_network(g, "tflite-int8")   # strict, no host tail needed
    assert hw.exact
    assert [hw.placement[i] for i in range(len(g.ops))] == [
        "input", "input", "array", "fused", "array", "fused", "fused", "alias", "array"]
    conv, pool = hw.program.layers[2], hw.program.layers[4]
    assert conv.params.clamp() == (-128, -121)   # RELU at zp
    assert pool.params.clamp() == (-125, -122)
    assert conv.outputs == g.ops[3].outputs and pool.outputs == g.ops[6].outputs
    assert hw.program.layers[3].kernel == "fused" and hw.program.layers[3].params == \
        FusedParams(fused_into=2)
    assert hw.reference.layers[3].kernel == "maximum_minimum"   # the model is unchanged
    assert hw.ranges[g.ops[1].outputs[0]] == (-8, 7)
    assert hw.memory["activations"]["words"] > 0
    _same_as_reference(hw, g, rng)
    # the 4-bit data path: the conv's output [-128, -121] does not fit 4 bits, the input does
    _refused(g, a4, r"layer 2 \(CONV_2D\): output tensor \d+ 'conv/0' \(values in \[-128, "
                    r"-121\]\) does not fit the 4-bit signed")
    ok = _clamp_cnn(rng, {"input": [("MAXIMUM", -8), ("MINIMUM", 7)],
                          "conv": [("MAXIMUM", -8), ("MINIMUM", 7)]})
    msg = _refused(ok, a4, r"layer 7 \(FULLY_CONNECTED\)")   # its logits are 8-bit
    assert "layer 2" not in msg and "layer 5" not in msg   # conv and pool fit


@pytest.mark.parametrize("case", ["two_readers", "graph_output", "empty", "per_channel"])
def test_clamps_that_cannot_be_fused_are_host_layers(case):
    """Not fused: the array layer's output has another reader, or is a network output; the
    clamps' intersection is empty (MAXIMUM 100 then MINIMUM 50 is the constant 50, not a
    clamp); the constant is not one element. Such a clamp is a host layer."""
    rng = np.random.default_rng(31)
    kw, clamps, bad = {}, {"conv": [("MINIMUM", 7)]}, 1
    if case == "two_readers":
        kw["extra_reader"] = True
    elif case == "graph_output":
        kw["conv_is_output"] = True
    elif case == "empty":
        clamps, bad = {"conv": [("MINIMUM", -128)], "pool": [("MAXIMUM", 100),
                                                              ("MINIMUM", 50)]}, 4
    else:
        kw["const_shape"] = (1, 1, 1, 4)
    g = _clamp_cnn(rng, clamps, **kw)
    hw = map_network(g, "tflite-int8")
    assert hw.placement[bad] != "fused"   # the host's, or the array's table unit
    assert hw.placement[bad] == "array" or \
        "MINIMUM is not an array op" in hw.host_reasons[bad]
    n_clamps = sum(op.type in ("MAXIMUM", "MINIMUM") for op in g.ops)
    assert list(hw.placement.values()).count("fused") == n_clamps - 1   # the others fused


def test_clamp_of_a_host_layer_stays_on_the_host():
    rng = np.random.default_rng(32)
    g = small_cnn(rng)   # ... FC -> SOFTMAX (host)
    y8 = g.outputs[0]
    c = len(g.tensors)
    g.tensors.append(Tensor(c, "y8/qmax", (), np.dtype(np.int8), g.tensors[y8].quant,
                            np.array(7, np.int8)))
    g.tensors.append(Tensor(c + 1, "y9", (1, 5), np.dtype(np.int8), g.tensors[y8].quant))
    g.ops.append(Op(len(g.ops), "MINIMUM", [y8, c], [c + 1], {}))
    g.outputs = [c + 1]
    hw = map_network(g, "tflite-int8", host_tail=True)
    assert [hw.placement[op.index] for op in g.ops][-2:] == ["host", "host"]
    x = _x(rng)
    assert np.array_equal(hw.run(x).outputs[0], Network(lower(g), g).run(x).outputs[0])
