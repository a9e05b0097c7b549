"""hwsim.kernels.compile_notice: one line on stderr when hwsim's kernels compile (cold Numba
cache), on a terminal or when forced; nothing on a warm cache, for a user's own Numba
functions, or when stderr is not a terminal. Each case runs in a subprocess with a fresh
NUMBA_CACHE_DIR, so the kernels really compile."""
from __future__ import annotations

import os
import pty
import subprocess
import sys

import numpy as np

from hwsim import examples
from hwsim.kernels.compile_notice import MESSAGE

# Two hwsim kernels compile (two notices would be wrong): MAXIMUM/MINIMUM, small and quick.
TWO_KERNELS = """
import numpy as np
from hwsim.kernels import minmax
a = np.arange(10, dtype=np.int8)
out = np.empty_like(a)
minmax._maximum_minimum(a, a[::-1].copy(), out, True)
minmax._maximum_minimum_scalar(a, np.int8(3), out, False)
print(out.tolist())
"""

# A Numba function that is not hwsim's compiles after the notice is installed.
USER_FUNCTION = """
import numba
import hwsim.kernels
@numba.njit
def twice(x):
    return 2 * x
print(twice(21))
"""


def _env(cache, notice=None):
    env = {k: v for k, v in os.environ.items() if k != "HWSIM_COMPILE_NOTICE"}
    env["NUMBA_CACHE_DIR"] = str(cache)
    if notice is not None:
        env["HWSIM_COMPILE_NOTICE"] = notice
    return env


def _run(code_or_args, env, cwd=None):
    """(returncode, stdout, stderr) with stderr a pipe (not a terminal)."""
    cmd = [sys.executable] + (["-c", code_or_args] if isinstance(code_or_args, str)
                              else code_or_args)
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout, r.stderr


def _run_tty(code_or_args, env, cwd=None):
    """(returncode, stdout, what was written to stderr) with stderr a pseudo-terminal."""
    cmd = [sys.executable] + (["-c", code_or_args] if isinstance(code_or_args, str)
                              else code_or_args)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=slave,
                             text=True)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                break
            if not data:
                break
            chunks.append(data)
        out = p.stdout.read()
        p.stdout.close()
        code = p.wait(timeout=600)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return code, out, b"".join(chunks).decode().replace("\r\n", "\n")


def test_forced_notice_is_one_line_on_a_cold_cache_and_none_when_warm(tmp_path):
    env = _env(tmp_path / "numba", notice="1")
    code, out, err = _run(TWO_KERNELS, env)
    assert code == 0, err
    assert out.strip() == "[0, 1, 2, 3, 3, 3, 3, 3, 3, 3]"
    assert err.splitlines() == [MESSAGE]
    code, out, err = _run(TWO_KERNELS, env)  # the same cache, now warm
    assert code == 0, err
    assert err == ""


def test_no_notice_when_stderr_is_not_a_terminal(tmp_path):
    code, _, err = _run(TWO_KERNELS, _env(tmp_path / "numba"))
    assert code == 0, err
    assert MESSAGE not in err


def test_notice_on_a_terminal_and_silenced_by_env(tmp_path):
    code, _, err = _run_tty(TWO_KERNELS, _env(tmp_path / "a"))
    assert code == 0, err
    assert err.splitlines() == [MESSAGE]
    code, _, err = _run_tty(TWO_KERNELS, _env(tmp_path / "b", notice="0"))
    assert code == 0, err
    assert err == ""


def test_a_users_own_numba_function_gives_no_notice(tmp_path):
    code, out, err = _run(USER_FUNCTION, _env(tmp_path / "numba", notice="1"))
    assert code == 0, err
    assert out.strip() == "42"
    assert err == ""


def test_cli_run_on_a_terminal_prints_the_notice_once_then_never(tmp_path):
    """The whole `hwsim run` path (lowering and a dozen kernels compile) on a terminal."""
    (tmp_path / examples.EXAMPLE_MODEL_FILE).write_bytes(examples.example_model_bytes())
    np.save(tmp_path / "x.npy", examples.example_input())
    env = _env(tmp_path / "numba")
    args = ["-m", "hwsim", "run", examples.EXAMPLE_MODEL_FILE, "--input", "x.npy", "-q"]
    code, out, err = _run_tty(args, env, cwd=tmp_path)
    assert code == 0, err
    assert "output 0 'probabilities'" in out
    assert err.count(MESSAGE) == 1
    code, out, err = _run_tty(args, env, cwd=tmp_path)
    assert code == 0, err
    assert MESSAGE not in err
