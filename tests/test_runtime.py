"""Atomic writes leave either the old file or the new one, never a partial file."""
import json

import pytest
import torch

from fer_utils import runtime
from fer_utils.runtime import atomic_path, resolve_device, resolve_precision, seed_everything, write_json


def test_atomic_path_keeps_old_content_when_the_block_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind


def test_write_json_round_trips_numpy(tmp_path):
    import numpy as np

    path = write_json(tmp_path / "a" / "r.json", {"acc": np.float32(0.5), "cm": np.eye(2, dtype=int)})
    assert json.loads(path.read_text()) == {"acc": 0.5, "cm": [[1, 0], [0, 1]]}


def test_seed_everything_repeats_torch_draws():
    seed_everything(3)
    a = torch.rand(4)
    seed_everything(3)
    assert torch.equal(a, torch.rand(4))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """Results, figures and the README must not end up private (mkstemp's 0600)."""
    import os
    import stat

    from fer_utils.gan.stargan import Generator
    from fer_utils.gan.weights import save_weights
    from fer_utils.runtime import write_json

    mask = os.umask(0o022)
    try:
        paths = [write_json(tmp_path / "run.json", {"a": 1}),  # writes into the temp file
                 save_weights(Generator(4, 2, 1), tmp_path / "w.safetensors", {})]  # recreates it
    finally:
        os.umask(mask)
    assert [stat.S_IMODE(path.stat().st_mode) for path in paths] == [0o644, 0o644]


@pytest.mark.parametrize("bf16_units", [True, False])
def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_units(monkeypatch, bf16_units):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_units)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if bf16_units else "fp32")
    assert (resolve_precision("fp32", cpu), resolve_precision("bf16", cpu)) == ("fp32", "bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert not runtime.native_bf16(torch.device("cuda"))  # a GPU that only emulates bf16 (pre-Ampere) stays fp32
    assert runtime.native_bf16(torch.device("meta")) is False


def test_unknown_precision_is_named():
    from fer_utils.config import ConfigError, load_config
    with pytest.raises(ValueError, match="'half'"):
        resolve_precision("half", torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"train\.precision .*'fp16'"):
        load_config("quick", {"train.precision": "fp16"})
