"""Figures of notebook 02: faces before and after cropping, and classes per split."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .datasets.base import Sample
from .datasets.io import FrameReader
from .emotions import EMOTIONS
from .plots import STYLE, save_figure


def _source(row: dict, reader: FrameReader) -> np.ndarray:
    """The uncropped gray image (or video frame) a manifest row was cropped from."""
    return reader(Sample(row["path"], row["database"], row["subject"], row["label"], row["frame"]))


def _show_source(ax: plt.Axes, image: np.ndarray, margin: float) -> None:
    """Draw the source image with the Haar box grown by the crop margin."""
    from .preprocess import detect_face

    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    box = detect_face(image)
    if box is not None:
        x, y, w, h = box
        side = max(w, h) * (1 + 2 * margin)
        ax.add_patch(plt.Rectangle((x + w / 2 - side / 2, y + h / 2 - side / 2), side, side,
                                   fill=False, color="#dd8452", lw=1.5))


def crops_figure(sets: dict, per_database: int = 4, margin: float = 0.2, seed: int = 0,
                 path: str | os.PathLike | None = None) -> Figure:
    """One row per database: ``per_database`` source images (Haar box drawn) next to their crops."""
    rng = np.random.default_rng(seed)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(sets), 2 * per_database, figsize=(2 * per_database * 1.3, 1.5 * len(sets)),
                                 squeeze=False)
        for row_axes, (name, faces) in zip(axes, sets.items()):
            picks = rng.choice(len(faces), min(per_database, len(faces)), replace=False)
            reader = FrameReader()
            for k, i in enumerate(picks):
                _show_source(row_axes[2 * k], _source(faces.manifest[i], reader), margin)
                row_axes[2 * k + 1].imshow(faces.images[i], cmap="gray", vmin=0, vmax=255)
                label = faces.labels[i]
                row_axes[2 * k + 1].set_title(EMOTIONS[label] if 0 <= label < len(EMOTIONS) else "", fontsize=8)
            row_axes[0].set_ylabel(name)
            for ax in row_axes:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.spines[:].set_visible(False)
        fig.tight_layout()
    return save_figure(fig, path)


def split_histogram(splits: dict, path: str | os.PathLike | None = None) -> Figure:
    """Faces per class in each split (train/val/test), grouped bars."""
    width = 0.8 / max(1, len(splits))
    x = np.arange(len(EMOTIONS))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for k, (name, faces) in enumerate(splits.items()):
            counts = np.bincount(faces.labels[(faces.labels >= 0) & (faces.labels < len(EMOTIONS))],
                                 minlength=len(EMOTIONS))
            subjects = len(np.unique(faces.subjects))
            ax.bar(x + (k - (len(splits) - 1) / 2) * width, counts, width, label=f"{name} ({subjects} subjects)")
        ax.set_xticks(x, EMOTIONS, rotation=30, ha="right")
        ax.set(ylabel="faces", title="classes per subject-independent split")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
    return save_figure(fig, path)
