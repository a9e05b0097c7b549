"""The accumulator model: MAC-layer accumulators as the array computes them.

A MAC layer (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) reduces, for each output element,
the K products p_k = w_k * (x_k + input_offset) in reduction order k = (ky, kx, ic) (CONV),
(ky, kx) (DEPTHWISE), k (FC) — the order of the weight memory (docs/dev/accel-interface.md).
Taps in the padding are fed as x + input_offset = 0 (product 0). Every addition result is
reduced to ``acc_bits`` by ``ovf`` = two's-complement wrap or saturation (``overflow``), as the
layer's :class:`hwsim.params.AccumulatorModel` says:

output_stationary (dataflow 0): each PE owns one output element:
    acc = ovf(bias) if bias_first else 0
    for k in 0..K-1:  acc = ovf(acc + p_k)
    if not bias_first: acc = ovf(acc + bias)

weight_stationary (dataflow 1): K is split into chunks of ``rows`` consecutive k (the PE
column holds one chunk of weights); a chunk's products are summed down the column, each
addition reduced, and the chunk sums are added to the accumulator in chunk order:
    acc = ovf(bias) if bias_first else 0
    for each chunk j:  s = 0; for k in chunk j: s = ovf(s + p_k)
                       acc = ovf(acc + s)
    if not bias_first: acc = ovf(acc + bias)

Two implementations, chosen per output channel:

* exact slow path (``_conv_ordered`` & co., Numba): the loops above, in that order;
* fast path: the engine's accumulators (``hwsim.kernels.mac``, exact sums, int32 ones modulo
  2^32), used for a channel only where it is provably identical:
    - ``wrap``: wrapping is a ring homomorphism (mod 2^acc_bits), so the order does not matter:
      acc = wrap(exact sum, acc_bits). Needs the engine value exact modulo 2^acc_bits: always
      for an int64 engine accumulator or acc_bits <= 32, otherwise when no sum can leave int32;
    - ``saturate``: no intermediate can leave the accumulator's range, then every ovf is the
      identity and acc = exact sum.
  "Can leave" uses the bound (:func:`channel_bounds`) on every partial sum of channel c, in any
  order: with x' = x + input_offset in [xl, xh] (the actual input's range, widened to include
  0 for the padding): U_c = max(bias_c, 0) + sum_k max(w_ck xh, w_ck xl) and
  L_c = min(bias_c, 0) + sum_k min(w_ck xh, w_ck xl) (each sum_k term has the sign that makes
  it >= 0 resp. <= 0, so every subset sum lies in [L_c, U_c]).

:func:`trace_accumulators` runs the slow path with exact bookkeeping for the headroom analysis:
per element the exact (unbounded) sum and the min/max of every exact intermediate in the
array's order. An element wraps/saturates in hardware iff one of them leaves the range (up to
the first such intermediate the hardware equals the exact computation).
"""
from __future__ import annotations

import numba
import numpy as np

from ..arith import saturate, wrap
from ..params import ConvParams, DepthwiseConvParams, FullyConnectedParams, MacParams
from ..vocab import Dataflow, Overflow
from . import mac

_NJ = dict(cache=True)
INT64_MAX = np.int64(2**63 - 1)
INT64_MIN = np.int64(-2**63)


@numba.njit(cache=True, inline="always")
def acc_add(a, b, bits, sat):
    """ovf(a + b) in ``bits`` (8..64) bits; a in range, b any int64 with |b| < 2^62 or in range."""
    a = np.int64(a)
    b = np.int64(b)
    if bits >= 64:
        if sat:
            if b > 0 and a > INT64_MAX - b:
                return INT64_MAX
            if b < 0 and a < INT64_MIN - b:
                return INT64_MIN
            return a + b
        return np.int64(np.uint64(a) + np.uint64(b))  # two's-complement wrap mod 2^64
    if sat:
        return saturate(a + b, bits)
    return wrap(a + b, bits)


@numba.njit(cache=True, inline="always")
def _start(bias, bits, sat, bias_first):
    if bias_first:
        return acc_add(0, bias, bits, sat)
    return np.int64(0)


@numba.njit(cache=True, inline="always")
def _step(acc, col, cnt, p, bits, sat, ws, rows):
    """One product into the accumulator (OS) or into the column sum (WS)."""
    if ws:
        col = acc_add(col, p, bits, sat)
        cnt += 1
        if cnt == rows:
            acc = acc_add(acc, col, bits, sat)
            col = np.int64(0)
            cnt = 0
    else:
        acc = acc_add(acc, p, bits, sat)
    return acc, col, cnt


@numba.njit(cache=True, inline="always")
def _finish(acc, col, cnt, bias, bits, sat, ws, bias_first):
    if ws and cnt > 0:
        acc = acc_add(acc, col, bits, sat)
    if not bias_first:
        acc = acc_add(acc, bias, bits, sat)
    return acc


@numba.njit(cache=True, inline="always")
def _xstep(e, ecol, lo, hi, p, ws, cnt_after):
    """Exact bookkeeping mirroring _step: e = exact accumulator, ecol = exact column sum."""
    if ws:
        ecol += p
        lo = min(lo, ecol)
        hi = max(hi, ecol)
        if cnt_after == 0:  # the chunk was just added to the accumulator
            e += ecol
            ecol = np.int64(0)
            lo = min(lo, e)
            hi = max(hi, e)
    else:
        e += p
        lo = min(lo, e)
        hi = max(hi, e)
    return e, ecol, lo, hi


@numba.njit(cache=True, inline="always")
def _xfinish(e, ecol, lo, hi, bias, ws, cnt, bias_first):
    if ws and cnt > 0:
        e += ecol
        lo = min(lo, e)
        hi = max(hi, e)
    if not bias_first:
        e += bias
        lo = min(lo, e)
        hi = max(hi, e)
    return e, lo, hi


@numba.njit(cache=True, inline="always")
def _xstart(bias, bias_first):
    if bias_first:
        return np.int64(bias), np.int64(bias), np.int64(bias)
    return np.int64(0), INT64_MAX, INT64_MIN


@numba.njit(cache=True, parallel=True)
def _conv_ordered(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, bits, sat, ws, rows,
                  bias_first, sel, track, out, ex, lo_out, hi_out):
    N, H, W, C = x.shape
    Cout, KH, KW, Cin = w.shape
    fpg = Cout // (C // Cin)  # filters per group (groups = C // Cin; 1 on the array)
    for r in numba.prange(N * oh):
        n = r // oh
        oy = r % oh
        for ox in range(ow):
            for oc in range(Cout):
                if not sel[oc]:
                    continue
                c0 = (oc // fpg) * Cin
                b = np.int64(bias[oc])
                acc = _start(b, bits, sat, bias_first)
                col = np.int64(0)
                cnt = 0
                e, lo, hi = _xstart(b, bias_first)
                ecol = np.int64(0)
                for ky in range(KH):
                    iy = oy * sh - pt + ky * dh
                    for kx in range(KW):
                        ix = ox * sw - pl + kx * dw
                        inside = iy >= 0 and iy < H and ix >= 0 and ix < W
                        for ic in range(Cin):
                            if inside:
                                p = (np.int64(x[n, iy, ix, c0 + ic]) + off) * np.int64(w[oc, ky, kx, ic])
                            else:
                                p = np.int64(0)
                            acc, col, cnt = _step(acc, col, cnt, p, bits, sat, ws, rows)
                            if track:
                                e, ecol, lo, hi = _xstep(e, ecol, lo, hi, p, ws, cnt)
                out[n, oy, ox, oc] = _finish(acc, col, cnt, b, bits, sat, ws, bias_first)
                if track:
                    e, lo, hi = _xfinish(e, ecol, lo, hi, b, ws, cnt, bias_first)
                    ex[n, oy, ox, oc] = e
                    lo_out[n, oy, ox, oc] = lo
                    hi_out[n, oy, ox, oc] = hi


@numba.njit(cache=True, parallel=True)
def _dw_ordered(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, dm, bits, sat, ws, rows,
                bias_first, sel, track, out, ex, lo_out, hi_out):
    N, H, W, C = x.shape
    _, KH, KW, Cout = w.shape
    for r in numba.prange(N * oh):
        n = r // oh
        oy = r % oh
        for ox in range(ow):
            for oc in range(Cout):
                if not sel[oc]:
                    continue
                ic = oc // dm
                b = np.int64(bias[oc])
                acc = _start(b, bits, sat, bias_first)
                col = np.int64(0)
                cnt = 0
                e, lo, hi = _xstart(b, bias_first)
                ecol = np.int64(0)
                for ky in range(KH):
                    iy = oy * sh - pt + ky * dh
                    for kx in range(KW):
                        ix = ox * sw - pl + kx * dw
                        if iy >= 0 and iy < H and ix >= 0 and ix < W:
                            p = (np.int64(x[n, iy, ix, ic]) + off) * np.int64(w[0, ky, kx, oc])
                        else:
                            p = np.int64(0)
                        acc, col, cnt = _step(acc, col, cnt, p, bits, sat, ws, rows)
                        if track:
                            e, ecol, lo, hi = _xstep(e, ecol, lo, hi, p, ws, cnt)
                out[n, oy, ox, oc] = _finish(acc, col, cnt, b, bits, sat, ws, bias_first)
                if track:
                    e, lo, hi = _xfinish(e, ecol, lo, hi, b, ws, cnt, bias_first)
                    ex[n, oy, ox, oc] = e
                    lo_out[n, oy, ox, oc] = lo
                    hi_out[n, oy, ox, oc] = hi


@numba.njit(cache=True, parallel=True)
def _fc_ordered(x, w, bias, off, bits, sat, ws, rows, bias_first, sel, track, out, ex,
                lo_out, hi_out):
    B, K = x.shape
    Cout = w.shape[0]
    for t in numba.prange(B * Cout):
        bi = t // Cout
        oc = t % Cout
        if not sel[oc]:
            continue
        b = np.int64(bias[oc])
        acc = _start(b, bits, sat, bias_first)
        col = np.int64(0)
        cnt = 0
        e, lo, hi = _xstart(b, bias_first)
        ecol = np.int64(0)
        for k in range(K):
            p = (np.int64(x[bi, k]) + off) * np.int64(w[oc, k])
            acc, col, cnt = _step(acc, col, cnt, p, bits, sat, ws, rows)
            if track:
                e, ecol, lo, hi = _xstep(e, ecol, lo, hi, p, ws, cnt)
        out[bi, oc] = _finish(acc, col, cnt, b, bits, sat, ws, bias_first)
        if track:
            e, lo, hi = _xfinish(e, ecol, lo, hi, b, ws, cnt, bias_first)
            ex[bi, oc] = e
            lo_out[bi, oc] = lo
            hi_out[bi, oc] = hi


# ---------------------------------------------------------------------------------------------

KINDS = {"conv2d": "conv", "depthwise_conv2d": "dw", "fully_connected": "fc"}
_KIND_OF = {ConvParams: "conv", DepthwiseConvParams: "dw", FullyConnectedParams: "fc"}


def kind_of(p: MacParams) -> str:
    """The reduction kind of a MAC layer's params: conv, dw or fc."""
    return _KIND_OF[type(p)]


def _bias(bias, cout: int) -> np.ndarray:
    if bias is None:
        return np.zeros(cout, np.int64)
    return np.ascontiguousarray(bias, dtype=np.int64)


def weights_kc(kind: str, weights: np.ndarray) -> np.ndarray:
    """The weights as [Cout, K] (int64) in reduction order (K: (ky,kx,ic) / (ky,kx) / k)."""
    w = np.asarray(weights)
    if kind == "conv":
        return w.reshape(w.shape[0], -1).astype(np.int64)
    if kind == "dw":
        return w.reshape(-1, w.shape[3]).T.astype(np.int64)
    return w.astype(np.int64)


def channel_bounds(kind: str, weights: np.ndarray, bias, input_offset: int, x_lo: int,
                   x_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(L_c, U_c) per output channel: every partial sum of channel c (any order, bias included
    or not) lies in [L_c, U_c] when the inputs lie in [x_lo, x_hi] (the padding's 0 included).
    ``kind``: conv, dw or fc (the layout of ``weights``). Python ints in object arrays are
    avoided: |values| < 2^62 for int8/int16 layers."""
    off = int(input_offset)
    xl = min(int(x_lo) + off, 0)
    xh = max(int(x_hi) + off, 0)
    wk = weights_kc(kind, weights)
    wpos = np.clip(wk, 0, None).sum(axis=1)
    wneg = np.clip(wk, None, 0).sum(axis=1)
    b = _bias(bias, wk.shape[0])
    hi = np.maximum(b, 0) + wpos * xh + wneg * xl
    lo = np.minimum(b, 0) + wpos * xl + wneg * xh
    return lo.astype(np.int64), hi.astype(np.int64)


def layer_bounds(p: MacParams, x_lo: int, x_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`channel_bounds` of a MAC layer's params."""
    return channel_bounds(kind_of(p), p.weights, p.bias, p.input_offset, x_lo, x_hi)


def _engine_acc(p: MacParams, x: np.ndarray, packed) -> np.ndarray:
    w = p.weights if packed is None else packed
    kind = kind_of(p)
    if kind == "conv":
        return mac.conv2d_acc(x, w, p.bias, p.input_offset, p.stride_h, p.stride_w,
                              p.dilation_h, p.dilation_w, p.pad_top, p.pad_left, p.out_h,
                              p.out_w, p.groups)
    if kind == "dw":
        return mac.depthwise_conv2d_acc(x, w, p.bias, p.input_offset, p.stride_h, p.stride_w,
                                        p.dilation_h, p.dilation_w, p.pad_top, p.pad_left,
                                        p.out_h, p.out_w, p.depth_multiplier)
    return mac.fully_connected_acc(x, w, p.bias, p.input_offset)


def _out_shape(p: MacParams, x: np.ndarray) -> tuple[int, ...]:
    if kind_of(p) == "fc":
        return (x.shape[0], p.channels)
    return (x.shape[0], p.out_h, p.out_w, p.channels)


def _run_ordered(p: MacParams, x, sel, track, out, ex, lo, hi):
    m = p.accumulator
    bits, sat = int(m.acc_bits), m.overflow == Overflow.saturate
    ws, rows = m.dataflow == Dataflow.weight_stationary, int(m.array_rows)
    bf = bool(m.bias_first)
    w = np.ascontiguousarray(p.weights)
    b = _bias(p.bias, len(sel))
    off = np.int64(p.input_offset)
    kind = kind_of(p)
    if kind == "conv":
        _conv_ordered(x, w, b, off, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
                      p.pad_top, p.pad_left, p.out_h, p.out_w,
                      bits, sat, ws, rows, bf, sel, track, out, ex, lo, hi)
    elif kind == "dw":
        _dw_ordered(x, w, b, off, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
                    p.pad_top, p.pad_left, p.out_h, p.out_w,
                    p.depth_multiplier, bits, sat, ws, rows, bf, sel, track, out, ex, lo, hi)
    else:
        _fc_ordered(x, w, b, off, bits, sat, ws, rows, bf, sel, track, out, ex, lo, hi)


def _wrap_array(v: np.ndarray, bits: int) -> np.ndarray:
    v = v.astype(np.int64)
    if bits >= 64:
        return v
    half = np.int64(1) << np.int64(bits - 1)
    return ((v + half) & ~(np.int64(-1) << np.int64(bits))) - half


def fast_path_channels(p: MacParams, x: np.ndarray, engine_bits: int) -> np.ndarray:
    """Boolean per output channel: the fast path is provably identical (module docstring)."""
    bits, sat = int(p.accumulator.acc_bits), p.accumulator.overflow == Overflow.saturate
    if x.size:
        lo, hi = layer_bounds(p, int(x.min()), int(x.max()))
    else:
        lo = hi = np.zeros(_out_shape(p, x)[-1], np.int64)
    engine_exact = (lo >= -2**(engine_bits - 1)) & (hi <= 2**(engine_bits - 1) - 1) \
        if engine_bits < 64 else np.ones(len(lo), bool)
    if not sat:
        if bits <= engine_bits:
            return np.ones(len(lo), bool)
        return engine_exact
    fits = (lo >= -(2**(bits - 1))) & (hi <= 2**(bits - 1) - 1) if bits < 64 else \
        np.ones(len(lo), bool)
    return fits & engine_exact


def acc_dtype(p: MacParams) -> np.dtype:
    return np.dtype(np.int64) if (p.acc_int64 or int(p.accumulator.acc_bits) > 32) \
        else np.dtype(np.int32)


def accumulate(p: MacParams, x: np.ndarray, packed=None, force_slow: bool = False) -> np.ndarray:
    """The hardware accumulators of a MAC layer (``p``: its params, with the accumulator
    model; ``x``: the input, [B, K] for FC; ``packed``: its weights as the kernel's prepare
    step packed them, if at hand). Fast path per channel where provably identical, exact
    ordered loops elsewhere (everywhere with ``force_slow``). dtype int64 if acc_bits > 32 or
    the layer is int64."""
    x = np.ascontiguousarray(x)
    shape = _out_shape(p, x)
    cout = shape[-1]
    bits = int(p.accumulator.acc_bits)
    if force_slow:
        sel = np.ones(cout, bool)
        out = np.zeros(shape, np.int64)
    else:
        eng = _engine_acc(p, x, packed)
        engine_bits = 64 if eng.dtype == np.int64 else 32
        fast = fast_path_channels(p, x, engine_bits)
        out = _wrap_array(eng, bits) if p.accumulator.overflow == Overflow.wrap \
            else eng.astype(np.int64)
        sel = ~fast
    if sel.any():
        dummy = np.zeros((1,) * len(shape), np.int64)
        _run_ordered(p, x, sel, False, out, dummy, dummy, dummy)
    return out.astype(acc_dtype(p))


def trace_accumulators(p: MacParams, x: np.ndarray):
    """(hardware acc, exact sum, exact intermediate min, exact intermediate max), int64 arrays
    of the output's shape ([B, Cout] for FC), by the exact ordered loops."""
    x = np.ascontiguousarray(x)
    shape = _out_shape(p, x)
    out, ex = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    lo, hi = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    _run_ordered(p, x, np.ones(shape[-1], bool), True, out, ex, lo, hi)
    return out, ex, lo, hi
