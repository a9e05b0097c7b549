"""Kernels of the data movement, resizing and (de)quantization family (see hwsim.lower.shape).

Pure data movement (pad, reshape/squeeze, transpose, strided slice, nearest-neighbour resize) is
plain numpy indexing: exact by construction. Bilinear resize is a Numba loop over the Q10 tables
derived in lowering, rounded with ``hwsim.arith.round_shift``. Requantization goes through
``hwsim.kernels.requant.requantize``. Float quantize/dequantize use numpy float32/float64
arithmetic exactly as the C++ does (IEEE division and one rounding of an exact double product).
"""
from __future__ import annotations

import numba
import numpy as np

from ..arith import INT32_MIN, round_half_away_f32, round_shift
from ..registry import kernel
from .requant import requantize

_RANGE_DTYPES = {(-128, 127): np.dtype(np.int8), (0, 255): np.dtype(np.uint8),
                 (-32768, 32767): np.dtype(np.int16),
                 (-2**31, 2**31 - 1): np.dtype(np.int32)}


def _data(layer, inputs) -> np.ndarray:
    c = layer.params.const_input
    return c if c is not None else inputs[0]


def _dtype_of_range(lo: int, hi: int) -> np.dtype:
    return _RANGE_DTYPES[(int(lo), int(hi))]


def _channel_view(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """Per-channel values shaped to broadcast along ``axis`` of an ndim-D tensor."""
    if values.shape[0] == 1:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = values.shape[0]
    return values.reshape(shape)


# -- pure data movement --------------------------------------------------------------------------

@kernel("pad")
def run_pad(layer, inputs):
    x = _data(layer, inputs)
    p = layer.params
    before, after = p.before, p.after
    out_shape = tuple(int(d + b + a) for d, b, a in zip(x.shape, before, after))
    out = np.full(out_shape, p.value, dtype=x.dtype)
    out[tuple(slice(int(b), int(b) + d) for b, d in zip(before, x.shape))] = x
    return [out], None


@kernel("reshape")
def run_reshape(layer, inputs):
    x = _data(layer, inputs)
    return [np.ascontiguousarray(x).reshape(tuple(int(d) for d in layer.params.shape)).copy()], \
        None


@numba.njit(cache=True)
def _transpose4(x, t0, t1, t2, t3, out):
    """Scatter x (contiguous, read in order) into out: x[i, j, k, l] goes to flat out at
    i*t0 + j*t1 + k*t2 + l*t3 (the output's element strides of x's axes). The long input rows
    stay the inner loop, several times faster than numpy's strided copy on the NCHW -> NHWC
    transposes at model inputs."""
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    d0, d1, d2, d3 = x.shape
    o = 0
    for i in range(d0):
        for j in range(d1):
            for k in range(d2):
                base = i * t0 + j * t1 + k * t2
                for m in range(d3):
                    of[base + m * t3] = xf[o]
                    o += 1


@kernel("transpose")
def run_transpose(layer, inputs):
    x = _data(layer, inputs)
    perm = tuple(int(a) for a in layer.params.perm)
    if x.ndim == 4 and x.size:
        x = np.ascontiguousarray(x)
        out = np.empty(tuple(x.shape[a] for a in perm), dtype=x.dtype)
        ost = [v // out.itemsize for v in out.strides]
        t = [0, 0, 0, 0]
        for pos, a in enumerate(perm):  # output axis pos is input axis a
            t[a] = ost[pos]
        _transpose4(x, t[0], t[1], t[2], t[3], out)
        return [out], None
    return [np.ascontiguousarray(np.transpose(x, perm))], None


@kernel("strided_slice")
def run_strided_slice(layer, inputs):
    x = _data(layer, inputs)
    p = layer.params
    xe = np.ascontiguousarray(x).reshape(tuple(int(d) for d in p.eff_shape))
    sl = tuple(slice(int(a), int(b) if b >= 0 else None, int(s))
               for a, b, s in zip(p.start, p.stop, p.step))
    out = np.ascontiguousarray(xe[sl]).reshape(tuple(int(d) for d in p.shape))
    return [out], None


@kernel("resize_nearest")
def run_resize_nearest(layer, inputs):
    x = _data(layer, inputs)
    p = layer.params
    out = x[:, p.y_index][:, :, p.x_index]
    return [np.ascontiguousarray(out)], None


# -- bilinear resize (ResizeBilinearInteger) -----------------------------------------------------

@numba.njit(cache=True, parallel=True)
def _resize_bilinear(x, y0, y1, fy, x0, x1, fx, rounding, out):
    batches, _, _, depth = x.shape
    out_h = y0.shape[0]
    out_w = x0.shape[0]
    one = np.int64(1 << 10)
    for row in numba.prange(batches * out_h):
        b = row // out_h
        oy = row % out_h
        ya = y0[oy]
        yb = y1[oy]
        wyb = fy[oy]
        wya = one - wyb
        for ox in range(out_w):
            xa = x0[ox]
            xb = x1[ox]
            wxb = fx[ox]
            wxa = one - wxb
            for c in range(depth):
                acc = (np.int64(x[b, ya, xa, c]) * wya * wxa
                       + np.int64(x[b, yb, xa, c]) * wyb * wxa
                       + np.int64(x[b, ya, xb, c]) * wya * wxb
                       + np.int64(x[b, yb, xb, c]) * wyb * wxb)
                out[b, oy, ox, c] = round_shift(acc, 20, rounding)


@kernel("resize_bilinear")
def run_resize_bilinear(layer, inputs):
    x = np.ascontiguousarray(_data(layer, inputs))
    p = layer.params
    out = np.empty((x.shape[0], p.y0.shape[0], p.x0.shape[0], x.shape[3]), dtype=x.dtype)
    _resize_bilinear(x, p.y0, p.y1, p.fy, p.x0, p.x1, p.fx,
                     np.int64(p.rounding), out)
    return [out], None


# -- quantize / requantize / dequantize ----------------------------------------------------------

@kernel("quantize_float")
def run_quantize_float(layer, inputs):
    """AffineQuantize / PerChannelQuantize: int32(TfLiteRound(x / scale)) + zp, clamped.

    The float -> int32 conversion is x86's cvttss2si: NaN and values outside the int32 range
    become INT32_MIN; the int32 addition of the zero point wraps.
    """
    x = inputs[0]
    p = layer.params
    scale = _channel_view(np.asarray(p.scale_bits, dtype=np.int32).view(np.float32),
                          p.axis, x.ndim)
    zp = _channel_view(np.asarray(p.zero_point, dtype=np.int64), p.axis, x.ndim)
    with np.errstate(all="ignore"):
        r = round_half_away_f32(x.astype(np.float32) / scale)
        fits = (r >= np.float32(-2.0 ** 31)) & (r < np.float32(2.0 ** 31))
        q = np.where(fits, r, np.float32(0)).astype(np.int64)
    q = np.where(fits, q, INT32_MIN) + zp
    q = (q + 2**31) % 2**32 - 2**31  # int32 wrap of the zero-point addition
    out = np.clip(q, p.qmin, p.qmax).astype(_dtype_of_range(p.qmin, p.qmax))
    return [out], None


@kernel("requantize")
def run_requantize(layer, inputs):
    """reference_ops::Requantize: MultiplyByQuantizedMultiplier(q - zp_in) + zp_out, clamped."""
    x = _data(layer, inputs)
    p = layer.params
    rq = p.requant
    acc = x.astype(np.int64) - np.int64(p.in_zp)
    flat = acc.reshape(-1, 1) if acc.size else acc.reshape(0, 1)
    out = requantize(flat, rq, _dtype_of_range(rq.act_min, rq.act_max))
    return [out.reshape(x.shape)], None


@kernel("dequantize")
def run_dequantize(layer, inputs):
    """float(double(scale) * (q - zp)): the double product is exact, so one rounding."""
    x = _data(layer, inputs)
    p = layer.params
    scale = _channel_view(np.asarray(p.scale_bits, dtype=np.int32).view(np.float32)
                          .astype(np.float64), p.axis, x.ndim)
    zp = _channel_view(np.asarray(p.zero_point, dtype=np.int64), p.axis, x.ndim)
    out = (scale * (x.astype(np.int64) - zp).astype(np.float64)).astype(np.float32)
    return [np.ascontiguousarray(out)], None
