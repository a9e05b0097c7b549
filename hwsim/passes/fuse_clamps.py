"""FuseClamps: the constant clamps of b-bit activations absorbed by the array or the host."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..params import FusedParams
from ..program import Layer, Program
from .base import PlacedProgram, PlacedProgramPass

CLAMP_OPS = ("MAXIMUM", "MINIMUM")


def clamp_bound(layer: Layer, program: Program) -> tuple[bool, int] | None:
    """(is MAXIMUM, c) of a MAXIMUM / MINIMUM of one run-time tensor and a constant
    one-element operand c that keeps the tensor's shape; None for any other layer."""
    if layer.op not in CLAMP_OPS or layer.kernel != "maximum_minimum" or \
            len(layer.inputs) != 1 or len(layer.outputs) != 1:
        return None
    consts = list(layer.params.constants.values())
    if len(consts) != 1 or np.size(consts[0]) != 1:
        return None
    x, y = layer.inputs[0], layer.outputs[0]
    if tuple(program.tensors[x].shape) != tuple(program.tensors[y].shape):
        return None
    return layer.op == "MAXIMUM", int(np.asarray(consts[0]).reshape(-1)[0])


def narrow(act: tuple[int, int], bound: tuple[bool, int]) -> tuple[int, int]:
    """[act_min, act_max] followed by MAXIMUM / MINIMUM with c, as one clamp (when the result
    is not empty: clamp(clamp(x, a, b), c) = clamp to the intersection)."""
    is_max, c = bound
    return (max(act[0], c), act[1]) if is_max else (act[0], min(act[1], c))


class FuseClamps(PlacedProgramPass):
    """Fold constant clamps (hwsim.quant.act_bits: MAXIMUM / MINIMUM of a tensor and a constant
    one-element operand c, output shape = input shape) into their writer.

    * ``fused``: the clamp's input is written by an array layer with an output clamp, read by
      nothing else and not a network output. That layer's ``[act_min, act_max]`` is narrowed
      (MAXIMUM: act_min = max(act_min, c); MINIMUM: act_max = min(act_max, c)), only when the
      intersection is not empty, and the layer writes the clamp's output tensor; the clamp
      becomes a no-op layer (kernel ``fused``, no inputs or outputs, ``params.fused_into``).
      ``reference_clamps`` gets the reference layer's clamp narrowed by the same bounds.
    * ``input``: the clamp's input is a network input (or the output of another ``input``
      clamp) read by nothing else: the host applies it as it writes the input into the
      activation memory (the layer is kept; its placement becomes ``input``).

    Preserves: every tensor the hardware still writes holds the same integers, since
    clamp(clamp(x, a, b), c) = clamp(x, [a, b] narrowed by c); the fused layer's unclamped
    output is no longer written. Layers not rewritten are the input's own objects; the input's
    program, layer list and placement are left as they were.
    """

    def apply(self, placed: PlacedProgram) -> PlacedProgram:
        program = placed.program
        layers = list(program.layers)
        where = dict(placed.placement)
        ref_act = dict(placed.reference_clamps)
        readers: dict[int, int] = {}
        for layer in layers:
            for i in layer.inputs:
                readers[i] = readers.get(i, 0) + 1
        outputs = set(program.outputs)
        producer = {t: pos for pos, layer in enumerate(layers) for t in layer.outputs}
        host_written = set(program.inputs)   # network inputs and their "input" clamps
        for pos, layer in enumerate(program.layers):
            bound = clamp_bound(layer, program)
            if bound is None:
                continue
            x, y = layer.inputs[0], layer.outputs[0]
            if x in outputs or readers.get(x, 0) != 1:
                continue
            p = producer.get(x)
            if p is not None and where[layers[p].index] == "array" and \
                    layers[p].params.clamp() is not None:
                prod, ref = layers[p], placed.reference.layers[p]
                lo, hi = narrow(prod.params.clamp(), bound)
                if lo > hi:
                    continue
                ref_act[prod.index] = narrow(ref_act.get(prod.index, ref.params.clamp()), bound)
                layers[p] = dataclasses.replace(prod, outputs=[y],
                                                params=prod.params.with_clamp(lo, hi))
                layers[pos] = Layer(layer.index, layer.op, "fused", [], [],
                                    FusedParams(fused_into=prod.index),
                                    summary=f"fused into layer {prod.index} ({prod.op}): "
                                            f"clamp [{lo}, {hi}]")
                producer[y] = p
                where[layer.index] = "fused"
            elif p is None and x in host_written or \
                    p is not None and where[layers[p].index] == "input":
                host_written.add(y)
                where[layer.index] = "input"
        return dataclasses.replace(placed, program=dataclasses.replace(program, layers=layers),
                                   placement=where, reference_clamps=ref_act)
