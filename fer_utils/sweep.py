"""The whole experiment grid of a preset (Fig 8, Table 2): resumable, one failure never stops the rest.

The grid is the arms of ``sweep.arms``: real-only, synthetic-only at 1 and every k of
``sweep.ratios`` units, real + k units of generated faces, and real + k units' worth of
filtered generated faces, each with ``sweep.seeds`` seeds (seed s of every configuration paired).
Finished runs are found on disk and skipped when their params and data identity are the current ones
(``runs_to_do``, ``run_experiment``), so an interrupted sweep resumes where it stopped and changed data are
trained again. ``sweep.executor`` says where the runs train:
here in a row (``serial``), or one task per run on worker processes, Dask or Slurm
(``fer_utils.executors``, docs/running.md); ``sweep_status`` and ``sweep_estimate`` read what is done.
"""
from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from . import executors
from .config import ARMS, Config, InputError
from .experiments import check_experiment, current_identity, run_experiment, run_name
from .report import markdown_table
from .runtime import WriteError, doing, writing_nothing

GENERATED_UNIT_TRAIN = 109 * 6  # training faces of one generated unit: 109 identities x 6 expressions
REAL_TRAIN = 1998  # training faces of the real experiment on the default preset (docs/performance.md) ...
REAL_TRAIN_SUBJECTS = 109  # ... for its 109 training subjects: other presets scale it by their split.train_subjects
RECENT_RUNS = 10  # the rate comes from the fastest of this many most recent CNN runs


def sweep_plan(cfg: Config) -> list[tuple[str, int]]:
    """(experiment, ratio) of every configuration of ``sweep.arms``, in Figure 8's order (synthetic-only always
    includes the paper's one unit)."""
    ratios = sorted(set(cfg.sweep.ratios))
    ks = {"real": [0], "synth": sorted({1, *ratios}), "mix": ratios, "mix-filtered": ratios}
    return [(arm, k) for arm in ARMS if arm in cfg.sweep.arms for k in ks[arm]]


def units_read(experiment: str, ratio: int) -> int:
    """Generated units one configuration names (real 0, else k); a bad pair is refused first."""
    check_experiment(experiment, ratio)
    return ratio


def prepare_inputs(cfg: Config, plan: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """Write what the plan reads and is missing: the world's databases, the generated units, the filtered pool.

    Units are generated up to the plan's largest ratio, whatever ``generate.units`` says, so any ratio
    runs on any preset; units already on disk are kept byte for byte. A filtered configuration trains
    the filter once and generates more units until its quotas are met (``fer_utils.filtering``), here,
    before any worker starts, so parallel runs never write the generated database at once. Returns the
    filtered configurations that could not be prepared, with why (e.g. a filter that keeps no face):
    the rest of the plan still runs.
    """
    from . import inputs
    from .filtering import prepare_filtered
    from .gan.generate import generate_database

    units = max((units_read(experiment, ratio) for experiment, ratio in plan), default=0)
    inputs.prepare_inputs(cfg)
    if units:
        generate_database(cfg, units=units)
    unprepared = {}
    for experiment, ratio in plan:
        if experiment == "mix-filtered":
            try:
                prepare_filtered(cfg, ratio)
            except InputError as exc:  # one arm's data: the others do not depend on it
                unprepared[(experiment, ratio)] = f"{type(exc).__name__}: {exc}"
                print(f"FAILED to prepare {experiment} k={ratio}: {exc}")
    return unprepared


def sweep_seeds(cfg: Config) -> tuple[int, ...]:
    """``sweep.seeds`` consecutive seeds from ``train.seed``: seed s of every ratio is paired."""
    return tuple(range(cfg.train.seed, cfg.train.seed + cfg.sweep.seeds))


def sweep_runs(cfg: Config, plan: list[tuple[str, int]] | None = None) -> list[executors.Run]:
    """Every run (experiment, ratio, seed) of the plan: one task each for the distributed executors."""
    plan = sweep_plan(cfg) if plan is None else plan
    return [(experiment, ratio, seed) for experiment, ratio in plan for seed in sweep_seeds(cfg)]


def runs_to_do(cfg: Config, runs: list[executors.Run]) -> list[executors.Run]:
    """The runs without a kept record made with this config's params on the current data (``executors.recorded``).

    The current data's identity loads a configuration's faces, so it is read once per configuration and only
    where a record is on disk to check against it.
    """
    current = functools.cache(functools.partial(current_identity, cfg))
    return [run for run in runs if not executors.run_path(cfg, run).is_file()
            or executors.recorded(cfg, run, current(*run[:2])) is None]


def run_sweep(cfg: Config, plan: list[tuple[str, int]] | None = None, progress: bool = True,
              executor: str | None = None, workers: int = 0, scheduler: str = "",
              task: Callable[..., Any] = executors.train_run) -> list[str]:
    """Run every configuration of ``plan`` (default: the preset's grid); return one line per failure.

    ``executor`` (default ``sweep.executor``): ``serial`` trains the configurations here in a row, the
    seeds of each together, and stops at a ``WriteError`` (a full or read-only results folder fails every run);
    ``local``, ``dask`` and ``slurm`` send one task per run still to do
    (``task``, default ``executors.train_run``) and retry a failed or lost run once.
    """
    plan = sweep_plan(cfg) if plan is None else plan
    executor = executor or cfg.sweep.executor
    if executor != "serial":
        backend = executors.make_backend(cfg, executor, workers, scheduler)  # an unknown name is refused here
        runs = sweep_runs(cfg, plan)
        todo = runs_to_do(cfg, runs)
        print(f"sweep: {len(runs)} runs, {len(runs) - len(todo)} already done, {len(todo)} to do on {executor} "
              f"({backend.slots} at once): {backend.where}")
        try:
            with doing(f"a sweep on {executor} workers ({len(todo)} runs to do)"):
                failures = executors.dispatch(cfg, todo, backend, task=task, progress=progress)
        except BaseException:  # stopped (Ctrl-C, SIGTERM) or failed: end the workers, leave no process behind
            backend.close(now=True)
            raise
        backend.close()
        print(f"sweep: {len(runs) - len(failures)} of {len(runs)} runs done, {len(failures)} failed")
        for line in failures:
            print(f"  {line}")
        return failures
    seeds = sweep_seeds(cfg)
    failures = []
    bar = tqdm(plan, desc="sweep", unit="config", disable=not progress)
    for experiment, ratio in bar:
        bar.set_postfix_str(f"{experiment} k={ratio} x{len(seeds)} seeds")
        try:
            run_experiment(cfg, experiment, ratio, seeds=seeds, progress=False)
        except WriteError:  # a full or read-only results folder fails every later run too: stop here
            raise
        except Exception as exc:  # noqa: BLE001 - isolate the failure, report it, go on
            failures.append(f"{experiment} k={ratio}: {type(exc).__name__}: {exc}")
            tqdm.write(f"FAILED {failures[-1]}")
    print(f"sweep: {len(plan) - len(failures)} of {len(plan)} configurations done "
          f"({len(seeds)} seeds each), {len(failures)} failed")
    for line in failures:
        print(f"  {line}")
    return failures


def sweep_status(cfg: Config, plan: list[tuple[str, int]] | None = None) -> str:
    """Done / to do per configuration, read from ``results_dir`` (kept records of this identity); writes nothing."""
    plan = sweep_plan(cfg) if plan is None else plan
    rows = []
    for experiment, ratio in plan:
        runs = sweep_runs(cfg, [(experiment, ratio)])
        with writing_nothing():
            todo = runs_to_do(cfg, runs)
        rows.append([run_name(experiment, ratio, 0).removesuffix("-seed0"), str(len(runs) - len(todo)),
                     str(len(todo)), ", ".join(str(seed) for _, _, seed in todo) or "–"])
    total = sum(int(row[1]) for row in rows), sum(int(row[2]) for row in rows)
    return (markdown_table(("configuration", "done", "to do", "seeds to do"), rows)
            + f"\n{total[0]} runs done, {total[1]} to do in {cfg.path(cfg.results_dir)}")


def _saved_records(cfg: Config) -> list[dict[str, Any]]:
    """Every readable run record under ``results_dir`` (any params), oldest first: what the estimate measures from."""
    import json

    records = []
    for path in sorted(cfg.path(cfg.results_dir).glob("*/*.json"), key=lambda p: (p.stat().st_mtime, p)):
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and isinstance(saved.get("fit"), dict) and "metrics" in saved:
            records.append(saved)
    return records


def _cores_of(record: dict[str, Any]) -> int:
    """Torch threads a run trained with (``fit.threads``), else the cores of its machine (older records:
    ``versions.machine``, 'Linux x86_64, 2 cpu')."""
    if isinstance(record["fit"].get("threads"), int) and record["fit"]["threads"] > 0:
        return record["fit"]["threads"]
    words = str(record.get("versions", {}).get("machine", "")).split()
    return int(words[-2]) if len(words) >= 2 and words[-1] == "cpu" and words[-2].isdigit() else 1


def _rate_per_core(cnn: list[dict[str, Any]]) -> float:
    """Img/s per core of an unloaded machine: the fastest of the ``RECENT_RUNS`` most recent CNN runs.

    Runs trained while other jobs shared the machine are slower; a median would let them drag every later plan.
    """
    recent = cnn[-RECENT_RUNS:]  # records come oldest first
    return max(r["fit"]["img_per_s"] / _cores_of(r) for r in recent) if recent else 100.0 / 2


def sweep_estimate(cfg: Config, plan: list[tuple[str, int]] | None = None) -> tuple[list[executors.Run], str]:
    """The runs still to do and their expected CPU-hours, with how the number was reached; writes nothing."""
    plan = sweep_plan(cfg) if plan is None else plan
    with writing_nothing():
        todo = runs_to_do(cfg, sweep_runs(cfg, plan))
    cnn = [r for r in _saved_records(cfg) if r.get("params", {}).get("model") == "cnn"
           and r["fit"].get("img_per_s") and "train" in r["metrics"]]
    per_core = _rate_per_core(cnn)
    real = [r["metrics"]["train"]["n"] for r in cnn if r["experiment"] == "real"]
    scaled = round(REAL_TRAIN * cfg.split.train_subjects / REAL_TRAIN_SUBJECTS)  # quick's 18 subjects: 330 (324 real)
    real_n = int(statistics.median(real)) if real else scaled
    unit_n = GENERATED_UNIT_TRAIN
    mixes = [(r["metrics"]["train"]["n"] - real_n) / r["params"]["ratio"] for r in cnn
             if r["experiment"] == "mix" and r["params"].get("ratio")]
    if real and mixes:
        unit_n = int(statistics.median(mixes))
    epochs = cfg.train.epochs
    seconds = 0.0
    lines = []
    for experiment, ratio, seed in todo:
        faces = ratio * unit_n if experiment == "synth" else real_n + ratio * unit_n
        cpu_s = faces * epochs / per_core
        seconds += cpu_s
        lines.append(f"  {run_name(experiment, ratio, seed):<18} {faces:>7,} training faces  "
                     f"{cpu_s / 3600:6.2f} CPU-h")
    source = (f"the fastest of the {min(len(cnn), RECENT_RUNS)} most recent saved CNN runs' fit.img_per_s per "
              "core, i.e. an idle machine" if cnn else "no saved CNN run here: 50 img/s per core, "
              "docs/performance.md's 2-core CPUs")
    real_source = (" (saved runs)" if real else f" (the default preset's {REAL_TRAIN:,} for {REAL_TRAIN_SUBJECTS} "
                   f"subjects, scaled to split.train_subjects = {cfg.split.train_subjects})")
    how = (f"{len(todo)} runs to do, about {seconds / 3600:.1f} CPU-hours: {per_core:.1f} img/s per core "
           f"({source}), {epochs} epochs each (early stopping often ends sooner; other jobs on the machine make it "
           f"longer), training faces {real_n:,} real{real_source} + {unit_n:,} per generated unit; "
           "evaluation, start-up, the filter CNN and the generated units the filtered arm adds (up to 4 x k) "
           "not counted; VGG16 runs (notebook 07) are not part of the sweep")
    return todo, "\n".join([*lines, how])
