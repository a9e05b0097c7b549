"""hwsim.kernels.mac: fast and reference MAC kernels against an independent numpy model.

The numpy model pads ``x + input_offset`` with zeros (so taps in the padding contribute
nothing, as in TFLite's reference kernels) and sums with int64 einsum.  Every comparison
is exact: np.array_equal plus a dtype check.
"""
from __future__ import annotations

import contextlib

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.kernels import mac, mac_pack

# ---------------------------------------------------------------------------
# independent numpy model
# ---------------------------------------------------------------------------


def _padded(x, off, pt, pl, rows, cols):
    """int64 [N, rows, cols, C]: row r / col c hold x[iy=r-pt, ix=c-pl] + off, 0 outside x."""
    N, H, W, C = x.shape
    xp = np.zeros((N, rows, cols, C), np.int64)
    r0, r1 = max(0, pt), min(rows, H + pt)
    c0, c1 = max(0, pl), min(cols, W + pl)
    if r1 > r0 and c1 > c0:
        xp[:, r0:r1, c0:c1, :] = x[:, r0 - pt:r1 - pt, c0 - pl:c1 - pl, :].astype(np.int64) + off
    return xp


def np_conv(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, groups=1):
    N = x.shape[0]
    Cout, KH, KW, Cg = w.shape
    fpg = Cout // groups
    xp = _padded(x, off, pt, pl, (oh - 1) * sh + (KH - 1) * dh + 1, (ow - 1) * sw + (KW - 1) * dw + 1)
    acc = np.zeros((N, oh, ow, Cout), np.int64)
    if bias is not None:
        acc += np.asarray(bias, np.int64)
    w64 = w.astype(np.int64)
    for ky in range(KH):
        for kx in range(KW):
            patch = xp[:, ky * dh: ky * dh + (oh - 1) * sh + 1: sh, kx * dw: kx * dw + (ow - 1) * sw + 1: sw, :]
            for g in range(groups):
                acc[..., g * fpg:(g + 1) * fpg] += np.einsum(
                    "nhwc,oc->nhwo", patch[..., g * Cg:(g + 1) * Cg], w64[g * fpg:(g + 1) * fpg, ky, kx, :])
    return acc if x.dtype == np.int16 else acc.astype(np.int32)


def np_depthwise(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, dm):
    N = x.shape[0]
    _, KH, KW, Cout = w.shape
    xp = _padded(x, off, pt, pl, (oh - 1) * sh + (KH - 1) * dh + 1, (ow - 1) * sw + (KW - 1) * dw + 1)
    xp = np.repeat(xp, dm, axis=3)  # output channel ic*dm + m reads input channel ic
    acc = np.zeros((N, oh, ow, Cout), np.int64)
    if bias is not None:
        acc += np.asarray(bias, np.int64)
    for ky in range(KH):
        for kx in range(KW):
            patch = xp[:, ky * dh: ky * dh + (oh - 1) * sh + 1: sh, kx * dw: kx * dw + (ow - 1) * sw + 1: sw, :]
            acc += patch * w[0, ky, kx, :].astype(np.int64)
    return acc if x.dtype == np.int16 else acc.astype(np.int32)


def np_fc(x, w, bias, off):
    acc = np.tensordot(x.astype(np.int64) + off, w.astype(np.int64), axes=([1], [1]))
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return acc if x.dtype == np.int16 else acc.astype(np.int32)


def _same(got, want):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        i = tuple(bad[0])
        raise AssertionError(f"{len(bad)} accumulators differ, first at {i}: got {got[i]}, want {want[i]}")


def _rand_x(rng, shape, dt):
    lo, hi = (-128, 128) if dt == np.int8 else (-32768, 32768)
    return rng.integers(lo, hi, shape).astype(dt)


def _rand_bias(rng, n, dt):
    if dt == np.int16:
        return rng.integers(-(2**40), 2**40, n).astype(np.int64)
    return rng.integers(-(2**20), 2**20, n).astype(np.int32)


@pytest.fixture(params=[2, 1], ids=["parallel", "serial"])
def threads(request, monkeypatch):
    """Both drivers: the parallel one (forced even for tiny layers; the work split depends
    on the thread count) and the single-thread one."""
    old = numba.get_num_threads()
    n = min(request.param, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    if request.param > 1:
        monkeypatch.setattr(mac, "PARALLEL_MIN_MACS", 0)
        monkeypatch.setattr(mac, "DW16_PARALLEL_MIN_MACS", 0)
    yield n
    numba.set_num_threads(old)


def _check_conv(rng, x_dt, N, H, W, C, Cout, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, G, off, bias=True):
    x = _rand_x(rng, (N, H, W, C), x_dt)
    w = rng.integers(-128, 128, (Cout, KH, KW, C // G)).astype(np.int8)
    b = _rand_bias(rng, Cout, x_dt) if bias else None
    args = (off, sh, sw, dh, dw, pt, pl, oh, ow, G)
    want = np_conv(x, w, b, *args)
    _same(mac.conv2d_acc(x, w, b, *args), want)
    _same(mac.conv2d_acc(x, mac.pack_conv2d_weights(w, G), b, *args), want)
    return x, w, b, want


def _check_dw(rng, x_dt, N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, off, bias=True):
    x = _rand_x(rng, (N, H, W, C), x_dt)
    w = rng.integers(-128, 128, (1, KH, KW, C * dm)).astype(np.int8)
    b = _rand_bias(rng, C * dm, x_dt) if bias else None
    args = (off, sh, sw, dh, dw, pt, pl, oh, ow, dm)
    want = np_depthwise(x, w, b, *args)
    _same(mac.depthwise_conv2d_acc(x, w, b, *args), want)
    _same(mac.depthwise_conv2d_acc(x, mac.pack_depthwise_weights(w, dm), b, *args), want)
    return x, w, b, want


# ---------------------------------------------------------------------------
# CONV_2D
# ---------------------------------------------------------------------------

# (N, H, W, C, Cout, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, groups)
CONV_CASES = [
    (1, 8, 8, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1),          # SAME 3x3, merged rows, 4x16 tiles
    (2, 9, 7, 13, 33, 3, 2, 2, 1, 1, 1, 1, 0, 5, 7, 1),          # odd channels (run layout), 33 filters
    (1, 10, 9, 7, 7, 3, 3, 1, 2, 2, 2, 2, 2, 10, 5, 1),          # dilation (per-tap segments), odd C
    (1, 6, 6, 12, 24, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6, 3),          # groups, 8-filter blocks (4x8 tiles)
    (2, 5, 6, 33, 13, 1, 1, 1, 1, 1, 1, 0, 0, 5, 6, 1),          # pointwise, batch folded into rows
    (1, 7, 7, 6, 12, 1, 1, 2, 2, 1, 1, 0, 0, 4, 4, 1),           # pointwise stride 2
    (1, 1, 1, 20, 9, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1),           # 1x1 image
    (3, 1, 1, 20, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),          # 1x1 image, 3x3 kernel: only center tap
    (1, 1, 9, 5, 17, 1, 3, 1, 1, 1, 1, 0, 1, 1, 9, 1),           # H = 1
    (1, 9, 1, 5, 17, 3, 1, 1, 1, 1, 1, 1, 0, 9, 1, 1),           # W = 1
    (1, 12, 11, 8, 16, 5, 5, 2, 2, 1, 1, 2, 2, 6, 6, 2),         # 5x5 s2 groups=2
    (1, 6, 6, 4, 8, 3, 3, 1, 1, 1, 1, 3, 3, 9, 9, 1),            # output reaching past all padding
    (1, 6, 6, 4, 8, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, 1),            # output smaller than VALID
    (1, 5, 5, 6, 6, 2, 2, 1, 1, 1, 1, -1, -2, 3, 2, 1),          # negative padding (crop)
    (1, 4, 4, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 4, 4, 9),            # groups == channels
    (1, 16, 16, 32, 64, 3, 3, 1, 1, 1, 1, 1, 1, 16, 16, 1),      # several bands and filter blocks
    (1, 3, 3, 3, 32, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 1),           # first-layer-like, Cin = 3
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("x_dt", [np.int8, np.int16], ids=["int8", "int16"])
def test_conv2d_grid(case, x_dt, threads):
    rng = np.random.default_rng(hash(case) % 2**32)
    off = 0 if x_dt == np.int16 else int(rng.integers(-127, 129))
    x, w, b, want = _check_conv(rng, x_dt, *case, off)
    args = (off,) + case[7:15] + (case[15],)
    _same(mac.conv2d_acc_reference(x, w, b, *args), want)


@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_extremes(bias):
    rng = np.random.default_rng(1)
    geo = (1, 1, 1, 1, 1, 1, 6, 6, 1)
    for xv, off, wv in [(-128, 128, -128), (127, 128, 127), (-128, -127, -128), (127, -127, 127),
                        (-128, -127, 127)]:
        x = np.full((2, 6, 6, 64), xv, np.int8)
        w = np.full((20, 3, 3, 64), wv, np.int8)
        b = _rand_bias(rng, 20, np.int8) if bias else None
        want = np_conv(x, w, b, off, *geo)
        _same(mac.conv2d_acc(x, w, b, off, *geo), want)
        _same(mac.conv2d_acc_reference(x, w, b, off, *geo), want)
    # 16x8: products of 2**22 over 5400 taps need the int64 result (int32 partial sums are chunked)
    for xv, wv in [(-32768, -128), (32767, 127), (-32768, 127)]:
        x = np.full((1, 4, 4, 600), xv, np.int16)
        w = np.full((17, 3, 3, 600), wv, np.int8)
        b = _rand_bias(rng, 17, np.int16) if bias else None
        want = np_conv(x, w, b, 0, 1, 1, 1, 1, 1, 1, 4, 4)
        assert np.abs(want).max() > 2**31
        _same(mac.conv2d_acc(x, w, b, 0, 1, 1, 1, 1, 1, 1, 4, 4), want)


def test_conv2d_16x8_nonzero_offset_uses_reference():
    rng = np.random.default_rng(2)
    x, w, b, want = _check_conv(rng, np.int16, 1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 5, 5, 1, 77)
    _same(mac.conv2d_acc_reference(x, w, b, 77, 1, 1, 1, 1, 1, 1, 5, 5), want)


_conv_params = st.fixed_dictionaries({
    "N": st.integers(1, 2), "H": st.integers(1, 9), "W": st.integers(1, 9),
    "Cg": st.integers(1, 20), "G": st.sampled_from([1, 1, 1, 2, 3]), "Coutg": st.integers(1, 40),
    "KH": st.integers(1, 4), "KW": st.integers(1, 4), "sh": st.integers(1, 3), "sw": st.integers(1, 3),
    "dh": st.integers(1, 3), "dw": st.integers(1, 3), "pt": st.integers(0, 3), "pl": st.integers(0, 3),
    "pb": st.integers(0, 3), "pr": st.integers(0, 3), "off": st.integers(-127, 128),
    "x16": st.booleans(), "bias": st.booleans(), "par": st.booleans(), "seed": st.integers(0, 2**32 - 1),
})


@contextlib.contextmanager
def _parallel(on):
    """Force the parallel driver (even for tiny layers) when ``on``; else leave the default."""
    old = mac.PARALLEL_MIN_MACS, mac.DW16_PARALLEL_MIN_MACS
    if on:
        mac.PARALLEL_MIN_MACS = mac.DW16_PARALLEL_MIN_MACS = 0
    try:
        yield
    finally:
        mac.PARALLEL_MIN_MACS, mac.DW16_PARALLEL_MIN_MACS = old


def _out_size(size, pad_lo, pad_hi, k, d, s):
    return max(1, (size + pad_lo + pad_hi - ((k - 1) * d + 1)) // s + 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_conv_params)
def test_conv2d_random(p):
    rng = np.random.default_rng(p["seed"])
    oh = _out_size(p["H"], p["pt"], p["pb"], p["KH"], p["dh"], p["sh"])
    ow = _out_size(p["W"], p["pl"], p["pr"], p["KW"], p["dw"], p["sw"])
    x_dt = np.int16 if p["x16"] else np.int8
    off = 0 if p["x16"] else p["off"]
    G = p["G"]
    with _parallel(p["par"]):
            _check_conv(rng, x_dt, p["N"], p["H"], p["W"], p["Cg"] * G, p["Coutg"] * G, p["KH"], p["KW"],
                    p["sh"], p["sw"], p["dh"], p["dw"], p["pt"], p["pl"], oh, ow, G, off, p["bias"])


# ---------------------------------------------------------------------------
# DEPTHWISE_CONV_2D
# ---------------------------------------------------------------------------

# (N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow)
DW_CASES = [
    (1, 8, 8, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8),
    (2, 9, 8, 13, 3, 3, 3, 2, 2, 1, 1, 1, 1, 5, 4),     # depth multiplier, odd channels
    (1, 9, 8, 33, 1, 5, 3, 1, 2, 2, 1, 2, 1, 9, 4),     # dilation, 5x3 (odd tap count)
    (1, 7, 7, 7, 2, 2, 2, 1, 1, 1, 1, 0, 0, 6, 6),      # even tap count
    (1, 1, 1, 40, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),     # 1x1 image
    (1, 1, 10, 24, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 10),   # H = 1
    (3, 6, 1, 32, 1, 3, 3, 2, 1, 1, 1, 1, 1, 3, 1),     # W = 1, batch 3
    (1, 16, 16, 48, 1, 3, 3, 2, 2, 1, 1, 0, 0, 8, 8),   # s2 with bottom/right padding only
    (1, 5, 5, 16, 1, 3, 3, 1, 1, 1, 1, 3, 3, 8, 8),     # output reaching past all padding
    (1, 6, 6, 17, 1, 1, 1, 1, 1, 1, 1, 0, 0, 6, 6),     # 1x1 depthwise (single tap)
    (1, 14, 14, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 14, 14),
]


@pytest.mark.parametrize("case", DW_CASES, ids=[str(i) for i in range(len(DW_CASES))])
@pytest.mark.parametrize("x_dt", [np.int8, np.int16], ids=["int8", "int16"])
def test_depthwise_grid(case, x_dt, threads):
    rng = np.random.default_rng(hash(case) % 2**32)
    off = 0 if x_dt == np.int16 else int(rng.integers(-127, 129))
    x, w, b, want = _check_dw(rng, x_dt, *case, off)
    _same(mac.depthwise_conv2d_acc_reference(x, w, b, off, *case[7:15], case[4]), want)


def test_depthwise_extremes():
    geo = (1, 1, 1, 1, 1, 1, 7, 7, 1)
    for xv, off, wv in [(-128, 128, -128), (127, 128, 127), (-128, -127, -128), (127, -127, -128)]:
        x = np.full((1, 7, 7, 40), xv, np.int8)
        w = np.full((1, 3, 3, 40), wv, np.int8)
        _same(mac.depthwise_conv2d_acc(x, w, None, off, *geo), np_depthwise(x, w, None, off, *geo))
    for xv, wv in [(-32768, -128), (32767, 127)]:
        x = np.full((1, 7, 7, 20), xv, np.int16)
        w = np.full((1, 3, 3, 20), wv, np.int8)
        _same(mac.depthwise_conv2d_acc(x, w, None, 0, *geo), np_depthwise(x, w, None, 0, *geo))


_dw_params = st.fixed_dictionaries({
    "N": st.integers(1, 2), "H": st.integers(1, 9), "W": st.integers(1, 9), "C": st.integers(1, 40),
    "dm": st.sampled_from([1, 1, 1, 2, 3]),
    "KH": st.integers(1, 4), "KW": st.integers(1, 4), "sh": st.integers(1, 3), "sw": st.integers(1, 3),
    "dh": st.integers(1, 3), "dw": st.integers(1, 3), "pt": st.integers(0, 3), "pl": st.integers(0, 3),
    "pb": st.integers(0, 3), "pr": st.integers(0, 3), "off": st.integers(-127, 128),
    "x16": st.booleans(), "bias": st.booleans(), "par": st.booleans(), "seed": st.integers(0, 2**32 - 1),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_dw_params)
def test_depthwise_random(p):
    rng = np.random.default_rng(p["seed"])
    oh = _out_size(p["H"], p["pt"], p["pb"], p["KH"], p["dh"], p["sh"])
    ow = _out_size(p["W"], p["pl"], p["pr"], p["KW"], p["dw"], p["sw"])
    x_dt = np.int16 if p["x16"] else np.int8
    off = 0 if p["x16"] else p["off"]
    with _parallel(p["par"]):
        _check_dw(rng, x_dt, p["N"], p["H"], p["W"], p["C"], p["dm"], p["KH"], p["KW"], p["sh"], p["sw"],
                  p["dh"], p["dw"], p["pt"], p["pl"], oh, ow, off, p["bias"])


# ---------------------------------------------------------------------------
# FULLY_CONNECTED
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("B,K,Cout", [(1, 1280, 1000), (1, 7, 3), (5, 33, 13), (8, 64, 24), (3, 1, 1),
                                      (2, 600, 40)])
@pytest.mark.parametrize("x_dt", [np.int8, np.int16], ids=["int8", "int16"])
def test_fully_connected(B, K, Cout, x_dt, threads):
    rng = np.random.default_rng(B * 1000 + K + Cout)
    off = 0 if x_dt == np.int16 else int(rng.integers(-127, 129))
    x = _rand_x(rng, (B, K), x_dt)
    w = rng.integers(-128, 128, (Cout, K)).astype(np.int8)
    b = _rand_bias(rng, Cout, x_dt)
    want = np_fc(x, w, b, off)
    _same(mac.fully_connected_acc(x, w, b, off), want)
    _same(mac.fully_connected_acc(x, mac.pack_fully_connected_weights(w), b, off), want)
    _same(mac.fully_connected_acc_reference(x, w, b, off), want)
    _same(mac.fully_connected_acc(x, w, None, off), np_fc(x, w, None, off))


def test_fully_connected_extremes():
    for xv, off, wv in [(-128, 128, -128), (127, 128, 127), (-128, -127, -128)]:
        x = np.full((3, 2000), xv, np.int8)
        w = np.full((20, 2000), wv, np.int8)
        _same(mac.fully_connected_acc(x, w, None, off), np_fc(x, w, None, off))
    x = np.full((2, 3000), -32768, np.int16)
    w = np.full((9, 3000), -128, np.int8)
    want = np_fc(x, w, None, 0)
    assert want.max() > 2**31
    _same(mac.fully_connected_acc(x, w, None, 0), want)


# ---------------------------------------------------------------------------
# API details
# ---------------------------------------------------------------------------


def test_packed_weights_round_trip():
    rng = np.random.default_rng(5)
    for shape, g in [((13, 3, 3, 7), 1), ((12, 2, 3, 4), 3), ((33, 1, 1, 64), 1)]:
        w = rng.integers(-128, 128, shape).astype(np.int8)
        assert np.array_equal(mac_pack.unpack_conv2d_weights(mac.pack_conv2d_weights(w, g)), w)
    for shape, dm in [((1, 3, 3, 13), 1), ((1, 5, 3, 40), 2), ((1, 2, 2, 9), 3)]:
        w = rng.integers(-128, 128, shape).astype(np.int8)
        assert np.array_equal(mac_pack.unpack_depthwise_weights(mac.pack_depthwise_weights(w, dm)), w)


def test_errors():
    x = np.zeros((1, 4, 4, 6), np.int8)
    w = np.zeros((4, 3, 3, 3), np.int8)
    with pytest.raises(ValueError):
        mac.conv2d_acc(x, w, None, 0, 1, 1, 1, 1, 1, 1, 4, 4, groups=1)  # 6 channels vs 3
    with pytest.raises(ValueError):
        mac.conv2d_acc(x, mac.pack_conv2d_weights(w, 2), None, 0, 1, 1, 1, 1, 1, 1, 4, 4, groups=1)
    with pytest.raises(ValueError):
        mac.conv2d_acc(x.astype(np.float32), w, None, 0, 1, 1, 1, 1, 1, 1, 4, 4, groups=2)
    with pytest.raises(ValueError):
        mac.conv2d_acc(x, w, np.zeros(3, np.int32), 0, 1, 1, 1, 1, 1, 1, 4, 4, groups=2)
    with pytest.raises(ValueError):
        mac.depthwise_conv2d_acc(x, np.zeros((1, 3, 3, 7), np.int8), None, 0, 1, 1, 1, 1, 1, 1, 4, 4, 1)
    with pytest.raises(ValueError):
        mac.fully_connected_acc(np.zeros((2, 5), np.int8), np.zeros((3, 6), np.int8), None, 0)


def test_empty_output():
    x = np.zeros((0, 4, 4, 6), np.int8)
    w = np.zeros((4, 3, 3, 6), np.int8)
    out = mac.conv2d_acc(x, w, None, 0, 1, 1, 1, 1, 1, 1, 4, 4)
    assert out.shape == (0, 4, 4, 4) and out.dtype == np.int32


_PORTABLE_SCRIPT = r"""
import sys, numpy as np
from hwsim.kernels import mac, mac_intrinsics
assert not mac_intrinsics._HAVE_AVX2, "HWSIM_PORTABLE_MAC=1 did not select the portable path"
rng = np.random.default_rng(7)
out = {}
x = rng.integers(-128, 128, (1, 13, 11, 19), dtype=np.int8)
w = rng.integers(-127, 128, (21, 3, 3, 19), dtype=np.int8)
b = rng.integers(-9999, 9999, 21).astype(np.int32)
out["conv"] = mac.conv2d_acc(x, w, b, 5, 2, 1, 1, 2, 1, 2, 7, 11)
wd = rng.integers(-127, 128, (1, 3, 3, 38), dtype=np.int8)
out["dw"] = mac.depthwise_conv2d_acc(x, wd, None, -3, 1, 1, 1, 1, 1, 1, 13, 11, 2)
xf = rng.integers(-128, 128, (3, 77), dtype=np.int8)
wf = rng.integers(-127, 128, (10, 77), dtype=np.int8)
out["fc"] = mac.fully_connected_acc(xf, wf, b[:10], 128)
np.savez(sys.argv[1], **out)
"""


def test_portable_path_gives_identical_integers(tmp_path):
    """The multiply-add path CPUs without AVX2 take (forced by HWSIM_PORTABLE_MAC=1, in a
    subprocess with its own Numba cache) gives exactly this process's integers."""
    import os
    import subprocess
    import sys
    script = tmp_path / "portable.py"
    script.write_text(_PORTABLE_SCRIPT)
    env = dict(os.environ, HWSIM_PORTABLE_MAC="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, str(script), str(tmp_path / "p.npz")], env=env, check=True)
    got = np.load(tmp_path / "p.npz")
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (1, 13, 11, 19), dtype=np.int8)
    w = rng.integers(-127, 128, (21, 3, 3, 19), dtype=np.int8)
    b = rng.integers(-9999, 9999, 21).astype(np.int32)
    exp = {"conv": mac.conv2d_acc_reference(x, w, b, 5, 2, 1, 1, 2, 1, 2, 7, 11)}
    wd = rng.integers(-127, 128, (1, 3, 3, 38), dtype=np.int8)
    exp["dw"] = mac.depthwise_conv2d_acc_reference(x, wd, None, -3, 1, 1, 1, 1, 1, 1, 13, 11, 2)
    xf = rng.integers(-128, 128, (3, 77), dtype=np.int8)
    wf = rng.integers(-127, 128, (10, 77), dtype=np.int8)
    exp["fc"] = mac.fully_connected_acc_reference(xf, wf, b[:10], 128)
    assert mac.conv2d_acc(x, w, b, 5, 2, 1, 1, 2, 1, 2, 7, 11).tolist() == exp["conv"].tolist()
    for k in exp:
        assert got[k].dtype == exp[k].dtype and np.array_equal(got[k], exp[k]), k


def test_plan_with_one_thread_types_the_split_int64_so_callees_compile_once():
    """mac_tiles._plan is inlined into its callers; called with nthreads=1 (the serial drivers)
    its split must still be typed int64, not Literal[int](1): a literal reached
    depthwise_zmm._dw3_item from _dw3_serial, and that kernel compiled a second time beside
    _dw3_par's int64 version (a cold start's duplicate specialization)."""
    from hwsim.kernels.mac_tiles import _plan

    @numba.njit
    def callee(nb, ng):
        return nb + ng

    @numba.njit
    def serial_driver(N, oh, ow, nblocks):
        nb, ng = _plan(N, oh, ow, nblocks, 1, 256, False)
        nr, gr = _plan(N, oh, ow, nblocks, 1, 256, True)  # the rows-first split
        return callee(nb, ng) + callee(nr, gr)

    assert serial_driver(1, 48, 48, 2) >= 4
    assert [tuple(s) for s in callee.signatures] == [(numba.int64, numba.int64)]


@pytest.mark.skipif(not mac.USE_DW512 or not mac.USE_DW3, reason="the 3x3 zmm depthwise kernel needs AVX512-BW")
@pytest.mark.parametrize("dwq", [False, pytest.param(True, marks=pytest.mark.skipif(
    not mac.HOST_HAS_VNNI512, reason="the 3x3 vpdpbusd depthwise kernel needs AVX512-VNNI"))], ids=["dw3", "dwq"])
def test_dw3_serial_compiles_once_for_both_drivers(dwq, monkeypatch):
    """depthwise_zmm._dw3_serial (and depthwise_vnni._dwq_serial) runs every item when called
    from Python and one item when called by fnptr.run_items_par; both pass the same ``part``
    tuple type, so a run that takes both compiles the kernel once (an omitted ``part`` was a
    second specialization)."""
    from hwsim.kernels import depthwise_vnni, depthwise_zmm
    monkeypatch.setattr(mac, "USE_DWQ", dwq)
    kernel = depthwise_vnni._dwq_serial if dwq else depthwise_zmm._dw3_serial
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 20, 20, 64), dtype=np.int8)
    w = rng.integers(-127, 128, (1, 3, 3, 64), dtype=np.int8)
    b = rng.integers(-3000, 3000, 64).astype(np.int32)
    cp = np.zeros((5, 64), np.int32)
    cp[0], cp[2] = 1 << 30, 9
    cp[3] = (1 << 9) - 1
    cp[4] = cp[3] >> 1
    fq = mac.fused_requant(cp, 3, -128, 127)
    pk = mac.pack_depthwise_weights(w, 1)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: the parallel driver does not run")
    expect = None
    for limit in (1 << 40, 1):  # serial (from Python), then parallel
        old, nt = mac.DW3_PARALLEL_MIN_MACS, numba.get_num_threads()
        mac.DW3_PARALLEL_MIN_MACS = limit
        numba.set_num_threads(2)
        try:
            got = mac.depthwise_conv2d_acc(x, pk, b, 7, 1, 1, 1, 1, 1, 1, 20, 20, 1, requant=fq)
        finally:
            mac.DW3_PARALLEL_MIN_MACS = old
            numba.set_num_threads(nt)
        if expect is None:
            expect = got
        assert np.array_equal(got, expect)
    assert len(kernel.signatures) == 1, kernel.signatures


def test_packed_constants_start_on_a_cache_line():
    """The arrays the zmm kernels read with 64-byte loads (conv quads, the 3x3 depthwise
    kernels' weights, biases and requantization constants, the fused requantization's rows)
    start on a 64-byte boundary and hold the same values as the unaligned ones."""
    from hwsim.kernels import depthwise_vnni, depthwise_zmm
    from hwsim.kernels.mac_pack import aligned, quad_weights
    from hwsim.util import CACHE_LINE
    for n in (2, 17, 100):
        for dt in (np.int8, np.int16, np.int64):
            a = np.arange(n, dtype=dt)[1:]  # a view starting off the boundary
            b = aligned(a)
            assert b.ctypes.data % CACHE_LINE == 0 and b.dtype == a.dtype and np.array_equal(a, b)
    rng = np.random.default_rng(9)
    w = rng.integers(-128, 128, (1, 3, 3, 96)).astype(np.int8)
    pk = mac.pack_depthwise_weights(w)
    b = rng.integers(-1000, 1000, 96).astype(np.int32)
    cp = np.zeros((5, 96), np.int32)
    cp[0], cp[2] = 1 << 30, 9
    fq = mac.fused_requant(cp, 3, -128, 127)
    arrays = [*depthwise_vnni.dwq_weights(pk, b, 5), *depthwise_zmm.dw3_weights(pk, b, 5), fq.cp, fq.q64,
              depthwise_vnni.dwq_requant(fq.q64),
              *quad_weights(mac.pack_conv2d_weights(rng.integers(-128, 128, (32, 3, 3, 6)).astype(np.int8)))[:2]]
    assert all(a.ctypes.data % CACHE_LINE == 0 for a in arrays)
