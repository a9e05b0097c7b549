"""Constant folding of the ONNX importer (hwsim.frontends.onnx_reader): a node whose inputs are
all constants (and ``Shape`` / ``Size`` of a static tensor, ``Constant``) is evaluated while
reading, its outputs become constants (``Constant``, ``ConstantOfShape``, ``Shape``,
``Unsqueeze`` of weights, ``Cast`` here; anything else through ``onnx.reference``). This runs on
ONNX nodes, before they have an IR form, so it is part of the import rather than an IR pass.
"""
from __future__ import annotations

import math

import numpy as np

from .onnx_layout import _Val

_ALWAYS_FOLD = ("Shape", "Size", "Constant")
MAX_CONSTANT_ELEMENTS = 2**31 - 1  # protobuf caps a model at 2 GB anyway


def _elements(dims) -> int | None:
    """The number of elements of ``dims``, None if a dimension is negative."""
    dims = [int(d) for d in dims]
    return None if any(d < 0 for d in dims) else math.prod(dims)


def _plain(text: str, limit: int = 40) -> str:
    """A name from the file for a message, unquoted: control characters escaped, cut."""
    t = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return t if len(t) <= limit else t[:limit - 3] + "..."


def _cut(e: Exception, limit: int = 160) -> str:
    text = f"{type(e).__name__}: {' '.join(str(e).split())}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _attrs(node) -> dict:
    from onnx import helper, numpy_helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if a.type == 4:  # TENSOR
            v = numpy_helper.to_array(a.t)
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        out[a.name] = v
    return out


class ConstantFolder:
    """Evaluates constant ONNX nodes, mixed into the importer (``vals``, ``model``, ``err``)."""

    # -- constant folding ------------------------------------------------------------------
    def fold(self, node, ins) -> None:
        a = _attrs(node)
        op = node.op_type
        arrays = [None if v is None else v.const for v in ins]
        out = None
        if op == "Shape":
            s = np.array(ins[0].shape, dtype=np.int64)
            start, end = a.get("start", 0), a.get("end", None)
            out = [s[start:end]]
        elif op == "Size":
            out = [np.array(int(np.prod(ins[0].shape)), dtype=np.int64)]
        elif op == "Constant":
            for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                if key in a:
                    v = a[key]
                    out = [np.asarray(v, dtype=np.float32 if "float" in key else
                                      (np.int64 if "int" in key else None))]
                    break
            if out is None:
                raise self.err(node, f"Constant with attributes {sorted(a)} is not supported")
        elif op == "ConstantOfShape":
            value = a.get("value", np.zeros(1, np.float32))
            shape = tuple(int(d) for d in np.asarray(arrays[0]).reshape(-1))
            n = _elements(shape)
            if n is None or n > MAX_CONSTANT_ELEMENTS:
                raise self.err(node, f"ConstantOfShape of shape {list(shape)[:8]} (at most "
                                     f"{MAX_CONSTANT_ELEMENTS:,} elements)")
            out = [np.full(shape, value.reshape(-1)[0], dtype=value.dtype)]
        elif op in ("Identity", "Dropout"):
            out = [arrays[0]] + ([np.ones(arrays[0].shape, bool)] if len(node.output) > 1 else [])
        elif op == "Unsqueeze":
            axes = a.get("axes") if "axes" in a else [int(x) for x in arrays[1]]
            x = arrays[0]
            r = x.ndim + len(axes)
            for ax in sorted(ax % r for ax in axes):
                x = np.expand_dims(x, ax)
            out = [x]
        elif op == "Cast":
            from onnx import helper
            out = [arrays[0].astype(helper.tensor_dtype_to_np_dtype(a["to"]))]
        else:
            out = self._ref_eval(node, arrays)
        for name, arr in zip(node.output, out):
            if name:
                arr = np.asarray(arr)
                self.vals[name] = _Val(tuple(arr.shape), const=arr)

    def _ref_eval(self, node, arrays):
        from onnx import TensorProto, helper
        from onnx.reference import ReferenceEvaluator
        names = [n for n in node.input]
        feeds, vinfos = {}, []
        for n, arr in zip(names, arrays):
            if n and arr is not None and n not in feeds:
                feeds[n] = arr
                vinfos.append(helper.make_tensor_value_info(
                    n, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)))
        outs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                for o in node.output if o]
        g = helper.make_graph([node], "fold", vinfos, outs)
        m = helper.make_model(g, opset_imports=list(self.model.opset_import))
        try:
            res = ReferenceEvaluator(m).run(None, feeds)
        except Exception as e:  # noqa: BLE001 -- any failure is the model's problem
            raise self.err(node, f"cannot fold this constant sub-graph ({type(e).__name__}: "
                                 f"{e})") from None
        it = iter(res)
        return [next(it) if o else None for o in node.output]
