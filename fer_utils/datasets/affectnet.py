"""AffectNet (manual release): ``Manually_Annotated_Images/<dir>/<file>`` and
``Manually_Annotated_file_lists/{training,validation}.csv`` with a face box per row.

Codes 8/9/10 (None, Uncertain, No-Face) are not expressions and are counted as skipped
(docs/datasets.md). Every image is a different person, so the subject is the file name.
"""
from __future__ import annotations

import csv
from collections.abc import Collection
from pathlib import Path

from ..emotions import AFFECTNET_CODES, AFFECTNET_NON_EXPRESSION
from .base import Sample, SkipReport, check_root, keep_label, missing_layout, require_samples, usable_file

WHAT = "Manually_Annotated_file_lists/{training,validation}.csv and Manually_Annotated_Images/"
HEADER = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
          "expression", "valence", "arousal")
LISTS = {"training": "train", "validation": "val"}
NON_EXPRESSION = {8: "None", 9: "Uncertain", 10: "No-Face"}


def _find(root: Path, names: tuple[str, ...], is_dir: bool) -> Path | None:
    """First existing candidate under root."""
    for name in names:
        path = root / name
        if path.is_dir() if is_dir else path.is_file():
            return path
    return None


def _rows(path: Path) -> list[dict[str, str]]:
    """Rows of a file list; a headerless copy (seen for validation.csv) gets the usual columns."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if rows and rows[0] and rows[0][0].strip() == HEADER[0]:
        names, rows = [c.strip() for c in rows[0]], rows[1:]
    else:
        names = list(HEADER)
    return [dict(zip(names, row)) for row in rows if row]


def read_affectnet(root: str | Path, lists: Collection[str] = ("training", "validation"),
                   include_neutral: bool = False, include_contempt: bool = False,
                   report: SkipReport | None = None) -> list[Sample]:
    """List the manually annotated images of the chosen file lists, with their face boxes.

    Args:
        root: AffectNet folder (CSV lists in ``Manually_Annotated_file_lists/`` or the root).
        lists: ``training`` and/or ``validation`` (the de facto test set); kept in ``extra["split"]``.
        include_neutral, include_contempt: keep codes 0 / 7 (counted as excluded otherwise).
        report: collects non-expressions, missing images and bad rows by reason.
    """
    root = check_root(root, "affectnet", WHAT)
    report = report if report is not None else SkipReport("affectnet")
    images = _find(root, ("Manually_Annotated_Images", "Manually_Annotated", "."), is_dir=True)
    samples = []
    for name in lists:
        csv_path = _find(root, (f"Manually_Annotated_file_lists/{name}.csv", f"{name}.csv"), is_dir=False)
        if csv_path is None:
            raise missing_layout("affectnet", root, f"{name}.csv ({WHAT})")
        for i, row in enumerate(_rows(csv_path)):
            sample = _row_sample(row, images, f"{csv_path}:{i + 2}", LISTS[name], report)
            if sample and keep_label(sample.label, include_neutral, include_contempt, report, sample.path):
                samples.append(sample)
    return require_samples(samples, "affectnet", root, report)


def _row_sample(row: dict[str, str], images: Path, where: str, split: str, report: SkipReport) -> Sample | None:
    """The sample of one CSV row, or None after recording why it is skipped."""
    try:
        code = int(row["expression"])
        box = tuple(int(float(row[k])) for k in ("face_x", "face_y", "face_width", "face_height"))
        rel = row["subDirectory_filePath"].strip()
    except (KeyError, ValueError, TypeError):
        report.skip("unparseable CSV row", where)
        return None
    if code in AFFECTNET_NON_EXPRESSION:
        report.skip(f"not an expression ({code} {NON_EXPRESSION[code]})", where)
        return None
    if code not in AFFECTNET_CODES:
        report.skip(f"unknown AffectNet expression code {code}", where)
        return None
    path = images / rel
    if not path.is_file():
        report.skip("image listed in the CSV is missing", path)
        return None
    if not usable_file(path, report):
        return None
    extra = {"split": split, "valence": _float(row.get("valence")), "arousal": _float(row.get("arousal"))}
    return Sample(str(path), "affectnet", Path(rel).stem, AFFECTNET_CODES[code], box=box, extra=extra)


def _float(text: str | None) -> float | None:
    """Valence/arousal value; -2 marks a missing one (docs/datasets.md)."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return None if value is None or value == -2 else value
