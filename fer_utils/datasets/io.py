"""Decode what a ``Sample`` points at into a gray (or RGB) uint8 image, refusing unusable files loudly.

Every refusal is a ``BadImage`` whose message is ``<where>: <reason>``, the reason a fixed phrase,
so preprocessing counts failures by reason (docs/datasets.md lists them).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from .base import EMPTY_FILE, Sample, SkipReport

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mov", ".mpg", ".mpeg", ".wmv"})
# Shortest side, in pixels, of an image worth cropping: the Haar cascade's own window is 24x24, so a
# smaller image holds no face it can find, and resizing it to the 64-px crop would turn a few pixels
# into a flat "face" labelled with its class.
MIN_SIDE = 24
TOO_SMALL = f"image smaller than {MIN_SIDE} px"
REPLACED = "unreadable frame replaced by the previous readable one"
NO_EARLIER = "unreadable frame without a readable earlier one"

Result = tuple[np.ndarray | None, str]  # (crop, how it was cropped) or (None, the BadImage message)


class BadImage(ValueError):
    """A file, video frame or CSV row that cannot be used as an image; ``reason`` is what it is counted by."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


def failure_reason(message: str) -> str:
    """The reason of a ``BadImage`` message (reasons hold no ": "), to count failures by it."""
    return message.rpartition(": ")[2]


def _check_complete(path: str, data: bytes) -> None:
    """Reject empty files and JPEG/PNG files cut short (OpenCV would decode them half gray)."""
    if not data:
        raise BadImage(path, EMPTY_FILE)
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise BadImage(path, "truncated JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise BadImage(path, "truncated PNG (no IEND chunk)")


def read_image(path: str | Path, colour: bool = False) -> np.ndarray:
    """Read an image file as gray uint8 (H, W), or RGB (H, W, 3) with ``colour`` (GAN training)."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadImage(f"{path} ({exc.strerror or exc})", "cannot read the file") from exc
    _check_complete(path, data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise BadImage(path, "not an image OpenCV can decode")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if colour else img


def read_video(path: str | Path, colour: bool = False) -> list[np.ndarray]:
    """Read every frame of a video as gray uint8 (H, W) images, or RGB (H, W, 3) with ``colour``."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        ok, frame = cap.read()
        while ok:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB if colour else cv2.COLOR_BGR2GRAY))
            ok, frame = cap.read()
    finally:
        cap.release()
    if not frames:
        raise BadImage(str(path), "no frames could be decoded from this video")
    return frames


def video_length(path: str | Path) -> int:
    """Number of frames of a video from its header (0 if OpenCV cannot open it)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


def _where(sample: Sample) -> str:
    """The file, and the row (CSV) or frame (video) in it, that a message names."""
    if sample.frame is None:
        return sample.path
    return f"{sample.path} {'row' if 'pixels' in sample.extra else 'frame'} {sample.frame}"


def pixels_image(sample: Sample) -> np.ndarray:
    """Decode a FER2013 row: 2,304 space-separated ints, a row-major 48x48 gray face."""
    try:
        values = np.array(sample.extra["pixels"].split(), dtype=np.int64)
    except ValueError as exc:
        raise BadImage(f"{_where(sample)} ({exc})", "pixels are not integers") from exc
    side = int(round(len(values) ** 0.5))
    if not len(values) or side * side != len(values) or values.min() < 0 or values.max() > 255:
        raise BadImage(_where(sample), "pixels are not a square 0-255 image")
    return values.reshape(side, side).astype(np.uint8)


class FrameReader:
    """Read samples one after another, decoding each video only once (samples sorted by path)."""

    def __init__(self, colour: bool = False) -> None:
        self.colour = colour
        self._video: tuple[str, list[np.ndarray]] | None = None

    def __call__(self, sample: Sample) -> np.ndarray:
        """Gray uint8 image of one sample (RGB if ``colour``); raises ``BadImage`` naming the file and why."""
        image = self._decode(sample)
        height, width = image.shape[:2]
        if min(height, width) < MIN_SIDE:
            raise BadImage(f"{_where(sample)} ({width}x{height} px)", TOO_SMALL)
        return image

    def _decode(self, sample: Sample) -> np.ndarray:
        """The decoded row, image file or video frame, whatever its size."""
        if "pixels" in sample.extra:
            gray = pixels_image(sample)
            return np.repeat(gray[..., None], 3, axis=2) if self.colour else gray
        if Path(sample.path).suffix.lower() not in VIDEO_SUFFIXES:
            return read_image(sample.path, self.colour)
        if self._video is None or self._video[0] != sample.path:
            self._video = (sample.path, read_video(sample.path, self.colour))
        frames = self._video[1]
        if sample.frame is None or not 0 <= sample.frame < len(frames):
            raise BadImage(f"{_where(sample)} ({len(frames)} frames decoded)", "frame not in the video")
        return frames[sample.frame]


def stand_in(sample: Sample, read: FrameReader) -> Sample | None:
    """The sample's nearest earlier sequence frame that reads (``extra["earlier"]``), or None if none does."""
    for path in sample.extra.get("earlier", ()):
        candidate = dataclasses.replace(sample, path=path)
        try:
            read(candidate)
        except BadImage:
            continue
        return candidate
    return None


def with_stand_ins(samples: Sequence[Sample], results: Sequence[Result], crop: Callable[[list[Sample]], list[Result]],
                   report: SkipReport) -> tuple[list[Sample], list[Result]]:
    """Crop the previous readable frame for each unreadable sequence frame, so a sequence keeps its N frames.

    Each swap is counted (``REPLACED``, the bad file as example). A frame with no readable earlier
    one stays a failure whose message ends in ``NO_EARLIER``, the reason it is then counted by.
    """
    samples, results, read, found = list(samples), list(results), FrameReader(), {}
    for i, (image, why) in enumerate(results):
        if image is None and "earlier" in samples[i].extra:
            other = stand_in(samples[i], read)
            if other is None:
                results[i] = (None, f"{why}: {NO_EARLIER}")
            else:
                report.skip(REPLACED, why)
                found[i] = other
    if found:
        for i, result in zip(found, crop(list(found.values()))):
            samples[i], results[i] = found[i], result
    return samples, results
