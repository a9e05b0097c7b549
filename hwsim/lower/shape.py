"""Lowering of data movement, resizing and (de)quantization ops.

Semantics are those of TFLite's reference kernels (LiteRT ``tflite/kernels/{pad,reshape,squeeze,
transpose,strided_slice,resize_nearest_neighbor,resize_bilinear,quantize,dequantize}.cc`` and
``kernels/internal/reference/*.h``). Everything that depends only on shapes and options is
computed here, once: output shapes, slice bounds, resize index and weight tables, requantization
multipliers. The kernels (``hwsim.kernels.shape``) only move integers or apply those tables.

Facts from the TFLite source that shape this module:

* PAD/PADV2, RESHAPE, SQUEEZE, TRANSPOSE, STRIDED_SLICE, RESIZE_NEAREST_NEIGHBOR and
  RESIZE_BILINEAR never look at the scales or zero points of their input and output (except
  PAD's fill value): they move the stored integers. When input and output quantization differ,
  the output integers are the input integers, reinterpreted with the output's parameters.
* PAD without a constant pads quantized tensors with the *output* zero point; PADV2 pads with the
  raw integer of its constant, whose scale and zero point must equal the output's (else TFLite
  fails in Eval). Unquantized int8/int16/int32 tensors pad with 0.
* RESIZE_BILINEAR on int8 (reference kernel) and int16 (all kernels) uses
  ``ResizeBilinearInteger``: Q10 fixed-point source coordinates, int64 products of Q10 weights,
  and a final division by 2^20 rounded half away from zero (``(v +- 2^19) / 2^20`` in C,
  truncating; ``(v + 2^19) >> 20`` in a TFLITE_SINGLE_ROUNDING build).
* RESIZE_NEAREST_NEIGHBOR computes the source index in float32: ``(x + offset) * scale``,
  floored, or rounded half away from zero (TfLiteRound) with align_corners.
* QUANTIZE float -> int: ``int32(round_half_away(x / scale_f32)) + zero_point``, float32
  division, clamped to the output type. Integer -> integer QUANTIZE is ``Requantize``:
  ``MultiplyByQuantizedMultiplier(q - zp_in, M, shift) + zp_out``, clamped, where (M, shift) =
  QuantizeMultiplier(double(s_in) / double(s_out)).
* DEQUANTIZE: ``float(double(scale) * (q - zp))`` (the double product is exact, so this is the
  correctly rounded float32 of the real value).

Program params (hwsim.params) must be integers: the float32 scales QUANTIZE (float input) and
DEQUANTIZE need are stored as their IEEE-754 bit patterns (``scale_bits``, int32 view of the
float32).
"""
from __future__ import annotations

import numpy as np

from ..arith import round_half_away_f32
from ..ir import Op
from ..params import (DequantizeParams, PadParams, QuantizeFloatParams, RequantizeParams,
                      RequantParams, ReshapeParams, ResizeBilinearParams, ResizeNearestParams,
                      StridedSliceParams, TransposeParams)
from ..registry import lowering
from ..vocab import QRANGE, RequantScheme, Rounding

INT_TYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.int32))
MOVE_TYPES = INT_TYPES + (np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.bool_))
PAD_MAX_DIMS = 5  # reference_ops::PadKernelMaxDimensionCount()
TRANSPOSE_MAX_DIMS = 8  # kTransposeMaxDimensions
SQUEEZE_MAX_DIMS = 8


# -- helpers -----------------------------------------------------------------------------------

def _dtype(ctx, i) -> np.dtype:
    return np.dtype(ctx.tensor(i).dtype)


def _shape(ctx, i) -> tuple[int, ...]:
    return tuple(int(d) for d in ctx.tensor(i).shape)


def _n_inputs(op: Op) -> int:
    """TFLite's NumInputs: trailing absent (-1) inputs still count, but we drop them."""
    n = len(op.inputs)
    while n and op.inputs[n - 1] < 0:
        n -= 1
    return n


def _data_input(op, ctx, index: int = 0) -> tuple[list[int], np.ndarray | None]:
    """(the activation input list, a constant data input or None): a constant data input is
    carried as the params' ``const_input`` (then the layer has no run-time input)."""
    t = op.inputs[index]
    if t < 0:
        raise ctx.error(op, f"input {index} (the data tensor) is missing")
    if ctx.is_const(t):
        data = ctx.const(op, t)
        if not np.issubdtype(data.dtype, np.integer):
            raise ctx.error(op, f"constant {data.dtype} data input is not supported (only "
                                f"activations or integer constants)")
        return [], np.ascontiguousarray(data)
    return [t], None


def _check_same_dtype(op, ctx, allowed=MOVE_TYPES):
    x, y = op.inputs[0], op.outputs[0]
    dx, dy = _dtype(ctx, x), _dtype(ctx, y)
    if dx != dy:
        raise ctx.error(op, f"input dtype {dx} and output dtype {dy} differ; {op.type} only "
                            f"moves elements, TFLite requires equal types")
    if dx not in allowed:
        raise ctx.error(op, f"dtype {dx} is not supported (supported: "
                            f"{', '.join(str(d) for d in allowed)})")
    return dx


def _check_out_shape(op, ctx, shape, what=""):
    declared = _shape(ctx, op.outputs[0])
    shape = tuple(int(d) for d in shape)
    if declared != shape:
        raise ctx.error(op, f"output tensor {op.outputs[0]} is declared with shape "
                            f"{list(declared)} but TFLite computes {list(shape)}{what}")
    return shape


def _const_ints(op, ctx, index, name, dtypes=(np.int32,)) -> np.ndarray:
    t = op.inputs[index] if index < len(op.inputs) else -1
    if t < 0:
        raise ctx.error(op, f"the {name} input (input {index}) is missing")
    if not ctx.is_const(t):
        raise ctx.error(op, f"the {name} input (tensor {t}) must be a constant; dynamic "
                            f"{name} are not supported")
    data = ctx.const(op, t)
    if np.dtype(data.dtype) not in [np.dtype(d) for d in dtypes]:
        raise ctx.error(op, f"the {name} tensor has dtype {data.dtype}; TFLite requires "
                            f"{'/'.join(str(np.dtype(d)) for d in dtypes)}")
    return data


def _quantized(ctx, i) -> bool:
    return ctx.tensor(i).quant is not None


def _legacy_scale_zp(ctx, i) -> tuple[float, int]:
    """TfLiteTensor.params (scale, zero_point): 0 / 0 for an unquantized tensor."""
    q = ctx.tensor(i).quant
    if q is None:
        return 0.0, 0
    return float(np.float32(q.scales[0])), int(q.zero_points[0])


def _f32_bits_array(v) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(v, dtype=np.float32)).view(np.int32).copy()


# -- PAD, PADV2 ----------------------------------------------------------------------------------

@lowering("PAD", "PADV2")
def lower_pad(op, ctx):
    n = _n_inputs(op)
    if n not in (2, 3):
        raise ctx.error(op, f"takes 2 or 3 inputs, got {n}")
    x, y = op.inputs[0], op.outputs[0]
    dt = _check_same_dtype(op, ctx, INT_TYPES)
    in_shape = _shape(ctx, x)
    dims = len(in_shape)
    if dims > PAD_MAX_DIMS:
        raise ctx.error(op, f"{dims}-D input; TFLite's Pad supports at most {PAD_MAX_DIMS} "
                            f"dimensions")
    pads = _const_ints(op, ctx, 1, "paddings",
                       (np.int32, np.int64, np.int8, np.int16, np.bool_))
    if pads.ndim != 2 or pads.shape[1] != 2 or pads.shape[0] != dims:
        raise ctx.error(op, f"paddings have shape {list(pads.shape)}; TFLite requires "
                            f"[{dims}, 2] for a {dims}-D input")
    pads = pads.astype(np.int64)
    if (pads < 0).any():
        raise ctx.error(op, f"negative paddings {pads.tolist()}; TFLite requires >= 0")
    before, after = pads[:, 0].copy(), pads[:, 1].copy()
    out_shape = _check_out_shape(op, ctx, tuple(d + b + a for d, b, a in
                                                zip(in_shape, before, after)))
    inputs, const = _data_input(op, ctx)
    has_const = n == 3 and op.inputs[2] >= 0
    lo, hi = QRANGE[dt]
    quantized_path = dt == np.dtype(np.uint8) or (dt in (np.dtype(np.int8), np.dtype(np.int16))
                                                  and _quantized(ctx, x))
    if has_const:
        c = op.inputs[2]
        cdata = ctx.const(op, c)
        if np.dtype(cdata.dtype) != dt:
            raise ctx.error(op, f"constant value dtype {cdata.dtype} differs from the input "
                                f"dtype {dt}; TFLite requires them equal")
        if cdata.size != 1:
            raise ctx.error(op, f"constant value has {cdata.size} elements; TFLite requires 1")
        if quantized_path:
            os_, oz = _legacy_scale_zp(ctx, y)
            cs, cz = _legacy_scale_zp(ctx, c)
            if oz != cz or np.float32(os_) != np.float32(cs):
                raise ctx.error(op, f"constant value is quantized (scale {cs}, zero point {cz}) "
                                    f"differently from the output (scale {os_}, zero point "
                                    f"{oz}); TFLite requires them equal")
        value = int(cdata.reshape(-1)[0])
        src = f"constant {value}"
    elif quantized_path:
        value = ctx.zero_point(y)
        if not lo <= value <= hi:
            raise ctx.error(op, f"output zero point {value} is outside the {dt} range; TFLite "
                                f"pads with the output zero point and requires it in range")
        src = f"output zero point {value}"
    else:
        value = 0
        src = "0 (unquantized)"
    params = PadParams(before=before, after=after, value=value, const_input=const)
    summary = (f"pad {[[int(b), int(a)] for b, a in zip(before, after)]} with {src}: "
               f"{list(in_shape)} -> {list(out_shape)}")
    return ctx.layer(op, "pad", inputs=inputs, params=params, summary=summary)


# -- RESHAPE, SQUEEZE ----------------------------------------------------------------------------

def _resolve_reshape(op, ctx, in_shape, requested):
    """reshape_internal::ResolveOutputShape: at most one -1, others >= 0, same element count."""
    n_in = int(np.prod(in_shape, dtype=np.int64)) if in_shape else 1
    nz_in = 1
    for d in in_shape:
        if d != 0:
            nz_in *= d
    out = [int(v) for v in requested]
    stretch = -1
    nz_out, n_out = 1, 1
    for i, v in enumerate(out):
        if v == -1:
            if stretch != -1:
                raise ctx.error(op, f"new shape {out} has more than one -1")
            stretch = i
            continue
        if v < 0:
            raise ctx.error(op, f"new shape {out} contains a negative dimension")
        if v != 0:
            nz_out *= v
        n_out *= v
    if stretch != -1:
        if n_in == 0 and n_out != 0:
            out[stretch] = 0
        else:
            out[stretch] = nz_in // nz_out
        n_out *= out[stretch]
    if n_in != n_out:
        raise ctx.error(op, f"cannot reshape {list(in_shape)} ({n_in} elements) to {out} "
                            f"({n_out} elements)")
    return tuple(out)


@lowering("RESHAPE")
def lower_reshape(op, ctx):
    n = _n_inputs(op)
    if n not in (1, 2):
        raise ctx.error(op, f"takes 1 or 2 inputs, got {n}")
    _check_same_dtype(op, ctx)
    in_shape = _shape(ctx, op.inputs[0])
    shape_t = op.inputs[1] if n == 2 else -1
    # GetOutputShape: the shape tensor wins when it is an int32 vector; else the options.
    if (shape_t >= 0 and len(ctx.tensor(shape_t).shape) == 1
            and _dtype(ctx, shape_t) == np.dtype(np.int32)):
        if ctx.is_const(shape_t):
            requested = ctx.const(op, shape_t).reshape(-1).tolist()
            src = "shape tensor"
        else:
            # Computed at run time (e.g. SHAPE -> PACK); with static input shapes it equals the
            # declared output shape, which the element count check below still verifies.
            requested = list(_shape(ctx, op.outputs[0]))
            src = "declared output shape (the shape tensor is not a constant)"
    else:
        requested = list(op.attrs.get("new_shape") or [])
        if len(requested) == 1 and requested[0] == 0:  # legacy scalar marker
            requested = []
        src = "options"
    out_shape = _check_out_shape(op, ctx, _resolve_reshape(op, ctx, in_shape, requested),
                                 f" (from the {src} {requested})")
    inputs, const = _data_input(op, ctx)
    params = ReshapeParams(shape=np.array(out_shape, dtype=np.int64), const_input=const)
    return ctx.layer(op, "reshape", inputs=inputs, params=params,
                     summary=f"reshape {list(in_shape)} -> {list(out_shape)}")


@lowering("SQUEEZE")
def lower_squeeze(op, ctx):
    _check_same_dtype(op, ctx)
    in_shape = _shape(ctx, op.inputs[0])
    nd = len(in_shape)
    if nd > SQUEEZE_MAX_DIMS:
        raise ctx.error(op, f"{nd}-D input; TFLite's Squeeze supports at most "
                            f"{SQUEEZE_MAX_DIMS} dimensions")
    dims = list(op.attrs.get("squeeze_dims") or [])
    squeeze = [False] * nd
    if not dims:
        squeeze = [d == 1 for d in in_shape]
    else:
        for d in dims:
            cur = d + nd if d < 0 else d
            if not (0 <= cur < nd and in_shape[cur] == 1):
                raise ctx.error(op, f"squeeze_dims {dims}: dimension {d} is out of range or "
                                    f"not of size 1 in {list(in_shape)}")
            squeeze[cur] = True
    out_shape = _check_out_shape(op, ctx, tuple(d for d, s in zip(in_shape, squeeze) if not s))
    inputs, const = _data_input(op, ctx)
    params = ReshapeParams(shape=np.array(out_shape, dtype=np.int64), const_input=const)
    return ctx.layer(op, "reshape", inputs=inputs, params=params,
                     summary=f"squeeze {list(in_shape)} -> {list(out_shape)}")


# -- TRANSPOSE -----------------------------------------------------------------------------------

@lowering("TRANSPOSE")
def lower_transpose(op, ctx):
    if _n_inputs(op) != 2:
        raise ctx.error(op, f"takes 2 inputs, got {_n_inputs(op)}")
    _check_same_dtype(op, ctx)
    in_shape = _shape(ctx, op.inputs[0])
    nd = len(in_shape)
    if nd > TRANSPOSE_MAX_DIMS:
        raise ctx.error(op, f"{nd}-D input; TFLite's Transpose supports at most "
                            f"{TRANSPOSE_MAX_DIMS} dimensions")
    perm = _const_ints(op, ctx, 1, "perm")
    if perm.ndim != 1 or perm.shape[0] != nd:
        raise ctx.error(op, f"perm has shape {list(perm.shape)}; TFLite requires [{nd}]")
    p = []
    for v in perm.tolist():
        if not -nd <= v < nd:
            raise ctx.error(op, f"perm {perm.tolist()} is out of bounds for a {nd}-D input")
        p.append(v + nd if v < 0 else v)
    if sorted(p) != list(range(nd)):
        raise ctx.error(op, f"perm {perm.tolist()} is not a permutation")
    out_shape = _check_out_shape(op, ctx, tuple(in_shape[i] for i in p))
    inputs, const = _data_input(op, ctx)
    params = TransposeParams(perm=np.array(p, dtype=np.int64), const_input=const)
    return ctx.layer(op, "transpose", inputs=inputs, params=params,
                     summary=f"transpose perm {p}: {list(in_shape)} -> {list(out_shape)}")


# -- STRIDED_SLICE -------------------------------------------------------------------------------

def _bit(mask: int, i: int) -> bool:
    """(uint32_t{1} << i) & mask, for 0 <= i < 32 (false elsewhere)."""
    if not 0 <= i < 32:
        return False
    return bool((int(mask) & 0xFFFFFFFF) >> i & 1)


def _start_for_axis(start, stride, size, begin_masked):
    """reference_ops::StartForAxis (DynamicStridedSliceParams)."""
    if start < 0:
        start += size
    start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
    if begin_masked:
        start = 0 if stride > 0 else size - 1
    return start


def _end_for_axis(end, stride, size, start, end_masked, shrink, offset):
    """reference_ops::EndForAxis (DynamicStridedSliceParams)."""
    if shrink:
        return start if start >= size else start + 1
    if offset:
        end += start
    if end < 0:
        end += size
    end = min(max(end, 0), size) if stride > 0 else min(max(end, -1), size - 1)
    if end_masked:
        end = size if stride > 0 else -1
    return end


def strided_slice_plan(in_shape, begin, end, strides, begin_mask, end_mask, ellipsis_mask,
                       new_axis_mask, shrink_axis_mask, offset, error):
    """TFLite's strided_slice.cc BuildStridedSliceParams + ResizeOutputTensor + EvalImpl.

    Returns (effective input shape, [range per effective axis], TFLite's output shape).
    ``error(msg)`` builds the exception to raise.
    """
    input_dims = len(in_shape)
    begin_count = len(begin)
    num_add_axis = sum(1 for i in range(begin_count)
                       if not _bit(ellipsis_mask, i) and _bit(new_axis_mask, i))
    eff = input_dims + num_add_axis

    def build(start_and_end):
        starts, stops, st = [0] * eff, [0] * eff, [1] * eff
        bm = em = sm = 0
        eff_ell = eff_new = 0
        ell_start, expanded = eff, 0
        i = 0
        while i < eff:
            if _bit(ellipsis_mask, i):
                ell_start = i
                ell_end = max(i + 1, min(i + 1 + num_add_axis + input_dims - begin_count, eff))
                expanded = ell_end - ell_start - 1
                while i < ell_end:
                    eff_ell |= 1 << i
                    i += 1
                continue
            if _bit(new_axis_mask, i - expanded):
                eff_new |= 1 << i
            i += 1
        shape = [0] * eff
        added_ell = added_axes = 0

        def in_dim(k):
            if not 0 <= k < input_dims:
                raise error(f"the masks index input dimension {k} of a {input_dims}-D input")
            return in_shape[k]

        for i in range(eff):
            if eff_ell >> i & 1:
                added_ell = max(0, i - ell_start)
                bm |= 1 << i
                em |= 1 << i
                st[i] = 1
                shape[i] = in_dim(i - added_axes)
            elif eff_new >> i & 1:
                starts[i], stops[i], st[i] = 0, 1, 1
                shape[i] = 1
                added_axes += 1
            elif i >= begin_count + expanded:
                starts[i], stops[i], st[i] = 0, 0, 1
                bm |= 1 << i
                em |= 1 << i
                shape[i] = in_dim(i - added_axes)
            else:
                orig = i - added_ell
                if not 0 <= orig < begin_count:
                    raise error(f"the masks index begin/end/strides element {orig} of "
                                f"{begin_count}")
                if start_and_end:
                    starts[i], stops[i] = int(begin[orig]), int(end[orig])
                st[i] = int(strides[orig])
                if _bit(begin_mask, orig):
                    bm |= 1 << i
                if _bit(end_mask, orig):
                    em |= 1 << i
                if _bit(shrink_axis_mask, orig):
                    sm |= 1 << i
                shape[i] = in_dim(i - added_axes)
        return starts, stops, st, bm, em, sm, shape

    # ResizeOutputTensor: the output shape TFLite allocates.
    starts, stops, st, bm, em, sm, shape = build(not offset)
    out_shape = []
    for idx in range(eff - 1, -1, -1):
        stride = st[idx]
        if stride == 0:
            raise error("stride value has to be non-zero")
        if sm >> idx & 1:
            continue
        if offset:
            if idx >= len(end):
                raise error(f"offset mode reads end[{idx}] of {len(end)}")
            dim = int(end[idx])
        else:
            b = _start_for_axis(starts[idx], stride, shape[idx], bm >> idx & 1)
            e = _end_for_axis(stops[idx], stride, shape[idx], b, em >> idx & 1, False, False)
            dim = e - b
        if (dim < 0) != (stride < 0):
            dim = 0
        elif stride < 0:
            dim = (dim + 1) // stride + 1  # both operands <= 0: trunc == floor
        else:
            dim = 0 if dim == 0 else (dim - 1) // stride + 1
        out_shape.append(dim)
    out_shape = tuple(reversed(out_shape))

    # EvalImpl: the elements actually written.
    starts, stops, st, bm, em, sm, shape = build(True)
    ranges = []
    for a in range(eff):
        b = _start_for_axis(starts[a], st[a], shape[a], bm >> a & 1)
        e = _end_for_axis(stops[a], st[a], shape[a], b, em >> a & 1, sm >> a & 1, offset)
        ranges.append(range(b, e, st[a]))
    # The elements are written sequentially, so only the count has to match the allocation.
    written = int(np.prod([len(r) for r in ranges], dtype=np.int64))
    if written != int(np.prod(out_shape, dtype=np.int64)):
        raise error(f"TFLite allocates an output of shape {list(out_shape)} but writes "
                    f"{written} elements (per axis {[len(r) for r in ranges]}); the rest of "
                    f"its output would be uninitialized memory")
    return tuple(shape), ranges, out_shape


@lowering("STRIDED_SLICE")
def lower_strided_slice(op, ctx):
    if _n_inputs(op) != 4:
        raise ctx.error(op, f"takes 4 inputs, got {_n_inputs(op)}")
    _check_same_dtype(op, ctx)
    in_shape = _shape(ctx, op.inputs[0])
    begin = _const_ints(op, ctx, 1, "begin")
    end = _const_ints(op, ctx, 2, "end")
    strides = _const_ints(op, ctx, 3, "strides")
    if begin.ndim != 1 or end.ndim != 1 or strides.ndim != 1 or begin.size != end.size:
        raise ctx.error(op, f"begin/end/strides must be vectors of equal length (begin "
                            f"{list(begin.shape)}, end {list(end.shape)})")
    if begin.size > 31:
        raise ctx.error(op, "StridedSlice supports up to 31 indices")
    a = op.attrs
    masks = {k: int(a.get(k, 0) or 0) for k in ("begin_mask", "end_mask", "ellipsis_mask",
                                                 "new_axis_mask", "shrink_axis_mask")}
    offset = bool(a.get("offset", False))
    eff_shape, ranges, out_shape = strided_slice_plan(
        in_shape, begin.tolist(), end.tolist(), strides.tolist(), offset=offset,
        error=lambda msg: ctx.error(op, msg), **masks)
    _check_out_shape(op, ctx, out_shape)
    starts, stops, steps = [], [], []
    for r in ranges:
        if len(r) == 0:
            starts.append(0), stops.append(0), steps.append(1)
        else:
            nxt = r[-1] + r.step  # numpy slice stop; -1 (before index 0) means "to the start"
            starts.append(r.start), stops.append(nxt if nxt >= 0 else -1), steps.append(r.step)
    inputs, const = _data_input(op, ctx)
    params = StridedSliceParams(eff_shape=np.array(eff_shape, dtype=np.int64),
                                start=np.array(starts, dtype=np.int64),
                                stop=np.array(stops, dtype=np.int64),
                                step=np.array(steps, dtype=np.int64),
                                shape=np.array(out_shape, dtype=np.int64), const_input=const)
    desc = ", ".join(f"{r.start}:{r.stop}:{r.step}" for r in ranges)
    return ctx.layer(op, "strided_slice", inputs=inputs, params=params,
                     summary=f"strided slice [{desc}]: {list(in_shape)} -> {list(out_shape)}")


# -- RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR ----------------------------------------------------

def _resize_common(op, ctx):
    if _n_inputs(op) != 2:
        raise ctx.error(op, f"takes 2 inputs, got {_n_inputs(op)}")
    in_shape = _shape(ctx, op.inputs[0])
    if len(in_shape) != 4:
        raise ctx.error(op, f"input has shape {list(in_shape)}; TFLite requires a 4-D NHWC input")
    size = _const_ints(op, ctx, 1, "size")
    if size.ndim != 1 or size.size != 2:
        raise ctx.error(op, f"size has shape {list(size.shape)}; TFLite requires [2]")
    oh, ow = int(size[0]), int(size[1])
    if oh <= 0 or ow <= 0:
        raise ctx.error(op, f"output size {[oh, ow]} must be positive")
    out_shape = _check_out_shape(op, ctx, (in_shape[0], oh, ow, in_shape[3]))
    return in_shape, out_shape, bool(op.attrs.get("align_corners", False)), \
        bool(op.attrs.get("half_pixel_centers", False))


def nearest_indices(in_size: int, out_size: int, align_corners: bool,
                    half_pixel_centers: bool) -> np.ndarray:
    """reference_ops::GetNearestNeighbor for every output coordinate, in float32 like TFLite."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5) if half_pixel_centers else np.float32(0.0)
    v = (np.arange(out_size).astype(np.float32) + offset) * np.float32(scale)
    v = round_half_away_f32(v) if align_corners else np.floor(v)
    idx = np.minimum(v.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        idx = np.maximum(idx, 0)
    return idx.astype(np.int64)


@lowering("RESIZE_NEAREST_NEIGHBOR")
def lower_resize_nearest(op, ctx):
    _check_same_dtype(op, ctx, INT_TYPES + (np.dtype(np.float32),))
    in_shape, out_shape, ac, hpc = _resize_common(op, ctx)
    yi = nearest_indices(in_shape[1], out_shape[1], ac, hpc)
    xi = nearest_indices(in_shape[2], out_shape[2], ac, hpc)
    if (yi < 0).any() or (xi < 0).any():
        raise ctx.error(op, "a source index is negative (TFLite would read before the input)")
    inputs, const = _data_input(op, ctx)
    params = ResizeNearestParams(y_index=yi, x_index=xi, const_input=const)
    return ctx.layer(op, "resize_nearest", inputs=inputs, params=params,
                     summary=f"resize nearest {list(in_shape[1:3])} -> {list(out_shape[1:3])} "
                             f"(align_corners={ac}, half_pixel_centers={hpc})")


def _trunc_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero), b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def bilinear_axis(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool):
    """ComputeInterpolationValuesInteger for every output coordinate of one axis.

    Returns (lower index, upper index, frac) int64 arrays where frac = scaled - 1024 * lower is
    the Q10 weight of the upper sample (1024 - frac weights the lower one).
    """
    scale_10 = ((1 << 10) * in_size + out_size // 2) // out_size
    if align_corners and out_size > 1:
        scale_10 = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    lo, hi, frac = [], [], []
    for v in range(out_size):
        if half_pixel_centers:
            scaled = v * scale_10 + scale_10 // 2 - (1 << 9)
        else:
            scaled = v * scale_10
        low = max(_trunc_div(scaled, 1 << 10), 0)
        up = min(_trunc_div(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
        lo.append(low), hi.append(up), frac.append(scaled - (1 << 10) * low)
    return (np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64),
            np.array(frac, dtype=np.int64), scale_10)


@lowering("RESIZE_BILINEAR")
def lower_resize_bilinear(op, ctx):
    dt = _check_same_dtype(op, ctx, (np.dtype(np.int8), np.dtype(np.int16)))
    in_shape, out_shape, ac, hpc = _resize_common(op, ctx)
    if ac and hpc:
        raise ctx.error(op, "align_corners and half_pixel_centers are both set; TFLite "
                            "rejects this combination")
    y0, y1, fy, sy = bilinear_axis(in_shape[1], out_shape[1], ac, hpc)
    x0, x1, fx, sx = bilinear_axis(in_shape[2], out_shape[2], ac, hpc)
    for name, a, n in (("row", y0, in_shape[1]), ("row", y1, in_shape[1]),
                       ("column", x0, in_shape[2]), ("column", x1, in_shape[2])):
        if (a < 0).any() or (a >= n).any():
            raise ctx.error(op, f"a source {name} index falls outside the input (TFLite would "
                                f"read out of bounds for this size ratio)")
    # Final Q20 -> integer step: (v +- 2^19) / 2^20 (C division) = round half away from zero;
    # a TFLITE_SINGLE_ROUNDING build does (v + 2^19) >> 20 = round half up.
    rounding = Rounding.half_up if ctx.requant_scheme == RequantScheme.tflite_single \
        else Rounding.half_away_from_zero
    inputs, const = _data_input(op, ctx)
    params = ResizeBilinearParams(y0=y0, y1=y1, fy=fy, x0=x0, x1=x1, fx=fx, rounding=rounding,
                                  const_input=const)
    return ctx.layer(op, "resize_bilinear", inputs=inputs, params=params,
                     summary=f"resize bilinear {dt} {list(in_shape[1:3])} -> "
                             f"{list(out_shape[1:3])} (align_corners={ac}, "
                             f"half_pixel_centers={hpc}; Q10 scales {sy}, {sx})")


# -- QUANTIZE, DEQUANTIZE ------------------------------------------------------------------------

_REQUANT_OK = {
    np.dtype(np.int8): (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)),
    np.dtype(np.uint8): (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)),
    np.dtype(np.int16): (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32)),
    np.dtype(np.int32): (np.dtype(np.int8), np.dtype(np.int16)),
}


def _channel_axis_params(op, ctx, t, shape):
    """Per-channel (scales, zero points, axis) of tensor t, checked against shape."""
    q = ctx.tensor(t).quant
    axis = int(q.axis)
    if not 0 <= axis < len(shape) or shape[axis] != len(q.scales):
        raise ctx.error(op, f"tensor {t} has {len(q.scales)} per-channel scales along axis "
                            f"{axis}, which does not match its shape {list(shape)}")
    return q.scales.astype(np.float32), q.zero_points.astype(np.int64), axis


@lowering("QUANTIZE")
def lower_quantize(op, ctx):
    if _n_inputs(op) != 1:
        raise ctx.error(op, f"takes 1 input, got {_n_inputs(op)}")
    x, y = op.inputs[0], op.outputs[0]
    dx, dy = _dtype(ctx, x), _dtype(ctx, y)
    if not _quantized(ctx, y):
        raise ctx.error(op, "the output tensor is not quantized; TFLite requires affine "
                            "quantization on QUANTIZE's output")
    shape = _shape(ctx, x)
    _check_out_shape(op, ctx, shape)
    lo, hi = QRANGE.get(dy, (None, None))
    if dx == np.dtype(np.float32):
        if dy not in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)):
            raise ctx.error(op, f"float32 -> {dy} is not supported (int8, uint8, int16)")
        if ctx.is_const(x):
            raise ctx.error(op, "a constant float input is not supported")
        q = ctx.tensor(y).quant
        if q.per_channel:
            scales, zps, axis = _channel_axis_params(op, ctx, y, shape)
        else:
            scales, zps, axis = q.scales[:1].astype(np.float32), q.zero_points[:1], 0
        params = QuantizeFloatParams(scale_bits=_f32_bits_array(scales),
                                     zero_point=zps.astype(np.int64), axis=axis, qmin=lo,
                                     qmax=hi)
        desc = (f"per-channel axis {axis} ({len(scales)} scales)" if q.per_channel else
                f"scale {float(scales[0]):.9g}, zero point {int(zps[0])}")
        return ctx.layer(op, "quantize_float", inputs=[x], params=params,
                         summary=f"quantize float32 -> {dy}: {desc}")
    # Requantize use case.
    if dx not in _REQUANT_OK or dy not in _REQUANT_OK[dx]:
        raise ctx.error(op, f"{dx} -> {dy} is not supported by TFLite's QUANTIZE "
                            f"(requantization: int8/uint8 -> int8/uint8/int16, int16 -> "
                            f"int8/int16/int32, int32 -> int8/int16)")
    if not _quantized(ctx, x):
        raise ctx.error(op, "the input tensor is not quantized")
    if ctx.tensor(x).quant.per_channel or ctx.tensor(y).quant.per_channel:
        raise ctx.error(op, "per-channel requantization is not supported (TFLite uses the "
                            "per-tensor parameters only)")
    s_in, zp_in = _legacy_scale_zp(ctx, x)
    s_out, zp_out = _legacy_scale_zp(ctx, y)
    if dx == np.dtype(np.int16) and dy == np.dtype(np.int16) and (zp_in != 0 or zp_out != 0):
        raise ctx.error(op, f"int16 -> int16 requires zero points 0 (got {zp_in}, {zp_out})")
    # double(input scale) / double(output scale), then QuantizeMultiplier (in requant_params).
    real = float(np.float64(np.float32(s_in)) / np.float64(np.float32(s_out)))
    rq = ctx.requant_params([real])
    inputs, const = _data_input(op, ctx)
    params = RequantizeParams(in_zp=zp_in, const_input=const, requant=RequantParams(
        **rq._asdict(), out_zp=zp_out, act_min=lo, act_max=hi))
    return ctx.layer(op, "requantize", inputs=inputs, params=params,
                     summary=f"requantize {dx} -> {dy}: (q - {zp_in}) * {real:.9g} "
                             f"[M={int(rq.multiplier[0])}, shift={int(rq.shift[0])}] "
                             f"+ {zp_out}")


@lowering("DEQUANTIZE")
def lower_dequantize(op, ctx):
    if _n_inputs(op) != 1:
        raise ctx.error(op, f"takes 1 input, got {_n_inputs(op)}")
    x, y = op.inputs[0], op.outputs[0]
    dx, dy = _dtype(ctx, x), _dtype(ctx, y)
    if dx not in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)):
        raise ctx.error(op, f"{dx} input is not supported (int8, uint8, int16)")
    if dy != np.dtype(np.float32):
        raise ctx.error(op, f"output dtype {dy}; TFLite's DEQUANTIZE produces float32")
    shape = _shape(ctx, x)
    _check_out_shape(op, ctx, shape)
    q = ctx.tensor(x).quant
    if q is None:
        scales, zps, axis = np.zeros(1, np.float32), np.zeros(1, np.int64), 0
    elif q.per_channel:
        if dx == np.dtype(np.int16):
            raise ctx.error(op, "per-channel int16 dequantization is not supported by TFLite")
        scales, zps, axis = _channel_axis_params(op, ctx, x, shape)
    else:
        scales, zps, axis = q.scales[:1].astype(np.float32), q.zero_points[:1], 0
    if dx == np.dtype(np.int16) and q is not None and not q.per_channel and int(zps[0]) != 0:
        raise ctx.error(op, f"int16 input with zero point {int(zps[0])}; TFLite requires 0")
    inputs, const = _data_input(op, ctx)
    params = DequantizeParams(scale_bits=_f32_bits_array(scales),
                              zero_point=zps.astype(np.int64), axis=axis, const_input=const)
    desc = (f"per-channel axis {axis} ({len(scales)} scales)" if len(scales) > 1 else
            f"scale {float(scales[0]):.9g}, zero point {int(zps[0])}")
    return ctx.layer(op, "dequantize", inputs=inputs, params=params,
                     summary=f"dequantize {dx} -> float32: {desc}")
