"""The sweep: the paper's grid in order, a failed configuration reported without stopping the rest."""
from __future__ import annotations

import pytest

from fer_utils import sweep
from fer_utils.config import ConfigError, load_config


def test_plan_is_real_synth_then_ratios() -> None:
    cfg = load_config("quick", {"sweep.ratios": [2, 1, 2], "generate.units": 2})
    assert sweep.sweep_plan(cfg) == [("real", 0), ("synth", 0), ("mix", 1), ("mix", 2)]


def test_ratio_beyond_generated_units_is_refused_before_training() -> None:
    cfg = load_config("quick", {"sweep.ratios": [1, 20], "generate.units": 5})
    with pytest.raises(ConfigError, match="up to 20.*generate.units is 5"):
        sweep.sweep_plan(cfg)


def test_a_failure_is_reported_and_the_rest_still_run(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    cfg = load_config("quick", {"sweep.seeds": 3, "train.seed": 10})
    calls = []

    def fake_run(cfg, experiment, ratio, seeds, progress):
        calls.append((experiment, ratio, seeds))
        if ratio == 1:
            raise RuntimeError("out of memory")

    monkeypatch.setattr(sweep, "run_experiment", fake_run)
    failures = sweep.run_sweep(cfg, [("real", 0), ("mix", 1), ("mix", 2)], progress=False)
    assert [c[:2] for c in calls] == [("real", 0), ("mix", 1), ("mix", 2)]
    assert all(c[2] == (10, 11, 12) for c in calls)  # seed s of every ratio is paired
    assert failures == ["mix k=1: RuntimeError: out of memory"]
    assert "2 of 3 configurations done" in capsys.readouterr().out


def test_benchmark_reports_sequential_and_batched(capsys) -> None:
    from fer_utils.benchmarks import sweep as bench

    out = bench.run(load_config("quick", {"device": "cpu"}), n=64, seeds=2)
    assert out["sequential_img_per_s"] > 0 and out["batched_img_per_s"] > 0
    assert "batched (1 pass)" in capsys.readouterr().out


@pytest.mark.parametrize("plan, generates", [([("real", 0)], False), ([("real", 0), ("mix", 1)], True),
                                             ([("synth", 0)], True)])
def test_inputs_are_prepared_for_what_the_plan_reads(monkeypatch: pytest.MonkeyPatch, plan, generates) -> None:
    from fer_utils import preprocess
    from fer_utils.gan import generate

    made = []
    monkeypatch.setattr(preprocess, "ensure_inputs", lambda cfg: made.append("world"))
    monkeypatch.setattr(generate, "generate_database", lambda cfg: made.append("generated"))
    sweep.prepare_inputs(load_config("quick"), plan)
    assert made == ["world", "generated"] if generates else made == ["world"]
