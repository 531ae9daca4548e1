"""The shipping criterion's controls, and where generated faces lose what real ones teach.

The criterion (``criterion.py``) trains experiment 2's CNN on one unit of a generator's faces and scores it
on the real validation subjects. Like every measure it needs a positive and a negative control, and the same
machinery, fed other faces, splits the gap between what generated and real faces teach:

- positive control, ``world apexes``: rendered world persons (``WorldPeople``, in no database) neutral and at
  their own six apexes, cropped as StarGAN's inputs are: what a perfect generator would give. The criterion
  must read them near real-only, or it cannot tell a good generator either;
- ``world apexes, AffectNet-like style``: the same persons at the same apexes in the AffectNet-like world's
  camera, light, pose, occluders, blur and expression variability: beside the positive control, what that
  style costs; beside ``StarGAN's training faces``, what its labels (intensities, ambiguity) cost;
- ``world apexes, AffectNet-like style and intensities``: those faces again, each expression at an intensity drawn
  from 0.3 to 1.0 as the AffectNet-like database's labelled faces are: beside the arm above, what those
  intensities cost; beside ``StarGAN's training faces``, what is left (other persons per expression, JPEG);
- negative control, ``neutral under six labels``: the candidate's own neutral sources filed under all six
  expressions, so that no class differs from another: faces that move nothing must teach nothing (chance);
- ``StarGAN on world identities``: the world's FFHQ-like faces (what StyleGAN2 learned from) translated by
  the candidate StarGAN. Beside the candidate it prices StyleGAN2's identities; beside the positive
  control, StarGAN's expressions;
- ``StarGAN's training faces``: the labelled AffectNet(-like) faces StarGAN learns expressions from, 144 of
  each: what the best StarGAN could copy, in its own domain. Beside the positive control it says how far
  StarGAN's data, before any GAN, teach the real databases' expressions;
- ``StarGAN's training faces, strongest by valence and arousal``: of each expression's training faces, the 144
  whose annotated (valence, arousal) lie farthest from neutral's (0, 0). Real AffectNet annotates both, so a
  StarGAN could be trained on such a choice; beside the arm above, what that choice would give.

Each arm writes unit 0 of a generated database under ``results_dir/criterion/controls/<arm>/`` and is scored
by ``criterion.taught``, as a candidate is: the real validation subjects only.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import uncertainty
from .config import Config, DataError
from .criterion import synthetic_only_text, taught
from .emotions import EMOTIONS
from .gan.data import STARGAN_DOMAINS, gan_faces, gan_samples, strongest_first, valence_arousal_strength
from .gan.generate import IDENTITIES_PER_UNIT, split_of, write_identity
from .gan.motion import ActingPeople
from .gan.pipeline import Pipeline, latents, load_pipeline
from .report import markdown_table

AFFECTNET_INTENSITY = (0.3, 1.0)  # how intensely the AffectNet-like labelled faces act (writers.affectnet_job)
FIRST_PERSON = 100_000  # the positive control's people: past those the identity check and the AU regressor fit on
CHANCE = 1 / len(EMOTIONS)


def world_apexes(cfg: Config, pipe: Pipeline, people: ActingPeople) -> np.ndarray:
    """Positive control: rendered persons at their six apexes (N, 6, S, S, 3), each frame cropped as StarGAN's
    inputs are (the real data's crop at StarGAN's size)."""
    frames = people.expressions(range(FIRST_PERSON, FIRST_PERSON + IDENTITIES_PER_UNIT))[:, 1:]
    crops = pipe.crop(frames.reshape(-1, *frames.shape[2:]))[0]
    return crops.reshape(*frames.shape[:2], *crops.shape[1:])


def world_apexes_affectnet_style(cfg: Config, pipe: Pipeline, people: ActingPeople) -> np.ndarray:
    """The positive control's persons and apexes in the AffectNet-like style (``people`` a ``WorldPeople``)."""
    return world_apexes(cfg, pipe, dataclasses.replace(people, style="affectnet"))


def world_apexes_affectnet_intensities(cfg: Config, pipe: Pipeline, people: ActingPeople) -> np.ndarray:
    """The AffectNet-like style arm's persons, each expression at an intensity drawn as the AffectNet-like
    database's labels are (``AFFECTNET_INTENSITY``)."""
    return world_apexes(cfg, pipe, dataclasses.replace(people, style="affectnet", apex_intensity=AFFECTNET_INTENSITY))


def neutral_under_six_labels(cfg: Config, pipe: Pipeline, people: ActingPeople) -> np.ndarray:
    """Negative control: the candidate's unit-0 sources, unchanged, once per expression (N, 6, S, S, 3)."""
    sources = pipe(latents(cfg.generate.seed, 0, IDENTITIES_PER_UNIT, pipe.stylegan2.z_dim))[0]
    return np.repeat(sources[:, None], len(EMOTIONS), axis=1)


def stargan_on_world_identities(cfg: Config, pipe: Pipeline, people: ActingPeople) -> np.ndarray:
    """The world's FFHQ-like faces, cropped, in the candidate StarGAN's six expressions (N, 6, S, S, 3)."""
    ffhq, _ = gan_faces(cfg, "ffhq", labelled=False)
    return pipe.translate(pipe.crop(ffhq[:IDENTITIES_PER_UNIT])[0])


def stargan_training_faces(cfg: Config, pipe: Pipeline, people: ActingPeople) -> np.ndarray:
    """The first 144 faces of each expression in StarGAN's training list (N, 6, R, R, 3), filed as 144 "identities"
    (each a different person per expression: only the splits group them)."""
    faces, labels = gan_faces(cfg, "affectnet", labelled=True)
    return _per_expression(faces, labels, {name: np.flatnonzero(labels == STARGAN_DOMAINS.index(name))
                                           for name in EMOTIONS})


def stargan_training_faces_strongest(cfg: Config, pipe: Pipeline, people: ActingPeople) -> np.ndarray:
    """As ``stargan_training_faces``, each expression's 144 faces farthest from neutral in (valence, arousal);
    faces without both annotations are not chosen."""
    faces, labels = gan_faces(cfg, "affectnet", labelled=True)
    samples, _ = gan_samples(cfg, "affectnet", labelled=True)
    if len(samples) != len(faces):
        raise DataError(f"data.affectnet: {len(samples)} training faces listed but {len(faces)} cropped (unreadable "
                        "images): their valence and arousal cannot be matched to the faces")
    strength = valence_arousal_strength(samples)
    chosen = {name: strongest_first(strength, np.flatnonzero(labels == STARGAN_DOMAINS.index(name)))
              for name in EMOTIONS}
    return _per_expression(faces, labels, chosen)


def _per_expression(faces: np.ndarray, labels: np.ndarray, chosen: dict[str, np.ndarray]) -> np.ndarray:
    """The first 144 of each expression's ``chosen`` faces as a unit (144, 6, R, R, 3); a short class is named."""
    if short := {name: len(idx) for name, idx in chosen.items() if len(idx) < IDENTITIES_PER_UNIT}:
        raise DataError(f"data.affectnet has fewer than {IDENTITIES_PER_UNIT} training faces of "
                        + ", ".join(f"{name} ({n})" for name, n in short.items()))
    return np.stack([faces[chosen[name][:IDENTITIES_PER_UNIT]] for name in EMOTIONS], axis=1)


ARMS: dict[str, Callable[[Config, Pipeline, ActingPeople], np.ndarray]] = {
    "world apexes": world_apexes, "world apexes, AffectNet-like style": world_apexes_affectnet_style,
    "world apexes, AffectNet-like style and intensities": world_apexes_affectnet_intensities,
    "neutral under six labels": neutral_under_six_labels,
    "StarGAN on world identities": stargan_on_world_identities, "StarGAN's training faces": stargan_training_faces,
    "StarGAN's training faces, strongest by valence and arousal": stargan_training_faces_strongest}


def write_unit(root: Path, faces: np.ndarray) -> Path:
    """``faces`` (144, 6, S, S, 3) RGB as unit 0 of a generated database at ``root`` (``generate``'s layout and
    splits), written beside it and swapped in whole."""
    if faces.shape[:2] != (IDENTITIES_PER_UNIT, len(EMOTIONS)):
        raise ValueError(f"a unit is {IDENTITIES_PER_UNIT} identities x {len(EMOTIONS)} expressions, "
                         f"got {faces.shape[:2]}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.", suffix=".tmp"))
    try:
        for k, (split, six) in enumerate(zip(split_of(), faces)):
            write_identity(tmp / split, 0, k, six)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def arm_folder(arm: str) -> str:
    """An arm's folder name: its words joined by hyphens, without punctuation."""
    return "-".join("".join(c for c in arm if c.isalnum() or c in " -").split())


def arm_config(cfg: Config, arm: str) -> Config:
    """``cfg`` with its generated unit and runs under ``results_dir/criterion/controls/<arm>/``."""
    folder = Path(cfg.results_dir) / "criterion" / "controls" / arm_folder(arm)
    return dataclasses.replace(cfg, results_dir=str(folder),
                               data=dataclasses.replace(cfg.data, generated=str(folder / "generated")))


def teaching_controls(cfg: Config, people: ActingPeople, arms: tuple[str, ...] = tuple(ARMS),
                      seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    """What each arm's faces teach on the real validation subjects (``criterion.taught``, one run per seed), by arm.

    A run is reused while its faces hash the same (``fer_utils.identity``), so a rerun only rewrites the PNGs.
    """
    pipe, _ = load_pipeline(cfg)
    out = {}
    for arm in arms:
        arm_cfg = arm_config(cfg, arm)
        write_unit(Path(arm_cfg.data.generated), ARMS[arm](cfg, pipe, people))
        out[arm] = taught(arm_cfg, cfg, seeds)
    return out


def controls_table(controls: dict[str, Any], candidate: dict[str, Any] | None = None) -> str:
    """Markdown: each arm's synthetic-only accuracy on the validation subjects (mean over seeds, 95 % interval over
    subjects and seeds), per class, beside real-only."""
    rows = []
    for arm, t in [*controls.items(), *([(CANDIDATE, candidate)] if candidate else [])]:
        per_class = ", ".join(f"{name} {v:.0%}" for name, v in (t["per_class"]["synthetic_only"] or {}).items())
        rows.append((arm, synthetic_only_text(t), per_class or "—"))
    real = next(iter(controls.values()))
    low, high = real["real_only_interval"]
    rows.append(("real faces only (experiment 1)", f"{real['real_only']:.1%} [{low:.1%}, {high:.1%}]",
                 ", ".join(f"{name} {v:.0%}" for name, v in real["per_class"]["real_only"].items())))
    return markdown_table(("trained on (one unit, experiment 2's recipe)", "real validation subjects", "per class"),
                          rows) + f"\n\nChance is {CHANCE:.1%}."


CANDIDATE = "the candidate"
# Each step from a perfect generator down to the candidate, and what the step prices (docs/generators.md); Holm's
# adjustment runs over every step measured.
STEPS = (("world apexes", "world apexes, AffectNet-like style", "the AffectNet-like style"),
         ("world apexes, AffectNet-like style", "world apexes, AffectNet-like style and intensities",
          "the AffectNet-like labels' intensities"),
         ("world apexes, AffectNet-like style and intensities", "StarGAN's training faces",
          "the rest of StarGAN's data (another person per expression, JPEG)"),
         ("StarGAN's training faces", "StarGAN's training faces, strongest by valence and arousal",
          "choosing StarGAN's data by valence and arousal"),
         ("StarGAN's training faces", "StarGAN on world identities", "StarGAN against its own data"),
         ("StarGAN on world identities", CANDIDATE, "StyleGAN2's identities against the world's"),
         # the two spans the steps above split: the data StarGAN learns from, then both GANs
         ("world apexes", "StarGAN's training faces", "StarGAN's data in all, before any GAN"),
         ("StarGAN's training faces", CANDIDATE, "both GANs in all"),
         # StarGAN (with all it learned from its data) against true expressions on the same kind of identities:
         # unlike its training faces, both arms show one person in all six expressions
         ("world apexes", "StarGAN on world identities", "StarGAN in all, on FFHQ-like identities"))


def step_differences(controls: dict[str, Any], candidate: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each ``STEPS`` difference whose two arms were measured: the accuracy lost (``uncertainty.difference``: seeds
    unpaired, validation subjects paired) with Holm's adjustment over the steps measured, and its reading."""
    arms = controls | ({CANDIDATE: candidate} if candidate else {})
    steps = [(a, b, what) for a, b, what in STEPS
             if a in arms and b in arms and arms[a]["synthetic_only"] is not None
             and arms[b]["synthetic_only"] is not None]
    runs = {arm: arms[arm]["by_subject"]["synthetic_only"] for step in steps for arm in step[:2]}
    estimates = [uncertainty.difference(runs[a], runs[b]) for a, b, _ in steps]
    adjusted = uncertainty.holm([e.p_value for e in estimates]) if estimates else []
    out = []
    for (a, b, what), e, p in zip(steps, estimates, adjusted):
        verdict = ("costs" if e.value > 0 else "gains") if p < 0.05 else "no verdict"
        out.append({"from": a, "to": b, "prices": what, "difference": e.value, "interval": [e.low, e.high],
                    "p_holm": p, "seeds": e.seeds_text(), "reading": verdict})
    return out


def steps_table(steps: list[dict[str, Any]]) -> str:
    """Markdown: what each step costs, its interval and Holm-adjusted p, and the reading."""
    rows = [(s["prices"], f"{s['from']} → {s['to']}",
             f"{100 * s['difference']:+.1f} pts [{100 * s['interval'][0]:+.1f}, {100 * s['interval'][1]:+.1f}]",
             f"{s['p_holm']:.3g}", s["reading"]) for s in steps]
    return markdown_table(("step", "arms", "accuracy lost (95 % interval)", "p (Holm)", "reading"), rows)
