"""RTL export: word packing (:mod:`hwsim.export.pack`), memory files
(:mod:`hwsim.export.formats`: .hex, .mem, .coe, .mif, .bin), the accelerator's memory layout
(:mod:`hwsim.export.layout`), ``hwsim export`` (:func:`export`) and ``hwsim compare``
(:func:`compare`).

    from hwsim.export import export, compare
    res = export("model.tflite", "tflite-int8", x, "build/rtl")     # -> ExportResult
    cmp = compare("build/rtl", "build/rtl_from_bench")             # -> CompareResult
    cmp.bit_exact, cmp.first_mismatch, print(cmp.table())

(``hwsim.export.compare`` is the function; the module is ``sys.modules["hwsim.export.compare"]``,
reachable as ``from hwsim.export.compare import CompareResult``.)
"""
from __future__ import annotations

from .compare import CompareResult, VectorDiff, compare
from .exporter import ExportResult, export
from .formats import MemoryFileError, read_memory, write_memory
from .pack import PackedWords, pack_words, unpack_words, words_needed

__all__ = ["CompareResult", "ExportResult", "MemoryFileError", "PackedWords", "VectorDiff",
           "compare", "export", "pack_words", "read_memory", "unpack_words", "words_needed",
           "write_memory"]
