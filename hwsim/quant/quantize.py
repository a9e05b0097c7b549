"""Post-training quantization: float graph IR -> full-integer graph IR (TFLite int8 conventions).

    from hwsim.frontends.onnx_reader import read_onnx
    from hwsim.quant.quantize import quantize

    g = read_onnx("model.onnx")
    q = quantize(g, calib_batches, method="kl")     # QuantResult
    q.write_tflite("model_int8.tflite")   # hwsim.load(...) and TFLite compute the same ints
    q.write_weights_h5("weights.h5"); q.write_table("calib.table", "ncnn")

Pipeline (see ``docs/quantization.md``):

1. **Analysis**: activation tensors that TFLite's int8 kernels require to share one scale and
   zero point are tied into groups (the input and output of MAX/AVERAGE_POOL_2D, RESHAPE,
   SQUEEZE, TRANSPOSE, PAD, PADV2, STRIDED_SLICE, RESIZE_*; all inputs and the output of
   CONCATENATION). SOFTMAX and LOGISTIC outputs get TFLite's fixed ``1/256, -128`` (TANH
   ``1/128, 0``; int16: ``1/32768, 0``); a CONCATENATION input tied to such a fixed tensor is
   requantized by an inserted ``QUANTIZE`` op instead.
2. **Calibration**: the float executor (:mod:`hwsim.quant.float_exec`, one sample at a time)
   runs over the calibration batches twice, as :mod:`hwsim.quant.calibrate` requires: pass 1
   collects each group's exact min/max, pass 2 its histograms (``|x|`` over ``[0, amax]`` and,
   for ``auto``, signed over ``[-amax, amax]``). Results do not depend on the batch size or on
   the order of the samples.
3. **Ranges**: ``minmax`` -> ``[min, max]``; ``percentile``/``kl``/``mse`` -> a threshold ``T`` on
   ``|x|``, range ``[max(min, -T), min(max, T)]``; ``auto``: per group the method whose range
   gives the best SQNR of the quantized values against the float values, estimated on the
   signed histogram (16 points per bin, the exact quantizer incl. zero-point rounding and
   clamping); every method's SQNR is kept for the report. Graph inputs use ``input_method``
   (``minmax`` by default). A fused activation clips the range to its bounds.
4. **Parameters**: int8 activations asymmetric (TFLite: ``asymmetric_params``, zero point
   nudged so that 0.0 is exact), or symmetric (``zp = 0``: ``symmetric_activations``, 16-bit
   activations), optionally power-of-two scales. Weights symmetric int8 (narrow range
   ``[-127, 127]``), per output channel (axis 0 of OHWI / ``[out, in]``, axis 3 of depthwise
   ``[1, KH, KW, C]``) or per tensor, threshold ``maxabs``/``percentile``/``mse``, ``pot``
   = power-of-two maxabs scales (yolo2_light style). Biases ``round(b / (s_in * s_w))``
   (round half away from zero) as int32 (int64 for 16-bit activations), bias scale
   ``s_in * s_w``.
5. **Hardware** (:class:`hwsim.hw.config.AccelConfig`): ``requant.scheme: shift_only`` ->
   power-of-two scales everywhere (weights and activations), ``requant.per_channel: false``
   -> per-tensor weights, ``requant.zero_point: false`` -> symmetric activations,
   ``data.weight_bits`` 4..8 -> narrow weights (``[-(2^(b-1)-1), 2^(b-1)-1]`` in int8),
   ``data.input_bits``/``output_bits`` 16 -> int16 activations (TFLite 16x8), 4..7 / 9..15 ->
   b-bit activations (below), ``accumulator.bits``/``overflow`` -> weight scales raised until every
   MAC layer's accumulators provably fit (:mod:`hwsim.quant.accum`).
6. **b-bit activations** (``activation_bits`` b = 4..7 stored in int8, or 9..15 stored in int16
   as TFLite 16x8 with zero points 0, int64 biases): each range is
   quantized onto ``2^b`` levels, and the graph keeps every activation in
   ``[-2^(b-1), 2^(b-1) - 1]`` with explicit clamps: after each op that requantizes (MAC ops,
   ADD, SUB, MUL, MEAN, QUANTIZE, the RELU family, LEAKY_RELU, HARD_SWISH) the op writes
   ``<name>/unclamped`` and ``MAXIMUM`` / ``MINIMUM`` against constant scalars ``<name>/qmin`` /
   ``<name>/qmax`` (the tensor's scale and zero point) produce ``<name>`` (a bound its fused
   activation already guarantees is left out); a graph input is clamped into
   ``<name>/clamped``. Ops that only move or select values (pooling, RESHAPE, PAD, ...,
   CONCATENATION of tied inputs) need no clamp. LOGISTIC / TANH / SOFTMAX keep TFLite's fixed
   output quantization on ``<name>/fixed``, requantized by a ``QUANTIZE`` to ``<name>``
   with the same convention on ``2^b`` levels (int8: ``2^-b, -2^(b-1)``, TANH
   ``2^-(b-1), 0``; int16: ``2^-(b-1), 0``).
   ``first_last_activation_bits`` (int8 storage only; default 8 when ``first_last_weight_bits``
   is set) keeps the
   first MAC layer's input and the last MAC layer's output at more bits, as yolo2_light keeps
   its first and last layers (see :mod:`hwsim.quant.act_bits`).

The result is a :class:`QuantResult`; its ``graph`` is a Graph whose every activation is int8
(int16), ready for :func:`hwsim.frontends.tflite_writer.serialize_tflite`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import numpy as np

from ..ir import Graph, HwsimError, InputError, Op, QuantParams, Tensor
from ..vocab import MAC_OPS, QRANGE
from . import act_bits
from . import calibrate as C
from .float_exec import FloatExecutor, to_graph_layout

__all__ = ["quantize", "QuantOptions", "QuantResult", "ActInfo", "METHODS", "WEIGHT_METHODS",
           "options_from_config", "QuantizationError", "quantize_input", "dequantize"]

METHODS = ("minmax", "percentile", "kl", "mse", "auto")
CANDIDATES = ("minmax", "percentile", "kl", "mse")
WEIGHT_METHODS = ("maxabs", "percentile", "mse", "pot")

TIE_OPS = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE", "TRANSPOSE", "PAD", "PADV2",
           "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")
INT8_OPS = MAC_OPS + TIE_OPS + ("CONCATENATION", "MEAN", "ADD", "SUB", "MUL", "RELU", "RELU6",
                                "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "LOGISTIC", "TANH",
                                "HARD_SWISH", "SOFTMAX")
# ops TFLite (and hwsim's engine) have no int16 kernel for: refused with 9..16-bit activations
INT16_UNSUPPORTED = ("HARD_SWISH", "RELU_N1_TO_1", "RELU_0_TO_1")
_ACT_BOUNDS = {"RELU": (0.0, math.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0),
               "RELU_0_TO_1": (0.0, 1.0)}


class QuantizationError(HwsimError):
    """The model cannot be quantized as asked (unsupported op, bad option, no data)."""


@dataclass
class QuantOptions:
    """Quantization choices (see the module docstring)."""
    method: str = "kl"                  # activations: minmax | percentile | kl | mse | auto
    weights: str = "maxabs"             # maxabs | percentile | mse | pot
    per_channel: bool = True            # conv / depthwise weights per output channel
    fc_per_channel: bool = True         # FULLY_CONNECTED weights per output channel
    percentile: float = 99.99
    bins: int = C.DEFAULT_BINS
    input_method: str = "minmax"        # graph inputs
    weight_bits: int = 8                # 4..8 (int8 storage, narrow range)
    activation_bits: int = 8            # 4..8 (int8 storage) or 9..16 (int16, TFLite 16x8)
    power_of_two: bool = False          # power-of-two activation and weight scales
    symmetric_activations: bool = False  # zero points 0
    first_last_weight_bits: int | None = None  # weight bits of the first and last MAC layers
    # activation bits of the first MAC layer's input and the last one's output (never fewer
    # than activation_bits); None: 8 if first_last_weight_bits is set, else activation_bits
    first_last_activation_bits: int | None = None
    kl_variant: str = "tensorrt"
    accumulator_bits: int | None = None  # hardware accumulator: weight scales raised to fit
    accumulator_overflow: str = "wrap"   # wrap | saturate (hwsim.quant.accum)

    def check(self) -> "QuantOptions":
        if self.method not in METHODS:
            raise QuantizationError(f"unknown calibration method {self.method!r}; choose "
                                    f"{', '.join(METHODS)}")
        if self.input_method not in METHODS:
            raise QuantizationError(f"unknown input method {self.input_method!r}")
        if self.weights not in WEIGHT_METHODS:
            raise QuantizationError(f"unknown weight method {self.weights!r}; choose "
                                    f"{', '.join(WEIGHT_METHODS)}")
        for name in ("weight_bits", "first_last_weight_bits"):
            v = getattr(self, name)
            if v is not None and not 4 <= int(v) <= 8:
                raise QuantizationError(f"{name}={v}: the TFLite int8 target stores weights in "
                                        f"int8, so 4..8 bits are possible")
        ab = int(self.activation_bits)
        if not 4 <= ab <= 16:
            raise QuantizationError(f"activation_bits={ab}: the TFLite target has int8 "
                                    f"activations (4..8 bits used) or int16 (TFLite 16x8, "
                                    f"9..16 bits used)")
        if not 0 < float(self.percentile) <= 100:
            raise QuantizationError(f"percentile {self.percentile} is not in (0, 100]")
        fl = self.first_last_activation_bits
        if fl is not None and not 4 <= int(fl) <= 8:
            raise QuantizationError(f"first_last_activation_bits={fl}: 4..8 bits (int8 "
                                    f"activations)")
        if self.accumulator_bits is not None and not 8 <= int(self.accumulator_bits) <= 64:
            raise QuantizationError(f"accumulator_bits={self.accumulator_bits}: 8..64 "
                                    f"(accumulator.bits) or None")
        if self.accumulator_overflow not in ("wrap", "saturate"):
            raise QuantizationError(f"accumulator_overflow={self.accumulator_overflow!r}: "
                                    f"wrap or saturate")
        return self


def options_from_config(cfg, **overrides) -> QuantOptions:
    """QuantOptions for an :class:`hwsim.hw.config.AccelConfig` (or a YAML path / preset)."""
    from ..hw.config import load_config
    cfg = load_config(cfg)
    wb = int(cfg.data.weight_bits)
    if wb > 8:
        raise QuantizationError(f"{cfg.source or cfg.name}: data.weight_bits={wb}; the TFLite "
                                f"int8 target stores weights in int8 (4..8 bits)")
    ab = max(int(cfg.data.input_bits), int(cfg.data.output_bits))
    if not 4 <= ab <= 16:
        raise QuantizationError(f"{cfg.source or cfg.name}: {ab}-bit activations cannot be "
                                f"expressed in TFLite (int8: 4..8 bits, int16: 9..16)")
    kw: dict[str, Any] = dict(
        weight_bits=wb, activation_bits=ab,
        power_of_two=cfg.requant.scheme == "shift_only",
        per_channel=bool(cfg.requant.per_channel),
        fc_per_channel=bool(cfg.requant.per_channel),
        symmetric_activations=not bool(cfg.requant.zero_point) or ab > 8,
        accumulator_bits=int(cfg.accumulator.bits),
        accumulator_overflow=cfg.accumulator.overflow)
    if kw["power_of_two"]:
        kw["weights"] = "pot"
    kw.update(overrides)
    return QuantOptions(**kw).check()


@dataclass
class ActInfo:
    """The quantization of one activation tensor (one row of the report)."""
    name: str
    index: int
    group: int
    method: str
    lo: float                 # chosen float range
    hi: float
    scale: float
    zero_point: int
    dtype: str
    min: float = 0.0          # observed data range (of the group)
    max: float = 0.0
    fixed: bool = False       # fixed by the op (SOFTMAX, LOGISTIC, TANH)
    sqnr: dict = field(default_factory=dict)  # method -> estimated SQNR (dB)
    bits: int = 8             # values lie in [-2^(bits-1), 2^(bits-1) - 1] (9..16: int16)

    @property
    def threshold(self) -> float:
        return max(-self.lo, self.hi)


@dataclass
class WeightInfo:
    op_index: int
    name: str
    op: str
    axis: int
    bits: int
    scales: np.ndarray
    threshold: np.ndarray     # per channel (or one) clipping threshold
    bias_overflow: int = 0
    acc_adjustment: Any = None  # hwsim.quant.accum.AccAdjustment: scales raised to fit


# ------------------------------------------------------------------------------ union-find
class _DSU:
    def __init__(self):
        self.p: dict[int, int] = {}

    def find(self, a: int) -> int:
        self.p.setdefault(a, a)
        while self.p[a] != a:
            self.p[a] = self.p[self.p[a]]
            a = self.p[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if rb < ra:
                ra, rb = rb, ra
            self.p[rb] = ra


# ------------------------------------------------------------------------------ helpers
def _qrange(dtype: np.dtype, bits: int) -> tuple[int, int]:
    """The signed ``bits``-bit range, at most the storage type's (int8 / int16)."""
    return C.qrange(min(int(bits), act_bits.storage_bits(dtype)), signed=True)


def _pot_ceil(x: float) -> float:
    """Smallest power of two >= x (x > 0)."""
    m, e = math.frexp(x)
    return math.ldexp(1.0, e - 1 if m == 0.5 else e)


def _first_last_activation_bits(o: QuantOptions) -> int | None:
    """Bits of the first MAC layer's input and the last MAC layer's output groups (None: the
    same as the others)."""
    if int(o.activation_bits) > 8:    # int16 storage
        return None
    fl = o.first_last_activation_bits
    if fl is None:
        fl = 8 if o.first_last_weight_bits is not None else None
    return None if fl is None else max(int(fl), int(o.activation_bits))


def _params_for_range(lo: float, hi: float, opts: QuantOptions, dtype,
                      bits: int | None = None) -> tuple[float, int]:
    """(scale, zero point) for the float range [lo, hi] on ``bits`` (default
    ``activation_bits``) levels."""
    bits = min(int(bits or opts.activation_bits), act_bits.storage_bits(dtype))
    qmin, qmax = _qrange(dtype, bits)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    symmetric = opts.symmetric_activations or np.dtype(dtype) == np.dtype(np.int16)
    if symmetric:
        t = max(-lo, hi)
        if t == 0:
            return 1.0, 0
        scale = t / qmax
        if opts.power_of_two:
            scale = _pot_ceil(scale)
        return float(np.float32(scale)), 0
    if hi == lo:
        return 1.0, max(0, qmin)
    if opts.power_of_two:
        scale = _pot_ceil((hi - lo) / (qmax - qmin))
        zp = int(C.round_half_away(min(max(qmin - lo / scale, qmin), qmax)))
        return scale, zp
    scale, zp = C.asymmetric_params(lo, hi, bits, signed=True)
    return float(np.float32(scale)), int(zp)


def _fake_quant(u: np.ndarray, scale: float, zp: int, qmin: int, qmax: int) -> np.ndarray:
    s = float(np.float32(scale))
    q = np.clip(C.round_half_away(u / s) + zp, qmin, qmax)
    return (q - zp) * s


def _sqnr_estimate(hist: C.HistogramObserver, scale: float, zp: int, qmin: int, qmax: int,
                   points: int = 16) -> float:
    """SQNR (dB) of quantizing the histogrammed values with (scale, zp), values assumed spread
    evenly over ``points`` positions per bin; exact zeros carry no error and no signal."""
    edges = hist.edges.astype(np.float64)
    a, b = edges[:-1], edges[1:]
    u = a[:, None] + (b - a)[:, None] * ((np.arange(points) + 0.5) / points)[None, :]
    err = ((u - _fake_quant(u, scale, zp, qmin, qmax)) ** 2).mean(axis=1)
    sig = (u ** 2).mean(axis=1)
    counts = hist.counts.astype(np.float64)
    if hist.zeros:
        zb = min(int(np.searchsorted(hist.edges, np.float32(0), side="right")) - 1,
                 hist.bins - 1)
        counts[max(zb, 0)] -= hist.zeros
    s, n = float(np.dot(counts, sig)), float(np.dot(counts, err))
    if n <= 0:
        return math.inf
    if s <= 0:
        return -math.inf
    return 10.0 * math.log10(s / n)


def _batches(calib, batch_size: int) -> Callable[[], Iterable]:
    """A factory of fresh iterables of batches (each an array or a list of arrays)."""
    if callable(calib):
        return calib
    if isinstance(calib, np.ndarray):
        if calib.ndim == 0:
            raise InputError("calibration data is a scalar")
        n = calib.shape[0]

        def gen():
            for i in range(0, n, batch_size):
                yield calib[i:i + batch_size]
        return gen
    if isinstance(calib, (list, tuple)):
        return lambda: iter(calib)
    raise InputError("calibration data must be an array (N, ...), a list of batches or a "
                     "function returning an iterable of batches")


# ------------------------------------------------------------------------------ result
@dataclass
class QuantResult:
    graph: Graph                      # the integer graph
    float_graph: Graph
    options: QuantOptions
    activations: dict[int, ActInfo]   # by tensor index in ``graph``
    weights: dict[int, WeightInfo]    # by op index in ``graph``
    samples: int = 0
    warnings: list[str] = field(default_factory=list)
    config: Any = None

    @property
    def acc_adjustments(self) -> list:
        """The MAC layers whose weight scales were raised so that their accumulators fit
        ``options.accumulator_bits`` (:class:`hwsim.quant.accum.AccAdjustment`), graph order."""
        return [w.acc_adjustment for _, w in sorted(self.weights.items())
                if w.acc_adjustment is not None]

    # -- output ----------------------------------------------------------------------------
    def tflite_bytes(self) -> bytes:
        from ..frontends.tflite_writer import serialize_tflite
        desc = "hwsim quantize"
        if self.config is not None:  # the config's arithmetic is this model's semantics
            from ..hw.config import load_config, quantized_for_description
            desc = quantized_for_description(load_config(self.config))
        return serialize_tflite(self.graph, description=desc)

    def write_tflite(self, path) -> None:
        from ..util import atomic_write_bytes
        atomic_write_bytes(path, self.tflite_bytes())

    def write_weights_h5(self, path) -> None:
        from .weights_h5 import write_weights_h5
        write_weights_h5(self, path)

    def table(self) -> dict[str, dict]:
        """Per activation tensor: threshold, range, scale, zero point (for tables)."""
        out = {}
        for a in self.activations.values():
            out[a.name] = {"threshold": a.threshold, "lo": a.lo, "hi": a.hi, "scale": a.scale,
                           "zero_point": a.zero_point}
        return out

    def write_table(self, path, fmt: str = "ncnn") -> None:
        """Calibration table: ``ncnn`` (.table), ``tensorrt`` (calibration cache) or ``nvdla``
        (JSON). Activation entries hold the chosen range's threshold ``T = max(-lo, hi)``."""
        from . import tables
        acts = list(self.activations.values())
        if fmt == "ncnn":
            t: dict[str, Any] = {}
            for w in self.weights.values():
                op = self.graph.ops[w.op_index]
                a_in = self.activations.get(op.inputs[0])
                thr = np.where(w.threshold > 0, w.threshold, 1.0)
                t[f"{w.name}_param_0"] = [tables.ncnn_scale(float(v)) for v in np.atleast_1d(thr)]
                if a_in is not None:
                    t[w.name] = tables.ncnn_scale(a_in.threshold if a_in.threshold > 0 else 1.0)
            tables.write_ncnn_table(path, t)
        elif fmt == "tensorrt":
            hdr = "TRT-8601-EntropyCalibration2" if self.options.method == "kl" else \
                "TRT-8601-MinMaxCalibration"
            tables.write_tensorrt_cache(path, {a.name: tables.tensorrt_scale(a.threshold)
                                               for a in acts}, header=hdr)
        elif fmt == "nvdla":
            tables.write_nvdla_json(path, {a.name: {"scale": tables.tensorrt_scale(a.threshold),
                                                    "min": a.lo, "max": a.hi, "offset": 0}
                                           for a in acts})
        else:
            raise QuantizationError(f"unknown table format {fmt!r}; choose ncnn, tensorrt, "
                                    f"nvdla")

    # -- data ------------------------------------------------------------------------------
    def quantize_input(self, x, k: int = 0) -> np.ndarray:
        """Float input batch (graph or source layout) -> integers for graph input ``k``
        (saturated to the input's bits: ``[-8, 7]`` for 4-bit activations)."""
        x = to_graph_layout(self.float_graph, np.asarray(x, np.float32), k)
        a = self.activations.get(self.graph.inputs[k])
        return quantize_input(self.graph, x, k, bits=a.bits if a is not None else None)

    def summary_rows(self) -> list[dict]:
        rows = []
        for a in sorted(self.activations.values(), key=lambda r: r.index):
            rows.append({"tensor": a.name, "method": a.method, "lo": a.lo, "hi": a.hi,
                         "scale": a.scale, "zero_point": a.zero_point,
                         **{f"sqnr_{m}": a.sqnr.get(m) for m in CANDIDATES}})
        return rows


def quantize_input(graph: Graph, x: np.ndarray, k: int = 0, bits: int | None = None
                   ) -> np.ndarray:
    """TFLite's QUANTIZE: ``clamp(round_half_away(x / scale) + zp)`` in float32 division,
    clamped to the dtype's range, or to ``bits`` signed bits when given (b-bit activations)."""
    t = graph.tensors[graph.inputs[k]]
    from ..arith import round_half_away_f32
    s = np.float32(t.quant.scales[0])
    q = round_half_away_f32(np.asarray(x, np.float32) / s).astype(np.int64) + \
        int(t.quant.zero_points[0])
    lo, hi = QRANGE[np.dtype(t.dtype)]
    if bits is not None and np.dtype(t.dtype) == np.dtype(np.int8):
        lo, hi = C.qrange(int(bits), signed=True)
    return np.clip(q, lo, hi).astype(t.dtype)


def dequantize(t: Tensor, q: np.ndarray) -> np.ndarray:
    """``scale * (q - zero_point)`` (per tensor or per channel along ``quant.axis``)."""
    if t.quant is None:
        return np.asarray(q, np.float32)
    s = t.quant.scales.astype(np.float64)
    z = t.quant.zero_points.astype(np.float64)
    q = np.asarray(q, np.float64)
    if len(s) > 1:
        shape = [1] * q.ndim
        shape[t.quant.axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    return ((q - z) * s).astype(np.float32)


# ------------------------------------------------------------------------------ driver
class _Quantizer:
    def __init__(self, graph: Graph, opts: QuantOptions, progress):
        self.g = graph
        self.o = opts
        self.progress = progress
        self.warnings: list[str] = []
        bad = sorted({op.type for op in graph.ops} - set(INT8_OPS))
        if bad:
            extra = ""
            if "LOCAL_RESPONSE_NORMALIZATION" in bad:
                extra = " (TFLite's LOCAL_RESPONSE_NORMALIZATION has float kernels only)"
            raise QuantizationError(f"{graph.source or 'model'}: cannot quantize op(s) "
                                    f"{', '.join(bad)} to integers{extra}; the float graph runs "
                                    f"in hwsim.quant.float_exec only")
        for t in graph.tensors:
            if t.quant is not None:
                raise QuantizationError(f"{graph.source or 'model'}: tensor '{t.name}' is already "
                                        f"quantized; quantize expects a float graph")
        ab = int(opts.activation_bits)
        self.act_dtype = np.dtype(np.int16) if ab > 8 else np.dtype(np.int8)
        no16 = sorted({op.type for op in graph.ops} & set(INT16_UNSUPPORTED))
        if self.act_dtype == np.dtype(np.int16) and no16:
            raise QuantizationError(f"{graph.source or 'model'}: {ab}-bit activations are int16 "
                                    f"(TFLite 16x8), and TFLite has no int16 kernel for "
                                    f"{', '.join(no16)}")
        # b-bit (4..7 in int8, 9..15 in int16): requantize the fixed outputs
        self.b_bit = ab < act_bits.storage_bits(self.act_dtype)
        if self.b_bit:
            self.g = act_bits.split_fixed_outputs(graph)
        self._analyse()

    # -- 1. analysis -----------------------------------------------------------------------
    def _analyse(self):
        g = self.g
        self.acts = [t.index for t in g.tensors if t.data is None]
        self.act_set = set(self.acts)
        hard = _DSU()
        for t in self.acts:
            hard.find(t)
        self.no_observe: set[int] = set()
        for op in g.ops:
            if op.type in TIE_OPS:
                hard.union(op.inputs[0], op.outputs[0])
            if op.type == "PADV2":
                v = g.tensors[op.inputs[2]].data if len(op.inputs) > 2 else None
                if v is not None and not np.isfinite(np.asarray(v, np.float64)).all():
                    self.no_observe.add(op.outputs[0])   # -inf padding (max pool)
        # fixed output parameters
        i16 = self.act_dtype == np.dtype(np.int16)
        fixed_for = {"SOFTMAX": (1 / 32768 if i16 else 1 / 256, 0 if i16 else -128),
                     "LOGISTIC": (1 / 32768 if i16 else 1 / 256, 0 if i16 else -128),
                     "TANH": (1 / 32768 if i16 else 1 / 128, 0)}
        hard_fixed: dict[int, tuple] = {}
        fixed_bits: dict[int, int] = {}   # hard group -> bits, when not TFLite's 8
        producer = {t: op for op in g.ops for t in op.outputs}
        for op in g.ops:
            f = fixed_for.get(op.type)
            src = producer.get(op.inputs[0]) if op.inputs else None
            if op.type == "QUANTIZE" and src is not None and \
                    src.type in act_bits.FIXED_OUTPUT_OPS and self.b_bit:
                # b-bit: the copy of a fixed output (act_bits.split_fixed_outputs) gets the
                # same convention on 2^b levels
                f = act_bits.fixed_params(src.type, int(self.o.activation_bits), self.act_dtype)
                fixed_bits[hard.find(op.outputs[0])] = int(self.o.activation_bits)
            if f is not None:
                r = hard.find(op.outputs[0])
                if r in hard_fixed and hard_fixed[r] != f:
                    raise QuantizationError(f"{g.source}: tensor '{g.tensors[op.outputs[0]].name}'"
                                            f" would need two different fixed quantizations")
                hard_fixed[r] = f
        # concatenation ties; inputs tied to a fixed group are requantized instead
        self.requant_inputs: set[tuple[int, int]] = set()   # (op index, input position)
        full = _DSU()
        for t in self.acts:
            full.union(t, hard.find(t))
        for op in g.ops:
            if op.type != "CONCATENATION":
                continue
            out = op.outputs[0]
            for k, i in enumerate(op.inputs):
                if i not in self.act_set:
                    continue
                if hard.find(i) in hard_fixed or hard.find(out) in hard_fixed:
                    self.requant_inputs.add((op.index, k))
                else:
                    full.union(i, out)
        self.group_of = {t: full.find(t) for t in self.acts}
        self.groups: dict[int, list[int]] = {}
        for t in self.acts:
            self.groups.setdefault(self.group_of[t], []).append(t)
        self.fixed: dict[int, tuple] = {}
        self.fixed_bits: dict[int, int] = {}
        for r, f in hard_fixed.items():
            self.fixed[full.find(r)] = f
            if r in fixed_bits:
                self.fixed_bits[full.find(r)] = fixed_bits[r]
        # Activation bounds: a tensor produced under RELU / RELU6 / ... lies in its bounds;
        # tie ops pass their input's bounds on, a concatenation the union of its inputs'.
        # A group's bounds are the union of its members' (unbounded members: unbounded).
        inf = (-math.inf, math.inf)
        tb: dict[int, tuple[float, float]] = {}
        for op in g.ops:
            fa = op.attrs.get("fused_activation_function", "NONE")
            b = _ACT_BOUNDS.get(op.type) or _ACT_BOUNDS.get(fa)
            if b is None and op.type in TIE_OPS:
                b = tb.get(op.inputs[0], inf)
            elif b is None and op.type == "CONCATENATION":
                bs = [tb.get(i, inf) for i in op.inputs if i in self.act_set] or [inf]
                b = (min(x[0] for x in bs), max(x[1] for x in bs))
            tb[op.outputs[0]] = b or inf
        self.bounds: dict[int, tuple[float, float]] = {}
        for r, members in self.groups.items():
            bs = [tb.get(t, inf) for t in members if t not in self.no_observe]
            self.bounds[r] = (min(x[0] for x in bs), max(x[1] for x in bs)) if bs else inf
        self.input_groups = {self.group_of[i] for i in g.inputs}
        # TFLite's int8 SOFTMAX needs beta * input scale * 2^26 < 2^31 - 1
        self.max_scale: dict[int, float] = {}
        for op in g.ops:
            if op.type == "SOFTMAX" and self.act_dtype == np.dtype(np.int8):
                r = self.group_of[op.inputs[0]]
                lim = 16.0 / max(float(op.attrs.get("beta", 1.0)), 1e-30)
                self.max_scale[r] = min(self.max_scale.get(r, math.inf), lim)
        self.observed = {r: [t for t in ts if t not in self.no_observe]
                         for r, ts in self.groups.items() if r not in self.fixed}
        for r, ts in self.observed.items():
            if not ts:
                raise QuantizationError(f"{g.source}: tensor group of "
                                        f"'{g.tensors[self.groups[r][0]].name}' has nothing to "
                                        f"calibrate")
        self.mac_ops = [op.index for op in g.ops if op.type in MAC_OPS]
        # Activation bits per group: activation_bits (TFLite's fixed outputs: the storage
        # type's 8 / 16); the first MAC layer's input and the last one's output:
        # first_last_activation_bits.
        ab = int(self.o.activation_bits)
        full_bits = act_bits.storage_bits(self.act_dtype)
        self.bits = {r: self.fixed_bits.get(r, full_bits) if r in self.fixed else ab
                     for r in self.groups}
        fl = _first_last_activation_bits(self.o)
        if fl is not None and self.mac_ops:
            by_index = {op.index: op for op in g.ops}
            for t in (by_index[self.mac_ops[0]].inputs[0], by_index[self.mac_ops[-1]].outputs[0]):
                r = self.group_of[t]
                if r not in self.fixed:
                    self.bits[r] = max(self.bits[r], fl)

    # -- 2. calibration --------------------------------------------------------------------
    def _method_of(self, r: int) -> str:
        return self.o.input_method if r in self.input_groups else self.o.method

    def calibrate(self, calib, batch_size: int, cache_bytes: int = 256 << 20):
        """Both passes. Pass 1's per-group values are kept for pass 2 while they fit in
        ``cache_bytes`` (same values either way; the float graph then runs once)."""
        factory = _batches(calib, batch_size)
        ex = FloatExecutor(self.g, batch_invariant=True)
        want = {t for ts in self.observed.values() for t in ts}
        need_hist = any(self._method_of(r) != "minmax" for r in self.observed)
        self.mm = {r: C.MinMaxObserver() for r in self.observed}
        self.samples = 0
        passes = 2 if need_hist else 1
        cache: list | None = []
        cached = 0

        def batches():
            it = factory()
            if isinstance(it, np.ndarray):
                it = iter((it,))
            for batch in it:
                xs = list(batch) if isinstance(batch, (list, tuple)) else [batch]
                xs = [to_graph_layout(self.g, np.asarray(x), k) for k, x in enumerate(xs)]
                per_group: dict[int, list] = {r: [] for r in self.observed}
                for _, acts in ex.iter_run(xs, keep=want):
                    for r, ts in self.observed.items():
                        for t in ts:
                            per_group[r].append(acts[t].reshape(-1))
                yield xs[0].shape[0], {r: (np.concatenate(p) if len(p) > 1 else p[0])
                                       for r, p in per_group.items()}

        for p in (1, 2)[:passes]:
            if p == 2:
                self.habs = {r: C.HistogramObserver.from_minmax(self.mm[r], bins=self.o.bins)
                             for r in self.observed}
                self.hsig = {r: C.HistogramObserver.from_minmax(self.mm[r], bins=self.o.bins,
                                                                signed=True)
                             for r in self.observed if self._method_of(r) == "auto"}
            count = 0
            source = iter(cache) if (p == 2 and cache is not None) else batches()
            for n, vals in source:
                for r, v in vals.items():
                    if p == 1:
                        self.mm[r].observe(v)
                    else:
                        self.habs[r].observe(v)
                        if r in self.hsig:
                            self.hsig[r].observe(v)
                if p == 1 and passes == 2 and cache is not None:
                    cached += sum(v.nbytes for v in vals.values())
                    if cached <= cache_bytes:
                        cache.append((n, vals))
                    else:
                        cache = None
                count += n
                if self.progress is not None:
                    self.progress(p, passes, count)
            if p == 1:
                self.samples = count
                if self.samples == 0:
                    raise C.CalibrationError("no calibration data was given")
            elif count != self.samples:
                raise C.CalibrationError(f"the second pass saw {count} samples, the first "
                                         f"{self.samples}; the calibration batches must be "
                                         f"re-iterable (pass a function or a list)")

    # -- 3. ranges -------------------------------------------------------------------------
    def _range(self, r: int, method: str) -> tuple[float, float]:
        mm = self.mm[r]
        lo, hi = mm.min, mm.max
        if method == "minmax":
            return lo, hi
        h = self.habs[r]
        if method == "percentile":
            t = C.percentile_range(h, self.o.percentile)[1]
        elif method == "kl":
            t = C.kl_threshold(h)
        elif method == "mse":
            # an asymmetric int8 grid over [0, T] has twice the levels of a symmetric one
            # (int16 activations are symmetric)
            bits = min(self.bits[r] + (1 if lo >= 0 and self.act_dtype == np.dtype(np.int8)
                                       else 0), 16)
            t = C.mse_threshold(h, bits=bits)
        else:
            raise QuantizationError(f"unknown method {method!r}")
        return max(lo, -t), min(hi, t)

    def choose(self):
        self.ranges: dict[int, tuple] = {}
        self.chosen: dict[int, str] = {}
        self.sqnr: dict[int, dict] = {}
        for r in self.observed:
            qmin, qmax = _qrange(self.act_dtype, self.bits[r])
            m = self._method_of(r)
            b = self.bounds.get(r, (-math.inf, math.inf))
            if m == "auto":
                scores = {}
                cands = {}
                for cm in CANDIDATES:
                    lo, hi = self._range(r, cm)
                    lo, hi = max(lo, b[0]), min(hi, b[1])
                    s, z = _params_for_range(lo, hi, self.o, self.act_dtype, self.bits[r])
                    cands[cm] = (lo, hi)
                    scores[cm] = _sqnr_estimate(self.hsig[r], s, z, qmin, qmax)
                best = max(CANDIDATES, key=lambda cm: (scores[cm], -CANDIDATES.index(cm)))
                self.sqnr[r] = scores
                self.chosen[r] = best
                self.ranges[r] = cands[best]
            else:
                lo, hi = self._range(r, m)
                self.ranges[r] = (max(lo, b[0]), min(hi, b[1]))
                self.chosen[r] = m

    # -- 4. the integer graph --------------------------------------------------------------
    def build(self) -> QuantResult:
        g = self.g
        o = self.o
        tensors = [Tensor(t.index, t.name, tuple(t.shape), t.dtype, None,
                          None if t.data is None else t.data.copy(), t.is_variable)
                   for t in g.tensors]
        acts: dict[int, ActInfo] = {}
        gparams: dict[int, tuple] = {}
        for r, members in self.groups.items():
            if r in self.fixed:
                s, z = self.fixed[r]
                qmin, qmax = _qrange(self.act_dtype, self.bits[r])
                lo, hi = s * (qmin - z), s * (qmax - z)
                method, fixed = "fixed", True
                mn = mx = float("nan")
            else:
                lo, hi = self.ranges[r]
                s, z = _params_for_range(lo, hi, o, self.act_dtype, self.bits[r])
                if self.mm[r].min == self.mm[r].max:
                    role = "graph input " if any(t in g.inputs for t in members) else ""
                    self.warnings.append(
                        f"{role}{g.tensors[members[0]].name}: every calibration value is "
                        f"{self.mm[r].min:.6g}, so its range is empty and scale {s:.6g} was "
                        f"used; check the calibration data (--calib)")
                if s > self.max_scale.get(r, math.inf):
                    lim = self.max_scale[r]
                    qmin, qmax = _qrange(self.act_dtype, self.bits[r])
                    span = lim * (qmax - qmin)
                    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
                    a = max(min(max(lo0, hi0 - span), 0.0), -span)   # keep the largest values
                    lo, hi = a, a + span
                    s, z = _params_for_range(lo, hi, o, self.act_dtype, self.bits[r])
                    self.warnings.append(
                        f"{g.tensors[members[0]].name}: softmax input range narrowed to "
                        f"[{lo:.6g}, {hi:.6g}] (TFLite's int8 SOFTMAX needs scale < 32)")
                method, fixed = self.chosen[r], False
                mn, mx = self.mm[r].min, self.mm[r].max
            gparams[r] = (s, z)
            for t in members:
                tensors[t].dtype = self.act_dtype
                tensors[t].quant = QuantParams(np.array([s], np.float32), np.array([z], np.int64))
                acts[t] = ActInfo(tensors[t].name, t, r, method, float(lo), float(hi), float(s),
                                  int(z), str(self.act_dtype), mn, mx, fixed,
                                  dict(self.sqnr.get(r, {})), self.bits[r])
        ops: list[Op] = []
        weights: dict[int, WeightInfo] = {}
        quantized_consts: dict[int, tuple] = {}

        def const_copy(i: int) -> int:
            """A fresh copy of constant tensor i (when it is shared with other params)."""
            t = tensors[i]
            nt = Tensor(len(tensors), t.name + "/q", t.shape, g.tensors[i].dtype, None,
                        g.tensors[i].data.copy())
            tensors.append(nt)
            return nt.index

        def quant_const(i: int, scale: float, zp: int, dtype, bits: int | None = None) -> int:
            """Quantize constant i, saturated to the dtype (or to ``bits`` signed bits)."""
            key = (float(np.float32(scale)), int(zp), np.dtype(dtype).str, bits)
            if i in quantized_consts and quantized_consts[i] != key:
                i = const_copy(i)
            t = tensors[i]
            src = g.tensors[i].data if i < len(g.tensors) else t.data
            data = np.asarray(src, np.float64)
            lo_, hi_ = _qrange(dtype, 16 if bits is None else bits)
            with np.errstate(over="ignore", invalid="ignore"):
                q = C.round_half_away(data / float(np.float32(scale))) + zp
            q = np.where(np.isneginf(data), lo_, np.where(np.isposinf(data), hi_, q))
            t.data = np.clip(q, lo_, hi_).astype(dtype)
            t.dtype = np.dtype(dtype)
            t.quant = QuantParams(np.array([scale], np.float32), np.array([zp], np.int64))
            quantized_consts[i] = key
            return i

        first_last = set()
        if self.mac_ops and o.first_last_weight_bits is not None:
            first_last = {self.mac_ops[0], self.mac_ops[-1]}
        # b-bit activations: explicit clamps (hwsim.quant.act_bits)
        tbits = {t: a.bits for t, a in acts.items()}
        clamps = act_bits.ClampInserter(tensors, ops, tbits)
        clamps.clamp_inputs(g.inputs)
        for op in g.ops:
            ins = clamps.inputs_of(op.inputs)
            if op.type in MAC_OPS:
                ins, winfo = self._quant_mac(op, ins, tensors, const_copy, quantized_consts,
                                             op.index in first_last)
            elif op.type in ("ADD", "SUB", "MUL", "CONCATENATION", "PADV2"):
                for k, i in enumerate(ins):
                    if i < 0 or tensors[i].data is None or g.tensors[i].data is None:
                        continue
                    if np.dtype(g.tensors[i].dtype).kind != "f":
                        continue
                    bits = None
                    if op.type in ("CONCATENATION", "PADV2"):   # values of the output
                        s, z = gparams[self.group_of[op.outputs[0]]]
                        bits = self.bits[self.group_of[op.outputs[0]]]
                    else:
                        d = np.asarray(g.tensors[i].data, np.float64)
                        s, z = _params_for_range(float(d.min()), float(d.max()), o,
                                                 self.act_dtype)
                    ins[k] = quant_const(i, s, z, self.act_dtype, bits)
            if op.type == "CONCATENATION":
                for k, i in enumerate(ins):
                    if (op.index, k) in self.requant_inputs:
                        s, z = gparams[self.group_of[op.outputs[0]]]
                        nt = Tensor(len(tensors), tensors[i].name + "/requant", tensors[i].shape,
                                    self.act_dtype,
                                    QuantParams(np.array([s], np.float32),
                                                np.array([z], np.int64)))
                        tensors.append(nt)
                        ops.append(Op(len(ops), "QUANTIZE", [i], [nt.index], {}, 1))
                        tbits[nt.index] = self.bits[self.group_of[op.outputs[0]]]
                        clamps.clamp_outputs(len(ops) - 1)
                        ins[k] = nt.index
            ops.append(Op(len(ops), op.type, ins, list(op.outputs), dict(op.attrs), op.version))
            if op.type in MAC_OPS:
                winfo.op_index = len(ops) - 1
                weights[winfo.op_index] = winfo
            clamps.clamp_outputs(len(ops) - 1)
        for t, like in clamps.added:   # the clamp's tensors share the quantization of ``like``
            if like in acts:
                acts[t] = replace(acts[like], name=tensors[t].name, index=t, sqnr={})
        qg = Graph(tensors, ops, list(g.inputs), list(g.outputs), g.name, g.source)
        if hasattr(g, "io_layout"):
            qg.io_layout = copy.deepcopy(g.io_layout)
        for w in weights.values():
            if w.bias_overflow:
                self.warnings.append(f"{w.name}: {w.bias_overflow} bias value(s) saturated to the "
                                     f"int32 range")
        return QuantResult(qg, g, o, acts, weights, self.samples, self.warnings)

    def _quant_mac(self, op, ins, tensors, const_copy, quantized_consts, high_precision):
        g = self.g
        o = self.o
        x, w_i = ins[0], ins[1]
        b_i = ins[2] if len(ins) > 2 else -1
        if w_i in quantized_consts:
            w_i = const_copy(w_i)
        wdata = np.asarray(g.tensors[ins[1]].data, np.float32)
        axis = 3 if op.type == "DEPTHWISE_CONV_2D" else 0
        per_channel = o.fc_per_channel if op.type == "FULLY_CONNECTED" else o.per_channel
        bits = int(o.first_last_weight_bits) if (high_precision and o.first_last_weight_bits) \
            else int(o.weight_bits)
        method = "maxabs" if o.weights == "pot" else o.weights
        pot = o.power_of_two or o.weights == "pot"
        q, scales = C.quantize_weights(wdata, axis if per_channel else None, method, bits, pot,
                                       percentile=o.percentile, bins=o.bins)
        scales = np.atleast_1d(np.asarray(scales, np.float64))
        from . import accum
        acc_bits = accum.target_acc_bits(o.accumulator_bits, o.accumulator_overflow,
                                         self.act_dtype)
        fit = None
        if acc_bits is not None:
            fit = accum.fit_mac(g, tensors, op, x, wdata, q, scales, per_channel=per_channel,
                                bits=bits, power_of_two=pot, acc_bits=acc_bits)
            q, scales = fit.q, fit.scales
        qmax = 2 ** (bits - 1) - 1
        wt = tensors[w_i]
        wt.data = q.astype(np.int8)
        wt.dtype = np.dtype(np.int8)
        wt.quant = QuantParams(scales.astype(np.float32), np.zeros(len(scales), np.int64),
                               axis if per_channel else 0)
        quantized_consts[w_i] = ("w",)
        ins[1] = w_i
        s_in = float(np.float32(tensors[x].quant.scales[0]))
        cout = wdata.shape[axis]
        bias_f = np.zeros(cout) if b_i < 0 else np.asarray(g.tensors[b_i].data, np.float64)
        bias_dtype = np.int64 if self.act_dtype == np.dtype(np.int16) else np.int32
        qb, bs, overflow = accum.quantize_bias(bias_f, s_in, scales, cout, bias_dtype)
        if b_i < 0:
            bt = Tensor(len(tensors), tensors[op.outputs[0]].name + "/bias", (cout,),
                        np.dtype(bias_dtype), None, qb)
            tensors.append(bt)
            b_i = bt.index
            ins = ins[:2] + [b_i]
        elif b_i in quantized_consts:
            b_i = const_copy(b_i)
            ins[2] = b_i
        bt = tensors[b_i]
        bt.data, bt.dtype = qb, np.dtype(bias_dtype)
        bt.quant = QuantParams(bs.astype(np.float32), np.zeros(cout, np.int64), 0)
        quantized_consts[b_i] = ("b",)
        thr = scales * qmax
        return ins, WeightInfo(op.index, tensors[op.outputs[0]].name, op.type,
                               axis if per_channel else -1, bits, scales, thr, overflow,
                               fit.adjustment if fit is not None else None)


def quantize(graph: Graph, calib, method: str | None = None, *, options: QuantOptions | None
             = None, config=None, batch_size: int = 32, progress=None, **kw) -> QuantResult:
    """Quantize a float graph with calibration data.

    ``calib``: an array ``(N, ...)`` (split into ``batch_size`` batches), a list of batches, or a
    function returning a fresh iterable of batches (each an array, or a list of arrays for
    multi-input graphs), in the graph's layout (NHWC) or the source model's (NCHW).
    ``method`` / ``**kw`` override fields of ``options`` (:class:`QuantOptions`);
    ``config``: an AccelConfig, YAML path or preset name (:func:`options_from_config`).
    ``progress(pass_no, passes, samples_done)`` is called after each batch.
    """
    opts = options or QuantOptions()
    if config is not None:
        hw = options_from_config(config)
        opts = replace(opts, **{k: getattr(hw, k) for k in (
            "weight_bits", "activation_bits", "power_of_two", "per_channel", "fc_per_channel",
            "symmetric_activations", "accumulator_bits", "accumulator_overflow")})
    if method is not None:
        kw["method"] = method
    if kw:
        unknown = set(kw) - set(QuantOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f"quantize() got unknown option(s) {sorted(unknown)}")
        opts = replace(opts, **kw)
    opts.check()
    qz = _Quantizer(graph, opts, progress)
    qz.calibrate(calib, int(batch_size))
    qz.choose()
    res = qz.build()
    res.config = config
    return res
