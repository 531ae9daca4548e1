"""One training engine for every experiment: the authors' Keras recipe, S seeds in one pass.

A run trains an ensemble of S members (one per seed) with ``torch.func``: parameters are stacked
along a leading axis and the model is vmapped, so five seeds cost about one run; a single model
is simply S = 1. Each member draws its own batches and dropout masks and has its own early
stopping and best weights; training ends when every member has stopped.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from .config import InputError, TrainConfig
from .identity import identity, mismatch
from .models import build_model
from .runtime import (
    atomic_path,
    data_hash,
    mixed_precision,
    resolve_device,
    resolve_precision,
    seed_everything,
    torch_threads,
    usable_cores,
)

VMAP_DEVICES = {"cuda"}  # where members run as one vmapped call (kernel-launch bound, so it pays)
# Elsewhere members train one after another: on 2 CPU cores, interleaving three members ran at
# 0.55-0.7x the speed of three runs in a row (``python -m fer_utils bench sweep``).


@dataclass(frozen=True)
class ArraySplit:
    """Cached faces of one split: uint8 images (N, 64, 64) and int64 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        """Reject empty, mismatched or wrongly typed arrays before they reach torch."""
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise ValueError(f"images must be uint8 (N, H, W), got {self.images.dtype} {self.images.shape}")
        if len(self.images) == 0 or len(self.images) != len(self.labels):
            raise ValueError(f"need N > 0 images and as many labels, got {len(self.images)} and {len(self.labels)}")


@dataclass
class FitResult:
    """One trained member: best-weights model (eval mode) and its per-epoch history."""

    model: nn.Module
    seed: int
    history: dict[str, list[float]]
    best_epoch: int
    stopped_epoch: int
    seconds: float
    img_per_s: float
    precision: str  # what ran: fp32 or bf16 (autocast; weights and optimizer stay fp32)
    failure: str = ""  # why these weights must not be kept (``member_failure``); "" when they may
    untrained_val_loss: float = math.nan  # what training had to beat

    @property
    def improved(self) -> bool:
        """Whether some epoch validated below the untrained weights (the best weights are not where training began)."""
        return min(self.history["val_loss"], default=math.inf) < self.untrained_val_loss


class TrainingFailed(InputError):
    """A run diverged or never beat its untrained weights: the message names the run, the epoch, what to change."""


def raise_failures(what: str, results: list[FitResult]) -> None:
    """Raise ``TrainingFailed`` naming ``what`` and each failed member, if any failed.

    A diverged member's best weights are its untrained ones or noise: kept, they would be scored and
    counted as a finished run of the recipe.
    """
    failed = [f"seed {r.seed}: {r.failure}" for r in results if r.failure]
    if failed:
        raise TrainingFailed(f"{what} " + "; ".join(failed))


@dataclass
class _State:
    """Everything a checkpoint holds besides the stacked parameters and the optimizer."""

    epoch: int
    history: list[dict[str, list[float]]]
    best_loss: list[float]
    best_epoch: list[int]
    wait: list[int]
    stopped: list[int]  # epoch a member stopped at, 0 while it still trains
    seconds: float
    images_seen: int


def _set_threads(device: torch.device) -> None:
    """Use every core this process may run on (CPU is a first-class target), unless OMP_NUM_THREADS says how many
    (e.g. two jobs sharing a machine; also when set after torch started, as a sweep's worker does)."""
    if device.type == "cpu":
        torch.set_num_threads(torch_threads(usable_cores()))


def _to_device(split: ArraySplit, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the whole split on the device as uint8; batches are sliced and scaled there."""
    return torch.from_numpy(split.images).to(device), torch.from_numpy(split.labels.astype(np.int64)).to(device)


def _init_members(model_name: str, seeds: tuple[int, ...], device: torch.device) -> tuple[nn.Module, dict, dict]:
    """Build one model per seed and stack their weights: a meta 'base' plus (S, ...) tensors."""
    models = []
    for seed in seeds:
        seed_everything(seed)  # member init; the last seed also seeds the shared dropout stream
        models.append(build_model(model_name).to(device))
    params, buffers = stack_module_state(models)  # each (S, *shape)
    base = copy.deepcopy(models[0]).to("meta")
    return base, params, buffers


def _forward(base: nn.Module, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
    """Run every member on its own batch: x (S, B, 1, H, W) -> logits (S, B, C)."""
    def one(p: dict, b: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (xi,))
    if x.shape[0] == 1:
        return one({k: v[0] for k, v in params.items()}, {k: v[0] for k, v in buffers.items()}, x[0]).unsqueeze(0)
    return vmap(one, randomness="different")(params, buffers, x)


def _batch(images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather (S, B) indices into scaled inputs (S, B, 1, H, W) and labels (S, B)."""
    return images[idx].unsqueeze(2).float().div_(255.0), labels[idx]


def _member_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and correct count per member: logits (S, B, C), y (S, B) -> (S,), (S,)."""
    loss = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").mean(dim=1)
    return loss, (logits.argmax(dim=2) == y).sum(dim=1)


def _train_epoch(run: dict, gens: list[torch.Generator], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the training split per member; returns mean loss and accuracy, both (S,)."""
    images, labels, device = run["train"][0], run["train"][1], run["device"]
    run["base"].train()
    n = len(labels)
    perms = torch.stack([torch.randperm(n, generator=g, device=device) for g in gens])  # (S, N)
    loss_sum = torch.zeros(len(gens), device=device)
    correct = torch.zeros(len(gens), device=device)
    for i in range(0, n, batch_size):
        x, y = _batch(images, labels, perms[:, i:i + batch_size])  # (S, B, 1, H, W), (S, B)
        with mixed_precision(device, run["precision"] == "bf16"):
            logits = _forward(run["base"], run["params"], run["buffers"], x)  # (S, B, C)
        loss, hits = _member_loss(logits, y)
        run["opt"].zero_grad(set_to_none=True)
        loss.sum().backward()  # members share no weights: each gets its own gradient
        run["opt"].step()
        run["sched"].step()
        loss_sum += loss.detach() * y.shape[1]
        correct += hits
    return loss_sum / n, correct / n


@torch.no_grad()
def _eval_epoch(run: dict, n_members: int, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation loss and accuracy of every member, (S,) each, without host syncs."""
    images, labels = run["val"]
    run["base"].eval()
    n = len(labels)
    loss_sum = torch.zeros(n_members, device=labels.device)
    correct = torch.zeros(n_members, device=labels.device)
    for i in range(0, n, batch_size):
        idx = torch.arange(i, min(i + batch_size, n), device=labels.device).expand(n_members, -1)
        x, y = _batch(images, labels, idx)
        with mixed_precision(labels.device):  # predict()'s policy: validation loss = what scoring sees
            logits = _forward(run["base"], run["params"], run["buffers"], x)
        loss, hits = _member_loss(logits, y)
        loss_sum += loss * y.shape[1]
        correct += hits
    return loss_sum / n, correct / n


def _early_stopping(state: _State, run: dict, epoch: int, metrics: dict[str, list[float]], patience: int) -> None:
    """Log the epoch for members still training; keep best weights; stop after `patience` misses."""
    for s, hist in enumerate(state.history):
        if state.stopped[s]:
            continue
        for key, values in metrics.items():
            hist[key].append(values[s])
        if not (math.isfinite(metrics["loss"][s]) and math.isfinite(metrics["val_loss"][s])):
            state.stopped[s] = epoch  # diverged: no later epoch brings it back (``member_failure`` names it)
        elif metrics["val_loss"][s] < state.best_loss[s]:
            state.best_loss[s], state.best_epoch[s], state.wait[s] = metrics["val_loss"][s], epoch, 0
            for name, p in run["params"].items():
                run["best"][name][s].copy_(p.detach()[s])
        else:
            state.wait[s] += 1
            if state.wait[s] >= patience:
                state.stopped[s] = epoch


def _save(path: Path, run: dict, state: _State, gens: list[torch.Generator], ident: dict) -> None:
    """Write model, optimizer, history, epoch, RNG states and the run's identity in one atomic file."""
    payload = {
        "identity": ident, "state": dataclasses.asdict(state),
        "params": run["params"], "best": run["best"],
        "opt": run["opt"].state_dict(), "sched": run["sched"].state_dict(),
        "gens": [g.get_state() for g in gens], "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _usable_checkpoint(path: Path, device: torch.device, ident: dict) -> dict | None:
    """The checkpoint at ``path`` if it loads and its identity is ``ident`` (the same faces, seeds, recipe and
    training code), else None.

    A damaged file or another run's state is deleted with a line saying which and why: resuming it would
    save weights trained on other faces (or other settings, or by other code) under this run's name.
    """
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        why = mismatch(ckpt.get("identity"), ident)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: truncated, garbage, an older format
        why = f"unreadable ({type(exc).__name__}: {exc})"
    if not why:
        return ckpt
    print(f"deleted checkpoint {path}: {why}; training from the start")
    path.unlink(missing_ok=True)
    return None


@torch.no_grad()
def _resume(ckpt: dict, run: dict, gens: list[torch.Generator]) -> _State:
    """Load a checkpoint written by ``_save`` (and accepted by ``_usable_checkpoint``) into the live run."""
    for name in run["params"]:
        run["params"][name].copy_(ckpt["params"][name])
        run["best"][name].copy_(ckpt["best"][name])
    run["opt"].load_state_dict(ckpt["opt"])
    run["sched"].load_state_dict(ckpt["sched"])
    for g, st in zip(gens, ckpt["gens"]):
        g.set_state(st.cpu())
    torch.set_rng_state(ckpt["torch_rng"].cpu())
    if ckpt["cuda_rng"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
    return _State(**ckpt["state"])


def _new_run(model_name: str, train: ArraySplit, val: ArraySplit, cfg: TrainConfig, device: torch.device,
             seeds: tuple[int, ...]) -> dict:
    """Stacked members, Adam with Keras' time-based decay, data resident on the device, the precision."""
    base, params, buffers = _init_members(model_name, seeds, device)
    opt = torch.optim.Adam(params.values(), lr=cfg.lr, eps=1e-7)  # Keras' Adam epsilon
    decay = cfg.lr_decay  # Keras: lr_t = lr / (1 + decay * iterations), per batch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0 / (1.0 + decay * it))
    best = {k: v.detach().clone() for k, v in params.items()}
    return {"base": base, "params": params, "buffers": buffers, "opt": opt, "sched": sched, "best": best,
            "device": device, "train": _to_device(train, device), "val": _to_device(val, device),
            "precision": resolve_precision(cfg.precision, device)}


def fit(model_name: str, train: ArraySplit, val: ArraySplit, cfg: TrainConfig, device: str | torch.device = "auto",
        seeds: tuple[int, ...] = (0,), checkpoint: Path | None = None, progress: bool = True) -> list[FitResult]:
    """Train one member per seed in a single batched pass; return each with its best weights.

    Args:
        model_name: registry name, ``"cnn"`` (paper Table 1) or ``"vgg16"``.
        train, val: cached uint8 faces; early stopping watches the val loss (Keras default).
        cfg: epochs, batch size, Adam lr and decay, patience, precision (``TrainConfig``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        seeds: one member per seed (its init, batch order and dropout); ``(s,)`` = a single model.
        checkpoint: file written atomically after each epoch and resumed from if present.
        progress: show a tqdm bar over epochs.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    if len(seeds) > 1 and device.type not in VMAP_DEVICES:
        return [fit(model_name, train, val, cfg, device, (seed,), _member_checkpoint(checkpoint, seed), progress)[0]
                for seed in seeds]
    _set_threads(device)
    run = _new_run(model_name, train, val, cfg, device, tuple(seeds))
    initial = _eval_epoch(run, len(seeds))[0].tolist()  # the untrained weights' val loss: what training must beat
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "epochs"}  # resuming may extend a run
    recipe["precision"] = run["precision"]  # what ran, which "auto" does not say
    ident = identity("classifier", {"train+val": data_hash({"train": train, "val": val})},
                     {"model": model_name, "seeds": list(seeds), "recipe": recipe})
    keys = ("loss", "acc", "val_loss", "val_acc")
    state = _State(0, [{k: [] for k in keys} for _ in seeds], [float("inf")] * len(seeds),
                   [0] * len(seeds), [0] * len(seeds), [0] * len(seeds), 0.0, 0)
    saved = None if checkpoint is None else _usable_checkpoint(Path(checkpoint), device, ident)
    if saved is not None:
        state = _resume(saved, run, gens)
    bar = tqdm(range(state.epoch, cfg.epochs), initial=state.epoch, total=cfg.epochs, disable=not progress,
               desc=f"{model_name} x{len(seeds)}")
    for epoch in bar:
        if all(state.stopped):
            break
        t0 = time.perf_counter()
        tr = _train_epoch(run, gens, cfg.batch_size)
        va = _eval_epoch(run, len(seeds))
        values = torch.stack([*tr, *va]).tolist()  # the one host sync of the epoch
        state.seconds += time.perf_counter() - t0
        state.images_seen += len(train.labels) * len(seeds)
        _early_stopping(state, run, epoch + 1, dict(zip(keys, values)), cfg.patience)
        state.epoch = epoch + 1
        bar.set_postfix(val_loss=f"{min(values[2]):.3f}", val_acc=f"{max(values[3]):.3f}")
        if checkpoint is not None:
            _save(Path(checkpoint), run, state, gens, ident)
    return _results(model_name, run, state, tuple(seeds), initial, cfg)


def disk_needed(model_name: str, members: int = 1) -> int:
    """Bytes a checkpointed fit needs free at its peak: a checkpoint (weights, best weights, Adam's two moments,
    fp32, per member) and its replacement being written, then each member's weights."""
    with torch.device("meta"):  # counts parameters without allocating them
        n = sum(p.numel() for p in build_model(model_name).parameters())
    return 4 * n * members * (2 * 4 + 1)


def _member_checkpoint(checkpoint: Path | None, seed: int) -> Path | None:
    """One member's checkpoint file when members train one after another."""
    return None if checkpoint is None else Path(checkpoint).with_name(f"{Path(checkpoint).stem}-seed{seed}.pt")


def member_failure(history: dict[str, list[float]], best_loss: float, initial_loss: float, cfg: TrainConfig) -> str:
    """Why a member's weights must not be kept, with the setting to change; "" when they may.

    Its loss left the finite numbers, or no epoch validated below the untrained weights: then the best weights
    are no better than where training started (Keras' early stopping would keep the least bad epoch of a run
    that blew up, lr 1000 giving 4e30, or of one that sat on the plateau), and scored they would read as a
    finished run of the recipe. With ``train.must_improve`` false (the quick preset, whose few epochs sit on the
    CNN's plateau) only the first fails; the run's record says it did not improve (``FitResult.improved``).
    """
    for epoch, losses in enumerate(zip(history["loss"], history["val_loss"]), start=1):
        for name, value in zip(("training loss", "validation loss"), losses):
            if not math.isfinite(value):
                return f"{name} is {value} at epoch {epoch}; lower train.lr (now {cfg.lr:g})"
    if best_loss < initial_loss or not cfg.must_improve:
        return ""
    epochs = len(history["val_loss"])
    grew = best_loss > 1.1 * initial_loss  # only picks the advice: the verdict above has no margin
    change = (f"lower train.lr (now {cfg.lr:g})" if grew else
              f"train longer (train.epochs, now {cfg.epochs}) or change train.lr (now {cfg.lr:g})")
    return (f"validation loss never came below the untrained weights' ({initial_loss:.6g}) in {epochs} "
            f"epoch(s): best {best_loss:.6g} at epoch {history['val_loss'].index(best_loss) + 1}; {change}")


def _results(model_name: str, run: dict, state: _State, seeds: tuple[int, ...], initial: list[float],
             cfg: TrainConfig) -> list[FitResult]:
    """Unstack the best weights into one eval-mode model per member, each with why it failed, if it did."""
    out = []
    for s, seed in enumerate(seeds):
        model = build_model(model_name).to(run["device"])
        model.load_state_dict({k: v[s] for k, v in run["best"].items()} | {k: v[s] for k, v in run["buffers"].items()})
        speed = state.images_seen / state.seconds if state.seconds else 0.0
        out.append(FitResult(model.eval(), seed, state.history[s], state.best_epoch[s],
                             state.stopped[s] or state.epoch, state.seconds, speed,
                             run["precision"], member_failure(state.history[s], state.best_loss[s], initial[s], cfg),
                             initial[s]))
    return out


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, device: str | torch.device = "auto",
            batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, C) for uint8 faces (N, H, W), in eval mode."""
    device = resolve_device(device) if isinstance(device, str) else device
    model = model.to(device).eval()
    x_all = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # (N, H, W) uint8
    probs = []
    for i in range(0, len(x_all), batch_size):
        x = x_all[i:i + batch_size].unsqueeze(1).float().div_(255.0)  # (B, 1, H, W)
        with mixed_precision(device):
            probs.append(torch.softmax(model(x).float(), dim=1))
    return torch.cat(probs).cpu().numpy()
