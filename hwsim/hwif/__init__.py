"""The hardware interface: every fact the model, the export and the RTL must agree on, once.

* :mod:`~hwsim.hwif.config`: the accelerator config (:func:`load_config`, the presets,
  validation), re-exported by ``hwsim.hw.config``; lowering reads it.
* :mod:`~hwsim.hwif.pack`: elements in memory words (lanes, element bits, lane order).
* :mod:`~hwsim.hwif.memory`: the accelerator's memories of a config (:func:`make_memories`).
* :mod:`~hwsim.hwif.plan`: the memory plan (:func:`allocate`: legalization's capacity check
  and the export's addresses) and the export's layer plans (:func:`plan_network`).
* :mod:`~hwsim.hwif.descriptor`: the descriptor field table, its encoding, and the RTL's
  ``hwsim_desc.vh`` generated from it (:func:`verilog_header`).
* :mod:`~hwsim.hwif.requant`: the requant unit's 64-bit words.
* :mod:`~hwsim.hwif.manifest`: the manifest's schema constants and its reader.

It imports ir, vocab, params, util, yamlio and resources only: lowering, hw/network, export,
cosim and compare build on it (docs/architecture.md, import floors).
"""
from __future__ import annotations

from .descriptor import (ACCEL_OP_NAMES, DESCRIPTOR_FIELDS, DESCRIPTOR_TABLE, DESCRIPTOR_WORDS,
                         FIELD_INDEX, MAC_CODES, OP_CODES, decode_descriptor, descriptor_words,
                         verilog_header)
from .manifest import MANIFEST_FILE, VECTORS_FILE, read_manifest
from .memory import ACC_MEMORY_KEY, Memory, activation_dtype, bias_bits, make_memories, nhwc
from .plan import (IMAGE_MEMORY, LayerPlan, MemoryPlan, NetworkPlan, VectorSpec, allocate,
                   network_input_tensors, plan_network, vector_layout, vector_rank,
                   vector_values, weight_matrix)
from .requant import RTL_REQUANT_SCHEMES, decode_requant_word, encode_requant_word

__all__ = ["ACCEL_OP_NAMES", "ACC_MEMORY_KEY", "DESCRIPTOR_FIELDS", "DESCRIPTOR_TABLE",
           "DESCRIPTOR_WORDS", "FIELD_INDEX", "IMAGE_MEMORY", "LayerPlan", "MAC_CODES",
           "MANIFEST_FILE", "Memory", "MemoryPlan", "NetworkPlan", "OP_CODES",
           "RTL_REQUANT_SCHEMES", "VECTORS_FILE", "VectorSpec", "activation_dtype", "allocate",
           "bias_bits", "decode_descriptor", "decode_requant_word", "descriptor_words",
           "encode_requant_word", "make_memories", "network_input_tensors", "nhwc",
           "plan_network", "read_manifest", "vector_layout", "vector_rank", "vector_values",
           "verilog_header", "weight_matrix"]
