"""report.html: the summary table and three plots, in one self-contained file.

Plots (matplotlib, PNGs embedded as base64): accuracy against accumulator bits (top-1 with
dataset labels, else the fraction of inputs on which the hardware's output equals the
engine's), mismatching output elements per input against accumulator bits, and cycles per
config. A line joins the configs that differ only in ``accumulator.bits`` (one line per model
and per base config with its other overrides). The page depends only on the spec and the
summary, so it is the same however the sweep ran.
"""
from __future__ import annotations

import base64
import html
import io
import os

from ..util import atomic_write_bytes
from .results import SUMMARY_COLUMNS
from .spec import format_value


def _series(spec, summary) -> dict[str, list[dict]]:
    """{line label: summary rows sorted by acc_bits} (rows with results only)."""
    strip = {v.label: " ".join([v.base] + [f"{k}={format_value(val)}" for k, val in v.overrides
                                          if k != "accumulator.bits"])
             for v in spec.variants}
    lines: dict[str, list[dict]] = {}
    for s in summary:
        if s.get("inputs") and s.get("acc_bits") is not None:
            name = f"{s['model']}: {strip.get(s['config'], s['config'])}"
            lines.setdefault(name, []).append(s)
    return {k: sorted(v, key=lambda s: s["acc_bits"]) for k, v in lines.items()}


def _accuracy(s: dict, labelled: bool) -> float:
    if labelled and s.get("top1") is not None:
        return float(s["top1"])
    return s["exact_inputs"] / s["inputs"]


def _png(fig) -> str:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(spec, summary) -> list[tuple[str, str]]:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    labelled = spec.inputs.y is not None
    series = _series(spec, summary)
    out = []
    if series:
        for what in ("accuracy", "mismatches"):
            fig, ax = plt.subplots(figsize=(6.4, 3.6))
            for name, rows in series.items():
                xs = [s["acc_bits"] for s in rows]
                ys = ([_accuracy(s, labelled) for s in rows] if what == "accuracy" else
                      [s["mismatches"] / s["inputs"] for s in rows])
                ax.plot(xs, ys, marker="o", label=name)
            ax.set_xlabel("accumulator bits")
            if what == "accuracy":
                ax.set_ylabel("top-1 accuracy" if labelled else "inputs exact (fraction)")
                ax.set_ylim(-0.05, 1.05)
                title = ("Top-1 accuracy of the hardware model" if labelled else
                         "Hardware output equal to the engine's")
            else:
                ax.set_ylabel("mismatching output elements / input")
                ax.set_yscale("symlog")
                title = "Output elements that differ from the engine's"
            ax.set_title(title, fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
            out.append((title, _png(fig)))
    with_cycles = [s for s in summary if s.get("cycles") is not None]
    if with_cycles:
        fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.28 * len(with_cycles)))
        labels = [f"{s['model']}: {s['config']}" for s in with_cycles]
        ax.barh(range(len(labels)), [s["cycles"] for s in with_cycles], color="#4a78b5")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("cycles (array model, one inference)")
        ax.set_title("Cycles per config", fontsize=10)
        out.append(("Cycles per config", _png(fig)))
    return out


def _table(summary) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in SUMMARY_COLUMNS)
    body = []
    for s in summary:
        cells = []
        for c in SUMMARY_COLUMNS:
            v = s.get(c)
            v = "" if v is None else ("yes" if v is True else "no" if v is False else str(v))
            cls = ' class="bad"' if (c == "exact" and v == "no") or (c == "error" and v) else ""
            cells.append(f"<td{cls}>{html.escape(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


CSS = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;"
       "font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
       "td.bad{color:#b03030}img{display:block;margin:1em 0}code{background:#f4f4f4}")


def build_html(spec, summary) -> str:
    try:
        plots = "".join(f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" '
                        f'src="data:image/png;base64,{b}">' for t, b in _plots(spec, summary))
    except ImportError:
        plots = "<p>Plots need matplotlib: <code>pip install 'hwsim[cluster]'</code>.</p>"
    inputs = (f"{spec.inputs.count} seeded random inputs per model" if spec.inputs.kind ==
              "random" else f"{spec.inputs.count} samples of {spec.inputs.label}" +
              (" (labelled: top-1 reported)" if spec.inputs.y is not None else ""))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>hwsim sweep</title>"
            f"<style>{CSS}</style></head><body><h1>hwsim sweep: "
            f"{html.escape(os.path.basename(spec.path))}</h1>"
            f"<p>{len(spec.models)} model(s) x {len(spec.variants)} config(s) x {inputs}; "
            "legalization <code>approx</code>. <b>exact</b>: the hardware dataflow model's "
            "outputs equal the engine's on every input. Rows per input: results.csv.</p>"
            f"{_table(summary)}{plots}</body></html>\n")


def write_report(path: str, spec, summary) -> None:
    atomic_write_bytes(path, build_html(spec, summary).encode("utf-8"))
