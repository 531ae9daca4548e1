"""Crop-cache folders no configured database uses are named by ``check`` (which writes nothing) and removed by
``clean-cache`` only when proven stale: never the folder in use, a folder preprocess did not finish, a link, or
anything outside the cache (issue 37, second round)."""
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

TINY = {"world.rafd_subjects": 2, "preprocess.workers": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A RaFD-like database of two subjects, written once; every test crops it into its own cache."""
    out = tmp_path_factory.mktemp("world")
    write_world(load_config("quick", {**TINY, "data.rafd": str(out / "rafd")}), only=["rafd"])
    return out / "rafd"


def _settings(tmp: Path, margin: float = 0.2) -> dict[str, object]:
    """The world's RaFD (``tmp/rafd``, a link to the module's), a cache and results of this test's own."""
    return {**TINY, "data.rafd": str(tmp / "rafd"), "data.cache": str(tmp / "cache"),
            "results_dir": str(tmp / "results"), "preprocess.margin": margin}


def _args(command: str, tmp: Path) -> list[str]:
    return [command, "--preset", "quick", *(arg for key, value in _settings(tmp).items() for arg in
                                            ("--set", f"{key}={value}"))]


@pytest.fixture
def cache(world, tmp_path) -> dict[str, Path]:
    """RaFD cropped at margin 0.3 (stale), then at 0.2 (the settings' margin: in use); the other five world
    databases are not written, so their check does not pass and they are not judged."""
    (tmp_path / "rafd").symlink_to(world)
    stale = Path(load_database(load_config("quick", _settings(tmp_path, 0.3)), "rafd").meta["folder"])
    current = Path(load_database(load_config("quick", _settings(tmp_path)), "rafd").meta["folder"])
    assert stale.parent == current.parent and stale != current
    return {"stale": stale, "current": current}


def _snapshot(tmp: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(tmp)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(tmp.rglob("*"))}


def test_check_names_the_stale_folder_why_its_size_and_the_command_and_writes_nothing(cache, tmp_path,
                                                                                       capsys) -> None:
    before = _snapshot(tmp_path)
    assert cli.main(_args("check", tmp_path)) == 0  # the five unwritten world databases: to write, no problem
    out = capsys.readouterr().out
    assert _snapshot(tmp_path) == before
    assert "crop cache: 1 stale folder(s), " in out and f"(in {cache['stale'].parent})" in out
    line = next(line for line in out.splitlines() if cache["stale"].name in line)
    assert line.strip().startswith(f"{cache['stale'].name} (") and " MB): settings changed: margin 0.3 -> 0.2" in line
    assert cache["current"].name not in out
    assert "remove them with: python -m fer_utils clean-cache --preset quick --set world.rafd_subjects=2" in out


def test_clean_cache_removes_only_the_proven_stale_folder(cache, tmp_path, capsys) -> None:
    root = cache["stale"].parent
    unfinished = root / "rafd-0123456789abcdef"  # no meta.json: not a folder preprocess finished
    unfinished.mkdir()
    outside = shutil.copytree(cache["stale"], tmp_path / "elsewhere" / "rafd-fedcba9876543210")
    meta = json.loads((outside / "meta.json").read_text())
    (outside / "meta.json").write_text(json.dumps(meta | {"key": "fedcba9876543210"}))
    os.symlink(outside, root / outside.name)  # a link in the cache to a stale-looking folder outside it
    other = root / "generated-00112233aabbccdd"  # a database not configured here: not judged
    shutil.copytree(cache["stale"], other)
    capsys.readouterr()
    assert cli.main(_args("clean-cache", tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"removed {cache['stale']} (" in out and "removed 1 stale crop-cache folder(s)" in out
    assert not cache["stale"].exists()
    assert cache["current"].is_dir() and unfinished.is_dir() and other.is_dir()
    assert (root / outside.name).is_symlink() and (outside / "faces.npz").is_file()
    assert load_database(load_config("quick", _settings(tmp_path)), "rafd").meta["cached"]  # still in use
    cli.main(_args("check", tmp_path))
    assert "crop cache: no stale folder" in capsys.readouterr().out


def test_a_folder_of_files_read_from_elsewhere_is_not_judged(cache, tmp_path, capsys) -> None:
    """``criterion`` crops a candidate's generated units from its own folder into the same cache: such a folder is
    of a database read from another place, not a stale one of the configured database."""
    meta = json.loads((cache["stale"] / "meta.json").read_text())
    moved = {str(tmp_path / "candidate" / Path(path).name): digest for path, digest in meta["files"].items()}
    (cache["stale"] / "meta.json").write_text(json.dumps(meta | {"files": moved}))
    cli.main(_args("check", tmp_path))
    assert "crop cache: no stale folder" in capsys.readouterr().out


def test_clean_cache_on_a_mistyped_cache_path_says_so_rather_than_nothing_stale(tmp_path, capsys) -> None:
    from fer_utils.cli import main
    missing = tmp_path / "no_such_cache"
    assert main(["clean-cache", "--preset", "quick", "--set", f"data.cache={missing}"]) == 2
    assert f"data.cache: {missing} is not a folder" in capsys.readouterr().err
