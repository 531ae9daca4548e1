"""Labelled grids of each database style: rows = expressions, columns = people at half intensity and apex."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..emotions import ALL_LABELS
from ..runtime import atomic_path
from .expressions import expression_aus
from .identity import sample_identities, take
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
        path = Path(out_dir) / f"world_{name}.png"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        plt.close(fig)
        with atomic_path(path) as tmp:  # a 256-colour palette: a third of the bytes, no visible loss at this size
            Image.open(buffer).convert("RGB").quantize(256).save(tmp, format="png", optimize=True)
        paths.append(path)
    return paths
