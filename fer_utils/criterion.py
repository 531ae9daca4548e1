"""What a generator's faces teach: the shipping criterion of a pair of generators (issue 38).

DESIGN.md, "Generated faces must be judged by what they teach": a generator chosen by a judge's
reading learns to paint what the judge reads, so a candidate is judged by experiment 2 itself. One
unit of the candidate's faces trains the Table-1 CNN by the same code as experiment 2
(``run_experiment(cfg, "synth", 1)``: recipe, early stopping on generated validation identities),
and that CNN is scored on the real **validation** subjects, beside experiment 1's CNN (real faces
only) on the same subjects. Only ``real_splits(cfg)["val"]`` reaches the score: the test subjects,
MMI and CK+ never choose a generator. Each candidate's unit and run are kept apart, under
``results_dir/criterion/<weights' hashes>-psi<ψ>-seed<seed>/``, so they never mix with the experiments' generated
database, and a rerun reuses them while the weights, data and settings are the same.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import uncertainty
from .config import Config, ConfigError
from .emotions import EMOTIONS
from .engine import TrainingFailed
from .experiments import GENERATION_KEYS, RunResult, run_experiment, score
from .gan.generate import generate_database
from .gan.motion import ActingPeople
from .gan.pipeline import load_pipeline
from .gan.quality import measure_quality, motion_of
from .gan.shipped import SHIPPED, record_provenance, weights_path
from .models.io import load_model
from .preprocess import FaceSet, real_splits
from .report import markdown_table
from .runtime import file_sha256, write_json

TARGET = 0.60  # issue 38: synthetic-only >= 60 % on the real validation subjects
UNITS = 1  # the paper's experiment 2: one unit of generated identities


def candidate_config(cfg: Config) -> tuple[Config, dict[str, dict[str, str]]]:
    """``cfg`` with its generated unit and runs under ``results_dir/criterion/<hashes>-psi<ψ>-seed<seed>/``; the
    weights it names."""
    weights = {model: weights_path(cfg, model) for model in SHIPPED}
    record = {model: {"path": str(path), "sha256": file_sha256(path)} for model, path in weights.items()}
    # named by what makes its faces, so another truncation or seed of the same pair never evicts this one's runs
    made_by = [w["sha256"][:12] for w in record.values()]
    made_by += [f"psi{cfg.generate.truncation_psi:g}", f"seed{cfg.generate.seed}"]
    folder = Path(cfg.results_dir) / "criterion" / "-".join(made_by)
    data = dataclasses.replace(cfg.data, generated=str(folder / "generated"))
    return dataclasses.replace(cfg, results_dir=str(folder), data=data), record


def criterion_recipe(cfg: Config) -> Config:
    """``cfg`` training ``generate.criterion_epochs`` epochs, its real-only runs kept under ``results_dir/criterion/``.

    The criterion asks how much a generator's faces teach, not how fast: at the default preset's 20 epochs every
    CNN is still learning, and slow-teaching faces read low (docs/generators.md, "The epoch cap"). Its own folder
    keeps its real-only runs apart from experiment 1's, which train ``train.epochs``.
    """
    train = dataclasses.replace(cfg.train, epochs=cfg.generate.criterion_epochs)
    return dataclasses.replace(cfg, train=train, results_dir=str(Path(cfg.results_dir) / "criterion"))


def validation_faces(cfg: Config) -> FaceSet:
    """The faces the criterion is scored on: the real validation subjects, and nothing else."""
    return real_splits(cfg)["val"]


def teaching_criterion(cfg: Config, seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Synthetic-only (experiment 2) and real-only (experiment 1) accuracy on the real validation subjects.

    Args:
        cfg: the candidate's weights (``generate.stylegan2_weights``, ``generate.stargan_weights``), the data
            (prepared: the world written, the crops cached) and the training recipe, as experiment 2 reads them.
        seeds: training seeds (default ``train.seed`` alone); with two or more the intervals include their spread.
    """
    candidate, weights = candidate_config(cfg)
    generate_database(candidate, units=UNITS, progress=False)
    generation = {key: getattr(cfg.generate, key) for key in GENERATION_KEYS}  # what made the faces
    return taught(candidate, cfg, seeds) | {"weights": weights, "generate": generation}


def taught(arm: Config, cfg: Config, seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    """What the generated unit of ``arm`` (``data.generated``, its own ``results_dir``) teaches: experiment 2's CNN
    trained on it, beside experiment 1's (``cfg``'s real faces only), both scored on the real validation subjects,
    one run per seed, with intervals over validation subjects and seeds (``fer_utils.uncertainty``).

    Both train ``generate.criterion_epochs`` epochs (``criterion_recipe``), experiment 2's recipe otherwise.
    A synthetic-only run that never validates below its untrained weights (on its own generated validation
    identities) is failed by the engine, as every run is: those faces taught that seed nothing it could learn, so
    the record names it under ``failures`` rather than scoring untrained weights; with every seed failed
    ``synthetic_only`` is None.
    """
    seeds = tuple(seeds or (cfg.train.seed,))
    val = validation_faces(cfg)
    recipe = criterion_recipe(cfg)
    arm = dataclasses.replace(arm, train=recipe.train)
    runs = {"real_only": run_experiment(recipe, "real", seeds=seeds)}
    synthetic, failures = [], {}
    for seed in seeds:
        try:
            synthetic += run_experiment(arm, "synth", ratio=UNITS, seed=seed)
        except TrainingFailed as exc:
            failures[str(seed)] = str(exc)
    runs["synthetic_only"] = synthetic
    record = {"criterion": "synthetic-only accuracy on the real validation subjects (experiment 2, k = 1)",
              "target": TARGET, "seeds": list(seeds), "epochs": recipe.train.epochs, "failures": failures,
              "validation_faces": len(val), "validation_subjects": sorted(set(val.subjects.tolist())),
              "preset": cfg.preset, "per_class": {}, "per_seed": {}, "by_subject": {}, "runs": {}}
    for name in ("synthetic_only", "real_only"):
        scored = [_validation_score(run, val, cfg.device) for run in runs[name]]
        estimate = uncertainty.accuracy([s["by_subject"] for s in scored]) if scored else None
        record[name] = estimate.value if estimate else None
        record[f"{name}_interval"] = [estimate.low, estimate.high] if estimate else None
        record["per_class"][name] = ({c: float(np.mean([s["per_class"][c] for s in scored])) for c in EMOTIONS}
                                     if scored else None)
        record["per_seed"][name] = {str(run.seed): s["accuracy"] for run, s in zip(runs[name], scored)}
        record["by_subject"][name] = [s["by_subject"] for s in scored]
        record["runs"][name] = [str(run.path) for run in runs[name]]
    return record


def synthetic_only_text(taught_record: dict[str, Any]) -> str:
    """The criterion's reading: the accuracy with its interval and seeds, and any seed whose run learned nothing."""
    seeds, failed = len(taught_record["seeds"]), len(taught_record["failures"])
    if taught_record["synthetic_only"] is None:
        return f"learned nothing ({seeds_text(failed)}: no epoch validated below the untrained weights)"
    low, high = taught_record["synthetic_only_interval"]
    text = f"{taught_record['synthetic_only']:.1%} [{low:.1%}, {high:.1%}] ({seeds_text(seeds - failed)})"
    return text + (f"; {seeds_text(failed)} learned nothing" if failed else "")


def seeds_text(n: int) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} seed{'s' * (n != 1)}"


def _validation_score(run: RunResult, val: FaceSet, device: str) -> dict[str, Any]:
    """A kept run's CNN scored on the validation faces: accuracy, per-class recall and per-subject counts."""
    metrics = score(load_model(run.path.with_suffix(".safetensors")), {"val": val}, device)["val"]
    recall = {name: c["recall"] for name, c in metrics["per_class"].items()}
    return {"accuracy": metrics["accuracy"], "per_class": recall, "by_subject": metrics["by_subject"]}


def shipped_models(weights: dict[str, dict[str, str]]) -> dict[str, bool]:
    """Which of a pair's weights files are the project's shipped ones."""
    return {model: Path(info["path"]).resolve() == SHIPPED[model].resolve() for model, info in weights.items()}


def check_shipped_pair(weights: dict[str, dict[str, str]]) -> dict[str, bool]:
    """Refuse to ship a criterion measured on anything but the shipped pair (before an hour of measuring)."""
    if not all((shipped := shipped_models(weights)).values()):
        raise ConfigError("criterion --ship records the shipped pair's criterion, but "
                          + ", ".join(f"{m} is {weights[m]['path']}" for m, s in shipped.items() if not s))
    return shipped


def record_criterion(record: dict[str, Any], weights: dict[str, dict[str, str]], folder: Path,
                     ship: bool = False) -> list[Path]:
    """Write ``record``, a pair's criterion, as ``folder/criterion.json`` and beside each weights file that is not
    shipped (atomically); with ``ship``, into the shipped provenance too. Return the files written.

    A ``train-gan`` export's goes into the ``provenance.json`` beside it (which ``--ship`` carries along); any other
    file gets ``<name>.criterion.json``. The shipped provenance describes the shipped pair, so only ``ship`` writes
    it, and only for that pair: a candidate StarGAN beside the shipped StyleGAN2 must not become the shipped
    StyleGAN2's record.
    """
    shipped = check_shipped_pair(weights) if ship else shipped_models(weights)
    written = [write_json(folder / "criterion.json", record)]
    for model, info in weights.items():
        path = Path(info["path"])
        beside = path.parent / "provenance.json"
        if shipped[model]:
            if ship:
                written.append(record_provenance(path.name, record, key="criterion"))
        elif beside.is_file() and json.loads(beside.read_text()).get("model") == model:
            written.append(write_json(beside, json.loads(beside.read_text()) | {"criterion": record}))
        else:
            written.append(write_json(path.with_name(f"{path.name}.criterion.json"), record))
    return written


def candidate_record(cfg: Config, people: ActingPeople, quality: bool = True,
                     seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The criterion and what stands beside it: the quality measures (``gan.quality``, with the moved-features
    measure), or with ``quality`` False the moved-features measure alone (no judging CNN to train)."""
    record = {"teaching": teaching_criterion(cfg, seeds)}
    pipe, _ = load_pipeline(cfg)
    if quality:
        record["quality"] = measure_quality(cfg, pipe, people)
    else:
        record["motion"] = motion_of(cfg, pipe, people)
    return record


def criterion_table(record: dict[str, Any]) -> str:
    """The criterion beside real-only, and the moved-features measure per expression with its two controls."""
    t = record["teaching"]
    motion = record.get("motion") or record["quality"]["motion"]
    rows = [("synthetic-only on the real validation subjects (the criterion)", f">= {t['target']:.0%}",
             f"{synthetic_only_text(t)} ({t['validation_faces']} faces of {len(t['validation_subjects'])} subjects, "
             f"{t['epochs']} epochs)"),
            ("real-only on the same subjects", "—",
             f"{t['real_only']:.1%} [{t['real_only_interval'][0]:.1%}, {t['real_only_interval'][1]:.1%}]")]
    for name, m in motion["generated"].items():
        pos, neg = motion["positive_control"][name], motion["negative_control"][name]
        rows.append((f"{name}: fraction of the world's apex motion (share of faces read as moved)",
                     f">= {motion['reader']['target']:.0%}",
                     f"{m['fraction']:.2f} ({m['moved']:.0%}); world's own apex {pos['fraction']:.2f}; "
                     f"mean mark pasted {neg['fraction']:.2f} (reads neutral {1 - neg['moved']:.0%})"))
    rows.append(("controls pass (positive; negative)", "both",
                 f"{motion['positive_passes']}; {motion['negative_passes']}"))
    return markdown_table(("measure", "target", "this candidate"), rows)
