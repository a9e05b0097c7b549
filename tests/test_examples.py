"""The bundled example network (hwsim.examples): deterministic, valid TFLite, and hwsim gives
exactly TFLite REF's integers on every tensor."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim import examples
from hwsim.frontends.tflite_reader import parse_tflite
from oracle import hwsim_run, tflite_ref

EXAMPLE_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "RESHAPE",
               "FULLY_CONNECTED", "SOFTMAX"]


def ops_missing(ops) -> str | None:
    """Why hwsim cannot run ``ops`` (no lowering registered for some), or None."""
    import hwsim.lower  # noqa: F401  (registers every family: one that does not import fails)
    from hwsim import registry
    missing = [o for o in ops if o not in registry.LOWERINGS]
    return f"no lowering yet for {missing}" if missing else None


def needs_example_ops():
    """Every op of the example has a lowering: a missing one is a failure, never a skip."""
    why = ops_missing(EXAMPLE_OPS)
    assert why is None, why


@pytest.fixture(scope="module")
def model_bytes():
    return examples.example_model_bytes()


def test_same_seed_same_bytes(tmp_path, model_bytes):
    assert examples.example_model_bytes() == model_bytes
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    examples.write_example(a)
    examples.write_example(b)
    assert a.read_bytes() == b.read_bytes() == model_bytes
    assert examples.example_model_bytes(seed=1) != model_bytes
    assert np.array_equal(examples.example_input(3), examples.example_input(3))
    assert not np.array_equal(examples.example_input(3), examples.example_input(4))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".hwsim-")] == []


def test_structure(model_bytes):
    g = parse_tflite(model_bytes, "example")
    assert [op.type for op in g.ops] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "CONV_2D", "DEPTHWISE_CONV_2D",
        "CONV_2D", "ADD", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    x = g.tensors[g.inputs[0]]
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.int8
    assert np.isclose(x.quant.scale, 1 / 255) and x.quant.zero_point == -128
    c0 = g.ops[0]
    assert c0.attrs["padding"] == "SAME" and c0.attrs["stride_w"] == 2
    assert c0.attrs["fused_activation_function"] == "RELU6"
    assert g.ops[1].attrs["fused_activation_function"] == "RELU"
    assert g.tensors[g.ops[2].inputs[1]].shape[1:3] == (1, 1)
    # residual: the ADD reads the first conv's output
    assert g.ops[0].outputs[0] in g.ops[3].inputs
    for op in g.ops:
        if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            xin = g.tensors[op.inputs[0]]
            w, b = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
            assert w.dtype == np.int8 and b.dtype == np.int32
            assert w.data.min() >= -127 and w.data.max() <= 127
            assert np.all(w.quant.zero_points == 0) and np.all(b.quant.zero_points == 0)
            per_channel = op.type != "FULLY_CONNECTED"
            axis = 3 if op.type == "DEPTHWISE_CONV_2D" else 0
            assert w.quant.per_channel == per_channel
            if per_channel:
                assert w.quant.axis == axis and len(w.quant.scales) == w.shape[axis]
                # symmetric: every channel uses the full [-127, 127] magnitude
                red = tuple(a for a in range(4) if a != axis)
                assert np.all(np.abs(w.data.astype(int)).max(axis=red) == 127)
            expect = (np.float32(xin.quant.scale) * w.quant.scales).astype(np.float32)
            assert np.array_equal(b.quant.scales, expect)
    out = g.tensors[g.outputs[0]]
    assert out.quant.scale == 1 / 256 and out.quant.zero_point == -128
    assert examples.example_macs() == 1_214_976


def test_input_image_matches_npy():
    from hwsim.inputs import pixels_to_input
    from hwsim.program import TensorInfo
    info = TensorInfo(0, "input", (1, 32, 32, 3), np.dtype(np.int8),
                      np.array([1 / 255], np.float32), np.array([-128], np.int64))
    for seed in (0, 5):
        img = examples.example_image(seed)
        assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
        assert np.array_equal(pixels_to_input(img, info, "real"), examples.example_input(seed))
        assert np.array_equal(pixels_to_input(img, info, "raw"), examples.example_input(seed))


def test_tflite_ref_outputs_meaningful(model_bytes):
    g = parse_tflite(model_bytes, "example")
    winners = set()
    for seed in range(6):
        ref = tflite_ref(model_bytes, examples.example_input(seed), all_tensors=True)
        probs = ref[g.outputs[0]].astype(int)
        assert probs.shape == (1, 10)
        assert abs(int((probs + 128).sum()) - 256) <= 10  # a probability distribution
        assert probs.max() < 127  # not one-hot
        winners.add(int(np.argmax(probs)))
        for t in g.tensors:  # no activation saturates at the top of its range
            if t.data is None and t.index in ref and t.index != g.inputs[0]:
                assert np.mean(ref[t.index] == 127) < 0.02, t.name
    assert len(winners) >= 2  # the class depends on the input


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hwsim_equals_tflite_ref_on_every_tensor(model_bytes, seed):
    needs_example_ops()
    x = examples.example_input(seed)
    ref = tflite_ref(model_bytes, x, all_tensors=True)
    res = hwsim_run(model_bytes, x, trace=True)
    got = res.trace.tensors
    n = len(parse_tflite(model_bytes).tensors)
    assert set(got) == set(range(n))
    compared = 0
    for i, r in ref.items():
        if i >= n:  # interpreter scratch tensors
            continue
        g = got[i]
        assert g.dtype == r.dtype and g.shape == r.shape, f"tensor {i}"
        if not np.array_equal(g, r):
            bad = np.argwhere(g != r)
            j = tuple(bad[0])
            raise AssertionError(f"tensor {i}: {len(bad)} of {r.size} differ; first at {j}: "
                                 f"hwsim {g[j]} vs TFLite REF {r[j]}")
        compared += 1
    assert compared == n
    assert np.array_equal(res.outputs[0], ref[parse_tflite(model_bytes).outputs[0]])
    # accumulators of every CONV/DEPTHWISE/FC layer
    assert sorted(res.trace.accumulators) == [0, 1, 2, 4, 5, 6, 10]
