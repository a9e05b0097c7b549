"""Pooling, MEAN, ADD/SUB/MUL and CONCATENATION equal TFLite's reference kernels exactly.

Single-op models are built with GraphBuilder, serialized, and run through both TFLite
(BUILTIN_REF) and hwsim (``tests/oracle.py``); every output integer must be equal. The grids
sweep shapes (odd sizes), strides, paddings, filter sizes, zero points (extremes included),
scale ratios above and below 1, broadcasting patterns, fused activations, int8 and int16, and
random as well as extreme (min/max only) inputs.

The last tests (``test_corpus_*``) check these ops on real models of ../shared/corpus: each
layer of this family is lowered alone and fed its input tensors from ``expected.h5``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from oracle import assert_same_as_tflite, hwsim_run, tflite_ref

from hwsim.frontends.builder import GraphBuilder
from hwsim.ir import ModelError

I8, I16 = np.int8, np.int16
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def _data(rng, shape, dtype, mode="random"):
    info = np.iinfo(dtype)
    if mode == "extreme":
        return rng.choice(np.array([info.min, info.max], dtype=dtype), size=shape)
    if mode == "narrow":  # values near zero: exercises RELU/RELU_N1_TO_1 boundaries
        return rng.integers(-40, 41, size=shape).astype(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _check(b: GraphBuilder, inputs):
    assert_same_as_tflite(b.tflite(), inputs)


# --------------------------------------------------------------------------------------------
# MAX_POOL_2D / AVERAGE_POOL_2D
# --------------------------------------------------------------------------------------------

# (input shape NHWC, (filter h, w), (stride h, w), padding)
POOL_GEOMETRY = [
    ((1, 7, 9, 3), (3, 3), (2, 2), "SAME"),
    ((2, 8, 8, 4), (2, 2), (2, 2), "VALID"),
    ((1, 5, 5, 1), (5, 5), (1, 1), "VALID"),     # global
    ((1, 6, 7, 5), (3, 2), (1, 2), "SAME"),
    ((1, 9, 9, 2), (4, 4), (3, 3), "SAME"),
    ((1, 3, 3, 8), (5, 5), (1, 1), "SAME"),      # filter larger than the image
    ((1, 10, 1, 3), (3, 1), (2, 1), "SAME"),
    ((3, 11, 6, 7), (2, 3), (3, 2), "VALID"),
    ((1, 4, 4, 16), (1, 1), (2, 2), "SAME"),     # 1x1 filter, stride 2
    ((1, 13, 13, 2), (7, 7), (4, 4), "SAME"),
]


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("geom", range(len(POOL_GEOMETRY)))
def test_pool2d(op, dtype, geom):
    shape, (fh, fw), (sh, sw), padding = POOL_GEOMETRY[geom]
    rng = np.random.default_rng(100 + geom)
    act = ACTS[geom % 4]
    if dtype == I8:
        zp = [-128, 0, 5, 127, -7][geom % 5]
        scale = [0.05, 0.003, 0.2][geom % 3]
    else:
        zp = [0, 0, 3][geom % 3]
        scale = [1 / 32768, 0.0004, 0.01][geom % 3]
    oh = (shape[1] + sh - 1) // sh if padding == "SAME" else (shape[1] + sh - fh) // sh
    ow = (shape[2] + sw - 1) // sw if padding == "SAME" else (shape[2] + sw - fw) // sw
    b = GraphBuilder("pool")
    x = b.input("x", shape, dtype, scale=scale, zero_point=zp)
    y = b.activation("y", (shape[0], oh, ow, shape[3]), dtype, scale=scale, zero_point=zp)
    b.op(op, [x], [y], padding=padding, stride_w=sw, stride_h=sh, filter_width=fw,
         filter_height=fh, fused_activation_function=act)
    b.output(y)
    for mode in ("random", "extreme", "narrow"):
        _check(b, _data(rng, shape, dtype, mode))


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("act", ACTS)
def test_pool2d_output_quant_differs(op, dtype, act):
    """TFLite does not rescale pooling outputs; only the clamp uses the output's parameters."""
    rng = np.random.default_rng(7)
    zi, zo = (3, -20) if dtype == I8 else (0, 0)
    b = GraphBuilder("pool_q")
    x = b.input("x", (1, 6, 6, 3), dtype, scale=0.02, zero_point=zi)
    y = b.activation("y", (1, 3, 3, 3), dtype, scale=0.045, zero_point=zo)
    b.op(op, [x], [y], padding="SAME", stride_w=2, stride_h=2, filter_width=3, filter_height=3,
         fused_activation_function=act)
    b.output(y)
    _check(b, _data(rng, (1, 6, 6, 3), dtype, "narrow"))
    _check(b, _data(rng, (1, 6, 6, 3), dtype))


# --------------------------------------------------------------------------------------------
# MEAN
# --------------------------------------------------------------------------------------------

MEAN_AXES = [
    ((1, 4, 4, 8), [1, 2]),
    ((2, 5, 3, 7), [1, 2]),
    ((1, 7, 7, 16), [2, 1]),
    ((1, 6, 6, 3), [-3, -2]),
    ((2, 3, 4, 5), [3]),
    ((2, 3, 4, 5), [0]),
    ((2, 3, 4, 5), [1, 3]),
    ((1, 4, 4, 8), [1, 2, 1]),       # duplicate axis
    ((2, 3, 4), [0, 1, 2]),          # everything
    ((1, 1, 1, 8), [1, 2]),          # count 1
    ((3, 10), [-1]),
    ((1, 40, 40, 2), [1, 2]),        # count 1600
    ((5,), [0]),
]

# (input scale, input zp, output scale, output zp): same, ratio > 1, ratio < 1, zp changes
MEAN_QUANT_I8 = [
    (0.05, -3, 0.05, -3),
    (0.05, 10, 0.02, -5),
    (0.02, -128, 0.07, 127),
    (0.1, 127, 0.1, -128),
    (0.003, 0, 0.0031, 0),
]
MEAN_QUANT_I16 = [
    (0.001, 0, 0.001, 0),
    (0.001, 0, 0.0003, 0),
    (0.0002, 0, 0.0011, 0),
]


@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("case", range(len(MEAN_AXES)))
@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean(dtype, case, keep_dims):
    shape, axes = MEAN_AXES[case]
    quants = MEAN_QUANT_I8 if dtype == I8 else MEAN_QUANT_I16
    rng = np.random.default_rng(200 + case)
    rank = len(shape)
    red = {a + rank if a < 0 else a for a in axes}
    out_shape = tuple((1 if d in red else shape[d]) for d in range(rank) if keep_dims or
                      d not in red)
    for k, (si, zi, so, zo) in enumerate(quants):
        if (k + case) % 2 and k:  # a rotating half of the quantizations per shape (runtime)
            continue
        b = GraphBuilder("mean")
        x = b.input("x", shape, dtype, scale=si, zero_point=zi)
        ax = b.const("axes", np.array(axes, np.int32))
        y = b.activation("y", out_shape, dtype, scale=so, zero_point=zo)
        b.op("MEAN", [x, ax], [y], keep_dims=keep_dims)
        b.output(y)
        _check(b, _data(rng, shape, dtype))
        _check(b, _data(rng, shape, dtype, "extreme"))


@pytest.mark.parametrize("dtype", [I8, I16])
def test_mean_middle_axes_kernel_equals_the_rows_kernel(dtype):
    """MEAN over a block of consecutive axes runs in place on [outer, R, inner] (int32 lanes);
    the transposing row kernel is the plain form. Random shapes, extreme inputs, zero points
    and multipliers of both signs of shift, both roundings."""
    from hwsim.kernels import elementwise as ew
    rng = np.random.default_rng(21)
    info = np.iinfo(dtype)
    for k in range(60):
        outer, r, inner = (int(v) for v in rng.integers(1, 40, 3))
        x = _data(rng, (outer, r, inner), dtype, "extreme" if k % 3 == 0 else "random")
        zp = 0 if dtype == I16 else int(rng.integers(-128, 128))
        args = (np.int64(r), np.int64(zp), np.int64(rng.integers(1 << 30, 1 << 31)),
                np.int64(rng.integers(-12, 3)), np.int64(0 if dtype == I16 else
                                                         rng.integers(-128, 128)),
                np.int64(info.min), np.int64(info.max), bool(k % 2))
        got = np.empty((outer, inner), dtype)
        ew._mean_mid(x, np.empty(inner, np.int32), *args, got)
        rows = np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(outer * inner, r)
        want = np.empty(outer * inner, dtype)
        ew._mean_rows(rows, *args, want)
        assert np.array_equal(got.reshape(-1), want)


def test_mean_same_quantization_is_not_the_rounded_average():
    """With equal input/output scale and zero point, BUILTIN_REF still folds 1/n into the
    multiplier (QuantizedMeanOrSum), which is not the rounded integer average everywhere
    (older TensorFlow's reduce.cc had a separate integer-average path for this case)."""
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(1, 7, 7, 64)).astype(I8)
    b = GraphBuilder("mean_same")
    xi = b.input("x", x.shape, I8, scale=0.05, zero_point=-3)
    ax = b.const("axes", np.array([1, 2], np.int32))
    y = b.activation("y", (1, 1, 1, 64), I8, scale=0.05, zero_point=-3)
    b.op("MEAN", [xi, ax], [y], keep_dims=True)
    b.output(y)
    ref = assert_same_as_tflite(b.tflite(), [x])[0].ravel().astype(np.int64)
    s = x.reshape(49, 64).astype(np.int64).sum(0)
    rounded = np.where(s > 0, (s + 24) // 49, -((24 - s) // 49))
    assert np.count_nonzero(rounded != ref) > 0


# --------------------------------------------------------------------------------------------
# ADD / SUB
# --------------------------------------------------------------------------------------------

BROADCAST = [
    ((1, 4, 4, 8), (1, 4, 4, 8)),
    ((1, 4, 4, 8), (1, 1, 1, 8)),
    ((1, 4, 4, 8), (1, 4, 1, 1)),
    ((1, 1, 1, 8), (1, 4, 4, 8)),          # first input broadcasts
    ((1, 5, 7, 3), ()),                    # scalar
    ((), (2, 3)),
    ((3,), (2, 5, 3)),                     # rank mismatch
    ((2, 1, 3, 1, 5), (1, 4, 1, 6, 1)),    # 5-D, both broadcast
    ((2, 1, 2, 1, 2, 3), (1, 2, 1, 2, 1, 3)),  # 6-D
    ((1, 3, 1, 7), (2, 1, 5, 1)),
]

# (s1, zp1, s2, zp2, s_out, zp_out) int8
ADD_QUANT_I8 = [
    (0.05, -3, 0.05, -3, 0.1, 0),
    (0.02, 10, 0.07, -5, 0.05, 2),
    (0.1, -128, 0.01, 127, 0.03, -128),
    (0.004, 127, 0.03, 0, 0.5, 127),       # output scale much larger
    (0.5, 0, 0.5, 0, 0.004, -17),          # output scale much smaller (saturates)
]
# int16 general path (pot_scale_int16 false, or non-power-of-two scales)
ADD_QUANT_I16 = [
    (0.001, 0, 0.001, 0, 0.002, 0),
    (0.0003, 0, 0.0011, 0, 0.0007, 0),
    (1 / 32768, 0, 3 / 32768, 0, 1 / 16384, 0),
    (2 ** -10, 0, 2 ** -12, 0, 2 ** -10, 0),  # powers of two, but pot_scale_int16 false
]


def _binary_model(op, shape_a, shape_b, dtype, qa, qb, qo, act="NONE", const_b=None, **extra):
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    b = GraphBuilder(op.lower())
    xa = b.input("a", shape_a, dtype, scale=qa[0], zero_point=qa[1])
    if const_b is None:
        xb = b.input("b", shape_b, dtype, scale=qb[0], zero_point=qb[1])
    else:
        xb = b.const("b", const_b, scales=[qb[0]], zero_points=[qb[1]])
    y = b.activation("y", out_shape, dtype, scale=qo[0], zero_point=qo[1])
    b.op(op, [xa, xb], [y], fused_activation_function=act, **extra)
    b.output(y)
    return b


@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("bc", range(len(BROADCAST)))
def test_add_sub(op, dtype, bc):
    shape_a, shape_b = BROADCAST[bc]
    rng = np.random.default_rng(300 + bc)
    quants = ADD_QUANT_I8 if dtype == I8 else ADD_QUANT_I16
    for k, q in enumerate(quants):
        act = ACTS[(k + bc) % 4]
        extra = {"pot_scale_int16": False} if dtype == I16 else {}
        b = _binary_model(op, shape_a, shape_b, dtype, q[0:2], q[2:4], q[4:6], act, **extra)
        mode = ["random", "extreme", "narrow"][(k + bc) % 3]
        _check(b, [_data(rng, shape_a, dtype, mode), _data(rng, shape_b, dtype, mode)])


def _all_pairs(dtype, n=None, seed=0):
    """Every int8 pair (65536 elements), or n random int16 pairs incl. the extremes."""
    if dtype == I8:
        v = np.arange(-128, 128)
        return (np.repeat(v, 256).astype(I8).reshape(1, -1),
                np.tile(v, 256).astype(I8).reshape(1, -1))
    rng = np.random.default_rng(seed)
    a, b = _data(rng, (1, n), I16), _data(rng, (1, n), I16)
    a[0, :4], b[0, :4] = [-32768, 32767, -32768, 32767], [-32768, -32768, 32767, 32767]
    return a, b


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("q", range(4))
def test_binary_exhaustive_pairs(op, dtype, q):
    """Every int8 input pair (many int16 pairs): sensitive to each bit of the rescaling."""
    if dtype == I8:
        qa, qb, qo = [((0.0173, -3), (0.0411, 17), (0.0379, 5)),
                      ((0.0921, 0), (0.0093, -128), (0.1013, 127)),
                      ((0.02, 1), (0.02, 1), (0.0333, -2)),
                      ((0.0057, 100), (0.0171, -90), (0.0031, 0))][q]
    else:
        qa, qb, qo = [((0.000173, 0), (0.000411, 0), (0.000379, 0)),
                      ((0.000921, 0), (0.000093, 0), (0.001013, 0)),
                      ((0.0002, 0), (0.0002, 0), (0.000333, 0)),
                      ((0.000057, 0), (0.000171, 0), (0.000031, 0))][q]
    if op == "MUL":
        qo = (qo[0] * [0.5, 0.02, 0.01, 0.3][q], qo[1])
    a, b = _all_pairs(dtype, 65536, seed=q)
    extra = {"pot_scale_int16": False} if dtype == I16 and op != "MUL" else {}
    _check(_binary_model(op, a.shape, b.shape, dtype, qa, qb, qo, **extra), [a, b])


@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("act", ACTS)
def test_add_sub_int16_default_options_non_pot_scales(op, act):
    """pot_scale_int16 left at its schema default (true) but scales not powers of two."""
    rng = np.random.default_rng(11)
    b = _binary_model(op, (1, 5, 5, 4), (1, 1, 1, 4), I16, (0.0003, 0), (0.0011, 0),
                      (0.0007, 0), act)
    _check(b, [_data(rng, (1, 5, 5, 4), I16), _data(rng, (1, 1, 1, 4), I16)])


# (log2 s1, log2 s2, log2 s_out): TFLite needs s_i <= s_out for both and one equal. A right
# shift above 15 bits (last entry) is refused by hwsim (gemmlowp's int16 RoundingDivideByPOT
# is not a rounding division there).
POT_SCALES = [(-10, -10, -10), (-12, -10, -10), (-10, -15, -10), (-8, -8, -8), (-20, -5, -5),
              (-21, -5, -5)]


@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("pot", range(len(POT_SCALES)))
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU_N1_TO_1"])
def test_add_sub_int16_power_of_two(op, pot, act):
    l1, l2, lo = POT_SCALES[pot]
    rng = np.random.default_rng(400 + pot)
    shapes = [((1, 6, 6, 4), (1, 6, 6, 4))]
    if op == "SUB":  # SUB's power-of-two kernel broadcasts, ADD's does not
        shapes.append(((1, 6, 6, 4), (1, 1, 6, 1)))
    for sa, sb in shapes:
        b = _binary_model(op, sa, sb, I16, (2.0 ** l1, 0), (2.0 ** l2, 0), (2.0 ** lo, 0), act,
                          pot_scale_int16=True)
        if lo - min(l1, l2) > 15:
            with pytest.raises(ModelError, match="power-of-two"):
                hwsim_run(b.tflite(), [_data(rng, sa, I16), _data(rng, sb, I16)])
            continue
        for mode in ("random", "extreme"):
            _check(b, [_data(rng, sa, I16, mode), _data(rng, sb, I16, mode)])


def test_reject_add_int16_power_of_two_input_scale_above_output():
    """add.cc's power-of-two path needs s_in <= s_out (TF_LITE_ENSURE); both refuse."""
    b = _binary_model("ADD", (1, 4), (1, 4), I16, (2.0 ** -8, 0), (2.0 ** -10, 0),
                      (2.0 ** -10, 0), pot_scale_int16=True)
    feeds = [np.zeros((1, 4), I16)] * 2
    assert _tflite_fails(b.tflite(), feeds)
    with pytest.raises(ModelError, match="power-of-two"):
        hwsim_run(b.tflite(), feeds)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("dtype", [I8, I16])
def test_binary_constant_operand(op, dtype):
    rng = np.random.default_rng(500)
    zp = (5, -9, 3) if dtype == I8 else (0, 0, 0)
    const = _data(rng, (1, 1, 1, 6), dtype)
    extra = {"pot_scale_int16": False} if dtype == I16 and op != "MUL" else {}
    b = _binary_model(op, (1, 3, 5, 6), (1, 1, 1, 6), dtype, (0.03, zp[0]), (0.02, zp[1]),
                      (0.04, zp[2]), "RELU", const_b=const, **extra)
    _check(b, [_data(rng, (1, 3, 5, 6), dtype)])


# --------------------------------------------------------------------------------------------
# MUL
# --------------------------------------------------------------------------------------------

MUL_QUANT_I8 = [
    (0.05, -3, 0.05, -3, 0.1, 0),
    (0.02, 10, 0.07, -5, 0.0005, 2),       # multiplier > 1
    (0.1, -128, 0.01, 127, 0.03, -128),
    (0.004, 127, 0.03, 0, 0.5, 127),       # tiny multiplier
    (0.5, 0, 0.5, 0, 0.004, -17),          # multiplier 62.5
]
MUL_QUANT_I16 = [
    (0.001, 0, 0.001, 0, 0.002, 0),
    (0.0003, 0, 0.0011, 0, 1e-7, 0),
    (1 / 32768, 0, 3 / 32768, 0, 1 / 16384, 0),
]


@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("bc", range(len(BROADCAST)))
def test_mul(dtype, bc):
    shape_a, shape_b = BROADCAST[bc]
    rng = np.random.default_rng(600 + bc)
    quants = MUL_QUANT_I8 if dtype == I8 else MUL_QUANT_I16
    for k, q in enumerate(quants):
        act = ACTS[(k + bc) % 4]
        b = _binary_model("MUL", shape_a, shape_b, dtype, q[0:2], q[2:4], q[4:6], act)
        mode = ["random", "extreme", "narrow"][(k + bc) % 3]
        _check(b, [_data(rng, shape_a, dtype, mode), _data(rng, shape_b, dtype, mode)])


def test_mul_rescale_is_computed_in_float32():
    """mul.cc evaluates s1 * s2 / s_out in float before QuantizeMultiplier; with these scales
    the double-precision multiplier would differ from TFLite in 8 of the 65536 outputs."""
    s1, s2, so = 0.010079759173095226, 0.021789604797959328, 0.001983538717031479
    a = np.repeat(np.arange(-128, 128), 256).astype(I8).reshape(1, 65536)
    c = np.tile(np.arange(-128, 128), 256).astype(I8).reshape(1, 65536)
    b = _binary_model("MUL", (1, 65536), (1, 65536), I8, (s1, 0), (s2, 0), (so, 0))
    _check(b, [a, c])


# --------------------------------------------------------------------------------------------
# CONCATENATION
# --------------------------------------------------------------------------------------------

CONCAT = [
    ([(1, 4, 4, 3), (1, 4, 4, 5)], 3),
    ([(1, 4, 4, 3), (1, 4, 4, 5), (1, 4, 4, 1)], -1),
    ([(1, 2, 5, 3), (1, 7, 5, 3)], 1),
    ([(1, 3, 2, 3), (1, 3, 1, 3), (1, 3, 4, 3)], -2),
    ([(2, 3, 3, 2), (1, 3, 3, 2)], 0),
    ([(2, 3, 3, 2), (2, 1, 3, 2)], -3),
    ([(3, 7), (3, 1), (3, 2)], 1),
    ([(5,), (3,)], 0),
    ([(2, 3, 4), (2, 3, 4), (2, 3, 4), (2, 3, 4)], 2),
]


@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("case", range(len(CONCAT)))
@pytest.mark.parametrize("with_const", [False, True])
def test_concatenation(dtype, case, with_const):
    shapes, axis = CONCAT[case]
    rng = np.random.default_rng(700 + case)
    rank = len(shapes[0])
    ax = axis + rank if axis < 0 else axis
    out_shape = list(shapes[0])
    out_shape[ax] = sum(s[ax] for s in shapes)
    b = GraphBuilder("concat")
    ins, feeds = [], []
    for k, s in enumerate(shapes):
        if dtype == I8:
            q = (0.04, -7)
        else:  # int16: scales may differ, TFLite copies the integers unchanged
            q = ([0.001, 0.0005, 0.004, 0.001][k], 0)
        if with_const and k == 1:
            ins.append(b.const(f"c{k}", _data(rng, s, dtype), scales=[q[0]],
                               zero_points=[q[1]]))
        else:
            ins.append(b.input(f"x{k}", s, dtype, scale=q[0], zero_point=q[1]))
            feeds.append(_data(rng, s, dtype, "extreme" if k == 2 else "random"))
    y = b.activation("y", out_shape, dtype, scale=0.04 if dtype == I8 else 0.002,
                     zero_point=-7 if dtype == I8 else 0)
    b.op("CONCATENATION", ins, [y], axis=axis, fused_activation_function="NONE")
    b.output(y)
    _check(b, feeds)


# --------------------------------------------------------------------------------------------
# What TFLite refuses, hwsim refuses too (with a message naming the op)
# --------------------------------------------------------------------------------------------

def _tflite_fails(model: bytes, inputs) -> bool:
    try:
        tflite_ref(model, inputs)
    except Exception:  # noqa: BLE001 - any failure of Prepare/Invoke
        return True
    return False


def test_reject_int8_concat_with_different_quant():
    b = GraphBuilder("concat_bad")
    x0 = b.input("x0", (1, 2, 2, 3), I8, scale=0.04, zero_point=0)
    x1 = b.input("x1", (1, 2, 2, 3), I8, scale=0.05, zero_point=0)
    y = b.activation("y", (1, 2, 2, 6), I8, scale=0.04, zero_point=0)
    b.op("CONCATENATION", [x0, x1], [y], axis=3, fused_activation_function="NONE")
    b.output(y)
    feeds = [np.zeros((1, 2, 2, 3), I8)] * 2
    assert _tflite_fails(b.tflite(), feeds)
    with pytest.raises(ModelError, match="CONCATENATION.*requantize"):
        hwsim_run(b.tflite(), feeds)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL", "MEAN"])
def test_reject_int16_nonzero_zero_point(op):
    b = GraphBuilder("zp16")
    x = b.input("x", (1, 2, 2, 3), I16, scale=0.001, zero_point=4)
    if op == "MEAN":
        ax = b.const("axes", np.array([1, 2], np.int32))
        y = b.activation("y", (1, 1, 1, 3), I16, scale=0.001, zero_point=0)
        b.op("MEAN", [x, ax], [y], keep_dims=True)
        feeds = [np.zeros((1, 2, 2, 3), I16)]
    else:
        x2 = b.input("x2", (1, 2, 2, 3), I16, scale=0.001, zero_point=0)
        y = b.activation("y", (1, 2, 2, 3), I16, scale=0.002, zero_point=0)
        b.op(op, [x, x2], [y], fused_activation_function="NONE")
        feeds = [np.zeros((1, 2, 2, 3), I16)] * 2
    b.output(y)
    assert _tflite_fails(b.tflite(), feeds)
    with pytest.raises(ModelError, match="zero points 0"):
        hwsim_run(b.tflite(), feeds)


def test_reject_add_output_rescale_not_below_one():
    """2 max(s_in) / (2^20 s_out) >= 1: TFLite's QuantizeMultiplierSmallerThanOneExp aborts."""
    b = _binary_model("ADD", (1, 4), (1, 4), I8, (1.0, 0), (1.0, 0), (1e-6, 0))
    with pytest.raises(ModelError, match="not in \\(0, 1\\)"):
        hwsim_run(b.tflite(), [np.zeros((1, 4), I8)] * 2)


# --------------------------------------------------------------------------------------------
# Corpus: this family's layers on real models, fed from expected.h5 (other families not needed)
# --------------------------------------------------------------------------------------------

CORPUS = Path(os.environ.get("HWSIM_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
FAMILY = {"MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "ADD", "SUB", "MUL", "CONCATENATION"}


def _corpus_models():
    if not CORPUS.is_dir():
        return []
    return sorted(str(p.parent.relative_to(CORPUS)) for p in CORPUS.glob("*/*/expected.h5"))


@pytest.mark.skipif(not _corpus_models(), reason=f"corpus not found at {CORPUS} (set "
                                                 f"HWSIM_CORPUS); corpus layer checks not run")
@pytest.mark.parametrize("path", _corpus_models() or ["<none>"])
def test_corpus_layers_of_this_family(path):
    """CORPUS CHECK: each MAX_POOL/AVG_POOL/MEAN/ADD/SUB/MUL/CONCATENATION layer of a corpus
    model, lowered alone and fed its input tensors from expected.h5, reproduces the expected
    output tensor of every case that stores intermediates."""
    h5py = pytest.importorskip("h5py")
    import hwsim
    from hwsim import registry
    from hwsim.lower import LoweringContext
    import hwsim.kernels.ops  # noqa: F401  (registers the kernels; hwsim.lower the lowerings)

    d = CORPUS / path
    graph = hwsim.load_graph(d / "model.tflite")
    ops = [op for op in graph.ops if op.type in FAMILY]
    if not ops:
        pytest.skip(f"{path}: no op of this family")
    ctx = LoweringContext(graph)
    checked = 0
    with h5py.File(d / "expected.h5", "r") as h:
        if h.attrs["oracle"] == "none":
            pytest.skip(f"{path}: no oracle")
        groups = [""] + [f"cases/{c}/" for c in range(1, int(h.attrs["num_cases"]))]
        for op in ops:
            layer = registry.LOWERINGS[op.type](op, ctx)
            for g in groups:
                names = [f"{g}tensors/{i}" for i in layer.inputs + layer.outputs]
                if not all(n in h for n in names):
                    continue
                ins = [h[f"{g}tensors/{i}"][()] for i in layer.inputs]
                outs, _ = registry.KERNELS[layer.kernel](layer, ins)
                for t, got in zip(layer.outputs, outs):
                    exp = h[f"{g}tensors/{t}"][()]
                    assert got.dtype == exp.dtype and got.shape == exp.shape, (op.type, t)
                    if not np.array_equal(got, exp):
                        bad = np.argwhere(got != exp)
                        i = tuple(bad[0])
                        raise AssertionError(
                            f"{path} {g or 'case 0 '}op {op.index} {op.type}: {len(bad)} of "
                            f"{exp.size} differ; first at {i}: hwsim {got[i]} vs REF {exp[i]}")
                checked += 1
    assert checked > 0
