"""Graph IR: format-independent tensors and ops.

Frontends (``hwsim.frontends``) translate files into a :class:`Graph`; they compute nothing.
Lowering (``hwsim.lower``) turns a Graph into a :class:`hwsim.program.Program` of integer layers.

Quantization follows the affine identity ``real = scale * (q - zero_point)``; per-channel
tensors carry one scale/zero point per index along ``axis`` (TFLite's ``quantized_dimension``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class HwsimError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with code 2."""


class ModelError(HwsimError):
    """The model file is missing, corrupt, or uses something hwsim does not support."""


class InputError(HwsimError):
    """An input given by the user has the wrong shape, dtype or format."""


@dataclass
class QuantParams:
    scales: np.ndarray  # float32, one per channel (length 1 when per-tensor)
    zero_points: np.ndarray  # int64, same length as scales
    axis: int = 0  # quantized_dimension

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0])


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quant: QuantParams | None = None
    data: np.ndarray | None = None  # constant data (weights, biases, shapes); None for activations
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    index: int
    type: str  # TFLite builtin name, e.g. "CONV_2D"
    inputs: list[int]  # tensor indices; -1 marks an absent optional input
    outputs: list[int]
    attrs: dict[str, Any] = field(default_factory=dict)  # builtin options, snake_case, enums as str
    version: int = 1


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    name: str = ""
    source: str = ""  # the file it came from, for messages
    description: str = ""  # the model file's description (hwsim quantize records its config)

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def producers(self) -> dict[int, int]:
        """tensor index -> index of the op producing it."""
        return {t: op.index for op in self.ops for t in op.outputs}
