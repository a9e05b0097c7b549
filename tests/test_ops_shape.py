"""Data movement, resizing and (de)quantization ops equal TFLite's reference kernels exactly.

PAD, PADV2, RESHAPE, SQUEEZE, TRANSPOSE, STRIDED_SLICE, RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR,
QUANTIZE and DEQUANTIZE: single-op models built with GraphBuilder, run by TFLite (BUILTIN_REF)
and hwsim, compared for equality (DEQUANTIZE: equal float32 bit patterns). A last test feeds
every op of this family in the corpus models its expected input tensor and compares the output
with the expected tensor.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from hwsim.frontends.builder import GraphBuilder
from tests.oracle import assert_same_as_tflite, hwsim_run

RNG_SEED = 1234
QR = {np.int8: (-128, 127), np.uint8: (0, 255), np.int16: (-32768, 32767),
      np.int32: (-2**31, 2**31 - 1)}


def rand_ints(shape, dtype, rng, extremes=True):
    lo, hi = QR[dtype]
    if dtype == np.int32:
        lo, hi = -2**20, 2**20
    x = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    if extremes and x.size >= 4:  # make sure the range ends are present
        flat = x.reshape(-1)
        flat[0], flat[-1] = lo, hi
    return x


def single_op(op_type, x_shape, x_dtype, y_shape, y_dtype, consts=(), x_q=(0.05, 0),
              y_q=None, version=1, **attrs):
    """One-op model: input x, constant extra inputs, output y. Returns model bytes."""
    b = GraphBuilder(op_type.lower())
    xs, xz = x_q if x_q is not None else (None, None)
    x = b.input("x", x_shape, x_dtype, scale=xs, zero_point=xz)
    ins = [x]
    for k, c in enumerate(consts):
        if c is None:
            ins.append(-1)
        elif isinstance(c, dict):
            ins.append(b.const(f"c{k}", c["data"], scales=c.get("scale"),
                               zero_points=c.get("zero_point")))
        else:
            ins.append(b.const(f"c{k}", c))
    y_q = x_q if y_q is None else y_q
    ys, yz = y_q if y_q is not None and y_q != "none" else (None, None)
    y = b.activation("y", y_shape, y_dtype, scale=ys, zero_point=yz)
    b.op(op_type, ins, [y], version=version, **attrs)
    b.output(y)
    return b.tflite()


# -- PAD / PADV2 ---------------------------------------------------------------------------------

PAD_CASES = [
    ((1, 5, 7, 3), [[0, 0], [1, 1], [2, 1], [0, 0]]),   # image style
    ((2, 4, 3, 5), [[1, 0], [0, 2], [3, 0], [1, 2]]),   # every axis
    ((7,), [[3, 2]]),
    ((3, 4), [[0, 0], [0, 0]]),
    ((2, 3, 4), [[1, 2], [0, 1], [2, 0]]),
    ((1, 2, 3, 2, 3), [[0, 1], [1, 0], [1, 1], [0, 2], [2, 1]]),   # 5-D (TFLite's maximum)
]


@pytest.mark.parametrize("shape,pads", PAD_CASES)
@pytest.mark.parametrize("dtype,zp", [(np.int8, 0), (np.int8, -128), (np.int8, 127),
                                      (np.int8, -7), (np.int16, 0), (np.int16, -32768),
                                      (np.uint8, 200)])
def test_pad(shape, pads, dtype, zp):
    rng = np.random.default_rng(RNG_SEED)
    pads = np.array(pads, np.int32)
    out = tuple(int(d + a + b) for d, (a, b) in zip(shape, pads))
    model = single_op("PAD", shape, dtype, out, dtype, [pads], x_q=(0.1, zp), y_q=(0.1, zp))
    assert_same_as_tflite(model, [rand_ints(shape, dtype, rng)])


@pytest.mark.parametrize("pad_dtype", [np.int64, np.int8, np.int16])
def test_pad_paddings_dtypes(pad_dtype):
    shape, pads = (1, 3, 3, 2), np.array([[0, 0], [1, 2], [2, 0], [0, 1]], pad_dtype)
    out = (1, 6, 5, 3)
    model = single_op("PAD", shape, np.int8, out, np.int8, [pads], x_q=(0.1, 9))
    assert_same_as_tflite(model, [rand_ints(shape, np.int8, np.random.default_rng(1))])


def test_pad_quant_differs_and_unquantized():
    rng = np.random.default_rng(2)
    shape, pads = (1, 3, 4, 2), np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)
    out = (1, 5, 6, 2)
    # Output quantization differs from the input's: integers are copied, padding = output zp.
    model = single_op("PAD", shape, np.int8, out, np.int8, [pads], x_q=(0.1, 5), y_q=(0.37, -20))
    assert_same_as_tflite(model, [rand_ints(shape, np.int8, rng)])
    # Unquantized int8 / int16 / int32: padded with 0.
    for dt in (np.int8, np.int16, np.int32):
        model = single_op("PAD", shape, dt, out, dt, [pads], x_q=None)
        assert_same_as_tflite(model, [rand_ints(shape, dt, rng)])


@pytest.mark.parametrize("dtype,zp,value", [(np.int8, 3, -128), (np.int8, -128, 127),
                                            (np.int8, 0, 17), (np.int16, 0, -32768),
                                            (np.int16, 0, 1234), (np.uint8, 128, 7)])
def test_padv2(dtype, zp, value):
    rng = np.random.default_rng(3)
    shape, pads = (2, 3, 5, 3), np.array([[0, 1], [2, 0], [1, 1], [0, 2]], np.int32)
    out = (3, 5, 7, 5)
    const = {"data": np.array(value, dtype), "scale": 0.25, "zero_point": zp}
    model = single_op("PADV2", shape, dtype, out, dtype, [pads, const], x_q=(0.25, zp))
    assert_same_as_tflite(model, [rand_ints(shape, dtype, rng)])


def test_padv2_constant_quant_mismatch_is_an_error():
    from hwsim import ModelError
    shape, pads = (1, 2, 2, 1), np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32)
    const = {"data": np.array(4, np.int8), "scale": 0.5, "zero_point": 0}
    model = single_op("PADV2", shape, np.int8, (1, 4, 4, 1), np.int8, [pads, const],
                      x_q=(0.25, 0))
    with pytest.raises(ModelError, match="constant value is quantized"):
        hwsim_run(model, [np.zeros(shape, np.int8)])


# -- RESHAPE / SQUEEZE ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape,new,out", [
    ((1, 4, 6, 3), [1, -1], (1, 72)),
    ((1, 4, 6, 3), [-1, 3], (24, 3)),
    ((2, 3, 5), [5, 3, 2], (5, 3, 2)),
    ((1, 1, 1, 7), [7], (7,)),
    ((1, 35), [1, 5, 7, 1], (1, 5, 7, 1)),
    ((3, 1, 4), [2, 2, -1, 1, 1], (2, 2, 3, 1, 1)),
])
@pytest.mark.parametrize("source", ["tensor", "options", "both"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_reshape(shape, new, out, source, dtype):
    rng = np.random.default_rng(4)
    consts = [] if source == "options" else [np.array(new, np.int32)]
    attrs = {} if source == "tensor" else {"new_shape": new}
    if source == "both":  # the shape tensor wins; the options hold a stale value
        attrs = {"new_shape": [int(np.prod(shape))]}
    model = single_op("RESHAPE", shape, dtype, out, dtype, consts, x_q=(0.2, -3),
                      y_q=(0.7, 11), **attrs)
    assert_same_as_tflite(model, [rand_ints(shape, dtype, rng)])


@pytest.mark.parametrize("shape,dims,out", [
    ((1, 1, 1, 9), [], (9,)),
    ((1, 5, 1, 3), [2], (1, 5, 3)),
    ((1, 5, 1, 3), [-2, 0], (5, 3)),
    ((4, 1), [-1], (4,)),
    ((1, 1, 2, 1, 3, 1), [], (2, 3)),
])
def test_squeeze(shape, dims, out):
    rng = np.random.default_rng(5)
    model = single_op("SQUEEZE", shape, np.int8, out, np.int8, [], squeeze_dims=dims)
    assert_same_as_tflite(model, [rand_ints(shape, np.int8, rng)])


# -- TRANSPOSE -----------------------------------------------------------------------------------

def _transpose_cases():
    cases = [((5,), (0,)), ((3, 7), (1, 0)), ((3, 7), (-1, 0))]
    cases += [((2, 3, 5), p) for p in itertools.permutations(range(3))]
    cases += [((2, 3, 1, 5), p) for p in itertools.permutations(range(4))]
    rng = np.random.default_rng(6)
    for nd in (5, 6):
        shape = tuple(int(v) for v in rng.integers(1, 5, nd))
        for _ in range(4):
            cases.append((shape, tuple(int(v) for v in rng.permutation(nd))))
    cases.append(((1, 3, 2, 4), (0, -2, -1, 1)))  # negative entries count from the end
    # image layouts (the 3-channel (de)interleaving kernel): NCHW -> NHWC and back, batched
    cases += [((1, 3, 7, 5), (0, 2, 3, 1)), ((1, 6, 5, 3), (0, 3, 1, 2)),
              ((2, 3, 4, 4), (0, 2, 3, 1)), ((2, 4, 4, 3), (0, 3, 1, 2)),
              # 64 pixels and more: shape._planes3's 64-pixel interleave (VBMI CPUs) and its tail
              ((1, 3, 9, 10), (0, 2, 3, 1)), ((2, 3, 16, 8), (0, 2, 3, 1)), ((1, 3, 8, 8), (0, 2, 3, 1))]
    return cases


@pytest.mark.parametrize("shape,perm", _transpose_cases())
def test_transpose(shape, perm):
    rng = np.random.default_rng(7)
    nd = len(shape)
    out = tuple(shape[p % nd] for p in perm)
    for dtype in (np.int8, np.int16):
        model = single_op("TRANSPOSE", shape, dtype, out, dtype, [np.array(perm, np.int32)])
        assert_same_as_tflite(model, [rand_ints(shape, dtype, rng)])


def test_transpose_kernel_equals_numpy_on_random_shapes():
    """The kernel itself (plain call and the engine's bound call) against np.transpose on
    random ranks, shapes (size-1 axes included) and permutations; a share of them must take
    the 3-channel swap, so that path cannot go untested."""
    from types import SimpleNamespace

    from hwsim.kernels import shape as kshape
    rng = np.random.default_rng(11)
    swapped = 0
    for nd in (1, 2, 3, 4, 5):
        for _ in range(40):
            shape = tuple(int(v) for v in rng.choice([1, 2, 3, 4, 5], nd))
            perm = tuple(int(v) for v in rng.permutation(nd))
            x = rand_ints(shape, np.int8, rng)
            layer = SimpleNamespace(params=SimpleNamespace(const_input=None,
                                                           perm=np.array(perm)))
            want = np.transpose(x, perm)
            assert np.array_equal(kshape.run_transpose(layer, [x])[0][0], want), (shape, perm)
            out = np.empty(want.shape, np.int8)
            info = SimpleNamespace(shape=shape, dtype=np.int8)
            kshape.bind_transpose(layer, None, [info], [out])([x])
            assert np.array_equal(out, want), (shape, perm)
            sw = kshape._as_swap(shape, perm)
            swapped += sw is not None and 3 in sw[1:]
    assert swapped >= 10


@pytest.mark.skipif(not __import__("hwsim.kernels.mac_intrinsics", fromlist=["x"]).HOST_HAS_VBMI,
                    reason="this CPU has no AVX512-VBMI: shape._planes3 cannot run here")
@pytest.mark.parametrize("N,K", [(1, 224 * 224), (2, 130), (1, 64), (1, 63), (3, 1), (2, 128)])
def test_planes3_equals_numpy(N, K):
    """The three-plane interleave 64 pixels at a time (and the K % 64 left) against numpy."""
    from hwsim.kernels import shape as kshape
    x = rand_ints((N, 3, K), np.int8, np.random.default_rng(K))
    out = np.empty((N, K, 3), np.int8)
    kshape._planes3(x, out)
    assert np.array_equal(out, x.transpose(0, 2, 1))


def test_pad_kernel_equals_numpy_on_random_pads():
    """4-D PADs of H and W only take the one-pass kernel: against np.pad on random shapes and
    amounts (zero pads, pads wider than the image), and the other PADs through numpy."""
    from types import SimpleNamespace

    from hwsim.kernels import shape as kshape
    rng = np.random.default_rng(12)
    for k in range(120):
        shape = tuple(int(v) for v in rng.integers(1, 6, 4))
        pads = rng.integers(0, 7, (4, 2))
        if k % 3:
            pads[0] = pads[3] = 0      # the kernel's case (2 of 3)
        for dtype, value in ((np.int8, int(rng.integers(-128, 128))), (np.int16, -32768)):
            x = rand_ints(shape, dtype, rng)
            layer = SimpleNamespace(params=SimpleNamespace(
                const_input=None, before=pads[:, 0], after=pads[:, 1], value=value))
            want = np.pad(x, pads, constant_values=value)
            assert np.array_equal(kshape.run_pad(layer, [x])[0][0], want), (shape, pads)
            out = np.empty(want.shape, dtype)
            info = SimpleNamespace(shape=shape, dtype=dtype)
            kshape.bind_pad(layer, None, [info], [out])([x])
            assert np.array_equal(out, want), (shape, pads)


# -- STRIDED_SLICE -------------------------------------------------------------------------------

def _ss_out_shape(shape, begin, end, strides, **masks):
    from hwsim.lower.shape import strided_slice_plan
    full = dict(begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0,
                offset=False)
    full.update(masks)
    return strided_slice_plan(shape, begin, end, strides, error=ValueError, **full)[2]


def _ss_model(shape, dtype, begin, end, strides, **masks):
    out = _ss_out_shape(shape, begin, end, strides, **masks)
    consts = [np.array(begin, np.int32), np.array(end, np.int32), np.array(strides, np.int32)]
    attrs = {k: int(v) for k, v in masks.items() if k != "offset"}
    if masks.get("offset"):
        attrs["offset"] = True
    return single_op("STRIDED_SLICE", shape, dtype, out, dtype, consts, x_q=(0.3, 1), **attrs)


SS_CASES = [  # (shape, begin, end, strides, masks)
    ((9,), [1], [8], [2], {}),
    ((9,), [-2], [-9], [-3], {}),                                # negative stride and indices
    ((9,), [8], [0], [-1], {"end_mask": 1}),                     # reverse all
    ((9,), [100], [-100], [-2], {}),                             # clamped out-of-range
    ((1, 7, 6, 3), [0, 1, 0, 0], [1, 6, 6, 3], [1, 2, 3, 1], {}),
    ((1, 7, 6, 3), [0, 5, 4, 2], [1, 0, 0, 0], [1, -2, -1, -1], {"begin_mask": 1, "end_mask": 8}),
    ((2, 5, 4), [1, 0, 0], [2, 5, 4], [1, 1, 1], {"shrink_axis_mask": 1}),
    ((2, 5, 4), [0, -1, 1], [0, 0, 3], [1, 1, 1], {"shrink_axis_mask": 2, "begin_mask": 1,
                                                    "end_mask": 1}),
    ((2, 5, 4), [1, 3, 2], [0, 0, 0], [1, 1, 1], {"shrink_axis_mask": 7}),
    ((3, 5, 4), [1], [3], [1], {}),                              # fewer indices than dims
    ((3, 5, 4), [0, 1], [0, 4], [1, 2], {"ellipsis_mask": 1}),   # [..., 1:4:2]
    ((3, 5, 4, 2), [1, 0, 1], [2, 0, 0], [1, 1, 1], {"ellipsis_mask": 2, "end_mask": 4}),
    ((3, 5, 4), [0, 0, 0, 1], [0, 3, 0, 4], [1, 1, 1, 2], {"new_axis_mask": 1, "begin_mask": 4,
                                                            "end_mask": 4}),
    ((3, 5), [0, 1, 0], [0, 4, 0], [1, 1, 1], {"new_axis_mask": 5}),
    ((3, 5, 4), [0, 2], [0, 3], [1, 1], {"new_axis_mask": 1, "shrink_axis_mask": 2}),
    ((3, 5, 4), [0, 0, 0], [0, 0, 0], [1, 1, 1], {"ellipsis_mask": 1, "new_axis_mask": 3}),
    ((4, 6), [1, 2], [2, 3], [1, 1], {"offset": True}),           # end = begin + size
    ((4, 6), [-3, 0], [2, 4], [1, 2], {"offset": True}),
    ((2, 3, 2, 4, 3), [1, 0, 1, 3, 2], [2, 3, 2, 0, 0], [1, 2, 1, -1, -2], {}),
    ((2, 2, 3, 2, 4, 3), [1, 0, 0, 1, 3, 2], [2, 2, 3, 2, 0, 0], [1, 1, 2, 1, -1, -2], {}),
    ((5, 6), [4, 0], [2, 6], [1, 1], {}),                         # empty along axis 0
]


@pytest.mark.parametrize("case", SS_CASES, ids=lambda c: str(c[0]) + str(c[4]))
def test_strided_slice(case):
    shape, begin, end, strides, masks = case
    rng = np.random.default_rng(8)
    for dtype in (np.int8, np.int16):
        model = _ss_model(shape, dtype, begin, end, strides, **masks)
        assert_same_as_tflite(model, [rand_ints(shape, dtype, rng)])


def _random_ss_cases(n):
    rng = np.random.default_rng(9)
    cases = []
    while len(cases) < n:
        nd = int(rng.integers(1, 6))
        shape = tuple(int(v) for v in rng.integers(1, 7, nd))
        cnt = int(rng.integers(1, nd + 1))
        begin = [int(v) for v in rng.integers(-8, 9, cnt)]
        end = [int(v) for v in rng.integers(-8, 9, cnt)]
        strides = [int(rng.choice([-3, -2, -1, 1, 1, 2, 3])) for _ in range(cnt)]
        masks = {k: int(rng.integers(0, 1 << cnt)) if rng.random() < 0.5 else 0
                 for k in ("begin_mask", "end_mask", "shrink_axis_mask")}
        if rng.random() < 0.3:
            masks["ellipsis_mask"] = 1 << int(rng.integers(0, cnt))
        if rng.random() < 0.3:
            masks["new_axis_mask"] = int(rng.integers(0, 1 << cnt))
        if rng.random() < 0.25:
            masks["offset"] = True
        try:
            out = _ss_out_shape(shape, begin, end, strides, **masks)
        except ValueError:  # TFLite would leave part of its output uninitialized
            continue
        if 0 in out:
            continue
        cases.append((shape, begin, end, strides, masks))
    return cases


def test_strided_slice_random():
    """80 random begin/end/strides/mask/offset combinations (1- to 5-D, negative strides)."""
    rng = np.random.default_rng(10)
    for shape, begin, end, strides, masks in _random_ss_cases(80):
        model = _ss_model(shape, np.int8, begin, end, strides, **masks)
        try:
            assert_same_as_tflite(model, [rand_ints(shape, np.int8, rng)])
        except AssertionError as e:
            raise AssertionError(f"{shape} begin={begin} end={end} strides={strides} "
                                 f"{masks}: {e}") from None


# -- RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR ---------------------------------------------------

RESIZE_SIZES = [((4, 4), (8, 8)), ((3, 5), (7, 4)), ((5, 7), (2, 3)), ((1, 1), (3, 2)),
                ((6, 3), (6, 3)), ((2, 9), (1, 1)), ((7, 5), (16, 11)), ((8, 8), (3, 13)),
                ((4, 3), (12, 9)), ((13, 2), (5, 30))]
RESIZE_MODES = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("sizes", RESIZE_SIZES, ids=str)
@pytest.mark.parametrize("align,half", RESIZE_MODES)
def test_resize_nearest(sizes, align, half):
    (ih, iw), (oh, ow) = sizes
    rng = np.random.default_rng(11)
    for dtype, n, c in ((np.int8, 2, 3), (np.int16, 1, 5)):
        shape = (n, ih, iw, c)
        model = single_op("RESIZE_NEAREST_NEIGHBOR", shape, dtype, (n, oh, ow, c), dtype,
                          [np.array([oh, ow], np.int32)], align_corners=align,
                          half_pixel_centers=half)
        assert_same_as_tflite(model, [rand_ints(shape, dtype, rng)])


@pytest.mark.parametrize("sizes", RESIZE_SIZES + [((3, 3), (10, 10)), ((10, 10), (3, 3)),
                                                  ((5, 4), (9, 7)), ((64, 1), (5, 3))], ids=str)
@pytest.mark.parametrize("align,half", RESIZE_MODES[:3])
def test_resize_bilinear(sizes, align, half):
    (ih, iw), (oh, ow) = sizes
    rng = np.random.default_rng(12)
    for dtype, n, c in ((np.int8, 2, 3), (np.int16, 1, 4)):
        shape = (n, ih, iw, c)
        model = single_op("RESIZE_BILINEAR", shape, dtype, (n, oh, ow, c), dtype,
                          [np.array([oh, ow], np.int32)], align_corners=align,
                          half_pixel_centers=half)
        x = rand_ints(shape, dtype, rng)
        assert_same_as_tflite(model, [x])
        # Alternating extremes: the largest products and many exact .5 ties.
        lo, hi = QR[dtype]
        xe = np.where((np.indices(shape).sum(0) % 2) == 0, lo, hi).astype(dtype)
        assert_same_as_tflite(model, [xe])


def test_resize_bilinear_rounding_ties():
    """2x upsampling of neighbours differing by odd amounts: every midpoint is a .5 tie,
    positive and negative (TFLite rounds them away from zero)."""
    x = np.array([[-3, 0], [4, -1], [-128, 127], [1, -2]], np.int8).reshape(1, 4, 2, 1)
    for align, half in RESIZE_MODES[:3]:
        model = single_op("RESIZE_BILINEAR", x.shape, np.int8, (1, 8, 4, 1), np.int8,
                          [np.array([8, 4], np.int32)], align_corners=align,
                          half_pixel_centers=half)
        assert_same_as_tflite(model, [x])


# -- QUANTIZE ------------------------------------------------------------------------------------

def _float_probe(scale, zp, dtype, rng, n=400):
    """Random values over and beyond the range, exact ties (k + 1/2) * scale and their
    float32 neighbours, signed zeros, infinities, NaN and values beyond int32."""
    lo, hi = QR[dtype]
    span = (hi - lo) * scale
    r = rng.uniform(-1.5 * span, 1.5 * span, n).astype(np.float32)
    k = rng.integers(lo - zp - 3, hi - zp + 3, 200).astype(np.float64)
    ties = ((k + 0.5) * scale).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3e9 * scale, -3e9 * scale, 1e30,
                        -1e30, scale / 2, -scale / 2, 1.5 * scale, -1.5 * scale], np.float32)
    return np.concatenate([r, ties, np.nextafter(ties, np.float32(np.inf)),
                           np.nextafter(ties, np.float32(-np.inf)), special]).astype(np.float32)


@pytest.mark.parametrize("dtype,scale,zp", [
    (np.int8, 0.5, 0), (np.int8, 0.1, -128), (np.int8, 0.0235, 127), (np.int8, 1.0, -5),
    (np.int8, 3.7e-3, 42), (np.uint8, 0.25, 128), (np.uint8, 0.07, 0),
    (np.int16, 1 / 1024, 0), (np.int16, 3.0517578e-05, 0), (np.int16, 0.013, -300)])
def test_quantize_float(dtype, scale, zp):
    rng = np.random.default_rng(13)
    x = _float_probe(scale, zp, dtype, rng)
    shape = (1, x.size)
    model = single_op("QUANTIZE", shape, np.float32, shape, dtype, [], x_q=None,
                      y_q=(scale, zp))
    assert_same_as_tflite(model, [x.reshape(shape)])


@pytest.mark.parametrize("dtype,axis", [(np.int8, 3), (np.int8, 1), (np.int16, 2)])
def test_quantize_float_per_channel(dtype, axis):
    rng = np.random.default_rng(14)
    shape = (2, 3, 5, 4)
    nch = shape[axis]
    scales = rng.uniform(0.01, 0.2, nch).astype(np.float32)
    zps = np.zeros(nch, np.int64) if dtype == np.int16 else rng.integers(-20, 20, nch)
    x = rng.uniform(-40, 40, shape).astype(np.float32)
    b = GraphBuilder("pcq")
    xi = b.input("x", shape, np.float32)
    y = b.tensor("y", shape, dtype, scale=scales, zero_point=zps, axis=axis)
    b.op("QUANTIZE", [xi], [y])
    b.output(y)
    assert_same_as_tflite(b.tflite(), [x])


@pytest.mark.parametrize("din,dout,q_in,q_out", [
    (np.int8, np.int8, (0.1, 3), (0.1, 3)),          # identity
    (np.int8, np.int8, (0.1, 3), (0.3, -7)),         # ratio < 1
    (np.int8, np.int8, (0.5, -128), (0.07, 127)),    # ratio > 1, saturating
    (np.int8, np.int8, (0.0123, 0), (0.0123 * 2, 0)),  # exact halves: rounding ties
    (np.int8, np.uint8, (0.2, -1), (0.2, 127)),      # int8 -> uint8 (xor fast path)
    (np.uint8, np.int8, (0.2, 130), (0.2, 2)),
    (np.int8, np.uint8, (0.2, 10), (0.05, 100)),
    (np.uint8, np.uint8, (0.05, 0), (0.02, 255)),
    (np.int8, np.int16, (0.05, -20), (0.05 / 256, 0)),
    (np.int16, np.int8, (1 / 4096, 0), (0.03, -5)),
    (np.int16, np.int16, (1 / 4096, 0), (3 / 8192, 0)),
    (np.int16, np.int16, (0.001, 0), (0.00025, 0)),
    (np.int16, np.int32, (0.001, 0), (0.0001, 7)),
    (np.uint8, np.int16, (0.1, 128), (0.001, 0)),
])
def test_requantize(din, dout, q_in, q_out):
    rng = np.random.default_rng(15)
    shape = (3, 7, 11)
    model = single_op("QUANTIZE", shape, din, shape, dout, [], x_q=q_in, y_q=q_out)
    assert_same_as_tflite(model, [rand_ints(shape, din, rng)])


def test_requantize_int32_input():
    rng = np.random.default_rng(16)
    shape = (4, 33)
    for dout, q_out in ((np.int8, (0.3, -9)), (np.int16, (0.01, 0))):
        model = single_op("QUANTIZE", shape, np.int32, shape, dout, [], x_q=(0.001, 5),
                          y_q=q_out)
        assert_same_as_tflite(model, [rand_ints(shape, np.int32, rng)])


# -- DEQUANTIZE ----------------------------------------------------------------------------------

def assert_same_float_bits(model, inputs):
    ref = assert_same_as_tflite(model, inputs)
    got = hwsim_run(model, inputs).outputs
    for r, g in zip(ref, got):
        assert r.dtype == np.float32 and g.dtype == np.float32
        rb, gb = r.view(np.uint32), g.view(np.uint32)
        if not np.array_equal(rb, gb):
            i = tuple(np.argwhere(rb != gb)[0])
            raise AssertionError(f"float bits differ at {i}: hwsim {g[i]!r} vs TFLite {r[i]!r}")


@pytest.mark.parametrize("dtype,scale,zp", [
    (np.int8, 0.1, 0), (np.int8, 0.0235, -128), (np.int8, 0.3333333, 127), (np.int8, 1e-6, 5),
    (np.uint8, 0.07, 128), (np.uint8, 1.7, 0), (np.int16, 3.0517578e-05, 0),
    (np.int16, 0.0123457, 0), (np.int16, 123.456, 0)])
def test_dequantize(dtype, scale, zp):
    rng = np.random.default_rng(17)
    lo, hi = QR[dtype]
    x = np.arange(lo, hi + 1, max(1, (hi - lo) // 2000)).astype(dtype)
    x = np.concatenate([x, rand_ints((500,), dtype, rng)]).reshape(1, -1)
    model = single_op("DEQUANTIZE", x.shape, dtype, x.shape, np.float32, [], x_q=(scale, zp),
                      y_q="none")
    assert_same_float_bits(model, [x])


def test_dequantize_per_channel():
    rng = np.random.default_rng(18)
    shape = (3, 4, 6)
    for axis in (0, 2):
        nch = shape[axis]
        b = GraphBuilder("pcdq")
        x = b.tensor("x", shape, np.int8, scale=rng.uniform(0.001, 0.5, nch).astype(np.float32),
                     zero_point=rng.integers(-30, 30, nch), axis=axis)
        b.inputs.append(x)
        y = b.activation("y", shape, np.float32)
        b.op("DEQUANTIZE", [x], [y])
        b.output(y)
        assert_same_float_bits(b.tflite(), [rand_ints(shape, np.int8, rng)])


# -- constant data inputs, other dtypes, rejected models -----------------------------------------

def test_constant_data_inputs():
    """Ops whose data input is a constant (e.g. weights dequantized or transposed in a graph)."""
    b = GraphBuilder("consts")
    x = b.input("x", (2, 3), np.int8, scale=0.1, zero_point=0)
    w = b.const("w", np.arange(-6, 6, dtype=np.int8).reshape(3, 4), scales=0.02, zero_points=3)
    wf = b.activation("wf", (3, 4), np.float32)
    b.op("DEQUANTIZE", [w], [wf])
    perm = b.const("perm", np.array([1, 0], np.int32))
    wt = b.activation("wt", (4, 3), np.int8, scale=0.02, zero_point=3)
    b.op("TRANSPOSE", [w, perm], [wt])
    wr = b.activation("wr", (2, 6), np.int8, scale=0.02, zero_point=3)
    b.op("RESHAPE", [w, b.const("s", np.array([2, -1], np.int32))], [wr])
    xt = b.activation("xt", (3, 2), np.int8, scale=0.1, zero_point=0)
    b.op("TRANSPOSE", [x, perm], [xt])
    for t in (wf, wt, wr, xt):
        b.output(t)
    assert_same_as_tflite(b.tflite(), [np.arange(6, dtype=np.int8).reshape(2, 3)])


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_resize_nearest_other_dtypes(dtype):
    rng = np.random.default_rng(19)
    shape = (1, 3, 5, 2)
    x = (rng.normal(size=shape).astype(np.float32) if dtype == np.float32
         else rand_ints(shape, dtype, rng))
    model = single_op("RESIZE_NEAREST_NEIGHBOR", shape, dtype, (1, 7, 4, 2), dtype,
                      [np.array([7, 4], np.int32)], x_q=None if dtype == np.float32 else (1.0, 0),
                      half_pixel_centers=True)
    assert_same_as_tflite(model, [x])


def _lower_error(model):
    from hwsim import ModelError
    with pytest.raises(ModelError) as e:
        hwsim_run(model, [])
    return str(e.value)


def test_rejected_models():
    """Models TFLite refuses, or on which it returns uninitialized memory, are ModelErrors."""
    # Shrink axis with a negative stride: TFLite writes no element into its 5-element output.
    consts = [np.array([2, 0], np.int32), np.array([3, 5], np.int32), np.array([-1, 1], np.int32)]
    model = single_op("STRIDED_SLICE", (4, 5), np.int8, (5,), np.int8, consts, shrink_axis_mask=1)
    assert "uninitialized" in _lower_error(model)
    model = single_op("RESIZE_BILINEAR", (1, 2, 2, 1), np.int8, (1, 4, 4, 1), np.int8,
                      [np.array([4, 4], np.int32)], align_corners=True, half_pixel_centers=True)
    assert "align_corners and half_pixel_centers" in _lower_error(model)
    model = single_op("QUANTIZE", (4,), np.int16, (4,), np.int16, [], x_q=(0.1, 3),
                      y_q=(0.2, 0))
    assert "zero points 0" in _lower_error(model)
    model = single_op("DEQUANTIZE", (4,), np.int16, (4,), np.float32, [], x_q=(0.1, 3),
                      y_q="none")
    assert "zero point 3" in _lower_error(model)
    model = single_op("RESHAPE", (2, 6), np.int8, (5, 2), np.int8, [np.array([5, 2], np.int32)])
    assert "cannot reshape" in _lower_error(model)


# -- corpus: every op of this family, fed its expected input -------------------------------------

FAMILY = ("PAD", "PADV2", "RESHAPE", "SQUEEZE", "TRANSPOSE", "STRIDED_SLICE",
          "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "QUANTIZE", "DEQUANTIZE")
CORPUS = Path(os.environ.get("HWSIM_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))


def _replica(graph, op):
    """A single-op model with the op's own tensors (shapes, dtypes, quantization, constants)."""
    b = GraphBuilder(f"replica_{op.index}")
    remap = {}
    for t in op.inputs + op.outputs:
        if t < 0 or t in remap:
            continue
        src = graph.tensors[t]
        q = src.quant
        remap[t] = b.tensor(f"t{t}", src.shape, src.dtype,
                            None if q is None else q.scales, None if q is None else q.zero_points,
                            0 if q is None else q.axis, src.data)
    for t in op.inputs:
        if t >= 0 and graph.tensors[t].data is None:
            b.inputs.append(remap[t])
    b.op(op.type, [remap.get(t, -1) for t in op.inputs], [remap[t] for t in op.outputs],
         version=op.version, **op.attrs)
    for t in op.outputs:
        b.output(remap[t])
    return b.tflite()


def test_corpus_ops_of_this_family():
    yaml = pytest.importorskip("yaml")
    h5py = pytest.importorskip("h5py")
    if not (CORPUS / "index.yaml").exists():
        pytest.skip(f"corpus not found at {CORPUS} (set HWSIM_CORPUS)")
    import hwsim
    from hwsim import registry
    from hwsim.lower import LoweringContext
    import hwsim.kernels.ops  # noqa: F401  (registers the kernels; hwsim.lower the lowerings)

    index = yaml.safe_load((CORPUS / "index.yaml").read_text())
    checked = []
    for m in index["models"]:
        d = CORPUS / m["path"]
        graph = hwsim.load_graph(d / "model.tflite")
        ops = [op for op in graph.ops if op.type in FAMILY]
        if not ops:
            continue
        ctx = LoweringContext(graph)
        with h5py.File(d / "expected.h5", "r") as h:
            oracle = h.attrs["oracle"] != "none"
            prefixes = [""] + [f"cases/{c}/" for c in range(1, int(h.attrs["num_cases"]))]
            for op in ops:
                layer = registry.LOWERINGS[op.type](op, ctx)
                fn = registry.KERNELS[layer.kernel]
                if not oracle:  # no expected tensors: compare a replica of the op with TFLite
                    rng = np.random.default_rng(op.index)
                    ins = []
                    for t in layer.inputs:
                        key = f"tensors/{t}"
                        info = graph.tensors[t]
                        ins.append(h[key][()] if key in h else
                                   rand_ints(info.shape, info.dtype.type, rng))
                    assert_same_as_tflite(_replica(graph, op), ins)
                    checked.append((m["path"], op.index, op.type, "replica"))
                    continue
                for prefix in prefixes:
                    keys = [f"{prefix}tensors/{t}" for t in layer.inputs + layer.outputs]
                    if not all(k in h for k in keys):
                        continue
                    outs, _ = fn(layer, [h[f"{prefix}tensors/{t}"][()] for t in layer.inputs])
                    for t, got in zip(layer.outputs, outs):
                        exp = h[f"{prefix}tensors/{t}"][()]
                        assert got.dtype == exp.dtype and got.shape == exp.shape, \
                            f"{m['path']} op {op.index} {op.type}: {got.dtype}{got.shape} vs " \
                            f"{exp.dtype}{exp.shape}"
                        if not np.array_equal(got.view(np.uint8), exp.view(np.uint8)):
                            bad = np.argwhere(got != exp)
                            raise AssertionError(
                                f"{m['path']} {prefix or 'case 0 '}op {op.index} {op.type}: "
                                f"{len(bad)} elements differ, first at {tuple(bad[0])}")
                    checked.append((m["path"], op.index, op.type, prefix))
    assert checked, "the corpus has no op of this family"
