"""Colour faces for GAN training, cropped once and cached (a resumed run must not re-crop 20k images).

StarGAN learns expressions from AffectNet-like faces of the training list, cropped like the real
data (Haar, else the database box, margin ``preprocess.margin``), with 7 domains: the six classes
and neutral (contempt and the validation list are left out, counted). StyleGAN2 learns identities
from FFHQ-like faces, which are already aligned, so the whole image is only resized (as NVlabs
trains on FFHQ).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np

from ..config import Config, DataError
from ..datasets import Sample, SkipReport, read_database
from ..datasets.io import BadImage, FrameReader, failure_reason
from ..emotions import ALL_LABELS, CONTEMPT, NEUTRAL
from ..preprocess import cache_key, crop_samples, database_root
from ..runtime import atomic_path, remove_stale_temporaries

STARGAN_DOMAINS: tuple[str, ...] = ALL_LABELS[:7]  # six expressions + neutral; index = emotions label
HELD_OUT = frozenset({"val", "test"})  # AffectNet's validation list: the quality metrics' unseen faces


def gan_faces(cfg: Config, database: str, labelled: bool, held_out: bool = False,
              strongest_share: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 faces (N, R, R, 3) at ``gan.resolution`` and labels (N,) (-1 if unlabelled), cached.

    Args:
        cfg: ``data.<database>`` (root), ``data.cache``, ``gan.resolution``, ``preprocess.margin/workers``.
        database: ``affectnet`` (cropped, labelled) or ``ffhq`` (aligned, resized whole).
        labelled: keep neutral as domain 6 and drop contempt (StarGAN); False for StyleGAN2.
        held_out: the faces GAN training never sees (AffectNet's validation list) instead of the others.
        strongest_share: of each expression's faces, only this share farthest from neutral (see
            ``strongest_by_valence_arousal``); 1 keeps all.
    """
    root = database_root(cfg, database)
    samples, report = gan_samples(cfg, database, labelled, held_out, strongest_share)
    aligned = not labelled
    size, margin = cfg.gan.resolution, cfg.preprocess.margin
    key = cache_key(samples, size, -1.0 if aligned else margin)  # -1: whole image, no crop
    path = cfg.path(cfg.data.cache) / f"gan-{database}{'-heldout' if held_out else ''}-{size}-{key}.npz"
    remove_stale_temporaries(path.parent)
    cached = _load(path) if path.is_file() else None
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    if aligned:
        read = FrameReader(colour=True)
        crops = [_resized(read, s, size) for s in samples]
    else:
        crops = crop_samples(samples, margin, size, cfg.preprocess.workers, desc=f"{database} (colour)", colour=True)
    keep = [i for i, (img, _) in enumerate(crops) if img is not None]
    for img, why in crops:
        if img is None:
            report.skip(failure_reason(why), why)
    if not keep:
        raise DataError(f"data.{database}: no usable {'held-out ' if held_out else ''}faces in {root}; "
                          f"{report.summary()}")
    images = np.stack([crops[i][0] for i in keep])
    labels = np.array([-1 if samples[i].label is None else samples[i].label for i in keep], np.int64)
    _save(path, images, labels)
    print(f"{database}: {len(keep)} colour faces {size}x{size} in {time.perf_counter() - t0:.1f} s "
          f"(cached in {path.name}); {report.summary()}")
    return images, labels


def gan_samples(cfg: Config, database: str, labelled: bool, held_out: bool = False,
                strongest_share: float = 1.0) -> tuple[list[Sample], SkipReport]:
    """The samples ``gan_faces`` crops, in its order (each face's ``extra``: AffectNet's valence and arousal), and
    the report of those left out."""
    report = SkipReport(database)
    samples = read_database(database, database_root(cfg, database), cfg, report, include_neutral=labelled)
    for s in samples:
        if (s.extra.get("split") in HELD_OUT) != held_out:
            report.skip("held out for evaluation (validation list)" if not held_out else "used for training", s.path)
        elif labelled and s.label == CONTEMPT:
            report.skip("excluded class contemptuous (not a StarGAN domain)", s.path)
    samples = [s for s in samples if (s.extra.get("split") in HELD_OUT) == held_out
               and not (labelled and s.label == CONTEMPT)]
    if strongest_share < 1:
        samples = [samples[i] for i in strongest_by_valence_arousal(samples, strongest_share, report)]
    return samples, report


def valence_arousal_strength(samples: list[Sample]) -> np.ndarray:
    """Each face's distance from neutral's (valence, arousal) = (0, 0); -inf where either is not annotated."""
    va = np.array([[s.extra.get("valence"), s.extra.get("arousal")] for s in samples], dtype=float).reshape(-1, 2)
    return np.where(np.isnan(va).any(1), -np.inf, np.hypot(*np.nan_to_num(va).T))


def strongest_first(strength: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The faces ``idx`` that have both annotations, farthest from neutral first (ties in list order)."""
    idx = idx[np.isfinite(strength[idx])]
    return idx[np.argsort(-strength[idx], kind="stable")]


def strongest_by_valence_arousal(samples: list[Sample], share: float, report: SkipReport) -> list[int]:
    """Indices (in order) of every neutral face and, of each expression, the ceil(share * n) of its n faces
    farthest from neutral in (valence, arousal): StarGAN then learns its strongest examples, which AffectNet's
    annotations name without any model's judgement. Faces without both annotations are never chosen; what is
    left out is counted in ``report``; an expression left with no face is a ``DataError``."""
    strength = valence_arousal_strength(samples)
    labels = np.array([s.label for s in samples])
    kept = list(np.flatnonzero(labels == NEUTRAL))
    for label in sorted(set(labels.tolist()) - {NEUTRAL}):
        idx = np.flatnonzero(labels == label)
        chosen = strongest_first(strength, idx)[:math.ceil(share * len(idx))]
        if not len(chosen):
            raise DataError(f"data.affectnet: gan.stargan_strongest_share {share:g} ranks faces by valence and "
                            f"arousal, but none of the {len(idx)} {ALL_LABELS[label]} training faces has both "
                            f"(e.g. {samples[idx[0]].path}); set it to 1 to learn from every face")
        kept += list(chosen)
        for i in sorted(set(idx) - set(chosen)):
            report.skip("no valence-arousal annotation" if not np.isfinite(strength[i])
                        else f"weaker than the strongest {share:g} of its expression (gan.stargan_strongest_share)",
                        samples[i].path)
    return sorted(int(i) for i in kept)


def _resized(read: FrameReader, sample: Sample, size: int) -> tuple[np.ndarray | None, str]:
    """The whole image resized to ``size`` (aligned databases), or None and why it is unreadable."""
    try:
        return cv2.resize(read(sample), (size, size), interpolation=cv2.INTER_AREA), "whole"
    except BadImage as exc:
        return None, str(exc)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None after deleting a damaged cache file (named), so the faces are cropped again."""
    try:
        with np.load(path) as arrays:
            images, labels = arrays["images"], arrays["labels"]
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
    except Exception as exc:  # noqa: BLE001 - truncated, garbage or edited: crop again
        print(f"deleted cache {path}: unreadable ({type(exc).__name__}: {exc}); cropping again")
        path.unlink(missing_ok=True)
        return None
    return images, labels


def _save(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write the arrays as one .npz atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, images=images, labels=labels)
