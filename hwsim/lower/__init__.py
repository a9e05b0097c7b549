"""Lowering: Graph (real-valued scales) -> Program (integers only).

Every integer constant a layer needs is derived here, once: requantization multipliers and
shifts, activation clamps, padding, folded zero-point terms. Op families register their
lowerings with :func:`hwsim.registry.lowering` in ``hwsim/lower/<family>.py``.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ..arith import quantize_multiplier
from ..ir import Graph, ModelError, Op, Tensor
from ..program import Layer, Program, TensorInfo

# Requantization schemes the engine's requant kernel implements (hwsim.kernels.requant).
REQUANT_SCHEMES = {"tflite_double": 0, "tflite_single": 1, "tflite_int64": 2, "mult_shift": 3,
                   "shift_only": 4, "double_round": 5}

QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255),
          np.dtype(np.int16): (-32768, 32767), np.dtype(np.int32): (-2**31, 2**31 - 1)}


def round_half_away_f32(v) -> np.ndarray:
    """TfLiteRound on float32 values (std::round: ties away from zero), exactly."""
    v = np.asarray(v, dtype=np.float32)
    r = np.trunc(v)
    frac = np.abs(v - r)  # exact in floating point
    return np.where(frac >= np.float32(0.5), r + np.sign(v), r).astype(np.float32)


class LoweringContext:
    """What a lowering function may use: the graph, constants, and shared derivations."""

    def __init__(self, graph: Graph, requant_scheme: str = "tflite_double"):
        self.graph = graph
        self.requant_scheme = requant_scheme

    # -- tensors -------------------------------------------------------------------------
    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def const(self, op: Op, index: int) -> np.ndarray:
        t = self.graph.tensors[index]
        if t.data is None:
            raise self.error(op, f"input tensor {index} '{t.name}' must be a constant")
        return t.data

    def is_const(self, index: int) -> bool:
        return index >= 0 and self.graph.tensors[index].data is not None

    def error(self, op: Op, msg: str) -> ModelError:
        src = self.graph.source or "model"
        return ModelError(f"{src}: op {op.index} ({op.type}, inputs {op.inputs}, outputs "
                          f"{op.outputs}): {msg}")

    def scale(self, index: int) -> float:
        t = self.graph.tensors[index]
        if t.quant is None:
            raise ModelError(f"{self.graph.source}: tensor {index} '{t.name}' is not quantized")
        return float(t.quant.scales[0])

    def zero_point(self, index: int) -> int:
        t = self.graph.tensors[index]
        return 0 if t.quant is None else int(t.quant.zero_points[0])

    def qrange(self, index: int) -> tuple[int, int]:
        t = self.graph.tensors[index]
        if np.dtype(t.dtype) not in QRANGE:
            raise ModelError(f"{self.graph.source}: tensor {index} '{t.name}' has dtype "
                             f"{t.dtype}; integer types int8/uint8/int16/int32 are supported")
        return QRANGE[np.dtype(t.dtype)]

    # -- derivations (each defined once) --------------------------------------------------
    def quantize_value(self, index: int, real: float) -> int:
        """TFLite's Quantize(scale, zero_point, f): zp + int(round(f / scale)) in float32."""
        t = self.graph.tensors[index]
        q = round_half_away_f32(np.float32(real) / np.float32(t.quant.scales[0]))
        return int(t.quant.zero_points[0]) + int(q)

    def activation_range(self, op: Op, fused: str | None, out_index: int) -> tuple[int, int]:
        """TFLite's CalculateActivationRangeQuantized for a fused activation."""
        qmin, qmax = self.qrange(out_index)
        fused = fused or "NONE"
        if fused == "NONE":
            return qmin, qmax
        if fused == "RELU":
            return max(qmin, self.quantize_value(out_index, 0.0)), qmax
        if fused == "RELU6":
            return (max(qmin, self.quantize_value(out_index, 0.0)),
                    min(qmax, self.quantize_value(out_index, 6.0)))
        if fused == "RELU_N1_TO_1":
            return (max(qmin, self.quantize_value(out_index, -1.0)),
                    min(qmax, self.quantize_value(out_index, 1.0)))
        raise self.error(op, f"fused activation {fused} is not supported on integer tensors")

    def requant_params(self, real_multipliers) -> dict:
        """Real scales -> the multipliers and shifts of the requantization scheme in force.

        TFLite schemes: Q31 multiplier + exponent from QuantizeMultiplier (frexp, round half
        away from zero, mantissa 2^31 folded into the exponent).
        """
        reals = np.atleast_1d(np.asarray(real_multipliers, dtype=np.float64))
        single = self.requant_scheme == "tflite_single"
        ms, ss = zip(*(quantize_multiplier(float(r), single) for r in reals))
        return {"multiplier": np.array(ms, dtype=np.int32), "shift": np.array(ss, dtype=np.int32),
                "scheme": REQUANT_SCHEMES[self.requant_scheme], "rounding": 0}

    def layer(self, op: Op, kernel: str, inputs: list[int] | None = None, **kw) -> Layer:
        """A Layer for ``op``: activation inputs default to the op's non-constant inputs."""
        if inputs is None:
            inputs = [i for i in op.inputs if i >= 0 and not self.is_const(i)]
        return Layer(index=op.index, op=op.type, kernel=kernel, inputs=inputs,
                     outputs=list(op.outputs), **kw)


def lower(graph: Graph, requant_scheme: str = "tflite_double") -> Program:
    registry.load_all()
    ctx = LoweringContext(graph, requant_scheme)
    layers: list[Layer] = []
    for op in graph.ops:
        fn = registry.LOWERINGS.get(op.type)
        if fn is None:
            raise ModelError(
                f"{graph.source or 'model'}: unsupported op {op.type} (op {op.index}, inputs "
                f"{op.inputs}, outputs {op.outputs}); supported: "
                f"{', '.join(sorted(registry.LOWERINGS))}")
        for t in op.inputs + op.outputs:
            if t >= 0 and graph.tensors[t].dtype is None:
                raise ctx.error(op, f"tensor {t} '{graph.tensors[t].name}' has an unsupported "
                                    f"type")
        out = fn(op, ctx)
        layers.extend(out if isinstance(out, list) else [out])
    infos = []
    for t in graph.tensors:
        q = t.quant
        infos.append(TensorInfo(
            t.index, t.name, tuple(t.shape), np.dtype(t.dtype) if t.dtype is not None else None,
            q.scales if q is not None else np.zeros(0, np.float32),
            q.zero_points if q is not None else np.zeros(0, np.int64),
            q.axis if q is not None else 0))
    constants = {t.index: t.data for t in graph.tensors if t.data is not None}
    return Program(layers, infos, constants, list(graph.inputs), list(graph.outputs),
                   graph.source, requant_scheme)
