"""LoweringContext: what a lowering function may use, and the derivations lowerings share.

Each derivation is defined once here: requantization multipliers and shifts for every scheme
(:func:`derive_requant`: TFLite's QuantizeMultiplier, or a hardware requant unit's
:func:`mult_shift_params` / :func:`shift_only_params`), activation clamps
(``LoweringContext.activation_range``), the accumulator model of a hardware config
(``LoweringContext.accumulator``). The families (hwsim/lower/<family>.py) import this module;
:func:`hwsim.lower.lower` drives them.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from ..arith import quantize_multiplier, round_half_away_f32, round_half_away_int
from ..hwif.config import RequantConfig
from ..ir import Graph, HwsimError, ModelError, Op, Tensor
from ..params import AccumulatorModel
from ..program import Layer
from ..vocab import (ARRAY_OPS, HW_REQUANT_SCHEMES, MAC_OPS, QRANGE, SEMANTICS, TFLITE_SCHEMES,
                     Dataflow, Overflow, RequantScheme, Rounding)

def check_semantics(semantics) -> str:
    """``semantics`` if it names one of :data:`hwsim.vocab.SEMANTICS` (the two differ in
    FULLY_CONNECTED's requantization and MUL's multiplier), else an HwsimError (one line)."""
    if semantics not in SEMANTICS:
        raise HwsimError(f"semantics {semantics!r}: choose one of {', '.join(SEMANTICS)}")
    return semantics


# Fused activations, and what replaces one the requant unit lacks (nearest first).
_ACTIVATION_FALLBACK = {"RELU6": ("RELU6", "RELU", "NONE"), "RELU": ("RELU", "NONE"),
                        "RELU_N1_TO_1": ("RELU_N1_TO_1", "NONE"), "NONE": ("NONE",)}


def nearest_activation(fused: str, supported) -> str:
    """The fused activation a requant unit supporting ``supported`` (lower-case names, as in
    ``requant.activations``) applies for the model's ``fused``: itself if supported, else
    RELU6 -> RELU -> NONE, RELU_N1_TO_1 -> NONE, RELU -> NONE (NONE is always supported)."""
    fused = (fused or "NONE").upper()
    sup = {a.upper() for a in supported} | {"NONE"}
    for cand in _ACTIVATION_FALLBACK.get(fused, (fused,)):
        if cand in sup:
            return cand
    return fused


def collapse_reals(reals: np.ndarray) -> tuple[float, bool]:
    """The one real a per-tensor requant unit uses for per-channel reals, and whether it is
    exact (all channels equal). Rule: the lower median (sorted, index (n-1)//2) — one of the
    model's own values, so a layer whose channels share one real stays exact."""
    reals = np.asarray(reals, dtype=np.float64).reshape(-1)
    r = float(np.sort(reals)[(len(reals) - 1) // 2])
    return r, bool(np.all(reals == reals[0]))




def mult_shift_params(real: float, multiplier_bits: int, shift_bits: int) -> tuple[int, int, str]:
    """(multiplier, right shift, note) of a mult_shift unit for ``real`` >= 0.

    The largest shift s in [0, 2^shift_bits - 1] such that M = round_half_away(real * 2^s)
    fits the signed multiplier (M <= 2^(multiplier_bits-1) - 1); real * 2^s is exact in
    double. If even s = 0 does not fit, M is clamped to the largest multiplier (noted); an M of
    0 (real too small for the shift range) is noted too.
    """
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"mult_shift_params: real {real!r} is not finite and >= 0")
    mmax = (1 << (multiplier_bits - 1)) - 1
    for s in range((1 << shift_bits) - 1, -1, -1):
        m = round_half_away_int(math.ldexp(real, s))
        if m <= mmax:
            note = "" if m or real == 0 else (f"real {real:.6g} rounds to a zero multiplier "
                                               f"(shift {s} is the largest)")
            return m, s, note
    return mmax, 0, (f"real {real:.6g} exceeds the largest {multiplier_bits}-bit multiplier "
                     f"{mmax}: clamped")


def shift_only_params(real: float, shift_bits: int) -> tuple[int, str]:
    """(right shift, note) of a shift-only unit: round(-log2(real)) clamped to
    [0, 2^shift_bits - 1]. Exact: with real = m 2^e (frexp, m in [0.5, 1)), -log2(real)
    rounds to -e when m^2 >= 1/2 (m >= 1/sqrt 2), else to 1 - e (no ties: sqrt 2 is
    irrational)."""
    real = float(real)
    if not math.isfinite(real) or real <= 0:
        raise ValueError(f"shift_only_params: real {real!r} is not finite and > 0")
    m, e = math.frexp(real)
    sh = -e if Fraction(m) ** 2 >= Fraction(1, 2) else 1 - e
    smax = (1 << shift_bits) - 1
    if 0 <= sh <= smax:
        return sh, ""
    c = min(max(sh, 0), smax)
    return c, f"real {real:.6g} needs shift {sh}, outside [0, {smax}]: clamped to {c}"


def float32_scale_bits(reals) -> np.ndarray:
    """The float32 requant unit's scales: float32(real) (round to nearest even), as the IEEE
    bit patterns (uint32 values in an int64 array: what the requant word and the Program
    carry; ``bits.astype(np.uint32).view(np.float32)`` gives the scales back)."""
    f = np.asarray(reals, dtype=np.float64).astype(np.float32)
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise ValueError(f"float32 requant scales {f.tolist()} must be finite and >= 0")
    return f.view(np.uint32).astype(np.int64)


class DerivedRequant(NamedTuple):
    """The multipliers and shifts of one requantization (before the zero point and clamp that
    complete a :class:`hwsim.params.RequantParams`)."""
    multiplier: np.ndarray  # one entry per channel, or one for all
    shift: np.ndarray
    scheme: RequantScheme
    rounding: Rounding


def derive_requant(reals, scheme, unit=None, notes: list | None = None) -> DerivedRequant:
    """Per-channel reals -> requant params for ``scheme`` (a requant.scheme name or a
    :class:`hwsim.vocab.RequantScheme`).

    ``unit``: the config's RequantConfig (None: TFLite, per channel). Rules:
      tflite_double / tflite_single: QuantizeMultiplier (Q31 multiplier, TFLite shift);
      mult_shift: :func:`mult_shift_params`; shift_only: :func:`shift_only_params`;
      float32: the scale float32(real) (one rounding of the double real), carried as its IEEE
      bits in ``multiplier`` (shift 0), rounding half_even (:func:`float32_scale_bits`);
      a per-tensor unit (unit.per_channel false) uses :func:`collapse_reals`; under a unit,
      channels sharing one real get a single entry.
    Returns a :class:`DerivedRequant` (multiplier and shift arrays, the scheme, the rounding);
    approximations are appended to ``notes``.
    """
    if str(scheme) not in [s.name for s in HW_REQUANT_SCHEMES]:
        raise ValueError(f"requant scheme {scheme!r}: allowed values "
                         f"{', '.join(s.name for s in HW_REQUANT_SCHEMES)}")
    scheme = RequantScheme.from_name(scheme)
    notes = [] if notes is None else notes
    reals = np.atleast_1d(np.asarray(reals, dtype=np.float64))
    if unit is None and scheme in (RequantScheme.mult_shift, RequantScheme.shift_only):
        unit = RequantConfig(scheme=scheme.name)
    if unit is not None and len(reals) > 1:
        r, exact = collapse_reals(reals)
        if exact:
            reals = reals[:1]
        elif not unit.per_channel:
            notes.append(f"{len(reals)} per-channel reals collapsed to one (lower median "
                         f"{r:.9g}) for the per-tensor requant unit")
            reals = np.array([r])
    rounding = Rounding.half_away_from_zero
    if scheme in TFLITE_SCHEMES:
        single = scheme == RequantScheme.tflite_single
        ms, ss = zip(*(quantize_multiplier(float(r), single) for r in reals))
        mult, shift = np.array(ms, dtype=np.int32), np.array(ss, dtype=np.int32)
    elif scheme == RequantScheme.mult_shift:
        out = [mult_shift_params(float(r), unit.multiplier_bits, unit.shift_bits) for r in reals]
        mult = np.array([o[0] for o in out], dtype=np.int64)
        shift = np.array([o[1] for o in out], dtype=np.int64)
        notes.extend(sorted({o[2] for o in out if o[2]}))
        rounding = Rounding.from_name(unit.rounding)
    elif scheme == RequantScheme.float32:
        mult = float32_scale_bits(reals)
        shift = np.zeros(len(reals), dtype=np.int64)
        rounding = Rounding.half_even
    else:  # shift_only
        out = [shift_only_params(float(r), unit.shift_bits) for r in reals]
        mult = np.ones(len(reals), dtype=np.int64)
        shift = np.array([o[0] for o in out], dtype=np.int64)
        notes.extend(sorted({o[1] for o in out if o[1]}))
        rounding = Rounding.from_name(unit.rounding)
    return DerivedRequant(mult, shift, scheme, rounding)


class LoweringContext:
    """What a lowering function may use: the graph, constants, and shared derivations.

    Without a hardware config, every derivation is TFLite's (``requant_scheme`` names the
    rounding build: tflite_double or tflite_single; mult_shift / shift_only derive the MAC
    layers' parameters for a default requant unit of that scheme). With ``config`` (an
    :class:`hwsim.hw.config.AccelConfig`), the MAC layers (CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED) get the parameters of the config's requantization unit and accumulator,
    and the array's layers the nearest supported fused activation; every departure from the
    model is recorded in ``self.notes[op index]`` (the legalization report reads them).
    Non-MAC ops keep TFLite's arithmetic (``self.requant_scheme`` is the TFLite build in force).
    ``semantics`` (:data:`SEMANTICS`): whose reference arithmetic the lowerings follow where
    TFLite and TFLM differ (FULLY_CONNECTED, MUL: docs/semantics.md).
    """

    def __init__(self, graph: Graph, requant_scheme: str = "tflite_double", config=None,
                 semantics: str = "tflite"):
        self.graph = graph
        self.config = config
        self.semantics = check_semantics(semantics)
        if config is not None:
            self.hw_scheme = RequantScheme.from_name(config.requant.scheme)
            self.requant_unit = config.requant
        else:
            names = [s.name for s in HW_REQUANT_SCHEMES]
            if str(requant_scheme) not in names:
                raise ValueError(f"requant_scheme {requant_scheme!r}: allowed values "
                                 f"{', '.join(names)}")
            self.hw_scheme = RequantScheme.from_name(requant_scheme)
            self.requant_unit = None  # TFLite: per channel, every activation, zero points
        # The TFLite build the non-MAC ops (ADD, MEAN, activations, QUANTIZE, ...) follow.
        self.requant_scheme = RequantScheme.tflite_single \
            if self.hw_scheme == RequantScheme.tflite_single else RequantScheme.tflite_double
        self.current_op: Op | None = None
        self.notes: dict[int, list[str]] = {}

    def note(self, op: Op, msg: str) -> None:
        """Record an approximation made for ``op`` (hardware parameters != the model's)."""
        self.notes.setdefault(op.index, []).append(msg)

    # -- tensors -------------------------------------------------------------------------
    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def const(self, op: Op, index: int) -> np.ndarray:
        t = self.graph.tensors[index]
        if t.data is None:
            raise self.error(op, f"input tensor {index} '{t.name}' must be a constant")
        return t.data

    def is_const(self, index: int) -> bool:
        return index >= 0 and self.graph.tensors[index].data is not None

    def error(self, op: Op, msg: str) -> ModelError:
        src = self.graph.source or "model"
        return ModelError(f"{src}: op {op.index} ({op.type}, inputs {op.inputs}, outputs "
                          f"{op.outputs}): {msg}")

    def scale(self, index: int) -> float:
        t = self.graph.tensors[index]
        if t.quant is None:
            raise ModelError(f"{self.graph.source}: tensor {index} '{t.name}' is not quantized")
        return float(t.quant.scales[0])

    def zero_point(self, index: int) -> int:
        t = self.graph.tensors[index]
        return 0 if t.quant is None else int(t.quant.zero_points[0])

    def qrange(self, index: int) -> tuple[int, int]:
        t = self.graph.tensors[index]
        if np.dtype(t.dtype) not in QRANGE:
            raise ModelError(f"{self.graph.source}: tensor {index} '{t.name}' has dtype "
                             f"{t.dtype}; integer types int8/uint8/int16/int32 are supported")
        return QRANGE[np.dtype(t.dtype)]

    # -- derivations (each defined once) --------------------------------------------------
    def quantize_value(self, index: int, real: float) -> int:
        """TFLite's Quantize(scale, zero_point, f): zp + int(round(f / scale)) in float32."""
        t = self.graph.tensors[index]
        q = round_half_away_f32(np.float32(real) / np.float32(t.quant.scales[0]))
        return int(t.quant.zero_points[0]) + int(q)

    def activation_range(self, op: Op, fused: str | None, out_index: int) -> tuple[int, int]:
        """TFLite's CalculateActivationRangeQuantized for a fused activation.

        Under a hardware config, a layer the array runs whose activation the requant unit
        lacks (``requant.activations``) gets the nearest one it has (:func:`nearest_activation`),
        noted.
        """
        fused = fused or "NONE"
        if self.config is not None and op.type in ARRAY_OPS:
            hw = nearest_activation(fused, self.config.requant.activations)
            if hw != fused:
                self.note(op, f"fused activation {fused} is not in requant.activations "
                              f"{list(self.config.requant.activations)}: {hw} instead")
                fused = hw
        return self._tflite_activation_range(op, fused, out_index)

    def _tflite_activation_range(self, op: Op, fused: str, out_index: int) -> tuple[int, int]:
        qmin, qmax = self.qrange(out_index)
        if fused == "NONE":
            return qmin, qmax
        if fused == "RELU":
            return max(qmin, self.quantize_value(out_index, 0.0)), qmax
        if fused == "RELU6":
            return (max(qmin, self.quantize_value(out_index, 0.0)),
                    min(qmax, self.quantize_value(out_index, 6.0)))
        if fused == "RELU_N1_TO_1":
            return (max(qmin, self.quantize_value(out_index, -1.0)),
                    min(qmax, self.quantize_value(out_index, 1.0)))
        raise self.error(op, f"fused activation {fused} is not supported on integer tensors")

    def output_zero_point(self, op: Op, out_index: int) -> int:
        """The output zero point the requant unit adds (0, noted, if it has no zero point)."""
        zp = self.zero_point(out_index)
        if zp and self.config is not None and not self.config.requant.zero_point:
            self.note(op, f"output zero point {zp}: the requant unit adds none "
                          f"(requant.zero_point: false), 0 instead")
            return 0
        return zp

    def accumulator(self) -> AccumulatorModel | None:
        """The accumulator model of a MAC layer (None without a hardware config: TFLite's)."""
        c = self.config
        if c is None:
            return None
        return AccumulatorModel(acc_bits=int(c.accumulator.bits),
                                overflow=Overflow.from_name(c.accumulator.overflow),
                                dataflow=Dataflow.from_name(c.array.dataflow),
                                array_rows=int(c.array.rows), array_cols=int(c.array.cols),
                                bias_first=bool(c.accumulator.bias_first))

    def requant_params(self, real_multipliers, hardware: bool | None = None) -> DerivedRequant:
        """Real scales -> the multipliers and shifts of the requantization in force.

        ``hardware`` (default: whether the op being lowered is a MAC layer) selects the
        hardware requant unit (scheme ``self.hw_scheme``); otherwise TFLite's build.
        See :func:`derive_requant` for each scheme's rule.
        """
        if hardware is None:
            hardware = self.current_op is not None and self.current_op.type in MAC_OPS
        reals = np.atleast_1d(np.asarray(real_multipliers, dtype=np.float64))
        if not hardware:
            return derive_requant(reals, self.requant_scheme)
        notes: list[str] = []
        derived = derive_requant(reals, self.hw_scheme, self.requant_unit, notes)
        if self.current_op is not None:
            for n in notes:
                self.note(self.current_op, n)
        return derived

    def layer(self, op: Op, kernel: str, inputs: list[int] | None = None, **kw) -> Layer:
        """A Layer for ``op``: activation inputs default to the op's non-constant inputs."""
        if inputs is None:
            inputs = [i for i in op.inputs if i >= 0 and not self.is_const(i)]
        return Layer(index=op.index, op=op.type, kernel=kernel, inputs=inputs,
                     outputs=list(op.outputs), **kw)
