"""Read a ``.tflite`` flatbuffer into the graph IR. Translation only: nothing is computed here."""
from __future__ import annotations

import os

import numpy as np

from ..ir import Graph, ModelError, Op, QuantParams, Tensor
from ..yamlio import brief
from .tflite_schema import (ENUM_FIELDS, FILE_IDENTIFIER, OP_ARITY, POSITIVE_OPTIONS,
                            TENSOR_TYPES, builtin_operator_names, builtin_options_names,
                            options_fields, schema_class)

MAX_TENSOR_ELEMENTS = 2**31 - 1  # TFLite's own flat sizes are int32


def read_tflite(path: str | os.PathLike) -> Graph:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a .tflite file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    return parse_tflite(buf, path)


def parse_tflite(buf: bytes, source: str = "<bytes>") -> Graph:
    if len(buf) < 8 or buf[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{source}: not a TFLite flatbuffer (file identifier "
                         f"{bytes(buf[4:8])!r}, expected {FILE_IDENTIFIER!r})")
    try:
        graph = _parse(buf, source)
    except ModelError:
        raise
    except Exception as e:  # a truncated or corrupt flatbuffer raises anything from struct/index
        raise ModelError(f"{source}: corrupt or truncated TFLite file ({type(e).__name__}: {e})") \
            from None
    validate_graph(graph)
    return graph


def _parse(buf: bytes, source: str) -> Graph:
    Model = schema_class("Model")
    model = Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{source}: the model has no subgraph")
    sg = model.Subgraphs(0)
    op_names = builtin_operator_names()

    opcodes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = op_names.get(code)
        if code == 32:  # CUSTOM
            custom = oc.CustomCode()
            name = f"CUSTOM:{custom.decode() if custom else '?'}"
        opcodes.append((name or f"UNKNOWN_BUILTIN_{code}", oc.Version()))

    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        name = (t.Name() or b"").decode("utf-8", "replace")
        ttype = t.Type()
        dtype = TENSOR_TYPES.get(ttype)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        quant = None
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            scales = np.asarray(q.ScaleAsNumpy(), dtype=np.float32).copy()
            zps = (np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64).copy()
                   if q.ZeroPointLength() else np.zeros(len(scales), np.int64))
            if len(zps) != len(scales):
                if len(zps) == 1:
                    zps = np.repeat(zps, len(scales))
                else:
                    raise ModelError(f"{source}: tensor {i} {_q(name)} has {len(scales)} scales "
                                     f"but {len(zps)} zero points")
            quant = QuantParams(scales, zps, int(q.QuantizedDimension()))
        data = None
        bidx = t.Buffer()
        if bidx > 0 and not t.IsVariable():
            if bidx >= model.BuffersLength():
                raise ModelError(f"{source}: tensor {i} {_q(name)} refers to buffer {bidx}, "
                                 f"but the file has {model.BuffersLength()}")
            b = model.Buffers(bidx)
            raw = None
            if b.DataLength() > 0:
                raw = b.DataAsNumpy().tobytes()
            elif hasattr(b, "Offset") and b.Offset() > 1:
                off, size = b.Offset(), b.Size()
                if off + size > len(buf):
                    raise ModelError(f"{source}: buffer {bidx} lies beyond the end of the file")
                raw = bytes(buf[off:off + size])
            if raw is not None:
                if dtype is None:
                    raise ModelError(f"{source}: constant tensor {i} {_q(name)} has unsupported "
                                     f"type code {ttype}")
                n = int(np.prod(shape)) if shape else 1
                if len(raw) != n * dtype.itemsize:
                    raise ModelError(f"{source}: constant tensor {i} {_q(name)} holds {len(raw)} "
                                     f"bytes, its shape {list(shape)} x {dtype} needs "
                                     f"{n * dtype.itemsize}")
                data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        tensors.append(Tensor(i, name, shape, dtype, quant, data, bool(t.IsVariable())))

    ops = []
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        idx = o.OpcodeIndex()
        if idx >= len(opcodes):
            raise ModelError(f"{source}: operator {i} uses opcode {idx}, the file has "
                             f"{len(opcodes)}")
        name, version = opcodes[idx]
        inputs = [int(v) for v in o.InputsAsNumpy()] if o.InputsLength() else []
        outputs = [int(v) for v in o.OutputsAsNumpy()] if o.OutputsLength() else []
        for t in inputs + outputs:
            if t >= len(tensors) or t < -1:
                raise ModelError(f"{source}: operator {i} ({name}) refers to tensor {t}, the "
                                 f"subgraph has {len(tensors)}")
        ops.append(Op(i, name, inputs, outputs, _read_options(o), version))

    inputs = [int(v) for v in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outputs = [int(v) for v in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    gname = (sg.Name() or b"").decode("utf-8", "replace")
    desc = (model.Description() or b"").decode("utf-8", "replace")
    return Graph(tensors, ops, inputs, outputs, gname, source, desc)


def _read_options(o) -> dict:
    otype = o.BuiltinOptionsType()
    if otype == 0:
        return {}
    oname = builtin_options_names().get(otype)
    table = o.BuiltinOptions()
    if oname is None or table is None:
        return {}
    cls = schema_class(oname)
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    attrs = {}
    for snake, camel, is_vector in options_fields(oname):
        if is_vector:
            n = getattr(opts, camel + "Length")()
            attrs[snake] = [int(v) for v in getattr(opts, camel + "AsNumpy")()] if n else []
        else:
            v = getattr(opts, camel)()
            if snake in ENUM_FIELDS and isinstance(v, int):
                v = ENUM_FIELDS[snake].get(v, v)
            elif isinstance(v, (bool, np.bool_)):
                v = bool(v)
            elif isinstance(v, (np.floating, float)):
                v = float(np.float32(v))
            elif isinstance(v, (np.integer, int)):
                v = int(v)
            attrs[snake] = v
    return attrs


def validate_graph(g: Graph) -> None:
    """Refuse a graph that no TFLite interpreter would run, before anything reads it: bad
    shapes, quantization that cannot be computed with, options out of range, ops with the
    wrong number of tensors, and a data flow in which an op reads a tensor that nothing has
    written yet (TFLite stores ops in execution order)."""
    src = g.source or "model"
    n = len(g.tensors)
    for t in g.tensors:
        what = f"{src}: tensor {t.index} {_q(t.name)}"
        # TFLite allows empty tensors (a STRIDED_SLICE may select nothing); a graph input
        # of size 0 is refused, since no input file could hold it
        if any(d < 0 for d in t.shape) or (t.index in g.inputs and any(d == 0 for d in t.shape)):
            raise ModelError(f"{what} has shape {list(t.shape)}: dimensions must be >= 1 (0 "
                             f"only in a constant or an op's empty result)")
        if int(np.prod(t.shape, dtype=object)) > MAX_TENSOR_ELEMENTS:
            raise ModelError(f"{what} has shape {list(t.shape)}: more than "
                             f"{MAX_TENSOR_ELEMENTS:,} elements")
        q = t.quant
        if q is not None:
            bad = [float(v) for v in q.scales if not (np.isfinite(v) and v > 0)]
            if bad:
                raise ModelError(f"{what}: quantization scale {bad[0]} is not a positive finite "
                                 f"number")
            if t.dtype is not None and t.dtype.kind in "iu":
                info = np.iinfo(t.dtype)
                out = [int(z) for z in q.zero_points if not info.min <= int(z) <= info.max]
                if out:
                    raise ModelError(f"{what}: zero point {out[0]} is outside the {t.dtype} "
                                     f"range [{info.min}, {info.max}]")
    for name, lst in (("input", g.inputs), ("output", g.outputs)):
        for t in lst:
            if not 0 <= t < n:
                raise ModelError(f"{src}: graph {name} {t} is not a tensor (the subgraph has {n})")
    written = set(g.inputs) | {t.index for t in g.tensors if t.data is not None or t.is_variable}
    for op in g.ops:
        what = f"{src}: op {op.index} ({op.type})"
        arity = OP_ARITY.get(op.type)
        if arity is not None:
            lo, hi, n_out = arity
            if len(op.inputs) < lo or (hi is not None and len(op.inputs) > hi):
                want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
                raise ModelError(f"{what} has {len(op.inputs)} inputs, it takes {want}")
            if len(op.outputs) != n_out:
                raise ModelError(f"{what} has {len(op.outputs)} outputs, it makes {n_out}")
            if any(t < 0 for t in op.inputs[:lo]):
                raise ModelError(f"{what}: input {op.inputs[:lo].index(-1)} is required but "
                                 f"absent (-1)")
        for k in POSITIVE_OPTIONS:
            v = op.attrs.get(k)
            if isinstance(v, int) and v < 1:
                raise ModelError(f"{what}: option {k}={v}, must be >= 1")
        for t in op.inputs:
            if t >= 0 and t not in written:
                raise ModelError(f"{what} reads tensor {t} {_q(g.tensors[t].name)}, which is "
                                 f"not a graph input, not a constant and not written by an "
                                 f"earlier op")
        for t in op.outputs:
            if t < 0:
                raise ModelError(f"{what}: output tensor index {t}")
            if t in written:
                raise ModelError(f"{what} writes tensor {t} {_q(g.tensors[t].name)}, which "
                                 f"is already a graph input, a constant or another op's output")
            written.add(t)
    produced = set(g.inputs) | {t for op in g.ops for t in op.outputs}
    for t in g.outputs:
        if t not in produced:
            raise ModelError(f"{src}: graph output {t} {_q(g.tensors[t].name)} is not "
                             f"written by any op")


def _q(name: str) -> str:
    """A tensor name from the file, quoted for a message: escaped, cut after 64 characters."""
    return brief(name, 64)
