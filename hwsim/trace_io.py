"""Trace files: every tensor and accumulator of one run, as HDF5.

The layout is the one of the test corpus' ``expected.h5`` (``../shared/corpus/README.md``),
so a trace written by ``hwsim run --trace`` can be compared with an expected file directly:

* ``tensors/<i>``: tensor ``i`` of the model (constants included), in index order. Attributes
  ``name``, ``tensor_index``, ``dtype``, ``shape``, ``scales`` (float32[]), ``zero_points``
  (int64[]), ``quantized_dimension``, and for quantized tensors ``scale``/``zero_point``
  (the first entries); ``kind`` is ``input``, ``output``, ``constant``, ``activation``,
  ``variable`` or ``other``.
* ``outputs/<k>``: model output ``k`` (same attributes).
* ``accumulators/<layer index>``: the int32 (int64 in 16x8 mode) accumulators of each
  CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer, before requantization; attributes
  ``layer``, ``op``, ``output_tensor``.
* Root attributes: ``format_version`` (1), ``model_file`` (the model's file name),
  ``model_sha256``, ``producer`` (``hwsim <version>``), ``requant_scheme``.

Files are byte-for-byte deterministic (creation order tracked, no timestamps, a fixed HDF5
format version) and written atomically (a temp file beside the target, then a rename).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from .ir import HwsimError, InputError

FORMAT_VERSION = 1
LIBVER = ("v110", "v110")  # fixed on-disk format: bytes do not change with the HDF5 default


def tensor_kinds(program, graph=None) -> dict[int, str]:
    """tensor index -> kind (``input``/``output``/``constant``/``activation``/...)."""
    kinds = {}
    produced = {t for layer in program.layers for t in layer.outputs}
    variables = set()
    if graph is not None:
        variables = {t.index for t in graph.tensors if getattr(t, "is_variable", False)}
    ins, outs = set(program.inputs), set(program.outputs)
    for info in program.tensors:
        i = info.index
        if i in ins:
            kinds[i] = "input"
        elif i in outs:
            kinds[i] = "output"
        elif i in variables:
            kinds[i] = "variable"
        elif i in program.constants:
            kinds[i] = "constant"
        elif i in produced:
            kinds[i] = "activation"
        else:
            kinds[i] = "other"
    return kinds


def _tensor_attrs(info, kind: str) -> dict:
    scales = np.asarray(info.scales, dtype=np.float32).reshape(-1)
    zps = np.asarray(info.zero_points, dtype=np.int64).reshape(-1)
    attrs = {
        "name": str(info.name).replace("\0", "\ufffd"),  # HDF5 strings end at a NUL
        "tensor_index": np.int64(info.index),
        "dtype": str(np.dtype(info.dtype)) if info.dtype is not None else "unknown",
        "shape": np.asarray(info.shape, dtype=np.int64).reshape(-1),
        "scales": scales,
        "zero_points": zps,
        "quantized_dimension": np.int64(info.axis),
    }
    if len(scales):
        attrs["scale"] = np.float64(scales[0])
        attrs["zero_point"] = np.int64(zps[0]) if len(zps) else np.int64(0)
    attrs["kind"] = kind
    return attrs


def _dataset(group, key: str, data: np.ndarray, attrs: dict):
    ds = group.create_dataset(key, data=np.ascontiguousarray(data), track_times=False)
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _check_target(path: str) -> None:
    if os.path.isdir(path):
        raise HwsimError(f"{path}: is a directory; give a file name for the trace")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise HwsimError(f"{path}: cannot write (folder {folder} does not exist)")


def write_trace_h5(path: str | os.PathLike, net, result, model_file: str | None = None) -> None:
    """Write the trace of ``result = net.run(x, trace=True)`` to ``path`` (atomically)."""
    import h5py

    from . import __version__
    from .util import atomic_output_path, sha256_file

    path = os.fspath(path)
    trace = getattr(result, "trace", None)
    if trace is None:
        raise ValueError("write_trace_h5 needs the result of net.run(..., trace=True)")
    program = net.program
    kinds = tensor_kinds(program, getattr(net, "graph", None))
    source = model_file if model_file is not None else (program.source or "")
    sha = ""
    if source and os.path.isfile(source):
        sha = sha256_file(source)
    _check_target(path)
    try:
        with atomic_output_path(path, suffix=".h5") as tmp:
            with h5py.File(tmp, "w", libver=LIBVER, track_order=True) as h:
                h.attrs["format_version"] = np.int64(FORMAT_VERSION)
                h.attrs["model_file"] = os.path.basename(source)
                h.attrs["model_sha256"] = sha
                h.attrs["producer"] = f"hwsim {__version__}"
                h.attrs["requant_scheme"] = str(program.requant_scheme)
                g = h.create_group("tensors", track_order=True)
                for info in program.tensors:
                    if info.index in trace.tensors:
                        _dataset(g, str(info.index), trace.tensors[info.index],
                                 _tensor_attrs(info, kinds[info.index]))
                g = h.create_group("outputs", track_order=True)
                for k, (i, y) in enumerate(zip(program.outputs, result.outputs)):
                    _dataset(g, str(k), y, _tensor_attrs(program.tensors[i], "output"))
                g = h.create_group("accumulators", track_order=True)
                layers = {layer.index: layer for layer in program.layers}
                for li in sorted(trace.accumulators):
                    layer = layers.get(li)
                    attrs = {"layer": np.int64(li),
                             "op": layer.op if layer is not None else "",
                             "output_tensor": np.int64(layer.outputs[0] if layer else -1)}
                    _dataset(g, str(li), trace.accumulators[li], attrs)
    except OSError as e:
        raise HwsimError(f"{path}: cannot write the trace ({e.strerror or e})") from None


@dataclass
class TraceFile:
    """The content of a trace file (or of a corpus ``expected.h5``, case 0)."""
    attrs: dict
    tensors: dict[int, np.ndarray] = field(default_factory=dict)
    tensor_attrs: dict[int, dict] = field(default_factory=dict)
    outputs: list[np.ndarray] = field(default_factory=list)
    output_attrs: list[dict] = field(default_factory=list)
    accumulators: dict[int, np.ndarray] = field(default_factory=dict)
    accumulator_attrs: dict[int, dict] = field(default_factory=dict)

    def by_name(self, name: str) -> np.ndarray:
        for i, a in self.tensor_attrs.items():
            if a.get("name") == name:
                return self.tensors[i]
        raise KeyError(name)


MAX_DATASET_BYTES = 1 << 30  # one tensor of a trace; mobilenet_v2's largest is ~1.6 MB
_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")  # a dataset name in tensors/ outputs/ accumulators/
_GROUPS = ("tensors", "outputs", "accumulators")
# attributes compare and by_name use, and the type each must have
_ATTR_TYPES = {"name": str, "kind": str, "op": str, "dtype": str, "output_tensor": int,
               "layer": int, "tensor_index": int}


def _attrs(obj, path: str, where: str) -> dict:
    """An HDF5 object's attributes as Python values (bytes decoded, numpy scalars unwrapped);
    the attributes hwsim uses must have their type."""
    from .yamlio import brief
    out = {}
    try:
        items = list(obj.attrs.items())
    except Exception as e:  # noqa: BLE001 -- h5py raises OSError/RuntimeError/TypeError/...
        raise InputError(f"{path}: {where}: unreadable attributes ({_h5_reason(e)})") from None
    for k, v in items:
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, np.generic):
            v = v.item()
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
        want = _ATTR_TYPES.get(k)
        if want is not None and not (isinstance(v, want) and not isinstance(v, bool)):
            raise InputError(f"{path}: {where}: attribute '{k}' is {brief(v, 40)}, not "
                             f"{'a string' if want is str else 'an integer'}")
        out[k] = v
    return out


def _h5_reason(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _link_text(link) -> str:
    import h5py
    where = "another file" if isinstance(link, h5py.ExternalLink) else "another object"
    return f"is a link to {where}; a trace holds its data itself (no link is followed)"


def _group(h, name: str, path: str):
    import h5py
    link = h.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise InputError(f"{path}: /{name} {_link_text(link)}")
    g = h[name]
    if not isinstance(g, h5py.Group):
        raise InputError(f"{path}: /{name} is a {type(g).__name__.lower()}, not a group (a "
                         f"trace has groups {', '.join(_GROUPS)})")
    return g


def _read_dataset(g, group: str, key: str, path: str):
    """``(index, array, attributes)`` of ``group/key``, checked before anything is read."""
    import h5py
    where = f"{group}/{key}"
    if not _INDEX.fullmatch(key):
        from .yamlio import brief
        raise InputError(f"{path}: {group}/ holds {brief(key, 40)}, which is not a trace entry "
                         f"(entries are named by a tensor or layer index)")
    link = g.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise InputError(f"{path}: {where} {_link_text(link)}")
    ds = g[key]
    if not isinstance(ds, h5py.Dataset):
        raise InputError(f"{path}: {where} is a {type(ds).__name__.lower()}, not a dataset")
    if ds.dtype.kind not in "biuf":
        raise InputError(f"{path}: {where} holds {ds.dtype}, not numbers")
    nbytes = int(ds.size or 0) * ds.dtype.itemsize
    if nbytes > MAX_DATASET_BYTES:
        raise InputError(f"{path}: {where} declares {list(ds.shape)} x {ds.dtype} "
                         f"({nbytes:,} bytes; the limit for one tensor is "
                         f"{MAX_DATASET_BYTES:,})")
    return int(key), ds[()], _attrs(ds, path, where)


def read_trace_h5(path: str | os.PathLike) -> TraceFile:
    """Read a trace file written by :func:`write_trace_h5` (or a corpus ``expected.h5``).

    Raises :class:`InputError` for anything else: a file that is not HDF5 or is damaged, an
    HDF5 file without ``tensors/`` or ``outputs/`` data, entries that are not numeric
    datasets named by an index, links (a trace never makes hwsim read another file), a
    dataset larger than ``MAX_DATASET_BYTES``, or attributes of the wrong type.
    """
    import h5py
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file" if not os.path.exists(path)
                         else f"{path}: is not a file")
    try:
        h = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not an HDF5 trace file ({_h5_reason(e)})") from None
    try:
        with h:
            return _read_trace(h, path)
    except (OSError, RuntimeError, KeyError) as e:  # h5py's reports of a damaged file
        raise InputError(f"{path}: damaged HDF5 file ({_h5_reason(e)})") from None


def _read_trace(h, path: str) -> TraceFile:
    groups = {name: _group(h, name, path) for name in _GROUPS}
    if groups["tensors"] is None and groups["outputs"] is None:
        raise InputError(f"{path}: not an hwsim trace (no tensors/ or outputs/ group; traces "
                         f"come from 'hwsim run --trace' or are a corpus expected.h5)")
    tf = TraceFile(_attrs(h, path, "/"))
    found = {}
    for name, g in groups.items():
        found[name] = sorted((_read_dataset(g, name, key, path) for key in g) if g else [],
                             key=lambda e: e[0])
    for i, data, attrs in found["tensors"]:
        tf.tensors[i] = data
        tf.tensor_attrs[i] = attrs
    for _, data, attrs in found["outputs"]:
        tf.outputs.append(data)
        tf.output_attrs.append(attrs)
    for i, data, attrs in found["accumulators"]:
        tf.accumulators[i] = data
        tf.accumulator_attrs[i] = attrs
    if not tf.tensors and not tf.outputs:
        raise InputError(f"{path}: not an hwsim trace (its tensors/ and outputs/ groups are "
                         f"empty)")
    return tf
