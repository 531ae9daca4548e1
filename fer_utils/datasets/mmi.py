"""MMI: ``Sessions/<id>/`` with ``S###-###.avi`` (or still images), ``S###-###.xml`` metadata,
``session.xml`` (camera view) and optional ``S###-###-oao_aucs.xml`` onset/apex/offset markers.

Labels come from ``<Metatag Name="Emotion" Value="1..6"/>``; loaders keep views 0 and 2 and skip
values >= 7 (docs/datasets.md). From a video, ``frames`` frames are taken from the apex marker on,
or, without markers, spread over the middle third of the clip (the expression's apex phase).
A skipped video counts as those ``frames`` images, a skipped still image as one.
"""
from __future__ import annotations

import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..emotions import MMI_CODES
from .base import IMAGE_SUFFIXES, Sample, SkipReport, check_root, missing_layout, require_samples, usable_file
from .io import VIDEO_SUFFIXES, video_length

WHAT = "Sessions/<id>/ folders with S###-###.avi (or images), S###-###.xml and session.xml"
KEEP_VIEWS = frozenset({"0", "2"})
APEX_TYPE = "2"  # <Marker Type="1|2|3"> = onset | apex | offset


class BadLabelFile(ValueError):
    """A metadata file that cannot be parsed; the message names it."""


def _xml(path: Path) -> ET.Element:
    """Parse an XML file, naming it in the error."""
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise BadLabelFile(f"{path}: unparseable XML ({exc})") from exc


def emotion_code(path: Path) -> int | None:
    """The clip's ``Emotion`` metatag value, or None when it has none."""
    for tag in _xml(path).iter("Metatag"):
        if tag.get("Name") == "Emotion":
            try:
                return int(tag.get("Value", ""))
            except ValueError as exc:
                raise BadLabelFile(f"{path}: Emotion value {tag.get('Value')!r} is not an integer") from exc
    return None


def session_view(session: Path, clip: str) -> str | None:
    """Camera view of a clip from ``session.xml`` (the track annotating it, else the first track)."""
    tracks = list(_xml(session / "session.xml").iter("track"))
    for track in tracks:
        if any(a.get("filename", "").startswith(clip) for a in track.iter("annotation")):
            return track.get("view")
    return tracks[0].get("view") if tracks else None


def apex_start(path: Path) -> int | None:
    """0-based first apex frame from the AU markers (median over action units), if coded."""
    starts = []
    for au in _xml(path).iter("ActionUnit"):
        marks = [(int(m.get("Frame", "0")), m.get("Type")) for m in au.iter("Marker")]
        typed = [f for f, t in marks if t == APEX_TYPE]
        untyped = sorted(f for f, _ in marks)
        if typed:
            starts.append(typed[0])
        elif len(untyped) == 3:  # onset, apex, offset in time order
            starts.append(untyped[1])
    return int(statistics.median(starts)) - 1 if starts else None


def clip_frames(n_frames: int, frames: int, apex: int | None) -> list[int]:
    """Frame indices: ``frames`` from the apex on, else spread over the middle third of the clip."""
    if apex is not None and 0 <= apex < n_frames:
        first = min(apex, max(0, n_frames - frames))
        return list(range(first, min(n_frames, first + frames)))
    lo, hi = n_frames // 3, max(n_frames // 3, (2 * n_frames) // 3 - 1)
    return sorted({int(round(x)) for x in np.linspace(lo, hi, frames)})


def read_mmi(root: str | Path, frames: int = 3, views: frozenset[str] = KEEP_VIEWS,
             report: SkipReport | None = None) -> list[Sample]:
    """List apex frames of every labelled MMI clip (and still images) of the kept camera views.

    Args:
        root: MMI download folder (holding ``Sessions/``) or the ``Sessions`` folder itself.
        frames: frames taken around the apex of each video.
        views: ``session.xml`` track views to keep (loaders keep 0 and 2).
        report: collects skipped clips by reason.
    """
    root = check_root(root, "mmi", WHAT)
    report = report if report is not None else SkipReport("mmi")
    sessions = root / "Sessions" if (root / "Sessions").is_dir() else root
    folders = sorted((p for p in sessions.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    if not any((p / "session.xml").is_file() for p in folders):
        raise missing_layout("mmi", root, WHAT)
    samples = []
    for session in folders:
        samples += _session(session, frames, views, report)
    return require_samples(samples, "mmi", root, report)


def _session(session: Path, frames: int, views: frozenset[str], report: SkipReport) -> list[Sample]:
    """Samples of one session folder: each media file with a labelled metadata file."""
    samples = []
    media = sorted(p for p in session.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
    if not media:
        report.skip(f"session without its video or images (counted as the {frames} frames it would give)",
                    session, frames)
    for path in media:
        n = 1 if path.suffix.lower() in IMAGE_SUFFIXES else frames  # images the clip gives
        try:
            label = _clip_label(session, path, views, report, n)
            if label is not None and usable_file(path, report, VIDEO_SUFFIXES | IMAGE_SUFFIXES, n):
                samples += _clip_samples(path, label, frames, report)
        except BadLabelFile as exc:
            report.skip("unparseable metadata XML", str(exc), n)
    return samples


def _clip_label(session: Path, path: Path, views: frozenset[str], report: SkipReport, n: int) -> int | None:
    """The clip's class index, or None after counting its ``n`` images as skipped and why."""
    meta = session / f"{path.stem}.xml"
    if not meta.is_file():
        report.skip("no S###-###.xml metadata beside the clip", path, n)
        return None
    if not (session / "session.xml").is_file():
        report.skip("no session.xml (camera view unknown)", path, n)
        return None
    view = session_view(session, path.stem)
    if view not in views:
        report.skip(f"camera view {view} not kept", path, n)
        return None
    code = emotion_code(meta)
    if code is None:
        report.skip("no Emotion metatag", meta, n)
    elif code not in MMI_CODES:
        report.skip(f"Emotion code {code} not a basic emotion (1-6)", meta, n)
    return MMI_CODES.get(code) if code is not None else None


def _clip_samples(path: Path, label: int, frames: int, report: SkipReport) -> list[Sample]:
    """One sample per still image, or the apex frames of a video."""
    subject = path.stem.split("-")[0]
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [Sample(str(path), "mmi", subject, label)]
    n = video_length(path)
    if n <= 0:
        report.skip("video OpenCV cannot open", path, frames)
        return []
    aucs = path.with_name(f"{path.stem}-oao_aucs.xml")
    apex = apex_start(aucs) if aucs.is_file() else None
    return [Sample(str(path), "mmi", subject, label, frame=f, extra={"frames": n, "apex": apex})
            for f in clip_frames(n, frames, apex)]
