"""The engine's call plan (hwsim/engine.py ``_Arena``, the kernels' ``bind`` steps in
hwsim.registry): untraced runs write every bound layer's output into a preallocated buffer,
shared by tensors whose lives do not overlap.

The bound calls must give the integers of the plain path (the traced run calls every kernel as
written, with fresh arrays), results must not change when the buffers are reused by the next
run or by a run in another thread, and no two tensors alive at once may share memory. The
kernels' own tests (test_ops_*.py, tests through TFLite) run untraced, so they go through the
bound calls too.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import hwsim
from hwsim import examples


@pytest.fixture(scope="module")
def example_net(tmp_path_factory):
    model = tmp_path_factory.mktemp("plan") / examples.EXAMPLE_MODEL_FILE
    model.write_bytes(examples.example_model_bytes())
    return hwsim.load(model)


def _inputs(n):
    rng = np.random.default_rng(5)
    xs = [examples.example_input(seed) for seed in range(n - 2)]
    xs.append(np.full(examples.INPUT_SHAPE, -128, np.int8))   # extremes
    xs.append(rng.choice(np.array([-128, 127], np.int8), examples.INPUT_SHAPE))
    return xs


def _plain(net, x):
    return net.run(x, trace=True).outputs


def _arena(net):
    net.run(examples.example_input())
    return net._arenas[-1]


def test_the_plan_binds_the_example_layers(example_net):
    ar = _arena(example_net)
    bound = [layer.op for layer, fn, *_ in ar.steps if fn is not None]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= set(bound)


def test_plan_runs_equal_the_plain_run(example_net):
    for x in _inputs(5):
        got = example_net.run(x).outputs
        want = _plain(example_net, x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert np.array_equal(g, w)


def test_a_result_survives_the_next_run(example_net):
    x1, x2 = _inputs(4)[:2]
    first = example_net.run(x1).outputs
    kept = [o.copy() for o in first]
    second = example_net.run(x2).outputs
    assert not np.array_equal(kept[0], second[0])   # the inputs differ enough to tell
    for a, b in zip(first, kept):
        assert np.array_equal(a, b)
    assert all(not np.shares_memory(a, b) for a, b in zip(first, second))


def test_runs_in_threads_take_their_own_buffers(example_net):
    xs = _inputs(6)
    want = [_plain(example_net, x)[0] for x in xs]
    got: dict[tuple[int, int], np.ndarray] = {}
    barrier = threading.Barrier(3)

    def worker(t):
        barrier.wait()
        for rep in range(4):
            for k, x in enumerate(xs):
                got[(t, rep * len(xs) + k)] = (k, example_net.run(x).outputs[0])

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(got) == 3 * 4 * len(xs)
    for k, y in got.values():
        assert np.array_equal(y, want[k])


def test_tensors_alive_at_once_never_share_memory(example_net):
    ar = _arena(example_net)
    layers = [s[0] for s in ar.steps]
    born, last = {}, {}
    arrays = {}
    for k, (layer, fn, _kern, _data, _fast, outs, _check, _done) in enumerate(ar.steps):
        for i in layer.inputs:
            last[i] = k
        if fn is not None:
            for t, o in zip(layer.outputs, outs):
                born[t], arrays[t] = k, o
    for t in example_net.program.outputs:
        last[t] = len(layers)
    shared = 0
    ts = sorted(arrays)
    for a in ts:
        for b in ts:
            if a < b and np.shares_memory(arrays[a], arrays[b]):
                shared += 1
                # one must be dead (last read) no later than the other is written
                assert last.get(a, born[a]) <= born[b] or last.get(b, born[b]) <= born[a], (a, b)
    assert shared > 0   # the example's chain does reuse buffers


def test_an_input_the_plan_did_not_expect_takes_the_kernel_path(example_net):
    ar = _arena(example_net)
    x = _inputs(3)[0]
    xf = np.asfortranarray(x)      # same values, not C-contiguous: the first bound call's check
    assert not xf.flags.c_contiguous
    got = ar.run([xf])
    for g, w in zip(got, _plain(example_net, x)):
        assert np.array_equal(g, w)


def test_profile_times_every_layer_of_the_schedule(example_net):
    x = examples.example_input()
    times = example_net.profile(x)
    ar = _arena(example_net)
    assert [layer for layer, _ in times] == [s[0] for s in ar.steps]
    assert all(dt >= 0 for _, dt in times)
