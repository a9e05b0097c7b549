"""Lowering: Graph (real-valued scales) -> Program (integers only).

Every integer constant a layer needs is derived here, once: requantization multipliers and
shifts, activation clamps, padding, folded zero-point terms, into the layer's typed parameters
(:mod:`hwsim.params`). Op families register their lowerings with
:func:`hwsim.registry.lowering` in ``hwsim/lower/<family>.py`` (imported below); the shared
derivations are :mod:`hwsim.lower.context`.

``lower(graph)`` gives TFLite's arithmetic (the engine); ``lower(graph, config)`` (an
AccelConfig, preset name or YAML path) the hardware's: the MAC layers carry the config's
requant-unit parameters (:func:`derive_requant`) and the accumulator model
(``LoweringContext.accumulator``), the array's layers the nearest supported fused
activation (:func:`nearest_activation`). Legalization (is that exact?) is hwsim.hw.map_network.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from ..hwif.config import load_config
from ..ir import Graph, ModelError
from ..program import Layer, Program, TensorInfo
from ..vocab import RequantScheme
from .context import (SEMANTICS, DerivedRequant, LoweringContext, check_semantics,  # noqa: F401
                      collapse_reals, derive_requant, mult_shift_params, nearest_activation,
                      shift_only_params)
# The families: importing each registers its lowerings (hwsim.registry.LOWERINGS).
from . import activation, conv, elementwise, onnxrt, shape  # noqa: F401,E402

__all__ = ["lower", "lower_with_context", "LoweringContext", "DerivedRequant", "derive_requant",
           "SEMANTICS", "check_semantics",
           "collapse_reals", "mult_shift_params", "shift_only_params", "nearest_activation"]


def lower(graph: Graph, config=None, requant_scheme: str | None = None,
          semantics: str = "tflite") -> Program:
    """Graph -> Program.

    ``config``: None (TFLite's arithmetic: the engine), an AccelConfig, a preset name or a YAML
    path (:func:`hwsim.hw.config.load_config`): the MAC layers then carry the hardware's
    requantization parameters and accumulator model. ``requant_scheme`` (also accepted as the
    second positional argument, the historical signature) selects the TFLite build
    (tflite_double, tflite_single) or a default mult_shift / shift_only unit, without a config.
    ``semantics``: "tflite" (TFLite's reference kernels) or "tflm" (TensorFlow Lite for
    Microcontrollers: FULLY_CONNECTED and MUL differ; docs/semantics.md).
    """
    return lower_with_context(graph, config, requant_scheme, semantics)[0]


def _refuse_float_model(graph: Graph) -> None:
    """A float model (float32 MAC weights) cannot be lowered: say so, and what to do."""
    for op in graph.ops:
        if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
            w = graph.tensors[op.inputs[1]]
            if w.dtype is not None and np.dtype(w.dtype).kind == "f":
                raise ModelError(
                    f"{graph.source or 'model'}: a float model (op {op.index} {op.type} has "
                    f"{w.dtype} weights); hwsim runs integer models — quantize it first: "
                    f"hwsim quantize MODEL --calib DATA --out model_int8.tflite")


def lower_with_context(graph: Graph, config=None, requant_scheme: str | None = None,
                       semantics: str = "tflite"):
    """:func:`lower`, also returning the LoweringContext (its ``notes``: the approximations)."""
    if isinstance(config, str) and config in RequantScheme.names():
        config, requant_scheme = None, config
    if config is not None:
        config = load_config(config)
        if requant_scheme is not None and requant_scheme != config.requant.scheme:
            raise ValueError(f"requant_scheme {requant_scheme!r} contradicts the config's "
                             f"requant.scheme {config.requant.scheme!r}")
    _refuse_float_model(graph)
    ctx = LoweringContext(graph, requant_scheme or "tflite_double", config, semantics)
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
        ctx.current_op = op
        try:
            out = fn(op, ctx)
        finally:
            ctx.current_op = None
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
    prog = Program(layers, infos, constants, list(graph.inputs), list(graph.outputs),
                   graph.source, ctx.hw_scheme)
    return prog, ctx
