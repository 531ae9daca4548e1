"""Fault injection: a killed or damaged run, run again, ends where an uninterrupted run ends.

What this suite guarantees, on CPU with tiny data and models (CI-sized: about a minute on 2 cores):

1. Preprocessing (``preprocess.load_database``) SIGKILLed while cropping (in one process, or in one of
   two forked pool workers), between writing its cache files and renaming the cache folder into place,
   or after the cache is complete: the rerun gives the arrays, manifest, skip counts and cache files of
   a clean run, and no ``*.tmp`` file or folder is left in the cache.
2. A two-seed classifier run (``experiments.run_experiment(cfg, "real", seeds=(0, 1))``) SIGKILLed in
   the first member (after an epoch's checkpoint; between writing a checkpoint and renaming it), between
   the members, in the second member (after an epoch's checkpoint; between writing its weights and
   renaming them): the rerun's JSON (timings aside) and weights equal a clean run's bit for bit, a
   finished member is not trained again (``fit`` is not called for it, its files keep their mtimes),
   an unfinished one resumes from its checkpoint (counted epochs), and the results folder then holds
   exactly what a clean run's holds (no ``.train.pt``, no ``*.tmp``).
3. A StarGAN ``train_gan`` run SIGKILLed after its first checkpoint, or after its last one but before
   the export, resumes (``resumed_from``) and ends with exported generator and discriminator weights,
   checkpoint networks, loss history and sample grids equal to an uninterrupted run's. GAN resume is
   bit-exact on CPU (same thread count), so equality is asserted, not closeness.
4. Each kind of file cut to a few bytes, cut in half, or overwritten with garbage (a finished run's
   ``.json`` and ``.safetensors``, a classifier checkpoint ``.<run>-x1.train.pt``, the preprocessing
   cache's ``faces.npz`` / ``meta.json`` / ``manifest.csv``, a GAN ``checkpoint.pt``): the rerun names
   the damaged file in its output (for the cache: the cache folder holding it) and ends equal to a
   clean run; a damaged GAN checkpoint is kept beside as ``checkpoint.pt.corrupt``, by design.
5. Settings changed between runs: the checkpoint of a ``preprocess.margin: 0.2`` run killed in training
   is not resumed by a 0.25 run, whose weights equal a clean 0.25 run's and differ from the 0.2 model's;
   after a ``train.lr`` change a finished run is trained again and a left checkpoint is not resumed.

6. A full disk (torch.save failing as it does there) at the first checkpoint, a read-only, forbidden or full
   results folder, too little room for a checkpoint, and a diverged run (lr 1e30): one line naming the file or
   setting and the cause, raised before any training where a probe can tell; no record, no temporary; a rerun
   once the fault is gone ends as a clean run.

Three faults this suite found are guarded too: a member's ``.train.pt`` left by a kill between saving
the member and deleting the checkpoint is removed by the rerun; ``train_gan`` removes a killed writer's
temporaries from its output folder; a kill between a run's new weights and its new record cannot pair an
older record with newer weights (a record pins its weights by sha256).

How: every kill is a real SIGKILL of a separate process and its whole session (pool workers included),
at a deterministic point: the driver wraps one function of the package (``hold``) so that its n-th
call, before or after doing its work, writes a marker file and waits; the test kills as soon as the
marker appears. Drivers are forked, one per kill, from a driver server started with ``Popen`` that has
imported the package once (a fresh interpreter per kill would spend ~3 s of CPU on imports). Reruns run
in the test process, clean runs in separate folders; every process trains on one thread so results
compare bit for bit. Damaged files need no kill: they are made and rerun in-process.
"""
from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from synthetic import synthetic_faces, tiny_cnn

from fer_utils import engine as T
from fer_utils import experiments, identity, runtime
from fer_utils import preprocess as P
from fer_utils.config import load_config
from fer_utils.models import MODELS

TESTS = Path(__file__).resolve().parent
WORDS = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
DRIVER_DEADLINE = 90  # seconds a driver may take to reach its kill point (2 busy cores)


# ====================================================================== shared helpers
@contextlib.contextmanager
def one_thread():
    """Train on one thread here, as the drivers do (``OMP_NUM_THREADS=1``), so numbers compare bit for bit."""
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # what fer_utils.engine gives every run (runtime.torch_threads)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def hold(target: str, call: int = 1, after: bool = True, match: str = "") -> dict[str, Any]:
    """A kill point: the ``call``-th call of ``module:function`` (after it returned, or before it ran),
    counting only calls with an argument whose text ends with ``match``."""
    return {"target": target, "call": call, "after": after, "match": match}


def mid_write(name: str, call: int = 1) -> dict[str, Any]:
    """A kill point between an atomic writer's temporary and its rename onto ``...name`` (``runtime.atomic_path``)."""
    return hold("os:replace", call, after=False, match=name)


class Drivers:
    """Driver processes to kill: forked, one per kill, from one interpreter started with ``Popen`` that has
    imported the package once (a fresh interpreter per kill would spend ~3 s of CPU on imports alone).

    Each driver is a separate process in its own session (its pool workers too), with its own log.
    """

    def __init__(self) -> None:
        code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_fault_injection as F; F.serve()"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        self.server = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, env=env)

    def close(self) -> None:
        self.server.kill()  # idle: every driver it forked has been killed
        self.server.wait()

    def kill_at(self, tmp_path: Path, job: str, kwargs: dict[str, Any], point: dict[str, Any]) -> Path:
        """Run ``job(**kwargs)`` in a driver; SIGKILL its process group once it reaches ``point``; return its log.

        Fails if the driver ends, or takes too long, before reaching the point.
        """
        markers = tmp_path / "markers"
        markers.mkdir(exist_ok=True)
        n = len(list(markers.glob("*.log")))
        marker, ended, log = (markers / f"{what}-{n}" for what in ("reached", "ended", "driver"))
        log = log.with_suffix(".log")
        spec = {"job": job, "kwargs": kwargs, "hold": point, "marker": str(marker), "ended": str(ended),
                "log": str(log), "cwd": str(tmp_path)}
        self.server.stdin.write(json.dumps(spec) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        assert line.startswith("pid "), f"driver server answered {line!r} (rc {self.server.poll()})"
        pid = int(line.split()[1])
        try:
            deadline = time.monotonic() + DRIVER_DEADLINE
            while not marker.exists():
                if ended.exists() or not _alive(pid):
                    pytest.fail(f"driver {job} ended before {point}:\n{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"driver {job} did not reach {point} in {DRIVER_DEADLINE} s:\n"
                                f"{log.read_text()[-3000:]}")
                time.sleep(0.02)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # the driver and any pool worker it forked
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:  # reaped by the server: its pid is free again
                time.sleep(0.01)
        assert not _alive(pid), f"driver {pid} survived SIGKILL"
        return log


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def drivers():
    if not hasattr(os, "fork"):
        pytest.skip("the drivers are forked (POSIX)")
    server = Drivers()
    yield server
    server.close()


def serve() -> None:
    """The driver server: for each spec line on stdin, fork a driver and answer ``pid <pid>``."""
    import fer_utils.facegen  # noqa: F401 - imported once here, not in every driver
    import fer_utils.gan.trainer  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed drivers are reaped at once: their pids read as dead
    for line in sys.stdin:
        spec = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _driver(spec)
        print(f"pid {pid}", flush=True)


def _driver(spec: dict[str, Any]) -> None:
    """A forked driver: own session, output to its log, run the job until killed; never returns."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # multiprocessing waits for its workers
        os.setsid()
        os.chdir(spec["cwd"])
        fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        drive(spec)
    except BaseException:  # noqa: BLE001 - reported in the log; the test fails on the "ended" file
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        Path(spec["ended"]).touch()
        os._exit(1)


def drive(spec: dict[str, Any]) -> None:
    """Install the kill point, then run the job (to be killed inside it)."""
    point, marker = spec["hold"], Path(spec["marker"])
    module_name, name = point["target"].split(":")
    module = importlib.import_module(module_name)
    original, calls = getattr(module, name), Counter()

    def reached() -> None:
        marker.write_text(str(os.getpid()))
        while True:  # until SIGKILL
            time.sleep(60)

    def held(*args: Any, **kwargs: Any) -> Any:
        if point["match"] and not any(str(a).endswith(point["match"]) for a in (*args, *kwargs.values())):
            return original(*args, **kwargs)
        calls["n"] += 1  # per process: a forked pool worker counts its own calls
        this = calls["n"] == point["call"]
        if this and not point["after"]:
            reached()
        out = original(*args, **kwargs)
        if this:
            reached()
        return out

    setattr(module, name, held)
    JOBS[spec["job"]](**spec["kwargs"])
    raise SystemExit(f"the job ended without reaching {point}")


def files(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, relative, sorted: what a rerun must leave (temporaries included; the
    inter-process locks stay, as the world's do)."""
    return sorted(p.relative_to(folder).as_posix() + ("/" if p.is_dir() else "") for p in folder.rglob("*")
                  if p.suffix != ".lock")


def temporaries(folder: Path) -> list[str]:
    """What an interrupted writer leaves: ``*.tmp`` files or folders, classifier ``.train.pt`` checkpoints."""
    return [name for name in files(folder) if name.rstrip("/").endswith(".tmp") or ".train.pt" in name]


def damage(path: Path, how: str) -> None:
    """Cut ``path`` to a few bytes or to half, or overwrite it with as many garbage bytes (seeded)."""
    data = path.read_bytes()
    if how == "few-bytes":
        path.write_bytes(data[:7])
    elif how == "half":
        path.write_bytes(data[:len(data) // 2])
    else:
        path.write_bytes(np.random.default_rng(len(data)).integers(0, 256, len(data), dtype=np.uint8).tobytes())


DAMAGES = ("few-bytes", "half", "garbage")


def mtimes(folder: Path, stem: str) -> dict[str, int]:
    """Modification times of a run's JSON and weights (unchanged = not made again)."""
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob(f"{stem}.*"))}


class Counting:
    """Count what a rerun trains: seeds passed to ``experiments.fit`` and epochs run by ``train``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fits: list[tuple[int, ...]] = []
        self.epochs = 0
        fit, epoch = experiments.fit, T._train_epoch

        def counted_fit(*args: Any, **kwargs: Any) -> Any:
            self.fits.append(tuple(args[5]))
            return fit(*args, **kwargs)

        def counted_epoch(*args: Any, **kwargs: Any) -> Any:
            self.epochs += 1
            return epoch(*args, **kwargs)

        monkeypatch.setattr(experiments, "fit", counted_fit)
        monkeypatch.setattr(T, "_train_epoch", counted_epoch)


# ====================================================================== 1. preprocessing
def write_fake_rafd(root: Path, subjects: int = 6) -> Path:
    """A RaFD folder (tests/test_preprocess.py ``small_world`` layout) of tiny gray images: 36 faces
    of six classes (neutral is read and excluded)."""
    for s in range(1, subjects + 1):
        for k, word in enumerate(WORDS):
            rng = np.random.default_rng(s * 10 + k)
            img = (np.add.outer(np.arange(40) * 3, np.arange(32) * 2) + rng.integers(0, 40, (40, 32))).clip(0, 255)
            path = root / f"Rafd090_{s:02d}_Moroccan_male_{word}_frontal.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), img.astype(np.uint8))
    return root


def preprocess_cfg(rafd: str, cache: str, workers: int = 1):
    return load_config("quick", {"data.rafd": rafd, "data.cache": cache, "preprocess.workers": workers})


def job_preprocess(rafd: str, cache: str, workers: int, chunk: int) -> None:
    P.CHUNK = chunk
    P.load_database(preprocess_cfg(rafd, cache, workers), "rafd")


@pytest.fixture(scope="module")
def rafd(tmp_path_factory) -> Path:
    return write_fake_rafd(tmp_path_factory.mktemp("fake") / "rafd")


@pytest.fixture(scope="module")
def clean_faces(rafd, tmp_path_factory):
    """An uninterrupted preprocessing run and its cache folder."""
    cache = tmp_path_factory.mktemp("clean-cache")
    return P.load_database(preprocess_cfg(str(rafd), str(cache)), "rafd"), cache


def assert_same_faces(faces: P.FaceSet, cache: Path, clean: P.FaceSet, clean_cache: Path) -> None:
    """Same arrays, manifest, skips and cache files (timings, workers and cache state aside), no temporaries."""
    for field in ("images", "labels", "subjects", "databases", "detected"):
        assert np.array_equal(getattr(faces, field), getattr(clean, field)), field
    assert faces.manifest == clean.manifest and faces.report.counts == clean.report.counts
    assert files(cache) == files(clean_cache) and temporaries(cache) == []
    (folder,) = (p for p in cache.iterdir())
    clean_folder = clean_cache / folder.name
    assert (folder / "manifest.csv").read_bytes() == (clean_folder / "manifest.csv").read_bytes()
    with np.load(folder / "faces.npz") as got, np.load(clean_folder / "faces.npz") as want:
        assert all(np.array_equal(got[k], want[k]) for k in ("images", "labels", "detected"))

    def meta(path: Path) -> dict[str, Any]:
        saved = json.loads(path.read_text())
        saved["preprocess"].pop("workers")  # not part of the cache key: crops are the same on any number
        return {k: v for k, v in saved.items() if k not in ("seconds", "images_per_s")}

    assert meta(folder / "meta.json") == meta(clean_folder / "meta.json")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers, point", [
    (1, hold("fer_utils.preprocess:crop_face", call=20)),  # cropping, one process
    (2, hold("fer_utils.preprocess:crop_face", call=6)),  # cropping, in a forked pool worker
    (1, mid_write("meta.json")),  # cache half written: a temporary folder with faces.npz, manifest.csv, ...
    (1, hold("fer_utils.preprocess:_save_cache")),  # cache complete, load_database not returned
], ids=["crop", "crop-2-workers", "mid-cache-write", "after-cache-write"])
def test_preprocessing_killed_then_rerun_equals_a_clean_run(drivers, tmp_path, rafd, clean_faces, workers, point,
                                                            capsys, monkeypatch):
    chunk = 8 if workers > 1 else P.CHUNK  # 36 faces: several jobs, so both workers crop
    cache = tmp_path / "cache"
    drivers.kill_at(tmp_path, "preprocess", {"rafd": str(rafd), "cache": str(cache), "workers": workers,
                                             "chunk": chunk}, point)
    left = [p for p in cache.iterdir() if p.name.endswith(".tmp")] if cache.exists() else []
    assert bool(left) == (point["target"] == "os:replace")  # only a kill mid-write leaves a temporary
    monkeypatch.setattr(P, "CHUNK", chunk)
    faces = P.load_database(preprocess_cfg(str(rafd), str(cache), workers), "rafd")
    out = capsys.readouterr().out
    assert all(f"removed {path}" in out for path in left)
    assert faces.meta["cached"] == point["target"].endswith("_save_cache")
    assert_same_faces(faces, cache, *clean_faces)


# ====================================================================== 2. classifier runs
@cache
def synthetic_sets() -> tuple[dict[str, P.FaceSet], dict[str, P.FaceSet]]:
    splits = {"train": synthetic_faces(60, 0), "val": synthetic_faces(24, 1), "test": synthetic_faces(24, 2)}
    return splits, {"mmi": synthetic_faces(18, 3, "mmi"), "ckplus": synthetic_faces(12, 4, "ckplus")}


def install_classifier(patch: pytest.MonkeyPatch, real: str = "synthetic") -> None:
    """The tiny model as ``cnn``, synthetic cross-database sets, and synthetic real splits (or RaFD only)."""
    splits, cross = synthetic_sets()
    patch.setitem(MODELS, "cnn", tiny_cnn)
    patch.setattr(experiments, "cross_database_sets", lambda cfg: cross)
    patch.setattr(experiments, "real_splits",
                  (lambda cfg: splits) if real == "synthetic" else (lambda cfg: P.real_splits(cfg, ("rafd",))))


def classifier_cfg(results: str, **overrides: Any):
    return load_config("quick", {"results_dir": results, "train.epochs": 3, "device": "cpu", **overrides})


def job_classifier(results: str, seeds: list[int], overrides: dict[str, Any], real: str = "synthetic") -> None:
    install_classifier(pytest.MonkeyPatch(), real)
    experiments.run_experiment(classifier_cfg(results, **overrides), "real", seeds=tuple(seeds), progress=False)


def run_classifier(results: Path, seeds: tuple[int, ...] = (0, 1), real: str = "synthetic", **overrides: Any):
    """One run here, with the drivers' setup (patches undone on return)."""
    with pytest.MonkeyPatch.context() as patch:
        install_classifier(patch, real)
        return experiments.run_experiment(classifier_cfg(str(results), **overrides), "real", seeds=seeds,
                                          progress=False)


def saved_runs(folder: Path) -> dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Each run's JSON (timings dropped) and weights, by run name."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        for key in ("seconds", "img_per_s"):
            record["fit"].pop(key)
        out[path.stem] = record, {k: v.numpy() for k, v in load_file(str(path.with_suffix(".safetensors"))).items()}
    return out


def assert_same_runs(folder: Path, clean: Path, names: list[str] | None = None) -> None:
    """The runs in ``folder`` equal the clean ones (``names`` of them, else all): JSON and weights, bit for bit."""
    got, want = saved_runs(folder), saved_runs(clean)
    if names is not None:
        want = {name: want[name] for name in names}
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name][0] == want[name][0], name
        assert got[name][1].keys() == want[name][1].keys()
        for key, value in want[name][1].items():
            assert np.array_equal(got[name][1][key], value), (name, key)


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory) -> Path:
    """An uninterrupted two-seed run (3 epochs each) and its results folder."""
    results = tmp_path_factory.mktemp("clean-results")
    with one_thread():
        run_classifier(results)
    folder = results / "real"
    assert files(folder) == ["real-seed0.json", "real-seed0.safetensors", "real-seed1.json", "real-seed1.safetensors"]
    return folder


# (kill point, seeds the rerun trains, epochs it runs, whether seed 0 was finished before the kill)
CLASSIFIER_POINTS = {
    "first-member-after-epoch-1": (hold("fer_utils.engine:_save", call=1), [(0,), (1,)], 2 + 3, False),
    "first-member-mid-checkpoint-write": (mid_write(".train.pt", call=2), [(0,), (1,)], 2 + 3, False),
    "between-members": (hold("fer_utils.experiments:fit", call=2, after=False), [(1,)], 3, True),
    "second-member-after-epoch-1": (hold("fer_utils.engine:_save", call=4), [(1,)], 2, True),
    "second-member-mid-weights-write": (mid_write("real-seed1.safetensors"), [(1,)], 0, True),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", list(CLASSIFIER_POINTS))
def test_multi_seed_run_killed_then_rerun_equals_a_clean_run(drivers, tmp_path, clean_runs, monkeypatch, capsys,
                                                             where):
    point, fits, epochs, first_done = CLASSIFIER_POINTS[where]
    results = tmp_path / "results"
    folder = results / "real"
    drivers.kill_at(tmp_path, "classifier", {"results": str(results), "seeds": [0, 1], "overrides": {}}, point)
    assert (folder / "real-seed0.json").is_file() == first_done and not (folder / "real-seed1.json").exists()
    left, before = temporaries(folder), mtimes(folder, "real-seed0")
    counting = Counting(monkeypatch)
    run_classifier(results)
    out = capsys.readouterr().out
    assert (counting.fits, counting.epochs) == (fits, epochs)  # finished members kept, checkpoints resumed
    if first_done:
        assert mtimes(folder, "real-seed0") == before  # not written again either
    assert all(f"removed {folder / name}" in out for name in left if name.endswith(".tmp"))
    assert_same_runs(folder, clean_runs)
    assert files(folder) == files(clean_runs)


@pytest.mark.timeout(180)
def test_killed_after_a_member_is_saved_leaves_no_checkpoint_behind(drivers, tmp_path, clean_runs, monkeypatch):
    results = tmp_path / "results"
    folder = results / "real"
    drivers.kill_at(tmp_path, "classifier", {"results": str(results), "seeds": [0, 1], "overrides": {}},
                    hold("fer_utils.experiments:save_run", call=1))
    assert (folder / "real-seed0.json").is_file() and (folder / ".real-seed0-x1.train.pt").is_file()
    counting = Counting(monkeypatch)
    run_classifier(results)
    assert counting.fits == [(1,)]
    assert_same_runs(folder, clean_runs, ["real-seed0", "real-seed1"])  # the numbers are right ...
    assert files(folder) == files(clean_runs)  # ... but .real-seed0-x1.train.pt is still there


# ====================================================================== 3. GAN training
TINY_WORLD = {"world.affectnet_images": 60, "world.ffhq_images": 20}
TINY_STARGAN = {"gan.stargan_iters": 4, "gan.stargan_batch_size": 4, "gan.stargan_g_conv_dim": 4,
                "gan.stargan_d_conv_dim": 4, "gan.stargan_g_repeat_num": 1, "gan.stargan_d_repeat_num": 3,
                "gan.stargan_model_save_step": 2, "gan.n_critic": 1}  # checkpoints (and samples) at 2 and 4


@pytest.fixture(scope="module")
def affectnet(tmp_path_factory) -> Path:
    """A tiny AffectNet-like world (60 images), as tests/test_gan_data.py writes it."""
    from fer_utils.facegen import write_world

    out = tmp_path_factory.mktemp("world")
    return write_world(load_config("quick", TINY_WORLD), out=out, only=["affectnet"])["affectnet"]


def gan_cfg(affectnet: str, root: str):
    return load_config("quick", {**TINY_WORLD, **TINY_STARGAN, "device": "cpu", "data.affectnet": affectnet,
                                 "data.cache": f"{root}/cache", "results_dir": f"{root}/results",
                                 "gan.resolution": 32, "preprocess.workers": 1})


def job_gan(affectnet: str, root: str) -> None:
    from fer_utils.gan.trainer import train_gan

    train_gan(gan_cfg(affectnet, root), "stargan", progress=False)


def run_gan(affectnet: Path, root: Path) -> Path:
    from fer_utils.gan.trainer import train_gan

    return train_gan(gan_cfg(str(affectnet), str(root)), "stargan", progress=False)


def gan_outputs(out_dir: Path) -> dict[str, Any]:
    """What a GAN run ends with: exported weights, checkpoint networks and history, sample grids, provenance."""
    ckpt = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    prov = json.loads((out_dir / "provenance.json").read_text())
    return {
        "weights": {p.name: {k: v.numpy() for k, v in load_file(str(p)).items()}
                    for p in sorted(out_dir.glob("*.safetensors"))},
        "checkpoint": {"step": ckpt["step"], "history": ckpt["history"],
                       **{f"{net}.{k}": v.numpy() for net in ("G", "D") for k, v in ckpt[net].items()}},
        "samples": {p.name: p.read_bytes() for p in sorted((out_dir / "samples").iterdir())},
        "provenance": {k: prov[k] for k in ("iterations", "final_losses", "config", "data")},
    }


def assert_same_gan(out_dir: Path, clean_dir: Path) -> None:
    got, want = gan_outputs(out_dir), gan_outputs(clean_dir)
    assert got["weights"].keys() == want["weights"].keys() and len(want["weights"]) == 3  # G (2 copies) and D
    for name, tensors in want["weights"].items():
        assert all(np.array_equal(got["weights"][name][k], v) for k, v in tensors.items()), name
    assert got["checkpoint"].keys() == want["checkpoint"].keys()
    for key, value in want["checkpoint"].items():
        assert np.array_equal(got["checkpoint"][key], value) if isinstance(value, np.ndarray) \
            else got["checkpoint"][key] == value, key
    assert got["samples"] == want["samples"] and got["provenance"] == want["provenance"]


@pytest.fixture(scope="module")
def clean_gan(affectnet, tmp_path_factory) -> Path:
    """An uninterrupted 4-iteration StarGAN run; its output folder."""
    root = tmp_path_factory.mktemp("clean-gan")
    with one_thread():
        path = run_gan(affectnet, root)
    return path.parent


@pytest.mark.timeout(180)
@pytest.mark.parametrize("step", [2, 4], ids=["after-first-checkpoint", "after-last-checkpoint-before-export"])
def test_gan_killed_after_a_checkpoint_resumes_to_the_same_weights(drivers, tmp_path, affectnet, clean_gan, step):
    drivers.kill_at(tmp_path, "gan", {"affectnet": str(affectnet), "root": str(tmp_path)},
                    hold("fer_utils.gan.train_stargan:save_checkpoint", call=step // 2))
    out_dir = tmp_path / "results" / "gan" / "stargan"
    assert torch.load(out_dir / "checkpoint.pt", weights_only=True)["step"] == step
    run_gan(affectnet, tmp_path)
    assert json.loads((out_dir / "provenance.json").read_text())["resumed_from"] == step  # resumed, not restarted
    assert_same_gan(out_dir, clean_gan)
    assert files(out_dir) == files(clean_gan) and temporaries(tmp_path / "results") == []
    assert temporaries(tmp_path / "cache") == []


@pytest.mark.timeout(180)
def test_gan_killed_while_writing_a_checkpoint_leaves_no_temporary(drivers, tmp_path, affectnet, clean_gan):
    drivers.kill_at(tmp_path, "gan", {"affectnet": str(affectnet), "root": str(tmp_path)},
                    mid_write("checkpoint.pt", call=2))
    out_dir = tmp_path / "results" / "gan" / "stargan"
    assert [name for name in files(out_dir) if name.endswith(".tmp")]  # the step-4 checkpoint, not renamed
    run_gan(affectnet, tmp_path)
    assert json.loads((out_dir / "provenance.json").read_text())["resumed_from"] == 2
    assert_same_gan(out_dir, clean_gan)  # holds: the weights are right ...
    assert files(out_dir) == files(clean_gan)  # ... but the killed writer's temporary is still there


# ====================================================================== 4. damaged files
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", ["json", "safetensors"])
def test_damaged_finished_run_is_named_and_made_again(tmp_path, clean_runs, monkeypatch, capsys, kind, how):
    results = tmp_path / "results"
    run_classifier(results, seeds=(0,))
    damaged = results / "real" / f"real-seed0.{kind}"
    damage(damaged, how)
    capsys.readouterr()
    counting = Counting(monkeypatch)
    run_classifier(results, seeds=(0,))
    assert f"{damaged} is {'unreadable' if kind == 'json' else 'not the file its record'}" in capsys.readouterr().out
    assert counting.fits == [(0,)]
    assert_same_runs(results / "real", clean_runs, ["real-seed0"])
    assert files(results / "real") == ["real-seed0.json", "real-seed0.safetensors"]


def interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, n: int, results: Path, **run: Any) -> None:
    """Run the classifier and stop it (KeyboardInterrupt) as its ``n``-th training epoch starts."""
    epoch, calls = T._train_epoch, Counter()

    def interrupted(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return epoch(*args)

    with monkeypatch.context() as patch:
        patch.setattr(T, "_train_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_classifier(results, **run)


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_training_checkpoint_is_named_and_training_starts_again(tmp_path, clean_runs, monkeypatch, capsys,
                                                                        how):
    results = tmp_path / "results"
    interrupt_at_epoch(monkeypatch, 2, results, seeds=(0,))  # epoch 1 is checkpointed
    checkpoint = results / "real" / ".real-seed0-x1.train.pt"
    damage(checkpoint, how)
    capsys.readouterr()
    counting = Counting(monkeypatch)
    run_classifier(results, seeds=(0,))
    assert f"deleted checkpoint {checkpoint}: unreadable" in capsys.readouterr().out
    assert counting.epochs == 3  # from the start
    assert_same_runs(results / "real", clean_runs, ["real-seed0"])
    assert files(results / "real") == ["real-seed0.json", "real-seed0.safetensors"]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", ["faces.npz", "meta.json", "manifest.csv"])
def test_damaged_preprocessing_cache_is_named_and_cropped_again(tmp_path, rafd, clean_faces, capsys, name, how):
    cache = tmp_path / "cache"
    shutil.copytree(clean_faces[1], cache)  # what a finished preprocessing run left
    cfg = preprocess_cfg(str(rafd), str(cache))
    (folder,) = cache.iterdir()
    damage(folder / name, how)
    capsys.readouterr()
    faces = P.load_database(cfg, "rafd")
    out = capsys.readouterr().out
    assert f"deleted cache {folder}: unreadable" in out and not faces.meta["cached"]
    assert_same_faces(faces, cache, *clean_faces)


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_gan_checkpoint_is_named_set_aside_and_training_starts_again(tmp_path, affectnet, clean_gan,
                                                                             monkeypatch, capsys, how):
    from fer_utils.gan import train_stargan as ts

    step = ts.train_step

    def interrupted(*args: Any) -> Any:
        if args[-1] == 3:  # stopped in iteration 3: the step-2 checkpoint is there
            raise KeyboardInterrupt
        return step(*args)

    with monkeypatch.context() as patch:
        patch.setattr(ts, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_gan(affectnet, tmp_path)
    out_dir = tmp_path / "results" / "gan" / "stargan"
    checkpoint = out_dir / "checkpoint.pt"
    damage(checkpoint, how)
    capsys.readouterr()
    run_gan(affectnet, tmp_path)
    out = capsys.readouterr().out
    assert f"{checkpoint}: not resumed: cannot be read" in out and "set aside as checkpoint.pt.corrupt" in out
    assert json.loads((out_dir / "provenance.json").read_text())["resumed_from"] == 0
    assert_same_gan(out_dir, clean_gan)
    assert files(out_dir) == sorted(files(clean_gan) + ["checkpoint.pt.corrupt"])  # kept for the user, by design


# ====================================================================== 5. settings changed between runs
@pytest.fixture(scope="module")
def rendered_rafd(tmp_path_factory) -> Path:
    """A RaFD-like world of 4 rendered subjects: faces the Haar cascade finds, so the margin changes the crops."""
    from fer_utils.facegen import write_world

    out = tmp_path_factory.mktemp("rendered")
    return write_world(load_config("quick", {"world.rafd_subjects": 4}), out=out, only=["rafd"])["rafd"]


def rendered_overrides(rafd: Path, cache: Path, margin: float) -> dict[str, Any]:
    return {"data.rafd": str(rafd), "data.cache": str(cache), "preprocess.workers": 1, "preprocess.margin": margin,
            "train.epochs": 2}


@pytest.mark.timeout(180)
def test_a_margin_change_does_not_resume_the_old_margins_checkpoint(drivers, tmp_path, rendered_rafd, monkeypatch,
                                                                    capsys):
    results, cache = tmp_path / "results", tmp_path / "cache"
    drivers.kill_at(tmp_path, "classifier", {"results": str(results), "seeds": [0], "real": "rafd",
                                             "overrides": rendered_overrides(rendered_rafd, cache, 0.2)},
                    hold("fer_utils.engine:_save", call=1))  # killed in epoch 2 of the 0.2 run
    checkpoint = results / "real" / ".real-seed0-x1.train.pt"
    assert checkpoint.is_file()
    counting = Counting(monkeypatch)
    run_classifier(results, (0,), "rafd", **rendered_overrides(rendered_rafd, cache, 0.25))
    assert f"deleted checkpoint {checkpoint}: input changed: train+val hash " in capsys.readouterr().out
    assert counting.epochs == 2  # trained from the start
    monkeypatch.undo()
    run_classifier(tmp_path / "clean25", (0,), "rafd", **rendered_overrides(rendered_rafd, tmp_path / "c25", 0.25))
    run_classifier(tmp_path / "clean20", (0,), "rafd", **rendered_overrides(rendered_rafd, cache, 0.2))
    assert_same_runs(results / "real", tmp_path / "clean25" / "real")
    assert files(results / "real") == files(tmp_path / "clean25" / "real")
    ours, old = (saved_runs(folder / "real")["real-seed0"] for folder in (results, tmp_path / "clean20"))
    assert ours[0]["data_hash"] != old[0]["data_hash"]
    assert any(not np.array_equal(ours[1][k], old[1][k]) for k in old[1])


def test_an_lr_change_retrains_finished_runs_and_ignores_old_checkpoints(tmp_path, clean_runs, monkeypatch, capsys):
    results = tmp_path / "results"
    interrupt_at_epoch(monkeypatch, 5, results)  # seed 0 finished (3 epochs), seed 1 checkpointed after epoch 1
    folder = results / "real"
    assert (folder / "real-seed0.json").is_file() and (folder / ".real-seed1-x1.train.pt").is_file()
    capsys.readouterr()
    counting = Counting(monkeypatch)
    run_classifier(results, **{"train.lr": 2e-4})
    out = capsys.readouterr().out
    assert counting.fits == [(0,), (1,)] and counting.epochs == 6  # the finished run trained again, seed 1 afresh
    assert f"deleted checkpoint {folder / '.real-seed1-x1.train.pt'}: settings changed: recipe.lr " in out
    monkeypatch.undo()
    run_classifier(tmp_path / "clean", **{"train.lr": 2e-4})
    assert_same_runs(folder, tmp_path / "clean" / "real")
    assert files(folder) == files(clean_runs)
    old = saved_runs(clean_runs)["real-seed0"][1]
    new = saved_runs(folder)["real-seed0"][1]
    assert any(not np.array_equal(new[k], old[k]) for k in old)


@pytest.mark.timeout(180)
def test_a_run_killed_between_its_weights_and_its_record_is_not_mixed_with_the_older_run(drivers, tmp_path,
                                                                                          clean_runs, monkeypatch):
    results = tmp_path / "results"
    shutil.copytree(clean_runs, results / "real")  # finished lr=1e-4 runs
    drivers.kill_at(tmp_path, "classifier", {"results": str(results), "seeds": [0], "overrides": {"train.lr": 2e-4}},
                    hold("fer_utils.experiments:save_run", after=False))  # new weights renamed, record not yet
    counting = Counting(monkeypatch)
    run_classifier(results, seeds=(0,))  # back to lr=1e-4
    assert_same_runs(results / "real", clean_runs)  # fails: real-seed0.safetensors holds the lr=2e-4 model
    assert counting.fits == [(0,)]


# ====================================================================== 6. full disk, read-only, diverged
FULL_DISK = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")  # torch.save's


def test_a_full_disk_at_the_first_checkpoint_is_one_line_and_the_rerun_equals_a_clean_run(tmp_path, clean_runs,
                                                                                           monkeypatch):
    """torch.save fails as on a full disk at the first checkpoint: one WriteError naming the checkpoint file (not
    inline_container.cc), no record, no temporary; once space is back the rerun ends as a clean run (issue 37 #5)."""
    results = tmp_path / "results"
    save = torch.save

    def full_at_checkpoint(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if ".train.pt" in str(f):
            raise FULL_DISK
        save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_checkpoint)
    with pytest.raises(runtime.WriteError) as info:
        run_classifier(results)
    checkpoint = results / "real" / ".real-seed0-x1.train.pt"
    assert str(info.value).startswith(f"cannot write {checkpoint}: the write stopped short (")
    assert "inline_container" not in str(info.value) and files(results / "real") == []
    monkeypatch.undo()
    run_classifier(results)
    assert_same_runs(results / "real", clean_runs)
    assert files(results / "real") == files(clean_runs)


@pytest.mark.parametrize("code, cause", [(errno.EROFS, "Read-only file system; write elsewhere"),
                                         (errno.EACCES, "Permission denied; change the folder's permissions or "
                                                        "write elsewhere"),
                                         (errno.ENOSPC, "No space left on device; free space there or write "
                                                        "elsewhere")])
def test_an_unwritable_results_folder_is_named_before_any_training(tmp_path, monkeypatch, code, cause):
    """A read-only (or forbidden, or full) results folder is found by a probe before the data are read or an epoch
    is trained (issue 37 #6: it used to fail after a whole epoch); nothing is written."""
    results = tmp_path / "results"
    counting = Counting(monkeypatch)

    def unwritable(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(runtime.tempfile, "mkstemp", unwritable)
    with pytest.raises(runtime.WriteError) as info:
        run_classifier(results)
    assert str(info.value) == f"cannot write results_dir ({results / 'real'}): {cause}"
    assert counting.fits == [] and counting.epochs == 0 and not results.exists()


def test_a_results_folder_without_room_for_a_checkpoint_is_named_before_any_training(tmp_path, monkeypatch):
    """Too little free space for the run's checkpoint (estimated from the model's size) is named up front."""
    counting = Counting(monkeypatch)
    monkeypatch.setattr(runtime.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(runtime.WriteError, match=r"0\.0 MB free on its filesystem, about [\d.]+ MB needed"):
        run_classifier(tmp_path / "results")
    assert counting.fits == []


def test_a_diverged_run_leaves_no_record_and_a_rerun_with_a_sound_lr_equals_a_clean_run(tmp_path, clean_runs,
                                                                                       monkeypatch):
    """lr 1e30: both members fail in their first epoch with one line; nothing is counted as done, so the run with
    the recipe's lr trains both seeds and ends as a clean run (issue 37 #1)."""
    results = tmp_path / "results"
    with pytest.raises(T.TrainingFailed, match=r"^train real k=0 seed 0: .* at epoch 1; lower train.lr \(now 1e\+30\); "
                                               r"seed 1: .* at epoch 1; lower train.lr \(now 1e\+30\)$"):
        run_classifier(results, **{"train.lr": 1e30})
    assert files(results / "real") == []
    counting = Counting(monkeypatch)
    run_classifier(results)
    assert counting.fits == [(0,), (1,)]
    assert_same_runs(results / "real", clean_runs)


def test_a_run_that_never_improved_leaves_no_record_and_a_rerun_equals_a_clean_run(tmp_path, clean_runs, monkeypatch):
    """lr 1e-30 under ``train.must_improve``: the weights never move, no epoch validates below the untrained ones,
    both members fail with one line and nothing is counted as done; the recipe's own run then trains both seeds
    and ends as a clean run (issue 37 #1, the strict rule)."""
    results = tmp_path / "results"
    never = r"validation loss never came below the untrained weights' \(\S+\) in 3 epoch\(s\): best \S+ at epoch \d; "
    with pytest.raises(T.TrainingFailed, match=rf"^train real k=0 seed 0: {never}.*; seed 1: {never}"):
        run_classifier(results, **{"train.lr": 1e-30, "train.must_improve": True})
    assert files(results / "real") == []
    counting = Counting(monkeypatch)
    run_classifier(results)
    assert counting.fits == [(0,), (1,)]
    assert_same_runs(results / "real", clean_runs)


JOBS = {"preprocess": job_preprocess, "classifier": job_classifier, "gan": job_gan}


# ====================================================================== 6. code changed between runs
def test_a_model_code_change_retrains_finished_runs_and_ignores_old_checkpoints(tmp_path, clean_runs, monkeypatch,
                                                                                capsys):
    """Issue 37 case 2: after an edit of the model code, a finished run was reused and a checkpoint resumed."""
    results = tmp_path / "results"
    interrupt_at_epoch(monkeypatch, 5, results)  # seed 0 finished (3 epochs), seed 1 checkpointed after epoch 1
    folder = results / "real"
    monkeypatch.setitem(identity.CODE["classifier"], "models/cnn.py", "0" * 16)  # as if cnn.py had been edited
    capsys.readouterr()
    counting = Counting(monkeypatch)
    run_classifier(results)
    out = capsys.readouterr().out
    assert counting.fits == [(0,), (1,)] and counting.epochs == 6  # the finished run trained again, seed 1 afresh
    assert f"stale {folder / 'real-seed0.json'}: code changed: models/cnn.py" in out
    assert f"deleted checkpoint {folder / '.real-seed1-x1.train.pt'}: code changed: models/cnn.py" in out
    for name, (record, weights) in saved_runs(clean_runs).items():  # the same source ran: a clean run's numbers
        got = saved_runs(folder)[name]
        assert got[0]["metrics"] == record["metrics"] and got[0]["identity"]["code"]["models/cnn.py"] == "0" * 16
        assert all(np.array_equal(got[1][k], v) for k, v in weights.items())
    assert files(folder) == files(clean_runs)


def test_a_generator_code_change_makes_the_units_again(tmp_path, tiny_weights, monkeypatch, capsys):
    """Units made by other generation code are named and made again; those beyond the request are deleted."""
    from fer_utils.gan import generate as gen

    cfg = load_config("quick", {"device": "cpu", "generate.stylegan2_weights": str(tiny_weights[0]),
                                "generate.stargan_weights": str(tiny_weights[1]), "generate.batch_size": 48})
    root = gen.generate_database(cfg, tmp_path / "g", progress=False, units=2)
    before = {p: p.read_bytes() for p in sorted(root.glob("*/*/u00_id*/*.png"))}
    monkeypatch.setitem(identity.CODE["generated"], "gan/pipeline.py", "0" * 16)  # as if pipeline.py was edited
    drawn = []
    draw = gen._draw_unit
    monkeypatch.setattr(gen, "_draw_unit", lambda tmp, unit, *args: drawn.append(unit) or draw(tmp, unit, *args))
    capsys.readouterr()
    gen.generate_database(cfg, root, progress=False, units=1)
    out = capsys.readouterr().out
    assert drawn == [0]  # unit 0 made again; unit 1 is not asked for, so it is deleted rather than kept stale
    for unit in (0, 1):
        assert f"generated unit {unit} in {root} is stale: code changed: gan/pipeline.py" in out
    assert not list(root.glob("*/*/u01_id*")) and not (root / ".u01.done.json").exists()
    assert {p: p.read_bytes() for p in sorted(root.glob("*/*/u00_id*/*.png"))} == before  # the same source ran
    assert json.loads((root / gen.MANIFEST).read_text())["units"] == 1


def test_a_gan_training_code_change_does_not_resume_its_checkpoint(tmp_path, affectnet, clean_gan,
                                                                   interrupt_training, monkeypatch, capsys):
    from fer_utils.gan import train_stargan

    interrupt_training(train_stargan, 3)  # the step-2 checkpoint is on disk
    with one_thread(), pytest.raises(KeyboardInterrupt):
        run_gan(affectnet, tmp_path)
    monkeypatch.undo()
    out_dir = tmp_path / "results" / "gan" / "stargan"
    assert torch.load(out_dir / "checkpoint.pt", weights_only=True)["step"] == 2
    monkeypatch.setitem(identity.CODE["gan-training"], "gan/stargan.py", "0" * 16)  # as if stargan.py was edited
    capsys.readouterr()
    with one_thread():
        run_gan(affectnet, tmp_path)
    assert "not resumed: code changed: gan/stargan.py" in capsys.readouterr().out
    assert json.loads((out_dir / "provenance.json").read_text())["resumed_from"] == 0
    assert_same_gan(out_dir, clean_gan)  # trained from the start: an uninterrupted run's weights
