"""The import rule of docs/architecture.md (issue 15 acceptance): no import cycles, and no import
from a lower floor to a higher one, inside functions included.

Every ``import`` statement of every hwsim/**/*.py counts, wherever it stands (module level,
function, ``if TYPE_CHECKING``), and so do the ``"hwsim.module:function"`` references the CLI's
command table imports when a subcommand runs. FLOORS is the table of docs/architecture.md
("Import rule"); test_floors_table_matches_the_docs keeps the two equal.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import hwsim

PKG = Path(hwsim.__file__).resolve().parent
DOC = PKG.parent / "docs" / "architecture.md"

# floor -> the modules on it (a package name covers its submodules; "hwsim" is the package's
# own __init__). A module may import from its floor and below; cycles are refused everywhere.
FLOORS = {
    1: ("ir", "vocab", "registry", "util", "yamlio", "resources", "command", "params", "arith",
        "fixedpoint", "program", "params_onnxrt", "inputs"),
    2: ("passes", "hwif"),
    3: ("frontends", "examples"),
    4: ("lower", "kernels"),
    5: ("engine", "hwsim", "trace_io"),
    6: ("hw",),
    7: ("quant", "export"),
    8: ("sweep", "cosim", "rtl_params"),
    9: ("cli", "__main__"),
    10: ("cocotb_tb",),
}
# Side by side on one floor, yet never importing each other (they share only params).
APART = (("lower", "kernels"),)

_COMMAND_REF = re.compile(r"^(hwsim(?:\.\w+)+):\w+$")


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package ("hwsim.hw" is hw/__init__.py)."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    """The module an imported name lives in (``hwsim.hw.config.load_config`` -> hwsim.hw.config),
    None outside the package."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, source: str) -> set[str]:
    """The package modules that the module ``name`` (with its ``source``) imports."""
    is_pkg = MODULES[name].name == "__init__.py" if name in MODULES else False
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] +
                                ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # "from . import lower" imports the module hwsim.lower; "from .ir import Graph" the
            # module hwsim.ir
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                         for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _COMMAND_REF.match(node.value)
            if m:
                found.add(m.group(1))
    return {t for t in map(_target, found) if t and t != name}


def floor_of(name: str) -> int:
    rel = name.removeprefix("hwsim.") if name != "hwsim" else "hwsim"
    for floor, members in FLOORS.items():
        for m in members:
            if rel == m or (m != "hwsim" and rel.startswith(m + ".")):
                return floor
    raise AssertionError(f"{name} is on no floor: add it to FLOORS and docs/architecture.md")


def graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path.read_text()) for name, path in MODULES.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in sorted(edges.items()):
        for b in sorted(targets):
            if floor_of(b) > floor_of(a):
                bad.append(f"{a} (floor {floor_of(a)}) imports {b} (floor {floor_of(b)})")
            rel_a, rel_b = a.split(".")[1:2], b.split(".")[1:2]
            for x, y in APART:
                if {*rel_a, *rel_b} == {x, y}:
                    bad.append(f"{a} imports {b} ({x} and {y} never import each other)")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_is_on_a_floor():
    assert all(floor_of(name) for name in MODULES)


def test_no_import_runs_up_a_floor():
    bad = upward_imports(graph())
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_floors_table_matches_the_docs():
    """docs/architecture.md lists the floors as ``N. `module`, ...`` lines: the same table."""
    text = DOC.read_text().split("## Import rule", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for m in re.finditer(r"^(\d+)\. (.*(?:\n   .*)*)", text, re.M):
        names = re.findall(r"`([\w./]+?)/?`", " ".join(m.group(2).split()).split(" — ")[0])
        documented[int(m.group(1))] = tuple(n.removeprefix("hwsim/").removesuffix(".py")
                                            for n in names)
    assert documented == FLOORS


# -- the checks themselves: each catches what it is for -------------------------------------

def test_a_function_level_import_counts():
    src = "def f():\n    from ..lower import lower\n    return lower\n"
    assert imports_of("hwsim.hwif.config", src) == {"hwsim.lower"}
    assert upward_imports({"hwsim.hwif.config": {"hwsim.lower"}}) == [
        "hwsim.hwif.config (floor 2) imports hwsim.lower (floor 4)"]


def test_relative_absolute_and_command_table_imports_resolve():
    src = ("import hwsim\nfrom . import lower\nfrom .hw.config import load_config\n"
           "import hwsim.export.exporter\nX = 'hwsim.cosim:cmd_cosim'\n")
    assert imports_of("hwsim.cli", src) == {"hwsim", "hwsim.lower", "hwsim.hw.config",
                                            "hwsim.export.exporter", "hwsim.cosim"}
    assert imports_of("hwsim.hw", "from .config import AccelConfig\n") == {"hwsim.hw.config"}


def test_a_cycle_and_modules_apart_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert upward_imports({"hwsim.kernels.shape": {"hwsim.lower.context"}}) == [
        "hwsim.kernels.shape imports hwsim.lower.context (lower and kernels never import "
        "each other)"]


def test_the_config_sits_below_lowering():
    """The accelerator config is read by lowering: it lives in hwif (floor 2), importing only
    the ground floor, and hwsim.hw.config re-exports it for the public API."""
    from hwsim.hw import config as public
    from hwsim.hwif import config as home
    assert public.load_config is home.load_config and public.AccelConfig is home.AccelConfig
    edges = graph()
    assert "hwsim.hwif.config" in edges["hwsim.lower.context"]
    assert edges["hwsim.hw.config"] == {"hwsim.hwif.config"}
    assert {floor_of(m) for m in edges["hwsim.hwif.config"]} == {1}
