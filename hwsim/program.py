"""Program: the hardware-facing truth. One Layer per step, holding only integers.

Lowering (``hwsim.lower``) derives every integer constant once — multipliers, shifts, clamps,
padding, folded zero-point terms — into ``Layer.params``. The engine executes a Program; the
export and the dataflow model read it. Nothing downstream re-derives a constant.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


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
    params: dict[str, Any] = field(default_factory=dict)  # integers and integer arrays only
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
    requant_scheme: str = "tflite_double"

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


KernelFn = Callable[[Layer, list[np.ndarray]], tuple[list[np.ndarray], "np.ndarray | None"]]
