"""Requantization (tflite_double, TFLite's double rounding) per accumulator: the vector loop vs the
scalar loop, on mobilenet_v2-sized accumulator arrays. Both are checked equal first.

    python benchmarks/bench_requant.py [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    from hwsim.kernels import requant as R
    from hwsim.params import RequantParams
    from hwsim.vocab import RequantScheme
    rng = np.random.default_rng(0)
    print(f"threads: {numba.get_num_threads()}; ns per accumulator (best of {a.repeats})")
    print(f"{'shape':>14} {'vector':>8} {'scalar':>8} {'ratio':>6}")
    for shape in [(12544, 96), (3136, 144), (784, 192), (196, 576)]:
        acc = rng.integers(-200000, 200000, size=shape, dtype=np.int32)
        c = shape[1]
        p = RequantParams(multiplier=rng.integers(1 << 30, (1 << 31) - 1, size=c),
                          shift=rng.integers(-10, -5, size=c),
                          scheme=RequantScheme.tflite_double, out_zp=-3, act_min=-128,
                          act_max=127)
        split = R.split_shifts(p, c)  # as the MAC kernels' prepare step makes it
        res = {}
        outs = []
        for vec in (True, False):
            R.VECTOR_REQUANT = vec
            outs.append(R.requantize(acc, p, np.int8, split))
            best = 1e9
            for _ in range(a.repeats):
                t = time.perf_counter()
                R.requantize(acc, p, np.int8, split)
                best = min(best, time.perf_counter() - t)
            res[vec] = best / acc.size * 1e9
        assert np.array_equal(outs[0], outs[1]), "vector and scalar requantization differ"
        print(f"{str(shape):>14} {res[True]:8.3f} {res[False]:8.3f} {res[False] / res[True]:5.1f}x")


if __name__ == "__main__":
    main()
