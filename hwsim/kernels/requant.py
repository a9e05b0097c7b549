"""Requantization: accumulators -> output activations, per channel (last axis).

    out = clamp(requant(acc, multiplier[c], shift[c]) + out_zero_point, act_min, act_max)

``scheme`` (codes in ``hwsim.lower.REQUANT_SCHEMES``):
  0 tflite_double  MultiplyByQuantizedMultiplier, gemmlowp double rounding (TFLite default build)
  1 tflite_single  TFLITE_SINGLE_ROUNDING: one rounding of acc*M >> (31 - shift)
  2 tflite_int64   the int64-accumulator variant (16x8 kernels): multiplier reduced to 16 bits
  3 mult_shift     round_shift(acc * multiplier, shift, rounding)   (shift = right shift >= 0)
  4 shift_only     round_shift(acc, shift, rounding)
  5 double_round   int32(round(double(acc) * real[c])), C's round (ties away from zero). This is
                   what TFLite's *reference* FULLY_CONNECTED kernels do (fully_connected.cc passes
                   the float scales under kReference; reference_integer_ops/fully_connected.h):
                   real[c] = double(s_in) * double(s_w[c]) / double(s_out), carried in
                   params["real_multiplier"] (float64).
"""
from __future__ import annotations

import numba
import numpy as np

import math

from ..arith import (multiply_by_quantized_multiplier_double, multiply_by_quantized_multiplier_int64,
                     multiply_by_quantized_multiplier_single, round_shift)


@numba.njit(cache=True, inline="always")
def round_half_away_double(v):
    """C's round() on a double: ties away from zero (exact: a - floor(a) is exact)."""
    a = abs(v)
    f = math.floor(a)
    if a - f >= 0.5:
        f += 1.0
    return -f if v < 0 else f


@numba.njit(cache=True)
def requant_one(acc, multiplier, shift, scheme, rounding, real):
    if scheme == 5:
        return np.int64(round_half_away_double(np.float64(acc) * real))
    if scheme == 0:
        return multiply_by_quantized_multiplier_double(acc, multiplier, shift)
    elif scheme == 1:
        return multiply_by_quantized_multiplier_single(acc, multiplier, shift)
    elif scheme == 2:
        return multiply_by_quantized_multiplier_int64(acc, multiplier, shift)
    elif scheme == 3:
        return round_shift(np.int64(acc) * np.int64(multiplier), shift, rounding)
    else:
        return round_shift(np.int64(acc), shift, rounding)


@numba.njit(cache=True, parallel=True)
def _requantize(acc2d, multiplier, shift, real, out_zp, act_min, act_max, scheme, rounding,
                out2d):
    rows, channels = acc2d.shape
    per_channel = multiplier.shape[0] > 1
    for r in numba.prange(rows):
        for c in range(channels):
            k = c if per_channel else 0
            v = requant_one(acc2d[r, c], multiplier[k], shift[k], scheme, rounding,
                            real[k if real.shape[0] > 1 else 0]) + out_zp
            if v < act_min:
                v = act_min
            elif v > act_max:
                v = act_max
            out2d[r, c] = v


_NO_REAL = np.zeros(1, np.float64)


def requantize(acc: np.ndarray, params: dict, out_dtype) -> np.ndarray:
    """Apply ``params`` (multiplier, shift, scheme, rounding, out_zp, act_min, act_max)."""
    channels = acc.shape[-1] if acc.ndim else 1
    acc2d = np.ascontiguousarray(acc).reshape(-1, channels)
    out = np.empty(acc2d.shape, dtype=out_dtype)
    real = params.get("real_multiplier")
    if real is None:
        real = _NO_REAL
    _requantize(acc2d, params["multiplier"], params["shift"], real, np.int64(params["out_zp"]),
                np.int64(params["act_min"]), np.int64(params["act_max"]),
                np.int64(params["scheme"]), np.int64(params["rounding"]), out)
    return out.reshape(acc.shape)
