"""Lowering of the activation family: RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU,
HARD_SWISH, LOGISTIC, TANH, SOFTMAX.

Each lowering reproduces the Prepare() of TFLite's ``kernels/activations.cc`` as registered by
the BUILTIN_REF op resolver (``register_ref.cc``: RELU*/RELU6 use the common registration,
TANH/LOGISTIC/SOFTMAX/LEAKY_RELU/HARD_SWISH their ``*_REF`` ones), and the kernels
(hwsim/kernels/activation.py) its Eval() path:

=============  ===============  =============================================================
op             dtypes           TFLite REF path
=============  ===============  =============================================================
RELU, RELU6    int8 uint8 int16 reference_ops::ReluX: zp_out + MBQM(x - zp_in, M, e), clamped
RELU_N1_TO_1,  int8 uint8       to [zp + roundf(lo / s_out), zp + roundf(hi / s_out)]; M, e =
RELU_0_TO_1                     QuantizeMultiplier(float(s_in / s_out)); int16: zero points 0
LEAKY_RELU     int8 uint8 int16 reference_ops::QuantizeLeakyRelu: identity and alpha multipliers
                                (float products/quotients), negative alpha via a sign flag
HARD_SWISH     int8 uint8       reference_ops::HardSwish: int16 fixed point, 16-bit
                                multipliers (DownScaleInt32ToInt16Multiplier)
LOGISTIC, TANH int8 uint8       LookupTable on a 256-entry table from LUTPopulate: float32
                                transform (libm expf / tanhf, like TFLite's build), roundf
LOGISTIC, TANH int16            reference_integer_ops::Logistic / Tanh (int16): sigmoid table
                                (sigmoid_table_uint16) with interpolation
SOFTMAX        int8/uint8 ->    reference_ops::Softmax: gemmlowp fixed point (Q5.26 diffs,
               same or int16    exp_on_negative_values, Q12.19 sum, GetReciprocal); the exp of
                                the 256 possible differences is tabulated at lowering
SOFTMAX        int16            reference_ops::SoftmaxInt16: exp and 1/(1+x) int16 LUTs
=============  ===============  =============================================================

Under BUILTIN_REF the int8 LOGISTIC/TANH do NOT use gemmlowp fixed point (that is the
kFixedPointOptimized kernel): the reference kernel uses the float-derived table. The int8
SOFTMAX reference kernel, on the other hand, does use gemmlowp fixed point (the optimized one
uses a float table).

Scales are float32 in TFLite (TfLiteQuantizationParams::scale); every expression below is
evaluated in the precision the C++ uses (float32 where both operands are floats, double where
TFLite casts). The requantization build (double rounding by default, TFLITE_SINGLE_ROUNDING when
the program's requant scheme is "tflite_single") selects MultiplyByQuantizedMultiplier.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from ..arith import (_round_half_away_float, calculate_input_radius, preprocess_softmax_scaling,
                     quantize_multiplier, round_half_away_f32)
from ..ir import Op
from ..params import (HardSwishParams, LeakyReluParams, LutParams, ReluParams,
                      SigmoidInt16Params, SoftmaxInt16Params, SoftmaxQ8Params)
from ..registry import lowering
from ..vocab import QRANGE, RequantScheme
from .context import LoweringContext

F32 = np.float32

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

# TFLite common.h sigmoid_table_uint16: "sigmoid(i / 24) in Q0.16" (256 entries), used by the
# int16 LOGISTIC/TANH reference kernels. A constant of the algorithm, not derivable from that
# description: neither round() nor ceil() of 65536 * sigmoid(i / 24) reproduces it (44 and 97
# entries differ), so it is taken as TFLite defines it (like gemmlowp's raw constants).
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498,
    40149, 40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255,
    46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865,
    52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174,
    56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288,
    59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441,
    61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886,
    62990, 63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835,
    63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450,
    64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845,
    64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097,
    65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465,
    65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508,
    65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517, 65517, 65518,
    65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525,
    65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529,
    65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531,
    65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533,
    65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65535], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Float helpers reproducing the C++ expressions
# ---------------------------------------------------------------------------------------------

class _LibM:
    """The C library's float functions, as TFLite calls them (std::exp(float) is expf, ...).

    TFLite's table-building code calls libm at Prepare time; its results (not a correctly
    rounded ideal) are what the tables hold, so hwsim calls the same functions. Falls back to
    numpy's float32 functions where no C math library can be loaded.
    """

    def __init__(self):
        lib = None
        for name in (ctypes.util.find_library("m"), "libm.so.6", "libm.dylib", "ucrtbase"):
            if not name:
                continue
            try:
                cand = ctypes.CDLL(name)
                for fn in ("expf", "tanhf", "logf"):
                    f = getattr(cand, fn)
                    f.restype = ctypes.c_float
                    f.argtypes = [ctypes.c_float]
            except (OSError, AttributeError):
                continue
            lib = cand
            break
        self.lib = lib

    def _call(self, name, x, fallback):
        if self.lib is None:
            return F32(fallback(F32(x)))
        return F32(getattr(self.lib, name)(float(F32(x))))

    def expf(self, x):
        return self._call("expf", x, np.exp)

    def tanhf(self, x):
        return self._call("tanhf", x, np.tanh)

    def logf(self, x):
        return self._call("logf", x, np.log)


LIBM = _LibM()


def _f32_to_int32(v) -> int:
    """static_cast<int32_t>(float) as x86-64 executes it (cvttss2si): truncation; NaN and values
    outside int32 give INT32_MIN (the 'integer indefinite' value)."""
    v = float(v)
    if math.isnan(v) or not (-2147483648.0 <= v < 2147483648.0):
        return INT32_MIN
    return int(v)  # truncates toward zero


def _wrap32(v: int) -> int:
    return ((int(v) + (1 << 31)) % (1 << 32)) - (1 << 31)


def checked_log2(x) -> tuple[bool, int]:
    """TFLite CheckedLog2(float x): log2 via float logf, rounded half away; POT if the fraction
    is within 1e-3f."""
    x_log2 = F32(LIBM.logf(x) * (F32(1.0) / LIBM.logf(F32(2.0))))
    rounded = round_half_away_f32(x_log2)
    frac = F32(x_log2 - rounded)
    return bool(abs(frac) < F32(1e-3)), _f32_to_int32(rounded)


# ---------------------------------------------------------------------------------------------
# Common checks
# ---------------------------------------------------------------------------------------------

def _io(op: Op, ctx: LoweringContext, name: str, same_type: bool = True):
    """(input index, output index) after TFLite's NumInputs/NumOutputs/type checks."""
    ins = [i for i in op.inputs if i >= 0]
    if len(ins) != 1 or len(op.outputs) != 1:
        raise ctx.error(op, f"{name} takes 1 input and 1 output")
    x, y = ins[0], op.outputs[0]
    tx, ty = ctx.tensor(x), ctx.tensor(y)
    if ctx.is_const(x):
        raise ctx.error(op, f"{name} with a constant input is not supported")
    if same_type and np.dtype(tx.dtype) != np.dtype(ty.dtype):
        raise ctx.error(op, f"input dtype {tx.dtype} and output dtype {ty.dtype} differ; TFLite "
                            f"requires them to be equal")
    if tuple(tx.shape) != tuple(ty.shape):
        raise ctx.error(op, f"output shape {list(ty.shape)} differs from the input shape "
                            f"{list(tx.shape)}")
    return x, y


def _require_dtype(op, ctx, index, allowed, name):
    dt = np.dtype(ctx.tensor(index).dtype)
    if dt not in [np.dtype(a) for a in allowed]:
        raise ctx.error(op, f"{name} on {dt} tensors is not supported (integer {name} supports "
                            f"{', '.join(np.dtype(a).name for a in allowed)}; float models are "
                            f"not run by the integer engine)")
    return dt


def _require_quant(op, ctx, *indices):
    for i in indices:
        t = ctx.tensor(i)
        if t.quant is None or len(t.quant.scales) == 0:
            raise ctx.error(op, f"tensor {i} '{t.name}' is not quantized")
        if t.quant.per_channel:
            raise ctx.error(op, f"tensor {i} '{t.name}' is quantized per channel; {op.type} "
                                f"needs per-tensor quantization")


def _single_rounding(ctx: LoweringContext) -> int:
    return 1 if ctx.requant_scheme == RequantScheme.tflite_single else 0


def _bits(dt) -> int:
    return 8 * np.dtype(dt).itemsize


def _qm(ctx, op, real, what, x86_shift: bool = True) -> tuple[int, int]:
    """QuantizeMultiplier(double(real)) -> (multiplier, shift) for MultiplyByQuantizedMultiplier.

    A shift >= 32 (real >= 2^31, only with absurd scale ratios) makes TFLite's
    ``x * (1 << left_shift)`` undefined; x86-64 masks the shift count to 5 bits, so the
    compiled code multiplies by 2^(shift - 32). The returned shift is that effective one.
    """
    try:
        m, e = quantize_multiplier(float(real), bool(_single_rounding(ctx)))
    except ValueError as err:
        raise ctx.error(op, f"{what}: {err}") from None
    if x86_shift and e >= 32:
        e &= 31
    return m, e


# ---------------------------------------------------------------------------------------------
# RELU family
# ---------------------------------------------------------------------------------------------

# op -> (act_min, act_max as float, or None for +inf; the dtypes TFLite's Eval accepts)
_RELU_BOUNDS = {
    "RELU": (0.0, None, (np.int8, np.uint8, np.int16)),
    "RELU6": (0.0, 6.0, (np.int8, np.uint8, np.int16)),
    "RELU_N1_TO_1": (-1.0, 1.0, (np.int8, np.uint8)),
    "RELU_0_TO_1": (0.0, 1.0, (np.int8, np.uint8)),
}


@lowering("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1")
def lower_relu(op: Op, ctx: LoweringContext):
    lo_real, hi_real, dtypes = _RELU_BOUNDS[op.type]
    x, y = _io(op, ctx, op.type)
    dt = _require_dtype(op, ctx, x, dtypes, op.type)
    _require_quant(op, ctx, x, y)
    s_in, s_out = F32(ctx.scale(x)), F32(ctx.scale(y))
    zp_in, zp_out = ctx.zero_point(x), ctx.zero_point(y)
    if dt == np.int16 and (zp_in != 0 or zp_out != 0):
        raise ctx.error(op, f"int16 {op.type} needs zero points 0 (input {zp_in}, output "
                            f"{zp_out}), as TFLite requires")
    # ReluPrepare: double real_multiplier = input->params.scale / output->params.scale (float /)
    m, e = _qm(ctx, op, F32(s_in / s_out), "input/output scale ratio")
    qmin, qmax = QRANGE[dt]
    # QuantizedReluX: zp + static_cast<int32>(roundf(act / scale)), clamped to the type range.
    act_min = max(qmin, _wrap32(zp_out + _f32_to_int32(round_half_away_f32(F32(lo_real) / s_out))))
    if hi_real is None:
        act_max = qmax
    else:
        act_max = min(qmax, _wrap32(zp_out + _f32_to_int32(
            round_half_away_f32(F32(hi_real) / s_out))))
    params = ReluParams(in_zp=zp_in, out_zp=zp_out, multiplier=m, shift=e, act_min=act_min,
                        act_max=act_max, out_bits=_bits(dt), out_qmin=qmin, out_qmax=qmax,
                        single_rounding=bool(_single_rounding(ctx)))
    return ctx.layer(op, "relu_x", inputs=[x], params=params,
                     summary=f"{dt.name} M={m} e={e} zp {zp_in}->{zp_out} "
                             f"clamp [{act_min}, {act_max}]")


# ---------------------------------------------------------------------------------------------
# LEAKY_RELU
# ---------------------------------------------------------------------------------------------

@lowering("LEAKY_RELU")
def lower_leaky_relu(op: Op, ctx: LoweringContext):
    x, y = _io(op, ctx, "LEAKY_RELU")
    dt = _require_dtype(op, ctx, x, (np.int8, np.uint8, np.int16), "LEAKY_RELU")
    _require_quant(op, ctx, x, y)
    alpha = F32(op.attrs.get("alpha", 0.0))  # schema default when the options are absent
    s_in, s_out = F32(ctx.scale(x)), F32(ctx.scale(y))
    zp_in, zp_out = ctx.zero_point(x), ctx.zero_point(y)
    if dt == np.int16 and (zp_in != 0 or zp_out != 0):
        raise ctx.error(op, f"int16 LEAKY_RELU needs zero points 0 (input {zp_in}, output "
                            f"{zp_out}), as TFLite requires")
    # LeakyReluPrepare: input->params.scale * params->alpha / output->params.scale, all float.
    m_a, e_a = _qm(ctx, op, F32(F32(s_in * alpha) / s_out), "alpha multiplier")
    m_i, e_i = _qm(ctx, op, F32(s_in / s_out), "identity multiplier")
    qmin, qmax = QRANGE[dt]
    params = LeakyReluParams(in_zp=zp_in, out_zp=zp_out, multiplier_identity=m_i,
                             shift_identity=e_i, multiplier_alpha=m_a, shift_alpha=e_a,
                             out_qmin=qmin, out_qmax=qmax,
                             single_rounding=bool(_single_rounding(ctx)))
    return ctx.layer(op, "leaky_relu", inputs=[x], params=params,
                     summary=f"{dt.name} alpha={float(alpha):g} id M={m_i} e={e_i} "
                             f"alpha M={m_a} e={e_a} zp {zp_in}->{zp_out}")


# ---------------------------------------------------------------------------------------------
# HARD_SWISH
# ---------------------------------------------------------------------------------------------

def downscale_int32_to_int16_multiplier(m32: int) -> int:
    """TFLite DownScaleInt32ToInt16Multiplier: (m + 2^15) >> 16, 32767 near the top."""
    if m32 < 0:
        raise ValueError(f"negative multiplier {m32}")
    if m32 >= INT32_MAX - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


@lowering("HARD_SWISH")
def lower_hard_swish(op: Op, ctx: LoweringContext):
    x, y = _io(op, ctx, "HARD_SWISH")
    dt = _require_dtype(op, ctx, x, (np.int8, np.uint8), "HARD_SWISH")
    _require_quant(op, ctx, x, y)
    s_in, s_out = F32(ctx.scale(x)), F32(ctx.scale(y))
    hires_input_scale = F32(F32(1.0 / 128.0) * s_in)
    reluish_scale = F32(3.0 / 32768.0)
    out_m32, out_exp = _qm(ctx, op, F32(hires_input_scale / s_out), "output multiplier")
    if out_exp > 0:
        raise ctx.error(op, f"output multiplier exponent {out_exp} > 0 (input scale / 128 > "
                            f"output scale); TFLite's HardSwishPrepare rejects this")
    rel_m32, rel_exp = _qm(ctx, op, F32(hires_input_scale / reluish_scale), "reluish multiplier",
                           x86_shift=False)
    if rel_exp > 31:
        raise ctx.error(op, f"input scale {float(s_in)!r} is too large: the reluish multiplier "
                            f"exponent {rel_exp} makes TFLite's SaturatingLeftShift undefined")
    qmin, qmax = QRANGE[dt]
    params = HardSwishParams(
        in_zp=ctx.zero_point(x), out_zp=ctx.zero_point(y),
        output_multiplier_int16=downscale_int32_to_int16_multiplier(out_m32),
        output_exponent=out_exp,
        reluish_multiplier_int16=downscale_int32_to_int16_multiplier(rel_m32),
        reluish_exponent=rel_exp, out_qmin=qmin, out_qmax=qmax)
    return ctx.layer(op, "hard_swish", inputs=[x], params=params,
                     summary=f"{dt.name} out M16={params.output_multiplier_int16} "
                             f"e={out_exp} reluish M16={params.reluish_multiplier_int16} "
                             f"e={rel_exp}")


# ---------------------------------------------------------------------------------------------
# LOGISTIC, TANH
# ---------------------------------------------------------------------------------------------

def _logistic_f32(v):
    # [](float value) { return 1.0f / (1.0f + std::exp(-value)); }
    return F32(F32(1.0) / F32(F32(1.0) + LIBM.expf(-F32(v))))


def _tanh_f32(v):
    return LIBM.tanhf(F32(v))


def lut_populate_8bit(dt, in_scale, in_zp, out_scale, out_zp, transform) -> np.ndarray:
    """TFLite LUTPopulateInt8 (common.h), float32 throughout: the table is indexed by the input
    byte (static_cast<uint8_t> of the value) and holds the output value of that dtype."""
    qmin, qmax = QRANGE[np.dtype(dt)]
    in_scale, out_scale = F32(in_scale), F32(out_scale)
    inverse_scale = F32(F32(1.0) / out_scale)
    table = np.zeros(256, dtype=dt)
    for val in range(qmin, qmax + 1):
        dequantized = F32(in_scale * F32(val - in_zp))
        transformed = transform(dequantized)
        rescaled = round_half_away_f32(F32(transformed * inverse_scale))
        # static_cast<int32_t>(rescaled + output_zero_point), then clamped to the type. The float
        # is out of int32 range only for absurd output scales (undefined behaviour in C++).
        # Observed in TFLite's compiled code: the int8 table saturates (+huge -> 127), the uint8
        # one converts like cvttss2si (+huge -> INT32_MIN -> 0).
        f = F32(rescaled + F32(out_zp))
        if np.dtype(dt) == np.int8 and not math.isnan(float(f)):
            quantized = int(max(min(float(f), float(qmax)), float(qmin)))
        else:
            quantized = max(min(qmax, _f32_to_int32(f)), qmin)
        table[val & 0xFF] = quantized
    return table


def _int16_sigmoid_params(op, ctx, x, y, name, pot_left_shifts):
    """TanhPrepare / SigmoidPrepare for int16: (input_multiplier, input_left_shift)."""
    zp_in, zp_out = ctx.zero_point(x), ctx.zero_point(y)
    if zp_in != 0 or zp_out != 0:
        raise ctx.error(op, f"int16 {name} needs zero points 0 (input {zp_in}, output {zp_out}), "
                            f"as TFLite requires")
    s_in, s_out = F32(ctx.scale(x)), F32(ctx.scale(y))
    pot, log2_in = checked_log2(s_in)
    left_shift = (15 - 3) + log2_in
    multiplier = 0
    if not (pot and left_shift in pot_left_shifts):
        # Rescale the input to 1/(3*4096) as the sigmoid table lookup wants, in double.
        mult = float(s_in) * 4096.0 * 3.0
        left_shift = 0
        while mult <= 32767.0 / 2.0 and left_shift <= 30:
            left_shift += 1
            mult = mult * 2.0
        multiplier = int(mult)  # static_cast<int32_t>: truncation
    out_pot, log2_out = checked_log2(s_out)
    if not out_pot or log2_out != -15:
        raise ctx.error(op, f"int16 {name} needs the output scale 1/32768 (got {float(s_out)!r})")
    if multiplier == 0:  # power-of-two case of the kernel
        multiplier = 3 << left_shift
        left_shift = 0
    return multiplier, left_shift


@lowering("LOGISTIC")
def lower_logistic(op: Op, ctx: LoweringContext):
    x, y = _io(op, ctx, "LOGISTIC")
    dt = _require_dtype(op, ctx, x, (np.int8, np.uint8, np.int16), "LOGISTIC")
    _require_quant(op, ctx, x, y)
    s_out = F32(ctx.scale(y))
    if dt == np.int16:
        if float(s_out) != 1.0 / 32768:
            raise ctx.error(op, f"int16 LOGISTIC needs the output scale 1/32768 exactly (got "
                                f"{float(s_out)!r}), as TFLite requires")
        m, ls = _int16_sigmoid_params(op, ctx, x, y, "LOGISTIC", (0,))
        return ctx.layer(op, "logistic_int16", inputs=[x],
                         params=SigmoidInt16Params(multiplier=m, left_shift=ls,
                                                   sigmoid_table=SIGMOID_TABLE_UINT16),
                         summary=f"int16 sigmoid table, input x{m} >> {ls}")
    if float(s_out) != 1.0 / 256:
        raise ctx.error(op, f"{dt.name} LOGISTIC needs the output scale 1/256 exactly (got "
                            f"{float(s_out)!r}), as TFLite requires")
    return _lut_layer(op, ctx, x, y, dt, _logistic_f32, "1/(1+expf(-x))")


@lowering("TANH")
def lower_tanh(op: Op, ctx: LoweringContext):
    x, y = _io(op, ctx, "TANH")
    dt = _require_dtype(op, ctx, x, (np.int8, np.uint8, np.int16), "TANH")
    _require_quant(op, ctx, x, y)
    if dt == np.int16:
        m, ls = _int16_sigmoid_params(op, ctx, x, y, "TANH", (0, 1))
        return ctx.layer(op, "tanh_int16", inputs=[x],
                         params=SigmoidInt16Params(multiplier=m, left_shift=ls,
                                                   sigmoid_table=SIGMOID_TABLE_UINT16),
                         summary=f"int16 sigmoid table, input x{m} >> {ls}")
    return _lut_layer(op, ctx, x, y, dt, _tanh_f32, "tanhf(x)")


def _lut_layer(op, ctx, x, y, dt, transform, what):
    qmin, qmax = QRANGE[dt]
    table = lut_populate_8bit(dt, ctx.scale(x), ctx.zero_point(x), ctx.scale(y),
                              ctx.zero_point(y), transform)
    return ctx.layer(op, "lut8", inputs=[x],
                     params=LutParams(table=table, out_qmin=qmin, out_qmax=qmax),
                     summary=f"{dt.name} 256-entry table of {what}")


# ---------------------------------------------------------------------------------------------
# SOFTMAX
# ---------------------------------------------------------------------------------------------

def lut_populate_int16_double(transform, input_scale, input_zero_point, output_scale,
                              output_zero_point) -> np.ndarray:
    """TFLite detail::LUTPopulateInt16<double> (common.h): 513 int16 entries, sampled on 512
    steps with a bias that halves the interpolation error at each midpoint."""
    rnd = _round_half_away_float
    input_min = input_scale * float(-32768 - input_zero_point)
    input_max = input_scale * float(32767 - input_zero_point)
    output_min = output_scale * float(-32768 - output_zero_point)
    output_max = output_scale * float(32767 - output_zero_point)
    nb_steps = 512
    step = (input_max - input_min) / nb_steps
    half_step = step / 2
    output_scaling_inv = 65536.0 / (output_max - output_min)
    table_min, table_max = -32768.0, 32767.0
    lut = np.zeros(nb_steps + 1, dtype=np.int16)
    for i in range(nb_steps):
        val = transform(input_min + i * step)
        val_midpoint = transform(input_min + i * step + half_step)
        val_next = transform(input_min + (i + 1) * step)
        sample_val = float(rnd(val * output_scaling_inv))
        midpoint_interp_val = float(rnd((val_next * output_scaling_inv +
                                         float(rnd(val * output_scaling_inv))) / 2))
        midpoint_val = float(rnd(val_midpoint * output_scaling_inv))
        midpoint_err = midpoint_interp_val - midpoint_val
        bias = float(rnd(midpoint_err / 2))
        lut[i] = int(min(max(sample_val - bias, table_min), table_max))
    lut[nb_steps] = int(min(max(float(rnd(transform(input_max) * output_scaling_inv)),
                                table_min), table_max))
    return lut


_INT16_RANGE = 32767 - (-32768)
_SOFTMAX_EXP_LUT = None
_SOFTMAX_RECIP_LUT = None


def softmax_int16_luts() -> tuple[np.ndarray, np.ndarray]:
    """The two constant tables of int16 SoftmaxPrepare: exp(x) on [-10, 0] and 1/(1+x) on
    [0, 1], both with output scale 2/65535 (computed once)."""
    global _SOFTMAX_EXP_LUT, _SOFTMAX_RECIP_LUT
    if _SOFTMAX_EXP_LUT is None:
        _SOFTMAX_EXP_LUT = lut_populate_int16_double(
            math.exp, 10.0 / _INT16_RANGE, 32767, 2.0 / _INT16_RANGE, 0)
        _SOFTMAX_RECIP_LUT = lut_populate_int16_double(
            lambda v: 1.0 / (1.0 + v), 1.0 / _INT16_RANGE, -32768, 2.0 / _INT16_RANGE, 0)
    return _SOFTMAX_EXP_LUT, _SOFTMAX_RECIP_LUT


def _near_f32(a, b, eps) -> bool:
    """TF_LITE_ENSURE_NEAR on floats."""
    a, b, eps = F32(a), F32(b), F32(eps)
    delta = F32(a - b) if a > b else F32(b - a)
    return not delta > eps


@lowering("SOFTMAX")
def lower_softmax(op: Op, ctx: LoweringContext):
    x, y = _io(op, ctx, "SOFTMAX", same_type=False)
    dt_in = _require_dtype(op, ctx, x, (np.int8, np.uint8, np.int16), "SOFTMAX")
    dt_out = np.dtype(ctx.tensor(y).dtype)
    allowed_out = {np.dtype(np.int8): (np.int8, np.int16), np.dtype(np.uint8): (np.uint8, np.int16),
                   np.dtype(np.int16): (np.int16,)}[dt_in]
    if dt_out not in [np.dtype(a) for a in allowed_out]:
        raise ctx.error(op, f"SOFTMAX from {dt_in.name} to {dt_out.name} is not supported "
                            f"(TFLite: {dt_in.name} input gives "
                            f"{' or '.join(np.dtype(a).name for a in allowed_out)})")
    _require_quant(op, ctx, x, y)
    if len(ctx.tensor(x).shape) < 1:
        raise ctx.error(op, "SOFTMAX needs an input of rank >= 1")
    beta = float(F32(op.attrs.get("beta", 0.0)))  # schema default when the options are absent
    s_in, s_out = F32(ctx.scale(x)), F32(ctx.scale(y))
    zp_out = ctx.zero_point(y)
    single = _single_rounding(ctx)
    qmin, qmax = QRANGE[dt_out]
    if dt_in == np.int8 and dt_out == np.int8:
        one_256 = F32(1.0) / F32(256)
        if zp_out != -128 or not _near_f32(s_out, one_256, F32(0.001) * one_256):
            raise ctx.error(op, f"int8 SOFTMAX needs the output scale 1/256 and zero point -128 "
                                f"(got {float(s_out)!r}, {zp_out}), as TFLite requires")
    if dt_in == np.int16:
        if ctx.zero_point(x) != 0 or zp_out != 0:
            raise ctx.error(op, f"int16 SOFTMAX needs zero points 0 (input {ctx.zero_point(x)}, "
                                f"output {zp_out}), as TFLite requires")
        if not _near_f32(s_out, F32(1.0) / F32(32768), F32(0.001) * (F32(1.0) / F32(32768))):
            raise ctx.error(op, f"int16 SOFTMAX needs the output scale 1/32768 (got "
                                f"{float(s_out)!r}), as TFLite requires")
        # input->params.scale * params->beta is a float product; the division is in double.
        real = float(F32(s_in * F32(beta))) / (10.0 / 65535.0)
        m, e = _qm(ctx, op, real, "input scale * beta rescale")
        exp_lut, recip_lut = softmax_int16_luts()
        return ctx.layer(op, "softmax_int16", inputs=[x],
                         params=SoftmaxInt16Params(multiplier=m, left_shift=e, exp_lut=exp_lut,
                                                   one_over_one_plus_x_lut=recip_lut,
                                                   out_qmin=qmin, out_qmax=qmax,
                                                   single_rounding=bool(single)),
                         summary=f"int16 exp/reciprocal LUTs, diff x M={m} e={e}")
    # 8-bit input: reference_ops::Softmax, kScaledDiffIntegerBits = 5.
    try:
        m, left_shift = preprocess_softmax_scaling(beta, float(s_in), 5, bool(single))
    except ValueError as e:
        raise ctx.error(op, f"beta * input scale = {beta * float(s_in)!r} is too small for "
                            f"TFLite's PreprocessSoftmaxScaling ({e})") from None
    diff_min = -calculate_input_radius(5, left_shift)
    # The output quantization is implicit (scale 1/2^bits, zero point at the type minimum):
    # the reference kernel does not read the output tensor's parameters.
    return ctx.layer(op, "softmax_q8", inputs=[x],
                     params=SoftmaxQ8Params(multiplier=m, left_shift=left_shift,
                                            diff_min=diff_min, out_qmin=qmin, out_qmax=qmax,
                                            single_rounding=bool(single)),
                     summary=f"{dt_in.name}->{dt_out.name} gemmlowp fixed point, diff x M={m} "
                             f"<<{left_shift}, diff_min {diff_min}")
