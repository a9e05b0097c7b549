"""The engine's untraced schedule folds PAD into the following convolution (hwsim/engine.py
runs hwsim.passes.FoldPadIntoConv).

Both schedules must give identical integers: generated PAD -> CONV_2D / DEPTHWISE_CONV_2D
models are checked against TFLite REF (the untraced run folds) and against the traced run (which
does not), with cases that must fold and cases that must not (another pad value, a padded
channel axis, a PAD output read twice or returned). The corpus models with PAD are run both ways.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hwsim.passes import FoldPadIntoConv
from hwsim.frontends.builder import GraphBuilder
from oracle import assert_same_as_tflite

CORPUS = Path(os.environ.get("HWSIM_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))


def fold_pads(program):
    """The layers of ``program`` after the pad fold."""
    return FoldPadIntoConv().apply(program).layers


def _out(padding, n, k, s, d):
    eff = (k - 1) * d + 1
    return (n + s - 1) // s if padding == "SAME" else (n - eff + s) // s


def pad_conv_model(rng, *, h, w, cin, pads, k, stride, dilation, padding, depthwise=False,
                   zp=-3, pad_value=None, pad_channels=0, second_reader=False,
                   pad_is_output=False):
    """x -> PAD (or PADV2 with pad_value) -> CONV_2D / DEPTHWISE_CONV_2D [-> also ADD]."""
    b = GraphBuilder("padconv")
    s_in = 0.02
    x = b.input("x", (1, h, w, cin), np.int8, s_in, zp)
    (pt, pb), (pl, pr) = pads
    ph, pw, pc = h + pt + pb, w + pl + pr, cin + pad_channels
    xp = b.activation("xp", (1, ph, pw, pc), np.int8, s_in, zp)
    padv = b.const("paddings", np.array([[0, 0], [pt, pb], [pl, pr], [0, pad_channels]],
                                        np.int32))
    if pad_value is None:
        b.op("PAD", [x, padv], [xp])
    else:
        c = b.const("value", np.array([pad_value], np.int8), [s_in], [zp])
        b.op("PADV2", [x, padv, c], [xp])
    cout = pc if depthwise else 6
    s_w = rng.uniform(0.002, 0.01, cout)
    if depthwise:
        wt = b.const("w", rng.integers(-127, 128, (1, k, k, cout)).astype(np.int8), s_w,
                     np.zeros(cout, np.int64), 3)
    else:
        wt = b.const("w", rng.integers(-127, 128, (cout, k, k, pc)).astype(np.int8), s_w,
                     np.zeros(cout, np.int64), 0)
    bias = b.const("b", rng.integers(-2000, 2000, cout).astype(np.int32), s_in * s_w,
                   np.zeros(cout, np.int64), 0)
    oh, ow = _out(padding, ph, k, stride, dilation), _out(padding, pw, k, stride, dilation)
    y = b.activation("y", (1, oh, ow, cout), np.int8, 0.05, 4)
    attrs = dict(padding=padding, stride_h=stride, stride_w=stride, dilation_h_factor=dilation,
                 dilation_w_factor=dilation, fused_activation_function="NONE")
    if depthwise:
        b.op("DEPTHWISE_CONV_2D", [xp, wt, bias], [y], version=3, depth_multiplier=1, **attrs)
    else:
        b.op("CONV_2D", [xp, wt, bias], [y], version=3, **attrs)
    b.output(y)
    if second_reader:
        z = b.activation("z", (1, ph, pw, pc), np.int8, s_in, zp)
        b.op("ADD", [xp, xp], [z], version=2, fused_activation_function="NONE")
        b.output(z)
    if pad_is_output:
        b.output(xp)
    return b.tflite()


FOLD_CASES = [
    dict(h=9, w=9, cin=4, pads=((1, 1), (1, 1)), k=3, stride=2, dilation=1, padding="VALID"),
    dict(h=10, w=7, cin=3, pads=((0, 1), (0, 1)), k=3, stride=2, dilation=1, padding="VALID"),
    dict(h=8, w=8, cin=5, pads=((2, 0), (3, 1)), k=3, stride=1, dilation=1, padding="SAME"),
    dict(h=7, w=9, cin=8, pads=((4, 4), (0, 5)), k=3, stride=1, dilation=2, padding="VALID"),
    dict(h=6, w=6, cin=2, pads=((1, 2), (2, 1)), k=5, stride=3, dilation=1, padding="SAME"),
    dict(h=12, w=12, cin=16, pads=((1, 1), (1, 1)), k=3, stride=2, dilation=1, padding="VALID",
         zp=-128),
    dict(h=12, w=12, cin=16, pads=((1, 1), (1, 1)), k=3, stride=2, dilation=1, padding="VALID",
         zp=127),
]


def _load(model: bytes):
    import hwsim
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.tflite")
        Path(p).write_bytes(model)
        return hwsim.load(p)


def _both_schedules_equal(net, x):
    fast = net.run(x).outputs
    traced = net.run(x, trace=True).outputs
    for f, t in zip(fast, traced):
        assert f.dtype == t.dtype and f.shape == t.shape
        assert np.array_equal(f, t)


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
@pytest.mark.parametrize("case", range(len(FOLD_CASES)))
def test_pad_folds_and_matches_tflite(case, depthwise):
    rng = np.random.default_rng(case + 10 * depthwise)
    p = FOLD_CASES[case]
    m = pad_conv_model(rng, depthwise=depthwise, **p)
    net = _load(m)
    layers = fold_pads(net.program)
    assert len(layers) == len(net.program.layers) - 1, "the PAD was expected to fold"
    assert not any(layer.kernel == "pad" for layer in layers)
    for extreme in (False, True):
        shape = (1, p["h"], p["w"], p["cin"])
        x = (rng.choice([-128, 127], shape) if extreme else
             rng.integers(-128, 128, shape)).astype(np.int8)
        assert_same_as_tflite(m, x)  # the untraced (folded) schedule
        _both_schedules_equal(net, x)


@pytest.mark.parametrize("variant", [dict(pad_value=5), dict(pad_channels=2),
                                     dict(second_reader=True), dict(pad_is_output=True)],
                         ids=["other-value", "channel-pad", "two-readers", "pad-is-output"])
def test_pad_that_must_not_fold(variant):
    rng = np.random.default_rng(3)
    p = dict(FOLD_CASES[0])
    m = pad_conv_model(rng, **p, **variant)
    net = _load(m)
    assert any(layer.kernel == "pad" for layer in fold_pads(net.program))
    x = rng.integers(-128, 128, (1, p["h"], p["w"], p["cin"])).astype(np.int8)
    assert_same_as_tflite(m, x)
    _both_schedules_equal(net, x)


def _corpus_models_with_pad():
    if not (CORPUS / "index.yaml").exists():
        return []
    import yaml
    index = yaml.safe_load((CORPUS / "index.yaml").read_text())
    return [m["path"] for m in index["models"]]


@pytest.mark.skipif(not _corpus_models_with_pad(),
                    reason=f"corpus not found at {CORPUS}; the folded-schedule corpus check "
                           f"did not run")
def test_corpus_outputs_of_folded_schedule():
    """Every corpus model's outputs from the untraced (folded) run equal expected.h5's, and at
    least one model (mobilenet_v2) actually folds a PAD."""
    import h5py
    import hwsim
    folded = 0
    for path in _corpus_models_with_pad():
        d = CORPUS / path
        with h5py.File(d / "expected.h5", "r") as h:
            if h.attrs["oracle"] == "none":
                continue
            net = hwsim.load(d / "model.tflite")
            folded += len(net.program.layers) - len(fold_pads(net.program))
            import json
            x = np.load(d / json.loads(h.attrs["input_files"])[0])
            for k, y in enumerate(net.run(x).outputs):
                assert np.array_equal(y, h[f"outputs/{k}"][()]), (path, k)
    assert folded > 0
