"""Typed layer parameters of ONNX Runtime's quantized kernels (hwsim.lower.onnxrt derives them,
hwsim.kernels.onnxrt runs them): the arithmetic of onnxruntime's CPU execution provider for
QLinearConv, QGemm, QLinearAdd, QLinear*Pool, QLinearConcat, QLinearSoftmax, QuantizeLinear and
DequantizeLinear (docs/onnx.md).

ORT rescales in float32, so besides integers these families carry float32 scales (numpy
float32 scalars or arrays), derived once in lowering exactly as ORT derives them (e.g.
``x_scale * w_scale / y_scale`` evaluated in float32, left to right). ``lo`` / ``hi``: the
output type's range; ``out_dtype``: its numpy dtype name.
"""
from __future__ import annotations

import numpy as np

from .params import Params, Window2d, frozen_params


@frozen_params
class OrtMacParams(Params):
    """QLinearConv / QGemm / QLinearMatMul: ``acc = bias + sum (x - x_zp) * w`` (exact int32,
    hwsim.kernels.mac), then ``saturate(round_half_even(float32(acc) * scale[c]) + out_zp)``.

    ``kind``: "conv2d", "depthwise" or "fc"; ``weights`` int8 as the MAC kernels take them
    (OHWI, [1, KH, KW, C], [Cout, K]); ``input_offset`` = -x_zp in the int8 domain of the
    kernels (a uint8 input enters as x - 128, so the offset is 128 - x_zp); ``in_uint8`` /
    ``out_dtype`` the ONNX types; ``out_zp``, ``lo``, ``hi`` in the output type; ``scale``
    float32 per output channel (or one). Geometry as hwsim.params.ConvParams; ``batch`` /
    ``depth`` / ``out_shape`` for "fc".
    """
    kind: str
    weights: np.ndarray
    bias: np.ndarray | None
    input_offset: int
    in_uint8: bool
    scale: np.ndarray
    out_zp: int
    lo: int
    hi: int
    out_dtype: str
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    out_h: int = 1
    out_w: int = 1
    groups: int = 1
    depth_multiplier: int = 1
    batch: int = 1
    depth: int = 1
    out_shape: tuple = ()
    # the MAC families' hardware-mode field (hwsim.params.MacParams.accumulator): ORT's exact
    # int32 accumulators, never an accelerator's model
    accumulator: None = None
    # the weights' zero point per output channel (int64), or None when all are 0: the layer
    # then subtracts ``w_zp[c] * sum (x - x_zp)`` over the window (uint8 weights enter as
    # w - 128 with the zero point - 128)
    w_zp: np.ndarray | None = None


@frozen_params
class OrtQuantizeParams(Params):
    """QuantizeLinear: ``saturate(round_half_even(x / scale) + zp)`` in float32."""
    scale: np.float32
    zero_point: int
    lo: int
    hi: int
    out_dtype: str


@frozen_params
class OrtDequantizeParams(Params):
    """DequantizeLinear: ``float32(x - zp) * scale``."""
    scale: np.float32
    zero_point: int


@frozen_params
class OrtGlobalPoolParams(Params):
    """QLinearGlobalAveragePool (and QLinearAveragePool windows covering the whole image):
    ``acc = sum(x) - x_zp * image_size`` (int32), then the float32 requantization with
    ``scale = x_scale / (y_scale * float32(image_size))``. NHWC: pooled over H and W."""
    bias: int
    scale: np.float32
    out_zp: int
    lo: int
    hi: int
    keep_dims: bool = True


@frozen_params
class OrtAvgPoolParams(Params):
    """QLinearAveragePool: x dequantized to float32, window sums in float32 (rows, then
    columns), divided by the count (float32), quantized as ``round_half_even(y / y_scale +
    y_zp)``. Window geometry NHWC; ``count_include_pad`` as ONNX."""
    x_scale: np.float32
    x_zp: int
    y_scale: np.float32
    y_zp: int
    lo: int
    hi: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int
    count_include_pad: bool
    # float AveragePool only: the end pads (they bound a ceil_mode window's count in ORT's
    # generic pool), and whether ORT calls MLAS's pooling, which sums in its own order
    pad_bottom: int = 0
    pad_right: int = 0
    mlas: bool = False


@frozen_params
class OrtMaxPoolParams(Window2d):
    """MaxPool on quantized tensors: the integer maximum of each window (padding ignored)."""
    kernel_h: int
    kernel_w: int


@frozen_params
class OrtAddParams(Params):
    """QLinearAdd on x86 (MlasQLinearAddKernelAvx2Helper as GCC compiles it), per element:
    ``c = fma(a, ratio_a, fma(b, ratio_b, fixed))`` in float32, rounded half to even,
    saturated to the output type; ``ratio_a = a_scale / c_scale``, ``ratio_b = b_scale /
    c_scale``, ``fixed = float(c_zp) - fma(ratio_a, a_zp, ratio_b * b_zp)`` (float32). When
    ``scalar`` is "a" (a is broadcast along the innermost axis), ORT's broadcaster swaps the
    inputs: ``fma(b, ratio_b, fma(a, ratio_a, fixed))`` with the fixed part's fma swapped
    too."""
    ratio_a: np.float32
    ratio_b: np.float32
    fixed: np.float32
    lo: int
    hi: int
    scalar: str = ""
    # a constant operand (an initializer): its integers, in the IR layout, and its place
    # (0: a, 1: b); the layer then has one run-time input
    const: np.ndarray | None = None
    const_pos: int = -1


@frozen_params
class OrtTableParams(Params):
    """A 256-entry table indexed by the input byte (QLinearConcat's requantizing copies,
    QLinearLeakyRelu, ...): ``y = table[uint8 view of x]``."""
    table: np.ndarray


@frozen_params
class OrtConcatParams(Params):
    """QLinearConcat along IR axis ``axis``: each input copied (``tables[k] is None``: same
    scale and zero point as the output) or mapped through its 256-entry table."""
    axis: int
    tables: tuple


@frozen_params
class OrtSoftmaxParams(Params):
    """QLinearSoftmax (opset 13 form, softmax over the last IR axis): a float32 table of
    exp values, per row a float32 sum in order, ``round_half_even(t * y_scale_inv / sum) +
    y_zp`` saturated to the output type."""
    table: np.ndarray
    y_scale_inv: np.float32
    y_zp: int
    signed: bool


@frozen_params
class OrtShapeParams(Params):
    """Data movement: RESHAPE to ``shape`` or TRANSPOSE by ``perm`` (integers unchanged)."""
    shape: tuple = ()
    perm: tuple = ()


@frozen_params
class OrtFloatParams(Params):
    """A float32 op ORT runs between DequantizeLinear and QuantizeLinear without fusing it
    (Sum, Add, Mul, Relu, Clip): IEEE float32, elementwise, left to right (``op``: "add",
    "mul", "relu", "clip"; ``lo`` / ``hi``: Clip's bounds)."""
    op: str
    lo: float = float("-inf")
    hi: float = float("inf")
    const: np.ndarray | None = None  # a constant operand (IR layout) and its place
    const_pos: int = -1


@frozen_params
class OrtMulParams(Params):
    """QLinearMul on x86 (SSE2 kernel of qlmul.cpp), per element (numpy broadcasting):
    ``c = round_half_even(float32((a - a_zp) * (b - b_zp)) * ratio + float(c_zp))``, the
    multiply and the add each rounded to float32, ``ratio = a_scale * b_scale / c_scale``
    (float32), saturated to the output type."""
    a_zp: int
    b_zp: int
    ratio: np.float32
    c_zp: int
    lo: int
    hi: int
    const: np.ndarray | None = None  # a constant operand, as OrtAddParams.const
    const_pos: int = -1


@frozen_params
class OrtResizeParams(Params):
    """Resize (nearest) on the integers, NHWC: output row ``i`` reads input row
    ``rows[i]``, output column ``j`` input column ``cols[j]``."""
    rows: np.ndarray
    cols: np.ndarray


@frozen_params
class OrtResizeLinearParams(Params):
    """Resize (linear) as ORT's CPU kernels run it, over two axes ``axes`` of the IR tensor:
    output index ``i`` along an axis reads inputs ``i1[i]`` and ``i2[i]`` with weights ``w1[i]``
    (toward ``i2``) and ``w2[i]`` (toward ``i1``), the ``_h`` tables for the first axis,
    ``_w`` for the second.

    ``integer`` (NhwcUpsampleBilinearInteger, int8 / uint8 data in NHWC): the weights are
    10-bit integers and ``y = (w2h*w2w*X11 + w2h*w1w*X21 + w1h*w2w*X12 + w1h*w1w*X22) / 2^20``
    in int32, the division truncating toward zero. Otherwise (UpsampleBilinear): float32
    weights, ``((c11*X11 + c21*X21) + c12*X12) + c22*X22`` with ``c11 = w2w * w2h`` etc., each
    step rounded to float32; an integer output is that value truncated (``static_cast<T>``)."""
    axes: tuple
    i1_h: np.ndarray
    i2_h: np.ndarray
    w1_h: np.ndarray
    w2_h: np.ndarray
    i1_w: np.ndarray
    i2_w: np.ndarray
    w1_w: np.ndarray
    w2_w: np.ndarray
    integer: bool


@frozen_params
class OrtResizeCubicParams(Params):
    """Resize (cubic) of float32 NHWC data as ORT's ResizeBiCubic computes it (upsample.cc):
    first the 1-D interpolations along W it caches, ``v[e] = sum_k float32(wx[e, k] *
    X[rows[e], cols[e, k]])`` (left to right, each step float32), then per output pixel
    ``y = sum_i float32(float32(v[entry[y, x, i]] * cy[y, i]) / ysum[y])``. ``entry`` names
    the cache entry ORT reads, which is the one first written under the same key (the
    fractional part of the x coordinate and ``row * W + x_int - 1``)."""
    rows: np.ndarray
    cols: np.ndarray
    wx: np.ndarray
    entry: np.ndarray
    cy: np.ndarray
    ysum: np.ndarray
