"""Where everything goes in the accelerator's memories (docs/dev/accel-interface.md).

Pure layout, no I/O: which program layers the array runs, the activation regions, the
weight / bias / requant words of each layer, its 64-word descriptor. :func:`plan_network`
turns a Program and an AccelConfig into a :class:`NetworkPlan`; the exporter
(:mod:`hwsim.export.exporter`) fills in the vectors of a run and writes the files.

Every constant comes from ``Layer.params`` (hwsim.params; lowering derived it once); nothing
here re-derives a multiplier, a shift or a padding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..ir import HwsimError
from ..params import RequantParams
from ..vocab import ACCEL_OP_OF, REQUANT_UNIT_SCHEMES, AccelOp, RequantScheme
from .pack import PackedWords, pack_words, words_needed

# -- the layers the array runs ----------------------------------------------------------------
# Their codes as the manifest and the vectors file list them (plain ints; hwsim.vocab.AccelOp).
OP_CODES = {op: int(code) for op, code in ACCEL_OP_OF.items()}
ACCEL_OP_NAMES = {int(code): code.name for code in ACCEL_OP_OF.values()}
MAC_CODES = (int(AccelOp.CONV), int(AccelOp.DWCONV), int(AccelOp.FC))

DESCRIPTOR_WORDS = 64
DESCRIPTOR_WORD_BITS = 32
DESCRIPTOR_FIELDS = (
    "op", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "kh", "kw", "stride_h",
    "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left", "depth_multiplier",
    "in_base", "in2_base", "out_base", "w_base", "b_base", "rq_base", "input_offset",
    "input2_offset", "output_offset", "act_min", "act_max", "add_left_shift",
    "add_in1_multiplier", "add_in1_shift", "add_in2_multiplier", "add_in2_shift",
    "words_per_channel", "requant_scheme", "rounding", "has_bias", "per_channel", "batch",
    "acc_base",
)  # index = word position; words 39..63 are reserved (0)
FIELD_INDEX = {name: i for i, name in enumerate(DESCRIPTOR_FIELDS)}

# The requant unit's schemes as the manifest lists them: code -> name (hwsim.vocab).
RTL_REQUANT_SCHEMES = {int(s): s.name for s in REQUANT_UNIT_SCHEMES}

ACC_MEMORY_KEY = "accumulators"


def nhwc(shape) -> tuple[int, int, int, int]:
    """The (N, H, W, C) a tensor of ``shape`` is addressed as (its C-order flat index is the
    same): rank 4 as is, [N, C] -> (N, 1, 1, C), [N, W, C] -> (N, 1, W, C), [C] -> (1, 1, 1, C),
    a scalar -> (1, 1, 1, 1)."""
    s = tuple(int(d) for d in shape)
    if len(s) == 4:
        return s  # type: ignore[return-value]
    if len(s) == 3:
        return (s[0], 1, s[1], s[2])
    if len(s) == 2:
        return (s[0], 1, 1, s[1])
    if len(s) == 1:
        return (1, 1, 1, s[0])
    if len(s) == 0:
        return (1, 1, 1, 1)
    raise ValueError(f"rank-{len(s)} tensor {list(s)} has no NHWC view")


# -- memories ---------------------------------------------------------------------------------
@dataclass
class Memory:
    """One memory of the accelerator: its word layout and the words allocated so far.

    ``lanes`` elements of ``elem_bits`` bits per word, at an ``elem_bits`` pitch in the low
    ``lanes * elem_bits`` bits (``lane_order``); any bits above them are zero.
    """
    key: str  # "weights", "bias", "requant", "activations", "accumulators", "descriptors"
    word_bits: int
    lanes: int
    elem_bits: int
    signed: bool
    lane_order: str = "lsb_first"
    depth: int | None = None
    align_words: int = 1
    banks: int = 1
    used_words: int = 0
    regions: list = field(default_factory=list)  # (base, words, what)

    def alloc(self, words: int, what: str) -> int:
        base = -(-self.used_words // self.align_words) * self.align_words
        self.used_words = base + int(words)
        self.regions.append((base, int(words), what))
        return base

    def layout(self) -> dict:
        """Keyword arguments of pack_words / unpack_words for this memory's elements."""
        return dict(elem_bits=self.elem_bits, signed=self.signed, lanes_per_word=self.lanes,
                    word_bits=self.word_bits, lane_order=self.lane_order)

    def pack(self, values) -> PackedWords:
        """Pack elements (C order): element ``i`` in word ``i // lanes``, lane ``i % lanes``."""
        return pack_words(values, **self.layout())

    def words_for(self, elements: int) -> int:
        return words_needed(elements, self.lanes)

    def check_depth(self) -> None:
        if self.depth is not None and self.used_words > self.depth * self.banks:
            last = ", ".join(f"{what}: {words} words at {base}"
                             for base, words, what in self.regions[-2:])
            banks = f" x {self.banks} banks" if self.banks > 1 else ""
            raise HwsimError(f"memories.{self.key}: {self.used_words} words do not fit depth "
                             f"{self.depth}{banks} (last regions: {last})")

    def describe(self) -> dict:
        return dict(word_bits=self.word_bits, lanes=self.lanes, elem_bits=self.elem_bits,
                    signed=self.signed, lane_order=self.lane_order, depth=self.depth,
                    align_words=self.align_words, used_words=self.used_words)


def _config_memory(config, key: str, elem_bits: int, signed: bool, what: str,
                   one_lane: bool = False) -> Memory:
    m = getattr(config.memories, key)
    if m.word_bits < m.lanes * elem_bits or (one_lane and m.lanes != 1):
        need = "1 lane" if one_lane else f"{m.lanes} lanes x {elem_bits} bits"
        raise HwsimError(f"memories.{key}: word_bits {m.word_bits} with {m.lanes} lanes cannot "
                         f"hold {what} ({need}; accel-interface.md)")
    return Memory(key, m.word_bits, m.lanes, elem_bits, signed, m.lane_order, m.depth,
                  m.align_words, m.banks)


def activation_dtype(config) -> np.dtype:
    """The activation memory's element type: int8 for data of up to 8 bits, int16 above (the
    quantizer stores 9..16-bit activations in int16: TFLite's 16x8)."""
    wide = max(config.data.input_bits, config.data.output_bits) > 8
    return np.dtype(np.int16 if wide else np.int8)


def bias_bits(config) -> int:
    """Bits per bias element: 64 (the int64 bias of TFLite's 16x8 layers) when the bias word
    holds them and the accumulator is wider than 32 bits, else 32."""
    return 64 if config.memories.bias.word_bits >= 64 and config.accumulator.bits > 32 else 32


def make_memories(config, acc_bits: int = 32) -> dict[str, Memory]:
    act = activation_dtype(config)
    return {
        "weights": _config_memory(config, "weights", 8, True, "int8 weights"),
        "bias": _config_memory(config, "bias", bias_bits(config), True,
                               f"int{bias_bits(config)} biases", one_lane=True),
        "requant": _config_memory(config, "requant", 64, False, "64-bit requant words",
                                  one_lane=True),
        "activations": _config_memory(config, "activations", 8 * act.itemsize, True,
                                      f"{act} activations"),
        ACC_MEMORY_KEY: Memory(ACC_MEMORY_KEY, acc_bits, 1, acc_bits, True),
        "descriptors": Memory("descriptors", DESCRIPTOR_WORD_BITS, 1, DESCRIPTOR_WORD_BITS,
                              False),
    }


# -- requant words ----------------------------------------------------------------------------
def encode_requant_word(scheme: int, multiplier: int = 0, shift: int = 0) -> int:
    """The 64-bit requant word of one channel (accel-interface.md, "Requant memory").

    Scheme 5 (double_round): ``multiplier`` = M (53-bit significand), ``shift`` = E, the
    real multiplier being M * 2**E exactly (as lowering carries it)."""
    scheme = int(scheme)
    multiplier, shift = int(multiplier), int(shift)
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


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def decode_requant_word(word: int, scheme: int) -> dict:
    """Inverse of :func:`encode_requant_word`: the fields of a requant word for ``scheme``."""
    word = int(word)
    if scheme == RequantScheme.double_round:
        mant, exp = word & ((1 << 53) - 1), _signed(word >> 53, 11)
        return {"mantissa": mant, "exponent": exp}  # real = mantissa * 2**exponent
    mult = _signed(word & 0xFFFF_FFFF, 32)
    sh = (word >> 32) & 0xFF
    if scheme in (RequantScheme.tflite_double, RequantScheme.tflite_single,
                  RequantScheme.tflite_int64):
        return {"multiplier": mult, "shift": _signed(sh, 8)}
    if scheme == RequantScheme.mult_shift:
        return {"multiplier": mult, "shift": sh}
    return {"shift": sh}


# -- layers -----------------------------------------------------------------------------------
@dataclass
class VectorSpec:
    """One golden vector of a layer: which tensor, its shape, and where it lives."""
    kind: str  # input, input2, acc, output
    tensor: int | None  # tensor index (None for accumulators)
    name: str
    shape: tuple[int, ...]
    dtype: str
    memory: str | None  # "activations", "accumulators", or None (host-only tensor)
    base: int | None
    words: int

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nhwc(self) -> tuple[int, int, int, int]:
        return nhwc(self.shape)


@dataclass
class LayerPlan:
    index: int  # program layer index (= TFLite op index)
    op: str  # source op, e.g. CONV_2D
    code: int  # accelerator op code; 0 for host layers
    host: bool
    folder: str  # "layers/00_conv_2d"
    position: int | None  # descriptor index (None for host layers)
    layer: object  # the program Layer
    fields: dict = field(default_factory=dict)  # descriptor fields by name (array layers)
    vectors: dict = field(default_factory=dict)  # kind -> VectorSpec
    weights: PackedWords | None = None
    bias: PackedWords | None = None
    requant: PackedWords | None = None
    weight_matrix: np.ndarray | None = None  # [Cout, K] int8, reduction order
    requant_fields: dict = field(default_factory=dict)

    @property
    def accel_op(self) -> str:
        return ACCEL_OP_NAMES.get(self.code, "HOST")

    def descriptor_words(self) -> list[int]:
        """The 64 descriptor words (unsigned 32-bit: two's complement of the field values)."""
        return descriptor_words(self.fields)


def descriptor_words(fields: dict) -> list[int]:
    words = [0] * DESCRIPTOR_WORDS
    for name, v in fields.items():
        v = int(v)
        if not -(1 << 31) <= v < (1 << 32):
            raise HwsimError(f"descriptor field {name} = {v} does not fit 32 bits")
        words[FIELD_INDEX[name]] = v & 0xFFFF_FFFF
    return words


def decode_descriptor(words) -> dict:
    """Descriptor words -> fields by name (signed 32-bit values)."""
    return {name: _signed(int(words[i]), 32) for i, name in enumerate(DESCRIPTOR_FIELDS)}


@dataclass
class NetworkPlan:
    layers: list[LayerPlan]  # array and host layers, in execution order
    memories: dict[str, Memory]
    regions: dict[int, tuple[int, int]]  # tensor index -> (base, words) in activation memory
    aliases: list[dict]  # RESHAPE/SQUEEZE layers: {index, op, tensor, alias_of}
    inputs: list[int]  # the tensors the host writes (a network input, or its "input" clamp)
    outputs: list[int]
    fused: list[dict] = field(default_factory=list)  # clamps: {index, op, placement, into}

    @property
    def array_layers(self) -> list[LayerPlan]:
        return [lp for lp in self.layers if not lp.host]


def weight_matrix(layer) -> np.ndarray:
    """The layer's weights as [Cout, K] in reduction order (accel-interface.md, weight memory):
    CONV (ky, kx, ic) = OHWI flattened per filter; DWCONV (ky, kx) of output channel
    oc = ic*depth_multiplier + m; FC k."""
    w = np.asarray(layer.params.weights)
    if layer.op == "CONV_2D":
        return w.reshape(w.shape[0], -1)
    if layer.op == "DEPTHWISE_CONV_2D":  # [1, KH, KW, Cout]
        return np.ascontiguousarray(w[0].reshape(-1, w.shape[3]).T)
    return w.reshape(w.shape[0], -1)  # FC [Cout, K]


def _requant_words(rq: RequantParams, cout: int, what: str) -> tuple[list[int], bool, dict]:
    scheme = int(rq.scheme)
    if scheme not in REQUANT_UNIT_SCHEMES:
        raise HwsimError(f"{what}: requant scheme {scheme} is not implemented by the requant "
                         f"unit")
    per_channel = rq.per_channel  # lowering decides: one entry or C
    n = cout if per_channel else 1
    mult = np.broadcast_to(np.asarray(rq.multiplier).reshape(-1), (cout,))
    shift = np.broadcast_to(np.asarray(rq.shift).reshape(-1), (cout,))
    words = []
    for c in range(n):
        try:
            words.append(encode_requant_word(scheme, int(mult[c]), int(shift[c])))
        except HwsimError as e:
            raise HwsimError(f"{what}, channel {c}: {e}") from None
    fields = {"scheme": RTL_REQUANT_SCHEMES[scheme], "per_channel": per_channel,
              "multiplier": [int(v) for v in mult[:n]], "shift": [int(v) for v in shift[:n]]}
    if scheme == RequantScheme.double_round:
        fields["real_multiplier"] = [math.ldexp(int(m), int(e)) for m, e in
                                     zip(mult[:n], shift[:n])]
    return words, per_channel, fields


def _describe_op(layer) -> str:
    return f"op {layer.index} ({layer.op})"


def _array_layer_problem(layer, program, mems) -> str | None:
    """Why the array cannot run ``layer`` (None if it can)."""
    op, p = layer.op, layer.params
    if op not in OP_CODES:
        return "is not an accelerator layer"
    act = np.dtype(f"int{mems['activations'].elem_bits}")
    for t in list(layer.inputs) + list(layer.outputs):
        dt = program.tensors[t].dtype
        if dt is None or np.dtype(dt) != act:
            return f"has {dt} tensor {t}; the array's activations are {act}"
    if op == "CONV_2D" and int(p.groups) != 1:
        return f"is a grouped convolution (groups={p.groups}); the array runs groups = 1"
    if op == "ADD":
        if p.constants or len(layer.inputs) != 2:
            return "has a constant operand; the array's ADD takes two activations"
        a, b = (tuple(program.tensors[i].shape) for i in layer.inputs)
        if a != b or tuple(program.tensors[layer.outputs[0]].shape) != a:
            return f"broadcasts {list(a)} with {list(b)}; the array's ADD needs equal shapes"
        if p.pot:
            return "uses the int16 power-of-two path"
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and p.acc_int64 \
            and mems["bias"].elem_bits < 64:
        return "accumulates in int64 with an int64 bias (16x8); the bias memory has 32-bit " \
               "elements (64-bit with memories.bias.word_bits >= 64 and accumulator.bits > 32)"
    return None


def _folder(index: int, op: str, width: int) -> str:
    return f"layers/{index:0{width}d}_{op.lower()}"


def plan_network(program, config, placement: dict) -> NetworkPlan:
    """Lay the program out in the accelerator's memories (accel-interface.md).

    ``placement`` ({layer index: "array" | "alias" | "fused" | "input" | "host"}) is where
    each layer runs, as hwsim.hw.map_network decided (host layers only as a trailing run).
    "fused" and "input" clamps get no layer plan (the array layer they are fused into writes
    their output; the host writes a clamped network input: ``inputs`` lists the tensors the
    host writes). Raises HwsimError for an array layer outside the interface (e.g. not int8)
    and for a memory whose words do not fit its depth.
    """
    from ..hw.network import network_input_tensors
    layers = program.layers
    kinds = [placement[layer.index] for layer in layers]
    mems = make_memories(config, 64 if config.accumulator.bits > 32 else 32)
    for layer, kind in zip(layers, kinds):
        problem = _array_layer_problem(layer, program, mems) if kind == "array" else None
        if problem:
            raise HwsimError(f"{_describe_op(layer)} {problem}")
    act = mems["activations"]
    regions: dict[int, tuple[int, int]] = {}

    def region_of(t: int, what: str) -> tuple[int, int]:
        if t not in regions:
            words = act.words_for(int(np.prod(program.tensors[t].shape, dtype=np.int64)))
            regions[t] = (act.alloc(words, what), words)
        return regions[t]

    host_inputs = network_input_tensors(program, placement)
    for t in host_inputs:
        info = program.tensors[t]
        act_dt = np.dtype(f"int{act.elem_bits}")
        if info.dtype is None or np.dtype(info.dtype) != act_dt:
            raise HwsimError(f"network input {t} '{info.name}' is {info.dtype}; the array's "
                             f"activations are {act_dt}")
        region_of(t, f"input {t}")

    width = max(2, len(str(max((layer.index for layer in layers), default=0))))
    plans: list[LayerPlan] = []
    aliases: list[dict] = []
    fused: list[dict] = []
    position = 0
    for layer, kind in zip(layers, kinds):
        if kind in ("fused", "input"):
            fused.append({"index": layer.index, "op": layer.op, "placement": kind,
                          "into": int(layer.params.fused_into) if kind == "fused"
                          else "input"})
            continue
        if kind == "alias":
            src, dst = layer.inputs[0], layer.outputs[0]
            if src not in regions:
                raise HwsimError(f"{_describe_op(layer)}: its input {src} is not in the "
                                 f"activation memory")
            regions[dst] = regions[src]
            aliases.append({"index": layer.index, "op": layer.op, "tensor": dst,
                            "alias_of": src, "base": regions[src][0]})
            continue
        host = kind == "host"
        code = int(AccelOp.END) if host else OP_CODES[layer.op]
        lp = LayerPlan(layer.index, layer.op, code, host, _folder(layer.index, layer.op, width),
                       None if host else position, layer)
        what = f"layer {layer.index} ({layer.op})"
        for j, t in enumerate(layer.inputs):
            info = program.tensors[t]
            base, words = regions.get(t, (None, 0))
            lp.vectors["input" if j == 0 else f"input{j + 1}"] = VectorSpec(
                "input" if j == 0 else f"input{j + 1}", t, info.name, tuple(info.shape),
                str(np.dtype(info.dtype)) if info.dtype is not None else "unknown",
                "activations" if base is not None else None, base, words)
        if not host:
            _plan_array_layer(lp, program, mems, region_of, what)
        for j, t in enumerate(layer.outputs):
            info = program.tensors[t]
            key = "output" if j == 0 else f"output{j + 1}"
            base, words = (None, 0) if host else region_of(t, f"output of {what}")
            lp.vectors[key] = VectorSpec(key, t, info.name, tuple(info.shape),
                                         str(np.dtype(info.dtype)) if info.dtype is not None
                                         else "unknown",
                                         None if host else "activations", base, words)
        if not host:
            lp.fields["out_base"] = lp.vectors["output"].base
            position += 1
        plans.append(lp)

    mems["descriptors"].alloc((position + 1) * DESCRIPTOR_WORDS, "descriptors")
    for m in mems.values():
        m.check_depth()
    return NetworkPlan(plans, mems, regions, aliases, host_inputs, list(program.outputs),
                       fused)


def _plan_array_layer(lp: LayerPlan, program, mems: dict[str, Memory], region_of, what: str):
    layer, p = lp.layer, lp.layer.params
    x = lp.vectors["input"]
    y_info = program.tensors[layer.outputs[0]]
    n, ih, iw, ic = x.nhwc
    on, oh, ow, oc = nhwc(y_info.shape)
    f = {name: 0 for name in DESCRIPTOR_FIELDS}
    act_min, act_max = p.clamp()
    f.update(op=lp.code, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, batch=n,
             in_base=x.base, act_min=act_min, act_max=act_max)
    if lp.code in MAC_CODES:
        wm = weight_matrix(layer)
        cout, k = wm.shape
        wgt = mems["weights"]
        wpc = wgt.words_for(k)
        padded = np.zeros((cout, wpc * wgt.lanes), dtype=np.int8)
        padded[:, :k] = wm
        lp.weight_matrix = wm
        lp.weights = wgt.pack(padded)
        w_base = wgt.alloc(len(lp.weights), f"weights of {what}")
        bias = p.bias
        has_bias = bias is not None
        bias = np.zeros(cout, np.int32) if bias is None else np.asarray(bias).reshape(-1)
        lp.bias = mems["bias"].pack(bias)
        b_base = mems["bias"].alloc(len(lp.bias), f"bias of {what}")
        rq = p.requant
        rq_words, per_channel, lp.requant_fields = _requant_words(rq, cout, what)
        lp.requant = mems["requant"].pack(rq_words)
        rq_base = mems["requant"].alloc(len(lp.requant), f"requant of {what}")
        acc_elems = int(np.prod(y_info.shape, dtype=np.int64))
        acc_base = mems[ACC_MEMORY_KEY].alloc(acc_elems, f"accumulators of {what}")
        f.update(w_base=w_base, b_base=b_base, rq_base=rq_base, words_per_channel=wpc,
                 requant_scheme=int(rq.scheme), rounding=int(rq.rounding),
                 has_bias=int(has_bias), per_channel=int(per_channel),
                 input_offset=int(p.input_offset), output_offset=int(rq.out_zp),
                 acc_base=acc_base)
        lp.vectors["acc"] = VectorSpec("acc", None, f"accumulators of layer {layer.index}",
                                       (on, oh, ow, oc) if lp.code != AccelOp.FC else
                                       (int(p.batch), cout),
                                       "int64" if p.acc_int64 else "int32",
                                       ACC_MEMORY_KEY, acc_base, acc_elems)
        if lp.code == AccelOp.FC:  # batch rows of K -> Cout
            f.update(in_h=1, in_w=1, in_c=k, out_h=1, out_w=1, out_c=cout,
                     batch=int(p.batch))
        else:
            w = np.asarray(p.weights)
            f.update(kh=w.shape[1], kw=w.shape[2], stride_h=int(p.stride_h),
                     stride_w=int(p.stride_w), dilation_h=int(p.dilation_h),
                     dilation_w=int(p.dilation_w), pad_top=int(p.pad_top),
                     pad_left=int(p.pad_left))
            if lp.code == AccelOp.DWCONV:
                f["depth_multiplier"] = int(p.depth_multiplier)
    elif lp.code in (AccelOp.MAXPOOL, AccelOp.AVGPOOL):
        f.update(kh=int(p.filter_h), kw=int(p.filter_w), stride_h=int(p.stride_h),
                 stride_w=int(p.stride_w), dilation_h=1, dilation_w=1,
                 pad_top=int(p.pad_top), pad_left=int(p.pad_left))
    elif lp.code == AccelOp.ADD:
        scheme = int(p.scheme)  # the TFLite build of its rescaling
        word = encode_requant_word(scheme, int(p.output_multiplier), int(p.output_shift))
        lp.requant = mems["requant"].pack([word])
        rq_base = mems["requant"].alloc(1, f"requant of {what}")
        lp.requant_fields = {"scheme": RTL_REQUANT_SCHEMES[scheme], "per_channel": False,
                             "multiplier": [int(p.output_multiplier)],
                             "shift": [int(p.output_shift)]}
        f.update(in2_base=lp.vectors["input2"].base, rq_base=rq_base,
                 input_offset=int(p.input1_offset), input2_offset=int(p.input2_offset),
                 output_offset=int(p.output_offset), add_left_shift=int(p.left_shift),
                 add_in1_multiplier=int(p.input1_multiplier),
                 add_in1_shift=int(p.input1_shift),
                 add_in2_multiplier=int(p.input2_multiplier),
                 add_in2_shift=int(p.input2_shift), requant_scheme=scheme)
    lp.fields = f
