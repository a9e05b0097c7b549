"""Export speed: `hwsim export` of the bundled example, person_detect and mobilenet_v2, warm
(Numba's cache filled by a first export), into a fresh folder each time, with the time of each
step (map = legalization, plan = memory plan + packing, run = the hardware program with its
trace, layers / images = the per-layer and whole-memory files, h5 = vectors.h5, manifest).

    python benchmarks/bench_export.py [--models example,person,mobilenet] [--repeats 3]
                                      [--formats hex,mem,coe,mif,bin]

mobilenet_v2 does not fit the tflite-int8 preset's memories (every tensor has its own region):
it is exported with that preset's memories made deeper (activations and weights 2^20 words,
bias and requant 2^15), the arithmetic unchanged. Prints the CPU model and the load average:
on a shared machine the figures move with the load.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("HWSIM_CORPUS", ROOT.parent / "shared" / "corpus"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import cpu_name, load_average  # noqa: E402


def _deep_memories():
    from hwsim.hw.config import config_from_dict, load_config
    d = load_config("tflite-int8").to_dict()
    for key, depth in (("activations", 1 << 20), ("weights", 1 << 20), ("bias", 1 << 15),
                       ("requant", 1 << 15)):
        d["memories"][key]["depth"] = depth
    return config_from_dict(d, "tflite-int8-deep.yaml")


def _cases(work: Path) -> dict:
    from hwsim.examples import example_graph, example_input
    from hwsim.frontends.tflite_writer import serialize_tflite
    example = work / "example.tflite"
    example.write_bytes(serialize_tflite(example_graph(0)))
    pd = CORPUS / "real" / "person_detect"
    mb = CORPUS / "real" / "mobilenet_v2_pytorch_1x3x224x224"
    return {
        "example": (example, "tflite-int8", example_input(0)),
        "person": (pd / "model.tflite", "tflite-int8", np.load(pd / "input_0.npy")),
        "mobilenet": (mb / "model.tflite", _deep_memories(), np.load(mb / "input_0.npy")),
    }


# the steps of hwsim.export.exporter.export, timed by wrapping the functions it calls
STEPS = {"map": ("exporter", "map_for_export"), "plan": ("exporter", "plan_network"),
         "layers": ("exporter", "_write_layer"), "images": ("exporter", "build_images"),
         "image files": ("exporter", "_write_images"), "h5": ("manifest", "write_vectors_h5"),
         "manifest": ("manifest", "build_manifest"), "yaml": ("manifest", "write_manifest")}


def _timed(steps: dict):
    from hwsim.export import exporter
    from hwsim.export import manifest
    from hwsim.hw.network import HwNetwork
    mods = {"exporter": exporter, "manifest": manifest}
    saved = []

    def wrap(name, fn):
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                steps[name] += time.perf_counter() - t0
        return timed

    for name, (mod, attr) in STEPS.items():
        saved.append((mods[mod], attr, getattr(mods[mod], attr)))
        setattr(mods[mod], attr, wrap(name, getattr(mods[mod], attr)))
    saved.append((HwNetwork, "run", HwNetwork.run))
    HwNetwork.run = wrap("run", HwNetwork.run)
    return saved


def _export_once(case, out: Path, formats: str, steps: dict) -> tuple[float, int, int]:
    from hwsim.export import export
    model, config, x = case
    saved = _timed(steps)
    try:
        t0 = time.perf_counter()
        res = export(model, config, [x], out, formats=formats)
        dt = time.perf_counter() - t0
    finally:
        for obj, attr, fn in saved:
            setattr(obj, attr, fn)
    size = sum((out / rel).stat().st_size for rel in res.files)
    return dt, len(res.files), size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="example,person,mobilenet")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default="hex,mem,coe,mif,bin")
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; load average at start: "
          f"{load_average()}")
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        cases = _cases(work)
        for name in args.models.split(","):
            case = cases[name]
            _export_once(case, work / f"{name}_warm", args.formats, defaultdict(float))
            shutil.rmtree(work / f"{name}_warm")
            times, steps = [], defaultdict(float)
            for k in range(args.repeats):
                dt, n_files, size = _export_once(case, work / f"{name}_{k}", args.formats,
                                                 steps)
                times.append(dt)
                shutil.rmtree(work / f"{name}_{k}")
            split = ", ".join(f"{s} {steps[s] / args.repeats:.2f}" for s in
                              ("map", "plan", "run", "layers", "images", "image files", "h5",
                               "manifest", "yaml"))
            print(f"{name}: export {statistics.median(times):.2f} s median of "
                  f"{args.repeats} (min {min(times):.2f}), {n_files} files, "
                  f"{size / 1e6:.0f} MB, formats {args.formats}; load {load_average()}")
            print(f"  steps (mean s): {split}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
