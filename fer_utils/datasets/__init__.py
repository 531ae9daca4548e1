"""One adapter per on-disk layout; all yield the same ``Sample`` records (layouts: docs/datasets.md).

``read_database(name, root, cfg, report)`` picks the adapter and passes the preprocess
choices (cameras, modalities, frames per sequence) from the config.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import Config
from .affectnet import read_affectnet
from .base import Sample, SkipReport
from .ckplus import read_ckplus
from .fer2013 import read_fer2013
from .ffhq import read_ffhq
from .folder import read_folder
from .mmi import read_mmi
from .oulu import read_oulu
from .rafd import read_rafd

Adapter = Callable[[Path, Config, SkipReport, bool], list[Sample]]

ADAPTERS: dict[str, Adapter] = {
    "rafd": lambda root, cfg, report, extra: read_rafd(
        root, cfg.preprocess.rafd_cameras, extra, extra, report),
    "oulu": lambda root, cfg, report, extra: read_oulu(
        root, cfg.preprocess.oulu_modalities, cfg.preprocess.oulu_lightings, cfg.preprocess.sequence_frames, report),
    "mmi": lambda root, cfg, report, extra: read_mmi(root, cfg.preprocess.sequence_frames, report=report),
    "ckplus": lambda root, cfg, report, extra: read_ckplus(root, cfg.preprocess.sequence_frames, extra, extra, report),
    "affectnet": lambda root, cfg, report, extra: read_affectnet(
        root, include_neutral=extra, include_contempt=extra, report=report),
    "ffhq": lambda root, cfg, report, extra: read_ffhq(root, report),
    "fer2013": lambda root, cfg, report, extra: read_fer2013(root, extra, report),
    "folder": lambda root, cfg, report, extra: read_folder(root, "folder", extra, extra, report),
    "generated": lambda root, cfg, report, extra: read_folder(root, "generated", extra, extra, report),
}


def read_database(name: str, root: str | Path, cfg: Config, report: SkipReport | None = None,
                  include_neutral: bool = False) -> list[Sample]:
    """List the samples of database ``name`` under ``root``.

    Args:
        name: a key of ``ADAPTERS`` (rafd, oulu, mmi, ckplus, affectnet, ffhq, fer2013, folder, generated).
        root: the database folder.
        cfg: supplies ``cfg.preprocess`` choices (cameras, modalities, lightings, sequence_frames).
        report: collects skips; a new one is made if None.
        include_neutral: keep neutral and contempt (labels 6, 7) as well as the six classes.
    """
    if name not in ADAPTERS:
        raise KeyError(f"no adapter for database {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[name](Path(root), cfg, report if report is not None else SkipReport(name), include_neutral)


__all__ = ["ADAPTERS", "Sample", "SkipReport", "read_affectnet", "read_ckplus", "read_database", "read_fer2013",
           "read_ffhq", "read_folder", "read_mmi", "read_oulu", "read_rafd"]
