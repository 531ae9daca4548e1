"""Which generator weights generation uses: the files shipped in ``fer_utils/gan/weights/`` or a user path.

``generate.stylegan2_weights`` / ``generate.stargan_weights`` empty = the shipped files; otherwise
our ``.safetensors``, a yunjey/sayeh1994 StarGAN ``*-G.ckpt`` (architecture from ``gan.stargan_g_*``,
7 domains in ImageFolder's alphabetical order) or an NVlabs StyleGAN2-ADA ``.pkl`` (read without
running pickled code); see ``docs/generators.md``. A setting that names no file, or a file of the wrong
kind, is a ``ConfigError``; a file that cannot be read is a ``WeightsError``; both name key and path.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import Config, ConfigError, WeightsError
from ..runtime import write_json
from . import stargan, stylegan2
from .data import STARGAN_DOMAINS
from .weights import load_stargan_ckpt, load_stylegan2_pkl, load_weights, read_metadata, reading

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PROVENANCE = WEIGHTS_DIR / "provenance.json"
DATABASES = {"stylegan2": "ffhq", "stargan": "affectnet"}  # what each GAN learns from
ARCHITECTURE = {"stylegan2": stylegan2.Generator, "stargan": stargan.Generator}
CKPT_DOMAINS: tuple[str, ...] = tuple(sorted(STARGAN_DOMAINS))  # ImageFolder order of yunjey's RaFD mode


def weights_name(model: str, resolution: int, world: bool = True) -> str:
    """File name of an exported generator, e.g. ``stargan_affectnet_world_64.safetensors``."""
    return f"{model}_{DATABASES[model]}_{'world' if world else 'custom'}_{resolution}.safetensors"


SHIPPED = {model: WEIGHTS_DIR / weights_name(model, 64) for model in DATABASES}


def discriminator_path(generator: Path) -> Path:
    """The discriminator trained beside an exported ``generator`` (``<name>_D.safetensors``), if kept.

    ``train-gan --init`` carries it on with the generator: a fresh one would first drag the
    generator into noise.
    """
    return generator.with_name(f"{generator.stem}_D.safetensors")


def weights_path(cfg: Config, model: str) -> Path:
    """The weights file ``generate.<model>_weights`` names (empty = shipped); raise naming key and path."""
    key = f"generate.{model}_weights"
    value = getattr(cfg.generate, f"{model}_weights")
    path = cfg.path(value) if value else SHIPPED[model]
    if not path.is_file():
        advice = (f"train them with `python -m fer_utils train-gan {model}` and ship them" if not value
                  else "point it at a .safetensors, .ckpt (StarGAN) or .pkl (StyleGAN2) file")
        raise ConfigError(f"{key}: weights file not found: {path} ({advice})")
    return path


def load_generator(cfg: Config, model: str, device: torch.device | str = "cpu") -> tuple[nn.Module, Path]:
    """The ``model`` generator (eval mode, float32, on ``device``) and the file it was read from."""
    key, path = f"generate.{model}_weights", weights_path(cfg, model)
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            G = load_weights(path)
        elif suffix == ".ckpt" and model == "stargan":
            G = load_stargan_ckpt(path, stargan.Generator(cfg.gan.stargan_g_conv_dim, len(CKPT_DOMAINS),
                                                          cfg.gan.stargan_g_repeat_num))
        elif suffix == ".pkl" and model == "stylegan2":
            G = load_stylegan2_pkl(path)
        else:
            raise ConfigError(f"{key}: {path}: unsupported weights format {suffix!r} for {model}")
    except WeightsError as exc:
        built = " (StarGAN .ckpt files are built with gan.stargan_g_conv_dim / gan.stargan_g_repeat_num)"
        raise WeightsError(f"{key}: cannot load {exc}{built if suffix == '.ckpt' else ''}") from exc
    if not isinstance(G, ARCHITECTURE[model]):
        raise ConfigError(f"{key}: {path} holds a {type(G).__module__}.{type(G).__name__}, not a {model} generator")
    return G.float().eval().requires_grad_(False).to(device), path


def stargan_size(cfg: Config, path: Path) -> tuple[int, str]:
    """The side (px) the StarGAN weights at ``path`` were trained at, and how that is known.

    Our ``.safetensors`` record it. A yunjey ``*-G.ckpt`` does not, and its fully convolutional G runs at
    any size, so a 128-px G fed 64-px crops translates them without an error (worse). The side is read
    from the ``*-D.ckpt`` yunjey saves beside it (D is tied to its size: ``conv2``'s kernel is S / 2^n
    after n stride-2 convolutions) or declared with ``generate.stargan_ckpt_resolution``; without
    either, or when the two disagree, the file is refused, naming what to do.
    """
    key = "generate.stargan_weights"
    if path.suffix.lower() == ".safetensors":
        config = read_metadata(path)["provenance"].get("config", {})
        return config.get("image_size", cfg.gan.resolution), "recorded in the file"
    declared = cfg.generate.stargan_ckpt_resolution
    discriminator = path.with_name(path.name[:-len("-G.ckpt")] + "-D.ckpt") if path.name.endswith("-G.ckpt") else None
    if discriminator is None or not discriminator.is_file():
        if declared:
            return declared, "declared by generate.stargan_ckpt_resolution"
        raise ConfigError(f"{key}: {path} does not record the size it was trained at, and a StarGAN generator runs at "
                          f"any size; put yunjey's {discriminator.name if discriminator else '<iters>-D.ckpt'} beside "
                          "it (its size is read from there) or declare it, e.g. --set "
                          "generate.stargan_ckpt_resolution=128 (yunjey's default)")
    size = _discriminator_size(discriminator)
    if declared and declared != size:
        raise ConfigError(f"{key}: generate.stargan_ckpt_resolution is {declared} but {discriminator.name} beside "
                          f"{path.name} was trained at {size} px; set it to {size} or 0 (read from the discriminator)")
    return size, f"read from {discriminator.name} beside it"


def _discriminator_size(path: Path) -> int:
    """The image side a yunjey StarGAN ``*-D.ckpt`` was built for: conv2's kernel x 2^(stride-2 convolutions)."""
    with reading(path, "PyTorch state dict", "replace it with the complete discriminator of the same run, or remove it "
                 "and declare generate.stargan_ckpt_resolution"):
        state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        convs = sum(1 for k, v in state.items() if k.startswith("main.") and k.endswith(".weight") and v.ndim == 4)
        return int(state["conv2.weight"].shape[-1]) * 2**convs
    except (AttributeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: not a yunjey StarGAN discriminator state dict ({type(exc).__name__}: {exc}); "
                           "it is read for the size its generator was trained at") from exc


def stargan_domains(path: Path) -> tuple[str, ...]:
    """Class name of each StarGAN domain index: ours (emotions order) or alphabetical for a yunjey .ckpt."""
    if path.suffix.lower() != ".safetensors":
        return CKPT_DOMAINS
    return tuple(read_metadata(path)["provenance"].get("domains", STARGAN_DOMAINS))


def ship(model: str, weights: Path) -> Path:
    """Copy an exported generator, and its discriminator if kept, into ``fer_utils/gan/weights/``, with
    the ``provenance.json`` beside it. A shipped discriminator of other weights is removed, not left stale."""
    entry = json.loads((weights.parent / "provenance.json").read_text())
    SHIPPED[model].parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, SHIPPED[model])
    if discriminator_path(weights).is_file():
        shutil.copyfile(discriminator_path(weights), discriminator_path(SHIPPED[model]))
    else:
        discriminator_path(SHIPPED[model]).unlink(missing_ok=True)
    return record_provenance(SHIPPED[model].name, entry)


def record_provenance(name: str, entry: dict[str, Any], key: str | None = None) -> Path:
    """Set the shipped provenance of file ``name`` (or only its ``key``) to ``entry``, keeping the others."""
    merged = json.loads(PROVENANCE.read_text()) if PROVENANCE.is_file() else {}
    if key is None:
        merged[name] = entry
    else:
        merged.setdefault(name, {})[key] = entry
    return write_json(PROVENANCE, merged)
