"""An identity space for "identity kept": Fisherfaces fitted on rendered people's many expressions.

The expression CNN's features are trained to ignore who a face is, and raw pixels change with the
expression itself, so neither says whether StarGAN kept the person. Fisherfaces (PCA, then linear
discriminant analysis; Belhumeur et al., 1997) project faces onto the directions that separate
people most relative to how much one person varies with expression, pose and light. The people
come from a ``People`` source passed in (the face world's, ``fer_utils.facegen.people.WorldPeople``,
renders as many as needed in the FFHQ-like style StyleGAN2 learned), so the space is fitted on
people no quality check ever compares, and a user's own labelled people can replace them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import Pipeline, make_pipeline

from ..config import Config
from ..preprocess import centre_box, crop_square, detect_face
from .features import cnn_input

COMPONENTS = 200  # PCA dimensions before the discriminant analysis


class People(Protocol):
    """Faces of known people: the world's (``fer_utils.facegen.people.WorldPeople``) or your own."""

    def frames(self, people: Sequence[int], renders: int) -> np.ndarray:
        """``renders`` RGB frames of each person (P, R, H, W, 3), varied in expression, pose and light."""

    def expressions(self, people: Sequence[int]) -> np.ndarray:
        """Each person neutral then at the six apexes, in one view (P, 7, H, W, 3)."""


def expression_crops(cfg: Config, source: People, people: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Gray crops of each person neutral (P, S, S) and at the six apexes (P, 6, S, S), all with the neutral's box."""
    return neutral_box_crops(cfg, source.expressions(people))


def neutral_box_crops(cfg: Config, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gray crops of RGB frames (P, 1 + E, H, W, 3), each person's first frame neutral: (P, S, S) and (P, E, S, S),
    all with the neutral's box, as StarGAN's outputs keep their source's framing."""
    gray = np.stack([[cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in person] for person in frames])
    margin, size = cfg.preprocess.margin, cfg.preprocess.image_size
    crops = np.stack([[crop_square(f, _box(person[0]), margin, size) for f in person] for person in gray])
    return crops[:, 0], crops[:, 1:]


def _box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """Haar box of a face, or the centre square when none is found (as ``crop_face`` falls back)."""
    return detect_face(gray) or centre_box(gray)


def fisherfaces(cfg: Config, source: People, people: int, renders: int = 8) -> tuple[Pipeline, dict[str, Any]]:
    """PCA + LDA fitted on ``renders`` gray crops of each of ``people`` persons of ``source``.

    Args:
        cfg: ``preprocess`` crop (margin, size); ``world.seed`` seeds the PCA.
        source: the people (persons 0 .. people - 1 are used).
        people: persons to separate.
        renders: frames per person, each with its own expression, intensity and view.
    """
    frames = source.frames(range(people), renders)
    gray = cnn_input(frames.reshape(-1, *frames.shape[2:]), cfg.preprocess.margin, cfg.preprocess.image_size)
    components = min(COMPONENTS, len(gray) - people, gray[0].size)
    space = make_pipeline(PCA(components, random_state=cfg.world.seed), LinearDiscriminantAnalysis())
    space.fit(flat(gray), np.repeat(np.arange(people), renders))
    return space, {"people": people, "renders_per_person": renders, "pca_components": components,
                   "dimensions": people - 1}


def flat(gray: np.ndarray) -> np.ndarray:
    """Gray faces (..., S, S) uint8 -> rows (N, S*S) in [0, 1]."""
    return gray.reshape(-1, gray.shape[-2] * gray.shape[-1]).astype(np.float32) / 255
