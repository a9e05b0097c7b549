"""FoldPadIntoConv: a PAD that only pads a convolution's input becomes that convolution's padding."""
from __future__ import annotations

import copy
import dataclasses

from ..params import FusedParams
from ..program import Layer, Program
from .base import PlacedProgram, PlacedProgramPass, ProgramPass

_FOLD_INTO = ("conv2d", "depthwise_conv2d")


def _foldable(program: Program, model_arith: bool) -> dict[int, int]:
    """{position of a convolution: position of the PAD folded into it}."""
    readers: dict[int, int] = {}
    for layer in program.layers:
        for i in layer.inputs:
            readers[i] = readers.get(i, 0) + 1
    producer = {t: pos for pos, layer in enumerate(program.layers) for t in layer.outputs}
    out = {}
    for pos, layer in enumerate(program.layers):
        p = layer.params
        k = producer.get(layer.inputs[0]) if layer.inputs else None
        pad = program.layers[k] if k is not None else None
        if (layer.kernel in _FOLD_INTO and (p.accumulator is None or not model_arith)
                and pad is not None
                and pad.kernel == "pad" and len(pad.inputs) == 1
                and readers.get(pad.outputs[0]) == 1
                and pad.outputs[0] not in program.outputs
                and len(pad.params.before) == 4
                and int(pad.params.before[0]) == int(pad.params.after[0]) == 0
                and int(pad.params.before[3]) == int(pad.params.after[3]) == 0
                and int(pad.params.value) == -int(p.input_offset)):
            out[pos] = k
    return out


def _folded(conv: Layer, pad: Layer) -> Layer:
    p = conv.params
    fused = copy.copy(conv)
    fused.params = p.replace(pad_top=int(p.pad_top) + int(pad.params.before[1]),
                             pad_left=int(p.pad_left) + int(pad.params.before[2]))
    fused.inputs = [pad.inputs[0]] + list(conv.inputs[1:])
    return fused


class FoldPadIntoConv(ProgramPass, PlacedProgramPass):
    """Fold PAD -> CONV_2D / DEPTHWISE_CONV_2D pairs into the convolution's own padding.

    Folded: a PAD whose only reader is a CONV_2D / DEPTHWISE_CONV_2D, whose output is not a
    network output, that pads only H and W (N and C before/after are 0) with exactly the value
    the convolution pads with (its input zero point: ``pad.value == -input_offset``). The
    convolution then reads the PAD's input, with the PAD's amounts added to its ``pad_top`` /
    ``pad_left``; the bottom / right padding follows from the output size, which does not
    change. Exact for any accumulator (a padded tap adds (zp + input_offset) * w = 0 either
    way: a wrapping or saturating sum is not moved by adding 0).

    Two forms, one decision:

    * on a Program (the engine's untraced schedule, :data:`hwsim.passes.ENGINE_PASSES`; not
      with ``HWSIM_NO_FOLD=1``): only convolutions of the model's arithmetic
      (``params.accumulator is None``); the PAD layer is dropped.
    * on a PlacedProgram (:data:`hwsim.passes.HARDWARE_PASSES`, after placement): into
      convolutions placed on the array, the same fold in the hardware program and, at the same positions, in the reference, so the two
      stay layer for layer; the PAD becomes a no-op layer (kernel ``fused``,
      ``params.fused_into`` = the convolution's index) placed ``fused``: the array runs the
      padding, the export gives the PAD no folder.

    Preserves: every tensor the Program still writes holds the same integers (the padded
    border is the zero point either way); the PAD's output tensor is no longer written.
    Layers that are not folded are the input's own objects; a folded convolution is a copy.
    tests/test_engine_fold.py checks the folded and the unfolded schedules against each other
    and against TFLite; tests/test_partition.py the hardware form.
    """

    def apply(self, x):
        if isinstance(x, PlacedProgram):
            return self._apply_placed(x)
        folds = _foldable(x, model_arith=True)
        drop = set(folds.values())
        layers = [_folded(layer, x.layers[folds[pos]]) if pos in folds else layer
                  for pos, layer in enumerate(x.layers)]
        return dataclasses.replace(x, layers=[layer for pos, layer in enumerate(layers)
                                              if pos not in drop])

    def _apply_placed(self, placed: PlacedProgram) -> PlacedProgram:
        prog, ref = placed.program, placed.reference
        folds = _foldable(prog, model_arith=False)
        ref_folds = _foldable(ref, model_arith=False)  # the reference's convs agree too
        folds = {c: k for c, k in folds.items() if ref_folds.get(c) == k
                 and placed.placement.get(prog.layers[c].index, "array") == "array"}
        if not folds:
            return placed
        where = dict(placed.placement)

        def rewrite(program: Program) -> Program:
            layers = list(program.layers)
            for c, k in folds.items():
                pad = program.layers[k]
                layers[c] = _folded(program.layers[c], pad)
                layers[k] = Layer(pad.index, pad.op, "fused", [], [],
                                  FusedParams(fused_into=program.layers[c].index),
                                  summary=f"folded into layer {program.layers[c].index} "
                                          f"({program.layers[c].op})'s padding")
            return dataclasses.replace(program, layers=layers)

        for c, k in folds.items():
            where[prog.layers[k].index] = "fused"
        return dataclasses.replace(placed, program=rewrite(prog), reference=rewrite(ref),
                                   placement=where)
