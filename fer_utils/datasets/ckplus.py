"""CK+: ``cohn-kanade-images/S###/###/S###_###_########.png`` + ``Emotion/S###/###/*_emotion.txt``.

Only the peak frame of 327 of the 593 sequences has an emotion file (datasets.md §4); the last
``frames`` frames up to that peak are kept, the usual 3 per labelled sequence.
"""
from __future__ import annotations

from pathlib import Path

from ..emotions import CKPLUS_CODES
from .base import Sample, SkipReport, check_root, keep_label, missing_layout, require_samples, frame_names, usable_file

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
        report: collects unlabelled sequences and bad label files by reason.
    """
    root = check_root(root, "ckplus", WHAT)
    report = report if report is not None else SkipReport("ckplus")
    images, labels = _first_dir(root, IMAGE_DIRS), _first_dir(root, LABEL_DIRS)
    samples = []
    for seq in sorted(p for p in images.glob("S*/*") if p.is_dir()):
        files = frame_names(seq, report)
        label_files = sorted((labels / seq.parent.name / seq.name).glob("*_emotion.txt"))
        if not label_files:
            report.skip("unlabelled sequence (no emotion file)", seq)
        elif not files:
            report.skip("labelled sequence without images", seq)
        else:
            files = [seq / n for n in files]
            samples += _sequence(files, label_files[-1], frames, include_neutral, include_contempt, report)
    return require_samples(samples, "ckplus", root, report)


def _sequence(files: list[Path], label_file: Path, frames: int, include_neutral: bool, include_contempt: bool,
              report: SkipReport) -> list[Sample]:
    """Samples of one labelled sequence: the frames ending at the peak the label file names."""
    try:
        code = read_code(label_file)
    except (ValueError, OSError) as exc:
        report.skip("unparseable emotion file", str(exc))
        return []
    if code not in CKPLUS_CODES:
        report.skip(f"unknown CK+ emotion code {code}", label_file)
        return []
    label = CKPLUS_CODES[code]
    peak = label_file.name.removesuffix("_emotion.txt")
    upto = [p for p in files if (len(p.stem), p.stem) <= (len(peak), peak)] or files
    chosen = [p for p in upto[-frames:] if usable_file(p, report)]
    if not keep_label(label, include_neutral, include_contempt, report, label_file, n=len(chosen)):
        return []
    subject = label_file.parent.parent.name
    return [Sample(str(p), "ckplus", subject, label, extra={"sequence": f"{subject}/{label_file.parent.name}"})
            for p in chosen]
