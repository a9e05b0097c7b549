"""The accelerator's memories: word layout, allocation, capacity (accel-interface.md).

A :class:`Memory` is one memory of a config (word width, lanes, element bits, depth, banks,
alignment) and the regions allocated in it so far; :func:`make_memories` gives the set of an
AccelConfig. :func:`hwsim.hwif.plan.allocate` fills them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import HwsimError
from .descriptor import DESCRIPTOR_WORD_BITS
from .pack import PackedWords, pack_words, words_needed

# The memories a config sizes (depth x banks: the capacity legalization checks), in order.
CONFIG_MEMORIES = ("weights", "bias", "requant", "activations")
ACC_MEMORY_KEY = "accumulators"


def nhwc(shape) -> tuple[int, int, int, int]:
    """The (N, H, W, C) a tensor of ``shape`` is addressed as (its C-order flat index is the
    same): rank 4 as is, [N, C] -> (N, 1, 1, C), [N, W, C] -> (N, 1, W, C), [C] -> (1, 1, 1, C),
    a scalar -> (1, 1, 1, 1)."""
    s = tuple(int(d) for d in shape)
    if len(s) == 4:
        return s  # type: ignore[return-value]
    if len(s) == 3:
        return (s[0], 1, s[1], s[2])
    if len(s) == 2:
        return (s[0], 1, 1, s[1])
    if len(s) == 1:
        return (1, 1, 1, s[0])
    if len(s) == 0:
        return (1, 1, 1, 1)
    raise ValueError(f"rank-{len(s)} tensor {list(s)} has no NHWC view")


# -- memories ---------------------------------------------------------------------------------
@dataclass
class Memory:
    """One memory of the accelerator: its word layout and the words allocated so far.

    ``lanes`` elements of ``elem_bits`` bits per word, at an ``elem_bits`` pitch in the low
    ``lanes * elem_bits`` bits (``lane_order``); any bits above them are zero.
    """
    key: str  # "weights", "bias", "requant", "activations", "accumulators", "descriptors"
    word_bits: int
    lanes: int
    elem_bits: int
    signed: bool
    lane_order: str = "lsb_first"
    depth: int | None = None
    align_words: int = 1
    banks: int = 1
    used_words: int = 0
    regions: list = field(default_factory=list)  # (base, words, what)

    def alloc(self, words: int, what: str) -> int:
        base = -(-self.used_words // self.align_words) * self.align_words
        self.used_words = base + int(words)
        self.regions.append((base, int(words), what))
        return base

    def layout(self) -> dict:
        """Keyword arguments of pack_words / unpack_words for this memory's elements."""
        return dict(elem_bits=self.elem_bits, signed=self.signed, lanes_per_word=self.lanes,
                    word_bits=self.word_bits, lane_order=self.lane_order)

    def pack(self, values, as_list: bool = True) -> PackedWords:
        """Pack elements (C order): element ``i`` in word ``i // lanes``, lane ``i % lanes``
        (``as_list=False``: as limbs only, :class:`~hwsim.hwif.pack.LimbWords`)."""
        return pack_words(values, **self.layout(), as_list=as_list)

    def words_for(self, elements: int) -> int:
        return words_needed(elements, self.lanes)

    @property
    def capacity(self) -> int | None:
        """Words it holds: depth x banks (None: unbounded, the model's own memories)."""
        return None if self.depth is None else self.depth * self.banks

    def check_depth(self) -> None:
        if self.depth is not None and self.used_words > self.depth * self.banks:
            last = ", ".join(f"{what}: {words} words at {base}"
                             for base, words, what in self.regions[-2:])
            banks = f" x {self.banks} banks" if self.banks > 1 else ""
            raise HwsimError(f"memories.{self.key}: {self.used_words} words do not fit depth "
                             f"{self.depth}{banks} (last regions: {last})")

    def describe(self) -> dict:
        return dict(word_bits=self.word_bits, lanes=self.lanes, elem_bits=self.elem_bits,
                    signed=self.signed, lane_order=self.lane_order, depth=self.depth,
                    align_words=self.align_words, used_words=self.used_words)


def _config_memory(config, key: str, elem_bits: int, signed: bool, what: str,
                   one_lane: bool = False, check: bool = True) -> Memory:
    m = getattr(config.memories, key)
    if check and (m.word_bits < m.lanes * elem_bits or (one_lane and m.lanes != 1)):
        need = "1 lane" if one_lane else f"{m.lanes} lanes x {elem_bits} bits"
        raise HwsimError(f"memories.{key}: word_bits {m.word_bits} with {m.lanes} lanes cannot "
                         f"hold {what} ({need}; accel-interface.md)")
    return Memory(key, m.word_bits, m.lanes, elem_bits, signed, m.lane_order, m.depth,
                  m.align_words, m.banks)


def activation_dtype(config) -> np.dtype:
    """The activation memory's element type: int8 for data of up to 8 bits, int16 above (the
    quantizer stores 9..16-bit activations in int16: TFLite's 16x8)."""
    wide = max(config.data.input_bits, config.data.output_bits) > 8
    return np.dtype(np.int16 if wide else np.int8)


def bias_bits(config) -> int:
    """Bits per bias element: 64 (the int64 bias of TFLite's 16x8 layers) when the bias word
    holds them and the accumulator is wider than 32 bits, else 32."""
    return 64 if config.memories.bias.word_bits >= 64 and config.accumulator.bits > 32 else 32


def make_memories(config, acc_bits: int = 32, check: bool = True) -> dict[str, Memory]:
    """The accelerator's memories for ``config``, empty. ``check``: refuse a memory whose words
    cannot hold its elements (the export needs that; counting words for the capacity check of
    legalization does not)."""
    act = activation_dtype(config)
    return {
        "weights": _config_memory(config, "weights", 8, True, "int8 weights", check=check),
        "bias": _config_memory(config, "bias", bias_bits(config), True,
                               f"int{bias_bits(config)} biases", one_lane=True, check=check),
        "requant": _config_memory(config, "requant", 64, False, "64-bit requant words",
                                  one_lane=True, check=check),
        "activations": _config_memory(config, "activations", 8 * act.itemsize, True,
                                      f"{act} activations", check=check),
        ACC_MEMORY_KEY: Memory(ACC_MEMORY_KEY, acc_bits, 1, acc_bits, True),
        "descriptors": Memory("descriptors", DESCRIPTOR_WORD_BITS, 1, DESCRIPTOR_WORD_BITS,
                              False),
    }
