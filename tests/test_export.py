"""hwsim export: layouts re-derived independently, a Python model of the RTL that runs the
network from the exported memory images and descriptors alone, round trips of every file,
determinism, atomicity and the error paths."""
from __future__ import annotations

import math
import os
import shutil
from fractions import Fraction

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import hwsim
from arith_bigint_ref import (mbqm_double, quantize_multiplier, requant_mult_shift,
                              requant_shift_only)
from hwsim import examples
from hwsim.export import commands, exporter
from hwsim.export.exporter import export, rtl_example_graph
from hwsim.export.formats import FORMATS, read_memory
from hwsim.export.layout import (DESCRIPTOR_FIELDS, decode_descriptor, decode_requant_word,
                                 descriptor_words, encode_requant_word, nhwc)
from hwsim.export.pack import unpack_words
from hwsim.frontends.tflite_writer import serialize_tflite
from hwsim.ir import HwsimError

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")
DM2_MODEL = os.path.join(CORPUS, "synthetic", "syn_depthwise_dm2_avgpool_same")

CUSTOM_LAYOUT_YAML = """\
name: custom-layout
description: tflite arithmetic, unusual memory layouts (wide weight words, msb_first, alignment)
array: {rows: 4, cols: 4, dataflow: output_stationary}
accumulator: {bits: 32, overflow: wrap, bias_first: true}
requant: {scheme: tflite_double, per_channel: true, zero_point: true}
memories:
  weights:     {word_bits: 128, depth: 8192, lanes: 16, lane_order: lsb_first, align_words: 2}
  bias:        {word_bits: 32, depth: 1024, lanes: 1, align_words: 4}
  requant:     {word_bits: 64, depth: 1024, lanes: 1, align_words: 1}
  activations: {word_bits: 64, depth: 65536, lanes: 4, lane_order: msb_first, align_words: 8}
"""


# --------------------------------------------------------------------------------------------
# Fixtures: exports made once per module
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def rtl_model(work):
    """The example network without its SOFTMAX, and its input, as files."""
    path = work / "example_rtl.tflite"
    path.write_bytes(serialize_tflite(rtl_example_graph()))
    npy = work / "example_input.npy"
    np.save(npy, examples.example_input())
    return str(path), str(npy)


@pytest.fixture(scope="module")
def rtl_export(work, rtl_model):
    """Every format, the tflite-int8 preset."""
    model, npy = rtl_model
    return export(model, "tflite-int8", [npy], work / "out_all")


@pytest.fixture(scope="module")
def custom_export(work, rtl_model):
    model, npy = rtl_model
    cfg = work / "custom.yaml"
    cfg.write_text(CUSTOM_LAYOUT_YAML)
    return export(model, str(cfg), np.load(npy), work / "out_custom", formats="hex,bin")


@pytest.fixture(scope="module")
def narrow_export(work, rtl_model):
    """narrow-acc-24: mult_shift requantization (scheme 3), 24-bit saturating accumulator,
    weight-stationary; not TFLite's integers, so only with --legalize approx."""
    return export(rtl_model[0], "narrow-acc-24", [rtl_model[1]], work / "out_narrow",
                  legalize="approx", formats="hex")


@pytest.fixture(scope="module")
def shift_only_export(work, rtl_model):
    return export(rtl_model[0], "shift-only-int8", [rtl_model[1]], work / "out_shift",
                  legalize="approx", formats="hex")


@pytest.fixture(scope="module")
def host_tail_export(work):
    model = examples.write_example(str(work / "example_cnn.tflite"))
    return export(model, "tflite-int8", examples.example_input(), work / "out_host",
                  host_tail=True, formats="hex")


@pytest.fixture(scope="module")
def dm2_export(work):
    if not os.path.isdir(DM2_MODEL):
        pytest.skip(f"the test corpus is not at {CORPUS} (set HWSIM_CORPUS); the depth-multiplier-2 "
                    f"export check did not run")
    return export(os.path.join(DM2_MODEL, "model.tflite"), "tflite-int8",
                  [os.path.join(DM2_MODEL, "input_0.npy")], work / "out_dm2", formats="mem")


def engine_trace(model, x):
    return hwsim.load(model).run(x, trace=True).trace


# --------------------------------------------------------------------------------------------
# Independent decoding (bit by bit; no hwsim.export code)
# --------------------------------------------------------------------------------------------
def read_hex_words(path) -> list[int]:
    return [int(line, 16) for line in open(path).read().split()]


def lanes_of(word: int, lanes: int, elem_bits: int, order: str) -> list[int]:
    out = []
    for k in range(lanes):
        pos = k if order == "lsb_first" else lanes - 1 - k
        v = (word >> (pos * elem_bits)) & ((1 << elem_bits) - 1)
        out.append(v - (1 << elem_bits) if v >> (elem_bits - 1) else v)
    return out


def s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


class Images:
    """The whole-network images of an export, read with nothing but int(line, 16)."""

    def __init__(self, folder, man):
        fmt_dir = os.path.join(folder, "mem")
        self.desc = read_hex_words(os.path.join(fmt_dir, "descriptors.hex"))
        self.wgt = read_hex_words(os.path.join(fmt_dir, "weights.hex"))
        self.bias = [s32(w) for w in read_hex_words(os.path.join(fmt_dir, "bias.hex"))]
        self.rq = read_hex_words(os.path.join(fmt_dir, "requant.hex"))
        self.act = read_hex_words(os.path.join(fmt_dir, "act_init.hex"))
        self.act_final = read_hex_words(os.path.join(fmt_dir, "act_final.hex"))
        self.acc = [s32(w) for w in read_hex_words(os.path.join(fmt_dir, "acc.hex"))]
        m = man["memories"]
        self.w_lanes, self.w_order = m["weights"]["lanes"], m["weights"]["lane_order"]
        self.a_lanes, self.a_order = m["activations"]["lanes"], m["activations"]["lane_order"]

    def descriptors(self) -> list[dict]:
        out = []
        for k in range(0, len(self.desc), 64):
            words = self.desc[k:k + 64]
            f = {name: s32(words[i]) for i, name in enumerate(DESCRIPTOR_FIELDS)}
            if f["op"] == 0:
                assert not any(words), "the end descriptor is all zero"
                return out
            assert not any(words[len(DESCRIPTOR_FIELDS):]), "reserved words are 0"
            out.append(f)
        raise AssertionError("no end descriptor")

    def read_act(self, base: int, n: int) -> np.ndarray:
        vals = []
        for w in self.act[base:base + -(-n // self.a_lanes)]:
            vals += lanes_of(w, self.a_lanes, 8, self.a_order)
        return np.array(vals[:n], dtype=np.int64)

    def write_act(self, base: int, values) -> None:
        vals = [int(v) for v in np.asarray(values).reshape(-1)]
        for j in range(0, len(vals), self.a_lanes):
            word = 0
            for k, v in enumerate(vals[j:j + self.a_lanes]):
                pos = k if self.a_order == "lsb_first" else self.a_lanes - 1 - k
                word |= (v & 0xFF) << (8 * pos)
            addr = base + j // self.a_lanes
            if addr >= len(self.act):
                self.act += [0] * (addr + 1 - len(self.act))
            self.act[addr] = word

    def weights(self, f: dict, cout: int, k: int) -> np.ndarray:
        wpc = f["words_per_channel"]
        assert wpc == -(-k // self.w_lanes)
        rows = []
        for oc in range(cout):
            vals = []
            for w in self.wgt[f["w_base"] + oc * wpc: f["w_base"] + (oc + 1) * wpc]:
                vals += lanes_of(w, self.w_lanes, 8, self.w_order)
            assert not any(vals[k:]), "padding lanes are zero"
            rows.append(vals[:k])
        return np.array(rows, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# A Python model of the RTL: runs every descriptor from the memory images alone
# --------------------------------------------------------------------------------------------
def double_round_doc(acc: int, mant: int, exp: int) -> int:
    """Scheme 5 exactly as accel-interface.md states it: P = |acc| * M rounded to 53
    significant bits (half to even), scaled by 2^E, rounded half away from zero, sign back."""
    p = abs(acc) * mant
    s = max(p.bit_length() - 53, 0)
    if s:
        q, r = divmod(p, 1 << s)
        half = 1 << (s - 1)
        if r > half or (r == half and q & 1):
            q += 1
        p = q << s
    v = Fraction(p) * Fraction(2) ** exp
    res = math.floor(v + Fraction(1, 2))
    return -res if acc < 0 else res


def requant(acc: int, word: int, scheme: int, rounding: int) -> int:
    """The requant unit on one accumulator, from the 64-bit word (accel-interface.md)."""
    if scheme == 0:
        return mbqm_double(acc, s32(word), lanes_of(word >> 32, 1, 8, "lsb_first")[0])
    if scheme == 3:
        return requant_mult_shift(acc, s32(word), (word >> 32) & 0xFF, rounding)
    if scheme == 4:
        return requant_shift_only(acc, (word >> 32) & 0xFF, rounding)
    if scheme == 5:
        e = (word >> 53) & 0x7FF
        return double_round_doc(acc, word & ((1 << 53) - 1), e - 2048 if e >> 10 else e)
    raise AssertionError(f"scheme {scheme} not modelled here")


def _geometry(f):
    return (f["batch"], f["in_h"], f["in_w"], f["in_c"], f["out_h"], f["out_w"], f["out_c"],
            f["kh"], f["kw"], f["stride_h"], f["stride_w"], f["dilation_h"], f["dilation_w"],
            f["pad_top"], f["pad_left"])


def _taps(f, x, fill):
    """Yield (ky, kx, patch[N, OH, OW, C], valid[OH, OW]) for every kernel tap."""
    n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl = _geometry(f)
    for ky in range(kh):
        for kx in range(kw):
            ys = np.arange(oh) * sh + ky * dh - pt
            xs = np.arange(ow) * sw + kx * dw - pl
            vy, vx = (ys >= 0) & (ys < ih), (xs >= 0) & (xs < iw)
            patch = np.full((n, oh, ow, ic), fill, dtype=np.int64)
            sub = x[:, np.clip(ys, 0, ih - 1)][:, :, np.clip(xs, 0, iw - 1)]
            valid = vy[:, None] & vx[None, :]
            patch[:, valid] = sub[:, valid]
            yield ky, kx, patch, valid


def run_descriptor(img: Images, f: dict, acc_bits: int = 32) -> np.ndarray | None:
    """Execute one descriptor on ``img``; returns the accumulators of a MAC layer."""
    n, ih, iw, ic, oh, ow, oc = _geometry(f)[:7]
    op = f["op"]
    acc = None
    if op in (1, 2, 3):
        if op == 3:
            k = ic
            x = img.read_act(f["in_base"], n * k).reshape(n, k) + f["input_offset"]
            w = img.weights(f, oc, k)
            acc = x @ w.T
        else:
            x = img.read_act(f["in_base"], n * ih * iw * ic).reshape(n, ih, iw, ic) \
                + f["input_offset"]
            k = f["kh"] * f["kw"] * (ic if op == 1 else 1)
            w = img.weights(f, oc, k).reshape(oc, f["kh"], f["kw"], -1)
            acc = np.zeros((n, oh, ow, oc), dtype=np.int64)
            for ky, kx, patch, _ in _taps(f, x, 0):  # padding taps contribute 0
                if op == 1:
                    acc += np.einsum("nhwc,oc->nhwo", patch, w[:, ky, kx, :])
                else:
                    dm = f["depth_multiplier"]
                    src = np.repeat(patch, dm, axis=3)  # oc = ic * dm + m
                    acc += src * w[:, ky, kx, 0]
        bias = np.array(img.bias[f["b_base"]:f["b_base"] + oc], dtype=np.int64)
        assert f["has_bias"] or not bias.any()
        acc = acc + bias
        assert acc.min() >= -2**(acc_bits - 1) and acc.max() < 2**(acc_bits - 1), \
            "an accumulator overflows: this model has no partial-sum order"
        flat = acc.reshape(-1, oc)
        out = np.empty(flat.shape, dtype=np.int64)
        for c in range(oc):
            word = img.rq[f["rq_base"] + (c if f["per_channel"] else 0)]
            out[:, c] = [requant(int(a), word, f["requant_scheme"], f["rounding"])
                         for a in flat[:, c]]
        out = np.clip(out + f["output_offset"], f["act_min"], f["act_max"])
    elif op in (4, 5):
        x = img.read_act(f["in_base"], n * ih * iw * ic).reshape(n, ih, iw, ic)
        if op == 4:
            out = np.full((n, oh, ow, ic), -(1 << 40), dtype=np.int64)
            for _, _, patch, valid in _taps(f, x, -(1 << 40)):
                out = np.maximum(out, patch)
        else:
            total = np.zeros((n, oh, ow, ic), dtype=np.int64)
            count = np.zeros((oh, ow), dtype=np.int64)
            for _, _, patch, valid in _taps(f, x, 0):
                total += patch
                count += valid
            cnt = count[None, :, :, None]
            half = cnt // 2
            # C integer division (truncation) of acc +- n/2
            num = np.where(total > 0, total + half, total - half)
            out = np.sign(num) * (np.abs(num) // cnt)
        out = np.clip(out, f["act_min"], f["act_max"])
    elif op == 6:
        size = n * ih * iw * ic
        a = img.read_act(f["in_base"], size) + f["input_offset"]
        b = img.read_act(f["in2_base"], size) + f["input2_offset"]
        word = img.rq[f["rq_base"]]
        m_out, s_out = s32(word), lanes_of(word >> 32, 1, 8, "lsb_first")[0]
        ls = f["add_left_shift"]
        out = np.array([
            mbqm_double(mbqm_double(int(u) << ls, f["add_in1_multiplier"], f["add_in1_shift"])
                        + mbqm_double(int(v) << ls, f["add_in2_multiplier"],
                                      f["add_in2_shift"]), m_out, s_out)
            for u, v in zip(a, b)], dtype=np.int64)
        out = np.clip(out + f["output_offset"], f["act_min"], f["act_max"])
    else:
        raise AssertionError(f"unknown op {op}")
    img.write_act(f["out_base"], out)
    return acc


def run_images(folder, man):
    img = Images(folder, man)
    accs = {}
    for k, f in enumerate(img.descriptors()):
        acc = run_descriptor(img, f, man["config"]["accumulator"]["bits"])
        if acc is not None:
            accs[k] = (f["acc_base"], acc.reshape(-1))
    return img, accs


@pytest.mark.parametrize("which", ["rtl_export", "custom_export", "narrow_export",
                                   "shift_only_export"])
def test_python_rtl_model_reproduces_every_golden_from_the_images_alone(which, request):
    """Run the network from mem/*.hex and the descriptors only (no manifest, no h5): the
    activation memory must end as act_final.hex and every MAC layer's accumulators must
    equal acc.hex at acc_base. This checks the layouts, the descriptor fields and the
    requant words (schemes 0, 3, 4, 5) against accel-interface.md as a whole."""
    res = request.getfixturevalue(which)
    img, accs = run_images(res.out_dir, res.manifest)
    assert img.act[:len(img.act_final)] == img.act_final
    for _, (base, acc) in accs.items():
        assert img.acc[base:base + acc.size] == acc.tolist()
    assert len(accs) == sum(1 for L in res.manifest["layers"] if L["code"] in (1, 2, 3))


def test_python_rtl_model_on_depthwise_multiplier_2_and_average_pool(dm2_export, tmp_path):
    """The corpus model with depth_multiplier 2 and a SAME average pool (exported as .mem
    only): convert its images to .hex with the reader, then run the Python RTL model."""
    out = tmp_path / "dm2"
    shutil.copytree(dm2_export.out_dir, out)
    man = dm2_export.manifest
    for name, im in man["images"].items():
        wb = man["memories"][im["memory"]]["word_bits"]
        words = read_memory(out / im["files"]["mem"], wb)
        (out / "mem" / f"{name}.hex").write_text("".join(f"{w:x}\n" for w in words))
    ops = {L["op"] for L in man["layers"]}
    assert {"DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"} <= ops
    assert any(L["fields"].get("depth_multiplier") == 2 for L in man["layers"])
    img, accs = run_images(out, man)
    assert img.act[:len(img.act_final)] == img.act_final
    for _, (base, acc) in accs.items():
        assert img.acc[base:base + acc.size] == acc.tolist()


# --------------------------------------------------------------------------------------------
# Layouts against the model itself
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["rtl_export", "custom_export"])
def test_weights_and_bias_images_hold_the_models_tensors_per_channel(which, request, rtl_model):
    res = request.getfixturevalue(which)
    man = res.manifest
    img = Images(res.out_dir, man)
    g = hwsim.load_graph(rtl_model[0])
    descs = img.descriptors()
    mac = [op for op in g.ops if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                            "FULLY_CONNECTED")]
    dmac = [f for f in descs if f["op"] in (1, 2, 3)]
    assert len(mac) == len(dmac) == 7
    for op, f in zip(mac, dmac):
        w = g.tensors[op.inputs[1]].data.astype(np.int64)
        if op.type == "CONV_2D":  # OHWI: (ky, kx, ic) per output channel
            per_oc = w.reshape(w.shape[0], -1)
        elif op.type == "DEPTHWISE_CONV_2D":  # [1, KH, KW, C]: (ky, kx) of channel oc
            per_oc = np.stack([w[0, :, :, oc].reshape(-1) for oc in range(w.shape[3])])
        else:
            per_oc = w
        cout, k = per_oc.shape
        assert np.array_equal(img.weights(f, cout, k), per_oc)
        b = g.tensors[op.inputs[2]].data
        assert img.bias[f["b_base"]:f["b_base"] + cout] == b.tolist()
        assert f["has_bias"] == 1
        assert f["words_per_channel"] == -(-k // man["memories"]["weights"]["lanes"])


def test_weight_memory_words_of_the_custom_layout_are_128_bits_and_aligned(custom_export):
    man = custom_export.manifest
    assert man["memories"]["weights"]["word_bits"] == 128
    words = read_hex_words(os.path.join(custom_export.out_dir, "mem", "weights.hex"))
    assert any(w >> 64 for w in words)
    for L in man["layers"]:
        f = L.get("fields", {})
        if L["code"] in (1, 2, 3):
            assert f["w_base"] % 2 == 0 and f["b_base"] % 4 == 0
        if L["placement"] == "array":
            assert f["out_base"] % 8 == 0
    # activations: 4 int8 lanes in the low 32 bits of 64-bit words, msb_first; spare bits 0
    act = read_hex_words(os.path.join(custom_export.out_dir, "mem", "act_final.hex"))
    assert all(w >> 32 == 0 for w in act)
    x = examples.example_input().reshape(-1)
    assert lanes_of(act[0], 4, 8, "msb_first") == x[:4].tolist()
    assert (act[0] >> 24) & 0xFF == int(x[0]) & 0xFF  # lane 0 in the most significant lane


def test_requant_words_decode_to_the_layers_multiplier_and_shift(rtl_export, rtl_model):
    """Scheme 0 words against QuantizeMultiplier(s_in * s_w[c] / s_out) computed here from the
    model's float32 scales (big-integer reference); the FC's scheme 5 word against the exact
    double real = double(s_in) * double(s_w) / double(s_out)."""
    man = rtl_export.manifest
    img = Images(rtl_export.out_dir, man)
    g = hwsim.load_graph(rtl_model[0])
    descs = iter(img.descriptors())
    for op in g.ops:
        if op.type == "RESHAPE":
            continue
        f = next(descs)
        if op.type == "ADD":
            word = img.rq[f["rq_base"]]
            L = next(L for L in man["layers"] if L["index"] == op.index)
            q = L["quantization"]["requant"]
            assert decode_requant_word(word, 0) == {"multiplier": q["multiplier"][0],
                                                   "shift": q["shift"][0]}
            continue
        if op.type not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        s_in = float(np.float32(g.tensors[op.inputs[0]].quant.scales[0]))
        s_out = float(np.float32(g.tensors[op.outputs[0]].quant.scales[0]))
        s_w = [float(np.float32(s)) for s in g.tensors[op.inputs[1]].quant.scales]
        cout = f["out_c"]
        if op.type == "FULLY_CONNECTED":
            assert f["requant_scheme"] == 5 and f["per_channel"] == 0  # per-tensor weights
            word = img.rq[f["rq_base"]]
            mant, e = word & ((1 << 53) - 1), ((word >> 53) & 0x7FF) - 2048
            assert 2**52 <= mant < 2**53
            assert Fraction(mant) * Fraction(2) ** e == Fraction(s_in * s_w[0] / s_out)
            continue
        assert f["requant_scheme"] == 0 and f["per_channel"] == 1
        for c in range(cout):
            word = img.rq[f["rq_base"] + c]
            assert word >> 40 == 0
            m, sh = s32(word), lanes_of(word >> 32, 1, 8, "lsb_first")[0]
            assert (m, sh) == quantize_multiplier(s_in * s_w[c] / s_out)


def _same_pad(in_size, k, stride, dilation=1):
    out = -(-in_size // stride)
    return max((out - 1) * stride + (k - 1) * dilation + 1 - in_size, 0) // 2


def test_descriptors_field_by_field(rtl_export, rtl_model):
    man = rtl_export.manifest
    img = Images(rtl_export.out_dir, man)
    g = hwsim.load_graph(rtl_model[0])
    regions = {r["tensor"]: r["base"] for r in man["regions"]}
    descs = img.descriptors()
    code = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 3, "MAX_POOL_2D": 4,
            "ADD": 6}
    ops = [op for op in g.ops if op.type != "RESHAPE"]
    assert len(descs) == len(ops) == 10
    acc_next = 0
    for f, op in zip(descs, ops):
        t = g.tensors
        x, y = t[op.inputs[0]], t[op.outputs[0]]
        zp_in, zp_out = x.quant.zero_points[0], y.quant.zero_points[0]
        exp = {name: 0 for name in DESCRIPTOR_FIELDS}
        exp.update(op=code[op.type], act_min=-128, act_max=127, batch=1,
                   in_base=regions[op.inputs[0]], out_base=regions[op.outputs[0]])
        if op.type == "FULLY_CONNECTED":
            exp.update(in_h=1, in_w=1, in_c=int(np.prod(x.shape)), out_h=1, out_w=1,
                       out_c=y.shape[-1])
        else:
            exp.update(in_h=x.shape[1], in_w=x.shape[2], in_c=x.shape[3], out_h=y.shape[1],
                       out_w=y.shape[2], out_c=y.shape[3])
        a = op.attrs
        fused = a.get("fused_activation_function", "NONE")
        s_out = float(y.quant.scales[0])
        if fused in ("RELU", "RELU6"):
            exp["act_min"] = max(-128, int(zp_out))
        if fused == "RELU6":
            q6 = float(np.float32(6.0) / np.float32(s_out))
            exp["act_max"] = min(127, int(zp_out) + int(math.floor(q6 + 0.5)))
        if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = t[op.inputs[1]]
            kh, kw = w.shape[1], w.shape[2]
            exp.update(kh=kh, kw=kw, stride_h=a["stride_h"], stride_w=a["stride_w"],
                       dilation_h=1, dilation_w=1,
                       pad_top=_same_pad(x.shape[1], kh, a["stride_h"]),
                       pad_left=_same_pad(x.shape[2], kw, a["stride_w"]),
                       depth_multiplier=1 if op.type == "DEPTHWISE_CONV_2D" else 0)
        if op.type == "MAX_POOL_2D":  # VALID 2x2 / 2
            exp.update(kh=2, kw=2, stride_h=2, stride_w=2, dilation_h=1, dilation_w=1)
        if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            L = next(L for L in man["layers"] if L["index"] == op.index)
            mem = L["memory"]
            exp.update(input_offset=-int(zp_in), output_offset=int(zp_out),
                       w_base=mem["weights"]["base"], b_base=mem["bias"]["base"],
                       rq_base=mem["requant"]["base"],
                       words_per_channel=mem["weights"]["words_per_channel"],
                       requant_scheme=5 if op.type == "FULLY_CONNECTED" else 0,
                       has_bias=1, per_channel=0 if op.type == "FULLY_CONNECTED" else 1,
                       acc_base=acc_next)
            acc_next += int(np.prod(y.shape))
        if op.type == "ADD":
            x2 = t[op.inputs[1]]
            L = next(L for L in man["layers"] if L["index"] == op.index)
            exp.update(in2_base=regions[op.inputs[1]], input_offset=-int(zp_in),
                       input2_offset=-int(x2.quant.zero_points[0]), output_offset=int(zp_out),
                       add_left_shift=20, rq_base=L["memory"]["requant"]["base"])
            for j, key in ((1, "in1"), (2, "in2")):  # 2 max(s1, s2) normalisation, shift <= 0
                exp[f"add_{key}_multiplier"] = f[f"add_{key}_multiplier"]
                exp[f"add_{key}_shift"] = f[f"add_{key}_shift"]
                assert f[f"add_{key}_shift"] <= 0 and f[f"add_{key}_multiplier"] > 0
        assert f == exp, op.type


def test_activation_images_hold_the_input_and_every_layer_output(rtl_export, rtl_model):
    man = rtl_export.manifest
    model, npy = rtl_model
    x = np.load(npy)
    tr = engine_trace(model, x)
    img = Images(rtl_export.out_dir, man)
    assert img.read_act(0, x.size).tolist() == x.reshape(-1).tolist()
    assert not any(img.act[-(-x.size // img.a_lanes):])  # act_init: zero past the input
    final = Images(rtl_export.out_dir, man)
    final.act = final.act_final
    for r in man["regions"]:
        v = tr.tensors[r["tensor"]].reshape(-1)
        assert final.read_act(r["base"], v.size).tolist() == v.tolist(), r["name"]
    for L in man["layers"]:
        if "acc" in L["vectors"]:
            v = L["vectors"]["acc"]
            assert img.acc[v["base"]:v["base"] + v["elements"]] == \
                tr.accumulators[L["index"]].reshape(-1).tolist()


# --------------------------------------------------------------------------------------------
# Files: round trips, manifest, vectors.h5
# --------------------------------------------------------------------------------------------
def test_every_memory_file_round_trips_through_its_reader(rtl_export):
    """Every format of every memory file reads back to the same words; per-layer vectors
    unpack to vectors.h5; per-layer weight/bias/requant/descriptor slices equal the images."""
    root, man = rtl_export.out_dir, rtl_export.manifest
    h = h5py.File(os.path.join(root, "vectors.h5"), "r")
    from hwsim.export.manifest import array_words
    for name, im in man["images"].items():
        wb = man["memories"][im["memory"]]["word_bits"]
        got = [read_memory(os.path.join(root, p), wb) for p in im["files"].values()]
        assert sorted(im["files"]) == sorted(FORMATS)
        assert all(g == got[0] for g in got)
        assert got[0] == array_words(h["mem"][name][()])
    images = {name: read_memory(os.path.join(root, im["files"]["hex"]),
                                man["memories"][im["memory"]]["word_bits"])
              for name, im in man["images"].items()}
    n_checked = 0
    for L in [L for L in man["layers"] if "folder" in L]:   # array and host layers
        grp = h["layers"][os.path.basename(L["folder"])]
        for kind, v in L["vectors"].items():
            for fmt, rel in v["files"].items():
                words = read_memory(os.path.join(root, rel), v["layout"]["word_bits"],
                                    address=v["base"] if fmt == "mem" else 0)
                vals = unpack_words(words, count=v["elements"], **v["layout"])
                assert np.array_equal(vals, grp[kind][()].reshape(-1)), (L["folder"], kind)
                n_checked += 1
        for kind, image, base_key in (("weights", "weights", "w_base"),
                                      ("bias", "bias", "b_base"),
                                      ("requant", "requant", "rq_base"),
                                      ("descriptor", "descriptors", None)):
            if kind not in L["files"]:
                continue
            base = L["descriptor"] * 64 if base_key is None else L["fields"][base_key]
            wb = man["memories"][image]["word_bits"]
            for fmt, rel in L["files"][kind].items():
                words = read_memory(os.path.join(root, rel), wb,
                                    address=base if fmt == "mem" else 0)
                assert words == images[image][base:base + len(words)], (L["folder"], kind)
                n_checked += 1
    assert n_checked > 200


def test_manifest_lists_every_file_with_its_sha256(rtl_export):
    from hwsim.util import sha256_file
    root, man = rtl_export.out_dir, rtl_export.manifest
    on_disk = sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
                     for d, _, fs in os.walk(root) for f in fs)
    listed = sorted(f["path"] for f in man["files"])
    assert on_disk == sorted(listed + ["manifest.yaml"])
    for f in man["files"]:
        p = os.path.join(root, f["path"])
        assert sha256_file(p) == f["sha256"] and os.path.getsize(p) == f["bytes"]
    assert yaml.safe_load(open(os.path.join(root, "manifest.yaml"))) == man


def test_manifest_records_model_input_config_and_version(rtl_export, rtl_model):
    from hwsim.hw.config import load_config
    from hwsim.util import sha256_file
    man = rtl_export.manifest
    model, npy = rtl_model
    assert man["model"] == {"file": "example_rtl.tflite", "sha256": sha256_file(model)}
    assert man["inputs"][0]["file_sha256"] == sha256_file(npy)
    assert man["hwsim_version"] == hwsim.__version__
    assert man["config"] == load_config("tflite-int8").to_dict()
    assert man["config_source"] == "preset tflite-int8"
    assert man["descriptor_fields"][38] == "acc_base"
    assert [r["layer"] for r in man["headroom"]] == [0, 1, 2, 4, 5, 6, 10]
    for r in man["headroom"]:
        assert r["worst_min"] <= r["partial_min"] <= r["acc_min"] <= r["acc_max"] \
            <= r["partial_max"] <= r["worst_max"]
        assert r["out_of_range"] == 0 and r["worst_fits"] and r["acc_bits"] == 32
    assert man["headroom_warnings"] == []
    array = [L for L in man["layers"] if L["placement"] == "array"]
    assert [L["placement"] for L in man["layers"]].count("alias") == 1   # the RESHAPE
    assert all(isinstance(L["cycles"], int) and L["cycles"] > 0 for L in array)
    assert man["cycles_total"] == sum(L["cycles"] for L in array)
    layer0 = man["layers"][0]
    assert layer0["folder"] == "layers/00_conv_2d" and layer0["fields"]["op"] == 1
    assert man["aliases"] == [{"index": 9, "op": "RESHAPE", "tensor": 23, "alias_of": 21,
                               "base": man["layers"][-1]["fields"]["in_base"]}]


def test_vectors_h5_layout(rtl_export, rtl_model):
    man = rtl_export.manifest
    tr = engine_trace(rtl_model[0], np.load(rtl_model[1]))
    with h5py.File(os.path.join(rtl_export.out_dir, "vectors.h5"), "r") as h:
        assert h.attrs["format"] == "hwsim-export-vectors" and h.attrs["format_version"] == 1
        assert list(h["mem"]) == ["weights", "bias", "requant", "descriptors", "act_init",
                                  "act_final", "acc"]
        assert h["mem"]["weights"].dtype == np.uint64 and h["mem"]["bias"].dtype == np.uint32
        for L in [L for L in man["layers"] if "folder" in L]:
            grp = h["layers"][os.path.basename(L["folder"])]
            assert grp.attrs["index"] == L["index"] and grp.attrs["op"] == L["op"]
            assert grp["descriptor"][()].tolist() == \
                [L["fields"][n] for n in DESCRIPTOR_FIELDS] + [0] * (64 - len(DESCRIPTOR_FIELDS))
            assert np.array_equal(grp["output"][()],
                                  tr.tensors[L["vectors"]["output"]["tensor"]])
            if "acc" in L["vectors"]:
                assert np.array_equal(grp["acc"][()], tr.accumulators[L["index"]])
                assert grp["weights"].shape == (L["memory"]["weights"]["channels"],
                                                L["memory"]["weights"]["k"])


def test_custom_export_writes_only_the_formats_asked(custom_export):
    exts = {os.path.splitext(f)[1] for f in custom_export.files}
    assert exts == {".hex", ".bin", ".h5", ".yaml"}


# --------------------------------------------------------------------------------------------
# Host tail
# --------------------------------------------------------------------------------------------
def test_host_tail_exports_the_softmax_vectors_without_a_descriptor(host_tail_export):
    man = host_tail_export.manifest
    host = [L for L in man["layers"] if L["host"]]
    assert [L["op"] for L in host] == ["SOFTMAX"]
    sm = host[0]
    assert sm["descriptor"] is None and "fields" not in sm
    assert sm["vectors"]["input"]["base"] is not None  # the FC's output, in memory
    assert sm["vectors"]["output"]["base"] is None and sm["vectors"]["output"]["files"]
    assert man["memories"]["descriptors"]["count"] == 10
    descs = read_hex_words(os.path.join(host_tail_export.out_dir, "mem", "descriptors.hex"))
    assert len(descs) == 11 * 64 and not any(descs[-64:])


def test_without_host_tail_the_softmax_still_runs_on_the_host(tmp_path, host_tail_export):
    model = examples.write_example(str(tmp_path / "m.tflite"))
    res = export(model, "tflite-int8", examples.example_input(), tmp_path / "out",
                 formats="hex")   # host_tail is no longer needed
    assert [L["op"] for L in res.manifest["layers"] if L["host"]] == ["SOFTMAX"]
    assert res.manifest["regions"] == host_tail_export.manifest["regions"]


# --------------------------------------------------------------------------------------------
# Determinism and atomicity
# --------------------------------------------------------------------------------------------
def _tree(root) -> dict[str, bytes]:
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_reexport_is_byte_identical(rtl_export, rtl_model, tmp_path):
    model, npy = rtl_model
    other = export(model, "tflite-int8", [npy], tmp_path / "again" / "deeper")
    assert _tree(other.out_dir) == _tree(rtl_export.out_dir)
    # re-export into the same folder: replaced, same bytes, no temp folders left behind
    before = _tree(other.out_dir)
    export(model, "tflite-int8", [npy], other.out_dir)
    assert _tree(other.out_dir) == before
    assert [p for p in os.listdir(tmp_path / "again") if p.startswith(".hwsim-")] == []


def _leftovers(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith(".hwsim-"))


def test_memory_overflow_names_the_memory_and_leaves_no_output(rtl_model, tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text("name: small\nmemories:\n  weights: {word_bits: 64, lanes: 8, depth: 1000}\n")
    with pytest.raises(HwsimError, match=r"layer 4 \(CONV_2D\): memories.weights: 1512 words.*1000"):
        export(rtl_model[0], str(cfg), [rtl_model[1]], tmp_path / "out")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("config, needle", [
    ("no-such-preset", "neither a YAML file nor a preset"),
    ("bad.yaml", "accumulator.bitz: unknown key"),
    ("narrow-acc-24", r"cannot map onto 'narrow-acc-24' \(strict\): layer 0 \(CONV_2D\): "
                      r"requant scheme mult_shift"),
])
def test_bad_config_is_one_clear_error(config, needle, rtl_model, tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("accumulator: {bitz: 3}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HwsimError, match=needle):
        export(rtl_model[0], config, [rtl_model[1]], tmp_path / "out")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_unwritable_output_path_is_refused(rtl_model, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(HwsimError, match="cannot create the output folder"):
        export(rtl_model[0], "tflite-int8", [rtl_model[1]], tmp_path / "afile" / "out")
    assert (tmp_path / "afile").read_text() == "x"


def test_a_folder_that_is_not_an_export_is_never_replaced(rtl_model, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(HwsimError, match="not an hwsim export"):
        export(rtl_model[0], "tflite-int8", [rtl_model[1]], tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_failure_while_writing_keeps_the_previous_export(rtl_export, rtl_model, tmp_path,
                                                           monkeypatch):
    out = tmp_path / "prev"
    shutil.copytree(rtl_export.out_dir, out)
    before = _tree(out)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hwsim.export.manifest.write_vectors_h5", boom)
    with pytest.raises(HwsimError, match="cannot write the export"):
        export(rtl_model[0], "tflite-int8", [rtl_model[1]], out)
    assert _tree(out) == before and _leftovers(tmp_path) == []


def test_input_errors(rtl_model, tmp_path):
    with pytest.raises(HwsimError, match=r"int8 \[1, 8, 8, 3\], the model wants int8 "
                                         r"\[1, 32, 32, 3\]"):
        export(rtl_model[0], "tflite-int8", np.zeros((1, 8, 8, 3), np.int8), tmp_path / "o")
    with pytest.raises(HwsimError, match="no such model file"):
        export(tmp_path / "nope.tflite", "tflite-int8", [rtl_model[1]], tmp_path / "o")
    with pytest.raises(HwsimError, match="unknown format 'vhd'"):
        export(rtl_model[0], "tflite-int8", [rtl_model[1]], tmp_path / "o", formats="hex,vhd")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------
def test_cli_export_prints_the_layer_table_and_writes_the_folder(rtl_model, tmp_path, capsys):
    code = commands.main(["export", rtl_model[0], "--config", "tflite-int8", "--input",
                          rtl_model[1], "--out", str(tmp_path / "o"), "--formats", "hex",
                          "--progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "10  FULLY_CONNECTED    FC" in out and f"wrote {tmp_path / 'o'} (" in out
    assert "export" in err  # the tqdm bar (forced with --progress)
    assert os.path.isfile(tmp_path / "o" / "manifest.yaml")


def test_cli_export_user_error_is_one_line_exit_2(rtl_model, tmp_path, capsys):
    code = commands.main(["export", rtl_model[0], "--input", rtl_model[1], "--out",
                          str(tmp_path / "o"), "--config", "nope.yaml"])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("hwsim: error: nope.yaml: no such file")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_export_random_input(rtl_model, tmp_path, capsys):
    code = commands.main(["export", rtl_model[0], "--random-input", "3", "--out",
                          str(tmp_path / "o"), "--formats", "bin", "-q"])
    assert code == 0
    man = yaml.safe_load(open(tmp_path / "o" / "manifest.yaml"))
    assert man["inputs"][0]["file"] is None and len(man["inputs"][0]["data_sha256"]) == 64


def test_headroom_overflow_is_warned_and_recorded(rtl_model, tmp_path, capsys):
    """A 17-bit accumulator: layer 0's partial sums need 18 bits on the example input."""
    cfg = tmp_path / "acc17.yaml"
    cfg.write_text("name: acc17\naccumulator: {bits: 17, overflow: saturate}\n")
    code = commands.main(["export", rtl_model[0], "--input", rtl_model[1], "--out",
                          str(tmp_path / "o"), "--config", str(cfg), "--formats", "hex", "-q",
                          "--legalize", "approx"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warning: accumulator elements leave the accumulator's range" in err
    man = yaml.safe_load(open(tmp_path / "o" / "manifest.yaml"))
    bad = man["headroom_warnings"]
    assert bad[0]["layer"] == 0 and 0 < bad[0]["out_of_range"] <= bad[0]["elements"] == 6144
    assert man["layers"][0]["headroom"] == bad[0]
    first = bad[0]["out_of_range_elements"][0]
    assert list(np.unravel_index(first["flat_index"], (1, 16, 16, 24))) == first["coords"]
    assert f"{first['flat_index']} ({', '.join(map(str, first['coords']))})" in err
    # the exported accumulators are the hardware's: saturated to 17 bits
    acc = read_hex_words(tmp_path / "o" / "layers" / "00_conv_2d" / "acc.hex")
    assert max(s32(w) for w in acc) == 2**16 - 1 or min(s32(w) for w in acc) == -2**16
    assert man["exact"] is False


# --------------------------------------------------------------------------------------------
# Layout primitives
# --------------------------------------------------------------------------------------------
@given(st.integers(-2**31, 2**31 - 1), st.integers(-128, 127))
def test_requant_word_scheme_0_round_trip(m, s):
    w = encode_requant_word(0, m, s)
    assert w >> 40 == 0 and decode_requant_word(w, 0) == {"multiplier": m, "shift": s}
    assert s32(w) == m


@given(st.integers(2**52, 2**53 - 1), st.integers(-1024, 1023))
def test_requant_word_scheme_5_round_trip(mant, e):
    w = encode_requant_word(5, mant, e)
    d = decode_requant_word(w, 5)
    assert (d["mantissa"], d["exponent"]) == (mant, e) and w < 2**64


def test_requant_word_range_errors():
    with pytest.raises(HwsimError, match="do not fit"):
        encode_requant_word(0, 2**31, 0)
    with pytest.raises(HwsimError, match="uint8"):
        encode_requant_word(4, 0, 256)
    with pytest.raises(HwsimError, match="not implemented"):
        encode_requant_word(7, 1, 1)
    # tflite_int64 (16x8 layers): the requant unit takes it, in the scheme-0 layout
    assert encode_requant_word(2, 1 << 30, -5) == encode_requant_word(0, 1 << 30, -5)


@given(st.dictionaries(st.sampled_from(DESCRIPTOR_FIELDS), st.integers(-2**31, 2**31 - 1)))
def test_descriptor_words_round_trip(fields):
    words = descriptor_words(fields)
    assert len(words) == 64 and all(0 <= w < 2**32 for w in words)
    dec = decode_descriptor(words)
    assert dec == {n: fields.get(n, 0) for n in DESCRIPTOR_FIELDS}


def test_nhwc_view():
    assert nhwc((1, 4, 5, 6)) == (1, 4, 5, 6)
    assert nhwc((2, 10)) == (2, 1, 1, 10)
    assert nhwc((2, 7, 10)) == (2, 1, 7, 10)
    assert nhwc((10,)) == (1, 1, 1, 10) and nhwc(()) == (1, 1, 1, 1)
