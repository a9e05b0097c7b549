"""Numba kernels. Importing any of them first installs the one-line compile notice
(compile_notice.py), before a kernel can compile."""
from . import compile_notice

compile_notice.install()
