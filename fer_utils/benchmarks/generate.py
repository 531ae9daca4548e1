"""Generation speed: identities/s end to end (StyleGAN2 -> face crop -> StarGAN x 6), batched vs one at a time,
beside the limit the machine's matmul speed sets for the models' FLOPs."""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import Config
from ..gan.pipeline import Pipeline, latents, load_pipeline


def flops_per_identity(pipe: Pipeline) -> float:
    """FLOPs of one identity: StyleGAN2 mapping + synthesis, and StarGAN for the six expressions."""
    z = latents(0, 0, 1, pipe.stylegan2.z_dim)
    with FlopCounterMode(display=False) as counter:
        pipe(z)
    return float(counter.get_total_flops())


def matmul_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """Sustained fp32 GFLOP/s of square matmuls on the CPU: the machine's practical compute ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def _batched(pipe: Pipeline, z: torch.Tensor, batch_size: int) -> tuple[float, dict[str, float]]:
    """Identities/s of the pipeline as ``generate`` runs it (batches, six expressions per call), and seconds per
    stage."""
    stages: dict[str, float] = {}  # filled by the pipeline, in stage order
    t0 = time.perf_counter()
    for i in range(0, len(z), batch_size):
        pipe(z[i:i + batch_size], stage_seconds=stages)
    return len(z) / (time.perf_counter() - t0), stages


def _naive(pipe: Pipeline, z: torch.Tensor) -> float:
    """Identities/s one identity and one expression per call (the usual per-image test loop)."""
    t0 = time.perf_counter()
    for i in range(len(z)):
        face, _ = pipe.crop(pipe.identities(z[i:i + 1]))
        for target in pipe.targets:
            pipe.translate(face, [target])
    return len(z) / (time.perf_counter() - t0)


def run(cfg: Config, n: int | None = None) -> dict[str, float]:
    """Print identities/s of the naive loop and of the batched pipeline, their ratio and the FLOP limit."""
    pipe, paths = load_pipeline(cfg)
    n = n or (2048 if pipe.device.type == "cuda" else 288)
    z = latents(cfg.generate.seed, 0, n, pipe.stylegan2.z_dim)
    flops = flops_per_identity(pipe)
    cpu = f"cpu ({torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(pipe.device) if pipe.device.type == "cuda" else cpu
    print(f"device: {name}; {n} identities x 6 expressions at {pipe.size} px; weights {paths}")
    _batched(pipe, z[:cfg.generate.batch_size], cfg.generate.batch_size)  # warm-up
    naive = _naive(pipe, z[: max(16, n // 8)])
    ours, stages = _batched(pipe, z, cfg.generate.batch_size)
    gflops = matmul_gflops() if pipe.device.type == "cpu" else float("nan")
    limit = gflops * 1e9 / flops
    print(f"model FLOPs per identity   : {flops / 1e9:8.2f} GFLOP")
    print(f"naive, one image per call  : {naive:8.1f} identities/s")
    print(f"batched ({cfg.generate.batch_size:3d} identities)   : {ours:8.1f} identities/s  ({ours / naive:.2f}x)")
    print(f"FLOP limit at {gflops:6.1f} GFLOP/s : {limit:8.1f} identities/s  (ours at {ours / limit:.0%} of it)")
    total = sum(stages.values())
    print("batched time per stage     : " + ", ".join(f"{name} {sec / n * 1e3:.2f} ms/identity ({sec / total:.0%})"
                                                     for name, sec in stages.items()))
    return {"stage_seconds": stages, "naive_ids_per_s": naive, "ours_ids_per_s": ours, "ratio": ours / naive,
            "gflop_per_identity": flops / 1e9, "matmul_gflops": gflops, "limit_ids_per_s": limit}
