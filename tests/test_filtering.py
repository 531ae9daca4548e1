"""The filtered arm's data: a filter that never sees held-out faces, exact quotas, honest shortfalls, kept records."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from synthetic import synthetic_faces, tiny_cnn

from fer_utils import filtering, preprocess
from fer_utils.config import ConfigError, DataError, load_config
from fer_utils.emotions import EMOTIONS
from fer_utils.gan import generate
from fer_utils.models import MODELS
from fer_utils.preprocess import FaceSet, split_subjects

MARKER = 7  # every pixel of a face the filter must never see
REAL = {"rafd": 8, "oulu": 7}  # subjects per real database (15 = 10 train + 2 val + 3 test)
SPLIT = {"split.train_subjects": 10, "split.val_subjects": 2, "split.test_subjects": 3}


def quick(tmp_path, **overrides):
    """Quick preset writing only under tmp_path, on the CPU, one short epoch."""
    return load_config("quick", {"results_dir": str(tmp_path / "results"), "data.cache": str(tmp_path / "cache"),
                                 "data.generated": str(tmp_path / "gen"), "device": "cpu", "train.epochs": 1,
                                 "preprocess.workers": 1, **overrides})


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Table-1 CNN replaced by a CNN that trains in a blink (undone after the test)."""
    monkeypatch.setitem(MODELS, "cnn", tiny_cnn)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every (model, fit set, stop set) the filter trains on; training itself still runs."""
    calls, real_fit = [], filtering.fit
    monkeypatch.setattr(filtering, "fit", lambda name, train, val, *a, **k: calls.append((name, train, val))
                        or real_fit(name, train, val, *a, **k))
    return calls


def _faceset(images: np.ndarray, labels: np.ndarray, subjects: list[str], database: str) -> FaceSet:
    """A preprocessed-looking set (what load_database returns)."""
    n = len(labels)
    rows = [{"path": f"{i}.png", "database": database, "subject": s.split(":")[1], "label": int(labels[i]),
             "split": ""} for i, s in enumerate(subjects)]
    return FaceSet(images, labels.astype(np.int64), np.array(subjects), np.array([database] * n), np.ones(n, bool),
                   rows)


def _stamped(database: str, n_subjects: int) -> FaceSet:
    """One face per class and subject; pixels (0, 0) and (0, 1) say whose face it is (database code, subject)."""
    rng = np.random.default_rng(n_subjects)
    subjects = [f"{database}:p{i}" for i in range(n_subjects) for _ in EMOTIONS]
    labels = np.tile(np.arange(len(EMOTIONS)), n_subjects)
    images = rng.integers(20, 256, (len(labels), 64, 64), dtype=np.uint8)
    images[:, 0, 0] = list(REAL).index(database) + 1
    images[:, 0, 1] = np.repeat(np.arange(n_subjects), len(EMOTIONS))
    return _faceset(images, labels, subjects, database)


def _whose(images: np.ndarray) -> set[str]:
    """Subjects of stamped faces, read back from their pixels."""
    return {f"{list(REAL)[img[0, 0] - 1]}:p{img[0, 1]}" for img in images}


def test_the_filter_sees_only_real_training_subjects(tmp_path, tiny, captured, monkeypatch) -> None:
    """Markers planted in real val/test subjects, MMI, CK+ and generated faces never reach the filter's fit or stop
    set; the two sets split the real training subjects between them."""
    cfg = quick(tmp_path, **SPLIT)
    every = [f"{db}:p{i}" for db, n in REAL.items() for i in range(n)]
    held_out = {s for name in ("val", "test") for s in split_subjects(every, (10, 2, 3), cfg.split.seed)[name]}
    train_subjects = set(every) - held_out

    def fake_load_database(cfg, name, root=None, include_neutral=False):
        if name not in REAL:  # mmi, ckplus, generated: nothing of theirs may be trained on
            return _faceset(np.full((12, 64, 64), MARKER, np.uint8), np.arange(12) % 6,
                            [f"{name}:m{i % 2}" for i in range(12)], name)
        faces = _stamped(name, REAL[name])
        faces.images[np.isin(faces.subjects, list(held_out))] = MARKER
        return faces

    monkeypatch.setattr(preprocess, "load_database", fake_load_database)
    monkeypatch.setattr(filtering, "load_database", fake_load_database)
    filtering.filter_model(cfg)
    ((name, fit_set, stop_set),) = captured
    assert name == "cnn"
    for part in (fit_set, stop_set):
        assert not (part.images == MARKER).all(axis=(1, 2)).any(), "a held-out face reached the filter"
    fit_subjects, stop_subjects = _whose(fit_set.images), _whose(stop_set.images)
    assert not fit_subjects & stop_subjects
    assert fit_subjects | stop_subjects == train_subjects and len(stop_subjects) == 1  # about 10 % of 10
    assert len(fit_set.labels) + len(stop_set.labels) == 6 * len(train_subjects)


def test_keep_mask_keeps_the_requested_expression_at_or_above_the_threshold() -> None:
    probs = np.array([[0.5, 0.5, 0, 0, 0, 0], [0.1, 0.2, 0.7, 0, 0, 0], [0.9, 0.1, 0, 0, 0, 0],
                      [0, 0, 0, 0, 0.49, 0.51]])
    labels = np.array([0, 2, 1, 4])
    assert filtering.keep_mask(probs, labels, 0.5).tolist() == [True, True, False, False]  # 0.5 >= 0.5 kept
    assert filtering.keep_mask(probs, labels, 0.0).all()  # tau 0 keeps every face, even a zero probability
    assert filtering.keep_mask(probs, np.array([1, 2, 0, 5]), 0.5).tolist() == [True, True, True, True]
    assert filtering.keep_mask(probs, labels, 1.0).tolist() == [False] * 4
    with pytest.raises(ValueError, match="threshold"):
        filtering.keep_mask(probs, labels, 1.5)
    with pytest.raises(ValueError, match="class indices"):
        filtering.keep_mask(probs, np.array([0, 1, 2, 6]), 0.5)


# ---------------------------------------------------------------- selection from a small generated database
IDS = {"train": (0, 1), "val": (2,), "test": (3,)}  # identity numbers run across splits, as generate writes them


def _write_generated(root, units: int) -> None:
    """A generated database in generate's layout (<split>/<class>/uNN_idKKK/...png), done markers included."""
    rng = np.random.default_rng(0)
    for unit in range(units):
        for split, ids in IDS.items():
            for k in ids:
                name = generate.subject_name(unit, k)
                for cls in EMOTIONS:
                    path = root / split / cls / name / f"{name}_{cls}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    assert cv2.imwrite(str(path), rng.integers(0, 256, (64, 64), dtype=np.uint8))
        (root / f".u{unit:02d}.done.json").write_text("{}")


def stand_in_scores(bad: set[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter gives a face's requested expression 0.9, or 0.1 when (subject, class) is in ``bad``."""
    def score(model, faces, device):
        probs = np.zeros((len(faces), len(EMOTIONS)))
        for i, (subject, label) in enumerate(zip(faces.subjects, faces.labels)):
            p = 0.1 if (subject.removeprefix("generated:"), EMOTIONS[label]) in bad else 0.9
            probs[i] = (1 - p) / (len(EMOTIONS) - 1)
            probs[i, label] = p
        return probs

    monkeypatch.setattr(filtering, "score_faces", score)


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch) -> dict[str, FaceSet]:
    """Synthetic real splits (4 subjects each) for the filter; the dict can be edited to change them."""
    splits = {"train": synthetic_faces(48, 0), "val": synthetic_faces(24, 1), "test": synthetic_faces(24, 2)}
    monkeypatch.setattr(filtering, "real_splits", lambda cfg: splits)
    return splits


def _subjects(faces: FaceSet, cls: str) -> list[str]:
    """Subjects of one class, in pool order (unit, identity)."""
    return sorted(s.removeprefix("generated:") for s in faces.subjects[faces.labels == EMOTIONS.index(cls)])


def test_quotas_are_filled_in_pool_order_from_the_same_split(tmp_path, tiny, real, monkeypatch) -> None:
    _write_generated(tmp_path / "gen", 6)
    bad = {("u00_id000", "angry"), ("u00_id001", "angry"), ("u01_id000", "angry"), ("u00_id002", "happy")}
    stand_in_scores(bad, monkeypatch)
    sets, report = filtering.filtered_generated_splits(quick(tmp_path), 1)
    assert _subjects(sets["train"], "angry") == ["u01_id001", "u02_id000"]  # the next kept train faces, in order
    assert _subjects(sets["val"], "happy") == ["u01_id002"]  # not u00_id000, a train identity earlier in the pool
    assert _subjects(sets["train"], "sad") == ["u00_id000", "u00_id001"]
    assert _subjects(sets["test"], "angry") == ["u00_id003"]
    for split, ids in IDS.items():  # a generated identity never crosses splits
        assert {int(s[-3:]) for s in sets[split].subjects} <= set(ids)
        assert {row["split"] for row in sets[split].manifest} == {split}
        assert report.faces[split] == {cls: len(ids) for cls in EMOTIONS}
    assert report.shortfall == {} and report.raw_units == 3 and report.threshold == 0.5
    assert report.kept_fraction == {"angry": 0.5, "disgusted": 1.0, "fearful": 1.0, "happy": 0.75, "sad": 1.0,
                                    "surprised": 1.0}
    assert 0.0 <= report.filter_stop_accuracy <= 1.0 and report.data_hash


def test_a_pool_that_cannot_fill_reports_its_shortfall_at_the_cap(tmp_path, tiny, real, monkeypatch, capsys) -> None:
    """Train/sad is kept only in units 4 and 5, beyond the cap of 4 x 1 units: reported short, never read."""
    _write_generated(tmp_path / "gen", 6)
    stand_in_scores({(generate.subject_name(u, k), "sad") for u in range(4) for k in IDS["train"]}, monkeypatch)
    sets, report = filtering.filtered_generated_splits(quick(tmp_path), 1)
    assert report.shortfall == {"train": {"sad": 2}} and report.raw_units == filtering.MAX_POOL_FACTOR
    assert report.faces["train"]["sad"] == 0 and report.faces["val"]["sad"] == 1
    assert not any(s.startswith("generated:u04") or s.startswith("generated:u05") for s in sets["train"].subjects)
    assert report.kept_fraction["sad"] == 0.5  # unit 0: 2 of 4 sad faces (the train ones) rejected
    assert "short of train/sad 2" in capsys.readouterr().out


def test_too_small_a_pool_is_refused_without_growing(tmp_path, tiny, real, monkeypatch) -> None:
    _write_generated(tmp_path / "gen", 2)
    stand_in_scores({(generate.subject_name(u, k), "sad") for u in range(2) for k in IDS["train"]}, monkeypatch)
    monkeypatch.setattr(generate, "generate_database", lambda *a, **k: pytest.fail("grow=False generated units"))
    with pytest.raises(DataError, match="prepare_filtered"):
        filtering.filtered_generated_splits(quick(tmp_path), 1)
    with pytest.raises(DataError, match="needs at least 3 generated units"):
        filtering.filtered_generated_splits(quick(tmp_path), 3)
    with pytest.raises(DataError, match="data.generated"):
        filtering.filtered_generated_splits(quick(tmp_path, **{"data.generated": str(tmp_path / "absent")}), 1)
    (tmp_path / "gen" / ".u01.done.json").unlink()  # unit 1 killed mid-move: its faces are not a complete unit
    with pytest.raises(DataError, match="needs at least 2 generated units, but .* holds 1"):
        filtering.filtered_generated_splits(quick(tmp_path), 2)


def test_no_filter_is_refused_naming_the_key(tmp_path) -> None:
    cfg = quick(tmp_path, **{"generate.filter": "none"})
    for call in (filtering.filter_model, lambda c: filtering.filtered_generated_splits(c, 1),
                 lambda c: filtering.prepare_filtered(c, 1)):
        with pytest.raises(ConfigError, match="generate.filter"):
            call(cfg)


@pytest.fixture(scope="module")
def weights_32px(tmp_path_factory, tiny_weights):
    """conftest's tiny generators, the StarGAN tagged 32 px: its 16-px faces are below what the adapter reads."""
    import torch

    from fer_utils.gan import stargan
    from fer_utils.gan.data import STARGAN_DOMAINS
    from fer_utils.gan.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights32") / "st.safetensors"
    save_weights(stargan.Generator(conv_dim=4, c_dim=7, repeat_num=1), path, dict(conv_dim=4, c_dim=7, repeat_num=1),
                 {"domains": list(STARGAN_DOMAINS), "config": {"image_size": 32}}, fp16=True)
    return tiny_weights[0], path


def test_prepare_grows_the_pool_only_as_far_as_the_quotas_need(tmp_path, tiny, real, weights_32px, monkeypatch):
    """Unit 0 loses 20 train angry faces: one more raw unit fills them; workers then read without writing."""
    sg, st = weights_32px
    cfg = quick(tmp_path, **{"generate.stylegan2_weights": str(sg), "generate.stargan_weights": str(st),
                             "generate.batch_size": 144})
    monkeypatch.setattr(preprocess, "detect_face", lambda image: None)  # centre crops: Haar took 25 s of this test
    stand_in_scores({(generate.subject_name(0, k), "angry") for k in range(20)}, monkeypatch)
    with pytest.raises(DataError, match="prepare_filtered"):
        filtering.filtered_generated_splits(cfg, 1)
    report = filtering.prepare_filtered(cfg, 1)
    root = cfg.path(cfg.data.generated)
    assert (root / ".u01.done.json").is_file() and not (root / ".u02.done.json").exists()
    assert report.raw_units == 2 and report.shortfall == {}
    assert report.faces == {"train": {c: 109 for c in EMOTIONS}, "val": {c: 10 for c in EMOTIONS},
                            "test": {c: 25 for c in EMOTIONS}}
    written = json.loads(filtering.report_path(cfg, 1).read_text())
    assert written == report.to_dict() | {"identity": filtering.selection_identity(cfg, report)}
    assert written["identity"]["inputs"]["filter"] == report.filter_weights_sha256
    monkeypatch.setattr(generate, "generate_database", lambda *a, **k: pytest.fail("grow=False generated units"))
    sets, again = filtering.filtered_generated_splits(cfg, 1)
    assert again == report
    angry = _subjects(sets["train"], "angry")
    assert angry[:89] == [generate.subject_name(0, k) for k in range(20, 109)]
    assert angry[89:] == [generate.subject_name(1, k) for k in range(20)]
    # a worker whose same filter keeps other faces than the driver prepared (another scorer, a pool being
    # rewritten) stops instead of training seeds of one configuration on different faces
    stand_in_scores({(generate.subject_name(0, k), "angry") for k in range(21)}, monkeypatch)
    with pytest.raises(DataError, match="differ from those .*filtered-k1.json describes"):
        filtering.filtered_generated_splits(cfg, 1)
    # a report that other selecting code, another threshold or other units made is stale, not a conflict
    for part, change in (("code", {"filtering.py": "0" * 16}), ("settings", {"threshold": 0.9}),
                         ("inputs", {"generated_units": "0" * 16})):
        stale = dict(written)
        stale["identity"] = dict(written["identity"]) | {part: dict(written["identity"][part]) | change}
        filtering.report_path(cfg, 1).write_text(json.dumps(stale))
        filtering.filtered_generated_splits(cfg, 1)


def test_the_filter_is_the_same_whatever_device_a_worker_has(tmp_path) -> None:
    """Its record key holds the precision as set, not as resolved on this machine: a GPU worker reuses the
    CPU driver's filter instead of training its own beside it."""
    assert filtering.filter_params(quick(tmp_path)) == filtering.filter_params(quick(tmp_path, device="cuda"))


# ---------------------------------------------------------------- the kept filter
def test_the_filter_is_kept_and_retrained_only_when_its_inputs_change(tmp_path, tiny, real, captured, capsys):
    cfg = quick(tmp_path)
    filtering.filter_model(cfg)
    record = json.loads(filtering.filter_path(cfg).read_text())
    assert 0.0 <= record["stop_accuracy"] <= 1.0 and record["params"]["model"] == "cnn"
    filtering.filter_model(cfg)
    real["val"], real["test"] = synthetic_faces(24, 7), synthetic_faces(24, 8)  # held-out faces: not the filter's
    filtering.filter_model(cfg)
    assert len(captured) == 1
    real["train"] = synthetic_faces(48, 9)  # other real training faces
    filtering.filter_model(cfg)
    assert len(captured) == 2
    filtering.filter_model(quick(tmp_path, **{"train.lr": 1e-3}))  # another recipe
    assert len(captured) == 3
    filtering.filter_model(quick(tmp_path, **{"train.lr": 1e-3, "split.seed": 1}))  # another split
    assert len(captured) == 4
    weights = filtering.filter_path(cfg).with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])  # damaged
    model = filtering.filter_model(quick(tmp_path, **{"train.lr": 1e-3, "split.seed": 1}))
    assert len(captured) == 5 and "is not the file its record" in capsys.readouterr().out
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny_cnn().parameters())
    left = [p.name for p in filtering.filter_path(cfg).parent.glob(".*")]
    assert left == [".filter.json.lock"]  # no checkpoint or temporary left behind; the lock stays, as the world's


def test_a_filter_that_keeps_nothing_is_refused_before_growing(tmp_path, tiny, real, monkeypatch) -> None:
    """A filter at chance (the quick preset's 3-epoch CNN) keeps no face: the arm would be real-only under another
    name, so it stops with what to change instead of generating up to the cap."""
    _write_generated(tmp_path / "gen", 1)
    stand_in_scores({(generate.subject_name(0, k), cls) for ids in IDS.values() for k in ids for cls in EMOTIONS},
                    monkeypatch)
    monkeypatch.setattr(generate, "generate_database", lambda *a, **k: pytest.fail("grew a pool nothing is kept of"))
    with pytest.raises(DataError, match="kept none of the .* generated faces .* train it longer"):
        filtering.prepare_filtered(quick(tmp_path), 1)
