"""How the array runs each layer: tiling, cycles, utilisation, memory traffic, value ranges.

Formulas (docs/dataflow.md has them with a worked example). For a MAC layer:
  P = output pixels (N*OH*OW; FC: batch rows), C = output channels, K = reduction length
  (CONV KH*KW*Cin, DEPTHWISE KH*KW, FC depth), R x Cc = array rows x cols.

output_stationary: PE (r, c) owns output (pixel, channel); operands stream in skewed. The
cycles are the reference RTL's (hwsim/rtl/, an output-stationary array), pipeline included:
  tiles  = ceil(P/R) * ceil(C/Cc), each K + R + Cc - 2 cycles (K MAC steps + the systolic skew)
  a job (CONV / FC: a pixel tile, its im2col rows serving every channel tile; DEPTHWISE: a
  tile) is gathered into one of two banks, one activation word a cycle (the words its runs
  touch: a run of n elements from element s spans (s+n-1)//L - s//L + 1 words; a row with no
  tap inside the image, or past the last pixel, one cycle) while the array computes the job
  before; job j computes from max(end of job j-1, its gather done + MAC_JOB_READY);
  cycles = MAC_START + [that recursion] + MAC_TAIL + the last tile's drain writes
  (FC: one job, so its input row's gather is a prologue before the first product).
weight_stationary: PE (r, c) holds weight k = chunk*R + r of channel c; inputs stream through.
  tiles  = ceil(K/R) * ceil(C/Cc)
  cycles = tiles * (R + P + R + Cc - 2)          (R cycles to load the weights, P input
                                                  vectors, the fill/drain skew)
utilisation = MACs / (cycles * R * Cc).

Memory words (elements -> words with the memory's ``lanes`` per word, rounded up once per
stream): weights: wpc = ceil(K / lanes_w) words per channel; read ceil(P/R) * C * wpc (OS, the
weights stream again for every pixel tile) or C * wpc (WS, each word loaded once). Bias and
requant (one entry per channel, or one per layer for a per-tensor layer): read once per pixel
tile (OS) or once (WS). Activations read: OS the words the gather touches (above: a pixel
tile's im2col rows are fetched once and serve every channel tile, broadcast along the columns;
a DEPTHWISE column reads its own channel, so DEPTHWISE fetches per channel tile); WS the input
elements in words: CONV N * Sy * Sx * Cin (Sy = sum over output rows of the kernel rows inside
the image, Sx likewise), DEPTHWISE N * Sy * Sx * C, FC P * K.
Activations written: the output elements.

Vector layers run on the element engine, one activation word (L lanes) wide: ADD, SUB, MUL
cycles = 2 * ceil(E / L) + ELEM_WORD_FIXED (two input words per output word on the one read
port); a table layer (hwsim.vocab.TABLE_OPS) T + ceil(E / L) + ELEM_WORD_FIXED, T =
ceil(2^b / weight lanes) table words; MAX/AVERAGE_POOL and MEAN over H and W (an H x W window)
walk each lane group (L channels of one output pixel) through its window's taps inside the
image, per tap one cycle per word the group's run touches (a window with no tap inside: one
cycle), + POOL_FIXED; RESIZE_NEAREST_NEIGHBOR loads its out_h + out_w 16-bit source indices (T =
ceil(2 (OH + OW) / weight lanes) words), waits RESIZE_INDEX_WAIT, then walks a 1 x 1 window:
max(words read, words written) + POOL_FIXED.
RESHAPE/SQUEEZE (memory aliases), clamps placed "fused" or "input" (hwsim.hw.network) and host
layers: 0 cycles, 0 words.

Memory bound: each memory delivers one word per cycle (one read port; the activation memory's
writes go through its own port), so an array layer takes at least as many cycles as the words
it reads from its busiest memory: cycles = max(the formula above, words read per memory). The
output-stationary pipeline above already counts the activation words (a DEPTHWISE layer is
gather-bound: every PE column needs its own input channel); the reference RTL agrees with
these estimates within a cycle on the networks of docs/cosim.md ("Cycles").

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


# -- the reference RTL's timing (hwsim/rtl/; docs/dataflow.md section 3) ------------------------
# Fixed latencies, in cycles of the layer's engine (sts_cycles: start to done), per unit, read
# off the RTL's state machines and pipeline registers; with them the estimates equal the
# simulated sts_cycles to the cycle on the networks of docs/cosim.md ("Cycles"), and
# tests/test_rtl_cosim.py, test_rtl_units.py, test_rtl_narrow.py hold every array layer to
# 0.90-1.10.
#
# MAC engine (hwsim_mac_engine, hwsim_gather, hwsim_drain, hwsim_vec_writer):
MAC_START = 3       # S_IDLE -> S_SETUP -> units_start: the gather's first read address
MAC_JOB_READY = 2   # a job's last word lands (data registered) and jobs_done counts it
MAC_BANK_WAIT = 1   # G_WAIT -> G_RUN once the bank's job - 2 is released
MAC_TAIL = 12       # after the last tile's skew: operand / reader / PE registers (3), capture
                    # into the shadow bank (1), shadow read + requant + output registers (3),
                    # then S_END, S_FLUSH, S_FWAIT, S_DONE, done seen (5); plus, counted apart,
                    # one writer cycle per word each drained row of the last tile touches
# element engine (hwsim_elem_engine): word by word (ADD, SUB, MUL, TABLE)
ELEM_WORD_FIXED = 9   # start (1), data register + lane result write (2), end handshake: S_WAIT,
                      # S_FLUSH, S_FWAIT (2), S_DONE, done seen (6)
# pool unit (the element engine's walk: MAX/AVERAGE_POOL, MEAN, RESIZE_NEAREST_NEIGHBOR)
POOL_FIXED = 11       # start (1), read latency (2), result FIFO + vector writer (2), end
                      # handshake (6)
RESIZE_INDEX_WAIT = 3  # S_RWAIT: the last index word lands before the walk starts


def run_words(start, n, lanes: int):
    """Words a run of ``n`` >= 1 elements starting at element ``start`` touches, ``lanes``
    elements a word: (s + n - 1) // L - s // L + 1 (ints or numpy arrays)."""
    return (start + n - 1) // lanes - start // lanes + 1


def _window_bounds(out_size: int, in_size: int, k: int, stride: int, dil: int, pad: int):
    """Per output position: the input position of tap 0, the first and the last tap inside
    the input (first > last: none), as hwsim_gather computes them."""
    base = np.arange(out_size, dtype=np.int64) * stride - pad
    lo = np.where(base >= 0, 0, (dil - 1 - base) // dil)
    top = np.where(in_size - 1 - base < 0, -1, (in_size - 1 - base) // dil)
    return base, lo, np.minimum(top, k - 1)


def _taps(out_h, out_w, h, w, kh, kw, sh, sw, dh, dw, pt, pl, n):
    """Per pixel (n, oy, ox) x tap (ky, kx): the input pixel index and whether it is inside;
    shape [N, OH, OW, KH, KW] both; and the per-output-position tap bounds."""
    by, ky_lo, ky_hi = _window_bounds(out_h, h, kh, sh, dh, pt)
    bx, kx_lo, kx_hi = _window_bounds(out_w, w, kw, sw, dw, pl)
    ky, kx = np.arange(kh), np.arange(kw)
    iy = by[:, None] + ky[None, :] * dh                                     # [OH, KH]
    ix = bx[:, None] + kx[None, :] * dw                                     # [OW, KW]
    y_in = (ky[None, :] >= ky_lo[:, None]) & (ky[None, :] <= ky_hi[:, None])
    x_in = (kx[None, :] >= kx_lo[:, None]) & (kx[None, :] <= kx_hi[:, None])
    nn = np.arange(n, dtype=np.int64)[:, None, None, None, None]
    pix = (nn * h + iy[None, :, None, :, None]) * w + ix[None, None, :, None, :]
    inside = np.broadcast_to(y_in[None, :, None, :, None] & x_in[None, None, :, None, :],
                             pix.shape)
    return pix, inside, (ky_lo, kx_lo, kx_hi)


def _gather_rows(layer: Layer, program: Program, lanes: int, cols: int) -> np.ndarray:
    """Words hwsim_gather reads for each im2col row (output pixel), one word a cycle: per
    kernel row (CONV / FC with dilation_w 1: its inside taps are one run of
    (kx_hi - kx_lo + 1) * Cin elements) or per inside tap (dilated CONV: Cin elements;
    DEPTHWISE: the channel tile's input channels), the words the run touches; 0 for a row with
    no tap inside the image. Shape [P] (CONV / FC) or [channel tiles, P] (DEPTHWISE)."""
    p = layer.params
    if layer.op == "FULLY_CONNECTED":
        k = int(p.depth)
        return run_words(np.arange(int(p.batch), dtype=np.int64) * k, k, lanes)
    n, h, w, cin = program.tensors[layer.inputs[0]].shape
    _, kh, kw, _ = p.weights.shape
    pix, inside, (_, kx_lo, kx_hi) = _taps(
        p.out_h, p.out_w, h, w, kh, kw, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
        p.pad_top, p.pad_left, n)

    def per_row(words):  # the inside taps' words
        return np.where(inside, words, 0).sum(axis=(3, 4)).reshape(-1)

    if layer.op == "CONV_2D" and p.dilation_w == 1:
        # one run per kernel row, from tap kx_lo: count it at that tap only
        first = np.arange(kw)[None, :] == kx_lo[:, None]                   # [OW, KW]
        ln = (np.maximum(kx_hi - kx_lo + 1, 1) * cin)[None, None, :, None, None]
        words = np.where(first[None, None, :, None, :], run_words(pix * cin, ln, lanes), 0)
        return per_row(words)
    if layer.op == "CONV_2D":
        return per_row(run_words(pix * cin, cin, lanes))
    dm = max(int(p.depth_multiplier), 1)
    cout = int(p.weights.shape[3])
    rows = []
    for jct in range(0, cout, cols):  # a tile's columns read input channels jct // dm ...
        nic = (jct % dm + min(cols, cout - jct) - 1) // dm + 1
        rows.append(per_row(run_words(pix * cin + jct // dm, nic, lanes)))
    return np.stack(rows)


def _drain_writes(P: int, C: int, R: int, Cc: int, lanes: int) -> int:
    """Writer cycles of the last tile's drained rows: one per word each row (a pixel's ncols
    channels at pixel * C + first channel) touches."""
    ct = (ceil_div(C, Cc) - 1) * Cc
    pix = np.arange((ceil_div(P, R) - 1) * R, P, dtype=np.int64)
    return int(run_words(pix * C + ct, min(Cc, C - ct), lanes).sum())


def mac_pipeline(layer: Layer, program: Program, config) -> tuple[int, str, int]:
    """Cycles of an output-stationary MAC layer on the reference RTL: (cycles, the formula,
    activation words read). The gather fills job j + 1 (CONV / FC: a pixel tile; DEPTHWISE: a
    tile) into the other bank while the array computes job j (its tiles of K + R + Cc - 2
    cycles each; or, when the weight feed, one word a cycle, cannot keep pace - more columns
    than weight lanes -, the job's weight words, ncols * wpc a tile: the feed runs ahead into
    the next tile through the columns' FIFOs); a bank is refilled once the array has released
    the job two before. So:
    job j computes from max(end of job j - 1, gather of job j done + MAC_JOB_READY), and the
    layer ends MAC_TAIL + the last tile's drain writes after its last tile."""
    R, Cc = config.array.rows, config.array.cols
    lanes = config.memories.activations.lanes
    g = mac_geometry(layer, program)
    P, C, K = g["P"], g["C"], g["K"]
    n_pt, n_ct = ceil_div(P, R), ceil_div(C, Cc)
    skew, wpc = R + Cc - 2, ceil_div(K, config.memories.weights.lanes)
    # per channel tile: the systolic pass, and the tile's weight words (the feed: one a cycle)
    passes = [K + skew] * n_ct
    feeds = [min(Cc, C - ct) * wpc for ct in range(0, C, Cc)]
    words = _gather_rows(layer, program, lanes, Cc)
    rows = np.maximum(words, 1)  # a row without a word (all padding) still takes a cycle
    pad = n_pt * R - P  # and so does each row past the last pixel
    if layer.op == "DEPTHWISE_CONV_2D":
        rows = np.concatenate([rows, np.ones((rows.shape[0], pad), np.int64)], axis=1)
        gather = rows.reshape(n_ct, n_pt, R).sum(axis=2).T.reshape(-1)  # pixel tiles outer
        computes = [max(a, b) for a, b in zip(passes, feeds)] * n_pt
    else:
        gather = np.concatenate([rows, np.ones(pad, np.int64)]).reshape(n_pt, R).sum(axis=1)
        computes = [max(sum(passes), sum(feeds))] * n_pt
    t_gather, end = MAC_START, 0
    released: list[int] = []
    for j, gj in enumerate(gather.tolist()):
        if j >= 2 and released[j - 2] > t_gather:   # the bank is not free yet
            t_gather = released[j - 2] + MAC_BANK_WAIT
        t_gather += gj
        begin = max(end, t_gather + MAC_JOB_READY)
        end = begin + computes[j]
        released.append(end - skew + R - 1)  # row R-1 has read the job's last step
    drain = _drain_writes(P, C, R, Cc, lanes)
    cycles = end + MAC_TAIL + drain
    first = int(gather[0])
    formula = (f"{MAC_START} + {first} (job 0 gathered) + {MAC_JOB_READY} + jobs: "
               f"{len(gather)} x max({'/'.join(map(str, sorted(set(computes))))} compute, "
               f"next gather; {int(gather.sum())} "
               f"gather cycles in all) + {MAC_TAIL} + {drain} drain writes = {cycles}")
    return cycles, formula, int(words.sum())


def _walk(pix: np.ndarray, inside: np.ndarray, c: int, lanes: int) -> tuple[int, int]:
    """The pool unit's walk over ``pix`` / ``inside`` ([pixels, taps]: input pixel, inside the
    image): each lane group (``lanes`` channels of one output pixel) takes, per tap inside
    the image, one cycle per word its run touches (the taps in the padding are skipped; a
    window with no tap inside takes one cycle). Returns (cycles, words read)."""
    groups = np.arange(0, c, lanes, dtype=np.int64)
    glen = np.minimum(lanes, c - groups)
    words = np.where(inside[:, :, None],
                     run_words(pix[:, :, None] * c + groups, glen, lanes), 0).sum(axis=1)
    return int(np.maximum(words, 1).sum()), int(words.sum())


def _group_writes(pixels: int, c: int, lanes: int) -> int:
    """Vector writer cycles of a walk's output: one per word each lane group touches."""
    groups = np.arange(0, c, lanes, dtype=np.int64)
    e0 = np.arange(pixels, dtype=np.int64)[:, None] * c + groups
    return int(run_words(e0, np.minimum(lanes, c - groups), lanes).sum())


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
        L = mem.activations.lanes  # the element engine and the pool unit: a memory word wide
        if layer.op in MAC_OPS:
            g = mac_geometry(layer, program)
            P, C, K = g["P"], g["C"], g["K"]
            st.P, st.C, st.K, st.macs = P, C, K, int(layer.macs)
            st.dataflow = config.array.dataflow
            wpc = ceil_div(K, mem.weights.lanes)
            if config.array.dataflow == "output_stationary":
                st.tiles = ceil_div(P, R) * ceil_div(C, Cc)
                st.cycles, st.formula, act_in = mac_pipeline(layer, program, config)
                reloads = ceil_div(P, R)
            else:  # what a weight-stationary array takes (the reference RTL has none)
                st.tiles = ceil_div(K, R) * ceil_div(C, Cc)
                st.cycles = st.tiles * (R + P + R + Cc - 2)
                st.formula = (f"ceil({K}/{R})*ceil({C}/{Cc}) * ({R} + {P} + {R} + {Cc} - 2) "
                              f"= {st.cycles}")
                reloads = 1
                act_in = _words({"DEPTHWISE_CONV_2D": g["taps"] * C,
                                 "CONV_2D": g["taps"] * g.get("cin", 1)}.get(
                                     layer.op, g["taps"]), mem.activations)
            st.words["weights"]["read"] = reloads * C * wpc
            st.words["bias"]["read"] = reloads * _words(C, mem.bias)
            st.words["requant"]["read"] = reloads * _words(g["n_rq"], mem.requant)
            st.words["activations"]["read"] = act_in
        elif layer.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN"):
            p = layer.params
            n, h, w, c = program.tensors[layer.inputs[0]].shape
            if layer.op == "MEAN":  # over H and W: the pool walk with an H x W window
                win = (1, 1, h, w, h, w, 1, 1, 1, 1, 0, 0, n)
                st.P, st.K = int(n), int(h * w)
                st.words["requant"]["read"] = 1
            else:
                win = (p.out_h, p.out_w, h, w, p.filter_h, p.filter_w, p.stride_h,
                       p.stride_w, 1, 1, p.pad_top, p.pad_left, n)
                st.P, st.K = int(n * p.out_h * p.out_w), int(p.filter_h * p.filter_w)
            st.C = int(c)
            pix, inside, _ = _taps(*win)
            walk, reads = _walk(pix.reshape(st.P, -1), inside.reshape(st.P, -1), c, L)
            st.tiles = st.P * ceil_div(c, L)
            st.cycles = walk + POOL_FIXED
            st.formula = (f"{st.tiles} lane groups x {st.K} taps: {walk} word reads + "
                          f"{POOL_FIXED} = {st.cycles}")
            st.words["activations"]["read"] = reads
        elif layer.op == "RESIZE_NEAREST_NEIGHBOR":  # the index words, then a 1 x 1 walk
            p = layer.params
            n, h, w, c = program.tensors[layer.inputs[0]].shape
            t = _words(2 * (len(p.y_index) + len(p.x_index)), mem.weights)
            yi = np.asarray(p.y_index, np.int64)
            xi = np.asarray(p.x_index, np.int64)
            pix = ((np.arange(n)[:, None, None] * h + yi[None, :, None]) * w
                   + xi[None, None, :]).reshape(-1, 1)
            st.P, st.C = pix.shape[0], int(c)
            reads, _ = _walk(pix, np.ones_like(pix, bool), c, L)
            writes = _group_writes(st.P, c, L)
            walk = max(reads, writes)  # a group straddling two output words: two writes
            st.tiles = st.P * ceil_div(c, L)
            st.cycles = t + RESIZE_INDEX_WAIT + walk + POOL_FIXED
            st.formula = (f"{t} index words + {RESIZE_INDEX_WAIT} + max({reads} reads, "
                          f"{writes} writes) + {POOL_FIXED} = {st.cycles}")
            st.words["weights"]["read"] = t
            st.words["activations"]["read"] = reads
        elif layer.op in TABLE_OPS:  # the table's words, then one pass over the words
            entries = 1 << max(config.data.input_bits, 1)
            t = _words(entries, mem.weights)
            st.tiles = ceil_div(out_elems, L)
            st.cycles = t + st.tiles + ELEM_WORD_FIXED
            st.formula = (f"{t} table words + ceil({out_elems}/{L}) + {ELEM_WORD_FIXED} = "
                          f"{st.cycles}")
            st.words["weights"]["read"] = t
            st.words["activations"]["read"] = st.tiles
        else:  # ADD, SUB, MUL: two input words per output word on the one read port
            st.tiles = ceil_div(out_elems, L)
            st.cycles = 2 * st.tiles + ELEM_WORD_FIXED
            st.formula = f"2 * ceil({out_elems}/{L}) + {ELEM_WORD_FIXED} = {st.cycles}"
            st.words["activations"]["read"] = 2 * st.tiles
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
