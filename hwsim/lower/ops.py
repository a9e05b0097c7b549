"""Import every op family so that its lowerings and kernels register themselves."""
from . import activation, conv, elementwise, shape  # noqa: F401
