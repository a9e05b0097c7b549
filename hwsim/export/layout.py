"""Where everything goes in the accelerator's memories: moved to :mod:`hwsim.hwif` (the one
hardware-interface module; docs/architecture.md). These names stay importable from here."""
from __future__ import annotations

from ..hwif.descriptor import (ACCEL_OP_NAMES, DESCRIPTOR_FIELDS, DESCRIPTOR_WORD_BITS,
                               DESCRIPTOR_WORDS, FIELD_INDEX, MAC_CODES, OP_CODES,
                               decode_descriptor, descriptor_words)
from ..hwif.memory import (ACC_MEMORY_KEY, Memory, activation_dtype, bias_bits, make_memories,
                           nhwc)
from ..hwif.plan import (LayerPlan, NetworkPlan, VectorSpec, allocate, plan_network,
                         weight_matrix)
from ..hwif.requant import RTL_REQUANT_SCHEMES, decode_requant_word, encode_requant_word

__all__ = ["ACCEL_OP_NAMES", "ACC_MEMORY_KEY", "DESCRIPTOR_FIELDS", "DESCRIPTOR_WORD_BITS",
           "DESCRIPTOR_WORDS", "FIELD_INDEX", "LayerPlan", "MAC_CODES", "Memory", "NetworkPlan",
           "OP_CODES", "RTL_REQUANT_SCHEMES", "VectorSpec", "activation_dtype", "allocate",
           "bias_bits", "decode_descriptor", "decode_requant_word", "descriptor_words",
           "encode_requant_word", "make_memories", "nhwc", "plan_network", "weight_matrix"]
