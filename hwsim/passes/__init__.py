"""Named graph and program rewrites, applied in a declared order (see base.py for the contract).

Pipelines (each a tuple, run in order by :func:`run_passes`):

* :data:`ENGINE_PASSES`: what the engine's untraced schedule applies to a Program
  (hwsim.engine; ``HWSIM_NO_FOLD=1`` or a traced run skips them).
* :data:`HARDWARE_PASSES`: what hwsim.hw.network.map_network applies to the placed hardware
  program.

A pass object is shared between pipelines rather than redefined, so what the array computes is
what the engine computes: :data:`FOLD_PAD_INTO_CONV` is in both (on a Program it drops the PAD,
on a PlacedProgram it leaves a ``fused`` no-op in its place). Graph rewrites still living
elsewhere: the ONNX folds (hwsim/frontends/onnx_reader.py) and the b-bit clamp insertion
(hwsim/quant/act_bits.py).
"""
from __future__ import annotations

from .base import (GraphPass, Pass, PlacedProgram, PlacedProgramPass, ProgramPass,
                   run_passes)
from .fold_pad import FoldPadIntoConv
from .fuse_clamps import FuseClamps, clamp_bound
from .place import PlaceLayers, place_layer

FOLD_PAD_INTO_CONV = FoldPadIntoConv()
FUSE_CLAMPS = FuseClamps()
PLACE_LAYERS = PlaceLayers()

ENGINE_PASSES: tuple[ProgramPass, ...] = (FOLD_PAD_INTO_CONV,)
# placement first: the pad fold and FuseClamps fuse only into layers placed on the array
HARDWARE_PASSES: tuple[PlacedProgramPass, ...] = (PLACE_LAYERS, FOLD_PAD_INTO_CONV, FUSE_CLAMPS)

__all__ = ["ENGINE_PASSES", "FOLD_PAD_INTO_CONV", "FUSE_CLAMPS", "FoldPadIntoConv",
           "FuseClamps", "GraphPass", "HARDWARE_PASSES", "PLACE_LAYERS", "Pass", "PlaceLayers",
           "PlacedProgram", "PlacedProgramPass", "ProgramPass", "clamp_bound", "place_layer",
           "run_passes"]
