"""Is the generated data any good? Four numbers for a pair of generators, all measured, none typed in.

1. expression transfer: a Table-1 CNN trained only on world AffectNet-like gray faces classifies
   StarGAN's translations of held-out AffectNet-like faces as the requested expression (%).
2. identity kept: each of a generated person's six expressions is nearer (cosine) to that person's
   source face than to any other person's source (%), in Fisherfaces fitted on rendered people
   (``identity.py``), beside the same share for other rendered people, whose six expressions are
   the world's own; also in raw gray pixels (mean-centred, 64x64). The generated faces are
   compared as StarGAN outputs them, aligned with their source.
3. diversity: nearest-neighbour RMS pixel distance (gray, [0, 1]) among generated identities, and
   how many pairs fall under ``DUPLICATE_RMS``; the same for as many real FFHQ-like faces.
4. Frechet distance in the CNN's penultimate space: generated faces vs held-out real faces, beside
   real training faces vs the same held-out faces (equal sample sizes).
Every face goes through the real data's preprocessing (Haar crop + margin, gray, 64x64) first.
The measures are pure functions (``measures.py``), the judging CNN lives in ``judge.py``; this module
measures a pair of generators, keeps the record beside them and tabulates it.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from ..config import Config, ConfigError, InputError
from ..emotions import EMOTIONS
from ..engine import predict
from ..evaluate import confusion
from ..identity import identity, mismatch
from ..preprocess import NO_FACE, load_database
from ..report import markdown_table
from ..runtime import file_sha256, write_json
from .checkpoints import data_fingerprint
from .data import gan_faces
from .features import LOW_PASS_SIGMA, cnn_input, low_pass, penultimate
from .identity import People, expression_crops, fisherfaces, flat
from .judge import expression_cnn
from .measures import diversity, frechet_distance, identity_kept, subsample
from .motion import ActingPeople, measure_motion
from .pipeline import Pipeline, latents, load_pipeline
from .shipped import PROVENANCE, SHIPPED, record_provenance, weights_path

# the generate keys the measures read (batch_size and the weights' paths are not: the weights count by hash)
QUALITY_SETTINGS = ("truncation_psi", "seed", "identity_people", "quality_identities", "judge_epochs",
                    "judge_faces", "stargan_ckpt_resolution")


def measure_quality(cfg: Config, pipe: Pipeline, people: ActingPeople, identity_renders: int = 8) -> dict[str, Any]:
    """The four quality numbers of ``pipe``'s generators (see the module docstring).

    Args:
        cfg: world data (``data.affectnet``, ``data.ffhq``), ``preprocess`` crop, ``train`` recipe, the
            judging CNN's budget (``generate.judge_epochs``, ``generate.judge_faces``), generated persons
            for diversity and the Frechet distance (``generate.quality_identities``), seeds.
        pipe: the generators to judge (``load_pipeline(cfg)``).
        people: known people for the identity space and the motion measure's AU regressor
            (``fer_utils.facegen.people.WorldPeople`` or yours).
        identity_renders: frames per person for the Fisherfaces (``generate.identity_people`` people).
    """
    margin, size, identities = cfg.preprocess.margin, cfg.preprocess.image_size, cfg.generate.quality_identities
    data = data_identity(cfg)
    model, cnn, real = expression_cnn(cfg)
    # 1. expression transfer on held-out faces (six targets each)
    held, held_labels = gan_faces(cfg, "affectnet", labelled=True, held_out=True)
    translated = cnn_input(pipe.translate(held).reshape(-1, *held.shape[1:]), margin, size)  # (N * 6, S, S)
    targets = np.tile(np.arange(len(EMOTIONS)), len(held))
    transfer = {"faces": len(held), **_read_as(model, translated, targets)}
    # marks are fine texture: read again without it, beside the judge on real faces without it
    transfer["low_passed"] = {"sigma_px": LOW_PASS_SIGMA, **_read_as(model, low_pass(translated), targets),
                              "real_accuracy": _read_as(model, low_pass(real["val"]), real["val_labels"])["accuracy"]}
    # 2-4. generated persons
    sources, expressions, centred = generated_persons(cfg, pipe)
    src_gray = cnn_input(sources, margin, size)
    expr_gray = cnn_input(expressions.reshape(-1, *sources.shape[1:]), margin, size)
    expr_feat = penultimate(model, expr_gray)
    gray_sources, gray_expressions = _gray(sources, size), _gray(expressions, size)  # aligned, as StarGAN gives them
    kept = _identity_kept(cfg, people, gray_sources, gray_expressions, identity_renders)
    moved = measure_motion(cfg, people, gray_sources, gray_expressions)
    ffhq, _ = gan_faces(cfg, "ffhq", labelled=False)
    real_ids = cnn_input(pipe.crop(subsample(ffhq, identities, 0))[0], margin, size)
    n = min(len(real["val"]), len(expr_feat))
    val_feat = penultimate(model, real["val"][:n])
    train_feat = penultimate(model, subsample(real["train"], n, 1))
    frechet = {"samples": n, "generated_vs_real_heldout": frechet_distance(subsample(expr_feat, n, 2), val_feat),
               "real_train_vs_real_heldout": frechet_distance(train_feat, val_feat)}
    return {"expression_cnn": cnn, "expression_transfer": transfer, "identity_kept": kept, "motion": moved,
            "diversity": {"generated": diversity(src_gray), "real_ffhq": diversity(real_ids)},
            "frechet_cnn": frechet, "truncation_psi": pipe.psi, "data": data,
            "crops_centred": centred}


def generated_persons(cfg: Config, pipe: Pipeline) -> tuple[np.ndarray, np.ndarray, int]:
    """``generate.quality_identities`` persons (sources (N, S, S, 3), six expressions (N, 6, S, S, 3)) from latents
    that are not the database's, and how many crops fell back to the image centre."""
    identities, batch = cfg.generate.quality_identities, cfg.generate.batch_size
    z = latents(cfg.generate.seed + 1000, 0, identities, pipe.stylegan2.z_dim)
    parts = [pipe(z[i:i + batch]) for i in range(0, identities, batch)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            sum(p[2].count(NO_FACE) for p in parts))


def motion_of(cfg: Config, pipe: Pipeline, people: ActingPeople) -> dict[str, Any]:
    """The moved-features measure alone (``motion.measure_motion``) for the generated persons, without a judge."""
    sources, expressions, _ = generated_persons(cfg, pipe)
    size = cfg.preprocess.image_size
    return measure_motion(cfg, people, _gray(sources, size), _gray(expressions, size))


def _read_as(model: nn.Module, gray: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """How often the judge reads gray faces (N, S, S) as their target class: overall, per class, confusion."""
    read = predict(model, gray).argmax(1)
    hit = read == targets
    return {"accuracy": float(hit.mean()),
            "per_class": {name: float(hit[targets == k].mean()) for k, name in enumerate(EMOTIONS)},
            "confusion": confusion(read, targets)[0].tolist()}  # rows: requested, columns: read as


def data_identity(cfg: Config) -> dict[str, str]:
    """What the numbers are measured on: hashes of the judge's AffectNet-like faces, the held-out faces StarGAN
    translates and the FFHQ-like faces it is compared with (cached arrays: seconds once preprocessed)."""
    held, held_labels = gan_faces(cfg, "affectnet", labelled=True, held_out=True)
    ffhq, _ = gan_faces(cfg, "ffhq", labelled=False)
    return {"affectnet": load_database(cfg, "affectnet").meta["source"]["hash"],
            "affectnet_heldout": data_fingerprint(held, held_labels)[:16], "ffhq": data_fingerprint(ffhq)[:16]}


def _identity_kept(cfg: Config, source: People, sources: np.ndarray, expressions: np.ndarray,
                   renders: int) -> dict[str, Any]:
    """Identity kept by the generators (gray sources (N, S, S), expressions (N, 6, S, S)) and in the world.

    The reference asks the same of rendered people the Fisherfaces were not fitted on.
    """
    people = cfg.generate.identity_people
    space, info = fisherfaces(cfg, source, people, renders)
    n_id = min(len(sources), 200)  # 1 in 200 by chance
    ref_src, ref_expr = expression_crops(cfg, source, range(people, people + n_id))

    def kept_in(project, src: np.ndarray, expr: np.ndarray) -> float:
        return identity_kept(project(expr).reshape(n_id, 6, -1), project(src))

    return {"persons": n_id, "chance": 1 / n_id, "fisherfaces": info,
            "fisherfaces_generated": kept_in(lambda g: space.transform(flat(g)), sources[:n_id], expressions[:n_id]),
            "fisherfaces_rendered_people": kept_in(lambda g: space.transform(flat(g)), ref_src, ref_expr),
            "gray_pixels": kept_in(lambda g: _centred(flat(g)), sources[:n_id], expressions[:n_id]),
            "gray_pixels_rendered_people": kept_in(lambda g: _centred(flat(g)), ref_src, ref_expr)}


def _gray(rgb: np.ndarray, size: int) -> np.ndarray:
    """RGB faces (..., H, W, 3) -> gray (..., size, size), without re-cropping."""
    flat_rgb = rgb.reshape(-1, *rgb.shape[-3:])
    out = np.stack([cv2.resize(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), (size, size), interpolation=cv2.INTER_AREA)
                    for x in flat_rgb])
    return out.reshape(*rgb.shape[:-3], size, size)


def _centred(rows: np.ndarray) -> np.ndarray:
    """Face rows minus their mean face, so cosine compares what differs between faces."""
    return rows - rows.mean(0)


def quality_table(q: dict[str, Any]) -> str:
    """The four measurements of ``measure_quality`` as a markdown table, each beside its target."""
    t, k, d, f = q["expression_transfer"], q["identity_kept"], q["diversity"], q["frechet_cnn"]
    judge = q["expression_cnn"]
    on_real = judge.get("val_accuracy_real_per_class", {})  # absent from records made before it was kept
    misread = _misread(t.get("confusion"))  # absent from records made before it was kept
    per_class = ", ".join(f"{name} {acc:.0%}" + (f" (real {on_real[name]:.0%})" if name in on_real else "")
                          + (f" [{misread[name]}]" if name in misread else "")
                          for name, acc in t["per_class"].items())
    if on_real:
        per_class += "; in brackets the CNN on real faces of that class"
    if misread:
        per_class += "; in square brackets what it reads most often instead"
    gen, real = d["generated"], d["real_ffhq"]
    rows = [
        ("expression transfer: CNN (real faces only) reads the requested expression",
         "≥ 85 %", f"{t['accuracy']:.1%} of {t['faces']} held-out faces × 6 ({per_class}); "
                   f"the CNN's own real validation accuracy {judge['val_accuracy_real']:.1%} "
                   f"({judge['train_faces']} training faces, best epoch {judge['best_epoch']} of {judge['epochs']}, "
                   f"{judge.get('precision', 'fp32')})"),
        ("identity kept: nearest source (cosine, Fisherfaces) is the person's own",
         "≥ 90 %", f"{k['fisherfaces_generated']:.1%} of {k['persons']} persons × 6 (chance {k['chance']:.1%}); "
                   f"rendered people's own six expressions: {k['fisherfaces_rendered_people']:.1%} "
                   f"(Fisherfaces fitted on {k['fisherfaces']['people']} other rendered people)"),
        ("identity kept: same, in mean-centred gray pixels", "—",
         f"{k['gray_pixels']:.1%}; rendered people: {k['gray_pixels_rendered_people']:.1%}"),
        (f"diversity: near-duplicate identities (nearest-neighbour RMS < {gen['threshold_rms']})",
         "0", f"{gen['near_duplicates']} of {gen['faces']} (min RMS {gen['nn_rms_min']:.3f}, median "
              f"{gen['nn_rms_median']:.3f}); real FFHQ-like: {real['near_duplicates']} of {real['faces']} "
              f"(median {real['nn_rms_median']:.3f})"),
        ("Fréchet distance (CNN features) to held-out real faces", "near the real-real value",
         f"generated {f['generated_vs_real_heldout']:.3g} vs real training faces {f['real_train_vs_real_heldout']:.3g} "
         f"({f['samples']} faces each)"),
    ]
    return markdown_table(("measure", "target", "this run"), rows + _issue38_rows(q))


def _issue38_rows(q: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Transfer on low-passed faces and the moved-features measure, where the record has them (not older ones)."""
    rows = []
    low = q["expression_transfer"].get("low_passed")
    if low:
        rows.append((f"expression transfer on faces low-passed by a {low['sigma_px']}-px Gaussian",
                     "≥ 80 %, within 5 points of plain",
                     f"{low['accuracy']:.1%}; the CNN on low-passed real faces {low['real_accuracy']:.1%}"))
    moved = q.get("motion")
    if moved:
        per = ", ".join(f"{name} {m['fraction']:.2f} (pasted mark {moved['negative_control'][name]['fraction']:.2f})"
                        for name, m in moved["generated"].items())
        rows.append(("moved features: fraction of the world's apex motion (its mean mark pasted back)",
                     "≥ 0.5; pasted marks read neutral ≥ 80 %",
                     f"{per}; controls pass: positive {moved['positive_passes']}, negative {moved['negative_passes']}"))
    return rows


def _misread(counts: list[list[int]] | None) -> dict[str, str]:
    """For each requested expression, the other expression the CNN reads most often, with its share."""
    if counts is None:
        return {}
    out = {}
    for k, row in enumerate(np.asarray(counts)):
        others = row.copy()
        others[k] = -1
        j = int(others.argmax())
        if row.sum() and others[j] > 0:
            out[EMOTIONS[k]] = f"{EMOTIONS[j]} {others[j] / row.sum():.0%}"
    return out


def quality_identity(cfg: Config, weights: dict[str, str | Path]) -> dict[str, Any]:
    """What a quality record's numbers depend on (``fer_utils.identity``, kind ``quality``): the two generators'
    weights and the faces measured on (hashes), every setting the measures read, and the measuring code.

    The settings are the ones named, not what they resolve to here (``train.precision`` "auto" stays "auto"):
    a CPU without bf16 units reuses the record its judge made in bf16 (the table says which) rather than
    spending ~50 min to measure again in fp32.
    """
    g = cfg.generate
    inputs = {f"{model}_weights": file_sha256(path) for model, path in weights.items()} | data_identity(cfg)
    settings = {"preset": cfg.preset, "gan_resolution": cfg.gan.resolution,
                "generate": {key: getattr(g, key) for key in QUALITY_SETTINGS},
                "preprocess": {"margin": cfg.preprocess.margin, "image_size": cfg.preprocess.image_size},
                "judge_recipe": {k: v for k, v in dataclasses.asdict(cfg.train).items() if k != "epochs"}}
    return identity("quality", inputs, settings)


def recorded_quality(cfg: Config) -> dict[str, Any] | None:
    """The numbers ``quality --ship`` recorded beside the shipped weights, if they describe this configuration.

    They do when the configured weights are the shipped files and the record's identity (``quality_identity``:
    the weights' and the faces' hashes, the measures' settings, the quality code) is the one this code and this
    configuration give; otherwise what differs is printed and the caller measures again (about 50 min on
    2 CPU cores, a fitted CNN and Fisherfaces), so ``make reproduce`` shows a record only while it is current.
    """
    pipe_paths = {model: weights_path(cfg, model) for model in SHIPPED}
    shipped = all(path.resolve() == SHIPPED[model].resolve() for model, path in pipe_paths.items())
    if not shipped or not PROVENANCE.is_file():
        return None
    q = json.loads(PROVENANCE.read_text()).get(SHIPPED["stargan"].name, {}).get("quality")
    if not q:
        return None
    try:
        current = quality_identity(cfg, pipe_paths)
    except InputError as exc:  # measuring will name what is missing
        print(f"the quality record cannot be checked against the data ({exc}); measuring instead")
        return None
    if reason := mismatch(q.get("identity"), current):
        print(f"the quality record beside the shipped weights ({PROVENANCE.name}) does not describe this "
              f"configuration: {reason}; measuring instead")
        return None
    return q


def quality_of(cfg: Config, people: People) -> dict[str, Any]:
    """The generators' quality: recorded (``generate.reuse_quality`` and a matching record) or measured."""
    q = recorded_quality(cfg) if cfg.generate.reuse_quality else None
    if q is None:
        return report_quality(cfg, people)
    print(f"quality recorded beside the shipped weights ({PROVENANCE.name}, preset {q['preset']}); "
          f"`python -m fer_utils quality --preset {cfg.preset}` measures it again")
    write_json(cfg.path(cfg.results_dir) / "gan" / "quality.json", q)
    return q


def report_quality(cfg: Config, people: People, ship: bool = False) -> dict[str, Any]:
    """Measure the configured generators and save the numbers in ``results_dir/gan/quality.json``.

    With ``ship`` the numbers also go into the shipped weights' provenance, but only when the
    configured weights are the shipped files (numbers must describe the weights they sit beside).
    """
    pipe, paths = load_pipeline(cfg)
    q = measure_quality(cfg, pipe, people)
    q["weights"] = {model: {"path": path, "sha256": file_sha256(path)} for model, path in paths.items()}
    q["preset"] = cfg.preset
    q["identity"] = quality_identity(cfg, paths)
    write_json(cfg.path(cfg.results_dir) / "gan" / "quality.json", q)
    if ship:
        shipped = {model: path for model, path in SHIPPED.items() if Path(paths[model]).resolve() == path.resolve()}
        if len(shipped) != len(paths):
            raise ConfigError("quality --ship: generate.*_weights point away from the shipped files; "
                              "the numbers would not describe them")
        for path in shipped.values():
            record_provenance(path.name, q, key="quality")
    return q
