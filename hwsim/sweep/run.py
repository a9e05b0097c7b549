"""Run a sweep into an output folder: serially, on a local Dask cluster, or on a running one.

The folder (``--out``) holds sweep.json (what the rows were computed from), results.csv,
summary.csv and report.html. A folder holding anything else is refused (never touched); a
folder holding an earlier sweep resumes it: jobs whose (model, config, input) row is already
in results.csv are skipped. Resuming refuses, before running anything, when a model file or
a config the rows were computed from has changed since (sha256 in sweep.json), or the inputs
did: rows of different sweeps must not mix. Two sweeps cannot write one folder at once (a
lock on the folder).

Executors yield rows as jobs finish; each row is appended to results.csv at once. On Dask,
each model file (and an ONNX model's calibration set) is a task of its own whose data the
scheduler keeps, so a worker that dies takes nothing with it that cannot be recomputed; its
running jobs are rescheduled by the scheduler (``distributed.scheduler.allowed-failures``),
and each job is submitted with ``retries=2``. A job that still fails at the Dask level (e.g.
KilledWorker) writes no row: it is reported as lost, and a rerun with the same ``--out``
runs it again.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field

from ..ir import HwsimError
from ..util import atomic_write_bytes, check_output_dir
from .jobs import Job, run_job, run_jobs, worker_info
from .results import (COLUMNS, ResultsFile, as_strings, key_of, read_results, summarize,
                      summary_csv)
from .spec import SweepSpec

SWEEP_FORMAT = "hwsim-sweep"
SWEEP_FILE, RESULTS_FILE, SUMMARY_FILE, REPORT_FILE = ("sweep.json", "results.csv",
                                                       "summary.csv", "report.html")
OUT_FILES = (SWEEP_FILE, RESULTS_FILE, SUMMARY_FILE, REPORT_FILE)
WHAT = "an hwsim sweep output (sweep.json with format: hwsim-sweep)"
MAX_BATCH = 8               # jobs per Dask task, at most
TASKS_PER_WORKER = 8        # batches stay small enough for 8 tasks per worker
WORKER_WAIT_SECONDS = 60     # --scheduler: how long to wait for a first worker
CONNECT_TIMEOUT = "20s"


@dataclass
class Outcome:
    total: int                 # jobs in the spec
    skipped: int               # already in results.csv
    ran: int = 0               # rows written now
    errors: int = 0            # of them, error rows
    lost: list = field(default_factory=list)   # (key, message): no row (Dask-level failure)
    seconds: float = 0.0
    where: str = ""            # "serially" / "on a local Dask cluster of N workers" / ...
    workers: list = field(default_factory=list)  # worker addresses (Dask)
    first_error: str = ""
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # one-line remarks for the user (stderr)


# -- the output folder ----------------------------------------------------------------------

def _read_marker(folder: str) -> dict | None:
    path = os.path.join(folder, SWEEP_FILE)
    try:
        if os.path.getsize(path) > 64 << 20:
            return None
        with open(path, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == SWEEP_FORMAT \
        else None


def owned_sweep_files(folder: str) -> set[str] | None:
    """The files a sweep writes into ``folder`` (and temp files of its atomic writes), or None
    when ``folder`` holds no sweep.json of hwsim sweep."""
    if _read_marker(folder) is None:
        return None
    with contextlib.suppress(OSError):
        leftovers = {f for f in os.listdir(folder) if f.startswith(".hwsim-")}
        return set(OUT_FILES) | leftovers
    return set(OUT_FILES)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(spec: SweepSpec, blobs: dict[str, bytes]) -> dict:
    """What the rows of ``spec`` are computed from (written to sweep.json)."""
    inputs = {"kind": spec.inputs.kind}
    if spec.inputs.kind == "dataset":
        inputs["sha256"] = spec.inputs.sha256
    return {"format": SWEEP_FORMAT, "version": 1, "columns": list(COLUMNS),
            "inputs": inputs, "host_tail": spec.host_tail, "quantize": spec.quantize,
            "models": {m.label: _sha256(blobs[m.label]) for m in spec.models},
            "configs": {v.label: v.fingerprint for v in spec.variants}}


def _merge(out: str, old: dict | None, new: dict) -> dict:
    """sweep.json after this run; HwsimError when the folder's rows came from other data."""
    if old is None:
        return new
    where = os.path.join(out, SWEEP_FILE)
    hint = "give a new --out (or remove the folder) to start afresh"
    for k in ("columns", "inputs", "host_tail", "quantize"):
        if old.get(k) != new[k]:
            raise HwsimError(f"{where}: the rows there were computed with {k} "
                             f"{json.dumps(old.get(k))[:100]}, this spec gives "
                             f"{json.dumps(new[k])[:100]}; {hint}")
    merged = dict(old)
    for k, what in (("models", "model file"), ("configs", "config")):
        was = old.get(k) if isinstance(old.get(k), dict) else {}
        for label, sha in new[k].items():
            if label in was and was[label] != sha:
                raise HwsimError(f"{where}: the {what} {label!r} has changed since its rows "
                                 f"were computed (sha256 differs); {hint}")
        merged[k] = {**was, **new[k]}
    return merged


@contextlib.contextmanager
def _locked(folder: str):
    """An exclusive lock on the output folder for the whole run."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise HwsimError(f"{folder}: another hwsim sweep is writing there") from None
        yield
    finally:
        os.close(fd)


def prepare_out(out: str) -> None:
    """Refuse ``out`` unless it is missing, empty or an earlier sweep output; create it."""
    check_output_dir(out, owned_sweep_files, WHAT)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise HwsimError(f"{out}: cannot create the output folder ({e.strerror or e})") \
            from None


# -- jobs -----------------------------------------------------------------------------------

def make_jobs(spec: SweepSpec, blobs: dict[str, bytes]) -> list[Job]:
    quant = tuple(sorted(spec.quantize.items()))
    calib_from = ("dataset", spec.inputs.sha256) if spec.inputs.kind == "dataset" and \
        spec.inputs.x.dtype.kind == "f" else ("random",)
    jobs = []
    for m in spec.models:
        sha = _sha256(blobs[m.label])
        q = quant + (("calibration", calib_from),) if m.kind == "onnx" else ()
        for v in spec.variants:
            cj = None if v.config is None else json.dumps(v.config, sort_keys=True)
            for i in range(spec.inputs.count):
                x = y = None
                if spec.inputs.kind == "dataset":
                    x = spec.inputs.x[i]
                    y = None if spec.inputs.y is None else int(spec.inputs.y[i])
                jobs.append(Job(m.label, sha, m.kind, v.label, cj, v.error, v.acc_bits, i,
                                x, y, q, spec.host_tail))
    return jobs


def calibration(spec: SweepSpec):
    """The dataset samples ONNX models are calibrated on (float datasets), else None."""
    x = spec.inputs.x
    if spec.inputs.kind != "dataset" or x.dtype.kind != "f":
        return None
    return x[:spec.quantize["samples"]]


# -- executors ------------------------------------------------------------------------------

def run_serial(jobs, blobs, calib):
    for job in jobs:
        yield run_job(job, blobs[job.model], calib if job.kind == "onnx" else None,
                      worker="local")


def _identity(x):
    return x


def worker_env() -> dict:
    """Environment of local cluster workers: one Numba thread each (N processes), unless
    NUMBA_NUM_THREADS is set; NUMBA_CACHE_DIR is inherited, so all share one cache."""
    return {"NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS", "1")}


@contextlib.contextmanager
def dask_client(workers: int | None, scheduler: str | None):
    """A distributed.Client: on a new local cluster of ``workers`` processes, or connected to
    ``scheduler``. Closed (and the local cluster shut down) on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise HwsimError("a Dask cluster needs dask[distributed]: pip install 'hwsim[cluster]' "
                         "(or run serially with --workers 1)") from None
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError, ValueError) as e:
                raise HwsimError(f"--scheduler {scheduler}: cannot connect to the Dask "
                                 f"scheduler ({' '.join(str(e).split())[:160]})") from None
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except TimeoutError:
                raise HwsimError(f"--scheduler {scheduler}: no worker connected within "
                                 f"{WORKER_WAIT_SECONDS} s (start some: dask worker "
                                 f"{scheduler} --nthreads 1)") from None
        else:
            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in the workers it spawns; an
            # explicit trim threshold turns off glibc's dynamic mmap threshold, so every
            # large numpy array is a fresh mmap and page faults: jobs ran 1.3x slower
            # (48 ms vs 37 ms for person_detect, single-threaded, measured here)
            import dask
            stack.enter_context(dask.config.set(
                {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}))
            try:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR, env=worker_env()))
            except (OSError, RuntimeError, TimeoutError) as e:
                raise HwsimError(f"--workers {workers}: cannot start a local Dask cluster "
                                 f"({' '.join(str(e).split())[:160]})") from None
            client = stack.enter_context(Client(cluster))
        yield client


def slow_malloc_note(infos: dict) -> str:
    """A note when workers run with MALLOC_TRIM_THRESHOLD_ set (Dask's nanny sets 65536 by
    default): glibc then mmaps every large array afresh, jobs run ~1.3x slower."""
    slow = sorted(a for a, i in infos.items() if isinstance(i, dict)
                  and i.get("malloc_trim_threshold") is not None)
    if not slow:
        return ""
    return (f"{len(slow)} of {len(infos)} Dask workers run with MALLOC_TRIM_THRESHOLD_ set "
            f"(Dask's nanny default): jobs run ~1.3x slower there; start them with a Dask "
            f"config that unsets it (docs/sweep.md, 'Speed')")


def check_workers(client) -> list[str]:
    """Every worker imports hwsim (this version): else one clear error before any job."""
    import hwsim
    try:
        infos = client.run(worker_info, on_error="return")
    except Exception as e:  # noqa: BLE001 -- whatever the cluster says, as one line
        raise HwsimError(f"the Dask workers cannot run hwsim ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]})") from None
    for addr, info in sorted(infos.items()):
        if isinstance(info, BaseException) or not isinstance(info, dict):
            raise HwsimError(f"Dask worker {addr} cannot run hwsim ({type(info).__name__}: "
                             f"{' '.join(str(info).split())[:160]}); install hwsim there")
        if info["hwsim"] != hwsim.__version__:
            raise HwsimError(f"Dask worker {addr} runs hwsim {info['hwsim']}, this is "
                             f"{hwsim.__version__}; install the same version everywhere")
    return sorted(infos), slow_malloc_note(infos)


def batch_size(jobs: int, workers: int) -> int:
    """Jobs per Dask task: 1 for small sweeps (rows stream in one by one, a dead worker
    takes one job with it), up to MAX_BATCH when there are many more jobs than workers, so
    that Dask's cost per task (~20 ms of CPU measured here) stays small next to the jobs'
    (~50 ms for person_detect)."""
    return max(1, min(MAX_BATCH, jobs // (workers * TASKS_PER_WORKER)))


def run_dask(client, jobs, blobs, calib, lost: list, workers: int = 1):
    """Submit every job (in batches of :func:`batch_size` jobs of one model); yield rows as
    they finish. Jobs that fail at the Dask level are appended to ``lost`` as
    (key, message) and yield nothing."""
    from distributed import as_completed
    size = batch_size(len(jobs), workers)
    # key prefixes name Dask's task groups: jobs must not share one with the tiny model tasks,
    # or the scheduler takes the jobs for instant and keeps them all where the model is
    run_id = uuid.uuid4().hex
    by_model: dict[str, list[Job]] = {}
    for job in jobs:
        by_model.setdefault(job.model, []).append(job)
    futures = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ll]arge.*")  # model bytes in the graph
        for n, (model, group) in enumerate(by_model.items()):
            # the scheduler keeps these tasks' arguments: recomputable if a worker dies
            blob = client.submit(_identity, blobs[model], key=f"hwsim-sweep-model-{run_id}-{n}",
                                 pure=False)
            cal = None
            if group[0].kind == "onnx" and calib is not None:
                cal = client.submit(_identity, calib, key=f"hwsim-sweep-calib-{run_id}-{n}",
                                    pure=False)
            batches = [group[k:k + size] for k in range(0, len(group), size)]
            keys = [f"hwsim-sweep-job-{run_id}-{n}-{k}" for k in range(len(batches))]
            fs = client.map(run_jobs, batches, blob=blob, calib=cal, key=keys, retries=2,
                            pure=False)
            futures.update(zip(fs, batches))
    for fut, result in as_completed(list(futures), with_results=True, raise_errors=False):
        batch = futures.pop(fut)
        if fut.status == "finished" and isinstance(result, list):
            yield from result
        else:
            why = f"{type(result).__name__}: {' '.join(str(result).split())[:200]}"
            lost.extend((job.key, why) for job in batch)
        fut.release()


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or total == 0:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="hwsim sweep", unit="job", file=sys.stderr, leave=False,
                dynamic_ncols=True)


# -- the sweep ------------------------------------------------------------------------------

def read_blobs(spec: SweepSpec) -> dict[str, bytes]:
    blobs = {}
    for m in spec.models:
        try:
            with open(m.path, "rb") as f:
                blobs[m.label] = f.read()
        except OSError as e:
            raise HwsimError(f"{m.path}: cannot read ({e.strerror or e})") from None
    return blobs


def _done_keys(out: str) -> set:
    """(model, config, input) of the rows results.csv holds (read only; empty when none)."""
    path = os.path.join(out, RESULTS_FILE)
    if not os.path.isfile(path):
        return set()
    return {key_of(r) for r in read_results(path)}


def run_sweep(spec: SweepSpec, out: str, workers: int | None = None,
              scheduler: str | None = None, progress: bool | None = None,
              on_start=None) -> Outcome:
    """Run every job of ``spec`` not yet in ``out``/results.csv; write summary.csv and
    report.html. ``workers``: 1 (or None with no ``scheduler``) runs in this process; N > 1
    starts a local Dask cluster of N processes; ``scheduler``: address of a running one.
    ``on_start(outcome)`` is called once the jobs to run are known (for a status line).

    Nothing is written before the folder, its earlier rows and the cluster are checked: a
    folder that is refused, a changed model or an unreachable scheduler leave no file."""
    from .report import write_report
    check_output_dir(out, owned_sweep_files, WHAT)
    blobs = read_blobs(spec)
    new_marker = fingerprint(spec, blobs)
    _merge(out, _read_marker(out), new_marker)
    all_jobs = make_jobs(spec, blobs)
    done = _done_keys(out)
    use_dask = (scheduler or (workers or 1) > 1) and any(j.key not in done for j in all_jobs)
    outcome = Outcome(spec.job_count, 0)
    with contextlib.ExitStack() as stack:
        if use_dask:
            client = stack.enter_context(dask_client(workers, scheduler))
            outcome.workers, note = check_workers(client)
            if note:
                outcome.notes.append(note)
            outcome.where = (f"on the Dask cluster at {scheduler} "
                             f"({len(outcome.workers)} workers)" if scheduler else
                             f"on a local Dask cluster of {workers} workers")
        prepare_out(out)
        stack.enter_context(_locked(out))
        check_output_dir(out, owned_sweep_files, WHAT)  # again, under the lock
        marker = _merge(out, _read_marker(out), new_marker)
        atomic_write_bytes(os.path.join(out, SWEEP_FILE),
                           (json.dumps(marker, indent=1, sort_keys=True) + "\n").encode())
        results = ResultsFile(os.path.join(out, RESULTS_FILE))
        stack.callback(results.close)
        rows = list(results.rows)
        done = {key_of(r) for r in rows}
        jobs = [j for j in all_jobs if j.key not in done]
        outcome.skipped = spec.job_count - len(jobs)
        if not use_dask:
            outcome.where = "serially" if jobs else ""
        if on_start is not None:
            on_start(outcome)
        calib = calibration(spec)
        t0 = time.perf_counter()
        if jobs and use_dask:
            stream = run_dask(client, jobs, blobs, calib, outcome.lost,
                              max(1, len(outcome.workers)))
        else:
            stream = run_serial(jobs, blobs, calib)
        bar = _progress(len(jobs), progress)
        with contextlib.ExitStack() as bar_stack:
            if bar is not None:
                bar_stack.callback(bar.close)
            for row in stream:
                results.write(row)
                rows.append(as_strings(row))
                outcome.ran += 1
                if row.get("error"):
                    outcome.errors += 1
                    outcome.first_error = outcome.first_error or row["error"]
                if bar is not None:
                    bar.update(1)
        outcome.seconds = time.perf_counter() - t0
        order = [(m.label, v.label) for m in spec.models for v in spec.variants]
        summary = summarize(rows, order, {v.label: v.acc_bits for v in spec.variants})
        atomic_write_bytes(os.path.join(out, SUMMARY_FILE), summary_csv(summary))
        write_report(os.path.join(out, REPORT_FILE), spec, summary)
    outcome.files = [os.path.join(out, f) for f in (RESULTS_FILE, SUMMARY_FILE, REPORT_FILE)]
    return outcome
