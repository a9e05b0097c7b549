"""Issue 10's narrow config, end to end with default flags: a float model quantized FOR the config
(4-bit weights and activations, a 16-bit saturating accumulator, a 12-bit mult_shift multiplier
with half-up rounding) exports with strict legalization and co-simulates in chain mode:

    hwsim quantize model.onnx --calib c.npy --config narrow.yaml --out q.tflite
    hwsim export q.tflite --config narrow.yaml --random-input 7 --out D
    hwsim cosim D --mode chain

`hwsim quantize --config` records the config's arithmetic in the model (its description);
mapping that model onto the same arithmetic takes it as the model's semantics (the reference of
the legalization is the config's lowering), while any other config is still checked against
TFLite's arithmetic and refused where inexact (docs/quantization.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from hwsim import cosim

REPO = Path(__file__).resolve().parent.parent

NARROW = """\
name: narrow-4bit
array: {rows: 8, cols: 8, dataflow: output_stationary}
data: {input_bits: 4, input_signed: true, weight_bits: 4, weight_signed: true,
       output_bits: 4, output_signed: true}
accumulator: {bits: 16, overflow: saturate, bias_first: true}
requant: {scheme: mult_shift, multiplier_bits: 12, shift_bits: 5, rounding: half_up,
          per_channel: true, zero_point: true, activations: [none, relu, relu6]}
memories:
  weights: {word_bits: 64, depth: 65536, lanes: 8}
  activations: {word_bits: 64, depth: 131072, lanes: 8}
"""


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """The digits CNN (examples/digits) quantized for the narrow config with a seeded
    calibration array, by the command line."""
    from hwsim.cli import main
    d = tmp_path_factory.mktemp("narrow")
    (d / "narrow.yaml").write_text(NARROW)
    np.save(d / "c.npy", np.random.default_rng(7).standard_normal((64, 1, 8, 8))
            .astype(np.float32))
    assert main(["quantize", str(REPO / "examples" / "digits" / "digits_cnn.onnx"), "--calib",
                 str(d / "c.npy"), "--config", str(d / "narrow.yaml"), "--out",
                 str(d / "q.tflite")]) == 0
    return d


def test_the_quantized_model_records_the_configs_arithmetic(quantized):
    from hwsim import load_graph
    from hwsim.hw.config import arithmetic_fingerprint, load_config, quantized_for
    cfg = load_config(str(quantized / "narrow.yaml"))
    g = load_graph(quantized / "q.tflite")
    assert quantized_for(g.description, cfg) and arithmetic_fingerprint(cfg) in g.description
    # another arithmetic (rounding half_even) is not the one the model was quantized for
    other = load_config("tflite-int8")
    assert not quantized_for(g.description, other)


def test_narrow_config_exports_strict_and_cosimulates_in_chain_mode(quantized, capsys):
    """The three commands of the issue, default flags (strict legalization, no --host-tail):
    the export is exact, the array layers are bit-exact on the RTL in chain mode."""
    from hwsim.cli import main
    reason = cosim.simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    d = quantized
    out = d / "D"
    assert main(["export", str(d / "q.tflite"), "--config", str(d / "narrow.yaml"),
                 "--random-input", "7", "--out", str(out), "--quiet"]) == 0
    man = yaml.safe_load((out / "manifest.yaml").read_text())
    assert man["legalize"] == "strict" and man["exact"]
    c = man["config"]
    assert (c["data"]["input_bits"], c["data"]["weight_bits"], c["accumulator"]["bits"],
            c["accumulator"]["overflow"], c["requant"]["scheme"], c["requant"]["multiplier_bits"],
            c["requant"]["rounding"]) == (4, 4, 16, "saturate", "mult_shift", 12, "half_up")
    capsys.readouterr()
    assert main(["cosim", str(out), "--mode", "chain"]) == 0
    report = capsys.readouterr().out
    assert "PASS" in report
    rows = [r for r in (line.split() for line in report.splitlines()) if r and r[0].isdigit()]
    ran = [r for r in rows if r[2] == "OK"]
    assert {r[1] for r in ran} == {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED"}
    assert all(r[2] in ("OK", "HOST") for r in rows), report
    # issue 10 item 4: the report's rtl/model column, every array layer within 10 % (small
    # layers of a few hundred cycles: the model's fixed latencies are what keeps them there)
    ratios = {r[0]: float(next(c for c in r if c.endswith("x"))[:-1]) for r in ran}
    assert len(ratios) == len(ran) and all(0.9 <= q <= 1.1 for q in ratios.values()), report


def test_a_model_not_quantized_for_the_config_is_still_refused_when_inexact(quantized):
    """The same model on a config with other arithmetic (half_even rounding): the reference is
    TFLite's again, and strict legalization refuses mult_shift, naming layer and reason."""
    from hwsim.hw import LegalizationError, map_network
    from hwsim.hw.config import load_config
    other = quantized / "other.yaml"
    other.write_text(NARROW.replace("rounding: half_up", "rounding: half_even"))
    with pytest.raises(LegalizationError, match=r"layer 2 \(CONV_2D\): requant scheme "
                                                r"mult_shift cannot represent"):
        map_network(quantized / "q.tflite", load_config(str(other)))
