"""How the array runs each layer: tiling, cycles, utilisation, memory traffic, value ranges.

Formulas (docs/dataflow.md has them with a worked example). For a MAC layer:
  P = output pixels (N*OH*OW; FC: batch rows), C = output channels, K = reduction length
  (CONV KH*KW*Cin, DEPTHWISE KH*KW, FC depth), R x Cc = array rows x cols.

output_stationary: PE (r, c) owns output (pixel, channel); operands stream in skewed.
  tiles  = ceil(P/R) * ceil(C/Cc)
  cycles = tiles * (K + R + Cc - 2)              (K MAC steps + the systolic fill/drain skew)
weight_stationary: PE (r, c) holds weight k = chunk*R + r of channel c; inputs stream through.
  tiles  = ceil(K/R) * ceil(C/Cc)
  cycles = tiles * (R + P + R + Cc - 2)          (R cycles to load the weights, P input
                                                  vectors, the fill/drain skew)
utilisation = MACs / (cycles * R * Cc).

Memory words (elements -> words with the memory's ``lanes`` per word, rounded up once per
stream): weights: wpc = ceil(K / lanes_w) words per channel; read ceil(P/R) * C * wpc (OS, the
weights stream again for every pixel tile) or C * wpc (WS, each word loaded once). Bias and
requant (one entry per channel, or one per layer for a per-tensor layer): read once per pixel
tile (OS) or once (WS). Activations read: the input elements the array fetches:
CONV N * Sy * Sx * Cin (Sy = sum over output rows of the kernel rows inside the image, Sx
likewise; a pixel tile's im2col rows are fetched once and serve every channel tile, broadcast
along the columns), DEPTHWISE N * Sy * Sx * C (each column reads its own channel), FC P * K.
Activations written: the output elements.

Vector layers (no MACs) use the Cc column lanes: MAX/AVERAGE_POOL cycles =
ceil(N*OH*OW*C / Cc) * FH*FW, reads N*Sy*Sx*C elements; MEAN over H and W the same with an
H x W window (ceil(N*C / Cc) * H*W); ADD, SUB, MUL cycles = ceil(E / Cc), reads 2E; a table
layer (hwsim.vocab.TABLE_OPS) loads its 2^b-entry table first: cycles = T + ceil(E / Cc), T =
ceil(2^b / weight lanes) weight words read, then reads E; RESIZE_NEAREST_NEIGHBOR loads its
out_h + out_w 16-bit source indices (T = ceil(2 (OH + OW) / weight lanes) words), then
cycles = T + ceil(N*OH*OW*C / Cc), reads the output's worth of elements.
RESHAPE/SQUEEZE (memory aliases), clamps placed "fused" or "input" (hwsim.hw.network) and host
layers: 0 cycles, 0 words.

Memory bound: each memory delivers one word per cycle (one read port; the activation memory's
writes go through its own port), so an array layer takes at least as many cycles as the words
it reads from its busiest memory: cycles = max(the formula above, words read per memory). The
bound is what a DEPTHWISE layer meets (every PE column needs its own input channel: R words per
reduction step against one word per cycle) and an ADD (two input words per output word); the
reference RTL (hwsim/rtl/) agrees with it (docs/cosim.md, the RTL/model cycle ratios).

:func:`tensor_ranges` is the static range analysis the headroom and legalization use: the
network inputs span their dtype; a layer that clamps its output to [act_min, act_max] gives
that range (pooling: the input's range clamped), an alias keeps its input's range, MAXIMUM /
MINIMUM the max / min of their operands' ranges, any other layer its dtype's range.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..program import Layer, Program
from ..vocab import ALIAS_OPS, ARRAY_OPS, MAC_OPS, QRANGE, TABLE_OPS


def ceil_div(a: int, b: int) -> int:
    return -(-int(a) // int(b))


@dataclass
class LayerStats:
    """Per-layer statistics of one run on the array (see the module docstring's formulas)."""
    layer: int  # the layer's index
    op: str
    placement: str  # array | alias | fused | input | host
    dataflow: str = ""
    P: int = 0  # output pixels (FC: batch rows)
    C: int = 0  # output channels
    K: int = 0  # reduction length
    macs: int = 0
    tiles: int = 0
    cycles: int = 0
    utilisation: float = 0.0
    words: dict = field(default_factory=dict)  # memory -> {"read": n, "written": n}
    formula: str = ""  # the cycle formula with this layer's numbers

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["words"] = {k: dict(v) for k, v in self.words.items()}
        return d


def _valid_taps(out_size: int, in_size: int, k: int, stride: int, dil: int, pad: int) -> int:
    """sum over output positions of the kernel taps that fall inside the input."""
    total = 0
    for o in range(out_size):
        base = o * stride - pad
        total += sum(1 for t in range(k) if 0 <= base + t * dil < in_size)
    return total


def mac_geometry(layer: Layer, program: Program) -> dict:
    """P, C, K, the input elements fetched per channel tile, and the in-image tap count."""
    p = layer.params
    xs = program.tensors[layer.inputs[0]].shape
    if layer.op == "FULLY_CONNECTED":
        cout, k = p.weights.shape
        return dict(P=int(p.batch), C=int(cout), K=int(k), taps=int(p.batch) * int(k),
                    n_rq=len(np.atleast_1d(p.requant.multiplier)))
    n, h, w, cin = xs
    if layer.op == "CONV_2D":
        cout, kh, kw, _ = p.weights.shape
        kred = kh * kw * cin
    else:
        _, kh, kw, cout = p.weights.shape
        kred = kh * kw
    sy = _valid_taps(p.out_h, h, kh, p.stride_h, p.dilation_h, p.pad_top)
    sx = _valid_taps(p.out_w, w, kw, p.stride_w, p.dilation_w, p.pad_left)
    return dict(P=int(n * p.out_h * p.out_w), C=int(cout), K=int(kred),
                taps=int(n * sy * sx), n_rq=len(np.atleast_1d(p.requant.multiplier)),
                cin=int(cin))


def _words(elems: int, mem) -> int:
    return ceil_div(elems, mem.lanes) if elems else 0


def layer_stats(program: Program, config, placement: dict[int, str] | None = None
                ) -> list[LayerStats]:
    """One :class:`LayerStats` per layer of ``program`` on ``config`` (an AccelConfig).

    ``placement`` (layer index -> array/alias/host) defaults to: ARRAY_OPS on the array,
    RESHAPE/SQUEEZE aliases, everything else host.
    """
    R, Cc = config.array.rows, config.array.cols
    mem = config.memories
    out: list[LayerStats] = []
    for layer in program.layers:
        where = (placement or {}).get(layer.index) or (
            "array" if layer.op in ARRAY_OPS else "alias" if layer.op in ALIAS_OPS else "host")
        st = LayerStats(layer.index, layer.op, where)
        zero = {m: {"read": 0, "written": 0} for m in ("weights", "bias", "requant",
                                                     "activations")}
        st.words = zero
        if where != "array":
            out.append(st)
            continue
        out_elems = int(np.prod(program.tensors[layer.outputs[0]].shape))
        if layer.op in MAC_OPS:
            g = mac_geometry(layer, program)
            P, C, K = g["P"], g["C"], g["K"]
            st.P, st.C, st.K, st.macs = P, C, K, int(layer.macs)
            st.dataflow = config.array.dataflow
            wpc = ceil_div(K, mem.weights.lanes)
            if config.array.dataflow == "output_stationary":
                st.tiles = ceil_div(P, R) * ceil_div(C, Cc)
                st.cycles = st.tiles * (K + R + Cc - 2)
                st.formula = (f"ceil({P}/{R})*ceil({C}/{Cc}) * ({K} + {R} + {Cc} - 2) = "
                              f"{st.cycles}")
                reloads = ceil_div(P, R)
            else:
                st.tiles = ceil_div(K, R) * ceil_div(C, Cc)
                st.cycles = st.tiles * (R + P + R + Cc - 2)
                st.formula = (f"ceil({K}/{R})*ceil({C}/{Cc}) * ({R} + {P} + {R} + {Cc} - 2) "
                              f"= {st.cycles}")
                reloads = 1
            st.words["weights"]["read"] = reloads * C * wpc
            st.words["bias"]["read"] = reloads * _words(C, mem.bias)
            st.words["requant"]["read"] = reloads * _words(g["n_rq"], mem.requant)
            if layer.op == "DEPTHWISE_CONV_2D":
                act_in = g["taps"] * C
            elif layer.op == "CONV_2D":
                act_in = g["taps"] * g["cin"]
            else:
                act_in = g["taps"]
            st.words["activations"]["read"] = _words(act_in, mem.activations)
        elif layer.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            p = layer.params
            n, h, w, c = program.tensors[layer.inputs[0]].shape
            fh, fw = p.filter_h, p.filter_w
            st.P, st.C, st.K = int(n * p.out_h * p.out_w), int(c), int(fh * fw)
            st.tiles = ceil_div(out_elems, Cc)
            st.cycles = st.tiles * fh * fw
            st.formula = f"ceil({out_elems}/{Cc}) * {fh}*{fw} = {st.cycles}"
            sy = _valid_taps(p.out_h, h, fh, p.stride_h, 1, p.pad_top)
            sx = _valid_taps(p.out_w, w, fw, p.stride_w, 1, p.pad_left)
            st.words["activations"]["read"] = _words(n * sy * sx * c, mem.activations)
        elif layer.op == "MEAN":  # over H and W: the pool unit with an H x W window
            n, h, w, c = program.tensors[layer.inputs[0]].shape
            st.P, st.C, st.K = int(n), int(c), int(h * w)
            st.tiles = ceil_div(out_elems, Cc)
            st.cycles = st.tiles * h * w
            st.formula = f"ceil({out_elems}/{Cc}) * {h}*{w} = {st.cycles}"
            st.words["activations"]["read"] = _words(n * h * w * c, mem.activations)
            st.words["requant"]["read"] = 1
        elif layer.op == "RESIZE_NEAREST_NEIGHBOR":  # the index words, then a 1 x 1 walk
            p = layer.params
            t = _words(2 * (len(p.y_index) + len(p.x_index)), mem.weights)
            st.tiles = ceil_div(out_elems, Cc)
            st.cycles = t + st.tiles
            st.formula = f"{t} index words + ceil({out_elems}/{Cc}) = {st.cycles}"
            st.words["weights"]["read"] = t
            st.words["activations"]["read"] = _words(out_elems, mem.activations)
        elif layer.op in TABLE_OPS:  # the table's words, then one pass over the elements
            entries = 1 << max(config.data.input_bits, 1)
            t = _words(entries, mem.weights)
            st.tiles = ceil_div(out_elems, Cc)
            st.cycles = t + st.tiles
            st.formula = f"{t} table words + ceil({out_elems}/{Cc}) = {st.cycles}"
            st.words["weights"]["read"] = t
            st.words["activations"]["read"] = _words(out_elems, mem.activations)
        else:  # ADD, SUB, MUL
            in_elems = sum(int(np.prod(program.tensors[i].shape)) for i in layer.inputs)
            st.tiles = ceil_div(out_elems, Cc)
            st.cycles = st.tiles
            st.formula = f"ceil({out_elems}/{Cc}) = {st.cycles}"
            st.words["activations"]["read"] = _words(in_elems, mem.activations)
            st.words["requant"]["read"] = 1
        st.words["activations"]["written"] = _words(out_elems, mem.activations)
        busiest, reads = max(((m, w["read"]) for m, w in st.words.items()),
                             key=lambda mw: mw[1])
        if reads > st.cycles:  # the memory bound (module docstring)
            st.formula = f"max({st.formula}, {reads} words read from {busiest}) = {reads}"
            st.cycles = reads
        st.utilisation = st.macs / (st.cycles * R * Cc) if st.cycles else 0.0
        out.append(st)
    return out


def format_stats(stats: list[LayerStats]) -> str:
    """A text table of :func:`layer_stats` (one line per layer, then the totals)."""
    hdr = (f"{'#':>3} {'op':<18} {'where':<5} {'MACs':>10} {'cycles':>10} {'util':>6} "
           f"{'w rd':>8} {'b rd':>6} {'rq rd':>6} {'act rd':>8} {'act wr':>8}")
    lines = [hdr]
    for s in stats:
        w = s.words
        lines.append(f"{s.layer:>3} {s.op:<18} {s.placement:<5} {s.macs:>10} {s.cycles:>10} "
                     f"{s.utilisation:>6.1%} {w['weights']['read']:>8} {w['bias']['read']:>6} "
                     f"{w['requant']['read']:>6} {w['activations']['read']:>8} "
                     f"{w['activations']['written']:>8}")
    macs = sum(s.macs for s in stats)
    cyc = sum(s.cycles for s in stats)
    lines.append(f"total: {macs} MACs, {cyc} cycles")
    return "\n".join(lines)


# -- static value ranges ----------------------------------------------------------------------

_CLAMPING_KERNELS = ("conv2d", "depthwise_conv2d", "fully_connected", "add_sub", "mul",
                     "requantize")


def tensor_ranges(program: Program) -> dict[int, tuple[int, int]]:
    """Sound [lo, hi] of every integer activation tensor (module docstring)."""
    def dtype_range(i):
        dt = program.tensors[i].dtype
        return QRANGE.get(np.dtype(dt)) if dt is not None else None

    rng: dict[int, tuple[int, int]] = {}
    for i in program.inputs:
        r = dtype_range(i)
        if r is not None:
            rng[i] = r
    for layer in program.layers:
        p = layer.params
        for t in layer.outputs:
            r = dtype_range(t)
            if r is None:
                continue
            if layer.kernel in _CLAMPING_KERNELS and p.clamp() is not None:
                act_min, act_max = p.clamp()
                r = (max(r[0], act_min), min(r[1], act_max))
            elif layer.kernel == "pool2d" and layer.inputs and layer.inputs[0] in rng:
                lo, hi = rng[layer.inputs[0]]
                act_min, act_max = p.clamp()
                clamp = lambda v: min(max(v, act_min), act_max)  # noqa
                r = (clamp(lo), clamp(hi))
            elif layer.op in ALIAS_OPS and layer.inputs and layer.inputs[0] in rng:
                r = rng[layer.inputs[0]]
            elif layer.kernel == "maximum_minimum":
                # max(a, b) lies in [max(a_lo, b_lo), max(a_hi, b_hi)] (min: likewise)
                rs = [rng.get(i) for i in layer.inputs] + [
                    (int(np.min(v)), int(np.max(v))) for v in p.constants.values()
                    if np.size(v)]
                if rs and all(x is not None for x in rs):
                    pick = max if p.is_max else min
                    r = (max(r[0], pick(x[0] for x in rs)), min(r[1], pick(x[1] for x in rs)))
            rng[t] = r
    return rng
