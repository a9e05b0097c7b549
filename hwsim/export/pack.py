"""Packing integer elements into memory words, and back: moved to :mod:`hwsim.hwif.pack` (the
hardware interface, below hw/ and export/). These names stay importable from here."""
from __future__ import annotations

from ..hwif.pack import (LANE_ORDERS, MAX_ELEM_BITS, MAX_WORD_BITS, PackedWords, elem_range,
                         limbs_to_words, pack_words, unpack_words, words_needed, words_to_limbs)

__all__ = ["MAX_ELEM_BITS", "MAX_WORD_BITS", "LANE_ORDERS", "PackedWords", "pack_words",
           "unpack_words", "words_needed", "elem_range", "words_to_limbs", "limbs_to_words"]
