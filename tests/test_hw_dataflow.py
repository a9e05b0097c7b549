"""The accumulator/dataflow model: order of accumulation, fast path == exact slow path, the
tflite-int8 preset == the engine on the corpus, per-layer statistics, headroom.

The plain-Python big-int model of the array's order (``py_accumulate``) is the independent
reference: it follows docs/dataflow.md literally. test_hw_legalize.py imports the graph helpers
defined here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.engine import Network
from hwsim.frontends.builder import GraphBuilder
from hwsim.hw import format_stats, load_config, map_network, tensor_ranges
from hwsim.hw.config import config_from_dict
from hwsim.kernels import accumulate as A
from hwsim.lower import lower
from hwsim.params import (AccumulatorModel, ConvParams, DepthwiseConvParams,
                          FullyConnectedParams, RequantParams)
from hwsim.vocab import Dataflow, Overflow, RequantScheme


# -- plain-Python simulation of the accumulation order -----------------------------------------

def ovf(v: int, bits: int, sat: bool) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if sat:
        return min(max(v, lo), hi)
    return ((v - lo) % (1 << bits)) + lo


def py_accumulate(products, bias: int, bits: int, sat: bool, ws: bool, rows: int,
                  bias_first: bool = True) -> int:
    """The accumulator after the array adds ``products`` (reduction order) to ``bias``."""
    acc = ovf(bias, bits, sat) if bias_first else 0
    if not ws:
        for p in products:
            acc = ovf(acc + p, bits, sat)
    else:
        for j in range(0, len(products), rows):
            s = 0
            for p in products[j:j + rows]:
                s = ovf(s + p, bits, sat)
            acc = ovf(acc + s, bits, sat)
    if not bias_first:
        acc = ovf(acc + bias, bits, sat)
    return acc


def py_intermediates(products, bias: int, ws: bool, rows: int, bias_first: bool = True):
    """Every exact intermediate value the array forms, in order."""
    out = []
    acc = bias if bias_first else 0
    if bias_first:
        out.append(acc)
    if not ws:
        for p in products:
            acc += p
            out.append(acc)
    else:
        for j in range(0, len(products), rows):
            s = 0
            for p in products[j:j + rows]:
                s += p
                out.append(s)
            acc += s
            out.append(acc)
    if not bias_first:
        acc += bias
        out.append(acc)
    return out


def conv_products(x, w, off, p, n, oy, ox, oc):
    """CONV_2D products of output (n, oy, ox, oc) in (ky, kx, ic) order, padding taps as 0."""
    _, H, W, _ = x.shape
    _, KH, KW, Cin = w.shape
    out = []
    for ky in range(KH):
        iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h
        for kx in range(KW):
            ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w
            inside = 0 <= iy < H and 0 <= ix < W
            for ic in range(Cin):
                out.append((int(x[n, iy, ix, ic]) + off) * int(w[oc, ky, kx, ic]) if inside else 0)
    return out


def dw_products(x, w, off, p, n, oy, ox, oc):
    _, H, W, _ = x.shape
    _, KH, KW, _ = w.shape
    ic = oc // p.depth_multiplier
    out = []
    for ky in range(KH):
        iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h
        for kx in range(KW):
            ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w
            inside = 0 <= iy < H and 0 <= ix < W
            out.append((int(x[n, iy, ix, ic]) + off) * int(w[0, ky, kx, oc]) if inside else 0)
    return out


def fc_products(x, w, off, b, oc):
    return [(int(x[b, k]) + off) * int(w[oc, k]) for k in range(w.shape[1])]


def layer_products(kernel, p, x, idx):
    """Products of output element ``idx`` (NHWC; (b, c) for FC) of a MAC layer's params."""
    off = int(p.input_offset)
    if kernel == "conv2d":
        return conv_products(x, p.weights, off, p, *idx)
    if kernel == "depthwise_conv2d":
        return dw_products(x, p.weights, off, p, *idx)
    return fc_products(x, p.weights, off, *idx)


def py_layer(kernel, p, x, bits, sat, ws, rows, bias_first=True):
    """The whole accumulator tensor of a MAC layer by the plain-Python order model."""
    shape = ((x.shape[0], p.weights.shape[0]) if kernel == "fully_connected" else
             (x.shape[0], p.out_h, p.out_w,
              p.weights.shape[0] if kernel == "conv2d" else p.weights.shape[3]))
    out = np.zeros(shape, dtype=object)
    bias = p.bias
    for idx in np.ndindex(shape):
        b = 0 if bias is None else int(bias[idx[-1]])
        out[idx] = py_accumulate(layer_products(kernel, p, x, idx), b, bits, sat, ws, rows,
                                 bias_first)
    return out


# -- graphs ------------------------------------------------------------------------------------

def fc_graph(x_shape, w, bias, s_in=0.02, zp_in=0, s_out=0.05, zp_out=0, w_scales=None,
             act="NONE", name="fc"):
    b = GraphBuilder(name)
    cout, k = w.shape
    ws = np.full(cout, 0.01, np.float32) if w_scales is None else np.asarray(w_scales, np.float32)
    x = b.input("x", x_shape, np.int8, scale=s_in, zero_point=zp_in)
    wi = b.const("w", w.astype(np.int8), scales=ws, axis=0)
    ins = [x, wi]
    if bias is not None:
        ins.append(b.const("b", np.asarray(bias, np.int32), scales=ws * s_in, axis=0))
    batch = int(np.prod(x_shape)) // k
    y = b.activation("y", (batch, cout), np.int8, scale=s_out, zero_point=zp_out)
    b.op("FULLY_CONNECTED", ins, [y], fused_activation_function=act, weights_format="DEFAULT",
         keep_num_dims=False)
    b.output(y)
    return b.build()


def small_cnn(rng, act1="RELU6", per_channel=True, tail=True, dtype=np.int8):
    """conv3x3 SAME -> depthwise3x3 s2 -> maxpool -> add(skip) -> avgpool -> reshape -> FC
    (-> SOFTMAX tail). Every array op; realistic scales."""
    b = GraphBuilder("small_cnn")
    x = b.input("x", (1, 8, 8, 3), dtype, scale=0.02, zero_point=-3)

    def wconst(name, shape, axis):
        w = rng.integers(-127, 128, size=shape).astype(np.int8)
        n = shape[axis]
        sc = (rng.uniform(0.002, 0.01, n) if per_channel else np.full(n, 0.005)).astype(
            np.float32)
        return b.const(name, w, scales=sc, axis=axis), sc

    w1, s1 = wconst("w1", (8, 3, 3, 3), 0)
    b1 = b.const("b1", rng.integers(-500, 500, 8).astype(np.int32), scales=s1 * 0.02, axis=0)
    y1 = b.activation("y1", (1, 8, 8, 8), dtype, scale=0.05, zero_point=-128)
    b.op("CONV_2D", [x, w1, b1], [y1], padding="SAME", stride_w=1, stride_h=1,
         dilation_w_factor=1, dilation_h_factor=1, fused_activation_function=act1)
    w2, s2 = wconst("w2", (1, 3, 3, 8), 3)
    b2 = b.const("b2", rng.integers(-500, 500, 8).astype(np.int32), scales=s2 * 0.05, axis=0)
    y2 = b.activation("y2", (1, 4, 4, 8), dtype, scale=0.06, zero_point=2)
    b.op("DEPTHWISE_CONV_2D", [y1, w2, b2], [y2], padding="SAME", stride_w=2, stride_h=2,
         dilation_w_factor=1, dilation_h_factor=1, depth_multiplier=1,
         fused_activation_function="NONE")
    y3 = b.activation("y3", (1, 4, 4, 8), dtype, scale=0.06, zero_point=2)
    b.op("MAX_POOL_2D", [y2], [y3], padding="SAME", stride_w=1, stride_h=1, filter_width=2,
         filter_height=2, fused_activation_function="NONE")
    y4 = b.activation("y4", (1, 4, 4, 8), dtype, scale=0.08, zero_point=-1)
    b.op("ADD", [y2, y3], [y4], fused_activation_function="RELU")
    y5 = b.activation("y5", (1, 2, 2, 8), dtype, scale=0.08, zero_point=-1)
    b.op("AVERAGE_POOL_2D", [y4], [y5], padding="VALID", stride_w=2, stride_h=2,
         filter_width=2, filter_height=2, fused_activation_function="NONE")
    shp = b.const("shape", np.array([1, 32], np.int32))
    y6 = b.activation("y6", (1, 32), dtype, scale=0.08, zero_point=-1)
    b.op("RESHAPE", [y5, shp], [y6], new_shape=[1, 32])
    w7, s7 = wconst("w7", (5, 32), 0)
    b7 = b.const("b7", rng.integers(-500, 500, 5).astype(np.int32), scales=s7 * 0.08, axis=0)
    y7 = b.activation("y7", (1, 5), dtype, scale=0.1, zero_point=4)
    b.op("FULLY_CONNECTED", [y6, w7, b7], [y7], fused_activation_function="NONE",
         weights_format="DEFAULT", keep_num_dims=False)
    if tail:
        y8 = b.activation("y8", (1, 5), dtype, scale=1.0 / 256, zero_point=-128)
        b.op("SOFTMAX", [y7], [y8], beta=1.0)
        b.output(y8)
    else:
        b.output(y7)
    return b.build()


# -- random MAC layers ---------------------------------------------------------------------------

# The accumulator tests never requantize: a placeholder completes the params.
NO_REQUANT = RequantParams(multiplier=np.ones(1, np.int64), shift=np.zeros(1, np.int64),
                           scheme=RequantScheme.mult_shift, act_min=-2**31, act_max=2**31 - 1)
PARAMS = {"conv2d": ConvParams, "depthwise_conv2d": DepthwiseConvParams,
          "fully_connected": FullyConnectedParams}


def with_acc(p, **kw):
    """``p`` with its accumulator model's fields ``kw`` changed."""
    return p.replace(accumulator=p.accumulator.replace(**kw))


def _random_layer(rng, kernel, big=False):
    """(params, x) of a random MAC layer (params as lowering makes them) with a random
    accumulator model."""
    from hwsim.lower.conv import compute_out_size, compute_padding
    zp = int(rng.integers(-128, 128))
    extreme = rng.random() < 0.3

    def ints(lo, hi, shape, dtype):
        if extreme:
            return rng.choice(np.array([lo, hi, 0, hi // 2]), size=shape).astype(dtype)
        return rng.integers(lo, hi + 1, size=shape).astype(dtype)
    kw = {}
    if kernel == "fully_connected":
        B, K, C = int(rng.integers(1, 4)), int(rng.integers(1, 300 if big else 40)), \
            int(rng.integers(1, 7))
        x = ints(-128, 127, (B, K), np.int8)
        kw.update(weights=ints(-128, 127, (C, K), np.int8), batch=B, depth=K, out_shape=(B, C))
    else:
        while True:
            N, H, W = int(rng.integers(1, 3)), int(rng.integers(1, 8)), int(rng.integers(1, 8))
            kh, kw_ = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            sh, sw, dh, dw = (int(v) for v in rng.integers(1, 3, size=4))
            pad = ["SAME", "VALID"][int(rng.integers(0, 2))]
            oh, ow = compute_out_size(pad, H, kh, sh, dh), compute_out_size(pad, W, kw_, sw, dw)
            if oh > 0 and ow > 0:
                break
        cin = int(rng.integers(1, 6))
        kw.update(stride_h=sh, stride_w=sw, dilation_h=dh, dilation_w=dw, out_h=oh, out_w=ow,
                  pad_top=compute_padding(sh, dh, H, kh, oh) if pad == "SAME" else 0,
                  pad_left=compute_padding(sw, dw, W, kw_, ow) if pad == "SAME" else 0)
        x = ints(-128, 127, (N, H, W, cin), np.int8)
        if kernel == "conv2d":
            kw.update(weights=ints(-128, 127, (int(rng.integers(1, 7)), kh, kw_, cin), np.int8),
                      groups=1)
        else:
            dm = int(rng.integers(1, 4))
            kw.update(weights=ints(-128, 127, (1, kh, kw_, cin * dm), np.int8),
                      depth_multiplier=dm)
    cout = kw["weights"].shape[0] if kernel != "depthwise_conv2d" else kw["weights"].shape[3]
    if rng.random() < 0.8:
        mag = int(rng.choice([100, 5000, 2**20]))
        bias = rng.integers(-mag, mag + 1, size=cout).astype(np.int32)
    else:
        bias = None
    acc = AccumulatorModel(acc_bits=int(rng.choice([8, 10, 12, 16, 20, 24, 32, 40, 63, 64])),
                           overflow=Overflow(int(rng.integers(0, 2))),
                           dataflow=Dataflow(int(rng.integers(0, 2))),
                           array_rows=int(rng.integers(1, 10)), array_cols=4,
                           bias_first=bool(rng.random() < 0.7))
    p = PARAMS[kernel](bias=bias, input_offset=-zp, acc_int64=False, requant=NO_REQUANT,
                       accumulator=acc, **kw)
    return p, x


def _model(kernel, p, x):
    m = p.accumulator
    return py_layer(kernel, p, x, m.acc_bits, m.overflow == Overflow.saturate,
                    m.dataflow == Dataflow.weight_stationary, m.array_rows, m.bias_first)


KERNELS = ["conv2d", "depthwise_conv2d", "fully_connected"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from(KERNELS))
def test_fast_path_equals_slow_path_equals_order_model(seed, kernel):
    rng = np.random.default_rng(seed)
    p, x = _random_layer(rng, kernel)
    fast = A.accumulate(p, x)
    slow = A.accumulate(p, x, force_slow=True)
    assert fast.dtype == slow.dtype == (np.int64 if p.accumulator.acc_bits > 32 else np.int32)
    assert np.array_equal(fast, slow)
    assert np.array_equal(slow.astype(np.int64), _model(kernel, p, x).astype(np.int64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from(KERNELS))
def test_fast_path_applies_only_where_provably_identical(seed, kernel):
    """On every channel the fast path claims, its value equals the order model's; the claim
    is made whenever overflow = wrap and the engine value is exact modulo 2^acc_bits, or no
    partial sum can leave the range."""
    rng = np.random.default_rng(seed)
    p, x = _random_layer(rng, kernel, big=True)
    for bits, sat in ((32, 0), (24, 1), (16, 1), (12, 0), (48, 1)):
        p = with_acc(p, acc_bits=bits, overflow=Overflow(sat))
        mask = A.fast_path_channels(p, x, 32)
        if not sat and bits <= 32:
            assert mask.all()
        fast = A.accumulate(p, x)
        model = _model(kernel, p, x).astype(np.int64)
        assert np.array_equal(fast[..., mask].astype(np.int64), model[..., mask])
        assert np.array_equal(fast.astype(np.int64), model)


def test_fast_path_needs_an_exact_engine_value():
    """An int8 FC whose sum leaves int32: the engine's int32 value is only exact mod 2^32, so a
    40-bit accumulator takes the slow path; a 32-bit wrapping one is the engine's value."""
    K = 70000
    x = np.full((1, K), 127, np.int8)
    p = FullyConnectedParams(
        weights=np.full((2, K), 127, np.int8), bias=np.array([0, -7], np.int32),
        input_offset=128, batch=1, depth=K, out_shape=(1, 2), acc_int64=False,
        requant=NO_REQUANT, accumulator=AccumulatorModel(
            acc_bits=32, overflow=Overflow.wrap, dataflow=Dataflow.output_stationary,
            array_rows=8, array_cols=8, bias_first=True))
    exact = [K * 255 * 127, K * 255 * 127 - 7]
    assert exact[0] > 2**31
    for bits, sat, want in ((40, 0, exact), (48, 1, exact),
                            (32, 0, [((v + 2**31) % 2**32) - 2**31 for v in exact]),
                            (32, 1, [2**31 - 1] * 2), (24, 1, [2**23 - 1] * 2)):
        p = with_acc(p, acc_bits=bits, overflow=Overflow(sat))
        mask = A.fast_path_channels(p, x, 32)
        assert mask.tolist() == [bits <= 32 and not sat] * 2
        got = A.accumulate(p, x)
        assert got.reshape(-1).tolist() == want, (bits, sat)


def test_wide_accumulators_64_bits_wrap_and_saturate():
    """acc_bits = 64: additions wrap mod 2^64 or saturate at the int64 limits, exactly."""
    x = np.full((1, 3), 127, np.int8)
    big = 2**63 - 1000
    for sat, want in ((0, big + 2 * 32385 - 2**64), (1, 2**63 - 1)):
        # start the accumulator near the top through a bias: the bias memory is int64 here
        p = FullyConnectedParams(
            weights=np.full((1, 3), 127, np.int8), bias=np.array([big - 32385], np.int64),
            input_offset=128, batch=1, depth=3, out_shape=(1, 1), acc_int64=True,
            requant=NO_REQUANT, accumulator=AccumulatorModel(
                acc_bits=64, overflow=Overflow(sat), dataflow=Dataflow.output_stationary,
                array_rows=2, array_cols=2, bias_first=True))
        got = int(A.accumulate(p, x, force_slow=True)[0, 0])
        assert got == want == py_accumulate([32385] * 3, big - 32385, 64, bool(sat), False, 2)


# -- order dependence of a saturating accumulator ---------------------------------------------

def _fc_params(w, **acc):
    w = np.asarray(w, np.int8)
    return FullyConnectedParams(weights=w, bias=None, input_offset=0, batch=1,
                                depth=w.shape[1], out_shape=(1, w.shape[0]), acc_int64=False,
                                requant=NO_REQUANT, accumulator=AccumulatorModel(**acc))


def test_saturating_accumulator_is_order_dependent_constructed():
    """products 100, 100, -100, -100 into an 8-bit saturating accumulator:
    output_stationary 0 -> 100 -> 127 -> 27 -> -73; weight_stationary (rows = 2): column sums
    127 (saturated) and -128 (saturated), accumulator 127 - 128 = -1. Exact: 0."""
    x = np.array([[10, 10, -10, -10]], np.int8)
    p = _fc_params([[10, 10, 10, 10]], acc_bits=8, overflow=Overflow.saturate, array_rows=2,
                   array_cols=1, bias_first=True, dataflow=Dataflow.output_stationary)
    os_ = int(A.accumulate(with_acc(p, dataflow=Dataflow.output_stationary), x)[0, 0])
    ws_ = int(A.accumulate(with_acc(p, dataflow=Dataflow.weight_stationary), x)[0, 0])
    assert (os_, ws_) == (-73, -1)
    prods = [100, 100, -100, -100]
    assert os_ == py_accumulate(prods, 0, 8, True, False, 2)
    assert ws_ == py_accumulate(prods, 0, 8, True, True, 2)


def test_saturating_accumulator_order_dependence_through_a_network():
    """The same FC as a model mapped onto two 8-bit saturating configs: the hardware
    accumulators in the trace differ between the dataflows and each equals the order model."""
    w = np.array([[10, 10, 10, 10], [20, -30, 5, 0]], np.int8)
    g = fc_graph((1, 4), w, np.array([3, -2], np.int32), zp_in=0)
    x = np.array([[10, 10, -10, -10]], np.int8)
    accs = {}
    for flow in ("output_stationary", "weight_stationary"):
        cfg = config_from_dict({"name": flow, "array": {"rows": 2, "cols": 2, "dataflow": flow},
                                "accumulator": {"bits": 8, "overflow": "saturate"}})
        hw = map_network(g, cfg, legalize="approx")
        acc = hw.run(x, trace=True).trace.accumulators[0].reshape(-1).tolist()
        for c in range(2):
            prods = [int(x[0, k]) * int(w[c, k]) for k in range(4)]
            assert acc[c] == py_accumulate(prods, [3, -2][c], 8, True,
                                           flow == "weight_stationary", 2)
        accs[flow] = acc
    assert accs["output_stationary"][0] != accs["weight_stationary"][0]


def test_saturating_conv_order_dependence_random():
    """Random 3x3 convolutions into a 12-bit saturating accumulator: some outputs differ between
    output_stationary and weight_stationary; every one equals the Python order model."""
    rng = np.random.default_rng(7)
    differing = 0
    for _ in range(4):
        p, x = _random_layer(rng, "conv2d")
        p = with_acc(p, acc_bits=12, overflow=Overflow.saturate, array_rows=3, bias_first=True)
        os_ = A.accumulate(with_acc(p, dataflow=Dataflow.output_stationary), x)
        ws_ = A.accumulate(with_acc(p, dataflow=Dataflow.weight_stationary), x)
        assert np.array_equal(os_.astype(np.int64), py_layer("conv2d", p, x, 12, True, False, 3)
                              .astype(np.int64))
        assert np.array_equal(ws_.astype(np.int64), py_layer("conv2d", p, x, 12, True, True, 3)
                              .astype(np.int64))
        differing += int((os_ != ws_).sum())
    assert differing > 0


def test_trace_accumulators_exact_and_intermediates():
    rng = np.random.default_rng(11)
    for kernel in KERNELS:
        for _ in range(3):
            p, x = _random_layer(rng, kernel)
            hw, ex, lo, hi = A.trace_accumulators(p, x)
            assert np.array_equal(hw, A.accumulate(p, x, force_slow=True).astype(np.int64))
            m = p.accumulator
            for idx in np.ndindex(hw.shape):
                prods = layer_products(kernel, p, x, idx)
                b = 0 if p.bias is None else int(p.bias[idx[-1]])
                inter = py_intermediates(prods, b, m.dataflow == Dataflow.weight_stationary,
                                         m.array_rows, m.bias_first)
                assert ex[idx] == sum(prods) + b
                assert (lo[idx], hi[idx]) == (min(inter), max(inter))


def test_channel_bounds_contain_every_partial_sum():
    rng = np.random.default_rng(5)
    for kernel in KERNELS:
        p, x = _random_layer(rng, kernel)
        lo_c, hi_c = A.channel_bounds(A.KINDS[kernel], p.weights, p.bias, p.input_offset,
                                      int(x.min()), int(x.max()))
        assert all(np.array_equal(u, v) for u, v in
                   zip((lo_c, hi_c), A.layer_bounds(p, int(x.min()), int(x.max()))))
        _, _, lo, hi = A.trace_accumulators(p, x)
        assert (lo >= lo_c).all() and (hi <= hi_c).all()


# -- the tflite-int8 preset reproduces the engine ----------------------------------------------

CORPUS = Path(os.environ.get("HWSIM_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))


def _corpus_models():
    import yaml
    if not (CORPUS / "index.yaml").exists():
        return []
    return [m["path"] for m in yaml.safe_load((CORPUS / "index.yaml").read_text())["models"]]


CORPUS_MODELS = _corpus_models()


@pytest.mark.skipif(not CORPUS_MODELS, reason=f"corpus not found at {CORPUS} (set "
                                              f"HWSIM_CORPUS); the preset-vs-engine corpus "
                                              f"test did not run")
@pytest.mark.parametrize("path", CORPUS_MODELS or ["<none>"])
def test_tflite_int8_preset_reproduces_the_engine_on_the_corpus(path):
    """Every tensor and every accumulator (values and dtype) of the tflite-int8 hardware
    program equals the engine's on the corpus inputs, and the outputs equal the oracle's."""
    import h5py
    import hwsim
    d = CORPUS / path
    with h5py.File(d / "expected.h5", "r") as h:
        if h.attrs["oracle"] == "none":
            # only keyword_scrambled_8bit: SVDF with int8 state, which TFLite itself cannot run
            pytest.skip(f"{path}: the corpus has no oracle for it and the engine refuses its "
                        f"SVDF op")
    g = hwsim.load_graph(d / "model.tflite")
    ref = Network(lower(g), g)  # any other model failing to load is a failure, not a skip
    hw = Network(lower(g, "tflite-int8"), g)
    assert all(layer.params.accumulator is not None for layer in hw.program.layers
               if layer.has_acc)
    with h5py.File(d / "expected.h5", "r") as h:
        files = json.loads(h.attrs["input_files"])
        x = np.load(d / files[0])
        r_ref, r_hw = ref.run(x, trace=True).trace, hw.run(x, trace=True).trace
        for t, v in r_ref.tensors.items():
            assert r_hw.tensors[t].dtype == v.dtype and np.array_equal(r_hw.tensors[t], v), t
        assert r_ref.accumulators.keys() == r_hw.accumulators.keys()
        for k, v in r_ref.accumulators.items():
            assert r_hw.accumulators[k].dtype == v.dtype and np.array_equal(
                r_hw.accumulators[k], v), k
        if h.attrs["oracle"] != "none":
            for k, t in enumerate(g.outputs):
                assert np.array_equal(r_hw.tensors[t], h[f"outputs/{k}"][()])


def test_tflite_int8_preset_reproduces_the_engine_small_cnn():
    """Without the corpus too: a network with every array op (and 16x8 with int64 bias)."""
    rng = np.random.default_rng(0)
    g = small_cnn(rng)
    x = rng.integers(-128, 128, size=(1, 8, 8, 3)).astype(np.int8)
    ref, hw = Network(lower(g), g), Network(lower(g, load_config("tflite-int8")), g)
    a, b = ref.run(x, trace=True).trace, hw.run(x, trace=True).trace
    for t in a.tensors:
        assert np.array_equal(a.tensors[t], b.tensors[t])
    for k in a.accumulators:
        assert a.accumulators[k].dtype == b.accumulators[k].dtype
        assert np.array_equal(a.accumulators[k], b.accumulators[k])


# -- statistics -----------------------------------------------------------------------------

def _conv_graph(shape=(1, 8, 8, 3), cout=16, k=3, padding="SAME", stride=1, dw=False):
    b = GraphBuilder("conv")
    x = b.input("x", shape, np.int8, scale=0.02, zero_point=0)
    rng = np.random.default_rng(0)
    if dw:
        cout = shape[3]
        w = b.const("w", rng.integers(-100, 100, (1, k, k, cout)).astype(np.int8),
                    scales=np.full(cout, 0.01, np.float32), axis=3)
    else:
        w = b.const("w", rng.integers(-100, 100, (cout, k, k, shape[3])).astype(np.int8),
                    scales=np.full(cout, 0.01, np.float32), axis=0)
    from hwsim.lower.conv import compute_out_size
    o = compute_out_size(padding, shape[1], k, stride, 1)
    y = b.activation("y", (shape[0], o, o, cout), np.int8, scale=0.05, zero_point=0)
    attrs = dict(padding=padding, stride_w=stride, stride_h=stride, dilation_w_factor=1,
                 dilation_h_factor=1, fused_activation_function="NONE")
    if dw:
        attrs["depth_multiplier"] = 1
    b.op("DEPTHWISE_CONV_2D" if dw else "CONV_2D", [x, w], [y], **attrs)
    b.output(y)
    return b.build()


def _stats_cfg(flow):
    return config_from_dict({"name": "stats", "array": {"rows": 4, "cols": 8, "dataflow": flow},
                             "memories": {"weights": {"word_bits": 128, "lanes": 16},
                                          "activations": {"word_bits": 64, "lanes": 8}}})


def _touched(start: int, n: int, lanes: int) -> int:
    """Words a run of n elements from element ``start`` touches, by listing them (independent
    of dataflow.run_words' formula)."""
    return len({e // lanes for e in range(start, start + n)})


def test_run_words_counts_the_words_a_run_touches():
    from hwsim.hw.dataflow import run_words
    rng = np.random.default_rng(3)
    for lanes in (1, 4, 8, 16):
        for s0, n in rng.integers(1, 200, (200, 2)).tolist():
            assert run_words(s0, n, lanes) == _touched(s0, n, lanes), (s0, n, lanes)
    # 12 channels in 8-lane words: pixel 1's first lane group (elements 12..19) straddles
    assert [run_words(12 * p, 8, 8) for p in range(4)] == [1, 2, 1, 2]


def _conv_gather_words(h, w, cin, k, pad, lanes, rows):
    """Per pixel tile of a stride-1 CONV k x k, SAME: hwsim_gather's cycles, by walking the
    kernel rows inside the image (one run of the inside taps' pixels x Cin each)."""
    out = []
    for y in range(h):
        for x in range(w):
            x0, x1 = max(x - pad, 0), min(x - pad + k, w)
            out.append(sum(_touched(((y - pad + ky) * w + x0) * cin, (x1 - x0) * cin, lanes)
                           for ky in range(k) if 0 <= y - pad + ky < h))
    return [sum(out[i:i + rows]) for i in range(0, len(out), rows)]


def test_layer_stats_worked_example():
    """docs/dataflow.md's worked example: CONV 3x3 SAME, 1x8x8x3 -> 16 channels on a 4x8 array.
    P = 64, C = 16, K = 27. OS (the reference RTL's pipeline): 3 cycles to start, job 0 (pixel
    tile 0) gathered in 14 cycles, 2 to hand it over, then 16 pixel tiles of 2 channel tiles x
    (27 + 4 + 8 - 2) = 74 cycles (each next tile gathered meanwhile: at most 24 words), the
    tail of 12 and the last tile's 4 drained rows (8 channels, one word each): 1219.
    WS: tiles = 7 * 2 = 14, cycles = 14 * (4 + 64 + 4 + 8 - 2) = 1092."""
    g = _conv_graph()
    jobs = _conv_gather_words(8, 8, 3, 3, 1, 8, 4)
    assert jobs[0] == 14 and max(jobs) <= 74 and len(jobs) == 16
    for flow, tiles, cycles, wread, bread, rqread, act_read in (
            ("output_stationary", 32, 3 + 14 + 2 + 16 * 74 + 12 + 4, 512, 256, 16, sum(jobs)),
            # WS: the elements of Sy = Sx = 2 + 6*3 + 2 = 22 taps, 22*22*3 = 1452, in words
            ("weight_stationary", 14, 1092, 32, 16, 1, -(-1452 // 8))):
        cfg = _stats_cfg(flow)
        s, = map_network(g, cfg).layer_stats()
        assert (s.P, s.C, s.K, s.macs, s.tiles, s.cycles) == (64, 16, 27, 27648, tiles, cycles)
        assert s.utilisation == 27648 / (cycles * 32)
        assert s.words["weights"] == {"read": wread, "written": 0}  # wpc = ceil(27/16) = 2
        assert s.words["bias"]["read"] == bread
        assert s.words["requant"]["read"] == rqread  # per-tensor weights: one requant word
        # inputs: once per pixel tile (its im2col rows serve both channel tiles)
        assert s.words["activations"] == {"read": act_read, "written": 64 * 16 // 8}
        assert s.formula.endswith(f"= {cycles}")
    assert "1219" in format_stats(map_network(g, _stats_cfg("output_stationary")).layer_stats())


def test_layer_stats_depthwise_fc_pool_add_alias_host():
    cfg = _stats_cfg("output_stationary")
    s, = map_network(_conv_graph(shape=(1, 6, 6, 10), dw=True, padding="VALID"), cfg)\
        .layer_stats()
    # P = 16, C = 10, K = 9: 4 pixel tiles x 2 channel tiles (8 + 2 channels), each a job of
    # 4 rows x 9 taps x the words of the tile's channel run (>= 36 cycles > 9 + 4 + 8 - 2 =
    # 19 of compute): gather-bound. 3 + every job's gather + 2 + the last tile's 19 + 12 +
    # its 4 drained rows (2 channels at 10 p + 8: one word each)
    gather = sum(_touched((6 * (r // 4 + ky) + r % 4 + kx) * 10 + ct, n, 8)
                 for r in range(16) for ky in range(3) for kx in range(3)
                 for ct, n in ((0, 8), (8, 2)))
    assert (s.P, s.C, s.K, s.tiles) == (16, 10, 9, 8)
    assert s.cycles == 3 + gather + 2 + 19 + 12 + 4
    assert s.words["activations"]["read"] == gather
    g = small_cnn(np.random.default_rng(1))
    hw = map_network(g, cfg, host_tail=True)
    st_ = {s.op: s for s in hw.layer_stats()}
    fc = st_["FULLY_CONNECTED"]
    # FC's prologue: its input row (32 elements: 4 words, and the tile's 3 rows past the
    # batch, a cycle each) is gathered before the first product
    assert (fc.P, fc.C, fc.K, fc.tiles) == (1, 5, 32, 1)
    assert fc.cycles == 3 + (4 + 3) + 2 + (32 + 4 + 8 - 2) + 12 + 1
    mp = st_["MAX_POOL_2D"]
    # 16 lane groups (8 channels: one word) x their 2x2 window's taps inside the image (SAME,
    # stride 1: the last row and column of windows have 2 taps, the corner one 1; 7 of the
    # 16 windows, 15 taps in the padding, skipped), + the pool unit's 11
    assert mp.cycles == 16 * 4 - 15 + 11 and mp.macs == 0 and mp.utilisation == 0
    assert mp.words["activations"]["read"] == 16 * 4 - 15
    add = st_["ADD"]
    # 128 / 8 = 16 output words, two input words each on the one read port, + 9
    assert add.cycles == 2 * 16 + 9 and add.words["activations"] == {"read": 32, "written": 16}
    assert st_["RESHAPE"].placement == "alias" and st_["RESHAPE"].cycles == 0
    assert st_["SOFTMAX"].placement == "host" and st_["SOFTMAX"].cycles == 0
    assert [s.layer for s in hw.layer_stats()] == [layer.index for layer in hw.program.layers]


def test_more_columns_than_weight_lanes_the_weight_feed_paces_the_tiles():
    """CONV 1x1, 1x4x4x64 -> 16 channels on a 4x16 array with 8-lane weight words: each column
    needs a new weight word every 8 steps, the feed delivers one word a cycle, so a tile takes
    its 16 x ceil(64/8) = 128 weight words, not K + R + Cc - 2 = 82 cycles (the 16x16 example on
    the RTL: docs/cosim.md). 4 pixel tiles, each gathered in 4 rows x 8 words = 32 cycles:
    3 + 32 + 2 + 4 x 128 + 12 + the last tile's 4 rows of 16 channels (2 words each)."""
    g = _conv_graph(shape=(1, 4, 4, 64), cout=16, k=1)
    cfg = config_from_dict({"name": "wide", "array": {"rows": 4, "cols": 16},
                            "memories": {"weights": {"word_bits": 64, "lanes": 8},
                                         "activations": {"word_bits": 64, "lanes": 8}}})
    s, = map_network(g, cfg).layer_stats()
    assert (s.P, s.C, s.K, s.tiles) == (16, 16, 64, 4)
    assert s.cycles == 3 + 32 + 2 + 4 * 128 + 12 + 8
    assert s.words["weights"]["read"] == 4 * 16 * 8


def test_vector_units_are_a_memory_word_wide_and_count_straddling_groups():
    """MEAN over 6 x 5 of 12 channels with 8-lane words on a 3 x 5 array: the pool unit takes
    8 channels (a word), not array.cols = 5; pixel p's first lane group starts at element
    12 p, so every odd pixel's straddles two words: 30 taps x 2 groups + 15 = 75 reads, + 11."""
    from hwsim.frontends.builder import GraphBuilder
    b = GraphBuilder("mean")
    x = b.input("x", (1, 6, 5, 12), np.int8, scale=0.02, zero_point=0)
    y = b.activation("y", (1, 1, 1, 12), np.int8, scale=0.02, zero_point=0)
    b.op("MEAN", [x, b.const("axes", np.array([1, 2], np.int32))], [y], keep_dims=True)
    b.output(y)
    cfg = config_from_dict({"name": "m35", "array": {"rows": 3, "cols": 5},
                            "memories": {"activations": {"word_bits": 64, "lanes": 8}}})
    s, = map_network(b.build(), cfg).layer_stats()
    assert s.cycles == 30 * 2 + 15 + 11 and s.words["activations"]["read"] == 75


# -- headroom -----------------------------------------------------------------------------------

def test_headroom_table_matches_the_order_model():
    rng = np.random.default_rng(2)
    g = small_cnn(rng)
    x = rng.integers(-128, 128, size=(1, 8, 8, 3)).astype(np.int8)
    cfg = config_from_dict({"name": "n14", "array": {"rows": 4, "cols": 4,
                                                     "dataflow": "weight_stationary"},
                            "accumulator": {"bits": 14, "overflow": "saturate"}})
    hw = map_network(g, cfg, legalize="approx", host_tail=True)
    res = hw.run(x, trace=True)
    table = hw.headroom(res, max_elements=10**6)
    assert [r.layer for r in table] == [layer.index for layer in hw.program.layers
                                        if layer.has_acc]
    assert "out of range" in table.format()
    total = 0
    for row in table:
        layer = next(la for la in hw.program.layers if la.index == row.layer)
        xin = res.trace.tensors[layer.inputs[0]]
        if layer.kernel == "fully_connected":
            xin = xin.reshape(layer.params.batch, layer.params.depth)
        acc = res.trace.accumulators[layer.index]
        bad, exact = [], []
        for idx in np.ndindex(acc.shape):
            prods = layer_products(layer.kernel, layer.params, xin, idx)
            b = int(layer.params.bias[idx[-1]])
            inter = py_intermediates(prods, b, True, 4)
            exact.append(sum(prods) + b)
            if min(inter) < -2**13 or max(inter) > 2**13 - 1:
                bad.append((int(np.ravel_multi_index(idx, acc.shape)), idx, sum(prods) + b))
            assert acc[idx] == py_accumulate(prods, b, 14, True, True, 4)
        assert (row.acc_min, row.acc_max) == (min(exact), max(exact))
        assert row.out_of_range == len(bad) and row.elements == acc.size
        assert [(e.flat_index, e.coords, e.exact) for e in row.out_of_range_elements] == bad
        for e in row.out_of_range_elements:
            assert e.hardware == acc[e.coords]
        assert row.worst_min <= row.partial_min and row.partial_max <= row.worst_max
        assert row.worst_fits == (row.worst_bits <= 14)
        total += len(bad)
    assert total > 0
    # without a trace: the static worst case only
    static = hw.headroom()
    assert static[0].acc_min is None and static[0].worst_max == table[0].worst_max


def test_tensor_ranges_follow_the_clamps():
    g = small_cnn(np.random.default_rng(3), act1="RELU6")
    hw = map_network(g, "tflite-int8", host_tail=True)
    r = tensor_ranges(hw.program)
    conv = hw.program.layers[0]
    assert r[conv.outputs[0]] == conv.params.clamp()
    assert r[hw.program.inputs[0]] == (-128, 127)
    reshape = next(la for la in hw.program.layers if la.op == "RESHAPE")
    assert r[reshape.outputs[0]] == r[reshape.inputs[0]]
