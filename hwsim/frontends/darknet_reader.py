"""Read a Darknet model (``.cfg`` + ``.weights``) into hwsim's float graph IR (NHWC).

The cfg is translated layer by layer into an ONNX graph (``darknet_to_onnx``, opset 13, NCHW,
the layout Darknet computes in) which :func:`hwsim.frontends.onnx_reader.onnx_to_graph` reads,
so both paths share one importer; the intermediate ONNX model is also handy to check against
onnxruntime.

Supported sections: ``[net]``/``[network]`` (width, height, channels), ``[convolutional]``
(filters, size, stride, pad/padding, groups, dilation, batch_normalize, activation linear /
leaky / relu / logistic / tanh), ``[connected]``, ``[maxpool]`` (Darknet's padding rule:
``padding = size - 1`` by default, ``padding // 2`` before, the rest after), ``[avgpool]``
(global), ``[route]`` (concatenation; AlexeyAB ``groups``/``group_id`` channel split),
``[shortcut]`` (``from``, activation), ``[upsample]`` (nearest, integer stride), ``[reorg]``
(Darknet's ``reorg_cpu(..., forward=0)`` permutation, expressed as Reshape/Transpose/Reshape),
``[dropout]`` (identity), ``[softmax]`` and ``[region]``/``[yolo]``/``[detection]``/``[cost]``:
the input of a region/yolo/detection layer becomes a graph output (the raw map, NHWC by
default; box decoding is post-processing), and the last layer is an output when there is none.

Batch normalization is folded into the conv weights and biases at read time:

* ``bn_variant="pjreddie"`` (default, pjreddie/darknet ``normalize_cpu``):
  ``y = scale * (x - mean) / (sqrt(var) + 1e-6) + bias``;
* ``bn_variant="alexeyab"`` (AlexeyAB/darknet, yolo2_light): ``/ sqrt(var + 1e-5)``.

``.weights`` format: int32 major, minor, revision, then ``seen`` (uint64 when
``major*10 + minor >= 2`` and both < 1000, else int32), then float32 per layer in cfg order:
convolutional: biases[n], (scales[n], rolling_mean[n], rolling_variance[n] if BN),
weights[n, c/groups, size, size]; connected: biases[out], weights[out, in], (BN as before).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..ir import Graph, ModelError
from ..yamlio import brief

__all__ = ["read_darknet", "darknet_to_onnx", "parse_cfg", "write_weights"]

_ACTS = ("linear", "leaky", "relu", "logistic", "tanh")
MAX_ELEMENTS = 2**31 - 1  # one layer's output (c x h x w)


def parse_cfg(path_or_text) -> list[tuple[str, dict, int]]:
    """``[(section, {key: value-string}, line number), ...]`` of a Darknet cfg (path or text)."""
    if isinstance(path_or_text, (str, os.PathLike)) and os.path.exists(os.fspath(path_or_text)):
        src = os.fspath(path_or_text)
        try:
            with open(src, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise ModelError(f"{src}: cannot read ({e.strerror or e})") from None
    elif isinstance(path_or_text, str) and "[" in path_or_text:
        src, text = "<cfg>", path_or_text
    else:
        raise ModelError(f"{os.fspath(path_or_text)}: no such file")
    sections: list = []
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ModelError(f"{src}:{no}: malformed section header {brief(line)}")
            sections.append((line[1:-1].strip().lower(), {}, no))
            continue
        if "=" not in line:
            raise ModelError(f"{src}:{no}: expected 'key=value', got {brief(line)}")
        if not sections:
            raise ModelError(f"{src}:{no}: option outside of any [section]")
        k, v = line.split("=", 1)
        sections[-1][1][k.strip()] = v.strip()
    if not sections or sections[0][0] not in ("net", "network"):
        raise ModelError(f"{src}: the first section must be [net]")
    return sections


class _Weights:
    def __init__(self, path):
        self.path = os.fspath(path) if path is not None else None
        if self.path is None:
            self.data = None
            self.pos = 0
            return
        if not os.path.exists(self.path):
            raise ModelError(f"{self.path}: no such file")
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ModelError(f"{self.path}: cannot read ({e.strerror or e})") from None
        if len(raw) < 16:
            raise ModelError(f"{self.path}: too short for a Darknet weights header")
        major, minor, revision = (int(v) for v in np.frombuffer(raw[:12], dtype="<i4"))
        if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000:
            off = 20
        else:
            off = 16
        if (len(raw) - off) % 4:
            raise ModelError(f"{self.path}: {len(raw) - off} bytes after the header is not a "
                             f"whole number of float32 values")
        self.data = np.frombuffer(raw[off:], dtype="<f4")
        self.pos = 0
        self.version = (int(major), int(minor), int(revision))

    def take(self, n: int, what: str, rng=None) -> np.ndarray:
        if self.data is None:
            return rng(n)
        if self.pos + n > len(self.data):
            raise ModelError(f"{self.path}: ends after {len(self.data)} floats; {what} needs "
                             f"{n} more from offset {self.pos} (cfg and weights do not match)")
        out = self.data[self.pos:self.pos + n].astype(np.float32)
        if not np.isfinite(out).all():
            bad = self.pos + int(np.flatnonzero(~np.isfinite(out))[0])
            raise ModelError(f"{self.path}: {what} hold NaN or infinity (float32 value {bad} "
                             f"after the header)")
        self.pos += n
        return out

    def finish(self):
        if self.data is not None and self.pos != len(self.data):
            raise ModelError(f"{self.path}: {len(self.data) - self.pos} float32 values left "
                             f"over after the last layer (cfg and weights do not match)")


def _int(opts, key, default, src, no, lo: int | None = None):
    """Option ``key`` as an int (``default`` when absent); at least ``lo`` if given."""
    v = opts.get(key)
    if v is None:
        return default
    try:
        n = int(v)
    except ValueError:
        raise ModelError(f"{src}:{no}: {key}={brief(v)} is not an integer") from None
    if lo is not None and n < lo:
        raise ModelError(f"{src}:{no}: {key}={n}, must be >= {lo}")
    if not -2**31 <= n < 2**31:
        raise ModelError(f"{src}:{no}: {key}={n} is outside the int32 range Darknet reads")
    return n


def _ints(text: str, key: str, src, no) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ModelError(f"{src}:{no}: {key}={brief(text)} is not a list of integers") from None
    if any(not -2**31 <= v < 2**31 for v in vals):
        raise ModelError(f"{src}:{no}: {key}={brief(text)}: outside the int32 range")
    return vals


def _folded(wts, s, t, where):
    """Weights times the folded batch-norm scale, and the bias, as float32; both must stay
    finite (huge scales over a tiny variance do not)."""
    with np.errstate(over="ignore", invalid="ignore"):
        w32 = (wts.astype(np.float64) * s).astype(np.float32)
        t32 = np.asarray(t, np.float64).astype(np.float32)
    if not (np.isfinite(w32).all() and np.isfinite(t32).all()):
        raise ModelError(f"{where}: the weights times the batch-norm scales (scales / "
                         f"sqrt(rolling_variance)) leave the float32 range")
    return w32, t32


def darknet_to_onnx(cfg, weights=None, *, bn_variant: str = "pjreddie", seed: int = 0):
    """Translate a Darknet cfg (+ weights) into an ``onnx.ModelProto`` (opset 13, NCHW).

    Without ``weights`` the parameters are random (seeded), for tests. Returns
    ``(model, output_names)``.
    """
    from onnx import TensorProto, helper, numpy_helper
    if bn_variant not in ("pjreddie", "alexeyab"):
        raise ValueError(f"bn_variant must be 'pjreddie' or 'alexeyab', got {bn_variant!r}")
    src = os.fspath(cfg) if isinstance(cfg, (str, os.PathLike)) and \
        os.path.exists(os.fspath(cfg)) else "<cfg>"
    secs = parse_cfg(cfg)
    w = _Weights(weights)
    rs = np.random.default_rng(seed)
    net = secs[0][1]
    c = _int(net, "channels", 3, src, secs[0][2])
    h = _int(net, "height", 0, src, secs[0][2])
    wd = _int(net, "width", 0, src, secs[0][2])
    if h <= 0 or wd <= 0 or c <= 0:
        raise ModelError(f"{src}:{secs[0][2]}: [net] needs positive width, height, channels")
    if c * h * wd > MAX_ELEMENTS:
        raise ModelError(f"{src}:{secs[0][2]}: [net] input {c}x{h}x{wd} has more than "
                         f"{MAX_ELEMENTS:,} elements")
    nodes, inits = [], []
    layers: list[tuple[str, tuple]] = []  # (tensor name, (c, h, w)) per layer
    outputs: list[str] = []
    cur, shape = "data", (c, h, wd)

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def activation(x, act, name, where):
        if act == "linear":
            return x
        if act == "leaky":
            nodes.append(helper.make_node("LeakyRelu", [x], [name], alpha=0.1))
        elif act == "relu":
            nodes.append(helper.make_node("Relu", [x], [name]))
        elif act == "logistic":
            nodes.append(helper.make_node("Sigmoid", [x], [name]))
        elif act == "tanh":
            nodes.append(helper.make_node("Tanh", [x], [name]))
        else:
            raise ModelError(f"{where}: activation {brief(act)} is not supported "
                             f"({', '.join(_ACTS)})")
        return name

    def ref(k: int, idx: int, where: str) -> int:
        j = idx + k if idx < 0 else idx
        if not 0 <= j < k:
            raise ModelError(f"{where}: layer reference {idx} is out of range (layer {k})")
        return j

    def bn_fold(n, biases, where, lname, kind):
        scales = w.take(n, f"{lname} scales", lambda m: rs.uniform(0.5, 1.5, m))
        mean = w.take(n, f"{lname} rolling_mean", lambda m: rs.normal(0, 0.1, m))
        var = w.take(n, f"{lname} rolling_variance", lambda m: rs.uniform(0.5, 1.5, m))
        if (var < 0).any():
            raise ModelError(f"{w.path}: {lname} rolling_variance holds negative values "
                             f"({float(var.min())}); a variance is >= 0")
        if bn_variant == "pjreddie":
            s = scales.astype(np.float64) / (np.sqrt(var.astype(np.float64)) + 1e-6)
        else:
            s = scales.astype(np.float64) / np.sqrt(var.astype(np.float64) + 1e-5)
        return s, biases.astype(np.float64) - mean * s

    for k, (sec, opts, no) in enumerate(secs[1:]):
        where = f"{src}:{no}"
        lname = f"l{k}_{sec}"
        cc, hh, ww = shape
        if sec in ("convolutional", "conv"):
            n = _int(opts, "filters", 1, src, no, lo=1)
            size = _int(opts, "size", 1, src, no, lo=1)
            stride = _int(opts, "stride", 1, src, no, lo=1)
            groups = _int(opts, "groups", 1, src, no, lo=1)
            dil = _int(opts, "dilation", 1, src, no, lo=1)
            padding = size // 2 if _int(opts, "pad", 0, src, no) else \
                _int(opts, "padding", 0, src, no, lo=0)
            bn = _int(opts, "batch_normalize", 0, src, no)
            act = opts.get("activation", "logistic")
            if act not in _ACTS:
                raise ModelError(f"{where}: activation {brief(act)} is not supported "
                                 f"({', '.join(_ACTS)})")
            if cc % groups or n % groups:
                raise ModelError(f"{where}: groups={groups} does not divide {cc} input / {n} "
                                 f"output channels")
            biases = w.take(n, f"{lname} biases", lambda m: rs.normal(0, 0.1, m))
            if bn:
                s, t = bn_fold(n, biases, where, lname, "conv")
            else:
                s, t = np.ones(n), biases.astype(np.float64)
            nw = n * (cc // groups) * size * size
            fan = (cc // groups) * size * size
            wts = w.take(nw, f"{lname} weights",
                         lambda m: rs.normal(0, np.sqrt(2.0 / fan), m)).reshape(
                n, cc // groups, size, size)
            wts, t = _folded(wts, s[:, None, None, None], t, where)
            eff = (size - 1) * dil + 1
            oh = (hh + 2 * padding - eff) // stride + 1
            ow = (ww + 2 * padding - eff) // stride + 1
            if oh <= 0 or ow <= 0:
                raise ModelError(f"{where}: output size {oh}x{ow} <= 0")
            y = lname + ("_pre" if act != "linear" else "")
            nodes.append(helper.make_node(
                "Conv", [cur, init(lname + "_w", wts), init(lname + "_b", t)],
                [y], kernel_shape=[size, size], strides=[stride, stride],
                pads=[padding] * 4, group=groups, dilations=[dil, dil]))
            cur = activation(y, act, lname, where)
            shape = (n, oh, ow)
        elif sec == "connected":
            n = _int(opts, "output", 1, src, no, lo=1)
            bn = _int(opts, "batch_normalize", 0, src, no)
            act = opts.get("activation", "logistic")
            nin = cc * hh * ww
            biases = w.take(n, f"{lname} biases", lambda m: rs.normal(0, 0.1, m))
            wts = w.take(n * nin, f"{lname} weights",
                         lambda m: rs.normal(0, np.sqrt(1.0 / nin), m)).reshape(n, nin)
            if bn:
                s, t = bn_fold(n, biases, where, lname, "fc")
            else:
                s, t = np.ones(n), biases.astype(np.float64)
            wts, t = _folded(wts, s[:, None], t, where)
            flat = lname + "_flat"
            nodes.append(helper.make_node("Flatten", [cur], [flat], axis=1))
            y = lname + ("_pre" if act != "linear" else "")
            nodes.append(helper.make_node("Gemm", [flat, init(lname + "_w", wts),
                                                   init(lname + "_b", t)],
                                          [y], transB=1))
            y = activation(y, act, lname, where)
            # keep Darknet's view of a connected output: n x 1 x 1
            cur = lname + "_4d"
            nodes.append(helper.make_node("Reshape", [y, init(lname + "_shape",
                                                              np.array([-1, n, 1, 1], np.int64))],
                                          [cur]))
            shape = (n, 1, 1)
        elif sec == "maxpool":
            stride = _int(opts, "stride", 1, src, no, lo=1)
            size = _int(opts, "size", stride, src, no, lo=1)
            padding = _int(opts, "padding", size - 1, src, no, lo=0)
            oh = (hh + padding - size) // stride + 1
            ow = (ww + padding - size) // stride + 1
            pb = padding // 2
            pe_h = (oh - 1) * stride + size - hh - pb
            pe_w = (ow - 1) * stride + size - ww - pb
            nodes.append(helper.make_node("MaxPool", [cur], [lname], kernel_shape=[size, size],
                                          strides=[stride, stride],
                                          pads=[pb, pb, max(pe_h, 0), max(pe_w, 0)]))
            cur, shape = lname, (cc, oh, ow)
        elif sec == "avgpool":
            nodes.append(helper.make_node("GlobalAveragePool", [cur], [lname]))
            cur, shape = lname, (cc, 1, 1)
        elif sec == "route":
            if "layers" not in opts:
                raise ModelError(f"{where}: [route] needs layers=")
            idx = [ref(k, v, where) for v in _ints(opts["layers"], "layers", src, no)]
            if not idx:
                raise ModelError(f"{where}: [route] layers= names no layer")
            groups = _int(opts, "groups", 1, src, no, lo=1)
            gid = _int(opts, "group_id", 0, src, no, lo=0)
            if gid >= groups:
                raise ModelError(f"{where}: group_id={gid} with groups={groups}")
            ins = [layers[j] for j in idx]
            if any(s[1:] != ins[0][1][1:] for _, s in ins):
                raise ModelError(f"{where}: routed layers have different sizes "
                                 f"{[list(s) for _, s in ins]}")
            if len(ins) == 1:
                name, s0 = ins[0]
            else:
                name = lname + ("_cat" if groups > 1 else "")
                nodes.append(helper.make_node("Concat", [n_ for n_, _ in ins], [name], axis=1))
                s0 = (sum(s[0] for _, s in ins),) + ins[0][1][1:]
            if groups > 1:
                if s0[0] % groups:
                    raise ModelError(f"{where}: groups={groups} does not divide {s0[0]} "
                                     f"channels")
                cg = s0[0] // groups
                nodes.append(helper.make_node(
                    "Slice", [name, init(lname + "_st", np.array([gid * cg], np.int64)),
                              init(lname + "_en", np.array([(gid + 1) * cg], np.int64)),
                              init(lname + "_ax", np.array([1], np.int64))], [lname]))
                name, s0 = lname, (cg,) + s0[1:]
            cur, shape = name, s0
        elif sec == "shortcut":
            j = ref(k, _int(opts, "from", -3, src, no), where)
            other, so = layers[j]
            if so != shape:
                raise ModelError(f"{where}: [shortcut] of shapes {list(so)} and {list(shape)} "
                                 f"(only equal shapes are supported)")
            act = opts.get("activation", "linear")
            y = lname + ("_pre" if act != "linear" else "")
            nodes.append(helper.make_node("Add", [cur, other], [y]))
            cur = activation(y, act, lname, where)
        elif sec == "upsample":
            stride = _int(opts, "stride", 2, src, no)
            if stride < 1:
                raise ModelError(f"{where}: only integer upsampling (stride >= 1) is supported")
            try:
                scale = float(opts.get("scale", "1"))
            except ValueError:
                raise ModelError(f"{where}: scale={brief(opts['scale'])} is not a number") \
                    from None
            if scale != 1:
                raise ModelError(f"{where}: upsample scale != 1 is not supported")
            nodes.append(helper.make_node(
                "Resize", [cur, "", init(lname + "_scales",
                                         np.array([1, 1, stride, stride], np.float32))],
                [lname], mode="nearest", coordinate_transformation_mode="asymmetric",
                nearest_mode="floor"))
            cur, shape = lname, (cc, hh * stride, ww * stride)
        elif sec == "reorg":
            s = _int(opts, "stride", 2, src, no, lo=1)
            if _int(opts, "reverse", 0, src, no) or _int(opts, "flatten", 0, src, no) or \
                    _int(opts, "extra", 0, src, no):
                raise ModelError(f"{where}: reorg reverse/flatten/extra is not supported")
            if cc % (s * s) or hh % s or ww % s:
                raise ModelError(f"{where}: reorg stride {s} does not divide {list(shape)}")
            # reorg_cpu(forward=0): the input buffer read as [C/s^2, H, s, W, s],
            # permuted to [s(y), s(x), C/s^2, H, W], read back as [C s^2, H/s, W/s].
            r6 = lname + "_6d"
            nodes.append(helper.make_node(
                "Reshape", [cur, init(lname + "_s6", np.array([-1, cc // (s * s), hh, s, ww, s],
                                                               np.int64))], [r6]))
            t6 = lname + "_perm"
            nodes.append(helper.make_node("Transpose", [r6], [t6], perm=[0, 3, 5, 1, 2, 4]))
            nodes.append(helper.make_node(
                "Reshape", [t6, init(lname + "_s4", np.array([-1, cc * s * s, hh // s, ww // s],
                                                              np.int64))], [lname]))
            cur, shape = lname, (cc * s * s, hh // s, ww // s)
        elif sec == "dropout":
            pass
        elif sec == "softmax":
            if _int(opts, "groups", 1, src, no) != 1:
                raise ModelError(f"{where}: softmax groups != 1 is not supported")
            flat = lname + "_flat"
            nodes.append(helper.make_node("Flatten", [cur], [flat], axis=1))
            sm = lname + "_2d"
            nodes.append(helper.make_node("Softmax", [flat], [sm], axis=1))
            nodes.append(helper.make_node(
                "Reshape", [sm, init(lname + "_shape", np.array([-1, cc, hh, ww], np.int64))],
                [lname]))
            cur = lname
        elif sec in ("region", "yolo", "detection", "gaussian_yolo"):
            if cur not in outputs:
                outputs.append(cur)
        elif sec == "cost":
            pass
        else:
            raise ModelError(f"{where}: layer type [{brief(sec)[1:-1]}] is not supported")
        if math.prod(shape) > MAX_ELEMENTS:
            raise ModelError(f"{where}: output {'x'.join(map(str, shape))} has more than "
                             f"{MAX_ELEMENTS:,} elements")
        layers.append((cur, shape))
    w.finish()
    if not outputs:
        outputs.append(cur)
    # Output names that are graph inputs or repeated: add an Identity so ONNX is well formed.
    final = []
    for k, o in enumerate(outputs):
        if o == "data" or o in final:
            nodes.append(helper.make_node("Identity", [o], [f"output{k}"]))
            o = f"output{k}"
        final.append(o)
    shapes = {}
    for name, s in layers:
        shapes.setdefault(name, s)
    g = helper.make_graph(
        nodes, os.path.splitext(os.path.basename(src))[0] if src != "<cfg>" else "darknet",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, c, h, wd])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in final], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="hwsim.darknet_reader")
    model.ir_version = 8
    return model, final


def read_darknet(cfg, weights=None, *, batch: int = 1, output_layout: str = "native",
                 bn_variant: str = "pjreddie") -> Graph:
    """Read ``cfg`` (+ ``weights``; random parameters without) into a float graph IR.

    Outputs are NHWC maps by default (``output_layout="native"``; ``"onnx"`` gives NCHW).
    """
    from .onnx_reader import onnx_to_graph
    src = os.fspath(cfg) if isinstance(cfg, (str, os.PathLike)) else "<cfg>"
    if isinstance(cfg, (str, os.PathLike)) and not os.path.exists(os.fspath(cfg)) and \
            "[" not in str(cfg):
        raise ModelError(f"{src}: no such file")
    model, _ = darknet_to_onnx(cfg, weights, bn_variant=bn_variant)
    g = onnx_to_graph(model, batch=batch, output_layout=output_layout, source=src)
    if hasattr(g, "io_layout"):
        g.io_layout.source_format = "darknet"
    return g


def write_weights(path, arrays, version=(0, 2, 0), seen: int = 0) -> None:
    """Write a Darknet ``.weights`` file: header then the float32 arrays in order (for tests
    and conversions)."""
    from ..util import atomic_write_bytes
    major, minor, rev = version
    head = np.array([major, minor, rev], "<i4").tobytes()
    if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000:
        head += np.array([seen], "<u8").tobytes()
    else:
        head += np.array([seen], "<i4").tobytes()
    body = b"".join(np.asarray(a, "<f4").reshape(-1).tobytes() for a in arrays)
    atomic_write_bytes(path, head + body)
