"""Engine: execute a Program with the registered Numba kernels, optionally keeping a trace.

Without a trace (and without an ``on_layer`` callback) the engine runs an equivalent schedule:
the Program rewritten by :data:`hwsim.passes.ENGINE_PASSES` (today FoldPadIntoConv: a PAD that
only pads a convolution's input becomes that convolution's padding). Every output is the same
integer; the PAD's output tensor is simply never materialized. With ``trace=True`` every layer
runs as written, so the trace holds every tensor. tests/test_engine_fold.py checks both
schedules against each other and against TFLite.

Each layer's kernel is prepared once per Network, on the layer's first run (the kernel's
``prepare`` step, hwsim.registry: packed weights, split shifts, tables), and the prepared data
is kept here, beside the Program — never in it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import registry
from .ir import InputError
from .kernels import ops as _kernel_families  # noqa: F401  (registers every kernel)
from .kernels import threads
from .passes import ENGINE_PASSES, run_passes
from .program import Layer, Program

# HWSIM_NO_FOLD=1 runs every layer as written (the tests compare both schedules).
FOLD_PADS = os.environ.get("HWSIM_NO_FOLD", "") in ("", "0")


@dataclass
class Trace:
    """Every tensor of one run (by index), and each MAC layer's accumulators (by layer index)."""
    program: Program
    tensors: dict[int, np.ndarray] = field(default_factory=dict)
    accumulators: dict[int, np.ndarray] = field(default_factory=dict)

    def by_name(self, name: str) -> np.ndarray:
        for info in self.program.tensors:
            if info.name == name and info.index in self.tensors:
                return self.tensors[info.index]
        raise KeyError(name)

    def __getitem__(self, key):
        return self.by_name(key) if isinstance(key, str) else self.tensors[key]


@dataclass
class RunResult:
    outputs: list[np.ndarray]
    trace: Trace | None = None


class Network:
    """A lowered network, ready to run. Build with :func:`hwsim.load`."""

    def __init__(self, program: Program, graph=None):
        self.program = program
        self.graph = graph
        missing = {layer.kernel for layer in program.layers} - set(registry.KERNELS)
        if missing:
            raise RuntimeError(f"no kernel registered for {sorted(missing)}")
        self._folded: Program | None = None  # the program after ENGINE_PASSES
        self._prepared: dict[int, tuple[Layer, object]] = {}  # id(layer) -> (layer, data)

    def prepared(self, layer: Layer):
        """The kernel's prepared data of ``layer`` (prepared on first use, then kept)."""
        hit = self._prepared.get(id(layer))
        if hit is None:
            k = registry.KERNELS[layer.kernel]
            # the layer is kept alongside, so its id cannot be reused while this entry lives
            hit = self._prepared[id(layer)] = (layer, k.prepare(layer) if k.prepare else None)
        return hit[1]

    @property
    def input_infos(self):
        return [self.program.tensors[i] for i in self.program.inputs]

    @property
    def output_infos(self):
        return [self.program.tensors[i] for i in self.program.outputs]

    def check_inputs(self, inputs) -> list[np.ndarray]:
        infos = self.input_infos
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        elif isinstance(inputs, dict):
            by_name = {info.name: info for info in infos}
            unknown = set(inputs) - set(by_name)
            if unknown:
                raise InputError(f"unknown input name(s) {sorted(unknown)}; the model's inputs "
                                 f"are {[i.name for i in infos]}")
            inputs = [inputs[i.name] for i in infos]
        inputs = list(inputs)
        if len(inputs) != len(infos):
            raise InputError(f"the model takes {len(infos)} input(s), {len(inputs)} given")
        out = []
        for k, (x, info) in enumerate(zip(inputs, infos)):
            x = np.asarray(x)
            if x.dtype != info.dtype:
                raise InputError(f"input {k} ('{info.name}'): dtype {x.dtype}, the model wants "
                                 f"{info.dtype}")
            if tuple(x.shape) != tuple(info.shape):
                raise InputError(f"input {k} ('{info.name}'): shape {list(x.shape)}, the model "
                                 f"wants {list(info.shape)}")
            out.append(np.ascontiguousarray(x))
        return out

    def run(self, inputs, trace: bool = False, on_layer=None) -> RunResult:
        """Run the network. ``on_layer(k, layer, outputs, seconds)`` is called after each layer
        (per-layer timing, progress bars)."""
        import time
        prog = self.program
        xs = self.check_inputs(inputs)
        values: dict[int, np.ndarray] = dict(zip(prog.inputs, xs))
        tr = Trace(prog) if trace else None
        if tr is not None:
            tr.tensors.update(prog.constants)
        # Free each activation after its last reader unless tracing.
        last_use: dict[int, int] = {}
        if not trace:
            for k, layer in enumerate(prog.layers):
                for i in layer.inputs:
                    last_use[i] = k
        keep = set(prog.outputs)
        layers = prog.layers
        if not trace and on_layer is None and FOLD_PADS:
            if self._folded is None:
                self._folded = run_passes(ENGINE_PASSES, prog)
            layers = self._folded.layers
            last_use = {}
            for k, layer in enumerate(layers):
                for i in layer.inputs:
                    last_use[i] = k
        for k, layer in enumerate(layers):
            threads.adapt()  # thread count from the machine's load (kernels/threads.py)
            fn = registry.KERNELS[layer.kernel]
            data = self.prepared(layer)
            t0 = time.perf_counter() if on_layer is not None else 0.0
            outs, acc = fn(layer, [values[i] for i in layer.inputs], data)
            if on_layer is not None:
                on_layer(k, layer, outs, time.perf_counter() - t0)
            for t, v in zip(layer.outputs, outs):
                values[t] = v
            if tr is not None and acc is not None:
                tr.accumulators[layer.index] = acc
            if not trace:
                for i in layer.inputs:
                    if last_use.get(i) == k and i not in keep:
                        values.pop(i, None)
        if tr is not None:
            tr.tensors.update(values)
        return RunResult([values[i] for i in prog.outputs], tr)
