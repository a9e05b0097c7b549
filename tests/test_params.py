"""Typed layer parameters (hwsim.params), the kernels' prepare step (hwsim.registry,
hwsim.engine), and the import order they allow: lowering and kernels share only the params."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from enum import IntEnum

import numpy as np
import pytest

from hwsim import params as P
from hwsim import registry
from hwsim.engine import Network
from hwsim.lower import lower
from hwsim.vocab import RequantScheme
from test_hw_dataflow import small_cnn


def _rq(**kw):
    base = dict(multiplier=np.array([1 << 30], np.int32), shift=np.array([-3], np.int32),
                scheme=RequantScheme.tflite_double, out_zp=-1, act_min=-128, act_max=127)
    return P.RequantParams(**{**base, **kw})


def _conv(**kw):
    base = dict(weights=np.ones((2, 1, 1, 3), np.int8), bias=None, input_offset=5,
                acc_int64=False, requant=_rq(), stride_h=1, stride_w=1, dilation_h=1,
                dilation_w=1, pad_top=0, pad_left=0, out_h=4, out_w=4)
    return P.ConvParams(**{**base, **kw})


def test_params_are_frozen_keyword_only_and_compared_by_value():
    p = _conv()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.pad_top = 1
    with pytest.raises(TypeError):
        P.PoolParams(True, 2, 2, 1, 1, 0, 0, 4, 4, -128, 127)  # positional: refused
    assert p == _conv() and p.diff(_conv()) == []  # equal arrays, distinct objects
    q = p.replace(pad_top=1, weights=np.zeros((2, 1, 1, 3), np.int8))
    assert q != p and p.diff(q) == ["pad_top", "weights"] and p.pad_top == 0
    assert p.diff(p.replace(requant=_rq(out_zp=2))) == ["requant"]
    with pytest.raises(TypeError):
        hash(p)
    assert p.groups == 1 and p.accumulator is None and p.channels == 2


def test_clamp_is_read_and_narrowed_the_same_way_in_every_family():
    conv = _conv()
    assert conv.clamp() == (-128, 127)
    narrowed = conv.with_clamp(-100, 7)
    assert narrowed.clamp() == (-100, 7) and narrowed.requant.clamp() == (-100, 7)
    assert conv.clamp() == (-128, 127)  # a copy: the original is unchanged
    add = P.ArithmeticParams(out_shape=(4,), act_min=-5, act_max=5)
    assert add.with_clamp(0, 5).clamp() == (0, 5) and add.scheme == RequantScheme.tflite_double
    assert P.ArithmeticParams(out_shape=(4,), act_min=0, act_max=1,
                              single_rounding=True).scheme == RequantScheme.tflite_single
    rqz = P.RequantizeParams(in_zp=0, requant=_rq(act_min=-3, act_max=3))
    assert rqz.clamp() == (-3, 3)
    pad = P.PadParams(before=np.zeros(4, np.int64), after=np.zeros(4, np.int64), value=0)
    assert pad.clamp() is None
    with pytest.raises(TypeError, match="PadParams has no output clamp"):
        pad.with_clamp(0, 1)


def _leaves(v, path):
    """Every leaf value of a params tree, with its path."""
    if isinstance(v, P.Params):
        for f in dataclasses.fields(v):
            yield from _leaves(getattr(v, f.name), f"{path}.{f.name}")
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from _leaves(x, f"{path}[{k!r}]")
    elif isinstance(v, tuple):
        for k, x in enumerate(v):
            yield from _leaves(x, f"{path}[{k}]")
    else:
        yield path, v


def _is_integer_data(v) -> bool:
    if v is None or isinstance(v, (bool, int, IntEnum, np.integer, np.bool_)):
        return True
    return isinstance(v, np.ndarray) and v.dtype.kind in "biu"


def test_programs_hold_only_integers_and_types():
    """Every leaf of every layer's params is an int, a bool, an enum or an integer array (no
    float, no packed weights, no cached table), for the engine's and the hardware's lowering."""
    g = small_cnn(np.random.default_rng(0))
    for prog in (lower(g), lower(g, "tflite-int8"), lower(g, "narrow-acc-24"),
                 lower(g, "tflite_single"), lower(g, "mult_shift")):
        for layer in prog.layers:
            assert isinstance(layer.params, P.Params), layer.kernel
            for path, v in _leaves(layer.params, layer.kernel):
                assert _is_integer_data(v), (path, type(v))
        assert isinstance(prog.requant_scheme, RequantScheme)


def test_hardware_mode_is_the_presence_of_an_accumulator_model():
    g = small_cnn(np.random.default_rng(1))
    ref, hw = lower(g), lower(g, "narrow-acc-24")
    for a, b in zip(ref.layers, hw.layers):
        if isinstance(a.params, P.MacParams):
            assert a.params.accumulator is None and b.params.accumulator is not None
            assert b.params.accumulator.acc_bits == 24
        else:
            assert not hasattr(a.params, "accumulator")


def test_prepare_runs_once_per_layer_and_network_and_stays_out_of_the_program(monkeypatch):
    g = small_cnn(np.random.default_rng(2))
    prog = lower(g)
    x = np.random.default_rng(3).integers(-128, 128, size=(1, 8, 8, 3)).astype(np.int8)
    calls: list[int] = []
    k = registry.KERNELS["conv2d"]
    prepare = k.prepare

    def counting(layer):
        calls.append(layer.index)
        return prepare(layer)
    monkeypatch.setitem(registry.KERNELS, "conv2d", dataclasses.replace(k, prepare=counting))
    before = [dataclasses.fields(layer.params) for layer in prog.layers]
    net = Network(prog, g)
    assert calls == []  # prepared on first use
    out = net.run(x).outputs[0]
    net.run(x)
    net.run(x, trace=True)
    conv = [layer.index for layer in prog.layers if layer.kernel == "conv2d"]
    assert sorted(calls) == conv  # once, though the network ran three times
    Network(prog, g).run(x)
    assert sorted(calls) == conv * 2  # a new Network prepares again
    assert [dataclasses.fields(layer.params) for layer in prog.layers] == before
    # a direct kernel call prepares on the spot and gives the engine's integers
    layer = prog.layers[0]
    r = Network(prog, g).run(x, trace=True).trace
    outs, acc = registry.KERNELS[layer.kernel](layer, [r.tensors[layer.inputs[0]]])
    assert np.array_equal(outs[0], r.tensors[layer.outputs[0]])
    assert np.array_equal(acc, r.accumulators[layer.index])
    assert np.array_equal(out, r.tensors[prog.outputs[0]])


def test_a_kernel_without_prepare_ignores_the_data_argument():
    k = registry.KERNELS["pad"]
    assert k.prepare is None and registry.KERNELS["conv2d"].prepare is not None
    layer = type("L", (), {})()
    layer.params = P.PadParams(before=np.array([1]), after=np.array([0]), value=7)
    outs, acc = k(layer, [np.array([1, 2], np.int8)], "ignored")
    assert outs[0].tolist() == [7, 1, 2] and acc is None


def _imported_after(stmt: str) -> set[str]:
    code = (f"import sys; {stmt}; "
            f"print(' '.join(sorted(m for m in sys.modules if m.startswith('hwsim'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def test_lowering_and_kernels_do_not_import_each_other():
    """The circle lower <-> kernels <-> registry is gone: lowering imports no kernel, the
    kernels import no lowering, and the registry imports neither."""
    lowered = _imported_after("import hwsim.lower")
    assert "hwsim.lower.conv" in lowered and not any(m.startswith("hwsim.kernels")
                                                     for m in lowered)
    kernels = _imported_after("import hwsim.kernels.ops")
    assert "hwsim.kernels.conv" in kernels and not any(m.startswith("hwsim.lower")
                                                       for m in kernels)
    reg = _imported_after("import hwsim.registry")
    assert not any(m.startswith(("hwsim.lower", "hwsim.kernels")) for m in reg)
