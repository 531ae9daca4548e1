"""Identity parameters: one person = one deterministic draw from (seed, identity index)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .expressions import AUS

# Skin albedo at tone 0 (light) and tone 1 (dark), linear RGB in [0, 1].
_SKIN_LIGHT = np.array([0.93, 0.76, 0.66], np.float32)
_SKIN_DARK = np.array([0.42, 0.27, 0.18], np.float32)
_HAIR = np.array([[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.55, 0.40, 0.22],
                  [0.45, 0.18, 0.08], [0.60, 0.58, 0.55]], np.float32)
_IRIS = np.array([[0.25, 0.15, 0.08], [0.30, 0.40, 0.55], [0.30, 0.40, 0.25]], np.float32)
_CLOTHES = np.array([[0.12, 0.13, 0.16], [0.55, 0.55, 0.58], [0.15, 0.22, 0.40], [0.45, 0.12, 0.12],
                     [0.85, 0.85, 0.82], [0.25, 0.35, 0.22]], np.float32)

# Scalar fields and their uniform ranges, in face units (head half-width = 1).
_RANGES: dict[str, tuple[float, float]] = {
    "head_w": (0.92, 1.05), "head_h": (1.16, 1.28), "jaw": (0.12, 0.30),
    "eye_sep": (0.34, 0.42), "eye_y": (-0.20, -0.12), "eye_w": (0.16, 0.2), "eye_h": (0.07, 0.095),
    "brow_y": (-0.42, -0.34), "brow_thick": (0.03, 0.05), "brow_arch": (0.0, 0.05),
    "nose_len": (0.26, 0.36), "nose_w": (0.09, 0.14), "nose_h": (0.18, 0.32),
    "mouth_y": (0.58, 0.68), "mouth_w": (0.30, 0.38), "lip_up": (0.025, 0.045),
    "lip_lo": (0.035, 0.06), "hairline": (-0.92, -0.68), "hair_len": (0.0, 1.2),
    "texture_phase": (0.0, 6.283),
}


def sample_identities(seed: int, indices: Sequence[int] | np.ndarray,
                      skin: tuple[float, float] = (0.0, 1.0),
                      age: tuple[float, float] = (0.15, 0.8),
                      male: float = 0.5) -> dict[str, np.ndarray]:
    """Draw identity parameters so that (seed, index) always yields the same person.

    Args:
        seed: world seed.
        indices: identity indices (disjoint ranges per database give disjoint subject pools).
        skin: range of skin tone, 0 light to 1 dark (the database's population).
        age: range of age, 0 child to 1 elderly (drives wrinkles and face proportions).
        male: probability that a person is male (beard, brows, short hair).
    """
    rows = [_one_identity(np.random.default_rng([seed, int(i), 7]), skin, age, male) for i in indices]
    return {k: np.stack([r[k] for r in rows]).astype(np.float32) for k in rows[0]}


def _one_identity(rng: np.random.Generator, skin: tuple[float, float], age: tuple[float, float],
                  male: float) -> dict[str, np.ndarray]:
    """Draw one person's fields from one generator (fixed draw order keeps it reproducible)."""
    p = {k: np.float32(rng.uniform(lo, hi)) for k, (lo, hi) in _RANGES.items()}
    tone = rng.uniform(*skin)
    p["tone"] = np.float32(tone)
    p["skin"] = (_SKIN_LIGHT * (1 - tone) + _SKIN_DARK * tone) * rng.uniform(0.95, 1.05, 3)
    p["age"] = np.float32(rng.uniform(*age))
    p["male"] = np.float32(rng.random() < male)
    hair = _HAIR[rng.choice(4, p=[0.45, 0.3, 0.15, 0.1])] if p["age"] < 0.75 else _HAIR[4]
    p["hair"] = hair * rng.uniform(0.85, 1.15, 3)
    p["iris"] = _IRIS[rng.choice(3, p=[0.6, 0.25, 0.15])] if tone < 0.5 else _IRIS[0]
    p["lips"] = p["skin"] * np.array([0.85, 0.5, 0.5]) * rng.uniform(0.75, 0.95)
    p["hair_len"] = np.float32(p["hair_len"] * (0.4 if p["male"] else 1.0))
    p["beard"] = np.float32(p["male"] and rng.random() < 0.18)
    p["glasses"] = np.float32(rng.random() < 0.08)
    p["brow_thick"] = np.float32(p["brow_thick"] * (1.25 if p["male"] else 1.0))
    p["au_gain"] = rng.lognormal(0.0, 0.25, len(AUS))  # per-person strength of each action unit
    # drawn last, so that the fields above stay as they were for every person
    p["part"] = np.float32(rng.uniform(-0.35, 0.35))  # hair parting, face units from the midline
    p["oil"] = np.float32(rng.uniform(0.5, 1.5))  # how much the skin shines
    p["redness"] = np.float32(rng.uniform(0.3, 1.0))  # blood under the cheeks, nose and ears
    p["grain"] = np.float32(rng.uniform(0.0, 6.283))  # phase of the fine skin and hair texture
    p["clothes"] = _CLOTHES[rng.integers(len(_CLOTHES))] * rng.uniform(0.8, 1.2, 3)
    return p


def take(ids: dict[str, np.ndarray], idx: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Select rows of an identity table (e.g. repeat one person over many frames)."""
    idx = np.asarray(idx)
    return {k: v[idx] for k, v in ids.items()}
