"""Kernels of the MAC layers: accumulators, then requantization.

Without a hardware config the accumulators are TFLite's (hwsim.kernels.mac: exact sums, int32
wrapping for int8 layers). Layers lowered with a config carry an accumulator model
(``params.accumulator``, a :class:`hwsim.params.AccumulatorModel`): their accumulators come
from hwsim.kernels.accumulate (the array's order of additions, each wrapped/saturated to
acc_bits).

Prepare (once per layer and Network, hwsim.registry): the weights packed into the fast loops'
layout, and the tflite_double requantization's split shifts (:class:`MacData`).

Fused requantization: an int8 layer with TFLite's accumulators and the tflite_double scheme is
requantized inside the tile kernels (hwsim.kernels.mac, ``requant=``), so its int32
accumulators never exist in memory. That is the kernels' ``outputs_only`` form, which the
engine calls when nothing asks for the accumulators (an untraced run); a call through the
registry still returns them (the separate path; tests/test_kernels_fused.py checks both give
the same integers).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..params import MacParams
from ..registry import InputViews, binder, kernel
from ..vocab import RequantScheme
from . import accumulate, depthwise_small, fnptr, gemv, mac, threads
from .requant import SplitShifts, requantize, split_shifts


class MacData(NamedTuple):
    """What a MAC kernel caches: ``packed`` weights (hwsim.kernels.mac.pack_*), ``split``
    shifts of a tflite_double requantization (None for other schemes) and the ``fused`` form
    of that requantization (mac.FusedRequant; None where it does not apply)."""
    packed: object
    split: SplitShifts | None
    fused: mac.FusedRequant | None = None
    call: object = None  # mac.*_fused_call: the fused call with its arguments prepared
    conv: object = None  # depthwise of one input channel: its weights packed as a CONV_2D's
    small: object = None  # depthwise_small.plan's arguments (depthwise_small.applies)
    gemv: object = None  # (block, *gemv.vnni_pack's weights and offset term) of a FULLY_CONNECTED on gemv_vnni(256)


def _data(p: MacParams, packed) -> MacData:
    if p.requant.scheme != RequantScheme.tflite_double:
        return MacData(packed, None)
    split = split_shifts(p.requant, p.channels)
    fused = None
    if p.accumulator is None and split.vec_ok:
        rq = p.requant
        fused = mac.fused_requant(split.cp, rq.out_zp, rq.act_min, rq.act_max)
    return MacData(packed, split, fused)


def prepare_conv2d(layer) -> MacData:
    p = layer.params
    d = _data(p, mac.pack_conv2d_weights(p.weights, p.groups))
    if d.fused is None:
        return d
    return d._replace(call=mac.conv2d_fused_call(
        d.packed, p.bias, p.input_offset, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
        p.pad_top, p.pad_left, p.out_h, p.out_w, p.groups, d.fused))


def prepare_depthwise(layer) -> MacData:
    p = layer.params
    d = _data(p, mac.pack_depthwise_weights(p.weights, p.depth_multiplier))
    if d.fused is None:
        return d
    cw = _one_channel_conv_weights(p, d.packed)
    if cw is not None:
        # one input channel: the layer is a CONV_2D of Cin = 1, Cout = depth_multiplier (the
        # same products and int32 sums); the conv kernels run person_detect's first layer
        # (96x96x1 x8, 3x3 stride 2) in 14 us against 41 us on the depthwise band kernel
        return d._replace(conv=cw, call=mac.conv2d_fused_call(
            cw, p.bias, p.input_offset, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
            p.pad_top, p.pad_left, p.out_h, p.out_w, 1, d.fused))
    call = mac.depthwise_fused_call(
        d.packed, p.bias, p.input_offset, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
        p.pad_top, p.pad_left, p.out_h, p.out_w, p.depth_multiplier, d.fused)
    small = _small_plan(p, d)
    if small is not None:
        return d._replace(small=small, call=_small_call(p, small, call))
    return d._replace(call=call)


def _small_plan(p: MacParams, d: MacData):
    """hwsim.kernels.depthwise_small's arguments for a layer of 2..31 channels or of narrow
    rows (strides 1 and 2 across, AVX-512 CPUs: ``depthwise_small.applies``), else None."""
    _, kh, kw, cout = d.packed.shape
    if not (mac.USE_DW512 and depthwise_small.applies(cout, int(p.depth_multiplier),
                                                      int(p.input_offset), int(p.stride_w),
                                                      int(p.out_w), kh, kw)):
        return None
    if int(p.out_h) < 1 or int(p.out_w) < 1:
        return None
    fq = d.fused
    return depthwise_small.plan(
        mac.unpack_depthwise_weights(d.packed), mac._bias_array(p.bias, cout, False, "depthwise"),
        int(p.input_offset), fq.cp, fq.zp, fq.lo, fq.hi, kh, kw, int(p.stride_h),
        int(p.stride_w), int(p.dilation_h), int(p.dilation_w), int(p.pad_top), int(p.pad_left),
        int(p.out_h), int(p.out_w))


def _small_call(p: MacParams, small: tuple, other):
    """The fused call on depthwise_small for int8 NHWC inputs of the layer's channels; any
    other input goes to ``other`` (mac.depthwise_fused_call: its checks and errors)."""
    oh, ow, c, taps = int(p.out_h), int(p.out_w), int(p.weights.shape[3]), \
        int(p.weights.shape[1]) * int(p.weights.shape[2])

    def call(x):
        if type(x) is not np.ndarray or x.dtype != np.int8 or x.ndim != 4 or x.shape[3] != c:
            return other(x)
        out = np.empty((x.shape[0], oh, ow, c), np.int8)
        if out.size:
            depthwise_small.run(np.ascontiguousarray(x), small, out, out.size * taps)
        return out
    return call


def _one_channel_conv_weights(p: MacParams, pk) -> mac.PackedConvWeights | None:
    """A depthwise layer's weights as a CONV_2D's (OHWI: (1, KH, KW, M) -> (M, KH, KW, 1)) when
    it has one input channel (depth multiplier = output channels), else None."""
    _, kh, kw, cout = pk.shape
    if int(p.depth_multiplier) != cout:
        return None
    w = mac.unpack_depthwise_weights(pk).reshape(kh, kw, cout)
    return mac.pack_conv2d_weights(np.ascontiguousarray(w.transpose(2, 0, 1)[..., None]), 1)


#: A FULLY_CONNECTED of a few int8 rows on gemv.gemv_vnni where the CPU has AVX512-VNNI
#: (mac.USE_VNNI512), on gemv.gemv_vnni256 where it has VNNI on ymm only (mac.USE_VNNI), else
#: gemv.gemv_fused (benchmarks/bench_ab.py GEMV_VNNI --module conv).
GEMV_VNNI = True


def prepare_fully_connected(layer) -> MacData:
    p = layer.params
    d = _data(p, mac.pack_fully_connected_weights(p.weights))
    if GEMV_VNNI and mac.USE_VNNI and p.weights is not None and _gemv_ok(p):
        cout = d.packed.shape[0]
        block = 16 if mac.USE_VNNI512 else 8
        w = np.asarray(p.weights, np.int8).reshape(cout, p.depth)
        d = d._replace(gemv=(block,) + gemv.vnni_pack(w, p.input_offset, block))
    return d


def _fuse(data: MacData, p: MacParams, x) -> mac.FusedRequant | None:
    return data.fused if data.fused is not None and mac.can_fuse(x, p.input_offset) else None


def _outputs_only(run):
    """``run.outputs_only(layer, inputs, data)``: the outputs without the accumulators, which
    lets the kernel requantize in registers (the engine's untraced runs)."""
    run.outputs_only = lambda layer, inputs, data: run(layer, inputs, data, want_acc=False)[0]
    return run


@_outputs_only
@kernel("conv2d", prepare=prepare_conv2d)
def run_conv2d(layer, inputs, data: MacData, want_acc: bool = True):
    p = layer.params
    x = inputs[0]
    if not want_acc and _fuse(data, p, x) is not None:
        return [data.call(x)], None
    if p.accumulator is not None:
        acc = accumulate.accumulate(p, x, data.packed)
        return [requantize(acc, p.requant, x.dtype, data.split)], acc
    acc = mac.conv2d_acc(x, data.packed, p.bias, p.input_offset, p.stride_h, p.stride_w,
                         p.dilation_h, p.dilation_w, p.pad_top, p.pad_left, p.out_h, p.out_w,
                         p.groups)
    acc = _acc_type(acc, p)
    return [requantize(acc, p.requant, x.dtype, data.split)], acc


@_outputs_only
@kernel("depthwise_conv2d", prepare=prepare_depthwise)
def run_depthwise(layer, inputs, data: MacData, want_acc: bool = True):
    p = layer.params
    x = inputs[0]
    if not want_acc and _fuse(data, p, x) is not None:
        return [data.call(x)], None
    if p.accumulator is not None:
        acc = accumulate.accumulate(p, x, data.packed)
        return [requantize(acc, p.requant, x.dtype, data.split)], acc
    acc = mac.depthwise_conv2d_acc(x, data.packed, p.bias, p.input_offset, p.stride_h,
                                   p.stride_w, p.dilation_h, p.dilation_w, p.pad_top,
                                   p.pad_left, p.out_h, p.out_w, p.depth_multiplier)
    acc = _acc_type(acc, p)
    return [requantize(acc, p.requant, x.dtype, data.split)], acc


@_outputs_only
@kernel("fully_connected", prepare=prepare_fully_connected)
def run_fully_connected(layer, inputs, data: MacData, want_acc: bool = True):
    p = layer.params
    x = inputs[0].reshape(p.batch, p.depth)
    if not want_acc and x.dtype == np.int8 and _gemv_ok(p):
        out = np.empty((p.batch, data.packed.shape[0]), np.int8)
        _gemv(_gemv_args(p, data), np.ascontiguousarray(x), out)
        return [out.reshape(p.out_shape)], None
    fq = None if want_acc or p.weights_offset else _fuse(data, p, x)
    if fq is not None:
        out = mac.fully_connected_acc(x, data.packed, p.bias, p.input_offset, requant=fq)
        return [out.reshape(p.out_shape)], None
    if p.accumulator is not None:
        acc = accumulate.accumulate(p, x, data.packed)
    else:
        acc = _acc_type(mac.fully_connected_acc(x, data.packed, p.bias, p.input_offset), p)
        if p.weights_offset:
            acc = _add_weights_offset(acc, x, p)
    out = requantize(acc, p.requant, inputs[0].dtype, data.split)
    return [out.reshape(p.out_shape)], acc


def _gemv_ok(p: MacParams) -> bool:
    """An int8 FULLY_CONNECTED the matrix-vector kernel computes exactly: TFLite's
    accumulators, symmetric weights, an integer scheme, a few rows (hwsim.kernels.gemv)."""
    return (p.accumulator is None and not p.weights_offset and gemv.scheme_ok(p.requant)
            and gemv.applies(p.batch, p.input_offset))


def _gemv_args(p: MacParams, data: MacData) -> tuple:
    """(serial kernel, threaded kernel, their arguments but the input and output, MACs) of
    hwsim.kernels.gemv: on VNNI CPUs (mac.USE_VNNI, the weights packed when the layer was
    prepared) gemv_vnni (zmm) or gemv_vnni256 (ymm) with the packed weights and offset term,
    the uint8 scratch rows; else gemv_fused with the weights [O, K], the offset
    and the int16 scratch rows. Then the int32 bias, the requantization, zero point, clamp and
    the int32 sums' scratch."""
    cout = data.packed.shape[0]
    w = np.ascontiguousarray(np.asarray(p.weights, np.int8).reshape(cout, p.depth))
    bias = np.zeros(cout, np.int32) if p.bias is None else \
        np.ascontiguousarray(np.asarray(p.bias).astype(np.int32))
    rq = p.requant
    ending = (gemv.requant_args(rq, cout, data.split), np.int64(rq.out_zp), np.int64(rq.act_min),
              np.int64(rq.act_max))
    macs = p.batch * p.depth * cout
    if data.gemv is not None:  # packed by prepare_fully_connected
        block, wq, c = data.gemv
        kernels = (gemv.gemv_vnni, gemv.gemv_vnni_parallel) if block == 16 else \
            (gemv.gemv_vnni256, gemv.gemv_vnni256_parallel)
        return (*kernels,
                (wq, c, bias) + ending + (np.empty((p.batch, (p.depth + 3) // 4 * 4), np.uint8),
                                          np.empty(cout, np.int32)), macs)
    return (gemv.gemv_fused, gemv.gemv_fused_parallel,
            (w, bias, np.int32(p.input_offset)) + ending + (np.empty((p.batch, p.depth), np.int16),
                                                            np.empty(cout, np.int32)), macs)


def _gemv(args: tuple, x2d: np.ndarray, out2d: np.ndarray) -> None:
    serial, par, kargs, macs = args
    nt = threads.count() if macs >= mac.PARALLEL_MIN_MACS else 1
    if nt > 1:
        par(x2d, *kargs, out2d, nt)
    else:
        serial(x2d, *kargs, out2d)


def _add_weights_offset(acc: np.ndarray, x: np.ndarray, p) -> np.ndarray:
    """acc + weights_offset * sum_k (x[b, k] + input_offset): the per-tensor weight zero
    point's term of sum (x + input_offset)(w + weights_offset), in int64, then wrapped to the
    accumulator's type as TFLite's accumulator of that type wraps."""
    rows = (x.astype(np.int64) + p.input_offset).sum(axis=1, keepdims=True)
    full = acc.astype(np.int64) + np.int64(p.weights_offset) * rows
    return full.astype(acc.dtype)  # modular: two's-complement wrap into int32 (or int64)


def _acc_type(acc: np.ndarray, p: MacParams) -> np.ndarray:
    """16x8 layers with an int32 bias accumulate in int32 in TFLite (AccumScalar = bias type)."""
    if acc.dtype == np.int64 and not p.acc_int64:
        return acc.astype(np.int32)  # exact: TFLite's int32 accumulator would hold the same value
    return acc


# -- call plans (hwsim.registry ``bind``): the engine's untraced runs --------------------------
# A fused int8 layer is bound to its preallocated output: the kernel's argument list (mac's
# call plan) is made here once, so a call is the kernel call alone. Layers that keep
# accumulators or cannot fuse are not bound (the engine calls run_* for them).

def _bindable(layer, data: MacData, in_infos, outs) -> bool:
    p = layer.params
    return (data.fused is not None and len(in_infos) == 1 and len(outs) == 1
            and np.dtype(in_infos[0].dtype) == np.int8 and outs[0].dtype == np.int8
            and outs[0].size > 0 and mac._offset_ok(False, int(p.input_offset)))


@binder("conv2d")
def bind_conv2d(layer, data: MacData, in_infos, outs):
    p = layer.params
    if not _bindable(layer, data, in_infos, outs) or len(in_infos[0].shape) != 4:
        return None
    xshape = tuple(int(d) for d in in_infos[0].shape)
    cout = data.packed.shape[0]
    if (outs[0].shape != (xshape[0], int(p.out_h), int(p.out_w), cout) or 0 in xshape
            or xshape[3] != data.packed.shape[3] * int(p.groups)):
        return None
    b = mac._bias_array(p.bias, cout, False, "conv2d")
    plan = mac._conv_plan(xshape, False, data.packed, b, int(p.input_offset), int(p.stride_h),
                          int(p.stride_w), int(p.dilation_h), int(p.dilation_w),
                          int(p.pad_top), int(p.pad_left), int(p.out_h), int(p.out_w),
                          int(p.groups))
    return _bound(mac.conv2d_bound_call(plan, outs[0], data.fused))


def _bound(run, thunk=None):
    """The bind step's ``call(ins)`` for a one-input ``run(x)``, with the ``thunk`` of ``run``
    (registry.binder) passed on."""
    def call(ins):
        run(ins[0])
    thunk = thunk or getattr(run, "thunk", None)
    if thunk is not None:
        call.thunk = lambda ins: thunk(ins[0])
    return call


@binder("depthwise_conv2d")
def bind_depthwise(layer, data: MacData, in_infos, outs):
    p = layer.params
    if not _bindable(layer, data, in_infos, outs) or len(in_infos[0].shape) != 4:
        return None
    xshape = tuple(int(d) for d in in_infos[0].shape)
    pk = data.packed
    _, kh, kw, cout = pk.shape
    if (outs[0].shape != (xshape[0], int(p.out_h), int(p.out_w), cout) or 0 in xshape
            or xshape[3] * int(p.depth_multiplier) != cout):
        return None
    b = mac._bias_array(p.bias, cout, False, "depthwise_conv2d")
    if data.conv is not None:  # one input channel: the CONV_2D kernels (prepare_depthwise)
        plan = mac._conv_plan(xshape, False, data.conv, b, int(p.input_offset), int(p.stride_h),
                              int(p.stride_w), int(p.dilation_h), int(p.dilation_w),
                              int(p.pad_top), int(p.pad_left), int(p.out_h), int(p.out_w), 1)
        run = mac.conv2d_bound_call(plan, outs[0], data.fused)
    elif data.small is not None:  # depthwise_small.applies (prepare_depthwise)
        small, out, macs = data.small, outs[0], outs[0].size * kh * kw
        run = depthwise_small.bound_call(small, out, macs)
        return _bound(run, lambda x: depthwise_small.thunk(x, small, out, macs)
                      if type(x) is np.ndarray and x.dtype == np.int8 and x.flags.c_contiguous else None)
    else:
        run = _bind_depthwise_kernel(p, data, b, outs[0])
    return _bound(run)


def _bind_depthwise_kernel(p: MacParams, data: MacData, b, out):
    _, kh, kw, cout = data.packed.shape
    pk = data.packed
    head = mac._dw_head(pk, b, int(p.input_offset), int(p.depth_multiplier), kh, kw,
                        int(p.stride_h), int(p.stride_w), int(p.dilation_h), int(p.dilation_w),
                        int(p.pad_top), int(p.pad_left), int(p.out_h), int(p.out_w),
                        data.fused)
    return mac.depthwise_bound_call(head, out.size * kh * kw, out, data.fused)


@binder("fully_connected")
def bind_fully_connected(layer, data: MacData, in_infos, outs):
    """An int8 FULLY_CONNECTED of at most gemv.MAX_ROWS rows: the matrix-vector kernel on the
    output buffer (any integer scheme)."""
    p = layer.params
    if len(in_infos) != 1 or len(outs) != 1 or np.dtype(in_infos[0].dtype) != np.int8 or \
            outs[0].dtype != np.int8 or not _gemv_ok(p) or \
            int(np.prod(in_infos[0].shape, dtype=np.int64)) != p.batch * p.depth or \
            outs[0].size != p.batch * data.packed.shape[0] or outs[0].size == 0:
        return None
    args, views = _gemv_args(p, data), InputViews((p.batch, p.depth))
    out2d = outs[0].reshape(p.batch, data.packed.shape[0])

    def call(ins):
        _gemv(args, views(ins)[0], out2d)

    def thunk(ins):
        """call(ins) for these very inputs: the kernel bound with every argument (per thread
        count for a threaded one, fnptr.per_thread_count)."""
        x = ins[0]
        if type(x) is not np.ndarray or x.dtype != np.int8 or not x.flags.c_contiguous:
            return None
        x2d = x.reshape(p.batch, p.depth)
        serial, par, kargs, macs = args
        one = lambda: fnptr.direct(serial, x2d, *kargs, out2d)  # noqa: E731
        if macs < mac.PARALLEL_MIN_MACS:
            return one()
        return fnptr.per_thread_count(lambda nt: fnptr.direct(par, x2d, *kargs, out2d, nt), one)
    call.thunk = thunk
    return call
