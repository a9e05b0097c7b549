"""Lowering of the MAC layers: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED.

TFLite semantics (reference_integer_ops/{conv,depthwise_conv,fully_connected}.h):

    acc[c]  = bias[c] + sum (w[c, k] - 0) * (x[k] + input_offset),   input_offset = -zp_in
    out[c]  = clamp(MultiplyByQuantizedMultiplier(acc[c], M[c], e[c]) + zp_out, act_min, act_max)
    M[c], e[c] = QuantizeMultiplier(double(s_in) * double(s_w[c]) / double(s_out))

Taps that fall into the padding are skipped (they contribute nothing). int16 activations x int8
weights ("16x8") accumulate in the bias type; with int64 bias TFLite requantizes through its
int64 MultiplyByQuantizedMultiplier (multiplier reduced to 16 bits).

FULLY_CONNECTED is the exception: TFLite's fully_connected.cc hands the float scales to the
reference kernels under kReference, which requantize in double precision:
    out[c] = clamp(int32(round(double(acc[c]) * real[c])) + zp_out, act_min, act_max)
(requant scheme ``double_round``, evaluated by an exact integer emulation: real = M * 2^E,
hwsim.kernels.requant.double_round_int). The optimized kernels use the Q31 multiplier instead,
which is one reason TFLite's optimized and reference outputs differ. TFLM
(``semantics="tflm"``) does the same: MultiplyByQuantizedMultiplier of the accumulator's width
(docs/semantics.md).

Under a hardware config (``hwsim.lower.lower(graph, config)``) the MAC layers get the config's
requant unit parameters (``ctx.requant_params``), the nearest supported fused activation, and
the accumulator model (``ctx.accumulator()``, a :class:`hwsim.params.AccumulatorModel`) that
``hwsim.kernels.accumulate`` runs.

Each layer's parameters are a :class:`hwsim.params.ConvParams`, ``DepthwiseConvParams`` or
``FullyConnectedParams``; the kernels pack the weights for their fast loops themselves (their
prepare step, hwsim.kernels.conv).
"""
from __future__ import annotations

import numpy as np

from ..arith import real_to_m_e
from ..ir import Op
from ..params import ConvParams, DepthwiseConvParams, FullyConnectedParams, RequantParams
from ..registry import lowering
from ..vocab import TFLITE_SCHEMES, RequantScheme
from .context import LoweringContext, collapse_reals


def compute_out_size(padding: str, in_size: int, k: int, stride: int, dilation: int) -> int:
    """TFLite ComputeOutSize."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - eff) // stride


def compute_padding(stride: int, dilation: int, in_size: int, k: int, out_size: int) -> int:
    """TFLite ComputePadding: the top/left padding (any odd extra goes bottom/right)."""
    eff = (k - 1) * dilation + 1
    pad = ((out_size - 1) * stride + eff - in_size) // 2
    return max(pad, 0)


def _weights_per_tensor_or_channel(ctx: LoweringContext, op: Op, w_index: int, channels: int,
                                   axis: int) -> np.ndarray:
    wt = ctx.tensor(w_index)
    if wt.quant is None:
        raise ctx.error(op, f"weights tensor {w_index} '{wt.name}' is not quantized (float "
                            f"weights are not supported by the integer engine)")
    if op.type == "CONV_2D" and np.any(wt.quant.zero_points != 0):
        # conv.cc Prepare: TF_LITE_ENSURE_EQ(zero_point[i], 0) for int8 and int16
        raise ctx.error(op, f"weights tensor {w_index} '{wt.name}' has zero points "
                            f"{sorted(set(int(z) for z in wt.quant.zero_points))}; TFLite's "
                            f"CONV_2D requires weight zero points 0 (conv.cc refuses the model)")
    scales = wt.quant.scales.astype(np.float64)
    if len(scales) == 1:
        return np.repeat(scales, channels)
    if len(scales) != channels:
        raise ctx.error(op, f"weights tensor {w_index} has {len(scales)} scales for {channels} "
                            f"output channels")
    return scales


def _requant(ctx: LoweringContext, op: Op, x_index: int, w_scales: np.ndarray, out_index: int,
             acc_int64: bool, double_round: bool = False) -> RequantParams:
    """The requantization of a MAC layer (the hardware unit's under a config): multipliers and
    shifts, the output zero point and the activation clamp.

    TFLite schemes: FULLY_CONNECTED gets double_round with multiplier = M (int64) and
    shift = E such that real = M * 2^E exactly (the double's significand and exponent);
    16x8 layers with an int64 bias get tflite_int64.
    """
    s_in = np.float64(np.float32(ctx.scale(x_index)))
    s_out = np.float64(np.float32(ctx.scale(out_index)))
    reals = s_in * w_scales / s_out
    tflite = ctx.hw_scheme in TFLITE_SCHEMES
    derived = ctx.requant_params(reals)  # (for double_round: the collapse rule and its notes)
    if double_round and tflite:
        # TFLite's reference FULLY_CONNECTED requantizes in double: round(double(acc) * real).
        if len(derived.multiplier) == 1 < len(reals):
            reals = np.array([collapse_reals(reals)[0]])  # == reals[0] when all are equal
        me = [real_to_m_e(float(r)) for r in reals]
        derived = derived._replace(multiplier=np.array([m for m, _ in me], dtype=np.int64),
                                   shift=np.array([e for _, e in me], dtype=np.int64),
                                   scheme=RequantScheme.double_round)
    elif acc_int64 and tflite:
        derived = derived._replace(scheme=RequantScheme.tflite_int64)
    act_min, act_max = ctx.activation_range(op, op.attrs.get("fused_activation_function"),
                                            out_index)
    return RequantParams(**derived._asdict(), out_zp=ctx.output_zero_point(op, out_index),
                         act_min=act_min, act_max=act_max)


def _weights_offset(ctx: LoweringContext, op: Op, w_index: int) -> int:
    """FULLY_CONNECTED's weights_offset (-zero point): TFLite (and TFLM) honour a per-tensor
    weight zero point, ``acc += (w - zp_w)(x - zp_in)`` (reference_integer_ops/
    fully_connected.h, "for backward compatibility"); the per-channel kernels never read it
    (0). DEPTHWISE_CONV_2D always runs the per-channel kernel, so its zero point is ignored
    too (input 3, weight 10 with zero point 5 gives 30). Not on the accelerator: its MAC
    array has no weight offset."""
    wt = ctx.tensor(w_index)
    if op.type != "FULLY_CONNECTED" or len(wt.quant.scales) != 1:
        return 0
    zp = int(wt.quant.zero_points[0])
    if zp and ctx.config is not None:
        raise ctx.error(op, f"weights tensor {w_index} '{wt.name}' has zero point {zp}: the "
                            f"accelerator's MAC array has no weight offset (hwsim run computes "
                            f"it as TFLite does)")
    return -zp


# TensorType codes of the options' quantized_bias_type (schema.fbs): FLOAT32 (0) means unset.
_BIAS_TYPES = {0: None, 2: np.dtype(np.int32), 4: np.dtype(np.int64)}


def _bias_type_16x8(ctx: LoweringContext, op: Op, bias: np.ndarray | None) -> bool:
    """Whether a 16x8 layer accumulates in int64, as TFLite decides it (TFLM: the bias type).

    TFLite REF (conv.cc / fully_connected.cc Prepare and Eval): the options'
    ``quantized_bias_type`` must be unset, INT32 or INT64 and match the bias tensor; INT32
    selects the int32 kernel, anything else the int64 one, which reads an int32 bias as int64:
    past the end of its buffer (a 1x1 conv of [1, 1] with bias [100, 200] on input 3 gives
    [103, 3]). hwsim refuses that model instead of guessing the memory. DEPTHWISE_CONV_2D
    16x8 needs an int64 bias (depthwise_conv.cc). TFLM (fully_connected.cc, conv.cc) follows
    the bias tensor's type.
    """
    name = f"bias tensor {op.inputs[2]}" if bias is not None else "no bias"
    if op.type == "DEPTHWISE_CONV_2D":
        if bias is not None and bias.dtype != np.int64:
            raise ctx.error(op, f"{name} is {bias.dtype}; TFLite's int16 DEPTHWISE_CONV_2D "
                                f"requires an int64 bias (depthwise_conv.cc refuses the model)")
        return True
    if ctx.semantics == "tflm":
        return bias is None or bias.dtype == np.int64
    code = int(op.attrs.get("quantized_bias_type", 0) or 0)
    if code not in _BIAS_TYPES:
        raise ctx.error(op, f"quantized_bias_type {code}: TFLite accepts INT32 (2) or INT64 (4) "
                            f"for int16 {op.type}")
    want = _BIAS_TYPES[code]
    if want is not None and bias is not None and bias.dtype != want:
        raise ctx.error(op, f"{name} is {bias.dtype} but quantized_bias_type says {want}; "
                            f"TFLite refuses the model")
    if want is None and bias is not None and bias.dtype == np.int32:
        raise ctx.error(op, f"{name} is int32 and quantized_bias_type is unset: TFLite then "
                            f"reads the bias as int64, past the end of its buffer, so its "
                            f"result is undefined; set quantized_bias_type INT32 or store an "
                            f"int64 bias")
    return want != np.dtype(np.int32)


def _check_types(ctx: LoweringContext, op: Op, x_index: int, w_index: int, b_index: int):
    xt, wt = ctx.tensor(x_index), ctx.tensor(w_index)
    x_dtype = np.dtype(xt.dtype)
    if x_dtype not in (np.dtype(np.int8), np.dtype(np.int16)) or \
            np.dtype(wt.dtype) != np.dtype(np.int8):
        raise ctx.error(op, f"input {xt.dtype} x weights {wt.dtype} is not supported "
                            f"(int8 x int8, or int16 x int8)")
    if np.dtype(ctx.tensor(op.outputs[0]).dtype) != x_dtype:
        raise ctx.error(op, f"output dtype {ctx.tensor(op.outputs[0]).dtype} differs from the "
                            f"input's {x_dtype}")
    bias = ctx.const(op, b_index) if b_index >= 0 else None
    if bias is not None and bias.dtype not in (np.int32, np.int64):
        raise ctx.error(op, f"bias dtype {bias.dtype} is not supported (int32 or int64)")
    if x_dtype == np.dtype(np.int8):
        if bias is not None and bias.dtype == np.int64:
            raise ctx.error(op, "int8 input with an int64 bias is not supported")
        acc_int64 = False
    else:
        acc_int64 = _bias_type_16x8(ctx, op, bias)
    if bias is not None:
        bias = bias.astype(np.int64 if acc_int64 else np.int32)
    return bias, acc_int64


def _summary(ctx: LoweringContext, x: int, w_scales_len: int, out: int, fused) -> str:
    w = f"w per-channel({w_scales_len})" if w_scales_len > 1 else "w per-tensor"
    return (f"in s={ctx.scale(x):.6g} zp={ctx.zero_point(x)} | {w} | out s={ctx.scale(out):.6g} "
            f"zp={ctx.zero_point(out)}" + (f" | {fused}" if fused and fused != "NONE" else ""))


def _window_geometry(ctx: LoweringContext, op: Op, xs, ys, kh: int, kw: int, cout: int) -> dict:
    """Strides, dilations, TFLite's padding and the output size of a sliding-window op,
    checked against the output tensor's shape."""
    a = op.attrs
    sh, sw = int(a.get("stride_h", 1)), int(a.get("stride_w", 1))
    dh, dw = int(a.get("dilation_h_factor", 1)), int(a.get("dilation_w_factor", 1))
    padding = a.get("padding", "VALID")
    oh = compute_out_size(padding, xs[1], kh, sh, dh)
    ow = compute_out_size(padding, xs[2], kw, sw, dw)
    if (xs[0], oh, ow, cout) != tuple(ys):
        raise ctx.error(op, f"output shape {list(ys)} does not match the computed "
                            f"{[xs[0], oh, ow, cout]}")
    same = padding == "SAME"
    return dict(stride_h=sh, stride_w=sw, dilation_h=dh, dilation_w=dw,
                pad_top=compute_padding(sh, dh, xs[1], kh, oh) if same else 0,
                pad_left=compute_padding(sw, dw, xs[2], kw, ow) if same else 0,
                out_h=oh, out_w=ow)


@lowering("CONV_2D")
def lower_conv2d(op: Op, ctx: LoweringContext):
    x_i, w_i = op.inputs[0], op.inputs[1]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    a = op.attrs
    w = ctx.const(op, w_i)
    xs, ys = ctx.tensor(x_i).shape, ctx.tensor(op.outputs[0]).shape
    if len(xs) != 4 or w.ndim != 4 or len(ys) != 4:
        raise ctx.error(op, f"expects 4-D NHWC input/output and OHWI weights, got input "
                            f"{list(xs)}, weights {list(w.shape)}, output {list(ys)}")
    cout, kh, kw, cin_g = w.shape
    cin = xs[3]
    if cin % cin_g or cout % (cin // cin_g):
        raise ctx.error(op, f"input depth {cin} is not a multiple of the filter depth {cin_g} "
                            f"(or the groups do not divide {cout} output channels)")
    groups = cin // cin_g
    geom = _window_geometry(ctx, op, xs, ys, kh, kw, cout)
    bias, acc_int64 = _check_types(ctx, op, x_i, w_i, b_i)
    w_scales = _weights_per_tensor_or_channel(ctx, op, w_i, cout, 0)
    params = ConvParams(weights=np.ascontiguousarray(w), bias=bias,
                        input_offset=-ctx.zero_point(x_i), acc_int64=acc_int64,
                        requant=_requant(ctx, op, x_i, w_scales, op.outputs[0], acc_int64),
                        accumulator=ctx.accumulator(), groups=groups, **geom)
    macs = int(np.prod(ys)) * kh * kw * cin_g
    return ctx.layer(op, "conv2d", inputs=[x_i], params=params, macs=macs, has_acc=True,
                     summary=_summary(ctx, x_i, len(ctx.tensor(w_i).quant.scales),
                                      op.outputs[0], a.get("fused_activation_function")))


@lowering("DEPTHWISE_CONV_2D")
def lower_depthwise(op: Op, ctx: LoweringContext):
    x_i, w_i = op.inputs[0], op.inputs[1]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    a = op.attrs
    w = ctx.const(op, w_i)
    xs, ys = ctx.tensor(x_i).shape, ctx.tensor(op.outputs[0]).shape
    if len(xs) != 4 or w.ndim != 4 or len(ys) != 4 or w.shape[0] != 1:
        raise ctx.error(op, f"expects 4-D NHWC input/output and [1,KH,KW,C] weights, got input "
                            f"{list(xs)}, weights {list(w.shape)}, output {list(ys)}")
    _, kh, kw, cout = w.shape
    cin = xs[3]
    dm = int(a.get("depth_multiplier", 1)) or 1
    if cout != cin * dm:
        # TFLite derives the multiplier from the shapes when the option disagrees.
        if cin == 0 or cout % cin:
            raise ctx.error(op, f"weights have {cout} channels, input {cin}: not a multiple")
        dm = cout // cin
    geom = _window_geometry(ctx, op, xs, ys, kh, kw, cout)
    bias, acc_int64 = _check_types(ctx, op, x_i, w_i, b_i)
    w_scales = _weights_per_tensor_or_channel(ctx, op, w_i, cout, 3)
    params = DepthwiseConvParams(
        weights=np.ascontiguousarray(w), bias=bias, input_offset=-ctx.zero_point(x_i),
        acc_int64=acc_int64, requant=_requant(ctx, op, x_i, w_scales, op.outputs[0], acc_int64),
        accumulator=ctx.accumulator(), depth_multiplier=dm, **geom)
    macs = int(np.prod(ys)) * kh * kw
    return ctx.layer(op, "depthwise_conv2d", inputs=[x_i], params=params, macs=macs,
                     has_acc=True,
                     summary=_summary(ctx, x_i, len(ctx.tensor(w_i).quant.scales),
                                      op.outputs[0], a.get("fused_activation_function")))


@lowering("FULLY_CONNECTED")
def lower_fully_connected(op: Op, ctx: LoweringContext):
    x_i, w_i = op.inputs[0], op.inputs[1]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    a = op.attrs
    if a.get("weights_format", "DEFAULT") != "DEFAULT":
        raise ctx.error(op, f"weights_format {a['weights_format']} is not supported")
    w = ctx.const(op, w_i)
    if w.ndim != 2:
        raise ctx.error(op, f"expects 2-D weights [out, in], got {list(w.shape)}")
    cout, k = w.shape
    xs, ys = ctx.tensor(x_i).shape, ctx.tensor(op.outputs[0]).shape
    n_in = int(np.prod(xs)) if xs else 1
    if k == 0 or n_in % k:
        raise ctx.error(op, f"input of {n_in} elements is not a multiple of the weights' "
                            f"depth {k}")
    batch = n_in // k
    if int(np.prod(ys)) != batch * cout:
        raise ctx.error(op, f"output shape {list(ys)} does not hold {batch} x {cout} values")
    bias, acc_int64 = _check_types(ctx, op, x_i, w_i, b_i)
    w_scales = _weights_per_tensor_or_channel(ctx, op, w_i, cout, 0)
    # TFLite's reference kernel requantizes in double (double_round); TFLM's runs the integer
    # MultiplyByQuantizedMultiplier of the accumulator's width (Q31 double rounding for an
    # int32 accumulator, the Q15-reduced int64 variant for a 16x8 layer's int64 one), from
    # the same reals (docs/semantics.md: the per-tensor product, float32 in the source, is
    # exact in the interpreter).
    tflm = ctx.semantics == "tflm"
    params = FullyConnectedParams(
        weights=np.ascontiguousarray(w), bias=bias, input_offset=-ctx.zero_point(x_i),
        weights_offset=_weights_offset(ctx, op, w_i), acc_int64=acc_int64,
        requant=_requant(ctx, op, x_i, w_scales, op.outputs[0], acc_int64,
                         double_round=not tflm),
        accumulator=ctx.accumulator(), batch=batch, depth=k, out_shape=tuple(ys))
    return ctx.layer(op, "fully_connected", inputs=[x_i], params=params, macs=batch * cout * k,
                     has_acc=True,
                     summary=_summary(ctx, x_i, len(ctx.tensor(w_i).quant.scales),
                                      op.outputs[0], a.get("fused_activation_function")))
