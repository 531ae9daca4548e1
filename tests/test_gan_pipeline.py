"""GAN pipeline, shipped weights and figures: conversions, seeding, output layout, weight lookup and shipping."""
import json
import os

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from fer_utils.config import ConfigError, WeightsError, load_config
from fer_utils.emotions import EMOTIONS
from fer_utils.gan import shipped, stargan, stylegan2
from fer_utils.gan.data import STARGAN_DOMAINS
from fer_utils.gan.figures import face_grid, with_source
from fer_utils.gan.pipeline import Pipeline, latents, load_pipeline, to_tensor, to_uint8
from fer_utils.gan.weights import save_weights
from fer_utils.preprocess import NO_FACE

ALPHABETICAL = ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")




def tiny_cfg(sg, st, **overrides):
    return load_config("quick", {"device": "cpu", "generate.stylegan2_weights": str(sg),
                                 "generate.stargan_weights": str(st), **overrides})


class DomainStamp(nn.Module):
    """Fake StarGAN: keeps the red channel (identity), writes the domain index into green."""

    c_dim = 7

    def forward(self, x, c):
        dom = (c.argmax(1).float() * 0.25 - 1).view(-1, 1, 1, 1).expand_as(x[:, :1])
        return torch.cat([x[:, :1], dom, x[:, 2:]], dim=1)


# ------------------------------------------------------------------ conversions and latents

def test_uint8_tensor_round_trip_is_exact_and_keeps_channels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    x = to_tensor(rgb, torch.device("cpu"))
    assert x.shape == (3, 3, 5, 7) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x[:, 0], torch.from_numpy(rgb[..., 0]).float() / 127.5 - 1)  # red stays channel 0
    back = to_uint8(x)
    assert back.dtype == np.uint8 and back.shape == rgb.shape
    assert np.array_equal(back, rgb)


def test_to_uint8_clamps_out_of_range_values():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.5]).view(1, 1, 1, 5).repeat(1, 3, 1, 1)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_latents_are_seeded_by_seed_and_unit_alone():
    a = latents(3, 1, 10, 8)
    torch.manual_seed(123)  # the global RNG must not matter
    torch.randn(100)
    b = latents(3, 1, 10, 8)
    assert a.shape == (10, 8) and torch.equal(a, b)
    assert not torch.equal(a, latents(3, 2, 10, 8))  # another unit
    assert not torch.equal(a, latents(4, 1, 10, 8))  # another seed
    assert not torch.equal(latents(0, 1, 10, 8), latents(1, 0, 10, 8))  # (seed, unit) is not a sum
    big = latents(0, 0, 2000, 8)
    assert abs(big.mean().item()) < 0.05 and abs(big.std().item() - 1) < 0.05


# ------------------------------------------------------------------ Pipeline

def _pipe(stargan_module, domains=STARGAN_DOMAINS, size=8):
    return Pipeline(nn.Identity(), stargan_module, tuple(domains), size, 0.7, 0.2, torch.device("cpu"))


def test_targets_follow_emotions_order():
    assert _pipe(DomainStamp()).targets == [0, 1, 2, 3, 4, 5]
    pipe = _pipe(DomainStamp(), ALPHABETICAL)
    assert pipe.targets == [0, 1, 2, 3, 5, 6]
    assert [pipe.domains[i] for i in pipe.targets] == list(EMOTIONS)


def test_crop_runs_on_threads_and_gives_each_face_its_own_crop_in_order(monkeypatch):
    import threading

    from fer_utils.facegen.expressions import AU_INDEX
    from fer_utils.facegen.identity import sample_identities
    from fer_utils.facegen.render import render_faces
    from fer_utils.gan import pipeline
    n, threads = 12, set()

    def crop_face(face, margin, size):  # the real crop, noting which thread ran it
        threads.add(threading.get_ident())
        return real_crop(face, margin, size)

    real_crop = pipeline.crop_face
    faces = render_faces(sample_identities(0, range(n)), np.zeros((n, len(AU_INDEX))), np.zeros((n, 3)),
                         np.tile([0, 0, 1, 0.5, 0.5], (n, 1)), (64, 64))
    faces[-1] = 128  # no face in it: the centre
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 4)
    monkeypatch.setattr(pipeline, "crop_face", crop_face)
    pipeline._crop_threads.cache_clear()  # a pool of 4 threads, whatever this machine has
    try:
        crops, kinds = _pipe(DomainStamp(), size=32).crop(faces)
    finally:
        pipeline._crop_threads(os.getpid()).shutdown()
        pipeline._crop_threads.cache_clear()
    expected = [real_crop(face, 0.2, 32) for face in faces]
    assert kinds == [how for _, how in expected] and kinds.count("haar") == n - 1 and kinds[-1] == NO_FACE
    assert np.array_equal(crops, np.stack([img for img, _ in expected]))
    assert len(threads) > 1 and threading.get_ident() not in threads


def test_translate_is_identity_major_domain_minor():
    faces = np.zeros((3, 8, 8, 3), np.uint8)
    faces[..., 0] = np.array([10, 100, 200], np.uint8)[:, None, None]
    faces[..., 2] = 77
    out = _pipe(DomainStamp(), ALPHABETICAL).translate(faces)
    assert out.shape == (3, 6, 8, 8, 3) and out.dtype == np.uint8
    for i in range(3):
        for j, dom in enumerate([0, 1, 2, 3, 5, 6]):
            assert (out[i, j, ..., 0] == faces[i, 0, 0, 0]).all()
            assert (out[i, j, ..., 1] == round((dom * 0.25 - 1 + 1) * 127.5)).all()
            assert (out[i, j, ..., 2] == 77).all()
    some = _pipe(DomainStamp()).translate(faces, domains=[4, 6])
    assert some.shape == (3, 2, 8, 8, 3)
    assert some[0, 0, 0, 0, 1] == round(4 * 0.25 * 127.5) and some[0, 1, 0, 0, 1] == round(6 * 0.25 * 127.5)


def test_translate_matches_the_generator_face_by_face(tiny_weights):
    pipe, _ = load_pipeline(tiny_cfg(*tiny_weights), "cpu")
    faces = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    out = pipe.translate(faces)
    for i in range(2):
        for j, dom in enumerate(pipe.targets):
            c = torch.nn.functional.one_hot(torch.tensor([dom]), 7).float()
            ref = to_uint8(pipe.stargan(to_tensor(faces[i:i + 1], pipe.device), c))[0]
            assert np.abs(out[i, j].astype(int) - ref.astype(int)).max() <= 1, (i, j)
    assert not np.array_equal(out[0, 0], out[0, 3])  # domains do differ


def test_pipeline_call_shapes_and_determinism(tiny_weights):
    cfg = tiny_cfg(*tiny_weights, **{"generate.truncation_psi": 0.5, "preprocess.margin": 0.1})
    pipe, paths = load_pipeline(cfg, "cpu")
    assert paths == {"stylegan2": str(tiny_weights[0]), "stargan": str(tiny_weights[1])}
    assert pipe.size == 16 and pipe.psi == 0.5 and pipe.margin == 0.1  # size from the StarGAN provenance
    assert pipe.domains == STARGAN_DOMAINS
    z = latents(0, 0, 3, pipe.stylegan2.z_dim)
    sources, expressions, crops = pipe(z)
    assert sources.shape == (3, 16, 16, 3) and sources.dtype == np.uint8
    assert expressions.shape == (3, 6, 16, 16, 3) and expressions.dtype == np.uint8
    assert len(crops) == 3 and set(crops) <= {"haar", NO_FACE}
    again = pipe(z)
    assert np.array_equal(again[0], sources) and np.array_equal(again[1], expressions)
    assert not np.array_equal(sources[0], sources[1])


def test_pipeline_runs_its_generators_in_mixed_precision_and_returns_the_same_faces(tiny_weights, monkeypatch):
    from fer_utils.gan import pipeline
    pipe, _ = load_pipeline(tiny_cfg(*tiny_weights), "cpu")
    z = latents(0, 0, 3, pipe.stylegan2.z_dim)
    sources = pipe.identities(z)
    expressions = pipe.translate(sources)
    monkeypatch.setattr(pipeline, "mixed_precision", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    outputs = []
    pipe.stargan.register_forward_hook(lambda module, inputs, output: outputs.append(output.dtype))
    bf16_sources = pipe.identities(z)
    bf16_expressions = pipe.translate(sources)
    assert outputs == [torch.bfloat16]  # what the GPU gets
    for fp32, bf16 in ((sources, bf16_sources), (expressions, bf16_expressions)):
        assert bf16.dtype == np.uint8 and np.abs(fp32.astype(int) - bf16.astype(int)).mean() < 3


def test_load_pipeline_refuses_a_stargan_without_every_emotion(tiny_weights, tmp_path):
    st = stargan.Generator(conv_dim=4, c_dim=7, repeat_num=1)
    domains = [d for d in STARGAN_DOMAINS if d != "sad"] + ["contemptuous"]
    path = save_weights(st, tmp_path / "st.safetensors", dict(conv_dim=4, c_dim=7, repeat_num=1),
                        {"domains": domains}, fp16=True)
    with pytest.raises(ConfigError, match=r"generate\.stargan_weights: .*st\.safetensors has no domain for sad"):
        load_pipeline(tiny_cfg(tiny_weights[0], path), "cpu")


def test_load_pipeline_reads_a_yunjey_ckpt_in_alphabetical_order(tiny_weights, tmp_path):
    torch.manual_seed(1)
    st = stargan.Generator(conv_dim=4, c_dim=7, repeat_num=1)
    torch.save(st.state_dict(), tmp_path / "200000-G.ckpt")
    cfg = tiny_cfg(tiny_weights[0], tmp_path / "200000-G.ckpt", **{"gan.stargan_g_conv_dim": 4,
                   "gan.stargan_g_repeat_num": 1, "generate.stargan_ckpt_resolution": 32})
    pipe, _ = load_pipeline(cfg, "cpu")
    assert pipe.domains == ALPHABETICAL and pipe.targets == [0, 1, 2, 3, 5, 6]
    assert pipe.size == 32  # no provenance in a .ckpt: the declared size
    assert torch.equal(pipe.stargan.main[0].weight, st.main[0].weight)
    wrong = tiny_cfg(tiny_weights[0], tmp_path / "200000-G.ckpt", **{"gan.stargan_g_conv_dim": 8})
    with pytest.raises(WeightsError, match=r"(?s)generate\.stargan_weights: cannot load .*gan\.stargan_g_conv_dim"):
        load_pipeline(wrong, "cpu")


def test_a_yunjey_ckpt_runs_at_the_size_it_was_trained_at_never_at_gan_resolution(tiny_weights, tmp_path, capsys):
    """A 128-px *-G.ckpt ran silently at gan.resolution (64) and passed check (issue 37 #3). Its size is read from
    the *-D.ckpt yunjey saves beside it, or declared; without either the file is refused, and check says which."""
    from fer_utils.inputs import check_weights, stargan_note

    torch.manual_seed(1)
    torch.save(stargan.Generator(conv_dim=4, c_dim=7, repeat_num=1).state_dict(), tmp_path / "200000-G.ckpt")
    arch = {"gan.stargan_g_conv_dim": 4, "gan.stargan_g_repeat_num": 1, "gan.resolution": 64}
    bare = tiny_cfg(tiny_weights[0], tmp_path / "200000-G.ckpt", **arch)
    with pytest.raises(ConfigError, match=r"^generate\.stargan_weights: .*200000-G\.ckpt does not record the size "
                                          r"it was trained at.*put yunjey's 200000-D\.ckpt beside it .* --set "
                                          r"generate\.stargan_ckpt_resolution=128"):
        load_pipeline(bare, "cpu")
    assert [p.split(":")[0] for p in check_weights(bare)] == ["generate.stargan_weights"]  # check: 1 problem
    torch.save(stargan.Discriminator(image_size=128, conv_dim=2, c_dim=7, repeat_num=6).state_dict(),
               tmp_path / "200000-D.ckpt")  # yunjey's defaults: 128 px, 6 stride-2 convolutions
    assert load_pipeline(bare, "cpu")[0].size == 128 and check_weights(bare) == []
    assert stargan_note(bare) == (f"generate.stargan_weights: {tmp_path / '200000-G.ckpt'} translates 128-px crops "
                                  "(read from 200000-D.ckpt beside it)")
    contradicted = tiny_cfg(tiny_weights[0], tmp_path / "200000-G.ckpt",
                            **arch, **{"generate.stargan_ckpt_resolution": 64})
    with pytest.raises(ConfigError, match=r"stargan_ckpt_resolution is 64 but 200000-D\.ckpt beside 200000-G\.ckpt "
                                          r"was trained at 128 px"):
        load_pipeline(contradicted, "cpu")
    (tmp_path / "200000-D.ckpt").write_bytes(b"truncated")
    with pytest.raises(WeightsError, match=r"200000-D\.ckpt: not a readable PyTorch state dict"):
        load_pipeline(bare, "cpu")


# ------------------------------------------------------------------ shipped weights

def test_weights_name():
    assert shipped.weights_name("stargan", 64) == "stargan_affectnet_world_64.safetensors"
    assert shipped.weights_name("stylegan2", 128, world=False) == "stylegan2_ffhq_custom_128.safetensors"
    assert shipped.SHIPPED["stylegan2"].name == "stylegan2_ffhq_world_64.safetensors"


def test_missing_weights_name_key_and_path(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED", {m: tmp_path / "shipped" / shipped.weights_name(m, 64)
                                             for m in shipped.DATABASES})
    cfg = load_config("quick")  # empty = the shipped file, absent here
    with pytest.raises(ConfigError, match=r"generate\.stargan_weights: weights file not found: .*"
                                          r"shipped/stargan_affectnet_world_64\.safetensors .*train-gan stargan"):
        shipped.weights_path(cfg, "stargan")
    cfg = load_config("quick", {"generate.stylegan2_weights": "no/such/G.pkl"})
    with pytest.raises(ConfigError, match=r"generate\.stylegan2_weights: .*no/such/G\.pkl \(point it at"):
        shipped.weights_path(cfg, "stylegan2")
    target = shipped.SHIPPED["stargan"]
    target.parent.mkdir()
    target.write_bytes(b"x")
    assert shipped.weights_path(load_config("quick"), "stargan") == target


def test_load_generator_safetensors_and_wrong_formats(tiny_weights, tmp_path):
    cfg = tiny_cfg(*tiny_weights)
    G, path = shipped.load_generator(cfg, "stylegan2")
    assert isinstance(G, stylegan2.Generator) and path == tiny_weights[0]
    assert not G.training and all(not p.requires_grad for p in G.parameters())
    assert all(p.dtype == torch.float32 for p in G.parameters())
    (tmp_path / "G.pkl").write_bytes(b"not read")
    with pytest.raises(ConfigError, match=r"generate\.stargan_weights: .*unsupported weights format '\.pkl'"):
        shipped.load_generator(tiny_cfg(tiny_weights[0], tmp_path / "G.pkl"), "stargan")
    with pytest.raises(ConfigError, match="not a stylegan2 generator"):
        shipped.load_generator(tiny_cfg(tiny_weights[1], tiny_weights[1]), "stylegan2")


def test_stargan_domains_from_metadata_or_alphabetical(tiny_weights, tmp_path):
    assert shipped.stargan_domains(tiny_weights[1]) == STARGAN_DOMAINS
    assert shipped.stargan_domains(tmp_path / "any-G.ckpt") == ALPHABETICAL == shipped.CKPT_DOMAINS
    st = stargan.Generator(conv_dim=4, c_dim=7, repeat_num=1)
    order = list(reversed(STARGAN_DOMAINS))
    path = save_weights(st, tmp_path / "rev.safetensors", dict(conv_dim=4, c_dim=7, repeat_num=1), {"domains": order})
    assert shipped.stargan_domains(path) == tuple(order)
    bare = save_weights(st, tmp_path / "bare.safetensors", dict(conv_dim=4, c_dim=7, repeat_num=1))
    assert shipped.stargan_domains(bare) == STARGAN_DOMAINS  # no recorded domains: ours, emotions order


def test_ship_copies_and_merges_provenance(tiny_weights, tmp_path, monkeypatch):
    real = shipped.PROVENANCE
    before = real.read_bytes() if real.is_file() else None
    dest = tmp_path / "weights"
    dest.mkdir()
    monkeypatch.setattr(shipped, "SHIPPED", {m: dest / shipped.weights_name(m, 64) for m in shipped.DATABASES})
    monkeypatch.setattr(shipped, "PROVENANCE", dest / "provenance.json")
    runs = {}
    for model, src in zip(("stylegan2", "stargan"), tiny_weights):
        run = tmp_path / model
        run.mkdir()
        (run / "G.safetensors").write_bytes(src.read_bytes())
        (run / "provenance.json").write_text(json.dumps({"model": model, "iterations": 7}))
        runs[model] = run / "G.safetensors"
    assert shipped.ship("stylegan2", runs["stylegan2"]) == dest / "provenance.json"
    shipped.ship("stargan", runs["stargan"])
    assert shipped.SHIPPED["stargan"].read_bytes() == tiny_weights[1].read_bytes()
    assert shipped.SHIPPED["stylegan2"].read_bytes() == tiny_weights[0].read_bytes()
    prov = json.loads((dest / "provenance.json").read_text())
    assert prov == {"stylegan2_ffhq_world_64.safetensors": {"model": "stylegan2", "iterations": 7},
                    "stargan_affectnet_world_64.safetensors": {"model": "stargan", "iterations": 7}}
    shipped.record_provenance("stargan_affectnet_world_64.safetensors", {"accuracy": 0.9}, key="quality")
    prov = json.loads((dest / "provenance.json").read_text())
    assert prov["stargan_affectnet_world_64.safetensors"] == {"model": "stargan", "iterations": 7,
                                                              "quality": {"accuracy": 0.9}}
    assert prov["stylegan2_ffhq_world_64.safetensors"] == {"model": "stylegan2", "iterations": 7}
    assert (real.read_bytes() if real.is_file() else None) == before  # the real folder is untouched


def test_ship_takes_the_discriminator_kept_beside_the_generator_and_never_leaves_a_stale_one(tmp_path, monkeypatch):
    dest = tmp_path / "weights"
    monkeypatch.setattr(shipped, "SHIPPED", {m: dest / shipped.weights_name(m, 64) for m in shipped.DATABASES})
    monkeypatch.setattr(shipped, "PROVENANCE", dest / "provenance.json")
    run = tmp_path / "run"
    run.mkdir()
    (run / "provenance.json").write_text("{}")
    (run / "G.safetensors").write_bytes(b"generator")
    shipped.discriminator_path(run / "G.safetensors").write_bytes(b"discriminator")
    shipped.ship("stargan", run / "G.safetensors")
    D_shipped = shipped.discriminator_path(shipped.SHIPPED["stargan"])
    assert D_shipped.name == "stargan_affectnet_world_64_D.safetensors" and D_shipped.read_bytes() == b"discriminator"
    shipped.discriminator_path(run / "G.safetensors").unlink()  # other weights, exported without one
    shipped.ship("stargan", run / "G.safetensors")
    assert not D_shipped.exists()


def test_ship_creates_the_weights_folder(tiny_weights, tmp_path, monkeypatch):
    dest = tmp_path / "weights"  # not created, as in a fresh checkout
    monkeypatch.setattr(shipped, "SHIPPED", {m: dest / shipped.weights_name(m, 64) for m in shipped.DATABASES})
    monkeypatch.setattr(shipped, "PROVENANCE", dest / "provenance.json")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "provenance.json").write_text("{}")
    src = tmp_path / "run" / "G.safetensors"
    src.write_bytes(tiny_weights[1].read_bytes())
    shipped.ship("stargan", src)
    assert shipped.SHIPPED["stargan"].read_bytes() == src.read_bytes()


@pytest.mark.parametrize("model, name", [("stargan", "G.safetensors"), ("stylegan2", "G.pkl")])
def test_unreadable_weights_are_a_weights_error(tmp_path, model, name):
    (tmp_path / name).write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    cfg = load_config("quick", {f"generate.{model}_weights": str(tmp_path / name)})
    with pytest.raises(WeightsError, match=rf"generate\.{model}_weights: cannot load"):
        shipped.load_generator(cfg, model)


# ------------------------------------------------------------------ figures

def test_face_grid_checks_titles_and_writes_a_png(tmp_path):
    rows = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="3 columns but 2 titles"):
        face_grid(rows, ["a", "b"])
    fig = face_grid(rows, ["a", "b", "c"], tmp_path / "grid.png")
    try:
        assert len(fig.axes) == 6
        assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
        assert all(ax.get_title() == "" for ax in fig.axes[3:])
        assert np.array_equal(fig.axes[4].images[0].get_array(), rows[1, 1])
    finally:
        plt.close(fig)
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_with_source_puts_the_input_first():
    sources = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    outputs = np.random.default_rng(1).integers(0, 256, (2, 6, 4, 4, 3), dtype=np.uint8)
    grid = with_source(sources, outputs)
    assert grid.shape == (2, 7, 4, 4, 3)
    assert np.array_equal(grid[:, 0], sources) and np.array_equal(grid[:, 1:], outputs)


def test_generate_benchmark_times_each_stage(tiny_weights, capsys):
    from fer_utils.benchmarks import generate as bench
    out = bench.run(tiny_cfg(*tiny_weights), n=16)
    assert set(out["stage_seconds"]) == {"StyleGAN2", "crop", "StarGAN x 6"}
    assert all(sec > 0 for sec in out["stage_seconds"].values()) and out["ours_ids_per_s"] > 0
    assert "ms/identity" in capsys.readouterr().out
