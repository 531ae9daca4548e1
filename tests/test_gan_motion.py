"""The moved-features measure (fer_utils.gan.motion) and its two controls, on rendered people (issue 38).

A regressor fitted on a few rendered people must read other people's own apexes as moved (positive
control) and a fixed per-expression mark pasted on neutral faces as not moved (negative control):
a fake generator that returns the world's apex render reads as moved, one that paints a mark does not.
"""
import numpy as np
import pytest

from fer_utils.emotions import EMOTIONS
from fer_utils.gan import motion

PERSONS, RENDERS, HELD_OUT = 60, 6, 30  # small: the measure's defaults are 300, 8 and 200


@pytest.fixture(scope="module")
def world():
    """A reader fitted on rendered people, and other people neutral and at their six apexes (gray crops)."""
    from fer_utils.config import load_config
    from fer_utils.facegen.people import WorldPeople
    from fer_utils.gan.identity import neutral_box_crops
    cfg = load_config("quick")
    people = WorldPeople(cfg.world.seed, cfg.world.image_size)
    reader, info = motion.fit_reader(cfg, people, PERSONS, RENDERS)
    train = neutral_box_crops(cfg, people.apexes(range(PERSONS))[0])  # the reader's own people
    held = neutral_box_crops(cfg, people.apexes(range(PERSONS, PERSONS + HELD_OUT))[0])
    return reader, info, train, held


def test_the_positive_control_passes_on_people_the_reader_never_saw(world):
    reader, _, _, (neutral, apex) = world
    read = motion.read_motion(reader, (neutral, apex), neutral, apex)
    assert read["positive_passes"], read["positive_control"]


@pytest.mark.parametrize("strength", [20, pytest.param(40, marks=pytest.mark.xfail(strict=True, reason=(
    "found 2026-12-05: a reader fitted on these 60 people reads a texture of sd 40 as fearful on 27 % of faces "
    "(0.42); the default preset's 300-person reader reads the same texture as neutral on all of them (0.13)")))])
def test_a_painter_reads_as_not_moved_and_a_generator_returning_the_apex_as_moved(world, strength):
    """Fake generators: one adds a fixed mark per expression (a random texture of ``strength`` gray levels, the
    same on every face) to the neutral face, the other returns the person's own apex render."""
    reader, _, _, (neutral, apex) = world
    mark = np.random.default_rng(0).normal(0, strength, (6, *neutral.shape[1:])).astype(np.float32)
    painter = np.clip(neutral[:, None] + mark[None] + 0.5, 0, 255).astype(np.uint8)
    painted = motion.read_motion(reader, (neutral, apex), neutral, painter)["generated"]
    moved = motion.read_motion(reader, (neutral, apex), neutral, apex)["generated"]
    for name in EMOTIONS:
        assert 1 - painted[name]["moved"] >= motion.NEUTRAL_SHARE, (name, painted[name])
        assert moved[name]["fraction"] >= motion.TARGET, (name, moved[name])


def test_the_negative_control_reads_a_painter_as_its_translations_read(world):
    """A painting generator's own mean mark pasted back reads as its translations do: the control is what it
    claims to be (were a painter read as moved, so would its control be, and the measure would not be trusted)."""
    reader, _, _, (neutral, apex) = world
    mark = np.random.default_rng(1).normal(0, 20, (6, *neutral.shape[1:])).astype(np.float32)
    painter = np.clip(neutral[:, None] + mark[None] + 0.5, 0, 255).astype(np.uint8)
    read = motion.read_motion(reader, (neutral, apex), neutral, painter)
    for name in EMOTIONS:
        assert read["negative_control"][name]["fraction"] == pytest.approx(read["generated"][name]["fraction"],
                                                                           abs=0.05)


def test_the_reader_keeps_intensities_in_their_rendered_range(world):
    """Faces unlike any render (noise) must not read as AUs beyond [0, 1], which would let a texture outweigh
    every moved feature in the projection."""
    reader = world[0]
    noise = np.random.default_rng(1).integers(0, 256, (8, 64, 64), dtype=np.uint8)
    aus = reader.aus(noise)
    assert aus.min() >= 0 and aus.max() <= 1


def test_the_reference_is_each_expressions_rendered_change_and_the_reader_is_fitted_on_renders_only(world):
    reader, info, _, _ = world
    assert reader.reference.shape == (len(EMOTIONS), reader.regressor.coef_.shape[0])
    assert (reader.reference.max(1) > 0.3).all()  # every expression moves some unit well above nothing
    assert info["persons"] == PERSONS and info["renders_per_person"] == RENDERS


def test_painted_pastes_each_expressions_mean_difference_onto_every_neutral_face():
    neutral = np.array([[[10, 20]], [[30, 40]]], np.uint8)  # (2, 1, 2)
    expressions = np.repeat(neutral[:, None], 6, axis=1).astype(np.int16)
    expressions[0, 2] += 10  # person 0's fearful: +10; person 1's: +30 -> mean mark +20
    expressions[1, 2] += 30
    out = motion.painted(neutral, expressions.astype(np.uint8))
    assert out.shape == (2, 6, 1, 2) and out.dtype == np.uint8
    assert (out[:, 2] == neutral + 20).all()
    assert (out[:, [0, 1, 3, 4, 5]] == neutral[:, None]).all()
    assert (motion.painted(np.full((1, 1, 1), 250, np.uint8), np.full((1, 6, 1, 1), 255, np.uint8)) == 255).all()
