"""RaFD: one flat folder of ``Rafd{angle}_{id}_{ethnicity}_{gender}_{emotion}_{gaze}.jpg``.

Labels live only in the file names (docs/datasets.md); ``090`` is the frontal camera.
"""
from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from ..emotions import RAFD_NAMES
from .base import Sample, SkipReport, check_root, keep_label, missing_layout, require_samples, usable_file

WHAT = "Rafd*.jpg files (e.g. Rafd090_01_Caucasian_female_angry_frontal.jpg)"


def parse_name(name: str) -> dict[str, str] | None:
    """Split a RaFD file name into its six fields, or None if it is not one."""
    fields = os.path.splitext(name)[0].split("_")
    if len(fields) != 6 or not fields[0].startswith("Rafd"):
        return None
    angle, subject, ethnicity, gender, emotion, gaze = fields
    return {"angle": angle[4:], "subject": subject, "ethnicity": ethnicity, "gender": gender,
            "emotion": emotion, "gaze": gaze}


def read_rafd(root: str | Path, cameras: Collection[str] = ("090",), include_neutral: bool = False,
              include_contempt: bool = False, report: SkipReport | None = None) -> list[Sample]:
    """List the RaFD images of the chosen cameras (all three gazes) with their labels.

    Args:
        root: the folder holding the ``Rafd*.jpg`` files.
        cameras: camera angles to keep (``090`` = frontal; the paper uses frontal faces only).
        include_neutral, include_contempt: keep labels 6 / 7 (counted as excluded otherwise).
        report: collects skipped files by reason.
    """
    root = check_root(root, "rafd", WHAT)
    report = report if report is not None else SkipReport("rafd")
    names = sorted(e.name for e in os.scandir(root) if e.is_file())  # DirEntry: no stat per file
    if not any(n.startswith("Rafd") for n in names):
        raise missing_layout("rafd", root, WHAT)
    samples = []
    for name in names:
        meta = parse_name(name)
        if meta is not None and meta["angle"] not in cameras:
            continue  # other cameras are a choice (preprocess.rafd_cameras), not bad input
        path = root / name
        if not usable_file(path, report):
            continue
        if meta is None:
            report.skip("file name not Rafd{angle}_{id}_{ethnicity}_{gender}_{emotion}_{gaze}", path)
        elif meta["emotion"] not in RAFD_NAMES:
            report.skip(f"unknown RaFD emotion {meta['emotion']!r}", path)
        elif keep_label(RAFD_NAMES[meta["emotion"]], include_neutral, include_contempt, report, path):
            samples.append(Sample(str(path), "rafd", meta["subject"], RAFD_NAMES[meta["emotion"]],
                                  extra={"gaze": meta["gaze"], "camera": meta["angle"]}))
    return require_samples(samples, "rafd", root, report)
