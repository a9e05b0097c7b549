"""Kernels of MAXIMUM / MINIMUM (TFLite reference semantics), and the no-op of a clamp fused
into the layer that produces its input.

TFLite's maximum_minimum.cc (reference_ops::MaximumMinimumBroadcastSlow) compares the stored
integers element by element with numpy broadcasting: ``el1 > el2 ? el1 : el2`` (MAXIMUM),
``el1 < el2 ? el1 : el2`` (MINIMUM); quantization parameters are not used. Constant operands
arrive in ``layer.params.constants`` (hwsim/lower/elementwise.py).
"""
from __future__ import annotations

import numba
import numpy as np

from ..registry import kernel
from .elementwise import _broadcast_flat, operands


@numba.njit(cache=True)
def _maximum_minimum(a, b, out, is_max):
    """MaximumOp / MinimumOp on flat, already broadcast operands."""
    for i in range(out.shape[0]):
        x = a[i]
        y = b[i]
        if is_max:
            out[i] = x if x > y else y
        else:
            out[i] = x if x < y else y


@numba.njit(cache=True)
def _maximum_minimum_scalar(a, c, out, is_max):
    """The same with a one-element operand ``c`` (max and min of integers commute)."""
    for i in range(out.shape[0]):
        x = a[i]
        if is_max:
            out[i] = x if x > c else c
        else:
            out[i] = x if x < c else c


@kernel("maximum_minimum")
def run_maximum_minimum(layer, inputs):
    p = layer.params
    a, b = operands(layer, inputs, 2)
    out_shape = tuple(p.out_shape)
    out = np.empty(int(np.prod(out_shape, dtype=np.int64)), dtype=a.dtype)
    if b.size == 1 and tuple(a.shape) == out_shape:
        _maximum_minimum_scalar(np.ascontiguousarray(a).reshape(-1), a.dtype.type(b.flat[0]),
                                out, p.is_max)
    elif a.size == 1 and tuple(b.shape) == out_shape:
        _maximum_minimum_scalar(np.ascontiguousarray(b).reshape(-1), b.dtype.type(a.flat[0]),
                                out, p.is_max)
    else:
        a, b = _broadcast_flat(a, b, out_shape)
        _maximum_minimum(a, b, out, p.is_max)
    return [out.reshape(out_shape)], None


@kernel("fused")
def run_fused(layer, inputs):
    """A MAXIMUM/MINIMUM fused into layer ``params.fused_into`` (hwsim.hw.network, placement
    "fused"): that layer applied the clamp (its act_min/act_max narrowed) and wrote this
    layer's output tensor, so there is nothing left to do. The same for a PAD folded into a
    convolution's padding (hwsim.passes.FoldPadIntoConv): the convolution reads the PAD's
    input."""
    return [], None
