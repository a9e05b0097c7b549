"""GraphBuilder: assemble a quantized graph IR by hand.

Used to generate the bundled example network and the single-op models the tests feed to both
hwsim and TFLite's reference kernels (via :func:`hwsim.frontends.tflite_writer.serialize_tflite`).

    b = GraphBuilder("one_conv")
    x = b.input("x", (1, 8, 8, 3), np.int8, scale=0.02, zero_point=-3)
    w = b.const("w", w_int8, scales=w_scales, axis=0)
    bias = b.const("bias", b_int32, scales=0.02 * w_scales, axis=0)
    y = b.activation("y", (1, 8, 8, 4), np.int8, scale=0.05, zero_point=2)
    b.op("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
         dilation_w_factor=1, dilation_h_factor=1, fused_activation_function="NONE")
    b.output(y)
    model_bytes = b.tflite()
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op, QuantParams, Tensor


class GraphBuilder:
    def __init__(self, name: str = "main"):
        self.name = name
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    @staticmethod
    def _quant(scale, zero_point, axis) -> QuantParams | None:
        if scale is None:
            return None
        scales = np.atleast_1d(np.asarray(scale, dtype=np.float32))
        zps = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, dtype=np.int64))
        if len(zps) == 1 and len(scales) > 1:
            zps = np.repeat(zps, len(scales))
        return QuantParams(scales, zps, int(axis))

    def tensor(self, name, shape, dtype, scale=None, zero_point=None, axis=0, data=None) -> int:
        t = Tensor(len(self.tensors), name, tuple(int(s) for s in shape), np.dtype(dtype),
                   self._quant(scale, zero_point, axis),
                   None if data is None else np.ascontiguousarray(data, dtype=dtype))
        self.tensors.append(t)
        return t.index

    def input(self, name, shape, dtype, scale=None, zero_point=None) -> int:
        i = self.tensor(name, shape, dtype, scale, zero_point)
        self.inputs.append(i)
        return i

    def activation(self, name, shape, dtype, scale=None, zero_point=None) -> int:
        return self.tensor(name, shape, dtype, scale, zero_point)

    def const(self, name, data, scales=None, zero_points=None, axis=0, dtype=None) -> int:
        data = np.asarray(data, dtype=dtype) if dtype is not None else np.asarray(data)
        return self.tensor(name, data.shape, data.dtype, scales, zero_points, axis, data)

    def op(self, op_type: str, inputs, outputs, version: int = 1, **attrs) -> int:
        self.ops.append(Op(len(self.ops), op_type, [int(i) for i in inputs],
                           [int(o) for o in outputs], dict(attrs), version))
        return len(self.ops) - 1

    def output(self, index: int) -> None:
        self.outputs.append(index)

    def build(self) -> Graph:
        return Graph(list(self.tensors), list(self.ops), list(self.inputs), list(self.outputs),
                     self.name, f"<{self.name}>")

    def tflite(self) -> bytes:
        from .tflite_writer import serialize_tflite
        return serialize_tflite(self.build())
