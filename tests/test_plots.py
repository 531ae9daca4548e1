"""Each figure renders to a non-empty PNG and returns its Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fer_utils import plots
from fer_utils.emotions import EMOTIONS
from fer_utils.evaluate import evaluate

RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 6, 120)
PREDS = np.where(RNG.random(120) < 0.6, LABELS, RNG.integers(0, 6, 120))
METRICS = evaluate(PREDS, LABELS, LABELS.astype(str))
HISTORY = {"loss": [1.7, 1.2, 0.9], "acc": [0.3, 0.5, 0.7], "val_loss": [1.6, 1.3, 1.4], "val_acc": [0.3, 0.45, 0.5]}
CASES = {
    "confusion": lambda p: plots.confusion_heatmap(np.array(METRICS["confusion"]), EMOTIONS, "MMI", path=p),
    "prf": lambda p: plots.prf_bars(METRICS["per_class"], "MMI", path=p),
    "learning": lambda p: plots.learning_curves(HISTORY, "CNN", path=p),
    "ratio": lambda p: plots.ratio_curve(
        {"MMI": {"mix": ([1, 3], [0.55, 0.6], [0.5, 0.56], [0.6, 0.64]), "synth": ([1, 3], [0.4, 0.45], [0.3, 0.4],
                                                                              [0.5, 0.5])}},
        {"MMI": ([0], [0.5], [0.45], [0.55])}, path=p),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_is_saved_as_png(name: str, tmp_path) -> None:
    """The PNG exists, starts with the PNG signature, and no temp file is left behind."""
    path = tmp_path / "figs" / f"{name}.png"
    fig = CASES[name](path)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
