"""One identity for every kept result: what a change of code, settings or input is named as, and which source each
kind of result depends on (editing a figure module must redo nothing)."""
from __future__ import annotations

import shutil

from fer_utils import identity


def test_a_changed_source_file_is_named_by_its_path(tmp_path) -> None:
    """Hash a copy of the package, edit a Dropout in it as issue 37 did: only models/cnn.py is named."""
    package = shutil.copytree(identity.PACKAGE, tmp_path / "fer_utils",
                              ignore=shutil.ignore_patterns("__pycache__"))
    before = identity.code_hashes("classifier", package)
    cnn = package / "models" / "cnn.py"
    source = cnn.read_text()
    assert "Dropout(" in source
    cnn.write_text(source.replace("Dropout(", "Dropout(0.0 * ", 1))
    now = identity.code_hashes("classifier", package)
    assert before == identity.CODE["classifier"]
    saved = {"inputs": {}, "settings": {}, "code": before}
    assert identity.mismatch(saved, {"inputs": {}, "settings": {}, "code": now}) == "code changed: models/cnn.py"
    world = identity.code_hashes("world", package)
    for unrelated in ("plots.py", "uncertainty.py", "facegen/figures.py"):  # figures and statistics redo nothing
        (package / unrelated).write_text((package / unrelated).read_text() + "\n# edited\n")
    assert identity.code_hashes("classifier", package) == now and identity.code_hashes("world", package) == world


def test_each_kind_depends_on_the_code_that_decides_its_numbers_only() -> None:
    code = identity.CODE
    assert {"engine.py", "evaluate.py", "models/cnn.py", "models/vgg.py"} <= code["classifier"].keys()
    assert {"gan/generate.py", "gan/pipeline.py", "gan/stargan.py", "gan/stylegan2.py"} <= code["generated"].keys()
    assert {"gan/trainer.py", "gan/train_stargan.py", "gan/stargan.py"} <= code["gan-training"].keys()
    assert {"preprocess.py", "datasets/rafd.py"} <= code["crops"].keys()
    # the quality record: its measures and the rendered people its identity space and motion regressor fit on
    assert {"gan/quality.py", "gan/motion.py", "facegen/people.py", "engine.py"} <= code["quality"].keys()
    assert {"filtering.py", "gan/generate.py"} <= code["filtered"].keys()
    assert "facegen/people.py" not in code["world"]  # the databases do not draw on it
    for kind, files in code.items():  # figures, tables, statistics and entry points change no kept number
        assert not {"plots.py", "uncertainty.py", "report.py", "results.py", "cli.py", "sweep.py",
                    "facegen/figures.py", "gan/figures.py"} & files.keys(), kind


def test_every_changed_part_is_named() -> None:
    saved = identity.identity("classifier", {"rafd": "a" * 16}, {"train": {"lr": 0.001, "epochs": 2}})
    now = identity.identity("classifier", {"rafd": "b" * 16}, {"train": {"lr": 0.01, "epochs": 2}})
    now["code"] = saved["code"] | {"engine.py": "0" * 16}
    assert identity.mismatch(saved, now) == ("code changed: engine.py; settings changed: train.lr 0.001 -> 0.01; "
                                             f"input changed: rafd hash {'a' * 12} -> {'b' * 12}")
    assert identity.mismatch(saved, saved) is None
    assert identity.mismatch(None, now) == identity.mismatch({"settings": {}}, now) == identity.OLDER


def test_an_identity_compares_equal_after_a_json_round_trip() -> None:
    ident = identity.identity("world", {}, {"size": (64, 64)})
    assert ident["settings"]["size"] == [64, 64] and identity.digest(ident) == identity.digest(dict(ident))
