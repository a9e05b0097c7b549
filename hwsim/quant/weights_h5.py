"""hwsim's INT8 weight file (HDF5): the integer parameters of every MAC layer of a quantized
graph, with the scales and zero points needed to interpret them. Layout (format version 1):

    /                       attrs: format = "hwsim-int8-weights", version = 1, source,
                                   method, weight_method, samples
    /layers/<NNN>_<name>/   one group per CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, in
                            graph order (NNN = op index, zero padded; name = output tensor,
                            '/' replaced by '.')
        weights             int8, OHWI (conv), [1, KH, KW, C] (depthwise), [out, in] (FC)
        bias                int32 (int64 for 16-bit activations), one per output channel
        weight_scales       float32 [C] (or [1]: per tensor)
        weight_zero_points  int64, all 0 (symmetric)
        bias_scales         float32 [C]: input_scale * weight_scale
        attrs: op, name, layout ("OHWI" | "1HWC" | "OI"), quantized_axis (-1: per tensor),
               weight_bits, input, input_scale, input_zero_point, input_dtype,
               output, output_scale, output_zero_point, output_dtype,
               fused_activation, padding, stride_h, stride_w, dilation_h, dilation_w,
               depth_multiplier (depthwise)
    /activations            a table (compound dataset), one row per activation tensor:
        name (utf-8), index, scale (float32), zero_point (int64), dtype, lo, hi (float64,
        the calibrated range), method

Real values: ``real = scale * (q - zero_point)`` (per channel along ``quantized_axis``).
"""
from __future__ import annotations

import numpy as np

from ..ir import HwsimError

FORMAT = "hwsim-int8-weights"
VERSION = 1
_LAYOUT = {"CONV_2D": "OHWI", "DEPTHWISE_CONV_2D": "1HWC", "FULLY_CONNECTED": "OI"}

__all__ = ["write_weights_h5", "read_weights_h5", "FORMAT", "VERSION"]


def _group_name(k: int, name: str) -> str:
    return f"{k:04d}_" + (name.replace("/", ".") or "layer")


def write_weights_h5(result, path) -> None:
    """Write the MAC layers of a :class:`hwsim.quant.quantize.QuantResult` (or of an integer
    Graph) to ``path`` (atomic)."""
    import h5py

    from ..util import atomic_output_path
    graph = getattr(result, "graph", result)
    acts = getattr(result, "activations", {}) or {}
    opts = getattr(result, "options", None)
    winfo = getattr(result, "weights", None) or {}
    with atomic_output_path(path, ".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["source"] = graph.source or ""
            f.attrs["method"] = getattr(opts, "method", "")
            f.attrs["weight_method"] = getattr(opts, "weights", "")
            f.attrs["samples"] = int(getattr(result, "samples", 0))
            layers = f.create_group("layers")
            for op in graph.ops:
                if op.type not in _LAYOUT:
                    continue
                x, w_i = op.inputs[0], op.inputs[1]
                b_i = op.inputs[2] if len(op.inputs) > 2 else -1
                wt, xt, yt = graph.tensors[w_i], graph.tensors[x], graph.tensors[op.outputs[0]]
                if wt.quant is None or xt.quant is None or yt.quant is None:
                    raise HwsimError(f"{path}: op {op.index} ({op.type}) is not quantized")
                grp = layers.create_group(_group_name(op.index, yt.name))
                grp.create_dataset("weights", data=wt.data)
                if b_i >= 0:
                    bt = graph.tensors[b_i]
                    grp.create_dataset("bias", data=bt.data)
                    grp.create_dataset("bias_scales",
                                       data=np.asarray(bt.quant.scales, np.float32)
                                       if bt.quant is not None else np.zeros(0, np.float32))
                grp.create_dataset("weight_scales", data=np.asarray(wt.quant.scales, np.float32))
                grp.create_dataset("weight_zero_points",
                                   data=np.asarray(wt.quant.zero_points, np.int64))
                a = op.attrs
                grp.attrs.update({
                    "op": op.type, "name": yt.name, "layout": _LAYOUT[op.type],
                    "quantized_axis": int(wt.quant.axis) if len(wt.quant.scales) > 1 else -1,
                    "weight_bits": int(winfo[op.index].bits) if op.index in winfo else 8,
                    "input": xt.name, "input_scale": float(xt.quant.scales[0]),
                    "input_zero_point": int(xt.quant.zero_points[0]),
                    "input_dtype": str(np.dtype(xt.dtype)),
                    "output": yt.name, "output_scale": float(yt.quant.scales[0]),
                    "output_zero_point": int(yt.quant.zero_points[0]),
                    "output_dtype": str(np.dtype(yt.dtype)),
                    "fused_activation": a.get("fused_activation_function", "NONE"),
                    "padding": a.get("padding", ""),
                    "stride_h": int(a.get("stride_h", 1)), "stride_w": int(a.get("stride_w", 1)),
                    "dilation_h": int(a.get("dilation_h_factor", 1)),
                    "dilation_w": int(a.get("dilation_w_factor", 1)),
                })
                if op.type == "DEPTHWISE_CONV_2D":
                    grp.attrs["depth_multiplier"] = int(a.get("depth_multiplier", 1))
            rows = []
            for t in graph.tensors:
                if t.data is not None or t.quant is None:
                    continue
                info = acts.get(t.index)
                rows.append((t.name, t.index, float(t.quant.scales[0]), int(t.quant.zero_points[0]),
                             str(np.dtype(t.dtype)),
                             float(info.lo) if info else float("nan"),
                             float(info.hi) if info else float("nan"),
                             info.method if info else ""))
            dt = np.dtype([("name", h5py.string_dtype("utf-8")), ("index", np.int64),
                           ("scale", np.float32), ("zero_point", np.int64),
                           ("dtype", h5py.string_dtype("utf-8")), ("lo", np.float64),
                           ("hi", np.float64), ("method", h5py.string_dtype("utf-8"))])
            f.create_dataset("activations", data=np.array(rows, dtype=dt))


def read_weights_h5(path) -> dict:
    """Read a weight file: ``{"attrs": {...}, "layers": [{"group", "weights", "bias",
    "weight_scales", ..., attrs...}], "activations": [{"name", "scale", ...}]}``."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise HwsimError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise HwsimError(f"{path}: not an hwsim INT8 weight file (format "
                             f"{f.attrs.get('format')!r})")
        out = {"attrs": {k: (v.decode() if isinstance(v, bytes) else
                             (v.item() if hasattr(v, "item") else v))
                         for k, v in f.attrs.items()}, "layers": [], "activations": []}
        for key in sorted(f["layers"]):
            g = f["layers"][key]
            d = {"group": key}
            for ds in g:
                d[ds] = g[ds][()]
            for k, v in g.attrs.items():
                d[k] = v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item")
                                                                 else v)
            out["layers"].append(d)
        for row in f["activations"][()]:
            out["activations"].append({
                "name": row["name"].decode() if isinstance(row["name"], bytes) else row["name"],
                "index": int(row["index"]), "scale": float(row["scale"]),
                "zero_point": int(row["zero_point"]),
                "dtype": row["dtype"].decode() if isinstance(row["dtype"], bytes) else row["dtype"],
                "lo": float(row["lo"]), "hi": float(row["hi"]),
                "method": row["method"].decode() if isinstance(row["method"], bytes)
                else row["method"]})
    return out
