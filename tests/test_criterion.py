"""The shipping criterion (fer_utils.criterion): experiment 2 scored on the real validation subjects only."""
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from fer_utils import criterion, preprocess
from fer_utils.config import load_config
from fer_utils.emotions import EMOTIONS
from fer_utils.experiments import RunResult
from fer_utils.preprocess import FaceSet

PLANTED = 255  # the fake real faces stay below it


class Recorder(nn.Module):
    """Stands in for a trained CNN: remembers every face it reads, and reads the class from the brightness."""

    def __init__(self, seen: list[torch.Tensor]):
        super().__init__()
        self.seen = seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) in [0, 1]
        self.seen.append(x.clone())
        return nn.functional.one_hot((x.mean((1, 2, 3)) * 60).long() % len(EMOTIONS), len(EMOTIONS)).float()


def _faces(database: str, subjects: int, seed: int) -> FaceSet:
    """Each subject at the six expressions, random faces below ``PLANTED``."""
    n = subjects * len(EMOTIONS)
    images = np.random.default_rng(seed).integers(0, PLANTED - 55, (n, 64, 64), dtype=np.uint8)
    return FaceSet(images, np.arange(n) % len(EMOTIONS), np.array([f"{database}:p{i // 6}" for i in range(n)]),
                   np.array([database] * n), np.ones(n, bool), [{"split": ""} for _ in range(n)])


@pytest.fixture
def fake_experiments(tmp_path, monkeypatch):
    """Real faces of 24 subjects (the quick preset's 18/2/4), experiments that 'train' a recorder, no generation."""
    faces = {"rafd": _faces("rafd", 12, 0), "oulu": _faces("oulu", 12, 1)}
    seen: list[torch.Tensor] = []
    monkeypatch.setattr(preprocess, "load_database", lambda cfg, name, *args, **kwargs: faces[name])
    monkeypatch.setattr(criterion, "generate_database", lambda cfg, units, progress: None)
    monkeypatch.setattr(criterion, "load_model", lambda path: Recorder(seen))

    def run(cfg, experiment, ratio=0, seed=None, seeds=None):
        return [RunResult(experiment, ratio, s, experiment, tmp_path / experiment / f"run{s}.json", {}, {})
                for s in ((seed,) if seed is not None else seeds)]

    monkeypatch.setattr(criterion, "run_experiment", run)
    cfg = load_config("quick", {"results_dir": str(tmp_path / "results"), "device": "cpu"})
    return cfg, faces, seen


def test_a_planted_test_subject_face_never_reaches_the_criterion(fake_experiments):
    cfg, faces, seen = fake_experiments
    before = criterion.teaching_criterion(cfg)
    test_subjects = set(preprocess.real_splits(cfg)["test"].subjects.tolist())
    assert test_subjects and not test_subjects & set(before["validation_subjects"])
    for face_set in faces.values():  # plant a face no model may ever read in every test subject's images
        face_set.images[np.isin(face_set.subjects, list(test_subjects))] = PLANTED
    seen.clear()
    after = criterion.teaching_criterion(cfg)
    assert seen and max(x.max().item() for x in seen) < 1.0  # 255 / 255: no planted face was read
    assert after == before


def test_the_criterion_scores_both_runs_on_the_same_validation_faces_and_keeps_the_candidate_apart(fake_experiments):
    cfg, _, seen = fake_experiments
    record = criterion.teaching_criterion(cfg, seeds=(0, 1, 2))
    val = preprocess.real_splits(cfg)["val"]
    assert len(seen) == 6 and all(torch.equal(x, seen[0]) for x in seen)  # one batch each, the same faces
    assert record["validation_faces"] == len(val) == len(seen[0])
    assert set(record) >= {"synthetic_only", "real_only", "target", "per_class", "weights", "preset"}
    assert record["generate"]["truncation_psi"] == cfg.generate.truncation_psi  # what made the faces it read
    low, high = record["synthetic_only_interval"]
    assert low <= record["synthetic_only"] <= high and record["seeds"] == [0, 1, 2]
    assert [sum(c for c, _ in counts.values()) for counts in record["by_subject"]["real_only"]] == [
        round(acc * len(val)) for acc in record["per_seed"]["real_only"].values()]
    candidate, weights = criterion.candidate_config(cfg)
    folder = (f"{cfg.results_dir}/criterion/{weights['stylegan2']['sha256'][:12]}-{weights['stargan']['sha256'][:12]}"
              f"-psi{cfg.generate.truncation_psi:g}-seed{cfg.generate.seed}")
    assert candidate.results_dir == folder and candidate.data.generated == f"{folder}/generated"
    other = dataclasses.replace(cfg, generate=dataclasses.replace(cfg.generate, truncation_psi=1.0))
    assert criterion.candidate_config(other)[0].results_dir != folder  # one never evicts the other's kept runs


def test_both_runs_train_the_criterions_epochs_and_real_only_never_lands_in_experiment_1s_folder(
        fake_experiments, monkeypatch):
    """A criterion at another epoch cap than experiment 1 must neither reuse nor replace experiment 1's kept runs."""
    cfg, _, _ = fake_experiments
    cfg = dataclasses.replace(cfg, generate=dataclasses.replace(cfg.generate, criterion_epochs=7))
    assert cfg.train.epochs != 7
    trained, calls = criterion.run_experiment, []
    monkeypatch.setattr(criterion, "run_experiment", lambda run_cfg, experiment, *args, **kwargs: (
        calls.append((experiment, run_cfg.train.epochs, run_cfg.results_dir)) or trained(run_cfg, experiment, *args,
                                                                                          **kwargs)))
    record = criterion.teaching_criterion(cfg, seeds=(0, 1))
    candidate, _ = criterion.candidate_config(cfg)
    assert calls == [("real", 7, f"{cfg.results_dir}/criterion"), ("synth", 7, candidate.results_dir),
                     ("synth", 7, candidate.results_dir)]
    assert record["epochs"] == 7 and "7 epochs" in criterion.criterion_table(
        {"teaching": record, "motion": {"generated": {}, "positive_control": {}, "negative_control": {},
                                        "reader": {"target": 0.5}, "positive_passes": True, "negative_passes": True}})


def test_faces_that_teach_nothing_learnable_are_recorded_as_such_not_scored_untrained(fake_experiments, monkeypatch):
    """The engine fails a run that never validates below its untrained weights (issue 37); the criterion records
    that line instead of an accuracy, and still scores real-only; a failed real-only run is not swallowed."""
    from fer_utils.engine import TrainingFailed
    cfg, _, seen = fake_experiments
    line = "train synth k=1 seed 0: validation loss never came below the untrained weights' (1.79176) in 20 epoch(s)"
    trained = criterion.run_experiment

    def synth_fails(run_cfg, experiment, ratio=0, seed=None, seeds=None):
        if experiment == "synth" and seed == 1:
            raise TrainingFailed(line)
        return trained(run_cfg, experiment, ratio, seed, seeds)

    monkeypatch.setattr(criterion, "run_experiment", synth_fails)
    record = criterion.teaching_criterion(cfg, seeds=(0, 1))
    assert record["failures"] == {"1": line} and list(record["per_seed"]["synthetic_only"]) == ["0"]
    assert list(record["per_seed"]["real_only"]) == ["0", "1"]
    assert criterion.synthetic_only_text(record).endswith("(1 seed); 1 seed learned nothing")
    seen.clear()
    record = criterion.teaching_criterion(cfg, seeds=(1,))
    assert record["synthetic_only"] is None and record["synthetic_only_interval"] is None
    assert len(seen) == 1 and record["runs"]["synthetic_only"] == [] and record["real_only"] is not None
    assert criterion.synthetic_only_text(record).startswith("learned nothing (1 seed:")

    def real_fails(run_cfg, experiment, ratio=0, seed=None, seeds=None):
        raise TrainingFailed(line.replace("synth k=1", "real k=0"))

    monkeypatch.setattr(criterion, "run_experiment", real_fails)
    with pytest.raises(TrainingFailed):
        criterion.teaching_criterion(cfg)


def test_the_record_goes_beside_the_candidate_and_never_into_the_shipped_provenance_of_a_mixed_pair(
        tmp_path, monkeypatch):
    exported = tmp_path / "gan" / "stargan" / "stargan_affectnet_world_64.safetensors"  # a train-gan export
    exported.parent.mkdir(parents=True)
    exported.write_bytes(b"weights")
    (exported.parent / "provenance.json").write_text(json.dumps({"model": "stargan", "iterations": 10}))
    other = tmp_path / "200000-G.ckpt"  # yunjey's: no provenance of ours
    shipped = []
    monkeypatch.setattr(criterion, "record_provenance", lambda name, entry, key: shipped.append((name, key)) or name)
    pair = {"stylegan2": {"path": str(criterion.SHIPPED["stylegan2"])}, "stargan": {"path": str(exported)}}
    written = criterion.record_criterion({"synthetic_only": 0.5}, pair, tmp_path / "kept")
    assert shipped == []  # the shipped StyleGAN2's record is the shipped pair's, not this candidate's
    assert json.loads((tmp_path / "kept" / "criterion.json").read_text()) == {"synthetic_only": 0.5}
    assert json.loads((exported.parent / "provenance.json").read_text()) == {
        "model": "stargan", "iterations": 10, "criterion": {"synthetic_only": 0.5}}
    with pytest.raises(criterion.ConfigError, match=f"stargan is {exported}"):
        criterion.record_criterion({"synthetic_only": 0.6}, pair, tmp_path / "kept", ship=True)
    assert shipped == [] and json.loads((tmp_path / "kept" / "criterion.json").read_text())["synthetic_only"] == 0.5
    criterion.record_criterion({"synthetic_only": 0.4}, {"stargan": {"path": str(other)}}, tmp_path / "kept")
    assert json.loads((tmp_path / "200000-G.ckpt.criterion.json").read_text()) == {"synthetic_only": 0.4}
    assert len(written) == 2 and not list(tmp_path.rglob("*.tmp*"))


def test_only_ship_writes_the_shipped_pairs_record_into_the_shipped_provenance(tmp_path, monkeypatch):
    shipped = []
    monkeypatch.setattr(criterion, "record_provenance", lambda name, entry, key: shipped.append((name, key)) or name)
    pair = {model: {"path": str(path)} for model, path in criterion.SHIPPED.items()}
    criterion.record_criterion({"synthetic_only": 0.5}, pair, tmp_path)
    assert shipped == []
    criterion.record_criterion({"synthetic_only": 0.5}, pair, tmp_path, ship=True)
    assert sorted(shipped) == sorted((path.name, "criterion") for path in criterion.SHIPPED.values())


def test_the_command_line_takes_a_candidate_pair():
    from fer_utils.cli import _config, build_parser
    args = build_parser().parse_args(["criterion", "--preset", "quick", "--stargan", "mine/G.safetensors",
                                      "--skip-quality"])
    cfg = _config(args)
    assert cfg.generate.stargan_weights == "mine/G.safetensors" and cfg.generate.stylegan2_weights == ""
    assert args.skip_quality


def test_ship_refuses_a_candidate_pair_before_measuring_anything(tmp_path, monkeypatch, capsys):
    from fer_utils import cli, inputs
    mine = tmp_path / "G.safetensors"
    mine.write_bytes(b"weights")
    monkeypatch.setattr(inputs, "prepare_inputs", lambda *args, **kwargs: pytest.fail("measured a pair it won't ship"))
    assert cli.main(["criterion", "--preset", "quick", "--stargan", str(mine), "--ship", "--skip-quality"]) == 2
    assert f"criterion --ship records the shipped pair's criterion, but stargan is {mine}" in capsys.readouterr().err
