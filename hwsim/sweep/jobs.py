"""What a worker runs: one job (model, config, input) -> one result row.

Imports no Dask: the serial executor calls :func:`run_job` in-process, a Dask worker calls
the same function. Only hwsim's public API is used: ``hwsim.load_graph``,
``hwsim.hw.map_network(..., legalize="approx")`` and the HwNetwork it returns (``run``,
``headroom``, ``layer_stats``, ``reference``), ``hwsim.engine.Network`` (what ``hwsim.load``
returns) for the engine's run, ``hwsim.inputs.random_input`` and ``hwsim.quant.quantize``.

Start-up cost (reading the model, quantizing an ONNX model, lowering and legalizing for a
config, Numba's cache load) is paid once per worker process: the prepared model and the
mapped network are kept in small LRU caches keyed by the model's content (sha256 and how it
was quantized) and the resolved config, so a worker that runs the 8 inputs of one
(model, config) maps it once. Failures are cached too: a config that does not map fails
every input at once with the same message.

The row is deterministic given the job; only ``worker`` and ``seconds`` depend on where and
when it ran. An exception inside the job becomes the row's ``error`` (the sweep goes on);
only the death of the worker escapes, and Dask retries that.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

MAX_ERROR_CHARS = 500
MODEL_CACHE = 4      # prepared models per process
NETWORK_CACHE = 8    # mapped (model, config) networks per process


@dataclass
class Job:
    model: str                 # the model's label (as in the spec)
    model_id: str              # content key: sha256 (+ quantization settings for ONNX)
    kind: str                  # tflite | onnx
    config: str                # the config variant's label
    config_json: str | None    # the resolved config (AccelConfig.to_dict()), None on error
    config_error: str          # why the config did not load ("" when it did)
    acc_bits: int | None
    input: int                 # input index (random: the seed)
    x: np.ndarray | None = None   # dataset sample, None for random inputs
    label: int | None = None      # dataset label
    quantize: tuple = ()          # ONNX: (("method", m), ("samples", n), ("seed", s))
    host_tail: bool = True

    @property
    def key(self) -> tuple:
        return self.model, self.config, self.input


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or_make(self, key, make):
        if key in self:
            self.move_to_end(key)
        else:
            try:
                self[key] = (make(), None)
            except Exception as e:  # cached: the same job fails the same way
                self[key] = (None, e)
            while len(self) > self.size:
                self.popitem(last=False)
        value, error = self[key]
        if error is not None:
            raise error
        return value


_models = _LRU(MODEL_CACHE)
_networks = _LRU(NETWORK_CACHE)


@dataclass
class _Model:
    graph: object            # the int8 graph IR
    quant: object = None     # ONNX: the QuantResult (quantizes float dataset inputs)


@dataclass
class _Mapped:
    hw: object       # HwNetwork
    engine: object   # hwsim.engine.Network of the model's own program
    cycles: int


def error_text(e: BaseException) -> str:
    """One line for the ``error`` column: an HwsimError's message, else 'Type: message'."""
    from ..ir import HwsimError
    text = str(e) if isinstance(e, HwsimError) else f"{type(e).__name__}: {e}"
    text = " ".join(text.split()) or type(e).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


def _load_model(job: Job, blob: bytes, calib) -> _Model:
    from ..ir import HwsimError
    with tempfile.TemporaryDirectory(prefix="hwsim-sweep-") as d:
        try:
            return _read_model(job, blob, calib, d)
        except HwsimError as e:  # name the model as the spec does, not the temp file
            raise type(e)(str(e).replace(os.path.join(d, "model." + job.kind), job.model)
                          .replace(d + os.sep, "")) from None


def _read_model(job: Job, blob: bytes, calib, d: str) -> _Model:
    import hwsim
    path = os.path.join(d, "model." + job.kind)
    with open(path, "wb") as f:
        f.write(blob)
    if job.kind == "tflite":
        graph, quant = hwsim.load_graph(path), None
    else:
        from ..quant.quantize import quantize
        opts = dict(job.quantize)
        fgraph = hwsim.load_graph(path)
        if calib is None:
            calib = _random_calibration(fgraph, opts["samples"], opts["seed"])
        quant = quantize(fgraph, calib, method=opts["method"])
        qpath = os.path.join(d, "model_int8.tflite")
        with open(qpath, "wb") as f:
            f.write(quant.tflite_bytes())
        graph = hwsim.load_graph(qpath)  # what `hwsim quantize` would write, read back
    graph.source = job.model  # messages name the model as the spec does, not the temp file
    return _Model(graph, quant)


def _random_calibration(graph, samples: int, seed: int):
    """``samples`` seeded N(0, 1) samples per graph input (hwsim.inputs.random_input with
    seed ``seed + s``), in the graph's layout."""
    from ..inputs import random_input
    infos = [graph.tensors[i] for i in graph.inputs]
    batches = [[random_input(info, seed + s, k) for k, info in enumerate(infos)]
               for s in range(samples)]
    if len(infos) == 1:
        return np.concatenate([b[0] for b in batches])
    return batches


def _map(job: Job, model: _Model) -> _Mapped:
    from ..engine import Network
    from ..hw import config_from_dict, map_network
    cfg = config_from_dict(json.loads(job.config_json), job.config)
    # a copy: lowering must not see a graph another config's mapping has touched
    hw = map_network(copy.deepcopy(model.graph), cfg, legalize="approx")
    return _Mapped(hw, Network(hw.reference, hw.graph),
                   int(sum(s.cycles for s in hw.layer_stats())))


def _inputs(job: Job, model: _Model, mapped: _Mapped) -> list[np.ndarray]:
    from ..inputs import random_input
    from ..ir import InputError
    infos = mapped.engine.input_infos
    if job.x is None:
        return [random_input(info, job.input, k) for k, info in enumerate(infos)]
    if len(infos) != 1:
        raise InputError(f"{job.model}: has {len(infos)} inputs; a dataset (x) feeds "
                         f"single-input models")
    info, x = infos[0], np.asarray(job.x)
    want = tuple(info.shape)
    if x.dtype.kind == "f":
        xb = x if x.ndim == len(want) else x[None]
        if model.quant is not None:  # ONNX: graph or source (NCHW) layout
            x = model.quant.quantize_input(xb, 0)
        else:
            from ..quant.quantize import quantize_input
            if tuple(xb.shape) != want:
                raise InputError(f"dataset x[{job.input}] has shape {list(x.shape)}; "
                                 f"{job.model}'s input '{info.name}' is {list(want)}")
            x = quantize_input(model.graph, xb, 0)
    elif x.dtype != np.dtype(info.dtype):
        raise InputError(f"dataset x has dtype {x.dtype}; {job.model}'s input '{info.name}' "
                         f"is {np.dtype(info.dtype)} (give that dtype, or floats to quantize "
                         f"with the input's scale and zero point)")
    if tuple(x.shape) != want and (1,) + tuple(x.shape) == want:
        x = x[None]
    if tuple(x.shape) != want:
        raise InputError(f"dataset x[{job.input}] has shape {list(job.x.shape)}; "
                         f"{job.model}'s input '{info.name}' is {list(want)}")
    return [np.ascontiguousarray(x)]


def _compare(hw_outs, ref_outs) -> tuple[int, int]:
    mismatches, max_diff = 0, 0
    for a, b in zip(hw_outs, ref_outs):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            raise TypeError(f"float output ({a.dtype}, {b.dtype}): the sweep compares integers")
        d = np.abs(a.astype(np.int64) - b.astype(np.int64))
        mismatches += int(np.count_nonzero(d))
        max_diff = max(max_diff, int(d.max()) if d.size else 0)
    return mismatches, max_diff


def _top1(outputs, label: int) -> int:
    return int(int(np.argmax(np.asarray(outputs[0]).reshape(-1))) == int(label))


def worker_address() -> str:
    """This Dask worker's address, or ``local`` outside a worker."""
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def worker_info() -> dict:
    """Run on every worker before a sweep: proves hwsim imports there, and which version."""
    import hwsim
    return {"hwsim": hwsim.__version__, "numba_threads": os.environ.get("NUMBA_NUM_THREADS"),
            "malloc_trim_threshold": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


def run_job(job: Job, blob: bytes, calib=None, worker: str | None = None) -> dict:
    """The row of ``job`` (see hwsim.sweep.results.COLUMNS). ``blob``: the model file's
    bytes; ``calib``: dataset samples to calibrate an ONNX model on (None: seeded random)."""
    t0 = time.perf_counter()
    row = {"model": job.model, "config": job.config, "input": job.input,
           "acc_bits": job.acc_bits}
    try:
        if job.config_error:
            from ..ir import HwsimError
            raise HwsimError(job.config_error)
        model = _models.get_or_make((job.model_id, job.kind, job.quantize),
                                    lambda: _load_model(job, blob, calib))
        mapped = _networks.get_or_make((job.model_id, job.kind, job.quantize,
                                        job.config_json, job.host_tail),
                                       lambda: _map(job, model))
        xs = _inputs(job, model, mapped)
        res = mapped.hw.run(xs, trace=True)
        ref = mapped.engine.run(xs, trace=False).outputs
        mismatches, max_diff = _compare(res.outputs, ref)
        observed = [r.observed_bits for r in mapped.hw.headroom(res, max_elements=0)
                    if r.observed_bits is not None]
        row.update(exact=mismatches == 0, mismatches=mismatches, max_abs_diff=max_diff,
                   cycles=mapped.cycles, min_acc_bits=max(observed) if observed else None)
        if job.label is not None:
            row.update(top1=_top1(res.outputs, job.label), ref_top1=_top1(ref, job.label))
    except Exception as e:  # noqa: BLE001 -- any failure of the job is its row's message
        row["error"] = error_text(e)
    row["worker"] = worker if worker is not None else worker_address()
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def run_jobs(jobs: list[Job], blob: bytes, calib=None) -> list[dict]:
    """The rows of several jobs of one model, in order (one Dask task: see run.py)."""
    worker = worker_address()
    return [run_job(job, blob, calib, worker) for job in jobs]
