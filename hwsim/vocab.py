"""The vocabulary every stage shares: op sets, integer ranges, and the coded enums.

One definition of each name and each code, used by lowering, the kernels, the hardware model
(hwsim.hw), the export and the Verilog header (hwsim.rtl_params). The enums are ``IntEnum``:
a member *is* its integer code (what a Program, a descriptor and the RTL carry), and its
``name`` is the spelling of the accelerator config (docs/config.md) and of the manifest.

The codes are frozen: they are written into exported descriptors and requant words
(docs/dev/accel-interface.md) and compared against by the reference RTL (hwsim/rtl/). Add a
member with a new code; never renumber one.

    RequantScheme.from_name("mult_shift")  -> RequantScheme.mult_shift (== 3)
    Rounding.from_name(cfg.requant.rounding)
    RequantScheme(3).name                  -> "mult_shift"
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["MAC_OPS", "ARRAY_OPS", "ALIAS_OPS", "TABLE_OPS", "ELEMENTWISE_OPS",
           "RESIZE_MAX_INDICES", "QRANGE", "Code",
           "RequantScheme", "Rounding", "Overflow", "Dataflow", "AccelOp", "ACCEL_OP_OF",
           "HW_REQUANT_SCHEMES", "TFLITE_SCHEMES", "REQUANT_UNIT_SCHEMES",
           "REQUANT_WORD_SCHEMES", "SEMANTICS", "PLACEABLE_OPS"]

# The reference runtimes whose arithmetic a Program can follow (--semantics; docs/semantics.md):
# TFLite's reference kernels (BUILTIN_REF, the default) or TensorFlow Lite for Microcontrollers.
SEMANTICS = ("tflite", "tflm")

# -- op sets ----------------------------------------------------------------------------------
# The layers the accelerator runs (docs/dev/accel-interface.md); RESHAPE/SQUEEZE are memory
# aliases (no data moves).
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Unary ops of data of up to 8 bits that the activation table unit runs (hwsim/rtl/hwsim_lut.v:
# the output is a function of the input code alone, so a 2^b-entry table computed with the
# layer's own kernel is exact; MAXIMUM / MINIMUM only with a one-element constant operand).
TABLE_OPS = ("LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6", "RELU_N1_TO_1",
             "RELU_0_TO_1", "MAXIMUM", "MINIMUM")
# RESIZE_NEAREST_NEIGHBOR on the array: the element engine's index table holds out_h + out_w
# source indices (hwsim/rtl/hwsim_elem_engine.v, RIDX_N).
RESIZE_MAX_INDICES = 2048
# Two-input elementwise ops of the element engine's lanes (hwsim/rtl/hwsim_add_lane.v).
ELEMENTWISE_OPS = ("ADD", "SUB", "MUL")
ARRAY_OPS = MAC_OPS + ("MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD", "SUB", "MUL", "MEAN") + \
    TABLE_OPS + ("RESIZE_NEAREST_NEIGHBOR",)
ALIAS_OPS = ("RESHAPE", "SQUEEZE")
# The ops placement (hwsim.passes.PlaceLayers) may put on the array or make a memory alias
# (a CONCATENATION whose inputs are written in place): the names a config's host_ops can keep on
# the host (hwsim.hwif.config validates the key against this set; every other op is a host op).
PLACEABLE_OPS = ARRAY_OPS + ALIAS_OPS + ("CONCATENATION",)

# -- integer ranges ---------------------------------------------------------------------------
# [lo, hi] of each integer tensor type (a clamp to the type is a clamp to this range).
QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255),
          np.dtype(np.int16): (-32768, 32767), np.dtype(np.int32): (-2**31, 2**31 - 1)}


class Code(IntEnum):
    """An integer code with a config spelling (the member's lower-case name)."""

    @classmethod
    def from_name(cls, name):
        """The member spelled ``name`` (a config value, or a member); ValueError naming the
        allowed values otherwise."""
        try:
            return cls[str(name)]
        except KeyError:
            raise ValueError(f"{cls.__name__} {name!r}: allowed values "
                             f"{', '.join(cls.names())}") from None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(m.name for m in cls)

    def __str__(self) -> str:  # messages and labels spell the config value, not the code
        return self.name


class RequantScheme(Code):
    """How accumulators are requantized (hwsim.kernels.requant has each formula)."""
    tflite_double = 0  # MultiplyByQuantizedMultiplier, gemmlowp double rounding (TFLite default)
    tflite_single = 1  # TFLITE_SINGLE_ROUNDING: one rounding of acc*M >> (31 - shift)
    tflite_int64 = 2   # the int64-accumulator variant (16x8 kernels)
    mult_shift = 3     # round_shift(acc * multiplier, shift, rounding)
    shift_only = 4     # round_shift(acc, shift, rounding)
    double_round = 5   # round(double(acc) * real) (TFLite's reference FULLY_CONNECTED)
    float32 = 6        # round_half_even(float32(acc) * float32 scale) (ONNX Runtime's MLAS)


# The requantization units an accelerator config can name (requant.scheme).
HW_REQUANT_SCHEMES = (RequantScheme.tflite_double, RequantScheme.tflite_single,
                      RequantScheme.mult_shift, RequantScheme.shift_only, RequantScheme.float32)
# The TFLite builds (what the non-MAC ops follow): default double rounding, or single.
TFLITE_SCHEMES = (RequantScheme.tflite_double, RequantScheme.tflite_single)
# The schemes the reference RTL's requant unit implements (descriptors and requant words):
# every scheme, float32 included (hwsim/rtl/hwsim_arith.vh f_float32_round).
REQUANT_UNIT_SCHEMES = (RequantScheme.tflite_double, RequantScheme.tflite_single,
                        RequantScheme.tflite_int64, RequantScheme.mult_shift,
                        RequantScheme.shift_only, RequantScheme.double_round,
                        RequantScheme.float32)
# The schemes an export writes requant words for: the requant unit's.
REQUANT_WORD_SCHEMES = REQUANT_UNIT_SCHEMES


class Rounding(Code):
    """Rounding of a right shift (hwsim.arith.round_shift; each mode's primitive is named
    after it there: round_shift_half_away, round_shift_half_up, ...)."""
    half_away_from_zero = 0  # nearest, ties away from zero   (C round(), TfLiteRound)
    half_up = 1              # nearest, ties toward +inf       ((x + 2^(s-1)) >> s)
    half_even = 2            # nearest, ties to even           (IEEE default)
    floor = 3                # toward -inf                     (x >> s)
    toward_zero = 4          # truncation                      (C integer division)


class Overflow(Code):
    """What an accumulator addition does outside acc_bits (accumulator.overflow)."""
    wrap = 0      # two's-complement wrap
    saturate = 1  # clamp to the signed range


class Dataflow(Code):
    """How the MAC array orders a reduction (array.dataflow; docs/dataflow.md)."""
    output_stationary = 0  # each PE owns one output element
    weight_stationary = 1  # each PE column holds a chunk of array.rows weights


class AccelOp(Code):
    """The accelerator's op codes (descriptor word 0; docs/dev/accel-interface.md, the RTL's
    HWSIM_OP_*). The names are the manifest's ``accel_op``."""
    END = 0      # the end of the descriptor list (a host layer has no descriptor)
    CONV = 1
    DWCONV = 2
    FC = 3
    MAXPOOL = 4
    AVGPOOL = 5
    ADD = 6
    TABLE = 7    # the activation table unit: the table in the weight memory at w_base
    SUB = 8
    MUL = 9
    MEAN = 10    # MEAN over H and W on the pool unit, TFLite MEAN's requantization
    RESIZE = 11  # RESIZE_NEAREST_NEIGHBOR: address generation from an index table at w_base


# The accelerator op of each array op (the keys are ARRAY_OPS, in order).
ACCEL_OP_OF = {"CONV_2D": AccelOp.CONV, "DEPTHWISE_CONV_2D": AccelOp.DWCONV,
               "FULLY_CONNECTED": AccelOp.FC, "MAX_POOL_2D": AccelOp.MAXPOOL,
               "AVERAGE_POOL_2D": AccelOp.AVGPOOL, "ADD": AccelOp.ADD, "SUB": AccelOp.SUB,
               "MUL": AccelOp.MUL, "MEAN": AccelOp.MEAN,
               **{op: AccelOp.TABLE for op in TABLE_OPS},
               "RESIZE_NEAREST_NEIGHBOR": AccelOp.RESIZE}
