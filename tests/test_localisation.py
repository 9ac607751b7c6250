"""The true bar's mask (verified by rendering) and the localisation scores' known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from galaxy_xai.data.synthetic import population, render
from galaxy_xai.xai import localisation


@pytest.fixture(scope="module")
def barred_galaxy():
    """One galaxy of the bar catalogue as the synthetic sky draws it."""
    return population.draw_galaxy(np.random.default_rng(3), "gz2")


# --- the mask's geometry -----------------------------------------------------------------------------
def test_map_pixel_centres_put_the_galaxy_centre_at_the_map_centre():
    centres = localisation.map_pixel_centres_px424(64, 160)
    assert centres[[31, 32]].mean() == pytest.approx(211.5)
    assert np.diff(centres) == pytest.approx(np.full(63, 2.5))  # 160 / 64 424-px pixels per map pixel
    assert localisation.map_pixel_centres_px424(424, None) == pytest.approx(np.arange(424))


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 75.0, 120.0])
def test_the_mask_is_the_rendered_bars_half_maximum_isophote(barred_galaxy, angle_deg):
    """Bar only, no PSF, full resolution: the pixels at >= half the bar's peak are exactly the mask,
    and the mirrored or perpendicular angle is not (the angle's sign and origin are right)."""
    galaxy = dataclasses.replace(barred_galaxy, bar_angle_deg=angle_deg)
    r_band = render.render_bands(galaxy, None, psf=False, neighbours=False, components=("bar",))[1]
    half = r_band >= 0.5 * r_band.max()

    def iou(angle):
        mask = localisation.bar_masks([galaxy.bar_length_px], [galaxy.bar_axis_ratio], [angle], 424, None)[0]
        return (mask & half).sum() / (mask | half).sum()

    assert iou(angle_deg) > 0.95
    assert iou(angle_deg + 90) < 0.5
    if angle_deg % 90:
        assert iou(180 - angle_deg) < 0.5


def test_the_bar_falls_in_the_mask_of_the_image_the_model_sees(barred_galaxy, tmp_path):
    """Whole galaxy (bulge, disk, arms, PSF) through the JPEG writer and the model's image loader at
    64 px of the 160-px crop: the light the bar adds lies in the mask, not in the mirrored one."""
    from galaxy_xai.config import ImagesConfig
    from galaxy_xai.data import images

    galaxy = dataclasses.replace(barred_galaxy, bar_angle_deg=30.0, bar_length_px=90.0)
    paths = []
    for name, components in (("with", ("bulge", "disk", "bar", "arms")), ("without", ("bulge", "disk", "arms"))):
        bands = render.render_bands(galaxy, None, neighbours=False, components=components)
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(render.encode_jpeg(render.compose_rgb(bands), 95))
        paths.append(str(path))
    seen = images.load_images(paths, ImagesConfig(crop_px=160, size_px=64))
    bar_light = (seen[0] - seen[1]).sum(axis=-1)[None]
    true, mirrored = (
        localisation.bar_masks([galaxy.bar_length_px], [galaxy.bar_axis_ratio], [angle], 64, 160)
        for angle in (30.0, 150.0)
    )
    scores = localisation.localisation_scores(bar_light, true, tolerance_px=0.0)
    wrong = localisation.localisation_scores(bar_light, mirrored, tolerance_px=0.0)
    assert scores["pointing_game"][0] == 1 and wrong["pointing_game"][0] == 0
    assert scores["rank_accuracy"][0] > 0.4 > 0.1 > wrong["rank_accuracy"][0]
    assert scores["mass_accuracy"][0] > 4 * scores["mask_fraction"][0]
    assert scores["mass_accuracy"][0] > 2 * wrong["mass_accuracy"][0]


def test_masks_from_truth_rows_and_galaxies_without_a_bar():
    truth = pd.DataFrame(
        {"bar_length_px424": [50.0, np.nan], "bar_axis_ratio": [0.25, np.nan], "bar_angle_deg": [90.0, np.nan]}
    )
    masks = localisation.bar_masks_from_truth(truth, 64, 160)
    assert masks.shape == (2, 64, 64) and masks.dtype == bool
    assert not masks[1].any()
    rows, cols = np.nonzero(masks[0])
    # position angle 90 deg: along the rows (left-right), 50 px424 = 20 map px long
    assert np.ptp(cols) > np.ptp(rows) and np.ptp(cols) + 1 == pytest.approx(20, abs=2)
    tiny = localisation.bar_masks([1.0], [0.1], [45.0], 64, 160)
    assert tiny.sum() >= 1  # the semi-axis floor keeps every mask non-empty


# --- the scores' known answers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def masks():
    return localisation.bar_masks([40.0, 80.0, 120.0], [0.3, 0.25, 0.2], [10.0, 70.0, 135.0], 64, 160)


def test_a_map_equal_to_the_mask_scores_one(masks):
    scores = localisation.localisation_scores(masks.astype(float), masks)
    for name in ("mass_accuracy", "rank_accuracy", "pointing_game"):
        assert scores[name] == pytest.approx(np.ones(3)), name


def test_a_uniform_map_scores_the_masks_area_fraction(masks):
    uniform = np.full(masks.shape, 0.7)
    fraction = masks.mean(axis=(1, 2))
    assert localisation.relevance_mass_accuracy(uniform, masks) == pytest.approx(fraction)
    assert localisation.relevance_rank_accuracy(uniform, masks) == pytest.approx(fraction)
    assert localisation.pointing_game(uniform, masks, tolerance_px=0) == pytest.approx(fraction)


def test_scores_on_hand_made_maps():
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 1, 1:3] = True  # two pixels
    maps = np.zeros((1, 4, 4))
    maps[0, 1, 1] = 3.0  # inside
    maps[0, 3, 3] = 1.0  # outside
    maps[0, 0, 0] = -5.0  # negative relevance is not counted
    assert localisation.relevance_mass_accuracy(maps, mask) == pytest.approx([0.75])
    assert localisation.relevance_rank_accuracy(maps, mask) == pytest.approx([0.5])
    assert localisation.pointing_game(maps, mask) == pytest.approx([1.0])
    maps[0, 3, 2] = 9.0  # the maximum now lies 2 px from the mask
    assert localisation.pointing_game(maps, mask, tolerance_px=1.0) == pytest.approx([0.0])
    assert localisation.pointing_game(maps, mask, tolerance_px=2.0) == pytest.approx([1.0])
    empty = np.zeros_like(mask)
    assert np.isnan(localisation.localisation_scores(maps, empty)["rank_accuracy"][0])
    with pytest.raises(ValueError, match="one shape"):
        localisation.relevance_mass_accuracy(maps[0], mask[0])


def test_mean_intervals_reuse_the_bootstrap():
    values = np.r_[np.linspace(0, 1, 41), np.nan]
    out = localisation.mean_intervals({"score": values}, n_boot=500, rng=np.random.default_rng(0))["score"]
    assert out["n"] == 41 and out["mean"] == pytest.approx(0.5)
    lo, hi = out["ci95"]
    assert lo < 0.5 < hi and hi - lo < 0.3
