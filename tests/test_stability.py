"""Rotation stability: turned galaxies are explained again and measured under both linearity rules."""

from __future__ import annotations

import numpy as np

from galaxy_xai import barlength, saliency
from galaxy_xai.config import config_from_dict
from galaxy_xai.images import load_images
from galaxy_xai.models import build_model
from galaxy_xai.stability import noise_lengths, rotation_lengths
from tests.fixtures import write_jpeg


def test_rotation_lengths_shape_units_and_reproducibility(tmp_path):
    paths = []
    for i in range(3):
        write_jpeg(tmp_path / f"{i}.jpg", seed=i)
        paths.append(str(tmp_path / f"{i}.jpg"))
    cfg = config_from_dict(
        {
            "models": {"m": {"arch": "vgg_small"}},
            "images": {"crop_px": 212, "size_px": 32},
            "xai": {"smoothgrad": {"samples": 2, "batch_size": 8}, "rotation": {"angles_deg": [0, 90, 0]}},
        }
    )
    model = build_model("vgg_small", 32, seed=1)
    choice = barlength.Choice("m", x_input=True, corr_threshold=0.6, len_threshold=20)
    objids = np.arange(100, 103)
    lengths = rotation_lengths({"m": model}, paths, objids, cfg, choice)
    assert set(lengths) == set(barlength.LINEARITIES)
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
    maps = [
        saliency.explain_xai(model, load_images(paths, cfg.images), cfg.xai, saliency.draw_seed(cfg.seed, "m", d), keys=objids)
        for d in (0, 1)
    ]
    assert not np.array_equal(maps[0], maps[1])  # independent draws, so lengths may differ
