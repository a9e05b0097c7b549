"""MAC layers per kernel path: every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer of a
corpus model run on each path this CPU offers, interleaved in one process (so a shared
machine's load falls on every path alike), outputs checked equal across paths.

    python benchmarks/bench_paths.py [--model mobilenet] [--runs 21] [--threads 2] [--layers]
                                     [--ops DEPTHWISE_CONV_2D] [--cpu] [--folded]

Paths: vnni512 / vnni256 / avx2 for CONV_2D and FC (hwsim.kernels.mac.mac_path; switched
in-process with mac.USE_VNNI / USE_VNNI512); for DEPTHWISE_CONV_2D on AVX512-VNNI the 3x3
vpdpbusd kernel ("dwq": the layers mac.dwq_takes admits, the others as "dw3"), on AVX-512 the
3x3 vpmaddwd kernel ("dw3"), the 32-channel band kernel ("dw32") and the 16-channel one
("dw16"; mac.USE_DWQ / USE_DW3 / USE_DW512); for every op the fused requantization (the engine's
untraced runs) against accumulators + the separate requantize ("unfused", traced runs).
Each path gets its own prepared data (a layer's call plan keeps the kernel it chose first).
The portable path needs its own process: HWSIM_PORTABLE_MAC=1 with its own NUMBA_CACHE_DIR.
Prints per-op totals (median per layer, summed) and with --layers each layer; --cpu times the
calling thread's CPU (time.thread_time: what a loaded machine's waiting does not inflate; one
thread only); --folded runs the layers the engine's untraced runs have (PAD folded into the
convolutions' padding) instead of the model's own.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import MODELS, cpu_name, load_average  # noqa: E402

# mac flags a path sets: (USE_VNNI, USE_VNNI512, USE_DW512, USE_DW3, USE_DWQ)
FLAGS = ("USE_VNNI", "USE_VNNI512", "USE_DW512", "USE_DW3", "USE_DWQ")


def path_modes(mac, mac_intrinsics):
    """{op: {path name: (flags, fused)}} for the paths this CPU offers."""
    dflt = tuple(getattr(mac, f) for f in FLAGS)
    conv = {}
    if mac_intrinsics.HOST_HAS_VNNI512:
        conv["vnni512"] = ((True, True) + dflt[2:], True)
    if mac_intrinsics.HOST_HAS_VNNI:
        conv["vnni256"] = ((True, False) + dflt[2:], True)
    conv["avx2" if mac_intrinsics._HAVE_AVX2 else "portable"] = ((False, False) + dflt[2:], True)
    conv["unfused"] = (dflt, False)
    dw = {}
    if mac_intrinsics.HOST_HAS_AVX512BW and dflt[2]:
        if mac_intrinsics.HOST_HAS_VNNI512:
            dw["dwq"] = (dflt[:2] + (True, True, True), True)
        dw["dw3"] = (dflt[:2] + (True, True, False), True)
        dw["dw32"] = (dflt[:2] + (True, False, False), True)
    dw["dw16"] = (dflt[:2] + (False, False, False), True)
    dw["unfused"] = (dflt, False)
    return {"CONV_2D": conv, "FULLY_CONNECTED": conv, "DEPTHWISE_CONV_2D": dw}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet", choices=sorted(MODELS))
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", action="store_true")
    ap.add_argument("--ops", default="CONV_2D,DEPTHWISE_CONV_2D,FULLY_CONNECTED")
    ap.add_argument("--cpu", action="store_true", help="time the thread's CPU (forces 1 thread)")
    ap.add_argument("--folded", action="store_true", help="the engine's layers (PAD folded)")
    a = ap.parse_args()
    import numba

    import hwsim
    from hwsim.kernels import mac, mac_intrinsics
    from hwsim.registry import KERNELS
    threads = 1 if a.cpu else a.threads
    clock = time.thread_time if a.cpu else time.perf_counter
    folder = MODELS[a.model]
    net = hwsim.load(folder / "model.tflite")
    x0 = np.load(folder / "input_0.npy")
    trace = net.run(x0, trace=True).trace
    layers = net.program.layers
    if a.folded:
        from hwsim.passes import ENGINE_PASSES, run_passes
        layers = run_passes(ENGINE_PASSES, net.program).layers
    # the engine adapts the thread count to the load (kernels/threads.py); the kernels called
    # directly below do not, so the count asked for holds
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    ops = a.ops.split(",")
    modes = path_modes(mac, mac_intrinsics)
    names = list(dict.fromkeys(n for op in ops for n in modes[op]))
    print(f"{a.model}: CPU {cpu_name()}, {numba.get_num_threads()} thread(s), load average "
          f"{load_average()}; default paths {mac.mac_path()} / depthwise {mac.dw_path()}; "
          f"{a.runs} runs per layer and path, {'thread CPU time' if a.cpu else 'wall time'}"
          f"{', PAD folded' if a.folded else ''}")
    print("'unfused' = the default path's accumulators + requantize (what traced runs do)")
    default = tuple(getattr(mac, f) for f in FLAGS)
    totals = defaultdict(lambda: defaultdict(float))
    macs = defaultdict(int)
    try:
        for k, layer in enumerate(layers):
            if layer.op not in ops:
                continue
            kern = KERNELS[layer.kernel]
            ins = [trace.tensors[i] for i in layer.inputs]
            ts, outs, datas = defaultdict(list), {}, {}
            for name, (flags, _) in modes[layer.op].items():
                for f, v in zip(FLAGS, flags):
                    setattr(mac, f, v)
                datas[name] = kern.prepare(layer)  # made under this path's flags
            for _ in range(a.runs):
                for name, (flags, fused) in modes[layer.op].items():
                    for f, v in zip(FLAGS, flags):
                        setattr(mac, f, v)
                    d = datas[name]
                    t0 = clock()
                    o = kern.run.outputs_only(layer, ins, d) if fused else kern(layer, ins, d)[0]
                    ts[name].append(clock() - t0)
                    outs[name] = o[0]
            first = next(iter(outs.values()))
            if not all(np.array_equal(first, o) and o.dtype == first.dtype for o in outs.values()):
                sys.exit(f"layer {k} ({layer.op}): the paths differ - not timing a wrong result")
            macs[layer.op] += layer.macs
            cells = []
            for name in modes[layer.op]:
                t = statistics.median(ts[name])
                totals[layer.op][name] += t
                cells.append(f"{name} {t * 1e6:7.1f} us {layer.macs / t / 1e9:6.1f}")
            if a.layers:
                shape = tuple(ins[0].shape) + ("->",) + tuple(net.program.tensors[layer.outputs[0]].shape)[1:]
                print(f"  {k:3d} {layer.op[:9]:9s} {str(shape):30s} " + "  ".join(cells))
    finally:
        for f, v in zip(FLAGS, default):
            setattr(mac, f, v)
    print(f"  {'op':20s} " + " ".join(f"{n:>18s}" for n in names) + "   (ms, GMAC/s)")
    for op, row in totals.items():
        print(f"  {op:20s} " + " ".join(f"{row[n] * 1e3:8.3f} {macs[op] / row[n] / 1e9:8.1f}"
                                        if n in row else f"{'-':>17s}" for n in names))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
