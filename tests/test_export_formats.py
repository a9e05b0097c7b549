"""Word packing and memory files: golden texts, round trips, strict readers, and a real
Verilog simulator ($readmemh in Icarus Verilog) reading what we write."""
from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.ir import HwsimError
from hwsim.export.formats import (FORMATS, ExportError, MemoryFileError, hex_digits,
                                  parse_memory, read_memory, render_memory, word_bytes,
                                  write_memory)
from hwsim.export.pack import (MAX_WORD_BITS, PackedWords, elem_range, pack_words,
                               unpack_words, words_needed)

# --------------------------------------------------------------------------------------------
# An independent bit-by-bit model of the packing (plain Python ints), the oracle for pack_words
# --------------------------------------------------------------------------------------------


def ref_pack(values, elem_bits, signed, lanes, word_bits, lane_order):
    vals = [int(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    mask = (1 << elem_bits) - 1
    words = []
    for w0 in range(0, len(vals), lanes):
        word = 0
        for k, v in enumerate(vals[w0:w0 + lanes]):
            lane = k if lane_order == "lsb_first" else lanes - 1 - k
            for b in range(elem_bits):  # bit by bit, on purpose
                if (v & mask) >> b & 1:
                    word |= 1 << (lane * elem_bits + b)
        assert word < 1 << word_bits
        words.append(word)
    return words


# --------------------------------------------------------------------------------------------
# The documented worked example (docs/formats.md): 13 int8 values, 4 lanes per 32-bit word
# --------------------------------------------------------------------------------------------

EXAMPLE = np.array([1, 2, 3, -4, 5, -6, 7, 100, -128, 127, 0, -1, 42], dtype=np.int8)
EXAMPLE_WORDS = [0xFC030201, 0x6407FA05, 0xFF007F80, 0x0000002A]
EXAMPLE_WORDS_MSB = [0x010203FC, 0x05FA0764, 0x807F00FF, 0x2A000000]

GOLDEN = {
    "hex": "fc030201\n6407fa05\nff007f80\n0000002a\n",
    "mem": "@0\nfc030201\n6407fa05\nff007f80\n0000002a\n",
    "coe": ("memory_initialization_radix=16;\n"
            "memory_initialization_vector=\n"
            "fc030201,\n6407fa05,\nff007f80,\n0000002a;\n"),
    "mif": ("WIDTH=32;\nDEPTH=4;\nADDRESS_RADIX=HEX;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n"
            "0 : fc030201;\n1 : 6407fa05;\n2 : ff007f80;\n3 : 0000002a;\nEND;\n"),
}
GOLDEN_BIN = bytes.fromhex("010203fc" "05fa0764" "807f00ff" "2a000000")


def test_example_words():
    w = pack_words(EXAMPLE, 8, True, 4)
    assert isinstance(w, PackedWords) and isinstance(w, list)
    assert w == EXAMPLE_WORDS and w.count == 13 and w.word_bits == 32
    assert pack_words(EXAMPLE, 8, True, 4, lane_order="msb_first") == EXAMPLE_WORDS_MSB
    assert unpack_words(w, **w.layout()).tolist() == EXAMPLE.tolist()
    assert unpack_words(EXAMPLE_WORDS_MSB, 8, True, 4, 13, lane_order="msb_first").tolist() \
        == EXAMPLE.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_example_golden_files(tmp_path, fmt):
    path = tmp_path / f"example.{fmt}"
    assert write_memory(path, pack_words(EXAMPLE, 8, True, 4), 32) == 4
    data = path.read_bytes()
    assert data == (GOLDEN_BIN if fmt == "bin" else GOLDEN[fmt].encode("ascii"))
    assert read_memory(path, 32) == EXAMPLE_WORDS


def test_docs_examples_are_exact():
    """docs/formats.md shows each file of the worked example; it must stay byte-exact."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text()
    blocks = dict(re.findall(r"<!-- example: (\w+) -->\n```\n(.*?)```", doc, re.S))
    assert sorted(blocks) == sorted(FORMATS)
    for fmt in ("hex", "mem", "coe", "mif"):
        assert blocks[fmt] == GOLDEN[fmt], fmt
    assert bytes.fromhex(blocks["bin"]) == GOLDEN_BIN
    assert "`fc030201`" in doc and "`010203fc`, `05fa0764`, `807f00ff`, `2a000000`" in doc


def test_more_golden_texts():
    # msb_first lanes
    assert render_memory(EXAMPLE_WORDS_MSB, 32, "hex") == \
        b"010203fc\n05fa0764\n807f00ff\n2a000000\n"
    # 72-bit words: 18 digits; 9 int8 lanes, the last word padded with zero lanes
    w = pack_words(EXAMPLE, 8, True, 9)
    assert w == [0x806407FA05FC030201, 0x2AFF007F]
    assert render_memory(w, 72, "hex") == b"806407fa05fc030201\n00000000002aff007f\n"
    # a width that is not a multiple of 4 (10 bits: 3 digits), a .mem start address,
    # depth padding and a wider .mif address column
    assert render_memory([0x3FF, 1], 10, "mem", address=0x1C) == b"@1c\n3ff\n001\n"
    assert render_memory([5] * 17, 4, "mif") == (
        b"WIDTH=4;\nDEPTH=17;\nADDRESS_RADIX=HEX;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n"
        + b"".join(b"%02x : 5;\n" % a for a in range(17)) + b"END;\n")
    assert render_memory([0xABC], 12, "coe", depth=3) == (
        b"memory_initialization_radix=16;\nmemory_initialization_vector=\nabc,\n000,\n000;\n")
    # .bin: ceil(word_bits/8) bytes per word, least-significant byte first
    assert render_memory([0x123, 0x2FF], 10, "bin") == b"\x23\x01\xff\x02"
    assert render_memory([0x0102030405060708090A], 80, "bin") == \
        bytes(range(10, 0, -1))
    assert render_memory([1 << 71], 72, "bin") == b"\x00" * 8 + b"\x80"


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------

# (word_bits, elem_bits, lanes): full words, spare high bits, and every listed width
LAYOUTS = [
    (8, 8, 1), (8, 4, 2), (16, 16, 1), (16, 8, 2), (16, 4, 4), (24, 8, 3), (24, 16, 1),
    (32, 32, 1), (32, 8, 4), (32, 4, 8), (32, 16, 2), (32, 8, 3), (64, 32, 2), (64, 8, 8),
    (64, 4, 16), (72, 8, 9), (72, 32, 2), (72, 16, 4), (128, 8, 16), (128, 32, 4),
    (128, 4, 32), (256, 8, 32), (256, 16, 16), (256, 32, 8), (512, 8, 64), (512, 4, 128),
    (512, 32, 16), (1024, 1, 1024), (64, 64, 1), (128, 64, 2), (100, 7, 13), (1024, 64, 16),
]


def random_values(rng, n, elem_bits, signed):
    lo, hi = elem_range(elem_bits, signed)
    vals = rng.integers(lo, hi, size=n, endpoint=True,
                        dtype=np.uint64 if hi > 2**63 - 1 else np.int64)
    vals[: min(n, 2)] = [lo, hi][: min(n, 2)]  # the extremes are always in
    return vals


@pytest.mark.parametrize("word_bits,elem_bits,lanes", LAYOUTS,
                         ids=[f"w{w}-e{e}x{ln}" for w, e, ln in LAYOUTS])
@pytest.mark.parametrize("signed", [True, False], ids=["s", "u"])
@pytest.mark.parametrize("lane_order", ["lsb_first", "msb_first"])
def test_round_trip_all_formats(tmp_path, word_bits, elem_bits, lanes, signed, lane_order):
    rng = np.random.default_rng([word_bits, elem_bits, lanes, signed])
    for n in (13, lanes * 3, 1):  # 13 needs padding unless lanes divides it
        vals = random_values(rng, n, elem_bits, signed)
        words = pack_words(vals, elem_bits, signed, lanes, word_bits, lane_order)
        assert words == ref_pack(vals, elem_bits, signed, lanes, word_bits, lane_order)
        assert len(words) == words_needed(n, lanes) and words.count == n
        for fmt in FORMATS:
            path = tmp_path / f"m{n}.{fmt}"
            write_memory(path, words, word_bits)
            back = read_memory(path, word_bits)
            assert back == words
            got = unpack_words(back, elem_bits, signed, lanes, n, word_bits, lane_order)
            assert got.dtype == (np.uint64 if elem_bits == 64 and not signed else np.int64)
            assert got.tolist() == vals.tolist()
            # byte-identical re-write, from a numpy array as well as from the list
            again = tmp_path / f"again.{fmt}"
            write_memory(again, back, word_bits)
            assert again.read_bytes() == path.read_bytes()
            if word_bits <= 64:
                write_memory(again, np.array(back, dtype=np.uint64), word_bits)
                assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_with_depth(tmp_path, fmt):
    words = pack_words(EXAMPLE, 8, True, 4)
    path = tmp_path / f"d.{fmt}"
    assert write_memory(path, words, 32, depth=7) == 7
    back = read_memory(path, 32, depth=7)
    assert back == EXAMPLE_WORDS + [0, 0, 0]
    # the zero words past the data are padding too
    assert unpack_words(back, 8, True, 4, 13).tolist() == EXAMPLE.tolist()
    with pytest.raises(MemoryFileError):
        read_memory(path, 32, depth=8)
    with pytest.raises(MemoryFileError):
        read_memory(path, 32, depth=6)


@st.composite
def packing_cases(draw):
    elem_bits = draw(st.integers(1, 64))
    lanes = draw(st.integers(1, min(64, MAX_WORD_BITS // elem_bits)))
    spare = draw(st.integers(0, min(70, MAX_WORD_BITS - lanes * elem_bits)))
    signed = draw(st.booleans())
    lo, hi = elem_range(elem_bits, signed)
    values = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=40))
    return dict(values=values, elem_bits=elem_bits, lanes=lanes,
                word_bits=lanes * elem_bits + spare, signed=signed,
                lane_order=draw(st.sampled_from(["lsb_first", "msb_first"])),
                fmt=draw(st.sampled_from(FORMATS)),
                depth_extra=draw(st.one_of(st.none(), st.integers(0, 3))))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=packing_cases())
def test_round_trip_hypothesis(tmp_path, case):
    vals, eb, lanes, wb = case["values"], case["elem_bits"], case["lanes"], case["word_bits"]
    signed, order, fmt = case["signed"], case["lane_order"], case["fmt"]
    words = pack_words(vals, eb, signed, lanes, wb, order)
    assert words == ref_pack(vals, eb, signed, lanes, wb, order)
    depth = None if case["depth_extra"] is None else len(words) + case["depth_extra"]
    path = tmp_path / f"h.{fmt}"
    write_memory(path, words, wb, depth=depth)
    first = path.read_bytes()
    back = read_memory(path, wb, depth=depth)
    assert back[:len(words)] == list(words) and not any(back[len(words):])
    assert unpack_words(back, eb, signed, lanes, len(vals), wb, order).tolist() == vals
    write_memory(path, back, wb)
    assert path.read_bytes() == first


def test_pack_accepts_shapes_and_dtypes():
    a = np.arange(-6, 6, dtype=np.int16).reshape(2, 3, 2)
    assert pack_words(a, 8, True, 4) == pack_words(a.reshape(-1).tolist(), 8, True, 4)
    assert pack_words(np.array([True, False, True]), 1, False, 3) == [0b101]
    assert pack_words([2**64 - 1, 2**63], 64, False, 1) == [2**64 - 1, 2**63]
    assert pack_words([-2**63, 2**63 - 1], 64, True, 2) == [(2**63 - 1) << 64 | 2**63]
    assert pack_words(np.array([200], dtype=np.uint8), 8, False, 1) == [200]
    assert pack_words([], 8, True, 4) == [] and pack_words([], 8, True, 4).count == 0
    u = unpack_words([2**64 - 1], 64, False, 1, 1)
    assert u.dtype == np.uint64 and int(u[0]) == 2**64 - 1


def test_pack_4m_elements_is_fast():
    import time
    vals = np.random.default_rng(1).integers(-128, 128, size=4_000_000, dtype=np.int64)
    for lanes, wb in ((4, 32), (16, 128), (64, 512)):
        t = time.perf_counter()
        words = pack_words(vals, 8, True, lanes, wb)
        back = unpack_words(words, **words.layout())
        assert time.perf_counter() - t < 20  # generous: a loaded CI machine; ~1 s idle
        assert np.array_equal(back, vals)


# --------------------------------------------------------------------------------------------
# Packing errors
# --------------------------------------------------------------------------------------------

def test_pack_rejects_out_of_range_values_with_index_and_value():
    with pytest.raises(ValueError, match=r"element index 5 has value 128, which does not fit "
                                         r"signed 8-bit range -128\.\.127"):
        pack_words([0, 1, 2, 3, 4, 128], 8, True, 4)
    with pytest.raises(ValueError, match=r"index 3 \(at \(1, 1\) of shape \(2, 2\)\) has "
                                         r"value -1, which does not fit unsigned 4-bit"):
        pack_words(np.array([[0, 1], [2, -1]]), 4, False, 2)
    with pytest.raises(ValueError, match=r"index 1 has value 18446744073709551616"):
        pack_words([0, 2**64], 64, False, 1)
    with pytest.raises(ValueError, match=r"index 0 has value 9223372036854775808"):
        pack_words(np.array([2**63], dtype=np.uint64), 64, True, 1)
    with pytest.raises(ValueError, match=r"index 2 has value -9"):
        pack_words(np.array([1, 2, -9], dtype=np.int8), 4, True, 2)


def test_pack_rejects_non_integers_and_bad_layouts():
    with pytest.raises(TypeError, match="float64"):
        pack_words(np.array([1.0, 2.0]), 8, True, 4)
    with pytest.raises(TypeError, match=r"element index 1 is 2\.5"):
        pack_words([1, 2.5], 8, True, 4)
    with pytest.raises(TypeError, match="element index 0 is 3.0"):
        pack_words([3.0, 2**70], 8, True, 4)
    with pytest.raises(ValueError, match=r"word_bits=31 is smaller than .*4\*8=32"):
        pack_words([1], 8, True, 4, word_bits=31)
    with pytest.raises(ValueError, match="exceeds the supported maximum 1024"):
        pack_words([1], 8, True, 4, word_bits=1032)
    with pytest.raises(ValueError, match="elem_bits must be 1..64"):
        pack_words([1], 65, True, 1)
    with pytest.raises(ValueError, match="elem_bits must be 1..64"):
        pack_words([1], 0, True, 1)
    with pytest.raises(ValueError, match="lanes_per_word must be >= 1"):
        pack_words([1], 8, True, 0)
    with pytest.raises(ValueError, match="lane_order"):
        pack_words([1], 8, True, 1, lane_order="big")


def test_unpack_is_strict():
    with pytest.raises(ValueError, match="13 elements of 4 per word need 4 words, got 3"):
        unpack_words(EXAMPLE_WORDS[:3], 8, True, 4, 13)
    with pytest.raises(ValueError,
                       match=r"word 3 has a nonzero padding lane 3 \(only lanes 0\.\.0 of its 4"):
        unpack_words(EXAMPLE_WORDS[:3] + [0x0100002A], 8, True, 4, 13)
    with pytest.raises(ValueError, match=r"word 0 has nonzero bits above its 3 lanes"):
        unpack_words([1 << 24], 8, True, 3, 3, word_bits=32)
    with pytest.raises(ValueError, match="word 5 is nonzero, but 13 elements end in word 3"):
        unpack_words(EXAMPLE_WORDS + [0, 7], 8, True, 4, 13)
    with pytest.raises(ValueError, match=r"word 1 \(0x100000000\) does not fit 32 bits"):
        unpack_words([0, 1 << 32], 8, True, 4, 8)
    with pytest.raises(ValueError, match=r"word 0 \(-1\) is negative"):
        unpack_words([-1], 8, True, 4, 4)
    with pytest.raises(TypeError, match="word 0 is 1.0"):
        unpack_words([1.0], 8, True, 4, 4)
    # check_padding=False reads hardware words whose spare bits hold garbage
    got = unpack_words(EXAMPLE_WORDS[:3] + [0xFF00002A], 8, True, 4, 13, check_padding=False)
    assert got.tolist() == EXAMPLE.tolist()


# --------------------------------------------------------------------------------------------
# Writer behaviour
# --------------------------------------------------------------------------------------------

def test_writer_errors(tmp_path):
    with pytest.raises(ExportError, match=r"w\.hex: 4 words do not fit depth 3$"):
        write_memory(tmp_path / "w.hex", EXAMPLE_WORDS, 32, depth=3)
    with pytest.raises(ValueError, match=r"word 1 \(0x100\) does not fit 8 bits"):
        write_memory(tmp_path / "w.hex", [1, 256], 8)
    with pytest.raises(ValueError, match=r"word 0 \(-1\) is negative"):
        write_memory(tmp_path / "w.coe", [-1], 8)
    with pytest.raises(ValueError, match="only written to .mem"):
        write_memory(tmp_path / "w.hex", [1], 8, address=4)
    with pytest.raises(ValueError, match="cannot tell the memory format"):
        write_memory(tmp_path / "w.txt", [1], 8)
    with pytest.raises(ExportError, match="at least one word"):
        write_memory(tmp_path / "w.mif", [], 8)
    with pytest.raises(ValueError, match="word_bits must be 1..1024"):
        write_memory(tmp_path / "w.hex", [1], 2048)
    with pytest.raises(HwsimError, match="cannot write"):
        write_memory(tmp_path / "missing-dir" / "w.hex", [1], 8)
    assert write_memory(tmp_path / "w.data", [1], 8, fmt="hex") == 1
    assert (tmp_path / "w.data").read_bytes() == b"01\n"
    assert read_memory(tmp_path / "w.data", 8, fmt="hex") == [1]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".hwsim-")]  # no temp files


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "a.mif"
    write_memory(path, [1, 2, 3], 8)
    with pytest.raises(ValueError):
        write_memory(path, [1, 2, 300], 8)  # fails before writing: old file intact
    assert read_memory(path, 8) == [1, 2, 3]
    write_memory(path, [4], 8)
    assert read_memory(path, 8) == [4]


# --------------------------------------------------------------------------------------------
# Strict readers: malformed files name the file and the line
# --------------------------------------------------------------------------------------------

MIF_OK = ("WIDTH=8;\nDEPTH=2;\nADDRESS_RADIX=HEX;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n"
          "0 : 0a;\n1 : 0b;\nEND;\n")
COE_OK = "memory_initialization_radix=16;\nmemory_initialization_vector=\n0a,\n0b;\n"

MALFORMED = [
    # (format, word_bits, depth, file text, line, reason regex)
    ("hex", 8, None, "0a\n0g\n", 2, r"bad hex digit 'g'"),
    ("hex", 8, None, "0a\n0b\n00b\n", 3, r"expected 2 hex digits per 8-bit word, got 3"),
    ("hex", 32, None, "0000000a\n000b\n", 2, r"expected 8 hex digits .* got 4"),
    ("hex", 10, None, "3ff\n400\n", 2, r"value 400 is wider than 10 bits"),
    ("hex", 8, 2, "0a\n0b\n0c\n", 3, r"too many words: more than the expected depth 2"),
    ("hex", 8, 4, "0a\n0b\n", 2, r"too few words: 2, expected depth 4"),
    ("hex", 8, None, "0a 0b\n", 1, r"more than one word on a line"),
    ("hex", 8, None, "@0\n0a\n", 1, r"not allowed in a \.hex file"),
    ("hex", 8, None, "", 1, r"no words in the file"),
    ("hex", 8, None, "0a\n0x\n", 2, r"bad hex digit 'x'"),
    ("hex", 8, None, "0a\n0_\n", 2, r"bad hex digit '_'"),
    ("hex", 8, None, "0a\n\u00e90\n", 2, r"non-ASCII byte 0xc3"),
    ("mem", 8, None, "0a\n", 1, r"missing '@<address>' line"),
    ("mem", 8, None, "// only a comment\n", 1, r"missing '@<address>' line"),
    ("mem", 8, None, "@4\n0a\n", 1, r"image starts at @4, expected @0"),
    ("mem", 8, None, "@0\n0a\n@5\n0b\n", 3, r"address jump to @5, expected @1"),
    ("mem", 8, None, "@0\n0a\n@z\n", 3, r"bad address line '@z'"),
    ("mem", 8, None, "@0\n0a\n0b\n0c\n0q\n", 5, r"bad hex digit 'q'"),
    ("mem", 16, 2, "@0\n000a\n000b\n000c\n", 4, r"too many words"),
    ("coe", 8, None, "memory_initialization_vector=\n0a;\n", 1,
     r"memory_initialization_vector before memory_initialization_radix"),
    ("coe", 8, None, "memory_initialization_radix=2;\nmemory_initialization_vector=\n1;\n", 1,
     r"unsupported memory_initialization_radix=2"),
    ("coe", 8, None, "radix=16;\n", 1, r"unknown keyword 'radix'"),
    ("coe", 8, None, "memory_initialization_radix 16;\n", 1,
     r"expected '=' after memory_initialization_radix, got '16'"),
    ("coe", 8, None, "memory_initialization_radix=16;\n", 1,
     r"missing memory_initialization_vector"),
    ("coe", 8, None, COE_OK.replace("0b;", "0b"), 4, r"missing ',' or the final ';'"),
    ("coe", 8, None, COE_OK.replace("0a,\n", "0a,,\n"), 3, r"empty value"),
    ("coe", 8, None, COE_OK.replace("0b;", "0b,\n;"), 5, r"empty value"),
    ("coe", 8, None, COE_OK.replace("0a,", "0a"), 4, r"expected ',' or ';' after a value"),
    ("coe", 8, None, COE_OK + "memory_initialization_radix=16;\n", 5,
     r"unexpected 'memory_initialization_radix' after the final ';'"),
    ("coe", 8, None, COE_OK.replace("0b;", "0k;"), 4, r"bad hex digit 'k'"),
    ("coe", 8, None, COE_OK.replace("0b;", "b;"), 4, r"expected 2 hex digits"),
    ("coe", 8, 1, COE_OK, 4, r"too many words"),
    ("coe", 8, 3, COE_OK, 4, r"too few words: 2, expected depth 3"),
    ("mif", 8, None, MIF_OK.replace("WIDTH=8;\n", ""), 4, r"missing header keyword WIDTH"),
    ("mif", 8, None, MIF_OK.replace("DEPTH=2;\n", ""), 4, r"missing header keyword DEPTH"),
    ("mif", 8, None, MIF_OK.replace("ADDRESS_RADIX=HEX;\n", ""), 4,
     r"missing header keyword ADDRESS_RADIX"),
    ("mif", 16, None, MIF_OK, 1, r"WIDTH=8, expected 16"),
    ("mif", 8, 3, MIF_OK, 2, r"DEPTH=2, expected depth 3"),
    ("mif", 8, None, MIF_OK.replace("DATA_RADIX=HEX", "DATA_RADIX=BIN"), 4,
     r"unsupported DATA_RADIX=BIN"),
    ("mif", 8, None, MIF_OK.replace("ADDRESS_RADIX=HEX", "ADDRESS_RADIX=FOO"), 3,
     r"unknown ADDRESS_RADIX=FOO"),
    ("mif", 8, None, MIF_OK.replace("DEPTH=2", "DEPTH=two"), 2, r"not a positive decimal"),
    ("mif", 8, None, MIF_OK.replace("WIDTH=8;", "WIDTH=8;\nHEIGHT=3;"), 2,
     r"unknown keyword 'HEIGHT'"),
    ("mif", 8, None, MIF_OK.replace("WIDTH=8;", "WIDTH=8;\nWIDTH=8;"), 2, r"WIDTH given twice"),
    ("mif", 8, None, MIF_OK.replace("CONTENT BEGIN\n", "CONTENT\n"), 6,
     r"expected BEGIN after CONTENT, got '0'"),
    ("mif", 8, None, MIF_OK.split("CONTENT")[0], 4, r"missing CONTENT BEGIN"),
    ("mif", 8, None, MIF_OK.replace("END;\n", ""), 7, r"missing END;"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "2 : 0b"), 7,
     r"too many words: address 2 is outside DEPTH=2"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "0 : 0b"), 7, r"address 0 is given twice"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b;\n", ""), 7,
     r"too few words: 1 of the DEPTH=2 addresses have no value \(the first is 1 hex\)"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "1 : 0g"), 7, r"bad hex digit 'g'"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "1 : b"), 7, r"expected 2 hex digits"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "1 : 1ff"), 7, r"expected 2 hex digits"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "1 : 0b 0c"), 7, r"several values"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "[0..1] : 0b"), 7, r"address ranges"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "1 0b"), 7, r"expected ':' after address 1"),
    ("mif", 8, None, MIF_OK.replace("1 : 0b", "g : 0b"), 7, r"bad address 'g'"),
    ("mif", 8, None, MIF_OK + "0 : 00;\n", 9, r"unexpected '0' after END;"),
    ("mif", 8, None, "% never closed\n" + MIF_OK, 1, r"unterminated '%' comment"),
    ("mif", 10, None, MIF_OK.replace("8", "10").replace("0b;", "7ff;").replace("0a;", "00a;"),
     7, r"value 7ff is wider than 10 bits"),
]


@pytest.mark.parametrize("fmt,word_bits,depth,text,line,reason", MALFORMED,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_text_files(tmp_path, fmt, word_bits, depth, text, line, reason):
    path = tmp_path / f"bad.{fmt}"
    path.write_bytes(text.encode("utf-8"))
    where = rf"^{re.escape(str(path))}:{line}: (.*\W)?"
    with pytest.raises(MemoryFileError, match=where + reason) as ei:
        read_memory(path, word_bits, depth=depth)
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, HwsimError)
    assert ei.value.line == line and ei.value.name == str(path)
    again = pickle.loads(pickle.dumps(ei.value))  # crosses process pools intact
    assert str(again) == str(ei.value) and again.line == line


MALFORMED_BIN = [
    # (word_bits, depth, bytes, "line" = 1-based word number, reason)
    (16, None, b"\x01\x02\x03", 2, r"size 3 bytes is not a multiple of 2 bytes per 16-bit"),
    (72, None, bytes(17), 2, r"size 17 bytes is not a multiple of 9 bytes"),
    (12, None, b"\xff\x0f\x01\xf2", 2, r"value wider than 12 bits \(top byte 0xf2\)"),
    (8, 3, b"\x01\x02", 2, r"too few words: 2, expected depth 3"),
    (8, 2, b"\x01\x02\xff", 3, r"too many words: 3, expected depth 2"),
    (8, None, b"", 1, r"no words in the file"),
]


@pytest.mark.parametrize("word_bits,depth,data,line,reason", MALFORMED_BIN)
def test_malformed_bin_files(tmp_path, word_bits, depth, data, line, reason):
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(MemoryFileError, match=rf"^{re.escape(str(path))}:{line}: {reason}"):
        read_memory(path, word_bits, depth=depth)


def test_readers_accept_format_variations():
    # $readmemh comments, blank lines, CRLF, upper case; $writememh's "// 0x..." address lines
    assert parse_memory(b"// 0x00000000\r\n0A\r\n\r\n  0b  // two\n", 8, "hex") == [10, 11]
    assert parse_memory(b"// image\n@10\n0a\n@11\n0B\n", 8, "mem", address=0x10) == [10, 11]
    assert parse_memory(b"@7\n0a\n", 8, "mem", address=None) == [10]
    # COE: comment lines, text after ';', spaces, keywords in any case, values on one line
    coe = (b"; Sample\n;\nMEMORY_INITIALIZATION_RADIX = 16 ; hex\r\n"
           b"Memory_Initialization_Vector = 0a , 0B,\n ff ; end of data\n; trailer\n")
    assert parse_memory(coe, 8, "coe") == [10, 11, 255]
    # MIF: -- and %...% comments, keywords in any order and case, UNS addresses, any order
    mif = (b"-- generated 100%\n% a multi-line\n comment %\nDEPTH = 3; width=8;\n"
           b"data_radix = hex; Address_Radix = UNS;\nCONTENT\nBEGIN\n"
           b"\t2 : ff;  -- last\n\t0 : 0A;\n\t1:0b;\nEND;\n-- bye\n")
    assert parse_memory(mif, 8, "mif") == [10, 11, 255]
    mif_bin_addr = MIF_OK.replace("ADDRESS_RADIX=HEX", "ADDRESS_RADIX=BIN").replace(
        "1 : 0b", "01 : 0b").encode()
    assert parse_memory(mif_bin_addr, 8, "mif") == [10, 11]


def test_fast_and_slow_reader_paths_agree():
    """The vectorised decoder (canonical files) and the line parser give the same words."""
    rng = np.random.default_rng(7)
    for wb in (4, 10, 32, 72, 200, 1024):
        words = [int(x) for x in rng.integers(0, 2**62, size=20)]
        words = [w % (1 << wb) if wb < 62 else w << (wb - 62) for w in words]
        for fmt in ("hex", "mem", "coe", "mif"):
            data = render_memory(words, wb, fmt)
            assert parse_memory(data, wb, fmt) == words
            # CRLF line ends force the line/token parser
            assert parse_memory(data.replace(b"\n", b"\r\n"), wb, fmt) == words


# --------------------------------------------------------------------------------------------
# A real Verilog simulator reads the files ($readmemh), and we read what it writes
# --------------------------------------------------------------------------------------------

IVERILOG_WIDTHS = (8, 32, 72, 128, 256)


def _run_iverilog(tmp_path, verilog: str) -> str:
    src = tmp_path / "tb.v"
    src.write_text(verilog)
    vvp = tmp_path / "tb.vvp"
    r = subprocess.run(["iverilog", "-g2005", "-o", str(vvp), str(src)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"iverilog failed:\n{r.stdout}{r.stderr}"
    r = subprocess.run(["vvp", "-n", str(vvp)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"vvp failed:\n{r.stdout}{r.stderr}"
    assert "ERROR" not in r.stdout + r.stderr and "WARNING" not in r.stdout + r.stderr, \
        r.stdout + r.stderr
    return r.stdout


@pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                    reason="iverilog (Icarus Verilog) is not on PATH; apt-get install iverilog")
def test_iverilog_readmemh_reads_hex_and_mem(tmp_path):
    rng = np.random.default_rng(11)
    expect: dict[str, list[int]] = {}
    decl, body = [], []
    mem_addr = 5
    for wb in IVERILOG_WIDTHS:
        depth = 6
        words = [int.from_bytes(rng.bytes(word_bytes(wb)), "little") % (1 << wb)
                 for _ in range(depth)]
        words[0], words[1] = 0, (1 << wb) - 1  # all zeros and all ones
        write_memory(tmp_path / f"w{wb}.hex", words, wb)
        write_memory(tmp_path / f"w{wb}.mem", words, wb, address=mem_addr)
        expect[f"H{wb}"] = words
        expect[f"M{wb}"] = words
        decl.append(f"  reg [{wb - 1}:0] h{wb} [0:{depth - 1}];\n"
                    f"  reg [{wb - 1}:0] m{wb} [0:{mem_addr + depth - 1}];\n")
        body.append(f'    $readmemh("w{wb}.hex", h{wb});\n'
                    f'    for (i = 0; i < {depth}; i = i + 1)'
                    f' $display("H{wb} %0d %h", i, h{wb}[i]);\n'
                    f'    $readmemh("w{wb}.mem", m{wb});\n'
                    f'    for (i = {mem_addr}; i < {mem_addr + depth}; i = i + 1)'
                    f' $display("M{wb} %0d %h", i - {mem_addr}, m{wb}[i]);\n'
                    f'    $writememh("sim{wb}.hex", h{wb});\n')
    # lanes as the RTL slices them: element k of word w is mem[w][k*E +: E] (lsb_first),
    # mem[w][(L-1-k)*E +: E] (msb_first)
    lane_vals = np.random.default_rng(12).integers(-128, 128, size=13, dtype=np.int64)
    lane_cases = []
    for name, lanes, wb, order in (("la", 4, 32, "lsb_first"), ("lb", 9, 72, "msb_first"),
                                   ("lc", 16, 128, "lsb_first")):
        w = pack_words(lane_vals, 8, True, lanes, wb, order)
        write_memory(tmp_path / f"{name}.hex", w, wb)
        n_words = len(w)
        decl.append(f"  reg [{wb - 1}:0] {name} [0:{n_words - 1}];\n")
        pos = "k" if order == "lsb_first" else f"({lanes - 1} - k)"
        body.append(f'    $readmemh("{name}.hex", {name});\n'
                    f'    for (i = 0; i < {n_words}; i = i + 1)\n'
                    f'      for (k = 0; k < {lanes}; k = k + 1)\n'
                    f'        if (i * {lanes} + k < 13)\n'
                    f'          $display("{name.upper()} %0d %0d", i * {lanes} + k,'
                    f' $signed({name}[i][{pos} * 8 +: 8]));\n')
        lane_cases.append(name.upper())
    verilog = ("module tb;\n  integer i, k;\n" + "".join(decl) + "  initial begin\n"
               + "".join(body) + "    $finish;\n  end\nendmodule\n")
    out = _run_iverilog(tmp_path, verilog)

    seen: dict[str, dict[int, int]] = {}
    for line in out.splitlines():
        m = re.fullmatch(r"([HM]\d+|L[ABC]) (\d+) (-?[0-9a-fA-Fxz]+)", line.strip())
        if not m:
            continue
        tag, idx, val = m.group(1), int(m.group(2)), m.group(3)
        assert "x" not in val and "z" not in val, line
        seen.setdefault(tag, {})[idx] = int(val, 10 if tag in lane_cases else 16)
    for tag, words in expect.items():
        assert seen.get(tag) == dict(enumerate(words)), tag
    for tag in lane_cases:
        assert seen.get(tag) == dict(enumerate(lane_vals.tolist())), tag
    # and our strict reader takes the simulator's own $writememh output
    for wb in IVERILOG_WIDTHS:
        assert read_memory(tmp_path / f"sim{wb}.hex", wb) == expect[f"H{wb}"]


def test_digits_and_bytes_helpers():
    assert [hex_digits(b) for b in (1, 4, 5, 8, 10, 72, 1024)] == [1, 1, 2, 2, 3, 18, 256]
    assert [word_bytes(b) for b in (1, 8, 9, 72, 100, 1024)] == [1, 1, 2, 9, 13, 128]


@pytest.mark.parametrize("fmt, text", [
    ("hex", "00\n" + "a" * 200_000 + "\n"),
    ("hex", "00\n" + "-" * 200_000 + "\n"),
    ("mem", "@0\n00\n@" + "f" * 200_000 + "\n"),
    ("coe", "memory_initialization_radix=16;\nmemory_initialization_vector=\n" + "a" * 200_000
     + ";\n"),
    ("mif", "WIDTH=8;\nDEPTH=1;\nADDRESS_RADIX=HEX;\nDATA_RADIX=HEX;\nCONTENT BEGIN\n"
     + "a" * 200_000 + " : 00;\nEND;\n"),
])
def test_a_huge_token_gives_a_short_message(fmt, text):
    """A 200,000-character line or token is quoted cut (found by tests/test_fuzz.py: the
    message had been the whole line)."""
    with pytest.raises(MemoryFileError) as e:
        parse_memory(text.encode(), 8, fmt, address=None, name="m")
    assert len(str(e.value)) < 200 and re.search(r"200,00\d characters", str(e.value)), \
        str(e.value)[:300]


# --------------------------------------------------------------------------------------------
# The export's fast path: words kept as limbs, one rendering for every format
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("elem_bits,lanes,word_bits,order", [
    (8, 8, 64, "lsb_first"), (8, 16, 128, "msb_first"), (32, 1, 32, "lsb_first"),
    (4, 3, 13, "msb_first"), (64, 2, 130, "lsb_first"), (1, 1, 1, "lsb_first")])
def test_render_memories_equals_render_memory_per_format(elem_bits, lanes, word_bits, order):
    lo, hi = elem_range(elem_bits, True)
    v = np.random.default_rng(elem_bits + lanes).integers(lo, hi, 37, endpoint=True)
    packed = pack_words(v, elem_bits, True, lanes, word_bits, order)
    limbs_only = pack_words(v, elem_bits, True, lanes, word_bits, order, as_list=False)
    assert limbs_only.tolist() == list(packed) and len(limbs_only) == len(packed)
    from hwsim.export.formats import render_memories
    for words in (packed, limbs_only, list(packed)):
        got = render_memories(words, word_bits, FORMATS, address=0x2a)
        for fmt in FORMATS:
            want = render_memory(list(packed), word_bits, fmt,
                                 address=0x2a if fmt == "mem" else 0)
            assert bytes(got[fmt]) == want, fmt
            assert len(got[fmt]) == len(want)


def test_packed_words_changed_after_packing_render_their_new_values():
    packed = pack_words([1, 2, 3], 8, True, 1, 8)
    packed[1] = 0x7F   # the kept limbs are dropped: the list is what is rendered
    packed.append(5)
    assert render_memory(packed, 8, "hex") == b"01\n7f\n03\n05\n"


def test_word_checks_of_plain_lists_survive_the_fast_path():
    with pytest.raises(TypeError, match="word 1 is True, not an integer"):
        render_memory([1, True, 2], 8, "hex")
    with pytest.raises(ValueError, match="word 2 \\(0x100\\) does not fit 8 bits"):
        render_memory([1, 2, 256], 8, "hex")
    with pytest.raises(ValueError, match="word 0 \\(-1\\) is negative"):
        render_memory([-1], 8, "hex")
    assert render_memory([np.int64(1), 2], 8, "hex") == b"01\n02\n"
