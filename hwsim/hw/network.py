"""Map a network onto an accelerator: legalization, the hardware program, its analyses.

Stable API (hwsim/export calls exactly this; see also hwsim/hw/__init__.py):

    hw = map_network(model_path_or_graph, config, legalize="strict", inputs=None,
                     host_tail=False)                       -> HwNetwork
    hw.program        the hardware Program (hwsim.lower.lower(graph, config)): MAC layers carry
                      the requant unit's params and the accumulator model
    hw.reference      the model's Program (TFLite arithmetic) it is checked against
    hw.config         the AccelConfig
    hw.graph          the graph IR
    hw.placement      {layer index: "array" | "alias" | "fused" | "input" | "host"}
    hw.host_reasons   {host layer index: why it runs on the host}
    hw.report         [LegalizationRow], one per layer, in program order
    hw.exact          every layer is exact (always true after strict)
    hw.ranges         {tensor index: (lo, hi)} static value ranges
    hw.memory         {memory: {"words": used, "capacity": depth * banks}}
    hw.run(inputs, trace=True)  -> hwsim.engine.RunResult (trace.accumulators: the hardware's)
    hw.layer_stats()            -> [hwsim.hw.dataflow.LayerStats]
    hw.headroom(trace=None, inputs=None, max_elements=100) -> hwsim.hw.headroom.Headroom
    hw.format_report()          -> str
    hw.coverage()               -> str: 'array: N layers, M MACs (p %); host: OPS'

Legalization. Each layer is placed (hwsim.passes.PlaceLayers): ARRAY_OPS (CONV_2D with
groups = 1, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, ADD of two same-shape
activations) on the array, RESHAPE/SQUEEZE as memory aliases, anything else — and the ops of the
config's ``host_ops`` — on the host, anywhere in the network (head, middle, tail; the array
reads a host layer's output from the activation memory). ``host_tail`` is accepted and ignored
(a one-line note on stderr). A PAD read only by an array convolution and padding with its input
zero point folds into that convolution's padding (hwsim.passes.FoldPadIntoConv: placement
``fused``, like the clamps below). Two placements absorb the clamps of b-bit activations (hwsim.quant.act_bits: MAXIMUM / MINIMUM of a
tensor and a constant one-element operand c, output shape = input shape), through the pass
hwsim.passes.FuseClamps (hwsim.passes.HARDWARE_PASSES):

* ``fused``: the clamp's input is written by an array layer, read by nothing else and not a
  network output. The clamp is folded into that layer: its ``[act_min, act_max]`` is
  narrowed (MAXIMUM: act_min = max(act_min, c); MINIMUM: act_max = min(act_max, c)) — exact,
  clamp(clamp(x, a, b), c) = clamp(x, intersection), done only when the intersection is not
  empty — and the layer writes the clamp's output tensor. In ``hw.program`` the clamp becomes
  a no-op layer (kernel ``fused``, no inputs or outputs, ``params.fused_into``); the export
  gives it no folder and no vectors; the tensors only the model produces (the layer's
  unclamped output) are not in the hardware's trace and are not compared.
* ``input``: the clamp's input is a network input (or the output of another ``input`` clamp)
  read by nothing else: the host applies it as it writes the input into the activation
  memory (the export's act_init holds the clamped tensor; the layer runs in ``hw.run``).

Problems are of two kinds:

* fatal in both modes (HwsimError naming layer, op and reason): data that does not fit (activation ranges vs data.input_bits/output_bits and
  signedness, weight values vs data.weight_bits, bias values vs accumulator.bits and the bias
  memory's lane width, a requant word wider than the requant memory's lane); a memory too
  small (words of all layers, each region aligned, vs depth * banks).
* inexact (strict refuses, approx proceeds and reports): the hardware's requantization,
  output zero point or activation clamp differs from the model's (a non-TFLite scheme, a
  per-tensor unit for per-channel reals, a clamped multiplier or shift, a missing fused
  activation, no output zero point) — found by comparing every layer parameter with the
  reference program's; or an accumulator that may leave its range where the model's does not
  (the static bound of hwsim.kernels.accumulate.channel_bounds on the static input range vs
  accumulator.bits, unless the hardware wraps at the model's own width).

The reference is TFLite's arithmetic: the TFLITE_SINGLE_ROUNDING build when the config's
requant.scheme is tflite_single, the default (double rounding) build otherwise.

With ``inputs``, each report row also gives the cost in exactness on those inputs, two ways:
``*_propagated`` (the hardware network run end to end, errors propagate, vs the reference run
end to end) and ``*_isolated`` (each hardware layer fed the reference's input of that layer).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .. import registry
from ..engine import Network, RunResult
from ..hwif.plan import allocate, network_input_tensors  # noqa: F401 (re-exported)
from ..ir import Graph, HwsimError
from ..kernels.accumulate import layer_bounds
from ..lower import lower, lower_with_context
from ..params import MacParams, Params
from ..passes import HARDWARE_PASSES, PlacedProgram, run_passes
from ..program import Layer, Program
from ..vocab import MAC_OPS, QRANGE, RequantScheme
from .config import AccelConfig, load_config, quantized_for
from .dataflow import LayerStats, layer_stats, tensor_ranges
from .headroom import Headroom, bits_needed, headroom

LEGALIZE_MODES = ("strict", "approx")
HOST_TAIL_NOTE = ("hwsim: note: host_tail / --host-tail is no longer needed (host layers may run "
                  "anywhere in the network); ignored")


class LegalizationError(HwsimError):
    """The network cannot be mapped onto the accelerator (in this legalization mode)."""


@dataclass
class LegalizationRow:
    layer: int
    op: str
    placement: str  # array | alias | fused | input | host
    exact: bool  # the hardware computes exactly the model's integers for every input
    reasons: list[str] = field(default_factory=list)  # why not exact (what was approximated)
    elements: int = 0  # output elements
    changed_propagated: int | None = None  # on the given inputs, end to end
    max_abs_diff_propagated: int | float | None = None
    changed_isolated: int | None = None  # on the given inputs, fed the reference's input
    max_abs_diff_isolated: int | float | None = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class HwNetwork:
    """A network mapped onto an accelerator (build with :func:`map_network`)."""

    def __init__(self, graph: Graph, config: AccelConfig, program: Program, reference: Program,
                 placement: dict, report: list, ranges: dict, memory: dict, legalize: str,
                 notes: dict, host_reasons: dict | None = None):
        self.graph = graph
        self.config = config
        self.program = program
        self.reference = reference
        self.placement = placement
        self.report = report
        self.ranges = ranges
        self.memory = memory
        self.legalize = legalize
        self.notes = notes
        self.host_reasons = dict(host_reasons or {})
        self._net = Network(program, graph)

    @property
    def exact(self) -> bool:
        return all(r.exact for r in self.report)

    def run(self, inputs, trace: bool = True) -> RunResult:
        """Run the hardware program (accumulators: the hardware's, in trace.accumulators)."""
        return self._net.run(inputs, trace=trace)

    def coverage(self) -> str:
        """One line: what the array runs and what the host runs, e.g. ``array: 52 layers,
        300.7 M MACs (99.98 %); host: TRANSPOSE, SOFTMAX`` (then the fused and alias layers,
        which cost nothing)."""
        where = self.placement
        arr = [layer for layer in self.program.layers if where.get(layer.index) == "array"]
        macs = sum(int(layer.macs or 0) for layer in arr)
        total = sum(int(layer.macs or 0) for layer in self.program.layers)
        share = f" ({100.0 * macs / total:.2f} %)" if total else ""
        host: dict[str, int] = {}
        for layer in self.program.layers:
            if where.get(layer.index) == "host":
                host[layer.op] = host.get(layer.op, 0) + 1
        hosts = ", ".join(op if n == 1 else f"{op} x{n}" for op, n in host.items()) or "none"
        rest = "".join(f"; {kind}: {n}" for kind in ("fused", "alias", "input")
                       if (n := sum(w == kind for w in where.values())))
        return (f"array: {len(arr)} layer{'s' if len(arr) != 1 else ''}, {_fmt_macs(macs)} "
                f"MACs{share}; host: {hosts}{rest}")

    def layer_stats(self) -> list[LayerStats]:
        return layer_stats(self.program, self.config, self.placement)

    def headroom(self, trace=None, inputs=None, max_elements: int = 100) -> Headroom:
        """The accumulator headroom table; observed columns from ``trace`` (a Trace or
        RunResult of this network) or from running ``inputs``; worst case always."""
        if isinstance(trace, RunResult):
            trace = trace.trace
        if trace is None and inputs is not None:
            trace = self.run(inputs, trace=True).trace
        return headroom(self.program, self.config, self.ranges, trace, max_elements)

    def format_report(self) -> str:
        lines = [f"{'#':>3} {'op':<18} {'where':<5} {'exact':<5} {'changed (e2e / iso)':>20} "
                 f"{'max|diff| (e2e / iso)':>22}  reasons"]
        for r in self.report:
            ch = ("-" if r.changed_propagated is None else
                  f"{r.changed_propagated} / {r.changed_isolated}")
            md = ("-" if r.max_abs_diff_propagated is None else
                  f"{r.max_abs_diff_propagated} / {r.max_abs_diff_isolated}")
            lines.append(f"{r.layer:>3} {r.op:<18} {r.placement:<5} {str(r.exact):<5} "
                         f"{ch:>20} {md:>22}  {'; '.join(r.reasons)}")
        return "\n".join(lines)


# -- helpers ------------------------------------------------------------------------------------

def _fmt_macs(n: int) -> str:
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else \
        f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)



def _fits(lo: int, hi: int, bits: int, signed: bool) -> bool:
    if signed:
        return -(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1
    return 0 <= lo and hi <= (1 << bits) - 1


def _fmt_range(bits: int, signed: bool) -> str:
    if signed:
        return f"{bits}-bit signed [{-(1 << (bits - 1))}, {(1 << (bits - 1)) - 1}]"
    return f"{bits}-bit unsigned [0, {(1 << bits) - 1}]"


def _fields(p: Params) -> dict:
    """A layer's parameters by name for the comparison with the model's: a MAC layer's
    requantization fields beside its own, without the accumulator model (compared separately,
    _acc_reason)."""
    d = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
    if isinstance(p, MacParams):
        d.pop("accumulator")
        rq = d.pop("requant")
        d.update({f.name: getattr(rq, f.name) for f in dataclasses.fields(rq)})
    return d


def _params_diff(hw: Params, ref: Params) -> list[str]:
    """The names of the parameters whose values differ (multiplier/shift compared per
    channel: one entry stands for every channel)."""
    diff = []
    a_all, b_all = _fields(hw), _fields(ref)
    for k in sorted(set(a_all) | set(b_all)):
        a, b = a_all.get(k), b_all.get(k)
        if k in ("multiplier", "shift"):
            a, b = np.atleast_1d(a).astype(np.int64), np.atleast_1d(b).astype(np.int64)
            n = max(len(a), len(b))
            if len(a) not in (1, n) or len(b) not in (1, n) or \
                    not np.array_equal(np.broadcast_to(a, (n,)), np.broadcast_to(b, (n,))):
                diff.append(k)
        elif isinstance(a, dict) or isinstance(b, dict):
            if not (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                    and all(np.array_equal(a[j], b[j]) for j in a)):
                diff.append(k)
        elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            if a is None or b is None or a.shape != b.shape or not np.array_equal(a, b):
                diff.append(k)
        elif a != b:
            diff.append(k)
    return diff


def _scheme(p: Params) -> RequantScheme | None:
    """The requantization scheme of a layer with a requantization unit (MAC layers)."""
    return p.requant.scheme if isinstance(p, MacParams) else None


def _acc_reason(layer: Layer, ranges: dict, cfg: AccelConfig) -> str:
    """'' if the accumulator provably equals the model's for every input in range."""
    p = layer.params
    bits, sat = cfg.accumulator.bits, cfg.accumulator.overflow == "saturate"
    ref_bits = 64 if p.acc_int64 else 32
    if not sat and bits == ref_bits:
        return ""  # the same modular arithmetic as the model's accumulator
    xr = ranges.get(layer.inputs[0], QRANGE[np.dtype(np.int16)])
    lo, hi = layer_bounds(p, xr[0], xr[1])
    width = min(bits, ref_bits)
    bad = np.flatnonzero((lo < -(1 << (width - 1))) | (hi > (1 << (width - 1)) - 1))
    if not len(bad):
        return ""
    c = int(bad[np.argmax(np.maximum(-lo[bad], hi[bad]))])
    return (f"accumulator: partial sums of channel {c} can reach [{int(lo[c])}, {int(hi[c])}] "
            f"({bits_needed(lo[c], hi[c])} bits) for inputs in {list(xr)}, beyond the {bits}-bit "
            f"{cfg.accumulator.overflow} accumulator (the model accumulates in int{ref_bits}; "
            f"{len(bad)} channel(s))")


def _width_problems(layer: Layer, prog: Program, ranges: dict, cfg: AccelConfig) -> list[str]:
    d, out = cfg.data, []
    p = layer.params
    for i in layer.inputs:
        lo, hi = ranges.get(i, QRANGE.get(np.dtype(prog.tensors[i].dtype), (0, 0)))
        if not _fits(lo, hi, d.input_bits, d.input_signed):
            out.append(f"input tensor {i} '{prog.tensors[i].name}' ({prog.tensors[i].dtype}, "
                       f"values in [{lo}, {hi}]) does not fit the "
                       f"{_fmt_range(d.input_bits, d.input_signed)} inputs (data.input_bits)")
    if p.clamp() is not None:
        t = layer.outputs[0]
        # the static range: the clamp, or for a pool its input's range clamped
        lo, hi = ranges.get(t, p.clamp())
        if not _fits(lo, hi, d.output_bits, d.output_signed):
            out.append(f"output tensor {t} '{prog.tensors[t].name}' (values in [{lo}, {hi}]) "
                       f"does not fit the {_fmt_range(d.output_bits, d.output_signed)} outputs "
                       f"(data.output_bits)")
    if layer.op in MAC_OPS:
        w = np.asarray(p.weights)
        lo, hi = int(w.min()), int(w.max())
        if not _fits(lo, hi, d.weight_bits, d.weight_signed):
            out.append(f"weights in [{lo}, {hi}] do not fit the "
                       f"{_fmt_range(d.weight_bits, d.weight_signed)} weights (data.weight_bits)")
        b = p.bias
        if b is not None and len(b):
            lo, hi = int(np.min(b)), int(np.max(b))
            bias_lane = cfg.memories.bias.word_bits // cfg.memories.bias.lanes
            if not _fits(lo, hi, cfg.accumulator.bits, True):
                out.append(f"bias values in [{lo}, {hi}] do not fit the "
                           f"{cfg.accumulator.bits}-bit accumulator (accumulator.bits)")
            elif not _fits(lo, hi, bias_lane, True):
                out.append(f"bias values in [{lo}, {hi}] do not fit the {bias_lane}-bit lanes "
                           f"of the bias memory (memories.bias.word_bits / lanes)")
        rq_lane = cfg.memories.requant.word_bits // cfg.memories.requant.lanes
        rq = p.requant
        need = 64 if rq.scheme == RequantScheme.double_round else 40
        if rq_lane < need:
            out.append(f"the {rq.scheme.name} requant word needs {need} bits, "
                       f"the requant memory's lanes hold {rq_lane} (memories.requant)")
        if rq.scheme == RequantScheme.double_round:
            e = np.atleast_1d(rq.shift)
            if e.min() < -1024 or e.max() > 1023:
                out.append(f"double_round exponent {int(e.min())} does not fit its signed "
                           f"11-bit field")
    return out


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[int, int | float]:
    if a.shape != b.shape:
        return int(max(a.size, b.size)), float("inf")
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(b.dtype, np.floating):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        ne = a != b
        return int(ne.sum()), float(d.max()) if d.size else 0.0
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return int((d != 0).sum()), int(d.max()) if d.size else 0


def _costs(rows, hw_prog: Program, ref_prog: Program, graph: Graph, inputs) -> None:
    ref_net, hw_net = Network(ref_prog, graph), Network(hw_prog, graph)
    r_ref = ref_net.run(inputs, trace=True).trace
    r_hw = hw_net.run(inputs, trace=True).trace
    for row, layer in zip(rows, hw_prog.layers):
        ch = md = 0
        chi = mdi = 0
        outs, _ = registry.KERNELS[layer.kernel](layer, [r_ref.tensors[i] for i in layer.inputs])
        for t, iso in zip(layer.outputs, outs):
            c, m = _compare(r_hw.tensors[t], r_ref.tensors[t])
            ch, md = ch + c, max(md, m)
            c, m = _compare(iso, r_ref.tensors[t])
            chi, mdi = chi + c, max(mdi, m)
        row.changed_propagated, row.max_abs_diff_propagated = ch, md
        row.changed_isolated, row.max_abs_diff_isolated = chi, mdi


# -- map_network ----------------------------------------------------------------------------

def map_network(model, config, legalize: str = "strict", inputs=None,
                host_tail: bool = False, semantics: str = "tflite") -> HwNetwork:
    """Map ``model`` (a .tflite path or a Graph) onto ``config`` (AccelConfig, preset name or
    YAML path). ``legalize``: "strict" (refuse anything inexact) or "approx" (nearest hardware
    parameters, the cost reported per layer, measured on ``inputs`` if given). Raises
    :class:`LegalizationError` (an HwsimError) naming layer, op and reason."""
    if legalize not in LEGALIZE_MODES:
        raise HwsimError(f"legalize={legalize!r}: allowed values {', '.join(LEGALIZE_MODES)}")
    cfg = load_config(config)
    if isinstance(model, Graph):
        graph = model
    else:
        from .. import load_graph
        graph = load_graph(os.fspath(model))
    ref_scheme = "tflite_single" if cfg.requant.scheme == "tflite_single" else "tflite_double"
    # ``semantics`` (tflite | tflm, docs/semantics.md): both programs follow that runtime
    reference = lower(graph, requant_scheme=ref_scheme, semantics=semantics)
    program, ctx = lower_with_context(graph, cfg, semantics=semantics)
    src = graph.source or graph.name or "model"
    if host_tail:  # kept for old callers; placement no longer needs it
        print(HOST_TAIL_NOTE, file=sys.stderr)
    if quantized_for(graph.description, cfg):
        # hwsim quantized the model for this very arithmetic: that arithmetic is the model's
        # semantics, so the reference is the hardware's own lowering (docs/quantization.md)
        reference = program
    # the hardware passes (hwsim.passes): PlaceLayers, FoldPadIntoConv, FuseClamps
    placed = run_passes(HARDWARE_PASSES, PlacedProgram(
        program, reference, host_ops=frozenset(cfg.host_ops),
        act_lanes=cfg.memories.activations.lanes))
    program, reference = placed.program, placed.reference
    placement, ref_act = dict(placed.placement), placed.reference_clamps
    ranges = tensor_ranges(program)

    fatal: list[tuple[int, str, str]] = []
    rows: list[LegalizationRow] = []
    inexact: list[tuple[int, str, str]] = []
    for layer, ref in zip(program.layers, reference.layers):
        where = placement[layer.index]
        row = LegalizationRow(layer.index, layer.op, where, True,
                              elements=int(sum(np.prod(program.tensors[t].shape)
                                               for t in layer.outputs)))
        rows.append(row)
        if where != "array":
            continue
        for msg in _width_problems(layer, program, ranges, cfg):
            fatal.append((layer.index, layer.op, msg))
        reasons = []
        ref_params = ref.params
        if layer.index in ref_act:   # compare with the model's layer and its fused clamps
            lo, hi = ref_act[layer.index]
            ref_params = ref.params.with_clamp(lo, hi)
        diff = _params_diff(layer.params, ref_params)
        if diff:
            hs, rs = _scheme(layer.params), _scheme(ref.params)
            if hs != rs and hs is not None and rs is not None:
                reasons.append(f"requant scheme {RequantScheme(int(hs)).name} cannot represent "
                               f"the model's {RequantScheme(int(rs)).name} requantization "
                               f"exactly")
            reasons.extend(ctx.notes.get(layer.index, []))
            if not reasons:
                reasons.append(f"hardware parameters {diff} differ from the model's")
        if layer.op in MAC_OPS:
            r = _acc_reason(layer, ranges, cfg)
            if r:
                reasons.append(r)
        if reasons:
            row.exact = False
            row.reasons = reasons
            inexact.extend((layer.index, layer.op, m) for m in reasons)
    # the memory plan the export lays out (hwsim.hwif.allocate): its capacity check
    mem_plan = allocate(program, cfg, placement)
    memory, mem_problems = mem_plan.usage(), mem_plan.overflows
    fatal.extend(mem_problems)
    problems = fatal + (inexact if legalize == "strict" else [])
    if problems:
        problems.sort(key=lambda t: t[0])
        parts = [f"layer {i} ({op}): {msg}" for i, op, msg in problems[:3]]
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise LegalizationError(f"{src}: cannot map onto '{cfg.name}' ({legalize}): "
                                f"{'; '.join(parts)}{more}")
    if inputs is not None:
        _costs(rows, program, reference, graph, inputs)
    host_reasons = {i: placed.reasons.get(i, "") for i, w in placement.items() if w == "host"}
    return HwNetwork(graph, cfg, program, reference, placement, rows, ranges, memory, legalize,
                     dict(ctx.notes), host_reasons)
