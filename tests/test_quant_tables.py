"""Calibration tables: exact round trips, byte-identical re-writes, malformed input, atomic writes."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from hwsim.quant.tables import (
    DEFAULT_TENSORRT_HEADER, CalibrationTableError, TensorRTCache, ncnn_scale, read_ncnn_table,
    read_nvdla_json, read_tensorrt_cache, tensorrt_scale, threshold_from_ncnn_scale,
    threshold_from_tensorrt_scale, write_ncnn_table, write_nvdla_json, write_tensorrt_cache,
)


def _f32_values(n: int, seed: int) -> list[float]:
    """Positive finite float32 values over the whole exponent range (random bit patterns)."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0x00000001, 0x7F800000, n, dtype=np.uint32)     # denormals .. max finite
    vals = bits.view(np.float32).astype(np.float64).tolist()
    extra = [1.0, 0.5, 127.0, 1e-5, 3.4028234663852886e38, 1.401298464324817e-45]
    return vals + [float(np.float32(v)) for v in extra]


def _bits(v: float) -> int:
    return struct.unpack(">I", struct.pack(">f", v))[0]


def _write(path, text: str | bytes) -> str:
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def _no_temp_files(folder) -> bool:
    return all(not n.startswith(".hwsim-") for n in os.listdir(folder))


# ----------------------------------------------------------------------------- units

def test_unit_helpers():
    assert ncnn_scale(1.27) == 100.0
    assert threshold_from_ncnn_scale(100.0) == 1.27
    assert tensorrt_scale(127.0) == 1.0
    assert threshold_from_tensorrt_scale(0.5) == 63.5
    with pytest.raises(ValueError):
        ncnn_scale(0.0)
    with pytest.raises(ValueError):
        tensorrt_scale(float("nan"))


# ----------------------------------------------------------------------------- ncnn

def test_ncnn_round_trip_exact_and_byte_identical(tmp_path):
    vals = _f32_values(300, seed=0)
    table = {"conv1_param_0": vals[:64], "conv1": [vals[64]], "fc/2_param_0": vals[65:],
             "conv1_1": 40.5}
    p1, p2 = tmp_path / "a.table", tmp_path / "b.table"
    write_ncnn_table(p1, table)
    back = read_ncnn_table(p1)
    assert list(back) == list(table)                                  # order kept
    for k, v in table.items():
        want = [v] if isinstance(v, float) else v
        assert back[k] == want                                        # exact float32 values
        assert [_bits(x) for x in back[k]] == [_bits(x) for x in want]
    write_ncnn_table(p2, back)
    assert p1.read_bytes() == p2.read_bytes()                         # byte-identical re-write
    write_ncnn_table(p2, table)
    assert p1.read_bytes() == p2.read_bytes()
    assert _no_temp_files(tmp_path)


def test_ncnn_layout(tmp_path):
    p = tmp_path / "t.table"
    write_ncnn_table(p, {"conv1_param_0": [254.0, 127.0 / 0.3], "conv1": [127.0 / 3.1], "c2": 1e-5})
    assert p.read_text() == "conv1_param_0 254 423.33334 \nconv1 40.967743 \nc2 1e-05 \n"


def test_ncnn_reads_ncnn2table_output(tmp_path):
    # ncnn2table prints "%f " for every value (six decimals, trailing space); CRLF tolerated too
    text = ("conv1_param_0 157.136230 98.301239 \r\n"
            "conv2_param_0 60.000000 \n"
            "\n"
            "conv1 127.000000 \n"
            "conv2 15.352941 \n")
    back = read_ncnn_table(_write(tmp_path / "n.table", text))
    assert back == {"conv1_param_0": [float(np.float32(157.13623)), float(np.float32(98.301239))],
                    "conv2_param_0": [60.0], "conv1": [127.0], "conv2": [float(np.float32(15.352941))]}


@pytest.mark.parametrize("text,line,reason", [
    ("conv1_param_0 1.0\nconv1 abc\n", 2, "not a number"),
    ("conv1_param_0 1.0\n\nconv1\n", 3, "no scale values"),
    ("a 1\nb 2\na 3\n", 3, "duplicate"),
    ("a 1\nb -2\n", 2, "> 0"),
    ("a 0\n", 1, "> 0"),
    ("a nan\n", 1, "not finite"),
    ("a inf\n", 1, "not finite"),
    ("a 1e39\n", 1, "not finite"),
    (b"a 1\n\xff 2\n", 2, "UTF-8"),
])
def test_ncnn_malformed(tmp_path, text, line, reason):
    path = _write(tmp_path / "bad.table", text)
    with pytest.raises(CalibrationTableError, match=reason) as e:
        read_ncnn_table(path)
    assert str(e.value).startswith(f"{path}:{line}: ")
    assert isinstance(e.value, ValueError)


def test_ncnn_writer_rejects(tmp_path):
    p = tmp_path / "w.table"
    for bad in ({"has space": [1.0]}, {"": [1.0]}, {"a": []}, {"a": [0.0]}, {"a": [float("inf")]},
                {"a": ["1"]}):
        with pytest.raises(ValueError):
            write_ncnn_table(p, bad)
    assert not p.exists() and _no_temp_files(tmp_path)


# ----------------------------------------------------------------------------- TensorRT

# from NVDLA's published ResNet-50 calibration cache (TensorRT 5.1) and its JSON conversion
TRT_SAMPLE = ("TRT-5101-EntropyCalibration2\n"
              "data: 3f9839e4\n"
              "(Unnamed Layer* 0) [Convolution]_output: 40d0f64f\n"
              "conv1: 3db68545\n"
              "prob: 3a7366ce\n")
NVDLA_SAMPLE_SCALES = {"data": 1.1892666816711426,
                       "(Unnamed Layer* 0) [Convolution]_output": 6.530066967010498,
                       "conv1": 0.08912137895822525}


def test_tensorrt_reads_sample_and_rewrites_byte_identical(tmp_path):
    path = _write(tmp_path / "calib.cache", TRT_SAMPLE)
    cache = read_tensorrt_cache(path)
    assert isinstance(cache, dict) and cache.header == "TRT-5101-EntropyCalibration2"
    assert list(cache) == ["data", "(Unnamed Layer* 0) [Convolution]_output", "conv1", "prob"]
    for name, scale in NVDLA_SAMPLE_SCALES.items():
        assert cache[name] == scale
    assert threshold_from_tensorrt_scale(cache["data"]) == pytest.approx(151.04, abs=0.01)
    out = tmp_path / "again.cache"
    write_tensorrt_cache(out, cache)                          # keeps the header it read
    assert out.read_bytes() == TRT_SAMPLE.encode()


def test_tensorrt_round_trip_bit_patterns(tmp_path):
    vals = _f32_values(500, seed=1) + [0.0]
    table = {f"t{i}:0 (x)": v for i, v in enumerate(vals)}   # names with colons and spaces
    table["ünïcode/ten sor"] = 0.25
    p1, p2 = tmp_path / "a.cache", tmp_path / "b.cache"
    write_tensorrt_cache(p1, table)
    lines = p1.read_text(encoding="utf-8").splitlines()
    assert lines[0] == DEFAULT_TENSORRT_HEADER
    assert lines[1] == f"t0:0 (x): {_bits(vals[0]):08x}"
    back = read_tensorrt_cache(p1)
    assert list(back) == list(table)
    assert all(_bits(back[k]) == _bits(v) for k, v in table.items())
    assert back == table
    write_tensorrt_cache(p2, back)
    assert p1.read_bytes() == p2.read_bytes()
    write_tensorrt_cache(p2, TensorRTCache(table, header="TRT-100100-MinMaxCalibration"))
    assert p2.read_text(encoding="utf-8").startswith("TRT-100100-MinMaxCalibration\n")
    write_tensorrt_cache(p2, table, header="TRT-7202-EntropyCalibration2")
    assert read_tensorrt_cache(p2).header == "TRT-7202-EntropyCalibration2"


def test_tensorrt_float64_scales_rounded_to_float32(tmp_path):
    p = tmp_path / "r.cache"
    write_tensorrt_cache(p, {"x": 1.0 / 3.0})
    assert read_tensorrt_cache(p)["x"] == float(np.float32(1.0 / 3.0))
    assert p.read_text().splitlines()[1] == "x: 3eaaaaab"


def test_tensorrt_short_hex_accepted(tmp_path):
    path = _write(tmp_path / "s.cache", "TRT-8601-EntropyCalibration2\nx: 1\ny: 0\r\n\n")
    back = read_tensorrt_cache(path)
    assert _bits(back["x"]) == 1 and back["y"] == 0.0


@pytest.mark.parametrize("text,line,reason", [
    ("", 1, "empty file"),
    ("\n\n", 1, "empty file"),
    ("data: 3c010a14\n", 1, "header"),
    ("TRT-8601-EntropyCalibration2\ndata: 3c010a14\nconv1 3c010a14\n", 3, "expected '<tensor name>"),
    ("TRT-8601-EntropyCalibration2\n: 3c010a14\n", 2, "expected '<tensor name>"),
    ("TRT-8601-EntropyCalibration2\ndata: 3c010a1g\n", 2, "hex"),
    ("TRT-8601-EntropyCalibration2\ndata: 13c010a14\n", 2, "hex"),
    ("TRT-8601-EntropyCalibration2\ndata:\n", 2, "hex"),
    ("TRT-8601-EntropyCalibration2\na: 3c010a14\n\nb: 7fc00000\n", 4, "finite"),
    ("TRT-8601-EntropyCalibration2\na: 7f800000\n", 2, "finite"),
    ("TRT-8601-EntropyCalibration2\na: bf800000\n", 2, ">= 0"),
    ("TRT-8601-EntropyCalibration2\na: 3c010a14\na: 3c010a14\n", 3, "duplicate"),
])
def test_tensorrt_malformed(tmp_path, text, line, reason):
    path = _write(tmp_path / "bad.cache", text)
    with pytest.raises(CalibrationTableError, match=reason) as e:
        read_tensorrt_cache(path)
    assert str(e.value).startswith(f"{path}:{line}: ")


def test_tensorrt_writer_rejects(tmp_path):
    p = tmp_path / "w.cache"
    for table, header in (({"a\nb": 1.0}, None), ({" a": 1.0}, None), ({"a": -1.0}, None),
                          ({"a": float("nan")}, None), ({"a": 1.0}, "TRT-x-Entropy"),
                          ({"a": 1.0}, "TRT-8601-Entropy\nb: 1")):
        with pytest.raises(ValueError):
            write_tensorrt_cache(p, table, header=header)
    assert not p.exists() and _no_temp_files(tmp_path)


# ----------------------------------------------------------------------------- NVDLA

def test_nvdla_from_tensorrt_matches_published_json(tmp_path):
    cache = read_tensorrt_cache(_write(tmp_path / "c.cache", TRT_SAMPLE))
    out = tmp_path / "calib.json"
    write_nvdla_json(out, cache)
    doc = json.loads(out.read_text())
    assert list(doc) == list(cache)
    for name, scale in NVDLA_SAMPLE_SCALES.items():      # values as in nvdla/sw resnet50.json
        assert doc[name] == {"scale": scale, "min": 0, "max": 0, "offset": 0}
    text = out.read_text()
    assert text.startswith('{\n    "data": {\n        "scale": 1.1892666816711426,\n        "min": 0,\n')
    assert text.endswith("}\n")


def test_nvdla_round_trip_and_byte_identical(tmp_path):
    vals = _f32_values(200, seed=2)
    table = {f"layer{i}": v for i, v in enumerate(vals)}
    table["mm"] = {"min": -1.5, "max": 3.25, "offset": 0}
    table["asym"] = {"scale": 0.125, "min": -2.0, "max": 6.0, "offset": 3}
    table["ten sör"] = 0.0
    p1, p2 = tmp_path / "a.json", tmp_path / "b.json"
    write_nvdla_json(p1, table)
    back = read_nvdla_json(p1)
    assert list(back) == list(table)
    for i, v in enumerate(vals):
        e = back[f"layer{i}"]
        assert e == {"scale": v, "min": 0.0, "max": 0.0, "offset": 0} and _bits(e["scale"]) == _bits(v)
    assert back["mm"] == {"scale": None, "min": -1.5, "max": 3.25, "offset": 0}
    assert back["asym"] == {"scale": 0.125, "min": -2.0, "max": 6.0, "offset": 3}
    write_nvdla_json(p2, back)
    assert p1.read_bytes() == p2.read_bytes()
    assert '"mm": {\n        "min": -1.5,' in p1.read_text(encoding="utf-8")


@pytest.mark.parametrize("text,line,reason", [
    ('{\n  "a": {"scale": 1.0},\n  "b": {"scale": 1.0,}\n}\n', 3, "invalid JSON"),
    ("", 1, "invalid JSON"),
    ('[1, 2]\n', 1, "JSON object"),
    ('{\n  "a": {"scale": 1.0},\n  "b": 0.5\n}\n', 3, "expected an object"),
    ('{\n  "a": {"scale": 1.0},\n\n  "b": {"scale": "0.5"}\n}\n', 4, "must be a number"),
    ('{\n  "a": {"scale": -1.0}\n}\n', 2, ">= 0"),
    ('{\n  "a": {"scale": 1e39}\n}\n', 2, "not finite"),
    ('{\n  "a": {"scale": 1.0, "zero_point": 3}\n}\n', 2, "unknown keys"),
    ('{\n  "a": {"min": 1.0}\n}\n', 2, "needs 'scale'"),
    ('{\n  "a": {"scale": 1.0, "offset": 1.5}\n}\n', 2, "offset must be an integer"),
    ('{\n  "a": {"scale": 1.0},\n  "a": {"scale": 2.0}\n}\n', 3, "duplicate"),
])
def test_nvdla_malformed(tmp_path, text, line, reason):
    path = _write(tmp_path / "bad.json", text)
    with pytest.raises(CalibrationTableError, match=reason) as e:
        read_nvdla_json(path)
    assert str(e.value).startswith(f"{path}:{line}: ")


def test_nvdla_writer_rejects(tmp_path):
    p = tmp_path / "w.json"
    for bad in ({"a": {"scale": 1.0, "bias": 2}}, {"a": {"min": 1.0}}, {"a": -1.0},
                {"a": {"scale": 1.0, "offset": 0.5}}, {"a\n": 1.0}, {"a": float("inf")}):
        with pytest.raises(ValueError):
            write_nvdla_json(p, bad)
    assert not p.exists() and _no_temp_files(tmp_path)


# ----------------------------------------------------------------------------- atomicity

def test_writes_replace_atomically(tmp_path):
    p = tmp_path / "t.cache"
    write_tensorrt_cache(p, {"a": 1.0})
    before = p.read_bytes()
    with pytest.raises(ValueError):
        write_tensorrt_cache(p, {"a": 1.0, "b": float("nan")})   # fails before touching the file
    assert p.read_bytes() == before
    write_tensorrt_cache(p, {"a": 2.0})
    assert read_tensorrt_cache(p) == {"a": 2.0}
    assert sorted(os.listdir(tmp_path)) == ["t.cache"]
