"""Every figure of the paper in one look: confusion heat-maps, P/R/F1 bars, learning and ratio curves."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless (CI, papermill); notebooks still display the returned Figure
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .emotions import EMOTIONS
from .runtime import atomic_path

STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False,
         "figure.dpi": 120}
METRIC_COLOURS = {"precision": "#4c72b0", "recall": "#dd8452", "f1": "#55a868"}
CMAP = "Blues"


def save_figure(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """Save ``fig`` as PNG atomically when a path is given; return it for display."""
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")  # rcParams do not reach a later savefig
    return fig


def confusion_heatmap(counts: np.ndarray, names: Sequence[str] = EMOTIONS, title: str = "",
                      path: str | os.PathLike | None = None) -> Figure:
    """Heat-map coloured by row-normalised rate, annotated with counts (paper Figs 4, 6, 9, 11)."""
    counts = np.asarray(counts)
    rows = counts.sum(axis=1, keepdims=True)
    rate = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        im = ax.imshow(rate, cmap=CMAP, vmin=0, vmax=1)
        for (i, j), c in np.ndenumerate(counts):
            ax.text(j, i, str(c), ha="center", va="center", color="white" if rate[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set(xlabel="predicted", ylabel="true", title=title)
        fig.colorbar(im, ax=ax, fraction=0.046, label="row rate")
    return save_figure(fig, path)


def prf_bars(per_class: Mapping[str, Mapping[str, float]], title: str = "",
             path: str | os.PathLike | None = None) -> Figure:
    """Grouped precision / recall / F1 bars per class (paper Figs 5, 7, 10); input = evaluate()['per_class']."""
    names = list(per_class)
    x = np.arange(len(names))
    width = 0.8 / len(METRIC_COLOURS)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for k, (metric, colour) in enumerate(METRIC_COLOURS.items()):
            ax.bar(x + (k - 1) * width, [per_class[n][metric] for n in names], width, label=metric, color=colour)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set(ylim=(0, 1.05), ylabel="score", title=title)
        ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    return save_figure(fig, path)


def learning_curves(history: Mapping[str, Sequence[float]], title: str = "",
                    path: str | os.PathLike | None = None) -> Figure:
    """Loss and accuracy per epoch, train vs val; input = FitResult.history."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        for ax, key in zip(axes, ("loss", "acc")):
            ax.plot(epochs, history[key], "o-", ms=3, label="train", color=METRIC_COLOURS["precision"])
            ax.plot(epochs, history[f"val_{key}"], "o-", ms=3, label="val", color=METRIC_COLOURS["recall"])
            ax.set(xlabel="epoch", ylabel="accuracy" if key == "acc" else "cross-entropy")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].legend(frameon=False)
        fig.suptitle(title)
    return save_figure(fig, path)


Line = tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]  # x, mean, CI low, CI high
ARM_STYLE = {"mix": ("real + k generated", "#4c72b0", "o-"), "mix-filtered": ("real + k filtered", "#55a868", "s-"),
             "synth": ("k generated only", "#c44e52", "^--")}


def ratio_curve(panels: Mapping[str, Mapping[str, Line]], baseline: Mapping[str, Line] | None = None,
                title: str = "", path: str | os.PathLike | None = None) -> Figure:
    """Accuracy against k with 95 % intervals, one panel per test set (paper Fig 8 and the arms it lacks).

    Args:
        panels: test set -> arm (``mix``, ``mix-filtered``, ``synth``, or any label) -> (k, mean, low, high).
        baseline: test set -> real-only (one point): drawn as a horizontal line with its band.
    """
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True)
        for ax, (name, lines) in zip(axes[0], panels.items()):
            ks = sorted({k for x, *_ in lines.values() for k in x})
            if baseline and name in baseline:
                _, (mean,), (lo,), (hi,) = baseline[name]
                ax.axhline(mean, color="0.3", lw=1, label="real only")
                ax.axhspan(lo, hi, color="0.3", alpha=0.12, lw=0)
            for arm, (x, mean, lo, hi) in lines.items():
                label, colour, marker = ARM_STYLE.get(arm, (arm, None, "o-"))
                (line,) = ax.plot(x, mean, marker, ms=4, color=colour, label=label)
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
            ax.set_xticks(ks)
            ax.set(xlabel="k (generated units per real unit)", ylim=(0, 1), title=name)
        axes[0][0].set_ylabel("accuracy")
        axes[0][-1].legend(frameon=False, fontsize=8, loc="lower right")
        fig.suptitle(title)
    return save_figure(fig, path)
