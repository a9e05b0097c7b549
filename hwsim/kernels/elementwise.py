"""Kernels of the pooling / reduction / elementwise family (TFLite reference semantics).

Every integer constant comes from the lowering (``hwsim/lower/elementwise.py``); the inner
loops below only combine them with the primitives of ``hwsim.arith``. ``single_rounding``
selects the TFLite build variant: false = default double rounding, true =
TFLITE_SINGLE_ROUNDING.

Operands that are constant tensors in the graph are carried in ``layer.params.constants``
(by operand position); the other operands arrive as ``inputs``, in operand order.

POOL, MEAN, ADD/SUB and CONCATENATION have ``bind`` steps (hwsim.registry): the engine's
untraced runs call them on preallocated outputs (and MEAN's accumulators), with their argument
lists made once.
"""
from __future__ import annotations

import os

import numba
import numpy as np

from ..arith import (multiply_by_quantized_multiplier_double,
                     multiply_by_quantized_multiplier_single, rounding_divide_by_pot, saturate,
                     wrap_int32)
from ..registry import InputViews, binder, kernel
from . import threads
from .mac_intrinsics import _HAVE_AVX2, _lut_gather8
from .fnptr import ItemsCall, compiled_address, direct, per_thread_count, run_items_par


@numba.njit(cache=True, inline="always")
def _mbqm(x, multiplier, shift, single):
    """TFLite MultiplyByQuantizedMultiplier(int32) of the build variant in force (also what
    MultiplyByQuantizedMultiplierSmallerThanOneExp computes for shift <= 0)."""
    if single:
        return multiply_by_quantized_multiplier_single(x, multiplier, shift)
    return multiply_by_quantized_multiplier_double(x, multiplier, shift)


def operands(layer, inputs, count: int) -> list[np.ndarray]:
    """The ``count`` operands of a layer: runtime inputs merged with its constant operands."""
    consts = layer.params.constants
    it = iter(inputs)
    return [consts[k] if k in consts else next(it) for k in range(count)]


# --------------------------------------------------------------------------------------------
# Pooling: reference_integer_ops::MaxPool / AveragePool (int8, int16)
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _pool2d(x, out, is_avg, filter_h, filter_w, stride_h, stride_w, pad_top, pad_left,
            act_min, act_max, lowest):
    batches, in_h, in_w, depth = x.shape
    _, out_h, out_w, _ = out.shape
    for row in range(batches * out_h):
        b = row // out_h
        oy = row % out_h
        y0 = oy * stride_h - pad_top
        fy0 = max(0, -y0)
        fy1 = min(filter_h, in_h - y0)
        for ox in range(out_w):
            x0 = ox * stride_w - pad_left
            fx0 = max(0, -x0)
            fx1 = min(filter_w, in_w - x0)
            for c in range(depth):
                if is_avg:
                    acc = np.int64(0)
                    count = np.int64(0)
                    for fy in range(fy0, fy1):
                        for fx in range(fx0, fx1):
                            acc += np.int64(x[b, y0 + fy, x0 + fx, c])
                            count += 1
                    acc = wrap_int32(acc)  # TFLite's int32 accumulator
                    # (acc +- count/2) / count with C++ truncating division: round half away
                    half = count // 2
                    if acc > 0:
                        v = (acc + half) // count
                    else:
                        v = -((half - acc) // count)
                else:
                    v = lowest
                    for fy in range(fy0, fy1):
                        for fx in range(fx0, fx1):
                            e = np.int64(x[b, y0 + fy, x0 + fx, c])
                            if e > v:
                                v = e
                if v < act_min:
                    v = act_min
                if v > act_max:
                    v = act_max
                out[b, oy, ox, c] = v


def _pool_args(p, dtype) -> tuple:
    return (bool(p.average), p.filter_h, p.filter_w, p.stride_h, p.stride_w, p.pad_top,
            p.pad_left, np.int64(p.act_min), np.int64(p.act_max),
            np.int64(np.iinfo(dtype).min))


@kernel("pool2d")
def run_pool2d(layer, inputs):
    p = layer.params
    x = np.ascontiguousarray(inputs[0])
    out = np.empty((x.shape[0], p.out_h, p.out_w, x.shape[3]), dtype=x.dtype)
    _pool2d(x, out, *_pool_args(p, x.dtype))
    return [out], None


@binder("pool2d")
def bind_pool2d(layer, data, in_infos, outs):
    p = layer.params
    shape = tuple(int(d) for d in in_infos[0].shape)
    out = outs[0]
    if len(shape) != 4 or out.shape != (shape[0], p.out_h, p.out_w, shape[3]) or \
            out.dtype != np.dtype(in_infos[0].dtype):
        return None
    args = _pool_args(p, out.dtype)

    def call(inputs):
        _pool2d(inputs[0], out, *args)
    call.thunk = lambda inputs: direct(_pool2d, inputs[0], out, *args)  # registry.binder
    return call


# --------------------------------------------------------------------------------------------
# MEAN: reference_ops::QuantizedMeanOrSum (compute_sum = false)
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _mean_rows(x2d, count, in_zp, multiplier, shift, out_zp, qmin, qmax, single, out):
    rows, n = x2d.shape
    for r in range(rows):
        s = np.int64(0)
        for k in range(n):
            s += np.int64(x2d[r, k])
        # temp_sum is an int32 accumulator; shifted_sum = static_cast<int32>(sum - zp * count)
        shifted = wrap_int32(wrap_int32(s) - in_zp * count)
        v = _mbqm(shifted, multiplier, shift, single) + out_zp
        if v < qmin:
            v = qmin
        if v > qmax:
            v = qmax
        out[r] = v


@numba.njit(cache=True)
def _mean_mid(x3, acc, count, in_zp, multiplier, shift, out_zp, qmin, qmax, single, out2):
    """MEAN over the middle axis of x3 [outer, R, inner] (the reduced axes of an NHWC MEAN
    over H and W), in place: the sums of a whole row of ``inner`` lanes at a time, in int32
    lanes that wrap as TFLite's int32 temp_sum does (vectorized), then _mean_rows' ending."""
    outer, r_, inner = x3.shape
    for o in range(outer):
        acc[:] = 0
        for r in range(r_):
            for i in range(inner):
                acc[i] += np.int32(x3[o, r, i])
        for i in range(inner):
            shifted = wrap_int32(np.int64(acc[i]) - in_zp * count)
            v = _mbqm(shifted, multiplier, shift, single) + out_zp
            if v < qmin:
                v = qmin
            if v > qmax:
                v = qmax
            out2[o, i] = v


def _mean_split(p, shape) -> tuple[int, int, int] | None:
    """(outer, R, inner) when the reduced axes are one block of consecutive axes and the kept
    ones keep their order: the input is then [outer, R, inner] as it lies in memory."""
    red, kept = sorted(int(a) for a in p.reduced_axes), [int(a) for a in p.kept_axes]
    if not red or red != list(range(red[0], red[-1] + 1)) or kept != sorted(kept) or \
            sorted(kept + red) != list(range(len(shape))):
        return None
    size = [int(d) for d in shape]
    outer = int(np.prod(size[:red[0]], dtype=np.int64))
    r_ = int(np.prod(size[red[0]:red[-1] + 1], dtype=np.int64))
    inner = int(np.prod(size[red[-1] + 1:], dtype=np.int64))
    return (outer, r_, inner) if r_ == p.count else None


def _mean_args(p) -> tuple:
    return (np.int64(p.count), np.int64(p.in_zp), np.int64(p.multiplier), np.int64(p.shift),
            np.int64(p.out_zp), np.int64(p.qmin), np.int64(p.qmax), p.single_rounding)


@kernel("mean")
def run_mean(layer, inputs):
    p = layer.params
    x = inputs[0]
    split = _mean_split(p, x.shape) if x.size and x.flags.c_contiguous else None
    if split is not None:
        out = np.empty((split[0], split[2]), dtype=x.dtype)
        _mean_mid(x.reshape(split), np.empty(split[2], np.int32), *_mean_args(p), out)
        return [out.reshape(p.out_shape)], None
    kept, reduced = p.kept_axes, p.reduced_axes
    xt = np.ascontiguousarray(np.transpose(x, kept + reduced)) if reduced else x
    rows = int(np.prod([x.shape[a] for a in kept], dtype=np.int64))
    x2d = xt.reshape(rows, p.count)
    out = np.empty(rows, dtype=x.dtype)
    _mean_rows(x2d, np.int64(p.count), np.int64(p.in_zp), np.int64(p.multiplier),
               np.int64(p.shift), np.int64(p.out_zp), np.int64(p.qmin),
               np.int64(p.qmax), p.single_rounding, out)
    return [out.reshape(p.out_shape)], None


@binder("mean")
def bind_mean(layer, data, in_infos, outs):
    p = layer.params
    split = _mean_split(p, in_infos[0].shape) if len(in_infos) == 1 else None
    out = outs[0]
    if split is None or 0 in split or out.size != split[0] * split[2] or \
            out.dtype != np.dtype(in_infos[0].dtype):
        return None
    acc, out2, args = np.empty(split[2], np.int32), out.reshape(split[0], split[2]), _mean_args(p)
    views = InputViews(split)

    def call(inputs):
        _mean_mid(views(inputs)[0], acc, *args, out2)

    def thunk(inputs):
        """call(inputs) for these very inputs, every argument bound (fnptr.direct)."""
        x = inputs[0]
        if type(x) is not np.ndarray or x.dtype != out.dtype or not x.flags.c_contiguous:
            return None
        return direct(_mean_mid, x.reshape(split), acc, *args, out2)
    call.thunk = thunk
    return call


# --------------------------------------------------------------------------------------------
# ADD / SUB / MUL on flat, already broadcast operands
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _add_sub_one(a, b, out, i, is_sub, off1, off2, left_shift, m1, s1, m2, s2, mo, so, out_off,
                 act_min, act_max, single):
    """AddFunc / BroadcastQuantSubSlow on element i: rescale both inputs to a common scale,
    add, rescale."""
    x1 = wrap_int32((off1 + np.int64(a[i])) << left_shift)
    x2 = wrap_int32((off2 + np.int64(b[i])) << left_shift)
    y1 = _mbqm(x1, m1, s1, single)
    y2 = _mbqm(x2, m2, s2, single)
    raw = wrap_int32(y1 - y2) if is_sub else wrap_int32(y1 + y2)
    v = _mbqm(raw, mo, so, single) + out_off
    if v < act_min:
        v = act_min
    if v > act_max:
        v = act_max
    out[i] = v


# Two top-level functions, not one factory: Numba's cache is keyed by qualified name and source
# line, so closures differing only in ``parallel=`` would share one cache entry.
@numba.njit(cache=True)
def _add_sub_general(a, b, out, is_sub, off1, off2, left_shift, m1, s1, m2, s2, mo, so, out_off,
                     act_min, act_max, single):
    for i in range(a.shape[0]):
        _add_sub_one(a, b, out, i, is_sub, off1, off2, left_shift, m1, s1, m2, s2, mo, so,
                     out_off, act_min, act_max, single)


@numba.njit(cache=True, parallel=True)
def _add_sub_general_parallel(a, b, out, is_sub, off1, off2, left_shift, m1, s1, m2, s2, mo, so,
                              out_off, act_min, act_max, single):
    for i in numba.prange(a.shape[0]):
        _add_sub_one(a, b, out, i, is_sub, off1, off2, left_shift, m1, s1, m2, s2, mo, so,
                     out_off, act_min, act_max, single)


#: The table loop gathers 8 elements at a time (vpgatherdd) where the CPU has AVX2.
_GATHER = _HAVE_AVX2


# int8 ADD/SUB by table: the output is a function of the input pair alone (per-tensor
# parameters), so _add_sub_general evaluated once on all 65,536 pairs gives a 64 KiB table that
# is exact by construction; each element is then one load. Tables are cached by parameters.
@numba.njit(cache=True, inline="always")
def _lut_range(a, b, out, lut, lo, hi):
    """out[lo:hi] from the table. Unsigned indices: with a signed range from ``lo`` Numba
    checks every index for a negative (from-the-end) value, and the threaded items' loop took
    1.9x the time of the serial one (25,088 elements: 17.9 against 9.4 us on one thread,
    Sapphire Rapids); unsigned, 10.2 us."""
    i = np.uint64(lo)
    if _GATHER:  # 8 elements a vpgatherdd (AVX2; the table has 3 bytes of slack)
        while i + np.uint64(8) <= np.uint64(hi):
            _lut_gather8(out, i, a, b, lut)
            i += np.uint64(8)
    while i < np.uint64(hi):
        out[i] = lut[np.uint64(((np.int64(a[i]) + 128) << 8) + (np.int64(b[i]) + 128))]
        i += np.uint64(1)


@numba.njit(cache=True)
def _add_sub_lut(a, b, out, lut):
    _lut_range(a, b, out, lut, 0, a.shape[0])


@numba.njit(cache=True)
def _add_sub_lut_items(a, b, out, lut, part):
    """Bands part[1] .. part[2] - 1 of part[0] equal bands of the flat operands: the work
    items fnptr.run_items_par runs on Numba's threads, this serial loop called through its
    address. (A ``prange`` over _lut_range compiled to a loop 2.15x slower per element than
    _add_sub_lut's: 91 against 42 us for 75,264 elements on one thread, Zen 4; so was this
    one while _lut_range indexed with signed integers.)"""
    nb, i0, i1 = part
    n = a.shape[0]
    _lut_range(a, b, out, lut, n * i0 // nb, n * i1 // nb)


def _lut_parallel(a, b, out, lut, nt: int):
    """_add_sub_lut on ``nt`` threads (nt equal bands)."""
    _lut_items_call(a, b, out, lut, nt)((a, b), (a, b, out, lut))


def _lut_items_call(a, b, out, lut, nt: int) -> ItemsCall:
    """The threaded table loop's call for these operands' types, ``nt`` equal bands."""
    part = (np.int64(nt), np.int64(0), np.int64(nt))
    return ItemsCall(compiled_address(_add_sub_lut_items, (a, b, out, lut, part)), part)


_PAIR_A = np.repeat(np.arange(-128, 128, dtype=np.int8), 256)
_PAIR_B = np.tile(np.arange(-128, 128, dtype=np.int8), 256)


class AddSubData:
    """ADD/SUB's prepared data: the general path's integers as the loops take them, and the
    int8 table (made on the first int8 run large enough to use it)."""
    __slots__ = ("args", "table")

    def __init__(self, args: tuple):
        self.args = args
        self.table: np.ndarray | None = None


def prepare_add_sub(layer) -> AddSubData | None:
    p = layer.params
    if p.pot:
        return None
    return AddSubData((np.int64(p.input1_offset), np.int64(p.input2_offset),
                       np.int64(p.left_shift), np.int64(p.input1_multiplier),
                       np.int64(p.input1_shift), np.int64(p.input2_multiplier),
                       np.int64(p.input2_shift), np.int64(p.output_multiplier),
                       np.int64(p.output_shift), np.int64(p.output_offset),
                       np.int64(p.act_min), np.int64(p.act_max)))


def _add_sub_table(is_sub: bool, args: tuple, single: bool) -> np.ndarray:
    """The int8 output of every input pair (a, b), at index (a + 128) * 256 + (b + 128), and 4
    zero bytes after (mac_intrinsics._lut_gather8 reads a dword at each index)."""
    lut = np.zeros(65536 + 4, dtype=np.int8)
    _add_sub_general(_PAIR_A, _PAIR_B, lut[:65536], is_sub, *args, single)
    return lut


PARALLEL_MIN_ELEMENTS = 1 << 15  # below this the thread hand-off costs more than it saves
#: int8 ADD/SUB by table on threads from this many elements (a fork costs ~3.5 us; the table
#: loop ~0.56 ns an element on one thread, Zen 4)
LUT_PARALLEL_MIN_ELEMENTS = 1 << 14
LUT_MIN_ELEMENTS = 4096  # smaller int8 ADDs compute directly (a table costs 65,536 evaluations)
# HWSIM_NO_ADD_TABLES=1 computes every int8 ADD/SUB element directly (tests compare both).
ADD_TABLES = os.environ.get("HWSIM_NO_ADD_TABLES", "") in ("", "0")


@numba.njit(cache=True)
def _add_sub_pot16(a, b, out, is_sub, rshift1, rshift2, act_min, act_max):
    """int16 power-of-two path: RoundingDivideByPOT on one input, saturating add/sub, clamp."""
    for i in range(a.shape[0]):
        x1 = rounding_divide_by_pot(a[i], rshift1)
        x2 = rounding_divide_by_pot(b[i], rshift2)
        v = saturate(x1 - x2 if is_sub else x1 + x2, 16)
        if v < act_min:
            v = act_min
        if v > act_max:
            v = act_max
        out[i] = v


@numba.njit(cache=True)
def _mul(a, b, out, off1, off2, multiplier, shift, out_off, act_min, act_max, single):
    """MulElementwise: MultiplyByQuantizedMultiplier((a + off1) * (b + off2)) + out_off."""
    for i in range(a.shape[0]):
        prod = wrap_int32((off1 + np.int64(a[i])) * (off2 + np.int64(b[i])))
        v = _mbqm(prod, multiplier, shift, single) + out_off
        if v < act_min:
            v = act_min
        if v > act_max:
            v = act_max
        out[i] = v


def _broadcast_flat(a: np.ndarray, b: np.ndarray, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """Both operands expanded to the output shape (numpy broadcasting = TFLite's), flattened."""
    if a.shape != out_shape:
        a = np.broadcast_to(a, out_shape)
    if b.shape != out_shape:
        b = np.broadcast_to(b, out_shape)
    return np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)


@kernel("add_sub", prepare=prepare_add_sub)
def run_add_sub(layer, inputs, data):
    p = layer.params
    a, b = operands(layer, inputs, 2)
    out_shape = tuple(p.out_shape)
    a, b = _broadcast_flat(a, b, out_shape)
    out = np.empty(a.shape[0], dtype=a.dtype)
    if p.pot:
        _add_sub_pot16(a, b, out, p.is_sub, np.int64(p.rshift1), np.int64(p.rshift2),
                       np.int64(p.act_min), np.int64(p.act_max))
    else:
        n = a.shape[0]
        if ADD_TABLES and a.dtype == np.int8 and n >= LUT_MIN_ELEMENTS:
            if data.table is None:
                data.table = _add_sub_table(p.is_sub, data.args, p.single_rounding)
            nt = threads.count() if n >= LUT_PARALLEL_MIN_ELEMENTS else 1
            if nt > 1:
                _lut_parallel(a, b, out, data.table, nt)
            else:
                _add_sub_lut(a, b, out, data.table)
        else:
            fn = _add_sub_general_parallel if n >= PARALLEL_MIN_ELEMENTS else _add_sub_general
            fn(a, b, out, p.is_sub, *data.args, p.single_rounding)
    return [out.reshape(out_shape)], None


@binder("add_sub")
def bind_add_sub(layer, data, in_infos, outs):
    """Operands of the output's shape (no broadcast, no constant): flat loops on the buffers,
    the int8 table made here."""
    p = layer.params
    out = outs[0]
    shape = tuple(int(d) for d in p.out_shape)
    if p.constants or len(in_infos) != 2 or out.shape != shape or out.size == 0 or \
            any(tuple(int(d) for d in i.shape) != shape or np.dtype(i.dtype) != out.dtype
                for i in in_infos):
        return None
    flat, n = out.reshape(-1), out.size
    views = InputViews((n,), (n,))
    if p.pot:
        args = (p.is_sub, np.int64(p.rshift1), np.int64(p.rshift2), np.int64(p.act_min),
                np.int64(p.act_max))

        def call(inputs):
            a, b = views(inputs)
            _add_sub_pot16(a, b, flat, *args)
        return call
    if ADD_TABLES and out.dtype == np.int8 and n >= LUT_MIN_ELEMENTS:
        if data.table is None:
            data.table = _add_sub_table(p.is_sub, data.args, p.single_rounding)
        lut, big = data.table, n >= LUT_PARALLEL_MIN_ELEMENTS
        runs = {}  # per thread count: the threaded call (fnptr.ItemsCall)

        def call(inputs):
            a, b = views(inputs)
            nt = threads.count() if big else 1
            if nt > 1:
                run = runs.get(nt)
                if run is None:
                    run = runs[nt] = _lut_items_call(a, b, flat, lut, nt)
                run((a, b), (a, b, flat, lut))
            else:
                _add_sub_lut(a, b, flat, lut)

        def thunk(inputs):
            """call(inputs) for these very inputs with every argument bound (per thread count
            when threaded: fnptr.per_thread_count)."""
            if any(type(x) is not np.ndarray or x.dtype != np.int8 or not x.flags.c_contiguous
                   for x in inputs):
                return None
            a, b = (x.reshape(-1) for x in inputs)
            one = lambda: direct(_add_sub_lut, a, b, flat, lut)  # noqa: E731
            if not big:
                return one()

            def parallel(nt):
                part = (np.int64(nt), np.int64(0), np.int64(nt))
                return direct(run_items_par, compiled_address(_add_sub_lut_items, (a, b, flat, lut, part)),
                              (a, b, flat, lut), part)
            return per_thread_count(parallel, one)
        call.thunk = thunk
        return call
    fn = _add_sub_general_parallel if n >= PARALLEL_MIN_ELEMENTS else _add_sub_general
    args = (p.is_sub,) + data.args + (p.single_rounding,)

    def call(inputs):
        a, b = views(inputs)
        fn(a, b, flat, *args)
    return call


@kernel("mul")
def run_mul(layer, inputs):
    p = layer.params
    a, b = operands(layer, inputs, 2)
    out_shape = tuple(p.out_shape)
    a, b = _broadcast_flat(a, b, out_shape)
    out = np.empty(a.shape[0], dtype=a.dtype)
    _mul(a, b, out, np.int64(p.input1_offset), np.int64(p.input2_offset),
         np.int64(p.output_multiplier), np.int64(p.output_shift),
         np.int64(p.output_offset), np.int64(p.act_min), np.int64(p.act_max),
         p.single_rounding)
    return [out.reshape(out_shape)], None


# --------------------------------------------------------------------------------------------
# CONCATENATION: reference_ops::Concatenation (a copy; TFLite does not rescale int8/int16)
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _copy_columns(src2d, dst2d, col0):
    rows, cols = src2d.shape
    for r in range(rows):
        for k in range(cols):
            dst2d[r, col0 + k] = src2d[r, k]


@kernel("concat")
def run_concat(layer, inputs):
    p = layer.params
    parts = operands(layer, inputs, p.num_inputs)
    axis = p.axis
    out_shape = tuple(p.out_shape)
    outer = int(np.prod(out_shape[:axis], dtype=np.int64))
    inner_out = int(np.prod(out_shape[axis:], dtype=np.int64))
    out = np.empty((outer, inner_out), dtype=parts[0].dtype)
    col = 0
    for t in parts:
        t2 = np.ascontiguousarray(t).reshape(outer, -1) if t.size else t.reshape(outer, 0)
        _copy_columns(t2, out, col)
        col += t2.shape[1]
    return [out.reshape(out_shape)], None


@binder("concat")
def bind_concat(layer, data, in_infos, outs):
    """Each operand copied into its columns of the output buffer, the constant ones too (the
    buffer holds other tensors between runs)."""
    p = layer.params
    out = outs[0]
    shape, axis = tuple(int(d) for d in p.out_shape), int(p.axis)
    if out.shape != shape or out.size == 0:
        return None
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    out2 = out.reshape(outer, -1)
    infos = iter(in_infos)
    col, cols, runtime, fixed = 0, [], [], []
    for k in range(p.num_inputs):
        if k in p.constants:
            c = np.asarray(p.constants[k])
        else:
            c = next(infos, None)
            if c is None:
                return None
        dims = tuple(int(d) for d in c.shape)
        width = int(np.prod(dims, dtype=np.int64)) // outer if outer else 0
        if np.dtype(c.dtype) != out.dtype or len(dims) != len(shape) or width * outer != \
                int(np.prod(dims, dtype=np.int64)):
            return None
        if k in p.constants:
            fixed.append((np.ascontiguousarray(c).reshape(outer, width), col))
        else:
            cols.append(col)
            runtime.append((outer, width))
        col += width
    if col != out2.shape[1] or next(infos, None) is not None:
        return None
    views = InputViews(*runtime)

    def call(inputs):
        for t2, c0 in fixed:
            _copy_columns(t2, out2, c0)
        for t2, c0 in zip(views(inputs), cols):
            _copy_columns(t2, out2, c0)
    return call
