"""CK+: ``cohn-kanade-images/S###/###/S###_###_########.png`` + ``Emotion/S###/###/*_emotion.txt``.

Only the peak frame of 327 of the 593 sequences has an emotion file (docs/datasets.md); the last
``frames`` frames up to that peak are kept, the usual 3 per labelled sequence. An emotion file
whose image folder is missing is counted as the frames it would give.
"""
from __future__ import annotations

from pathlib import Path

from ..emotions import CKPLUS_CODES
from .base import Sample, SkipReport, check_root, frame_names, keep_label, last_frames, missing_layout, require_samples

WHAT = "cohn-kanade-images/S###/###/*.png and Emotion/S###/###/*_emotion.txt"
IMAGE_DIRS = ("cohn-kanade-images", "extended-cohn-kanade-images",
              "cohn-kanade-images/cohn-kanade-images", "extended-cohn-kanade-images/cohn-kanade-images")
LABEL_DIRS = ("Emotion", "Emotion_labels/Emotion", "Emotion_labels")


def _first_dir(root: Path, names: tuple[str, ...]) -> Path:
    """The first of ``names`` that exists under ``root`` (the archives unpack differently)."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise missing_layout("ckplus", root, WHAT)


def read_code(path: Path) -> int:
    """Read an emotion file such as ``   3.0000000e+00`` (official ReadMe: int(float(s)))."""
    text = path.read_text().strip()
    try:
        value = float(text)
    except ValueError as exc:
        raise ValueError(f"{path}: expected one number such as 3.0000000e+00, got {text[:40]!r}") from exc
    if value != int(value):
        raise ValueError(f"{path}: emotion code {value} is not a whole number")
    return int(value)


def read_ckplus(root: str | Path, frames: int = 3, include_neutral: bool = False, include_contempt: bool = False,
                report: SkipReport | None = None) -> list[Sample]:
    """List the last ``frames`` frames up to the peak of every labelled CK+ sequence.

    Args:
        root: folder holding ``cohn-kanade-images/`` and ``Emotion/`` (or their variants).
        frames: frames kept, ending at the labelled peak frame.
        include_neutral, include_contempt: keep codes 0 / 2 (counted as excluded otherwise).
        report: collects unlabelled sequences and bad label files by reason, counted in images.
    """
    root = check_root(root, "ckplus", WHAT)
    report = report if report is not None else SkipReport("ckplus")
    images, labels = _first_dir(root, IMAGE_DIRS), _first_dir(root, LABEL_DIRS)
    label_files = {f.parent.relative_to(labels): f for f in sorted(labels.glob("S*/*/*_emotion.txt"))}
    samples = []
    for seq in sorted(p for p in images.glob("S*/*") if p.is_dir()):
        label_file = label_files.pop(seq.relative_to(images), None)
        if label_file is None:
            report.skip("unlabelled sequence (no emotion file)", seq, frames)
        else:
            samples += _sequence(seq, label_file, frames, include_neutral, include_contempt, report)
    for label_file in label_files.values():
        report.skip(f"missing image folder of a labelled sequence (counted as the {frames} frames it would give)",
                    images / label_file.parent.relative_to(labels), frames)
    return require_samples(samples, "ckplus", root, report)


def _label(label_file: Path, frames: int, report: SkipReport) -> int | None:
    """The class index an emotion file gives, or None after counting the sequence's frames as skipped."""
    try:
        code = read_code(label_file)
    except (ValueError, OSError) as exc:
        report.skip("unparseable emotion file", str(exc), frames)
        return None
    if code not in CKPLUS_CODES:
        report.skip(f"unknown CK+ emotion code {code}", label_file, frames)
        return None
    return CKPLUS_CODES[code]


def _sequence(seq: Path, label_file: Path, frames: int, include_neutral: bool, include_contempt: bool,
              report: SkipReport) -> list[Sample]:
    """Samples of one labelled sequence: the frames ending at the peak the label file names."""
    label = _label(label_file, frames, report)
    if label is None or not keep_label(label, include_neutral, include_contempt, report, label_file, n=frames):
        return []
    peak = label_file.name.removesuffix("_emotion.txt")
    files = [seq / n for n in frame_names(seq, report)]
    upto = [p for p in files if (len(p.stem), p.stem) <= (len(peak), peak)] or files
    extra = {"sequence": f"{seq.parent.name}/{seq.name}"}
    return [Sample(str(p), "ckplus", seq.parent.name, label, extra={**extra, "earlier": earlier})
            for p, earlier in last_frames(upto, frames, report, seq)]
