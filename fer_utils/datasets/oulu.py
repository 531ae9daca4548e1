"""Oulu-CASIA NIR&VIS: ``[OriginalImg/]{VL,NI}/{Strong,Weak,Dark}/P###/{Anger,...}/NNN.jpeg``.

The expression folder is the label and frames run neutral -> apex (datasets.md §2), so the last
``frames`` frames of each sequence are kept (the usual 3 frames x 480 sequences = 1,440 images).
"""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from ..emotions import OULU_FOLDERS
from .base import Sample, SkipReport, check_root, missing_layout, require_samples, frame_names, usable_file

WHAT = "{VL,NI}/{Strong,Weak,Dark}/P###/{Anger,...,Surprise}/NNN.jpeg (optionally under OriginalImg/)"
MODALITIES = ("VL", "NI")


def find_base(root: Path) -> Path:
    """The folder holding VL/ and NI/: the root itself or its OriginalImg/ (B_OriginalImg/) level."""
    for base in (root, root / "OriginalImg", root / "B_OriginalImg"):
        if any((base / m).is_dir() for m in MODALITIES):
            return base
    raise missing_layout("oulu", root, WHAT)


def read_oulu(root: str | Path, modalities: Collection[str] = ("VL",), lightings: Collection[str] = ("Strong",),
              frames: int = 3, report: SkipReport | None = None) -> list[Sample]:
    """List the last ``frames`` frames of every sequence of the chosen modalities and lightings.

    Args:
        root: Oulu-CASIA folder (with or without the ``OriginalImg`` level).
        modalities: ``VL`` (visible light) and/or ``NI`` (near infrared).
        lightings: ``Strong``, ``Weak``, ``Dark``.
        frames: frames kept from the end (apex) of each sequence.
        report: collects skipped folders and files by reason.
    """
    root = check_root(root, "oulu", WHAT)
    report = report if report is not None else SkipReport("oulu")
    base = find_base(root)
    samples = []
    for mod in modalities:
        for light in lightings:
            folder = base / mod / light
            if not folder.is_dir():
                raise missing_layout("oulu", root, f"{mod}/{light}/ (preprocess.oulu_modalities/lightings)")
            samples += _subjects(folder, frames, report)
    return require_samples(samples, "oulu", root, report)


def _subjects(folder: Path, frames: int, report: SkipReport) -> list[Sample]:
    """Samples of every P### subject under one modality/lighting folder."""
    samples = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not (person.name.startswith("P") and person.name[1:].isdigit()):
            report.skip("folder not named P### (subject)", person)
            continue
        for seq in sorted(p for p in person.iterdir() if p.is_dir()):
            if seq.name not in OULU_FOLDERS:
                report.skip(f"unknown expression folder {seq.name!r}", seq)
                continue
            files = frame_names(seq, report)
            if not files:
                report.skip("sequence without images", seq)
            sequence = f"{folder.parent.name}/{folder.name}/{person.name}/{seq.name}"
            for path in (seq / n for n in files[-frames:] if usable_file(seq / n, report)):
                samples.append(Sample(str(path), "oulu", person.name, OULU_FOLDERS[seq.name],
                                      extra={"sequence": sequence}))
    return samples
