"""Facts about the TFLite flatbuffer schema shared by the reader and the writer.

The generated accessor/builder classes come from the ``tflite`` package (pure Python, no
TensorFlow); this module holds the name <-> code tables and enum translations, once.
"""
from __future__ import annotations

import importlib
import re
from functools import lru_cache

import numpy as np

FILE_IDENTIFIER = b"TFL3"

# TensorType code -> numpy dtype (None: not representable as an array here)
TENSOR_TYPES: dict[int, np.dtype | None] = {
    0: np.dtype(np.float32), 1: np.dtype(np.float16), 2: np.dtype(np.int32), 3: np.dtype(np.uint8),
    4: np.dtype(np.int64), 5: None, 6: np.dtype(np.bool_), 7: np.dtype(np.int16),
    8: np.dtype(np.complex64), 9: np.dtype(np.int8), 10: np.dtype(np.float64),
    11: np.dtype(np.complex128), 12: np.dtype(np.uint64), 15: np.dtype(np.uint32),
    16: np.dtype(np.uint16),
}
DTYPE_TO_TENSOR_TYPE = {v: k for k, v in TENSOR_TYPES.items() if v is not None}

# Options fields whose integer value is an enum: field -> {code: name}
ENUM_FIELDS: dict[str, dict[int, str]] = {
    "padding": {0: "SAME", 1: "VALID"},
    "fused_activation_function": {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH",
                                  5: "SIGN_BIT"},
    "weights_format": {0: "DEFAULT", 1: "SHUFFLED4x16INT8"},
    "mode": {0: "REFLECT", 1: "SYMMETRIC"},  # MirrorPadOptions
}

# Builtin op -> name of its options table, for the ops the writer emits.
OPTIONS_FOR_OP: dict[str, str] = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "MAX_POOL_2D": "Pool2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "ADD": "AddOptions", "SUB": "SubOptions",
    "MUL": "MulOptions", "CONCATENATION": "ConcatenationOptions", "PAD": "PadOptions",
    "PADV2": "PadV2Options", "RESHAPE": "ReshapeOptions", "SQUEEZE": "SqueezeOptions",
    "TRANSPOSE": "TransposeOptions", "STRIDED_SLICE": "StridedSliceOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions", "LEAKY_RELU": "LeakyReluOptions",
    "HARD_SWISH": "HardSwishOptions", "SOFTMAX": "SoftmaxOptions", "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions", "QUANTIZE": "QuantizeOptions", "DEQUANTIZE": "DequantizeOptions",
    "SPLIT": "SplitOptions", "GATHER": "GatherOptions", "SVDF": "SVDFOptions",
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
}


# Inputs and outputs of the builtins hwsim lowers, as TFLite's kernels check them:
# op -> (min inputs, max inputs or None for any number, outputs). Inputs from position
# "min inputs" on are optional (tensor index -1 marks an absent one).
OP_ARITY: dict[str, tuple[int, int | None, int]] = {
    "CONV_2D": (2, 3, 1), "DEPTHWISE_CONV_2D": (2, 3, 1), "FULLY_CONNECTED": (2, 3, 1),
    "MAX_POOL_2D": (1, 1, 1), "AVERAGE_POOL_2D": (1, 1, 1), "MEAN": (2, 2, 1),
    "ADD": (2, 2, 1), "SUB": (2, 2, 1), "MUL": (2, 2, 1), "MAXIMUM": (2, 2, 1),
    "MINIMUM": (2, 2, 1), "CONCATENATION": (1, None, 1), "PAD": (2, 2, 1), "PADV2": (2, 3, 1),
    "RESHAPE": (1, 2, 1), "SQUEEZE": (1, 1, 1), "TRANSPOSE": (2, 2, 1),
    "STRIDED_SLICE": (4, 4, 1), "RESIZE_NEAREST_NEIGHBOR": (2, 2, 1),
    "RESIZE_BILINEAR": (2, 2, 1), "SOFTMAX": (1, 1, 1), "LOGISTIC": (1, 1, 1),
    "TANH": (1, 1, 1), "RELU": (1, 1, 1), "RELU6": (1, 1, 1), "RELU_N1_TO_1": (1, 1, 1),
    "RELU_0_TO_1": (1, 1, 1), "LEAKY_RELU": (1, 1, 1), "HARD_SWISH": (1, 1, 1),
    "QUANTIZE": (1, 1, 1), "DEQUANTIZE": (1, 1, 1),
}

# Options that are a size, stride or dilation: TFLite's kernels need them >= 1.
POSITIVE_OPTIONS = ("stride_w", "stride_h", "dilation_w_factor", "dilation_h_factor",
                    "filter_width", "filter_height")


def schema_module(name: str):
    """The generated ``tflite.<name>`` module (imported alone: ``import tflite`` loads ~600)."""
    return importlib.import_module(f"tflite.{name}")


def schema_class(name: str):
    return getattr(schema_module(name), name)


@lru_cache(maxsize=None)
def builtin_operator_names() -> dict[int, str]:
    cls = schema_class("BuiltinOperator")
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@lru_cache(maxsize=None)
def builtin_operator_codes() -> dict[str, int]:
    return {v: k for k, v in builtin_operator_names().items()}


@lru_cache(maxsize=None)
def builtin_options_names() -> dict[int, str]:
    cls = schema_class("BuiltinOptions")
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@lru_cache(maxsize=None)
def builtin_options_codes() -> dict[str, int]:
    return {v: k for k, v in builtin_options_names().items()}


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(camel: str) -> str:
    return _CAMEL.sub("_", camel).lower()


def camel_case(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


@lru_cache(maxsize=None)
def options_fields(options_name: str) -> tuple[tuple[str, str, bool], ...]:
    """(snake_name, CamelName, is_vector) for every field of an options table, in schema order."""
    cls = schema_class(options_name)
    names = [n for n in vars(cls) if not n.startswith("_") and callable(getattr(cls, n))]
    skip_suffix = ("AsNumpy", "Length", "IsNone")
    fields = []
    for n in names:
        if n in ("Init",) or n.startswith("GetRootAs") or n.endswith("BufferHasIdentifier"):
            continue
        if n.endswith(skip_suffix):
            continue
        is_vector = hasattr(cls, n + "Length")
        fields.append((snake_case(n), n, is_vector))
    return tuple(fields)
