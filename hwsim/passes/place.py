"""PlaceLayers: where each layer of a hardware program runs (array, memory alias or host)."""
from __future__ import annotations

import dataclasses

from ..program import Layer, Program
from ..vocab import ALIAS_OPS, ARRAY_OPS
from .base import PlacedProgram, PlacedProgramPass


def place_layer(layer: Layer, program: Program) -> tuple[str, str]:
    """(array | alias | host, why it is not on the array)."""
    if layer.op in ALIAS_OPS:
        return "alias", ""
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
    aliases, anything else on the host, with the reason in ``reasons``.

    Preserves: the program and the reference (only ``placement`` and ``reasons`` are set).
    Whether a host layer is allowed (only as a trailing tail) is legalization, decided by
    hwsim.hw.network.map_network after the hardware passes.
    """

    def apply(self, placed: PlacedProgram) -> PlacedProgram:
        where, why = dict(placed.placement), dict(placed.reasons)
        for layer in placed.program.layers:
            where[layer.index], reason = place_layer(layer, placed.program)
            if reason:
                why[layer.index] = reason
        return dataclasses.replace(placed, placement=where, reasons=why)
