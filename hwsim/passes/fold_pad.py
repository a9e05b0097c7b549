"""FoldPadIntoConv: a PAD that only pads a convolution's input becomes that convolution's padding."""
from __future__ import annotations

import copy
import dataclasses

from ..program import Layer, Program
from .base import ProgramPass

_FOLD_INTO = ("conv2d", "depthwise_conv2d")


class FoldPadIntoConv(ProgramPass):
    """Fold PAD -> CONV_2D / DEPTHWISE_CONV_2D pairs into the convolution's own padding.

    Folded: a PAD whose only reader is a CONV_2D / DEPTHWISE_CONV_2D of the model's arithmetic
    (``params.accumulator is None``), whose output is not a network output, that pads only H
    and W (N and C before/after are 0) with exactly the value the convolution pads with (its
    input zero point: ``pad.value == -input_offset``). The convolution then reads the PAD's
    input, with the PAD's amounts added to its ``pad_top`` / ``pad_left``; the bottom / right
    padding follows from the output size, which does not change.

    Preserves: every tensor the Program still writes holds the same integers (the padded
    border is the zero point either way); the PAD's output tensor is no longer written.
    Layers that are not folded are the input Program's own objects; a folded convolution is a
    copy. tests/test_engine_fold.py checks the folded and the unfolded schedules against each
    other and against TFLite.

    Applied by the engine's untraced schedule (hwsim.engine, unless ``HWSIM_NO_FOLD=1``). The
    hardware mapping does not apply it yet (its PAD layers run on the host): another issue
    adds it to :data:`hwsim.passes.HARDWARE_PASSES`, with this same object.
    """

    def apply(self, program: Program) -> Program:
        readers: dict[int, int] = {}
        for layer in program.layers:
            for i in layer.inputs:
                readers[i] = readers.get(i, 0) + 1
        producer = {t: layer for layer in program.layers for t in layer.outputs}
        drop: set[int] = set()
        out: list[Layer] = []
        for layer in program.layers:
            p = layer.params
            pad = producer.get(layer.inputs[0]) if layer.inputs else None
            if (layer.kernel in _FOLD_INTO and p.accumulator is None and pad is not None
                    and pad.kernel == "pad" and len(pad.inputs) == 1
                    and readers.get(pad.outputs[0]) == 1
                    and pad.outputs[0] not in program.outputs
                    and len(pad.params.before) == 4
                    and int(pad.params.before[0]) == int(pad.params.after[0]) == 0
                    and int(pad.params.before[3]) == int(pad.params.after[3]) == 0
                    and int(pad.params.value) == -int(p.input_offset)):
                fused = copy.copy(layer)
                fused.params = p.replace(pad_top=int(p.pad_top) + int(pad.params.before[1]),
                                         pad_left=int(p.pad_left) + int(pad.params.before[2]))
                fused.inputs = [pad.inputs[0]] + list(layer.inputs[1:])
                drop.add(id(pad))
                out.append(fused)
            else:
                out.append(layer)
        return dataclasses.replace(program,
                                   layers=[layer for layer in out if id(layer) not in drop])
