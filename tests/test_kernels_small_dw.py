"""Depthwise layers with few channels on their own paths (hwsim.kernels.conv): one input channel
run as a CONV_2D (Cin = 1, Cout = depth multiplier) and 2..31 channels of stride 1 or 2 on
hwsim.kernels.depthwise_small (AVX-512 CPUs), against the plain reference path
(mac.depthwise_conv2d_acc_reference, then requantize). Each case checks the three ways the
engine runs a prepared layer: the fused call of an untraced run (``outputs_only``), the traced
run (accumulators and outputs) and the bound call of the call plan (``bind_depthwise``).

Exact comparisons only (np.array_equal and dtype). The cases cover padding (none, one side,
more than the kernel), strides, dilation, batch, 1..31 channels, extreme activations, weights
and offsets, and a bias at the int32 limit (the sums wrap as TFLite's).
"""
from __future__ import annotations

from types import SimpleNamespace

import numba
import numpy as np
import pytest

from hwsim.kernels import conv as conv_kernels
from hwsim.kernels import depthwise_small, mac, mac_intrinsics
from hwsim.kernels.requant import requantize, split_shifts
from hwsim.params import DepthwiseConvParams, RequantParams
from hwsim.vocab import RequantScheme


def _layer(w, b, off, geo, dm, rq):
    sh, sw, dh, dw, pt, pl, oh, ow = geo
    p = DepthwiseConvParams(weights=w, bias=b, input_offset=off, acc_int64=False, requant=rq,
                            stride_h=sh, stride_w=sw, dilation_h=dh, dilation_w=dw, pad_top=pt,
                            pad_left=pl, out_h=oh, out_w=ow, depth_multiplier=dm)
    return SimpleNamespace(params=p, op="DEPTHWISE_CONV_2D")


def _rq(rng, cout, edge):
    """edge False: right shifts only (the kernels' fast form); True: left shifts, the largest
    right shift, INT32_MIN multipliers and a narrow clamp (the general form)."""
    mult = rng.integers(1 << 30, (1 << 31) - 1, cout).astype(np.int64)
    shift = rng.integers(-12, -4, cout).astype(np.int64)
    zp, lo, hi = int(rng.integers(-128, 128)), -128, 127
    if edge:
        shift[::3] = -31
        shift[1::5] = 3
        mult[2::7] = -(1 << 31)
        zp, lo, hi = 127, int(rng.integers(-128, 0)), int(rng.integers(0, 128))
    return RequantParams(act_min=lo, act_max=hi, multiplier=mult, shift=shift,
                         scheme=RequantScheme.tflite_double, out_zp=zp)


def _same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        raise AssertionError(f"{len(bad)} values differ, first at {tuple(bad[0])}")


def check(x, w, b, off, geo, dm, rq):
    """Every engine path of the prepared layer against reference accumulators + requantize."""
    want_acc = mac.depthwise_conv2d_acc_reference(x, w, b, off, *geo, dm)
    want = requantize(want_acc, rq, np.int8)
    layer = _layer(w, b, off, geo, dm, rq)
    data = conv_kernels.prepare_depthwise(layer)
    _same(conv_kernels.run_depthwise.outputs_only(layer, [x], data)[0], want)
    outs, acc = conv_kernels.run_depthwise(layer, [x], data)
    _same(acc, want_acc)
    _same(outs[0], want)
    out = np.full(want.shape, 99, np.int8)
    call = conv_kernels.bind_depthwise(layer, data, [SimpleNamespace(shape=x.shape, dtype=x.dtype)],
                                       [out])
    assert call is not None
    call([x])
    _same(out, want)
    return data


# (N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow)
ONE_CHANNEL = [
    (1, 96, 96, 1, 8, 3, 3, 2, 2, 1, 1, 0, 0, 48, 48),   # person_detect's first layer
    (1, 12, 12, 1, 8, 3, 3, 2, 2, 1, 1, 1, 1, 6, 6),     # padding on both sides
    (2, 7, 6, 1, 40, 3, 3, 1, 1, 1, 1, 1, 1, 7, 6),      # batch 2, 40 outputs (a 16-filter tail)
    (1, 9, 8, 1, 3, 5, 3, 1, 2, 2, 1, 4, 1, 9, 4),       # dilation, strides and padding differ
    (1, 4, 4, 1, 5, 3, 3, 1, 1, 1, 1, 3, 3, 8, 8),       # outputs wholly in the padding
    (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1),       # one pixel, one output channel
    (1, 30, 31, 1, 16, 3, 3, 1, 1, 1, 1, 1, 1, 30, 31),  # larger: the threaded kernel if forced
]


@pytest.fixture(params=[1, 2], ids=["serial", "parallel"])
def threads(request, monkeypatch):
    old = numba.get_num_threads()
    numba.set_num_threads(min(request.param, numba.config.NUMBA_NUM_THREADS))
    if request.param > 1:
        monkeypatch.setattr(mac, "PARALLEL_MIN_MACS", 0)
        monkeypatch.setattr(mac, "DW16_PARALLEL_MIN_MACS", 0)
    yield request.param
    numba.set_num_threads(old)


@pytest.mark.parametrize("edge", [False, True], ids=["fast-form", "edge"])
@pytest.mark.parametrize("off", [-127, 128, 7])
@pytest.mark.parametrize("case", ONE_CHANNEL, ids=[str(i) for i in range(len(ONE_CHANNEL))])
def test_one_channel_depthwise_runs_as_conv(case, off, edge, threads):
    N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, off, edge)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, KH, KW, C * dm)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C * dm).astype(np.int32)
    data = check(x, w, b, off, (sh, sw, dh, dw, pt, pl, oh, ow), dm, _rq(rng, C * dm, edge))
    assert data.conv is not None  # the conv path was taken


@pytest.mark.parametrize("xv,off,wv", [(-128, 128, -128), (127, 128, 127), (127, -127, -128),
                                       (-128, -127, 127)])
def test_one_channel_extreme_values_wrap_int32(xv, off, wv):
    """Extreme activations, weights and offsets with a bias at the int32 limit: the sums wrap."""
    x = np.full((1, 10, 10, 1), xv, np.int8)
    w = np.full((1, 3, 3, 8), wv, np.int8)
    b = np.full(8, 2**31 - 1, np.int32)
    b[1::2] = -(2**31)
    rng = np.random.default_rng(xv + off + wv + 1000)
    data = check(x, w, b, off, (2, 2, 1, 1, 1, 1, 5, 5), 8, _rq(rng, 8, False))
    assert data.conv is not None


def test_more_channels_keep_the_depthwise_kernels():
    """Two input channels are no CONV_2D of one: the depthwise kernels run (depth multiplier 4:
    not depthwise_small's either)."""
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 6, 6, 2)).astype(np.int8)
    w = rng.integers(-128, 128, (1, 3, 3, 8)).astype(np.int8)
    b = rng.integers(-1000, 1000, 8).astype(np.int32)
    data = check(x, w, b, 3, (1, 1, 1, 1, 1, 1, 6, 6), 4, _rq(rng, 8, False))
    assert data.conv is None and data.small is None


needs_avx512bw = pytest.mark.skipif(not mac_intrinsics.HOST_HAS_AVX512BW,
                                    reason="this CPU has no AVX512-BW: depthwise_small's zmm "
                                           "kernel cannot run here")


@pytest.fixture
def small_threads(request, monkeypatch):
    """depthwise_small serial, or threaded from 0 MACs (parametrized indirectly: 1 or 2)."""
    n = getattr(request, "param", 1)
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if n > 1:
        monkeypatch.setattr(depthwise_small, "PARALLEL_MIN_MACS", 0)
    yield n
    numba.set_num_threads(old)


# (N, H, W, C, KH, KW, dh, dw, pt, pl, oh, ow): stride 1
SMALL = [
    (1, 48, 48, 8, 3, 3, 1, 1, 1, 1, 48, 48),     # person_detect's second layer
    (1, 7, 5, 2, 3, 3, 1, 1, 1, 1, 7, 5),         # 10 lanes a row: one partial 16-lane store
    (2, 6, 9, 31, 3, 3, 1, 1, 0, 0, 4, 7),        # batch 2, 31 channels, no padding (VALID)
    (1, 9, 11, 5, 5, 5, 1, 1, 2, 2, 9, 11),       # 5x5: 25 taps, an odd one
    (1, 8, 8, 12, 2, 2, 1, 1, 0, 0, 7, 7),        # 2x2: an even tap count
    (1, 9, 10, 3, 3, 3, 2, 3, 2, 3, 9, 10),       # dilation, more padding than the kernel
    (1, 4, 4, 6, 3, 3, 1, 1, 3, 3, 8, 8),         # outputs wholly in the padding
    (1, 9, 9, 16, 3, 3, 1, 1, -1, -1, 5, 5),      # negative padding (a crop)
    (1, 1, 1, 7, 1, 1, 1, 1, 0, 0, 1, 1),         # one pixel, one tap
    (1, 5, 40, 17, 1, 3, 1, 1, 0, 1, 5, 40),      # 1x3, 680 lanes: many 32-lane blocks
]


@needs_avx512bw
@pytest.mark.parametrize("small_threads", [1, 2], indirect=True, ids=["serial", "parallel"])
@pytest.mark.parametrize("edge", [False, True], ids=["fast-form", "edge"])
@pytest.mark.parametrize("off", [-127, 128, 7])
@pytest.mark.parametrize("case", SMALL, ids=[str(i) for i in range(len(SMALL))])
def test_small_channel_depthwise(case, off, edge, small_threads):
    N, H, W, C, KH, KW, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, off, edge)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, KH, KW, C)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C).astype(np.int32)
    rq = _rq(rng, C, edge) if edge else _spread(rng, x, w, b, off, (1, 1, dh, dw, pt, pl, oh, ow))
    data = check(x, w, b, off, (1, 1, dh, dw, pt, pl, oh, ow), 1, rq)
    assert data.small is not None  # the small-channel kernel was taken


def _spread(rng, x, w, b, off, geo):
    """A requantization mapping each channel's accumulators onto about +-100, so that outputs
    are seldom clamped and show any accumulator error (random constants mostly saturate)."""
    acc = mac.depthwise_conv2d_acc_reference(x, w, b, off, *geo, 1)
    mag = np.abs(acc.astype(np.int64)).reshape(-1, acc.shape[-1]).max(0, initial=0)
    k = np.ceil(np.log2(mag / 100 + 1)).astype(np.int64)
    return RequantParams(act_min=-128, act_max=127, multiplier=rng.integers(1 << 30, (1 << 31) - 1, mag.size),
                         shift=-k, scheme=RequantScheme.tflite_double, out_zp=int(rng.integers(-20, 20)))


@needs_avx512bw
@pytest.mark.parametrize("xv,off,wv", [(-128, 128, -128), (127, 128, 127), (127, -127, -128),
                                       (-128, -127, 127)])
def test_small_channel_extreme_values_wrap_int32(xv, off, wv):
    """Extreme activations, weights and offsets with a bias at the int32 limits: the sums wrap."""
    x = np.full((1, 10, 10, 8), xv, np.int8)
    w = np.full((1, 3, 3, 8), wv, np.int8)
    b = np.full(8, 2**31 - 1, np.int32)
    b[1::2] = -(2**31)
    rng = np.random.default_rng(xv + off + wv + 2000)
    data = check(x, w, b, off, (1, 1, 1, 1, 1, 1, 10, 10), 1, _rq(rng, 8, False))
    assert data.small is not None


# the kernel with strides (conv gives it strides 1 and 2 across: depthwise_small.applies), called directly
# (N, H, W, C, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow)
STRIDED = [
    (1, 48, 48, 16, 3, 3, 2, 2, 1, 1, 0, 0, 24, 24),   # person_detect's third depthwise layer
    (1, 11, 13, 5, 3, 3, 2, 2, 1, 1, 1, 1, 6, 7),      # odd sizes, padding
    (2, 12, 14, 3, 5, 3, 3, 2, 1, 2, 2, 1, 4, 7),      # strides and dilations differ
    (1, 9, 9, 30, 3, 3, 1, 3, 1, 1, 1, 1, 9, 3),       # stride 3 across, 1 down
]


@needs_avx512bw
@pytest.mark.parametrize("small_threads", [1, 2], indirect=True, ids=["serial", "parallel"])
@pytest.mark.parametrize("off", [-127, 128])
@pytest.mark.parametrize("case", STRIDED, ids=[str(i) for i in range(len(STRIDED))])
def test_small_channel_kernel_with_strides(case, off, small_threads):
    N, H, W, C, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, off)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, KH, KW, C)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C).astype(np.int32)
    geo = (sh, sw, dh, dw, pt, pl, oh, ow)
    for rq in (_spread(rng, x, w, b, off, geo), _rq(rng, C, True)):
        want = requantize(mac.depthwise_conv2d_acc_reference(x, w, b, off, *geo, 1), rq, np.int8)
        fq = mac.fused_requant(split_shifts(rq, C).cp, rq.out_zp, rq.act_min, rq.act_max)
        args = depthwise_small.plan(w, b, off, fq.cp, fq.zp, fq.lo, fq.hi, KH, KW, *geo)
        out = np.full(want.shape, 99, np.int8)
        depthwise_small.run(x, args, out, out.size * KH * KW)
        _same(out, want)


@needs_avx512bw
@pytest.mark.parametrize("small_threads", [1, 2], indirect=True, ids=["serial", "parallel"])
@pytest.mark.parametrize("edge", [False, True], ids=["fast-form", "edge"])
@pytest.mark.parametrize("off", [-127, 128])
@pytest.mark.parametrize("case", STRIDED[:3], ids=[str(i) for i in range(3)])
def test_small_channel_depthwise_stride_2_through_conv(case, off, edge, small_threads):
    """Stride 2 across (person_detect's 48x48x16 layer among them) is given to depthwise_small
    by conv: the fused, traced and bound paths equal the reference."""
    N, H, W, C, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, off, edge, "conv")) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, KH, KW, C)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C).astype(np.int32)
    geo = (sh, sw, dh, dw, pt, pl, oh, ow)
    rq = _rq(rng, C, edge) if edge else _spread(rng, x, w, b, off, geo)
    data = check(x, w, b, off, geo, 1, rq)
    assert data.small is not None  # the small-channel kernel was taken


def test_small_channel_kernel_is_chosen_for_strides_1_and_2_across():
    assert depthwise_small.applies(8, 1, 128, 1)
    assert depthwise_small.applies(16, 1, 128, 2)
    assert not depthwise_small.applies(8, 1, 128, 3)
    assert not depthwise_small.applies(8, 2, 128, 1)
    assert not depthwise_small.applies(32, 1, 128, 1) and not depthwise_small.applies(1, 1, 0, 1)


def test_wide_channels_on_narrow_rows_are_chosen_up_to_16_KiB_of_row_weights():
    """From 32 channels on, rows of at most 768 lanes (3x3 taps) take the kernel, wider ones not:
    person_detect's 24x24x32 .. 3x3x256 layers do, mobilenet_v2's (>= 3584 lanes) do not."""
    for c, ow in [(32, 24), (64, 12), (128, 6), (256, 3), (32, 12), (768, 1)]:
        assert depthwise_small.applies(c, 1, 128, 1, ow, 3, 3), (c, ow)
        assert depthwise_small.applies(c, 1, 128, 2, ow, 3, 3), (c, ow)
    for c, ow in [(32, 26), (64, 14), (32, 112), (960, 7), (384, 14)]:
        assert not depthwise_small.applies(c, 1, 128, 1, ow, 3, 3), (c, ow)
    assert not depthwise_small.applies(128, 1, 128, 1, 6, 5, 5)  # 13 tap pairs: 39 KiB
    assert not depthwise_small.applies(64, 2, 128, 1, 12, 3, 3)  # depth multiplier 2
    assert not depthwise_small.applies(64, 1, 128, 3, 4, 3, 3)   # stride 3
    assert depthwise_small.weight_bytes(128, 6, 3, 3) == 5 * 24 * 128


# (N, H, W, C, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow): rows of 32..256 channels, at most 768
# lanes wide
NARROW_WIDE = [
    (1, 24, 24, 32, 3, 3, 1, 1, 1, 1, 1, 1, 24, 24),   # person_detect's layers
    (1, 24, 24, 32, 3, 3, 2, 2, 1, 1, 0, 0, 12, 12),
    (1, 12, 12, 64, 3, 3, 1, 1, 1, 1, 1, 1, 12, 12),
    (1, 6, 6, 128, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6),
    (1, 6, 6, 128, 3, 3, 2, 2, 1, 1, 0, 0, 3, 3),
    (2, 3, 3, 256, 3, 3, 1, 1, 1, 1, 1, 1, 3, 3),      # batch 2
    (1, 5, 4, 40, 3, 3, 1, 1, 2, 1, 2, 0, 5, 4),       # a 8-lane tail, dilation 2 down
    (1, 9, 9, 100, 3, 3, 2, 2, 1, 1, 1, 1, 5, 5),      # 500 lanes, padding both sides
    (1, 6, 6, 96, 2, 2, 1, 1, 1, 1, 0, 0, 5, 5),       # 2x2 taps
]


@needs_avx512bw
@pytest.mark.parametrize("small_threads", [1, 2], indirect=True, ids=["serial", "parallel"])
@pytest.mark.parametrize("edge", [False, True], ids=["fast-form", "edge"])
@pytest.mark.parametrize("case", NARROW_WIDE, ids=[str(i) for i in range(len(NARROW_WIDE))])
def test_wide_channels_on_narrow_rows_through_conv(case, edge, small_threads):
    """32..256 channels on rows of at most 768 lanes go to depthwise_small: the fused, traced and
    bound paths equal the reference."""
    N, H, W, C, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, edge, "narrow")) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, KH, KW, C)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C).astype(np.int32)
    geo = (sh, sw, dh, dw, pt, pl, oh, ow)
    off = int(rng.integers(-127, 129))
    rq = _rq(rng, C, edge) if edge else _spread(rng, x, w, b, off, geo)
    data = check(x, w, b, off, geo, 1, rq)
    assert data.small is not None


def test_person_detect_untraced_run_equals_the_oracle():
    """person_detect's first layers take both paths (96x96x1 x8: conv; 48x48x8: depthwise_small
    on AVX-512): the untraced run (the call plan, bound calls) gives the oracle's outputs for
    every corpus input (tests/test_corpus.py checks the traced run)."""
    h5py = pytest.importorskip("h5py", reason="h5py reads the corpus oracle")
    import yaml

    import hwsim
    from tests.test_corpus import CORPUS, _cases
    d = CORPUS / "real" / "person_detect"
    if not (d / "expected.h5").exists():
        pytest.skip(f"person_detect not in the corpus at {CORPUS} (set HWSIM_CORPUS)")
    meta = yaml.safe_load((d / "meta.yaml").read_text())
    net = hwsim.load(d / "model.tflite")
    checked = 0
    with h5py.File(d / "expected.h5", "r") as h:
        for prefix, fname in _cases(h, meta["inputs"]):
            for _ in range(2):  # the second run reuses the plan's buffers
                outs = net.run(np.load(d / fname)).outputs
                for k, y in enumerate(outs):
                    _same(y, h[f"{prefix}outputs/{k}"][()])
                    checked += 1
    assert checked >= 2
