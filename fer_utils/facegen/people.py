"""People rendered for the generators' identity check: many frames of each, or neutral + six apexes in one view.

The quality check (``fer_utils.gan.quality``) fits its identity space on faces of known people and asks
the same question of people it was not fitted on. The world supplies them here, in the FFHQ-like style
of the faces StyleGAN2 learned; any object with the same two methods (your own labelled people, say)
can stand in for ``WorldPeople``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..emotions import ALL_LABELS, EMOTIONS
from .expressions import expression_aus
from .identity import _HAIR, sample_identities, take
from .styles import STYLES, image_shape, nuisance, render_style

# the palette colours identity._HAIR varies each person's hair around, named here: identity.py draws the world,
# and a change there rewrites every world database (fer_utils.identity), people.py only the generators' checks
HAIR_NAMES = ("black", "dark brown", "blond", "red", "gray")
IDENTITY_POOL = 5_000_000  # first identity index; the world's databases draw below (writers.POOL_OFFSET)


@dataclass(frozen=True)
class WorldPeople:
    """Rendered people drawn from ``IDENTITY_POOL`` onwards, deterministic from ``seed``, as the FFHQ-like database
    shows people (camera, light, nuisance and how far expressions stray from their prototypes), or as ``style``'s
    database does: the same people (the population's ranges are drawn from the style too). ``apex_intensity``
    bounds the intensity each of the six expressions is shown at (uniform): full apexes by default, (0.3, 1.0)
    as the AffectNet-like database labels its faces."""

    seed: int
    image_size: int
    style: str = "ffhq"
    apex_intensity: tuple[float, float] = (1.0, 1.0)

    def frames(self, people: Sequence[int], renders: int) -> np.ndarray:
        """``renders`` RGB frames of each person (P, R, H, W, 3): random expression, intensity, pose, light."""
        style = STYLES[self.style]
        rng = np.random.default_rng([self.seed, len(people), renders])
        index = np.repeat(np.asarray(people) + IDENTITY_POOL, renders)
        ids = sample_identities(self.seed, index, skin=style.skin, age=style.age)
        labels = list(rng.choice(list(ALL_LABELS), len(index)))
        img = render_style(style, ids, labels, rng.uniform(0.3, 1.0, len(index)), self.image_size, rng)
        return img.reshape(len(people), renders, *img.shape[1:])

    def expressions(self, people: Sequence[int]) -> np.ndarray:
        """Each person neutral then at the six apexes, all in the neutral frame's view (P, 7, H, W, 3).

        As StarGAN's six outputs share their source's framing: the generated persons' protocol.
        """
        return self.apexes(people)[0]

    def apexes(self, people: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``expressions`` (P, 7, H, W, 3) and the action-unit intensities each frame was rendered with (P, 7, A)."""
        style, k = STYLES[self.style], 1 + len(EMOTIONS)
        rng = np.random.default_rng([self.seed, len(people), k])
        ids = sample_identities(self.seed, np.asarray(people) + IDENTITY_POOL, skin=style.skin, age=style.age)
        ids = take(ids, np.repeat(np.arange(len(people)), k))
        shape = image_shape(style, self.image_size)
        view = {n: np.repeat(v, k, axis=0) for n, v in nuisance(style, len(people), shape, rng).items()}
        labels = ["neutral", *EMOTIONS] * len(people)
        nuisance(style, len(labels), shape, rng)  # render_style's own draw, which the view overrides: faces as before
        # its own generator, so that full apexes (the default) render exactly the faces they always did
        intensity = np.random.default_rng([self.seed, len(people), k, 4]).uniform(*self.apex_intensity, len(labels))
        intensity[::k] = 1.0  # the neutral frame as it always was
        aus = expression_aus(labels, intensity, ids["au_gain"], rng, style.variability)
        frames = render_style(style, ids, labels, intensity, self.image_size, rng, aus=aus, **view)
        return frames.reshape(len(people), k, *frames.shape[1:]), aus.reshape(len(people), k, -1)

    def moving(self, people: Sequence[int], renders: int) -> tuple[np.ndarray, np.ndarray]:
        """``renders`` frames of each person (P, R, H, W, 3) in random views, and their action units (P, R, A).

        Half the frames show one of the eight expressions at a random intensity (the world's own
        combinations), half a random set of action units (each present with probability 0.3 at a
        random intensity), so that a regressor learns each unit, not only the prototypes' sets.
        """
        style = STYLES[self.style]
        rng = np.random.default_rng([self.seed, len(people), renders, 2])
        index = np.repeat(np.asarray(people) + IDENTITY_POOL, renders)
        ids = sample_identities(self.seed, index, skin=style.skin, age=style.age)
        labels = list(rng.choice(list(ALL_LABELS), len(index)))
        aus = expression_aus(labels, rng.uniform(0, 1, len(index)), ids["au_gain"], rng, style.variability)
        random_set = (rng.random(aus.shape) < 0.3) * rng.uniform(0, 1, aus.shape)
        aus = np.where(rng.random((len(index), 1)) < 0.5, aus, random_set).astype(np.float32)
        img = render_style(style, ids, labels, np.ones(len(index)), self.image_size, rng, aus=aus)
        return img.reshape(len(people), renders, *img.shape[1:]), aus.reshape(len(people), renders, -1)

    def portraits(self, people: Sequence[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each person as the FFHQ-like database shows people (near-neutral, aligned; (P, H, W, 3)), and what the
        renderer drew them with: skin ``tone`` (0 light .. 1 dark), ``age`` (0 child .. 1 elderly), ``hair`` name."""
        style = STYLES[self.style]
        rng = np.random.default_rng([self.seed, len(people), 3])
        ids = sample_identities(self.seed, np.asarray(people) + IDENTITY_POOL, skin=style.skin, age=style.age)
        labels = list(rng.choice(list(ALL_LABELS), len(people)))
        img = render_style(style, ids, labels, rng.uniform(0, 0.3, len(people)), self.image_size, rng)
        return img, {"tone": ids["tone"], "age": ids["age"], "hair": hair_name(ids["hair"])}


def hair_name(hair: np.ndarray) -> np.ndarray:
    """Name of the palette colour (``HAIR_NAMES``) each drawn hair colour (N, 3) was varied from."""
    return np.asarray(HAIR_NAMES)[np.linalg.norm(hair[:, None] - _HAIR[None], axis=-1).argmin(1)]
