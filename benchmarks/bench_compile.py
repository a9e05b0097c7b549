"""What a cold start compiles: `hwsim run` of a model in this process with an empty Numba cache,
every compilation of a Numba function timed (the time includes the functions it compiles in
turn), and any hwsim function compiled more than once (a duplicate specialization) named with
the argument types that differ.

    python benchmarks/bench_compile.py [model.tflite [input.npy]]   # default: person_detect

A Numba cache directory is made for the run and removed after it (NUMBA_CACHE_DIR is set
before Numba is imported). Times are CPU seconds of this process (time.process_time): on a
shared machine they vary less than wall time, but still with the load; compare two trees by
running them at the same time.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("HWSIM_CORPUS", ROOT.parent / "shared" / "corpus"))
PERSON = CORPUS / "real" / "person_detect"


def main() -> int:
    model = sys.argv[1] if len(sys.argv) > 1 else str(PERSON / "model.tflite")
    inp = sys.argv[2] if len(sys.argv) > 2 else str(PERSON / "input_0.npy")
    cache = tempfile.mkdtemp(prefix="hwsim-numba-")
    os.environ["NUMBA_CACHE_DIR"] = cache
    try:
        return _run(model, inp)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run(model: str, inp: str) -> int:
    from numba.core import event

    rows = []   # (start order, seconds, depth, name, args)
    stack = []
    started = [0]

    class Timer(event.Listener):
        def on_start(self, ev):
            started[0] += 1
            stack.append((started[0], time.process_time()))

        def on_end(self, ev):
            seq, t0 = stack.pop()
            d = ev.data
            f = getattr(d["dispatcher"], "py_func", None)
            name = f"{f.__module__}.{f.__qualname__}" if f is not None else str(d["dispatcher"])
            rows.append((seq, time.process_time() - t0, len(stack), name, d["args"]))

    event.register("numba:compile", Timer())
    t0 = time.process_time()
    from hwsim.cli import main as hwsim_main
    rc = hwsim_main(["run", model, "--input", inp, "-q"])
    total = time.process_time() - t0
    rows.sort()
    ours = [r for r in rows if r[3].startswith("hwsim.")]
    print(f"\n{model}: {total:.2f} s CPU in all, {sum(r[1] for r in rows if r[2] == 0):.2f} s "
          f"compiling; {len(ours)} compilations of hwsim functions, {len(rows)} in all")
    print(f"  {'s':>6s}  function (indented: compiled inside the one above)")
    for _, secs, depth, name, _ in ours:
        print(f"  {secs:6.2f}  {'  ' * depth}{name}")
    seen = defaultdict(list)
    for _, _, _, name, args in ours:
        seen[name].append(args)
    dups = {n: a for n, a in seen.items() if len(a) > 1}
    for name, sigs in dups.items():
        diff = [(i, str(x), str(y)) for i, (x, y) in enumerate(zip(sigs[0], sigs[1])) if x != y]
        print(f"  compiled {len(sigs)} times: {name}; arguments that differ: {diff}")
    if not dups:
        print("  no hwsim function compiled twice")
    return rc


if __name__ == "__main__":
    sys.exit(main())
