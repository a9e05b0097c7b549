"""Every `hwsim` command line the co-simulation docs show runs as shown.

The command lines are read from the fenced code blocks (not ```python) of docs/cosim.md, of the
`hwsim cosim` section of docs/cli.md and of the README's tour: in a block with `$ ` prompts the
prompt lines, elsewhere every line; a trailing backslash continues a line; shell assignments
that call hwsim (`RTL=$(hwsim rtl-params --rtl-dir)`) are kept and run before the block's
later commands. Each doc's commands run in order, through bash (globs and `$(...)` expand as
for a user), in a temp folder holding a copy of rtl_vectors/ (the committed example export the
docs name) with this environment's `hwsim` first on PATH. Each must exit 0, except the
documented fault injections (`--fault`), which must exit 1. For the `$ hwsim cosim` examples
the documented report lines (title, header, layer rows, PASS / FAIL) must equal the real ones.

Not run, with the reason (NOT_RUN, checked to still be in the docs): commands that need a
user's own files. Lines that are not hwsim commands (`pip install`, `apt-get install`) are not
run: installing is scripts/setup.sh's job.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwsim import cosim

REPO = Path(__file__).resolve().parent.parent

# doc -> the heading of the section to read (None: the whole file)
DOCS = {"docs/cosim.md": None, "docs/cli.md": "## `hwsim cosim` and `hwsim rtl-params`",
        "README.md": "## A short tour"}
NOT_RUN = {
    "hwsim compare t.h5 other.h5": "other.h5 is a second trace of the user's "
                                   "(hwsim compare: tests/test_compare.py)",
    "hwsim quantize model.onnx": "a user's float ONNX model and calibration folder "
                                 "(tests/test_quant_commands.py)",
}
MIN_COMMANDS = {"docs/cosim.md": 9, "docs/cli.md": 3, "README.md": 5}
REPORT_LINE = re.compile(r"^(co-simulation of |layer  op |\d+\s+[A-Z][A-Z0-9_]*\s+"
                         r"(OK|MISMATCH|ERROR|HOST)\b|PASS$|FAIL)")
ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def section(text: str, heading: str | None) -> str:
    if heading is None:
        return text
    start = text.index(heading + "\n")
    level = heading.split()[0]
    end = text.find(f"\n{level} ", start + len(heading))
    return text[start:end if end >= 0 else len(text)]


def blocks(text: str) -> list[list[str]]:
    """The lines of each fenced block that is not Python."""
    out, cur, lang = [], None, ""
    for line in text.splitlines():
        if line.startswith("```"):
            if cur is None:
                cur, lang = [], line[3:].strip()
            else:
                if lang not in ("python", "yaml", "toml"):
                    out.append(cur)
                cur = None
            continue
        if cur is not None:
            cur.append(line)
    return out


def logical_lines(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(command, documented output lines): prompt lines when the block has prompts."""
    prompts = any(x.startswith("$ ") for x in lines)
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if prompts and not line.startswith("$ "):
            if out:
                out[-1][1].append(line)
            continue
        cmd = line[2:] if prompts else line
        while cmd.endswith("\\") and i < len(lines):
            cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        if cmd.strip():
            out.append((cmd.strip(), []))
    return out


def doc_commands(doc: str) -> list[tuple[int, str, list[str]]]:
    """(block number, command, documented output) of the hwsim commands of ``doc``."""
    text = section((REPO / doc).read_text(), DOCS[doc])
    found = []
    for n, block in enumerate(blocks(text)):
        for cmd, shown in logical_lines(block):
            words = cmd.split()
            if words[0] == "hwsim" or (ASSIGN.match(cmd) and "$(hwsim " in cmd):
                if re.search(r"\[--|EXPORT_DIR|CONFIG \[", cmd):
                    continue  # a usage synopsis, not a command
                found.append((n, cmd, shown))
    return found


def _not_run(cmd: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if cmd.startswith(start)), None)


def test_the_extraction_finds_the_documented_commands():
    """The parser itself: the commands the docs are known to show are found (a parser that
    found nothing would make the runs below vacuous), and every NOT_RUN entry is still shown."""
    cmds = {doc: [c for _, c, _ in doc_commands(doc)] for doc in DOCS}
    for doc, n in MIN_COMMANDS.items():
        assert len(cmds[doc]) >= n, (doc, cmds[doc])
    cos = cmds["docs/cosim.md"]
    assert "hwsim cosim rtl_vectors/example --fault rounding --stop-on-fail" in cos
    assert "RTL=$(hwsim rtl-params --rtl-dir)" in cos
    assert any(c.startswith("hwsim cosim rtl_vectors/example --rtl \"$RTL\"/*.v") and
               "--tb-path" in c for c in cos), cos  # the continuation lines were joined
    everything = [c for doc in cmds.values() for c in doc]
    for start in NOT_RUN:
        assert any(c.startswith(start) for c in everything), f"{start!r} no longer in the docs"


@pytest.mark.parametrize("doc", list(DOCS))
def test_documented_commands_run(doc, tmp_path):
    for sim in cosim.SIMULATORS:
        reason = cosim.simulator_available(sim)
        if reason:
            pytest.skip(f"the docs run both simulators: {reason}")
    shutil.copytree(REPO / "rtl_vectors", tmp_path / "rtl_vectors")
    env = {k: v for k, v in os.environ.items() if k not in ("HWSIM_RTL_DIR", "HWSIM_TB_DIR")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    assigned: dict[int, list[str]] = {}
    for block, cmd, shown in doc_commands(doc):
        if _not_run(cmd):
            continue
        script = "\n".join(assigned.get(block, []) + [cmd])
        out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=900)
        expect = 1 if " --fault " in f"{cmd} " else 0
        assert out.returncode == expect, \
            f"{doc}: `{cmd}` exited {out.returncode}, expected {expect}\n{out.stdout}\n" \
            f"{out.stderr}"
        if ASSIGN.match(cmd):
            assigned.setdefault(block, []).append(cmd)
        if cmd.startswith("hwsim cosim ") and shown:
            want = [x for x in shown if REPORT_LINE.match(x)]
            got = [x for x in out.stdout.splitlines() if REPORT_LINE.match(x)]
            assert want, f"{doc}: no report lines shown for `{cmd}`"
            assert got == want, f"{doc}: `{cmd}` prints\n" + "\n".join(got)
