"""Engine: execute a Program with the registered Numba kernels, optionally keeping a trace."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import registry
from .ir import InputError
from .program import Program


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
        registry.load_all()
        missing = {layer.kernel for layer in program.layers} - set(registry.KERNELS)
        if missing:
            raise RuntimeError(f"no kernel registered for {sorted(missing)}")

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
        for k, layer in enumerate(prog.layers):
            fn = registry.KERNELS[layer.kernel]
            t0 = time.perf_counter() if on_layer is not None else 0.0
            outs, acc = fn(layer, [values[i] for i in layer.inputs])
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
