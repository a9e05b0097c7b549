"""Threads under load (hwsim/kernels/threads.py, hwsim/__init__.py): the engine runs on the
CPUs other processes leave free, keeping libgomp's spin; where it cannot adapt (the user fixed
NUMBA_NUM_THREADS, or no /proc) `import hwsim` sets OMP_WAIT_POLICY=PASSIVE; a user's own
setting is kept. Environment cases run in subprocesses (it is read once per process) and are
checked through libgomp itself: OMP_DISPLAY_ENV=VERBOSE makes it print the spin count it took
when Numba starts its threads (0 for PASSIVE, 300000 for its default; its OMP_WAIT_POLICY
line reads 'PASSIVE' in both cases, so the spin count is what tells).
No timing here: the figures are benchmarks/bench_load.py's.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

import hwsim
from hwsim import examples
from hwsim.kernels import threads

WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
needs_proc = pytest.mark.skipif(not threads.available(),
                                reason="no /proc/loadavg here: hwsim does not adapt the count")

# Start Numba's threads through an hwsim prange kernel (bilinear resize, as the engine calls
# it), then report the threading layer and the policy in the environment.
PARALLEL_CALL = """
import os
import hwsim
import numba
import numpy as np
from hwsim.kernels import elementwise
# a kernel run on Numba's threads (fnptr.run_items_par: shape._resize_bilinear's prange is not
# parallelised: round_shift's raise gives its loop a second exit), so the call starts the
# threading layer
a = np.zeros(8, dtype=np.int8)
out = np.empty(8, dtype=np.int8)
elementwise._lut_parallel(a, a, out, np.zeros(65540, dtype=np.int8), 2)
print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY"))
"""


def _env(**user):
    env = {k: v for k, v in os.environ.items()
           if k not in WAIT_VARS + ("OMP_DISPLAY_ENV", "NUMBA_THREADING_LAYER",
                                    "NUMBA_NUM_THREADS")}
    env.update(user)
    return env


def _python(code, env):
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), r.stderr


def _layer_and_policy(out):
    layer, policy = out.split()
    if layer != "omp":
        pytest.skip(f"Numba chose the {layer!r} threading layer here, not OpenMP (libgomp): "
                    "the wait policy does not apply")
    return policy


# -- the thread count ----------------------------------------------------------------------
def test_threads_for_leaves_the_busy_cpus_to_others():
    assert threads.threads_for(0, 2, 2) == 2      # quiet machine: every CPU
    assert threads.threads_for(1, 2, 2) == 1      # one other runnable thread on 2 CPUs
    assert threads.threads_for(2, 2, 2) == 1      # two busy processes: at least one thread
    assert threads.threads_for(9, 2, 2) == 1
    assert threads.threads_for(3, 16, 8) == 8     # capped by NUMBA_NUM_THREADS
    assert threads.threads_for(12, 16, 16) == 4


@needs_proc
def test_others_runnable_sees_a_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        seen = [threads.others_runnable() for _ in range(20)]
    finally:
        busy.kill()
        busy.wait()
    assert all(isinstance(n, int) and n >= 0 for n in seen)
    assert max(seen) >= 1   # the busy process is runnable all the time


@needs_proc
def test_adapt_follows_the_load_in_this_thread(monkeypatch):
    if threads.USER_FIXED or numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("NUMBA_NUM_THREADS is set (or 1) in this environment: nothing to adapt")
    monkeypatch.setattr(threads, "_local", type(threads._local)())
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    top = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(top)
    try:
        monkeypatch.setattr(threads, "others_runnable", lambda: 2)
        threads.adapt(force=True)
        assert numba.get_num_threads() == 1
        monkeypatch.setattr(threads, "others_runnable", lambda: 0)
        threads.adapt()                              # within RESAMPLE_S: no new look
        assert numba.get_num_threads() == 1
        threads.adapt(force=True)
        assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(top)


@needs_proc
def test_adapt_keeps_a_count_the_user_set(monkeypatch):
    if threads.USER_FIXED or numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("NUMBA_NUM_THREADS is set (or 1) in this environment: nothing to adapt")
    monkeypatch.setattr(threads, "_local", type(threads._local)())
    monkeypatch.setattr(threads, "others_runnable", lambda: 0)
    top = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(1)                     # the user's choice, before any run
    try:
        threads.adapt(force=True)
        assert numba.get_num_threads() == 1
        threads.adapt(force=True)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(top)


@needs_proc
def test_a_run_under_load_uses_one_thread_and_the_same_integers(monkeypatch, tmp_path):
    """The engine calls adapt(): a run 'under load' (two others runnable, faked) runs on one
    thread and gives the same outputs as one on every CPU."""
    if threads.USER_FIXED or numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("NUMBA_NUM_THREADS is set (or 1) in this environment: nothing to adapt")
    model = tmp_path / examples.EXAMPLE_MODEL_FILE
    model.write_bytes(examples.example_model_bytes())
    net = hwsim.load(model)
    x = examples.example_input()
    monkeypatch.setattr(threads, "_local", type(threads._local)())
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    top = numba.config.NUMBA_NUM_THREADS
    try:
        monkeypatch.setattr(threads, "others_runnable", lambda: 0)
        threads.adapt(force=True)
        quiet = net.run(x).outputs[0]
        assert numba.get_num_threads() == 2
        monkeypatch.setattr(threads, "others_runnable", lambda: 2)
        monkeypatch.setattr(threads, "RESAMPLE_S", 0.0)
        loaded = net.run(x).outputs[0]
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(top)
    assert np.array_equal(quiet, loaded)


# -- the wait policy ---------------------------------------------------------------------
@needs_proc
def test_import_leaves_the_spin_when_hwsim_adapts_the_count():
    out, err = _python(PARALLEL_CALL, _env(OMP_DISPLAY_ENV="VERBOSE"))
    assert _layer_and_policy(out) == "None"
    assert "GOMP_SPINCOUNT = '300000'" in err


def test_import_sets_passive_when_the_user_fixed_the_thread_count():
    out, err = _python(PARALLEL_CALL, _env(OMP_DISPLAY_ENV="VERBOSE", NUMBA_NUM_THREADS="2"))
    assert _layer_and_policy(out) == "PASSIVE"
    assert "GOMP_SPINCOUNT = '0'" in err


@pytest.mark.parametrize("var, value", [("OMP_WAIT_POLICY", "ACTIVE"),
                                        ("GOMP_SPINCOUNT", "300000"),
                                        ("KMP_BLOCKTIME", "200")])
def test_a_users_own_wait_setting_is_kept(var, value):
    code = ("import os, hwsim; print(os.environ.get('OMP_WAIT_POLICY'), "
            f"os.environ.get('{var}'))")
    out, _ = _python(code, _env(NUMBA_NUM_THREADS="2", **{var: value}))
    policy, kept = out.split()
    assert kept == value
    assert policy == (value if var == "OMP_WAIT_POLICY" else "None")


def test_libgomp_keeps_a_users_active_policy():
    out, err = _python(PARALLEL_CALL, _env(OMP_DISPLAY_ENV="VERBOSE", NUMBA_NUM_THREADS="2",
                                           OMP_WAIT_POLICY="ACTIVE"))
    assert _layer_and_policy(out) == "ACTIVE"
    assert "GOMP_SPINCOUNT = '30000000000'" in err


def test_count_reads_numbas_thread_count():
    """threads.count() (the kernels' per-call read, without numba.get_num_threads' lock) is
    Numba's thread-local count after every change, in this thread and in another."""
    import threading
    old = numba.get_num_threads()
    try:
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            assert threads.count() == numba.get_num_threads() == n
        seen = []
        t = threading.Thread(target=lambda: seen.append((threads.count(), numba.get_num_threads())))
        t.start()
        t.join()
        assert seen[0][0] == seen[0][1]
    finally:
        numba.set_num_threads(old)
