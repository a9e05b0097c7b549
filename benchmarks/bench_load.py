"""mobilenet_v2 under load: quiet vs loaded wall time for each threading option.

    python benchmarks/bench_load.py [--busy 2] [--runs 40] [--rounds 3] [--options a,b,...]
                                    [--rt-quiet]

For each option a fresh subprocess (the option's environment set before it starts) loads
mobilenet_v2, warms up, then times ``--runs`` runs (median wall ms, and the process's CPU ms
per run, all threads). Each option is measured quiet, then "loaded": with ``--busy`` spinning
Python processes (``while True: pass``) started by this script and killed by pid afterwards.
The "hwsim" row is hwsim as a user gets it (thread count adapted to the load, see
hwsim/kernels/threads.py); the other rows fix the count (adaptation off) and set only their
own variables. Options are interleaved over ``--rounds`` rounds; the table gives the median
over rounds and the range. The load average and the mean number of other runnable threads
are printed with every measurement: on a shared machine "quiet" is only as quiet as the other
users let it be.
The "calm runs" column is the median over the quiet runs during which no other thread was
runnable (sampled before and after each run). When other users keep the machine busy there
are none; ``--rt-quiet`` (root) then runs the quiet measurements at real-time priority, so the
others' jobs wait while they run. Figures and the choice of hwsim's default: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("HWSIM_CORPUS", ROOT.parent / "shared" / "corpus"))
MODEL = CORPUS / "real" / "mobilenet_v2_pytorch_1x3x224x224"

# Variables the options set; cleared from the child's environment so each row is only itself.
THREAD_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "NUMBA_THREADING_LAYER",
               "NUMBA_NUM_THREADS")

# name -> (environment, child mode). Mode "plain" is hwsim as a user gets it (with the option's
# variables). Mode "raw" turns hwsim's thread-count adaptation off (a fixed count, as with
# NUMBA_NUM_THREADS) and undoes whatever `import hwsim` put into the environment before the
# threading layer loads (libgomp reads it when Numba first starts its threads), so the row
# shows Numba's/libgomp's own behaviour with only the option's variables.
OPTIONS = {
    "hwsim": ({}, "plain"),
    "hwsim+passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, "plain"),
    "spin": ({}, "raw"),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, "raw"),
    "spin1k": ({"GOMP_SPINCOUNT": "1000"}, "raw"),
    "spin3k": ({"GOMP_SPINCOUNT": "3000"}, "raw"),
    "spin10k": ({"GOMP_SPINCOUNT": "10000"}, "raw"),
    "spin30k": ({"GOMP_SPINCOUNT": "30000"}, "raw"),
    "spin100k": ({"GOMP_SPINCOUNT": "100000"}, "raw"),
    "kmp0": ({"KMP_BLOCKTIME": "0"}, "raw"),
    "workqueue": ({"NUMBA_THREADING_LAYER": "workqueue"}, "raw"),
    "tbb": ({"NUMBA_THREADING_LAYER": "tbb"}, "raw"),
    "1thread": ({"NUMBA_NUM_THREADS": "1"}, "raw"),
}
DEFAULT_OPTIONS = "hwsim,spin,passive,spin1k,spin10k,1thread,workqueue,tbb"
LABELS = {
    "hwsim": "hwsim's default (adaptive count, spin)",
    "hwsim+passive": "adaptive count + PASSIVE",
    "spin": "libgomp's default (spin ~300k)",
    "passive": "OMP_WAIT_POLICY=PASSIVE",
    "spin1k": "GOMP_SPINCOUNT=1000",
    "spin3k": "GOMP_SPINCOUNT=3000",
    "spin10k": "GOMP_SPINCOUNT=10000",
    "spin30k": "GOMP_SPINCOUNT=30000",
    "spin100k": "GOMP_SPINCOUNT=100000",
    "kmp0": "KMP_BLOCKTIME=0",
    "workqueue": "NUMBA_THREADING_LAYER=workqueue",
    "tbb": "NUMBA_THREADING_LAYER=tbb",
    "1thread": "NUMBA_NUM_THREADS=1",
}


def tbb_available() -> bool:
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401
    except ImportError:
        return False
    return True


def child(mode: str, runs: int, rt: bool) -> None:
    if rt:  # SCHED_FIFO, inherited by Numba's threads when they start: other jobs wait
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    import numpy as np

    import hwsim
    from hwsim.kernels import threads
    from hwsim.kernels.threads import others_runnable
    if mode == "raw":
        threads.USER_FIXED = True
        for k in THREAD_VARS:
            if k not in json.loads(os.environ.get("BENCH_LOAD_SET", "[]")):
                os.environ.pop(k, None)
    import numba
    net = hwsim.load(MODEL / "model.tflite")
    x = np.load(MODEL / "input_0.npy")

    def run():
        return net.run(x).outputs[0]

    for _ in range(3):
        y = run()
    wall, cpu, used, others, calm = [], [], [], [], []
    for _ in range(runs):
        before = others_runnable() or 0
        c0, t0 = time.process_time(), time.perf_counter()
        run()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        used.append(numba.get_num_threads())
        others.append(max(before, others_runnable() or 0))
        if others[-1] == 0:  # no other thread runnable before or after this run
            calm.append(wall[-1])
    print(json.dumps({
        "ms": statistics.median(wall) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3,
        "calm_ms": statistics.median(calm) * 1e3 if calm else None, "calm_runs": len(calm),
        "layer": numba.threading_layer(), "threads": statistics.mean(used),
        "others": statistics.mean(others),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "out": int(np.asarray(y, dtype=np.int64).sum()),
    }))


def measure(name: str, runs: int, rt: bool = False) -> dict:
    env_set, mode = OPTIONS[name]
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(env_set, BENCH_LOAD_SET=json.dumps(sorted(env_set)))
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--child", mode, "--runs", str(runs)] + ["--rt"] * rt
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{name}: child failed:\n{p.stderr}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["load"] = load
    return r


def cpu_model() -> str:
    name, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name == "?":
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{name}, {len(os.sched_getaffinity(0))} CPUs, {' '.join(simd)}"


def fmt(vals: list[float]) -> str:
    m = statistics.median(vals)
    if len(vals) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ({min(vals):.1f}–{max(vals):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=2, help="busy processes for the loaded case")
    ap.add_argument("--runs", type=int, default=40, help="timed runs per subprocess")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--options", default=DEFAULT_OPTIONS, help=f"of {','.join(OPTIONS)}")
    ap.add_argument("--rt-quiet", action="store_true",
                    help="run the quiet measurements at real-time priority (SCHED_FIFO, root): "
                         "on a machine other users keep busy, the nearest to a quiet one")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rt", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.runs, a.rt)
    if not MODEL.exists():
        sys.exit(f"mobilenet_v2 not found at {MODEL} (set HWSIM_CORPUS)")
    # A kill (SIGTERM) unwinds through the finally below, which stops the busy processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench_load: terminated"))
    names = [n for n in a.options.split(",") if n]
    unknown = set(names) - set(OPTIONS)
    if unknown:
        sys.exit(f"unknown option(s) {sorted(unknown)}; choose from {','.join(OPTIONS)}")
    if "tbb" in names and not tbb_available():
        print("(tbb is not installed: skipping NUMBA_THREADING_LAYER=tbb)")
        names.remove("tbb")
    print(f"CPU: {cpu_model()}; load average at start "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    res: dict[tuple[str, str], list[dict]] = {}
    outs = set()
    for rnd in range(a.rounds):
        for cond in ("quiet", "loaded"):
            busy = []
            try:
                if cond == "loaded":
                    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                            for _ in range(a.busy)]
                    time.sleep(1.0)
                for name in names:
                    r = measure(name, a.runs, a.rt_quiet and cond == "quiet")
                    outs.add(r["out"])
                    res.setdefault((name, cond), []).append(r)
                    print(f"  round {rnd + 1} {cond:6s} {LABELS[name]:34s} {r['ms']:7.1f} ms "
                          f"cpu {r['cpu_ms']:7.1f} ms  layer {r['layer']} threads "
                          f"{r['threads']:.2f} load {r['load']:.2f} others {r['others']:.1f} "
                          f"calm {r['calm_runs']}", flush=True)
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    if len(outs) != 1:
        sys.exit(f"outputs differ between options: {outs}")
    print(f"\nmobilenet_v2, median wall ms per run (median of {a.rounds} rounds of {a.runs} "
          f"runs; range), loaded = {a.busy} busy processes"
          f"{'; quiet rows at SCHED_FIFO' if a.rt_quiet else ''}; CPU: {cpu_model()}")
    print("| option | quiet ms | quiet ms, calm runs only (runs) | loaded ms | loaded / quiet "
          "| CPU ms per run quiet / loaded | other runnable threads quiet / loaded |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        rq, rl = res[(name, "quiet")], res[(name, "loaded")]
        q, lo = [r["ms"] for r in rq], [r["ms"] for r in rl]
        calm = [r["calm_ms"] for r in rq if r["calm_runs"] >= 5]
        n_calm = sum(r["calm_runs"] for r in rq if r["calm_runs"] >= 5)
        print(f"| {LABELS[name]} | {fmt(q)} | {fmt(calm) if calm else '-'} ({n_calm}) "
              f"| {fmt(lo)} | {statistics.median(lo) / statistics.median(q):.1f}× "
              f"| {statistics.median(r['cpu_ms'] for r in rq):.1f} / "
              f"{statistics.median(r['cpu_ms'] for r in rl):.1f} "
              f"| {statistics.mean(r['others'] for r in rq):.1f} / "
              f"{statistics.mean(r['others'] for r in rl):.1f} |")
    loads = [r["load"] for rs in res.values() for r in rs]
    print(f"load average (1 min) during the runs: {min(loads):.2f}–{max(loads):.2f}")


if __name__ == "__main__":
    main()
