"""A world on disk is reused only if this code, these settings and this style wrote it; else it is rewritten."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import shutil
from pathlib import Path

import pytest
from processes import first_then_second

from fer_utils import config, identity, inputs
from fer_utils.config import load_config
from fer_utils.facegen import world
from fer_utils.facegen.render import single_threaded
from fer_utils.facegen.world import INCOMPLETE, MANIFEST, write_world

SMALL = {"world.ffhq_images": 20}  # one job of one database: about a second to write


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """An FFHQ-like world of 20 images, written once; each test works on its own copy."""
    out = tmp_path_factory.mktemp("world")
    write_world(load_config("quick", SMALL), out=out, only=["ffhq"])
    return out / "ffhq"


@pytest.fixture
def root(written, tmp_path) -> Path:
    """A copy of the written world at ``tmp_path / "ffhq"``."""
    return Path(shutil.copytree(written, tmp_path / "ffhq"))


def _digest(root: Path) -> dict[str, str]:
    """sha256 of each image, by path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def _rerun(root: Path, capsys, **world: object) -> str:
    """Write the world into ``root``'s folder again with ``world`` settings changed; return what it printed."""
    capsys.readouterr()
    write_world(load_config("quick", {**SMALL, **{f"world.{k}": v for k, v in world.items()}}),
                out=root.parent, only=["ffhq"])
    return capsys.readouterr().out


def _rewritten(root: Path) -> bool:
    """The folder holds a complete world whose manifest this code wrote."""
    return (not (root / INCOMPLETE).exists()
            and json.loads((root / MANIFEST).read_text())["identity"]["code"] == identity.CODE["world"])


def test_unchanged_world_is_skipped_untouched(root, capsys) -> None:
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    out = _rerun(root, capsys)
    assert "ffhq: complete, skipped" in out
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_changed_seed_rewrites_the_world(root, capsys) -> None:
    """It used to be skipped: every result was computed on the seed-0 faces."""
    before = _digest(root)
    out = _rerun(root, capsys, seed=1)
    assert f"ffhq: rewriting {root}, stale: settings changed: world.seed 0 -> 1" in out
    after = _digest(root)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)
    assert json.loads((root / MANIFEST).read_text())["world"]["seed"] == 1 and _rewritten(root)


def test_another_databases_size_does_not_rewrite(root, capsys) -> None:
    """FFHQ's bytes do not depend on AffectNet's count: changing it must not cost a rewrite."""
    assert "ffhq: complete, skipped" in _rerun(root, capsys, affectnet_images=61)


def test_changed_code_rewrites_the_world(root, capsys, monkeypatch) -> None:
    manifest = (root / MANIFEST).stat().st_mtime_ns
    monkeypatch.setitem(identity.CODE["world"], "facegen/render.py", "0" * 16)  # as if render.py had been edited
    out = _rerun(root, capsys)
    assert "stale: code changed: facegen/render.py" in out and "settings" not in out
    assert (root / MANIFEST).stat().st_mtime_ns != manifest and _rewritten(root)


def test_manifest_of_an_older_version_is_rewritten(written, root, capsys) -> None:
    """An older writer recorded no code hash: what drew its faces cannot be known."""
    saved = json.loads((root / MANIFEST).read_text())
    del saved["identity"]
    (root / MANIFEST).write_text(json.dumps(saved))
    (root / "thumbnails128x128" / "00000" / "00000.png").write_bytes(b"an older face")
    out = _rerun(root, capsys)
    assert f"stale: {identity.OLDER}" in out
    assert _rewritten(root) and _digest(root) == _digest(written)


def test_the_worlds_code_is_what_draws_it_not_its_figures() -> None:
    """Editing figures.py (the style grids) or the generators' identity check must not rewrite a world."""
    files = identity.CODE["world"]
    assert {"facegen/render.py", "facegen/face.py", "facegen/writers.py", "emotions.py"} <= files.keys()
    assert not {"facegen/figures.py", "facegen/people.py", "facegen/regions.py", "plots.py"} & files.keys()


def test_corrupt_manifest_is_rewritten(root, capsys) -> None:
    text = (root / MANIFEST).read_text()
    (root / MANIFEST).write_text(text[: len(text) // 2])  # truncated, as by a full disk
    out = _rerun(root, capsys)
    assert "stale: manifest unreadable (JSONDecodeError" in out and _rewritten(root)


def test_user_folder_without_manifest_is_still_refused(tmp_path, capsys) -> None:
    mine = tmp_path / "ffhq"
    mine.mkdir()
    (mine / "mine.png").write_bytes(b"x")
    with pytest.raises(RuntimeError, match="not written by fer_utils.facegen"):
        _rerun(mine, capsys)
    assert [p.name for p in mine.iterdir()] == ["mine.png"] and (mine / "mine.png").read_bytes() == b"x"


def test_pipeline_rewrites_a_stale_world_path(written, tmp_path, capsys, monkeypatch) -> None:
    """``prepare_inputs``, which every command and notebook runs first, passes complete world paths on too."""
    monkeypatch.setattr(config, "PROJECT_DATA", tmp_path / "data")
    root = Path(shutil.copytree(written, tmp_path / "data" / "quick" / "world" / "ffhq"))
    cfg = load_config("quick", {**SMALL, "world.seed": 1, "data.ffhq": str(root)})
    capsys.readouterr()
    inputs.prepare_inputs(cfg, ["ffhq"])
    assert "stale: settings changed: world.seed 0 -> 1" in capsys.readouterr().out
    assert json.loads((root / MANIFEST).read_text())["world"]["seed"] == 1


def _write_in_a_process(out: Path, results, started=None, go=None) -> None:
    """Write the small world into ``out``; with events, stop after taking the lock until ``go`` is set."""
    single_threaded()  # a forked child entering its parent's OpenMP pool hangs (as the world's own workers do)
    if started is not None:
        original = world.write_database

        def paused(*args, **kwargs):
            started.set()
            go.wait(60)
            return original(*args, **kwargs)
        world.write_database = paused
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            write_world(load_config("quick", SMALL), out=out, only=["ffhq"])
        results.put(("ok", printed.getvalue()))
    except Exception as error:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(("failed", repr(error)))


def test_two_processes_writing_one_world_do_not_wipe_each_other(written, tmp_path) -> None:
    """A notebook and train-gan once wrote AffectNet at the same time: the second wiped the first's files."""
    # the second reaches the folder while the first is mid-write
    outcomes = first_then_second(multiprocessing.get_context("fork"), _write_in_a_process, (tmp_path,), started_s=60,
                                 reach_s=1.0, finish_s=120)
    assert [status for status, _ in outcomes] == ["ok", "ok"], outcomes
    assert "ffhq: complete, skipped" in outcomes[1][1]  # the second waited, then reused the first's world
    assert _rewritten(tmp_path / "ffhq") and _digest(tmp_path / "ffhq") == _digest(written)
