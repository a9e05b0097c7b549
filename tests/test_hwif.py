"""hwsim.hwif, the hardware interface: the committed hwsim_desc.vh is what the field table
generates; legalization's capacity check and the export's addresses come from one memory plan;
hwif sits below hw/ and export/ and the exporter <-> manifest import circle is gone."""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import numpy as np
import pytest

from hwsim.examples import example_input
from hwsim.export.exporter import rtl_example_graph
from hwsim.hw import map_network
from hwsim.hw.config import ConfigError, config_from_dict, load_config
from hwsim.hwif import (DESCRIPTOR_FIELDS, DESCRIPTOR_TABLE, allocate, decode_descriptor,
                        descriptor_words, plan_network, verilog_header)
from hwsim.ir import HwsimError
from hwsim.rtl_params import add_rtl_params_parser
from hwsim.vocab import AccelOp

PKG = Path(__file__).resolve().parent.parent / "hwsim"
DESC_VH = PKG / "rtl" / "hwsim_desc.vh"


def test_committed_hwsim_desc_vh_is_generated_from_the_field_table():
    assert DESC_VH.read_text() == verilog_header(), \
        "hwsim/rtl/hwsim_desc.vh is stale: run `hwsim rtl-params --desc -o hwsim/rtl/hwsim_desc.vh`"


def test_desc_header_names_every_field_at_its_word_and_every_op_code():
    text = verilog_header()
    for i, (_, rtl) in enumerate(DESCRIPTOR_TABLE):
        assert f"`define HWSIM_D_{rtl} " in text and text.count(f"HWSIM_D_{rtl} ") == 1
        line = next(ln for ln in text.splitlines() if f"HWSIM_D_{rtl} " in ln)
        assert int(line.split()[-1]) == i
    for op in AccelOp:
        line = next(ln for ln in text.splitlines() if ln.split()[1:2] == [f"HWSIM_OP_{op.name}"])
        assert int(line.split()[-1]) == int(op)
    used = next(ln for ln in text.splitlines() if "HWSIM_DESC_USED" in ln and "define" in ln)
    assert int(used.split()[-1]) == len(DESCRIPTOR_FIELDS)


def test_rtl_params_desc_writes_the_header_and_refuses_a_config(tmp_path, capsys):
    p = argparse.ArgumentParser()
    add_rtl_params_parser(p.add_subparsers())
    out = tmp_path / "d" / "hwsim_desc.vh"
    args = p.parse_args(["rtl-params", "--desc", "-o", str(out)])
    assert args.func(args) == 0
    assert out.read_text() == verilog_header()
    assert "wrote" in capsys.readouterr().out
    args = p.parse_args(["rtl-params", "--desc", "-o", "-"])
    assert args.func(args) == 0 and capsys.readouterr().out == verilog_header()
    args = p.parse_args(["rtl-params", "tflite-int8", "--desc", "-o", str(tmp_path / "x.vh")])
    with pytest.raises(ConfigError, match="CONFIG is not used with --desc"):
        args.func(args)
    assert not (tmp_path / "x.vh").exists()


def test_descriptor_round_trip_of_negative_and_large_fields():
    fields = {"op": int(AccelOp.ADD), "act_min": -128, "input_offset": -2**31,
              "out_base": 2**31 - 1}
    words = descriptor_words(fields)
    assert len(words) == 64 and all(0 <= w < 2**32 for w in words)
    assert decode_descriptor(words) == {n: fields.get(n, 0) for n in DESCRIPTOR_FIELDS}
    with pytest.raises(HwsimError, match="act_max = 4294967296 does not fit 32 bits"):
        descriptor_words({"act_max": 2**32})


@pytest.fixture(scope="module")
def example_hw():
    g = rtl_example_graph()
    return g, map_network(g, "tflite-int8")


def test_legalization_capacity_and_export_addresses_are_one_plan(example_hw):
    _, hw = example_hw
    plan = plan_network(hw.program, hw.config, hw.placement)
    mp = allocate(hw.program, hw.config, hw.placement)
    for key, use in hw.memory.items():
        assert use["words"] == plan.memories[key].used_words == mp.memories[key].used_words > 0
        assert use["capacity"] == plan.memories[key].depth * plan.memories[key].banks
    assert plan.regions == mp.regions
    for lp in plan.array_layers:
        b = mp.bases[lp.index]
        for k in ("w_base", "b_base", "rq_base", "acc_base"):
            if k in b:
                assert lp.fields[k] == b[k], (lp.index, k)
        if lp.weights is not None:  # the words packed are the words allocated
            assert len(lp.weights) == lp.fields["words_per_channel"] * lp.weight_matrix.shape[0]
        assert lp.position == mp.positions[lp.index]


def test_a_memory_one_word_too_small_is_refused_at_the_layer_that_overflows(example_hw):
    g, hw = example_hw
    need = hw.memory["weights"]["words"]
    cfg = load_config("tflite-int8").to_dict()
    cfg["memories"]["weights"]["depth"] = need - 1
    small = config_from_dict(cfg, "small.yaml")
    mp = allocate(hw.program, small, hw.placement)
    assert len(mp.overflows) == 1
    layer, op, msg = mp.overflows[0]
    last_mac = max(i for i, b in mp.bases.items() if "w_base" in b)
    assert layer == last_mac and op == hw.program.layers[layer].op
    assert msg == (f"memories.weights: {need} words needed up to here, capacity depth x banks "
                   f"= {need - 1} x 1 = {need - 1}")
    with pytest.raises(HwsimError, match=f"layer {layer} \\({op}\\): memories.weights: {need} "
                                         f"words needed up to here"):
        map_network(g, small)
    cfg["memories"]["weights"]["depth"] = need
    hw2 = map_network(g, config_from_dict(cfg, "exact.yaml"))
    assert hw2.memory["weights"] == {"words": need, "capacity": need}
    np.testing.assert_array_equal(hw2.run(example_input(0)).outputs[0],
                                  hw.run(example_input(0)).outputs[0])


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions, as an absolute name."""
    pkg = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = pkg.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
    return out


def test_hwif_imports_only_the_floors_below_hw_and_export():
    allowed = {"hwsim.ir", "hwsim.vocab", "hwsim.params", "hwsim.util", "hwsim.yamlio",
               "hwsim.resources"}
    for path in sorted((PKG / "hwif").glob("*.py")):
        for mod in _imports(path):
            if mod.startswith("hwsim"):
                assert mod in allowed or mod.startswith("hwsim.hwif"), (path.name, mod)


def test_export_manifest_does_not_import_the_exporter():
    mods = _imports(PKG / "export" / "manifest.py")
    assert "hwsim.export.exporter" not in mods and "hwsim.hwif.manifest" in mods


def test_a_host_layer_output_the_array_reads_gets_a_region_in_the_plan():
    from hwsim.frontends.builder import GraphBuilder
    b = GraphBuilder("host_head")
    x = b.input("x", (1, 4, 4, 2), np.int8, scale=0.02, zero_point=0)
    r = b.activation("r", (1, 4, 4, 2), np.int8, scale=1.0 / 256, zero_point=-128)
    b.op("SOFTMAX", [x], [r], beta=1.0)
    w = b.const("w", np.ones((3, 1, 1, 2), np.int8), scales=np.full(3, 0.01, np.float32))
    y = b.activation("y", (1, 4, 4, 3), np.int8, scale=0.05, zero_point=0)
    b.op("CONV_2D", [r, w], [y], padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1,
         dilation_h_factor=1, fused_activation_function="NONE")
    b.output(y)
    hw = map_network(b.build(), "tflite-int8")
    assert hw.placement == {0: "host", 1: "array"}
    plan = plan_network(hw.program, hw.config, hw.placement)
    host, conv = plan.layers
    assert host.host and host.vectors["output"].memory == "activations"
    base = host.vectors["output"].base
    assert plan.regions[r] == (base, 4) and conv.fields["in_base"] == base
    # the network input only the host reads is not in the activation memory: the host
    # output's region comes first, then the conv's output
    assert x not in plan.regions and base < conv.fields["out_base"]
    assert hw.memory["activations"]["words"] == 4 + 6  # 32 and 48 int8 in 8 lanes


def test_export_files_reads_a_manifest_once_per_state(tmp_path, monkeypatch):
    import shutil

    from hwsim.hwif import manifest as hm
    src = PKG.parent / "rtl_vectors" / "example"
    folder = tmp_path / "e"
    shutil.copytree(src, folder)
    reads = []
    real = hm.read_manifest
    monkeypatch.setattr(hm, "read_manifest", lambda f: reads.append(f) or real(f))
    first = hm.export_files(folder)
    assert "manifest.yaml" in first and "mem/weights.hex" in first
    first.add("changed by the caller")   # a copy: the kept listing is not touched
    assert hm.export_files(folder) == first - {"changed by the caller"} and len(reads) == 1
    text = (folder / "manifest.yaml").read_text()
    (folder / "manifest.yaml").write_text(text.replace("format: hwsim-export", "format: x"))
    assert hm.export_files(folder) is None and len(reads) == 2   # changed: read again
    (folder / "manifest.yaml").unlink()
    assert hm.export_files(folder) is None and len(reads) == 2   # no manifest: nothing read


# -- CONCATENATION as a memory alias --------------------------------------------------------------
def _conv(b, name, x, cin, cout, shape, seed):
    w = b.const(f"{name}_w", np.random.default_rng(seed).integers(-3, 4, (cout, 1, 1, cin),
                                                                   dtype=np.int8),
                scales=np.full(cout, 0.01, np.float32))
    y = b.activation(name, shape, np.int8, scale=0.05, zero_point=-3)
    b.op("CONV_2D", [x, w], [y], padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1,
         dilation_h_factor=1, fused_activation_function="NONE")
    return y


def _concat_graph(axis: int, hw_a: tuple, hw_b: tuple, cat_scale: float = 0.05,
                  second_reader: bool = False):
    """x -> CONV a, CONV b -> CONCATENATION(axis) -> CONV c."""
    from hwsim.frontends.builder import GraphBuilder
    b = GraphBuilder(f"cat{axis}")
    x = b.input("x", (1,) + hw_a[:2] + (8,), np.int8, scale=0.02, zero_point=1)
    a = _conv(b, "a", x, 8, hw_a[2], (1,) + hw_a, 1)
    c = _conv(b, "b", x, 8, hw_b[2], (1,) + hw_b, 2)
    out = list((1,) + hw_a)
    out[axis] = ((1,) + hw_a)[axis] + ((1,) + hw_b)[axis]
    t = b.activation("cat", tuple(out), np.int8, scale=cat_scale, zero_point=-3)
    b.op("CONCATENATION", [a, c], [t], axis=axis, fused_activation_function="NONE")
    y = _conv(b, "y", t, out[3], 8, tuple(out[:3]) + (8,), 3)
    b.output(y)
    if second_reader:   # the first input is also read by another layer
        z = _conv(b, "z", a, hw_a[2], 8, (1,) + hw_a[:2] + (8,), 4)
        b.output(z)
    return b.build(), (a, c, t)


def test_concatenation_along_h_is_an_alias_its_inputs_written_in_place(tmp_path):
    from hwsim.engine import Network
    from hwsim.export import export
    from hwsim.lower import lower
    g, (a, c, t) = _concat_graph(1, (4, 4, 8), (4, 4, 8))
    hw = map_network(g, "tflite-int8")
    cat = next(lay for lay in hw.program.layers if lay.op == "CONCATENATION")
    assert hw.placement[cat.index] == "alias" and cat.index not in hw.host_reasons
    plan = plan_network(hw.program, hw.config, hw.placement)
    base, words = plan.regions[t]
    assert words == 32 and plan.regions[a] == (base, 16) and plan.regions[c] == (base + 16, 16)
    writers = {lp.layer.outputs[0]: lp for lp in plan.array_layers}
    assert writers[a].fields["out_base"] == base and writers[c].fields["out_base"] == base + 16
    assert [al["concat_of"] for al in plan.aliases] == [[a, c]]
    # exact against the engine: the hardware program's output, and the activation memory after
    # the run holds the concatenation where the two CONVs wrote it
    x = np.random.default_rng(5).integers(-128, 128, (1, 4, 4, 8), dtype=np.int8)
    run = hw.run(x)
    ref = Network(lower(g), g).run(x, trace=True)
    assert np.array_equal(run.outputs[0], ref.outputs[0])
    res = export(_write(g, tmp_path), "tflite-int8", [x], tmp_path / "e", formats="hex")
    from hwsim.export.formats import read_memory
    from hwsim.hwif.pack import unpack_words
    img = read_memory(tmp_path / "e" / "mem" / "act_final.hex", 64, "hex")
    got = unpack_words(img[base:base + words], elem_bits=8, signed=True, lanes_per_word=8,
                       count=words * 8)
    assert np.array_equal(got, ref.trace.tensors[t].reshape(-1))
    assert res.manifest["aliases"][0]["concat_of"] == [a, c]


def _write(g, tmp_path):
    from hwsim.frontends.tflite_writer import serialize_tflite
    path = tmp_path / "m.tflite"
    path.write_bytes(serialize_tflite(g))
    return path


@pytest.mark.parametrize("case,why", [
    (dict(axis=2, hw_a=(4, 4, 8), hw_b=(4, 4, 8)), "along axis 2 of \\[1, 4, 8, 8\\] its inputs "
                                                   "interleave"),
    (dict(axis=3, hw_a=(4, 4, 4), hw_b=(4, 4, 8)), "input \\d+ would start at channel 4, not at "
                                                   "a word of the activation memory"),
    (dict(axis=1, hw_a=(3, 3, 1), hw_b=(3, 3, 1)), "input .* would start at element 9, not at a "
                                                   "word of the activation memory \\(8 lanes\\)"),
    (dict(axis=1, hw_a=(4, 4, 8), hw_b=(4, 4, 8), second_reader=True),
     "input \\d+ is not written by an array layer for this CONCATENATION alone"),
])
def test_concatenation_that_cannot_alias_stays_on_the_host_saying_why(case, why):
    g, _ = _concat_graph(**case)
    hw = map_network(g, "tflite-int8")
    cat = next(lay for lay in hw.program.layers if lay.op == "CONCATENATION")
    assert hw.placement[cat.index] == "host"
    assert re.search("CONCATENATION stays on the host: " + why, hw.host_reasons[cat.index])


@pytest.mark.parametrize("mode", ["chain", "layer"])
def test_concatenation_alias_export_cosimulates_bit_exact_on_verilator(mode, tmp_path):
    """The RTL's CONVs write their outputs at their runs of the concatenated region (their
    out_base) and the next CONV reads the whole region: bit-exact, chained and layer by layer."""
    from hwsim import cosim
    from hwsim.export import export
    reason = cosim.simulator_available("verilator")
    if reason:
        pytest.skip(reason)
    g, _ = _concat_graph(1, (4, 4, 8), (4, 4, 8))
    x = np.random.default_rng(5).integers(-128, 128, (1, 4, 4, 8), dtype=np.int8)
    res = export(_write(g, tmp_path), "tflite-int8", [x], tmp_path / "e", formats="hex")
    rep = cosim.run_cosim(res.out_dir, sim="verilator", mode=mode)
    assert rep.ok, rep.table()
    assert sorted(r["layer"] for r in rep.layers) == [0, 1, 3]   # 2: the alias
