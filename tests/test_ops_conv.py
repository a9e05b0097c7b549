"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED as single-op models: hwsim's integers equal
TFLite's reference kernels (ai-edge-litert, BUILTIN_REF) exactly, across shapes, strides,
paddings, dilations, groups, depth multipliers, zero points, scales, per-tensor/per-channel
weights, fused activations, int8 and int16x8."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.frontends.builder import GraphBuilder
from oracle import assert_same_as_tflite


def _out_size(padding, n, k, s, d):
    eff = (k - 1) * d + 1
    return (n + s - 1) // s if padding == "SAME" else (n + s - eff) // s


def _scales(rng, n, per_channel):
    s = rng.uniform(0.002, 0.02, n if per_channel else 1).astype(np.float32)
    return s


def _bias(rng, n, s_in, s_w, dtype):
    scales = (np.float32(s_in) * np.asarray(s_w)).astype(np.float32)  # per-tensor: one scale
    lim = 2**20 if dtype == np.int32 else 2**30
    return rng.integers(-lim, lim, n).astype(dtype), scales


def _input(rng, shape, dtype, extreme):
    info = np.iinfo(dtype)
    if extreme:
        return rng.choice([info.min, info.max], shape).astype(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def conv_model(rng, *, h, w, cin, cout, k, stride, dilation, padding, groups=1, zp_in=-3,
               zp_out=5, s_out=0.05, per_channel=True, act="NONE", dtype=np.int8, bias=True):
    b = GraphBuilder("conv")
    s_in = 0.02
    if dtype == np.int16:
        zp_in = zp_out = 0
    x = b.input("x", (1, h, w, cin), dtype, s_in, zp_in)
    s_w = _scales(rng, cout, per_channel)
    wt = b.const("w", rng.integers(-127, 128, (cout, k[0], k[1], cin // groups)).astype(np.int8),
                 s_w, np.zeros(len(s_w), np.int64), 0)
    ins = [x, wt]
    if bias:
        bv, bs = _bias(rng, cout, s_in, s_w, np.int32 if dtype == np.int8 else np.int64)
        ins.append(b.const("b", bv, bs, np.zeros(len(bs), np.int64), 0))
    oh = _out_size(padding, h, k[0], stride[0], dilation[0])
    ow = _out_size(padding, w, k[1], stride[1], dilation[1])
    y = b.activation("y", (1, oh, ow, cout), dtype, s_out, zp_out)
    b.op("CONV_2D", ins, [y], version=3 if dtype == np.int8 else 4, padding=padding,
         stride_h=stride[0], stride_w=stride[1], dilation_h_factor=dilation[0],
         dilation_w_factor=dilation[1], fused_activation_function=act)
    b.output(y)
    return b.tflite()


CONV_CASES = [
    dict(h=9, w=9, cin=3, cout=8, k=(3, 3), stride=(1, 1), dilation=(1, 1), padding="SAME"),
    dict(h=10, w=7, cin=5, cout=7, k=(3, 3), stride=(2, 2), dilation=(1, 1), padding="SAME"),
    dict(h=11, w=11, cin=4, cout=6, k=(5, 3), stride=(2, 1), dilation=(1, 1), padding="VALID"),
    dict(h=12, w=12, cin=6, cout=5, k=(3, 3), stride=(1, 1), dilation=(2, 2), padding="SAME"),
    dict(h=13, w=9, cin=3, cout=9, k=(3, 3), stride=(1, 2), dilation=(2, 1), padding="VALID"),
    dict(h=6, w=6, cin=16, cout=17, k=(1, 1), stride=(1, 1), dilation=(1, 1), padding="VALID"),
    dict(h=1, w=1, cin=33, cout=13, k=(1, 1), stride=(1, 1), dilation=(1, 1), padding="SAME"),
    dict(h=8, w=8, cin=8, cout=12, k=(3, 3), stride=(1, 1), dilation=(1, 1), padding="SAME",
         groups=4),
    dict(h=7, w=7, cin=6, cout=6, k=(3, 3), stride=(2, 2), dilation=(1, 1), padding="SAME",
         groups=2),
    dict(h=5, w=5, cin=3, cout=4, k=(5, 5), stride=(1, 1), dilation=(1, 1), padding="SAME"),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6"])
def test_conv2d_int8_matches_tflite_ref(case, act):
    rng = np.random.default_rng(case * 10 + len(act))
    p = CONV_CASES[case]
    m = conv_model(rng, act=act, **p)
    assert_same_as_tflite(m, _input(rng, (1, p["h"], p["w"], p["cin"]), np.int8, False))


@pytest.mark.parametrize("zp_in,zp_out,s_out", [(-128, 127, 0.5), (127, -128, 0.001),
                                                (0, 0, 5.0), (-1, -1, 0.03)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_conv2d_zero_points_and_scales(zp_in, zp_out, s_out, per_channel):
    """Zero points at the extremes, output scales giving multipliers < 1 and > 1."""
    rng = np.random.default_rng(abs(zp_in) + 3 * abs(zp_out))
    p = CONV_CASES[1]
    m = conv_model(rng, zp_in=zp_in, zp_out=zp_out, s_out=s_out, per_channel=per_channel, **p)
    for extreme in (False, True):
        assert_same_as_tflite(m, _input(rng, (1, p["h"], p["w"], p["cin"]), np.int8, extreme))


@pytest.mark.parametrize("case", [0, 1, 3, 5])
def test_conv2d_int16x8_matches_tflite_ref(case):
    # (TFLite's conv.cc refuses a 16x8 CONV_2D without bias: has_bias is required)
    rng = np.random.default_rng(100 + case)
    p = CONV_CASES[case]
    m = conv_model(rng, dtype=np.int16, s_out=0.0005, **p)
    assert_same_as_tflite(m, _input(rng, (1, p["h"], p["w"], p["cin"]), np.int16, False))


def dw_model(rng, *, h, w, cin, dm, k, stride, dilation, padding, zp_in=4, zp_out=-7, s_out=0.04,
             act="NONE", dtype=np.int8, bias=True):
    b = GraphBuilder("dw")
    s_in = 0.02
    if dtype == np.int16:
        zp_in = zp_out = 0
    cout = cin * dm
    x = b.input("x", (1, h, w, cin), dtype, s_in, zp_in)
    s_w = _scales(rng, cout, True)
    wt = b.const("w", rng.integers(-127, 128, (1, k[0], k[1], cout)).astype(np.int8), s_w,
                 np.zeros(cout, np.int64), 3)
    ins = [x, wt]
    if bias:
        bv, bs = _bias(rng, cout, s_in, s_w, np.int32 if dtype == np.int8 else np.int64)
        ins.append(b.const("b", bv, bs, np.zeros(len(bs), np.int64), 0))
    oh = _out_size(padding, h, k[0], stride[0], dilation[0])
    ow = _out_size(padding, w, k[1], stride[1], dilation[1])
    y = b.activation("y", (1, oh, ow, cout), dtype, s_out, zp_out)
    b.op("DEPTHWISE_CONV_2D", ins, [y], version=3 if dtype == np.int8 else 5, padding=padding,
         stride_h=stride[0], stride_w=stride[1], dilation_h_factor=dilation[0],
         dilation_w_factor=dilation[1], depth_multiplier=dm, fused_activation_function=act)
    b.output(y)
    return b.tflite()


DW_CASES = [
    dict(h=9, w=9, cin=8, dm=1, k=(3, 3), stride=(1, 1), dilation=(1, 1), padding="SAME"),
    dict(h=10, w=11, cin=5, dm=2, k=(3, 3), stride=(2, 2), dilation=(1, 1), padding="SAME"),
    dict(h=12, w=12, cin=3, dm=3, k=(5, 5), stride=(1, 1), dilation=(1, 1), padding="VALID"),
    dict(h=12, w=10, cin=13, dm=1, k=(3, 3), stride=(1, 1), dilation=(2, 2), padding="SAME"),
    dict(h=7, w=7, cin=17, dm=1, k=(3, 3), stride=(2, 1), dilation=(1, 1), padding="VALID"),
    dict(h=1, w=1, cin=4, dm=2, k=(1, 1), stride=(1, 1), dilation=(1, 1), padding="SAME"),
]


@pytest.mark.parametrize("case", range(len(DW_CASES)))
@pytest.mark.parametrize("act", ["NONE", "RELU6"])
def test_depthwise_int8_matches_tflite_ref(case, act):
    rng = np.random.default_rng(200 + case)
    p = DW_CASES[case]
    m = dw_model(rng, act=act, **p)
    for extreme in (False, True):
        assert_same_as_tflite(m, _input(rng, (1, p["h"], p["w"], p["cin"]), np.int8, extreme))


@pytest.mark.parametrize("case", [0, 1, 3])
def test_depthwise_int16x8_matches_tflite_ref(case):
    rng = np.random.default_rng(300 + case)
    p = DW_CASES[case]
    m = dw_model(rng, dtype=np.int16, s_out=0.0005, **p)
    assert_same_as_tflite(m, _input(rng, (1, p["h"], p["w"], p["cin"]), np.int16, False))


def fc_model(rng, *, in_shape, cout, per_channel=False, keep_num_dims=False, zp_in=-5,
             zp_out=3, s_out=0.1, act="NONE", dtype=np.int8, bias=True):
    b = GraphBuilder("fc")
    s_in = 0.02
    if dtype == np.int16:
        zp_in = zp_out = 0
    k = in_shape[-1]
    x = b.input("x", in_shape, dtype, s_in, zp_in)
    s_w = _scales(rng, cout, per_channel)
    wt = b.const("w", rng.integers(-127, 128, (cout, k)).astype(np.int8), s_w,
                 np.zeros(len(s_w), np.int64), 0)
    ins = [x, wt]
    if bias:
        bv, bs = _bias(rng, cout, s_in, s_w, np.int32 if dtype == np.int8 else np.int64)
        ins.append(b.const("b", bv, bs, np.zeros(len(bs), np.int64), 0))
    out_shape = tuple(in_shape[:-1]) + (cout,) if keep_num_dims else \
        (int(np.prod(in_shape[:-1])), cout)
    y = b.activation("y", out_shape, dtype, s_out, zp_out)
    b.op("FULLY_CONNECTED", ins, [y], version=4 if dtype == np.int8 else 7,
         fused_activation_function=act, keep_num_dims=keep_num_dims)
    b.output(y)
    return b.tflite()


@pytest.mark.parametrize("in_shape,cout", [((1, 64), 10), ((3, 33), 7), ((2, 4, 16), 5),
                                           ((1, 1280), 100), ((5, 1), 3)])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("keep_num_dims", [False, True])
def test_fully_connected_int8_matches_tflite_ref(in_shape, cout, per_channel, keep_num_dims):
    rng = np.random.default_rng(sum(in_shape) + cout)
    m = fc_model(rng, in_shape=in_shape, cout=cout, per_channel=per_channel,
                 keep_num_dims=keep_num_dims, act="RELU" if per_channel else "NONE")
    for extreme in (False, True):
        assert_same_as_tflite(m, _input(rng, in_shape, np.int8, extreme))


@pytest.mark.parametrize("per_channel,bias", [(False, True), (True, True), (False, False)])
def test_fully_connected_int16x8_matches_tflite_ref(per_channel, bias):
    # (per-channel without bias: TFLite's kernel_util.cc scale check refuses these scales)
    rng = np.random.default_rng(7 + per_channel)
    m = fc_model(rng, in_shape=(2, 48), cout=9, per_channel=per_channel, dtype=np.int16,
                 s_out=0.0004, bias=bias)
    assert_same_as_tflite(m, _input(rng, (2, 48), np.int16, False))


def test_fully_connected_requantizes_in_double_like_tflite_ref():
    """TFLite's reference FC rounds double(acc) * real, not the Q31 multiplier path. Find a case
    where the two differ and check hwsim follows TFLite REF there (so this suite can tell the
    two schemes apart)."""
    from hwsim.arith import multiply_by_quantized_multiplier_double, quantize_multiplier
    from hwsim.frontends.tflite_reader import parse_tflite
    from oracle import hwsim_run, tflite_ref
    rng = np.random.default_rng(11)
    for _ in range(50):
        m = fc_model(rng, in_shape=(64, 256), cout=64, s_out=float(rng.uniform(0.05, 0.5)),
                     zp_out=0)
        x = _input(rng, (64, 256), np.int8, False)
        ref = tflite_ref(m, x)[0]
        res = hwsim_run(m, x, trace=True)
        acc = next(iter(res.trace.accumulators.values()))
        g = parse_tflite(m)
        real = (float(g.tensors[0].quant.scales[0]) * float(g.tensors[1].quant.scales[0])
                / float(g.tensors[3].quant.scales[0]))
        q, sh = quantize_multiplier(real)
        q31 = np.clip([[multiply_by_quantized_multiplier_double(int(a), q, sh) for a in row]
                       for row in acc], -128, 127)
        if not np.array_equal(q31, ref):
            assert np.array_equal(res.outputs[0], ref)
            return
    pytest.fail("no case found where Q31 and double requantization differ")


@pytest.mark.parametrize("real", [1e5, 3e5, 1e10, 1e30])
@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("zp_out", [0, -128, 127])
def test_fully_connected_out_of_int32_results_match_tflite_ref(real, sign, zp_out):
    """double(acc) * real beyond int32: TFLite's conversion gives INT32_MIN (x86 cvttsd2si),
    and `acc_scaled += output_offset` then wraps in int32 (zp -128 turns it into +2^31 - 129).
    Undefined behaviour in C++, but it is what TFLite's reference kernel computes."""
    b = GraphBuilder("fc_overflow")
    x = b.input("x", (1, 2), np.int8, 1.0, 0)
    w = b.const("w", np.array([[sign * 100, 7]], np.int8), np.array([1.0], np.float32),
                np.zeros(1, np.int64), 0)
    y = b.activation("y", (1, 1), np.int8, 1.0 / real, zp_out)
    b.op("FULLY_CONNECTED", [x, w], [y], version=4, fused_activation_function="NONE")
    b.output(y)
    assert_same_as_tflite(b.tflite(), np.array([[100, -3]], np.int8))
