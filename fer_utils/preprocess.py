"""Paper §3.2 preprocessing: detect the face (OpenCV Haar), crop, gray, 64x64; cache; subject splits.

``load_database(cfg, name)`` lists a database through its adapter, then loads the cached crops
when their identity (the inputs' paths, sizes and mtimes, as make and rsync see them; the
preprocessing parameters; the cropping code) is unchanged, or crops them on every core and
caches them atomically, with each input's content hash for ``verify_cache`` (``check --verify``).
``real_splits(cfg)`` gives the paper's subject-independent RaFD + Oulu-CASIA split (109/10/25 subjects, §4.1).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from . import __version__
from .config import EXPERIMENT_DATABASES, Config, ConfigError, data_source, is_world_path, require_path
from .datasets import Sample, SkipReport, read_database
from .datasets.io import BadImage, FrameReader, failure_reason, with_stand_ins
from .emotions import ALL_LABELS, EMOTIONS
from .identity import digest, identity
from .report import markdown_table
from .runtime import (
    data_hash,
    file_sha256,
    quiet_worker,
    read_only,
    remove_stale_temporaries,
    temporary_prefix,
    usable_cores,
    write_json,
)

CASCADE = "haarcascade_frontalface_default.xml"
SPLITS = ("train", "val", "test")
CHUNK = 64  # samples per worker job; a video's frames are sorted into the same job
DETECT_SIDE = 320  # Haar runs on images shrunk to this longest side (faces fill >= 1/6 of it)
DETECT_MIN_SIDE = 128  # ... or enlarged to this shortest side: on 64-px StyleGAN2 faces it missed 1 in 7, at 128 none
MIN_NEIGHBORS = 3  # OpenCV's default; 5 missed 1-5 % more of the quick world's faces
NO_FACE = "centre (no face found)"
MANIFEST_FIELDS = ("path", "frame", "database", "subject", "label", "split", "crop")


# ---------------------------------------------------------------- face detection and crop
_THREAD = threading.local()  # one detector per thread: a CascadeClassifier must not run two detections at once


def face_detector() -> cv2.CascadeClassifier:
    """The stock frontal-face Haar cascade of this thread; raise if this OpenCV build ships none (opencv 5)."""
    cascade = getattr(_THREAD, "cascade", None)
    if cascade is None:
        folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
        cascade = cv2.CascadeClassifier(str(Path(folder) / CASCADE))
        if cascade.empty():
            raise RuntimeError(f"OpenCV Haar cascade {CASCADE} is missing or empty in {folder!r}: "
                               "opencv-python 5.x wheels ship no cascade files; install opencv-python<5 "
                               "(pip install -c constraints.txt -e .)")
        _THREAD.cascade = cascade
    return cascade


def detect_face(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """Box (x, y, w, h) of the largest frontal face in a gray or RGB image, or None when none is found."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    shortest, longest = min(gray.shape), max(gray.shape)
    scale = DETECT_MIN_SIDE / shortest if shortest < DETECT_MIN_SIDE else min(1.0, DETECT_SIDE / longest)
    resized = gray if scale == 1 else cv2.resize(gray, None, fx=scale, fy=scale,
                                                 interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    side = max(20, min(resized.shape) // 6)
    faces = face_detector().detectMultiScale(resized, scaleFactor=1.1, minNeighbors=MIN_NEIGHBORS,
                                             minSize=(side, side))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return tuple(int(round(v / scale)) for v in (x, y, w, h))


def crop_square(gray: np.ndarray, box: Sequence[int], margin: float, size: int) -> np.ndarray:
    """Square crop (gray or RGB) around ``box`` grown by ``margin`` x its side each way, edge-padded, resized."""
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1 + 2 * margin))))
    x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
    pad = max(0, -x0, -y0, x0 + side - gray.shape[1], y0 + side - gray.shape[0])
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    face = gray[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


def crop_face(gray: np.ndarray, margin: float, size: int,
              box: Sequence[int] | None = None) -> tuple[np.ndarray, str]:
    """Crop the largest detected face; else the database's box (AffectNet); else the centre (gray or RGB)."""
    found = detect_face(gray)
    if found is not None:
        return crop_square(gray, found, margin, size), "haar"
    if box is not None:
        return crop_square(gray, box, 0.0, size), "database box"
    return crop_square(gray, centre_box(gray), 0.0, size), NO_FACE


def centre_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """The largest centred square (x, y, w, h): where a face is taken to be when none is found."""
    side = min(image.shape[:2])
    return (image.shape[1] - side) // 2, (image.shape[0] - side) // 2, side, side


def _crop_job(job: tuple[list[Sample], float, int, bool]) -> list[tuple[np.ndarray | None, str]]:
    """Decode and crop one chunk of samples (top level, so worker processes can run it)."""
    samples, margin, size, colour = job
    read, out = FrameReader(colour), []
    for sample in samples:
        try:
            out.append(crop_face(read(sample), margin, size, sample.box))
        except BadImage as exc:
            out.append((None, str(exc)))
    return out


def crop_samples(samples: Sequence[Sample], margin: float, size: int, workers: int = 0,
                 desc: str = "crop", colour: bool = False) -> list[tuple[np.ndarray | None, str]]:
    """(crop or None, how it was cropped or why it failed) per sample, on ``workers`` processes; RGB if ``colour``."""
    face_detector()  # fail here, loudly, before any worker starts
    order = sorted(range(len(samples)), key=lambda i: (samples[i].path, samples[i].frame or 0))
    chunks = [order[i:i + CHUNK] for i in range(0, len(order), CHUNK)]
    jobs = [([samples[i] for i in chunk], margin, size, colour) for chunk in chunks]
    workers = min(workers or usable_cores(), len(jobs))
    if workers > 1:
        threads = cv2.getNumThreads()
        # Stop OpenCV's thread pool before forking (a child that touches an inherited pool waits
        # forever); the workers then run one OpenCV thread each, the pool already using every core.
        cv2.setNumThreads(1)
        try:
            with multiprocessing.get_context("fork").Pool(workers, quiet_worker) as pool:
                results = list(tqdm(pool.imap(_crop_job, jobs), total=len(jobs), desc=desc, leave=False))
        finally:
            cv2.setNumThreads(threads)
    else:
        results = [_crop_job(job) for job in tqdm(jobs, desc=desc, leave=False)]
    out: list[tuple[np.ndarray | None, str]] = [(None, "")] * len(samples)
    for chunk, result in zip(chunks, results):
        for i, item in zip(chunk, result):
            out[i] = item
    return out


# ---------------------------------------------------------------- the preprocessed set
@dataclass
class FaceSet:
    """Cropped faces of one or more databases, with a manifest row per face."""

    images: np.ndarray  # (N, H, W) uint8
    labels: np.ndarray  # (N,) int64 emotions index, -1 = unlabelled
    subjects: np.ndarray  # (N,) str "<database>:<subject>", unique across databases
    databases: np.ndarray  # (N,) str
    detected: np.ndarray  # (N,) bool, the Haar cascade found the face
    manifest: list[dict[str, Any]]  # path, frame, database, subject, label, split, crop
    report: SkipReport = field(default_factory=SkipReport)
    meta: dict[str, Any] = field(default_factory=dict)  # cache folder, timings, parameters

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def detection_rate(self) -> float:
        """Share of faces the Haar cascade found (the rest fell back to a box or the centre)."""
        return float(self.detected.mean()) if len(self) else 0.0

    def select(self, index: np.ndarray, split: str | None = None) -> FaceSet:
        """The faces at ``index`` (mask or indices), their manifest rows tagged with ``split``."""
        idx = np.arange(len(self))[index]
        rows = [dict(self.manifest[i], split=split) if split else self.manifest[i] for i in idx]
        return FaceSet(self.images[idx], self.labels[idx], self.subjects[idx], self.databases[idx],
                       self.detected[idx], rows, self.report, dict(self.meta, split=split))

    def class_counts(self) -> dict[str, int]:
        """Number of faces per class name, in label order."""
        counts = np.bincount(self.labels[self.labels >= 0], minlength=len(ALL_LABELS))
        return {ALL_LABELS[i]: int(c) for i, c in enumerate(counts) if c or i < len(EMOTIONS)}

    @classmethod
    def concat(cls, sets: Sequence[FaceSet]) -> FaceSet:
        """One set holding every face of ``sets`` (skip reports merged)."""
        report = SkipReport("+".join(s.report.name for s in sets))
        for s in sets:
            report.merge(s.report)
        return cls(*(np.concatenate([getattr(s, f) for s in sets]) for f in
                     ("images", "labels", "subjects", "databases", "detected")),
                   [row for s in sets for row in s.manifest], report, {"parts": [s.meta for s in sets]})


def _faceset(images: np.ndarray, labels: np.ndarray, detected: np.ndarray, rows: list[dict[str, Any]],
             report: SkipReport, meta: dict[str, Any]) -> FaceSet:
    """Assemble a FaceSet from arrays and manifest rows."""
    databases = np.array([r["database"] for r in rows], dtype=str)
    subjects = np.array([f"{r['database']}:{r['subject']}" for r in rows], dtype=str)
    return FaceSet(images, labels.astype(np.int64), subjects, databases, detected.astype(bool), rows, report, meta)


# ---------------------------------------------------------------- cache
def cache_key(samples: Sequence[Sample], size: int, margin: float) -> str:
    """The digest of the crops' identity (``fer_utils.identity``): the inputs as make and rsync see them (path, size,
    mtime, frame, label, subject, box; the earlier frames that may stand in for an unreadable one), the crop
    parameters and the cropping code. Content is not read here (``verify_cache`` re-hashes it)."""
    settings = {"cascade": CASCADE, "detect": [DETECT_SIDE, DETECT_MIN_SIDE, MIN_NEIGHBORS], "image_size": size,
                "margin": margin}
    h = hashlib.sha256()
    stats: dict[str, str] = {}

    def stat(path: str) -> str:
        if path not in stats:
            st = os.stat(path)
            stats[path] = f"{st.st_size}:{st.st_mtime_ns}"
        return stats[path]

    for s in samples:
        earlier = "|".join(f"{p}:{stat(p)}" for p in s.extra.get("earlier", ()))
        h.update(f"{s.path}|{stat(s.path)}|{s.frame}|{s.label}|{s.subject}|{s.box}|{earlier}\n".encode())
    return digest(identity("crops", {"files": h.hexdigest()}, settings))


def content_hashes(samples: Sequence[Sample]) -> dict[str, str]:
    """sha256 (16 hex digits) of every file the samples read, by path: what ``verify_cache`` compares against."""
    paths = sorted({s.path for s in samples} | {p for s in samples for p in s.extra.get("earlier", ())})
    return {path: file_sha256(path)[:16] for path in paths}


def verify_cache(cfg: Config, name: str) -> list[str]:
    """Re-hash the content of every input file of ``name``'s current cache; one line per file whose content
    changed under the size and mtime the cache key saw (a same-size edit with its time restored), else none."""
    report = SkipReport(name)
    samples = read_database(name, database_root(cfg, name), cfg, report)
    folder = cfg.path(cfg.data.cache) / f"{name}-{cache_key(samples, cfg.preprocess.image_size, cfg.preprocess.margin)}"
    try:
        recorded = json.loads((folder / "meta.json").read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # not cropped yet, or by an older version: nothing kept to be wrong about
    return [f"data.{name}: {path} changed content (sha256 {was} -> {now}) under an unchanged size and mtime; "
            f"its cached crop in {folder} is stale: delete that folder" for path, was in recorded.items()
            if (now := file_sha256(path)[:16] if os.path.exists(path) else "missing") != was]


def _save_cache(folder: Path, images: np.ndarray, labels: np.ndarray, detected: np.ndarray,
                rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Write faces.npz, manifest.csv and meta.json into a temp folder, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=temporary_prefix(folder), suffix=".tmp"))
    try:
        np.savez(tmp / "faces.npz", images=images, labels=labels, detected=detected)
        with (tmp / "manifest.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, MANIFEST_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        write_json(tmp / "meta.json", meta)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():
                raise
            # another process cached the same inputs first; its folder is complete and identical
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_cache(folder: Path, report: SkipReport) -> FaceSet | None:
    """Read a cache folder written by ``_save_cache``; a damaged one is named, deleted and None returned."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        with np.load(folder / "faces.npz") as arrays:
            images, labels, detected = arrays["images"], arrays["labels"], arrays["detected"]
        with (folder / "manifest.csv").open(newline="") as fh:
            rows = [dict(r, frame=int(r["frame"]) if r["frame"] else None, label=int(r["label"]))
                    for r in csv.DictReader(fh)]
        if not len(images) == len(labels) == len(detected) == len(rows):
            raise ValueError(f"{len(images)} faces but {len(rows)} manifest rows")
        skipped = SkipReport.from_dict(meta["skipped"])
    except Exception as exc:  # noqa: BLE001 - any damage (truncated npz, edited csv, bad JSON): crop again
        if read_only():
            print(f"cache {folder} is unreadable ({type(exc).__name__}: {exc}); cropping in memory")
            return None
        print(f"deleted cache {folder}: unreadable ({type(exc).__name__}: {exc}); cropping again")
        shutil.rmtree(folder, ignore_errors=True)
        return None
    report.merge(skipped)
    return _faceset(images, labels, detected, rows, report, dict(meta, cached=True, folder=str(folder)))


# ---------------------------------------------------------------- one database
def _crop_all(name: str, samples: list[Sample], cfg: Config, key: str) -> tuple:
    """Crop every sample; return arrays, manifest rows, the preprocessing skips and meta."""
    pp, report = cfg.preprocess, SkipReport(name)
    t0 = time.perf_counter()
    results = crop_samples(samples, pp.margin, pp.image_size, pp.workers, desc=name)
    samples, results = with_stand_ins(samples, results, lambda todo: crop_samples(
        todo, pp.margin, pp.image_size, pp.workers, desc=f"{name} stand-ins"), report)
    seconds = time.perf_counter() - t0
    keep = [i for i, (img, _) in enumerate(results) if img is not None]
    for img, why in results:
        if img is None:
            report.skip(failure_reason(why), why)
    images = np.stack([results[i][0] for i in keep]) if keep else np.zeros((0, pp.image_size, pp.image_size), np.uint8)
    labels = np.array([-1 if samples[i].label is None else samples[i].label for i in keep], np.int64)
    detected = np.array([results[i][1] == "haar" for i in keep], bool)
    rows = [{"path": samples[i].path, "frame": samples[i].frame, "database": name, "subject": samples[i].subject,
             "label": int(labels[j]), "split": samples[i].extra.get("split", ""), "crop": results[i][1]}
            for j, i in enumerate(keep)]
    crops = {how: sum(r["crop"] == how for r in rows) for how in ("haar", "database box", NO_FACE)}
    meta = {"database": name, "key": key, "fer_utils": __version__, "preprocess": dataclasses.asdict(pp),
            "images": len(keep), "crops": crops, "detection_rate": float(detected.mean()) if keep else 0.0,
            "seconds": seconds, "images_per_s": len(samples) / seconds if seconds else 0.0,
            "skipped": report.to_dict(), "files": content_hashes(samples)}
    return images, labels, detected, rows, report, meta


def load_database(cfg: Config, name: str, root: str | Path | None = None, include_neutral: bool = False) -> FaceSet:
    """Preprocessed faces of one database: from the cache when inputs and parameters match.

    Args:
        cfg: ``cfg.data.<name>`` (root), ``cfg.data.cache``, ``cfg.preprocess`` (size, margin,
            frames, workers, cameras, modalities, lightings).
        name: an adapter name (rafd, oulu, mmi, ckplus, affectnet, ffhq, fer2013, folder, generated).
        root: the database folder, instead of ``cfg.data.<name>``.
        include_neutral: keep neutral and contempt as well as the six classes.
    """
    if root is None:
        if not hasattr(cfg.data, name):
            raise ConfigError(f"data.{name} is not a configured path; pass root= for database {name!r}")
        root = database_root(cfg, name)
    report = SkipReport(name)
    samples = read_database(name, root, cfg, report, include_neutral)
    key = cache_key(samples, cfg.preprocess.image_size, cfg.preprocess.margin)
    folder = cfg.path(cfg.data.cache) / f"{name}{'-all' if include_neutral else ''}-{key}"
    if not read_only():  # --status, --plan and check crop in memory what is not cached, and keep nothing
        remove_stale_temporaries(folder.parent)
    faces = _load_cache(folder, report) if (folder / "meta.json").is_file() else None
    if faces is None:
        images, labels, detected, rows, crop_report, meta = _crop_all(name, samples, cfg, key)
        if not read_only():
            _save_cache(folder, images, labels, detected, rows, meta)
        report.merge(crop_report)
        print(f"{name}: {len(rows)} faces in {meta['seconds']:.1f} s ({meta['images_per_s']:.0f} images/s), "
              f"face found in {meta['detection_rate']:.1%}; {report.summary()}")
        faces = _faceset(images, labels, detected, rows, report, dict(meta, cached=False, folder=str(folder)))
    faces.meta["source"] = {"source": data_source(cfg, name) if hasattr(cfg.data, name) else "your files",
                            "path": str(root), "files": len({s.path for s in samples}),
                            "hash": data_hash({name: faces})}
    return faces


def data_sources(sets: Mapping[str, FaceSet]) -> dict[str, dict[str, Any]]:
    """Per database, where the faces of ``sets`` came from: source (embedded world or your files), path,
    file count and a hash of the preprocessed faces, as ``load_database`` recorded it."""
    found: dict[str, dict[str, Any]] = {}

    def walk(meta: dict[str, Any]) -> None:
        for part in meta.get("parts", []):
            walk(part)
        if "source" in meta:
            found[meta["database"]] = meta["source"]

    for faces in sets.values():
        walk(faces.meta)
    return dict(sorted(found.items()))


# ---------------------------------------------------------------- subject-independent splits
def scale_counts(counts: Sequence[int], n: int) -> list[int]:
    """Scale split sizes to ``n`` subjects proportionally (largest remainder), at least 1 each."""
    if n < len(counts):
        raise ValueError(f"{n} subjects cannot fill {len(counts)} splits with at least one subject each")
    if sum(counts) == n:
        return list(counts)
    raw = np.asarray(counts, float) * n / sum(counts)
    out = np.maximum(1, np.floor(raw)).astype(int)
    while out.sum() < n:
        out[np.argmax(raw - out)] += 1
    while out.sum() > n:
        out[np.argmax(np.where(out > 1, out - raw, -np.inf))] -= 1
    return out.tolist()


def split_subjects(subjects: Sequence[str] | np.ndarray, counts: Sequence[int] = (109, 10, 25), seed: int = 0,
                   names: Sequence[str] = SPLITS) -> dict[str, list[str]]:
    """Assign each distinct subject to one split, seeded (paper §4.1: 109/10/25 subjects).

    Args:
        subjects: subject ids, repeats allowed (one per face is fine).
        counts: subjects per split; scaled proportionally when they do not sum to the number
            of distinct subjects (e.g. 109/10/25 of the paper's 144).
        seed: permutation seed (``cfg.split.seed``).
        names: split names, one per count.
    """
    unique = sorted(set(map(str, subjects)))
    sizes = scale_counts(counts, len(unique))
    order = np.random.default_rng(seed).permutation(len(unique))
    bounds = np.cumsum([0, *sizes])
    return {name: sorted(unique[i] for i in order[lo:hi]) for name, lo, hi in zip(names, bounds[:-1], bounds[1:])}


def _check_split(part: FaceSet, split: str) -> None:
    """Refuse an empty split or one missing a class (never a silently smaller dataset)."""
    counts = part.class_counts()
    missing = [name for name in EMOTIONS if not counts.get(name)]
    if not len(part) or missing:
        raise ValueError(f"split {split!r} has {len(part)} faces and no {', '.join(missing) or 'faces'}: "
                         "use more subjects (world.*_subjects or your data) or other split sizes")


def real_splits(cfg: Config, databases: Sequence[str] = ("rafd", "oulu")) -> dict[str, FaceSet]:
    """RaFD + Oulu-CASIA faces split by subject into train/val/test (paper §4.1, ``cfg.split``)."""
    faces = FaceSet.concat([load_database(cfg, name) for name in databases])
    sc = cfg.split
    units = split_subjects(faces.subjects, (sc.train_subjects, sc.val_subjects, sc.test_subjects), sc.seed)
    out = {}
    for split, members in units.items():
        out[split] = faces.select(np.isin(faces.subjects, members), split=split)
        _check_split(out[split], split)
    return out


# ---------------------------------------------------------------- every database of the experiments
def summary_rows(sets: dict[str, FaceSet]) -> list[list[str]]:
    """Database, faces, detection rate, crops that fell back, skipped: one row per database."""
    return [[name, str(len(s)), f"{s.detection_rate:.1%}", str(int((~s.detected).sum())), str(s.report.total)]
            for name, s in sets.items()]


SUMMARY_HEADER = ("database", "images", "detection rate", "fallback crops", "skipped")


def database_root(cfg: Config, name: str) -> Path:
    """The existing folder of ``data.<name>``, or a ``DataError`` saying what to run or fix."""
    hint = (f"run `python -m fer_utils world --preset {cfg.preset}`" if is_world_path(cfg, name)
            else f"point data.{name} at your copy; layouts: docs/datasets.md")
    return require_path(cfg, f"data.{name}", hint)


def preprocess_all(cfg: Config, databases: Sequence[str] = EXPERIMENT_DATABASES) -> dict[str, FaceSet]:
    """Preprocess (or load from the cache) every database the experiments use; print a summary."""
    for name in databases:  # check every path before spending time on the first database
        database_root(cfg, name)
    sets = {name: load_database(cfg, name) for name in databases}
    print(markdown_table(SUMMARY_HEADER, summary_rows(sets)))
    for s in sets.values():
        if s.report.total:
            print(s.report.summary())
    return sets
