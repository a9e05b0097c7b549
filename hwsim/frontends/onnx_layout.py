"""Layout tracking of the ONNX importer (hwsim.frontends.onnx_reader): ONNX is NCHW, the IR
NHWC. Every ONNX value is an IR tensor together with a permutation ``perm`` such that
``IR tensor == onnx_value.transpose(perm)`` (:class:`_Val`); :class:`LayoutTracker` builds the IR
(tensors, ops, unique names) and materializes a value in the layout a consumer needs: a
``TRANSPOSE``, or a ``RESHAPE`` when only size-1 axes move, emitted once per (tensor, layout);
row-major reshapes done on the NHWC data when the layout allows (``reshape_val``), including the
flatten whose FC consumers take permuted weight columns (``colperm``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph, ModelError, Op, Tensor

F32 = np.dtype(np.float32)
NHWC = (0, 2, 3, 1)


@dataclass
class IOLayout:
    """How the graph's inputs/outputs relate to the source model's.

    ``inputs[k]`` / ``outputs[k]``: the permutation ``perm`` with
    ``graph tensor == source tensor.transpose(perm)``; ``source_input_shapes`` /
    ``source_output_shapes``: the shapes in the source model (NCHW for ONNX and Darknet).
    """
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    source_input_shapes: list = field(default_factory=list)
    source_output_shapes: list = field(default_factory=list)
    source_format: str = "onnx"


@dataclass
class _Val:
    shape: tuple                       # the ONNX shape
    t: int = -1                        # IR tensor index (activations)
    perm: tuple = ()                   # IR tensor == onnx.transpose(perm)
    const: np.ndarray | None = None    # a constant (ONNX layout)
    colperm: np.ndarray | None = None  # flattened in IR order: IR[:, k] == onnx[:, colperm[k]]
    src: "_Val | None" = None          # the value before that flatten

    @property
    def is_const(self) -> bool:
        return self.const is not None


def _identity(n: int) -> tuple:
    return tuple(range(n))


def _factor(a: tuple, b: tuple):
    """Group the non-1 axes of shapes a and b into runs with equal products (row-major
    reshape a -> b). Returns [(a_axes, b_axes), ...] or None."""
    ia = [i for i, d in enumerate(a) if d != 1]
    ib = [i for i, d in enumerate(b) if d != 1]
    groups = []
    i = j = 0
    while i < len(ia) and j < len(ib):
        ga, gb = [ia[i]], [ib[j]]
        pa, pb = a[ia[i]], b[ib[j]]
        i += 1
        j += 1
        while pa != pb:
            if pa < pb:
                if i >= len(ia):
                    return None
                ga.append(ia[i])
                pa *= a[ia[i]]
                i += 1
            else:
                if j >= len(ib):
                    return None
                gb.append(ib[j])
                pb *= b[ib[j]]
                j += 1
        groups.append((ga, gb))
    if i != len(ia) or j != len(ib):
        return None
    return groups


def _insert_ones(order: list, shape: tuple) -> tuple:
    """Complete a permutation of the non-1 axes of ``shape`` with its size-1 axes, each placed
    right after the largest smaller axis already placed (front if none)."""
    perm = list(order)
    for a in range(len(shape)):
        if shape[a] != 1:
            continue
        pos = 0
        for k, b in enumerate(perm):
            if b < a:
                pos = max(pos, k + 1)
        perm.insert(pos, a)
    return tuple(perm)


def _prune(g: Graph):
    """Drop ops whose outputs nobody reads, and unused tensors; renumber.
    Returns (graph, {old tensor index: new index})."""
    needed = set(g.outputs)
    keep_ops = []
    for op in reversed(g.ops):
        if any(o in needed for o in op.outputs):
            keep_ops.append(op)
            needed.update(i for i in op.inputs if i >= 0)
    keep_ops.reverse()
    used = set(g.inputs) | set(g.outputs)
    for op in keep_ops:
        used.update(i for i in op.inputs if i >= 0)
        used.update(op.outputs)
    remap = {}
    tensors = []
    for t in g.tensors:
        if t.index in used:
            remap[t.index] = len(tensors)
            t.index = len(tensors)
            tensors.append(t)
    ops = []
    for k, op in enumerate(keep_ops):
        ops.append(Op(k, op.type, [remap[i] if i >= 0 else -1 for i in op.inputs],
                      [remap[o] for o in op.outputs], op.attrs, op.version))
    return Graph(tensors, ops, [remap[i] for i in g.inputs], [remap[o] for o in g.outputs],
                 g.name, g.source), remap


class LayoutTracker:
    """IR construction and layout tracking, mixed into the importer (which owns ``tensors``,
    ``ops``, ``names``, ``producer``, ``readers``, ``mat_cache``, ``vals``,
    ``source``)."""

    # -- IR construction -------------------------------------------------------------------
    def _unique(self, name: str) -> str:
        name = name or "t"
        if name not in self.names:
            self.names.add(name)
            return name
        k = 1
        while f"{name}_{k}" in self.names:
            k += 1
        self.names.add(f"{name}_{k}")
        return f"{name}_{k}"

    def add_tensor(self, name, shape, dtype=F32, data=None) -> int:
        t = Tensor(len(self.tensors), self._unique(name), tuple(int(d) for d in shape),
                   np.dtype(dtype), None,
                   None if data is None else np.ascontiguousarray(data, dtype=dtype))
        self.tensors.append(t)
        return t.index

    def const_tensor(self, name, data, dtype=None) -> int:
        data = np.asarray(data)
        if dtype is None:
            dtype = F32 if data.dtype.kind == "f" else np.dtype(np.int32)
        return self.add_tensor(name, data.shape, dtype, np.asarray(data, dtype=dtype))

    def emit(self, op_type: str, inputs, out_name: str, out_shape, **attrs) -> int:
        y = self.add_tensor(out_name, out_shape)
        self.emit_to(op_type, inputs, [y], **attrs)
        return y

    def emit_to(self, op_type, inputs, outputs, **attrs) -> int:
        op = Op(len(self.ops), op_type, [int(i) for i in inputs], [int(o) for o in outputs],
                dict(attrs), 1)
        self.ops.append(op)
        for i in op.inputs:
            if i >= 0:
                self.readers[i] += 1
        for o in op.outputs:
            self.producer[o] = op.index
        return op.index

    def shape_of(self, t: int) -> tuple:
        return self.tensors[t].shape

    def rename(self, t: int, name: str) -> None:
        old = self.tensors[t].name
        if old == name:
            return
        self.names.discard(old)
        self.tensors[t].name = self._unique(name)

    def reshape_ir(self, t: int, shape, name: str) -> int:
        shape = tuple(int(d) for d in shape)
        if self.shape_of(t) == shape:
            return t
        s = self.const_tensor(name + "/shape", np.array(shape, np.int32))
        return self.emit("RESHAPE", [t, s], name, shape, new_shape=list(shape))

    def mat(self, v: _Val, target: tuple) -> int:
        """An IR tensor holding ``v`` in layout ``target``."""
        target = tuple(target)
        if v.is_const:
            return self.const_tensor("const", np.transpose(v.const, target) if v.const.ndim else
                                     v.const)
        if v.colperm is not None:
            src_t = self.mat(v.src, _identity(len(v.src.shape)))
            name = self.tensors[v.t].name + "/nchw"
            key = (src_t, "flat")
            if key not in self.mat_cache:
                self.mat_cache[key] = self.reshape_ir(src_t, v.shape, name)
            v = _Val(v.shape, self.mat_cache[key], _identity(len(v.shape)))
        if v.perm == target:
            return v.t
        key = (v.t, target)
        if key in self.mat_cache:
            return self.mat_cache[key]
        inv = np.argsort(v.perm)
        r = [int(inv[a]) for a in target]
        in_shape = self.shape_of(v.t)
        out_shape = tuple(in_shape[i] for i in r)
        base = self.tensors[v.t].name
        suffix = "/nhwc" if target == NHWC else ("/nchw" if target == _identity(len(target))
                                                 else "/t")
        non1 = [i for i in r if in_shape[i] != 1]
        if non1 == sorted(non1):
            y = self.reshape_ir(v.t, out_shape, base + suffix)
        else:
            p = self.const_tensor(base + suffix + "/perm", np.array(r, np.int32))
            y = self.emit("TRANSPOSE", [v.t, p], base + suffix, out_shape)
        self.mat_cache[key] = y
        return y

    def plain(self, v: _Val) -> int:
        return self.mat(v, _identity(len(v.shape)))

    def nhwc(self, node, v: _Val) -> int:
        if len(v.shape) != 4:
            raise self.err(node, f"expects a 4-D NCHW input, got shape {list(v.shape)}")
        return self.mat(v, NHWC)

    def new_val(self, shape, t, perm) -> _Val:
        return _Val(tuple(int(d) for d in shape), t, tuple(perm))

    def reshape_val(self, v: _Val, shape: tuple, name: str, allow_colperm: bool = False) -> _Val:
        """ONNX (row-major) reshape of ``v`` to ``shape``, on the IR data when possible."""
        shape = tuple(int(d) for d in shape)
        if v.is_const:
            return _Val(shape, const=v.const.reshape(shape))
        if int(np.prod(shape)) != int(np.prod(v.shape)):
            raise ModelError(f"{self.source}: cannot reshape {list(v.shape)} to {list(shape)}")
        if v.colperm is not None:
            v = _Val(v.shape, self.plain(v), _identity(len(v.shape)))
        groups = _factor(v.shape, shape)
        q = v.perm
        order = [a for a in q if v.shape[a] != 1]
        pos = {a: i for i, a in enumerate(order)}
        def block(ga):  # the group's axes occupy consecutive IR positions
            ps = sorted(pos[a] for a in ga)
            return ps == list(range(ps[0], ps[0] + len(ps)))
        contiguous = all(block(ga) for ga, _ in groups)
        ascending = contiguous and all([pos[a] for a in ga] == sorted(pos[a] for a in ga)
                                       for ga, _ in groups)
        if ascending:
            ordered = sorted(groups, key=lambda g: pos[g[0][0]])
            out_order = [b for _, gb in ordered for b in gb]
            perm = _insert_ones(out_order, shape)
            t = self.reshape_ir(v.t, [shape[a] for a in perm], name)
            return _Val(shape, t, perm)
        if (allow_colperm and len(shape) == 2 and q and q[0] == 0 and
                shape[0] == v.shape[0]):
            t = self.reshape_ir(v.t, shape, name)
            idx = np.arange(int(np.prod(v.shape[1:]))).reshape(v.shape[1:])
            colperm = idx.transpose([a - 1 for a in q[1:]]).ravel()
            return _Val(shape, t, _identity(2), colperm=colperm, src=v)
        if contiguous:
            # sort the axes inside each group, keep the groups where they are
            new_order = list(order)
            for ga, _ in groups:
                ps = sorted(pos[a] for a in ga)
                for p, a in zip(ps, sorted(ga)):
                    new_order[p] = a
            it = iter(new_order)
            target = tuple(a if v.shape[a] == 1 else next(it) for a in q)
            t = self.mat(v, target)
            return self.reshape_val(_Val(v.shape, t, target), shape, name)
        t = self.plain(v)
        return self.reshape_val(_Val(v.shape, t, _identity(len(v.shape))), shape, name)

    def const_like(self, c: np.ndarray, v: _Val, name: str) -> int:
        """Constant ``c`` (broadcastable to v.shape, ONNX layout) as an IR constant in v's
        layout."""
        c = np.asarray(c, dtype=np.float32)
        r = len(v.shape)
        if c.ndim > r:
            raise ModelError(f"{self.source}: constant of shape {list(c.shape)} does not "
                             f"broadcast to {list(v.shape)}")
        c = c.reshape((1,) * (r - c.ndim) + c.shape)
        c = np.transpose(c, v.perm)
        # drop leading 1s (TFLite broadcasting aligns trailing dims)
        while c.ndim > 1 and c.shape[0] == 1:
            c = c[0]
        return self.const_tensor(name, c)
