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
        self._plans: dict[tuple, tuple] = {}  # (id(layers), trace) -> (layers, steps): _plan

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

    def _plan(self, layers: list[Layer], trace: bool) -> list[tuple]:
        """The run loop's steps for ``layers``, built once per schedule and kept: per layer
        (layer, kernel, prepared data, the kernel's ``outputs_only`` form or None, the input
        tensors to free after it). Untraced runs use ``outputs_only`` where a kernel has it
        (no accumulators kept: the MAC kernels then requantize in registers) and free each
        activation after its last reader."""
        key = (id(layers), trace)
        hit = self._plans.get(key)
        if hit is not None and hit[0] is layers:
            return hit[1]
        last_use: dict[int, int] = {}
        for k, layer in enumerate(layers):
            for i in layer.inputs:
                last_use[i] = k
        keep = set(self.program.outputs)
        steps = []
        for k, layer in enumerate(layers):
            kern = registry.KERNELS[layer.kernel]
            fast = None if trace else getattr(kern.run, "outputs_only", None)
            frees = () if trace else tuple(
                i for i in dict.fromkeys(layer.inputs) if last_use[i] == k and i not in keep)
            steps.append((layer, kern, self.prepared(layer), fast, frees))
        self._plans[key] = (layers, steps)
        return steps

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
        layers = prog.layers
        if not trace and on_layer is None and FOLD_PADS:
            if self._folded is None:
                self._folded = run_passes(ENGINE_PASSES, prog)
            layers = self._folded.layers
        for k, (layer, kern, data, fast, frees) in enumerate(self._plan(layers, trace)):
            threads.adapt()  # thread count from the machine's load (kernels/threads.py)
            t0 = time.perf_counter() if on_layer is not None else 0.0
            ins = [values[i] for i in layer.inputs]
            if fast is not None:
                outs, acc = fast(layer, ins, data), None
            else:
                outs, acc = kern(layer, ins, data)
            if on_layer is not None:
                on_layer(k, layer, outs, time.perf_counter() - t0)
            for t, v in zip(layer.outputs, outs):
                values[t] = v
            if tr is not None and acc is not None:
                tr.accumulators[layer.index] = acc
            for i in frees:
                values.pop(i, None)
        if tr is not None:
            tr.tensors.update(values)
        return RunResult([values[i] for i in prog.outputs], tr)
