"""Lowering of pooling, MEAN, ADD/SUB/MUL, CONCATENATION and MAXIMUM/MINIMUM (TFLite reference
semantics).

Sources (LiteRT ``tflite/kernels``, the same code as TensorFlow's ``tensorflow/lite/kernels``):

* pooling.cc + reference_integer_ops/pooling.h: MAX_POOL_2D / AVERAGE_POOL_2D never rescale:
  the output holds the max / rounded average of the input integers, clamped to the fused
  activation range computed from the OUTPUT's scale and zero point (pooling.cc only DCHECKs
  that input and output quantization agree, so release builds ignore a mismatch).
  Average: ``acc > 0 ? (acc + n/2) / n : (acc - n/2) / n`` (C++ division) over the n taps
  inside the image.
* reduce.cc + reference/reduce.h: MEAN (int8/int16) always runs QuantizedMeanOrSum in
  BUILTIN_REF, whatever the scales: M, e = QuantizeMultiplier(double(s_in) / double(s_out)),
  then with n the reduced count and k = min(floor(log2 n), 32, 31 + e):
  M' = (M << k) / n, e' = e - k, and
  out = clamp(MultiplyByQuantizedMultiplier(int32(sum - zp_in * n), M', e') + zp_out).
  int16 requires zero points 0.
* add.cc / sub.cc + reference_integer_ops/add.h, reference/{add,sub}.h: the general path
  (int8; int16 unless the power-of-two path applies) shifts both inputs left by 20 (int8) or
  15 (int16), rescales each with QuantizeMultiplierSmallerThanOneExp(s_i / (2 max(s1, s2))),
  adds/subtracts, rescales by 2 max(s1, s2) / (2^left_shift s_out). int16 needs zero points 0;
  with ``pot_scale_int16`` set (the schema default) and all three scales powers of two, the
  int16 path is instead: one input rounding-shifted right by log2(s_in / s_out), saturating
  add/sub (ADD REF has no broadcast in that path).
* mul.cc + reference_integer_ops/mul.h: M, e = QuantizeMultiplier(float(s1 * s2 / s_out)) (the
  product is evaluated in float32), out = clamp(MBQM((a - zp1)(b - zp2), M, e) + zp_out).
  Under ``semantics="tflm"`` the real is computed in double (TFLM's mul_common.cc).
* concatenation.cc: int8 requires every input's scale and zero point to equal the output's;
  int16 requires zero points 0 and copies the integers unchanged (scales are ignored). Only
  uint8 rescales in TFLite, and uint8 is not supported here.
* maximum_minimum.cc + reference/maximum_minimum.h: MAXIMUM / MINIMUM compare the stored
  integers (``el1 > el2 ? el1 : el2``; ``<`` for MINIMUM) with numpy broadcasting
  (MaximumMinimumBroadcastSlow; BroadcastBinaryOpSimple aborts above rank 8); the inputs must
  share one type, the output takes it; scales and zero points are neither used nor checked.
"""
from __future__ import annotations

import numpy as np

from ..arith import (quantize_multiplier, quantize_multiplier_smaller_than_one_exp,
                     round_half_away_f32)
from ..ir import Op
from ..params import ArithmeticParams, ConcatParams, MaxMinParams, MeanParams, PoolParams
from ..registry import lowering
from ..vocab import TFLITE_SCHEMES, RequantScheme
from .context import LoweringContext

INT8 = np.dtype(np.int8)
INT16 = np.dtype(np.int16)
SUPPORTED = (INT8, INT16)


# -- shared helpers -----------------------------------------------------------------------------

def _dtype(ctx: LoweringContext, index: int) -> np.dtype:
    return np.dtype(ctx.tensor(index).dtype)


def _check_dtypes(ctx: LoweringContext, op: Op, indices) -> np.dtype:
    """All tensors share one dtype, int8 or int16, and are quantized."""
    dts = [_dtype(ctx, i) for i in indices]
    if any(d != dts[0] for d in dts):
        raise ctx.error(op, f"mixed dtypes {[str(d) for d in dts]}; {op.type} needs the inputs "
                            f"and the output to have one dtype (int8 or int16)")
    if dts[0] not in SUPPORTED:
        raise ctx.error(op, f"dtype {dts[0]} is not supported (int8 or int16 quantized "
                            f"tensors only)")
    for i in indices:
        t = ctx.tensor(i)
        if t.quant is None:
            raise ctx.error(op, f"tensor {i} '{t.name}' is not quantized")
        if t.quant.per_channel:
            raise ctx.error(op, f"tensor {i} '{t.name}' is quantized per channel; {op.type} "
                                f"needs per-tensor quantization")
    return dts[0]


def _f32(ctx: LoweringContext, index: int) -> float:
    """A tensor's scale as TFLite holds it (a C++ float), returned as a Python float."""
    return float(np.float32(ctx.scale(index)))


def _single_rounding(ctx: LoweringContext, op: Op) -> bool:
    """Whether the TFLite build modelled is TFLITE_SINGLE_ROUNDING (else double rounding)."""
    if ctx.requant_scheme not in TFLITE_SCHEMES:
        raise ctx.error(op, f"requant scheme '{ctx.requant_scheme}' is not modelled for "
                            f"{op.type}; it follows TFLite's arithmetic (tflite_double or "
                            f"tflite_single)")
    return ctx.requant_scheme == RequantScheme.tflite_single


def _fused(op: Op) -> str:
    return op.attrs.get("fused_activation_function", "NONE") or "NONE"


def _operand_params(ctx: LoweringContext, indices) -> tuple[list[int], dict[int, np.ndarray]]:
    """Runtime inputs (in operand order) and the constant operands by operand position."""
    runtime, consts = [], {}
    for k, i in enumerate(indices):
        if ctx.is_const(i):
            consts[k] = np.ascontiguousarray(ctx.tensor(i).data)
        else:
            runtime.append(i)
    return runtime, consts


def _check_out_shape(ctx: LoweringContext, op: Op, computed) -> tuple[int, ...]:
    computed = tuple(int(d) for d in computed)
    declared = tuple(ctx.tensor(op.outputs[0]).shape)
    if declared != computed:
        raise ctx.error(op, f"output shape {list(declared)} does not match the shape TFLite "
                            f"computes, {list(computed)}")
    return computed


def _qsummary(ctx: LoweringContext, indices, out: int, extra: str = "") -> str:
    ins = ", ".join(f"s={ctx.scale(i):.6g} zp={ctx.zero_point(i)}" for i in indices)
    s = f"in {ins} | out s={ctx.scale(out):.6g} zp={ctx.zero_point(out)}"
    return s + (f" | {extra}" if extra else "")


# -- pooling ------------------------------------------------------------------------------------

def _out_size(padding: str, in_size: int, k: int, stride: int) -> int:
    """TFLite ComputeOutSize (dilation 1)."""
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - k) // stride


def _padding(stride: int, in_size: int, k: int, out_size: int) -> int:
    """TFLite ComputePaddingWithOffset: the leading padding (both SAME and VALID)."""
    return max((out_size - 1) * stride + k - in_size, 0) // 2


@lowering("MAX_POOL_2D", "AVERAGE_POOL_2D")
def lower_pool2d(op: Op, ctx: LoweringContext):
    x_i, y_i = op.inputs[0], op.outputs[0]
    dtype = _check_dtypes(ctx, op, [x_i, y_i])
    xs = ctx.tensor(x_i).shape
    if len(xs) != 4:
        raise ctx.error(op, f"expects a 4-D NHWC input, got shape {list(xs)}")
    a = op.attrs
    padding = a.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise ctx.error(op, f"padding {padding!r} is not supported (SAME or VALID)")
    sh, sw = int(a.get("stride_h", 0)), int(a.get("stride_w", 0))
    fh, fw = int(a.get("filter_height", 0)), int(a.get("filter_width", 0))
    if sh <= 0 or sw <= 0 or fh <= 0 or fw <= 0:
        raise ctx.error(op, f"strides ({sh}, {sw}) and filter size ({fh}, {fw}) must be "
                            f"positive")
    oh, ow = _out_size(padding, xs[1], fh, sh), _out_size(padding, xs[2], fw, sw)
    if oh <= 0 or ow <= 0:
        raise ctx.error(op, f"a {fh}x{fw} filter does not fit the {xs[1]}x{xs[2]} input "
                            f"(output {oh}x{ow})")
    pt, pl = _padding(sh, xs[1], fh, oh), _padding(sw, xs[2], fw, ow)
    # TFLite's AveragePool fails at run time if a window holds no input element.
    for size, k, s, pad, n in ((xs[1], fh, sh, pt, oh), (xs[2], fw, sw, pl, ow)):
        for o in range(n):
            lo = o * s - pad
            if min(k, size - lo) <= max(0, -lo):
                raise ctx.error(op, "a pooling window lies entirely in the padding")
    _check_out_shape(ctx, op, (xs[0], oh, ow, xs[3]))
    act_min, act_max = ctx.activation_range(op, _fused(op), y_i)
    is_avg = op.type == "AVERAGE_POOL_2D"
    params = PoolParams(average=is_avg, filter_h=fh, filter_w=fw, stride_h=sh, stride_w=sw,
                        pad_top=pt, pad_left=pl, out_h=oh, out_w=ow, act_min=act_min,
                        act_max=act_max)
    summary = (f"{'avg' if is_avg else 'max'} {fh}x{fw} /{sh},{sw} {padding} {dtype} | "
               f"clamp [{act_min}, {act_max}]")
    return ctx.layer(op, "pool2d", inputs=[x_i], params=params, summary=summary)


# -- MEAN ---------------------------------------------------------------------------------------

@lowering("MEAN")
def lower_mean(op: Op, ctx: LoweringContext):
    x_i, axis_i, y_i = op.inputs[0], op.inputs[1], op.outputs[0]
    dtype = _check_dtypes(ctx, op, [x_i, y_i])
    single = _single_rounding(ctx, op)
    xs = tuple(ctx.tensor(x_i).shape)
    axes_raw = np.asarray(ctx.const(op, axis_i)).reshape(-1)
    if axes_raw.dtype != np.int32:
        raise ctx.error(op, f"axis tensor has dtype {axes_raw.dtype}; TFLite requires int32")
    rank = len(xs)
    reduced: list[int] = []
    for v in axes_raw.tolist():
        r = v + rank if v < 0 else v
        if not 0 <= r < rank:
            raise ctx.error(op, f"axis {v} is out of range for a rank-{rank} input")
        if r not in reduced:
            reduced.append(r)
    keep_dims = bool(op.attrs.get("keep_dims", False))
    if keep_dims:
        out_shape = tuple(1 if d in reduced else xs[d] for d in range(rank))
    else:
        out_shape = tuple(xs[d] for d in range(rank) if d not in reduced)
    out_shape = _check_out_shape(ctx, op, out_shape)
    count = int(np.prod([xs[d] for d in reduced], dtype=np.int64))
    if count == 0 or 0 in xs:
        raise ctx.error(op, "reduction over an empty tensor is not supported")
    zp_in, zp_out = ctx.zero_point(x_i), ctx.zero_point(y_i)
    if dtype == INT16 and (zp_in != 0 or zp_out != 0):
        raise ctx.error(op, f"int16 MEAN needs zero points 0 (TFLite rejects input zp {zp_in}, "
                            f"output zp {zp_out})")
    # PrepareMeanOrSum: QuantizeMultiplier(double(s_in) / double(s_out)).
    mult, shift = quantize_multiplier(_f32(ctx, x_i) / _f32(ctx, y_i), single)
    # QuantizedMeanOrSum folds 1/count into the multiplier.
    # (quantize_multiplier flushes exponents below -31 to 0, so k >= 0.)
    k = min(count.bit_length() - 1, 32, 31 + shift)
    mult = (mult << k) // count  # int64 division of non-negative values
    shift -= k
    qmin, qmax = ctx.qrange(y_i)
    kept = tuple(d for d in range(rank) if d not in reduced)
    params = MeanParams(kept_axes=kept, reduced_axes=tuple(sorted(reduced)), count=count,
                        in_zp=zp_in, out_zp=zp_out, multiplier=int(mult), shift=shift,
                        qmin=qmin, qmax=qmax, single_rounding=single, out_shape=out_shape)
    return ctx.layer(op, "mean", inputs=[x_i], params=params,
                     summary=_qsummary(ctx, [x_i], y_i, f"axes {sorted(reduced)} n={count}"))


# -- ADD / SUB ----------------------------------------------------------------------------------

def _checked_log2(scale: float) -> tuple[bool, int]:
    """TFLite CheckedLog2 (float arithmetic): (is a power of two, rounded log2)."""
    x = np.float32(scale)
    x_log2 = np.float32(np.log(x)) * (np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    rounded = round_half_away_f32(x_log2)  # TfLiteRound on a float
    frac = np.float32(np.float32(x_log2) - rounded)
    return bool(abs(float(frac)) < 1e-3), int(rounded)


def _broadcast_shape(ctx: LoweringContext, op: Op, a_i: int, b_i: int) -> tuple[int, ...]:
    sa, sb = tuple(ctx.tensor(a_i).shape), tuple(ctx.tensor(b_i).shape)
    try:
        out = np.broadcast_shapes(sa, sb)
    except ValueError:
        raise ctx.error(op, f"input shapes {list(sa)} and {list(sb)} do not broadcast") from None
    if len(out) > 6:
        raise ctx.error(op, f"broadcasting of rank {len(out)} > 6 is not supported")
    return _check_out_shape(ctx, op, out)


@lowering("ADD", "SUB")
def lower_add_sub(op: Op, ctx: LoweringContext):
    a_i, b_i, y_i = op.inputs[0], op.inputs[1], op.outputs[0]
    is_sub = op.type == "SUB"
    dtype = _check_dtypes(ctx, op, [a_i, b_i, y_i])
    out_shape = _broadcast_shape(ctx, op, a_i, b_i)
    single = _single_rounding(ctx, op)
    zps = [ctx.zero_point(i) for i in (a_i, b_i, y_i)]
    qmin, qmax = ctx.qrange(y_i)
    if any(not qmin <= z <= qmax for z in zps):
        raise ctx.error(op, f"zero points {zps} lie outside the {dtype} range")
    pot = False
    if dtype == INT16:
        if any(zps):
            raise ctx.error(op, f"int16 {op.type} needs zero points 0 (TFLite rejects {zps})")
        # Missing options table -> TfLite{Add,Sub}Params value-initialized -> false.
        if bool(op.attrs.get("pot_scale_int16", False)):
            logs = [_checked_log2(ctx.scale(i)) for i in (a_i, b_i, y_i)]
            pot = all(ok for ok, _ in logs)
    act_min, act_max = ctx.activation_range(op, _fused(op), y_i)
    runtime, consts = _operand_params(ctx, [a_i, b_i])
    if pot:
        sh1 = logs[0][1] - logs[2][1]
        sh2 = logs[1][1] - logs[2][1]
        if not ((sh1 == 0 or sh2 == 0) and sh1 <= 0 and sh2 <= 0):
            raise ctx.error(op, f"power-of-two int16 {op.type}: input shifts {sh1}, {sh2} "
                                f"(TFLite needs both <= 0 and one of them 0)")
        if -sh1 > 15 or -sh2 > 15:
            raise ctx.error(op, f"power-of-two int16 {op.type}: a right shift of "
                                f"{max(-sh1, -sh2)} > 15 bits is not modelled")
        if not is_sub and tuple(ctx.tensor(a_i).shape) != tuple(ctx.tensor(b_i).shape):
            raise ctx.error(op, "power-of-two int16 ADD with broadcasting: TFLite's reference "
                                "kernel has no broadcast in this path")
        params = ArithmeticParams(is_sub=is_sub, pot=True, out_shape=out_shape,
                                  act_min=act_min, act_max=act_max, constants=consts,
                                  single_rounding=single, rshift1=-sh1, rshift2=-sh2)
        summary = f"int16 power-of-two | shifts {-sh1}, {-sh2}"
    else:
        left_shift = 15 if dtype == INT16 else 20
        s1, s2, so = _f32(ctx, a_i), _f32(ctx, b_i), _f32(ctx, y_i)
        twice_max = 2.0 * max(s1, s2)  # a float in C++ (exact: times two)
        real1, real2 = s1 / twice_max, s2 / twice_max
        real_out = twice_max / float(np.float32(1 << left_shift) * np.float32(so))
        if not 0.0 < real_out < 1.0:
            raise ctx.error(op, f"output rescale {real_out:.6g} = 2 max(s_in) / (2^{left_shift}"
                                f" s_out) is not in (0, 1): TFLite aborts (ADD) or shifts by a "
                                f"negative amount (SUB) there")
        m1, e1 = quantize_multiplier_smaller_than_one_exp(real1, single)
        m2, e2 = quantize_multiplier_smaller_than_one_exp(real2, single)
        mo, eo = quantize_multiplier_smaller_than_one_exp(real_out, single)
        params = ArithmeticParams(is_sub=is_sub, out_shape=out_shape, act_min=act_min,
                                  act_max=act_max, constants=consts, single_rounding=single,
                                  input1_offset=-zps[0], input2_offset=-zps[1],
                                  output_offset=zps[2], left_shift=left_shift,
                                  input1_multiplier=m1, input1_shift=e1, input2_multiplier=m2,
                                  input2_shift=e2, output_multiplier=mo, output_shift=eo)
        summary = f"<<{left_shift} | M1={m1}>>{-e1} M2={m2}>>{-e2} Mout={mo}>>{-eo}"
    return ctx.layer(op, "add_sub", inputs=runtime, params=params,
                     summary=_qsummary(ctx, [a_i, b_i], y_i, summary))


# -- MUL ----------------------------------------------------------------------------------------

@lowering("MUL")
def lower_mul(op: Op, ctx: LoweringContext):
    a_i, b_i, y_i = op.inputs[0], op.inputs[1], op.outputs[0]
    dtype = _check_dtypes(ctx, op, [a_i, b_i, y_i])
    out_shape = _broadcast_shape(ctx, op, a_i, b_i)
    single = _single_rounding(ctx, op)
    zps = [ctx.zero_point(i) for i in (a_i, b_i, y_i)]
    if dtype == INT16 and any(zps):
        raise ctx.error(op, f"int16 MUL needs zero points 0 (TFLite rejects {zps})")
    if ctx.semantics == "tflm":
        # TFLM mul_common.cc: each scale widened to double, the product and quotient in double.
        real = float(np.float64(_f32(ctx, a_i)) * np.float64(_f32(ctx, b_i))
                     / np.float64(_f32(ctx, y_i)))
    else:
        # mul.cc: input1 scale * input2 scale / output scale, evaluated in float.
        real = float(np.float32(np.float32(ctx.scale(a_i)) * np.float32(ctx.scale(b_i)))
                     / np.float32(ctx.scale(y_i)))
    mult, shift = quantize_multiplier(real, single)
    if not -31 <= shift <= (30 if single else 31):
        raise ctx.error(op, f"rescale {real:.6g} has exponent {shift}, outside what TFLite's "
                            f"MultiplyByQuantizedMultiplier handles")
    act_min, act_max = ctx.activation_range(op, _fused(op), y_i)
    runtime, consts = _operand_params(ctx, [a_i, b_i])
    params = ArithmeticParams(input1_offset=-zps[0], input2_offset=-zps[1],
                              output_offset=zps[2], output_multiplier=mult, output_shift=shift,
                              act_min=act_min, act_max=act_max, single_rounding=single,
                              out_shape=out_shape, constants=consts)
    return ctx.layer(op, "mul", inputs=runtime, params=params,
                     summary=_qsummary(ctx, [a_i, b_i], y_i, f"M={mult} e={shift}"))


# -- CONCATENATION ------------------------------------------------------------------------------

@lowering("CONCATENATION")
def lower_concat(op: Op, ctx: LoweringContext):
    ins, y_i = list(op.inputs), op.outputs[0]
    if not ins:
        raise ctx.error(op, "has no inputs")
    dtype = _check_dtypes(ctx, op, ins + [y_i])
    if _fused(op) != "NONE":
        raise ctx.error(op, f"fused activation {_fused(op)}: TFLite's CONCATENATION only "
                            f"accepts NONE")
    shapes = [tuple(ctx.tensor(i).shape) for i in ins]
    rank = len(shapes[0])
    if rank == 0:
        raise ctx.error(op, "concatenation of scalars is not supported")
    axis = int(op.attrs.get("axis", 0))
    ax = axis + rank if axis < 0 else axis
    if not 0 <= ax < rank:
        raise ctx.error(op, f"axis {axis} is out of range for rank {rank}")
    for s in shapes[1:]:
        if len(s) != rank or any(s[d] != shapes[0][d] for d in range(rank) if d != ax):
            raise ctx.error(op, f"input shapes {[list(x) for x in shapes]} differ outside "
                                f"axis {ax}")
    out_shape = list(shapes[0])
    out_shape[ax] = sum(s[ax] for s in shapes)
    out_shape = _check_out_shape(ctx, op, out_shape)
    if dtype == INT8:
        so, zo = np.float32(ctx.scale(y_i)), ctx.zero_point(y_i)
        for i in ins:
            if np.float32(ctx.scale(i)) != so or ctx.zero_point(i) != zo:
                raise ctx.error(op, f"int8 input {i} has scale {ctx.scale(i):.6g} / zero point "
                                    f"{ctx.zero_point(i)}, the output {float(so):.6g} / {zo}; "
                                    f"TFLite requires them equal (it does not requantize int8)")
    else:
        zps = [ctx.zero_point(i) for i in ins + [y_i]]
        if any(zps):
            raise ctx.error(op, f"int16 CONCATENATION needs zero points 0 (TFLite rejects "
                                f"{zps})")
    runtime, consts = _operand_params(ctx, ins)
    params = ConcatParams(axis=ax, num_inputs=len(ins), out_shape=out_shape, constants=consts)
    return ctx.layer(op, "concat", inputs=runtime, params=params,
                     summary=f"axis {ax} | {len(ins)} inputs {dtype} (copied, no rescale)")


# -- MAXIMUM / MINIMUM --------------------------------------------------------------------------

MAXMIN_BROADCAST_MAX_RANK = 8  # BroadcastBinaryOpSimple's kMaxRank (TFLITE_CHECK beyond)


@lowering("MAXIMUM", "MINIMUM")
def lower_maximum_minimum(op: Op, ctx: LoweringContext):
    """maximum_minimum.cc: the stored integers are compared, quantization is ignored."""
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise ctx.error(op, f"takes 2 inputs and 1 output, has {len(op.inputs)} and "
                            f"{len(op.outputs)}")
    a_i, b_i, y_i = op.inputs[0], op.inputs[1], op.outputs[0]
    dts = [_dtype(ctx, i) for i in (a_i, b_i, y_i)]
    if dts[0] != dts[1]:
        raise ctx.error(op, f"input dtypes {dts[0]} and {dts[1]} differ; TFLite requires one "
                            f"type")
    if dts[2] != dts[0]:
        raise ctx.error(op, f"output dtype {dts[2]} differs from the inputs' {dts[0]} (TFLite "
                            f"gives the output the inputs' type)")
    if dts[0] not in SUPPORTED:
        raise ctx.error(op, f"dtype {dts[0]} is not supported (int8 or int16 only)")
    sa, sb = tuple(ctx.tensor(a_i).shape), tuple(ctx.tensor(b_i).shape)
    if sa == sb:
        out_shape = _check_out_shape(ctx, op, sa)
    else:
        try:
            out_shape = np.broadcast_shapes(sa, sb)
        except ValueError:
            raise ctx.error(op, f"input shapes {list(sa)} and {list(sb)} do not "
                                f"broadcast") from None
        if len(out_shape) > MAXMIN_BROADCAST_MAX_RANK:
            raise ctx.error(op, f"broadcasting of rank {len(out_shape)} > "
                                f"{MAXMIN_BROADCAST_MAX_RANK} (TFLite aborts)")
        out_shape = _check_out_shape(ctx, op, out_shape)
    runtime, consts = _operand_params(ctx, [a_i, b_i])
    is_max = op.type == "MAXIMUM"
    params = MaxMinParams(is_max=is_max, out_shape=out_shape, constants=consts)
    c = [np.asarray(v).reshape(-1) for v in consts.values()]
    operand = f"const {int(c[0][0])}" if len(c) == 1 and c[0].size == 1 else \
        ("const" if c else "tensor")
    summary = (f"{'max' if is_max else 'min'}(x, {operand}) {dts[0]} | stored integers "
               f"compared (quantization ignored)")
    return ctx.layer(op, "maximum_minimum", inputs=runtime, params=params, summary=summary)
