"""Kernels of the MAC layers: accumulators, then requantization.

Without a hardware config the accumulators are TFLite's (hwsim.kernels.mac: exact sums, int32
wrapping for int8 layers). Layers lowered with a config carry the accumulator model
(``acc_bits`` in their params): their accumulators come from hwsim.kernels.accumulate (the
array's order of additions, each wrapped/saturated to acc_bits).
"""
from __future__ import annotations

import numpy as np

from ..registry import kernel
from . import accumulate, mac
from .requant import requantize


@kernel("conv2d")
def run_conv2d(layer, inputs):
    p = layer.params
    x = inputs[0]
    if "acc_bits" in p:
        acc = accumulate.accumulate("conv2d", p, x)
        return [requantize(acc, p, x.dtype)], acc
    acc = mac.conv2d_acc(x, p.get("packed", p["weights"]), p["bias"], p["input_offset"], p["stride_h"],
                         p["stride_w"], p["dilation_h"], p["dilation_w"], p["pad_top"],
                         p["pad_left"], p["out_h"], p["out_w"], p["groups"])
    acc = _acc_type(acc, p)
    return [requantize(acc, p, x.dtype)], acc


@kernel("depthwise_conv2d")
def run_depthwise(layer, inputs):
    p = layer.params
    x = inputs[0]
    if "acc_bits" in p:
        acc = accumulate.accumulate("depthwise_conv2d", p, x)
        return [requantize(acc, p, x.dtype)], acc
    acc = mac.depthwise_conv2d_acc(x, p.get("packed", p["weights"]), p["bias"], p["input_offset"], p["stride_h"],
                                   p["stride_w"], p["dilation_h"], p["dilation_w"],
                                   p["pad_top"], p["pad_left"], p["out_h"], p["out_w"],
                                   p["depth_multiplier"])
    acc = _acc_type(acc, p)
    return [requantize(acc, p, x.dtype)], acc


@kernel("fully_connected")
def run_fully_connected(layer, inputs):
    p = layer.params
    x = inputs[0].reshape(p["batch"], p["depth"])
    if "acc_bits" in p:
        acc = accumulate.accumulate("fully_connected", p, x)
    else:
        acc = _acc_type(mac.fully_connected_acc(x, p.get("packed", p["weights"]), p["bias"],
                                                p["input_offset"]), p)
    out = requantize(acc, p, inputs[0].dtype)
    return [out.reshape(p["out_shape"])], acc


def _acc_type(acc: np.ndarray, p: dict) -> np.ndarray:
    """16x8 layers with an int32 bias accumulate in int32 in TFLite (AccumScalar = bias type)."""
    if acc.dtype == np.int64 and not p["acc_int64"]:
        return acc.astype(np.int32)  # exact: TFLite's int32 accumulator would hold the same value
    return acc
