"""Weight files: our safetensors, yunjey StarGAN ``*.ckpt``, NVIDIA StyleGAN2-ADA ``.pkl`` (no code run).

Formats and how to point settings at them: ``docs/generators.md``. The ``.pkl`` importer never executes
pickled code: a restricted unpickler allows only the globals needed to rebuild tensors and replaces
``torch_utils.persistence._reconstruct_persistent_obj`` by a stub that captures (class_name, state)
and ignores the embedded ``module_src``. Every file that cannot be used (missing, truncated, foreign,
of another architecture) raises a one-line ``WeightsError`` naming it and what to do.
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..config import WeightsError
from ..runtime import atomic_path
from . import stargan, stylegan2

METADATA_KEY = "fer_utils"
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "stargan.Generator": stargan.Generator,
    "stargan.Discriminator": stargan.Discriminator,
    "stylegan2.Generator": stylegan2.Generator,
    "stylegan2.Discriminator": stylegan2.Discriminator,
}
# what parsing untrusted bytes (safetensors, torch.load, a restricted unpickler) raises when they are not a valid file
READ_ERRORS = (OSError, EOFError, pickle.UnpicklingError, SafetensorError, ValueError, LookupError, TypeError,
               AttributeError, RuntimeError, ArithmeticError)
SAFETENSORS_ADVICE = ("export it again with `python -m fer_utils train-gan`, or fetch it again "
                      "(a Git LFS pointer? run `git lfs pull`)")
CKPT_ADVICE = "point at a yunjey/stargan `{iters}-G.ckpt` (a bare state dict), downloaded completely"
PKL_ADVICE = ("point at a complete NVlabs stylegan2-ada-pytorch `network-snapshot-*.pkl` "
              "(TF-era pickles: convert them with NVlabs legacy.py first)")


# ----------------------------------------------------------------------------- errors

def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line for an error or log line; torch's advice to unpickle with code execution is
    replaced by its actual reason."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        text = f"torch's weights-only unpickler refused it: {reason}"
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


@contextlib.contextmanager
def reading(path: Path, kind: str, advice: str) -> Iterator[None]:
    """Turn whatever reading ``path`` as a ``kind`` raises into a WeightsError naming it: a truncated or foreign
    file must not end in a traceback."""
    try:
        yield
    except WeightsError:
        raise
    except READ_ERRORS as exc:
        raise WeightsError(f"{path}: not a readable {kind} ({one_line(exc)}); {advice}") from exc


def existing(path: str | os.PathLike, kind: str) -> Path:
    """``path`` as a Path if it is a file, else a WeightsError naming it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{kind} not found: {path} (check the path; nothing is downloaded)")
    return path


def _build(path: Path, architecture: str, config: dict[str, Any]) -> nn.Module:
    """The network ``config`` describes; a WeightsError naming ``path`` when the config builds none (other version)."""
    try:
        return ARCHITECTURES[architecture](**config)
    except (LookupError, TypeError, ValueError, RuntimeError, ArithmeticError) as exc:
        raise WeightsError(f"{path}: its stored config {config!r} does not build a {architecture} "
                           f"({one_line(exc)}); written by another version? export it again with this one") from exc


def _load_state(path: Path, module: nn.Module, state: dict[str, Any], advice: str) -> nn.Module:
    """Load ``state`` into ``module`` strictly; a WeightsError naming ``path`` and the keys that do not fit."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise WeightsError(f"{path}: its tensors do not fit a {type(module).__name__} of this size "
                           f"({one_line(exc)}); {advice}") from exc
    return module


# ----------------------------------------------------------------------------- safetensors (ours)

def save_weights(module: nn.Module, path: str | os.PathLike, config: dict[str, Any],
                 provenance: dict[str, Any] | None = None, fp16: bool = False) -> Path:
    """Write ``module``'s state dict as safetensors with JSON metadata {architecture, config, provenance}.

    Args:
        module: one of the networks in ``ARCHITECTURES``.
        path: destination ``.safetensors`` file (written atomically).
        config: the constructor kwargs that rebuild ``module``.
        provenance: where the weights come from (source file, iterations, seed ...).
        fp16: store floating tensors as float16 (shipping); integer buffers keep their dtype.
    """
    architecture = _architecture_name(module)
    tensors = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu()
        if fp16 and value.is_floating_point():
            value = value.half()
        tensors[key] = value.contiguous()
    meta = {"architecture": architecture, "config": config, "provenance": provenance or {}, "fp16": fp16}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata stored by ``save_weights`` ({architecture, config, provenance}), checked, or a WeightsError."""
    path = existing(path, "weights file")
    with reading(path, "fer_utils .safetensors file", SAFETENSORS_ADVICE):
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
        meta = None if raw is None else json.loads(raw)
    if not _usable_metadata(meta):
        raise WeightsError(f"{path}: no usable '{METADATA_KEY}' metadata (architecture one of {sorted(ARCHITECTURES)}, "
                           "config, provenance); not written by fer_utils: export it with `python -m fer_utils "
                           "train-gan`")
    return {"provenance": {}, **meta}


def _usable_metadata(meta: Any) -> bool:
    """Whether ``meta`` names a known architecture with a config mapping (and a provenance mapping, if any)."""
    return (isinstance(meta, dict) and meta.get("architecture") in ARCHITECTURES
            and isinstance(meta.get("config"), dict) and isinstance(meta.get("provenance", {}), dict))


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network saved in ``path`` (architecture + config from its metadata), in float32, eval mode."""
    path, meta = Path(path), read_metadata(path)
    module = _build(path, meta["architecture"], meta["config"])
    with reading(path, "fer_utils .safetensors file", SAFETENSORS_ADVICE):
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return _load_state(path, module, state, SAFETENSORS_ADVICE).to(device).eval()


def _architecture_name(module: nn.Module) -> str:
    """Return the ``ARCHITECTURES`` key of ``module``'s class."""
    for name, cls in ARCHITECTURES.items():
        if type(module) is cls:
            return name
    raise TypeError(f"cannot save {type(module).__name__}; known architectures: {sorted(ARCHITECTURES)}")


# ----------------------------------------------------------------------------- yunjey StarGAN .ckpt

def load_stargan_ckpt(path: str | os.PathLike, module: nn.Module) -> nn.Module:
    """Load a yunjey/sayeh1994 ``{iters}-G.ckpt`` / ``-D.ckpt`` state dict strictly into ``module``.

    ``num_batches_tracked`` (absent from PyTorch 0.4.0-era files) is filled with 0 when missing. Read with
    ``weights_only``: no pickled code runs.
    """
    path = existing(path, "StarGAN checkpoint")
    with reading(path, "PyTorch state dict", CKPT_ADVICE):
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise WeightsError(f"{path}: holds a {type(state).__name__} that is not a state dict of tensors "
                           f"(a train-gan checkpoint.pt? use its exported .safetensors); {CKPT_ADVICE}")
    state = dict(state)
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    sizes = ", ".join(f"{k}={getattr(module, k)}" for k in ("conv_dim", "c_dim", "repeat_num") if hasattr(module, k))
    return _load_state(path, module, state, f"a file of another architecture than {sizes}? {CKPT_ADVICE}")


# ----------------------------------------------------------------------------- StyleGAN2-ADA .pkl

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch legacy (non-zip) serialization stream
LEGACY_PROTOCOL = 1001
PERSISTENCE_VERSION = 6  # torch_utils/persistence.py _version
STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
SYNTHESIS_KWARGS = {"channel_base", "channel_max", "num_fp16_res", "conv_clamp", "use_noise"}
MAPPING_KWARGS = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta"}
FIXED_KWARGS = {"architecture": "skip", "resample_filter": [1, 3, 3, 1]}  # the only values we implement


@dataclass
class PersistentStub:
    """Stand-in for a ``torch_utils.persistence`` object: its class name and Module ``__dict__``, no code."""

    class_name: str
    state: dict


class _AttrDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict subclass)."""


def _reconstruct_persistent_obj(meta: dict) -> PersistentStub:
    """Capture (class_name, state) of a persistent object; ``module_src`` is ignored, never executed."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise pickle.UnpicklingError(f"unsupported persistent object meta: type={kind!r}")
    if meta.get("version") != PERSISTENCE_VERSION:
        raise pickle.UnpicklingError(f"unsupported torch_utils.persistence version {meta.get('version')!r}")
    return PersistentStub(str(meta["class_name"]), dict(meta["state"]))


def _rebuild_tensor_v2(storage: torch.Tensor, storage_offset: int, size: tuple, stride: tuple,
                       requires_grad: bool = False, backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """Rebuild a tensor as a strided view of a 1-D storage tensor (torch._utils._rebuild_tensor_v2)."""
    return torch.as_strided(storage, tuple(size), tuple(stride), storage_offset).clone()


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, backward_hooks: Any, state: Any = None) -> torch.Tensor:
    """Return a Parameter's data (torch._utils._rebuild_parameter[_with_state])."""
    return data


def _np_scalar(dtype: np.dtype, data: bytes | None = None) -> Any:
    """Rebuild a numpy scalar from raw bytes; object dtypes are refused."""
    if dtype.hasobject or data is None:
        raise pickle.UnpicklingError(f"refused numpy scalar of dtype {dtype}")
    return np.frombuffer(data, dtype=dtype)[0]


def _np_dtype(spec: str, align: bool = False, copy: bool = False) -> np.dtype:
    """Rebuild a plain numpy dtype; object dtypes are refused."""
    dtype = np.dtype(spec)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refused numpy dtype {spec!r}")
    return dtype


class _StorageRef:
    """Placeholder returned by ``persistent_load`` until the storage bytes are read."""

    def __init__(self, key: str, dtype: torch.dtype, view_metadata: Any) -> None:
        self.key, self.dtype, self.view_metadata = key, dtype, view_metadata


class _LegacyStorageUnpickler(pickle.Unpickler):
    """Unpickler for the legacy ``torch.save`` stream inside ``_load_from_bytes``: storages only."""

    def find_class(self, module: str, name: str) -> Any:
        """Allow only ``torch.<Type>Storage``, mapped to its dtype."""
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refused global {module}.{name} in a storage stream")

    def persistent_load(self, pid: Any) -> _StorageRef:
        """Turn ``('storage', dtype, key, location, numel, view_metadata)`` into a reference."""
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return _StorageRef(str(pid[2]), pid[1], pid[5] if len(pid) > 5 else None)


def _load_from_bytes(b: bytes) -> torch.Tensor:
    """Parse a legacy ``torch.save(storage)`` stream into a 1-D tensor, without torch.load."""
    f = io.BytesIO(b)
    header = [_LegacyStorageUnpickler(f).load() for _ in range(3)]  # magic, protocol, sys_info
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL or not header[2].get("little_endian", False):
        raise pickle.UnpicklingError("not a little-endian legacy torch storage stream")
    ref = _LegacyStorageUnpickler(f).load()
    keys = _LegacyStorageUnpickler(f).load()
    if not isinstance(ref, _StorageRef) or not isinstance(keys, list) or ref.key not in map(str, keys):
        raise pickle.UnpicklingError("malformed legacy torch storage stream")
    storages = {}
    for key in keys:
        numel = int.from_bytes(f.read(8), "little")
        elsize = torch.empty([], dtype=ref.dtype).element_size()
        raw = f.read(numel * elsize)
        if len(raw) != numel * elsize:
            raise pickle.UnpicklingError(f"truncated storage {key!r}: {len(raw)} of {numel * elsize} bytes")
        empty = torch.empty(0, dtype=ref.dtype)
        storages[str(key)] = torch.frombuffer(bytearray(raw), dtype=ref.dtype) if numel else empty
    storage = storages[ref.key]
    if ref.view_metadata is not None:
        offset, numel = ref.view_metadata
        storage = storage[offset: offset + numel]
    return storage


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy", "dtype"): _np_dtype,
    ("dnnlib.util", "EasyDict"): _AttrDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``ALLOWED_GLOBALS`` (harmless stand-ins) and refuses everything else."""

    def find_class(self, module: str, name: str) -> Any:
        """Return the stand-in for an allowed global; raise UnpicklingError naming any other."""
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (not needed for network weights)") from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: a network pickle stores tensors inline."""
        raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")


def read_network_pkl(path: str | os.PathLike) -> dict:
    """Read an NVIDIA StyleGAN2-ADA ``network-snapshot-*.pkl`` safely: {'G', 'D', 'G_ema', ...} as stubs."""
    path = existing(path, "network pickle")
    with reading(path, "network pickle", PKL_ADVICE), path.open("rb") as f:
        data = RestrictedUnpickler(f).load()
    if not isinstance(data, dict) or "G_ema" not in data:
        raise WeightsError(f"{path}: not a StyleGAN2-ADA snapshot (expected a dict with 'G_ema'); {PKL_ADVICE}")
    return data


def stub_state_dict(stub: PersistentStub, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a stub's ``_parameters`` / persistent ``_buffers`` / ``_modules`` into state_dict keys."""
    state = stub.state
    out = {prefix + k: v for k, v in state.get("_parameters", {}).items() if v is not None}
    skip = state.get("_non_persistent_buffers_set", set())
    out.update({prefix + k: v for k, v in state.get("_buffers", {}).items() if v is not None and k not in skip})
    for name, child in state.get("_modules", {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentStub):
            raise ValueError(f"module {prefix + name} is a {type(child).__name__}, not a persistent object")
        out.update(stub_state_dict(child, prefix + name + "."))
    return out


def generator_config(init_kwargs: dict) -> dict[str, Any]:
    """Turn NVlabs ``Generator._init_kwargs`` into our ``stylegan2.Generator`` kwargs; reject what we lack."""
    kwargs = _plain(init_kwargs)
    required = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    if not isinstance(kwargs, dict) or set(required) - set(kwargs):
        missing = sorted(set(required) - set(kwargs)) if isinstance(kwargs, dict) else required
        raise ValueError(f"its Generator init kwargs lack {', '.join(missing)}")
    config = {k: kwargs.pop(k) for k in required}
    sections = {"mapping_kwargs": MAPPING_KWARGS, "synthesis_kwargs": SYNTHESIS_KWARGS}
    for section, allowed in sections.items():
        given = kwargs.pop(section, {})
        if not isinstance(given, dict):
            raise ValueError(f"{section} is a {type(given).__name__}, not a mapping")
        for key, value in FIXED_KWARGS.items():
            if key in given and list(np.atleast_1d(given.pop(key))) != list(np.atleast_1d(value)):
                raise ValueError(f"{section}.{key}={value!r} is the only supported value")
        unknown = set(given) - allowed
        if unknown:
            raise ValueError(f"unsupported {section} in the pickle: {sorted(unknown)}")
        config[section] = given
    if kwargs:
        raise ValueError(f"unsupported Generator kwargs in the pickle: {sorted(kwargs)}")
    return config


def load_stylegan2_pkl(path: str | os.PathLike, key: str = "G_ema") -> stylegan2.Generator:
    """Import ``key`` (default G_ema) of an official StyleGAN2-ADA ``.pkl`` into our Generator, strictly."""
    path = Path(path)
    stub = read_network_pkl(path).get(key)
    if not isinstance(stub, PersistentStub) or stub.class_name != "Generator":
        raise WeightsError(f"{path}: {key} is not a persistent Generator; {PKL_ADVICE}")
    try:
        if stub.state.get("_init_args"):
            raise ValueError(f"positional init args are not supported: {stub.state['_init_args']!r}")
        config = generator_config(stub.state.get("_init_kwargs", {}))
        state = stub_state_dict(stub)
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: its {key} is not a StyleGAN2 generator we can rebuild ({one_line(exc)}); "
                           f"{PKL_ADVICE}") from exc
    G = _build(path, "stylegan2.Generator", config)
    return _load_state(path, G, state, PKL_ADVICE).eval()


def _plain(value: Any) -> Any:
    """Convert EasyDict stand-ins and numpy scalars to plain JSON-able Python values, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
