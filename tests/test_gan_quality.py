"""GAN quality metrics on hand-made features: identity kept, Frechet distance, diversity, CNN input."""
import cv2
import numpy as np
import pytest
import torch

from fer_utils.gan.features import cnn_input, penultimate
from fer_utils.gan.measures import DUPLICATE_RMS, diversity, frechet_distance, identity_kept, nearest_neighbour_rms
from fer_utils.models.cnn import PaperCNN


def test_identity_kept_is_one_when_each_expression_is_its_own_source():
    sources = np.random.default_rng(0).normal(size=(20, 16))
    expressions = np.repeat(sources[:, None], 6, axis=1) * 3.0  # cosine ignores scale
    assert identity_kept(expressions, sources) == 1.0


def test_identity_kept_counts_the_share_of_own_nearest_sources():
    sources = np.eye(10)  # orthogonal persons
    expressions = np.repeat(sources[:, None], 6, axis=1).copy()
    expressions[5:] = np.roll(sources, 1, axis=0)[5:, None]  # persons 5..9 look like persons 4..8
    assert identity_kept(expressions, sources) == pytest.approx(0.5)
    expressions[:, :3] = np.roll(sources, 1, axis=0)[:, None]  # the first 3 expressions of everyone
    assert identity_kept(expressions, sources) == pytest.approx(5 * 3 / 60)


def test_identity_kept_is_near_chance_for_random_features():
    rng = np.random.default_rng(1)
    n = 50
    kept = identity_kept(rng.normal(size=(n, 6, 64)), rng.normal(size=(n, 64)))
    assert kept < 0.1  # chance 1/50 = 0.02


def test_frechet_distance_is_zero_for_identical_samples():
    a = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_is_the_squared_mean_shift_for_equal_covariance():
    a = np.random.default_rng(0).normal(size=(500, 8))
    shifts = [0.5, 1.0, 2.0]
    values = [frechet_distance(a, a + s) for s in shifts]
    assert values == pytest.approx([8 * s ** 2 for s in shifts], rel=1e-6)  # |dmu|^2 = F s^2
    b = np.random.default_rng(1).normal(size=(2000, 8))  # independent N(0, I) sample
    assert frechet_distance(b, b + np.array([3.0] + [0] * 7)) == pytest.approx(9.0, rel=1e-6)


def test_frechet_distance_counts_covariance_differences():
    a = np.random.default_rng(0).normal(size=(4000, 4))
    # b = 2a: cov_b = 4 cov_a, sqrt(cov_a cov_b) = 2 cov_a, so FD = |mu_a|^2 + tr(cov_a)
    expected = (a.mean(0) ** 2).sum() + np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, 2 * a) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, 2 * a) == pytest.approx(4.0, rel=0.1)  # tr(I) in 4 dimensions
    c = np.random.default_rng(2).normal(size=(4000, 4))  # another sample of the same Gaussian
    assert frechet_distance(a, c) < 0.05


def test_nearest_neighbour_rms_on_flat_images():
    gray = np.stack([np.full((8, 8), v, np.uint8) for v in (0, 51, 255)])
    assert nearest_neighbour_rms(gray) == pytest.approx([0.2, 0.2, 0.8])
    gray[1, :4] = 0  # half the pixels differ by 0.2: RMS 0.2 / sqrt(2)
    assert nearest_neighbour_rms(gray)[0] == pytest.approx(0.2 / np.sqrt(2))


def test_diversity_counts_exact_duplicates():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)
    faces[3] = faces[1]  # one pair of identical faces
    d = diversity(faces)
    assert d["faces"] == 5 and d["near_duplicates"] == 2 and d["threshold_rms"] == DUPLICATE_RMS
    assert d["nn_rms_min"] == pytest.approx(0.0, abs=1e-6)
    assert d["nn_rms_median"] > 0.3  # random uniform images are far apart (~0.41)
    near = faces.copy()
    near[0] = np.clip(faces[2].astype(int) + 2, 0, 255)  # 2 gray levels: under 0.02 RMS
    assert diversity(near)["near_duplicates"] == 4
    assert diversity(rng.integers(0, 256, (6, 16, 16), dtype=np.uint8))["near_duplicates"] == 0


def test_cnn_input_is_gray_uint8_of_the_requested_size():
    rgb = np.random.default_rng(0).integers(0, 256, (3, 80, 100, 3), dtype=np.uint8)
    gray = cnn_input(rgb, margin=0.2)
    assert gray.shape == (3, 64, 64) and gray.dtype == np.uint8
    assert cnn_input(rgb, margin=0.2, size=32).shape == (3, 32, 32)
    red = np.zeros((1, 40, 40, 3), np.uint8)
    red[..., 0] = 200  # RGB order: red weighs 0.299 in gray (it would be 0.114 read as BGR)
    assert (cnn_input(red, 0.2) == 60).all()


def test_penultimate_is_the_hidden_layer_the_logits_are_read_from():
    torch.manual_seed(0)
    model = PaperCNN().train()  # penultimate must switch dropout off itself
    gray = np.random.default_rng(0).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    feat = penultimate(model, gray, batch_size=2)
    assert feat.shape == (5, 1024) and (feat >= 0).all() and (feat > 0).any()
    assert np.allclose(feat, penultimate(model, gray), atol=1e-5)  # batching does not matter
    with torch.no_grad():
        logits = model(torch.from_numpy(gray).unsqueeze(1).float() / 255).numpy()
    assert np.allclose(model.classifier[4](torch.from_numpy(feat)).detach().numpy(), logits, atol=1e-4)


def test_fisherfaces_tell_rendered_people_apart_across_their_expressions():
    from fer_utils.config import load_config
    from fer_utils.facegen.people import WorldPeople
    from fer_utils.gan.identity import expression_crops, fisherfaces, flat
    cfg = load_config("quick")
    people = WorldPeople(cfg.world.seed, cfg.world.image_size)
    space, info = fisherfaces(cfg, people, people=60, renders=8)  # the quick preset's
    assert info["people"] == 60 and info["dimensions"] == 59
    neutral, apex = expression_crops(cfg, people, range(60, 80))  # 20 people the space was not fitted on
    assert neutral.shape == (20, 64, 64) and apex.shape == (20, 6, 64, 64) and apex.dtype == np.uint8
    # each expression shows: some pixel moves by more than 20 gray levels (world 0.3's lips are skin-toned, not a
    # dark shape, so a weak sad moves its most-changed pixel by 30 levels for one of these people; 0.2's moved > 30)
    assert (np.abs(apex.astype(int) - neutral[:, None]).max(axis=(2, 3)) > 20).all()
    kept = identity_kept(space.transform(flat(apex)).reshape(20, 6, -1), space.transform(flat(neutral)))
    assert kept >= 0.9  # chance 1/20
    shuffled = identity_kept(space.transform(flat(apex[::-1])).reshape(20, 6, -1), space.transform(flat(neutral)))
    assert shuffled < 0.2  # other people's expressions are not taken for the person


def test_identity_pool_is_beyond_every_world_database():
    from fer_utils.config import load_config
    from fer_utils.facegen.people import IDENTITY_POOL
    from fer_utils.facegen.writers import POOL_OFFSET
    paper = load_config("paper").world
    largest = max(POOL_OFFSET.values()) + max(paper.affectnet_images, paper.ffhq_images)
    assert IDENTITY_POOL > largest


def test_generated_faces_are_compared_without_a_second_crop():
    from fer_utils.gan.quality import _gray
    rgb = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64, 3), dtype=np.uint8)
    gray = _gray(rgb, 64)
    assert gray.shape == (2, 3, 64, 64)
    assert np.array_equal(gray[1, 2], cv2.cvtColor(rgb[1, 2], cv2.COLOR_RGB2GRAY))


# ---------------------------------------------------------------- the shipped weights' recorded quality
def _default(tmp_path, **overrides):
    from fer_utils.config import load_config
    return load_config("default", {"results_dir": str(tmp_path / "results"), **overrides})


@pytest.fixture
def measured_data(monkeypatch):
    """The configured data are the faces the shipped record was measured on (CI does not write the default world)."""
    import json

    from fer_utils.gan import quality
    from fer_utils.gan.shipped import PROVENANCE, SHIPPED
    inputs = json.loads(PROVENANCE.read_text())[SHIPPED["stargan"].name]["quality"]["identity"]["inputs"]
    recorded = {name: inputs[name] for name in ("affectnet", "affectnet_heldout", "ffhq")}
    monkeypatch.setattr(quality, "data_identity", lambda cfg: dict(recorded))
    return recorded


def test_recorded_quality_describes_the_shipped_weights_on_the_default_preset(tmp_path, measured_data):
    from fer_utils.gan.quality import recorded_quality
    q = recorded_quality(_default(tmp_path))
    assert q is not None and q["preset"] == "default"
    assert 0 <= q["expression_transfer"]["accuracy"] <= 1


@pytest.mark.parametrize("overrides, named", [
    ({"generate.truncation_psi": 0.5}, "generate.truncation_psi 0.7 -> 0.5"),
    ({"generate.quality_identities": 500}, "generate.quality_identities 1000 -> 500"),
    ({"generate.judge_epochs": 20}, "generate.judge_epochs"), ({"generate.judge_faces": 6000}, "generate.judge_faces"),
    ({"train.precision": "fp32"}, "judge_recipe.precision"), ({"train.lr": 0.01}, "judge_recipe.lr"),
    ({"generate.identity_people": 300}, "generate.identity_people"), ({"generate.seed": 3}, "generate.seed"),
    ({"preprocess.margin": 0.3}, "preprocess.margin")])
def test_recorded_quality_is_not_shown_for_other_settings(tmp_path, measured_data, capsys, overrides, named):
    from fer_utils.gan.quality import recorded_quality
    assert recorded_quality(_default(tmp_path, **overrides)) is None
    out = capsys.readouterr().out
    assert "settings changed: " in out and named in out


def test_recorded_quality_is_reused_whatever_the_batch_size_or_the_epochs_of_the_experiments(tmp_path, measured_data):
    """Settings the measures do not read never cost a ~50 min re-measure."""
    from fer_utils.gan.quality import recorded_quality
    assert recorded_quality(_default(tmp_path, **{"generate.batch_size": 7, "train.epochs": 3})) is not None


def test_recorded_quality_is_not_shown_once_the_measuring_code_changed(tmp_path, monkeypatch, measured_data, capsys):
    """Numbers made by other code are measured again (the motion measure edited, say), and the file is named."""
    from fer_utils import identity
    code = dict(identity.CODE["quality"]) | {"gan/motion.py": "0" * 16}
    monkeypatch.setitem(identity.CODE, "quality", code)
    from fer_utils.gan.quality import recorded_quality
    assert recorded_quality(_default(tmp_path)) is None
    assert "code changed: gan/motion.py" in capsys.readouterr().out


def test_a_quality_record_without_an_identity_is_not_shown(tmp_path, monkeypatch, measured_data, capsys):
    import json

    from fer_utils.gan import quality, shipped
    record = json.loads(shipped.PROVENANCE.read_text())
    del record[shipped.SHIPPED["stargan"].name]["quality"]["identity"]
    older = tmp_path / "provenance.json"
    older.write_text(json.dumps(record))
    monkeypatch.setattr(quality, "PROVENANCE", older)
    assert quality.recorded_quality(_default(tmp_path)) is None
    assert "made by an older version" in capsys.readouterr().out


def test_recorded_quality_is_not_shown_for_other_weights(tmp_path, monkeypatch, measured_data):
    import shutil

    from fer_utils.gan import quality
    from fer_utils.gan.shipped import SHIPPED
    copy = tmp_path / "mine.safetensors"  # the same bytes, but the user's file
    shutil.copyfile(SHIPPED["stargan"], copy)
    assert quality.recorded_quality(_default(tmp_path, **{"generate.stargan_weights": str(copy)})) is None
    monkeypatch.setattr(quality, "file_sha256", lambda path: "0" * 64)  # shipped files changed since measured
    assert quality.recorded_quality(_default(tmp_path)) is None


@pytest.mark.parametrize("database", ["affectnet", "affectnet_heldout", "ffhq"])
def test_recorded_quality_is_not_shown_for_other_faces(tmp_path, monkeypatch, measured_data, capsys, database):
    """Another world (or your own AffectNet or FFHQ) under the same preset and weights is measured again."""
    from fer_utils.gan import quality
    monkeypatch.setattr(quality, "data_identity", lambda cfg: measured_data | {database: "0" * 16})
    assert quality.recorded_quality(_default(tmp_path)) is None
    assert f"input changed: {database} hash" in capsys.readouterr().out


def test_recorded_quality_is_not_shown_when_the_data_cannot_be_read(tmp_path, capsys):
    from fer_utils.gan import quality
    missing = str(tmp_path / "no_such_affectnet")
    assert quality.recorded_quality(_default(tmp_path, **{"data.affectnet": missing})) is None
    assert missing in capsys.readouterr().out


def test_quality_table_puts_the_judges_real_accuracy_beside_each_transferred_class(tmp_path, measured_data):
    import copy

    from fer_utils.gan.quality import quality_table, recorded_quality
    q = copy.deepcopy(recorded_quality(_default(tmp_path)))
    q["expression_transfer"]["per_class"] = {"angry": 0.13, "happy": 0.98}
    q["expression_transfer"].pop("confusion", None)  # added below
    q["expression_cnn"]["val_accuracy_real_per_class"] = {"angry": 0.68, "happy": 0.94}
    assert "angry 13% (real 68%), happy 98% (real 94%)" in quality_table(q)
    del q["expression_cnn"]["val_accuracy_real_per_class"]  # a record from before it was kept
    assert "(angry 13%, happy 98%);" in quality_table(q)
    counts = np.zeros((6, 6), int)
    counts[0] = [13, 0, 2, 0, 85, 0]  # angry mostly read as sad
    counts[3, 3] = 98  # happy never misread
    q["expression_transfer"]["confusion"] = counts.tolist()
    assert "(angry 13% [sad 85%], happy 98%; in square brackets" in quality_table(q)


def test_quality_of_measures_unless_a_matching_record_may_be_reused(tmp_path, monkeypatch, measured_data):
    from fer_utils.gan import quality
    measured = {"measured": True}
    monkeypatch.setattr(quality, "report_quality", lambda cfg, people: measured)
    reused = quality.quality_of(_default(tmp_path), people=None)
    assert reused is not measured and reused["preset"] == "default"
    assert (tmp_path / "results" / "gan" / "quality.json").is_file()
    assert quality.quality_of(_default(tmp_path, **{"generate.reuse_quality": False}), None) is measured
    assert quality.quality_of(_default(tmp_path, **{"generate.truncation_psi": 0.5}), None) is measured


@pytest.mark.parametrize("judge_faces, trained_on", [(0, 40), (25, 25), (1000, 40)])
def test_the_judging_cnn_trains_on_the_configured_budget(tmp_path, monkeypatch, judge_faces, trained_on):
    from types import SimpleNamespace

    from fer_utils.gan import judge
    rng = np.random.default_rng(0)
    splits = ["train"] * 40 + ["val"] * 12
    faces = SimpleNamespace(images=rng.integers(0, 255, (52, 64, 64), dtype=np.uint8),
                            labels=np.arange(52) % 6, manifest=[{"split": s} for s in splits])
    seen = {}

    def fake_fit(name, train, val, recipe, device, seeds, progress):
        seen.update(train=len(train.labels), val=len(val.labels), epochs=recipe.epochs, precision=recipe.precision)
        return [SimpleNamespace(model=PaperCNN().eval(), best_epoch=1, precision="bf16", failure="")]

    monkeypatch.setattr(judge, "load_database", lambda cfg, name: faces)
    monkeypatch.setattr(judge, "fit", fake_fit)
    cfg = _default(tmp_path, **{"generate.judge_epochs": 3, "generate.judge_faces": judge_faces})
    _, info, real = judge.expression_cnn(cfg)
    assert seen == {"train": trained_on, "val": 12, "epochs": 3, "precision": "auto"}
    assert (info["train_faces"], info["faces_requested"], info["epochs"]) == (trained_on, judge_faces, 3)
    assert (info["precision_setting"], info["precision"]) == ("auto", "bf16")  # the setting and what ran
    assert len(real["train"]) == 40 and len(real["val"]) == 12


def test_the_judging_cnn_is_kept_and_reused_only_for_the_same_faces_and_recipe(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from fer_utils.gan import judge
    rng = np.random.default_rng(0)
    faces = SimpleNamespace(images=rng.integers(0, 255, (52, 64, 64), dtype=np.uint8), labels=np.arange(52) % 6,
                            manifest=[{"split": s} for s in ["train"] * 40 + ["val"] * 12])
    fits = []

    def fake_fit(name, train, val, recipe, device, seeds, progress):
        torch.manual_seed(len(fits))
        fits.append(recipe.epochs)
        return [SimpleNamespace(model=PaperCNN().eval(), best_epoch=1, precision="fp32", failure="")]

    monkeypatch.setattr(judge, "load_database", lambda cfg, name: faces)
    monkeypatch.setattr(judge, "fit", fake_fit)
    cfg = _default(tmp_path, **{"generate.judge_epochs": 3})
    first, info, _ = judge.expression_cnn(cfg)
    again, info_again, _ = judge.expression_cnn(cfg)
    assert fits == [3] and info_again == info  # the kept CNN, not a second training
    x = torch.rand(4, 1, 64, 64)
    assert torch.equal(first(x), again(x))
    judge.expression_cnn(_default(tmp_path, **{"generate.judge_epochs": 4}))  # another recipe
    assert fits == [3, 4]
    faces.images[0] += 1  # other faces, same recipe
    judge.expression_cnn(_default(tmp_path, **{"generate.judge_epochs": 4}))
    assert fits == [3, 4, 4]
    (tmp_path / "results" / "gan" / "judge.safetensors").unlink()  # weights gone: train again
    judge.expression_cnn(_default(tmp_path, **{"generate.judge_epochs": 4}))
    assert fits == [3, 4, 4, 4]
    (tmp_path / "results" / "gan" / "judge.json").write_text("{not json")  # damaged record: named, trained again
    judge.expression_cnn(_default(tmp_path, **{"generate.judge_epochs": 4}))
    assert fits == [3, 4, 4, 4, 4] and "judge.json is unreadable" in capsys.readouterr().out


@pytest.mark.parametrize("key,value", [("generate.judge_epochs", 0), ("generate.judge_faces", -1),
                                       ("generate.identity_people", 1), ("generate.identity_people", 5),
                                       ("generate.quality_identities", 1)])
def test_the_quality_check_refuses_a_budget_it_cannot_run_with_when_the_preset_is_read(key, value):
    """Before ~50 min of judge training, not after: the settings are refused when read."""
    from fer_utils.config import ConfigError, load_config
    with pytest.raises(ConfigError, match=rf"{key} must be >= "):
        load_config("quick", {key: value})


def test_quality_table_shows_low_passed_transfer_and_moved_features_where_recorded(tmp_path, measured_data):
    import copy

    from fer_utils.emotions import EMOTIONS
    from fer_utils.gan.quality import quality_table, recorded_quality
    q = copy.deepcopy(recorded_quality(_default(tmp_path)))
    older = copy.deepcopy(q)  # a record from before both were measured
    del older["expression_transfer"]["low_passed"], older["motion"]
    assert "low-passed" not in quality_table(older) and "moved features" not in quality_table(older)
    q["expression_transfer"]["low_passed"] = {"sigma_px": 1.5, "accuracy": 0.412, "real_accuracy": 0.8}
    read = {name: {"fraction": 0.3, "moved": 0.1} for name in EMOTIONS}
    q["motion"] = {"generated": read, "negative_control": read, "positive_passes": True, "negative_passes": False}
    table = quality_table(q)
    assert "41.2%; the CNN on low-passed real faces 80.0%" in table
    assert "angry 0.30 (pasted mark 0.30)" in table and "positive True, negative False" in table
