"""Quantization report: how far the integer model is from the float one, layer by layer.

    from hwsim.quant.report import build_report
    rep = build_report(float_graph, "model_int8.tflite", x, labels=y, out_dir="report")
    rep["layers"][k]["sqnr_db"], rep["top1"]      # also report/index.html, report.json, *.png

For every activation tensor of the integer model that has a float counterpart of the same
name (the quantizer keeps names): the integers hwsim computes (``hwsim.load(...).run`` with a
trace) are dequantized (``scale * (q - zero_point)``) and compared with the float executor's
values over the samples: SQNR ``10 log10(sum f^2 / sum (f - d)^2)`` in dB, cosine similarity
``f.d / (|f| |d|)``, and the fraction of float values outside the representable range
(clipped). Histograms (matplotlib, log scale) of each MAC layer's float weights with the
clipping thresholds ``+-127 * s_w`` (widest and narrowest channel) and of each activation with
the representable range ``[s (qmin - zp), s (qmax - zp)]``. With labels: top-1 of the float and
the integer model on every given sample. ``index.html`` is self-contained (images embedded as
base64 PNG).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os

import numpy as np

from ..ir import Graph, InputError
from .float_exec import FloatExecutor, to_graph_layout
from .quantize import dequantize, quantize_input

__all__ = ["build_report", "compare_layers"]

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


class _Acc:
    """Streaming sums for SQNR / cosine / clipping of one tensor."""

    def __init__(self):
        self.ff = self.ee = self.fd = self.dd = 0.0
        self.n = self.clipped = 0

    def add(self, f, d, lo, hi):
        f = np.asarray(f, np.float64).reshape(-1)
        d = np.asarray(d, np.float64).reshape(-1)
        e = f - d
        self.ff += float(f @ f)
        self.ee += float(e @ e)
        self.fd += float(f @ d)
        self.dd += float(d @ d)
        self.n += f.size
        self.clipped += int(np.count_nonzero((f < lo) | (f > hi)))

    def sqnr(self) -> float:
        if self.ee == 0:
            return math.inf
        if self.ff == 0:
            return -math.inf
        return 10 * math.log10(self.ff / self.ee)

    def cosine(self) -> float:
        den = math.sqrt(self.ff * self.dd)
        return 1.0 if den == 0 and self.ee == 0 else (self.fd / den if den else 0.0)


def _qrange(t, bounds: tuple[int, int] | None = None) -> tuple[float, float]:
    """The real range the tensor's integers can hold (its dtype, or ``bounds``)."""
    info = np.iinfo(np.dtype(t.dtype))
    lo, hi = bounds if bounds is not None else (info.min, info.max)
    s, z = float(t.quant.scales[0]), int(t.quant.zero_points[0])
    return s * (lo - z), s * (hi - z)


def _clamp_chain(graph: Graph, producer: dict, t: int):
    """(the op behind the b-bit clamps that produce ``t``, the b-bit range or None): MAXIMUM /
    MINIMUM against a constant scalar (hwsim.quant.act_bits) are looked through."""
    lo, hi = None, None
    op = producer.get(t)
    while op is not None and op.type in ("MAXIMUM", "MINIMUM") and len(op.inputs) == 2:
        c = graph.tensors[op.inputs[1]]
        if c.data is None or np.size(c.data) != 1:
            break
        v = int(np.asarray(c.data).reshape(-1)[0])
        if op.type == "MAXIMUM":
            lo = v if lo is None else max(lo, v)
        else:
            hi = v if hi is None else min(hi, v)
        op = producer.get(op.inputs[0])
    if lo is None and hi is None:
        return op, None
    # one bound left out (guaranteed by the op's activation): the b-bit range's other end
    return op, (-(hi + 1) if lo is None else lo, -lo - 1 if hi is None else hi)


def compare_layers(float_graph: Graph, int_graph: Graph, x: np.ndarray, net=None,
                   progress=None):
    """Per-tensor statistics (list of dicts) and the float / integer outputs for ``x``
    (a batch in the float graph's or the source model's layout)."""
    import hwsim  # noqa: F401
    from ..engine import Network
    from ..lower import lower
    if net is None:
        net = Network(lower(int_graph), int_graph)
    x = to_graph_layout(float_graph, np.asarray(x, np.float32))
    f_by_name = {t.name: t.index for t in float_graph.tensors if t.data is None}
    pairs = []
    for t in int_graph.tensors:
        if t.data is not None or t.quant is None:
            continue
        fi = f_by_name.get(t.name)
        if fi is None or tuple(float_graph.tensors[fi].shape[1:]) != tuple(t.shape[1:]):
            continue
        pairs.append((t.index, fi))
    accs = {ti: _Acc() for ti, _ in pairs}
    samples = {ti: [] for ti, _ in pairs}
    ex = FloatExecutor(float_graph, batch_invariant=True)
    f_outs, q_outs = [], []
    keep = {fi for _, fi in pairs}
    producer = {o: op for op in int_graph.ops for o in op.outputs}
    chains = {ti: _clamp_chain(int_graph, producer, ti) for ti, _ in pairs}
    ranges = {ti: _qrange(int_graph.tensors[ti], chains[ti][1]) for ti, _ in pairs}
    for i in range(len(x)):
        fo, acts = ex._run([x[i:i + 1]], keep)
        xq = quantize_input(int_graph, x[i:i + 1])
        res = net.run(xq, trace=True)
        f_outs.append(fo[0])
        q_outs.append(res.outputs[0])
        for ti, fi in pairs:
            d = dequantize(int_graph.tensors[ti], res.trace.tensors[ti])
            lo, hi = ranges[ti]
            accs[ti].add(acts[fi], d, lo, hi)
            if len(samples[ti]) < 8:
                samples[ti].append(np.asarray(acts[fi], np.float32).reshape(-1))
        if progress is not None:
            progress(i + 1, len(x))
    rows = []
    for ti, fi in pairs:
        t = int_graph.tensors[ti]
        op = chains[ti][0]   # the op behind a b-bit clamp
        a = accs[ti]
        lo, hi = ranges[ti]
        rows.append({"tensor": t.name, "index": ti, "op": op.type if op else "INPUT",
                     "op_index": op.index if op else -1, "dtype": str(np.dtype(t.dtype)),
                     "scale": float(t.quant.scales[0]), "zero_point": int(t.quant.zero_points[0]),
                     "lo": lo, "hi": hi, "sqnr_db": a.sqnr(), "cosine": a.cosine(),
                     "clipped": a.clipped / max(a.n, 1), "values": a.n,
                     "_sample": np.concatenate(samples[ti]) if samples[ti] else None})
    rows.sort(key=lambda r: (r["op_index"], r["index"]))
    return rows, np.concatenate(f_outs), np.concatenate(q_outs)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def _hist(values, lines, title, dashed=()):
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.2, 2.4))
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    lo = min([v.min() if v.size else 0.0] + [x for x in lines + list(dashed)])
    hi = max([v.max() if v.size else 0.0] + [x for x in lines + list(dashed)])
    if hi <= lo:
        hi = lo + 1
    ax.hist(v, bins=128, range=(lo, hi), color="#4a78b5", log=True)
    for x in lines:
        ax.axvline(x, color="#c0392b", lw=1)
    for x in dashed:
        ax.axvline(x, color="#c0392b", lw=1, ls="--")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    return _png(fig)


def _fmt(v, spec=".2f"):
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, spec)


def build_report(float_graph: Graph, int8_model, x, labels=None, out_dir=None, *,
                 max_layer_samples: int = 64, max_plots: int = 80, progress=None) -> dict:
    """Compare ``int8_model`` (a .tflite path or an integer Graph) with ``float_graph`` on
    ``x``; write ``out_dir``/index.html, report.json and the PNGs when ``out_dir`` is given.
    Returns the report as a dict."""
    import hwsim
    from ..engine import Network
    from ..lower import lower
    if isinstance(int8_model, Graph):
        ig = int8_model
        net = Network(lower(ig), ig)
        src = ig.source or "<graph>"
    else:
        src = os.fspath(int8_model)
        ig = hwsim.load_graph(src)
        net = hwsim.load(src)
    x = to_graph_layout(float_graph, np.asarray(x, np.float32))
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(x):
            raise InputError(f"{len(labels)} labels for {len(x)} samples")
    n_layer = min(len(x), max_layer_samples)
    rows, f_out, q_out = compare_layers(float_graph, ig, x[:n_layer], net, progress)
    report: dict = {"float_model": float_graph.source, "int8_model": src,
                    "samples": int(len(x)), "layer_samples": int(n_layer), "layers": []}
    # end-to-end top-1 on every sample
    if labels is not None:
        fo = FloatExecutor(float_graph, batch_invariant=False).run(x)[0]
        qo = [q_out] if n_layer else []
        for i in range(n_layer, len(x)):
            qo.append(net.run(quantize_input(ig, x[i:i + 1])).outputs[0])
        qo = np.concatenate(qo)
        fo2 = fo.reshape(len(x), -1)
        qo2 = qo.reshape(len(x), -1)
        report["top1"] = {"float": float((fo2.argmax(1) == labels).mean()),
                          "int8": float((qo2.argmax(1) == labels).mean()),
                          "agreement": float((fo2.argmax(1) == qo2.argmax(1)).mean()),
                          "n": int(len(x))}
    images: dict[str, bytes] = {}
    f_w = {}
    fprod = {o: op for op in float_graph.ops for o in op.outputs}
    for op in float_graph.ops:
        if op.type in MAC_OPS:
            f_w[float_graph.tensors[op.outputs[0]].name] = float_graph.tensors[op.inputs[1]].data
    plots = 0
    for r in rows:
        sample = r.pop("_sample")
        entry = dict(r)
        if plots < max_plots and sample is not None:
            key = f"act_{r['index']:04d}.png"
            images[key] = _hist(sample, [r["lo"], r["hi"]],
                                f"{r['tensor']} ({r['op']}) range [{r['lo']:.3g}, {r['hi']:.3g}]")
            entry["act_png"] = key
            plots += 1
        if r["op"] in MAC_OPS and r["tensor"] in f_w and plots < max_plots:
            op = ig.ops[r["op_index"]]
            wq = ig.tensors[op.inputs[1]].quant
            t = 127.0 * wq.scales.astype(np.float64)
            key = f"w_{r['index']:04d}.png"
            images[key] = _hist(f_w[r["tensor"]], [-t.max(), t.max()],
                                f"{r['tensor']} weights, T = {t.max():.3g}"
                                + (f" .. {t.min():.3g} ({len(t)} channels)" if len(t) > 1 else ""),
                                dashed=[-t.min(), t.min()] if len(t) > 1 else ())
            entry["weights_png"] = key
            entry["weight_channels"] = int(len(t))
            plots += 1
        report["layers"].append(entry)
    if out_dir is not None:
        _write(out_dir, report, images)
    return report


REPORT_FILES = ("index.html", "report.json")


def owned_report_files(folder: str) -> set[str] | None:
    """The files an earlier ``hwsim report`` wrote into ``folder`` (index.html, report.json and
    the PNGs report.json names), or None when ``folder`` holds no readable report.json."""
    path = os.path.join(folder, "report.json")
    try:
        if os.path.getsize(path) > 64 << 20:
            return None
        with open(path, encoding="utf-8") as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(rep, dict) or not isinstance(rep.get("layers"), list) \
            or "int8_model" not in rep:
        return None
    pngs = {v for L in rep["layers"] if isinstance(L, dict)
            for k, v in L.items() if k.endswith("_png") and isinstance(v, str)}
    return set(REPORT_FILES) | pngs


def _write(out_dir, report, images):
    from ..util import atomic_output_dir
    with atomic_output_dir(out_dir, owned_report_files, "an hwsim report") as tmp:
        for k, v in images.items():
            with open(os.path.join(tmp, k), "wb") as f:
                f.write(v)
        with open(os.path.join(tmp, "report.json"), "w") as f:
            json.dump(_jsonable(report), f, indent=1)
        with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as f:
            f.write(_html(report, images))


def _jsonable(o):
    """JSON-safe copy: non-finite floats as strings ("inf", "-inf", "nan")."""
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else str(float(o))
    if isinstance(o, np.integer):
        return int(o)
    return o


def _img(images, key):
    if not key:
        return ""
    b = base64.b64encode(images[key]).decode("ascii")
    return f'<img alt="{html.escape(key)}" src="data:image/png;base64,{b}">'


def _html(report, images) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>hwsim quantization "
             "report</title><style>body{font-family:sans-serif;margin:1.5em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}td.l,th.l{text-align:left}"
             "tr.bad td{background:#fde2e0}img{vertical-align:top;margin:2px}</style></head>"
             "<body>", "<h1>hwsim quantization report</h1>",
             f"<p>float model: <code>{e(str(report['float_model']))}</code><br>"
             f"integer model: <code>{e(str(report['int8_model']))}</code><br>"
             f"samples: {report['samples']} (per-layer statistics on "
             f"{report['layer_samples']})</p>"]
    if "top1" in report:
        t = report["top1"]
        parts.append(f"<h2>Top-1 on {t['n']} labelled samples</h2><table><tr><th>float</th>"
                     f"<th>int8</th><th>same prediction</th></tr><tr><td>{t['float'] * 100:.2f}%"
                     f"</td><td>{t['int8'] * 100:.2f}%</td><td>{t['agreement'] * 100:.2f}%"
                     f"</td></tr></table>")
    parts.append("<h2>Layers</h2><p>SQNR and cosine similarity of the dequantized integer "
                 "activations vs the float activations; clipped: fraction of float values "
                 "outside the representable range.</p><table><tr><th>op</th><th class=l>type"
                 "</th><th class=l>tensor</th><th>scale</th><th>zp</th><th>range</th>"
                 "<th>SQNR dB</th><th>cosine</th><th>clipped</th></tr>")
    for r in report["layers"]:
        bad = " class=bad" if (r["sqnr_db"] < 20) else ""
        parts.append(f"<tr{bad}><td>{r['op_index']}</td><td class=l>{e(r['op'])}</td>"
                     f"<td class=l>{e(r['tensor'])}</td><td>{r['scale']:.4g}</td>"
                     f"<td>{r['zero_point']}</td><td>[{r['lo']:.3g}, {r['hi']:.3g}]</td>"
                     f"<td>{_fmt(r['sqnr_db'], '.1f')}</td><td>{r['cosine']:.5f}</td>"
                     f"<td>{r['clipped'] * 100:.3f}%</td></tr>")
    parts.append("</table><h2>Histograms</h2><p>Red lines: clipping thresholds (weights: "
                 "widest channel solid, narrowest dashed; activations: representable range)."
                 "</p>")
    for r in report["layers"]:
        if "act_png" in r or "weights_png" in r:
            parts.append(f"<div><b>{e(r['tensor'])}</b> ({e(r['op'])})<br>"
                         f"{_img(images, r.get('weights_png'))}{_img(images, r.get('act_png'))}"
                         f"</div>")
    parts.append("</body></html>\n")
    return "".join(parts)
