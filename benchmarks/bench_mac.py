"""Throughput of the fast MAC kernels (hwsim.kernels.mac), in GMAC/s.

    python benchmarks/bench_mac.py                # runs itself with NUMBA_NUM_THREADS=2 and =1
    python benchmarks/bench_mac.py --threads 2    # one setting only
    python benchmarks/bench_mac.py --mobilenet    # also the MAC layers of mobilenet_v2 (224, int8)

MACs: out elements x KH x KW x Cin/groups (conv), x KH x KW (depthwise), x K (FC).
Each figure is the median of --runs timed calls after warm-up; weights are packed once
beforehand, as at model load.  The machine's load average is printed: other processes
running at the same time make the 2-thread figures meaningless.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np


def _same(size, k, s):
    out = (size + s - 1) // s
    pad = max(0, (out - 1) * s + k - size)
    return out, pad // 2


def _cases():
    # (name, kind, N, H, W, C, Cout or depth_multiplier, K, stride, same_padding)
    return [
        ("conv 3x3 56x56x64->64 s1 SAME", "conv", 1, 56, 56, 64, 64, 3, 1, True),
        ("conv 1x1 112x112x32->16", "conv", 1, 112, 112, 32, 16, 1, 1, False),
        ("conv 1x1 28x28x192->32", "conv", 1, 28, 28, 192, 32, 1, 1, False),
        ("dw 3x3 112x112x96 s2 SAME", "dw", 1, 112, 112, 96, 1, 3, 2, True),
        ("dw 3x3 56x56x144 s1 SAME", "dw", 1, 56, 56, 144, 1, 3, 1, True),
        ("dw 3x3 14x14x576 s1 SAME", "dw", 1, 14, 14, 576, 1, 3, 1, True),
        ("fc 1280->1000", "fc", 1, 1, 1, 1280, 1000, 1, 1, False),
    ]


def _mobilenet_v2_layers():
    """(kind, H, W, C, Cout|dm, K, stride) of mobilenet_v2 1.0 224's MAC layers."""
    L = [("conv", 224, 224, 3, 32, 3, 2)]
    H = 112
    cin = 32
    # (expansion t, channels c, repeats n, stride s)
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            st = s if i == 0 else 1
            hid = cin * t
            if t != 1:
                L.append(("conv", H, H, cin, hid, 1, 1))
            L.append(("dw", H, H, hid, 1, 3, st))
            H = (H + st - 1) // st
            L.append(("conv", H, H, hid, c, 1, 1))
            cin = c
    L.append(("conv", H, H, cin, 1280, 1, 1))
    L.append(("fc", 1, 1, 1280, 1000, 1, 1))
    return L


def _prepare(mac, kind, N, H, W, C, co, K, s, same, rng):
    x = rng.integers(-128, 128, (N, H, W, C), dtype=np.int8)
    if kind == "fc":
        w = mac.pack_fully_connected_weights(rng.integers(-128, 128, (co, C), dtype=np.int8))
        b = rng.integers(-1000, 1000, co).astype(np.int32)
        x2 = x.reshape(N, C)
        return (lambda: mac.fully_connected_acc(x2, w, b, 7)), N * co * C
    oh, pt = _same(H, K, s) if same else ((H - K) // s + 1, 0)
    ow, pl = _same(W, K, s) if same else ((W - K) // s + 1, 0)
    if kind == "conv":
        w = mac.pack_conv2d_weights(rng.integers(-128, 128, (co, K, K, C), dtype=np.int8))
        b = rng.integers(-1000, 1000, co).astype(np.int32)
        return (lambda: mac.conv2d_acc(x, w, b, 7, s, s, 1, 1, pt, pl, oh, ow)), N * oh * ow * co * K * K * C
    w = mac.pack_depthwise_weights(rng.integers(-128, 128, (1, K, K, C * co), dtype=np.int8), co)
    b = rng.integers(-1000, 1000, C * co).astype(np.int32)
    return (lambda: mac.depthwise_conv2d_acc(x, w, b, 7, s, s, 1, 1, pt, pl, oh, ow, co)), N * oh * ow * C * co * K * K


def _time(fn, runs):
    fn()
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), float(np.min(ts))


def run(runs: int, mobilenet: bool) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import numba

    from hwsim.kernels import mac

    rng = np.random.default_rng(0)
    print(f"NUMBA_NUM_THREADS={numba.get_num_threads()}  load average {os.getloadavg()[0]:.2f}")
    print(f"{'case':34s} {'MMAC':>8s} {'median ms':>10s} {'GMAC/s':>8s} {'best GMAC/s':>12s}")
    for name, *spec in _cases():
        fn, macs = _prepare(mac, *spec, rng)
        med, best = _time(fn, runs)
        print(f"{name:34s} {macs / 1e6:8.2f} {med * 1e3:10.3f} {macs / med / 1e9:8.1f} {macs / best / 1e9:12.1f}")
    if mobilenet:
        fns = []
        tot = 0
        for kind, H, W, C, co, K, s in _mobilenet_v2_layers():
            fn, macs = _prepare(mac, kind, 1, H, W, C, co, K, s, True, rng)
            fns.append(fn)
            tot += macs

        def whole():
            for f in fns:
                f()

        med, best = _time(whole, runs)
        print(f"{'mobilenet_v2 MAC layers (%d)' % len(fns):34s} {tot / 1e6:8.2f} {med * 1e3:10.3f} "
              f"{tot / med / 1e9:8.1f} {tot / best / 1e9:12.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="run with this NUMBA_NUM_THREADS only")
    ap.add_argument("--runs", type=int, default=15, help="timed calls per case (median reported)")
    ap.add_argument("--mobilenet", action="store_true", help="also time mobilenet_v2's MAC layers")
    a = ap.parse_args()
    if a.threads:
        run(a.runs, a.mobilenet)
        return
    for t in (2, 1):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(t))
        cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(t), "--runs", str(a.runs)]
        if a.mobilenet:
            cmd.append("--mobilenet")
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
