"""The generators' quality measures as pure functions of arrays: identity kept, diversity, Frechet distance."""
from __future__ import annotations

import numpy as np
from scipy import linalg

DUPLICATE_RMS = 0.02  # about 5 gray levels on average: visually the same face


def identity_kept(expressions: np.ndarray, sources: np.ndarray) -> float:
    """Share of (person, expression) whose nearest source (cosine) is the person's own.

    Args:
        expressions: features (N, E, F) of each person's E expressions.
        sources: features (N, F) of each person's source face.
    """
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    sims = np.einsum("nef,mf->nem", unit(expressions), unit(sources))  # (N, E, N)
    own = np.arange(len(sources))[:, None]
    return float((sims.argmax(axis=2) == own).mean())


def nearest_neighbour_rms(gray: np.ndarray) -> np.ndarray:
    """Each face's RMS pixel distance (gray in [0, 1]) to its nearest other face; (N,)."""
    x = gray.reshape(len(gray), -1).astype(np.float64) / 255
    sq = (x**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0) / x.shape[1]
    np.fill_diagonal(d2, np.inf)
    return np.sqrt(d2.min(axis=1))


def diversity(gray: np.ndarray, threshold: float = DUPLICATE_RMS) -> dict[str, float]:
    """Nearest-neighbour distances summarised, and the number of faces with a near-duplicate."""
    nn_rms = nearest_neighbour_rms(gray)
    return {"faces": len(gray), "nn_rms_min": float(nn_rms.min()), "nn_rms_median": float(np.median(nn_rms)),
            "near_duplicates": int((nn_rms < threshold).sum()), "threshold_rms": threshold}


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to features a (N, F) and b (M, F) (as FID)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` rows of x, drawn without replacement (seeded)."""
    return x if len(x) <= n else x[np.random.default_rng(seed).choice(len(x), n, replace=False)]
