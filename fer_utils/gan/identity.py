"""An identity space for "identity kept": Fisherfaces fitted on rendered people's many expressions.

The expression CNN's features are trained to ignore who a face is, and raw pixels change with the
expression itself, so neither says whether StarGAN kept the person. Fisherfaces (PCA, then linear
discriminant analysis; Belhumeur et al., 1997) project faces onto the directions that separate
people most relative to how much one person varies with expression, pose and light. The face
world renders as many labelled people as needed, in the FFHQ-like style of the faces StyleGAN2
learned, so the space is fitted on people no quality check ever compares.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import Pipeline, make_pipeline

from ..config import Config
from ..emotions import ALL_LABELS, EMOTIONS
from ..facegen import STYLES, render_style, sample_identities
from ..facegen.identity import take
from ..facegen.styles import image_shape, nuisance
from ..preprocess import centre_box, crop_square, detect_face
from .features import cnn_input

IDENTITY_POOL = 5_000_000  # first identity index; the world's databases draw below (writers.POOL_OFFSET)
COMPONENTS = 200  # PCA dimensions before the discriminant analysis


def render_people(seed: int, people: Sequence[int], renders: int, image_size: int) -> np.ndarray:
    """``renders`` FFHQ-style frames of each person (P, R, H, W, 3): random expression, pose, light."""
    style = STYLES["ffhq"]
    rng = np.random.default_rng([seed, len(people), renders])
    index = np.repeat(np.asarray(people) + IDENTITY_POOL, renders)
    ids = sample_identities(seed, index, skin=style.skin, age=style.age)
    labels = list(rng.choice(list(ALL_LABELS), len(index)))
    img = render_style(style, ids, labels, rng.uniform(0.3, 1.0, len(index)), image_size, rng)
    return img.reshape(len(people), renders, *img.shape[1:])


def rendered_expressions(cfg: Config, people: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Gray crops of each person neutral (P, S, S) and at the six apexes (P, 6, S, S), aligned.

    All seven frames of a person share the neutral frame's view and crop box, as StarGAN's six
    outputs share their source's framing: the generated persons' protocol, on the world's own faces.
    """
    style, k = STYLES["ffhq"], 1 + len(EMOTIONS)
    rng = np.random.default_rng([cfg.world.seed, len(people), k])
    ids = sample_identities(cfg.world.seed, np.asarray(people) + IDENTITY_POOL, skin=style.skin, age=style.age)
    shape = image_shape(style, cfg.world.image_size)
    view = {n: np.repeat(v, k, axis=0) for n, v in nuisance(style, len(people), shape, rng).items()}
    frames = render_style(style, take(ids, np.repeat(np.arange(len(people)), k)), ["neutral", *EMOTIONS] * len(people),
                          np.ones(k * len(people)), cfg.world.image_size, rng, **view)
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).reshape(len(people), k, *shape)
    margin, size = cfg.preprocess.margin, cfg.preprocess.image_size
    crops = np.stack([[crop_square(f, _box(person[0]), margin, size) for f in person] for person in gray])
    return crops[:, 0], crops[:, 1:]


def _box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """Haar box of a face, or the centre square when none is found (as ``crop_face`` falls back)."""
    return detect_face(gray) or centre_box(gray)


def fisherfaces(cfg: Config, people: int, renders: int = 8) -> tuple[Pipeline, dict[str, Any]]:
    """PCA + LDA fitted on ``renders`` gray crops of each of ``people`` rendered persons.

    Args:
        cfg: ``world.seed``, ``world.image_size``, ``preprocess`` crop (margin, size).
        people: persons to separate (identities ``IDENTITY_POOL`` + 0 .. people - 1).
        renders: frames per person, each with its own expression, intensity and view.
    """
    frames = render_people(cfg.world.seed, range(people), renders, cfg.world.image_size)
    gray = cnn_input(frames.reshape(-1, *frames.shape[2:]), cfg.preprocess.margin, cfg.preprocess.image_size)
    components = min(COMPONENTS, len(gray) - people, gray[0].size)
    space = make_pipeline(PCA(components, random_state=cfg.world.seed), LinearDiscriminantAnalysis())
    space.fit(flat(gray), np.repeat(np.arange(people), renders))
    return space, {"people": people, "renders_per_person": renders, "pca_components": components,
                   "dimensions": people - 1}


def flat(gray: np.ndarray) -> np.ndarray:
    """Gray faces (..., S, S) uint8 -> rows (N, S*S) in [0, 1]."""
    return gray.reshape(-1, gray.shape[-2] * gray.shape[-1]).astype(np.float32) / 255
