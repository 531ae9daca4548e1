"""The shipping criterion's controls (fer_utils.criterion_controls): their faces, their units, their scoring."""
import dataclasses

import cv2
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
    apex_intensity: tuple = (1.0, 1.0)
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
    real_imwrite = cv2.imwrite
    monkeypatch.setattr(cv2, "imwrite",
                        lambda path, img: next(calls) < 100 and real_imwrite(path, img))  # the disk fills
    with pytest.raises(OSError, match="could not write"):
        criterion_controls.write_unit(root, faces + 1)
    assert sorted(p.relative_to(root) for p in root.rglob("*.png")) == before
    assert (np.asarray(cv2.imread(str(next(root.rglob("*.png"))))) == 0).all()
    assert [p.name for p in tmp_path.iterdir()] == ["generated"]  # no temporary left
    with pytest.raises(ValueError, match="144 identities x 6 expressions"):
        criterion_controls.write_unit(root, faces[:10])


def test_each_arm_is_scored_as_a_candidate_on_its_own_unit(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(criterion_controls, "load_pipeline", lambda cfg: (FakePipe(), {}))
    monkeypatch.setattr(criterion_controls, "gan_faces", lambda cfg, db, labelled: (
        np.zeros((7 * 200, SIDE, SIDE, 3), np.uint8), np.arange(7 * 200) % 7))
    monkeypatch.setattr(criterion_controls, "gan_samples", lambda cfg, db, labelled: (
        [dataclasses.make_dataclass("S", ["extra"])({"valence": 0.1, "arousal": 0.2})] * (7 * 200), None))
    monkeypatch.setattr(criterion_controls, "write_unit", lambda root, faces: seen.append((root, faces.shape)))
    monkeypatch.setattr(criterion_controls, "taught", lambda arm, cfg, seeds: {
        "results_dir": arm.results_dir, "real_results_dir": cfg.results_dir, "seeds": seeds})
    cfg = _cfg(tmp_path)
    out = criterion_controls.teaching_controls(cfg, FakePeople(), seeds=(0, 1))
    assert list(out) == list(criterion_controls.ARMS)
    for arm, record in out.items():
        assert record["results_dir"].endswith(f"criterion/controls/{criterion_controls.arm_folder(arm)}")
        assert record["real_results_dir"] == cfg.results_dir  # real-only is experiment 1's own run
        assert record["seeds"] == (0, 1)
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


@pytest.mark.parametrize("value, why", [("0", "0 is less than 1"), ("two", "'two' is not a whole number")])
def test_criterion_seeds_must_be_a_whole_number_of_at_least_one(capsys, value, why):
    from fer_utils import cli
    with pytest.raises(SystemExit) as info:
        cli.main(["criterion", "--preset", "quick", "--seeds", value])
    assert info.value.code == 2 and f"argument --seeds: {why}" in capsys.readouterr().err


def test_criterion_seeds_run_from_train_seed_on(monkeypatch):
    from fer_utils import cli, criterion, inputs
    asked = []
    monkeypatch.setattr(inputs, "prepare_inputs", lambda cfg, databases, weights: None)
    monkeypatch.setattr(criterion, "candidate_record", lambda cfg, people, quality, seeds: asked.append(seeds) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["criterion", "--preset", "quick", "--skip-quality", "--seeds", "3", "--set", "train.seed=4"])
    assert asked == [(4, 5, 6)]


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


def test_the_strongest_arm_takes_each_expressions_faces_farthest_from_neutral_in_valence_and_arousal(tmp_path,
                                                                                                  monkeypatch):
    """Faces are ordered within each class by the hypotenuse of their (valence, arousal); an unannotated face is
    never chosen; if the listed samples and the cropped faces differ in number, no pairing is guessed."""
    from types import SimpleNamespace
    labels = np.repeat(np.arange(7), 300)
    strength = np.tile(np.arange(300), 7).astype(float)  # within a class: face i has strength i
    faces = np.broadcast_to((strength % 250)[:, None, None, None], (len(labels), SIDE, SIDE, 3)).astype(np.uint8)
    samples = [SimpleNamespace(extra={"valence": -0.6 * v / 300, "arousal": 0.8 * v / 300}) for v in strength]
    samples[299].extra["arousal"] = None  # angry's strongest face lacks its arousal
    monkeypatch.setattr(criterion_controls, "gan_faces", lambda cfg, db, labelled: (faces, labels))
    monkeypatch.setattr(criterion_controls, "gan_samples", lambda cfg, db, labelled: (samples, None))
    out = criterion_controls.stargan_training_faces_strongest(_cfg(tmp_path), FakePipe(), FakePeople())
    assert out.shape == (IDENTITIES_PER_UNIT, len(EMOTIONS), SIDE, SIDE, 3)
    assert out[:3, 0, 0, 0, 0].tolist() == [298 % 250, 297 % 250, 296 % 250]  # angry: 299 not annotated
    assert out[:2, 1, 0, 0, 0].tolist() == [299 % 250, 298 % 250]
    assert int(out[-1, 1, 0, 0, 0]) == (300 - IDENTITIES_PER_UNIT) % 250
    monkeypatch.setattr(criterion_controls, "gan_samples", lambda cfg, db, labelled: (samples[1:], None))
    with pytest.raises(criterion_controls.DataError, match="2099 training faces listed but 2100 cropped"):
        criterion_controls.stargan_training_faces_strongest(_cfg(tmp_path), FakePipe(), FakePeople())


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


def test_the_intensities_arm_renders_the_style_arms_people_at_the_affectnet_like_labels_intensities(tmp_path,
                                                                                                monkeypatch):
    seen = []
    monkeypatch.setattr(criterion_controls, "world_apexes", lambda cfg, pipe, people: seen.append(people) or "faces")
    arm = criterion_controls.ARMS["world apexes, AffectNet-like style and intensities"]
    assert arm(_cfg(tmp_path), FakePipe(), FakePeople()) == "faces"
    assert seen == [FakePeople(style="affectnet", apex_intensity=criterion_controls.AFFECTNET_INTENSITY)]


def test_the_arms_intensities_are_those_the_affectnet_like_database_draws():
    """The arm prices the AffectNet-like labels' intensities only while it draws the same ones as the world's writer."""
    import inspect

    from fer_utils.facegen import writers
    low, high = criterion_controls.AFFECTNET_INTENSITY
    assert f"intensity = rng.uniform({low}, {high}, len(index))" in inspect.getsource(writers.affectnet_job)


def test_weaker_apexes_show_the_same_people_in_the_same_view_acting_less():
    from fer_utils.facegen.people import WorldPeople
    full, full_aus = WorldPeople(0, 64, "affectnet").apexes(range(8))
    weak, weak_aus = WorldPeople(0, 64, "affectnet", apex_intensity=(0.3, 1.0)).apexes(range(8))
    assert np.array_equal(full[:, 0], weak[:, 0]) and np.array_equal(full_aus[:, 0], weak_aus[:, 0])  # neutral alike
    assert not np.array_equal(full[:, 1:], weak[:, 1:])
    assert np.abs(weak_aus[:, 1:]).sum() < 0.9 * np.abs(full_aus[:, 1:]).sum()
    same, _ = WorldPeople(0, 64, "affectnet", apex_intensity=(1.0, 1.0)).apexes(range(8))
    assert np.array_equal(full, same)


def _arm_record(hits_per_seed: list[list[int]], faces: int = 18) -> dict:
    """A taught() record whose synthetic-only runs got ``hits`` of ``faces`` right per subject, one list per seed."""
    counts = [{f"s{j}": [h, faces] for j, h in enumerate(hits)} for hits in hits_per_seed]
    acc = float(np.mean([sum(h) / (faces * len(h)) for h in hits_per_seed]))
    return {"synthetic_only": acc, "by_subject": {"synthetic_only": counts}}


def test_a_step_reads_as_a_cost_only_when_its_holm_adjusted_interval_excludes_zero():
    """Steps are read from their differences (seeds unpaired, subjects paired), Holm over the steps measured: a
    large drop reads "costs", a drop inside the noise "no verdict"; an arm not measured drops its steps."""
    rng = np.random.default_rng(0)
    low_hits = [rng.integers(2, 6, 10) for _ in range(3)]
    high = _arm_record([list(rng.integers(14, 18, 10)) for _ in range(3)])
    low = _arm_record([list(h) for h in low_hits])
    near = _arm_record([list(np.clip(h + rng.integers(-1, 2, 10), 0, 18)) for h in low_hits])
    controls = {"world apexes": high, "world apexes, AffectNet-like style": low,
                "world apexes, AffectNet-like style and intensities": near}
    steps = criterion_controls.step_differences(controls)
    assert [s["reading"] for s in steps] == ["costs", "no verdict"]
    assert steps[0]["difference"] > 0.5 and steps[0]["interval"][0] > 0 and steps[0]["p_holm"] < 0.05
    assert steps[1]["interval"][0] < 0 < steps[1]["interval"][1] and steps[1]["p_holm"] >= 0.05
    assert "the AffectNet-like style" in criterion_controls.steps_table(steps)
    nothing = controls | {"world apexes, AffectNet-like style": {"synthetic_only": None}}
    assert criterion_controls.step_differences(nothing) == []  # both steps touch the arm that learned nothing
