"""The paper's experiments as functions: choose the training faces, train, evaluate everywhere, save.

Experiment 1 (``real``), 2 (``synth``: k units of generated faces, the paper's k = 1), 3 (``mix``
with ratio k), the filtered arm (``mix-filtered``: real + k units' worth of generated faces a CNN
trained on real training subjects reads as labelled, ``fer_utils.filtering``) and §4.4 (``vgg``)
differ only in their training faces and model, so they share one path: ``run_experiment``. Ratio 0
of ``mix`` is experiment 1. Every run writes ``<results_dir>/<experiment>/<run>.json`` (params, seed, data
hash, per-database sources, versions, metrics, history) and ``<run>.safetensors`` (its best weights), so
06_cross_eval can find and re-evaluate every trained model, and a rerun skips finished runs: those whose
identity (data, params and the classifier's code, ``run_identity``) is the current one.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import EXPERIMENTS, Config, ConfigError, DataError, InputError, TrainConfig, require_path
from .engine import VMAP_DEVICES, ArraySplit, disk_needed, fit, predict, raise_failures
from .evaluate import evaluate, save_run
from .filtering import filtered_generated_splits
from .gan.generate import unit_of
from .identity import identity, kept_record
from .models.io import save_model
from .preprocess import SPLITS, FaceSet, data_sources, load_database, real_splits
from .runtime import (
    check_writable,
    data_hash,
    doing,
    exclusive,
    remove_stale_temporaries,
    resolve_device,
    resolve_precision,
)

SCORING = 2  # what a record's metrics hold; 2: per-subject counts (``by_subject``) for the two-level intervals
CROSS_DATABASES = ("mmi", "ckplus")  # never trained on: the paper's blind cross-database tests
GENERATION_KEYS = ("stylegan2_weights", "stargan_weights", "truncation_psi", "seed")  # not units: ratio says how many
DataIdentity = dict[str, str]  # "splits" or a database -> content hash: what a run's numbers rest on


@dataclass
class RunResult:
    """One trained model of one experiment: where it is saved and how it scored."""

    experiment: str
    ratio: int
    seed: int
    name: str
    path: Path  # the run's JSON; weights beside it with suffix .safetensors
    metrics: dict[str, dict[str, Any]]  # split or database -> evaluate() dict
    history: dict[str, list[float]]


# ---------------------------------------------------------------- training faces per experiment
def generated_splits(cfg: Config, units: int) -> dict[str, FaceSet]:
    """The first ``units`` generated units, split by their folders (109/10/25 identities each)."""
    root = require_path(cfg, "data.generated", "run notebooks/01_generate.ipynb or `python -m fer_utils generate`")
    faces = load_database(cfg, "generated", root)
    unit = unit_of(faces.subjects)
    have = int(unit.max()) + 1
    if units > have:
        raise DataError(f"ratio {units} needs {units} generated units but {root} holds {have}; "
                          f"run `python -m fer_utils train mix --ratio {units}` or notebook 05, which generate "
                          "the missing units")
    split = np.array([row["split"] for row in faces.manifest])
    return {name: faces.select((unit < units) & (split == name), split=name) for name in SPLITS}


def experiment_splits(cfg: Config, experiment: str, ratio: int = 0) -> dict[str, FaceSet]:
    """Train/val/test faces of one experiment (``experiment_inputs`` without its notes)."""
    return experiment_inputs(cfg, experiment, ratio)[0]


def experiment_inputs(cfg: Config, experiment: str, ratio: int = 0) -> tuple[dict[str, FaceSet], dict[str, Any]]:
    """Train/val/test faces of one experiment, and notes for its record (the filtered arm: what the filter kept).

    Mixed runs also get ``val_real`` and ``test_real``.

    The paper's mixed val and test sets grow more synthetic with k, which flatters the score, so
    the real-only subjects are scored as well: ``val_real`` chooses the best k, ``test_real``
    reports it. Synthetic-only runs of every k are tested on the same faces: the first unit's
    generated test identities (``test``) and the real test subjects (``test_real``).
    """
    check_experiment(experiment, ratio)
    real = real_splits(cfg)
    if experiment == "synth":
        generated = generated_splits(cfg, ratio)
        first = unit_of(generated["test"].subjects) == 0
        return {**generated, "test": generated["test"].select(first, split="test"), "test_real": real["test"]}, {}
    if ratio == 0:
        return real, {}
    notes = {}
    if experiment == "mix-filtered":
        generated, report = filtered_generated_splits(cfg, ratio)
        notes["filter"] = report.to_dict()  # kept fractions, shortfall: the record says what the run trained on
    else:
        generated = generated_splits(cfg, ratio)
    mixed = {name: FaceSet.concat([real[name], generated[name]]) for name in SPLITS}
    return {**mixed, "val_real": real["val"], "test_real": real["test"]}, notes


def check_experiment(experiment: str, ratio: int) -> None:
    """Reject an unknown experiment or a ratio it cannot take, naming the value."""
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {experiment!r}; known: {', '.join(EXPERIMENTS)}")
    if (ratio < 0 or (experiment == "real" and ratio)
            or (experiment in {"synth", "mix", "mix-filtered"} and ratio < 1)):
        raise ConfigError(f"experiment {experiment!r} cannot take ratio {ratio}: real takes 0, synth takes k >= 1 "
                          "units (the paper's experiment 2 is k = 1), mix and mix-filtered take k >= 1 (ratio 0 is "
                          "the real experiment), vgg takes k >= 0")


def choose_experiment(ratio: int, synth_only: bool = False, filtered: bool = False) -> tuple[str, int]:
    """Notebook 05's parameters as (experiment, k): ratio 0 is experiment 1, ``synth_only`` takes k units
    (at least 1), ``filtered`` the filtered arm; a combination that means nothing is refused, naming it."""
    if synth_only and filtered:
        raise ConfigError("synth_only and filtered cannot both be set: the filtered arm mixes real and generated faces")
    experiment = "synth" if synth_only else "mix-filtered" if filtered else "mix" if ratio else "real"
    k = max(ratio, 1) if synth_only else ratio
    check_experiment(experiment, k)
    return experiment, k


def run_name(experiment: str, ratio: int, seed: int) -> str:
    """File stem of a run: ``real-seed0``, ``synth-k1-seed0``, ``mix-k5-seed2``, ``mix-filtered-k5-seed2``."""
    ratio_part = "" if experiment == "real" else f"-k{ratio}"
    return f"{experiment}{ratio_part}-seed{seed}"


# ---------------------------------------------------------------- one experiment, S seeds
def cross_database_sets(cfg: Config) -> dict[str, FaceSet]:
    """MMI and CK+ faces (the six classes), for blind cross-database testing."""
    return {name: load_database(cfg, name) for name in CROSS_DATABASES}


def score(model: nn.Module, sets: dict[str, FaceSet], device: str) -> dict[str, dict[str, Any]]:
    """``evaluate()`` of one model on every named face set, with per-subject counts (the intervals' clusters)."""
    return {name: evaluate(predict(model, faces.images, device), faces.labels, faces.subjects)
            for name, faces in sets.items()}


def recipe(cfg: Config, experiment: str) -> TrainConfig:
    """The training recipe: the CNN's for every experiment, with VGG16's own epoch cap (``sota``)."""
    return dataclasses.replace(cfg.train, epochs=cfg.sota.vgg_epochs) if experiment == "vgg" else cfg.train


def run_params(cfg: Config, experiment: str, ratio: int) -> dict[str, Any]:
    """What defines a run besides its seed and data: written to its JSON, compared on resume."""
    params = {"experiment": experiment, "ratio": ratio, "model": "vgg16" if experiment == "vgg" else "cnn",
              "preset": cfg.preset, "train": dataclasses.asdict(recipe(cfg, experiment)),
              "split": dataclasses.asdict(cfg.split),
              "preprocess": dataclasses.asdict(cfg.preprocess), "scoring": SCORING}
    if ratio or experiment == "synth":  # what made the generated faces (the data hash pins the faces themselves)
        params["generate"] = {key: getattr(cfg.generate, key) for key in GENERATION_KEYS}
    if experiment == "mix-filtered":
        params["generate"] |= {"filter": cfg.generate.filter, "filter_threshold": cfg.generate.filter_threshold}
    params["train"].pop("seed")
    params["train"]["precision"] = resolve_precision(cfg.train.precision, resolve_device(cfg.device))  # what runs
    return params


def run_inputs(cfg: Config, experiment: str, ratio: int) -> tuple[dict[str, FaceSet], dict[str, FaceSet],
                                                                  dict[str, Any], DataIdentity]:
    """A run's splits, every set it is scored on (the splits and the cross databases), its record's notes, and the
    identity of these data (``data_identity``)."""
    splits, notes = experiment_inputs(cfg, experiment, ratio)
    tests = splits | cross_database_sets(cfg)
    return splits, tests, notes, data_identity(data_hash(splits), data_sources(tests))


def data_identity(splits_hash: str, sources: Mapping[str, Any]) -> DataIdentity:
    """What a run's numbers rest on: the hash of its splits (the faces it trained, was chosen and tested on) and the
    content hash of every database it was scored on, as ``save_run`` records them (``data_hash``, ``data``).

    The generated database's own hash is left out: it covers every unit on disk, not the k units the splits hash
    pins, so it changes whenever more units are generated (the filter's notes carry no ``hash``).
    """
    return {"splits": splits_hash,
            **{name: source["hash"] for name, source in sources.items() if name != "generated" and "hash" in source}}


def run_identity(cfg: Config, experiment: str, ratio: int, data: DataIdentity) -> dict[str, Any]:
    """A run's identity (``fer_utils.identity``): its data, its params and the classifier's code."""
    return identity("classifier", data, run_params(cfg, experiment, ratio))


def current_identity(cfg: Config, experiment: str, ratio: int) -> dict[str, Any] | None:
    """The identity a run of this configuration would record now, or None (named) when its inputs cannot be read.

    Loads the configuration's faces from the cache: about 1 s per configuration on the default preset, but about
    25 s per ratio for the filtered arm, which scores its generated pool with the filter CNN.
    """
    try:
        data = run_inputs(cfg, experiment, ratio)[3]
    except InputError as exc:  # missing world, units or filter: no kept record of it can be confirmed
        print(f"cannot read the data of {experiment} k={ratio} ({type(exc).__name__}: {exc}): "
              "none of its kept runs count")
        return None
    return run_identity(cfg, experiment, ratio, data)


def kept_run(path: Path, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The kept record at ``path`` if its identity is ``current`` (``run_identity``), else None: a record of other
    data, settings or code is named with why, so the run is made again rather than mixed with runs of other data."""
    if current is None:  # its data cannot be read (named by current_identity): nothing can be confirmed
        return None
    return kept_record(path, current)


def finished_run(path: Path, current: dict[str, Any]) -> RunResult | None:
    """The saved run at ``path`` if its identity is ``current``, else None."""
    saved = kept_run(path, current)
    if saved is None:
        return None
    return RunResult(saved["experiment"], saved["params"]["ratio"], saved["seed"], saved["run"], path,
                     saved["metrics"], saved["history"])


def run_experiment(cfg: Config, experiment: str, ratio: int = 0, seed: int | None = None,
                   seeds: tuple[int, ...] | None = None, progress: bool = True) -> list[RunResult]:
    """Train one experiment for each seed (one vmapped pass on CUDA), score it everywhere, save it.

    Args:
        cfg: data paths, split, training recipe, device, ``results_dir``.
        experiment: ``real`` (Exp 1), ``synth`` (Exp 2 at k = 1), ``mix`` (Exp 3), ``mix-filtered``, ``vgg`` (§4.4).
        ratio: k units of generated faces per real unit (synth, mix, mix-filtered >= 1; vgg >= 0; real 0).
        seed: a single seed; ``seeds`` several; neither = ``cfg.train.seed``.
        progress: tqdm bar over epochs.

    Runs whose JSON and weights exist with the same identity (data, params, code) are loaded, not retrained; a
    run another process is training is waited for (a lock per run), then loaded. A run that diverges raises
    ``TrainingFailed`` after the others are saved; a results folder that cannot be written (or lacks the space a
    checkpoint needs) raises ``WriteError`` before any data is read.
    """
    check_experiment(experiment, ratio)
    seeds = (seed,) if seed is not None else tuple(seeds) if seeds else (cfg.train.seed,)
    params = run_params(cfg, experiment, ratio)
    folder = cfg.path(cfg.results_dir) / experiment
    members = max(len(group) for group in member_groups(seeds, cfg.device))
    check_writable(folder, "results_dir", disk_needed(params["model"], members))  # before the data and training
    splits, tests, notes, data = run_inputs(cfg, experiment, ratio)
    ident = run_identity(cfg, experiment, ratio, data)
    paths = {s: folder / f"{run_name(experiment, ratio, s)}.json" for s in seeds}
    with contextlib.ExitStack() as locks:  # another process training one of these runs: wait, then reuse it
        for s in sorted(set(seeds)):  # always in the same order, so two processes cannot wait on each other
            locks.enter_context(exclusive(paths[s], f"run {paths[s].stem}"))
        done = {s: finished_run(paths[s], ident) for s in seeds}
        _train_missing(cfg, experiment, ratio, splits, tests, notes, data, ident, paths, done, progress)
    return [done[s] for s in seeds]


def _train_missing(cfg: Config, experiment: str, ratio: int, splits: dict[str, FaceSet], tests: dict[str, FaceSet],
                   notes: dict[str, Any], data: DataIdentity, ident: dict[str, Any], paths: dict[int, Path],
                   done: dict[int, RunResult | None], progress: bool) -> None:
    """Train the seeds of ``paths`` not ``done`` (their locks held), score and save each, and fill in ``done``."""
    todo = tuple(s for s in paths if done[s] is None)
    folder, params = cfg.path(cfg.results_dir) / experiment, ident["settings"]
    remove_stale_temporaries(folder)
    for seed in set(paths) - set(todo):  # a member killed after its record, before removing its checkpoint
        for leftover in folder.glob(f".{run_name(experiment, ratio, seed)}-x*.train.pt"):
            print(f"removed {leftover}: the training checkpoint of a finished run")
            leftover.unlink()
    train, val = (ArraySplit(splits[name].images, splits[name].labels) for name in ("train", "val"))
    failed = []  # diverged members: never saved, named once the others are
    for group in member_groups(todo, cfg.device):  # each group saved before the next starts: a kill loses one
        checkpoint = folder / f".{run_name(experiment, ratio, group[0])}-x{len(group)}.train.pt"
        with doing(f"{experiment} k={ratio} seed {', '.join(map(str, group))}"):
            for result in fit(params["model"], train, val, recipe(cfg, experiment), cfg.device, group,
                              checkpoint=checkpoint, progress=progress):
                if result.failure:
                    failed.append(result)
                    continue
                metrics = score(result.model, tests, cfg.device)
                save_model(result.model, params["model"], paths[result.seed].with_suffix(".safetensors"))
                fit_info = {"best_epoch": result.best_epoch, "stopped_epoch": result.stopped_epoch,
                            "seconds": result.seconds, "img_per_s": result.img_per_s, "members": len(group),
                            "precision": result.precision, "threads": torch.get_num_threads(),
                            "untrained_val_loss": result.untrained_val_loss, "improved": result.improved}
                if not result.improved:  # kept only under train.must_improve false: said, never silent
                    print(f"{paths[result.seed].stem}: kept though no epoch validated below its untrained "
                          f"weights ({result.untrained_val_loss:.6g}): train.must_improve is false")
                save_run(folder.parent, experiment, paths[result.seed].stem, params, result.seed, data["splits"],
                         metrics, result.history, fit_info, data_sources(tests) | notes, ident)
                done[result.seed] = finished_run(paths[result.seed], ident)
        checkpoint.unlink(missing_ok=True)
    raise_failures(f"train {experiment} k={ratio}", failed)


def member_groups(seeds: tuple[int, ...], device: str) -> list[tuple[int, ...]]:
    """Seeds trained together: all in one vmapped pass on CUDA, else one at a time (``train.VMAP_DEVICES``)."""
    if resolve_device(device).type in VMAP_DEVICES:
        return [seeds] if seeds else []
    return [(seed,) for seed in seeds]
