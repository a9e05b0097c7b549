"""Requantization fused into the MAC tile kernels (hwsim.kernels.mac ``requant=``) against the
separate path: the same kernels' int32 accumulators, then hwsim.kernels.requant.requantize.

Every comparison is exact (np.array_equal and dtype). The cases reuse test_kernels_mac's
geometry grids (every tile shape, tails of 1..15 channels, groups, padding, batch folding);
the requantization constants are random per channel, with left shifts, large right shifts,
an INT32_MIN multiplier and extreme zero points and clamps in the edge cases.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest

from hwsim.kernels import conv as conv_kernels
from hwsim.kernels import mac
from hwsim.kernels.requant import requantize, split_shifts
from hwsim.params import RequantParams
from hwsim.vocab import RequantScheme

from tests.test_kernels_mac import CONV_CASES, DW_CASES


@pytest.fixture(params=[2, 1], ids=["parallel", "serial"])
def threads(request, monkeypatch):
    """The parallel driver (forced even for tiny layers) and the serial one."""
    old = numba.get_num_threads()
    numba.set_num_threads(min(request.param, numba.config.NUMBA_NUM_THREADS))
    if request.param > 1:
        monkeypatch.setattr(mac, "PARALLEL_MIN_MACS", 0)
        monkeypatch.setattr(mac, "DW16_PARALLEL_MIN_MACS", 0)
    yield request.param
    numba.set_num_threads(old)


def _rq(rng, channels, edge=False):
    """edge False: right shifts only and no INT32_MIN multiplier (the kernels' fast form);
    True: left shifts, the largest right shift and INT32_MIN multipliers (the general form)."""
    mult = rng.integers(1 << 30, (1 << 31) - 1, channels).astype(np.int64)
    shift = rng.integers(-14, 1, channels).astype(np.int64)
    zp, lo, hi = int(rng.integers(-128, 128)), -128, 127
    if edge:
        shift[:: 3] = -31  # the largest right shift the fused lanes take
        shift[1:: 5] = 7  # left shifts (int32 wrap before the multiply)
        mult[2:: 7] = -(1 << 31)  # the SRDHM saturation case
        zp, lo, hi = 127, int(rng.integers(-128, 0)), int(rng.integers(0, 128))
    return RequantParams(act_min=lo, act_max=hi, multiplier=mult, shift=shift,
                         scheme=RequantScheme.tflite_double, out_zp=zp)


def _fused(rq, channels):
    sp = split_shifts(rq, channels)
    assert sp.vec_ok
    fq = mac.fused_requant(sp.cp, rq.out_zp, rq.act_min, rq.act_max)
    assert bool(fq.cp[5, 0]) == sp.fast  # both forms of the arithmetic are exercised
    return fq


def _same(got, want):
    assert got.dtype == want.dtype == np.int8 and got.shape == want.shape
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        raise AssertionError(f"{len(bad)} outputs differ, first at {tuple(bad[0])}")


@pytest.mark.parametrize("edge", [False, True], ids=["fast-form", "edge"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_fused_equals_separate(case, edge, threads):
    N, H, W, C, Cout, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, G = case
    rng = np.random.default_rng(hash((case, edge)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (Cout, KH, KW, C // G)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, Cout).astype(np.int32)
    off = int(rng.integers(-127, 129))
    args = (off, sh, sw, dh, dw, pt, pl, oh, ow, G)
    rq = _rq(rng, Cout, edge)
    want = requantize(mac.conv2d_acc(x, w, b, *args), rq, np.int8)
    _same(mac.conv2d_acc(x, w, b, *args, requant=_fused(rq, Cout)), want)


@pytest.mark.parametrize("edge", [False, True], ids=["fast-form", "edge"])
@pytest.mark.parametrize("case", DW_CASES, ids=[str(i) for i in range(len(DW_CASES))])
def test_depthwise_fused_equals_separate(case, edge, threads):
    N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, edge)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, KH, KW, C * dm)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C * dm).astype(np.int32)
    off = int(rng.integers(-127, 129))
    args = (off, sh, sw, dh, dw, pt, pl, oh, ow, dm)
    rq = _rq(rng, C * dm, edge)
    want = requantize(mac.depthwise_conv2d_acc(x, w, b, *args), rq, np.int8)
    _same(mac.depthwise_conv2d_acc(x, w, b, *args, requant=_fused(rq, C * dm)), want)


@pytest.mark.parametrize("B,K,Cout", [(1, 1280, 1000), (3, 77, 10), (5, 16, 17), (1, 3, 1)])
@pytest.mark.parametrize("edge", [False, True], ids=["fast-form", "edge"])
def test_fully_connected_fused_equals_separate(B, K, Cout, edge, threads):
    rng = np.random.default_rng(B * 1000 + K + Cout + edge)
    x = rng.integers(-128, 128, (B, K)).astype(np.int8)
    w = rng.integers(-127, 128, (Cout, K)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, Cout).astype(np.int32)
    rq = _rq(rng, Cout, edge)
    want = requantize(mac.fully_connected_acc(x, w, b, 128), rq, np.int8)
    _same(mac.fully_connected_acc(x, w, b, 128, requant=_fused(rq, Cout)), want)


def test_fused_refuses_what_it_cannot_do():
    """int16 activations (16x8, int64 accumulators) have no fused form: a clear ValueError,
    and the prepare step offers none for a zero point outside int32."""
    x = np.zeros((1, 2, 2, 4), np.int16)
    w = np.ones((4, 1, 1, 4), np.int8)
    rq = _rq(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match="fused requantization needs int8"):
        mac.conv2d_acc(x, w, None, 0, 1, 1, 1, 1, 0, 0, 2, 2, requant=_fused(rq, 4))
    assert mac.fused_requant(split_shifts(rq, 4).cp, 1 << 31, -128, 127) is None
    assert not mac.can_fuse(np.zeros((1, 1), np.int8), 40000)


def test_kernels_offer_outputs_only():
    """The engine's untraced runs call ``outputs_only``; the registry call keeps accumulators."""
    for run in (conv_kernels.run_conv2d, conv_kernels.run_depthwise,
                conv_kernels.run_fully_connected):
        assert callable(run.outputs_only)


@pytest.mark.parametrize("case", CONV_CASES[:8], ids=[str(i) for i in range(8)])
def test_conv2d_fused_call_plan_equals_direct_call(case, threads):
    """mac.conv2d_fused_call (the layer's call plan, kept per input shape): the first call
    (through conv2d_acc), the planned calls after it and a call on new data all equal
    conv2d_acc with requant=."""
    N, H, W, C, Cout, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, G = case
    rng = np.random.default_rng(hash(case) % 2**32)
    w = rng.integers(-128, 128, (Cout, KH, KW, C // G)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, Cout).astype(np.int32)
    off = int(rng.integers(-127, 129))
    fq = _fused(_rq(rng, Cout), Cout)
    pk = mac.pack_conv2d_weights(w, G)
    call = mac.conv2d_fused_call(pk, b, off, sh, sw, dh, dw, pt, pl, oh, ow, G, fq)
    for _ in range(3):
        x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
        _same(call(x), mac.conv2d_acc(x, pk, b, off, sh, sw, dh, dw, pt, pl, oh, ow, G, requant=fq))
    with pytest.raises(ValueError, match="channels"):
        call(np.zeros((N, H, W, C + 1), np.int8))


@pytest.mark.parametrize("case", DW_CASES[:6], ids=[str(i) for i in range(6)])
def test_depthwise_fused_call_plan_equals_direct_call(case, threads):
    N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash(case) % 2**32)
    w = rng.integers(-128, 128, (1, KH, KW, C * dm)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C * dm).astype(np.int32)
    off = int(rng.integers(-127, 129))
    fq = _fused(_rq(rng, C * dm), C * dm)
    pk = mac.pack_depthwise_weights(w, dm)
    call = mac.depthwise_fused_call(pk, b, off, sh, sw, dh, dw, pt, pl, oh, ow, dm, fq)
    for _ in range(3):
        x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
        _same(call(x), mac.depthwise_conv2d_acc(x, pk, b, off, sh, sw, dh, dw, pt, pl, oh, ow, dm,
                                                requant=fq))
