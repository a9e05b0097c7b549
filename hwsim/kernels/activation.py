"""Kernels of the activation family (lowered by hwsim/lower/activation.py, which documents which
TFLite BUILTIN_REF code path each one reproduces).

All element loops are Numba; they use the integer primitives of hwsim.arith and the fixed-point
functions of hwsim.fixedpoint only. Every constant comes from ``layer.params`` (the families of
hwsim.params); the 8-bit SOFTMAX tabulates its exponentials once, in its prepare step.
"""
from __future__ import annotations

import numba
import numpy as np

from ..arith import (multiply_by_quantized_multiplier_double,
                     multiply_by_quantized_multiplier_single, round_shift_half_up,
                     rounding_divide_by_pot, saturate, wrap, wrap_int32)
from ..fixedpoint import (count_leading_zeros32, exp_on_negative_values, fp_add, fp_mul,
                          get_reciprocal, rescale, rounding_divide_by_pot_int16,
                          saturating_doubling_high_mul_int16,
                          saturating_left_shift_int16, srdhm_int16)
from ..ir import InputError
from ..registry import binder, kernel

_DTYPE_OF_RANGE = {(-128, 127): np.int8, (0, 255): np.uint8, (-32768, 32767): np.int16}


def _out_dtype(p):
    return _DTYPE_OF_RANGE[(int(p.out_qmin), int(p.out_qmax))]


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(-1)


@numba.njit(cache=True, inline="always")
def _mbqm(x, multiplier, shift, single_rounding):
    """TFLite MultiplyByQuantizedMultiplier(int32, int32, int) of the build in force."""
    if single_rounding:
        return multiply_by_quantized_multiplier_single(x, multiplier, shift)
    return multiply_by_quantized_multiplier_double(x, multiplier, shift)


# ---------------------------------------------------------------------------------------------
# RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1: reference_ops::ReluX (ReluParams)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _relu_x(x, out, in_zp, out_zp, multiplier, shift, act_min, act_max, out_bits,
            single_rounding):
    for i in range(x.shape[0]):
        v = out_zp + _mbqm(np.int64(x[i]) - in_zp, multiplier, shift, single_rounding)
        v = wrap_int32(v)  # int32 addition in C++
        if v < act_min:
            v = act_min
        if v > act_max:
            v = act_max
        out[i] = wrap(v, out_bits)  # static_cast<T>


@kernel("relu_x")
def run_relu_x(layer, inputs):
    p = layer.params
    x = inputs[0]
    out = np.empty(x.shape, dtype=_out_dtype(p))
    _relu_x(_flat(x), out.reshape(-1), np.int64(p.in_zp), np.int64(p.out_zp),
            np.int64(p.multiplier), np.int64(p.shift), np.int64(p.act_min),
            np.int64(p.act_max), np.int64(p.out_bits), bool(p.single_rounding))
    return [out], None


# ---------------------------------------------------------------------------------------------
# LEAKY_RELU: reference_ops::QuantizeLeakyRelu
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _leaky_relu(x, out, in_zp, out_zp, m_id, s_id, m_alpha, s_alpha, qmin, qmax,
                single_rounding):
    alpha_negative = m_alpha < 0
    safe_alpha = -m_alpha if alpha_negative else m_alpha
    for i in range(x.shape[0]):
        v = np.int64(x[i]) - in_zp
        if v >= 0:
            r = out_zp + _mbqm(v, m_id, s_id, single_rounding)
        else:
            s = _mbqm(v, safe_alpha, s_alpha, single_rounding)
            r = out_zp - s if alpha_negative else out_zp + s
        r = wrap_int32(r)
        if r < qmin:
            r = qmin
        elif r > qmax:
            r = qmax
        out[i] = r


@kernel("leaky_relu")
def run_leaky_relu(layer, inputs):
    p = layer.params
    x = inputs[0]
    out = np.empty(x.shape, dtype=_out_dtype(p))
    _leaky_relu(_flat(x), out.reshape(-1), np.int64(p.in_zp), np.int64(p.out_zp),
                np.int64(p.multiplier_identity), np.int64(p.shift_identity),
                np.int64(p.multiplier_alpha), np.int64(p.shift_alpha),
                np.int64(p.out_qmin), np.int64(p.out_qmax), bool(p.single_rounding))
    return [out], None


# ---------------------------------------------------------------------------------------------
# HARD_SWISH: reference_ops::HardSwish(HardSwishParams) -- int16 fixed point per element
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _hard_swish(x, out, in_zp, out_zp, out_m16, out_exp, relu_m16, relu_exp, qmin, qmax):
    for i in range(x.shape[0]):
        input_value = wrap(np.int64(x[i]) - in_zp, 16)                 # int16_t
        hires = wrap(input_value * 128, 16)                             # int16_t
        preshift_out = srdhm_int16(hires, out_m16)
        reluish = hires
        if relu_exp > 0:
            reluish = saturating_left_shift_int16(reluish, relu_exp - 1)
        reluish = srdhm_int16(reluish, relu_m16)
        if relu_exp > 0:
            reluish = saturating_left_shift_int16(reluish, 1)
        if relu_exp < 0:
            reluish = rounding_divide_by_pot_int16(reluish, -relu_exp)
        reluish = (reluish + 32768) >> 1                                # [-1,1] -> [0,1]
        pre = saturating_doubling_high_mul_int16(reluish, preshift_out)
        v = rounding_divide_by_pot_int16(pre, -out_exp)
        v = wrap(v + out_zp, 16)                                        # int16_t addition
        if v > qmax:
            v = qmax
        if v < qmin:
            v = qmin
        out[i] = v


@kernel("hard_swish")
def run_hard_swish(layer, inputs):
    p = layer.params
    x = inputs[0]
    out = np.empty(x.shape, dtype=_out_dtype(p))
    _hard_swish(_flat(x), out.reshape(-1), np.int64(p.in_zp), np.int64(p.out_zp),
                np.int64(p.output_multiplier_int16), np.int64(p.output_exponent),
                np.int64(p.reluish_multiplier_int16), np.int64(p.reluish_exponent),
                np.int64(p.out_qmin), np.int64(p.out_qmax))
    return [out], None


# ---------------------------------------------------------------------------------------------
# 8-bit table lookup (int8/uint8 LOGISTIC and TANH: LookupTable with LUTPopulate's table)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _lut8(x_u8, table, out):
    for i in range(x_u8.shape[0]):
        out[i] = table[x_u8[i]]


@kernel("lut8")
def run_lut8(layer, inputs):
    p = layer.params
    x = inputs[0]
    dt = _out_dtype(p)
    out = np.empty(x.shape, dtype=dt)
    # the table has the output dtype and is indexed by the input byte (uint8 view)
    _lut8(_flat(x).view(np.uint8), p.table, out.reshape(-1))
    return [out], None


# ---------------------------------------------------------------------------------------------
# int16 LOGISTIC / TANH: reference_integer_ops::Logistic / Tanh (int16 overloads)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _logistic16(x, out, multiplier, left_shift, table):
    rnd = (np.int64(1) << (left_shift - 1)) if left_shift > 0 else np.int64(0)
    for i in range(x.shape[0]):
        v = wrap_int32(wrap_int32(np.int64(x[i]) * multiplier) + rnd) >> left_shift
        a = wrap_int32(abs(v)) & np.int64(0xFFFFFFFF)                  # uint32_t abs
        uh = a >> 9
        if uh >= 255:
            r = np.int64(0x7FFF << 10)
        else:
            ua = table[uh]
            ub = table[uh + 1]
            ut = a & 0x1FF
            r = ((ua << 9) + ut * (ub - ua)) & np.int64(0xFFFFFFFF)    # uint32_t arithmetic
        if v >= 0:
            r = (r + (1 << 9)) & np.int64(0xFFFFFFFF)
        else:
            r = ((1 << 25) - r + (1 << 9) - 1) & np.int64(0xFFFFFFFF)
        out[i] = wrap(r >> 10, 16)                                      # uint32 -> int16_t


@numba.njit(cache=True)
def _tanh16(x, out, multiplier, left_shift, table):
    rnd = (np.int64(1) << (left_shift - 1)) if left_shift > 0 else np.int64(0)
    for i in range(x.shape[0]):
        v = wrap_int32(wrap_int32(np.int64(x[i]) * multiplier) + rnd) >> left_shift
        a = wrap_int32(abs(v)) & np.int64(0xFFFFFFFF)                  # uint32_t abs
        uh = a >> 8
        if uh >= 255:
            r = np.int64(0xFFFF << 8)
        else:
            ua = table[uh]
            ub = table[uh + 1]
            ut = a & 0xFF
            r = wrap_int32(((ua << 8) + ut * (ub - ua)) & np.int64(0xFFFFFFFF))  # -> int32_t
        if v >= 0:
            r = wrap_int32(r - (1 << 23) + (1 << 7))
        else:
            r = wrap_int32(-r + (1 << 23) + (1 << 7) - 1)
        out[i] = wrap(r >> 8, 16)                                       # int32 >> 8 -> int16_t


@kernel("logistic_int16")
def run_logistic_int16(layer, inputs):
    p = layer.params
    x = inputs[0]
    out = np.empty(x.shape, dtype=np.int16)
    _logistic16(_flat(x), out.reshape(-1), np.int64(p.multiplier),
                np.int64(p.left_shift), p.sigmoid_table)
    return [out], None


@kernel("tanh_int16")
def run_tanh_int16(layer, inputs):
    p = layer.params
    x = inputs[0]
    out = np.empty(x.shape, dtype=np.int16)
    _tanh16(_flat(x), out.reshape(-1), np.int64(p.multiplier), np.int64(p.left_shift),
            p.sigmoid_table)
    return [out], None


# ---------------------------------------------------------------------------------------------
# SOFTMAX, 8-bit input: reference_ops::Softmax (gemmlowp fixed point)
# ---------------------------------------------------------------------------------------------

_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12


@numba.njit(cache=True)
def _softmax_q8_table(multiplier, left_shift, single_rounding, diff_min, exp_table):
    """exp_table[k] = exp(beta * input_scale * (-k)) as reference Softmax computes it for the
    8-bit input difference -k (MultiplyByQuantizedMultiplierGreaterThanOne into Q5.26, then
    exp_on_negative_values -> Q0.31 raw), -1 where -k < diff_min. One compiled function, the
    fixed-point helpers inlined: calling them from Python per entry compiled _mbqm and
    exp_on_negative_values as entry points of their own (more cold-start time)."""
    for k in range(exp_table.shape[0]):
        if -k >= diff_min:
            scaled = _mbqm(np.int64(-k), multiplier, left_shift, single_rounding)
            exp_table[k] = exp_on_negative_values(scaled, np.int64(_SCALED_DIFF_INTEGER_BITS))
        else:
            exp_table[k] = -1


@numba.njit(cache=True)
def _softmax_q8(x, out, exp_table, out_bits_total, out_min, out_max):
    """reference_ops::Softmax over the rows of x (int32 working copy of the 8-bit input).

    exp_table[k] is the Q0.31 exp of the difference -k (k = max_in_row - x in [0, 255]) or -1
    where -k < diff_min (those entries take no part and output the type minimum). Returns the
    number of rows whose output exponent is outside [0, 31] (TFLite's TFLITE_CHECK aborts
    there; those rows are left unwritten).
    """
    rows, depth = x.shape
    bad_rows = 0
    for r in range(rows):
        max_in_row = np.int64(x[r, 0])
        for c in range(1, depth):
            if x[r, c] > max_in_row:
                max_in_row = np.int64(x[r, c])
        sum_of_exps = np.int64(0)
        for c in range(depth):
            e = exp_table[max_in_row - x[r, c]]
            if e >= 0:
                sum_of_exps = fp_add(sum_of_exps, rescale(e, np.int64(0),
                                                          np.int64(_ACCUMULATION_INTEGER_BITS)))
        shifted_scale, num_bits_over_unit = get_reciprocal(sum_of_exps,
                                                          np.int64(_ACCUMULATION_INTEGER_BITS))
        exponent = num_bits_over_unit + 31 - out_bits_total
        if exponent < 0 or exponent > 31:
            bad_rows += 1
            continue
        for c in range(depth):
            e = exp_table[max_in_row - x[r, c]]
            if e >= 0:
                unsat = rounding_divide_by_pot(fp_mul(shifted_scale, e), exponent)
                v = wrap_int32(unsat + out_min)
                if v > out_max:
                    v = out_max
                if v < out_min:
                    v = out_min
                out[r, c] = v
            else:
                out[r, c] = out_min
    return bad_rows


def prepare_softmax_q8(layer) -> np.ndarray:
    """exp of every possible difference x - max_in_row in [-255, 0] (index k for -k), -1 below
    diff_min (excluded from the sum, output the type minimum): the same integers the reference
    kernel computes per element, tabulated once."""
    p = layer.params
    exp_table = np.empty(256, dtype=np.int64)
    _softmax_q8_table(np.int64(p.multiplier), np.int64(p.left_shift), bool(p.single_rounding),
                      np.int64(p.diff_min), exp_table)
    return exp_table


def _softmax_q8_error(layer, bad: int, rows: int, bits: int) -> InputError:
    return InputError(
        f"layer {layer.index} ({layer.op}): in {bad} of {rows} rows the sum of "
        f"exponentials is too large for a {bits}-bit output: it reaches 256 (e.g. more "
        f"than 255 entries equal to the row maximum) and TFLite's reference Softmax fails "
        f"TFLITE_CHECK(0 <= exponent <= 31) there")


@kernel("softmax_q8", prepare=prepare_softmax_q8)
def run_softmax_q8(layer, inputs, exp_table):
    p = layer.params
    x = inputs[0]
    depth = x.shape[-1] if x.ndim else 1
    # int32 working arrays: one compiled signature for every input/output type pair
    x2 = np.ascontiguousarray(x).reshape(-1, depth).astype(np.int32)
    dt = _out_dtype(p)
    out = np.empty(x2.shape, dtype=np.int32)
    bits = 8 * np.dtype(dt).itemsize
    bad = _softmax_q8(x2, out, exp_table, np.int64(bits), np.int64(p.out_qmin),
                      np.int64(p.out_qmax))
    if bad:
        raise _softmax_q8_error(layer, bad, x2.shape[0], bits)
    return [out.astype(dt).reshape(x.shape)], None


@binder("softmax_q8")
def bind_softmax_q8(layer, data, in_infos, outs):
    """The int32 working rows made once; a call is two casting copies and the kernel."""
    p = layer.params
    out = outs[0]
    shape = tuple(int(d) for d in in_infos[0].shape) if len(in_infos) == 1 else None
    if shape is None or out.shape != shape or out.dtype != np.dtype(_out_dtype(p)) or \
            out.size == 0:
        return None
    depth = shape[-1] if shape else 1
    x2 = np.empty((out.size // depth, depth), np.int32)
    o2 = np.empty_like(x2)
    out2 = out.reshape(x2.shape)
    bits = 8 * out.dtype.itemsize
    args = (data, np.int64(bits), np.int64(p.out_qmin), np.int64(p.out_qmax))

    def call(inputs):
        np.copyto(x2, inputs[0].reshape(x2.shape))
        bad = _softmax_q8(x2, o2, *args)
        if bad:
            raise _softmax_q8_error(layer, bad, x2.shape[0], bits)
        np.copyto(out2, o2, casting="unsafe")  # within [out_qmin, out_qmax]: exact
    return call


# ---------------------------------------------------------------------------------------------
# SOFTMAX, int16: reference_ops::SoftmaxInt16 (exp and 1/(1+x) tables with interpolation)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _lut_lookup_int16(value, lut):
    """TFLite LUTLookup(int16 value, 513-entry int16 LUT): 9-bit index, 7-bit linear
    interpolation rounded half up ((slope * offset + 64) >> 7)."""
    index = 256 + (value >> 7)
    offset = value & 0x7F
    base = np.int64(lut[index])
    slope = wrap(np.int64(lut[index + 1]) - base, 16)
    delta = round_shift_half_up(slope * offset, 7)
    return wrap(base + delta, 16)


@numba.njit(cache=True)
def _softmax_int16(x, out, multiplier, left_shift, exp_lut, recip_lut, single_rounding):
    rows, depth = x.shape
    for r in range(rows):
        max_in_row = np.int64(x[r, 0])
        for c in range(1, depth):
            if x[r, c] > max_in_row:
                max_in_row = np.int64(x[r, c])
        sum_of_exps = np.int64(0)
        for c in range(depth):
            diff = np.int64(x[r, c]) - max_in_row
            scaled = _mbqm(diff, multiplier, left_shift, single_rounding)
            sym = saturate(scaled + 32767, 16)
            e = _lut_lookup_int16(sym, exp_lut)
            out[r, c] = e                           # exp results cached in the output row
            sum_of_exps += e
        sum_of_exps = wrap_int32(sum_of_exps)
        headroom_plus_one = count_leading_zeros32(sum_of_exps)
        shifted_sum = round_shift_half_up(sum_of_exps << (headroom_plus_one - 1), 14)
        sym_shifted_sum = saturate(shifted_sum - ((1 << 15) + (1 << 16)), 16)
        recip = _lut_lookup_int16(sym_shifted_sum, recip_lut)
        right_shift = 31 - headroom_plus_one
        for c in range(depth):
            v = wrap_int32(round_shift_half_up(np.int64(out[r, c]) * recip, right_shift))
            if v < 0:
                v = 0
            elif v > 32767:
                v = 32767
            out[r, c] = v


@kernel("softmax_int16")
def run_softmax_int16(layer, inputs):
    p = layer.params
    x = inputs[0]
    depth = x.shape[-1] if x.ndim else 1
    x2 = np.ascontiguousarray(x).reshape(-1, depth)
    out = np.empty(x2.shape, dtype=np.int16)
    _softmax_int16(x2, out, np.int64(p.multiplier), np.int64(p.left_shift),
                   p.exp_lut, p.one_over_one_plus_x_lut, bool(p.single_rounding))
    return [out.reshape(x.shape)], None
