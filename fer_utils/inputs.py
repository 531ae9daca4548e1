"""The pipeline's inputs, checked before any work: settings, each configured database, weights files.

``check_inputs`` reads and writes nothing but listings: it recognises each database's layout through
its adapter and counts images per class and per subject, with every skip by reason. ``prepare_inputs``
runs the same check, refuses to go on when anything is wrong (one error listing every problem),
then writes the embedded world where the settings say the world is the source and it is missing or stale.
Every command and notebook calls ``prepare_inputs`` before its first expensive step, so a path
typed wrong fails in seconds, not after an hour. Layouts: docs/datasets.md.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import (
    EXPERIMENT_DATABASES,
    WORLD_DATABASES,
    WORLD_INCOMPLETE,
    WORLD_MANIFEST,
    Config,
    DataError,
    InputError,
    data_source,
    is_world_path,
)
from .datasets import Sample, SkipReport, read_database
from .emotions import EMOTIONS, label_name
from .report import markdown_table
from .runtime import check_writable

GAN_DATABASES = ("affectnet", "ffhq")  # what the generators train on


@dataclass
class DatabaseCheck:
    """What one configured database holds, or why it cannot be used."""

    name: str
    path: Path
    source: str  # "embedded world" or "your files"
    state: str = "ok"  # ok | to write (world, missing) | error
    problem: str = ""
    classes: Counter = field(default_factory=Counter)
    subjects: Counter = field(default_factory=Counter)
    skipped: SkipReport = field(default_factory=SkipReport)
    samples: list[Sample] = field(default_factory=list, repr=False)  # what the crop cache's key is made from

    @property
    def images(self) -> int:
        """Images the adapter lists (before face detection)."""
        return sum(self.classes.values())


def check_database(cfg: Config, name: str, include_neutral: bool = False) -> DatabaseCheck:
    """List ``data.<name>`` through its adapter: counts per class and subject, skips; never writes."""
    path = cfg.path(getattr(cfg.data, name))
    world = is_world_path(cfg, name)
    check = DatabaseCheck(name, path, "embedded world" if world else "your files")
    if world and not (path / WORLD_MANIFEST).is_file():
        if path.is_dir() and any(path.iterdir()) and not (path / WORLD_INCOMPLETE).exists():
            check.state, check.problem = "error", (
                f"data.{name}: {path} holds files the embedded world did not write and no {WORLD_MANIFEST}; "
                "move them away, or point the setting at a folder outside data/<preset>/world/ to use them")
        else:
            check.state = "to write"  # missing or interrupted: the world writes (or rewrites) it
        return check
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        check.state, check.problem = "error", (
            f"data.{name}: {path} {'is empty' if path.exists() else 'does not exist'}; expected the {name} layout "
            f"(docs/datasets.md). Fix the path, or use data/{cfg.preset}/world/{name} for the embedded world")
        return check
    report = SkipReport(name)
    try:
        samples = read_database(name, path, cfg, report, include_neutral)
    except (InputError, OSError, RuntimeError, ValueError) as exc:  # adapters name the file; we name the key
        check.state, check.problem = "error", f"data.{name}: {path}: {exc} (layouts: docs/datasets.md)"
        return check
    check.classes = Counter(label_name(s.label) if s.label is not None else "unlabelled" for s in samples)
    check.subjects = Counter(s.subject for s in samples)
    check.skipped = report
    check.samples = samples
    check.source = data_source(cfg, name)
    return check


def configured_databases(cfg: Config) -> list[str]:
    """Every database the settings name: the world's six, FER2013 when set, the generated one once written."""
    names = [*WORLD_DATABASES, *(["fer2013"] if cfg.data.fer2013 else [])]
    return names + (["generated"] if cfg.path(cfg.data.generated).is_dir() else [])


def check_weights(cfg: Config) -> list[str]:
    """Problems with the configured generator weights (``generate.*_weights``): each file must exist and load."""
    from .gan.shipped import load_generator, stargan_size

    problems = []
    for model in ("stylegan2", "stargan"):
        value = getattr(cfg.generate, f"{model}_weights")
        if not value:
            continue  # the shipped weights, checked by the tests
        try:
            _, path = load_generator(cfg, model)
            if model == "stargan":
                stargan_size(cfg, path)  # a yunjey .ckpt: its size must be known, not assumed
        except (InputError, OSError) as exc:
            key = f"generate.{model}_weights"
            problems.append(str(exc) if str(exc).startswith(f"{key}:") else f"{key}: {exc}")  # the key once
    return problems


def stargan_note(cfg: Config) -> str:
    """What ``check`` says about a user's StarGAN weights: the size they run at and how it is known ("" if none)."""
    from .gan.shipped import stargan_size, weights_path

    if not cfg.generate.stargan_weights:
        return ""
    path = weights_path(cfg, "stargan")
    try:
        size, how = stargan_size(cfg, path)
    except InputError:
        return ""  # a problem check_weights reports
    return f"generate.stargan_weights: {path} translates {size}-px crops ({how})"


def check_inputs(cfg: Config, databases: Sequence[str] = EXPERIMENT_DATABASES,
                 weights: bool = False) -> tuple[list[DatabaseCheck], list[str]]:
    """Every database's check and every problem found (databases, then weights when asked); writes nothing."""
    checks = [check_database(cfg, name) for name in databases]
    problems = [c.problem for c in checks if c.state == "error"]
    return checks, problems + (check_weights(cfg) if weights else [])


def prepare_inputs(cfg: Config, databases: Sequence[str] = EXPERIMENT_DATABASES,
                   weights: bool = False) -> list[DatabaseCheck]:
    """Check the inputs, raise ``DataError`` listing every problem, check that the outputs can be written (a
    ``WriteError`` naming the folder), then write the world's missing or stale parts."""
    checks, problems = check_inputs(cfg, databases, weights)
    if problems:
        raise DataError(f"{len(problems)} input problem(s), nothing was run: " + " | ".join(problems))
    todo = [c.name for c in checks if is_world_path(cfg, c.name)]  # missing, or stale: ensure_world decides
    for key in ("results_dir", "data.cache", *(f"data.{name}" for name in todo)):
        check_writable(cfg.path(_setting(cfg, key)), key)
    if todo:
        from .facegen.world import ensure_world  # the one place the pipeline writes the world

        ensure_world(cfg, only=todo)
        checks = [check_database(cfg, c.name) if c.name in todo else c for c in checks]
    return checks


def _setting(cfg: Config, key: str) -> str:
    """The value of a dotted setting such as ``data.cache``."""
    section, _, name = key.rpartition(".")
    return getattr(getattr(cfg, section), name) if section else getattr(cfg, name)


CHECK_HEADER = ("database", "source", "path", "state", "images", "subjects", *EMOTIONS, "skipped")


def check_table(checks: Sequence[DatabaseCheck]) -> str:
    """Markdown table of the checks; skip reasons follow it, one line per database (problems are raised or printed)."""
    rows = [[c.name, c.source, str(c.path), c.state, str(c.images), str(len(c.subjects)),
             *(str(c.classes.get(e, 0)) for e in EMOTIONS), str(c.skipped.total)] for c in checks]
    lines = [markdown_table(CHECK_HEADER, rows)]
    lines += [f"  {c.skipped.summary()}" for c in checks if c.skipped.total]
    return "\n".join(lines)
