"""Calibration: streamed observers, clipping-threshold search, scales, weight quantization.

Everything here is independent of any model graph: a driver feeds each tensor's
float activations, batch by batch, to a :class:`TensorCalibrator` (or calls
:func:`calibrate_tensor` with a factory of batches) and gets a
:class:`CalibrationResult` holding the clipping range.

Determinism (see ``docs/calibration.md``): results are bit-identical for any
batch size and any batch order.  Histogram methods use two passes over the data:

1. pass 1 (:class:`MinMaxObserver`) records the exact float32 min and max;
2. pass 2 (:class:`HistogramObserver`) counts values into a histogram whose
   range is fixed by pass 1 (``[0, max|x|]`` for ``|x|`` histograms,
   ``[-max|x|, max|x|]`` for signed ones), 2048 bins by default.

Counts are int64 and min/max are exact, so the accumulated state does not depend
on how the data was split or ordered; the threshold search then runs on that
state with a fixed sequence of float64 operations.

Units: a *threshold* ``T`` is a clipping bound in the float domain (values are
clipped to ``[-T, T]``); a *scale* follows the TFLite convention
``real = scale * (q - zero_point)``, so symmetric int8 has ``scale = T / 127``.
All values returned are Python floats (float64).  Input data is rounded to
float32 first (the precision of the float model's tensors).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numba
import numpy as np

from ..arith import round_half_away  # noqa: F401 (re-exported: quantize, accum)
from ..ir import HwsimError

__all__ = [
    "METHODS", "DEFAULT_BINS", "CalibrationError", "MinMaxObserver", "HistogramObserver",
    "minmax_range", "percentile_range", "kl_threshold", "kl_divergences", "kl_range_onnxruntime",
    "mse_threshold", "mse_errors", "KL_VARIANTS",
    "CalibrationResult", "TensorCalibrator", "calibrate_tensor",
    "qrange", "symmetric_scale", "asymmetric_params", "power_of_two_scale",
    "round_half_away", "quantize_weights",
]

METHODS = ("minmax", "percentile", "kl", "mse")
KL_VARIANTS = ("tensorrt", "onnxruntime")
DEFAULT_BINS = 2048
_KL_EPS = 1e-4


class CalibrationError(HwsimError, ValueError):
    """Calibration data is unusable: no data, NaN/inf, or a second pass that differs from the first."""


# ----------------------------------------------------------------------------- helpers

def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 4 <= int(bits) <= 16:
        raise ValueError(f"bits must be an integer in [4, 16], got {bits!r}")
    return int(bits)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_f32(x: Any) -> np.ndarray:
    """Flatten ``x`` to float32, rejecting non-numeric data and non-finite values."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise CalibrationError(f"calibration data must be real numbers, got dtype {a.dtype}")
    with np.errstate(over="ignore"):
        a = a.astype(np.float32, copy=False).reshape(-1)
    if a.size and not np.isfinite(a).all():
        raise CalibrationError("calibration data contains NaN or infinity "
                               "(or a value beyond the float32 range)")
    return a


# ----------------------------------------------------------------------------- observers

class MinMaxObserver:
    """Running exact minimum and maximum (pass 1), as float32 values.

    ``observe`` may be called any number of times; state is two floats and a count,
    and is independent of batching and order (``-0.0`` is normalised to ``0.0``).
    """

    def __init__(self) -> None:
        self._min = np.float32(np.inf)
        self._max = np.float32(-np.inf)
        self.count = 0

    def observe(self, x: Any) -> None:
        a = _as_f32(x)
        if a.size == 0:
            return
        mn = a.min() + np.float32(0.0)      # -0.0 + 0.0 == +0.0
        mx = a.max() + np.float32(0.0)
        if mn < self._min:
            self._min = mn
        if mx > self._max:
            self._max = mx
        self.count += int(a.size)

    def merge(self, other: "MinMaxObserver") -> None:
        """Fold another observer's state into this one (order-independent)."""
        if other.count:
            self._min = min(self._min, other._min)
            self._max = max(self._max, other._max)
            self.count += other.count

    def _need_data(self) -> None:
        if self.count == 0:
            raise CalibrationError("no calibration data was observed")

    @property
    def min(self) -> float:
        self._need_data()
        return float(self._min)

    @property
    def max(self) -> float:
        self._need_data()
        return float(self._max)

    @property
    def amax(self) -> float:
        """``max(|min|, |max|)``: the largest magnitude seen."""
        self._need_data()
        return float(max(-self._min, self._max))


class HistogramObserver:
    """Fixed-range histogram (pass 2) of ``|x|`` (``signed=False``) or of ``x`` (``signed=True``).

    The range comes from pass 1: ``[0, amax]`` for ``|x|``, ``[-amax, amax]`` for ``x``
    (``bins`` must then be even, so that 0 is a bin edge).  Bin edges are float32 and are
    exactly those of ``np.histogram(x_f32, bins, range=(lo, hi))`` with ``lo, hi`` given as
    Python floats for ``|x|`` and as float32 scalars for ``x`` -- the same calls ONNX Runtime's
    ``HistogramCollector`` makes, so identical data gives identical counts and edges.
    A value ``v`` falls in bin ``k`` when ``edges[k] <= v < edges[k+1]`` (the last bin is closed).

    State: ``counts`` (int64), ``zeros`` (number of exact zeros, which are also counted in the
    bin holding 0), ``total``, and the exact signed ``min``/``max`` of the observed values.
    Observing a value outside the range raises :class:`CalibrationError` (the second pass
    must see the data of the first).
    """

    def __init__(self, amax: float, *, bins: int = DEFAULT_BINS, signed: bool = False) -> None:
        bins = _check_int("bins", bins, 1)
        amax32 = np.float32(amax)
        if not np.isfinite(amax32) or amax32 < 0:
            raise ValueError(f"amax must be a finite number >= 0, got {amax!r}")
        if signed and bins % 2:
            raise ValueError(f"a signed histogram needs an even number of bins, got {bins}")
        self.bins = bins
        self.signed = bool(signed)
        self.amax = float(amax32)
        if self.signed:
            self._range: tuple = (-amax32, amax32)
            self._zero_bin = bins // 2
        else:
            self._range = (0.0, float(amax32))
            self._zero_bin = 0
        self.lo = float(self._range[0])
        self.hi = float(self._range[1])
        if amax32 == 0:
            self.edges = np.zeros(bins + 1, dtype=np.float32)
        else:
            self.edges = np.histogram(np.empty(0, np.float32), bins=bins, range=self._range)[1]
        self.counts = np.zeros(bins, dtype=np.int64)
        self.zeros = 0
        self.total = 0
        self._min = np.float32(np.inf)
        self._max = np.float32(-np.inf)

    @classmethod
    def from_minmax(cls, mm: MinMaxObserver, *, bins: int = DEFAULT_BINS,
                    signed: bool = False) -> "HistogramObserver":
        """The pass-2 histogram for the range found by pass 1."""
        return cls(mm.amax, bins=bins, signed=signed)

    def observe(self, x: Any) -> None:
        a = _as_f32(x)
        if a.size == 0:
            return
        mn = a.min() + np.float32(0.0)
        mx = a.max() + np.float32(0.0)
        v = a if self.signed else np.abs(a)
        if max(-mn, mx) > np.float32(self.amax):
            raise CalibrationError(
                f"value {float(mn if -mn > mx else mx)!r} lies outside the histogram range "
                f"[{self.lo!r}, {self.hi!r}] fixed by the first pass; both passes must see the same data")
        if self.amax == 0:
            self.counts[self._zero_bin] += a.size
        else:
            self.counts += np.histogram(v, bins=self.bins, range=self._range)[0]
        self.zeros += int(np.count_nonzero(a == 0))
        self.total += int(a.size)
        self._min = min(self._min, mn)
        self._max = max(self._max, mx)

    def merge(self, other: "HistogramObserver") -> None:
        """Add another histogram with the same bins/range (order-independent)."""
        if (other.bins, other.signed, other.amax) != (self.bins, self.signed, self.amax):
            raise ValueError("cannot merge histograms with different bins, range or signedness")
        self.counts += other.counts
        self.zeros += other.zeros
        self.total += other.total
        if other.total:
            self._min = min(self._min, other._min)
            self._max = max(self._max, other._max)

    def _need_data(self) -> None:
        if self.total == 0:
            raise CalibrationError("the histogram is empty: no calibration data was observed")

    @property
    def min(self) -> float:
        self._need_data()
        return float(self._min)

    @property
    def max(self) -> float:
        self._need_data()
        return float(self._max)

    @property
    def bin_width(self) -> float:
        """Nominal bin width ``(hi - lo) / bins`` in float64."""
        return (self.hi - self.lo) / self.bins


# ----------------------------------------------------------------------------- threshold methods

def minmax_range(mm: MinMaxObserver, symmetric: bool = False) -> tuple[float, float]:
    """``(min, max)`` of the data, or ``(-amax, amax)`` when ``symmetric``."""
    if symmetric:
        t = mm.amax
        return (-t, t)
    return (mm.min, mm.max)


def percentile_range(hist: HistogramObserver, percentile: float = 99.99) -> tuple[float, float]:
    """Clipping range that keeps ``percentile`` % of the values, read off the histogram.

    ``cdf = cumsum(counts / total)`` (float64).  For an ``|x|`` histogram the threshold is
    ``T = edges[k]`` with ``k`` the first bin where ``cdf >= percentile / 100`` (the *left* edge
    of the bin in which the percentile falls) and the range is ``(-T, T)``.  For a signed
    histogram ``(100 - percentile) / 2`` % is cut from each tail the same way:
    ``lo = edges[k_lo]``, ``hi = edges[k_hi]``, then clamped to the observed ``[min, max]``.
    This is the definition of ONNX Runtime's ``PercentileCalibrater`` and of TensorRT's
    pytorch-quantization ``_compute_amax_percentile``; it is a histogram percentile, not an
    exact order statistic (error below one bin width).
    """
    p = float(percentile)
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
    hist._need_data()
    if hist.amax == 0:
        return (0.0, 0.0)
    cdf = np.cumsum(hist.counts / hist.total)
    edges = hist.edges
    if not hist.signed:
        k = int(np.searchsorted(cdf, p / 100.0))
        t = float(edges[min(k, hist.bins)])
        return (-t, t)
    cut = (100.0 - p) / 200.0
    k_hi = int(np.searchsorted(cdf, 1.0 - cut))
    k_lo = int(np.searchsorted(cdf, cut))
    lo = max(float(edges[min(k_lo, hist.bins)]), hist.min)
    hi = min(float(edges[min(k_hi, hist.bins)]), hist.max)
    return (lo, hi)


def _kl_counts(hist: HistogramObserver, skip_zeros: bool) -> np.ndarray:
    if hist.signed:
        raise ValueError("kl and mse need a histogram of |x| (signed=False)")
    hist._need_data()
    counts = hist.counts.astype(np.float64)
    if skip_zeros:
        counts[0] -= hist.zeros
    return counts


def _smooth(d: np.ndarray) -> np.ndarray | None:
    """Give zero entries a small mass ``eps`` (in count units) and normalise; None if all zero."""
    nz = d != 0
    if not nz.any():
        return None
    out = np.where(nz, d, _KL_EPS)
    return out / out.sum()


def kl_divergences(hist: HistogramObserver, *, levels: int = 128, start_bin: int = 128,
                   skip_zeros: bool = True) -> np.ndarray:
    """KL(P || Q) for every candidate bin count ``i`` in ``[start_bin, bins]`` (index ``i - start_bin``).

    See :func:`kl_threshold` for the construction of ``P`` and ``Q``.
    """
    levels = _check_int("levels", levels, 2)
    start_bin = _check_int("start_bin", start_bin, levels)
    n_bins = hist.bins
    if start_bin > n_bins:
        raise ValueError(f"start_bin ({start_bin}) must not exceed the number of bins ({n_bins})")
    counts = _kl_counts(hist, skip_zeros)
    # suffix[i] = sum(counts[i:]); integer-valued float64 sums are exact below 2**53
    suffix = np.concatenate([np.cumsum(counts[::-1])[::-1], [0.0]])
    positions = np.arange(n_bins, dtype=np.int64)
    out = np.empty(n_bins - start_bin + 1, dtype=np.float64)
    for i in range(start_bin, n_bins + 1):
        body = counts[:i]
        ref = body.copy()
        ref[-1] += suffix[i]                          # outliers clipped into the last bin
        level = (positions[:i] * levels) // i         # bin j -> level floor(j * levels / i)
        nonzero = (ref != 0).astype(np.float64)
        level_sum = np.bincount(level, weights=body, minlength=levels)
        level_nnz = np.bincount(level, weights=nonzero, minlength=levels)
        per_bin = np.divide(level_sum, level_nnz, out=np.zeros(levels), where=level_nnz > 0)
        cand = per_bin[level] * nonzero               # expand back over the non-empty bins
        p = _smooth(ref)
        q = _smooth(cand)
        if p is None or q is None:
            out[i - start_bin] = np.inf
        else:
            out[i - start_bin] = float(np.sum(p * np.log(p / q)))
    return out


def kl_threshold(hist: HistogramObserver, *, levels: int = 128, start_bin: int = 128,
                 skip_zeros: bool = True) -> float:
    """Entropy (KL-divergence) calibration of TensorRT / ncnn on an ``|x|`` histogram.

    For each candidate ``i`` in ``[start_bin, bins]`` (the clip point is after bin ``i - 1``):

    * ``P = counts[:i]`` with the outliers ``sum(counts[i:])`` added to ``P[i-1]``;
    * ``Q``: bins ``0..i-1`` are grouped into ``levels`` quantization levels,
      bin ``j`` -> level ``floor(j * levels / i)``; each level's count (without the outliers)
      is spread evenly over its bins where ``P != 0`` (zero elsewhere);
    * zeros of ``P`` and ``Q`` get ``eps = 1e-4`` counts, both are normalised, and
      ``KL(P||Q) = sum P log(P/Q)``.

    The first ``i`` with the least KL wins; the threshold is ``(i + 0.5) * amax / bins``
    (TensorRT's and ncnn's ``(m + 0.5) * bin_width``), clamped to ``amax``.
    ``skip_zeros`` (default) removes exact zeros from the first bin, as ncnn does: they are
    represented exactly whatever the threshold and would otherwise dominate bin 0 (ReLU outputs).
    Returns 0.0 when all data is zero.
    """
    if hist.amax == 0:
        hist._need_data()
        return 0.0
    counts = _kl_counts(hist, skip_zeros)
    if not counts.any():
        return 0.0
    div = kl_divergences(hist, levels=levels, start_bin=start_bin, skip_zeros=skip_zeros)
    best = int(np.argmin(div)) + start_bin
    return min((best + 0.5) * (hist.amax / hist.bins), hist.amax)


def _ort_smooth(p: np.ndarray) -> np.ndarray | None:
    """ONNX Runtime's ``smooth_distribution`` (eps 1e-4 moved onto the zeros, float32)."""
    is_zeros = (p == 0).astype(np.float32)
    is_nonzeros = (p != 0).astype(np.float32)
    n_zeros = is_zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = _KL_EPS * float(n_zeros) / float(n_nonzeros)
    out = p.astype(np.float32)
    out += _KL_EPS * is_zeros + (-eps1) * is_nonzeros
    return out


def _ort_entropy(p: np.ndarray, q: np.ndarray) -> np.float32:
    pk = p.astype(np.float32)
    pk = 1.0 * pk / np.sum(pk, axis=0, keepdims=True)
    qk = q.astype(np.float32)
    qk = 1.0 * qk / np.sum(qk, axis=0, keepdims=True)
    return np.float32(np.sum(pk * np.log(pk / qk), axis=0))


def kl_range_onnxruntime(hist: HistogramObserver, *, num_quantized_bins: int = 128) -> tuple[float, float]:
    """ONNX Runtime's entropy calibration (``EntropyCalibrater``), reproduced on a signed histogram.

    Not TensorRT's algorithm (see :func:`kl_threshold` and ``docs/calibration.md``).  With ``B``
    bins over ``[-amax, amax]``, zero bin ``z = B // 2`` and ``L = num_quantized_bins``, each
    candidate ``i`` in ``[L // 2, z]`` takes the window ``[z - i, min(z + i + 1, B))``; ``P`` is the
    window with both tails' counts added to its end bins; ``Q`` merges the window into ``L`` groups of
    ``len // L`` bins (the remainder joins the last group's sum but is not expanded back), each
    group's sum divided by its count of non-zero ``P`` bins and *truncated to an integer* is written
    over the whole group; both are smoothed (eps 1e-4, float32) and ``KL(P||Q)`` is computed in
    float32.  The first least-KL window gives ``(edges[z - i], edges[end])`` clamped to the observed
    ``[min, max]``.  Exact zeros are kept.  Results equal ORT's bit for bit on the same data
    (``HistogramCollector.get_entropy_threshold`` of ONNX Runtime 1.31, tested in
    ``tests/test_quant_calibrate.py``).
    """
    n_q = _check_int("num_quantized_bins", num_quantized_bins, 2)
    if not hist.signed:
        raise ValueError("the onnxruntime entropy variant needs a signed histogram (signed=True)")
    hist._need_data()
    n_bins = hist.bins
    zero = n_bins // 2
    half = n_q // 2
    if half > zero:
        raise ValueError(f"num_quantized_bins ({n_q}) must not exceed the number of bins ({n_bins})")
    if hist.amax == 0:
        return (0.0, 0.0)
    counts = hist.counts
    prefix = np.concatenate([[0], np.cumsum(counts)])          # int64, exact
    total = int(prefix[-1])
    best = None
    best_div = np.inf
    for i in range(half, zero + 1):
        start = zero - i
        end = min(zero + i + 1, n_bins)
        sliced = counts[start:end]
        p = sliced.copy()
        p[0] += prefix[start]
        p[-1] += total - prefix[end]
        nonzero = (p != 0).astype(np.int64)
        merged = sliced.size // n_q
        used = merged * n_q
        qbins = sliced[:used].reshape(n_q, merged).sum(axis=1)
        qbins[-1] += sliced[used:].sum()
        norm = nonzero[:used].reshape(n_q, merged).sum(axis=1)
        per = np.zeros(n_q, dtype=np.int64)
        ok = norm != 0
        per[ok] = np.trunc(qbins[ok] / norm[ok]).astype(np.int64)
        q = np.zeros(p.size, dtype=np.int64)
        q[:used] = np.repeat(per, merged)
        ps = _ort_smooth(p)
        qs = _ort_smooth(q)
        div = np.inf if ps is None or qs is None else float(_ort_entropy(ps, qs))
        if best is None or div < best_div:           # first least value, as np.argmin
            best_div = div
            best = (start, end)
    lo = max(float(hist.edges[best[0]]), hist.min)
    hi = min(float(hist.edges[best[1]]), hist.max)
    return (lo, hi)


@numba.njit(cache=True, inline="always")
def _rounding_integral(u):
    """G(u) = integral_0^u (t - round(t))^2 dt for u >= 0."""
    fl = math.floor(u)
    f = u - fl
    if f <= 0.5:
        return fl / 12.0 + f * f * f / 3.0
    g = 1.0 - f
    return fl / 12.0 + 1.0 / 12.0 - g * g * g / 3.0


@numba.njit(cache=True)
def _mse_kernel(counts, edges, qmax, out):
    n_bins = counts.shape[0]
    for k in range(1, n_bins + 1):
        t = edges[k]
        if t <= 0.0:
            out[k - 1] = np.inf
            continue
        s = t / qmax
        acc = 0.0
        for j in range(n_bins):
            n = counts[j]
            if n == 0.0:
                continue
            a = edges[j]
            b = edges[j + 1]
            w = b - a
            if j < k:
                if w <= 0.0:
                    r = a / s
                    d = r - math.floor(r + 0.5)
                    err = s * s * d * d
                else:
                    err = s * s * s * (_rounding_integral(b / s) - _rounding_integral(a / s)) / w
            else:
                if w <= 0.0:
                    err = (a - t) * (a - t)
                else:
                    hb = b - t
                    ha = a - t
                    err = (hb * hb * hb - ha * ha * ha) / (3.0 * w)
            acc += n * err
        out[k - 1] = acc


def mse_errors(hist: HistogramObserver, *, bits: int = 8) -> np.ndarray:
    """Expected squared error (sum over the data) for each candidate ``T = edges[k]``, k = 1..bins.

    See :func:`mse_threshold`.  Index ``k - 1``; candidates with ``T == 0`` get ``inf``.
    Computed by a sequential loop (fixed summation order).
    """
    bits = _check_bits(bits)
    qmax = float(2 ** (bits - 1) - 1)
    counts = _kl_counts(hist, skip_zeros=True)       # exact zeros quantize without error
    out = np.empty(hist.bins, dtype=np.float64)
    _mse_kernel(counts, hist.edges.astype(np.float64), qmax, out)
    return out


def mse_threshold(hist: HistogramObserver, *, bits: int = 8) -> float:
    """Threshold minimising the expected squared quantization + clipping error.

    Symmetric grid with ``qmax = 2**(bits-1) - 1`` steps of ``s = T / qmax``.  Values are
    assumed uniform inside each histogram bin ``[a, b)``; for a candidate ``T = edges[k]``:

    * bins below ``T``: mean of ``(x - s*round(x/s))**2`` over ``[a, b)``, in closed form
      ``s**3 * (G(b/s) - G(a/s)) / (b - a)`` with ``G(u) = floor(u)/12 + g(frac(u))``,
      ``g(f) = f**3/3`` for ``f <= 1/2`` else ``1/12 - (1-f)**3/3``;
    * bins above ``T`` (clipped to ``T``): ``((b-T)**3 - (a-T)**3) / (3 (b-a))``;
    * exact zeros are excluded (no error).

    Error = sum of count x mean error; the smallest ``T`` with the least error wins.
    Returns 0.0 when all data is zero.
    """
    if hist.amax == 0:
        hist._need_data()
        return 0.0
    if not _kl_counts(hist, skip_zeros=True).any():
        return 0.0
    err = mse_errors(hist, bits=bits)
    k = int(np.argmin(err)) + 1
    return float(hist.edges[k])


# ----------------------------------------------------------------------------- tensor driver

@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of calibrating one tensor.

    ``lo, hi``: the clipping range (float); ``symmetric`` results have ``lo == -hi``
    (``kl`` with ``kl_variant="onnxruntime"`` returns ORT's pair, which is off by one bin;
    like ORT, use :attr:`threshold` for a symmetric quantizer).
    ``min, max, count``: exact statistics of the observed data.
    """

    method: str
    lo: float
    hi: float
    symmetric: bool
    min: float
    max: float
    count: int

    @property
    def threshold(self) -> float:
        """``max(-lo, hi)``: the symmetric clipping threshold ``T``."""
        return max(-self.lo, self.hi)

    def scale(self, bits: int = 8) -> float:
        """Symmetric scale ``T / (2**(bits-1) - 1)`` (see :func:`symmetric_scale`)."""
        return symmetric_scale(self.threshold, bits)

    def asymmetric_params(self, bits: int = 8, signed: bool = True) -> tuple[float, int]:
        """``(scale, zero_point)`` for ``[lo, hi]`` (see :func:`asymmetric_params`)."""
        return asymmetric_params(self.lo, self.hi, bits, signed)


class TensorCalibrator:
    """Two-pass calibration of one tensor; feed batches with ``first_pass`` then ``second_pass``.

    ``method``: ``"minmax"`` (one pass), ``"percentile"``, ``"kl"`` or ``"mse"``.
    ``symmetric``: for ``minmax`` and ``percentile``, choose ``(-T, T)`` from ``|x|`` (default)
    or an asymmetric ``(lo, hi)``; ``kl`` and ``mse`` are symmetric only.
    Other options: ``bins`` (histogram bins, 2048), ``percentile`` (99.99), ``bits`` (8, for
    ``mse``), ``levels`` / ``start_bin`` (128 / 128, for ``kl``), ``skip_zeros`` (True, for ``kl``),
    ``kl_variant``: ``"tensorrt"`` (default, :func:`kl_threshold` on ``|x|``) or ``"onnxruntime"``
    (:func:`kl_range_onnxruntime` on a signed histogram of ``bins`` bins with ``levels`` quantized
    bins; ignores ``start_bin`` and ``skip_zeros``).

    The second pass must see the same values as the first (any batching, any order); this is
    checked by count and by exact min/max.
    """

    def __init__(self, method: str = "kl", *, symmetric: bool = True, bins: int = DEFAULT_BINS,
                 percentile: float = 99.99, bits: int = 8, levels: int = 128, start_bin: int = 128,
                 skip_zeros: bool = True, kl_variant: str = "tensorrt") -> None:
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
        if kl_variant not in KL_VARIANTS:
            raise ValueError(f"unknown kl_variant {kl_variant!r}; expected one of {KL_VARIANTS}")
        self.kl_variant = kl_variant
        ort_kl = method == "kl" and kl_variant == "onnxruntime"
        if not symmetric and method in ("kl", "mse") and not ort_kl:
            raise ValueError(f"method {method!r} is symmetric only (threshold on |x|)")
        self.method = method
        self.symmetric = bool(symmetric)
        self.bins = _check_int("bins", bins, 1)
        if not 0.0 <= float(percentile) <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
        self.percentile = float(percentile)
        self.bits = _check_bits(bits)
        self.levels = _check_int("levels", levels, 2)
        self.start_bin = _check_int("start_bin", start_bin, 1)
        if method == "kl" and not ort_kl and self.start_bin < self.levels:
            raise ValueError(f"start_bin ({self.start_bin}) must be >= levels ({self.levels})")
        if method == "kl" and not ort_kl and self.start_bin > self.bins:
            raise ValueError(f"start_bin ({self.start_bin}) must not exceed bins ({self.bins})")
        self._signed = (method == "percentile" and not symmetric) or ort_kl
        if self._signed and self.bins % 2:
            raise ValueError("a signed histogram (asymmetric percentile, onnxruntime kl) "
                             "needs an even number of bins")
        if ort_kl and self.levels // 2 > self.bins // 2:
            raise ValueError(f"levels ({self.levels}) must not exceed bins ({self.bins})")
        self.skip_zeros = bool(skip_zeros)
        self.minmax = MinMaxObserver()
        self.histogram: HistogramObserver | None = None

    @property
    def needs_second_pass(self) -> bool:
        return self.method != "minmax"

    def first_pass(self, x: Any) -> None:
        """Observe one batch in pass 1 (exact min/max)."""
        if self.histogram is not None:
            raise RuntimeError("first_pass called after the second pass started")
        self.minmax.observe(x)

    def second_pass(self, x: Any) -> None:
        """Observe one batch in pass 2 (histogram over the range fixed by pass 1)."""
        if not self.needs_second_pass:
            raise RuntimeError("method 'minmax' has no second pass")
        if self.histogram is None:
            self.histogram = HistogramObserver.from_minmax(self.minmax, bins=self.bins,
                                                           signed=self._signed)
        self.histogram.observe(x)

    def result(self) -> CalibrationResult:
        mm = self.minmax
        mm._need_data()
        if self.method == "minmax":
            lo, hi = minmax_range(mm, self.symmetric)
        else:
            h = self.histogram
            if h is None or h.total == 0:
                raise CalibrationError(f"method {self.method!r} needs a second pass over the data")
            if h.total != mm.count or h.min != mm.min or h.max != mm.max:
                raise CalibrationError(
                    f"the second pass saw different data than the first ({h.total} values in "
                    f"[{h.min!r}, {h.max!r}] vs {mm.count} in [{mm.min!r}, {mm.max!r}])")
            if self.method == "percentile":
                lo, hi = percentile_range(h, self.percentile)
            elif self.method == "kl" and self.kl_variant == "onnxruntime":
                lo, hi = kl_range_onnxruntime(h, num_quantized_bins=self.levels)
            elif self.method == "kl":
                t = kl_threshold(h, levels=self.levels, start_bin=self.start_bin,
                                 skip_zeros=self.skip_zeros)
                lo, hi = -t, t
            else:
                t = mse_threshold(h, bits=self.bits)
                lo, hi = -t, t
        symmetric = self.symmetric and not (self.method == "kl" and self.kl_variant == "onnxruntime")
        return CalibrationResult(self.method, float(lo), float(hi), symmetric, mm.min, mm.max, mm.count)


def _iterate(batches: Any, pass_no: int) -> Iterator[Any]:
    if isinstance(batches, np.ndarray):
        return iter((batches,))
    if callable(batches):
        it = batches()
        if isinstance(it, np.ndarray):
            return iter((it,))
        return iter(it)
    it = iter(batches)
    if it is batches and pass_no > 1:
        raise TypeError("a one-shot iterator cannot be read twice: pass a sequence of batches "
                        "or a function returning a fresh iterable")
    return it


def calibrate_tensor(batches: Callable[[], Iterable[Any]] | Iterable[Any], method: str = "kl",
                     **opts: Any) -> CalibrationResult:
    """Calibrate one tensor from its batches.

    ``batches`` is a function returning a fresh iterable of arrays (called once per pass), a
    re-iterable sequence of arrays, or a single ``np.ndarray`` (one batch).  ``opts`` are those
    of :class:`TensorCalibrator`.  The result does not depend on how the data is split into
    batches nor on their order.
    """
    cal = TensorCalibrator(method, **opts)
    for b in _iterate(batches, 1):
        cal.first_pass(b)
    if cal.needs_second_pass:
        for b in _iterate(batches, 2):
            cal.second_pass(b)
    return cal.result()


# ----------------------------------------------------------------------------- scales

def qrange(bits: int = 8, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """Integer range: signed ``[-2**(b-1), 2**(b-1)-1]`` (``narrow``: ``[-(2**(b-1)-1), ...]``),
    unsigned ``[0, 2**b - 1]``."""
    bits = _check_bits(bits)
    if signed:
        qmax = 2 ** (bits - 1) - 1
        return (-qmax if narrow else -qmax - 1, qmax)
    return (0, 2 ** bits - 1)


def _check_threshold(t: Any) -> float:
    t = float(t)
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {t!r}")
    return t


def symmetric_scale(threshold: float, bits: int = 8) -> float:
    """``T / (2**(bits-1) - 1)``; int8: ``T / 127`` (TFLite / TensorRT, zero point 0).

    ``T == 0`` (all-zero tensor) gives 1.0, which represents it exactly.
    """
    t = _check_threshold(threshold)
    qmax = 2 ** (_check_bits(bits) - 1) - 1
    return t / qmax if t > 0 else 1.0


def asymmetric_params(rmin: float, rmax: float, bits: int = 8, signed: bool = True) -> tuple[float, int]:
    """``(scale, zero_point)`` for the range ``[rmin, rmax]``, TFLite style.

    The range is first extended to contain 0; ``scale = (rmax - rmin) / (qmax - qmin)`` and
    ``zero_point = round(clamp(qmin - rmin / scale, qmin, qmax))`` with ties away from zero
    (TFLite's nudging, so that 0.0 is exactly representable).  ``qmin, qmax`` from
    :func:`qrange` (``signed``: int8 ``[-128, 127]``; unsigned: uint8 ``[0, 255]``).
    A degenerate range (both 0) gives ``(1.0, 0)``.
    """
    lo, hi = float(rmin), float(rmax)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"need finite rmin <= rmax, got ({rmin!r}, {rmax!r})")
    qmin, qmax = qrange(bits, signed)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return (1.0, min(max(0, qmin), qmax))
    scale = (hi - lo) / (qmax - qmin)
    zp_real = qmin - lo / scale
    zp = int(round_half_away(min(max(zp_real, float(qmin)), float(qmax))))
    return (scale, zp)


def power_of_two_scale(threshold: float, bits: int = 8) -> tuple[float, int]:
    """``(2**-k, k)``: the smallest power-of-two scale ``>= T / qmax`` (no extra clipping).

    ``k`` is the number of fractional bits of a shift-only datapath:
    ``k = floor(log2(qmax / T))``, computed exactly with ``frexp``.  ``T == 0`` gives ``(1.0, 0)``.
    """
    t = _check_threshold(threshold)
    qmax = 2 ** (_check_bits(bits) - 1) - 1
    if t == 0:
        return (1.0, 0)
    r = t / qmax
    m, e = math.frexp(r)                 # r = m * 2**e, 0.5 <= m < 1
    exp = e - 1 if m == 0.5 else e       # smallest 2**exp >= r
    return (math.ldexp(1.0, exp), -exp)


# ----------------------------------------------------------------------------- weights

def _channel_threshold(absw: np.ndarray, method: str, bits: int, percentile: float, bins: int) -> float:
    amax = float(absw.max()) if absw.size else 0.0
    if amax == 0 or method == "maxabs":
        return amax
    h = HistogramObserver(amax, bins=bins, signed=False)
    h.observe(absw)
    if method == "percentile":
        return percentile_range(h, percentile)[1]
    return mse_threshold(h, bits=bits)


def quantize_weights(w: Any, axis: int | None = 0, method: str = "maxabs", bits: int = 8,
                     power_of_two: bool = False, *, percentile: float = 99.99,
                     bins: int = DEFAULT_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric weight quantization (zero point 0), per channel or per tensor.

    ``axis``: the output-channel axis (per-channel scales), or None (one scale).
    ``method``: threshold per channel from ``"maxabs"`` (``max|w|``), ``"percentile"`` or
    ``"mse"`` (on a ``bins``-bin histogram of ``|w|`` over ``[0, max|w|]``, as for activations).
    Scale ``= float32(T / qmax)`` with ``qmax = 2**(bits-1) - 1`` (int8: 127, the TFLite
    narrow range ``[-127, 127]``), or with ``power_of_two`` the smallest ``2**-k >= T / qmax``
    (:func:`power_of_two_scale`).  An all-zero channel gets scale 1.0.

    Returns ``(q, scales)``: ``q = clip(round_half_away(w / scale), -qmax, qmax)`` computed in
    float64 from the float32 weights and the float32-representable scale, as int8
    (``bits <= 8``) or int16; ``scales`` float64 of shape ``(w.shape[axis],)`` or ``()``.
    """
    bits = _check_bits(bits)
    if method not in ("maxabs", "percentile", "mse"):
        raise ValueError(f"unknown weight method {method!r}; expected 'maxabs', 'percentile' or 'mse'")
    bins = _check_int("bins", bins, 1)
    arr = np.asarray(w)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"weights must be real numbers, got dtype {arr.dtype}")
    w32 = arr.astype(np.float32)
    if not np.isfinite(w32).all():
        raise ValueError("weights contain NaN or infinity")
    qmax = 2 ** (bits - 1) - 1
    if axis is None:
        chans = w32.reshape(1, -1)
    else:
        if w32.ndim == 0:
            raise ValueError("per-channel quantization needs an array with at least one axis")
        ax = int(axis)
        if not -w32.ndim <= ax < w32.ndim:
            raise ValueError(f"axis {axis} is out of range for weights of shape {w32.shape}")
        ax %= w32.ndim
        chans = np.moveaxis(w32, ax, 0).reshape(w32.shape[ax], -1)
    scales = np.empty(chans.shape[0], dtype=np.float64)
    for c in range(chans.shape[0]):
        t = _channel_threshold(np.abs(chans[c]), method, bits, percentile, bins)
        if t == 0:
            s = 1.0
        elif power_of_two:
            s = power_of_two_scale(t, bits)[0]
        else:
            s = float(np.float32(t / qmax))
        if not s > 0 or not math.isfinite(s) or not math.isfinite(float(np.float32(s))) \
                or float(np.float32(s)) == 0.0:
            raise ValueError(f"channel {c}: threshold {t!r} gives no usable float32 scale")
        scales[c] = s
    if axis is None:
        bshape: tuple = ()
    else:
        bshape = [1] * w32.ndim
        bshape[ax] = -1
        bshape = tuple(bshape)
    s_b = scales[0] if axis is None else scales.reshape(bshape)
    q = np.clip(round_half_away(w32.astype(np.float64) / s_b), -qmax, qmax)
    q = q.astype(np.int8 if bits <= 8 else np.int16)
    return q, (np.array(scales[0], dtype=np.float64) if axis is None else scales)
