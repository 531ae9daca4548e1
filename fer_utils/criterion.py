"""What a generator's faces teach: the shipping criterion of a pair of generators (issue 38).

DESIGN.md, "Generated faces must be judged by what they teach": a generator chosen by a judge's
reading learns to paint what the judge reads, so a candidate is judged by experiment 2 itself. One
unit of the candidate's faces trains the Table-1 CNN by the same code as experiment 2
(``run_experiment(cfg, "synth", 1)``: recipe, early stopping on generated validation identities),
and that CNN is scored on the real **validation** subjects, beside experiment 1's CNN (real faces
only) on the same subjects. Only ``real_splits(cfg)["val"]`` reaches the score: the test subjects,
MMI and CK+ never choose a generator. Each candidate's unit and run are kept apart, under
``results_dir/criterion/<weights' hashes>/``, so they never mix with the experiments' generated
database, and a rerun reuses them while the weights, data and settings are the same.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .config import Config
from .experiments import RunResult, run_experiment, score
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
    """``cfg`` with its generated unit and runs under ``results_dir/criterion/<hashes>/``; the weights it names."""
    weights = {model: weights_path(cfg, model) for model in SHIPPED}
    record = {model: {"path": str(path), "sha256": file_sha256(path)} for model, path in weights.items()}
    folder = Path(cfg.results_dir) / "criterion" / "-".join(w["sha256"][:12] for w in record.values())
    data = dataclasses.replace(cfg.data, generated=str(folder / "generated"))
    return dataclasses.replace(cfg, results_dir=str(folder), data=data), record


def validation_faces(cfg: Config) -> FaceSet:
    """The faces the criterion is scored on: the real validation subjects, and nothing else."""
    return real_splits(cfg)["val"]


def teaching_criterion(cfg: Config) -> dict[str, Any]:
    """Synthetic-only (experiment 2) and real-only (experiment 1) accuracy on the real validation subjects.

    Args:
        cfg: the candidate's weights (``generate.stylegan2_weights``, ``generate.stargan_weights``), the data
            (prepared: the world written, the crops cached) and the training recipe, as experiment 2 reads them.
    """
    candidate, weights = candidate_config(cfg)
    generate_database(candidate, units=UNITS, progress=False)
    return taught(candidate, cfg) | {"weights": weights}


def taught(arm: Config, cfg: Config) -> dict[str, Any]:
    """What the generated unit of ``arm`` (``data.generated``, its own ``results_dir``) teaches: experiment 2's CNN
    trained on it, beside experiment 1's (``cfg``'s real faces only), both scored on the real validation subjects."""
    runs = {"synthetic_only": run_experiment(arm, "synth", ratio=UNITS)[0], "real_only": run_experiment(cfg, "real")[0]}
    val = validation_faces(cfg)
    scored = {name: _validation_score(run, val, cfg.device) for name, run in runs.items()}
    return {"criterion": "synthetic-only accuracy on the real validation subjects (experiment 2, k = 1)",
            "target": TARGET, **{name: s["accuracy"] for name, s in scored.items()},
            "per_class": {name: s["per_class"] for name, s in scored.items()},
            "validation_faces": len(val), "validation_subjects": sorted(set(val.subjects.tolist())),
            "runs": {name: str(run.path) for name, run in runs.items()}, "preset": cfg.preset}


def _validation_score(run: RunResult, val: FaceSet, device: str) -> dict[str, Any]:
    """A kept run's CNN scored on the validation faces: accuracy and per-class recall."""
    metrics = score(load_model(run.path.with_suffix(".safetensors")), {"val": val}, device)["val"]
    recall = {name: c["recall"] for name, c in metrics["per_class"].items()}
    return {"accuracy": metrics["accuracy"], "per_class": recall}


def record_criterion(record: dict[str, Any], weights: dict[str, dict[str, str]]) -> list[Path]:
    """Write ``record`` as ``criterion`` into each weights file's provenance (atomically); return the files written.

    A shipped file's goes into ``fer_utils/gan/weights/provenance.json``; a ``train-gan`` export's into the
    ``provenance.json`` beside it (which ``--ship`` carries along); any other file gets ``<name>.criterion.json``.
    """
    written = []
    for model, info in weights.items():
        path = Path(info["path"])
        beside = path.parent / "provenance.json"
        if path.resolve() == SHIPPED[model].resolve():
            written.append(record_provenance(path.name, record, key="criterion"))
        elif beside.is_file() and json.loads(beside.read_text()).get("model") == model:
            written.append(write_json(beside, json.loads(beside.read_text()) | {"criterion": record}))
        else:
            written.append(write_json(path.with_name(f"{path.name}.criterion.json"), record))
    return written


def candidate_record(cfg: Config, people: ActingPeople, quality: bool = True) -> dict[str, Any]:
    """The criterion and what stands beside it: the quality measures (``gan.quality``, with the moved-features
    measure), or with ``quality`` False the moved-features measure alone (no judging CNN to train)."""
    record = {"teaching": teaching_criterion(cfg)}
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
             f"{t['synthetic_only']:.1%} ({t['validation_faces']} faces of {len(t['validation_subjects'])} subjects)"),
            ("real-only on the same subjects", "—", f"{t['real_only']:.1%}")]
    for name, m in motion["generated"].items():
        pos, neg = motion["positive_control"][name], motion["negative_control"][name]
        rows.append((f"{name}: fraction of the world's apex motion (share of faces read as moved)",
                     f">= {motion['reader']['target']:.0%}",
                     f"{m['fraction']:.2f} ({m['moved']:.0%}); world's own apex {pos['fraction']:.2f}; "
                     f"mean mark pasted {neg['fraction']:.2f} (reads neutral {1 - neg['moved']:.0%})"))
    rows.append(("controls pass (positive; negative)", "both",
                 f"{motion['positive_passes']}; {motion['negative_passes']}"))
    return markdown_table(("measure", "target", "this candidate"), rows)
