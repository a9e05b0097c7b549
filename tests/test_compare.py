"""hwsim compare: exit codes, the first mismatch (layer, flat index, n/h/w/c, both values) on
deliberately altered files, every pairing of traces / export folders / RTL dumps, the PNG."""
from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

import hwsim
from hwsim import examples
from hwsim.export import CompareResult, commands, compare, export
from hwsim.export.exporter import rtl_example_graph
from hwsim.frontends.tflite_writer import serialize_tflite
from hwsim.ir import HwsimError
from hwsim.trace_io import write_trace_h5

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An export (hex + mem + bin) of the RTL example and a trace of the same run."""
    work = tmp_path_factory.mktemp("compare")
    model = work / "example_rtl.tflite"
    model.write_bytes(serialize_tflite(rtl_example_graph()))
    x = examples.example_input()
    res = export(model, "tflite-int8", x, work / "golden", formats="hex,mem,bin")
    net = hwsim.load(str(model))
    write_trace_h5(str(work / "trace.h5"), net, net.run(x, trace=True))
    return work, res


def run_cli(capsys, *argv):
    code = commands.main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def altered_copy(src, dst, rel, word: int, lane: int, delta: int, remove_other_formats=True):
    """Copy an export and add ``delta`` to one int8 lane of one word of ``rel`` (.hex)."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, rel)
    lines = open(path).read().split("\n")
    w = int(lines[word], 16)
    old = (w >> (8 * lane)) & 0xFF
    new = (old + delta) & 0xFF
    w = (w & ~(0xFF << (8 * lane))) | (new << (8 * lane))
    lines[word] = f"{w:0{len(lines[word])}x}"
    open(path, "w").write("\n".join(lines))
    if remove_other_formats:  # so that the altered .hex is the file compare reads
        stem = os.path.splitext(path)[0]
        for ext in (".mem", ".bin", ".coe", ".mif"):
            if os.path.exists(stem + ext):
                os.remove(stem + ext)
    to_int8 = lambda v: v - 256 if v > 127 else v  # noqa: E731
    return to_int8(old), to_int8(new)


def test_identical_exports_are_bit_exact_exit_0(setup, capsys):
    work, res = setup
    code, out, err = run_cli(capsys, res.out_dir, res.out_dir)
    assert code == 0, err
    assert "bit-exact: 29 vectors" in out and "first mismatch" not in out
    r = compare(res.out_dir, res.out_dir)
    assert isinstance(r, CompareResult) and r.bit_exact and r.first_mismatch is None


def test_one_flipped_output_element_is_found_with_its_layer_index_and_values(setup, tmp_path,
                                                                              capsys):
    work, res = setup
    # layer 6 (CONV_2D, 1x8x8x48) output: word 13, lane 5 -> flat element 13*8 + 5 = 109
    old, new = altered_copy(res.out_dir, tmp_path / "bad", "layers/06_conv_2d/output.hex",
                            13, 5, 3)
    r = compare(res.out_dir, tmp_path / "bad")
    assert not r.bit_exact
    bad = r.first_mismatch
    assert (bad.layer, bad.op, bad.kind) == (6, "CONV_2D", "output")
    assert bad.first == 109 and bad.coords == {"n": 0, "h": 0, "w": 2, "c": 13}
    assert (bad.golden_value, bad.other_value) == (old, new)
    assert bad.mismatches == 1 and bad.max_abs_diff == abs(new - old)
    assert [x for x in r.rows if not x.ok] == [bad]
    code, out, err = run_cli(capsys, res.out_dir, tmp_path / "bad", "--png", tmp_path / "m.png")
    assert code == 1
    assert (f"first mismatch: layer 6 (CONV_2D) output, element 109 (n=0 h=0 w=2 c=13 of "
            f"NHWC [1, 8, 8, 48]): golden {old}, other {new}") in out
    assert "NOT bit-exact: 1 of 29 vectors differ (1 elements)" in out
    img = Image.open(tmp_path / "m.png").convert("RGB")
    px = np.asarray(img)
    red = (px[..., 0] > 200) & (px[..., 1] < 80)
    assert red.any() and img.size[0] >= 420


def test_a_flipped_accumulator_is_found(setup, tmp_path):
    work, res = setup
    shutil.copytree(res.out_dir, tmp_path / "bad")
    path = tmp_path / "bad" / "layers" / "04_conv_2d" / "acc.hex"
    lines = path.read_text().split("\n")
    v = int(lines[1000], 16)
    lines[1000] = f"{(v + 1) & 0xFFFFFFFF:08x}"
    path.write_text("\n".join(lines))
    for ext in (".mem", ".bin"):
        os.remove(path.with_suffix(ext))
    r = compare(res.out_dir, tmp_path / "bad")
    bad = r.first_mismatch
    assert (bad.layer, bad.kind, bad.first) == (4, "acc", 1000)
    assert bad.coords == dict(zip("nhwc", np.unravel_index(1000, (1, 8, 8, 48))))
    assert bad.other_value == bad.golden_value + 1


def test_the_first_mismatch_is_the_earliest_layer(setup, tmp_path):
    work, res = setup
    shutil.copytree(res.out_dir, tmp_path / "two")
    for rel in ("layers/10_fully_connected/output.hex", "layers/02_conv_2d/output.hex"):
        p = tmp_path / "two" / rel
        lines = p.read_text().split("\n")
        lines[0] = f"{int(lines[0], 16) ^ 0x01:016x}"
        p.write_text("\n".join(lines))
        for ext in (".mem", ".bin"):
            os.remove(p.with_suffix(ext))
    r = compare(res.out_dir, tmp_path / "two")
    assert r.first_mismatch.layer == 2
    # each vector is its own file: layer 3's input2 (= layer 2's output) was not altered
    assert [(x.layer, x.kind) for x in r.rows if not x.ok] == [(2, "output"), (10, "output")]


def test_trace_against_export_and_export_against_trace(setup, capsys):
    work, res = setup
    code, out, _ = run_cli(capsys, work / "trace.h5", res.out_dir)
    assert code == 0 and "bit-exact: 29 vectors" in out
    code, out, _ = run_cli(capsys, res.out_dir, work / "trace.h5")
    assert code == 0 and "bit-exact: 29 vectors" in out
    # vectors.h5 given directly stands for its export folder
    assert compare(os.path.join(res.out_dir, "vectors.h5"), work / "trace.h5").bit_exact


def _altered_trace(src, dst, tensor: int, index: int, delta: int):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as h:
        ds = h["tensors"][str(tensor)]
        v = ds[()]
        flat = v.reshape(-1)
        old = int(flat[index])
        flat[index] = old + delta
        ds[...] = v
    return old


def test_two_traces_with_and_without_the_model(setup, tmp_path, capsys):
    work, _ = setup
    code, out, _ = run_cli(capsys, work / "trace.h5", work / "trace.h5")
    assert code == 0 and "constants" in out
    old = _altered_trace(work / "trace.h5", tmp_path / "t.h5", 19, 7, 1)  # layer 6's output
    code, out, _ = run_cli(capsys, work / "trace.h5", tmp_path / "t.h5")
    assert code == 1
    assert f"first mismatch: tensor 19 'block2/conv1x1', element 7" in out
    assert f"golden {old}, other {old + 1}" in out
    code, out, _ = run_cli(capsys, work / "trace.h5", tmp_path / "t.h5", "--model",
                           work / "example_rtl.tflite")
    assert code == 1
    assert "first mismatch: layer 6 (CONV_2D) output, element 7 (n=0 h=0 w=0 c=7" in out


def test_a_changed_constant_is_reported(setup, tmp_path):
    work, _ = setup
    _altered_trace(work / "trace.h5", tmp_path / "t.h5", 1, 0, 1)  # conv0's weights
    r = compare(work / "trace.h5", tmp_path / "t.h5")
    bad = r.first_mismatch
    assert bad.kind == "constants" and bad.mismatches == 1 and "[1]" in bad.note


def test_rtl_dump_folder_compares_what_is_there(setup, tmp_path, capsys):
    """A bench that dumps only some outputs ($writememh, with its // comment lines)."""
    work, res = setup
    d = tmp_path / "dump" / "layers" / "08_max_pool_2d"
    d.mkdir(parents=True)
    words = open(os.path.join(res.out_dir, "layers/08_max_pool_2d/output.hex")).read().split()
    (d / "output.hex").write_text("// 0x00001380\n" + "\n".join(words) + "\n")
    code, out, _ = run_cli(capsys, res.out_dir, tmp_path / "dump")
    assert code == 0
    assert "bit-exact: 1 vectors, 768 elements; 28 skipped" in out
    with pytest.raises(HwsimError, match="nothing to compare"):
        compare(res.out_dir, tmp_path / "dump" / "layers")  # no layers/ inside: no vector


def test_whole_memory_dumps(setup, tmp_path, capsys):
    work, res = setup
    act = os.path.join(res.out_dir, "mem", "act_final.hex")
    r = compare(res.out_dir, act)
    assert r.bit_exact and len(r.compared) == 22  # every input and output vector
    lines = open(act).read().split("\n")
    base = res.manifest["layers"][4]["fields"]["out_base"]  # layer 4 (CONV_2D) output
    lines[base + 2] = f"{int(lines[base + 2], 16) ^ (0x10 << 8):016x}"  # element 17
    (tmp_path / "act.hex").write_text("\n".join(lines))
    code, out, _ = run_cli(capsys, res.out_dir, tmp_path / "act.hex")
    assert code == 1 and "first mismatch: layer 4 (CONV_2D) output, element 17" in out
    acc = os.path.join(res.out_dir, "mem", "acc.hex")
    r = compare(res.out_dir, acc, memory="accumulators")
    assert r.bit_exact and [x.kind for x in r.compared] == ["acc"] * 7


def test_a_missing_file_in_a_full_export_is_a_difference(setup, tmp_path):
    work, res = setup
    shutil.copytree(res.out_dir, tmp_path / "x")
    for ext in ("hex", "mem", "bin"):
        os.remove(tmp_path / "x" / "layers" / "05_depthwise_conv_2d" / f"output.{ext}")
    r = compare(res.out_dir, tmp_path / "x")
    assert not r.bit_exact
    assert (r.first_mismatch.layer, r.first_mismatch.status) == (5, "missing")


@pytest.mark.parametrize("golden, other, needle", [
    ("nope", "trace.h5", "nope: no such file or folder"),
    ("trace.h5", "notes.txt", "notes.txt: not a trace"),
    ("dumpdir", "trace.h5", "GOLDEN must be a trace"),
    ("trace.h5", "dumpdir", "can only be compared with an export folder as GOLDEN"),
    ("golden", "broken/layers/00_conv_2d", "nothing to compare"),
    ("golden", "broken", "output.hex:3: "),
])
def test_user_errors_exit_2_with_one_line(setup, golden, other, needle, capsys, monkeypatch):
    work, res = setup
    monkeypatch.chdir(work)
    (work / "notes.txt").write_text("hi")
    (work / "dumpdir").mkdir(exist_ok=True)
    b = work / "broken" / "layers" / "00_conv_2d"
    b.mkdir(parents=True, exist_ok=True)
    (b / "output.hex").write_text("0000000000000000\n0000000000000000\nzz\n")
    code, out, err = run_cli(capsys, golden, other)
    assert code == 2 and needle in err and err.count("\n") == 1, err


@pytest.mark.skipif(not os.path.isdir(os.path.join(CORPUS, "synthetic")),
                    reason="the test corpus (../shared/corpus) is not present")
def test_corpus_expected_h5_against_an_export(tmp_path):
    """TFLite's expected.h5 (no accumulators) against an export of the same model."""
    d = os.path.join(CORPUS, "synthetic", "syn_depthwise_dm2_avgpool_same")
    res = export(os.path.join(d, "model.tflite"), "tflite-int8",
                 [os.path.join(d, "input_0.npy")], tmp_path / "e", formats="hex")
    r = compare(os.path.join(d, "expected.h5"), res.out_dir)
    assert r.bit_exact
    assert {x.kind for x in r.rows if x.status == "skipped"} == {"acc"}


# -- h5 files that are not traces: input errors (exit 2, one line), never "NOT bit-exact" -------
def _rewrite(h, name, data):
    attrs = dict(h[name].attrs)
    del h[name]
    h[name] = data
    h[name].attrs.update(attrs)


def _external(h):
    del h["tensors/20"]
    h["tensors/20"] = h5py.ExternalLink("elsewhere.h5", "/x")


def _unallocated(h):
    del h["outputs/0"]
    h.create_dataset("outputs/0", shape=(1 << 36,), dtype="i1", chunks=(1 << 16,))


BAD_TRACES = [  # (id, None: a new file / an edit of a copy of the trace, expected message)
    ("empty", lambda h: None, True, "not an hwsim trace (no tensors/ or outputs/ group"),
    ("unrelated", lambda h: h.create_dataset("weights", data=np.arange(10)), True,
     "not an hwsim trace (no tensors/ or outputs/ group"),
    ("empty groups", lambda h: (h.create_group("tensors"), h.create_group("outputs")), True,
     "its tensors/ and outputs/ groups are empty"),
    ("tensors a dataset", lambda h: (h.__delitem__("tensors"), h.create_dataset(
        "tensors", data=np.zeros(3))), False, "/tensors is a dataset, not a group"),
    ("name not an index", lambda h: h.move("tensors/5", "tensors/1.5"), False,
     "tensors/ holds '1.5', which is not a trace entry"),
    ("strings", lambda h: _rewrite(h, "tensors/12", np.array(["a", "b"],
                                                          dtype=h5py.string_dtype())),
     False, "tensors/12 holds object, not numbers"),
    ("group in outputs", lambda h: (h.__delitem__("outputs/0"), h.create_group("outputs/0")),
     False, "outputs/0 is a group, not a dataset"),
    ("external link", _external, False, "tensors/20 is a link to another file"),
    ("unallocated 64 GiB", _unallocated, False, "outputs/0 declares [68719476736] x int8"),
    ("kind an array", lambda h: h["tensors/6"].attrs.__setitem__("kind", np.arange(3)), False,
     "tensors/6: attribute 'kind' is array([0, 1, 2]), not a string"),
]


@pytest.mark.parametrize("edit, fresh, needle", [b[1:] for b in BAD_TRACES],
                         ids=[b[0] for b in BAD_TRACES])
@pytest.mark.parametrize("side", ["golden", "other"])
def test_an_h5_that_is_not_a_trace_is_an_input_error(setup, tmp_path, capsys, edit, fresh,
                                                     needle, side):
    work, _ = setup
    bad = tmp_path / "bad.h5"
    if fresh:
        with h5py.File(bad, "w") as h:
            edit(h)
    else:
        shutil.copy(work / "trace.h5", bad)
        with h5py.File(bad, "r+") as h:
            edit(h)
    pair = (bad, work / "trace.h5") if side == "golden" else (work / "trace.h5", bad)
    code, out, err = run_cli(capsys, *pair)
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith(f"hwsim: error: {bad}: ") and needle in err, err
    assert err.count("\n") == 1 and "NOT bit-exact" not in err
    assert sorted(os.listdir(tmp_path)) == ["bad.h5"]


def test_a_difference_in_constants_only_writes_no_png(setup, tmp_path, capsys):
    """The constants row holds no arrays to draw (found by the fuzz test: a traceback)."""
    work, _ = setup
    _altered_trace(work / "trace.h5", tmp_path / "t.h5", 1, 0, 1)
    code, out, err = run_cli(capsys, tmp_path / "t.h5", work / "trace.h5", "--png",
                             tmp_path / "m.png")
    assert code == 1 and err == "" and "m.png not written" in out
    assert not (tmp_path / "m.png").exists()


def test_traces_with_a_rank_5_tensor(setup, tmp_path, capsys):
    """A tensor of rank 5 (no NHWC view) is compared as one row [1, 1, size, 1]."""
    work, _ = setup
    g, o = tmp_path / "g.h5", tmp_path / "o.h5"
    shutil.copy(work / "trace.h5", g)
    with h5py.File(g, "r+") as h:
        _rewrite(h, "tensors/19", h["tensors/19"][()].reshape(1, 1, 8, 8, 48))
    old = _altered_trace(g, o, 19, 7, 1)
    code, out, err = run_cli(capsys, g, o, "--png", tmp_path / "m.png")
    assert code == 1 and err == "", err
    assert f"first mismatch: tensor 19 'block2/conv1x1', element 7 (n=0 h=0 w=7 c=0 of NHWC " \
           f"[1, 1, 3072, 1]): golden {old}, other {old + 1}" in out
    assert Image.open(tmp_path / "m.png").size[0] > 0


def _manifest_edit(h):
    """A copy of the export with its manifest.yaml edited by ``h(manifest)``."""
    import yaml

    def make(work, dst):
        shutil.copytree(work / "golden", dst)
        man = yaml.safe_load((dst / "manifest.yaml").read_text())
        h(man)
        (dst / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
        return dst
    return make


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m["layers"][2]["vectors"]["input"].pop("nhwc"),
     "layers[2] vector 'input': its manifest entry cannot be used (no key 'nhwc')"),
    (lambda m: m["layers"][1]["vectors"]["output"]["layout"].__setitem__("signed", [1, 2]),
     "layer 1 (DEPTHWISE_CONV_2D) output: its manifest entry cannot be used (TypeError: signed "
     "must be a bool, got [1, 2])"),
    (lambda m: m["layers"][1]["vectors"]["output"]["layout"].__setitem__("extra", 1),
     "its manifest entry cannot be used (TypeError: unpack_words() got an unexpected keyword"),
    (lambda m: m["layers"][3]["vectors"].__setitem__("bogus", "text"),
     "layers[3] vector 'bogus': its manifest entry cannot be used (AttributeError"),
])
def test_a_manifest_entry_that_cannot_be_used_is_named(setup, tmp_path, capsys, edit, needle):
    """Found by the fuzz test: hand-edited vector entries ended in tracebacks."""
    work, _ = setup
    golden = _manifest_edit(edit)(work, tmp_path / "g")
    dump = tmp_path / "dump" / "layers"
    shutil.copytree(work / "golden" / "layers", dump)
    code, out, err = run_cli(capsys, golden, tmp_path / "dump")
    assert code == 2 and err.startswith(f"hwsim: error: {golden / 'manifest.yaml'}: "), err
    assert needle in err and err.count("\n") == 1, err
