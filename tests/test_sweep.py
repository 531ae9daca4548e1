"""The sweep: the paper's grid in order, a failed configuration reported without stopping the rest."""
from __future__ import annotations

import json

import pytest

from fer_utils import sweep
from fer_utils.config import ConfigError, load_config


def test_plan_is_every_arm_at_every_ratio_even_beyond_generate_units() -> None:
    cfg = load_config("quick", {"sweep.ratios": [2, 5, 2], "generate.units": 2,
                                "sweep.arms": ["mix-filtered", "mix", "synth", "real"]})  # listed in any order
    assert sweep.sweep_plan(cfg) == [("real", 0), ("synth", 1), ("synth", 2), ("synth", 5), ("mix", 2), ("mix", 5),
                                     ("mix-filtered", 2), ("mix-filtered", 5)]
    only = load_config("quick", {"sweep.ratios": [3], "sweep.arms": ["mix", "real"]})
    assert sweep.sweep_plan(only) == [("real", 0), ("mix", 3)]
    with pytest.raises(ConfigError, match="sweep.arms must be one of .*got 'mixed'"):
        load_config("quick", {"sweep.arms": ["real", "mixed"]})


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


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list:
    """What ``prepare_inputs`` asked for: "world", then the number of generated units."""
    from fer_utils import inputs
    from fer_utils.gan import generate

    calls = []
    monkeypatch.setattr(inputs, "prepare_inputs", lambda cfg: calls.append("world"))
    monkeypatch.setattr(generate, "generate_database", lambda cfg, units: calls.append(units))
    return calls


@pytest.mark.parametrize("plan, units", [([("real", 0)], None), ([("real", 0), ("mix", 1)], 1), ([("synth", 1)], 1),
                                         ([("mix", 5), ("synth", 3), ("mix", 2)], 5), ([("vgg", 3)], 3)])
def test_inputs_are_prepared_for_what_the_plan_reads(made: list, plan, units) -> None:
    sweep.prepare_inputs(load_config("quick", {"generate.units": 2}), plan)
    assert made == ["world"] + ([units] if units else [])


def test_a_pair_no_experiment_takes_is_refused_before_anything_is_written(made: list) -> None:
    with pytest.raises(ConfigError, match="'real' cannot take ratio 5"):
        sweep.prepare_inputs(load_config("quick"), [("real", 0), ("real", 5)])
    assert made == []


def test_train_prepares_the_units_its_ratio_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from fer_utils import cli, experiments

    calls = []
    monkeypatch.setattr(sweep, "prepare_inputs", lambda cfg, plan: calls.append(plan))
    monkeypatch.setattr(experiments, "run_experiment", lambda cfg, experiment, ratio, seed: calls.append(ratio))
    assert cli.main(["train", "mix", "--ratio", "3", "--preset", "quick"]) == 0
    assert calls == [[("mix", 3)], 3]


def test_a_ratio_beyond_generate_units_generates_the_missing_units_only(tiny_weights, tmp_path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from fer_utils import inputs
    from fer_utils.gan import generate

    sg, st = tiny_weights
    cfg = load_config("quick", {"device": "cpu", "generate.units": 1, "generate.batch_size": 48,
                                "generate.stylegan2_weights": str(sg), "generate.stargan_weights": str(st),
                                "data.generated": str(tmp_path / "generated")})
    monkeypatch.setattr(inputs, "prepare_inputs", lambda cfg: None)  # the world's databases: not what is tested
    root = generate.generate_database(cfg, progress=False)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in root.rglob("u00_*.png")}
    sweep.prepare_inputs(cfg, [("mix", 2)])
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in root.rglob("u00_*.png")} == before
    assert len(before) == len(list(root.rglob("u01_*.png"))) == generate.IDENTITIES_PER_UNIT * 6
    assert json.loads((root / generate.MANIFEST).read_text())["units"] == 2


def test_a_filtered_arm_that_cannot_be_prepared_does_not_stop_the_others(made: list, monkeypatch) -> None:
    from fer_utils import filtering
    from fer_utils.config import DataError

    def prepare(cfg, ratio):
        if ratio == 3:
            raise DataError("the filter kept none of the 864 generated faces")
    monkeypatch.setattr(filtering, "prepare_filtered", prepare)
    plan = [("real", 0), ("mix", 3), ("mix-filtered", 1), ("mix-filtered", 3)]
    unprepared = sweep.prepare_inputs(load_config("quick"), plan)
    assert unprepared == {("mix-filtered", 3): "DataError: the filter kept none of the 864 generated faces"}
    assert made == ["world", 3]


def test_plan_before_any_run_counts_the_presets_own_real_faces(tmp_path) -> None:
    quick = load_config("quick", {"results_dir": str(tmp_path)})  # 18 training subjects: about 324 faces
    assert "330 real (the default preset's 1,998 for 109 subjects" in sweep.sweep_estimate(quick, [("real", 0)])[1]
    default = load_config("default", {"results_dir": str(tmp_path)})
    assert "1,998 real" in sweep.sweep_estimate(default, [("real", 0)])[1]


def test_slow_runs_of_a_loaded_machine_do_not_drag_the_plan(tmp_path) -> None:
    import os

    cfg = load_config("quick", {"results_dir": str(tmp_path)})
    for i, img_per_s in enumerate([200.0, 180.0, 20.0, 22.0, 18.0, 21.0, 19.0]):  # older idle runs, then loaded ones
        path = tmp_path / "real" / f"old-{i}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"experiment": "real", "params": {"model": "cnn"}, "metrics": {"train": {"n": 324}},
                                    "fit": {"img_per_s": img_per_s, "threads": 2}}))
        os.utime(path, (1000 + i, 1000 + i))
    text = sweep.sweep_estimate(cfg, [("real", 0)])[1]
    assert "100.0 img/s per core (the fastest of the 7 most recent saved CNN runs" in text  # a median: 10.5
    for i in range(7, 7 + sweep.RECENT_RUNS):  # a machine measured slower for longer: the old fast runs age out
        path = tmp_path / "real" / f"old-{i}.json"
        path.write_text((tmp_path / "real" / "old-2.json").read_text())
        os.utime(path, (1000 + i, 1000 + i))
    assert "10.0 img/s per core" in sweep.sweep_estimate(cfg, [("real", 0)])[1]
