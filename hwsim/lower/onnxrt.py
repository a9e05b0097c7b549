"""Lowering of ONNX Runtime's quantized ops (the ``ORT_*`` ops hwsim.frontends.onnx_quant
emits for QDQ and QOperator ONNX models) into layers of hwsim.kernels.onnxrt.

Every constant ORT derives at run time is derived here once, in ORT's float32 order:

* QLinearConv / QGemm: ``scale[c] = x_scale * w_scale[c] / y_scale`` (QGemm:
  ``alpha * a_scale * b_scale[c] / y_scale``), each operation one float32 rounding
  (qlinearconv.cc, quant_gemm.cc); the layer computes
  ``saturate(round_half_even(float32(acc) * scale[c]) + y_zp)`` (MlasRequantizeOutput).
* QLinearGlobalAveragePool: ``scale = x_scale / (y_scale * float32(image_size))``,
  ``bias = -x_zp * image_size`` (qlgavgpool.cpp); QLinearAveragePool whose window is the whole
  image without padding falls back to it, as ORT does (qlinear_pool.cc).
* QLinearAdd (x86, AVX2): ``ratio_a = a_scale / c_scale``, ``ratio_b = b_scale / c_scale``,
  ``fixed = float(c_zp) - (ratio_a * a_zp + ratio_b * b_zp)`` (qladd_avx2.cpp).
* QLinearConcat: per input, a copy when scale and zero point equal the output's, else the
  256-entry table ``QuantizeLinear(x_scale * (x - x_zp))`` (qlinear_lookup_table.cc).
* QLinearSoftmax: the float32 exp table of QlinearBuildLookupTableUint32 and
  ``floor(1 / y_scale)`` (qlinear_softmax.cc).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Op
from ..params import (ConvParams, DepthwiseConvParams, FullyConnectedParams, RequantParams)
from ..params_onnxrt import (OrtAddParams, OrtAvgPoolParams, OrtConcatParams,
                             OrtDequantizeParams, OrtFloatParams, OrtGlobalPoolParams,
                             OrtMacParams, OrtMaxPoolParams, OrtMulParams, OrtQuantizeParams,
                             OrtResizeCubicParams, OrtResizeLinearParams, OrtResizeParams,
                             OrtShapeParams, OrtSoftmaxParams, OrtTableParams)
from ..program import Layer
from ..registry import lowering
from ..vocab import QRANGE
from .context import LoweringContext, derive_requant

F32 = np.float32


def _range(ctx: LoweringContext, op: Op, t: int) -> tuple[int, int, str]:
    dt = np.dtype(ctx.tensor(t).dtype)
    if dt not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise ctx.error(op, f"tensor '{ctx.tensor(t).name}' is {dt}; ONNX quantized layers "
                            f"take int8 or uint8")
    lo, hi = QRANGE[dt]
    return lo, hi, dt.name


def _layer(op: Op, kernel: str, params, inputs=None, ir_op: str | None = None, macs: int = 0,
           has_acc: bool = False) -> Layer:
    return Layer(index=op.index, op=ir_op or op.type, kernel=kernel,
                 inputs=list(op.inputs[:1]) if inputs is None else inputs,
                 outputs=list(op.outputs), params=params, macs=macs, has_acc=has_acc)


def _mac_scale(x_scale, w_scale, y_scale, alpha=None) -> np.ndarray:
    w = np.atleast_1d(np.asarray(w_scale, F32))
    if alpha is None:
        return (F32(x_scale) * w / F32(y_scale)).astype(F32)
    return ((F32(alpha) * F32(x_scale)) * w / F32(y_scale)).astype(F32)


def _check_scale(ctx, op, scale) -> None:
    """ORT's float32 rescale must be a finite positive float32 (a tiny y_scale overflows it)."""
    scale = np.asarray(scale, F32)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ctx.error(op, f"the float32 rescale x_scale * w_scale / y_scale is "
                            f"{scale.reshape(-1)[:4].tolist()}: not a finite float > 0")


def _weights_and_zp(ctx, op, w, ndim: int, cout_axis: int):
    """int8 weights and their zero point per output channel (int64, None when all are 0).
    uint8 weights enter as ``w - 128`` with the zero point ``- 128``: only ``w - w_zp``
    counts, exactly."""
    a = op.attrs
    if w.dtype not in (np.dtype(np.int8), np.dtype(np.uint8)) or w.ndim != ndim:
        raise ctx.error(op, f"weights {w.dtype} {list(w.shape)}: {ndim}-D int8 or uint8 "
                            f"expected")
    wz = np.atleast_1d(np.asarray(a.get("w_zp", 0))).astype(np.int64).reshape(-1)
    if w.dtype == np.dtype(np.uint8):
        w, wz = (w.astype(np.int16) - 128).astype(np.int8), wz - 128
    wz = np.broadcast_to(wz, (w.shape[cout_axis],)).copy()
    return w, (wz if np.any(wz != 0) else None)


def _mac_common(ctx: LoweringContext, op: Op):
    x_i, y_i = op.inputs[0], op.outputs[0]
    a = op.attrs
    xdt = np.dtype(ctx.tensor(x_i).dtype)
    _range(ctx, op, x_i)
    lo, hi, odt = _range(ctx, op, y_i)
    in_u8 = xdt == np.dtype(np.uint8)
    offset = (128 if in_u8 else 0) - int(a["x_zp"])
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    bias = None if b_i < 0 else ctx.const(op, b_i).astype(np.int32).reshape(-1)
    return a, in_u8, offset, bias, lo, hi, odt


def _int8_requant(ctx: LoweringContext, op: Op, scale, a, lo: int, hi: int) -> RequantParams:
    """The requantization of an int8 -> int8 QLinearConv/QGemm as a MAC layer's: the float32
    scheme with ORT's float32 scales (the engine, and a config whose unit is float32: the
    same bits, so legalization finds it exact), or the config's own unit derived from those
    scales (its notes say what it approximates)."""
    reals = np.atleast_1d(np.asarray(scale, F32)).astype(np.float64)
    if ctx.config is None:
        d = derive_requant(reals, "float32")
    else:
        d = ctx.requant_params(reals, hardware=True)
    return RequantParams(**d._asdict(), out_zp=int(a["y_zp"]), act_min=lo, act_max=hi)


def _int8_layer(in_u8: bool, odt: str) -> bool:
    """int8 activations in and out: the layer is an ordinary MAC layer (the engine's conv2d /
    depthwise / FC kernels with the float32 requant scheme), which the array can run."""
    return not in_u8 and odt == "int8"


@lowering("ORT_CONV")
def lower_conv(op: Op, ctx: LoweringContext):
    a, in_u8, offset, bias, lo, hi, odt = _mac_common(ctx, op)
    _check_scale(ctx, op, _mac_scale(a["x_scale"], a["w_scale"], a["y_scale"]))
    w, wz = _weights_and_zp(ctx, op, ctx.const(op, op.inputs[1]), 4, 0)  # ONNX OIHW
    xs, ys = ctx.tensor(op.inputs[0]).shape, ctx.tensor(op.outputs[0]).shape
    cout, cin_g, kh, kw = w.shape
    group = int(a.get("group", 1))
    scale = _mac_scale(a["x_scale"], a["w_scale"], a["y_scale"])
    pads = list(a["pads"])
    geom = dict(stride_h=int(a["strides"][0]), stride_w=int(a["strides"][1]),
                dilation_h=int(a["dilations"][0]), dilation_w=int(a["dilations"][1]),
                pad_top=int(pads[0]), pad_left=int(pads[1]), out_h=int(ys[1]), out_w=int(ys[2]))
    macs = int(np.prod(ys)) * kh * kw * cin_g
    if _int8_layer(in_u8, odt) and wz is None:
        mac = dict(bias=bias, input_offset=offset, acc_int64=False,
                   requant=_int8_requant(ctx, op, scale, a, lo, hi),
                   accumulator=ctx.accumulator(), **geom)
        if group > 1 and cin_g == 1 and group == xs[3]:
            params = DepthwiseConvParams(weights=np.ascontiguousarray(w.transpose(1, 2, 3, 0)),
                                         depth_multiplier=cout // group, **mac)
            return _layer(op, "depthwise_conv2d", params, ir_op="DEPTHWISE_CONV_2D",
                          macs=macs, has_acc=True)
        params = ConvParams(weights=np.ascontiguousarray(w.transpose(0, 2, 3, 1)),
                            groups=group, **mac)
        return _layer(op, "conv2d", params, ir_op="CONV_2D", macs=macs, has_acc=True)
    common = dict(bias=bias, input_offset=offset, in_uint8=in_u8, scale=scale,
                  out_zp=int(a["y_zp"]), lo=lo, hi=hi, out_dtype=odt, w_zp=wz, **geom)
    if group > 1 and cin_g == 1 and group == xs[3]:
        params = OrtMacParams(kind="depthwise", weights=np.ascontiguousarray(
            w.transpose(1, 2, 3, 0)), depth_multiplier=cout // group, **common)
        ir_op = "DEPTHWISE_CONV_2D"
    else:
        params = OrtMacParams(kind="conv2d", weights=np.ascontiguousarray(
            w.transpose(0, 2, 3, 1)), groups=group, **common)
        ir_op = "CONV_2D"
    return _layer(op, "ort_mac", params, ir_op=ir_op, macs=macs, has_acc=True)


@lowering("ORT_FC")
def lower_fc(op: Op, ctx: LoweringContext):
    a, in_u8, offset, bias, lo, hi, odt = _mac_common(ctx, op)
    _check_scale(ctx, op, _mac_scale(a["x_scale"], a["w_scale"], a["y_scale"], a.get("alpha")))
    w = ctx.const(op, op.inputs[1])  # ONNX B: [K, N], or [N, K] with transB
    w, wz = _weights_and_zp(ctx, op, w if a.get("trans_b", 0) or w.ndim != 2 else w.T, 2, 0)
    cout, k = w.shape
    xs, ys = ctx.tensor(op.inputs[0]).shape, ctx.tensor(op.outputs[0]).shape
    batch = int(np.prod(xs)) // k
    scale = _mac_scale(a["x_scale"], a["w_scale"], a["y_scale"], a.get("alpha"))
    if _int8_layer(in_u8, odt) and wz is None:
        params = FullyConnectedParams(
            weights=np.ascontiguousarray(w), bias=bias, input_offset=offset, acc_int64=False,
            requant=_int8_requant(ctx, op, scale, a, lo, hi), accumulator=ctx.accumulator(),
            batch=batch, depth=k, out_shape=tuple(ys))
        return _layer(op, "fully_connected", params, ir_op="FULLY_CONNECTED",
                      macs=batch * cout * k, has_acc=True)
    params = OrtMacParams(kind="fc", weights=np.ascontiguousarray(w), bias=bias,
                          input_offset=offset, in_uint8=in_u8, scale=scale,
                          out_zp=int(a["y_zp"]), lo=lo, hi=hi, out_dtype=odt, batch=batch,
                          depth=k, out_shape=tuple(ys), w_zp=wz)
    return _layer(op, "ort_mac", params, ir_op="FULLY_CONNECTED", macs=batch * cout * k,
                  has_acc=True)


@lowering("ORT_QUANTIZE")
def lower_quantize(op: Op, ctx: LoweringContext):
    lo, hi, odt = _range(ctx, op, op.outputs[0])
    a = op.attrs
    return _layer(op, "ort_quantize", OrtQuantizeParams(
        scale=F32(a["scale"]), zero_point=int(a["zero_point"]), lo=lo, hi=hi, out_dtype=odt))


@lowering("ORT_DEQUANTIZE")
def lower_dequantize(op: Op, ctx: LoweringContext):
    _range(ctx, op, op.inputs[0])
    a = op.attrs
    return _layer(op, "ort_dequantize", OrtDequantizeParams(
        scale=F32(a["scale"]), zero_point=int(a["zero_point"])))


def _global_pool(ctx, op, image_size: int, keep_dims: bool = True):
    a = op.attrs
    lo, hi, _ = _range(ctx, op, op.outputs[0])
    scale = F32(F32(a["x_scale"]) / (F32(a["y_scale"]) * F32(image_size)))
    if image_size >= 0x1000000 or not 2.0**-32 <= scale < 256.0:
        raise ctx.error(op, f"average of {image_size} values with scale {scale:.6g}: outside "
                            f"the range onnxruntime computes (MLAS refuses it)")
    return OrtGlobalPoolParams(bias=-int(a["x_zp"]) * image_size, scale=scale,
                               out_zp=int(a["y_zp"]), lo=lo, hi=hi, keep_dims=keep_dims)


@lowering("ORT_GLOBAL_AVG_POOL")
def lower_global_avg_pool(op: Op, ctx: LoweringContext):
    _, h, w, _ = ctx.tensor(op.inputs[0]).shape
    return _layer(op, "ort_global_avg_pool", _global_pool(ctx, op, h * w), ir_op="MEAN")


@lowering("ORT_FLOAT_AVG_POOL")
def lower_float_avg_pool(op: Op, ctx: LoweringContext):
    a = op.attrs
    _, oh, ow, _ = ctx.tensor(op.outputs[0]).shape
    params = OrtAvgPoolParams(
        x_scale=F32(1), x_zp=0, y_scale=F32(1), y_zp=0, lo=0, hi=0, kernel_h=int(a["kernel"][0]),
        kernel_w=int(a["kernel"][1]), stride_h=int(a["strides"][0]),
        stride_w=int(a["strides"][1]), pad_top=int(a["pads"][0]), pad_left=int(a["pads"][1]),
        out_h=int(oh), out_w=int(ow), count_include_pad=bool(a.get("count_include_pad", 0)),
        pad_bottom=int(a.get("pads_end", [0, 0])[0]), pad_right=int(a.get("pads_end", [0, 0])[1]),
        mlas=bool(a.get("mlas", False)))
    return _layer(op, "ort_float_avg_pool", params, ir_op="ORT_FLOAT_AVERAGE_POOL")


@lowering("ORT_AVG_POOL")
def lower_avg_pool(op: Op, ctx: LoweringContext):
    a = op.attrs
    _, h, w, _ = ctx.tensor(op.inputs[0]).shape
    _, oh, ow, _ = ctx.tensor(op.outputs[0]).shape
    kh, kw = a["kernel"]
    if (kh, kw) == (h, w) and not any(a["pads"]):
        # qlinear_pool.cc: a window over the whole image is QLinearGlobalAveragePool
        return _layer(op, "ort_global_avg_pool", _global_pool(ctx, op, h * w),
                      ir_op="AVERAGE_POOL_2D")
    lo, hi, _ = _range(ctx, op, op.outputs[0])
    params = OrtAvgPoolParams(
        x_scale=F32(a["x_scale"]), x_zp=int(a["x_zp"]), y_scale=F32(a["y_scale"]),
        y_zp=int(a["y_zp"]), lo=lo, hi=hi, kernel_h=int(kh), kernel_w=int(kw),
        stride_h=int(a["strides"][0]), stride_w=int(a["strides"][1]),
        pad_top=int(a["pads"][0]), pad_left=int(a["pads"][1]), out_h=int(oh), out_w=int(ow),
        count_include_pad=bool(a.get("count_include_pad", 0)))
    return _layer(op, "ort_avg_pool", params, ir_op="AVERAGE_POOL_2D")


@lowering("ORT_MAX_POOL")
def lower_max_pool(op: Op, ctx: LoweringContext):
    a = op.attrs
    _range(ctx, op, op.inputs[0])
    _, oh, ow, _ = ctx.tensor(op.outputs[0]).shape
    params = OrtMaxPoolParams(
        kernel_h=int(a["kernel"][0]), kernel_w=int(a["kernel"][1]),
        stride_h=int(a["strides"][0]), stride_w=int(a["strides"][1]),
        dilation_h=int(a["dilations"][0]), dilation_w=int(a["dilations"][1]),
        pad_top=int(a["pads"][0]), pad_left=int(a["pads"][1]), out_h=int(oh), out_w=int(ow))
    return _layer(op, "ort_max_pool", params, ir_op="MAX_POOL_2D")


@lowering("ORT_ADD")
def lower_add(op: Op, ctx: LoweringContext):
    a = op.attrs
    lo, hi, _ = _range(ctx, op, op.outputs[0])
    from ..arith import fma_float32
    sa, sb, sc = F32(a["a_scale"]), F32(a["b_scale"]), F32(a["y_scale"])
    ra, rb = F32(sa / sc), F32(sb / sc)
    za, zb = F32(int(a["a_zp"])), F32(int(a["b_zp"]))
    # (float)ZeroPointC - (ScaleRatio_AC * ZeroPointA + ScaleRatio_BC * ZeroPointB) as GCC
    # compiles it (contracted: fma(ratio_A, zp_A, ratio_B * zp_B)); MLAS's A is ORT's second
    # input when the first is the one broadcast (the broadcaster swaps them)
    if a.get("scalar", "") == "a":
        inner = fma_float32(rb, zb, F32(ra * za))
    else:
        inner = fma_float32(ra, za, F32(rb * zb))
    fixed = F32(F32(int(a["y_zp"])) - F32(inner))
    ins, const, pos = _binary_inputs(ctx, op)
    return _layer(op, "ort_add", OrtAddParams(ratio_a=ra, ratio_b=rb, fixed=fixed, lo=lo, hi=hi,
                                              scalar=str(a.get("scalar", "")), const=const,
                                              const_pos=pos),
                  inputs=ins, ir_op="ADD")


def _binary_inputs(ctx: LoweringContext, op: Op):
    """A QLinearAdd / QLinearMul's run-time inputs, and its constant operand (an initializer)
    with its place, which the layer carries in its parameters."""
    ins = list(op.inputs[:2])
    consts = [k for k, t in enumerate(ins) if ctx.is_const(t)]
    if not consts:
        return ins, None, -1
    if len(consts) == 2:
        raise ctx.error(op, "both inputs are constants")
    k = consts[0]
    return [t for j, t in enumerate(ins) if j != k], np.ascontiguousarray(ctx.const(op, ins[k])), k


def requant_table(x_scale, x_zp: int, y_scale, y_zp: int, dtype) -> np.ndarray:
    """QlinearBuildLookupTable with the identity: QuantizeLinear(x_scale * (x - x_zp)) for
    the 256 codes, indexed by the input byte."""
    from ..arith import quantize_float32_half_even
    dt = np.dtype(dtype)
    codes = np.arange(256, dtype=np.uint8).view(dt).astype(np.int64)
    deq = (F32(x_scale) * (codes - int(x_zp)).astype(F32)).astype(F32)
    lo, hi = QRANGE[dt]
    return quantize_float32_half_even(deq, y_scale, y_zp, lo, hi).astype(dt)


@lowering("ORT_CONCAT")
def lower_concat(op: Op, ctx: LoweringContext):
    a = op.attrs
    dt = np.dtype(ctx.tensor(op.outputs[0]).dtype)
    _range(ctx, op, op.outputs[0])
    tables = []
    for s, z in zip(a["in_scales"], a["in_zps"]):
        same = F32(s) == F32(a["y_scale"]) and int(z) == int(a["y_zp"])
        tables.append(None if same else requant_table(s, z, a["y_scale"], a["y_zp"], dt))
    return _layer(op, "ort_concat", OrtConcatParams(axis=int(a["axis"]), tables=tuple(tables)),
                  inputs=list(op.inputs), ir_op="CONCATENATION")


@lowering("ORT_SOFTMAX")
def lower_softmax(op: Op, ctx: LoweringContext):
    a = op.attrs
    lo, hi, odt = _range(ctx, op, op.outputs[0])
    signed = odt == "int8"
    d = int(ctx.tensor(op.inputs[0]).shape[-1])
    xs = float(F32(a["x_scale"]))
    # QlinearBuildLookupTableUint32 (EXP_OUT_DTYPE = float): FLT_MAX / reduce_len in float
    bit_shift = math.log(float(F32(np.finfo(F32).max) / F32(d)))
    bit_shift = max(0.0, bit_shift - 5) / xs
    table = np.zeros(256, F32)
    for i in range(256):
        v = F32(math.exp((float(i) - 255 + bit_shift) * xs))
        table[(i - 128) & 255 if signed else i] = v
    y_scale_inv = F32(math.floor(F32(1.0) / F32(a["y_scale"])))
    return _layer(op, "ort_softmax", OrtSoftmaxParams(table=table, y_scale_inv=y_scale_inv,
                                                      y_zp=int(a["y_zp"]), signed=signed),
                  ir_op="SOFTMAX")


@lowering("ORT_RESHAPE")
def lower_reshape(op: Op, ctx: LoweringContext):
    return _layer(op, "ort_reshape",
                  OrtShapeParams(shape=tuple(ctx.tensor(op.outputs[0]).shape)), ir_op="RESHAPE")


@lowering("ORT_TRANSPOSE")
def lower_transpose(op: Op, ctx: LoweringContext):
    return _layer(op, "ort_transpose", OrtShapeParams(perm=tuple(op.attrs["perm"])),
                  ir_op="TRANSPOSE")


@lowering("ORT_FLOAT")
def lower_float(op: Op, ctx: LoweringContext):
    a = op.attrs
    for t in op.inputs + op.outputs:
        if np.dtype(ctx.tensor(t).dtype) != np.dtype(np.float32):
            raise ctx.error(op, f"tensor '{ctx.tensor(t).name}' is not float32")
    const = a.get("const")
    return _layer(op, "ort_float", OrtFloatParams(op=a["op"], lo=float(a.get("lo", -np.inf)),
                                                  hi=float(a.get("hi", np.inf)), const=const,
                                                  const_pos=int(a.get("const_pos", -1))),
                  inputs=list(op.inputs), ir_op="ORT_FLOAT_" + a["op"].upper())


# MlasLogisticConstants (logistic.cpp): Eigen's rational approximation, as float32
_LOGISTIC = dict(lo=-18.0, hi=18.0, alpha=(4.37031012579801e-11, 1.15627324459942e-07,
                                          6.08574864600143e-05, 8.51377133304701e-03,
                                          2.48287947061529e-01),
                 beta=(6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                       1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01))


def mlas_logistic(x: np.ndarray) -> np.ndarray:
    """MlasComputeLogistic on x86 with FMA3 (MlasLogisticKernelFma3): clamp to [-18, 18],
    p = x * (((a9 x^2 + a7) x^2 + a5) x^2 + a3) x^2 + a1), q likewise with the betas, each
    step one fused multiply-add in float32; then p / q + 0.5 clamped to [0, 1]."""
    from ..arith import fma_float32
    v = np.clip(np.asarray(x, F32), F32(_LOGISTIC["lo"]), F32(_LOGISTIC["hi"])).astype(F32)
    v2 = (v * v).astype(F32)
    a = [F32(c) for c in _LOGISTIC["alpha"]]
    b = [F32(c) for c in _LOGISTIC["beta"]]
    p = fma_float32(v2, a[0], a[1])
    for c in a[2:]:
        p = fma_float32(p, v2, c)
    p = (p * v).astype(F32)
    q = fma_float32(v2, b[0], b[1])
    for c in b[2:]:
        q = fma_float32(q, v2, c)
    return np.clip((p / q).astype(F32) + F32(0.5), F32(0), F32(1)).astype(F32)


def lookup_table(fn, x_scale, x_zp: int, y_scale, y_zp: int, dtype) -> np.ndarray:
    """QlinearBuildLookupTable: QuantizeLinear(fn(x_scale * (x - x_zp))) for the 256 codes,
    indexed by the input byte."""
    from ..arith import quantize_float32_half_even
    dt = np.dtype(dtype)
    codes = np.arange(256, dtype=np.uint8).view(dt).astype(np.int64)
    deq = (F32(x_scale) * (codes - int(x_zp)).astype(F32)).astype(F32)
    lo, hi = QRANGE[dt]
    return quantize_float32_half_even(fn(deq), y_scale, y_zp, lo, hi).astype(dt)


@lowering("ORT_LOOKUP")
def lower_lookup(op: Op, ctx: LoweringContext):
    a = op.attrs
    _range(ctx, op, op.outputs[0])
    dt = np.dtype(ctx.tensor(op.outputs[0]).dtype)
    if a["fn"] == "leaky_relu":
        alpha = F32(a["alpha"])
        fn = lambda v: np.where(v >= 0, v, (alpha * v).astype(F32)).astype(F32)  # noqa: E731
        ir_op = "LEAKY_RELU"
    else:
        fn, ir_op = mlas_logistic, "LOGISTIC"
    table = lookup_table(fn, a["x_scale"], a["x_zp"], a["y_scale"], a["y_zp"], dt)
    return _layer(op, "ort_table", OrtTableParams(table=table), ir_op=ir_op)


@lowering("ORT_MUL")
def lower_mul(op: Op, ctx: LoweringContext):
    a = op.attrs
    lo, hi, _ = _range(ctx, op, op.outputs[0])
    ratio = F32(F32(F32(a["a_scale"]) * F32(a["b_scale"])) / F32(a["y_scale"]))
    ins, const, pos = _binary_inputs(ctx, op)
    return _layer(op, "ort_mul", OrtMulParams(a_zp=int(a["a_zp"]), b_zp=int(a["b_zp"]),
                                              ratio=ratio, c_zp=int(a["y_zp"]), lo=lo, hi=hi,
                                              const=const, const_pos=pos),
                  inputs=ins, ir_op="MUL")


def original_coords(n_in: int, n_out: int, scale: float, ctm: str) -> np.ndarray:
    """ONNX Resize's coordinate transform of each output index, in float32 as ORT computes
    it (upsamplebase.h, GetOriginalCoordinateFromResizedCoordinate)."""
    o = np.arange(n_out, dtype=F32)
    s = F32(scale)
    if ctm == "asymmetric":
        return o / s
    if ctm == "align_corners":
        return o * F32(n_in - 1) / F32(n_out - 1) if n_out > 1 else np.zeros_like(o)
    if ctm == "pytorch_half_pixel":
        return (o + F32(0.5)) / s - F32(0.5) if n_out > 1 else np.zeros_like(o)
    if ctm in ("half_pixel", "tf_half_pixel_for_nn"):
        return (o + F32(0.5)) / s - (F32(0.5) if ctm == "half_pixel" else F32(0))
    raise ValueError(f"coordinate_transformation_mode {ctm!r}")


def nearest_indices(n_in: int, n_out: int, scale: float, ctm: str, mode: str) -> np.ndarray:
    """ONNX Resize (nearest): the input index of each output index, as ORT computes it in
    float32 (upsamplebase.h: the coordinate transform, then the nearest mode), clamped."""
    x = original_coords(n_in, n_out, scale, ctm).astype(np.float64)
    if mode == "round_prefer_floor":
        i = np.where(x == np.floor(x) + 0.5, np.floor(x), np.round(x))
    elif mode == "round_prefer_ceil":
        i = np.where(x == np.floor(x) + 0.5, np.ceil(x), np.round(x))
    elif mode == "floor":
        i = np.floor(x)
    elif mode == "ceil":
        i = np.ceil(x)
    else:
        raise ValueError(f"nearest_mode {mode!r}")
    return np.clip(i, 0, n_in - 1).astype(np.int64)


def linear_table(n_in: int, n_out: int, scale: float, ctm: str, integer: bool):
    """SetupUpsampleBilinear(Integer) along one axis: per output index the two input indices
    and their weights, float32 ``|x - i1|``, ``|x - i2|`` (0.5 each where i1 == i2), or as
    10-bit integers ``|int(x * 1024) - i1 * 1024|`` and 1024 minus it. A scale of 1 maps
    index to index, as ORT does."""
    if F32(scale) == 1:
        x = np.arange(n_out, dtype=F32)
    else:
        x = original_coords(n_in, n_out, scale, ctm)
    x = np.clip(x, F32(0), F32(n_in - 1)).astype(F32)
    i1 = np.minimum(x.astype(np.int64), n_in - 1)  # truncation, x >= 0
    i2 = np.minimum(i1 + 1, n_in - 1)
    same = i1 == i2
    if integer:
        x10 = (x * F32(1024)).astype(np.int64)
        w1 = np.where(same, 512, np.abs(x10 - i1 * 1024)).astype(np.int64)
        w2 = 1024 - w1
    else:
        w1 = np.where(same, F32(0.5), np.abs(x - i1.astype(F32))).astype(F32)
        w2 = np.where(same, F32(0.5), np.abs(x - i2.astype(F32))).astype(F32)
    return i1, i2, w1, w2


def cubic_coeffs(s, a) -> list:
    """GetCubicCoeffs (upsample.cc): Keys' cubic kernel at the four grid points, float32 in
    ORT's order of operations."""
    s, a = F32(abs(F32(s))), F32(a)
    one, t, u, v = F32(1), F32(s + F32(1)), F32(F32(1) - s), F32(F32(2) - s)

    def outer(d):
        return F32(F32(F32(F32(F32(a * d) - F32(5) * a) * d) + F32(8) * a) * d) - F32(4) * a

    def inner(d):
        return F32(F32(F32(F32(F32(a + F32(2)) * d) - F32(a + F32(3))) * d) * d) + one
    return [F32(outer(t)), F32(inner(s)), F32(inner(u)), F32(outer(v))]


def _cubic_axis(o: int, coord, n: int, exclude: bool, a: float):
    """The integer part, the four coefficients and their sum of output index ``o``."""
    i = int(np.floor(coord))
    c = cubic_coeffs(F32(coord - F32(i)), a)
    if not exclude:
        return i, c, F32(1)
    c = [F32(0) if not 0 <= i - 1 + k < n else c[k] for k in range(4)]
    total = F32(0)
    for v in c:
        total = F32(total + v)
    return i, c, total


def _lower_resize_cubic(op: Op, ctx: LoweringContext):
    """Cubic Resize of float data (DQ -> Resize -> Q: ORT's CPU kernel runs cubic on float
    only): ResizeBiCubic's tables, its per-channel cache of 1-D interpolations included."""
    a = op.attrs
    _, h, w, _ = ctx.tensor(op.inputs[0]).shape
    _, oh, ow, _ = ctx.tensor(op.outputs[0]).shape
    sh, sw = a["scales"]
    A, excl = float(a.get("cubic_coeff_a", -0.75)), bool(a.get("exclude_outside", 0))
    try:
        ys = (np.arange(oh, dtype=F32) if F32(sh) == 1 else original_coords(h, oh, sh, a["ctm"]))
        xs = (np.arange(ow, dtype=F32) if F32(sw) == 1 else original_coords(w, ow, sw, a["ctm"]))
    except ValueError as e:
        raise ctx.error(op, f"Resize: {e} is not supported") from None
    yax = [_cubic_axis(y, ys[y], h, excl, A) for y in range(oh)]
    xax = [_cubic_axis(x, xs[x], w, excl, A) for x in range(ow)]
    keys: dict = {}
    rows, cols, wx = [], [], []
    entry = np.zeros((oh, ow, 4), np.int64)
    for y, (yi, _, _) in enumerate(yax):
        for x, (xi, cx, xsum) in enumerate(xax):
            key0 = float(F32(xs[x] - F32(xi)))
            for k in range(4):
                yv = yi - 1 + k
                key = (key0, yv * w + xi - 1)
                if key not in keys:  # the first computation fills ORT's cache entry
                    keys[key] = len(rows)
                    rows.append(min(max(yv, 0), h - 1))
                    cols.append([min(max(xi + j, 0), w - 1) for j in range(-1, 3)])
                    wx.append([F32(c / xsum) for c in cx])
                entry[y, x, k] = keys[key]
    params = OrtResizeCubicParams(
        rows=np.array(rows, np.int64), cols=np.array(cols, np.int64),
        wx=np.array(wx, F32), entry=entry, cy=np.array([c for _, c, _ in yax], F32),
        ysum=np.array([s for _, _, s in yax], F32))
    return _layer(op, "ort_resize_cubic", params, ir_op="ORT_RESIZE_CUBIC")


def _lower_resize_linear(op: Op, ctx: LoweringContext):
    """Linear Resize. Float data (a DequantizeLinear's output: ORT keeps DQ -> Resize -> Q)
    runs UpsampleBilinear over H and W. Integer data (a QOperator model's Resize) runs in
    NHWC (ORT's NHWC transformer moves it there): NhwcUpsampleBilinearInteger, unless the
    height scale is 1, when ORT's dispatch takes the scales [1, 1, sw, 1] for an NCHW
    bilinear resize over (W, C) (upsample.cc: the 2-D check precedes the NHWC one)."""
    a = op.attrs
    x = ctx.tensor(op.inputs[0])
    _, h, w, c = x.shape
    _, oh, ow, _ = ctx.tensor(op.outputs[0]).shape
    sh, sw = a["scales"]
    ctm = a["ctm"]
    is_int = np.dtype(x.dtype) != np.dtype(F32)
    if not is_int:
        axes, dims = (1, 2), ((h, oh, sh), (w, ow, sw))
    elif F32(sh) != 1:
        axes, dims = (1, 2), ((h, oh, sh), (w, ow, sw))
    else:
        axes, dims = (2, 3), ((w, ow, sw), (c, c, 1.0))
    integer = is_int and axes == (1, 2)
    try:
        th = linear_table(*dims[0], ctm, integer)
        tw = linear_table(*dims[1], ctm, integer)
    except ValueError as e:
        raise ctx.error(op, f"Resize: {e} is not supported") from None
    params = OrtResizeLinearParams(axes=axes, i1_h=th[0], i2_h=th[1], w1_h=th[2], w2_h=th[3],
                                   i1_w=tw[0], i2_w=tw[1], w1_w=tw[2], w2_w=tw[3],
                                   integer=integer)
    return _layer(op, "ort_resize_linear", params, ir_op="RESIZE_BILINEAR")


@lowering("ORT_RESIZE")
def lower_resize(op: Op, ctx: LoweringContext):
    a = op.attrs
    if a.get("mode", "nearest") == "linear":
        return _lower_resize_linear(op, ctx)
    if a.get("mode", "nearest") == "cubic":
        if np.dtype(ctx.tensor(op.inputs[0]).dtype) != np.dtype(F32):
            raise ctx.error(op, "cubic Resize of int8 / uint8 data: ORT's CPU kernel runs it "
                                "on float only")
        return _lower_resize_cubic(op, ctx)
    _, h, w, _ = ctx.tensor(op.inputs[0]).shape
    _, oh, ow, _ = ctx.tensor(op.outputs[0]).shape
    try:
        rows = nearest_indices(h, oh, a["scales"][0], a["ctm"], a["nearest_mode"])
        cols = nearest_indices(w, ow, a["scales"][1], a["ctm"], a["nearest_mode"])
    except ValueError as e:
        raise ctx.error(op, f"Resize: {e} is not supported") from None
    return _layer(op, "ort_resize", OrtResizeParams(rows=rows, cols=cols),
                  ir_op="RESIZE_NEAREST_NEIGHBOR")
