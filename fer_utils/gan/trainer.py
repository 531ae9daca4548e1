"""``python -m fer_utils train-gan {stylegan2,stargan}``: train one GAN of paper §3.1 on the configured data.

Maps ``cfg.gan`` onto the trainers' own configs (yunjey / NVlabs names), trains into
``<results_dir>/gan/<model>/`` (resumable from its ``checkpoint.pt`` when that was trained on the same
data and settings; otherwise it is set aside, see ``docs/generators.md``), then exports the generator
as fp16 safetensors beside a ``provenance.json`` (data, seeds, configs, iterations, time, versions).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ConfigError, WeightsError, data_source
from ..runtime import doing, file_sha256, remove_stale_temporaries, resolve_device, versions, write_json
from . import stargan, stylegan2
from .checkpoints import StateDicts, data_fingerprint, load_checkpoint, resumable_checkpoint
from .data import STARGAN_DOMAINS, gan_faces
from .shipped import DATABASES, discriminator_path, weights_name
from .train_stargan import StarGANTrainConfig, train_stargan
from .train_stylegan2 import StyleGAN2TrainConfig, train_stylegan2
from .weights import load_weights, one_line, read_metadata, save_weights


def stargan_config(cfg: Config) -> StarGANTrainConfig:
    """yunjey hyper-parameters from ``cfg.gan``; the learning rates decay over the second half, as 100k of 200k."""
    g = cfg.gan
    return StarGANTrainConfig(
        image_size=g.resolution, c_dim=len(STARGAN_DOMAINS), g_conv_dim=g.stargan_g_conv_dim,
        d_conv_dim=g.stargan_d_conv_dim, g_repeat_num=g.stargan_g_repeat_num, d_repeat_num=g.stargan_d_repeat_num,
        g_head=g.stargan_head, g_max_shift=g.stargan_max_shift, g_residual_bound=g.stargan_residual_bound,
        lambda_cls=g.lambda_cls, lambda_rec=g.lambda_rec, lambda_gp=g.lambda_gp, lambda_res=g.stargan_lambda_res,
        batch_size=g.stargan_batch_size,
        num_iters=g.stargan_iters, num_iters_decay=g.stargan_iters // 2, n_critic=g.n_critic,
        lr_update_step=max(1, min(1000, g.stargan_iters // 20)), sample_step=g.stargan_model_save_step,
        model_save_step=g.stargan_model_save_step, seed=g.seed,
        balanced_domains=g.stargan_balanced_domains)


def stylegan2_config(cfg: Config) -> StyleGAN2TrainConfig:
    """NVlabs hyper-parameters from ``cfg.gan``; kimg are turned into iterations of ``stylegan2_batch_size``."""
    g = cfg.gan
    per_kimg = 1000 / g.stylegan2_batch_size
    snapshot = max(1, round(g.stylegan2_snapshot_kimg * per_kimg))
    return StyleGAN2TrainConfig(
        resolution=g.resolution, z_dim=g.stylegan2_z_dim, w_dim=g.stylegan2_w_dim,
        mapping_layers=g.stylegan2_mapping_layers, channel_base=g.stylegan2_channel_base,
        channel_max=g.stylegan2_channel_max, batch_size=g.stylegan2_batch_size,
        num_iters=max(1, math.ceil(g.stylegan2_kimg * per_kimg)), r1_gamma=g.r1_gamma,
        sample_step=snapshot, model_save_step=snapshot, seed=g.seed)


def train_gan(cfg: Config, model: str, resume: bool = True, progress: bool = True, init: Path | None = None) -> Path:
    """Train ``model`` (stylegan2 or stargan) and return its exported fp16 ``.safetensors`` file.

    Args:
        cfg: ``gan`` hyper-parameters, ``data.ffhq`` / ``data.affectnet`` (the world's, written if
            missing), ``results_dir``, ``device``.
        model: ``stylegan2`` (identities, FFHQ-like faces) or ``stargan`` (expressions, AffectNet-like).
        resume: continue from ``checkpoint.pt`` if it was trained on the same data and result-changing
            settings (else it is set aside, renamed); False deletes it first (``--restart``).
        progress: show a tqdm bar.
        init: where to start from (``--init``), for more iterations in a later session: our
            ``.safetensors`` of the same generator architecture (e.g. the shipped weights), with a
            fresh discriminator, or another run's ``checkpoint.pt``, whose discriminator goes on too
            (a fresh one first drags the generator into noise for ~1,000 StarGAN iterations).
    """
    if model not in DATABASES:
        raise ConfigError(f"unknown GAN {model!r}; choose one of {', '.join(DATABASES)}")
    database = DATABASES[model]
    out_dir = cfg.path(cfg.results_dir) / "gan" / model
    for folder in (out_dir, out_dir / "samples"):  # what a killed run was writing (checkpoint, samples, weights)
        remove_stale_temporaries(folder)
    if not resume:
        (out_dir / "checkpoint.pt").unlink(missing_ok=True)
    images, labels = gan_faces(cfg, database, labelled=model == "stargan",
                               strongest_share=cfg.gan.stargan_strongest_share if model == "stargan" else 1.0)
    trainer = stargan_config(cfg) if model == "stargan" else stylegan2_config(cfg)
    data = data_fingerprint(images, labels) if model == "stargan" else data_fingerprint(images)  # as the trainer
    ckpt = resumable_checkpoint(out_dir / "checkpoint.pt", trainer, data)  # a foreign one is set aside here
    start = int(ckpt["step"]) if ckpt else 0
    seconds_before = _seconds_trained(ckpt)  # every earlier run, interrupted ones too
    device = resolve_device(cfg.device)
    config = trainer.generator_kwargs()
    networks, earlier = initial_networks(init, model, trainer) if init is not None and not start else (None, None)
    if init is not None and start:
        print(f"{model}: --init {init} not used: resuming from {out_dir / 'checkpoint.pt'} at iteration {start}")
    init_path = out_dir / "initialised_from.json"  # written before training, so an interrupted run keeps it
    if networks is not None:
        write_json(init_path, _init_record(init, sorted(networks), earlier))
    elif not start:
        init_path.unlink(missing_ok=True)  # a fresh run from random weights
    with doing(f"train-gan {model} (from iteration {start})"):
        if model == "stargan":
            G, history = train_stargan(images, labels, trainer, out_dir, str(device), progress, networks)
        else:
            G, history = train_stylegan2(images, trainer, out_dir, str(device), progress, networks)
    final = load_checkpoint(out_dir / "checkpoint.pt")  # read once: its time and its discriminator
    seconds_total = _seconds_trained(final)
    provenance = _provenance(cfg, model, database, trainer, len(images), start, len(history),
                             seconds_total - seconds_before, seconds_before, device, history)
    provenance["initialised_from"] = json.loads(init_path.read_text()) if init_path.is_file() else None
    provenance["seconds_all_runs"] = seconds_total + _chain_seconds(provenance["initialised_from"])
    world = data_source(cfg, database) == "embedded world"
    path = save_weights(G, out_dir / weights_name(model, cfg.gan.resolution, world), config, provenance, fp16=True)
    export_discriminator(final, model, trainer, discriminator_path(path))
    write_json(out_dir / "provenance.json", provenance)
    print(f"{model}: {len(history)} iterations, weights {path} ({path.stat().st_size / 1e6:.1f} MB fp16)")
    return path


def initial_networks(path: Path, model: str, trainer: Any) -> tuple[StateDicts, dict[str, Any]]:
    """The networks ``--init`` names and how they were trained, refused (naming the file) unless they
    have the configured architecture.

    An exported generator gives ``G``, and ``D`` where its discriminator was kept beside it; a
    ``checkpoint.pt`` written by train-gan gives ``G`` and ``D`` (and StyleGAN2's ``G_ema``). The
    next run goes on from them under its own schedule. The checkpoint (hundreds of MB with its
    optimiser states) is read once, for both. A StarGAN warp head (``gan.stargan_head: warp``) may
    start from an image-head generator of the same sizes: its trunk, with the head at zero (the identity).
    """
    trunk = _trunk_start(trainer)
    if path.suffix != ".pt":
        saved_head = read_metadata(path)["config"].get("head", "image") if trunk else None
        if saved_head == "image":  # a warp head asked of an image-head generator: on its trunk
            networks = {"G": _warp_on_trunk(path, trunk, _exported(path, trunk, "generator").state_dict())}
        else:
            networks = {"G": _exported(path, trainer.generator_kwargs(), "generator").state_dict()}
        if discriminator_path(path).is_file():
            networks["D"] = _exported(discriminator_path(path), trainer.discriminator_kwargs(),
                                      "discriminator").state_dict()
        return networks, read_metadata(path).get("provenance", {}) | _head_note(saved_head)
    names = ("G", "G_ema", "D") if model == "stylegan2" else ("G", "D")
    try:
        ckpt = load_checkpoint(path)
        if ckpt is None:
            raise WeightsError(f"checkpoint not found: {path}")
        saved = dataclasses.replace(type(trainer)(), **ckpt["config"])  # keys older runs lack: defaults
        networks = {name: ckpt[name] for name in names}
    except (WeightsError, KeyError, TypeError) as exc:
        raise WeightsError(f"--init {path}: not a {model} checkpoint written by train-gan ({one_line(exc)})") from exc
    saved_head = saved.g_head if trunk else None
    if saved_head == "image":  # a warp head on this image-head run's trunk
        _same_architecture(path, _architecture(saved), _architecture(dataclasses.replace(trainer, g_head="image")))
        networks["G"] = _warp_on_trunk(path, trunk, networks["G"])
    else:
        _same_architecture(path, _architecture(saved), _architecture(trainer))
    beside = path.parent / "initialised_from.json"  # the run it went on from, if any
    earlier = {"iterations": ckpt["step"], "seconds_total": ckpt.get("seconds"), "config": ckpt["config"],
               "initialised_from": json.loads(beside.read_text()) if beside.is_file() else None}
    return networks, earlier | _head_note(saved_head)


def _trunk_start(trainer: Any) -> dict[str, Any] | None:
    """The image-head generator kwargs whose trunk a StarGAN warp head may start on, or None (no warp head asked)."""
    if not isinstance(trainer, StarGANTrainConfig) or trainer.g_head == "image":
        return None
    return dataclasses.replace(trainer, g_head="image").generator_kwargs()


def _warp_on_trunk(path: Path, trunk: dict[str, Any], image_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A warp-head generator's state: the trunk of the image-head G in ``path``, the head at zero (the identity)."""
    G = stargan.Generator(**{**trunk, "head": "warp"})
    try:
        G.load_trunk(image_state)
    except (ValueError, RuntimeError) as exc:
        raise WeightsError(f"--init {path}: its generator's trunk does not fit ({one_line(exc)})") from exc
    return G.state_dict()


def _head_note(saved_head: str | None) -> dict[str, Any]:
    """What the provenance says when the warp head started at zero on an image-head generator's trunk."""
    return {"G_head": "warp head started at zero on this image-head generator's trunk"} if saved_head == "image" else {}


def export_discriminator(ckpt: dict[str, Any] | None, model: str, trainer: Any, path: Path) -> Path | None:
    """Save the discriminator of a finished run's loaded checkpoint beside its generator (fp16), for ``--init``."""
    if ckpt is None:  # no iteration ran
        return None
    D = (stargan.Discriminator if model == "stargan" else stylegan2.Discriminator)(**trainer.discriminator_kwargs())
    D.load_state_dict(ckpt["D"])
    return save_weights(D, path, trainer.discriminator_kwargs(), {"iterations": ckpt["step"]}, fp16=True)


def _exported(path: Path, config: dict[str, Any], role: str) -> torch.nn.Module:
    """The network saved in ``path`` by train-gan, refused unless it loads and has the configured architecture."""
    try:
        _same_architecture(path, read_metadata(path)["config"], config)
        return load_weights(path)
    except WeightsError as exc:
        raise WeightsError(f"--init {path}: not a {role} saved by train-gan ({exc})") from exc


def _architecture(trainer: Any) -> dict[str, Any]:
    """Every size G and D are built with, as ``G.<kwarg>`` / ``D.<kwarg>``."""
    return ({f"G.{k}": v for k, v in trainer.generator_kwargs().items()}
            | {f"D.{k}": v for k, v in trainer.discriminator_kwargs().items()})


def _same_architecture(path: Path, saved: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Raise naming ``path`` and each size that differs from what ``gan.*`` asks for."""
    if saved != wanted:
        differ = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        def sizes(config: dict[str, Any]) -> str:  # a kwarg absent from one side: "no G.head" (the image head)
            return ", ".join(f"{k}={config[k]}" if k in config else f"no {k}" for k in differ)
        raise ConfigError(f"--init {path}: its networks have {sizes(saved)} but gan.* asks for {sizes(wanted)}")


def _seconds_trained(ckpt: dict[str, Any] | None) -> float:
    """Training seconds a loaded checkpoint carries (0 without one, or for one written before they were kept)."""
    return float(ckpt.get("seconds", 0.0)) if ckpt else 0.0


def _chain_seconds(record: dict[str, Any] | None) -> float:
    """Training seconds of every earlier run in an ``initialised_from`` chain (each records its own)."""
    total = 0.0
    while record:
        total += record.get("seconds_total") or 0.0
        record = record.get("initialised_from")
    return total


def _init_record(path: Path, networks: list[str], earlier: dict[str, Any]) -> dict[str, Any]:
    """Which weights a run started from, which of its networks they gave, and how they were trained."""
    return {"path": str(path), "sha256": file_sha256(path), "networks": networks,
            "iterations": earlier.get("iterations"), "seconds_total": earlier.get("seconds_total"),
            "config": earlier.get("config"), "G_head": earlier.get("G_head"),
            "initialised_from": earlier.get("initialised_from")}


def _provenance(cfg: Config, model: str, database: str, trainer: Any, n_images: int, start: int, iterations: int,
                seconds: float, seconds_before: float, device: torch.device,
                history: list[dict[str, float]]) -> dict[str, Any]:
    """Where the weights come from: data, seeds, configs, iterations, wall time (all runs), machine, versions."""
    last = history[-min(len(history), 100):]
    return {
        "model": model, "trainer": f"fer_utils.gan.train_{model}",
        "data": {"database": database, "root": getattr(cfg.data, database), "preset": cfg.preset,
                 "world_seed": cfg.world.seed, "images": n_images},
        "domains": list(STARGAN_DOMAINS) if model == "stargan" else None,
        "gan": dataclasses.asdict(cfg.gan), "config": dataclasses.asdict(trainer),
        "iterations": iterations, "resumed_from": start,
        "seconds_total": seconds_before + seconds, "seconds_this_run": seconds,
        "seconds_per_iteration": seconds / (iterations - start) if iterations > start else None,
        "final_losses": {k: sum(h[k] for h in last if k in h) / max(1, sum(k in h for h in last))
                         for k in sorted({k for h in last for k in h})},
        "device": str(device), "threads": torch.get_num_threads(), "versions": versions(),
    }
