"""Paper Figures 2 and 3: StarGAN on a real face (every domain) and generated identities (six expressions)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..plots import STYLE, save_figure


def face_grid(rows: np.ndarray, titles: Sequence[str], path: str | os.PathLike | None = None,
              cell: float = 1.1) -> Figure:
    """Show RGB faces (R, C, H, W, 3) as R rows of C columns, each column titled; save as PNG if ``path``."""
    n_rows, n_cols = rows.shape[:2]
    if len(titles) != n_cols:
        raise ValueError(f"{n_cols} columns but {len(titles)} titles")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows + 0.3), squeeze=False)
        for (r, c), ax in np.ndenumerate(axes):
            ax.imshow(rows[r, c])
            ax.set_axis_off()
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
        fig.subplots_adjust(wspace=0.04, hspace=0.04)
    return save_figure(fig, path)


def with_source(sources: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Put each input face (N, H, W, 3) in front of its translations (N, D, H, W, 3) -> (N, D + 1, H, W, 3)."""
    return np.concatenate([sources[:, None], outputs], axis=1)
