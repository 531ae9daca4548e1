"""GAN training loops: losses fall on a toy dataset, runs resume exactly, bad input is refused; a checkpoint
resumes only on its own data and settings, and a corrupt or foreign one is set aside, not fatal."""
import dataclasses
import json
import re
import shutil

import numpy as np
import pytest
import torch

from fer_utils import identity
from fer_utils.config import ConfigError, WeightsError, load_config
from fer_utils.engine import TrainingFailed
from fer_utils.gan import train_stargan as ts
from fer_utils.gan import train_stylegan2 as tsg
from fer_utils.gan import trainer as tg
from fer_utils.gan.weights import load_weights, save_weights

STARGAN_TOY = ts.StarGANTrainConfig(image_size=16, c_dim=3, g_conv_dim=8, d_conv_dim=8, g_repeat_num=1,
                                    d_repeat_num=3, batch_size=8, num_iters=40, num_iters_decay=20,
                                    lr_update_step=10, sample_step=20, model_save_step=20, g_lr=1e-3, d_lr=1e-3)


def toy_faces(n: int = 24, size: int = 16, c_dim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Faces whose class is a colour: class k brightens channel k."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % c_dim
    images = rng.integers(40, 90, size=(n, size, size, 3)).astype(np.uint8)
    images[np.arange(n), :, :, labels] += 120
    return images, labels


def test_stargan_losses_fall_and_outputs_are_written(tmp_path):
    images, labels = toy_faces()
    G, history = ts.train_stargan(images, labels, STARGAN_TOY, tmp_path, device="cpu", progress=False)
    cls = [h["D/loss_cls"] for h in history]
    assert len(history) == 40 and np.mean(cls[-10:]) < 0.85 * np.mean(cls[:10])
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["000020-images.png", "000040-images.png"]
    assert torch.equal(load_weights(tmp_path / "stargan_G.safetensors").main[0].weight, G.main[0].weight)


STYLEGAN2_TOY = tsg.StyleGAN2TrainConfig(resolution=16, z_dim=16, w_dim=16, channel_base=128, channel_max=32,
                                         batch_size=8, num_iters=40, sample_step=20, model_save_step=20,
                                         d_reg_interval=4, lr=0.002)


def run_stargan(images, labels, cfg, out_dir, init=None):
    return ts.train_stargan(images, labels, cfg, out_dir, device="cpu", progress=False, init=init)


def run_stylegan2(images, labels, cfg, out_dir, init=None):
    return tsg.train_stylegan2(images, cfg, out_dir, device="cpu", progress=False, init=init)


@pytest.mark.parametrize("module, run, cfg", [
    (ts, run_stargan, dataclasses.replace(STARGAN_TOY, num_iters=15, model_save_step=10, n_critic=2)),
    (tsg, run_stylegan2, dataclasses.replace(STYLEGAN2_TOY, num_iters=15, model_save_step=10)),
])
def test_training_resumes_exactly_after_an_interruption(tmp_path, monkeypatch, interrupt_training, module, run,
                                                         cfg):
    images, labels = toy_faces()
    G_full, _ = run(images, labels, cfg, tmp_path / "a")
    interrupt_training(module, 12)
    with pytest.raises(KeyboardInterrupt):
        run(images, labels, cfg, tmp_path / "b")
    monkeypatch.undo()
    G_resumed, history = run(images, labels, cfg, tmp_path / "b")  # resumes from step 10
    assert len(history) == 15
    for (k, a), b in zip(G_full.state_dict().items(), G_resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), k


def test_stylegan2_discriminator_loss_falls_and_outputs_are_written(tmp_path):
    images, _ = toy_faces()
    G_ema, history = run_stylegan2(images, None, STYLEGAN2_TOY, tmp_path)
    d = [h["D/loss"] for h in history]
    assert len(history) == 40 and np.mean(d[-10:]) < 0.85 * np.mean(d[:10])
    assert sum("D/r1" in h for h in history) == 10  # lazy R1 every 4 steps
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["000020.png", "000040.png"]
    G2 = load_weights(tmp_path / "stylegan2_G_ema.safetensors")
    z = torch.randn(2, 16)
    assert torch.equal(G2(z, noise_mode="const"), G_ema(z, noise_mode="const"))


def test_ema_beta_ramps_up_like_nvlabs():
    cfg = tsg.StyleGAN2TrainConfig(batch_size=32, ema_kimg=10, ema_rampup=0.05)
    assert tsg.ema_beta(cfg, 1) == pytest.approx(0.5 ** (32 / (32 * 0.05)))
    assert tsg.ema_beta(cfg, 10**6) == pytest.approx(0.5 ** (32 / 10000))


def test_learning_rate_decays_linearly_to_zero():
    cfg = ts.StarGANTrainConfig(num_iters=200000, num_iters_decay=100000)
    assert ts.learning_rates(cfg, 100000) == (1e-4, 1e-4)
    assert ts.learning_rates(cfg, 150000)[0] == pytest.approx(5e-5)
    assert ts.learning_rates(cfg, 200000)[0] == pytest.approx(0.0)


def _domain_shares(labels: np.ndarray, balanced: bool, draws: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Share of each domain among sampled sources and targets (c_dim 3), with the faces matching their label."""
    x_all = torch.as_tensor(labels, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    labels_all = torch.as_tensor(labels)
    gen = torch.Generator().manual_seed(0)
    groups = ts.domain_groups(labels_all) if balanced else None
    src, trg = [], []
    for _ in range(draws):
        x, org, t = ts.sample_batch(x_all, labels_all, 16, gen, groups)
        assert torch.equal(x[:, 0, 0, 0].long(), org)  # each face comes with its own label
        src.append(org)
        trg.append(t)
    return (np.bincount(torch.cat(src).numpy(), minlength=3) / (draws * 16),
            np.bincount(torch.cat(trg).numpy(), minlength=3) / (draws * 16))


def test_balanced_sampling_draws_rare_domains_as_often_as_common_ones():
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)  # 80 / 15 / 5 %, like happy vs fearful
    src, trg = _domain_shares(labels, balanced=False)  # yunjey: the data's proportions
    assert src[2] < 0.08 and trg[2] < 0.08 and src[0] > 0.75
    src, trg = _domain_shares(labels, balanced=True)
    assert np.allclose(src, 1 / 3, atol=0.03) and np.allclose(trg, 1 / 3, atol=0.03)
    _, trg = _domain_shares(np.array([0] * 50 + [2] * 50), balanced=True)
    assert trg[1] == 0  # a domain without faces is never requested


@pytest.mark.parametrize("balanced", [False, True])
def test_training_samples_balanced_domains_only_when_configured(tmp_path, monkeypatch, balanced):
    seen = []
    draw = ts.sample_batch
    monkeypatch.setattr(ts, "sample_batch", lambda *args: seen.append(args[-1]) or draw(*args))
    images, labels = toy_faces()
    ts.train_stargan(images, labels, dataclasses.replace(STARGAN_TOY, num_iters=2, balanced_domains=balanced),
                     tmp_path, device="cpu", progress=False)
    assert len(seen) == 2 and all((g is not None) == balanced for g in seen)


# ---------------------------------------------------------------- which checkpoint a run goes on from

def record_steps(monkeypatch, module) -> list[int]:
    """The iteration index of every training step ``module`` takes from now on."""
    steps, original = [], module.train_step
    monkeypatch.setattr(module, "train_step", lambda *args: steps.append(args[-1]) or original(*args))
    return steps


TRAINERS = [  # (module, run, two-step config, a setting that changes what is learnt)
    pytest.param(ts, run_stargan, dataclasses.replace(STARGAN_TOY, num_iters=2, model_save_step=2, n_critic=1),
                 {"lambda_rec": 5.0}, id="stargan"),
    pytest.param(tsg, run_stylegan2, dataclasses.replace(STYLEGAN2_TOY, num_iters=2, model_save_step=2),
                 {"r1_gamma": 2.0}, id="stylegan2"),
]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
@pytest.mark.parametrize("module, run, cfg, setting", TRAINERS)
def test_a_corrupt_checkpoint_is_set_aside_and_training_starts_afresh(tmp_path, monkeypatch, capsys, module, run,
                                                                       cfg, setting, damage):
    images, labels = toy_faces()
    run(images, labels, cfg, tmp_path)
    ckpt = tmp_path / "checkpoint.pt"
    whole = ckpt.read_bytes()
    ckpt.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else b"\x80\x02garbage" * 64)
    damaged = ckpt.read_bytes()
    capsys.readouterr()
    steps = record_steps(monkeypatch, module)
    run(images, labels, cfg, tmp_path)
    assert steps == [0, 1]  # from scratch, not a traceback on every rerun
    assert (tmp_path / "checkpoint.pt.corrupt").read_bytes() == damaged  # kept for inspection, not deleted
    out = capsys.readouterr().out
    assert f"{ckpt}: not resumed: cannot be read (" in out and "set aside as checkpoint.pt.corrupt" in out
    assert torch.load(ckpt, weights_only=True)["step"] == 2  # and a good one written in its place


@pytest.mark.parametrize("module, run, cfg, setting", TRAINERS)
def test_a_checkpoint_resumes_only_on_its_own_data_and_settings(tmp_path, monkeypatch, capsys, module, run, cfg,
                                                                setting):
    images, labels = toy_faces()
    run(images, labels, cfg, tmp_path)
    ckpt = tmp_path / "checkpoint.pt"
    assert len(torch.load(ckpt, weights_only=True)["identity"]["inputs"]["faces"]) == 64
    steps = record_steps(monkeypatch, module)
    longer = dataclasses.replace(cfg, num_iters=3, sample_step=3, model_save_step=3)  # length and saving only
    run(images, labels, longer, tmp_path)
    assert steps == [2] and "not resumed" not in capsys.readouterr().out  # same data and settings: goes on
    if module is ts:
        labels = np.roll(labels, 1)  # StarGAN learns from the labels too
    else:
        images = images.copy()
        images[0, 0, 0, 0] ^= 1  # one value of one pixel
    steps.clear()
    run(images, labels, longer, tmp_path)
    assert steps == [0, 1, 2]
    out = capsys.readouterr().out
    assert f"{ckpt}: not resumed: input changed: faces hash " in out
    assert "set aside as checkpoint.pt.stale " in out and (tmp_path / "checkpoint.pt.stale").is_file()
    steps.clear()
    run(images, labels, dataclasses.replace(longer, **setting), tmp_path)
    assert steps == [0, 1, 2]
    (name, value), = setting.items()
    assert f"settings changed: {name} {getattr(cfg, name)} -> {value}" in capsys.readouterr().out
    assert (tmp_path / "checkpoint.pt.stale").is_file() and (tmp_path / "checkpoint.pt.stale.1").is_file()


def test_a_resumed_stargan_follows_the_new_learning_rate_schedule(tmp_path, monkeypatch):
    images, labels = toy_faces()
    cfg = dataclasses.replace(STARGAN_TOY, num_iters=2, num_iters_decay=2, lr_update_step=1, model_save_step=2)
    run_stargan(images, labels, cfg, tmp_path)  # decayed to 0 by its end
    rates, original = [], ts.train_step
    monkeypatch.setattr(ts, "train_step", lambda *args: rates.append(args[2].param_groups[0]["lr"]) or original(*args))
    run_stargan(images, labels, dataclasses.replace(cfg, num_iters=4), tmp_path)  # decay now over iterations 2-4
    assert rates == [cfg.g_lr, cfg.g_lr / 2]


def test_a_checkpoint_of_other_training_code_is_set_aside_naming_the_file(tmp_path, monkeypatch, capsys):
    images, labels = toy_faces()
    cfg = dataclasses.replace(STARGAN_TOY, num_iters=2, model_save_step=2)
    run_stargan(images, labels, cfg, tmp_path)
    monkeypatch.setitem(identity.CODE["gan-training"], "gan/stargan.py", "0" * 16)  # as if stargan.py was edited
    steps = record_steps(monkeypatch, ts)
    run_stargan(images, labels, dataclasses.replace(cfg, num_iters=3, model_save_step=3), tmp_path)
    assert steps == [0, 1, 2] and (tmp_path / "checkpoint.pt.stale").is_file()
    assert "not resumed: code changed: gan/stargan.py;" in capsys.readouterr().out


def test_a_checkpoint_written_before_identities_is_set_aside(tmp_path, monkeypatch, capsys):
    images, labels = toy_faces()
    cfg = dataclasses.replace(STARGAN_TOY, num_iters=2, model_save_step=2)
    run_stargan(images, labels, cfg, tmp_path)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del ckpt["identity"]  # as every checkpoint before them: its data and code are unknown
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    steps = record_steps(monkeypatch, ts)
    run_stargan(images, labels, cfg, tmp_path)
    assert steps == [0, 1] and (tmp_path / "checkpoint.pt.stale").is_file()
    assert f"not resumed: {identity.OLDER}" in capsys.readouterr().out


TRAIN_GAN_TINY = {"device": "cpu", "gan.resolution": 16, "gan.stargan_iters": 2, "gan.stargan_batch_size": 4,
                  "gan.stargan_g_conv_dim": 4, "gan.stargan_d_conv_dim": 4, "gan.stargan_g_repeat_num": 1,
                  "gan.stargan_d_repeat_num": 3, "gan.stargan_model_save_step": 2, "gan.n_critic": 1}


def test_train_gan_sets_a_foreign_checkpoint_aside_before_choosing_init(tmp_path, monkeypatch, capsys):
    images, labels = toy_faces()
    monkeypatch.setattr(tg, "gan_faces", lambda cfg, database, labelled, **_: (images, labels))
    cfg = load_config("quick", {**TRAIN_GAN_TINY, "results_dir": str(tmp_path / "results")})
    init = shutil.copyfile(tg.train_gan(cfg, "stargan", progress=False), tmp_path / "init.safetensors")
    other = load_config("quick", {**TRAIN_GAN_TINY, "results_dir": str(tmp_path / "results"), "gan.lambda_rec": 5.0})
    path = tg.train_gan(other, "stargan", progress=False, init=init)
    prov = json.loads((path.parent / "provenance.json").read_text())
    assert prov["resumed_from"] == 0 and prov["initialised_from"]["path"] == str(init)  # --init is used
    assert "not resumed: settings changed: lambda_rec 10.0 -> 5.0" in capsys.readouterr().out


@pytest.mark.parametrize("name, content, match", [
    ("G.safetensors", None, "weights file not found"),
    ("G.safetensors", b"\x00" * 16, "not a readable fer_utils .safetensors file"),
    ("G.safetensors", "other sizes", "its tensors do not fit a Generator"),
    ("checkpoint.pt", None, "checkpoint not found"),
    ("checkpoint.pt", b"\x80\x02garbage", "not a readable training checkpoint"),
])
def test_init_from_a_missing_or_damaged_file_is_a_weights_error(tmp_path, name, content, match):
    path = tmp_path / name
    if content == "other sizes":  # metadata of the configured generator, tensors of another one
        save_weights(ts.Generator(conv_dim=4, c_dim=3, repeat_num=1), path, STARGAN_TOY.generator_kwargs())
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=rf"--init {re.escape(str(path))}: not a .*{match}"):
        tg.initial_networks(path, "stargan", STARGAN_TOY)


@pytest.mark.parametrize("labels, match", [(np.array([0, 1, 5]), "labels must lie"), (np.array([0, 1]), "3 labels")])
def test_bad_labels_are_refused(tmp_path, labels, match):
    images, _ = toy_faces(n=3)
    with pytest.raises(ValueError, match=match):
        ts.train_stargan(images, labels, STARGAN_TOY, tmp_path, device="cpu", progress=False)


@pytest.mark.parametrize("run, cfg", [(run_stargan, STARGAN_TOY), (run_stylegan2, STYLEGAN2_TOY)])
def test_training_can_start_from_a_given_generator(tmp_path, run, cfg):
    images, labels = toy_faces()
    G, _ = run(images, labels, dataclasses.replace(cfg, num_iters=3), tmp_path / "a")
    G_next, _ = run(images, labels, dataclasses.replace(cfg, num_iters=0), tmp_path / "b",
                    init={"G": G.state_dict()})  # no step
    for (name, a), b in zip(G.state_dict().items(), G_next.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("module, run, cfg, names", [
    (ts, run_stargan, STARGAN_TOY, {"G": 0, "D": 1}),
    (tsg, run_stylegan2, STYLEGAN2_TOY, {"G": 0, "D": 1, "G_ema": 2}),
])
def test_training_can_go_on_from_another_runs_checkpoint_with_its_discriminator(tmp_path, monkeypatch, module, run,
                                                                                cfg, names):
    images, labels = toy_faces()
    run(images, labels, dataclasses.replace(cfg, num_iters=3, model_save_step=3), tmp_path / "a")
    ckpt = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    first_step, original = {}, module.train_step

    def record_networks(*args):  # train_step(G, D, [G_ema,] ...): what the new run's first step starts from
        for name, i in names.items():
            first_step.setdefault(name, {k: v.clone() for k, v in args[i].state_dict().items()})
        return original(*args)

    monkeypatch.setattr(module, "train_step", record_networks)
    run(images, labels, dataclasses.replace(cfg, num_iters=1), tmp_path / "b", init={n: ckpt[n] for n in names})
    for name in names:
        for key, value in ckpt[name].items():
            assert torch.equal(first_step[name][key], value), (name, key)


def _bf16_on_cpu(device):
    """What ``mixed_precision`` gives on a GPU, on CPU: bf16 autocast."""
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_gan_steps_run_their_forward_passes_in_mixed_precision(monkeypatch):
    images, labels = toy_faces()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)[:8]
    label = torch.as_tensor(labels[:8])
    conv_dtypes = set()
    conv2d = torch.nn.functional.conv2d

    def recording_conv2d(*args, **kwargs):
        out = conv2d(*args, **kwargs)
        conv_dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "conv2d", recording_conv2d)
    for module in (ts, tsg):
        monkeypatch.setattr(module, "mixed_precision", _bf16_on_cpu)
    cfg = dataclasses.replace(STARGAN_TOY, n_critic=1)
    G, D = ts.Generator(**cfg.generator_kwargs()), ts.Discriminator(16, 8, 3, 3)
    opts = [torch.optim.Adam(m.parameters(), 1e-4) for m in (G, D)]
    log = ts.train_step(G, D, *opts, x, label, label.roll(1), cfg, 0)
    assert set(log) >= {"D/loss_gp", "G/loss_rec"} and all(np.isfinite(v) for v in log.values())
    cfg = STYLEGAN2_TOY
    G = tsg.Generator(**cfg.generator_kwargs())
    D = tsg.Discriminator(0, cfg.resolution, 3, cfg.channel_base, cfg.channel_max, mbstd_group_size=4)
    log = tsg.train_step(G, D, tsg.copy.deepcopy(G), tsg.make_optimisers(G, D, cfg), x, cfg, 0)
    assert "D/r1" in log and all(np.isfinite(v) for v in log.values())
    assert conv_dtypes == {torch.bfloat16}


@pytest.mark.parametrize("module, run, cfg", [
    (ts, run_stargan, dataclasses.replace(STARGAN_TOY, num_iters=15, model_save_step=10, n_critic=2)),
    (tsg, run_stylegan2, dataclasses.replace(STYLEGAN2_TOY, num_iters=15, model_save_step=10)),
])
@pytest.mark.parametrize("what", ["loss", "weights"])
def test_a_diverged_gan_stops_with_one_line_and_keeps_its_last_finite_checkpoint(tmp_path, monkeypatch, module, run,
                                                                                 cfg, what):
    """A nan loss at iteration 12 stops training with one line naming the trainer, the iteration and what to change,
    leaving iteration 10's checkpoint; nan weights behind finite losses at iteration 10 are caught before that
    checkpoint is written. Nothing is exported (issue 37 #1)."""
    images, labels = toy_faces()
    original = module.train_step
    iteration = 12 if what == "loss" else 10

    def diverge(*args):
        log = original(*args)
        if args[-1] + 1 == iteration:
            if what == "loss":
                return {**log, "bad": float("nan")}
            with torch.no_grad():
                next(args[0].parameters()).fill_(float("nan"))
        return log

    monkeypatch.setattr(module, "train_step", diverge)
    with pytest.raises(TrainingFailed) as info:
        run(images, labels, cfg, tmp_path)
    bad = "bad is nan" if what == "loss" else "Generator weight [^ ]+ is not finite"
    assert re.fullmatch(rf"{module.TRAINER}: {bad} at iteration {iteration}; stopped before saving it \(checkpoint.pt "
                        r"keeps the last finite iteration\); rerun with --restart and another gan.seed, or a larger "
                        r"gan\.(lambda_gp|r1_gamma)", str(info.value)), str(info.value)
    if what == "loss":
        assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 10
    else:
        assert not (tmp_path / "checkpoint.pt").exists()
    assert not list(tmp_path.glob("*.safetensors"))


# ---------------------------------------------------------------- the warp head (gan.stargan_head: warp)

STARGAN_WARP = dataclasses.replace(STARGAN_TOY, g_head="warp", g_max_shift=0.05, g_residual_bound=0.1)


def test_a_warp_head_run_exports_a_generator_that_records_its_head(tmp_path):
    images, labels = toy_faces()
    G, _ = run_stargan(images, labels, dataclasses.replace(STARGAN_WARP, num_iters=4, n_critic=2), tmp_path)
    loaded = load_weights(tmp_path / "stargan_G.safetensors")
    assert (loaded.head_kind, loaded.max_shift, loaded.residual_bound) == ("warp", 0.05, 0.1)
    assert G.warp.weight.any()  # the head learnt (it started at zero)


def test_the_residual_penalty_adds_lambda_res_times_the_mean_absolute_residual():
    torch.manual_seed(0)
    G, D = ts.Generator(**STARGAN_WARP.generator_kwargs()), ts.Discriminator(**STARGAN_WARP.discriminator_kwargs())
    torch.nn.init.normal_(G.warp.weight, std=0.1)
    x, c = torch.rand(4, 3, 16, 16) * 2 - 1, torch.eye(3)[[0, 1, 2, 0]]
    args = (G, D, x, c, c.flip(0), c.flip(0).argmax(1))
    plain, log = ts.g_loss(*args, STARGAN_WARP)
    penalised, _ = ts.g_loss(*args, dataclasses.replace(STARGAN_WARP, lambda_res=3.0))
    assert log["G/loss_res"] > 0 and torch.isclose(penalised - plain, torch.tensor(3.0 * log["G/loss_res"]))


def test_a_residual_penalty_without_the_warp_head_is_refused():
    with pytest.raises(ConfigError, match="gan.stargan_lambda_res is 1 but gan.stargan_head is 'image'"):
        load_config("quick", {"gan.stargan_lambda_res": 1.0})


@pytest.mark.parametrize("from_checkpoint", [False, True])
def test_a_warp_head_starts_at_zero_on_an_image_head_runs_trunk(tmp_path, from_checkpoint):
    images, labels = toy_faces()
    G, _ = run_stargan(images, labels, dataclasses.replace(STARGAN_TOY, num_iters=2, model_save_step=2), tmp_path)
    path = tmp_path / ("checkpoint.pt" if from_checkpoint else "stargan_G.safetensors")
    networks, earlier = tg.initial_networks(path, "stargan", STARGAN_WARP)
    image = G.state_dict() if from_checkpoint else load_weights(path).state_dict()
    assert not networks["G"].pop("warp.weight").any() and earlier["G_head"].startswith("warp head started at zero")
    assert networks["G"].keys() < image.keys() and all(torch.equal(v, image[k]) for k, v in networks["G"].items())


@pytest.mark.parametrize("from_checkpoint", [False, True])
def test_init_with_another_head_than_asked_is_refused_naming_it(tmp_path, from_checkpoint):
    images, labels = toy_faces()
    run_stargan(images, labels, dataclasses.replace(STARGAN_WARP, num_iters=2, model_save_step=2), tmp_path)
    path = tmp_path / ("checkpoint.pt" if from_checkpoint else "stargan_G.safetensors")
    with pytest.raises(ConfigError, match=rf"--init {re.escape(str(path))}: its networks have .*head=warp"):
        tg.initial_networks(path, "stargan", STARGAN_TOY)


@pytest.mark.parametrize("name, other, match", [
    ("checkpoint.pt", {"d_conv_dim": 4}, "D.conv_dim=4 but gan.* asks for D.conv_dim=8"),
    ("stargan_G.safetensors", {"g_conv_dim": 4}, "conv_dim=4 but gan.* asks for conv_dim=8"),
])
def test_a_warp_head_starts_only_on_a_trunk_of_the_configured_sizes(tmp_path, name, other, match):
    images, labels = toy_faces()
    run_stargan(images, labels, dataclasses.replace(STARGAN_TOY, num_iters=2, model_save_step=2, **other), tmp_path)
    with pytest.raises(ConfigError, match=rf"--init {re.escape(str(tmp_path / name))}: its networks have {match}"):
        tg.initial_networks(tmp_path / name, "stargan", STARGAN_WARP)
