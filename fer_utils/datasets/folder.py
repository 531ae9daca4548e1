"""Generic class-per-folder layout: ``<root>/[<split>/]<class>/[<identity>/]<file>``.

This is what the GAN generation step writes (class folders named by ``emotions.ALL_LABELS``,
one folder per generated identity) and what many mirrors use (Kaggle FER2013, CK+48).
"""
from __future__ import annotations

from pathlib import Path

from ..emotions import LABEL_INDEX
from .base import Sample, SkipReport, check_root, keep_label, missing_layout, require_samples, usable_file

WHAT = "class folders (angry/, disgusted/, ... or split/class/) holding images"
ALIASES: dict[str, int] = {**LABEL_INDEX, "anger": 0, "disgust": 1, "fear": 2, "happiness": 3, "sadness": 4,
                           "surprise": 5, "contempt": 7}


def class_index(name: str) -> int | None:
    """Label index of a class folder name (``angry``, ``Anger``, ``surprise``...), else None."""
    return ALIASES.get(name.strip().lower())


def read_folder(root: str | Path, database: str = "folder", include_neutral: bool = False,
                include_contempt: bool = False, report: SkipReport | None = None) -> list[Sample]:
    """List images by class folder; a folder between class and file is the subject (identity).

    Args:
        root: folder of class folders, or of split folders (train/, val/, ...) of class folders.
        database: name stored in each sample (e.g. ``generated``).
        include_neutral, include_contempt: keep labels 6 / 7 (counted as excluded otherwise).
        report: collects unknown class folders and bad files by reason.
    """
    root = check_root(root, database, WHAT)
    report = report if report is not None else SkipReport(database)
    tops = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if any(class_index(p.name) is not None for p in tops):
        groups = [("", root)]
    else:
        groups = [(p.name, p) for p in tops]
    samples = []
    for split, folder in groups:
        samples += _classes(folder, split, database, include_neutral, include_contempt, report)
    if not samples and not report.total:
        raise missing_layout(database, root, WHAT)
    return require_samples(samples, database, root, report)


def _classes(folder: Path, split: str, database: str, include_neutral: bool, include_contempt: bool,
             report: SkipReport) -> list[Sample]:
    """Samples under the class folders of one (split) folder."""
    samples = []
    for cls in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = class_index(cls.name)
        files = sorted(p for p in cls.rglob("*") if p.is_file())
        if label is None:
            report.skip(f"unknown class folder {cls.name!r}", cls, n=len(files))
            continue
        for path in files:
            if not usable_file(path, report) or not keep_label(label, include_neutral, include_contempt, report, path):
                continue
            rel = path.relative_to(cls)
            subject = rel.parts[0] if len(rel.parts) > 1 else path.stem
            samples.append(Sample(str(path), database, subject, label, extra={"split": split} if split else {}))
    return samples
