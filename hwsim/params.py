"""Typed layer parameters: what each layer of a Program *means*, as integers.

One frozen dataclass per kernel family, in the manner of TFLite's ``ConvParams`` and
``ArithmeticParams`` (tensorflow/lite/kernels/internal/types.h): every field is named for what
it is, holds a Python int, a bool, an enum of :mod:`hwsim.vocab`, a tuple or an integer numpy
array, and is derived once, in lowering (hwsim/lower/). The engine's kernels, the hardware
model (hwsim/hw/) and the export read these fields; nothing downstream re-derives one.

What a kernel caches to run fast (packed weights, split shifts, lookup tables) is *not* here:
it is the kernel's prepared data (``prepare`` in :func:`hwsim.registry.kernel`, like TFLite's
``OpData``), built from these parameters once per Network.

Conventions shared by the families:

* ``act_min`` / ``act_max``: the output clamp (the fused activation's range in the output's
  integers); :meth:`Params.clamp` gives it for any family that has one.
* ``single_rounding``: the TFLite build modelled (TFLITE_SINGLE_ROUNDING) for ops that follow
  TFLite's arithmetic; the MAC layers say it through ``requant.scheme`` instead.
* ``const_input``: a constant data operand of a data-movement op (then the layer has no
  run-time input); ``constants``: constant operands of an elementwise op by operand position.
* A MAC layer lowered for a hardware config carries an :class:`AccumulatorModel`; hardware
  mode is ``params.accumulator is not None``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .vocab import Dataflow, Overflow, RequantScheme, Rounding

# Every family: frozen, keyword-only, compared by value (Params.__eq__), not hashable.
frozen_params = dataclass(frozen=True, eq=False, kw_only=True)


def _same(a, b) -> bool:
    if isinstance(a, Params) or isinstance(b, Params):
        return type(a) is type(b) and not a.diff(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.shape(a) == np.shape(b) and \
            bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@frozen_params
class Params:
    """Base of every family: comparison by value (arrays element by element)."""

    def replace(self, **changes):
        """A copy with ``changes`` (the parameters are frozen)."""
        return dataclasses.replace(self, **changes)

    def diff(self, other) -> list[str]:
        """The names of the fields whose values differ from ``other``'s (same family)."""
        return [f.name for f in dataclasses.fields(self)
                if not _same(getattr(self, f.name), getattr(other, f.name))]

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and not self.diff(other)

    __hash__ = None  # mutable arrays inside: not hashable

    def clamp(self) -> tuple[int, int] | None:
        """The output clamp [act_min, act_max], or None for a family without one."""
        return None

    def with_clamp(self, act_min: int, act_max: int):
        """A copy whose output clamp is [act_min, act_max] (families with a clamp)."""
        raise TypeError(f"{type(self).__name__} has no output clamp")


@frozen_params
class _Clamped(Params):
    act_min: int
    act_max: int

    def clamp(self) -> tuple[int, int]:
        return int(self.act_min), int(self.act_max)

    def with_clamp(self, act_min: int, act_max: int):
        return self.replace(act_min=act_min, act_max=act_max)


# -- requantization and the accumulator ---------------------------------------------------------

@frozen_params
class RequantParams(_Clamped):
    """One requantization unit (hwsim.kernels.requant):
    ``out = clamp(requant(acc, multiplier[c], shift[c]) + out_zp, act_min, act_max)``.

    ``multiplier`` / ``shift``: one entry per output channel, or one for all (lowering
    decides). Their meaning is the scheme's (TFLite: Q31 multiplier and left shift; mult_shift
    / shift_only: right shift >= 0; double_round: real = multiplier * 2^shift). ``rounding``
    is used by mult_shift and shift_only.
    """
    multiplier: np.ndarray
    shift: np.ndarray
    scheme: RequantScheme
    rounding: Rounding = Rounding.half_away_from_zero
    out_zp: int = 0

    @property
    def per_channel(self) -> bool:
        return np.asarray(self.multiplier).size > 1


@frozen_params
class AccumulatorModel(Params):
    """The accelerator's accumulator (hwsim.kernels.accumulate): every addition reduced to
    ``acc_bits`` by ``overflow``, in the order ``dataflow`` gives on an ``array_rows`` x
    ``array_cols`` array; the bias added first (``bias_first``) or last."""
    acc_bits: int
    overflow: Overflow
    dataflow: Dataflow
    array_rows: int
    array_cols: int
    bias_first: bool


# -- MAC layers: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED ------------------------------------

@frozen_params
class MacParams(Params):
    """``acc[c] = bias[c] + sum (x + input_offset) * w`` then ``requant``.

    ``weights``: int8 as the model stores them (CONV OHWI, DEPTHWISE [1, KH, KW, C], FC
    [Cout, K]); ``bias``: int32 (int64 when ``acc_int64``) or None; ``acc_int64``: the 16x8
    layers' int64 accumulator; ``accumulator``: the hardware's (None: TFLite's).
    """
    weights: np.ndarray
    bias: np.ndarray | None
    input_offset: int
    acc_int64: bool
    requant: RequantParams
    accumulator: AccumulatorModel | None = None

    @property
    def channels(self) -> int:
        """Output channels."""
        return int(self.weights.shape[0])

    def clamp(self) -> tuple[int, int]:
        return self.requant.clamp()

    def with_clamp(self, act_min: int, act_max: int):
        return self.replace(requant=self.requant.with_clamp(act_min, act_max))


@frozen_params
class Window2d(Params):
    """A sliding window over NHWC: strides, dilations, TFLite's leading padding (any odd
    extra is at the bottom/right) and the output size."""
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int


@frozen_params
class ConvParams(MacParams, Window2d):
    """CONV_2D (``groups`` = input depth / filter depth)."""
    groups: int = 1


@frozen_params
class DepthwiseConvParams(MacParams, Window2d):
    """DEPTHWISE_CONV_2D: output channel c reads input channel c // depth_multiplier."""
    depth_multiplier: int = 1

    @property
    def channels(self) -> int:
        return int(self.weights.shape[3])


@frozen_params
class FullyConnectedParams(MacParams):
    """FULLY_CONNECTED: the input as ``batch`` rows of ``depth``; output of ``out_shape``.
    ``weights_offset``: -(the per-tensor weight zero point), which TFLite honours:
    ``acc = bias + sum (x + input_offset) * (w + weights_offset)`` (0 for symmetric weights)."""
    batch: int
    depth: int
    out_shape: tuple[int, ...]
    weights_offset: int = 0


# -- pooling, MEAN, elementwise -----------------------------------------------------------------

@frozen_params
class PoolParams(_Clamped):
    """MAX_POOL_2D / AVERAGE_POOL_2D (``average``): never rescales."""
    average: bool
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int


@frozen_params
class MeanParams(Params):
    """MEAN: QuantizedMeanOrSum over ``reduced_axes`` (``count`` elements), the 1/count folded
    into ``multiplier`` / ``shift``."""
    kept_axes: tuple[int, ...]
    reduced_axes: tuple[int, ...]
    count: int
    in_zp: int
    out_zp: int
    multiplier: int
    shift: int
    qmin: int
    qmax: int
    single_rounding: bool
    out_shape: tuple[int, ...]


@frozen_params
class _Operands(Params):
    """Constant operands by operand position (the other operands are the layer's inputs)."""
    out_shape: tuple[int, ...]
    constants: dict[int, np.ndarray] = field(default_factory=dict)


@frozen_params
class ArithmeticParams(_Operands, _Clamped):
    """ADD / SUB / MUL (TFLite's ArithmeticParams).

    ADD/SUB general path: both inputs ``(x + input_offset) << left_shift``, each rescaled by
    its multiplier/shift, added (subtracted: ``is_sub``), rescaled by ``output_multiplier`` /
    ``output_shift``, plus ``output_offset``. int16 power-of-two path (``pot``): inputs shifted
    right by ``rshift1`` / ``rshift2``, saturating add. MUL: ``(a + input1_offset) *
    (b + input2_offset)`` rescaled by ``output_multiplier`` / ``output_shift``.
    """
    single_rounding: bool = False
    input1_offset: int = 0
    input2_offset: int = 0
    output_offset: int = 0
    output_multiplier: int = 0
    output_shift: int = 0
    left_shift: int = 0
    input1_multiplier: int = 0
    input1_shift: int = 0
    input2_multiplier: int = 0
    input2_shift: int = 0
    is_sub: bool = False
    pot: bool = False
    rshift1: int = 0
    rshift2: int = 0

    @property
    def scheme(self) -> RequantScheme:
        """The TFLite build of the rescaling (what an ADD's requant word names)."""
        return RequantScheme.tflite_single if self.single_rounding \
            else RequantScheme.tflite_double


@frozen_params
class ConcatParams(_Operands):
    """CONCATENATION along ``axis`` of ``num_inputs`` operands (a copy; no rescale)."""
    axis: int
    num_inputs: int


@frozen_params
class MaxMinParams(_Operands):
    """MAXIMUM (``is_max``) / MINIMUM of the stored integers."""
    is_max: bool


@frozen_params
class FusedParams(Params):
    """A layer folded into layer ``fused_into`` (placement "fused"): a clamp
    (hwsim.passes.FuseClamps) or a PAD that became a convolution's padding
    (hwsim.passes.FoldPadIntoConv on a placed program)."""
    fused_into: int


# -- activations --------------------------------------------------------------------------------

@frozen_params
class _OutRange(Params):
    out_qmin: int  # the output type's range
    out_qmax: int


@frozen_params
class ReluParams(_OutRange, _Clamped):
    """RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1: ``zp_out + MBQM(x - zp_in)``, clamped."""
    in_zp: int
    out_zp: int
    multiplier: int
    shift: int
    out_bits: int
    single_rounding: bool


@frozen_params
class LeakyReluParams(_OutRange):
    in_zp: int
    out_zp: int
    multiplier_identity: int
    shift_identity: int
    multiplier_alpha: int
    shift_alpha: int
    single_rounding: bool


@frozen_params
class HardSwishParams(_OutRange):
    in_zp: int
    out_zp: int
    output_multiplier_int16: int
    output_exponent: int
    reluish_multiplier_int16: int
    reluish_exponent: int


@frozen_params
class LutParams(_OutRange):
    """An 8-bit table lookup (LOGISTIC, TANH on int8/uint8): ``table`` indexed by the input
    byte, of the output dtype."""
    table: np.ndarray


@frozen_params
class SigmoidInt16Params(Params):
    """int16 LOGISTIC / TANH: input times ``multiplier`` >> ``left_shift``, then the
    interpolated ``sigmoid_table``."""
    multiplier: int
    left_shift: int
    sigmoid_table: np.ndarray


@frozen_params
class SoftmaxQ8Params(_OutRange):
    """8-bit SOFTMAX (gemmlowp fixed point): differences scaled by ``multiplier`` <<
    ``left_shift``; below ``diff_min`` they are excluded."""
    multiplier: int
    left_shift: int
    diff_min: int
    single_rounding: bool


@frozen_params
class SoftmaxInt16Params(_OutRange):
    multiplier: int
    left_shift: int
    exp_lut: np.ndarray
    one_over_one_plus_x_lut: np.ndarray
    single_rounding: bool


# -- data movement, resizing, (de)quantization --------------------------------------------------

@frozen_params
class _DataMove(Params):
    const_input: np.ndarray | None = None


@frozen_params
class PadParams(_DataMove):
    before: np.ndarray  # per dimension
    after: np.ndarray
    value: int


@frozen_params
class ReshapeParams(_DataMove):
    """RESHAPE / SQUEEZE."""
    shape: np.ndarray


@frozen_params
class TransposeParams(_DataMove):
    perm: np.ndarray


@frozen_params
class StridedSliceParams(_DataMove):
    """The input viewed as ``eff_shape``, sliced start:stop:step per axis (stop -1: to the
    start), reshaped to ``shape``."""
    eff_shape: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    step: np.ndarray
    shape: np.ndarray


@frozen_params
class ResizeNearestParams(_DataMove):
    y_index: np.ndarray  # source row / column of each output row / column
    x_index: np.ndarray


@frozen_params
class ResizeBilinearParams(_DataMove):
    """Per output row / column: the two source indices and the Q10 weight of the second."""
    y0: np.ndarray
    y1: np.ndarray
    fy: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    fx: np.ndarray
    rounding: Rounding


@frozen_params
class QuantizeFloatParams(Params):
    """float32 -> integer QUANTIZE; scales as float32 bit patterns (int32)."""
    scale_bits: np.ndarray
    zero_point: np.ndarray
    axis: int
    qmin: int
    qmax: int


@frozen_params
class RequantizeParams(_DataMove):
    """Integer -> integer QUANTIZE: ``requant`` of ``x - in_zp``."""
    in_zp: int
    requant: RequantParams

    def clamp(self) -> tuple[int, int]:
        return self.requant.clamp()

    def with_clamp(self, act_min: int, act_max: int):
        return self.replace(requant=self.requant.with_clamp(act_min, act_max))


@frozen_params
class DequantizeParams(_DataMove):
    scale_bits: np.ndarray
    zero_point: np.ndarray
    axis: int
