"""Typed, validated parameters: one place for presets, paths and seeds.

A preset is a YAML file under ``params/`` (``quick``, ``default``, ``paper``) or any YAML path
of the same schema. Every section is a frozen dataclass named after the paper's
hyper-parameters; unknown keys, wrong types and missing data paths raise ``ConfigError``
naming the offending key or path.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS_DIR = ROOT / "params"
PRESETS = ("quick", "default", "paper")
PRECISIONS = ("auto", "fp32", "bf16")  # train.precision
EXECUTORS = ("serial", "local", "dask", "slurm")  # sweep.executor (fer_utils.executors)
FILTERS = ("none", "confidence")  # generate.filter (fer_utils.filtering)
STARGAN_HEADS = ("image", "warp")  # gan.stargan_head (fer_utils.gan.stargan.Generator)
ARMS = ("real", "synth", "mix", "mix-filtered")  # sweep.arms: the experiment grid's lines (fer_utils.sweep)
EXPERIMENTS = (*ARMS, "vgg")  # what fer_utils.experiments trains (vgg: §4.4, notebook 07)
PROJECT_DATA = ROOT / "data"  # the embedded world is written only under PROJECT_DATA/<preset>/world/
WORLD_MANIFEST = "WORLD_MANIFEST.json"  # written last by fer_utils.facegen: marks a complete world database
WORLD_INCOMPLETE = ".world_incomplete"  # marks a world database fer_utils.facegen began and may rewrite
WORLD_DATABASES = ("rafd", "oulu", "mmi", "ckplus", "affectnet", "ffhq")  # what the embedded world can stand in for
EXPERIMENT_DATABASES = ("rafd", "oulu", "mmi", "ckplus")  # trained on (rafd, oulu) and tested on


class InputError(ValueError):
    """Something the user must fix (a setting, their data, a weights file): the message names it and says how.

    The command line prints such an error as one line and exits 2, without a traceback.
    """


class ConfigError(InputError):
    """A parameter file or override is invalid; the message names the key or path."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key  # the dotted setting at fault, so the reader can say which file or --set gave it


class DataError(InputError):
    """A configured database is missing, empty or not in the layout its adapter reads; names key, path, layout."""


class WeightsError(InputError):
    """A weights or checkpoint file cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Rule:
    """What values a setting accepts: a range (bounds open or closed) or a set of choices; applies to list items."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    nonempty: bool = False  # a list setting must name at least one item

    def accepts(self, value: Any) -> bool:
        """Whether one (scalar) value satisfies the rule."""
        if self.choices:
            return value in self.choices
        return not ((self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo))
                    or (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)))

    def __str__(self) -> str:
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.lo is not None and self.hi is not None:
            return f"within {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"


AT_LEAST_1 = Rule(1)
NON_NEGATIVE = Rule(0)
POSITIVE = Rule(0, lo_open=True)
FRACTION = Rule(0, 1, lo_open=True, hi_open=True)


class Checked:
    """Mixin: validate a section's fields against its ``RULES`` when it is made, naming ``SECTION.key``."""

    SECTION: ClassVar[str] = ""
    RULES: ClassVar[dict[str, Rule]] = {}

    def __post_init__(self) -> None:
        """Reject an out-of-range or unknown-choice value when the preset is read, not an hour into a run."""
        for name, rule in self.RULES.items():
            value = getattr(self, name)
            key = f"{self.SECTION}.{name}" if self.SECTION else name
            if isinstance(value, list):
                if rule.nonempty and not value:
                    raise ConfigError(f"{key} must name at least one value ({rule})", key=key)
                bad = [v for v in value if not rule.accepts(v)]
            else:
                bad = [] if rule.accepts(value) else [value]
            if bad:
                raise ConfigError(f"{key} must be {rule}, got {bad[0]!r}", key=key)


@dataclass(frozen=True)
class WorldConfig(Checked):
    """Sizes of the embedded face world (``fer_utils.facegen``), one subject pool per database."""

    SECTION = "world"
    RULES = {"seed": NON_NEGATIVE, "image_size": Rule(32), "rafd_subjects": AT_LEAST_1, "oulu_subjects": AT_LEAST_1,
             "mmi_subjects": AT_LEAST_1, "ckplus_subjects": AT_LEAST_1, "affectnet_images": AT_LEAST_1,
             "ffhq_images": AT_LEAST_1}

    seed: int = 0
    image_size: int = 128  # rendered side in pixels, before the database's own framing
    rafd_subjects: int = 67
    oulu_subjects: int = 80
    mmi_subjects: int = 30
    ckplus_subjects: int = 120
    affectnet_images: int = 20000
    ffhq_images: int = 10000


@dataclass(frozen=True)
class DataConfig:
    """Where each database lives on disk; relative paths are taken from the project root.

    A path ``data/<preset>/world/<database>`` inside the project is the embedded world's, written
    when missing; any other path is your copy, and a missing or empty one is an error.
    """

    rafd: str = "data/default/world/rafd"
    oulu: str = "data/default/world/oulu"
    mmi: str = "data/default/world/mmi"
    ckplus: str = "data/default/world/ckplus"
    affectnet: str = "data/default/world/affectnet"
    ffhq: str = "data/default/world/ffhq"
    fer2013: str = ""  # optional, not used by the paper's experiments: fer2013.csv or the folder holding it
    generated: str = "data/default/generated"
    cache: str = "data/default/cache"


@dataclass(frozen=True)
class PreprocessConfig(Checked):
    """Face crop, gray, resize (paper §3.2) and which frames of a sequence to keep."""

    SECTION = "preprocess"
    RULES = {"image_size": Rule(8), "margin": Rule(0, 1, hi_open=True), "sequence_frames": AT_LEAST_1,
             "workers": NON_NEGATIVE, "rafd_cameras": Rule(choices=("000", "045", "090", "135", "180"), nonempty=True),
             "oulu_modalities": Rule(choices=("VL", "NI"), nonempty=True),
             "oulu_lightings": Rule(choices=("Strong", "Weak", "Dark"), nonempty=True)}

    image_size: int = 64
    margin: float = 0.2  # extra border around the detected face box, as a fraction of its side
    sequence_frames: int = 3  # last N frames of a labelled sequence (CK+, Oulu), apex window (MMI)
    workers: int = 0  # 0 = one per CPU core
    rafd_cameras: list[str] = field(default_factory=lambda: ["090"])
    oulu_modalities: list[str] = field(default_factory=lambda: ["VL"])
    oulu_lightings: list[str] = field(default_factory=lambda: ["Strong"])


@dataclass(frozen=True)
class SplitConfig(Checked):
    """Subject-independent split of the real subjects (paper §4.1: 109/10/25 of 144)."""

    SECTION = "split"
    RULES = {"train_subjects": AT_LEAST_1, "val_subjects": AT_LEAST_1, "test_subjects": AT_LEAST_1,
             "seed": NON_NEGATIVE}

    train_subjects: int = 109
    val_subjects: int = 10
    test_subjects: int = 25
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig(Checked):
    """The authors' Keras recipe: Adam 1e-4 (decay 1e-6), batch 64, 50 epochs, patience 5."""

    SECTION = "train"
    RULES = {"epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "lr": POSITIVE, "lr_decay": NON_NEGATIVE,
             "patience": AT_LEAST_1, "seed": NON_NEGATIVE, "precision": Rule(choices=PRECISIONS)}

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-4
    lr_decay: float = 1e-6
    patience: int = 5
    seed: int = 0
    precision: str = "auto"  # auto = bf16 autocast where the device has bf16 units (GPU, AVX512-BF16), else fp32
    must_improve: bool = True  # a run that never validates below its untrained weights fails (engine.member_failure)


@dataclass(frozen=True)
class GanConfig(Checked):
    """GAN training (StarGAN: paper §3.1 / yunjey ``main.py`` names; StyleGAN2: NVlabs ``train.py`` names)."""

    SECTION = "gan"
    RULES = {"resolution": Rule(8), "stargan_iters": AT_LEAST_1, "stargan_batch_size": AT_LEAST_1,
             "stargan_g_conv_dim": AT_LEAST_1, "stargan_d_conv_dim": AT_LEAST_1, "stargan_g_repeat_num": NON_NEGATIVE,
             "stargan_d_repeat_num": AT_LEAST_1, "stargan_model_save_step": AT_LEAST_1, "n_critic": AT_LEAST_1,
             "lambda_cls": NON_NEGATIVE, "lambda_rec": NON_NEGATIVE, "lambda_gp": NON_NEGATIVE,
             "stargan_head": Rule(choices=STARGAN_HEADS), "stargan_max_shift": Rule(0, 2, lo_open=True),
             "stargan_residual_bound": Rule(0, 2), "stargan_lambda_res": NON_NEGATIVE,
             "stargan_strongest_share": Rule(0, 1, lo_open=True),
             "stylegan2_kimg": POSITIVE, "stylegan2_batch_size": AT_LEAST_1, "stylegan2_z_dim": AT_LEAST_1,
             "stylegan2_w_dim": AT_LEAST_1, "stylegan2_mapping_layers": AT_LEAST_1,
             "stylegan2_channel_base": AT_LEAST_1, "stylegan2_channel_max": AT_LEAST_1,
             "stylegan2_snapshot_kimg": POSITIVE, "r1_gamma": NON_NEGATIVE, "seed": NON_NEGATIVE}

    resolution: int = 64  # both GANs; the generated faces are cropped to preprocess.image_size later
    stargan_iters: int = 200000  # learning rates decay linearly over the second half (yunjey: 100k of 200k)
    stargan_batch_size: int = 16
    stargan_g_conv_dim: int = 64
    stargan_d_conv_dim: int = 64
    stargan_g_repeat_num: int = 6
    stargan_d_repeat_num: int = 6  # log2(resolution) - 1 gives a 2x2 patch map, as 6 does at 128 px
    stargan_model_save_step: int = 10000  # checkpoint and sample grid every this many iterations
    n_critic: int = 5
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    stargan_balanced_domains: bool = False  # draw source and target expressions uniformly (imbalanced data)
    # of each expression's AffectNet training faces, learn from this share farthest from neutral in (valence,
    # arousal); neutral faces are all kept. 1 = every face (the paper). See gan.data.strongest_by_valence_arousal
    stargan_strongest_share: float = 1.0
    stargan_head: str = "image"  # G's last layer: image (the paper's RGB) | warp (moves the input: flow + residual)
    stargan_max_shift: float = 0.1  # warp head: largest flow in [-1, 1] image coordinates (0.1 = 5 % of the side)
    stargan_residual_bound: float = 0.2  # warp head: largest colour change added to the warped input
    stargan_lambda_res: float = 0.0  # warp head: L1 weight on that colour change (against painted marks)
    stylegan2_kimg: float = 5000  # thousands of real images shown to D
    stylegan2_batch_size: int = 32
    stylegan2_z_dim: int = 512
    stylegan2_w_dim: int = 512
    stylegan2_mapping_layers: int = 8
    stylegan2_channel_base: int = 16384  # channels at resolution r: min(channel_base // r, channel_max)
    stylegan2_channel_max: int = 512
    stylegan2_snapshot_kimg: float = 200  # checkpoint and sample grid every this many kimg
    r1_gamma: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        """Also refuse a residual penalty without the warp head, which alone has a residual to penalise."""
        super().__post_init__()
        if self.stargan_lambda_res and self.stargan_head != "warp":
            raise ConfigError(f"gan.stargan_lambda_res is {self.stargan_lambda_res:g} but gan.stargan_head is "
                              f"{self.stargan_head!r}: only the warp head has a colour residual to penalise")


@dataclass(frozen=True)
class GenerateConfig(Checked):
    """Generated database (paper §3.1): units of 144 identities, each with six expressions."""

    SECTION = "generate"
    RULES = {"units": AT_LEAST_1, "truncation_psi": Rule(0, 1, lo_open=True), "batch_size": AT_LEAST_1,
             "seed": NON_NEGATIVE, "stargan_ckpt_resolution": NON_NEGATIVE,
             # Fisherfaces, and the moved-features measure's half and third of them; diversity
             "identity_people": Rule(6), "quality_identities": Rule(2),
             "judge_epochs": AT_LEAST_1, "judge_faces": NON_NEGATIVE, "criterion_epochs": AT_LEAST_1,
             "filter": Rule(choices=FILTERS), "filter_threshold": Rule(0, 1)}

    units: int = 1
    truncation_psi: float = 0.7
    batch_size: int = 64
    stylegan2_weights: str = ""  # empty = the weights shipped with the project
    stargan_weights: str = ""
    stargan_ckpt_resolution: int = 0  # px a yunjey *-G.ckpt was trained at; 0 = read from the *-D.ckpt beside it
    seed: int = 0
    identity_people: int = 600  # rendered people the quality check fits its identity space (Fisherfaces) on
    quality_identities: int = 1000  # generated persons the quality check samples (diversity, Frechet)
    reuse_quality: bool = True  # 01 shows the shipped weights' recorded quality when it describes this config
    judge_epochs: int = 20  # the quality check's expression CNN (train recipe, early stopping): epoch cap
    judge_faces: int = 0  # its training faces, drawn from the AffectNet(-like) training list; 0 = all
    criterion_epochs: int = 50  # the shipping criterion's CNNs (experiment 2's recipe otherwise): the paper's 50
    filter: str = "confidence"  # how the mix-filtered arm screens generated faces: none (arm refused) | confidence
    filter_threshold: float = 0.5  # keep a face when a CNN trained on real training subjects gives its label >= this


@dataclass(frozen=True)
class SweepConfig(Checked):
    """Experiment 3 (Table 2, Fig 8): real + k units of generated faces, several seeds."""

    SECTION = "sweep"
    RULES = {"ratios": AT_LEAST_1, "seeds": AT_LEAST_1,  # ratio 0 (real only) is its own run in every sweep
             "arms": Rule(choices=ARMS, nonempty=True),
             "executor": Rule(choices=EXECUTORS), "workers": NON_NEGATIVE, "slurm_time_min": AT_LEAST_1,
             "slurm_cpus": AT_LEAST_1, "slurm_gpus": NON_NEGATIVE, "slurm_mem_gb": AT_LEAST_1}

    ratios: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 10, 15, 20])
    seeds: int = 5
    arms: list[str] = field(default_factory=lambda: list(ARMS))  # synth, mix, mix-filtered run at every ratio
    executor: str = "serial"  # serial | local (processes here) | dask | slurm (docs/running.md)
    workers: int = 0  # local and dask-without-scheduler: worker processes; 0 = one per 2 cores (at least 1)
    scheduler: str = ""  # dask: tcp://host:8786 of a running scheduler; empty = a LocalCluster on this machine
    slurm_partition: str = ""  # empty = the cluster's default partition
    slurm_time_min: int = 240  # per run (one job = one run)
    slurm_cpus: int = 4
    slurm_gpus: int = 0
    slurm_mem_gb: int = 16


@dataclass(frozen=True)
class SotaConfig(Checked):
    """§4.4 / Table 3: VGG16 (134 M parameters) trained with the CNN's recipe but its own epoch cap."""

    SECTION = "sota"
    RULES = {"vgg_epochs": AT_LEAST_1}

    vgg_epochs: int = 50
    vgg_with_generated: bool = True  # also VGG16 on real + best-k generated faces (the paper's future work)


@dataclass(frozen=True)
class Config:
    """All parameters of one run of the compendium."""

    preset: str = "default"
    device: str = "auto"  # auto = cuda if present, else cpu
    results_dir: str = "results"
    figures_dir: str = "figures"
    world: WorldConfig = field(default_factory=WorldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    sota: SotaConfig = field(default_factory=SotaConfig)

    def __post_init__(self) -> None:
        """Refuse settings that contradict each other across sections, naming both keys."""
        if "mix-filtered" in self.sweep.arms and self.generate.filter == "none":
            raise ConfigError("sweep.arms has mix-filtered but generate.filter is none: set generate.filter to "
                              "confidence or leave mix-filtered out of sweep.arms")

    def path(self, value: str) -> Path:
        """Resolve a configured path: absolute as given, relative from the project root."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else ROOT / p

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, for result JSON files and checkpoints."""
        return dataclasses.asdict(self)


def preset_path(preset: str) -> Path:
    """Map a preset name (``quick``) or a YAML path to the file to read."""
    if preset in PRESETS:
        return PARAMS_DIR / f"{preset}.yaml"
    path = Path(preset).expanduser()
    if path.suffix not in {".yaml", ".yml"}:
        raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)} or a .yaml path")
    if not path.is_file():
        raise ConfigError(f"parameter file not found: {path}")
    return path


def load_config(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> Config:
    """Load a preset and apply dotted overrides such as ``{"train.epochs": 3}``.

    Args:
        preset: ``quick``, ``default``, ``paper`` or a path to a YAML file of the same schema.
        overrides: values keyed by dotted name; applied after the file, validated the same way.
    """
    path = preset_path(preset)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    raw.setdefault("preset", path.stem if preset not in PRESETS else preset)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return _build(Config, raw, prefix="", source=Source(str(path), dict(overrides or {})))


def overrides_given(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the notebook parameters a user set: empty strings and negative numbers mean "the preset's"."""
    def unset(value: Any) -> bool:
        return value == "" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0)

    return {key: value for key, value in values.items() if not unset(value)}


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a command-line ``section.key=value`` (value read as YAML: 3, 0.5, [1, 2], cpu)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    return key.strip(), yaml.safe_load(value)


def is_world_path(cfg: Config, database: str) -> bool:
    """Whether ``data.<database>`` names the embedded world's folder: ``data/<preset>/world/<database>`` here.

    Only such a path may be written by the world; any other is the user's, never filled with other data.
    """
    path = cfg.path(getattr(cfg.data, database)).resolve()
    return (database in WORLD_DATABASES and path.name == database and path.parent.name == "world"
            and path.parent.parent.parent == PROJECT_DATA.resolve())


def data_source(cfg: Config, database: str) -> str:
    """``embedded world`` where the world's manifest marks the folder (written by ``fer_utils.facegen``, wherever
    it lies), ``embedded world (not written yet)`` for the world's own folder before it is written (notebook 01
    publishes before 02 writes the experiments' databases), ``generated faces`` for ``data.generated``, else
    ``your files``."""
    if database == "generated":
        return "generated faces (data.generated)"
    path = cfg.path(getattr(cfg.data, database))
    if (path / WORLD_MANIFEST).is_file():
        return "embedded world"
    return "embedded world (not written yet)" if is_world_path(cfg, database) else "your files"


def require_path(cfg: Config, key: str, hint: str = "") -> Path:
    """Return the existing path configured at dotted ``key``, or raise ``DataError`` naming key and path."""
    section, _, name = key.partition(".")
    value = getattr(getattr(cfg, section), name) if name else getattr(cfg, section)
    advice = f" ({hint})" if hint else ""
    if not value:
        raise DataError(f"{key} is not set{advice}")
    path = cfg.path(value)
    if not path.exists():
        raise DataError(f"{key}: path does not exist: {path}{advice}")
    return path


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Write ``value`` at ``a.b`` into the nested dict, creating the section if needed."""
    *sections, leaf = dotted.split(".")
    node = raw
    for name in sections:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {name!r} is not a section")
        node = child
    node[leaf] = value


@dataclass(frozen=True)
class Source:
    """Where settings came from: the parameter file, and the overrides (``--set``) applied on top of it."""

    path: str
    overrides: dict[str, Any]

    def of(self, key: str) -> str:
        """``--set key=value`` when an override gave ``key`` (or a section holding it), else the file's path."""
        for given, value in self.overrides.items():
            if key == given or key.startswith((f"{given}.", f"{given}[")):
                shown = value if isinstance(value, str) else json.dumps(value)
                return f"--set {given}={shown}"
        return self.path


def _build(cls: type, raw: Mapping[str, Any], prefix: str, source: Source) -> Any:
    """Instantiate dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types."""
    if not isinstance(raw, Mapping):
        key = prefix.rstrip(".")
        raise ConfigError(f"{source.of(key)}: {key} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        names = ", ".join(prefix + k for k in unknown)
        raise ConfigError(f"{source.of(prefix + unknown[0])}: unknown parameter(s) {names}; "
                          f"known: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in raw.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, f"{prefix}{name}.", source)
        else:
            kwargs[name] = _check_type(value, kind, prefix + name, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a range rule: say which file or --set gave the value
        raise ConfigError(f"{source.of(exc.key) if exc.key else source.path}: {exc}", key=exc.key) from None


def _check_type(value: Any, kind: Any, key: str, source: Source) -> Any:
    """Return ``value`` if it fits ``kind`` (int widens to float; a number typed as 1e3 is read), else raise
    naming ``key`` and where it came from."""
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{source.of(key)}: {key} must be a list of {item.__name__}, got {value!r}", key=key)
        return [_check_type(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str) and _number(value) is not None:
        return _number(value)  # YAML 1.1 reads 1e3 and 1E-4 (no dot) as strings; a person means the number
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        what = "a number (float)" if kind is float else kind.__name__
        raise ConfigError(f"{source.of(key)}: {key} must be {what}, got {value!r} ({type(value).__name__})", key=key)
    return value


def _number(text: str) -> float | None:
    """``text`` as a finite float if it is written as one (1e3, 1E-4, .5, 1_000), else None ('fast', 'nan')."""
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
