"""The hwsim co-simulation bench (cocotb >= 2.0): one export, layer by layer, bit-exact.

Run by ``hwsim cosim`` / :func:`hwsim.cosim.run_cosim` through ``cocotb_tools.runner``; reads
its settings from the environment:

  HWSIM_COSIM_EXPORT   the export folder (manifest.yaml)
  HWSIM_COSIM_RESULT   where to write the per-layer results (JSON)
  HWSIM_COSIM_MODE     layer (each layer gets its golden inputs) | chain (only the network input;
                       host layers run on hwsim's engine from the RTL's own outputs)
  HWSIM_COSIM_LAYERS   op indices to run (comma separated; default all)
  HWSIM_COSIM_ADAPTER  module:Class of the adapter (default hwsim_adapter:HwsimAccelAdapter)
  HWSIM_COSIM_ACC      1: ask the DUT for its accumulators (default), 0: outputs only
  HWSIM_COSIM_TIMEOUT_CYCLES  per-layer timeout (default max(200000, 50 x model estimate))
  HWSIM_COSIM_STOP_ON_FAIL    1: stop after the first layer that is not bit-exact
  HWSIM_COSIM_PROGRESS        a file to append one JSON line to as each layer finishes (the
                              row `hwsim cosim` prints while the simulator still runs)
  HWSIM_COSIM_TRACE_DIR       the folder of the trace files of HwsimTraceAdapter (the
                              reference RTL's fast transport, hwsim_adapter.py)

For each layer: golden inputs (the .hex files of the export, packed like the activation
memory) go to the adapter, its output words are unpacked and compared element by element with
the golden output .hex, its accumulators (if any) with the golden acc .hex. In chain mode a host
layer is computed by hwsim's engine (:class:`hwsim.cosim.HostRunner`) from what the RTL wrote
(its output of each layer, read back), checked against its golden output, and written into the
activation memory for the array layer that reads it (loaded with that layer). The verdicts are
data (the JSON); the cocotb test itself fails only if the bench cannot run. The result also has
the wall and CPU time of the layer loop and the clock cycles it simulated.
"""
from __future__ import annotations

import json
import logging
import os
import time
import traceback

import cocotb
import numpy as np

from hwsim.cosim import (DEFAULT_ADAPTER, ENV_ACC, ENV_ADAPTER, ENV_EXPORT, ENV_LAYERS, ENV_MODE,
                         ENV_PROGRESS, ENV_RESULT, ENV_STOP, ENV_TIMEOUT, HostRunner,
                         compare_host, compare_vectors, load_export, pack, read_h5_vector,
                         read_vector, read_words, unpack)
from hwsim.hwif.plan import strided_index
# what read_words / pack / unpack import lazily (numba's kernels among them), imported here so
# that the first layer's wall time is the simulation's, not an import's
import hwsim.export.formats  # noqa: F401
import hwsim.export.pack  # noqa: F401
import hwsim.hwif.pack  # noqa: F401
from hwsim_adapter import LayerJob, load_adapter

DEFAULT_TIMEOUT_MIN = 200_000
TIMEOUT_FACTOR = 50


def _selected(export):
    only = os.environ.get(ENV_LAYERS)
    if not only:
        return list(export.layers)
    want = {int(x) for x in only.split(",") if x.strip()}
    return [L for L in export.layers if L.index in want]


def _layer_result(layer) -> dict:
    return {"layer": layer.index, "op": layer.op, "accel_op": layer.accel_op,
            "position": layer.position, "status": "ok", "output": None, "acc": None,
            "cycles": None, "total_cycles": None, "estimate": layer.estimate, "error": None,
            "wall_seconds": 0.0}


def _report_progress(result: dict) -> None:
    """Append a finished layer's result to the progress file (one JSON line, closed at once
    so the reader in hwsim.cosim sees it while the simulation goes on)."""
    path = os.environ.get(ENV_PROGRESS)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(result) + "\n")


class ChainState:
    """What a chain run knows of the accelerator's activation memory: the values of the tensors
    the RTL wrote (read back from its output of each layer) or the host wrote, keyed by the
    tensor an alias resolves to; and which of them the DUT's memory holds."""

    def __init__(self, export):
        self.alias_of = {int(a["tensor"]): int(a["alias_of"])
                         for a in export.manifest.get("aliases", []) or []}
        self.values: dict[int, np.ndarray] = {}
        self.in_dut: set[int] = set()

    def root(self, t: int) -> int:
        while t in self.alias_of:
            t = self.alias_of[t]
        return t

    def get(self, t):
        return self.values.get(self.root(int(t)))

    def written(self, t) -> bool:
        """The RTL or the host wrote tensor ``t`` in this run (its value may be unreadable)."""
        return self.root(int(t)) in self.values

    def put(self, t, values, in_dut: bool) -> None:
        r = self.root(int(t))
        self.values[r] = values
        if in_dut:
            self.in_dut.add(r)
        else:
            self.in_dut.discard(r)


def _array_inputs(export, layer, mode: str, state: ChainState) -> list[list[int]]:
    """The words to load for an array layer: layer mode, its golden inputs; chain mode,
    nothing when the DUT's memory holds every input, else every input (the host writes what
    it computed, or the network input; what the RTL wrote goes back unchanged)."""
    if mode == "layer":
        return [read_words(export, spec) for spec in layer.inputs]
    if all(state.root(int(spec["tensor"])) in state.in_dut for spec in layer.inputs):
        return []
    words = []
    for spec in layer.inputs:
        v = state.get(spec["tensor"])
        words.append(read_words(export, spec) if v is None else pack(v, spec))
        state.put(spec["tensor"], v if v is not None else read_vector(export, spec), True)
    return words


def _host_step(export, layer, r: dict, state: ChainState, host: HostRunner) -> None:
    """Chain mode: run a host layer with hwsim's engine on the values the accelerator's memory
    holds (the RTL's own outputs), check it against its golden output, keep its outputs for
    the array layers that read them (the next one loads them into the activation memory)."""
    ins = {}
    for k, spec in zip(("input", "input2", "input3", "input4"), layer.inputs):
        v = state.get(spec["tensor"])
        if v is None and state.written(spec["tensor"]):
            raise RuntimeError(f"its input tensor {spec['tensor']} could not be read back "
                               f"from the RTL")
        ins[int(spec["tensor"])] = read_h5_vector(export, layer, k) if v is None else v
    lay = host.layers[layer.index]
    for j, t in enumerate(lay.inputs):   # inputs beyond the vectors listed (none today)
        if t not in ins:
            ins[t] = read_h5_vector(export, layer, "input" if j == 0 else f"input{j + 1}")
    outs = host.run(layer.index, ins)
    expected = read_h5_vector(export, layer, "output")
    got = outs[lay.outputs[0]]
    r["output"] = compare_host(expected, got, layer.output or {})
    r["status"] = "mismatch" if r["output"]["mismatches"] else "host"
    for t, y in outs.items():
        state.put(t, y.reshape(-1), False)


def _unpack_output(words, spec: dict) -> np.ndarray:
    """A layer's output elements (flat NHWC) from the words the RTL streamed from its out_base;
    with a ``pixel_stride`` (a CONCATENATION alias's input along C) the words span the pixels
    and hold other layers' channels between them."""
    at = strided_index(spec)
    if at is None:
        return unpack(words, spec)
    lanes = int(spec["layout"]["lanes_per_word"])
    return unpack(words, dict(spec, elements=len(words) * lanes))[at]


def host_runner(export, mode: str):
    """Chain mode with host layers: the HostRunner (it maps the model copy, which loads hwsim's
    kernels: seconds), built during set-up so that the layer loop times the simulation; None
    otherwise (exports without a model copy: host rows are not run, the array layers after
    them load their golden inputs)."""
    if mode != "chain" or not (export.manifest.get("model") or {}).get("copy"):
        return None
    if not any(L.host for L in _selected(export)):
        return None
    return HostRunner(export)


async def run_layers(dut, export, adapter, mode: str, want_acc: bool, log,
                     host=None) -> list[dict]:
    results = []
    fixed_timeout = int(os.environ.get(ENV_TIMEOUT, "0") or 0)
    stop_on_fail = os.environ.get(ENV_STOP, "0") == "1"
    state = ChainState(export)
    selected = [L for L in _selected(export) if L.placement in ("array", "host")]
    for layer in selected:
        r = _layer_result(layer)
        results.append(r)
        if layer.host:
            r["status"] = "host"
            if host is not None:
                t0, c0 = time.perf_counter(), time.process_time()
                r["host"] = True
                try:
                    _host_step(export, layer, r, state, host)
                except Exception as e:  # noqa: BLE001 - a verdict, not a bench failure
                    r["status"], r["error"] = "error", f"host step: {type(e).__name__}: {e}"
                r["wall_seconds"] = round(time.perf_counter() - t0, 3)
                r["cpu_seconds"] = round(time.process_time() - c0, 3)
                log.info("layer %d %s (host): %s", layer.index, layer.op, r["status"])
            _report_progress(r)
            if stop_on_fail and r["status"] not in ("ok", "host"):
                break
            continue
        t0 = time.perf_counter()
        out_spec = layer.output
        expected = read_vector(export, out_spec)
        inputs = _array_inputs(export, layer, mode, state)
        acc_n = int(layer.acc["elements"]) if (layer.acc and want_acc) else 0
        timeout = fixed_timeout or max(DEFAULT_TIMEOUT_MIN, TIMEOUT_FACTOR * (layer.estimate or 0))
        job = LayerJob(position=int(layer.position), op=layer.accel_op, inputs=inputs,
                       out_words=int(out_spec["words"]), acc_elements=acc_n,
                       timeout_cycles=timeout)
        run = await adapter.run_layer(job)
        r["cycles"], r["total_cycles"] = run.cycles, run.total_cycles
        got = _unpack_output(run.output_words[:job.out_words], out_spec) \
            if run.output_words is not None and len(run.output_words) >= job.out_words else None
        if got is None and run.output_words is not None:
            r["error"] = f"output stream has {len(run.output_words)} words, expected " \
                         f"{job.out_words}"
        # what the RTL wrote is what the next layers (array or host) read (None: unreadable)
        state.put(out_spec["tensor"], got, True)
        r["output"] = compare_vectors(expected, got, out_spec)
        if acc_n and run.acc is not None:
            exp_acc = read_vector(export, layer.acc)
            got_acc = np.full(exp_acc.size, np.iinfo(np.int64).min, dtype=np.int64)
            for i, v in run.acc.items():
                if 0 <= i < got_acc.size:
                    got_acc[i] = v
            r["acc"] = compare_vectors(exp_acc, got_acc, layer.acc)
        if run.error:
            r["error"] = run.error if not r["error"] else f"{run.error}; {r['error']}"
        bad = r["output"]["mismatches"] or (r["acc"] and r["acc"]["mismatches"])
        r["status"] = "error" if (run.error or got is None) else ("mismatch" if bad else "ok")
        r["wall_seconds"] = round(time.perf_counter() - t0, 3)
        log.info("layer %d %s: %s (%s mismatches, %s cycles)", layer.index, layer.op,
                 r["status"], r["output"]["mismatches"], r["cycles"])
        _report_progress(r)
        if run.error and run.error.startswith("timeout"):
            break  # the DUT is stuck: the remaining layers cannot run
        if stop_on_fail and r["status"] != "ok":
            break
    return results


@cocotb.test()
async def run_export(dut):
    """Drive every selected layer of the export through the adapter; write the results."""
    log = logging.getLogger("cocotb.hwsim.bench")
    out = {"layers": [], "error": None, "wall_seconds": 0.0, "cpu_seconds": 0.0,
           "setup_seconds": 0.0, "host_seconds": 0.0, "host_cpu_seconds": 0.0,
           "sim_cycles": 0}
    result_file = os.environ.get(ENV_RESULT)
    t0 = time.perf_counter()
    adapter = None
    cycles0 = 0
    try:
        export = load_export(os.environ[ENV_EXPORT])
        mode = os.environ.get(ENV_MODE, "layer")
        want_acc = os.environ.get(ENV_ACC, "1") != "0"
        adapter = load_adapter(os.environ.get(ENV_ADAPTER, DEFAULT_ADAPTER))(dut, export, log)
        await adapter.start()
        host = host_runner(export, mode)
        out["setup_seconds"] = time.perf_counter() - t0
        cycles0 = adapter.sim_cycles()
        t0, cpu0 = time.perf_counter(), time.process_time()
        out["layers"] = await run_layers(dut, export, adapter, mode, want_acc, log, host)
    except Exception as e:  # noqa: BLE001 - reported in the JSON, then re-raised
        out["error"] = f"bench failed: {type(e).__name__}: {e}"
        log.error("%s", traceback.format_exc())
        raise
    finally:
        out["wall_seconds"] = time.perf_counter() - t0  # the layers (after setup)
        if "cpu0" in locals():  # CPU of the simulator process (simulator + bench): a figure
            out["cpu_seconds"] = time.process_time() - cpu0  # the machine's load does not move
        if adapter is not None:
            out["sim_cycles"] = adapter.sim_cycles() - cycles0
        host_rows = [r for r in out["layers"] if r.get("host")]
        out["host_seconds"] = sum(r.get("wall_seconds", 0.0) for r in host_rows)
        out["host_cpu_seconds"] = sum(r.get("cpu_seconds", 0.0) for r in host_rows)
        if result_file:
            with open(result_file, "w") as f:
                json.dump(out, f, indent=1)
