"""Notebooks follow the papermill contract: a `parameters` cell of literals with quick defaults.

Papermill only warns on an unknown parameter, so a misspelt `-p` would silently run the
defaults; these checks keep every notebook's parameters known and typed.
"""
import ast
import json
import types
from pathlib import Path

import papermill
import pytest

from fer_utils.config import ROOT, ConfigError
from fer_utils.notebook_params import check_parameters

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


# ---------------------------------------------------------------- unknown parameters stop the run
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_cell_after_the_parameters_checks_them(path: Path):
    cells = json.loads(path.read_text())["cells"]
    i = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    assert f'check_parameters(globals(), "{path.name}")' in "".join(cells[i + 1]["source"]), (
        f"{path.name}: the cell after `parameters` must call check_parameters(globals(), {path.name!r})")


def test_a_misspelt_parameter_is_named_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"05_mix_sweep.ipynb: unknown parameter\(s\) ratoi .* preset, ratio, synth"):
        check_parameters({"preset": "quick", "ratoi": 5}, "05_mix_sweep.ipynb")


def test_the_kernels_own_names_are_not_parameters():
    hidden = {"In": [""], "Out": {}, "exit": 0, "quit": 0, "open": 0, "DATA": "x"}  # DATA: from a startup file
    shell = types.SimpleNamespace(user_ns_hidden={**hidden, "get_ipython": 0})
    namespace = {**hidden, "get_ipython": lambda: shell, "_i1": "", "__builtins__": {}, "ratio": 3}
    check_parameters(namespace, "05_mix_sweep.ipynb")


def test_imports_are_not_parameters():
    namespace = {"preset": "quick", "check_parameters": check_parameters, "types": types, "Path": Path}
    check_parameters(namespace, "05_mix_sweep.ipynb")


def test_a_rerun_in_the_same_kernel_passes():
    namespace = {"preset": "quick"}
    check_parameters(namespace, "02_preprocess.ipynb")
    namespace["cfg"] = object()  # what the cells below bound before Jupyter's "Run all" came back here
    check_parameters(namespace, "02_preprocess.ipynb")


def test_an_unknown_notebook_is_named():
    with pytest.raises(ConfigError, match="no notebook .*nope.ipynb"):
        check_parameters({}, "nope.ipynb")


def test_papermill_stops_on_a_misspelt_parameter(tmp_path: Path):
    """The headline case, in a real kernel run from elsewhere: `-p ratoi 5` must not train ratio 1."""
    given = {"ratoi": 5, "preset": "no-such-preset"}  # without the check, load_config fails fast: no training
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter.*ratoi"):
        papermill.execute_notebook(str(ROOT / "notebooks" / "05_mix_sweep.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters=given, cwd=str(tmp_path), progress_bar=False)


def test_papermill_runs_on_with_known_parameters(tmp_path: Path):
    """A real kernel's own globals (In, Out, open, ...) pass; the notebook is cut after the check to stay cheap."""
    nb = json.loads((ROOT / "notebooks" / "05_mix_sweep.ipynb").read_text())
    nb["cells"] = nb["cells"][:next(i for i, c in enumerate(nb["cells"]) if c.get("id") == "check-parameters") + 1]
    (tmp_path / "cut.ipynb").write_text(json.dumps(nb))
    papermill.execute_notebook(str(tmp_path / "cut.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"ratio": 3, "seeds": 2}, cwd=str(tmp_path), progress_bar=False)
