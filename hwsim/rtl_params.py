"""The Verilog header of the reference accelerator for one AccelConfig.

``rtl_params(config)`` returns the text of ``hwsim_params.vh``: one ``define`` per fact of the
configuration the reference RTL (hwsim/rtl/) needs: array geometry and dataflow, data widths and
signedness, accumulator width, overflow rule and bias order, requantization scheme, and the
word width / lanes / bits per lane / depth of each memory, plus the address widths derived
from the depths and the implementation limit of the reference RTL (the im2col buffer). The RTL
``include``s it and takes every parameter default from it, so one header = one accelerator.
``hwsim/rtl/hwsim_params.vh`` in the package is the header of the ``tflite-int8`` preset (a test
checks it equals ``rtl_params(load_config("tflite-int8"))``).

    hwsim rtl-params tflite-int8 -o hwsim/rtl/hwsim_params.vh   # the committed one
    hwsim rtl-params my_accel.yaml -o build/hwsim_params.vh
    hwsim rtl-params --rtl-dir                                  # where the reference RTL is
    hwsim rtl-params --desc -o hwsim/rtl/hwsim_desc.vh          # the descriptor header

``hwsim/rtl/hwsim_desc.vh`` (descriptor field indices and op codes, the same for every config)
is generated from hwsim.hwif's field table (:func:`hwsim.hwif.verilog_header`); a test checks
the committed copy.

The reference RTL takes every config ``hwsim.hw.config`` accepts whose data fit the export's
memory layout (:func:`hwsim.hwif.make_memories`: the lane widths the RTL reads are the
ones the export writes): activations of 4..16 bits and weights of 4..8 bits, signed or
unsigned, accumulators of 8..64 bits that wrap or saturate, both dataflows' order of additions,
every requantization scheme (ONNX Runtime's float32 included), with power-of-two lane counts
for the activation and weight memories; anything else raises
:class:`hwsim.hw.config.ConfigError` naming the key.
"""
from __future__ import annotations

import argparse
import os

from .hw.config import AccelConfig, ConfigError, load_config
from .vocab import REQUANT_UNIT_SCHEMES, Rounding

__all__ = ["rtl_params", "write_rtl_params", "add_rtl_params_parser", "rtl_params_arguments",
           "cmd_rtl_params", "RTL_LIMITS", "REQUANT_SCHEME_CODES"]

# Requant scheme codes as the descriptors carry them (docs/dev/accel-interface.md): the
# requant unit's schemes, name -> code (the codes are hwsim.vocab's).
REQUANT_SCHEME_CODES = {s.name: int(s) for s in REQUANT_UNIT_SCHEMES}

# Implementation limits of the reference RTL (not accelerator config keys).
RTL_LIMITS = {
    "XBUF_DEPTH": 8192,   # im2col buffer (per bank), elements per array row: K = KH*KW*Cin
                          # (CONV/FC), KH*KW*COLS (DWCONV)
    "DESC_WORDS": 64,     # 32-bit words per layer descriptor
    "DESC_DEPTH": 64 * 256,  # descriptor memory: 255 layers + the end descriptor
}


def lane_bits(cfg: AccelConfig) -> dict[str, int]:
    """Bits per lane of each memory as the export lays it out (hwsim.hwif): the RTL
    reads exactly what the export writes."""
    from .hwif.memory import make_memories
    from .ir import HwsimError
    try:
        mems = make_memories(cfg)
    except HwsimError as e:
        raise ConfigError(f"{cfg.source or cfg.name}: {e} (the reference RTL reads the "
                          f"export's layout)") from None
    return {k: mems[k].elem_bits for k in ("activations", "weights", "bias", "requant")}


def _clog2(n: int) -> int:
    return max(1, (int(n) - 1).bit_length())


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _check(cfg: AccelConfig) -> dict[str, int]:
    """Refuse what the reference RTL cannot run (naming the key); the memories' lane bits."""
    src = cfg.source or cfg.name
    d = cfg.data

    def bad(key, msg):
        raise ConfigError(f"{src}: {key}: {msg} (the reference RTL does not support it)")

    lanes = lane_bits(cfg)
    for key, bits, lane in (("data.input_bits", d.input_bits, lanes["activations"]),
                            ("data.output_bits", d.output_bits, lanes["activations"]),
                            ("data.weight_bits", d.weight_bits, lanes["weights"])):
        if bits > lane:
            bad(key, f"{bits}-bit values in the export's {lane}-bit lanes")
    if d.weight_bits > 8:
        bad("data.weight_bits", f"{d.weight_bits}; weights of 4..8 bits")
    for name in ("weights", "activations"):
        m = getattr(cfg.memories, name)
        if not _pow2(m.lanes):
            bad(f"memories.{name}.lanes", f"{m.lanes} lanes is not a power of two")
    if cfg.memories.bias.lanes != 1 or cfg.memories.requant.lanes != 1:
        bad("memories.bias" if cfg.memories.bias.lanes != 1 else "memories.requant",
            "bias and requant memories have one lane per word")
    if cfg.memories.requant.word_bits < 64:
        bad("memories.requant.word_bits", "requant words must be >= 64 bits")
    if cfg.requant.scheme not in REQUANT_SCHEME_CODES:
        bad("requant.scheme", f"{cfg.requant.scheme}: no requant unit for it (the RTL's "
                              f"schemes: {', '.join(REQUANT_SCHEME_CODES)})")
    return lanes


def _defines(cfg: AccelConfig, lanes: dict[str, int]) -> list[tuple[str, object, str]]:
    a, d, acc, rq, m = cfg.array, cfg.data, cfg.accumulator, cfg.requant, cfg.memories
    sign = {True: "signed", False: "unsigned"}
    rows = [
        ("ROWS", a.rows, "PE rows: output pixels computed at once"),
        ("COLS", a.cols, "PE columns: output channels computed at once"),
        ("DATAFLOW_OUTPUT_STATIONARY", int(a.dataflow == "output_stationary"),
         f"array.dataflow = {a.dataflow}"),
        ("INPUT_BITS", d.input_bits, "activation input width"),
        ("INPUT_SIGNED", int(d.input_signed), sign[d.input_signed]),
        ("WEIGHT_BITS", d.weight_bits, "weight width"),
        ("WEIGHT_SIGNED", int(d.weight_signed), sign[d.weight_signed]),
        ("OUTPUT_BITS", d.output_bits, "activation output width"),
        ("OUTPUT_SIGNED", int(d.output_signed), sign[d.output_signed]),
        ("ACC_BITS", acc.bits, "accumulator width"),
        ("ACC_SATURATE", int(acc.overflow == "saturate"),
         f"accumulator.overflow = {acc.overflow} (1 saturate, 0 wrap)"),
        ("BIAS_FIRST", int(acc.bias_first), "1: the accumulator starts at the bias"),
        ("REQUANT_SCHEME", REQUANT_SCHEME_CODES[str(rq.scheme)],
         f"requant.scheme = {rq.scheme}"),
        ("REQUANT_ROUNDING", int(Rounding.from_name(rq.rounding)),
         f"requant.rounding = {rq.rounding}"),
        ("REQUANT_PER_CHANNEL", int(rq.per_channel), "one requant word per output channel"),
        ("REQUANT_MULTIPLIER_BITS", rq.multiplier_bits, "mult_shift multiplier width"),
        ("REQUANT_SHIFT_BITS", rq.shift_bits, "right shift field width"),
        ("REQUANT_ZERO_POINT", int(rq.zero_point), "the unit adds an output zero point"),
    ]
    for key, name in (("ACT", "activations"), ("WGT", "weights"), ("BIAS", "bias"),
                      ("RQ", "requant")):
        mem = getattr(m, name)
        rows += [
            (f"{key}_WORD_BITS", mem.word_bits, f"memories.{name}.word_bits"),
            (f"{key}_LANES", mem.lanes, f"memories.{name}.lanes"),
            (f"{key}_ELEM_BITS", lanes[name], "bits per lane, as the export packs them"),
            (f"{key}_DEPTH", mem.depth, f"memories.{name}.depth (words)"),
            (f"{key}_ADDR_BITS", _clog2(mem.depth), "word address width"),
            (f"{key}_LANE_MSB_FIRST", int(mem.lane_order == "msb_first"),
             f"memories.{name}.lane_order = {mem.lane_order}"),
        ]
    rows += [
        ("ACT_LOG2_LANES", _clog2(m.activations.lanes) if m.activations.lanes > 1 else 0,
         "log2(ACT_LANES)"),
        ("WGT_LOG2_LANES", _clog2(m.weights.lanes) if m.weights.lanes > 1 else 0,
         "log2(WGT_LANES)"),
        ("DESC_WORDS", RTL_LIMITS["DESC_WORDS"], "32-bit words per layer descriptor"),
        ("DESC_DEPTH", RTL_LIMITS["DESC_DEPTH"], "descriptor memory depth (words)"),
        ("DESC_ADDR_BITS", _clog2(RTL_LIMITS["DESC_DEPTH"]), "descriptor address width"),
        ("XBUF_DEPTH", RTL_LIMITS["XBUF_DEPTH"], "RTL limit: im2col elements per array row"),
    ]
    return rows


def rtl_params(config) -> str:
    """The text of ``hwsim_params.vh`` for ``config`` (an AccelConfig, a YAML path or a preset)."""
    cfg = load_config(config)
    lanes = _check(cfg)
    lines = [
        "// hwsim_params.vh: parameters of the reference accelerator (hwsim/rtl/) for one "
        "AccelConfig.",
        f"// Generated by `hwsim rtl-params` from config '{cfg.name}'. Do not edit: regenerate.",
        "`ifndef HWSIM_PARAMS_VH",
        "`define HWSIM_PARAMS_VH",
        f'`define HWSIM_CONFIG_NAME "{cfg.name}"',
    ]
    defs = _defines(cfg, lanes)
    width = max(len(n) for n, _, _ in defs) + len("HWSIM_")
    for name, value, comment in defs:
        lines.append(f"`define {('HWSIM_' + name).ljust(width)} {value}  // {comment}")
    lines.append("`endif")
    return "\n".join(lines) + "\n"


def write_rtl_params(config, path: str | os.PathLike) -> str:
    """Write ``rtl_params(config)`` to ``path`` atomically; returns the text."""
    from .util import atomic_write_bytes
    text = rtl_params(config)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    return text


# -- CLI ------------------------------------------------------------------------------------
RTL_PARAMS_HELP = "write the reference RTL's parameter header (hwsim_params.vh) for a config"
RTL_PARAMS_EPILOG = """\
examples:
  hwsim rtl-params tflite-int8                      # writes ./hwsim_params.vh
  hwsim rtl-params narrow-acc-24 -o build/hwsim_params.vh
  hwsim rtl-params narrow-acc-24 -o -               # print to stdout
  hwsim rtl-params --rtl-dir                        # the folder of the reference RTL
  hwsim rtl-params --desc -o hwsim/rtl/hwsim_desc.vh  # the descriptor header (no CONFIG)
  ls "$(hwsim rtl-params --bench-dir)/examples"     # the cocotb bench and the adapter example
"""


def rtl_params_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", nargs="?",
                   help="accelerator config: a YAML file or a preset name (e.g. tflite-int8)")
    p.add_argument("--out", "-o", metavar="FILE", default=None,
                   help="header to write ('-' for stdout; default: hwsim_params.vh, with "
                        "--desc hwsim_desc.vh)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--desc", action="store_true",
                       help="write the descriptor header (hwsim_desc.vh: field indices and op "
                            "codes, from hwsim.hwif's field table) instead; no CONFIG")
    # The RTL and the bench are package data: these say where, for commands that name their
    # files (`hwsim cosim --rtl "$(hwsim rtl-params --rtl-dir)"/*.v ...`, docs/cosim.md).
    where.add_argument("--rtl-dir", action="store_true",
                       help="print the folder of the reference RTL (Verilog sources and "
                            "headers; $HWSIM_RTL_DIR overrides it) and exit")
    where.add_argument("--bench-dir", action="store_true",
                       help="print the folder of the cocotb bench (its examples/ holds the "
                            "adapter example; $HWSIM_TB_DIR overrides it) and exit")


def cmd_rtl_params(args) -> int:
    if getattr(args, "desc", False):
        return _write_desc(args)
    if args.rtl_dir or args.bench_dir:
        if args.config:
            raise ConfigError(f"{args.config}: CONFIG is not used with "
                              f"{'--rtl-dir' if args.rtl_dir else '--bench-dir'}")
        from .resources import RTL_DIR, TB_DIR
        print(RTL_DIR if args.rtl_dir else TB_DIR)
        return 0
    if not args.config:
        raise ConfigError("rtl-params: CONFIG missing (a YAML file or a preset name, e.g. "
                          "tflite-int8)")
    out = args.out or "hwsim_params.vh"
    if out == "-":
        print(rtl_params(args.config), end="")
        return 0
    text = write_rtl_params(args.config, out)
    print(f"wrote {out} ({text.count('`define') - 2} parameters)")
    return 0


def _write_desc(args) -> int:
    """``--desc``: hwsim_desc.vh from the field table (the same for every config)."""
    from .hwif.descriptor import verilog_header
    from .util import atomic_write_bytes
    if args.config:
        raise ConfigError(f"{args.config}: CONFIG is not used with --desc (the descriptor "
                          f"layout is the same for every config)")
    text, out = verilog_header(), args.out or "hwsim_desc.vh"
    if out == "-":
        print(text, end="")
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write_bytes(out, text.encode())
    print(f"wrote {out} (descriptor fields and op codes)")
    return 0


def add_rtl_params_parser(subparsers):
    """Add the ``rtl-params`` subcommand to an argparse ``subparsers`` object."""
    sp = subparsers.add_parser("rtl-params", help=RTL_PARAMS_HELP, description=RTL_PARAMS_HELP,
                               epilog=RTL_PARAMS_EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    rtl_params_arguments(sp)
    _set_command(sp, "rtl-params", RTL_PARAMS_HELP, rtl_params_arguments, cmd_rtl_params,
                 RTL_PARAMS_EPILOG)
    return sp


def _set_command(sp, name, help_, arguments, run, epilog) -> None:
    """Make the subparser dispatchable both by hwsim.cli.main (``_command``) and by ``func``."""
    try:
        from .command import Command
        sp.set_defaults(_command=Command(name, help_, arguments, run, epilog))
    except ImportError:  # pragma: no cover
        pass
    sp.set_defaults(func=run)


def main(argv=None) -> int:
    """``python -m hwsim.rtl_params CONFIG [-o FILE]`` (same as ``hwsim rtl-params``)."""
    import sys

    from .ir import HwsimError
    p = argparse.ArgumentParser(prog="python -m hwsim.rtl_params", description=RTL_PARAMS_HELP,
                                epilog=RTL_PARAMS_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    rtl_params_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_rtl_params(args)
    except HwsimError as e:
        print(f"hwsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
