"""How widely StyleGAN2's identities spread in skin tone and hair colour, beside the faces it learned from.

The generated identities looked mostly brown-haired and light-skinned (docs/generators.md). Their
truth is unknown, so simple readers are fitted on rendered people whose truth is known (skin tone
from the mean colour of both cheeks, hair colour from the mean colour of the hair above the
forehead), checked on other rendered people, then read on generated and rendered faces alike: the
same instrument on both, its own accuracy beside it. Age is not read: the world's 64-px faces do
not show it (ridge on HOG or on pixels of the face, and a small CNN trained on 2,500 renders,
explained none of its variance on held-out renders, while the same CNN read skin tone at R² 0.83-0.94
over its last 14 epochs), so only the rendered people's truth is given for it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .motion import ALPHAS

# regions of an FFHQ-aligned frame (rows, columns as fractions of the side): the head is centred,
# its half-width about a quarter of the side
HAIR = ((0.19, 0.27), (0.40, 0.60))  # inside the hair above the forehead (the box held-out renders read best)
CHEEKS = (((0.53, 0.61), (0.33, 0.41)), ((0.53, 0.61), (0.59, 0.67)))
SIDE = 64  # frames are read at StyleGAN2's resolution
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


class PortraitPeople(Protocol):
    """Rendered people with what they were drawn with (``fer_utils.facegen.people.WorldPeople`` or yours)."""

    def portraits(self, people: Sequence[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Aligned frames (P, H, W, 3) and their ``tone`` (P,), ``age`` (P,) and ``hair`` colour names (P,)."""


def _mean(rgb: np.ndarray, box: tuple[tuple[float, float], tuple[float, float]]) -> np.ndarray:
    """Mean colour (N, 3) in [0, 1] of a box of frames (N, SIDE, SIDE, 3)."""
    (top, bottom), (left, right) = box
    return rgb[:, int(top * SIDE):int(bottom * SIDE), int(left * SIDE):int(right * SIDE)].mean((1, 2)) / 255


def _resized(rgb: np.ndarray) -> np.ndarray:
    """Frames (N, H, W, 3) at SIDE px."""
    return np.stack([cv2.resize(x, (SIDE, SIDE), interpolation=cv2.INTER_AREA) for x in rgb])


def features(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """What each reader reads: the cheeks' colour (skin tone), the hair's colour."""
    x = _resized(rgb)
    return {"tone": np.hstack([_mean(x, box) for box in CHEEKS]), "hair": _mean(x, HAIR)}


def fit_readers(people: PortraitPeople, persons: int, held_out: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Readers fitted on persons 0 .. ``persons`` - 1, and their accuracy on the next ``held_out`` persons."""
    fit_rgb, fit_truth = people.portraits(range(persons))
    test_rgb, test_truth = people.portraits(range(persons, persons + held_out))
    fit_x, test_x = features(fit_rgb), features(test_rgb)
    hair = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    readers = {"tone": RidgeCV(alphas=ALPHAS).fit(fit_x["tone"], fit_truth["tone"]),
               "hair": hair.fit(fit_x["hair"], fit_truth["hair"])}
    checked = {"tone_r2": r2_score(test_truth["tone"], readers["tone"].predict(test_x["tone"])),
               "hair_accuracy": float((readers["hair"].predict(test_x["hair"]) == test_truth["hair"]).mean()),
               "persons": persons, "held_out": held_out}
    return readers, {k: float(v) for k, v in checked.items()}


def distribution(tone: np.ndarray, hair: np.ndarray) -> dict[str, Any]:
    """Quantiles of skin tone, and the share of each hair colour."""
    names, counts = np.unique(hair, return_counts=True)
    return {"tone_quantiles": np.quantile(tone, QUANTILES).round(3).tolist(),
            "hair_shares": {str(n): round(float(c) / len(hair), 3) for n, c in zip(names, counts)}, "faces": len(hair)}


def read(readers: dict[str, Any], rgb: np.ndarray) -> dict[str, Any]:
    """The readers' distribution over frames (N, H, W, 3)."""
    x = features(rgb)
    return distribution(readers["tone"].predict(x["tone"]), readers["hair"].predict(x["hair"]))


def measure_spread(people: PortraitPeople, generated: np.ndarray, persons: int = 800,
                   held_out: int = 400) -> dict[str, Any]:
    """Skin tone and hair colour of generated identities (N, H, W, 3) and of rendered people, read alike.

    The rendered people's truth stands beside their reading; the readers' accuracy on people they were
    not fitted on says how far to trust either.
    """
    readers, checked = fit_readers(people, persons, held_out)
    rgb, truth = people.portraits(range(persons + held_out, persons + held_out + len(generated)))
    return {"readers": checked, "generated": read(readers, generated), "world": read(readers, rgb),
            "world_truth": distribution(truth["tone"], truth["hair"]),
            "world_truth_age_quantiles": np.quantile(truth["age"], QUANTILES).round(3).tolist()}
