"""Independent oracle for tests: TFLite's reference kernels (ai-edge-litert, BUILTIN_REF).

Also runs the same model bytes through hwsim, so a test compares the two with equality.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

litert = pytest.importorskip(
    "ai_edge_litert.interpreter",
    reason="ai-edge-litert is not installed (pip install -e .[dev]); it is the TFLite "
           "reference-kernel oracle these tests compare against")


def tflite_ref(model_bytes: bytes, inputs, all_tensors: bool = False):
    """Run TFLite's reference kernels. Returns the outputs, or {tensor index: array}."""
    it = litert.Interpreter(model_content=model_bytes,
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                            experimental_preserve_all_tensors=all_tensors)
    it.allocate_tensors()
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    if all_tensors:
        out = {}
        for d in it.get_tensor_details():
            try:
                out[d["index"]] = it.get_tensor(d["index"]).copy()
            except ValueError:
                pass
        return out
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def hwsim_run(model_bytes: bytes, inputs, trace: bool = False):
    import hwsim
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "model.tflite")
        with open(p, "wb") as f:
            f.write(model_bytes)
        net = hwsim.load(p)
    return net.run(inputs, trace=trace)


def assert_same_as_tflite(model_bytes: bytes, inputs) -> list[np.ndarray]:
    """hwsim's outputs equal TFLite REF's exactly (dtype, shape and every integer)."""
    ref = tflite_ref(model_bytes, inputs)
    got = hwsim_run(model_bytes, inputs).outputs
    assert len(ref) == len(got)
    for k, (r, g) in enumerate(zip(ref, got)):
        assert g.dtype == r.dtype, f"output {k}: dtype {g.dtype} vs TFLite {r.dtype}"
        assert g.shape == r.shape, f"output {k}: shape {g.shape} vs TFLite {r.shape}"
        if not np.array_equal(g, r):
            bad = np.argwhere(g != r)
            i = tuple(bad[0])
            raise AssertionError(
                f"output {k}: {len(bad)} of {r.size} elements differ; first at {i}: "
                f"hwsim {g[i]} vs TFLite REF {r[i]}")
    return ref
