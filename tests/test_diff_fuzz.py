"""Seeded differential fuzz against TFLite's reference kernels (ai-edge-litert, BUILTIN_REF).

Random valid models, built with hwsim's own writer: single ops and chains of 2-3, every op
hwsim supports, int8 and 16x8 (int16 activations, int8 weights, int64 biases). For each model
TFLite REF and hwsim run the same random inputs; the verdicts:

* equal outputs (dtype, shape, every integer): pass;
* TFLite refuses the model (Prepare fails): not a case; hwsim may refuse or compute (counted);
* hwsim refuses a model TFLite computes, or the outputs differ: a failure, reported with its
  seed. Each failure found becomes a regression case: its seed goes into REGRESSION_SEEDS
  (run on every CI run) and, once understood, a named test in test_tflite_fuzz_cases.py.

Per CI run HWSIM_FUZZ_N models (default 500: under 10 s with Numba's cache warm, on a loaded
2-core machine; the first run compiles the kernels);
more on demand, e.g. ``HWSIM_FUZZ_N=5000 python -m pytest tests/test_diff_fuzz.py``.
HWSIM_FUZZ_SEED moves the seed range (default 0: seeds 0 .. N-1).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from hwsim.frontends.builder import GraphBuilder
from oracle import hwsim_run, litert

N_MODELS = int(os.environ.get("HWSIM_FUZZ_N", "500"))
FIRST_SEED = int(os.environ.get("HWSIM_FUZZ_SEED", "0"))
# Seeds that once failed (kept after the fix), run before the seeded range on every run. Empty:
# the fuzzer has found no differing model; the TFLite cases it found before it was seeded (FC
# weight zero points, 16x8 bias types) are tests/test_tflite_fuzz_cases.py.
REGRESSION_SEEDS: list[int] = []

ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


@dataclass
class T:
    """A tensor of the model being built: builder index, shape, dtype, scale, zero point."""
    index: int
    shape: tuple
    dtype: type
    scale: float
    zp: int


class Gen:
    """Builds one random model; every op generator takes the current tensor and returns the
    op's output tensor, or None when the op does not apply to it."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 12])
        self.b = GraphBuilder(f"fuzz{seed}")
        self.inputs: list[T] = []
        self.n = 0
        self.ops: list[str] = []

    # -- helpers ---------------------------------------------------------------------------
    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def qparams(self, dtype, lo=-3.0, hi=-0.5):
        s = float(10 ** self.rng.uniform(lo, hi))
        if dtype == np.int16:
            return s / 256, 0
        return s, int(self.rng.integers(-128, 128))

    def new_input(self, shape, dtype, scale=None, zp=None):
        if scale is None:
            scale, zp = self.qparams(dtype)
        i = self.b.input(self.name("in"), shape, dtype, scale, zp)
        t = T(i, tuple(shape), dtype, scale, zp)
        self.inputs.append(t)
        return t

    def out(self, shape, dtype, scale, zp):
        i = self.b.activation(self.name("t"), shape, dtype, scale, zp)
        return T(i, tuple(int(d) for d in shape), dtype, scale, zp)

    def same_q(self, x, shape):
        return self.out(shape, x.dtype, x.scale, x.zp)

    def i32(self, v):
        return self.b.const(self.name("c"), np.array(v, np.int32))

    def op(self, op_type, ins, outs, **attrs):
        self.b.op(op_type, ins, [o.index for o in outs], **attrs)
        self.ops.append(op_type)

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def out_scale_mac(self, x, w_scale, k):
        """An output scale that keeps a MAC layer's typical outputs inside the type."""
        spread = math.sqrt(k) * (127 if x.dtype == np.int8 else 8000) * 60
        top = 127 if x.dtype == np.int8 else 32767
        return float(x.scale * w_scale * spread / top * self.rng.uniform(0.3, 3))

    # -- MAC layers ------------------------------------------------------------------------
    def _weights(self, shape, channels, axis, per_channel, zp=0):
        s = (10 ** self.rng.uniform(-3, -1, channels if per_channel else 1)).astype(np.float32)
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        return self.b.const(self.name("w"), w, s, np.full(len(s), zp, np.int64), axis), s

    def _bias(self, x, s_w, n, optional=True):
        """A bias of scale s_in * s_w (per-tensor like the weights: TFLite checks the scale);
        16x8 layers mostly get int64, sometimes int32 (CONV/FC then say so in their
        quantized_bias_type, :meth:`_bias_type_attr`)."""
        if optional and self.rng.random() < 0.15:
            return -1
        dt = np.int32
        if x.dtype == np.int16 and (optional is None or self.rng.random() < 0.8):
            dt = np.int64
        lim = 2**20 if dt == np.int32 else 2**30
        s = (np.float32(x.scale) * s_w).astype(np.float32)
        return self.b.const(self.name("b"), self.rng.integers(-lim, lim, n).astype(dt), s,
                            np.zeros(len(s), np.int64), 0)

    def _bias_type_attr(self, x, b) -> dict:
        """quantized_bias_type INT32 for a 16x8 layer with an int32 bias (else unset)."""
        if x.dtype == np.int16 and b >= 0 and self.b.tensors[b].dtype == np.int32:
            return {"quantized_bias_type": 2}
        return {}

    def _window(self, x, kh, kw):
        pad = self.pick(["SAME", "VALID"])
        sh, sw = int(self.rng.integers(1, 3)), int(self.rng.integers(1, 3))
        dh, dw = (1, 1) if self.rng.random() < 0.7 else (int(self.rng.integers(1, 3)),
                                                          int(self.rng.integers(1, 3)))
        h, w = x.shape[1], x.shape[2]
        if pad == "SAME":
            oh, ow = -(-h // sh), -(-w // sw)
        else:
            oh = (h - (kh - 1) * dh - 1) // sh + 1
            ow = (w - (kw - 1) * dw - 1) // sw + 1
        if oh < 1 or ow < 1:
            return None
        return dict(padding=pad, stride_h=sh, stride_w=sw, dilation_h_factor=dh,
                    dilation_w_factor=dw), oh, ow

    def CONV_2D(self, x):
        if len(x.shape) != 4:
            return None
        kh, kw = int(self.rng.integers(1, 4)), int(self.rng.integers(1, 4))
        g = self._window(x, kh, kw)
        if g is None:
            return None
        attrs, oh, ow = g
        cin, cout = x.shape[3], int(self.rng.integers(1, 7))
        w, s_w = self._weights((cout, kh, kw, cin), cout, 0, self.rng.random() < 0.8)
        b = self._bias(x, s_w, cout, optional=False)  # TFLite's CONV_2D requires one
        y = self.out((x.shape[0], oh, ow, cout), x.dtype,
                     self.out_scale_mac(x, float(np.median(s_w)), kh * kw * cin), 0
                     if x.dtype == np.int16 else int(self.rng.integers(-128, 128)))
        self.op("CONV_2D", [x.index, w, b], [y], version=4 if x.dtype == np.int16 else 3,
                fused_activation_function=self.pick(ACTS), **attrs,
                **self._bias_type_attr(x, b))
        return y

    def DEPTHWISE_CONV_2D(self, x):
        if len(x.shape) != 4:
            return None
        kh, kw = int(self.rng.integers(1, 4)), int(self.rng.integers(1, 4))
        g = self._window(x, kh, kw)
        if g is None:
            return None
        attrs, oh, ow = g
        dm = int(self.rng.integers(1, 3))
        cout = x.shape[3] * dm
        w, s_w = self._weights((1, kh, kw, cout), cout, 3, self.rng.random() < 0.8)
        # TFLite's DEPTHWISE_CONV_2D requires a bias, int64 for 16x8
        b = self._bias(x, s_w, cout, optional=None)
        y = self.out((x.shape[0], oh, ow, cout), x.dtype,
                     self.out_scale_mac(x, float(np.median(s_w)), kh * kw), 0
                     if x.dtype == np.int16 else int(self.rng.integers(-128, 128)))
        self.op("DEPTHWISE_CONV_2D", [x.index, w, b], [y],
                version=5 if x.dtype == np.int16 else 3, depth_multiplier=dm,
                fused_activation_function=self.pick(ACTS), **attrs)
        return y

    def FULLY_CONNECTED(self, x):
        depth = x.shape[-1]
        batch = int(np.prod(x.shape)) // depth
        units = int(self.rng.integers(1, 9))
        per_channel = self.rng.random() < 0.4
        # a per-tensor weight zero point (TFLite honours it) now and then
        zp = int(self.rng.integers(-20, 21)) if not per_channel and self.rng.random() < 0.2 \
            else 0
        w, s_w = self._weights((units, depth), units, 0, per_channel, zp)
        b = self._bias(x, s_w, units)
        y = self.out((batch, units), x.dtype, self.out_scale_mac(x, float(np.median(s_w)), depth),
                     0 if x.dtype == np.int16 else int(self.rng.integers(-128, 128)))
        self.op("FULLY_CONNECTED", [x.index, w, b], [y],
                version=7 if x.dtype == np.int16 else 4,
                fused_activation_function=self.pick(ACTS), weights_format="DEFAULT",
                keep_num_dims=False, **self._bias_type_attr(x, b))
        return y

    # -- elementwise -----------------------------------------------------------------------
    def _other(self, x, same_q=False):
        """The second operand: a new graph input of x's shape or a broadcast row; or a
        constant."""
        shape = x.shape if self.rng.random() < 0.6 else (1,) * (len(x.shape) - 1) + x.shape[-1:]
        scale, zp = (x.scale, x.zp) if same_q else self.qparams(x.dtype)
        if self.rng.random() < 0.7:
            return self.new_input(shape, x.dtype, scale, zp), shape
        info = np.iinfo(x.dtype)
        data = self.rng.integers(info.min, info.max + 1, shape).astype(x.dtype)
        i = self.b.const(self.name("k"), data, scale, zp)
        return T(i, shape, x.dtype, scale, zp), shape

    def _binary(self, op_type, x, version, **attrs):
        o, _ = self._other(x)
        if x.dtype == np.int16 and op_type == "MUL":
            s, zp = x.scale * o.scale * float(2 ** self.rng.uniform(13, 16)), 0
        else:
            s, zp = self.qparams(x.dtype)
        y = self.out(np.broadcast_shapes(x.shape, o.shape), x.dtype, s, zp)
        self.op(op_type, [x.index, o.index], [y], version=version,
                fused_activation_function=self.pick(ACTS), **attrs)
        return y

    def ADD(self, x):
        return self._binary("ADD", x, 3 if x.dtype == np.int16 else 2)

    def SUB(self, x):
        return self._binary("SUB", x, 3 if x.dtype == np.int16 else 2)

    def MUL(self, x):
        return self._binary("MUL", x, 4 if x.dtype == np.int16 else 2)

    def _maxmin(self, op_type, x):
        o, _ = self._other(x, same_q=True)
        y = self.same_q(x, np.broadcast_shapes(x.shape, o.shape))
        self.op(op_type, [x.index, o.index], [y], version=2)
        return y

    def MAXIMUM(self, x):
        return self._maxmin("MAXIMUM", x)

    def MINIMUM(self, x):
        return self._maxmin("MINIMUM", x)

    def CONCATENATION(self, x):
        axis = len(x.shape) - 1
        o = self.new_input(x.shape[:-1] + (int(self.rng.integers(1, 4)),), x.dtype, x.scale,
                           x.zp)
        y = self.same_q(x, x.shape[:-1] + (x.shape[-1] + o.shape[-1],))
        self.op("CONCATENATION", [x.index, o.index], [y], axis=axis,
                fused_activation_function="NONE")
        return y

    # -- pooling and reductions ------------------------------------------------------------
    def _pool(self, op_type, x):
        if len(x.shape) != 4:
            return None
        fh, fw = int(self.rng.integers(1, 4)), int(self.rng.integers(1, 4))
        pad = self.pick(["SAME", "VALID"])
        sh, sw = int(self.rng.integers(1, 3)), int(self.rng.integers(1, 3))
        h, w = x.shape[1], x.shape[2]
        oh, ow = ((-(-h // sh), -(-w // sw)) if pad == "SAME"
                  else ((h - fh) // sh + 1, (w - fw) // sw + 1))
        if oh < 1 or ow < 1:
            return None
        y = self.same_q(x, (x.shape[0], oh, ow, x.shape[3]))
        self.op(op_type, [x.index], [y], padding=pad, stride_w=sw, stride_h=sh, filter_width=fw,
                filter_height=fh, fused_activation_function=self.pick(ACTS))
        return y

    def AVERAGE_POOL_2D(self, x):
        return self._pool("AVERAGE_POOL_2D", x)

    def MAX_POOL_2D(self, x):
        return self._pool("MAX_POOL_2D", x)

    def MEAN(self, x):
        if len(x.shape) != 4:
            return None
        keep = bool(self.rng.random() < 0.5)
        shape = (x.shape[0], 1, 1, x.shape[3]) if keep else (x.shape[0], x.shape[3])
        s, zp = self.qparams(x.dtype)
        y = self.out(shape, x.dtype, s, zp)
        self.op("MEAN", [x.index, self.i32([1, 2])], [y], keep_dims=keep)
        return y

    # -- activations -----------------------------------------------------------------------
    def _unary(self, op_type, x, out_q=None, **attrs):
        s, zp = out_q if out_q is not None else self.qparams(x.dtype)
        y = self.out(x.shape, x.dtype, s, zp)
        self.op(op_type, [x.index], [y], **attrs)
        return y

    def RELU(self, x):
        return self._unary("RELU", x)

    def RELU6(self, x):
        return self._unary("RELU6", x)

    def RELU_N1_TO_1(self, x):
        if x.dtype != np.int8:  # TFLite's kernel takes float32, uint8 and int8 only
            return None
        return self._unary("RELU_N1_TO_1", x)

    def RELU_0_TO_1(self, x):
        if x.dtype != np.int8:  # likewise
            return None
        return self._unary("RELU_0_TO_1", x)

    def LEAKY_RELU(self, x):
        return self._unary("LEAKY_RELU", x, alpha=float(np.float32(self.rng.uniform(-1, 1))))

    def HARD_SWISH(self, x):
        if x.dtype != np.int8:  # TFLite has no int16 HARD_SWISH kernel
            return None
        return self._unary("HARD_SWISH", x)

    def LOGISTIC(self, x):
        q = (1 / 256, -128) if x.dtype == np.int8 else (1 / 32768, 0)
        return self._unary("LOGISTIC", x, q)

    def TANH(self, x):
        q = (1 / 128, 0) if x.dtype == np.int8 else (1 / 32768, 0)
        return self._unary("TANH", x, q)

    def SOFTMAX(self, x):
        q = (1 / 256, -128) if x.dtype == np.int8 else (1 / 32768, 0)
        return self._unary("SOFTMAX", x, q, beta=float(self.pick([1.0, 0.5, 2.0])))

    def QUANTIZE(self, x):
        return self._unary("QUANTIZE", x)

    # -- shape ops -------------------------------------------------------------------------
    def PAD(self, x):
        pads = self.rng.integers(0, 3, (len(x.shape), 2)).astype(np.int32)
        y = self.same_q(x, tuple(d + a + b for d, (a, b) in zip(x.shape, pads)))
        self.op("PAD", [x.index, self.b.const(self.name("p"), pads)], [y])
        return y

    def PADV2(self, x):
        pads = self.rng.integers(0, 3, (len(x.shape), 2)).astype(np.int32)
        info = np.iinfo(x.dtype)
        v = self.b.const(self.name("v"), np.array([self.rng.integers(info.min, info.max + 1)],
                                                  x.dtype), x.scale, x.zp)
        y = self.same_q(x, tuple(d + a + b for d, (a, b) in zip(x.shape, pads)))
        self.op("PADV2", [x.index, self.b.const(self.name("p"), pads), v], [y])
        return y

    def RESHAPE(self, x):
        n = int(np.prod(x.shape))
        shape = self.pick([(1, n), (n,), (1, 1, 1, n)] + ([x.shape[:1] + (n // x.shape[0],)]
                                                          if x.shape[0] else []))
        y = self.same_q(x, shape)
        self.op("RESHAPE", [x.index, self.i32(list(shape))], [y], new_shape=list(shape))
        return y

    def SQUEEZE(self, x):
        dims = [k for k, d in enumerate(x.shape) if d == 1]
        if not dims or len(dims) == len(x.shape):
            return None
        dims = dims[:int(self.rng.integers(1, len(dims) + 1))]
        y = self.same_q(x, tuple(d for k, d in enumerate(x.shape) if k not in dims))
        self.op("SQUEEZE", [x.index], [y], squeeze_dims=dims)
        return y

    def TRANSPOSE(self, x):
        perm = [int(p) for p in self.rng.permutation(len(x.shape))]
        y = self.same_q(x, tuple(x.shape[p] for p in perm))
        self.op("TRANSPOSE", [x.index, self.i32(perm)], [y])
        return y

    def STRIDED_SLICE(self, x):
        begin, end, strides, out = [], [], [], []
        for d in x.shape:
            b0 = int(self.rng.integers(0, d))
            e0 = int(self.rng.integers(b0 + 1, d + 1))
            s0 = int(self.rng.integers(1, 3))
            begin.append(b0), end.append(e0), strides.append(s0)
            out.append(-(-(e0 - b0) // s0))
        y = self.same_q(x, tuple(out))
        self.op("STRIDED_SLICE", [x.index, self.i32(begin), self.i32(end), self.i32(strides)],
                [y], begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0,
                shrink_axis_mask=0)
        return y

    def _resize(self, op_type, x):
        if len(x.shape) != 4:
            return None
        oh, ow = int(self.rng.integers(1, 9)), int(self.rng.integers(1, 9))
        align, half = self.pick([(False, False), (True, False), (False, True)])
        y = self.same_q(x, (x.shape[0], oh, ow, x.shape[3]))
        self.op(op_type, [x.index, self.i32([oh, ow])], [y], align_corners=align,
                half_pixel_centers=half)
        return y

    def RESIZE_BILINEAR(self, x):
        return self._resize("RESIZE_BILINEAR", x)

    def RESIZE_NEAREST_NEIGHBOR(self, x):
        return self._resize("RESIZE_NEAREST_NEIGHBOR", x)

    def DEQUANTIZE(self, x):  # last op only: its output is float32
        i = self.b.activation(self.name("f"), x.shape, np.float32)
        self.b.op("DEQUANTIZE", [x.index], [i])
        self.ops.append("DEQUANTIZE")
        return T(i, x.shape, np.float32, 0.0, 0)


OP_TYPES = sorted(n for n in dir(Gen) if n.isupper() and callable(getattr(Gen, n)))


def build(seed: int):
    """(model bytes, inputs, op types) of fuzz model ``seed``."""
    g = Gen(seed)
    rng = g.rng
    dtype = np.int16 if rng.random() < 0.3 else np.int8
    shape = (1, int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 7)))
    x = g.new_input(shape, dtype)
    n_ops = 1 if rng.random() < 0.5 else int(rng.integers(2, 4))
    for k in range(n_ops):
        for _ in range(20):  # an op that applies to the current tensor
            name = g.pick(OP_TYPES)
            if name == "DEQUANTIZE" and k < n_ops - 1:
                continue
            y = getattr(g, name)(x)
            if y is not None:
                x = y
                break
    g.b.output(x.index)
    info = {t.index: t for t in g.inputs}
    xs = []
    for i in g.b.inputs:
        t = info[i]
        lim = np.iinfo(t.dtype)
        xs.append(rng.integers(lim.min, lim.max + 1, t.shape).astype(t.dtype))
    return g.b.tflite(), xs, g.ops


def ref_run(model: bytes, xs):
    it = litert.Interpreter(model_content=model,
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), xs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def verdict(seed: int) -> tuple[str, str]:
    """("pass" | "ref_refuses" | "both_refuse" | "fail", detail) for fuzz model ``seed``."""
    import hwsim
    model, xs, ops = build(seed)
    what = f"seed {seed} ({' -> '.join(ops)})"
    try:
        ref = ref_run(model, xs)
    except Exception as e:  # TFLite refuses: the model is not a case
        try:
            hwsim_run(model, xs)
        except hwsim.HwsimError:
            return "both_refuse", what
        return "ref_refuses", f"{what}: TFLite: {str(e).splitlines()[0][:120]}"
    try:
        got = hwsim_run(model, xs).outputs
    except hwsim.HwsimError as e:
        return "fail", f"{what}: hwsim refuses a model TFLite computes: {e}"
    for k, (g, r) in enumerate(zip(got, ref)):
        if g.dtype != r.dtype or g.shape != r.shape:
            return "fail", f"{what}: output {k} {g.dtype}{g.shape} vs REF {r.dtype}{r.shape}"
        if not np.array_equal(g, r):
            bad = np.argwhere(g != r)
            i = tuple(int(v) for v in bad[0])
            return "fail", (f"{what}: output {k}: {len(bad)} of {r.size} differ; first at {i}: "
                            f"hwsim {g[i]} vs REF {r[i]}")
    return "pass", what


def test_generator_covers_every_op_hwsim_supports():
    from hwsim import registry
    import hwsim.lower  # noqa: F401 (registers the lowerings)
    from hwsim.frontends.tflite_schema import builtin_operator_names
    tflite_ops = set(registry.LOWERINGS) & set(builtin_operator_names().values())
    missing = tflite_ops - set(OP_TYPES)
    assert not missing, f"ops the fuzzer never generates: {sorted(missing)}"


def test_generator_is_deterministic():
    a, b = build(7), build(7)
    assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))


def test_differential_fuzz_against_tflite_ref():
    counts = {"pass": 0, "ref_refuses": 0, "both_refuse": 0, "fail": 0}
    fails, ref_refused = [], []
    for seed in [*REGRESSION_SEEDS, *range(FIRST_SEED, FIRST_SEED + N_MODELS)]:
        status, detail = verdict(seed)
        counts[status] += 1
        if status == "fail":
            fails.append(detail)
        elif status == "ref_refuses":
            ref_refused.append(detail)
    summary = (f"{N_MODELS} models (seeds {FIRST_SEED}..{FIRST_SEED + N_MODELS - 1}): "
               f"{counts['pass']} equal, {counts['fail']} failed, {counts['both_refuse']} "
               f"refused by both, {counts['ref_refuses']} refused by TFLite only")
    print(summary)
    for d in ref_refused[:10]:
        print("  TFLite refuses, hwsim computes:", d)
    assert not fails, summary + "\n" + "\n".join(fails[:20])
    # most generated models must be valid, or the fuzzer tests little
    assert counts["pass"] >= 0.8 * N_MODELS, summary
