"""Activation ops (RELU*, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, SOFTMAX) equal TFLite's
reference kernels (BUILTIN_REF) exactly.

Element-wise ops are tested EXHAUSTIVELY: one tensor holds every code of the input type (256 for
int8/uint8, 65,536 for int16), for several input/output scale and zero-point combinations,
including the fixed output quantizations TFLite requires. SOFTMAX is tested over rows of varying
length, ranks, beta values and near-tie rows (its inputs interact within a row, so it cannot be
exhaustive). The corpus tests feed each corpus activation op its recorded input tensor and
compare with the recorded output tensor.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from hwsim.frontends.builder import GraphBuilder
from hwsim.ir import ModelError

from oracle import assert_same_as_tflite


def _all_codes(dt) -> np.ndarray:
    info = np.iinfo(dt)
    return np.arange(info.min, info.max + 1).astype(dt)[None, :]


def _unary_model(op_type, dt, shape, s_in, zp_in, s_out, zp_out, out_dt=None, **attrs) -> bytes:
    b = GraphBuilder(op_type.lower())
    x = b.input("x", shape, dt, scale=s_in, zero_point=zp_in)
    y = b.activation("y", shape, out_dt or dt, scale=s_out, zero_point=zp_out)
    b.op(op_type, [x], [y], **attrs)
    b.output(y)
    return b.tflite()


def _exhaustive(op_type, dt, s_in, zp_in, s_out, zp_out, **attrs):
    x = _all_codes(dt)
    assert_same_as_tflite(_unary_model(op_type, dt, x.shape, s_in, zp_in, s_out, zp_out, **attrs),
                          [x])


# (input scale, input zp, output scale, output zp) per 8-bit type: ratios < 1, > 1, ~1, and
# extreme zero points.
_Q8 = {
    np.int8: [(0.05, 3, 0.03, -5), (0.02, -7, 0.1, 20), (0.1, 0, 0.1, 0), (0.9, 100, 0.004, -128),
              (0.0004, -120, 0.0007, 127)],
    np.uint8: [(0.05, 131, 0.03, 123), (0.02, 121, 0.1, 148), (0.9, 228, 0.004, 0),
               (0.0004, 8, 0.0007, 255)],
}
_Q8_CASES = [(dt, *q) for dt, qs in _Q8.items() for q in qs]
_IDS8 = [f"{np.dtype(c[0]).name}-in{c[1]}_{c[2]}-out{c[3]}_{c[4]}" for c in _Q8_CASES]


# ----------------------------------------------------------------------------------------------
# RELU family
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op_type", ["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"])
@pytest.mark.parametrize("case", _Q8_CASES, ids=_IDS8)
def test_relu_family_8bit_exhaustive(op_type, case):
    _exhaustive(op_type, *case)


@pytest.mark.parametrize("op_type", ["RELU", "RELU6"])
@pytest.mark.parametrize("s_in,s_out", [(0.001, 0.0007), (0.001, 0.01), (3.0, 0.0001),
                                        (1e-5, 0.03)])
def test_relu_int16_exhaustive(op_type, s_in, s_out):
    _exhaustive(op_type, np.int16, s_in, 0, s_out, 0)


def test_relu_extreme_output_scale_int8():
    # 6 / s_out overflows int32 in TFLite's clamp computation (x86 gives INT32_MIN): reproduced.
    _exhaustive("RELU6", np.int8, 0.05, 3, 1e-9, 5)


# ----------------------------------------------------------------------------------------------
# LEAKY_RELU
# ----------------------------------------------------------------------------------------------

_ALPHAS = [0.0, 0.01, 0.2, 1.0, 1.7, -0.5, -2.0]


@pytest.mark.parametrize("alpha", _ALPHAS)
@pytest.mark.parametrize("case", _Q8_CASES, ids=_IDS8)
def test_leaky_relu_8bit_exhaustive(alpha, case):
    _exhaustive("LEAKY_RELU", *case, alpha=alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.5, -0.4, -3.0])
@pytest.mark.parametrize("s_in,s_out", [(0.001, 0.0007), (0.001, 0.01), (3.0, 0.0001)])
def test_leaky_relu_int16_exhaustive(alpha, s_in, s_out):
    _exhaustive("LEAKY_RELU", np.int16, s_in, 0, s_out, 0, alpha=alpha)


# ----------------------------------------------------------------------------------------------
# HARD_SWISH (int8/uint8; TFLite has no int16 kernel)
# ----------------------------------------------------------------------------------------------

# output/input scale ratios from 1/120 (largest TFLite accepts is 1/128 * ...) to 1e9: covers
# left- and right-shifting reluish multipliers and the int16 RoundingDivideByPOT with exponents
# >= 16, whose truncated mask TFLite really executes.
@pytest.mark.parametrize("dt,s_in,zp_in", [(np.int8, 0.0004, 5), (np.int8, 0.02, -7),
                                           (np.int8, 0.9, 9), (np.int8, 7.3, -120),
                                           (np.int8, 300.0, 0), (np.uint8, 0.02, 121),
                                           (np.uint8, 7.3, 3)])
@pytest.mark.parametrize("ratio,dzp", [(1 / 120, 0), (0.3, 11), (1.0, 0), (3.7, -20),
                                       (600.0, 1), (1000.0, 0), (5e4, -1), (1e9, 3)])
def test_hard_swish_exhaustive(dt, s_in, zp_in, ratio, dzp):
    zc = 0 if dt == np.int8 else 128
    _exhaustive("HARD_SWISH", dt, s_in, zp_in, s_in * ratio, zc + dzp)


def test_hard_swish_rejects_what_tflite_rejects():
    x = _all_codes(np.int8)
    m = _unary_model("HARD_SWISH", np.int8, x.shape, 0.1, 0, 0.0001, 0)  # exponent > 0
    with pytest.raises(ModelError, match="exponent"):
        _hwsim_only(m, x)


# ----------------------------------------------------------------------------------------------
# LOGISTIC, TANH
# ----------------------------------------------------------------------------------------------

_LUT_INPUTS = [(0.0004, 5), (0.02, -7), (0.1, 0), (0.9, 100), (7.3, -120)]


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("s_in,zp_in", _LUT_INPUTS)
def test_logistic_8bit_exhaustive(dt, s_in, zp_in):
    zc = 0 if dt == np.int8 else 128
    zp_in = min(max(zc + zp_in, np.iinfo(dt).min), np.iinfo(dt).max)
    # TFLite requires the output scale 1/256; the reference kernel accepts any zero point.
    for zp_out in ([-128, 17] if dt == np.int8 else [0, 40]):
        _exhaustive("LOGISTIC", dt, s_in, zp_in, 1 / 256, zp_out)


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("s_in,zp_in", _LUT_INPUTS)
def test_tanh_8bit_exhaustive(dt, s_in, zp_in):
    zc = 0 if dt == np.int8 else 128
    zp_in = min(max(zc + zp_in, np.iinfo(dt).min), np.iinfo(dt).max)
    info = np.iinfo(dt)
    # any output quantization (the reference TANH checks none), including absurdly small scales
    for s_out, dzp in [(1 / 128, 0), (1 / 256, -128), (0.003, 9), (0.05, -3), (1e-6, 0),
                       (1e-10, 5)]:
        _exhaustive("TANH", dt, s_in, zp_in, s_out, min(max(zc + dzp, info.min), info.max))


# Power-of-two input scales TFLite treats specially (2^-12 for both, 2^-11 for TANH), others that
# go through the general multiplier, tiny and large ones (int32 wrap in the input scaling).
_INT16_SIGMOID_SCALES = [2 ** -12, 2 ** -11, 2 ** -10, 2 ** -15, 0.0003, 1 / 3000, 0.01, 1.0,
                         3.0, 1e-7, 2 ** -12 * 1.0004]


@pytest.mark.parametrize("op_type", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("s_in", _INT16_SIGMOID_SCALES)
def test_logistic_tanh_int16_exhaustive(op_type, s_in):
    _exhaustive(op_type, np.int16, s_in, 0, 1 / 32768, 0)


# ----------------------------------------------------------------------------------------------
# SOFTMAX
# ----------------------------------------------------------------------------------------------

# (input dtype, output dtype, input zp, output scale, output zp): the output quantizations TFLite
# requires (int8 -> int8: 1/256, -128; int16: 1/32768, 0) or uses implicitly.
_SOFTMAX_TYPES = [
    (np.int8, np.int8, -3, 1 / 256, -128),
    (np.int8, np.int16, 5, 1 / 65536, -32768),
    (np.uint8, np.uint8, 128, 1 / 256, 0),
    (np.uint8, np.int16, 100, 1 / 65536, -32768),
    (np.int16, np.int16, 0, 1 / 32768, 0),
]
_SOFTMAX_IDS = [f"{np.dtype(t[0]).name}-{np.dtype(t[1]).name}" for t in _SOFTMAX_TYPES]


def _softmax_model(dt, odt, shape, s_in, zp_in, s_out, zp_out, beta):
    return _unary_model("SOFTMAX", dt, shape, s_in, zp_in, s_out, zp_out, out_dt=odt, beta=beta)


@pytest.mark.parametrize("types", _SOFTMAX_TYPES, ids=_SOFTMAX_IDS)
@pytest.mark.parametrize("beta,s_in", [(1.0, 0.05), (1.0, 0.2), (2.5, 0.01), (0.05, 0.1),
                                       (30.0, 0.003), (1e-3, 2.0), (1e4, 100.0), (1e9, 0.1)])
def test_softmax_random_rows(types, beta, s_in):
    dt, odt, zp_in, s_out, zp_out = types
    rng = np.random.default_rng(zlib.crc32(repr((np.dtype(dt).name, np.dtype(odt).name, beta,
                                                 s_in)).encode()))
    info = np.iinfo(dt)
    for depth in (1, 2, 7, 64, 256):
        x = rng.integers(info.min, info.max + 1, size=(3, 2, depth)).astype(dt)
        if depth == 256 and dt != np.int16:
            x[0, 0] = _all_codes(dt)[0]  # one row holding every code
        assert_same_as_tflite(_softmax_model(dt, odt, x.shape, s_in, zp_in, s_out, zp_out, beta),
                              [x])


@pytest.mark.parametrize("types", _SOFTMAX_TYPES, ids=_SOFTMAX_IDS)
def test_softmax_shapes_and_ties(types):
    dt, odt, zp_in, s_out, zp_out = types
    rng = np.random.default_rng(7)
    info = np.iinfo(dt)
    lo, hi = max(info.min, -200), min(info.max, 200)
    xs = []
    flat = np.full((4, 255), 7 if dt != np.uint8 else 140, dtype=dt)
    flat[1, ::3] -= 1
    flat[2, 0] += 100
    flat[3, :] = info.min
    xs.append(flat)                                                     # near-ties, all-min row
    xs.append(rng.integers(lo, hi + 1, size=(300,)).astype(dt))         # rank 1
    xs.append(rng.integers(lo, hi + 1, size=(2, 3, 4, 9)).astype(dt))   # rank 4
    xs.append(rng.integers(lo, hi + 1, size=(2, 1000)).astype(dt))      # long rows
    for x in xs:
        assert_same_as_tflite(_softmax_model(dt, odt, x.shape, 0.05, zp_in, s_out, zp_out, 1.0),
                              [x])


def test_softmax_int16_output_long_flat_rows():
    # 600 equal entries: a sum of exponentials that an 8-bit output could not take, fine in int16
    for dt, zp in [(np.int8, 0), (np.int16, 0)]:
        x = np.full((2, 600), 7, dtype=dt)
        s_out, zp_out = (1 / 65536, -32768) if dt == np.int8 else (1 / 32768, 0)
        assert_same_as_tflite(_softmax_model(dt, np.int16, x.shape, 0.05, zp, s_out, zp_out, 1.0),
                              [x])


def test_softmax_int8_row_sum_too_large_is_an_error():
    # TFLite aborts (TFLITE_CHECK) here, so there is nothing to compare with: hwsim must refuse.
    from hwsim.ir import InputError
    x = np.full((1, 600), 7, dtype=np.int8)
    m = _softmax_model(np.int8, np.int8, x.shape, 0.05, 0, 1 / 256, -128, 1.0)
    with pytest.raises(InputError, match="TFLITE_CHECK"):
        _hwsim_only(m, x)


def test_softmax_rejects_what_tflite_rejects():
    x = np.zeros((1, 8), np.int8)
    with pytest.raises(ModelError, match="1/256"):
        _hwsim_only(_softmax_model(np.int8, np.int8, x.shape, 0.05, 0, 1 / 128, -128, 1.0), x)
    with pytest.raises(ModelError, match="int16 to int8|int16 input"):
        _hwsim_only(_softmax_model(np.int16, np.int8, x.shape, 0.05, 0, 1 / 256, -128, 1.0),
                    x.astype(np.int16))


def _hwsim_only(model_bytes, x):
    """Lower and run only through hwsim (for inputs TFLite rejects or aborts on)."""
    from oracle import hwsim_run
    return hwsim_run(model_bytes, [x])


# ----------------------------------------------------------------------------------------------
# Corpus: every activation op of every corpus model, on its recorded input tensors
# ----------------------------------------------------------------------------------------------

CORPUS = Path(os.environ.get("HWSIM_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
_FAMILY = {"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "HARD_SWISH",
           "LOGISTIC", "TANH", "SOFTMAX"}


def _corpus_ops():
    """(model path, op index, op type) of the family's ops in corpus models with an oracle."""
    yaml = pytest.importorskip("yaml")
    index = CORPUS / "index.yaml"
    if not index.exists():
        return []
    out = []
    for m in yaml.safe_load(index.read_text())["models"]:
        if m.get("oracle") == "none":
            continue
        meta = yaml.safe_load((CORPUS / m["path"] / "meta.yaml").read_text())
        for name in meta.get("op_sequence", []):
            if name in _FAMILY:
                out.append((m["path"], name))
    # one entry per (model, op type); the test walks every op of that type in the model
    return sorted(set(out))


_CORPUS_OPS = _corpus_ops() if (CORPUS / "index.yaml").exists() else []


@pytest.mark.skipif(not _CORPUS_OPS, reason=f"corpus not found at {CORPUS} (set HWSIM_CORPUS); "
                                            f"the corpus activation tests did not run")
@pytest.mark.parametrize("path,op_type", _CORPUS_OPS or [("<none>", "")])
def test_corpus_activation_ops_on_recorded_tensors(path, op_type):
    h5py = pytest.importorskip("h5py")
    import hwsim
    from hwsim import registry
    from hwsim.lower import LoweringContext

    import hwsim.kernels.ops  # noqa: F401  (registers the kernels; hwsim.lower the lowerings)

    d = CORPUS / path
    graph = hwsim.load_graph(d / "model.tflite")
    ctx = LoweringContext(graph)
    ops = [op for op in graph.ops if op.type == op_type]
    assert ops, f"{path}: no {op_type} op in the graph"
    checked = 0
    with h5py.File(d / "expected.h5", "r") as h:
        groups = [""] + [f"cases/{c}/" for c in range(1, int(h.attrs["num_cases"]))]
        for op in ops:
            layer = registry.LOWERINGS[op.type](op, ctx)
            x_index, y_index = layer.inputs[0], layer.outputs[0]
            for g in groups:
                if f"{g}tensors/{x_index}" not in h or f"{g}tensors/{y_index}" not in h:
                    continue
                x = h[f"{g}tensors/{x_index}"][()]
                expected = h[f"{g}tensors/{y_index}"][()]
                outs, _ = registry.KERNELS[layer.kernel](layer, [x])
                got = outs[0]
                assert got.dtype == expected.dtype and got.shape == expected.shape, (
                    f"{path} op {op.index} case '{g}': {got.dtype}{got.shape} vs "
                    f"{expected.dtype}{expected.shape}")
                if not np.array_equal(got, expected):
                    bad = np.argwhere(got != expected)
                    i = tuple(int(v) for v in bad[0])
                    raise AssertionError(
                        f"{path} op {op.index} ({op.type}) case '{g}': {len(bad)} of "
                        f"{expected.size} differ; first at {i}: hwsim {got[i]} vs REF "
                        f"{expected[i]} (input {x[i]})")
                checked += 1
    assert checked, f"{path}: no recorded input/output tensors for {op_type}"
