"""Labelled grids of each database style: rows = expressions, columns = people at half intensity and apex."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..emotions import ALL_LABELS
from ..runtime import atomic_path
from .expressions import AUS, expression_aus
from .identity import sample_identities, take
from .regions import REGIONS
from .render import render_faces
from .styles import STYLES, image_shape, nuisance, render_style
from .writers import POOL_OFFSET

INTENSITIES = (0.5, 1.0)  # half intensity, apex


def style_grid(name: str, people: int = 3, seed: int = 0, image_size: int = 128) -> np.ndarray:
    """Render (len(ALL_LABELS), people * 2, H, W[, 3]) faces of one style's subject pool.

    Each person appears twice per row, at half intensity and at apex, with one camera and one set
    of action units per person and expression (the half-intensity face is the same expression, weaker).
    """
    st = STYLES[name]
    rng = np.random.default_rng([seed, 99])
    ids = sample_identities(seed, range(POOL_OFFSET[name], POOL_OFFSET[name] + people), skin=st.skin, age=st.age)
    rows, columns = len(ALL_LABELS), people * len(INTENSITIES)
    who = np.tile(np.repeat(np.arange(people), len(INTENSITIES)), rows)
    labels = [lab for lab in ALL_LABELS for _ in range(columns)]
    strength = np.tile(INTENSITIES, rows * people)
    apex = expression_aus(labels, np.ones(len(labels)), take(ids, who)["au_gain"], rng, st.variability)
    apex = np.repeat(apex[::len(INTENSITIES)], len(INTENSITIES), 0)  # one draw of AUs per person and expression
    nz = nuisance(st, people, image_shape(st, image_size), rng)
    fixed = {k: v[who] for k, v in nz.items()}  # one camera per person
    img = render_style(st, take(ids, who), labels, strength, image_size, rng, aus=apex * strength[:, None], **fixed)
    return img.reshape(rows, columns, *img.shape[1:])


def save_style_grids(out_dir: Path, people: int = 3, seed: int = 0, dpi: int = 75) -> list[Path]:
    """Save ``world_<style>.png`` for every style (rows = expressions, columns = people x intensity), atomically.

    Notebook 02 calls it, so ``figures/`` shows the world the default results come from; ``dpi`` 75 keeps
    each grid at 100-350 KB (a 256-colour palette) while a face stays about 90 px wide.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name in STYLES:
        grid = style_grid(name, people, seed)
        rows, columns = grid.shape[:2]
        fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.3 * grid.shape[2] / grid.shape[3]))
        for (r, c), ax in np.ndenumerate(axes):
            ax.imshow(grid[r, c], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(ALL_LABELS[r], fontsize=8)
            if r == 0:
                ax.set_title(f"person {c // len(INTENSITIES) + 1}, {INTENSITIES[c % len(INTENSITIES)]:g}", fontsize=7)
        fig.suptitle(f"{name}-like style (each person at half intensity, then apex)", fontsize=9)
        fig.tight_layout()
        paths.append(_save_png(fig, Path(out_dir) / f"world_{name}.png", dpi))
    return paths


def _save_png(fig: object, path: Path, dpi: int) -> Path:
    """Write a figure atomically as a 256-colour PNG (a third of the bytes, no visible loss at this size)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    with atomic_path(path) as tmp:
        Image.open(buffer).convert("RGB").quantize(256).save(tmp, format="png", optimize=True)
    return path


def save_action_unit_sheet(out_dir: Path, seed: int = 0, dpi: int = 80) -> Path:
    """Save ``world_action_units.png``: one person at neutral and with each action unit alone at apex.

    Each panel outlines the AU's region (``regions.REGIONS``), where the tests require most of its change to
    fall, so a reader can check by eye what each AU does to the skin and where.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(AUS) + 1
    person = take(sample_identities(seed, [POOL_OFFSET["rafd"]], age=(0.6, 0.6)), [0] * n)
    aus = np.vstack([np.zeros(len(AUS)), np.eye(len(AUS))]).astype(np.float32)
    frame = np.tile([64, 76, 42], (n, 1)).astype(np.float32)
    img = render_faces(person, aus, np.zeros((n, 3), np.float32), np.tile([0.3, -0.4, 1, 0.4, 0.6], (n, 1)),
                       (168, 128), frame=frame, background=np.full((n, 3), 0.85))
    fig, axes = plt.subplots(2, n // 2, figsize=(n // 2 * 1.9, 2 * 2.55))
    for i, ax in enumerate(axes.flat):
        ax.imshow(img[i])
        ax.set_xticks([]), ax.set_yticks([])
        if i == 0:
            ax.set_title("neutral", fontsize=8)
            continue
        au = AUS[i - 1]
        u_in, u_out, top, bottom = (float(x[0]) * frame[0, 2] for x in REGIONS[au](person))
        cx, cy = frame[0, :2]
        for side in (-1, 1):  # the region is symmetric about the midline
            x0 = cx + side * u_in if side > 0 else cx - u_out
            ax.add_patch(plt.Rectangle((x0, cy + top), u_out - u_in, bottom - top, fill=False, lw=0.6, ec="yellow"))
        ax.set_title(f"AU{au}", fontsize=8)
    fig.suptitle("each action unit alone at apex; yellow: its region (tests/test_facegen_aus.py)", fontsize=8)
    fig.tight_layout()
    return _save_png(fig, Path(out_dir) / "world_action_units.png", dpi)
