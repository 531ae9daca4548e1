"""Where the sweep's runs train: one process, worker processes here, a Dask cluster, or Slurm jobs.

One task is one run (experiment, ratio, seed) and calls ``run_experiment`` for that seed, so the
project keeps the integrity rules wherever the run trains: a run is identified by its params and
data identity, a finished one is skipped because its JSON + weights are a kept record of the current
data, and whoever trains a run writes its results atomically. The driver (``dispatch``) submits the
runs still to do, keeps at most ``slots`` in flight, retries a failed or lost run once and returns
the failures.
Every worker must see ``results_dir`` and the data cache at the same paths (a shared filesystem):
docs/running.md.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import EXECUTORS, Config, ConfigError, InputError
from .experiments import kept_run, run_experiment, run_name
from .runtime import quiet_worker, resolve_device, torch_threads

Run = tuple[str, int, int]  # experiment, ratio, seed
POLL_S = 0.2
CONNECT_TIMEOUT_S = 10


class ExecutorError(InputError):
    """An executor cannot start: a missing extra, an unreachable scheduler; the message says what to do."""


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(workers: int = 0) -> int:
    """``sweep.workers``, or one worker per 2 cores (at least 1) when it is 0."""
    return workers if workers > 0 else max(1, cores() // 2)


def threads_per_worker(workers: int) -> int:
    """Each worker's torch threads: ``OMP_NUM_THREADS`` where the driver sets it, else cores // workers (at least 1).

    A run's bits depend on its thread count (the convolutions sum in another order), so ``OMP_NUM_THREADS``
    gives a run the same threads, and the same bits, on every executor as in a serial sweep (docs/running.md).
    """
    return torch_threads(max(1, cores() // workers))


def run_path(cfg: Config, run: Run) -> Path:
    """The run's JSON record (weights beside it with suffix .safetensors)."""
    experiment, ratio, seed = run
    return cfg.path(cfg.results_dir) / experiment / f"{run_name(experiment, ratio, seed)}.json"


def recorded(cfg: Config, run: Run, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's kept record (JSON and the weights it pins) whose identity is ``current``
    (``experiments.current_identity``: data, params, code), else None; a stale one is named.

    What ``--status``, ``--plan`` and the driver's skip read: a run counted done here is never sent to a worker, so
    the identity must be checked here, not only by ``run_experiment``.
    """
    return kept_run(run_path(cfg, run), current)


def train_run(cfg: Config, experiment: str, ratio: int, seed: int, threads: int = 0) -> dict[str, Any]:
    """One task: set the worker's threads, then train (or find finished) one run; return its metrics."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
    (result,) = run_experiment(cfg, experiment, ratio, seed=seed, progress=False)
    return result.metrics


Task = Callable[[Config, str, int, int, int], Any]


# ---------------------------------------------------------------- backends
class Backend:
    """Submits tasks and gives futures with ``done()`` and ``result()``; ``slots`` tasks run at once."""

    name = ""
    slots = 1
    threads = 0
    where = ""  # where the runs train, in words, for the sweep's first line

    def submit(self, task: Task, cfg: Config, run: Run) -> Any:
        raise NotImplementedError

    def close(self, now: bool = False) -> None:
        """Release the workers; ``now``: the sweep was stopped, end their runs rather than wait for them."""


def gpus_for(cfg: Config) -> int:
    """GPUs the local workers share out, one each: every visible GPU where the runs go to CUDA, else 0."""
    import torch

    return torch.cuda.device_count() if resolve_device(cfg.device).type == "cuda" else 0


def _pin_gpu(gpu_ids: Any) -> None:
    """Worker initializer: this worker sees one GPU only (set before CUDA starts), so one run runs per GPU."""
    quiet_worker()
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_ids.get())


class LocalBackend(Backend):
    """``workers`` processes on this machine (spawn: torch and fork do not mix), a pool made again if one dies.

    With ``gpus`` > 0 there is one worker per GPU, each pinned to its own (``CUDA_VISIBLE_DEVICES``);
    the batched multi-seed pass is for ``serial`` on a single GPU.
    """

    name = "local"

    def __init__(self, workers: int, gpus: int = 0) -> None:
        import multiprocessing

        self.gpus = gpus
        self.slots = gpus or workers
        self.threads = threads_per_worker(self.slots)
        self._context = multiprocessing.get_context("spawn")
        self._pool = self._new_pool()
        self.where = (f"{self.slots} worker processes here, one GPU each" if gpus
                      else f"{self.slots} worker processes here, torch threads per worker: {self.threads}")

    def _new_pool(self):
        from concurrent.futures import ProcessPoolExecutor

        if not self.gpus:
            return ProcessPoolExecutor(self.slots, mp_context=self._context, initializer=quiet_worker)
        gpu_ids = self._context.Queue()
        for gpu in range(self.gpus):
            gpu_ids.put(gpu)
        return ProcessPoolExecutor(self.slots, mp_context=self._context, initializer=_pin_gpu, initargs=(gpu_ids,))

    def submit(self, task: Task, cfg: Config, run: Run) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._pool.submit(task, cfg, *run, self.threads)
        except BrokenProcessPool:  # a worker died (killed, out of memory): its runs failed, start fresh workers
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(task, cfg, *run, self.threads)

    def close(self, now: bool = False) -> None:
        if now:  # stopped: end the workers' runs rather than wait for them (a kept checkpoint resumes each)
            for process in list(self._pool._processes.values()):  # no public way before Python 3.14
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskBackend(Backend):
    """A running Dask scheduler (``scheduler``), or a LocalCluster of ``workers`` processes on loopback."""

    name = "dask"

    def __init__(self, workers: int, scheduler: str = "", timeout_s: float | None = None) -> None:
        distributed = _extra("distributed", "dask")
        timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
        self.cluster = None
        self.submitted: list[Any] = []  # every future, so a stopped sweep cancels those not finished
        if scheduler:
            self.client = _connect(distributed, scheduler, timeout_s)
            nthreads = sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values())
            self.slots = max(1, nthreads)
            self.threads = 0  # the workers' owners chose their threads
            self.where = f"the Dask scheduler at {scheduler}, {self.slots} worker threads"
        else:
            self.threads = threads_per_worker(workers)
            self.cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                    host="127.0.0.1", dashboard_address=None)
            self.client = distributed.Client(self.cluster)
            self.slots = workers
            self.where = f"a Dask LocalCluster of {workers} processes here, torch threads per worker: {self.threads}"

    def submit(self, task: Task, cfg: Config, run: Run) -> Any:
        future = self.client.submit(task, cfg, *run, self.threads, pure=False, key=f"{'-'.join(map(str, run))}-"
                                    f"{time.monotonic_ns()}")
        self.submitted.append(future)
        return future

    def close(self, now: bool = False) -> None:
        if now:  # stopped: a scheduler's workers would train the submitted runs on for nobody
            cancel_unfinished(self.name, self.submitted, self.client.cancel)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class SlurmBackend(Backend):
    """One submitit job per run on Slurm (``sweep.slurm_*``); submitit's local executor where there is no Slurm."""

    name = "slurm"

    def __init__(self, cfg: Config, workers: int, folder: Path | None = None) -> None:
        submitit = _extra("submitit", "slurm")
        s = cfg.sweep
        self.local = shutil.which("sbatch") is None
        folder = folder or cfg.path(cfg.results_dir) / "slurm"
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster="local" if self.local else None)
        params: dict[str, Any] = {"timeout_min": s.slurm_time_min, "cpus_per_task": s.slurm_cpus,
                                  "mem_gb": s.slurm_mem_gb, "name": "fer-sweep"}
        if s.slurm_gpus:
            params["gpus_per_node"] = s.slurm_gpus
        if s.slurm_partition and not self.local:
            params["slurm_partition"] = s.slurm_partition
        self.executor.update_parameters(**params)
        self.submitted: list[Any] = []  # every job, so a stopped sweep cancels those not finished
        self.slots = workers if self.local else 10_000  # Slurm queues the jobs itself
        self.threads = threads_per_worker(workers) if self.local else s.slurm_cpus
        self.where = (f"no sbatch on PATH, so submitit's local executor: {workers} jobs at once on this machine, "
                      f"not Slurm" if self.local else f"Slurm through submitit, {s.slurm_cpus} CPUs per job")

    def submit(self, task: Task, cfg: Config, run: Run) -> Any:
        job = self.executor.submit(task, cfg, *run, self.threads)
        self.submitted.append(job)
        return job

    def close(self, now: bool = False) -> None:
        if now:  # stopped: Slurm would run the queued and running jobs on for nobody
            cancel_unfinished(self.name, self.submitted, _scancel)


def _scancel(jobs: Sequence[Any]) -> None:
    """Cancel submitit jobs; one that ended meanwhile makes scancel complain, which must not hide the others."""
    for job in jobs:
        job.cancel(check=False)


def _unfinished(futures: Sequence[Any]) -> list[Any]:
    """The futures (or jobs) not finished yet."""
    return [future for future in futures if not future.done()]


def cancel_unfinished(name: str, futures: Sequence[Any], cancel: Callable[[list[Any]], Any]) -> None:
    """Cancel the runs a stopped sweep submitted to ``name`` and did not see finish; say how many in one line.

    A failure to cancel (the scheduler gone) is that line too: the stop still ends with its own message and code.
    """
    try:
        unfinished = _unfinished(futures)
        if unfinished:
            cancel(unfinished)
    except Exception as exc:  # noqa: BLE001 - reported; the user cancels them there
        print(f"could not cancel the runs submitted to {name} ({type(exc).__name__}: {exc}); cancel them there",
              file=sys.stderr)
        return
    print(f"cancelled {len(unfinished)} unfinished run(s) submitted to {name}", file=sys.stderr)


def _connect(distributed: Any, scheduler: str, timeout_s: float) -> Any:
    """A client of the Dask scheduler at ``scheduler``, or an ExecutorError saying what to start."""
    try:
        return distributed.Client(scheduler, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}); start one there with "
            f"`dask scheduler` and workers with `dask worker {scheduler}`, check the address and port, "
            "or leave --scheduler out for a cluster on this machine") from None


def _extra(module: str, extra: str) -> Any:
    """Import an optional dependency or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExecutorError(f"the {extra} executor needs {module}, which is not installed: "
                            f"pip install -e .[{extra}]") from None


def check_executor(cfg: Config, executor: str, scheduler: str = "") -> None:
    """Refuse an executor that cannot start (a missing extra, an unreachable scheduler) before inputs are prepared.

    Preparing a fresh paper preset generates up to 20 units first: a mistake must not wait for that.
    """
    if executor == "dask":
        distributed = _extra("distributed", "dask")
        address = scheduler or cfg.sweep.scheduler
        if address:
            _connect(distributed, address, CONNECT_TIMEOUT_S).close()
    elif executor == "slurm":
        _extra("submitit", "slurm")
    elif executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")


def make_backend(cfg: Config, executor: str, workers: int = 0, scheduler: str = "") -> Backend:
    """The backend of ``executor`` (not ``serial``, which ``fer_utils.sweep`` runs in-process)."""
    workers = default_workers(workers or cfg.sweep.workers)
    if executor == "local":
        return LocalBackend(workers, gpus_for(cfg))
    if executor == "dask":
        return DaskBackend(workers, scheduler or cfg.sweep.scheduler)
    if executor == "slurm":
        return SlurmBackend(cfg, workers)
    raise ConfigError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")


# ---------------------------------------------------------------- the driver
def dispatch(cfg: Config, runs: Sequence[Run], backend: Backend, task: Task = train_run, retries: int = 1,
             progress: bool = True) -> list[str]:
    """Train ``runs`` on ``backend``, at most ``backend.slots`` at once; return one line per run that failed.

    A run that raises or whose worker is lost is submitted again, ``retries`` times; the rest go on. An
    ``InputError`` (a diverged run, a bad setting) is reported at once: a retry would fail the same way.
    """
    pending, attempts = deque(runs), Counter()
    inflight: dict[Any, Run] = {}
    done, failures = 0, []
    bar = tqdm(total=len(runs), desc=f"sweep ({backend.name})", unit="run", disable=not progress)

    def show(completed: int = 0) -> None:
        bar.set_postfix_str(f"done={done} running={len(inflight)} failed={len(failures)}", refresh=not completed)
        if completed:
            bar.update(completed)

    show()
    while pending or inflight:
        submitted = bool(pending) and len(inflight) < backend.slots
        while pending and len(inflight) < backend.slots:
            run = pending.popleft()
            attempts[run] += 1
            inflight[backend.submit(task, cfg, run)] = run
        if submitted:
            show()
        finished = [future for future in inflight if future.done()]
        if not finished:
            time.sleep(POLL_S)
            continue
        completed = 0
        for future in finished:
            run = inflight.pop(future)
            label = run_name(*run)
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - a failed or lost run: retry it, else report it, go on
                if attempts[run] <= retries and not isinstance(exc, InputError):  # a user's to fix: same again
                    tqdm.write(f"retrying {label} ({type(exc).__name__}: {exc})")
                    pending.append(run)
                else:
                    failures.append(f"{label}: {type(exc).__name__}: {exc}")
                    tqdm.write(f"FAILED {failures[-1]}")
                    completed += 1
            else:
                done += 1
                completed += 1
        show(completed)
    bar.close()
    return failures
