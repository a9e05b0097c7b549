"""hwsim.vocab: the codes are frozen (exported files and the RTL carry them), names round-trip,
and every table that used to spell them out now derives from the enums."""
from __future__ import annotations

import numpy as np
import pytest

from hwsim import vocab
from hwsim.vocab import AccelOp, Dataflow, Overflow, RequantScheme, Rounding


def test_codes_are_the_ones_exported_files_and_the_rtl_carry():
    assert {m.name: int(m) for m in RequantScheme} == {
        "tflite_double": 0, "tflite_single": 1, "tflite_int64": 2, "mult_shift": 3,
        "shift_only": 4, "double_round": 5, "float32": 6}
    assert {m.name: int(m) for m in Rounding} == {
        "half_away_from_zero": 0, "half_up": 1, "half_even": 2, "floor": 3, "toward_zero": 4}
    assert {m.name: int(m) for m in Overflow} == {"wrap": 0, "saturate": 1}
    assert {m.name: int(m) for m in Dataflow} == {"output_stationary": 0,
                                                  "weight_stationary": 1}
    assert {m.name: int(m) for m in AccelOp} == {"END": 0, "CONV": 1, "DWCONV": 2, "FC": 3,
                                                 "MAXPOOL": 4, "AVGPOOL": 5, "ADD": 6,
                                                 "TABLE": 7, "SUB": 8, "MUL": 9, "MEAN": 10,
                                                 "RESIZE": 11}


def test_accel_op_codes_are_the_rtl_ones():
    """hwsim/rtl/hwsim_desc.vh defines HWSIM_OP_<NAME> for every AccelOp, with its code."""
    import re
    from importlib import resources
    text = (resources.files("hwsim") / "rtl" / "hwsim_desc.vh").read_text()
    rtl = {m[0]: int(m[1]) for m in re.findall(r"`define\s+HWSIM_OP_(\w+)\s+(\d+)", text)}
    assert rtl == {m.name: int(m) for m in AccelOp}
    assert tuple(vocab.ACCEL_OP_OF) == vocab.ARRAY_OPS


def test_from_name_round_trips_and_names_the_allowed_values():
    for enum in (RequantScheme, Rounding, Overflow, Dataflow):
        for m in enum:
            assert enum.from_name(m.name) is m and enum.from_name(m) is m
            assert str(m) == m.name and f"{m}" == m.name and int(m) == m.value
    with pytest.raises(ValueError, match="Rounding 'nearest': allowed values half_away_from_zero"):
        Rounding.from_name("nearest")


def test_every_scheme_a_config_names_is_one_the_export_encodes():
    assert vocab.TFLITE_SCHEMES == (RequantScheme.tflite_double, RequantScheme.tflite_single)
    # every scheme a config may name has a unit in the reference RTL (float32 included)
    assert set(vocab.HW_REQUANT_SCHEMES) <= set(vocab.REQUANT_UNIT_SCHEMES)
    assert RequantScheme.float32 in vocab.REQUANT_UNIT_SCHEMES
    assert set(vocab.HW_REQUANT_SCHEMES) <= set(vocab.REQUANT_WORD_SCHEMES)
    assert RequantScheme.double_round in vocab.REQUANT_UNIT_SCHEMES  # TFLite's reference FC


def test_op_sets_and_ranges():
    assert vocab.ARRAY_OPS[:3] == vocab.MAC_OPS
    assert not set(vocab.ALIAS_OPS) & set(vocab.ARRAY_OPS)
    for dt, (lo, hi) in vocab.QRANGE.items():
        assert (lo, hi) == (np.iinfo(dt).min, np.iinfo(dt).max)


def test_every_code_table_derives_from_the_enums():
    from hwsim import arith
    from hwsim.export.layout import ACCEL_OP_NAMES, MAC_CODES, OP_CODES, RTL_REQUANT_SCHEMES
    from hwsim.hw.config import ALLOWED
    from hwsim.kernels import requant
    from hwsim.rtl_params import REQUANT_SCHEME_CODES
    assert RTL_REQUANT_SCHEMES == {int(s): s.name for s in vocab.REQUANT_UNIT_SCHEMES}
    assert OP_CODES == {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 3,
                        "MAX_POOL_2D": 4, "AVERAGE_POOL_2D": 5, "ADD": 6, "SUB": 8, "MUL": 9,
                        "MEAN": 10, **{op: 7 for op in vocab.TABLE_OPS},
                        "RESIZE_NEAREST_NEIGHBOR": 11}
    assert ACCEL_OP_NAMES == {1: "CONV", 2: "DWCONV", 3: "FC", 4: "MAXPOOL", 5: "AVGPOOL",
                              6: "ADD", 7: "TABLE", 8: "SUB", 9: "MUL", 10: "MEAN",
                              11: "RESIZE"}
    assert MAC_CODES == (1, 2, 3) and all(type(v) is int for v in OP_CODES.values())
    assert REQUANT_SCHEME_CODES == {s.name: int(s) for s in vocab.REQUANT_UNIT_SCHEMES}
    assert ALLOWED["requant.scheme"] == tuple(s.name for s in vocab.HW_REQUANT_SCHEMES)
    assert ALLOWED["requant.rounding"] == Rounding.names()
    assert ALLOWED["accumulator.overflow"] == Overflow.names()
    assert ALLOWED["array.dataflow"] == Dataflow.names()
    assert (arith.ROUND_HALF_AWAY, arith.ROUND_HALF_UP, arith.ROUND_HALF_EVEN, arith.ROUND_FLOOR,
            arith.ROUND_TOWARD_ZERO) == tuple(int(m) for m in Rounding)
    assert (requant.TFLITE_DOUBLE, requant.TFLITE_SINGLE, requant.TFLITE_INT64,
            requant.MULT_SHIFT, requant.DOUBLE_ROUND) == (0, 1, 2, 3, 5)
