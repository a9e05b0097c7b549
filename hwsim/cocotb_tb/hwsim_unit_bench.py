"""Unit benches of the RTL arithmetic (cocotb >= 2.0), driven by tests/test_rtl_units.py.

The pytest side makes the cases and their expected values with hwsim's own arithmetic
(hwsim.kernels.requant.requant_one, hwsim.arith) and writes them as JSON
(HWSIM_UNIT_CASES); these tests apply each case to the combinational module under test and
write what it outputs (HWSIM_UNIT_RESULT). The comparison is done by pytest.

  requant_unit  toplevel hwsim_requant (ACC_BITS=64, OUT_BITS=32): acc, word, scheme,
                rounding, output_offset, act_min, act_max -> out; every scheme 0..6 (cases:
                tests/test_rtl_units.py, scheme 6 float32 tests/test_rtl_float32_requant.py)
  add_unit      toplevel hwsim_add_lane (OUT_BITS=32): a, b, op (ADD, SUB, MUL), offsets,
                left shift, multipliers / shifts, single, output offset, clamp -> out
  lut_unit      toplevel hwsim_lut: each case loads a table (one weight word per clock
                edge), then looks up activation words; the result is the list of output words
  pe_unit       toplevel hwsim_pe (one accumulator step): each case is a whole reduction,
                applied step by step with the outputs fed back (acc, s), as a PE does;
                the result is the final accumulator
"""
from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import Timer


def _set(sig, value: int) -> None:
    sig.value = int(value) & ((1 << len(sig)) - 1)  # two's complement of the port's width


async def _apply(dut, cases, fields) -> list[int]:
    got = []
    for case in cases:
        for name in fields:
            _set(getattr(dut, name), case[name])
        await Timer(1, "ns")
        got.append(dut.out.value.to_signed())
    return got


async def _run(dut, fields) -> None:
    with open(os.environ["HWSIM_UNIT_CASES"]) as f:
        cases = json.load(f)
    got = await _apply(dut, cases, fields)
    with open(os.environ["HWSIM_UNIT_RESULT"], "w") as f:
        json.dump(got, f)


@cocotb.test()
async def requant_unit(dut):
    await _run(dut, ["acc", "word", "scheme", "rounding", "output_offset", "act_min",
                     "act_max"])


@cocotb.test()
async def add_unit(dut):
    await _run(dut, ["a", "b", "op", "input1_offset", "input2_offset", "left_shift",
                     "input1_multiplier", "input1_shift", "input2_multiplier", "input2_shift",
                     "output_multiplier", "output_shift", "single", "output_offset",
                     "act_min", "act_max"])


@cocotb.test()
async def pe_unit(dut):
    with open(os.environ["HWSIM_UNIT_CASES"]) as f:
        cases = json.load(f)
    got = []
    for case in cases:
        acc = s = 0
        _set(dut.bias, case["bias"])
        for step in case["steps"]:
            for name in ("p", "kfirst", "klast", "cfirst", "clast"):
                _set(getattr(dut, name), step[name])
            _set(dut.acc, acc)
            _set(dut.s, s)
            await Timer(1, "ns")
            acc, s = dut.acc_out.value.to_signed(), dut.s_out.value.to_signed()
        got.append(acc)
    with open(os.environ["HWSIM_UNIT_RESULT"], "w") as f:
        json.dump(got, f)


async def _edge(dut) -> None:
    dut.clk.value = 0
    await Timer(1, "ns")
    dut.clk.value = 1
    await Timer(1, "ns")


@cocotb.test()
async def lut_unit(dut):
    with open(os.environ["HWSIM_UNIT_CASES"]) as f:
        cases = json.load(f)
    got = []
    for case in cases:
        dut.ld.value = 1
        for i, word in enumerate(case["table_words"]):
            dut.ld_word.value = i
            _set(dut.ld_data, word)
            await _edge(dut)
        dut.ld.value = 0
        out = []
        for word in case["words"]:
            _set(dut.x, word)
            await Timer(1, "ns")
            out.append(int(dut.y.value))
        got.append(out)
    with open(os.environ["HWSIM_UNIT_RESULT"], "w") as f:
        json.dump(got, f)
