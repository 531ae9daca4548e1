"""Moved or painted? How far a translation moves the action units its expression moves, read by a regressor.

A classifier trained on real faces reads a mark StarGAN paints as the expression it stands for
(docs/generators.md), so transfer alone cannot say whether brows, lids, lip corners and jaw moved.
Here a regressor learns action-unit intensities from rendered people only (HOG features of the
low-passed face, ridge regression; no generated face in its training), and reads the AU change from
a neutral face to a translation of it. The face is low-passed first (``features.low_pass``) because
moved features are shapes several pixels across, and fine texture is what a painter adds: read
unblurred, a fixed random texture added to neutral faces read as happy (the world's AU6 and AU9
fold the skin into fine creases, and texture looks like creases). Projected on the world's own
mean neutral -> apex change of that expression, it gives the **fraction of the world's apex
motion** a translation shows (1 = as far as the world's faces move; issue 38's target 0.5). Two
controls say whether the reading can be trusted:

- positive: people the regressor never saw, neutral -> their own apex, must read >= the target;
- negative: a generator's mean difference image per expression (translation minus source,
  averaged over persons) pasted onto its neutral sources must read as not moved (< the target)
  for >= 80 % of them: a fixed mark, the same on every face, is painted, not moved.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from sklearn.linear_model import RidgeCV

from ..config import Config
from ..emotions import EMOTIONS
from .features import LOW_PASS_SIGMA, cnn_input, low_pass
from .identity import People, neutral_box_crops

TARGET = 0.5  # issue 38: every expression moves by >= 50 % of the world's own apex motion
NEUTRAL_SHARE = 0.8  # issue 38: the negative control reads as neutral >= 80 % of the time
HOG_SIDE = 64  # HOG window: 8-px cells, 16-px blocks (Dalal & Triggs 2005) over a 64-px face
ALPHAS = np.logspace(-1, 5, 13)  # ridge penalties RidgeCV chooses among by leave-one-out error on the renders


class ActingPeople(People, Protocol):
    """Known people whose action units are known too (``fer_utils.facegen.people.WorldPeople`` or yours)."""

    def moving(self, people: Sequence[int], renders: int) -> tuple[np.ndarray, np.ndarray]:
        """``renders`` RGB frames of each person (P, R, H, W, 3) and their action-unit intensities (P, R, A)."""

    def apexes(self, people: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Each person neutral then at the six apexes in one view (P, 7, H, W, 3), and their AUs (P, 7, A)."""


def geometry(gray: np.ndarray) -> np.ndarray:
    """What the regressor reads: HOG of the low-passed faces (N, S, S)."""
    return hog(low_pass(gray))


def hog(gray: np.ndarray) -> np.ndarray:
    """HOG features (N, 1764) of gray faces (N, S, S), resized to 64 px: edges and their directions, which
    move with brows, lids and lips, rather than brightness."""
    descriptor = cv2.HOGDescriptor((HOG_SIDE, HOG_SIDE), (16, 16), (8, 8), (8, 8), 9)
    return np.stack([descriptor.compute(cv2.resize(g, (HOG_SIDE, HOG_SIDE), interpolation=cv2.INTER_AREA)).ravel()
                     for g in gray])


@dataclass
class MotionReader:
    """An AU regressor fitted on rendered people, and the world's mean neutral -> apex AU change per expression."""

    regressor: RidgeCV  # on HOG as it is: block-normalised, and no unit's scale blown up where renders never vary
    reference: np.ndarray  # (6, A) in EMOTIONS order, from the rendered AUs (truth), not from the regressor

    def aus(self, gray: np.ndarray) -> np.ndarray:
        """Read AU intensities (N, A) from gray faces (N, S, S), within the [0, 1] they are rendered in."""
        return self.regressor.predict(geometry(gray)).clip(0, 1)

    def fractions(self, neutral: np.ndarray, expressions: np.ndarray) -> np.ndarray:
        """(N, 6): each expression's AU change from its neutral face, as a fraction of the world's apex change.

        Args:
            neutral: gray faces (N, S, S).
            expressions: the same persons' six expressions (N, 6, S, S), in EMOTIONS order, framed as the neutral.
        """
        n, e = expressions.shape[:2]
        change = self.aus(expressions.reshape(n * e, *expressions.shape[2:])).reshape(n, e, -1)
        change = change - self.aus(neutral)[:, None]
        return np.einsum("nea,ea->ne", change, self.reference) / (self.reference ** 2).sum(1)


def fit_reader(cfg: Config, people: ActingPeople, persons: int, renders: int) -> tuple[MotionReader, dict[str, Any]]:
    """Fit the AU regressor on persons 0 .. ``persons`` - 1: ``renders`` frames each, cropped as real faces are, and
    each person neutral and at the six apexes, cropped as the measure crops them (with the neutral's box).

    The reference motion is the mean rendered AU change, neutral -> apex, of the same persons.
    """
    frames, aus = people.moving(range(persons), renders)
    gray = cnn_input(frames.reshape(-1, *frames.shape[2:]), cfg.preprocess.margin, cfg.preprocess.image_size)
    apex_frames, apex_aus = people.apexes(range(persons))
    neutral, apex = neutral_box_crops(cfg, apex_frames)
    faces = np.concatenate([gray, neutral, apex.reshape(-1, *neutral.shape[1:])])
    truth = np.concatenate([aus.reshape(len(gray), -1), apex_aus[:, 0], apex_aus[:, 1:].reshape(-1, aus.shape[-1])])
    regressor = RidgeCV(alphas=ALPHAS).fit(geometry(faces), truth)
    reference = (apex_aus[:, 1:] - apex_aus[:, :1]).mean(0)
    info = {"persons": persons, "renders_per_person": renders, "faces": len(faces),
            "features": f"HOG (8-px cells) of the face low-passed by a {LOW_PASS_SIGMA}-px Gaussian",
            "ridge_alpha": float(regressor.alpha_), "target": TARGET, "neutral_share_target": NEUTRAL_SHARE}
    return MotionReader(regressor, reference), info


def painted(neutral: np.ndarray, expressions: np.ndarray) -> np.ndarray:
    """The negative control: each expression's mean difference image (over persons) pasted onto every neutral face.

    Args:
        neutral: gray faces (N, S, S) uint8.
        expressions: translations of them (N, 6, S, S) uint8.
    """
    mark = (expressions.astype(np.float32) - neutral[:, None]).mean(0)  # (6, S, S)
    return np.clip(neutral[:, None] + mark[None] + 0.5, 0, 255).astype(np.uint8)


def motion_summary(fractions: np.ndarray) -> dict[str, dict[str, float]]:
    """Per expression: the mean fraction of the world's apex motion, and the share of faces read as moved."""
    return {name: {"fraction": float(fractions[:, k].mean()), "moved": float((fractions[:, k] >= TARGET).mean())}
            for k, name in enumerate(EMOTIONS)}


def measure_motion(cfg: Config, people: ActingPeople, neutral: np.ndarray, expressions: np.ndarray,
                   renders: int = 8) -> dict[str, Any]:
    """The moved-features measure of translations, beside its two controls (``read_motion``).

    Args:
        cfg: ``preprocess`` crop (margin, size); ``generate.identity_people``: half as many rendered persons
            fit the regressor (``renders`` frames each), the next third as many are the positive control.
        people: rendered people with known AUs.
        neutral: gray sources (N, S, S) as the generator saw them.
        expressions: their six translations (N, 6, S, S), in EMOTIONS order.
    """
    persons, held_out = cfg.generate.identity_people // 2, cfg.generate.identity_people // 3
    reader, info = fit_reader(cfg, people, persons, renders)
    world = neutral_box_crops(cfg, people.apexes(range(persons, persons + held_out))[0])
    return {"reader": info | {"held_out_persons": held_out}, **read_motion(reader, world, neutral, expressions)}


def read_motion(reader: MotionReader, world: tuple[np.ndarray, np.ndarray], neutral: np.ndarray,
                expressions: np.ndarray) -> dict[str, Any]:
    """Translations read beside the positive control (``world``: held-out people's neutral (P, S, S) and apex
    (P, 6, S, S) faces) and the negative control (the translations' mean marks pasted on their sources)."""
    positive = motion_summary(reader.fractions(*world))
    negative = motion_summary(reader.fractions(neutral, painted(neutral, expressions)))
    return {"generated": motion_summary(reader.fractions(neutral, expressions)), "faces": len(neutral),
            "positive_control": positive, "negative_control": negative,
            "positive_passes": all(v["fraction"] >= TARGET for v in positive.values()),
            "negative_passes": all(1 - v["moved"] >= NEUTRAL_SHARE for v in negative.values())}
