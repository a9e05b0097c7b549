"""Careless or hostile input: every case gives one line and exit 2, loses no file, reads no
file the user did not hand us, and stays bounded in memory (the hardening issue's
reproducers, each on the bundled example)."""
from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
import yaml

from hwsim import cli, examples
from hwsim.ir import HwsimError
from hwsim.util import check_output_dir
from hwsim.yamlio import MAX_CONFIG_BYTES, brief, load_yaml_text


def run_main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hwsim: error: "), err
    assert len(lines[0]) < 400, lines[0][:400]
    for n in needles:
        assert str(n) in lines[0], (n, err)


def tree(folder) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (hidden temp files included)."""
    out = {}
    for top, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(top, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = fh.read()
    return out


@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    d = tmp_path_factory.mktemp("ex")
    assert cli.main(["example", "--out", str(d)]) == 0
    return d


@pytest.fixture(scope="module")
def model(ex):
    return ex / examples.EXAMPLE_MODEL_FILE


@pytest.fixture(scope="module")
def x_npy(ex):
    return ex / examples.EXAMPLE_INPUT_FILE


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, model, x_npy):
    d = tmp_path_factory.mktemp("exp") / "e"
    assert cli.main(["export", str(model), "--input", str(x_npy), "--out", str(d),
                     "--host-tail", "-q"]) == 0
    return d


def export_argv(model, x_npy, out):
    return ["export", model, "--input", x_npy, "--out", out, "--host-tail", "-q"]


# -- 1. data loss ---------------------------------------------------------------------------
def test_export_refuses_folder_with_a_foreign_manifest_and_keeps_its_files(
        capsys, tmp_path, model, x_npy):
    p = tmp_path / "p"
    p.mkdir()
    (p / "manifest.yaml").write_text("x: 1\n")
    (p / "main.c").write_text("code\n")
    before = tree(tmp_path)
    code, _, err = run_main(capsys, *export_argv(model, x_npy, p))
    assert_error(code, err, "p", "not an hwsim export")
    assert tree(tmp_path) == before   # nothing removed, nothing left behind


def test_export_refuses_the_current_folder(capsys, tmp_path, model, x_npy, monkeypatch):
    (tmp_path / "notes.txt").write_text("keep me\n")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    code, _, err = run_main(capsys, *export_argv(model, x_npy, "."))
    assert_error(code, err, "current folder")
    code, _, err = run_main(capsys, *export_argv(model, x_npy, ".."))
    assert_error(code, err, "current folder")
    assert tree(tmp_path) == before


def test_export_replaces_its_own_export_but_not_one_with_extra_files(
        capsys, tmp_path, model, x_npy):
    e = tmp_path / "e"
    assert run_main(capsys, *export_argv(model, x_npy, e))[0] == 0
    first = tree(e)
    assert run_main(capsys, *export_argv(model, x_npy, e))[0] == 0   # re-export in place
    assert tree(e) == first                                          # same bytes
    (e / "layers" / "notes.txt").write_text("mine\n")
    code, _, err = run_main(capsys, *export_argv(model, x_npy, e))
    assert_error(code, err, "layers/notes.txt", "refusing")
    assert (e / "layers" / "notes.txt").read_text() == "mine\n"
    assert tree(e) == {**first, os.path.join("layers", "notes.txt"): b"mine\n"}
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".hwsim-")]


def test_export_into_an_empty_or_new_folder(capsys, tmp_path, model, x_npy):
    (tmp_path / "empty").mkdir()
    assert run_main(capsys, *export_argv(model, x_npy, tmp_path / "empty"))[0] == 0
    assert run_main(capsys, *export_argv(model, x_npy, tmp_path / "new" / "deep"))[0] == 0


def test_output_folder_check_counts_symlinks_and_hidden_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "manifest.yaml").write_text("")
    (d / ".hidden").write_text("")
    os.symlink(tmp_path, d / "link")
    with pytest.raises(HwsimError, match=r"\.hidden and 1 more"):
        check_output_dir(d, lambda _: {"manifest.yaml"}, "an hwsim export")
    check_output_dir(d, lambda _: {"manifest.yaml", ".hidden", "link"}, "an hwsim export")


def test_report_output_folder_is_refused_unless_it_is_a_report(tmp_path):
    from hwsim.quant.report import owned_report_files
    d = tmp_path / "r"
    d.mkdir()
    (d / "main.c").write_text("x")
    assert owned_report_files(str(d)) is None
    (d / "report.json").write_text(json.dumps(
        {"int8_model": "m", "layers": [{"act_png": "a_0000.png"}]}))
    assert owned_report_files(str(d)) == {"index.html", "report.json", "a_0000.png"}
    with pytest.raises(HwsimError, match="main.c"):
        check_output_dir(d, owned_report_files, "an hwsim report")


# -- 2. path escape -------------------------------------------------------------------------
def _tampered(src, dst, edit):
    shutil.copytree(src, dst)
    man = yaml.safe_load((dst / "manifest.yaml").read_text())
    edit(man)
    (dst / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    return dst


def _set_output_hex(man, path):
    man["layers"][0]["vectors"]["output"]["files"]["hex"] = path


@pytest.mark.parametrize("command", ["cosim", "compare"])
def test_manifest_path_outside_the_export_is_never_read(capsys, tmp_path, export_dir, command):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-FIRST-LINE\n")
    rel = os.path.relpath(secret, tmp_path / "bad")
    bad = _tampered(export_dir, tmp_path / "bad", lambda m: _set_output_hex(m, rel))
    argv = ["cosim", bad] if command == "cosim" else ["compare", bad, export_dir]
    code, out, err = run_main(capsys, *argv)
    assert_error(code, err, "not listed", "refusing")
    assert "SECRET" not in out + err


def test_manifest_listing_a_file_outside_the_export_is_refused(capsys, tmp_path, export_dir):
    outside = tmp_path / "out.hex"
    shutil.copy(export_dir / "layers" / "00_conv_2d" / "output.hex", outside)

    def edit(man):
        _set_output_hex(man, "../out.hex")
        man["files"].append({"path": "../out.hex", "bytes": outside.stat().st_size,
                             "sha256": "0" * 64})
    bad = _tampered(export_dir, tmp_path / "bad", edit)
    code, _, err = run_main(capsys, "cosim", bad)
    assert_error(code, err, "'../out.hex'", "not a normalised path inside")

    def edit_abs(man):
        _set_output_hex(man, str(outside))
        man["files"].append({"path": str(outside), "bytes": 1, "sha256": "0" * 64})
    bad2 = _tampered(export_dir, tmp_path / "bad2", edit_abs)
    code, _, err = run_main(capsys, "compare", bad2, export_dir)
    assert_error(code, err, "not a normalised path inside")


def test_manifest_symlink_leading_outside_is_refused(capsys, tmp_path, export_dir):
    bad = tmp_path / "bad"
    shutil.copytree(export_dir, bad)
    target = bad / "layers" / "00_conv_2d" / "output.hex"
    target.unlink()
    (tmp_path / "elsewhere.hex").write_text("00\n")
    os.symlink(tmp_path / "elsewhere.hex", target)
    code, _, err = run_main(capsys, "cosim", bad)
    assert_error(code, err, "leads outside the export folder")


def test_manifest_layer_folder_outside_is_refused(capsys, tmp_path, export_dir):
    bad = _tampered(export_dir, tmp_path / "bad",
                    lambda m: m["layers"][0].__setitem__("folder", "../../x"))
    code, _, err = run_main(capsys, "compare", bad, export_dir)
    assert_error(code, err, "layers[0].folder")


# -- 3. bounded YAML ------------------------------------------------------------------------
def _alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "name: x\ndescription:\n  " + "\n  ".join(lines) + "\n"


@pytest.mark.parametrize("command", ["rtl-params", "export"])
def test_config_alias_bomb_is_refused_at_once(capsys, tmp_path, model, command):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(_alias_bomb(9))
    t0 = time.perf_counter()
    argv = (["rtl-params", cfg] if command == "rtl-params" else
            ["export", model, "--config", cfg, "--random-input", "0", "--out", tmp_path / "o"])
    code, _, err = run_main(capsys, *argv)
    assert_error(code, err, "bomb.yaml:", "aliases")
    assert time.perf_counter() - t0 < 30   # a hang guard, not a benchmark


def test_manifest_alias_is_refused(capsys, tmp_path, export_dir):
    bad = tmp_path / "bad"
    shutil.copytree(export_dir, bad)
    text = (bad / "manifest.yaml").read_text()
    (bad / "manifest.yaml").write_text(text + "extra: &x [1, 2]\nmore: *x\n")
    code, _, err = run_main(capsys, "compare", bad, export_dir)
    assert_error(code, err, "aliases")


@pytest.mark.parametrize("body, needle", [
    ("name: x\ndescription: " + "[" * 5000 + "\n", "nest"),   # libyaml's or our own limit
    ("name: x\ndescription: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64"),
    ("name: x\narray: {rows: " + "9" * 5000 + "}\n", "invalid YAML value"),
    ("name: x\ndescription: " + "y" * 200 + "\narray: {rows: [" + "1, " * 5000 + "1]}\n",
     "array.rows: <list of 5001 items> is not an integer"),
    ("name: x\narray: {rows: '" + "z" * 5000 + "'}\n", "is not an integer"),
    ("name: x\n? " + "z" * 3000 + "\n: 1\n", "unknown key"),
    ("name: \"\\xff\\x00\"\n\x00\n", "bad.yaml"),
])
def test_config_values_are_cut_in_messages(capsys, tmp_path, body, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(body)
    code, _, err = run_main(capsys, "rtl-params", cfg)
    assert_error(code, err, needle)


def test_config_over_the_size_limit_is_refused_before_reading(capsys, tmp_path):
    cfg = tmp_path / "huge.yaml"
    with open(cfg, "wb") as f:
        f.write(b"name: x\n# " + b"x" * MAX_CONFIG_BYTES + b"\n")
    code, _, err = run_main(capsys, "rtl-params", cfg)
    assert_error(code, err, "too large for a config")


def test_brief_cuts_long_values():
    assert brief("a" * 500) == repr("a" * 500)[:77] + "..."
    assert brief(list(range(10 ** 5))) == "<list of 100000 items>"
    assert brief(3) == "3"
    with pytest.raises(HwsimError, match="aliases"):
        load_yaml_text("a: &x 1\nb: *x\n", "t.yaml")


# -- 4. tracebacks -> one line ---------------------------------------------------------------
def _npy_with_header(path, shape, descr="|i1", data=b"x" * 100):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": descr, "fortran_order": False, "shape": shape})
        f.write(data)


@pytest.mark.parametrize("case, needle", [
    ("empty", "empty file"),
    ("huge_header", "declares shape (100000, 100000, 100000)"),
    ("text", "not a numpy .npy array file"),
    ("object", "does not unpickle"),
    ("truncated", "truncated or corrupt"),
    ("bad_header", "corrupt .npy header"),
    ("cut_header", "corrupt .npy header"),   # numpy's tokenize.TokenError (found by the fuzz)
])
def test_bad_npy_inputs_give_one_line(capsys, tmp_path, model, case, needle):
    p = tmp_path / "x.npy"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "huge_header":
        _npy_with_header(p, (100000, 100000, 100000))
    elif case == "text":
        p.write_text("1 2 3\n")
    elif case == "object":
        _npy_with_header(p, (2,), descr="|O", data=b"\x80\x04N.")
    elif case == "truncated":
        np.save(p, np.zeros((1, 16, 16, 3), np.int8))
        p.write_bytes(p.read_bytes()[:-5])
    elif case == "cut_header":
        p.write_bytes(b"\x93NUMPY\x01\x00\x01\x00{")
    else:
        p.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<  }\n")
    for argv in (["run", model, "--input", p],
                 ["export", model, "--input", p, "--out", tmp_path / "o", "--host-tail"]):
        code, _, err = run_main(capsys, *argv)
        assert_error(code, err, "x.npy", needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["run", "export"])
def test_negative_random_seed(capsys, tmp_path, model, command):
    argv = [command, model, "--random-input", "-5"]
    if command == "export":
        argv += ["--out", tmp_path / "o", "--host-tail"]
    code, _, err = run_main(capsys, *argv)
    assert_error(code, err, "--random-input -5", "0 or more")
    assert not (tmp_path / "o").exists()


# -- 8. degenerate calibration --------------------------------------------------------------
def test_all_zero_calibration_warns():
    pytest.importorskip("onnx", reason="the quant extra (onnx) is not installed")
    from hwsim.frontends.onnx_reader import read_onnx
    from hwsim.quant.quantize import quantize
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    g = read_onnx(os.path.join(root, "examples", "digits", "digits_cnn.onnx"))
    t = g.tensors[g.inputs[0]]
    res = quantize(g, np.zeros((8,) + tuple(t.shape[1:]), np.float32), "minmax")
    assert any(f"graph input {t.name}: every calibration value is 0" in w
               for w in res.warnings), res.warnings


def test_report_cli_refuses_a_foreign_folder_before_any_work(capsys, tmp_path):
    p = tmp_path / "p"
    p.mkdir()
    (p / "main.c").write_text("code\n")
    code, _, err = run_main(capsys, "report", tmp_path / "f.onnx", tmp_path / "q.tflite",
                            "--calib", tmp_path / "c.npy", "--out", p)
    assert_error(code, err, "is not an hwsim report")
    assert sorted(os.listdir(p)) == ["main.c"]


@pytest.mark.parametrize("libyaml", [True, False])
def test_yaml_bounds_hold_with_and_without_libyaml(monkeypatch, libyaml):
    import hwsim.yamlio as Y
    if not libyaml:
        monkeypatch.setattr(Y, "_CLoader", None)
    elif Y._CLoader is None:
        pytest.skip("PyYAML was built without libyaml: only the pure-Python loader exists")
    assert load_yaml_text("a: [1, {b: 2}]\n", "t.yaml") == {"a": [1, {"b": 2}]}
    with pytest.raises(HwsimError, match=r"t.yaml:2: invalid YAML \(YAML aliases \(\*x\)"):
        load_yaml_text("a: &x 1\nb: *x\n", "t.yaml")
    with pytest.raises(HwsimError, match="nested deeper than 64 levels"):
        load_yaml_text("a: " + "[" * 70 + "]" * 70 + "\n", "t.yaml")


def test_error_lines_escape_control_characters(capsys):
    from hwsim.cli import _error
    _error("t.tflite: tensor 'a\x1b[2J\rb\nc' is bad")
    err = capsys.readouterr().err
    assert err == "hwsim: error: t.tflite: tensor 'a\\x1b[2J b c' is bad\n"
