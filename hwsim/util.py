"""Small shared helpers: atomic file writes, hashing."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile

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


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike):
    """Yield a temp folder beside ``path``; on success it replaces ``path`` (a folder)."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".hwsim-", dir=parent)
    except OSError as e:
        raise HwsimError(f"{path}: cannot create output folder ({e.strerror})") from None
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
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
