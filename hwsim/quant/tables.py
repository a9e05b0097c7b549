"""Calibration tables: ncnn ``.table``, TensorRT calibration cache, NVDLA calibration JSON.

Units differ between the formats -- mind them:

=====================  ==========================  ===========================================
format                 value stored                 relation to the clipping threshold ``T``
=====================  ==========================  ===========================================
ncnn ``.table``        ncnn *scale* (multiplier)    ``scale = 127 / T``   (``q = round(x * scale)``)
TensorRT cache         scale, float32 bits in hex   ``scale = T / 127``   (``x = q * scale``)
NVDLA JSON             ``"scale"``                  ``scale = T / 127``   (copied from TensorRT)
=====================  ==========================  ===========================================

All three hold float32 values: readers return Python floats that are exactly representable in
float32, writers round to float32 first.  Writers are atomic (temp file + ``os.replace``) and
deterministic (entries in the given order, fixed number formatting that round-trips float32
exactly, ``\\n`` line ends).  Malformed input raises :class:`CalibrationTableError` (a
``ValueError``) whose message starts with ``<file>:<line>:``.

See ``docs/calibration.md`` for worked examples.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from typing import Any, Iterable, Mapping

import numpy as np

from ..ir import HwsimError
from ..util import atomic_write_bytes

__all__ = [
    "CalibrationTableError", "TensorRTCache", "DEFAULT_TENSORRT_HEADER",
    "read_ncnn_table", "write_ncnn_table",
    "read_tensorrt_cache", "write_tensorrt_cache",
    "read_nvdla_json", "write_nvdla_json",
    "ncnn_scale", "threshold_from_ncnn_scale", "tensorrt_scale", "threshold_from_tensorrt_scale",
]

DEFAULT_TENSORRT_HEADER = "TRT-8601-EntropyCalibration2"
_TRT_HEADER_RE = re.compile(r"TRT-[0-9]+-[A-Za-z0-9_]+")
_HEX_RE = re.compile(r"[0-9A-Fa-f]{1,8}")


class CalibrationTableError(HwsimError, ValueError):
    """A calibration table is malformed; the message names the file and line."""


# ----------------------------------------------------------------------------- units

def ncnn_scale(threshold: float) -> float:
    """ncnn's activation/weight scale ``127 / T`` (float64)."""
    t = float(threshold)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"threshold must be finite and > 0, got {threshold!r}")
    return 127.0 / t


def threshold_from_ncnn_scale(scale: float) -> float:
    """``T = 127 / scale`` for an ncnn scale."""
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"ncnn scale must be finite and > 0, got {scale!r}")
    return 127.0 / s


def tensorrt_scale(threshold: float) -> float:
    """TensorRT / NVDLA scale ``T / 127`` (float64)."""
    t = float(threshold)
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"threshold must be finite and >= 0, got {threshold!r}")
    return t / 127.0


def threshold_from_tensorrt_scale(scale: float) -> float:
    """``T = 127 * scale`` for a TensorRT / NVDLA scale."""
    s = float(scale)
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"TensorRT scale must be finite and >= 0, got {scale!r}")
    return 127.0 * s


# ----------------------------------------------------------------------------- shared helpers

def _where(path: Any, line: int | str) -> str:
    return f"{os.fspath(path)}:{line}"


def _read_text(path: Any) -> str:
    data = open(os.fspath(path), "rb").read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CalibrationTableError(f"{_where(path, line)}: not valid UTF-8 text") from None


def _lines(text: str) -> Iterable[tuple[int, str]]:
    for no, raw in enumerate(text.split("\n"), start=1):
        yield no, raw[:-1] if raw.endswith("\r") else raw


def _to_f32(value: Any, what: str, *, positive: bool) -> float:
    """Round a number to float32, requiring it finite and >= 0 (``positive``: > 0); -0.0 -> 0.0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    with np.errstate(over="ignore"):
        v = float(np.float32(value)) + 0.0
    if not math.isfinite(v):
        raise ValueError(f"{what} {value!r} is not finite in float32")
    if v < 0 or (positive and v == 0):
        raise ValueError(f"{what} {value!r} must be {'> 0' if positive else '>= 0'}")
    return v


def _fmt_f32(v: float) -> str:
    """Shortest decimal that reads back as the same float32 (``1``, ``0.5``, ``1.2e-05``)."""
    x = np.float32(v)
    if x == 0:
        return "0"
    if 1e-4 <= abs(float(x)) < 1e16:
        return np.format_float_positional(x, unique=True, trim="-")
    return np.format_float_scientific(x, unique=True, trim="-")


def _check_name(name: Any, where: str, *, allow_space: bool) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: a name must be a non-empty string, got {name!r}")
    if name != name.strip() or "\n" in name or "\r" in name:
        raise ValueError(f"{where}: name {name!r} has leading/trailing whitespace or a line break")
    if not allow_space and any(c.isspace() for c in name):
        raise ValueError(f"{where}: name {name!r} contains whitespace")
    return name


# ----------------------------------------------------------------------------- ncnn

def read_ncnn_table(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read an ncnn calibration table (``ncnn2table`` output).

    One entry per line: ``<key> <scale> [<scale> ...]``, whitespace separated.  Keys ending in
    ``_param_<k>`` hold the *weight* scales of layer ``<layer>`` (one per output channel, ``k``
    numbers a layer's weight blobs, 0 for convolutions); other keys hold the *activation* scale of
    the input blob of layer ``<key>`` (ncnn names it by the consuming layer, not the blob).
    Values are ncnn scales, ``scale = 127 / threshold``.

    Returns ``{key: [scale, ...]}`` in file order, each scale a float32 value as a float.
    Blank lines are skipped; a key without scales, a non-numeric, non-finite or non-positive
    scale, or a repeated key raises :class:`CalibrationTableError`.
    """
    text = _read_text(path)
    table: dict[str, list[float]] = {}
    for no, line in _lines(text):
        tokens = line.split()
        if not tokens:
            continue
        key, values = tokens[0], tokens[1:]
        if key in table:
            raise CalibrationTableError(f"{_where(path, no)}: duplicate entry {key!r}")
        if not values:
            raise CalibrationTableError(f"{_where(path, no)}: entry {key!r} has no scale values")
        scales = []
        for tok in values:
            try:
                num = float(tok)
            except ValueError:
                raise CalibrationTableError(
                    f"{_where(path, no)}: {key!r}: {tok!r} is not a number") from None
            try:
                scales.append(_to_f32(num, "scale", positive=True))
            except ValueError as e:
                raise CalibrationTableError(f"{_where(path, no)}: {key!r}: {e}") from None
        table[key] = scales
    return table


def write_ncnn_table(path: str | os.PathLike, table: Mapping[str, Any]) -> None:
    """Write ``{key: scale or [scales]}`` as an ncnn ``.table`` (ncnn scales, ``127 / threshold``).

    Entries in the mapping's order, one line each: ``key s1 s2 ... \\n`` -- like ``ncnn2table``,
    every token is followed by one space -- with the shortest decimal that reads back as the same
    float32 (ncnn reads them with ``%f`` into float).  Keys may not contain whitespace.
    """
    out = []
    where = os.fspath(path)
    for key, values in table.items():
        _check_name(key, where, allow_space=False)
        vals = [values] if isinstance(values, (int, float, np.integer, np.floating)) else list(values)
        if not vals:
            raise ValueError(f"{where}: entry {key!r} has no scale values")
        parts = [key]
        for v in vals:
            parts.append(_fmt_f32(_to_f32(v, f"{key!r} scale", positive=True)))
        out.append(" ".join(parts) + " \n")
    atomic_write_bytes(path, "".join(out).encode("utf-8"))


# ----------------------------------------------------------------------------- TensorRT

class TensorRTCache(dict):
    """``{tensor_name: scale}`` read from a TensorRT calibration cache; ``header`` keeps line 1."""

    def __init__(self, *args: Any, header: str = DEFAULT_TENSORRT_HEADER, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header = header


def _f32_to_hex(v: float) -> str:
    return "%08x" % struct.unpack(">I", struct.pack(">f", v))[0]


def _hex_to_f32(h: str) -> float:
    return struct.unpack(">f", struct.pack(">I", int(h, 16)))[0]


def read_tensorrt_cache(path: str | os.PathLike) -> TensorRTCache:
    """Read a TensorRT INT8 calibration cache (``writeCalibrationCache`` output).

    Line 1 is the header ``TRT-<version>-<calibrator>`` (e.g. ``TRT-8601-EntropyCalibration2``),
    then one line per tensor: ``<tensor name>: <hex>`` where ``<hex>`` is the IEEE-754 float32 bit
    pattern of the scale as a big-endian hex number (``3c010a14`` = 0.0078744...), and
    ``scale = threshold / 127``.  The name is everything before the last ``:`` (TensorRT names may
    hold spaces, brackets and colons).

    Returns a :class:`TensorRTCache` (a dict ``{name: scale}`` in file order, scales exact float32
    values as floats) with the header line in ``.header``.  Blank lines are skipped; a missing or
    malformed header, a line without ``:``, a value that is not 1-8 hex digits, a NaN, infinite or
    negative scale, or a repeated name raises :class:`CalibrationTableError`.
    """
    text = _read_text(path)
    header = None
    table = TensorRTCache()
    for no, line in _lines(text):
        if not line.strip():
            continue
        if header is None:
            if not _TRT_HEADER_RE.fullmatch(line.strip()):
                raise CalibrationTableError(
                    f"{_where(path, no)}: expected a header like 'TRT-8601-EntropyCalibration2', "
                    f"got {line.strip()[:60]!r}")
            header = line.strip()
            continue
        name, sep, value = line.rpartition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise CalibrationTableError(f"{_where(path, no)}: expected '<tensor name>: <hex scale>'")
        if not _HEX_RE.fullmatch(value):
            raise CalibrationTableError(
                f"{_where(path, no)}: {name!r}: {value!r} is not a float32 bit pattern (1-8 hex digits)")
        scale = _hex_to_f32(value)
        if not math.isfinite(scale) or scale < 0 or (scale == 0 and math.copysign(1.0, scale) < 0):
            raise CalibrationTableError(
                f"{_where(path, no)}: {name!r}: scale {scale!r} (0x{value}) must be finite and >= 0")
        if name in table:
            raise CalibrationTableError(f"{_where(path, no)}: duplicate tensor {name!r}")
        table[name] = scale
    if header is None:
        raise CalibrationTableError(f"{_where(path, 1)}: empty file, expected a 'TRT-...' header")
    table.header = header
    return table


def write_tensorrt_cache(path: str | os.PathLike, table: Mapping[str, float],
                         header: str | None = None) -> None:
    """Write ``{tensor_name: scale}`` (``scale = threshold / 127``) as a TensorRT calibration cache.

    ``header`` defaults to ``table.header`` for a :class:`TensorRTCache`, else
    ``DEFAULT_TENSORRT_HEADER``; TensorRT compares it with its own version and calibrator, so set
    it to match the TensorRT that will read the file.  Each scale is rounded to float32 and written
    as 8 lowercase hex digits of its bits, entries in the mapping's order.
    """
    where = os.fspath(path)
    if header is None:
        header = getattr(table, "header", DEFAULT_TENSORRT_HEADER)
    if not isinstance(header, str) or not _TRT_HEADER_RE.fullmatch(header):
        raise ValueError(f"{where}: header must look like 'TRT-8601-EntropyCalibration2', got {header!r}")
    out = [header + "\n"]
    for name, scale in table.items():
        _check_name(name, where, allow_space=True)
        v = _to_f32(scale, f"{name!r} scale", positive=False)
        out.append(f"{name}: {_f32_to_hex(v)}\n")
    atomic_write_bytes(path, "".join(out).encode("utf-8"))


# ----------------------------------------------------------------------------- NVDLA

_NVDLA_KEYS = ("scale", "min", "max", "offset")


def _json_line(text: str, key: str, occurrence: int = 1) -> int:
    """Line of the ``occurrence``-th ``"key":`` in a JSON text (1 when not found)."""
    for form in (json.dumps(key), json.dumps(key, ensure_ascii=False)):
        matches = list(re.finditer(re.escape(form) + r"\s*:", text))
        if len(matches) >= occurrence:
            return text.count("\n", 0, matches[occurrence - 1].start()) + 1
    return 1


def read_nvdla_json(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read an NVDLA calibration table (``calib_txt_to_json.py`` output, ``--calibtable``).

    A JSON object ``{tensor_name: {"scale": s, "min": lo, "max": hi, "offset": o}}`` where
    ``scale = threshold / 127`` (the TensorRT cache value; ``calib_txt_to_json.py`` writes
    ``min = max = offset = 0``).  The NVDLA schema allows either ``scale`` or ``min``/``max``.

    Returns ``{name: {"scale": float or None, "min": float, "max": float, "offset": int}}`` in file
    order (absent ``min``/``max``/``offset`` read as 0; numbers rounded to float32).  Invalid JSON,
    a non-object entry, unknown keys, neither ``scale`` nor ``min``+``max``, a non-finite or
    negative scale, a non-integer offset or a repeated name raises :class:`CalibrationTableError`.
    """
    text = _read_text(path)
    def pairs_hook(pairs: list) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:     # line of the key's second appearance in the file (exact for tensor names)
                raise CalibrationTableError(
                    f"{_where(path, _json_line(text, k, 2))}: duplicate key {k!r}")
            out[k] = v
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as e:
        raise CalibrationTableError(f"{_where(path, e.lineno)}: invalid JSON ({e.msg})") from None
    if not isinstance(doc, dict):
        raise CalibrationTableError(f"{_where(path, 1)}: expected a JSON object of tensors")
    table: dict[str, dict[str, Any]] = {}
    for name, entry in doc.items():
        at = _where(path, _json_line(text, name))
        if not isinstance(entry, dict):
            raise CalibrationTableError(f"{at}: {name!r}: expected an object with 'scale', got {entry!r}")
        unknown = sorted(set(entry) - set(_NVDLA_KEYS))
        if unknown:
            raise CalibrationTableError(f"{at}: {name!r}: unknown keys {unknown}")
        if "scale" not in entry and not ("min" in entry and "max" in entry):
            raise CalibrationTableError(f"{at}: {name!r}: needs 'scale' or both 'min' and 'max'")
        try:
            scale = None if "scale" not in entry else _to_f32(entry["scale"], "scale", positive=False)
            lo = _json_f32(entry.get("min", 0), "min")
            hi = _json_f32(entry.get("max", 0), "max")
            offset = entry.get("offset", 0)
            if isinstance(offset, bool) or not isinstance(offset, int):
                raise ValueError(f"offset must be an integer, got {offset!r}")
        except ValueError as e:
            raise CalibrationTableError(f"{at}: {name!r}: {e}") from None
        table[name] = {"scale": scale, "min": lo, "max": hi, "offset": offset}
    return table


def _json_f32(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    with np.errstate(over="ignore"):
        v = float(np.float32(value))
    if not math.isfinite(v):
        raise ValueError(f"{what} {value!r} is not finite in float32")
    return v + 0.0


def _json_num(v: float) -> Any:
    return 0 if v == 0 else v


def write_nvdla_json(path: str | os.PathLike, table: Mapping[str, Any]) -> None:
    """Write an NVDLA calibration JSON.

    ``table`` maps tensor names to a scale (``threshold / 127``; written with ``min = max =
    offset = 0`` as ``calib_txt_to_json.py`` does) or to a mapping with ``scale`` and/or
    ``min``/``max`` and optional ``offset``.  Entries in the mapping's order, keys in the order
    scale, min, max, offset, 4-space indent, numbers rounded to float32 and printed with Python's
    shortest round-trip ``repr`` (zero as ``0``), ending with a newline.
    """
    where = os.fspath(path)
    doc: dict[str, dict[str, Any]] = {}
    for name, entry in table.items():
        _check_name(name, where, allow_space=True)
        if isinstance(entry, Mapping):
            unknown = sorted(set(entry) - set(_NVDLA_KEYS))
            if unknown:
                raise ValueError(f"{where}: {name!r}: unknown keys {unknown}")
            scale = entry.get("scale")
            if scale is None and not (entry.get("min") is not None and entry.get("max") is not None):
                raise ValueError(f"{where}: {name!r}: needs 'scale' or both 'min' and 'max'")
            lo, hi, offset = entry.get("min", 0), entry.get("max", 0), entry.get("offset", 0)
        else:
            scale, lo, hi, offset = entry, 0, 0, 0
        if isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, np.integer)):
            raise ValueError(f"{where}: {name!r}: offset must be an integer, got {offset!r}")
        item: dict[str, Any] = {}
        if scale is not None:
            item["scale"] = _json_num(_to_f32(scale, f"{name!r} scale", positive=False))
        item["min"] = _json_num(_json_f32(lo, f"{name!r} min"))
        item["max"] = _json_num(_json_f32(hi, f"{name!r} max"))
        item["offset"] = int(offset)
        doc[name] = item
    text = json.dumps(doc, indent=4, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
