"""``semantics="tflm"``: hwsim computes the integers of TensorFlow Lite for Microcontrollers.

The oracle is the interpreter of the PyPI ``tflite-micro`` package
(``tflite_micro.python.tflite_micro.runtime.Interpreter``: TFLM's reference kernels). TFLM and
TFLite's reference kernels differ in FULLY_CONNECTED (requantization) and MUL (multiplier
built in double); docs/semantics.md. Covered here: every corpus model hwsim runs, single-op
FC and MUL models (int8 and 16x8, per-tensor and per-channel, random scales and exact-tie
power-of-two scales), the CLI flag and the API argument.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from hwsim.frontends.builder import GraphBuilder
from hwsim.frontends.tflite_reader import parse_tflite
from oracle import hwsim_run, tflite_ref

tflm_runtime = pytest.importorskip(
    "tflite_micro.python.tflite_micro.runtime",
    reason="tflite-micro is not installed (pip install -e .[dev]); its interpreter is the TFLM "
           "oracle these tests compare against")
h5py = pytest.importorskip("h5py")
yaml = pytest.importorskip("yaml")

from conftest import CORPUS, ROOT  # noqa: E402

ARENA = 64 << 20  # bytes; mobilenet_v2 (the largest corpus model) needs about 10 MiB


def tflm_run(model_bytes: bytes, inputs) -> list[np.ndarray]:
    """Run TFLM's interpreter; returns the outputs."""
    it = tflm_runtime.Interpreter.from_bytes(model_bytes, arena_size=ARENA)
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    for k, x in enumerate(inputs):
        it.set_input(x, k)
    it.invoke()
    n_out = len(parse_tflite(model_bytes).outputs)
    return [np.array(it.get_output(k)) for k in range(n_out)]


def hwsim_tflm(model_bytes: bytes, inputs) -> list[np.ndarray]:
    import tempfile

    import hwsim
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "model.tflite")
        with open(p, "wb") as f:
            f.write(model_bytes)
        net = hwsim.load(p, semantics="tflm")
    return net.run(inputs).outputs


def assert_equal_outputs(got, ref, what):
    assert len(got) == len(ref), what
    for k, (g, r) in enumerate(zip(got, ref)):
        assert g.dtype == r.dtype and g.shape == r.shape, \
            f"{what} output {k}: {g.dtype}{g.shape} vs {r.dtype}{r.shape}"
        if not np.array_equal(g, r):
            bad = np.argwhere(g != r)
            i = tuple(int(v) for v in bad[0])
            raise AssertionError(f"{what} output {k}: {len(bad)} of {r.size} elements differ; "
                                 f"first at {i}: hwsim {g[i]} vs oracle {r[i]}")


# -- the corpus -------------------------------------------------------------------------------
def _corpus_models():
    index = os.path.join(CORPUS, "index.yaml")
    if not os.path.exists(index):
        return []
    with open(index) as f:
        return [m["path"] for m in yaml.safe_load(f)["models"]]


CORPUS_MODELS = _corpus_models()
# hwsim refuses this model's SVDF op (docs/limits.md); the corpus has no oracle for it either
HWSIM_UNSUPPORTED = {"real/keyword_scrambled_8bit": "SVDF is not an op hwsim supports"}


@pytest.mark.skipif(not CORPUS_MODELS, reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("path", CORPUS_MODELS or ["<none>"])
def test_corpus_model_equals_tflm(path):
    if path in HWSIM_UNSUPPORTED:
        pytest.skip(f"{path}: {HWSIM_UNSUPPORTED[path]}")
    d = os.path.join(CORPUS, path)
    with open(os.path.join(d, "model.tflite"), "rb") as f:
        model = f.read()
    inputs = sorted(n for n in os.listdir(d) if n.startswith("input_") and n.endswith(".npy"))
    assert inputs, f"{path}: no input files"
    for name in inputs:
        x = np.load(os.path.join(d, name))
        assert_equal_outputs(hwsim_tflm(model, x), tflm_run(model, x), f"{path} {name}")


def test_mobilenet_logits_separate_the_two_semantics():
    """The corpus model whose FC logits differ by one between TFLite REF and TFLM (case 0):
    each semantics reproduces its own oracle, so the flag is what selects the arithmetic."""
    d = os.path.join(CORPUS, "real", "mobilenet_v2_pytorch_1x3x224x224")
    if not os.path.isdir(d):
        pytest.skip(f"corpus model not found at {d}")
    with open(os.path.join(d, "model.tflite"), "rb") as f:
        model = f.read()
    x = np.load(os.path.join(d, "input_0.npy"))
    micro = tflm_run(model, x)[0]
    with h5py.File(os.path.join(d, "expected.h5"), "r") as h:
        ref = h["outputs/0"][()]
    assert not np.array_equal(micro, ref), "TFLM and TFLite REF agree here: pick another case"
    assert np.array_equal(hwsim_tflm(model, x)[0], micro)
    assert np.array_equal(hwsim_run(model, x).outputs[0], ref)


# -- single-op models -------------------------------------------------------------------------
POW2 = "pow2"  # scales that are powers of two: acc * real lands exactly on .5 (ties)


def _scales(rng, n, kind):
    if kind == POW2:
        return np.float32(2.0) ** -rng.integers(3, 8, n).astype(np.float32)
    return rng.uniform(0.002, 0.02, n).astype(np.float32)


def fc_model(rng, *, dtype, per_channel, scales, batch=3, depth=24, units=10, bias_dtype=None,
             act="NONE", quantized_bias_type=None):
    b = GraphBuilder("fc")
    int16 = dtype == np.int16
    zp_in, zp_out = (0, 0) if int16 else (int(rng.integers(-20, 20)), int(rng.integers(-20, 20)))
    if scales == POW2:
        # real = s_in * s_w / s_out = 2^-n with n in 1..3 and small weights (inputs: small_input)
        # so that many accumulators land on a tie; per channel, s_w varies and n with it
        s_w = np.float32(2.0) ** -rng.integers(3, 6, units if per_channel else 1).astype(
            np.float32)
        s_in, s_out = 2.0 ** -4, 2.0 ** -(4 + 3 - int(rng.integers(1, 4)))
        w_lim, b_lim, zp_in = 16, 64, 0
    else:
        s_in, s_out = float(rng.uniform(0.01, 0.05)), float(rng.uniform(0.05, 0.3))
        s_w = _scales(rng, units if per_channel else 1, scales)
        w_lim, b_lim = 127, 2**14
    x = b.input("x", (batch, depth), dtype, s_in, zp_in)
    w = b.const("w", rng.integers(-w_lim, w_lim + 1, (units, depth)).astype(np.int8), s_w,
                np.zeros(len(s_w), np.int64), 0)
    bias_dtype = bias_dtype or (np.int64 if int16 else np.int32)
    bs = (np.float32(s_in) * s_w).astype(np.float32)
    bv = rng.integers(-b_lim, b_lim, units).astype(bias_dtype)
    bt = b.const("b", bv, bs, np.zeros(len(bs), np.int64), 0)
    y = b.activation("y", (batch, units), dtype, s_out, zp_out)
    attrs = dict(fused_activation_function=act, weights_format="DEFAULT", keep_num_dims=False)
    if quantized_bias_type is not None:
        attrs["quantized_bias_type"] = quantized_bias_type
    b.op("FULLY_CONNECTED", [x, w, bt], [y], version=7 if int16 else 4, **attrs)
    b.output(y)
    return b.tflite()


def mul_model(rng, *, dtype, scales, shape_a=(1, 4, 5, 6), shape_b=(1, 4, 5, 6), act="NONE"):
    b = GraphBuilder("mul")
    int16 = dtype == np.int16
    # the output scale keeps a * b * real inside the output type for most elements
    bits = 15 if int16 else 7
    if scales == POW2:
        sa, sb = 2.0 ** -int(rng.integers(4, 9)), 2.0 ** -int(rng.integers(4, 9))
        so = sa * sb * 2.0 ** int(rng.integers(bits - 1, bits + 2))
    else:
        sa, sb = (float(v) for v in rng.uniform(0.003, 0.05, 2))
        so = sa * sb * float(rng.uniform(2.0 ** (bits - 1), 2.0 ** (bits + 1)))
    zps = [0, 0, 0] if int16 else [int(v) for v in rng.integers(-30, 30, 3)]
    a = b.input("a", shape_a, dtype, sa, zps[0])
    c = b.input("b", shape_b, dtype, sb, zps[1])
    out_shape = tuple(np.broadcast_shapes(shape_a, shape_b))
    y = b.activation("y", out_shape, dtype, so, zps[2])
    b.op("MUL", [a, c], [y], version=4 if int16 else 2, fused_activation_function=act)
    b.output(y)
    return b.tflite()


def _rand(rng, shape, dtype, small=False):
    """Uniform over the type's range, or over [zp - 4, zp + 4] around 0 (``small``: the
    power-of-two FC models, whose accumulators then stay in range and hit ties)."""
    if small:
        return rng.integers(-4, 5, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


FC_CASES = [(dt, pc, sc) for dt in (np.int8, np.int16) for pc in (False, True)
            for sc in ("random", POW2)]


@pytest.mark.parametrize("dtype,per_channel,scales", FC_CASES,
                         ids=[f"{np.dtype(d).name}-{'pc' if p else 'pt'}-{s}"
                              for d, p, s in FC_CASES])
def test_fully_connected_equals_tflm(dtype, per_channel, scales):
    differs = 0
    for seed in range(6):
        rng = np.random.default_rng(1000 + seed)
        model = fc_model(rng, dtype=dtype, per_channel=per_channel, scales=scales)
        x = _rand(rng, (3, 24), dtype, small=scales == POW2)
        micro = tflm_run(model, x)
        assert_equal_outputs(hwsim_tflm(model, x), micro, f"FC seed {seed}")
        differs += int(not np.array_equal(micro[0], tflite_ref(model, x)[0]))
    if scales == POW2:
        # negative ties: REF rounds half away from zero, TFLM's Q31 (int8) and Q15 (16x8)
        # multipliers round them up
        assert differs, "no model separated TFLM from TFLite REF: the case tests nothing new"


def test_fully_connected_16x8_int32_bias_equals_tflm():
    """16x8 with an int32 bias (quantized_bias_type INT32): TFLM accumulates in int32 and
    requantizes with the 32-bit MultiplyByQuantizedMultiplier."""
    for seed in range(4):
        rng = np.random.default_rng(2000 + seed)
        model = fc_model(rng, dtype=np.int16, per_channel=bool(seed % 2), scales="random",
                         bias_dtype=np.int32, quantized_bias_type=2)  # TensorType INT32
        x = _rand(rng, (3, 24), np.int16)
        assert_equal_outputs(hwsim_tflm(model, x), tflm_run(model, x), f"seed {seed}")


@pytest.mark.parametrize("act", ["RELU", "RELU6"])
def test_fully_connected_fused_activation_equals_tflm(act):
    rng = np.random.default_rng(7)
    model = fc_model(rng, dtype=np.int8, per_channel=False, scales="random", act=act)
    x = _rand(rng, (3, 24), np.int8)
    assert_equal_outputs(hwsim_tflm(model, x), tflm_run(model, x), act)


MUL_CASES = [(dt, sc) for dt in (np.int8, np.int16) for sc in ("random", POW2)]


@pytest.mark.parametrize("dtype,scales", MUL_CASES,
                         ids=[f"{np.dtype(d).name}-{s}" for d, s in MUL_CASES])
def test_mul_equals_tflm(dtype, scales):
    for seed in range(6):
        rng = np.random.default_rng(3000 + seed)
        shape_b = (1, 4, 5, 6) if seed % 2 else (1, 1, 1, 6)  # and a broadcast
        model = mul_model(rng, dtype=dtype, scales=scales, shape_b=shape_b)
        xs = [_rand(rng, (1, 4, 5, 6), dtype), _rand(rng, shape_b, dtype)]
        assert_equal_outputs(hwsim_tflm(model, xs), tflm_run(model, xs), f"MUL seed {seed}")


def test_mul_int16_multiplier_in_double_separates_the_semantics():
    """Scales whose float32 product rounds: TFLite's multiplier (float32 arithmetic) and
    TFLM's (double) differ, and each semantics follows its own oracle."""
    found = 0
    for seed in range(200):
        rng = np.random.default_rng(4000 + seed)
        model = mul_model(rng, dtype=np.int16, scales="random")
        xs = [_rand(rng, (1, 4, 5, 6), np.int16), _rand(rng, (1, 4, 5, 6), np.int16)]
        micro, ref = tflm_run(model, xs), tflite_ref(model, xs)
        if np.array_equal(micro[0], ref[0]):
            continue
        found += 1
        assert_equal_outputs(hwsim_tflm(model, xs), micro, f"seed {seed} (TFLM)")
        assert_equal_outputs(hwsim_run(model, xs).outputs, ref, f"seed {seed} (REF)")
        if found == 3:
            break
    assert found, "no int16 MUL model in 200 separated TFLM from TFLite REF"


# -- the primitive, the API and the CLI --------------------------------------------------------
@pytest.mark.parametrize("m", [0, 1, (1 << 15) - 1, 1 << 15, (1 << 30) + (1 << 15),
                               0x7FFEFFFF, 0x7FFF0000, 0x7FFF8000, (1 << 31) - 1])
def test_reduce_multiplier_q31_to_q15_half_up(m):
    from hwsim.arith import reduce_multiplier_q31_to_q15_half_up
    want = 0x7FFF if m >= 0x7FFF0000 else (m + (1 << 15)) >> 16
    assert reduce_multiplier_q31_to_q15_half_up(m) == want


def test_load_refuses_an_unknown_semantics(tmp_path):
    import hwsim
    with pytest.raises(hwsim.HwsimError, match="semantics 'tflm2'"):
        hwsim.load(tmp_path / "missing.tflite", semantics="tflm2")


def _fc_files(tmp_path):
    rng = np.random.default_rng(1003)  # an int16 pow2 FC model whose outputs separate
    model = fc_model(rng, dtype=np.int16, per_channel=False, scales=POW2)
    x = _rand(rng, (3, 24), np.int16, small=True)
    mp, xp = tmp_path / "fc.tflite", tmp_path / "x.npy"
    mp.write_bytes(model)
    np.save(xp, x)
    return model, x, mp, xp


def test_cli_run_semantics_flag(tmp_path):
    from hwsim import cli
    model, x, mp, xp = _fc_files(tmp_path)
    micro, ref = tflm_run(model, x)[0], tflite_ref(model, x)[0]
    assert not np.array_equal(micro, ref), "pick a model whose outputs separate"
    for sem, want in (("tflm", micro), ("tflite", ref)):
        out = tmp_path / f"y_{sem}.npy"
        assert cli.main(["run", str(mp), "--input", str(xp), "--output", str(out), "-q",
                         "--semantics", sem]) == 0
        assert np.array_equal(np.load(out), want), sem


def test_cli_run_refuses_a_bad_semantics(tmp_path):
    _, _, mp, xp = _fc_files(tmp_path)
    r = subprocess.run([sys.executable, "-m", "hwsim", "run", str(mp), "--input", str(xp),
                        "--semantics", "tfl"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "--semantics" in r.stderr and "Traceback" not in r.stderr


def test_cli_export_semantics_flag(tmp_path):
    """'hwsim export --semantics': the golden output vector (and the FC layer's requant
    scheme) follow the chosen runtime; both export exactly on tflite-int8."""
    import h5py as _h5
    import yaml as _yaml

    from hwsim import cli
    rng = np.random.default_rng(5003)  # an int8 pow2 FC model (batch 1) whose outputs separate
    model = fc_model(rng, dtype=np.int8, per_channel=False, scales=POW2, batch=1)
    x = _rand(rng, (1, 24), np.int8, small=True)
    micro, ref = tflm_run(model, x)[0], tflite_ref(model, x)[0]
    assert not np.array_equal(micro, ref), "pick a model whose outputs separate"
    mp, xp = tmp_path / "fc.tflite", tmp_path / "x.npy"
    mp.write_bytes(model)
    np.save(xp, x)
    for sem, want, scheme in (("tflm", micro, "tflite_double"), ("tflite", ref, "double_round")):
        out = tmp_path / f"export_{sem}"
        assert cli.main(["export", str(mp), "--input", str(xp), "--out", str(out), "-q",
                         "--semantics", sem]) == 0
        with _h5.File(out / "vectors.h5", "r") as h:
            got = h["layers/00_fully_connected/output"][()]
        assert np.array_equal(got.reshape(want.shape), want), sem
        man = _yaml.safe_load((out / "manifest.yaml").read_text())
        assert man["layers"][0]["quantization"]["requant"]["scheme"] == scheme, sem
        assert man["exact"], sem


def test_cli_compare_accepts_semantics(tmp_path):
    """'hwsim compare --semantics' lowers --model with it: two runs of the same semantics
    compare bit-exact, a tflite trace against a tflm trace does not."""
    from hwsim import cli
    _, _, mp, xp = _fc_files(tmp_path)
    traces = {}
    for sem in ("tflite", "tflm"):
        traces[sem] = tmp_path / f"t_{sem}.h5"
        assert cli.main(["run", str(mp), "--input", str(xp), "--trace", str(traces[sem]), "-q",
                         "--semantics", sem]) == 0
    assert cli.main(["compare", str(traces["tflm"]), str(traces["tflm"]), "--model", str(mp),
                     "--semantics", "tflm"]) == 0
    assert cli.main(["compare", str(traces["tflite"]), str(traces["tflm"]), "--model", str(mp),
                     "--semantics", "tflm"]) == 1


def test_fully_connected_per_tensor_real_is_the_exact_product():
    """TFLM's per-tensor FC real: the source (GetQuantizedConvolutionMultipler, kernel_util.cc)
    writes ``double(input_scale * filter_scale)``, a float32 product, but the interpreter of
    the tflite-micro package computes the exact product (s_in * s_w / s_out in double, the
    reals hwsim derives). Scales whose float32 product would change the Q31 multiplier, and
    accumulators (the biases, with a zero input) the two multipliers requantize differently:
    TFLM and hwsim follow the exact product."""
    from hwsim.arith import multiply_by_quantized_multiplier_double as mbqm
    from hwsim.arith import quantize_multiplier
    rng = np.random.default_rng(99)
    for _ in range(10000):
        s_in, s_w, s_out = (float(np.float32(v)) for v in
                            (rng.uniform(1e-4, 1e-3), rng.uniform(1e-3, 1e-2),
                             rng.uniform(1e-4, 1e-3)))
        r32 = float(np.float32(np.float32(s_in) * np.float32(s_w))) / s_out
        r64 = s_in * s_w / s_out
        q32, q64 = quantize_multiplier(r32), quantize_multiplier(r64)
        if q32 != q64:
            break
    else:
        pytest.fail("no scales whose float32 product changes the multiplier")
    biases = []
    for k in range(1, 30000):
        b0 = int(round((k + 0.5) / r64))  # accumulators next to a rounding boundary
        for b in (b0 - 1, b0, b0 + 1):
            if b < 2**31 and mbqm(b, *q32) != mbqm(b, *q64) and mbqm(b, *q32) < 32767:
                biases.append(b)
        if len(biases) >= 6:
            break
    assert biases, "no accumulator separates the two multipliers"
    b = GraphBuilder("fc_product")
    x = b.input("x", (1, 4), np.int16, s_in, 0)
    w = b.const("w", rng.integers(-127, 128, (len(biases), 4)).astype(np.int8), s_w, 0, 0)
    bt = b.const("b", np.array(biases, np.int32), np.float32(s_in) * np.float32(s_w), 0, 0)
    y = b.activation("y", (1, len(biases)), np.int16, s_out, 0)
    b.op("FULLY_CONNECTED", [x, w, bt], [y], version=7, fused_activation_function="NONE",
         weights_format="DEFAULT", keep_num_dims=False, quantized_bias_type=2)
    b.output(y)
    model = b.tflite()
    x0 = np.zeros((1, 4), np.int16)
    micro = tflm_run(model, x0)
    assert micro[0].reshape(-1).tolist() == [int(mbqm(v, *q64)) for v in biases]
    assert micro[0].reshape(-1).tolist() != [int(mbqm(v, *q32)) for v in biases]
    assert_equal_outputs(hwsim_tflm(model, x0), micro, "per-tensor FC real")
