"""3x3 DEPTHWISE_CONV_2D with requantization fused, on AVX-512 VNNI: ``vpdpbusd`` on column quads.

depthwise_zmm's 3x3 kernel multiplies with ``vpmaddwd`` (vpdpwssd) against weight vectors whose
odd or even lanes are 0: 16 products an instruction. Here one ``vpdpbusd`` does 64: the input
is made uint8 (x + 128, the flip of the sign bit, when it is gathered), and for each input
column and block of 64 channels its three kernel rows are interleaved into four vectors of
quads (r0, r1, r2, 0) per channel (mac_intrinsics._zquads: eight byte and word unpacks), each
multiplied with the quads (w[0][kx], w[1][kx], w[2][kx], 0) of the same channels. At stride 1
a column serves the three output pixels that have it as their kx = 0, 1, 2 tap column, so a
strip of 4 pixels costs 6 columns (18 loads, 48 unpacks) and 48 vpdpbusd for 256 outputs,
against 36 loads and 144 vpdpwssd in depthwise_zmm.

The integers are TFLite's: sum_t w_t (x_t + off) = sum_t w_t (x_t + 128) + (off - 128) sum_t w_t;
the second term is folded into the bias (modulo 2^32, as the int32 accumulator wraps), taps
outside the input read the zero point -off (plus 128), whose products cancel, and vpdpbusd
adds its four exact products to the int32 lane without saturation. Accumulator k of a pixel
holds channel 16 L + 4 k + i in dword i of 128-bit lane L; each is requantized in that order
by depthwise_zmm's one-step 64-bit arithmetic with its constants rearranged to match
(``dwq_requant``) into 16 int32, and three packs (whose 128-bit lanes match that order) narrow
the pixel's 64 channels to int8 in channel order for one clamp and one masked store
(mac_intrinsics._zrq64_store64).

Every band of output rows is gathered (depthwise_zmm._gather with the flip), padded with the
zero point, 64 bytes a pixel per block; work items and their split on threads are depthwise_zmm's
(``dw3_part``, with blocks of 64 channels). A layer of 32 channels at horizontal stride 1
(``dwq_pairs``) fills the 64 lanes with two pixels instead: its 32-byte pixels are read as the
stride-2 strip of 64-byte units, the weights and constants tiled twice. Called by
hwsim.kernels.mac where the CPU has AVX512-VNNI, for the layers ``mac.dwq_takes`` admits (a
short last block wastes lanes: those layers stay on depthwise_zmm); compiled on the first call
only.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .depthwise_zmm import _band_item, _gather, fold_bias
from .fnptr import compiled_address
from .mac_intrinsics import NJIT_OPTIONS as _NJ
from .mac_intrinsics import _zdpbusd, _zload_i32, _zload_q, _zquads, _zrq64_store64
from .mac_pack import PackedDepthwiseWeights, aligned, unpack_depthwise_weights


def dwq_pairs(channels: int, stride_w: int) -> bool:
    """Whether _dwq_serial runs a layer two pixels a vector (its 64 lanes: pixel 2 u's 32
    channels, then pixel 2 u + 1's): 32 channels at horizontal stride 1."""
    return channels == 32 and stride_w == 1


def dwq_weights(pk: PackedDepthwiseWeights, bias: np.ndarray, off: int, pairs: bool = False):
    """(weights, bias) of ``_dwq_serial`` for 3x3 weights ``pk``: int8 [blocks of 64 channels][kx]
    [k][lane L][i][ky 0, 1, 2, 0], the quad of channel 64 b + 16 L + 4 k + i, and int32
    [blocks][k][L][i] of ``bias + (off - 128) * sum over the taps of w`` modulo 2^32; with
    ``pairs`` (dwq_pairs) the 32 channels twice, for lanes 0-31 and 32-63."""
    w = unpack_depthwise_weights(pk).reshape(3, 3, -1)  # ky, kx, C
    if pairs:
        w, bias = np.concatenate([w, w], 2), np.concatenate([bias, bias])
    C = w.shape[2]
    NB = (C + 63) // 64
    v = np.zeros((3, 3, NB * 64), np.int8)
    v[:, :, :C] = w
    v = v.reshape(3, 3, NB, 4, 4, 4)  # ky, kx, b, L, k, i
    q = np.zeros((NB, 3, 4, 4, 4, 4), np.int8)  # b, kx, k, L, i, t
    q[..., :3] = v.transpose(2, 1, 4, 3, 5, 0)
    bf = fold_bias(bias, w.reshape(9, C), int(off) - 128, NB * 64)
    bq = np.ascontiguousarray(bf.reshape(NB, 4, 4, 4).transpose(0, 2, 1, 3))  # b, k, L, i
    return aligned(q.reshape(-1)), aligned(bq.reshape(-1))


def dwq_requant(q64: np.ndarray, pairs: bool = False) -> np.ndarray | None:
    """depthwise_zmm.dw3_requant's constants (channel order: [16-channel block][constant]
    [even, odd][8], channel 16 blk + 2 j + parity) for this kernel's accumulators: int64
    [64-channel block][accumulator k][constant][even, odd][lane j], the channel of accumulator k's
    qword j being 16 (j // 2) + 4 k + 2 (j % 2) (+ 1 for the odd dword), the odd lanes' shift
    31 + e given as its high dword's, e - 1 (mac_intrinsics._zrq64_store64). None where a
    channel with a multiplier has no right shift (e = 0): its result need not fit an int32
    (that layer takes depthwise_zmm). With ``pairs`` (dwq_pairs) channels 32-63 repeat 0-31."""
    per = q64.reshape(-1, 4, 2, 8).transpose(0, 3, 2, 1).reshape(-1, 4).copy()  # [channel][constant]
    if pairs:
        per[32:64] = per[:32]
    # a multiplier of 0 (the padding channels past C) gives zp whatever the shift: e = 1 then
    z = (per[:, 0] == 0) & (per[:, 3] == 31)
    per[z, 1], per[z, 2], per[z, 3] = ((per[z, 1] - (1 << 30)) >> 31) << 32, 0, 32
    if per[:, 3].min() < 32:
        return None
    NB = per.shape[0] // 64
    b, k, par, j = np.meshgrid(np.arange(NB), np.arange(4), np.arange(2), np.arange(8), indexing="ij")
    ch = 64 * b + 16 * (j // 2) + 4 * k + 2 * (j % 2) + par  # [b][k][parity][j]
    out = per[ch]  # [b][k][parity][j][constant]
    out[:, :, 1, :, 3] -= 32
    return aligned(np.ascontiguousarray(out.transpose(0, 1, 4, 2, 3)).reshape(-1))


def dwq_serial_address(x, pre, nthreads, post) -> int:
    """The address fnptr.run_items_par calls for this kernel's items: _dwq_serial compiled for
    ``(x, *pre, nthreads, *post, part)``."""
    i = np.int64(0)
    return compiled_address(_dwq_serial, (x, *pre, nthreads, *post, (i, i, i, i)))


@njit(inline="always", **_NJ)
def _mac4(a, q, wq, wo):
    """The four accumulators of one pixel plus the column quads q times the weights at wq[wo]
    (the four groups of one kx)."""
    return (_zdpbusd(a[0], q[0], _zload_q(wq, wo)), _zdpbusd(a[1], q[1], _zload_q(wq, wo + 64)),
            _zdpbusd(a[2], q[2], _zload_q(wq, wo + 128)), _zdpbusd(a[3], q[3], _zload_q(wq, wo + 192)))


@njit(inline="always", **_NJ)
def _col(src, o, rs):
    """The quads of the column at src[o] (kernel rows rs apart)."""
    return _zquads(_zload_q(src, o), _zload_q(src, o + rs), _zload_q(src, o + 2 * rs))


@njit(inline="always", **_NJ)
def _st64(o8, oo, a, qk, qo, qlo, qhi, nv):
    """Requantize and store one pixel's 64 channels (nv of them valid) at o8[oo]."""
    _zrq64_store64(o8, oo, a[0], a[1], a[2], a[3], qk, qo, qlo, qhi, nv)


@njit(inline="always", **_NJ)
def _st64x4(o8, d, Cout, a0, a1, a2, a3, qk, qo, qlo, qhi, nv):
    """_st64 of a strip's 4 pixels, the first at o8[d], Cout apart."""
    _st64(o8, d, a0, qk, qo, qlo, qhi, nv)
    _st64(o8, d + Cout, a1, qk, qo, qlo, qhi, nv)
    _st64(o8, d + 2 * Cout, a2, qk, qo, qlo, qhi, nv)
    _st64(o8, d + 3 * Cout, a3, qk, qo, qlo, qhi, nv)


@njit(inline="always", **_NJ)
def _run(src, o, rs, cs, sw, nox, wq, wb, b0, b1, b2, b3, qk, qo, qlo, qhi, o8, oo, Cout, nv):
    """nox output pixels of one row and 64-channel block: the first one's top-left tap at
    src[o], kernel rows rs apart, input pixels cs apart; outputs at o8[oo], Cout apart."""
    p = 0
    bias = (b0, b1, b2, b3)
    if sw == 1:
        while p + 4 <= nox:
            q = o + p * cs
            c = _col(src, q, rs)
            a0 = _mac4(bias, c, wq, wb)
            c = _col(src, q + cs, rs)
            a0 = _mac4(a0, c, wq, wb + 256)
            a1 = _mac4(bias, c, wq, wb)
            c = _col(src, q + 2 * cs, rs)
            a0 = _mac4(a0, c, wq, wb + 512)
            a1 = _mac4(a1, c, wq, wb + 256)
            a2 = _mac4(bias, c, wq, wb)
            c = _col(src, q + 3 * cs, rs)
            a1 = _mac4(a1, c, wq, wb + 512)
            a2 = _mac4(a2, c, wq, wb + 256)
            a3 = _mac4(bias, c, wq, wb)
            c = _col(src, q + 4 * cs, rs)
            a2 = _mac4(a2, c, wq, wb + 512)
            a3 = _mac4(a3, c, wq, wb + 256)
            c = _col(src, q + 5 * cs, rs)
            a3 = _mac4(a3, c, wq, wb + 512)
            _st64x4(o8, oo + p * Cout, Cout, a0, a1, a2, a3, qk, qo, qlo, qhi, nv)
            p += 4
    elif sw == 2:
        while p + 4 <= nox:
            q = o + 2 * p * cs
            c = _col(src, q, rs)
            a0 = _mac4(bias, c, wq, wb)
            a0 = _mac4(a0, _col(src, q + cs, rs), wq, wb + 256)
            c = _col(src, q + 2 * cs, rs)
            a0 = _mac4(a0, c, wq, wb + 512)
            a1 = _mac4(bias, c, wq, wb)
            a1 = _mac4(a1, _col(src, q + 3 * cs, rs), wq, wb + 256)
            c = _col(src, q + 4 * cs, rs)
            a1 = _mac4(a1, c, wq, wb + 512)
            a2 = _mac4(bias, c, wq, wb)
            a2 = _mac4(a2, _col(src, q + 5 * cs, rs), wq, wb + 256)
            c = _col(src, q + 6 * cs, rs)
            a2 = _mac4(a2, c, wq, wb + 512)
            a3 = _mac4(bias, c, wq, wb)
            a3 = _mac4(a3, _col(src, q + 7 * cs, rs), wq, wb + 256)
            a3 = _mac4(a3, _col(src, q + 8 * cs, rs), wq, wb + 512)
            _st64x4(o8, oo + p * Cout, Cout, a0, a1, a2, a3, qk, qo, qlo, qhi, nv)
            p += 4
    while p < nox:  # the 1-3 pixels left (any stride)
        q = o + p * sw * cs
        a = _mac4(bias, _col(src, q, rs), wq, wb)
        a = _mac4(a, _col(src, q + cs, rs), wq, wb + 256)
        a = _mac4(a, _col(src, q + 2 * cs, rs), wq, wb + 512)
        _st64(o8, oo + p * Cout, a, qk, qo, qlo, qhi, nv)
        p += 1


@njit(**_NJ)
def _dwq_serial(x, wq, bq, qk, padv, sh, sw, pt, pl, oh, ow, nthreads, cp, qzp, qlo, qhi, out8, part):
    """Work items: a band of output rows of one image x a range of 64-channel blocks (``part``
    = (nb, ng, first item, end item), depthwise_zmm.dw3_part of the 64-channel blocks), the
    band's channels gathered as uint8 into ``scr`` with the zero point around them. One
    function for the items and the serial driver, as depthwise_zmm._dw3_serial.

    A layer of 32 channels at horizontal stride 1 (dwq_pairs) runs two pixels a vector: its
    64-byte block holds pixels 2 u and 2 u + 1, so a row is _run's stride-2 strip over the
    32-byte pixels (unit u's taps at 64 u + 32 kx), the weights and constants tiled twice,
    and an odd last pixel a unit with 32 lanes stored (its other pixel reads the 32 bytes past
    the row, inside the scratch's slack)."""
    N, H, W, C = x.shape
    NB = (C + 63) // 64
    pairs = C == 32 and sw == 1  # dwq_pairs
    nb, ng, i0, i1 = part
    scr = np.empty(0, np.int8)
    o8 = out8.reshape(out8.size)
    xf = x.reshape(x.size)
    Wp = (ow - 1) * sw + 3
    for item in range(i0, i1):
        n, oy0, oy1, cb0, cb1 = _band_item(item, nb, ng, oh, NB)
        if oy1 <= oy0 or cb1 <= cb0:
            continue
        rows = (oy1 - oy0 - 1) * sh + 3
        iy0 = oy0 * sh - pt
        Cb = 32 if pairs else 64 * (cb1 - cb0)
        if scr.size < rows * Wp * Cb + 64:
            # on a 64-byte boundary: every row load is then one cache line
            raw = np.empty(((oh + nb - 1) // nb * sh + 3) * Wp * 64 * (NB // ng + 1) + 128, np.int8)
            scr = raw[(64 - raw.ctypes.data % 64) % 64:]
        _gather(xf, n, H, W, C, iy0, -pl, rows, Wp, 64 * cb0, Cb, padv, scr, np.int8(-128))
        rs = Wp * Cb
        # (input pixel step, stride of _run's strips, output step of a unit, units of full
        # lanes, lanes stored of the one more unit there may be)
        cs, su, Cu, nox, nv1 = (32, 2, 64, ow // 2, 32 * (ow % 2)) if pairs else (Cb, sw, C, ow, 0)
        for cb in range(cb0, cb1):
            c0 = 64 * cb
            nv = 64 if pairs else min(64, C - c0)
            wb = cb * 768
            b0 = _zload_i32(bq, c0)
            b1 = _zload_i32(bq, c0 + 16)
            b2 = _zload_i32(bq, c0 + 32)
            b3 = _zload_i32(bq, c0 + 48)
            o = 64 * (cb - cb0)
            for oy in range(oy0, oy1):
                oo = ((n * oh + oy) * ow) * C + c0
                for t in range(2):  # the full units, then (pairs, odd width) the last pixel
                    if t == 1 and nv1 == 0:
                        break
                    _run(scr, o + (oy - oy0) * sh * rs + t * nox * 64, rs, cs, su, nox if t == 0 else 1, wq,
                         wb, b0, b1, b2, b3, qk, 256 * cb, qlo, qhi, o8, oo + t * nox * 64, Cu,
                         nv if t == 0 else nv1)
