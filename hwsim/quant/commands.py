"""``hwsim quantize`` and ``hwsim report``: argparse wiring and the commands.

The CLI (``hwsim/cli.py``) adds them with ``add_quantize_parser(subparsers)`` and
``add_report_parser(subparsers)``; each sets ``func`` (and ``_command`` for hwsim's dispatcher)
to :func:`cmd_quantize` / :func:`cmd_report`, which return the exit code and raise
:class:`hwsim.HwsimError` for user errors (printed as one line by ``hwsim.cli.main``).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..ir import HwsimError, InputError, ModelError

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
TABLE_FORMATS = ("ncnn", "tensorrt", "nvdla")
_TABLE_EXT = {".table": "ncnn", ".cache": "tensorrt", ".calib": "tensorrt", ".json": "nvdla"}

QUANTIZE_HELP = "post-training quantization of a float ONNX / Darknet model to int8 TFLite"
QUANTIZE_EPILOG = """\
examples:
  python examples/digits/train.py --out build/digits
  hwsim quantize build/digits/digits_cnn.onnx --calib build/digits/x_train.npy \\
      --method auto --out build/digits/digits_int8.tflite --weights-h5 build/digits/w.h5 \\
      --table build/digits/digits.table
  hwsim quantize yolo.cfg --weights yolo.weights --calib images/ --scale 0.00392157 \\
      --method kl --config shift-only-int8 --out yolo_int8.tflite

--calib: a .npy array [N, ...] (NCHW as the source model, or NHWC), a folder of .npy files
(each a batch or one sample), or a folder of images preprocessed as
x = (pixel * scale - mean) / std per channel, resized to --size (default: the model's), in
--channel-order (rgb). The output is a full-integer TFLite model (int8 inputs and outputs;
use its input scale / zero point to quantize data).
"""

REPORT_HELP = "per-layer SQNR / cosine / histograms of an int8 model vs its float model"
REPORT_EPILOG = """\
example:
  hwsim report build/digits/digits_cnn.onnx build/digits/digits_int8.tflite \\
      --calib build/digits/x_test.npy --labels build/digits/y_test.npy --out build/digits/report

Writes DIR/index.html (self-contained), DIR/report.json and the histogram PNGs.
"""


# ------------------------------------------------------------------------------ loading
def load_float_model(path: str, darknet_weights: str | None = None, batch: int = 1):
    """Read a float model into the graph IR: ``.onnx``, or Darknet ``.cfg`` (+ weights)."""
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if ext == ".onnx":
        from ..frontends.onnx_reader import read_onnx
        return read_onnx(p, batch=batch)
    if ext == ".cfg":
        from ..frontends.darknet_reader import read_darknet
        if darknet_weights is None:
            raise InputError(f"{p}: a Darknet .cfg needs its .weights file (--weights FILE)")
        return read_darknet(p, darknet_weights, batch=batch)
    if ext == ".tflite":
        raise ModelError(f"{p}: quantize reads a float model (.onnx, or .cfg with --weights); "
                         f"this is a .tflite file")
    raise ModelError(f"{p}: unknown model format '{ext or '(no extension)'}' (expected .onnx or "
                     f"a Darknet .cfg)")


def _floats(text: str | None, what: str, n: int, default: float) -> np.ndarray:
    if text is None:
        return np.full(n, default, np.float32)
    try:
        vals = [float(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        raise InputError(f"--{what} {text!r}: expected numbers separated by commas") from None
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise InputError(f"--{what} {text!r}: {len(vals)} values for {n} channels")
    return np.asarray(vals, np.float32)


def preprocess_image(path: str, h: int, w: int, c: int, *, mean=None, std=None,
                     scale: float = 1 / 255, channel_order: str = "rgb") -> np.ndarray:
    """One image -> float32 [h, w, c]: Pillow convert ('L' or 'RGB'), bilinear resize to
    w x h, ``(pixel * scale - mean) / std`` per channel, RGB or BGR order."""
    from PIL import Image
    if c not in (1, 3):
        raise InputError(f"{path}: the model input has {c} channels; images give 1 or 3")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            a = np.asarray(im, np.float32)
    except OSError as e:
        raise InputError(f"{path}: cannot read the image ({e})") from None
    if a.ndim == 2:
        a = a[:, :, None]
    if channel_order == "bgr":
        a = a[:, :, ::-1]
    m = _floats(mean, "mean", c, 0.0)
    s = _floats(std, "std", c, 1.0)
    if np.any(s == 0):
        raise InputError("--std must not be 0")
    return ((a * np.float32(scale) - m) / s).astype(np.float32)


def calibration_source(path: str, graph, *, mean=None, std=None, scale: float | None = None,
                       size=None, channel_order: str = "rgb", limit: int | None = None,
                       batch_size: int = 32):
    """Calibration data, streamed: ``(factory, n)`` where ``factory()`` returns a fresh
    iterator of float32 batches in the graph's layout (files are read batch by batch: a .npy
    file is memory-mapped, folders are read file by file). See ``QUANTIZE_EPILOG``."""
    from .float_exec import to_graph_layout
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(f"{p}: no such file or folder")
    t = graph.tensors[graph.inputs[0]]
    rank = len(t.shape)

    def as_batch(a: np.ndarray, src: str) -> np.ndarray:
        if a.dtype.kind not in "fiub":
            raise InputError(f"{src}: dtype {a.dtype} is not numeric")
        if a.ndim == rank - 1:
            a = a[None]
        if a.ndim != rank:
            raise InputError(f"{src}: shape {list(a.shape)} does not fit the model input "
                             f"{list(t.shape)}")
        a = np.asarray(a, np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"{src}: the data holds NaN or infinity")
        return to_graph_layout(graph, a)

    def load_npy(f: str, mmap: bool = False) -> np.ndarray:
        from ..inputs import read_npy
        return read_npy(f, mmap=mmap)

    if os.path.isfile(p):
        if not p.lower().endswith(".npy"):
            raise InputError(f"{p}: --calib takes a .npy file or a folder (of .npy files or "
                             f"images)")
        arr = load_npy(p, mmap=True)
        if arr.ndim == rank - 1:
            arr = arr[None]
        n = len(arr) if arr.ndim else 0
        if limit:
            n = min(n, limit)
        as_batch(np.asarray(arr[:1]), p)  # shape / dtype check now

        def factory():
            for i in range(0, n, batch_size):
                yield as_batch(np.asarray(arr[i:min(i + batch_size, n)]), p)
        if n == 0:
            raise InputError(f"{p}: no samples")
        return factory, n
    names = sorted(os.listdir(p))
    npys = [os.path.join(p, n) for n in names if n.lower().endswith(".npy")]
    imgs = [os.path.join(p, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    if npys and imgs:
        raise InputError(f"{p}: holds both .npy files and images; use one kind")
    if npys:
        sizes = []
        for f in npys:
            a = load_npy(f, mmap=True)
            as_batch(np.asarray(a[:1] if a.ndim == rank else a), f)
            sizes.append(len(a) if a.ndim == rank else 1)
        n = sum(sizes) if not limit else min(sum(sizes), limit)

        def factory():
            left = n
            for f in npys:
                if left <= 0:
                    return
                b = as_batch(load_npy(f), f)[:left]
                left -= len(b)
                yield b
        return factory, n
    if imgs:
        if rank != 4:
            raise InputError(f"{p}: images need a 4-D model input, this one is "
                             f"{list(t.shape)}")
        _, h, w, c = t.shape
        if size:
            try:
                sz = [int(v) for v in str(size).lower().replace("x", ",").split(",")]
            except ValueError:
                raise InputError(f"--size {size!r}: expected H,W") from None
            if len(sz) == 1:
                sz = sz * 2
            if sz != [h, w]:
                raise InputError(f"--size {size}: the model input is {h}x{w}")
        if limit:
            imgs = imgs[:limit]
        pix = 1 / 255 if scale is None else scale

        def factory():
            for i in range(0, len(imgs), batch_size):
                yield np.stack([preprocess_image(f, h, w, c, mean=mean, std=std, scale=pix,
                                                 channel_order=channel_order)
                                for f in imgs[i:i + batch_size]])
        return factory, len(imgs)
    raise InputError(f"{p}: no .npy files or images ({', '.join(IMAGE_EXTENSIONS)}) in the "
                     f"folder")


def load_calibration(path: str, graph, **kw) -> np.ndarray:
    """All the data of :func:`calibration_source` as one float32 array [N, ...] (graph
    layout)."""
    factory, n = calibration_source(path, graph, **kw)
    x = np.concatenate(list(factory()))
    if len(x) == 0:
        raise InputError(f"{path}: no samples")
    return x


def _check_out(path: str, what: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise HwsimError(f"{path}: cannot write the {what} (folder {folder} does not exist)")
    if os.path.isdir(path):
        raise HwsimError(f"{path}: is a folder; the {what} must be a file")


def _progress_bar(enabled, desc):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None, None
    from tqdm import tqdm
    bar = tqdm(desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True, unit="sample")
    return bar, bar


# ------------------------------------------------------------------------------ quantize
def quantize_arguments(p: argparse.ArgumentParser) -> None:
    from .quantize import METHODS, WEIGHT_METHODS
    p.add_argument("model", metavar="MODEL", help="float model: .onnx, or Darknet .cfg (with "
                                                  "--weights FILE.weights)")
    p.add_argument("--calib", required=True, metavar="PATH",
                   help=".npy batch, folder of .npy, or folder of images")
    p.add_argument("--method", default="kl", choices=METHODS,
                   help="activation ranges (default kl); auto: per tensor the best SQNR")
    p.add_argument("--weights", action="append", default=[], metavar="METHOD|FILE",
                   help=f"weight quantization ({'|'.join(WEIGHT_METHODS)}, default maxabs) "
                        f"and/or the Darknet .weights file; may be given twice")
    p.add_argument("--weight-method", choices=WEIGHT_METHODS, default=None,
                   help="same as --weights METHOD")
    p.add_argument("--darknet-weights", metavar="FILE", default=None,
                   help="same as --weights FILE.weights")
    p.add_argument("--per-tensor", action="store_true",
                   help="per-tensor weight scales (default: per output channel)")
    p.add_argument("--percentile", type=float, default=99.99, help="for --method percentile")
    p.add_argument("--input-method", choices=METHODS, default="minmax",
                   help="range of the graph input (default minmax)")
    p.add_argument("--config", metavar="ACCEL", default=None,
                   help="accelerator YAML or preset (shift_only -> power-of-two scales, "
                        "per_channel, zero_point, weight/activation bits)")
    p.add_argument("--weight-bits", type=int, default=None, help="4..8 (int8 storage)")
    p.add_argument("--activation-bits", type=int, default=None,
                   help="4..8 (int8) or 9..16 (int16, TFLite 16x8); below 8 and 16 every "
                        "activation is clamped to its b-bit range")
    p.add_argument("--first-last-bits", type=int, default=None, metavar="BITS",
                   help="weight bits of the first and last MAC layers, and activation bits of "
                        "the first MAC layer's input and the last one's output (never fewer "
                        "than --activation-bits); e.g. 8 with --weight-bits 4 "
                        "--activation-bits 4")
    p.add_argument("--pot", action="store_true", help="power-of-two scales everywhere")
    p.add_argument("--out", required=True, metavar="FILE", help="the int8 model (.tflite, or "
                                                                "with --format onnx-qdq .onnx)")
    p.add_argument("--format", choices=("tflite", "onnx-qdq"), default="tflite",
                   help="tflite (default): full-integer TFLite; onnx-qdq: a QDQ ONNX model with "
                        "hwsim's activation ranges, written by onnxruntime's quantizer "
                        "(uint8 activations, int8 weights), which ORT and 'hwsim run' compute "
                        "with the same integers (docs/onnx.md)")
    p.add_argument("--weights-h5", metavar="FILE.h5", default=None,
                   help="also write hwsim's INT8 weight file")
    p.add_argument("--table", metavar="FILE", default=None, help="also write a calibration "
                                                                 "table")
    p.add_argument("--table-format", choices=TABLE_FORMATS, default=None,
                   help="ncnn | tensorrt | nvdla (default from the extension: .table, .cache, "
                        ".json)")
    _data_arguments(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--progress", dest="progress", action="store_true", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("image preprocessing (folders of images)")
    g.add_argument("--mean", default=None, help="per-channel mean, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", default=None, help="per-channel std, e.g. 0.229,0.224,0.225")
    g.add_argument("--scale", type=float, default=None, help="pixel scale (default 1/255)")
    g.add_argument("--size", default=None, help="H,W (must match the model input)")
    g.add_argument("--channel-order", choices=("rgb", "bgr"), default="rgb")
    g.add_argument("--limit", type=int, default=None, help="use at most N samples")


def _split_weights(args):
    from .quantize import WEIGHT_METHODS
    method, files = args.weight_method, [args.darknet_weights] if args.darknet_weights else []
    for v in args.weights:
        if v in WEIGHT_METHODS:
            if method is not None and method != v:
                raise InputError(f"two weight methods given: {method} and {v}")
            method = v
        else:
            files.append(v)
    if len(files) > 1:
        raise InputError(f"more than one Darknet weights file: {files}")
    return method or "maxabs", (files[0] if files else None)


def _check_onnx_qdq_options(args, wmethod) -> None:
    """--format onnx-qdq: an .onnx model, 8-bit, ORT's weight quantization (max-abs)."""
    if os.path.splitext(args.model)[1].lower() != ".onnx":
        raise InputError(f"{args.model}: --format onnx-qdq needs an .onnx model")
    given = [flag for flag, v in (("--config", args.config), ("--pot", args.pot),
                                  ("--weight-bits", args.weight_bits),
                                  ("--activation-bits", args.activation_bits),
                                  ("--first-last-bits", args.first_last_bits))
             if v not in (None, False)]
    if wmethod != "maxabs":
        given.append(f"--weights {wmethod}")
    if given:
        raise InputError(f"--format onnx-qdq takes hwsim's activation ranges and quantizes the "
                         f"weights as onnxruntime does (8-bit, max-abs); drop {', '.join(given)}")


def cmd_quantize(args) -> int:
    from .quantize import quantize
    wmethod, dk = _split_weights(args)
    if dk is not None and not os.path.splitext(args.model)[1].lower() == ".cfg":
        raise InputError(f"--weights {dk}: not a weight method ("
                         f"maxabs|percentile|mse|pot), and a weights file is only for a "
                         f"Darknet .cfg model")
    _check_out(args.out, "int8 model")
    fmt = None
    if args.table:
        _check_out(args.table, "calibration table")
        fmt = args.table_format or _TABLE_EXT.get(os.path.splitext(args.table)[1].lower())
        if fmt is None:
            raise InputError(f"{args.table}: give --table-format ({'|'.join(TABLE_FORMATS)})")
    if args.weights_h5:
        _check_out(args.weights_h5, "weight file")
    if args.batch_size < 1:
        raise InputError("--batch-size must be >= 1")
    if args.format == "onnx-qdq":
        _check_onnx_qdq_options(args, wmethod)
    graph = load_float_model(args.model, dk)
    factory, n_samples = calibration_source(
        args.calib, graph, mean=args.mean, std=args.std, scale=args.scale, size=args.size,
        channel_order=args.channel_order, limit=args.limit, batch_size=args.batch_size)
    kw = dict(weights=wmethod, percentile=args.percentile, input_method=args.input_method)
    if args.per_tensor:
        kw.update(per_channel=False, fc_per_channel=False)
    if args.weight_bits is not None:
        kw["weight_bits"] = args.weight_bits
    if args.activation_bits is not None:
        kw["activation_bits"] = args.activation_bits
    if args.first_last_bits is not None:
        kw["first_last_weight_bits"] = args.first_last_bits
        kw["first_last_activation_bits"] = args.first_last_bits
    if args.pot:
        kw["power_of_two"] = True
    bar, _ = _progress_bar(args.progress, "calibrating")
    passes_total = [None]

    def progress(pass_no, passes, done):
        if bar is None:
            return
        if passes_total[0] != pass_no:
            passes_total[0] = pass_no
            bar.reset(total=n_samples)
            bar.set_description(f"calibration pass {pass_no}/{passes}")
        bar.n = done
        bar.refresh()
    try:
        try:
            q = quantize(graph, factory, args.method, config=args.config,
                         batch_size=args.batch_size, progress=progress, **kw)
        except ValueError as e:  # option values checked by calibrate.py
            raise InputError(str(e)) from None
    finally:
        if bar is not None:
            bar.close()
    if args.format == "onnx-qdq":
        from .onnx_qdq import write_onnx_qdq
        write_onnx_qdq(q, args.model, args.out, per_channel=not args.per_tensor)
    else:
        q.write_tflite(args.out)
    if args.weights_h5:
        q.write_weights_h5(args.weights_h5)
    if args.table:
        q.write_table(args.table, fmt)
    _print_summary(q, args)
    return 0


def _print_summary(q, args) -> None:
    from collections import Counter
    g = q.graph
    ops = Counter(op.type for op in g.ops)
    methods = Counter(a.method for a in q.activations.values())
    counts = ", ".join(f"{k} {v}" for k, v in ops.most_common())
    print(f"quantized {args.model}: {len(g.ops)} ops ({counts})")
    print(f"calibration: {q.samples} samples, activations: {q.options.method} "
          f"({', '.join(f'{k} {v}' for k, v in methods.most_common())}), weights: "
          f"{q.options.weights}{' per-tensor' if not q.options.per_channel else ' per-channel'}"
          f", {q.options.weight_bits}-bit weights, {q.options.activation_bits}-bit activations"
          + _first_last_text(q)
          + (", power-of-two scales" if q.options.power_of_two else ""))
    if q.options.method == "auto":
        print(f"{'tensor':40s} {'chosen':>10s} " + " ".join(f"{m:>10s}" for m in
                                                           ("minmax", "percentile", "kl", "mse"))
              + "   (estimated SQNR, dB)")
        for a in sorted(q.activations.values(), key=lambda a: a.index):
            if not a.sqnr:
                continue
            print(f"{a.name[:40]:40s} {a.method:>10s} " +
                  " ".join(f"{a.sqnr.get(m, float('nan')):10.2f}" for m in
                           ("minmax", "percentile", "kl", "mse")))
    t = g.tensors[g.inputs[0]]
    print(f"input '{t.name}' {np.dtype(t.dtype)} {list(t.shape)}: scale "
          f"{float(t.quant.scales[0]):.9g}, zero point {int(t.quant.zero_points[0])}")
    _print_accumulator(q)
    if getattr(args, "format", "tflite") == "onnx-qdq":
        print("onnx-qdq: QDQ model by onnxruntime's quantizer with these ranges: uint8 "
              "activations (zero points + 128), int8 weights")
    for w in q.warnings:
        print(f"hwsim: warning: {w}", file=sys.stderr)
    outs = [args.out] + [p for p in (args.weights_h5, args.table) if p]
    print("wrote " + ", ".join(outs))


def _first_last_text(q) -> str:
    """' (first / last MAC layers: 8-bit weights, 8-bit activations)' when they differ."""
    from .quantize import _first_last_activation_bits
    o = q.options
    wb = o.first_last_weight_bits
    ab = _first_last_activation_bits(o)
    ab = ab if ab is not None and ab != int(o.activation_bits) else None
    parts = ([f"{wb}-bit weights"] if wb is not None and wb != o.weight_bits else []) + \
        ([f"{ab}-bit activations"] if ab is not None else [])
    return f" (first / last MAC layers: {', '.join(parts)})" if parts else ""


def _print_accumulator(q) -> None:
    """The MAC layers whose weight scales were raised to fit the accumulator, one line each
    (hwsim.quant.accum)."""
    from .accum import target_acc_bits
    o = q.options
    act = q.graph.tensors[q.graph.inputs[0]].dtype
    bits = target_acc_bits(o.accumulator_bits, o.accumulator_overflow, act)
    if bits is None:
        return
    adj = q.acc_adjustments
    print(f"accumulator: {o.accumulator_bits}-bit {o.accumulator_overflow}; every MAC layer's "
          f"partial sums provably fit {bits} bits"
          + (f"; {len(adj)} layer(s) got larger weight scales:" if adj else ""))
    for a in adj:
        print(f"  {a.line()}")


# ------------------------------------------------------------------------------ report
def report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("float_model", metavar="MODEL_FLOAT", help=".onnx or Darknet .cfg")
    p.add_argument("int8_model", metavar="MODEL_INT8", help="the quantized .tflite")
    p.add_argument("--calib", required=True, metavar="PATH",
                   help="evaluation data (.npy / folder), as for quantize")
    p.add_argument("--labels", metavar="Y.npy", default=None, help="integer labels for top-1")
    p.add_argument("--weights", metavar="FILE", default=None,
                   help="Darknet .weights of a .cfg float model")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--layer-samples", type=int, default=64,
                   help="samples used for the per-layer statistics (default 64)")
    _data_arguments(p)
    p.add_argument("--progress", dest="progress", action="store_true", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def cmd_report(args) -> int:
    from ..util import check_output_dir
    from .report import build_report, owned_report_files
    check_output_dir(args.out, owned_report_files, "an hwsim report")   # before the long work
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise HwsimError(f"{args.out}: cannot create the report (folder {parent} does not "
                         f"exist)")
    if not os.path.exists(args.int8_model):
        raise ModelError(f"{args.int8_model}: no such file")
    graph = load_float_model(args.float_model, args.weights)
    x = load_calibration(args.calib, graph, mean=args.mean, std=args.std, scale=args.scale,
                         size=args.size, channel_order=args.channel_order, limit=args.limit)
    labels = None
    if args.labels:
        if not os.path.isfile(args.labels):
            raise InputError(f"{args.labels}: no such file")
        from ..inputs import read_npy
        labels = read_npy(args.labels)
        if labels.dtype.kind not in "iu":
            raise InputError(f"{args.labels}: labels must be integers, got {labels.dtype}")
        labels = labels.reshape(-1)
        if args.limit:
            labels = labels[:args.limit]
        if len(labels) != len(x):
            raise InputError(f"{args.labels}: {len(labels)} labels for {len(x)} samples")
    bar, _ = _progress_bar(args.progress, "report")

    def progress(done, total):
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()
    try:
        rep = build_report(graph, args.int8_model, x, labels, args.out,
                           max_layer_samples=max(1, args.layer_samples), progress=progress)
    finally:
        if bar is not None:
            bar.close()
    worst = sorted((r for r in rep["layers"]), key=lambda r: r["sqnr_db"])[:3]
    print(f"report on {rep['samples']} samples ({rep['layer_samples']} for per-layer "
          f"statistics), {len(rep['layers'])} tensors compared")
    for r in worst:
        print(f"  lowest SQNR: {r['tensor']} ({r['op']}) {r['sqnr_db']:.1f} dB, cosine "
              f"{r['cosine']:.4f}")
    if "top1" in rep:
        t = rep["top1"]
        print(f"top-1: float {t['float'] * 100:.2f}%, int8 {t['int8'] * 100:.2f}% "
              f"({t['agreement'] * 100:.2f}% same predictions, {t['n']} samples)")
    print(f"wrote {os.path.join(args.out, 'index.html')}")
    return 0


# ------------------------------------------------------------------------------ wiring
def _command(name, help_, arguments, run, epilog):
    try:
        from ..command import Command
    except ImportError:  # pragma: no cover
        return None
    return Command(name, help_, arguments, run, epilog)


def add_quantize_parser(subparsers):
    """Add ``quantize`` to an argparse subparsers object; returns the parser."""
    p = subparsers.add_parser("quantize", help=QUANTIZE_HELP, description=QUANTIZE_HELP,
                              epilog=QUANTIZE_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    quantize_arguments(p)
    p.set_defaults(func=cmd_quantize, _command=_command(
        "quantize", QUANTIZE_HELP, quantize_arguments, cmd_quantize, QUANTIZE_EPILOG))
    return p


def add_report_parser(subparsers):
    """Add ``report`` to an argparse subparsers object; returns the parser."""
    p = subparsers.add_parser("report", help=REPORT_HELP, description=REPORT_HELP,
                              epilog=REPORT_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    report_arguments(p)
    p.set_defaults(func=cmd_report, _command=_command(
        "report", REPORT_HELP, report_arguments, cmd_report, REPORT_EPILOG))
    return p


def main(argv=None) -> int:
    """Stand-alone entry (``python -m hwsim.quant.commands quantize ...``), until the lead
    wires the commands into ``hwsim``."""
    ap = argparse.ArgumentParser(prog="hwsim")
    sub = ap.add_subparsers(dest="command", required=True)
    add_quantize_parser(sub)
    add_report_parser(sub)
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    try:
        return int(args.func(args) or 0)
    except HwsimError as e:
        print(f"hwsim: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
