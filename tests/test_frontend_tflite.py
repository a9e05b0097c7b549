"""The .tflite reader refuses a malformed model in one line before anything runs it (cases the
seeded fuzz test, tests/test_fuzz.py, found as tracebacks in lowering or the engine)."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from hwsim import examples
from hwsim.cli import main
from hwsim.frontends.tflite_reader import parse_tflite, read_tflite
from hwsim.frontends.tflite_writer import serialize_tflite
from hwsim.ir import ModelError

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")


def _edited(edit) -> bytes:
    g = examples.example_graph(0)
    edit(g)
    return serialize_tflite(g)


def _scale(g, t, v):
    g.tensors[t].quant.scales = np.array([v], np.float32)


def _zp(g, t, v):
    g.tensors[t].quant.zero_points = np.array([v], np.int64)


def _drop_op(g, k):
    del g.ops[k]
    for j, op in enumerate(g.ops):
        op.index = j


MALFORMED = [  # (id, edit of the example graph, message)
    ("graph input -1", lambda g: g.inputs.__setitem__(0, -1),
     "graph input -1 is not a tensor (the subgraph has 28)"),
    ("graph output out of range", lambda g: g.outputs.__setitem__(0, 28),
     "graph output 28 is not a tensor"),
    ("an op removed", lambda g: _drop_op(g, 8),
     "op 8 (RESHAPE) reads tensor 21 'head/maxpool2x2', which is not a graph input, not a "
     "constant and not written by an earlier op"),
    ("weights as the graph input", lambda g: g.inputs.__setitem__(0, 1),
     "op 0 (CONV_2D) reads tensor 0 'input'"),
    ("scale nan", lambda g: _scale(g, 16, np.nan),
     "tensor 16 'block2/dwconv3x3': quantization scale nan is not a positive finite number"),
    ("scale inf", lambda g: _scale(g, 3, np.inf), "quantization scale inf is not a positive"),
    ("scale 0", lambda g: _scale(g, 3, 0.0), "quantization scale 0.0 is not a positive"),
    ("zero point outside int8", lambda g: _zp(g, 23, 1000),
     "tensor 23 'head/flatten': zero point 1000 is outside the int8 range [-128, 127]"),
    ("dilation -2^31", lambda g: g.ops[1].attrs.__setitem__("dilation_w_factor", -2**31),
     "op 1 (DEPTHWISE_CONV_2D): option dilation_w_factor=-2147483648, must be >= 1"),
    ("stride 0", lambda g: g.ops[8].attrs.__setitem__("stride_h", 0),
     "op 8 (MAX_POOL_2D): option stride_h=0, must be >= 1"),
    ("ADD with one input", lambda g: g.ops[3].inputs.pop(),
     "op 3 (ADD) has 1 inputs, it takes 2"),
    ("pool without input", lambda g: g.ops[8].inputs.clear(),
     "op 8 (MAX_POOL_2D) has 0 inputs, it takes 1"),
    ("conv weights absent", lambda g: g.ops[0].inputs.__setitem__(1, -1),
     "op 0 (CONV_2D): input 1 is required but absent (-1)"),
    ("an input dimension 0", lambda g: setattr(g.tensors[0], "shape", (1, 32, 32, 0)),
     "tensor 0 'input' has shape [1, 32, 32, 0]: dimensions must be >= 1"),
    ("a negative dimension", lambda g: setattr(g.tensors[3], "shape", (1, -1, 16, 24)),
     "tensor 3 'block1/conv3x3_s2' has shape [1, -1, 16, 24]"),
    ("two writers", lambda g: g.ops[2].outputs.__setitem__(0, 6),
     "op 2 (CONV_2D) writes tensor 6"),
    ("a constant as the graph output", lambda g: g.outputs.__setitem__(0, 1),
     "graph output 1 'block1/conv3x3_s2/weights' is not written by any op"),
    ("control characters in a name", lambda g: (setattr(g.tensors[21], "name", "a\x0cb\x1cc\n"),
                                               _drop_op(g, 8)),
     r"reads tensor 21 'a\x0cb\x1cc\n', which"),
]


@pytest.mark.parametrize("edit, needle", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_models_are_refused(edit, needle):
    with pytest.raises(ModelError) as e:
        parse_tflite(_edited(edit), "m.tflite")
    assert str(e.value).startswith("m.tflite: ") and needle in str(e.value), str(e.value)
    assert str(e.value).isprintable()  # one line on a terminal, whatever the file holds


def test_the_example_and_the_corpus_pass_the_checks():
    parse_tflite(serialize_tflite(examples.example_graph(0)), "example")
    models = glob.glob(os.path.join(CORPUS, "**", "*.tflite"), recursive=True)
    for path in models:  # real converter output: e.g. person_detect's bias quantized_dimension 3
        read_tflite(path)


@pytest.mark.parametrize("command", ["info", "run"])
def test_cli_one_line_exit_2(tmp_path, capsys, command):
    m = tmp_path / "m.tflite"
    m.write_bytes(_edited(lambda g: _scale(g, 16, np.nan)))
    y = tmp_path / "y.npy"
    argv = [command, str(m)] + (["--random-input", "0", "--output", str(y)]
                                if command == "run" else [])
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"hwsim: error: {m}: tensor 16") and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == ["m.tflite"]
