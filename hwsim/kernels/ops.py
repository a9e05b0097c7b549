"""Import every kernel family so that its kernels register themselves (hwsim.registry)."""
from . import activation, conv, elementwise, minmax, onnxrt, shape  # noqa: F401
