"""``hwsim sweep SPEC.yaml --out DIR [--workers N | --scheduler ADDRESS]``."""
from __future__ import annotations

import argparse
import os
import sys

from ..ir import InputError

SWEEP_EPILOG = """\
example (the bundled example network, 2 base configs x 3 accumulator widths x 4 inputs):
  hwsim example --out build/sweep
  cat > build/sweep/sweep.yaml <<'EOF'
  models: [example_cnn.tflite]          # relative to this file; .onnx: quantized first
  configs: [tflite-int8, narrow-acc-24] # preset names or YAML paths
  grid:                                 # overrides on every config (cartesian product)
    accumulator.bits: [16, 24, 32]
  inputs:
    random: 4                           # seeded random inputs 0..3 (or dataset: data.npz)
  EOF
  hwsim sweep build/sweep/sweep.yaml --out build/sweep/out --workers 2
  hwsim sweep build/sweep/sweep.yaml --out build/sweep/out    # again: nothing left to run

  dask scheduler --port 8786 &                      # a cluster by hand (docs/sweep.md)
  NUMBA_NUM_THREADS=1 dask worker tcp://127.0.0.1:8786 --nthreads 1 &
  hwsim sweep build/sweep/sweep.yaml --out build/sweep/out2 --scheduler tcp://127.0.0.1:8786

Writes DIR/results.csv (one row per model x config x input, appended as each job finishes:
model, config, input, acc_bits, exact, mismatches, max_abs_diff, cycles, min_acc_bits, top1,
ref_top1, error, worker, seconds), DIR/summary.csv (per model x config) and DIR/report.html
(plots). A rerun with the same --out skips the rows already there; a model or config that
fails gives error rows and the sweep goes on. Exit status 1 when jobs were lost on the cluster
(rerun to retry them). Spec keys, columns and clusters: docs/sweep.md.
"""


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.yaml", help="the sweep spec (models, configs, grid, "
                                                     "inputs)")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="output folder: new, empty, or an earlier sweep's (resumed)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", "-j", type=int, metavar="N",
                       help=f"worker processes of a local Dask cluster; 1 runs serially in "
                            f"this process (default: the CPUs available, "
                            f"{_default_workers()} here)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running Dask cluster (tcp://host:8786) instead of a local one")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")


def cmd_sweep(args) -> int:
    from .run import run_sweep
    from .spec import load_spec
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: give 1 or more")
    workers = args.workers if args.workers is not None or args.scheduler else \
        _default_workers()
    spec = load_spec(args.spec)

    def started(o):
        todo = o.total - o.skipped
        done = f" ({o.skipped} already in {args.out})" if o.skipped else ""
        print(f"sweep: {len(spec.models)} model(s) x {len(spec.variants)} config(s) x "
              f"{spec.inputs.count} input(s) = {o.total} jobs{done}; {todo} to run"
              f"{' ' + o.where if todo else ''}",
              flush=True)
        for note in o.notes:
            print(f"hwsim: note: {note}", file=sys.stderr, flush=True)

    o = run_sweep(spec, args.out, workers=workers, scheduler=args.scheduler,
                  progress=args.progress, on_start=started)
    errs = f" ({o.errors} error rows; first: {o.first_error[:200]})" if o.errors else ""
    print(f"{o.ran} rows in {o.seconds:.1f} s{errs}")
    print("wrote " + ", ".join(o.files))
    if o.lost:
        (model, config, i), msg = o.lost[0]
        print(f"hwsim: {len(o.lost)} job(s) lost on the cluster (first: {model} / {config} / "
              f"input {i}: {msg}); rerun with the same --out to run them", file=sys.stderr)
        return 1
    return 0
