"""Experiments share one path: right faces per experiment, saved runs, resume, re-scoring, summaries."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from synthetic import synthetic_faces, tiny_cnn

from fer_utils import experiments, filtering, results
from fer_utils.config import ConfigError, DataError, load_config
from fer_utils.emotions import EMOTIONS
from fer_utils.engine import TrainingFailed
from fer_utils.gan import generate
from fer_utils.models import MODELS
from fer_utils.models.io import load_model


@pytest.fixture
def cfg(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Quick preset with results in tmp_path, tiny model, synthetic real and cross-database faces."""
    monkeypatch.setitem(MODELS, "cnn", tiny_cnn)
    splits = {"train": synthetic_faces(60, 0), "val": synthetic_faces(24, 1), "test": synthetic_faces(24, 2)}
    monkeypatch.setattr(experiments, "real_splits", lambda cfg: splits)
    cross = {"mmi": synthetic_faces(18, 3, "mmi"), "ckplus": synthetic_faces(12, 4, "ckplus")}
    for module in (experiments, results):
        monkeypatch.setattr(module, "cross_database_sets", lambda cfg: cross)
    return load_config("quick", {"results_dir": str(tmp_path / "results"), "train.epochs": 2, "device": "cpu"})


def test_real_run_writes_json_and_weights(cfg) -> None:
    (run,) = experiments.run_experiment(cfg, "real", seed=3, progress=False)
    saved = json.loads(run.path.read_text())
    assert run.path.name == "real-seed3.json" and saved["seed"] == 3
    assert set(saved["metrics"]) == {"train", "val", "test", "mmi", "ckplus"}
    assert saved["params"]["model"] == "cnn" and len(saved["history"]["loss"]) == 2
    assert {"best_epoch", "seconds", "img_per_s"} <= set(saved["fit"]) and "torch" in saved["versions"]
    model = load_model(run.path.with_suffix(".safetensors"))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny_cnn().parameters())


def test_finished_runs_are_loaded_not_retrained(cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    first = experiments.run_experiment(cfg, "real", seeds=(0, 1), progress=False)
    monkeypatch.setattr(experiments, "fit", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = experiments.run_experiment(cfg, "real", seeds=(0, 1), progress=False)
    assert [r.metrics for r in again] == [r.metrics for r in first]


def test_a_damaged_run_record_is_named_and_the_run_made_again(cfg, capsys: pytest.CaptureFixture) -> None:
    first = experiments.run_experiment(cfg, "real", seed=0, progress=False)[0]
    first.path.write_text('{"params": ')  # killed mid-write by something other than us
    again = experiments.run_experiment(cfg, "real", seed=0, progress=False)[0]
    assert f"{first.path} is unreadable" in capsys.readouterr().out
    assert again.metrics == first.metrics and json.loads(first.path.read_text())["metrics"] == first.metrics
    first.path.write_text("[1, 2]")  # valid JSON, not a record
    experiments.run_experiment(cfg, "real", seed=0, progress=False)
    assert "holds a list, not a record" in capsys.readouterr().out


def test_changed_recipe_retrains(cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    experiments.run_experiment(cfg, "real", seed=0, progress=False)
    calls = []
    real_fit = experiments.fit
    monkeypatch.setattr(experiments, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    changed = load_config("quick", {"results_dir": cfg.results_dir, "train.epochs": 2, "train.lr": 1e-3,
                                    "device": "cpu"})
    experiments.run_experiment(changed, "real", seed=0, progress=False)
    assert calls == [1]


@pytest.mark.parametrize("experiment, ratio", [("real", 2), ("synth", 0), ("mix", 0), ("mix-filtered", 0), ("vgg", -1),
                                               ("nope", 0)])
def test_impossible_experiment_names_the_value(experiment: str, ratio: int) -> None:
    with pytest.raises(ConfigError, match=str(ratio) if experiment != "nope" else "nope"):
        experiments.check_experiment(experiment, ratio)


def test_unit_of_reads_generated_subject_names() -> None:
    assert generate.unit_of(np.array(["generated:u00_id001", "generated:u12_id143"])).tolist() == [0, 12]
    with pytest.raises(ValueError, match="id7"):
        generate.unit_of(np.array(["generated:id7"]))


def _generated(root, units: int, write_image) -> None:
    """A generated database as fer_utils.gan.generate lays it out: split/class/uNN_idK/file."""
    for unit in range(units):
        for split, ids in (("train", 2), ("val", 1), ("test", 1)):
            for k in range(ids):
                for c, name in enumerate(EMOTIONS):
                    write_image(root / split / name / f"u{unit:02d}_id{k:03d}" / f"{name}.png", (64, 64), seed=c)


def test_mix_adds_k_units_and_keeps_a_real_test(cfg, tmp_path, write_image) -> None:
    _generated(tmp_path / "gen", 3, write_image)
    cfg = load_config("quick", {"data.generated": str(tmp_path / "gen"), "data.cache": str(tmp_path / "cache")})
    splits = experiments.experiment_splits(cfg, "mix", 2)
    generated = splits["train"].databases == "generated"
    assert generated.sum() == 2 * 2 * 6  # 2 units x 2 train identities x 6 expressions
    assert set(generate.unit_of(splits["train"].subjects[generated])) == {0, 1}
    assert (splits["test_real"].databases != "generated").all()
    synth = experiments.experiment_splits(cfg, "synth", 2)  # trained on 2 units, tested on the first unit's test
    assert set(generate.unit_of(synth["train"].subjects)) == {0, 1}
    assert set(synth["test"].subjects) == {"generated:u00_id000"}
    assert (synth["test_real"].databases != "generated").all()
    with pytest.raises(DataError, match="ratio 4 needs 4 generated units"):
        experiments.experiment_splits(cfg, "mix", 4)


def test_missing_generated_database_says_how_to_make_it(tmp_path) -> None:
    cfg = load_config("quick", {"data.generated": str(tmp_path / "absent")})
    with pytest.raises(DataError, match="data.generated.*01_generate"):
        experiments.generated_splits(cfg, 1)


def test_find_rescore_and_summarise(cfg) -> None:
    experiments.run_experiment(cfg, "real", seeds=(0, 1, 2), progress=False)
    runs = results.find_runs(cfg)
    assert [r.name for r in runs] == ["real-seed0", "real-seed1", "real-seed2"]
    rescored = results.rescore(cfg, runs)
    assert [r.metrics["mmi"]["accuracy"] for r in rescored] == [r.metrics["mmi"]["accuracy"] for r in runs]
    summary = results.summarise(runs, "test")
    accs = [r.metrics["test"]["accuracy"] for r in runs]
    assert summary.seeds == 3 and summary.value == pytest.approx(np.mean(accs))
    assert 0.0 <= summary.low <= summary.value <= summary.high <= 1.0
    one = results.summarise(runs[:1], "test")
    assert (one.low, one.high) == tuple(runs[0].metrics["test"]["accuracy_ci95"])
    assert results.best_run(runs).metrics["val"]["accuracy"] == max(r.metrics["val"]["accuracy"] for r in runs)


def _run(experiment: str, ratio: int, seed: int, **accs: float) -> experiments.RunResult:
    """A saved-run stand-in with the given accuracies: 20 test subjects of 10 faces, hits spread evenly."""
    def metrics(acc: float) -> dict:
        hits = np.diff(np.round(np.linspace(0, 200 * acc, 21))).astype(int)  # per-subject hits summing to 200 acc
        return {"accuracy": acc, "accuracy_ci95": [acc, acc], "by_subject": {f"p{j}": [int(h), 10]
                                                                             for j, h in enumerate(hits)}}
    return experiments.RunResult(experiment, ratio, seed, f"{experiment}{ratio}-{seed}", None,
                                 {key: metrics(acc) for key, acc in accs.items()}, {})


def test_figure8_has_one_line_per_arm_in_k_order_and_real_only_as_baseline() -> None:
    runs = [_run("mix", 5, 0, mmi=0.6), _run("vgg", 0, 0, mmi=0.5), _run("mix", 1, 0, mmi=0.4),
            _run("synth", 1, 0, mmi=0.3), _run("real", 0, 0, mmi=0.2), _run("mix-filtered", 1, 0, mmi=0.45)]
    panels, baseline = results.figure8(runs, keys=("mmi",))
    assert set(panels["MMI"]) == {"mix", "mix-filtered", "synth"}
    assert panels["MMI"]["mix"][0] == [1, 5] and panels["MMI"]["mix"][1] == pytest.approx([0.4, 0.6])
    assert baseline["MMI"][1] == pytest.approx([0.2])


def test_best_k_is_chosen_on_real_validation_subjects() -> None:
    runs = [_run("real", 0, s, val=0.6) for s in range(2)]
    runs += [_run("mix", 1, s, val=0.99, val_real=0.55) for s in range(2)]  # easy mixed val, worse real val
    runs += [_run("mix", 5, s, val=0.9, val_real=0.65) for s in range(2)]
    runs += [_run("synth", 0, s, val=1.0) for s in range(2)]
    assert {(r.experiment, r.ratio) for r in results.best_configuration(runs)} == {("mix", 5)}


def test_a_tie_on_real_validation_goes_to_the_least_generated_data() -> None:
    runs = [_run("mix", 5, 0, val=0.9, val_real=0.8), _run("mix", 3, 0, val=0.9, val_real=0.8),
            _run("real", 0, 0, val=0.7)]
    assert [(r.experiment, r.ratio) for r in results.best_configuration(runs)] == [("mix", 3)]
    runs.append(_run("real", 0, 1, val=0.8))  # real-only's mean 0.75 now loses
    runs.append(_run("mix", 3, 1, val=0.9, val_real=0.8))
    runs.append(_run("mix", 5, 1, val=0.9, val_real=0.8))
    runs[2] = _run("real", 0, 0, val=0.8)  # real-only ties at 0.8 and wins the tie
    assert {(r.experiment, r.ratio) for r in results.best_configuration(runs)} == {("real", 0)}
    # the same total of correct faces over three seeds, summed in another order: still a tie
    runs = [_run("mix", 1, s, val=0.9, val_real=v / 180) for s, v in enumerate((100, 100, 142))]
    runs += [_run("mix", 2, s, val=0.9, val_real=v / 180) for s, v in enumerate((100, 142, 100))]  # mean 1 ulp higher
    assert {(r.experiment, r.ratio) for r in results.best_configuration(runs)} == {("mix", 1)}


def test_what_helps_compares_every_seed_of_each_arm_and_names_each_change() -> None:
    runs = [_run("real", 0, s, mmi=0.40 + 0.02 * s) for s in range(3)]
    runs += [_run("mix", 2, s, mmi=0.60 + 0.02 * s) for s in range(3)]  # +20 points
    runs += [_run("mix-filtered", 2, s, mmi=acc) for s, acc in enumerate((0.61, 0.61, 0.65))]  # about the same
    runs += [_run("mix", 3, 7, mmi=0.9)]  # one seed, numbered 7: compared with all three real-only seeds
    runs += [_run("synth", 1, 0, mmi=0.3), _run("synth", 3, 0, mmi=0.35)]
    rows = {row[0]: row for row in results.what_helps_rows(runs, keys=("mmi",))}
    assert set(rows) == {"real + k=2 vs real only", "real + k=3 vs real only", "real + filtered k=2 vs real only",
                         "filtered vs unfiltered, k=2", "synthetic only: 3 units vs 1"}
    gain = rows["real + k=2 vs real only"]
    assert gain[2] == "3" and gain[3].startswith("+20.0 pts") and gain[7].startswith("helps, by 20.0")
    assert gain[7].endswith("(Holm over 5 comparisons)") and float(gain[5]) >= float(gain[4])
    assert rows["real + k=3 vs real only"][2] == "1 vs 3"  # every seed of each arm, and how many each had
    same = rows["filtered vs unfiltered, k=2"]
    assert same[3].startswith("+0.3 pts") and same[7].startswith("no measurable difference")
    one_seed = rows["synthetic only: 3 units vs 1"]
    assert one_seed[2] == "1" and one_seed[6].startswith("≥ ")  # seed spread unmeasured: a floor, no verdict
    assert one_seed[3].endswith("(subjects only)") and one_seed[7].startswith("no verdict (1 seed")
    (detectable,) = results.detectable_rows(runs, keys=("mmi",))
    assert detectable[0] == "MMI" and detectable[1] == "no test" and all(c.endswith("pts") for c in detectable[2:])


def test_what_helps_does_not_depend_on_how_seeds_are_numbered() -> None:
    """Arms share no randomness beyond a seed's number: renumbering one arm's seeds must change nothing."""
    real = [_run("real", 0, s, mmi=acc) for s, acc in enumerate((0.40, 0.47, 0.43))]
    mix = [_run("mix", 1, s, mmi=acc) for s, acc in enumerate((0.45, 0.52, 0.50))]
    renumbered = [_run("mix", 1, s, mmi=acc) for s, acc in zip((2, 0, 1), (0.45, 0.52, 0.50))]
    assert results.what_helps_rows(real + mix, keys=("mmi",)) == results.what_helps_rows(real + renumbered,
                                                                                         keys=("mmi",))


def test_a_seed_not_scored_where_the_others_are_is_named_not_dropped() -> None:
    real = [_run("real", 0, s, mmi=0.4) for s in range(2)] + [_run("real", 0, 2)]  # seed 2: no MMI score
    mix = [_run("mix", 1, s, mmi=0.5) for s in range(3)]
    with pytest.raises(ValueError, match="real0-2 not scored on 'mmi'"):
        results.paired_difference(mix, real, "mmi")
    assert results.paired_difference(mix, real, "ckplus") is None  # no run scored there: no comparison


def test_holm_turns_a_lone_row_flag_into_no_verdict_among_many() -> None:
    """One row at p 0.022 alone reads "helps"; among four more comparisons Holm's correction undoes it."""
    real = [_run("real", 0, s, mmi=a) for s, a in enumerate((0.40, 0.46, 0.43))]
    mix = [_run("mix", 1, s, mmi=a) for s, a in enumerate((0.49, 0.55, 0.52))]
    (alone,) = results.what_helps_rows(real + mix, keys=("mmi",))
    assert alone[4] == alone[5] == "0.022" and alone[7] == "helps, by 9.0 points (Holm over 1 comparison)"
    others = [_run("mix", k, s, mmi=a) for k in (2, 3, 4, 5) for s, a in enumerate((0.41, 0.47, 0.44))]
    rows = results.what_helps_rows(real + mix + others, keys=("mmi",))
    assert rows[0][4] == "0.022" and rows[0][5] == "0.108"  # 5 x 0.0216
    assert rows[0][7] == "no verdict: p 0.022 alone, but not below 0.05 after the correction (Holm over 5 comparisons)"


def test_what_helps_summary_is_written_from_the_numbers() -> None:
    runs = [_run("real", 0, s, mmi=0.40 + 0.02 * s) for s in range(3)]
    runs += [_run("mix", 2, s, mmi=0.60 + 0.02 * s) for s in range(3)]
    runs += [_run("synth", 1, 0, mmi=0.3), _run("synth", 3, 0, mmi=0.35)]
    text = results.what_helps_summary(runs, keys=("mmi",))
    assert "2 comparisons, 2 of them tests (Holm's correction over those 2" in text and "1-3 seeds" in text
    assert "- real + k=2 vs real only on MMI: +20.0 pts" in text and "one seed" in text
    assert "no evidence that the change does nothing" in text
    assert "1 seed" not in results.what_helps_summary(runs[:6], keys=("mmi",)).split("Holm")[0]


def test_vgg_keeps_the_recipe_but_its_own_epoch_cap() -> None:
    cfg = load_config("quick", {"train.epochs": 7, "sota.vgg_epochs": 2})
    vgg, cnn = experiments.run_params(cfg, "vgg", 0), experiments.run_params(cfg, "real", 0)
    assert (vgg["model"], vgg["train"]["epochs"], cnn["train"]["epochs"]) == ("vgg16", 2, 7)
    assert ({k: v for k, v in vgg["train"].items() if k != "epochs"}
            == {k: v for k, v in cnn["train"].items() if k != "epochs"})


@pytest.mark.parametrize("bf16_units, runs", [(True, "bf16"), (False, "fp32")])
def test_a_run_is_defined_by_the_precision_that_runs_not_the_setting(monkeypatch, bf16_units, runs):
    """`auto` trains in bf16 on one CPU and fp32 on another: a saved run must not pass for the other."""
    import torch

    from fer_utils import experiments
    from fer_utils.config import load_config
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_units)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cfg = load_config("quick", {"device": "cpu"})
    assert cfg.train.precision == "auto"
    assert experiments.run_params(cfg, "real", 0)["train"]["precision"] == runs


def test_corrupt_weights_of_a_finished_run_are_named_and_the_run_made_again(cfg, capsys) -> None:
    """A run counts as finished only when its weights load too: a damaged .safetensors was counted as done."""
    first = experiments.run_experiment(cfg, "real", seed=0, progress=False)[0]
    weights = first.path.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    again = experiments.run_experiment(cfg, "real", seed=0, progress=False)[0]
    assert f"{weights} is not the file its record" in capsys.readouterr().out
    assert again.metrics == first.metrics and load_model(weights) is not None


def test_a_multi_seed_run_killed_after_its_first_member_keeps_it(cfg, monkeypatch) -> None:
    """Each finished member is saved before the next trains; a rerun trains only what is missing, leaves
    no checkpoint or temporary behind, and ends with the numbers of an uninterrupted run."""
    clean_cfg = load_config("quick", {"results_dir": cfg.results_dir + "-clean", "train.epochs": 2, "device": "cpu"})
    clean = experiments.run_experiment(clean_cfg, "real", seeds=(0, 1), progress=False)
    real_fit, trained = experiments.fit, []

    def killed_at_seed_1(*args, **kwargs):
        if 1 in args[5]:
            raise KeyboardInterrupt  # stands in for SIGKILL between members
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(experiments, "fit", killed_at_seed_1)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment(cfg, "real", seeds=(0, 1), progress=False)
    folder = cfg.path(cfg.results_dir) / "real"
    assert (folder / "real-seed0.json").is_file() and not (folder / "real-seed1.json").exists()
    monkeypatch.setattr(experiments, "fit", lambda *a, **k: trained.append(a[5]) or real_fit(*a, **k))
    again = experiments.run_experiment(cfg, "real", seeds=(0, 1), progress=False)
    assert trained == [(1,)]
    assert [r.metrics for r in again] == [r.metrics for r in clean]
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == [
        "real-seed0.json", "real-seed0.safetensors", "real-seed1.json", "real-seed1.safetensors"]


def test_a_killed_writers_temporaries_are_removed_by_the_rerun(cfg, capsys) -> None:
    """atomic writes name their writer (host, pid): what a killed one left is removed, a live one's kept."""
    import os
    import subprocess

    from fer_utils.runtime import temporary_prefix

    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = cfg.path(cfg.results_dir) / "real"
    folder.mkdir(parents=True)
    live = folder / f"{temporary_prefix(folder / 'x.json')}abc.tmp"
    stale = folder / live.name.replace(f"-{os.getpid()}.", f"-{dead.pid}.")
    live.touch(), stale.touch()
    experiments.run_experiment(cfg, "real", seed=0, progress=False)
    assert live.exists() and not stale.exists()
    assert f"removed {stale}" in capsys.readouterr().out


def test_06_names_a_corrupt_run_instead_of_a_bare_safetensors_error(cfg, capsys) -> None:
    """06 re-scores saved weights: a damaged file raised 'SafetensorError: header too large' with no name."""
    from fer_utils.config import WeightsError

    run = experiments.run_experiment(cfg, "real", seed=0, progress=False)[0]
    weights = run.path.with_suffix(".safetensors")
    weights.write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError, match=rf"{weights}: cannot load these weights"):
        results.rescore(cfg, [run])
    assert results.find_runs(cfg) == []  # 06 never re-scores weights its record does not pin
    assert f"skipped {run.path}: its .safetensors is not the file the record pins" in capsys.readouterr().out
    run.path.write_text("{")
    with pytest.raises(DataError, match=rf"{run.path}: unreadable run record"):
        results.find_runs(cfg)


def test_filtered_arm_trains_on_what_the_filter_kept_and_a_new_threshold_retrains(cfg, monkeypatch) -> None:
    kept = {split: synthetic_faces(n, 5 + i, "generated", "u00_id") for i, (split, n) in
            enumerate((("train", 12), ("val", 6), ("test", 6)))}
    asked, report = [], filtering.FilterReport(0.5, 0.8, {}, 2, {}, {})
    monkeypatch.setattr(experiments, "filtered_generated_splits",
                        lambda cfg, units: asked.append(units) or (kept, report))
    (run,) = experiments.run_experiment(cfg, "mix-filtered", 2, seed=0, progress=False)
    saved = json.loads(run.path.read_text())
    assert run.path.name == "mix-filtered-k2-seed0.json" and asked == [2]
    assert saved["params"]["generate"]["filter_threshold"] == cfg.generate.filter_threshold
    assert saved["metrics"]["train"]["n"] == 60 + 12 and {"val_real", "test_real"} <= set(saved["metrics"])
    assert saved["metrics"]["test_real"]["by_subject"]  # what the intervals resample
    assert saved["data"]["filter"]["filter_stop_accuracy"] == 0.8  # what the filter kept, in the record
    calls = []
    real_fit = experiments.fit
    monkeypatch.setattr(experiments, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    experiments.run_experiment(cfg, "mix-filtered", 2, seed=0, progress=False)
    assert calls == []  # the same threshold: the kept record
    stricter = load_config("quick", {"results_dir": cfg.results_dir, "train.epochs": 2, "device": "cpu",
                                     "generate.filter_threshold": 0.9})
    experiments.run_experiment(stricter, "mix-filtered", 2, seed=0, progress=False)
    assert calls == [1]


def test_a_record_without_per_subject_counts_is_named_and_skipped(cfg, capsys) -> None:
    (run,) = experiments.run_experiment(cfg, "real", seed=0, progress=False)
    saved = json.loads(run.path.read_text())
    del saved["params"]["scoring"]  # as records were before the intervals resampled subjects
    run.path.write_text(json.dumps(saved))
    assert results.find_runs(cfg) == []
    assert "scored before records kept per-subject counts" in capsys.readouterr().out


@pytest.mark.parametrize("ratio, synth_only, filtered, expected", [
    (0, False, False, ("real", 0)), (3, False, False, ("mix", 3)), (0, True, False, ("synth", 1)),
    (5, True, False, ("synth", 5)), (2, False, True, ("mix-filtered", 2))])
def test_notebook_05_parameters_name_one_experiment(ratio, synth_only, filtered, expected) -> None:
    assert experiments.choose_experiment(ratio, synth_only, filtered) == expected


def test_notebook_05_refuses_parameters_that_mean_nothing() -> None:
    with pytest.raises(ConfigError, match="synth_only and filtered"):
        experiments.choose_experiment(2, synth_only=True, filtered=True)
    with pytest.raises(ConfigError, match="'mix-filtered' cannot take ratio 0"):
        experiments.choose_experiment(0, filtered=True)


def test_identical_arms_say_so_instead_of_a_zero_detectable_difference() -> None:
    runs = [_run("real", 0, s, mmi=0.5) for s in range(2)] + [_run("mix", 1, s, mmi=0.5) for s in range(2)]
    (row,) = results.what_helps_rows(runs, keys=("mmi",))
    assert row[4] == row[5] == row[6] == "–" and row[7].startswith("the same on every test subject and seed")
    assert results.detectable_rows(runs, keys=("mmi",)) == []


def test_real_only_is_compared_on_its_own_test_subjects_where_others_say_test_real() -> None:
    """A real-only run scores its real test subjects as ``test``; mixed and synthetic runs as ``test_real``."""
    runs = [_run("real", 0, 0, test=0.6, val=0.5), _run("mix", 1, 0, test=0.9, test_real=0.7, val_real=0.6),
            _run("synth", 1, 0, test=0.95, test_real=0.4)]
    (row,) = results.what_helps_rows(runs, keys=("test_real",))
    assert row[0] == "real + k=1 vs real only" and row[3].startswith("+10.0 pts")
    panels, baseline = results.figure8(runs, keys=("test_real",))
    assert baseline["real test subjects"][1] == pytest.approx([0.6]) and set(panels["real test subjects"]) == {
        "mix", "synth"}
    assert results.accuracy_rows(runs, ("test_real",))[0][2].startswith("60.0 %")


def test_table3_keeps_the_mixed_row_where_real_only_validates_as_well() -> None:
    runs = [_run("real", 0, 0, val=0.8), _run("mix", 1, 0, val=0.9, val_real=0.8),
            _run("mix", 3, 0, val=0.9, val_real=0.75)]
    assert [(r.experiment, r.ratio) for r in results.best_configuration(runs)] == [("real", 0)]  # the tie: real
    rows = results.table3_cnn_rows(runs)
    assert [label for label, _ in rows] == ["CNN, real", "CNN, real + 1 x generated (k best on real validation)"]
    assert [(r.experiment, r.ratio) for r in rows[1][1]] == [("mix", 1)]
    assert [label for label, _ in results.table3_cnn_rows(runs[:1])] == ["CNN, real"]  # no mixed runs: no row


def test_a_diverged_member_is_named_and_never_saved_as_finished(cfg, monkeypatch) -> None:
    """Seed 1 diverges (lr 1e30): seed 0 is saved, seed 1 gets no record and no checkpoint, and the run fails with
    one line naming the run, the seed, the epoch and the setting (issue 37 #1); a rerun trains seed 1 again."""
    real_fit, trained = experiments.fit, []

    def seed_1_diverges(model, train, val, recipe, device, group, **kwargs):
        trained.append(group)
        lr = 1e30 if 1 in group else recipe.lr
        return real_fit(model, train, val, dataclasses.replace(recipe, lr=lr), device, group, **kwargs)

    monkeypatch.setattr(experiments, "fit", seed_1_diverges)
    with pytest.raises(TrainingFailed) as info:
        experiments.run_experiment(cfg, "real", seeds=(0, 1), progress=False)
    assert re.fullmatch(r"train real k=0 seed 1: (training|validation) loss is nan at epoch 1; lower train.lr "
                        r"\(now 1e\+30\)", str(info.value))
    folder = cfg.path(cfg.results_dir) / "real"
    kept = sorted(p.name for p in folder.iterdir() if p.suffix != ".lock")  # the run lock stays, as the world's do
    assert kept == ["real-seed0.json", "real-seed0.safetensors"]
    with pytest.raises(TrainingFailed):
        experiments.run_experiment(cfg, "real", seeds=(0, 1), progress=False)
    assert trained == [(0,), (1,), (1,)]  # the diverged seed is not counted as done


def test_a_run_that_never_improved_on_its_untrained_weights_is_not_saved(cfg, monkeypatch, capsys) -> None:
    """lr 1e-30: no epoch validates below the untrained weights. Under ``train.must_improve`` (the default and paper
    presets) the run fails with one line and leaves no record (issue 37 #1); with it false (the quick preset) the run
    is kept, and both its record and a printed line say it never improved."""
    strict = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=1e-30, must_improve=True))
    with pytest.raises(TrainingFailed) as info:
        experiments.run_experiment(strict, "real", progress=False)
    assert re.fullmatch(r"train real k=0 seed 0: validation loss never came below the untrained weights' \(\S+\) in "
                        r"2 epoch\(s\): best \S+ at epoch \d; train longer \(train.epochs, now 2\) or change "
                        r"train.lr \(now 1e-30\)", str(info.value))
    assert not list((cfg.path(cfg.results_dir) / "real").glob("*.json"))
    lenient = dataclasses.replace(strict, train=dataclasses.replace(strict.train, must_improve=False))
    (run,) = experiments.run_experiment(lenient, "real", progress=False)
    record = json.loads(run.path.read_text())
    assert record["fit"]["improved"] is False and record["fit"]["untrained_val_loss"] <= min(run.history["val_loss"])
    assert "real-seed0: kept though no epoch validated below its untrained weights" in capsys.readouterr().out


def test_a_sweep_reports_a_diverged_configuration_and_goes_on(cfg, capsys) -> None:
    """In a sweep the diverged configuration is one failure line; the sweep still ends (issue 37 #1)."""
    from fer_utils import sweep

    diverging = load_config("quick", {"results_dir": cfg.results_dir, "train.epochs": 2, "train.lr": 1e30,
                                      "device": "cpu", "sweep.seeds": 1})
    failures = sweep.run_sweep(diverging, [("real", 0)], progress=False)
    assert len(failures) == 1 and re.fullmatch(r"real k=0: TrainingFailed: train real k=0 seed 0: "
                                               r"(training|validation) loss is nan at epoch 1; lower train.lr "
                                               r"\(now 1e\+30\)", failures[0])
    assert not list((cfg.path(cfg.results_dir) / "real").glob("*.json"))
