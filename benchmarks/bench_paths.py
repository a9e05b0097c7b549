"""MAC layers per kernel path: every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer of a
corpus model run on each path this CPU offers, interleaved in one process (so a shared
machine's load falls on every path alike), outputs checked equal across paths.

    python benchmarks/bench_paths.py [--model mobilenet] [--runs 21] [--threads 2] [--layers]

Paths: vnni512 / vnni256 / avx2 for CONV_2D and FC (hwsim.kernels.mac.mac_path; switched
in-process with mac.USE_VNNI / USE_VNNI512), and for every op the fused requantization
(the engine's untraced runs) against accumulators + the separate requantize (traced runs).
The portable path needs its own process: HWSIM_PORTABLE_MAC=1 with its own NUMBA_CACHE_DIR.
Prints per-op totals (median per layer, summed) and with --layers each layer.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet", choices=sorted(MODELS))
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", action="store_true")
    a = ap.parse_args()
    import numba

    import hwsim
    from hwsim.kernels import mac, mac_intrinsics
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    folder = MODELS[a.model]
    net = hwsim.load(folder / "model.tflite")
    trace = net.run(np.load(folder / "input_0.npy"), trace=True).trace
    # the engine adapts the thread count to the load (kernels/threads.py); the kernels called
    # directly below do not, so the count asked for holds
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    modes = {}
    if mac_intrinsics.HOST_HAS_VNNI512:
        modes["vnni512"] = (True, True, True)
    if mac_intrinsics.HOST_HAS_VNNI:
        modes["vnni256"] = (True, False, True)
    modes[mac.dw_path()] = (False, False, True)
    modes["unfused"] = (mac.USE_VNNI, mac.USE_VNNI512, False)
    print(f"{a.model}: CPU {cpu_name()}, {numba.get_num_threads()} thread(s), load average "
          f"{load_average()}; default path {mac.mac_path()}; {a.runs} runs per layer and path")
    print(f"'unfused' = the default path's accumulators + requantize (what traced runs do)")
    totals = defaultdict(lambda: defaultdict(float))
    macs = defaultdict(int)
    for k, layer in enumerate(net.program.layers):
        if layer.op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        kern = __import__("hwsim.registry", fromlist=["KERNELS"]).KERNELS[layer.kernel]
        data = net.prepared(layer)
        ins = [trace.tensors[i] for i in layer.inputs]
        ts, outs = defaultdict(list), {}
        for _ in range(a.runs):
            for name, (vnni, v512, fused) in modes.items():
                mac.USE_VNNI, mac.USE_VNNI512 = vnni, v512
                t0 = time.perf_counter()
                o = kern.run.outputs_only(layer, ins, data) if fused else kern(layer, ins, data)[0]
                ts[name].append(time.perf_counter() - t0)
                outs[name] = o[0]
        first = next(iter(outs.values()))
        if not all(np.array_equal(first, o) and o.dtype == first.dtype for o in outs.values()):
            sys.exit(f"layer {k} ({layer.op}): the paths differ - not timing a wrong result")
        macs[layer.op] += layer.macs
        cells = []
        for name in modes:
            t = statistics.median(ts[name])
            totals[layer.op][name] += t
            cells.append(f"{name} {t * 1e6:7.1f} us {layer.macs / t / 1e9:6.1f}")
        if a.layers:
            shape = tuple(net.program.tensors[layer.outputs[0]].shape)
            print(f"  {k:3d} {layer.op[:9]:9s} {str(shape):18s} " + "  ".join(cells))
    print(f"  {'op':20s} " + " ".join(f"{n:>18s}" for n in modes) + "   (ms, GMAC/s)")
    for op, row in totals.items():
        print(f"  {op:20s} " + " ".join(f"{row[n] * 1e3:8.2f} {macs[op] / row[n] / 1e9:8.1f}"
                                        for n in modes))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
