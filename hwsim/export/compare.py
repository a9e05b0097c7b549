"""``hwsim compare GOLDEN OTHER``: where two runs first differ, element by element.

Each side is one of

* a trace file (``hwsim run --trace``, or a corpus ``expected.h5``): tensors by index and
  the accumulators of each MAC layer;
* an export folder (``hwsim export``; ``manifest.yaml``): the golden side is read from its
  ``vectors.h5``, the other side from its per-layer vector files (``layers/<idx>_<op>/
  output.hex`` ...), so an RTL bench that writes its results into a copy of the folder is
  compared on what it wrote;
* a folder without a manifest (OTHER only): the RTL's dumps, laid out like an export folder
  (``layers/<idx>_<op>/<vector>.hex``), read with the golden export's layouts; vectors that
  are not there are skipped;
* a memory file (``.hex .mem .coe .mif .bin``; OTHER only, GOLDEN an export folder): a dump
  of the whole activation memory (or of the accumulator memory, ``memory="accumulators"``),
  sliced into each tensor's region.

The vectors compared are those of the export's layers (or, for two traces, of the model's
layers when ``model`` is given, else every non-constant tensor by index plus the
accumulators, and all constants as one row). Values are compared as integers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..ir import HwsimError

MEMORY_EXTENSIONS = (".hex", ".mem", ".coe", ".mif", ".bin")
READ_ORDER = ("hex", "mem", "bin", "coe", "mif")  # which vector file is read when several exist


# -- the result ---------------------------------------------------------------------------------
@dataclass
class VectorDiff:
    """One compared vector (a row of the table)."""
    layer: int | None  # program layer index (None: a plain tensor)
    op: str
    kind: str  # input, input2, acc, output, tensor, constants
    tensor: int | None
    name: str
    nhwc: tuple[int, int, int, int]
    elements: int = 0
    mismatches: int = 0
    max_abs_diff: int = 0
    first: int | None = None  # flat (NHWC) index of the first mismatch
    golden_value: int | None = None
    other_value: int | None = None
    status: str = "compared"  # compared | missing | skipped | shape
    note: str = ""
    golden: np.ndarray | None = field(default=None, repr=False)
    other: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status in ("compared", "skipped") and self.mismatches == 0

    @property
    def coords(self) -> dict | None:
        """n/h/w/c of the first mismatch (None when the vector has no NHWC view)."""
        if self.first is None or int(np.prod(self.nhwc)) != self.elements:
            return None
        n, h, w, c = (int(v) for v in np.unravel_index(self.first, self.nhwc))
        return {"n": n, "h": h, "w": w, "c": c}

    @property
    def label(self) -> str:
        where = f"layer {self.layer} ({self.op})" if self.layer is not None else \
            (f"tensor {self.tensor}" if self.tensor is not None else self.kind)
        what = self.kind if self.layer is not None else ""
        name = f" '{self.name}'" if self.name and self.layer is None else ""
        return f"{where}{' ' + what if what else ''}{name}"


@dataclass
class CompareResult:
    golden: str
    other: str
    rows: list[VectorDiff]
    mode: str = ""

    @property
    def compared(self) -> list[VectorDiff]:
        return [r for r in self.rows if r.status != "skipped"]

    @property
    def bit_exact(self) -> bool:
        return bool(self.compared) and all(r.ok for r in self.rows)

    @property
    def first_mismatch(self) -> VectorDiff | None:
        return next((r for r in self.rows if not r.ok), None)

    def table(self, only_mismatches: bool = False) -> str:
        head = ["layer", "op", "tensor", "elements", "mismatches", "max|diff|", "note"]
        rows = []
        for r in self.rows:
            if only_mismatches and r.ok:
                continue
            rows.append(["-" if r.layer is None else str(r.layer), r.op or "-",
                         r.kind if r.layer is not None or r.kind == "constants"
                         else f"{r.tensor} {r.name}"[:40],
                         f"{r.elements:,}", f"{r.mismatches:,}" if r.status == "compared"
                         else "-", str(r.max_abs_diff) if r.status == "compared" else "-",
                         r.note or ("" if r.status == "compared" else r.status)])
        return _format_table(head, rows, right={3, 4, 5})

    def first_text(self) -> str:
        r = self.first_mismatch
        if r is None:
            return ""
        if r.status != "compared":
            return f"first difference: {r.label}: {r.note or r.status}"
        c = r.coords
        where = (f" (n={c['n']} h={c['h']} w={c['w']} c={c['c']} of NHWC {list(r.nhwc)})"
                 if c is not None else "")
        return (f"first mismatch: {r.label}, element {r.first}{where}: golden "
                f"{r.golden_value}, other {r.other_value}")

    def summary(self) -> str:
        comp = self.compared
        bad = [r for r in self.rows if not r.ok]
        skipped = len(self.rows) - len(comp)
        tail = f"; {skipped} skipped (present on one side only)" if skipped else ""
        if self.bit_exact:
            return (f"bit-exact: {len(comp)} vectors, "
                    f"{sum(r.elements for r in comp):,} elements{tail}")
        elems = sum(r.mismatches for r in comp)
        return (f"NOT bit-exact: {len(bad)} of {len(comp)} vectors differ "
                f"({elems:,} elements){tail}")

    def write_png(self, path: str | os.PathLike) -> str | None:
        """A per-channel mismatch map of the first differing vector (None if there is none)."""
        r = next((r for r in self.rows if r.status == "compared" and r.mismatches and
                  r.golden is not None), None)  # (the constants row holds no arrays)
        if r is None:
            return None
        write_mismatch_png(r, os.fspath(path))
        return os.fspath(path)


def _format_table(head, rows, right=frozenset()) -> str:
    widths = [max(len(str(x[c])) for x in [head] + rows) for c in range(len(head))]

    def line(cells):
        return "  ".join(str(v).rjust(widths[c]) if c in right else str(v).ljust(widths[c])
                         for c, v in enumerate(cells)).rstrip()

    return "\n".join([line(head)] + [line(r) for r in rows])


# -- what is compared ---------------------------------------------------------------------------
@dataclass
class Item:
    layer: int | None
    op: str
    kind: str
    tensor: int | None
    name: str
    nhwc: tuple[int, int, int, int]
    folder: str | None = None  # export layer folder ("layers/00_conv_2d")
    entry: dict | None = None  # the manifest's vector entry (layout, base, files)


_ENTRY_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


def _entry_error(path: str, where: str, e: Exception) -> HwsimError:
    """A manifest entry whose fields are missing or do not fit together (hand-edited or
    corrupt), named instead of ending in a traceback."""
    if isinstance(e, KeyError) and e.args:
        why = f"no key {str(e.args[0])[:60]!r}"
    else:
        why = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
    return HwsimError(f"{path}: {where}: its manifest entry cannot be used ({why})")


def _manifest_layers(man: dict, path: str):
    """``(layer entry, vector kind, vector entry)`` of every layer's vectors."""
    try:
        layers = list(man["layers"])
    except _ENTRY_ERRORS as e:
        raise _entry_error(path, "layers", e) from None
    for k, L in enumerate(layers):
        try:
            vectors = list(L["vectors"].items())
        except _ENTRY_ERRORS as e:
            raise _entry_error(path, f"layers[{k}]", e) from None
        for kind, v in vectors:
            yield k, L, kind, v


def _items_from_manifest(man: dict, path: str) -> list[Item]:
    items = []
    for k, L, kind, v in _manifest_layers(man, path):
        try:
            items.append(Item(int(L["index"]), str(L["op"]), str(kind), v.get("tensor"),
                              str(v.get("name", "")), tuple(int(d) for d in v["nhwc"]),
                              str(L["folder"]), v))
        except _ENTRY_ERRORS as e:
            raise _entry_error(path, f"layers[{k}] vector {kind!r}", e) from None
        if len(items[-1].nhwc) != 4:
            raise _entry_error(path, f"layers[{k}] vector {kind!r}",
                               ValueError(f"nhwc {list(items[-1].nhwc)} is not 4 numbers"))
    return items


def _view(shape) -> tuple[int, int, int, int]:
    """The NHWC view of a tensor; one row of elements for a rank above 4."""
    from ..hwif.memory import nhwc
    try:
        return nhwc(shape)
    except ValueError:
        return (1, 1, int(np.prod(shape)), 1)


def _items_from_program(program) -> list[Item]:
    items = []
    for layer in program.layers:
        for j, t in enumerate(layer.inputs):
            info = program.tensors[t]
            items.append(Item(layer.index, layer.op, "input" if j == 0 else f"input{j + 1}", t,
                              info.name, _view(info.shape)))
        if layer.has_acc:
            info = program.tensors[layer.outputs[0]]
            shape = info.shape if layer.op != "FULLY_CONNECTED" else (
                layer.params.batch, np.asarray(layer.params.weights).shape[0])
            items.append(Item(layer.index, layer.op, "acc", None, "", _view(shape)))
        for j, t in enumerate(layer.outputs):
            info = program.tensors[t]
            items.append(Item(layer.index, layer.op, "output" if j == 0 else f"output{j + 1}",
                              t, info.name, _view(info.shape)))
    return items


def _items_from_traces(g, o) -> list[Item]:
    """Two traces without a model: non-constant tensors by index, each MAC layer's
    accumulators right after its output tensor, and the constants as one row."""
    accs: dict[int, list[int]] = {}
    for li, a in g.accumulator_attrs.items():
        accs.setdefault(int(a.get("output_tensor", -1)), []).append(li)
    items = []
    kinds = {i: a.get("kind", "") for i, a in g.tensor_attrs.items()}
    order = sorted(g.tensors, key=lambda i: (kinds[i] != "input", i))
    for i in order:
        if kinds[i] == "constant":
            continue
        a = g.tensor_attrs[i]
        items.append(Item(None, "", "tensor", i, str(a.get("name", "")),
                          _view(np.shape(g.tensors[i]))))
        for li in accs.pop(i, []):
            items.append(Item(li, str(g.accumulator_attrs[li].get("op", "")), "acc", None,
                              "", _view(np.shape(g.accumulators[li]))))
    for li in sorted(x for v in accs.values() for x in v):
        items.append(Item(li, str(g.accumulator_attrs[li].get("op", "")), "acc", None, "",
                          _view(np.shape(g.accumulators[li]))))
    consts = [i for i in order if kinds[i] == "constant"]
    if consts and any(o.tensor_attrs.get(i, {}).get("kind") == "constant" for i in consts):
        items.append(Item(None, "", "constants", None, f"{len(consts)} tensors", (1, 1, 1, 1)))
    return items


# -- the two sides ------------------------------------------------------------------------------
class _Side:
    partial = False  # a partial dump: what is not there is skipped, not a difference
    manifest: dict | None = None

    def get(self, item: Item):
        raise NotImplementedError


class _TraceSide(_Side):
    def __init__(self, path: str):
        from ..trace_io import read_trace_h5
        self.path = path
        self.trace = read_trace_h5(path)

    def get(self, item: Item):
        t = self.trace
        if item.kind == "acc":
            if not t.accumulators:
                return "skipped"  # e.g. a corpus expected.h5: no accumulators at all
            return t.accumulators.get(item.layer)
        if item.kind == "constants":
            return None
        return t.tensors.get(item.tensor)


class _ExportSide(_Side):
    """An export folder: vectors.h5 (golden) or its per-layer files (other)."""

    def __init__(self, root: str, use_h5: bool, layouts: dict | None = None,
                 layouts_root: str = ""):
        from ..hwif.manifest import VECTORS_FILE, read_manifest
        from .manifest import read_vectors_h5
        self.root = root
        self.manifest = read_manifest(root) if layouts is None else None
        self.partial = layouts is not None
        self.h5 = read_vectors_h5(os.path.join(root, VECTORS_FILE)) if use_h5 else None
        self.entries = {}
        man = self.manifest if layouts is None else layouts
        path = os.path.join(root if layouts is None else layouts_root, "manifest.yaml")
        for k, L, kind, v in _manifest_layers(man, path):
            try:
                self.entries[(L["index"], kind)] = (L["folder"], v)
            except _ENTRY_ERRORS as e:
                raise _entry_error(path, f"layers[{k}]", e) from None

    def get(self, item: Item):
        hit = self.entries.get((item.layer, item.kind))
        if hit is None:
            return None
        folder, v = hit
        if self.h5 is not None:
            grp = self.h5["layers"].get(os.path.basename(folder), {})
            return grp.get(item.kind)
        return _read_vector_file(self.root, folder, item.kind, v)


def _read_vector_file(root: str, folder: str, kind: str, v: dict):
    from ..hwif.pack import unpack_words
    from .formats import read_memory
    lay = v.get("layout")
    if lay is None:
        return "skipped"  # a float host tensor: in vectors.h5 only, no vector file
    for fmt in READ_ORDER:
        path = os.path.join(root, folder, f"{kind}.{fmt}")
        if os.path.isfile(path):
            words = read_memory(path, lay["word_bits"], fmt, address=None)
            need = -(-int(v["elements"]) // lay["lanes_per_word"])
            if len(words) < need:
                raise HwsimError(f"{path}: {len(words)} words, the vector needs {need}")
            return unpack_words(words[:need], count=int(v["elements"]), check_padding=False,
                                **lay)
    return None


class _MemImageSide(_Side):
    """A dump of one whole memory (activations or accumulators), sliced by the manifest."""
    partial = True

    def __init__(self, path: str, golden_manifest: dict, memory: str, manifest_path: str = ""):
        from .formats import read_memory
        if memory not in ("activations", "accumulators"):
            raise HwsimError(f"--memory {memory!r}: choose activations or accumulators")
        self.memory = memory
        try:
            self.word_bits = golden_manifest["memories"][memory]["word_bits"]
            self.words = read_memory(path, self.word_bits, address=None)
        except HwsimError:
            raise
        except _ENTRY_ERRORS as e:
            raise _entry_error(manifest_path, f"memories.{memory}", e) from None

    def get(self, item: Item):
        from ..hwif.pack import unpack_words
        v = item.entry or {}
        if v.get("memory") != self.memory or v.get("base") is None:
            return "skipped"
        from ..hwif.plan import strided_index
        base, need = int(v["base"]), -(-int(v["elements"]) // v["layout"]["lanes_per_word"])
        at = strided_index(v)   # a CONCATENATION alias's input along C: pixels strided
        if at is not None:
            need = int(v["words"])
        if base + need > len(self.words):
            return None
        got = unpack_words(self.words[base:base + need], count=need * v["layout"][
            "lanes_per_word"] if at is not None else int(v["elements"]),
                           check_padding=False, **v["layout"])
        return got if at is None else got[at]


def _kind_of(path: str) -> str:
    if os.path.isdir(path):
        return "export" if os.path.isfile(os.path.join(path, "manifest.yaml")) else "dump"
    if not os.path.exists(path):
        raise HwsimError(f"{path}: no such file or folder")
    ext = os.path.splitext(path)[1].lower()
    if ext in MEMORY_EXTENSIONS:
        return "memory"
    if ext in (".h5", ".hdf5"):
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.basename(path) == "vectors.h5" and os.path.isfile(
                os.path.join(folder, "manifest.yaml")):
            return "export-h5"
        return "trace"
    raise HwsimError(f"{path}: not a trace (.h5), an export folder or a memory file "
                     f"({', '.join(MEMORY_EXTENSIONS)})")


def _get(side: _Side, it: Item, path: str):
    """``side.get(it)``; a manifest entry whose fields do not fit together (a hand-edited or
    corrupt manifest.yaml) is named instead of ending in a traceback."""
    try:
        return side.get(it)
    except HwsimError:
        raise
    except _ENTRY_ERRORS as e:
        raise _entry_error(path, f"layer {it.layer} ({it.op}) {it.kind}", e) from None


# -- comparing ------------------------------------------------------------------------------------
def _diff(item: Item, g, o) -> VectorDiff:
    d = VectorDiff(item.layer, item.op, item.kind, item.tensor, item.name, item.nhwc)
    g = np.asarray(g)
    d.elements = int(g.size)
    o = np.asarray(o)
    for side, v in (("GOLDEN", g), ("OTHER", o)):
        if v.dtype.kind not in "biuf":
            raise HwsimError(f"{d.label}: {side} holds {v.dtype}, not numbers")
    if o.size != g.size:
        d.status = "shape"
        d.note = f"shape differs: golden {list(g.shape)}, other {list(o.shape)}"
        return d
    if g.dtype.kind not in "iub" or o.dtype.kind not in "iub":
        gi, oi = g.reshape(-1), o.reshape(-1)
        bad = ~((gi == oi) | (np.isnan(gi) & np.isnan(oi)) if g.dtype.kind == "f" else
                (gi == oi))
        d.mismatches = int(np.count_nonzero(bad))
        if d.mismatches:
            d.first = int(np.flatnonzero(bad)[0])
            d.golden_value, d.other_value = gi[d.first].item(), oi[d.first].item()
            d.golden, d.other = gi, oi
        return d
    gi = g.reshape(-1).astype(np.int64)
    oi = o.reshape(-1).astype(np.int64)
    bad = gi != oi
    d.mismatches = int(np.count_nonzero(bad))
    if d.mismatches:
        d.first = int(np.flatnonzero(bad)[0])
        d.max_abs_diff = int(np.abs(gi[bad] - oi[bad]).max())
        d.golden_value, d.other_value = int(gi[d.first]), int(oi[d.first])
        d.golden, d.other = gi, oi
    return d


def _constants_row(item: Item, g, o) -> VectorDiff:
    d = VectorDiff(None, "", "constants", None, item.name, (1, 1, 1, 1))
    bad_tensors = []
    for i, a in g.tensor_attrs.items():
        if a.get("kind") != "constant":
            continue
        gv = np.asarray(g.tensors[i])
        d.elements += int(gv.size)
        ov = o.tensors.get(i)
        if ov is None or np.shape(ov) != gv.shape or not np.array_equal(gv, ov):
            bad_tensors.append(i)
            d.mismatches += int(gv.size if ov is None or np.shape(ov) != gv.shape
                                else np.count_nonzero(gv != ov))
    if bad_tensors:
        d.note = f"differ in tensors {bad_tensors[:8]}" + ("..." if len(bad_tensors) > 8 else "")
    return d


def compare(golden, other, *, model=None, memory: str = "activations",
            semantics: str = "tflite") -> CompareResult:
    """Compare ``other`` with ``golden`` vector by vector (see the module docstring).

    ``model``: a .tflite path giving the layer structure when both sides are traces.
    ``memory``: which memory a memory-file OTHER dumps (activations or accumulators).
    ``semantics``: how ``model`` is lowered (tflite | tflm; the layer structure is the same).
    Raises HwsimError when the two cannot be compared.
    """
    golden, other = os.fspath(golden), os.fspath(other)
    gk, ok = _kind_of(golden), _kind_of(other)
    if gk == "export-h5":
        golden, gk = os.path.dirname(os.path.abspath(golden)), "export"
    if ok == "export-h5":
        other, ok = os.path.dirname(os.path.abspath(other)), "export"
    if gk in ("dump", "memory"):
        raise HwsimError(f"{golden}: GOLDEN must be a trace (.h5) or an export folder "
                         f"(with manifest.yaml)")
    gside = _TraceSide(golden) if gk == "trace" else _ExportSide(golden, use_h5=True)
    if ok in ("dump", "memory") and gk != "export":
        raise HwsimError(f"{other}: a folder without manifest.yaml or a memory file can only be "
                         f"compared with an export folder as GOLDEN (it has the layouts)")
    if ok == "trace":
        oside = _TraceSide(other)
    elif ok == "export":
        oside = _ExportSide(other, use_h5=False)
    elif ok == "dump":
        oside = _ExportSide(other, use_h5=False, layouts=gside.manifest, layouts_root=golden)
    else:
        oside = _MemImageSide(other, gside.manifest, memory,
                              os.path.join(golden, "manifest.yaml"))

    if gside.manifest is not None:
        items = _items_from_manifest(gside.manifest, os.path.join(golden, "manifest.yaml"))
    elif oside.manifest is not None:
        items = _items_from_manifest(oside.manifest, os.path.join(other, "manifest.yaml"))
    elif model is not None:
        import hwsim
        items = _items_from_program(hwsim.load(model, semantics=semantics).program)
    else:
        items = _items_from_traces(gside.trace, oside.trace)

    # where an entry that cannot be used comes from: a manifest, GOLDEN's for dumps, or a trace
    gman = os.path.join(golden, "manifest.yaml")
    gname = gman if gk == "export" else golden
    oname = {"export": os.path.join(other, "manifest.yaml"), "dump": gman,
             "memory": gman}.get(ok, other)
    rows = []
    for it in items:
        if it.kind == "constants":
            rows.append(_constants_row(it, gside.trace, oside.trace))
            continue
        gv = _get(gside, it, gname)
        ov = _get(oside, it, oname)
        if gv is None or (isinstance(gv, str) and gv == "skipped"):
            rows.append(VectorDiff(it.layer, it.op, it.kind, it.tensor, it.name, it.nhwc,
                                   elements=int(np.prod(it.nhwc)), status="skipped",
                                   note="not in GOLDEN"))
            continue
        if ov is None or isinstance(ov, str):
            skipped = isinstance(ov, str) or oside.partial
            rows.append(VectorDiff(it.layer, it.op, it.kind, it.tensor, it.name, it.nhwc,
                                   elements=int(np.size(gv)),
                                   status="skipped" if skipped else "missing",
                                   note="not in OTHER" if skipped else "missing in OTHER"))
            continue
        rows.append(_diff(it, gv, ov))
    res = CompareResult(golden, other, rows, f"{gk} vs {ok}")
    if not res.compared:
        raise HwsimError(f"nothing to compare: none of GOLDEN's {len(rows)} vectors is in "
                         f"{other}")
    return res


# -- the PNG ------------------------------------------------------------------------------------
def write_mismatch_png(r: VectorDiff, path: str, max_columns: int = 1024) -> None:
    """Channels (rows) x positions n,h,w (columns, row-major) of vector ``r``: red where the
    element differs; a bar at the right shows each channel's mismatch count. Wide vectors are binned (a column is red when any element in it differs)."""
    from PIL import Image, ImageDraw

    from ..util import atomic_output_path
    size = int(np.size(r.golden))
    n, h, w, c = r.nhwc if int(np.prod(r.nhwc)) == size else (1, 1, size, 1)
    mask = (r.golden != r.other).reshape(n * h * w, c).T  # [C, positions]
    positions = mask.shape[1]
    bin_ = -(-positions // max_columns)
    if bin_ > 1:
        pad = bin_ * (-(-positions // bin_)) - positions
        m = np.concatenate([mask, np.zeros((c, pad), bool)], axis=1)
        mask = m.reshape(c, -1, bin_).any(axis=2)
    rows_, cols = mask.shape
    cw = max(1, min(16, 768 // max(cols, 1)))  # cell width and height in pixels
    ch_ = max(2, min(16, 640 // max(rows_, 1)))
    bar_w, gap, head_h, left = 120, 8, 34, 40  # pixels
    width = max(left + cols * cw + gap + bar_w + 10, 420)
    height = max(head_h + rows_ * ch_ + 10, head_h + 40)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    grid = np.where(mask[..., None], np.array([220, 40, 40], np.uint8),
                    np.array([228, 228, 228], np.uint8)).astype(np.uint8)
    grid = np.repeat(np.repeat(grid, ch_, axis=0), cw, axis=1)
    img.paste(Image.fromarray(np.ascontiguousarray(grid), "RGB"), (left, head_h))
    counts = (r.golden != r.other).reshape(n * h * w, c).sum(axis=0)
    x0 = left + cols * cw + gap
    top = max(int(counts.max()), 1)
    for k in range(c):
        if counts[k]:
            y = head_h + k * ch_
            d.rectangle([x0, y, x0 + max(2, int(bar_w * counts[k] / top)) - 1, y + ch_ - 1],
                        fill=(220, 40, 40))
            if ch_ >= 10:
                d.text((x0 + max(2, int(bar_w * counts[k] / top)) + 3, y - 1),
                       str(int(counts[k])), fill=(0, 0, 0))
    label = f"{r.label}: {r.mismatches:,} of {r.elements:,} differ"
    sub = (f"rows: channels 0..{c - 1}; columns: n,h,w positions"
           + (f" ({bin_} per column)" if bin_ > 1 else "") + "; bar: mismatches per channel")
    d.text((4, 2), label, fill=(0, 0, 0))
    d.text((4, 16), sub, fill=(80, 80, 80))
    for k in range(0, c, max(1, -(-12 // ch_))):
        d.text((2, head_h + k * ch_), str(k), fill=(80, 80, 80))
    try:
        with atomic_output_path(path, suffix=".png") as tmp:
            img.save(tmp, format="PNG")
    except OSError as e:
        raise HwsimError(f"{path}: cannot write ({e.strerror or e})") from None
