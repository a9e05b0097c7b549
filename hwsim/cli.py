"""The ``hwsim`` command line (console script ``hwsim``, also ``python -m hwsim``).

Adding a subcommand: write ``_NAME_arguments(parser)`` (adds its options) and
``cmd_NAME(args) -> int`` (does the work, returns the exit code), then add one
:class:`Command` line to the ``COMMANDS`` table at the end of this file. ``arguments`` and
``run`` may also be ``"module:function"`` strings, imported only when that subcommand runs,
so a subcommand can live in its own module without slowing down (or breaking) the others.

Errors: raise :class:`hwsim.HwsimError` (``ModelError``, ``InputError``) with a message that
names the file / op / tensor at fault; :func:`main` prints it as one line
``hwsim: error: <message>`` on stderr and returns 2, without a traceback. Write output files
only through ``hwsim.util`` atomic writers (temp file, then rename), so that an error leaves
no output file behind.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import __version__
from .command import (Command, add_host_ops_argument, check_output_path,  # noqa: F401 (re-exported)
                      resolve as _resolve, semantics_argument)
from .ir import HwsimError, InputError

PROG = "hwsim"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PROGRESS_MIN_LAYERS = 20  # automatic progress bar (stderr a TTY) from this many layers on


# -- formatting helpers ----------------------------------------------------------------------
def fmt_shape(shape) -> str:
    shape = tuple(shape)
    return "x".join(str(int(d)) for d in shape) if shape else "scalar"


def fmt_int(n: int) -> str:
    return f"{int(n):,}"


def fmt_quant(info, with_dtype: bool = True) -> str:
    """``s=0.0039 zp=-128`` / ``per-channel(24)``, prefixed by the dtype unless int8."""
    dt = np.dtype(info.dtype) if info.dtype is not None else None
    prefix = f"{dt} " if (with_dtype and dt is not None and dt != np.dtype(np.int8)) else ""
    n = len(info.scales)
    if n == 0:
        return f"{dt}" if dt is not None else "?"
    if n > 1:
        return f"{prefix}per-channel({n})"
    return f"{prefix}s={float(info.scales[0]):.4g} zp={int(info.zero_points[0])}"


def _graph_op(net, layer):
    g = getattr(net, "graph", None)
    if g is not None and 0 <= layer.index < len(g.ops) and g.ops[layer.index].type == layer.op:
        return g.ops[layer.index]
    return None


def quant_summary(net, layer) -> str:
    """The layer's one-line quantization summary: ``Layer.summary`` or derived from tensors."""
    if layer.summary:
        return layer.summary
    prog = net.program
    parts = []
    ins = layer.inputs
    for j, i in enumerate(ins):
        parts.append(("in " if len(ins) == 1 else f"in{j} ") + fmt_quant(prog.tensors[i]))
    op = _graph_op(net, layer)
    if op is not None:
        for i in op.inputs:
            if i >= 0 and i in prog.constants:
                info = prog.tensors[i]
                if len(info.scales) and len(info.shape) >= 2:
                    dt = np.dtype(info.dtype)
                    q = (f"per-channel({len(info.scales)})" if len(info.scales) > 1
                         else f"s={float(info.scales[0]):.4g}")
                    parts.append(f"w {dt} {q}")
                    break
    outs = layer.outputs
    for j, i in enumerate(outs):
        parts.append(("out " if len(outs) == 1 else f"out{j} ") + fmt_quant(prog.tensors[i]))
    return " | ".join(parts)


def print_table(rows: list[list[str]], header: list[str], right: set[int] = frozenset(),
                file=None) -> None:
    file = file or sys.stdout
    widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(len(header))]

    def line(r):
        cells = [str(v).rjust(widths[c]) if c in right else str(v).ljust(widths[c])
                 for c, v in enumerate(r)]
        return "  ".join(cells).rstrip()

    print(line(header), file=file)
    for r in rows:
        print(line(r), file=file)


def _io_line(kind: str, k: int, info) -> str:
    return (f"{kind} {k} '{info.name}': {np.dtype(info.dtype)} [{', '.join(map(str, info.shape))}]"
            f"  {fmt_quant(info, with_dtype=False)}")


# -- file helpers ----------------------------------------------------------------------------
def output_paths(path: str, n: int) -> list[str]:
    """``--output Y.npy``: ``Y.npy`` for one output, ``Y_0.npy``, ``Y_1.npy``, ... for several."""
    if n == 1:
        return [path]
    stem, ext = os.path.splitext(path)
    return [f"{stem}_{k}{ext or '.npy'}" for k in range(n)]


@contextlib.contextmanager
def _atomic_arrays(items: list[tuple[str, np.ndarray]]):
    """Write every array to a temp file first; rename them all only when the block succeeds."""
    from .util import atomic_output_path
    with contextlib.ExitStack() as stack:
        for path, arr in items:
            tmp = stack.enter_context(atomic_output_path(path, suffix=".npy"))
            try:
                np.save(tmp, arr, allow_pickle=False)
            except OSError as e:
                raise HwsimError(f"{path}: cannot write ({e.strerror or e})") from None
        yield
    # ExitStack exit renamed every temp file to its target (or deleted them all on error)


def _open_progress(total: int, enabled: bool | None, desc: str):
    if enabled is None:
        enabled = total >= PROGRESS_MIN_LAYERS and sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="layer", file=sys.stderr, leave=False,
                dynamic_ncols=True)


# -- running ---------------------------------------------------------------------------------
@dataclass
class LayerRun:
    position: int
    layer: object
    seconds: float
    vmin: float | None
    vmax: float | None


def run_network(net, inputs, trace: bool = True, on_layer=None):
    """``net.run`` with a per-layer callback ``on_layer(k, layer, outs, seconds)``."""
    return net.run(inputs, trace=trace, on_layer=on_layer)


def _load_network(path: str, semantics: str = "tflite"):
    import warnings

    import hwsim
    from numba.core.errors import NumbaPerformanceWarning
    # a kernel's first (compiling) run may warn about parallelization: not the user's concern
    warnings.simplefilter("ignore", NumbaPerformanceWarning)
    return hwsim.load(path, semantics=semantics)


# -- hwsim info ------------------------------------------------------------------------------
INFO_EPILOG = """\
example:
  hwsim example --out build/example
  hwsim info build/example/example_cnn.tflite

Prints the model's inputs and outputs, one row per layer (index, op, input shapes, output
shape, MACs, quantization: scale s and zero point zp of the inputs, the weights'
per-channel/per-tensor scales, the output's) and the total MACs. MACs count CONV_2D
(out elements x KH*KW*Cin), DEPTHWISE_CONV_2D (x KH*KW) and FULLY_CONNECTED (x input depth).

With --config C the network is also mapped onto that accelerator (docs/dataflow.md): a
column "where" gives each layer's placement (array, host, alias, fused, input), each host
layer's reason follows the table, and a last line gives the split, e.g.
  array: 52 layers, 300.7 M MACs (99.98 %); host: TRANSPOSE, SOFTMAX
--host-ops OP[,OP] forces ops to the host (added to the config's host_ops).
"""


def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="the .tflite model")
    p.add_argument("--config", metavar="C", default=None,
                   help="also map onto this accelerator (YAML or preset): placement and the "
                        "array/host split")
    add_host_ops_argument(p)


def _info_mapping(args, net) -> None:
    """The rows' placement column, the host reasons and the split line (hwsim info --config)."""
    from .hw import map_network
    from .hwif.config import with_host_ops
    if args.config is None:
        if args.host_ops:
            raise HwsimError("--host-ops needs --config (the accelerator to map onto)")
        return None
    cfg = with_host_ops(args.config, args.host_ops)
    return map_network(net.graph, cfg, legalize="approx")


def cmd_info(args) -> int:
    net = _load_network(args.model)
    prog = net.program
    hw = _info_mapping(args, net)   # before any output: a bad config is one error line
    print(f"model: {args.model}  ({len(prog.tensors)} tensors, {len(prog.layers)} layers)")
    for k, info in enumerate(net.input_infos):
        print(_io_line("input", k, info))
    for k, info in enumerate(net.output_infos):
        print(_io_line("output", k, info))
    print()
    rows = []
    for layer in prog.layers:
        ins = ", ".join(fmt_shape(prog.tensors[i].shape) for i in layer.inputs) or "-"
        outs = ", ".join(fmt_shape(prog.tensors[i].shape) for i in layer.outputs)
        rows.append([str(layer.index), layer.op, ins, outs,
                     fmt_int(layer.macs) if layer.macs else "-", quant_summary(net, layer)])
        if hw is not None:
            rows[-1].insert(2, hw.placement.get(layer.index, "-"))
    header = ["#", "op", "input", "output", "MACs", "quantization"]
    if hw is not None:
        header.insert(2, "where")
    print_table(rows, header, right={0, 5 if hw is not None else 4})
    print()
    by_op: dict[str, int] = {}
    for layer in prog.layers:
        if layer.macs:
            by_op[layer.op] = by_op.get(layer.op, 0) + layer.macs
    detail = ", ".join(f"{op} {fmt_int(m)}" for op, m in by_op.items())
    print(f"total MACs: {fmt_int(prog.macs)}" + (f"  ({detail})" if detail else ""))
    nbytes = sum(int(np.asarray(v).nbytes) for v in prog.constants.values())
    print(f"constants: {len(prog.constants)} tensors, {fmt_int(nbytes)} bytes")
    if hw is not None:
        print()
        for i, why in sorted(hw.host_reasons.items()):
            print(f"host layer {i} ({prog.layers[i].op}): {why}")
        print(f"on '{hw.config.name}': {hw.coverage()}")
    return EXIT_OK


# -- hwsim run -------------------------------------------------------------------------------
RUN_EPILOG = """\
examples:
  hwsim example --out build/example
  hwsim run build/example/example_cnn.tflite --input build/example/example_input.npy \\
      --output build/example/y.npy --trace build/example/trace.h5
  hwsim run build/example/example_cnn.tflite --input build/example/example_input.png
  hwsim run person_detect.tflite --input person.bmp --image-mode bytes

Inputs: one --input per model input, in the model's input order. A .npy file must have
exactly the input's dtype and shape. An image (.png .bmp .jpg ...) is converted to grayscale
(1-channel input) or RGB, resized bilinearly to the input's H x W if needed, laid out NHWC
(NCHW for a [1, C, H, W] input with C = 1 or 3), and each pixel p becomes:
  real   q = clamp(round(p / 255 / scale) + zero_point)   (the default)
  raw    q = p - 128 (int8 input), p (uint8)
  bytes  q = p if p < 128 else p - 256 (int8), p (uint8)

Outputs: --output Y.npy writes output 0 to Y.npy; a model with several outputs gets
Y_0.npy, Y_1.npy, ... . --trace T.h5 writes every tensor and accumulator (docs/cli.md).
Files are written only when the whole run succeeded.
"""


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="the .tflite model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", "-i", action="append", metavar="FILE",
                     help="input file (.npy or an image); repeat once per model input")
    src.add_argument("--random-input", type=int, metavar="SEED",
                     help="instead of files: seeded uniform random integers over each input "
                          "type's range (numpy default_rng([SEED, k]) for input k)")
    p.add_argument("--output", "-o", metavar="Y.npy",
                   help="write output 0 here (several outputs: Y_0.npy, Y_1.npy, ...)")
    p.add_argument("--trace", metavar="T.h5",
                   help="write every tensor and accumulator of the run (HDF5, the corpus' "
                        "expected.h5 layout)")
    p.add_argument("--image-mode", choices=("real", "raw", "bytes"), default="real",
                   help="how image pixels become input values (see below; default: real)")
    semantics_argument(p)
    p.add_argument("--warmup", action="store_true",
                   help="run once untimed first, so that the ms column shows steady-state "
                        "kernel times rather than Numba's compile/cache-load time")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print only the outputs summary, not the per-layer table")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"progress bar on stderr (default: when stderr is a terminal and the "
                        f"model has at least {PROGRESS_MIN_LAYERS} layers)")


def _minmax(outs) -> tuple:
    vals = [np.asarray(o) for o in outs if np.asarray(o).size]
    if not vals:
        return None, None
    return min(v.min() for v in vals).item(), max(v.max() for v in vals).item()


def _fmt_values(v: np.ndarray) -> str:
    return np.array2string(v.reshape(-1), separator=" ", max_line_width=96,
                           threshold=64, floatmode="maxprec", precision=4)


def print_outputs(net, outputs, file=None) -> None:
    file = file or sys.stdout
    for k, (info, y) in enumerate(zip(net.output_infos, outputs)):
        y = np.asarray(y)
        line = (f"output {k} '{info.name}': {y.dtype} [{', '.join(map(str, y.shape))}]  "
                f"min {y.min().item() if y.size else '-'}  max {y.max().item() if y.size else '-'}")
        flat = y.reshape(-1)
        if 1 < flat.size <= 1000 and (y.ndim == 1 or int(np.prod(y.shape[:-1])) == 1):
            line += f"  argmax {int(np.argmax(flat))}"
        print(line, file=file)
        if flat.size <= 32:
            print(f"  values: {_fmt_values(flat)}", file=file)
            if len(info.scales) == 1 and y.dtype.kind in "iu":
                real = (flat.astype(np.float64) - int(info.zero_points[0])) * float(info.scales[0])
                print(f"  real:   {_fmt_values(real.astype(np.float32))}", file=file)


def _gather_inputs(args, net) -> tuple[list[np.ndarray], list[str]]:
    from .inputs import load_input, random_input
    infos = net.input_infos
    if args.random_input is not None:
        xs = [random_input(info, args.random_input, k) for k, info in enumerate(infos)]
        return xs, [f"random (seed {args.random_input})"] * len(infos)
    files = args.input
    if len(files) != len(infos):
        names = ", ".join(f"'{i.name}' {np.dtype(i.dtype)} {list(i.shape)}" for i in infos)
        raise InputError(f"the model {args.model} takes {len(infos)} input(s) ({names}), "
                         f"{len(files)} --input given")
    return [load_input(f, info, args.image_mode, k) for k, (f, info) in
            enumerate(zip(files, infos))], list(files)


def cmd_run(args) -> int:
    if args.output:
        check_output_path(args.output, "output")
    if args.trace:
        check_output_path(args.trace, "trace")
    net = _load_network(args.model, args.semantics)
    prog = net.program
    xs, sources = _gather_inputs(args, net)
    xs = net.check_inputs(xs)
    out_paths = output_paths(args.output, len(prog.outputs)) if args.output else []
    for p in out_paths:
        check_output_path(p, "output")

    if not args.quiet:
        print(f"model: {args.model}  ({len(prog.layers)} layers, {fmt_int(prog.macs)} MACs)")
        for k, (info, src) in enumerate(zip(net.input_infos, sources)):
            print(_io_line("input", k, info) + f"  <- {src}")
    runs: list[LayerRun] = []
    bar = _open_progress(len(prog.layers), args.progress, "hwsim run")

    def on_layer(k, layer, outs, seconds):
        lo, hi = _minmax(outs)
        runs.append(LayerRun(k, layer, seconds, lo, hi))
        if bar is not None:
            bar.update(1)

    if args.warmup:
        run_network(net, xs, trace=False)
    # without the per-layer table, progress bar or trace: the engine's call plan (the same
    # integers; the per-layer path compiles unfused kernels a quiet run does not need)
    per_layer = not args.quiet or bar is not None or bool(args.trace)
    t0 = time.perf_counter()
    try:
        result = run_network(net, xs, trace=bool(args.trace), on_layer=on_layer if per_layer else None)
    finally:
        if bar is not None:
            bar.close()
    total = time.perf_counter() - t0

    if not args.quiet:
        print()
        rows = []
        for r in runs:
            layer = r.layer
            rows.append([str(layer.index), layer.op,
                         ", ".join(fmt_shape(prog.tensors[i].shape) for i in layer.outputs),
                         "-" if r.vmin is None else str(r.vmin),
                         "-" if r.vmax is None else str(r.vmax), f"{r.seconds * 1e3:.2f}"])
        print_table(rows, ["#", "op", "output", "min", "max", "ms"], right={0, 3, 4, 5})
        print(f"total {total * 1e3:.1f} ms" + ("" if args.warmup else
              " (a kernel's first call in a process includes Numba's compilation or cache "
              "load; --warmup excludes it)"))
        print()
    print_outputs(net, result.outputs)

    items = list(zip(out_paths, result.outputs))
    with _atomic_arrays(items):
        if args.trace:
            from .trace_io import write_trace_h5
            write_trace_h5(args.trace, net, result)
    for p, y in items:
        print(f"wrote {p}")
    if args.trace:
        tr = result.trace
        print(f"wrote {args.trace} ({len(tr.tensors)} tensors, {len(tr.accumulators)} "
              f"accumulators)")
    return EXIT_OK


# -- hwsim example ---------------------------------------------------------------------------
EXAMPLE_EPILOG = """\
example:
  hwsim example --out build/example
  hwsim run build/example/example_cnn.tflite --input build/example/example_input.npy \\
      --trace build/example/trace.h5

Writes example_cnn.tflite (an int8 CNN generated by hwsim from the seed: CONV_2D,
DEPTHWISE_CONV_2D, ADD residuals, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX; input
1x32x32x3, 1,214,976 MACs), example_input.npy (int8 [1, 32, 32, 3]) and example_input.png
(the same input as an image: 'hwsim run ... --input example_input.png' gives the same result).
The same seed always gives the same bytes. Existing files of these names are replaced.
"""


def _example_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", metavar="DIR", default="hwsim_example",
                   help="folder to write into (created if missing; default: hwsim_example)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, calibration and input (default: 0)")


def cmd_example(args) -> int:
    from PIL import Image

    from . import examples
    from .util import atomic_output_path, atomic_write_bytes
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise HwsimError(f"{out}: exists and is not a folder")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise HwsimError(f"{out}: cannot create the folder ({e.strerror or e})") from None
    model = os.path.join(out, examples.EXAMPLE_MODEL_FILE)
    npy = os.path.join(out, examples.EXAMPLE_INPUT_FILE)
    png = os.path.join(out, examples.EXAMPLE_IMAGE_FILE)
    graph = examples.example_graph(args.seed)
    from .frontends.tflite_writer import serialize_tflite
    data = serialize_tflite(graph, description="hwsim example network")
    x = examples.example_input(args.seed)
    img = examples.example_image(args.seed)
    with _atomic_arrays([(npy, x)]):
        try:
            with atomic_output_path(png, suffix=".png") as tmp:
                Image.fromarray(img, "RGB").save(tmp, format="PNG")
        except OSError as e:
            raise HwsimError(f"{png}: cannot write ({e.strerror or e})") from None
        atomic_write_bytes(model, data)
    print(f"wrote {model} ({fmt_int(len(data))} bytes; {len(graph.ops)} ops, "
          f"{fmt_int(examples.example_macs())} MACs)")
    print(f"wrote {npy} (int8 [{', '.join(map(str, x.shape))}])")
    print(f"wrote {png} ({img.shape[1]}x{img.shape[0]} RGB, the same input as an image)")
    print("next:")
    print(f"  hwsim info {model}")
    print(f"  hwsim run {model} --input {npy} --trace {os.path.join(out, 'trace.h5')}")
    return EXIT_OK


# -- the table of subcommands ----------------------------------------------------------------
COMMANDS: list[Command] = [
    Command("info", "show a model's layers, shapes, MACs and quantization",
            _info_arguments, cmd_info, INFO_EPILOG),
    Command("run", "run a model on inputs; print per-layer ranges, write outputs and a trace",
            _run_arguments, cmd_run, RUN_EPILOG),
    Command("example", "write the bundled example network and its input",
            _example_arguments, cmd_example, EXAMPLE_EPILOG),
    Command("export", "export weight/bias/requant memories and golden vectors for RTL",
            "hwsim.export.commands:export_arguments", "hwsim.export.commands:cmd_export",
            "hwsim.export.commands:EXPORT_EPILOG"),
    Command("compare", "compare two traces or export directories bit for bit",
            "hwsim.export.commands:compare_arguments", "hwsim.export.commands:cmd_compare",
            "hwsim.export.commands:COMPARE_EPILOG"),
    Command("rtl-params", "write the Verilog header of an accelerator config",
            "hwsim.rtl_params:rtl_params_arguments", "hwsim.rtl_params:cmd_rtl_params",
            "hwsim.rtl_params:RTL_PARAMS_EPILOG"),
    Command("cosim", "run the reference RTL on an export with cocotb; per-layer verdicts",
            "hwsim.cosim:cosim_arguments", "hwsim.cosim:cmd_cosim", "hwsim.cosim:COSIM_EPILOG"),
    Command("quantize", "quantize a float ONNX/Darknet model to a full-integer .tflite",
            "hwsim.quant.commands:quantize_arguments", "hwsim.quant.commands:cmd_quantize",
            "hwsim.quant.commands:QUANTIZE_EPILOG"),
    Command("report", "accuracy report of an int8 model against its float original",
            "hwsim.quant.commands:report_arguments", "hwsim.quant.commands:cmd_report",
            "hwsim.quant.commands:REPORT_EPILOG"),
    Command("sweep", "sweep models x configs x inputs (on Dask); results.csv, summary, report",
            "hwsim.sweep.commands:sweep_arguments", "hwsim.sweep.commands:cmd_sweep",
            "hwsim.sweep.commands:SWEEP_EPILOG"),
]

MAIN_EPILOG = """\
quick start:
  hwsim example --out build/example
  hwsim run build/example/example_cnn.tflite --input build/example/example_input.npy \\
      --trace build/example/trace.h5

Run 'hwsim COMMAND --help' for a command's options and a worked example.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=MAIN_EPILOG,
        description="hwsim: bit-exact reference model of an int8 neural-network accelerator "
                    "(computes the integers TFLite's reference kernels compute).")
    p.add_argument("--version", action="version", version=f"hwsim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for c in COMMANDS:
        epilog = c.epilog
        if epilog.startswith("hwsim.") and ":" in epilog and "\n" not in epilog:
            epilog = _resolve(epilog)  # a "module:NAME" reference to the command's own text
        sp = sub.add_parser(c.name, help=c.help, description=c.description or c.help,
                            epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        _resolve(c.arguments)(sp)
        sp.set_defaults(_command=c)
    return p


def one_line(message: str) -> str:
    """``message`` as one printable line: whitespace runs become one space, any other control
    character (a terminal escape from a file's tensor name, say) its ``\\xNN`` escape."""
    text = " ".join(str(message).split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _error(message: str) -> None:
    print(f"{PROG}: error: {one_line(message) or 'unknown error'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 usage or hwsim error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    cmd = getattr(args, "_command", None)
    if cmd is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(_resolve(cmd.run)(args) or 0)
    except HwsimError as e:
        _error(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hwsim info m.tflite | head`
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
