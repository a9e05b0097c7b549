"""Accumulator headroom: per MAC layer, how close the accumulator comes to acc_bits.

For each MAC layer (on the inputs the layer saw in a trace, and statically):
  * observed: min/max of the exact final sums, and of every exact intermediate the array forms
    in its order (output_stationary: bias + prefix sums; weight_stationary: the column partial
    sums and the accumulator after each chunk) — hwsim.kernels.accumulate.trace_accumulators;
  * worst case: over inputs in the static range (hwsim.hw.dataflow.tensor_ranges) and the
    weights, every intermediate of channel c lies in [L_c, U_c]
    (hwsim.kernels.accumulate.channel_bounds); the table gives min L_c, max U_c;
  * bits needed (signed) for each, against acc_bits;
  * the exact elements whose intermediates leave the accumulator's range, i.e. that wrap or
    saturate in hardware (``out_of_range`` counts them; ``out_of_range_elements`` lists the
    first ``max_elements``): flat index (NHWC order of the accumulator vector), (n, h, w, c)
    (FC: (n, c)), exact sum, intermediate min/max, hardware value.
The table is a list of rows (:class:`Headroom`), so plain-data consumers see a list of dicts
keyed by ``layer``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernels.accumulate import kind_of, layer_bounds, trace_accumulators
from ..vocab import MAC_OPS


def bits_needed(lo: int, hi: int) -> int:
    """The smallest signed width b with -2^(b-1) <= lo and hi <= 2^(b-1) - 1."""
    b = 1
    while not (-(1 << (b - 1)) <= int(lo) and int(hi) <= (1 << (b - 1)) - 1):
        b += 1
    return b


@dataclass
class OverflowElement:
    flat_index: int
    coords: tuple  # (n, h, w, c) or (n, c) for FC
    exact: int  # the exact sum
    partial_min: int  # exact intermediate min / max in the array's order
    partial_max: int
    hardware: int  # what the accumulator holds


@dataclass
class HeadroomRow:
    layer: int
    op: str
    acc_bits: int
    overflow: str  # wrap | saturate
    dataflow: str
    worst_min: int  # static worst case of every intermediate, over the input range
    worst_max: int
    worst_bits: int  # signed bits the worst case needs
    worst_fits: bool  # worst_bits <= acc_bits: no input in range can wrap/saturate
    acc_min: int | None = None  # exact final sums on the traced inputs
    acc_max: int | None = None
    partial_min: int | None = None  # exact intermediates (array order) on the traced inputs
    partial_max: int | None = None
    observed_bits: int | None = None  # signed bits the traced intermediates need
    elements: int | None = None  # accumulator elements traced
    out_of_range: int | None = None  # of them, how many wrap/saturate (an intermediate leaves)
    out_of_range_elements: list[OverflowElement] = field(default_factory=list)  # the first ones

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["out_of_range_elements"] = [e.__dict__.copy() for e in self.out_of_range_elements]
        return d


class Headroom(list):
    """The headroom table: a list of :class:`HeadroomRow`, one per MAC layer."""

    def row(self, layer: int) -> HeadroomRow:
        for r in self:
            if r.layer == layer:
                return r
        raise KeyError(layer)

    def format(self) -> str:
        hdr = (f"{'#':>3} {'op':<18} {'acc':>4} {'ovf':<4} {'observed [min, max]':>25} "
               f"{'partials':>25} {'bits':>4} {'worst case':>25} {'bits':>4} {'out':>6}")
        lines = [hdr]
        for r in self:
            obs = f"[{r.acc_min}, {r.acc_max}]" if r.acc_min is not None else "-"
            par = f"[{r.partial_min}, {r.partial_max}]" if r.partial_min is not None else "-"
            wc = f"[{r.worst_min}, {r.worst_max}]"
            ob = r.observed_bits if r.observed_bits is not None else "-"
            oor = r.out_of_range if r.out_of_range is not None else "-"
            lines.append(f"{r.layer:>3} {r.op:<18} {r.acc_bits:>4} {r.overflow[:4]:<4} "
                         f"{obs:>25} {par:>25} {ob:>4} {wc:>25} {r.worst_bits:>4} {oor:>6}")
            for e in r.out_of_range_elements:
                lines.append(f"      out of range at {e.flat_index} {e.coords}: exact {e.exact},"
                             f" partials [{e.partial_min}, {e.partial_max}], hardware "
                             f"{e.hardware}")
        return "\n".join(lines)


def headroom(program, config, ranges: dict, trace=None, max_elements: int = 100) -> Headroom:
    """The headroom table of ``program`` (lowered with ``config``); observed columns from
    ``trace`` (a Trace of this program: the inputs each MAC layer saw), None without one."""
    bits = config.accumulator.bits
    lim_lo, lim_hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rows = []
    for layer in program.layers:
        if layer.op not in MAC_OPS or layer.params.accumulator is None:
            continue
        p = layer.params
        kind = kind_of(p)
        xr = ranges.get(layer.inputs[0])
        if xr is None:
            xr = (-(1 << 15), (1 << 15) - 1)
        lo_c, hi_c = layer_bounds(p, xr[0], xr[1])
        wmin, wmax = int(lo_c.min()), int(hi_c.max())
        row = HeadroomRow(layer.index, layer.op, bits, config.accumulator.overflow,
                          config.array.dataflow, wmin, wmax, bits_needed(wmin, wmax),
                          bits_needed(wmin, wmax) <= bits)
        if trace is not None and layer.inputs[0] in trace.tensors:
            x = trace.tensors[layer.inputs[0]]
            if kind == "fc":
                x = x.reshape(p.batch, p.depth)
            hw, ex, plo, phi = trace_accumulators(p, x)
            row.acc_min, row.acc_max = int(ex.min()), int(ex.max())
            row.partial_min, row.partial_max = int(plo.min()), int(phi.max())
            row.observed_bits = bits_needed(row.partial_min, row.partial_max)
            bad = (plo < lim_lo) | (phi > lim_hi)
            row.elements = int(bad.size)
            row.out_of_range = int(bad.sum())
            for f in np.flatnonzero(bad.reshape(-1))[:max_elements]:
                idx = np.unravel_index(int(f), bad.shape)
                row.out_of_range_elements.append(OverflowElement(
                    int(f), tuple(int(i) for i in idx), int(ex[idx]), int(plo[idx]),
                    int(phi[idx]), int(hw[idx])))
        rows.append(row)
    return Headroom(rows)
