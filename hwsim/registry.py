"""Op registry: which lowering handles a graph op, which kernel runs a layer.

A lowering is ``fn(op, ctx) -> Layer | list[Layer]`` (``ctx``: :class:`hwsim.lower.LoweringContext`).
A kernel is ``fn(layer, inputs) -> (outputs, acc)``: ``inputs`` are the arrays of
``layer.inputs``; ``outputs`` a list of arrays for ``layer.outputs``; ``acc`` the accumulators
before requantization (int32, int64 in 16x8 mode) or None. A kernel registered with a
``prepare`` step (TFLite's Prepare / OpData) is ``fn(layer, inputs, data)``: ``data`` is what
``prepare(layer)`` returned — packed weights, split shifts, lookup tables: what the kernel
caches to run fast, derived from ``layer.params`` and never part of the Program. The engine
prepares each layer once per Network (hwsim.engine); a direct call ``KERNELS[name](layer,
inputs)`` prepares on the spot.

A kernel may also have a ``bind`` step (:func:`binder`), the engine's call plan for untraced
runs: ``bind(layer, data, in_infos, outs) -> fn or None``. ``in_infos`` are the
:class:`hwsim.program.TensorInfo` of ``layer.inputs`` (static shapes and dtypes), ``outs`` the
preallocated arrays of ``layer.outputs`` (shaped and typed as their TensorInfo). ``fn(inputs)``
writes the layer's outputs into ``outs`` (and nothing else: no array is allocated or returned,
no input is aliased) and returns nothing; every constant and argument list is derived in
``bind``, once. ``bind`` returns None where its fast form does not apply (the engine then
calls the kernel as above). A bound call must give the same integers as ``run``: the tests
compare both (tests/test_engine_plan.py). ``bind`` may also return :data:`ALIAS`: the layer's
one output is its one input's data in another shape (RESHAPE), so the engine gives it the
input's buffer and calls nothing (or, where the input has no buffer of the plan, calls the
kernel).

The families register themselves when imported: ``hwsim.lower`` imports every lowering family,
``hwsim.kernels.ops`` every kernel family (the engine imports it). This module imports
neither: it sits below both.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

LOWERINGS: dict[str, Callable] = {}
KERNELS: dict[str, "Kernel"] = {}

_UNPREPARED = object()
ALIAS = "alias"  # what a bind step returns for a layer whose output is its input reshaped


@dataclass(frozen=True)
class Kernel:
    """A registered kernel: ``run`` and its optional ``prepare`` (see the module docstring)."""
    name: str
    run: Callable
    prepare: Callable | None = None
    bind: Callable | None = None

    def __call__(self, layer, inputs, data: Any = _UNPREPARED):
        """Run ``layer`` on ``inputs`` with its prepared ``data`` (prepared here if not
        given; ignored by a kernel without a prepare step)."""
        if self.prepare is None:
            return self.run(layer, inputs)
        if data is _UNPREPARED:
            data = self.prepare(layer)
        return self.run(layer, inputs, data)


def lowering(*op_types: str):
    def deco(fn):
        for t in op_types:
            if t in LOWERINGS:
                raise RuntimeError(f"two lowerings registered for {t}")
            LOWERINGS[t] = fn
        return fn
    return deco


def kernel(name: str, prepare: Callable | None = None):
    """Register ``fn`` as kernel ``name``; ``prepare(layer) -> data`` if it caches anything."""
    def deco(fn):
        if name in KERNELS:
            raise RuntimeError(f"two kernels registered as {name}")
        KERNELS[name] = Kernel(name, fn, prepare)
        return fn
    return deco


def binder(name: str):
    """Register ``fn`` as the ``bind`` step of kernel ``name`` (registered before it).

    A bind step returns ``call(inputs)`` bound to the layer's output buffers (or None, or
    ALIAS). ``call.thunk(inputs)``, where the step sets it, returns a callable of no
    arguments doing ``call(inputs)`` for those very arrays (the engine's plan passes the same
    buffers on every run), or None where it cannot (e.g. a layer whose thread count is chosen
    per call): the engine then calls the kernel with nothing in between."""
    def deco(fn):
        k = KERNELS[name]
        if k.bind is not None:
            raise RuntimeError(f"two bind steps registered for {name}")
        KERNELS[name] = replace(k, bind=fn)
        return fn
    return deco


class InputViews:
    """``views(inputs)``: the inputs reshaped as a bound call wants them (``shapes``, one per
    input), remade only when the engine hands over other arrays. A plan passes the same
    buffers to a call on every run, and per-call numpy is slow inside a run (its code and data
    are evicted by the kernels): this keeps it out of the steady state."""
    __slots__ = ("shapes", "src", "views")

    def __init__(self, *shapes):
        self.shapes = shapes
        self.src: tuple = ()
        self.views: list = []

    def __call__(self, inputs) -> list:
        src = self.src
        if len(src) == len(inputs) and all(a is b for a, b in zip(inputs, src)):
            return self.views
        self.src = tuple(inputs)
        self.views = [x.reshape(s) for x, s in zip(inputs, self.shapes)]
        return self.views
