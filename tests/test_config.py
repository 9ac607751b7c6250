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
    # params.yaml spells out every key the dataclasses know, so the reference (docs/params.md) is complete.
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
        # xai.target is one of the 37 Galaxy Zoo answers, checked at config time (not after training).
        ("xai.target", "Class3.3", "xai.target = 'Class3.3': expected one of Class1.1, Class1.2, Class1.3, Class2.1"),
        ("xai.target", "class3.1", "xai.target = 'class3.1': expected one of Class1.1"),
        # Cross-key rules of the synthetic sky give the config's message (they were a ValueError of the stage).
        ("synthetic.n_coadd_repeats", 961, "synthetic.n_coadd_repeats = 961: expected at most synthetic.n_bars = 960"),
        ("synthetic.n_labelled", 899_801, "synthetic.n_labelled + synthetic.n_unlabelled = 900001: expected at most 900000"),
        # The model input is at least every configured architecture's minimum.
        ("models.vgg_small.arch", "xception",
         "images.size_px = 64: models.vgg_small.arch = xception needs an input of at least 71 px"),
        ("control.model.arch", "xception",
         "images.size_px = 64: control.model.arch = xception needs an input of at least 71 px"),
        ("xai.bootstrap", 10, "xai.bootstrap = 10: expected an integer in [100, 10000000]"),
        # A model input larger than the crop only upsamples it (crop null + 1024 px ran out of memory).
        ("images.size_px", 161, "images.size_px = 161: expected at most 160: the crop spans images.crop_px = 160"),
        ("xai.bootstrap", 1e3, "xai.bootstrap = 1000.0: expected an integer"),
        # The grid search's preferred rows exist among the settings it searches.
        ("xai.grid.prefer_map_source", "mean", "xai.grid.prefer_map_source = 'mean': expected null or a saliency "
         "map source: vgg_small, resnet_small, xception_small, mean_map, mean_length"),
        ("xai.grid.prefer_map_source", "image", "expected null or a saliency map source"),
        ("xai.grid.prefer_estimator", "median", "xai.grid.prefer_estimator = 'median': expected one of null, algorithm1, fourier"),
        ("xai.grid.estimators", ["fourier"], "xai.grid.prefer_estimator = 'algorithm1': expected null or one of "
         "xai.grid.estimators: fourier"),
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
    cfg = config_from_dict(with_change("xai.grid.prefer_map_source", None))
    assert cfg.xai.grid.prefer_map_source is None and cfg.xai.grid.prefer_estimator == "algorithm1"
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


def test_the_model_input_is_at_most_the_image_it_is_cut_from():
    whole = with_change("images.crop_px", None)
    assert config_from_dict(whole | {"images": {**whole["images"], "size_px": 424}}).images.size_px == 424
    with pytest.raises(ConfigError, match=r"images.size_px = 1024: expected at most 424: the whole image"):
        config_from_dict(whole | {"images": {**whole["images"], "size_px": 1024}})
    assert config_from_dict(with_change("images.size_px", 160)).images.size_px == 160


def without(path: str) -> dict:
    """The committed params with the key at the dotted ``path`` left out."""
    raw = copy.deepcopy(RAW)
    *parents, leaf = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    del node[leaf]
    return raw


@pytest.mark.parametrize(
    ("path", "message"),
    [
        # Issue #28: a deleted xai.method ran the code's default (smoothgrad), not the documented value.
        ("xai.method", "xai.method: missing key (explainer: smoothgrad, vanilla"),
        ("seed", "seed: missing key (seeds the synthetic sky"),
        ("xai.smoothgrad", "xai.smoothgrad: missing key (a section)"),
        ("models.vgg_small.seed_offset", "models.vgg_small.seed_offset: missing key (added to train.seed"),
        ("control.model.epochs", "control.model.epochs: missing key (maximum epochs"),
        ("limits", "limits: missing key (a section)"),
        ("models", "models: missing key"),
    ],
)
def test_a_missing_key_is_an_error_not_a_default_of_the_code(path, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(without(path), source="params.yaml")
    assert str(err.value).startswith(f"params.yaml: {message}")
    assert "copy it from the committed params.yaml" in str(err.value)


def test_the_paper_file_gives_every_key_too():
    cfg = load_config(ROOT / "configs" / "paper.yaml")
    assert cfg.xai.bootstrap == 1000 and cfg.limits.max_hours is None


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        # A floor beyond the pixels of a map: Algorithm 1 isolates nothing, yet the setting was scored.
        ("xai.grid.len_threshold", [10, 1_000_000], "xai.grid.len_threshold[1] = 1000000: expected at most 7144: T_l "
         "is scaled from the paper's 224-px maps of the whole image to 573265 pixels of our 64 x 64 maps"),
        ("xai.integrated_gradients.blur_sigma", 65.0, "xai.integrated_gradients.blur_sigma = 65.0: expected at most "
         "images.size_px = 64 map pixels"),
        # Each split non-empty: val_fraction 0 passed check_params and prepare and failed when train started.
        ("prepare.val_fraction", 0, "prepare.val_fraction = 0.0: expected a number above 0: the train stage stops early"),
        ("prepare.test_fraction", 0.0, "prepare.test_fraction = 0.0: expected a number above 0: the predict stage"),
        # The range, not only the type, of a key that may be null.
        ("images.crop_px", 0, "images.crop_px = 0: expected an integer in [16, 424] or null"),
        ("explainers.model", 3, "explainers.model = 3: expected a string or null"),
    ],
)
def test_cross_key_rules_of_pixels_and_splits(path, value, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(with_change(path, value), source="params.yaml")
    assert str(err.value) == f"params.yaml: {message}" or message in str(err.value), str(err.value)


def test_the_largest_len_threshold_still_leaves_a_map_pixel_to_isolate():
    from galaxy_xai.config import max_len_threshold
    from galaxy_xai.units import scale_len_threshold

    for map_px, crop_px in ((64, 160), (64, None), (224, None), (40, 212), (16, 424)):
        most = max_len_threshold(map_px, crop_px)
        assert scale_len_threshold(most, map_px, crop_px) < map_px**2 <= scale_len_threshold(most + 1, map_px, crop_px)
    assert config_from_dict(with_change("xai.grid.len_threshold", [7144])).xai.grid.len_threshold == [7144]
    # The Fourier estimator alone has no T_l to check.
    fourier_only = with_change("xai.grid.len_threshold", [1_000_000])
    fourier_only["xai"]["grid"].update(estimators=["fourier"], prefer_estimator=None)
    assert config_from_dict(fourier_only).xai.grid.estimators == ["fourier"]


def test_a_minimum_input_is_declared_once_for_every_architecture():
    from galaxy_xai.config import ARCHITECTURES, MIN_INPUT_PX
    from galaxy_xai.models import architectures

    assert tuple(MIN_INPUT_PX) == ARCHITECTURES
    assert {arch: spec.min_input_px for arch, spec in architectures.SPECS.items()} == MIN_INPUT_PX
    big = {**RAW["models"]["vgg_small"], "arch": "xception"}
    cfg = config_from_dict(with_change("images.size_px", 71) | {"models": {"big": big}})
    assert cfg.images.size_px == 71


def test_keys_that_yaml_reads_as_booleans_or_numbers_are_unknown_keys_not_a_crash(tmp_path):
    # `on:` is the boolean true in YAML 1.1, `2:` an integer: sorting them with the string keys
    # used to raise TypeError.
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text() + "on: 1\n2: 2\nxia: {}\n")
    with pytest.raises(ConfigError, match=r"params.yaml: 2: unknown key; allowed keys of the top level: seed"):
        load_config(params)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A second top-level section used to replace the first silently.
        ("xai:\n  target: Class3.1\nseed: 1\nxai:\n  permutations: 10\n",
         "line 4: duplicate key 'xai' (first given on line 1)"),
        ("models:\n  vgg_small:\n    arch: vgg_small\n    epochs: 3\n    epochs: 30\n",
         "line 5: duplicate key 'epochs' (first given on line 4)"),
    ],
)
def test_duplicate_keys_are_an_error_naming_the_key_and_lines(tmp_path, text, message):
    params = tmp_path / "params.yaml"
    params.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(params)
    assert str(err.value) == f"{params}: {message}; give each key once (YAML would silently keep the last)"


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    params.write_text(
        text[: text.index("\nmodels:")] + "\nmodels:\n"
        "  a: &base {arch: vgg_small, epochs: 3, batch_size: 32, learning_rate: 0.001, weights: null, seed_offset: 0}\n"
        "  b:\n    <<: *base\n    epochs: 5\n" + text[text.index("\ntrain:") :]
    )
    cfg = load_config(params)
    assert (cfg.models["a"].epochs, cfg.models["b"].epochs, cfg.models["b"].arch) == (3, 5, "vgg_small")


def test_a_params_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text(encoding="utf-8")
    params.write_bytes(text.replace("CPU demo", "CPU d\u00e9mo").encode("latin-1"))
    offset = text.index("CPU demo") + len("CPU d")
    with pytest.raises(ConfigError) as err:
        load_config(params)
    assert str(err.value).startswith(f"{params}: not UTF-8 text: byte {offset} (0xe9, line 1) is not valid UTF-8")


def test_explainer_settings_are_checked_against_the_method(tmp_path):
    """VarGrad needs two noise samples and occlusion a patch that fits: named before any work."""
    params = yaml.safe_load(open("params.yaml"))
    params["xai"]["method"] = "vargrad"
    params["xai"]["smoothgrad"]["samples"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"xai.smoothgrad.samples = 1: xai.method = vargrad needs at least 2"):
        load_config(path)
    params["xai"]["method"] = "occlusion"
    params["xai"]["occlusion"] = {"patch": 4, "stride": 8}
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"xai.occlusion: stride = 8, patch = 4"):
        load_config(path)
    params["xai"]["occlusion"] = {"patch": 8, "stride": 4}
    path.write_text(yaml.safe_dump(params))
    assert load_config(path).xai.occlusion.patch == 8


@pytest.mark.parametrize(
    ("grid_px", "message"),
    [
        (12, r"xai.cam: grid_px = 12: expected a power of 2"),
        (64, r"xai.cam.grid_px = 64: expected at most images.size_px / 2 = 32"),
        (0, r"xai.cam.grid_px = 0: expected .* in \[1, 4096\]"),
    ],
)
def test_a_cam_grid_no_model_has_is_refused_before_any_work(tmp_path, grid_px, message):
    params = yaml.safe_load(open("params.yaml"))
    params["xai"]["cam"]["grid_px"] = grid_px
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    params["xai"]["cam"]["grid_px"] = 16
    path.write_text(yaml.safe_dump(params))
    assert load_config(path).xai.cam.grid_px == 16


QUICK_CHANGES = {
    ("models",): None,  # one model: checked below
    ("explainers", "galaxies"): 16,
    ("explainers", "cascade_galaxies"): 0,
    ("xai", "rotation", "galaxies"): 20,
}
"""What configs/quick.yaml changes from params.yaml (its header says why each)."""


def _leaves(tree, path=()):
    if isinstance(tree, dict) and path != ("models",):
        for key, value in tree.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path, tree


def test_the_quick_file_is_the_default_but_for_the_cuts_its_header_lists():
    """configs/quick.yaml follows params.yaml: a key changed in one and not the other fails here."""
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    quick = yaml.safe_load((ROOT / "configs" / "quick.yaml").read_text())
    load_config(ROOT / "configs" / "quick.yaml")  # valid and complete
    assert quick["models"] == {"vgg_small": default["models"]["vgg_small"]}
    differ = {path for (path, a), (_, b) in zip(_leaves(default), _leaves(quick), strict=True) if a != b}
    assert [path for path, _ in _leaves(default)] == [path for path, _ in _leaves(quick)]
    assert differ == set(QUICK_CHANGES)
    for path, value in QUICK_CHANGES.items():
        if value is not None:
            node = quick
            for key in path:
                node = node[key]
            assert node == value, path
