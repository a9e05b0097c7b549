"""Weight packing of the fast MAC kernels (hwsim.kernels.mac): TFLite's int8 weight arrays laid
out as the tile kernels (hwsim.kernels.mac_tiles) read them, and back.

Done once per layer and Network, in the MAC kernels' prepare step (hwsim.kernels.conv); the
public functions of hwsim.kernels.mac accept either the raw array or the packed form. The
unpack functions invert the packing (the reference path and the tests use them).
"""
from __future__ import annotations

import numpy as np

from ..util import aligned_bytes


class PackedConvWeights:
    """CONV_2D / FULLY_CONNECTED weights in the fast kernel's layout (see ``pack_conv2d_weights``)."""

    __slots__ = ("data", "data_run", "shape", "groups", "cout_g", "ocb_g", "quads")

    def __init__(self, data, data_run, shape, groups, cout_g, ocb_g):
        self.quads = None  # quad_weights(self), made on the first VNNI call
        self.data = data
        self.data_run = data_run
        self.shape = shape
        self.groups = groups
        self.cout_g = cout_g
        self.ocb_g = ocb_g

    def __repr__(self):
        return f"PackedConvWeights(shape={self.shape}, groups={self.groups})"


class PackedDepthwiseWeights:
    """DEPTHWISE_CONV_2D weights in the fast kernel's layout (see ``pack_depthwise_weights``)."""

    __slots__ = ("data", "shape", "depth_multiplier", "data32", "data3v")

    def __init__(self, data, shape, depth_multiplier):
        self.data32 = None  # depthwise_weights32(self), made on the first 512-bit call
        self.data3v = None  # depthwise_weights3v(self), made on the first 3x3 stride-1 call
        self.data = data
        self.shape = shape
        self.depth_multiplier = depth_multiplier

    def __repr__(self):
        return f"PackedDepthwiseWeights(shape={self.shape}, depth_multiplier={self.depth_multiplier})"


def aligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts on a cache line (util.CACHE_LINE).
    Packed constants that kernels read with 64-byte vector loads are made so: a load that
    straddles two lines costs two (depthwise_vnni's weights and requantization constants at
    16- or 48-byte offsets took a 14x14x384 layer from 21-24 us to 27-34 us; over
    mobilenet_v2, aligned against numpy's 16-byte alignment, both interleaved in one process:
    DEPTHWISE 0.93-0.95x and CONV_2D 0.99x on one thread, 0.96x and 0.97x on two; Zen 4)."""
    out = aligned_bytes(a.nbytes).view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _check_int8_weights(w, ndim, what):
    if not isinstance(w, np.ndarray) or w.ndim != ndim:
        raise ValueError(f"{what}: weights must be a {ndim}-d numpy array")
    if w.dtype != np.int8:
        raise ValueError(f"{what}: weights must be int8, got {w.dtype}")


def pack_conv2d_weights(w: np.ndarray, groups: int = 1) -> PackedConvWeights:
    """Pack TFLite OHWI int8 conv weights [Cout, KH, KW, Cin/groups] for ``conv2d_acc``.

    Returns a ``PackedConvWeights``; its ``data`` is a flat int16 array laid out as
    [groups][ceil(Cout_g/16)][KH*KW][ceil(Cin_g/2)][16 filters][2 channels], and (groups == 1)
    ``data_run`` as [ceil(Cout/16)][KH][ceil(KW*Cin/2)][16][2]: each kernel row's KW*Cin
    weights as one run (the same array as ``data`` when Cin is even).  Zeros pad.
    """
    _check_int8_weights(w, 4, "conv2d")
    Cout, KH, KW, Cg = (int(s) for s in w.shape)
    groups = int(groups)
    if groups < 1 or Cout % groups:
        raise ValueError(f"conv2d: {Cout} filters cannot be split into {groups} groups")
    Coutg = Cout // groups
    OCBg = (Coutg + 15) // 16
    data = _pack_runs(w.reshape(groups, Coutg, KH * KW, Cg), OCBg)
    data_run = data
    if groups == 1 and Cg % 2:
        data_run = _pack_runs(w.reshape(1, Cout, KH, KW * Cg), OCBg)
    return PackedConvWeights(data, data_run, (Cout, KH, KW, Cg), groups, Coutg, OCBg)


def _pack_runs(w4, OCB):
    """[G, Coutg, S, L] -> flat [G][OCB][S][ceil(L/2)][16][2] int16, zero padded."""
    G, Coutg, S, L = w4.shape
    L2 = L + (L & 1)
    wq = np.zeros((G, OCB * 16, S, L2), np.int16)
    wq[:, :Coutg, :, :L] = w4
    # move whole (channel pair) int32 units: much faster than a transpose of int16 pairs
    v = wq.view(np.int32).reshape(G, OCB, 16, S, L2 // 2).transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(v).view(np.int16).reshape(-1)


def _pack_quads(w4, OCB):
    """[G, Coutg, S, L] int8 -> flat [G][OCB][S][ceil(L/4)][16][4] int8, zero padded."""
    G, Coutg, S, L = w4.shape
    L4 = (L + 3) // 4 * 4
    wq = np.zeros((G, OCB * 16, S, L4), np.int8)
    wq[:, :Coutg, :, :L] = w4
    v = wq.view(np.int32).reshape(G, OCB, 16, S, L4 // 4).transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(v).view(np.int8).reshape(-1)


def quad_weights(pk: PackedConvWeights):
    """The VNNI kernels' weights (hwsim.kernels.mac_vnni) of ``pk``, made once and kept on it:
    (per-tap quads [G][OCB][KH*KW][ceil(Cg/4)][16][4], (groups == 1) per-row runs
    [OCB][KH][ceil(KW*Cg/4)][16][4], int64 sum of each filter's weights)."""
    if pk.quads is None:
        w = unpack_conv2d_weights(pk)
        Cout, KH, KW, Cg = pk.shape
        q = _pack_quads(w.reshape(pk.groups, pk.cout_g, KH * KW, Cg), pk.ocb_g)
        q_run = q
        if pk.groups == 1 and Cg % 4:
            q_run = _pack_quads(w.reshape(1, Cout, KH, KW * Cg), pk.ocb_g)
        wsum = np.ascontiguousarray(w.reshape(Cout, -1).sum(axis=1, dtype=np.int64))
        q = aligned(q)
        pk.quads = (q, q if q_run is q else aligned(q_run), wsum)
    return pk.quads


def pack_fully_connected_weights(w: np.ndarray) -> PackedConvWeights:
    """Pack int8 FC weights [Cout, K] for ``fully_connected_acc`` (a 1x1 conv packing)."""
    _check_int8_weights(w, 2, "fully_connected")
    return pack_conv2d_weights(w.reshape(w.shape[0], 1, 1, w.shape[1]), 1)


_DW_LANES = np.array([0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15])


def pack_depthwise_weights(w: np.ndarray, depth_multiplier: int = 1) -> PackedDepthwiseWeights:
    """Pack TFLite int8 depthwise weights [1, KH, KW, Cin*depth_multiplier] for ``depthwise_conv2d_acc``.

    Returns a ``PackedDepthwiseWeights`` whose ``data`` is a flat int16 array laid out as
    [ceil(Cout/16)][ceil(KH*KW/2) tap pairs][32]: per tap pair the two taps' weights of 16
    channels interleaved in vpunpck{l,h}wd lane order (zeros pad).
    """
    _check_int8_weights(w, 4, "depthwise_conv2d")
    if w.shape[0] != 1:
        raise ValueError(f"depthwise_conv2d: weights must be [1, KH, KW, C], got {w.shape}")
    _, KH, KW, Cout = (int(s) for s in w.shape)
    dm = int(depth_multiplier)
    if dm < 1 or Cout % dm:
        raise ValueError(f"depthwise_conv2d: {Cout} channels is not a multiple of depth_multiplier {dm}")
    T = KH * KW
    TP = (T + 1) // 2
    NCB = (Cout + 15) // 16
    wt = np.zeros((2 * TP, NCB * 16), np.int16)
    wt[:T, :Cout] = w.reshape(T, Cout)
    # [tap pair, e, block, half*8 + i] -> [block, pair, half, i, e]
    v = wt.reshape(TP, 2, NCB, 16)[:, :, :, _DW_LANES].reshape(TP, 2, NCB, 2, 8)
    data = np.ascontiguousarray(v.transpose(2, 0, 3, 4, 1)).reshape(-1)
    return PackedDepthwiseWeights(data, (1, KH, KW, Cout), dm)



_DW_LANES32 = np.array([8 * q + i for q in range(4) for i in range(4)]
                       + [8 * q + 4 + i for q in range(4) for i in range(4)])


def depthwise_weights32(pk: PackedDepthwiseWeights) -> np.ndarray:
    """The 512-bit depthwise kernel's weights (hwsim.kernels.depthwise_zmm) of ``pk``, made once
    and kept on it: [ceil(Cout/32)][tap pairs][64], per tap pair the two taps' weights of 32
    channels interleaved in the lane order of vpunpck{l,h}wd on zmm (zeros pad)."""
    if pk.data32 is None:
        w = unpack_depthwise_weights(pk)
        _, KH, KW, Cout = pk.shape
        T = KH * KW
        TP = (T + 1) // 2
        NCB = (Cout + 31) // 32
        wt = np.zeros((2 * TP, NCB * 32), np.int16)
        wt[:T, :Cout] = w.reshape(T, Cout)
        v = wt.reshape(TP, 2, NCB, 32)[:, :, :, _DW_LANES32].reshape(TP, 2, NCB, 2, 16)
        pk.data32 = np.ascontiguousarray(v.transpose(2, 0, 3, 4, 1)).reshape(-1)
    return pk.data32


#: depthwise_weights3v's tap pairs of a 3x3 kernel (taps numbered ky * 3 + kx): kernel rows 0
#: and 1 at kx = 0, 1, 2, then row 2's kx = 0 and 1, then row 2's kx = 2 with a zero weight.
_TAPS3V = [0, 3, 1, 4, 2, 5, 6, 7, 8]


def depthwise_weights3v(pk: PackedDepthwiseWeights) -> np.ndarray:
    """A 3x3 layer's weights for the 16-channel kernel's stride-1 path (mac_tiles._dw_serial,
    ``wv``), made once and kept on ``pk``: [ceil(Cout/16)][5 tap pairs][32] as
    pack_depthwise_weights lays them out, with the taps paired vertically (_TAPS3V): an input
    column's rows 0 and 1 interleaved once serve the three output pixels that read it."""
    if pk.data3v is None:
        w = unpack_depthwise_weights(pk)
        _, KH, KW, Cout = pk.shape
        if (KH, KW) != (3, 3):
            raise ValueError(f"depthwise_weights3v: a 3x3 kernel, not {KH}x{KW}")
        NCB = (Cout + 15) // 16
        wt = np.zeros((10, NCB * 16), np.int16)
        wt[:9, :Cout] = w.reshape(9, Cout)[_TAPS3V]
        v = wt.reshape(5, 2, NCB, 16)[:, :, :, _DW_LANES].reshape(5, 2, NCB, 2, 8)
        pk.data3v = aligned(np.ascontiguousarray(v.transpose(2, 0, 3, 4, 1)).reshape(-1))
    return pk.data3v


def unpack_conv2d_weights(pk: PackedConvWeights) -> np.ndarray:
    """The int8 OHWI weights that ``pk`` was packed from."""
    Cout, KH, KW, Cg = pk.shape
    G, Coutg, OCBg = pk.groups, pk.cout_g, pk.ocb_g
    Cg2 = Cg + (Cg & 1)
    v = pk.data.reshape(G, OCBg, KH * KW, Cg2 // 2, 16, 2).transpose(0, 1, 4, 2, 3, 5)
    v = v.reshape(G, OCBg * 16, KH * KW, Cg2)[:, :Coutg, :, :Cg]
    return np.ascontiguousarray(v.reshape(Cout, KH, KW, Cg)).astype(np.int8)


def unpack_depthwise_weights(pk: PackedDepthwiseWeights) -> np.ndarray:
    """The int8 [1, KH, KW, C] weights that ``pk`` was packed from."""
    _, KH, KW, Cout = pk.shape
    T = KH * KW
    TP = (T + 1) // 2
    NCB = (Cout + 15) // 16
    v = pk.data.reshape(NCB, TP, 2, 8, 2).transpose(1, 4, 0, 2, 3).reshape(TP, 2, NCB, 16)
    wt = np.empty_like(v)
    wt[:, :, :, _DW_LANES] = v
    return wt.reshape(2 * TP, NCB * 16)[:T, :Cout].reshape(1, KH, KW, Cout).astype(np.int8)

