"""Exact MAC kernels: accumulators of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED.

The integers returned are those of TFLite's reference integer kernels *before*
requantization::

    acc[n, oy, ox, oc] = bias[oc] + sum over taps inside the input of (x + input_offset) * w

Taps that fall into the padding are skipped (they contribute nothing).  int8
activations give int32 accumulators (wrapping modulo 2**32 exactly like the
reference, should a sum ever overflow), int16 activations (16x8 mode) give
int64 accumulators.

Two implementations of each operation:

* ``*_acc_reference`` - plain njit loops with int64 accumulation; obviously right.
* the public ``*_acc`` functions - the fast path.  The work is split into items (a
  band of output rows of one image x a range of 16-channel blocks).  An item first
  converts the input rows its band needs into a small int16 buffer holding
  ``x + input_offset``, with the padding written as 0, so skipped taps contribute
  nothing without any special case (depthwise: channels expanded by the depth
  multiplier and padded with zeros to a multiple of 16).  The products are done
  with ``vpmaddwd`` (int16 x int16 pairs -> int32 sums) through small LLVM
  intrinsics:

  - conv / FC: implicit GEMM, no im2col.  A register tile of 4 output pixels x 16
    filters (8 accumulators) broadcasts a pair of buffer values and multiply-adds it
    with 16 filters' packed weight pairs.  With groups == 1 and dilation_w == 1 a
    kernel row's KW*Cin values are one contiguous run in both the buffer and the
    packed weights.  An odd run's last pair reads one value past the run, whose
    weight is 0.  Last blocks of <= 8 filters use a 4 x 8 tile, leftover pixels a
    1 x 16 one.
  - depthwise: the two taps of a tap pair are interleaved (vpunpck{l,h}wd) so one
    vpmaddwd sums both taps of 8 channels; two output pixels share each weight load.

  ``x + input_offset`` lies in [-255, 255] and ``w`` in [-128, 127], so every pair
  sum is exact in int32.  In 16x8 mode a pair sum is at most 2**23 in magnitude, so
  int32 partial sums over at most 255 pairs are exact; they are added into the int64
  result.

Layers with fewer than ``PARALLEL_MIN_MACS`` MACs (or NUMBA_NUM_THREADS=1) run on the
calling thread; larger ones on numba's thread pool (prange over items).

The code is split by concern: this module holds the public entry points (argument checks,
the choice of fast or reference path, serial or parallel) and the reference kernels;
hwsim.kernels.mac_tiles the fast tile kernels; hwsim.kernels.mac_vnni the vpdpbusd ones (VNNI
CPUs, conv / FC) and hwsim.kernels.depthwise_zmm the 32-channel depthwise (AVX-512), chosen
here at run time (``mac_path``, ``dw_path``); hwsim.kernels.mac_intrinsics the LLVM
intrinsics they are built from (and the AVX2 / portable choice); hwsim.kernels.mac_pack the
weight packing. With ``requant=`` the kernels requantize in registers (int8 outputs).

Weights can be packed once with the ``pack_*`` functions (the MAC kernels' prepare step does,
once per layer and Network: hwsim.kernels.conv); the public functions accept either the raw
TFLite weight array or the packed form.

The fast path is used whenever it is exact; the only cases handed to the reference
path are 16x8 with a non-zero input offset (TFLite requires a zero point of 0
there) and a depthwise kernel with more than 510 taps in 16x8 mode.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from numba import njit

from ..arith import magnitude_form_exact
from .depthwise_vnni import _dwq_serial, dwq_pairs, dwq_requant, dwq_serial_address, dwq_weights
from .depthwise_zmm import (_dw3_serial, _dw32_par, _dw32_serial, dw3_part, dw3_requant, dw3_serial_address,
                            dw3_weights)
from . import threads
from .fnptr import ItemsCall, RepeatCall, compiled_address, direct, per_thread_count, run_items_par
from .mac_intrinsics import _HAVE_AVX2, HOST_CPU_NAME, HOST_HAS_AVX512BW, HOST_HAS_VNNI, HOST_HAS_VNNI512
from .mac_intrinsics import NJIT_OPTIONS as _NJ
from .mac_pack import (PackedConvWeights, PackedDepthwiseWeights, _check_int8_weights, aligned,
                       pack_conv2d_weights, pack_depthwise_weights, pack_fully_connected_weights,
                       depthwise_weights3v, depthwise_weights32, quad_weights, unpack_conv2d_weights,
                       unpack_depthwise_weights)
from .mac_tiles import _conv_serial, _dw_serial, _plan, conv_part, dw_part
from .mac_vnni import _conv_q_serial, _conv_z_serial, conv_q_part

__all__ = [
    "conv2d_acc",
    "conv2d_acc_reference",
    "depthwise_conv2d_acc",
    "depthwise_conv2d_acc_reference",
    "fully_connected_acc",
    "fully_connected_acc_reference",
    "pack_conv2d_weights",
    "pack_depthwise_weights",
    "pack_fully_connected_weights",
    "PackedConvWeights",
    "PackedDepthwiseWeights",
    "FusedRequant",
    "can_fuse",
    "fused_requant",
    "mac_path",
    "dw_path",
    "conv2d_fused_call",
    "depthwise_fused_call",
]

# ---------------------------------------------------------------------------
# Reference kernels (plain loops, int64 accumulation)
# ---------------------------------------------------------------------------


@njit(**_NJ)
def _conv_ref_kernel(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, groups, out):
    N, H, W, _ = x.shape
    Cout, KH, KW, Cg = w.shape
    fpg = Cout // groups
    for n in range(N):
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(Cout):
                    c0 = (oc // fpg) * Cg
                    s = np.int64(bias[oc])
                    for ky in range(KH):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= H:
                            continue
                        for kx in range(KW):
                            ix = ox * sw - pl + kx * dw
                            if ix < 0 or ix >= W:
                                continue
                            for c in range(Cg):
                                s += (np.int64(x[n, iy, ix, c0 + c]) + off) * np.int64(w[oc, ky, kx, c])
                    out[n, oy, ox, oc] = s


@njit(**_NJ)
def _dw_ref_kernel(x, w, bias, off, sh, sw, dh, dw, pt, pl, oh, ow, dm, out):
    N, H, W, C = x.shape
    _, KH, KW, Cout = w.shape
    for n in range(N):
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(Cout):
                    ic = oc // dm
                    s = np.int64(bias[oc])
                    for ky in range(KH):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= H:
                            continue
                        for kx in range(KW):
                            ix = ox * sw - pl + kx * dw
                            if ix < 0 or ix >= W:
                                continue
                            s += (np.int64(x[n, iy, ix, ic]) + off) * np.int64(w[0, ky, kx, oc])
                    out[n, oy, ox, oc] = s


@njit(**_NJ)
def _fc_ref_kernel(x, w, bias, off, out):
    B, K = x.shape
    Cout = w.shape[0]
    for b in range(B):
        for o in range(Cout):
            s = np.int64(bias[o])
            for k in range(K):
                s += (np.int64(x[b, k]) + off) * np.int64(w[o, k])
            out[b, o] = s



#: Fused 3x3 stride-1 layers on the 16-channel depthwise kernel (the avx2 path) pair their
#: taps vertically (mac_pack.depthwise_weights3v; mac_tiles._dw_serial's ``wv``).
USE_DW3V = True
_NO_WV = np.zeros(0, np.int16)

#: Layers with fewer MACs than this run on the calling thread only (forking costs more).
PARALLEL_MIN_MACS = 1 << 20


class FusedRequant(NamedTuple):
    """tflite_double requantization to int8 done inside the tile kernels (see ``fused_requant``)."""
    cp: np.ndarray  # int32 [6, channels + 32]: split_shifts rows, zero padded; the fast flag
    zp: int
    lo: int
    hi: int
    #: int64 constants of the one-step rounding, the zero point folded in (depthwise_zmm.
    #: dw3_requant) when the layer is ``fast``, its right shifts at most 23 and zp, lo, hi
    #: within int8's range; else None. The zmm kernels take it.
    q64: np.ndarray | None = None
    #: The same rounding's constants for logical shifts (avx2_requant: no vpsravq needed), when
    #: q64 exists and every right shift is 1 or more; else None. The vpmaddwd conv and 16-channel
    #: depthwise kernels take it (USE_QL).
    ql: np.ndarray | None = None
    #: The sign-magnitude form's constants (sym_requant), when the layer has no left shift, every
    #: right shift is 1 or more and no channel's multiplier admits a tie that form misses;
    #: else None. Where it exists the vpmaddwd and vnni256 conv and the 16-channel depthwise
    #: kernels take it rather than ql (USE_QS).
    qs: np.ndarray | None = None


def fused_requant(cp: np.ndarray, out_zp: int, act_min: int, act_max: int) -> FusedRequant | None:
    """The constants of a requantization fused into the tile kernels, or None where the fused
    form cannot express it (then the caller requantizes the accumulators separately).

    ``cp``: the int32 [5, channels] rows of ``requant.split_shifts`` (usable when its
    ``vec_ok``); padded here with 32 zero columns so that every lane block read by a tile (a
    block of 32 channels may start up to 31 channels before the end) stays inside the array,
    and given a sixth row, the ``fast`` flag in every column: 1 when no channel has a left
    shift or an INT32_MIN multiplier (the kernels then skip those steps: mac_intrinsics.
    _zrq_store_c).
    """
    if not all(-(1 << 31) <= int(v) < (1 << 31) for v in (out_zp, act_min, act_max)):
        return None
    cpp = np.zeros((6, cp.shape[1] + 32), np.int32)
    cpp[:5, :cp.shape[1]] = cp
    cpp[5] = int(bool((cp[1] == 0).all() and (cp[0] != np.int32(-(1 << 31))).all()))
    q64 = None
    if all(-128 <= int(v) <= 127 for v in (act_min, act_max)):
        q64 = dw3_requant(cpp, cp.shape[1], int(out_zp))
    ql = None if q64 is None else avx2_requant(q64, cp.shape[1])
    qs = None if q64 is None else sym_requant(cp, cp.shape[1])
    return FusedRequant(aligned(cpp), int(out_zp), int(act_min), int(act_max), q64, ql, qs)


def sym_requant(cp: np.ndarray, channels: int) -> np.ndarray | None:
    """The constants of mac_intrinsics._rq64s_dwords (arith.
    multiply_by_quantized_multiplier_double_magnitude: sign(v) floor((|v| m + 2^30 + 2^(e+30))
    / 2^(31+e))) for the split_shifts rows ``cp`` of ``channels`` channels, as uint64
    [16-channel block][m, 2^30 + 2^(e+30), shift][even lanes, odd lanes][8]: lane j of the even
    half is channel 16 b + 2 j, of the odd half 16 b + 2 j + 1; the shift is 31 + e for the
    even lanes and 31 + e - 32 for the odd (the high dword keeps the quotient). None unless
    every channel has no left shift, a multiplier in [0, 2^31), a right shift e in 1..31 and
    ``arith.magnitude_form_exact`` (every int8 output the same as tflite_double's: the form
    misses only ties whose results saturate). Channels past ``channels``: m = 0, shift 32
    (quotient 0). The zero point is not folded in (the store adds it)."""
    m = cp[0, :channels].astype(np.int64)
    ls, e = cp[1, :channels], cp[2, :channels].astype(np.int64)
    if (ls != 0).any() or (m < 0).any() or (e < 1).any() or (e > 31).any():
        return None
    if not all(magnitude_form_exact(int(a), int(b)) for a, b in zip(m, e)):
        return None
    C16 = (channels + 15) // 16 * 16
    mm = np.zeros(C16, np.uint64)
    kk = np.zeros(C16, np.uint64)
    ss = np.full(C16, 32, np.uint64)
    mm[:channels] = m
    kk[:channels] = (np.int64(1) << 30) + (np.int64(1) << (e + 30))
    ss[:channels] = 31 + e
    k = np.stack([mm, kk, ss]).reshape(3, C16 // 16, 8, 2)  # [const][block][j][parity]
    k[2, :, :, 1] -= np.uint64(32)
    return aligned(np.ascontiguousarray(k.transpose(1, 0, 3, 2)).reshape(C16 // 16, 48))


def avx2_requant(q64: np.ndarray, channels: int) -> np.ndarray | None:
    """dw3_requant's constants (``q64``, int64 [block of 16][m, k, 2^31, s][even, odd][8]) in the
    form mac_intrinsics._rq64l_dwords reads, as uint64 (the type selects that code): m; k + 2^63
    (so that t + 2^63 >= 0 takes a logical shift); in the third slot the 16 dwords 2^(63 - s)
    mod 2^32 in lane order (even half; the odd half 0); s for the even lanes and s - 32 for the
    odd. None when a channel's right shift e is 0 (s = 31: the odd lanes' s - 32 and the
    correction 2^31 do not apply); channels past ``channels`` (multiplier 0) get s = 32."""
    q = q64.reshape(-1, 4, 2, 8)
    blocks = q.shape[0]
    ch = (np.arange(blocks)[:, None, None] * 16 + 2 * np.arange(8)[None, None, :] + np.arange(2)[None, :, None])
    real = ch < channels
    sh = q[:, 3].copy()
    if (sh[real] < 32).any():
        return None
    sh[~real] = 32
    out = np.zeros((blocks, 4, 2, 8), np.uint64)
    out[:, 0] = q[:, 0].astype(np.uint64)
    out[:, 1] = q[:, 1].astype(np.uint64) + np.uint64(1 << 63)
    lanes = sh.transpose(0, 2, 1).reshape(blocks, 16)  # s of channel 16 b + i, lane order
    bsub = (np.uint64(1) << (63 - lanes).astype(np.uint64)) & np.uint64(0xFFFFFFFF)
    out[:, 2, 0] = bsub.astype(np.uint32).view(np.uint64).reshape(blocks, 8)
    out[:, 3, 0] = sh[:, 0]
    out[:, 3, 1] = sh[:, 1] - 32
    return aligned(out.reshape(-1))


# Stand-ins of the int8 output when the kernels store accumulators and of the int32 output when
# they store int8. The requantization constants are None when not fused: the kernels test
# ``cp is not None``, which Numba decides from the argument's type before compiling, so a run
# compiles only the stores it uses (a fused run: the requantizing ones).
_NO_OUT8 = np.zeros((0, 0, 0, 0), np.int8)
_NO_OUT32 = np.zeros((0, 0, 0, 0), np.int32)


def _fused_args(fq, out8):
    if fq is None:
        return (False, None, np.int64(0), np.int64(0), np.int64(0), _NO_OUT8)
    return (True, fq.cp, np.int64(fq.zp), np.int64(fq.lo), np.int64(fq.hi), out8)


def _conv_fused_args(plan, requant, out8):
    """_fused_args for a _conv_plan: the 512-bit VNNI kernels take the one-step rounding's
    constants (FusedRequant.q64), the vpmaddwd kernel their logical-shift form (FusedRequant.ql,
    USE_QL), when the layer has them and its filter blocks of 16 start at multiples of 16 (one
    group, or groups of a multiple of 16 filters)."""
    fz = _fused_args(requant, out8)
    kernels, head = plan[0], plan[4]
    if requant is None:
        return fz
    if kernels[1] is _conv_z_serial and requant.q64 is not None and (head[4] == 1 or head[5] % 16 == 0):
        fz = (fz[0], requant.q64) + fz[2:]
    elif kernels[1] is _conv_serial and (head[3] == 1 or head[4] % 16 == 0):
        fz = (fz[0], _avx2_consts(requant)) + fz[2:]
    elif kernels[1] is _conv_q_serial and (head[4] == 1 or head[5] % 16 == 0):
        fz = (fz[0], _avx2_consts(requant)) + fz[2:]
    return fz


def _avx2_consts(requant):
    """The requantization constants the 256-bit kernels take for ``requant``: the
    sign-magnitude form's (FusedRequant.qs, USE_QS), else the logical-shift form's (ql,
    USE_QL), else the general int32 rows (cp)."""
    if USE_QS and requant.qs is not None:
        return requant.qs
    if USE_QL and requant.ql is not None:
        return requant.ql
    return requant.cp


def _off(name):
    return os.environ.get(name, "") not in ("", "0")


#: CONV_2D / FULLY_CONNECTED of int8 activations run on the VNNI kernels (hwsim.kernels.mac_vnni)
#: where the CPU has VNNI. HWSIM_NO_VNNI=1 (or HWSIM_PORTABLE_MAC=1) keeps the vpmaddwd kernels;
#: the tests also switch this flag to compare the paths.
USE_VNNI = HOST_HAS_VNNI and not _off("HWSIM_NO_VNNI") and not _off("HWSIM_PORTABLE_MAC")
#: With VNNI: the 512-bit tiles (AVX512-VNNI) rather than the 256-bit ones (which CPUs with only
#: AVX-VNNI take); HWSIM_NO_VNNI512=1 keeps the 256-bit ones.
USE_VNNI512 = HOST_HAS_VNNI512 and not _off("HWSIM_NO_VNNI512")
#: Fused int8 DEPTHWISE_CONV_2D on 32-channel zmm blocks (hwsim.kernels.depthwise_zmm) where the
#: CPU has AVX512-BW and the layer has at least 32 channels; HWSIM_NO_DW512=1 (or
#: HWSIM_PORTABLE_MAC=1) keeps the 16-channel kernel.
USE_DW512 = HOST_HAS_AVX512BW and not _off("HWSIM_NO_DW512") and not _off("HWSIM_PORTABLE_MAC")
#: Of those, 3x3 layers with dilation 1, depth multiplier 1 and an int8 zero point read the int8
#: input in place (depthwise_zmm._dw3_*); HWSIM_NO_DW3=1 keeps the 32-channel band kernel.
USE_DW3 = not _off("HWSIM_NO_DW3")
#: Of those, on CPUs with AVX512-VNNI: vpdpbusd on column quads (hwsim.kernels.depthwise_vnni);
#: HWSIM_NO_DWQ=1 (or HWSIM_NO_VNNI512=1) keeps depthwise_zmm's vpmaddwd kernel.
USE_DWQ = USE_VNNI512 and not _off("HWSIM_NO_DWQ")


def mac_path() -> str:
    """The kernel path CONV_2D / FULLY_CONNECTED take on this CPU: "vnni512" (vpdpbusd on zmm,
    AVX512-VNNI), "vnni256" (vpdpbusd on ymm: AVX512-VNNI + VL, or AVX-VNNI), "avx2" (vpmaddwd)
    or "portable" (a multiply-add LLVM lowers for any CPU). DEPTHWISE_CONV_2D and
    int16 (16x8) layers take "avx2" or "portable"."""
    if USE_VNNI:
        return "vnni512" if USE_VNNI512 else "vnni256"
    return "avx2" if _HAVE_AVX2 else "portable"


def dw_path() -> str:
    """The kernel path DEPTHWISE_CONV_2D takes on this CPU: "vnni512" (as "avx512", but the 3x3
    layers ``dwq_takes`` admits take vpdpbusd: depthwise_vnni), "avx512" (the fused int8 form of layers with >= 32 channels; accumulators
    take avx2), "avx2" or "portable"."""
    if USE_DW512:
        return "vnni512" if USE_DWQ and USE_DW3 else "avx512"
    return "avx2" if _HAVE_AVX2 else "portable"


_PART_I64 = np.int64(0)
_PART_A64 = np.empty(0, np.int64)
_PART_A32 = np.empty(0, np.int32)


def conv_serial_address(serial, args, nt) -> int:
    """The address a conv tile kernel's parallel driver calls for ``args`` (as _conv_run's,
    without the thread count ``nt``): the serial kernel's overload for them and the ``part``
    of one work item (fnptr.run_items_par)."""
    i, a, b = _PART_I64, _PART_A64, _PART_A32
    part = (i, i, a, a, a, a, b, i, i, i, i) if serial is _conv_serial else (i, i, a, a, a, b, i, i, i, i)
    return compiled_address(serial, (*args[:-6], nt, *args[-6:], part))


#: The vpmaddwd conv and 16-channel depthwise kernels requantize with the logical-shift form of
#: the one-step rounding (FusedRequant.ql, mac_intrinsics._rq64l_dwords) where a layer has it.
USE_QL = True
#: ... and with its sign-magnitude form (FusedRequant.qs, mac_intrinsics._rq64s_dwords), 10
#: instructions per 8 lanes against 15, where a layer has that.
USE_QS = True
#: The vpmaddwd conv kernel's items on threads: mac_tiles._plan's rows-first split (as the VNNI
#: kernels' plan_rows) rather than groups of filter blocks first (False), which filled the same
#: band once per group.
CONV_ROWS_SPLIT = True


def conv_serial_part(serial, args, nt=1):
    """The ``part`` of every work item of a conv tile kernel for ``args`` (as _conv_run's),
    split for ``nt`` threads: its setup (mac_vnni.conv_q_part / mac_tiles.conv_part), which
    depends on the weights and the geometry only, so a layer's call plan makes it once."""
    x = args[0]
    if serial is _conv_serial:
        N, oh, ow, nblocks = x.shape[0], args[15], args[16], args[4] * args[6]
        nb, ng = _plan.py_func(N, oh, ow, nblocks, nt, 256, CONV_ROWS_SPLIT)
        return conv_part(N, x.shape[3], *args[4:9], *args[10:13], oh, ow, args[2], args[18],
                         np.int64(nb), np.int64(ng))
    return conv_q_part(x.shape[0], x.shape[3], *args[5:10], *args[11:14], args[16], args[17], args[3], args[2],
                       args[4], nt)


def _conv_run(macs, *args, kernels=(run_items_par, _conv_serial)):
    """Run a conv tile kernel with ``args`` (the thread count goes before the six fused
    arguments): its work items on the threads (fnptr.run_items_par) for big layers when there
    are threads, else all of them on this one."""
    par, serial = kernels
    if macs >= PARALLEL_MIN_MACS:
        nt = threads.count()
        if nt > 1:
            par(conv_serial_address(serial, args, nt), (*args[:-6], nt, *args[-6:]),
                conv_serial_part(serial, args, nt))
            return
    serial(*args[:-6], 1, *args[-6:], conv_serial_part(serial, args))


def _vnni_kernels():
    return (run_items_par, _conv_z_serial) if USE_VNNI512 else (run_items_par, _conv_q_serial)


def _vnni_ok(wide, off):
    # the band buffer holds x + 128 as uint8 and the padding as 128 - off: must be a byte
    return USE_VNNI and not wide and 0 <= 128 - off <= 255


def can_fuse(x: np.ndarray, input_offset: int) -> bool:
    """Whether the fast kernels take ``x`` with this offset and can requantize in registers
    (int8 activations, int32 accumulators, an offset the int16 buffers hold)."""
    return isinstance(x, np.ndarray) and x.dtype == np.int8 and _offset_ok(False, int(input_offset))


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def _check_x(x, ndim, what):
    if not isinstance(x, np.ndarray) or x.ndim != ndim:
        raise ValueError(f"{what}: input must be a {ndim}-d numpy array")
    if x.dtype == np.int8:
        return False
    if x.dtype == np.int16:
        return True
    raise ValueError(f"{what}: input must be int8 or int16, got {x.dtype}")


def _bias_array(bias, cout, wide, what):
    dt = np.int64 if wide else np.int32
    if bias is None:
        return np.zeros(cout, dt)
    if type(bias) is np.ndarray and bias.dtype == dt and bias.shape == (cout,):
        return _req(bias)
    b = np.asarray(bias)
    if b.shape != (cout,) or b.dtype.kind not in "iu":
        raise ValueError(f"{what}: bias must be an integer array of shape ({cout},)")
    if b.dtype != dt:
        if not wide and b.size and (b.min() < -(2**31) or b.max() >= 2**31):
            raise ValueError(f"{what}: bias does not fit in int32")
        b = b.astype(dt)
    return _req(b)


def _req(a):
    """C-contiguous, aligned, writeable (one compiled signature per dtype)."""
    f = a.flags
    if f.c_contiguous and f.writeable and f.aligned:
        return a
    return np.array(a, order="C")


def _check_geometry(what, sh, sw, dh, dw, oh, ow):
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(f"{what}: strides and dilations must be >= 1")
    if oh < 0 or ow < 0:
        raise ValueError(f"{what}: negative output size")


def _outputs(requant, x, off, shape, wide, what):
    """(int32/int64 output or a stand-in, int8 output or a stand-in, the fused arguments)."""
    if requant is None:
        return np.empty(shape, np.int64 if wide else np.int32), _NO_OUT8, _fused_args(None, None)
    if not can_fuse(x, off):
        raise ValueError(f"{what}: a fused requantization needs int8 input and an int16-range offset")
    out8 = np.empty(shape, np.int8)
    return _NO_OUT32, out8, _fused_args(requant, out8)


def _offset_ok(wide, off):
    # int8: x + off must fit int16 (always true for |off| <= 32767 - 128); 16x8: needs off == 0
    return off == 0 if wide else -32000 <= off <= 32000


def conv2d_acc(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
               pad_top, pad_left, out_h, out_w, groups=1, requant=None):
    """Exact CONV_2D accumulators (fast path).  ``w``: int8 OHWI array or ``pack_conv2d_weights(w, groups)``.

    Returns int32 [N, out_h, out_w, Cout] for int8 ``x``, int64 for int16 ``x``.
    With ``requant`` (a :class:`FusedRequant`; only where ``can_fuse(x, input_offset)``):
    the int8 output, requantized in the tile kernels' registers, instead of the accumulators.
    """
    wide = _check_x(x, 4, "conv2d")
    if isinstance(w, PackedConvWeights):
        pk = w
        if pk.groups != groups:
            raise ValueError(f"conv2d: weights were packed for groups={pk.groups}, not {groups}")
    else:
        pk = pack_conv2d_weights(w, groups)
    Cout, KH, KW, Cg = pk.shape
    N, H, W, C = x.shape
    if C != Cg * groups:
        raise ValueError(f"conv2d: input has {C} channels, weights expect {Cg} x {groups} groups")
    sh, sw, dh, dw = int(stride_h), int(stride_w), int(dilation_h), int(dilation_w)
    pt, pl, oh, ow = int(pad_top), int(pad_left), int(out_h), int(out_w)
    off = int(input_offset)
    _check_geometry("conv2d", sh, sw, dh, dw, oh, ow)
    b = _bias_array(bias, Cout, wide, "conv2d")
    out, out8, fz = _outputs(requant, x, off, (N, oh, ow, Cout), wide, "conv2d")
    if out8.size == 0 and out.size == 0:
        return out8 if fz[0] else out
    if not _offset_ok(wide, off):
        _conv_ref_kernel(_req(x), _req(w) if isinstance(w, np.ndarray) else unpack_conv2d_weights(pk), b, off,
                         sh, sw, dh, dw, pt, pl, oh, ow, groups, out)
        return out
    x = _req(x)
    plan = _conv_plan(x.shape, wide, pk, b, off, sh, sw, dh, dw, pt, pl, oh, ow, groups)
    if fz[0]:
        fz = _conv_fused_args(plan, requant, out8)
    _conv_exec(plan, x, out, fz)
    return out8 if fz[0] else out


def _conv_plan(xshape, wide, pk, b, off, sh, sw, dh, dw, pt, pl, oh, ow, groups):
    """Everything a fast conv call needs but the input and output arrays: (kernel pair, MACs,
    the input's shape for the kernel or None, the output's, the leading and trailing
    arguments). Built per call by conv2d_acc; kept per input shape by conv2d_fused_call."""
    N, H, W, C = xshape
    Cout, KH, KW, Cg = pk.shape
    macs = N * oh * ow * Cout * KH * KW * Cg
    pointwise = KH == 1 and KW == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and oh == H and ow == W
    if pointwise:
        # fold the batch into the rows so tiles span images
        xs, os_ = (1, N * H, W, C), (1, N * oh, ow, Cout)
        geo = (1, 1, 1, 1, 1, 1, 0, 0, N * oh, ow)
    else:
        xs, os_ = None, (N, oh, ow, Cout)
        geo = (KH, KW, sh, sw, dh, dw, pt, pl, oh, ow)
    run = pointwise or (groups == 1 and dw == 1)  # the per-row run layout of the weights
    if _vnni_ok(wide, off):
        q, q_run, wsum = quad_weights(pk)
        head = (q_run if run else q, wsum, b, np.int64(128 - off), groups, pk.cout_g, pk.ocb_g) + geo
        return _vnni_kernels(), macs, xs, os_, head, ()
    head = (pk.data_run if run else pk.data, b, off, groups, pk.cout_g, pk.ocb_g) + geo
    return (run_items_par, _conv_serial), macs, xs, os_, head, (wide,)


def _conv_exec(plan, x, out, fz):
    """Run a _conv_plan on ``x`` into ``out`` (accumulators) or, when fused, fz's int8 array."""
    kernels, macs, xs, os_, head, tail = plan
    if xs is not None:
        x = x.reshape(xs)
    if fz[0]:
        outr, fz = out, fz[:5] + (fz[5].reshape(os_),)
    else:
        outr = out.reshape(os_)
    _conv_run(macs, x, *head, outr, *tail, *fz, kernels=kernels)


def conv2d_bound_call(plan, out8: np.ndarray, requant: FusedRequant):
    """``call(x)`` = ``_conv_exec(plan, x, ..., fused into out8)`` with the kernel's whole
    argument list made here, once: the engine's call plan binds a layer to its output buffer
    (hwsim.kernels.conv.bind_conv2d), and this keeps _conv_exec's per-call tuple work
    (~1.8 us a call; person_detect's 13 small convolutions 129 -> 105 us) out of it. ``x``: C-contiguous int8 of the plan's
    input shape."""
    kernels, macs, xs, os_, head, tail = plan
    par, serial = kernels
    pre = head + (_NO_OUT32,) + tail
    post = _conv_fused_args(plan, requant, None)[:5] + (out8.reshape(os_),)
    big = macs >= PARALLEL_MIN_MACS
    # per thread count, the parallel driver's part and the serial kernel's address; per input
    # shape (one, in the engine's plan), the serial run's part
    made = {}

    def call(x):
        x0 = x
        if xs is not None and x.shape != xs:
            x = x.reshape(xs)
        if big:
            nt = threads.count()
            if nt > 1:
                # per thread count: the serial kernel's address, the part, and the driver's
                # call, bound once the caller passes the same array twice (fnptr.ItemsCall)
                run = made.get(nt)
                if run is None:
                    run = made[nt] = ItemsCall(conv_serial_address(serial, (x, *pre, *post), nt),
                                               conv_serial_part(serial, (x, *pre, *post), nt), par)
                run((x0,), (x, *pre, nt, *post))
                return
        serial(x, *pre, 1, *post, serial_part(x))

    def serial_part(x):
        part = made.get(x.shape)
        if part is None:
            part = made[x.shape] = conv_serial_part(serial, (x, *pre, *post))
        return part

    def thunk(x):
        """``call(x)`` for this very ``x`` with every argument bound: one call of the serial
        kernel (layers below PARALLEL_MIN_MACS), or (the others, whose thread count may change
        between calls) a function that calls, for the current thread count, the parallel
        driver or the serial kernel bound for it (made on its first use)."""
        if type(x) is not np.ndarray or x.dtype != np.int8 or not x.flags.c_contiguous:
            return None
        if xs is not None:
            if x.size != int(np.prod(xs)):
                return None
            x = x.reshape(xs)
        if not big:
            return direct(serial, x, *pre, 1, *post, serial_part(x))
        if not PARALLEL_THUNKS:
            return None
        args = (x, *pre, *post)
        return per_thread_count(
            lambda nt: direct(par, conv_serial_address(serial, args, nt), (x, *pre, nt, *post),
                              conv_serial_part(serial, args, nt)),
            lambda: direct(serial, x, *pre, 1, *post, serial_part(x)))

    call.thunk = thunk
    return call


#: The call plan binds the threaded conv and depthwise layers too (fnptr.per_thread_count): a step
#: is then the kernel's call and a read of the thread count, not call() with its per-call
#: Python (reshape, argument tuple, binding checks).
PARALLEL_THUNKS = True


def conv2d_fused_call(pk: PackedConvWeights, bias, input_offset, stride_h, stride_w, dilation_h,
                      dilation_w, pad_top, pad_left, out_h, out_w, groups, requant: FusedRequant):
    """``call(x)`` = ``conv2d_acc(x, pk, ..., requant=requant)`` with the argument checks,
    the bias conversion and the kernel's argument list done once per input shape (a layer's
    call plan: what a small layer's call costs is mostly this Python work). ``x`` must satisfy
    ``can_fuse``; any other input goes through conv2d_acc (and its errors)."""
    geo = tuple(int(v) for v in (stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left,
                                 out_h, out_w))
    off, groups = int(input_offset), int(groups)
    args = (bias, off) + geo + (groups,)
    plans = {}

    def call(x):
        plan = plans.get(x.shape) if type(x) is np.ndarray and x.dtype == np.int8 and \
            x.flags.c_contiguous else None
        if plan is None:
            out = conv2d_acc(x, pk, *args, requant=requant)  # checks the input, runs
            if out.size and x.dtype == np.int8 and x.flags.c_contiguous:
                b = _bias_array(bias, pk.shape[0], False, "conv2d")
                cplan = _conv_plan(x.shape, False, pk, b, off, *geo, groups)
                plans[x.shape] = (cplan, (x.shape[0], geo[6], geo[7], pk.shape[0]),
                                  _conv_fused_args(cplan, requant, None)[:5])
            return out
        out8 = np.empty(plan[1], np.int8)
        _conv_exec(plan[0], x, _NO_OUT32, plan[2] + (out8,))
        return out8

    return call


def depthwise_conv2d_acc(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
                         pad_top, pad_left, out_h, out_w, depth_multiplier, requant=None):
    """Exact DEPTHWISE_CONV_2D accumulators (fast path).

    ``w``: int8 [1, KH, KW, Cin*depth_multiplier] or ``pack_depthwise_weights(w, depth_multiplier)``.
    Returns int32 [N, out_h, out_w, Cout] for int8 ``x``, int64 for int16 ``x``; with
    ``requant``, the int8 output (as ``conv2d_acc``).
    """
    wide = _check_x(x, 4, "depthwise_conv2d")
    dm = int(depth_multiplier)
    if isinstance(w, PackedDepthwiseWeights):
        pk = w
        if pk.depth_multiplier != dm:
            raise ValueError(
                f"depthwise_conv2d: weights were packed for depth_multiplier={pk.depth_multiplier}, not {dm}"
            )
    else:
        pk = pack_depthwise_weights(w, dm)
    _, KH, KW, Cout = pk.shape
    N, H, W, C = x.shape
    if C * dm != Cout:
        raise ValueError(f"depthwise_conv2d: {C} input channels x {dm} != {Cout} weight channels")
    sh, sw, dh, dw = int(stride_h), int(stride_w), int(dilation_h), int(dilation_w)
    pt, pl, oh, ow = int(pad_top), int(pad_left), int(out_h), int(out_w)
    off = int(input_offset)
    _check_geometry("depthwise_conv2d", sh, sw, dh, dw, oh, ow)
    b = _bias_array(bias, Cout, wide, "depthwise_conv2d")
    out, out8, fz = _outputs(requant, x, off, (N, oh, ow, Cout), wide, "depthwise_conv2d")
    if out8.size == 0 and out.size == 0:
        return out8 if fz[0] else out
    if not _offset_ok(wide, off) or (wide and KH * KW > 510):
        _dw_ref_kernel(_req(x), _req(w) if isinstance(w, np.ndarray) else unpack_depthwise_weights(pk), b, off,
                       sh, sw, dh, dw, pt, pl, oh, ow, dm, out)
        return out
    x = _req(x)
    _dw_exec(x, _dw_head(pk, b, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, requant), out, wide,
             N * oh * ow * Cout * KH * KW, fz)
    return out8 if fz[0] else out


def _dw_head(pk, b, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, requant):
    """The depthwise kernel's leading arguments for a FusedRequant ``requant`` (or None: the
    accumulators); the first selects the kernel: 3 the 3x3 vpdpbusd one (depthwise_vnni), 2 the
    3x3 vpmaddwd one (depthwise_zmm), 1 the 32-channel band kernel, 0 the 16-channel one
    (mac_tiles; then the vertical tap pairs of a fused 3x3 stride-1 layer, mac_pack.
    depthwise_weights3v, or an empty array, and last FusedRequant.ql or None, which _dw_kernels
    puts in place of the requantization constants)."""
    if requant is not None and USE_DW512 and pk.shape[3] >= 32:
        if USE_DW3 and KH == KW == 3 and dh == dw == 1 and dm == 1 and -127 <= off <= 128:
            qk = requant.q64
            if qk is not None:
                pairs = dwq_pairs(pk.shape[3], sw)
                qq = dwq_requant(qk, pairs) if USE_DWQ and dwq_takes(pk.shape[3], sw) else None
                if qq is not None:
                    wq, bq = dwq_weights(pk, b, off, pairs)
                    return (3, wq, bq, qq, np.int64(-off), sh, sw, pt, pl, oh, ow)
                wk, bk = dw3_weights(pk, b, off)
                return (2, wk, bk, qk, np.int64(-off), sh, sw, pt, pl, oh, ow)
        return (1, depthwise_weights32(pk), b, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow)
    ql = None if requant is None else _avx2_consts(requant)
    ql = None if requant is None or ql is requant.cp else ql
    vert = requant is not None and USE_DW3V and KH == KW == 3 and sw == dh == dw == 1
    wv = depthwise_weights3v(pk) if vert else _NO_WV
    return (0, pk.data, b, off, dm, KH, KW, sh, sw, dh, dw, pt, pl, oh, ow, wv, ql)


#: depthwise_vnni's time for a 64-channel block in units of depthwise_zmm's for a 32-channel
#: block, at stride 1 and at larger strides, per CPU family (mobilenet_v2's layers on one
#: thread, both kernels interleaved in one process): AMD Zen (LLVM's "znver*") 1.6 and 1.8
#: (Zen 4, session 10, before the packed stores), others 1.3 and 1.45 (Sapphire Rapids,
#: session 11: 1.17-1.3 at stride 1, 1.34-1.57 at stride 2, 112x112x32 1.23).
_ZEN = HOST_CPU_NAME.startswith("znver")
DWQ_BLOCK_COST = (1.6, 1.8) if _ZEN else (1.3, 1.45)
#: 32-channel layers at stride 1 two pixels a vector (depthwise_vnni.dwq_pairs): 0.62x
#: depthwise_zmm's time on Sapphire Rapids (one thread; 0.70x on two); on Zen 4 an earlier
#: form (vpermd stores) took 0.87-1.07x (session 10), so Zen keeps depthwise_zmm there.
DWQ_PAIRS = not _ZEN
#: Every 3x3 layer on depthwise_vnni where the CPU has it (the tests: every tail width).
DWQ_ALWAYS = False


def dwq_takes(channels: int, stride_w: int) -> bool:
    """Whether a 3x3 layer of ``channels`` channels runs faster on depthwise_vnni's 64-channel
    blocks than on depthwise_zmm's 32-channel ones (DWQ_BLOCK_COST): a last block of 32 or
    fewer channels wastes half its lanes or more. 32 channels at stride 1 run two pixels a
    vector (depthwise_vnni.dwq_pairs): mobilenet_v2's 112x112x32 in 0.62x depthwise_zmm's time
    on one thread and 0.70x on two (Sapphire Rapids, both interleaved in one process;
    DWQ_PAIRS)."""
    cost = DWQ_BLOCK_COST[0 if stride_w == 1 else 1]
    return DWQ_ALWAYS or (DWQ_PAIRS and dwq_pairs(channels, stride_w)) or \
        cost * ((channels + 63) // 64) < (channels + 31) // 32


#: The 3x3 in-place depthwise kernel forks from this many MACs: its smallest mobilenet_v2 layer
#: (7x7x576, 254 k MACs) took 12.7 us on 2 threads against 15.6 us on one (fastest of 51 calls,
#: load average 3.3); the engine still runs one thread when the machine is busy (threads.py).
DW3_PARALLEL_MIN_MACS = 1 << 17
#: The 16-channel tap-pair kernel (the avx2 path's, and every CPU's accumulators) forks from
#: this many MACs, not PARALLEL_MIN_MACS: mobilenet_v2's 14x14 and 7x7 layers (423 k-1 M
#: MACs) ran on one thread at 11-12 GMAC/s, on two at 15-20 (AVX2 code on Sapphire Rapids with
#: AVX-512 hidden, benchmarks/avx2_only.sh; DEPTHWISE 1254 -> 1063 us, bench_ab.py in one
#: process).
DW16_PARALLEL_MIN_MACS = 1 << 17


def _dw_kernels(head, out, wide, fz):
    """The kernel pair a _dw_head selects, its arguments before and after the thread count,
    and the MACs from which it forks."""
    if head[0] >= 2:
        return run_items_par, _DW3_SERIAL[head[0]], head[1:], fz[1:], DW3_PARALLEL_MIN_MACS
    if head[0]:
        return _dw32_par, _dw32_serial, head[1:], fz[1:], PARALLEL_MIN_MACS
    if fz[0] and head[-1] is not None:  # the logical-shift one-step constants (USE_QL)
        fz = (fz[0], head[-1]) + fz[2:]
    return run_items_par, _dw_serial, head[1:-1] + (out, wide), fz, DW16_PARALLEL_MIN_MACS


#: The 3x3 kernels by _dw_head kind: the serial kernel (items), the channels of its blocks and
#: the address of its overload for fnptr.run_items_par.
_DW3_SERIAL = {2: _dw3_serial, 3: _dwq_serial}
_DW3_BLOCK = {2: 32, 3: 64}
_DW3_ADDRESS = {2: dw3_serial_address, 3: dwq_serial_address}


def _dw16_part(head, xshape, nt):
    """The 16-channel kernel's ``part`` (mac_tiles.dw_part) of a kind-0 _dw_head on ``nt``
    threads (16x8 mode: the accumulators are int64 when the head's bias is)."""
    _, _, b, _, dm, KH, KW, _, sw, dh, dw, _, _, oh, ow = head[:15]
    return dw_part(xshape[0], xshape[3] * dm, KH, KW, sw, dh, dw, oh, ow, b, b.dtype == np.int64, nt)


def _dw_serial_tail(head, xshape):
    """What the serial kernel takes after the fused arguments: its ``part`` of every item
    (depthwise_zmm.dw3_part for the 3x3 kernels, mac_tiles.dw_part for the 16-channel one;
    the 32-channel band kernel nothing)."""
    if head[0] >= 2:
        return (dw3_part(xshape, head[9], head[10], 1, _DW3_BLOCK[head[0]]),)
    if head[0] == 0:
        return (_dw16_part(head, xshape, 1),)
    return ()


def _dw_par_tail(head, x, pre, nt, post):
    """A kernel's (address, part) for fnptr.run_items_par on ``nt`` threads (the 32-channel
    band kernel's parallel driver takes none: ``par(x, *pre, nt, *post)``)."""
    if head[0] >= 2:
        return (_DW3_ADDRESS[head[0]](x, pre, nt, post),
                dw3_part(x.shape, head[9], head[10], nt, _DW3_BLOCK[head[0]]))
    if head[0] == 0:
        part = _dw16_part(head, x.shape, nt)
        return compiled_address(_dw_serial, (x, *pre, nt, *post, part)), part
    return None


def _dw_par_run(par, x, pre, nt, post, tail):
    if tail is None:
        par(x, *pre, nt, *post)
    else:
        par(tail[0], (x, *pre, nt, *post), tail[1])


def _dw_exec(x, head, out, wide, macs, fz):
    par, serial, pre, post, limit = _dw_kernels(head, out, wide, fz)
    nt = threads.count() if macs >= limit else 1
    if nt > 1:
        _dw_par_run(par, x, pre, nt, post, _dw_par_tail(head, x, pre, nt, post))
    else:
        serial(x, *pre, 1, *post, *_dw_serial_tail(head, x.shape))


def depthwise_bound_call(head, macs: int, out8: np.ndarray, requant: FusedRequant):
    """``call(x)`` = ``_dw_exec(x, head, ..., fused into out8)`` with the kernel and its
    argument list chosen once (as conv2d_bound_call: the engine's call plan)."""
    par, serial, pre, post, limit = _dw_kernels(head, _NO_OUT32, False,
                                                _fused_args(requant, out8))
    big = macs >= limit
    tails = {}  # the serial tail per input shape, the parallel one per thread count

    def call(x):
        if big:
            nt = threads.count()
            if nt > 1:
                # per thread count: the driver's tail and its call, bound once the caller
                # passes the same array twice (as conv2d_bound_call)
                run = tails.get(nt)
                if run is None:
                    tail = _dw_par_tail(head, x, pre, nt, post)
                    run = tails[nt] = RepeatCall(par) if tail is None else ItemsCall(*tail, par)
                if type(run) is ItemsCall:
                    run((x,), (x, *pre, nt, *post))
                else:
                    run((x,), x, *pre, nt, *post)
                return
        tail = tails.get(x.shape)
        if tail is None:
            tail = tails[x.shape] = _dw_serial_tail(head, x.shape)
        serial(x, *pre, 1, *post, *tail)

    def thunk(x):
        """``call(x)`` for this very ``x`` with every argument bound (as conv2d_bound_call)."""
        if type(x) is not np.ndarray or x.dtype != np.int8 or not x.flags.c_contiguous:
            return None
        if not big:
            return direct(serial, x, *pre, 1, *post, *_dw_serial_tail(head, x.shape))
        if not PARALLEL_THUNKS:
            return None

        def parallel(nt):
            tail = _dw_par_tail(head, x, pre, nt, post)
            if tail is None:
                return direct(par, x, *pre, nt, *post)
            return direct(par, tail[0], (x, *pre, nt, *post), tail[1])
        return per_thread_count(parallel, lambda: direct(serial, x, *pre, 1, *post,
                                                          *_dw_serial_tail(head, x.shape)))

    call.thunk = thunk
    return call


def depthwise_fused_call(pk: PackedDepthwiseWeights, bias, input_offset, stride_h, stride_w,
                         dilation_h, dilation_w, pad_top, pad_left, out_h, out_w, depth_multiplier,
                         requant: FusedRequant):
    """``call(x)`` = ``depthwise_conv2d_acc(x, pk, ..., requant=requant)`` with the checks and
    argument list done once per input shape (as conv2d_fused_call)."""
    geo = tuple(int(v) for v in (stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left,
                                 out_h, out_w))
    off, dm = int(input_offset), int(depth_multiplier)
    _, KH, KW, Cout = pk.shape
    fz5 = _fused_args(requant, None)[:5]
    plans = {}

    def call(x):
        plan = plans.get(x.shape) if type(x) is np.ndarray and x.dtype == np.int8 and \
            x.flags.c_contiguous else None
        if plan is None:
            out = depthwise_conv2d_acc(x, pk, bias, off, *geo, dm, requant=requant)
            if out.size and x.dtype == np.int8 and x.flags.c_contiguous and _offset_ok(False, off):
                b = _bias_array(bias, Cout, False, "depthwise_conv2d")
                shape = (x.shape[0], geo[6], geo[7], Cout)
                plans[x.shape] = (_dw_head(pk, b, off, dm, KH, KW, *geo, requant), shape,
                                  shape[0] * shape[1] * shape[2] * Cout * KH * KW)
            return out
        out8 = np.empty(plan[1], np.int8)
        _dw_exec(x, plan[0], _NO_OUT32, False, plan[2], fz5 + (out8,))
        return out8

    return call


def fully_connected_acc(x, w, bias, input_offset, requant=None):
    """Exact FULLY_CONNECTED accumulators (fast path).  ``w``: int8 [Cout, K] or
    ``pack_fully_connected_weights(w)``.  Returns int32 [B, Cout] (int64 for int16 ``x``); with
    ``requant``, the int8 output (as ``conv2d_acc``)."""
    wide = _check_x(x, 2, "fully_connected")
    pk = w if isinstance(w, PackedConvWeights) else pack_fully_connected_weights(w)
    Cout, KH, KW, K = pk.shape
    if KH != 1 or KW != 1 or pk.groups != 1:
        raise ValueError("fully_connected: weights were not packed by pack_fully_connected_weights")
    B = x.shape[0]
    if x.shape[1] != K:
        raise ValueError(f"fully_connected: input has {x.shape[1]} features, weights expect {K}")
    off = int(input_offset)
    b = _bias_array(bias, Cout, wide, "fully_connected")
    out, out8, fz = _outputs(requant, x, off, (1, B, 1, Cout), wide, "fully_connected")
    if out8.size == 0 and out.size == 0:
        return (out8 if fz[0] else out).reshape(B, Cout)
    out = out if fz[0] else out.reshape(B, Cout)
    if not _offset_ok(wide, off):
        _fc_ref_kernel(_req(x), _req(w) if isinstance(w, np.ndarray) else unpack_conv2d_weights(pk).reshape(Cout, K),
                       b, off, out)
        return out
    x = _req(x)
    geo = (1, 1, 1, 1, 1, 1, 0, 0, B, 1)
    outr = out if fz[0] else out.reshape(1, B, 1, Cout)
    if _vnni_ok(wide, off):
        _, q_run, wsum = quad_weights(pk)
        _conv_run(B * Cout * K, x.reshape(1, B, 1, K), q_run, wsum, b, np.int64(128 - off), 1, Cout,
                  pk.ocb_g, *geo, outr, *fz, kernels=_vnni_kernels())
    else:
        _conv_run(B * Cout * K, x.reshape(1, B, 1, K), pk.data_run, b, off, 1, Cout, pk.ocb_g,
                  *geo, outr, wide, *fz)
    return out8.reshape(B, Cout) if fz[0] else out


# -- reference wrappers ------------------------------------------------------


def conv2d_acc_reference(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
                         pad_top, pad_left, out_h, out_w, groups=1):
    """Plain-loop CONV_2D accumulators (int64 sums; int32 result for int8 ``x``)."""
    wide = _check_x(x, 4, "conv2d")
    if isinstance(w, PackedConvWeights):
        w = unpack_conv2d_weights(w)
    _check_int8_weights(w, 4, "conv2d")
    Cout = w.shape[0]
    if groups < 1 or Cout % groups or x.shape[3] != w.shape[3] * groups:
        raise ValueError("conv2d: channel counts do not match groups")
    _check_geometry("conv2d", stride_h, stride_w, dilation_h, dilation_w, out_h, out_w)
    b = _bias_array(bias, Cout, True, "conv2d")
    acc = np.empty((x.shape[0], int(out_h), int(out_w), Cout), np.int64)
    _conv_ref_kernel(_req(x), _req(w), b, int(input_offset), int(stride_h), int(stride_w), int(dilation_h),
                     int(dilation_w), int(pad_top), int(pad_left), int(out_h), int(out_w), int(groups), acc)
    return acc if wide else acc.astype(np.int32)


def depthwise_conv2d_acc_reference(x, w, bias, input_offset, stride_h, stride_w, dilation_h, dilation_w,
                                   pad_top, pad_left, out_h, out_w, depth_multiplier):
    """Plain-loop DEPTHWISE_CONV_2D accumulators (int64 sums; int32 result for int8 ``x``)."""
    wide = _check_x(x, 4, "depthwise_conv2d")
    if isinstance(w, PackedDepthwiseWeights):
        w = unpack_depthwise_weights(w)
    _check_int8_weights(w, 4, "depthwise_conv2d")
    Cout = w.shape[3]
    if w.shape[0] != 1 or x.shape[3] * depth_multiplier != Cout:
        raise ValueError("depthwise_conv2d: channel counts do not match depth_multiplier")
    _check_geometry("depthwise_conv2d", stride_h, stride_w, dilation_h, dilation_w, out_h, out_w)
    b = _bias_array(bias, Cout, True, "depthwise_conv2d")
    acc = np.empty((x.shape[0], int(out_h), int(out_w), Cout), np.int64)
    _dw_ref_kernel(_req(x), _req(w), b, int(input_offset), int(stride_h), int(stride_w), int(dilation_h),
                   int(dilation_w), int(pad_top), int(pad_left), int(out_h), int(out_w),
                   int(depth_multiplier), acc)
    return acc if wide else acc.astype(np.int32)


def fully_connected_acc_reference(x, w, bias, input_offset):
    """Plain-loop FULLY_CONNECTED accumulators (int64 sums; int32 result for int8 ``x``)."""
    wide = _check_x(x, 2, "fully_connected")
    if isinstance(w, PackedConvWeights):
        w = unpack_conv2d_weights(w).reshape(w.shape[0], -1)
    _check_int8_weights(w, 2, "fully_connected")
    if x.shape[1] != w.shape[1]:
        raise ValueError("fully_connected: feature counts differ")
    b = _bias_array(bias, w.shape[0], True, "fully_connected")
    acc = np.empty((x.shape[0], w.shape[0]), np.int64)
    _fc_ref_kernel(_req(x), _req(w), b, int(input_offset), acc)
    return acc if wide else acc.astype(np.int32)

