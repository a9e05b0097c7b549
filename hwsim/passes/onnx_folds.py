"""The ONNX importer's folds as graph passes (hwsim.frontends.onnx_reader runs ONNX_PASSES on the
float graph it builds, before pruning it).

The importer translates each ONNX node on its own: a BatchNormalization or a per-channel
Mul / Add / Sub / Div by constants becomes a 1x1 DEPTHWISE_CONV_2D (NHWC tensors) or a MUL and /
or ADD with constants, marked with the exact float64 per-channel ``(scale, shift)`` in the first
op's ``_affine`` attribute; a Relu / Clip(0, 6) / Clip(-1, 1) becomes RELU / RELU6 /
RELU_N1_TO_1. These passes then fold what TFLite's converter would fold, exactly in real
arithmetic. A graph may carry ``value_map`` (ONNX value name -> (tensor index, perm)): the
passes keep it current (a folded op's input value no longer has a tensor of its own).
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from ..ir import Graph, Op
from .base import GraphPass

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
FUSABLE = MAC_OPS + ("ADD", "SUB", "MUL")
ACTIVATIONS = ("RELU", "RELU6", "RELU_N1_TO_1")


class _Rewrite:
    """A graph being rewritten: ops replaced by copies, tensors renamed or refilled by copies,
    readers redirected; the input graph is left as it was."""

    def __init__(self, g: Graph):
        self.g = g
        self.tensors = list(g.tensors)
        self.ops = [dataclasses.replace(op, inputs=list(op.inputs), outputs=list(op.outputs),
                                        attrs=dict(op.attrs)) for op in g.ops]
        self.outputs = list(g.outputs)
        self.value_map = dict(getattr(g, "value_map", None) or {})
        self.removed: set[int] = set()
        self.producer = {t: k for k, op in enumerate(self.ops) for t in op.outputs}
        self.readers = Counter(i for op in self.ops for i in op.inputs if i >= 0)

    def fusable(self, t: int, types) -> int | None:
        """The position of the op producing tensor ``t`` if ``t`` has one reader, is no graph
        input or output, and the op is of ``types`` without a fused activation."""
        k = self.producer.get(t)
        if k is None or k in self.removed or self.readers[t] != 1 or t in self.g.inputs \
                or t in self.outputs:
            return None
        op = self.ops[k]
        if op.type not in types or op.attrs.get("fused_activation_function", "NONE") != "NONE":
            return None
        return k

    def absorb(self, t: int, group: list[int]) -> None:
        """Ops at positions ``group`` vanish; tensor ``t`` (their input) takes the place and
        the name of their output: readers, graph outputs and value_map follow."""
        r = self.ops[group[-1]].outputs[0]
        self.removed.update(group)
        self.tensors[t] = dataclasses.replace(self.tensors[t], name=self.tensors[r].name)
        for k, op in enumerate(self.ops):
            if k not in self.removed:
                op.inputs = [t if i == r else i for i in op.inputs]
        self.readers[t] += self.readers[r] - 1
        self.outputs = [t if o == r else o for o in self.outputs]
        # the values the group read from t are gone (t now holds a later value)
        self.value_map = {n: ((t, p) if i == r else (i, p)) for n, (i, p) in
                          self.value_map.items() if i != t}

    def graph(self) -> Graph:
        ops = [op for k, op in enumerate(self.ops) if k not in self.removed]
        ops = [dataclasses.replace(op, index=k) for k, op in enumerate(ops)]
        out = Graph(self.tensors, ops, list(self.g.inputs), self.outputs, self.g.name,
                    self.g.source)
        for key, v in vars(self.g).items():  # io_layout and other attributes of the import
            if key not in ("tensors", "ops", "inputs", "outputs", "name", "source"):
                setattr(out, key, v)
        if hasattr(self.g, "value_map"):
            out.value_map = self.value_map
        return out


class FoldAffineIntoMac(GraphPass):
    """A per-channel affine ``y = x * scale + shift`` (an op group carrying ``_affine``: a
    BatchNormalization, a Mul / Add / Sub / Div by per-channel constants) right after a CONV_2D,
    DEPTHWISE_CONV_2D or FULLY_CONNECTED that nothing else reads is folded into its weights
    (``w * scale`` along the output channels) and bias (``b * scale + shift``), in float64 and
    rounded once to float32, as the importer did. Every ``_affine`` attribute is removed
    (an affine that does not fold stays the op group the importer emitted).

    Preserves: every graph output and every remaining tensor's value in real arithmetic; the
    op order; the MAC layer's output tensor (renamed to the affine's output).
    """

    def apply(self, g: Graph) -> Graph:
        rw = _Rewrite(g)
        for k, op in enumerate(rw.ops):
            if "_affine" not in op.attrs:
                continue
            scale, shift, n_ops = op.attrs.pop("_affine")
            x = op.inputs[0]
            m = rw.fusable(x, MAC_OPS)
            if m is None:
                continue
            mac = rw.ops[m]
            s = np.asarray(scale, np.float64)
            t = np.asarray(shift, np.float64)
            wt, bt = rw.tensors[mac.inputs[1]], rw.tensors[mac.inputs[2]]
            shape = [1] * wt.data.ndim
            shape[3 if mac.type == "DEPTHWISE_CONV_2D" else 0] = -1
            rw.tensors[wt.index] = dataclasses.replace(
                wt, data=(wt.data.astype(np.float64) * s.reshape(shape)).astype(np.float32))
            rw.tensors[bt.index] = dataclasses.replace(
                bt, data=(bt.data.astype(np.float64) * s + t).astype(np.float32))
            rw.absorb(x, list(range(k, k + int(n_ops))))
        return rw.graph()


class FuseActivation(GraphPass):
    """RELU / RELU6 / RELU_N1_TO_1 right after a CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
    ADD, SUB or MUL that nothing else reads becomes that op's
    ``fused_activation_function`` (TFLite's converter does the same).

    Preserves: every graph output and every remaining tensor's value; the op order; the
    producer's output tensor (renamed to the activation's output).
    """

    def apply(self, g: Graph) -> Graph:
        rw = _Rewrite(g)
        for k, op in enumerate(rw.ops):
            if op.type not in ACTIVATIONS or len(op.attrs) > 0:
                continue
            x = op.inputs[0]
            p = rw.fusable(x, FUSABLE)
            if p is None:
                continue
            rw.ops[p].attrs["fused_activation_function"] = op.type
            rw.absorb(x, [k])
        return rw.graph()
