"""``hwsim quantize ... --format onnx-qdq``: a QDQ ONNX model with hwsim's calibration.

The float ONNX model is prepared as onnxruntime.quantization recommends (``quant_pre_process``:
shape inference and its graph optimizations, BatchNormalization folded into the convolutions)
and quantized by onnxruntime's own QDQ quantizer (the well-kept writer of the format ORT fuses
into its integer kernels), with the activation ranges hwsim's calibration chose (``--method``:
minmax, percentile, kl, mse, auto ...) instead of ORT's calibrators: each activation's range is
``[s * (qmin - z), s * (qmax - z)]`` of hwsim's scale ``s`` and zero point ``z``.

Activations are uint8 and weights int8 (per output channel unless ``--per-tensor``), the form
ORT 1.32 fuses completely on x86 (with int8 activations it computes some groups in float:
docs/onnx.md), so onnxruntime runs the written model with exactly the integers ``hwsim run``
computes for it (hwsim.frontends.onnx_quant, ORT's semantics). Weights are quantized by ORT's
quantizer (symmetric max-abs, as hwsim's default ``--weights maxabs``).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from ..ir import HwsimError, InputError

# Ops whose output has its input's quantization (ORT drops their Q/DQ pair): a value hwsim
# does not keep a tensor for takes its input's range.
_SAME_RANGE = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "Identity",
               "Dropout", "Relu")


def activation_ranges(q, model) -> dict[str, tuple[float, float]]:
    """hwsim's range of every ONNX value of ``model`` it quantized (by name): from the float
    graph's ``value_map`` and the quantized graph's scale and zero point."""
    fg = q.float_graph
    vm = getattr(fg, "value_map", {})
    ranges = {}
    for name, (t, _) in vm.items():
        info = q.activations.get(t)
        if info is None:
            continue
        qt = q.graph.tensors[t].quant
        s, z = float(qt.scales[0]), int(qt.zero_points[0])
        lo_q, hi_q = (-128, 127) if info.dtype == "int8" else (-32768, 32767)
        ranges[name] = (s * (lo_q - z), s * (hi_q - z))
    for node in model.graph.node:  # values without a tensor of their own
        if node.op_type in _SAME_RANGE and node.input and node.input[0] in ranges:
            for o in node.output[:1]:
                ranges.setdefault(o, ranges[node.input[0]])
    for node in model.graph.node:
        # the input of a Relu / Clip hwsim fused into its producer: ORT's quantizer drops the
        # activation and gives the producer the activation's output quantization
        if node.op_type in ("Relu", "Clip") and node.output[0] in ranges:
            ranges.setdefault(node.input[0], ranges[node.output[0]])
    return ranges


def write_onnx_qdq(q, model_path: str, out_path: str, per_channel: bool = True) -> None:
    """Write the QDQ model of float ONNX ``model_path`` with the ranges of QuantResult ``q``."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..util import atomic_write_bytes
    if q.options.activation_bits not in (None, 8) or getattr(q.options, "weight_bits", 8) != 8:
        raise InputError("--format onnx-qdq writes 8-bit activations and weights "
                         "(drop --activation-bits / --weight-bits)")
    with tempfile.TemporaryDirectory() as d:
        pre = os.path.join(d, "pre.onnx")
        try:
            quant_pre_process(onnx.load(model_path), pre, skip_symbolic_shape=True)
        except Exception as e:  # noqa: BLE001 -- ORT's optimizer reports a model it cannot take
            raise HwsimError(f"{model_path}: onnxruntime's quant_pre_process failed "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
        model = onnx.load(pre)
        ranges = activation_ranges(q, model)
        data = TensorsData(CalibrationMethod.MinMax,
                           {n: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
                            for n, (lo, hi) in ranges.items()})
        # the op types quantize_static quantizes by default
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
        ops = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
        quantizer = QDQQuantizer(model, per_channel, False, QuantType.QInt8, QuantType.QUInt8,
                                 data, [], [], ops, {})
        quantizer.quantize_model()
        quantizer.model.topological_sort()  # as quantize_static saves it
        atomic_write_bytes(out_path, quantizer.model.model.SerializeToString())
