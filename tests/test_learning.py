"""The training loop learns: the Table-1 CNN beats chance on persons it never saw, and shuffled labels do not.

Why this test exists: on the quick preset (what CI runs) every classifier sits at chance (16.7 %,
six classes), so a broken training loop (labels misaligned with images, gradients not applied,
best weights not restored, a scrambled predict) would still pass CI. Here the paper's CNN is
trained through the project's own engine (``fit`` with a ``TrainConfig``, scored by ``predict``)
on a small slice of the embedded world's faces, rendered in memory, and must beat chance on
held-out subjects by a margin; the same training with shuffled labels must stay near chance,
which shows that the margin separates learning from not learning.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fer_utils.config import TrainConfig
from fer_utils.emotions import EMOTIONS
from fer_utils.engine import ArraySplit, fit, predict
from fer_utils.facegen.expressions import expression_aus
from fer_utils.facegen.identity import sample_identities, take
from fer_utils.facegen.render import render_faces
from fer_utils.facegen.styles import STYLES, camera, nuisance

SEED = 0
SIDE = 64  # the CNN's input: gray 64 x 64
TRAIN, VAL, TEST = 12, 4, 12  # persons per split; no person is in two splits
REPEATS = 2  # faces per person and expression (each its own pose, light, AU draw)
IDENTITY_OFFSET = 5_000_000  # a pool of people no database of the world uses (writers.POOL_OFFSET)
# RaFD's studio, photographed as the preprocessing crop frames it: gray, the face filling the square.
STYLE = dataclasses.replace(STYLES["rafd"], size=(1.0, 1.0), color=False, scale=0.5)
# NEGATIVE: the faces go in as photographic negatives (255 - gray), features bright on a dark ground.
# On the positives (bright skin and background) this CNN, with PyTorch's default init and this recipe,
# sat at chance for 7 epochs or more (seeds 1 and 4 of 0-4 still did after 11): too long for CI. On the
# negatives it left chance after 2-6 epochs (seeds 0-9). The loop under test is the same either way.
CFG = TrainConfig(epochs=8, batch_size=16, lr=5e-4, lr_decay=0.0, patience=8, seed=SEED, precision="fp32")
CHANCE = 1 / len(EMOTIONS)
# Calibration, this file as it stands, seeds 0-9 (seed = faces and training), 2-core CPU, fp32: held-out
# accuracy 50.7-71.5 % (0.639 0.569 0.535 0.632 0.507 0.618 0.535 0.521 0.715 0.653); shuffled labels
# 16.7-17.4 % (the model falls back to one class). Required: >= 35 % learned (chance + 18 points, 15
# points under the worst seed; another CPU's rounding is another such draw) and <= 25 % shuffled
# (+8 points, 2.7 binomial SDs over chance on 144 test faces), so a run passes only by learning.
LEARNED, SHUFFLED = 0.35, 0.25


def render(seed: int, persons: int, repeats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gray faces (N, 64, 64) uint8, labels (N,) and person index (N,), deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    ids = sample_identities(seed, range(IDENTITY_OFFSET, IDENTITY_OFFSET + persons), skin=STYLE.skin, age=STYLE.age)
    person = np.repeat(np.arange(persons), len(EMOTIONS) * repeats)
    labels = np.tile(np.repeat(np.arange(len(EMOTIONS)), repeats), persons)
    n = len(labels)
    nz = nuisance(STYLE, n, (SIDE, SIDE), rng)
    aus = expression_aus([EMOTIONS[k] for k in labels], np.ones(n), ids["au_gain"][person], rng, STYLE.variability)
    rgb = render_faces(take(ids, person), aus, nz["pose"], nz["light"], (SIDE, SIDE), frame=nz["frame"],
                       gaze=nz["gaze"], background=nz["background"], compiled=False)  # eager: no 50 s build
    return 255 - camera(rgb, STYLE, nz["frame"], rng), labels, person  # negatives: see NEGATIVE


def splits(seed: int) -> dict[str, ArraySplit]:
    """Train / val / test faces of disjoint persons."""
    images, labels, person = render(seed, TRAIN + VAL + TEST, REPEATS)
    part = np.digitize(person, [TRAIN, TRAIN + VAL])  # 0 train, 1 val, 2 test
    return {name: ArraySplit(images[part == k], labels[part == k]) for k, name in enumerate(("train", "val", "test"))}


def held_out_accuracy(data: dict[str, ArraySplit], shuffle: bool = False, seed: int = SEED) -> float:
    """Train the Table-1 CNN (labels permuted if ``shuffle``) and score it on the test persons."""
    train = data["train"]
    if shuffle:
        train = ArraySplit(train.images, np.random.default_rng(seed).permutation(train.labels))
    model = fit("cnn", train, data["val"], CFG, "cpu", seeds=(seed,), progress=False)[0].model
    predicted = predict(model, data["test"].images, "cpu").argmax(1)
    return float((predicted == data["test"].labels).mean())


@pytest.fixture(scope="module")
def faces() -> dict[str, ArraySplit]:
    """The faces, rendered once for both tests."""
    return splits(SEED)


def test_cnn_beats_chance_on_held_out_persons(faces) -> None:
    """Trained on 12 persons, the CNN reads the expressions of 12 others well above chance."""
    acc = held_out_accuracy(faces)
    assert acc >= LEARNED, f"held-out accuracy {acc:.1%} < {LEARNED:.0%} (chance {CHANCE:.1%}): training did not learn"


def test_shuffled_labels_stay_near_chance(faces) -> None:
    """The same training on permuted labels stays near chance: the bar above is not met without learning."""
    acc = held_out_accuracy(faces, shuffle=True)
    assert acc <= SHUFFLED, f"shuffled-label accuracy {acc:.1%} > {SHUFFLED:.0%}: the margin does not separate learning"
