"""hwsim.rtl_params: the Verilog header of the reference RTL, and its static checks.

The committed hwsim/rtl/hwsim_params.vh must be the tflite-int8 preset's header; the RTL must
lint clean (verilator --lint-only -Wall, also with each fault define) and compile as
Verilog-2005 in Icarus.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hwsim.hw.config import ConfigError, load_config
from hwsim.rtl_params import add_rtl_params_parser, rtl_params, write_rtl_params

RTL = Path(__file__).resolve().parent.parent / "hwsim" / "rtl"


def _defines(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in
            re.finditer(r"^`define\s+HWSIM_(\w+)\s+(\S+)", text, re.M)}


def test_committed_header_is_the_tflite_int8_preset():
    committed = (RTL / "hwsim_params.vh").read_text()
    assert committed == rtl_params(load_config("tflite-int8")), \
        "hwsim/rtl/hwsim_params.vh is stale: run " \
        "`hwsim rtl-params tflite-int8 -o hwsim/rtl/hwsim_params.vh`"


def test_header_carries_the_config():
    d = _defines(rtl_params("tflite-int8"))
    assert (d["ROWS"], d["COLS"], d["ACC_BITS"], d["ACC_SATURATE"]) == ("8", "8", "32", "0")
    assert (d["ACT_WORD_BITS"], d["ACT_LANES"], d["ACT_DEPTH"], d["ACT_ADDR_BITS"]) == \
        ("64", "8", "131072", "17")
    assert d["REQUANT_SCHEME"] == "0" and d["WGT_LANES"] == "8" and d["DESC_WORDS"] == "64"
    n = _defines(rtl_params("narrow-acc-24"))
    assert (n["ACC_BITS"], n["ACC_SATURATE"], n["REQUANT_SCHEME"], n["REQUANT_ROUNDING"]) == \
        ("24", "1", "3", "1")
    assert n["DATAFLOW_OUTPUT_STATIONARY"] == "0"


def test_header_of_a_yaml_config_and_a_different_geometry(tmp_path):
    cfg = load_config("tflite-int8").to_dict()
    cfg["array"].update(rows=4, cols=16)
    import yaml
    p = tmp_path / "accel.yaml"
    p.write_text(yaml.safe_dump(cfg))
    d = _defines(rtl_params(str(p)))
    assert (d["ROWS"], d["COLS"]) == ("4", "16")


def test_unsupported_config_names_the_key():
    cfg = load_config("tflite-int8").to_dict()
    cfg["memories"]["activations"].update(lanes=6, word_bits=48)
    from hwsim.hw.config import config_from_dict
    with pytest.raises(ConfigError, match="memories.activations"):
        rtl_params(config_from_dict(cfg, "x.yaml"))
    cfg = load_config("tflite-int8").to_dict()
    cfg["data"]["input_signed"] = False
    with pytest.raises(ConfigError, match="data.input_signed"):
        rtl_params(config_from_dict(cfg, "x.yaml"))


def test_rtl_params_cli_writes_the_header(tmp_path, capsys):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    add_rtl_params_parser(sub)
    out = tmp_path / "h" / "hwsim_params.vh"
    args = p.parse_args(["rtl-params", "tflite-int8", "-o", str(out)])
    assert args.func(args) == 0
    assert out.read_text() == rtl_params("tflite-int8")
    assert "wrote" in capsys.readouterr().out
    write_rtl_params("narrow-acc-24", out)
    assert "`define HWSIM_ACC_BITS" in out.read_text()


@pytest.mark.parametrize("defines", [(), ("HWSIM_FAULT_ROUNDING",), ("HWSIM_FAULT_NARROW_ACC",)],
                         ids=["plain", "fault_rounding", "fault_narrow_acc"])
def test_rtl_lints_clean_with_verilator_wall(defines):
    from hwsim.cosim import SimulatorUnavailable, lint_rtl
    try:
        clean, text = lint_rtl(defines)
    except SimulatorUnavailable as e:
        pytest.skip(str(e))
    assert clean, text


def test_rtl_compiles_as_verilog_2005_in_icarus(tmp_path):
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) not installed")
    srcs = sorted(str(p) for p in RTL.glob("*.v"))
    out = subprocess.run(["iverilog", "-g2005", f"-I{RTL}", "-s", "hwsim_accel", "-o",
                          str(tmp_path / "a.vvp"), *srcs], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr.lower(), out.stderr
