"""StarGAN training (Choi et al. 2018; yunjey/stargan ``solver.py``, RaFD mode: one-hot labels, cross-entropy)."""
from __future__ import annotations

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
from .stargan import Discriminator, Generator
from .weights import save_weights

TRAINER = "train-gan stargan"  # how a diverged run is named (``stop_if_diverged``), and what it may change:
HINT = "rerun with --restart and another gan.seed, or a larger gan.lambda_gp"


@dataclass(frozen=True)
class StarGANTrainConfig:
    """Hyper-parameters, named and defaulted as in yunjey/stargan ``main.py``."""

    image_size: int = 128
    c_dim: int = 7
    g_conv_dim: int = 64
    d_conv_dim: int = 64
    g_repeat_num: int = 6
    d_repeat_num: int = 6
    g_head: str = "image"  # ours: "warp" moves the input's pixels (stargan.Generator); yunjey: image
    g_max_shift: float = 0.1  # warp head: largest flow, in grid_sample's [-1, 1] coordinates
    g_residual_bound: float = 0.2  # warp head: largest colour residual, in [-1, 1] pixel units
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    lambda_res: float = 0.0  # ours: L1 on the warp head's colour residual, against painted marks
    batch_size: int = 16
    num_iters: int = 200000
    num_iters_decay: int = 100000
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    n_critic: int = 5
    beta1: float = 0.5
    beta2: float = 0.999
    lr_update_step: int = 1000
    sample_step: int = 1000
    model_save_step: int = 10000
    seed: int = 0
    balanced_domains: bool = False  # ours: domains drawn uniformly (see sample_batch); yunjey shuffles labels
    # length, learning-rate schedule and save steps: a checkpoint resumes under new values of these
    SCHEDULE: ClassVar[frozenset[str]] = frozenset(
        {"num_iters", "num_iters_decay", "lr_update_step", "sample_step", "model_save_step"})

    def generator_kwargs(self) -> dict:
        """Return the Generator kwargs (what ``save_weights`` records as its config); the image head's are
        yunjey's three, as in every file written before the warp head."""
        kwargs = dict(conv_dim=self.g_conv_dim, c_dim=self.c_dim, repeat_num=self.g_repeat_num)
        if self.g_head != "image":
            kwargs |= dict(head=self.g_head, max_shift=self.g_max_shift, residual_bound=self.g_residual_bound)
        return kwargs

    def discriminator_kwargs(self) -> dict:
        """Return the Discriminator kwargs (what its exported weights record as their config)."""
        return dict(image_size=self.image_size, conv_dim=self.d_conv_dim, c_dim=self.c_dim,
                    repeat_num=self.d_repeat_num)


def gradient_penalty(out_src: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Return mean((||d out_src / d x_hat||_2 - 1)^2) (WGAN-GP)."""
    dydx = torch.autograd.grad(out_src, x_hat, torch.ones_like(out_src), create_graph=True)[0]
    return ((dydx.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def d_loss(G: Generator, D: Discriminator, x_real: torch.Tensor, label_org: torch.Tensor, c_trg: torch.Tensor,
           cfg: StarGANTrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Discriminator loss: -D_src(x) + D_src(G(x, c_trg)) + lambda_cls * cls(x) + lambda_gp * GP."""
    out_src, out_cls = D(x_real)
    d_loss_real = -out_src.float().mean()  # losses in fp32 also under bf16 autocast
    d_loss_cls = F.cross_entropy(out_cls, label_org)
    with torch.no_grad():  # D's step needs no gradient through G
        x_fake = G(x_real, c_trg).float()
    d_loss_fake = D(x_fake)[0].float().mean()
    alpha = torch.rand(x_real.size(0), 1, 1, 1, device=x_real.device)
    x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
    d_loss_gp = gradient_penalty(D(x_hat)[0], x_hat)
    loss = d_loss_real + d_loss_fake + cfg.lambda_cls * d_loss_cls + cfg.lambda_gp * d_loss_gp
    return loss, {"D/loss_real": d_loss_real.item(), "D/loss_fake": d_loss_fake.item(),
                  "D/loss_cls": d_loss_cls.item(), "D/loss_gp": d_loss_gp.item()}


def g_loss(G: Generator, D: Discriminator, x_real: torch.Tensor, c_org: torch.Tensor, c_trg: torch.Tensor,
           label_trg: torch.Tensor, cfg: StarGANTrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Generator loss: -D_src(G(x, c_trg)) + lambda_rec * |x - G(G(x, c_trg), c_org)| + lambda_cls * cls
    (+ lambda_res * |warp head's colour residual|)."""
    x_fake, residual = G.translate(x_real, c_trg)
    out_src, out_cls = D(x_fake)
    g_loss_fake = -out_src.float().mean()
    g_loss_cls = F.cross_entropy(out_cls, label_trg)
    g_loss_rec = (x_real - G(x_fake, c_org).float()).abs().mean()
    loss = g_loss_fake + cfg.lambda_rec * g_loss_rec + cfg.lambda_cls * g_loss_cls
    log = {"G/loss_fake": g_loss_fake.item(), "G/loss_rec": g_loss_rec.item(), "G/loss_cls": g_loss_cls.item()}
    if residual is not None:
        g_loss_res = residual.float().abs().mean()
        loss = loss + cfg.lambda_res * g_loss_res
        log["G/loss_res"] = g_loss_res.item()
    return loss, log


def learning_rates(cfg: StarGANTrainConfig, step: int) -> tuple[float, float]:
    """Return (g_lr, d_lr) after ``step`` iterations: constant, then linear decay to 0 over num_iters_decay.

    Updated every lr_update_step like the original; yunjey subtracts lr0/num_iters_decay only every
    lr_update_step iterations, so with the defaults it only reaches 0.999 lr0 (docs/generators.md); we decay
    linearly to 0 as intended.
    """
    start = cfg.num_iters - cfg.num_iters_decay
    done = (step // cfg.lr_update_step) * cfg.lr_update_step - start
    scale = 1.0 - max(done, 0) / max(cfg.num_iters_decay, 1)
    return cfg.g_lr * scale, cfg.d_lr * scale


def set_learning_rates(cfg: StarGANTrainConfig, step: int, g_opt: torch.optim.Optimizer,
                       d_opt: torch.optim.Optimizer) -> None:
    """Give G's and D's optimisers their learning rates after ``step`` iterations (also under a new schedule)."""
    for opt, lr in zip((g_opt, d_opt), learning_rates(cfg, step)):
        for group in opt.param_groups:
            group["lr"] = lr


def check_labels(labels: np.ndarray, n: int, c_dim: int) -> torch.Tensor:
    """Validate class indices (N,) in [0, c_dim) and return them as int64."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"expected {n} labels (one per image), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= c_dim):
        raise ValueError(f"labels must lie in [0, {c_dim}), got range [{labels.min()}, {labels.max()}]")
    return torch.as_tensor(labels, dtype=torch.int64)


def domain_groups(labels_all: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(face indices grouped by domain, the domains that have faces, their counts), on the CPU, for ``sample_batch``."""
    labels = labels_all.cpu()
    order = torch.argsort(labels, stable=True)
    domains, counts = torch.unique_consecutive(labels[order], return_counts=True)
    return order, domains, counts


def sample_batch(x_all: torch.Tensor, labels_all: torch.Tensor, batch_size: int, gen: torch.Generator,
                 groups: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw (x_real, label_org, label_trg), with random horizontal flips as the original transform.

    yunjey draws images uniformly and shuffles the batch's labels into targets: on a balanced
    database (RaFD) every domain is trained alike, but on an imbalanced one (AffectNet: 30 % happy,
    7 % fearful) G is asked for the rare expressions 4x less often, and D classifies them from 4x
    fewer faces. Given ``groups`` (``domain_groups(labels_all)``, computed once) each source domain
    is drawn uniformly, then one of its faces, and each target domain uniformly (among the domains
    that have faces).
    """
    device = x_all.device
    if groups is not None:
        order, domains, counts = groups
        src = torch.randint(len(domains), (batch_size,), generator=gen)
        offset = (torch.rand(batch_size, generator=gen) * counts[src]).long()
        idx = order[(counts.cumsum(0) - counts)[src] + offset].to(device)
        trg = domains[torch.randint(len(domains), (batch_size,), generator=gen)].to(device)
    else:
        idx = torch.randint(len(x_all), (batch_size,), generator=gen).to(device)
    flip = (torch.rand(batch_size, generator=gen) < 0.5).to(device).view(-1, 1, 1, 1)
    x_real = torch.where(flip, x_all[idx].flip(3), x_all[idx])  # (B, 3, S, S)
    label_org = labels_all[idx]
    if groups is None:
        trg = label_org[torch.randperm(batch_size, generator=gen).to(device)]
    return x_real, label_org, trg


def train_step(G: Generator, D: Discriminator, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer,
               x_real: torch.Tensor, label_org: torch.Tensor, label_trg: torch.Tensor, cfg: StarGANTrainConfig,
               step: int) -> dict[str, float]:
    """One iteration: a D update, and a G update every n_critic iterations; return the loss terms.

    Forward passes run under ``mixed_precision`` (bf16 on the GPU, fp32 on CPU).
    """
    c_org = F.one_hot(label_org, cfg.c_dim).float()
    c_trg = F.one_hot(label_trg, cfg.c_dim).float()
    with mixed_precision(x_real.device):
        loss, log = d_loss(G, D, x_real, label_org, c_trg, cfg)
    d_opt.zero_grad()
    loss.backward()
    d_opt.step()
    if (step + 1) % cfg.n_critic == 0:
        with mixed_precision(x_real.device):
            loss, g_log = g_loss(G, D, x_real, c_org, c_trg, label_trg, cfg)
        g_opt.zero_grad()
        loss.backward()
        g_opt.step()
        log.update(g_log)
    return log


@torch.no_grad()
def save_samples(G: Generator, x_fixed: torch.Tensor, c_dim: int, path: str | os.PathLike) -> Path:
    """Write a grid: the fixed inputs in the first row, then one row per target domain."""
    G.eval()
    rows = [x_fixed] + [G(x_fixed, F.one_hot(torch.full((len(x_fixed),), k, device=x_fixed.device), c_dim).float())
                        for k in range(c_dim)]
    G.train()
    return save_grid(torch.cat(rows), path, nrow=len(x_fixed))


def train_stargan(images: np.ndarray, labels: np.ndarray, cfg: StarGANTrainConfig, out_dir: str | os.PathLike,
                  device: str = "auto", progress: bool = True,
                  init: StateDicts | None = None) -> tuple[Generator, list[dict[str, float]]]:
    """Train StarGAN on uint8 faces (N, S, S[, 3]) with expression indices (N,); resumes from out_dir.

    Args:
        images: uint8 faces, S = cfg.image_size.
        labels: class indices in [0, cfg.c_dim) (one-hot targets, RaFD mode).
        cfg: hyper-parameters (yunjey defaults).
        out_dir: receives ``checkpoint.pt`` (resumable), ``samples/*.png`` and ``stargan_G.safetensors``.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: show a tqdm bar.
        init: state dicts to start from: ``G`` (exported weights; a fresh D learns beside it) and
            optionally ``D`` (another run's checkpoint), so training can go on across sessions with
            a new schedule; a checkpoint in out_dir wins if it was trained on the same data and settings
            (``training.resumable_checkpoint``).
    """
    t0 = time.perf_counter()  # checkpoints carry the seconds of every run so far
    device = resolve_device(device)
    seed_everything(cfg.seed)
    x_all = images_to_tensor(images, cfg.image_size).to(device)  # (N, 3, S, S)
    labels_all = check_labels(labels, len(x_all), cfg.c_dim).to(device)
    data = data_fingerprint(images, labels)
    G = Generator(**cfg.generator_kwargs()).to(device)
    D = Discriminator(**cfg.discriminator_kwargs()).to(device)
    load_networks(init, G=G, D=D)
    g_opt = torch.optim.Adam(G.parameters(), cfg.g_lr, (cfg.beta1, cfg.beta2))
    d_opt = torch.optim.Adam(D.parameters(), cfg.d_lr, (cfg.beta1, cfg.beta2))
    out_dir = Path(out_dir)
    gen = torch.Generator().manual_seed(cfg.seed)  # batch draws, saved with the checkpoint
    start, history, seconds_before = resume(out_dir / "checkpoint.pt", cfg, data, G, D, g_opt, d_opt, gen)
    groups = domain_groups(labels_all) if cfg.balanced_domains else None  # once, not per batch
    for i in tqdm(range(start, cfg.num_iters), initial=start, total=cfg.num_iters, disable=not progress):
        # 1. batch and target domains, 2. D and G updates, 3. learning-rate decay
        x_real, label_org, label_trg = sample_batch(x_all, labels_all, cfg.batch_size, gen, groups)
        history.append(train_step(G, D, g_opt, d_opt, x_real, label_org, label_trg, cfg, i))
        stop_if_diverged(TRAINER, i + 1, history[-1], HINT)
        set_learning_rates(cfg, i + 1, g_opt, d_opt)
        # 4. samples and resumable checkpoints
        if (i + 1) % cfg.sample_step == 0:
            save_samples(G, x_all[:8], cfg.c_dim, out_dir / "samples" / f"{i + 1:06d}-images.png")
        if (i + 1) % cfg.model_save_step == 0 or i + 1 == cfg.num_iters:
            stop_if_diverged(TRAINER, i + 1, {}, HINT, G, D)
            save_checkpoint(out_dir / "checkpoint.pt", dict(
                step=i + 1, config=dataclasses.asdict(cfg), identity=training_identity(cfg, data),
                G=G.state_dict(), D=D.state_dict(), g_opt=g_opt.state_dict(), d_opt=d_opt.state_dict(),
                rng=gen.get_state(), torch_rng=torch.get_rng_state(), history=history,
                seconds=seconds_before + time.perf_counter() - t0))
    export_generator(G, cfg, out_dir / "stargan_G.safetensors")
    return G, history


def resume(path: Path, cfg: StarGANTrainConfig, data: str, G: Generator, D: Discriminator,
           g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer,
           gen: torch.Generator) -> tuple[int, list[dict[str, float]], float]:
    """Restore a checkpoint of this data and these settings (``resumable_checkpoint``); return (step, history,
    seconds). Learning rates follow ``cfg``'s schedule, which may differ from the checkpoint's."""
    ckpt = resumable_checkpoint(path, cfg, data)
    if ckpt is None:
        return 0, [], 0.0
    G.load_state_dict(ckpt["G"])
    D.load_state_dict(ckpt["D"])
    g_opt.load_state_dict(ckpt["g_opt"])
    d_opt.load_state_dict(ckpt["d_opt"])
    set_learning_rates(cfg, int(ckpt["step"]), g_opt, d_opt)
    gen.set_state(ckpt["rng"])
    torch.set_rng_state(ckpt["torch_rng"])
    return int(ckpt["step"]), list(ckpt["history"]), float(ckpt.get("seconds", 0.0))  # older: time not kept


def export_generator(G: Generator, cfg: StarGANTrainConfig, path: Path) -> Path:
    """Save the trained generator as safetensors with its config and training provenance."""
    return save_weights(G, path, cfg.generator_kwargs(), provenance={"trainer": "fer_utils.gan.train_stargan",
                                                      "config": dataclasses.asdict(cfg)})
