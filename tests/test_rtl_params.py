"""hwsim.rtl_params: the Verilog header of the reference RTL, and its static checks.

The committed hwsim/rtl/hwsim_params.vh must be the tflite-int8 preset's header; every
parameter comes from the config and the export's layout (lane widths); the RTL must lint clean
(verilator --lint-only -Wall, with the committed header and with the headers of configs that
exercise every parameter: 4- and 16-bit data, unsigned data, 16..64-bit wrapping and
saturating accumulators, both dataflows, bias last, every requant scheme, odd array shapes,
msb-first lanes; also with each fault define) and compile as Verilog-2005 in Icarus.
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
        ("64", "8", "1048576", "20")
    assert d["REQUANT_SCHEME"] == "0" and d["WGT_LANES"] == "8" and d["DESC_WORDS"] == "64"
    n = _defines(rtl_params("narrow-acc-24"))
    assert (n["ACC_BITS"], n["ACC_SATURATE"], n["REQUANT_SCHEME"], n["REQUANT_ROUNDING"]) == \
        ("24", "1", "3", "1")
    assert n["DATAFLOW_OUTPUT_STATIONARY"] == "0"
    assert (d["ACT_ELEM_BITS"], d["WGT_ELEM_BITS"], d["BIAS_ELEM_BITS"]) == ("8", "8", "32")


def test_header_of_the_16x8_preset_has_the_exports_lane_widths():
    """int16 activations in 16-bit lanes, int64 biases in 64-bit lanes, a 64-bit accumulator:
    the widths hwsim.export.layout packs (the RTL reads what the export writes)."""
    from hwsim.export.layout import make_memories
    cfg = load_config("tflite-16x8")
    d = _defines(rtl_params(cfg))
    mems = make_memories(cfg)
    assert (d["INPUT_BITS"], d["OUTPUT_BITS"], d["WEIGHT_BITS"], d["ACC_BITS"]) == \
        ("16", "16", "8", "64")
    assert (int(d["ACT_ELEM_BITS"]), int(d["WGT_ELEM_BITS"]), int(d["BIAS_ELEM_BITS"])) == \
        (mems["activations"].elem_bits, mems["weights"].elem_bits, mems["bias"].elem_bits) \
        == (16, 8, 64)
    assert d["ACT_LANES"] == "4"


def test_header_of_a_narrow_unsigned_config():
    cfg = load_config("tflite-int8").to_dict()
    cfg["data"].update(input_bits=4, output_bits=4, weight_bits=4, input_signed=False,
                       output_signed=False)
    cfg["accumulator"].update(bits=16, overflow="saturate")
    cfg["requant"].update(scheme="mult_shift", multiplier_bits=12, rounding="half_up")
    from hwsim.hw.config import config_from_dict
    d = _defines(rtl_params(config_from_dict(cfg, "narrow.yaml")))
    assert (d["INPUT_BITS"], d["INPUT_SIGNED"], d["WEIGHT_BITS"], d["WEIGHT_SIGNED"],
            d["OUTPUT_SIGNED"]) == ("4", "0", "4", "1", "0")
    assert (d["ACC_BITS"], d["ACC_SATURATE"], d["REQUANT_SCHEME"], d["REQUANT_ROUNDING"],
            d["REQUANT_MULTIPLIER_BITS"]) == ("16", "1", "3", "1", "12")
    assert d["ACT_ELEM_BITS"] == "8"  # 4-bit values in the export's int8 lanes


def test_header_of_a_yaml_config_and_a_different_geometry(tmp_path):
    cfg = load_config("tflite-int8").to_dict()
    cfg["array"].update(rows=4, cols=16)
    import yaml
    p = tmp_path / "accel.yaml"
    p.write_text(yaml.safe_dump(cfg))
    d = _defines(rtl_params(str(p)))
    assert (d["ROWS"], d["COLS"]) == ("4", "16")


def test_unsupported_config_names_the_key():
    from hwsim.hw.config import config_from_dict
    cfg = load_config("tflite-int8").to_dict()
    cfg["memories"]["activations"].update(lanes=6, word_bits=48)
    with pytest.raises(ConfigError, match="memories.activations.lanes: 6 lanes"):
        rtl_params(config_from_dict(cfg, "x.yaml"))
    cfg = load_config("tflite-int8").to_dict()
    cfg["data"]["weight_bits"] = 12  # the config holds it (16-bit lanes), the export stores int8
    cfg["memories"]["weights"].update(lanes=4)
    with pytest.raises(ConfigError, match="data.weight_bits: 12-bit values in the export's "
                                          "8-bit lanes"):
        rtl_params(config_from_dict(cfg, "x.yaml"))
    cfg = load_config("tflite-16x8").to_dict()
    cfg["memories"]["activations"].update(lanes=8)  # 8 int16 lanes need 128-bit words
    with pytest.raises(ConfigError, match="memories.activations"):
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


def _lint_configs():
    """Configs whose headers cover every parameter of the RTL (module docstring)."""
    from hwsim.hw.config import config_from_dict

    def mod(name, **sections):
        d = load_config("tflite-int8").to_dict()
        d["name"] = name
        for sec, kv in sections.items():
            if sec == "memories":
                for mem, kv2 in kv.items():
                    d["memories"][mem].update(kv2)
            else:
                d[sec].update(kv)
        return config_from_dict(d, name)
    return {
        "narrow-acc-24": load_config("narrow-acc-24"),
        "shift-only-int8": load_config("shift-only-int8"),
        "tflite-16x8": load_config("tflite-16x8"),
        "onnxruntime-int8": load_config("onnxruntime-int8"),  # requant scheme 6 (float32)
        "narrow-4bit-unsigned": mod(
            "n4u", data=dict(input_bits=4, output_bits=4, weight_bits=4, input_signed=False,
                             output_signed=False, weight_signed=False),
            accumulator=dict(bits=16, overflow="saturate", bias_first=False),
            requant=dict(scheme="mult_shift", multiplier_bits=12, rounding="half_up")),
        "acc64-saturate-ws-3x5-msb": mod(
            "a64", array=dict(rows=3, cols=5, dataflow="weight_stationary"),
            accumulator=dict(bits=64, overflow="saturate"),
            memories=dict(activations=dict(lane_order="msb_first"),
                          weights=dict(lane_order="msb_first", lanes=4, word_bits=32))),
    }


@pytest.mark.parametrize("name", list(_lint_configs()))
def test_rtl_lints_clean_for_every_kind_of_config(name):
    from hwsim.cosim import SimulatorUnavailable, lint_rtl
    cfg = _lint_configs()[name]
    for defines in ((), ("HWSIM_FAULT_NARROW_ACC",)):
        try:
            clean, text = lint_rtl(defines, config=cfg)
        except SimulatorUnavailable as e:
            pytest.skip(str(e))
        assert clean, f"{name} {defines}: {text}"


def test_rtl_compiles_as_verilog_2005_in_icarus(tmp_path):
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) not installed")
    srcs = sorted(str(p) for p in RTL.glob("*.v"))
    out = subprocess.run(["iverilog", "-g2005", f"-I{RTL}", "-s", "hwsim_accel", "-o",
                          str(tmp_path / "a.vvp"), *srcs], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr.lower(), out.stderr
