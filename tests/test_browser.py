"""A notebook opened as a reader would: `make lab` in headless Chromium, its first cells run, an output seen.

Debian's Chromium (`apt-get install chromium`; .ci/run installs it as root) is driven by Playwright with
``executable_path``: Playwright's own browser download is never used, and nothing is fetched at run time. The
screenshot is kept under results/browser/ for a person to look at.
"""
from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import pytest
from test_lab import STOP_TIMEOUT_S, running_lab

from fer_utils.config import ROOT

NOTEBOOK = "03_train_real.ipynb"
CELLS = 6  # the title, parameters, their check, the imports, "The model" and its parameter count
EXPECTED = "4966022"  # the Table-1 CNN's parameters, the paper's count: the kernel computed it
# the flags this machine's closed network needs (no sandbox as root; no background connections refused by the dozen)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / "results" / "browser" / "lab_03_train_real.png"
TIMEOUT_MS = 60_000


def _chromium() -> str:
    """Debian's Chromium, or a skip that says how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it when root)")
    return found


@pytest.mark.timeout(180)
def test_a_notebook_runs_in_jupyterlab_in_a_browser(tmp_path: Path) -> None:
    browser_path = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the test extra has it)")
    t0 = time.monotonic()
    with running_lab(tmp_path) as (base, token, log), sync_api.sync_playwright() as playwright:
        # a new empty profile in tmp_path: no user's settings, nothing left behind
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=browser_path, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
            cells.first.wait_for()
            # a fresh profile may ask which kernel (the notebook names python3) and offer Jupyter's news
            accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
            with contextlib.suppress(sync_api.TimeoutError):
                accept.wait_for(timeout=10_000)
                accept.click()
            with contextlib.suppress(sync_api.TimeoutError):
                page.locator(".jp-Notification-Toast-Close").first.click(timeout=2_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")  # the kernel started
            cells.first.click()
            for _ in range(CELLS):  # run each cell and move to the next, as a reader presses Shift+Enter
                page.keyboard.press("Shift+Enter")
            counted = page.locator(".jp-CodeCell", has_text="count_parameters(build_model")
            output = counted.locator(".jp-OutputArea-output", has_text=EXPECTED)
            try:
                output.first.wait_for()
                prompt = counted.locator(".jp-OutputArea-prompt").first.inner_text()
                assert prompt.strip("[]: ").isdigit(), f"no execution count beside the output: {prompt!r}"
            finally:
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT))
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert not errors.filter(has_text="Error").count(), f"a cell failed: {errors.first.inner_text()}"
        finally:
            browser.close()
    seconds = time.monotonic() - t0
    assert seconds < 150 - STOP_TIMEOUT_S, f"took {seconds:.0f} s"
    print(f"browser test: {seconds:.0f} s, screenshot {SCREENSHOT}")
