"""The hwsim command line (hwsim.cli), input loading (hwsim.inputs) and trace files
(hwsim.trace_io): every command, every error path, exact trace round trips."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from hwsim import cli, examples
from hwsim.engine import RunResult, Trace
from hwsim.frontends.builder import GraphBuilder
from hwsim.inputs import load_input, pixels_to_input, random_input
from hwsim.ir import HwsimError, InputError
from hwsim.program import Layer, Program, TensorInfo
from hwsim.trace_io import read_trace_h5, write_trace_h5
from test_examples import EXAMPLE_OPS, ops_missing

BIN_DIR = os.path.dirname(sys.executable)


def needs_ops(*ops):
    """The ops have lowerings: a missing one is a failure, never a skip."""
    why = ops_missing(list(ops) or EXAMPLE_OPS)
    assert why is None, why


def leftovers(folder) -> list[str]:
    return sorted(p for p in os.listdir(folder) if p.startswith(".hwsim-"))


def run_main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hwsim: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert str(n) in lines[0], (n, err)


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("example")
    assert cli.main(["example", "--out", str(d)]) == 0
    return d


@pytest.fixture
def model(example_dir):
    return example_dir / examples.EXAMPLE_MODEL_FILE


@pytest.fixture
def x_npy(example_dir):
    return example_dir / examples.EXAMPLE_INPUT_FILE


def info_int8(shape, scale=1 / 255, zp=-128, name="input"):
    return TensorInfo(0, name, tuple(shape), np.dtype(np.int8), np.array([scale], np.float32),
                      np.array([zp], np.int64))


# == help, version, usage ====================================================================
def test_help_of_every_command(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for c in cli.COMMANDS:
        assert c.name in out
    for c in cli.COMMANDS:
        code, out, _ = run_main(capsys, c.name, "--help")
        assert code == 0
        assert "usage: hwsim " + c.name in out
        assert "example" in out and "hwsim " + c.name in out.split("usage:", 2)[-1]


def test_version_and_usage_errors(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.startswith("hwsim ")
    code, _, err = run_main(capsys)
    assert code == 2 and "usage" in err
    code, _, err = run_main(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err
    code, _, err = run_main(capsys, "run", "m.tflite")  # neither --input nor --random-input
    assert code == 2 and "required" in err


def test_command_table_resolves_lazy_entries(capsys):
    c = cli.Command("lazy", "x", "hwsim.cli:_info_arguments", "hwsim.cli:cmd_info")
    assert cli._resolve(c.arguments) is cli._info_arguments
    assert cli._resolve(c.run) is cli.cmd_info
    assert len({c.name for c in cli.COMMANDS}) == len(cli.COMMANDS)


# == hwsim example ===========================================================================
def test_example_writes_deterministic_files(tmp_path, capsys):
    code, out, err = run_main(capsys, "example", "--out", tmp_path / "a")
    assert code == 0, err
    assert "hwsim run" in out and "1,214,976 MACs" in out
    code, _, _ = run_main(capsys, "example", "--out", tmp_path / "b")
    assert code == 0
    for f in (examples.EXAMPLE_MODEL_FILE, examples.EXAMPLE_INPUT_FILE,
              examples.EXAMPLE_IMAGE_FILE):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert (tmp_path / "a" / examples.EXAMPLE_MODEL_FILE).read_bytes() == \
        examples.example_model_bytes()
    x = np.load(tmp_path / "a" / examples.EXAMPLE_INPUT_FILE)
    assert x.dtype == np.int8 and np.array_equal(x, examples.example_input())
    assert leftovers(tmp_path / "a") == []
    code, _, _ = run_main(capsys, "example", "--out", tmp_path / "c", "--seed", "7")
    assert code == 0
    assert (tmp_path / "c" / examples.EXAMPLE_MODEL_FILE).read_bytes() == \
        examples.example_model_bytes(7)


def test_example_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run_main(capsys, "example", "--out", f)
    assert_error(code, err, str(f), "not a folder")


# == model errors (no lowering needed) =======================================================
def test_missing_model(tmp_path, capsys):
    for cmd in (["info"], ["run", "--random-input", "0"]):
        code, _, err = run_main(capsys, *cmd, tmp_path / "nope.tflite")
        assert_error(code, err, "nope.tflite", "no such file")


def test_truncated_and_foreign_models(tmp_path, capsys):
    data = examples.example_model_bytes()
    bad = {"truncated.tflite": data[: len(data) // 3],
           "text.tflite": b"this is not a flatbuffer at all\n",
           "empty.tflite": b""}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        for cmd in (["info"], ["run", "--random-input", "0", "-o", tmp_path / "y.npy"]):
            code, _, err = run_main(capsys, *cmd, tmp_path / name)
            assert_error(code, err, name)
    code, _, err = run_main(capsys, "info", tmp_path / "model.pb")
    assert_error(code, err, "model.pb", "unknown model format")
    code, _, err = run_main(capsys, "info", tmp_path)
    assert_error(code, err, str(tmp_path))
    assert not (tmp_path / "y.npy").exists() and leftovers(tmp_path) == []


def test_unsupported_op_is_named(tmp_path, capsys):
    b = GraphBuilder("weird")
    x = b.input("x", (1, 4), np.float32)
    s = b.input("s", (1, 4), np.float32)
    y = b.activation("y", (4,), np.int32)
    n = b.activation("n", (), np.int32)
    b.op("NON_MAX_SUPPRESSION_V4", [x, s], [y, n])
    b.output(y)
    p = tmp_path / "weird.tflite"
    p.write_bytes(b.tflite())
    for cmd in (["info"], ["run", "--random-input", "0", "--output", tmp_path / "y.npy",
                           "--trace", tmp_path / "t.h5"]):
        code, _, err = run_main(capsys, *cmd, p)
        assert_error(code, err, "weird.tflite", "NON_MAX_SUPPRESSION_V4", "op 0",
                     "inputs [0, 1]")
    assert sorted(os.listdir(tmp_path)) == ["weird.tflite"]


# == output path errors (checked before the model is even read) ============================
def test_unwritable_output_paths(tmp_path, capsys, model, x_npy):
    cases = [("--output", tmp_path / "no_such_dir" / "y.npy", "does not exist"),
             ("--output", tmp_path, "is a directory"),
             ("--trace", tmp_path / "no_such_dir" / "t.h5", "does not exist"),
             ("--trace", tmp_path, "is a directory")]
    for opt, path, why in cases:
        code, _, err = run_main(capsys, "run", model, "--input", x_npy, opt, path)
        assert_error(code, err, str(path), why)
    assert os.listdir(tmp_path) == []


# == inputs ===================================================================================
def test_load_npy_checks(tmp_path):
    info = info_int8((1, 4, 4, 3))
    good = np.arange(48, dtype=np.int8).reshape(1, 4, 4, 3)
    np.save(tmp_path / "good.npy", good)
    assert np.array_equal(load_input(tmp_path / "good.npy", info), good)
    np.save(tmp_path / "dtype.npy", good.astype(np.int16))
    np.save(tmp_path / "shape.npy", good.reshape(4, 4, 3))
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, words in [("dtype.npy", ["int16", "needs int8"]),
                        ("shape.npy", ["[4, 4, 3]", "[1, 4, 4, 3]"]),
                        ("junk.npy", ["not a numpy"]), ("obj.npy", ["Python objects", "not unpickle"]),
                        ("missing.npy", ["no such file"]), ("data.csv", ["unknown input format"])]:
        with pytest.raises(InputError) as e:
            load_input(tmp_path / name, info)
        assert name in str(e.value)
        for w in words:
            assert w in str(e.value)


def test_image_rule_modes_and_layouts(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "img.png")
    Image.fromarray(rgb, "RGB").save(tmp_path / "img.bmp")
    p = rgb.astype(np.int64)
    # real, scale 1/255 zp -128: q = p - 128
    x = load_input(tmp_path / "img.png", info_int8((1, 6, 5, 3)))
    assert x.dtype == np.int8 and np.array_equal(x[0], p - 128)
    assert np.array_equal(load_input(tmp_path / "img.bmp", info_int8((1, 6, 5, 3))), x)
    # real with another scale / zero point: round half away from zero, clamp
    info = info_int8((1, 6, 5, 3), scale=0.5 / 255, zp=-100)
    q = np.clip(np.floor(p * 2.0 + 0.5) - 100, -128, 127)
    assert np.array_equal(load_input(tmp_path / "img.png", info)[0], q)
    # bytes and raw
    x = load_input(tmp_path / "img.png", info_int8((1, 6, 5, 3), 0.5, 3), "bytes")
    assert np.array_equal(x[0], np.where(p < 128, p, p - 256))
    x = load_input(tmp_path / "img.png", info_int8((1, 6, 5, 3), 0.5, 3), "raw")
    assert np.array_equal(x[0], p - 128)
    u8 = TensorInfo(0, "u", (1, 6, 5, 3), np.dtype(np.uint8), np.array([0.1], np.float32),
                    np.array([0], np.int64))
    assert np.array_equal(load_input(tmp_path / "img.png", u8, "bytes")[0], rgb)
    # NCHW
    x = load_input(tmp_path / "img.png", info_int8((1, 3, 6, 5)))
    assert np.array_equal(x[0], np.transpose(p - 128, (2, 0, 1)))
    # grayscale: Pillow's "L" conversion
    gray = np.asarray(Image.fromarray(rgb, "RGB").convert("L")).astype(np.int64)
    x = load_input(tmp_path / "img.png", info_int8((1, 6, 5, 1)))
    assert np.array_equal(x[0, :, :, 0], gray - 128)
    # resize: bilinear to the input's H x W
    want = np.asarray(Image.fromarray(rgb, "RGB").resize((8, 7), Image.Resampling.BILINEAR))
    x = load_input(tmp_path / "img.png", info_int8((1, 7, 8, 3)))
    assert np.array_equal(x[0], want.astype(np.int64) - 128)
    # float input gets p / 255
    f32 = TensorInfo(0, "f", (1, 6, 5, 3), np.dtype(np.float32), np.zeros(0, np.float32),
                     np.zeros(0, np.int64))
    assert np.array_equal(load_input(tmp_path / "img.png", f32)[0],
                          (p / 255.0).astype(np.float32))  # the documented rule, exactly


def test_image_errors(tmp_path):
    from PIL import Image
    Image.fromarray(np.zeros((4, 4, 3), np.uint8), "RGB").save(tmp_path / "img.png")
    (tmp_path / "fake.png").write_bytes(b"not a png")
    cases = [
        ("fake.png", info_int8((1, 4, 4, 3)), "real", "not an image"),
        ("none.png", info_int8((1, 4, 4, 3)), "real", "no such file"),
        ("img.png", info_int8((1, 16)), "real", "[1, H, W, 1|3]"),
        ("img.png", info_int8((1, 4, 4, 5)), "real", "[1, H, W, 1|3]"),
        ("img.png", TensorInfo(0, "i", (1, 4, 4, 3), np.dtype(np.int16),
                               np.array([0.1], np.float32), np.array([0], np.int64)),
         "bytes", "int8 or uint8"),
        ("img.png", TensorInfo(0, "i", (1, 4, 4, 3), np.dtype(np.int8), np.zeros(0, np.float32),
                               np.zeros(0, np.int64)), "real", "no quantization scale"),
    ]
    for name, info, mode, words in cases:
        with pytest.raises(InputError) as e:
            load_input(tmp_path / name, info, mode)
        assert name in str(e.value) and words in str(e.value)
    with pytest.raises(InputError):
        pixels_to_input(np.zeros((4, 4, 3), np.uint8), info_int8((1, 4, 4, 3)), "fancy")


def test_random_input():
    info = info_int8((1, 8, 8, 3))
    a, b = random_input(info, 1), random_input(info, 1)
    assert a.dtype == np.int8 and a.shape == (1, 8, 8, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, random_input(info, 1, k=1))


def test_output_paths():
    assert cli.output_paths("y.npy", 1) == ["y.npy"]
    assert cli.output_paths("d/y.npy", 2) == ["d/y_0.npy", "d/y_1.npy"]


# == trace files (unit level: a hand-made program, no kernels) ==============================
def _fake_run():
    infos = [TensorInfo(0, "x", (1, 2), np.dtype(np.int8), np.array([0.5], np.float32),
                        np.array([-1], np.int64)),
             TensorInfo(1, "w", (3, 2), np.dtype(np.int8), np.array([0.1, 0.2, 0.3], np.float32),
                        np.zeros(3, np.int64), 0),
             TensorInfo(2, "shape", (2,), np.dtype(np.int32), np.zeros(0, np.float32),
                        np.zeros(0, np.int64)),
             TensorInfo(3, "y", (1, 3), np.dtype(np.int8), np.array([0.25], np.float32),
                        np.array([4], np.int64))]
    layer = Layer(0, "FULLY_CONNECTED", "fc", [0], [3], macs=6, has_acc=True)
    consts = {1: np.arange(6, dtype=np.int8).reshape(3, 2), 2: np.array([1, 3], np.int32)}
    prog = Program([layer], infos, consts, [0], [3], "fake.tflite")
    x = np.array([[3, -5]], np.int8)
    y = np.array([[1, 2, 3]], np.int8)
    acc = np.array([[7, -8, 9]], np.int32)
    tr = Trace(prog, {**consts, 0: x, 3: y}, {0: acc})
    net = type("N", (), {"program": prog, "graph": None})()
    return net, RunResult([y], tr)


def test_trace_layout_and_round_trip(tmp_path):
    import h5py
    net, res = _fake_run()
    p = tmp_path / "t.h5"
    write_trace_h5(p, net, res)
    with h5py.File(p) as h:
        assert h.attrs["format_version"] == 1 and h.attrs["model_file"] == "fake.tflite"
        assert h.attrs["producer"].startswith("hwsim ")
        assert list(h["tensors"]) == ["0", "1", "2", "3"]
        a = h["tensors/1"].attrs
        assert a["name"] == "w" and a["tensor_index"] == 1 and a["dtype"] == "int8"
        assert list(a["shape"]) == [3, 2] and a["kind"] == "constant"
        assert a["scales"].dtype == np.float32 and a["zero_points"].dtype == np.int64
        assert a["quantized_dimension"] == 0 and np.isclose(a["scale"], 0.1)
        assert "scale" not in h["tensors/2"].attrs and h["tensors/2"].attrs["kind"] == "constant"
        assert h["tensors/0"].attrs["kind"] == "input" and h["tensors/3"].attrs["kind"] == "output"
        assert h["outputs/0"].attrs["zero_point"] == 4
        acc = h["accumulators/0"]
        assert acc.dtype == np.int32 and acc.attrs["op"] == "FULLY_CONNECTED"
        assert acc.attrs["layer"] == 0 and acc.attrs["output_tensor"] == 3
    t = read_trace_h5(p)
    for i, v in res.trace.tensors.items():
        assert t.tensors[i].dtype == v.dtype and np.array_equal(t.tensors[i], v)
    assert np.array_equal(t.outputs[0], res.outputs[0])
    assert np.array_equal(t.accumulators[0], res.trace.accumulators[0])
    assert np.array_equal(t.by_name("y"), res.outputs[0])
    assert t.tensor_attrs[3]["name"] == "y" and t.attrs["format_version"] == 1
    # byte-identical re-write
    p2 = tmp_path / "t2.h5"
    write_trace_h5(p2, net, res)
    assert p.read_bytes() == p2.read_bytes()
    assert leftovers(tmp_path) == []


def test_trace_write_errors(tmp_path):
    net, res = _fake_run()
    with pytest.raises(HwsimError, match="is a directory"):
        write_trace_h5(tmp_path, net, res)
    with pytest.raises(HwsimError, match="does not exist"):
        write_trace_h5(tmp_path / "nope" / "t.h5", net, res)
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(InputError, match="junk.h5"):
        read_trace_h5(tmp_path / "junk.h5")
    with pytest.raises(InputError, match="no such file"):
        read_trace_h5(tmp_path / "none.h5")
    assert sorted(os.listdir(tmp_path)) == ["junk.h5"]


# == commands that run the model (need the op families) =====================================
def test_info_example(capsys, model):
    needs_ops()
    code, out, err = run_main(capsys, "info", model)
    assert code == 0, err
    for op in EXAMPLE_OPS:
        assert op in out
    assert "1,214,976" in out and "per-channel(24)" in out and "s=0.003922 zp=-128" in out
    assert "input 0 'input': int8 [1, 32, 32, 3]" in out


def test_run_example_outputs_and_trace(tmp_path, capsys, model, x_npy, example_dir):
    needs_ops()
    import hwsim
    net = hwsim.load(model)
    ref = net.run(np.load(x_npy), trace=True)
    y, t = tmp_path / "y.npy", tmp_path / "t.h5"
    code, out, err = run_main(capsys, "run", model, "--input", x_npy, "--output", y,
                              "--trace", t)
    assert code == 0, err
    assert err == ""  # no progress bar when stderr is not a terminal
    for op in EXAMPLE_OPS:
        assert op in out
    assert "output 0 'probabilities'" in out and f"wrote {y}" in out
    got = np.load(y)
    assert got.dtype == ref.outputs[0].dtype and np.array_equal(got, ref.outputs[0])
    tf = read_trace_h5(t)
    assert set(tf.tensors) == set(ref.trace.tensors)
    for i, v in ref.trace.tensors.items():
        assert tf.tensors[i].dtype == v.dtype and np.array_equal(tf.tensors[i], v), i
    assert set(tf.accumulators) == set(ref.trace.accumulators)
    for i, v in ref.trace.accumulators.items():
        assert tf.accumulators[i].dtype == v.dtype and np.array_equal(tf.accumulators[i], v)
    # the same trace from the API writes the same bytes
    t2 = tmp_path / "t2.h5"
    write_trace_h5(t2, net, ref)
    t3 = tmp_path / "t3.h5"
    assert run_main(capsys, "run", model, "-q", "-i", x_npy, "--trace", t3)[0] == 0
    assert t.read_bytes() == t2.read_bytes() == t3.read_bytes()
    # the PNG gives the same input, hence the same output
    y2 = tmp_path / "y2.npy"
    code, out, err = run_main(capsys, "run", model, "--input",
                              example_dir / examples.EXAMPLE_IMAGE_FILE, "-o", y2, "-q")
    assert code == 0, err
    assert np.array_equal(np.load(y2), got)
    assert leftovers(tmp_path) == []


def test_run_network_matches_engine(model, x_npy):
    needs_ops()
    import hwsim
    net = hwsim.load(model)
    x = np.load(x_npy)
    a, b = net.run(x, trace=True), cli.run_network(net, x, trace=True)
    assert set(a.trace.tensors) == set(b.trace.tensors)
    for i in a.trace.tensors:
        assert np.array_equal(a.trace.tensors[i], b.trace.tensors[i])
    assert set(a.trace.accumulators) == set(b.trace.accumulators)
    for i in a.trace.accumulators:
        assert np.array_equal(a.trace.accumulators[i], b.trace.accumulators[i])


def test_run_random_and_progress(tmp_path, capsys, model):
    needs_ops()
    code, out, err = run_main(capsys, "run", model, "--random-input", "3", "--progress", "-q",
                              "--warmup")
    assert code == 0, err
    assert "hwsim run" in err and "layer" in err  # the tqdm bar
    assert "output 0" in out and "SOFTMAX" not in out  # -q: no per-layer table


def test_run_input_errors(tmp_path, capsys, model, x_npy):
    needs_ops()
    y, t = tmp_path / "y.npy", tmp_path / "t.h5"
    np.save(tmp_path / "shape.npy", np.zeros((1, 16, 16, 3), np.int8))
    np.save(tmp_path / "dtype.npy", np.zeros((1, 32, 32, 3), np.float32))
    from PIL import Image
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(tmp_path / "small.png")
    (tmp_path / "bad.png").write_bytes(b"junk")
    cases = [(["--input", tmp_path / "shape.npy"], ["shape.npy", "[1, 16, 16, 3]"]),
             (["--input", tmp_path / "dtype.npy"], ["dtype.npy", "float32", "int8"]),
             (["--input", tmp_path / "missing.npy"], ["missing.npy", "no such file"]),
             (["--input", tmp_path / "bad.png"], ["bad.png", "not an image"]),
             (["--input", x_npy, "--input", x_npy], ["takes 1 input(s)", "2 --input given"])]
    for args, words in cases:
        code, out, err = run_main(capsys, "run", model, *args, "--output", y, "--trace", t)
        assert_error(code, err, *words)
    assert not y.exists() and not t.exists()
    # a grayscale image of another size is converted and resized: accepted
    code, _, err = run_main(capsys, "run", model, "--input", tmp_path / "small.png", "-q")
    assert code == 0, err


def test_late_failure_leaves_no_file(tmp_path, capsys, model, x_npy, monkeypatch):
    needs_ops()
    import hwsim.trace_io

    def boom(*a, **k):
        raise HwsimError("disk full (simulated)")
    monkeypatch.setattr(hwsim.trace_io, "write_trace_h5", boom)
    code, _, err = run_main(capsys, "run", model, "-i", x_npy, "-o", tmp_path / "y.npy",
                            "--trace", tmp_path / "t.h5")
    assert_error(code, err, "disk full")
    assert os.listdir(tmp_path) == []


def test_several_outputs_are_numbered(tmp_path, capsys):
    needs_ops("RESHAPE")
    b = GraphBuilder("two_out")
    x = b.input("x", (1, 2, 3), np.int8, scale=0.1, zero_point=0)
    s1 = b.const("s1", np.array([1, 6], np.int32))
    s2 = b.const("s2", np.array([6], np.int32))
    y1 = b.activation("y1", (1, 6), np.int8, scale=0.1, zero_point=0)
    y2 = b.activation("y2", (6,), np.int8, scale=0.1, zero_point=0)
    b.op("RESHAPE", [x, s1], [y1], new_shape=[1, 6])
    b.op("RESHAPE", [x, s2], [y2], new_shape=[6])
    b.output(y1)
    b.output(y2)
    p = tmp_path / "two.tflite"
    p.write_bytes(b.tflite())
    xv = np.arange(6, dtype=np.int8).reshape(1, 2, 3)
    np.save(tmp_path / "x.npy", xv)
    code, out, err = run_main(capsys, "run", p, "-i", tmp_path / "x.npy", "-o",
                              tmp_path / "y.npy")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "y_0.npy"), xv.reshape(1, 6))
    assert np.array_equal(np.load(tmp_path / "y_1.npy"), xv.reshape(6))
    assert not (tmp_path / "y.npy").exists()


# == real processes: console script and python -m ==========================================
def _proc(args, cwd, exe=None):
    cmd = ([exe] if exe else [sys.executable, "-m", "hwsim"]) + [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_subprocess_example_and_errors(tmp_path):
    script = os.path.join(BIN_DIR, "hwsim")
    r = _proc(["example", "--out", "ex"], tmp_path, exe=script if os.path.exists(script) else None)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ex" / examples.EXAMPLE_MODEL_FILE).read_bytes() == \
        examples.example_model_bytes()
    r = _proc(["run", "missing.tflite", "--input", "ex/example_input.npy", "-o", "y.npy"],
              tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("hwsim: error: missing.tflite: ")
    assert not (tmp_path / "y.npy").exists()
    r = _proc(["info", "--help"], tmp_path)
    assert r.returncode == 0 and "hwsim info" in r.stdout


def test_subprocess_run(tmp_path):
    needs_ops()
    r = _proc(["example", "--out", "ex"], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _proc(["run", "ex/example_cnn.tflite", "--input", "ex/example_input.npy", "--trace",
               "ex/trace.h5", "-o", "ex/y.npy"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "output 0 'probabilities'" in r.stdout
    assert (tmp_path / "ex" / "trace.h5").exists() and (tmp_path / "ex" / "y.npy").exists()
    r = _proc(["run", "ex/example_cnn.tflite", "--input", "ex/y.npy"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("hwsim: error: ex/y.npy: shape [1, 10]")


def test_quant_summary_fallback():
    net, _ = _fake_run()
    layer = net.program.layers[0]
    assert cli.quant_summary(net, layer) == "in s=0.5 zp=-1 | out s=0.25 zp=4"
    layer.summary = "from the lowering"
    assert cli.quant_summary(net, layer) == "from the lowering"
    assert cli.fmt_shape((1, 2, 3)) == "1x2x3" and cli.fmt_shape(()) == "scalar"
    assert cli.fmt_quant(net.program.tensors[1]) == "per-channel(3)"
    assert cli.fmt_quant(net.program.tensors[2]) == "int32"
