"""The memory plan: where every tensor, weight, bias, requant word, accumulator and descriptor
of a placed hardware program lives in the accelerator's memories (accel-interface.md).

:func:`allocate` is the one memory plan: hwsim.hw.network's legalization takes its word counts
for the capacity check (``overflows``), :func:`plan_network` its addresses for the export.
:func:`plan_network` adds what only an export needs: the interface checks of each array layer,
the packed weight / bias / requant words and the 64-word descriptors (a :class:`NetworkPlan`).

Every constant comes from ``Layer.params`` (hwsim.params; lowering derived it once); nothing
here re-derives a multiplier, a shift or a padding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import HwsimError
from ..vocab import ELEMENTWISE_OPS, TABLE_OPS, AccelOp, RequantScheme
from .descriptor import (DESCRIPTOR_FIELDS, DESCRIPTOR_WORDS, MAC_CODES, OP_CODES,
                         ACCEL_OP_NAMES, descriptor_words)
from .memory import ACC_MEMORY_KEY, CONFIG_MEMORIES, Memory, make_memories, nhwc
from .pack import PackedWords
from .requant import RTL_REQUANT_SCHEMES, encode_requant_word, requant_count, requant_words

# The whole-network memory images of an export: image name -> the memory it is an image of.
IMAGE_MEMORY = {"weights": "weights", "bias": "bias", "requant": "requant",
                "descriptors": "descriptors", "act_init": "activations",
                "act_final": "activations", "acc": ACC_MEMORY_KEY}


def network_input_tensors(program, placement: dict) -> list[int]:
    """The tensors the host writes into the activation memory: each network input, or the
    output of the last clamp placed "input" on it."""
    root = {t: t for t in program.inputs}
    final = dict(root)
    for layer in program.layers:
        if placement.get(layer.index) == "input":
            r = root[layer.inputs[0]]
            root[layer.outputs[0]] = r
            final[r] = layer.outputs[0]
    return [final[t] for t in program.inputs]


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


def weight_shape(layer) -> tuple[int, int]:
    """(Cout, K) of :func:`weight_matrix`, without building it."""
    s = tuple(int(d) for d in np.shape(layer.params.weights))
    if layer.op == "DEPTHWISE_CONV_2D":
        return s[3], s[1] * s[2]
    return s[0], int(np.prod(s[1:], dtype=np.int64))


def array_read_tensors(program, placement: dict) -> set[int]:
    """The tensors the array reads from the activation memory: the inputs of array layers,
    and the inputs of the aliases (RESHAPE/SQUEEZE) of such tensors. A network input or a host
    layer's output gets a region only if it is one of these (the host writes it there)."""
    need = {t for layer in program.layers if placement.get(layer.index) == "array"
            for t in layer.inputs}
    for layer in reversed(program.layers):
        if placement.get(layer.index) == "alias" and layer.outputs[0] in need:
            need.update(layer.inputs if layer.op == "CONCATENATION" else layer.inputs[:1])
    return need


def _describe_op(layer) -> str:
    return f"op {layer.index} ({layer.op})"


def _elements(program, t: int) -> int:
    return int(np.prod(program.tensors[t].shape, dtype=np.int64))


# -- the memory plan ----------------------------------------------------------------------------
@dataclass
class MemoryPlan:
    """Addresses and word counts of every region (:func:`allocate`)."""
    memories: dict[str, Memory]
    regions: dict[int, tuple[int, int]]  # tensor index -> (base, words) in activation memory
    aliases: list[dict]  # RESHAPE/SQUEEZE layers: {index, op, tensor, alias_of, base}
    inputs: list[int]  # the tensors the host writes (a network input, or its "input" clamp)
    fused: list[dict]  # clamps: {index, op, placement, into}
    bases: dict[int, dict]  # array layer index -> {w_base, b_base, rq_base, acc_base, wpc}
    positions: dict[int, int]  # array layer index -> descriptor position
    overflows: list[tuple[int, str, str]]  # (layer, op, message): each memory's first overflow
    problems: dict[int, str]  # alias layer index -> why it cannot alias
    # tensor -> elements from one pixel to the next in memory: the inputs of a CONCATENATION
    # alias along C (their region spans from their first to their last element)
    strides: dict[int, int] = field(default_factory=dict)

    def usage(self) -> dict:
        """{memory: {"words": used, "capacity": depth * banks}} of the config's memories."""
        return {k: {"words": self.memories[k].used_words, "capacity": self.memories[k].capacity}
                for k in CONFIG_MEMORIES}


def allocate(program, config, placement: dict) -> MemoryPlan:
    """Allocate every region of ``program`` placed as ``placement`` ({layer index: "array" |
    "alias" | "fused" | "input" | "host"}), in execution order, each aligned: the network's
    input tensors, then per array layer its weights, bias, requant words, accumulators and
    output tensors; RESHAPE/SQUEEZE aliases share their input's region, a CONCATENATION alias's
    region is allocated with its first input and each input is a run of it; then the descriptors
    (one per array layer and the end descriptor). A network input, or a host layer's output, is
    in the activation memory when the array reads it (:func:`array_read_tensors`): the host
    writes it there (a host layer's output at that layer's place in execution order); an alias
    of a tensor that is not in memory is not either (``base`` None). Never raises for a full
    memory: the first region past each memory's depth x banks is reported in ``overflows``."""
    mems = make_memories(config, 64 if config.accumulator.bits > 32 else 32, check=False)
    overflows: list[tuple[int, str, str]] = []

    def alloc(key: str, words: int, what: str, layer) -> int:
        m = mems[key]
        base = m.alloc(words, what)
        cap = m.capacity
        if cap is not None and m.used_words > cap and \
                not any(o[2].startswith(f"memories.{key}:") for o in overflows):
            overflows.append((layer.index if layer is not None else -1,
                              layer.op if layer is not None else "input",
                              f"memories.{key}: {m.used_words} words needed up to here, "
                              f"capacity depth x banks = {m.depth} x {m.banks} = {cap}"))
        return base

    act = mems["activations"]
    regions: dict[int, tuple[int, int]] = {}

    # a CONCATENATION placed "alias": each input is written in place into its output's region
    # (hwsim.passes.place.concat_alias_problem: contiguous runs starting on a word, or along C
    # of NHWC with more than one pixel, channel slices starting on a word: strided)
    concat_part: dict[int, tuple[object, int]] = {}  # input tensor -> (layer, element offset)
    strides: dict[int, int] = {}
    for layer in program.layers:
        if placement[layer.index] == "alias" and layer.op == "CONCATENATION":
            out = program.tensors[layer.outputs[0]].shape
            off = 0
            strided = int(np.prod(out[:layer.params.axis], dtype=np.int64)) != 1
            for t in layer.inputs:
                concat_part[t] = (layer, off)
                if strided:   # the first pixel's channels start at the channel offset
                    strides[t] = int(out[3])
                    off += int(program.tensors[t].shape[3])
                else:
                    off += _elements(program, t)

    def region_of(t: int, what: str, layer) -> tuple[int, int]:
        if t not in regions and t in concat_part:
            cat, off = concat_part[t]
            whole = region_of(cat.outputs[0], f"output of layer {cat.index} (CONCATENATION, "
                                              f"written by its inputs' layers)", layer)
            span = _elements(program, t)
            if t in strides:   # pixel p, channel c at element p * stride + c of the span
                c = int(program.tensors[t].shape[3])
                span = (span // c - 1) * strides[t] + c
            regions[t] = (whole[0] + off // act.lanes, act.words_for(span))
        if t not in regions:
            words = act.words_for(_elements(program, t))
            regions[t] = (alloc("activations", words, what, layer), words)
        return regions[t]

    need = array_read_tensors(program, placement)
    host_inputs = [t for t in network_input_tensors(program, placement) if t in need]
    for t in host_inputs:
        region_of(t, f"input {t}", None)
    aliases, fused, bases, positions, problems = [], [], {}, {}, {}
    for layer in program.layers:
        kind = placement[layer.index]
        if kind in ("fused", "input"):
            fused.append({"index": layer.index, "op": layer.op, "placement": kind,
                          "into": int(layer.params.fused_into) if kind == "fused"
                          else "input"})
            continue
        if kind == "alias" and layer.op == "CONCATENATION":
            dst = layer.outputs[0]
            if dst not in regions or any(t not in regions for t in layer.inputs):
                problems[layer.index] = (f"{_describe_op(layer)}: its inputs are not in the "
                                         f"activation memory")
                continue
            aliases.append({"index": layer.index, "op": layer.op, "tensor": dst,
                            "alias_of": layer.inputs[0], "base": regions[dst][0],
                            "concat_of": list(layer.inputs)})
            continue
        if kind == "alias":
            src, dst = layer.inputs[0], layer.outputs[0]
            if src not in regions:
                if dst in need:
                    problems[layer.index] = (f"{_describe_op(layer)}: its input {src} is not "
                                             f"in the activation memory")
                    continue
                aliases.append({"index": layer.index, "op": layer.op, "tensor": dst,
                                "alias_of": src, "base": None})   # host-side data
                continue
            regions[dst] = regions[src]
            aliases.append({"index": layer.index, "op": layer.op, "tensor": dst,
                            "alias_of": src, "base": regions[src][0]})
            continue
        if kind == "host":   # where the array reads the host's output
            for t in layer.outputs:
                if t in need:
                    region_of(t, f"output of host layer {layer.index} ({layer.op})", layer)
            continue
        if kind != "array":
            continue
        what = f"layer {layer.index} ({layer.op})"
        p, b = layer.params, {}
        if layer.op in OP_CODES and OP_CODES[layer.op] in MAC_CODES:
            cout, k = weight_shape(layer)
            b["wpc"] = mems["weights"].words_for(k)
            b["w_base"] = alloc("weights", cout * b["wpc"], f"weights of {what}", layer)
            b["b_base"] = alloc("bias", mems["bias"].words_for(cout), f"bias of {what}", layer)
            b["rq_base"] = alloc("requant",
                                 mems["requant"].words_for(requant_count(p.requant, cout)),
                                 f"requant of {what}", layer)
            b["acc_base"] = alloc(ACC_MEMORY_KEY, _elements(program, layer.outputs[0]),
                                  f"accumulators of {what}", layer)
        elif layer.op in ("ADD", "SUB", "MUL", "MEAN"):  # one requant word (the output's)
            b["rq_base"] = alloc("requant", 1, f"requant of {what}", layer)
        elif layer.op == "RESIZE_NEAREST_NEIGHBOR":  # out_h + out_w 16-bit source indices
            n = len(p.y_index) + len(p.x_index)
            b["w_base"] = alloc("weights", mems["weights"].words_for(2 * n),
                                f"indices of {what}", layer)
        elif layer.op in TABLE_OPS:  # the table: 2^b entries of the weight memory's lanes
            d = config.data
            b["table"] = (d.input_bits, d.input_signed, d.output_bits, d.output_signed)
            b["w_base"] = alloc("weights", mems["weights"].words_for(1 << d.input_bits),
                                f"table of {what}", layer)
        for t in layer.outputs:
            region_of(t, f"output of {what}", layer)
        bases[layer.index] = b
        positions[layer.index] = len(positions)
    mems["descriptors"].alloc((len(positions) + 1) * DESCRIPTOR_WORDS, "descriptors")
    return MemoryPlan(mems, regions, aliases, host_inputs, fused, bases, positions, overflows,
                      problems, strides)


# -- the export's plan --------------------------------------------------------------------------
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
    # elements from one pixel to the next in memory (0: dense); the words from base span the
    # pixels (a CONCATENATION alias's input along C)
    pixel_stride: int = 0

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
    table: np.ndarray | None = None  # TABLE layers: output code of input code lo + j
    requant_fields: dict = field(default_factory=dict)

    @property
    def accel_op(self) -> str:
        return ACCEL_OP_NAMES.get(self.code, "HOST")

    def descriptor_words(self) -> list[int]:
        """The 64 descriptor words (unsigned 32-bit: two's complement of the field values)."""
        return descriptor_words(self.fields)


@dataclass
class NetworkPlan:
    layers: list[LayerPlan]  # array and host layers, in execution order
    memories: dict[str, Memory]
    regions: dict[int, tuple[int, int]]  # tensor index -> (base, words) in activation memory
    aliases: list[dict]  # RESHAPE/SQUEEZE layers: {index, op, tensor, alias_of}
    inputs: list[int]  # the tensors the host writes (a network input, or its "input" clamp)
    outputs: list[int]
    fused: list[dict] = field(default_factory=list)  # clamps: {index, op, placement, into}
    strides: dict[int, int] = field(default_factory=dict)  # tensor -> pixel stride (MemoryPlan)

    @property
    def array_layers(self) -> list[LayerPlan]:
        return [lp for lp in self.layers if not lp.host]


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
    if op in ELEMENTWISE_OPS:
        if p.constants or len(layer.inputs) != 2:
            return f"has a constant operand; the array's {op} takes two activations"
        a, b = (tuple(program.tensors[i].shape) for i in layer.inputs)
        if a != b or tuple(program.tensors[layer.outputs[0]].shape) != a:
            return f"broadcasts {list(a)} with {list(b)}; the array's {op} needs equal shapes"
        if getattr(p, "pot", False):
            return "uses the int16 power-of-two path"
    if op in TABLE_OPS and mems["activations"].elem_bits > 8:
        return "is a table op on 16-bit data; the table unit holds data of up to 8 bits"
    if op == "MEAN" and (len(program.tensors[layer.inputs[0]].shape) != 4
                         or tuple(p.reduced_axes) != (1, 2)):
        return "is not a MEAN over H and W of an NHWC tensor"
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and p.acc_int64 \
            and mems["bias"].elem_bits < 64:
        return "accumulates in int64 with an int64 bias (16x8); the bias memory has 32-bit " \
               "elements (64-bit with memories.bias.word_bits >= 64 and accumulator.bits > 32)"
    return None


def _folder(index: int, op: str, width: int) -> str:
    return f"layers/{index:0{width}d}_{op.lower()}"


def _spec(program, kind: str, t: int, region, stride: int = 0) -> VectorSpec:
    info = program.tensors[t]
    base, words = region if region is not None else (None, 0)
    return VectorSpec(kind, t, info.name, tuple(info.shape),
                      str(np.dtype(info.dtype)) if info.dtype is not None else "unknown",
                      "activations" if base is not None else None, base, words, stride)


def plan_network(program, config, placement: dict, tables: dict | None = None) -> NetworkPlan:
    """Lay the program out in the accelerator's memories (accel-interface.md): the addresses
    of :func:`allocate`, the packed words and descriptor fields of every array layer.

    ``placement`` is where each layer runs, as hwsim.hw.map_network decided. "fused" and
    "input" clamps get no layer plan (the array layer they are fused into writes their output;
    the host writes a clamped network input: ``inputs`` lists the tensors the host writes).
    Raises HwsimError for an array layer outside the interface (e.g. not int8) and for a
    memory whose words do not fit its depth. ``tables``: {layer index: table} of the TABLE
    layers (hwsim.kernels.table.network_tables: the layers' own kernels on every input code).
    """
    layers = program.layers
    checked = make_memories(config, 64 if config.accumulator.bits > 32 else 32)
    for layer in layers:
        if placement[layer.index] == "array":
            problem = _array_layer_problem(layer, program, checked)
            if problem:
                raise HwsimError(f"{_describe_op(layer)} {problem}")
    act_dt = np.dtype(f"int{checked['activations'].elem_bits}")
    need = array_read_tensors(program, placement)
    for t in network_input_tensors(program, placement):
        if t not in need:
            continue   # read by host layers only: not in the activation memory
        info = program.tensors[t]
        if info.dtype is None or np.dtype(info.dtype) != act_dt:
            raise HwsimError(f"network input {t} '{info.name}' is {info.dtype}; the array's "
                             f"activations are {act_dt}")
    mp = allocate(program, config, placement)
    mems, regions = mp.memories, mp.regions
    width = max(2, len(str(max((layer.index for layer in layers), default=0))))
    plans: list[LayerPlan] = []
    for layer in layers:
        kind = placement[layer.index]
        if kind in ("fused", "input"):
            continue
        if kind == "alias":
            if layer.index in mp.problems:
                raise HwsimError(mp.problems[layer.index])
            continue
        host = kind == "host"
        code = int(AccelOp.END) if host else OP_CODES[layer.op]
        lp = LayerPlan(layer.index, layer.op, code, host, _folder(layer.index, layer.op, width),
                       mp.positions.get(layer.index), layer)
        if code == AccelOp.TABLE:
            lp.table = (tables or {}).get(layer.index)
        for j, t in enumerate(layer.inputs):
            kind_j = "input" if j == 0 else f"input{j + 1}"
            lp.vectors[kind_j] = _spec(program, kind_j, t, regions.get(t))
        if not host:
            _plan_array_layer(lp, program, mems, mp.bases[layer.index],
                              f"layer {layer.index} ({layer.op})")
        for j, t in enumerate(layer.outputs):
            key = "output" if j == 0 else f"output{j + 1}"
            lp.vectors[key] = _spec(program, key, t, regions.get(t), mp.strides.get(t, 0))
        if not host:
            lp.fields["out_base"] = lp.vectors["output"].base
            lp.fields["out_pix_stride"] = lp.vectors["output"].pixel_stride
        plans.append(lp)
    for m in mems.values():
        m.check_depth()
    return NetworkPlan(plans, mems, regions, mp.aliases, mp.inputs, list(program.outputs),
                       mp.fused, mp.strides)


def _plan_array_layer(lp: LayerPlan, program, mems: dict[str, Memory], bases: dict,
                      what: str) -> None:
    layer, p = lp.layer, lp.layer.params
    x = lp.vectors["input"]
    y_info = program.tensors[layer.outputs[0]]
    n, ih, iw, ic = x.nhwc
    on, oh, ow, oc = nhwc(y_info.shape)
    f = {name: 0 for name in DESCRIPTOR_FIELDS}
    act_min, act_max = p.clamp() or (0, 0)  # TABLE and MEAN layers have none (see below)
    f.update(op=lp.code, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, batch=n,
             in_base=x.base, act_min=act_min, act_max=act_max)
    if lp.code in MAC_CODES:
        wm = weight_matrix(layer)
        cout, k = wm.shape
        wgt = mems["weights"]
        wpc = bases["wpc"]
        padded = np.zeros((cout, wpc * wgt.lanes), dtype=np.int8)
        padded[:, :k] = wm
        lp.weight_matrix = wm
        lp.weights = wgt.pack(padded)
        bias = p.bias
        has_bias = bias is not None
        bias = np.zeros(cout, np.int32) if bias is None else np.asarray(bias).reshape(-1)
        lp.bias = mems["bias"].pack(bias)
        rq = p.requant
        rq_words, per_channel, lp.requant_fields = requant_words(rq, cout, what)
        lp.requant = mems["requant"].pack(rq_words)
        f.update(w_base=bases["w_base"], b_base=bases["b_base"], rq_base=bases["rq_base"],
                 words_per_channel=wpc, requant_scheme=int(rq.scheme),
                 rounding=int(rq.rounding), has_bias=int(has_bias),
                 per_channel=int(per_channel), input_offset=int(p.input_offset),
                 output_offset=int(rq.out_zp), acc_base=bases["acc_base"])
        lp.vectors["acc"] = VectorSpec("acc", None, f"accumulators of layer {layer.index}",
                                       (on, oh, ow, oc) if lp.code != AccelOp.FC else
                                       (int(p.batch), cout),
                                       "int64" if p.acc_int64 else "int32",
                                       ACC_MEMORY_KEY, bases["acc_base"],
                                       int(np.prod(y_info.shape, dtype=np.int64)))
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
        lp.requant_fields = {"scheme": RTL_REQUANT_SCHEMES[scheme], "per_channel": False,
                             "multiplier": [int(p.output_multiplier)],
                             "shift": [int(p.output_shift)]}
        f.update(in2_base=lp.vectors["input2"].base, rq_base=bases["rq_base"],
                 input_offset=int(p.input1_offset), input2_offset=int(p.input2_offset),
                 output_offset=int(p.output_offset), add_left_shift=int(p.left_shift),
                 add_in1_multiplier=int(p.input1_multiplier),
                 add_in1_shift=int(p.input1_shift),
                 add_in2_multiplier=int(p.input2_multiplier),
                 add_in2_shift=int(p.input2_shift), requant_scheme=scheme)
    else:
        _plan_element_unit(lp, p, f, x, mems, bases, what)
    lp.fields = f


def _plan_element_unit(lp: LayerPlan, p, f: dict, x, mems, bases: dict, what: str) -> None:
    """SUB (the ADD lanes' fields), MUL, MEAN, RESIZE and TABLE layers
    (docs/dev/accel-interface.md)."""
    if lp.code in (AccelOp.SUB, AccelOp.MUL, AccelOp.MEAN):
        mean = lp.code == AccelOp.MEAN
        scheme = int(RequantScheme.tflite_single if p.single_rounding
                     else RequantScheme.tflite_double)
        m, e = (p.multiplier, p.shift) if mean else (p.output_multiplier, p.output_shift)
        lp.requant = mems["requant"].pack([encode_requant_word(scheme, int(m), int(e))])
        lp.requant_fields = {"scheme": RTL_REQUANT_SCHEMES[scheme], "per_channel": False,
                             "multiplier": [int(m)], "shift": [int(e)]}
        f.update(rq_base=bases["rq_base"], requant_scheme=scheme)
    if lp.code == AccelOp.SUB:
        f.update(in2_base=lp.vectors["input2"].base, input_offset=int(p.input1_offset),
                 input2_offset=int(p.input2_offset), output_offset=int(p.output_offset),
                 add_left_shift=int(p.left_shift), add_in1_multiplier=int(p.input1_multiplier),
                 add_in1_shift=int(p.input1_shift), add_in2_multiplier=int(p.input2_multiplier),
                 add_in2_shift=int(p.input2_shift))
    elif lp.code == AccelOp.MUL:
        f.update(in2_base=lp.vectors["input2"].base, input_offset=int(p.input1_offset),
                 input2_offset=int(p.input2_offset), output_offset=int(p.output_offset))
    elif lp.code == AccelOp.MEAN:  # the pool walk with one H x W window per output pixel
        f.update(kh=f["in_h"], kw=f["in_w"], stride_h=1, stride_w=1, dilation_h=1,
                 dilation_w=1, input_offset=-int(p.in_zp), output_offset=int(p.out_zp),
                 act_min=int(p.qmin), act_max=int(p.qmax))
    elif lp.code == AccelOp.RESIZE:  # the pool walk, 1 x 1, from the index table's pixels
        idx = np.concatenate([np.asarray(p.y_index), np.asarray(p.x_index)]).astype(np.int64)
        if idx.min() < 0 or idx.max() >= 1 << 16:
            raise HwsimError(f"{what}: source indices in [{int(idx.min())}, {int(idx.max())}] "
                             f"do not fit 16 bits")
        lp.table = idx
        lo_hi = np.stack([idx & 0xFF, idx >> 8], axis=1).reshape(-1)  # low byte first
        lp.weights = mems["weights"].pack(lo_hi.astype(np.uint8).view(np.int8))
        info = np.iinfo(np.dtype(x.dtype))
        f.update(kh=1, kw=1, stride_h=1, stride_w=1, dilation_h=1, dilation_w=1,
                 act_min=int(info.min), act_max=int(info.max), w_base=bases["w_base"],
                 words_per_channel=len(lp.weights))
    elif lp.code == AccelOp.TABLE:
        bits, signed, out_bits, out_signed = bases["table"]
        table = lp.table
        if table is None or len(table) != 1 << bits:
            raise HwsimError(f"{what}: no table of {1 << bits} entries was given "
                             f"(hwsim.kernels.table.network_tables)")
        lo, hi = (-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1) if out_signed else \
            (0, (1 << out_bits) - 1)
        if table.min() < lo or table.max() > hi:
            raise HwsimError(f"{what}: table outputs in [{int(table.min())}, "
                             f"{int(table.max())}] do not fit the {out_bits}-bit outputs "
                             f"(data.output_bits)")
        lp.table = table
        # one int8 lane per entry: the output code's low byte (unsigned codes read back as
        # OUT_BITS unsigned bits by the RTL)
        lp.weights = mems["weights"].pack((table & 0xFF).astype(np.uint8).view(np.int8))
        f.update(w_base=bases["w_base"], words_per_channel=len(lp.weights))


# -- vectors in memory ----------------------------------------------------------------------------
def vector_rank(kind: str) -> tuple[int, str]:
    """The order of a layer's vectors: input, input2, ..., acc, output, output2, ..."""
    return ({"acc": 1, "output": 2}.get(kind, 0 if kind.startswith("input") else 3), kind)


def vector_layout(spec, mems) -> dict | None:
    """How a vector's elements sit in words: pack_words/unpack_words arguments (None: a float
    host tensor, in vectors.h5 only)."""
    if spec.memory == ACC_MEMORY_KEY:
        return mems[ACC_MEMORY_KEY].layout()
    dt = np.dtype(spec.dtype) if spec.dtype != "unknown" else None
    if dt is None or dt.kind not in "iu":
        return None
    if dt.kind == "i" and 8 * dt.itemsize == mems["activations"].elem_bits:
        return mems["activations"].layout()
    return dict(elem_bits=8 * dt.itemsize, signed=dt.kind == "i", lanes_per_word=1,
                word_bits=8 * dt.itemsize, lane_order="lsb_first")


def strided_index(spec) -> np.ndarray | None:
    """Where a vector's elements (flat NHWC) sit among the elements its words span: pixel p,
    channel c at p * pixel_stride + c (None: dense, element i at i). ``spec``: a VectorSpec or
    a manifest vector entry."""
    get = spec.get if isinstance(spec, dict) else lambda k, d=None: getattr(spec, k, d)
    stride = int(get("pixel_stride", 0) or 0)
    if not stride:
        return None
    c = int(list(get("nhwc"))[3])
    pixels = int(get("elements")) // c
    return (np.arange(pixels, dtype=np.int64)[:, None] * stride
            + np.arange(c, dtype=np.int64)).reshape(-1)


def vector_values(lp, spec, trace) -> np.ndarray:
    """The golden values of a layer's vector in a run's trace."""
    if spec.kind == "acc":
        return np.asarray(trace.accumulators[lp.index])
    return np.asarray(trace.tensors[spec.tensor])
