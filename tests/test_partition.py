"""Array/host partitioning (issue 9): placement anywhere, the config's host_ops, the PAD fold of
the hardware program, exports of partitioned networks, chain co-simulation with host layers,
the coverage line, and the corpus acceptance (../shared/corpus, skipped when it is absent)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from test_engine_fold import FOLD_CASES, _load, pad_conv_model

from hwsim.hw import map_network
from hwsim.hw.config import ConfigError, config_from_dict, load_config

CORPUS = Path(os.environ.get("HWSIM_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
NO_CORPUS = f"corpus not found at {CORPUS} (set HWSIM_CORPUS)"


def _corpus_models() -> list[dict]:
    """The corpus models with an oracle: {path, dtype, config}."""
    if not (CORPUS / "index.yaml").exists():
        return []
    import yaml
    index = yaml.safe_load((CORPUS / "index.yaml").read_text())
    return [{"path": m["path"], "dtype": m["input"]["dtype"],
             "config": "tflite-16x8" if m["input"]["dtype"] == "int16" else "tflite-int8"}
            for m in index["models"] if m.get("oracle") != "none"]


def _config(**over):
    """tflite-int8 with ``over`` merged in (top-level keys)."""
    d = load_config("tflite-int8").to_dict()
    d.update(over)
    return config_from_dict(d)


# -- item 1: placement --------------------------------------------------------------------------

@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
@pytest.mark.parametrize("case", [0, 2, 3, 5])
def test_hardware_pad_fold_is_exact(case, depthwise):
    """A PAD read only by an array convolution, padding with its input zero point, becomes
    that convolution's padding in the hardware program: placement "fused", the conv reads the
    PAD's input, and its accumulators and output equal the unfolded model's integers."""
    rng = np.random.default_rng(100 + case + 10 * depthwise)
    p = FOLD_CASES[case]
    net = _load(pad_conv_model(rng, depthwise=depthwise, **p))
    hw = map_network(net.graph, "tflite-int8")
    assert hw.placement == {0: "fused", 1: "array"} and hw.exact
    conv = hw.program.layers[1]
    assert conv.inputs[0] == net.program.inputs[0]   # reads the network input itself
    assert hw.program.layers[0].params.fused_into == 1
    for extreme in (False, True):
        shape = (1, p["h"], p["w"], p["cin"])
        x = (rng.choice([-128, 127], shape) if extreme else
             rng.integers(-128, 128, shape)).astype(np.int8)
        ref = net.run(x, trace=True)   # the model, unfolded
        got = hw.run(x, trace=True)
        assert np.array_equal(got.outputs[0], ref.outputs[0])
        assert np.array_equal(got.trace.accumulators[1], ref.trace.accumulators[1])


@pytest.mark.parametrize("variant", [dict(pad_value=5), dict(pad_channels=2)],
                         ids=["other-value", "channel-pad"])
def test_hardware_pad_that_must_not_fold_runs_on_the_host(variant):
    rng = np.random.default_rng(3)
    net = _load(pad_conv_model(rng, **FOLD_CASES[0], **variant))
    hw = map_network(net.graph, "tflite-int8")
    assert hw.placement == {0: "host", 1: "array"}
    assert "PAD" in hw.host_reasons[0]


def test_config_host_ops_forces_ops_to_the_host():
    from test_hw_dataflow import small_cnn
    g = small_cnn(np.random.default_rng(5), tail=False)
    ops = {op.index: op.type for op in g.ops}
    free = map_network(g, "tflite-int8")
    forced = map_network(g, _config(host_ops=["DEPTHWISE_CONV_2D", "ADD"]))
    for i, op in ops.items():
        if op in ("DEPTHWISE_CONV_2D", "ADD"):
            assert free.placement[i] == "array" and forced.placement[i] == "host"
            assert "host_ops" in forced.host_reasons[i]
        else:
            assert forced.placement[i] == free.placement[i]
    x = np.random.default_rng(6).integers(-128, 128, (1, 8, 8, 3), dtype=np.int8)
    assert np.array_equal(forced.run(x).outputs[0], free.run(x).outputs[0])
    assert forced.memory["weights"]["words"] < free.memory["weights"]["words"]


def test_config_host_ops_names_the_key_and_the_bad_op():
    with pytest.raises(ConfigError, match=r"host_ops: 'CONV_3D_X' is not an op hwsim runs"):
        _config(host_ops=["CONV_3D_X"])
    assert _config(host_ops="ADD").host_ops == ("ADD",)
    assert "host_ops" not in load_config("tflite-int8").to_dict()   # old exports keep bytes


@pytest.mark.skipif(not _corpus_models(), reason=NO_CORPUS)
def test_mobilenet_v2_pads_fold_and_its_transpose_is_a_host_head():
    net_path = CORPUS / "real" / "mobilenet_v2_pytorch_1x3x224x224" / "model.tflite"
    hw = map_network(net_path, "tflite-int8")   # the preset holds it (no region reuse)
    pads = [layer.index for layer in hw.reference.layers if layer.op == "PAD"]
    assert len(pads) == 18 and all(hw.placement[i] == "fused" for i in pads)
    assert hw.placement[0] == "host" and "TRANSPOSE at the network's input" in \
        hw.host_reasons[0]
    assert hw.exact


# -- item 5: coverage ----------------------------------------------------------------------------

def _small_model(tmp_path, tail=True):
    from test_hw_dataflow import small_cnn
    from hwsim.frontends.tflite_writer import serialize_tflite
    path = tmp_path / "small.tflite"
    path.write_bytes(serialize_tflite(small_cnn(np.random.default_rng(7), tail=tail)))
    return str(path)


def test_coverage_line_counts_array_layers_macs_and_host_ops():
    from test_hw_dataflow import small_cnn
    g = small_cnn(np.random.default_rng(7))
    hw = map_network(g, "tflite-int8")
    macs = sum(layer.macs for layer in hw.program.layers)
    n_arr = sum(w == "array" for w in hw.placement.values())
    assert hw.coverage() == (f"array: {n_arr} layers, {macs / 1e3:.1f} k MACs (100.00 %); "
                             f"host: SOFTMAX; alias: 1")
    forced = map_network(g, _config(host_ops=["DEPTHWISE_CONV_2D"]))
    dw = sum(layer.macs for layer in hw.program.layers if layer.op == "DEPTHWISE_CONV_2D")
    assert f"({100 * (macs - dw) / macs:.2f} %); host: DEPTHWISE_CONV_2D, SOFTMAX" in \
        forced.coverage()


def test_info_with_config_prints_placement_reasons_and_the_split(tmp_path, capsys):
    from hwsim import cli
    model = _small_model(tmp_path)
    assert cli.main(["info", model, "--config", "tflite-int8"]) == 0
    out = capsys.readouterr().out
    assert "  where  " in out.splitlines()[4]
    assert "host layer 7 (SOFTMAX): SOFTMAX is not an array op" in out
    assert out.rstrip().splitlines()[-1].startswith("on 'tflite-int8': array: 6 layers, ")
    assert cli.main(["info", model, "--config", "tflite-int8",
                     "--host-ops", "add,DEPTHWISE_CONV_2D"]) == 0
    assert "host: DEPTHWISE_CONV_2D, ADD, SOFTMAX" in capsys.readouterr().out
    assert cli.main(["info", model]) == 0
    assert "where" not in capsys.readouterr().out   # the model alone, as before


@pytest.mark.parametrize("argv, msg", [
    (["--config", "tflite-int8", "--host-ops", "NOPE"], "--host-ops: 'NOPE' is not an op"),
    (["--host-ops", "ADD"], "--host-ops needs --config"),
    (["--config", "no-such-preset"], "no-such-preset: neither a YAML file nor a preset"),
])
def test_info_bad_mapping_arguments_are_one_line_exit_2(tmp_path, capsys, argv, msg):
    from hwsim import cli
    model = _small_model(tmp_path)
    assert cli.main(["info", model, *argv]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count("\n") == 1
    assert cap.err.startswith("hwsim: error: ") and msg in cap.err


# -- item 3: export of partitioned networks --------------------------------------------------------

@pytest.fixture(scope="module")
def host_export(tmp_path_factory):
    """The host example (TRANSPOSE head, TRANSPOSE in the middle, SOFTMAX tail) exported with
    default flags."""
    from hwsim.export.exporter import export, rtl_host_example_graph, rtl_host_example_input
    from hwsim.frontends.tflite_writer import serialize_tflite
    d = tmp_path_factory.mktemp("host")
    model = d / "example_host.tflite"
    model.write_bytes(serialize_tflite(rtl_host_example_graph()))
    np.save(d / "x.npy", rtl_host_example_input())
    return export(model, "tflite-int8", [d / "x.npy"], d / "out", formats="hex")


def test_host_example_matches_tflite():
    from oracle import assert_same_as_tflite
    from hwsim.export.exporter import rtl_host_example_graph, rtl_host_example_input
    from hwsim.frontends.tflite_writer import serialize_tflite
    assert_same_as_tflite(serialize_tflite(rtl_host_example_graph()), rtl_host_example_input())


def test_export_lists_every_layer_with_placement_tensors_and_reasons(host_export):
    man = host_export.manifest
    layers = man["layers"]
    assert [L["index"] for L in layers] == list(range(10))
    where = [L["placement"] for L in layers]
    assert where == ["host", "array", "array", "host", "array", "array", "array", "alias",
                     "array", "host"]
    for L in layers:
        assert {"inputs", "outputs", "vectors"} <= set(L)
        if L["placement"] == "host":
            assert L["host"] and L["descriptor"] is None and L["reason"]
            assert L["vectors"]["output"]["files"]   # golden vectors of host layers too
        elif L["placement"] == "alias":
            assert "folder" not in L and L["vectors"] == {} and L["alias_of"] == \
                layers[6]["outputs"][0]["tensor"]
        else:
            assert not L["host"] and "reason" not in L
    assert "TRANSPOSE at the network's input" in layers[0]["reason"]
    assert "TRANSPOSE is not an array op" in layers[3]["reason"]
    assert "SOFTMAX is not an array op" in layers[9]["reason"]
    # host outputs that the array reads are in the activation memory, where it reads them
    for host, reader in ((0, 1), (3, 4)):
        out = layers[host]["outputs"][0]
        assert out["base"] == layers[reader]["fields"]["in_base"]
        assert layers[reader]["inputs"][0]["base"] == out["base"]
        assert layers[host]["vectors"]["output"]["base"] == out["base"]
    assert layers[5]["fields"]["in2_base"] == layers[3]["outputs"][0]["base"]   # ADD
    assert "base" not in layers[9]["outputs"][0]   # the SOFTMAX's: the host keeps it
    assert "base" not in layers[0]["inputs"][0]     # the NCHW input: read by the host only
    regions = {r["tensor"]: r for r in man["regions"]}
    assert regions[layers[0]["outputs"][0]["tensor"]]["producer"] == 0
    assert man["model"]["copy"] == "model.tflite"
    assert "model.tflite" in {f["path"] for f in man["files"]}


def test_export_writes_host_outputs_into_the_final_activation_image(host_export):
    from hwsim.cosim import load_export, read_words
    from hwsim.export.formats import read_memory
    ex = load_export(host_export.out_dir)
    man = host_export.manifest
    act = man["memories"]["activations"]
    img = read_memory(ex.dir / man["images"]["act_final"]["files"]["hex"], act["word_bits"],
                      "hex")
    for i in (0, 3):
        L = next(L for L in ex.layers if L.index == i)
        spec = L.output
        words = img[spec["base"]:spec["base"] + spec["words"]]
        assert words == read_words(ex, spec)


def test_all_array_export_has_no_model_copy(tmp_path):
    from test_hw_dataflow import small_cnn
    from hwsim.export.exporter import export
    from hwsim.frontends.tflite_writer import serialize_tflite
    model = tmp_path / "m.tflite"
    model.write_bytes(serialize_tflite(small_cnn(np.random.default_rng(7), tail=False)))
    res = export(model, "tflite-int8", [np.zeros((1, 8, 8, 3), np.int8)], tmp_path / "o",
                 formats="hex")
    assert "copy" not in res.manifest["model"] and not (tmp_path / "o" / "model.tflite").exists()
    assert {L["placement"] for L in res.manifest["layers"]} == {"array", "alias"}


def test_export_cli_prints_the_split_and_takes_host_ops(tmp_path, capsys):
    from hwsim import cli
    model = _small_model(tmp_path)
    argv = ["export", model, "--random-input", "1", "--formats", "hex"]
    assert cli.main([*argv, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "array: 6 layers, " in out and "host: SOFTMAX; alias: 1" in out
    assert cli.main([*argv, "--out", str(tmp_path / "b"), "--host-ops", "ADD"]) == 0
    assert "host: ADD, SOFTMAX" in capsys.readouterr().out
    assert cli.main([*argv, "--out", str(tmp_path / "c"), "--host-ops", "ADD,NOPE"]) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and "--host-ops: 'NOPE' is not an op" in cap.err
    assert not (tmp_path / "c").exists()
    assert cli.main([*argv, "--out", str(tmp_path / "d"), "--host-tail", "-q"]) == 0
    assert "no longer needed" in capsys.readouterr().err


def test_host_export_is_byte_identical_run_to_run(host_export, tmp_path):
    from hwsim.export.exporter import export
    d = Path(host_export.out_dir).parent
    again = export(d / "example_host.tflite", "tflite-int8", [d / "x.npy"], tmp_path / "again",
                   formats="hex")
    files = sorted(again.files)
    assert files == sorted(host_export.files)
    for rel in files:
        assert (tmp_path / "again" / rel).read_bytes() == \
            (Path(host_export.out_dir) / rel).read_bytes(), rel


# -- item 4: chain co-simulation with host layers ------------------------------------------------

def _sim() -> str:
    from hwsim import cosim
    for sim in ("verilator", "icarus"):
        if cosim.simulator_available(sim) is None:
            return sim
    pytest.skip(f"no simulator: {cosim.simulator_available('icarus')}")


def test_chain_cosim_runs_host_layers_on_the_rtls_outputs(host_export):
    from hwsim.cosim import run_cosim
    rep = run_cosim(host_export.out_dir, sim=_sim(), mode="chain")
    assert rep.ok, rep.table()
    rows = {r["layer"]: r for r in rep.layers}
    assert sorted(rows) == [0, 1, 2, 3, 4, 5, 6, 8, 9]   # no row for the alias (7)
    for i in (0, 3, 9):
        r = rows[i]
        assert r["status"] == "host" and r["host"] and r["output"]["mismatches"] == 0
        assert r["output"]["elements"] > 0
    assert all(rows[i]["status"] == "ok" for i in rows if i not in (0, 3, 9))
    assert "3/3 host layers bit-exact" in rep.summary()
    assert " HOST " in rep.table()


def test_chain_cosim_propagates_an_rtl_fault_through_host_layers(host_export):
    from hwsim.cosim import run_cosim
    rep = run_cosim(host_export.out_dir, sim=_sim(), mode="chain", faults=("rounding",))
    assert not rep.ok
    rows = {r["layer"]: r for r in rep.layers}
    assert rows[0]["status"] == "host"   # before any array layer
    first = rep.first_bad_layer
    assert first is not None and first != 0 and not rows[first].get("host")
    # the host layers after the fault compute on the RTL's wrong outputs: they differ too
    assert first < 3 and rows[3]["status"] == "mismatch" and \
        rows[3]["output"]["mismatches"] > 0


def test_layer_mode_leaves_host_layers_unrun(host_export):
    from hwsim.cosim import run_cosim
    rep = run_cosim(host_export.out_dir, sim=_sim(), mode="layer", layers=[0, 1, 3, 4])
    rows = {r["layer"]: r for r in rep.layers}
    assert rows[0]["status"] == rows[3]["status"] == "host" and not rows[0].get("host")
    assert rows[1]["status"] == rows[4]["status"] == "ok"


# -- acceptance: the corpus ------------------------------------------------------------------------
# Every model of ../shared/corpus with an oracle exports with default flags (int8 models with
# tflite-int8, int16 ones with tflite-16x8) and its exported golden outputs are the oracle's;
# every one passes `hwsim cosim --sim verilator --mode chain` (int16 ones on the RTL built for
# tflite-16x8). mobilenet_v2's
# co-simulation is the long one (marked slow: it runs with HWSIM_SLOW=1).
CORPUS_MODELS = _corpus_models()
SLOW_COSIM = ("real/mobilenet_v2_pytorch_1x3x224x224",)


def _corpus_export(m, tmp_path):
    from hwsim.export.exporter import export
    d = CORPUS / m["path"]
    return export(d / "model.tflite", m["config"], [d / "input_0.npy"], tmp_path / "exp",
                  formats="hex")


def _ids(m):
    return m["path"].split("/")[-1]


@pytest.mark.skipif(not CORPUS_MODELS, reason=NO_CORPUS)
@pytest.mark.parametrize("m", CORPUS_MODELS, ids=_ids)
def test_corpus_model_exports_with_default_flags(m, tmp_path):
    import h5py
    res = _corpus_export(m, tmp_path)
    man = res.manifest
    assert man["exact"] and res.coverage.startswith("array: ")
    with h5py.File(CORPUS / m["path"] / "expected.h5", "r") as h, \
            h5py.File(Path(res.out_dir) / "vectors.h5", "r") as v:
        for k, out in enumerate(man["outputs"]):
            writer = next(L for L in man["layers"] if "folder" in L and any(
                t["tensor"] == out["tensor"] for t in L["outputs"]))
            got = v["layers"][writer["folder"].split("/")[-1]]["output"][()]
            want = h[f"outputs/{k}"][()]
            assert got.dtype == want.dtype and np.array_equal(got.reshape(want.shape), want)


def _slow_mark(m):
    if m["path"] in SLOW_COSIM:
        return pytest.param(m, id=_ids(m), marks=[pytest.mark.slow, pytest.mark.skipif(
            not os.environ.get("HWSIM_SLOW"), reason="mobilenet_v2's co-simulation takes "
            "minutes: run with HWSIM_SLOW=1")])
    return pytest.param(m, id=_ids(m))


@pytest.mark.skipif(not CORPUS_MODELS, reason=NO_CORPUS)
@pytest.mark.parametrize("m", [_slow_mark(m) for m in CORPUS_MODELS])
def test_corpus_model_passes_chain_cosim_on_verilator(m, tmp_path):
    """int8 models on tflite-int8, int16 (16x8) ones on tflite-16x8 (issue 10's acceptance)."""
    from hwsim import cosim
    reason = cosim.simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    res = _corpus_export(m, tmp_path)
    rep = cosim.run_cosim(res.out_dir, sim="verilator", mode="chain")
    assert rep.ok, rep.table()
    host = [L["index"] for L in res.manifest["layers"] if L["placement"] == "host"]
    assert sorted(r["layer"] for r in rep.layers if r.get("host")) == host
    from test_rtl_cosim import assert_cycles_match_the_model
    assert_cycles_match_the_model(rep)  # issue 10 item 4: every array layer within 10 %


# -- item 2: CONCATENATION along C as a memory alias (a pixel stride) ----------------------------
def _channel_concat_graph(seed: int = 11, c_a: int = 8, c_b: int = 16):
    """x [1,5,5,8] -> CONV a (3x3 SAME, c_a), CONV b (3x3 SAME, c_b) -> CONCATENATION(axis 3,
    equal quantization) -> CONV y (1x1, 8)."""
    from hwsim.frontends.builder import GraphBuilder
    rng = np.random.default_rng(seed)
    b = GraphBuilder("cat_channels")
    x = b.input("x", (1, 5, 5, 8), np.int8, scale=0.02, zero_point=1)

    def conv(name, src, cin, cout, k):
        w = b.const(f"{name}_w", rng.integers(-4, 5, (cout, k, k, cin), dtype=np.int8),
                    scales=np.full(cout, 0.01, np.float32))
        bias = b.const(f"{name}_b", rng.integers(-200, 200, cout, dtype=np.int32),
                       scales=np.full(cout, 0.0002, np.float32))
        y = b.activation(name, (1, 5, 5, cout), np.int8, scale=0.05, zero_point=-3)
        b.op("CONV_2D", [src, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
             dilation_w_factor=1, dilation_h_factor=1, fused_activation_function="NONE")
        return y

    a, c = conv("a", x, 8, c_a, 3), conv("b", x, 8, c_b, 3)
    t = b.activation("cat", (1, 5, 5, c_a + c_b), np.int8, scale=0.05, zero_point=-3)
    b.op("CONCATENATION", [a, c], [t], axis=3, fused_activation_function="NONE")
    b.output(conv("y", t, c_a + c_b, 8, 1))
    return b.build(), (a, c, t)


@pytest.fixture(scope="module")
def channel_concat_export(tmp_path_factory):
    from hwsim.export import export
    from hwsim.frontends.tflite_writer import serialize_tflite
    g, tensors = _channel_concat_graph()
    d = tmp_path_factory.mktemp("catc")
    (d / "m.tflite").write_bytes(serialize_tflite(g))
    x = np.random.default_rng(5).integers(-128, 128, (1, 5, 5, 8), dtype=np.int8)
    return g, tensors, x, export(d / "m.tflite", "tflite-int8", [x], d / "e", formats="hex")


def test_channel_concatenation_is_an_alias_written_with_a_pixel_stride(channel_concat_export):
    """Along C with 25 pixels: the two CONVs write their channels of each pixel at their channel
    offset (out_base) with the concatenated tensor's pixel stride (24); exact against the
    engine, and the final activation image holds the concatenation where they wrote it."""
    from hwsim.engine import Network
    from hwsim.export.formats import read_memory
    from hwsim.hwif import plan_network
    from hwsim.hwif.pack import unpack_words
    from hwsim.lower import lower
    g, (a, c, t), x, res = channel_concat_export
    hw = map_network(g, "tflite-int8")
    cat = next(lay for lay in hw.program.layers if lay.op == "CONCATENATION")
    assert hw.placement[cat.index] == "alias" and cat.index not in hw.host_reasons
    plan = plan_network(hw.program, hw.config, hw.placement)
    base, words = plan.regions[t]
    assert words == 25 * 24 // 8 and plan.strides == {a: 24, c: 24}
    # a: pixels 0..24 from channel 0 (24 * 24 + 8 elements); b: from channel 8
    assert plan.regions[a] == (base, 73) and plan.regions[c] == (base + 1, 74)
    writers = {lp.layer.outputs[0]: lp for lp in plan.array_layers}
    assert (writers[a].fields["out_base"], writers[a].fields["out_pix_stride"]) == (base, 24)
    assert (writers[c].fields["out_base"], writers[c].fields["out_pix_stride"]) == (base + 1, 24)
    assert [lp.fields["out_pix_stride"] for lp in plan.array_layers
            if lp.layer.outputs[0] not in (a, c)] == [0]
    run = hw.run(x)
    ref = Network(lower(g), g).run(x, trace=True)
    assert np.array_equal(run.outputs[0], ref.outputs[0])
    img = read_memory(Path(res.out_dir) / "mem" / "act_final.hex", 64, "hex")
    got = unpack_words(img[base:base + words], elem_bits=8, signed=True, lanes_per_word=8,
                       count=words * 8)
    assert np.array_equal(got, ref.trace.tensors[t].reshape(-1))
    outs = {v["output"]["tensor"]: v["output"] for v in
            (L["vectors"] for L in res.manifest["layers"] if L.get("vectors"))}
    assert outs[a]["pixel_stride"] == 24 and outs[a]["words"] == 73
    assert "pixel_stride" not in outs[next(iter(set(outs) - {a, c}))]
    # `hwsim compare` of the final activation image picks the strided outputs out of it
    from hwsim.cli import main
    assert main(["compare", str(res.out_dir), str(Path(res.out_dir) / "mem" / "act_final.hex"),
                 "--memory", "activations", "--mismatches-only"]) == 0


def test_channel_concatenation_chain_cosim_is_bit_exact_on_verilator(channel_concat_export,
                                                                     capsys):
    """`hwsim cosim --sim verilator --mode chain`: the CONVs write strided into the
    concatenated region, the last CONV reads it as the RTL left it; every layer bit-exact."""
    import json
    from hwsim import cosim
    from hwsim.cli import main
    reason = cosim.simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    out = Path(channel_concat_export[3].out_dir)
    rc = main(["cosim", str(out), "--sim", "verilator", "--mode", "chain",
               "--json", str(out / "cosim.json")])
    rep = json.loads((out / "cosim.json").read_text())
    assert rc == 0, capsys.readouterr().out
    rows = [r for r in rep["layers"] if r["status"] != "host"]
    assert [r["layer"] for r in rows] == [0, 1, 3]   # 2: the alias
    assert all(r["status"] == "ok" and r["output"]["mismatches"] == 0 for r in rows)
