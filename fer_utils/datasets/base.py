"""What every adapter yields (``Sample``) and how it accounts for what it leaves out (``SkipReport``).

Bad input never passes silently: each adapter either raises ``DataError`` naming the file and the
setting, or records a counted skip with a reason and a few example paths. Skips are counted in
images, the unit of the dataset: a left-out sequence counts the frames the protocol would have taken
from it. Layouts and skip reasons: docs/datasets.md.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DataError
from ..emotions import CONTEMPT, NEUTRAL, label_name

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"})
# Files that ship beside the data (READMEs, licences, the world's manifest): not samples, not skips.
METADATA_SUFFIXES = frozenset({".json", ".txt", ".md", ".pdf", ".csv", ".xml", ".html", ".db", ".ini"})
EMPTY_FILE = "empty (zero-byte) file"
NOT_AN_IMAGE = "not an image file"


@dataclass(frozen=True)
class Sample:
    """One face image to preprocess: a file, a video frame (MMI) or a CSV row (FER2013)."""

    path: str
    database: str
    subject: str  # unique within the database (RaFD "01", Oulu "P012", CK+ "S005")
    label: int | None  # emotions index 0-7, None = unlabelled (FFHQ)
    frame: int | None = None  # 0-based frame of a video, or row of a CSV
    intensity: float | None = None
    box: tuple[int, int, int, int] | None = None  # x, y, w, h given by the database (AffectNet)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class SkipReport:
    """Counts of left-out items by reason, with a few examples of each, printed at the end."""

    name: str = ""
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 3

    def skip(self, reason: str, item: str | Path, n: int = 1) -> None:
        """Record ``n`` items left out for ``reason`` (``item`` is one example)."""
        self.counts[reason] += n
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(str(item))

    @property
    def total(self) -> int:
        """Number of items skipped for any reason."""
        return sum(self.counts.values())

    def merge(self, other: SkipReport) -> None:
        """Add another report's counts and examples to this one."""
        for reason, n in other.counts.items():
            self.counts[reason] += n
            shown = self.examples.setdefault(reason, [])
            shown.extend(other.examples.get(reason, [])[: self.max_examples - len(shown)])

    def summary(self) -> str:
        """One line: ``N skipped: reason (count, e.g. path); ...``."""
        if not self.total:
            return f"{self.name + ': ' if self.name else ''}0 skipped"
        parts = [f"{reason} ({n}, e.g. {self.examples[reason][0]})" for reason, n in self.counts.most_common()]
        return f"{self.name + ': ' if self.name else ''}{self.total} skipped: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the cache's JSON metadata."""
        return {"name": self.name, "counts": dict(self.counts), "examples": self.examples}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> SkipReport:
        """Rebuild a report saved with ``to_dict``."""
        return cls(payload.get("name", ""), Counter(payload["counts"]), dict(payload["examples"]))


def check_root(root: str | Path, database: str, what: str) -> Path:
    """Return ``root`` as a folder, or raise saying what was expected and which key to set."""
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"{database}: folder not found: {path}; expected {what}. "
                        f"Point data.{database} at your {database} copy, or run "
                        "`python -m fer_utils world --preset quick` for the embedded world")
    return path


def missing_layout(database: str, root: Path, what: str) -> DataError:
    """The error for a folder that exists but does not hold the database's layout."""
    return DataError(f"{database}: expected {what} in {root}; point data.{database} at your "
                     f"{database} folder (see docs/datasets.md for the layout)")


def keep_label(label: int, include_neutral: bool, include_contempt: bool, report: SkipReport,
               item: str | Path, n: int = 1) -> bool:
    """Whether to keep a labelled item; neutral and contempt are counted as excluded by default."""
    if (label == NEUTRAL and not include_neutral) or (label == CONTEMPT and not include_contempt):
        report.skip(f"excluded class {label_name(label)}", item, n)
        return False
    return True


def beside_the_data(name: str) -> bool:
    """Whether a file is one that ships with the data (hidden, metadata, licence): neither a sample nor a skip."""
    suffix = os.path.splitext(name)[1].lower()
    return name.startswith(".") or suffix in METADATA_SUFFIXES or name.upper().startswith("LICENSE")


def usable_file(path: Path, report: SkipReport, suffixes: frozenset[str] = IMAGE_SUFFIXES, n: int = 1) -> bool:
    """False (and ``n`` images skipped) for an empty file or a non-image; metadata files are ignored."""
    if beside_the_data(path.name):
        return False
    if path.suffix.lower() not in suffixes:
        report.skip(NOT_AN_IMAGE, path, n)
        return False
    if path.stat().st_size == 0:
        report.skip(EMPTY_FILE, path, n)
        return False
    return True


def frame_names(folder: Path, report: SkipReport) -> list[str]:
    """Image file names of a sequence folder in temporal (numeric-aware) order, without a stat each."""
    names = []
    for entry in os.scandir(folder):
        if not entry.is_file() or beside_the_data(entry.name):
            continue
        if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
            names.append(entry.name)
        else:
            report.skip(NOT_AN_IMAGE, entry.path)
    return sorted(names, key=lambda n: (len(n), n))


def last_frames(paths: list[Path], frames: int, report: SkipReport, sequence: Path) -> list[tuple[Path, list[str]]]:
    """The last ``frames`` frames, each with the earlier frames (nearest first) that stand in if it is unreadable.

    A sequence shorter than ``frames`` is used whole and the frames it lacks are counted, so every
    sequence gives the protocol's N images or says why not.
    """
    if len(paths) < frames:
        report.skip(f"sequence shorter than {frames} frames (counts the frames it lacks)", sequence,
                    frames - len(paths))
    start = max(0, len(paths) - frames)
    return [(path, [str(p) for p in reversed(paths[:start + k])]) for k, path in enumerate(paths[start:])]


def require_samples(samples: list[Sample], database: str, root: Path, report: SkipReport) -> list[Sample]:
    """Raise when filtering left nothing, so an empty dataset never reaches training."""
    if not samples:
        raise DataError(f"{database}: no usable samples in {root} ({report.summary()}); "
                        "check the layout and the preprocess filters (cameras, modalities, lightings)")
    return samples
