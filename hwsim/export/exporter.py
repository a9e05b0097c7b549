"""``hwsim export``: the files the RTL needs (docs/export.md, docs/dev/accel-interface.md).

    from hwsim.export import export
    res = export("model.tflite", "tflite-int8", x, "build/rtl")   # -> ExportResult

Steps: map the network onto the accelerator (:func:`map_for_export` = hwsim.hw.map_network:
placement, legalization, memory capacity; what cannot be mapped fails here, before the run),
lay it out in the memories (:func:`hwsim.hwif.plan_network`), run the hardware program
with a trace, then write every file into a temp folder beside the output folder and rename it
into place at the end — an error leaves no partial output. Every file is deterministic: the
same model, config and input give the same bytes.

Regenerate the committed RTL vectors: ``python scripts/regen_rtl_vectors.py``.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from ..hwif.descriptor import DESCRIPTOR_WORDS, MAC_CODES
from ..hwif.manifest import plain as _plain
from ..hwif.plan import (IMAGE_MEMORY, NetworkPlan, plan_network, vector_layout, vector_rank,
                         vector_values)
from ..ir import HwsimError, InputError
from ..kernels.table import network_tables
from .formats import FORMATS, render_memory

LEGALIZE_MODES = ("strict", "approx")

# The committed RTL vectors (rtl_vectors/ at the repository root).
RTL_VECTORS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "rtl_vectors")
RTL_MODEL_FILE = "example_rtl.tflite"
RTL_INPUT_FILE = "example_input.npy"
RTL_EXPORT_DIR = "example"
RTL_CONFIG = "tflite-int8"
RTL_FORMATS = ("hex",)
RTL_SEED = 0


# -- mapping the network onto the accelerator ---------------------------------------------------
def map_for_export(model, config, legalize: str = "strict", inputs=None, host_tail: bool = False,
                   semantics: str = "tflite"):
    """The network mapped onto the accelerator: :func:`hwsim.hw.map_network` (legalization,
    the hardware program, its cycle and headroom analyses)."""
    from ..hw import map_network
    return map_network(model, config, legalize=legalize, inputs=inputs, host_tail=host_tail,
                       semantics=semantics)


# -- the hardware model's rows as plain YAML-safe dicts -----------------------------------------
def _rows_by_layer(rows) -> dict[int, dict]:
    """hwsim.hw rows (LayerStats, HeadroomRow, LegalizationRow) -> {layer index: dict}."""
    out = {}
    for r in rows or []:
        d = _plain(r.as_dict() if hasattr(r, "as_dict") else r)
        out[int(d["layer"] if "layer" in d else d["index"])] = d
    return out


# The manifest's headroom row: hwsim.hw.headroom.HeadroomRow's fields, in this order.
HEADROOM_KEYS = ("layer", "op", "acc_bits", "overflow", "dataflow", "acc_min", "acc_max",
                 "partial_min", "partial_max", "observed_bits", "worst_min", "worst_max",
                 "worst_bits", "worst_fits", "elements", "out_of_range", "out_of_range_elements")


def _headroom_row(d: dict) -> dict:
    return {k: d.get(k) for k in HEADROOM_KEYS}


# -- inputs -------------------------------------------------------------------------------------
@dataclass
class InputSpec:
    array: np.ndarray
    file: str | None = None  # the file it came from


def _load_inputs(inputs, graph) -> list[InputSpec]:
    from ..inputs import load_input
    infos = [graph.tensors[i] for i in graph.inputs]
    if inputs is None:
        raise InputError(f"export needs the model's input(s): "
                         f"{', '.join(repr(i.name) for i in infos)}")
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    inputs = list(inputs)
    if len(inputs) != len(infos):
        raise InputError(f"the model takes {len(infos)} input(s), {len(inputs)} given")
    out = []
    for k, (x, info) in enumerate(zip(inputs, infos)):
        if isinstance(x, (str, os.PathLike)):
            out.append(InputSpec(load_input(os.fspath(x), info, k=k), os.fspath(x)))
            continue
        x = np.asarray(x)
        if x.dtype != np.dtype(info.dtype) or tuple(x.shape) != tuple(info.shape):
            raise InputError(f"input {k} ('{info.name}'): {x.dtype} {list(x.shape)}, the model "
                             f"wants {np.dtype(info.dtype)} {list(info.shape)}")
        out.append(InputSpec(np.ascontiguousarray(x)))
    return out


# -- the export -------------------------------------------------------------------------------
@dataclass
class ExportResult:
    out_dir: str
    manifest: dict
    files: list[str]  # relative paths, sorted (manifest.yaml included)
    headroom: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)  # headroom rows that overflow
    plan: NetworkPlan | None = None
    inexact: list[dict] = field(default_factory=list)  # legalization rows not exact (approx)


def check_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    out = []
    for f in formats:
        f = str(f).strip().lower().lstrip(".")
        if f not in FORMATS:
            raise HwsimError(f"unknown format {f!r} in --formats; choose from "
                             f"{','.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise HwsimError(f"--formats is empty; choose from {','.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in out)


EXPORT_WHAT = "an hwsim export (manifest.yaml with format: hwsim-export)"


def owned_export_files(folder: str) -> set[str] | None:
    """The files an earlier ``hwsim export`` wrote into ``folder`` (its manifest and every file
    the manifest lists), or None when ``folder`` holds no readable hwsim export manifest."""
    from .manifest import MANIFEST_FILE, read_manifest
    if not os.path.isfile(os.path.join(folder, MANIFEST_FILE)):
        return None
    try:
        man = read_manifest(folder)
    except HwsimError:
        return None
    return {f["path"] for f in man["files"]} | {MANIFEST_FILE}


def _check_out_dir(out_dir: str) -> None:
    """Before the long work: can ``out_dir`` be written (and replaced, if it holds an earlier
    export and nothing else)? :func:`hwsim.util.atomic_output_dir` checks again at the swap."""
    from ..util import check_output_dir
    check_output_dir(out_dir, owned_export_files, EXPORT_WHAT)
    parent = os.path.dirname(os.path.abspath(out_dir))
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise HwsimError(f"{out_dir}: cannot create the output folder ({probe} is not a "
                         f"folder)")


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="export", unit="step", file=sys.stderr, leave=False,
                dynamic_ncols=True)


def _config_source(config) -> str:
    from ..hw.config import PRESET_DIR
    src = config.source or ""
    if src and os.path.dirname(os.path.abspath(src)) == str(PRESET_DIR):
        return f"preset {os.path.splitext(os.path.basename(src))[0]}"
    return os.path.basename(src) if src else "(given as an object)"


class _Writer:
    """Writes memory files (every selected format) into the temp export folder."""

    def __init__(self, root: str, formats: tuple[str, ...]):
        self.root = root
        self.formats = formats
        self.written: list[str] = []

    def words(self, stem: str, words, word_bits: int, address: int | None = 0) -> dict:
        words = list(words) or [0]
        files = {}
        for fmt in self.formats:
            rel = f"{stem}.{fmt}"
            data = render_memory(words, word_bits, fmt,
                                 address=(address or 0) if fmt == "mem" else 0)
            path = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            self.written.append(rel)
            files[fmt] = rel
        return files


def _image(used_words: int, pieces) -> list[int]:
    img = [0] * used_words
    for base, words in pieces:
        img[base:base + len(words)] = list(words)
    return img


def export(model, config=None, inputs=None, out_dir: str | os.PathLike = "hwsim_export", *,
           legalize: str = "strict", host_tail: bool = False, formats=FORMATS,
           progress: bool | None = False, semantics: str = "tflite") -> ExportResult:
    """Export ``model`` mapped on ``config`` (YAML path, preset name or AccelConfig) with
    ``inputs`` (array(s) or .npy/image path(s)) into ``out_dir`` (docs/export.md).
    ``semantics``: the reference arithmetic, "tflite" or "tflm" (docs/semantics.md)."""
    from .. import __version__, load_graph
    from ..hw.config import load_config
    from ..util import atomic_output_dir, sha256_file
    from . import manifest as mf

    config = load_config(config)
    if legalize not in LEGALIZE_MODES:
        raise HwsimError(f"--legalize {legalize!r}: choose strict or approx")
    formats = check_formats(formats)
    out_dir = os.fspath(out_dir)
    _check_out_dir(out_dir)
    model_path = os.fspath(model)
    if not os.path.isfile(model_path):
        raise HwsimError(f"{model_path}: no such model file")

    graph = load_graph(model_path)
    xs = _load_inputs(inputs, graph)
    # approx: map_network measures each layer's cost in exactness on these inputs
    hw = map_for_export(graph, config, legalize,
                        [x.array for x in xs] if legalize == "approx" else None, host_tail,
                        semantics)
    program = hw.program
    plan = plan_network(program, config, hw.placement,
                        tables=network_tables(program, hw.config, hw.placement))
    result = hw.run([x.array for x in xs], trace=True)
    trace = result.trace
    stats = _rows_by_layer(hw.layer_stats())
    headroom = [_headroom_row(r) for r in _rows_by_layer(hw.headroom(trace)).values()]
    report = _rows_by_layer(hw.report)
    warnings = [r for r in headroom if (r.get("out_of_range") or 0) > 0]

    n_steps = len(plan.layers) + 3
    bar = _progress(n_steps, progress)
    try:
        with atomic_output_dir(out_dir, owned_export_files, EXPORT_WHAT) as tmp:
            w = _Writer(tmp, formats)
            layer_files = {}
            for lp in plan.layers:
                layer_files[lp.index] = _write_layer(w, lp, plan, trace)
                if bar is not None:
                    bar.update(1)
            images = build_images(plan, trace)
            mem_files = _write_images(w, plan, images)
            if bar is not None:
                bar.update(1)
            mf.write_vectors_h5(os.path.join(tmp, mf.VECTORS_FILE), plan, trace, images,
                                model_path, __version__)
            w.written.append(mf.VECTORS_FILE)
            if bar is not None:
                bar.update(1)
            man = mf.build_manifest(
                plan=plan, program=program, config=config, version=__version__,
                model_file=os.path.basename(model_path), model_sha256=sha256_file(model_path),
                inputs=[mf.input_entry(program.tensors[t], x, sha256_file) for t, x in
                        zip(program.inputs, xs)],
                config_source=_config_source(config), legalize=legalize, host_tail=host_tail,
                formats=formats, exact=bool(hw.exact), report=report, stats=stats,
                headroom=headroom, warnings=warnings, layer_files=layer_files,
                mem_files=mem_files, graph=hw.graph,
                files=[(rel, os.path.getsize(os.path.join(tmp, rel)),
                        sha256_file(os.path.join(tmp, rel))) for rel in sorted(w.written)])
            mf.write_manifest(os.path.join(tmp, mf.MANIFEST_FILE), man)
            if bar is not None:
                bar.update(1)
    except OSError as e:
        raise HwsimError(f"{out_dir}: cannot write the export ({e.strerror or e})") from None
    finally:
        if bar is not None:
            bar.close()
    return ExportResult(out_dir, man, sorted(w.written + [mf.MANIFEST_FILE]), headroom,
                        warnings, plan, [r for r in report.values() if not r["exact"]])


def _write_layer(w: _Writer, lp, plan: NetworkPlan, trace) -> dict:
    mems = plan.memories
    files: dict[str, dict] = {}
    if not lp.host:
        files["descriptor"] = w.words(f"{lp.folder}/descriptor", lp.descriptor_words(), 32,
                                      lp.position * DESCRIPTOR_WORDS)
        if lp.table is not None:  # a TABLE layer's table, in the weight memory
            files["table"] = w.words(f"{lp.folder}/table", lp.weights,
                                     mems["weights"].word_bits, lp.fields["w_base"])
        elif lp.weights is not None:
            files["weights"] = w.words(f"{lp.folder}/weights", lp.weights,
                                       mems["weights"].word_bits, lp.fields["w_base"])
            files["bias"] = w.words(f"{lp.folder}/bias", lp.bias, mems["bias"].word_bits,
                                    lp.fields["b_base"])
        if lp.requant is not None:
            files["requant"] = w.words(f"{lp.folder}/requant", lp.requant,
                                       mems["requant"].word_bits, lp.fields["rq_base"])
    for kind in sorted(lp.vectors, key=vector_rank):
        spec = lp.vectors[kind]
        v = vector_values(lp, spec, trace)
        packed = _pack_vector(spec, v, mems)
        if packed is None:
            continue  # a float host tensor: vectors.h5 only
        words, word_bits = packed
        files[kind] = w.words(f"{lp.folder}/{kind}", words, word_bits, spec.base)
    return files


def _pack_vector(spec, values, mems):
    from ..hwif.pack import pack_words
    lay = vector_layout(spec, mems)
    if lay is None:
        return None
    return pack_words(np.asarray(values).reshape(-1), **lay), lay["word_bits"]


def build_images(plan: NetworkPlan, trace) -> dict[str, list[int]]:
    """The whole-network memory images (name -> words, ``used_words`` of its memory long):
    weights, bias, requant, descriptors (then one all-zero end descriptor), act_init (the
    input(s) at their regions), act_final (every region as the run leaves it), acc (the golden
    accumulators of every MAC layer at its acc_base)."""
    mems = plan.memories
    arr = plan.array_layers
    act = mems["activations"]

    def tensor_words(t):
        return act.pack(np.asarray(trace.tensors[t]).reshape(-1))

    pieces = {
        "weights": [(lp.fields["w_base"], lp.weights) for lp in arr if lp.weights is not None],
        "bias": [(lp.fields["b_base"], lp.bias) for lp in arr if lp.bias is not None],
        "requant": [(lp.fields["rq_base"], lp.requant) for lp in arr if lp.requant is not None],
        "descriptors": [(lp.position * DESCRIPTOR_WORDS, lp.descriptor_words()) for lp in arr],
        "act_init": [(plan.regions[t][0], tensor_words(t)) for t in plan.inputs],
        "act_final": [(base, tensor_words(t)) for t, (base, _) in plan.regions.items()],
        "acc": [(lp.fields["acc_base"], _pack_vector(lp.vectors["acc"],
                                                     trace.accumulators[lp.index], mems)[0])
                for lp in arr if lp.code in MAC_CODES],
    }
    return {name: _image(mems[IMAGE_MEMORY[name]].used_words, p) for name, p in pieces.items()}


def _write_images(w: _Writer, plan: NetworkPlan, images: dict) -> dict:
    return {name: w.words(f"mem/{name}", words, plan.memories[IMAGE_MEMORY[name]].word_bits)
            for name, words in images.items()}


# -- the committed RTL vectors ----------------------------------------------------------------
def rtl_example_graph(seed: int = RTL_SEED):
    """The bundled example network without its SOFTMAX: every layer runs on the array
    (CONV, DWCONV, ADD, MAXPOOL, RESHAPE alias, FC); its output is the FC's int8 logits."""
    from ..examples import example_graph
    g = example_graph(seed, name="hwsim_example_cnn_rtl")
    last = g.ops[-1]
    assert last.type == "SOFTMAX" and last.outputs == g.outputs
    probs = last.outputs[0]
    assert probs == len(g.tensors) - 1, "the softmax output is expected to be the last tensor"
    g.ops = g.ops[:-1]
    g.tensors = g.tensors[:-1]
    g.outputs = list(last.inputs)
    return g


def regen_rtl_vectors(dest: str | os.PathLike = RTL_VECTORS_DIR, progress=False) -> ExportResult:
    """(Re)write ``dest/example_rtl.tflite``, ``dest/example_input.npy`` and the export
    ``dest/example/`` (tflite-int8 preset, formats hex and mem). README.md is left alone."""
    from ..examples import example_input
    from ..frontends.tflite_writer import serialize_tflite
    from ..util import atomic_output_path, atomic_write_bytes
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    model = os.path.join(dest, RTL_MODEL_FILE)
    atomic_write_bytes(model, serialize_tflite(rtl_example_graph(RTL_SEED),
                                               description="hwsim example network for RTL"))
    npy = os.path.join(dest, RTL_INPUT_FILE)
    with atomic_output_path(npy, suffix=".npy") as tmp:
        np.save(tmp, example_input(RTL_SEED), allow_pickle=False)
    return export(model, RTL_CONFIG, [npy], os.path.join(dest, RTL_EXPORT_DIR),
                  formats=RTL_FORMATS, progress=progress)


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m hwsim.export.exporter")
    p.add_argument("--regen-rtl-vectors", action="store_true",
                   help=f"rewrite the committed RTL vectors in {RTL_VECTORS_DIR}")
    p.add_argument("--dest", default=RTL_VECTORS_DIR, help="folder (default: rtl_vectors/)")
    args = p.parse_args(argv)
    if not args.regen_rtl_vectors:
        p.print_help()
        return 2
    try:
        res = regen_rtl_vectors(args.dest, progress=None)
    except HwsimError as e:
        print(f"hwsim: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {res.out_dir} ({len(res.files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
