"""Kernels of the MAC layers: accumulators, then requantization.

Without a hardware config the accumulators are TFLite's (hwsim.kernels.mac: exact sums, int32
wrapping for int8 layers). Layers lowered with a config carry an accumulator model
(``params.accumulator``, a :class:`hwsim.params.AccumulatorModel`): their accumulators come
from hwsim.kernels.accumulate (the array's order of additions, each wrapped/saturated to
acc_bits).

Prepare (once per layer and Network, hwsim.registry): the weights packed into the fast loops'
layout, and the tflite_double requantization's split shifts (:class:`MacData`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..params import MacParams
from ..registry import kernel
from ..vocab import RequantScheme
from . import accumulate, mac
from .requant import SplitShifts, requantize, split_shifts


class MacData(NamedTuple):
    """What a MAC kernel caches: ``packed`` weights (hwsim.kernels.mac.pack_*) and ``split``
    shifts of a tflite_double requantization (None for other schemes)."""
    packed: object
    split: SplitShifts | None


def _split(p: MacParams) -> SplitShifts | None:
    if p.requant.scheme != RequantScheme.tflite_double:
        return None
    return split_shifts(p.requant, p.channels)


def prepare_conv2d(layer) -> MacData:
    p = layer.params
    return MacData(mac.pack_conv2d_weights(p.weights, p.groups), _split(p))


def prepare_depthwise(layer) -> MacData:
    p = layer.params
    return MacData(mac.pack_depthwise_weights(p.weights, p.depth_multiplier), _split(p))


def prepare_fully_connected(layer) -> MacData:
    p = layer.params
    return MacData(mac.pack_fully_connected_weights(p.weights), _split(p))


@kernel("conv2d", prepare=prepare_conv2d)
def run_conv2d(layer, inputs, data: MacData):
    p = layer.params
    x = inputs[0]
    if p.accumulator is not None:
        acc = accumulate.accumulate(p, x, data.packed)
        return [requantize(acc, p.requant, x.dtype, data.split)], acc
    acc = mac.conv2d_acc(x, data.packed, p.bias, p.input_offset, p.stride_h, p.stride_w,
                         p.dilation_h, p.dilation_w, p.pad_top, p.pad_left, p.out_h, p.out_w,
                         p.groups)
    acc = _acc_type(acc, p)
    return [requantize(acc, p.requant, x.dtype, data.split)], acc


@kernel("depthwise_conv2d", prepare=prepare_depthwise)
def run_depthwise(layer, inputs, data: MacData):
    p = layer.params
    x = inputs[0]
    if p.accumulator is not None:
        acc = accumulate.accumulate(p, x, data.packed)
        return [requantize(acc, p.requant, x.dtype, data.split)], acc
    acc = mac.depthwise_conv2d_acc(x, data.packed, p.bias, p.input_offset, p.stride_h,
                                   p.stride_w, p.dilation_h, p.dilation_w, p.pad_top,
                                   p.pad_left, p.out_h, p.out_w, p.depth_multiplier)
    acc = _acc_type(acc, p)
    return [requantize(acc, p.requant, x.dtype, data.split)], acc


@kernel("fully_connected", prepare=prepare_fully_connected)
def run_fully_connected(layer, inputs, data: MacData):
    p = layer.params
    x = inputs[0].reshape(p.batch, p.depth)
    if p.accumulator is not None:
        acc = accumulate.accumulate(p, x, data.packed)
    else:
        acc = _acc_type(mac.fully_connected_acc(x, data.packed, p.bias, p.input_offset), p)
    out = requantize(acc, p.requant, inputs[0].dtype, data.split)
    return [out.reshape(p.out_shape)], acc


def _acc_type(acc: np.ndarray, p: MacParams) -> np.ndarray:
    """16x8 layers with an int32 bias accumulate in int32 in TFLite (AccumScalar = bias type)."""
    if acc.dtype == np.int64 and not p.acc_int64:
        return acc.astype(np.int32)  # exact: TFLite's int32 accumulator would hold the same value
    return acc
