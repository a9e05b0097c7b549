"""Float reference executor for the graph IR (numpy, NHWC, float32).

Runs float graphs (``quant=None`` tensors, as produced by :mod:`hwsim.frontends.onnx_reader`
and :mod:`hwsim.frontends.darknet_reader`) with TFLite's float semantics for every op, so that
what is calibrated is exactly the function the quantized TFLite model approximates (``SAME``
padding puts the odd pixel at the bottom/right, average pooling divides by the taps inside the
image, ``RESIZE_*`` index rules, ...).

    ex = FloatExecutor(graph)
    outs = ex.run(x)                           # list of arrays, one per graph output
    outs, acts = ex.run(x, keep=True)          # also {tensor index: array} of every tensor

Inputs carry a leading batch dimension of any size N (the graph's shapes have N = 1 as
written by the readers). ``batch_invariant=True`` (the default) evaluates one sample at a time,
so that every value is bit-identical whatever the batch size or order (BLAS may sum in a
different order for different matrix heights): the calibration in :mod:`hwsim.quant.quantize`
relies on this. ``batch_invariant=False`` runs the whole batch at once (faster; for accuracy
measurements).

Input layout: :func:`to_graph_layout` converts data given in the source model's layout (NCHW
for ONNX / Darknet) to the graph's (NHWC), using ``graph.io_layout``.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Graph, InputError, ModelError

F32 = np.float32

__all__ = ["FloatExecutor", "to_graph_layout", "from_graph_layout", "run_float", "OPS"]


def _io_layout(graph):
    return getattr(graph, "io_layout", None)


def to_graph_layout(graph: Graph, x: np.ndarray, k: int = 0) -> np.ndarray:
    """A batch for graph input ``k``, given in the graph's layout or in the source model's.

    The batch size may differ from the graph's. Arrays whose trailing dims equal the graph
    input's are returned as they are; arrays matching the source model's input shape (e.g.
    NCHW for an ONNX model read as NHWC) are transposed. Anything else raises InputError.
    """
    x = np.asarray(x)
    t = graph.tensors[graph.inputs[k]]
    gshape = tuple(t.shape[1:])
    if x.ndim == len(t.shape) and tuple(x.shape[1:]) == gshape:
        return x
    lay = _io_layout(graph)
    if lay is not None and k < len(lay.inputs):
        perm = tuple(lay.inputs[k])
        sshape = tuple(lay.source_input_shapes[k][1:])
        if x.ndim == len(perm) and tuple(x.shape[1:]) == sshape:
            return np.ascontiguousarray(np.transpose(x, perm))
        if x.ndim == len(perm) - 1 and tuple(x.shape) == sshape:
            return np.ascontiguousarray(np.transpose(x[None], perm))
    if x.ndim == len(t.shape) - 1 and tuple(x.shape) == gshape:
        return x[None]
    src = ""
    if lay is not None and k < len(lay.inputs):
        src = f" or [N, {', '.join(str(d) for d in lay.source_input_shapes[k][1:])}] " \
              f"({lay.source_format} layout)"
    raise InputError(f"input {k} ('{t.name}'): an array of shape {list(x.shape)} does not fit; "
                     f"expected [N, {', '.join(str(d) for d in gshape)}]{src}")


def from_graph_layout(graph: Graph, y: np.ndarray, k: int = 0) -> np.ndarray:
    """Graph output ``k`` (graph layout) in the source model's layout."""
    lay = _io_layout(graph)
    if lay is None or k >= len(lay.outputs):
        return y
    perm = tuple(lay.outputs[k])
    return np.transpose(y, np.argsort(perm))


# ----------------------------------------------------------------------------- op kernels

def _act(x: np.ndarray, fused: str | None) -> np.ndarray:
    fused = fused or "NONE"
    if fused == "NONE":
        return x
    if fused == "RELU":
        return np.maximum(x, F32(0))
    if fused == "RELU6":
        return np.clip(x, F32(0), F32(6))
    if fused == "RELU_N1_TO_1":
        return np.clip(x, F32(-1), F32(1))
    if fused == "TANH":
        return np.tanh(x)
    raise ModelError(f"fused activation {fused} is not supported by the float executor")


def _same_pads(in_size: int, k: int, stride: int, dilation: int, out: int) -> tuple[int, int]:
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


def _out_size(padding: str, in_size: int, k: int, stride: int, dilation: int = 1) -> int:
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - eff) // stride


def _windows(xp: np.ndarray, kh, kw, sh, sw, dh, dw, oh, ow) -> np.ndarray:
    """(N, OH, OW, KH, KW, C) strided view of a padded NHWC array."""
    n, _, _, c = xp.shape
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (n, oh, ow, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]),
        writeable=False)


def _conv_geometry(x, kh, kw, a):
    sh, sw = int(a.get("stride_h", 1)), int(a.get("stride_w", 1))
    dh, dw = int(a.get("dilation_h_factor", 1)), int(a.get("dilation_w_factor", 1))
    padding = a.get("padding", "VALID")
    _, h, w, _ = x.shape
    oh = _out_size(padding, h, kh, sh, dh)
    ow = _out_size(padding, w, kw, sw, dw)
    if padding == "SAME":
        pt, pb = _same_pads(h, kh, sh, dh, oh)
        pl, pr = _same_pads(w, kw, sw, dw, ow)
    else:
        pt = pb = pl = pr = 0
    return sh, sw, dh, dw, oh, ow, (pt, pb, pl, pr)


def _pad_hw(x, pads, value=0.0):
    pt, pb, pl, pr = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _conv2d(op, x, w, b):
    cout, kh, kw, cin_g = w.shape
    n, h, wd, cin = x.shape
    groups = cin // cin_g
    sh, sw, dh, dw, oh, ow, pads = _conv_geometry(x, kh, kw, op.attrs)
    og = cout // groups
    out = np.empty((n, oh, ow, cout), F32)
    if kh == kw == 1 and not any(pads):
        xs = np.ascontiguousarray(x[:, ::sh, ::sw][:, :oh, :ow])
        for g in range(groups):
            cols = xs[..., g * cin_g:(g + 1) * cin_g].reshape(n * oh * ow, cin_g)
            wg = w[g * og:(g + 1) * og].reshape(og, cin_g)
            out[..., g * og:(g + 1) * og] = (cols @ wg.T).reshape(n, oh, ow, og)
        if b is not None:
            out += b
        return _act(out, op.attrs.get("fused_activation_function"))
    xp = _pad_hw(x, pads)
    win = _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow)
    for g in range(groups):
        cols = win[..., g * cin_g:(g + 1) * cin_g].reshape(n * oh * ow, kh * kw * cin_g)
        wg = w[g * og:(g + 1) * og].reshape(og, kh * kw * cin_g)
        out[..., g * og:(g + 1) * og] = (cols @ wg.T).reshape(n, oh, ow, og)
    if b is not None:
        out += b
    return _act(out, op.attrs.get("fused_activation_function"))


def _depthwise(op, x, w, b):
    _, kh, kw, cout = w.shape
    cin = x.shape[3]
    m = cout // cin
    sh, sw, dh, dw, oh, ow, pads = _conv_geometry(x, kh, kw, op.attrs)
    xp = _pad_hw(x, pads)
    if m > 1:
        xp = np.repeat(xp, m, axis=3)
    win = _windows(np.ascontiguousarray(xp), kh, kw, sh, sw, dh, dw, oh, ow)
    out = np.zeros((x.shape[0], oh, ow, cout), F32)
    for i in range(kh):
        for j in range(kw):
            out += win[:, :, :, i, j, :] * w[0, i, j]
    if b is not None:
        out += b
    return _act(out, op.attrs.get("fused_activation_function"))


def _fully_connected(op, x, w, b, out_shape, n):
    k = w.shape[1]
    y = x.reshape(-1, k) @ w.T
    if b is not None:
        y = y + b
    y = _act(y.astype(F32, copy=False), op.attrs.get("fused_activation_function"))
    return y.reshape((n,) + tuple(out_shape[1:]))


def _pool(op, x, kind):
    a = op.attrs
    kh, kw = int(a["filter_height"]), int(a["filter_width"])
    sh, sw = int(a.get("stride_h", 1)), int(a.get("stride_w", 1))
    padding = a.get("padding", "VALID")
    _, h, w, _ = x.shape
    oh, ow = _out_size(padding, h, kh, sh), _out_size(padding, w, kw, sw)
    if padding == "SAME":
        pt, pb = _same_pads(h, kh, sh, 1, oh)
        pl, pr = _same_pads(w, kw, sw, 1, ow)
    else:
        pt = pb = pl = pr = 0
    if kind == "max":
        xp = _pad_hw(x, (pt, pb, pl, pr), -np.inf)
        y = _windows(np.ascontiguousarray(xp), kh, kw, sh, sw, 1, 1, oh, ow).max(axis=(3, 4))
    else:
        xp = _pad_hw(x, (pt, pb, pl, pr), 0.0)
        s = _windows(np.ascontiguousarray(xp), kh, kw, sh, sw, 1, 1, oh, ow).sum(axis=(3, 4),
                                                                                 dtype=F32)
        ones = _pad_hw(np.ones((1, h, w, 1), F32), (pt, pb, pl, pr), 0.0)
        cnt = _windows(ones, kh, kw, sh, sw, 1, 1, oh, ow).sum(axis=(3, 4), dtype=F32)
        y = s / cnt
    return _act(y.astype(F32, copy=False), a.get("fused_activation_function"))


def _resize_nearest(op, x, size):
    from ..lower.shape import nearest_indices
    oh, ow = int(size[0]), int(size[1])
    ac = bool(op.attrs.get("align_corners", False))
    hpc = bool(op.attrs.get("half_pixel_centers", False))
    yi = nearest_indices(x.shape[1], oh, ac, hpc)
    xi = nearest_indices(x.shape[2], ow, ac, hpc)
    return x[:, yi][:, :, xi]


def _bilinear_axis(in_size, out_size, ac, hpc):
    if ac and out_size > 1:
        scale = F32(in_size - 1) / F32(out_size - 1)
    else:
        scale = F32(in_size) / F32(out_size)
    v = np.arange(out_size, dtype=F32)
    if hpc:
        s = (v + F32(0.5)) * scale - F32(0.5)
    else:
        s = v * scale
    lo = np.maximum(np.floor(s).astype(np.int64), 0)
    hi = np.minimum(np.ceil(s).astype(np.int64), in_size - 1)
    return s.astype(F32), lo, hi


def _resize_bilinear(op, x, size):
    oh, ow = int(size[0]), int(size[1])
    ac = bool(op.attrs.get("align_corners", False))
    hpc = bool(op.attrs.get("half_pixel_centers", False))
    sy, y0, y1 = _bilinear_axis(x.shape[1], oh, ac, hpc)
    sx, x0, x1 = _bilinear_axis(x.shape[2], ow, ac, hpc)
    dy = (sy - y0.astype(F32))[None, :, None, None]
    dx = (sx - x0.astype(F32))[None, None, :, None]
    tl = x[:, y0][:, :, x0]
    tr = x[:, y0][:, :, x1]
    bl = x[:, y1][:, :, x0]
    br = x[:, y1][:, :, x1]
    one = F32(1)
    return (tl * (one - dy) * (one - dx) + bl * dy * (one - dx) + tr * (one - dy) * dx +
            br * dy * dx).astype(F32)


def _lrn(op, x):
    a = op.attrs
    r = int(a.get("radius", 5))
    bias, alpha, beta = F32(a.get("bias", 1.0)), F32(a.get("alpha", 1.0)), F32(a.get("beta", 0.5))
    c = x.shape[-1]
    sq = x * x
    pad = np.pad(sq, [(0, 0)] * (x.ndim - 1) + [(r, r)])
    cs = np.concatenate([np.zeros(x.shape[:-1] + (1,), F32), np.cumsum(pad, axis=-1, dtype=F32)],
                        axis=-1)
    s = cs[..., 2 * r + 1:2 * r + 1 + c] - cs[..., :c]
    return (x / np.power(bias + alpha * s, beta)).astype(F32)


def _strided_slice(op, x, begin, end, strides):
    a = op.attrs
    if any(int(a.get(k, 0)) for k in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")) \
            or a.get("offset", False):
        raise ModelError("STRIDED_SLICE: only begin_mask/end_mask are supported by the float "
                         "executor")
    bm, em = int(a.get("begin_mask", 0)), int(a.get("end_mask", 0))
    sl = []
    for d in range(x.ndim):
        b = None if (bm >> d) & 1 else int(begin[d])
        e = None if (em >> d) & 1 else int(end[d])
        sl.append(slice(b, e, int(strides[d])))
    return x[tuple(sl)]


def _softmax(x, beta):
    z = (x - x.max(axis=-1, keepdims=True)) * F32(beta)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(F32)


# ----------------------------------------------------------------------------- executor

OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D",
       "MEAN", "ADD", "SUB", "MUL", "CONCATENATION", "PAD", "PADV2", "RESHAPE", "SQUEEZE",
       "TRANSPOSE", "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "RELU",
       "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH",
       "SOFTMAX", "LOCAL_RESPONSE_NORMALIZATION", "QUANTIZE", "DEQUANTIZE")


class FloatExecutor:
    """Execute a float graph IR with numpy (see the module docstring)."""

    def __init__(self, graph: Graph, batch_invariant: bool = True):
        self.graph = graph
        self.batch_invariant = bool(batch_invariant)
        unsupported = sorted({op.type for op in graph.ops} - set(OPS))
        if unsupported:
            raise ModelError(f"{graph.source or 'model'}: the float executor does not support "
                             f"{', '.join(unsupported)}")
        for op in graph.ops:
            for i in op.inputs + op.outputs:
                t = graph.tensors[i] if i >= 0 else None
                if t is not None and t.data is None and t.quant is not None \
                        and np.dtype(t.dtype).kind != "f":
                    raise ModelError(f"{graph.source or 'model'}: tensor {i} '{t.name}' is "
                                     f"quantized ({t.dtype}); the float executor runs float "
                                     f"graphs")
        self._consts = {t.index: (t.data.astype(F32) if t.data.dtype.kind == "f" else t.data)
                        for t in graph.tensors if t.data is not None}
        self.batchable = self._check_batchable()

    def _check_batchable(self) -> bool:
        g = self.graph
        for op in g.ops:
            for i in op.inputs + op.outputs:
                if i >= 0 and g.tensors[i].data is None:
                    s = g.tensors[i].shape
                    if not s or s[0] != 1:
                        return False
            if op.type == "TRANSPOSE":
                perm = g.tensors[op.inputs[1]].data
                if perm is None or int(perm[0]) != 0:
                    return False
            if op.type in ("MEAN",):
                axes = g.tensors[op.inputs[1]].data
                if axes is None or 0 in [int(v) % len(g.tensors[op.inputs[0]].shape)
                                         for v in np.asarray(axes).reshape(-1)]:
                    return False
            if op.type in ("CONCATENATION",) and int(op.attrs.get("axis", 0)) % \
                    len(g.tensors[op.outputs[0]].shape) == 0:
                return False
        return True

    # --------------------------------------------------------------------------------------
    def _inputs(self, inputs) -> list[np.ndarray]:
        g = self.graph
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        elif isinstance(inputs, dict):
            by_name = {g.tensors[i].name: k for k, i in enumerate(g.inputs)}
            lst = [None] * len(g.inputs)
            for name, v in inputs.items():
                if name not in by_name:
                    raise InputError(f"unknown input name {name!r}; the model's inputs are "
                                     f"{list(by_name)}")
                lst[by_name[name]] = v
            inputs = lst
        inputs = list(inputs)
        if len(inputs) != len(g.inputs):
            raise InputError(f"the model takes {len(g.inputs)} input(s), {len(inputs)} given")
        xs = []
        for k, x in enumerate(inputs):
            if x is None:
                raise InputError(f"input {k} is missing")
            x = to_graph_layout(g, np.asarray(x), k)
            if x.dtype.kind not in "fiub":
                raise InputError(f"input {k}: dtype {x.dtype} is not numeric")
            xs.append(np.ascontiguousarray(x, dtype=F32))
        n = {x.shape[0] for x in xs}
        if len(n) != 1:
            raise InputError(f"inputs have different batch sizes {sorted(n)}")
        return xs

    def run(self, inputs, keep=False):
        """Run on a batch. ``keep``: False (outputs only), True (also every tensor), or a set
        of tensor indices to keep. Returns ``outputs`` or ``(outputs, {index: array})``."""
        xs = self._inputs(inputs)
        n = xs[0].shape[0]
        if n == 0:
            raise InputError("empty batch")
        if self.batch_invariant or not self.batchable:
            parts = [self._run([x[i:i + 1] for x in xs], keep) for i in range(n)]
            if n == 1:
                return parts[0] if keep is not False else parts[0][0]
            outs = [np.concatenate([p[0][k] for p in parts]) for k in range(len(parts[0][0]))]
            if keep is False:
                return outs
            acts = {t: np.concatenate([p[1][t] for p in parts]) for t in parts[0][1]}
            return outs, acts
        outs, acts = self._run(xs, keep)
        return (outs, acts) if keep is not False else outs

    def iter_run(self, inputs, keep=True):
        """Like :meth:`run` with ``keep`` but one sample at a time: yields
        ``(outputs, {index: array})`` with a batch dimension of 1 (low memory)."""
        xs = self._inputs(inputs)
        for i in range(xs[0].shape[0]):
            yield self._run([x[i:i + 1] for x in xs], keep)

    def _run(self, xs, keep):
        g = self.graph
        vals: dict[int, np.ndarray] = dict(zip(g.inputs, xs))
        n = xs[0].shape[0]
        want = None if keep is True else (set() if keep is False else set(keep))
        last = {}
        for k, op in enumerate(g.ops):
            for i in op.inputs:
                last[i] = k
        outs_set = set(g.outputs)
        for k, op in enumerate(g.ops):
            ins = [None if i < 0 else (self._consts[i] if i in self._consts else vals[i])
                   for i in op.inputs]
            try:
                ys = self._op(op, ins, n)
            except (ModelError, InputError):
                raise
            except Exception as e:  # noqa: BLE001 -- report the op at fault
                raise ModelError(f"{g.source or 'model'}: float execution of op {op.index} "
                                 f"({op.type}) failed: {type(e).__name__}: {e}") from None
            for t, y in zip(op.outputs, ys):
                vals[t] = y
            if want is not None:
                for i in op.inputs:
                    if i >= 0 and last.get(i) == k and i not in outs_set and i not in want \
                            and i in vals:
                        del vals[i]
        outs = [vals[i] for i in g.outputs]
        if keep is False:
            return outs, {}
        if keep is True:
            return outs, {i: v for i, v in vals.items()}
        return outs, {i: vals[i] for i in want if i in vals}

    def _shape(self, t: int, n: int) -> tuple:
        s = self.graph.tensors[t].shape
        return (n,) + tuple(s[1:]) if s else s

    def _op(self, op, ins, n):
        t = op.type
        a = op.attrs
        x = ins[0]
        if t == "CONV_2D":
            return [_conv2d(op, x, ins[1], ins[2] if len(ins) > 2 else None)]
        if t == "DEPTHWISE_CONV_2D":
            return [_depthwise(op, x, ins[1], ins[2] if len(ins) > 2 else None)]
        if t == "FULLY_CONNECTED":
            return [_fully_connected(op, x, ins[1], ins[2] if len(ins) > 2 else None,
                                     self.graph.tensors[op.outputs[0]].shape, n)]
        if t == "MAX_POOL_2D":
            return [_pool(op, x, "max")]
        if t == "AVERAGE_POOL_2D":
            return [_pool(op, x, "avg")]
        if t == "MEAN":
            axes = tuple(sorted({int(v) % x.ndim for v in np.asarray(ins[1]).reshape(-1)}))
            return [np.mean(x, axis=axes, keepdims=bool(a.get("keep_dims", False)),
                            dtype=F32)]
        if t in ("ADD", "SUB", "MUL"):
            y = x + ins[1] if t == "ADD" else (x - ins[1] if t == "SUB" else x * ins[1])
            return [_act(y.astype(F32, copy=False), a.get("fused_activation_function"))]
        if t == "CONCATENATION":
            return [_act(np.concatenate(ins, axis=int(a.get("axis", 0))),
                         a.get("fused_activation_function"))]
        if t in ("PAD", "PADV2"):
            pads = np.asarray(ins[1]).reshape(-1, 2)
            value = float(np.asarray(ins[2]).reshape(-1)[0]) if t == "PADV2" and len(ins) > 2 \
                else 0.0
            return [np.pad(x, [(int(p), int(q)) for p, q in pads], constant_values=value)]
        if t in ("RESHAPE", "SQUEEZE"):
            return [x.reshape(self._shape(op.outputs[0], n))]
        if t == "TRANSPOSE":
            return [np.ascontiguousarray(np.transpose(x, [int(p) for p in ins[1]]))]
        if t == "STRIDED_SLICE":
            return [np.ascontiguousarray(_strided_slice(op, x, ins[1], ins[2], ins[3]))]
        if t == "RESIZE_NEAREST_NEIGHBOR":
            return [_resize_nearest(op, x, np.asarray(ins[1]).reshape(-1))]
        if t == "RESIZE_BILINEAR":
            return [_resize_bilinear(op, x, np.asarray(ins[1]).reshape(-1))]
        if t == "RELU":
            return [np.maximum(x, F32(0))]
        if t == "RELU6":
            return [np.clip(x, F32(0), F32(6))]
        if t == "RELU_N1_TO_1":
            return [np.clip(x, F32(-1), F32(1))]
        if t == "RELU_0_TO_1":
            return [np.clip(x, F32(0), F32(1))]
        if t == "LEAKY_RELU":
            alpha = F32(a.get("alpha", 0.2))
            return [np.where(x >= 0, x, x * alpha).astype(F32)]
        if t == "LOGISTIC":
            with np.errstate(over="ignore"):
                return [(F32(1) / (F32(1) + np.exp(-x))).astype(F32)]
        if t == "TANH":
            return [np.tanh(x)]
        if t == "HARD_SWISH":
            return [(x * np.clip(x + F32(3), F32(0), F32(6)) / F32(6)).astype(F32)]
        if t == "SOFTMAX":
            return [_softmax(x, float(a.get("beta", 1.0)))]
        if t == "LOCAL_RESPONSE_NORMALIZATION":
            return [_lrn(op, x)]
        if t in ("QUANTIZE", "DEQUANTIZE"):
            return [x]
        raise ModelError(f"float executor: op {t} is not supported")  # pragma: no cover


def run_float(graph: Graph, inputs, batch_invariant: bool = False):
    """One-shot float run: the list of outputs (graph layout)."""
    return FloatExecutor(graph, batch_invariant=batch_invariant).run(inputs)


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum ref^2 / sum (ref - test)^2)`` in dB
    (inf when equal, -inf for a zero signal with noise)."""
    r = np.asarray(ref, np.float64).reshape(-1)
    e = r - np.asarray(test, np.float64).reshape(-1)
    s, nz = float(np.dot(r, r)), float(np.dot(e, e))
    if nz == 0:
        return math.inf
    if s == 0:
        return -math.inf
    return 10.0 * math.log10(s / nz)
