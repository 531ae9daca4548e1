"""``python -m fer_utils generate``: the generated database of paper §3.1, unit by unit.

A unit is 144 StyleGAN2 identities, each translated by StarGAN to the six expressions and split
109/10/25 like the real subjects. Layout (what ``datasets.read_folder`` reads, splits included)::

    <data.generated>/<split>/<class>/u{unit:02d}_id{k:03d}/u{unit:02d}_id{k:03d}_<class>.png
    <data.generated>/MANIFEST.json      weights + sha256, psi, seed, counts, crop fallbacks, speed

Subject folders start with ``u{unit:02d}_`` so an experiment takes units < k for ratio k. Each unit
is written under a hidden temp folder of its process, moved into place, then marked done
(``.u{unit:02d}.done.json``, with the unit's identity: weights, settings, code; ``fer_utils.identity``);
an interrupted unit is removed and redone, so a rerun resumes and never mixes partial units, and a unit of
other weights, settings or code is named and made again. One process writes the database at a time.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..config import Config
from ..emotions import EMOTIONS
from ..identity import identity, mismatch
from ..preprocess import SPLITS, scale_counts
from ..runtime import (
    check_writable,
    doing,
    exclusive,
    file_sha256,
    remove_stale_temporaries,
    temporary_prefix,
    versions,
    write_json,
)
from .pipeline import Pipeline, latents, load_pipeline

IDENTITIES_PER_UNIT = 144  # paper §3.1: as many as the real subjects
SPLIT_COUNTS = (109, 10, 25)  # paper §4.1
MANIFEST = "MANIFEST.json"
DONE = re.compile(r"^\.u(\d+)\.done\.json$")  # the mark of a unit written completely
UNIT_PATTERN = re.compile(r"^generated:u(\d+)_")  # subject ids of the faces written here, as the adapter names them


def subject_name(unit: int, k: int) -> str:
    """Folder / file stem of identity ``k`` of ``unit``; experiments select units by its prefix."""
    return f"u{unit:02d}_id{k:03d}"


def unit_of(subjects: np.ndarray) -> np.ndarray:
    """Generated unit index of each subject id ``generated:uNN_...`` (one unit = 144 identities)."""
    units = []
    for subject in subjects:
        match = UNIT_PATTERN.match(str(subject))
        if match is None:
            raise ValueError(f"generated subject {subject!r} is not named uNN_<identity>; "
                             "was the folder written by `python -m fer_utils generate`?")
        units.append(int(match.group(1)))
    return np.array(units, dtype=np.int64)


def split_of(n: int = IDENTITIES_PER_UNIT) -> list[str]:
    """Split name of each identity index of a unit: the first 109 train, 10 val, 25 test (scaled to n)."""
    return [name for name, count in zip(SPLITS, scale_counts(SPLIT_COUNTS, n)) for _ in range(count)]


def generate_database(cfg: Config, out: str | Path | None = None, progress: bool = True,
                      units: int | None = None) -> Path:
    """Write (or complete) units 0 .. units-1 of generated faces; return the database folder.

    Args:
        cfg: ``generate`` (units, truncation_psi, batch_size, weights, seed), ``preprocess.margin``,
            ``gan`` (StarGAN ``.ckpt`` architecture), ``device``.
        out: database folder instead of ``data.generated``.
        progress: show a tqdm bar over identities.
        units: units to have on disk (default ``generate.units``): ratio k trains on k. Units already
            written are kept as they are, and so are units beyond ``units``.
    """
    root = Path(out) if out is not None else cfg.path(cfg.data.generated)
    units = cfg.generate.units if units is None else units
    check_writable(root, "data.generated")  # before loading the generators, not after a unit's work
    pipe, paths = load_pipeline(cfg)
    ident = identity("generated", {model: file_sha256(path) for model, path in paths.items()},
                     {"truncation_psi": pipe.psi, "seed": cfg.generate.seed, "stargan_size": pipe.size,
                      "margin": pipe.margin})
    with exclusive(root, "the generated database"):  # a second writer waits, then finds these units done
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(root)
        done, written = _current_units(root, ident), []
        bar = tqdm(total=units * IDENTITIES_PER_UNIT, desc="generate", disable=not progress)
        for unit in range(units):
            if unit not in done:
                with doing(f"generate unit {unit}"):
                    done[unit] = dict(_write_unit(root, unit, pipe, cfg, bar), identity=ident)
                write_json(root / f".u{unit:02d}.done.json", done[unit])
                written.append(unit)
            bar.n = (unit + 1) * IDENTITIES_PER_UNIT
            bar.refresh()
        bar.close()
        manifest = _manifest(cfg, paths, pipe, done)
        write_json(root / MANIFEST, manifest)
    _report(root, manifest, done, written)
    return root


def _report(root: Path, manifest: dict[str, Any], done: dict[int, dict[str, Any]], written: list[int]) -> None:
    """Say what this call generated and what it reused."""
    if written:  # the rate of this call's units only: reused units took no time now
        rate = len(written) * IDENTITIES_PER_UNIT / max(sum(done[u]["seconds"] for u in written), 1e-9)
        print(f"generated {len(written)} units ({len(written) * IDENTITIES_PER_UNIT} identities x 6 expressions, "
              f"{rate:.1f} identities/s), reused {len(done) - len(written)}, in {root}; centred crop for "
              f"{manifest['crops'].get('centre', 0)} of {manifest['identities']}")
    else:
        print(f"reused {len(done)} units ({manifest['identities']} identities x 6 expressions) in {root}: "
              "nothing to generate")


def _current_units(root: Path, ident: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The units on disk made with identity ``ident``, by number; any other (other weights, settings or code, or
    an older version's) is named and deleted, to be made again when needed: one database never mixes two."""
    done = {}
    for marker in sorted(p for p in root.glob(".u*.done.json") if DONE.match(p.name)):  # this run's or earlier ones
        try:
            stats = json.loads(marker.read_text())
            unit = int(stats["unit"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            reason, unit = f"its mark is unreadable ({type(exc).__name__}: {exc})", int(DONE.match(marker.name)[1])
        else:
            reason = mismatch(stats.get("identity"), ident)
        if reason is None:
            done[unit] = stats
            continue
        print(f"generated unit {unit} in {root} is stale: {reason}; deleted, made again when needed")
        marker.unlink()
        _remove_unit(root, unit)
    return done


def _write_unit(root: Path, unit: int, pipe: Pipeline, cfg: Config, bar: tqdm) -> dict[str, Any]:
    """Generate one unit into a temp folder of this process, then move its subject folders into place; return its
    stats."""
    _remove_unit(root, unit)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=temporary_prefix(root / f"u{unit:02d}"), suffix=".tmp"))
    t0 = time.perf_counter()
    try:
        splits, crops = _draw_unit(tmp, unit, pipe, cfg, bar)
        for subject in sorted(tmp.glob("*/*/*")):
            dst = root / subject.relative_to(tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            subject.rename(dst)
    finally:  # a killed process leaves it to remove_stale_temporaries
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t0
    return {"unit": unit, "identities": IDENTITIES_PER_UNIT, "splits": dict(Counter(splits)), "crops": dict(crops),
            "seconds": seconds}


def _draw_unit(tmp: Path, unit: int, pipe: Pipeline, cfg: Config, bar: tqdm) -> tuple[list[str], Counter]:
    """Write the faces of ``unit`` under ``tmp``; return each identity's split and how its faces were cropped."""
    z = latents(cfg.generate.seed, unit, IDENTITIES_PER_UNIT, pipe.stylegan2.z_dim)
    splits, crops = split_of(), Counter()
    for lo in range(0, IDENTITIES_PER_UNIT, cfg.generate.batch_size):
        _, faces, how = pipe(z[lo:lo + cfg.generate.batch_size])
        crops.update("haar" if h == "haar" else "centre" for h in how)
        for k, six in enumerate(faces, start=lo):
            write_identity(tmp / splits[k], unit, k, six)
        bar.update(len(faces))
    return splits, crops


def _remove_unit(root: Path, unit: int) -> None:
    """Delete the subject folders of ``unit`` (what an interrupted or stale one left)."""
    for subject in root.glob(f"*/*/u{unit:02d}_id*"):
        shutil.rmtree(subject)


def write_identity(split_root: Path, unit: int, k: int, six: np.ndarray) -> None:
    """Write identity ``k`` of ``unit``, its six RGB expressions (6, S, S, 3), under ``split_root`` in the layout."""
    subject = subject_name(unit, k)
    for name, img in zip(EMOTIONS, six):
        _write_png(split_root / name / subject / f"{subject}_{name}.png", img)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    """Write one RGB face as PNG (OpenCV wants BGR); byte-identical for identical pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def _manifest(cfg: Config, paths: dict[str, str], pipe: Pipeline, units: dict[int, dict]) -> dict[str, Any]:
    """What the database holds and how it was made."""
    crops, splits = Counter(), Counter()
    for stats in units.values():
        crops.update(stats["crops"])
        splits.update(stats["splits"])
    seconds = sum(s["seconds"] for s in units.values())
    identities = IDENTITIES_PER_UNIT * len(units)
    return {
        "layout": "<split>/<class>/u{unit:02d}_id{k:03d}/u{unit:02d}_id{k:03d}_<class>.png",
        "weights": {model: {"path": path, "sha256": file_sha256(path)} for model, path in paths.items()},
        "truncation_psi": pipe.psi, "seed": cfg.generate.seed, "units": len(units),
        "identities_per_unit": IDENTITIES_PER_UNIT,
        "identities": identities, "images": identities * len(EMOTIONS), "classes": list(EMOTIONS),
        "identities_per_split": dict(splits), "crops": dict(crops), "stargan_size": pipe.size,
        "margin": pipe.margin, "seconds": seconds, "identities_per_s": identities / seconds if seconds else 0.0,
        "per_unit": units, "device": str(pipe.device), "versions": versions(),
    }
