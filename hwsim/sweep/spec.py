"""The sweep spec (SPEC.yaml): models, configs, grid overrides and inputs, validated key by key.

    models: [a.tflite, b.onnx]             # relative to the spec file; ONNX float: quantized first
    configs: [tflite-int8, my-array.yaml]  # preset names or YAML paths (default: [tflite-int8])
    grid:                                  # optional: overrides on every config, cartesian product
      accumulator.bits: [16, 20, 24, 32]
      requant.rounding: [half_up, half_away_from_zero]
    inputs:
      random: 8                            # seeded random inputs 0..7 per model, or
      # dataset: data.npz                  # arrays x (and y labels: top-1 is reported)
      # limit: 100                         # dataset: the first 100 samples only
    quantize: {method: minmax, samples: 16, seed: 0}   # how ONNX float models are quantized

Every problem is one :class:`hwsim.InputError` naming the spec file and the key. A config or a
grid combination that does not load is *not* a spec error: it becomes error rows (the sweep
goes on), as does a model file that does not parse. Missing files are spec errors.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..ir import HwsimError, InputError
from ..yamlio import brief, load_yaml_file

MAX_SPEC_BYTES = 1 << 20
MAX_JOBS = 1_000_000          # models x configs x grid x inputs
MAX_GRID_VALUES = 1000        # values of one grid key
MAX_MODEL_BYTES = 2 << 30     # a model file is read whole and shipped to the workers
MAX_DATASET_BYTES = 8 << 30   # x (and y) of a dataset, uncompressed
MODEL_KINDS = {".tflite": "tflite", ".onnx": "onnx"}
TOP_KEYS = ("models", "configs", "grid", "inputs", "quantize", "host_tail")
INPUT_KEYS = ("random", "dataset", "limit")
QUANT_DEFAULTS = {"method": "minmax", "samples": 16, "seed": 0}
NOT_GRID_KEYS = ("name", "description")


@dataclass(frozen=True)
class ModelEntry:
    label: str  # as written in the spec (rows name the model by it)
    path: str   # absolute
    kind: str   # tflite | onnx


@dataclass
class ConfigVariant:
    """One base config with one combination of grid overrides (a column value ``config``)."""
    label: str                # "narrow-acc-24 accumulator.bits=16 requant.rounding=half_up"
    base: str                 # the configs entry as written
    overrides: tuple          # ((dotted key, value), ...), in the grid's key order
    config: dict | None = None   # the resolved config (AccelConfig.to_dict()), or None
    error: str = ""              # why it does not load
    acc_bits: int | None = None

    @property
    def fingerprint(self) -> str:
        """sha256 of the resolved config (``error:...`` when it did not load)."""
        if self.config is None:
            return "error:" + self.error
        text = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Inputs:
    kind: str                     # random | dataset
    count: int                    # inputs per model: indices 0 .. count-1
    path: str = ""                # dataset: absolute path
    label: str = ""               # dataset: as written in the spec
    x: np.ndarray | None = None   # dataset samples (first ``count``)
    y: np.ndarray | None = None   # dataset labels, or None
    sha256: str = ""              # dataset file


@dataclass
class SweepSpec:
    path: str
    models: list[ModelEntry]
    variants: list[ConfigVariant]
    inputs: Inputs
    quantize: dict = field(default_factory=lambda: dict(QUANT_DEFAULTS))
    host_tail: bool = True
    grid_keys: tuple = ()

    @property
    def job_count(self) -> int:
        return len(self.models) * len(self.variants) * self.inputs.count

    def keys(self):
        """(model, config, input) of every job, in the sweep's order."""
        for m in self.models:
            for v in self.variants:
                for i in range(self.inputs.count):
                    yield m.label, v.label, i


def _err(spec: str, key: str, msg: str) -> InputError:
    return InputError(f"{spec}: {key}: {msg}")


def config_leaves() -> list[str]:
    """Every dotted key a grid may override (the leaves of AccelConfig.to_dict())."""
    from ..hw.config import AccelConfig

    def walk(d, prefix):
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                yield from walk(v, key + ".")
            elif key not in NOT_GRID_KEYS:
                yield key
    return list(walk(AccelConfig().to_dict(), ""))


def format_value(v) -> str:
    """A grid value as it appears in a config label."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return str(v)


def _set_dotted(d: dict, key: str, value) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d[p]
    d[parts[-1]] = copy.deepcopy(value)


def resolve_variant(v: ConfigVariant, source: str) -> ConfigVariant:
    """Load the base config (preset name or absolute YAML path) and apply the overrides; a
    failure is recorded in ``v.error`` (it becomes error rows), not raised."""
    from ..hw.config import config_from_dict, load_config
    try:
        d = load_config(source).to_dict()
        for key, value in v.overrides:
            _set_dotted(d, key, value)
        cfg = config_from_dict(d, v.label)
    except HwsimError as e:
        v.error = " ".join(str(e).split())
        return v
    v.config, v.acc_bits = cfg.to_dict(), cfg.accumulator.bits
    return v


def _list(spec, key, value, what) -> list:
    if isinstance(value, (str, int, float, bool)) and not isinstance(value, list):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _err(spec, key, f"expected a non-empty list of {what}, got {brief(value)}")
    return value


def _models(spec: str, folder: str, value) -> list[ModelEntry]:
    out, seen = [], set()
    for k, m in enumerate(_list(spec, "models", value, "model paths")):
        key = f"models[{k}]"
        if not isinstance(m, str) or not m.strip():
            raise _err(spec, key, f"expected a model path, got {brief(m)}")
        kind = MODEL_KINDS.get(os.path.splitext(m)[1].lower())
        if kind is None:
            raise _err(spec, key, f"{brief(m)}: expected a .tflite or .onnx model")
        if m in seen:
            raise _err(spec, key, f"{brief(m)} is listed twice")
        seen.add(m)
        path = os.path.normpath(os.path.join(folder, m))
        if not os.path.isfile(path):
            raise _err(spec, key, f"{path}: no such file" if not os.path.exists(path) else
                       f"{path}: not a file")
        size = os.path.getsize(path)
        if size > MAX_MODEL_BYTES:
            raise _err(spec, key, f"{path}: {size:,} bytes is larger than the "
                                  f"{MAX_MODEL_BYTES:,}-byte limit")
        out.append(ModelEntry(m, path, kind))
    return out


def _config_source(spec: str, folder: str, key: str, c) -> str:
    from ..hw.config import preset_names
    if not isinstance(c, str) or not c.strip():
        raise _err(spec, key, f"expected a preset name or a YAML path, got {brief(c)}")
    path = os.path.normpath(os.path.join(folder, c))
    if os.path.isfile(path):
        return path
    if c.endswith((".yaml", ".yml")) or "/" in c or os.sep in c:
        raise _err(spec, key, f"{path}: no such file")
    if c in preset_names():
        return c
    raise _err(spec, key, f"{brief(c)}: neither a YAML file (relative to the spec) nor a "
                          f"preset; presets: {', '.join(preset_names())}")


def _grid(spec: str, value) -> list[tuple[str, list]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise _err(spec, "grid", f"expected a mapping of config keys to lists of values, got "
                                 f"{brief(value)}")
    leaves = config_leaves()
    out = []
    for k, vals in value.items():
        if not isinstance(k, str) or k not in leaves:
            raise _err(spec, f"grid.{brief(k).strip(chr(39))}",
                       f"not a config key; keys: {', '.join(leaves)}")
        vals = _list(spec, f"grid.{k}", vals, "values")
        if len(vals) > MAX_GRID_VALUES:
            raise _err(spec, f"grid.{k}", f"{len(vals)} values; at most {MAX_GRID_VALUES}")
        labels = []
        for v in vals:
            ok = isinstance(v, (str, int, float, bool)) or (
                isinstance(v, list) and all(isinstance(x, (str, int, float, bool)) for x in v))
            if not ok or v is None:
                raise _err(spec, f"grid.{k}", f"{brief(v)} is not a value (a number, a string, "
                                              f"true/false or a list of them)")
            labels.append(format_value(v))
        dup = [s for s in labels if labels.count(s) > 1]
        if dup:
            raise _err(spec, f"grid.{k}", f"the value {dup[0]} is listed twice")
        out.append((k, vals))
    return out


def _npz_member(path: str, zf: zipfile.ZipFile, name: str, spec: str) -> np.ndarray:
    """Array ``name`` of the .npz, after checking its header against the member's size."""
    fmt = np.lib.format
    key = f"inputs.dataset: {path}"
    info = zf.getinfo(name)
    if info.file_size > MAX_DATASET_BYTES:
        raise _err(spec, key, f"{name} holds {info.file_size:,} bytes; the limit is "
                              f"{MAX_DATASET_BYTES:,}")
    with zf.open(info) as f:
        try:
            version = fmt.read_magic(f)
            shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                     else fmt.read_array_header_2_0(f))
        except (ValueError, SyntaxError, TypeError) as e:
            raise _err(spec, key, f"{name}: not a numpy array "
                                  f"({' '.join(str(e).split())[:80]})") from None
        header = f.tell()
    if dtype.hasobject:
        raise _err(spec, key, f"{name} holds Python objects (dtype {dtype}); save numeric "
                              f"arrays (numpy.savez)")
    need = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if need + header != info.file_size:
        raise _err(spec, key, f"{name}: the header declares shape {tuple(shape)} of {dtype} "
                              f"({need:,} bytes) but the member holds "
                              f"{info.file_size - header:,} (corrupt)")
    with zf.open(info) as f:
        return fmt.read_array(f, allow_pickle=False)


def _dataset(spec: str, folder: str, value, limit) -> Inputs:
    key = "inputs.dataset"
    if not isinstance(value, str) or not value.strip():
        raise _err(spec, key, f"expected a .npz path, got {brief(value)}")
    path = os.path.normpath(os.path.join(folder, value))
    if not os.path.isfile(path):
        raise _err(spec, key, f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "x.npy" not in names:
                raise _err(spec, key, f"{path}: no array x (arrays: "
                                      f"{', '.join(n[:-4] for n in names) or 'none'})")
            x = _npz_member(path, zf, "x.npy", spec)
            y = _npz_member(path, zf, "y.npy", spec) if "y.npy" in names else None
    except (zipfile.BadZipFile, EOFError) as e:
        raise _err(spec, key, f"{path}: not a .npz file ({e})") from None
    except OSError as e:
        raise _err(spec, key, f"{path}: cannot read ({e.strerror or e})") from None
    if x.ndim < 1 or len(x) == 0:
        raise _err(spec, key, f"{path}: x has shape {list(x.shape)}; expected samples along "
                              f"the first axis")
    if x.dtype.kind not in "iuf":
        raise _err(spec, key, f"{path}: x has dtype {x.dtype}; expected integers (the model "
                              f"input's type) or floats (quantized with the input's scale)")
    if y is not None:
        if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != len(x):
            raise _err(spec, key, f"{path}: y has {y.dtype} {list(y.shape)}; expected one "
                                  f"integer label per sample of x ({len(x)})")
    n = len(x) if limit is None else min(limit, len(x))
    with open(path, "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
            else hashlib.sha256(f.read()).hexdigest()
    return Inputs("dataset", n, path, value, np.ascontiguousarray(x[:n]),
                  None if y is None else y[:n].astype(np.int64), sha)


def _inputs(spec: str, folder: str, value) -> Inputs:
    if not isinstance(value, dict):
        raise _err(spec, "inputs", f"expected a mapping with random: N or dataset: FILE.npz, "
                                   f"got {brief(value)}")
    unknown = [k for k in value if k not in INPUT_KEYS]
    if unknown:
        raise _err(spec, f"inputs.{brief(unknown[0]).strip(chr(39))}",
                   f"unknown key; allowed keys: {', '.join(INPUT_KEYS)}")
    if ("random" in value) == ("dataset" in value):
        raise _err(spec, "inputs", "give exactly one of random: N and dataset: FILE.npz")
    limit = value.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or
                              limit < 1):
        raise _err(spec, "inputs.limit", f"{brief(limit)} is not a positive integer")
    if "random" in value:
        n = value["random"]
        if limit is not None:
            raise _err(spec, "inputs.limit", "only with dataset: (random: N gives N inputs)")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_JOBS:
            raise _err(spec, "inputs.random", f"{brief(n)} is not a count of inputs "
                                              f"(1..{MAX_JOBS})")
        return Inputs("random", n)
    return _dataset(spec, folder, value["dataset"], limit)


def _quantize(spec: str, value) -> dict:
    from ..quant.quantize import METHODS
    if value is None:
        return dict(QUANT_DEFAULTS)
    if not isinstance(value, dict):
        raise _err(spec, "quantize", f"expected a mapping (method, samples, seed), got "
                                     f"{brief(value)}")
    out = dict(QUANT_DEFAULTS)
    for k, v in value.items():
        if k not in QUANT_DEFAULTS:
            raise _err(spec, f"quantize.{brief(k).strip(chr(39))}",
                       f"unknown key; allowed keys: {', '.join(QUANT_DEFAULTS)}")
        if k == "method":
            if v not in METHODS:
                raise _err(spec, "quantize.method", f"{brief(v)} is not allowed; allowed "
                                                    f"values: {', '.join(METHODS)}")
        elif isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "samples" else 0):
            raise _err(spec, f"quantize.{k}", f"{brief(v)} is not a "
                                              f"{'positive' if k == 'samples' else 'non-negative'} "
                                              f"integer")
        out[k] = v
    return out


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and validate SPEC.yaml; paths in it are relative to its folder."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file" if not os.path.exists(path) else
                         f"{path}: not a file")
    data = load_yaml_file(path, max_bytes=MAX_SPEC_BYTES, what="sweep spec", error=InputError)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping with models, configs, inputs (and grid), "
                         f"got {brief(data)}")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise _err(path, brief(unknown[0]).strip("'"),
                   f"unknown key; allowed keys: {', '.join(TOP_KEYS)}")
    for k in ("models", "inputs"):
        if k not in data:
            raise _err(path, k, "missing (see hwsim sweep --help)")
    folder = os.path.dirname(os.path.abspath(path))
    models = _models(path, folder, data["models"])
    configs = _list(path, "configs", data.get("configs", ["tflite-int8"]),
                    "preset names or YAML paths")
    sources = []
    for k, c in enumerate(configs):
        if c in configs[:k]:
            raise _err(path, f"configs[{k}]", f"{brief(c)} is listed twice")
        sources.append((c, _config_source(path, folder, f"configs[{k}]", c)))
    grid = _grid(path, data.get("grid"))
    inputs = _inputs(path, folder, data["inputs"])
    host_tail = data.get("host_tail", True)
    if not isinstance(host_tail, bool):
        raise _err(path, "host_tail", f"{brief(host_tail)} is not true/false")
    quantize = _quantize(path, data.get("quantize"))

    combos = list(itertools.product(*[vals for _, vals in grid])) if grid else [()]
    n_jobs = len(models) * len(sources) * len(combos) * inputs.count
    if n_jobs > MAX_JOBS:
        raise InputError(f"{path}: {len(models)} models x {len(sources) * len(combos)} configs "
                         f"x {inputs.count} inputs = {n_jobs:,} jobs; at most {MAX_JOBS:,} per "
                         f"sweep (split the spec)")
    variants = []
    for name, source in sources:
        for combo in combos:
            overrides = tuple((k, v) for (k, _), v in zip(grid, combo))
            label = " ".join([name] + [f"{k}={format_value(v)}" for k, v in overrides])
            variants.append(resolve_variant(ConfigVariant(label, name, overrides), source))
    return SweepSpec(path, models, variants, inputs, quantize, host_tail,
                     tuple(k for k, _ in grid))
