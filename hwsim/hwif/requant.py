"""The requant unit's 64-bit words (docs/dev/accel-interface.md, "Requant memory")."""
from __future__ import annotations

import math

import numpy as np

from ..ir import HwsimError
from ..params import RequantParams
from ..vocab import REQUANT_UNIT_SCHEMES, REQUANT_WORD_SCHEMES, RequantScheme
from .descriptor import signed

# The requant unit's schemes as the manifest lists them: code -> name (hwsim.vocab).
RTL_REQUANT_SCHEMES = {int(s): s.name for s in REQUANT_UNIT_SCHEMES}
# Every scheme whose words an export writes (today the requant unit's, float32 included).
WORD_SCHEMES = {int(s): s.name for s in REQUANT_WORD_SCHEMES}


def encode_requant_word(scheme: int, multiplier: int = 0, shift: int = 0) -> int:
    """The 64-bit requant word of one channel (accel-interface.md, "Requant memory").

    Scheme 5 (double_round): ``multiplier`` = M (53-bit significand), ``shift`` = E, the
    real multiplier being M * 2**E exactly (as lowering carries it). Scheme 6 (float32): the
    scale's IEEE float32 bits in bits 0..31, the rest 0."""
    scheme = int(scheme)
    multiplier, shift = int(multiplier), int(shift)
    if scheme == RequantScheme.float32:
        if not 0 <= multiplier < (1 << 32) or shift:
            raise HwsimError(f"float32 requant scale bits {multiplier} / shift {shift} do not "
                             f"fit 32 / 0 bits")
        return multiplier
    if scheme == RequantScheme.double_round:
        if not 0 <= multiplier < (1 << 53) or not -1024 <= shift <= 1023:
            raise HwsimError(f"double_round M={multiplier} / E={shift} do not fit 53 / 11 bits")
        return multiplier | ((shift & 0x7FF) << 53)
    if scheme in (RequantScheme.tflite_double, RequantScheme.tflite_single,
                  RequantScheme.tflite_int64):
        if not -(1 << 31) <= multiplier < (1 << 31) or not -128 <= shift <= 127:
            raise HwsimError(f"requant multiplier {multiplier} / shift {shift} do not fit int32 "
                             f"/ int8")
    elif scheme in (RequantScheme.mult_shift, RequantScheme.shift_only):
        if not 0 <= shift <= 255:
            raise HwsimError(f"requant right shift {shift} does not fit uint8")
        if not -(1 << 31) <= multiplier < (1 << 31):
            raise HwsimError(f"requant multiplier {multiplier} does not fit int32")
    else:
        raise HwsimError(f"requant scheme {scheme} is not implemented by the requant unit "
                         f"(schemes {sorted(RTL_REQUANT_SCHEMES)})")
    return (multiplier & 0xFFFF_FFFF) | ((shift & 0xFF) << 32)


def decode_requant_word(word: int, scheme: int) -> dict:
    """Inverse of :func:`encode_requant_word`: the fields of a requant word for ``scheme``."""
    word = int(word)
    if scheme == RequantScheme.double_round:
        mant, exp = word & ((1 << 53) - 1), signed(word >> 53, 11)
        return {"mantissa": mant, "exponent": exp}  # real = mantissa * 2**exponent
    if scheme == RequantScheme.float32:
        bits = word & 0xFFFF_FFFF
        return {"scale_bits": bits,
                "scale": float(np.array([bits], np.uint32).view(np.float32)[0])}
    mult = signed(word & 0xFFFF_FFFF, 32)
    sh = (word >> 32) & 0xFF
    if scheme in (RequantScheme.tflite_double, RequantScheme.tflite_single,
                  RequantScheme.tflite_int64):
        return {"multiplier": mult, "shift": signed(sh, 8)}
    if scheme == RequantScheme.mult_shift:
        return {"multiplier": mult, "shift": sh}
    return {"shift": sh}


def requant_count(rq: RequantParams, cout: int) -> int:
    """Requant words of a MAC layer: one per output channel, or one (lowering decides)."""
    return cout if rq.per_channel else 1


def requant_words(rq: RequantParams, cout: int, what: str) -> tuple[list[int], bool, dict]:
    """A MAC layer's requant words, whether per channel, and the manifest's requant fields."""
    scheme = int(rq.scheme)
    if scheme not in REQUANT_WORD_SCHEMES:
        raise HwsimError(f"{what}: requant scheme {scheme} is not implemented by the requant "
                         f"unit")
    per_channel = rq.per_channel
    n = requant_count(rq, cout)
    mult = np.broadcast_to(np.asarray(rq.multiplier).reshape(-1), (cout,))
    shift = np.broadcast_to(np.asarray(rq.shift).reshape(-1), (cout,))
    words = []
    for c in range(n):
        try:
            words.append(encode_requant_word(scheme, int(mult[c]), int(shift[c])))
        except HwsimError as e:
            raise HwsimError(f"{what}, channel {c}: {e}") from None
    fields = {"scheme": WORD_SCHEMES[scheme], "per_channel": per_channel,
              "multiplier": [int(v) for v in mult[:n]], "shift": [int(v) for v in shift[:n]]}
    if scheme == RequantScheme.double_round:
        fields["real_multiplier"] = [math.ldexp(int(m), int(e)) for m, e in
                                     zip(mult[:n], shift[:n])]
    if scheme == RequantScheme.float32:
        fields["scale"] = [float(v) for v in
                           np.asarray(mult[:n], np.int64).astype(np.uint32).view(np.float32)]
    return words, per_channel, fields
