"""The ``hwsim export`` and ``hwsim compare`` subcommands (argparse).

Wire into hwsim/cli.py's COMMANDS table::

    Command("export", EXPORT_HELP, "hwsim.export.commands:export_arguments",
            "hwsim.export.commands:cmd_export", EXPORT_EPILOG),
    Command("compare", COMPARE_HELP, "hwsim.export.commands:compare_arguments",
            "hwsim.export.commands:cmd_compare", COMPARE_EPILOG),

or onto any argparse ``subparsers`` with :func:`add_export_parser` / :func:`add_compare_parser`
(they set ``func`` to the command function). Commands return the exit code; user errors are
raised as :class:`hwsim.HwsimError` (printed as one line, exit 2 by hwsim.cli.main).
"""
from __future__ import annotations

import argparse
import os
import sys

from ..command import add_host_ops_argument, semantics_argument
from ..ir import HwsimError, InputError
from .formats import FORMATS

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2
# the requant schemes the reference RTL implements (the export's warning names any other)

EXPORT_HELP = "write the memory images, descriptors and golden vectors the RTL needs"
EXPORT_EPILOG = """\
example:
  hwsim example --out build/example
  hwsim export build/example/example_cnn.tflite --config tflite-int8 \\
      --input build/example/example_input.npy --out build/rtl

Writes DIR/manifest.yaml (every layer's descriptor fields, bases, word counts, quantization,
file names and sha256, the config, headroom and cycle estimates), DIR/vectors.h5 (all of it
in one HDF5 file), DIR/mem/ (whole-network images to $readmemh once: weights, bias, requant,
descriptors, act_init, plus act_final and acc, the expected activation and accumulator
memories) and DIR/layers/<idx>_<op>/ (per layer: descriptor, weights, bias, requant, input,
acc, output). Layouts: docs/dev/accel-interface.md; files: docs/export.md.
The folder is written complete or not at all (a temp folder renamed at the end). DIR may
be new or empty, or hold an earlier export and nothing else (then it is replaced); a folder
with any other file is refused, and nothing in it is removed. The same model, config and
input give the same bytes.
"""

COMPARE_HELP = "compare two runs (traces, export folders, RTL dumps) element by element"
COMPARE_EPILOG = """\
examples:
  hwsim compare build/example/trace.h5 other_trace.h5 --model build/example/example_cnn.tflite
  hwsim compare build/rtl build/rtl_from_bench --png first_bad_layer.png
  hwsim compare build/rtl act_mem_dump.hex            # a $writememh of the activation memory

GOLDEN is a trace (.h5 from 'hwsim run --trace', or a corpus expected.h5) or an export folder.
OTHER is a trace, an export folder, a folder of RTL dumps laid out like an export
(layers/<idx>_<op>/output.hex ...; what is not there is skipped), or a dump of a whole
memory (.hex/.mem/.coe/.mif/.bin; --memory). Prints one row per vector (layer, tensor,
elements, mismatches, max |diff|) and the first mismatching element (flat index, n/h/w/c,
both values). Exit status: 0 bit-exact, 1 mismatch, 2 error.
"""


# -- export -------------------------------------------------------------------------------------
def export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="the .tflite model")
    p.add_argument("--config", "-c", metavar="CONFIG", default="tflite-int8",
                   help="accelerator config: a YAML file or a preset name (default: "
                        "tflite-int8)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", "-i", action="append", metavar="FILE",
                     help="input (.npy or an image); repeat once per model input")
    src.add_argument("--random-input", type=int, metavar="SEED",
                     help="seeded random input(s) instead (as 'hwsim run --random-input')")
    p.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder")
    p.add_argument("--legalize", choices=("strict", "approx"), default="strict",
                   help="strict: refuse what the hardware cannot compute exactly; approx: map "
                        "it to the nearest the hardware can (default: strict)")
    p.add_argument("--host-tail", action="store_true",
                   help="no longer needed (ignored, with a note): layers the array cannot run "
                        "run on the host wherever they are")
    add_host_ops_argument(p)
    semantics_argument(p)
    p.add_argument("--formats", default=",".join(FORMATS), metavar="LIST",
                   help=f"memory file formats, comma-separated (default: {','.join(FORMATS)})")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the summary line")


def _inputs_for(args):
    if args.input:
        return list(args.input)
    import hwsim
    from ..inputs import random_input
    net = hwsim.load_graph(args.model)
    return [random_input(_info(net.tensors[i]), args.random_input, k)
            for k, i in enumerate(net.inputs)]


def _info(t):
    from types import SimpleNamespace
    return SimpleNamespace(dtype=t.dtype, shape=t.shape, name=t.name)


def _fmt_table(head, rows, right=frozenset()) -> str:
    from .compare import _format_table
    return _format_table(head, rows, right)


def headroom_warning_table(rows: list[dict]) -> str:
    """The headroom rows whose accumulators leave their range (hwsim.hw.headroom)."""
    head = ["layer", "op", "acc", "overflow", "partial min", "partial max", "worst min",
            "worst max", "elements", "first (flat index, n/h/w/c: exact -> hardware)"]
    body = []
    for r in rows:
        e = (r.get("out_of_range_elements") or [{}])[0]
        first = (f"{e.get('flat_index')} {tuple(e.get('coords', ()))}: {e.get('exact')} -> "
                 f"{e.get('hardware')}" if e else "")
        body.append([str(r.get("layer")), str(r.get("op", "")), f"{r.get('acc_bits')}b",
                     str(r.get("overflow", "")), str(r.get("partial_min")),
                     str(r.get("partial_max")), str(r.get("worst_min")),
                     str(r.get("worst_max")), f"{r.get('out_of_range')} of {r.get('elements')}",
                     first])
    return _fmt_table(head, body, right={0, 4, 5, 6, 7, 8})


def cmd_export(args) -> int:
    from .exporter import export
    if not os.path.isfile(args.model):
        raise InputError(f"{args.model}: no such model file")
    try:
        from ..hwif.config import with_host_ops
        config = with_host_ops(args.config, getattr(args, "host_ops", None))
        res = export(args.model, config, _inputs_for(args), args.out,
                     legalize=args.legalize, host_tail=args.host_tail, formats=args.formats,
                     semantics=args.semantics,
                     progress=args.progress)
    except HwsimError as e:  # name the option, not the API argument
        raise type(e)(str(e).replace("host_tail=True", "--host-tail")) from None
    man = res.manifest
    if not args.quiet:
        rows = []
        for L in man["layers"]:
            if L.get("folder") is None:   # alias, fused, input: listed in the manifest only
                continue
            f = L.get("fields", {})
            mem = L.get("memory", {})
            rows.append([str(L["index"]), L["op"], "host" if L["host"] else L["accel_op"],
                         "x".join(map(str, L["vectors"]["output"]["shape"])),
                         f"{L['macs']:,}" if L["macs"] else "-",
                         "-" if L.get("cycles") is None else f"{L['cycles']:,}",
                         str(f.get("in_base", "-")) if not L["host"] else "-",
                         str(f.get("out_base", "-")) if not L["host"] else "-",
                         str(mem.get("weights", {}).get("words", "-"))])
        print(_fmt_table(["#", "op", "array", "output", "MACs", "cycles", "in_base", "out_base",
                          "w words"], rows, right={0, 4, 5, 6, 7, 8}))
        if man.get("fused"):   # clamps of b-bit activations without a layer of their own
            fused = [f"{f['index']} {f['op']} into layer {f['into']}" for f in man["fused"]
                     if f["placement"] == "fused"]
            host = [f"{f['index']} {f['op']}" for f in man["fused"] if f["placement"] == "input"]
            print("clamps: " + "; ".join(
                ([f"fused {', '.join(fused)}"] if fused else []) +
                ([f"applied by the host to the input: {', '.join(host)}"] if host else [])))
        print(res.coverage)
        mems = man["memories"]
        print("memories: " + ", ".join(
            f"{k} {mems[k]['used_words']:,}/{mems[k]['depth']:,} words"
            for k in ("weights", "bias", "requant", "activations")))
    if res.inexact:
        print(f"hwsim: warning: --legalize {args.legalize}: {len(res.inexact)} layer(s) do not "
              f"compute the model's integers exactly (manifest.yaml layers[].legalization):",
              file=sys.stderr)
        for r in res.inexact:
            print(f"  layer {r['layer']} ({r['op']}): {'; '.join(r['reasons'])}",
                  file=sys.stderr)
    if res.warnings:
        print("hwsim: warning: accumulator elements leave the accumulator's range on this "
              "input (they wrap/saturate in hardware; manifest.yaml headroom_warnings):",
              file=sys.stderr)
        print(headroom_warning_table(res.warnings), file=sys.stderr)
    size = sum(f["bytes"] for f in man["files"])
    print(f"wrote {res.out_dir} ({len(res.files)} files, {size:,} bytes; config "
          f"'{man['config']['name']}', {'exact' if man['exact'] else 'NOT exact (approx)'})")
    return EXIT_OK


# -- compare ------------------------------------------------------------------------------------
def compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("golden", metavar="GOLDEN", help="trace .h5 or export folder")
    p.add_argument("other", metavar="OTHER",
                   help="trace .h5, export folder, folder of RTL dumps, or a memory dump file")
    p.add_argument("--png", metavar="PATH",
                   help="write a per-channel mismatch map of the first differing vector")
    p.add_argument("--model", metavar="MODEL",
                   help="the .tflite model, for layer names and order when both are traces")
    p.add_argument("--memory", choices=("activations", "accumulators"), default="activations",
                   help="which memory a memory-file OTHER dumps (default: activations)")
    semantics_argument(p)
    p.add_argument("--mismatches-only", action="store_true",
                   help="list only the vectors that differ")


def cmd_compare(args) -> int:
    from .compare import compare
    res = compare(args.golden, args.other, model=args.model, memory=args.memory,
                  semantics=args.semantics)
    print(f"golden: {res.golden}")
    print(f"other:  {res.other}")
    print()
    print(res.table(only_mismatches=args.mismatches_only))
    print()
    first = res.first_text()
    if first:
        print(first)
    print(res.summary())
    if args.png:
        if res.write_png(args.png):
            print(f"wrote {args.png}")
        else:
            print(f"(no mismatching elements: {args.png} not written)")
    return EXIT_OK if res.bit_exact else EXIT_MISMATCH


# -- wiring -------------------------------------------------------------------------------------
def _add(subparsers, name, help_, epilog, arguments, run):
    sp = subparsers.add_parser(name, help=help_, description=help_, epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments(sp)
    sp.set_defaults(func=run)
    try:  # hwsim.cli.main dispatches on a Command in args._command
        from ..command import Command
        sp.set_defaults(_command=Command(name, help_, arguments, run, epilog))
    except ImportError:  # pragma: no cover
        pass
    return sp


def add_export_parser(subparsers):
    return _add(subparsers, "export", EXPORT_HELP, EXPORT_EPILOG, export_arguments, cmd_export)


def add_compare_parser(subparsers):
    return _add(subparsers, "compare", COMPARE_HELP, COMPARE_EPILOG, compare_arguments,
                cmd_compare)


def main(argv=None) -> int:
    """``python -m hwsim.export.commands export|compare ...`` (the same as ``hwsim ...``)."""
    p = argparse.ArgumentParser(prog="hwsim")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_export_parser(sub)
    add_compare_parser(sub)
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if not hasattr(args, "func"):
        p.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except HwsimError as e:
        print(f"hwsim: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
