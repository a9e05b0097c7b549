"""AccelConfig: presets, YAML loading, validation errors (each names the key and the allowed
values), and docs/config.md documenting every key."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hwsim.hw.config import (ALLOWED, AccelConfig, ConfigError, MemoryConfig, RANGES,
                             config_from_dict, load_config, preset_names)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.extend(_keys(v, key))
        else:
            out.append(key)
    return out


def test_presets_load_and_round_trip():
    assert preset_names() == ["narrow-acc-24", "onnxruntime-int8", "shift-only-int8",
                              "tflite-16x8", "tflite-int8"]
    for name in preset_names():
        cfg = load_config(name)
        assert cfg.name == name and cfg.source.endswith(f"{name}.yaml")
        again = config_from_dict(cfg.to_dict())
        assert again == cfg  # source is not compared
        assert load_config(cfg) is cfg
    t = load_config(None)
    assert t.name == "tflite-int8" and t.requant.scheme == "tflite_double"
    assert (t.accumulator.bits, t.accumulator.overflow) == (32, "wrap")
    n = load_config("narrow-acc-24")
    assert (n.accumulator.bits, n.accumulator.overflow, n.array.dataflow) == \
        (24, "saturate", "weight_stationary")
    assert (n.requant.scheme, n.requant.multiplier_bits, n.requant.rounding) == \
        ("mult_shift", 16, "half_up")
    s = load_config("shift-only-int8")
    assert (s.requant.scheme, s.requant.per_channel, s.requant.shift_bits) == \
        ("shift_only", False, 5)


def test_load_from_yaml_path_and_partial_sections(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\narray: {rows: 4}\nmemories:\n  bias: {depth: 64}\n")
    cfg = load_config(p)
    assert cfg.array.rows == 4 and cfg.array.cols == AccelConfig().array.cols
    # a partial memory section keeps that memory's own defaults (32-bit bias words)
    assert cfg.memories.bias == MemoryConfig(word_bits=32, depth=64, lanes=1)
    assert cfg.memories.weights == AccelConfig().memories.weights
    assert load_config(str(p)) == cfg
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == AccelConfig()


@pytest.mark.parametrize("data, key, allowed", [
    ({"array": {"dataflow": "row_stationary"}}, "array.dataflow",
     "output_stationary, weight_stationary"),
    ({"accumulator": {"overflow": "clip"}}, "accumulator.overflow", "wrap, saturate"),
    ({"requant": {"scheme": "float"}}, "requant.scheme",
     "tflite_double, tflite_single, mult_shift, shift_only"),
    ({"requant": {"rounding": "nearest"}}, "requant.rounding", "half_away_from_zero"),
    ({"requant": {"activations": ["relu", "gelu"]}}, "requant.activations", "relu6"),
    ({"memories": {"weights": {"lane_order": "middle"}}}, "memories.weights.lane_order",
     "lsb_first, msb_first"),
])
def test_bad_enum_names_key_and_allowed_values(data, key, allowed):
    with pytest.raises(ConfigError, match=re.escape(key)) as e:
        config_from_dict(data, "cfg.yaml")
    assert allowed in str(e.value) and "cfg.yaml" in str(e.value)


@pytest.mark.parametrize("data, key, text", [
    ({"array": {"rows": 0}}, "array.rows", "[1, 1024]"),
    ({"data": {"input_bits": 3}}, "data.input_bits", "[4, 16]"),
    ({"data": {"weight_bits": 17}}, "data.weight_bits", "[4, 16]"),
    ({"accumulator": {"bits": 65}}, "accumulator.bits", "[8, 64]"),
    ({"accumulator": {"bits": 7}}, "accumulator.bits", "[8, 64]"),
    ({"requant": {"scheme": "mult_shift", "multiplier_bits": 33}}, "requant.multiplier_bits",
     "[2, 32]"),
    ({"requant": {"shift_bits": 7}}, "requant.shift_bits", "[1, 6]"),
    ({"memories": {"activations": {"depth": 0}}}, "memories.activations.depth", "[1, 1073741824]"),
    ({"memories": {"bias": {"banks": 300}}}, "memories.bias.banks", "[1, 256]"),
    ({"array": {"rows": 8.0}}, "array.rows", "not an integer"),
    ({"array": {"rows": True}}, "array.rows", "not an integer"),
    ({"data": {"input_signed": "yes"}}, "data.input_signed", "true/false"),
    ({"accumulator": {"bias_first": 1}}, "accumulator.bias_first", "true/false"),
    ({"name": 3}, "name", "not a string"),
    ({"array": [1, 2]}, "array", "expected a mapping"),
    ({"requant": {"activations": 5}}, "requant.activations", "expected a list"),
])
def test_bad_values_name_the_key(data, key, text):
    with pytest.raises(ConfigError) as e:
        config_from_dict(data)
    msg = str(e.value)
    assert msg.startswith(key) and text in msg, msg


def test_unknown_keys_list_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"^array\.depth: unknown key; allowed keys under "
                                          r"array: rows, cols, dataflow$"):
        config_from_dict({"array": {"depth": 3}})
    with pytest.raises(ConfigError, match=r"^colour: unknown key; allowed keys: name, "
                                          r"description, array, data, accumulator, requant, "
                                          r"memories, host_ops$"):
        config_from_dict({"colour": "red"})
    with pytest.raises(ConfigError, match=r"memories\.scratch: unknown key.*weights, bias, "
                                          r"requant, activations"):
        config_from_dict({"memories": {"scratch": {}}})


def test_cross_checks():
    with pytest.raises(ConfigError, match=r"memories\.weights\.lanes: 3 lanes do not divide "
                                          r"word_bits 64"):
        config_from_dict({"memories": {"weights": {"word_bits": 64, "lanes": 3}}})
    with pytest.raises(ConfigError, match=r"memories\.weights\.lanes: 16 lanes of 4 bits "
                                          r"cannot hold 8-bit weights"):
        config_from_dict({"memories": {"weights": {"word_bits": 64, "lanes": 16}}})
    with pytest.raises(ConfigError, match=r"memories\.activations\.lanes"):
        config_from_dict({"data": {"input_bits": 16},
                          "memories": {"activations": {"word_bits": 64, "lanes": 8}}})
    with pytest.raises(ConfigError, match=r"requant\.multiplier_bits: 16 with requant\.scheme "
                                          r"tflite_double.*allowed: 32"):
        config_from_dict({"requant": {"multiplier_bits": 16}})
    with pytest.raises(ConfigError, match=r"requant\.multiplier_bits: 32 \+ accumulator\.bits "
                                          r"40 > 64.*multiplier_bits <= 24"):
        config_from_dict({"requant": {"scheme": "mult_shift"}, "accumulator": {"bits": 40}})
    with pytest.raises(ConfigError, match=r"requant\.activations: .* twice"):
        config_from_dict({"requant": {"activations": ["relu", "relu"]}})
    ok = config_from_dict({"requant": {"scheme": "mult_shift", "multiplier_bits": 24},
                           "accumulator": {"bits": 40}})
    assert ok.requant.multiplier_bits == 24


def test_host_ops_names_the_ops_the_array_can_place():
    """host_ops is checked against vocab.PLACEABLE_OPS (no import of lowering): array ops, the
    memory aliases and CONCATENATION are accepted; a host op or a non-name is refused with the
    key and the allowed names."""
    from hwsim.hw.config import with_host_ops
    from hwsim.vocab import PLACEABLE_OPS
    assert config_from_dict({"host_ops": list(PLACEABLE_OPS)}).host_ops == PLACEABLE_OPS
    assert {"CONV_2D", "RELU", "RESHAPE", "CONCATENATION"} <= set(PLACEABLE_OPS)
    for bad, shown in (("SOFTMAX", "'SOFTMAX'"), ("conv_2d", "'conv_2d'"), (3, "3")):
        with pytest.raises(ConfigError) as e:
            config_from_dict({"host_ops": [bad]}, "c.yaml")
        assert str(e.value).startswith(f"c.yaml: host_ops: {shown} is not an op hwsim runs "
                                       f"on the array") and \
            f"allowed: {', '.join(sorted(PLACEABLE_OPS))}" in str(e.value), str(e.value)
    cfg = with_host_ops("tflite-int8", " add,DEPTHWISE_CONV_2D,ADD ")
    assert cfg.host_ops == ("ADD", "DEPTHWISE_CONV_2D") and cfg.source.endswith("tflite-int8.yaml")
    assert with_host_ops("tflite-int8", None) == load_config("tflite-int8")
    with pytest.raises(ConfigError, match=r"^--host-ops: 'SOFTMAX' is not an op hwsim runs on "
                                          r"the array"):
        with_host_ops("tflite-int8", "ADD,softmax")


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"tflite_int8: neither a YAML file nor a preset; "
                                          r"presets: narrow-acc-24, onnxruntime-int8, "
                                          r"shift-only-int8, tflite-16x8, tflite-int8"):
        load_config("tflite_int8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("array:\n  rows: [1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(bad)
    top = tmp_path / "top.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"top\.yaml: top level: expected a mapping"):
        load_config(top)


def test_docs_config_md_documents_every_key():
    text = DOCS.read_text()
    d = AccelConfig().to_dict()
    for key in _keys(d):
        if key.startswith("memories."):
            key = "memories.<memory>." + key.split(".", 2)[2]
        assert f"`{key}`" in text, f"docs/config.md does not document {key}"
    for key, values in ALLOWED.items():
        for v in values:
            assert f"`{v}`" in text, f"docs/config.md does not list {key} value {v}"
    for key, (lo, hi) in RANGES.items():
        assert f"{lo}" in text and f"{hi}" in text
    # the worked example in the docs is a loadable config
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    cfg = config_from_dict(yaml.safe_load(example), "docs/config.md")
    assert cfg.name == "my-npu"
    from hwsim.lower import mult_shift_params
    assert mult_shift_params(0.0123, cfg.requant.multiplier_bits, cfg.requant.shift_bits) == \
        (25795, 21, "")  # the numbers the example's text works out
