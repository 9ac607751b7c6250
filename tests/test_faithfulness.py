"""Deletion and insertion curves on a model whose score is the light in one region."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_xai.xai import faithfulness

SIDE, STEPS = 16, 8


@pytest.fixture(scope="module")
def setup():
    """Three images of ones; the score is the sum of channel 0 over a 4 x 8 region (32 of 256 pixels)."""
    images = np.ones((3, SIDE, SIDE, 2), np.float32)
    region = np.zeros((SIDE, SIDE), bool)
    region[2:6, 4:12] = True
    calls = []

    def score_fn(batch):
        calls.append(len(batch))
        return batch[:, region, 0].sum(axis=1)

    rng = np.random.default_rng(1)
    maps = {
        "region_first": np.broadcast_to(region + 0.01 * rng.random((SIDE, SIDE)), (3, SIDE, SIDE)),
        "random": rng.random((3, SIDE, SIDE)),
        "region_last": np.broadcast_to(~region + 0.01 * rng.random((SIDE, SIDE)), (3, SIDE, SIDE)),
    }
    return images, region, score_fn, maps, calls


def test_ranking_the_region_first_deletes_steepest(setup):
    images, region, score_fn, maps, _ = setup
    zeros = np.zeros_like(images)
    area = {
        name: faithfulness.curve_areas(
            faithfulness.perturbation_curves(images, m, score_fn, zeros, "deletion", STEPS)
        )
        for name, m in maps.items()
    }
    # Region first: the region (1/8 of the pixels) is gone after step 1, a linear fall then zero.
    assert area["region_first"] == pytest.approx(np.full(3, 32 * 0.5 / STEPS))
    assert np.all(area["region_first"] < area["random"]) and np.all(area["random"] < area["region_last"])
    # A random order removes the region at an even pace: about half the full score's area.
    assert area["random"] == pytest.approx(np.full(3, 16.0), abs=4.0)


def test_insertion_is_the_mirror_image(setup):
    images, region, score_fn, maps, _ = setup
    zeros = np.zeros_like(images)
    curves = faithfulness.deletion_insertion(images, maps["region_first"], score_fn, zeros, zeros, STEPS)
    assert curves["insertion"][:, 0] == pytest.approx(0) and curves["insertion"][:, -1] == pytest.approx(32)
    assert curves["deletion"][:, 0] == pytest.approx(32) and curves["deletion"][:, -1] == pytest.approx(0)
    assert curves["insertion"][:, 1:] == pytest.approx(32)  # the whole region is back after one step
    assert curves["insertion_auc"] == pytest.approx(32 - curves["deletion_auc"])
    random = faithfulness.deletion_insertion(images, maps["random"], score_fn, zeros, zeros, STEPS)
    assert np.all(random["insertion_auc"] < curves["insertion_auc"])


def test_batching_does_not_change_the_curves(setup):
    images, region, score_fn, maps, calls = setup
    baseline = faithfulness.sky_baseline(images * 0.5 + 0.1, border_px=2)
    calls.clear()
    one = faithfulness.perturbation_curves(images, maps["random"], score_fn, baseline, "deletion", STEPS, batch_size=5)
    assert max(calls) <= 5 and sum(calls) == 3 * (STEPS + 1)
    every = faithfulness.perturbation_curves(images, maps["random"], score_fn, baseline, "deletion", STEPS)
    assert one == pytest.approx(every)


def test_constant_maps_get_a_seeded_random_order():
    maps = np.zeros((2, 4, 4))
    a, b = faithfulness.pixel_ranks(maps, seed=0), faithfulness.pixel_ranks(maps, seed=0)
    assert np.array_equal(a, b) and sorted(a[0].ravel()) == list(range(16))
    assert not np.array_equal(a[0].ravel(), np.arange(16))  # not a raster scan
    ramp = np.arange(16.0).reshape(1, 4, 4)
    assert faithfulness.pixel_ranks(ramp)[0, 3, 3] == 0 and faithfulness.pixel_ranks(ramp)[0, 0, 0] == 15


def test_baselines():
    rng = np.random.default_rng(0)
    images = rng.random((2, 12, 12, 3)).astype(np.float32)
    images[1, :2] = 0.25  # a border row of sky
    sky = faithfulness.sky_baseline(images, border_px=2)
    assert sky.shape == images.shape and np.ptp(sky[0], axis=(0, 1)) == pytest.approx(0)
    blurred = faithfulness.blurred_baseline(images, sigma_px=2.0)
    assert blurred.shape == images.shape and blurred.std() < images.std()
    with pytest.raises(ValueError, match="mode"):
        faithfulness.perturbation_curves(images, images[..., 0], lambda x: x.sum((1, 2, 3)), sky, "erase")
