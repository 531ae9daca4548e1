"""The shipping criterion's controls (fer_utils.criterion_controls): their faces, their units, their scoring."""
import dataclasses

import numpy as np
import pytest

from fer_utils import criterion_controls, preprocess
from fer_utils.config import load_config
from fer_utils.emotions import EMOTIONS
from fer_utils.experiments import generated_splits
from fer_utils.gan.generate import IDENTITIES_PER_UNIT

SIDE = 16


class FakePipe:
    """Stands in for the generators: sources are noise, translation paints each domain's index into the face."""

    class stylegan2:
        z_dim = 4

    def __call__(self, z):
        sources = np.random.default_rng(len(z)).integers(0, 200, (len(z), SIDE, SIDE, 3), dtype=np.uint8)
        return sources, self.translate(sources), ["haar"] * len(z)

    def crop(self, faces):
        return faces[:, :SIDE, :SIDE], ["haar"] * len(faces)

    def translate(self, faces):
        return np.stack([faces + 10 * k for k in range(len(EMOTIONS))], axis=1).astype(np.uint8)


@dataclasses.dataclass
class FakePeople:
    """Records which persons it rendered, in which style."""

    style: str = "ffhq"
    asked: list = dataclasses.field(default_factory=list)

    def expressions(self, people):
        self.asked[:] = list(people)
        return np.stack([np.full((7, SIDE, SIDE, 3), k % 250, np.uint8) for k in range(len(self.asked))])


def _cfg(tmp_path):
    return load_config("quick", {"results_dir": str(tmp_path / "results"), "device": "cpu"})


def test_the_negative_control_files_the_same_face_under_every_label(tmp_path):
    faces = criterion_controls.neutral_under_six_labels(_cfg(tmp_path), FakePipe(), FakePeople())
    assert faces.shape == (IDENTITIES_PER_UNIT, len(EMOTIONS), SIDE, SIDE, 3)
    assert (faces == faces[:, :1]).all()  # nothing tells one class from another: it must teach chance


def test_the_positive_control_renders_people_of_no_database_at_their_own_apexes(tmp_path):
    people = FakePeople()
    faces = criterion_controls.world_apexes(_cfg(tmp_path), FakePipe(), people)
    assert faces.shape == (IDENTITIES_PER_UNIT, len(EMOTIONS), SIDE, SIDE, 3)
    assert people.asked[0] == criterion_controls.FIRST_PERSON and len(people.asked) == IDENTITIES_PER_UNIT


def test_a_written_unit_is_read_as_generate_writes_one(tmp_path, monkeypatch):
    monkeypatch.setattr(preprocess, "detect_face", lambda image: None)  # centre crops: Haar is not under test
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (IDENTITIES_PER_UNIT, len(EMOTIONS), 64, 64, 3), dtype=np.uint8)
    cfg = criterion_controls.arm_config(_cfg(tmp_path), "world apexes")
    criterion_controls.write_unit(cfg.path(cfg.data.generated), faces)
    splits = generated_splits(cfg, 1)
    assert {s: len(set(f.subjects.tolist())) for s, f in splits.items()} == {"train": 109, "val": 10, "test": 25}
    assert all((np.bincount(f.labels, minlength=6) == len(set(f.subjects.tolist()))).all() for f in splits.values())


def test_a_unit_that_fails_midway_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    root = tmp_path / "generated"
    faces = np.zeros((IDENTITIES_PER_UNIT, len(EMOTIONS), 8, 8, 3), np.uint8)
    criterion_controls.write_unit(root, faces)
    before = sorted(p.relative_to(root) for p in root.rglob("*.png"))
    calls = iter(range(10**6))
    real_imwrite = criterion_controls.cv2.imwrite
    monkeypatch.setattr(criterion_controls.cv2, "imwrite",
                        lambda path, img: next(calls) < 100 and real_imwrite(path, img))  # the disk fills
    with pytest.raises(OSError, match="could not write"):
        criterion_controls.write_unit(root, faces + 1)
    assert sorted(p.relative_to(root) for p in root.rglob("*.png")) == before
    assert (np.asarray(criterion_controls.cv2.imread(str(next(root.rglob("*.png"))))) == 0).all()
    assert [p.name for p in tmp_path.iterdir()] == ["generated"]  # no temporary left
    with pytest.raises(ValueError, match="144 identities x 6 expressions"):
        criterion_controls.write_unit(root, faces[:10])


def test_each_arm_is_scored_as_a_candidate_on_its_own_unit(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(criterion_controls, "load_pipeline", lambda cfg: (FakePipe(), {}))
    monkeypatch.setattr(criterion_controls, "gan_faces", lambda cfg, db, labelled: (
        np.zeros((7 * 200, SIDE, SIDE, 3), np.uint8), np.arange(7 * 200) % 7))
    monkeypatch.setattr(criterion_controls, "write_unit", lambda root, faces: seen.append((root, faces.shape)))
    monkeypatch.setattr(criterion_controls, "taught", lambda arm, cfg: {"results_dir": arm.results_dir,
                                                                         "real_results_dir": cfg.results_dir})
    cfg = _cfg(tmp_path)
    out = criterion_controls.teaching_controls(cfg, FakePeople())
    assert list(out) == list(criterion_controls.ARMS)
    for arm, record in out.items():
        assert record["results_dir"].endswith(f"criterion/controls/{criterion_controls.arm_folder(arm)}")
        assert record["real_results_dir"] == cfg.results_dir  # real-only is experiment 1's own run
    assert all(shape[:2] == (IDENTITIES_PER_UNIT, len(EMOTIONS)) for _, shape in seen)


@pytest.mark.parametrize("flags, gan_data", [(["--skip-quality"], False), (["--skip-quality", "--controls"], True),
                                             ([], True)])
def test_the_controls_prepare_the_worlds_identities_before_any_work(monkeypatch, flags, gan_data):
    """StarGAN on world identities reads data.ffhq: prepared first, not found missing after two arms' training."""
    from fer_utils import cli, inputs
    from fer_utils.config import InputError
    asked = []

    def prepare(cfg, databases, weights):
        asked.extend(databases)
        raise InputError("stop here")

    monkeypatch.setattr(inputs, "prepare_inputs", prepare)
    assert cli.main(["criterion", "--preset", "quick", *flags]) == 2
    assert ("ffhq" in asked) == gan_data


def test_stargans_training_faces_are_filed_by_their_own_labels_and_a_short_class_is_named(tmp_path, monkeypatch):
    labels = np.repeat(np.arange(7), 150)  # StarGAN domains: the six expressions, then neutral
    faces = np.broadcast_to(labels[:, None, None, None], (len(labels), SIDE, SIDE, 3)).astype(np.uint8)
    monkeypatch.setattr(criterion_controls, "gan_faces", lambda cfg, db, labelled: (faces, labels))
    out = criterion_controls.stargan_training_faces(_cfg(tmp_path), FakePipe(), FakePeople())
    assert out.shape == (IDENTITIES_PER_UNIT, len(EMOTIONS), SIDE, SIDE, 3)
    assert [int(out[:, k].max()) for k in range(len(EMOTIONS))] == list(range(len(EMOTIONS)))  # no neutral face
    monkeypatch.setattr(criterion_controls, "gan_faces", lambda cfg, db, labelled: (faces[50:], labels[50:]))
    with pytest.raises(criterion_controls.DataError, match=r"angry \(100\)"):
        criterion_controls.stargan_training_faces(_cfg(tmp_path), FakePipe(), FakePeople())


def test_the_affectnet_style_arm_renders_the_positive_controls_people_in_that_style(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(criterion_controls, "world_apexes", lambda cfg, pipe, people: seen.append(people) or "faces")
    people = FakePeople()
    assert criterion_controls.world_apexes_affectnet_style(_cfg(tmp_path), FakePipe(), people) == "faces"
    assert seen == [FakePeople(style="affectnet")] and people.style == "ffhq"
    assert len({criterion_controls.arm_folder(arm) for arm in criterion_controls.ARMS}) == len(criterion_controls.ARMS)
    assert criterion_controls.arm_folder("world apexes, AffectNet-like style") == "world-apexes-AffectNet-like-style"


def test_world_people_in_another_style_are_the_same_people_in_that_databases_camera():
    from fer_utils.facegen.people import WorldPeople
    ffhq = WorldPeople(0, 64).expressions([0, 1])
    affectnet = WorldPeople(0, 64, "affectnet").expressions([0, 1])
    assert ffhq.shape == affectnet.shape and not np.array_equal(ffhq, affectnet)
    assert np.array_equal(ffhq, WorldPeople(0, 64, "ffhq").expressions([0, 1]))  # the default is the FFHQ-like style
