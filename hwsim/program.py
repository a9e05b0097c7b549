"""Program: the hardware-facing truth. One Layer per step, holding only integers.

Lowering (``hwsim.lower``) derives every integer constant once — multipliers, shifts, clamps,
padding, folded zero-point terms — into ``Layer.params``, a frozen dataclass of its kernel
family (:mod:`hwsim.params`: integers, integer arrays and the enums of :mod:`hwsim.vocab`).
The engine executes a Program; the export and the dataflow model read it. Nothing downstream
re-derives a constant, and nothing a kernel caches to run fast (packed weights, lookup tables)
is stored here: that is the kernel's prepared data (hwsim.registry, hwsim.engine).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .params import Params
from .vocab import RequantScheme


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scales: np.ndarray  # float32; empty when not quantized
    zero_points: np.ndarray  # int64; same length
    axis: int = 0


@dataclass
class Layer:
    index: int  # position in the program (== the op's index in the graph for TFLite models)
    op: str  # the source op type, e.g. "CONV_2D"
    kernel: str  # kernel name in hwsim.registry.KERNELS
    inputs: list[int]  # tensor indices of the non-constant inputs, in the kernel's order
    outputs: list[int]
    params: Params | None = None  # the kernel family's typed parameters (hwsim.params)
    macs: int = 0
    has_acc: bool = False  # the kernel also returns its accumulators (CONV/DEPTHWISE/FC)
    summary: str = ""  # one-line quantization summary for `hwsim info`


@dataclass
class Program:
    layers: list[Layer]
    tensors: list[TensorInfo]
    constants: dict[int, np.ndarray]
    inputs: list[int]
    outputs: list[int]
    source: str = ""
    requant_scheme: RequantScheme = RequantScheme.tflite_double  # the config's, or TFLite's build

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


# A kernel (hwsim.registry): (layer, inputs[, prepared data]) -> (outputs, accumulators or None)
KernelFn = Callable[..., tuple[list[np.ndarray], "np.ndarray | None"]]
