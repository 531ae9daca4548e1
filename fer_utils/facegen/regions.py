"""Where each action unit acts: one box per AU in face units, from the person's own geometry.

FACS describes every action unit by the region whose appearance it changes (Ekman, Friesen &
Hager 2002): AU1 raises the inner brows and lines the middle of the forehead, AU9 wrinkles the
root of the nose and lifts the upper lip, AU26 drops the jaw. A box here is symmetric about the
face's midline (|u| from ``u_in`` to ``u_out``) and spans ``v_top`` to ``v_bottom``, computed from
the identity's brow, eye, nose and mouth positions, so it follows each face. The tests use it to
check that an AU's rendered change lands where FACS says it should.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .expressions import AUS

Box = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # u_in, u_out, v_top, v_bottom per face


def _box(u_in: object, u_out: object, top: np.ndarray, bottom: np.ndarray) -> Box:
    """One box per face; constants are broadcast to the faces' count."""
    return tuple(np.broadcast_to(np.asarray(x, np.float32), np.shape(top)) for x in (u_in, u_out, top, bottom))


def _regions() -> dict[int, Callable[[dict[str, np.ndarray]], Box]]:
    """The box of each AU as a function of the identity table."""
    def eyes(margin: float, below: float) -> Callable[[dict[str, np.ndarray]], Box]:
        return lambda p: _box(p["eye_sep"] - margin * p["eye_w"], p["eye_sep"] + margin * p["eye_w"],
                              p["brow_y"] - 0.05, p["eye_y"] + below)

    def tip(p: dict[str, np.ndarray]) -> np.ndarray:
        return p["eye_y"] + p["nose_len"] + 0.16

    return {
        1: lambda p: _box(0, 0.65, p["brow_y"] - 0.55, p["eye_y"] + 0.02),  # inner brows, middle forehead
        2: lambda p: _box(0.1, 0.95, p["brow_y"] - 0.55, p["eye_y"] + 0.02),  # outer brows, forehead sides
        4: lambda p: _box(0, 0.8, p["brow_y"] - 0.25, p["eye_y"] + 0.12),  # brows, glabella, upper lids
        5: eyes(1.6, 0.12),  # upper lids
        6: lambda p: _box(0.1, 1.0, p["brow_y"], p["mouth_y"] + 0.12),  # eyes, crow's feet, cheeks
        7: eyes(1.7, 0.25),  # lids
        9: lambda p: _box(0, 0.65, p["brow_y"] - 0.1, p["mouth_y"] + 0.2),  # nose root to upper lip
        10: lambda p: _box(0, 0.7, tip(p) - 0.15, p["mouth_y"] + 0.15),  # upper lip, nasolabial fold
        12: lambda p: _box(0, 0.9, p["eye_y"] + 0.05, p["mouth_y"] + 0.3),  # mouth corners, cheeks, folds
        14: lambda p: _box(0, p["mouth_w"] + 0.2, p["mouth_y"] - 0.15, p["mouth_y"] + 0.15),  # corners
        15: lambda p: _box(0, 0.6, p["mouth_y"] - 0.15, p["head_h"] + 0.05),  # corners, chin
        16: lambda p: _box(0, 0.55, p["mouth_y"] - 0.1, p["head_h"] + 0.05),  # lower lip, chin
        20: lambda p: _box(0, 0.85, p["mouth_y"] - 0.2, p["mouth_y"] + 0.35),  # lips stretched sideways
        23: lambda p: _box(0, 0.6, p["mouth_y"] - 0.22, p["mouth_y"] + 0.25),  # lips
        26: lambda p: _box(0, 1.1, p["eye_y"] + 0.1, 1.35 * p["head_h"] + 0.2),  # jaw from its joint, chin, neck
    }


REGIONS = _regions()
assert set(REGIONS) == set(AUS), "every action unit needs a region"


def region_masks(au: int, identities: dict[str, np.ndarray], frame: np.ndarray,
                 size: tuple[int, int]) -> np.ndarray:
    """Pixel masks (N, H, W) of AU ``au``'s region for upright frontal faces (pose 0) at ``frame``.

    Args:
        au: an action unit of ``AUS``.
        identities: table from ``sample_identities``.
        frame: (N, 3) face centre x, y and scale (pixels per face unit), as given to ``render_faces``.
        size: (height, width) in pixels.
    """
    if au not in REGIONS:
        raise ValueError(f"region_masks: AU{au} is not one of the world's action units {', '.join(map(str, AUS))}")
    u_in, u_out, top, bottom = (x[:, None, None] for x in REGIONS[au](identities))
    ys = np.arange(size[0], dtype=np.float32)[None, :, None]
    xs = np.arange(size[1], dtype=np.float32)[None, None, :]
    cx, cy, s = (np.asarray(frame, np.float32)[:, i, None, None] for i in range(3))
    u, v = np.abs(xs - cx) / s, (ys - cy) / s
    return (u >= u_in) & (u <= u_out) & (v >= top) & (v <= bottom)
