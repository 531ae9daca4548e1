"""GAN training data and ``train-gan``: colour faces from a tiny world, config mapping, a few-step end-to-end run."""
import csv
import json
from collections import Counter

import numpy as np
import pytest
import torch

from fer_utils.config import ConfigError, DataError, WeightsError, load_config
from fer_utils.datasets import Sample, SkipReport
from fer_utils.emotions import AFFECTNET_CODES, CONTEMPT, NEUTRAL
from fer_utils.facegen import write_world
from fer_utils.gan import data as gd
from fer_utils.gan import stargan, stylegan2
from fer_utils.gan.data import STARGAN_DOMAINS, gan_faces
from fer_utils.gan.shipped import discriminator_path, stargan_domains
from fer_utils.gan.trainer import stargan_config, stylegan2_config, train_gan
from fer_utils.gan.weights import load_weights, read_metadata

TINY_WORLD = {"world.affectnet_images": 60, "world.ffhq_images": 20}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """AffectNet-like and FFHQ-like folders of the quick world, shrunk to 60 and 20 images."""
    out = tmp_path_factory.mktemp("world")
    return write_world(load_config("quick", TINY_WORLD), out=out, only=["affectnet", "ffhq"])


def world_cfg(world, tmp_path, **overrides):
    return load_config("quick", {**TINY_WORLD, "device": "cpu", "data.affectnet": str(world["affectnet"]),
                                 "data.ffhq": str(world["ffhq"]), "data.cache": str(tmp_path / "cache"),
                                 "results_dir": str(tmp_path / "results"), "gan.resolution": 32, **overrides})


def csv_labels(root, name):
    """Class index of each row of an AffectNet file list, read independently of the adapter."""
    with open(root / "Manually_Annotated_file_lists" / f"{name}.csv", newline="") as fh:
        return [AFFECTNET_CODES[int(row["expression"])] for row in csv.DictReader(fh)]


# ------------------------------------------------------------------ gan_faces

def test_stargan_faces_drop_contempt_and_the_validation_list(world, tmp_path):
    train_rows = csv_labels(world["affectnet"], "training")
    assert CONTEMPT in train_rows  # the tiny world does hold contempt to drop
    images, labels = gan_faces(world_cfg(world, tmp_path), "affectnet", labelled=True)
    assert images.shape == (len(train_rows) - train_rows.count(CONTEMPT), 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() <= len(STARGAN_DOMAINS) - 1
    assert Counter(labels.tolist()) == Counter(lab for lab in train_rows if lab != CONTEMPT)
    assert images.std() > 10  # faces, not blank crops


def _va_sample(i, label, valence, arousal):
    return Sample(f"f{i}.jpg", "affectnet", f"s{i}", label, extra={"valence": valence, "arousal": arousal})


def test_strongest_share_keeps_every_neutral_and_each_expressions_strongest_in_order():
    """gan.stargan_strongest_share: the choice is AffectNet's annotation, not a model's; unannotated faces are never
    chosen, and every face left out is counted."""
    happy, neutral = 3, NEUTRAL
    samples = [_va_sample(0, happy, 0.1, 0.0), _va_sample(1, neutral, 0.0, 0.0), _va_sample(2, happy, 0.9, 0.2),
               _va_sample(3, happy, float("nan"), 0.5), _va_sample(4, happy, 0.5, 0.5), _va_sample(5, 0, 0.0, 0.3),
               _va_sample(6, 0, -0.6, 0.6), _va_sample(7, neutral, 0.4, 0.4)]
    report = SkipReport("affectnet")
    assert gd.strongest_by_valence_arousal(samples, 0.5, report) == [1, 2, 4, 6, 7]
    assert sum(report.counts.values()) == 3 and report.counts["no valence-arousal annotation"] == 1
    # at 1 only the unannotated face is out; at 0.01 one face of each expression is kept
    assert gd.strongest_by_valence_arousal(samples, 1.0, SkipReport("a")) == [0, 1, 2, 4, 5, 6, 7]
    assert gd.strongest_by_valence_arousal(samples, 0.01, SkipReport("a")) == [1, 2, 6, 7]


def test_an_expression_without_valence_arousal_is_an_error_not_a_stargan_without_it():
    """With no annotated face of an expression the share would drop the whole domain and StarGAN would train on
    the others alone, silently; it names the setting, the expression and a file instead."""
    samples = [_va_sample(0, NEUTRAL, 0.0, 0.0), _va_sample(1, 3, 0.5, 0.5), _va_sample(2, 0, float("nan"), 0.2)]
    with pytest.raises(DataError, match=r"gan.stargan_strongest_share 0.5 .* none of the 1 angry .*f2.jpg"):
        gd.strongest_by_valence_arousal(samples, 0.5, SkipReport("affectnet"))


def test_changing_the_share_never_resumes_the_other_shares_checkpoint(world, tmp_path):
    """Fault injection: a run trained on every face, then rerun with the strongest half, must start again on the
    half (the checkpoint is pinned to the faces it learnt), not resume as if the data were the same."""
    train_gan(world_cfg(world, tmp_path, **TINY_STARGAN), "stargan", progress=False)
    cfg = world_cfg(world, tmp_path, **TINY_STARGAN, **{"gan.stargan_strongest_share": 0.5})
    path = train_gan(cfg, "stargan", progress=False)
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["resumed_from"] == 0 and prov["iterations"] == 3
    assert prov["data"]["images"] == len(gan_faces(cfg, "affectnet", labelled=True, strongest_share=0.5)[0])


def test_train_gan_learns_from_the_strongest_share_only(world, tmp_path):
    """The setting reaches the trainer (its provenance counts the faces) and its faces get their own cache."""
    cfg = world_cfg(world, tmp_path, **TINY_STARGAN, **{"gan.stargan_strongest_share": 0.5})
    path = train_gan(cfg, "stargan", progress=False)
    prov = json.loads((path.parent / "provenance.json").read_text())
    all_faces, all_labels = gan_faces(cfg, "affectnet", labelled=True)
    half, half_labels = gan_faces(cfg, "affectnet", labelled=True, strongest_share=0.5)
    assert prov["data"]["images"] == len(half) < len(all_faces)
    assert prov["gan"]["stargan_strongest_share"] == 0.5
    for label in set(all_labels.tolist()) - {NEUTRAL}:
        assert (half_labels == label).sum() == -(-(all_labels == label).sum() // 2)
    assert (half_labels == NEUTRAL).sum() == (all_labels == NEUTRAL).sum()
    assert len(list(cfg.path(cfg.data.cache).glob("gan-affectnet-*.npz"))) == 2


def test_a_damaged_gan_face_cache_is_named_and_cropped_again(world, tmp_path, capsys):
    """A truncated .npz made every later train-gan fail in numpy with no path."""
    cfg = world_cfg(world, tmp_path)
    images, labels = gan_faces(cfg, "affectnet", labelled=True)
    (cache,) = cfg.path(cfg.data.cache).glob("gan-affectnet-*.npz")
    cache.write_bytes(cache.read_bytes()[:300])
    capsys.readouterr()
    again, again_labels = gan_faces(cfg, "affectnet", labelled=True)
    assert f"deleted cache {cache}: unreadable" in capsys.readouterr().out
    assert np.array_equal(again, images) and np.array_equal(again_labels, labels)


def test_held_out_faces_are_the_validation_list(world, tmp_path):
    cfg = world_cfg(world, tmp_path)
    val_rows = [lab for lab in csv_labels(world["affectnet"], "validation") if lab != CONTEMPT]
    held, held_labels = gan_faces(cfg, "affectnet", labelled=True, held_out=True)
    train, _ = gan_faces(cfg, "affectnet", labelled=True)
    assert held.shape == (len(val_rows), 32, 32, 3)
    assert Counter(held_labels.tolist()) == Counter(val_rows)
    assert not any((train == face).all(axis=(1, 2, 3)).any() for face in held)  # disjoint
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("gan-*.npz")) == ["affectnet", "affectnet"]
    assert len(list((tmp_path / "cache").glob("gan-affectnet-heldout-32-*.npz"))) == 1


def test_ffhq_faces_are_whole_images_unlabelled(world, tmp_path):
    images, labels = gan_faces(world_cfg(world, tmp_path, **{"gan.resolution": 16}), "ffhq", labelled=False)
    assert images.shape == (20, 16, 16, 3) and images.dtype == np.uint8
    assert (labels == -1).all() and len(labels) == 20


def test_second_call_reads_the_cache(world, tmp_path, monkeypatch):
    cfg = world_cfg(world, tmp_path)
    first = gan_faces(cfg, "affectnet", labelled=True)
    [cached] = (tmp_path / "cache").glob("gan-affectnet-32-*.npz")

    def no_cropping(*args, **kwargs):
        raise AssertionError("cropped again instead of reading the cache")

    monkeypatch.setattr(gd, "crop_samples", no_cropping)
    second = gan_faces(cfg, "affectnet", labelled=True)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    with pytest.raises(AssertionError, match="cropped again"):  # another margin is another cache file
        gan_faces(world_cfg(world, tmp_path, **{"preprocess.margin": 0.3}), "affectnet", labelled=True)
    assert cached.is_file()


def test_missing_database_names_the_key(tmp_path):
    cfg = load_config("quick", {"data.affectnet": str(tmp_path / "absent")})
    with pytest.raises(DataError, match=r"data\.affectnet"):
        gan_faces(cfg, "affectnet", labelled=True)


# ------------------------------------------------------------------ train-gan config mapping

def test_stargan_config_maps_cfg_gan():
    cfg = load_config("quick", {"gan.stargan_iters": 200000, "gan.resolution": 128, "gan.stargan_batch_size": 16,
                                "gan.n_critic": 3, "gan.lambda_rec": 7.0, "gan.seed": 5})
    t = stargan_config(cfg)
    assert (t.image_size, t.c_dim, t.batch_size, t.n_critic, t.lambda_rec, t.seed) == (128, 7, 16, 3, 7.0, 5)
    assert t.num_iters == 200000 and t.num_iters_decay == 100000 and t.lr_update_step == 1000
    assert (t.g_conv_dim, t.d_conv_dim, t.g_repeat_num, t.d_repeat_num) == (24, 32, 3, 5)  # quick preset
    assert t.model_save_step == t.sample_step == 5
    small = stargan_config(load_config("quick", {"gan.stargan_iters": 11}))
    assert small.num_iters_decay == 5 and small.lr_update_step == 1


def test_stylegan2_config_turns_kimg_into_iterations():
    cfg = load_config("quick", {"gan.stylegan2_kimg": 0.041, "gan.stylegan2_batch_size": 4,
                                "gan.stylegan2_snapshot_kimg": 0.02, "gan.r1_gamma": 0.5})
    t = stylegan2_config(cfg)
    assert t.num_iters == 11  # ceil(41 images / 4)
    assert t.sample_step == t.model_save_step == 5
    assert (t.resolution, t.z_dim, t.w_dim, t.mapping_layers, t.channel_base, t.channel_max, t.r1_gamma) == \
        (64, 128, 128, 2, 2048, 128, 0.5)
    paper = stylegan2_config(load_config("quick", {"gan.stylegan2_kimg": 5000, "gan.stylegan2_batch_size": 32,
                                                   "gan.stylegan2_snapshot_kimg": 200}))
    assert paper.num_iters == 156250 and paper.sample_step == 6250
    assert stylegan2_config(load_config("quick", {"gan.stylegan2_kimg": 0.0001})).num_iters == 1


def test_unknown_gan_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown GAN 'stylegan3'"):
        train_gan(load_config("quick", {"results_dir": str(tmp_path)}), "stylegan3")


# ------------------------------------------------------------------ train-gan end to end

TINY_STARGAN = {"gan.stargan_iters": 3, "gan.stargan_batch_size": 4, "gan.stargan_g_conv_dim": 4,
                "gan.stargan_d_conv_dim": 4, "gan.stargan_g_repeat_num": 1, "gan.stargan_d_repeat_num": 3,
                "gan.stargan_model_save_step": 3, "gan.n_critic": 1}
TINY_STYLEGAN2 = {"gan.stylegan2_kimg": 0.012, "gan.stylegan2_batch_size": 4, "gan.stylegan2_z_dim": 8,
                  "gan.stylegan2_w_dim": 8, "gan.stylegan2_mapping_layers": 1, "gan.stylegan2_channel_base": 64,
                  "gan.stylegan2_channel_max": 8, "gan.stylegan2_snapshot_kimg": 0.012}


def test_train_gan_stargan_exports_weights_and_provenance(world, tmp_path):
    cfg = world_cfg(world, tmp_path, **TINY_STARGAN)
    path = train_gan(cfg, "stargan", progress=False)
    assert path == tmp_path / "results" / "gan" / "stargan" / "stargan_affectnet_world_32.safetensors"
    G = load_weights(path)
    assert isinstance(G, stargan.Generator) and (G.conv_dim, G.c_dim, G.repeat_num) == (4, 7, 1)
    assert read_metadata(path)["fp16"] is True
    assert stargan_domains(path) == STARGAN_DOMAINS
    prov = json.loads((path.parent / "provenance.json").read_text())
    n_train = len(gan_faces(cfg, "affectnet", labelled=True)[0])
    assert prov["iterations"] == 3 and prov["resumed_from"] == 0 and prov["model"] == "stargan"
    assert prov["data"]["database"] == "affectnet" and prov["data"]["images"] == n_train
    assert prov["data"]["root"] == str(world["affectnet"])
    assert prov["config"]["num_iters"] == 3 and prov["config"]["image_size"] == 32
    assert prov["domains"] == list(STARGAN_DOMAINS) and "D/loss_cls" in prov["final_losses"]
    assert read_metadata(path)["provenance"]["iterations"] == 3


def test_train_gan_stylegan2_exports_weights_and_provenance(world, tmp_path):
    cfg = world_cfg(world, tmp_path, **TINY_STYLEGAN2)
    path = train_gan(cfg, "stylegan2", progress=False)
    assert path.name == "stylegan2_ffhq_world_32.safetensors"
    G = load_weights(path)
    assert isinstance(G, stylegan2.Generator) and G.z_dim == 8 and G.img_resolution == 32
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["iterations"] == 3 and prov["config"]["num_iters"] == 3  # ceil(12 images / 4)
    assert prov["data"]["database"] == "ffhq" and prov["data"]["images"] == 20 and prov["domains"] is None
    assert prov["seconds_total"] >= prov["seconds_this_run"] > 0


def test_no_usable_faces_is_a_clear_error(world, tmp_path):
    with pytest.raises(DataError, match=r"data\.ffhq: no usable held-out faces"):
        gan_faces(world_cfg(world, tmp_path), "ffhq", labelled=False, held_out=True)


@pytest.mark.parametrize("model, tiny", [("stargan", TINY_STARGAN), ("stylegan2", TINY_STYLEGAN2)])
def test_train_gan_keeps_the_discriminator_beside_the_generator_for_init(world, tmp_path, model, tiny):
    first = train_gan(world_cfg(world, tmp_path / "a", **tiny), model, progress=False)
    D_path = discriminator_path(first)
    assert D_path.name == first.stem + "_D.safetensors" and read_metadata(D_path)["fp16"] is True
    ckpt = torch.load(first.parent / "checkpoint.pt", weights_only=True)
    for key, value in load_weights(D_path).state_dict().items():
        assert torch.allclose(value, ckpt["D"][key].float(), atol=1e-2, rtol=1e-2), key  # fp16 storage
    path = train_gan(world_cfg(world, tmp_path / "b", **tiny), model, progress=False, init=first)
    assert json.loads((path.parent / "provenance.json").read_text())["initialised_from"]["networks"] == ["D", "G"]
    D_path.unlink()  # weights exported alone (or shipped before discriminators were): G only
    path = train_gan(world_cfg(world, tmp_path / "c", **tiny), model, progress=False, init=first)
    assert json.loads((path.parent / "provenance.json").read_text())["initialised_from"]["networks"] == ["G"]


def test_train_gan_init_starts_from_given_weights_and_records_them(world, tmp_path, monkeypatch):
    from fer_utils.gan import train_stargan as ts

    first = train_gan(world_cfg(world, tmp_path / "a", **TINY_STARGAN), "stargan", progress=False)
    monkeypatch.setattr(ts, "train_step", lambda *args: {})  # an iteration that changes nothing: G stays the init
    cfg = world_cfg(world, tmp_path / "b", **{**TINY_STARGAN, "gan.stargan_iters": 1})
    path = train_gan(cfg, "stargan", progress=False, init=first)
    for (name, a), b in zip(load_weights(first).state_dict().items(), load_weights(path).state_dict().values()):
        assert torch.equal(a, b), name
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["initialised_from"]["path"] == str(first) and prov["initialised_from"]["iterations"] == 3
    assert len(prov["initialised_from"]["sha256"]) == 64


def test_an_interrupted_init_run_still_records_its_init_when_resumed(world, tmp_path, monkeypatch,
                                                                     interrupt_training):
    from fer_utils.gan import train_stargan as ts
    first = train_gan(world_cfg(world, tmp_path / "a", **TINY_STARGAN), "stargan", progress=False)
    cfg = world_cfg(world, tmp_path / "b", **{**TINY_STARGAN, "gan.stargan_iters": 4,
                                              "gan.stargan_model_save_step": 2})
    interrupt_training(ts, 3)
    with pytest.raises(KeyboardInterrupt):
        train_gan(cfg, "stargan", progress=False, init=first)
    monkeypatch.undo()
    path = train_gan(cfg, "stargan", progress=False)  # resumed at 2, no --init given this time
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["resumed_from"] == 2 and prov["initialised_from"]["path"] == str(first)
    assert prov["seconds_total"] > prov["seconds_this_run"] > 0  # the interrupted run's 2 iterations count
    path = train_gan(cfg, "stargan", resume=False, progress=False)  # --restart from random weights
    assert json.loads((path.parent / "provenance.json").read_text())["initialised_from"] is None


def test_train_gan_init_from_a_checkpoint_keeps_its_discriminator_and_records_it(world, tmp_path, monkeypatch):
    from fer_utils.gan import trainer as tg
    first = train_gan(world_cfg(world, tmp_path / "a", **TINY_STARGAN), "stargan", progress=False)
    ckpt = first.parent / "checkpoint.pt"
    reads = Counter()
    monkeypatch.setattr(tg, "load_checkpoint", lambda p, load=tg.load_checkpoint: reads.update([p]) or load(p))
    cfg = world_cfg(world, tmp_path / "b", **{**TINY_STARGAN, "gan.stargan_iters": 2, "gan.lambda_cls": 3.0})
    path = train_gan(cfg, "stargan", progress=False, init=ckpt)  # a new schedule and losses, same networks
    assert reads[ckpt] == 1  # its networks and its record from one read
    prov = json.loads((path.parent / "provenance.json").read_text())
    init = prov["initialised_from"]
    assert init["path"] == str(ckpt) and init["networks"] == ["D", "G"] and init["iterations"] == 3
    assert init["config"]["lambda_cls"] == 1.0 and init["seconds_total"] > 0 and len(init["sha256"]) == 64
    third = train_gan(world_cfg(world, tmp_path / "b2", **TINY_STARGAN), "stargan", progress=False,
                      init=path.parent / "checkpoint.pt")  # a chain of three runs
    chained = json.loads((third.parent / "provenance.json").read_text())
    assert chained["initialised_from"]["initialised_from"]["path"] == str(ckpt)
    assert chained["seconds_all_runs"] == pytest.approx(
        chained["seconds_total"] + prov["seconds_total"] + init["seconds_total"])
    with pytest.raises(ConfigError, match=rf"--init {ckpt}: .*D\.conv_dim=4 .*D\.conv_dim=8"):
        train_gan(world_cfg(world, tmp_path / "c", **{**TINY_STARGAN, "gan.stargan_d_conv_dim": 8}), "stargan",
                  progress=False, init=ckpt)
    with pytest.raises(WeightsError, match=rf"--init {ckpt}: not a stylegan2 checkpoint"):
        train_gan(world_cfg(world, tmp_path / "d", **TINY_STYLEGAN2), "stylegan2", progress=False, init=ckpt)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="bad.pt: not a stargan checkpoint"):
        train_gan(world_cfg(world, tmp_path / "e", **TINY_STARGAN), "stargan", progress=False,
                  init=tmp_path / "bad.pt")


def test_train_gan_init_of_another_architecture_is_refused_naming_the_file(world, tmp_path):
    first = train_gan(world_cfg(world, tmp_path / "a", **TINY_STARGAN), "stargan", progress=False)
    cfg = world_cfg(world, tmp_path / "b", **{**TINY_STARGAN, "gan.stargan_g_conv_dim": 8})
    with pytest.raises(ConfigError, match=rf"--init {first}: .*conv_dim=4 .*conv_dim=8"):
        train_gan(cfg, "stargan", progress=False, init=first)
    with pytest.raises(WeightsError, match="not a generator saved by train-gan"):
        train_gan(cfg, "stargan", progress=False, init=tmp_path / "missing.safetensors")
