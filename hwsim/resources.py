"""Where the package's data lives: the reference RTL and the cocotb bench.

They are package data (hwsim/rtl, hwsim/cocotb_tb), so an installed wheel co-simulates as a
checkout does; ``$HWSIM_RTL_DIR`` / ``$HWSIM_TB_DIR`` point elsewhere.
"""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

PACKAGE_DIR = Path(str(importlib.resources.files("hwsim")))
RTL_DIR = Path(os.environ.get("HWSIM_RTL_DIR") or PACKAGE_DIR / "rtl")
TB_DIR = Path(os.environ.get("HWSIM_TB_DIR") or PACKAGE_DIR / "cocotb_tb")
