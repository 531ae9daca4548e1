"""Inputs are checked before any work: a mistyped path is an error, never replaced by the embedded world."""
from __future__ import annotations

import pytest

from fer_utils import cli, config, inputs
from fer_utils.config import DataError, load_config
from fer_utils.facegen import world


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The project's data folder moved into tmp_path, so world paths can be written and checked there."""
    monkeypatch.setattr(config, "PROJECT_DATA", tmp_path / "data")
    written = []
    monkeypatch.setattr(world, "ensure_world", lambda cfg, only: written.extend(only))
    return tmp_path, written


def _cfg(tmp_path, **data):
    """Quick preset whose four experiment databases are world paths under tmp_path, except ``data``."""
    paths = {f"data.{n}": str(tmp_path / "data" / "quick" / "world" / n) for n in inputs.EXPERIMENT_DATABASES}
    return load_config("quick", {**paths, **{f"data.{k}": v for k, v in data.items()}})


def test_a_mistyped_path_is_an_error_before_anything_is_written(project) -> None:
    """It used to be filled with the embedded world and reported as RaFD numbers."""
    tmp_path, written = project
    cfg = _cfg(tmp_path, rafd=str(tmp_path / "datasets" / "RaFd"))
    with pytest.raises(DataError, match=r"data.rafd: .*datasets/RaFd does not exist; expected the rafd layout"):
        inputs.prepare_inputs(cfg)
    assert written == [] and not (tmp_path / "datasets").exists()


def test_only_world_paths_are_written(project) -> None:
    tmp_path, written = project
    checks = inputs.prepare_inputs(_cfg(tmp_path))
    assert written == list(inputs.EXPERIMENT_DATABASES)
    assert {c.source for c in checks} == {"embedded world"}


@pytest.mark.parametrize("value", ["data/quick/rafd", "data/quick/world/RaFD", "elsewhere/world/rafd"])
def test_world_is_only_data_preset_world_database(project, value) -> None:
    """A near miss of the world's own path is the user's path: not written, an error when missing."""
    tmp_path, written = project
    cfg = _cfg(tmp_path, rafd=str(tmp_path / value))
    assert not config.is_world_path(cfg, "rafd")
    with pytest.raises(DataError, match="data.rafd"):
        inputs.prepare_inputs(cfg)
    assert written == []


def test_an_empty_user_folder_and_foreign_files_in_a_world_path_are_errors(project) -> None:
    tmp_path, written = project
    (tmp_path / "mine").mkdir()
    foreign = tmp_path / "data" / "quick" / "world" / "oulu"
    foreign.mkdir(parents=True)
    (foreign / "notes.jpg").write_bytes(b"x")
    checks, problems = inputs.check_inputs(_cfg(tmp_path, rafd=str(tmp_path / "mine")))
    assert [c.state for c in checks] == ["error", "error", "to write", "to write"]
    assert "mine is empty" in problems[0] and "did not write" in problems[1]
    assert written == []


def test_check_reads_counts_and_writes_nothing(project, write_image) -> None:
    tmp_path, _ = project
    for s in (1, 2):
        for word in ("angry", "happy", "neutral"):
            write_image(tmp_path / "rafd" / f"Rafd090_{s:02d}_Moroccan_male_{word}_frontal.jpg")
    before = sorted(tmp_path.rglob("*"))
    check = inputs.check_database(_cfg(tmp_path, rafd=str(tmp_path / "rafd")), "rafd")
    assert sorted(tmp_path.rglob("*")) == before
    assert (check.state, check.source, check.images, len(check.subjects)) == ("ok", "your files", 4, 2)
    assert check.classes == {"angry": 2, "happy": 2} and check.skipped.counts == {"excluded class neutral": 2}


def test_cli_check_prints_a_table_and_exits_2_with_one_line_per_problem(project, capsys) -> None:
    tmp_path, written = project
    preset = tmp_path / "mine.yaml"
    preset.write_text(config.preset_path("quick").read_text().replace("data/quick/world/rafd", "/no/such/RaFd"))
    assert cli.main(["check", "--preset", str(preset)]) == 2
    out, err = capsys.readouterr()
    assert "| rafd | your files | /no/such/RaFd | error |" in out
    assert err.splitlines()[0].startswith("error: data.rafd: /no/such/RaFd does not exist")
    assert "Traceback" not in err and written == []


def test_cli_errors_are_one_line_exit_2(capsys) -> None:
    """Settings errors reach the user as one line, not a traceback."""
    assert cli.main(["check", "--preset", "quick", "--set", "train.epochs=0"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_the_worlds_own_folder_is_named_the_world_before_it_is_written(tmp_path) -> None:
    """Notebook 01 publishes before 02 writes RaFD and the others: its table said "your files" for them."""
    from fer_utils.config import data_source

    cfg = load_config("quick", {"data.rafd": "data/not-a-preset/world/rafd", "data.mmi": str(tmp_path / "mmi")})
    assert data_source(cfg, "rafd") == "embedded world (not written yet)"
    assert data_source(cfg, "mmi") == "your files"


@pytest.mark.parametrize("model", ["stylegan2", "stargan"])
def test_a_weights_problem_names_its_key_once(tmp_path, model) -> None:
    """``check`` printed 'generate.stylegan2_weights: generate.stylegan2_weights: weights file not found' (issue 37
    #10): the key is said once, the file and the advice follow."""
    cfg = load_config("quick", {f"generate.{model}_weights": str(tmp_path / "nope.safetensors")})
    (problem,) = inputs.check_weights(cfg)
    assert problem.startswith(f"generate.{model}_weights: weights file not found: {tmp_path / 'nope.safetensors'}")
    assert problem.count(f"generate.{model}_weights") == 1
