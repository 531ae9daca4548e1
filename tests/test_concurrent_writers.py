"""Two processes never write the same run or generated unit: the second waits on the lock, then reuses the first's.

Issue 37 case 4: two sweeps on one data folder crashed on a shared ``.u00.tmp`` and both trained the same runs
(last writer won). Each test starts two REAL processes (spawned: a fresh interpreter, one thread each, as the
world's lock test learnt that a forked child entering its parent's OpenMP pool hangs); the first stops inside
its write until the second has reached the lock, and both are killed at the end whatever happens.
"""
from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from processes import first_then_second

RUN_SETTINGS = {"train.epochs": 1, "device": "cpu"}


def _in_a_process(job: Callable[..., Any], kwargs: dict[str, Any], results, started=None, go=None) -> None:
    """Run ``job(**kwargs, count=...)`` on one thread; with events, pause inside the write until ``go`` is set;
    report (status, how many writes it made, what it printed)."""
    import torch

    torch.set_num_threads(1)
    printed, writes = io.StringIO(), []

    def pause() -> None:
        writes.append(1)
        if started is not None:
            started.set()
            go.wait(60)

    try:
        with contextlib.redirect_stdout(printed):
            job(**kwargs, count=pause)
        results.put(("ok", len(writes), printed.getvalue()))
    except Exception as error:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(("failed", len(writes), repr(error)))


def train_real(results_dir: str, count: Callable[[], None]) -> None:
    """Train ``real`` seed 0 on synthetic faces with a tiny CNN; ``count`` is called on each training pass."""
    from synthetic import synthetic_faces, tiny_cnn

    from fer_utils import experiments
    from fer_utils.config import load_config
    from fer_utils.models import MODELS

    real = {name: synthetic_faces(n, i) for i, (name, n) in enumerate((("train", 48), ("val", 18), ("test", 18)))}
    for faces in real.values():
        faces.meta.update(database="rafd", source={"source": "test", "path": "rafd", "files": 1, "hash": "rafd-v0"})
    experiments.experiment_inputs = lambda cfg, experiment, ratio=0: (real, {})
    experiments.cross_database_sets = lambda cfg: {}
    MODELS["cnn"] = tiny_cnn
    fit = experiments.fit
    experiments.fit = lambda *args, **kwargs: count() or fit(*args, **kwargs)
    experiments.run_experiment(load_config("quick", {"results_dir": results_dir, **RUN_SETTINGS}), "real", seed=0,
                               progress=False)


def generate_unit(weights: tuple[str, str], out: str, count: Callable[[], None]) -> None:
    """Generate one unit with the tiny generators into ``out``; ``count`` is called on each unit written."""
    from fer_utils.config import load_config
    from fer_utils.gan import generate as gen

    write = gen._draw_unit
    gen._draw_unit = lambda *args: count() or write(*args)
    cfg = load_config("quick", {"device": "cpu", "generate.stylegan2_weights": weights[0],
                                "generate.stargan_weights": weights[1], "generate.batch_size": 48})
    gen.generate_database(cfg, out, progress=False, units=1)


def _two_at_once(job: Callable[..., Any], kwargs: dict[str, Any]) -> list[tuple[str, int, str]]:
    """Start ``job`` in one process, let it reach its write, start it in a second; both outcomes, in order."""
    # the second imports the package (a few seconds) and reaches the lock while the first writes
    outcomes = first_then_second(multiprocessing.get_context("spawn"), _in_a_process, (job, kwargs), started_s=90,
                                 reach_s=8.0, finish_s=180)
    assert [status for status, _, _ in outcomes] == ["ok", "ok"], outcomes
    return outcomes


def test_two_processes_training_one_run_train_it_once(tmp_path) -> None:
    """Both used to train it (last writer won); the second now waits and reuses the first's record."""
    from fer_utils import experiments, identity
    from fer_utils.config import load_config

    first, second = _two_at_once(train_real, {"results_dir": str(tmp_path / "results")})
    assert (first[1], second[1]) == (1, 0), (first, second)
    assert "waiting for another process writing run real-seed0" in second[2]
    path = tmp_path / "results" / "real" / "real-seed0.json"
    saved = identity.kept_record(path, json.loads(path.read_text())["identity"])
    assert saved is not None and saved["params"] == experiments.run_params(
        load_config("quick", {"results_dir": str(tmp_path / "results"), **RUN_SETTINGS}), "real", 0)


def test_two_processes_generating_one_unit_write_it_once(tmp_path, tiny_weights) -> None:
    """The second crashed on the first's ``.u00.tmp``; it now waits and finds the unit done."""
    out = tmp_path / "generated"
    first, second = _two_at_once(generate_unit, {"weights": tuple(map(str, tiny_weights)), "out": str(out)})
    assert (first[1], second[1]) == (1, 0), (first, second)
    assert "waiting for another process writing the generated database" in second[2]
    assert (out / ".u00.done.json").is_file() and len(list(out.glob("*/*/u00_id*"))) == 144 * 6
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_units_temporary_folder_is_its_writers_own(tmp_path, tiny_weights, monkeypatch) -> None:
    """Not a shared ``.u00.tmp``: one named after its process, which a rerun removes once that process is gone."""
    from fer_utils.config import load_config
    from fer_utils.gan import generate as gen

    seen: list[Path] = []
    draw = gen._draw_unit
    monkeypatch.setattr(gen, "_draw_unit", lambda tmp, *args: seen.append(tmp) or draw(tmp, *args))
    cfg = load_config("quick", {"device": "cpu", "generate.stylegan2_weights": str(tiny_weights[0]),
                                "generate.stargan_weights": str(tiny_weights[1]), "generate.batch_size": 48})
    gen.generate_database(cfg, tmp_path / "g", progress=False, units=1)
    (tmp,) = seen
    assert tmp.name.startswith(gen.temporary_prefix(tmp.parent / "u00")) and tmp.name.endswith(".tmp")
    assert not tmp.exists()
