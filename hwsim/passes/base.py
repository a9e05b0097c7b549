"""The pass base: a named rewrite of a Graph, a Program or a placed hardware program.

A pass (as FINN/QONNX's ``Transformation.apply``) is a small object with a ``name``, a docstring
stating what it rewrites and what it preserves, and ``apply(x) -> x'`` returning a new object:
it never mutates its input (objects it leaves unchanged may be shared with the output).
Passes run in the order a pipeline tuple declares (:data:`hwsim.passes.ENGINE_PASSES`,
:data:`hwsim.passes.HARDWARE_PASSES`), through :func:`run_passes`.

This layer sits between lowering (hwsim.lower, which makes the Program) and its users (the
engine, the hardware mapping): it imports hwsim.program, hwsim.params, hwsim.vocab and hwsim.ir
only, and the engine and hwsim.hw import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Iterable, Mapping, TypeVar

from ..ir import Graph
from ..program import Program

T = TypeVar("T")


class Pass(Generic[T]):
    """A named rewrite ``apply(x) -> x'``; ``x`` is left as it was."""

    @property
    def name(self) -> str:
        """The pass's name (its class name), as pipelines and reports show it."""
        return type(self).__name__

    def apply(self, x: T) -> T:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}()"


class GraphPass(Pass[Graph]):
    """A rewrite of a graph (``hwsim.ir.Graph``), before lowering."""


class ProgramPass(Pass[Program]):
    """A rewrite of a lowered Program: every output tensor keeps its integers."""


@dataclass(frozen=True)
class PlacedProgram:
    """A hardware Program with where each layer runs, as the hardware passes see it.

    ``program``: the hardware Program (lowered for an AccelConfig); ``reference``: the model's
    Program (TFLite arithmetic), layer for layer; ``placement``: {layer index: "array" |
    "alias" | "host" | "fused" | "input"}; ``reasons``: {layer index: why it is not on the
    array}; ``reference_clamps``: {array layer index: the reference's [act_min, act_max]
    narrowed by the clamps fused into that layer} (what the hardware's clamp must equal for the
    layer to be exact); ``host_ops``: the op names the config forces to the host
    (AccelConfig.host_ops), an input of PlaceLayers; ``act_lanes``: elements per word of the
    activation memory (where a CONCATENATION's inputs may start, PlaceLayers).
    """
    program: Program
    reference: Program
    placement: Mapping[int, str] = field(default_factory=dict)
    reasons: Mapping[int, str] = field(default_factory=dict)
    reference_clamps: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    host_ops: frozenset = frozenset()
    act_lanes: int = 1


class PlacedProgramPass(Pass[PlacedProgram]):
    """A rewrite of a placed hardware program (hwsim.hw.network.map_network runs these)."""


def run_passes(passes: Iterable[Pass[T]], x: T) -> T:
    """``x`` rewritten by each pass of ``passes`` in turn (the declared order)."""
    for p in passes:
        x = p.apply(x)
    return x
