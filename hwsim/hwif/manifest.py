"""The export's manifest: its schema constants, the YAML-safe form of its values, and the
one reader of a manifest a user hands us (docs/formats.md). ``hwsim.export.manifest`` writes
manifests with these constants; ``hwsim cosim`` and ``hwsim compare`` read them through
:func:`read_manifest`.
"""
from __future__ import annotations

import os
import posixpath
import stat

import numpy as np

from ..ir import HwsimError
from ..yamlio import MAX_MANIFEST_BYTES, brief, load_yaml_file

MANIFEST_FILE = "manifest.yaml"
VECTORS_FILE = "vectors.h5"
FORMAT = "hwsim-export"
FORMAT_VERSION = 1


def plain(v):
    """A YAML-safe copy of ``v`` (numpy scalars/arrays -> Python, dataclasses -> dicts)."""
    import dataclasses
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        v = dataclasses.asdict(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def read_manifest(folder: str | os.PathLike) -> dict:
    """``FOLDER/manifest.yaml``, checked: an hwsim export of this format version whose every
    file path is safe to open (:func:`check_manifest_paths`). Nothing else is read here."""
    folder = os.fspath(folder)
    path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise HwsimError(f"{folder}: no {MANIFEST_FILE} (not an `hwsim export` folder)")
    man = load_yaml_file(path, max_bytes=MAX_MANIFEST_BYTES, what="manifest")
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise HwsimError(f"{path}: not an hwsim export manifest (format: {FORMAT})")
    if man.get("format_version") != FORMAT_VERSION:
        raise HwsimError(f"{path}: format_version {brief(man.get('format_version'))} (this "
                         f"hwsim reads {FORMAT_VERSION})")
    check_manifest_paths(folder, man, path)
    return man


_LISTING_CACHE: dict = {}


def export_files(folder: str | os.PathLike) -> set[str] | None:
    """The files an earlier export in ``folder`` consists of (``manifest.yaml`` and every path
    it lists), or None when ``folder`` holds no readable export manifest (:func:`read_manifest`).

    Kept for the manifest file as it is (device, inode, size, modification and change times):
    ``hwsim export`` checks the folder it replaces before the work and again at the swap, and
    a large manifest takes a second or more to read; any change to the file reads it again.
    """
    path = os.path.join(os.fspath(folder), MANIFEST_FILE)
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
           st.st_ctime_ns)
    if key not in _LISTING_CACHE:
        try:
            man = read_manifest(folder)
        except HwsimError:
            listing = None
        else:
            listing = frozenset(f["path"] for f in man["files"]) | {MANIFEST_FILE}
        _LISTING_CACHE.clear()  # one folder at a time
        _LISTING_CACHE[key] = listing
    listing = _LISTING_CACHE[key]
    return None if listing is None else set(listing)


def _safe_relpath(rel, folder: str, where: str) -> str:
    """``rel`` if it is a normalised relative POSIX path that stays inside ``folder`` (also
    through symlinks); else an error naming it. Only path strings are examined."""
    if not isinstance(rel, str) or not rel:
        raise HwsimError(f"{where}: file path {brief(rel)} is not a path")
    if (rel.startswith("/") or "\\" in rel or ":" in rel.split("/")[0]
            or posixpath.normpath(rel) != rel or rel == "." or rel.split("/")[0] == ".."):
        raise HwsimError(f"{where}: file path {brief(rel)} is not a normalised path inside "
                         f"the export folder; refusing to read it")
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(folder, *rel.split("/")))
    if os.path.commonpath([root, real]) != root:
        raise HwsimError(f"{where}: file path {brief(rel)} leads outside the export folder "
                         f"(a symlink); refusing to read it")
    return rel


def _referenced_paths(node, under_files: bool = False):
    """Every path string the manifest names under a ``files`` key (layers, vectors, images)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "files" and isinstance(v, list):
                continue  # the top-level listing itself
            yield from _referenced_paths(v, under_files or k == "files")
    elif isinstance(node, list):
        for v in node:
            yield from _referenced_paths(v, under_files)
    elif under_files:
        yield node


def check_manifest_paths(folder: str, man: dict, where: str) -> dict[str, dict]:
    """The export's file listing ``{path: entry}``, after checking that every listed path is a
    normalised relative path inside ``folder`` with a sha256 and a size, that every path the
    manifest refers to is listed, and that every layer folder is inside ``folder``.

    A manifest is data a user hands us: a path like ``../../etc/passwd``, or a valid golden
    file elsewhere, must never be opened (docs/formats.md, "manifest paths").
    """
    files = man.get("files")
    if not isinstance(files, list) or not files:
        raise HwsimError(f"{where}: files: expected the list of the export's files, got "
                         f"{brief(files)}")
    listing: dict[str, dict] = {}
    for k, f in enumerate(files):
        at = f"{where}: files[{k}]"
        if not isinstance(f, dict):
            raise HwsimError(f"{at}: expected a mapping with path, bytes and sha256")
        rel = _safe_relpath(f.get("path"), folder, at)
        sha, n = f.get("sha256"), f.get("bytes")
        if not isinstance(sha, str) or len(sha) != 64 or not all(
                c in "0123456789abcdef" for c in sha):
            raise HwsimError(f"{at}: {rel}: sha256 {brief(sha)} is not 64 hex digits")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise HwsimError(f"{at}: {rel}: bytes {brief(n)} is not a size")
        listing[rel] = f
    for rel in _referenced_paths({k: v for k, v in man.items() if k != "files"}):
        if not isinstance(rel, str) or rel not in listing:
            raise HwsimError(f"{where}: file {brief(rel)} is not listed (with its sha256) "
                             f"under files:; refusing to read it")
    layers = man.get("layers", [])
    if not isinstance(layers, list):
        raise HwsimError(f"{where}: layers: expected a list, got {brief(layers)}")
    for k, L in enumerate(layers):
        if not isinstance(L, dict):
            raise HwsimError(f"{where}: layers[{k}]: expected a mapping")
        if "folder" in L:
            _safe_relpath(L["folder"], folder, f"{where}: layers[{k}].folder")
    return listing
