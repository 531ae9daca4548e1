"""Atomic writes leave either the old file or the new one, never a partial file; a failed write is one line."""
import errno
import json
import os
import re
from pathlib import Path

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


def _raising(code: int):
    """A writer that fails as the OS does: disk full (ENOSPC), read-only (EROFS), no permission (EACCES)."""
    def write(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return write


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "No space left on device; free space there"),
                                         (errno.EROFS, "Read-only file system; write elsewhere"),
                                         (errno.EACCES, "Permission denied; change the folder's permissions")])
@pytest.mark.parametrize("where", ["writer", "temporary"])
def test_a_failed_write_is_one_line_naming_the_path_and_leaves_nothing(tmp_path, monkeypatch, code, cause, where):
    """Whether the writer or the temporary's creation fails, the error names the target and the cause, and neither
    the target nor a temporary is left (issue 37 #5/#6)."""
    target = tmp_path / "run.json"
    if where == "temporary":
        monkeypatch.setattr(runtime.tempfile, "mkstemp", _raising(code))
    with pytest.raises(runtime.WriteError) as info:
        with atomic_path(target) as tmp:
            if where == "writer":
                _raising(code)(tmp)
    assert str(info.value).startswith(f"cannot write {target}: {cause}")
    assert "\n" not in str(info.value) and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_torch_save_to_a_full_disk_names_the_file_not_inline_container(tmp_path, monkeypatch):
    """torch.save onto a full disk (a temporary linked to /dev/full: every write is ENOSPC) raises torch's
    'inline_container.cc ... unexpected pos'; the user reads the file and the free space instead (issue 37 #5)."""
    mkstemp = runtime.tempfile.mkstemp

    def onto_dev_full(**kwargs):
        fd, name = mkstemp(**kwargs)
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(runtime.tempfile, "mkstemp", onto_dev_full)
    target = tmp_path / "checkpoint.pt"
    with pytest.raises(runtime.WriteError) as info:
        with atomic_path(target) as tmp:
            torch.save({"w": torch.zeros(10_000)}, tmp)
    assert re.fullmatch(rf"cannot write {re.escape(str(target))}: the write stopped short \([\d.]+ MB free on its "
                        r"filesystem: the disk is probably full\); free space there or write elsewhere",
                        str(info.value))
    assert "inline_container" in str(info.value.__cause__)  # what torch said, kept as the cause
    assert list(tmp_path.iterdir()) == []


def test_an_error_reading_another_file_is_not_called_a_failed_write(tmp_path):
    """A permission error on a file the block reads passes unchanged: it is not this write's."""
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "out" / "x.json"):
            raise PermissionError(errno.EACCES, "Permission denied", "/elsewhere/input.csv")


def test_check_writable_names_the_setting_before_any_work(tmp_path, monkeypatch):
    """A read-only or full folder is named with its setting by a probe that leaves nothing (issue 37 #6)."""
    folder = tmp_path / "results" / "quick"  # not made yet: the probe writes where mkdir would
    runtime.check_writable(folder, "results_dir", need_bytes=1)
    assert list(tmp_path.iterdir()) == []
    full = rf"^cannot write results_dir \({re.escape(str(folder))}\): \d+\.\d MB free on its filesystem, about "
    with pytest.raises(runtime.WriteError, match=full + r"1000000000000\.0 MB needed"):
        runtime.check_writable(folder, "results_dir", need_bytes=10**18)
    monkeypatch.setattr(runtime.tempfile, "mkstemp", _raising(errno.EROFS))
    with pytest.raises(runtime.WriteError) as info:
        runtime.check_writable(folder, "results_dir")
    assert str(info.value) == f"cannot write results_dir ({folder}): Read-only file system; write elsewhere"
