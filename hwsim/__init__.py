"""hwsim: bit-exact reference model of an int8 neural-network accelerator.

    net = hwsim.load("model.tflite")
    result = net.run(x, trace=True)     # result.outputs, result.trace.tensors, .accumulators
"""
from __future__ import annotations

import os

__version__ = "0.1.0"

# Numba's OpenMP workers (libgomp) spin ~3 ms after each parallel call; on a machine shared
# with other jobs that stalls every barrier (mobilenet_v2 up to 110x slower). Where it can read
# the load (Linux /proc) the engine runs on the CPUs other jobs leave free instead
# (hwsim/kernels/threads.py), which keeps the spinning that makes a quiet machine fast. Where
# it cannot, or the user fixed NUMBA_NUM_THREADS, idle workers sleep (PASSIVE). libgomp reads
# this when Numba first starts its threads, so it is set at import; a user who tunes the wait
# (any of these variables) is left alone. Figures: docs/performance.md, "Threads under load".
_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
if (not any(v in os.environ for v in _WAIT_VARS)
        and ("NUMBA_NUM_THREADS" in os.environ or not os.path.exists("/proc/loadavg"))):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from .ir import HwsimError, InputError, ModelError  # noqa: E402


def load_graph(path: str | os.PathLike):
    """Read a model file into the graph IR (by extension: .tflite, or a float .onnx)."""
    p = os.fspath(path)
    if p.endswith(".onnx"):
        from .frontends.onnx_reader import read_onnx
        return read_onnx(p)
    from .frontends.tflite_reader import read_tflite
    if p.endswith(".tflite") or not os.path.splitext(p)[1]:
        return read_tflite(p)
    raise ModelError(f"{p}: unknown model format (expected .tflite or .onnx; Darknet .cfg "
                     f"files load with hwsim.frontends.darknet_reader.read_darknet(cfg, weights))")


def load(path: str | os.PathLike, requant_scheme: str = "tflite_double",
         semantics: str = "tflite"):
    """Load and lower a model; returns a :class:`hwsim.engine.Network`.

    ``semantics``: whose reference arithmetic to compute, "tflite" (TFLite's reference
    kernels, the default) or "tflm" (TensorFlow Lite for Microcontrollers; the two differ in
    FULLY_CONNECTED and MUL, docs/semantics.md).
    """
    from .engine import Network
    from .lower import check_semantics, lower
    check_semantics(semantics)  # before the file is read: a bad value names itself
    graph = load_graph(path)
    return Network(lower(graph, requant_scheme, semantics=semantics), graph)


__all__ = ["load", "load_graph", "HwsimError", "InputError", "ModelError", "__version__"]
