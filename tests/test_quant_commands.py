"""``hwsim quantize`` / ``hwsim report`` (hwsim.quant.commands): end to end on the digits CNN,
calibration from a .npy file, a folder of .npy files and a folder of PNG images, tables and
the weight file, the report, and one-line user errors."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

pytest.importorskip("onnx")
from oracle import hwsim_run, tflite_ref  # noqa: E402

from hwsim.quant import tables  # noqa: E402
from hwsim.quant.commands import add_quantize_parser, add_report_parser, main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_DIR = os.path.join(ROOT, "examples", "digits")
MODEL = os.path.join(DIGITS_DIR, "digits_cnn.onnx")


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits_data):
    xtr, ytr, xte, yte = digits_data
    d = tmp_path_factory.mktemp("digits")
    np.save(d / "x_cal.npy", xtr[:200])
    np.save(d / "x_test.npy", xte[:80])
    np.save(d / "y_test.npy", yte[:80])
    return d, xtr, xte, yte


def _parser():
    ap = argparse.ArgumentParser(prog="hwsim")
    sub = ap.add_subparsers(dest="command")
    add_quantize_parser(sub)
    add_report_parser(sub)
    return ap


def test_quantize_and_report_cli(data, capsys):
    d, xtr, xte, yte = data
    out = d / "m.tflite"
    args = _parser().parse_args(
        ["quantize", MODEL, "--calib", str(d / "x_cal.npy"), "--method", "auto", "--weights",
         "mse", "--out", str(out), "--weights-h5", str(d / "w.h5"), "--table",
         str(d / "t.table"), "--no-progress"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "calibration: 200 samples, activations: auto" in text and "estimated SQNR" in text
    assert out.exists() and (d / "w.h5").exists()
    assert "relu1_param_0" in tables.read_ncnn_table(d / "t.table")
    b = out.read_bytes()
    xq_scale = None
    import hwsim
    g = hwsim.load_graph(str(out))
    t = g.tensors[g.inputs[0]]
    xq_scale = (float(t.quant.scales[0]), int(t.quant.zero_points[0]))
    xq = np.clip(np.round(xte[:2].transpose(0, 2, 3, 1) / xq_scale[0]) + xq_scale[1], -128,
                 127).astype(np.int8)
    for i in range(2):
        assert np.array_equal(tflite_ref(b, xq[i:i + 1])[0], hwsim_run(b, xq[i:i + 1]).outputs[0])
    # the report
    rep = d / "report"
    args = _parser().parse_args(["report", MODEL, str(out), "--calib", str(d / "x_test.npy"),
                                 "--labels", str(d / "y_test.npy"), "--out", str(rep),
                                 "--layer-samples", "16", "--no-progress"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "top-1: float" in text
    html = (rep / "index.html").read_text()
    assert "data:image/png;base64," in html and "SQNR" in html
    js = json.loads((rep / "report.json").read_text())
    assert js["top1"]["n"] == 80 and js["top1"]["int8"] >= 0.95
    layers = {r["tensor"]: r for r in js["layers"]}
    assert layers["relu1"]["sqnr_db"] > 30 and layers["relu1"]["cosine"] > 0.999
    assert any(k.startswith("w_") for k in os.listdir(rep))


def test_quantize_cli_folders_and_tables(data, tmp_path, capsys):
    from PIL import Image
    d, xtr, *_ = data
    npy_dir = tmp_path / "npys"
    npy_dir.mkdir()
    for k in range(4):
        np.save(npy_dir / f"b{k}.npy", xtr[k * 10:(k + 1) * 10])       # batches
    np.save(npy_dir / "single.npy", xtr[50, :, :, :])                   # one sample (C, H, W)
    assert main(["quantize", MODEL, "--calib", str(npy_dir), "--method", "minmax", "--out",
                 str(tmp_path / "a.tflite"), "--table", str(tmp_path / "a.cache")]) == 0
    assert "calibration: 41 samples" in capsys.readouterr().out
    assert tables.read_tensorrt_cache(tmp_path / "a.cache").header.startswith("TRT-")
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    for k in range(6):
        Image.fromarray((xtr[k, 0] * 255).round().astype(np.uint8), "L").save(
            img_dir / f"{k}.png")
    assert main(["quantize", MODEL, "--calib", str(img_dir), "--scale", "0.00392156863",
                 "--method", "percentile", "--config", "shift-only-int8", "--out",
                 str(tmp_path / "b.tflite"), "--table", str(tmp_path / "b.json"),
                 "--table-format", "nvdla"]) == 0
    text = capsys.readouterr().out
    assert "calibration: 6 samples" in text and "power-of-two" in text
    assert "relu1" in tables.read_nvdla_json(tmp_path / "b.json")


def test_quantize_cli_activation_bits_and_first_last_bits(data, tmp_path, capsys):
    """--activation-bits 4 --first-last-bits 8: 4-bit activations with clamps, the first MAC
    layer's input and the last one's output (and their weights) at 8 bits; the input is
    quantized to 8 bits, TFLite == hwsim."""
    import hwsim
    d, xtr, xte, _ = data
    out = tmp_path / "a4.tflite"
    assert main(["quantize", MODEL, "--calib", str(d / "x_cal.npy"), "--method", "kl",
                 "--weight-bits", "4", "--activation-bits", "4", "--first-last-bits", "8",
                 "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "4-bit weights, 4-bit activations (first / last MAC layers: 8-bit weights, 8-bit " \
           "activations)" in text
    g = hwsim.load_graph(str(out))
    names = {t.name for t in g.tensors}
    assert {"relu1/unclamped", "relu1/qmax", "prob/fixed"} <= names
    assert "input/clamped" not in names and "logits/unclamped" not in names
    t = g.tensors[g.inputs[0]]
    xq = np.clip(np.round(xte[:2].transpose(0, 2, 3, 1) / float(t.quant.scales[0]))
                 + int(t.quant.zero_points[0]), -128, 127).astype(np.int8)
    assert xq.min() < -8 or xq.max() > 7   # an 8-bit input
    b = out.read_bytes()
    for i in range(2):
        assert np.array_equal(tflite_ref(b, xq[i:i + 1])[0], hwsim_run(b, xq[i:i + 1]).outputs[0])


@pytest.mark.parametrize("argv,message", [
    (["quantize", "missing.onnx", "--calib", "{d}/x_cal.npy", "--out", "{t}/o.tflite"],
     "missing.onnx: no such file"),
    (["quantize", MODEL, "--calib", "{d}/nope.npy", "--out", "{t}/o.tflite"],
     "nope.npy: no such file or folder"),
    (["quantize", MODEL, "--calib", "{d}/y_test.npy", "--out", "{t}/o.tflite"],
     "does not fit the model input"),
    (["quantize", MODEL, "--calib", "{d}/x_cal.npy", "--out", "{t}/no/such/o.tflite"],
     "does not exist"),
    (["quantize", MODEL, "--calib", "{d}/x_cal.npy", "--out", "{t}/o.tflite", "--table",
      "{t}/t.txt"], "give --table-format"),
    (["quantize", "{t}/net.cfg", "--calib", "{d}/x_cal.npy", "--out", "{t}/o.tflite"],
     "needs its .weights file"),
    (["quantize", MODEL, "--calib", "{d}/x_cal.npy", "--out", "{t}/o.tflite", "--weights",
      "{t}/x.weights"], "only for a Darknet .cfg"),
    (["quantize", MODEL, "--calib", "{d}/x_cal.npy", "--out", "{t}/o.tflite",
      "--weight-bits", "12"], "4..8 bits"),
    (["quantize", MODEL, "--calib", "{d}/x_cal.npy", "--out", "{t}/o.tflite",
      "--config", "no-such-preset"], "neither a YAML file nor a preset"),
    (["report", MODEL, "{t}/missing.tflite", "--calib", "{d}/x_test.npy", "--out", "{t}/r"],
     "missing.tflite: no such file"),
])
def test_cli_errors_are_one_line(data, tmp_path, capsys, argv, message):
    d = data[0]
    (tmp_path / "net.cfg").write_text("[net]\nwidth=8\nheight=8\nchannels=1\n")
    argv = [a.format(d=d, t=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hwsim: error: ") and message in err, err
    assert not (tmp_path / "o.tflite").exists()


def test_quantize_darknet_cli(tmp_path, capsys):
    from test_frontend_darknet import CFG, _files
    cfg, wpath, _ = _files(tmp_path, CFG)
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(0, 1, (6, 3, 16, 16))
            .astype(np.float32))
    out = tmp_path / "yolo.tflite"
    assert main(["quantize", str(cfg), "--weights", str(wpath), "--weights", "mse", "--calib",
                 str(tmp_path / "cal.npy"), "--method", "mse", "--batch-size", "4",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "calibration: 6 samples" in text and "weights: mse" in text
    import hwsim
    g = hwsim.load_graph(str(out))
    assert [g.tensors[i].shape for i in g.outputs] == [(1, 8, 8, 18), (1, 4, 4, 10)]


def test_wired_into_hwsim_cli(data, tmp_path, capsys):
    """`hwsim quantize` / `hwsim report` through hwsim's own command table."""
    from hwsim import cli
    names = {c.name for c in cli.COMMANDS}
    assert {"quantize", "report"} <= names, f"hwsim's command table lacks quantize/report: {names}"
    d = data[0]
    out = tmp_path / "m.tflite"
    assert cli.main(["quantize", MODEL, "--calib", str(d / "x_cal.npy"), "--method",
                     "percentile", "--per-tensor", "--out", str(out)]) == 0
    assert "weights: maxabs per-tensor" in capsys.readouterr().out
    assert cli.main(["report", MODEL, str(out), "--calib", str(d / "x_test.npy"), "--out",
                     str(tmp_path / "rep"), "--layer-samples", "4"]) == 0
    assert (tmp_path / "rep" / "index.html").exists()
    assert cli.main(["quantize", MODEL, "--calib", str(d / "x_cal.npy"), "--out",
                     str(out), "--method", "kl", "--percentile", "101"]) == 2
    assert "percentile" in capsys.readouterr().err
