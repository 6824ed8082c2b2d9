"""imgclf.config: defaults, override order, unknown keys, and the bad-value message format."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from imgclf.config import TrainConfig
from imgclf.config_files import config_fields, load_config_file, resolve_config
from imgclf.errors import ConfigError, ImgclfError


def write_config(tmp_path, kind: str, values: dict):
    path = tmp_path / f"options.{kind}"
    if kind == "json":
        path.write_text(json.dumps(values))
    else:
        import yaml

        path.write_text(yaml.safe_dump(values))
    return path


def test_defaults():
    cfg = TrainConfig()
    assert (
        cfg.model == "auto"
    )  # imgclf.models.choose picks the model from the data (tests/test_choose.py)
    assert cfg.image_size is None
    assert (cfg.epochs, cfg.head_epochs, cfg.batch_size) == (
        None,
        30,
        32,
    )  # epochs: the model's default
    assert (cfg.val_fraction, cfg.test_fraction) == (0.2, 0.1)
    assert cfg.seed == 42
    assert cfg.fine_tune == "auto"
    assert cfg.out == "runs"
    assert cfg.name is None
    assert set(cfg.to_dict()) == {f.name for f in fields(TrainConfig)}


def test_defaults_validate_with_data():
    cfg = resolve_config(data="photos")
    assert cfg == TrainConfig(data="photos")


def test_every_cli_field_has_help_and_data_is_not_a_flag():
    names = [f.name for f in config_fields()]
    assert "data" not in names
    assert "model" in names and "image_size" in names
    assert all(f.metadata["help"] for f in config_fields())


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_override_order_defaults_file_kwargs(tmp_path, kind):
    path = write_config(tmp_path, kind, {"epochs": 5, "batch_size": 16, "model": "cnn"})
    cfg = resolve_config(path, data="photos", epochs=3)
    assert cfg.epochs == 3  # keyword beats file
    assert cfg.batch_size == 16  # file beats default
    assert cfg.model == "cnn"
    assert cfg.learning_rate == TrainConfig().learning_rate  # default kept


def test_config_file_values_are_coerced(tmp_path):
    # PyYAML reads 1e-3 (no dot) as a string; dashes in keys are accepted like the CLI flags
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-3\nval-fraction: '0.25'\nimage_size: 64\nfine_tune: 23\n")
    cfg = resolve_config(path, data="photos")
    assert cfg.learning_rate == pytest.approx(0.001)
    assert isinstance(cfg.learning_rate, float)
    assert cfg.val_fraction == pytest.approx(0.25)
    assert cfg.image_size == 64
    assert cfg.fine_tune == "23"  # the notes' "train only the last 23 layers"


def test_empty_config_file_is_all_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert resolve_config(path, data="photos") == TrainConfig(data="photos")


def test_unknown_keyword_suggests_the_close_one():
    with pytest.raises(
        ConfigError, match=r"unknown argument option 'epoch'; did you mean 'epochs'\?"
    ):
        resolve_config(data="photos", epoch=3)


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_unknown_config_file_key_suggests_the_close_one(tmp_path, kind):
    path = write_config(tmp_path, kind, {"lerning_rate": 0.01})
    with pytest.raises(
        ConfigError,
        match=r"unknown config file option 'lerning_rate'; did you mean 'learning_rate'\?",
    ):
        resolve_config(path, data="photos")


def test_unknown_key_without_close_match_lists_known_options():
    with pytest.raises(ConfigError, match="known options: .*batch_size.*epochs"):
        resolve_config(data="photos", zzzzzz=1)


@pytest.mark.parametrize(
    "option, value, allowed",
    [
        ("image_size", 16, "an integer from 32 to 1024"),
        ("image_size", 4096, "an integer from 32 to 1024"),
        ("epochs", 0, "an integer >= 1"),
        ("batch_size", -4, "an integer >= 1"),
        ("head_epochs", -1, "an integer >= 1"),
        ("patience", -1, "an integer >= 0"),
        ("learning_rate", 0.0, "a number in (0, 10)"),
        ("fine_tune_learning_rate", 50.0, "a number in (0, 10)"),
        ("val_fraction", 1.5, "a number in (0, 1)"),
        ("test_fraction", -0.1, "a number in [0, 1)"),
        ("val_fraction", 0.0, "a number in (0, 1)"),
        ("name", "a/b", "a plain folder name without '/'"),
        ("name", "..", "a plain folder name without '/'"),
        ("epochs", "many", "a value of type int"),
        ("batch_size", 2.5, "a value of type int"),
        ("learning_rate", "fast", "a value of type float"),
        ("fine_tune", "maybe", "'auto', 'all', 'none' or a number of layers >= 1"),
        ("fine_tune", "0", "'auto', 'all', 'none' or a number of layers >= 1"),
        ("head_epochs", None, "a value of type int"),
        ("optimizer", "adagrad", "one of adam, sgd, rmsprop"),
        ("lr_schedule", "step", "one of cosine, plateau, constant"),
        ("views", 0, "an integer from 1 to 16"),
        ("label_smoothing", 0.5, "a number in [0, 0.5)"),
        ("stop_at_accuracy", 1.5, "a number in (0, 1]"),
        ("time_budget", "soon", "a duration such as 90s, 5m or 1h"),
        ("time_budget", "0s", "(it must be more than 0)"),
        ("time_budget", "-5m", "(it must be more than 0)"),
        ("time_budget", "inf", "(it must be more than 0)"),
        ("backbone_lr_scale", 0.0, "a number in (0, 1]"),
        ("ema", 1.0, "a momentum in [0, 1)"),
        ("class_weight", "balanced", "one of 'none', 'auto'"),
    ],
)
def test_bad_value_message_names_argument_received_and_allowed(option, value, allowed):
    with pytest.raises(ConfigError) as info:
        resolve_config(data="photos", **{option: value})
    message = str(info.value)
    assert f"`{option}`" in message
    assert f"received {value!r}" in message
    assert allowed in message
    assert isinstance(info.value, ImgclfError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_out_of_range_seed_is_rejected(seed):
    with pytest.raises(ConfigError, match=rf"`seed`: received {seed}"):
        resolve_config(data="photos", seed=seed)


def test_fraction_sum_leaves_images_to_train_on():
    with pytest.raises(ConfigError, match=r"`val_fraction \+ test_fraction`.*a sum below 0.9"):
        resolve_config(data="photos", val_fraction=0.5, test_fraction=0.45)


def test_missing_data_is_rejected():
    with pytest.raises(ConfigError, match=r"`data`: received ''; expected a path"):
        resolve_config()


def test_bad_augment_is_rejected_at_config_time():
    with pytest.raises(ConfigError, match=r"`augment`: received 'emboss'"):
        resolve_config(data="photos", augment="flip,emboss")


def test_bad_value_in_config_file_names_the_option(tmp_path):
    path = write_config(tmp_path, "yaml", {"epochs": 0})
    with pytest.raises(
        ConfigError,
        match=r"`epochs` \(in config file .*options.yaml.\): received 0; expected an integer >= 1",
    ):
        resolve_config(path, data="photos")


def test_missing_config_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"`config`: received .*nope.yaml.*expected an existing .yaml"
    ):
        load_config_file(tmp_path / "nope.yaml")


def test_config_file_must_hold_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- epochs\n- 3\n")
    with pytest.raises(ConfigError, match="a file holding a mapping"):
        resolve_config(path, data="photos")


@pytest.mark.parametrize(
    "name, text", [("broken.yaml", "epochs: [1, 2\n"), ("broken.json", "{epochs: 3")]
)
def test_unparsable_config_file_is_one_clear_line(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"cannot read config file .*" + name) as info:
        load_config_file(path)
    assert "\n" not in str(info.value)


def test_a_bad_value_from_a_config_file_names_its_key_and_the_file(tmp_path):
    path = tmp_path / "opts.yaml"
    path.write_text("val_fraction: 0\nepochs: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        resolve_config(path, data="photos")
    message = str(info.value)
    assert f"`val_fraction` (in config file {str(path)!r})" in message
    assert "a number in (0, 1)" in message


def test_a_keyword_that_overrides_the_file_is_named_as_a_keyword(tmp_path):
    path = tmp_path / "opts.yaml"
    path.write_text("val_fraction: 0.2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        resolve_config(path, data="photos", val_fraction=0.0)
    assert "invalid value for `val_fraction`: received 0.0" in str(info.value)
    assert "config file" not in str(info.value)


def test_a_type_error_in_a_config_file_names_the_file(tmp_path):
    path = tmp_path / "opts.json"
    path.write_text('{"batch_size": "many"}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"`batch_size` \(in config file .*opts.json'\)"):
        resolve_config(path, data="photos")


def test_a_runs_config_yaml_is_a_config_file(tmp_path):
    """A run's config.yaml records its distribution beside its options; given to --config, it
    trains with the same options instead of failing on an unknown option."""
    from imgclf.runs import write_config

    cfg = TrainConfig(data=str(tmp_path), epochs=3, seed=7)
    path = tmp_path / "config.yaml"
    write_config(path, cfg, extra={"distribution": {"strategy": "mirrored", "replicas": 2}})
    again = resolve_config(path)
    assert (again.epochs, again.seed) == (3, 7)
