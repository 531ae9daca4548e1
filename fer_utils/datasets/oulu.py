"""Oulu-CASIA NIR&VIS: ``[OriginalImg/]{VL,NI}/{Strong,Weak,Dark}/P###/{Anger,...}/NNN.jpeg``.

The expression folder is the label and frames run neutral -> apex (docs/datasets.md), so the last
``frames`` frames of each sequence are kept (the usual 3 frames x 480 sequences = 1,440 images).
Every subject has all six expression folders: a missing one is counted as the frames it would give.
"""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from ..emotions import OULU_FOLDERS
from .base import Sample, SkipReport, check_root, frame_names, last_frames, missing_layout, require_samples

WHAT = "{VL,NI}/{Strong,Weak,Dark}/P###/{Anger,...,Surprise}/NNN.jpeg (optionally under OriginalImg/)"
MODALITIES = ("VL", "NI")


def find_base(root: Path) -> Path:
    """The folder holding VL/ and NI/: the root itself or its OriginalImg/ (B_OriginalImg/) level."""
    for base in (root, root / "OriginalImg", root / "B_OriginalImg"):
        if any((base / m).is_dir() for m in MODALITIES):
            return base
    raise missing_layout("oulu", root, WHAT)


def is_subject(name: str) -> bool:
    """Whether a folder name is a subject id such as ``P012``."""
    return name.startswith("P") and name[1:].isdigit()


def read_oulu(root: str | Path, modalities: Collection[str] = ("VL",), lightings: Collection[str] = ("Strong",),
              frames: int = 3, report: SkipReport | None = None) -> list[Sample]:
    """List the last ``frames`` frames of every sequence of the chosen modalities and lightings.

    Args:
        root: Oulu-CASIA folder (with or without the ``OriginalImg`` level).
        modalities: ``VL`` (visible light) and/or ``NI`` (near infrared).
        lightings: ``Strong``, ``Weak``, ``Dark``.
        frames: frames kept from the end (apex) of each sequence.
        report: collects skipped folders and files by reason, counted in images.
    """
    root = check_root(root, "oulu", WHAT)
    report = report if report is not None else SkipReport("oulu")
    base = find_base(root)
    folders = [base / mod / light for mod in modalities for light in lightings]
    for folder in folders:
        if not folder.is_dir():
            raise missing_layout("oulu", root, f"{folder.parent.name}/{folder.name}/ "
                                               "(preprocess.oulu_modalities/lightings)")
    people = {p.name for folder in folders for p in folder.iterdir() if p.is_dir() and is_subject(p.name)}
    samples = []
    for folder in folders:
        samples += _subjects(folder, people, frames, report)
    return require_samples(samples, "oulu", root, report)


def _subjects(folder: Path, people: set[str], frames: int, report: SkipReport) -> list[Sample]:
    """Samples of every P### subject under one modality/lighting folder; absent subjects are counted."""
    per_subject = len(OULU_FOLDERS) * frames
    persons, samples = sorted(p for p in folder.iterdir() if p.is_dir()), []
    for person in persons:
        if is_subject(person.name):
            samples += _sequences(person, frames, report)
        else:
            report.skip(f"folder not named P### (counted as a subject: {per_subject} images)", person, per_subject)
    for name in sorted(people - {p.name for p in persons}):
        report.skip(f"missing subject folder, present under another modality or lighting "
                    f"(counted as {per_subject} images)", folder / name, per_subject)
    return samples


def _sequences(person: Path, frames: int, report: SkipReport) -> list[Sample]:
    """Samples of one subject's six expression sequences; a missing or unknown folder is counted."""
    samples = []
    for seq in sorted(p for p in person.iterdir() if p.is_dir() and p.name not in OULU_FOLDERS):
        report.skip(f"unknown expression folder {seq.name!r}", seq, frames)
    for name, label in OULU_FOLDERS.items():
        seq = person / name
        if not seq.is_dir():
            report.skip(f"missing expression folder (counted as the {frames} frames it would give)", seq, frames)
            continue
        sequence = f"{person.parent.parent.name}/{person.parent.name}/{person.name}/{name}"
        paths = [seq / n for n in frame_names(seq, report)]
        samples += [Sample(str(path), "oulu", person.name, label, extra={"sequence": sequence, "earlier": earlier})
                    for path, earlier in last_frames(paths, frames, report, seq)]
    return samples
