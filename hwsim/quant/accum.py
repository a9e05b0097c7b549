"""Accumulator-aware weight scales: MAC layers whose accumulators provably fit ``acc_bits``.

A narrow accumulator (``accumulator.bits`` of an :class:`hwsim.hw.config.AccelConfig`, e.g. 24)
computes the model's integers exactly only where no partial sum can leave its range. The bound
is the one the hardware model and its strict legalization use
(:func:`hwsim.kernels.accumulate.channel_bounds`, ``hwsim.hw.network._acc_reason``). With the
input zero point folded as TFLite does (``acc_c = bias_c + sum_k w_ck (x_k - zp_in)``), inputs
``x`` in the static range ``[x_lo, x_hi]`` and padding taps counted as ``x - zp_in = 0``:

    xl  = min(x_lo - zp_in, 0),        xh  = max(x_hi - zp_in, 0)
    P_c = sum_k max(w_ck, 0),          N_c = sum_k min(w_ck, 0)
    U_c = max(bias_c, 0) + P_c xh + N_c xl
    L_c = min(bias_c, 0) + P_c xl + N_c xh

Every term of P_c xh + N_c xl is >= 0 and every term of P_c xl + N_c xh <= 0, so every partial
sum, in any order (output- or weight-stationary, bias first or last), lies in ``[L_c, U_c]``;
the order the array forms its sums does not enter. Channel c fits a ``b``-bit accumulator iff
``-2^(b-1) <= L_c`` and ``U_c <= 2^(b-1) - 1``.

Fitting (:func:`fit_weights`). A larger weight scale ``s`` never increases any
``|round_half_away(w / s)|`` nor ``|round_half_away(bias / (s_in s))|`` (correctly rounded
division and multiplication are monotone), so ``U_c`` never increases and ``L_c`` never
decreases: the scales that fit are all those above a threshold. A channel that does not fit
gets the *smallest* scale on its grid that fits, found by bisection:

* float scales: the float32 numbers (TFLite stores float32 scales), bisected on their bit
  patterns (ordered like the positive floats they encode);
* power-of-two scales (``shift_only`` requantization, ``pot`` weights): the exponents.

Per-channel scales: only the channels that do not fit change (the others keep their integers
bit for bit). Per-tensor: one scale, the smallest that makes every channel fit. Weights are
re-quantized as :func:`hwsim.quant.calibrate.quantize_weights` does
(``clip(round_half_away(w / s), -qmax, qmax)`` in float64 from the float32 weights) and the
bias re-derived by :func:`quantize_bias`, the one derivation of the quantizer's biases.

The input range (:func:`static_input_range`) follows the static range analysis of
``hwsim.hw.dataflow.tensor_ranges``: the tensor's storage range (int8 ``[-128, 127]``, int16),
narrowed by the clamp ``[act_min, act_max]`` of the producing CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED / ADD / SUB / MUL (its fused activation, TFLite's
CalculateActivationRangeQuantized), carried through MAX/AVERAGE_POOL_2D (clamped by the pool's
own activation range) and RESHAPE / SQUEEZE. It is never narrower than that analysis where the
producer is exact on the hardware, so strict legalization accepts the fitted layer. (The fit
runs on the float graph, before the quantizer inserts the MAXIMUM/MINIMUM clamps of 4..7-bit
activations (hwsim/quant/act_bits.py), so it assumes the int8 storage range for those inputs:
conservative — it may shrink weights more than the 2^b levels need — never unsafe.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hw.headroom import bits_needed
from ..ir import Graph, HwsimError
from ..kernels.accumulate import channel_bounds
from ..lower import LoweringContext
from ..vocab import ALIAS_OPS, MAC_OPS, QRANGE
from .calibrate import round_half_away

__all__ = ["AccAdjustment", "FitResult", "target_acc_bits", "model_acc_bits", "quantize_bias",
           "fit_weights", "fit_mac", "static_input_range", "weight_bits_used"]

OVERFLOW_MODES = ("wrap", "saturate")
_CLAMPING_OPS = MAC_OPS + ("ADD", "SUB", "MUL")   # kernels with act_min/act_max (tensor_ranges)
_POOL_OPS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
_KIND = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "FULLY_CONNECTED": "fc"}
_BISECT_LIMIT = 200          # float32 bit patterns need <= 32 steps, exponents <= 12


# ------------------------------------------------------------------------------ widths
def weight_bits_used(q) -> int:
    """Signed bits the largest magnitude of ``q`` needs (127 -> 8, 7 -> 4); 0 for all zeros."""
    m = int(np.max(np.abs(np.asarray(q, np.int64)))) if np.size(q) else 0
    return m.bit_length() + 1 if m else 0


def model_acc_bits(act_dtype) -> int:
    """The model's accumulator: int32, int64 for 16-bit activations (TFLite's 16x8 kernels)."""
    return 64 if np.dtype(act_dtype) == np.dtype(np.int16) else 32


def target_acc_bits(acc_bits: int | None, overflow: str, act_dtype) -> int | None:
    """The width the accumulators must fit, or None when the hardware's accumulator equals the
    model's. As ``hwsim.hw.network._acc_reason``: a wrapping accumulator of the model's own
    width is the model's modular arithmetic; otherwise (narrower, or saturating, or wrapping
    wider than the model) hardware and model agree iff no partial sum leaves
    ``min(acc_bits, model width)`` bits."""
    if acc_bits is None:
        return None
    ref = model_acc_bits(act_dtype)
    if overflow == "wrap" and int(acc_bits) == ref:
        return None
    return min(int(acc_bits), ref)


def _acc_limits(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


# ------------------------------------------------------------------------------ bias
def quantize_bias(bias: np.ndarray, input_scale: float, weight_scales: np.ndarray, cout: int,
                  dtype) -> tuple[np.ndarray, np.ndarray, int]:
    """TFLite's bias: ``q = round_half_away(b / (s_in * s_w))`` saturated to ``dtype`` (int32,
    int64 for 16-bit activations), with ``s_in`` and ``s_w`` the float32 scales in float64.

    Returns ``(q, bias_scales, saturated)``: ``bias_scales`` float64 ``[cout]`` (per-tensor
    weight scales repeated), ``saturated`` the number of values clipped to ``dtype``."""
    s_in = float(np.float32(input_scale))
    ws = np.atleast_1d(np.asarray(weight_scales, np.float64))
    bias_scales = s_in * ws.astype(np.float32).astype(np.float64)
    bs = bias_scales if len(bias_scales) == cout else np.repeat(bias_scales, cout)
    b = np.asarray(bias, np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        qb = round_half_away(np.where(bs > 0, b / bs, 0.0))
    info = np.iinfo(dtype)
    saturated = int(np.count_nonzero((qb < info.min) | (qb > info.max)))
    return np.clip(qb, info.min, info.max).astype(dtype), bs, saturated


# ------------------------------------------------------------------------------ report
def _span(v, fmt=lambda x: str(int(x))) -> str:
    """'a' or 'a..b' for the smallest and largest of v."""
    lo, hi = fmt(np.min(v)), fmt(np.max(v))
    return lo if lo == hi else f"{lo}..{hi}"


@dataclass
class AccAdjustment:
    """One MAC layer whose weight scales were raised so that its accumulators fit."""
    name: str                   # the layer's output tensor
    op: str
    acc_bits: int               # the width fitted
    per_channel: bool
    cout: int
    channels: np.ndarray        # channels whose bound exceeded acc_bits (re-scaled)
    old_lo: np.ndarray          # bounds [L_c, U_c] of those channels, before and after
    old_hi: np.ndarray
    new_lo: np.ndarray
    new_hi: np.ndarray
    old_scales: np.ndarray      # their weight scales (per tensor: the layer's, once)
    new_scales: np.ndarray
    old_bits: np.ndarray        # their effective weight bits (weight_bits_used)
    new_bits: np.ndarray
    x_range: tuple = (0, 0)     # the static input range, and its zero point
    input_zero_point: int = 0

    def line(self) -> str:
        """One line for the quantize summary."""
        ob = max(bits_needed(lo, hi) for lo, hi in zip(self.old_lo, self.old_hi))
        nb = max(bits_needed(lo, hi) for lo, hi in zip(self.new_lo, self.new_hi))
        k = len(self.channels)
        which = (f"{k} of {self.cout} channel(s)" if self.per_channel else
                 f"per-tensor scale ({k} of {self.cout} channel(s) did not fit)")
        chans = ", ".join(str(int(c)) for c in self.channels[:8]) + \
            (", ..." if k > 8 else "")
        ratio = np.asarray(self.new_scales, np.float64) / np.asarray(self.old_scales, np.float64)
        return (f"{self.name} ({self.op}): {which} re-scaled for the {self.acc_bits}-bit "
                f"accumulator [{chans}]: bound {ob} -> {nb} bits, weights "
                f"{_span(self.old_bits)} -> {_span(self.new_bits)} effective bits, scale "
                f"x{_span(ratio, lambda x: f'{float(x):.3g}')} (inputs {list(self.x_range)}, "
                f"zero point {self.input_zero_point})")

    def as_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.__dict__.items()}


@dataclass
class FitResult:
    q: np.ndarray               # the weights (input layout), int8 / int16
    scales: np.ndarray          # float64, per channel [C] or per tensor [1]
    adjustment: AccAdjustment | None = None
    lo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # final bounds
    hi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


# ------------------------------------------------------------------------------ fitting
def _grid_index(s: np.ndarray, pot: bool) -> np.ndarray:
    """Scales -> grid indices (float32 bit patterns, or exponents e of 2^e >= s)."""
    s = np.asarray(s, np.float64)
    if pot:
        m, e = np.frexp(s)
        return np.where(m == 0.5, e - 1, e).astype(np.int64)
    return np.asarray(s, np.float32).view(np.int32).astype(np.int64)


def _grid_scale(u: np.ndarray, pot: bool) -> np.ndarray:
    u = np.asarray(u, np.int64)
    if pot:
        return np.ldexp(1.0, u.astype(np.int32))
    return u.astype(np.int32).view(np.float32).astype(np.float64)


class _Layer:
    """The quantities of one layer the bound depends on, channels as rows [C, K]."""

    def __init__(self, w, axis, bits, bias, input_scale, bias_dtype, x_lo, x_hi, zp_in):
        w = np.asarray(w, np.float32)
        self.shape, self.axis = w.shape, axis
        self.w_ck = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).astype(np.float64)
        self.cout = self.w_ck.shape[0]
        self.qmax = 2 ** (int(bits) - 1) - 1
        self.bias = (np.zeros(self.cout) if bias is None else
                     np.asarray(bias, np.float64).reshape(-1))
        self.s_in = float(np.float32(input_scale))
        self.bias_dtype = bias_dtype
        self.x_lo, self.x_hi, self.zp = int(x_lo), int(x_hi), int(zp_in)

    def quantize(self, rows: np.ndarray, s: np.ndarray) -> np.ndarray:
        """calibrate.quantize_weights' integers of channels ``rows`` at scales ``s``."""
        return np.clip(round_half_away(self.w_ck[rows] / s[:, None]), -self.qmax, self.qmax)

    def bounds(self, rows: np.ndarray, s: np.ndarray):
        """(q [len(rows), K], L, U) of channels ``rows`` at scales ``s`` (one per row)."""
        q = self.quantize(rows, s)
        qb, _, _ = quantize_bias(self.bias[rows], self.s_in, s, len(rows), self.bias_dtype)
        # channel_bounds is order-free within a channel: the [C, K] rows bound as FC weights
        lo, hi = channel_bounds("fc", q.astype(np.int64), qb, -self.zp, self.x_lo, self.x_hi)
        return q, lo, hi


def _zero_scale(layer: _Layer, rows: np.ndarray) -> np.ndarray:
    """A scale per row at which every weight and the bias quantize to 0 (bound 0)."""
    amax = np.abs(layer.w_ck[rows]).max(axis=1) if layer.w_ck.shape[1] else np.zeros(len(rows))
    bmax = np.abs(layer.bias[rows]) / layer.s_in if layer.s_in > 0 else np.zeros(len(rows))
    return 4.0 * np.maximum(np.maximum(amax, bmax), np.finfo(np.float32).tiny)


def _bisect(fits, u_lo: np.ndarray, u_hi: np.ndarray) -> np.ndarray:
    """Smallest u in (u_lo, u_hi] with fits(u), per element; fits is monotone, u_lo fails,
    u_hi fits. ``fits(idx, u)`` evaluates the elements ``idx`` at indices ``u``."""
    u_lo, u_hi = u_lo.copy(), u_hi.copy()
    for _ in range(_BISECT_LIMIT):
        open_ = np.flatnonzero(u_hi - u_lo > 1)
        if not len(open_):
            return u_hi
        mid = (u_lo[open_] + u_hi[open_]) // 2
        ok = fits(open_, mid)
        u_hi[open_[ok]] = mid[ok]
        u_lo[open_[~ok]] = mid[~ok]
    raise AssertionError("bisection did not converge")


def fit_weights(w, q, scales, axis: int, *, per_channel: bool, bits: int, power_of_two: bool,
                bias, input_scale: float, input_zero_point: int, x_range: tuple[int, int],
                acc_bits: int, bias_dtype=np.int32, kind: str = "conv", name: str = "",
                op: str = "") -> FitResult:
    """Raise the weight scales of the channels whose accumulator bound exceeds ``acc_bits``.

    ``w``: float weights (graph layout: OHWI, ``[1, KH, KW, C]``, ``[out, in]``) with output
    channels on ``axis``; ``q``, ``scales``: their quantization (``scales`` ``[C]`` per channel,
    ``[1]`` per tensor); ``bits``: the weight bits (``qmax = 2^(bits-1) - 1``);
    ``power_of_two``: the scales are powers of two (and stay so); ``bias``: float ``[C]`` or
    None; ``input_scale``, ``input_zero_point``: the input's quantization; ``x_range``: the
    input's static integer range; ``kind``: conv | dw | fc (the final check is
    ``channel_bounds(kind, ...)`` on the layer as the hardware model sees it).

    Returns a :class:`FitResult` (``adjustment`` None when every channel already fits).
    Raises HwsimError when even an all-zero layer would not fit (a bias beyond float32)."""
    layer = _Layer(w, axis, bits, bias, input_scale, bias_dtype, x_range[0], x_range[1],
                   input_zero_point)
    C = layer.cout
    a_min, a_max = _acc_limits(int(acc_bits))
    scales = np.atleast_1d(np.asarray(scales, np.float64))
    s_c = scales if per_channel else np.repeat(scales, C)
    q_ck = np.moveaxis(np.asarray(q), axis, 0).reshape(C, -1).astype(np.int64)
    qb, _, _ = quantize_bias(layer.bias, layer.s_in, scales, C, bias_dtype)
    lo0, hi0 = channel_bounds("fc", q_ck, qb, -layer.zp, layer.x_lo, layer.x_hi)
    bad = np.flatnonzero((lo0 < a_min) | (hi0 > a_max))
    if not len(bad):
        return FitResult(np.asarray(q), scales, None, lo0, hi0)

    rows_all = np.arange(C)

    def chan_fits(rows, s):
        _, lo, hi = layer.bounds(rows, s)
        return (lo >= a_min) & (hi <= a_max)

    if per_channel:
        rows, s_old = bad, s_c[bad]
    else:
        rows, s_old = np.zeros(1, np.int64), scales[:1]
    s_top = _zero_scale(layer, rows_all)
    s_top = s_top[bad] if per_channel else np.array([s_top.max()])
    s_top = np.maximum(s_top, s_old * 2.0)
    with np.errstate(over="ignore"):
        finite = np.all(np.isfinite(s_top.astype(np.float32)))
    if not finite:
        raise HwsimError(f"{name or op}: no float32 weight scale makes the accumulator fit "
                         f"{acc_bits} bits (bias too large for the input scale)")
    u_lo, u_hi = _grid_index(s_old, power_of_two), _grid_index(s_top, power_of_two)
    if not power_of_two:  # s_top: the float32 at or above (a fitting scale)
        u_hi = np.where(_grid_scale(u_hi, False) < s_top, u_hi + 1, u_hi)

    if per_channel:
        def fits(idx, u):
            return chan_fits(rows[idx], _grid_scale(u, power_of_two))
    else:
        def fits(idx, u):
            s = float(_grid_scale(u, power_of_two)[0])
            return np.array([bool(np.all(chan_fits(rows_all, np.full(C, s))))])
    if not np.all(fits(np.arange(len(rows)), u_hi)):
        raise AssertionError(f"{name}: all-zero weights and bias must fit {acc_bits} bits")
    u_new = _bisect(fits, u_lo, u_hi)
    s_new_rows = _grid_scale(u_new, power_of_two)

    new_scales = scales.copy()
    if per_channel:
        new_scales[bad] = s_new_rows
        changed = bad
    else:
        new_scales[:] = s_new_rows[0]
        changed = rows_all
    s_new_c = new_scales if per_channel else np.repeat(new_scales, C)
    q_new_ck = q_ck.copy()
    q_new_ck[changed] = layer.quantize(changed, s_new_c[changed]).astype(np.int64)
    q_out = np.moveaxis(q_new_ck.reshape((C,) + tuple(np.delete(layer.shape, axis))), 0, axis)
    q_out = q_out.astype(np.asarray(q).dtype)

    # the hardware model's own bound on the layer as lowered (the post-condition)
    qb_new, _, _ = quantize_bias(layer.bias, layer.s_in, new_scales, C, bias_dtype)
    lo1, hi1 = channel_bounds(kind, q_out, qb_new, -layer.zp, layer.x_lo, layer.x_hi)
    if np.any(lo1 < a_min) or np.any(hi1 > a_max):
        raise AssertionError(f"{name}: fitted layer still exceeds {acc_bits} bits")
    adj = AccAdjustment(
        name, op, int(acc_bits), bool(per_channel), C, bad, lo0[bad], hi0[bad], lo1[bad],
        hi1[bad], s_c[bad] if per_channel else scales[:1].copy(),
        s_new_c[bad] if per_channel else new_scales[:1].copy(),
        np.array([weight_bits_used(q_ck[c]) for c in bad]),
        np.array([weight_bits_used(q_new_ck[c]) for c in bad]),
        (layer.x_lo, layer.x_hi), layer.zp)
    return FitResult(q_out, new_scales, adj, lo1, hi1)


# ------------------------------------------------------------------------------ graphs
def static_input_range(graph: Graph, tensors, t: int) -> tuple[int, int]:
    """The static integer range of activation tensor ``t`` (module docstring): ``graph`` gives
    the ops (types, attributes, producers), ``tensors`` the quantized tensors (dtype, scale,
    zero point) by index."""
    producer = {o: op for op in graph.ops for o in op.outputs}
    ctx = LoweringContext(Graph(list(tensors), [], [], [], graph.name, graph.source))

    def storage(i):
        return QRANGE[np.dtype(tensors[i].dtype)]

    def act_range(op, i):
        fused = op.attrs.get("fused_activation_function") or "NONE"
        try:
            return ctx.activation_range(op, fused, i)
        except HwsimError:   # not lowerable: no clamp assumed
            return storage(i)

    chain = []   # pools and aliases between t and the tensor whose range is known
    i = t
    while True:
        lo, hi = storage(i)
        op = producer.get(i)
        if op is None:
            break
        if op.type in _CLAMPING_OPS:
            a_lo, a_hi = act_range(op, i)
            lo, hi = max(lo, a_lo), min(hi, a_hi)
            break
        if (op.type in _POOL_OPS or op.type in ALIAS_OPS) and op.inputs:
            chain.append((op, i))
            i = op.inputs[0]
            continue
        break
    for op, out in reversed(chain):
        if op.type in _POOL_OPS:
            a_lo, a_hi = act_range(op, out)
            lo, hi = min(max(lo, a_lo), a_hi), min(max(hi, a_lo), a_hi)
        s_lo, s_hi = storage(out)
        lo, hi = max(lo, s_lo), min(hi, s_hi)
    return int(lo), int(hi)


def fit_mac(graph: Graph, tensors, op, x: int, w, q, scales, *, per_channel: bool, bits: int,
            power_of_two: bool, acc_bits: int) -> FitResult:
    """:func:`fit_weights` for MAC op ``op`` of the float ``graph`` being quantized into
    ``tensors``, reading activation tensor ``x`` (already quantized): the input's scale, zero
    point and static range, the float bias, the bias dtype (int64 for int16 inputs)."""
    xt = tensors[x]
    b_i = op.inputs[2] if len(op.inputs) > 2 else -1
    bias = None if b_i < 0 else np.asarray(graph.tensors[b_i].data, np.float64)
    bias_dtype = np.int64 if model_acc_bits(xt.dtype) == 64 else np.int32
    axis = 3 if op.type == "DEPTHWISE_CONV_2D" else 0
    return fit_weights(w, q, scales, axis, per_channel=per_channel, bits=bits,
                       power_of_two=power_of_two, bias=bias,
                       input_scale=float(xt.quant.scales[0]),
                       input_zero_point=int(xt.quant.zero_points[0]),
                       x_range=static_input_range(graph, tensors, x), acc_bits=acc_bits,
                       bias_dtype=bias_dtype, kind=_KIND[op.type],
                       name=tensors[op.outputs[0]].name, op=op.type)
