"""Import torchvision even when its compiled ops cannot load (CUDA wheel on a CPU-only torch).

The PyPI torchvision 0.28 wheel is a CUDA build; next to a CPU torch its C extension fails to
load and ``import torchvision`` dies with "operator torchvision::nms does not exist" while
registering fake kernels. We only need the model builders, so when (and only when) the
extension cannot load we declare the two op schemas it looks up first.
"""
from __future__ import annotations

import importlib.metadata

import torch


def _extension_loads() -> bool:
    """Try to load torchvision's compiled ops library without importing the package."""
    root = importlib.metadata.distribution("torchvision").locate_file("torchvision")
    libs = sorted(root.glob("_C*.so")) + sorted(root.glob("_C*.pyd"))
    if not libs:
        return False
    try:
        torch.ops.load_library(str(libs[0]))
    except (OSError, RuntimeError):
        return False
    return True


if not _extension_loads():
    _LIB = torch.library.Library("torchvision", "DEF")  # kept alive: the schemas live with it
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

import torchvision  # noqa: E402  (must follow the schema shim above)

__all__ = ["torchvision"]
