"""Questions about the pipeline write nothing: ``check``, ``sweep --status`` and ``sweep --plan`` leave the data and
results folders as they found them (issue 37 case 8: ``--status`` wrote crop-cache entries)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fer_utils import cli
from fer_utils.config import load_config
from fer_utils.facegen import write_world
from fer_utils.preprocess import load_database

DATABASES = ("rafd", "oulu", "mmi", "ckplus")
TINY = {"world.rafd_subjects": 2, "world.oulu_subjects": 2, "world.mmi_subjects": 1, "world.ckplus_subjects": 3,
        "split.train_subjects": 2, "split.val_subjects": 1, "split.test_subjects": 1, "preprocess.workers": 1}


def _settings(tmp: Path) -> dict[str, object]:
    return {**TINY, **{f"data.{name}": str(tmp / "data" / name) for name in DATABASES},
            "data.cache": str(tmp / "data" / "cache"), "results_dir": str(tmp / "results")}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny world with an empty crop cache, and a results folder holding one run record (so ``--status`` must
    read the data to judge it)."""
    tmp = tmp_path_factory.mktemp("project")
    write_world(load_config("quick", _settings(tmp)), only=list(DATABASES))
    run = tmp / "results" / "real" / "real-seed0"
    run.parent.mkdir(parents=True)
    run.with_suffix(".json").write_text(json.dumps({"experiment": "real", "params": {"ratio": 0}}))
    run.with_suffix(".safetensors").write_bytes(b"weights")
    return tmp


def _snapshot(tmp: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under the project, with its size and modification time."""
    return {str(p.relative_to(tmp)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(tmp.rglob("*"))}


@pytest.mark.parametrize("command", [["check"], ["sweep", "--status"], ["sweep", "--plan"]],
                         ids=["check", "status", "plan"])
def test_questions_write_nothing(project, command, capsys) -> None:
    before = _snapshot(project)
    overrides = [arg for key, value in _settings(project).items() for arg in ("--set", f"{key}={value}")]
    cli.main([*command, "--preset", "quick", "--device", "cpu", *overrides])
    out = capsys.readouterr().out
    assert _snapshot(project) == before
    if command == ["sweep", "--status"]:  # it read the data to judge the record: a record of no identity
        assert "no identity recorded" in out and "0 runs done" in out


def test_check_verify_names_a_same_size_edit_with_its_time_restored(project, tmp_path, capsys) -> None:
    """The crop cache keys files by size and mtime (as make and rsync do): such an edit reuses the old crop, so
    ``check --verify`` re-hashes the content and names the file."""
    shutil.copytree(project / "data", tmp_path / "data")
    settings = _settings(tmp_path)
    faces = load_database(load_config("quick", settings), "rafd")  # cached, with each input's content hash
    image = Path(faces.manifest[0]["path"])
    args = ["check", "--verify", "--preset", "quick", "--device", "cpu",
            *(arg for key, value in settings.items() for arg in ("--set", f"{key}={value}"))]
    capsys.readouterr()
    cli.main(args)
    assert "changed content" not in capsys.readouterr().err
    stat, data = image.stat(), bytearray(image.read_bytes())
    data[-3] ^= 0xFF  # one byte of the same-size file
    image.write_bytes(bytes(data))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"data.rafd: {image} changed content (sha256 " in err and "under an unchanged size and mtime" in err
