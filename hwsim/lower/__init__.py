"""Lowering: Graph (real-valued scales) -> Program (integers only).

Every integer constant a layer needs is derived here, once: requantization multipliers and
shifts, activation clamps, padding, folded zero-point terms. Op families register their
lowerings with :func:`hwsim.registry.lowering` in ``hwsim/lower/<family>.py``.

``lower(graph)`` gives TFLite's arithmetic (the engine); ``lower(graph, config)`` (an
AccelConfig, preset name or YAML path) the hardware's: the MAC layers carry the config's
requant-unit parameters (:func:`derive_requant`) and the accumulator model
(``LoweringContext.accumulator_params``), the array's layers the nearest supported fused
activation (:func:`nearest_activation`). Legalization (is that exact?) is hwsim.hw.map_network.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .. import registry
from ..arith import quantize_multiplier, round_half_away_f32
from ..ir import Graph, ModelError, Op, Tensor
from ..program import Layer, Program, TensorInfo
from ..vocab import (ARRAY_OPS, HW_REQUANT_SCHEMES, MAC_OPS, QRANGE, TFLITE_SCHEMES,
                     Dataflow, Overflow, RequantScheme, Rounding)

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


def _half_away(v: float) -> int:
    a = abs(v)
    f = math.floor(a)
    if a - f >= 0.5:  # exact in binary floating point
        f += 1
    return int(-f if v < 0 else f)


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
        m = _half_away(math.ldexp(real, s))
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


def derive_requant(reals, scheme, unit=None, notes: list | None = None) -> dict:
    """Per-channel reals -> requant params for ``scheme`` (a requant.scheme name or a
    :class:`hwsim.vocab.RequantScheme`).

    ``unit``: the config's RequantConfig (None: TFLite, per channel). Rules:
      tflite_double / tflite_single: QuantizeMultiplier (Q31 multiplier, TFLite shift);
      mult_shift: :func:`mult_shift_params`; shift_only: :func:`shift_only_params`;
      a per-tensor unit (unit.per_channel false) uses :func:`collapse_reals`; under a unit,
      channels sharing one real get a single entry.
    Returns multiplier/shift arrays, the scheme code and the rounding code; approximations are
    appended to ``notes``.
    """
    if str(scheme) not in [s.name for s in HW_REQUANT_SCHEMES]:
        raise ValueError(f"requant scheme {scheme!r}: allowed values "
                         f"{', '.join(s.name for s in HW_REQUANT_SCHEMES)}")
    scheme = RequantScheme.from_name(scheme)
    notes = [] if notes is None else notes
    reals = np.atleast_1d(np.asarray(reals, dtype=np.float64))
    if unit is None and scheme in (RequantScheme.mult_shift, RequantScheme.shift_only):
        from ..hw.config import RequantConfig
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
    else:  # shift_only
        out = [shift_only_params(float(r), unit.shift_bits) for r in reals]
        mult = np.ones(len(reals), dtype=np.int64)
        shift = np.array([o[0] for o in out], dtype=np.int64)
        notes.extend(sorted({o[1] for o in out if o[1]}))
        rounding = Rounding.from_name(unit.rounding)
    return {"multiplier": mult, "shift": shift, "scheme": scheme, "rounding": rounding}


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
    """

    def __init__(self, graph: Graph, requant_scheme: str = "tflite_double", config=None):
        self.graph = graph
        self.config = config
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

    def accumulator_params(self) -> dict:
        """The accumulator model of a MAC layer (empty without a hardware config).

        acc_bits, acc_overflow (0 wrap, 1 saturate, per addition), dataflow
        (0 output_stationary, 1 weight_stationary), array_rows, array_cols, bias_first (0/1).
        """
        c = self.config
        if c is None:
            return {}
        return dict(acc_bits=int(c.accumulator.bits),
                    acc_overflow=Overflow.from_name(c.accumulator.overflow),
                    dataflow=Dataflow.from_name(c.array.dataflow), array_rows=int(c.array.rows),
                    array_cols=int(c.array.cols), bias_first=int(c.accumulator.bias_first))

    def requant_params(self, real_multipliers, hardware: bool | None = None) -> dict:
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
        params = derive_requant(reals, self.hw_scheme, self.requant_unit, notes)
        if self.current_op is not None:
            for n in notes:
                self.note(self.current_op, n)
        return params

    def layer(self, op: Op, kernel: str, inputs: list[int] | None = None, **kw) -> Layer:
        """A Layer for ``op``: activation inputs default to the op's non-constant inputs."""
        if inputs is None:
            inputs = [i for i in op.inputs if i >= 0 and not self.is_const(i)]
        return Layer(index=op.index, op=op.type, kernel=kernel, inputs=inputs,
                     outputs=list(op.outputs), **kw)


def lower(graph: Graph, config=None, requant_scheme: str | None = None) -> Program:
    """Graph -> Program.

    ``config``: None (TFLite's arithmetic: the engine), an AccelConfig, a preset name or a YAML
    path (:func:`hwsim.hw.config.load_config`): the MAC layers then carry the hardware's
    requantization parameters and accumulator model. ``requant_scheme`` (also accepted as the
    second positional argument, the historical signature) selects the TFLite build
    (tflite_double, tflite_single) or a default mult_shift / shift_only unit, without a config.
    """
    return lower_with_context(graph, config, requant_scheme)[0]


def _refuse_float_model(graph: Graph) -> None:
    """A float model (float32 MAC weights) cannot be lowered: say so, and what to do."""
    for op in graph.ops:
        if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
            w = graph.tensors[op.inputs[1]]
            if w.dtype is not None and np.dtype(w.dtype).kind == "f":
                raise ModelError(
                    f"{graph.source or 'model'}: a float model (op {op.index} {op.type} has "
                    f"{w.dtype} weights); hwsim runs integer models — quantize it first: "
                    f"hwsim quantize MODEL --calib DATA --out model_int8.tflite")


def lower_with_context(graph: Graph, config=None, requant_scheme: str | None = None):
    """:func:`lower`, also returning the LoweringContext (its ``notes``: the approximations)."""
    if isinstance(config, str) and config in RequantScheme.names():
        config, requant_scheme = None, config
    if config is not None:
        from ..hw.config import load_config
        config = load_config(config)
        if requant_scheme is not None and requant_scheme != config.requant.scheme:
            raise ValueError(f"requant_scheme {requant_scheme!r} contradicts the config's "
                             f"requant.scheme {config.requant.scheme!r}")
    registry.load_all()
    _refuse_float_model(graph)
    ctx = LoweringContext(graph, requant_scheme or "tflite_double", config)
    layers: list[Layer] = []
    for op in graph.ops:
        fn = registry.LOWERINGS.get(op.type)
        if fn is None:
            raise ModelError(
                f"{graph.source or 'model'}: unsupported op {op.type} (op {op.index}, inputs "
                f"{op.inputs}, outputs {op.outputs}); supported: "
                f"{', '.join(sorted(registry.LOWERINGS))}")
        for t in op.inputs + op.outputs:
            if t >= 0 and graph.tensors[t].dtype is None:
                raise ctx.error(op, f"tensor {t} '{graph.tensors[t].name}' has an unsupported "
                                    f"type")
        ctx.current_op = op
        try:
            out = fn(op, ctx)
        finally:
            ctx.current_op = None
        layers.extend(out if isinstance(out, list) else [out])
    infos = []
    for t in graph.tensors:
        q = t.quant
        infos.append(TensorInfo(
            t.index, t.name, tuple(t.shape), np.dtype(t.dtype) if t.dtype is not None else None,
            q.scales if q is not None else np.zeros(0, np.float32),
            q.zero_points if q is not None else np.zeros(0, np.int64),
            q.axis if q is not None else 0))
    constants = {t.index: t.data for t in graph.tensors if t.data is not None}
    prog = Program(layers, infos, constants, list(graph.inputs), list(graph.outputs),
                   graph.source, ctx.hw_scheme)
    return prog, ctx
