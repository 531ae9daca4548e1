"""The "mix-filtered" arm's data: generated faces screened by a CNN trained on real training subjects.

Why filter: the StarGAN does not always draw the expression it was asked for (about 14 % of its faces
read as another one), so a generated training face carries label noise. A filter CNN (the Table-1
CNN, the train recipe) scores every generated face; a face is kept when the filter gives its
requested expression a probability >= ``generate.filter_threshold``. The filtered database for
ratio k holds, per split and expression, as many faces as k unfiltered units do, taken in pool
order (raw unit 0, 1, ... then identity) from identities of the same split, so a generated identity
never crosses train/val/test. More raw units are generated until every quota is filled or
``MAX_POOL_FACTOR`` x k units were read; what is still missing is printed and reported
(``FilterReport.shortfall``), never silently dropped.

Why it does not leak test data: the filter trains and early-stops only on the real *training*
subjects of ``real_splits`` (split by subject into fit and stop sets, about 10 % of them for
stopping), never on the real validation or test subjects, never on MMI or CK+ (the blind
cross-database tests), never on generated faces. It is kept as
``<results_dir>/filter/filter.safetensors`` + ``filter.json``, whose identity (``fer_utils.identity``) pins the
recipe, the split, a hash of the exact fit and stop faces and the classifier's code, so a change retrains it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .config import FILTERS, Config, ConfigError, DataError
from .emotions import EMOTIONS
from .engine import ArraySplit, fit, predict, raise_failures
from .gan import generate as gen
from .identity import identity, kept_record, mismatch, write_record
from .models.io import load_model, save_model
from .preprocess import SPLITS, FaceSet, load_database, real_splits, split_subjects
from .report import markdown_table
from .runtime import data_hash, exclusive, read_only, remove_stale_temporaries, versions, write_json

FOLDER = "filter"  # under cfg.results_dir
FILTER_MODEL = "cnn"  # the Table-1 CNN
MAX_POOL_FACTOR = 4  # ratio k reads at most this many x k raw generated units
STOP_FRACTION = 0.1  # of the real training subjects, held out for the filter's early stopping
METHODS = tuple(name for name in FILTERS if name != "none")  # generate.filter values that screen faces
PREPARE_HINT = ("run `fer_utils.filtering.prepare_filtered(cfg, {units})`, the sweep (arm mix-filtered) or "
                "notebook 05, which generate the missing raw units")


# ---------------------------------------------------------------- the filter CNN
def check_filter(cfg: Config) -> None:
    """Refuse a configuration that gives the filtered arm no filter, naming the key."""
    method = cfg.generate.filter
    if method not in METHODS:
        raise ConfigError(f"generate.filter is {method!r}: the mix-filtered arm needs a filter; set generate.filter "
                          f"to one of {', '.join(METHODS)} (or leave mix-filtered out of sweep.arms)")


def _fit_stop_faces(cfg: Config) -> dict[str, FaceSet]:
    """The real training subjects split by subject into fit and stop faces; val, test, MMI, CK+ are never read."""
    train = real_splits(cfg)["train"]
    subjects = sorted(set(map(str, train.subjects)))
    if len(subjects) < 2:
        raise DataError(f"the filter needs at least 2 real training subjects (split.train_subjects), "
                        f"got {len(subjects)}: one to fit on and one to stop early on")
    n_stop = min(len(subjects) - 1, max(1, round(STOP_FRACTION * len(subjects))))
    parts = split_subjects(subjects, (len(subjects) - n_stop, n_stop), cfg.split.seed, names=("fit", "stop"))
    return {name: train.select(np.isin(train.subjects, members), split=f"filter-{name}")
            for name, members in parts.items()}


def filter_training_sets(cfg: Config) -> tuple[ArraySplit, ArraySplit]:
    """(fit, stop): the real TRAINING subjects only, split by subject (about 10 % of them, seeded by split.seed)
    for early stopping."""
    faces = _fit_stop_faces(cfg)
    return tuple(ArraySplit(faces[name].images, faces[name].labels) for name in ("fit", "stop"))


def filter_params(cfg: Config) -> dict[str, Any]:
    """What defines the filter besides its faces and code: part of its identity, so a change retrains it."""
    recipe = dataclasses.asdict(cfg.train)  # the precision as set, not as resolved here: a GPU worker of a sweep reuses
    return {"model": FILTER_MODEL, "recipe": recipe, "split": dataclasses.asdict(cfg.split),  # the driver's filter
            "stop_fraction": STOP_FRACTION}


def filter_path(cfg: Config) -> Path:
    """The filter's record; its weights sit beside it as ``filter.safetensors``."""
    return cfg.path(cfg.results_dir) / FOLDER / "filter.json"


def _trained_filter(cfg: Config, progress: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The filter and its record: reused when its identity (fit/stop faces, params, code) matches, else trained and
    saved; a process that finds another training it waits, then reuses its filter."""
    check_filter(cfg)
    fit_set, stop_set = filter_training_sets(cfg)
    hash_ = data_hash({"fit": fit_set, "stop": stop_set})
    ident = identity("classifier", {"fit+stop": hash_}, filter_params(cfg))
    path = filter_path(cfg)
    weights = path.with_suffix(".safetensors")
    if read_only():  # --status and --plan: a filter not trained yet leaves its arm's runs to do
        if (record := kept_record(path, ident)) is None:
            raise DataError(f"the filter CNN ({path}) is not trained for these settings and faces yet")
        return load_model(weights), record
    with exclusive(path, "the filter CNN"):
        record = kept_record(path, ident)
        if record is None:
            _train_filter(cfg, fit_set, stop_set, ident, path, progress)
            record = json.loads(path.read_text())
    return load_model(weights), record


def _train_filter(cfg: Config, fit_set: ArraySplit, stop_set: ArraySplit, ident: dict[str, Any], path: Path,
                  progress: bool) -> None:
    """Train the filter CNN and save its weights, then its record (``identity.write_record``)."""
    remove_stale_temporaries(path.parent)
    checkpoint = path.parent / ".filter.train.pt"  # resumed by fit() only if made from these faces and recipe
    (result,) = fit(FILTER_MODEL, fit_set, stop_set, cfg.train, cfg.device, seeds=(cfg.train.seed,),
                    checkpoint=checkpoint, progress=progress)
    if result.failure:
        checkpoint.unlink(missing_ok=True)  # a rerun with the same recipe would resume the diverged weights
    raise_failures("the filter CNN (generate.filter)", [result])  # a diverged filter would keep no face
    accuracy = float((predict(result.model, stop_set.images, cfg.device).argmax(1) == stop_set.labels).mean())
    save_model(result.model, FILTER_MODEL, path.with_suffix(".safetensors"))
    write_record(path, {"params": ident["settings"], "data_hash": ident["inputs"]["fit+stop"],
                        "stop_accuracy": accuracy, "faces": {"fit": len(fit_set.labels), "stop": len(stop_set.labels)},
                        "fit": {"best_epoch": result.best_epoch, "stopped_epoch": result.stopped_epoch,
                                "seconds": result.seconds, "precision": result.precision},
                        "versions": versions()}, ident)
    checkpoint.unlink(missing_ok=True)
    print(f"filter CNN trained on {len(fit_set.labels)} real training faces; accuracy on the "
          f"{len(stop_set.labels)} held-out training-subject faces {accuracy:.1%} ({path})")


def filter_model(cfg: Config, progress: bool = False) -> nn.Module:
    """The filter CNN (Table-1 CNN 'cnn', cfg.train recipe, seed cfg.train.seed), trained once and kept as
    <results_dir>/filter/filter.safetensors + filter.json; retrained when the recipe, the split or the real
    training faces change (or its weights are damaged); its accuracy on the stop subjects is recorded."""
    return _trained_filter(cfg, progress)[0]


# ---------------------------------------------------------------- screening
def keep_mask(probs: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Faces whose requested expression gets probability >= threshold."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise ValueError(f"need probabilities (N, C) and N labels, got {probs.shape} and {labels.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"generate.filter_threshold must be within [0, 1], got {threshold!r}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must be class indices 0..{probs.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    return probs[np.arange(len(labels)), labels.astype(np.int64)] >= threshold


def score_faces(model: nn.Module, faces: FaceSet, device: str) -> np.ndarray:
    """Class probabilities (N, 6) the filter gives each face, always on the CPU in fp32 (the inference policy there),
    so the driver that prepared the selection and every worker of a sweep, GPU or not, keep the same faces.
    ``device`` is unused but kept: tests swap in known probabilities through this seam."""
    return predict(model, faces.images, "cpu")


@dataclass
class FilterReport:
    """What the filtered data of one ratio holds, and what it could not get."""

    threshold: float
    filter_stop_accuracy: float
    kept_fraction: dict[str, float]  # class -> fraction of the scored faces of units 0..k-1 kept
    raw_units: int  # raw units the selection read
    faces: dict[str, dict[str, int]]  # split -> class -> faces selected
    shortfall: dict[str, dict[str, int]]  # split -> class -> faces missing; empty when every quota is filled
    units: int = 0  # the ratio k
    max_units: int = 0  # MAX_POOL_FACTOR x k: the most raw units the selection may read
    method: str = "confidence"
    filter_weights_sha256: str = ""  # the filter that scored the faces
    data_hash: str = ""  # of the selected faces (runtime.data_hash)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, for the report JSON and result files."""
        return dataclasses.asdict(self)


def _complete_units(root: Path, present: np.ndarray) -> int:
    """How many units 0..n-1 are fully on disk: where ``generate`` marked units done, an unmarked one (killed
    mid-move) ends the pool; hand-made folders without markers count by their subject names."""
    marked = {int(m.group(1)) for p in root.glob(".u*.done.json") if (m := gen.DONE.match(p.name))}
    units, n = set(present.tolist()), 0
    while n in units and (not marked or n in marked):
        n += 1
    return n


def _pool(cfg: Config) -> tuple[Path | None, FaceSet | None, int]:
    """The generated database folder, its faces and how many complete units it holds (None, None, 0 if absent)."""
    root = cfg.path(cfg.data.generated) if cfg.data.generated else None
    if root is None or not root.is_dir() or not any(root.glob("*/*/u*_id*")):
        return root, None, 0
    faces = load_database(cfg, "generated", root)
    if not len(faces):
        raise DataError(f"data.generated ({root}) holds no usable face: {faces.report.summary()}")
    return root, faces, _complete_units(root, gen.unit_of(faces.subjects))


def _grow(cfg: Config, units: int, have: int, progress: bool) -> tuple[Path | None, FaceSet | None, int]:
    """Generate (or complete) raw units 0..units-1 and reread the pool; refuse to loop on a pool that did not grow."""
    gen.generate_database(cfg, progress=progress, units=units)
    root, faces, now = _pool(cfg)
    if now <= have:
        raise DataError(f"data.generated ({root}) still holds {now} complete units after generating {units}; "
                        "is another process writing it, or a unit folder damaged?")
    return root, faces, now


def _pool_order(faces: FaceSet, units: np.ndarray) -> np.ndarray:
    """Indices of ``faces`` by (raw unit, identity), the order quotas are filled in."""
    return np.lexsort((faces.subjects, units))


def _quotas(split: np.ndarray, labels: np.ndarray, units: np.ndarray, k: int) -> dict[str, dict[str, int]]:
    """Faces per split and class that k unfiltered units hold: what the filtered data must match."""
    first = units < k
    return {s: {name: int(((split == s) & (labels == c) & first).sum()) for c, name in enumerate(EMOTIONS)}
            for s in SPLITS}


def _select(faces: FaceSet, kept: np.ndarray, quotas: dict[str, dict[str, int]], units: np.ndarray,
            split: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]], int]:
    """Per split, the kept faces filling each class quota in pool order, from that split's identities only;
    with the shortfall and how many raw units the selection read."""
    order = _pool_order(faces, units)
    chosen: dict[str, list[int]] = {s: [] for s in SPLITS}
    short: dict[str, dict[str, int]] = {}
    last = -1
    for s in SPLITS:
        for c, name in enumerate(EMOTIONS):
            candidates = order[(split[order] == s) & (faces.labels[order] == c) & kept[order]]
            take = candidates[:quotas[s][name]]
            chosen[s] += take.tolist()
            if len(take) < quotas[s][name]:
                short.setdefault(s, {})[name] = quotas[s][name] - len(take)
            if len(take):
                last = max(last, int(units[take].max()))
    return {s: np.sort(np.array(idx, dtype=np.int64)) for s, idx in chosen.items()}, short, last + 1


def _needed_units(kept: np.ndarray, split: np.ndarray, labels: np.ndarray, units: np.ndarray, read: int,
                  quotas: dict[str, dict[str, int]], cap: int) -> int:
    """Raw units to read next, estimated from each class's keep rate so far (one generate call, not one per unit)."""
    need = read + 1
    for s in SPLITS:
        for c, name in enumerate(EMOTIONS):
            got = int(((split == s) & (labels == c) & kept & (units < read)).sum())
            if got < quotas[s][name]:
                need = max(need, cap if got == 0 else int(np.ceil(read * quotas[s][name] / got)))
    return min(cap, need)


def _filtered(cfg: Config, units: int, grow: bool, progress: bool) -> tuple[dict[str, FaceSet], FilterReport]:
    """Score the pool, grow it when allowed and needed, select the faces; see ``filtered_generated_splits``."""
    check_filter(cfg)
    if units < 1:
        raise ConfigError(f"the filtered arm takes ratio k >= 1, got {units}")
    cap, threshold = MAX_POOL_FACTOR * units, cfg.generate.filter_threshold
    root, faces, have = _pool(cfg)
    if have < units and grow:
        root, faces, have = _grow(cfg, units, have, progress)
    if faces is None or have < units:
        raise DataError(f"ratio {units} of the filtered arm needs at least {units} generated units, but "
                        f"data.generated ({root}) holds {have}; {PREPARE_HINT.format(units=units)}")
    model, record = _trained_filter(cfg, progress)
    while True:
        unit = gen.unit_of(faces.subjects)
        split = np.array([row["split"] for row in faces.manifest])
        read = min(have, cap)
        pool = unit < read
        kept = np.zeros(len(faces), bool)
        kept[pool] = keep_mask(score_faces(model, faces.select(pool), cfg.device), faces.labels[pool], threshold)
        if not kept.any():  # growing cannot help, and the arm would train on real faces alone under its name
            raise DataError(f"the filter kept none of the {int(pool.sum())} generated faces of {read} units at "
                            f"generate.filter_threshold {threshold} (it reads its held-out real training subjects at "
                            f"{record['stop_accuracy']:.1%}; chance is {1 / len(EMOTIONS):.1%}): train it longer "
                            "(train.epochs) or lower the threshold, or leave mix-filtered out of sweep.arms")
        quotas = _quotas(split, faces.labels, unit, units)
        chosen, short, used = _select(faces, kept, quotas, unit, split)
        if not short or read >= cap:
            break
        if not grow:
            raise DataError(f"ratio {units} of the filtered arm needs more raw generated units than the {have} in "
                            f"{root} (threshold {threshold}; at most {cap} are read); "
                            f"{PREPARE_HINT.format(units=units)}")
        root, faces, have = _grow(cfg, _needed_units(kept, split, faces.labels, unit, read, quotas, cap), have,
                                  progress)
    sets = {s: faces.select(chosen[s], split=s) for s in SPLITS}
    first = unit < units
    kept_fraction = {name: float(kept[first & (faces.labels == c)].mean()) if (first & (faces.labels == c)).any()
                     else 0.0 for c, name in enumerate(EMOTIONS)}
    report = FilterReport(threshold, float(record["stop_accuracy"]), kept_fraction,
                          read if short else max(units, used), {s: sets[s].class_counts() for s in SPLITS}, short,
                          units, cap, cfg.generate.filter, record.get("weights_sha256", ""), data_hash(sets))
    if short:
        missing = ", ".join(f"{s}/{name} {n}" for s, per in short.items() for name, n in per.items())
        print(f"filtered generated faces, ratio {units}: {cap} raw units (the cap, {MAX_POOL_FACTOR} x {units}) "
              f"cannot fill every quota at threshold {threshold}; short of {missing}")
    return sets, report


def filtered_generated_splits(cfg: Config, units: int, grow: bool = False) -> tuple[dict[str, FaceSet], FilterReport]:
    """train/val/test faces of the filtered data for ratio ``units``, and what they hold.

    Args:
        cfg: ``generate`` (filter, filter_threshold, and the generation keys when growing), ``data.generated``,
            the real data and ``train``/``split`` (the filter), ``results_dir``.
        units: the ratio k: per split and class, as many faces as k unfiltered units hold.
        grow: generate raw units the quotas need (up to ``MAX_POOL_FACTOR`` x k). False never writes generated
            units (workers of a parallel sweep call it; the driver prepared the pool): a pool too small that has
            not reached the cap raises ``DataError`` saying what to run.
    """
    sets, report = _filtered(cfg, units, grow, progress=False)
    prepared = report_path(cfg, units)
    if not grow and prepared.is_file():
        saved = json.loads(prepared.read_text())
        same_making = mismatch(saved.get("identity"), selection_identity(cfg, report)) is None
        if same_making and saved.get("data_hash") != report.data_hash:  # one filter, pool and code; other faces
            raise DataError(f"the filtered faces of ratio {units} differ from those {prepared} describes (same filter, "
                            "threshold, generated units and code): is another process growing data.generated? "
                            "Run prepare_filtered again")
    return sets, report


def selection_identity(cfg: Config, report: FilterReport) -> dict[str, Any]:
    """What decides which faces a ratio's report lists (``fer_utils.identity``, kind ``filtered``): the filter's
    weights, the marks of the generated units it read (each unit's own identity), the threshold and ratio, and the
    selecting code. The faces' hash is the result, not part of it: the same identity must give the same faces."""
    root = cfg.path(cfg.data.generated)
    marks = [root / f".u{unit:02d}.done.json" for unit in range(report.raw_units)]
    pool = hashlib.sha256(b"".join(m.read_bytes() if m.is_file() else b"unmarked" for m in marks)).hexdigest()[:16]
    return identity("filtered", {"filter": report.filter_weights_sha256, "generated_units": pool},
                    {"method": report.method, "threshold": report.threshold, "units": report.units})


def report_path(cfg: Config, units: int) -> Path:
    """Where ``prepare_filtered`` writes the report of ratio ``units``."""
    return cfg.path(cfg.results_dir) / FOLDER / f"filtered-k{units}.json"


def prepare_filtered(cfg: Config, units: int, progress: bool = False) -> FilterReport:
    """Train (or reuse) the filter and grow the raw pool as needed; write <results_dir>/filter/filtered-k{units}.json
    (the report) atomically; return it."""
    _, report = _filtered(cfg, units, grow=True, progress=progress)
    write_json(report_path(cfg, units), report.to_dict() | {"identity": selection_identity(cfg, report)})
    return report


def reports_of(records: list[dict[str, Any]]) -> dict[int, FilterReport]:
    """What the filter kept for each ratio, from the run records of the filtered arm (``data.filter``): the faces
    those runs trained on, not whatever report files are on disk."""
    reports = {}
    for record in records:
        saved = record.get("data", {}).get("filter")
        if saved:
            reports[int(saved["units"])] = FilterReport(**saved)
    return dict(sorted(reports.items()))


def kept_table(reports: dict[int, FilterReport]) -> str:
    """Markdown: per expression, the fraction of the first k units' faces the filter kept, then what each ratio read."""
    ks = list(reports)
    rows = [[name, *(f"{100 * reports[k].kept_fraction[name]:.1f} %" for k in ks)] for name in EMOTIONS]
    rows.append(["training faces selected", *(str(sum(reports[k].faces["train"].values())) for k in ks)])
    rows.append(["raw units read (cap)", *(f"{reports[k].raw_units} ({reports[k].max_units})" for k in ks)])
    rows.append(["short of", *(", ".join(f"{s}/{c} {n}" for s, per in reports[k].shortfall.items()
                                          for c, n in per.items()) or "nothing" for k in ks)])
    header = ("kept (threshold " + ", ".join(sorted({f"{r.threshold:g}" for r in reports.values()})) + ")",
              *(f"k={k}" for k in ks))
    accuracy = ", ".join(sorted({f"{100 * r.filter_stop_accuracy:.1f} %" for r in reports.values()}))
    return markdown_table(header, rows) + f"\n\nThe filter reads its own held-out training subjects at {accuracy}."
