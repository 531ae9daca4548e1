"""Each action unit changes the face's appearance where FACS says, scaled by intensity and deepened by age."""
import numpy as np
import pytest
import torch

from fer_utils.facegen import face, render_faces, sample_identities
from fer_utils.facegen.expressions import AU_INDEX, AUS, PROTOTYPES, expression_aus
from fer_utils.facegen.identity import take
from fer_utils.facegen.regions import REGIONS, region_masks

SIZE = (160, 128)
PEOPLE = 8
FOLDING = (1, 2, 4, 6, 9, 12, 15)  # AUs whose appearance includes wrinkles or folds


def _render(ids: dict, aus: np.ndarray) -> np.ndarray:
    """Upright frontal faces lit from the upper right, as float RGB (N, H, W, 3)."""
    n = len(aus)
    frame = np.tile([64, 72, 40], (n, 1)).astype(np.float32)
    light = np.tile([0.3, -0.4, 1, 0.4, 0.6], (n, 1)).astype(np.float32)
    img = render_faces(ids, aus, np.zeros((n, 3), np.float32), light, SIZE, frame=frame,
                       background=np.full((n, 3), 0.5))
    return img.astype(np.float32)


def _change(ids: dict, au: int, intensity: float = 1.0) -> np.ndarray:
    """Squared RGB difference (N, H, W) between each person at the AU's intensity and at neutral."""
    n = len(ids["age"])
    both = take(ids, np.tile(np.arange(n), 2))
    aus = np.zeros((2 * n, len(AUS)), np.float32)
    aus[n:, AU_INDEX[au]] = intensity
    img = _render(both, aus)
    return ((img[n:] - img[:n]) ** 2).sum(-1)


@pytest.fixture(scope="module")
def people():
    return sample_identities(4, range(PEOPLE), age=(0.05, 0.95))


def test_every_action_unit_has_a_region():
    assert set(REGIONS) == set(AUS)


def test_an_unknown_action_unit_is_named(people):
    with pytest.raises(ValueError, match="AU17 is not one of the world's action units"):
        region_masks(17, people, np.tile([64, 72, 40], (PEOPLE, 1)), SIZE)


@pytest.mark.parametrize("au", AUS)
def test_action_unit_changes_its_own_region(people, au):
    """Most of the apex-minus-neutral energy lies inside the AU's region, a small part of the frame."""
    d = _change(people, au)
    frame = np.tile([64, 72, 40], (PEOPLE, 1))
    inside = region_masks(au, people, frame, SIZE)
    share = (d * inside).sum((1, 2)) / d.sum((1, 2))
    rms = np.sqrt(d.mean((1, 2)))
    assert rms.min() > 1.5, f"AU{au} barely changes the face (RMS {rms.min():.2f} gray levels)"
    assert share.min() >= 0.9, f"AU{au}: only {share.min():.1%} of its change inside its region"
    assert inside.mean() < 0.35, f"AU{au}'s region covers {inside.mean():.0%} of the frame: it proves nothing"


@pytest.mark.parametrize("au", AUS)
def test_intensity_scales_the_change(people, au):
    half, apex = _change(people, au, 0.5).sum((1, 2)), _change(people, au, 1.0).sum((1, 2))
    assert np.all(half > 0) and np.all(half < apex)


def _folds(ids: dict, au: int, age: float) -> torch.Tensor:
    """How much deeper the AU at apex makes the skin's folds than at neutral, per pixel, at an age."""
    ids = {k: torch.as_tensor(v)[:, None, None] if v.ndim == 1 else torch.as_tensor(v) for k, v in ids.items()}
    ids["age"] = torch.full_like(ids["age"], age)
    v, u = torch.meshgrid(torch.linspace(-1.4, 1.6, 150), torch.linspace(-1.3, 1.3, 130), indexing="ij")
    grooves = []
    for a in (0.0, 1.0):
        aus = torch.zeros(PEOPLE, len(AUS))
        aus[:, AU_INDEX[au]] = a
        f = face.features(ids, aus)
        grooves.append(face.creases(u, v, f, face.mouth(u, v, f, torch.tensor(0.03)))[1])
    return grooves[1] - grooves[0]


@pytest.mark.parametrize("au", FOLDING)
def test_age_deepens_the_folds(people, au):
    young, old = _folds(people, au, 0.1), _folds(people, au, 0.9)
    assert young.sum() > 0
    assert torch.all(old.sum((1, 2)) > 1.5 * young.sum((1, 2)))


def test_six_expressions_look_different_for_every_person(people):
    six = ("angry", "disgusted", "fearful", "happy", "sad", "surprised")
    assert set(six) < set(PROTOTYPES)
    rng = np.random.default_rng(0)
    ids = take(people, np.repeat(np.arange(PEOPLE), len(six)))
    aus = expression_aus(list(six) * PEOPLE, np.ones(PEOPLE * len(six)), ids["au_gain"], rng, variability=0.0)
    img = _render(ids, aus).reshape(PEOPLE, len(six), -1)
    for p in range(PEOPLE):
        rms = np.sqrt(((img[p, :, None] - img[p, None]) ** 2).mean(-1))
        rms[np.diag_indices(len(six))] = np.inf
        assert rms.min() > 2.0, f"person {p}: two expressions render alike (RMS {rms.min():.2f})"
