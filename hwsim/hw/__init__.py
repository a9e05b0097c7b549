"""hwsim.hw: the hardware side — an accelerator description and a network mapped onto it.

    from hwsim.hw import load_config, map_network
    cfg = load_config("tflite-int8")                   # preset name or YAML path (docs/config.md)
    hw = map_network("model.tflite", cfg, legalize="strict", host_tail=True)
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
Accumulator model: hwsim.kernels.accumulate (accumulate, trace_accumulators, channel_bounds).
Formulas and worked examples: docs/dataflow.md; every config key: docs/config.md.
"""
from __future__ import annotations

from .config import (AccelConfig, ConfigError, config_from_dict, load_config,  # noqa: F401
                     preset_names)
from .dataflow import LayerStats, format_stats, layer_stats, tensor_ranges  # noqa: F401
from .headroom import Headroom, HeadroomRow, OverflowElement, bits_needed  # noqa: F401
from .network import HwNetwork, LegalizationError, LegalizationRow, map_network  # noqa: F401

__all__ = ["AccelConfig", "ConfigError", "config_from_dict", "load_config", "preset_names",
           "LayerStats", "format_stats", "layer_stats", "tensor_ranges", "Headroom",
           "HeadroomRow", "OverflowElement", "bits_needed", "HwNetwork", "LegalizationError",
           "LegalizationRow", "map_network"]
