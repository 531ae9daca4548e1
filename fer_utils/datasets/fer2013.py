"""FER2013: one ``fer2013.csv`` (``emotion,pixels,Usage``), a 48x48 gray face per row.

There are no subject ids, so each row is its own subject; ``Usage`` (Training, PublicTest,
PrivateTest) is kept in ``extra["split"]`` (docs/datasets.md).
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..emotions import FER2013_CODES
from .base import Sample, SkipReport, check_root, keep_label, missing_layout, require_samples

WHAT = "fer2013.csv (columns emotion, pixels, Usage), or the folder holding it"
SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def read_fer2013(root: str | Path, include_neutral: bool = False, report: SkipReport | None = None) -> list[Sample]:
    """List the FER2013 rows as samples (path = the CSV, frame = the row number).

    Args:
        root: folder holding ``fer2013.csv`` (or its ``fer2013/`` subfolder), or the CSV itself.
        include_neutral: keep code 6 (counted as excluded otherwise).
        report: collects bad rows and unknown codes by reason.
    """
    root = Path(root)
    if root.is_file():
        csv_path = root
    else:
        root = check_root(root, "fer2013", WHAT)
        csv_path = next((p for p in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv") if p.is_file()), None)
        if csv_path is None:
            raise missing_layout("fer2013", root, WHAT)
    report = report if report is not None else SkipReport("fer2013")
    samples = []
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]  # icml_face_data.csv: " pixels"
        if not {"emotion", "pixels"} <= set(reader.fieldnames):
            raise missing_layout("fer2013", csv_path.parent, WHAT)
        for i, row in enumerate(reader):
            sample = _row(csv_path, i, row, report)
            if sample and keep_label(sample.label, include_neutral, False, report, f"{csv_path}:{i + 2}"):
                samples.append(sample)
    return require_samples(samples, "fer2013", csv_path.parent, report)


def _row(csv_path: Path, i: int, row: dict[str, str], report: SkipReport) -> Sample | None:
    """The sample of one row, or None after recording why it is skipped."""
    where = f"{csv_path}:{i + 2}"
    try:
        code = int(row["emotion"])
    except (TypeError, ValueError):
        report.skip("unparseable emotion value", where)
        return None
    if code not in FER2013_CODES:
        report.skip(f"unknown FER2013 emotion code {code}", where)
        return None
    if len((row.get("pixels") or "").split()) != 48 * 48:
        report.skip("pixels are not 2,304 values (48x48)", where)
        return None
    usage = (row.get("Usage") or "").strip()
    return Sample(str(csv_path), "fer2013", f"{i:05d}", FER2013_CODES[code], frame=i,
                  extra={"pixels": row["pixels"], "split": SPLITS.get(usage, usage)})
