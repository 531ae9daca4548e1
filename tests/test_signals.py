"""A stopped run says what it stopped and how to resume, exits 130 (Ctrl-C) or 143 (SIGTERM), prints no traceback
and leaves no process behind (issue 37 #7). Real processes, real signals: a ``train`` on tiny synthetic faces, and a
``sweep`` on two local worker processes whose runs are still going."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
RESUME = "rerun the same command to resume: finished runs, units and checkpoints are kept"

SETUP = """
import sys
from synthetic import sleeping_task, synthetic_faces, tiny_cnn
from fer_utils import cli, experiments, sweep
from fer_utils.config import load_config
from fer_utils.models import MODELS

MODELS["cnn"] = tiny_cnn
splits = {"train": synthetic_faces(60, 0), "val": synthetic_faces(24, 1), "test": synthetic_faces(24, 2)}
experiments.real_splits = lambda cfg: splits
experiments.cross_database_sets = lambda cfg: {"mmi": synthetic_faces(18, 3, "mmi")}
sweep.prepare_inputs = lambda cfg, plan: {}  # no world: the synthetic faces stand in for it
cli._cmd_sweep = lambda cfg, args: len(sweep.run_sweep(cfg, [("real", 0)], progress=False, executor="local",
                                                       workers=2, task=sleeping_task))
sys.exit(cli.main(sys.argv[1:]))
"""


def _start(tmp_path: Path, command: list[str]) -> subprocess.Popen:
    """The CLI in its own session (so Ctrl-C can be sent to its whole group, as a terminal does)."""
    settings = ["--preset", "quick", "--set", f"results_dir={tmp_path}", "--set", "device=cpu",
                "--set", "train.epochs=100000", "--set", "train.patience=100000", "--set", "sweep.seeds=2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    # a shell running a job in the background (nohup ... &, some CI runners) starts it with SIGINT ignored, and
    # Python then installs no Ctrl-C handler: start from the default, as a terminal's foreground job does
    return subprocess.Popen([sys.executable, "-c", SETUP, *command, *settings], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"ended before {what}: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {what} in {timeout} s")
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in {"Z", "X"}


def _outliving(pids: list[int], grace_s: float = 10) -> list[int]:
    """The processes of ``pids`` still running ``grace_s`` seconds on, killed so that none outlives the test."""
    deadline = time.monotonic() + grace_s
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if _running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def _stop(proc: subprocess.Popen, how: str) -> tuple[int, str]:
    """SIGTERM to the process (``kill``), or SIGINT to its whole group (Ctrl-C in a terminal); its code and stderr."""
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"{how} did not stop the process in 60 s")
    return proc.returncode, err


STOPPED_BY = {"SIGTERM": ("stopped by SIGTERM", 143), "SIGINT": ("stopped by SIGINT (Ctrl-C)", 130)}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", list(STOPPED_BY))
def test_a_stopped_train_says_what_it_stopped_and_how_to_resume(tmp_path, how) -> None:
    proc = _start(tmp_path, ["train", "real"])
    checkpoint = tmp_path / "real" / ".real-seed0-x1.train.pt"
    _wait_for(checkpoint.exists, proc, "first checkpoint")
    code, err = _stop(proc, how)
    said, expected = STOPPED_BY[how]
    assert "Traceback" not in err, err[-3000:]
    assert f"{said} during real k=0 seed 0; {RESUME}" in err.replace("\r", "\n").splitlines()
    assert code == expected
    assert checkpoint.exists() and not list((tmp_path / "real").glob("*.json"))  # resumable, nothing counted done


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", list(STOPPED_BY))
def test_a_stopped_local_sweep_ends_its_workers(tmp_path, how) -> None:
    proc = _start(tmp_path, ["sweep"])
    _wait_for(lambda: len(list(tmp_path.glob("worker-*.pid"))) == 2, proc, "two workers running their runs")
    workers = [int(p.read_text()) for p in tmp_path.glob("worker-*.pid")]
    assert all(_running(pid) for pid in workers)
    code, err = _stop(proc, how)
    said, expected = STOPPED_BY[how]
    assert "Traceback" not in err, err[-3000:]
    assert f"{said} during a sweep on local workers (2 runs to do); {RESUME}" in err.splitlines()
    assert code == expected
    left = _outliving(workers)
    assert not left, f"worker processes {left} outlived the stopped sweep"


ORPHANS = """
import multiprocessing, os, sys, time
from pathlib import Path
from fer_utils.runtime import quiet_worker

def work(folder):
    Path(folder, f"{os.getpid()}.pid").write_text("")
    time.sleep(300)

with multiprocessing.get_context(sys.argv[2]).Pool(2, quiet_worker) as pool:
    pool.map(work, [sys.argv[1]] * 2, chunksize=1)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.timeout(120)
def test_forked_pool_workers_end_when_their_parent_is_killed(tmp_path) -> None:
    """A parent that cannot clean up (SIGKILL; a Jupyter kernel that os._exit()s when papermill, its parent, is
    killed) left its forked pool workers (the world writer's, preprocessing's) running under PID 1; now they end
    with it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", ORPHANS, str(tmp_path), "fork"], env=env,
                            start_new_session=True)
    _wait_for(lambda: len(list(tmp_path.glob("*.pid"))) == 2, proc, "two pool workers")
    workers = [int(p.stem) for p in tmp_path.glob("*.pid")]
    proc.kill()
    proc.wait()
    left = _outliving(workers)
    assert not left, f"pool workers {left} outlived their killed parent"
