"""Publish the executed notebooks as Markdown with their figures, so a reader sees them without running anything.

``make reproduce`` executes the notebooks into ``results/notebooks/`` (git-ignored); ``publish_notebooks``
turns each into ``<name>.md`` + ``<name>_files/*.png`` that a repository's web page renders with outputs inline.
Each page records the digest of the result tables its run published (``results_digest``), so ``stale_pages``
(and tests/test_walkthroughs.py) can tell when the pages no longer show the tables of docs/results.md.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from .config import ROOT, Config, DataError
from .report import RESULTS_MD, sections

PUBLISHED = Path("docs/notebooks")  # the default preset's pages, from the project root
_MARK = re.compile(r"^<!-- published: preset (\S+), results (\w+) -->$", re.M)
_UP_LINK = re.compile(r"\]\((\.\./[^)\s]+)\)")  # a notebook's link to a page of the project: relative to notebooks/


def results_digest(tables: Mapping[str, str]) -> str:
    """The identity of a set of published tables (name -> body), whitespace at their ends aside."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(f"{name}\0{tables[name].strip()}\0".encode())
    return digest.hexdigest()[:16]


def owns_docs(cfg: Config) -> bool:
    """Whether this preset's run writes the committed docs: the one whose figures go to ``figures/``, as in
    ``report.publish``."""
    return cfg.path(cfg.figures_dir).resolve() == (ROOT / "figures").resolve()


def shown_tables(cfg: Config) -> dict[str, str]:
    """The tables the notebooks of this preset show: docs/results.md's sections for the run that owns the docs,
    else the run's own (``results_dir/tables``, which ``report.publish`` writes for every preset)."""
    if owns_docs(cfg):
        return sections((ROOT / RESULTS_MD).read_text())
    return {path.stem: path.read_text() for path in sorted((cfg.path(cfg.results_dir) / "tables").glob("*.md"))}


def _relink(text: str, out: Path) -> str:
    """Point the notebooks' relative links (``../docs/x.md``, from notebooks/) at the same files from ``out``."""
    def moved(match: re.Match) -> str:
        return f"]({Path(os.path.relpath(ROOT / 'notebooks' / match.group(1), out)).as_posix()})"
    return _UP_LINK.sub(moved, text)


def _page(notebook: Path, files: str) -> tuple[str, dict[str, bytes]]:
    """One executed notebook as Markdown (stderr, i.e. progress bars and warnings, left out) and its images."""
    import nbformat
    from nbconvert import MarkdownExporter

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    body, resources = MarkdownExporter().from_notebook_node(nb, resources={"output_files_dir": files})
    return body.replace(f"{ROOT}/", "").replace(str(ROOT), "."), resources.get("outputs", {})


def publish_notebooks(cfg: Config, executed: Path, out: Path | None = None) -> list[Path]:
    """Write every executed notebook of ``executed`` as a page under ``out``; return them.

    ``out`` defaults to docs/notebooks for the run that owns the docs, else ``results_dir/published``.

    The pages are built in a temporary folder that then replaces ``out`` whole: a failure leaves the old pages.
    """
    notebooks = sorted(Path(executed).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise DataError(f"no executed notebooks in {executed}: run make reproduce first")
    if out is None:
        out = ROOT / PUBLISHED if owns_docs(cfg) else cfg.path(cfg.results_dir) / "published"
    digest = results_digest(shown_tables(cfg))
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    inside = out.resolve().is_relative_to(ROOT.resolve())  # a link only where the page stays beside the docs
    results_md = f"[docs/results.md]({Path(os.path.relpath(ROOT / RESULTS_MD, out)).as_posix()})" if inside \
        else "docs/results.md"
    for notebook in notebooks:
        header = (f"<!-- published: preset {cfg.preset}, results {digest} -->\n"
                  f"> `notebooks/{notebook.name}` as `make reproduce` ran it on the `{cfg.preset}` preset, with "
                  f"its outputs; its tables are those of {results_md} (results {digest}).\n\n")
        text, images = _page(notebook, f"{notebook.stem}_files")
        (tmp / f"{notebook.stem}.md").write_text(header + (_relink(text, out) if inside else text))
        for name, data in images.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sorted(out.glob("*.md"))


def stale_pages(pages: Path, tables: Mapping[str, str], notebooks: Path = ROOT / "notebooks",
                preset: str = "default") -> list[str]:
    """One line per notebook whose page is missing, of another preset, or made from other ``tables`` than those
    given (name -> body: docs/results.md's sections for the committed pages); empty when every page is current."""
    expected = results_digest(tables)
    problems = []
    for notebook in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
        page = pages / f"{notebook.stem}.md"
        mark = _MARK.search(page.read_text()) if page.is_file() else None
        if mark is None:
            problems.append(f"{page}: missing or without its published mark")
        elif mark.group(1) != preset:
            problems.append(f"{page}: made on the {mark.group(1)} preset, not {preset}")
        elif mark.group(2) != expected:
            problems.append(f"{page}: shows results {mark.group(2)}, the current tables are {expected}: "
                            "run make reproduce")
    return problems
