"""The training engine: seeds, resume, early stopping and batched members behave like Keras runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fer_utils import engine as train_mod
from fer_utils.config import TrainConfig
from fer_utils.engine import ArraySplit, fit, predict
from fer_utils.models import MODELS

CFG = TrainConfig(epochs=4, batch_size=16, lr=1e-2, lr_decay=1e-3, patience=2, precision="fp32")


def _tiny(dropout: float) -> nn.Module:
    """A model small enough that a test trains it in well under a second."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=4), nn.ReLU(),  # (B, 4, 16, 16)
        nn.Dropout(dropout), nn.Flatten(), nn.Linear(4 * 16 * 16, 6),
    )


@pytest.fixture(autouse=True)
def tiny_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the tiny model, with and without dropout, for these tests only."""
    monkeypatch.setitem(MODELS, "tiny", lambda: _tiny(0.5))
    monkeypatch.setitem(MODELS, "tiny_nodrop", lambda: _tiny(0.0))


def _split(n: int, seed: int) -> ArraySplit:
    """Random faces whose top-left patch brightness encodes the label (learnable, noisy)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, n)
    images = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    images[:, :8, :8] = (labels * 40)[:, None, None]
    return ArraySplit(images, labels)


TRAIN, VAL = _split(80, 0), _split(40, 1)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """Parameters as a flat list, for comparisons."""
    return [p.detach().clone() for p in model.parameters()]


def test_same_seed_same_numbers() -> None:
    """Same seed and device give identical history and weights."""
    a, b = (fit("tiny", TRAIN, VAL, CFG, "cpu", progress=False)[0] for _ in range(2))
    assert a.history == b.history
    assert all(torch.equal(x, y) for x, y in zip(_weights(a.model), _weights(b.model)))


def test_resume_matches_uninterrupted(tmp_path) -> None:
    """Stopping after 2 epochs and resuming from the checkpoint ends where one run ends."""
    full = fit("tiny", TRAIN, VAL, CFG, "cpu", checkpoint=tmp_path / "full.pt", progress=False)[0]
    short = TrainConfig(**{**CFG.__dict__, "epochs": 2})
    fit("tiny", TRAIN, VAL, short, "cpu", checkpoint=tmp_path / "part.pt", progress=False)
    resumed = fit("tiny", TRAIN, VAL, CFG, "cpu", checkpoint=tmp_path / "part.pt", progress=False)[0]
    assert resumed.history == full.history
    assert all(torch.equal(x, y) for x, y in zip(_weights(resumed.model), _weights(full.model)))


@pytest.mark.parametrize("change", ["seeds", "data", "truncated", "garbage"])
def test_checkpoint_of_other_inputs_or_damaged_is_deleted_not_resumed(tmp_path, capsys, change) -> None:
    """A checkpoint made from other seeds or other faces (same count), or damaged, is deleted with a log line
    and the run trains from the start: it ends exactly as a clean run (it resumed other weights before)."""
    clean = fit("tiny", TRAIN, VAL, CFG, "cpu", checkpoint=tmp_path / "clean.pt", progress=False)[0]
    ckpt = tmp_path / "c.pt"
    short = TrainConfig(**{**CFG.__dict__, "epochs": 2})
    other_train = ArraySplit(255 - TRAIN.images, TRAIN.labels) if change == "data" else TRAIN  # e.g. another margin
    fit("tiny", other_train, VAL, short, "cpu", seeds=(1,) if change == "seeds" else (0,), checkpoint=ckpt,
        progress=False)
    if change == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif change == "garbage":
        ckpt.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    rerun = fit("tiny", TRAIN, VAL, CFG, "cpu", checkpoint=ckpt, progress=False)[0]
    log = capsys.readouterr().out
    assert f"deleted checkpoint {ckpt}" in log
    why = {"seeds": "settings changed: seeds [1] -> [0]", "data": "input changed: train+val hash "}
    assert why.get(change, "unreadable") in log
    assert rerun.history == clean.history
    assert all(torch.equal(x, y) for x, y in zip(_weights(rerun.model), _weights(clean.model)))


def test_early_stopping_restores_best_weights() -> None:
    """The returned model is the epoch of lowest val loss, and training stops `patience` later."""
    cfg = TrainConfig(epochs=30, batch_size=16, lr=3e-2, lr_decay=0.0, patience=2, precision="fp32")
    res = fit("tiny_nodrop", TRAIN, VAL, cfg, "cpu", progress=False)[0]
    val_loss = res.history["val_loss"]
    assert res.best_epoch == int(np.argmin(val_loss)) + 1
    assert res.stopped_epoch == len(val_loss)
    assert res.stopped_epoch == cfg.epochs or res.stopped_epoch == res.best_epoch + cfg.patience
    probs = predict(res.model, VAL.images, "cpu")
    loss = -np.log(probs[np.arange(len(VAL.labels)), VAL.labels]).mean()
    assert loss == pytest.approx(min(val_loss), rel=1e-4)


def test_batched_members_match_sequential_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two seeds trained together in one vmapped pass equal the two trained one by one (dropout off)."""
    monkeypatch.setattr(train_mod, "VMAP_DEVICES", {"cuda", "cpu"})
    both = fit("tiny_nodrop", TRAIN, VAL, CFG, "cpu", seeds=(0, 1), progress=False)
    for member, seed in zip(both, (0, 1)):
        alone = fit("tiny_nodrop", TRAIN, VAL, CFG, "cpu", seeds=(seed,), progress=False)[0]
        assert member.history.keys() == alone.history.keys()
        for key in alone.history:
            np.testing.assert_allclose(member.history[key], alone.history[key], rtol=1e-4, atol=1e-5)
        for x, y in zip(_weights(member.model), _weights(alone.model)):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_bf16_precision_trains_under_autocast_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """train.precision bf16 runs the training steps in bf16 on CPU (other numbers than fp32); validation stays fp32."""
    monkeypatch.setitem(MODELS, "tiny_probe", lambda: nn.Sequential(_tiny(0.0), _DtypeProbe()))
    _SEEN.clear()
    half = fit("tiny_probe", TRAIN, VAL, TrainConfig(**{**CFG.__dict__, "precision": "bf16"}), "cpu", progress=False)[0]
    half_dtypes = set(_SEEN)
    _SEEN.clear()
    full = fit("tiny_probe", TRAIN, VAL, CFG, "cpu", progress=False)[0]
    assert (half.precision, full.precision) == ("bf16", "fp32")
    assert half_dtypes == {torch.bfloat16, torch.float32} and set(_SEEN) == {torch.float32}
    assert half.history["loss"] != full.history["loss"]
    probs = predict(half.model, VAL.images, "cpu")  # scoring is fp32 on CPU, as validation was
    loss = -np.log(probs[np.arange(len(VAL.labels)), VAL.labels]).mean()
    assert loss == pytest.approx(half.history["val_loss"][half.best_epoch - 1], rel=1e-4)


_SEEN: list[torch.dtype] = []  # module level: the engine deep-copies models, and a list attribute with them


class _DtypeProbe(nn.Module):
    """Identity layer that notes the dtype of the logits it passes on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _SEEN.append(x.dtype)
        return x


def test_cpu_trains_members_one_after_another(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside VMAP_DEVICES each seed is its own run, with its own checkpoint, returned in seed order."""
    monkeypatch.setattr(train_mod, "VMAP_DEVICES", {"cuda"})
    members = fit("tiny", TRAIN, VAL, CFG, "cpu", seeds=(3, 1), checkpoint=tmp_path / "run.pt", progress=False)
    assert [m.seed for m in members] == [3, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-seed1.pt", "run-seed3.pt"]


def test_cpu_training_takes_every_core_unless_omp_num_threads_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two jobs sharing a machine each set OMP_NUM_THREADS; fit must not take both cores back."""
    before = torch.get_num_threads()
    monkeypatch.setattr(train_mod, "usable_cores", lambda: 3)
    try:
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        fit("tiny", TRAIN, VAL, CFG, "cpu", progress=False)
        assert torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        fit("tiny", TRAIN, VAL, CFG, "cpu", progress=False)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_bad_split_is_rejected() -> None:
    """Empty or float arrays fail at the boundary with a clear message."""
    with pytest.raises(ValueError, match="N > 0"):
        ArraySplit(np.zeros((0, 64, 64), np.uint8), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="uint8"):
        ArraySplit(np.zeros((2, 64, 64), np.float32), np.zeros(2, np.int64))


def test_benchmark_reports_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    """The training benchmark runs both loops on CPU and prints the device and the ratio."""
    from fer_utils.benchmarks import train as bench
    from fer_utils.config import Config

    out = bench.run(Config(device="cpu"), n=128)
    assert out["naive_img_per_s"] > 0 and out["ratio"] > 0
    assert "device: cpu" in capsys.readouterr().out


def _with(**changes) -> TrainConfig:
    """CFG with some fields changed."""
    return TrainConfig(**{**CFG.__dict__, **changes})


def test_a_diverged_member_stops_and_names_the_epoch_and_the_lr() -> None:
    """lr 1e30 makes the loss nan in the first epoch: the member stops there and says what to lower (issue 37 #1)."""
    (result,) = fit("tiny_nodrop", TRAIN, VAL, _with(lr=1e30), "cpu", progress=False)
    assert result.failure == "training loss is nan at epoch 1; lower train.lr (now 1e+30)"
    assert result.stopped_epoch == 1 and len(result.history["loss"]) == 1


def test_a_member_whose_loss_blows_up_but_stays_finite_fails() -> None:
    """lr 1e3 sends the loss to about 1e30 without a nan (issue 37 #1): even its best epoch validates above the
    untrained weights, so it is failed, not kept as a chance-level model, and told to lower the lr."""
    (result,) = fit("tiny_nodrop", TRAIN, VAL, _with(lr=1e3, epochs=2), "cpu", progress=False)
    assert all(np.isfinite(result.history["val_loss"])), "this case must test the finite branch"
    assert result.failure.startswith("validation loss never came below the untrained weights' (")
    best = min(result.history["val_loss"])
    assert result.failure.endswith(f"in 2 epoch(s): best {best:.6g} at epoch "
                                   f"{result.history['val_loss'].index(best) + 1}; lower train.lr (now 1000)")


def test_a_run_that_never_improved_on_its_untrained_weights_fails() -> None:
    """lr 1e-30: the weights do not move, so no epoch validates below the untrained weights (issue 37 #1, the
    strict rule). Saved, they would count as a finished run of the recipe; the message says to train longer."""
    (result,) = fit("tiny_nodrop", TRAIN, VAL, _with(lr=1e-30, patience=1), "cpu", progress=False)
    assert result.failure.startswith("validation loss never came below the untrained weights' (")
    assert result.failure.endswith("; train longer (train.epochs, now 4) or change train.lr (now 1e-30)")


def test_a_run_that_improves_by_any_amount_is_kept() -> None:
    """The rule is strict, not a margin: a best epoch a hair under the untrained loss keeps the run."""
    history = {"loss": [1.8, 1.79], "val_loss": [1.7918, 1.79179]}
    assert train_mod.member_failure(history, 1.79179, 1.7918, CFG) == ""
    assert train_mod.member_failure(history, 1.79179, 1.79179, CFG).startswith("validation loss never came below")


def test_a_learning_run_has_no_failure() -> None:
    """The recipe that learns is not failed (its best epoch validates below the untrained weights). 80 faces of
    noise with a label patch are memorised, not learned (validation loss only rises), so this run has 300."""
    train, val = _split(300, 0), _split(100, 1)
    assert all(not r.failure for r in fit("tiny", train, val, CFG, "cpu", seeds=(0, 1, 2), progress=False))


def test_raise_failures_names_the_run_and_each_failed_seed() -> None:
    """One line for the run: the failed seeds with their reasons, the healthy ones left out."""
    results = [train_mod.FitResult(nn.Identity(), s, {}, 1, 1, 0.0, 0.0, "fp32", why, 1.8)
               for s, why in [(0, "training loss is nan at epoch 1; lower train.lr (now 1e+30)"), (1, "")]]
    with pytest.raises(train_mod.TrainingFailed) as info:
        train_mod.raise_failures("train real k=0", results)
    assert str(info.value) == "train real k=0 seed 0: training loss is nan at epoch 1; lower train.lr (now 1e+30)"
    train_mod.raise_failures("train real k=0", results[1:])  # nothing failed: no error
