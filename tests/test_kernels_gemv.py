"""hwsim/kernels/gemv.py: the matrix-vector FULLY_CONNECTED with its requantization equals the
reference accumulators (plain int64 loops, wrapped to int32) followed by ``requantize``, on
random and edge shapes, serial and threaded. The FC tests through TFLite (test_ops_conv.py)
run it too (untraced runs of a few rows take it)."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.kernels import gemv, mac
from hwsim.kernels.mac_intrinsics import HOST_HAS_VNNI, HOST_HAS_VNNI512
from hwsim.kernels.requant import requantize
from hwsim.params import RequantParams
from hwsim.vocab import RequantScheme

SHAPES = [(1, 1, 1), (1, 3, 5), (2, 17, 16), (4, 64, 33), (1, 1280, 1000), (3, 7, 1),
          (1, 2, 40)]


def _case(rng, rows, k, o, extreme=False, off=None, per_channel=True,
          scheme=RequantScheme.tflite_double):
    if extreme:
        x = rng.choice(np.array([-128, 127], np.int8), (rows, k))
        w = rng.choice(np.array([-128, 127], np.int8), (o, k))
    else:
        x = rng.integers(-128, 128, (rows, k)).astype(np.int8)
        w = rng.integers(-127, 128, (o, k)).astype(np.int8)
    bias = rng.integers(-2 ** 31, 2 ** 31, o).astype(np.int32)
    n = o if per_channel else 1
    if scheme == RequantScheme.double_round:  # real = m * 2^shift, m < 2^53
        mult = rng.integers(1 << 52, 1 << 53, n).astype(np.int64)
        shift = rng.integers(-80, -60, n).astype(np.int64)
    elif scheme in (RequantScheme.mult_shift, RequantScheme.shift_only):
        mult = rng.integers(1, 1 << 15, n).astype(np.int64)
        shift = rng.integers(0, 30, n).astype(np.int64)
    else:
        mult = rng.integers(1 << 30, 1 << 31, n).astype(np.int64)
        shift = rng.integers(-24, 4, n).astype(np.int64)
    rq = RequantParams(act_min=-128 + int(rng.integers(0, 50)), act_max=127, multiplier=mult,
                       shift=shift, scheme=scheme, out_zp=int(rng.integers(-128, 128)))
    off = int(rng.integers(-127, 129)) if off is None else off
    return x, w, bias, off, rq


def _want(x, w, bias, off, rq):
    acc = mac.fully_connected_acc_reference(x, w, bias, off)  # int32, wrapped as TFLite's
    return requantize(acc, rq, np.int8)


def _got(x, w, bias, off, rq, threads, path="int16"):
    """gemv's output on ``path``: "int16" (gemv_fused: x + off in int16 lanes, vpmaddwd) or
    "vnni" (gemv_vnni: x + 128 as uint8, vpdpbusd on 16 outputs, the offset folded) or
    "vnni256" (gemv_vnni256: the same on ymm, 8 outputs)."""
    out = np.empty((x.shape[0], w.shape[0]), np.int8)
    ending = (gemv.requant_args(rq, w.shape[0]), np.int64(rq.out_zp), np.int64(rq.act_min),
              np.int64(rq.act_max))
    if path.startswith("vnni"):
        wq, c = gemv.vnni_pack(w, off, 16 if path == "vnni" else 8)
        args = (x, wq, c, bias) + ending + (np.empty((x.shape[0], (x.shape[1] + 3) // 4 * 4), np.uint8),
                                            np.empty(w.shape[0], np.int32), out)
        serial, par = (gemv.gemv_vnni, gemv.gemv_vnni_parallel) if path == "vnni" else \
            (gemv.gemv_vnni256, gemv.gemv_vnni256_parallel)
    else:
        args = (x, w, bias, np.int32(off)) + ending + (np.empty(x.shape, np.int16),
                                                      np.empty(w.shape[0], np.int32), out)
        serial, par = gemv.gemv_fused, gemv.gemv_fused_parallel
    if threads > 1:
        par(*args, threads)
    else:
        serial(*args)
    return out


PATHS = [pytest.param("vnni", marks=pytest.mark.skipif(
    not HOST_HAS_VNNI512, reason="this CPU has no AVX512-VNNI (with AVX512F/BW): gemv_vnni cannot run here")),
    pytest.param("vnni256", marks=pytest.mark.skipif(
        not HOST_HAS_VNNI, reason="this CPU has no VNNI (AVX-VNNI or AVX512-VNNI with VL): gemv_vnni256 cannot run here")),
    "int16"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rows,k,o", SHAPES + [(1, 5, 17), (2, 13, 31), (1, 1281, 1001)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemv_equals_reference_accumulators_and_requantize(rows, k, o, threads, path):
    """Both paths; the last shapes have K and O off multiples of 4 and 16 (vnni_pack's zero
    quads and the masked last block)."""
    rng = np.random.default_rng(rows * 1000 + k + o)
    for extreme in (False, True):
        for per_channel in (True, False):
            case = _case(rng, rows, k, o, extreme, per_channel=per_channel)
            assert np.array_equal(_got(*case, threads, path), _want(*case))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("scheme", [RequantScheme.double_round, RequantScheme.tflite_single,
                                    RequantScheme.mult_shift, RequantScheme.shift_only])
def test_gemv_other_schemes(scheme, path):
    """The schemes other than tflite_double take requant_one per output (double_round is
    TFLite's reference FULLY_CONNECTED: mobilenet_v2's classifier)."""
    rng = np.random.default_rng(int(scheme) + 40)
    for rows, k, o in SHAPES:
        for extreme in (False, True):
            case = _case(rng, rows, k, o, extreme, scheme=scheme)
            assert np.array_equal(_got(*case, 1, path), _want(*case)), (rows, k, o)
            assert np.array_equal(_got(*case, 2, path), _want(*case)), (rows, k, o)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("off", [-32000, -127, 0, 128, 32000])
def test_gemv_offsets_and_int32_wrap(off, path):
    """Offsets at the ends of the int16 range, and a long reduction of extreme products whose
    sum leaves int32 (it wraps as TFLite's accumulator does)."""
    rng = np.random.default_rng(abs(off) + 3)
    x, w, bias, _, rq = _case(rng, 2, 3000, 24, extreme=True)
    x[:] = 127
    w[:] = 127
    case = (x, w, bias, off, rq)
    assert np.array_equal(_got(*case, 1, path), _want(*case))
    assert np.array_equal(_got(*case, 2, path), _want(*case))


def test_fully_connected_takes_gemv_vnni_on_vnni_cpus(tmp_path, monkeypatch):
    """A one-row int8 FULLY_CONNECTED is prepared for gemv_vnni where the CPU has AVX512-VNNI,
    for gemv_vnni256 where it has VNNI on ymm only (here: the 512-bit kernels switched off),
    else for the int16 path; test_ops_conv.py compares the engine's outputs, on the CPU's
    path, with TFLite's reference kernels."""
    import hwsim
    from hwsim.kernels import conv
    from test_ops_conv import fc_model
    path = tmp_path / "fc.tflite"
    path.write_bytes(fc_model(np.random.default_rng(9), in_shape=(1, 1280), cout=100))
    layer = hwsim.load(path).program.layers[0]
    data = conv.prepare_fully_connected(layer)
    assert (data.gemv is not None) == mac.USE_VNNI
    want = gemv.gemv_vnni if mac.USE_VNNI512 else gemv.gemv_vnni256 if mac.USE_VNNI else gemv.gemv_fused
    assert conv._gemv_args(layer.params, data)[0] is want
    if mac.USE_VNNI512:
        monkeypatch.setattr(mac, "USE_VNNI512", False)
        data = conv.prepare_fully_connected(layer)
        assert data.gemv[0] == 8 and conv._gemv_args(layer.params, data)[0] is gemv.gemv_vnni256


def test_gemv_applies_to_few_rows_and_int16_offsets():
    assert gemv.applies(1, 0) and gemv.applies(gemv.MAX_ROWS, -32000)
    assert not gemv.applies(gemv.MAX_ROWS + 1, 0)
    assert not gemv.applies(1, 32001)
