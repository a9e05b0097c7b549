"""PlaceLayers: where each layer of a hardware program runs (array, memory alias or host)."""
from __future__ import annotations

import dataclasses

from ..program import Layer, Program
from ..vocab import ALIAS_OPS, ARRAY_OPS
from .base import PlacedProgram, PlacedProgramPass

# Layout and type conversions at the network's edge: a host's job (the array reads and writes
# its own int8 NHWC layout), named as such in the reason.
EDGE_HOST_OPS = ("TRANSPOSE", "QUANTIZE", "DEQUANTIZE")


def _at_edge(layer: Layer, program: Program) -> str:
    if any(t in program.inputs for t in layer.inputs):
        return "input"
    if any(t in program.outputs for t in layer.outputs):
        return "output"
    return ""


def place_layer(layer: Layer, program: Program, host_ops=()) -> tuple[str, str]:
    """(array | alias | host, why it is not on the array); ``host_ops``: op names forced to
    the host (AccelConfig.host_ops)."""
    if layer.op in host_ops:
        return "host", f"{layer.op} is in the config's host_ops"
    if layer.op in ALIAS_OPS:
        return "alias", ""
    if layer.op in EDGE_HOST_OPS and _at_edge(layer, program):
        return "host", (f"{layer.op} at the network's {_at_edge(layer, program)} runs on the "
                        f"host (a layout or type conversion at the edge)")
    if layer.op not in ARRAY_OPS:
        return "host", (f"{layer.op} is not an array op (array ops: {', '.join(ARRAY_OPS)}; "
                        f"{', '.join(ALIAS_OPS)} are memory aliases)")
    if layer.op == "CONV_2D" and layer.params.groups != 1:
        return "host", f"CONV_2D with groups = {layer.params.groups} (the array runs groups = 1)"
    if layer.op == "ADD":
        shapes = [tuple(program.tensors[i].shape) for i in layer.inputs]
        out = tuple(program.tensors[layer.outputs[0]].shape)
        if len(layer.inputs) != 2 or any(s != out for s in shapes):
            return "host", ("ADD needs two activation inputs of the output's shape (constant "
                            "operands and broadcasting are not supported by the array)")
    return "array", ""


class PlaceLayers(PlacedProgramPass):
    """Place every layer: ARRAY_OPS (hwsim.vocab; CONV_2D only with groups = 1, ADD only of two
    activations of the output's shape) on the array, ALIAS_OPS (RESHAPE, SQUEEZE) as memory
    aliases, anything else on the host, with the reason in ``reasons``. Ops in
    ``placed.host_ops`` (the config's host_ops) go to the host whatever they are; TRANSPOSE,
    QUANTIZE and DEQUANTIZE at the network's input or output are host layers by nature.

    Host layers may sit anywhere: at the head, between array layers, at the tail. The array
    reads a host layer's output from the activation memory, where the host writes it
    (hwsim.export's plan gives such a tensor a region).

    Preserves: the program and the reference (only ``placement`` and ``reasons`` are set).
    """

    def apply(self, placed: PlacedProgram) -> PlacedProgram:
        where, why = dict(placed.placement), dict(placed.reasons)
        for layer in placed.program.layers:
            where[layer.index], reason = place_layer(layer, placed.program, placed.host_ops)
            if reason:
                why[layer.index] = reason
        return dataclasses.replace(placed, placement=where, reasons=why)
