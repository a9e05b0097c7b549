"""b-bit activations (hwsim.quant.act_bits): with ``activation_bits`` 4..7 every activation the
graph's ops read lies in ``[-2^(b-1), 2^(b-1) - 1]``, by explicit MAXIMUM / MINIMUM clamps the
written .tflite carries; TFLite's reference kernels and hwsim compute identical integers on
every tensor; the first and last MAC layers can keep 8-bit activations; a model quantized for a
4-bit-activation accelerator maps onto it (strict), runs there exactly and exports.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

onnx = pytest.importorskip("onnx")
from oracle import hwsim_run, tflite_ref  # noqa: E402
from test_frontend_onnx import rnd  # noqa: E402
from test_quant_quantize import DIGITS_DIR, zoo_model  # noqa: E402

import hwsim  # noqa: E402
from hwsim.frontends.onnx_reader import read_onnx  # noqa: E402
from hwsim.hw import LegalizationError, load_config, map_network  # noqa: E402
from hwsim.quant.quantize import QuantizationError, options_from_config, quantize  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")

PRESET = os.path.join(os.path.dirname(hwsim.__file__), "presets", "tflite-int8.yaml")
# tensors only the clamps read: the op's own output, between the bounds, a fixed TFLite output
INTERNAL = ("/unclamped", "/clamp_lo", "/fixed")
CLAMP_READERS = ("MAXIMUM", "MINIMUM", "QUANTIZE")


@pytest.fixture(scope="module")
def digits(digits_data):
    xtr, ytr, xte, yte = digits_data
    return read_onnx(os.path.join(DIGITS_DIR, "digits_cnn.onnx")), xtr, xte, yte


def _model_path(q, tmp_path, name="m.tflite"):
    p = tmp_path / name
    q.write_tflite(p)
    return p


def _bits_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _check_structure(q):
    """The internal tensors are read only by the clamps (and a fixed output's QUANTIZE);
    every clamp constant is a scalar with its tensor's quantization."""
    g = q.graph
    for op in g.ops:
        for i in op.inputs:
            t = g.tensors[i]
            if t.data is None and t.name.endswith(INTERNAL):
                assert op.type in CLAMP_READERS, f"{op.type} reads {t.name}"
        if op.type in ("MAXIMUM", "MINIMUM"):
            x, c = (g.tensors[i] for i in op.inputs)
            y = g.tensors[op.outputs[0]]
            assert c.shape == () and c.data is not None
            for t in (x, y, c):
                assert (float(t.quant.scales[0]), int(t.quant.zero_points[0])) == \
                    (float(y.quant.scales[0]), int(y.quant.zero_points[0]))
    assert not any(g.tensors[t].name.endswith(INTERNAL) for t in g.outputs)


def _check_every_tensor(q, xq, bits_of, n_tflite):
    """TFLite REF == hwsim on every tensor of the first ``n_tflite`` samples; on every sample,
    each activation tensor (but the internal ones) lies in its bits' range. Returns the number
    of internal tensors seen outside their range (the clamps had work to do)."""
    g = q.graph
    b = q.tflite_bytes()
    outside_internal = set()
    for i in range(len(xq)):
        x = xq[i:i + 1]
        tr = hwsim_run(b, x, trace=True).trace.tensors
        if i < n_tflite:
            ref = tflite_ref(b, x, all_tensors=True)
            for t, v in tr.items():
                if g.tensors[t].data is None:
                    assert t in ref and ref[t].dtype == v.dtype and np.array_equal(ref[t], v), \
                        f"sample {i}, tensor {t} '{g.tensors[t].name}': TFLite != hwsim"
        for t, v in tr.items():
            info = g.tensors[t]
            if info.data is not None:
                continue
            lo, hi = _bits_range(bits_of(t))
            inside = int(v.min()) >= lo and int(v.max()) <= hi
            if info.name.endswith(INTERNAL):
                if not inside:
                    outside_internal.add(info.name)
            else:
                assert inside, f"sample {i}: '{info.name}' in [{v.min()}, {v.max()}], " \
                               f"outside {bits_of(t)} bits"
    return outside_internal


@pytest.mark.parametrize("bits", [4, 6])
def test_digits_b_bit_activations_every_tensor_in_range_and_tflite_equal(digits, bits):
    g, xtr, xte, yte = digits
    calib = xtr[:200]
    q = quantize(g, calib, "kl", activation_bits=bits)   # a clipping method
    _check_structure(q)
    qg = q.graph
    by_name = {t.name: t for t in qg.tensors}
    producer = {t: op for op in qg.ops for t in op.outputs}
    # a fused RELU keeps the lower bound (the zero point): only the upper clamp
    relu1 = by_name["relu1"].index
    assert producer[relu1].type == "MINIMUM"
    assert producer[producer[relu1].inputs[0]].type == "CONV_2D"
    # the FC logits have no activation: both bounds
    logits = producer[by_name["logits"].index]
    assert logits.type == "MINIMUM" and producer[logits.inputs[0]].type == "MAXIMUM"
    # the graph input is clamped into input/clamped, which the first conv reads
    conv1 = next(op for op in qg.ops if op.type == "CONV_2D")
    assert qg.tensors[conv1.inputs[0]].name == "input/clamped"
    # the softmax keeps TFLite's fixed int8 output, requantized to the b-bit convention
    prob = qg.tensors[qg.outputs[0]]
    assert prob.name == "prob"
    assert (float(prob.quant.scales[0]), int(prob.quant.zero_points[0])) == \
        (2.0 ** -bits, -(1 << (bits - 1)))
    assert (float(by_name["prob/fixed"].quant.scales[0]),
            int(by_name["prob/fixed"].quant.zero_points[0])) == (1 / 256, -128)
    acts = q.activations
    assert {a.bits for a in acts.values() if not a.name.endswith("/fixed")} == {bits}
    assert acts[by_name["prob/fixed"].index].bits == 8

    def bits_of(t):
        return 8 if qg.tensors[t].name.endswith("/fixed") else bits
    # calibration data: TFLite == hwsim on 12 samples, the ranges on all 200
    xq = q.quantize_input(calib)
    lo, hi = _bits_range(bits)
    assert int(xq.min()) >= lo and int(xq.max()) <= hi
    outside = _check_every_tensor(q, xq, bits_of, n_tflite=12)
    assert "logits/unclamped" in outside or "relu1/unclamped" in outside   # clamps did work
    # held-out digits: the model still classifies
    xt = q.quantize_input(xte[:60])
    b = q.tflite_bytes()
    pred = np.array([hwsim_run(b, xt[i:i + 1]).outputs[0].argmax() for i in range(60)])
    assert (pred == yte[:60]).mean() >= 0.9


def test_zoo_graph_b_bit_every_tensor():
    """Every importer op at 4 and 5 bits: LOGISTIC / TANH / SOFTMAX outputs requantized,
    the concatenation's requantized input clamped, PADV2's -inf padding at the b-bit minimum,
    MEAN / MUL / ADD / HARD_SWISH / LEAKY_RELU clamped; TFLite == hwsim on every tensor."""
    g = read_onnx(zoo_model())
    x = rnd((24, 4, 10, 10), seed=5)
    for bits, method in ((4, "minmax"), (5, "auto")):
        q = quantize(g, x[:20], method, activation_bits=bits)
        _check_structure(q)
        qg = q.graph
        types = [op.type for op in qg.ops]
        assert types.count("QUANTIZE") >= 4   # 3 fixed outputs + the concatenation's input
        for op in qg.ops:
            if op.type == "PADV2":
                assert int(qg.tensors[op.inputs[2]].data.min()) >= -(1 << (bits - 1))

        def bits_of(t, qg=qg, bits=bits):
            return 8 if qg.tensors[t].name.endswith("/fixed") else bits
        _check_every_tensor(q, q.quantize_input(x), bits_of, n_tflite=4)


def test_first_last_activation_bits(digits):
    """yolo2_light style: the first MAC layer's input and the last one's output keep 8 bits
    (default with first_last_weight_bits; or first_last_activation_bits), the rest 4."""
    g, xtr, xte, _ = digits
    q = quantize(g, xtr[:150], "mse", activation_bits=4, first_last_weight_bits=8)
    bits = {a.name: a.bits for a in q.activations.values()}
    assert bits["input"] == bits["logits"] == 8
    assert bits["relu1"] == bits["pool1"] == bits["relu2"] == bits["flat"] == 4
    assert bits["prob"] == 4
    qg = q.graph
    names = {qg.tensors[t].name for op in qg.ops for t in op.outputs}
    assert "input/clamped" not in names and "logits/unclamped" not in names
    assert "relu1/unclamped" in names
    s_in = float(qg.tensors[qg.inputs[0]].quant.scales[0])
    q4 = quantize(g, xtr[:150], "mse", activation_bits=4)
    assert s_in < float(q4.graph.tensors[q4.graph.inputs[0]].quant.scales[0]) / 8
    by = {a.name: a.bits for a in q.activations.values()}

    def bits_of(t):
        n = qg.tensors[t].name
        return 8 if n.endswith("/fixed") else by.get(n.split("/")[0], 4)
    _check_every_tensor(q, q.quantize_input(xtr[:40]), bits_of, n_tflite=6)
    # explicit bits, and never fewer than activation_bits
    q6 = quantize(g, xtr[:50], "kl", activation_bits=4, first_last_activation_bits=6)
    b6 = {a.name: a.bits for a in q6.activations.values()}
    assert b6["input"] == b6["logits"] == 6 and b6["relu1"] == 4
    q5 = quantize(g, xtr[:50], "kl", activation_bits=5, first_last_activation_bits=4)
    assert {a.bits for a in q5.activations.values() if not a.fixed} == {5}
    with pytest.raises(QuantizationError, match="first_last_activation_bits=9"):
        quantize(g, xtr[:10], "kl", activation_bits=4, first_last_activation_bits=9)


def _config_4bit(tmp_path):
    d = yaml.safe_load(open(PRESET))
    d["name"] = "tflite-a4"
    d["data"]["input_bits"] = 4
    d["data"]["output_bits"] = 4
    p = tmp_path / "a4.yaml"
    p.write_text(yaml.safe_dump(d))
    return load_config(str(p))


def test_4bit_accelerator_maps_runs_and_exports(digits, tmp_path):
    """quantize(options_from_config(4-bit config)) -> map_network strict succeeds: the
    input clamps are written by the host, every other clamp is fused into the array layer
    producing its input; hw.run equals the reference model on every tensor it produces; the
    export works and compares bit-exact with the model's trace."""
    from hwsim.export import export
    from hwsim.export.compare import compare
    from hwsim.trace_io import write_trace_h5
    g, xtr, xte, _ = digits
    cfg = _config_4bit(tmp_path)
    opts = options_from_config(cfg)
    assert opts.activation_bits == 4
    q = quantize(g, xtr[:200], options=opts)
    path = _model_path(q, tmp_path)
    hw = map_network(path, cfg, legalize="strict")   # the softmax tail runs on the host
    assert hw.exact
    ops = {layer.index: layer.op for layer in hw.reference.layers}
    placed = [(ops[i], w) for i, w in sorted(hw.placement.items())]
    assert placed[:2] == [("MAXIMUM", "input"), ("MINIMUM", "input")]
    assert [w for op, w in placed if op in ("CONV_2D", "FULLY_CONNECTED",
                                            "MAX_POOL_2D")] == ["array"] * 5
    assert [w for _, w in placed].count("fused") == 4
    by_index = {layer.index: layer for layer in hw.program.layers}
    last_clamp = {}
    for layer in hw.program.layers:
        if hw.placement[layer.index] == "fused":
            into = by_index[layer.params.fused_into]
            assert layer.kernel == "fused" and layer.inputs == layer.outputs == []
            act_min, act_max = into.params.clamp()
            assert -8 <= act_min <= act_max <= 7
            last_clamp[into.index] = hw.graph.ops[layer.index].outputs
    assert len(last_clamp) == 3
    for k, outs in last_clamp.items():   # the layer writes its last clamp's output
        assert by_index[k].outputs == outs
    # 8-bit model on the 4-bit accelerator: refused with the reason
    q8 = quantize(g, xtr[:100], "kl")
    with pytest.raises(LegalizationError, match="does not fit the 4-bit signed"):
        map_network(_model_path(q8, tmp_path, "m8.tflite"), cfg, host_tail=True)
    # the 4-bit model also maps onto the 8-bit preset (same fusion)
    assert map_network(path, "tflite-int8", host_tail=True).exact
    # runs: every tensor the hardware produces equals the model's
    net = hwsim.load(str(path))
    xq = q.quantize_input(xte[:8])
    for i in range(len(xq)):
        x = xq[i:i + 1]
        r, ref = hw.run(x), net.run(x, trace=True)
        assert all(np.array_equal(a, b) for a, b in zip(r.outputs, ref.outputs))
        missing = set(ref.trace.tensors) - set(r.trace.tensors)
        assert {hw.graph.tensors[t].name for t in missing} == {
            "relu1/unclamped", "relu2/unclamped", "logits/unclamped", "logits/clamp_lo"}
        for t, v in r.trace.tensors.items():
            assert np.array_equal(v, ref.trace.tensors[t]), hw.graph.tensors[t].name
        for k, acc in ref.trace.accumulators.items():
            assert np.array_equal(r.trace.accumulators[k], acc)
    # export, and the model's trace against it
    res = export(path, cfg, [xq[:1]], tmp_path / "exp", host_tail=True)
    man = res.manifest
    assert [f["placement"] for f in man["fused"]] == ["input", "input"] + ["fused"] * 4
    run = [L for L in man["layers"] if "folder" in L]   # array and host layers
    assert [L["op"] for L in run][:1] == ["CONV_2D"]
    assert [L["placement"] for L in man["layers"]][:2] == ["input", "input"]
    assert run[0]["vectors"]["input"]["name"] == "input/clamped"
    assert all(L["op"] not in ("MAXIMUM", "MINIMUM") or L["placement"] != "array"
               for L in man["layers"])
    regions = {r["name"]: r for r in man["regions"]}
    assert regions["input/clamped"].get("network_input") and "input" not in regions
    for L in run:   # MAC layers clamp to 4 bits; a pool's output is its input's
        if L["op"] in ("CONV_2D", "FULLY_CONNECTED"):
            assert -8 <= L["fields"]["act_min"] <= L["fields"]["act_max"] <= 7
        elif not L["host"]:
            lo, hi = hw.ranges[L["vectors"]["output"]["tensor"]]
            assert -8 <= lo <= hi <= 7
    tr = tmp_path / "t.h5"
    write_trace_h5(str(tr), net, net.run(xq[:1], trace=True), str(path))
    c = compare(str(tr), str(tmp_path / "exp"))
    assert c.bit_exact and len(c.compared) == len(c.rows)


# -- 9..15-bit activations: int16 storage (TFLite 16x8) ---------------------------------------

@pytest.mark.parametrize("bits", [10, 12])
def test_digits_int16_b_bit_activations_every_tensor_in_range_and_tflite_equal(digits, bits):
    """activation_bits 9..15: int16 activations with zero point 0 (TFLite 16x8), int64 biases,
    scales for the symmetric b-bit range, MAXIMUM / MINIMUM clamps to it; the SOFTMAX keeps
    TFLite's fixed int16 output (1/32768, 0), requantized to (2^-(b-1), 0)."""
    g, xtr, xte, yte = digits
    calib = xtr[:200]
    q = quantize(g, calib, "kl", activation_bits=bits)
    _check_structure(q)
    qg = q.graph
    acts = [t for t in qg.tensors if t.data is None]
    assert {t.dtype for t in acts} == {np.dtype(np.int16)}
    assert {int(t.quant.zero_points[0]) for t in acts} == {0}
    assert all(t.data.dtype == np.int16 for op in qg.ops if op.type in ("MAXIMUM", "MINIMUM")
               for t in [qg.tensors[op.inputs[1]]])
    for op in qg.ops:
        if op.type in ("CONV_2D", "FULLY_CONNECTED"):
            assert qg.tensors[op.inputs[1]].dtype == np.int8
            assert qg.tensors[op.inputs[2]].dtype == np.int64
    by_name = {t.name: t for t in qg.tensors}
    producer = {t: op for op in qg.ops for t in op.outputs}
    relu1 = by_name["relu1"].index     # fused RELU: zero point 0 is the lower bound
    assert producer[relu1].type == "MINIMUM"
    assert int(qg.tensors[producer[relu1].inputs[1]].data) == (1 << (bits - 1)) - 1
    assert producer[producer[relu1].inputs[0]].type == "CONV_2D"
    logits = producer[by_name["logits"].index]
    assert logits.type == "MINIMUM" and producer[logits.inputs[0]].type == "MAXIMUM"
    conv1 = next(op for op in qg.ops if op.type == "CONV_2D")
    assert qg.tensors[conv1.inputs[0]].name == "input/clamped"
    prob = qg.tensors[qg.outputs[0]]
    assert prob.name == "prob"
    assert (float(prob.quant.scales[0]), int(prob.quant.zero_points[0])) == \
        (2.0 ** -(bits - 1), 0)
    fixed = by_name["prob/fixed"]
    assert (float(fixed.quant.scales[0]), int(fixed.quant.zero_points[0])) == (1 / 32768, 0)
    info = q.activations
    assert {a.bits for a in info.values() if not a.name.endswith("/fixed")} == {bits}
    assert info[fixed.index].bits == 16
    # symmetric b-bit scales: the input's range maps onto qmax = 2^(b-1) - 1
    a_in = info[qg.inputs[0]]
    assert float(np.float32(a_in.threshold / ((1 << (bits - 1)) - 1))) == \
        float(qg.tensors[qg.inputs[0]].quant.scales[0])

    def bits_of(t):
        return 16 if qg.tensors[t].name.endswith("/fixed") else bits
    xq = q.quantize_input(calib)
    assert xq.dtype == np.int16
    lo, hi = _bits_range(bits)
    assert int(xq.min()) >= lo and int(xq.max()) <= hi
    _check_every_tensor(q, xq, bits_of, n_tflite=12)
    xt = q.quantize_input(xte[:60])
    b = q.tflite_bytes()
    pred = np.array([hwsim_run(b, xt[i:i + 1]).outputs[0].argmax() for i in range(60)])
    assert (pred == yte[:60]).mean() >= 0.9


def test_int16_b_bit_options():
    """9..15 accepted (int16), 17 refused; a 12-bit accelerator config -> activation_bits 12,
    symmetric; first_last_activation_bits has no effect with int16 storage."""
    from hwsim.quant.quantize import QuantOptions, _first_last_activation_bits
    for b in (9, 12, 15, 16):
        assert QuantOptions(activation_bits=b).check().activation_bits == b
    with pytest.raises(QuantizationError, match="activation_bits=17"):
        QuantOptions(activation_bits=17).check()
    assert _first_last_activation_bits(QuantOptions(activation_bits=12,
                                                    first_last_weight_bits=8)) is None


def _config_12bit(tmp_path):
    """tflite-int8 with 12-bit activations: int16 storage needs 16-bit activation lanes, 64-bit
    bias lanes (int64 biases) and TFLite 16x8's 64-bit accumulator."""
    d = yaml.safe_load(open(PRESET))
    d["name"] = "tflite-a12"
    d["data"]["input_bits"] = 12
    d["data"]["output_bits"] = 12
    d["accumulator"]["bits"] = 64
    d["memories"]["activations"]["lanes"] = 4
    d["memories"]["bias"]["word_bits"] = 64
    p = tmp_path / "a12.yaml"
    p.write_text(yaml.safe_dump(d))
    return load_config(str(p))


def test_12bit_accelerator_maps_and_runs(digits, tmp_path):
    """quantize(options_from_config(12-bit config)) -> int16 model that maps strictly (clamps
    written by the host for the input, fused into the array layers otherwise); hw.run equals
    the reference model on every tensor it produces; the 8-bit preset refuses it."""
    g, xtr, xte, _ = digits
    cfg = _config_12bit(tmp_path)
    opts = options_from_config(cfg)
    assert opts.activation_bits == 12 and opts.symmetric_activations
    q = quantize(g, xtr[:200], options=opts)
    path = _model_path(q, tmp_path)
    hw = map_network(path, cfg, legalize="strict", host_tail=True)
    assert hw.exact
    ops = {layer.index: layer.op for layer in hw.reference.layers}
    placed = [(ops[i], w) for i, w in sorted(hw.placement.items())]
    assert placed[:2] == [("MAXIMUM", "input"), ("MINIMUM", "input")]
    assert [w for op, w in placed if op in ("CONV_2D", "FULLY_CONNECTED",
                                            "MAX_POOL_2D")] == ["array"] * 5
    assert [w for _, w in placed].count("fused") == 4
    by_index = {layer.index: layer for layer in hw.program.layers}
    for layer in hw.program.layers:
        if hw.placement[layer.index] == "fused":
            into = by_index[layer.params.fused_into]
            act_min, act_max = into.params.clamp()
            assert -2048 <= act_min <= act_max <= 2047
    with pytest.raises(LegalizationError, match="does not fit the 8-bit signed"):
        map_network(path, "tflite-int8", host_tail=True)
    net = hwsim.load(str(path))
    xq = q.quantize_input(xte[:6])
    assert xq.dtype == np.int16
    for i in range(len(xq)):
        x = xq[i:i + 1]
        r, ref = hw.run(x), net.run(x, trace=True)
        assert all(np.array_equal(a, b) for a, b in zip(r.outputs, ref.outputs))
        missing = set(ref.trace.tensors) - set(r.trace.tensors)
        assert {hw.graph.tensors[t].name for t in missing} == {
            "relu1/unclamped", "relu2/unclamped", "logits/unclamped", "logits/clamp_lo"}
        for t, v in r.trace.tensors.items():
            assert np.array_equal(v, ref.trace.tensors[t]), hw.graph.tensors[t].name
        for k, acc in ref.trace.accumulators.items():
            assert np.array_equal(r.trace.accumulators[k], acc)


def test_zoo_graph_int16_b_bit_every_tensor():
    """Every importer op TFLite runs in int16 at 12 and 9 bits (LOGISTIC / TANH / SOFTMAX
    requantized from 1/32768, the concatenation's requantized input, PADV2, MEAN, MUL, ADD,
    LEAKY_RELU, pools, resizes); TFLite == hwsim on every tensor. HARD_SWISH has no int16
    kernel in TFLite: refused in one line naming it."""
    g = read_onnx(zoo_model())
    x = rnd((24, 4, 10, 10), seed=5)
    with pytest.raises(QuantizationError, match="no int16 kernel for HARD_SWISH"):
        quantize(g, x[:4], "minmax", activation_bits=12)
    for op in g.ops:   # the rest of the graph
        if op.type == "HARD_SWISH":
            op.type = "RELU"
    for bits, method in ((12, "minmax"), (9, "auto")):
        q = quantize(g, x[:20], method, activation_bits=bits)
        _check_structure(q)
        qg = q.graph
        assert [op.type for op in qg.ops].count("QUANTIZE") >= 4
        fixed = [t for t in qg.tensors if t.name.endswith("/fixed")]
        assert len(fixed) == 3 and all(
            (float(t.quant.scales[0]), int(t.quant.zero_points[0])) == (1 / 32768, 0)
            for t in fixed)

        def bits_of(t, qg=qg, bits=bits):
            return 16 if qg.tensors[t].name.endswith("/fixed") else bits
        _check_every_tensor(q, q.quantize_input(x), bits_of, n_tflite=4)
