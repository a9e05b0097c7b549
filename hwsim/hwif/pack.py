"""Packing integer elements into memory words, and back.

A memory word holds ``lanes_per_word`` elements of ``elem_bits`` bits each (two's complement
when signed), side by side, in the low ``lanes_per_word * elem_bits`` bits of a
``word_bits``-bit word; any bits above the lanes are zero.

- ``lane_order="lsb_first"``: element ``k`` of a word sits in bits
  ``[k*elem_bits + elem_bits-1 : k*elem_bits]`` (lane 0 in the least-significant bits).
- ``lane_order="msb_first"``: element ``k`` sits in lane ``lanes_per_word-1-k`` (lane 0 in the
  most-significant lane of the lane area; spare bits above the lanes stay zero either way).

Elements are taken from the input flattened in C order. The last word is completed with
zero lanes. Every element is range-checked against ``elem_bits``: a value that does not fit
raises :class:`ValueError` naming its index and value; nothing is ever truncated.

Words are Python ints (unsigned), so words wider than 64 bits (up to :data:`MAX_WORD_BITS`)
are exact. The work is vectorised with numpy over 64-bit limbs, whatever the word width.
"""
from __future__ import annotations

import operator
from itertools import repeat
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "MAX_ELEM_BITS",
    "MAX_WORD_BITS",
    "LANE_ORDERS",
    "PackedWords",
    "WordList",
    "LimbWords",
    "pack_words",
    "unpack_words",
    "words_needed",
    "elem_range",
    "words_to_limbs",
    "limbs_to_words",
]

MAX_ELEM_BITS = 64
MAX_WORD_BITS = 1024
LANE_ORDERS = ("lsb_first", "msb_first")

_U64 = np.uint64
_ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


class WordList(list):
    """Memory words as a plain ``list[int]`` that also keeps them as uint64 limbs
    (``limbs``: shape ``(len, ceil(word_bits / 64))``, least significant first), so the memory
    file writers and the vectors file take the array instead of converting every int back.
    Any change to the list drops ``limbs`` (it is then rebuilt from the ints)."""

    def __init__(self, words: Iterable[int] = (), *, limbs: np.ndarray | None = None,
                 word_bits: int | None = None):
        if limbs is not None and words == ():
            words = limbs_to_words(limbs)
        super().__init__(words)
        self.limbs = limbs
        self.limb_bits = word_bits  # the width the limbs were checked against

    @classmethod
    def from_limbs(cls, limbs: np.ndarray, word_bits: int) -> "WordList":
        return cls(limbs=np.ascontiguousarray(limbs, dtype=np.uint64), word_bits=word_bits)


def _dropping_limbs(name):
    method = getattr(list, name)

    def changed(self, *args, **kwargs):
        self.limbs = None
        return method(self, *args, **kwargs)
    changed.__name__ = name
    return changed


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(WordList, _name, _dropping_limbs(_name))


class LimbWords:
    """Memory words kept only as uint64 limbs (no Python int per word): what the export's
    vectors and images need, since they only go to the file writers. ``len`` and iteration
    work; :meth:`tolist` gives the ints."""

    def __init__(self, limbs: np.ndarray, word_bits: int, count: int | None = None):
        self.limbs = np.ascontiguousarray(limbs, dtype=np.uint64)
        self.limb_bits = word_bits
        self.count = count  # elements packed (pack_words), if known

    def __len__(self) -> int:
        return self.limbs.shape[0]

    def tolist(self) -> list[int]:
        return limbs_to_words(self.limbs)

    def __iter__(self):
        return iter(self.tolist())

    def __eq__(self, other) -> bool:
        return self.tolist() == list(other)


def known_limbs(words, word_bits: int, n_limbs: int) -> np.ndarray | None:
    """The limbs a :class:`WordList` or :class:`LimbWords` carries, when they hold ``words``
    at ``word_bits``."""
    limbs = getattr(words, "limbs", None)
    if limbs is None or limbs.shape[0] != len(words) or words.limb_bits is None \
            or words.limb_bits > word_bits:
        return None
    if limbs.shape[1] == n_limbs:
        return limbs
    if limbs.shape[1] < n_limbs:
        pad = np.zeros((limbs.shape[0], n_limbs - limbs.shape[1]), dtype=np.uint64)
        return np.concatenate([limbs, pad], axis=1)
    return None


class PackedWords(WordList):
    """The words of :func:`pack_words`: a plain ``list[int]`` that also records the layout.

    ``count`` is the number of valid elements (the rest of the last word is zero padding);
    ``elem_bits``, ``signed``, ``lanes_per_word``, ``word_bits``, ``lane_order`` are the
    packing parameters, so ``unpack_words(w, **w.layout())`` inverts it.
    """

    def __init__(self, words: Iterable[int], *, count: int, elem_bits: int, signed: bool,
                 lanes_per_word: int, word_bits: int, lane_order: str,
                 limbs: np.ndarray | None = None):
        super().__init__(words, limbs=limbs, word_bits=word_bits if limbs is not None else None)
        self.count = count
        self.elem_bits = elem_bits
        self.signed = signed
        self.lanes_per_word = lanes_per_word
        self.word_bits = word_bits
        self.lane_order = lane_order

    def layout(self) -> dict:
        """Keyword arguments for :func:`unpack_words` that invert this packing."""
        return dict(elem_bits=self.elem_bits, signed=self.signed,
                    lanes_per_word=self.lanes_per_word, count=self.count,
                    word_bits=self.word_bits, lane_order=self.lane_order)

    def __repr__(self) -> str:
        return (f"PackedWords({list.__repr__(self)}, count={self.count}, "
                f"elem_bits={self.elem_bits}, signed={self.signed}, "
                f"lanes_per_word={self.lanes_per_word}, word_bits={self.word_bits}, "
                f"lane_order={self.lane_order!r})")


def words_needed(count: int, lanes_per_word: int) -> int:
    """Number of words that hold ``count`` elements, ``lanes_per_word`` to a word."""
    return -(-int(count) // int(lanes_per_word))


def elem_range(elem_bits: int, signed: bool) -> tuple[int, int]:
    """The inclusive range ``(lo, hi)`` of an ``elem_bits``-bit element."""
    if signed:
        return -(1 << (elem_bits - 1)), (1 << (elem_bits - 1)) - 1
    return 0, (1 << elem_bits) - 1


def _check_layout(elem_bits, signed, lanes_per_word, word_bits, lane_order) -> tuple[int, int, int]:
    for name, v in (("elem_bits", elem_bits), ("lanes_per_word", lanes_per_word)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {v!r}")
    elem_bits = int(elem_bits)
    lanes_per_word = int(lanes_per_word)
    if not 1 <= elem_bits <= MAX_ELEM_BITS:
        raise ValueError(f"elem_bits must be 1..{MAX_ELEM_BITS}, got {elem_bits}")
    if lanes_per_word < 1:
        raise ValueError(f"lanes_per_word must be >= 1, got {lanes_per_word}")
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be a bool, got {signed!r}")
    lane_bits = lanes_per_word * elem_bits
    if word_bits is None:
        word_bits = lane_bits
    elif isinstance(word_bits, bool) or not isinstance(word_bits, (int, np.integer)):
        raise TypeError(f"word_bits must be an int, got {word_bits!r}")
    word_bits = int(word_bits)
    if word_bits < lane_bits:
        raise ValueError(f"word_bits={word_bits} is smaller than lanes_per_word*elem_bits="
                         f"{lanes_per_word}*{elem_bits}={lane_bits}")
    if word_bits > MAX_WORD_BITS:
        raise ValueError(f"word_bits={word_bits} exceeds the supported maximum {MAX_WORD_BITS}")
    if lane_order not in LANE_ORDERS:
        raise ValueError(f"lane_order must be one of {LANE_ORDERS}, got {lane_order!r}")
    return elem_bits, lanes_per_word, word_bits


def _index_text(flat_index: int, shape: tuple[int, ...]) -> str:
    if len(shape) <= 1:
        return f"index {flat_index}"
    nd = tuple(int(i) for i in np.unravel_index(flat_index, shape))
    return f"index {flat_index} (at {nd} of shape {tuple(shape)})"


def _type_name(elem_bits: int, signed: bool) -> str:
    lo, hi = elem_range(elem_bits, signed)
    kind = "signed" if signed else "unsigned"
    return f"{kind} {elem_bits}-bit range {lo}..{hi}"


def _to_lane_bits(values, elem_bits: int, signed: bool) -> np.ndarray:
    """Range-check ``values`` and return their low ``elem_bits`` bits as flat uint64."""
    mask = _ALL_ONES if elem_bits == 64 else _U64((1 << elem_bits) - 1)
    lo, hi = elem_range(elem_bits, signed)
    arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    shape = arr.shape
    kind = arr.dtype.kind

    if kind in "iub":
        flat = arr.reshape(-1)
        if kind == "b":
            flat = flat.astype(np.uint8)
        info = np.iinfo(flat.dtype)
        bad = np.zeros(flat.shape, dtype=bool)
        if lo > info.min:
            bad |= flat < lo
        if hi < info.max:
            bad |= flat > hi
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"element {_index_text(i, shape)} has value {int(flat[i])}, which "
                             f"does not fit {_type_name(elem_bits, signed)}")
        if flat.dtype.kind == "u":
            u = flat.astype(np.uint64, copy=False)
        else:
            u = flat.astype(np.int64, copy=False).view(np.uint64)
        return u & mask

    if kind not in "fO":
        raise TypeError(f"values must be integers, got an array of dtype {arr.dtype}")
    if kind == "f" and isinstance(values, np.ndarray):
        raise TypeError(f"values must be integers, got an array of dtype {arr.dtype}")
    # A Python sequence that numpy could not type as integers (big ints, floats, mixtures):
    # check each element exactly.
    obj = np.asarray(values, dtype=object)
    shape = obj.shape
    flat = obj.reshape(-1)
    out = np.empty(flat.shape, dtype=np.uint64)
    m = int(mask)
    for i, v in enumerate(flat):
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        elif not isinstance(v, (int, np.integer)):
            raise TypeError(f"element {_index_text(i, shape)} is {v!r} "
                            f"({type(v).__name__}), not an integer")
        v = operator.index(v)
        if not lo <= v <= hi:
            raise ValueError(f"element {_index_text(i, shape)} has value {v}, which "
                             f"does not fit {_type_name(elem_bits, signed)}")
        out[i] = v & m
    return out


def _lane_offsets(lanes_per_word: int, elem_bits: int, lane_order: str) -> list[int]:
    """Bit offset of each element position 0..lanes-1 within a word."""
    if lane_order == "lsb_first":
        return [k * elem_bits for k in range(lanes_per_word)]
    return [(lanes_per_word - 1 - k) * elem_bits for k in range(lanes_per_word)]


def pack_words(values, elem_bits: int, signed: bool, lanes_per_word: int,
               word_bits: int | None = None, lane_order: str = "lsb_first",
               as_list: bool = True) -> PackedWords | LimbWords:
    """Pack an integer array (any shape, C order) into memory words.

    ``as_list=False``: a :class:`LimbWords` instead (the words as limbs only; for writers).

    Returns a :class:`PackedWords` (a ``list[int]`` of unsigned words, ``word_bits`` wide,
    default ``lanes_per_word*elem_bits``) whose ``count`` is the number of valid elements.
    Raises ValueError for an element that does not fit ``elem_bits`` (signed two's complement
    or unsigned), naming its index and value; TypeError for non-integer values.
    """
    elem_bits, lanes, word_bits = _check_layout(elem_bits, signed, lanes_per_word, word_bits,
                                                lane_order)
    u = _to_lane_bits(values, elem_bits, bool(signed))
    count = int(u.size)
    n_words = words_needed(count, lanes)
    meta = dict(count=count, elem_bits=elem_bits, signed=bool(signed), lanes_per_word=lanes,
                word_bits=word_bits, lane_order=lane_order)
    if n_words == 0:
        if not as_list:
            return LimbWords(np.zeros((0, -(-word_bits // 64)), np.uint64), word_bits, 0)
        return PackedWords([], **meta)
    if n_words * lanes != count:
        u = np.concatenate([u, np.zeros(n_words * lanes - count, dtype=np.uint64)])
    grid = u.reshape(n_words, lanes)

    n_limbs = -(-word_bits // 64)
    limbs = np.zeros((n_words, n_limbs), dtype=np.uint64)
    for k, off in enumerate(_lane_offsets(lanes, elem_bits, lane_order)):
        li, sh = divmod(off, 64)
        col = grid[:, k]
        limbs[:, li] |= col << _U64(sh)
        if sh + elem_bits > 64:
            limbs[:, li + 1] |= col >> _U64(64 - sh)

    if not as_list:
        return LimbWords(limbs, word_bits, count)
    return PackedWords(limbs_to_words(limbs), limbs=limbs, **meta)


def limbs_to_words(limbs: np.ndarray) -> list[int]:
    """Rows of little-endian uint64 limbs (shape ``(n, n_limbs)``) as Python ints."""
    n, n_limbs = limbs.shape
    if n_limbs == 1:
        return limbs[:, 0].tolist()
    raw = np.ascontiguousarray(limbs, dtype="<u8").view(f"S{8 * n_limbs}").reshape(n)
    # (numpy drops trailing NUL bytes of "S" items: in little-endian these are the high zero
    # bytes, so the values are unchanged.)
    return list(map(int.from_bytes, raw.tolist(), repeat("little")))


def words_to_limbs(words, word_bits: int, n_limbs: int | None = None) -> np.ndarray:
    """Check words (ints in ``0 .. 2**word_bits-1``) and split them into uint64 limbs.

    Returns shape ``(n, n_limbs)`` (``n_limbs`` defaults to ``ceil(word_bits/64)``), limb 0
    the least significant. A word out of range raises ValueError naming its index; a
    non-integer (float, str, ...) raises TypeError.
    """
    if n_limbs is None:
        n_limbs = -(-word_bits // 64)
    known = known_limbs(words, word_bits, n_limbs)
    if known is not None:
        return known
    if isinstance(words, np.ndarray):
        if words.dtype.kind not in "iu":
            raise TypeError(f"words must be integers, got an array of dtype {words.dtype}")
        flat = words.reshape(-1)
        if n_limbs == 1 and flat.size and (flat.dtype.kind == "u" or flat.min() >= 0) \
                and (word_bits >= 64 or not (flat.astype(np.uint64) >> np.uint64(word_bits)).any()):
            return flat.astype(np.uint64).reshape(-1, 1)
        words = flat.tolist()
    elif not isinstance(words, list):
        words = list(words)
    n = len(words)
    if n and n_limbs == 1 and word_bits < 64:
        # one pass in C: ints that all fit int64 give an int64 array (anything else: bools,
        # floats, numpy scalars, big ints: the checks below)
        try:
            a = np.array(words)
        except (ValueError, TypeError, OverflowError):  # ragged or odd: named below
            a = None
        if a is not None and a.dtype == np.int64 and a.ndim == 1 and a.min() >= 0 \
                and not (a >> word_bits).any() and _plain_ints(words):
            return a.astype(np.uint64).reshape(n, 1)
    if n and set(map(type, words)) == {int} and min(words) >= 0 \
            and max(words) >> word_bits == 0:
        if n_limbs == 1:
            return np.array(words, dtype=np.uint64).reshape(n, 1)
        raw = b"".join(map(int.to_bytes, words, repeat(8 * n_limbs), repeat("little")))
        return np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(n, n_limbs)
    # Slow path: convert numpy scalars, and name the first offending word.
    out = []
    for i, w in enumerate(words):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)):
            raise TypeError(f"word {i} is {w!r}, not an integer")
        w = int(w)
        if w < 0:
            raise ValueError(f"word {i} ({w}) is negative; words are unsigned "
                             f"{word_bits}-bit values")
        if w >> word_bits:
            raise ValueError(f"word {i} ({w:#x}) does not fit {word_bits} bits")
        out.append(w)
    if not out:
        return np.zeros((0, n_limbs), dtype=np.uint64)
    return words_to_limbs(out, word_bits, n_limbs)


def _plain_ints(words: list) -> bool:
    """Every element is a Python int (not a bool or a numpy integer, which np.array also
    types as int64)."""
    return all(type(w) is int for w in words)


def unpack_words(words: Sequence[int], elem_bits: int, signed: bool, lanes_per_word: int,
                 count: int, word_bits: int | None = None, lane_order: str = "lsb_first",
                 check_padding: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_words`: the first ``count`` elements held by ``words``.

    Returns a flat ``int64`` array (``uint64`` for unsigned 64-bit elements, which int64
    cannot hold). ``words`` must hold at least ``ceil(count/lanes_per_word)`` words; each must
    be an unsigned ``word_bits``-bit value. With ``check_padding`` (the default) everything
    past the ``count`` elements must be zero: padding lanes, spare bits above the lanes, and
    any further words (e.g. a memory padded to its depth) — a nonzero bit there raises
    ValueError, because it means the words were not laid out as described.
    """
    elem_bits, lanes, word_bits = _check_layout(elem_bits, signed, lanes_per_word, word_bits,
                                                lane_order)
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    n_limbs = -(-word_bits // 64)
    limbs = words_to_limbs(words, word_bits, n_limbs)
    n_have = limbs.shape[0]
    n_used = words_needed(count, lanes)
    if n_have < n_used:
        raise ValueError(f"{count} elements of {lanes} per word need {n_used} words, "
                         f"got {n_have}")

    used = limbs[:n_used]
    mask = _ALL_ONES if elem_bits == 64 else _U64((1 << elem_bits) - 1)
    grid = np.empty((n_used, lanes), dtype=np.uint64)
    for k, off in enumerate(_lane_offsets(lanes, elem_bits, lane_order)):
        li, sh = divmod(off, 64)
        col = used[:, li] >> _U64(sh)
        if sh + elem_bits > 64:
            col |= used[:, li + 1] << _U64(64 - sh)
        grid[:, k] = col & mask

    if check_padding and n_used:
        # The bits above the lane area, and the padding lanes of the last word, must be zero.
        lane_bits = lanes * elem_bits
        spare = np.zeros(n_limbs, dtype=np.uint64)  # bits of each limb above the lane area
        for li in range(n_limbs):
            keep = min(max(lane_bits - 64 * li, 0), 64)
            spare[li] = ~((1 << keep) - 1) & 0xFFFF_FFFF_FFFF_FFFF
        over = (used & spare).any(axis=1)
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise ValueError(f"word {i} has nonzero bits above its {lanes} lanes of "
                             f"{elem_bits} bits (bit {lane_bits} and up)")
        tail = n_used * lanes - count
        if tail:
            pad = grid[-1, lanes - tail:]
            if pad.any():
                k = lanes - tail + int(np.flatnonzero(pad)[0])
                raise ValueError(f"word {n_used - 1} has a nonzero padding lane {k} (only "
                                 f"lanes 0..{lanes - tail - 1} of its {lanes} hold elements)")
    if check_padding and n_have > n_used:
        rest = limbs[n_used:].any(axis=1)
        if rest.any():
            i = n_used + int(np.flatnonzero(rest)[0])
            where = f"end in word {n_used - 1}" if n_used else "need no words"
            raise ValueError(f"word {i} is nonzero, but {count} elements {where}")

    flat = grid.reshape(-1)[:count]
    if not signed:
        if elem_bits == 64:
            return flat.copy()
        return flat.astype(np.int64)
    s = flat.view(np.int64)
    if elem_bits == 64:
        return s.copy()
    sign = np.int64(1 << (elem_bits - 1))
    return (s ^ sign) - sign
