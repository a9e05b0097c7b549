"""Packaging: the wheel holds what `hwsim cosim` needs, and an installed wheel co-simulates.

* the wheel (built from a copy of the package sources, without build isolation: no network)
  holds every Verilog source and header of hwsim/rtl/, every file of the cocotb bench
  hwsim/cocotb_tb/ (with the adapter example) and every preset, and setuptools does not warn
  about the license metadata;
* (HWSIM_SLOW=1, as scripts/test.sh sets) that wheel installed into a fresh venv runs
  `hwsim example`, `hwsim export` and `hwsim cosim --sim icarus` from a folder outside the
  checkout and passes, with hwsim imported from the venv (not from the checkout) and nothing
  written into the installed package.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "hwsim"
SLOW = bool(os.environ.get("HWSIM_SLOW"))

# The package data: (folder under hwsim/, glob) -> the files the wheel must hold.
DATA = [("rtl", "*.v"), ("rtl", "*.vh"), ("rtl", "*.vlt"), ("cocotb_tb", "*.py"),
        ("cocotb_tb/examples", "*.py"), ("cocotb_tb/examples", "*.v"), ("presets", "*.yaml")]


def package_data() -> list[str]:
    files = []
    for folder, pattern in DATA:
        files += [p.relative_to(REPO).as_posix() for p in sorted((PKG / folder).glob(pattern))]
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """(the built wheel, the build log)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: building in the checkout would leave build/ and egg-info there
    src.mkdir()
    shutil.copytree(PKG, src / "hwsim", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-v", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, cwd=tmp)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    wheels = sorted((tmp / "dist").glob("hwsim-*.whl"))
    assert len(wheels) == 1, log[-2000:]
    return wheels[0], log


def test_wheel_holds_the_rtl_the_bench_and_the_presets(wheel):
    path, _ = wheel
    names = set(zipfile.ZipFile(path).namelist())
    want = package_data()
    # the checkout has them (a glob that matched nothing would make this test vacuous)
    for f in ("hwsim/rtl/hwsim_accel.v", "hwsim/rtl/hwsim_params.vh", "hwsim/rtl/hwsim_arith.vh",
              "hwsim/rtl/hwsim_accel.vlt",
              "hwsim/cocotb_tb/hwsim_bench.py", "hwsim/cocotb_tb/hwsim_adapter.py",
              "hwsim/cocotb_tb/hwsim_unit_bench.py", "hwsim/cocotb_tb/examples/my_npu.v",
              "hwsim/cocotb_tb/examples/my_npu_adapter.py", "hwsim/presets/tflite-int8.yaml"):
        assert f in want, f"{f} missing from the checkout"
    missing = [f for f in want if f not in names]
    assert not missing, f"not in {path.name}: {missing}"
    assert "hwsim/cosim.py" in names and "hwsim/cli.py" in names


def test_wheel_metadata_has_an_spdx_license_and_the_build_does_not_warn(wheel):
    path, log = wheel
    with zipfile.ZipFile(path) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))
    assert "License-Expression: Apache-2.0" in meta.decode()
    assert "project.license" not in log, log[-3000:]


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` but bytecode: relative path -> (size, mtime_ns)."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_installed_wheel_cosimulates_the_example_outside_the_checkout(wheel, tmp_path):
    """pip install of the wheel into a fresh venv, then the README's export + cosim commands on
    the example network, from a folder outside the checkout."""
    if not SLOW:
        pytest.skip("slow (~1-3 min: a venv, a cold Numba compile for the export, a full "
                    "Icarus co-simulation); set HWSIM_SLOW=1 (scripts/test.sh does)")
    from hwsim import cosim
    reason = cosim.simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    path, _ = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    site = Path(subprocess.run([str(vpy), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # Dependencies (numpy, numba, cocotb, ...) come from the project venv, appended to sys.path
    # by a .pth line. Its .pth files are not run from there, so its editable hwsim stays out.
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "zz_project_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(vpy), "install", "-q",
                    "--no-deps", "--no-index", str(path)], check=True)
    installed = site / "hwsim"
    assert (installed / "rtl" / "hwsim_accel.v").is_file()
    before = _tree(installed)

    work = tmp_path / "work"  # outside the checkout
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "HWSIM_RTL_DIR", "HWSIM_TB_DIR", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               HWSIM_COSIM_BUILD=str(tmp_path / "cosim-cache"),
               NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))

    def run(*argv, expect=0):
        out = subprocess.run(list(argv), cwd=work, env=env, capture_output=True, text=True)
        assert out.returncode == expect, f"{argv}: exit {out.returncode}\n{out.stdout}\n" \
                                         f"{out.stderr}"
        return out.stdout

    where = run(str(vpy), "-c", "import hwsim, hwsim.cosim as c; "
                "print(hwsim.__file__); print(c.RTL_DIR); print(c.TB_DIR)").split()
    assert [Path(p) for p in where] == [installed / "__init__.py", installed / "rtl",
                                        installed / "cocotb_tb"]
    assert Path(run("hwsim", "rtl-params", "--rtl-dir").strip()) == installed / "rtl"
    run("hwsim", "example", "--out", "ex")
    run("hwsim", "export", "ex/example_cnn.tflite", "--config", "tflite-int8", "--input",
        "ex/example_input.npy", "--out", "export", "--host-tail")
    out = run("hwsim", "cosim", "export", "--sim", "icarus")
    lines = out.splitlines()
    assert lines[-1] == "PASS", out
    assert "10/10 layers bit-exact on icarus" in out
    assert sum(x.split()[2:3] == ["OK"] for x in lines) == 10
    assert _tree(installed) == before, "hwsim cosim wrote into the installed package"
    assert list((tmp_path / "cosim-cache").glob("icarus-*/.hwsim_build_ok"))
