"""Shared fixtures and helpers of the test suite.

The independent oracles live beside this file (``oracle.py``: TFLite's reference kernels
through ai-edge-litert; ``arith_bigint_ref.py``: the plain-Python big-integer model); test
modules import them by name (pytest puts this folder on the import path for its own
collection). What several modules need is here, once:

* ``ROOT``, ``CORPUS``, ``SLOW`` (``HWSIM_SLOW=1``: the heavier cases, as scripts/test.sh
  sets);
* ``digits_data``: the digits dataset of examples/digits (train.py's seeded split), loaded
  from its file without touching ``sys.path``;
* ``example_dir``: the bundled example model and input, generated once per session.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")
DIGITS_DIR = os.path.join(ROOT, "examples", "digits")
SLOW = bool(os.environ.get("HWSIM_SLOW"))


def load_example_module(path: str, name: str):
    """Import a script of examples/ by its path (no sys.path change)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_digits():
    """(x_train, y_train, x_test, y_test) of examples/digits/train.py."""
    train = load_example_module(os.path.join(DIGITS_DIR, "train.py"), "hwsim_digits_train")
    return train.load_data()


@pytest.fixture(scope="session")
def digits_data():
    return load_digits()


@pytest.fixture(scope="session")
def example_dir(tmp_path_factory):
    """A folder with the bundled example model and its input (hwsim example)."""
    from hwsim import cli
    d = tmp_path_factory.mktemp("example")
    assert cli.main(["example", "--out", str(d)]) == 0
    return d


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long run (mobilenet_v2's co-simulation); "
                                       "runs with HWSIM_SLOW=1")
