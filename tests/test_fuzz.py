"""Seeded fuzz test of every input format hwsim reads (hardening issue).

For each format a valid seed file is made by hwsim's own code (the bundled example network,
an export of its tail, a trace of a run, float ONNX / Darknet models built the way
tests/test_frontend_onnx.py and tests/test_frontend_darknet.py build theirs, the config
presets), and ``HWSIM_FUZZ_N`` (default 200) mutants of it are derived with a seeded RNG and
fed to the CLI command that reads that format, in-process through ``hwsim.cli.main``.

Every case must end with exit 0, 2 (an input error) or, where a mismatch is a legitimate
answer (``hwsim compare``), 1; an error must be ONE stderr line ``hwsim: error: ...``; no
traceback, no hang, no crash; after an error the output folder is as it was (a pre-existing
output file is untouched) and nothing new appears next to the inputs.

How it runs: the cases of one format run in a worker subprocess (this file run as a script,
``--worker``), which reports each case to the test process on a pipe. The worker sends
stdout/stderr of each case to files at the file-descriptor level (so C libraries' output is
seen too) and arms ``signal.alarm`` per case (a soft timeout that names where it hung); the
test process kills a worker that stays silent past the hard timeout (a hang in C code) and
notices a worker that dies (a segfault or abort in a case: a crash), then starts a new worker
at the next case. The unmutated seed runs first and must exit 0, so a broken harness cannot
pass by rejecting everything. One error case per format is also run as a real ``python -m
hwsim`` process, to check what a user sees.

Environment: ``HWSIM_FUZZ_N`` (mutants per format), ``HWSIM_FUZZ_SEED`` (base seed),
``HWSIM_FUZZ_TIMEOUT`` (soft per-case timeout, s), ``HWSIM_FUZZ_JOBS`` (workers at once,
default 2). By hand: ``python tests/test_fuzz.py --report [--formats a,b] [--n N]`` prints the
outcome table; ``python tests/test_fuzz.py --case FORMAT I --dir D`` writes mutant I of FORMAT
into D and prints its command line (to reproduce a failure).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
N = int(os.environ.get("HWSIM_FUZZ_N", "200"))
BASE_SEED = int(os.environ.get("HWSIM_FUZZ_SEED", "20240611"))
SOFT_TIMEOUT = float(os.environ.get("HWSIM_FUZZ_TIMEOUT", "60"))  # a mutant may compile a kernel
HARD_TIMEOUT = SOFT_TIMEOUT + 60  # the worker did not even come back from its alarm
# the unmutated seed, a worker's first case: imports and, with a cold Numba cache, compiling
# every kernel of the example (~25 s of CPU; minutes on a loaded machine)
STARTUP_TIMEOUT = 600
JOBS = int(os.environ.get("HWSIM_FUZZ_JOBS", "2"))
MEMORY_LIMIT = int(os.environ.get("HWSIM_FUZZ_MEM_GB", "8")) << 30  # address space of a worker
MAX_ERROR_CHARS = 1000  # one clear line, not a dump of the file
TEMP_PREFIX = ".hwsim-"  # hwsim.util's temp files
SENTINEL = b"an earlier output that an error must not touch\n"

# ============================================================================================
# Mutators: pure functions of (seed content, rng) -> (mutant, description)
# ============================================================================================
INT8 = [0, 1, 0x7F, 0x80, 0xFF, 0x10, 0x40]
INT32 = [0, 1, -1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 1 << 20,
         1 << 24, 0x3FFFFFFF, 0x7FFFFFFF, -0x80000000, -2, 4096]
TEXT_NUMBERS = ["0", "-1", "1", "2", "-2147483649", "2147483648", "4294967296",
                "99999999999999999999999", "1e999", "-1e999", "nan", "inf", "-0", "0x1f",
                "1.5", "-3.25", "", "abc", "\u0661".encode().decode("latin-1"), "9" * 400,
                "1_000", "+7", "1e-45"]
TEXT_JUNK = ["\x00", "\t", " ", "\xe9", "\xff", "\u2028".encode().decode("latin-1"), "[", "]",
             "=", "#", ":", "-", "@", ";", "%", "\r", ",", "{", "}", "&", "*", "!", "'", '"',
             "\\", "|", ">"]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _n_ops(rng, most: int = 4) -> int:
    return int(min(most, rng.geometric(0.55)))


def _pos(rng, n: int, hot=None) -> int:
    """A position in [0, n): in one of the ``hot`` (start, end) ranges 70% of the time."""
    if n <= 0:
        return 0
    if hot and rng.random() < 0.7:
        sizes = np.array([e - s for s, e in hot], float)
        s, e = hot[int(rng.choice(len(hot), p=sizes / sizes.sum()))]
        return int(rng.integers(s, max(e, s + 1))) % n
    return int(rng.integers(n))


def mutate_bytes(data: bytes, rng, hot=None) -> tuple[bytes, str]:
    """Byte flips, interesting integers, truncation, chunk deletion/duplication/insertion."""
    d = bytearray(data)
    desc = []
    for _ in range(_n_ops(rng)):
        n = len(d)
        kind = _pick(rng, ["flip", "flip", "byte", "int32", "int32", "int16", "int64",
                           "truncate", "delete", "dup", "insert", "zero", "ff", "swap",
                           "append"])
        p = _pos(rng, n, hot)
        ln = int(min(max(n - p, 1), rng.geometric(0.05)))
        if kind == "flip" and n:
            bit = int(rng.integers(8))
            d[p] ^= 1 << bit
            desc.append(f"flip bit {bit} of byte {p}")
        elif kind == "byte" and n:
            v = _pick(rng, INT8)
            d[p] = v
            desc.append(f"byte {p} = 0x{v:02x}")
        elif kind in ("int16", "int32", "int64") and n:
            width = {"int16": 2, "int32": 4, "int64": 8}[kind]
            if rng.random() < 0.7:
                p -= p % width
            v = _pick(rng, INT32)
            if rng.random() < 0.2:
                v = int(rng.integers(-n, 2 * n))  # an offset near the file's own size
            raw = int(v).to_bytes(8, "little", signed=True)[:width]
            d[p:p + width] = raw
            desc.append(f"{kind} at {p} = {v}")
        elif kind == "truncate":
            d = d[:p]
            desc.append(f"truncate to {p} bytes")
        elif kind == "delete" and n:
            del d[p:p + ln]
            desc.append(f"delete {ln} bytes at {p}")
        elif kind == "dup" and n:
            q = _pos(rng, n + 1)
            d[q:q] = d[p:p + ln]
            desc.append(f"copy {ln} bytes from {p} to {q}")
        elif kind == "insert":
            blob = rng.integers(0, 256, ln, dtype=np.uint8).tobytes()
            d[p:p] = blob
            desc.append(f"insert {ln} random bytes at {p}")
        elif kind in ("zero", "ff") and n:
            d[p:p + ln] = (b"\x00" if kind == "zero" else b"\xff") * len(d[p:p + ln])
            desc.append(f"{kind} {ln} bytes at {p}")
        elif kind == "swap" and n > 2:
            q = _pos(rng, n)
            a, b = sorted((p, q))
            ln = min(ln, b - a)
            if ln > 0:
                d[a:a + ln], d[b:b + ln] = bytes(d[b:b + ln]), bytes(d[a:a + ln])
                desc.append(f"swap {ln} bytes at {a} and {b}")
        elif kind == "append":
            d += rng.integers(0, 256, ln, dtype=np.uint8).tobytes()
            desc.append(f"append {ln} random bytes")
    return bytes(d), "; ".join(desc) or "unchanged"


_NUM = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def mutate_text(data: bytes, rng) -> tuple[bytes, str]:
    """Line deletion/duplication/moves, number and token replacement, odd characters,
    truncation, CRLF, very long lines (the text is handled as latin-1, byte for byte)."""
    text = data.decode("latin-1")
    desc = []
    for _ in range(_n_ops(rng)):
        lines = text.split("\n")
        kind = _pick(rng, ["del_line", "dup_line", "swap_lines", "num", "num", "num", "word",
                           "char_del", "char_ins", "truncate", "crlf", "long_line", "bytes"])
        i = int(rng.integers(len(lines)))
        if kind == "del_line":
            del lines[i]
            desc.append(f"delete line {i + 1}")
        elif kind == "dup_line":
            j = int(rng.integers(len(lines) + 1))
            lines.insert(j, lines[i])
            desc.append(f"copy line {i + 1} before line {j + 1}")
        elif kind == "swap_lines":
            j = int(rng.integers(len(lines)))
            lines[i], lines[j] = lines[j], lines[i]
            desc.append(f"swap lines {i + 1} and {j + 1}")
        elif kind in ("num", "word"):
            rx = _NUM if kind == "num" else _WORD
            hits = list(rx.finditer(text))
            if hits:
                m = _pick(rng, hits)
                if kind == "num":
                    new = _pick(rng, TEXT_NUMBERS)
                    v = float(m.group())
                    if rng.random() < 0.3 and abs(v) < 1e18:
                        new = str(int(v) + int(_pick(rng, [-1, 1, -256, 256])))
                else:
                    words = [h.group() for h in hits]
                    new = _pick(rng, words) if rng.random() < 0.6 else _pick(rng, TEXT_NUMBERS)
                text = text[:m.start()] + new + text[m.end():]
                desc.append(f"{kind} {m.group()[:20]!r} at {m.start()} -> {new[:20]!r}")
                continue
        elif kind == "char_del" and text:
            p = int(rng.integers(len(text)))
            text = text[:p] + text[p + 1:]
            desc.append(f"delete char {p}")
            continue
        elif kind == "char_ins":
            p = int(rng.integers(len(text) + 1))
            c = _pick(rng, TEXT_JUNK)
            text = text[:p] + c + text[p:]
            desc.append(f"insert {c!r} at {p}")
            continue
        elif kind == "truncate":
            p = int(rng.integers(len(text) + 1))
            text = text[:p]
            desc.append(f"truncate to {p} chars")
            continue
        elif kind == "crlf":
            text = text.replace("\n", "\r\n")
            desc.append("CRLF line ends")
            continue
        elif kind == "long_line":
            lines.insert(i, _pick(rng, ["0", "a", "[", "-", "1,"]) * 200_000)
            desc.append(f"insert a 200,000-char line before line {i + 1}")
        elif kind == "bytes":
            b, d = mutate_bytes(text.encode("latin-1"), rng)
            text = b.decode("latin-1")
            desc.append(d)
            continue
        text = "\n".join(lines)
    return text.encode("latin-1"), "; ".join(desc) or "unchanged"


WEIRD_VALUES = [None, "", "x", "-1", -1, 0, 1, -2**31, 2**31, 2**64, 10**100, 1.5, -0.0,
                float("nan"), float("inf"), True, False, [], {}, [1, 2], {"a": 1}, "nan",
                "1e999", "a" * 5000, [[[]]], "2020-01-01"]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for k, v in enumerate(obj):
            yield from _paths(v, prefix + (k,))


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def mutate_tree(obj, rng):
    """Key removal/renaming, values of the wrong type, interesting numbers, list length
    changes, shared nodes (dumped as YAML anchors and aliases). Mutates ``obj`` in place."""
    desc = []
    for _ in range(_n_ops(rng, 3)):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = _pick(rng, paths)
        parent, key = _get(obj, path[:-1]), path[-1]
        value = parent[key]
        where = "/".join(map(str, path))
        kind = _pick(rng, ["delete", "retype", "retype", "number", "rename", "add", "list",
                           "alias", "swap_type"])
        if kind == "delete":
            del parent[key]
            desc.append(f"delete {where}")
        elif kind == "retype" or (kind == "number" and not isinstance(value, (int, float))):
            new = _pick(rng, WEIRD_VALUES)
            parent[key] = new
            desc.append(f"{where} = {str(new)[:30]!r}")
        elif kind == "number":
            new = _pick(rng, [0, -1, -value, value + 1, value - 1, value * 2**20, 2**63,
                              value / 3 if value else 0.5])
            parent[key] = new
            desc.append(f"{where}: {value!r} -> {new!r}")
        elif kind == "rename" and isinstance(parent, dict):
            new_key = _pick(rng, ["zz_unknown", 7, None, "", str(key).upper()])
            parent[new_key] = parent.pop(key)
            desc.append(f"rename {where} -> {new_key!r}")
        elif kind == "add":
            target = value if isinstance(value, (dict, list)) else parent
            if isinstance(target, dict):
                target["unexpected_key"] = _pick(rng, WEIRD_VALUES)
            else:
                target.append(_pick(rng, WEIRD_VALUES))
            desc.append(f"add an entry under {where}")
        elif kind == "list" and isinstance(value, list):
            if value and rng.random() < 0.5:
                del value[int(rng.integers(len(value))):]
                desc.append(f"shorten {where} to {len(value)}")
            else:
                value.extend(value[:1] * int(rng.integers(1, 4)) or [0])
                desc.append(f"extend {where} to {len(value)}")
        elif kind == "alias":
            others = [p for p in paths if isinstance(_get(obj, p), (dict, list)) and
                      p[:len(path)] != path and path[:len(p)] != p]
            if others:
                src = _pick(rng, others)
                parent[key] = _get(obj, src)
                desc.append(f"{where} = alias of {'/'.join(map(str, src))}")
        elif kind == "swap_type":
            if isinstance(value, dict):
                parent[key] = list(value.values())
            elif isinstance(value, list):
                parent[key] = {f"k{i}": v for i, v in enumerate(value)}
            else:
                parent[key] = [value]
            desc.append(f"{where}: change the container type")
    return obj, "; ".join(desc) or "unchanged"


YAML_SPECIALS = [
    ("billion laughs", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e]\n"),
    ("deep nesting", "deep: " + "[" * 5000 + "]" * 5000 + "\n"),
    ("deep mapping", "deep: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"),
    ("python tag", "x: !!python/object/apply:os.system ['echo pwned']\n"),
    ("binary tag", "x: !!binary aGVsbG8=\n"),
    ("set tag", "x: !!set {a, b}\n"),
    ("timestamp", "x: 2001-12-14t21:59:43.10-05:00\n"),
    ("tab indent", "x:\n\ty: 1\n"),
    ("unknown tag", "x: !hwsim 1\n"),
]
YAML_WHOLE = [("empty file", ""), ("a scalar", "42\n"), ("a list", "- a\n- b\n"),
              ("two documents", "a: 1\n---\nb: 2\n"), ("null", "~\n"), ("only a comment", "# x\n"),
              ("not yaml", "{{{{ ::: ]]]\n"), ("utf-16", "\ufeffa: 1\n")]


def mutate_yaml(data: bytes, rng) -> tuple[bytes, str]:
    """YAML: tree mutations (dumped back with yaml.safe_dump), text mutations, or hostile
    YAML (alias bombs, deep nesting, python tags, several documents ...)."""
    import yaml
    r = rng.random()
    if r < 0.45:
        tree, desc = mutate_tree(yaml.safe_load(data), rng)
        try:
            text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
        except yaml.YAMLError:
            text = yaml.dump(tree, sort_keys=False)  # e.g. a None key
        return text.encode("utf-8"), "tree: " + desc
    if r < 0.85:
        b, desc = mutate_text(data, rng)
        return b, "text: " + desc
    if r < 0.95:
        name, snippet = _pick(rng, YAML_SPECIALS)
        return data + b"\n" + snippet.encode("utf-8"), f"append {name}"
    name, whole = _pick(rng, YAML_WHOLE)
    enc = "utf-16" if name == "utf-16" else "utf-8"
    return whole.encode(enc), f"whole file: {name}"


def mutate_npy(data: bytes, rng) -> tuple[bytes, str]:
    """A .npy: header edits (shape, dtype, fortran_order, version, length field), broken
    headers, truncation and extra data, or plain byte mutations."""
    import numpy.lib.format as npf
    hlen = int.from_bytes(data[8:10], "little")
    head = data[10:10 + hlen].decode("latin-1")
    body = data[10 + hlen:]
    meta = eval(head, {"__builtins__": {}})  # noqa: S307 -- our own seed's header
    r = rng.random()
    if r < 0.5:
        kind = _pick(rng, ["shape", "shape", "descr", "descr", "fortran", "raw"])
        if kind == "shape":
            shape = list(meta["shape"])
            new = _pick(rng, [(), (0,), (1,), tuple(shape[::-1]), tuple(shape + [1]),
                              tuple(shape[1:]), (-1,) + tuple(shape[1:]), (2**40,),
                              (2**31, 2**31), tuple(d * 2 for d in shape), (1, 32, 32, 3, 0),
                              (10**30,), (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                          1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)])
            meta["shape"] = new
            desc = f"header shape {new}"
        elif kind == "descr":
            new = _pick(rng, ["<f4", "|O", "<U3", "|V4", ">i1", "|u1", "<i8", "|b1", "<c8",
                              "<M8[s]", "garbage", "<f2", [("a", "|i1")], "|S1", ">f8"])
            meta["descr"] = new
            desc = f"header descr {new!r}"
        elif kind == "fortran":
            meta["fortran_order"] = _pick(rng, [True, "yes", 2, None])
            desc = f"header fortran_order {meta['fortran_order']!r}"
        else:
            new = _pick(rng, ["{}", "{'descr': '|i1'}", "[1, 2]", "{'descr': '|i1', "
                              "'fortran_order': False, 'shape': (1, 32, 32, 3), 'x': 1}",
                              "__import__('os')", "{'descr': '|i1', 'fortran_order': False, "
                              "'shape': (1, 32, 32, 3.5)}", "", "{'shape': 'abc'}"])
            h = new.encode("latin-1")
            return (npf.MAGIC_PREFIX + b"\x01\x00" + len(h).to_bytes(2, "little") + h + body,
                    f"header text {new!r}")
        h = repr(meta).encode("latin-1")
        h += b" " * ((-len(h) - 11) % 64) + b"\n"
        out = npf.MAGIC_PREFIX + b"\x01\x00" + len(h).to_bytes(2, "little") + h + body
        return out, desc
    if r < 0.7:
        kind = _pick(rng, ["truncate", "extra", "version", "hlen", "magic"])
        if kind == "truncate":
            p = int(rng.integers(len(data)))
            return data[:p], f"truncate to {p} bytes"
        if kind == "extra":
            return data + b"\x00" * int(rng.integers(1, 100)), "extra bytes at the end"
        if kind == "version":
            v = _pick(rng, [b"\x02\x00", b"\x03\x00", b"\x09\x09", b"\x00\x00"])
            return data[:6] + v + data[8:], f"version bytes {v!r}"
        if kind == "hlen":
            v = _pick(rng, [0, 1, hlen - 1, hlen + 1, 0xFFFF])
            return data[:8] + v.to_bytes(2, "little") + data[10:], f"header length {v}"
        return b"\x93NUMPZ" + data[6:], "bad magic"
    b, desc = mutate_bytes(data, rng, hot=[(0, 10 + hlen)])
    return b, desc


def mutate_h5(src: Path, dst: Path, rng) -> str:
    """A trace .h5: h5py edits (delete, dtype, shape, attributes, key names, groups turned
    into datasets, unrelated content, links) or byte mutations of the file."""
    import h5py
    shutil.copyfile(src, dst)
    r = rng.random()
    if r < 0.25:
        data, desc = mutate_bytes(dst.read_bytes(), rng)
        dst.write_bytes(data)
        return desc
    if r < 0.32:
        kind = _pick(rng, ["empty", "unrelated", "groups only", "dataset root"])
        dst.unlink()
        with h5py.File(dst, "w") as h:
            if kind == "unrelated":
                h["weights"] = np.arange(10)
                h.create_group("meta").attrs["x"] = 1
            elif kind == "groups only":
                h.create_group("tensors")
                h.create_group("outputs")
            elif kind == "dataset root":
                h["tensors"] = np.zeros(3)
        return f"an h5 that is not a trace: {kind}"
    desc = []
    with h5py.File(dst, "r+") as h:
        for _ in range(_n_ops(rng, 3)):
            dsets = []  # (not the unallocated giant of an earlier "huge" edit)
            h.visititems(lambda name, obj: dsets.append(name) if isinstance(obj, h5py.Dataset)
                         and obj.size < 1 << 24 else None)
            groups = [g for g in ("tensors", "outputs", "accumulators") if g in h]
            kind = _pick(rng, ["delete", "dtype", "dtype", "shape", "shape", "attr", "attr",
                               "key", "group", "root_attr", "link", "huge"])
            name = _pick(rng, dsets) if dsets else None
            if name is None:
                break
            try:  # (h5py may refuse an edit of what earlier edits left: it stops there)
                ds = h[name]
                if kind == "delete":
                    del h[name]
                    desc.append(f"delete {name}")
                elif kind == "dtype":
                    v = ds[()]
                    new = _pick(rng, ["f4", "f8", "i8", "u1", "i2", "bool", "c8", "S4", "str",
                                      "compound"])
                    if new == "str":
                        nv = np.array([str(x) for x in np.ravel(v)], dtype=h5py.string_dtype())
                    elif new == "compound":
                        nv = np.zeros(np.shape(v), dtype=[("a", "i1"), ("b", "f4")])
                    else:
                        nv = np.asarray(v).astype(new)
                    attrs = dict(ds.attrs)
                    del h[name]
                    h[name] = nv
                    h[name].attrs.update(attrs)
                    desc.append(f"{name} as {new}")
                elif kind == "shape":
                    v = np.asarray(ds[()])
                    new = _pick(rng, ["flat", "empty", "scalar", "extra dim", "half", "transposed"])
                    nv = {"flat": lambda: v.reshape(-1), "empty": lambda: v.reshape(-1)[:0],
                          "scalar": lambda: np.asarray(v.reshape(-1)[0] if v.size else 0),
                          "extra dim": lambda: v[None], "half": lambda: v.reshape(-1)[:v.size // 2],
                          "transposed": lambda: v.T}[new]()
                    attrs = dict(ds.attrs)
                    del h[name]
                    h[name] = nv
                    h[name].attrs.update(attrs)
                    desc.append(f"{name} shape {list(v.shape)} -> {list(np.shape(nv))}")
                elif kind == "attr":
                    keys = list(ds.attrs)
                    a = _pick(rng, keys) if keys and rng.random() < 0.8 else "kind"
                    new = _pick(rng, [None, "constant", "input", "weird", -5, 2**40, 1.5,
                                      np.arange(3), b"\xff\xfe", "x" * 300, np.float64("nan")])
                    if new is None:
                        if a in ds.attrs:
                            del ds.attrs[a]
                    else:
                        ds.attrs[a] = new
                    desc.append(f"{name} attribute {a} = {str(new)[:20]!r}")
                elif kind == "key":
                    parent, _, leaf = name.rpartition("/")
                    new = _pick(rng, ["x", "-1", "01", "1.5", "99999999999999999999", " 3", "1e3"])
                    target = f"{parent}/{new}" if parent else new
                    if target not in h:
                        h.move(name, target)
                        desc.append(f"rename {name} -> {target}")
                elif kind == "group" and groups:
                    g = _pick(rng, groups)
                    del h[g]
                    if rng.random() < 0.5:
                        h[g] = np.arange(4)
                        desc.append(f"group {g} replaced by a dataset")
                    else:
                        h.create_group(g).create_group("0")
                        desc.append(f"group {g} holding a group")
                elif kind == "root_attr":
                    a = _pick(rng, list(h.attrs) or ["format_version"])
                    h.attrs[a] = _pick(rng, [99, -1, "x", np.arange(2)])
                    desc.append(f"root attribute {a} changed")
                elif kind == "link":
                    parent, _, leaf = name.rpartition("/")
                    del h[name]
                    if rng.random() < 0.5:
                        h[name] = h5py.ExternalLink("elsewhere.h5", "/x")
                        desc.append(f"{name} an external link to a missing file")
                    else:
                        h[name] = h5py.SoftLink("/nowhere")
                        desc.append(f"{name} a dangling soft link")
                elif kind == "huge":
                    attrs = dict(ds.attrs)
                    del h[name]
                    h.create_dataset(name, shape=(1 << 36,), dtype="i1", chunks=(1 << 16,))
                    h[name].attrs.update(attrs)
                    desc.append(f"{name} a 64 GiB dataset that is never written (unallocated)")
            except Exception as e:  # noqa: BLE001
                desc.append(f"({kind} of {name} stopped part way: {type(e).__name__})")
    return "; ".join(desc) or "unchanged"


# -- model mutations through the graph IR (tflite) and the protobuf (onnx) -------------------
def mutate_tflite_graph(data: bytes, rng) -> tuple[bytes, str]:
    """Interesting values in the model's fields: shapes, dtypes, quantization, tensor
    indices, op types and options, graph inputs/outputs; written back by hwsim's writer."""
    from hwsim.frontends.tflite_reader import parse_tflite
    from hwsim.frontends.tflite_writer import serialize_tflite
    from hwsim.ir import QuantParams
    g = parse_tflite(data, "seed")
    desc = []
    for _ in range(_n_ops(rng, 3)):
        kind = _pick(rng, ["shape", "shape", "dtype", "quant", "quant", "data", "op_io",
                           "op_type", "attr", "attr", "graph_io", "drop_op"])
        t = _pick(rng, g.tensors)
        op = _pick(rng, g.ops)
        if kind == "shape":
            shape = list(t.shape)
            if shape and rng.random() < 0.7:
                k = int(rng.integers(len(shape)))
                shape[k] = _pick(rng, [0, -1, -2, 1, 2, shape[k] + 1, 1 << 20, 0x7FFFFFFF, 3])
            else:
                shape = _pick(rng, [[], shape + [1], shape[1:], [1] * 7])
            t.shape = tuple(shape)
            desc.append(f"tensor {t.index} shape {shape}")
        elif kind == "dtype":
            new = _pick(rng, [np.int16, np.int32, np.uint8, np.float32, np.int64, np.bool_,
                              np.float16])
            t.dtype = np.dtype(new)
            if t.data is not None and rng.random() < 0.5:
                t.data = t.data.astype(new)
            desc.append(f"tensor {t.index} dtype {np.dtype(new)}")
        elif kind == "quant":
            q = t.quant or QuantParams(np.ones(1, np.float32), np.zeros(1, np.int64))
            what = _pick(rng, ["scale", "zp", "axis", "len", "none"])
            if what == "scale":
                q.scales = q.scales.copy()
                q.scales[0] = _pick(rng, [0.0, -1.0, np.nan, np.inf, 1e-45, 3e38, 1.0])
            elif what == "zp":
                q.zero_points = q.zero_points.copy()
                q.zero_points[0] = _pick(rng, [1000, -1000, 2**40, -129, 128, 255])
            elif what == "axis":
                q.axis = _pick(rng, [-1, 4, 7, 1, 3])
            elif what == "len":
                q.scales = np.concatenate([q.scales, q.scales[:1]])
                q.zero_points = np.concatenate([q.zero_points, q.zero_points[:1]])
            t.quant = None if what == "none" else q
            desc.append(f"tensor {t.index} quantization {what}")
        elif kind == "data" and t.data is not None:
            flat = t.data.reshape(-1)
            if rng.random() < 0.5:
                t.data = flat[:int(rng.integers(flat.size))]  # fewer bytes than the shape
                desc.append(f"tensor {t.index} data cut to {t.data.size} of {flat.size}")
            else:
                t.data = None
                desc.append(f"tensor {t.index} loses its data (no longer a constant)")
        elif kind == "op_io":
            lst = op.inputs if rng.random() < 0.6 or not op.outputs else op.outputs
            new = _pick(rng, [-1, len(g.tensors), 10**6, 0, -2, len(g.tensors) - 1])
            if lst and rng.random() < 0.7:
                lst[int(rng.integers(len(lst)))] = new
            elif lst and rng.random() < 0.5:
                lst.pop()
            else:
                lst.append(new)
            desc.append(f"op {op.index} ({op.type}) io -> {op.inputs}/{op.outputs}")
        elif kind == "op_type":
            new = _pick(rng, ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED",
                              "SOFTMAX", "RESHAPE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MUL",
                              "CONCATENATION", "PAD", "TRANSPOSE", "MEAN", "LOGISTIC",
                              "QUANTIZE", "DEQUANTIZE", "SVDF", "GATHER", "L2_NORMALIZATION"])
            old = op.type
            op.type = new
            op.attrs = {} if rng.random() < 0.5 else op.attrs
            desc.append(f"op {op.index} {old} -> {new}")
        elif kind == "attr" and op.attrs:
            a = _pick(rng, sorted(op.attrs))
            v = op.attrs[a]
            if isinstance(v, str):
                new = _pick(rng, ["SAME", "VALID", "RELU", "TANH", "SIGN_BIT", "NONE"])
            elif isinstance(v, list):
                new = _pick(rng, [[], [0], [-1, 5], v + [1], [2**31 - 1]])
            elif isinstance(v, float):
                new = _pick(rng, [0.0, -1.0, float("nan"), float("inf"), 1e30])
            else:
                new = _pick(rng, [0, -1, -2, 2, 1000, 2**31 - 1, -2**31])
            op.attrs[a] = new
            desc.append(f"op {op.index} ({op.type}) {a}: {v!r} -> {new!r}")
        elif kind == "graph_io":
            lst = g.inputs if rng.random() < 0.5 else g.outputs
            new = _pick(rng, [[], [0, 0], [len(g.tensors)], [-1], [1], lst + [3]])
            lst[:] = new
            desc.append(f"graph inputs/outputs -> {g.inputs}/{g.outputs}")
        elif kind == "drop_op" and len(g.ops) > 1:
            k = int(rng.integers(len(g.ops)))
            del g.ops[k]
            for j, o in enumerate(g.ops):
                o.index = j
            desc.append(f"remove op {k}")
    try:
        return serialize_tflite(g), "graph: " + ("; ".join(desc) or "unchanged")
    except Exception as e:  # the writer refuses it: fall back to bytes
        b, d = mutate_bytes(data, rng)
        return b, f"bytes (graph edit not writable: {type(e).__name__}): {d}"


def tflite_hot_ranges(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the flatbuffer that are not constant data (tables, vtables, vectors of
    shapes and indices): where a flipped byte changes structure rather than a weight."""
    from hwsim.frontends.tflite_schema import schema_class
    m = schema_class("Model").GetRootAs(data, 0)
    cold = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        n = b.DataLength()
        if n > 16:
            o = b._tab.Offset(4)
            start = b._tab.Vector(o)
            cold.append((start, start + n))
    cold.sort()
    hot, pos = [], 0
    for s, e in cold:
        if s > pos:
            hot.append((pos, s))
        pos = max(pos, e)
    if pos < len(data):
        hot.append((pos, len(data)))
    return hot


def mutate_onnx_model(data: bytes, rng) -> tuple[bytes, str]:
    """Interesting values in an ONNX model: op types, attributes, inputs, initializer dims,
    dtypes and data, value_info shapes, opset; serialized back with protobuf."""
    import onnx
    from onnx import TensorProto, helper
    m = onnx.ModelProto()
    m.ParseFromString(data)
    g = m.graph
    desc = []
    for _ in range(_n_ops(rng, 3)):
        kind = _pick(rng, ["op_type", "attr", "attr", "input", "init_dims", "init_dtype",
                           "init_data", "io_shape", "opset", "drop_node", "drop_init",
                           "dup_node", "output"])
        node = _pick(rng, g.node) if len(g.node) else None
        if kind == "op_type" and node is not None:
            new = _pick(rng, ["Conv", "Gemm", "MaxPool", "Relu", "Add", "Concat", "Reshape",
                              "LSTM", "Loop", "If", "NonMaxSuppression", "Unknown", "Softmax",
                              "BatchNormalization", "Resize", "Slice", "Transpose", "Split",
                              "Pad", "Flatten", "Squeeze"])
            desc.append(f"node {node.name or node.op_type} op {node.op_type} -> {new}")
            node.op_type = new
        elif kind == "attr" and node is not None and len(node.attribute):
            a = _pick(rng, node.attribute)
            if a.type == onnx.AttributeProto.INTS and len(a.ints):
                k = int(rng.integers(len(a.ints)))
                a.ints[k] = _pick(rng, [0, -1, -5, 2**31 - 1, 100, 2**40])
                if rng.random() < 0.3:
                    del a.ints[-1]
            elif a.type == onnx.AttributeProto.INT:
                a.i = _pick(rng, [0, -1, -5, 2**31 - 1, 100, 2**40, 3])
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = _pick(rng, [0.0, -1.0, float("nan"), float("inf"), 1e30])
            elif a.type == onnx.AttributeProto.STRING:
                a.s = _pick(rng, [b"", b"bogus", b"\xff\xfe", b"cubic"])
            else:
                a.type = onnx.AttributeProto.STRING
                a.s = b"wrong type"
            desc.append(f"node {node.op_type} attribute {a.name} changed")
        elif kind == "input" and node is not None and len(node.input):
            k = int(rng.integers(len(node.input)))
            new = _pick(rng, ["", "does_not_exist", node.output[0] if len(node.output) else "x",
                              g.input[0].name])
            desc.append(f"node {node.op_type} input {k} {node.input[k]!r} -> {new!r}")
            node.input[k] = new
        elif kind.startswith("init") and len(g.initializer):
            t = _pick(rng, g.initializer)
            if kind == "init_dims" and len(t.dims):
                k = int(rng.integers(len(t.dims)))
                t.dims[k] = _pick(rng, [0, -1, 1, t.dims[k] + 1, 2**31, 2**40])
                desc.append(f"initializer {t.name} dims -> {list(t.dims)}")
            elif kind == "init_dtype":
                t.data_type = _pick(rng, [TensorProto.INT8, TensorProto.DOUBLE,
                                          TensorProto.STRING, TensorProto.INT64, 0, 99,
                                          TensorProto.FLOAT16, TensorProto.BOOL])
                desc.append(f"initializer {t.name} data_type -> {t.data_type}")
            else:
                raw = bytes(t.raw_data)
                if raw:
                    t.raw_data = raw[:int(rng.integers(len(raw)))]
                    desc.append(f"initializer {t.name} raw data cut to {len(t.raw_data)}")
                else:
                    del t.float_data[:]
                    desc.append(f"initializer {t.name} loses its data")
        elif kind == "io_shape":
            vi = _pick(rng, list(g.input) + list(g.output))
            dims = vi.type.tensor_type.shape.dim
            if len(dims) and rng.random() < 0.7:
                d = _pick(rng, dims)
                if rng.random() < 0.7:
                    d.dim_value = _pick(rng, [0, 1, 2, 3, 7, 2**31, 2**40])
                else:
                    d.dim_param = "N"
            else:
                vi.type.tensor_type.elem_type = _pick(rng, [TensorProto.INT8, TensorProto.STRING,
                                                            TensorProto.DOUBLE, 0])
            desc.append(f"value {vi.name} type/shape changed")
        elif kind == "opset":
            m.opset_import[0].version = _pick(rng, [1, 6, 7, 10, 11, 18, 21, 99, -1])
            desc.append(f"opset -> {m.opset_import[0].version}")
        elif kind == "drop_node" and len(g.node) > 1:
            k = int(rng.integers(len(g.node)))
            desc.append(f"remove node {k} ({g.node[k].op_type})")
            del g.node[k]
        elif kind == "drop_init" and len(g.initializer):
            k = int(rng.integers(len(g.initializer)))
            desc.append(f"remove initializer {g.initializer[k].name}")
            del g.initializer[k]
        elif kind == "dup_node" and node is not None:
            g.node.append(node)  # a second producer of the same value (or a cycle)
            desc.append(f"node {node.op_type} twice")
        elif kind == "output":
            if rng.random() < 0.5 and len(g.output):
                del g.output[:]
                desc.append("no graph outputs")
            else:
                g.output.append(helper.make_tensor_value_info(
                    _pick(rng, [g.input[0].name, "missing", g.node[0].output[0]]),
                    TensorProto.FLOAT, None))
                desc.append("extra graph output")
    return m.SerializeToString(), "model: " + ("; ".join(desc) or "unchanged")


# ============================================================================================
# Seeds: valid files made by hwsim's own code
# ============================================================================================
DARKNET_CFG = """\
[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=3
stride=1
pad=1
groups=8
activation=relu

[shortcut]
from=-2
activation=linear

[route]
layers=-1,-3

[upsample]
stride=2

[convolutional]
batch_normalize=1
filters=4
size=1
stride=2
pad=0
activation=logistic

[reorg]
stride=2

[connected]
output=6
activation=linear

[softmax]
groups=1
"""
SEED_MANIFEST_LAYERS = 5  # the export seed: the example's last five ops (ADD ... SOFTMAX)


def _darknet_weights(cfg_text: str, path: Path, seed: int = 0) -> None:
    """A .weights file of exactly the size the cfg needs (sizes from a run of the reader with
    random parameters, which records every layer's parameter count)."""
    from hwsim.frontends import darknet_reader as dr
    counts = []
    real_take = dr._Weights.take

    def take(self, n, what, rng=None):
        counts.append(n)
        return real_take(self, n, what, rng)

    dr._Weights.take = take
    try:
        dr.darknet_to_onnx(cfg_text, None, seed=seed)
    finally:
        dr._Weights.take = real_take
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 1.5, n).astype(np.float32) for n in counts]
    dr.write_weights(path, arrays)


def _onnx_cnn(path: Path) -> None:
    """A float CNN with the ops ONNX exporters emit (as tests/test_frontend_onnx.py builds
    its models): Conv, BatchNormalization, Clip, MaxPool, grouped Conv, LeakyRelu, Add,
    Concat, Pad, AveragePool, Transpose, Reshape, Flatten, Gemm, Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    inits = {"w1": w(8, 3, 3, 3), "b1": w(8), "s": np.abs(w(8)) + 0.5, "bb": w(8), "mu": w(8),
             "var": np.abs(w(8)) + 0.5, "lo": np.float32(0), "hi": np.float32(6),
             "w2": w(8, 1, 3, 3), "b2": w(8), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1]),
             "shape": np.array([1, 16, 4, 4]), "w3": w(10, 256), "b3": w(10)}
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[1, 1]),
        n("BatchNormalization", ["c1", "s", "bb", "mu", "var"], ["bn"], epsilon=1e-5),
        n("Clip", ["bn", "lo", "hi"], ["r1"]),
        n("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["p1", "w2", "b2"], ["d1"], group=8, pads=[1, 1, 1, 1]),
        n("LeakyRelu", ["d1"], ["l1"], alpha=0.1),
        n("Add", ["l1", "p1"], ["a1"]),
        n("Concat", ["a1", "p1"], ["cat"], axis=1),
        n("Pad", ["cat", "pads"], ["pad"], mode="constant"),
        n("AveragePool", ["pad"], ["ap"], kernel_shape=[3, 3], strides=[2, 2]),
        n("Transpose", ["ap"], ["tr"], perm=[0, 1, 3, 2]),
        n("Reshape", ["tr", "shape"], ["rs"]),
        n("Flatten", ["rs"], ["f"], axis=1),
        n("Gemm", ["f", "w3", "b3"], ["g"], transB=1),
        n("Softmax", ["g"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "fuzz_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    path.write_bytes(m.SerializeToString())


def _cli(*argv) -> None:
    from hwsim.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    assert rc == 0, f"hwsim {' '.join(map(str, argv))} failed ({rc})"


def build_seeds(d: Path) -> dict:
    """Make every seed file in ``d``; returns (and writes to d/seeds.json) their paths."""
    import onnx

    from hwsim import examples
    from hwsim.frontends.darknet_reader import darknet_to_onnx
    from hwsim.frontends.tflite_reader import read_tflite
    from hwsim.frontends.tflite_writer import serialize_tflite
    from hwsim.hw.config import PRESET_DIR
    d.mkdir(parents=True, exist_ok=True)
    s = {}
    _cli("example", "--out", d / "example")
    s["model"] = str(d / "example" / examples.EXAMPLE_MODEL_FILE)
    s["npy"] = str(d / "example" / examples.EXAMPLE_INPUT_FILE)
    s["trace"] = str(d / "trace.h5")
    _cli("run", s["model"], "--input", s["npy"], "--trace", s["trace"], "-q")
    # the export seed: the example's last ops (ADD, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, and
    # SOFTMAX on the host), so that one manifest parse takes ~0.1 s instead of ~0.5 s
    g = read_tflite(s["model"])
    g.ops = g.ops[-SEED_MANIFEST_LAYERS:]
    g.inputs = list(g.ops[0].inputs)
    for k, op in enumerate(g.ops):
        op.index = k
    s["tail_model"] = str(d / "example_tail.tflite")
    Path(s["tail_model"]).write_bytes(serialize_tflite(g, "hwsim example network, tail"))
    s["export"] = str(d / "export")
    _cli("export", s["tail_model"], "--random-input", "0", "--out", s["export"], "--host-tail",
         "-q")
    # a dump folder (RTL results laid out like an export) holding two vectors
    man = __import__("yaml").safe_load(open(os.path.join(s["export"], "manifest.yaml")))
    s["dump"] = str(d / "dump")
    folders = [L["folder"] for L in man["layers"] if "folder" in L]  # aliases have none
    for folder in folders[-2:]:
        os.makedirs(os.path.join(s["dump"], folder))
        shutil.copy(os.path.join(s["export"], folder, "output.hex"),
                    os.path.join(s["dump"], folder, "output.hex"))
    s["vector_files"] = sorted(
        os.path.relpath(os.path.join(root, f), s["export"])
        for root, _, files in os.walk(os.path.join(s["export"], "layers")) for f in files)
    # float models
    s["onnx_cnn"] = str(d / "cnn.onnx")
    _onnx_cnn(Path(s["onnx_cnn"]))
    s["cfg"] = str(d / "net.cfg")
    Path(s["cfg"]).write_text(DARKNET_CFG)
    s["weights"] = str(d / "net.weights")
    _darknet_weights(DARKNET_CFG, Path(s["weights"]))
    model, _ = darknet_to_onnx(s["cfg"], s["weights"])
    s["onnx_darknet"] = str(d / "darknet.onnx")
    onnx.save(model, s["onnx_darknet"])
    s["calib"] = str(d / "calib.npy")
    np.save(s["calib"], np.random.default_rng(3).uniform(0, 1, (2, 3, 16, 16)).astype(np.float32))
    s["presets"] = sorted(str(p) for p in Path(PRESET_DIR).glob("*.yaml"))
    (d / "seeds.json").write_text(json.dumps(s, indent=1))
    return s


# ============================================================================================
# Formats: how a mutant is made and which command reads it
# ============================================================================================
@dataclass
class Case:
    argv: list[str]
    desc: str
    allowed: frozenset = frozenset({0, 2})
    sentinel: str | None = None  # an output file that exists before the run


@dataclass
class Format:
    name: str
    make: Callable  # (seeds, rng, case_dir, out_dir, i) -> Case
    seed_case: Callable  # (seeds, case_dir, out_dir) -> Case: the unmutated seed, exit 0
    doc: str = ""


def _sentinel(out: Path, name: str) -> str:
    p = out / name
    p.write_bytes(SENTINEL)
    return str(p)


def _tflite_case(s, case, out, data, desc, i):
    m = case / "model.tflite"
    m.write_bytes(data)
    if i % 2 == 0:
        return Case(["info", str(m)], desc)
    y = _sentinel(out, "y.npy")
    return Case(["run", str(m), "--random-input", "0", "--output", y, "--trace",
                 str(out / "t.h5"), "-q"], desc, sentinel=y)


def make_tflite(s, rng, case, out, i):
    seed = Path(s["model"]).read_bytes()
    if rng.random() < 0.5:
        data, desc = mutate_tflite_graph(seed, rng)
    else:
        data, desc = mutate_bytes(seed, rng, hot=tflite_hot_ranges(seed))
    return _tflite_case(s, case, out, data, desc, i)


def _onnx_case(s, case, out, data, desc, i):
    m = case / "model.onnx"
    m.write_bytes(data)
    if i % 4 == 3:
        return Case(["info", str(m)], desc)
    q = _sentinel(out, "q.tflite")
    return Case(["quantize", str(m), "--calib", s["calib"], "--method", "minmax", "--out", q],
                desc, sentinel=q)


def make_onnx(s, rng, case, out, i):
    src = s["onnx_cnn"] if i % 2 == 0 else s["onnx_darknet"]
    seed = Path(src).read_bytes()
    if rng.random() < 0.6:
        data, desc = mutate_onnx_model(seed, rng)
    else:
        data, desc = mutate_bytes(seed, rng)
    return _onnx_case(s, case, out, data, f"{Path(src).name}: {desc}", i)


def _darknet_case(s, case, out, cfg: bytes, weights: bytes, desc):
    c, w = case / "net.cfg", case / "net.weights"
    c.write_bytes(cfg)
    w.write_bytes(weights)
    q = _sentinel(out, "q.tflite")
    return Case(["quantize", str(c), "--weights", str(w), "--calib", s["calib"], "--method",
                 "minmax", "--out", q], desc, sentinel=q)


def make_darknet(s, rng, case, out, i):
    cfg, weights = Path(s["cfg"]).read_bytes(), Path(s["weights"]).read_bytes()
    r = rng.random()
    if r < 0.6:
        cfg, desc = mutate_text(cfg, rng)
        desc = "cfg: " + desc
    elif r < 0.9:
        weights, desc = mutate_bytes(weights, rng, hot=[(0, 20)])
        desc = "weights: " + desc
    else:
        cfg, d1 = mutate_text(cfg, rng)
        weights, d2 = mutate_bytes(weights, rng)
        desc = f"cfg: {d1}; weights: {d2}"
    return _darknet_case(s, case, out, cfg, weights, desc)


def _config_case(case, out, data, desc, i):
    c = case / "accel.yaml"
    c.write_bytes(data)
    if i % 5 == 4:
        return Case(["rtl-params", str(c), "-o", "-"], desc)
    p = _sentinel(out, "hwsim_params.vh")
    return Case(["rtl-params", str(c), "-o", p], desc, sentinel=p)


def make_config(s, rng, case, out, i):
    src = s["presets"][i % len(s["presets"])]
    data, desc = mutate_yaml(Path(src).read_bytes(), rng)
    return _config_case(case, out, data, f"{Path(src).name}: {desc}", i)


def _manifest_case(s, case, out, data, desc, i):
    """The manifest of GOLDEN (even cases; OTHER a dump folder) or of OTHER (odd cases)."""
    d = case / ("golden" if i % 2 == 0 else "other")
    d.mkdir()
    (d / "manifest.yaml").write_bytes(data)
    if i % 2 == 0:
        _link(Path(s["export"]) / "vectors.h5", d / "vectors.h5")
        return Case(["compare", str(d), s["dump"]], desc, frozenset({0, 1, 2}))
    os.symlink(Path(s["export"]) / "layers", d / "layers")
    return Case(["compare", s["export"], str(d)], desc, frozenset({0, 1, 2}))


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def make_manifest(s, rng, case, out, i):
    data, desc = mutate_yaml((Path(s["export"]) / "manifest.yaml").read_bytes(), rng)
    return _manifest_case(s, case, out, data, desc, i)


def _memory_case(s, case, out, fmt, rng, i, mutate=True):
    """A vector file of one layer in a dump folder, or a whole-memory dump."""
    vecs = [v for v in s["vector_files"] if v.endswith("." + fmt) and
            os.path.basename(v).startswith(("input", "output", "acc"))]  # compared vectors
    whole = i % 3 == 2
    if whole:
        memory = "accumulators" if i % 6 == 5 else "activations"
        stem = "acc" if memory == "accumulators" else "act_final"
        src = Path(s["export"]) / "mem" / f"{stem}.{fmt}"
        rel = src.name
    else:
        rel = vecs[int(rng.integers(len(vecs)))] if mutate else vecs[0]
        src = Path(s["export"]) / rel
    data, desc = src.read_bytes(), "unchanged"
    if mutate:
        binary = fmt == "bin" or rng.random() < 0.15
        data, desc = mutate_bytes(data, rng) if binary else mutate_text(data, rng)
    desc = f"{rel}: {desc}"
    if whole:
        f = case / src.name
        f.write_bytes(data)
        argv = ["compare", s["export"], str(f), "--memory", memory]
    else:
        f = case / "dump" / rel
        f.parent.mkdir(parents=True)
        f.write_bytes(data)
        argv = ["compare", s["export"], str(case / "dump")]
    if i % 4 == 1:
        png = _sentinel(out, "first_bad.png")
        return Case(argv + ["--png", png], desc, frozenset({0, 1, 2}))
    return Case(argv, desc, frozenset({0, 1, 2}))


def _memory_format(fmt):
    return Format(fmt, lambda s, rng, case, out, i: _memory_case(s, case, out, fmt, rng, i),
                  lambda s, case, out: _memory_case(s, case, out, fmt, None, 0, mutate=False),
                  f".{fmt} memory files: hwsim compare EXPORT DUMP / EXPORT FILE.{fmt}")


def _trace_case(s, case, out, desc, i, expect=None):
    m = str(case / "trace.h5")
    variant = i % 4
    if variant == 0:
        argv = ["compare", s["trace"], m]
    elif variant == 1:
        argv = ["compare", m, s["trace"]]
    elif variant == 2:
        argv = ["compare", s["trace"], m, "--model", s["model"]]
    else:
        png = _sentinel(out, "first_bad.png")
        argv = ["compare", m, s["trace"], "--png", png]
    return Case(argv, desc, expect or frozenset({0, 1, 2}))


def make_trace(s, rng, case, out, i):
    desc = mutate_h5(Path(s["trace"]), case / "trace.h5", rng)
    expect = frozenset({2}) if desc.startswith("an h5 that is not a trace") else None
    return _trace_case(s, case, out, desc, i, expect)


def _npy_case(s, case, out, data, desc):
    x = case / "x.npy"
    x.write_bytes(data)
    y = _sentinel(out, "y.npy")
    return Case(["run", s["model"], "--input", str(x), "--output", y, "-q"], desc, sentinel=y)


def make_npy(s, rng, case, out, i):
    data, desc = mutate_npy(Path(s["npy"]).read_bytes(), rng)
    return _npy_case(s, case, out, data, desc)


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("tflite", make_tflite,
           lambda s, case, out: _tflite_case(s, case, out, Path(s["model"]).read_bytes(),
                                             "unchanged", 1),
           ".tflite models: hwsim info / hwsim run --random-input"),
    Format("onnx", make_onnx,
           lambda s, case, out: _onnx_case(s, case, out, Path(s["onnx_cnn"]).read_bytes(),
                                           "unchanged", 0),
           "float .onnx models: hwsim quantize --method minmax / hwsim info"),
    Format("darknet", make_darknet,
           lambda s, case, out: _darknet_case(s, case, out, Path(s["cfg"]).read_bytes(),
                                              Path(s["weights"]).read_bytes(), "unchanged"),
           "Darknet .cfg + .weights: hwsim quantize"),
    Format("config", make_config,
           lambda s, case, out: _config_case(case, out, Path(s["presets"][0]).read_bytes(),
                                             "unchanged", 0),
           "accelerator config YAML: hwsim rtl-params"),
    Format("manifest", make_manifest,
           lambda s, case, out: _manifest_case(
               s, case, out, (Path(s["export"]) / "manifest.yaml").read_bytes(), "unchanged", 0),
           "export manifest.yaml: hwsim compare (GOLDEN or OTHER)"),
    _memory_format("hex"), _memory_format("mem"), _memory_format("coe"), _memory_format("mif"),
    _memory_format("bin"),
    Format("trace", make_trace,
           lambda s, case, out: (shutil.copyfile(s["trace"], case / "trace.h5"),
                                 _trace_case(s, case, out, "unchanged", 0))[1],
           "trace .h5: hwsim compare"),
    Format("npy", make_npy,
           lambda s, case, out: _npy_case(s, case, out, Path(s["npy"]).read_bytes(), "unchanged"),
           ".npy inputs: hwsim run --input"),
]}


def case_rng(fmt: str, i: int):
    return np.random.default_rng([BASE_SEED, zlib.crc32(fmt.encode()), i])


def prepare_case(fmt: str, i: int, seeds: dict, case: Path) -> Case:
    """Write mutant ``i`` of ``fmt`` (``i == -1``: the seed itself) into ``case``."""
    case.mkdir(parents=True)
    out = case / "out"
    out.mkdir()
    f = FORMATS[fmt]
    if i < 0:
        return f.seed_case(seeds, case, out)
    return f.make(seeds, case_rng(fmt, i), case, out, i)


# ============================================================================================
# The worker: runs cases in-process, reports each on a pipe
# ============================================================================================
class HarnessError(Exception):
    """The fuzz harness itself failed (not a finding about hwsim)."""


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case (a BaseException: hwsim must not swallow it)."""


def snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in files + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


_IGNORED_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                     ResourceWarning)


def run_in_process(argv: list[str], cwd: Path, out_f, err_f,
                   timeout: float = SOFT_TIMEOUT) -> tuple[int | None, str]:
    """``hwsim.cli.main(argv)`` with fd 1/2 sent to the given files. Returns (exit code or
    None, the traceback of an exception that escaped main() or '')."""
    from hwsim.cli import main
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_f.fileno(), 1)
    os.dup2(err_f.fileno(), 2)
    old_cwd = os.getcwd()
    os.chdir(cwd)
    rc, tb = None, ""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            signal.alarm(int(timeout))
            try:
                rc = main(argv)
            finally:
                signal.alarm(0)
        # what a fresh process would print: each warning once, default filters
        seen = set()
        for w in caught:
            key = (str(w.message), w.category, w.filename, w.lineno)
            if issubclass(w.category, _IGNORED_WARNINGS) or key in seen:
                continue
            seen.add(key)
            sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno,
                                                    w.line))
    except CaseTimeout:
        tb = "TIMEOUT\n" + traceback.format_exc(limit=-8)
    except BaseException:  # noqa: BLE001 -- anything escaping main() is the finding
        tb = traceback.format_exc(limit=-12)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.chdir(old_cwd)
    return rc, tb


def classify(c: Case, rc, tb, stdout: str, stderr: str, before: dict, after: dict,
             out_before: dict, out_after: dict, sentinel_ok: bool) -> tuple[str, str]:
    """(outcome, detail): outcome is rc0/rc1/rc2 or a failure kind."""
    if tb.startswith("TIMEOUT"):
        return "hang", tb
    if tb:
        return "traceback", tb
    if "Traceback (most recent call last)" in stderr + stdout:
        return "traceback", stderr[-3000:]
    temps = [p for p in after if os.path.basename(p).startswith(TEMP_PREFIX)]
    if temps:
        return "leftover", f"temp files left: {temps[:5]}"
    new = sorted(set(after) - set(before))
    changed = sorted(p for p in before if p in after and before[p] != after[p])
    gone = sorted(set(before) - set(after))
    if new or changed or gone:
        return "leftover", f"beside the inputs: new {new[:5]} changed {changed[:5]} " \
                           f"removed {gone[:5]}"
    if rc not in c.allowed:
        return "exit", f"exit code {rc}, allowed {sorted(c.allowed)}; stderr: {stderr[-500:]}"
    if rc == 2:
        lines = stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("hwsim: error: ") or \
                not stderr.endswith("\n"):
            return "stderr", f"not one 'hwsim: error:' line: {stderr[:800]!r}"
        if len(lines[0]) > MAX_ERROR_CHARS:
            return "stderr", f"a {len(lines[0]):,}-character error line: {lines[0][:300]!r}..."
    if rc not in (0, 1):  # an error (1 is compare's "they differ": it may write its --png)
        if out_after != out_before or not sentinel_ok:
            return "leftover", (f"output folder changed by a failed run: before "
                                f"{sorted(out_before)}, after {sorted(out_after)}, earlier "
                                f"output {'kept' if sentinel_ok else 'touched'}")
    return f"rc{rc}", ""


def run_case(fmt: str, i: int, seeds: dict, work: Path) -> dict:
    case = work / fmt / f"case{i}"
    if case.exists():
        shutil.rmtree(case)
    t0 = time.perf_counter()
    try:
        c = prepare_case(fmt, i, seeds, case)
    except Exception as e:  # a bug of this harness, not of hwsim
        raise HarnessError(f"making {fmt} case {i}: {traceback.format_exc()}") from e
    out = case / "out"
    before, out_before = snapshot(case), snapshot(out)
    before = {k: v for k, v in before.items() if not k.startswith("out" + os.sep)}
    with tempfile.TemporaryFile(dir=work) as fo, tempfile.TemporaryFile(dir=work) as fe:
        rc, tb = run_in_process(c.argv, case, fo, fe, STARTUP_TIMEOUT if i < 0 else SOFT_TIMEOUT)
        fo.seek(0)
        fe.seek(0)
        stdout = fo.read().decode("utf-8", "replace")
        stderr = fe.read().decode("utf-8", "replace")
    after, out_after = snapshot(case), snapshot(out)
    after = {k: v for k, v in after.items() if not k.startswith("out" + os.sep)}
    sentinel_ok = c.sentinel is None or (os.path.isfile(c.sentinel) and
                                         Path(c.sentinel).read_bytes() == SENTINEL)
    outcome, detail = classify(c, rc, tb, stdout, stderr, before, after, out_before,
                               out_after, sentinel_ok)
    res = {"i": i, "outcome": outcome, "rc": rc, "argv": c.argv, "desc": c.desc[:600],
           "detail": detail[-4000:], "stderr": stderr[:600], "seconds": time.perf_counter() - t0}
    if outcome.startswith("rc"):
        shutil.rmtree(case, ignore_errors=True)
    else:  # kept for reproduction
        keep = work / "failures" / f"{fmt}-{i}"
        if keep.exists():
            shutil.rmtree(keep)
        shutil.move(str(case), str(keep))
        (keep / "repro.txt").write_text(f"hwsim {' '.join(c.argv)}\n{c.desc}\n\n{detail}\n")
    return res


def worker_main(fmt: str, seeds_json: str, work: str, start: int, stop: int) -> int:
    """Run cases start..stop-1 of ``fmt`` (start -1: the seed first); one JSON line per case
    on the original stdout."""
    import resource
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    def alarm(signum, frame):
        raise CaseTimeout()

    signal.signal(signal.SIGALRM, alarm)
    chan = os.fdopen(os.dup(1), "w", buffering=1)
    seeds = json.loads(Path(seeds_json).read_text())
    work_p = Path(work)
    import hwsim.cli  # noqa: F401 -- imports before the first case's clock starts
    for i in range(start, stop):
        chan.write(json.dumps({"start": i}) + "\n")
        try:
            res = run_case(fmt, i, seeds, work_p)
        except HarnessError as e:
            chan.write(json.dumps({"harness_error": str(e)}) + "\n")
            return 3
        chan.write(json.dumps(res) + "\n")
    chan.write(json.dumps({"done": True}) + "\n")
    return 0


# ============================================================================================
# The test process: start workers, watch them, restart after a crash or hang
# ============================================================================================
@dataclass
class FormatReport:
    fmt: str
    n: int
    results: dict = field(default_factory=dict)  # case index -> result dict
    seconds: float = 0.0
    restarts: int = 0

    def counts(self) -> dict:
        c: dict = {}
        for i, r in self.results.items():
            if i >= 0:
                c[r["outcome"]] = c.get(r["outcome"], 0) + 1
        return dict(sorted(c.items()))

    def failures(self) -> list[dict]:
        return [r for i, r in sorted(self.results.items())
                if (not r["outcome"].startswith("rc") or (i < 0 and r["outcome"] != "rc0"))
                and known_bug(self.fmt, r) is None]

    def known(self) -> dict:
        """Known bug -> how many cases it explains."""
        c: dict = {}
        for r in self.results.values():
            k = known_bug(self.fmt, r)
            if k is not None:
                c[k] = c.get(k, 0) + 1
        return c

    def line(self) -> str:
        c = self.counts()
        mutants = sum(c.values())
        return (f"{self.fmt:9s} {mutants:5d} mutants  " +
                "  ".join(f"{k} {v}" for k, v in c.items()) +
                f"  ({self.seconds:.1f} s, {self.restarts} worker restarts)")


# Failures whose fix is owned by someone else and reported to them: format -> [(text in the
# failure's detail, the bug)]. They are listed, not failed on; the test fails once a bug no
# longer shows (at the default N), so that its entry is removed when it is fixed.
KNOWN_BUGS: dict[str, list[tuple[str, str]]] = {}  # none open


def known_bug(fmt: str, r: dict) -> str | None:
    if r["outcome"] in ("traceback", "stderr", "exit", "leftover"):
        for needle, bug in KNOWN_BUGS.get(fmt, []):
            if needle in r["detail"]:
                return bug
    return None


def run_format(fmt: str, seeds_json: str, work: Path, n: int = N) -> FormatReport:
    rep = FormatReport(fmt, n)
    t0 = time.monotonic()
    start = -1
    work.mkdir(parents=True, exist_ok=True)
    while start < n:
        err_path = work / f"{fmt}-worker-{start}.log"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", fmt, seeds_json,
                 str(work), str(start), str(n)],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        current, last, buf, done = None, time.monotonic(), b"", False
        fd = proc.stdout.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], 1.0)
            now = time.monotonic()
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    msg = json.loads(ln)
                    if "harness_error" in msg:
                        proc.kill()
                        raise HarnessError(msg["harness_error"])
                    if "start" in msg:
                        current, last = msg["start"], now
                    elif "done" in msg:
                        done = True
                    else:
                        rep.results[msg["i"]] = msg
                        current, last = None, now
                continue
            limit = STARTUP_TIMEOUT + 60 if not rep.results and current in (None, start) \
                else HARD_TIMEOUT
            if now - last > limit:
                proc.kill()
                if current is not None:
                    rep.results[current] = {
                        "i": current, "outcome": "hang", "rc": None, "argv": [], "desc": "",
                        "detail": f"no answer within {limit:.0f} s (killed)", "stderr": "",
                        "seconds": now - last}
                break
        proc.wait()
        proc.stdout.close()
        if done:
            break
        if current is not None and current not in rep.results:
            tail = err_path.read_text(errors="replace")[-2000:]
            rep.results[current] = {
                "i": current, "outcome": "crash", "rc": proc.returncode, "argv": [],
                "desc": "", "detail": f"the worker died (exit {proc.returncode}): {tail}",
                "stderr": "", "seconds": 0.0}
        if current is None and not done:
            raise RuntimeError(f"fuzz worker for {fmt} exited ({proc.returncode}) outside a "
                               f"case: {err_path.read_text(errors='replace')[-3000:]}")
        rep.restarts += 1
        start = max(rep.results) + 1
    for r in rep.results.values():  # fill in the command of cases the worker could not report
        if not r["argv"]:
            c = prepare_case(fmt, r["i"], json.loads(Path(seeds_json).read_text()),
                             work / "failures" / f"{fmt}-{r['i']}-regenerated")
            r["argv"], r["desc"] = c.argv, c.desc
    rep.seconds = time.monotonic() - t0
    return rep


def real_process_check(fmt: str, rep: FormatReport, seeds_json: str, work: Path) -> str | None:
    """Re-run the first input-error case as ``python -m hwsim``: same exit code, one line."""
    errs = [r for i, r in sorted(rep.results.items()) if i >= 0 and r["outcome"] == "rc2"]
    if not errs:
        return None
    r = errs[0]
    case = work / "subprocess" / fmt
    if case.exists():
        shutil.rmtree(case)
    c = prepare_case(fmt, r["i"], json.loads(Path(seeds_json).read_text()), case)
    p = subprocess.run([sys.executable, "-m", "hwsim", *c.argv], cwd=case, capture_output=True,
                       timeout=HARD_TIMEOUT + STARTUP_TIMEOUT, stdin=subprocess.DEVNULL)
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 2 or len(err.splitlines()) != 1 or not err.startswith("hwsim: error: "):
        return (f"case {r['i']} as a process: exit {p.returncode} (in-process 2), stderr "
                f"{err[:800]!r}")
    return None


def format_failures(rep: FormatReport, limit: int = 12) -> str:
    lines = []
    for r in rep.failures()[:limit]:
        lines.append(f"--- {rep.fmt} case {r['i']}: {r['outcome']}\n    hwsim "
                     f"{' '.join(r['argv'])}\n    mutant: {r['desc']}\n    "
                     f"{r['detail'].strip()[-1500:]}")
    more = len(rep.failures()) - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "\n".join(lines)


def run_all(formats: list[str], seeds_json: str, work: Path, n: int = N,
            jobs: int = JOBS) -> dict:
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futs = {f: pool.submit(run_format, f, seeds_json, work / f, n) for f in formats}
        return {f: fut.exception() or fut.result() for f, fut in futs.items()}


# ============================================================================================
# pytest
# ============================================================================================
try:
    import pytest
except ImportError:  # pragma: no cover -- the worker does not need pytest
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="module")
    def fuzz(request, tmp_path_factory):
        """Seeds once; every selected format's run started at once (JOBS at a time)."""
        root = tmp_path_factory.mktemp("fuzz")
        build_seeds(root / "seeds")
        seeds_json = str(root / "seeds" / "seeds.json")
        selected = [item.callspec.params["fmt"] for item in request.session.items
                    if getattr(item, "originalname", "") == "test_fuzz_format"
                    and hasattr(item, "callspec")]
        before = snapshot(root / "seeds")
        pool = ThreadPoolExecutor(max(1, JOBS))
        futs = {f: pool.submit(run_format, f, seeds_json, root / "work" / f)
                for f in dict.fromkeys(selected or FORMATS)}
        yield {"futs": futs, "seeds_json": seeds_json, "root": root, "seeds_before": before}
        pool.shutdown(wait=True, cancel_futures=True)

    @pytest.mark.parametrize("fmt", list(FORMATS))
    def test_fuzz_format(fmt, fuzz):
        rep = fuzz["futs"][fmt].result()
        print("\n" + rep.line())
        seed = rep.results.get(-1)
        assert seed is not None and seed["outcome"] == "rc0", \
            f"the unmutated {fmt} seed must pass: {seed}"
        assert len([i for i in rep.results if i >= 0]) == N
        assert not rep.failures(), f"{rep.line()}\n{format_failures(rep)}"
        for bug, count in rep.known().items():
            print(f"  known bug, {count} cases: {bug}")
        if N >= 200:
            gone = [b for _, b in KNOWN_BUGS.get(fmt, []) if b not in rep.known()]
            assert not gone, f"fixed? remove from KNOWN_BUGS: {gone}"
        assert snapshot(fuzz["root"] / "seeds") == fuzz["seeds_before"], \
            "a case changed or added files among the seed files"
        problem = real_process_check(fmt, rep, fuzz["seeds_json"], fuzz["root"] / "work")
        assert problem is None, problem


# ============================================================================================
# by hand
# ============================================================================================
def _cli_main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", nargs=5, metavar=("FORMAT", "SEEDS", "WORK", "START", "STOP"))
    p.add_argument("--report", action="store_true", help="run the formats, print the table")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--n", type=int, default=N)
    p.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    p.add_argument("--case", nargs=2, metavar=("FORMAT", "I"),
                   help="write mutant I of FORMAT into --dir and print its command")
    a = p.parse_args(argv)
    if a.worker:
        fmt, seeds_json, work, start, stop = a.worker
        return worker_main(fmt, seeds_json, work, int(start), int(stop))
    root = Path(a.dir or tempfile.mkdtemp(prefix="hwsim-fuzz-"))
    seeds_json = root / "seeds" / "seeds.json"
    if not seeds_json.exists():
        build_seeds(root / "seeds")
    if a.case:
        fmt, i = a.case[0], int(a.case[1])
        c = prepare_case(fmt, i, json.loads(seeds_json.read_text()), root / f"{fmt}-{i}")
        print(f"{c.desc}\ncd {root / f'{fmt}-{i}'} && hwsim {' '.join(c.argv)}")
        return 0
    t0 = time.monotonic()
    reps = run_all(a.formats.split(","), str(seeds_json), root / "work", a.n)
    bad = 0
    for fmt, rep in reps.items():
        if isinstance(rep, Exception):
            print(f"{fmt}: the harness failed: {rep}")
            bad += 1
            continue
        print(rep.line())
        for bug, count in rep.known().items():
            print(f"  known bug, {count} cases: {bug}")
        if rep.failures():
            bad += len(rep.failures())
            print(format_failures(rep, 40))
    print(f"total {time.monotonic() - t0:.1f} s; {bad} failures; work folder {root}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_cli_main())
