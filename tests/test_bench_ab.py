"""benchmarks/bench_ab.py: its errors (one line, exit 2) and one short run. No timing is
asserted (the figures are the tool's output)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench_ab():
    spec = importlib.util.spec_from_file_location("bench_ab", ROOT / "benchmarks" / "bench_ab.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv,says", [
    (["DWQ_PAIRS", "Fals", "True"], "'Fals' is not a Python literal"),
    (["NO_SUCH_FLAG", "1", "2"], "hwsim.kernels.mac has no NO_SUCH_FLAG"),
    (["DWQ_PAIRS", "False", "True", "--module", "nowhere"], "no module hwsim.kernels.nowhere"),
    (["DWQ_PAIRS", "False", "True", "--models", "resnet"], "no model 'resnet'"),
])
def test_bad_arguments_exit_2_with_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        _bench_ab().main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench_ab: ") and says in err and "\n" not in err


def test_one_round_on_person_detect(capsys):
    ab = _bench_ab()
    if not (ab.MODELS["person"] / "model.tflite").exists():
        pytest.skip(f"the corpus is not at {ab.MODELS['person'].parent.parent} (../shared/corpus)")
    from hwsim.kernels import mac
    before = mac.DW3_PARALLEL_MIN_MACS
    assert ab.main(["DW3_PARALLEL_MIN_MACS", "0", "1000000000000", "--models", "person",
                    "--rounds", "1", "--threads", "1"]) == 0
    assert mac.DW3_PARALLEL_MIN_MACS == before  # put back
    out = capsys.readouterr().out
    assert "mac.DW3_PARALLEL_MIN_MACS = 0 | 1000000000000; person_detect" in out
    assert "DEPTHWISE_CONV_2D" in out and "run() wall" in out
