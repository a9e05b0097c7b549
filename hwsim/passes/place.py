"""PlaceLayers: where each layer of a hardware program runs (array, memory alias or host)."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..program import Layer, Program
from ..vocab import ALIAS_OPS, ARRAY_OPS, ELEMENTWISE_OPS, RESIZE_MAX_INDICES, TABLE_OPS
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
    if layer.kernel.startswith("ort_"):  # hwsim.kernels.onnxrt: ONNX Runtime's own arithmetic
        return "host", (f"{layer.op} computes ONNX Runtime's arithmetic (kernel {layer.kernel}), "
                        f"which no array unit implements")
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
    if layer.op in ELEMENTWISE_OPS:
        shapes = [tuple(program.tensors[i].shape) for i in layer.inputs]
        out = tuple(program.tensors[layer.outputs[0]].shape)
        if len(layer.inputs) != 2 or any(s != out for s in shapes):
            return "host", (f"{layer.op} needs two activation inputs of the output's shape "
                            f"(constant operands and broadcasting are not supported by the "
                            f"array)")
        if getattr(layer.params, "pot", False):
            return "host", f"int16 {layer.op} of the power-of-two path (the array's lanes " \
                           f"run the general path)"
    return _unit_placement(layer, program)


def _unit_placement(layer: Layer, program: Program) -> tuple[str, str]:
    """The element engine's table unit (TABLE_OPS, data of up to 8 bits) and MEAN (over H and
    W of an NHWC tensor, on the pool unit): docs/dataflow.md, "Element units"."""
    if layer.op in TABLE_OPS:
        dts = {program.tensors[t].dtype.itemsize for t in [*layer.inputs, *layer.outputs]}
        if dts != {1}:
            if layer.op in ("LOGISTIC", "TANH"):
                return "host", (f"int16 {layer.op}: TFLite interpolates a 513-entry table; "
                                f"the array's table unit holds data of up to 8 bits")
            return "host", (f"{layer.op} of 16-bit data (a 65,536-entry table; the array's "
                            f"table unit holds data of up to 8 bits)")
        consts = getattr(layer.params, "constants", {})
        shape = tuple(program.tensors[layer.outputs[0]].shape)
        if len(layer.inputs) != 1 or tuple(program.tensors[layer.inputs[0]].shape) != shape \
                or any(np.asarray(c).size != 1 for c in consts.values()):
            return "host", (f"{layer.op} is not an array op with two tensors or a constant of "
                            f"more than one element (the array's table unit runs unary ops)")
    if layer.op == "RESIZE_NEAREST_NEIGHBOR":
        shape = program.tensors[layer.inputs[0]].shape if layer.inputs else ()
        out = program.tensors[layer.outputs[0]].shape
        if len(layer.inputs) != 1 or len(shape) != 4 or len(out) != 4 or \
                out[1] + out[2] > RESIZE_MAX_INDICES or \
                program.tensors[layer.inputs[0]].dtype.kind != "i":
            return "host", (f"RESIZE_NEAREST_NEIGHBOR of a rank-{len(shape)} tensor to "
                            f"{list(out)} (the array's address generator moves integers of an "
                            f"NHWC tensor and holds out_h + out_w <= {RESIZE_MAX_INDICES} "
                            f"indices)")
    if layer.op == "MEAN":
        p = layer.params
        if len(program.tensors[layer.inputs[0]].shape) != 4 or p.reduced_axes != (1, 2):
            return "host", (f"MEAN over axes {list(p.reduced_axes)} (the array's pool unit "
                            f"averages over H and W of an NHWC tensor)")
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

    A table op (hwsim.vocab.TABLE_OPS) or a RESIZE_NEAREST_NEIGHBOR whose input a host layer
    writes stays on the host
    with it: the host's data need not have the array's width (a b-bit clamp of a SOFTMAX),
    and one elementwise step is not worth a round trip through the array.

    Preserves: the program and the reference (only ``placement`` and ``reasons`` are set).
    """

    def apply(self, placed: PlacedProgram) -> PlacedProgram:
        where, why = dict(placed.placement), dict(placed.reasons)
        producer = {t: layer for layer in placed.program.layers for t in layer.outputs}
        for layer in placed.program.layers:
            where[layer.index], reason = place_layer(layer, placed.program, placed.host_ops)
            src = producer.get(layer.inputs[0]) if layer.inputs else None
            if where[layer.index] == "array" and src is not None and \
                    where.get(src.index) == "host" and \
                    (layer.op in TABLE_OPS or layer.op == "RESIZE_NEAREST_NEIGHBOR"):
                where[layer.index] = "host"
                reason = (f"{layer.op} reads the output of host layer {src.index} ({src.op}) "
                          f"and runs on the host with it")
            if reason:
                why[layer.index] = reason
        for layer in placed.program.layers:   # needs every layer's place: its readers'
            if layer.op == "CONCATENATION" and where[layer.index] == "host" \
                    and layer.op not in placed.host_ops:
                problem = concat_alias_problem(layer, placed.program, where, placed.act_lanes)
                if problem:
                    why[layer.index] = f"CONCATENATION stays on the host: {problem}"
                else:
                    where[layer.index] = "alias"
                    why.pop(layer.index, None)
        return dataclasses.replace(placed, placement=where, reasons=why)


# the array layers whose output writes take a pixel stride (the MAC array's drain, RTL
# hwsim_drain.v); the element unit writes its outputs as one run
STRIDED_WRITERS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def concat_alias_problem(layer: Layer, program: Program, where: dict, lanes: int = 1) -> str:
    """Why a CONCATENATION cannot be a memory alias ('' if it can). As an alias, each input's
    array layer writes its output straight into the concatenated tensor's region, at the
    input's place: that needs every input to be either one contiguous run of that region
    (nothing before the axis varies: N = 1 along H, or N*H*W = 1 along C) or, along the
    channels of an NHWC tensor, a CONV_2D / DEPTHWISE_CONV_2D output, which the array writes
    with a pixel stride (descriptor ``out_pix_stride``: the concatenated tensor's channels);
    each input starting on a word of the activation memory (``lanes`` elements a word: its run,
    or its channel offset), written by an array layer and read by nothing else, and the output
    to equal the inputs' bytes (the same scale and zero point: otherwise the host rescales) and
    to be read by array layers only."""
    p, prog = layer.params, program
    out = prog.tensors[layer.outputs[0]]
    if getattr(p, "constants", None) or len(layer.inputs) != p.num_inputs:
        return "a constant operand (the array writes only its own outputs)"
    # along C of NHWC with more than one pixel each input is strided: written by the MAC drain
    strided = int(np.prod(out.shape[:p.axis], dtype=np.int64)) != 1
    if strided and (len(out.shape) != 4 or p.axis % 4 != 3):
        return (f"along axis {p.axis} of {list(out.shape)} its inputs interleave in memory (an "
                f"array layer writes its output as one run, or with a pixel stride along the "
                f"channels of an NHWC tensor)")
    q = [(tuple(np.asarray(prog.tensors[t].scales).reshape(-1).tolist()),
          tuple(np.asarray(prog.tensors[t].zero_points).reshape(-1).tolist()))
         for t in [*layer.inputs, *layer.outputs]]
    if len(set(q)) != 1:
        return "its inputs' scales or zero points differ from the output's (the host rescales)"
    if len(set(layer.inputs)) != len(layer.inputs) or layer.outputs[0] in prog.outputs:
        return "an input taken twice, or a network output"
    readers: dict[int, list] = {}
    writer = {t: lay for lay in prog.layers for t in lay.outputs}
    for lay in prog.layers:
        for t in lay.inputs:
            readers.setdefault(t, []).append(lay)
    off = 0
    for t in layer.inputs:
        w = writer.get(t)
        if w is None or where.get(w.index) != "array" or t in prog.outputs \
                or [r.index for r in readers.get(t, [])] != [layer.index]:
            return (f"input {t} is not written by an array layer for this CONCATENATION "
                    f"alone")
        if strided and w.op not in STRIDED_WRITERS:
            return (f"input {t} is written by layer {w.index} ({w.op}), which writes its output "
                    f"as one run (a pixel stride: {' and '.join(STRIDED_WRITERS)} only)")
        if off % lanes:
            where_ = f"channel {off}" if strided else f"element {off}"
            return (f"input {t} would start at {where_}, not at a word of the activation "
                    f"memory ({lanes} lanes)")
        off += int(prog.tensors[t].shape[3]) if strided else \
            int(np.prod(prog.tensors[t].shape, dtype=np.int64))
    if any(where.get(r.index) != "array" for r in readers.get(layer.outputs[0], [])):
        return "a layer that is not on the array reads its output"
    return ""
