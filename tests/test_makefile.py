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
