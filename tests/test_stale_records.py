"""A kept run counts as done only on the data it records: after the data change (a world rewritten by another
renderer or setting) it is trained again, and no table averages it in beside runs of the new data."""
from __future__ import annotations

import json

import pytest
from synthetic import synthetic_faces, tiny_cnn

from fer_utils import experiments, identity, results, sweep
from fer_utils.config import Config, DataError, load_config
from fer_utils.models import MODELS
from fer_utils.preprocess import SPLITS, FaceSet

REAL = ("real", 0, 0)


class World:
    """Stand-in inputs whose databases can be rewritten (other faces, another content hash), as a world change does;
    ``units`` counts the generated units on disk, which the generated database's hash covers."""

    def __init__(self) -> None:
        self.version = dict.fromkeys(("rafd", "mmi", "ckplus", "generated"), 0)
        self.units = 1

    def rewrite(self, database: str) -> None:
        self.version[database] += 1

    def faces(self, n: int, seed: int, database: str) -> FaceSet:
        """Faces of one database with the source ``load_database`` records (their hash names the version)."""
        version = self.version[database]
        faces = synthetic_faces(n, seed + 100 * version, database)
        units = f"-u{self.units}" if database == "generated" else ""
        faces.meta.update(database=database, source={"source": "embedded world", "path": f"world/{database}",
                                                     "files": n, "hash": f"{database}-v{version}{units}"})
        return faces

    def inputs(self, cfg: Config, experiment: str, ratio: int = 0) -> tuple[dict[str, FaceSet], dict]:
        """``experiments.experiment_inputs``: real faces, plus k units' worth of generated ones for ``mix``."""
        real = {name: self.faces(n, i, "rafd") for i, (name, n) in enumerate(zip(SPLITS, (48, 18, 18)))}
        if not ratio:
            return real, {}
        generated = {name: self.faces(12 * ratio, 10 + i, "generated") for i, name in enumerate(SPLITS)}
        mixed = {name: FaceSet.concat([real[name], generated[name]]) for name in SPLITS}
        return mixed | {"test_real": real["test"]}, {}

    def cross(self, cfg: Config) -> dict[str, FaceSet]:
        return {"mmi": self.faces(12, 3, "mmi"), "ckplus": self.faces(12, 4, "ckplus")}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    """The stand-in inputs and a tiny model in place of the cache and the Table-1 CNN: a run trains in a blink."""
    stand_in = World()
    monkeypatch.setattr(experiments, "experiment_inputs", stand_in.inputs)
    monkeypatch.setattr(experiments, "cross_database_sets", stand_in.cross)
    monkeypatch.setitem(MODELS, "cnn", tiny_cnn)
    return stand_in


@pytest.fixture
def cfg(tmp_path) -> Config:
    return load_config("quick", {"results_dir": str(tmp_path / "results"), "train.epochs": 1, "device": "cpu"})


def _fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the training passes from here on."""
    calls: list[int] = []
    real_fit = experiments.fit
    monkeypatch.setattr(experiments, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    return calls


@pytest.mark.parametrize("database, reason", [
    ("rafd", "input changed: rafd hash rafd-v0 -> rafd-v1, splits hash "),  # trained on it
    ("mmi", "input changed: mmi hash mmi-v0 -> mmi-v1;")])  # scored on it only: the record's MMI numbers are wrong
def test_a_kept_run_of_other_data_is_to_do_named_and_trained_again(cfg, world, monkeypatch, capsys,
                                                                   database, reason) -> None:
    """It used to count as done in the sweep's driver and status, so it was never trained on the new data."""
    (run,) = experiments.run_experiment(cfg, "real", seed=0, progress=False)
    world.rewrite(database)
    capsys.readouterr()
    assert sweep.runs_to_do(cfg, [REAL]) == [REAL]
    assert f"stale {run.path}: {reason}" in capsys.readouterr().out
    fits = _fits(monkeypatch)
    experiments.run_experiment(cfg, "real", seed=0, progress=False)
    assert fits == [1] and json.loads(run.path.read_text())["data"][database]["hash"] == f"{database}-v1"
    assert sweep.runs_to_do(cfg, [REAL]) == []


def test_a_kept_run_of_the_current_data_stays_done_when_more_units_are_generated(cfg, world, monkeypatch,
                                                                                 capsys) -> None:
    """The generated database's own hash covers every unit on disk: a k = 1 run did not train on the new ones."""
    experiments.run_experiment(cfg, "mix", 1, seeds=(0, 1), progress=False)
    world.units = 3
    fits = _fits(monkeypatch)
    runs = sweep.sweep_runs(cfg, [("mix", 1)])
    assert sweep.runs_to_do(cfg, runs) == []
    experiments.run_experiment(cfg, "mix", 1, seeds=(0, 1), progress=False)
    assert fits == [] and [r.name for r in results.find_runs(cfg)] == ["mix-k1-seed0", "mix-k1-seed1"]
    assert "stale" not in capsys.readouterr().out


def test_a_kept_run_without_an_identity_is_to_do(cfg, world, capsys) -> None:
    """Records made before identities: what code made them cannot be known."""
    (run,) = experiments.run_experiment(cfg, "real", seed=0, progress=False)
    saved = json.loads(run.path.read_text())
    del saved["identity"]
    run.path.write_text(json.dumps(saved))
    capsys.readouterr()
    assert sweep.runs_to_do(cfg, [REAL]) == [REAL] and results.find_runs(cfg) == []
    out = capsys.readouterr().out
    assert f"stale {run.path}: {identity.OLDER}" in out and f"skipped {run.path}: {identity.OLDER}" in out


def test_a_kept_run_made_by_other_model_code_is_to_do_named_and_trained_again(cfg, world, monkeypatch,
                                                                              capsys) -> None:
    """Issue 37 case 2: after every nn.Dropout was set to 0, the old record was kept and counted done."""
    (run,) = experiments.run_experiment(cfg, "real", seed=0, progress=False)
    monkeypatch.setitem(identity.CODE["classifier"], "models/cnn.py", "0" * 16)  # as if cnn.py had been edited
    capsys.readouterr()
    assert sweep.runs_to_do(cfg, [REAL]) == [REAL] and results.find_runs(cfg) == []
    assert f"stale {run.path}: code changed: models/cnn.py; it counts as not done" in capsys.readouterr().out
    fits = _fits(monkeypatch)
    experiments.run_experiment(cfg, "real", seed=0, progress=False)
    assert fits == [1] and sweep.runs_to_do(cfg, [REAL]) == []
    assert json.loads(run.path.read_text())["identity"]["code"]["models/cnn.py"] == "0" * 16


def test_a_kept_run_of_other_settings_is_named(cfg, world, monkeypatch, capsys) -> None:
    experiments.run_experiment(cfg, "real", seed=0, progress=False)
    lr = cfg.train.lr
    other = load_config("quick", {"results_dir": str(cfg.results_dir), "train.epochs": 1, "device": "cpu",
                                  "train.lr": lr * 10})
    capsys.readouterr()
    assert sweep.runs_to_do(other, [REAL]) == [REAL]
    assert f"settings changed: train.lr {lr} -> {lr * 10}" in capsys.readouterr().out


def test_kept_runs_whose_current_data_cannot_be_read_do_not_count(cfg, world, monkeypatch, capsys) -> None:
    (run,) = experiments.run_experiment(cfg, "real", seed=0, progress=False)

    def missing(cfg: Config, experiment: str, ratio: int = 0) -> None:
        raise DataError("data.rafd (world/rafd) does not exist")

    monkeypatch.setattr(experiments, "experiment_inputs", missing)
    capsys.readouterr()
    assert sweep.runs_to_do(cfg, [REAL]) == [REAL] and results.find_runs(cfg) == []
    out = capsys.readouterr().out
    assert "cannot read the data of real k=0 (DataError: data.rafd (world/rafd) does not exist)" in out
    assert f"skipped {run.path}: its current data cannot be read" in out


def test_tables_leave_out_runs_of_other_data_naming_them(cfg, world, capsys) -> None:
    """A sweep stopped after retraining seed 0 on the new data: seed 1 must not be averaged in beside it."""
    old = experiments.run_experiment(cfg, "real", seeds=(0, 1), progress=False)
    world.rewrite("rafd")
    experiments.run_experiment(cfg, "real", seed=0, progress=False)
    capsys.readouterr()
    assert [r.name for r in results.find_runs(cfg)] == ["real-seed0"]
    assert f"skipped {old[1].path}: input changed: rafd hash rafd-v0 -> rafd-v1" in capsys.readouterr().out
