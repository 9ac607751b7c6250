"""The typed config: defaults load, and every kind of bad value names its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from galaxy_xai.config import Config, ConfigError, config_from_dict, load_config, params_reference

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_change(path: str, value):
    raw = copy.deepcopy(RAW)
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[leaf] = value
    return raw


def test_default_params_load_and_match_the_dataclass_defaults():
    cfg = load_config(ROOT / "params.yaml")
    assert isinstance(cfg, Config)
    assert cfg.data.path == "data/raw"
    assert set(cfg.models) == {"vgg_small", "resnet_small", "xception_small"}
    # params.yaml spells out every key the dataclasses know, so the README reference is complete.
    documented = {key for key, _, _ in params_reference() if not key.startswith("models.<name>")}
    flat = set()

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict) and k != "models":
                walk(v, f"{prefix}{k}.")
            elif k != "models":
                flat.add(f"{prefix}{k}")

    walk(RAW, "")
    assert flat == documented


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("xai.smoothgrad.noise", 2.0, "xai.smoothgrad.noise = 2.0: expected a number in [0.0, 1.0]"),
        ("xai.smoothgrad.samples", 1.5, "xai.smoothgrad.samples = 1.5: expected an integer"),
        ("images.crop_px", "big", "images.crop_px = 'big': expected an integer or null"),
        ("images.size_px", 8, "images.size_px = 8: expected an integer in [16, 1024]"),
        ("seed", True, "seed = True: expected an integer"),
        ("xai.method", "lime", "xai.method = 'lime': expected one of smoothgrad, vanilla, gradcam"),
        ("xai.grid.corr_threshold", [], "xai.grid.corr_threshold = []: expected a non-empty list"),
        ("xai.grid.x_input", [1], "xai.grid.x_input[0] = 1: expected true or false"),
        ("models.vgg_small.arch", "vgg17", "models.vgg_small.arch = 'vgg17': expected one of vgg16"),
        ("models.vgg_small.colour", 3, "models.vgg_small.colour: unknown key"),
        ("synthetic.n_galaxies", 3, "synthetic.n_galaxies: unknown key; allowed keys of synthetic"),
        ("prepare.val_fraction", 0.9, "prepare.test_fraction + prepare.val_fraction"),
        ("images.brightness_min", 2.0, "images.brightness_min: expected at most"),
        ("models", {}, "models: expected at least one model"),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(path, value, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(with_change(path, value), source="params.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("params.yaml: ")


def test_null_crop_and_int_for_float_are_accepted():
    cfg = config_from_dict(with_change("images.crop_px", None))
    assert cfg.images.crop_px is None
    cfg = config_from_dict(with_change("xai.smoothgrad.noise", 0))
    assert cfg.xai.smoothgrad.noise == 0.0 and isinstance(cfg.xai.smoothgrad.noise, float)


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_is_immutable():
    cfg = load_config(ROOT / "params.yaml")
    with pytest.raises(AttributeError):
        cfg.seed = 1  # type: ignore[misc]
