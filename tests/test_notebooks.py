"""Notebooks follow the papermill contract: a `parameters` cell of literals with quick defaults.

Papermill only warns on an unknown parameter, so a misspelt `-p` would silently run the
defaults; these checks keep every notebook's parameters known and typed.
"""
import ast
import json
from pathlib import Path

import papermill
import pytest

from fer_utils.config import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_defaults_to_quick_preset(path: Path):
    params = papermill.inspect_notebook(str(path))
    assert "preset" in params, f"{path.name}: no `preset` parameter"
    assert params["preset"]["default"] == '"quick"', f"{path.name}: preset must default to quick (CI)"
    for name, spec in params.items():
        assert spec["inferred_type_name"] != "None", f"{path.name}: parameter {name} has no type"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_literals_only(path: Path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged `parameters`"
    names = []
    for node in ast.parse("".join(tagged[0]["source"])).body:
        assert isinstance(node, ast.AnnAssign), f"{path.name}: parameters must be `name: type = literal`"
        ast.literal_eval(node.value)  # raises if a default is computed
        names.append(node.target.id)
    # papermill skips a line with a second "=" (e.g. in its comment): `-p name` would then be ignored
    assert list(papermill.inspect_notebook(str(path))) == names, f"{path.name}: papermill cannot parse every parameter"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_checked_cells_carry_outputs(path: Path):
    """nbval compares stored outputs only for `# NBVAL_CHECK_OUTPUT` cells, so those need one."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        checked = "# NBVAL_CHECK_OUTPUT" in "".join(cell["source"])
        assert bool(cell.get("outputs")) == checked, (
            f"{path.name}: a `# NBVAL_CHECK_OUTPUT` cell needs its expected output stored; "
            "every other cell is committed without outputs")
