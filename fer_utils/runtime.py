"""Run-time plumbing every step shares: atomic writes, seeds, devices, version stamps."""
from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from .config import PRECISIONS, InputError


class WriteError(InputError):
    """A file cannot be written (disk full, read-only, no permission): the message names the path and the cause."""


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
TORCH_WRITER = ("inline_container", "PytorchStreamWriter")  # torch.save's words for a short write, errno lost


def write_failure(path: str | os.PathLike, exc: BaseException) -> WriteError | None:
    """The one-line ``WriteError`` for ``exc`` raised while writing ``path``, or None if it is not a failed write.

    ``torch.save`` to a full disk raises a RuntimeError ('[enforce fail at inline_container.cc:672] . unexpected
    pos ...') that names neither the disk nor the file: a short write, so the free space is reported with it.
    """
    path = Path(path)
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return WriteError(f"cannot write {path}: {_cause(exc.errno)}")
    if isinstance(exc, RuntimeError) and any(word in str(exc) for word in TORCH_WRITER):
        free = _free_bytes(path.parent)
        return WriteError(f"cannot write {path}: the write stopped short ({free / 1e6:.1f} MB free on its "
                          "filesystem: the disk is probably full); free space there or write elsewhere")
    return None


def _cause(code: int) -> str:
    """The OS's words for a failed write, and what to do about it."""
    full = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
    forbidden = {errno.EACCES, errno.EPERM}
    advice = ("free space there or write elsewhere" if code in full
              else "change the folder's permissions or write elsewhere" if code in forbidden else "write elsewhere")
    return f"{os.strerror(code)}; {advice}"


def _free_bytes(folder: Path) -> int:
    """Bytes free to this user on ``folder``'s filesystem (its nearest existing parent's), 0 if unreadable."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


@contextlib.contextmanager
def naming_write_failures(path: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` inside the block into one ``WriteError`` line; other errors pass unchanged.

    The write's own files are ``path``, its folders and its temporary siblings; an OSError naming another file
    (e.g. one being read) is not this write's, so it passes too.
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        named = getattr(exc, "filename", None)
        ours = not named or Path(named).parent == path.parent or path.is_relative_to(named)
        error = write_failure(path, exc) if ours else None
        if error is None:
            raise
        raise error from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted run therefore never leaves a half-written file behind; a write that fails (disk full,
    read-only, no permission) is one ``WriteError`` naming ``path`` and the cause.
    """
    path = Path(path)
    with naming_write_failures(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with naming_write_failures(path):
            yield tmp_path
            # mkstemp makes 0600 files, and writers such as safetensors' save_file keep that mode when they
            # recreate the file: set the usual mode last, since results are meant to be shared
            tmp_path.chmod(0o666 & ~_umask())
            os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_writable(folder: str | os.PathLike, what: str, need_bytes: int = 0) -> None:
    """Raise ``WriteError`` unless a file can be made where ``folder`` is (or would be made) and, when
    ``need_bytes`` is given, that much is free there.

    Called before a step's expensive work, so a read-only or full results folder is named at once, not
    after an epoch of training. Makes and removes one empty temporary; creates no folder.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise WriteError(f"cannot write {what} ({folder}): {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=temporary_prefix(existing / "probe"), suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:  # whatever the reason (/proc says ENOENT), no file can be made there
        raise WriteError(f"cannot write {what} ({folder}): {_cause(exc.errno)}") from None
    free = _free_bytes(existing)
    if free < need_bytes:
        raise WriteError(f"cannot write {what} ({folder}): {free / 1e6:.1f} MB free on its filesystem, about "
                         f"{need_bytes / 1e6:.1f} MB needed; free space there or write elsewhere")


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the inter-process lock ``<path>.lock`` (beside ``path``) while the block checks and writes ``path``.

    Two runs writing the same folder at once (a notebook and ``train-gan``) wiped each other's files;
    the second now waits, then finds the first's work complete. The lock dies with its process.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(f".{path.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process writing {what} ({path})", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class Stopped(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit) raised as an exception, so a stopped run unwinds as Ctrl-C does:
    temporaries removed, worker pools ended, one line printed (``fer_utils.cli``). Its text is the signal's name."""


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises ``Stopped`` instead of ending the process silently."""
    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def quiet_worker() -> None:
    """Pool initializer: a worker leaves Ctrl-C to its parent, which ends the pool (no traceback from each worker),
    and a forked one drops the parent's SIGTERM handler, so the pool's terminate() ends it.

    On Linux it also asks to be sent SIGTERM when its parent dies: a parent that cannot clean up (SIGKILL, or a
    Jupyter kernel that ``os._exit``s once papermill, its parent, is killed) left its pool workers running forever.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Name what the block does (``mix k=3 seed 0``) on a KeyboardInterrupt or ``Stopped`` raised in it, as
    ``exc.during`` (the innermost name wins), for the line a stopped run prints."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if not getattr(exc, "during", ""):
            exc.during = what
        raise


def temporary_prefix(path: Path) -> str:
    """``.<name>.<host>-<pid>.``: a temporary's name says whose it is, so a rerun can remove a killed writer's."""
    return f".{path.name}.{_HOST}-{os.getpid()}."


_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname()) or "host"
_TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)\.[^.]*\.tmp$")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporaries in ``folder`` left by a writer of this host that no longer runs (killed mid-write)."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        match = _TEMPORARY.match(entry.name)
        if match is None or match["host"] != _HOST or _running(int(match["pid"])):
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
        print(f"removed {entry}: a temporary left by process {match['pid']}, which was stopped mid-write")
        removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex digest of a file: pins exact weights in manifests and records."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_hash(splits: Mapping[str, Any]) -> str:
    """Hash of every split's faces and labels: two runs (or a run and a checkpoint) with the same hash saw the
    same data.

    Takes anything with ``images`` and ``labels`` arrays (``train.ArraySplit``, a preprocessed ``FaceSet``).
    """
    h = hashlib.sha256()
    for name in sorted(splits):
        h.update(name.encode())
        h.update(np.ascontiguousarray(splits[name].images).tobytes())
        h.update(splits[name].labels.astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _json_default(value: Any) -> Any:
    """Encode numpy scalars/arrays and paths, which json refuses."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) so a rerun gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it, e.g. a container's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def torch_threads(default: int) -> int:
    """A run's torch threads: ``OMP_NUM_THREADS`` where set, else ``default``.

    A CPU run's bits depend on its thread count (the convolutions sum in another order), so every executor
    reads the same variable: the same run then gives the same bits wherever it trains (docs/running.md).
    """
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else default


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto`` to cuda when present, else cpu; reject cuda on a machine without it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available on this machine")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 in hardware: an Ampere or newer GPU, a CPU with AVX512-BF16 or AMX.

    Elsewhere (AVX2 CPUs, older GPUs) bf16 is emulated and slower than fp32, so ``auto`` keeps fp32 there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, torch >= 2.3
    return device.type == "cpu" and any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Map a ``train.precision`` setting to what runs: ``auto`` is bf16 where native, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def mixed_precision(device: torch.device, bf16: bool | None = None) -> torch.autocast:
    """bf16 autocast (fp32 weights, optimizer and loss), with TF32 on the GPU for what stays fp32.

    TF32 is on for every CUDA call, so ``train.precision: fp32`` on a GPU means fp32 storage with
    TF32 matmuls and convolutions.

    ``bf16=None`` is the inference policy (GANs, validation, scoring): bf16 on the GPU, fp32 on CPU,
    so a generated database and a score do not depend on whether the CPU has bf16 units. Classifier
    training steps pass their resolved ``train.precision`` instead: bf16 autocast trains the
    Table-1 CNN 1.8-1.9x faster on a 2-core AVX512-BF16 CPU (``python -m fer_utils bench train``).
    """
    enabled = device.type == "cuda" if bf16 is None else bf16
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def versions() -> dict[str, str]:
    """Versions of the interpreter and the libraries that change numbers, for result files."""
    import cv2
    import sklearn

    from . import __version__

    return {
        "fer_utils": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scikit-learn": sklearn.__version__,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpu",
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


_READ_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("read_only", default=False)


@contextlib.contextmanager
def writing_nothing() -> Iterator[None]:
    """Within the block, steps that would cache or train something to answer a question compute it in memory, or
    report it missing, instead: ``sweep --status``, ``--plan`` and ``check`` write nothing (``read_only``)."""
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)


def read_only() -> bool:
    """Whether this step runs inside ``writing_nothing`` (a question about the pipeline, not a step of it)."""
    return _READ_ONLY.get()
