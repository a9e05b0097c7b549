"""DEPTHWISE_CONV_2D of few channels (2..31, or more on narrow rows: ``applies``; depth
multiplier 1), requantization fused, on 512-bit vectors (AVX-512 CPUs): each output row is one
vector of ow * C lanes.

The 16- and 32-channel depthwise kernels (mac_tiles, depthwise_zmm) fill a channel block per
pixel, so a layer of 8 channels wastes half or three quarters of every vector (person_detect's
48x48x8 3x3 layer: 6 GMAC/s). Here the channels of all the pixels of a row share the lanes:
output lane j = ox * C + c of row oy is

    bias[c] + sum over (ky, kx) of P[oy * sh + ky * dh][(ox * sw + kx * dw) * C + c] * w[ky, kx, c]

where P is the input plus input_offset (int16), the padding written as 0 (TFLite skips those
taps: a zero adds nothing). With stride sw a padded row is stored as sw phases (phase p holds
the pixels p, p + sw, p + 2 sw, ...), so tap kx reads phase (kx * dw) % sw from lane
((kx * dw) // sw) * C on: for every tap, lane j is lane j of one contiguous run. That makes the
row a "pixel" of ow * C channels for depthwise_zmm's tap-pair scheme: per block of 32 lanes
and pair of taps, the two taps' runs are interleaved (vpunpck{l,h}wd) and multiply-added with
the weights expanded to period C and packed in that lane order (``plan``); two output rows
share each weight load; the sums are int32 (wrapping as TFLite's); the accumulators are put in
lane order and requantized in registers (mac_intrinsics._zrq_store_c, the constants expanded
to period C too), stored straight into the output row.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .mac_intrinsics import NJIT_OPTIONS as _NJ
from .mac_intrinsics import (_wload, _wmadd_acc, _wunpack_hi, _wunpack_lo, _zchannels_hi,
                             _zchannels_lo, _zload_i32, _zrq_consts, _zrq_store_c)
from . import threads
from .fnptr import ItemsCall, compiled_address, direct
from .mac_pack import _DW_LANES32
from .mac_tiles import _convert_run

#: Channel counts this kernel takes at any width (one channel is a CONV_2D: hwsim.kernels.conv;
#: from 32 on the 32-channel kernels fill their vectors).
MIN_CHANNELS, MAX_CHANNELS = 2, 31
#: Wider layers too when a row's expanded weights (``plan``: int16, every tap, ow * C lanes
#: rounded up to 32) take at most this many bytes (``applies``).
NARROW_ROW_WEIGHT_BYTES = 16 << 10
#: Threads from this many MACs (each thread a band of output rows).
PARALLEL_MIN_MACS = 1 << 20


def weight_bytes(channels: int, out_w: int, kh: int, kw: int) -> int:
    """The bytes of ``plan``'s expanded weights: tap pairs x 32-lane blocks of a row x 64 int16."""
    return ((kh * kw + 1) // 2) * ((out_w * channels + 31) // 32) * 128


def applies(channels: int, depth_multiplier: int, input_offset: int, stride_w: int,
            out_w: int = 0, kh: int = 3, kw: int = 3) -> bool:
    """Whether hwsim.kernels.conv gives a fused int8 depthwise layer of this shape to this
    kernel (it also checks the CPU: mac.USE_DW512). Strides 1 and 2 across. Stride 2 is as
    fast here as on the 16-channel kernel (person_detect's 48x48x16 stride-2 layer, warm, 2
    threads: 7.4 us both ways, interleaved in one process), and taking it means a model like
    person_detect never compiles mac_tiles' 16-channel band kernel (~3.4 CPU s of its cold
    start). Wider strides are untimed; the kernel itself computes any stride
    (tests/test_kernels_small_dw.py).

    From 32 channels on, a layer comes here when its rows are narrow: the expanded weights of a
    row at most NARROW_ROW_WEIGHT_BYTES (3x3 taps: ow * C <= 768 lanes, e.g. person_detect's
    24x24x32, 12x12x64, 6x6x128, 3x3x256). On such rows the two kernels are close (Zen 4, 2
    threads: depthwise_zmm's 3x3 kernel 0-29% faster isolated, this one 3% faster over
    person_detect's depthwise layers in the model), and a model whose wide-channel layers are
    all narrow never compiles depthwise_zmm._dw3_serial (~2.5 s of cold start). On wider rows
    this kernel re-reads a row of weights per pair of output rows and falls behind (1.3-2x
    at ow * C >= 1792; mobilenet_v2 has none narrower than 3584)."""
    if depth_multiplier != 1 or not -32000 <= input_offset <= 32000 or stride_w not in (1, 2):
        return False
    if MIN_CHANNELS <= channels <= MAX_CHANNELS:
        return True
    return channels > MAX_CHANNELS and 0 < out_w and \
        weight_bytes(channels, out_w, kh, kw) <= NARROW_ROW_WEIGHT_BYTES


def plan(w: np.ndarray, bias: np.ndarray, input_offset: int, cp: np.ndarray, zp: int, lo: int,
         hi: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, pt: int, pl: int,
         oh: int, ow: int) -> tuple:
    """The kernel's arguments but the input and output (``run``), made once per layer: the
    weights (int8 [1, KH, KW, C]) expanded to rows of ow * C lanes (rounded up to 32, zero
    past the row) and packed per 32-lane block and tap pair in vpunpck{l,h}wd order; the int32
    bias and the requantization rows (``cp``: a FusedRequant's [6, >= C]) repeated to that
    width; the taps' offsets into the padded input."""
    c = w.shape[3]
    lanes = ow * c
    nb = (lanes + 31) // 32
    per = np.arange(nb * 32) % c
    t = kh * kw
    tp = (t + 1) // 2
    wt = np.zeros((2 * tp, nb * 32), np.int16)
    wt[:t] = np.asarray(w, np.int16).reshape(t, c)[:, per]
    wt[:, lanes:] = 0
    v = wt.reshape(tp, 2, nb, 32)[:, :, :, _DW_LANES32].reshape(tp, 2, nb, 2, 16)
    wpk = np.ascontiguousarray(v.transpose(2, 0, 3, 4, 1)).reshape(-1)
    # the bias in the accumulators' lane order (lo: lanes 0-3, 8-11, ...; hi: 4-7, 12-15, ...)
    bexp = np.asarray(bias, np.int32)[per].reshape(nb, 32)[:, _DW_LANES32]
    bexp = np.ascontiguousarray(bexp).reshape(-1)
    cpx = np.ascontiguousarray(np.asarray(cp, np.int32)[:6, per])
    qmax = ((kw - 1) * dw) // sw  # the largest tap offset, in pixels of a phase
    r = qmax * c + nb * 32  # a phase row: every tap's 32-lane loads stay inside it
    hp = (oh - 1) * sh + (kh - 1) * dh + 1
    tapo = np.empty(2 * tp, np.int64)
    for ky in range(kh):
        for kx in range(kw):
            tapo[ky * kw + kx] = (ky * dh * sw + (kx * dw) % sw) * r + ((kx * dw) // sw) * c
    if t & 1:
        tapo[t] = tapo[t - 1]  # the odd tap's partner: weights 0
    return (np.int64(input_offset), wpk, bexp, cpx, np.int64(zp), np.int64(lo), np.int64(hi),
            tapo, sh, sw, pt, pl, oh, ow, hp, r)


def run(x: np.ndarray, args: tuple, out: np.ndarray, macs: int) -> None:
    """The layer on int8 NHWC ``x`` (C-contiguous) into int8 ``out`` [N, oh, ow, C]."""
    bound_call(args, out, macs)(x)


def bound_call(args: tuple, out: np.ndarray, macs: int):
    """``call(x)`` = ``run(x, args, out, macs)`` for the engine's call plan: per thread count
    the threaded call (fnptr.ItemsCall); per input shape the serial part."""
    made = {}

    def call(x):
        nt = threads.count() if macs >= PARALLEL_MIN_MACS else 1
        if nt > 1:
            run = made.get(nt)
            if run is None:
                part = par_part(x, nt)
                run = made[nt] = ItemsCall(compiled_address(_sdw_serial, (x, *args, out, part)), part)
            run((x,), (x, *args, out))
            return
        part = made.get(x.shape)
        if part is None:
            part = made[x.shape] = serial_part(x)
        _sdw_serial(x, *args, out, part)
    return call


def thunk(x: np.ndarray, args: tuple, out: np.ndarray, macs: int):
    """``run(x, args, out, macs)`` for this very ``x`` as a call with every argument bound, or
    None for a layer whose thread count is chosen per call (registry.binder)."""
    if macs >= PARALLEL_MIN_MACS:
        return None
    return direct(_sdw_serial, x, *args, out, serial_part(x))


@njit(inline="always", **_NJ)
def _fill(x, n, off, pt, pl, sw, P, r0, r1):
    """P[r, p, q * C + c] = x[n, r - pt, q * sw + p - pl, c] + off for the rows r0 <= r < r1,
    0 outside the input."""
    _, H, W, C = x.shape
    hp, S, R = P.shape
    xf = x.reshape(x.size)
    Pf = P.reshape(P.size)
    for r in range(r0, r1):
        iy = r - pt
        if iy < 0 or iy >= H:
            Pf[r * S * R:(r + 1) * S * R] = 0  # 1-D: numba's 2-D slice fill is a slow loop
            continue
        src = (n * H + iy) * W * C
        if sw == 1:
            # one contiguous run: pixels ix0..ix1-1 at lanes (ix0 + pl) * C on
            d = P[r, 0]
            ix0 = max(0, -pl)
            ix1 = min(W, R // C - pl)
            a = (ix0 + pl) * C
            e = max(a, (ix1 + pl) * C)
            d[:a] = 0
            dd = d[a:e]  # slices: indices from range() need no negative-index check (vectorises)
            xs = xf[src + ix0 * C:src + ix0 * C + (e - a)]
            for k in range(e - a):
                dd[k] = xs[k] + off
            d[e:] = 0
            continue
        Pf[r * S * R:(r + 1) * S * R] = 0
        for p in range(sw):  # phase p: pixels p - pl, p - pl + sw, ... (no division per pixel)
            for q in range(R // C):
                ix = q * sw + p - pl
                if ix >= W:
                    break
                if ix >= 0:
                    _convert_run(Pf, (r * sw + p) * R + q * C, xf, src + ix * C, C, off)


@njit(inline="always", **_NJ)
def _rows(Pf, wpk, bexp, cpx, zp, lo, hi, tapo, sh, sw, R, lanes, oy0, oy1, o, ob):
    """Output rows oy0..oy1-1 of one image (Pf: its padded input, flat) into the flat int8
    output ``o``, the image's first row at ``ob``."""
    TP = tapo.shape[0] // 2
    nb = bexp.shape[0] // 32
    step = sh * sw * R  # one output row further down
    for b in range(nb):
        rq0 = _zrq_consts(cpx, 32 * b)
        rq1 = _zrq_consts(cpx, 32 * b + 16)
        blo = _zload_i32(bexp, 32 * b)
        bhi = _zload_i32(bexp, 32 * b + 16)
        nv = lanes - 32 * b
        wcb = b * TP * 64
        oy = oy0
        while oy + 2 <= oy1:
            pc = oy * step + 32 * b
            lo1 = blo
            hi1 = bhi
            lo2 = blo
            hi2 = bhi
            wo = wcb
            for p in range(TP):
                wl = _wload(wpk, wo)
                wh = _wload(wpk, wo + 32)
                wo += 64
                o1 = pc + tapo[2 * p]
                o2 = pc + tapo[2 * p + 1]
                xa = _wload(Pf, o1)
                xb = _wload(Pf, o2)
                lo1 = _wmadd_acc(lo1, _wunpack_lo(xa, xb), wl)
                hi1 = _wmadd_acc(hi1, _wunpack_hi(xa, xb), wh)
                xa = _wload(Pf, o1 + step)
                xb = _wload(Pf, o2 + step)
                lo2 = _wmadd_acc(lo2, _wunpack_lo(xa, xb), wl)
                hi2 = _wmadd_acc(hi2, _wunpack_hi(xa, xb), wh)
            at = ob + oy * lanes + 32 * b
            _zrq_store_c(o, at, _zchannels_lo(lo1, hi1), rq0, zp, lo, hi, nv)
            _zrq_store_c(o, at + 16, _zchannels_hi(lo1, hi1), rq1, zp, lo, hi, nv - 16)
            _zrq_store_c(o, at + lanes, _zchannels_lo(lo2, hi2), rq0, zp, lo, hi, nv)
            _zrq_store_c(o, at + lanes + 16, _zchannels_hi(lo2, hi2), rq1, zp, lo, hi, nv - 16)
            oy += 2
        if oy < oy1:
            pc = oy * step + 32 * b
            lo1 = blo
            hi1 = bhi
            wo = wcb
            for p in range(TP):
                xa = _wload(Pf, pc + tapo[2 * p])
                xb = _wload(Pf, pc + tapo[2 * p + 1])
                lo1 = _wmadd_acc(lo1, _wunpack_lo(xa, xb), _wload(wpk, wo))
                hi1 = _wmadd_acc(hi1, _wunpack_hi(xa, xb), _wload(wpk, wo + 32))
                wo += 64
            at = ob + oy * lanes + 32 * b
            _zrq_store_c(o, at, _zchannels_lo(lo1, hi1), rq0, zp, lo, hi, nv)
            _zrq_store_c(o, at + 16, _zchannels_hi(lo1, hi1), rq1, zp, lo, hi, nv - 16)


@njit(**_NJ)
def _sdw_serial(x, off, wpk, bexp, cpx, zp, lo, hi, tapo, sh, sw, pt, pl, oh, ow, hp, R, out, part):
    """Work items part[1] .. part[2] - 1, each a band of output rows of one image (part[0]
    bands an image): the band's input rows filled into ``P``, then its rows computed. Every
    item from Python (``serial_part``), one a call from fnptr.run_items_par (``par_part``):
    one compiled function both ways, and on threads each item fills only its own rows (a
    prange over images left the fill of a one-image layer on one thread: 112x112x16 took
    75 us on 2 threads against 86 on one)."""
    N, _, _, C = x.shape
    nb, i0, i1 = part
    P = np.empty((hp, sw, R), np.int16)
    Pf = P.reshape(P.size)
    o = out.reshape(out.size)
    for item in range(i0, i1):
        n = item // nb
        b = item - n * nb
        oy0 = b * oh // nb
        oy1 = (b + 1) * oh // nb
        if oy1 <= oy0:
            continue
        # the input rows the band's taps read: from its first row's top tap to its last row's
        # bottom one (hp - (oh - 1) * sh rows a output row spans)
        _fill(x, n, off, pt, pl, sw, P, oy0 * sh, hp - (oh - oy1) * sh)
        _rows(Pf, wpk, bexp, cpx, zp, lo, hi, tapo, sh, sw, R, ow * C, oy0, oy1, o,
              n * oh * ow * C)


def serial_part(x: np.ndarray) -> tuple:
    """_sdw_serial's ``part`` for every image of ``x`` in one call (one band an image)."""
    return (np.int64(1), np.int64(0), np.int64(x.shape[0]))


def par_part(x: np.ndarray, nt: int) -> tuple:
    """_sdw_serial's ``part`` for ``nt`` threads: ``nt`` bands of output rows an image."""
    return (np.int64(nt), np.int64(0), np.int64(x.shape[0] * nt))
