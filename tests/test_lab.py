"""`make lab` starts JupyterLab on the notebooks, also as root (containers): the real recipe is run.

The server is started through make itself (its stamps taken as up to date, `-o`), headless on a free
port of 127.0.0.1 with a token of ours, its REST API asked for the notebooks, then it is stopped
with SIGTERM and every process it started must be gone. As root, a recipe without --allow-root
makes JupyterLab exit at once ("Running as root is not recommended"): this test then fails.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fer_utils.config import ROOT

START_TIMEOUT_S = 60  # a few seconds normally; generous for a loaded 2-core CI machine
STOP_TIMEOUT_S = 20


def _missing(what: str) -> None:
    """CI installs `.[test]` (jupyterlab included), so a missing piece there is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (make test installs it with the test extra)")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def running_lab(tmp_path: Path) -> Iterator[tuple[str, str, Callable[[], str]]]:
    """`make lab` started headless on a free port: yields (base URL, token, log reader), then stops it and checks
    that every process it started is gone and the server shut down cleanly."""
    venv = Path(sys.prefix)  # the environment running the tests: .venv under `make test`
    if shutil.which("make") is None:
        _missing("make is not on PATH")
    if not (venv / "bin" / "jupyter-lab").exists():
        _missing(f"JupyterLab is not installed in {venv}")

    port, token = _free_port(), secrets.token_hex(16)
    lab_args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0"
    cmd = ["make", "--no-print-directory", f"VENV={venv}", f"LAB_ARGS={lab_args}", "-o", f"{venv}/.stamp-test", "lab"]
    # Jupyter's config, runtime and data dirs in tmp_path: no user config (a password, a port) applies
    # and nothing is written under $HOME. The token goes by environment, not on the command line.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "MAKE")) and k != "MFLAGS"}
    env.update(JUPYTER_TOKEN=token, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    log_path = tmp_path / "lab.log"

    def log() -> str:
        return f"command: {' '.join(cmd)}\n--- output ---\n{log_path.read_text(errors='replace')[-4000:]}"

    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as out:
        # its own process group: make, the shell and the server are signalled and checked together
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    pgid = proc.pid
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"make lab exited with status {proc.returncode} before serving\n{log()}")
            try:
                status, _ = _get(f"{base}/api/contents", token)
            except OSError:  # not listening yet
                status = None
            if status == 200:
                break
            assert status is None, f"GET /api/contents: HTTP {status}\n{log()}"
            assert time.monotonic() < deadline, f"no answer on port {port} in {START_TIMEOUT_S} s\n{log()}"
            time.sleep(0.25)
        yield base, token, log
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        stop_deadline = time.monotonic() + STOP_TIMEOUT_S
        while _group_alive(pgid) and time.monotonic() < stop_deadline:
            time.sleep(0.1)
        leftover = _group_alive(pgid)
        if leftover:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait()
    assert not leftover, f"processes of make lab still ran {STOP_TIMEOUT_S} s after SIGTERM (killed)\n{log()}"
    # a clean shutdown removes the server's jpserver-<pid>.json; a killed server leaves it behind
    left = sorted(p.name for p in (tmp_path / "runtime").glob("jpserver-*.json"))
    assert not left, f"the server did not shut down cleanly (left {left})\n{log()}"


@pytest.mark.timeout(START_TIMEOUT_S + STOP_TIMEOUT_S + 30)
def test_make_lab_serves_the_notebooks_and_stops(tmp_path: Path):
    with running_lab(tmp_path) as (base, token, log):
        status, body = _get(f"{base}/api/contents", token)
        assert status == 200, f"GET /api/contents: HTTP {status}\n{log()}"
        # `make lab` serves notebooks/ as the root, so its notebooks are the top-level listing
        listing = json.loads(body)
        served = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
        on_disk = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
        assert on_disk, "no notebooks under notebooks/"
        assert served == on_disk, f"served {served}, on disk {on_disk}"
        assert _get(f"{base}/api/contents", None)[0] == 403, "the server answers without the token"
