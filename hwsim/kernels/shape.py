"""Kernels of the data movement, resizing and (de)quantization family (see hwsim.lower.shape).

Pure data movement (pad, reshape/squeeze, transpose, strided slice, nearest-neighbour resize) is
plain numpy indexing, or a Numba copy loop where numpy's strided copy is slow (4-D PAD, the
channel (de)interleaving TRANSPOSEs of image inputs): exact by construction. PAD, RESHAPE and
TRANSPOSE have ``bind`` steps (hwsim.registry): in the engine's untraced runs they write into
their preallocated outputs. Bilinear resize is a Numba loop over the Q10 tables
derived in lowering, rounded with ``hwsim.arith.round_shift``. Requantization goes through
``hwsim.kernels.requant.requantize``. Float quantize/dequantize use numpy float32/float64
arithmetic exactly as the C++ does (IEEE division and one rounding of an exact double product).
"""
from __future__ import annotations

import numba
import numpy as np

from ..arith import INT32_MIN, round_half_away_f32, round_shift
from ..registry import ALIAS, InputViews, binder, kernel
from .mac_intrinsics import HOST_HAS_VBMI, _interleave3x64
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

@numba.njit(cache=True)
def _pad4(x, out, pt, pl, value):
    """4-D PAD whose N and C are not padded, in one pass over the output: every output row
    (n, y) is the fill value or [pl fill pixels, the input row, the rest fill]."""
    n_, h, w, c = x.shape
    _, oh, ow, _ = out.shape
    xr = x.reshape(n_, h, w * c)
    orow = out.reshape(n_, oh, ow * c)
    left, mid = pl * c, w * c
    for n in range(n_):
        for y in range(oh):
            row = orow[n, y]
            iy = y - pt
            if iy < 0 or iy >= h:
                row[:] = value
            else:
                row[:left] = value
                row[left:left + mid] = xr[n, iy]
                row[left + mid:] = value


def _pad_into(x, p, out):
    """PAD ``x`` into ``out`` (shaped as the padded tensor)."""
    before, after = p.before, p.after
    if (x.ndim == 4 and x.size and int(before[0]) == int(after[0]) == 0
            and int(before[3]) == int(after[3]) == 0 and x.flags.c_contiguous):
        _pad4(x, out, np.int64(before[1]), np.int64(before[2]), out.dtype.type(p.value))
        return
    out[...] = p.value
    out[tuple(slice(int(b), int(b) + d) for b, d in zip(before, x.shape))] = x


def _pad_shape(shape, p) -> tuple[int, ...]:
    return tuple(int(d + b + a) for d, b, a in zip(shape, p.before, p.after))


@kernel("pad")
def run_pad(layer, inputs):
    x = _data(layer, inputs)
    out = np.empty(_pad_shape(x.shape, layer.params), dtype=x.dtype)
    _pad_into(x, layer.params, out)
    return [out], None


@binder("pad")
def bind_pad(layer, data, in_infos, outs):
    p = layer.params
    if p.const_input is not None or len(in_infos) != 1 or \
            outs[0].shape != _pad_shape(in_infos[0].shape, p):
        return None
    out = outs[0]

    def call(inputs):
        _pad_into(inputs[0], p, out)
    return call


@kernel("reshape")
def run_reshape(layer, inputs):
    x = _data(layer, inputs)
    return [np.ascontiguousarray(x).reshape(tuple(int(d) for d in layer.params.shape)).copy()], \
        None


@binder("reshape")
def bind_reshape(layer, data, in_infos, outs):
    """The same elements in C order: the engine's buffer of the input, reshaped (no copy)."""
    out = outs[0]
    if layer.params.const_input is not None or len(in_infos) != 1 or \
            out.size != int(np.prod(in_infos[0].shape, dtype=np.int64)) or \
            out.dtype != np.dtype(in_infos[0].dtype):
        return None
    return ALIAS


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


@numba.njit(cache=True)
def _swap3(x, out):
    """out[n, k, r] = x[n, r, k] where R or K is 3: the (de)interleaving of the three colour
    planes of an image input (NCHW <-> NHWC), written with the 3 unrolled so that LLVM
    vectorizes it (interleaved stores, or loads): ~4x the scatter loop on 224x224x3."""
    N, R, K = x.shape
    for n in range(N):
        if R == 3:
            for k in range(K):
                out[n, k, 0] = x[n, 0, k]
                out[n, k, 1] = x[n, 1, k]
                out[n, k, 2] = x[n, 2, k]
        else:
            for r in range(R):
                out[n, 0, r] = x[n, r, 0]
                out[n, 1, r] = x[n, r, 1]
                out[n, 2, r] = x[n, r, 2]


@numba.njit(cache=True)
def _planes3(x, out):
    """_swap3 with R == 3 (three planes interleaved) 64 pixels at a time
    (mac_intrinsics._interleave3x64), the last K % 64 one by one."""
    N, _, K = x.shape
    xf = x.reshape(x.size)
    of = out.reshape(out.size)
    for n in range(N):
        b = n * 3 * K
        i = 0
        while i + 64 <= K:
            _interleave3x64(of, (n * K + i) * 3, xf, b + i, b + K + i, b + 2 * K + i)
            i += 64
        while i < K:
            of[(n * K + i) * 3] = xf[b + i]
            of[(n * K + i) * 3 + 1] = xf[b + K + i]
            of[(n * K + i) * 3 + 2] = xf[b + 2 * K + i]
            i += 1


#: Byte images' three-plane interleave (NCHW -> NHWC at a model's input) by _planes3 where
#: the CPU has AVX512-VBMI: 224x224x3 alone 24.9 -> 4.5 us; in mobilenet_v2, whose input it
#: is (the user's array, from memory), 44.7 -> 28.5 us (benchmarks/bench_ab.py PLANES3 False
#: True --module shape, Sapphire Rapids).
PLANES3 = HOST_HAS_VBMI


def _swap3_any(x, out):
    """_swap3, or _planes3 where it applies (bytes, R == 3, a VBMI CPU)."""
    if PLANES3 and x.shape[1] == 3 and x.dtype.itemsize == 1:
        _planes3(x, out)
    else:
        _swap3(x, out)


def _as_swap(shape, perm):
    """(N, R, K) when transposing ``shape`` by ``perm`` is out[n, k, r] = x[n, r, k] on the
    C-ordered data (axes that stay adjacent merged, size-1 axes dropped), else None."""
    axes = [a for a in range(len(shape)) if shape[a] != 1]  # size-1 axes do not move data
    rank = {a: i for i, a in enumerate(axes)}
    runs: list[list[int]] = []
    for a in (rank[a] for a in perm if shape[a] != 1):  # runs of consecutive input axes
        if runs and a == runs[-1][-1] + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    size = [int(np.prod([shape[axes[a]] for a in r], dtype=np.int64)) for r in runs]
    if len(runs) == 2 and runs[0][0] > runs[1][0]:
        return 1, size[1], size[0]
    if len(runs) == 3 and runs[0][0] < runs[2][0] < runs[1][0]:
        return size[0], size[2], size[1]
    return None


def _transpose_into(x, perm, out):
    sw = _as_swap(x.shape, perm) if x.size else None
    if sw is not None and 3 in sw[1:]:
        _swap3_any(x.reshape(sw), out.reshape((sw[0], sw[2], sw[1])))
    elif x.ndim == 4 and x.size:
        ost = [v // out.itemsize for v in out.strides]
        t = [0, 0, 0, 0]
        for pos, a in enumerate(perm):  # output axis pos is input axis a
            t[a] = ost[pos]
        _transpose4(x, t[0], t[1], t[2], t[3], out)
    else:
        out[...] = np.transpose(x, perm)


@kernel("transpose")
def run_transpose(layer, inputs):
    x = np.ascontiguousarray(_data(layer, inputs))
    perm = tuple(int(a) for a in layer.params.perm)
    out = np.empty(tuple(x.shape[a] for a in perm), dtype=x.dtype)
    _transpose_into(x, perm, out)
    return [out], None


@binder("transpose")
def bind_transpose(layer, data, in_infos, outs):
    perm = tuple(int(a) for a in layer.params.perm)
    shape = tuple(int(d) for d in in_infos[0].shape) if len(in_infos) == 1 else None
    if layer.params.const_input is not None or shape is None or \
            outs[0].shape != tuple(shape[a] for a in perm):
        return None
    out = outs[0]
    sw = _as_swap(shape, perm) if out.size else None
    if sw is not None and 3 in sw[1:]:  # decided here: per-call Python is slow in a cold run
        out3, views = out.reshape((sw[0], sw[2], sw[1])), InputViews(sw)
        fn = _planes3 if PLANES3 and sw[1] == 3 and out.dtype.itemsize == 1 else _swap3

        def swap(inputs):
            fn(views(inputs)[0], out3)
        return swap

    def call(inputs):
        _transpose_into(inputs[0], perm, out)
    return call


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
