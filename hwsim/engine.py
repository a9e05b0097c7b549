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

Untraced runs without ``on_layer`` also run on a call plan (:class:`_Arena`, built once per
Network and kept): every activation of the schedule gets a preallocated buffer, shared by
tensors whose lives do not overlap, and every kernel with a ``bind`` step (hwsim.registry) is
bound once to its buffers, so a bound layer allocates no numpy array and redoes no per-layer
derivation (kernels without ``bind`` run as they do without the plan). Outputs are copied out of the buffers (a result stays valid after the
next run); runs in several threads at once each take their own arena.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np

from . import registry
from .ir import InputError
from .kernels import ops as _kernel_families  # noqa: F401  (registers every kernel)
from .kernels import threads
from .passes import ENGINE_PASSES, run_passes
from .util import aligned_bytes  # buffers start on a cache line
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
        self._arenas: list[_Arena] = []  # idle call plans with their buffers (one per live run)

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
        tensors to free after it): the schedule of traced runs and of runs with ``on_layer``
        (those without take the call plan, :class:`_Arena`). Untraced runs use
        ``outputs_only`` where a kernel has it (no accumulators kept: the MAC kernels then
        requantize in registers) and free each activation after its last reader."""
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

    def _take_arena(self, layers: list[Layer]) -> "_Arena":
        """An idle call plan of ``layers`` (list.pop is atomic: concurrent runs get their own)."""
        try:
            arena = self._arenas.pop()
        except IndexError:
            return _Arena(self, layers)
        return arena if arena.layers is layers else _Arena(self, layers)

    def _run_bound(self, xs: list[np.ndarray], on_step=None) -> list[np.ndarray]:
        """The untraced schedule on a call plan; ``on_step(k, layer, seconds)`` for profile."""
        prog = self.program
        layers = prog.layers
        if FOLD_PADS:  # read per run (the tests switch it)
            if self._folded is None:
                self._folded = run_passes(ENGINE_PASSES, prog)
            layers = self._folded.layers
        arena = self._take_arena(layers)
        try:
            outs = arena.run(xs, on_step)
        finally:
            self._arenas.append(arena)
        return outs

    def profile(self, inputs) -> list[tuple[Layer, float]]:
        """One untraced run as ``run(inputs)`` runs it (the folded schedule on the call plan),
        timing each layer: [(layer, seconds)] in schedule order (benchmarks/bench_models.py)."""
        times: list[tuple[Layer, float]] = []
        self._run_bound(self.check_inputs(inputs), lambda k, layer, dt: times.append((layer, dt)))
        return times

    def run(self, inputs, trace: bool = False, on_layer=None) -> RunResult:
        """Run the network. ``on_layer(k, layer, outputs, seconds)`` is called after each layer
        (per-layer timing, progress bars); such runs, and traced ones, run every layer as
        written with fresh arrays. Otherwise the run takes the call plan (the module
        docstring); either way the outputs are the caller's own arrays."""
        import time
        prog = self.program
        xs = self.check_inputs(inputs)
        if not trace and on_layer is None:
            return RunResult(self._run_bound(xs))
        values: dict[int, np.ndarray] = dict(zip(prog.inputs, xs))
        tr = Trace(prog) if trace else None
        if tr is not None:
            tr.tensors.update(prog.constants)
        for k, (layer, kern, data, fast, frees) in enumerate(self._plan(prog.layers, trace)):
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


def _noop(inputs) -> None:
    """An aliasing layer's call: its output is a view the plan made (registry.ALIAS)."""


def _conforms(ins: list[np.ndarray], check: tuple) -> bool:
    """Whether the inputs a bound call gets from outside the plan (the network's inputs, a
    kernel without ``bind``) are what it was bound for: shape, dtype, C order."""
    for pos, shape, dtype in check:
        x = ins[pos]
        if x.shape != shape or x.dtype != dtype or not x.flags.c_contiguous:
            return False
    return True


class _Arena:
    """The call plan of one schedule with the buffers it runs in (see the module docstring).

    Buffers are planned greedily in schedule order: a bound layer's outputs take the smallest
    free buffer that holds them (else a new one), and a buffer is free again after the last
    reader of every tensor in it (a RESHAPE's output is its input's buffer: registry.ALIAS).
    A tensor that a kernel without ``bind`` reads is never freed (that kernel may return a
    view of it), nor is a network output (copied out after the run).
    """

    def __init__(self, net: Network, layers: list[Layer]):
        prog = net.program
        infos = prog.tensors
        self.layers = layers
        self.inputs = list(prog.inputs)
        self.outputs = list(prog.outputs)
        last_use: dict[int, int] = {}
        for k, layer in enumerate(layers):
            for i in layer.inputs:
                last_use[i] = k
        keep = set(prog.outputs)
        free: list[np.ndarray] = []  # idle byte buffers
        owned: dict[int, np.ndarray] = {}  # tensor -> the byte buffer it lives in
        users: dict[int, int] = {}  # id(byte buffer) -> live tensors in it (aliases share one)
        views: dict[int, np.ndarray] = {}  # tensor -> its typed view of its buffer
        bound_out: set[int] = set()  # tensors a bound step writes
        generic_read: set[int] = set()
        steps = []

        def take(info) -> tuple[np.ndarray, np.ndarray]:
            dt = np.dtype(info.dtype)
            shape = tuple(int(d) for d in info.shape)
            n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            fits = [(b.size, j) for j, b in enumerate(free) if b.size >= n]
            if fits:
                buf = free.pop(min(fits)[1])
            else:
                buf = aligned_bytes(n)
            return buf, buf[:n].view(dt).reshape(shape)

        for k, layer in enumerate(layers):
            kern = registry.KERNELS[layer.kernel]
            data = net.prepared(layer)
            fn, outs = None, None
            if kern.bind is not None:
                bufs = [take(infos[t]) for t in layer.outputs]
                outs = [v for _, v in bufs]
                fn = kern.bind(layer, data, [infos[i] for i in layer.inputs], outs)
                if fn is None or fn is registry.ALIAS:
                    free.extend(b for b, _ in bufs)
                    src = layer.inputs[0] if len(layer.inputs) == 1 else None
                    if fn is registry.ALIAS and src in views and len(outs) == 1:
                        # the output is the source's buffer in another shape: no call at all
                        t, b = layer.outputs[0], owned[src]
                        views[t] = views[src].reshape(outs[0].shape)
                        owned[t], users[id(b)], fn, outs = b, users[id(b)] + 1, _noop, [views[t]]
                    else:
                        fn = outs = None
                else:
                    for t, (b, v) in zip(layer.outputs, bufs):
                        owned[t], views[t], users[id(b)] = b, v, 1
            check = ()
            if fn is None:
                generic_read.update(layer.inputs)
            else:
                bound_out.update(layer.outputs)
                check = tuple((pos, tuple(int(d) for d in infos[i].shape),
                               np.dtype(infos[i].dtype))
                              for pos, i in enumerate(layer.inputs) if i not in bound_out)
            fast = getattr(kern.run, "outputs_only", None)
            done = tuple(i for i in dict.fromkeys(layer.inputs)
                         if last_use[i] == k and i not in keep)
            # bound, every input in a buffer of the plan: the call with its inputs bound too
            # (the kernel's own call with every argument fixed, where its bind step offers one:
            # ``fn.thunk(inputs)``, registry.binder)
            call = None
            if fn is not None and not check:
                ins = [views[i] for i in layer.inputs]
                thunk = getattr(fn, "thunk", None)
                call = (thunk(ins) if thunk is not None else None) or functools.partial(fn, ins)
            steps.append((call, layer, fn, kern, data, fast, outs, check,
                          tuple(i for i in done if i not in views)))
            for i in done:
                if i in owned and i not in generic_read:
                    b = owned.pop(i)
                    users[id(b)] -= 1
                    if not users[id(b)]:
                        free.append(b)
        self.steps = steps
        self.views = dict(views)  # what every bound output reads as, for every run
        # a layer's output may live in a buffer or be a view of one: the caller gets a copy
        self.copied = {t for layer in layers for t in layer.outputs if t in keep}

    def run(self, xs: list[np.ndarray], on_step=None) -> list[np.ndarray]:
        import time
        values: dict[int, np.ndarray] = self.views.copy()
        values.update(zip(self.inputs, xs))
        # the thread count from the machine's load (kernels/threads.py), looked at before a
        # layer once threads.RESAMPLE_S has passed (a call per layer cost ~0.3 us each)
        adapt, clock, every = threads.adapt, time.monotonic, threads.RESAMPLE_S
        adapt()
        last = clock()
        for k, step in enumerate(self.steps):
            if clock() - last >= every:
                adapt()
                last = clock()
            t0 = time.perf_counter() if on_step is not None else 0.0
            if step[0] is not None:
                step[0]()  # the common case: nothing but the kernel's call
            else:
                self._step(step, values)
            if on_step is not None:
                on_step(k, step[1], time.perf_counter() - t0)
        return [values[i].copy() if i in self.copied else values[i] for i in self.outputs]

    @staticmethod
    def _step(step, values: dict[int, np.ndarray]) -> None:
        """A layer whose inputs come from outside the plan, or without a bind step."""
        _, layer, fn, kern, data, fast, outs, check, done = step
        ins = [values[i] for i in layer.inputs]
        if fn is not None and _conforms(ins, check):
            fn(ins)
        elif outs is not None:  # an input the plan did not expect: the kernel's own path
            res = fast(layer, ins, data) if fast is not None else kern(layer, ins, data)[0]
            for o, v in zip(outs, res):
                np.copyto(o, v)
        else:
            outs = fast(layer, ins, data) if fast is not None else kern(layer, ins, data)[0]
            for t, v in zip(layer.outputs, outs):
                values[t] = v
        for i in done:  # what no later layer reads
            del values[i]
