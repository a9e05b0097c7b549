"""hwsim/kernels/gemv.py: the matrix-vector FULLY_CONNECTED with its requantization equals the
reference accumulators (plain int64 loops, wrapped to int32) followed by ``requantize``, on
random and edge shapes, serial and threaded. The FC tests through TFLite (test_ops_conv.py)
run it too (untraced runs of a few rows take it)."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.kernels import gemv, mac
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


def _got(x, w, bias, off, rq, threads):
    out = np.empty((x.shape[0], w.shape[0]), np.int8)
    args = (x, w, bias, np.int32(off), gemv.requant_args(rq, w.shape[0]),
            np.int64(rq.out_zp), np.int64(rq.act_min), np.int64(rq.act_max),
            np.empty(x.shape, np.int16), np.empty(w.shape[0], np.int32), out)
    if threads > 1:
        gemv.gemv_fused_parallel(*args, threads)
    else:
        gemv.gemv_fused(*args)
    return out


@pytest.mark.parametrize("rows,k,o", SHAPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemv_equals_reference_accumulators_and_requantize(rows, k, o, threads):
    rng = np.random.default_rng(rows * 1000 + k + o)
    for extreme in (False, True):
        for per_channel in (True, False):
            case = _case(rng, rows, k, o, extreme, per_channel=per_channel)
            assert np.array_equal(_got(*case, threads), _want(*case))


@pytest.mark.parametrize("scheme", [RequantScheme.double_round, RequantScheme.tflite_single,
                                    RequantScheme.mult_shift, RequantScheme.shift_only])
def test_gemv_other_schemes(scheme):
    """The schemes other than tflite_double take requant_one per output (double_round is
    TFLite's reference FULLY_CONNECTED: mobilenet_v2's classifier)."""
    rng = np.random.default_rng(int(scheme) + 40)
    for rows, k, o in SHAPES:
        for extreme in (False, True):
            case = _case(rng, rows, k, o, extreme, scheme=scheme)
            assert np.array_equal(_got(*case, 1), _want(*case)), (rows, k, o)
            assert np.array_equal(_got(*case, 2), _want(*case)), (rows, k, o)


@pytest.mark.parametrize("off", [-32000, -127, 0, 128, 32000])
def test_gemv_offsets_and_int32_wrap(off):
    """Offsets at the ends of the int16 range, and a long reduction of extreme products whose
    sum leaves int32 (it wraps as TFLite's accumulator does)."""
    rng = np.random.default_rng(abs(off) + 3)
    x, w, bias, _, rq = _case(rng, 2, 3000, 24, extreme=True)
    x[:] = 127
    w[:] = 127
    case = (x, w, bias, off, rq)
    assert np.array_equal(_got(*case, 1), _want(*case))
    assert np.array_equal(_got(*case, 2), _want(*case))


def test_gemv_applies_to_few_rows_and_int16_offsets():
    assert gemv.applies(1, 0) and gemv.applies(gemv.MAX_ROWS, -32000)
    assert not gemv.applies(gemv.MAX_ROWS + 1, 0)
    assert not gemv.applies(1, 32001)
