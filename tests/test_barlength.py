"""Algorithm 1: the fast implementation against the literal published one, invariants, edge cases."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from galaxy_xai import units
from galaxy_xai.bars import algorithm1, barlength
from galaxy_xai.bars.algorithm1 import (
    bar_length_grid,
    bar_length_px,
    bar_lengths_grid,
    isolate_bar,
    max_pixel_distance,
)
from galaxy_xai.bars.barlength import MEAN_LENGTH, MEAN_MAP
from galaxy_xai.config import ESTIMATORS, LINEARITIES, MASKS
from galaxy_xai.xai import heatmaps
from galaxy_xai.xai.maps import normalise_maps, within_radius
from tests.oracle import (
    bar_like_map,
    ideal_bar_maps,
    mixed_maps,
    published_length,
    published_mask,
    smooth_blob_map,
)

T_C = [0.7, 0.75, 0.8, 0.85, 0.9]
T_L = [2, 3, 5, 10, 20]


def assert_matches_oracle(cam: np.ndarray, c_t: float, l_t: float) -> None:
    expected_mask = published_mask(cam, c_t, l_t)
    np.testing.assert_array_equal(isolate_bar(cam, c_t, l_t), expected_mask.astype(bool))
    assert bar_length_px(cam, c_t, l_t) == published_length(expected_mask)


def test_matches_published_algorithm_on_mixed_maps():
    maps = mixed_maps(16, 28, seed=3)
    rng = np.random.default_rng(4)
    for cam in maps:
        assert_matches_oracle(cam, float(rng.choice(T_C)), int(rng.choice(T_L)))


@pytest.mark.parametrize("angle_deg", range(0, 180, 15))
def test_matches_published_algorithm_on_bars_at_every_angle(angle_deg):
    rng = np.random.default_rng(angle_deg)
    cam = bar_like_map(40, rng, angle_deg=angle_deg).astype(np.float16)
    for c_t, l_t in ((0.7, 3), (0.9, 12)):
        assert_matches_oracle(cam, c_t, l_t)


def test_matches_published_algorithm_on_smooth_blobs():
    rng = np.random.default_rng(5)
    for _ in range(4):
        assert_matches_oracle(smooth_blob_map(28, rng), 0.8, 5)


# Pixel sets (flat indices in a 5x5 map) whose exact |r| equals T_c: numpy.corrcoef rounds some above
# and some below T_c, and the fast path must follow it. The pixel with the lowest value is placed so
# that dropping it changes the length.
EXACT_TIES = [
    (0.8, [3, 9, 15, 21]),
    (0.8, [1, 8, 12, 19]),
    (0.85, [2, 3, 8, 14, 19, 24]),
    (0.9, [0, 7, 11, 18, 24]),
    (0.75, [3, 6, 7, 9, 11, 16, 20]),
    (0.7, [2, 3, 6, 12, 16, 21]),
    (0.7, [1, 7, 10, 19, 23, 24]),
]


@pytest.mark.parametrize(("c_t", "pixels"), EXACT_TIES)
def test_follows_published_rounding_when_r_equals_the_threshold(c_t, pixels):
    cam = np.zeros((5, 5))
    cam.flat[pixels] = np.linspace(0.6, 1.0, len(pixels))
    assert_matches_oracle(cam, c_t, len(pixels))


def test_exact_recheck_path_agrees_with_published(monkeypatch):
    monkeypatch.setattr(algorithm1, "_RECHECK_TOL", 2.0)  # every decision via numpy.corrcoef
    for cam in mixed_maps(4, 20, seed=9):
        assert_matches_oracle(cam, 0.8, 4)


def test_single_hot_pixel():
    cam = np.zeros((20, 20))
    cam[7, 11] = 1.0
    mask = isolate_bar(cam, 0.8, 5)
    assert mask.sum() == 1 and mask[7, 11]
    assert bar_length_px(cam, 0.8, 5) == 1.0
    assert_matches_oracle(cam, 0.8, 5)


@pytest.mark.parametrize("value", [0.0, 0.5, 0.7, 1.0])
def test_constant_maps(value):
    cam = np.full((12, 12), value)
    assert_matches_oracle(cam, 0.8, 10)
    if value == 1.0:  # no count floor: the scan runs to the last threshold
        assert_matches_oracle(cam, 0.8, 0)


def test_all_below_half_gives_empty_mask_and_length_one():
    cam = np.random.default_rng(0).uniform(0, 0.5, (16, 16))
    assert not isolate_bar(cam, 0.8, 3).any()
    assert bar_length_px(cam, 0.8, 3) == 1.0


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 2), (3, 3)])
def test_tiny_maps(shape):
    rng = np.random.default_rng(sum(shape))
    for l_t in (0, 2, 4):
        assert_matches_oracle(rng.random(shape), 0.8, l_t)


def test_bad_maps_are_rejected_with_a_clear_error():
    cam = np.ones((8, 8))
    cam[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bar_length_px(cam, 0.8, 5)
    with pytest.raises(ValueError, match=r"saliency_maps\[1\].*NaN"):
        bar_lengths_grid(np.stack([np.ones((8, 8)), cam]), [0.8], [5])
    with pytest.raises(ValueError, match="2-D"):
        isolate_bar(np.ones((2, 8, 8)), 0.8, 5)
    with pytest.raises(ValueError, match=r"\(n, H, W\)"):
        bar_lengths_grid(np.ones((8, 8)), [0.8], [5])
    with pytest.raises(ValueError, match="linearity"):
        bar_length_px(np.ones((8, 8)), 0.8, 5, linearity="pearson")


def rasterised_line(size: int, angle_deg: float, half_length: float) -> tuple[np.ndarray, float]:
    """A one-pixel-wide line through the centre (value 1 on 0) and its end-to-end length in pixels."""
    t = np.linspace(-half_length, half_length, 8 * size)
    theta = np.deg2rad(angle_deg)
    rows = np.rint(size / 2 + t * np.sin(theta)).astype(int)
    cols = np.rint(size / 2 + t * np.cos(theta)).astype(int)
    cam = np.zeros((size, size))
    cam[rows, cols] = 1.0
    return cam, float(np.hypot(rows[-1] - rows[0], cols[-1] - cols[0]))


@pytest.mark.parametrize("linearity", LINEARITIES)
@pytest.mark.parametrize("angle_deg", np.arange(0, 180, 7.5))
def test_straight_line_gives_its_length(angle_deg, linearity):
    cam, expected = rasterised_line(48, angle_deg, 17.0)
    assert bar_length_px(cam, 0.8, 3, linearity) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(isolate_bar(cam, 0.8, 3, linearity), cam > 0)


def test_elongation_is_rotation_invariant_and_abs_pearson_is_not():
    size = 64
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    spreads = {}
    for linearity in LINEARITIES:
        lengths = []
        for angle in np.deg2rad(np.arange(0, 180, 15)):
            u = xx * np.cos(angle) + yy * np.sin(angle)
            v = -xx * np.sin(angle) + yy * np.cos(angle)
            cam = np.exp(-0.5 * ((u / 12.0) ** 2 + (v / 3.0) ** 2))
            lengths.append(bar_length_px(cam, 0.85, 10, linearity))
        spreads[linearity] = np.ptp(lengths) / np.mean(lengths)
    assert spreads["elongation"] <= 0.05
    assert spreads["abs_pearson"] > 3 * spreads["elongation"]


def test_elongation_exact_under_quarter_turns():
    cam = bar_like_map(40, np.random.default_rng(2), angle_deg=30)
    lengths = [bar_length_px(np.rot90(cam, k), 0.8, 5, "elongation") for k in range(4)]
    assert lengths == [lengths[0]] * 4


def elongation_reference_mask(cam: np.ndarray, c_t: float, l_t: float) -> np.ndarray:
    """The published loop with 1 - lambda_min / lambda_max of numpy.cov in place of |r|."""
    for heat_threshold in algorithm1.THRESHOLDS:
        x, y = np.asarray(cam > heat_threshold).nonzero()
        value = np.nan
        if len(x) >= 2:
            lam = np.linalg.eigvalsh(np.cov(x, y))
            value = 1 - max(lam[0], 0) / lam[1] if lam[1] > 0 else np.nan
        if value > c_t or len(x) < l_t:
            break
    return cam > heat_threshold


def test_elongation_matches_a_direct_covariance_loop():
    for cam in mixed_maps(6, 20, seed=12):
        for c_t in (0.7, 0.9):
            np.testing.assert_array_equal(
                isolate_bar(cam, c_t, 4, "elongation"), elongation_reference_mask(cam, c_t, 4)
            )


@pytest.mark.parametrize("linearity", LINEARITIES)
def test_grid_equals_single_function_for_every_pair(linearity):
    maps = mixed_maps(5, 32, seed=21)
    grid = bar_lengths_grid(maps, T_C, T_L, linearity)
    assert grid.shape == (5, len(T_C), len(T_L))
    for k, cam in enumerate(maps):
        np.testing.assert_array_equal(grid[k], bar_length_grid(cam, T_C, T_L, linearity))
        for i, c_t in enumerate(T_C):
            for j, l_t in enumerate(T_L):
                assert grid[k, i, j] == bar_length_px(cam, c_t, l_t, linearity)


def test_max_pixel_distance_equals_brute_force():
    rng = np.random.default_rng(8)
    for k in (0, 1, 2, 3, 10, 200):
        rows, cols = rng.integers(0, 30, k), rng.integers(0, 30, k)
        pts = np.unique(np.stack([rows, cols], 1), axis=0)
        d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)).max() if len(pts) > 1 else 1.0
        assert max_pixel_distance(pts[:, 0], pts[:, 1]) == max(1.0, d)
    diagonal = np.arange(50)
    assert max_pixel_distance(diagonal, 2 * diagonal) == np.sqrt(49**2 + 98**2)
    assert max_pixel_distance(diagonal - 20, -diagonal) == np.sqrt(2 * 49**2)


@pytest.mark.parametrize(
    ("t_l", "map_px", "crop_px", "expected"),
    [(10, 224, None, 10), (50, 64, None, 4), (10, 64, None, 2), (30, 448, None, 120),
     (10, 64, 212, 3), (50, 64, 212, 16), (10, 112, 212, 10), (40, 64, 160, 23)],
)  # fmt: skip
def test_len_threshold_scales_with_the_area_of_a_map_pixel(t_l, map_px, crop_px, expected):
    assert algorithm1.scale_len_threshold(t_l, map_px, crop_px) == expected


def test_len_threshold_rejects_a_bad_crop():
    with pytest.raises(ValueError, match="crop_px <= 424"):
        algorithm1.scale_len_threshold(10, 64, 500)


def test_maps_to_measure_multiplies_input_and_renormalises():
    maps = np.stack([np.linspace(0.2, 0.6, 16).reshape(4, 4), np.full((4, 4), 0.3)])
    grey = np.full((2, 4, 4), 0.5)
    grey[0, 0, 0] = 0.0
    out = barlength.maps_to_measure(maps, grey, x_input=True)
    product = maps[0] * grey[0]
    np.testing.assert_allclose(out[0], (product - product.min()) / np.ptp(product), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(
        barlength.maps_to_measure(maps[:1], grey[:1], x_input=False)[0],
        (maps[0] - 0.2) / 0.4,
        rtol=1e-6,
        atol=1e-7,
    )


def test_map_source_lengths_combines_models_as_documented():
    maps = mixed_maps(9, 24, seed=30)
    model_maps = {"a": maps[:3], "b": maps[3:6], "c": maps[6:9]}
    grey = np.random.default_rng(1).random((3, 24, 24))
    out = barlength.map_source_lengths(model_maps, grey, [False, True], T_C[:2], T_L[:3], chunk_size=2)
    assert set(out) == {(m, x) for m in ["a", "b", "c", MEAN_MAP, MEAN_LENGTH] for x in (False, True)}
    for x in (False, True):
        per_model = [
            bar_lengths_grid(barlength.maps_to_measure(m, grey, x), T_C[:2], T_L[:3])
            for m in model_maps.values()
        ]
        np.testing.assert_array_equal(out[("b", x)], per_model[1])
        np.testing.assert_allclose(out[(MEAN_LENGTH, x)], np.mean(per_model, axis=0))
        mean_map = barlength.maps_to_measure(
            np.mean(maps.astype(np.float32).reshape(3, 3, 24, 24), axis=0), grey, x
        )
        np.testing.assert_array_equal(out[(MEAN_MAP, x)], bar_lengths_grid(mean_map, T_C[:2], T_L[:3]))
    only = barlength.map_source_lengths(model_maps, grey, [True], [0.8], [3], sources=[MEAN_LENGTH])
    assert set(only) == {(MEAN_LENGTH, True)}
    with pytest.raises(ValueError, match="unknown"):
        barlength.map_source_lengths(model_maps, grey, [True], [0.8], [3], sources=["vgg16"])


def write_heatmaps(path, objids, n_draws_test=2, size=8, seed=0):
    rng = np.random.default_rng(seed)
    split = np.array(["val"] * len(objids) + ["test"] * len(objids) * n_draws_test, dtype="<U4")
    ids = np.tile(np.asarray(objids, dtype=np.int64), 1 + n_draws_test)
    draw = np.concatenate(
        [np.zeros(len(objids))] + [np.full(len(objids), d) for d in range(n_draws_test)]
    ).astype(np.int8)
    maps = rng.random((ids.size, size, size)).astype(np.float16)
    np.savez(
        path, maps=maps, objid=ids, split=split, draw=draw, grey=maps[:, ::-1], model="m", method="smoothgrad"
    )
    return maps, ids, split, draw


def test_read_heatmaps_selects_and_orders_by_objid(tmp_path):
    maps, ids, split, draw = write_heatmaps(tmp_path / "m.npz", [11, 12, 13])
    got, grey = heatmaps.read_heatmaps(tmp_path, ["m"], [13, 11], "test", draw=1)
    rows = [np.flatnonzero((ids == o) & (split == "test") & (draw == 1))[0] for o in (13, 11)]
    np.testing.assert_array_equal(got["m"], maps[rows])
    np.testing.assert_array_equal(grey, maps[rows][:, ::-1])
    with pytest.raises(ValueError, match="objid 99"):
        heatmaps.read_heatmaps(tmp_path, ["m"], [11, 99], "val", draw=0)
    with pytest.raises(ValueError, match="not found"):
        heatmaps.read_heatmaps(tmp_path, ["other"], [11], "val", draw=0)


def _write_choice(path, **chosen):
    import json

    path.write_text(json.dumps({"chosen": chosen}))
    return path


def test_read_choice_and_measure_choice_agree_with_the_grid(tmp_path):
    models = ["a", "b"]
    path = _write_choice(
        tmp_path / "grid.json", map_source="mean_map", x_input=True, corr_threshold=0.8, len_threshold=30
    )
    choice = barlength.read_choice(path, models)
    assert choice == barlength.Choice("mean_map", True, 0.8, 30.0)
    assert choice.models_needed(models) == models and barlength.Choice("b", False, 0.8, 30).models_needed(models) == ["b"]
    rng = np.random.default_rng(3)
    maps = {m: np.stack([bar_like_map(32, rng, angle_deg=angle) for angle in (0, 40, 95)]) for m in models}
    grey = rng.random((3, 32, 32))
    len_px = choice.len_threshold_px(32, 212)
    expected = barlength.map_source_lengths(maps, grey, [True], [0.8], [len_px])[("mean_map", True)][:, 0, 0]
    np.testing.assert_array_equal(barlength.measure_choice(maps, grey, choice, 212), expected)


def test_read_choice_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(ValueError, match="missing.json: not found; expected the gridsearch stage's JSON"):
        barlength.read_choice(tmp_path / "missing.json", ["a"])
    bad = _write_choice(tmp_path / "bad.json", map_source="nope", x_input=False, corr_threshold=0.8, len_threshold=10)
    with pytest.raises(ValueError, match="bad.json: chosen map_source 'nope' is not one of"):
        barlength.read_choice(bad, ["a"])
    (tmp_path / "partial.json").write_text('{"chosen": {"map_source": "a"}}')
    with pytest.raises(ValueError, match="partial.json: expected"):
        barlength.read_choice(tmp_path / "partial.json", ["a"])


def test_elongation_recovers_the_lengths_of_ideal_bar_maps_and_abs_pearson_does_not():
    """Why the default rule is elongation: with bars at every angle, |r| stops late on bars near an
    image axis (r ~ 0 there), so the measured length loses track of the true one."""
    maps, truth = ideal_bar_maps(150, 64, np.random.default_rng(11))
    rho = {
        rule: np.corrcoef(bar_lengths_grid(maps, [0.6], [6], rule)[:, 0, 0], truth)[0, 1]
        for rule in LINEARITIES
    }
    assert rho["elongation"] > 0.9, rho
    assert rho["abs_pearson"] < rho["elongation"] - 0.2, rho


# --------------------------------------------------------------------------------------------------
# Settings beyond the paper's: the Fourier estimator, the R90 mask and the image-only source

ALL_ESTIMATORS = list(ESTIMATORS)
ALL_MASKS = list(MASKS)


def test_r90_in_map_pixels():
    """Every GZ2 image has R90 = 50 of its 424 px: 20 px of a 64-px map of the 160-px crop."""
    assert units.r90_map_px(64, 160) == pytest.approx(20.0)
    assert units.r90_map_px(224, None) == pytest.approx(50 * 224 / 424)
    assert barlength.Choice("m", False, 0.5, 10, mask="r90").radius_px(64, 160) == pytest.approx(20.0)
    assert barlength.Choice("m", False, 0.5, 10).radius_px(64, 160) is None


def test_within_radius_is_a_centred_disc():
    inside = within_radius((5, 5), 1.0)
    expected = np.zeros((5, 5), dtype=bool)
    expected[2, 1:4] = expected[1:4, 2] = True
    np.testing.assert_array_equal(inside, expected)
    even = within_radius((64, 64), 20.0)
    assert even.sum() == pytest.approx(np.pi * 20**2, rel=0.02)
    np.testing.assert_array_equal(even, even[::-1, ::-1])


@pytest.mark.parametrize("estimator", ALL_ESTIMATORS)
def test_the_r90_mask_stops_a_stray_pixel_outside_r90_from_setting_the_length(estimator):
    """A neighbour or a star in the corner is a bright pixel far outside the galaxy's R90 (20 px of a
    64-px map): without the mask Algorithm 1's largest distance reaches it; with it nothing changes."""
    maps, truth = ideal_bar_maps(40, 64, np.random.default_rng(21))
    stray = maps.copy()
    stray[:, 2, 2] = 1.0
    params = {"corr_threshold": 0.6, "len_threshold": 10} if estimator == "algorithm1" else {"fraction": 0.5, "floor": 0.0}
    grey = np.ones_like(maps)

    def lengths(stack, mask):
        setting = barlength.Choice("m", False, estimator=estimator, mask=mask, **params)
        return barlength.measure_choice({"m": stack}, grey, setting, crop_px=160, linearity="elongation")

    np.testing.assert_array_equal(lengths(stray, "r90"), lengths(maps, "r90"))
    assert np.corrcoef(lengths(stray, "r90"), truth)[0, 1] > 0.9
    if estimator == "algorithm1":
        assert (lengths(stray, "none") > lengths(maps, "none") + 10).mean() > 0.5


def test_maps_to_measure_zeroes_outside_the_radius_before_renormalising():
    maps = np.full((1, 9, 9), 0.2)
    maps[0, 4, 4] = 0.6
    maps[0, 0, 0] = 1.0  # the brightest pixel lies outside the radius: the map is rescaled without it
    out = barlength.maps_to_measure(maps, maps, x_input=False, radius_px=2.0)
    assert out[0, 4, 4] == pytest.approx(1.0) and out[0, 0, 0] == 0.0
    assert out[0, 4, 5] == pytest.approx(0.2 / 0.6)


def test_the_image_source_is_the_sky_subtracted_grey_input_clipped_at_zero():
    grey = np.full((1, 6, 6), 0.3)
    grey[0, 0, :2] = 0.1  # a few dark border pixels do not move the median of the border's 20
    grey[0, 2:4, 2:4] = 0.8
    image = barlength.image_maps(grey)
    assert image.dtype == np.float32
    expected = np.zeros((6, 6))
    expected[2:4, 2:4] = 0.5
    np.testing.assert_allclose(image[0], expected, atol=1e-7)


def test_setting_lengths_measure_every_source_as_documented():
    rng = np.random.default_rng(22)
    n, size, crop = 5, 24, 96  # R90 = 12.5 px
    model_maps = {m: np.stack([bar_like_map(size, rng, angle_deg=a) for a in rng.uniform(0, 180, n)]) for m in "abc"}
    grey = rng.random((n, size, size))
    settings = barlength.grid_settings(
        barlength.map_sources(list(model_maps)), ALL_ESTIMATORS, [False, True], ALL_MASKS, [0.7, 0.8], [10, 40],
        [0.3, 0.6], [0.0, 0.3],
    )  # fmt: skip
    # 8 sources; the image is never multiplied by itself (its residual and high-pass are).
    assert len(settings) == (7 * 2 + 1) * 2 * (4 + 4)
    lengths = barlength.setting_lengths(model_maps, grey, settings, crop, "elongation", chunk_size=2)
    assert lengths.shape == (n, len(settings))
    raw = {**model_maps, MEAN_MAP: np.mean([v.astype(np.float32) for v in model_maps.values()], axis=0)}
    raw[barlength.IMAGE] = barlength.image_maps(grey.astype(np.float32))  # inputs are measured in float32
    raw[barlength.IMAGE_RESIDUAL] = barlength.residual_maps(grey.astype(np.float32))
    raw[barlength.IMAGE_HIGHPASS] = barlength.highpass_maps(grey.astype(np.float32), barlength.DEFAULT_HIGHPASS_SIGMA_PX)

    def direct(source, setting):
        measured = barlength.maps_to_measure(raw[source], grey, setting.x_input, setting.radius_px(size, crop))
        if setting.estimator == "fourier":
            return barlength.fourier_map_lengths(measured, [setting.fraction], setting.floor)[:, 0]
        len_px = setting.len_threshold_px(size, crop)
        return bar_lengths_grid(measured, [setting.corr_threshold], [len_px], "elongation")[:, 0, 0]

    for s, setting in enumerate(settings):
        if setting.map_source == MEAN_LENGTH:
            expected = np.mean([direct(m, setting) for m in model_maps], axis=0)
        else:
            expected = direct(setting.map_source, setting)
        np.testing.assert_allclose(lengths[:, s], expected, rtol=1e-12, err_msg=str(setting))
    # The same settings in another order give the same columns.
    order = rng.permutation(len(settings))
    shuffled = barlength.setting_lengths(model_maps, grey, [settings[i] for i in order], crop, "elongation", chunk_size=2)
    np.testing.assert_array_equal(shuffled, lengths[:, order])
    # The image sources need no model maps.
    image = [c for c in settings if c.map_source in barlength.IMAGE_SOURCES]
    assert {c.map_source for c in image} == set(barlength.IMAGE_SOURCES)
    np.testing.assert_array_equal(
        barlength.setting_lengths({}, grey, image, crop, "elongation", chunk_size=2),
        lengths[:, [settings.index(c) for c in image]],
    )


def test_the_paper_configuration_is_the_paper_grid():
    """estimators [algorithm1], mask [none]: the grid and the lengths of the paper's protocol."""
    maps = mixed_maps(6, 24, seed=31)
    model_maps = {"a": maps[:3], "b": maps[3:]}
    grey = np.random.default_rng(2).random((3, 24, 24))
    sources = barlength.saliency_sources(list(model_maps))
    settings = barlength.grid_settings(sources, ["algorithm1"], [False, True], ["none"], T_C[:2], [10, 50], [0.5])
    assert len(settings) == len(sources) * 2 * 2 * 2
    assert {(c.estimator, c.mask) for c in settings} == {("algorithm1", "none")}
    assert all(np.isnan(c.fraction) for c in settings)
    lengths = barlength.setting_lengths(model_maps, grey, settings, 212, "abs_pearson")
    len_px = [algorithm1.scale_len_threshold(t, 24, 212) for t in (10, 50)]
    paper = barlength.map_source_lengths(model_maps, grey, [False, True], T_C[:2], len_px)
    expected = np.concatenate([paper[(m, x)].reshape(3, -1) for m in sources for x in (False, True)], axis=1)
    np.testing.assert_array_equal(lengths, expected)


def test_fourier_map_lengths_give_a_map_without_signal_the_floor():
    maps = np.zeros((2, 16, 16))
    maps[1] = ideal_bar_maps(1, 16, np.random.default_rng(1))[0][0]
    lengths = barlength.fourier_map_lengths(maps, [0.5])
    assert lengths[0, 0] == barlength.NO_BAR_LENGTH_PX and lengths[1, 0] > 2
    with pytest.raises(ValueError, match="floor"):
        barlength.fourier_map_lengths(maps, [0.5], floor=1.0)


def test_a_floor_stops_faint_speckle_from_carrying_the_fourier_length_to_the_edge():
    """Faint sparse speckle (as in saliency maps): A2 is a ratio, so a few faint pixels in an outer
    annulus give it an m = 2 amplitude as large as the bar's and the amplitude rule runs on past the
    bar; above a floor those annuli are empty and the bar's end is found. (A speckle pixel brighter
    than the floor would still be a lone pixel of A2 = 1: the floor is chosen on validation.)"""
    rng = np.random.default_rng(23)
    maps, truth = ideal_bar_maps(60, 64, rng)
    speckle = np.where(rng.random(maps.shape) < 0.02, rng.uniform(0.05, 0.15, maps.shape), 0.0)
    bars = np.clip(maps - 0.3, 0, None)  # the ideal bar without its uniform noise
    noisy = normalise_maps(bars + speckle)
    plain = barlength.fourier_map_lengths(noisy, [0.5])[:, 0]
    floored = barlength.fourier_map_lengths(noisy, [0.5], floor=0.3)[:, 0]
    assert np.median(plain) > 1.5 * np.median(floored)
    assert np.corrcoef(floored, truth)[0, 1] > 0.95 and np.corrcoef(plain, truth)[0, 1] < 0.6


def test_a_setting_names_only_the_parameters_of_its_estimator():
    fourier = barlength.Choice("m", True, estimator="fourier", mask="r90", fraction=0.5, floor=0.3)
    assert fourier.len_threshold_px(64, 160) is None
    record = fourier.record(64, 160)
    assert np.isnan(record["corr_threshold"]) and np.isnan(record["len_threshold_px"])
    # Through JSON (NaN -> null) and back: equal and with the same hash.
    again = barlength.Choice.from_json(json.loads(json.dumps(fourier.to_json(64, 160))))
    assert again == fourier and hash(again) == hash(fourier)
    assert barlength.Choice.from_json({"map_source": "m", "x_input": False, "corr_threshold": 0.8, "len_threshold": 30}) == (
        barlength.Choice("m", False, 0.8, 30.0, "algorithm1", "none")
    )
    bad = [
        dict(map_source="m", x_input=False, estimator="fourier", fraction=0.5, floor=0.0, corr_threshold=0.7),
        dict(map_source="m", x_input=False, estimator="fourier", fraction=0.5),
        dict(map_source="m", x_input=False, estimator="fourier", fraction=0.5, floor=1.0),
        dict(map_source="m", x_input=False, estimator="fourier", fraction=1.5, floor=0.0),
        dict(map_source="m", x_input=False, corr_threshold=0.7, len_threshold=10, fraction=0.5),
        dict(map_source="m", x_input=False, corr_threshold=0.7),
        dict(map_source="m", x_input=False, corr_threshold=0.7, len_threshold=10, estimator="moments"),
        dict(map_source="m", x_input=False, corr_threshold=0.7, len_threshold=10, mask="r50"),
        dict(map_source="image", x_input=True, corr_threshold=0.7, len_threshold=10),
    ]
    for fields in bad:
        with pytest.raises(ValueError):
            barlength.Choice(**fields)
    # A Fourier record written before floors existed has no floor: 0.
    old = barlength.Choice.from_json({"map_source": "m", "x_input": False, "estimator": "fourier", "fraction": 0.5})
    assert old.floor == 0.0
    assert barlength.Choice("image", False, 0.7, 10).models_needed(["a", "b"]) == ["a"]


def test_read_choice_reads_the_image_choice_and_the_best_settings(tmp_path):
    image = barlength.Choice("image", False, estimator="fourier", mask="r90", fraction=0.3, floor=0.2)
    best = [barlength.Choice("a", True, 0.8, 30.0), image]
    path = tmp_path / "grid.json"
    path.write_text(
        json.dumps(
            {
                "chosen": best[0].to_json(64, 160),
                "chosen_image": image.to_json(64, 160),
                "best_per_estimator": [{**c.to_json(64, 160), "rho_image": 0.4} for c in best],
            }
        )
    )
    assert barlength.read_choice(path, ["a"], "chosen_image") == image
    settings = barlength.read_settings(path, ["a"])
    assert [c for c, _ in settings] == best and settings[1][1]["rho_image"] == 0.4
    with pytest.raises(ValueError, match="grid.json: best_per_estimator\\[0\\] map_source 'a' is not one of"):
        barlength.read_settings(path, ["b"])
    with pytest.raises(ValueError, match="grid.json: expected the gridsearch stage's JSON with a 'missing' entry"):
        barlength.read_choice(path, ["a"], "missing")


def test_the_grid_keys_name_the_bad_item():
    from galaxy_xai.config import ConfigError, config_from_dict
    from tests.e2e import complete

    for key, value, message in (
        ("estimators", ["algorithm1", "moments"], "xai.grid.estimators[1] = 'moments': expected one of algorithm1, fourier"),
        ("mask", ["r50"], "xai.grid.mask[0] = 'r50': expected one of none, r90"),
        ("fourier_fraction", [1.0], "xai.grid.fourier_fraction[0] = 1.0: expected a number in [0.01, 0.99]"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            config_from_dict(complete({"xai": {"grid": {key: value}}}))
    grid = config_from_dict(complete({"xai": {"grid": {"estimators": ["algorithm1"]}}})).xai.grid
    assert grid.estimators == ["algorithm1"] and grid.mask == ["none", "r90"]


def test_the_residual_source_is_the_light_that_is_not_axisymmetric():
    """A ring-constant disk leaves nothing; a bar on it leaves the bar's positive part; the sky cancels."""
    size = 32
    rows, cols = np.indices((size, size))
    radius = np.hypot(rows - 15.5, cols - 15.5)
    disk = np.exp(-np.floor(radius / 0.5) * 0.5 / 5.0)  # constant on each ring of maps.ring_means
    bar = bar_like_map(size, np.random.default_rng(3), angle_deg=30.0)
    grey = np.stack([disk + 0.1, disk + 0.3 * bar + 0.1]).astype(np.float32)
    residual = barlength.residual_maps(grey)
    assert residual.dtype == np.float32 and residual.shape == grey.shape
    assert residual[0].max() < 1e-6  # no structure but the axisymmetric disk and the sky
    peak = np.unravel_index(np.argmax(residual[1]), (size, size))
    assert bar[peak] > 0.5 * bar.max()  # what is left sits on the bar
    assert (residual >= 0).all()


def test_the_highpass_source_is_the_structure_finer_than_the_blur():
    """A constant sky and a disk much smoother than the blur leave ~nothing; a thin bar leaves its ridge."""
    size = 48
    rows, cols = np.indices((size, size))
    radius = np.hypot(rows - 23.5, cols - 23.5)
    smooth = 0.1 + np.exp(-((radius / 40.0) ** 2))  # varies over far more than the 2-px blur
    bar = bar_like_map(size, np.random.default_rng(4), angle_deg=60.0)
    grey = np.stack([smooth, smooth + 0.5 * bar]).astype(np.float32)
    highpass = barlength.highpass_maps(grey, sigma_px=2.0)
    assert highpass.dtype == np.float32 and highpass.shape == grey.shape and (highpass >= 0).all()
    inner = (slice(6, -6), slice(6, -6))  # away from the reflected edges
    assert highpass[0][inner].max() < 0.05 * highpass[1].max()
    peak = np.unravel_index(np.argmax(highpass[1]), (size, size))
    assert bar[peak] > 0.5 * bar.max()
    lengths = barlength.setting_lengths(
        {}, grey, [barlength.Choice(barlength.IMAGE_HIGHPASS, False, 0.9, 10.0)], None, highpass_sigma_px=2.0
    )
    assert lengths.shape == (2, 1) and lengths[1, 0] > 10


def test_each_map_source_gives_the_maps_it_measures():
    rng = np.random.default_rng(3)
    maps = {"a": rng.random((2, 16, 16)).astype(np.float32), "b": rng.random((2, 16, 16)).astype(np.float32)}
    grey = rng.random((2, 16, 16)).astype(np.float32)
    (mean,) = barlength.source_maps(maps, grey, MEAN_MAP)
    np.testing.assert_allclose(mean, (maps["a"] + maps["b"]) / 2, rtol=1e-6)
    both = barlength.source_maps(maps, grey, MEAN_LENGTH)  # each model's map: its lengths are averaged
    assert len(both) == 2 and all(np.array_equal(x, maps[m]) for x, m in zip(both, maps, strict=True))
    assert np.array_equal(barlength.source_maps(maps, grey, "b")[0], maps["b"])
    np.testing.assert_array_equal(barlength.source_maps({}, grey, barlength.IMAGE_RESIDUAL)[0], barlength.residual_maps(grey))
    np.testing.assert_array_equal(barlength.source_maps({}, grey, barlength.IMAGE_HIGHPASS, 2.0)[0], barlength.highpass_maps(grey, 2.0))
    with pytest.raises(ValueError, match="'c'"):
        barlength.source_maps(maps, grey, "c")
    with pytest.raises(ValueError, match="at least one model"):
        barlength.derived_map(MEAN_MAP, {}, grey)
