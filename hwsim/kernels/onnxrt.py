"""Kernels of ONNX Runtime's quantized ops (the layers hwsim.lower.onnxrt lowers QDQ and
QOperator ONNX models to): the integers onnxruntime's CPU execution provider computes.

The MAC layers take their exact accumulators from hwsim.kernels.mac (the same kernels as
TFLite's layers) and requantize with ORT's float32 scale (hwsim.arith
``requant_float32_half_even``). A uint8 activation enters the int8 MAC kernels as
``x - 128`` (an exact change of zero point, folded into the layer's input offset). The float32
steps of the other ops follow the MLAS / contrib kernels named in hwsim.params_onnxrt, in the
same order of operations (docs/onnx.md).
"""
from __future__ import annotations

import numba
import numpy as np

from ..arith import (dequantize_float32, fma_float32, quantize_float32_half_even,
                     requant_float32_half_even)
from ..params_onnxrt import OrtMacParams
from ..registry import kernel
from . import mac


def _prepare_mac(layer):
    """The packed weights and, with weight zero points, the packed all-ones weights whose
    accumulators are the window sums ``sum (x - x_zp)`` (one per group / input channel)."""
    p: OrtMacParams = layer.params
    ones = None
    if p.kind == "conv2d":
        packed = mac.pack_conv2d_weights(p.weights, p.groups)
        if p.w_zp is not None:
            cout, kh, kw, cin_g = p.weights.shape
            ones = mac.pack_conv2d_weights(np.ones((p.groups, kh, kw, cin_g), np.int8),
                                           p.groups)
    elif p.kind == "depthwise":
        packed = mac.pack_depthwise_weights(p.weights, p.depth_multiplier)
        if p.w_zp is not None:
            _, kh, kw, cout = p.weights.shape
            ones = mac.pack_depthwise_weights(
                np.ones((1, kh, kw, cout // p.depth_multiplier), np.int8), 1)
    else:
        packed = mac.pack_fully_connected_weights(p.weights)
    return packed, ones


def _saturate(v: np.ndarray, lo: int, hi: int, dtype) -> np.ndarray:
    return np.clip(v, lo, hi).astype(dtype)


@kernel("ort_mac", prepare=_prepare_mac)
def run_mac(layer, inputs, prepared):
    p: OrtMacParams = layer.params
    packed, ones = prepared
    x = inputs[0]
    if p.in_uint8:
        x = (x ^ np.uint8(0x80)).view(np.int8)  # x - 128 as int8 (input_offset has the +128)
    geom = (p.stride_h, p.stride_w, p.dilation_h, p.dilation_w, p.pad_top, p.pad_left,
            p.out_h, p.out_w)
    if p.kind == "conv2d":
        acc = mac.conv2d_acc(x, packed, p.bias, p.input_offset, *geom, p.groups)
    elif p.kind == "depthwise":
        acc = mac.depthwise_conv2d_acc(x, packed, p.bias, p.input_offset, *geom,
                                       p.depth_multiplier)
    else:
        acc = mac.fully_connected_acc(x.reshape(p.batch, p.depth), packed, p.bias,
                                      p.input_offset)
    if p.w_zp is not None:
        # sum (x - x_zp)(w - w_zp) = sum (x - x_zp) w - w_zp * sum (x - x_zp); the padding
        # (x_zp) adds nothing to either sum
        if p.kind == "fc":
            s = (x.reshape(p.batch, p.depth).astype(np.int64) + p.input_offset).sum(
                axis=1, keepdims=True)
        elif p.kind == "conv2d":
            s = mac.conv2d_acc(x, ones, None, p.input_offset, *geom, p.groups)
            s = np.repeat(s.astype(np.int64), acc.shape[-1] // p.groups, axis=-1)
        else:
            s = mac.depthwise_conv2d_acc(x, ones, None, p.input_offset, *geom, 1)
            s = np.repeat(s.astype(np.int64), p.depth_multiplier, axis=-1)
        acc = (acc.astype(np.int64) - p.w_zp * s).astype(np.int32)
    y = requant_float32_half_even(acc, p.scale) + p.out_zp
    y = _saturate(y, p.lo, p.hi, p.out_dtype)
    if p.kind == "fc":
        y = y.reshape(p.out_shape)
    return [y], acc


@kernel("ort_quantize")
def run_quantize(layer, inputs):
    p = layer.params
    return [quantize_float32_half_even(inputs[0], p.scale, p.zero_point, p.lo, p.hi)
            .astype(p.out_dtype)], None


@kernel("ort_dequantize")
def run_dequantize(layer, inputs):
    p = layer.params
    return [dequantize_float32(inputs[0], p.scale, p.zero_point)], None


@kernel("ort_global_avg_pool")
def run_global_avg_pool(layer, inputs):
    p = layer.params
    x = inputs[0]
    acc = x.astype(np.int64).sum(axis=(1, 2), keepdims=p.keep_dims) + p.bias
    y = requant_float32_half_even(acc, p.scale) + p.out_zp
    return [_saturate(y, p.lo, p.hi, x.dtype)], acc.astype(np.int32)


@numba.njit(cache=True)
def _avg_pool_f32(xf, kh, kw, sh, sw, pt, pl, oh, ow, include_pad, out, h_pad=1 << 30,
                  w_pad=1 << 30):
    """Window sums row by row in float32, divided by the count: the clipped window, or with
    ``include_pad`` the window clipped to the padded extents ``h_pad`` x ``w_pad`` (MLAS,
    float AveragePool: a ceil_mode window past the padding counts less) -- QLinearAveragePool
    leaves them unbounded (the kernel size)."""
    n_, h, w, c = xf.shape
    for n in range(n_):
        for oy in range(oh):
            h0 = oy * sh - pt
            hp = min(h0 + kh, h_pad) - h0
            h1 = min(h0 + kh, h)
            h0 = max(h0, 0)
            for ox in range(ow):
                w0 = ox * sw - pl
                wp = min(w0 + kw, w_pad) - w0
                w1 = min(w0 + kw, w)
                w0 = max(w0, 0)
                for ch in range(c):
                    s = np.float32(0.0)
                    for yy in range(h0, h1):
                        for xx in range(w0, w1):
                            s = np.float32(s + xf[n, yy, xx, ch])
                    cnt = hp * wp if include_pad else (h1 - h0) * (w1 - w0)
                    out[n, oy, ox, ch] = np.float32(s / np.float32(cnt))


@numba.njit(cache=True)
def _avg_pool_mlas_vector(xf, kh, kw, sh, sw, pt, pl, pr, oh, ow, include_pad, out):
    """MlasPool2DVectorKernel (pooling.cpp, float AveragePool before opset 19, stride_w <= 2):
    per output row the column sums over the window's rows (top to bottom, from the first
    row), padded with zeros left and right, then per output the sum of ``kw`` column sums
    left to right, divided by ``kh * kw`` or by (input columns in the window) * rows."""
    n_, h, w, c = xf.shape
    buf = np.zeros(pl + w + pr + kw + 4, np.float32)
    for n in range(n_):
        for ch in range(c):
            for oy in range(oh):
                st = oy * sh - pt
                en = min(st + kh, h)
                if st < 0 or st >= h:  # size_t wrap-around in MLAS
                    st = 0
                rows = en - st
                for xx in range(w):
                    r = xf[n, st, xx, ch]
                    for yy in range(st + 1, en):
                        r = np.float32(r + xf[n, yy, xx, ch])
                    buf[pl + xx] = r
                for ox in range(ow):
                    j = ox * sw
                    acc = buf[j]
                    for t in range(1, kw):
                        acc = np.float32(acc + buf[j + t])
                    if include_pad:
                        d = np.float32(kh * kw)
                    else:
                        d = np.float32(max((min(j + kw, pl + w) - max(j, pl)) * rows, 1))
                    out[n, oy, ox, ch] = np.float32(acc / d)


@kernel("ort_avg_pool")
def run_avg_pool(layer, inputs):
    p = layer.params
    x = inputs[0]
    xf = dequantize_float32(x, p.x_scale, p.x_zp)
    yf = np.empty((x.shape[0], p.out_h, p.out_w, x.shape[3]), np.float32)
    _avg_pool_f32(xf, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_top, p.pad_left,
                  p.out_h, p.out_w, p.count_include_pad, yf)
    # quantize_value in qlinear_pool.cc: nearbyintf(y / y_scale + y_zero_point), saturated
    v = (yf / np.float32(p.y_scale) + np.float32(p.y_zp)).astype(np.float32)
    return [_saturate(np.rint(np.clip(v, -2.0**40, 2.0**40)).astype(np.int64), p.lo, p.hi,
                      x.dtype)], None


@kernel("ort_max_pool")
def run_max_pool(layer, inputs):
    p = layer.params
    x = inputs[0]
    n, h, w, c = x.shape
    lo = np.iinfo(x.dtype).min
    ph = max((p.out_h - 1) * p.stride_h + (p.kernel_h - 1) * p.dilation_h + 1 - h - p.pad_top, 0)
    pw = max((p.out_w - 1) * p.stride_w + (p.kernel_w - 1) * p.dilation_w + 1 - w - p.pad_left, 0)
    xp = np.pad(x, ((0, 0), (p.pad_top, ph), (p.pad_left, pw), (0, 0)), constant_values=lo)
    y = np.full((n, p.out_h, p.out_w, c), lo, x.dtype)
    for i in range(p.kernel_h):
        for j in range(p.kernel_w):
            y0, x0 = i * p.dilation_h, j * p.dilation_w
            win = xp[:, y0:y0 + (p.out_h - 1) * p.stride_h + 1:p.stride_h,
                     x0:x0 + (p.out_w - 1) * p.stride_w + 1:p.stride_w, :]
            np.maximum(y, win, out=y)
    return [y], None


def _operands(p, inputs) -> list:
    """QLinearAdd / QLinearMul's two operands: a constant one comes from the parameters."""
    ins = list(inputs)
    if p.const is not None:
        ins.insert(p.const_pos, p.const)
    return ins


@kernel("ort_add")
def run_add(layer, inputs):
    p = layer.params
    a, b = _operands(p, inputs)
    af, bf = a.astype(np.float32), b.astype(np.float32)
    f32 = np.float32
    # MLAS's B operand enters the inner fma (in the IsScalarB path GCC contracts
    # fixed + b * ratio_b into one fma as well); when a is the broadcast operand, ORT's
    # broadcaster swaps the inputs and a is MLAS's B
    if p.scalar == "a":
        v = fma_float32(bf, p.ratio_b, fma_float32(af, p.ratio_a, p.fixed))
    else:
        v = fma_float32(af, p.ratio_a, fma_float32(bf, p.ratio_b, p.fixed))
    del f32
    v = np.broadcast_to(v, np.broadcast_shapes(a.shape, b.shape))
    v = np.rint(np.clip(v, -2.0**40, 2.0**40)).astype(np.int64)
    return [_saturate(v, p.lo, p.hi, a.dtype)], None


@kernel("ort_concat")
def run_concat(layer, inputs):
    p = layer.params
    parts = [x if t is None else t[x.view(np.uint8)] for x, t in zip(inputs, p.tables)]
    return [np.concatenate(parts, axis=p.axis)], None


@numba.njit(cache=True)
def _softmax_rows(idx, table, y_scale_inv, y_zp, signed, out):
    rows, d = idx.shape
    for r in range(rows):
        vsum = np.float32(0.0)
        for k in range(d):
            vsum = np.float32(vsum + table[idx[r, k]])
        if vsum == 0:
            continue
        for k in range(d):
            vt = table[idx[r, k]]
            q = np.int64(np.rint(np.float32(np.float32(vt * y_scale_inv) / vsum))) + y_zp
            # saturated to the output type (onnxruntime 1.32 gives 127 where the older
            # source's static_cast<int8_t>(128) would wrap to -128: checked by the tests)
            lo, hi = (-128, 127) if signed else (0, 255)
            out[r, k] = min(max(q, lo), hi)


@kernel("ort_softmax")
def run_softmax(layer, inputs):
    p = layer.params
    x = inputs[0]
    d = x.shape[-1]
    x2 = x.reshape(-1, d).astype(np.int64)
    xmax = x2.max(axis=1, keepdims=True)
    if p.signed:  # vx = uint8(127 - xmax + x): the table holds E(i) at uint8(i - 128)
        idx = (127 - xmax + x2) & 255
    else:         # the table shifted by 255 - xmax
        idx = 255 - xmax + x2
    out = np.zeros(x2.shape, np.int64)
    _softmax_rows(idx, p.table, np.float32(p.y_scale_inv), np.int64(p.y_zp), p.signed, out)
    return [out.astype(x.dtype).reshape(x.shape)], None


@kernel("ort_reshape")
def run_reshape(layer, inputs):
    return [inputs[0].reshape(layer.params.shape)], None


@kernel("ort_transpose")
def run_transpose(layer, inputs):
    return [np.ascontiguousarray(np.transpose(inputs[0], layer.params.perm))], None


@kernel("ort_float")
def run_float(layer, inputs):
    """IEEE float32 elementwise ops, left to right (numpy float32 arithmetic is IEEE's)."""
    p = layer.params
    xs = [np.asarray(x, np.float32) for x in _operands(p, inputs)]
    if p.op == "add":
        y = xs[0]
        for x in xs[1:]:
            y = (y + x).astype(np.float32)
    elif p.op == "mul":
        y = xs[0]
        for x in xs[1:]:
            y = (y * x).astype(np.float32)
    elif p.op == "relu":
        y = np.maximum(xs[0], np.float32(0))
    else:  # clip
        y = np.minimum(np.maximum(xs[0], np.float32(p.lo)), np.float32(p.hi))
    return [np.ascontiguousarray(y, np.float32)], None


@kernel("ort_float_avg_pool")
def run_float_avg_pool(layer, inputs):
    """Float AveragePool (ORT runs it in float when its input is a float op's output): ORT's
    generic pool (AveragePool-19, and ceil_mode with count_include_pad), the window sums of
    QLinearAveragePool left in float32; or MLAS's float pooling (``mlas``: AveragePool
    before opset 19 otherwise)."""
    p = layer.params
    x = np.asarray(inputs[0], np.float32)
    y = np.empty((x.shape[0], p.out_h, p.out_w, x.shape[3]), np.float32)
    h, w = x.shape[1], x.shape[2]
    if p.mlas and (p.kernel_h, p.kernel_w, p.stride_h, p.stride_w) == (h, w, 1, 1) and not (
            p.pad_top or p.pad_left or p.pad_bottom or p.pad_right):
        # MlasPoolGlobalKernel: four lane sums, ((l0 + l2) + (l1 + l3)), then the tail
        v = x.transpose(0, 3, 1, 2).reshape(x.shape[0], x.shape[3], h * w)
        n4 = (h * w) // 4 * 4
        lanes = np.zeros(v.shape[:2] + (4,), np.float32)
        for i in range(0, n4, 4):
            lanes = (lanes + v[:, :, i:i + 4]).astype(np.float32)
        r = ((lanes[..., 0] + lanes[..., 2]).astype(np.float32)
             + (lanes[..., 1] + lanes[..., 3]).astype(np.float32)).astype(np.float32)
        for i in range(n4, h * w):
            r = (r + v[:, :, i]).astype(np.float32)
        y[:, 0, 0, :] = (r / np.float32(h * w)).astype(np.float32)
    elif p.mlas and p.stride_w <= 2 and max(p.kernel_h, p.kernel_w) <= 32 and \
            p.pad_left + p.pad_right + w <= 2048 - 3:
        _avg_pool_mlas_vector(x, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_top,
                              p.pad_left, p.pad_right, p.out_h, p.out_w, p.count_include_pad,
                              y)
    elif p.mlas:  # MlasPool2DKernel: row by row from 0, the kernel size with padding
        # (MlasPool's dispatch: the vector kernel takes strides <= 2, kernels <= 32 and rows
        # that fit its 2048-float buffer)
        _avg_pool_f32(x, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_top,
                      p.pad_left, p.out_h, p.out_w, p.count_include_pad, y)
    else:
        _avg_pool_f32(x, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_top,
                      p.pad_left, p.out_h, p.out_w, p.count_include_pad, y,
                      x.shape[1] + p.pad_bottom, x.shape[2] + p.pad_right)
    return [y], None


@kernel("ort_table")
def run_table(layer, inputs):
    """QLinearLeakyRelu / QLinearSigmoid: the 256-entry table indexed by the input byte."""
    x = inputs[0]
    return [layer.params.table[x.view(np.uint8)]], None


@kernel("ort_mul")
def run_mul(layer, inputs):
    p = layer.params
    a, b = _operands(p, inputs)
    prod = (a.astype(np.int64) - p.a_zp) * (b.astype(np.int64) - p.b_zp)  # exact (int16 x int16)
    v = (prod.astype(np.float32) * np.float32(p.ratio)).astype(np.float32)
    v = (v + np.float32(p.c_zp)).astype(np.float32)
    v = np.rint(np.clip(v, -2.0**40, 2.0**40)).astype(np.int64)
    return [_saturate(v, p.lo, p.hi, a.dtype)], None


@kernel("ort_resize")
def run_resize(layer, inputs):
    p = layer.params
    return [np.ascontiguousarray(inputs[0][:, p.rows][:, :, p.cols])], None


@kernel("ort_resize_linear")
def run_resize_linear(layer, inputs):
    """Bilinear Resize as ORT's CPU kernel runs it (hwsim.params_onnxrt.OrtResizeLinearParams)."""
    p = layer.params
    x = inputs[0]
    ah, aw = p.axes

    def take(ih, iw):
        return np.take(np.take(x, ih, axis=ah), iw, axis=aw)

    shape = [1] * x.ndim
    shape[ah] = -1
    col = [1] * x.ndim
    col[aw] = -1
    w1h, w2h = p.w1_h.reshape(shape), p.w2_h.reshape(shape)
    w1w, w2w = p.w1_w.reshape(col), p.w2_w.reshape(col)
    x11, x21 = take(p.i1_h, p.i1_w), take(p.i1_h, p.i2_w)
    x12, x22 = take(p.i2_h, p.i1_w), take(p.i2_h, p.i2_w)
    if p.integer:  # int32 sums of 20-bit weights, C++ division (toward zero)
        acc = (w2w * w2h * x11.astype(np.int64) + w1w * w2h * x21.astype(np.int64)
               + w2w * w1h * x12.astype(np.int64) + w1w * w1h * x22.astype(np.int64))
        y = np.sign(acc) * (np.abs(acc) >> 20)
        return [y.astype(x.dtype)], None
    f32 = np.float32
    c11, c21 = (w2w * w2h).astype(f32), (w1w * w2h).astype(f32)
    c12, c22 = (w2w * w1h).astype(f32), (w1w * w1h).astype(f32)
    y = (c11 * x11.astype(f32)).astype(f32) + (c21 * x21.astype(f32)).astype(f32)
    y = y.astype(f32) + (c12 * x12.astype(f32)).astype(f32)
    y = y.astype(f32) + (c22 * x22.astype(f32)).astype(f32)
    y = y.astype(f32)
    if x.dtype != np.dtype(f32):  # static_cast<T>: truncation (the value lies in T's range)
        y = np.trunc(y)
    return [y.astype(x.dtype)], None


@kernel("ort_resize_cubic")
def run_resize_cubic(layer, inputs):
    """Bicubic Resize of float32 NHWC data (hwsim.params_onnxrt.OrtResizeCubicParams)."""
    p = layer.params
    x = inputs[0]
    f32 = np.float32
    v = np.zeros((x.shape[0], len(p.rows), x.shape[3]), f32)
    for k in range(4):  # the cached 1-D interpolations along W, left to right
        d = x[:, p.rows, p.cols[:, k], :]
        v = (v + (p.wx[:, k][None, :, None] * d).astype(f32)).astype(f32)
    y = np.zeros((x.shape[0],) + p.entry.shape[:2] + (x.shape[3],), f32)
    for i in range(4):
        t = (v[:, p.entry[:, :, i], :] * p.cy[:, i][None, :, None, None]).astype(f32)
        y = (y + (t / p.ysum[None, :, None, None]).astype(f32)).astype(f32)
    return [y], None
