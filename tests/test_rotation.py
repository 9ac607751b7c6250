"""Rotation stability: turned galaxies are explained again and measured under both linearity rules."""

from __future__ import annotations

import numpy as np

from galaxy_xai.bars import barlength
from galaxy_xai.bars.rotation import lengths_table, noise_lengths, pick_rows, rotation_lengths
from galaxy_xai.config import LINEARITIES, config_from_dict
from galaxy_xai.data.images import load_images
from galaxy_xai.models.architectures import build_model
from galaxy_xai.xai import explainers
from galaxy_xai.xai.heatmaps import draw_seed
from tests.e2e import complete, model_entry
from tests.fixtures import write_jpeg


def _jpegs(folder, n: int) -> list[str]:
    """n seeded test galaxies written as JPEGs in ``folder``: their paths."""
    for i in range(n):
        write_jpeg(folder / f"{i}.jpg", seed=i)
    return [str(folder / f"{i}.jpg") for i in range(n)]


def test_rotation_lengths_shape_units_and_reproducibility(tmp_path):
    paths = _jpegs(tmp_path, 3)
    cfg = config_from_dict(
        complete({
            "models": {"m": model_entry("vgg_small")},
            "images": {"crop_px": 212, "size_px": 32},
            "xai": {
                "method": "smoothgrad",  # stochastic: the noise control's draws differ
                "smoothgrad": {"samples": 2, "batch_size": 8},
                "rotation": {"angles_deg": [0, 90, 0]},
            },
        })
    )
    model = build_model("vgg_small", 32, seed=1)
    choice = barlength.Choice("m", x_input=True, corr_threshold=0.6, len_threshold=20)
    objids = np.arange(100, 103)
    lengths = rotation_lengths({"m": model}, paths, objids, cfg, choice)
    assert set(lengths) == set(LINEARITIES)
    for rule, values in lengths.items():
        assert values.shape == (3, 3), rule
        # In 424-px pixels: at least one map pixel, at most the crop's diagonal.
        assert np.all(values >= 212 / 32) and np.all(values <= 212 * np.sqrt(2)), rule
        # The same angle twice is the same seeded map, so the same length.
        np.testing.assert_array_equal(values[:, 0], values[:, 2])

    # The noise control: draw 0 is the unturned map of the rotation check; draws differ.
    noise = noise_lengths({"m": model}, paths, objids, cfg, choice, draws=3)
    for rule, values in noise.items():
        assert values.shape == (3, 3), rule
        np.testing.assert_array_equal(values[:, 0], lengths[rule][:, 0])
    explainer = explainers.from_config(cfg.xai)
    images = load_images(paths, cfg.images)
    maps = [explainer(model, images, seed=draw_seed(cfg.seed, "m", d), keys=objids) for d in (0, 1)]
    assert not np.array_equal(maps[0], maps[1])  # independent draws, so lengths may differ

    table = lengths_table(objids, cfg.xai.rotation.angles_deg, {"rotation": lengths, "noise": noise})
    assert len(table) == 2 * len(LINEARITIES) * 3 * 3
    rotation = table[(table["check"] == "rotation") & (table["linearity"] == "elongation")]
    np.testing.assert_array_equal(rotation["length_px424"], lengths["elongation"].ravel())
    np.testing.assert_array_equal(rotation["angle_deg"], [0, 90, 0] * 3)
    assert set(table.loc[table["check"] == "noise", "draw"]) == {0, 1, 2}


def test_pick_rows_is_a_sorted_seeded_pick():
    rows = pick_rows(10, 4, seed=3)
    assert len(rows) == 4 and len(set(rows)) == 4 and list(rows) == sorted(rows) and rows.max() < 10
    np.testing.assert_array_equal(rows, pick_rows(10, 4, seed=3))
    np.testing.assert_array_equal(pick_rows(3, 4, seed=3), [0, 1, 2])


def test_noise_control_of_a_deterministic_explainer_is_explained_once(tmp_path, monkeypatch):
    paths = _jpegs(tmp_path, 2)
    cfg = config_from_dict(
        complete({
            "models": {"m": model_entry("vgg_small")},
            "images": {"crop_px": 212, "size_px": 32},
            "xai": {"method": "integrated_gradients", "integrated_gradients": {"steps": 2, "symmetries": 1}},
        })
    )
    model = build_model("vgg_small", 32, seed=1)
    choice = barlength.Choice("m", x_input=False, corr_threshold=0.6, len_threshold=20)
    calls = []
    original = explainers.integrated.IntegratedGradients.__call__
    monkeypatch.setattr(
        explainers.integrated.IntegratedGradients, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    noise = noise_lengths({"m": model}, paths, np.arange(2), cfg, choice, draws=4)
    assert len(calls) == 1  # one model, one draw: the other three are copies
    for rule, values in noise.items():
        assert values.shape == (2, 4), rule
        np.testing.assert_array_equal(values, np.repeat(values[:, :1], 4, axis=1))
