"""How many threads the kernels use: every CPU the process may use on a quiet machine, fewer
when other threads want the CPUs.

Numba's OpenMP workers (GNU libgomp) spin ~3 ms after each parallel call before they sleep.
On a quiet machine that is what makes the dozens of parallel calls of a run cheap (a sleeping
worker takes tens of µs to wake: mobilenet_v2 ran 1.4-2x slower with OMP_WAIT_POLICY=PASSIVE
on the 2-CPU test machine). On a busy machine a spinning worker holds a core another job
needs, and a descheduled one stalls the next barrier for a whole time slice (mobilenet_v2 up
to 110x slower with two busy processes and other jobs on 2 CPUs). So the engine calls
:func:`adapt` before each layer: it counts the runnable threads of other processes (Linux:
/proc/loadavg's running count less this process's running threads) and runs on the CPUs left
over, at least one. Figures: docs/performance.md, "Threads under load".

The count is left alone when the user chose it: NUMBA_NUM_THREADS in the environment, or a
``numba.set_num_threads`` call of their own (seen as a count that is not the last one set
here). Where the load cannot be read (no /proc), ``import hwsim`` sets OMP_WAIT_POLICY=PASSIVE
instead (hwsim/__init__.py).
"""
from __future__ import annotations

import os
import threading
import time

import numba

LOADAVG = "/proc/loadavg"
RESAMPLE_S = 0.02  # look at the load at most this often (one look costs ~0.1 ms)
USER_FIXED = "NUMBA_NUM_THREADS" in os.environ

_local = threading.local()  # Numba's thread count is per calling thread; so is this state


def _fast_count():
    """Numba's own read of this thread's thread count (the C function behind
    numba.get_num_threads, ~80 ns), once its threads are started; None where that Numba
    internal is missing."""
    try:
        from numba.np.ufunc import parallel
        numba.get_num_threads()  # starts the threading layer and binds the C function
        fn = parallel._get_num_threads
        return fn if fn() > 0 else None
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another Numba
        return None


_count_fn = None


def count() -> int:
    """numba.get_num_threads() for the kernels' per-call choice of serial or threaded: the same
    value, without its per-call lock (0.55 us against 0.08 us a read on Sapphire Rapids;
    mobilenet_v2's call plan reads it ~58 times a run)."""
    global _count_fn
    fn = _count_fn
    if fn is None:
        fn = _count_fn = _fast_count() or numba.get_num_threads
    return fn()


def available() -> bool:
    """Can the load be read here?"""
    return os.path.exists(LOADAVG)


def others_runnable() -> int | None:
    """Threads of other processes that are running or waiting for a CPU now (None if unknown).
    /proc/loadavg's fourth field counts every runnable thread on the machine, this process's
    own running (or spinning) threads included; those are subtracted."""
    try:
        with open(LOADAVG) as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    own += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except OSError:  # the thread ended meanwhile
                continue
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def threads_for(others: int, ncpu: int, top: int) -> int:
    """The CPUs other threads leave free, between 1 and ``top``."""
    return max(1, min(top, ncpu - others))


def adapt(force: bool = False) -> None:
    """Set this thread's Numba thread count from the current load (see the module docstring).
    Cheap between looks: returns at once unless RESAMPLE_S has passed or ``force``."""
    if USER_FIXED:
        return
    st = _local.__dict__
    now = time.monotonic()
    if not force and now - st.get("when", -1e9) < RESAMPLE_S:
        return
    st["when"] = now
    current = numba.get_num_threads()
    if st.get("set", numba.config.NUMBA_NUM_THREADS) != current:
        st["off"] = True  # the user called numba.set_num_threads: theirs from now on
    if st.get("off"):
        return
    others = others_runnable()
    if others is None:
        return
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count() or 1
    n = threads_for(others, ncpu, numba.config.NUMBA_NUM_THREADS)
    if n != current:
        numba.set_num_threads(n)
    st["set"] = n
