"""hwsim.hw: the hardware side — an accelerator description and a network mapped onto it.

    from hwsim.hw import load_config, map_network
    cfg = load_config("tflite-int8")                   # preset name or YAML path (docs/config.md)
    hw = map_network("model.tflite", cfg, legalize="strict")  # host layers anywhere
    res = hw.run(x, trace=True)                        # hardware accumulators in res.trace
    hw.layer_stats(); hw.headroom(res); hw.report      # docs/dataflow.md

Public API (stable; hwsim/export builds on it):
  load_config(path_or_preset_or_AccelConfig=None) -> AccelConfig      (hwsim.hw.config)
  preset_names() -> list[str];  config_from_dict(dict, source="") -> AccelConfig
  AccelConfig (.array .data .accumulator .requant .memories, .to_dict()), ConfigError
  map_network(model, config, legalize="strict"|"approx", inputs=None, host_tail=False)
      -> HwNetwork (.program .reference .config .graph .placement .report .exact .ranges
         .memory .run(inputs, trace=True) .layer_stats() .headroom(trace=None, inputs=None)
         .format_report())                                           (hwsim.hw.network)
  LegalizationRow, LegalizationError
  layer_stats(program, config, placement=None) -> [LayerStats]; format_stats(stats)
  tensor_ranges(program) -> {tensor: (lo, hi)}                       (hwsim.hw.dataflow)
  Headroom (a list of HeadroomRow; .format(), .row(layer)), HeadroomRow, OverflowElement,
  bits_needed                                                         (hwsim.hw.headroom)
Accumulator model: hwsim.kernels.accumulate (accumulate, trace_accumulators, channel_bounds,
layer_bounds), on the typed params of hwsim.params.
Formulas and worked examples: docs/dataflow.md; every config key: docs/config.md.
"""
from __future__ import annotations

import importlib

# name -> submodule. Loaded on first use (PEP 562), so that ``hwsim.hw.config`` (the config,
# re-exported from hwsim.hwif.config) is imported without the network mapping and its kernels.
_WHERE = {
    "AccelConfig": "config", "ConfigError": "config", "config_from_dict": "config",
    "load_config": "config", "preset_names": "config",
    "LayerStats": "dataflow", "format_stats": "dataflow", "layer_stats": "dataflow",
    "tensor_ranges": "dataflow",
    "Headroom": "headroom", "HeadroomRow": "headroom", "OverflowElement": "headroom",
    "bits_needed": "headroom",
    "HwNetwork": "network", "LegalizationError": "network", "LegalizationRow": "network",
    "map_network": "network",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
