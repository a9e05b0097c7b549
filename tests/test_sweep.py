"""``hwsim sweep`` (hwsim.sweep): one small spec run serially, on a local Dask cluster of 2
workers and on a scheduler + 2 workers started here as separate processes on 127.0.0.1 — the
results are equal (sorted by model, config, input; worker and seconds aside) and each cluster
row names one of the workers; a worker killed during a sweep loses no row; a rerun resumes
(after a crash that left a partial line too); error rows; dataset inputs with labels (and an
ONNX float model, quantized first); spec and --out errors as one line with exit status 2.

The spec: the bundled example CNN and the same network with seed 1, configs tflite-int8 and
narrow-acc-24, grid accumulator.bits [16, 32], 2 random inputs: 16 jobs.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.examples import write_example
from hwsim.sweep.results import COLUMNS, comparable

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")

distributed = pytest.importorskip("distributed", reason="the cluster tests need "
                                  "dask[distributed] (pip install 'hwsim[cluster]')")

SPEC = """\
models: [m0.tflite, m1.tflite]
configs: [tflite-int8, narrow-acc-24]
grid:
  accumulator.bits: [16, 32]
inputs:
  random: {n}
"""
JOBS = 2 * 4 * 2
KILL_PLUGIN = '''\
"""Preload for one test worker: SIGKILL this process when its {n}th sweep job starts."""
import os
import signal

from distributed import WorkerPlugin


class KillOnJob(WorkerPlugin):
    name = "kill-on-job"

    def __init__(self):
        self.started = 0

    def transition(self, key, start, finish, **kw):
        if finish == "executing" and str(key).startswith("hwsim-sweep-job-"):
            self.started += 1
            if self.started == {n}:
                os.kill(os.getpid(), signal.SIGKILL)


async def dask_setup(worker):
    await worker.plugin_add(KillOnJob())
'''


def write_spec(folder: Path, n_inputs: int = 2, text: str | None = None) -> Path:
    for seed in (0, 1):
        if not (folder / f"m{seed}.tflite").exists():
            write_example(folder / f"m{seed}.tflite", seed=seed)
    spec = folder / "sweep.yaml"
    spec.write_text(text if text is not None else SPEC.format(n=n_inputs))
    return spec


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def sweep(capsys, *args) -> tuple[int, str, str]:
    code = main(["sweep", *map(str, args), "--no-progress"])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The spec's results computed serially (--workers 1): the reference of the other runs."""
    d = tmp_path_factory.mktemp("sweep")
    spec = write_spec(d)
    assert main(["sweep", str(spec), "--out", str(d / "out"), "--workers", "1",
                 "--no-progress"]) == 0
    return spec, d / "out", read_rows(d / "out")


# -- a scheduler and workers as separate processes ------------------------------------------

class Cluster:
    def __init__(self, folder: Path, workers: int = 2, preload: dict | None = None):
        self.folder, self.procs = folder, []
        sched_file = folder / "scheduler.json"
        env = dict(os.environ, NUMBA_NUM_THREADS="1")
        self.scheduler = self._start(["scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", str(sched_file)],
                                     env, "scheduler")
        deadline = time.time() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert self.scheduler.poll() is None, (folder / "scheduler.log").read_text()
            assert time.time() < deadline, "the dask scheduler did not start in 60 s"
            time.sleep(0.1)
        self.address = json.loads(sched_file.read_text())["address"]
        self.workers = []
        for k in range(workers):
            extra = ["--preload", preload[k]] if preload and k in preload else []
            self.workers.append(self._start(
                ["worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", f"w{k}"] + extra, env, f"w{k}"))
        with distributed.Client(self.address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=90)
            info = client.scheduler_info(n_workers=-1)["workers"]
            self.addresses = {a: w["name"] for a, w in info.items()}

    def _start(self, args, env, name):
        log = open(self.folder / f"{name}.log", "wb")
        p = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0]] +
                             args[1:], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append(p)
        return p

    def address_of(self, name: str) -> str:
        return next(a for a, n in self.addresses.items() if n == name)

    def stop(self):
        for p in self.procs:  # no graceful shutdown needed: nothing of theirs is kept
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


# -- equal results however it runs ---------------------------------------------------------

def test_serial_rows_and_files(serial):
    spec, out, rows = serial
    assert len(rows) == JOBS and list(rows[0]) == list(COLUMNS)
    assert {r["worker"] for r in rows} == {"local"}
    assert not any(r["error"] for r in rows)
    assert sorted((out / f).name for f in os.listdir(out)) == \
        ["report.html", "results.csv", "summary.csv", "sweep.json"]
    by = {(r["model"], r["config"], int(r["input"])): r for r in rows}
    # the model's own arithmetic (tflite-int8, 32-bit accumulator) is exact on every input
    for m in ("m0.tflite", "m1.tflite"):
        for i in (0, 1):
            r = by[(m, "tflite-int8 accumulator.bits=32", i)]
            assert (r["exact"], r["mismatches"], r["max_abs_diff"]) == ("true", "0", "0")
    # a 16-bit accumulator is not enough for this network: its sums need more bits
    r16 = by[("m0.tflite", "tflite-int8 accumulator.bits=16", 0)]
    assert r16["exact"] == "false" and int(r16["mismatches"]) > 0
    assert int(r16["min_acc_bits"]) > 16
    summary = list(csv.DictReader(open(out / "summary.csv", newline="")))
    assert [(s["model"], s["config"]) for s in summary] == [
        (m, f"{c} accumulator.bits={b}") for m in ("m0.tflite", "m1.tflite")
        for c in ("tflite-int8", "narrow-acc-24") for b in (16, 32)]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html


def test_row_matches_the_public_api(serial):
    """One row recomputed directly with map_network / the engine / headroom."""
    from hwsim.engine import Network
    from hwsim.hw import config_from_dict, load_config, map_network
    from hwsim.inputs import random_input
    spec, out, rows = serial
    d = load_config("narrow-acc-24").to_dict()
    d["accumulator"]["bits"] = 32
    hw = map_network(str(spec.parent / "m1.tflite"), config_from_dict(d), legalize="approx")
    ref = Network(hw.reference, hw.graph)
    x = [random_input(info, 1, k) for k, info in enumerate(ref.input_infos)]
    res = hw.run(x, trace=True)
    diff = np.abs(res.outputs[0].astype(np.int64) - ref.run(x).outputs[0].astype(np.int64))
    row = next(r for r in rows if (r["model"], r["config"], r["input"]) ==
               ("m1.tflite", "narrow-acc-24 accumulator.bits=32", "1"))
    assert int(row["mismatches"]) == int(np.count_nonzero(diff))
    assert int(row["max_abs_diff"]) == int(diff.max())
    assert int(row["cycles"]) == sum(s.cycles for s in hw.layer_stats())
    assert int(row["min_acc_bits"]) == max(r.observed_bits for r in hw.headroom(res))


def test_local_cluster_of_2_equals_serial(serial, tmp_path, capsys, monkeypatch):
    """Jobs go in batches of 8 here (one task per worker and model); the remote-cluster tests
    below send one job per task."""
    import hwsim.sweep.run as run
    monkeypatch.setattr(run, "TASKS_PER_WORKER", 1)
    assert run.batch_size(JOBS, 2) == 8
    spec, _, ref = serial
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "2")
    assert code == 0, err
    assert "on a local Dask cluster of 2 workers" in out
    rows = read_rows(tmp_path / "out")
    assert comparable(rows) == comparable(ref)
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in rows)
    assert (tmp_path / "out" / "summary.csv").read_bytes() == \
        (spec.parent / "out" / "summary.csv").read_bytes()


def test_local_cluster_workers_keep_glibc_malloc_defaults():
    """Dask's nanny would set MALLOC_TRIM_THRESHOLD_=65536 in the workers it spawns, which
    turns off glibc's dynamic mmap threshold (a page-faulting mmap per large numpy array:
    jobs 1.3x slower); hwsim's local cluster leaves it unset, and one Numba thread each."""
    from hwsim.sweep.run import dask_client
    # read before the cluster starts: starting it may set the variable in this process too
    want = {"MALLOC_TRIM_THRESHOLD_": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS", "1")}
    with dask_client(1, None) as client:
        env = client.run(lambda: {k: os.environ.get(k) for k in want})
    assert list(env.values()) == [want]


def test_workers_with_a_malloc_trim_threshold_get_a_note():
    from hwsim.sweep.run import slow_malloc_note
    assert slow_malloc_note({"tcp://a": {"malloc_trim_threshold": None}}) == ""
    note = slow_malloc_note({"tcp://a": {"malloc_trim_threshold": "65536"},
                             "tcp://b": {"malloc_trim_threshold": None}})
    assert note.startswith("1 of 2 Dask workers run with MALLOC_TRIM_THRESHOLD_ set")


def test_remote_scheduler_and_2_workers_equal_serial(serial, cluster, tmp_path, capsys):
    import hwsim.sweep.run as run
    assert run.batch_size(JOBS, 2) == 1  # one job per task
    spec, _, ref = serial
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--scheduler",
                           cluster.address)
    assert code == 0, err
    rows = read_rows(tmp_path / "out")
    assert comparable(rows) == comparable(ref)
    assert {r["worker"] for r in rows} <= set(cluster.addresses)
    assert len(cluster.addresses) == 2


def test_killed_worker_loses_no_row(serial, tmp_path, capsys):
    """Worker w0 SIGKILLs itself as its 2nd job starts (a preload plugin); the scheduler
    reschedules that job on w1 and every row arrives, equal to the serial run."""
    spec, _, ref = serial
    plugin = tmp_path / "kill_on_job.py"
    plugin.write_text(KILL_PLUGIN.replace("{n}", "2"))
    c = Cluster(tmp_path, preload={0: str(plugin)})
    try:
        w0, w1 = c.address_of("w0"), c.address_of("w1")
        code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--scheduler",
                               c.address)
        assert c.workers[0].wait(30) == -signal.SIGKILL  # it did die during the sweep
        assert c.workers[1].poll() is None
    finally:
        c.stop()
    assert code == 0, err
    rows = read_rows(tmp_path / "out")
    assert len(rows) == JOBS and comparable(rows) == comparable(ref)
    workers = [r["worker"] for r in rows]
    assert set(workers) <= {w0, w1} and workers.count(w0) <= 1


# -- resume ---------------------------------------------------------------------------------

def test_rerun_resumes(serial, tmp_path, capsys):
    spec, _, ref = serial
    out = tmp_path / "out"
    assert sweep(capsys, spec, "--out", out, "--workers", "1")[0] == 0
    lines = (out / "results.csv").read_bytes().splitlines(keepends=True)
    # a crash after 5 rows, in the middle of the 6th
    (out / "results.csv").write_bytes(b"".join(lines[:6]) + lines[6][:10])
    code, text, err = sweep(capsys, spec, "--out", out, "--workers", "1")
    assert code == 0, err
    assert f"({5} already in {out}); {JOBS - 5} to run" in text
    rows = read_rows(out)
    assert len(rows) == JOBS and comparable(rows) == comparable(ref)
    before = (out / "results.csv").read_bytes()
    code, text, _ = sweep(capsys, spec, "--out", out, "--workers", "2")
    assert code == 0 and f"{JOBS} already in" in text and "0 to run" in text
    assert (out / "results.csv").read_bytes() == before
    # a grown spec runs only the new jobs
    write_spec(spec.parent, text=SPEC.format(n=3))
    try:
        code, text, _ = sweep(capsys, spec, "--out", out, "--workers", "1")
    finally:
        write_spec(spec.parent)
    assert code == 0 and f"{JOBS // 2} to run" in text and len(read_rows(out)) == JOBS * 3 // 2


def test_rerun_refuses_a_changed_model(tmp_path, capsys):
    spec = write_spec(tmp_path, n_inputs=1)
    assert sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "1")[0] == 0
    write_example(tmp_path / "m1.tflite", seed=2)
    before = (tmp_path / "out" / "results.csv").read_bytes()
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "1")
    assert code == 2 and out == ""
    assert err.startswith("hwsim: error: ") and "'m1.tflite' has changed" in err
    assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "out" / "results.csv").read_bytes() == before


# -- error rows -----------------------------------------------------------------------------

def test_failing_model_and_config_give_error_rows(tmp_path, capsys):
    write_example(tmp_path / "good.tflite")
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer at all" * 4)
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [good.tflite, bad.tflite]\nconfigs: [narrow-acc-24]\n"
                    "grid: {accumulator.bits: [24, 80]}\ninputs: {random: 2}\n")
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "1")
    assert code == 0, err
    assert "6 error rows" in out
    rows = {(r["model"], r["config"], r["input"]): r for r in read_rows(tmp_path / "out")}
    assert len(rows) == 8
    good = rows[("good.tflite", "narrow-acc-24 accumulator.bits=24", "0")]
    assert good["error"] == "" and good["exact"] in ("true", "false")
    bad_cfg = rows[("good.tflite", "narrow-acc-24 accumulator.bits=80", "1")]
    assert "accumulator.bits: 80 is out of range [8, 64]" in bad_cfg["error"]
    assert bad_cfg["exact"] == ""
    bad_model = rows[("bad.tflite", "narrow-acc-24 accumulator.bits=24", "0")]
    assert bad_model["error"].startswith("bad.tflite") and bad_model["cycles"] == ""
    summary = {(s["model"], s["config"]): s for s in
               csv.DictReader(open(tmp_path / "out" / "summary.csv", newline=""))}
    s = summary[("bad.tflite", "narrow-acc-24 accumulator.bits=24")]
    assert (s["inputs"], s["errors"]) == ("0", "2") and s["error"] == bad_model["error"]


# -- datasets -------------------------------------------------------------------------------

def test_dataset_with_labels_reports_top1(tmp_path, capsys):
    import hwsim
    from hwsim.examples import example_input
    write_example(tmp_path / "m.tflite")
    x = np.stack([example_input(s)[0] for s in range(3)])  # int8 [3, 32, 32, 3], no batch dim
    y = np.array([3, 1, 4])
    np.savez(tmp_path / "data.npz", x=x, y=y)
    spec = tmp_path / "s.yaml"
    spec.write_text("models: [m.tflite]\nconfigs: [tflite-int8]\ninputs: {dataset: data.npz}\n")
    assert sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "1")[0] == 0
    rows = read_rows(tmp_path / "out")
    net = hwsim.load(tmp_path / "m.tflite")
    for r in rows:
        i = int(r["input"])
        want = int(np.argmax(net.run(x[i][None]).outputs[0]) == y[i])
        assert (r["exact"], r["top1"], r["ref_top1"]) == ("true", str(want), str(want))


def test_onnx_float_model_is_quantized_first(tmp_path, capsys):
    """The digits CNN (float ONNX) on 12 labelled test digits: calibrated on the first 8
    samples (quantize: samples 8, method minmax), as hwsim.quant.quantize does by hand."""
    pytest.importorskip("onnx")
    pytest.importorskip("sklearn", reason="the digits dataset comes from scikit-learn")
    import hwsim
    from hwsim.quant.quantize import quantize
    from conftest import load_digits
    root = Path(__file__).resolve().parent.parent / "examples" / "digits"
    _, _, xte, yte = load_digits()
    x, y = xte[:12], yte[:12]
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"models: [{root / 'digits_cnn.onnx'}]\nconfigs: [tflite-int8]\n"
                    "inputs: {dataset: digits.npz}\nquantize: {samples: 8}\n")
    code, _, err = sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "1")
    assert code == 0, err
    rows = read_rows(tmp_path / "out")
    q = quantize(hwsim.load_graph(root / "digits_cnn.onnx"), x[:8], method="minmax")
    (tmp_path / "q.tflite").write_bytes(q.tflite_bytes())
    net = hwsim.load(tmp_path / "q.tflite")
    for r in rows:
        i = int(r["input"])
        want = int(np.argmax(net.run(q.quantize_input(x[i:i + 1], 0)).outputs[0]) == y[i])
        assert not r["error"] and r["ref_top1"] == str(want)
    assert sum(int(r["ref_top1"]) for r in rows) >= 10  # the digits CNN is ~97 % accurate


# -- bad input: one line, exit 2, nothing written -------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("models: [m0.tflite]\ninputs: {random: 1}\nextra: 1\n", "extra: unknown key"),
    ("models: [m0.tflite, nope.tflite]\ninputs: {random: 1}\n", "models[1]: "),
    ("models: [m0.pb]\ninputs: {random: 1}\n", "expected a .tflite or .onnx model"),
    ("models: [m0.tflite]\nconfigs: [no-such-preset]\ninputs: {random: 1}\n",
     "configs[0]: 'no-such-preset': neither a YAML file"),
    ("models: [m0.tflite]\ngrid: {acumulator.bits: [16]}\ninputs: {random: 1}\n",
     "grid.acumulator.bits: not a config key"),
    ("models: [m0.tflite]\ngrid: {accumulator.bits: [16, 16]}\ninputs: {random: 1}\n",
     "listed twice"),
    ("models: [m0.tflite]\ninputs: {random: 0}\n", "inputs.random: 0 is not a count"),
    ("models: [m0.tflite]\ninputs: {random: 1, dataset: d.npz}\n", "give exactly one"),
    ("models: [m0.tflite]\ninputs: {dataset: sweep.yaml}\n", "not a .npz file"),
    ("models: [m0.tflite]\ninputs: {random: 1}\nquantize: {method: best}\n",
     "quantize.method: 'best' is not allowed"),
    ("models: [m0.tflite]\ninputs: {random: 1000000}\ngrid: {array.rows: [1, 2]}\n",
     "at most 1,000,000"),
    ("models: &a [m0.tflite]\ninputs: {random: 1}\nconfigs: *a\n", "aliases"),
    ("- just a list\n", "expected a mapping"),
])
def test_spec_errors(tmp_path, capsys, text, message):
    spec = write_spec(tmp_path, text=text)
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "1")
    assert code == 2 and out == ""
    assert err.startswith("hwsim: error: ") and len(err.strip().splitlines()) == 1
    assert message in err and str(spec) in err
    assert not (tmp_path / "out").exists()


def test_out_folder_that_is_not_a_sweep_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, n_inputs=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--workers", "1")
    assert code == 2 and "is not an hwsim sweep output" in err
    assert os.listdir(tmp_path / "out") == ["notes.txt"]
    # a sweep folder with a foreign file in it is refused too, and left alone
    assert sweep(capsys, spec, "--out", tmp_path / "out2", "--workers", "1")[0] == 0
    (tmp_path / "out2" / "notes.txt").write_text("mine")
    code, _, err = sweep(capsys, spec, "--out", tmp_path / "out2", "--workers", "1")
    assert code == 2 and "holds files that are not part of" in err and "notes.txt" in err


def test_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    import hwsim.sweep.run
    monkeypatch.setattr(hwsim.sweep.run, "CONNECT_TIMEOUT", "2s")
    spec = write_spec(tmp_path, n_inputs=1)
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--scheduler",
                           f"tcp://127.0.0.1:{port}")
    assert code == 2 and err.startswith("hwsim: error: --scheduler tcp://127.0.0.1:")
    assert len(err.strip().splitlines()) == 1
    code, out, err = sweep(capsys, spec, "--out", tmp_path / "out", "--scheduler", "foo://x")
    assert code == 2 and "unknown address scheme 'foo'" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written before the cluster answered


def test_help_has_a_worked_example(capsys):
    assert main(["sweep", "--help"]) == 0
    text = capsys.readouterr().out
    assert "hwsim sweep build/sweep/sweep.yaml --out build/sweep/out --workers 2" in text
    assert "--scheduler" in text and "docs/sweep.md" in text


def test_progress_bar_on_a_terminal(tmp_path):
    """On a terminal (a pty here) stderr shows a tqdm bar counting jobs; piped, it does not."""
    import fcntl
    import pty
    import struct
    import termios
    spec = write_spec(tmp_path, n_inputs=1)
    args = [sys.executable, "-m", "hwsim", "sweep", str(spec), "--workers", "1", "--out"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a 100-column terminal
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        os.execv(sys.executable, args + [str(tmp_path / "tty")])
    out = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    text = out.decode(errors="replace")
    assert f"/{JOBS // 2} [" in text and "job/s" in text
    piped = subprocess.run(args + [str(tmp_path / "piped")], capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == ""
