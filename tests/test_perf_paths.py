"""Every MAC kernel path this CPU offers gives the plain reference's integers.

The paths (hwsim.kernels.mac.mac_path): "vnni512" (vpdpbusd on zmm: AVX512-VNNI), "vnni256"
(vpdpbusd on ymm: AVX512-VNNI + VL, or AVX-VNNI), "avx2" (vpmaddwd) and "portable" (run in a
subprocess with HWSIM_PORTABLE_MAC=1 by
tests/test_kernels_mac.py::test_portable_path_gives_identical_integers). A path's tests skip,
naming the missing CPU feature, on a CPU without it. In-process the path is switched with
``mac.USE_VNNI`` / ``mac.USE_VNNI512`` (the choice is made in Python, so no compiled code
changes).

Each case compares accumulators (np.array_equal, dtype) with the plain int64 reference kernels
and the fused int8 output with the reference accumulators requantized separately; random
shapes (hypothesis) and edge shapes/values: every int8 zero point's extreme offsets (-127 and
128: the VNNI padding byte 255 and 0), extreme weights and activations, channel counts that are
not multiples of 4 (quad tails), groups, dilation, 1x1 images, long reductions.
"""
from __future__ import annotations

import contextlib

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.kernels import mac, mac_intrinsics
from hwsim.kernels.requant import requantize, split_shifts
from hwsim.params import RequantParams
from hwsim.vocab import RequantScheme

needs_vnni512 = pytest.mark.skipif(not mac_intrinsics.HOST_HAS_VNNI512,
                                   reason="this CPU has no AVX512-VNNI (with AVX512F/BW): the 512-bit "
                                          "vpdpbusd path cannot run here")
needs_vnni = pytest.mark.skipif(not mac_intrinsics.HOST_HAS_VNNI,
                                reason="this CPU has neither AVX512-VNNI (with AVX512-VL) nor AVX-VNNI: "
                                       "the vpdpbusd path cannot run here")
needs_avx2 = pytest.mark.skipif(not mac_intrinsics._HAVE_AVX2,
                                reason="this CPU has no AVX2 (or HWSIM_PORTABLE_MAC=1): the vpmaddwd "
                                       "AVX2 path cannot run here")

# (USE_VNNI, USE_VNNI512) of each path
PATHS = [pytest.param((True, True), marks=needs_vnni512, id="vnni512"),
         pytest.param((True, False), marks=needs_vnni, id="vnni256"),
         pytest.param((False, False), marks=needs_avx2, id="avx2")]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    monkeypatch.setattr(mac, "USE_VNNI", request.param[0])
    monkeypatch.setattr(mac, "USE_VNNI512", request.param[1])
    return mac.mac_path()


@contextlib.contextmanager
def _threads(parallel):
    old, olddw, oldn = mac.PARALLEL_MIN_MACS, mac.DW3_PARALLEL_MIN_MACS, numba.get_num_threads()
    old16 = mac.DW16_PARALLEL_MIN_MACS
    if parallel:
        mac.PARALLEL_MIN_MACS = mac.DW3_PARALLEL_MIN_MACS = mac.DW16_PARALLEL_MIN_MACS = 0
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    else:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        mac.PARALLEL_MIN_MACS, mac.DW3_PARALLEL_MIN_MACS = old, olddw
        mac.DW16_PARALLEL_MIN_MACS = old16
        numba.set_num_threads(oldn)


def _rq(rng, channels):
    return RequantParams(act_min=-128, act_max=127,
                         multiplier=rng.integers(1 << 30, (1 << 31) - 1, channels),
                         shift=rng.integers(-14, 2, channels), scheme=RequantScheme.tflite_double,
                         out_zp=int(rng.integers(-128, 128)))


def _rq_right(rng, channels):
    """Right shifts only, every one at least 1 (e = 1 and e = 23, the one-step rounding's
    largest, in some channels), an INT32_MAX multiplier in some, a clamp inside int8's range:
    the layers that take the one-step rounding (FusedRequant.q64, and its logical-shift form
    FusedRequant.ql on the vpmaddwd kernels)."""
    shift = rng.integers(-23, 0, channels)
    shift[::4] = -1
    shift[1::4] = -23
    mult = rng.integers(1 << 30, (1 << 31) - 1, channels)
    mult[2::7] = (1 << 31) - 1
    return RequantParams(act_min=-120, act_max=101, multiplier=mult, shift=shift,
                         scheme=RequantScheme.tflite_double, out_zp=int(rng.integers(-128, 128)))


def _rq_mag(rng, channels):
    """Right shifts 1..12 only (1 and 12 in some channels), odd multipliers (INT32_MAX in some),
    a clamp inside int8's range: every channel passes arith.magnitude_form_exact, so the
    256-bit kernels take the sign-magnitude form (FusedRequant.qs)."""
    shift = rng.integers(-12, 0, channels)
    shift[::3] = -1
    shift[1::3] = -12
    mult = rng.integers(1 << 30, (1 << 31) - 1, channels) | 1
    mult[2::5] = (1 << 31) - 1
    return RequantParams(act_min=-125, act_max=119, multiplier=mult, shift=shift,
                         scheme=RequantScheme.tflite_double, out_zp=int(rng.integers(-128, 128)))


def _fq(rq, channels):
    return mac.fused_requant(split_shifts(rq, channels).cp, rq.out_zp, rq.act_min, rq.act_max)


def _eq(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        raise AssertionError(f"{len(bad)} values differ, first at {tuple(bad[0])}")


def check_conv(x, w, b, off, geo, groups, parallel=False):
    args = (off,) + tuple(geo) + (groups,)
    want = mac.conv2d_acc_reference(x, w, b, *args)
    rng = np.random.default_rng(int(np.abs(want).sum()) % 2**32)
    rq = _rq(rng, w.shape[0])
    rr = _rq_right(rng, w.shape[0])  # the one-step rounding (q64 on vnni512, ql on avx2)
    rm = _rq_mag(rng, w.shape[0])  # its sign-magnitude form (qs) on the 256-bit kernels
    with _threads(parallel):
        _eq(mac.conv2d_acc(x, w, b, *args), want)
        for r in (rq, rr, rm):
            _eq(mac.conv2d_acc(x, w, b, *args, requant=_fq(r, w.shape[0])), requantize(want, r, np.int8))


def test_path_names_the_cpu_path(path):
    assert path in ("vnni512", "vnni256", "avx2")
    assert path.startswith("vnni") == mac.USE_VNNI


# (N, H, W, C, Cout, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, groups)
EDGE = [
    (1, 8, 8, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1),
    (2, 9, 7, 13, 33, 3, 2, 2, 1, 1, 1, 1, 0, 5, 7, 1),     # C % 4 == 1: run quads cross pixels
    (1, 10, 9, 7, 7, 3, 3, 1, 2, 2, 2, 2, 2, 10, 5, 1),     # dilation: per-tap quads, C % 4 == 3
    (1, 6, 6, 12, 24, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6, 3),     # groups of 4 channels, 8-filter blocks
    (1, 6, 6, 10, 10, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6, 5),     # groups of 2 channels: quads span groups
    (2, 5, 6, 33, 13, 1, 1, 1, 1, 1, 1, 0, 0, 5, 6, 1),     # pointwise, batch folded
    (1, 7, 7, 6, 12, 1, 1, 2, 2, 1, 1, 0, 0, 4, 4, 1),
    (3, 1, 1, 20, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),     # only the centre tap inside
    (1, 6, 6, 4, 8, 3, 3, 1, 1, 1, 1, 3, 3, 9, 9, 1),       # outputs entirely in the padding
    (1, 5, 5, 6, 6, 2, 2, 1, 1, 1, 1, -1, -2, 3, 2, 1),     # negative padding
    (1, 3, 3, 3, 32, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 1),      # Cin = 3
    (1, 4, 4, 1, 5, 3, 3, 1, 1, 1, 1, 1, 1, 4, 4, 1),       # Cin = 1
    (1, 2, 2, 2000, 3, 1, 1, 1, 1, 1, 1, 0, 0, 2, 2, 1),    # long reduction
]


@pytest.mark.parametrize("off", [-127, 0, 128, 5])
@pytest.mark.parametrize("case", EDGE, ids=[str(i) for i in range(len(EDGE))])
def test_conv2d_edge_shapes(path, case, off):
    N, H, W, C, Cout, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, G = case
    rng = np.random.default_rng(hash((case, off)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (Cout, KH, KW, C // G)).astype(np.int8)
    b = rng.integers(-(2**31), 2**31, Cout).astype(np.int32)  # sums may wrap int32
    for parallel in (False, True):
        check_conv(x, w, b, off, case[7:15], G, parallel)


@pytest.mark.parametrize("xv,off,wv", [(-128, 128, -128), (127, 128, 127), (-128, -127, -128),
                                       (127, -127, 127), (-128, -127, 127), (127, 128, -128)])
def test_conv2d_extreme_values(path, xv, off, wv):
    x = np.full((1, 6, 6, 67), xv, np.int8)
    w = np.full((20, 3, 3, 67), wv, np.int8)
    b = np.full(20, 2**31 - 1, np.int32)  # the sum wraps int32 as TFLite's does
    check_conv(x, w, b, off, (1, 1, 1, 1, 1, 1, 6, 6), 1)


@pytest.mark.parametrize("B,K,Cout", [(1, 1280, 1000), (3, 77, 10), (2, 5, 17), (1, 1, 1)])
@pytest.mark.parametrize("off", [-127, 128, 3])
def test_fully_connected(path, B, K, Cout, off):
    rng = np.random.default_rng(B + K + Cout + off + 127)
    x = rng.integers(-128, 128, (B, K)).astype(np.int8)
    w = rng.integers(-128, 128, (Cout, K)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, Cout).astype(np.int32)
    want = mac.fully_connected_acc_reference(x, w, b, off)
    _eq(mac.fully_connected_acc(x, w, b, off), want)
    rq = _rq(rng, Cout)
    _eq(mac.fully_connected_acc(x, w, b, off, requant=_fq(rq, Cout)), requantize(want, rq, np.int8))


_params = st.fixed_dictionaries({
    "N": st.integers(1, 2), "H": st.integers(1, 9), "W": st.integers(1, 9),
    "Cg": st.integers(1, 23), "G": st.sampled_from([1, 1, 1, 2, 3]), "Coutg": st.integers(1, 40),
    "KH": st.integers(1, 4), "KW": st.integers(1, 4), "sh": st.integers(1, 3), "sw": st.integers(1, 3),
    "dh": st.integers(1, 3), "dw": st.integers(1, 3), "pt": st.integers(0, 3), "pl": st.integers(0, 3),
    "pb": st.integers(0, 3), "pr": st.integers(0, 3), "off": st.integers(-127, 128),
    "par": st.booleans(), "seed": st.integers(0, 2**32 - 1),
})


def _out_size(size, lo, hi, k, d, s):
    return max(1, (size + lo + hi - ((k - 1) * d + 1)) // s + 1)


@pytest.mark.parametrize("flags", PATHS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=_params)
def test_conv2d_random_shapes(flags, p):
    old = mac.USE_VNNI, mac.USE_VNNI512
    mac.USE_VNNI, mac.USE_VNNI512 = flags
    try:
        rng = np.random.default_rng(p["seed"])
        G = p["G"]
        oh = _out_size(p["H"], p["pt"], p["pb"], p["KH"], p["dh"], p["sh"])
        ow = _out_size(p["W"], p["pl"], p["pr"], p["KW"], p["dw"], p["sw"])
        x = rng.integers(-128, 128, (p["N"], p["H"], p["W"], p["Cg"] * G)).astype(np.int8)
        w = rng.integers(-128, 128, (p["Coutg"] * G, p["KH"], p["KW"], p["Cg"])).astype(np.int8)
        b = rng.integers(-(2**20), 2**20, p["Coutg"] * G).astype(np.int32)
        geo = (p["sh"], p["sw"], p["dh"], p["dw"], p["pt"], p["pl"], oh, ow)
        check_conv(x, w, b, p["off"], geo, G, p["par"])
    finally:
        mac.USE_VNNI, mac.USE_VNNI512 = old


needs_avx512bw = pytest.mark.skipif(not mac_intrinsics.HOST_HAS_AVX512BW,
                                    reason="this CPU has no AVX512-BW: the 32-channel depthwise "
                                           "kernel cannot run here")

# (N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow)
DW_EDGE = [
    (1, 9, 9, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 9, 9),      # one full 32-channel block
    (1, 8, 7, 33, 1, 3, 3, 2, 2, 1, 1, 1, 1, 4, 4),      # 32 + 1: a 1-channel tail block
    (2, 6, 6, 47, 1, 5, 3, 1, 2, 2, 1, 2, 1, 6, 3),      # 47: tail of 15 (< 16 lanes), dilation
    (1, 5, 5, 24, 2, 3, 3, 1, 1, 1, 1, 1, 1, 5, 5),      # depth multiplier: 48 channels
    (1, 7, 7, 96, 1, 2, 2, 1, 1, 1, 1, 0, 0, 6, 6),      # even tap count, 3 blocks
    (1, 4, 4, 64, 1, 3, 3, 1, 1, 1, 1, 3, 3, 8, 8),      # outputs wholly in the padding
    (1, 3, 1, 40, 1, 3, 3, 1, 1, 1, 1, 1, 1, 3, 1),      # W = 1: the odd-pixel tail only
    (1, 12, 12, 1, 8, 3, 3, 2, 2, 1, 1, 0, 0, 5, 5),     # one input channel x 8 (person_detect)
    (2, 7, 6, 1, 40, 3, 3, 1, 1, 1, 1, 1, 1, 7, 6),      # one input channel x 40
    (1, 6, 6, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6),       # 3 channels x 5
]


# (USE_DW512, USE_DW3, USE_DWQ) of each depthwise path: the 3x3 vpdpbusd kernel (every channel
# count: mac.DWQ_ALWAYS), the 3x3 vpmaddwd kernel, the 32-channel band kernel (what other 3x3
# layers and every other shape take on AVX-512), the 16-channel one
DW_PATHS = [pytest.param((True, True, True), marks=needs_vnni512, id="vnni512-dwq"),
            pytest.param((True, True, False), marks=needs_avx512bw, id="avx512-dw3"),
            pytest.param((True, False, False), marks=needs_avx512bw, id="avx512"),
            pytest.param((False, False, False), marks=needs_avx2, id="avx2")]


def _dw_flags(monkeypatch, flags):
    """Select a DW_PATHS path (the 3x3 vpdpbusd kernel for every channel count)."""
    monkeypatch.setattr(mac, "USE_DW512", flags[0])
    monkeypatch.setattr(mac, "USE_DW3", flags[1])
    monkeypatch.setattr(mac, "USE_DWQ", flags[2])
    monkeypatch.setattr(mac, "DWQ_ALWAYS", True)


def _spread_rq(rng, want):
    """A requantization that maps each channel's accumulators onto +-25..100 (no clamping), so
    that the int8 outputs show any accumulator error of more than a few LSBs of that scale
    (random multipliers and shifts mostly saturate)."""
    mag = np.abs(want.astype(np.int64)).reshape(-1, want.shape[-1]).max(0, initial=0)
    k = np.ceil(np.log2(mag / 100 + 1)).astype(np.int64)
    return RequantParams(act_min=-128, act_max=127, multiplier=rng.integers(1 << 30, (1 << 31) - 1, mag.size),
                         shift=-k, scheme=RequantScheme.tflite_double, out_zp=int(rng.integers(-20, 20)))


def _fast_max_shift():
    """The largest shift of the "fast" requantizations: right shifts only (no left shift), and
    on the vpdpbusd path at least 1, which it needs (a channel with e = 0 sends the layer to
    depthwise_zmm, test_dw3_is_taken_on_avx512), so that the path runs."""
    return -1 if mac.USE_DWQ and mac.DWQ_ALWAYS else 0


def check_depthwise(x, w, b, args, rng, parallel_modes=(False, True)):
    want = mac.depthwise_conv2d_acc_reference(x, w, b, *args)
    _eq(mac.depthwise_conv2d_acc(x, w, b, *args), want)  # the accumulators (16-channel kernel)
    cout = w.shape[3]
    for parallel in parallel_modes:
        for kind in ("fast", "full", "spread", "right", "mag"):
            rq = _spread_rq(rng, want) if kind == "spread" else _rq_right(rng, cout) if kind == "right" else \
                _rq_mag(rng, cout) if kind == "mag" else _rq(rng, cout)
            if kind == "fast":
                rq = rq.replace(shift=np.minimum(rq.shift, _fast_max_shift()))
            with _threads(parallel):
                _eq(mac.depthwise_conv2d_acc(x, w, b, *args, requant=_fq(rq, cout)),
                    requantize(want, rq, np.int8))


@pytest.mark.parametrize("flags", DW_PATHS)
@pytest.mark.parametrize("off", [-127, 128, 7])
@pytest.mark.parametrize("case", DW_EDGE, ids=[str(i) for i in range(len(DW_EDGE))])
def test_depthwise_fused_paths(case, off, flags, monkeypatch):
    """The fused int8 depthwise on each path against the reference accumulators requantized."""
    _dw_flags(monkeypatch, flags)
    N, H, W, C, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, off)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, KH, KW, C * dm)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C * dm).astype(np.int32)  # int32 wrap: the extreme-value test
    check_depthwise(x, w, b, (off, sh, sw, dh, dw, pt, pl, oh, ow, dm), rng)


# 3x3 layers for the in-place kernel (depthwise_zmm._dw3_*): (N, H, W, C, sh, sw, pt, pl, oh, ow)
DW3_EDGE = [
    (1, 16, 16, 144, 1, 1, 1, 1, 16, 16),   # mobilenet's 144: a 16-channel tail block (masked loads)
    (1, 17, 17, 96, 2, 2, 0, 0, 8, 8),      # stride 2, no padding (TFLite's VALID after a PAD)
    (1, 16, 16, 96, 2, 2, 0, 0, 8, 8),      # stride 2, the last taps past the input's end
    (2, 9, 11, 33, 1, 1, 1, 1, 9, 11),      # batch 2, 33 channels: a 1-channel block
    (1, 7, 7, 960, 1, 1, 1, 1, 7, 7),       # 30 blocks, 7 = a 4-pixel strip + an overlapping one
    (1, 5, 5, 64, 1, 1, 0, 0, 3, 3),        # 3 interior pixels a row: 1-pixel path only
    (1, 6, 4, 32, 1, 1, 1, 1, 6, 4),        # 4 columns, both edge columns gathered
    (1, 2, 2, 40, 1, 1, 1, 1, 2, 2),        # input smaller than the kernel: every row gathered
    (1, 1, 1, 32, 1, 1, 1, 1, 1, 1),        # one pixel
    (1, 4, 4, 64, 1, 1, 3, 3, 8, 8),        # outputs wholly in the padding
    (1, 9, 9, 48, 1, 1, -1, -1, 5, 5),      # negative padding (a crop)
    (1, 12, 13, 100, 3, 3, 1, 1, 4, 5),     # stride 3: 1-pixel path
    (1, 11, 21, 64, 2, 1, 1, 0, 6, 19),     # strides differ
    (1, 10, 10, 32, 1, 1, 2, 2, 12, 12),    # padding 2: two gathered edge columns and rows
    (2, 7, 9, 32, 2, 1, 1, 1, 4, 9),        # 32 channels, odd width: two pixels a vector + one
    (1, 3, 2, 32, 1, 1, 1, 1, 3, 2),        # 32 channels, one pixel pair a row
]


@pytest.mark.parametrize("flags", DW_PATHS)
@pytest.mark.parametrize("off", [-127, 128, 0, 300])
@pytest.mark.parametrize("case", DW3_EDGE, ids=[str(i) for i in range(len(DW3_EDGE))])
def test_depthwise3x3_fused_paths(case, off, flags, monkeypatch):
    """3x3 depthwise (the in-place kernel on avx512-dw3; offset 300 is no int8 zero point and
    takes the band kernel) against the reference accumulators requantized."""
    _dw_flags(monkeypatch, flags)
    N, H, W, C, sh, sw, pt, pl, oh, ow = case
    rng = np.random.default_rng(hash((case, off)) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, 3, 3, C)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C).astype(np.int32)
    check_depthwise(x, w, b, (off, sh, sw, 1, 1, pt, pl, oh, ow, 1), rng)


@pytest.mark.parametrize("flags", DW_PATHS[:2])
@pytest.mark.parametrize("band_bytes", [1 << 19, 1], ids=["one-band-a-thread", "bands-split"])
@pytest.mark.parametrize("case", [(1, 16, 16, 144, 1, 1, 1, 1, 16, 16), (2, 9, 11, 33, 1, 1, 1, 1, 9, 11),
                                  (1, 17, 17, 96, 2, 2, 0, 0, 8, 8), (1, 7, 7, 960, 1, 1, 1, 1, 7, 7),
                                  (1, 16, 15, 32, 1, 1, 1, 1, 16, 15)],
                         ids=["rows", "rows-batch2", "rows-stride2", "channel-groups", "rows-32-pairs"])
def test_dw3_thread_splits(case, band_bytes, flags, monkeypatch):
    """The 3x3 kernels' split on threads (depthwise_zmm.dw3_part): one band of rows a thread,
    the bands split again past DW3_BAND_BYTES (1 byte: one output row a band), or channel
    groups for small images; every split against the reference."""
    from hwsim.kernels import depthwise_zmm
    _dw_flags(monkeypatch, flags)
    monkeypatch.setattr(depthwise_zmm, "DW3_BAND_BYTES", band_bytes)
    N, H, W, C, sh, sw, pt, pl, oh, ow = case
    nb, ng, _, end = depthwise_zmm.dw3_part((N, H, W, C), oh, ow, 2, 64 if flags[2] else 32)
    if oh * ow < 64:
        assert (nb, ng) == (1, 2)
    else:
        assert ng == 1 and nb == (2 if band_bytes > 1 else oh) and end == N * nb
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.integers(-128, 128, (N, H, W, C)).astype(np.int8)
    w = rng.integers(-128, 128, (1, 3, 3, C)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C).astype(np.int32)
    check_depthwise(x, w, b, (-5, sh, sw, 1, 1, pt, pl, oh, ow, 1), rng, parallel_modes=(True,))


@pytest.mark.parametrize("flags", DW_PATHS)
@pytest.mark.parametrize("xv,off,wv", [(-128, 128, -128), (127, 128, 127), (127, -127, -128),
                                       (-128, -127, 127)])
def test_depthwise3x3_extreme_values(flags, xv, off, wv, monkeypatch):
    """Extreme activations, weights and offsets, a bias at the int32 limit: the sums wrap int32
    as TFLite's do (the folded bias too); padded taps read the zero point -off."""
    _dw_flags(monkeypatch, flags)
    x = np.full((1, 6, 6, 64), xv, np.int8)
    w = np.full((1, 3, 3, 64), wv, np.int8)
    b = np.full(64, 2**31 - 1, np.int32)
    check_depthwise(x, w, b, (off, 1, 1, 1, 1, 1, 1, 6, 6, 1), np.random.default_rng(xv + off + wv + 400))


def test_dw3_is_taken_on_avx512(monkeypatch):
    """mobilenet-style 3x3 layers take the in-place kernel where the CPU has AVX512-BW (else
    this test documents the fallback); the shapes and requantizations it does not do take the
    band kernel. Between the two 3x3 kernels, mac.dwq_takes' choice under both CPU families'
    cost tables (AMD Zen's and the others')."""
    pk = mac.pack_depthwise_weights(np.ones((1, 3, 3, 64), np.int8))
    rng = np.random.default_rng(3)
    rq = _rq(rng, 64)
    fast, slow = _fq(rq.replace(shift=np.minimum(rq.shift, -1)), 64), _fq(rq.replace(shift=np.ones(64, int)), 64)
    b = np.zeros(64, np.int32)
    head = mac._dw_head(pk, b, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, fast)
    assert head[0] == (3 if mac.USE_DWQ else 2 if mac.USE_DW512 and mac.USE_DW3 else 1 if mac.USE_DW512 else 0)
    if mac.USE_DWQ:  # a last block of 32 or fewer channels: mac.dwq_takes weighs the waste (32
        # channels at stride 1: two pixels a vector)
        e0 = _fq(rq.replace(shift=np.where(np.arange(64) == 9, 0, -1)), 64)  # one channel without a right shift
        assert mac._dw_head(pk, b, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, e0)[0] == 2
        # (channels, stride, (kind with the others' table, kind with Zen's))
        for zen, (cost, pairs) in enumerate([((1.3, 1.45), True), ((1.6, 1.8), False)]):
            monkeypatch.setattr(mac, "DWQ_BLOCK_COST", cost)
            monkeypatch.setattr(mac, "DWQ_PAIRS", pairs)
            for C, stride, kinds in [(96, 1, (3, 2)), (80, 1, (3, 2)), (144, 1, (3, 3)), (144, 2, (3, 2)),
                                     (160, 1, (3, 3)), (120, 2, (3, 3)), (96, 2, (3, 2)), (160, 2, (3, 2)),
                                     (32, 1, (3, 2)), (32, 2, (2, 2)), (64, 1, (3, 3)), (64, 2, (3, 3))]:
                kind = kinds[zen]
                pkc = mac.pack_depthwise_weights(np.ones((1, 3, 3, C), np.int8))
                fc = _fq(_rq(rng, C).replace(shift=-np.ones(C, int)), C)
                head = mac._dw_head(pkc, np.zeros(C, np.int32), 5, 1, 3, 3, stride, stride, 1, 1, 1, 1, 8, 8, fc)
                assert head[0] == kind, (C, stride, cost)
    assert mac._dw_head(pk, b, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, None)[0] == 0  # accumulators
    if mac.USE_DW512:
        # an offset outside int8's zero points, dilation, a left shift: the band kernel
        assert mac._dw_head(pk, b, 300, 1, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, fast)[0] == 1
        assert mac._dw_head(pk, b, 5, 1, 3, 3, 1, 1, 2, 2, 1, 1, 8, 8, fast)[0] == 1
        assert mac._dw_head(pk, b, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, slow)[0] == 1


@pytest.mark.parametrize("C", [72, 120], ids=["tail8", "tail56"])
@pytest.mark.parametrize("zp,lo,hi", [(0, -128, 127), (-128, -128, 127), (5, 5, 127), (127, -100, 50)])
def test_zrq64_store_matches_requantize(zp, lo, hi, C):
    """The 3x3 kernels' one-step 64-bit requantization (mac_intrinsics._zrq64_store, and
    _zrq64_store64 of depthwise_vnni's lane order with 64-channel masked stores; the zero
    point folded into its constants) against requantize on every right shift 0..23 they take
    (1..23 for _zrq64_store64),
    positive and negative multipliers, and accumulators at the int32 limits and where
    acc * m + 2^30 changes sign; a layer with a larger right shift gets no such constants."""
    from numba import njit

    from hwsim.kernels.depthwise_vnni import dwq_requant
    from hwsim.kernels.depthwise_zmm import dw3_requant
    from hwsim.kernels.mac_intrinsics import _zload_i32, _zq_consts, _zrq64_store, _zrq64_store64

    @njit
    def run(acc, qk, zp, lo, hi, out):
        C = acc.shape[1]
        a, o = acc.reshape(acc.size), out.reshape(out.size)
        for r in range(acc.shape[0]):
            for c in range(0, C, 16):
                _zrq64_store(o, r * C + c, _zload_i32(a, r * C + c), _zq_consts(qk, 4 * c), lo, hi, C - c)

    @njit
    def run64(accq, qkq, C, lo, hi, out):
        """depthwise_vnni's form: four accumulators a 64-channel block in its lane order
        (accq [row][block][k][16]), one masked store of nv = C - c0 lanes; rows from the
        last, so that a store past a row's end would clobber the next row's first bytes"""
        o = out.reshape(out.size)
        a = accq.reshape(accq.size)
        nb = accq.shape[1]
        for r in range(accq.shape[0] - 1, -1, -1):
            for b in range(nb):
                i = (r * nb + b) * 64
                _zrq64_store64(o, r * C + 64 * b, _zload_i32(a, i), _zload_i32(a, i + 16), _zload_i32(a, i + 32),
                               _zload_i32(a, i + 48), qkq, 256 * b, lo, hi, C - 64 * b)

    rng = np.random.default_rng(zp + 1000 + C)  # C: 64 + a last block of 8 or 56 channels
    shift = -(np.arange(C) % 24)
    mult = rng.integers(1 << 30, (1 << 31) - 1, C) * rng.choice([-1, 1], C)
    mult[:4] = [1 << 30, 1, (1 << 31) - 1, -(1 << 31) + 1]  # m = 1 at e = 1: p = -2^30 - 1 is a tie
    rq = RequantParams(act_min=lo, act_max=hi, multiplier=mult, shift=shift, scheme=RequantScheme.tflite_double,
                       out_zp=zp)
    fq = _fq(rq, C)
    qk = dw3_requant(fq.cp, C, zp)
    assert fq.q64 is not None and np.array_equal(fq.q64, qk)
    assert _fq(rq.replace(shift=np.where(np.arange(C) == 5, -24, shift)), C).q64 is None
    special = np.array([-(1 << 31), (1 << 31) - 1, 0, 1, -1, -2, 2, 3, -3], np.int64)
    acc = np.concatenate([np.broadcast_to(special[:, None], (special.size, C)),
                          rng.integers(-(1 << 31), 1 << 31, (300, C)),
                          rng.integers(-5000, 5000, (300, C)),
                          # acc * m + 2^30 near 0: acc = -2^30 / m rounded either way
                          np.round(-(1 << 30) / mult)[None, :] + np.arange(-2, 3)[:, None]]).astype(np.int64)
    acc = np.clip(acc, -(1 << 31), (1 << 31) - 1).astype(np.int32)
    out = np.empty(acc.shape, np.int8)
    run(acc, qk, np.int64(zp), np.int64(lo), np.int64(hi), out)
    want = requantize(acc, rq, np.int8)
    _eq(out, want)
    # the 64-channel form takes right shifts of 1..23 (e = 0 has no such constants: its
    # result may not fit the int32 it narrows from)
    assert dwq_requant(qk) is None
    rq = rq.replace(shift=-np.maximum(np.arange(C) % 24, 1))
    qk = _fq(rq, C).q64
    want = requantize(acc, rq, np.int8)
    NB = (C + 63) // 64
    padded = np.zeros((acc.shape[0], NB * 64), np.int32)
    padded[:, :C] = acc
    # accumulator k, lane L, dword i holds channel 16 L + 4 k + i of its block
    accq = np.ascontiguousarray(padded.reshape(-1, NB, 4, 4, 4).transpose(0, 1, 3, 2, 4))
    out = np.empty(acc.shape, np.int8)
    run64(accq, dwq_requant(qk), np.int64(C), np.int64(lo), np.int64(hi), out)
    _eq(out, want)


def _guarded_int8(shape):
    """An int8 array that ends where an unreadable page begins: a kernel reading past its end
    faults (and the test process dies) instead of reading another array's bytes."""
    import ctypes
    import mmap
    n, page = int(np.prod(shape)), mmap.PAGESIZE
    size = (n + page - 1) // page * page + page
    buf = mmap.mmap(-1, size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    assert ctypes.CDLL(None).mprotect(ctypes.c_void_p(addr + size - page), ctypes.c_size_t(page), 0) == 0
    return np.frombuffer(buf, np.int8, count=n, offset=size - page - n).reshape(shape), buf


@pytest.mark.parametrize("flags", DW_PATHS)
@pytest.mark.parametrize("case", [(1, 6, 6, 144, 1, 0), (2, 5, 7, 48, 1, 1), (1, 9, 9, 80, 2, 0),
                                  (1, 7, 7, 32, 1, 0)])
def test_depthwise3x3_reads_nothing_past_the_input(flags, case, monkeypatch):
    """The in-place kernel's unmasked 32-byte loads stop at the input's end: channel counts
    that are not a multiple of 32, no padding at the bottom right (the last pixel read in place)."""
    _dw_flags(monkeypatch, flags)
    N, H, W, C, s, p = case
    x, keep = _guarded_int8((N, H, W, C))
    rng = np.random.default_rng(C)
    x[...] = rng.integers(-128, 128, x.shape)
    w = rng.integers(-128, 128, (1, 3, 3, C)).astype(np.int8)
    b = rng.integers(-(2**20), 2**20, C).astype(np.int32)
    oh, ow = (H + p - 3) // s + 1, (W + p - 3) // s + 1
    check_depthwise(x, w, b, (3, s, s, 1, 1, p, p, oh, ow, 1), rng)
    del x, keep


_dw3_params = st.fixed_dictionaries({
    "N": st.integers(1, 2), "H": st.integers(1, 12), "W": st.integers(1, 12),
    "C": st.just(32) | st.integers(32, 100),  # 32 at stride 1: depthwise_vnni's two pixels a vector
    "sh": st.integers(1, 3), "sw": st.integers(1, 3), "pt": st.integers(-1, 2), "pl": st.integers(-1, 2),
    "pb": st.integers(0, 2), "pr": st.integers(0, 2), "off": st.integers(-127, 128),
    "par": st.booleans(), "seed": st.integers(0, 2**32 - 1),
})


@pytest.mark.parametrize("flags", DW_PATHS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=_dw3_params)
def test_depthwise3x3_random_shapes(flags, p):
    old = mac.USE_DW512, mac.USE_DW3, mac.USE_DWQ, mac.DWQ_ALWAYS
    mac.USE_DW512, mac.USE_DW3, mac.USE_DWQ = flags
    mac.DWQ_ALWAYS = True
    try:
        rng = np.random.default_rng(p["seed"])
        oh = _out_size(p["H"], p["pt"], p["pb"], 3, 1, p["sh"])
        ow = _out_size(p["W"], p["pl"], p["pr"], 3, 1, p["sw"])
        x = rng.integers(-128, 128, (p["N"], p["H"], p["W"], p["C"])).astype(np.int8)
        w = rng.integers(-128, 128, (1, 3, 3, p["C"])).astype(np.int8)
        b = rng.integers(-(2**20), 2**20, p["C"]).astype(np.int32)
        check_depthwise(x, w, b, (p["off"], p["sh"], p["sw"], 1, 1, p["pt"], p["pl"], oh, ow, 1), rng,
                        (p["par"],))
    finally:
        mac.USE_DW512, mac.USE_DW3, mac.USE_DWQ, mac.DWQ_ALWAYS = old


def test_logical_shift_constants_need_every_right_shift():
    """FusedRequant.ql (mac.avx2_requant) exists exactly where the one-step rounding does and
    no channel has e = 0; padding channels past the layer's get shift 32 (e = 1)."""
    rng = np.random.default_rng(3)
    rr = _rq_right(rng, 21)
    fq = _fq(rr, 21)
    assert fq.q64 is not None and fq.ql is not None and fq.ql.dtype == np.uint64
    q = fq.ql.reshape(-1, 4, 2, 8)
    assert q.shape[0] == 4 and (q[:, 3, 0] >= 32).all() and (q[:, 3, 1] >= 0).all()
    e0 = rr.replace(shift=np.where(np.arange(21) == 20, 0, rr.shift))
    f0 = _fq(e0, 21)
    assert f0.q64 is not None and f0.ql is None


def test_sign_magnitude_constants_where_no_tie_is_missed():
    """FusedRequant.qs (mac.sym_requant) exists where every channel passes
    arith.magnitude_form_exact, and not for a multiplier of 2^30 (whose ties at v = -1, e = 1
    the form would round the other way) or a channel with e = 0; its lanes hold m, 2^30 +
    2^(e+30) and 31 + e (odd lanes: - 32), padding channels m = 0 and shift 32 (- 32)."""
    rng = np.random.default_rng(5)
    rm = _rq_mag(rng, 21)
    fq = _fq(rm, 21)
    assert fq.qs is not None and fq.qs.dtype == np.uint64 and fq.qs.shape == (2, 48)
    q = fq.qs.reshape(2, 3, 2, 8)  # [block][m, k, shift][even, odd][j]
    ch = np.arange(32).reshape(2, 8, 2).transpose(0, 2, 1)  # [block][parity][j]: channel
    e = -np.asarray(rm.shift)
    for c in range(32):
        b, par, j = c // 16, c % 2, (c % 16) // 2
        assert ch[b, par, j] == c
        if c < 21:
            assert q[b, 0, par, j] == rm.multiplier[c]
            assert q[b, 1, par, j] == (1 << 30) + (1 << (30 + int(e[c])))
            assert q[b, 2, par, j] == 31 + e[c] - 32 * par
        else:
            assert q[b, 0, par, j] == 0 and q[b, 2, par, j] == 32 - 32 * par
    assert mac._avx2_consts(fq) is fq.qs
    m30 = rm.replace(multiplier=np.where(np.arange(21) == 4, 1 << 30, rm.multiplier))
    f30 = _fq(m30, 21)
    assert f30.qs is None and f30.ql is not None and mac._avx2_consts(f30) is f30.ql
    assert _fq(rm.replace(shift=np.where(np.arange(21) == 7, 0, rm.shift)), 21).qs is None


def test_sign_magnitude_form_against_tflite_double_big_integers():
    """arith.multiply_by_quantized_multiplier_double_magnitude against
    multiply_by_quantized_multiplier_double on random and extreme accumulators, at and next to
    every tie point of small multiples of 2^(30 - k): they differ only at ties of a negative
    accumulator, by one (the true value one nearer zero), and never below 256 in magnitude
    where arith.magnitude_form_exact passes (which some channels here do not)."""
    from hwsim.arith import magnitude_form_exact, multiply_by_quantized_multiplier_double, \
        multiply_by_quantized_multiplier_double_magnitude
    rng = np.random.default_rng(11)
    seen_exact = seen_not = differ = 0
    for t in range(400):
        m = int([rng.integers(1 << 30, 1 << 31), 1 << 30, (1 << 30) + (1 << 21), 3 << 29, (1 << 31) - 1][t % 5])
        e = int(rng.integers(1, 24))
        exact = magnitude_form_exact(m, e)
        seen_exact += exact
        seen_not += not exact
        k = (m & -m).bit_length() - 1
        step = 1 << max(0, 30 - k)
        xs = [int(v) for v in rng.integers(-(1 << 31), 1 << 31, 40)] + list(range(-700, 700)) + \
            [-(1 << 31), (1 << 31) - 1, -(1 << 31) + 1]
        xs += [s * j * step + d for j in range(1, 30) for s in (1, -1) for d in (-1, 0, 1)
               if j * step + 1 < (1 << 31)]
        for x in xs:
            a = int(multiply_by_quantized_multiplier_double(x, m, -e))
            g = multiply_by_quantized_multiplier_double_magnitude(x, m, e)
            if a != g:
                differ += 1
                assert x < 0 and a == g + 1, (x, m, e, a, g)
                assert not exact or abs(g) >= 256, (x, m, e, a, g)
    assert seen_exact and seen_not and differ


def test_one_step_rounding_on_every_small_accumulator(path):
    """Every accumulator in [-12928, 12827] (plus large offsets) through the fused stores of the
    conv kernel of each path, with the one-step rounding (q64 on vnni512, its logical-shift
    form ql on avx2): a 1x1 conv of two input channels with weights 1 and 100 over all 65,536
    input pairs gives each such value once per channel; 24 filters (a 16-filter block and an
    8-filter tail) with right shifts 1..23, multipliers 2^30 and 2^31 - 1 and biases that move
    the window by +-2^20 and +-2^30. The rounding's cases (ties, p just below -2^30, v = -1)
    are all in it."""
    x0, x1 = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    x = np.stack([x0, x1], -1).reshape(1, 256, 256, 2).astype(np.int8)
    cout = 24
    w = np.zeros((cout, 1, 1, 2), np.int8)
    w[:, 0, 0, 0], w[:, 0, 0, 1] = 1, 100
    b = np.zeros(cout, np.int32)
    b[16:20] = [1 << 20, -(1 << 20), 1 << 30, -(1 << 30)]
    shift = -np.array([1, 1, 2, 2, 3, 4, 5, 8, 13, 23, 23, 1, 1, 7, 16, 22] + [1, 2, 23, 1, 3, 1, 2, 6])
    mult = np.where(np.arange(cout) % 2 == 0, 1 << 30, (1 << 31) - 1).astype(np.int64)
    mult[[5, 13, 21]] = [1518500250, 1234567891, 2000000001]
    rq = RequantParams(act_min=-128, act_max=127, multiplier=mult, shift=shift,
                       scheme=RequantScheme.tflite_double, out_zp=-5)
    fq = _fq(rq, cout)
    assert fq.q64 is not None and fq.ql is not None and fq.qs is None  # 2^30: a missed tie
    want = requantize(mac.conv2d_acc_reference(x, w, b, 0, 1, 1, 1, 1, 0, 0, 256, 256), rq, np.int8)
    for parallel in (False, True):
        with _threads(parallel):
            _eq(mac.conv2d_acc(x, w, b, 0, 1, 1, 1, 1, 0, 0, 256, 256, requant=fq), want)
    # the sign-magnitude form (qs, the 256-bit kernels): odd multipliers, so no channel has a
    # tie below saturation (the depthwise kernel's qs stores: check_depthwise's "mag" cases)
    rs = rq.replace(multiplier=mult | 1, shift=np.maximum(shift, -20), act_min=-126, act_max=125)
    fs = _fq(rs, cout)
    assert fs.qs is not None
    want = requantize(mac.conv2d_acc_reference(x, w, b, 0, 1, 1, 1, 1, 0, 0, 256, 256), rs, np.int8)
    for parallel in (False, True):
        with _threads(parallel):
            _eq(mac.conv2d_acc(x, w, b, 0, 1, 1, 1, 1, 0, 0, 256, 256, requant=fs), want)
