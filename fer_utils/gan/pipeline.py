"""Paper §3.1 in memory: StyleGAN2 draws identities, the real data's face crop frames them, StarGAN
gives each one the six expressions. Generation, its benchmark, figures and quality metrics share it.
"""
from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, ConfigError
from ..emotions import EMOTIONS
from ..preprocess import crop_face
from ..runtime import mixed_precision, resolve_device, usable_cores
from .shipped import load_generator, stargan_domains, stargan_size


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output (N, 3, H, W) in [-1, 1] (fp32 or bf16) -> RGB uint8 (N, H, W, 3)."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """RGB uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def latents(seed: int, unit: int, n: int, z_dim: int) -> torch.Tensor:
    """The ``n`` latents of one unit: seeded by (seed, unit) alone, so units are independent and resumable."""
    state = np.random.SeedSequence([seed, unit]).generate_state(1)[0]
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(int(state)))


@functools.cache
def _crop_threads(pid: int) -> ThreadPoolExecutor:
    """Crop threads that live as long as the process (``pid``: a forked child makes its own), so each
    loads its Haar cascade once: a pool per call reloaded them and cropped 2.3x slower at batch 8."""
    return ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="face-crop")


@dataclass
class Pipeline:
    """Both generators and the choices that turn a latent into six expressive faces."""

    stylegan2: nn.Module
    stargan: nn.Module
    domains: tuple[str, ...]  # class name of each StarGAN domain index
    size: int  # StarGAN input side (its training resolution)
    psi: float
    margin: float
    device: torch.device

    @property
    def targets(self) -> list[int]:
        """StarGAN domain index of each class, in ``EMOTIONS`` order."""
        return [self.domains.index(name) for name in EMOTIONS]

    @torch.no_grad()
    def identities(self, z: torch.Tensor) -> np.ndarray:
        """StyleGAN2 faces (N, R, R, 3) uint8 for latents (N, z_dim); constant noise, so deterministic."""
        with mixed_precision(self.device):  # bf16 on the GPU only
            faces = self.stylegan2(z.to(self.device), None, truncation_psi=self.psi, noise_mode="const")
        return to_uint8(faces)

    def crop(self, faces: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The real data's crop (Haar + margin, else the centre) at StarGAN's size; and how each was cropped.

        Faces are cropped on a thread per core (OpenCV releases the GIL): on a GPU the generators
        take well under a millisecond per identity and one core's Haar several (about 8 ms on a
        64-px face, which it enlarges to 128 px), so a serial crop would set the pace.
        """
        out = list(_crop_threads(os.getpid()).map(lambda face: crop_face(face, self.margin, self.size), faces))
        return np.stack([img for img, _ in out]), [how for _, how in out]

    @torch.no_grad()
    def translate(self, faces: np.ndarray, domains: list[int] | None = None) -> np.ndarray:
        """Each face (N, S, S, 3) in each domain (default: the six classes) -> (N, D, S, S, 3) uint8."""
        domains = self.targets if domains is None else domains
        x = to_tensor(faces, self.device)
        n, d = len(x), len(domains)
        c = F.one_hot(torch.tensor(domains, device=self.device), self.stargan.c_dim).float()
        with mixed_precision(self.device):
            out = self.stargan(x.repeat_interleave(d, dim=0), c.repeat(n, 1))  # identity-major, domain-minor
        return to_uint8(out).reshape(n, d, *faces.shape[1:])

    def __call__(self, z: torch.Tensor,
                 stage_seconds: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Latents -> (cropped sources (N, S, S, 3), six expressions (N, 6, S, S, 3), crop kinds).

        ``stage_seconds`` (``bench generate``) gains each stage's wall time; every stage ends in a
        copy to the host, so the time is its own, on a GPU too.
        """
        def timed(name: str, stage, *args):
            t0 = time.perf_counter()
            out = stage(*args)
            if stage_seconds is not None:
                stage_seconds[name] = stage_seconds.get(name, 0.0) + time.perf_counter() - t0
            return out

        faces = timed("StyleGAN2", self.identities, z)
        sources, crops = timed("crop", self.crop, faces)
        return sources, timed("StarGAN x 6", self.translate, sources), crops


def load_pipeline(cfg: Config, device: str | torch.device | None = None) -> tuple[Pipeline, dict[str, str]]:
    """The pipeline for ``cfg.generate`` (weights, psi) on ``device`` (default ``cfg.device``), and the weight paths."""
    device = resolve_device(str(device or cfg.device))
    stylegan2, sg_path = load_generator(cfg, "stylegan2", device)
    stargan, st_path = load_generator(cfg, "stargan", device)
    domains = stargan_domains(st_path)
    size = stargan_size(cfg, st_path)[0]  # a yunjey .ckpt's from its -D.ckpt or declared, never assumed
    missing = [name for name in EMOTIONS if name not in domains]
    if missing:
        raise ConfigError(f"generate.stargan_weights: {st_path} has no domain for {', '.join(missing)} "
                          f"(its domains: {', '.join(domains)})")
    pipe = Pipeline(stylegan2, stargan, tuple(domains), size,
                    cfg.generate.truncation_psi, cfg.preprocess.margin, device)
    return pipe, {"stylegan2": str(sg_path), "stargan": str(st_path)}
