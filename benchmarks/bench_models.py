"""Whole-model speed: hwsim vs TFLite's reference kernels (BUILTIN_REF) vs TFLite's default
kernels (XNNPACK), side by side in one run, on the corpus models. Ratios, not absolute times.

    python benchmarks/bench_models.py [--threads 2] [--repeats 7] [--rounds 5] [--models mobilenet,person]

Also: per-layer-type ms and GMAC/s of hwsim (``Network.profile``: the schedule ``net.run``
runs), Numba cold-compile time (empty cache, in a subprocess)
and the warm (cached) wall time of `hwsim run` on person_detect.
Exactness is checked on the way: hwsim's outputs must equal TFLite REF's (else it aborts).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("HWSIM_CORPUS", ROOT.parent / "shared" / "corpus"))
MODELS = {
    "mobilenet": CORPUS / "real" / "mobilenet_v2_pytorch_1x3x224x224",
    "person": CORPUS / "real" / "person_detect",
}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def seen_features() -> str:
    """The SIMD features LLVM (hence Numba; XNNPACK asks CPUID the same way) reports, and
    whether benchmarks/avx2_only.sh hides AVX-512 and VNNI from this process."""
    import llvmlite.binding as llvm
    have = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    names = ("avx2", "avx512f", "avx512bw", "avx512vnni", "avxvnni", "avx512vbmi")
    text = " ".join(f"{n}{'+' if n in have else '-'}" for n in names)
    mask = os.environ.get("HWSIM_CPUID_MASK")
    if mask == "avxvnni":
        text += " (AVX-512 and AMX hidden by benchmarks/avx2_only.sh; AVX-VNNI kept)"
    elif mask:
        text += " (AVX-512, VNNI and AMX hidden by benchmarks/avx2_only.sh)"
    return text


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


SETTLE_S = 0.05  # pause before each engine's batch (interleaved_medians)


def interleaved_medians(fns, repeats: int, rounds: int) -> list[float]:
    """Median times of several engines timed in alternation: ``rounds`` rounds, each running
    every engine ``repeats`` times in turn, after one warm-up call each. A shared machine's
    speed drifts by more than the differences measured (this guest: XNNPACK's mobilenet_v2
    1.0-3.7 ms between runs); alternating puts the same drift on every engine."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, samples):
            # the other engine's workers spin after its calls (OpenMP ~3 ms, pthreadpool):
            # let them go idle first, and warm this engine's own up again
            time.sleep(SETTLE_S)
            fn()
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in samples]


def tflite_interpreter(model: Path, ref: bool, threads: int):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kw = dict(model_path=str(model), num_threads=threads)
    if ref:
        kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    it = Interpreter(**kw)
    it.allocate_tensors()
    return it


def bench_model(name: str, folder: Path, threads: int, repeats: int, rounds: int) -> None:
    import hwsim
    model = folder / "model.tflite"
    ref_model = folder / "model_refcompat.tflite"
    tfl_model = ref_model if ref_model.exists() else model
    x = np.load(folder / "input_0.npy")
    net = hwsim.load(model)
    macs = net.program.macs

    def run_hwsim():
        return net.run(x)

    out_h = run_hwsim().outputs[0]
    timed = {}
    for label, ref in (("TFLite REF", True), ("TFLite XNNPACK", False)):
        it = tflite_interpreter(tfl_model, ref, threads)
        inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

        def run_tfl(it=it, inp=inp):
            it.set_tensor(inp, x)
            it.invoke()

        run_tfl()
        y = it.get_tensor(out)
        if ref and not np.array_equal(y, out_h):
            sys.exit(f"{name}: hwsim differs from TFLite REF — not benchmarking a wrong result")
        if not ref:
            diff = int((y != out_h).sum())
            print(f"  ({label} differs from REF/hwsim in {diff} of {y.size} outputs)")
        timed[label] = run_tfl
    # REF (~100x slower) on its own; hwsim and XNNPACK alternated (interleaved_medians)
    t_ref = median_time(timed["TFLite REF"], repeats)
    t_h, t_x = interleaved_medians([run_hwsim, timed["TFLite XNNPACK"]], repeats, rounds)
    rows = [("hwsim", t_h), ("TFLite REF", t_ref), ("TFLite XNNPACK", t_x)]
    print(f"\n{name}: {macs / 1e6:.1f} M MACs, {threads} thread(s), median of {repeats} (REF) and "
          f"of {rounds} alternated rounds of {repeats} (hwsim, XNNPACK), load average {load_average()}")
    print(f"  {'engine':16s} {'ms':>9s} {'GMAC/s':>8s} {'hwsim speed x':>14s}")
    t_h = rows[0][1]
    for label, t in rows:
        print(f"  {label:16s} {t * 1e3:9.2f} {macs / t / 1e9:8.2f} {t / t_h:14.2f}")

    # per layer type, hwsim: the schedule net.run(x) runs (PADs folded into their convolution,
    # the kernels bound to the call plan's buffers), each layer's median over the repeats
    per = defaultdict(lambda: [0.0, 0])
    times = defaultdict(list)
    layers = []
    for _ in range(repeats):
        prof = net.profile(x)
        layers = [layer for layer, _ in prof]
        for k, (_, dt) in enumerate(prof):
            times[k].append(dt)
    for k, layer in enumerate(layers):
        per[layer.op][0] += statistics.median(times[k])
        per[layer.op][1] += layer.macs
    folded = len(net.program.layers) - len(layers)
    print(f"  hwsim per layer type ({len(layers)} layers as run"
          + (f"; {folded} PADs folded into convolutions" if folded else "") + "):")
    print(f"  {'':21s}{'op':20s} {'ms':>8s} {'GMAC/s':>8s}")
    for op, (t, m) in sorted(per.items(), key=lambda kv: -kv[1][0]):
        g = f"{m / t / 1e9:8.2f}" if m else "       -"
        print(f"  {'':21s}{op:20s} {t * 1e3:8.2f} {g}")


def bench_startup(folder: Path) -> None:
    model, x = folder / "model.tflite", folder / "input_0.npy"
    cache = tempfile.mkdtemp(prefix="hwsim-numba-")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    cmd = [sys.executable, "-m", "hwsim", "run", str(model), "--input", str(x), "-q"]
    try:
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            warm.append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"\n`hwsim run` person_detect wall time: cold (empty Numba cache, compiles) "
          f"{cold:.2f} s, warm (cached) median {statistics.median(warm):.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5, help="alternated rounds of hwsim and XNNPACK")
    ap.add_argument("--models", default="mobilenet,person")
    ap.add_argument("--no-startup", action="store_true")
    a = ap.parse_args()
    if not CORPUS.exists():
        sys.exit(f"corpus not found at {CORPUS} (set HWSIM_CORPUS)")
    import numba
    from hwsim.kernels import mac
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    print(f"numba threads: {numba.get_num_threads()}, CPU: {cpu_name()}, {os.cpu_count()} cores, "
          f"load average {load_average()}")
    print(f"hwsim kernel path: CONV/FC {mac.mac_path()}, DEPTHWISE {mac.dw_path()} "
          "(HWSIM_NO_VNNI=1 / HWSIM_PORTABLE_MAC=1 choose the others)")
    print(f"CPU features this process sees: {seen_features()}")
    for name in a.models.split(","):
        bench_model(name, MODELS[name], a.threads, a.repeats, a.rounds)
    if not a.no_startup:
        bench_startup(MODELS["person"])


if __name__ == "__main__":
    main()
