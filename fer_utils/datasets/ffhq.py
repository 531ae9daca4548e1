"""FFHQ: ``thumbnails128x128/00000/00000.png`` (or ``images1024x1024/``, ``images/``), unlabelled.

Each image is a different person, so the subject is the image number (docs/datasets.md).
"""
from __future__ import annotations

from pathlib import Path

from .base import Sample, SkipReport, check_root, missing_layout, require_samples, usable_file

WHAT = "thumbnails128x128/ or images1024x1024/ (NNNNN/NNNNN.png)"
IMAGE_DIRS = ("thumbnails128x128", "images1024x1024", "images")


def read_ffhq(root: str | Path, report: SkipReport | None = None) -> list[Sample]:
    """List the FFHQ images (label None); the first image folder found is used.

    Args:
        root: FFHQ folder holding one of ``thumbnails128x128``, ``images1024x1024``, ``images``.
        report: collects empty and non-image files.
    """
    root = check_root(root, "ffhq", WHAT)
    report = report if report is not None else SkipReport("ffhq")
    folder = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if folder is None:
        raise missing_layout("ffhq", root, WHAT)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    samples = [Sample(str(p), "ffhq", p.stem, None) for p in files if usable_file(p, report)]
    return require_samples(samples, "ffhq", root, report)
