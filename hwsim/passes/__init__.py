"""Named graph and program rewrites, applied in a declared order (see base.py for the contract).

Pipelines (each a tuple, run in order by :func:`run_passes`):

* :data:`ENGINE_PASSES`: what the engine's untraced schedule applies to a Program
  (hwsim.engine; ``HWSIM_NO_FOLD=1`` or a traced run skips them).
* :data:`HARDWARE_PASSES`: what hwsim.hw.network.map_network applies to the placed hardware
  program.
* :data:`ONNX_PASSES`: the folds hwsim.frontends.onnx_reader applies to the float graph it
  imports (hwsim/passes/onnx_folds.py).

A pass object is shared between pipelines rather than redefined, so what the array computes is
what the engine computes: :data:`FOLD_PAD_INTO_CONV` is in both (on a Program it drops the PAD,
on a PlacedProgram it leaves a ``fused`` no-op in its place). Graph rewrites still living
elsewhere: the ONNX importer's constant folding and explicit pads (done on ONNX nodes while
translating them, hwsim/frontends/onnx_fold.py and onnx_reader.py) and the b-bit clamp
insertion (hwsim/quant/act_bits.py).
"""
from __future__ import annotations

from .base import (GraphPass, Pass, PlacedProgram, PlacedProgramPass, ProgramPass,
                   run_passes)
from .fold_pad import FoldPadIntoConv
from .fuse_clamps import FuseClamps, clamp_bound
from .onnx_folds import FoldAffineIntoMac, FuseActivation
from .place import PlaceLayers, place_layer

FOLD_PAD_INTO_CONV = FoldPadIntoConv()
FUSE_CLAMPS = FuseClamps()
PLACE_LAYERS = PlaceLayers()
FOLD_AFFINE_INTO_MAC = FoldAffineIntoMac()
FUSE_ACTIVATION = FuseActivation()

ENGINE_PASSES: tuple[ProgramPass, ...] = (FOLD_PAD_INTO_CONV,)
# placement first: the pad fold and FuseClamps fuse only into layers placed on the array
HARDWARE_PASSES: tuple[PlacedProgramPass, ...] = (PLACE_LAYERS, FOLD_PAD_INTO_CONV, FUSE_CLAMPS)
# the ONNX importer's folds, on the float graph it builds: BN / affine first (the activation
# after a BN fuses into the conv the BN folded into)
ONNX_PASSES: tuple[GraphPass, ...] = (FOLD_AFFINE_INTO_MAC, FUSE_ACTIVATION)

__all__ = ["ENGINE_PASSES", "FOLD_AFFINE_INTO_MAC", "FOLD_PAD_INTO_CONV", "FUSE_ACTIVATION",
           "FUSE_CLAMPS", "FoldAffineIntoMac", "FoldPadIntoConv", "FuseActivation",
           "FuseClamps", "GraphPass", "HARDWARE_PASSES", "ONNX_PASSES", "PLACE_LAYERS", "Pass",
           "PlaceLayers",
           "PlacedProgram", "PlacedProgramPass", "ProgramPass", "clamp_bound", "place_layer",
           "run_passes"]
