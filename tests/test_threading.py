"""The threading default of `import hwsim` (hwsim/__init__.py): OMP_WAIT_POLICY=PASSIVE when
the user has not tuned the OpenMP wait, so Numba's idle workers sleep instead of spinning on a
loaded machine; a user's own setting is kept. Checked in subprocesses (the environment is read
once per process), and through libgomp itself: OMP_DISPLAY_ENV=VERBOSE makes it print the
spin count it took when Numba starts its threads (0 for PASSIVE, 300000 when nothing is set:
its OMP_WAIT_POLICY line reads 'PASSIVE' in both cases, so the spin count is what tells).
No timing here: the figures are benchmarks/bench_load.py's.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

# Start Numba's threads through an hwsim prange kernel (bilinear resize, as the engine calls
# it), then report the threading layer and the policy in the environment.
PARALLEL_CALL = """
import os
import hwsim
import numba
import numpy as np
from hwsim.kernels import shape
x = np.zeros((1, 2, 2, 1), dtype=np.int8)
idx = np.zeros(2, dtype=np.int64)
frac = np.zeros(2, dtype=np.int64)
out = np.empty((1, 2, 2, 1), dtype=np.int8)
shape._resize_bilinear(x, idx, idx, frac, idx, idx, frac, np.int64(0), out)
print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY"))
"""


def _env(**user):
    env = {k: v for k, v in os.environ.items()
           if k not in WAIT_VARS + ("OMP_DISPLAY_ENV", "NUMBA_THREADING_LAYER")}
    env.update(user)
    return env


def _python(code, env):
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), r.stderr


def test_import_sets_passive_wait_policy_when_unset():
    out, _ = _python("import os, hwsim; print(os.environ.get('OMP_WAIT_POLICY'))", _env())
    assert out == "PASSIVE"


@pytest.mark.parametrize("var, value", [("OMP_WAIT_POLICY", "ACTIVE"),
                                        ("GOMP_SPINCOUNT", "300000"),
                                        ("KMP_BLOCKTIME", "200")])
def test_a_users_own_wait_setting_is_kept(var, value):
    code = ("import os, hwsim; print(os.environ.get('OMP_WAIT_POLICY'), "
            f"os.environ.get('{var}'))")
    out, _ = _python(code, _env(**{var: value}))
    policy, kept = out.split()
    assert kept == value
    assert policy == (value if var == "OMP_WAIT_POLICY" else "None")


def test_libgomp_runs_hwsim_kernels_with_the_passive_policy():
    out, err = _python(PARALLEL_CALL, _env(OMP_DISPLAY_ENV="VERBOSE"))
    layer, policy = out.split()
    if layer != "omp":
        pytest.skip(f"Numba chose the {layer!r} threading layer here, not OpenMP (libgomp): "
                    "the wait policy does not apply")
    assert policy == "PASSIVE"
    assert "GOMP_SPINCOUNT = '0'" in err


def test_libgomp_keeps_a_users_active_policy():
    out, err = _python(PARALLEL_CALL, _env(OMP_DISPLAY_ENV="VERBOSE",
                                           OMP_WAIT_POLICY="ACTIVE"))
    layer, policy = out.split()
    if layer != "omp":
        pytest.skip(f"Numba chose the {layer!r} threading layer here, not OpenMP (libgomp): "
                    "the wait policy does not apply")
    assert policy == "ACTIVE"
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in err
    assert "GOMP_SPINCOUNT = '0'" not in err
