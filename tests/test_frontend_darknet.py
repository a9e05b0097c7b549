"""Darknet .cfg + .weights import: a tiny generated network (every supported layer type) run
by hwsim's float executor vs an independent numpy transcription of Darknet's forward passes
(``forward_*_layer`` / ``reorg_cpu`` / ``normalize_cpu`` loops) and vs onnxruntime on the
intermediate ONNX model.

Float comparisons use a relative tolerance (1e-5 of the largest magnitude): the executor and
the reference sum in different orders in float32; this is the float path, not an integer claim.
"""
from __future__ import annotations

import numpy as np
import pytest

from hwsim.frontends.darknet_reader import darknet_to_onnx, parse_cfg, read_darknet, write_weights
from hwsim.ir import ModelError
from hwsim.quant.float_exec import FloatExecutor, from_graph_layout

CFG = """
[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
filters=16
size=3
stride=1
pad=1
activation=linear

[shortcut]
from=-3
activation=linear

[maxpool]
size=2
stride=2

[route]
layers=2

[convolutional]
batch_normalize=1
filters=4
size=1
stride=1
pad=1
activation=relu

[reorg]
stride=2

[route]
layers=-1,-4

[convolutional]
batch_normalize=1
filters=12
size=3
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers=-1,5

[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear

[yolo]
mask=0,1,2
classes=1

[route]
layers=11

[convolutional]
size=1
stride=1
pad=1
filters=10
activation=linear

[region]
classes=0
num=2
"""

CLASSIFIER = """
[net]
width=8
height=8
channels=1

[convolutional]
batch_normalize=1
filters=6
size=3
stride=2
pad=1
activation=relu

[dropout]
probability=.5

[connected]
output=5
activation=linear

[softmax]
groups=1
"""


# ------------------------------------------------------------------ independent numpy Darknet

def _conv(x, w, b, stride, pad, groups=1):
    c, h, wd = x.shape
    n, cg, k, _ = w.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad))).astype(np.float64)
    out = np.zeros((n, oh, ow))
    og = n // groups
    for o in range(n):
        g = o // og
        for i in range(k):
            for j in range(k):
                patch = xp[g * cg:(g + 1) * cg, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[o] += np.tensordot(w[o, :, i, j], patch, axes=1)
    return out + b[:, None, None]


def _bn(x, scales, mean, var):  # pjreddie normalize_cpu + scale_bias
    return scales[:, None, None] * (x - mean[:, None, None]) / (np.sqrt(var)[:, None, None] + 1e-6)


def _act(x, a):
    return {"linear": x, "leaky": np.where(x > 0, x, 0.1 * x), "relu": np.maximum(x, 0)}[a]


def _maxpool(x, size, stride, padding=None):
    padding = size - 1 if padding is None else padding
    c, h, w = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = -(padding // 2)
    out = np.full((c, oh, ow), -np.inf)
    for i in range(oh):
        for j in range(ow):
            for n in range(size):
                for m in range(size):
                    y, xx = off + i * stride + n, off + j * stride + m
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, i, j] = np.maximum(out[:, i, j], x[:, y, xx])
    return out


def _reorg(x, stride):
    """reorg_cpu(x, w, h, c, batch=1, stride, forward=0, out), transcribed."""
    c, h, w = x.shape
    flat = x.reshape(-1)
    out = np.zeros_like(flat)
    out_c = c // (stride * stride)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                in_index = i + w * (j + h * k)
                c2 = k % out_c
                offset = k // out_c
                w2 = i * stride + offset % stride
                h2 = j * stride + offset // stride
                out_index = w2 + w * stride * (h2 + h * stride * c2)
                out[in_index] = flat[out_index]
    return out.reshape(c * stride * stride, h // stride, w // stride)


def _darknet_forward(cfg_text, params, x):
    """x: (C, H, W). params: the float arrays in .weights order. Returns per-layer outputs."""
    secs = parse_cfg(cfg_text)[1:]
    it = iter(params)
    outs, cur = [], x.astype(np.float64)
    for k, (sec, o, _) in enumerate(secs):
        if sec == "convolutional":
            n, size = int(o["filters"]), int(o["size"])
            pad = size // 2 if int(o.get("pad", 0)) else 0
            b = next(it)
            bn = int(o.get("batch_normalize", 0))
            if bn:
                sc, mu, var = next(it), next(it), next(it)
            w = next(it).reshape(n, cur.shape[0], size, size)
            y = _conv(cur, w, np.zeros(n) if bn else b, int(o.get("stride", 1)), pad)
            if bn:
                y = _bn(y, sc, mu, var) + b[:, None, None]
            cur = _act(y, o["activation"])
        elif sec == "maxpool":
            st = int(o.get("stride", 1))
            cur = _maxpool(cur, int(o.get("size", st)), st)
        elif sec == "route":
            idx = [int(v) for v in o["layers"].split(",")]
            cur = np.concatenate([outs[i + k if i < 0 else i] for i in idx])
        elif sec == "shortcut":
            cur = cur + outs[k + int(o["from"])]
        elif sec == "upsample":
            s = int(o["stride"])
            cur = cur.repeat(s, axis=1).repeat(s, axis=2)
        elif sec == "reorg":
            cur = _reorg(cur, int(o["stride"]))
        elif sec == "connected":
            n = int(o["output"])
            b = next(it)
            w = next(it).reshape(n, -1)
            cur = (w @ cur.reshape(-1) + b).reshape(n, 1, 1)
        elif sec == "softmax":
            e = np.exp(cur - cur.max())
            cur = e / e.sum()
        outs.append(cur)
    return outs


def _random_params(cfg_text, seed=0):
    """Random parameters in .weights order; tracks every layer's (C, H, W)."""
    rng = np.random.default_rng(seed)
    secs = parse_cfg(cfg_text)
    c = int(secs[0][1]["channels"])
    h, w = int(secs[0][1]["height"]), int(secs[0][1]["width"])
    shapes, params = [], []
    for k, (sec, o, _) in enumerate(secs[1:]):
        if sec == "convolutional":
            n, size = int(o["filters"]), int(o["size"])
            params.append(rng.normal(0, 0.1, n))
            if int(o.get("batch_normalize", 0)):
                params += [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.uniform(0.3, 2, n)]
            params.append(rng.normal(0, np.sqrt(2 / (c * size * size)), n * c * size * size))
            pad = size // 2 if int(o.get("pad", 0)) else 0
            st = int(o.get("stride", 1))
            c, h, w = n, (h + 2 * pad - size) // st + 1, (w + 2 * pad - size) // st + 1
        elif sec == "connected":
            n = int(o["output"])
            params += [rng.normal(0, 0.1, n), rng.normal(0, 0.3, n * c * h * w)]
            c, h, w = n, 1, 1
        elif sec == "maxpool":
            st = int(o.get("stride", 1))
            size = int(o.get("size", st))
            h, w = (h + size - 1 - size) // st + 1, (w + size - 1 - size) // st + 1
        elif sec == "route":
            idx = [int(v) for v in o["layers"].split(",")]
            ls = [shapes[i + k if i < 0 else i] for i in idx]
            c, h, w = sum(s[0] for s in ls), ls[0][1], ls[0][2]
        elif sec == "upsample":
            h, w = h * int(o["stride"]), w * int(o["stride"])
        elif sec == "reorg":
            s = int(o["stride"])
            c, h, w = c * s * s, h // s, w // s
        shapes.append((c, h, w))
    return [p.astype(np.float32) for p in params]


def _files(tmp_path, cfg_text, seed=0):
    cfg = tmp_path / "net.cfg"
    cfg.write_text(cfg_text)
    params = _random_params(cfg_text, seed)
    wpath = tmp_path / "net.weights"
    write_weights(wpath, params)
    return cfg, wpath, params


@pytest.mark.parametrize("text", [CFG, CLASSIFIER], ids=["yolo_like", "classifier"])
def test_darknet_float_matches_numpy_darknet(tmp_path, text):
    cfg, wpath, params = _files(tmp_path, text)
    g = read_darknet(cfg, wpath)
    secs = parse_cfg(text)
    x = np.random.default_rng(1).uniform(0, 1, (1, int(secs[0][1]["channels"]),
                                                int(secs[0][1]["height"]),
                                                int(secs[0][1]["width"]))).astype(np.float32)
    ref = _darknet_forward(text, [p.astype(np.float64) for p in params], x[0])
    outs = FloatExecutor(g).run(x)
    kinds = [s for s, _, _ in secs[1:]]
    want = [ref[k - 1] for k, s in enumerate(kinds) if s in ("yolo", "region")] or [ref[-1]]
    assert len(outs) == len(want)
    for k, (o, r) in enumerate(zip(outs, want)):
        o = from_graph_layout(g, o, k)[0]           # NHWC -> CHW
        assert o.shape == r.shape
        np.testing.assert_allclose(o, r, rtol=0, atol=1e-5 * np.abs(r).max())


def test_darknet_onnx_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    cfg, wpath, _ = _files(tmp_path, CFG)
    model, names = darknet_to_onnx(cfg, wpath)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)
    ref = sess.run(None, {"data": x})
    g = read_darknet(cfg, wpath, output_layout="onnx")
    outs = FloatExecutor(g).run(x)
    for r, o in zip(ref, outs):
        np.testing.assert_allclose(o, r, rtol=0, atol=1e-5 * np.abs(r).max())
    # the graph is NHWC inside, with TFLite ops
    types = {op.type for op in g.ops}
    assert {"CONV_2D", "MAX_POOL_2D", "CONCATENATION", "ADD", "LEAKY_RELU",
            "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE"} <= types
    assert g.tensors[g.inputs[0]].shape == (1, 16, 16, 3)


def test_darknet_weight_file_errors(tmp_path):
    cfg, wpath, params = _files(tmp_path, CFG)
    short = tmp_path / "short.weights"
    write_weights(short, params[:-1])
    with pytest.raises(ModelError, match="ends after"):
        read_darknet(cfg, short)
    longer = tmp_path / "long.weights"
    write_weights(longer, params + [np.zeros(3, np.float32)])
    with pytest.raises(ModelError, match="left over"):
        read_darknet(cfg, longer)
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth=8\nheight=8\nchannels=1\n[lstm]\noutput=3\n")
    with pytest.raises(ModelError, match=r"bad.cfg:5: layer type \[lstm\]"):
        read_darknet(bad)
    with pytest.raises(ModelError, match="no such file"):
        read_darknet(tmp_path / "missing.cfg")


# malformed cfg / weights (found by tests/test_fuzz.py): one short ModelError, no traceback or
# RuntimeWarning
@pytest.mark.parametrize("old, new, needle", [
    ("[maxpool]\nsize=2\nstride=2", "[maxpool]\nsize=2\nstride=0",
     "net.cfg:15: stride=0, must be >= 1"),
    ("filters=8\nsize=3", "filters=0\nsize=3", "net.cfg:7: filters=0, must be >= 1"),
    ("layers=-1,-4", "layers=-1,1.5", "net.cfg:60: layers='-1,1.5' is not a list of integers"),
    ("[upsample]\nstride=2", "[upsample]\nstride=2\nscale=x",
     "net.cfg:71: scale='x' is not a number"),
    ("[net]\nwidth=16", "[net]\n" + "a" * 100_000 + "\nwidth=16",
     "expected 'key=value', got 'aaaa"),
    ("activation=leaky", "activation=" + "z" * 100_000, "activation 'zzzz"),
    ("width=16", "width=99999999999999999999",
     "net.cfg:2: width=99999999999999999999 is outside the int32 range Darknet reads"),
    ("width=16\nheight=16", "width=65536\nheight=65536",
     "net.cfg:2: [net] input 3x65536x65536 has more than 2,147,483,647 elements"),
])
def test_malformed_cfg(tmp_path, old, new, needle):
    cfg, wpath, _ = _files(tmp_path, CFG)
    assert old in CFG
    cfg.write_text(CFG.replace(old, new, 1))
    with pytest.raises(ModelError) as e:
        read_darknet(cfg, wpath)
    msg = str(e.value)
    assert needle in msg and len(msg) < 300, msg[:400]


def test_weights_with_nan_or_a_hostile_header(tmp_path):
    import warnings
    cfg, wpath, params = _files(tmp_path, CFG)
    bad = [p.copy() for p in params]
    bad[1][3] = np.inf
    write_weights(wpath, bad)
    with pytest.raises(ModelError, match=r"net.weights: l0_convolutional scales hold NaN or "
                                         r"infinity \(float32 value 11 after the header\)"):
        read_darknet(cfg, wpath)
    bad = [p.copy() for p in params]
    bad[3][0] = -0.5  # layer 0's rolling_variance
    write_weights(wpath, bad)
    with pytest.raises(ModelError, match=r"net.weights: l0_convolutional rolling_variance holds "
                                         r"negative values \(-0.5\)"):
        read_darknet(cfg, wpath)
    bad = [p.copy() for p in params]
    bad[1][0], bad[3][0] = 3e38, 0.0  # scale / sqrt(0 + 1e-6): beyond float32
    write_weights(wpath, bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelError, match=r"net.cfg:\d+: the weights times the batch-norm "
                                             r"scales .* leave the float32 range"):
            read_darknet(cfg, wpath)
    write_weights(wpath, params)
    raw = bytearray(wpath.read_bytes())
    raw[0:4] = np.array([0x7FFFFFFF], "<i4").tobytes()  # major*10 overflowed int32
    wpath.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelError, match="net.weights"):
            read_darknet(cfg, wpath)
