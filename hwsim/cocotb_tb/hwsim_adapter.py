"""How the hwsim bench drives an accelerator: the adapter classes (docs/cosim.md).

The bench (``hwsim_bench.py``) knows the export (layers, golden vectors) and nothing about
the DUT's ports. It hands each layer to an adapter as a :class:`LayerJob` and gets back a
:class:`LayerRun`. To co-simulate your own accelerator, subclass :class:`AccelAdapter` (any
protocol) or :class:`HwsimAccelAdapter` (same protocol as the reference, other signal names)
and pass ``--adapter module:Class`` to ``hwsim cosim``.

    class MyNpuAdapter(HwsimAccelAdapter):
        clock = "aclk"
        reset = "aresetn"
        reset_active_high = False
        cmd_start = "go"
        ...
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

try:  # cocotb >= 2.0
    from cocotb.triggers import SimTimeoutError
except ImportError:  # pragma: no cover
    from cocotb.result import SimTimeoutError
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


@dataclass
class LayerJob:
    """One layer for the DUT to run.

    ``position``: the layer's descriptor index (the RTL reads descriptor ``position`` from the
    descriptor memory). ``inputs``: the activation words of each input (the golden input, packed
    exactly like the activation memory: word i holds elements i*L .. i*L+L-1); empty in chain
    mode when the input is already in the DUT's memory. ``out_words``: words of the output.
    ``acc_elements``: accumulators the layer has (0: none, or not asked for).
    ``timeout_cycles``: give up after this many clock cycles.
    """
    position: int
    op: str
    inputs: list[list[int]]
    out_words: int
    acc_elements: int
    timeout_cycles: int


@dataclass
class LayerRun:
    """What the DUT produced: output words (the same packing), accumulators by flat NHWC index
    (None: the DUT does not expose them), cycle counts (None: unknown), error text."""
    output_words: list[int] | None
    acc: dict[int, int] | None = None
    cycles: int | None = None
    total_cycles: int | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


class AccelAdapter:
    """Base class: what the bench needs from any accelerator.

    Override :meth:`start` (clock, reset, anything before the first layer) and
    :meth:`run_layer` (load inputs, start one layer, collect outputs, wait for the end).
    ``clock`` / ``clock_period_ns`` name the clock for the cycle counts of the report.
    """
    clock = "clk"
    clock_period_ns = 10

    def __init__(self, dut, export, log: logging.Logger | None = None):
        self.dut = dut
        self.export = export
        self.log = log or logging.getLogger("cocotb.hwsim")

    def sig(self, name: str):
        return getattr(self.dut, name)

    def sim_cycles(self) -> int:
        """Clock cycles simulated so far."""
        return int(get_sim_time("ns") // self.clock_period_ns)

    async def start(self) -> None:
        raise NotImplementedError

    async def run_layer(self, job: LayerJob) -> LayerRun:
        raise NotImplementedError


class HwsimAccelAdapter(AccelAdapter):
    """The reference accelerator (hwsim/rtl/hwsim_accel.v): command/status ports + AXI4-Stream.

    Protocol, per layer: with ``cmd_layer`` = job.position and ``cmd_flags`` (bit 0 load the
    inputs from ``s_axis``, bit 1 stream the output on ``m_axis``, bit 2 stream the
    accumulators on ``m_axis_acc`` with ``tuser`` = flat NHWC index), pulse ``cmd_start`` for
    one cycle; send each input as one frame; receive the output frame (and the accumulator
    frame); wait for ``sts_done``; read ``sts_error``, ``sts_cycles``, ``sts_total_cycles``.
    Every name below is a class attribute: a subclass renames ports without new code.
    """
    clock = "clk"
    clock_period_ns = 10
    clock_impl = "gpi"           # the C clock of cocotb's GPI layer ("py": a Python task)
    reset = "rst"
    reset_active_high = True
    reset_cycles = 4
    cmd_start = "cmd_start"
    cmd_layer = "cmd_layer"
    cmd_flags = "cmd_flags"
    sts_done = "sts_done"
    sts_error = "sts_error"
    sts_op = "sts_op"
    sts_cycles = "sts_cycles"
    sts_total_cycles = "sts_total_cycles"
    s_axis = "s_axis"            # AXI4-Stream prefixes (cocotbext-axi AxiStreamBus.from_prefix)
    m_axis = "m_axis"
    m_axis_acc = "m_axis_acc"    # None: the DUT does not expose accumulators
    FLAG_LOAD, FLAG_STREAM, FLAG_ACC = 1, 2, 4
    ERROR_BITS = {0: "unsupported op", 1: "layer exceeds an RTL limit",
                  2: "input stream length mismatch"}

    async def start(self) -> None:
        clk = self.sig(self.clock)
        rst = self.sig(self.reset)
        active, inactive = (1, 0) if self.reset_active_high else (0, 1)
        rst.value = active
        self.sig(self.cmd_start).value = 0
        self.sig(self.cmd_layer).value = 0
        self.sig(self.cmd_flags).value = 0
        Clock(clk, self.clock_period_ns, unit="ns", impl=self.clock_impl).start()
        await ClockCycles(clk, 2)  # reset is seen before the stream drivers sample anything
        # one word per beat: a "byte" is the whole tdata (no tkeep)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(self.dut, self.s_axis), clk, rst,
                                      reset_active_level=bool(active), byte_lanes=1)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(self.dut, self.m_axis), clk, rst,
                                  reset_active_level=bool(active), byte_lanes=1)
        self.acc_sink = None
        if self.m_axis_acc is not None and hasattr(self.dut, f"{self.m_axis_acc}_tdata"):
            self.acc_sink = AxiStreamSink(AxiStreamBus.from_prefix(self.dut, self.m_axis_acc),
                                          clk, rst, reset_active_level=bool(active),
                                          byte_lanes=1)
        for s in (self.source, self.sink, self.acc_sink):
            if s is not None:
                s.log.setLevel(logging.WARNING)
        await ClockCycles(clk, self.reset_cycles)
        rst.value = inactive
        await ClockCycles(clk, 2)

    async def run_layer(self, job: LayerJob) -> LayerRun:
        want_acc = job.acc_elements > 0 and self.acc_sink is not None
        flags = self.FLAG_STREAM | (self.FLAG_LOAD if job.inputs else 0) \
            | (self.FLAG_ACC if want_acc else 0)
        for words in job.inputs:
            await self.source.send(AxiStreamFrame(list(words)))
        run = await self._command(job, flags)
        if run.error and run.error.startswith("timeout"):
            return run
        if not self.sink.empty():
            frame = self.sink.recv_nowait()
            run.output_words = list(frame.tdata)
            while not self.sink.empty():  # more than one frame: keep the words, flag it
                run.output_words += list(self.sink.recv_nowait().tdata)
                run.error = run.error or "more than one output frame"
        if want_acc:
            run.acc = {}
            while not self.acc_sink.empty():
                frame = self.acc_sink.recv_nowait()
                for value, user in zip(frame.tdata, frame.tuser):
                    run.acc.update(self.acc_beat(int(value), int(user)))
        return run

    async def _command(self, job: LayerJob, flags: int) -> LayerRun:
        """Pulse cmd_start for ``job`` with ``flags`` and wait for sts_done: a LayerRun with the
        status and no output yet, or with the timeout error."""
        clk = self.sig(self.clock)
        self.sig(self.cmd_layer).value = job.position
        self.sig(self.cmd_flags).value = flags
        self.sig(self.cmd_start).value = 1
        await RisingEdge(clk)
        self.sig(self.cmd_start).value = 0
        try:
            await with_timeout(RisingEdge(self.sig(self.sts_done)),
                               job.timeout_cycles * self.clock_period_ns, "ns")
        except SimTimeoutError:
            return LayerRun(None, error=f"timeout: no {self.sts_done} after "
                                        f"{job.timeout_cycles:,} cycles")
        await RisingEdge(clk)  # the last beats are in the sinks' queues now
        err = int(self.sig(self.sts_error).value)
        run = LayerRun(None, cycles=int(self.sig(self.sts_cycles).value),
                       total_cycles=int(self.sig(self.sts_total_cycles).value))
        run.extra["op"] = int(self.sig(self.sts_op).value)
        if err:
            run.error = "DUT error: " + ", ".join(t for b, t in self.ERROR_BITS.items()
                                                 if err >> b & 1)
        return run

    @staticmethod
    def acc_beat(tdata: int, tuser: int) -> dict[int, int]:
        """The accumulators of one m_axis_acc beat: lane j (64 bits, two's complement) at
        tdata[64j +: 64] is element index + j, for the tuser[47:32] valid lanes; index =
        tuser[31:0]."""
        index, count = tuser & 0xFFFF_FFFF, (tuser >> 32) & 0xFFFF
        out = {}
        for j in range(count):
            v = (tdata >> (64 * j)) & 0xFFFF_FFFF_FFFF_FFFF
            out[index + j] = v - (1 << 64) if v >> 63 else v
        return out


class HwsimTraceAdapter(HwsimAccelAdapter):
    """The reference accelerator through its simulation-only trace hooks: the fast transport
    `hwsim cosim` uses for hwsim/rtl/ (docs/cosim.md, "Simulation speed").

    Same command / status protocol, but cmd_flags bit 4 makes the RTL $readmemh the layer's
    inputs from the files +HWSIM_TRACE_IN1= / +HWSIM_TRACE_IN2= (no clock cycles), and bit 3
    makes it write the accumulators (one "index value" line each) to +HWSIM_TRACE_ACC= and the
    output region (one hex word a line) to +HWSIM_TRACE_OUT= instead of the AXI streams. So the
    bench wakes up twice per layer (start, done) instead of once per word: the simulator runs
    at its own speed. hwsim.cosim.run_cosim passes the plusargs; the folder of the files is in
    $HWSIM_COSIM_TRACE_DIR.
    """
    FLAG_TRACE_OUT, FLAG_TRACE_IN = 8, 16
    TRACE_DIR_ENV = "HWSIM_COSIM_TRACE_DIR"
    TRACE_FILES = {"in1": "trace_in1.hex", "in2": "trace_in2.hex", "out": "trace_out.hex",
                   "acc": "trace_acc.txt"}

    async def start(self) -> None:
        clk = self.sig(self.clock)
        rst = self.sig(self.reset)
        active, inactive = (1, 0) if self.reset_active_high else (0, 1)
        rst.value = active
        for name, value in ((self.cmd_start, 0), (self.cmd_layer, 0), (self.cmd_flags, 0),
                            (f"{self.s_axis}_tvalid", 0), (f"{self.s_axis}_tlast", 0),
                            (f"{self.s_axis}_tdata", 0), (f"{self.m_axis}_tready", 1),
                            (f"{self.m_axis_acc}_tready", 1)):
            self.sig(name).value = value
        Clock(clk, self.clock_period_ns, unit="ns", impl=self.clock_impl).start()
        await ClockCycles(clk, self.reset_cycles + 2)
        rst.value = inactive
        await ClockCycles(clk, 2)
        self.dir = Path(os.environ[self.TRACE_DIR_ENV])
        self.offset = {"out": 0, "acc": 0}

    def _read_new(self, key: str) -> list[str]:
        """The lines the RTL appended to trace file ``key`` since the last call."""
        path = self.dir / self.TRACE_FILES[key]
        if not path.exists():
            return []
        with open(path) as f:
            f.seek(self.offset[key])
            text = f.read()
        end = text.rfind("\n") + 1  # a line is complete once its newline is there
        self.offset[key] += end
        return text[:end].split()

    async def run_layer(self, job: LayerJob) -> LayerRun:
        for i, words in enumerate(job.inputs[:2]):
            (self.dir / self.TRACE_FILES[f"in{i + 1}"]).write_text(
                "".join(f"{int(w):x}\n" for w in words))
        flags = self.FLAG_TRACE_OUT | (self.FLAG_TRACE_IN if job.inputs else 0)
        run = await self._command(job, flags)
        out = self._read_new("out")
        acc = self._read_new("acc")  # read even when not asked for: the offsets move on
        if run.error and run.error.startswith("timeout"):
            return run
        run.output_words = [int(w, 16) for w in out]
        if job.acc_elements > 0:
            run.acc = {int(i): int(v) for i, v in zip(acc[0::2], acc[1::2])}
        return run


def load_adapter(spec: str):
    """``module:Class`` -> the class."""
    import importlib
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"adapter {spec!r}: expected module:Class")
    return getattr(importlib.import_module(module), name)


__all__ = ["AccelAdapter", "HwsimAccelAdapter", "HwsimTraceAdapter", "LayerJob", "LayerRun",
           "load_adapter"]
