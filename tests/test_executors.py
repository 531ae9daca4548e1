"""The sweep on every executor: the same runs give the same metrics wherever they train; lost runs are redone.

Workers are other processes, so the stand-ins (tiny model, synthetic faces) live in ``tiny_task``, a
function of this module that the workers import (``PYTHONPATH`` names this folder for Dask and submitit).
"""
from __future__ import annotations

import json
import operator
import os
import signal
import sys
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from synthetic import synthetic_faces, tiny_cnn

from fer_utils import executors, experiments, sweep
from fer_utils.cli import main
from fer_utils.config import ConfigError, load_config
from fer_utils.engine import TrainingFailed
from fer_utils.models import MODELS
from fer_utils.preprocess import FaceSet

HERE = Path(__file__).resolve().parent
PLAN = [("real", 0), ("mix", 1)]
KILL = "FER_TEST_KILL_MARKER"  # a file: the first worker to train mix-k1-seed1 creates it and is killed


def _splits(cfg, experiment: str, ratio: int = 0) -> dict[str, FaceSet]:
    train = synthetic_faces(48 + 12 * ratio, 10 + ratio)
    return {"train": train, "val": synthetic_faces(18, 1), "test": synthetic_faces(18, 2)}


def _cross(cfg) -> dict[str, FaceSet]:
    return {"mmi": synthetic_faces(12, 3, "mmi"), "ckplus": synthetic_faces(12, 4, "ckplus")}


def _stand_in(setattr_=setattr, setitem_=operator.setitem) -> None:
    """Tiny model and synthetic faces in place of the Table-1 CNN and the cache (a worker's for good; the
    test process's through monkeypatch, so they never outlive the test)."""
    setattr_(experiments, "experiment_inputs", lambda cfg, experiment, ratio=0: (_splits(cfg, experiment, ratio), {}))
    setattr_(experiments, "cross_database_sets", _cross)
    setitem_(MODELS, "cnn", tiny_cnn)


def tiny_task(cfg, experiment: str, ratio: int, seed: int, threads: int = 0):
    """``executors.train_run`` with the stand-ins, in a worker; killed once mid-run when ``KILL`` says so."""
    _stand_in()
    marker = os.environ.get(KILL)
    if marker and experiments.run_name(experiment, ratio, seed) == "mix-k1-seed1" and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        real_fit = experiments.fit

        def fit_then_die(*args, **kwargs):
            kwargs["progress"] = False
            for result in real_fit(*args, **kwargs):
                os.kill(os.getpid(), signal.SIGKILL)  # after training, before its record: a lost run
                yield result

        experiments.fit = fit_then_die
    return executors.train_run(cfg, experiment, ratio, seed, threads)


def _cfg(root: Path):
    return load_config("quick", {"results_dir": str(root), "train.epochs": 2, "device": "cpu", "sweep.seeds": 2})


def _metrics(root: Path) -> dict[str, tuple]:
    """Each run's metrics, history and torch threads: the same on every executor."""
    out = {}
    for path in sorted(root.glob("*/*.json")):
        saved = json.loads(path.read_text())
        out[path.stem] = (saved["metrics"], saved["history"], saved["fit"]["threads"])
    return out


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins here and in the workers: 2 cores (1 thread each of 2 workers, as serial runs), importable tests."""
    _stand_in(monkeypatch.setattr, monkeypatch.setitem)
    monkeypatch.setattr(executors, "cores", lambda: 2)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(HERE))


@pytest.fixture
def serial(tmp_path, stand_in, monkeypatch) -> dict[str, tuple]:
    """The reference: the tiny sweep trained in a row here, with OMP_NUM_THREADS=1 as every executor's run reads."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # after torch started: the engine itself must apply it
    try:
        assert sweep.run_sweep(_cfg(tmp_path / "serial"), PLAN, progress=False, executor="serial") == []
    finally:
        torch.set_num_threads(threads)
    metrics = _metrics(tmp_path / "serial")
    assert sorted(metrics) == ["mix-k1-seed0", "mix-k1-seed1", "real-seed0", "real-seed1"]
    assert {threads for _, _, threads in metrics.values()} == {1}  # recorded in each run
    return metrics


def test_local_with_a_worker_killed_mid_run_gives_the_serial_metrics(serial, tmp_path, monkeypatch, capsys) -> None:
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL, str(marker))
    root = tmp_path / "local"
    assert sweep.run_sweep(_cfg(root), PLAN, progress=False, executor="local", workers=2, task=tiny_task) == []
    out = capsys.readouterr().out
    assert "4 to do on local (2 at once)" in out
    assert marker.exists() and "retrying mix-k1-seed1 (BrokenProcessPool" in out  # killed, then done again
    assert _metrics(root) == serial  # the final set equals a clean run's
    assert not [p for p in root.glob("*/.*") if p.suffix != ".lock"]  # no temporaries or checkpoints left behind
    again = sweep.run_sweep(_cfg(root), PLAN, progress=False, executor="local", workers=2, task=tiny_task)
    assert again == [] and "4 already done, 0 to do" in capsys.readouterr().out


def test_a_dask_local_cluster_gives_the_serial_metrics(serial, tmp_path, capsys) -> None:
    pytest.importorskip("distributed")
    root = tmp_path / "dask"
    assert sweep.run_sweep(_cfg(root), PLAN, progress=False, executor="dask", workers=2, task=tiny_task) == []
    assert "4 to do on dask (2 at once)" in capsys.readouterr().out
    assert _metrics(root) == serial


def test_submitit_local_executor_gives_the_serial_metrics(serial, tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("submitit")
    monkeypatch.setattr(executors.shutil, "which", lambda name: None)  # no sbatch here, whatever this machine has
    root = tmp_path / "slurm"  # one configuration (two jobs): each job is a fresh process
    assert sweep.run_sweep(_cfg(root), PLAN[:1], progress=False, executor="slurm", workers=2, task=tiny_task) == []
    assert "no sbatch on PATH, so submitit's local executor: 2 jobs at once on this machine" in capsys.readouterr().out
    assert _metrics(root) == {name: value for name, value in serial.items() if name.startswith("real")}
    assert list((root / "slurm").glob("*_log.out"))  # submitit's job logs, beside the results


class _Inline(executors.Backend):
    """Runs each task at once, here: the driver's bookkeeping without processes."""

    name, slots = "inline", 2

    def submit(self, task, cfg, run):
        future = Future()
        try:
            future.set_result(task(cfg, *run, 0))
        except Exception as exc:  # noqa: BLE001
            future.set_exception(exc)
        return future


def test_a_failed_run_is_retried_once_then_reported_and_the_rest_go_on() -> None:
    calls = []

    def flaky(cfg, experiment, ratio, seed, threads):
        calls.append(seed)
        if seed == 1 or (seed == 2 and calls.count(2) == 1):
            raise RuntimeError("out of memory")

    runs = [("real", 0, 0), ("real", 0, 1), ("real", 0, 2)]
    failures = executors.dispatch(load_config("quick"), runs, _Inline(), task=flaky, progress=False)
    assert failures == ["real-seed1: RuntimeError: out of memory"]
    assert sorted(calls) == [0, 1, 1, 2, 2]


def test_a_diverged_run_is_reported_without_a_retry() -> None:
    """A run failed for a setting (TrainingFailed) would fail the same way again: one try, one line."""
    calls = []

    def diverges(cfg, experiment, ratio, seed, threads):
        calls.append(seed)
        raise TrainingFailed(f"train real k=0 seed {seed}: training loss is nan at epoch 1; lower train.lr")

    failures = executors.dispatch(load_config("quick"), [("real", 0, 0)], _Inline(), task=diverges, progress=False)
    assert calls == [0]
    assert failures == ["real-seed0: TrainingFailed: train real k=0 seed 0: training loss is nan at epoch 1; "
                        "lower train.lr"]


def test_status_and_plan_read_the_results_without_training(serial, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(experiments, "fit", lambda *a, **k: pytest.fail("status trained"))
    cfg = load_config("quick", {"results_dir": str(tmp_path / "serial"), "train.epochs": 2, "device": "cpu",
                                "sweep.seeds": 3})
    status = sweep.sweep_status(cfg, PLAN)
    assert "| real | 2 | 1 | 2 |" in status and "| mix-k1 | 2 | 1 | 2 |" in status and "4 runs done, 2 to do" in status
    todo, text = sweep.sweep_estimate(cfg, PLAN)
    assert todo == [("real", 0, 2), ("mix", 1, 2)]
    assert "2 runs to do" in text and "saved CNN runs' fit.img_per_s" in text and "CPU-hours" in text
    monkeypatch.setattr(sweep, "prepare_inputs", lambda cfg, plan: pytest.fail("status prepared inputs"))
    for flag in ("--status", "--plan"):
        assert main(["sweep", "--preset", "quick", "--set", f"results_dir={tmp_path / 'serial'}", flag]) == 0
    out = capsys.readouterr().out
    assert "| real | 0 | 2 | 0, 1 |" in out and "runs to do, about" in out  # other params (epochs): not done


class _Cluster:
    """Stands in for a Dask client and a submitit executor: submitted runs never finish, and the driver's first look
    at one stops it (``stop``: SIGTERM sent to this process, as ``kill`` does, or Ctrl-C's KeyboardInterrupt)."""

    def __init__(self, stop: str) -> None:
        self.stop, self.jobs = stop, []

    def submit(self, *args, **kwargs) -> _Job:
        self.jobs.append(_Job(self))
        return self.jobs[-1]

    def wait(self) -> None:
        """The driver's wait on its runs: stopped once, here."""
        stop, self.stop = self.stop, ""
        if stop == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)
        elif stop == "SIGINT":
            raise KeyboardInterrupt

    def scheduler_info(self) -> dict:
        return {"workers": {"tcp://worker:1": {"nthreads": 3}}}

    def cancel(self, futures) -> None:  # distributed.Client.cancel
        for future in futures:
            future.cancel()

    def update_parameters(self, **params) -> None:  # submitit.AutoExecutor
        pass

    def close(self) -> None:
        pass


class _Job:
    """A submitted run (a Dask future, a submitit job) that finishes only when cancelled."""

    def __init__(self, cluster: _Cluster) -> None:
        self.cluster, self.cancelled = cluster, False

    def done(self) -> bool:
        self.cluster.wait()
        return self.cancelled

    def cancel(self, check: bool = True) -> None:
        self.cancelled = True


@pytest.mark.parametrize("executor", ["dask", "slurm"])
@pytest.mark.parametrize("how, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_sweep_cancels_what_it_submitted_to_dask_or_slurm(tmp_path, monkeypatch, capsys, executor, how,
                                                                    code) -> None:
    """A cluster's workers do not end with the driver: a stopped sweep cancels every run it submitted and did not see
    finish, says how many, and exits as any stop does."""
    cluster = _Cluster(how)
    fakes = {"distributed": SimpleNamespace(Client=lambda *args, **kwargs: cluster),
             "submitit": SimpleNamespace(AutoExecutor=lambda **kwargs: cluster)}
    monkeypatch.setattr(executors, "_extra", lambda module, extra: fakes[module])
    monkeypatch.setattr(executors.shutil, "which", lambda name: f"/usr/bin/{name}")  # Slurm: every run queued at once
    monkeypatch.setattr(sweep, "prepare_inputs", lambda cfg, plan: {})
    assert main(["sweep", "--preset", "quick", "--executor", executor, "--scheduler", "tcp://scheduler:8786",
                 "--set", f"results_dir={tmp_path}"]) == code
    err = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert len(cluster.jobs) > 1 and all(job.cancelled for job in cluster.jobs)
    cancelled = f"cancelled {len(cluster.jobs)} unfinished run(s) submitted to {executor}"
    assert any(line.endswith(cancelled) for line in err)  # the progress bar's last state may precede it
    assert any(line.startswith(f"stopped by {how}") and "rerun the same command to resume" in line for line in err)


def test_a_cancel_that_fails_is_one_line_and_the_stop_goes_on(capsys) -> None:
    def unreachable(futures):
        raise OSError("scheduler gone")

    executors.cancel_unfinished("dask", [_Job(_Cluster(""))], unreachable)
    assert capsys.readouterr().err == ("could not cancel the runs submitted to dask (OSError: scheduler gone); "
                                       "cancel them there\n")


def test_unknown_executor_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown executor 'mpi'"):
        executors.make_backend(load_config("quick"), "mpi")
    with pytest.raises(ConfigError, match="sweep.executor must be one of serial, local, dask, slurm"):
        load_config("quick", {"sweep.executor": "mpi"})


def test_unreachable_scheduler_is_one_line_naming_it(monkeypatch, capsys) -> None:
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 1)
    monkeypatch.setattr(sweep, "prepare_inputs", lambda cfg, plan: pytest.fail("inputs prepared before connecting"))
    address = f"tcp://127.0.0.1:{port}"
    assert main(["sweep", "--preset", "quick", "--executor", "dask", "--scheduler", address]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and address in err and "dask scheduler" in err


@pytest.mark.parametrize("executor, module, extra", [("dask", "distributed", "dask"), ("slurm", "submitit", "slurm")])
def test_a_missing_extra_names_the_pip_command(monkeypatch, capsys, executor, module, extra) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as when not installed
    monkeypatch.setattr(sweep, "prepare_inputs", lambda cfg, plan: pytest.fail("inputs prepared before the check"))
    assert main(["sweep", "--preset", "quick", "--executor", executor]) == 2
    assert f"pip install -e .[{extra}]" in capsys.readouterr().err


def test_benchmark_compares_the_executors(capsys) -> None:
    from fer_utils.benchmarks import sweep as bench

    out = bench.run_executors(load_config("quick", {"device": "cpu"}), runs=2, names=("local",), faces=64)
    assert out["serial_runs_per_h"] > 0 and out["local_runs_per_h"] > 0
    assert "local (2 workers)" in capsys.readouterr().out


def visible_gpu(rendezvous: str, experiment: str, ratio: int, seed: int, threads: int = 0) -> tuple[str, int]:
    """A task that reports which GPU its worker may see (and which process it ran in).

    It waits until two worker processes have each started a task (a file per process in ``rendezvous``), so a
    worker that starts first cannot take every task before the other is up: the test needs no timing luck.
    """
    import os
    import pathlib
    import time

    folder = pathlib.Path(rendezvous)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.environ.get("CUDA_VISIBLE_DEVICES", ""), os.getpid()


def test_local_workers_run_one_run_per_gpu_each_pinned_to_its_own(tmp_path) -> None:
    """With GPUs, one worker per GPU, each seeing only its own: two runs never share a GPU."""
    from fer_utils.executors import LocalBackend

    backend = LocalBackend(workers=5, gpus=2)
    try:
        assert backend.slots == 2
        futures = [backend.submit(visible_gpu, str(tmp_path), ("real", 0, s)) for s in range(4)]
        seen = [future.result(timeout=120) for future in futures]
    finally:
        backend.close()
    by_process = {pid: gpu for gpu, pid in seen}
    assert sorted(by_process.values()) == ["0", "1"]  # two processes, GPU 0 and GPU 1, one each
