"""Memory files: writers with deterministic bytes, and strict readers.

Formats (chosen by file extension unless ``fmt`` is given); see docs/formats.md:

- ``hex``: ``$readmemh`` text, one word per line, exactly ``ceil(word_bits/4)`` lowercase hex
  digits, no address, ``\\n`` after every line.
- ``mem``: the same lines after a first ``@<hex address>`` line (Vivado ``.mem``; ``$readmemh``
  reads it too).
- ``coe``: Xilinx Block Memory Generator coefficient file, radix 16.
- ``mif``: Intel (Altera) Memory Initialization File, HEX addresses and data.
- ``bin``: raw bytes, each word ``ceil(word_bits/8)`` bytes, little-endian (least-significant
  byte first), words one after another, no header.

Every writer writes through :func:`hwsim.util.atomic_write_bytes`. Readers accept what the
writers produce, plus the format's comments, blank lines, CRLF line ends and upper-case hex
digits; anything else raises :class:`MemoryFileError` with ``<file>:<line>: <reason>`` (for
``.bin`` the "line" is the 1-based word number). Text readers insist on exactly
``ceil(word_bits/4)`` digits per word, so a file written for another width is never misread.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Iterator

import numpy as np

from ..ir import HwsimError
from ..util import atomic_write_bytes
from .pack import MAX_WORD_BITS, limbs_to_words, words_to_limbs

__all__ = [
    "FORMATS",
    "ExportError",
    "MemoryFileError",
    "format_for_path",
    "hex_digits",
    "word_bytes",
    "render_memory",
    "render_memories",
    "parse_memory",
    "write_memory",
    "read_memory",
]

FORMATS = ("hex", "mem", "coe", "mif", "bin")

_HEXCHARS = frozenset("0123456789abcdefABCDEF")


class MemoryFileError(HwsimError, ValueError):
    """A memory file is malformed; the message is ``<file>:<line>: <reason>``."""

    def __init__(self, name: str, line: int, reason: str):
        super().__init__(f"{name}:{line}: {reason}")
        self.name = name
        self.line = line
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.name, self.line, self.reason)


class ExportError(HwsimError, ValueError):
    """Words cannot be written as asked (e.g. more words than the memory depth)."""


def hex_digits(word_bits: int) -> int:
    """Hex digits per word in the text formats: ``ceil(word_bits/4)``."""
    return -(-word_bits // 4)


def word_bytes(word_bits: int) -> int:
    """Bytes per word in ``.bin``: ``ceil(word_bits/8)``."""
    return -(-word_bits // 8)


def format_for_path(path: str | os.PathLike) -> str:
    """The format named by a file's extension (``.hex`` -> ``"hex"``, ...)."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(f"{os.fspath(path)}: cannot tell the memory format from the extension "
                         f"{'.' + ext if ext else '(none)'}; expected one of "
                         f"{', '.join('.' + f for f in FORMATS)} or pass fmt=")
    return ext


def _check_fmt(fmt: str) -> str:
    f = str(fmt).lower().lstrip(".")
    if f not in FORMATS:
        raise ValueError(f"unknown memory format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return f


def _check_word_bits(word_bits) -> int:
    if isinstance(word_bits, bool) or not isinstance(word_bits, (int, np.integer)):
        raise TypeError(f"word_bits must be an int, got {word_bits!r}")
    word_bits = int(word_bits)
    if not 1 <= word_bits <= MAX_WORD_BITS:
        raise ValueError(f"word_bits must be 1..{MAX_WORD_BITS}, got {word_bits}")
    return word_bits


def _check_depth(depth) -> int | None:
    if depth is None:
        return None
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    return int(depth)


# --------------------------------------------------------------------------------------------
# Hex digits <-> limbs, vectorised
# --------------------------------------------------------------------------------------------

_HEX_ASCII = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_VALUE = np.full(256, 255, dtype=np.uint8)  # ASCII code -> nibble value, 255 if not hex
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16)
_HEX_VALUE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)


def _hex_matrix(limbs: np.ndarray, nd: int) -> np.ndarray:
    """ASCII hex digits of each row of limbs, most-significant digit first: shape (n, nd).

    The row's big-endian bytes split into nibbles, turned into digits with uint8 arithmetic
    ('0' + v, plus 39 more for a..f): a few passes over bytes whatever the word width."""
    n, n_limbs = limbs.shape
    nb = -(-nd // 2)  # bytes that hold the nd digits
    if 8 * n_limbs < nb:  # fewer limbs than digits: the missing high ones are zero
        limbs = np.concatenate([limbs, np.zeros((n, -(-nb // 8) - n_limbs), np.uint64)], 1)
        n_limbs = limbs.shape[1]
    be = np.ascontiguousarray(limbs[:, ::-1], dtype=">u8").view(np.uint8)
    be = be.reshape(n, 8 * n_limbs)[:, 8 * n_limbs - nb:]
    out = np.empty((n, nb, 2), dtype=np.uint8)
    np.right_shift(be, 4, out=out[:, :, 0])
    np.bitwise_and(be, 15, out=out[:, :, 1])
    flat = out.reshape(-1)
    flat += 48  # '0'
    flat += (flat > 57) * np.uint8(39)  # 'a' - '0' - 10
    digits = out.reshape(n, 2 * nb)
    return digits[:, 1:] if 2 * nb > nd else digits


def _hex_cols_to_limbs(cols: np.ndarray, word_bits: int) -> np.ndarray | None:
    """Inverse of :func:`_hex_matrix` for ASCII digit columns; None unless every digit is hex
    and every value fits ``word_bits``."""
    n, nd = cols.shape
    v = _HEX_VALUE[cols]
    if (v == 255).any():
        return None
    top = word_bits - 4 * (nd - 1)  # bits the leading digit may use
    if top < 4 and (v[:, 0] >> np.uint8(max(top, 0))).any():
        return None
    limbs = np.zeros((n, -(-4 * nd // 64)), dtype=np.uint64)
    for j in range(nd):
        li, sh = divmod(4 * (nd - 1 - j), 64)
        limbs[:, li] |= v[:, j].astype(np.uint64) << np.uint64(sh)
    return limbs


def _records(body: bytes, rec: int, n: int | None = None) -> np.ndarray | None:
    """``body`` as an (n, rec) uint8 matrix of fixed-length records, or None."""
    if not body or len(body) % rec or (n is not None and len(body) != n * rec):
        return None
    return np.frombuffer(body, dtype=np.uint8).reshape(-1, rec)


def _const(a: np.ndarray, b: bytes) -> bool:
    return bool((a == np.frombuffer(b, dtype=np.uint8)).all())


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

_COE_HEAD = b"memory_initialization_radix=16;\nmemory_initialization_vector=\n"
_MIF_FAST_HEAD = re.compile(rb"WIDTH=([0-9]+);\nDEPTH=([0-9]+);\nADDRESS_RADIX=HEX;\n"
                            rb"DATA_RADIX=HEX;\nCONTENT BEGIN\n")


def _lines(n: int, head: bytes, cols, tail: bytes = b"") -> np.ndarray:
    """``head``, then ``n`` rows of ``cols`` side by side (uint8 matrices with n rows, or bytes
    repeated on every row), then ``tail``: one flat uint8 buffer, filled in place."""
    widths = [c.shape[1] if isinstance(c, np.ndarray) else len(c) for c in cols]
    w = sum(widths)
    buf = np.empty(len(head) + n * w + len(tail), dtype=np.uint8)
    buf[:len(head)] = np.frombuffer(head, dtype=np.uint8)
    body = buf[len(head):len(head) + n * w].reshape(n, w)
    at = 0
    for c, cw in zip(cols, widths):
        body[:, at:at + cw] = c if isinstance(c, np.ndarray) else np.frombuffer(c, np.uint8)
        at += cw
    buf[len(buf) - len(tail):] = np.frombuffer(tail, dtype=np.uint8)
    return buf


class _Digits:
    """The hex digits of one memory's words, computed once for every text format."""

    def __init__(self, limbs: np.ndarray, word_bits: int, address: int = 0):
        self.limbs, self.word_bits = limbs, word_bits
        self.mem_head = f"@{address:x}\n".encode("ascii")
        self._m = self._mem = None

    @property
    def matrix(self) -> np.ndarray:
        if self._m is None:
            self._m = _hex_matrix(self.limbs, hex_digits(self.word_bits))
        return self._m

    @property
    def mem(self) -> np.ndarray:
        """The .mem file; the .hex file is the same bytes after its first line."""
        if self._mem is None:
            self._mem = _lines(self.limbs.shape[0], self.mem_head, (self.matrix, b"\n"))
        return self._mem


def _render_hex(d: _Digits):
    return d.mem[len(d.mem_head):]


def _render_mem(d: _Digits):
    return d.mem


def _render_coe(d: _Digits):
    m = d.matrix
    buf = _lines(m.shape[0], _COE_HEAD, (m, b",\n"))
    buf[-2] = ord(";")
    return buf


def _render_mif(d: _Digits):
    n = d.limbs.shape[0]
    na = len(f"{n - 1:x}")
    addr = _hex_matrix(np.arange(n, dtype=np.uint64).reshape(n, 1), na)
    head = (f"WIDTH={d.word_bits};\nDEPTH={n};\nADDRESS_RADIX=HEX;\nDATA_RADIX=HEX;\n"
            "CONTENT BEGIN\n").encode("ascii")
    return _lines(n, head, (addr, b" : ", d.matrix, b";\n"), b"END;\n")


def _render_bin(d: _Digits):
    n, n_limbs = d.limbs.shape
    raw = np.ascontiguousarray(d.limbs, dtype="<u8").view(np.uint8).reshape(n, 8 * n_limbs)
    return np.ascontiguousarray(raw[:, :word_bytes(d.word_bits)]).reshape(-1)


_RENDER = {"hex": _render_hex, "mem": _render_mem, "coe": _render_coe, "mif": _render_mif,
           "bin": _render_bin}


def _limbs_to_render(words, word_bits, depth, address) -> tuple[np.ndarray, int, int]:
    """Checked limbs (padded to ``depth``), word_bits and address of a memory file."""
    word_bits = _check_word_bits(word_bits)
    depth = _check_depth(depth)
    if isinstance(address, bool) or not isinstance(address, (int, np.integer)) or address < 0:
        raise ValueError(f"address must be an int >= 0, got {address!r}")
    limbs = words_to_limbs(words, word_bits)
    n = limbs.shape[0]
    if depth is not None:
        if n > depth:
            raise ExportError(f"{n} words do not fit depth {depth}")
        if n < depth:
            limbs = np.concatenate([limbs, np.zeros((depth - n, limbs.shape[1]),
                                                    dtype=np.uint64)])
    if limbs.shape[0] == 0:
        raise ExportError("a memory file needs at least one word (got none)")
    return limbs, word_bits, int(address)


def render_memories(words, word_bits: int, fmts, address: int = 0) -> dict[str, memoryview]:
    """The bytes of one memory in each of ``fmts`` (as :func:`render_memory` gives them, as
    buffers: no copy; the start ``address`` goes into the .mem file only), sharing the work:
    the words are checked and their hex digits computed once (.hex is a view of .mem)."""
    fmts = [_check_fmt(f) for f in fmts]
    limbs, word_bits, address = _limbs_to_render(words, word_bits, None, address)
    d = _Digits(limbs, word_bits, address)
    return {f: memoryview(_RENDER[f](d)) for f in fmts}


def _render(words, word_bits, fmt, depth, address) -> tuple[bytes, int]:
    fmt = _check_fmt(fmt)
    _check_word_bits(word_bits)
    _check_depth(depth)
    if isinstance(address, bool) or not isinstance(address, (int, np.integer)) or address < 0:
        raise ValueError(f"address must be an int >= 0, got {address!r}")
    if address and fmt != "mem":
        raise ValueError(f"a start address is only written to .mem files, not .{fmt}")
    limbs, word_bits, address = _limbs_to_render(words, word_bits, depth, address)
    return _RENDER[fmt](_Digits(limbs, word_bits, address)).tobytes(), limbs.shape[0]


def render_memory(words: Iterable[int], word_bits: int, fmt: str, depth: int | None = None,
                  address: int = 0) -> bytes:
    """The exact bytes of a memory file holding ``words`` (see :func:`write_memory`)."""
    return _render(words, word_bits, fmt, depth, address)[0]


def write_memory(path: str | os.PathLike, words: Iterable[int], word_bits: int,
                 fmt: str | None = None, depth: int | None = None, address: int = 0) -> int:
    """Write ``words`` (unsigned ints < ``2**word_bits``) to a memory file, atomically.

    ``fmt`` defaults to the extension of ``path``. With ``depth`` the memory is padded with
    zero words to ``depth`` words (more words than ``depth`` raise ExportError
    "<path>: N words do not fit depth D"). ``address`` is the ``@`` start address of a
    ``.mem`` (other formats have none). Returns the number of words written.
    """
    path = os.fspath(path)
    fmt = format_for_path(path) if fmt is None else _check_fmt(fmt)
    try:
        data, n = _render(words, word_bits, fmt, depth, address)
    except ExportError as e:
        raise ExportError(f"{path}: {e}") from None
    atomic_write_bytes(path, data)
    return n


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------

class _Reader:
    """Shared state of one parse: file name, word width, expected depth, the words so far."""

    def __init__(self, name: str, word_bits: int, depth: int | None):
        self.name = name
        self.word_bits = word_bits
        self.nd = hex_digits(word_bits)
        self.depth = depth
        self.words: list[int] = []

    def error(self, line: int, reason: str) -> MemoryFileError:
        return MemoryFileError(self.name, line, reason)

    def hex_word(self, tok: str, line: int) -> int:
        """Value of one data token: hex digits only, exactly ``nd`` of them, < 2**word_bits."""
        for ch in tok:
            if ch not in _HEXCHARS:
                raise self.error(line, f"bad hex digit {ch!r} in {_show(tok)}")
        if len(tok) != self.nd:
            raise self.error(line, f"expected {self.nd} hex digits per {self.word_bits}-bit "
                                   f"word, got {len(tok)} ({_show(tok)})")
        v = int(tok, 16)
        if v >> self.word_bits:
            raise self.error(line, f"value {tok} is wider than {self.word_bits} bits")
        return v

    def add(self, v: int, line: int) -> None:
        if self.depth is not None and len(self.words) >= self.depth:
            raise self.error(line, f"too many words: more than the expected depth {self.depth}")
        self.words.append(v)

    def finish(self, last_line: int) -> list[int]:
        if not self.words:
            raise self.error(last_line, "no words in the file")
        if self.depth is not None and len(self.words) < self.depth:
            raise self.error(last_line, f"too few words: {len(self.words)}, expected depth "
                                        f"{self.depth}")
        return self.words


def _show(text: str, limit: int = 24) -> str:
    """``repr`` of a piece of the file for a message, cut after ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise MemoryFileError(name, line, f"non-ASCII byte 0x{data[e.start]:02x}") from None


def _line_count(text: str) -> int:
    """Number of the last line (a final newline does not start a new line)."""
    n = text.count("\n")
    return max(1, n if text.endswith("\n") else n + 1)


def _parse_hexlike(text: str, r: _Reader, mem: bool, address: int | None) -> list[int]:
    next_addr = None
    lines = text.split("\n")
    for ln, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        c = line.find("//")
        if c >= 0:
            line = line[:c]
        line = line.strip(" \t")
        if not line:
            continue
        if line[0] == "@":
            if not mem:
                raise r.error(ln, "address line '@...' is not allowed in a .hex file "
                                  "(use .mem for an addressed image)")
            a = line[1:]
            if not a or len(a) > 16 or any(ch not in _HEXCHARS for ch in a):
                raise r.error(ln, f"bad address line {_show(line)} (expected '@' and at most "
                                  f"16 hex digits)")
            addr = int(a, 16)
            if next_addr is None:
                if address is not None and addr != address:
                    raise r.error(ln, f"image starts at @{addr:x}, expected @{address:x}")
            elif addr != next_addr:
                raise r.error(ln, f"address jump to @{addr:x}, expected @{next_addr:x} "
                                  "(only contiguous images are read)")
            next_addr = addr
            continue
        if mem and next_addr is None:
            raise r.error(ln, "missing '@<address>' line before the first word")
        if any(ch in " \t" for ch in line):
            raise r.error(ln, "more than one word on a line (expected one word per line)")
        r.add(r.hex_word(line, ln), ln)
        if next_addr is not None:
            next_addr += 1
    last = _line_count(text)
    if mem and next_addr is None:
        raise r.error(last, "missing '@<address>' line")
    return r.finish(last)


_TOKEN = re.compile(r"[^\s,;:=\[\]]+|[,;:=\[\]]")


def _tokens(text: str) -> Iterator[tuple[str, int]]:
    line, pos = 1, 0
    for m in _TOKEN.finditer(text):
        s = m.start()
        line += text.count("\n", pos, s)
        pos = s
        yield m.group(), line


class _TokenStream:
    def __init__(self, text: str, r: _Reader):
        self.toks = list(_tokens(text))
        self.i = 0
        self.r = r
        self.last_line = _line_count(text)
        # no keyword, address or word is longer: messages that quote a token stay short
        limit = max(r.nd, 64)
        for tok, ln in self.toks:
            if len(tok) > limit:
                raise r.error(ln, f"{_show(tok)} is longer than any keyword, address or "
                                  f"{r.word_bits}-bit word")

    def next(self, what: str) -> tuple[str, int]:
        if self.i >= len(self.toks):
            raise self.r.error(self.last_line, f"unexpected end of file: missing {what}")
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, tok: str, after: str) -> int:
        t, ln = self.next(f"{tok!r} after {after}")
        if t != tok:
            raise self.r.error(ln, f"expected {tok!r} after {after}, got {t!r}")
        return ln

    def at_end(self) -> bool:
        return self.i >= len(self.toks)


_COE_RADIX = "memory_initialization_radix"
_COE_VECTOR = "memory_initialization_vector"


def _parse_coe(text: str, r: _Reader) -> list[int]:
    # Text after a ';' up to the end of the line is a comment (the ';' itself stays).
    text = re.sub(r";[^\n]*", ";", text)
    ts = _TokenStream(text, r)
    radix_seen = False
    while True:
        tok, ln = ts.next(f"{_COE_VECTOR}")
        if tok == ";":
            continue  # a comment line, or an empty statement
        key = tok.lower()
        if key == _COE_RADIX:
            if radix_seen:
                raise r.error(ln, f"{_COE_RADIX} given twice")
            ts.expect("=", tok)
            val, vln = ts.next(f"the value of {tok}")
            if val in (";", ",", "=", ":", "[", "]"):
                raise r.error(vln, f"missing value after {tok}=")
            if val != "16":
                raise r.error(vln, f"unsupported {_COE_RADIX}={val} (only radix 16 is read)")
            ts.expect(";", f"{tok}={val}")
            radix_seen = True
        elif key == _COE_VECTOR:
            if not radix_seen:
                raise r.error(ln, f"{tok} before {_COE_RADIX} (missing radix keyword)")
            ts.expect("=", tok)
            while True:
                val, vln = ts.next(f"the values and final ';' of {tok}")
                if val in (",", ";"):
                    raise r.error(vln, f"empty value in {tok}" if r.words or val == "," else
                                       f"{tok} has no values")
                if val in ("=", ":", "[", "]"):
                    raise r.error(vln, f"unexpected {val!r} in {tok}")
                r.add(r.hex_word(val, vln), vln)
                sep, sln = ts.next(f"',' or the final ';' of {tok}")
                if sep == ";":
                    break
                if sep != ",":
                    raise r.error(sln, f"expected ',' or ';' after a value, got {sep!r}")
            while not ts.at_end():
                t, tln = ts.next("")
                if t != ";":
                    raise r.error(tln, f"unexpected {t!r} after the final ';' of {_COE_VECTOR} "
                                       "(it must be the last keyword)")
            return r.finish(ts.last_line)
        else:
            raise r.error(ln, f"unknown keyword {tok!r} (expected {_COE_RADIX} or "
                              f"{_COE_VECTOR})")


_MIF_COMMENT = re.compile(r"--[^\n]*|%[^%]*%")
_MIF_HEADER = ("WIDTH", "DEPTH", "ADDRESS_RADIX", "DATA_RADIX")
_MIF_ADDR_RADIX = {"HEX": (16, _HEXCHARS), "UNS": (10, frozenset("0123456789")),
                   "DEC": (10, frozenset("0123456789")), "OCT": (8, frozenset("01234567")),
                   "BIN": (2, frozenset("01"))}


def _blank_keep_newlines(m: re.Match) -> str:
    return re.sub(r"[^\n]", " ", m.group())


def _parse_mif(text: str, r: _Reader) -> list[int]:
    text = _MIF_COMMENT.sub(_blank_keep_newlines, text)
    pct = text.find("%")
    if pct >= 0:
        raise r.error(text.count("\n", 0, pct) + 1, "unterminated '%' comment")
    ts = _TokenStream(text, r)
    header: dict[str, tuple[str, int]] = {}
    while True:
        tok, ln = ts.next("CONTENT BEGIN")
        key = tok.upper()
        if key == "CONTENT":
            content_line = ln
            break
        if key not in _MIF_HEADER:
            raise r.error(ln, f"unknown keyword {tok!r} (expected one of "
                              f"{', '.join(_MIF_HEADER)} or CONTENT)")
        if key in header:
            raise r.error(ln, f"{key} given twice")
        ts.expect("=", key)
        val, vln = ts.next(f"the value of {key}")
        if val in (";", ",", "=", ":", "[", "]"):
            raise r.error(vln, f"missing value after {key}=")
        ts.expect(";", f"{key}={val}")
        header[key] = (val, vln)
    bt, bln = ts.next("BEGIN after CONTENT")
    if bt.upper() != "BEGIN":
        raise r.error(bln, f"expected BEGIN after CONTENT, got {bt!r}")
    for key in _MIF_HEADER:
        if key not in header:
            raise r.error(content_line, f"missing header keyword {key} before CONTENT")

    def positive(key):
        val, vln = header[key]
        if not val.isdigit() or int(val) < 1:
            raise r.error(vln, f"{key}={val} is not a positive decimal number")
        return int(val), vln

    width, wln = positive("WIDTH")
    if width != r.word_bits:
        raise r.error(wln, f"WIDTH={width}, expected {r.word_bits}")
    depth, dln = positive("DEPTH")
    if r.depth is not None and depth != r.depth:
        raise r.error(dln, f"DEPTH={depth}, expected depth {r.depth}")
    arad, aln = header["ADDRESS_RADIX"]
    if arad.upper() not in _MIF_ADDR_RADIX:
        raise r.error(aln, f"unknown ADDRESS_RADIX={arad} (expected one of "
                           f"{', '.join(_MIF_ADDR_RADIX)})")
    base, digits = _MIF_ADDR_RADIX[arad.upper()]
    drad, drln = header["DATA_RADIX"]
    if drad.upper() != "HEX":
        raise r.error(drln, f"unsupported DATA_RADIX={drad} (only HEX is read)")

    words: dict[int, int] = {}  # a dict, not a list: DEPTH comes from the file
    while True:
        tok, ln = ts.next("END;")
        if tok.upper() == "END":
            end_line = ts.expect(";", "END")
            if not ts.at_end():
                t, tln = ts.next("")
                raise r.error(tln, f"unexpected {t!r} after END;")
            break
        if tok == "[":
            raise r.error(ln, "address ranges '[a..b]' are not supported (one address per "
                              "line)")
        if any(ch not in digits for ch in tok):
            raise r.error(ln, f"bad address {tok!r} for ADDRESS_RADIX={arad}")
        addr = int(tok, base)
        ts.expect(":", f"address {tok}")
        val, vln = ts.next(f"the value at address {tok}")
        if val in (";", ",", "=", ":", "[", "]"):
            raise r.error(vln, f"missing value at address {tok}")
        v = r.hex_word(val, vln)
        sep, sln = ts.next(f"';' after the value at address {tok}")
        if sep != ";":
            if sep not in (",", "=", ":", "[", "]"):
                raise r.error(sln, "several values on one address line are not supported")
            raise r.error(sln, f"expected ';' after the value at address {tok}, got {sep!r}")
        if addr >= depth:
            raise r.error(ln, f"too many words: address {tok} is outside DEPTH={depth}")
        if addr in words:
            raise r.error(ln, f"address {tok} is given twice")
        words[addr] = v
    if len(words) < depth:
        first = next(a for a in range(depth) if a not in words)
        raise r.error(end_line, f"too few words: {depth - len(words)} of the DEPTH={depth} "
                                f"addresses have no value (the first is {first:x} hex)")
    return [words[a] for a in range(depth)]


def _parse_bin(data: bytes, r: _Reader) -> list[int]:
    nb = word_bytes(r.word_bits)
    n, rem = divmod(len(data), nb)
    if rem:
        raise r.error(n + 1, f"size {len(data)} bytes is not a multiple of {nb} bytes per "
                             f"{r.word_bits}-bit word")
    if n == 0:
        raise r.error(1, "no words in the file")
    if r.depth is not None and n != r.depth:
        raise r.error(min(n, r.depth + 1),
                      f"too many words: {n}, expected depth {r.depth}" if n > r.depth else
                      f"too few words: {n}, expected depth {r.depth}")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, nb)
    top_bits = r.word_bits - 8 * (nb - 1)
    if top_bits < 8:
        over = (raw[:, -1] >> np.uint8(top_bits)) != 0
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise r.error(i + 1, f"value wider than {r.word_bits} bits (top byte "
                                 f"0x{int(raw[i, -1]):02x})")
    if nb <= 8:
        padded = np.zeros((n, 8), dtype=np.uint8)
        padded[:, :nb] = raw
        return padded.view("<u8").reshape(n).tolist()
    return [int.from_bytes(data[i:i + nb], "little") for i in range(0, len(data), nb)]


def _fast_hex(data: bytes, r: _Reader) -> list[int] | None:
    """Decode exactly what the .hex writer produces; None for anything else."""
    a = _records(data, r.nd + 1, r.depth)
    if a is None or not _const(a[:, r.nd:], b"\n"):
        return None
    limbs = _hex_cols_to_limbs(a[:, :r.nd], r.word_bits)
    return None if limbs is None else limbs_to_words(limbs)


def _fast_mem(data: bytes, r: _Reader, address: int | None) -> list[int] | None:
    m = re.match(rb"@([0-9a-fA-F]+)\n", data)
    if not m or (address is not None and int(m.group(1), 16) != address):
        return None
    return _fast_hex(data[m.end():], r)


def _fast_coe(data: bytes, r: _Reader) -> list[int] | None:
    if not data.startswith(_COE_HEAD):
        return None
    a = _records(data[len(_COE_HEAD):], r.nd + 2, r.depth)
    if a is None or not _const(a[:-1, r.nd:], b",\n") or not _const(a[-1:, r.nd:], b";\n"):
        return None
    limbs = _hex_cols_to_limbs(a[:, :r.nd], r.word_bits)
    return None if limbs is None else limbs_to_words(limbs)


def _fast_mif(data: bytes, r: _Reader) -> list[int] | None:
    m = _MIF_FAST_HEAD.match(data)
    if not m or not data.endswith(b"END;\n"):
        return None
    width, depth = int(m.group(1)), int(m.group(2))
    if width != r.word_bits or depth < 1 or (r.depth is not None and depth != r.depth):
        return None
    na = len(f"{depth - 1:x}")
    a = _records(data[m.end():-5], na + 3 + r.nd + 2, depth)
    if a is None or not _const(a[:, na:na + 3], b" : ") or not _const(a[:, -2:], b";\n"):
        return None
    addr = _hex_cols_to_limbs(a[:, :na], 64)
    if addr is None or not np.array_equal(addr[:, 0], np.arange(depth, dtype=np.uint64)):
        return None
    limbs = _hex_cols_to_limbs(a[:, na + 3:na + 3 + r.nd], r.word_bits)
    return None if limbs is None else limbs_to_words(limbs)


def parse_memory(data: bytes, word_bits: int, fmt: str, depth: int | None = None,
                 address: int | None = 0, name: str = "<memory>") -> list[int]:
    """Parse the bytes of a memory file (see :func:`read_memory`); ``name`` is for messages."""
    fmt = _check_fmt(fmt)
    word_bits = _check_word_bits(word_bits)
    depth = _check_depth(depth)
    r = _Reader(name, word_bits, depth)
    data = bytes(data)
    if fmt == "bin":
        return _parse_bin(data, r)
    # Files exactly as the writers make them are decoded vectorised; anything else (comments,
    # CRLF, upper case, ... or an error) goes through the line/token parser, which names the
    # offending line.
    fast = (_fast_hex(data, r) if fmt == "hex" else _fast_mem(data, r, address) if fmt == "mem"
            else _fast_coe(data, r) if fmt == "coe" else _fast_mif(data, r))
    if fast is not None:
        return fast
    text = _decode(data, name)
    if fmt == "hex":
        return _parse_hexlike(text, r, mem=False, address=None)
    if fmt == "mem":
        return _parse_hexlike(text, r, mem=True, address=address)
    if fmt == "coe":
        return _parse_coe(text, r)
    return _parse_mif(text, r)


def read_memory(path: str | os.PathLike, word_bits: int, fmt: str | None = None,
                depth: int | None = None, address: int | None = 0) -> list[int]:
    """Read a memory file back into its words (unsigned ints), strictly.

    ``fmt`` defaults to the extension. With ``depth`` the file must hold exactly that many
    words. For ``.mem``, the image must start at ``address`` (``None``: anywhere) and be
    contiguous. Malformed files raise :class:`MemoryFileError` ("<file>:<line>: <reason>").
    """
    path = os.fspath(path)
    fmt = format_for_path(path) if fmt is None else _check_fmt(fmt)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise HwsimError(f"{path}: cannot read ({e.strerror})") from None
    return parse_memory(data, word_bits, fmt, depth=depth, address=address, name=path)
