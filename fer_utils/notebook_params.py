"""A notebook's papermill parameters checked against its own ``parameters`` cell.

Papermill only warns when ``-p NAME VALUE`` names no parameter, then runs the defaults: a misspelt
``-p ratoi 5`` trains ratio 1 and exits 0. So each notebook calls ``check_parameters(globals(), ...)``
in the cell after its ``parameters`` cell (papermill injects its values between the two), and an
unknown name stops the run there. The known names are read from that ``parameters`` cell with
papermill itself, so the list lives in one place: the notebook.
"""
from __future__ import annotations

import inspect
from collections.abc import MutableMapping
from typing import Any

from .config import ROOT, ConfigError

NOTEBOOKS = ROOT / "notebooks"
CHECKED = "_fer_utils_parameters_checked"  # set in the namespace once checked, so a rerun in the same kernel passes


def notebook_parameters(notebook: str) -> list[str]:
    """Names the notebook's ``parameters`` cell declares, read as papermill reads them."""
    import papermill

    path = NOTEBOOKS / notebook
    if not path.is_file():
        raise ConfigError(f"check_parameters: no notebook {path}; give the file name of a notebook under {NOTEBOOKS}")
    return list(papermill.inspect_notebook(str(path)))


def _kernel_names(namespace: MutableMapping[str, Any]) -> set[str]:
    """Globals a kernel has before its first cell (In, Out, exit, open, startup files' names), not parameters."""
    get_ipython = namespace.get("get_ipython")
    shell = get_ipython() if callable(get_ipython) else None
    return set(getattr(shell, "user_ns_hidden", ()))


def _imported(value: Any) -> bool:
    """Modules, classes and functions come from imports (this check's own): papermill injects only literals."""
    return inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value)


def check_parameters(namespace: MutableMapping[str, Any], notebook: str) -> None:
    """Raise ``ConfigError`` naming every global that ``notebook``'s parameters cell does not declare.

    Call it with ``globals()`` in the cell right after the parameters cell: in papermill's fresh kernel
    the only globals there are the kernel's own, the parameters and the values papermill injected.
    A rerun in a live kernel (Jupyter's "Run all" again) finds later cells' names and is let pass:
    papermill never reruns, so nothing can have been injected since the first check.
    """
    if namespace.get(CHECKED):
        return
    known = notebook_parameters(notebook)
    ignored = set(known) | _kernel_names(namespace)
    unknown = sorted(name for name, value in namespace.items()
                     if name not in ignored and not name.startswith("_") and not _imported(value))
    if unknown:
        raise ConfigError(f"{notebook}: unknown parameter(s) {', '.join(unknown)} (papermill -p/-y?); it takes "
                          f"{', '.join(known)}. Fix the name; in Jupyter, restart the kernel if cells below ran first")
    namespace[CHECKED] = True
