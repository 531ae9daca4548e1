"""The executed notebooks published as Markdown + figures: readable without running, and never stale."""
from __future__ import annotations

import base64
from pathlib import Path

import cv2
import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from fer_utils.config import ROOT, DataError, load_config
from fer_utils.report import RESULTS_MD, sections
from fer_utils.walkthroughs import PUBLISHED, publish_notebooks, results_digest, stale_pages


def _executed(folder: Path, name: str) -> Path:
    """A small executed notebook: markdown, printed text, a progress bar on stderr, a figure and a table."""
    png = base64.b64encode(cv2.imencode(".png", np.full((8, 8), 128, np.uint8))[1].tobytes()).decode()
    cell = new_code_cell("train()", outputs=[
        new_output("stream", name="stdout", text=f"saved {ROOT}/results/quick/real/real-seed0.json\n"),
        new_output("stream", name="stderr", text="epoch 1/3:  33%|###  | 1/3\r"),
        new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        new_output("execute_result", data={"text/markdown": "| a | b |\n|---|---|\n| 1 | 2 |"}, execution_count=1),
    ])
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 03 · Experiment 1"), cell]), path)
    return path


def test_pages_show_the_outputs_inline_and_say_which_results(tmp_path: Path) -> None:
    cfg = load_config("quick", {"results_dir": str(tmp_path / "res"), "figures_dir": str(tmp_path / "fig")})
    (tmp_path / "res" / "tables").mkdir(parents=True)
    (tmp_path / "res" / "tables" / "exp1.md").write_text("| train | 90 % |\n")
    _executed(tmp_path / "executed", "03_train_real.ipynb")
    (page,) = publish_notebooks(cfg, tmp_path / "executed")
    assert page == tmp_path / "res" / "published" / "03_train_real.md"  # quick never writes docs/notebooks
    text = page.read_text()
    images = sorted((page.parent / "03_train_real_files").glob("*.png"))
    assert len(images) == 1 and f"](03_train_real_files/{images[0].name})" in text
    assert "# 03 · Experiment 1" in text and "| 1 | 2 |" in text and "saved results/quick/real" in text
    assert "33%" not in text and str(ROOT) not in text  # no progress bars, no paths of this machine
    digest = results_digest({"exp1": "| train | 90 % |"})
    assert f"<!-- published: preset quick, results {digest} -->" in text

    notebooks = tmp_path / "executed"
    assert stale_pages(page.parent, {"exp1": "| train | 90 % |\n"}, notebooks, preset="quick") == []
    (stale,) = stale_pages(page.parent, {"exp1": "| train | 91 % |"}, notebooks, preset="quick")
    assert "03_train_real.md: shows results" in stale and "run make reproduce" in stale
    (other,) = stale_pages(page.parent, {"exp1": "| train | 90 % |"}, notebooks)
    assert "made on the quick preset, not default" in other
    _executed(notebooks, "04_train_synth.ipynb")  # a notebook without its page
    assert any("04_train_synth.md: missing" in line for line in stale_pages(page.parent, {}, notebooks, "quick"))


def test_a_failed_publish_leaves_the_old_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fer_utils import walkthroughs

    cfg = load_config("quick", {"results_dir": str(tmp_path / "res"), "figures_dir": str(tmp_path / "fig")})
    _executed(tmp_path / "executed", "03_train_real.ipynb")
    (page,) = publish_notebooks(cfg, tmp_path / "executed")
    before = page.read_text()
    monkeypatch.setattr(walkthroughs, "_page", lambda *a: (_ for _ in ()).throw(RuntimeError("nbconvert broke")))
    with pytest.raises(RuntimeError):
        publish_notebooks(cfg, tmp_path / "executed")
    assert page.read_text() == before
    with pytest.raises(DataError, match="no executed notebooks in"):
        publish_notebooks(cfg, tmp_path / "empty")


def test_links_from_notebooks_still_resolve_from_the_published_pages() -> None:
    from fer_utils import walkthroughs

    text = "see [the run](../docs/notebooks/03_train_real.md) and [results](../docs/results.md#exp1)"
    relinked = walkthroughs._relink(text, ROOT / PUBLISHED)
    assert relinked == "see [the run](03_train_real.md) and [results](../results.md#exp1)"


def test_the_published_notebooks_show_the_results_of_docs_results_md() -> None:
    """docs/notebooks is what the last `make reproduce` executed, made from the tables docs/results.md holds."""
    tables = sections((ROOT / RESULTS_MD).read_text())
    problems = stale_pages(ROOT / PUBLISHED, tables)
    assert not problems, "published notebooks are stale; run make reproduce:\n" + "\n".join(problems)
