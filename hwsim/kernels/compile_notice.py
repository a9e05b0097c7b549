"""One line on stderr when Numba starts compiling hwsim's kernels (a cold cache: the first run
after an install, a kernel change or a new NUMBA_CACHE_DIR), so a 20-40 s silence is explained.

Numba broadcasts a "numba:compile" event only on a real compilation: a kernel loaded from the
cache does not fire it (numba/core/dispatcher.py, ``Dispatcher.compile``). Listening for it is
exact about which kernels a run needs, whatever the cache location or a stale index, and costs
nothing on a warm run. The line is printed at most once per process, only for hwsim's own
functions, and only when stderr is a terminal; HWSIM_COMPILE_NOTICE=1 forces it (tests, logs),
=0 silences it.
"""
from __future__ import annotations

import os
import sys

from numba.core import event

MESSAGE = "hwsim: compiling kernels (first run; cached after) ..."


def _wanted() -> bool:
    force = os.environ.get("HWSIM_COMPILE_NOTICE", "")
    if force in ("0", "1"):
        return force == "1"
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _is_hwsim(dispatcher) -> bool:
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
    return module == "hwsim" or module.startswith("hwsim.")


class _Notice(event.Listener):
    def __init__(self):
        self.shown = False

    def on_start(self, ev):
        if self.shown or not _is_hwsim((ev.data or {}).get("dispatcher")):
            return
        self.shown = True
        if _wanted():
            # tqdm.write keeps an active progress bar (hwsim run/export) intact.
            from tqdm import tqdm
            try:
                tqdm.write(MESSAGE, file=sys.stderr)
            except (OSError, ValueError):  # a closed or broken stderr must not fail the compile
                pass

    def on_end(self, ev):
        pass


_listener: _Notice | None = None


def install() -> None:
    """Listen for hwsim kernel compilations (idempotent)."""
    global _listener
    if _listener is None:
        _listener = _Notice()
        event.register("numba:compile", _listener)
