"""MAXIMUM and MINIMUM equal TFLite's reference kernels exactly (maximum_minimum.cc).

TFLite compares the stored integers and ignores the tensors' scales and zero points, so the
models below give the inputs and the output different quantization on purpose. Single-op models
(GraphBuilder) run through TFLite BUILTIN_REF and hwsim (``tests/oracle.py``); every output
integer must be equal. Swept: shapes (same shape, broadcasting both ways, rank 1 to 6), a
constant operand in either position (a scalar of shape (), a 1-element [1], a per-channel
vector), int8 and int16, random and extreme inputs.
"""
from __future__ import annotations

import numpy as np
import pytest

from oracle import assert_same_as_tflite, hwsim_run

from hwsim.frontends.builder import GraphBuilder
from hwsim.frontends.tflite_reader import parse_tflite
from hwsim.frontends.tflite_writer import serialize_tflite
from hwsim.ir import ModelError

I8, I16 = np.int8, np.int16
OPS = ["MAXIMUM", "MINIMUM"]

# (shape a, shape b): both run-time inputs
SHAPES = [
    ((1, 5, 7, 3), (1, 5, 7, 3)),          # same shape
    ((2, 4, 4, 6), (1, 1, 1, 6)),          # per channel
    ((1, 1, 1, 6), (2, 4, 4, 6)),          # broadcast the first operand
    ((3, 1, 5), (1, 4, 1)),                # both broadcast
    ((7,), (1,)),                          # rank 1, one element
    ((2, 3, 1, 4, 5), (3, 2, 1, 1)),       # rank 5 with rank 4
    ((1, 2, 1, 3, 1, 4), (2, 1, 3, 1, 4, 1)),  # rank 6
    ((4, 9), ()),                          # a scalar input
]
# (input a, input b, output) quantization: ignored by the op
QUANT = [((0.02, -3), (0.5, 17), (0.1, 0)), ((0.3, 0), (0.3, 0), (0.3, 0))]


def _data(rng, shape, dtype, extreme=False):
    info = np.iinfo(dtype)
    if extreme:
        return rng.choice(np.array([info.min, -1, 0, 1, info.max], dtype=dtype), size=shape)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _model(op, shape_a, shape_b, dtype, q, const_a=None, const_b=None) -> GraphBuilder:
    zp16 = dtype == I16
    qa, qb, qo = ((s, 0 if zp16 else z) for s, z in q)
    b = GraphBuilder(op.lower())
    if const_a is None:
        a = b.input("a", shape_a, dtype, scale=qa[0], zero_point=qa[1])
    else:
        a = b.const("a", np.asarray(const_a, dtype), scales=[qa[0]], zero_points=[qa[1]])
    if const_b is None:
        c = b.input("b", shape_b, dtype, scale=qb[0], zero_point=qb[1])
    else:
        c = b.const("b", np.asarray(const_b, dtype), scales=[qb[0]], zero_points=[qb[1]])
    y = b.activation("y", np.broadcast_shapes(shape_a, shape_b), dtype, scale=qo[0],
                     zero_point=qo[1])
    b.op(op, [a, c], [y])
    b.output(y)
    return b


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("case", range(len(SHAPES)))
def test_minmax_two_inputs_broadcasting(op, dtype, case):
    shape_a, shape_b = SHAPES[case]
    rng = np.random.default_rng(10 * case + (dtype == I16))
    for k, q in enumerate(QUANT):
        b = _model(op, shape_a, shape_b, dtype, q)
        extreme = bool(k % 2)
        assert_same_as_tflite(b.tflite(), [_data(rng, shape_a, dtype, extreme),
                                           _data(rng, shape_b, dtype, extreme)])


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [I8, I16])
@pytest.mark.parametrize("const_shape", [(), (1,), (1, 1, 1, 1), (1, 1, 1, 5)])
@pytest.mark.parametrize("const_first", [False, True])
def test_minmax_constant_operand(op, dtype, const_shape, const_first):
    """A constant scalar / 1-element / per-channel operand, as the quantizer's b-bit clamps
    use it (the value sweeps the type's extremes and the 4-bit bounds)."""
    rng = np.random.default_rng(7 + len(const_shape) + 3 * const_first)
    info = np.iinfo(dtype)
    x_shape = (2, 3, 4, 5)
    x = np.concatenate([_data(rng, x_shape, dtype).reshape(-1)[:-4],
                        np.array([info.min, info.max, -8, 7], dtype)]).reshape(x_shape)
    for v in (info.min, -8, 0, 7, info.max):
        c = np.full(const_shape, v, dtype)
        if const_shape == (1, 1, 1, 5):
            c = _data(rng, const_shape, dtype)
        q = QUANT[0]
        if const_first:
            b = _model(op, const_shape, x_shape, dtype, q, const_a=c)
        else:
            b = _model(op, x_shape, const_shape, dtype, q, const_b=c)
        got = assert_same_as_tflite(b.tflite(), [x])[0]
        if c.size == 1:  # and it is the clamp it should be
            want = np.maximum(x, c) if op == "MAXIMUM" else np.minimum(x, c)
            assert np.array_equal(got, want)


def test_minmax_clamp_chain_matches_numpy_clip():
    """MAXIMUM then MINIMUM against constant scalars is clip to the 4-bit range."""
    b = GraphBuilder("clamp")
    x = b.input("x", (1, 16, 16), I8, scale=0.1, zero_point=-2)
    lo = b.const("x/qmin", np.array(-8, I8), scales=[0.1], zero_points=[-2])
    hi = b.const("x/qmax", np.array(7, I8), scales=[0.1], zero_points=[-2])
    m = b.activation("x/clamp_lo", (1, 16, 16), I8, scale=0.1, zero_point=-2)
    y = b.activation("x/clamped", (1, 16, 16), I8, scale=0.1, zero_point=-2)
    b.op("MAXIMUM", [x, lo], [m])
    b.op("MINIMUM", [m, hi], [y])
    b.output(y)
    xs = np.arange(-128, 128, dtype=np.int16).astype(I8).reshape(1, 16, 16)
    out = assert_same_as_tflite(b.tflite(), [xs])[0]
    assert np.array_equal(out, np.clip(xs, -8, 7))


def test_minmax_writer_reader_round_trip():
    """The writer emits MaximumMinimumOptions (as TFLite's converter does); the reader gives
    the op back with no attributes, and the bytes are stable."""
    b = _model("MINIMUM", (1, 4), (), I8, QUANT[0], const_b=np.array(3, I8))
    data = b.tflite()
    g = parse_tflite(data)
    assert [(op.type, op.attrs) for op in g.ops] == [("MINIMUM", {})]
    assert g.tensors[g.ops[0].inputs[1]].shape == ()
    assert int(g.tensors[g.ops[0].inputs[1]].data) == 3
    assert serialize_tflite(g) == data


def test_minmax_errors():
    b = GraphBuilder("bad")
    x = b.input("x", (1, 4), I8, scale=0.1, zero_point=0)
    c = b.const("c", np.array([1], I16), scales=[0.1], zero_points=[0])
    y = b.activation("y", (1, 4), I8, scale=0.1, zero_point=0)
    b.op("MAXIMUM", [x, c], [y])
    b.output(y)
    with pytest.raises(ModelError, match=r"MAXIMUM.*input dtypes int8 and int16 differ"):
        hwsim_run(b.tflite(), [np.zeros((1, 4), I8)])
    b = GraphBuilder("bad_shapes")
    x = b.input("x", (2, 3), I8, scale=0.1, zero_point=0)
    x2 = b.input("x2", (4, 3), I8, scale=0.1, zero_point=0)
    y = b.activation("y", (2, 3), I8, scale=0.1, zero_point=0)
    b.op("MINIMUM", [x, x2], [y])
    b.output(y)
    with pytest.raises(ModelError, match=r"do not broadcast"):
        hwsim_run(b.tflite(), [np.zeros((2, 3), I8), np.zeros((4, 3), I8)])
