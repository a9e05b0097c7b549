"""Two settings of one kernel-choice constant, measured in one process.

    python benchmarks/bench_ab.py DWQ_PAIRS False True
    python benchmarks/bench_ab.py DWQ_BLOCK_COST "(1.6, 1.8)" "(1.3, 1.45)" --layers
    python benchmarks/bench_ab.py DW3_BAND_BYTES 524288 131072 --module depthwise_zmm --threads 1

The model is loaded twice. Each net is bound (its first run builds its call plan) with one
value of ``hwsim.kernels.<module>.<NAME>``. Both nets are then profiled in turn, the order
alternating, ``--rounds`` times. The script prints per-op medians summed, and with
``--layers`` every layer whose ratio passes ``--show``.

Why one process: on a shared VM the speed drifts between processes by 10-30 % within the
hour. Two processes of the same code also differ by up to 5 % on identical layers, from where
the compiled code lands in memory. Here both nets share every kernel that the setting does not
change, and they run in the same minutes.

The two nets must give equal outputs (different kernels, the same integers); the script stops
otherwise.

Only constants read when a call plan is bound are separated this way: the kernel choice, the
thread split, the prepared weights. A constant read at call time is the second value for both
nets. Changes to compiled code need two copies of the package: see docs/performance.md,
"Sessions 11 and 12".
"""
from __future__ import annotations

import argparse
import ast
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import MODELS, cpu_name, load_average  # noqa: E402


def _fail(msg: str):
    print(f"bench_ab: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _parse(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        _fail(f"{text!r} is not a Python literal (True, 3, (1.3, 1.45), ...)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="examples:\n" + __doc__.split("\n\n")[1])
    ap.add_argument("name", help="the constant, e.g. DWQ_PAIRS")
    ap.add_argument("a", help="first value (a Python literal)")
    ap.add_argument("b", help="second value")
    ap.add_argument("--module", default="mac", help="module of hwsim.kernels holding it (default mac)")
    ap.add_argument("--models", default="mobilenet", help=f"one of {', '.join(MODELS)} (default mobilenet)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=31, help="profiles of each net (default 31)")
    ap.add_argument("--layers", action="store_true", help="print the layers that changed")
    ap.add_argument("--show", type=float, default=0.03, help="with --layers: |ratio - 1| to print (0.03)")
    args = ap.parse_args(argv)

    folder = MODELS.get(args.models)
    if folder is None:
        _fail(f"no model {args.models!r}: choose one of {', '.join(MODELS)}")
    model = folder / "model.tflite"
    if not model.exists():
        _fail(f"{model} not found (the corpus is ../shared/corpus or $HWSIM_CORPUS)")
    import numba

    import hwsim
    try:
        mod = importlib.import_module(f"hwsim.kernels.{args.module}")
    except ImportError:
        _fail(f"no module hwsim.kernels.{args.module}")
    if not hasattr(mod, args.name):
        _fail(f"hwsim.kernels.{args.module} has no {args.name}")
    values = (_parse(args.a), _parse(args.b))
    numba.set_num_threads(args.threads)

    old = getattr(mod, args.name)
    nets, x = [], None
    try:
        for v in values:
            setattr(mod, args.name, v)
            net = hwsim.load(str(model))
            if x is None:
                inp = net.program.tensors[net.program.inputs[0]]
                x = np.random.default_rng(0).integers(-128, 128, size=inp.shape).astype(inp.dtype)
            net.run([x])  # binds the call plan with this value
            nets.append(net)
    finally:
        setattr(mod, args.name, old)
    outs = [net.run([x]).outputs for net in nets]
    if not all(np.array_equal(p, q) for p, q in zip(*outs)):
        _fail("the two settings give different outputs")

    print(f"{args.module}.{args.name} = {args.a} | {args.b}; {model.parent.name}; {args.threads} thread(s); "
          f"{args.rounds} interleaved profiles; CPU {cpu_name()}; load average {load_average()}")
    times = [{}, {}]
    wall = [[], []]
    for r in range(args.rounds):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            for k, (layer, dt) in enumerate(nets[i].profile([x])):
                times[i].setdefault(k, (layer, []))[1].append(dt)
            t0 = time.perf_counter()
            nets[i].run([x])
            wall[i].append(time.perf_counter() - t0)
    per_op: dict[str, list[float]] = {}
    rows = []
    for k, (layer, _) in times[0].items():
        m = [statistics.median(times[i][k][1]) for i in (0, 1)]
        acc = per_op.setdefault(layer.op, [0.0, 0.0])
        acc[0] += m[0]
        acc[1] += m[1]
        if m[0] > 0 and abs(m[1] / m[0] - 1) >= args.show:
            rows.append((k, layer.op, m))
    print(f"  {'op':22s} {args.a:>12s} {args.b:>12s}   ratio")
    for op, (p, q) in sorted(per_op.items(), key=lambda kv: -kv[1][0]):
        print(f"  {op:22s} {p * 1e6:9.1f} us {q * 1e6:9.1f} us   {q / p if p else float('nan'):.3f}")
    p, q = statistics.median(wall[0]), statistics.median(wall[1])
    print(f"  {'run() wall':22s} {p * 1e6:9.1f} us {q * 1e6:9.1f} us   {q / p:.3f}")
    if args.layers:
        print(f"  layers whose ratio is off 1 by {args.show} or more:")
        for k, op, m in rows:
            print(f"  {k:4d} {op:22s} {m[0] * 1e6:9.1f} us {m[1] * 1e6:9.1f} us   {m[1] / m[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
