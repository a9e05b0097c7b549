"""AccelConfig and load_config, as the public API names them (``hwsim.hw.config.load_config``).

The config lives in :mod:`hwsim.hwif.config`, below lowering, which derives the config's
arithmetic from it (docs/architecture.md, "Import rule"); this module re-exports it unchanged.
Every key: docs/config.md.
"""
from __future__ import annotations

from ..hwif.config import (ALLOWED, ARITHMETIC_KEYS, PRESET_DIR, RANGES, AccelConfig,
                           AccumulatorConfig, ArrayConfig, ConfigError, DataConfig,
                           MemoriesConfig, MemoryConfig, RequantConfig, arithmetic_fingerprint,
                           config_from_dict, load_config, preset_names, quantized_for,
                           quantized_for_description, with_host_ops)

__all__ = ["ALLOWED", "ARITHMETIC_KEYS", "PRESET_DIR", "RANGES", "AccelConfig",
           "AccumulatorConfig", "ArrayConfig", "ConfigError", "DataConfig", "MemoriesConfig",
           "MemoryConfig", "RequantConfig", "arithmetic_fingerprint", "config_from_dict",
           "load_config", "preset_names", "quantized_for", "quantized_for_description",
           "with_host_ops"]
