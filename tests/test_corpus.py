"""Every tensor of every case of every corpus model equals TFLite's reference kernels exactly.

The corpus (../shared/corpus, beside the checkout; override with HWSIM_CORPUS) holds quantized
TFLite models with inputs and every intermediate tensor computed by TFLite's BUILTIN_REF
kernels. These tests run whenever it exists (always in CI) and skip, saying so, when it does not.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
yaml = pytest.importorskip("yaml")

CORPUS = Path(os.environ.get("HWSIM_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))


def _models():
    if not (CORPUS / "index.yaml").exists():
        return []
    index = yaml.safe_load((CORPUS / "index.yaml").read_text())
    return [m["path"] for m in index["models"]]


MODELS = _models()
needs_corpus = pytest.mark.skipif(
    not MODELS, reason=f"corpus not found at {CORPUS} (set HWSIM_CORPUS); the corpus tests "
                       f"did not run")


def _cases(h, meta_inputs):
    """(group prefix, input file) for every case with expected values."""
    files = json.loads(h.attrs["input_files"])
    out = [("", files[0])]
    for c in range(1, int(h.attrs["num_cases"])):
        assert f"cases/{c}" in h, f"case {c} missing from expected.h5"
        out.append((f"cases/{c}/", files[c] if c < len(files) else f"input_{c}.npy"))
    return out


def _first_diff(got, exp):
    bad = np.argwhere(got != exp)
    i = tuple(int(v) for v in bad[0])
    return f"{len(bad)} of {exp.size} elements differ; first at {i}: hwsim {got[i]} vs REF {exp[i]}"


@needs_corpus
@pytest.mark.parametrize("path", MODELS or ["<none>"])
def test_corpus_model_every_tensor_bit_exact(path):
    import hwsim
    d = CORPUS / path
    meta = yaml.safe_load((d / "meta.yaml").read_text())
    with h5py.File(d / "expected.h5", "r") as h:
        if h.attrs["oracle"] == "none":
            pytest.skip(f"{path}: the corpus has no oracle for this model "
                        f"(see test_corpus_model_without_oracle)")
        net = hwsim.load(d / "model.tflite")
        checked = 0
        for prefix, fname in _cases(h, meta["inputs"]):
            x = np.load(d / fname)
            res = net.run(x, trace=True)
            for k, y in enumerate(res.outputs):
                exp = h[f"{prefix}outputs/{k}"][()]
                assert y.dtype == exp.dtype and y.shape == exp.shape, \
                    f"{path} {prefix or 'case 0 '}output {k}: {y.dtype}{y.shape} vs {exp.dtype}{exp.shape}"
                assert np.array_equal(y, exp), \
                    f"{path} {prefix or 'case 0 '}output {k}: {_first_diff(y, exp)}"
                checked += 1
            if f"{prefix}tensors" not in h:
                continue
            # Every tensor, in execution order, so the first failure names the first bad op.
            for layer in net.program.layers:
                for t in layer.outputs:
                    key = f"{prefix}tensors/{t}"
                    if key not in h:
                        continue
                    exp = h[key][()]
                    got = res.trace.tensors[t]
                    where = (f"{path} {prefix or 'case 0 '}op {layer.index} {layer.op} -> tensor "
                             f"{t} '{net.program.tensors[t].name}'")
                    assert got.dtype == exp.dtype and got.shape == exp.shape, \
                        f"{where}: {got.dtype}{got.shape} vs {exp.dtype}{exp.shape}"
                    assert np.array_equal(got, exp), f"{where}: {_first_diff(got, exp)}"
                    checked += 1
        assert checked > 0


@needs_corpus
def test_corpus_model_without_oracle():
    """keyword_scrambled_8bit: no oracle; the parser must still read every constant exactly,
    and lowering must refuse SVDF with a message naming the op."""
    import hwsim
    from hwsim.frontends.tflite_reader import read_tflite
    d = CORPUS / "real" / "keyword_scrambled_8bit"
    if not d.exists():
        pytest.skip("keyword_scrambled_8bit is not in this corpus")
    g = read_tflite(d / "model.tflite")
    with h5py.File(d / "expected.h5", "r") as h:
        n = 0
        for key in h["tensors"]:
            ds = h["tensors"][key]
            if ds.attrs["kind"] == "constant":
                t = g.tensors[int(key)]
                assert t.data is not None and np.array_equal(t.data, ds[()]), key
                assert t.name == ds.attrs["name"]
                n += 1
        assert n > 0
    with pytest.raises(hwsim.ModelError, match=r"unsupported op SVDF \(op \d+"):
        hwsim.load(d / "model.tflite")


@needs_corpus
@pytest.mark.parametrize("path", MODELS or ["<none>"])
def test_corpus_reader_tensor_metadata(path):
    """The flatbuffer reader's names, shapes, dtypes and quantization equal the corpus's."""
    from hwsim.frontends.tflite_reader import read_tflite
    d = CORPUS / path
    g = read_tflite(d / "model.tflite")
    with h5py.File(d / "expected.h5", "r") as h:
        for key in h["tensors"]:
            ds, t = h["tensors"][key], g.tensors[int(key)]
            assert t.name == ds.attrs["name"], key
            assert tuple(t.shape) == tuple(ds.shape), key
            assert np.dtype(t.dtype) == ds.dtype, key
            scales = np.asarray(ds.attrs["scales"], np.float32)
            if len(scales):
                assert t.quant is not None, key
                assert np.array_equal(t.quant.scales, scales), key
                assert np.array_equal(t.quant.zero_points, np.asarray(ds.attrs["zero_points"])), key
                axis = t.quant.axis
                if len(t.shape) == 1 and axis >= 1:
                    # person_detect's rank-1 depthwise biases say quantized_dimension=3; the
                    # corpus's expected values were made on a copy with 0 there (README).
                    axis = 0
                assert axis == int(ds.attrs["quantized_dimension"]), key
            if ds.attrs["kind"] == "constant":
                assert np.array_equal(t.data, ds[()]), key
