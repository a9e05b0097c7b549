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
from hwsim import engine, examples


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
    bound = [layer.op for _call, layer, fn, *_ in ar.steps if fn is not None]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= set(bound)


def _kernel_signatures() -> dict:
    import sys

    from numba.core.dispatcher import Dispatcher
    return {(m, name): len(v.signatures) for m, mod in list(sys.modules.items())
            if m.startswith("hwsim.kernels") for name, v in vars(mod).items() if isinstance(v, Dispatcher)}


def test_bound_steps_call_compiled_overloads_without_new_specializations(example_net):
    """A step with every argument bound calls the kernel's compiled overload directly
    (fnptr.direct: no dispatcher types the arguments on each call). It is the overload a call
    through the dispatcher takes: calling every bound layer the dispatcher's way afterwards
    compiles nothing more, and gives the same outputs."""
    import functools

    from numba.core.dispatcher import Dispatcher
    ar = _arena(example_net)
    direct = [c for c, *_ in ar.steps if isinstance(c, functools.partial)
              and not isinstance(c.func, Dispatcher) and c.func.__class__.__name__ != "function"]
    assert direct, "no step calls a compiled overload directly"
    before = _kernel_signatures()
    for c, layer, fn, _kern, _data, _fast, outs, check, _done in ar.steps:
        if c is None or fn is None or outs is None:
            continue
        ins = [ar.views[i] for i in layer.inputs]
        c()
        want = [o.copy() for o in outs]
        fn(ins)  # the bound call: the kernel through its dispatcher
        assert all(np.array_equal(o, w) for o, w in zip(outs, want)), layer.op
    assert _kernel_signatures() == before


def test_repeat_call_binds_only_for_the_same_arrays():
    """fnptr.RepeatCall goes direct once the same arrays come twice in a row, and back to the
    dispatcher (binding nothing) when other arrays come: a network's input layer gets the
    user's new array on every run."""
    import numba

    from hwsim.kernels.fnptr import RepeatCall

    @numba.njit
    def scale(a, k, out):
        for i in range(a.shape[0]):
            out[i] = a[i] * k

    out = np.empty(4, np.int64)
    rc = RepeatCall(scale)
    a, b = np.arange(4), np.arange(4) + 10
    rc((a,), a, 3, out)
    assert rc.bound is None and out.tolist() == [0, 3, 6, 9]
    rc((a,), a, 2, out)  # the same array: bound (with these arguments) and called
    assert rc.bound is not None and out.tolist() == [0, 2, 4, 6]
    rc((a,), a, 2, out)
    assert out.tolist() == [0, 2, 4, 6]
    rc((b,), b, 2, out)  # another array: the dispatcher, the binding dropped
    assert rc.bound is None and out.tolist() == [20, 22, 24, 26]
    assert len(scale.signatures) == 1


def test_direct_leaves_a_call_without_its_defaulted_argument_to_the_dispatcher():
    """fnptr.direct of a call that omits a parameter with a default (mac_tiles._dw_serial's
    ``part``) still runs: through the dispatcher, which types the default itself."""
    import numba

    from hwsim.kernels.fnptr import direct

    @numba.njit
    def fill(out, v, part=None):
        if part is None:
            out[:] = v
        else:
            out[part[0]:part[1]] = v

    out = np.zeros(4, np.int64)
    direct(fill, out, 7)()
    assert out.tolist() == [7, 7, 7, 7]
    direct(fill, out, 1, (1, 3))()
    assert out.tolist() == [7, 1, 1, 7]


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
    layers = [s[1] for s in ar.steps]
    born, last = {}, {}
    arrays = {}
    alias_of = {}
    for k, (_call, layer, fn, _kern, _data, _fast, outs, _check, _done) in enumerate(ar.steps):
        for i in layer.inputs:
            last[i] = k
        if fn is engine._noop:
            alias_of[layer.outputs[0]] = layer.inputs[0]
        if fn is not None:
            for t, o in zip(layer.outputs, outs):
                born[t], arrays[t] = k, o
    for t, src in list(alias_of.items()):  # an alias lives as long as its source's buffer
        last[src] = max(last.get(src, born[src]), last.get(t, born[t]))
    for t in example_net.program.outputs:
        last[t] = len(layers)
    shared = 0
    ts = sorted(arrays)
    def root(t):
        while t in alias_of:
            t = alias_of[t]
        return t
    for a in ts:
        for b in ts:
            if a < b and root(a) != root(b) and np.shares_memory(arrays[a], arrays[b]):
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
    assert [layer for layer, _ in times] == [s[1] for s in ar.steps]
    assert all(dt >= 0 for _, dt in times)


def _net(model_bytes, tmp_path, name):
    p = tmp_path / f"{name}.tflite"
    p.write_bytes(model_bytes)
    return hwsim.load(p)


def _small_op_models():
    """Single-op models of the kernels with a bind step other than the MAC layers, on shapes
    that take each of their paths (int8 ADD by table, serial and threaded, direct; int16 ADD
    power-of-two; MEAN in place; PAD in one pass; the 3-channel TRANSPOSE; RESHAPE; 8-bit
    SOFTMAX; POOL; CONCATENATION with a constant operand)."""
    from test_ops_elementwise import _binary_model
    from test_ops_shape import single_op
    q8 = ((0.05, -3), (0.04, 6), (0.07, 2))
    yield "add_lut_threads", _binary_model("ADD", (1, 56, 56, 24), (1, 56, 56, 24), np.int8,
                                           *q8).tflite()
    yield "sub_lut", _binary_model("SUB", (1, 14, 14, 64), (1, 14, 14, 64), np.int8,
                                   *q8, act="RELU").tflite()
    yield "add_direct", _binary_model("ADD", (1, 3, 5, 7), (1, 3, 5, 7), np.int8, *q8).tflite()
    yield "add_pot16", _binary_model("ADD", (1, 4, 4, 9), (1, 4, 4, 9), np.int16,
                                     (2 ** -10, 0), (2 ** -12, 0), (2 ** -10, 0),
                                     pot_scale_int16=True).tflite()
    yield "add_general16", _binary_model("ADD", (2, 5, 3), (2, 5, 3), np.int16,
                                         (1 / 32768, 0), (3 / 32768, 0), (1 / 16384, 0),
                                         pot_scale_int16=False).tflite()
    yield "pad_hw", single_op("PAD", (1, 5, 7, 3), np.int8, (1, 8, 10, 3), np.int8,
                              [np.array([[0, 0], [1, 2], [3, 0], [0, 0]], np.int32)],
                              x_q=(0.1, -7), y_q=(0.1, -7))
    yield "pad_all", single_op("PAD", (2, 4, 3, 5), np.int16, (3, 6, 6, 8), np.int16,
                               [np.array([[1, 0], [0, 2], [3, 0], [1, 2]], np.int32)],
                               x_q=(0.1, 0), y_q=(0.1, 0))
    yield "transpose_nchw", single_op("TRANSPOSE", (1, 3, 9, 7), np.int8, (1, 9, 7, 3),
                                      np.int8, [np.array([0, 2, 3, 1], np.int32)])
    yield "transpose_4d", single_op("TRANSPOSE", (2, 5, 4, 6), np.int8, (6, 4, 2, 5),
                                    np.int8, [np.array([3, 2, 0, 1], np.int32)])
    yield "reshape", single_op("RESHAPE", (1, 4, 4, 3), np.int8, (1, 48), np.int8,
                               [np.array([1, 48], np.int32)])
    for name, shape, axes, out in (("mean_hw", (1, 7, 7, 40), [1, 2], (1, 1, 1, 40)),
                                   ("mean_last", (2, 3, 10), [2], (2, 3, 1)),
                                   ("mean_mixed", (2, 3, 4, 5), [1, 3], (2, 1, 4, 1))):
        yield name, single_op("MEAN", shape, np.int8, out, np.int8,
                              [np.array(axes, np.int32)], x_q=(0.05, 10), y_q=(0.02, -5),
                              keep_dims=True)
    from test_ops_elementwise import GraphBuilder
    b = GraphBuilder("concat")
    xa = b.input("a", (1, 4, 5, 3), np.int8, scale=0.05, zero_point=2)
    xb = b.input("b", (1, 4, 5, 6), np.int8, scale=0.05, zero_point=2)
    xc = b.const("c", np.arange(40, dtype=np.int8).reshape(1, 4, 5, 2), scales=[0.05],
                 zero_points=[2])
    y = b.activation("y", (1, 4, 5, 11), np.int8, scale=0.05, zero_point=2)
    b.op("CONCATENATION", [xa, xc, xb], [y], axis=3, fused_activation_function="NONE")
    b.output(y)
    yield "concat_const", b.tflite()
    from test_ops_activation import _softmax_model
    yield "softmax_i8", _softmax_model(np.int8, np.int8, (3, 2, 64), 0.05, -3, 1 / 256, -128, 1.0)
    yield "softmax_u8_i16", _softmax_model(np.uint8, np.int16, (2, 300), 0.05, 100, 1 / 65536,
                                           -32768, 1.0)
    yield "avg_pool", single_op("AVERAGE_POOL_2D", (1, 9, 9, 5), np.int8, (1, 5, 5, 5),
                                np.int8, padding="SAME", stride_h=2, stride_w=2,
                                filter_height=3, filter_width=3,
                                fused_activation_function="NONE")


def test_a_constant_operand_survives_the_buffer_s_other_tensors(tmp_path):
    """a1 = x + x; a2 = a1 + a1; y = CONCATENATION(v, constant); z = y + a2: y takes the
    buffer a1 held earlier in the same run, so its constant columns must be written on every
    call (the second and third runs must equal the plain one too)."""
    from test_ops_elementwise import GraphBuilder
    b = GraphBuilder("concat_reuse")
    q = dict(scale=0.05, zero_point=2)
    x = b.input("x", (1, 8, 8, 16), np.int8, **q)
    v = b.input("v", (1, 8, 8, 12), np.int8, **q)
    a1 = b.activation("a1", (1, 8, 8, 16), np.int8, **q)
    b.op("ADD", [x, x], [a1], fused_activation_function="NONE")
    a2 = b.activation("a2", (1, 8, 8, 16), np.int8, **q)
    b.op("ADD", [a1, a1], [a2], fused_activation_function="NONE")
    c = b.const("c", np.full((1, 8, 8, 4), 77, np.int8), scales=[0.05], zero_points=[2])
    y = b.activation("y", (1, 8, 8, 16), np.int8, **q)
    b.op("CONCATENATION", [v, c], [y], axis=3, fused_activation_function="NONE")
    z = b.activation("z", (1, 8, 8, 16), np.int8, **q)
    b.op("ADD", [y, a2], [z], fused_activation_function="NONE")
    b.output(z)
    net = _net(b.tflite(), tmp_path, "concat_reuse")
    rng = np.random.default_rng(3)
    for _ in range(3):
        xs = [rng.integers(-128, 128, (1, 8, 8, 16)).astype(np.int8),
              rng.integers(-128, 128, (1, 8, 8, 12)).astype(np.int8)]
        assert np.array_equal(net.run(xs).outputs[0], net.run(xs, trace=True).outputs[0])
    steps = net._arenas[-1].steps
    concat = next(s for s in steps if s[1].op == "CONCATENATION")
    assert concat[2] is not None                                  # bound
    assert np.shares_memory(concat[6][0], steps[0][6][0])         # in a1's buffer


@pytest.mark.parametrize("name,model", list(_small_op_models()), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_bound_small_ops_equal_the_plain_kernels(name, model, tmp_path):
    net = _net(model, tmp_path, name)
    rng = np.random.default_rng(len(name))
    for mode in ("random", "extreme"):
        xs = []
        for info in net.input_infos:
            lim = np.iinfo(info.dtype)
            if mode == "random":
                xs.append(rng.integers(lim.min, lim.max, info.shape, endpoint=True)
                          .astype(info.dtype))
            else:
                xs.append(rng.choice(np.array([lim.min, lim.max], info.dtype), info.shape))
        got = net.run(xs).outputs
        want = net.run(xs, trace=True).outputs
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w)
    bound = [fn is not None for _c, _l, fn, *_r in net._arenas[-1].steps]
    # MEAN over axes that are not one block transposes: no bind; a RESHAPE of the network's
    # input has no buffer to alias; every other layer is bound
    assert bound == [name not in ("mean_mixed", "reshape")], name


def test_a_reshape_aliases_its_input_buffer(example_net):
    """The example's RESHAPE (after the pooling) is no call: its output is a view of its
    input's buffer, and the run still equals the plain one (test_plan_runs_equal_...)."""
    ar = _arena(example_net)
    steps = [s for s in ar.steps if s[1].op == "RESHAPE"]
    assert steps
    for _call, layer, fn, _kern, _data, _fast, outs, _check, _done in steps:
        assert fn is engine._noop
        src = next(s[6][s[1].outputs.index(layer.inputs[0])] for s in ar.steps
                   if layer.inputs[0] in s[1].outputs)
        assert np.shares_memory(outs[0], src)


def test_input_views_are_remade_only_for_other_arrays():
    from hwsim.registry import InputViews
    a, b = np.arange(12, dtype=np.int8).reshape(3, 4), np.zeros((2, 6), np.int8)
    views = InputViews((12,), (3, 4))
    first = views([a, b])
    assert [v.shape for v in first] == [(12,), (3, 4)]
    assert views([a, b]) is first                     # the same buffers: nothing remade
    c = a.copy()
    c[0, 0] = 99
    again = views([c, b])                             # another array: remade from it
    assert again is not first and again[0][0] == 99 and np.shares_memory(again[0], c)


@pytest.mark.parametrize("n,h,w,cin,cout,k,stride,pad,groups", [
    (2, 5, 7, 16, 24, 1, 1, 0, 1),      # pointwise, the batch folded into the rows
    (1, 9, 9, 3, 8, 3, 2, 1, 1),        # odd input depth, stride, padding
    (1, 8, 8, 8, 12, 3, 1, 1, 2),       # groups
    (1, 28, 28, 64, 96, 1, 1, 0, 1),    # >= 1 M MACs: the threaded kernel where there are threads
])
def test_bound_conv_call_equals_the_conv_kernel_path(n, h, w, cin, cout, k, stride, pad, groups):
    """mac.conv2d_bound_call (the CONV_2D bind's call, argument list made once) against
    mac.conv2d_acc with the same fused requantization (its per-call path, _conv_exec)."""
    from hwsim.kernels import mac
    from hwsim.kernels.requant import split_shifts
    from hwsim.params import RequantParams
    from hwsim.vocab import RequantScheme
    rng = np.random.default_rng(n * 100 + cin + cout)
    wt = rng.integers(-127, 128, (cout, k, k, cin // groups)).astype(np.int8)
    bias = rng.integers(-50000, 50000, cout).astype(np.int32)
    rq = RequantParams(act_min=-128, act_max=127, out_zp=-5, scheme=RequantScheme.tflite_double,
                       multiplier=rng.integers(1 << 30, 1 << 31, cout).astype(np.int64),
                       shift=rng.integers(-12, -6, cout).astype(np.int64))
    fq = mac.fused_requant(split_shifts(rq, cout).cp, rq.out_zp, rq.act_min, rq.act_max)
    pk = mac.pack_conv2d_weights(wt, groups)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    geo = (stride, stride, 1, 1, pad, pad, oh, ow)
    for off in (3, -100):
        x = rng.integers(-128, 128, (n, h, w, cin)).astype(np.int8)
        want = mac.conv2d_acc(x, pk, bias, off, *geo, groups, requant=fq)
        plan = mac._conv_plan(x.shape, False, pk, bias, off, *geo, groups)
        out = np.empty((n, oh, ow, cout), np.int8)
        mac.conv2d_bound_call(plan, out, fq)(x)
        assert np.array_equal(out, want)


@pytest.mark.parametrize("h,w,cin,dm,k,stride,pad", [
    (9, 9, 40, 1, 3, 1, 1),      # >= 32 channels, 3x3: the in-place kernel (AVX-512 CPUs)
    (8, 7, 48, 1, 5, 2, 2),      # >= 32 channels, 5x5: the 32-channel band kernel
    (9, 9, 8, 2, 3, 2, 1),       # 16 channels with a depth multiplier: the 16-channel kernel
    (56, 56, 144, 1, 3, 1, 1),   # >= 1 M MACs: threaded where there are threads
])
def test_bound_depthwise_call_equals_the_depthwise_kernel_path(h, w, cin, dm, k, stride, pad):
    """mac.depthwise_bound_call (the DEPTHWISE_CONV_2D bind's call) against
    mac.depthwise_conv2d_acc with the same fused requantization (_dw_exec per call)."""
    from hwsim.kernels import mac
    from hwsim.kernels.requant import split_shifts
    from hwsim.params import RequantParams
    from hwsim.vocab import RequantScheme
    rng = np.random.default_rng(h * w + cin + k)
    cout = cin * dm
    wt = rng.integers(-127, 128, (1, k, k, cout)).astype(np.int8)
    bias = rng.integers(-50000, 50000, cout).astype(np.int32)
    rq = RequantParams(act_min=-128, act_max=127, out_zp=7, scheme=RequantScheme.tflite_double,
                       multiplier=rng.integers(1 << 30, 1 << 31, cout).astype(np.int64),
                       shift=rng.integers(-10, -5, cout).astype(np.int64))
    fq = mac.fused_requant(split_shifts(rq, cout).cp, rq.out_zp, rq.act_min, rq.act_max)
    pk = mac.pack_depthwise_weights(wt, dm)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    geo = (stride, stride, 1, 1, pad, pad, oh, ow)
    for off in (5, -128):
        x = rng.integers(-128, 128, (1, h, w, cin)).astype(np.int8)
        want = mac.depthwise_conv2d_acc(x, pk, bias, off, *geo, dm, requant=fq)
        head = mac._dw_head(pk, bias, off, dm, k, k, *geo, fq)
        out = np.empty((1, oh, ow, cout), np.int8)
        mac.depthwise_bound_call(head, out.size * k * k, out, fq)(x)
        assert np.array_equal(out, want)
