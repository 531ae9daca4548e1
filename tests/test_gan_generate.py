"""Generated database: the documented layout read_folder reads, determinism, resumability, weight errors."""
import hashlib
from collections import Counter

import pytest

from fer_utils import identity
from fer_utils.config import ConfigError, load_config
from fer_utils.datasets import read_folder
from fer_utils.emotions import EMOTIONS
from fer_utils.gan import generate as gen


def tiny_cfg(weights, **overrides):
    sg, st = weights
    return load_config("quick", {"device": "cpu", "generate.stylegan2_weights": str(sg),
                                 "generate.stargan_weights": str(st), "generate.batch_size": 48, **overrides})


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def test_layout_is_what_read_folder_reads(tiny_weights, tmp_path):
    root = gen.generate_database(tiny_cfg(tiny_weights, **{"generate.units": 2}), tmp_path / "g", progress=False)
    samples = read_folder(root, "generated")
    assert len(samples) == 2 * 144 * 6
    per_split = Counter(s.extra["split"] for s in samples)
    assert per_split == {"train": 2 * 109 * 6, "val": 2 * 10 * 6, "test": 2 * 25 * 6}
    assert {EMOTIONS[s.label] for s in samples} == set(EMOTIONS)
    assert {s.subject[:4] for s in samples} == {"u00_", "u01_"}
    assert all(len([t for t in samples if t.subject == s.subject]) == 6 for s in samples[:12])
    sample = samples[0]
    emotion = EMOTIONS[sample.label]
    rel = f"{sample.extra['split']}/{emotion}/{sample.subject}/{sample.subject}_{emotion}.png"
    assert sample.path.endswith(rel)
    manifest = (root / gen.MANIFEST).read_text()
    assert '"units": 2' in manifest and '"sha256"' in manifest


def test_same_seed_same_bytes_and_an_interrupted_unit_is_redone(tiny_weights, tmp_path, monkeypatch):
    cfg = tiny_cfg(tiny_weights, **{"generate.units": 1})
    fresh = gen.generate_database(cfg, tmp_path / "a", progress=False)
    calls = {"n": 0}
    write = gen._write_png

    def crash(path, rgb):
        calls["n"] += 1
        if calls["n"] == 500:
            raise KeyboardInterrupt
        write(path, rgb)

    monkeypatch.setattr(gen, "_write_png", crash)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_database(cfg, tmp_path / "b", progress=False)
    monkeypatch.setattr(gen, "_write_png", write)
    assert not (tmp_path / "b" / ".u00.done.json").exists()
    resumed = gen.generate_database(cfg, tmp_path / "b", progress=False)
    assert digest(fresh) == digest(resumed) and len(digest(fresh)) == 144 * 6
    other = gen.generate_database(tiny_cfg(tiny_weights, **{"generate.units": 1, "generate.seed": 1}),
                                  tmp_path / "c", progress=False)
    assert digest(other) != digest(fresh)
    assert [p.name for p in (tmp_path / "b").iterdir() if p.name.endswith(".tmp")] == []


def test_a_unit_of_other_settings_or_code_is_named_and_made_again(tiny_weights, tmp_path, monkeypatch, capsys):
    """It used to be an error; a unit made by other code was reused as current."""
    cfg = tiny_cfg(tiny_weights, **{"generate.units": 1})
    root = gen.generate_database(cfg, tmp_path / "a", progress=False)
    before = digest(root)
    other = tiny_cfg(tiny_weights, **{"generate.units": 1, "generate.truncation_psi": 0.5})
    capsys.readouterr()
    gen.generate_database(other, root, progress=False)
    assert "generated unit 0 in" in capsys.readouterr().out
    assert digest(root).keys() == before.keys() and digest(root) != before
    monkeypatch.setitem(identity.CODE["generated"], "gan/stargan.py", "0" * 16)  # as if stargan.py was edited
    mark = (root / ".u00.done.json").stat().st_mtime_ns
    gen.generate_database(other, root, progress=False)
    assert "is stale: code changed: gan/stargan.py; deleted, made again" in capsys.readouterr().out
    mark, redone = (root / ".u00.done.json").stat().st_mtime_ns, mark
    assert mark != redone
    gen.generate_database(other, root, progress=False)
    assert "stale" not in capsys.readouterr().out and (root / ".u00.done.json").stat().st_mtime_ns == mark


def test_a_second_call_says_it_reused_the_units_and_generated_none(tiny_weights, tmp_path, capsys):
    cfg = tiny_cfg(tiny_weights, **{"generate.units": 1})
    gen.generate_database(cfg, tmp_path / "g", progress=False)
    assert capsys.readouterr().out.startswith("generated 1 units (144 identities x 6 expressions, ")
    gen.generate_database(cfg, tmp_path / "g", progress=False)
    out = capsys.readouterr().out
    assert out.startswith("reused 1 units (144 identities") and "nothing to generate" in out
    assert "identities/s" not in out  # no rate for work not done


def test_missing_weights_name_the_key_and_path(tiny_weights, tmp_path):
    cfg = tiny_cfg(tiny_weights, **{"generate.stargan_weights": str(tmp_path / "nope.safetensors")})
    with pytest.raises(ConfigError, match=r"generate\.stargan_weights: .*nope\.safetensors"):
        gen.generate_database(cfg, tmp_path / "g", progress=False)


def test_wrong_kind_of_weights_is_refused(tiny_weights, tmp_path):
    sg, _ = tiny_weights
    cfg = tiny_cfg(tiny_weights, **{"generate.stargan_weights": str(sg)})
    with pytest.raises(ConfigError, match="not a stargan generator"):
        gen.generate_database(cfg, tmp_path / "g", progress=False)


def test_split_sizes_follow_the_paper():
    assert Counter(gen.split_of()) == {"train": 109, "val": 10, "test": 25}
