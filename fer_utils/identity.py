"""One identity for every kept result: the hashes of its inputs, the settings that change it, the code that makes it.

A world database, a crop cache folder, a generated unit, the filter and its per-ratio report, a quality record, a
GAN checkpoint and a classifier run are reused only when the identity saved with them equals the one this code and
these settings would give now (as DVC and Snakemake compare deps + params + code). This module alone builds
identities (``identity``), compares them (``mismatch``, which names what changed) and keeps records whose weights
they pin (``kept_record``), so no stage invents its own rule. Which source files decide the numbers of each kind of
result is the table ``CODE_FILES``; their hashes are taken once, at import (the code that runs, even if a file is
edited while a notebook is open).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .runtime import file_sha256, write_json

PACKAGE = Path(__file__).resolve().parent
OLDER = "no identity recorded: made by an older version"
_CLASSIFIER = ("engine.py", "evaluate.py", "models/*.py")
_GENERATORS = ("gan/stylegan2.py", "gan/stargan.py", "gan/weights.py", "gan/shipped.py")
# Per kind of kept result, the package's source files (globs under fer_utils/) that decide its numbers, and those
# a glob takes that do not: editing plots.py, uncertainty.py or facegen/figures.py must not redo anything kept.
CODE_FILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # every facegen module draws or lays out the databases but figures.py (figures), people.py (the generators'
    # identity check) and regions.py (where action units act, for the tests); emotions.py names the folders
    "world": (("facegen/*.py", "emotions.py"), ("facegen/figures.py", "facegen/people.py", "facegen/regions.py")),
    "crops": (("preprocess.py", "datasets/*.py", "emotions.py"), ()),  # the adapters list, preprocess crops
    "classifier": (_CLASSIFIER, ()),  # the training loop, the models, the metrics: a run, the filter, the judge
    "generated": (("gan/generate.py", "gan/pipeline.py", "preprocess.py", "emotions.py", *_GENERATORS), ()),
    "gan-training": (("gan/trainer.py", "gan/train_stargan.py", "gan/train_stylegan2.py", "gan/checkpoints.py",
                      *_GENERATORS), ()),
    # facegen/people.py: the rendered people the identity check and the motion regressor are fitted on
    "quality": (("gan/quality.py", "gan/measures.py", "gan/judge.py", "gan/identity.py", "gan/features.py",
                 "gan/motion.py", "gan/pipeline.py", "preprocess.py", "facegen/people.py", *_GENERATORS,
                 *_CLASSIFIER), ()),
    # the faces the filter keeps for one ratio (its report): the selection, the units it reads, the scoring
    "filtered": (("filtering.py", "gan/generate.py", "emotions.py", *_CLASSIFIER), ()),
}
# runtime.py is in no kind: it writes, locks and hashes files (how a result is kept, not what it is), so an edit
# there must not redo an hour of kept results.


def code_hashes(kind: str, package: Path = PACKAGE) -> dict[str, str]:
    """sha256 (16 hex digits) of each source file of ``package`` that decides the numbers of ``kind``, by path.

    A new module matched by a glob counts without being listed.
    """
    include, exclude = CODE_FILES[kind]
    paths = {p for pattern in include for p in package.glob(pattern)} - {package / name for name in exclude}
    return {p.relative_to(package).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(paths)}


CODE: dict[str, dict[str, str]] = {kind: code_hashes(kind) for kind in CODE_FILES}  # once, at import


def identity(kind: str, inputs: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The identity of a result of ``kind`` made from ``inputs`` (name -> content hash) with ``settings``, as JSON
    reads it back (tuples become lists), so a saved one compares equal."""
    return json.loads(json.dumps({"kind": kind, "inputs": dict(sorted(inputs.items())), "settings": dict(settings),
                                  "code": CODE[kind]}))


def digest(ident: Mapping[str, Any]) -> str:
    """A short hash of an identity: a name for results kept in content-addressed folders (the crop cache)."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def mismatch(saved: Any, current: Mapping[str, Any]) -> str | None:
    """Why a result with the identity ``saved`` is not the one ``current`` describes (None when it is).

    Names each part that changed: ``code changed: engine.py, models/cnn.py``, ``settings changed: train.lr
    0.001 -> 0.01``, ``input changed: rafd hash 1a2b -> 3c4d``; a result saved without an identity was made by
    an older version, whose code cannot be known.
    """
    if not isinstance(saved, dict) or not all(isinstance(saved.get(part), dict) for part in
                                              ("inputs", "settings", "code")):
        return OLDER
    reasons = []
    if files := _changed(saved["code"], current["code"]):
        reasons.append("code changed: " + ", ".join(files))
    was, now = _flat(saved["settings"]), _flat(current["settings"])
    if keys := _changed(was, now):
        reasons.append("settings changed: " + ", ".join(f"{k} {was.get(k, 'unset')} -> {now.get(k, 'unset')}"
                                                        for k in keys))
    if names := _changed(saved["inputs"], current["inputs"]):
        reasons.append("input changed: " + ", ".join(
            f"{n} hash {_short(saved['inputs'].get(n))} -> {_short(current['inputs'].get(n))}" for n in names))
    return "; ".join(reasons) or None


def _changed(was: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ, or that only one side has."""
    return sorted(k for k in was.keys() | now.keys() if was.get(k, _ABSENT) != now.get(k, _ABSENT))


_ABSENT = object()


def _flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``train.lr``), so a change is named down to its key."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _short(value: Any) -> str:
    """A hash shortened for a log line (``none`` when absent)."""
    return "none" if value is None else str(value)[:12]


def kept_record(path: Path, current: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON record at ``path`` if its identity is ``current`` and its ``.safetensors`` are the weights it pins.

    What lets a finished run or a trained model be reused rather than made again; a damaged record, a damaged
    weights file, one that another run wrote, or one of other code, settings or inputs is named and treated
    as missing, so what the record described is made again (``write_record`` writes the pin).
    """
    if not (path.is_file() and path.with_suffix(".safetensors").is_file()):
        return None
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        print(f"{path} is unreadable ({exc}); making it again")
        return None
    if not isinstance(saved, dict):
        print(f"{path} holds a {type(saved).__name__}, not a record; making it again")
        return None
    if reason := mismatch(saved.get("identity"), current):
        print(f"stale {path}: {reason}; it counts as not done and is made again")
        return None
    weights = path.with_suffix(".safetensors")
    if saved.get("weights_sha256") != file_sha256(weights):  # damaged, or a later run's weights beside this record
        print(f"{weights} is not the file its record {path.name} describes (sha256 differs: damaged, or written "
              "by a run killed before its record); making it again")
        return None
    return saved


def write_record(path: Path, payload: dict[str, Any], ident: Mapping[str, Any]) -> Path:
    """Write a kept record after its ``.safetensors`` weights, with its identity and pinning the weights by sha256
    so only they can pair with it."""
    return write_json(path, payload | {"identity": dict(ident), "weights_sha256": file_sha256(
        path.with_suffix(".safetensors"))})
