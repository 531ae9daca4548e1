"""A trained classifier on disk: safetensors weights tagged with the registry name that rebuilds them."""
from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from ..config import WeightsError
from ..runtime import atomic_path
from . import build_model


def save_model(model: nn.Module, model_name: str, path: Path) -> Path:
    """Write a trained classifier's weights as safetensors (atomic), tagged with its registry name."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"model": model_name})
    return path


def load_model(path: Path) -> nn.Module:
    """Rebuild a classifier written by ``save_model`` (eval mode, CPU); ``WeightsError`` naming the file if it can't."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            name = (f.metadata() or {}).get("model")
        if name is None:
            raise ValueError("no 'model' entry in the safetensors metadata; not written by save_model")
        model = build_model(name)
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, another model's weights
        raise WeightsError(f"{path}: cannot load these weights ({type(exc).__name__}: {exc}); delete the run's "
                           ".json and .safetensors and run it again (sweep or the notebook)") from None
    return model.eval()
