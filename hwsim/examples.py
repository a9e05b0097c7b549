"""The bundled example network: a small int8 CNN that hwsim generates itself, seeded.

    from hwsim.examples import write_example, example_input
    write_example("example_cnn.tflite")          # same seed -> same bytes
    x = example_input()                           # int8 [1, 32, 32, 3]

Architecture (input int8 1x32x32x3, 1,214,976 MACs)::

    op  type               shape out      notes
    0   CONV_2D            1x16x16x24     3x3, stride 2, SAME, RELU6, per-channel weights
    1   DEPTHWISE_CONV_2D  1x16x16x24     3x3, stride 1, SAME, RELU, per-channel weights
    2   CONV_2D            1x16x16x24     1x1, no activation
    3   ADD                1x16x16x24     residual: op 0 output + op 2 output
    4   CONV_2D            1x8x8x48       3x3, stride 2, SAME, RELU6
    5   DEPTHWISE_CONV_2D  1x8x8x48       3x3, stride 1, SAME, RELU
    6   CONV_2D            1x8x8x48       1x1, no activation
    7   ADD                1x8x8x48       residual: op 4 output + op 6 output
    8   MAX_POOL_2D        1x4x4x48       2x2, stride 2, VALID
    9   RESHAPE            1x768
    10  FULLY_CONNECTED    1x10           per-tensor weights
    11  SOFTMAX            1x10           beta 1, output scale 1/256, zero point -128

How the integers are made (the way TFLite's post-training quantization makes them):

* Float weights are seeded He-normal (std sqrt(2 / fan_in); the 1x1 convolutions x0.5, the
  FULLY_CONNECTED x3 so that the softmax is neither flat nor one-hot), biases N(0, 0.05).
* Convolution weights are quantized symmetric per output channel (CONV_2D axis 0,
  DEPTHWISE_CONV_2D axis 3), the FULLY_CONNECTED weights symmetric per tensor: int8 in
  [-127, 127], scale = max|w| / 127, q = round(w / scale) (half away from zero).
* Biases are int32 with scale s_in * s_w[c] and zero point 0.
* Activation ranges come from a float forward pass (numpy, float64) over 16 seeded synthetic
  images: min/max over all of them, widened to include 0, rounded to 4 significant digits
  (so that the last bits of a BLAS sum cannot change the file), then asymmetric int8 as
  TFLite's converter does: scale = (max - min) / 255, zero point = round(-128 - min / scale).
* The input is an image in [0, 1]: scale 1/255, zero point -128, so pixel p (0..255) is the
  int8 value p - 128. MAX_POOL_2D and RESHAPE keep their input's parameters; SOFTMAX has the
  fixed int8 output parameters TFLite requires (1/256, -128).
"""
from __future__ import annotations

import os

import numpy as np

from .arith import round_half_away
from .frontends.builder import GraphBuilder
from .ir import Graph

INPUT_SHAPE = (1, 32, 32, 3)
NUM_CLASSES = 10
WIDTHS = (24, 48)
CALIBRATION_IMAGES = 16

EXAMPLE_MODEL_FILE = "example_cnn.tflite"
EXAMPLE_INPUT_FILE = "example_input.npy"
EXAMPLE_IMAGE_FILE = "example_input.png"

# Op versions as TFLite's converter writes them for these int8 ops.
_VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "ADD": 2, "MAX_POOL_2D": 2, "RESHAPE": 1,
             "FULLY_CONNECTED": 4, "SOFTMAX": 2}


# -- synthetic images -----------------------------------------------------------------------
def example_image(seed: int = 0) -> np.ndarray:
    """A seeded synthetic 32x32 RGB image (uint8 [32, 32, 3]): soft coloured blobs + noise."""
    rng = np.random.default_rng([int(seed), 0x1A6E])
    return _image(rng)


def _image(rng: np.random.Generator) -> np.ndarray:
    h, w = INPUT_SHAPE[1:3]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.broadcast_to(rng.uniform(0.1, 0.9, 3), (h, w, 3)).copy()
    img += (rng.uniform(-0.3, 0.3, 3)[None, None, :] * (xx / (w - 1))[..., None])
    for _ in range(int(rng.integers(3, 8))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(2.0, 9.0)
        color = rng.uniform(0.0, 1.0, 3)
        m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - m) + color * m
    img += rng.normal(0.0, 0.03, img.shape)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def example_input(seed: int = 0) -> np.ndarray:
    """The example network's input for ``example_image(seed)``: int8 [1, 32, 32, 3] = p - 128."""
    p = example_image(seed).astype(np.int16)
    return (p - 128).astype(np.int8).reshape(INPUT_SHAPE)


# -- float reference (for calibration only) --------------------------------------------------
def _same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def _conv(x, w, b, stride, depthwise=False):
    """x [N,H,W,C] float64; w [O,KH,KW,I] (or [1,KH,KW,C] depthwise); SAME padding."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[1:3]
    oh, pt, pb = _same_pads(h, kh, stride)
    ow, pl, pr = _same_pads(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cols = np.empty((n, oh, ow, kh, kw, c))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
    if depthwise:
        y = np.einsum("nhwijc,ijc->nhwc", cols, w[0])
    else:
        y = cols.reshape(n, oh, ow, kh * kw * c) @ w.reshape(w.shape[0], -1).T
    return y + b


def _act(y, fused):
    if fused == "RELU":
        return np.maximum(y, 0.0)
    if fused == "RELU6":
        return np.clip(y, 0.0, 6.0)
    return y


# -- quantization helpers --------------------------------------------------------------------
def _sig4(v: float) -> float:
    return float(f"{float(v):.4g}")


def _act_quant(lo: float, hi: float) -> tuple[np.float32, int]:
    """TFLite-converter-style asymmetric int8 parameters for the range [lo, hi]."""
    lo, hi = min(_sig4(lo), 0.0), max(_sig4(hi), 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    scale = np.float32((hi - lo) / 255.0)
    zp = int(np.clip(round_half_away(-128.0 - lo / float(scale)), -128, 127))
    return scale, zp


def _weights_per_channel(w: np.ndarray, axis: int):
    red = tuple(a for a in range(w.ndim) if a != axis)
    m = np.max(np.abs(w), axis=red)
    scales = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(round_half_away(w / scales.astype(np.float64).reshape(shape)), -127, 127)
    return q.astype(np.int8), scales


def _bias(b: np.ndarray, s_in: np.float32, s_w: np.ndarray):
    scales = (np.float32(s_in) * s_w.astype(np.float32)).astype(np.float32)
    q = round_half_away(b / scales.astype(np.float64))
    return np.clip(q, -2**31, 2**31 - 1).astype(np.int32), scales


# -- the network -----------------------------------------------------------------------------
def _float_params(rng: np.random.Generator) -> dict:
    c0, c1 = WIDTHS
    cin = INPUT_SHAPE[3]

    def he(shape, fan_in):
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)

    def bias(n):
        return rng.normal(0.0, 0.05, n)

    p = {}
    p["b1_conv"] = (he((c0, 3, 3, cin), 9 * cin), bias(c0))
    p["b1_dw"] = (he((1, 3, 3, c0), 9), bias(c0))
    p["b1_pw"] = (he((c0, 1, 1, c0), c0) * 0.5, bias(c0))
    p["b2_conv"] = (he((c1, 3, 3, c0), 9 * c0), bias(c1))
    p["b2_dw"] = (he((1, 3, 3, c1), 9), bias(c1))
    p["b2_pw"] = (he((c1, 1, 1, c1), c1) * 0.5, bias(c1))
    flat = (INPUT_SHAPE[1] // 8) * (INPUT_SHAPE[2] // 8) * c1
    p["fc"] = (he((NUM_CLASSES, flat), flat) * 3.0, bias(NUM_CLASSES))
    return p


def _forward(p: dict, x: np.ndarray) -> dict:
    """Float forward pass; returns every activation by name (batched)."""
    a = {"input": x}
    a["b1_conv"] = _act(_conv(x, *p["b1_conv"], 2), "RELU6")
    a["b1_dw"] = _act(_conv(a["b1_conv"], *p["b1_dw"], 1, depthwise=True), "RELU")
    a["b1_pw"] = _conv(a["b1_dw"], *p["b1_pw"], 1)
    a["b1_add"] = a["b1_conv"] + a["b1_pw"]
    a["b2_conv"] = _act(_conv(a["b1_add"], *p["b2_conv"], 2), "RELU6")
    a["b2_dw"] = _act(_conv(a["b2_conv"], *p["b2_dw"], 1, depthwise=True), "RELU")
    a["b2_pw"] = _conv(a["b2_dw"], *p["b2_pw"], 1)
    a["b2_add"] = a["b2_conv"] + a["b2_pw"]
    n, h, w, c = a["b2_add"].shape
    a["pool"] = a["b2_add"].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    a["flat"] = a["pool"].reshape(n, -1)
    a["fc"] = a["flat"] @ p["fc"][0].T + p["fc"][1]
    return a


def calibration_images(seed: int = 0, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """The float images in [0, 1] the activation ranges are calibrated on: [count, 32, 32, 3]."""
    rng = np.random.default_rng([int(seed), 0xCA1B])
    return np.stack([_image(rng) for _ in range(count)]).astype(np.float64) / 255.0


def example_graph(seed: int = 0, name: str = "hwsim_example_cnn") -> Graph:
    """Build the example network's graph IR (deterministic in ``seed``)."""
    rng = np.random.default_rng([int(seed), 0xC0DE])
    p = _float_params(rng)
    acts = _forward(p, calibration_images(seed))
    q = {k: _act_quant(v.min(), v.max()) for k, v in acts.items()}
    q["input"] = (np.float32(1.0 / 255.0), -128)
    q["pool"] = q["flat"] = q["b2_add"]

    b = GraphBuilder(name)
    i8 = np.int8

    def act(key, shape, label):
        s, zp = q[key]
        return b.activation(label, shape, i8, scale=s, zero_point=zp)

    x = b.input("input", INPUT_SHAPE, i8, scale=q["input"][0], zero_point=q["input"][1])

    def conv(key, label, src, src_key, stride, fused, depthwise=False):
        w, bias = p[key]
        axis = 3 if depthwise else 0
        wq, ws = _weights_per_channel(w, axis)
        bq, bs = _bias(bias, q[src_key][0], ws)
        wt = b.const(f"{label}/weights", wq, scales=ws, zero_points=np.zeros(len(ws), np.int64),
                     axis=axis)
        bt = b.const(f"{label}/bias", bq, scales=bs, zero_points=np.zeros(len(bs), np.int64))
        n = INPUT_SHAPE[0]
        shape = (n,) + acts[key].shape[1:]
        y = act(key, shape, label)
        common = dict(padding="SAME", stride_w=stride, stride_h=stride,
                      fused_activation_function=fused, dilation_w_factor=1, dilation_h_factor=1)
        if depthwise:
            b.op("DEPTHWISE_CONV_2D", [src, wt, bt], [y], _VERSIONS["DEPTHWISE_CONV_2D"],
                 depth_multiplier=1, **common)
        else:
            b.op("CONV_2D", [src, wt, bt], [y], _VERSIONS["CONV_2D"], **common)
        return y

    def add(key, label, lhs, rhs):
        y = act(key, (1,) + acts[key].shape[1:], label)
        b.op("ADD", [lhs, rhs], [y], _VERSIONS["ADD"], fused_activation_function="NONE")
        return y

    t = conv("b1_conv", "block1/conv3x3_s2", x, "input", 2, "RELU6")
    t_dw = conv("b1_dw", "block1/dwconv3x3", t, "b1_conv", 1, "RELU", depthwise=True)
    t_pw = conv("b1_pw", "block1/conv1x1", t_dw, "b1_dw", 1, "NONE")
    t = add("b1_add", "block1/add", t, t_pw)
    t2 = conv("b2_conv", "block2/conv3x3_s2", t, "b1_add", 2, "RELU6")
    t_dw = conv("b2_dw", "block2/dwconv3x3", t2, "b2_conv", 1, "RELU", depthwise=True)
    t_pw = conv("b2_pw", "block2/conv1x1", t_dw, "b2_dw", 1, "NONE")
    t = add("b2_add", "block2/add", t2, t_pw)

    pool = act("pool", (1,) + acts["pool"].shape[1:], "head/maxpool2x2")
    b.op("MAX_POOL_2D", [t], [pool], _VERSIONS["MAX_POOL_2D"], padding="VALID", stride_w=2,
         stride_h=2, filter_width=2, filter_height=2, fused_activation_function="NONE")
    flat_shape = (1, int(np.prod(acts["pool"].shape[1:])))
    shape_t = b.const("head/flatten/shape", np.array(flat_shape, np.int32))
    flat = act("flat", flat_shape, "head/flatten")
    b.op("RESHAPE", [pool, shape_t], [flat], _VERSIONS["RESHAPE"], new_shape=list(flat_shape))

    w, bias = p["fc"]
    wq, ws = _weights_per_channel(w.reshape(1, -1), 0)  # per tensor: one scale
    wq = wq.reshape(w.shape)
    bq, bs = _bias(bias, q["flat"][0], np.repeat(ws, 1))
    wt = b.const("head/fc/weights", wq, scales=ws, zero_points=0)
    bt = b.const("head/fc/bias", bq, scales=bs, zero_points=0)
    logits = act("fc", (1, NUM_CLASSES), "head/fc")
    b.op("FULLY_CONNECTED", [flat, wt, bt], [logits], _VERSIONS["FULLY_CONNECTED"],
         fused_activation_function="NONE", weights_format="DEFAULT", keep_num_dims=False,
         asymmetric_quantize_inputs=False)
    probs = b.activation("probabilities", (1, NUM_CLASSES), i8, scale=1.0 / 256.0,
                         zero_point=-128)
    b.op("SOFTMAX", [logits], [probs], _VERSIONS["SOFTMAX"], beta=1.0)
    b.output(probs)
    return b.build()


def example_model_bytes(seed: int = 0) -> bytes:
    from .frontends.tflite_writer import serialize_tflite
    return serialize_tflite(example_graph(seed), description="hwsim example network")


def write_example(path: str | os.PathLike, seed: int = 0) -> str:
    """Write the example network to ``path`` (atomically); returns the path."""
    from .util import atomic_write_bytes
    atomic_write_bytes(path, example_model_bytes(seed))
    return os.fspath(path)


def example_macs() -> int:
    """MACs of the example network (CONV/DEPTHWISE/FC, as in the corpus' meta.yaml)."""
    g = example_graph()
    total = 0
    for op in g.ops:
        out = g.tensors[op.outputs[0]].shape
        w = g.tensors[op.inputs[1]].shape if len(op.inputs) > 1 else ()
        if op.type == "CONV_2D":
            total += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif op.type == "DEPTHWISE_CONV_2D":
            total += int(np.prod(out)) * w[1] * w[2]
        elif op.type == "FULLY_CONNECTED":
            total += int(np.prod(out)) * w[1]
    return total
