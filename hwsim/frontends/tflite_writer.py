"""Write a graph IR as a ``.tflite`` flatbuffer (schema v3, one subgraph).

Used for the bundled example network, for single-op test models fed to TFLite's reference
kernels, and for models quantized by hwsim. Output is deterministic: same graph, same bytes.
"""
from __future__ import annotations

import os

import flatbuffers
import numpy as np

from ..ir import Graph, ModelError
from .tflite_schema import (DTYPE_TO_TENSOR_TYPE, ENUM_FIELDS, FILE_IDENTIFIER, OPTIONS_FOR_OP,
                            builtin_operator_codes, builtin_options_codes, camel_case,
                            options_fields, schema_module)


def _int_vector(b: flatbuffers.Builder, values, width: int = 4) -> int:
    values = [int(v) for v in values]
    b.StartVector(width, len(values), width)
    prepend = b.PrependInt32 if width == 4 else b.PrependInt64
    for v in reversed(values):
        prepend(v)
    return b.EndVector()


def _float_vector(b: flatbuffers.Builder, values) -> int:
    values = [float(v) for v in values]
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(v)
    return b.EndVector()


def _options(b: flatbuffers.Builder, op_type: str, attrs: dict) -> tuple[int, int]:
    oname = attrs.get("_options") or OPTIONS_FOR_OP.get(op_type)
    if oname is None:
        if attrs:
            raise ModelError(f"tflite writer: no options table known for op {op_type}")
        return 0, 0
    mod = schema_module(oname)
    fields = options_fields(oname)
    known = {f[0] for f in fields}
    unknown = set(attrs) - known - {"_options"}
    if unknown:
        raise ModelError(f"tflite writer: {op_type} has no option(s) {sorted(unknown)}; "
                         f"allowed: {sorted(known)}")
    vectors = {}
    for snake, camel, is_vector in fields:  # vectors must be built before the table starts
        if is_vector and snake in attrs:
            vectors[snake] = _int_vector(b, attrs[snake])
    getattr(mod, f"{oname}Start")(b)
    for snake, camel, is_vector in fields:
        if snake not in attrs:
            continue
        v = attrs[snake]
        if is_vector:
            v = vectors[snake]
        elif snake in ENUM_FIELDS and isinstance(v, str):
            rev = {name: code for code, name in ENUM_FIELDS[snake].items()}
            if v not in rev:
                raise ModelError(f"tflite writer: {op_type} option {snake}={v!r}; allowed "
                                 f"{sorted(rev)}")
            v = rev[v]
        getattr(mod, f"{oname}Add{camel}")(b, v)
    return builtin_options_codes()[oname], getattr(mod, f"{oname}End")(b)


def serialize_tflite(graph: Graph, description: str = "hwsim") -> bytes:
    b = flatbuffers.Builder(1024)
    opcodes_list: list[tuple[str, int]] = []
    for op in graph.ops:
        key = (op.type, op.version)
        if key not in opcodes_list:
            opcodes_list.append(key)
    codes = builtin_operator_codes()

    # Buffers: 0 is the empty sentinel; one buffer per constant tensor.
    buffer_data: list[bytes | None] = [None]
    tensor_buffer = []
    for t in graph.tensors:
        if t.data is not None:
            buffer_data.append(np.ascontiguousarray(t.data, dtype=t.dtype).tobytes())
            tensor_buffer.append(len(buffer_data) - 1)
        else:
            buffer_data.append(None)
            tensor_buffer.append(len(buffer_data) - 1)

    B = schema_module("Buffer")
    buf_offsets = []
    for data in buffer_data:
        vec = None
        if data:
            b.StartVector(1, len(data), 16)  # 16-byte alignment, as the converter does
            b.head = b.head - len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            vec = b.EndVector()
        B.BufferStart(b)
        if vec is not None:
            B.BufferAddData(b, vec)
        buf_offsets.append(B.BufferEnd(b))

    Q = schema_module("QuantizationParameters")
    T = schema_module("Tensor")
    tensor_offsets = []
    for t, bidx in zip(graph.tensors, tensor_buffer):
        name = b.CreateString(t.name)
        shape = _int_vector(b, t.shape)
        qoff = None
        if t.quant is not None:
            sc = _float_vector(b, t.quant.scales)
            zp = _int_vector(b, t.quant.zero_points, 8)
            Q.QuantizationParametersStart(b)
            Q.QuantizationParametersAddScale(b, sc)
            Q.QuantizationParametersAddZeroPoint(b, zp)
            Q.QuantizationParametersAddQuantizedDimension(b, int(t.quant.axis))
            qoff = Q.QuantizationParametersEnd(b)
        if t.dtype not in DTYPE_TO_TENSOR_TYPE:
            raise ModelError(f"tflite writer: tensor {t.index} '{t.name}' has dtype {t.dtype}")
        T.TensorStart(b)
        T.TensorAddShape(b, shape)
        T.TensorAddType(b, DTYPE_TO_TENSOR_TYPE[np.dtype(t.dtype)])
        T.TensorAddBuffer(b, bidx)
        T.TensorAddName(b, name)
        if qoff is not None:
            T.TensorAddQuantization(b, qoff)
        if t.is_variable:
            T.TensorAddIsVariable(b, True)
        tensor_offsets.append(T.TensorEnd(b))

    O = schema_module("Operator")
    op_offsets = []
    for op in graph.ops:
        ins = _int_vector(b, op.inputs)
        outs = _int_vector(b, op.outputs)
        otype, ooff = _options(b, op.type, op.attrs)
        O.OperatorStart(b)
        O.OperatorAddOpcodeIndex(b, opcodes_list.index((op.type, op.version)))
        O.OperatorAddInputs(b, ins)
        O.OperatorAddOutputs(b, outs)
        if otype:
            O.OperatorAddBuiltinOptionsType(b, otype)
            O.OperatorAddBuiltinOptions(b, ooff)
        op_offsets.append(O.OperatorEnd(b))

    S = schema_module("SubGraph")

    def table_vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    tv, ov = table_vector(tensor_offsets), table_vector(op_offsets)
    iv, outv = _int_vector(b, graph.inputs), _int_vector(b, graph.outputs)
    sname = b.CreateString(graph.name or "main")
    S.SubGraphStart(b)
    S.SubGraphAddTensors(b, tv)
    S.SubGraphAddInputs(b, iv)
    S.SubGraphAddOutputs(b, outv)
    S.SubGraphAddOperators(b, ov)
    S.SubGraphAddName(b, sname)
    sg = S.SubGraphEnd(b)

    OC = schema_module("OperatorCode")
    oc_offsets = []
    for name, version in opcodes_list:
        if name not in codes:
            raise ModelError(f"tflite writer: unknown builtin op {name}")
        code = codes[name]
        OC.OperatorCodeStart(b)
        OC.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        OC.OperatorCodeAddBuiltinCode(b, code)
        OC.OperatorCodeAddVersion(b, version)
        oc_offsets.append(OC.OperatorCodeEnd(b))

    M = schema_module("Model")
    ocv = table_vector(oc_offsets)
    sgv = table_vector([sg])
    bv = table_vector(buf_offsets)
    desc = b.CreateString(description)
    M.ModelStart(b)
    M.ModelAddVersion(b, 3)
    M.ModelAddOperatorCodes(b, ocv)
    M.ModelAddSubgraphs(b, sgv)
    M.ModelAddDescription(b, desc)
    M.ModelAddBuffers(b, bv)
    b.Finish(M.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def write_tflite(graph: Graph, path: str | os.PathLike, description: str = "hwsim") -> None:
    """Atomic write: a temp file beside the target, then rename."""
    from ..util import atomic_write_bytes
    atomic_write_bytes(path, serialize_tflite(graph, description))
