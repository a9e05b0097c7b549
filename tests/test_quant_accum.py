"""Accumulator-aware quantization (hwsim.quant.accum): weight scales raised until every partial
sum of every MAC layer provably fits the hardware's accumulator.

The fitted layers are checked in plain Python integers (no numpy, no channel_bounds): the
accumulator of the worst-case inputs of each channel (x at its maximum where w > 0 and at its
minimum where w < 0, and the reverse), every prefix sum in the array's order with the bias first
and last, padding taps (x - zp = 0), and random inputs. End to end, the digits CNN and a
depthwise network quantized for a 16-bit accumulator map with strict legalization and the
hardware computes the model's integers; quantized without the fit, strict legalization refuses.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from hwsim.hw import map_network
from hwsim.hw.config import config_from_dict
from hwsim.hw.network import LegalizationError
from hwsim.quant import calibrate as C
from hwsim.quant.accum import (fit_weights, quantize_bias, static_input_range,
                               target_acc_bits, weight_bits_used)

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_DIR = os.path.join(ROOT, "examples", "digits")

# (name, weight shape, channel axis, kernel kind)
SHAPES = [("conv", (6, 3, 3, 5), 0, "conv"), ("depthwise", (1, 3, 3, 8), 3, "dw"),
          ("fc", (10, 64), 0, "fc"), ("conv1x1", (4, 1, 1, 40), 0, "conv")]


def _layer(shape, axis, seed, big=(0, 2)):
    """Float weights (channels ``big`` with a heavy tail, the others small) and biases."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32) * np.float32(0.05)
    wc = np.moveaxis(w, axis, 0)           # a view: writes go to w
    for c in big:
        wc[c] *= np.float32(8.0)
    cout = w.shape[axis]
    bias = (rng.standard_normal(cout) * 0.5).astype(np.float32)
    bias[-1] = 40.0                        # a bias-dominated channel
    return w, bias


def _channels(q, axis):
    q = np.asarray(q)
    return [[int(v) for v in np.moveaxis(q, axis, 0)[c].reshape(-1)]
            for c in range(q.shape[axis])]


def _python_extremes(wc, b, x_lo, x_hi, zp, rng_seed=0):
    """Min and max over every partial sum the array can form, in plain Python integers:
    the worst-case inputs of the channel (and random ones), each summed with the bias first
    and with the bias last, also with padding taps (x - zp = 0) in place of some products."""
    import random
    rnd = random.Random(rng_seed)
    inputs = [[x_hi if w > 0 else x_lo for w in wc], [x_lo if w > 0 else x_hi for w in wc]]
    inputs += [[rnd.randint(x_lo, x_hi) for _ in wc] for _ in range(20)]
    lo = hi = 0
    for xs in inputs:
        prods = [w * (x - zp) for w, x in zip(wc, xs)]
        for pad in (None, 0, 1):
            ps = prods if pad is None else [0 if k % 2 == pad else p for k, p in enumerate(prods)]
            for bias_first in (True, False):
                acc = b if bias_first else 0
                sums = [acc]
                for p in ps:
                    acc += p
                    sums.append(acc)
                if not bias_first:
                    sums.append(acc + b)
                lo, hi = min(lo, *sums), max(hi, *sums)
    return lo, hi


def _bias_ints(bias, s_in, scales, cout, dtype=np.int32):
    return [int(v) for v in quantize_bias(bias, s_in, scales, cout, dtype)[0]]


def _q_at(w, axis, scales, per_channel):
    """calibrate.quantize_weights' integers of w at the given scales."""
    s = np.asarray(scales, np.float64)
    if per_channel:
        shape = [1] * w.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    else:
        s = float(s[0])
    return np.clip(C.round_half_away(w.astype(np.float64) / s), -127, 127).astype(np.int8)


def _quantize_layer(w, axis, per_channel, pot, bits=8):
    q, s = C.quantize_weights(w, axis if per_channel else None, "maxabs", bits, pot)
    return q, np.atleast_1d(np.asarray(s, np.float64))


CASES = [(name, per_channel, pot, acc_bits, x_range, zp)
         for name in [s[0] for s in SHAPES]
         for per_channel in (True, False)
         for pot in (False, True)
         for acc_bits, x_range, zp in ((16, (-128, 127), -128), (14, (-128, 127), 37),
                                        (15, (0, 127), 0))]


@pytest.mark.parametrize("name,per_channel,pot,acc_bits,x_range,zp", CASES)
def test_fitted_layer_never_overflows_bigint_bruteforce(name, per_channel, pot, acc_bits,
                                                        x_range, zp):
    _, shape, axis, kind = next(s for s in SHAPES if s[0] == name)
    w, bias = _layer(shape, axis, seed=len(name) + acc_bits)
    q, scales = _quantize_layer(w, axis, per_channel, pot)
    s_in = 0.0123
    fit = fit_weights(w, q, scales, axis, per_channel=per_channel, bits=8, power_of_two=pot,
                      bias=bias, input_scale=s_in, input_zero_point=zp, x_range=x_range,
                      acc_bits=acc_bits, kind=kind, name=name, op=kind)
    amin, amax = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    x_lo, x_hi = x_range
    cout = w.shape[axis]

    def extremes(qq, ss):
        bs = _bias_ints(bias, s_in, ss, cout)
        return [_python_extremes(wc, b, x_lo, x_hi, zp) for wc, b in zip(_channels(qq, axis), bs)]

    before = extremes(q, scales)
    assert any(lo < amin or hi > amax for lo, hi in before), "the case must need a fit"
    after = extremes(fit.q, fit.scales)
    for c, (lo, hi) in enumerate(after):
        assert amin <= lo and hi <= amax, f"channel {c}: [{lo}, {hi}] beyond {acc_bits} bits"
    # the integers are calibrate.quantize_weights' at the new scales
    assert np.array_equal(fit.q, _q_at(w, axis, fit.scales, per_channel))
    assert fit.q.dtype == np.int8
    assert np.all(np.float32(fit.scales) == fit.scales)          # float32 scales
    if pot:
        assert np.all(np.frexp(fit.scales)[0] == 0.5)            # still powers of two
    # the smallest scale on the grid: one grid step lower overflows (the bound is attained:
    # x_lo <= zp <= x_hi in every case)
    adj = fit.adjustment
    assert adj is not None and adj.acc_bits == acc_bits
    for c in (adj.channels if per_channel else [0]):
        lower = fit.scales.copy()
        lower[c] = fit.scales[c] / 2 if pot else float(np.nextafter(np.float32(fit.scales[c]),
                                                                    np.float32(0)))
        ext = extremes(_q_at(w, axis, lower, per_channel), lower)
        rows = [c] if per_channel else range(cout)
        assert any(ext[r][0] < amin or ext[r][1] > amax for r in rows), \
            f"channel {c}: scale {lower[c]} (one step smaller) also fits"
    # the report: old / new bounds and effective bits of the re-scaled channels
    assert all(bl < amin or bh > amax for bl, bh in zip(adj.old_lo, adj.old_hi))
    assert all(amin <= bl and bh <= amax for bl, bh in zip(adj.new_lo, adj.new_hi))
    assert all(nb <= ob for nb, ob in zip(adj.new_bits, adj.old_bits))
    assert f"{acc_bits}-bit accumulator" in adj.line()


@pytest.mark.parametrize("per_channel", [True, False])
def test_layer_that_fits_is_untouched(per_channel):
    w, bias = _layer((6, 3, 3, 5), 0, seed=3, big=())
    q, scales = _quantize_layer(w, 0, per_channel, False)
    fit = fit_weights(w, q, scales, 0, per_channel=per_channel, bits=8, power_of_two=False,
                      bias=bias * 0, input_scale=0.02, input_zero_point=-128,
                      x_range=(-128, 127), acc_bits=20, kind="conv")
    assert fit.adjustment is None
    assert np.array_equal(fit.q, q) and np.array_equal(fit.scales, scales)


@pytest.mark.parametrize("name", [s[0] for s in SHAPES])
def test_channels_that_fit_keep_their_integers(name):
    _, shape, axis, kind = next(s for s in SHAPES if s[0] == name)
    w, bias = _layer(shape, axis, seed=11)
    wc = np.moveaxis(w, axis, 0)
    for c in range(1, w.shape[axis] - 1, 2):   # one outlier, the rest rounds to 0: fits
        wc[c] *= np.float32(1e-3)
        wc[c].reshape(-1)[0] = 1.0
        bias[c] = 0.0
    q, scales = _quantize_layer(w, axis, True, False)
    fit = fit_weights(w, q, scales, axis, per_channel=True, bits=8, power_of_two=False,
                      bias=bias, input_scale=0.0123, input_zero_point=-128,
                      x_range=(-128, 127), acc_bits=16, kind=kind)
    changed = set(int(c) for c in fit.adjustment.channels)
    assert changed and len(changed) < w.shape[axis]
    b0 = _bias_ints(bias, 0.0123, scales, w.shape[axis])
    b1 = _bias_ints(bias, 0.0123, fit.scales, w.shape[axis])
    for c, (a, b) in enumerate(zip(_channels(q, axis), _channels(fit.q, axis))):
        if c in changed:
            assert fit.scales[c] > scales[c]
        else:
            assert a == b and fit.scales[c] == scales[c] and b0[c] == b1[c]


def test_int16_inputs_fit_a_32_bit_accumulator():
    """16x8 layers: the model accumulates in int64 (int64 bias); a 32-bit accumulator."""
    w, bias = _layer((8, 2000), 0, seed=5)
    q, scales = _quantize_layer(w, 0, True, False)
    fit = fit_weights(w, q, scales, 0, per_channel=True, bits=8, power_of_two=False, bias=bias,
                      input_scale=1e-4, input_zero_point=0, x_range=(-32768, 32767),
                      acc_bits=32, bias_dtype=np.int64, kind="fc")
    assert fit.adjustment is not None
    bs = _bias_ints(bias, 1e-4, fit.scales, 8, np.int64)
    for wc, b in zip(_channels(fit.q, 0), bs):
        lo, hi = _python_extremes(wc, b, -32768, 32767, 0)
        assert -2**31 <= lo and hi < 2**31


def test_target_width_follows_legalization():
    assert target_acc_bits(None, "wrap", np.int8) is None
    assert target_acc_bits(32, "wrap", np.int8) is None           # the model's own arithmetic
    assert target_acc_bits(32, "saturate", np.int8) == 32
    assert target_acc_bits(24, "wrap", np.int8) == 24
    assert target_acc_bits(40, "wrap", np.int8) == 32             # the model wraps at 32
    assert target_acc_bits(32, "wrap", np.int16) == 32            # 16x8: int64 model
    assert target_acc_bits(64, "wrap", np.int16) is None
    assert weight_bits_used([127, -3]) == 8 and weight_bits_used([0, 7]) == 4
    assert weight_bits_used([0, 0]) == 0


# ------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def digits(digits_data):
    pytest.importorskip("onnx")
    from hwsim.frontends.onnx_reader import read_onnx
    xtr, _, xte, _ = digits_data
    return read_onnx(os.path.join(DIGITS_DIR, "digits_cnn.onnx")), xtr, xte


def _acc_cfg(bits, overflow="saturate", **sections):
    return config_from_dict({"name": f"acc{bits}", "accumulator": {"bits": bits,
                                                                   "overflow": overflow},
                             **sections})


def _hw_equals_reference(hw, xq):
    from hwsim.engine import Network
    ref = Network(hw.reference, hw.graph)
    for i in range(len(xq)):
        r = ref.run(xq[i:i + 1], trace=True)
        h = hw.run(xq[i:i + 1], trace=True)
        for a, b in zip(r.outputs, h.outputs):
            assert np.array_equal(a, b), f"sample {i}: outputs differ"
        for layer, acc in r.trace.accumulators.items():
            assert np.array_equal(acc.astype(np.int64),
                                  h.trace.accumulators[layer].astype(np.int64)), \
                f"sample {i}, layer {layer}: accumulators differ"


def _check_ranges(q, hw):
    """The fit used exactly the static input range the legalization uses."""
    from hwsim.vocab import MAC_OPS
    g = q.graph
    n = 0
    for op in g.ops:
        if op.type in MAC_OPS:
            x = op.inputs[0]
            assert static_input_range(g, g.tensors, x) == tuple(hw.ranges[x])
            n += 1
    assert n


@pytest.mark.parametrize("variant", ["float-scales", "pot-scales", "symmetric"])
def test_digits_narrow_accumulator_maps_strict_and_is_exact(digits, variant):
    from hwsim.quant.quantize import quantize
    g, xtr, xte = digits
    extra, kw = {}, {}
    if variant == "pot-scales":
        kw = dict(power_of_two=True, weights="pot")
    if variant == "symmetric":
        extra = {"requant": {"zero_point": False}}
    cfg = _acc_cfg(16, **extra)
    q = quantize(g, xtr[:200], "kl", config=cfg, **kw)
    assert q.options.accumulator_bits == 16
    adjusted = q.acc_adjustments
    assert len(adjusted) >= 2 and {a.op for a in adjusted} >= {"CONV_2D", "FULLY_CONNECTED"}
    hw = map_network(q.graph, cfg, legalize="strict", host_tail=True)
    assert hw.exact
    _check_ranges(q, hw)
    if variant == "symmetric":   # the RELU clamp narrows the second conv's input
        assert any(a.x_range == (0, 127) for a in adjusted)
    _hw_equals_reference(hw, q.quantize_input(xte[:6]))
    # the same model without the fit: strict legalization refuses the narrow accumulator
    q0 = quantize(g, xtr[:200], "kl", config=cfg, accumulator_bits=None, **kw)
    assert not q0.acc_adjustments
    with pytest.raises(LegalizationError, match="accumulator"):
        map_network(q0.graph, cfg, legalize="strict", host_tail=True)
    if variant == "float-scales":   # and on the hardware it saturates: other outputs
        hw0 = map_network(q0.graph, cfg, legalize="approx", host_tail=True,
                          inputs=q0.quantize_input(xte[:1]))
        assert sum(r.changed_propagated or 0 for r in hw0.report) > 0


def test_depthwise_network_per_tensor_wrap(digits):
    """CONV - RELU - depthwise CONV - RELU - MAXPOOL - FC, per-tensor weights, an 18-bit
    wrapping accumulator."""
    pytest.importorskip("onnx")
    from onnx import helper
    from test_frontend_onnx import _conv_w, make_model, rnd

    from hwsim.frontends.onnx_reader import read_onnx
    from hwsim.quant.quantize import quantize
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    inits = {"w1": _conv_w(8, 4, 3, 1) * 4, "b1": rnd((8,), 2, 0.1),
             "w2": _conv_w(8, 1, 3, 3) * 4, "b2": rnd((8,), 4, 0.1),
             "w3": rnd((10, 128), 5, 0.3), "b3": rnd((10,), 6, 0.1)}
    g = read_onnx(make_model(nodes, {"x": (1, 4, 8, 8)}, ["y"], inits))
    assert "DEPTHWISE_CONV_2D" in {op.type for op in g.ops}
    x = rnd((40, 4, 8, 8), seed=7)
    cfg = _acc_cfg(14, "wrap", requant={"per_channel": False})
    q = quantize(g, x[:32], "minmax", config=cfg)
    assert not q.options.per_channel
    ops = {a.op for a in q.acc_adjustments}
    assert "DEPTHWISE_CONV_2D" in ops and not any(a.per_channel for a in q.acc_adjustments)
    for w in q.weights.values():
        assert len(w.scales) == 1
    hw = map_network(q.graph, cfg, legalize="strict")
    _check_ranges(q, hw)
    _hw_equals_reference(hw, q.quantize_input(x[32:36]))
    q0 = quantize(g, x[:32], "minmax", config=cfg, accumulator_bits=None)
    with pytest.raises(LegalizationError, match="accumulator"):
        map_network(q0.graph, cfg, legalize="strict")


def test_quantize_cli_lists_adjusted_layers(digits, tmp_path, capsys):
    from hwsim.quant.commands import main
    _, xtr, _ = digits
    calib = tmp_path / "calib.npy"
    np.save(calib, xtr[:64])
    cfg = tmp_path / "acc16.yaml"
    cfg.write_text("name: acc16\naccumulator: {bits: 16, overflow: saturate}\n")
    out = tmp_path / "m.tflite"
    rc = main(["quantize", os.path.join(DIGITS_DIR, "digits_cnn.onnx"), "--calib", str(calib),
               "--config", str(cfg), "--out", str(out), "--no-progress"])
    assert rc == 0 and out.exists()
    text = capsys.readouterr().out
    assert "accumulator: 16-bit saturate" in text
    lines = [ln for ln in text.splitlines() if "re-scaled for the 16-bit accumulator" in ln]
    assert len(lines) >= 2 and any("relu2 (CONV_2D)" in ln for ln in lines)
