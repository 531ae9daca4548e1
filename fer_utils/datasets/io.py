"""Decode what a ``Sample`` points at into a gray (or RGB) uint8 image, refusing truncated files loudly."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .base import Sample

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mov", ".mpg", ".mpeg", ".wmv"})


class BadImage(ValueError):
    """A file that cannot be decoded; the message names the file and why."""


def _check_complete(path: str, data: bytes) -> None:
    """Reject empty files and JPEG/PNG files cut short (OpenCV would decode them half gray)."""
    if not data:
        raise BadImage(f"{path}: empty (zero-byte) file")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise BadImage(f"{path}: truncated JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise BadImage(f"{path}: truncated PNG (no IEND chunk)")


def read_image(path: str | Path, colour: bool = False) -> np.ndarray:
    """Read an image file as gray uint8 (H, W), or RGB (H, W, 3) with ``colour`` (GAN training)."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadImage(f"{path}: cannot read: {exc}") from exc
    _check_complete(path, data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise BadImage(f"{path}: not an image OpenCV can decode")
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
        raise BadImage(f"{path}: no frames could be decoded from this video")
    return frames


def video_length(path: str | Path) -> int:
    """Number of frames of a video from its header (0 if OpenCV cannot open it)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


def pixels_image(sample: Sample) -> np.ndarray:
    """Decode a FER2013 row: 2,304 space-separated ints, a row-major 48x48 gray face."""
    where = f"{sample.path} row {sample.frame}"
    try:
        values = np.array(sample.extra["pixels"].split(), dtype=np.int64)
    except ValueError as exc:
        raise BadImage(f"{where}: pixels are not integers ({exc})") from exc
    side = int(round(len(values) ** 0.5))
    if not len(values) or side * side != len(values) or values.min() < 0 or values.max() > 255:
        raise BadImage(f"{where}: pixels are not a square 0-255 image")
    return values.reshape(side, side).astype(np.uint8)


class FrameReader:
    """Read samples one after another, decoding each video only once (samples sorted by path)."""

    def __init__(self, colour: bool = False) -> None:
        self.colour = colour
        self._video: tuple[str, list[np.ndarray]] | None = None

    def __call__(self, sample: Sample) -> np.ndarray:
        """Gray uint8 image of one sample (RGB if ``colour``); raises ``BadImage`` naming the file."""
        if "pixels" in sample.extra:
            gray = pixels_image(sample)
            return np.repeat(gray[..., None], 3, axis=2) if self.colour else gray
        if Path(sample.path).suffix.lower() not in VIDEO_SUFFIXES:
            return read_image(sample.path, self.colour)
        if self._video is None or self._video[0] != sample.path:
            self._video = (sample.path, read_video(sample.path, self.colour))
        frames = self._video[1]
        if sample.frame is None or not 0 <= sample.frame < len(frames):
            raise BadImage(f"{sample.path}: frame {sample.frame} not in the {len(frames)} decoded frames")
        return frames[sample.frame]
