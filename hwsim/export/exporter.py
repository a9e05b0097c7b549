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

import hashlib
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from ..hwif.descriptor import DESCRIPTOR_WORDS, MAC_CODES
from ..hwif.manifest import plain as _plain
from ..hwif.pack import LimbWords, words_to_limbs
from ..hwif.plan import (IMAGE_MEMORY, NetworkPlan, plan_network, vector_layout, vector_rank,
                         vector_values)
from ..ir import HwsimError, InputError
from ..kernels.table import network_tables
from .formats import FORMATS, render_memories

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
# The second committed example: host layers at the head, in the middle and at the tail.
RTL_HOST_MODEL_FILE = "example_host.tflite"
RTL_HOST_INPUT_FILE = "example_host_input.npy"
RTL_HOST_EXPORT_DIR = "example_host"


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
    coverage: str = ""  # the array/host split (hwsim.hw.HwNetwork.coverage)


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
    from ..hwif.manifest import export_files
    return export_files(folder)  # read once per manifest state: it is checked twice


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
        self.digests: dict[str, tuple[int, str]] = {}  # rel -> (bytes, sha256) as written
        self._folders: set[str] = set()

    def words(self, stem: str, words, word_bits: int, address: int | None = 0) -> dict:
        # words as given (limbs kept: no conversion to ints and back); the hex digits are
        # computed once for all the text formats
        words = words if len(words) else [0]
        files = {}
        rendered = render_memories(words, word_bits, self.formats, address=address or 0)
        for fmt in self.formats:
            rel = f"{stem}.{fmt}"
            data = rendered[fmt]
            path = os.path.join(self.root, rel)
            folder = os.path.dirname(path)
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            with open(path, "wb") as f:
                f.write(data)
            self.written.append(rel)
            self.digests[rel] = (len(data), hashlib.sha256(data).hexdigest())
            files[fmt] = rel
        return files

    def digest(self, rel: str) -> tuple[int, str]:
        """(bytes, sha256) of a written file: from memory when this writer wrote it."""
        if rel in self.digests:
            return self.digests[rel]
        from ..util import sha256_file
        path = os.path.join(self.root, rel)
        return os.path.getsize(path), sha256_file(path)


def _image(used_words: int, pieces, word_bits: int) -> LimbWords:
    """A memory image: ``pieces`` (base, words) in ``used_words`` zero words, as limbs."""
    img = np.zeros((used_words, -(-word_bits // 64)), dtype=np.uint64)
    for base, words in pieces:
        img[base:base + len(words)] = words_to_limbs(words, word_bits)
    return LimbWords(img, word_bits)


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
            copy = _copy_model(w, model_path, hw)
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
                files=[(rel, *w.digest(rel)) for rel in sorted(w.written)])
            man = with_placement(man, hw, plan, copy)
            mf.write_manifest(os.path.join(tmp, mf.MANIFEST_FILE), man)
            if bar is not None:
                bar.update(1)
    except OSError as e:
        raise HwsimError(f"{out_dir}: cannot write the export ({e.strerror or e})") from None
    finally:
        if bar is not None:
            bar.close()
    return ExportResult(out_dir, man, sorted(w.written + [mf.MANIFEST_FILE]), headroom,
                        warnings, plan, [r for r in report.values() if not r["exact"]],
                        hw.coverage())


# -- partitioned networks: the model copy and every layer's placement ----------------------------
MODEL_COPY_STEM = "model"


def _copy_model(w: _Writer, model_path: str, hw) -> str | None:
    """A network with host layers: a copy of the model in the export (``model.<ext>``), from
    which the chain co-simulation's host step (hwsim.cosim.HostRunner) maps the same hardware
    program again. None (no copy) when every layer runs on the array."""
    if "host" not in hw.placement.values():
        return None
    import shutil
    rel = MODEL_COPY_STEM + (os.path.splitext(model_path)[1].lower() or ".tflite")
    shutil.copyfile(model_path, os.path.join(w.root, rel))
    w.written.append(rel)
    return rel


def _tensor_entry(program, t: int, regions: dict, strides: dict) -> dict:
    info = program.tensors[t]
    e = {"tensor": int(t), "name": str(info.name), "shape": [int(d) for d in info.shape],
         "dtype": str(np.dtype(info.dtype)) if info.dtype is not None else "unknown"}
    if t in regions:   # in the activation memory
        e["base"], e["words"] = int(regions[t][0]), int(regions[t][1])
        if t in strides:   # a CONCATENATION alias's input along C: pixels strided
            e["pixel_stride"] = int(strides[t])
    return e


def _layer_tensors(hw, layer) -> tuple[list[int], list[int]]:
    """A layer's run-time input and output tensors; for a layer folded away (placement fused:
    a no-op in the hardware program) the model's op's."""
    if layer.inputs or layer.outputs or hw.graph is None:
        return list(layer.inputs), list(layer.outputs)
    op = hw.graph.ops[layer.index]
    ins = [t for t in op.inputs if t >= 0 and hw.graph.tensors[t].data is None]
    return ins, list(op.outputs)


def with_placement(man: dict, hw, plan, copy: str | None) -> dict:
    """The manifest with one ``layers`` entry per layer of the program, in execution order
    (docs/formats.md): each gets ``placement`` (array | host | alias | fused | input) and its
    ``inputs`` / ``outputs`` tensors (name, shape, dtype; base and words when in the
    activation memory); a host layer its ``reason``; an alias ``alias_of``; a fused layer the
    layer it is fused ``into``. Layers without a folder (alias, fused, input) have no
    ``folder`` key and empty ``vectors``. With host layers, ``model.copy`` names the model's copy."""
    program, regions = hw.program, plan.regions
    if copy is not None:
        man["model"] = {**man["model"], "copy": copy}
    by_index = {int(L["index"]): L for L in man["layers"]}
    fused_into = {int(f["index"]): f["into"] for f in plan.fused}
    alias_of = {int(a["index"]): a for a in plan.aliases}
    layers = []
    for layer in program.layers:
        where = hw.placement[layer.index]
        ins, outs = _layer_tensors(hw, layer)
        e = {"index": int(layer.index), "op": layer.op, "placement": where}
        if where == "host":
            e["reason"] = hw.host_reasons.get(layer.index, "")
        L = by_index.get(layer.index)
        if L is None:   # no folder: an alias, a fused layer, an input clamp
            e.update(accel_op=where.upper(), code=0, host=False, descriptor=None,
                     macs=int(layer.macs or 0))
            if where == "alias":
                e["alias_of"] = int(alias_of[layer.index]["alias_of"])
            elif layer.index in fused_into:
                e["into"] = fused_into[layer.index]
        e["inputs"] = [_tensor_entry(program, t, regions, plan.strides) for t in ins]
        e["outputs"] = [_tensor_entry(program, t, regions, plan.strides) for t in outs]
        if L is None:
            e["vectors"] = {}
        else:
            e.update({k: v for k, v in L.items() if k not in e})
        layers.append(e)
    man["layers"] = layers
    return man


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
        # a strided vector's file holds its elements dense: no address to land it in place
        files[kind] = w.words(f"{lp.folder}/{kind}", words, word_bits,
                              None if spec.pixel_stride else spec.base)
    return files


def _pack_vector(spec, values, mems):
    from ..hwif.pack import pack_words
    lay = vector_layout(spec, mems)
    if lay is None:
        return None
    return pack_words(np.asarray(values).reshape(-1), **lay, as_list=False), lay["word_bits"]


def build_images(plan: NetworkPlan, trace) -> dict[str, list[int]]:
    """The whole-network memory images (name -> words, ``used_words`` of its memory long):
    weights, bias, requant, descriptors (then one all-zero end descriptor), act_init (the
    input(s) at their regions), act_final (every region as the run leaves it), acc (the golden
    accumulators of every MAC layer at its acc_base)."""
    mems = plan.memories
    arr = plan.array_layers
    act = mems["activations"]

    def tensor_words(t):
        return act.pack(np.asarray(trace.tensors[t]).reshape(-1), as_list=False)

    pieces = {
        "weights": [(lp.fields["w_base"], lp.weights) for lp in arr if lp.weights is not None],
        "bias": [(lp.fields["b_base"], lp.bias) for lp in arr if lp.bias is not None],
        "requant": [(lp.fields["rq_base"], lp.requant) for lp in arr if lp.requant is not None],
        "descriptors": [(lp.position * DESCRIPTOR_WORDS, lp.descriptor_words()) for lp in arr],
        "act_init": [(plan.regions[t][0], tensor_words(t)) for t in plan.inputs],
        # (a strided tensor is in its CONCATENATION's region, which holds it)
        "act_final": [(base, tensor_words(t)) for t, (base, _) in plan.regions.items()
                      if t not in plan.strides],
        "acc": [(lp.fields["acc_base"], _pack_vector(lp.vectors["acc"],
                                                     trace.accumulators[lp.index], mems)[0])
                for lp in arr if lp.code in MAC_CODES],
    }
    return {name: _image(mems[IMAGE_MEMORY[name]].used_words, p,
                         mems[IMAGE_MEMORY[name]].word_bits) for name, p in pieces.items()}


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


def rtl_host_example_graph(seed: int = RTL_SEED):
    """A small seeded int8 network with host layers at the head, in the middle and at the
    tail (36,720 MACs)::

        op  type               shape out     placement
        0   TRANSPOSE          1x12x12x3     host: the input arrives NCHW [1, 3, 12, 12]
        1   CONV_2D            1x12x12x8     array (3x3, SAME, RELU6, per-channel)
        2   DEPTHWISE_CONV_2D  1x6x6x8       array (3x3, stride 2, SAME, RELU)
        3   TRANSPOSE          1x6x6x8       host: swaps H and W (a pure data move)
        4   CONV_2D            1x6x6x8       array (1x1), reads the host's output
        5   ADD                1x6x6x8       array: op 4 + op 3 (the host's output again)
        6   MAX_POOL_2D        1x3x3x8       array (2x2, stride 2)
        7   RESHAPE            1x72          alias
        8   FULLY_CONNECTED    1x10          array (per-channel)
        9   SOFTMAX            1x10          host

    Weights are seeded int8 with per-channel scales, activation scales set by hand so that
    the values spread over the int8 range; TRANSPOSE and SOFTMAX are host layers whatever the
    config."""
    from ..frontends.builder import GraphBuilder
    rng = np.random.default_rng(1000 + seed)
    b = GraphBuilder("hwsim_example_host")
    i8 = np.int8

    def conv_w(name, shape, axis, lo=0.004, hi=0.008):
        sc = rng.uniform(lo, hi, shape[axis]).astype(np.float32)
        return b.const(name, rng.integers(-127, 128, shape).astype(i8), scales=sc,
                       axis=axis), sc

    def bias(name, n, s_in, s_w):
        return b.const(name, rng.integers(-300, 300, n).astype(np.int32),
                       scales=(s_in * s_w).astype(np.float32), axis=0)

    s0 = 1.0 / 255
    x_nchw = b.input("input_nchw", (1, 3, 12, 12), i8, scale=s0, zero_point=-128)
    x = b.activation("input_nhwc", (1, 12, 12, 3), i8, scale=s0, zero_point=-128)
    b.op("TRANSPOSE", [x_nchw, b.const("to_nhwc/perm", np.array([0, 2, 3, 1], np.int32))],
         [x])
    w1, s1 = conv_w("conv1/w", (8, 3, 3, 3), 0, 0.008, 0.016)
    y1 = b.activation("conv1", (1, 12, 12, 8), i8, scale=6.0 / 255, zero_point=-128)
    b.op("CONV_2D", [x, w1, bias("conv1/b", 8, s0, s1)], [y1], version=3, padding="SAME",
         stride_w=1, stride_h=1, dilation_w_factor=1, dilation_h_factor=1,
         fused_activation_function="RELU6")
    w2, s2 = conv_w("dw/w", (1, 3, 3, 8), 3, 0.01, 0.02)
    y2 = b.activation("dw", (1, 6, 6, 8), i8, scale=0.03, zero_point=-128)
    b.op("DEPTHWISE_CONV_2D", [y1, w2, bias("dw/b", 8, 6.0 / 255, s2)], [y2], version=3,
         padding="SAME", stride_w=2, stride_h=2, dilation_w_factor=1, dilation_h_factor=1,
         depth_multiplier=1, fused_activation_function="RELU")
    y3 = b.activation("swap_hw", (1, 6, 6, 8), i8, scale=0.03, zero_point=-128)
    b.op("TRANSPOSE", [y2, b.const("swap_hw/perm", np.array([0, 2, 1, 3], np.int32))], [y3])
    w4, s4 = conv_w("pw/w", (8, 1, 1, 8), 0, 0.004, 0.008)
    y4 = b.activation("pw", (1, 6, 6, 8), i8, scale=0.02, zero_point=3)
    b.op("CONV_2D", [y3, w4, bias("pw/b", 8, 0.03, s4)], [y4], version=3, padding="VALID",
         stride_w=1, stride_h=1, dilation_w_factor=1, dilation_h_factor=1,
         fused_activation_function="NONE")
    y5 = b.activation("add", (1, 6, 6, 8), i8, scale=0.04, zero_point=-20)
    b.op("ADD", [y4, y3], [y5], version=2, fused_activation_function="NONE")
    y6 = b.activation("pool", (1, 3, 3, 8), i8, scale=0.04, zero_point=-20)
    b.op("MAX_POOL_2D", [y5], [y6], version=2, padding="VALID", stride_w=2, stride_h=2,
         filter_width=2, filter_height=2, fused_activation_function="NONE")
    y7 = b.activation("flatten", (1, 72), i8, scale=0.04, zero_point=-20)
    b.op("RESHAPE", [y6, b.const("flatten/shape", np.array([1, 72], np.int32))], [y7],
         new_shape=[1, 72])
    w8, s8 = conv_w("fc/w", (10, 72), 0, 0.005, 0.01)
    y8 = b.activation("fc", (1, 10), i8, scale=0.1, zero_point=0)
    b.op("FULLY_CONNECTED", [y7, w8, bias("fc/b", 10, 0.04, s8)], [y8], version=4,
         fused_activation_function="NONE", weights_format="DEFAULT", keep_num_dims=False)
    y9 = b.activation("probabilities", (1, 10), i8, scale=1.0 / 256, zero_point=-128)
    b.op("SOFTMAX", [y8], [y9], version=2, beta=1.0)
    b.output(y9)
    return b.build()


def rtl_host_example_input(seed: int = RTL_SEED) -> np.ndarray:
    """The host example's seeded input: int8 NCHW [1, 3, 12, 12] (an image in [0, 1])."""
    rng = np.random.default_rng(2000 + seed)
    return rng.integers(-128, 128, (1, 3, 12, 12)).astype(np.int8)


def regen_rtl_vectors(dest: str | os.PathLike = RTL_VECTORS_DIR, progress=False) -> ExportResult:
    """(Re)write ``dest/example_rtl.tflite``, ``dest/example_input.npy`` and the export
    ``dest/example/`` (tflite-int8 preset, hex files), and the host example
    (:func:`rtl_host_example_graph`): ``example_host.tflite``, ``example_host_input.npy``,
    ``example_host/``. Returns the first export's result. README.md is left alone."""
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
    res = export(model, RTL_CONFIG, [npy], os.path.join(dest, RTL_EXPORT_DIR),
                 formats=RTL_FORMATS, progress=progress)
    # the second example: host layers at the head, in the middle and at the tail
    model = os.path.join(dest, RTL_HOST_MODEL_FILE)
    atomic_write_bytes(model, serialize_tflite(rtl_host_example_graph(RTL_SEED),
                                               description="hwsim example network with host "
                                                           "layers"))
    npy = os.path.join(dest, RTL_HOST_INPUT_FILE)
    with atomic_output_path(npy, suffix=".npy") as tmp:
        np.save(tmp, rtl_host_example_input(RTL_SEED), allow_pickle=False)
    export(model, RTL_CONFIG, [npy], os.path.join(dest, RTL_HOST_EXPORT_DIR),
           formats=RTL_FORMATS, progress=progress)
    return res


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
