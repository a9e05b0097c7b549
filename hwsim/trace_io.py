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
        "name": str(info.name),
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


def _attrs(obj) -> dict:
    out = {}
    for k, v in obj.attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def read_trace_h5(path: str | os.PathLike) -> TraceFile:
    """Read a trace file written by :func:`write_trace_h5` (or a corpus ``expected.h5``)."""
    import h5py
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file" if not os.path.exists(path)
                         else f"{path}: is not a file")
    try:
        h = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not an HDF5 trace file ({e})") from None
    with h:
        tf = TraceFile(_attrs(h))
        if "tensors" in h:
            for key, ds in h["tensors"].items():
                i = int(key)
                tf.tensors[i] = ds[()]
                tf.tensor_attrs[i] = _attrs(ds)
            tf.tensors = dict(sorted(tf.tensors.items()))
            tf.tensor_attrs = dict(sorted(tf.tensor_attrs.items()))
        if "outputs" in h:
            for key in sorted(h["outputs"], key=int):
                tf.outputs.append(h["outputs"][key][()])
                tf.output_attrs.append(_attrs(h["outputs"][key]))
        if "accumulators" in h:
            for key in sorted(h["accumulators"], key=int):
                tf.accumulators[int(key)] = h["accumulators"][key][()]
                tf.accumulator_attrs[int(key)] = _attrs(h["accumulators"][key])
    return tf
