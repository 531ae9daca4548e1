"""Crop-cache folders that no configured database would use now, named and, on request, removed.

The crop cache is content-addressed (``preprocess.load_database``: ``<database>-<digest of its identity>``), so
other inputs, settings or cropping code give a new folder and the old one lingers. A folder counts as stale only
when it is proven so: it sits directly in ``data.cache`` (no link), its ``meta.json`` says it holds the crops of
a database whose ``check`` passed, every input file it records lies in that database's configured folder, and
its name is not the one that database's current identity gives. Anything else (another tool's file, a folder of
an older version without input paths, the generated units of ``criterion``'s candidates) is left alone.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .identity import mismatch
from .inputs import DatabaseCheck
from .preprocess import cache_key

CROP_SETTINGS = ("image_size", "margin")  # the settings ``cache_key`` puts in a folder's identity


@dataclass(frozen=True)
class StaleFolder:
    """One crop-cache folder no configured database would use, its size and what differs from the current one."""

    path: Path
    megabytes: float
    why: str


def stale_folders(cfg: Config, checks: Sequence[DatabaseCheck]) -> list[StaleFolder]:
    """The crop-cache folders of the databases ``checks`` listed that their current identity would not use.

    Reads listings and ``meta.json`` files only; a database whose check did not pass is not judged.
    """
    root = cfg.path(cfg.data.cache)
    if not root.is_dir():
        return []
    ready = {c.name: c for c in checks if c.state == "ok"}
    found = []
    for folder in sorted(root.iterdir()):
        check = ready.get(folder.name.rpartition("-")[0])
        if check is not None and (meta := _stale_meta(folder, check, cfg)) is not None:
            found.append(StaleFolder(folder, _megabytes(folder), _why(meta, check, cfg)))
    return found


def _current_folder(cfg: Config, check: DatabaseCheck) -> str:
    """The folder name ``load_database`` gives the database ``check`` listed, with these settings and this code."""
    return f"{check.name}-{cache_key(check.samples, cfg.preprocess.image_size, cfg.preprocess.margin)}"


def _stale_meta(folder: Path, check: DatabaseCheck, cfg: Config) -> dict[str, Any] | None:
    """``folder``'s meta.json when the folder is proven stale for ``check``'s database, else None."""
    match = re.fullmatch(rf"{re.escape(check.name)}-([0-9a-f]{{16}})", folder.name)
    if not match or folder.is_symlink() or not folder.is_dir() or folder.name == _current_folder(cfg, check):
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None  # not a folder preprocess finished: not ours to judge
    if not isinstance(meta, dict) or meta.get("database") != check.name or meta.get("key") != match.group(1):
        return None
    files, inside = meta.get("files"), str(check.path) + os.sep
    if not isinstance(files, dict) or not files or not all(path.startswith(inside) for path in files):
        return None  # an older version's folder, or one of a database read from elsewhere (criterion's units)
    return meta


def _why(meta: dict[str, Any], check: DatabaseCheck, cfg: Config) -> str:
    """What differs between a stale folder and the current one, from what its meta.json records.

    The folder keeps only the digest of its identity, so the parts it records are compared (the crop settings
    through ``identity.mismatch``, and the list of input files); what it does not record is said as such.
    """
    was = {key: meta.get("preprocess", {}).get(key) for key in CROP_SETTINGS}
    now = {key: dataclasses.asdict(cfg.preprocess)[key] for key in CROP_SETTINGS}
    reasons = [why] if (why := mismatch(_partial(was), _partial(now))) else []
    recorded = set(meta["files"])
    listed = {s.path for s in check.samples} | {p for s in check.samples for p in s.extra.get("earlier", ())}
    added, removed = len(listed - recorded), len(recorded - listed)
    if added or removed:
        reasons.append(f"input files: {added} added, {removed} removed")
    return "; ".join(reasons) or "same input files and crop settings: a file's size or mtime, or the cropping code"


def _partial(settings: dict[str, Any]) -> dict[str, Any]:
    """An identity of the crop settings alone, for ``identity.mismatch``."""
    return {"inputs": {}, "settings": settings, "code": {}}


def _megabytes(folder: Path) -> float:
    """The size of the files under ``folder``, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def stale_note(stale: Sequence[StaleFolder], remove_with: str) -> str:
    """What ``check`` says about stale folders: how many, their size, why each, and the command that removes them."""
    if not stale:
        return "crop cache: no stale folder"
    lines = [f"crop cache: {len(stale)} stale folder(s), {sum(s.megabytes for s in stale):.1f} MB, that no "
             f"configured database would use now (in {stale[0].path.parent}):"]
    lines += [f"  {s.path.name} ({s.megabytes:.1f} MB): {s.why}" for s in stale]
    return "\n".join([*lines, f"remove them with: {remove_with}"])


def remove_stale(stale: Sequence[StaleFolder], root: Path) -> list[Path]:
    """Delete the folders ``stale_folders`` found (each checked again to lie directly in ``root``, not a link)."""
    removed = []
    for folder in stale:
        if folder.path.parent.resolve() != root.resolve() or folder.path.is_symlink():
            raise ValueError(f"{folder.path} is not a folder of the crop cache {root}; nothing removed there")
        shutil.rmtree(folder.path)
        removed.append(folder.path)
    return removed
