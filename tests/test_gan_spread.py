"""The identity-spread readers (fer_utils.gan.spread): checked on rendered people whose truth is known."""
import numpy as np
import pytest

from fer_utils.gan import spread


@pytest.fixture(scope="module")
def measured():
    """A 'generator' of light-skinned people only (rendered people of the lightest 40 % of tones), measured."""
    from fer_utils.facegen.people import WorldPeople
    people = WorldPeople(0, 128)
    rgb, truth = people.portraits(range(2000, 2250))
    light = rgb[truth["tone"] < np.quantile(truth["tone"], 0.4)]
    return spread.measure_spread(people, light, persons=250, held_out=100), len(light)


def test_the_readers_read_skin_tone_and_hair_colour_of_people_they_were_not_fitted_on(measured):
    checked = measured[0]["readers"]
    assert checked["tone_r2"] >= 0.8
    assert checked["hair_accuracy"] >= 0.8  # four colours; the commonest (black) is 45 %


def test_a_generator_of_light_skinned_people_reads_narrower_than_the_world(measured):
    """The measure sees a population that lacks dark skin: its upper tone quantiles fall below the world's."""
    out, n = measured
    assert out["generated"]["faces"] == n and out["world"]["faces"] == n
    assert out["generated"]["tone_quantiles"][-1] < out["world"]["tone_quantiles"][2]  # its 90th below their median
    assert out["world_truth"]["tone_quantiles"][-1] > out["generated"]["tone_quantiles"][-1]
    assert sum(out["generated"]["hair_shares"].values()) == pytest.approx(1.0, abs=0.01)


def test_the_regions_lie_inside_the_frame():
    for (top, bottom), (left, right) in (spread.HAIR, *spread.CHEEKS):
        assert 0 <= top < bottom <= 1 and 0 <= left < right <= 1
        assert int(bottom * spread.SIDE) > int(top * spread.SIDE) and int(right * spread.SIDE) > int(left * spread.SIDE)
