"""Co-simulation of exports on the reference RTL (hwsim/rtl/) with the cocotb bench
(hwsim/cocotb_tb/).

Every test skips with the reason when its simulator (or cocotb) is missing. Builds are cached
(hwsim.cosim.default_build_root(); HWSIM_COSIM_BUILD overrides), so only the first run of a
session pays Verilator's C++ compile.

Covered: the committed rtl_vectors/ network on Icarus and Verilator (8x8 array, every layer,
outputs and accumulators; Icarus on four layers unless HWSIM_SLOW=1), its per-layer cycles
against the dataflow model's (within 10 %), the trace and AXI4-Stream transports (same
verdicts and cycles), a 4x4 array export made here, chain mode, a small network of the layer
parameters the example lacks (dilation, depth multiplier 2, odd sizes, AVERAGE_POOL, padded
pools, FC with batch 2) on 8x8 and 3x5 arrays, the narrow-acc-24 preset (24-bit saturating
accumulator in weight-stationary order, mult_shift requant), the tflite-16x8 preset on the
corpus' SEANet convolution (int16 activations, int64 bias and accumulator, TFLite's int64
requantization), a float model quantized for a 4-bit config (4-bit weights and activations,
16-bit saturating accumulator, 12-bit mult_shift multiplier) in chain mode, the two injected
RTL faults (the report must name the first bad layer, predicted here independently from the
golden vectors), an altered golden file (sha256 check AND comparison fail), the `hwsim cosim`
CLI exit codes, and the adapter worked example of docs/cosim.md (hwsim/cocotb_tb/examples).
Verilator runs the long co-simulations when it is installed (Icarus otherwise).
"""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from hwsim import cosim
from hwsim.cosim import load_export, read_vector, read_words, run_cosim

from conftest import CORPUS, SLOW

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "rtl_vectors" / "example"
EXAMPLES = cosim.TB_DIR / "examples"


def fast_sim() -> str:
    """Verilator when installed (the long runs take seconds there), else Icarus."""
    return "verilator" if cosim.simulator_available("verilator") is None else "icarus"


def need(sim: str) -> None:
    reason = cosim.simulator_available(sim)
    if reason:
        pytest.skip(reason)
    if not (VECTORS / "manifest.yaml").is_file():
        pytest.skip(f"{VECTORS} has no export (python -m hwsim.export.exporter "
                    f"--regen-rtl-vectors)")


def assert_all_bit_exact(rep, expect_acc: bool = True) -> None:
    assert rep.error is None, rep.error
    assert not rep.file_problems, rep.file_problems
    ran = [r for r in rep.layers if r["status"] != "host"]
    assert ran, "no layer ran"
    for r in ran:
        assert r["status"] == "ok", rep.table()
        assert r["output"]["mismatches"] == 0 and r["output"]["elements"] > 0
        assert r["cycles"] and r["cycles"] > 0
        if expect_acc and r["accel_op"] in ("CONV", "DWCONV", "FC"):
            assert r["acc"] is not None and r["acc"]["mismatches"] == 0
    assert rep.ok and rep.first_bad_layer is None


def assert_cycles_match_the_model(rep) -> None:
    """Issue 10 item 4: every array layer's RTL cycles (sts_cycles) within 0.90-1.10 of the
    dataflow model's estimate in the manifest (hwsim.hw.dataflow; docs/cosim.md, "Cycles")."""
    ran = [r for r in rep.layers if r["status"] != "host"]
    assert ran and all(r["estimate"] for r in ran), rep.table()
    ratios = {(r["layer"], r["op"]): round(r["cycles"] / r["estimate"], 3) for r in ran}
    assert all(0.9 <= q <= 1.1 for q in ratios.values()), ratios


# ---- the committed network, both simulators ------------------------------------------------------
@pytest.mark.parametrize("sim", cosim.SIMULATORS)
def test_example_network_bit_exact(sim):
    need(sim)
    export = load_export(VECTORS)
    # Icarus takes about a minute for the whole network: one layer of each op by default
    layers = None if sim == "verilator" or SLOW else [0, 1, 3, 8, 10]
    rep = run_cosim(VECTORS, sim, layers=layers)
    assert_all_bit_exact(rep)
    assert [r["layer"] for r in rep.layers] == [L.index for L in export.layers
                                                if L.placement in ("array", "host")
                                                and (layers is None or L.index in layers)]
    assert {r["accel_op"] for r in rep.layers} >= {"CONV", "DWCONV", "FC", "ADD", "MAXPOOL"}
    assert all(r["estimate"] for r in rep.layers)  # the dataflow model's cycles, from the manifest
    assert rep.sim_cycles > sum(r["cycles"] for r in rep.layers) > 0
    text = rep.table()
    assert "CONV_2D" in text and "FULLY_CONNECTED" in text and "PASS" in rep.summary()


@pytest.fixture(scope="module")
def chain_report():
    sim = fast_sim()
    need(sim)
    return run_cosim(VECTORS, sim, mode="chain")


def test_chain_mode_runs_layers_back_to_back(chain_report):
    """Only the network input is sent; every layer reads what the previous ones wrote (the
    RESHAPE before the FC aliases the max-pool output)."""
    assert_all_bit_exact(chain_report)


def test_rtl_cycles_agree_with_the_dataflow_model_per_layer(chain_report):
    """Issue 10 item 4: every array op of the example (CONV, DEPTHWISE, ADD, MAX_POOL, FC)
    takes within 10 % of the model's estimate (docs/cosim.md has the table); the model counts
    the RTL's pipeline, so on this network it is exact to the cycle."""
    assert {r["op"] for r in chain_report.layers} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD",
                                                      "MAX_POOL_2D", "FULLY_CONNECTED"}
    assert_cycles_match_the_model(chain_report)
    assert [r["cycles"] for r in chain_report.layers] == \
        [r["estimate"] for r in chain_report.layers]


def test_trace_and_stream_transports_agree():
    """The reference adapter's trace files and the AXI4-Stream ports (the user-RTL protocol,
    accumulators as one beat per drained row) give the same verdicts and the same cycles."""
    need("icarus")
    fast = run_cosim(VECTORS, "icarus", layers=[2, 3, 10])
    slow = run_cosim(VECTORS, "icarus", layers=[2, 3, 10], streams=True)
    assert_all_bit_exact(fast)
    assert_all_bit_exact(slow)
    assert [r["cycles"] for r in fast.layers] == [r["cycles"] for r in slow.layers]
    # the streams take cycles of their own (input frames, output words): the commands are
    # longer, the layers themselves are not
    assert all(s["total_cycles"] > f["total_cycles"] for f, s in zip(fast.layers, slow.layers))


# ---- another geometry ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export_4x4(tmp_path_factory):
    from hwsim.export import export
    from hwsim.hw.config import config_from_dict, load_config
    if not (VECTORS.parent / "example_rtl.tflite").is_file():
        pytest.skip("rtl_vectors/example_rtl.tflite missing")
    cfg = load_config("tflite-int8").to_dict()
    cfg["name"] = "tflite-int8-4x4"
    cfg["array"].update(rows=4, cols=4)
    out = tmp_path_factory.mktemp("export4x4") / "export"
    export(VECTORS.parent / "example_rtl.tflite", config_from_dict(cfg, "4x4 test config"),
           [VECTORS.parent / "example_input.npy"], out, formats=("hex",))
    return out


def test_4x4_array_export_bit_exact(export_4x4):
    sim = fast_sim()
    need(sim)
    rep = run_cosim(export_4x4, sim)
    assert_all_bit_exact(rep)
    hdr = (Path(rep.build_dir) / "src" / "hwsim_params.vh").read_text()
    assert re.search(r"`define HWSIM_ROWS\s+4\s", hdr)
    assert re.search(r"`define HWSIM_COLS\s+4\s", hdr)
    # a 4x4 array needs more cycles than the 8x8 one for the same CONV layer
    rep8 = {r["layer"]: r["cycles"] for r in run_cosim(VECTORS, sim, layers=[0]).layers}
    assert {r["layer"]: r["cycles"] for r in rep.layers}[0] > rep8[0]


def test_narrow_acc_24_preset_bit_exact(tmp_path):
    """24-bit saturating accumulator in weight-stationary order (chunk sums of 8 products,
    each addition saturated) + 16-bit multiplier / shift requantization (mult_shift, half up):
    the config's accumulator model, not TFLite's; the whole network, chained."""
    sim = fast_sim()
    need(sim)
    from hwsim.export import export
    out = tmp_path / "narrow"
    export(VECTORS.parent / "example_rtl.tflite", "narrow-acc-24",
           [VECTORS.parent / "example_input.npy"], out, formats=("hex",), legalize="approx")
    hdr = load_export(out)
    assert hdr.config["array"]["dataflow"] == "weight_stationary"
    rep = run_cosim(out, sim, mode="chain")
    assert_all_bit_exact(rep)


def test_tflite_16x8_preset_on_the_seanet_convolution(tmp_path):
    """int16 activations (16-bit lanes) x int8 weights, int64 bias (64-bit bias words), a
    64-bit accumulator and TFLite's 16x8 requantization (scheme tflite_int64): the corpus'
    SEANet CONV_2D, exported with the tflite-16x8 preset, bit-exact on the RTL."""
    model = Path(CORPUS) / "real" / "seanet_conv0"
    if not (model / "model.tflite").is_file():
        pytest.skip(f"{model} not present (the shared corpus): the 16x8 check did not run")
    need("icarus")
    from hwsim.export import export
    out = tmp_path / "sea"
    export(model / "model.tflite", "tflite-16x8", [model / "input_0.npy"], out,
           formats=("hex",))
    spec = load_export(out)
    (layer,) = spec.layers
    assert layer.raw["fields"]["requant_scheme"] == 2 and layer.acc["layout"]["elem_bits"] == 64
    assert layer.output["layout"]["elem_bits"] == 16
    rep = run_cosim(out, "icarus")
    assert_all_bit_exact(rep)
    assert_cycles_match_the_model(rep)  # Cin = 2, 7x7: 14-element runs in 4-lane words


def test_float_model_quantized_for_a_4bit_config_cosimulates_in_chain_mode(tmp_path):
    """Issue 10's narrow config: 4-bit weights and activations, a 16-bit saturating
    accumulator, a 12-bit mult_shift multiplier with half-up rounding. The digits CNN
    (examples/digits) is quantized for it with a seeded calibration array, exported and
    co-simulated layer after layer on what the RTL wrote. (Exported with --legalize approx and
    the SOFTMAX tail on the host: mult_shift is not TFLite's requantization.)"""
    need("icarus")
    import yaml

    from hwsim.cli import main
    cfg = write_narrow_config(tmp_path)
    calib = np.random.default_rng(7).standard_normal((64, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "c.npy", calib)
    q, out = str(tmp_path / "q.tflite"), tmp_path / "D"
    assert main(["quantize", str(REPO / "examples" / "digits" / "digits_cnn.onnx"), "--calib",
                 str(tmp_path / "c.npy"), "--config", cfg, "--out", q]) == 0
    assert main(["export", q, "--config", cfg, "--random-input", "7", "--out", str(out),
                 "--legalize", "approx", "--host-tail", "--formats", "hex", "--quiet"]) == 0
    man = yaml.safe_load((out / "manifest.yaml").read_text())
    assert (man["config"]["data"]["input_bits"], man["config"]["accumulator"]["bits"]) == (4, 16)
    rep = run_cosim(out, "icarus", mode="chain")
    assert_all_bit_exact(rep)
    assert {r["op"] for r in rep.layers if r["status"] == "ok"} >= {"CONV_2D", "MAX_POOL_2D",
                                                                     "FULLY_CONNECTED"}
    assert_cycles_match_the_model(rep)  # small layers: the fixed latencies count


def write_narrow_config(tmp_path) -> str:
    """The narrow config of issue 10, as a YAML file (what `hwsim quantize --config` takes)."""
    p = tmp_path / "narrow.yaml"
    p.write_text(
        "name: narrow-4bit\n"
        "array: {rows: 8, cols: 8, dataflow: output_stationary}\n"
        "data: {input_bits: 4, input_signed: true, weight_bits: 4, weight_signed: true,\n"
        "       output_bits: 4, output_signed: true}\n"
        "accumulator: {bits: 16, overflow: saturate, bias_first: true}\n"
        "requant: {scheme: mult_shift, multiplier_bits: 12, shift_bits: 5, rounding: half_up,\n"
        "          per_channel: true, zero_point: true, activations: [none, relu, relu6]}\n"
        "memories:\n"
        "  weights: {word_bits: 64, depth: 65536, lanes: 8}\n"
        "  activations: {word_bits: 64, depth: 131072, lanes: 8}\n")
    return str(p)


# ---- layer parameters the example does not have --------------------------------------------
def coverage_graph(seed: int = 7):
    """A small network of what the example lacks: odd sizes and channel counts (5, 6, 12 — runs
    across word boundaries, partial tiles), CONV with dilation 2, DEPTHWISE with depth
    multiplier 2 and stride 2, AVERAGE_POOL with partial SAME windows, ADD with RELU,
    MAX_POOL with padding, RESHAPE to 2 rows and FULLY_CONNECTED with batch 2."""
    from hwsim.frontends.builder import GraphBuilder
    rng = np.random.default_rng(seed)
    b = GraphBuilder("rtl_coverage")
    i8 = np.int8
    zeros = np.zeros
    x = b.input("x", (1, 9, 7, 5), i8, scale=0.05, zero_point=-3)

    def wconst(name, shape, axis, scale):
        w = rng.integers(-127, 128, shape).astype(np.int8)
        s = (scale * rng.uniform(0.7, 1.3, shape[axis])).astype(np.float32)
        return b.const(name, w, scales=s, zero_points=zeros(len(s), np.int64), axis=axis), s

    def bconst(name, n, s_in, s_w):
        return b.const(name, rng.integers(-2000, 2000, n).astype(np.int32),
                       scales=(np.float32(s_in) * s_w).astype(np.float32),
                       zero_points=zeros(n, np.int64))

    conv = dict(dilation_w_factor=1, dilation_h_factor=1, padding="SAME")
    w0, s0 = wconst("w0", (6, 3, 3, 5), 0, 0.002)
    c0 = b.activation("conv_dil2", (1, 9, 7, 6), i8, scale=0.03, zero_point=-128)
    b.op("CONV_2D", [x, w0, bconst("b0", 6, 0.05, s0)], [c0], 3,
         **{**conv, "dilation_w_factor": 2, "dilation_h_factor": 2}, stride_w=1, stride_h=1,
         fused_activation_function="RELU")
    w1, s1 = wconst("w1", (1, 3, 3, 12), 3, 0.003)
    d1 = b.activation("dw_dm2", (1, 5, 4, 12), i8, scale=0.02, zero_point=5)
    b.op("DEPTHWISE_CONV_2D", [c0, w1, bconst("b1", 12, 0.03, s1)], [d1], 3, **conv,
         stride_w=2, stride_h=2, depth_multiplier=2, fused_activation_function="NONE")
    pool = dict(padding="SAME", fused_activation_function="NONE")
    a2 = b.activation("avgpool", (1, 5, 4, 12), i8, scale=0.02, zero_point=5)
    b.op("AVERAGE_POOL_2D", [d1], [a2], 2, **pool, stride_w=1, stride_h=1, filter_width=2,
         filter_height=2)
    s3 = b.activation("add", (1, 5, 4, 12), i8, scale=0.04, zero_point=-7)
    b.op("ADD", [d1, a2], [s3], 2, fused_activation_function="RELU")
    m4 = b.activation("maxpool", (1, 3, 2, 12), i8, scale=0.04, zero_point=-7)
    b.op("MAX_POOL_2D", [s3], [m4], 2, **pool, stride_w=2, stride_h=2, filter_width=3,
         filter_height=3)
    r5 = b.activation("rows", (2, 36), i8, scale=0.04, zero_point=-7)
    b.op("RESHAPE", [m4, b.const("shape", np.array([2, 36], np.int32))], [r5], 1,
         new_shape=[2, 36])
    ws = np.array([0.004], np.float32)
    f6 = b.activation("fc", (2, 5), i8, scale=0.06, zero_point=3)
    b.op("FULLY_CONNECTED",
         [r5, b.const("w6", rng.integers(-127, 128, (5, 36)).astype(np.int8), scales=ws,
                      zero_points=0),
          b.const("b6", rng.integers(-500, 500, 5).astype(np.int32),
                  scales=np.float32(0.04) * ws, zero_points=0)], [f6], 4,
         fused_activation_function="NONE", weights_format="DEFAULT", keep_num_dims=False,
         asymmetric_quantize_inputs=False)
    b.output(f6)
    return b.tflite(), rng.integers(-128, 128, (1, 9, 7, 5)).astype(np.int8)


@pytest.fixture(scope="module")
def coverage_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("coverage")
    model, x = coverage_graph()
    (d / "cov.tflite").write_bytes(model)
    np.save(d / "cov_input.npy", x)
    return d


@pytest.mark.parametrize("rows, cols, mode", [(8, 8, "layer"), (3, 5, "chain")])
def test_coverage_network_bit_exact(coverage_model, rows, cols, mode):
    need("icarus")  # a small network: Icarus takes seconds
    from hwsim.export import export
    from hwsim.hw.config import config_from_dict, load_config
    cfg = load_config("tflite-int8").to_dict()
    cfg["name"] = f"tflite-int8-{rows}x{cols}"
    cfg["array"].update(rows=rows, cols=cols)
    out = coverage_model / f"export{rows}x{cols}"
    export(coverage_model / "cov.tflite", config_from_dict(cfg, "coverage test"),
           [coverage_model / "cov_input.npy"], out, formats=("hex",))
    rep = run_cosim(out, "icarus", mode=mode)
    assert_all_bit_exact(rep)
    assert [r["op"] for r in rep.layers] == ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                                             "ADD", "MAX_POOL_2D", "FULLY_CONNECTED"]
    # channel runs straddling words (5, 6, 12 channels in 8-lane words), COLS = 5 not a
    # multiple of the lanes, the vector units a word wide: the model counts all of it
    assert_cycles_match_the_model(rep)


# ---- injected faults ----------------------------------------------------------------------------
def _mbqm_floor(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """MultiplyByQuantizedMultiplier with RoundingDivideByPOT replaced by a floor shift (the
    HWSIM_FAULT_ROUNDING RTL), vectorised; x, m int32 values, shift as in TFLite."""
    x = x.astype(np.int64)
    m = m.astype(np.int64)
    ls = np.maximum(shift, 0).astype(np.int64)
    rs = np.maximum(-shift, 0).astype(np.int64)
    xs = ((x << ls) + (1 << 31)) % (1 << 32) - (1 << 31)
    ab = xs * m
    n = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = n >> 31
    q = q + ((n < 0) & ((n & ((1 << 31) - 1)) != 0))           # C++ truncating division
    q = np.where((xs == -(1 << 31)) & (m == -(1 << 31)), (1 << 31) - 1, q)
    return q >> rs


def _expected_first_bad_layer_rounding(export) -> int | None:
    """The first layer whose golden output changes when the requant unit floors instead of
    rounding (computed from the golden accumulators / inputs, not from the RTL)."""
    for L in export.layers:
        f = L.raw.get("fields", {})
        if L.host or f.get("requant_scheme") not in (0,):
            continue
        out = read_vector(export, L.output)
        rqw = read_words(export, {"files": L.raw["files"]["requant"], "layout": {
            "word_bits": 64}})
        rqw = np.array(rqw, dtype=np.uint64)
        mult = (rqw & np.uint64(0xFFFFFFFF)).astype(np.int64)
        mult = np.where(mult >= 1 << 31, mult - (1 << 32), mult)
        shift = ((rqw >> np.uint64(32)) & np.uint64(0xFF)).astype(np.int64)
        shift = np.where(shift >= 128, shift - 256, shift)
        lo, hi = f["act_min"], f["act_max"]
        if L.accel_op in ("CONV", "DWCONV"):
            acc = read_vector(export, L.acc)
            c = np.arange(acc.size) % f["out_c"]
            k = c if f["per_channel"] else np.zeros_like(c)
            got = np.clip(_mbqm_floor(acc, mult[k], shift[k]) + f["output_offset"], lo, hi)
        elif L.accel_op == "ADD":
            a, b = (read_vector(export, s) for s in L.inputs)
            x1 = (a + f["input_offset"]) << f["add_left_shift"]
            x2 = (b + f["input2_offset"]) << f["add_left_shift"]
            y1 = _mbqm_floor(x1, np.int64(f["add_in1_multiplier"]), np.int64(f["add_in1_shift"]))
            y2 = _mbqm_floor(x2, np.int64(f["add_in2_multiplier"]), np.int64(f["add_in2_shift"]))
            raw = ((y1 + y2 + (1 << 31)) % (1 << 32)) - (1 << 31)
            got = np.clip(_mbqm_floor(raw, mult[0], shift[0]) + f["output_offset"], lo, hi)
        else:
            continue
        if np.any(got != out):
            return L.index
    return None


def _expected_first_bad_layer_narrow(export) -> int | None:
    """The first MAC layer with an accumulator outside int16 (a 16-bit wrapping accumulator
    holds wrap16(acc) there)."""
    for L in export.layers:
        if not L.host and L.acc is not None:
            acc = read_vector(export, L.acc)
            if np.any((acc < -(1 << 15)) | (acc >= 1 << 15)):
                return L.index
    return None


def test_fault_rounding_is_caught_and_first_bad_layer_named():
    need("icarus")
    export = load_export(VECTORS)
    expected = _expected_first_bad_layer_rounding(export)
    assert expected is not None, "the fault would not change any golden output"
    rep = run_cosim(VECTORS, "icarus", faults=["rounding"], stop_on_fail=True)
    assert not rep.ok and rep.error is None
    assert rep.first_bad_layer == expected, rep.table()
    bad = rep.bad_layers[0]
    assert bad["status"] == "mismatch" and bad["output"]["mismatches"] > 0
    if bad["acc"] is not None:  # a requant fault: the accumulators still match
        assert bad["acc"]["mismatches"] == 0
    first = bad["output"]["first"]
    assert len(first["nhwc"]) == 4 and first["expected"] != first["got"]
    assert f"first bad layer {expected}" in rep.summary()
    ok_before = [r for r in rep.layers if r["layer"] < expected]
    assert all(r["status"] == "ok" for r in ok_before)


def test_fault_narrow_accumulator_is_caught_and_first_bad_layer_named():
    need("icarus")
    export = load_export(VECTORS)
    expected = _expected_first_bad_layer_narrow(export)
    assert expected is not None
    rep = run_cosim(VECTORS, "icarus", faults=["narrow_acc"], stop_on_fail=True)
    assert not rep.ok
    assert rep.first_bad_layer == expected, rep.table()
    bad = rep.bad_layers[0]
    assert bad["acc"]["mismatches"] > 0
    f = bad["acc"]["first"]
    assert not -(1 << 15) <= f["expected"] < (1 << 15)  # the value a 16-bit acc cannot hold
    assert ((f["expected"] + (1 << 15)) % (1 << 16)) - (1 << 15) == f["got"]


# ---- altered golden files, CLI ------------------------------------------------------------------
def _copy_export(tmp_path) -> Path:
    dst = tmp_path / "export"
    shutil.copytree(VECTORS, dst)
    return dst


def test_altered_golden_output_fails_sha256_and_comparison(tmp_path):
    need("icarus")
    dst = _copy_export(tmp_path)
    export = load_export(dst)
    layer = next(L for L in export.layers if L.index == 2)
    path = export.path(layer.output)
    lines = path.read_text().splitlines()
    w = int(lines[5], 16) ^ 0xFF  # flip element 40 (lane 0 of word 5)
    lines[5] = f"{w:0{len(lines[5])}x}"
    path.write_text("\n".join(lines) + "\n")
    rep = run_cosim(dst, "icarus", layers=[2])
    assert any(layer.output["files"]["hex"] in p and "sha256" in p for p in rep.file_problems)
    assert rep.layers[0]["status"] == "mismatch"
    assert rep.layers[0]["output"]["mismatches"] == 1
    assert rep.layers[0]["output"]["first"]["index"] == 40
    assert not rep.ok and "golden file check FAILED" in rep.summary()


def _cli(argv) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    cosim.add_cosim_parser(sub)
    args = p.parse_args(["cosim", *argv])
    return args.func(args)


def test_cli_exit_codes(tmp_path, capsys):
    need("icarus")
    assert _cli([str(VECTORS), "--layers", "8,10"]) == 0
    out = capsys.readouterr().out
    assert "MAX_POOL_2D" in out and "PASS" in out
    dst = _copy_export(tmp_path)
    export = load_export(dst)
    L = next(L for L in export.layers if L.index == 10)
    p = export.path(L.acc)
    lines = p.read_text().splitlines()
    lines[3] = "00000000" if lines[3] != "00000000" else "00000001"
    p.write_text("\n".join(lines) + "\n")
    assert _cli([str(dst), "--layers", "10", "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "sha256" in out
    import json
    assert json.loads((tmp_path / "r.json").read_text())["first_bad_layer"] == 10


def test_cli_errors_on_a_folder_that_is_not_an_export(tmp_path):
    with pytest.raises(cosim.CosimError, match="manifest.yaml"):
        _cli([str(tmp_path)])


# ---- the adapter worked example (docs/cosim.md) -------------------------------------------------
def test_adapter_drives_a_user_accelerator_with_other_port_names():
    need("icarus")
    sources = cosim.rtl_sources() + [EXAMPLES / "my_npu.v"]
    rep = run_cosim(VECTORS, "icarus", layers=[2, 3], sources=sources, toplevel="my_npu",
                    includes=[cosim.RTL_DIR], adapter="my_npu_adapter:MyNpuAdapter",
                    tb_paths=[EXAMPLES])
    assert_all_bit_exact(rep, expect_acc=False)
    assert all(r["acc"] is None for r in rep.layers)  # my_npu exposes no accumulators


# ---- the CLI while it runs: rows as layers finish, status and errors on stderr ---------------
def test_progress_reports_each_layer_before_the_simulator_ends():
    """run_cosim(progress=...) hears the build, then every layer as the bench finishes it (not
    all at the end): the first row arrives while the simulator still has layer 4 to run."""
    need("icarus")
    import time
    events = []
    rep = run_cosim(VECTORS, "icarus", layers=[0, 4],
                    progress=lambda e, info: events.append((e, info, time.perf_counter())))
    t_end = time.perf_counter()
    assert_all_bit_exact(rep)
    kinds = [e for e, _, _ in events]
    assert kinds[0] == "build" and kinds.index("run") < kinds.index("layer")
    rows = [(info, t) for e, info, t in events if e == "layer"]
    assert [r["layer"] for r, _ in rows] == [0, 4]
    assert [r for r, _ in rows] == rep.layers  # the streamed rows are the report's
    layer4_wall = rep.layers[1]["wall_seconds"]
    assert layer4_wall > 0.3
    assert t_end - rows[0][1] > layer4_wall * 0.8, "layer 0 was reported only at the end"


def test_cli_prints_the_table_as_it_runs_and_status_on_stderr(capsys):
    need("icarus")
    from hwsim.cli import main
    assert main(["cosim", str(VECTORS), "--layers", "3,8"]) == 0
    cap = capsys.readouterr()
    out = cap.out.splitlines()
    assert out[0] == f"co-simulation of {VECTORS} on icarus (layer mode)"
    assert out[1].split()[:3] == ["layer", "op", "verdict"]
    assert [x.split()[:3] for x in out[2:4]] == [["3", "ADD", "OK"], ["8", "MAX_POOL_2D", "OK"]]
    assert out[-1] == "PASS" and len(out) == 6
    # the columns of the streamed rows line up with the header
    assert out[2].index("OK") == out[1].index("verdict") == out[3].index("OK")
    err = cap.err.splitlines()
    assert err and all(x.startswith("hwsim cosim: ") for x in err), err
    assert any("icarus" in x and ("compiling" in x or "cached" in x) for x in err)


def test_cli_run_error_is_one_line_on_stderr_exit_2(capsys, tmp_path):
    """The bench cannot start (no such adapter module): nothing on stdout, no JSON file, one
    `hwsim: error:` line naming the module, exit 2."""
    need("icarus")
    from hwsim.cli import main
    js = tmp_path / "r.json"
    assert main(["cosim", str(VECTORS), "--layers", "2", "--adapter", "no_such_mod:X",
                 "--json", str(js)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    errors = [x for x in cap.err.splitlines() if x.startswith("hwsim: error:")]
    assert len(errors) == 1 and "no_such_mod" in errors[0], cap.err
    assert not js.exists()


def test_cli_rtl_include_and_tb_path_take_several_paths():
    """`--rtl a.v b.v` (what a shell glob gives), repeated --rtl, and --include / --tb-path
    alike add up, in order (docs/cosim.md's user-RTL command)."""
    p = argparse.ArgumentParser()
    cosim.cosim_arguments(p)
    a = p.parse_args(["exp", "--rtl", "a.v", "b.v", "--rtl", "c.v", "--include", "i1", "i2",
                      "--include", "i3", "--tb-path", "t1", "t2", "--toplevel", "top"])
    assert a.export_dir == "exp" and a.rtl == ["a.v", "b.v", "c.v"]
    assert a.include == ["i1", "i2", "i3"] and a.tb_path == ["t1", "t2"] and a.toplevel == "top"
    assert p.parse_args(["exp"]).rtl == []


@pytest.mark.parametrize("argv, message", [
    (["--rtl", "{tmp}"], "--rtl {tmp}: a folder"),
    (["--rtl", "{tmp}/missing.v"], "--rtl {tmp}/missing.v: no such file"),
    (["--include", "{tmp}/nodir"], "--include {tmp}/nodir: no such folder"),
    (["--tb-path", "{tmp}/nodir"], "--tb-path {tmp}/nodir: no such folder"),
])
def test_cli_names_a_bad_rtl_include_or_tb_path(tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(cosim.CosimError, match=re.escape(message.replace("{tmp}",
                                                                         str(tmp_path)))):
        _cli([str(VECTORS), *argv])


def test_user_rtl_cli_with_a_glob_of_sources(tmp_path, capsys):
    """docs/cosim.md's command for your own accelerator, with the sources as a shell glob
    expands them (one --rtl, many files) and the folders from `hwsim rtl-params`."""
    need("icarus")
    sources = [str(p) for p in cosim.rtl_sources()] + [str(EXAMPLES / "my_npu.v")]
    assert _cli([str(VECTORS), "--layers", "8", "--rtl", *sources, "--include",
                 str(cosim.RTL_DIR), "--toplevel", "my_npu", "--adapter",
                 "my_npu_adapter:MyNpuAdapter", "--tb-path", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "MAX_POOL_2D" in out and out.rstrip().endswith("PASS")
