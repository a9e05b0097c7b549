"""Read a *quantized* ONNX model — QDQ (QuantizeLinear / DequantizeLinear around float ops, as
onnxruntime.quantization, Quark, NNCF or Brevitas write it) or ORT's QOperator format
(QLinearConv, QGemm, QLinearAdd, ...) — into hwsim's graph IR, as the integer layers
onnxruntime's CPU execution provider runs (docs/onnx.md).

Both formats become the same ``ORT_*`` ops (lowered by hwsim.lower.onnxrt with ORT's float32
requantization):

* a float op whose activation inputs are DequantizeLinear outputs and whose output feeds one
  QuantizeLinear is the QLinear op ORT's QDQ fusion makes of it (Conv -> QLinearConv, Gemm and
  MatMul -> QGemm, Add -> QLinearAdd, AveragePool, GlobalAveragePool, Concat, Softmax);
* MaxPool, Reshape, Flatten, Transpose, Squeeze and Unsqueeze run on the integers (ORT drops
  their DequantizeLinear / QuantizeLinear pair); a QuantizeLinear with other parameters than the
  DequantizeLinear before it is a requantizing table, as DQ -> Q computes;
* QuantizeLinear of a float graph input and DequantizeLinear of a graph output become
  ``ORT_QUANTIZE`` / ``ORT_DEQUANTIZE`` (float32, as MLAS computes them).

Layout: NHWC inside, as :mod:`hwsim.frontends.onnx_reader`, but the graph inputs and outputs
keep ONNX's layout (an input array for onnxruntime is the input for ``hwsim run``; the integer
transpose to NHWC is a layer of its own); ``graph.value_map``: ONNX value -> (IR tensor, perm)
for every value with an IR tensor. A float op between DequantizeLinear and QuantizeLinear that ORT would not fuse (e.g.
BatchNormalization) has no integer form: the importer refuses it, naming the node.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, ModelError, Op, QuantParams, Tensor
from ..util import cpu_flags
from ..yamlio import brief

NHWC = (0, 2, 3, 1)
F32 = np.dtype(np.float32)
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QGemm", "QLinearMatMul",
             "QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool",
             "QLinearConcat", "QLinearSoftmax", "QLinearLeakyRelu", "QLinearSigmoid"}
# Ops on quantized data that ORT runs on the integers (QDQ pairs around them are dropped).
MOVE_OPS = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity",
            "Dropout", "Resize")
# Float ops that ORT's QDQ fusion turns into a QLinear op.
FUSED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Mul", "AveragePool", "GlobalAveragePool",
             "Concat", "Softmax", "LeakyRelu", "Sigmoid")
# Elementwise float ops ORT runs in float32 when it does not fuse them (Sum always; Add when
# its output is not quantized once; Relu / Clip / Mul between DQ and Q).
FLOAT_OPS = ("Sum", "Add", "Mul", "Relu", "Clip", "AveragePool")




def nchwc_block(flags: frozenset[str]) -> int:
    """ORT's NCHWc block on a CPU with these feature flags (MlasNchwcGetBlockSize: 16 with
    AVX-512F, 8 with AVX2; 0: no NCHWc transform): float pools whose channels are a multiple
    of it run in NCHWc layout, summed row by row (docs/onnx.md)."""
    return 16 if "avx512f" in flags else 8 if "avx2" in flags else 0


# the machine ORT runs on is this one: its pools' summation order follows this CPU
NCHWC_BLOCK = nchwc_block(cpu_flags())
MAX_ELEMENTS = 2**31 - 1  # a run-time tensor's elements (numpy and the kernels index them)


def is_quantized(model) -> bool:
    """Whether the model holds QDQ or QOperator nodes."""
    return any(n.op_type in QUANT_OPS for n in model.graph.node)


@dataclass
class _Act:
    """A run-time value: IR tensor ``t`` == onnx value.transpose(perm)."""
    t: int
    perm: tuple
    shape: tuple          # ONNX shape


@dataclass
class _DQ:
    """A DequantizeLinear output: the quantized value ``src`` (an _Act) seen as float."""
    src: _Act


@dataclass
class _Float:
    """A float run-time value (a graph input, a DequantizeLinear computed, a float op's
    output): IR tensor ``t`` == onnx value.transpose(perm)."""
    t: int
    perm: tuple
    shape: tuple


@dataclass
class _QConst:
    """A constant quantized operand of an Add / Mul: integers ``q``, ``scale``, ``zp``."""
    q: np.ndarray
    scale: np.float32
    zp: int

    @property
    def shape(self) -> tuple:
        return tuple(self.q.shape)


@dataclass
class _Pending:
    """A float op on dequantized inputs, waiting for the QuantizeLinear of its output."""
    node: object
    shape: tuple


def _scalar_span(a: tuple, b: tuple, out: tuple) -> str:
    """Which input ORT's broadcaster (InputBroadcaster) hands to MLAS as a scalar per span:
    "b" ("a") when b (a) is broadcast along the innermost axis where the output is longer than
    1, else "" (both spans full)."""
    for k in range(len(out) - 1, -1, -1):
        if out[k] == 1:
            continue
        if b[k] == 1 and a[k] != 1:
            return "b"
        if a[k] == 1 and b[k] != 1:
            return "a"
        return ""
    return ""


def _ident(n: int) -> tuple:
    return tuple(range(n))


class _QImporter:
    def __init__(self, model, source: str, batch: int):
        from .onnx_fold import _attrs
        self.attrs = _attrs
        self.model, self.g, self.source, self.batch = model, model.graph, source, int(batch)
        self.opset = max([int(i.version) for i in model.opset_import
                          if i.domain in ("", "ai.onnx")] or [13])
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.vals: dict = {}      # onnx name -> np.ndarray (const) | _Act | _DQ | _Pending
        self.quant: dict[int, tuple] = {}  # IR tensor -> (scale, zp)
        self.names: set[str] = set()
        self.uses: dict[str, list] = {}
        for node in self.g.node:
            for k, n in enumerate(node.input):
                if n:
                    self.uses.setdefault(n, []).append((node, k))
        self.outputs = [o.name for o in self.g.output]

    # -- helpers ---------------------------------------------------------------------------
    def err(self, node, msg: str) -> ModelError:
        what = f"node {brief(node.name or node.output[0], 64)} ({node.op_type})" if node else ""
        return ModelError(f"{self.source}: {what}: {msg}" if what else f"{self.source}: {msg}")

    def add_tensor(self, name, shape, dtype, q=None, data=None) -> int:
        if data is None and (any(int(d) <= 0 for d in shape) or
                             int(np.prod([int(d) for d in shape], dtype=object)) > MAX_ELEMENTS):
            raise ModelError(f"{self.source}: tensor {brief(name, 64)} of shape "
                             f"{list(shape)[:8]}: every dimension >= 1, at most "
                             f"{MAX_ELEMENTS:,} elements")
        base, k = name or "t", 1
        while name in self.names or not name:
            name = f"{base}_{k}"
            k += 1
        self.names.add(name)
        qp = None
        if q is not None:
            qp = QuantParams(np.array([q[0]], np.float32), np.array([q[1]], np.int64))
        self.tensors.append(Tensor(len(self.tensors), name, tuple(int(d) for d in shape),
                                   np.dtype(dtype), qp, data))
        if q is not None:
            self.quant[len(self.tensors) - 1] = q
        return len(self.tensors) - 1

    def const_tensor(self, name, arr) -> int:
        arr = np.ascontiguousarray(arr)
        return self.add_tensor(name, arr.shape, arr.dtype, data=arr)

    def emit(self, op_type, inputs, name, shape, dtype, q=None, **attrs) -> int:
        y = self.add_tensor(name, shape, dtype, q)
        self.ops.append(Op(len(self.ops), op_type, list(inputs), [y], attrs))
        return y

    def const(self, node, k, what):
        n = node.input[k] if k < len(node.input) else ""
        if not n:
            return None
        v = self.vals.get(n)
        if not isinstance(v, np.ndarray):
            raise self.err(node, f"input {k} ({what}) must be a constant")
        return v

    def scalar(self, node, k, what, default=0):
        v = self.const(node, k, what)
        if v is None:
            if "scale" in what:
                raise self.err(node, f"input {k} ({what}) is missing")
            return default
        v = np.asarray(v).reshape(-1)
        if v.size != 1:
            raise self.err(node, f"{what} must be one value (per-tensor), got {v.size}")
        self.check_qparam(node, what, v)
        return v[0]

    def check_qparam(self, node, what, v) -> None:
        """A scale must be finite and > 0 (float32); a zero point int8 or uint8."""
        v = np.asarray(v)
        if "scale" in what:
            if v.dtype.kind != "f" or not np.all(np.isfinite(v)) or np.any(v <= 0) or \
                    np.any(np.float32(v) <= 0):
                raise self.err(node, f"{what} {v.reshape(-1)[:4].tolist()}: a scale must be a "
                                     f"finite float > 0")
        elif "zero" in what and v.dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise self.err(node, f"{what} of type {v.dtype}: int8 or uint8 zero points are "
                                 f"supported")

    def act(self, node, k) -> _Act:
        v = self.vals.get(node.input[k])
        if isinstance(v, _DQ):
            return v.src
        if not isinstance(v, _Act):
            raise self.err(node, f"input {k} '{node.input[k]}' is not a quantized run-time "
                                 f"tensor")
        if self.in_q(v) is None and node.op_type in QUANT_OPS:
            # an integer graph input (or a move of one): the QLinear op that reads it gives
            # its scale and zero point, inputs k + 1 and k + 2 in every QOperator op
            self.bind_q(node, v, *self._qparams(node, k + 1, k + 2, f"input {k}"))
        return v

    def bind_q(self, node, v: _Act, s, z) -> None:
        """Quantization parameters for an integer tensor that had none (a graph input)."""
        lo, hi = (-128, 127) if self.dtype(v) == np.dtype(np.int8) else (0, 255)
        if not lo <= int(z) <= hi:
            raise self.err(node, f"zero point {int(z)} for a {self.dtype(v)} tensor")
        from dataclasses import replace
        self.quant[v.t] = (np.float32(s), int(z))
        self.tensors[v.t] = replace(self.tensors[v.t], quant=QuantParams(
            np.array([s], np.float32), np.array([int(z)], np.int64)))

    def in_q(self, a) -> tuple | None:
        return self.quant.get(a.t)

    def dtype(self, a: _Act) -> np.dtype:
        return self.tensors[a.t].dtype

    def layout(self, a: _Act, perm: tuple, name: str) -> _Act:
        """``a`` with IR layout ``perm`` (an integer ORT_TRANSPOSE when it differs)."""
        if a.perm == tuple(perm):
            return a
        inv = np.argsort(a.perm)
        r = [int(inv[p]) for p in perm]
        shape = tuple(a.shape[p] for p in perm)
        t = self.emit("ORT_TRANSPOSE", [a.t], name, shape, self.dtype(a), self.in_q(a), perm=r)
        return type(a)(t, tuple(perm), a.shape)

    def plain(self, a: _Act, name: str) -> _Act:
        """``a`` in ONNX order: no data moves when only size-1 axes are out of order."""
        non1 = [p for p in a.perm if a.shape[p] != 1]
        if non1 == sorted(non1):
            if a.perm == _ident(len(a.shape)):
                return a
            t = self.emit("ORT_RESHAPE", [a.t], name, a.shape, self.dtype(a), self.in_q(a))
            return type(a)(t, _ident(len(a.shape)), a.shape)
        return self.layout(a, _ident(len(a.shape)), name)

    def nhwc(self, node, a: _Act, name: str) -> _Act:
        if len(a.shape) != 4:
            raise self.err(node, f"expects a 4-D NCHW input, got {list(a.shape)}")
        return self.layout(a, NHWC, name + "/nhwc")

    def set_act(self, name, t, perm, shape):
        self.vals[name] = _Act(t, tuple(perm), tuple(int(d) for d in shape))

    # -- geometry --------------------------------------------------------------------------
    def spatial(self, node, a, xshape, kshape, pool=False):
        strides = list(a.get("strides", [1, 1]))
        dil = list(a.get("dilations", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        auto = a.get("auto_pad", "NOTSET")
        ceil = bool(a.get("ceil_mode", 0))
        out, pb, pe = [], [], []
        for d in range(2):
            n, k, s, dl = xshape[2 + d], kshape[d], strides[d], dil[d]
            ke = (k - 1) * dl + 1
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                o = -(-n // s)
                total = max((o - 1) * s + ke - n, 0)
                p0 = total // 2 if auto == "SAME_UPPER" else total - total // 2
                p1 = total - p0
            elif auto == "VALID":
                o, p0, p1 = (n - ke) // s + 1, 0, 0
            else:
                p0, p1 = pads[d], pads[d + 2]
                if ceil:
                    o = -(-(n + p0 + p1 - ke) // s) + 1
                    if (o - 1) * s >= n + p0:
                        o -= 1
                else:
                    o = (n + p0 + p1 - ke) // s + 1
            if o <= 0:
                raise self.err(node, f"output size {o} along spatial axis {d}")
            out.append(o)
            pb.append(p0)
            pe.append(p1)
        return dict(strides=strides, dilations=dil, pads=[pb[0], pb[1]], out=out,
                    pads_end=[pe[0], pe[1]])

    # -- driver ----------------------------------------------------------------------------
    def run(self) -> Graph:
        from onnx import numpy_helper

        from .onnx_fold import MAX_CONSTANT_ELEMENTS, _cut, _elements
        for init in self.g.initializer:
            n = _elements(init.dims)
            if n is None or n > MAX_CONSTANT_ELEMENTS:
                raise ModelError(f"{self.source}: initializer {brief(init.name, 64)} has dims "
                                 f"{list(init.dims)[:8]}")
            try:
                self.vals[init.name] = numpy_helper.to_array(init)
            except Exception as e:  # noqa: BLE001 -- onnx/numpy report a bad tensor variously
                raise ModelError(f"{self.source}: initializer {brief(init.name, 64)} (dims "
                                 f"{list(init.dims)}, data type {init.data_type}) cannot be "
                                 f"read: {_cut(e)}") from None
        inputs, src_shapes, in_perms = [], [], []
        for inp in self.g.input:
            if inp.name in self.vals:
                continue
            tt = inp.type.tensor_type
            dims = [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else
                    (self.batch if k == 0 else -1) for k, d in enumerate(tt.shape.dim)]
            if any(d < 0 for d in dims):
                raise ModelError(f"{self.source}: input {brief(inp.name, 64)} has a symbolic "
                                 f"dimension; hwsim needs static shapes except the batch")
            from onnx import helper
            dt = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
            if dt not in (F32, np.dtype(np.int8), np.dtype(np.uint8)):
                raise ModelError(f"{self.source}: input {brief(inp.name, 64)} is {dt}; "
                                 f"float32, int8 or uint8 inputs are supported")
            perm = _ident(len(dims))  # the ONNX layout: `hwsim run` takes ORT's input as is
            t = self.add_tensor(inp.name, [dims[p] for p in perm], dt)
            # an int8 / uint8 input is already quantized: its scale and zero point are those
            # of the DequantizeLinear or QLinear op that reads it (bound there)
            cls = _Float if dt == F32 else _Act
            self.vals[inp.name] = cls(t, perm, tuple(dims))
            inputs.append(t)
            src_shapes.append(tuple(dims))
            in_perms.append(perm)
        for node in self.g.node:
            self.node(node)
        outs, out_perms, out_shapes = [], [], []
        value_map = {}
        for name in self.outputs:
            v = self.vals.get(name)
            if isinstance(v, _DQ):
                a = self.plain(v.src, name + "/onnx")
                s, z = self.in_q(a)
                t = self.emit("ORT_DEQUANTIZE", [a.t], name, a.shape, F32, scale=s,
                              zero_point=z)
                v = _Act(t, a.perm, a.shape)
            elif isinstance(v, (_Act, _Float)):
                v = self.plain(v, name + "/onnx")
            else:
                raise ModelError(f"{self.source}: graph output {brief(name, 64)} is not "
                                 f"computed by a supported quantized op")
            value_map[name] = (v.t, tuple(v.perm))
            outs.append(v.t)
            out_perms.append(v.perm)
            out_shapes.append(v.shape)
        for name, v in self.vals.items():
            if isinstance(v, (_Act, _Float)):
                value_map.setdefault(name, (v.t, tuple(v.perm)))
        from .onnx_layout import IOLayout, _prune
        graph, remap = _prune(Graph(self.tensors, self.ops, inputs, outs,
                                    self.g.name or "onnx", self.source))
        graph.io_layout = IOLayout(in_perms, out_perms, src_shapes, out_shapes, "onnx")
        graph.value_map = {n: (remap[t], p) for n, (t, p) in value_map.items() if t in remap}
        return graph

    def node(self, node) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx", "com.microsoft"):
            raise self.err(node, f"op domain '{node.domain}' is not supported")
        a = self.attrs(node)
        ins = [self.vals.get(n) for n in node.input if n]
        if op in ("Constant",) or (ins and all(isinstance(v, np.ndarray) for v in ins)):
            return self.fold(node)
        fn = getattr(self, "op_" + op, None)
        if fn is None and op in FUSED_OPS + FLOAT_OPS:
            fn = self.pending
        if fn is None and op in MOVE_OPS:
            fn = self.move
        if fn is None:
            raise self.err(node, f"unsupported op {op} in a quantized ONNX model; supported: "
                                 f"QuantizeLinear, DequantizeLinear, QLinearConv, QGemm, "
                                 f"QLinearMatMul, QLinearAdd, QLinearAveragePool, "
                                 f"QLinearGlobalAveragePool, QLinearConcat, QLinearSoftmax, "
                                 f"{', '.join(FUSED_OPS + MOVE_OPS)}")
        try:
            fn(node, a)
        except ModelError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as e:
            raise self.err(node, f"cannot import this node ({type(e).__name__}: {e})") from None

    def fold(self, node):
        if node.op_type == "QuantizeLinear":
            # float weights quantized in the graph (as Brevitas and Quark export them): folded
            # as MLAS computes QuantizeLinear, saturate(round_half_even(x / scale) + zp)
            x = np.asarray(self.vals[node.input[0]], np.float32)
            s = np.asarray(self.const(node, 1, "y_scale"), np.float32)
            self.check_qparam(node, "y_scale", s)
            zv = self.const(node, 2, "y_zero_point")
            dt = np.dtype(np.uint8) if zv is None else np.asarray(zv).dtype
            self.check_qparam(node, "y_zero_point", np.zeros(1, dt))
            z = np.zeros(1, np.int64) if zv is None else np.asarray(zv).astype(np.int64)
            shape = [1] * max(x.ndim, 1)
            if s.size > 1:
                shape[int(self.attrs(node).get("axis", 1)) % x.ndim] = -1
            v = np.rint(np.clip(x / s.reshape(shape), -2.0**40, 2.0**40)).astype(np.int64)
            lo, hi = (-128, 127) if dt == np.dtype(np.int8) else (0, 255)
            self.vals[node.output[0]] = np.clip(v + z.reshape(shape), lo, hi).astype(dt)
            return
        if node.op_type == "DequantizeLinear":  # a weight or bias: folded here (any opset)
            from ..arith import dequantize_float32
            q = self.vals[node.input[0]]
            s = np.asarray(self.const(node, 1, "x_scale"), np.float32)
            z = self.const(node, 2, "x_zero_point")
            z = np.zeros(1, np.int64) if z is None else np.asarray(z).astype(np.int64)
            shape = [1] * q.ndim
            if s.size > 1:
                shape[int(self.attrs(node).get("axis", 1)) % q.ndim] = -1
            self.vals[node.output[0]] = dequantize_float32(q, s.reshape(shape or [1]),
                                                           z.reshape(shape or [1]))
            return
        from .onnx_fold import ConstantFolder  # the float importer's constant folding

        class _Folder(ConstantFolder):
            def __init__(self, model, err):
                self.model, self.err, self.vals = model, err, {}
        imp = _Folder(self.model, self.err)
        ins = [None if not n else _FoldVal(self.vals[n]) for n in node.input]
        imp.fold(node, ins)
        for o in node.output:
            if o in imp.vals:
                self.vals[o] = imp.vals[o].const

    # -- Q / DQ ----------------------------------------------------------------------------
    def op_QuantizeLinear(self, node, a):
        s = np.float32(self.scalar(node, 1, "y_scale"))
        zpv = self.const(node, 2, "y_zero_point")
        dt = np.dtype(np.uint8) if zpv is None else np.asarray(zpv).dtype
        z = int(self.scalar(node, 2, "y_zero_point"))
        v = self.vals.get(node.input[0])
        out = node.output[0]
        if isinstance(v, _Float):
            x = v
            t = self.emit("ORT_QUANTIZE", [x.t], out, self.tensors[x.t].shape, dt, (s, z),
                          scale=s, zero_point=z)
            return self.set_act(out, t, x.perm, x.shape)
        if isinstance(v, _Pending):
            return self.fuse(v.node, node, s, z, dt)
        if isinstance(v, _DQ):
            src = v.src
            qs, qz = self.in_q(src)
            if np.float32(qs) == s and qz == z and self.dtype(src) == dt:
                self.vals[out] = src
                return
            # DQ -> Q with other parameters: QuantizeLinear(x_scale * (x - x_zp)), a table
            t = self.emit("ORT_CONCAT", [src.t], out, self.tensors[src.t].shape, dt, (s, z),
                          axis=0, in_scales=[qs], in_zps=[qz], y_scale=s, y_zp=z)
            return self.set_act(out, t, src.perm, src.shape)
        raise self.err(node, "quantizes a value that is neither a float graph input nor the "
                             "output of a float op on dequantized inputs")

    def op_DequantizeLinear(self, node, a):
        x = self.vals.get(node.input[0])
        if isinstance(x, _Act):
            s = np.float32(self.scalar(node, 1, "x_scale"))
            z = int(self.scalar(node, 2, "x_zero_point"))
            zpv = self.const(node, 2, "x_zero_point")
            zdt = np.dtype(np.uint8) if zpv is None else np.asarray(zpv).dtype
            if zdt != self.dtype(x):
                raise self.err(node, f"zero point of type {zdt} for a {self.dtype(x)} tensor")
            if self.in_q(x) != (s, z):
                self.quant[x.t] = (s, z)  # a QOperator output read with its own parameters
            self.vals[node.output[0]] = _DQ(x)
            return
        raise self.err(node, "dequantizes a value that is not a quantized run-time tensor")

    def pending(self, node, a):
        users = self.uses.get(node.output[0], [])
        single_q = len(users) == 1 and users[0][0].op_type == "QuantizeLinear" and \
            node.output[0] not in self.outputs
        if node.op_type in FLOAT_OPS and (node.op_type not in FUSED_OPS or not single_q or any(
                isinstance(self.vals.get(n), _Float) for n in node.input if n)):
            return self.float_op(node, a)
        for k, n in enumerate(node.input):
            if n and not isinstance(self.vals.get(n), (_DQ, np.ndarray)):
                raise self.err(node, f"float input {k} '{n}' is not dequantized: this float "
                                     f"op has no integer form in onnxruntime")
        if not single_q:
            raise self.err(node, "a float op on dequantized inputs whose output is not "
                                 "quantized (by one QuantizeLinear): onnxruntime computes it "
                                 "in float, hwsim does not")
        self.vals[node.output[0]] = _Pending(node, ())

    def as_float(self, node, k) -> _Float:
        """Input k as a float tensor: a DequantizeLinear is computed (once) as ORT does."""
        n = node.input[k]
        v = self.vals.get(n)
        if isinstance(v, _DQ):
            s, z = self.in_q(v.src)
            t = self.emit("ORT_DEQUANTIZE", [v.src.t], n, self.tensors[v.src.t].shape, F32,
                          scale=s, zero_point=z)
            v = self.vals[n] = _Float(t, v.src.perm, v.src.shape)
        if not isinstance(v, _Float):
            raise self.err(node, f"input {k} '{n}' is not a run-time float tensor")
        return v

    def float_op(self, node, a):
        """Sum / Add / Mul / Relu / Clip in float32 between DequantizeLinear and
        QuantizeLinear, as ORT runs them when it does not fuse them (e.g. Sum)."""
        op, out = node.op_type, node.output[0]
        if op == "AveragePool":
            x = self.as_float(node, 0)
            k = list(a["kernel_shape"])
            g = self.spatial(node, a, x.shape, k, pool=True)
            # ORT 1.32: AveragePool before opset 19 calls MLAS's pooling, except with
            # ceil_mode and count_include_pad, and except where its NCHWc transformer takes
            # the pool (channels a multiple of the block, 16 on AVX-512): both sum row by row
            nchwc = NCHWC_BLOCK and x.shape[1] % NCHWC_BLOCK == 0
            mlas = self.opset < 19 and not nchwc and not (
                a.get("ceil_mode", 0) and a.get("count_include_pad", 0))
            xn = self.layout(x, NHWC, out + "/nhwc")
            shape = (x.shape[0], x.shape[1]) + tuple(g["out"])
            t = self.emit("ORT_FLOAT_AVG_POOL", [xn.t], out, [shape[p] for p in NHWC], F32,
                          kernel=k, strides=g["strides"], pads=g["pads"],
                          pads_end=g["pads_end"],
                          count_include_pad=int(a.get("count_include_pad", 0)),
                          mlas=mlas)
            self.vals[out] = _Float(t, NHWC, shape)
            return
        if op in ("Relu", "Clip"):
            x = self.as_float(node, 0)
            attrs = {"op": "relu"}
            if op == "Clip":
                lo = a.get("min") if self.opset < 11 else self.const(node, 1, "min")
                hi = a.get("max") if self.opset < 11 else self.const(node, 2, "max")
                attrs = {"op": "clip",
                         "lo": -np.inf if lo is None else float(np.asarray(lo).reshape(-1)[0]),
                         "hi": np.inf if hi is None else float(np.asarray(hi).reshape(-1)[0])}
            t = self.emit("ORT_FLOAT", [x.t], out, self.tensors[x.t].shape, F32, **attrs)
            self.vals[out] = _Float(t, x.perm, x.shape)
            return
        # numpy broadcasting, as ORT's float kernels: the lower ranks get leading 1s; a
        # constant operand (an initializer, or a DequantizeLinear of one, folded as ORT
        # folds it) goes into the layer's parameters
        xs = [self.vals[n] if isinstance(self.vals.get(n), np.ndarray) else
              self.as_float(node, k) for k, n in enumerate(node.input) if n]
        consts = [k for k, x in enumerate(xs) if isinstance(x, np.ndarray)]
        if len(consts) > 1:
            raise self.err(node, "more than one constant input is not supported")
        r = max(np.ndim(x) if k in consts else len(x.shape) for k, x in enumerate(xs))
        lead = max((x for k, x in enumerate(xs) if k not in consts), key=lambda x: len(x.shape))
        perm = lead.perm if len(lead.shape) == r else _ident(r)
        ins, const, shapes, ir_shapes = [], None, [], []
        for k, x in enumerate(xs):
            if k in consts:
                c = np.asarray(x, np.float32)
                c = c.reshape((1,) * (r - c.ndim) + c.shape)
                const = np.ascontiguousarray(c.transpose(perm))
                shapes.append(c.shape)
                ir_shapes.append(const.shape)
                continue
            if len(x.shape) < r:
                x = self.plain(x, f"{out}/in{k}")
                shape = (1,) * (r - len(x.shape)) + tuple(x.shape)
                t = self.emit("ORT_RESHAPE", [x.t], f"{out}/rank{k}", shape, F32)
                x = _Float(t, _ident(r), shape)
            x = self.layout(x, perm, f"{out}/in{k}")
            ins.append(x.t)
            shapes.append(x.shape)
            ir_shapes.append(self.tensors[x.t].shape)
        try:
            shape = tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise self.err(node, f"input shapes {[list(v) for v in shapes]} do not "
                                 f"broadcast") from None
        t = self.emit("ORT_FLOAT", ins, out, tuple(np.broadcast_shapes(*ir_shapes)), F32,
                      op="mul" if op == "Mul" else "add", const=const,
                      const_pos=consts[0] if consts else -1)
        self.vals[out] = _Float(t, perm, shape)

    def _wq(self, node, k_dq):
        """(int8 weights, scales, zps) of a dequantized constant input."""
        n = node.input[k_dq]
        dq = next((d for d in self.g.node if d.op_type == "DequantizeLinear"
                   and d.output[0] == n), None)
        if dq is None or not isinstance(self.vals.get(dq.input[0]), np.ndarray):
            raise self.err(node, f"input '{n}' must be a DequantizeLinear of a constant")
        q = self.vals[dq.input[0]]
        s = np.asarray(self.const(dq, 1, "scale"), np.float32).reshape(-1)
        z = self.const(dq, 2, "zero_point")
        z = np.zeros(1, np.int64) if z is None else np.asarray(z).reshape(-1)
        return q, s, z

    def fuse(self, fnode, qnode, ys, yz, dt):
        """The QLinear op ORT's QDQ fusion makes of float op ``fnode`` + QuantizeLinear."""
        op = fnode.op_type
        a = self.attrs(fnode)
        out = qnode.output[0]
        if op == "Conv":
            x = self.act(fnode, 0)
            w, wsc, wzp = self._wq(fnode, 1)
            b = self._wq(fnode, 2)[0] if len(fnode.input) > 2 and fnode.input[2] else None
            return self.conv(fnode, a, x, w, wsc, wzp, b, ys, yz, dt, out)
        if op in ("Gemm", "MatMul"):
            x = self.act(fnode, 0)
            w, wsc, wzp = self._wq(fnode, 1)
            b = self._wq(fnode, 2)[0] if len(fnode.input) > 2 and fnode.input[2] else None
            return self.fc(fnode, a, x, w, wsc, wzp, b, ys, yz, dt, out,
                           trans_b=int(a.get("transB", 0)), alpha=float(a.get("alpha", 1.0)))
        if op == "Add":
            return self.add(fnode, self.operand(fnode, 0), self.operand(fnode, 1), ys, yz, dt,
                            out)
        if op == "Mul":
            return self.mul(fnode, self.operand(fnode, 0), self.operand(fnode, 1), ys, yz, dt,
                            out)
        if op in ("LeakyRelu", "Sigmoid"):
            return self.lookup(fnode, op, float(a.get("alpha", 0.01)), self.act(fnode, 0), ys,
                               yz, dt, out)
        if op == "AveragePool":
            return self.avg_pool(fnode, a, self.act(fnode, 0), ys, yz, dt, out)
        if op == "GlobalAveragePool":
            return self.gap(fnode, self.act(fnode, 0), ys, yz, dt, out)
        if op == "Concat":
            xs = [self.act(fnode, k) for k in range(len(fnode.input))]
            return self.concat(fnode, int(a["axis"]), xs, ys, yz, dt, out)
        if op == "Softmax":
            return self.softmax(fnode, int(a.get("axis", -1 if self.opset >= 13 else 1)),
                                self.act(fnode, 0), ys, yz, dt, out, self.opset)
        raise self.err(fnode, "internal: no fusion")  # pragma: no cover

    # -- the integer ops (both formats) ----------------------------------------------------
    def same_type(self, node, xs, dt) -> None:
        """ORT's QLinear ops take and give one type (T): int8 or uint8 throughout."""
        for x in xs:
            if self.dtype(x) != np.dtype(dt):
                raise self.err(node, f"input of type {self.dtype(x)} and output of type "
                                     f"{np.dtype(dt)}: one type (int8 or uint8) throughout")

    def check_mac(self, node, x, w, wsc, wzp, b, cout, cin):
        """Weights int8 with one scale (or one per output channel), the input's depth, an
        int32 bias of one value per output channel."""
        if np.asarray(w).dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise self.err(node, f"weights of type {np.asarray(w).dtype}: int8 or uint8 "
                                 f"weights are supported")
        if np.asarray(wzp).dtype != np.asarray(w).dtype and np.any(np.asarray(wzp) != 0):
            raise self.err(node, f"weight zero point of type {np.asarray(wzp).dtype} for "
                                 f"{np.asarray(w).dtype} weights")
        if np.asarray(wsc).size not in (1, cout) or np.asarray(wzp).size not in (1, cout):
            raise self.err(node, f"{np.asarray(wsc).size} weight scales for {cout} output "
                                 f"channels")
        self.check_qparam(node, "weight scale", np.asarray(wsc))
        if x.shape[1 if len(x.shape) == 4 else -1] != cin:
            raise self.err(node, f"input {list(x.shape)} does not match the weights' depth {cin}")
        if b is not None and (np.asarray(b).dtype != np.int32 or np.asarray(b).size != cout):
            raise self.err(node, f"bias {np.asarray(b).dtype} {list(np.shape(b))}: int32, one "
                                 f"value per output channel ({cout})")
        if self.dtype(x) not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise self.err(node, f"input of type {self.dtype(x)}: int8 or uint8 expected")

    def conv(self, node, a, x, w, wsc, wzp, b, ys, yz, dt, out):
        if w.ndim != 4 or len(x.shape) != 4:
            raise self.err(node, f"only 2-D convolutions are supported (input "
                                 f"{list(x.shape)}, weights {list(w.shape)})")
        group = int(a.get("group", 1))
        if group < 1 or w.shape[0] % group:
            raise self.err(node, f"group {group} does not divide {w.shape[0]} output channels")
        self.check_mac(node, x, w, wsc, wzp, b, w.shape[0], w.shape[1] * group)
        if list(a.get("kernel_shape", w.shape[2:])) != list(w.shape[2:]):
            raise self.err(node, f"kernel_shape {a['kernel_shape']} differs from the weights "
                                 f"{list(w.shape)}")
        xs, xz = self.in_q(x)
        xn = self.nhwc(node, x, out)
        g = self.spatial(node, a, x.shape, w.shape[2:])
        shape = (x.shape[0], w.shape[0]) + tuple(g["out"])
        ins = [xn.t, self.const_tensor(out + "/weights", w)]
        if b is not None:
            ins.append(self.const_tensor(out + "/bias", np.asarray(b, np.int32)))
        t = self.emit("ORT_CONV", ins, out, [shape[p] for p in NHWC], dt, (ys, yz),
                      x_scale=xs, x_zp=xz, w_scale=wsc, w_zp=wzp, y_scale=ys, y_zp=yz,
                      group=int(a.get("group", 1)), strides=g["strides"],
                      dilations=g["dilations"], pads=g["pads"])
        self.set_act(out, t, NHWC, shape)

    def fc(self, node, a, x, w, wsc, wzp, b, ys, yz, dt, out, trans_b=0, alpha=1.0):
        if int(a.get("transA", 0)):
            raise self.err(node, "transA=1 is not supported")
        if w.ndim != 2:
            raise self.err(node, f"2-D constant weights expected, got {list(w.shape)}")
        n_out = w.shape[0] if trans_b else w.shape[1]
        self.check_mac(node, x, w, wsc, wzp, b, n_out, w.shape[1] if trans_b else w.shape[0])
        xs, xz = self.in_q(x)
        xp = self.plain(x, out + "/in")
        shape = tuple(x.shape[:-1]) + (n_out,)
        ins = [xp.t, self.const_tensor(out + "/weights", w)]
        if b is not None:
            bb = np.asarray(b, np.int32).reshape(-1)
            ins.append(self.const_tensor(out + "/bias", bb))
        t = self.emit("ORT_FC", ins, out, shape, dt, (ys, yz), x_scale=xs, x_zp=xz,
                      w_scale=wsc, w_zp=wzp, y_scale=ys, y_zp=yz, trans_b=trans_b,
                      alpha=alpha)
        self.set_act(out, t, _ident(len(shape)), shape)

    def operand(self, node, k, ks=None, kz=None):
        """Input k of an Add / Mul: a run-time _Act, or a constant (an initializer, in QDQ
        form behind a DequantizeLinear; its scale / zero point inputs ks / kz in QOperator
        form) as _QConst. ORT's QLinearAdd / QLinearMul take a constant operand as is."""
        v = self.vals.get(node.input[k])
        if not isinstance(v, np.ndarray):
            return self.act(node, k)
        if ks is None:
            q, s, z = self._wq(node, k)
        else:
            q, s, z = v, self.const(node, ks, "scale"), self.const(node, kz, "zero point")
            z = np.zeros(1, np.uint8) if z is None else z
        s, z = np.asarray(s).reshape(-1), np.asarray(z).reshape(-1)
        if s.size != 1 or z.size != 1:
            raise self.err(node, f"constant input {k}: one scale and zero point (per-tensor) "
                                 f"expected, got {s.size} and {z.size}")
        self.check_qparam(node, "constant's scale", s)
        q = np.asarray(q)
        if q.dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise self.err(node, f"constant input {k} of type {q.dtype}: int8 or uint8 expected")
        return _QConst(q, np.float32(s[0]), int(z[0]))

    def binary(self, node, x0, x1, out):
        """The operands of an Add / Mul in one IR layout and rank: the lower rank gets
        leading 1s (numpy broadcasting), constants are transposed here, a run-time operand by
        an integer transpose. Returns the two _Act and the ONNX output shape."""
        r = max(len(x0.shape), len(x1.shape))
        acts = [x for x in (x0, x1) if isinstance(x, _Act)]
        if not acts:
            raise self.err(node, "both inputs are constants")
        lead = max(acts, key=lambda x: len(x.shape))
        perm = lead.perm if len(lead.shape) == r else _ident(r)
        res = []
        for k, x in enumerate((x0, x1)):
            if isinstance(x, _QConst):
                arr = x.q.reshape((1,) * (r - x.q.ndim) + x.q.shape)
                t = self.const_tensor(f"{out}/const{k}", arr.transpose(perm))
                self.quant[t] = (x.scale, x.zp)
                res.append(_Act(t, tuple(perm), arr.shape))
                continue
            if len(x.shape) < r:
                x = self.plain(x, f"{out}/in{k}")
                shape = (1,) * (r - len(x.shape)) + tuple(x.shape)
                t = self.emit("ORT_RESHAPE", [x.t], f"{out}/rank{k}", shape, self.dtype(x),
                              self.in_q(x))
                x = _Act(t, _ident(r), shape)
            res.append(self.layout(x, perm, f"{out}/in{k}"))
        try:
            shape = tuple(np.broadcast_shapes(res[0].shape, res[1].shape))
        except ValueError:
            raise self.err(node, f"shapes {list(x0.shape)} and {list(x1.shape)} do not "
                                 f"broadcast") from None
        return res[0], res[1], shape

    def add(self, node, x0, x1, ys, yz, dt, out):
        x0, x1, shape = self.binary(node, x0, x1, out)
        self.same_type(node, [x0, x1], dt)
        (s0, z0), (s1, z1) = self.in_q(x0), self.in_q(x1)
        ir = tuple(np.broadcast_shapes(self.tensors[x0.t].shape, self.tensors[x1.t].shape))
        t = self.emit("ORT_ADD", [x0.t, x1.t], out, ir, dt, (ys, yz),
                      a_scale=s0, a_zp=z0, b_scale=s1, b_zp=z1, y_scale=ys, y_zp=yz,
                      scalar=_scalar_span(x0.shape, x1.shape, shape))
        self.set_act(out, t, x0.perm, shape)

    def mul(self, node, x0, x1, ys, yz, dt, out):
        x0, x1, shape = self.binary(node, x0, x1, out)
        self.same_type(node, [x0, x1], dt)
        (s0, z0), (s1, z1) = self.in_q(x0), self.in_q(x1)
        ir = tuple(np.broadcast_shapes(self.tensors[x0.t].shape, self.tensors[x1.t].shape))
        t = self.emit("ORT_MUL", [x0.t, x1.t], out, ir, dt, (ys, yz), a_scale=s0, a_zp=z0,
                      b_scale=s1, b_zp=z1, y_scale=ys, y_zp=yz)
        self.set_act(out, t, x0.perm, shape)

    def lookup(self, node, op, alpha, x, ys, yz, dt, out):
        self.same_type(node, [x], dt)
        xs, xz = self.in_q(x)
        t = self.emit("ORT_LOOKUP", [x.t], out, self.tensors[x.t].shape, dt, (ys, yz),
                      fn="leaky_relu" if op == "LeakyRelu" else "sigmoid", alpha=alpha,
                      x_scale=xs, x_zp=xz, y_scale=ys, y_zp=yz)
        self.set_act(out, t, x.perm, x.shape)

    def avg_pool(self, node, a, x, ys, yz, dt, out):
        self.same_type(node, [x], dt)
        xs, xz = self.in_q(x)
        k = list(a["kernel_shape"])
        g = self.spatial(node, a, x.shape, k, pool=True)  # ceil_mode: the output size only
        xn = self.nhwc(node, x, out)
        shape = (x.shape[0], x.shape[1]) + tuple(g["out"])
        t = self.emit("ORT_AVG_POOL", [xn.t], out, [shape[p] for p in NHWC], dt, (ys, yz),
                      x_scale=xs, x_zp=xz, y_scale=ys, y_zp=yz, kernel=k,
                      strides=g["strides"], pads=g["pads"],
                      count_include_pad=int(a.get("count_include_pad", 0)))
        self.set_act(out, t, NHWC, shape)

    def gap(self, node, x, ys, yz, dt, out):
        self.same_type(node, [x], dt)
        xs, xz = self.in_q(x)
        xn = self.nhwc(node, x, out)
        shape = (x.shape[0], x.shape[1], 1, 1)
        t = self.emit("ORT_GLOBAL_AVG_POOL", [xn.t], out, [shape[p] for p in NHWC], dt,
                      (ys, yz), x_scale=xs, x_zp=xz, y_scale=ys, y_zp=yz)
        self.set_act(out, t, NHWC, shape)

    def concat(self, node, axis, xs, ys, yz, dt, out):
        self.same_type(node, xs, dt)
        r = len(xs[0].shape)
        axis %= r
        perm = xs[0].perm
        xs = [self.layout(v, perm, f"{out}/in{k}") for k, v in enumerate(xs)]
        shape = list(xs[0].shape)
        shape[axis] = sum(v.shape[axis] for v in xs)
        t = self.emit("ORT_CONCAT", [v.t for v in xs], out, [shape[p] for p in perm], dt,
                      (ys, yz), axis=perm.index(axis), in_scales=[self.in_q(v)[0] for v in xs],
                      in_zps=[self.in_q(v)[1] for v in xs], y_scale=ys, y_zp=yz)
        self.set_act(out, t, perm, shape)

    def softmax(self, node, axis, x, ys, yz, dt, out, opset):
        self.same_type(node, [x], dt)
        r = len(x.shape)
        axis %= r
        if opset < 13 and any(d != 1 for d in x.shape[axis + 1:]):
            raise self.err(node, "softmax over several axes (opset < 13) is not supported")
        if x.perm[-1] != axis:
            x = self.layout(x, tuple(p for p in x.perm if p != axis) + (axis,), out + "/in")
        xs, _ = self.in_q(x)
        t = self.emit("ORT_SOFTMAX", [x.t], out, self.tensors[x.t].shape, dt, (ys, yz),
                      x_scale=xs, y_scale=ys, y_zp=yz)
        self.set_act(out, t, x.perm, x.shape)

    def move(self, node, a):
        """MaxPool / Reshape / Flatten / Transpose / Squeeze / Unsqueeze on the integers."""
        v = self.vals.get(node.input[0])
        x = v.src if isinstance(v, _DQ) else v
        if not isinstance(x, (_Act, _Float)):
            raise self.err(node, "input is not a run-time tensor")
        cls = type(x)  # integers stay integers; a float op's output stays float
        out = node.output[0]
        op = node.op_type
        q = self.in_q(x)
        dt = self.dtype(x)
        if op in ("Identity", "Dropout"):
            y = x
        elif op == "MaxPool":
            if len(node.output) > 1 and node.output[1]:
                raise self.err(node, "the Indices output is not supported")
            k = list(a["kernel_shape"])
            g = self.spatial(node, a, x.shape, k, pool=True)
            xn = self.nhwc(node, x, out)
            shape = (x.shape[0], x.shape[1]) + tuple(g["out"])
            t = self.emit("ORT_MAX_POOL", [xn.t], out, [shape[p] for p in NHWC], dt, q,
                          kernel=k, strides=g["strides"], dilations=g["dilations"],
                          pads=g["pads"])
            y = cls(t, NHWC, shape)
        elif op == "Resize" and a.get("mode", "nearest") != "nearest" and isinstance(v, _DQ):
            # ORT keeps DQ -> Resize -> Q around a linear / cubic resize: a float32 resize of the
            # dequantized values, quantized again by the QuantizeLinear that follows
            xf = self.as_float(node, 0)
            self.vals[out] = self.resize(node, a, xf, out, F32, None, _Float)
            return
        elif op == "Resize":
            y = self.resize(node, a, x, out, dt, q, cls)
        elif op == "Transpose":
            p = list(a.get("perm", list(range(len(x.shape)))[::-1]))
            xp = self.plain(x, out + "/in")
            shape = tuple(x.shape[i] for i in p)
            t = self.emit("ORT_TRANSPOSE", [xp.t], out, shape, dt, q, perm=p)
            y = cls(t, _ident(len(shape)), shape)
        else:
            shape = self.new_shape(node, a, x)
            xp = self.plain(x, out + "/in")
            t = self.emit("ORT_RESHAPE", [xp.t], out, shape, dt, q)
            y = cls(t, _ident(len(shape)), shape)
        self.vals[out] = _DQ(y) if isinstance(v, _DQ) else y

    def resize(self, node, a, x, out, dt, q, cls):
        """Resize (nearest or linear) of a 4-D NCHW tensor over H and W, in NHWC: on the
        integers as ORT runs it on quantized data, or on float values (DQ -> linear Resize)."""
        mode = a.get("mode", "nearest")
        ctm = a.get("coordinate_transformation_mode", "half_pixel")
        if mode not in ("nearest", "linear", "cubic") or len(x.shape) != 4:
            raise self.err(node, f"only 4-D nearest, linear and cubic resizes are supported "
                                 f"(mode {mode}, input {list(x.shape)})")
        if mode == "cubic" and dt != F32:
            raise self.err(node, "cubic Resize of int8 / uint8 data: onnxruntime's CPU kernel "
                                 "runs cubic on float only (it fails on this model)")
        if mode != "nearest" and ctm == "tf_crop_and_resize":
            raise self.err(node, f"{mode} Resize with coordinate_transformation_mode "
                                 f"tf_crop_and_resize is not supported")
        if int(a.get("antialias", 0)) or "axes" in a:
            raise self.err(node, "Resize with antialias or axes is not supported")
        scales = self.const(node, 2, "scales") if len(node.input) > 2 else None
        sizes = self.const(node, 3, "sizes") if len(node.input) > 3 else None
        if sizes is not None and np.asarray(sizes).size:
            oh, ow = [int(v) for v in np.asarray(sizes).reshape(-1)[2:]]
            sc = [np.float32(oh) / np.float32(x.shape[2]), np.float32(ow) / np.float32(x.shape[3])]
            if [int(v) for v in np.asarray(sizes).reshape(-1)[:2]] != list(x.shape[:2]):
                raise self.err(node, "Resize of the batch or channel axis is not supported")
        else:
            allsc = [float(v) for v in np.asarray(scales, np.float32).reshape(-1)]
            if allsc[:2] != [1.0, 1.0]:
                raise self.err(node, f"Resize scales {allsc}: the batch and channel scales "
                                     f"must be 1")
            sc = allsc[2:]
            oh, ow = int(np.floor(x.shape[2] * sc[0])), int(np.floor(x.shape[3] * sc[1]))
        if (oh, ow) == tuple(x.shape[2:]):
            # upsample.cc: an output of the input's shape is a copy, whatever the scales
            t = self.emit("ORT_RESHAPE", [x.t], out, self.tensors[x.t].shape, dt, q)
            return cls(t, x.perm, x.shape)
        xn = self.nhwc(node, x, out)
        shape = (x.shape[0], x.shape[1], oh, ow)
        t = self.emit("ORT_RESIZE", [xn.t], out, [shape[p] for p in NHWC], dt, q,
                      scales=[float(v) for v in sc], mode=mode, ctm=ctm,
                      cubic_coeff_a=float(a.get("cubic_coeff_a", -0.75)),
                      exclude_outside=int(a.get("exclude_outside", 0)),
                      nearest_mode=a.get("nearest_mode", "round_prefer_floor"))
        return cls(t, NHWC, shape)

    def new_shape(self, node, a, x) -> tuple:
        op, r, n = node.op_type, len(x.shape), int(np.prod(x.shape))
        if op == "Flatten":
            ax = int(a.get("axis", 1)) % (r + 1)
            return (int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax:])))
        if op == "Reshape":
            shape = [int(d) for d in np.asarray(self.const(node, 1, "shape")).reshape(-1)]
            shape = [x.shape[i] if d == 0 and not a.get("allowzero", 0) else d
                     for i, d in enumerate(shape)]
            if -1 in shape:
                known = int(np.prod([d for d in shape if d != -1]))
                shape[shape.index(-1)] = n // max(known, 1)
            return tuple(shape)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = [int(v) for v in np.asarray(self.const(node, 1, "axes")).reshape(-1)]
        if op == "Squeeze":
            axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else \
                [ax % r for ax in axes]
            return tuple(d for i, d in enumerate(x.shape) if i not in axes)
        shape = list(x.shape)
        for ax in sorted(ax % (r + len(axes)) for ax in axes):
            shape.insert(ax, 1)
        return tuple(shape)

    # -- QOperator ops ---------------------------------------------------------------------
    def _qparams(self, node, ks, kz, what):
        return np.float32(self.scalar(node, ks, what + " scale")), \
            int(self.scalar(node, kz, what + " zero point"))

    def _qout(self, node, kz):
        zpv = self.const(node, kz, "output zero point")
        return np.dtype(np.uint8) if zpv is None else np.asarray(zpv).dtype

    def op_QLinearConv(self, node, a):
        x = self.act(node, 0)
        w = self.const(node, 3, "w")
        wsc = np.asarray(self.const(node, 4, "w_scale"), np.float32).reshape(-1)
        wzp = np.asarray(self.const(node, 5, "w_zero_point")).reshape(-1)
        ys, yz = self._qparams(node, 6, 7, "y")
        b = self.const(node, 8, "B")
        self.conv(node, a, x, w, wsc, wzp, b, ys, yz, self._qout(node, 7), node.output[0])

    def op_QGemm(self, node, a):
        x = self.act(node, 0)
        w = self.const(node, 3, "B")
        wsc = np.asarray(self.const(node, 4, "b_scale"), np.float32).reshape(-1)
        wzp = np.asarray(self.const(node, 5, "b_zero_point")).reshape(-1)
        b = self.const(node, 6, "C")
        if len(node.input) < 9 or not node.input[7]:
            raise self.err(node, "QGemm without y_scale (a float output) is not supported")
        ys, yz = self._qparams(node, 7, 8, "y")
        self.fc(node, a, x, w, wsc, wzp, b, ys, yz, self._qout(node, 8), node.output[0],
                trans_b=int(a.get("transB", 0)), alpha=float(a.get("alpha", 1.0)))

    def op_QLinearMatMul(self, node, a):
        x = self.act(node, 0)
        w = self.const(node, 3, "b")
        wsc = np.asarray(self.const(node, 4, "b_scale"), np.float32).reshape(-1)
        wzp = np.asarray(self.const(node, 5, "b_zero_point")).reshape(-1)
        ys, yz = self._qparams(node, 6, 7, "y")
        self.fc(node, a, x, w, wsc, wzp, None, ys, yz, self._qout(node, 7), node.output[0])

    def op_QLinearAdd(self, node, a):
        ys, yz = self._qparams(node, 6, 7, "C")
        self.add(node, self.operand(node, 0, 1, 2), self.operand(node, 3, 4, 5), ys, yz,
                 self._qout(node, 7), node.output[0])

    def op_QLinearMul(self, node, a):
        ys, yz = self._qparams(node, 6, 7, "C")
        self.mul(node, self.operand(node, 0, 1, 2), self.operand(node, 3, 4, 5), ys, yz,
                 self._qout(node, 7), node.output[0])

    def op_QLinearLeakyRelu(self, node, a):
        ys, yz = self._qparams(node, 3, 4, "Y")
        self.lookup(node, "LeakyRelu", float(a.get("alpha", 0.01)), self.act(node, 0), ys, yz,
                    self._qout(node, 4), node.output[0])

    def op_QLinearSigmoid(self, node, a):
        ys, yz = self._qparams(node, 3, 4, "Y")
        self.lookup(node, "Sigmoid", 0.0, self.act(node, 0), ys, yz, self._qout(node, 4),
                    node.output[0])

    def op_QLinearAveragePool(self, node, a):
        if a.get("channels_last", 0):
            raise self.err(node, "channels_last=1 is not supported")
        ys, yz = self._qparams(node, 3, 4, "y")
        self.avg_pool(node, a, self.act(node, 0), ys, yz, self._qout(node, 4), node.output[0])

    def op_QLinearGlobalAveragePool(self, node, a):
        if a.get("channels_last", 0):
            raise self.err(node, "channels_last=1 is not supported")
        ys, yz = self._qparams(node, 3, 4, "y")
        self.gap(node, self.act(node, 0), ys, yz, self._qout(node, 4), node.output[0])

    def op_QLinearConcat(self, node, a):
        ys, yz = self._qparams(node, 0, 1, "Y")
        xs = []
        for k in range(2, len(node.input), 3):
            x = self.act(node, k)
            s, z = self._qparams(node, k + 1, k + 2, "input")
            if self.in_q(x) != (s, z):
                raise self.err(node, f"input {k} is read with other quantization "
                                     f"parameters than it was written with")
            xs.append(x)
        self.concat(node, int(a["axis"]), xs, ys, yz, self._qout(node, 1), node.output[0])

    def op_QLinearSoftmax(self, node, a):
        ys, yz = self._qparams(node, 3, 4, "y")
        opset = int(a.get("opset", self.opset))
        self.softmax(node, int(a.get("axis", -1 if opset >= 13 else 1)), self.act(node, 0),
                     ys, yz, self._qout(node, 4), node.output[0], opset)


class _FoldVal:
    """The float importer's view of a constant (``.const``, ``.is_const``, ``.shape``)."""
    def __init__(self, arr):
        self.const = np.asarray(arr)
        self.is_const = True
        self.shape = tuple(self.const.shape)


def read_quantized(model, *, source: str = "<onnx>", batch: int = 1) -> Graph:
    """Translate a QDQ or QOperator ``onnx.ModelProto`` (see the module docstring)."""
    from .onnx_fold import _cut
    try:
        return _QImporter(model, source, batch).run()
    except ModelError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError,
            AttributeError) as e:
        # a structure the checks above did not foresee (a hand-edited or corrupt file)
        raise ModelError(f"{source}: cannot import this quantized ONNX model ({_cut(e)})") \
            from None
