"""FACS action units and the EMFACS prototypes, with per-person variation so classes overlap."""
from __future__ import annotations

import numpy as np

AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 20, 23, 26)
AU_INDEX: dict[int, int] = {au: i for i, au in enumerate(AUS)}

# EMFACS prototypes; contempt is AU14 on one side only.
PROTOTYPES: dict[str, dict[int, float]] = {
    "happy": {6: 0.8, 12: 1.0},
    "sad": {1: 0.9, 4: 0.6, 15: 1.0},
    "surprised": {1: 1.0, 2: 1.0, 5: 0.8, 26: 1.0},
    "fearful": {1: 0.9, 2: 0.6, 4: 0.7, 5: 1.0, 7: 0.4, 20: 1.0, 26: 0.5},
    "angry": {4: 1.0, 5: 0.5, 7: 0.8, 23: 1.0},
    "disgusted": {9: 1.0, 10: 0.6, 15: 0.6, 16: 0.6, 4: 0.3},
    "contemptuous": {14: 1.0},
    "neutral": {},
}


def expression_aus(labels: list[str], intensity: np.ndarray, gain: np.ndarray,
                   rng: np.random.Generator, variability: float = 1.0) -> np.ndarray:
    """Return (N, len(AUS)) AU intensities in [0, 1] for labels at an intensity (0 neutral, 1 apex).

    Args:
        labels: expression name per face (keys of ``PROTOTYPES``).
        intensity: (N,) onset-to-apex ramp.
        gain: (N, len(AUS)) per-person AU strength (``identity["au_gain"]``).
        rng: draws the missing / extra action units; seeded by the caller.
        variability: scales how often AUs go missing or appear uninvited (style of a database).
    """
    n = len(labels)
    base = np.zeros((n, len(AUS)), np.float32)
    for i, name in enumerate(labels):
        for au, w in PROTOTYPES[name].items():
            base[i, AU_INDEX[au]] = w
    missing = rng.random((n, len(AUS))) < 0.12 * variability
    extra = (rng.random((n, len(AUS))) < 0.05 * variability) * rng.uniform(0.2, 0.6, (n, len(AUS)))
    base = np.where(missing & (base < 0.95), base * 0.2, base) + extra * (base == 0)
    gain = gain ** np.float32(variability)
    return np.clip(base * gain * np.asarray(intensity, np.float32)[:, None], 0.0, 1.0).astype(np.float32)
