"""The export's index files: ``manifest.yaml`` and ``vectors.h5`` (docs/formats.md).

Both are deterministic (same content -> same bytes): YAML with a fixed key order and no
timestamps; HDF5 with a fixed format version, creation order tracked and no times.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
import yaml

from ..hwif.descriptor import DESCRIPTOR_FIELDS, DESCRIPTOR_WORDS, OP_CODES
# the schema and the reader live in hwsim.hwif.manifest; re-exported for existing callers
from ..hwif.manifest import (FORMAT, FORMAT_VERSION, MANIFEST_FILE, VECTORS_FILE,
                             check_manifest_paths, plain, read_manifest)
from ..hwif.memory import ACC_MEMORY_KEY, nhwc
from ..hwif.plan import (IMAGE_MEMORY, NetworkPlan, vector_layout, vector_rank,
                         vector_values)
from ..hwif.requant import RTL_REQUANT_SCHEMES
from ..ir import HwsimError

H5_LIBVER = ("v110", "v110")

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST_FILE", "VECTORS_FILE", "array_words",
           "build_manifest", "check_manifest_paths", "dump_yaml", "input_entry", "read_manifest",
           "read_vectors_h5", "words_array", "write_manifest", "write_vectors_h5"]


# -- YAML -------------------------------------------------------------------------------------
class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """libyaml's emitter when present (same bytes as PyYAML's, ~4x faster; the export tests
    and the committed rtl_vectors/ check the bytes)."""


def _repr_list(dumper, data):
    flow = all(isinstance(v, (int, float, str, bool)) or v is None for v in data) and \
        len(data) <= 64
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _repr_list)


def dump_yaml(data: dict) -> bytes:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     width=100, allow_unicode=False).encode("ascii")


def write_manifest(path: str, manifest: dict) -> None:
    with open(path, "wb") as f:
        f.write(dump_yaml(manifest))


# -- manifest ---------------------------------------------------------------------------------
def _quant(info) -> dict:
    scales = [float(s) for s in np.asarray(info.scales).reshape(-1)]
    zps = [int(z) for z in np.asarray(info.zero_points).reshape(-1)]
    if not scales:
        return {"tensor": int(info.index), "quantized": False}
    if len(scales) == 1:
        return {"tensor": int(info.index), "scale": scales[0], "zero_point": zps[0]}
    return {"tensor": int(info.index), "scales": scales, "zero_points": zps,
            "axis": int(info.axis)}


def input_entry(info, spec, sha256_file) -> dict:
    a = np.ascontiguousarray(spec.array)
    return {"tensor": int(info.index), "name": str(info.name), "dtype": str(a.dtype),
            "shape": [int(d) for d in a.shape],
            "file": os.path.basename(spec.file) if spec.file else None,
            "file_sha256": sha256_file(spec.file) if spec.file else None,
            "data_sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def _vector_entry(spec, layout, files) -> dict:
    e = {"tensor": spec.tensor, "name": str(spec.name), "dtype": spec.dtype,
         "shape": [int(d) for d in spec.shape], "nhwc": [int(d) for d in spec.nhwc],
         "elements": spec.elements, "memory": spec.memory, "base": spec.base,
         "words": _words(spec, layout)}
    if getattr(spec, "pixel_stride", 0):   # strided in memory: the words from base it spans
        e["pixel_stride"], e["words"] = int(spec.pixel_stride), int(spec.words)
    e["layout"] = layout
    e["files"] = files or {}
    return e


def _words(spec, layout) -> int:
    if layout is None:
        return 0
    return -(-spec.elements // layout["lanes_per_word"])


def _weight_tensor(graph, layer):
    if graph is None or not 0 <= layer.index < len(graph.ops) or not layer.has_acc:
        return None
    op = graph.ops[layer.index]
    if op.type != layer.op or len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    return graph.tensors[op.inputs[1]]


def _layer_entry(lp, plan, program, graph, stats, headroom, report, files) -> dict:
    layer = lp.layer
    e = {"index": int(lp.index), "op": lp.op, "accel_op": lp.accel_op, "code": int(lp.code),
         "host": bool(lp.host), "descriptor": lp.position, "folder": lp.folder,
         "summary": str(getattr(layer, "summary", "") or ""), "macs": int(layer.macs)}
    row = stats.get(lp.index)
    if row is not None:
        e["cycles"] = row.get("cycles")
        e["stats"] = {k: v for k, v in row.items() if k not in ("layer", "index", "op")}
    leg = report.get(lp.index)
    if leg is not None:
        e["legalization"] = {k: v for k, v in leg.items() if k not in ("layer", "op")}
    q = {}
    for kind in sorted(lp.vectors):
        if kind != "acc":
            q[kind] = _quant(program.tensors[lp.vectors[kind].tensor])
    wt = _weight_tensor(graph, layer)
    if wt is not None and wt.quant is not None:
        q["weights"] = {"tensor": int(wt.index), "shape": [int(d) for d in wt.shape],
                        "per_channel": bool(len(wt.quant.scales) > 1),
                        "scales": [float(s) for s in np.asarray(wt.quant.scales).reshape(-1)]}
    if lp.requant_fields:
        q["requant"] = lp.requant_fields
    e["quantization"] = q
    if not lp.host:
        e["fields"] = {name: int(lp.fields.get(name, 0)) for name in DESCRIPTOR_FIELDS}
        mem = {}
        if lp.table is not None:  # a TABLE layer: its table in the weight memory
            mem["table"] = {"base": lp.fields["w_base"], "words": len(lp.weights),
                            "entries": int(len(lp.table))}
        elif lp.weights is not None:
            k = int(lp.weight_matrix.shape[1])
            mem["weights"] = {"base": lp.fields["w_base"], "words": len(lp.weights),
                              "words_per_channel": lp.fields["words_per_channel"],
                              "channels": int(lp.weight_matrix.shape[0]), "k": k}
            mem["bias"] = {"base": lp.fields["b_base"], "words": len(lp.bias)}
        if lp.requant is not None:
            mem["requant"] = {"base": lp.fields["rq_base"], "words": len(lp.requant)}
        if "acc" in lp.vectors:
            mem[ACC_MEMORY_KEY] = {"base": lp.fields["acc_base"],
                                   "words": lp.vectors["acc"].words}
        e["memory"] = mem
    e["vectors"] = {}
    for kind in sorted(lp.vectors, key=vector_rank):
        spec = lp.vectors[kind]
        e["vectors"][kind] = _vector_entry(spec, vector_layout(spec, plan.memories),
                                           files.get(kind, {}))
    e["files"] = {k: v for k, v in files.items() if k in ("descriptor", "weights", "bias",
                                                           "requant")}
    h = headroom.get(lp.index)
    if h is not None:
        e["headroom"] = h
    return e


def build_manifest(*, plan: NetworkPlan, program, config, version, model_file, model_sha256,
                   inputs, config_source, legalize, host_tail, formats, exact, report, stats,
                   headroom, warnings, layer_files, mem_files, graph, files) -> dict:
    mems = plan.memories
    hr = {int(r["layer"]): r for r in headroom if isinstance(r.get("layer"), int)}
    memories = {}
    for key in ("weights", "bias", "requant", "activations", ACC_MEMORY_KEY, "descriptors"):
        m = mems[key].describe()
        m["element"] = {"weights": "int8", "bias": "int32", "requant": "64-bit requant word",
                        "activations": "int8", ACC_MEMORY_KEY: f"int{mems[key].word_bits}",
                        "descriptors": "int32 descriptor field"}[key]
        memories[key] = m
    memories["descriptors"]["words_per_descriptor"] = DESCRIPTOR_WORDS
    memories["descriptors"]["count"] = len(plan.array_layers)
    images = {name: {"memory": IMAGE_MEMORY[name], "words": mems[IMAGE_MEMORY[name]].used_words,
                     "files": mem_files[name]} for name in IMAGE_MEMORY}
    regions = []
    producers = {t: lp.index for lp in plan.layers for t in lp.layer.outputs}
    alias_of = {a["tensor"]: a["alias_of"] for a in plan.aliases}
    for t, (base, words) in sorted(plan.regions.items(), key=lambda kv: (kv[1][0], kv[0])):
        info = program.tensors[t]
        r = {"tensor": int(t), "name": str(info.name), "base": int(base), "words": int(words),
             "shape": [int(d) for d in info.shape]}
        if t in plan.strides:   # a CONCATENATION alias's input along C: pixels strided
            r["pixel_stride"] = int(plan.strides[t])
        if t in alias_of:
            r["alias_of"] = int(alias_of[t])
        elif t in producers:
            r["producer"] = int(producers[t])
        else:
            r["network_input"] = True
        regions.append(r)
    total_cycles = sum(int(r.get("cycles") or 0) for r in stats.values()
                       if isinstance(r.get("cycles"), (int, float)))
    man = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "producer": f"hwsim {version}",
        "hwsim_version": version,
        "model": {"file": model_file, "sha256": model_sha256},
        "inputs": inputs,
        "outputs": [{"tensor": int(t), "name": str(program.tensors[t].name),
                     "shape": [int(d) for d in program.tensors[t].shape],
                     "dtype": str(np.dtype(program.tensors[t].dtype))}
                    for t in program.outputs],
        "config_source": config_source,
        "config": config.to_dict(),
        "legalize": legalize,
        "host_tail": bool(host_tail),
        "exact": bool(exact),
        "formats": list(formats),
        "op_codes": dict(OP_CODES),
        "requant_schemes": {int(k): v for k, v in RTL_REQUANT_SCHEMES.items()},
        "descriptor_fields": list(DESCRIPTOR_FIELDS),
        "memories": memories,
        "images": images,
        "regions": regions,
        "aliases": plan.aliases,
        "layers": [_layer_entry(lp, plan, program, graph, stats, hr, report,
                                layer_files[lp.index]) for lp in plan.layers],
        "cycles_total": int(total_cycles),
        "headroom": headroom,
        "headroom_warnings": warnings,
        "vectors_file": VECTORS_FILE,
        "files": [{"path": rel, "bytes": int(n), "sha256": sha} for rel, n, sha in files],
    }
    if plan.fused:   # clamps "fused"/"input" (only then, so other manifests are unchanged)
        items = list(man.items())
        at = [k for k, _ in items].index("aliases") + 1
        man = dict(items[:at] + [("fused", plan.fused)] + items[at:])
    return plain(man)


# -- vectors.h5 ---------------------------------------------------------------------------------
def words_array(words, word_bits: int) -> np.ndarray:
    """Memory words as an array: the narrowest of uint8/16/32/64 that holds ``word_bits``, or
    for wider words uint64 ``[n, ceil(word_bits/64)]`` limbs, least significant first."""
    from ..hwif.pack import words_to_limbs
    limbs = words_to_limbs(words, word_bits)  # a WordList's own limbs, or checked ints
    if limbs.shape[1] > 1:
        return limbs
    dt = next(d for b, d in ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, np.uint64))
              if word_bits <= b)
    return limbs[:, 0].astype(dt)


def array_words(a: np.ndarray) -> list[int]:
    """Inverse of :func:`words_array`."""
    from ..hwif.pack import limbs_to_words
    a = np.asarray(a)
    if a.ndim == 1:
        return [int(v) for v in a.tolist()]
    return limbs_to_words(a.astype(np.uint64))


def _ds(group, key, data, **attrs):
    ds = group.create_dataset(key, data=np.ascontiguousarray(data), track_times=False)
    for k, v in attrs.items():
        ds.attrs[k] = "" if v is None else v
    return ds


def write_vectors_h5(path: str, plan: NetworkPlan, trace, images: dict, model_path: str,
                     version: str) -> None:
    import h5py

    from ..util import sha256_file
    mems = plan.memories
    with h5py.File(path, "w", libver=H5_LIBVER, track_order=True) as h:
        h.attrs["format"] = "hwsim-export-vectors"
        h.attrs["format_version"] = np.int64(FORMAT_VERSION)
        h.attrs["producer"] = f"hwsim {version}"
        h.attrs["model_file"] = os.path.basename(model_path)
        h.attrs["model_sha256"] = sha256_file(model_path)
        g = h.create_group("mem", track_order=True)
        for name, words in images.items():
            m = mems[IMAGE_MEMORY[name]]
            _ds(g, name, words_array(words, m.word_bits), memory=m.key,
                word_bits=np.int64(m.word_bits), lanes=np.int64(m.lanes),
                lane_order=m.lane_order, words=np.int64(m.used_words))
        lg = h.create_group("layers", track_order=True)
        for lp in plan.layers:
            grp = lg.create_group(os.path.basename(lp.folder), track_order=True)
            grp.attrs["index"] = np.int64(lp.index)
            grp.attrs["op"] = lp.op
            grp.attrs["accel_op"] = lp.accel_op
            grp.attrs["code"] = np.int64(lp.code)
            grp.attrs["host"] = bool(lp.host)
            grp.attrs["descriptor"] = np.int64(-1 if lp.position is None else lp.position)
            if not lp.host:
                _ds(grp, "descriptor", np.array([lp.fields.get(n, 0) for n in
                                                 DESCRIPTOR_FIELDS] +
                                                [0] * (DESCRIPTOR_WORDS - len(DESCRIPTOR_FIELDS)),
                                                dtype=np.int64).astype(np.int32))
            if lp.weight_matrix is not None:
                _ds(grp, "weights", lp.weight_matrix.astype(np.int8))
                _ds(grp, "weight_words", words_array(lp.weights, mems["weights"].word_bits))
                _ds(grp, "bias", np.asarray(lp.layer.params.bias if lp.layer.params.bias
                                            is not None else np.zeros(lp.weight_matrix.shape[0]),
                                            np.int32))
            if lp.table is not None:
                _ds(grp, "table", lp.table.astype(np.int64))
                _ds(grp, "table_words", words_array(lp.weights, mems["weights"].word_bits))
            if lp.requant is not None:
                _ds(grp, "requant_words", words_array(lp.requant, mems["requant"].word_bits))
            for kind, spec in lp.vectors.items():
                _ds(grp, kind, vector_values(lp, spec, trace),
                    tensor=np.int64(-1 if spec.tensor is None else spec.tensor),
                    name=str(spec.name), memory=spec.memory or "",
                    base=np.int64(-1 if spec.base is None else spec.base),
                    nhwc=np.asarray(nhwc(spec.shape), dtype=np.int64))


def read_vectors_h5(path: str) -> dict:
    """``{"attrs": {...}, "mem": {name: words}, "layers": {folder name: {key: array}}}``."""
    import h5py
    if not os.path.isfile(path):
        raise HwsimError(f"{path}: no such file")
    try:
        h = h5py.File(path, "r")
    except OSError as e:
        raise HwsimError(f"{path}: not an HDF5 file ({e})") from None
    with h:
        out = {"attrs": {k: (v.decode() if isinstance(v, bytes) else v)
                         for k, v in h.attrs.items()}, "mem": {}, "layers": {}}
        for name, ds in h.get("mem", {}).items():
            out["mem"][name] = ds[()]
        for name, grp in h.get("layers", {}).items():
            d = {k: grp[k][()] for k in grp}
            d["_attrs"] = {k: (v.decode() if isinstance(v, bytes) else v)
                           for k, v in grp.attrs.items()}
            out["layers"][name] = d
    return out
