"""The activation table of a unary layer: its own kernel run on every input code.

An op whose output element is a function of its input element alone (LEAKY_RELU, LOGISTIC,
TANH, HARD_SWISH, the RELUs, MAXIMUM / MINIMUM with a one-element constant: hwsim.vocab
TABLE_OPS) is, on b-bit data, exactly a 2^b-entry table. The table is computed here with the
layer's registered kernel, so it is the engine's arithmetic by construction; the reference
RTL's table unit (hwsim/rtl/hwsim_lut.v) looks it up, the export writes it into the weight
memory (docs/dev/accel-interface.md).

    table = unary_table(layer, in_shape, np.int8, bits=8, signed=True)
    table[code - lo]   # the layer's output for input code ``code`` (lo = -128 here)
"""
from __future__ import annotations

import numpy as np

from ..ir import HwsimError
from ..registry import KERNELS


def table_codes(bits: int, signed: bool) -> np.ndarray:
    """Every input code of b-bit data, in table order (entry j is code lo + j)."""
    lo = -(1 << (bits - 1)) if signed else 0
    return np.arange(lo, lo + (1 << bits), dtype=np.int64)


def unary_table(layer, in_shape, dtype, bits: int, signed: bool) -> np.ndarray:
    """The layer's output code for every b-bit input code (int64, table order).

    The kernel runs on tensors of the layer's own input shape (kernels check it) filled with
    the codes twice: in order, and in a fixed pseudo-random order, so that every code sits at
    several positions (channels). HwsimError if the outputs for one code differ between
    positions: then the layer is not a table (e.g. a per-channel constant operand)."""
    codes = table_codes(bits, signed)
    n = int(np.prod(in_shape, dtype=np.int64))
    if n == 0:
        raise HwsimError(f"layer {layer.index} ({layer.op}): an empty tensor has no table")
    kernel = KERNELS[layer.kernel]
    data = kernel.prepare(layer) if kernel.prepare else None
    table = np.full(len(codes), np.iinfo(np.int64).min, dtype=np.int64)
    rng = np.random.default_rng(0)  # fixed: the table is deterministic anyway
    orders = [np.arange(start, start + n) % len(codes) for start in range(0, len(codes), n)]
    orders.append(rng.integers(0, len(codes), n))
    for idx in orders:
        x = codes[idx].astype(dtype).reshape(in_shape)
        outs, _ = kernel(layer, [x], data) if kernel.prepare else kernel(layer, [x])
        y = np.asarray(outs[0]).astype(np.int64).reshape(-1)
        if y.size != n:
            raise HwsimError(f"layer {layer.index} ({layer.op}): output of {y.size} elements "
                             f"for {n} inputs is not elementwise")
        lo = np.full(len(codes), np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(len(codes), np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, idx, y)
        np.maximum.at(hi, idx, y)
        seen = lo <= hi
        unset = table == np.iinfo(np.int64).min
        bad = seen & ((lo != hi) | (~unset & (table != lo)))
        if bad.any():
            raise HwsimError(f"layer {layer.index} ({layer.op}): input code "
                             f"{codes[np.argmax(bad)]} gives different outputs at different "
                             f"positions; the layer is not a table")
        table[seen] = lo[seen]
    return table


def network_tables(program, config, placement: dict) -> dict[int, np.ndarray]:
    """{layer index: table} of every TABLE_OPS layer ``placement`` puts on the array, for the
    config's input data (data.input_bits, data.input_signed): what the export writes."""
    from ..vocab import TABLE_OPS
    d = config.data
    out = {}
    for layer in program.layers:
        if placement.get(layer.index) == "array" and layer.op in TABLE_OPS:
            info = program.tensors[layer.inputs[0]]
            out[layer.index] = unary_table(layer, tuple(info.shape), np.dtype(info.dtype),
                                           d.input_bits, d.input_signed)
    return out
