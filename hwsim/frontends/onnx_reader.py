"""Read an ONNX model into hwsim's graph IR as a *float* graph, NHWC inside.

The result uses TFLite's op names and attributes (``CONV_2D`` with OHWI weights,
``DEPTHWISE_CONV_2D`` with ``[1, KH, KW, C]`` weights, ``FULLY_CONNECTED`` with ``[out, in]``,
``MAX_POOL_2D`` ...), float32 tensors with ``quant=None``, so that :mod:`hwsim.quant.quantize`
can turn the very same graph into a full-integer TFLite model.

    g = read_onnx("model.onnx")            # a hwsim.ir.Graph; g.io_layout describes the I/O

The importer is three modules: this one (the driver and the translation of each ONNX op),
:mod:`hwsim.frontends.onnx_layout` (IR construction and the NCHW/NHWC layout tracking below) and
:mod:`hwsim.frontends.onnx_fold` (constant folding of ONNX sub-graphs); quantized (QDQ /
QOperator) models go to :mod:`hwsim.frontends.onnx_quant`.

Layout. ONNX is NCHW; the IR is NHWC, like TFLite. Every ONNX value is tracked together with a
permutation ``perm`` such that ``IR tensor == onnx_value.transpose(perm)``; layout-sensitive ops
(conv, pooling, resize, LRN, BN) want ``perm == (0, 2, 3, 1)``, element-wise ops keep whatever
layout they get, ``Transpose`` only relabels the permutation (no op), and a ``TRANSPOSE`` (or a
``RESHAPE`` when only size-1 axes move) is emitted only where a consumer needs another layout.
``Reshape``/``Flatten``/``Squeeze``/``Unsqueeze`` are done on the NHWC data directly whenever the
row-major reshape is compatible with the current layout (e.g. ``[N, C, 1, 1] -> [N, C]``, the
ShuffleNet channel split ``[N, C, H, W] -> [N, g, C/g, H, W]``).

Flatten of an NHWC tensor with ``H*W > 1`` (e.g. ``[N, C, H, W] -> [N, C*H*W]``): when every
consumer is a ``Gemm``/``MatMul`` with a constant weight matrix, the data is flattened in NHWC
order and **the columns of the FC weights are permuted** to match (no TRANSPOSE, as TFLite's
converter does); otherwise a ``TRANSPOSE`` to NCHW is inserted before the ``RESHAPE``.

Graph inputs of rank 4 become NHWC inputs (``input_layout="nhwc"``, the default) and outputs are
returned in ONNX's layout (``output_layout="onnx"``; ``"native"`` keeps the IR layout, e.g.
NHWC detection maps). ``graph.io_layout`` (:class:`IOLayout`) records the permutations, so that
data in the ONNX layout can be converted (:func:`hwsim.quant.float_exec.to_graph_layout`).

Graph rewrites done while reading (all exact in real arithmetic):

* constant sub-graphs are folded (``Constant``, ``ConstantOfShape``, ``Shape`` of a static
  tensor, ``Unsqueeze`` of weights, ...; others through ``onnx.reference``);
* ``BatchNormalization`` and per-channel ``Mul``/``Add``/``Sub``/``Div`` by constants are folded
  into the preceding conv / FC when it has no other consumer; otherwise they become a 1x1
  ``DEPTHWISE_CONV_2D`` (NHWC tensors) or ``MUL``/``ADD`` with a constant;
* ``Relu``/``Clip(0, 6)``/``Clip(-1, 1)`` are fused into the preceding conv / FC / ADD / SUB /
  MUL (``fused_activation_function``) when it has no other consumer;
* ``Dropout``, ``Identity`` vanish; ``Sum`` becomes a chain of ``ADD``;
* ``LRN`` becomes ``LOCAL_RESPONSE_NORMALIZATION`` (radius ``(size-1)/2``, alpha ``alpha/size``)
  with TensorFlow's window ``[c - r, c + r]``, which the float executor implements; note that
  TFLite's reference kernel sums over ``[c - r, c + r)`` (one channel fewer), and that LRN has
  no integer kernel (models with LRN are float-only in hwsim);
* explicit pads: a TFLite ``SAME``/``VALID`` equivalent when there is one, else a ``PAD``
  (zeros; ``PADV2`` with -inf before a max pool) and a ``VALID`` op; an average pool whose
  padding TFLite cannot express (``count_include_pad=0``) is ``PAD`` + ``AVERAGE_POOL_2D`` +
  ``MUL`` by the constant map ``k*k / taps_inside``.

Supported ONNX ops (opset 7..21 semantics): Conv (incl. grouped and depthwise), Gemm, MatMul (2-D
constant B), BatchNormalization, Relu, Clip, LeakyRelu, Sigmoid, Tanh, HardSwish, Softmax,
MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean, Add, Sub, Mul, Div (by a
constant), Sum, Concat, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Pad (constant mode),
Slice, Split, Resize, Upsample, LRN, Dropout, Identity, and on constants anything
``onnx.reference`` evaluates (Constant, ConstantOfShape, Shape, Gather, Cast, ...).
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict

import numpy as np

from ..ir import Graph, ModelError, Op, Tensor
from ..passes import ONNX_PASSES, run_passes
from ..yamlio import brief
from .onnx_fold import (_ALWAYS_FOLD, MAX_CONSTANT_ELEMENTS, ConstantFolder,  # noqa: F401
                        _attrs, _cut, _elements, _plain)
from .onnx_layout import (F32, NHWC, IOLayout, LayoutTracker, _factor,  # noqa: F401
                          _identity, _insert_ones, _prune, _Val)
# (F32, _factor, _insert_ones, _prune and the fold helpers are re-exported: callers import
# them from here)

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
FUSABLE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL")

__all__ = ["read_onnx", "IOLayout", "onnx_to_graph"]


class _Importer(LayoutTracker, ConstantFolder):
    def __init__(self, model, batch: int, input_layout: str, output_layout: str, source: str):
        self.model = model
        self.g = model.graph
        self.source = source
        self.batch = int(batch)
        self.input_layout = input_layout
        self.output_layout = output_layout
        self.opset = 1
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = int(imp.version)
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.vals: dict[str, _Val] = {}
        self.names: set[str] = set()
        self.producer: dict[int, int] = {}
        self.readers: Counter = Counter()    # IR tensor -> number of IR ops reading it
        self.mat_cache: dict = {}
        self.uses: Counter = Counter()
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.g.node:
            for k, name in enumerate(node.input):
                if name:
                    self.uses[name] += 1
                    self.consumers[name].append((node, k))
        self.graph_outputs = [o.name for o in self.g.output]
        for name in self.graph_outputs:
            self.uses[name] += 1
        self.graph_inputs: list[int] = []

    # -- errors ----------------------------------------------------------------------------
    def err(self, node, msg: str) -> ModelError:
        if node is None:
            what = ""
        elif node.name:
            what = f"node {brief(node.name, 64)} ({_plain(node.op_type)})"
        else:
            what = f"{_plain(node.op_type)} node producing {brief(list(node.output), 80)}"
        return ModelError(f"{self.source}: {what}: {msg}" if what else f"{self.source}: {msg}")

    # -- values ----------------------------------------------------------------------------
    def val(self, node, k: int) -> _Val | None:
        if k >= len(node.input) or not node.input[k]:
            return None
        name = node.input[k]
        if name not in self.vals:
            raise self.err(node, f"input {brief(name, 64)} is not produced by any node, "
                                 f"initializer or graph input")
        return self.vals[name]

    def const(self, node, k: int, what: str = "", required: bool = True):
        v = self.val(node, k)
        if v is None:
            if required:
                raise self.err(node, f"input {k} ({what or 'constant'}) is missing")
            return None
        if not v.is_const:
            raise self.err(node, f"input {k} '{node.input[k]}' ({what or 'this input'}) must be "
                                 f"a constant (an initializer or computed from constants); "
                                 f"hwsim does not support it computed at run time")
        return v.const

    def act(self, node, k: int) -> _Val:
        v = self.val(node, k)
        if v is None:
            raise self.err(node, f"input {k} is missing")
        if v.is_const:
            raise self.err(node, f"input {k} '{node.input[k]}' is a constant; hwsim expects a "
                                 f"run-time tensor here")
        return v

    def set_out(self, node, k: int, v: _Val) -> None:
        self.vals[node.output[k]] = v

    def out_name(self, node, k: int = 0) -> str:
        return node.output[k] if k < len(node.output) and node.output[k] else \
            (node.name or node.op_type)

    # -- driver ----------------------------------------------------------------------------
    def run(self) -> Graph:
        from onnx import numpy_helper
        inits = {}
        for init in self.g.initializer:
            n = _elements(init.dims)
            if n is None or n > MAX_CONSTANT_ELEMENTS:
                raise ModelError(f"{self.source}: initializer {brief(init.name, 64)} has dims "
                                 f"{list(init.dims)[:8]} (at most {MAX_CONSTANT_ELEMENTS:,} "
                                 f"elements, each dimension >= 0)")
            try:
                inits[init.name] = numpy_helper.to_array(init)
            except Exception as e:  # noqa: BLE001 -- onnx/numpy report a bad tensor variously
                raise ModelError(f"{self.source}: initializer {brief(init.name, 64)} (dims "
                                 f"{list(init.dims)}, data type {init.data_type}) cannot be "
                                 f"read: {_cut(e)}") from None
            arr = inits[init.name]
            if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                raise ModelError(f"{self.source}: initializer {brief(init.name, 64)} holds NaN "
                                 f"or infinity (a float model to quantize needs finite weights)")
        for name, arr in inits.items():
            self.vals[name] = _Val(tuple(arr.shape), const=np.asarray(arr))
        src_in_shapes, in_perms = [], []
        for inp in self.g.input:
            if inp.name in inits:
                continue
            tt = inp.type.tensor_type
            if tt.elem_type not in (1, 10, 11):  # float, float16, double
                raise ModelError(f"{self.source}: input {brief(inp.name, 64)} has element type "
                                 f"{tt.elem_type}; hwsim quantizes float inputs")
            dims = []
            for k, d in enumerate(tt.shape.dim):
                if d.HasField("dim_value") and d.dim_value > 0:
                    dims.append(int(d.dim_value))
                elif k == 0:
                    dims.append(self.batch)
                else:
                    raise ModelError(f"{self.source}: input {brief(inp.name, 64)} has a symbolic "
                                     f"dimension {k} ('{d.dim_param}'); hwsim needs static "
                                     f"shapes except the batch")
            shape = tuple(dims)
            perm = NHWC if (len(shape) == 4 and self.input_layout == "nhwc") else \
                _identity(len(shape))
            t = self.add_tensor(inp.name, [shape[a] for a in perm])
            self.graph_inputs.append(t)
            self.vals[inp.name] = _Val(shape, t, perm)
            src_in_shapes.append(shape)
            in_perms.append(perm)
        if not self.graph_inputs:
            raise ModelError(f"{self.source}: the model has no (non-initializer) input")
        for node in self.g.node:
            self.node(node)
        outputs, out_perms, src_out_shapes = [], [], []
        for name in self.graph_outputs:
            v = self.vals.get(name)
            if v is None:
                raise ModelError(f"{self.source}: graph output {brief(name, 64)} is never "
                                 f"produced")
            if v.is_const:
                raise ModelError(f"{self.source}: graph output {brief(name, 64)} is a constant")
            if self.output_layout == "onnx" or v.colperm is not None:
                t = self.plain(v)
                perm = _identity(len(v.shape))
            else:
                t, perm = v.t, v.perm
            if t in outputs or t in self.graph_inputs:
                t = self.reshape_ir(t, self.shape_of(t), name)  # distinct tensor per output
            if self.tensors[t].name != name:
                # the output carries the ONNX name; rename an intermediate of the same name
                for other in self.tensors:
                    if other.name == name and other.index != t:
                        self.rename(other.index, name + "/pre")
                self.rename(t, name)
            outputs.append(t)
            out_perms.append(perm)
            src_out_shapes.append(v.shape)
        graph = Graph(self.tensors, self.ops, self.graph_inputs, outputs,
                      self.g.name or "onnx", self.source)
        graph.value_map = {name: (v.t, tuple(v.perm)) for name, v in self.vals.items()
                           if not v.is_const and v.colperm is None}
        graph = run_passes(ONNX_PASSES, graph)  # the folds (hwsim/passes/onnx_folds.py)
        value_map = graph.value_map
        graph, remap = _prune(graph)
        graph.io_layout = IOLayout(in_perms, out_perms, src_in_shapes, src_out_shapes, "onnx")
        graph.value_map = {name: (remap[t], perm) for name, (t, perm) in value_map.items()
                           if t in remap}
        return graph

    def node(self, node) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise self.err(node, f"op domain '{node.domain}' is not supported")
        ins = [self.vals.get(n) if n else None for n in node.input]
        for n, v in zip(node.input, ins):
            if n and v is None:
                raise self.err(node, f"input '{n}' is not produced by any earlier node, "
                                     f"initializer or graph input (is the graph sorted?)")
        present = [v for v in ins if v is not None]
        fold = op in _ALWAYS_FOLD or (present and all(v.is_const for v in present))
        handler = None if fold else getattr(self, "op_" + op, None)
        if not fold and handler is None:
            known = sorted(n[3:] for n in dir(self) if n.startswith("op_"))
            raise self.err(node, f"unsupported ONNX op {op}; supported: {', '.join(known)}")
        try:
            if fold:
                self.fold(node, ins)
            else:
                handler(node, _attrs(node))
        except ModelError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError,
                AttributeError) as e:
            # attributes or inputs the op's checks above did not foresee (a hand-edited or
            # corrupt file): name the node rather than show a traceback
            raise self.err(node, f"cannot import this node ({_cut(e)})") from None

    # -- helpers for ops -------------------------------------------------------------------
    def _spatial(self, node, a, x_shape, k_shape, *, dilations=None, pool=False,
                 ceil_mode=False):
        """Per spatial axis: (in, k_eff, stride, pad_begin, pad_end, out) with ONNX semantics."""
        nsp = len(x_shape) - 2
        if nsp != 2:
            raise self.err(node, f"only 2-D spatial ops are supported (input {list(x_shape)})")
        strides = list(a.get("strides", [1] * nsp))
        dil = list(dilations or a.get("dilations", [1] * nsp))
        pads = list(a.get("pads", [0] * (2 * nsp)))
        auto = a.get("auto_pad", "NOTSET")
        for key, vals, n in (("strides", strides, nsp), ("dilations", dil, nsp),
                             ("kernel_shape", list(k_shape), nsp), ("pads", pads, 2 * nsp)):
            if len(vals) != n or any(not isinstance(v, (int, np.integer)) for v in vals):
                raise self.err(node, f"{key} {vals[:8]}: expected {n} integers")
            if key != "pads" and any(v < 1 for v in vals):
                raise self.err(node, f"{key} {vals}: each must be >= 1")
        res = []
        for d in range(nsp):
            n, k, s, dl = x_shape[2 + d], k_shape[d], strides[d], dil[d]
            ke = (k - 1) * dl + 1
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                out = -(-n // s)
                total = max((out - 1) * s + ke - n, 0)
                pb = total // 2 if auto == "SAME_UPPER" else total - total // 2
                pe = total - pb
            elif auto == "VALID":
                pb = pe = 0
                out = (n - ke) // s + 1
            else:
                pb, pe = pads[d], pads[d + nsp]
                if pb < 0 or pe < 0:
                    raise self.err(node, f"negative pads {pads} are not supported")
                if ceil_mode:
                    out = -(-(n + pb + pe - ke) // s) + 1
                    # the last window must start inside the input or the leading padding
                    if (out - 1) * s >= n + pb:
                        out -= 1
                    pe = max(pe, (out - 1) * s + ke - n - pb)
                else:
                    out = (n + pb + pe - ke) // s + 1
            if out <= 0:
                raise self.err(node, f"output size {out} along spatial axis {d} (input {n}, "
                                     f"kernel {ke}, stride {s}, pads {pb}/{pe})")
            res.append((n, ke, s, pb, pe, out))
        return res

    @staticmethod
    def _tfl_padding(sp) -> str | None:
        """'SAME' or 'VALID' if TFLite's padding gives the same windows, else None."""
        same = valid = True
        for n, ke, s, pb, pe, out in sp:
            o_same = -(-n // s)
            total = max((o_same - 1) * s + ke - n, 0)
            if not (out == o_same and pb == total // 2):
                same = False
            if not (out == (n - ke) // s + 1 and pb == 0):
                valid = False
        if valid:
            return "VALID"
        if same:
            return "SAME"
        return None

    def _pad_nhwc(self, x_t, sp, name, value=0.0) -> int:
        n, h, w, c = self.shape_of(x_t)
        (_, _, _, pt, pb, _), (_, _, _, pl, pr, _) = sp
        pads = np.array([[0, 0], [pt, pb], [pl, pr], [0, 0]], np.int32)
        p = self.const_tensor(name + "/paddings", pads)
        shape = (n, h + pt + pb, w + pl + pr, c)
        if value == 0.0:
            return self.emit("PAD", [x_t, p], name, shape)
        v = self.const_tensor(name + "/value", np.array([value], np.float32))
        return self.emit("PADV2", [x_t, p, v], name, shape)

    def _out_nhwc(self, node, y_t) -> None:
        s = self.shape_of(y_t)
        self.set_out(node, 0, self.new_val((s[0], s[3], s[1], s[2]), y_t, NHWC))

    # -- MAC ops ---------------------------------------------------------------------------
    def op_Conv(self, node, a):
        x = self.act(node, 0)
        w = np.asarray(self.const(node, 1, "weights"), dtype=np.float32)
        b = self.const(node, 2, "bias", required=False)
        if len(x.shape) != 4 or w.ndim != 4:
            raise self.err(node, f"only 2-D convolutions are supported (input {list(x.shape)}, "
                                 f"weights {list(w.shape)})")
        group = int(a.get("group", 1))
        cout, cin_g, kh, kw = w.shape
        cin = x.shape[1]
        if cin != cin_g * group or cout % group:
            raise self.err(node, f"input channels {cin}, weights {list(w.shape)} and group "
                                 f"{group} do not agree")
        ks = a.get("kernel_shape", [kh, kw])
        if list(ks) != [kh, kw]:
            raise self.err(node, f"kernel_shape {ks} differs from the weights {list(w.shape)}")
        sp = self._spatial(node, a, x.shape, (kh, kw))
        dil = list(a.get("dilations", [1, 1]))
        name = self.out_name(node)
        xt = self.nhwc(node, x)
        padding = self._tfl_padding(sp)
        if padding is None:
            xt = self._pad_nhwc(xt, sp, name + "/pad")
            padding = "VALID"
        bias = np.zeros(cout, np.float32) if b is None else np.asarray(b, np.float32).reshape(-1)
        oh, ow = sp[0][5], sp[1][5]
        n = x.shape[0]
        common = dict(padding=padding, stride_h=int(sp[0][2]), stride_w=int(sp[1][2]),
                      dilation_h_factor=int(dil[0]), dilation_w_factor=int(dil[1]),
                      fused_activation_function="NONE")
        if group > 1 and cin_g == 1 and cout % cin == 0 and group == cin:
            wt = self.const_tensor(name + "/weights", w.transpose(1, 2, 3, 0))  # [1,KH,KW,O]
            bt = self.const_tensor(name + "/bias", bias)
            y = self.emit("DEPTHWISE_CONV_2D", [xt, wt, bt], name, (n, oh, ow, cout),
                          depth_multiplier=cout // cin, **common)
        else:
            wt = self.const_tensor(name + "/weights", w.transpose(0, 2, 3, 1))  # OHWI
            bt = self.const_tensor(name + "/bias", bias)
            y = self.emit("CONV_2D", [xt, wt, bt], name, (n, oh, ow, cout), **common)
        self._out_nhwc(node, y)

    def _fc(self, node, xv: _Val, w_oi: np.ndarray, bias: np.ndarray, name: str):
        w_oi = np.asarray(w_oi, np.float32)
        if xv.colperm is not None:
            xt = xv.t
            w_oi = w_oi[:, xv.colperm]
        else:
            xt = self.plain(xv)
        out_shape = tuple(xv.shape[:-1]) + (w_oi.shape[0],)
        wt = self.const_tensor(name + "/weights", w_oi)
        bt = self.const_tensor(name + "/bias", np.asarray(bias, np.float32).reshape(-1))
        y = self.emit("FULLY_CONNECTED", [xt, wt, bt], name, out_shape,
                      fused_activation_function="NONE", weights_format="DEFAULT",
                      keep_num_dims=len(out_shape) != 2)
        self.set_out(node, 0, self.new_val(out_shape, y, _identity(len(out_shape))))

    def op_Gemm(self, node, a):
        x = self.act(node, 0)
        bmat = np.asarray(self.const(node, 1, "B (weights)"), np.float32)
        c = self.const(node, 2, "C (bias)", required=False)
        if a.get("transA", 0):
            raise self.err(node, "transA=1 on a run-time input is not supported")
        if len(x.shape) != 2 or bmat.ndim != 2:
            raise self.err(node, f"expects a 2-D input and weights, got {list(x.shape)} and "
                                 f"{list(bmat.shape)}")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        w = (bmat if a.get("transB", 0) else bmat.T) * np.float32(alpha)
        if w.shape[1] != x.shape[1]:
            raise self.err(node, f"weights {list(w.shape)} do not match the input "
                                 f"{list(x.shape)}")
        cout = w.shape[0]
        if c is None:
            bias = np.zeros(cout, np.float32)
        else:
            cb = np.broadcast_to(np.asarray(c, np.float32) * np.float32(beta), (x.shape[0], cout))
            if not np.all(cb == cb[:1]):
                raise self.err(node, "a bias C that varies along the batch is not supported")
            bias = cb[0]
        self._fc(node, x, w, bias, self.out_name(node))

    def op_MatMul(self, node, a):
        x = self.act(node, 0)
        bmat = np.asarray(self.const(node, 1, "B (weights)"), np.float32)
        if bmat.ndim != 2 or len(x.shape) < 2 or x.shape[-1] != bmat.shape[0]:
            raise self.err(node, f"only x @ W with a constant 2-D W is supported (x "
                                 f"{list(x.shape)}, W {list(bmat.shape)})")
        self._fc(node, x, bmat.T, np.zeros(bmat.shape[1], np.float32), self.out_name(node))

    # -- per-channel affine (BN, Mul/Add by constants) -------------------------------------
    def _affine(self, node, x: _Val, scale, shift, name, x_name=None):
        """y = x * scale + shift, scale/shift per channel (ONNX axis 1) or scalar."""
        x_name = node.input[0] if x_name is None else x_name
        c = x.shape[1] if len(x.shape) >= 2 else 1
        s = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1), (c,)).astype(np.float64)
        t = np.broadcast_to(np.asarray(shift, np.float64).reshape(-1), (c,)).astype(np.float64)
        if x.colperm is not None:
            x = _Val(x.shape, self.plain(x), _identity(len(x.shape)))
        channel_last = len(x.shape) >= 2 and x.perm[-1] == 1
        # the op group below carries the exact affine: passes.FoldAffineIntoMac folds it into
        # a MAC op right before it (channel-last data only, where the channel is the MAC's)
        affine = (s, t) if channel_last else None
        if len(x.shape) == 4 and channel_last:
            xt = self.nhwc(node, x)
            wt = self.const_tensor(name + "/weights", s.reshape(1, 1, 1, c))
            bt = self.const_tensor(name + "/bias", t)
            y = self.emit("DEPTHWISE_CONV_2D", [xt, wt, bt], name, self.shape_of(xt),
                          padding="VALID", stride_h=1, stride_w=1, depth_multiplier=1,
                          dilation_h_factor=1, dilation_w_factor=1,
                          fused_activation_function="NONE")
            self._mark_affine(affine, 1)
            self._out_nhwc(node, y)
            return
        # general: MUL then ADD with constants in x's layout
        cshape = (1, c) + (1,) * (len(x.shape) - 2) if len(x.shape) >= 2 else (c,)
        cur = x
        first = len(self.ops)
        if not np.all(s == 1):
            ct = self.const_like(s.reshape(cshape), cur, name + "/scale")
            yt = self.emit("MUL", [cur.t, ct], name + ("/mul" if np.any(t != 0) else ""),
                           self.shape_of(cur.t), fused_activation_function="NONE")
            cur = _Val(cur.shape, yt, cur.perm)
        if np.any(t != 0) or cur is x:
            ct = self.const_like(t.reshape(cshape), cur, name + "/shift")
            yt = self.emit("ADD", [cur.t, ct], name, self.shape_of(cur.t),
                           fused_activation_function="NONE")
            cur = _Val(cur.shape, yt, cur.perm)
        self._mark_affine(affine, len(self.ops) - first, first)
        self.set_out(node, 0, cur)

    def _mark_affine(self, affine, n_ops: int, first: int | None = None) -> None:
        """The first of the ``n_ops`` ops just emitted computes ``affine`` (scale, shift)."""
        if affine is not None:
            self.ops[len(self.ops) - n_ops if first is None else first].attrs["_affine"] = \
                (affine[0], affine[1], n_ops)

    def op_BatchNormalization(self, node, a):
        x = self.act(node, 0)
        scale = np.asarray(self.const(node, 1, "scale"), np.float64)
        bias = np.asarray(self.const(node, 2, "B"), np.float64)
        mean = np.asarray(self.const(node, 3, "mean"), np.float64)
        var = np.asarray(self.const(node, 4, "var"), np.float64)
        eps = float(a.get("epsilon", 1e-5))
        if a.get("training_mode", 0):
            raise self.err(node, "training_mode=1 is not supported")
        s = scale / np.sqrt(var + eps)
        t = bias - mean * s
        self._affine(node, x, s, t, self.out_name(node))

    def _per_channel(self, c: np.ndarray, x: _Val):
        """c as a per-channel vector (ONNX axis 1) if it broadcasts that way, else None."""
        c = np.asarray(c)
        r = len(x.shape)
        if c.ndim > r:
            return None
        if c.size == 1:
            return c.reshape(1)
        cs = (1,) * (r - c.ndim) + c.shape
        if r >= 2 and all(d == 1 for k, d in enumerate(cs) if k != 1) and cs[1] == x.shape[1]:
            return c.reshape(-1)
        return None

    def _binary(self, node, a, kind):
        v0, v1 = self.val(node, 0), self.val(node, 1)
        name = self.out_name(node)
        if v0.is_const and v1.is_const:
            raise self.err(node, "internal: constant operands should have been folded")
        if v0.is_const or v1.is_const:
            x, c = (v1, v0.const) if v0.is_const else (v0, v1.const)
            c_first = v0.is_const
            xn = node.input[1] if c_first else node.input[0]
            out_shape = np.broadcast_shapes(x.shape, np.shape(c))
            if tuple(out_shape) == tuple(x.shape):
                pc = self._per_channel(c, x)
                if pc is not None:
                    pc = pc.astype(np.float64)
                    if kind == "ADD":
                        return self._affine(node, x, 1.0, pc, name, xn)
                    if kind == "SUB":
                        return self._affine(node, x, -1.0 if c_first else 1.0,
                                            pc if c_first else -pc, name, xn)
                    if kind == "MUL":
                        return self._affine(node, x, pc, 0.0, name, xn)
                    if kind == "DIV" and not c_first:
                        return self._affine(node, x, 1.0 / pc, 0.0, name, xn)
            if kind == "DIV":
                if c_first:
                    raise self.err(node, "division of a constant by a run-time tensor is not "
                                         "supported")
                c, kind = 1.0 / np.asarray(c, np.float64), "MUL"
            if len(out_shape) != len(x.shape):
                x = self.reshape_val(x, (1,) * (len(out_shape) - len(x.shape)) + x.shape,
                                     name + "/expand")
            if x.colperm is not None:
                x = _Val(x.shape, self.plain(x), _identity(len(x.shape)))
            ct = self.const_like(c, x, name + "/const")
            ins = [ct, x.t] if c_first else [x.t, ct]
            ir_out = tuple(np.broadcast_shapes(self.shape_of(x.t), self.shape_of(ct)))
            y = self.emit(kind, ins, name, ir_out, fused_activation_function="NONE")
            self.set_out(node, 0, _Val(tuple(out_shape), y, x.perm))
            return
        if kind == "DIV":
            raise self.err(node, "division by a run-time tensor is not supported")
        out_shape = tuple(np.broadcast_shapes(v0.shape, v1.shape))
        r = len(out_shape)
        vs = []
        for k, v in enumerate((v0, v1)):
            if len(v.shape) < r:
                v = self.reshape_val(v, (1,) * (r - len(v.shape)) + v.shape, f"{name}/expand{k}")
            vs.append(v)
        ref = vs[0] if vs[0].colperm is None else vs[1]
        perm = ref.perm if ref.colperm is None else _identity(r)
        t0, t1 = self.mat(vs[0], perm), self.mat(vs[1], perm)
        ir_out = tuple(np.broadcast_shapes(self.shape_of(t0), self.shape_of(t1)))
        y = self.emit(kind, [t0, t1], name, ir_out, fused_activation_function="NONE")
        self.set_out(node, 0, _Val(out_shape, y, perm))

    def op_Add(self, node, a):
        self._binary(node, a, "ADD")

    def op_Sub(self, node, a):
        self._binary(node, a, "SUB")

    def op_Mul(self, node, a):
        self._binary(node, a, "MUL")

    def op_Div(self, node, a):
        self._binary(node, a, "DIV")

    def op_Sum(self, node, a):
        vals = [self.val(node, k) for k in range(len(node.input))]
        if len(vals) == 1:
            self.set_out(node, 0, vals[0])
            return
        if any(v.is_const for v in vals):
            raise self.err(node, "Sum with constant operands is not supported")
        name = self.out_name(node)
        out_shape = tuple(np.broadcast_shapes(*[v.shape for v in vals]))
        ref = next((v for v in vals if v.colperm is None and len(v.shape) == len(out_shape)),
                   None)
        perm = ref.perm if ref is not None else _identity(len(out_shape))
        ts = []
        for k, v in enumerate(vals):
            if len(v.shape) < len(out_shape):
                v = self.reshape_val(v, (1,) * (len(out_shape) - len(v.shape)) + v.shape,
                                     f"{name}/expand{k}")
            ts.append(self.mat(v, perm))
        cur = ts[0]
        for k, t in enumerate(ts[1:], start=1):
            shp = tuple(np.broadcast_shapes(self.shape_of(cur), self.shape_of(t)))
            cur = self.emit("ADD", [cur, t], name if k == len(ts) - 1 else f"{name}/add{k}",
                            shp, fused_activation_function="NONE")
        self.set_out(node, 0, _Val(out_shape, cur, perm))

    # -- activations -----------------------------------------------------------------------
    def _act(self, node, kind: str, **attrs):
        x = self.act(node, 0)
        name = self.out_name(node)
        # RELU / RELU6 / RELU_N1_TO_1 after a MAC or ADD/SUB/MUL: passes.FuseActivation
        if x.colperm is not None:
            x = _Val(x.shape, self.plain(x), _identity(len(x.shape)))
        y = self.emit(kind, [x.t], name, self.shape_of(x.t), **attrs)
        self.set_out(node, 0, _Val(x.shape, y, x.perm))

    def op_Relu(self, node, a):
        self._act(node, "RELU")

    def op_Clip(self, node, a):
        if self.opset >= 11:
            lo = self.const(node, 1, "min", required=False)
            hi = self.const(node, 2, "max", required=False)
        else:
            lo, hi = a.get("min"), a.get("max")
        lo = -math.inf if lo is None else float(np.asarray(lo).reshape(-1)[0])
        hi = math.inf if hi is None else float(np.asarray(hi).reshape(-1)[0])
        kinds = {(0.0, 6.0): "RELU6", (0.0, math.inf): "RELU", (-1.0, 1.0): "RELU_N1_TO_1",
                 (0.0, 1.0): "RELU_0_TO_1"}
        if hi < -3.0e38 or lo > 3.0e38:
            pass
        lo = -math.inf if lo < -3.0e38 else lo
        hi = math.inf if hi > 3.0e38 else hi
        kind = kinds.get((lo, hi))
        if (lo, hi) == (-math.inf, math.inf):
            self.set_out(node, 0, self.act(node, 0))
            return
        if kind is None:
            raise self.err(node, f"Clip({lo}, {hi}) has no TFLite equivalent; supported: "
                                 f"(0, 6), (0, inf), (-1, 1), (0, 1)")
        self._act(node, kind)

    def op_LeakyRelu(self, node, a):
        self._act(node, "LEAKY_RELU", alpha=float(a.get("alpha", 0.01)))

    def op_Sigmoid(self, node, a):
        self._act(node, "LOGISTIC")

    def op_Tanh(self, node, a):
        self._act(node, "TANH")

    def op_HardSwish(self, node, a):
        self._act(node, "HARD_SWISH")

    def op_Softmax(self, node, a):
        x = self.act(node, 0)
        name = self.out_name(node)
        r = len(x.shape)
        if self.opset >= 13:
            axis = int(a.get("axis", -1)) % r
            if x.colperm is not None:
                x = _Val(x.shape, self.plain(x), _identity(r))
            perm = x.perm
            if perm[-1] != axis:
                perm = tuple(p for p in x.perm if p != axis) + (axis,)
            xt = self.mat(x, perm)
            y = self.emit("SOFTMAX", [xt], name, self.shape_of(xt), beta=1.0)
            self.set_out(node, 0, _Val(x.shape, y, perm))
            return
        axis = int(a.get("axis", 1)) % r
        two = (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
        if (x.shape == two or r == 2) and x.colperm is None and x.perm == _identity(r):
            y = self.emit("SOFTMAX", [x.t], name, self.shape_of(x.t), beta=1.0)
            self.set_out(node, 0, _Val(x.shape, y, x.perm))
            return
        flat = self.reshape_val(x, two, name + "/2d")
        xt = self.plain(flat)
        y = self.emit("SOFTMAX", [xt], name + ("/sm" if two != x.shape else ""), two,
                      beta=1.0)
        out = _Val(two, y, (0, 1))
        if two != x.shape:
            out = self.reshape_val(out, x.shape, name)
        self.set_out(node, 0, out)

    def op_LRN(self, node, a):
        x = self.act(node, 0)
        size = int(a["size"])
        if size % 2 == 0:
            raise self.err(node, f"LRN size {size} is even; TFLite's LRN window is symmetric")
        xt = self.nhwc(node, x)
        alpha = float(a.get("alpha", 1e-4)) / size
        y = self.emit("LOCAL_RESPONSE_NORMALIZATION", [xt], self.out_name(node),
                      self.shape_of(xt), _options="LocalResponseNormalizationOptions",
                      radius=(size - 1) // 2, bias=float(a.get("bias", 1.0)), alpha=alpha,
                      beta=float(a.get("beta", 0.75)))
        self._out_nhwc(node, y)

    def op_Dropout(self, node, a):
        self.set_out(node, 0, self.act(node, 0))
        if len(node.output) > 1 and node.output[1] and self.uses[node.output[1]]:
            raise self.err(node, "the dropout mask output is used; not supported")

    def op_Identity(self, node, a):
        self.set_out(node, 0, self.act(node, 0))

    # -- pooling ---------------------------------------------------------------------------
    def op_MaxPool(self, node, a):
        x = self.act(node, 0)
        k = list(a["kernel_shape"])
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.err(node, "dilated max pooling is not supported")
        if a.get("storage_order", 0):
            raise self.err(node, "storage_order=1 is not supported")
        if len(node.output) > 1 and node.output[1]:
            raise self.err(node, "the Indices output of MaxPool is not supported")
        sp = self._spatial(node, a, x.shape, k, ceil_mode=bool(a.get("ceil_mode", 0)))
        name = self.out_name(node)
        xt = self.nhwc(node, x)
        padding = self._tfl_padding(sp)
        if padding is None:
            xt = self._pad_nhwc(xt, sp, name + "/pad", value=-np.inf)
            padding = "VALID"
        y = self.emit("MAX_POOL_2D", [xt], name, (x.shape[0], sp[0][5], sp[1][5], x.shape[1]),
                      padding=padding, stride_h=int(sp[0][2]), stride_w=int(sp[1][2]),
                      filter_height=int(k[0]), filter_width=int(k[1]),
                      fused_activation_function="NONE")
        self._out_nhwc(node, y)

    def op_AveragePool(self, node, a):
        x = self.act(node, 0)
        k = list(a["kernel_shape"])
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.err(node, "dilated average pooling is not supported")
        include = bool(a.get("count_include_pad", 0))
        sp = self._spatial(node, a, x.shape, k, ceil_mode=bool(a.get("ceil_mode", 0)))
        name = self.out_name(node)
        xt = self.nhwc(node, x)
        oh, ow = sp[0][5], sp[1][5]
        attrs = dict(stride_h=int(sp[0][2]), stride_w=int(sp[1][2]), filter_height=int(k[0]),
                     filter_width=int(k[1]), fused_activation_function="NONE")
        no_pad = all(pb == 0 and pe == 0 for _, _, _, pb, pe, _ in sp)
        padding = self._tfl_padding(sp)
        if padding is not None and (not include or padding == "VALID" or no_pad):
            y = self.emit("AVERAGE_POOL_2D", [xt], name, (x.shape[0], oh, ow, x.shape[1]),
                          padding=padding, **attrs)
            self._out_nhwc(node, y)
            return
        # PAD (zeros) + VALID average (divides by k*k) + MUL by k*k / ONNX divisor
        divs = []
        for (n, ke, s, pb, pe, out) in sp:
            d = np.empty(out)
            for o in range(out):
                start = o * s - pb
                end = start + ke
                if include:
                    lo, hi = start, min(end, n + pe)
                else:
                    lo, hi = max(start, 0), min(end, n)
                d[o] = hi - lo
            divs.append(d)
        divisor = np.outer(divs[0], divs[1])
        # ceil mode windows may extend past the explicit padding: pad enough for them
        sp2 = [(n, ke, s, pb, max(pe, (out - 1) * s + ke - n - pb), out)
               for (n, ke, s, pb, pe, out) in sp]
        pt = self._pad_nhwc(xt, sp2, name + "/pad")
        full = float(k[0] * k[1])
        needs_mul = bool(np.any(divisor != full))
        y = self.emit("AVERAGE_POOL_2D", [pt], name + ("/avg" if needs_mul else ""),
                      (x.shape[0], oh, ow, x.shape[1]), padding="VALID", **attrs)
        if needs_mul:
            corr = self.const_tensor(name + "/count_correction",
                                     (full / divisor).astype(np.float32).reshape(1, oh, ow, 1))
            y = self.emit("MUL", [y, corr], name, (x.shape[0], oh, ow, x.shape[1]),
                          fused_activation_function="NONE")
        self._out_nhwc(node, y)

    def op_GlobalAveragePool(self, node, a):
        x = self.act(node, 0)
        xt = self.nhwc(node, x)
        axes = self.const_tensor(self.out_name(node) + "/axes", np.array([1, 2], np.int32))
        y = self.emit("MEAN", [xt, axes], self.out_name(node), (x.shape[0], 1, 1, x.shape[1]),
                      keep_dims=True)
        self._out_nhwc(node, y)

    def op_GlobalMaxPool(self, node, a):
        x = self.act(node, 0)
        xt = self.nhwc(node, x)
        n, h, w, c = self.shape_of(xt)
        y = self.emit("MAX_POOL_2D", [xt], self.out_name(node), (n, 1, 1, c), padding="VALID",
                      stride_h=1, stride_w=1, filter_height=h, filter_width=w,
                      fused_activation_function="NONE")
        self._out_nhwc(node, y)

    def op_ReduceMean(self, node, a):
        x = self.act(node, 0)
        r = len(x.shape)
        if "axes" in a:
            axes = list(a["axes"])
        else:
            c = self.const(node, 1, "axes", required=False)
            axes = list(range(r)) if c is None else [int(v) for v in np.asarray(c).reshape(-1)]
        axes = sorted({ax % r for ax in axes})
        keep = bool(a.get("keepdims", 1))
        if x.colperm is not None:
            x = _Val(x.shape, self.plain(x), _identity(r))
        ir_axes = sorted(x.perm.index(ax) for ax in axes)
        at = self.const_tensor(self.out_name(node) + "/axes", np.array(ir_axes, np.int32))
        in_ir = self.shape_of(x.t)
        if keep:
            out_ir = tuple(1 if i in ir_axes else d for i, d in enumerate(in_ir))
            out_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
            perm = x.perm
        else:
            out_ir = tuple(d for i, d in enumerate(in_ir) if i not in ir_axes)
            out_shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
            kept = [p for p in x.perm if p not in axes]
            remap = {old: new for new, old in enumerate(sorted(kept))}
            perm = tuple(remap[p] for p in kept)
        y = self.emit("MEAN", [x.t, at], self.out_name(node), out_ir, keep_dims=keep)
        self.set_out(node, 0, _Val(out_shape, y, perm))

    # -- shape ops -------------------------------------------------------------------------
    def _all_fc_consumers(self, name: str) -> bool:
        if name in self.graph_outputs:
            return False
        cons = self.consumers.get(name, [])
        if not cons:
            return False
        for n, k in cons:
            if k != 0 or n.op_type not in ("Gemm", "MatMul"):
                return False
            if n.op_type == "Gemm" and any(at.name == "transA" and at.i for at in n.attribute):
                return False
            w = self.vals.get(n.input[1]) if len(n.input) > 1 else None
            if w is None or not w.is_const:
                return False
        return True

    def op_Reshape(self, node, a):
        x = self.act(node, 0)
        if self.opset >= 5:
            shape = [int(d) for d in np.asarray(self.const(node, 1, "shape")).reshape(-1)]
        else:
            shape = list(a["shape"])
        allowzero = int(a.get("allowzero", 0))
        out = []
        for i, d in enumerate(shape):
            out.append(x.shape[i] if (d == 0 and not allowzero) else d)
        if out.count(-1) > 1:
            raise self.err(node, f"shape {shape} has more than one -1")
        if -1 in out:
            known = int(np.prod([d for d in out if d != -1]))
            out[out.index(-1)] = int(np.prod(x.shape)) // max(known, 1)
        name = self.out_name(node)
        self.set_out(node, 0, self.reshape_val(x, tuple(out), name,
                                               allow_colperm=self._all_fc_consumers(name)))

    def op_Flatten(self, node, a):
        x = self.act(node, 0)
        r = len(x.shape)
        axis = int(a.get("axis", 1)) % (r + 1) if r else 0
        shape = (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
        name = self.out_name(node)
        self.set_out(node, 0, self.reshape_val(x, shape, name,
                                               allow_colperm=self._all_fc_consumers(name)))

    def op_Squeeze(self, node, a):
        x = self.act(node, 0)
        if "axes" in a:
            axes = list(a["axes"])
        else:
            c = self.const(node, 1, "axes", required=False)
            axes = None if c is None else [int(v) for v in np.asarray(c).reshape(-1)]
        r = len(x.shape)
        if axes is None:
            axes = [i for i, d in enumerate(x.shape) if d == 1]
        axes = {ax % r for ax in axes}
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        self.set_out(node, 0, self.reshape_val(x, shape, self.out_name(node)))

    def op_Unsqueeze(self, node, a):
        x = self.act(node, 0)
        axes = list(a["axes"]) if "axes" in a else \
            [int(v) for v in np.asarray(self.const(node, 1, "axes")).reshape(-1)]
        r = len(x.shape) + len(axes)
        shape = list(x.shape)
        for ax in sorted(ax % r for ax in axes):
            shape.insert(ax, 1)
        self.set_out(node, 0, self.reshape_val(x, tuple(shape), self.out_name(node)))

    def op_Transpose(self, node, a):
        x = self.act(node, 0)
        r = len(x.shape)
        p = list(a.get("perm", list(range(r))[::-1]))
        if x.colperm is not None:
            x = _Val(x.shape, self.plain(x), _identity(r))
        inv = np.argsort(p)
        perm = tuple(int(inv[q]) for q in x.perm)
        shape = tuple(x.shape[i] for i in p)
        self.set_out(node, 0, _Val(shape, x.t, perm))

    def op_Concat(self, node, a):
        vals = [self.val(node, k) for k in range(len(node.input)) if node.input[k]]
        if "axis" not in a:
            raise self.err(node, "Concat needs its axis attribute")
        r = len(vals[0].shape)
        axis = int(a["axis"]) % r
        ref = next((v for v in vals if not v.is_const and v.colperm is None), None)
        if ref is None:
            raise self.err(node, "no run-time input (or only flattened ones); not supported")
        perm = ref.perm
        ts = [self.mat(v, perm) if not v.is_const else
              self.const_tensor(self.out_name(node) + f"/const{k}", np.transpose(v.const, perm))
              for k, v in enumerate(vals)]
        out_shape = list(vals[0].shape)
        out_shape[axis] = sum(v.shape[axis] for v in vals)
        ir_axis = perm.index(axis)
        ir_shape = tuple(out_shape[p] for p in perm)
        y = self.emit("CONCATENATION", ts, self.out_name(node), ir_shape, axis=ir_axis,
                      fused_activation_function="NONE")
        self.set_out(node, 0, _Val(tuple(out_shape), y, perm))

    def op_Pad(self, node, a):
        x = self.act(node, 0)
        mode = a.get("mode", "constant")
        if mode != "constant":
            raise self.err(node, f"pad mode '{mode}' is not supported (constant only)")
        r = len(x.shape)
        if self.opset >= 11:
            pads = [int(v) for v in np.asarray(self.const(node, 1, "pads")).reshape(-1)]
            cv = self.const(node, 2, "constant_value", required=False)
            value = 0.0 if cv is None else float(np.asarray(cv).reshape(-1)[0])
            if len(node.input) > 3 and node.input[3]:
                axes = [int(v) % r for v in np.asarray(self.const(node, 3, "axes")).reshape(-1)]
                full = [0] * (2 * r)
                for k, ax in enumerate(axes):
                    full[ax], full[ax + r] = pads[k], pads[k + len(axes)]
                pads = full
        else:
            pads = list(a.get("pads", a.get("paddings", [])))
            value = float(a.get("value", 0.0))
        if any(p < 0 for p in pads):
            raise self.err(node, f"negative pads {pads} are not supported")
        if x.colperm is not None:
            x = _Val(x.shape, self.plain(x), _identity(r))
        ir_pads = np.array([[pads[p], pads[p + r]] for p in x.perm], np.int32)
        name = self.out_name(node)
        pt = self.const_tensor(name + "/paddings", ir_pads)
        out_shape = tuple(d + pads[i] + pads[i + r] for i, d in enumerate(x.shape))
        ir_shape = tuple(out_shape[p] for p in x.perm)
        if value == 0.0:
            y = self.emit("PAD", [x.t, pt], name, ir_shape)
        else:
            vt = self.const_tensor(name + "/value", np.array([value], np.float32))
            y = self.emit("PADV2", [x.t, pt, vt], name, ir_shape)
        self.set_out(node, 0, _Val(out_shape, y, x.perm))

    def _slice(self, node, x: _Val, starts, ends, axes, steps, name, k_out=0):
        r = len(x.shape)
        if x.colperm is not None:
            x = _Val(x.shape, self.plain(x), _identity(r))
        begin, end, stride = [0] * r, list(x.shape), [1] * r
        out_shape = list(x.shape)
        for s, e, ax, st in zip(starts, ends, axes, steps):
            ax %= r
            n = x.shape[ax]
            if st != 1:
                raise self.err(node, f"slice step {st} is not supported (1 only)")
            s = s + n if s < 0 else s
            e = e + n if e < 0 else e
            s, e = min(max(s, 0), n), min(max(e, 0), n)
            begin[ax], end[ax] = s, e
            out_shape[ax] = max(e - s, 0)
        ir_b = [begin[p] for p in x.perm]
        ir_e = [end[p] for p in x.perm]
        ir_s = [stride[p] for p in x.perm]
        bt = self.const_tensor(name + "/begin", np.array(ir_b, np.int32))
        et = self.const_tensor(name + "/end", np.array(ir_e, np.int32))
        st = self.const_tensor(name + "/strides", np.array(ir_s, np.int32))
        ir_shape = tuple(out_shape[p] for p in x.perm)
        y = self.emit("STRIDED_SLICE", [x.t, bt, et, st], name, ir_shape, begin_mask=0,
                      end_mask=0, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0,
                      offset=False)
        self.set_out(node, k_out, _Val(tuple(out_shape), y, x.perm))

    def op_Slice(self, node, a):
        x = self.act(node, 0)
        if self.opset >= 10:
            starts = [int(v) for v in np.asarray(self.const(node, 1, "starts")).reshape(-1)]
            ends = [int(v) for v in np.asarray(self.const(node, 2, "ends")).reshape(-1)]
            c = self.const(node, 3, "axes", required=False)
            axes = list(range(len(starts))) if c is None else \
                [int(v) for v in np.asarray(c).reshape(-1)]
            c = self.const(node, 4, "steps", required=False)
            steps = [1] * len(starts) if c is None else [int(v) for v in np.asarray(c).reshape(-1)]
        else:
            starts, ends = list(a["starts"]), list(a["ends"])
            axes = list(a.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        ends = [min(e, 2**62) for e in ends]
        self._slice(node, x, starts, ends, axes, steps, self.out_name(node))

    def op_Split(self, node, a):
        x = self.act(node, 0)
        r = len(x.shape)
        axis = int(a.get("axis", 0)) % r
        n_out = len(node.output)
        if "split" in a:
            sizes = list(a["split"])
        elif len(node.input) > 1 and node.input[1]:
            sizes = [int(v) for v in np.asarray(self.const(node, 1, "split")).reshape(-1)]
        else:
            n = x.shape[axis]
            num = int(a.get("num_outputs", n_out))
            chunk = -(-n // num)
            sizes = [min(chunk, n - k * chunk) for k in range(num)]
        start = 0
        for k, sz in enumerate(sizes):
            if node.output[k]:
                self._slice(node, x, [start], [start + sz], [axis], [1], node.output[k], k)
            start += sz

    def _resize(self, node, x: _Val, out_hw, mode: str, ctm: str, nearest_mode: str):
        xt = self.nhwc(node, x)
        n, h, w, c = self.shape_of(xt)
        oh, ow = out_hw
        name = self.out_name(node)
        size = self.const_tensor(name + "/size", np.array([oh, ow], np.int32))
        if mode == "nearest":
            if ctm == "asymmetric" and nearest_mode == "floor":
                ac, hpc = False, False
            elif ctm == "align_corners" and nearest_mode == "round_prefer_ceil":
                ac, hpc = True, False
            elif ctm in ("half_pixel", "tf_half_pixel_for_nn", "pytorch_half_pixel") and \
                    nearest_mode == ("floor" if ctm == "tf_half_pixel_for_nn"
                                     else "round_prefer_ceil"):
                ac, hpc = False, True
            elif oh % h == 0 and ow % w == 0 and ctm in ("half_pixel", "pytorch_half_pixel") \
                    and nearest_mode in ("round_prefer_floor", "round_prefer_ceil"):
                # integer upscale: half-pixel centres never tie, src = floor(dst / factor)
                ac, hpc = False, False
            else:
                raise self.err(node, f"nearest resize with coordinate_transformation_mode "
                                     f"'{ctm}' and nearest_mode '{nearest_mode}' has no TFLite "
                                     f"equivalent")
            y = self.emit("RESIZE_NEAREST_NEIGHBOR", [xt, size], name, (n, oh, ow, c),
                          align_corners=ac, half_pixel_centers=hpc)
        elif mode in ("linear", "bilinear"):
            if ctm == "asymmetric":
                ac, hpc = False, False
            elif ctm == "align_corners":
                ac, hpc = True, False
            elif ctm == "half_pixel" or (ctm == "pytorch_half_pixel" and oh > 1 and ow > 1):
                ac, hpc = False, True
            else:
                raise self.err(node, f"linear resize with coordinate_transformation_mode "
                                     f"'{ctm}' has no TFLite equivalent")
            y = self.emit("RESIZE_BILINEAR", [xt, size], name, (n, oh, ow, c),
                          align_corners=ac, half_pixel_centers=hpc)
        else:
            raise self.err(node, f"resize mode '{mode}' is not supported (nearest, linear)")
        self._out_nhwc(node, y)

    def _resize_sizes(self, node, x, scales=None, sizes=None):
        if len(x.shape) != 4:
            raise self.err(node, f"only 4-D NCHW resizes are supported, got {list(x.shape)}")
        if sizes is not None and np.asarray(sizes).size:
            sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
            if sizes[:2] != list(x.shape[:2]):
                raise self.err(node, "resizing the batch or channel axis is not supported")
            return sizes[2], sizes[3]
        scales = [float(v) for v in np.asarray(scales).reshape(-1)]
        if scales[0] != 1 or scales[1] != 1:
            raise self.err(node, "resizing the batch or channel axis is not supported")
        return int(math.floor(x.shape[2] * scales[2])), int(math.floor(x.shape[3] * scales[3]))

    def op_Upsample(self, node, a):
        x = self.act(node, 0)
        scales = a["scales"] if "scales" in a else self.const(node, 1, "scales")
        mode = a.get("mode", "nearest")
        hw = self._resize_sizes(node, x, scales=scales)
        self._resize(node, x, hw, mode, "asymmetric", "floor")

    def op_Resize(self, node, a):
        x = self.act(node, 0)
        if self.opset < 11:
            scales = self.const(node, 1, "scales")
            hw = self._resize_sizes(node, x, scales=scales)
            ctm = "asymmetric"
        else:
            scales = self.const(node, 2, "scales", required=False)
            sizes = self.const(node, 3, "sizes", required=False)
            if sizes is None and (scales is None or np.asarray(scales).size == 0):
                raise self.err(node, "needs scales or sizes")
            hw = self._resize_sizes(node, x, scales=scales, sizes=sizes)
            ctm = a.get("coordinate_transformation_mode", "half_pixel")
        if a.get("antialias", 0):
            raise self.err(node, "antialias=1 is not supported")
        self._resize(node, x, hw, a.get("mode", "nearest"), ctm,
                     a.get("nearest_mode", "round_prefer_floor"))


def onnx_to_graph(model, *, batch: int = 1, input_layout: str = "nhwc",
                  output_layout: str = "onnx", source: str = "<onnx>") -> Graph:
    """Translate an ``onnx.ModelProto`` (see :func:`read_onnx`)."""
    if input_layout not in ("nhwc", "onnx"):
        raise ValueError(f"input_layout must be 'nhwc' or 'onnx', got {input_layout!r}")
    if output_layout not in ("onnx", "native"):
        raise ValueError(f"output_layout must be 'onnx' or 'native', got {output_layout!r}")
    from .onnx_quant import is_quantized, read_quantized
    if is_quantized(model):  # QDQ / QOperator: ONNX Runtime's integer layers
        return read_quantized(model, source=source, batch=batch)
    return _Importer(model, batch, input_layout, output_layout, source).run()


def read_onnx(path, *, batch: int = 1, input_layout: str = "nhwc",
              output_layout: str = "onnx") -> Graph:
    """Read an ONNX file (or ``onnx.ModelProto``) into a float graph IR, NHWC inside.

    ``batch`` replaces a symbolic batch dimension; ``input_layout``: ``"nhwc"`` (4-D inputs
    become NHWC) or ``"onnx"`` (kept as in the model); ``output_layout``: ``"onnx"`` (outputs in
    the model's layout) or ``"native"`` (as computed, e.g. NHWC).
    """
    try:
        import onnx
    except ImportError:  # pragma: no cover
        raise ModelError("reading ONNX models needs the 'onnx' package (pip install onnx)") \
            from None
    if isinstance(path, onnx.ModelProto):
        return onnx_to_graph(path, batch=batch, input_layout=input_layout,
                             output_layout=output_layout)
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ModelError(f"{p}: no such file")
    if os.path.isdir(p):
        raise ModelError(f"{p}: is a directory, not an .onnx file")
    try:
        model = onnx.load(p)
    except Exception as e:  # noqa: BLE001 -- protobuf raises various errors
        raise ModelError(f"{p}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    return onnx_to_graph(model, batch=batch, input_layout=input_layout,
                         output_layout=output_layout, source=p)
