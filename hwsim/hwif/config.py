"""AccelConfig: the description of an accelerator, from YAML, validated key by key.

Every error names the key (dotted path), the value and the allowed values. ``load_config``
takes a YAML path or the name of a shipped preset (``hwsim/presets/<name>.yaml``).
See docs/config.md for every key.

It lives in the hardware interface, below lowering (which derives the config's arithmetic from
it) and below hwsim.hw (which maps onto it); ``hwsim.hw.config`` re-exports it. It imports ir,
vocab, yamlio and resources only (docs/architecture.md, "Import rule").
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..ir import HwsimError
from ..resources import PACKAGE_DIR
from ..vocab import HW_REQUANT_SCHEMES, PLACEABLE_OPS, Dataflow, Overflow, Rounding
from ..yamlio import MAX_CONFIG_BYTES, brief, load_yaml_file

PRESET_DIR = PACKAGE_DIR / "presets"  # package data, found through importlib.resources


class ConfigError(HwsimError):
    """A bad accelerator configuration (unknown key, wrong type, value out of range)."""


@dataclass(frozen=True)
class ArrayConfig:
    rows: int = 16  # PE rows
    cols: int = 16  # PE columns
    dataflow: str = "output_stationary"  # or weight_stationary


@dataclass(frozen=True)
class DataConfig:
    input_bits: int = 8
    input_signed: bool = True
    weight_bits: int = 8
    weight_signed: bool = True
    output_bits: int = 8
    output_signed: bool = True


@dataclass(frozen=True)
class AccumulatorConfig:
    bits: int = 32
    overflow: str = "wrap"  # or saturate: applied to every addition
    bias_first: bool = True  # the accumulator starts at the bias (else bias added last)


@dataclass(frozen=True)
class RequantConfig:
    scheme: str = "tflite_double"  # tflite_single | mult_shift | shift_only | float32
    multiplier_bits: int = 32  # mult_shift: signed multiplier width (sign bit included)
    shift_bits: int = 6  # right shift field width: shifts 0 .. 2^shift_bits - 1
    rounding: str = "half_away_from_zero"  # mult_shift / shift_only rounding; float32: half_even
    per_channel: bool = True
    zero_point: bool = True  # the unit adds an output zero point
    activations: tuple[str, ...] = ("none", "relu", "relu6", "relu_n1_to_1")


@dataclass(frozen=True)
class MemoryConfig:
    word_bits: int = 64
    depth: int = 65536  # words
    lanes: int = 8  # elements per word
    lane_order: str = "lsb_first"
    align_words: int = 1  # each layer's region starts at a multiple of this
    banks: int = 1


@dataclass(frozen=True)
class MemoriesConfig:
    weights: MemoryConfig = MemoryConfig(word_bits=128, depth=65536, lanes=16)
    bias: MemoryConfig = MemoryConfig(word_bits=32, depth=4096, lanes=1)
    requant: MemoryConfig = MemoryConfig(word_bits=64, depth=4096, lanes=1)
    activations: MemoryConfig = MemoryConfig(word_bits=64, depth=262144, lanes=8)


@dataclass(frozen=True)
class AccelConfig:
    name: str = "custom"
    description: str = ""
    array: ArrayConfig = ArrayConfig()
    data: DataConfig = DataConfig()
    accumulator: AccumulatorConfig = AccumulatorConfig()
    requant: RequantConfig = RequantConfig()
    memories: MemoriesConfig = MemoriesConfig()
    # ops the host runs even where the array could (placement, hwsim.passes.PlaceLayers):
    # to model a smaller array, or to keep an op off it
    host_ops: tuple[str, ...] = ()
    source: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        d["requant"]["activations"] = list(d["requant"]["activations"])
        if d["host_ops"]:
            d["host_ops"] = list(d["host_ops"])
        else:  # not written when empty: the configs of earlier exports keep their bytes
            d.pop("host_ops")
        return d


ARITHMETIC_KEYS = ("array", "data", "accumulator", "requant")


def arithmetic_fingerprint(cfg: AccelConfig) -> str:
    """16 hex digits of sha256 over the config's arithmetic (its array, data, accumulator and
    requant sections; not its name, memories or host_ops). ``hwsim quantize --config`` records
    it in the model's description; hwsim.hw.map_network then takes that arithmetic as the
    model's semantics (docs/quantization.md, "Quantized for a config")."""
    d = cfg.to_dict()
    blob = json.dumps({k: d[k] for k in ARITHMETIC_KEYS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def quantized_for_description(cfg: AccelConfig) -> str:
    """The .tflite description of a model hwsim quantized for ``cfg``."""
    return f"hwsim quantize for config {cfg.name!r}, arithmetic {arithmetic_fingerprint(cfg)}"


def quantized_for(description: str, cfg: AccelConfig) -> bool:
    """Whether a model's description says hwsim quantized it for ``cfg``'s arithmetic."""
    return description.startswith("hwsim quantize for config ") and \
        description.endswith(f", arithmetic {arithmetic_fingerprint(cfg)}")


# ---- validation -------------------------------------------------------------------------
ALLOWED = {
    "array.dataflow": Dataflow.names(),
    "accumulator.overflow": Overflow.names(),
    "requant.scheme": tuple(s.name for s in HW_REQUANT_SCHEMES),
    "requant.rounding": Rounding.names(),
    "requant.activations": ("none", "relu", "relu6", "relu_n1_to_1"),
    "lane_order": ("lsb_first", "msb_first"),
}
RANGES = {
    "array.rows": (1, 1024), "array.cols": (1, 1024),
    "data.input_bits": (4, 16), "data.weight_bits": (4, 16), "data.output_bits": (4, 16),
    "accumulator.bits": (8, 64),
    "requant.multiplier_bits": (2, 32), "requant.shift_bits": (1, 6),
    "word_bits": (1, 1024), "depth": (1, 1 << 30), "lanes": (1, 1024), "align_words": (1, 1 << 20),
    "banks": (1, 256),
}


def _where(src: str, key: str) -> str:
    return f"{src}: {key}" if src else key


def _build(cls, data, prefix: str, src: str, base=None):
    """``cls`` from the mapping ``data``; keys not given keep ``base``'s values (the field's
    default instance for nested sections, so ``memories.bias: {depth: 8}`` keeps the bias
    memory's 32-bit words)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(src, prefix or 'top level')}: expected a mapping, got "
                          f"{type(data).__name__}")
    fields = cls.__dataclass_fields__
    unknown = sorted((str(k) for k in data if k not in fields or k == "source"), key=str)
    if unknown:
        bad = brief(unknown[0]).strip("'")
        key = f"{prefix}.{bad}" if prefix else bad
        raise ConfigError(f"{_where(src, key)}: unknown key; allowed keys"
                          f"{' under ' + prefix if prefix else ''}: "
                          f"{', '.join(k for k in fields if k != 'source')}")
    kwargs = {}
    for name, f in fields.items():
        if name == "source" or name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        value = data[name]
        default = getattr(base, name) if base is not None else f.default
        if hasattr(default, "__dataclass_fields__"):
            kwargs[name] = _build(type(default), value, key, src, default)
            continue
        kwargs[name] = _check_value(key, value, default, src)
    return replace(base, **kwargs) if base is not None else cls(**kwargs)


def _check_value(key: str, value, default, src: str):
    leaf = key.rsplit(".", 1)[-1]
    rkey = key if key in RANGES else leaf
    akey = key if key in ALLOWED else leaf
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(src, key)}: {brief(value)} is not a boolean "
                              f"(true/false)")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_where(src, key)}: {brief(value)} is not an integer")
        if rkey in RANGES:
            lo, hi = RANGES[rkey]
            if not lo <= value <= hi:
                raise ConfigError(f"{_where(src, key)}: {brief(value)} is out of range "
                                  f"[{lo}, {hi}]")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{_where(src, key)}: expected a list, got {brief(value)}")
        for v in value:
            if akey in ALLOWED and v not in ALLOWED[akey]:
                raise ConfigError(f"{_where(src, key)}: {brief(v)} is not allowed; allowed "
                                  f"values: {', '.join(ALLOWED[akey])}")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{_where(src, key)}: {brief(value)} is not a string")
        if akey in ALLOWED and value not in ALLOWED[akey]:
            raise ConfigError(f"{_where(src, key)}: {brief(value)} is not allowed; allowed "
                              f"values: {', '.join(ALLOWED[akey])}")
        return value
    return value


def _cross_checks(cfg: AccelConfig, src: str) -> None:
    for mname in ("weights", "bias", "requant", "activations"):
        m = getattr(cfg.memories, mname)
        if m.word_bits % m.lanes:
            raise ConfigError(f"{_where(src, f'memories.{mname}.lanes')}: {m.lanes} lanes do "
                              f"not divide word_bits {m.word_bits}")
    w = cfg.memories.weights
    if w.word_bits // w.lanes < cfg.data.weight_bits:
        raise ConfigError(f"{_where(src, 'memories.weights.lanes')}: {w.lanes} lanes of "
                          f"{w.word_bits // w.lanes} bits cannot hold {cfg.data.weight_bits}-bit "
                          f"weights")
    a = cfg.memories.activations
    if a.word_bits // a.lanes < max(cfg.data.input_bits, cfg.data.output_bits):
        raise ConfigError(f"{_where(src, 'memories.activations.lanes')}: {a.lanes} lanes of "
                          f"{a.word_bits // a.lanes} bits cannot hold the activations")
    rq = cfg.requant
    if rq.scheme.startswith("tflite") and rq.multiplier_bits != 32:
        raise ConfigError(f"{_where(src, 'requant.multiplier_bits')}: {rq.multiplier_bits} with "
                          f"requant.scheme {rq.scheme}; TFLite's Q31 multiplier needs 32 "
                          f"(allowed: 32, or scheme mult_shift for a narrower multiplier)")
    if rq.scheme == "float32" and rq.rounding != "half_even":
        raise ConfigError(f"{_where(src, 'requant.rounding')}: {rq.rounding} with requant.scheme "
                          f"float32; the float32 unit rounds half to even (allowed: half_even)")
    if rq.scheme == "mult_shift" and rq.multiplier_bits + cfg.accumulator.bits > 64:
        raise ConfigError(f"{_where(src, 'requant.multiplier_bits')}: {rq.multiplier_bits} + "
                          f"accumulator.bits {cfg.accumulator.bits} > 64: the product "
                          f"accumulator x multiplier must fit 64 bits (allowed: multiplier_bits "
                          f"<= {64 - cfg.accumulator.bits})")
    for op in cfg.host_ops:
        _check_host_op(_where(src, "host_ops"), op)
    if len(set(rq.activations)) != len(rq.activations):
        raise ConfigError(f"{_where(src, 'requant.activations')}: {list(rq.activations)} lists "
                          f"an activation twice")


def _check_host_op(key: str, op) -> None:
    """``op`` may be named in host_ops: an op placement could put on the array or make a memory
    alias (vocab.PLACEABLE_OPS; any other op runs on the host already)."""
    if not isinstance(op, str) or op not in PLACEABLE_OPS:
        raise ConfigError(f"{key}: {brief(op)} is not an op hwsim runs on the array (host_ops "
                          f"names array ops to keep on the host); allowed: "
                          f"{', '.join(sorted(PLACEABLE_OPS))}")


def config_from_dict(data: dict, source: str = "") -> AccelConfig:
    cfg = _build(AccelConfig, data, "", source)
    cfg = AccelConfig(**{**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                         "source": source})
    _cross_checks(cfg, source)
    return cfg


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(spec: str | os.PathLike | AccelConfig | None) -> AccelConfig:
    """A YAML path, a preset name, an AccelConfig, or None (the `tflite-int8` preset)."""
    if isinstance(spec, AccelConfig):
        return spec
    if spec is None:
        spec = "tflite-int8"
    s = os.fspath(spec)
    path = Path(s)
    if not path.exists():
        preset = PRESET_DIR / f"{s}.yaml"
        if preset.exists():
            path = preset
        elif s.endswith((".yaml", ".yml")) or os.sep in s:
            raise ConfigError(f"{s}: no such file")
        else:
            raise ConfigError(f"{s}: neither a YAML file nor a preset; presets: "
                              f"{', '.join(preset_names())}")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    data = load_yaml_file(path, max_bytes=MAX_CONFIG_BYTES, what="config", error=ConfigError)
    return config_from_dict(copy.deepcopy(data) or {}, str(path))


def with_host_ops(config, host_ops: str | None, key: str = "--host-ops") -> AccelConfig:
    """``config`` (preset, YAML or AccelConfig) with the comma-separated ops of ``host_ops``
    (the ``--host-ops`` option, named ``key`` in errors) added to its host_ops, validated as
    the config key is."""
    cfg = load_config(config)
    ops = [o.strip().upper() for o in (host_ops or "").split(",") if o.strip()]
    if not ops:
        return cfg
    for op in ops:
        _check_host_op(key, op)
    d = cfg.to_dict()
    d["host_ops"] = list(dict.fromkeys([*cfg.host_ops, *ops]))
    return config_from_dict(d, cfg.source)
