"""The avx2 path as an AVX2-only CPU builds it: benchmarks/avx2_only.sh hides AVX-512, VNNI and
AMX from a subprocess (CPUID faults and is answered without them, benchmarks/cpuid_mask.c), so
LLVM compiles hwsim's kernels without AVX-512 instructions and hwsim chooses its avx2 path. In
this process the avx2 path's kernels are compiled for the host's features (on an AVX-512 CPU,
LLVM may use zmm registers in them); this test runs the code a Zen 3 or Haswell would run.

The subprocess (twice: AVX-VNNI hidden too, and kept) computes accumulators and fused int8
outputs (the three requantization forms: the general two-step one, the one-step rounding with
logical shifts, FusedRequant.ql, and its sign-magnitude form, FusedRequant.qs) of conv,
depthwise (3x3 layers that take the 3x3 kernels on AVX-512 CPUs, a 5x5 layer, depth
multiplier 2) and fully connected layers (with AVX-VNNI also through gemv_vnni256), serial and
on two threads; this process compares them with the plain reference kernels (and the
reference accumulators requantized separately). Skipped, saying why, where CPUID cannot be made to fault
or gcc is missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwsim.kernels import mac
from hwsim.kernels.requant import requantize, split_shifts
from hwsim.params import RequantParams
from hwsim.vocab import RequantScheme

ROOT = Path(__file__).resolve().parents[1]


def _cpuid_faults() -> bool:
    try:
        return any(line.startswith("flags") and "cpuid_fault" in line.split()
                   for line in open("/proc/cpuinfo"))
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(not _cpuid_faults(), reason="this CPU or kernel cannot make CPUID fault (no cpuid_fault "
                                                   "in /proc/cpuinfo): benchmarks/avx2_only.sh cannot run"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc to build benchmarks/cpuid_mask.c"),
]

# (name, x shape, weight shape, kind, geometry (off, sh, sw, dh, dw, pt, pl, oh, ow[, dm]))
CASES = [
    ("conv3x3", (1, 13, 11, 19), (21, 3, 3, 19), "conv", (5, 2, 1, 1, 2, 1, 2, 7, 11, 1)),
    ("conv1x1", (2, 9, 9, 40), (72, 1, 1, 40), "conv", (-128 + 1, 1, 1, 1, 1, 0, 0, 9, 9, 1)),
    ("dw3_s1", (1, 15, 14, 144), (1, 3, 3, 144), "dw", (7, 1, 1, 1, 1, 1, 1, 15, 14, 1)),
    ("dw3_s2", (1, 16, 16, 96), (1, 3, 3, 96), "dw", (-3, 2, 2, 1, 1, 0, 0, 8, 8, 1)),
    ("dw5_dm2", (1, 13, 11, 19), (1, 5, 5, 38), "dw", (128, 1, 1, 1, 1, 2, 2, 13, 11, 2)),
    ("fc", (3, 77), (10, 77), "fc", (128,)),
]

_SCRIPT = r"""
import sys, numpy as np, numba
import llvmlite.binding as llvm
from hwsim.kernels import mac
feats = set(llvm.get_host_cpu_features().flatten().split(","))
path = sys.argv[3]
assert "+avx2" in feats and "-avx512f" in feats and "-avx512vnni" in feats, feats
assert ("+avxvnni" if path == "vnni256" else "-avxvnni") in feats, feats
assert mac.mac_path() == path and mac.dw_path() == "avx2", (mac.mac_path(), mac.dw_path())
d = np.load(sys.argv[1], allow_pickle=True)
out = {}
for threads in (1, 2):
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    mac.PARALLEL_MIN_MACS = mac.DW16_PARALLEL_MIN_MACS = 0 if threads > 1 else 1 << 40
    for name, kind, geo in d["cases"]:
        x, w, b = d[name + ".x"], d[name + ".w"], d[name + ".b"]
        fq = mac.FusedRequant(*d[name + ".fq"])
        fl = mac.FusedRequant(*d[name + ".fl"])
        fs = mac.FusedRequant(*d[name + ".fs"])
        for tag, rq in (("acc", None), ("int8", fq), ("int8l", fl), ("int8s", fs)):
            if kind == "conv":
                r = mac.conv2d_acc(x, w, b, *geo[:-1], requant=rq)
            elif kind == "dw":
                r = mac.depthwise_conv2d_acc(x, w, b, *geo, requant=rq)
            else:
                r = mac.fully_connected_acc(x, w, b, *geo, requant=rq)
            out[f"{name}.{tag}.{threads}"] = r
        if kind == "fc" and path == "vnni256":  # the FULLY_CONNECTED kernel of a VNNI-on-ymm CPU
            from hwsim.kernels import gemv
            sp = tuple(d[name + ".split"])
            wq, c = gemv.vnni_pack(w, geo[0], 8)
            o8 = np.empty((x.shape[0], w.shape[0]), np.int8)
            args = (x, wq, c, b, sp, np.int64(fl.zp), np.int64(fl.lo), np.int64(fl.hi),
                    np.empty((x.shape[0], (x.shape[1] + 3) // 4 * 4), np.uint8), np.empty(w.shape[0], np.int32), o8)
            if threads > 1:
                gemv.gemv_vnni256_parallel(*args, threads)
            else:
                gemv.gemv_vnni256(*args)
            out[f"{name}.gemv.{threads}"] = o8
np.savez(sys.argv[2], **out)
"""


def _rq(rng, channels, right_only=False):
    """Random tflite_double constants: shifts -14..1 (a left shift in some channel: the general
    two-step form), or with ``right_only`` -14..-1 and a narrower clamp (the one-step rounding,
    FusedRequant.ql on this path, and the clamp inside int8's range)."""
    return RequantParams(act_min=-100 if right_only else -128, act_max=90 if right_only else 127,
                         multiplier=rng.integers(1 << 30, (1 << 31) - 1, channels),
                         shift=rng.integers(-14, 0 if right_only else 2, channels),
                         scheme=RequantScheme.tflite_double, out_zp=int(rng.integers(-128, 128)))


def _rq_mag(rng, channels):
    """Right shifts 1..12, odd multipliers: the sign-magnitude form (FusedRequant.qs)."""
    return RequantParams(act_min=-110, act_max=120, multiplier=rng.integers(1 << 30, (1 << 31) - 1, channels) | 1,
                         shift=rng.integers(-12, 0, channels), scheme=RequantScheme.tflite_double,
                         out_zp=int(rng.integers(-128, 128)))


def _fused(rq, cout):
    return mac.fused_requant(split_shifts(rq, cout).cp, rq.out_zp, rq.act_min, rq.act_max)


def _has_avx_vnni() -> bool:
    try:
        return any(line.startswith("flags") and "avx_vnni" in line.split() for line in open("/proc/cpuinfo"))
    except OSError:
        return False


@pytest.mark.parametrize("path", ["avx2", pytest.param("vnni256", marks=pytest.mark.skipif(
    not _has_avx_vnni(), reason="this CPU has no AVX-VNNI to keep visible"))])
def test_avx2_only_build_gives_the_reference_integers(path, tmp_path):
    """``path`` avx2: AVX-512 and every VNNI hidden; vnni256: AVX-VNNI kept
    (CPUID_MASK_KEEP_AVXVNNI=1), the ymm vpdpbusd kernels of a CPU such as Alder Lake."""
    rng = np.random.default_rng(13)
    data, want = {"cases": np.array([(n, k, g) for n, _, _, k, g in CASES], dtype=object)}, {}
    for name, xs, ws, kind, geo in CASES:
        x = rng.integers(-128, 128, xs, dtype=np.int8)
        w = rng.integers(-128, 128, ws, dtype=np.int8)
        cout = ws[0] if kind != "dw" else ws[3]
        b = rng.integers(-(2 ** 20), 2 ** 20, cout).astype(np.int32)
        if kind == "conv":
            acc = mac.conv2d_acc_reference(x, w, b, *geo[:-1])
        elif kind == "dw":
            acc = mac.depthwise_conv2d_acc_reference(x, w, b, *geo)
        else:
            acc = mac.fully_connected_acc_reference(x, w, b, *geo)
        rq, rl, rs = _rq(rng, cout), _rq(rng, cout, right_only=True), _rq_mag(rng, cout)
        fq, fl, fs = _fused(rq, cout), _fused(rl, cout), _fused(rs, cout)
        assert fq.ql is None and fl.ql is not None and fs.qs is not None
        data.update({name + ".x": x, name + ".w": w, name + ".b": b,
                     name + ".fq": np.array(tuple(fq), dtype=object), name + ".fl": np.array(tuple(fl), dtype=object),
                     name + ".fs": np.array(tuple(fs), dtype=object)})
        want[name] = {"acc": acc, "int8": requantize(acc, rq, np.int8), "int8l": requantize(acc, rl, np.int8),
                      "int8s": requantize(acc, rs, np.int8)}
        if kind == "fc" and path == "vnni256":
            from hwsim.kernels import gemv
            data[name + ".split"] = np.array(gemv.requant_args(rl, cout), dtype=object)
            want[name]["gemv"] = requantize(acc, rl, np.int8)
    np.savez(tmp_path / "in.npz", **data)
    script = tmp_path / "avx2.py"
    script.write_text(_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    env["NUMBA_NUM_THREADS"] = "2"
    env["CPUID_MASK_KEEP_AVXVNNI"] = "1" if path == "vnni256" else "0"
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "avx2_only.sh"), sys.executable, str(script),
                        str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), path],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    for name, tags in want.items():
        for tag, exp in tags.items():
            for threads in (1, 2):
                g = got[f"{name}.{tag}.{threads}"]
                assert g.dtype == exp.dtype and g.shape == exp.shape, (name, tag, threads)
                bad = np.argwhere(g != exp)
                assert bad.size == 0, f"{name} {tag} on {threads} thread(s): {len(bad)} values differ, " \
                                      f"first at {tuple(bad[0])}: {g[tuple(bad[0])]} != {exp[tuple(bad[0])]}"
