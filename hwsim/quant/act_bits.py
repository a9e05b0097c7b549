"""b-bit activations (``activation_bits`` b = 4..7, stored in int8; b = 9..15, stored in int16,
TFLite 16x8): the graph rewrites that keep every activation inside ``[-2^(b-1), 2^(b-1) - 1]``
with TFLite's own ops.

TFLite's int8 (int16) kernels saturate at the int8 (int16) range, so a range quantized onto
``2^b`` levels is not enough: a clipped range (percentile, KL) or a requantization rounding up
still produces values outside b bits. The quantizer (:mod:`hwsim.quant.quantize`) therefore

* :func:`split_fixed_outputs` (before calibration): LOGISTIC, TANH and SOFTMAX have a fixed
  output quantization in TFLite (int8: 1/256, -128 and 1/128, 0; int16: 1/32768, 0 for all
  three; checked by the kernels), which spans 256 (65536) levels. Each such op writes
  ``<name>/fixed`` instead, and a ``QUANTIZE`` (identity in float) requantizes it to
  ``<name>``, which gets the same convention on ``2^b`` levels (:func:`fixed_params`) and a
  clamp like any requantized tensor;
* :class:`ClampInserter` (while the integer ops are emitted): after every op whose output can
  leave the b-bit range, the op writes ``<name>/unclamped`` and

      MAXIMUM(<name>/unclamped, <name>/qmin) -> <name>/clamp_lo
      MINIMUM(<name>/clamp_lo,  <name>/qmax) -> <name>

  with ``<name>/qmin = -2^(b-1)``, ``<name>/qmax = 2^(b-1) - 1`` constant scalars (shape ``()``)
  carrying ``<name>``'s scale and zero point (MAXIMUM/MINIMUM compare the stored integers).
  Consumers and graph outputs keep reading ``<name>`` (same tensor index). A bound the op's
  own clamp already guarantees is left out: a fused RELU / RELU6 / RELU_N1_TO_1 (and the
  RELU-family ops) clamp to ``zp + round(lo / s)`` / ``zp + round(hi / s)`` (TFLite's
  CalculateActivationRangeQuantized), e.g. a RELU's lower bound is the zero point, which lies
  in the b-bit range. A graph input is clamped into ``<name>/clamped``, which its consumers
  read instead (the input itself is whatever the caller feeds).

Ops that only move or select values of already clamped inputs need no clamp
(:data:`VALUE_MOVING_OPS`): MAX_POOL_2D (max of the inputs), AVERAGE_POOL_2D (TFLite int8 /
int16 averages the input integers without rescaling: a rounded mean of values in a range stays in
it), RESHAPE, SQUEEZE, TRANSPOSE, STRIDED_SLICE, RESIZE_* (same parameters as the input,
selections or convex combinations), PAD (the zero point), PADV2 (its constant is clipped to the
b-bit range by the quantizer), CONCATENATION (inputs tied to the output's parameters;
an input that is requantized gets an explicit QUANTIZE, which is clamped), MAXIMUM, MINIMUM.
"""
from __future__ import annotations

import copy

import numpy as np

from ..ir import Graph, Op, QuantParams, Tensor

__all__ = ["FIXED_OUTPUT_OPS", "VALUE_MOVING_OPS", "split_fixed_outputs", "fixed_params",
           "storage_range", "storage_bits",
           "guaranteed_range", "ClampInserter"]

FIXED_OUTPUT_OPS = ("LOGISTIC", "TANH", "SOFTMAX")
VALUE_MOVING_OPS = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SQUEEZE", "TRANSPOSE", "PAD",
                    "PADV2", "STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR",
                    "CONCATENATION", "MAXIMUM", "MINIMUM")
INT8_RANGE = (-128, 127)
INT16_RANGE = (-32768, 32767)


def storage_range(dtype) -> tuple[int, int]:
    """The range of the activation storage type (int8 or int16)."""
    return INT16_RANGE if np.dtype(dtype) == np.dtype(np.int16) else INT8_RANGE


def storage_bits(dtype) -> int:
    return 16 if np.dtype(dtype) == np.dtype(np.int16) else 8
# real bounds (None: unbounded) of the RELU-family ops and of the fused activations
_OP_BOUNDS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0),
              "RELU_0_TO_1": (0.0, 1.0)}
_FUSED_BOUNDS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def split_fixed_outputs(graph: Graph) -> Graph:
    """A copy of the float ``graph`` where each LOGISTIC / TANH / SOFTMAX writes
    ``<name>/fixed`` and a QUANTIZE copies it to ``<name>`` (tensor indices of the original
    tensors unchanged, ops renumbered)."""
    tensors = list(graph.tensors)
    ops: list[Op] = []
    for op in graph.ops:
        if op.type in FIXED_OUTPUT_OPS:
            t = graph.tensors[op.outputs[0]]
            fixed = Tensor(len(tensors), t.name + "/fixed", tuple(t.shape), t.dtype)
            tensors.append(fixed)
            ops.append(Op(len(ops), op.type, list(op.inputs), [fixed.index] + op.outputs[1:],
                          dict(op.attrs), op.version))
            ops.append(Op(len(ops), "QUANTIZE", [fixed.index], [t.index], {}, 1))
        else:
            ops.append(Op(len(ops), op.type, list(op.inputs), list(op.outputs), dict(op.attrs),
                          op.version))
    g = copy.copy(graph)   # keeps io_layout / value_map of imported graphs
    g.tensors, g.ops = tensors, ops
    return g


def _quantize_real(real: float, scale: float, zero_point: int) -> int | None:
    """TFLite's ``zp + static_cast<int32>(TfLiteRound(real / scale))`` (float32), or None when
    the quotient is too large to be worth modelling (then no bound is assumed)."""
    from ..arith import round_half_away_f32
    q = np.float32(real) / np.float32(scale)
    if not abs(float(q)) < 2.0 ** 20:
        return None
    return int(zero_point) + int(round_half_away_f32(q))


def guaranteed_range(op: Op, out: Tensor) -> tuple[int, int]:
    """The range the op's own clamp keeps ``out`` in: its fused activation's (or a
    RELU-family op's) quantized bounds, else the storage (int8 / int16) range."""
    bounds = _OP_BOUNDS.get(op.type) or \
        _FUSED_BOUNDS.get(op.attrs.get("fused_activation_function", "NONE") or "NONE")
    lo, hi = storage_range(out.dtype)
    if bounds is None or out.quant is None:
        return lo, hi
    s, z = float(out.quant.scales[0]), int(out.quant.zero_points[0])
    if bounds[0] is not None:
        q = _quantize_real(bounds[0], s, z)
        lo = lo if q is None else max(lo, q)
    if bounds[1] is not None:
        q = _quantize_real(bounds[1], s, z)
        hi = hi if q is None else min(hi, q)
    return lo, hi


class ClampInserter:
    """Appends the b-bit clamps to ``ops`` while the quantizer emits them.

    ``tensors`` / ``ops``: the integer graph being built (appended to); ``bits``: tensor index
    -> activation bits (missing or >= the storage type's 8 / 16 bits: no clamp). ``added``:
    (new activation tensor, the tensor whose quantization it shares) for every activation
    tensor created.
    """

    def __init__(self, tensors: list[Tensor], ops: list[Op], bits: dict[int, int]):
        self.tensors = tensors
        self.ops = ops
        self.bits = bits
        self.remap: dict[int, int] = {}   # graph input -> its clamped tensor
        self.added: list[tuple[int, int]] = []

    def _range(self, t: int) -> tuple[int, int] | None:
        b = self.bits.get(t)
        dt = np.dtype(self.tensors[t].dtype)
        if b is None or dt not in (np.dtype(np.int8), np.dtype(np.int16)) or \
                b >= storage_bits(dt):
            return None
        return -(1 << (b - 1)), (1 << (b - 1)) - 1

    def _tensor(self, like: int, name: str, data=None) -> int:
        base = self.tensors[like]
        q = base.quant
        quant = QuantParams(q.scales.copy(), q.zero_points.copy(), q.axis)
        shape = () if data is not None else tuple(base.shape)
        dt = np.dtype(base.dtype)
        t = Tensor(len(self.tensors), name, shape, dt, quant,
                   None if data is None else np.asarray(data, dt))
        self.tensors.append(t)
        if data is None:
            self.added.append((t.index, like))
        return t.index

    def _chain(self, src: int, dst: int, like: int, lo: int | None, hi: int | None) -> None:
        """src -> [MAXIMUM lo] -> [MINIMUM hi] -> dst."""
        name = self.tensors[like].name
        cur = src
        if lo is not None:
            out = dst if hi is None else self._tensor(like, name + "/clamp_lo")
            c = self._tensor(like, name + "/qmin", lo)
            self.ops.append(Op(len(self.ops), "MAXIMUM", [cur, c], [out], {}, 1))
            cur = out
        if hi is not None:
            c = self._tensor(like, name + "/qmax", hi)
            self.ops.append(Op(len(self.ops), "MINIMUM", [cur, c], [dst], {}, 1))

    def clamp_inputs(self, inputs) -> None:
        """Clamp each b-bit graph input into ``<name>/clamped`` (read by its consumers)."""
        for i in inputs:
            r = self._range(i)
            if r is None:
                continue
            dst = self._tensor(i, self.tensors[i].name + "/clamped")
            self._chain(i, dst, i, r[0], r[1])
            self.bits[dst] = self.bits[i]
            self.remap[i] = dst

    def inputs_of(self, ins) -> list[int]:
        """An op's inputs with the graph inputs replaced by their clamped tensors."""
        return [self.remap.get(i, i) for i in ins]

    def clamp_outputs(self, position: int) -> None:
        """Clamp the b-bit outputs of ``ops[position]`` (just appended)."""
        op = self.ops[position]
        if op.type in VALUE_MOVING_OPS:
            return
        for j, t in enumerate(op.outputs):
            r = self._range(t)
            if r is None:
                continue
            glo, ghi = guaranteed_range(op, self.tensors[t])
            lo = r[0] if glo < r[0] else None
            hi = r[1] if ghi > r[1] else None
            if lo is None and hi is None:
                continue
            u = self._tensor(t, self.tensors[t].name + "/unclamped")
            self.bits[u] = self.bits[t]
            op.outputs[j] = u
            self._chain(u, t, t, lo, hi)


def fixed_params(op_type: str, bits: int, dtype=np.int8) -> tuple[float, int]:
    """TFLite's fixed output quantization of ``op_type`` on ``2^bits`` levels: int8 LOGISTIC
    and SOFTMAX ``(2^-b, -2^(b-1))`` (int8: 1/256, -128), TANH ``(2^-(b-1), 0)`` (int8: 1/128,
    0); int16 all three ``(2^-(b-1), 0)`` (int16: 1/32768, 0)."""
    if op_type == "TANH" or np.dtype(dtype) == np.dtype(np.int16):
        return 2.0 ** -(bits - 1), 0
    return 2.0 ** -bits, -(1 << (bits - 1))
