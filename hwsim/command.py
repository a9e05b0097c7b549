"""What a subcommand is, for the CLI table and for the modules that define subcommands.

Below every command module (``export/commands.py``, ``quant/commands.py``, ``cosim.py``,
``rtl_params.py``, ``sweep/commands.py``) and below ``cli.py``, which holds the table: a command
module imports this, never ``cli``.
"""
from __future__ import annotations

import argparse
import importlib
import os
from dataclasses import dataclass
from typing import Callable, Union

from .ir import HwsimError
from .vocab import SEMANTICS


@dataclass(frozen=True)
class Command:
    name: str
    help: str  # one line, shown by `hwsim --help`
    arguments: Union[Callable[[argparse.ArgumentParser], None], str]
    run: Union[Callable[[argparse.Namespace], int], str]
    epilog: str = ""  # worked example(s), shown by `hwsim NAME --help`
    description: str = ""  # longer text for `hwsim NAME --help` (default: help)


def resolve(obj):
    """``"module:function"`` -> the function (imported now); anything else as it is."""
    if isinstance(obj, str):
        module, _, attr = obj.partition(":")
        return getattr(importlib.import_module(module), attr)
    return obj


def check_output_path(path: str, what: str = "output") -> None:
    """Fail early (before a long run) if ``path`` cannot be written."""
    if os.path.isdir(path):
        raise HwsimError(f"{path}: is a directory; give a file name for the {what}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise HwsimError(f"{path}: cannot write the {what} (folder {folder} does not exist)")
    if not os.access(folder, os.W_OK):
        raise HwsimError(f"{path}: cannot write the {what} (folder {folder} is not writable)")


def semantics_argument(p: argparse.ArgumentParser) -> None:
    """--semantics tflite|tflm (run, export, compare): whose reference arithmetic to compute."""
    p.add_argument("--semantics", choices=SEMANTICS, default=SEMANTICS[0],
                   help="reference arithmetic: tflite (TFLite's reference kernels, the default) "
                        "or tflm (TensorFlow Lite for Microcontrollers: FULLY_CONNECTED and MUL "
                        "round differently; docs/semantics.md)")


def add_host_ops_argument(p: argparse.ArgumentParser) -> None:
    """``--host-ops OP[,OP]`` (hwsim info, hwsim export): ops forced to the host
    (hwsim.hwif.config.with_host_ops adds them to the config)."""
    p.add_argument("--host-ops", metavar="OP[,OP]", default=None,
                   help="run these ops on the host even where the array could (added to the "
                        "config's host_ops), e.g. DEPTHWISE_CONV_2D")
