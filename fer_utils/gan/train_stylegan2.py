"""StyleGAN2 training (Karras et al. 2020; NVlabs/stylegan2-ada-pytorch ``training_loop.py`` / ``loss.py``).

Non-saturating logistic loss, R1 with lazy regularisation (every ``d_reg_interval`` steps, gain =
interval, optimiser hyper-parameters rescaled by interval / (interval + 1)), style mixing, and an
exponential moving average G_ema. Not implemented: ADA augmentation and path-length regularisation.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..runtime import mixed_precision, resolve_device, seed_everything
from .checkpoints import (
    StateDicts,
    data_fingerprint,
    images_to_tensor,
    load_networks,
    resumable_checkpoint,
    save_checkpoint,
    save_grid,
    stop_if_diverged,
    training_identity,
)
from .stylegan2 import Discriminator, Generator
from .weights import save_weights

TRAINER = "train-gan stylegan2"  # how a diverged run is named (``stop_if_diverged``), and what it may change:
HINT = "rerun with --restart and another gan.seed, or a larger gan.r1_gamma"


@dataclass(frozen=True)
class StyleGAN2TrainConfig:
    """Hyper-parameters, named as in NVlabs ``train.py`` (cfg 'auto'-like small defaults)."""

    resolution: int = 64
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 2
    channel_base: int = 16384
    channel_max: int = 512
    batch_size: int = 32
    num_iters: int = 100000
    lr: float = 0.0025
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 1.0
    d_reg_interval: int = 16
    style_mixing_prob: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    sample_step: int = 1000
    model_save_step: int = 5000
    seed: int = 0
    # length and snapshot steps: a checkpoint resumes under new values of these
    SCHEDULE: ClassVar[frozenset[str]] = frozenset({"num_iters", "sample_step", "model_save_step"})

    def generator_kwargs(self) -> dict:
        """Return the Generator kwargs (NVlabs ``_init_kwargs`` layout)."""
        return dict(z_dim=self.z_dim, c_dim=0, w_dim=self.w_dim, img_resolution=self.resolution, img_channels=3,
                    mapping_kwargs=dict(num_layers=self.mapping_layers),
                    synthesis_kwargs=dict(channel_base=self.channel_base, channel_max=self.channel_max))

    def discriminator_kwargs(self) -> dict:
        """Return the Discriminator kwargs that set its shapes (the minibatch-std group follows the batch)."""
        return dict(c_dim=0, img_resolution=self.resolution, img_channels=3, channel_base=self.channel_base,
                    channel_max=self.channel_max)


def d_logistic_loss(D: Discriminator, x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    """Return softplus(D(fake)) + softplus(-D(real)), averaged."""
    return F.softplus(D(x_fake).float()).mean() + F.softplus(-D(x_real).float()).mean()


def r1_penalty(D: Discriminator, x_real: torch.Tensor) -> torch.Tensor:
    """Return mean ||d D(x) / d x||^2 over real images."""
    x_real = x_real.detach().requires_grad_(True)
    grad = torch.autograd.grad(D(x_real).sum(), x_real, create_graph=True)[0]
    return grad.square().sum(dim=[1, 2, 3]).mean()


def generate(G: Generator, n: int, cfg: StyleGAN2TrainConfig, device: torch.device) -> torch.Tensor:
    """Return G(z) (N, 3, R, R) for fresh z, with style mixing as in NVlabs ``loss.py`` ``run_G``."""
    ws = G.mapping(torch.randn(n, cfg.z_dim, device=device), None)
    return G.synthesis(G.mix_styles(ws, None, cfg.style_mixing_prob))


@torch.no_grad()
def update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    """G_ema <- G + beta (G_ema - G) for parameters; buffers (w_avg) are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def ema_beta(cfg: StyleGAN2TrainConfig, step: int) -> float:
    """Return the EMA decay for one batch, with the NVlabs ramp-up over the first images."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, step * cfg.batch_size * cfg.ema_rampup)
    return 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))


def train_step(G: Generator, D: Discriminator, G_ema: Generator, opts: dict[str, torch.optim.Optimizer],
               x_real: torch.Tensor, cfg: StyleGAN2TrainConfig, step: int) -> dict[str, float]:
    """One iteration: phases Gmain, Dmain, Dreg (R1, every d_reg_interval), then the EMA update.

    Forward passes run under ``mixed_precision`` (bf16 on the GPU, fp32 on CPU).
    """
    n, device = x_real.shape[0], x_real.device
    with mixed_precision(device):
        g_loss = F.softplus(-D(generate(G, n, cfg, device)).float()).mean()  # non-saturating
    optimise(opts["G"], g_loss)
    with torch.no_grad(), mixed_precision(device):
        x_fake = generate(G, n, cfg, device).float()
    with mixed_precision(device):
        d_loss = d_logistic_loss(D, x_real, x_fake)
    optimise(opts["D"], d_loss)
    log = {"G/loss": g_loss.item(), "D/loss": d_loss.item()}
    if step % cfg.d_reg_interval == 0 and cfg.r1_gamma > 0:
        with mixed_precision(device):
            r1 = r1_penalty(D, x_real)
        optimise(opts["D"], r1 * (cfg.r1_gamma / 2) * cfg.d_reg_interval)  # lazy: gain = interval
        log["D/r1"] = r1.item()
    update_ema(G_ema, G, ema_beta(cfg, step + 1))
    return log


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Take one optimiser step on ``loss``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def make_optimisers(G: Generator, D: Discriminator, cfg: StyleGAN2TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for G, and for D with lr and betas rescaled for lazy R1 (mb_ratio = interval / (interval + 1))."""
    mb_ratio = cfg.d_reg_interval / (cfg.d_reg_interval + 1)
    return {"G": torch.optim.Adam(G.parameters(), cfg.lr, (cfg.beta1, cfg.beta2), eps=1e-8),
            "D": torch.optim.Adam(D.parameters(), cfg.lr * mb_ratio,
                                  (cfg.beta1**mb_ratio, cfg.beta2**mb_ratio), eps=1e-8)}


def train_stylegan2(images: np.ndarray, cfg: StyleGAN2TrainConfig, out_dir: str | os.PathLike,
                    device: str = "auto", progress: bool = True,
                    init: StateDicts | None = None) -> tuple[Generator, list[dict[str, float]]]:
    """Train an unconditional StyleGAN2 on uint8 faces (N, R, R[, 3]); resumes from out_dir; return G_ema.

    Args:
        images: uint8 faces, R = cfg.resolution.
        cfg: hyper-parameters.
        out_dir: receives ``checkpoint.pt`` (resumable), ``samples/*.png`` and ``stylegan2_G_ema.safetensors``.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: show a tqdm bar.
        init: state dicts to start from: ``G`` (e.g. an exported G_ema; G_ema starts as a copy, a
            fresh D learns beside it) and optionally ``G_ema`` and ``D`` (another run's checkpoint), so
            training can go on across sessions with a new schedule; a checkpoint in out_dir wins if it was
            trained on the same data and settings (``training.resumable_checkpoint``).
    """
    t0 = time.perf_counter()  # checkpoints carry the seconds of every run so far
    device = resolve_device(device)
    seed_everything(cfg.seed)
    x_all = images_to_tensor(images, cfg.resolution).to(device)  # (N, 3, R, R)
    data = data_fingerprint(images)
    G = Generator(**cfg.generator_kwargs()).to(device).train()
    load_networks(init, G=G)
    D = Discriminator(**cfg.discriminator_kwargs(), mbstd_group_size=min(4, cfg.batch_size)).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    load_networks(init, G_ema=G_ema, D=D)
    opts = make_optimisers(G, D, cfg)
    out_dir = Path(out_dir)
    gen = torch.Generator().manual_seed(cfg.seed)  # batch draws, saved with the checkpoint
    z_fixed = torch.randn(16, cfg.z_dim, generator=gen).to(device)
    start, history, seconds_before = resume(out_dir / "checkpoint.pt", cfg, data, G, D, G_ema, opts, gen)
    for i in tqdm(range(start, cfg.num_iters), initial=start, total=cfg.num_iters, disable=not progress):
        idx = torch.randint(len(x_all), (cfg.batch_size,), generator=gen).to(device)
        history.append(train_step(G, D, G_ema, opts, x_all[idx], cfg, i))
        stop_if_diverged(TRAINER, i + 1, history[-1], HINT)
        if (i + 1) % cfg.sample_step == 0:
            with torch.no_grad():
                save_grid(G_ema(z_fixed, noise_mode="const"), out_dir / "samples" / f"{i + 1:06d}.png", nrow=4)
        if (i + 1) % cfg.model_save_step == 0 or i + 1 == cfg.num_iters:
            stop_if_diverged(TRAINER, i + 1, {}, HINT, G, D, G_ema)
            save_checkpoint(out_dir / "checkpoint.pt", dict(
                step=i + 1, config=dataclasses.asdict(cfg), identity=training_identity(cfg, data),
                G=G.state_dict(), D=D.state_dict(), G_ema=G_ema.state_dict(), G_opt=opts["G"].state_dict(),
                D_opt=opts["D"].state_dict(), rng=gen.get_state(), torch_rng=torch.get_rng_state(), history=history,
                seconds=seconds_before + time.perf_counter() - t0))
    save_weights(G_ema, out_dir / "stylegan2_G_ema.safetensors", G_ema.config(),
                 provenance={"trainer": "fer_utils.gan.train_stylegan2", "config": dataclasses.asdict(cfg)})
    return G_ema, history


def resume(path: Path, cfg: StyleGAN2TrainConfig, data: str, G: Generator, D: Discriminator, G_ema: Generator,
           opts: dict[str, torch.optim.Optimizer],
           gen: torch.Generator) -> tuple[int, list[dict[str, float]], float]:
    """Restore a checkpoint of this data and these settings (``resumable_checkpoint``); return (step, history,
    seconds)."""
    ckpt = resumable_checkpoint(path, cfg, data)
    if ckpt is None:
        return 0, [], 0.0
    for module, key in ((G, "G"), (D, "D"), (G_ema, "G_ema")):
        module.load_state_dict(ckpt[key])
    opts["G"].load_state_dict(ckpt["G_opt"])
    opts["D"].load_state_dict(ckpt["D_opt"])
    gen.set_state(ckpt["rng"])
    torch.set_rng_state(ckpt["torch_rng"])
    return int(ckpt["step"]), list(ckpt["history"]), float(ckpt.get("seconds", 0.0))  # older: time not kept
