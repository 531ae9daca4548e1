"""Write the six stand-in databases: resumable (manifest last), deterministic, on two cores."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import __version__
from ..config import WORLD_DATABASES, WORLD_INCOMPLETE, WORLD_MANIFEST, Config
from ..identity import identity, mismatch
from ..runtime import exclusive, write_json
from . import writers as W
from .render import compile_renderer, single_threaded
from .styles import STYLES

DATABASES: tuple[str, ...] = WORLD_DATABASES
MANIFEST = WORLD_MANIFEST
INCOMPLETE = WORLD_INCOMPLETE
JOBS: dict[str, Callable[..., list[str]]] = {  # each database's writer of one job (a subject, or a chunk of images)
    "rafd": W.rafd_job, "oulu": W.oulu_job, "mmi": W.mmi_job, "ckplus": W.ckplus_job,
    "affectnet": W.affectnet_job, "ffhq": W.ffhq_job,
}
def _world_settings(world: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``cfg.world`` keys a database's bytes depend on: all but the other databases' sizes."""
    others = tuple(f"{n}_" for n in DATABASES if n != name)
    return {k: v for k, v in world.items() if not k.startswith(others)}


def world_identity(cfg: Config, name: str) -> dict[str, Any]:
    """What decides a database's bytes: the world's code (``identity.CODE_FILES``), its world settings and style."""
    return identity("world", {}, {"world": _world_settings(dataclasses.asdict(cfg.world), name),
                                  "style": dataclasses.asdict(STYLES[name])})


def stale_reason(cfg: Config, name: str, root: Path) -> str | None:
    """Why the complete database in ``root`` is not what this code and ``cfg`` write now; None if it is."""
    try:
        saved = json.loads((root / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"manifest unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(saved, dict):
        return "manifest unreadable (not a world manifest)"
    return mismatch(saved.get("identity"), world_identity(cfg, name))


def _jobs(cfg: Config, name: str, root: Path) -> tuple[Callable[[int], list[str]], list[int]]:
    """The job function of a database and the job numbers (subjects or image chunks)."""
    wc = cfg.world
    base = partial(JOBS[name], root, wc.seed, wc.image_size)
    if name in ("affectnet", "ffhq"):
        total = getattr(wc, f"{name}_images")
        return partial(base, total=total), list(range((total + W.CHUNK - 1) // W.CHUNK))
    n = getattr(wc, f"{name}_subjects")
    return base, (W.ckplus_subject_ids(wc.seed, n) if name == "ckplus" else list(range(1, n + 1)))


def _call(job: tuple[Callable[[int], list[str]], int]) -> list[str]:
    """Run one job (top-level so that worker processes can unpickle it)."""
    fn, arg = job
    return fn(arg)


def write_database(cfg: Config, name: str, root: Path, workers: int | None = None) -> Path:
    """Write one database into ``root``; its manifest is written last, atomically."""
    _prepare(root)
    fn, args = _jobs(cfg, name, root)
    workers = workers or min(2, os.cpu_count() or 1)
    jobs = [(fn, a) for a in args]
    if workers > 1 and len(jobs) > 1:
        compile_renderer()  # once here, not once per forked worker
        with multiprocessing.get_context("fork").Pool(workers, single_threaded) as pool:
            results = list(tqdm(pool.imap(_call, jobs), total=len(jobs), desc=name, leave=False))
    else:
        results = [_call(j) for j in tqdm(jobs, desc=name, leave=False)]
    if name == "affectnet":
        _write_affectnet_csv(root, [r for rows in results for r in rows])
    write_json(root / MANIFEST, _manifest(cfg, name, args, results))
    (root / INCOMPLETE).unlink()
    return root


def _prepare(root: Path) -> None:
    """Start a database folder, wiping only one this module marked as its own (``INCOMPLETE``).

    The marker stays while the rest is deleted, so a run killed mid-wipe leaves a folder the next run may wipe.
    """
    if root.exists() and any(root.iterdir()):
        if not (root / INCOMPLETE).exists():
            raise RuntimeError(f"{root} holds files not written by fer_utils.facegen and no {MANIFEST}: "
                               "move it away or point cfg.data at an empty folder")
        for entry in root.iterdir():
            if entry.name != INCOMPLETE:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / INCOMPLETE).touch()


def _write_affectnet_csv(root: Path, rows: list[str]) -> None:
    """Split the rows 95/5 into training.csv and validation.csv (the real file lists)."""
    n_val = max(1, len(rows) // 20)
    folder = root / "Manually_Annotated_file_lists"
    folder.mkdir(parents=True, exist_ok=True)
    for fname, part in (("training.csv", rows[:-n_val]), ("validation.csv", rows[-n_val:])):
        (folder / fname).write_text("\n".join([W.AFFECTNET_HEADER, *part]) + "\n")


def _manifest(cfg: Config, name: str, args: list[int], results: list[list[str]]) -> dict[str, Any]:
    """What was written: counts per class, subjects, seed, parameters, identity and version."""
    if name == "affectnet":
        labels = [int(r.split(",")[-3]) for rows in results for r in rows]
    else:
        labels = [lab for rows in results for lab in rows]
    return {"database": name, "seed": cfg.world.seed, "fer_utils": __version__, "identity": world_identity(cfg, name),
            "world": dataclasses.asdict(cfg.world), "style": dataclasses.asdict(STYLES[name]),
            "jobs": len(args), "subjects": args if name not in ("affectnet", "ffhq") else None,
            "identity_offset": W.POOL_OFFSET[name], "counts": dict(sorted(Counter(map(str, labels)).items()))}


def _roots(cfg: Config, out: Path | None, only: Sequence[str] | None) -> dict[str, Path]:
    """Root folder of each requested database; unknown names are an error."""
    names = list(only) if only else list(DATABASES)
    unknown = [n for n in names if n not in DATABASES]
    if unknown:
        raise ValueError(f"unknown database(s) {', '.join(unknown)}; known: {', '.join(DATABASES)}")
    return {n: (Path(out) / n if out else cfg.path(getattr(cfg.data, n))) for n in names}


def write_world(cfg: Config, out: Path | None = None, only: Sequence[str] | None = None) -> dict[str, Path]:
    """Write the embedded databases (all six or ``only``), skipping complete, current ones; return roots.

    A complete database written by other code, world settings or style (``stale_reason``) is rewritten:
    its manifest marks it as this module's.

    Args:
        cfg: configuration; ``cfg.world`` sizes, ``cfg.data`` roots.
        out: write ``out/<name>`` instead of the configured roots.
        only: subset of ``rafd, oulu, mmi, ckplus, affectnet, ffhq``.
    """
    roots = _roots(cfg, out, only)
    for name, root in tqdm(roots.items(), desc="world"):
        with exclusive(root, f"the {name} world"):
            if (root / MANIFEST).exists():
                reason = stale_reason(cfg, name, root)
                if reason is None:
                    print(f"{name}: complete, skipped ({root})")
                    continue
                print(f"{name}: rewriting {root}, stale: {reason}")
                (root / INCOMPLETE).touch()  # ours by its manifest: _prepare may now wipe it
            write_database(cfg, name, root)
        print(f"{name}: written ({root})")
    return roots


def ensure_world(cfg: Config, only: Sequence[str] | None = None) -> dict[str, Path]:
    """Write whatever part of the configured world is missing (notebooks call this)."""
    return write_world(cfg, None, only)
