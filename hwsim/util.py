"""Small shared helpers: atomic file writes, hashing."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from typing import Callable

from .ir import HwsimError


def _umask_mode(base: int = 0o666) -> int:
    """base & ~umask: the mode open()/mkdir() would give (mkstemp/mkdtemp give 0o600/0o700)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hwsim-", suffix=".tmp", dir=folder)
    except OSError as e:
        raise HwsimError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise HwsimError(f"{path}: cannot write ({e.strerror})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temp path beside ``path``; on success rename it to ``path``, else delete it.

    For writers (h5py, numpy) that want a file name rather than bytes.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hwsim-", suffix=suffix or ".tmp", dir=folder)
        os.close(fd)
    except OSError as e:
        raise HwsimError(f"{path}: cannot write ({e.strerror})") from None
    try:
        yield tmp
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _files_under(folder: str) -> list[str]:
    """Every entry under ``folder`` that is not a plain sub-folder (files, symlinks, ...), as
    sorted relative POSIX paths. Symlinks to folders are entries, not descended into."""
    found = []
    for top, dirs, files in os.walk(folder):
        rel = os.path.relpath(top, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        links = [d for d in dirs if os.path.islink(os.path.join(top, d))]
        dirs[:] = [d for d in dirs if d not in links]
        found.extend(prefix + f for f in files + links)
    return sorted(found)


def check_output_dir(path: str | os.PathLike, owned: Callable[[str], set[str] | None],
                     what: str) -> None:
    """Refuse an output folder hwsim may not replace; return when ``path`` is free to write.

    ``path`` may be missing or empty, or hold an earlier output of the same command: then
    ``owned(path)`` returns the relative paths that output wrote (its manifest's listing) and
    the folder holds nothing else. A folder with any other file is refused, never removed,
    and so is the current folder or one that contains it. ``what`` names the output in
    messages ("an hwsim export").
    """
    shown = os.fspath(path)
    path = os.path.abspath(shown)
    cwd = os.path.realpath(os.getcwd())
    real = os.path.realpath(path)
    if os.path.commonpath([real, cwd]) == real:
        raise HwsimError(f"{shown}: is the current folder or contains it; give a new or "
                         f"empty folder for the output")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise HwsimError(f"{shown}: exists and is not a folder")
    if os.path.islink(path):
        raise HwsimError(f"{shown}: is a symlink; give a real folder for the output")
    if not os.path.isdir(path):
        return
    try:
        present = _files_under(path)
    except OSError as e:
        raise HwsimError(f"{shown}: cannot list the folder ({e.strerror or e})") from None
    if not present:
        return
    mine = owned(path)
    if mine is None:
        raise HwsimError(f"{shown}: exists, is not empty and is not {what}; remove it or "
                         f"choose another folder")
    others = [f for f in present if f not in mine]
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise HwsimError(f"{shown}: holds files that are not part of {what} there "
                         f"({others[0]}{more}); refusing to replace the folder; remove them "
                         f"or choose another folder")


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, owned: Callable[[str], set[str] | None] =
                      lambda _: None, what: str = "an hwsim output"):
    """Yield a temp folder beside ``path``; on success it replaces ``path``.

    ``path`` is checked by :func:`check_output_dir` before the temp folder is made and again
    just before the swap, so only an earlier output of the same kind (nothing but the files it
    listed) is ever removed.
    """
    path = os.path.abspath(os.fspath(path))
    check_output_dir(path, owned, what)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".hwsim-", dir=parent)
    except OSError as e:
        raise HwsimError(f"{path}: cannot create output folder ({e.strerror})") from None
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        check_output_dir(path, owned, what)
        if os.path.isdir(path):
            old = tmp + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: Buffers and packed constants start on a cache line (engine's activation buffers,
#: kernels.mac_pack.aligned).
CACHE_LINE = 64


def aligned_bytes(nbytes: int, align: int = CACHE_LINE):
    """An uninitialized uint8 numpy array of ``nbytes`` whose data starts on an ``align``-byte
    boundary (numpy aligns to 16)."""
    import numpy as np
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + nbytes]


def cpu_flags() -> frozenset[str]:
    """The host CPU's feature flags as Linux's /proc/cpuinfo lists them (``avx2``,
    ``avx512f``, ``avx512_vnni``, ...); empty where that file does not exist or lists none."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()
