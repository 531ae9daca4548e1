"""The package's layers (docs/architecture.md): a module imports only from its own layer or the ones below.

Read from the source with ``ast`` (function-level imports included), so a lazy import cannot hide a
dependency that breaks the layering.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fer_utils"

# From the ground up; a module may import every layer below its own, and within its layer only WITHIN.
# The package root (``__init__``: the version) sits below them all.
LAYERS: list[set[str]] = [
    {"__init__"},
    {"config", "emotions", "identity", "paper", "runtime", "uncertainty"},
    {"plots", "report", "models", "facegen", "datasets", "coverage"},
    {"preprocess", "preview"},
    {"engine", "evaluate"},
    {"gan"},
    {"filtering", "experiments", "results", "calibrate", "criterion", "criterion_controls"},
    {"inputs", "stale_cache", "sweep", "executors", "benchmarks", "notebook_params", "walkthroughs"},
    {"cli", "__main__"},
]
WITHIN = {("runtime", "config"), ("identity", "runtime"), ("preview", "preprocess"), ("results", "experiments"),
          ("experiments", "filtering"),
          ("results", "filtering"), ("criterion", "experiments"), ("criterion_controls", "criterion"),
          ("calibrate", "experiments"), ("sweep", "inputs"), ("stale_cache", "inputs"), ("sweep", "executors"),
          ("benchmarks", "inputs"),
          ("benchmarks", "executors"), ("__main__", "cli")}
# Extra rules: each side must work without the other (the world writes real layouts, adapters read them);
# generators train on whatever data they are given, so a user's own data can replace the world's.
FORBIDDEN = {
    "datasets": {"facegen"}, "preprocess": {"facegen"}, "preview": {"facegen"},
    "facegen": {"datasets", "preprocess"},
    "gan": {"experiments", "facegen"},
}


def layer_of(unit: str) -> int:
    """Index of the layer holding a top-level module or subpackage of fer_utils."""
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise AssertionError(f"fer_utils.{unit} is in no layer: add it to LAYERS here and to docs/architecture.md")


def unit_of(path: Path) -> str:
    """``gan`` for fer_utils/gan/trainer.py, ``cli`` for fer_utils/cli.py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_units(path: Path) -> set[str]:
    """Top-level fer_utils modules or subpackages that ``path`` imports, relative or absolute."""
    package = ["fer_utils", *path.relative_to(PACKAGE).parts[:-1]]  # the file's own package
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            modules += [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fer_utils"):
            modules.append(node.module.split("."))
        elif isinstance(node, ast.Import):
            modules += [a.name.split(".") for a in node.names if a.name.startswith("fer_utils")]
    units = {_unit(parts) for parts in modules}
    return units - {unit_of(path)}


def _unit(parts: list[str]) -> str:
    """The top-level module or subpackage of a dotted fer_utils name; a name defined in __init__ is ``__init__``."""
    if len(parts) < 2 or not ((PACKAGE / f"{parts[1]}.py").is_file() or (PACKAGE / parts[1]).is_dir()):
        return "__init__"
    return parts[1]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    unit = unit_of(path)
    for other in imported_units(path):
        assert other not in FORBIDDEN.get(unit, set()), f"{path.name}: fer_utils.{unit} must not import {other}"
        assert layer_of(other) < layer_of(unit) or (unit, other) in WITHIN, (
            f"{path.relative_to(PACKAGE)} imports fer_utils.{other}, a layer above (or beside) its own "
            "(docs/architecture.md)")


def test_the_rules_catch_a_violation(tmp_path) -> None:
    """The reader sees relative, absolute and lazy imports (a rule that sees nothing passes everything)."""
    fake = PACKAGE / "gan" / "_probe_for_test.py"
    try:
        fake.write_text("def f():\n    from ..experiments import run_experiment\n    import fer_utils.cli\n"
                        "from ..facegen import render_faces\n")
        assert imported_units(fake) == {"experiments", "cli", "facegen"}
    finally:
        fake.unlink()
    assert imported_units(PACKAGE / "preprocess.py") >= {"config", "datasets", "runtime"}
