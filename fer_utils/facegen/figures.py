"""Labelled grids of each database style: rows = expressions, columns = identities."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..emotions import ALL_LABELS
from ..runtime import atomic_path
from .expressions import expression_aus
from .identity import sample_identities, take
from .styles import STYLES, image_shape, nuisance, render_style
from .writers import POOL_OFFSET


def style_grid(name: str, columns: int = 6, seed: int = 0, image_size: int = 128) -> np.ndarray:
    """Render (len(ALL_LABELS), columns, H, W[, 3]) apex faces of one style's subject pool."""
    st = STYLES[name]
    rng = np.random.default_rng([seed, 99])
    ids = sample_identities(seed, range(POOL_OFFSET[name], POOL_OFFSET[name] + columns), skin=st.skin, age=st.age)
    rows = len(ALL_LABELS)
    people = take(ids, np.tile(np.arange(columns), rows))
    labels = [lab for lab in ALL_LABELS for _ in range(columns)]
    aus = expression_aus(labels, np.ones(len(labels)), people["au_gain"], rng, st.variability)
    nz = nuisance(st, columns, image_shape(st, image_size), rng)
    fixed = {k: np.tile(v, (rows, 1)) for k, v in nz.items()}  # one camera per person
    img = render_style(st, people, labels, np.ones(len(labels)), image_size, rng, aus=aus, **fixed)
    return img.reshape(rows, columns, *img.shape[1:])


def save_style_grids(out_dir: Path, columns: int = 6, seed: int = 0, dpi: int = 60) -> list[Path]:
    """Save ``world_<style>.png`` for every style (rows = expressions, columns = identities), atomically.

    Notebook 02 calls it, so ``figures/`` shows the world the default results come from; ``dpi`` 60 keeps
    each grid near 100 KB while a face stays about 70 px wide.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name in STYLES:
        grid = style_grid(name, columns, seed)
        rows = grid.shape[0]
        fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.3 * grid.shape[2] / grid.shape[3]))
        for (r, c), ax in np.ndenumerate(axes):
            ax.imshow(grid[r, c], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(ALL_LABELS[r], fontsize=8)
        fig.suptitle(f"{name}-like style (columns = identities)", fontsize=9)
        fig.tight_layout()
        path = Path(out_dir) / f"world_{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
