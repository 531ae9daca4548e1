"""Training throughput: our engine on cached uint8 arrays vs the usual PNG-files + DataLoader loop."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import Config, TrainConfig
from ..engine import ArraySplit, fit
from ..models import build_model
from ..models._torchvision import torchvision
from ..runtime import native_bf16, resolve_device, resolve_precision

T = torchvision.transforms


class _PngFolder(torch.utils.data.Dataset):
    """What most FER repos do: open, decode and transform one image file per sample."""

    def __init__(self, paths: list[Path], labels: np.ndarray) -> None:
        self.paths, self.labels = paths, labels
        self.transform = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("L")), int(self.labels[i])


def _write_pngs(root: Path, images: np.ndarray) -> list[Path]:
    """Write the benchmark faces as PNG files, the on-disk form the naive loop reads."""
    paths = [root / f"{i:05d}.png" for i in range(len(images))]
    for path, img in zip(paths, images):
        Image.fromarray(img).save(path)
    return paths


def _naive(paths: list[Path], labels: np.ndarray, device: torch.device, batch: int) -> float:
    """Images/s of a plain DataLoader + per-batch host-to-device loop over PNG files."""
    torch.manual_seed(0)
    model = build_model("cnn").to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(_PngFolder(paths, labels), batch_size=batch, shuffle=True)
    t0 = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # the usual per-batch logging sync
    return len(paths) / (time.perf_counter() - t0)


def run(cfg: Config, n: int | None = None, batch: int = 64) -> dict[str, float]:
    """Print img/s at batch 64 for the naive fp32 loop and for ``train.fit``, and their ratios.

    ``fit`` runs in fp32 (the like-for-like ratio) and, where the device has bf16 units, also in
    the bf16 autocast that ``train.precision: auto`` picks there.
    """
    device = resolve_device(cfg.device)
    n = n or (16384 if device.type == "cuda" else 512)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    labels = rng.integers(0, 6, n)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {n} faces 64x64, batch {batch}, Table-1 CNN; train.precision auto -> "
          f"{resolve_precision('auto', device)}")
    with tempfile.TemporaryDirectory() as tmp:
        naive = _naive(_write_pngs(Path(tmp), images), labels, device, batch)
    print(f"naive PNG + DataLoader, fp32 : {naive:8.1f} img/s")
    out = {"naive_img_per_s": naive}
    val = ArraySplit(images[:batch], labels[:batch])
    for precision in ("fp32", "bf16") if native_bf16(device) else ("fp32",):
        recipe = TrainConfig(epochs=1, batch_size=batch, precision=precision)
        ours = fit("cnn", ArraySplit(images, labels), val, recipe, device, progress=False)[0].img_per_s
        print(f"fer_utils.engine.fit, {precision}  : {ours:8.1f} img/s  ({ours / naive:.2f}x)")
        out[f"ours_{precision}_img_per_s"] = ours
    out["ratio"] = out["ours_fp32_img_per_s"] / naive
    return out
