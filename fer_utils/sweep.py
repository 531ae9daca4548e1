"""The whole experiment grid of a preset (Fig 8, Table 2): resumable, one failure never stops the rest.

The grid is real-only, synthetic-only, then real + k units of generated faces for every k of
``sweep.ratios``, each with ``sweep.seeds`` seeds trained together in one batched pass.
Finished runs are found on disk and skipped (``run_experiment`` checks params and data hash),
so an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

from tqdm.auto import tqdm

from .config import Config
from .experiments import check_experiment, run_experiment


def sweep_plan(cfg: Config) -> list[tuple[str, int]]:
    """(experiment, ratio) of every configuration, in the order of the paper's Figure 8."""
    return [("real", 0), ("synth", 0)] + [("mix", k) for k in sorted(set(cfg.sweep.ratios))]


def units_read(experiment: str, ratio: int) -> int:
    """Generated units one configuration trains on (synth 1, mix and vgg k, real 0); a bad pair is refused first."""
    check_experiment(experiment, ratio)
    return 1 if experiment == "synth" else ratio


def prepare_inputs(cfg: Config, plan: list[tuple[str, int]]) -> None:
    """Write what the plan reads and is missing: the world's databases, then the generated units it trains on.

    Units are generated up to the plan's largest ratio, whatever ``generate.units`` says, so any ratio
    runs on any preset; units already on disk are kept byte for byte.
    """
    from . import inputs
    from .gan.generate import generate_database

    units = max((units_read(experiment, ratio) for experiment, ratio in plan), default=0)
    inputs.prepare_inputs(cfg)
    if units:
        generate_database(cfg, units=units)


def sweep_seeds(cfg: Config) -> tuple[int, ...]:
    """``sweep.seeds`` consecutive seeds from ``train.seed``: seed s of every ratio is paired."""
    return tuple(range(cfg.train.seed, cfg.train.seed + cfg.sweep.seeds))


def run_sweep(cfg: Config, plan: list[tuple[str, int]] | None = None, progress: bool = True) -> list[str]:
    """Run every configuration of ``plan`` (default: the preset's grid); return one line per failure."""
    plan = sweep_plan(cfg) if plan is None else plan
    seeds = sweep_seeds(cfg)
    failures = []
    bar = tqdm(plan, desc="sweep", unit="config", disable=not progress)
    for experiment, ratio in bar:
        bar.set_postfix_str(f"{experiment} k={ratio} x{len(seeds)} seeds")
        try:
            run_experiment(cfg, experiment, ratio, seeds=seeds, progress=False)
        except Exception as exc:  # noqa: BLE001 - isolate the failure, report it, go on
            failures.append(f"{experiment} k={ratio}: {type(exc).__name__}: {exc}")
            tqdm.write(f"FAILED {failures[-1]}")
    print(f"sweep: {len(plan) - len(failures)} of {len(plan)} configurations done "
          f"({len(seeds)} seeds each), {len(failures)} failed")
    for line in failures:
        print(f"  {line}")
    return failures
