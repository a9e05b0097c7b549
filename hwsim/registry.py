"""Op registry: which lowering handles a graph op, which kernel runs a layer.

A lowering is ``fn(op, ctx) -> Layer | list[Layer]`` (``ctx``: :class:`hwsim.lower.LoweringContext`).
A kernel is ``fn(layer, inputs) -> (outputs, acc)``: ``inputs`` are the arrays of
``layer.inputs``; ``outputs`` a list of arrays for ``layer.outputs``; ``acc`` the accumulators
before requantization (int32, int64 in 16x8 mode) or None.
"""
from __future__ import annotations

from typing import Callable

LOWERINGS: dict[str, Callable] = {}
KERNELS: dict[str, Callable] = {}


def lowering(*op_types: str):
    def deco(fn):
        for t in op_types:
            if t in LOWERINGS:
                raise RuntimeError(f"two lowerings registered for {t}")
            LOWERINGS[t] = fn
        return fn
    return deco


def kernel(name: str):
    def deco(fn):
        if name in KERNELS:
            raise RuntimeError(f"two kernels registered as {name}")
        KERNELS[name] = fn
        return fn
    return deco


def load_all() -> None:
    """Import every op family so their registrations run."""
    from . import lower  # noqa: F401
    from .lower import ops  # noqa: F401
