"""hwsim.passes: the pass contract (a name, a docstring saying what is preserved, apply returning
a new object and leaving its input as it was) and the declared pipelines.

What each pass computes is checked where its users are: tests/test_engine_fold.py (the pad fold
against TFLite and against the unfolded schedule), tests/test_hw_legalize.py (clamp fusion).
"""
from __future__ import annotations

import copy

import numpy as np

from test_engine_fold import FOLD_CASES, _load, pad_conv_model
from test_hw_legalize import _clamp_cnn

from hwsim import engine, passes
from hwsim.lower import lower, lower_with_context
from hwsim.hw import load_config
from hwsim.passes import (ENGINE_PASSES, FOLD_PAD_INTO_CONV, FUSE_CLAMPS, HARDWARE_PASSES,
                          PLACE_LAYERS, FoldPadIntoConv, FuseClamps, Pass, PlaceLayers,
                          PlacedProgram, PlacedProgramPass, ProgramPass, run_passes)

ALL_PASSES = (FOLD_PAD_INTO_CONV, FUSE_CLAMPS, PLACE_LAYERS)


def _snapshot(program):
    """Every layer's fields by value (ids of the layer objects too), to see a mutation."""
    return [(id(layer), layer.index, layer.op, layer.kernel, list(layer.inputs),
             list(layer.outputs), copy.copy(layer.params)) for layer in program.layers]


def test_pipelines_are_declared_tuples_of_shared_pass_objects():
    assert ENGINE_PASSES == (FOLD_PAD_INTO_CONV,)
    # fusions need the placement; the pad fold is the engine's own object
    assert HARDWARE_PASSES == (PLACE_LAYERS, FOLD_PAD_INTO_CONV, FUSE_CLAMPS)
    assert all(isinstance(p, ProgramPass) for p in ENGINE_PASSES)
    assert all(isinstance(p, PlacedProgramPass) for p in HARDWARE_PASSES)
    assert engine.ENGINE_PASSES is ENGINE_PASSES   # the engine runs the declared pipeline


def test_each_pass_has_its_name_and_says_what_it_preserves():
    for p in ALL_PASSES:
        assert isinstance(p, Pass)
        assert p.name == type(p).__name__ and repr(p) == f"{p.name}()"
        assert "Preserves:" in type(p).__doc__, p.name


def test_run_passes_applies_in_the_declared_order():
    class Append(Pass):
        def __init__(self, tag):
            self.tag = tag

        def apply(self, x):
            return x + [self.tag]

    start: list = []
    assert run_passes((Append("a"), Append("b"), Append("c")), start) == ["a", "b", "c"]
    assert run_passes((Append("c"), Append("a")), start) == ["c", "a"]
    assert start == []
    assert run_passes((), start) is start


def test_fold_pad_returns_a_new_program_and_leaves_its_input():
    rng = np.random.default_rng(0)
    program = _load(pad_conv_model(rng, **FOLD_CASES[0])).program
    layers, before = program.layers, _snapshot(program)
    out = FoldPadIntoConv().apply(program)
    assert out is not program and out.layers is not layers
    assert len(out.layers) == len(layers) - 1   # the PAD folded
    assert program.layers is layers and _snapshot(program) == before


def test_fuse_clamps_returns_a_new_placed_program_and_leaves_its_input():
    rng = np.random.default_rng(30)
    g = _clamp_cnn(rng, {"input": [("MAXIMUM", -8)], "conv": [("MINIMUM", -121)]})
    program, _ = lower_with_context(g, load_config("tflite-int8"))
    reference = lower(g, requant_scheme="tflite_double")
    placed = PlaceLayers().apply(PlacedProgram(program, reference))
    placement = dict(placed.placement)
    assert sorted(set(placement.values())) == ["alias", "array"]  # clamps: the table unit
    layers, before, ref_before = program.layers, _snapshot(program), _snapshot(reference)
    out = FuseClamps().apply(placed)
    assert out is not placed and out.program is not program
    assert sorted(out.placement.values()).count("fused") == 1
    assert list(out.placement.values()).count("input") == 1
    assert set(out.reference_clamps) == {1}   # layer 1, the conv: its clamp narrowed
    assert placed.placement == placement and placed.reference_clamps == {}
    assert program.layers is layers and _snapshot(program) == before
    assert _snapshot(reference) == ref_before


def test_place_layers_sets_placement_and_reasons_only():
    rng = np.random.default_rng(31)
    g = _clamp_cnn(rng, {"conv": [("MINIMUM", -121)]})
    program = lower(g)
    layers, before = program.layers, _snapshot(program)
    start = PlacedProgram(program, program)
    out = PlaceLayers().apply(start)
    assert out.program is program and start.placement == {} and start.reasons == {}
    # the MINIMUM (a clamp nothing has absorbed yet) runs on the array's table unit
    assert [out.placement[layer.index] for layer in program.layers] == \
        ["array", "array", "array", "alias", "array"]
    assert out.reasons == {}
    host = PlaceLayers().apply(PlacedProgram(program, program, host_ops=frozenset({"MINIMUM"})))
    assert set(host.reasons) == {1} and "MINIMUM is in the config's host_ops" in host.reasons[1]
    assert program.layers is layers and _snapshot(program) == before


def test_passes_import_only_the_layers_below():
    """passes sits between lowering and its users: no import of engine, hw, lower, kernels."""
    import ast
    from pathlib import Path
    allowed = {"base", "fold_pad", "fuse_clamps", "onnx_folds", "place", "ir", "params",
               "program", "vocab"}
    for path in Path(passes.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                mods = [node.module] if node.module else [a.name for a in node.names]
                for m in mods:
                    assert m.split(".")[0] in allowed, (path.name, m)
