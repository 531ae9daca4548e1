"""The Makefile's promises a newcomer relies on, read through `make -n` (prints the recipes, runs nothing)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fer_utils.config import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not on PATH")


def _dry_run(*args: str) -> str:
    done = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return done.stdout


def test_lab_installs_nothing_after_make_test(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".stamp-test").touch()  # what `make test` leaves, newer than pyproject.toml and constraints.txt
    recipe = _dry_run(f"VENV={venv}", "lab")
    assert "pip" not in recipe and "jupyter lab" in recipe, recipe


def test_clean_keeps_the_venv_and_distclean_removes_it() -> None:
    clean = _dry_run("clean")
    assert "rm -rf results" in clean and ".venv" not in clean.replace("-path ./.venv -prune", ""), clean
    assert "rm -rf .venv" in _dry_run("distclean")


def test_reproduce_runs_every_notebook_once_and_07_before_06(tmp_path: Path) -> None:
    """06 tabulates every trained model; 07 trains VGG16: in the other order a first reproduce misses its row."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".stamp-test").touch()
    recipe = _dry_run(f"VENV={venv}", "reproduce")
    order = [name for line in recipe.splitlines() if "for nb in" in line
             for name in line.split("for nb in", 1)[1].split(";", 1)[0].split()]
    assert sorted(order) == sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("0*.ipynb")), order
    assert order.index("notebooks/07_sota.ipynb") < order.index("notebooks/06_cross_eval.ipynb"), order
