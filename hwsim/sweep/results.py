"""results.csv (one row per job, appended as rows arrive) and summary.csv (per model x config).

results.csv keeps the order in which rows arrived: each row is appended, flushed and fsynced
before the next, so a crash loses at most the row being written (a partial last line is cut
off when the file is opened again). Two sweeps of the same spec give equal results.csv files
after sorting by (model, config, input) and dropping ``worker`` and ``seconds``
(:func:`comparable`). summary.csv is written whole at the end, in the spec's order, and holds
nothing that depends on where or when a job ran.
"""
from __future__ import annotations

import csv
import io
import os

from ..ir import HwsimError

COLUMNS = ("model", "config", "input", "acc_bits", "exact", "mismatches", "max_abs_diff",
           "cycles", "min_acc_bits", "top1", "ref_top1", "error", "worker", "seconds")
VOLATILE = ("worker", "seconds")  # where and when: the only columns that differ between runs
SUMMARY_COLUMNS = ("model", "config", "acc_bits", "inputs", "exact_inputs", "exact",
                   "mismatches", "max_abs_diff", "cycles", "min_acc_bits", "top1", "ref_top1",
                   "errors", "error")


def cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def csv_line(values) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([cell(v) for v in values])
    return buf.getvalue().encode("utf-8")


def as_strings(row: dict) -> dict:
    """A row as results.csv holds it (every column, strings)."""
    return {c: cell(row.get(c)) for c in COLUMNS}


def key_of(row: dict) -> tuple:
    return row["model"], row["config"], int(row["input"])


def comparable(rows: list[dict]) -> list[tuple]:
    """Rows as tuples without ``worker`` and ``seconds``, sorted by (model, config, input):
    what must be equal however the sweep ran."""
    keep = [c for c in COLUMNS if c not in VOLATILE]
    return sorted((tuple(cell(r.get(c)) for c in keep) for r in rows),
                  key=lambda t: (t[0], t[1], int(t[2])))


def parse_results(data: bytes, path: str) -> list[dict]:
    """The rows of results.csv's bytes (complete lines only: a partial last line is a row
    cut short by a crash and is left out)."""
    data = data[:data.rfind(b"\n") + 1]
    if not data:
        return []
    try:
        lines = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as e:
        raise HwsimError(f"{path}: not a results file of hwsim sweep ({e})") from None
    if tuple(lines[0]) != COLUMNS:
        raise HwsimError(f"{path}: its columns ({','.join(lines[0])[:120]}) are not "
                         f"this hwsim's ({','.join(COLUMNS)}); give a new --out")
    rows = []
    for n, values in enumerate(lines[1:], start=2):
        if len(values) != len(COLUMNS):
            raise HwsimError(f"{path}:{n}: {len(values)} fields, expected {len(COLUMNS)} "
                             f"(edited?); fix or delete the line")
        row = dict(zip(COLUMNS, values))
        try:
            int(row["input"])
        except ValueError:
            raise HwsimError(f"{path}:{n}: input {row['input']!r} is not an index") from None
        rows.append(row)
    return rows


def read_results(path: str) -> list[dict]:
    """The rows of results.csv, read only."""
    try:
        with open(path, "rb") as f:
            return parse_results(f.read(), path)
    except OSError as e:
        raise HwsimError(f"{path}: cannot read ({e.strerror or e})") from None


class ResultsFile:
    """results.csv opened for appending; ``rows`` holds what it already held."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._f = open(path, "a+b")
        except OSError as e:
            raise HwsimError(f"{path}: cannot open for writing ({e.strerror or e})") from None
        try:
            self.rows = self._read()
            if not self.rows and self._f.tell() == 0:
                self._append(csv_line(COLUMNS))
        except BaseException:
            self._f.close()
            raise

    def _read(self) -> list[dict]:
        f = self._f
        f.seek(0)
        data = f.read()
        if data and not data.endswith(b"\n"):  # a row cut short by a crash: drop it
            cut = data.rfind(b"\n") + 1
            f.truncate(cut)
            data = data[:cut]
        f.seek(0, os.SEEK_END)
        return parse_results(data, self.path)

    def _append(self, data: bytes) -> None:
        try:
            self._f.write(data)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            raise HwsimError(f"{self.path}: cannot write ({e.strerror or e})") from None

    def write(self, row: dict) -> None:
        self._append(csv_line(row.get(c) for c in COLUMNS))

    def close(self) -> None:
        self._f.close()


def _num(v: str):
    return None if v in ("", None) else int(v)


def summarize(rows: list[dict], order: list[tuple[str, str]],
              acc_bits: dict[str, int | None]) -> list[dict]:
    """One summary row per (model, config) of ``order`` from the result rows (as read from
    results.csv: strings). Only the last row of a (model, config, input) counts."""
    latest = {}
    for r in rows:
        latest[key_of(r)] = r
    groups: dict[tuple, list[dict]] = {k: [] for k in order}
    for key, r in latest.items():
        if key[:2] in groups:
            groups[key[:2]].append(r)
    out = []
    for (model, config) in order:
        rs = sorted(groups[(model, config)], key=key_of)
        ok = [r for r in rs if not r["error"]]
        errs = [r for r in rs if r["error"]]
        s = {"model": model, "config": config, "acc_bits": acc_bits.get(config),
             "inputs": len(ok), "errors": len(errs), "error": errs[0]["error"] if errs else ""}
        if ok:
            exact = sum(r["exact"] == "true" for r in ok)
            s.update(exact_inputs=exact, exact=exact == len(ok) and not errs,
                     mismatches=sum(int(r["mismatches"]) for r in ok),
                     max_abs_diff=max(int(r["max_abs_diff"]) for r in ok),
                     cycles=int(ok[0]["cycles"]))
            bits = [_num(r["min_acc_bits"]) for r in ok if r["min_acc_bits"]]
            s["min_acc_bits"] = max(bits) if bits else None
            for c in ("top1", "ref_top1"):
                vals = [int(r[c]) for r in ok if r[c] != ""]
                s[c] = f"{sum(vals) / len(vals):.4f}" if vals else None
        out.append(s)
    return out


def summary_csv(summary: list[dict]) -> bytes:
    return csv_line(SUMMARY_COLUMNS) + b"".join(
        csv_line(s.get(c) for c in SUMMARY_COLUMNS) for s in summary)
