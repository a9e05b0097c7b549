"""RTL export: word packing (:mod:`hwsim.export.pack`) and memory files
(:mod:`hwsim.export.formats`: .hex, .mem, .coe, .mif, .bin)."""
from __future__ import annotations

from .formats import MemoryFileError, read_memory, write_memory
from .pack import PackedWords, pack_words, unpack_words, words_needed

__all__ = ["MemoryFileError", "PackedWords", "pack_words", "read_memory", "unpack_words",
           "words_needed", "write_memory"]
