"""Presets load, and every kind of bad parameter is an error that names the key or path."""
import re

import pytest
import yaml

from fer_utils.config import PRESETS, ConfigError, DataError, load_config, parse_override, require_path


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_load_with_their_name(preset):
    cfg = load_config(preset)
    assert cfg.preset == preset
    assert cfg.preprocess.image_size == 64  # paper §3.2: every preset feeds the CNN 64x64


def test_paper_preset_has_the_papers_protocol():
    cfg = load_config("paper")
    assert (cfg.split.train_subjects, cfg.split.val_subjects, cfg.split.test_subjects) == (109, 10, 25)
    assert cfg.train.epochs == 50 and cfg.train.batch_size == 64 and cfg.train.patience == 5
    assert cfg.sweep.ratios == [1, 2, 3, 4, 5, 6, 10, 15, 20]
    assert cfg.sweep.seeds == 5
    assert (cfg.gan.n_critic, cfg.gan.lambda_cls, cfg.gan.lambda_rec, cfg.gan.lambda_gp) == (5, 1, 10, 10)


def test_overrides_apply_and_widen_int_to_float():
    cfg = load_config("quick", {"train.epochs": 7, "train.lr": 1, "device": "cpu"})
    assert cfg.train.epochs == 7 and cfg.train.lr == 1.0 and cfg.device == "cpu"


def test_unknown_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"train\.epochz"):
        load_config(str(bad))


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match=r"sweep\.ratio\b"):
        load_config("quick", {"sweep.ratio": 3})


@pytest.mark.parametrize("key, value, expected", [
    ("train.epochs", "ten", r"train\.epochs must be int"),
    ("train.epochs", True, r"train\.epochs must be int"),
    ("train.lr", "fast", r"train\.lr must be a number \(float\)"),
    ("sweep.ratios", 5, r"sweep\.ratios must be a list of int"),
    ("sweep.ratios", [1, "x"], r"sweep\.ratios\[1\] must be int"),
    ("data.rafd", 3, r"data\.rafd must be str"),
])
def test_wrong_type_is_named(key, value, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config("quick", {key: value})


def test_section_given_as_scalar_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: 3\n")
    with pytest.raises(ConfigError, match="train must be a mapping"):
        load_config(str(bad))


def test_missing_preset_file_and_unknown_name():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/params.yaml")
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        load_config("fast")


def test_missing_data_path_names_key_and_path(tmp_path):
    cfg = load_config("quick", {"data.mmi": str(tmp_path / "no_mmi_here")})
    with pytest.raises(DataError, match=r"data\.mmi: path does not exist: .*no_mmi_here"):
        require_path(cfg, "data.mmi")
    cfg = load_config("quick", {"data.mmi": str(tmp_path)})
    assert require_path(cfg, "data.mmi") == tmp_path


def test_relative_paths_resolve_from_project_root():
    cfg = load_config("quick")
    assert cfg.path(cfg.data.cache).is_absolute()
    assert (cfg.path("params") / "quick.yaml").is_file()


@pytest.mark.parametrize("text, expected", [
    ("train.epochs=3", ("train.epochs", 3)),
    ("sweep.ratios=[1, 5]", ("sweep.ratios", [1, 5])),
    ("device=cpu", ("device", "cpu")),
])
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_rejects_missing_equals():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.epochs")


def test_notebook_parameters_left_empty_or_negative_keep_the_preset() -> None:
    from fer_utils.config import overrides_given

    given = {"generate.units": -1, "generate.seed": 0, "device": "", "generate.truncation_psi": 0.5,
             "generate.stargan_weights": "my.ckpt", "sota.vgg_with_generated": False}
    assert overrides_given(given) == {"generate.seed": 0, "generate.truncation_psi": 0.5,
                                      "generate.stargan_weights": "my.ckpt", "sota.vgg_with_generated": False}
    cfg = load_config("quick", overrides_given(given))
    assert cfg.generate.units == load_config("quick").generate.units and cfg.generate.truncation_psi == 0.5


@pytest.mark.parametrize("key,value,message", [
    ("train.epochs", -1, "train.epochs must be >= 1, got -1"),
    ("train.epochs", 0, "train.epochs must be >= 1, got 0"),
    ("train.batch_size", 0, "train.batch_size must be >= 1"),
    ("train.lr", 0.0, "train.lr must be > 0"),
    ("preprocess.margin", 1.5, r"preprocess.margin must be within \[0, 1\)"),
    ("generate.truncation_psi", 0.0, r"generate.truncation_psi must be within \(0, 1\]"),
    ("generate.units", 0, "generate.units must be >= 1"),
    ("generate.criterion_epochs", 0, "generate.criterion_epochs must be >= 1, got 0"),
    ("gan.stargan_strongest_share", 0.0, r"gan.stargan_strongest_share must be within \(0, 1\]"),
    ("gan.stargan_strongest_share", 1.5, r"gan.stargan_strongest_share must be within \(0, 1\]"),
    ("sweep.ratios", [1, -2], "sweep.ratios must be >= 1, got -2"),
    ("sweep.seeds", 0, "sweep.seeds must be >= 1"),
    ("split.val_subjects", 0, "split.val_subjects must be >= 1"),
    ("preprocess.oulu_lightings", ["strong"], "preprocess.oulu_lightings must be one of Strong, Weak, Dark"),
    ("preprocess.rafd_cameras", [], "preprocess.rafd_cameras must name at least one value"),
    ("train.precision", "fp16", "train.precision must be one of auto, fp32, bf16"),
    ("generate.filter", "teacher", "generate.filter must be one of none, confidence"),
    ("generate.filter_threshold", 1.5, r"generate.filter_threshold must be within \[0, 1\]"),
    ("sweep.arms", [], "sweep.arms must name at least one value"),
])
def test_out_of_range_settings_are_refused_when_read(tmp_path, key, value, message) -> None:
    """An invalid setting fails when the preset is read, naming where it came from (the --set that gave it, or the
    file), the key and the value: epochs 0 used to save an untrained model as a finished run, batch size 0 to crash
    mid-run."""
    with pytest.raises(ConfigError, match=rf"^--set {re.escape(key)}=[^:]*: {message}"):
        load_config("quick", {key: value})
    section, name = key.split(".")
    preset = tmp_path / "mine.yaml"
    preset.write_text(yaml.safe_dump({section: {name: value}}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(preset))}: {message}"):
        load_config(str(preset))


@pytest.mark.parametrize("text, number", [("1e3", 1000.0), ("1E-4", 1e-4), (".5", 0.5), ("1_000", 1000.0),
                                          ("1.0e3", 1000.0), ("3", 3.0)])
def test_a_float_setting_takes_numbers_as_people_type_them(text, number) -> None:
    """YAML 1.1 reads 1e3 (no dot) as a string; --set train.lr=1e3 used to be refused (issue 37 #10)."""
    assert load_config("quick", dict([parse_override(f"train.lr={text}")])).train.lr == number


@pytest.mark.parametrize("text", ["fast", "nan", "inf", "1e3x", "[1]"])
def test_a_float_setting_still_refuses_what_is_not_a_finite_number(text) -> None:
    key, value = parse_override(f"train.lr={text}")
    with pytest.raises(ConfigError, match=rf"^--set train\.lr={re.escape(text)}: train\.lr must be a number "
                                          r"\(float\), got"):
        load_config("quick", {key: value})


def test_an_error_names_the_set_flag_not_the_preset_file_it_did_not_come_from(tmp_path) -> None:
    """Errors of --set values named params/quick.yaml (issue 37 #10); a file's own bad value still names the file."""
    with pytest.raises(ConfigError) as info:
        load_config("quick", {"train.epochs": "ten"})
    assert str(info.value) == "--set train.epochs=ten: train.epochs must be int, got 'ten' (str)"
    with pytest.raises(ConfigError) as info:
        load_config("quick", {"train.epochz": 3})
    assert str(info.value).startswith("--set train.epochz=3: unknown parameter(s) train.epochz; known: ")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: ten\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(bad), {"train.lr": 1e-3})
    assert str(info.value) == f"{bad}: train.epochs must be int, got 'ten' (str)"


def test_every_preset_is_within_range() -> None:
    for preset in PRESETS:
        load_config(preset)


def test_a_filtered_arm_without_a_filter_is_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError, match="sweep.arms has mix-filtered but generate.filter is none"):
        load_config("quick", {"generate.filter": "none", "sweep.arms": ["real", "mix-filtered"]})
    assert load_config("quick", {"generate.filter": "none"}).sweep.arms == ["real", "synth", "mix"]
