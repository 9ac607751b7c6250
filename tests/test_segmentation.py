"""The segmentation reference (stage ``segment``): lengths from masks with known answers, the lengths
table's reader, the U-Net's shapes and a tiny training run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_xai import units
from galaxy_xai.config import ConfigError, config_from_dict
from galaxy_xai.models import segmentation
from galaxy_xai.xai import localisation
from tests.e2e import complete

CROP_PX, MAP_PX = 160, 32
"""The default crop and half-resolution mask side: 5 424-px pixels per map pixel."""


def ellipse(length_map_px: float, axis_ratio: float, angle_deg: float, map_px: int = MAP_PX, crop_px=CROP_PX) -> np.ndarray:
    """A drawn bar ellipse of full length ``length_map_px`` map pixels, centred on the galaxy: (1, map_px, map_px) float."""
    length_px424 = units.map_px_to_px424(length_map_px, map_px, crop_px)
    return localisation.bar_masks([length_px424], [axis_ratio], [angle_deg], map_px, crop_px).astype(float)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 45.0, 90.0, 137.0])
@pytest.mark.parametrize("length_map_px", [6.0, 11.3, 20.0])
def test_a_drawn_ellipse_measures_its_length_within_a_pixel(length_map_px, angle_deg):
    # Axis ratio 0.5: a much thinner drawn ellipse loses its tips to the pixel grid (no pixel centre
    # lies in them), so the mask itself is shorter than the ellipse.
    measured = segmentation.mask_lengths_map_px(ellipse(length_map_px, 0.5, angle_deg), CROP_PX)
    assert measured.shape == (1,)
    assert measured[0] == pytest.approx(length_map_px, abs=1.0)


def test_lengths_are_vectorised_over_a_stack_and_converted_to_424_px():
    stack = np.concatenate([ellipse(8.0, 0.4, 10.0), ellipse(16.0, 0.25, 100.0), np.zeros((1, MAP_PX, MAP_PX))])
    map_px = segmentation.mask_lengths_map_px(stack, CROP_PX)
    px424 = segmentation.mask_lengths_px424(stack, CROP_PX)
    assert map_px[:2] == pytest.approx([8.0, 16.0], abs=1.0)
    np.testing.assert_allclose(px424[:2], map_px[:2] * CROP_PX / MAP_PX)  # 5 424-px pixels per map pixel
    assert np.isnan(map_px[2]) and np.isnan(px424[2])


def test_map_px_to_px424_conversion():
    assert float(units.map_px_to_px424(10.0, 32, 160)) == pytest.approx(50.0)
    assert float(units.map_px_to_px424(10.0, 40, None)) == pytest.approx(106.0)


def test_an_empty_mask_or_one_without_a_central_component_gives_nan():
    off_centre = np.zeros((2, MAP_PX, MAP_PX))
    off_centre[1, 2:5, 2:9] = 0.9  # a blob in a corner: a neighbour or an arm, not the bar
    assert np.isnan(segmentation.mask_lengths_map_px(off_centre, CROP_PX)).all()


def test_the_bar_is_the_largest_central_component_not_a_larger_blob_elsewhere():
    probabilities = ellipse(8.0, 0.3, 0.0) * 0.9
    probabilities[0, 0:6, 0:20] = 0.8  # larger, but away from the centre
    bar = segmentation.bar_components(probabilities, CROP_PX)
    assert bar.sum() == (probabilities[0] > 0.85).sum()
    assert segmentation.mask_lengths_map_px(probabilities, CROP_PX)[0] == pytest.approx(8.0, abs=1.0)


def test_dice_scores():
    a = np.zeros((3, 4, 4), bool)
    b = a.copy()
    a[0, :2], b[0, :2] = True, True  # identical
    a[1, :2], b[1, 2:] = True, True  # disjoint
    np.testing.assert_allclose(segmentation.dice_scores(a, b), [1.0, 0.0, np.nan])


def test_truth_geometry_joins_by_set_and_id():
    truth = pd.DataFrame({"set": ["training", "training", "gz2"], "id": [5, 6, 5], "bar_length_px424": [40.0, np.nan, 60.0],
                          "bar_axis_ratio": [0.3, np.nan, 0.4], "bar_angle_deg": [10.0, np.nan, 20.0]})  # fmt: skip
    geometry = segmentation.truth_geometry([6, 5, 7], truth, "training")
    np.testing.assert_allclose(geometry["length_px424"], [np.nan, 40.0, np.nan])
    assert segmentation.target_masks(geometry, MAP_PX, CROP_PX).sum(axis=(1, 2)).tolist()[::2] == [0, 0]


def test_read_lengths_aligns_to_objids_and_names_a_bad_file(tmp_path):
    path = tmp_path / "lengths.csv"
    segmentation.lengths_table([3, 1], ["test", "val"], [30.0, np.nan]).to_csv(path, index=False)
    np.testing.assert_allclose(segmentation.read_lengths(path, [1, 3, 9]), [np.nan, 30.0, np.nan])
    pd.DataFrame({"objid": [1], "length": [2.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=rf"{path}: missing column\(s\) split, length_px424"):
        segmentation.read_lengths(path, [1])


def test_the_deepest_level_keeps_a_pixel():
    with pytest.raises(ConfigError, match=r"segmentation.filters = \[8, 8, 8, 8, 8\], segmentation.downsample = 4: images.size_px = 40 "
                       r"/ downsample must be at least 2\^\(levels - 1\) = 16"):  # fmt: skip
        config_from_dict(complete({"images": {"crop_px": 212, "size_px": 40},
                                   "segmentation": {"downsample": 4, "filters": [8, 8, 8, 8, 8]}}))  # fmt: skip


def test_the_unet_maps_images_to_masks_at_map_resolution():
    from galaxy_xai.models.unet import build_unet

    model = build_unet(64, (4, 8, 16), downsample=2, seed=1)
    assert model.output_shape == (None, 32, 32, 1)
    again = build_unet(64, (4, 8, 16), downsample=2, seed=1)
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    out = model.predict(x, verbose=0)
    assert ((out >= 0) & (out <= 1)).all()
    np.testing.assert_array_equal(out, again.predict(x, verbose=0))  # seeded weights
    # A side that does not halve evenly is rounded down (71 px: Xception's smallest input).
    assert build_unet(71, (4, 8, 16), downsample=2).output_shape == (None, 32, 32, 1)
    with pytest.raises(ValueError, match="the deepest level would have no pixel"):
        build_unet(16, (4, 8, 16, 32), downsample=4)


def test_a_tiny_unet_trains_on_eight_images_and_predicts_masks():
    rng = np.random.default_rng(0)
    lengths = units.map_px_to_px424(rng.uniform(6, 14, 8), 16, CROP_PX)
    angles = rng.uniform(0, 180, 8)
    masks = localisation.bar_masks(lengths, np.full(8, 0.3), angles, 16, CROP_PX)
    # The image is the mask itself, upsampled, in every channel: a task a U-Net learns in a few epochs.
    images = np.repeat(np.repeat(masks, 2, axis=1), 2, axis=2)[..., None].repeat(3, axis=-1).astype("float32")
    model, curve, summary = segmentation.train_unet(
        (images[:6], masks[:6]), (images[6:], masks[6:]), filters=(4, 8), downsample=2, epochs=3, batch_size=4,
        learning_rate=0.01, stop_patience=3, seed=0,
    )  # fmt: skip
    assert list(curve.columns) == segmentation.CURVE_COLUMNS and len(curve) == summary["epochs_run"] <= 3
    probabilities = segmentation.predict_masks(model, images)
    assert probabilities.shape == (8, 16, 16)
    assert segmentation.mask_lengths_px424(probabilities, CROP_PX).shape == (8,)


def test_on_real_data_the_stage_writes_nan_lengths_and_says_it_skipped(tmp_path):
    """No truth.csv (the Hoyle catalogue run): no masks to learn, every output written, exit 0."""
    import json

    from stages import segment
    from tests.fixtures import params_file

    (tmp_path / "real").mkdir()
    bars = pd.DataFrame({"objid": [11, 12, 13], "xai_split": ["val", "test", "test"], "image_path": ["a.jpg", "b.jpg", "c.jpg"],
                         "length_px424": [30.0, 40.0, 50.0], "length_kpc": [3.0, 4.0, 5.0], "PETROR90_R": [5.0, 6.0, 7.0],
                         "REDSHIFT": [0.05, 0.06, 0.07]})  # fmt: skip
    bars.to_csv(tmp_path / "bars.csv", index=False)
    params = params_file(tmp_path / "params.yaml", {"data": {"path": str(tmp_path / "real")}})
    out = {name: tmp_path / name for name in ("models", "plots", "metrics.json", "timings.json")}
    segment.main(["--table", str(tmp_path / "morphology.csv"), "--bars", str(tmp_path / "bars.csv"), "--out", str(out["models"]),
                  "--plots", str(out["plots"]), "--metrics", str(out["metrics.json"]), "--timings", str(out["timings.json"]),
                  "--params", str(params)])  # fmt: skip
    assert "no truth.csv" in json.loads(out["metrics.json"].read_text())["skipped"]
    assert (out["models"] / segment.SKIPPED_NOTE).is_file()
    lengths = segmentation.read_lengths(out["plots"] / segment.LENGTHS_FILE, [11, 12, 13])
    assert np.isnan(lengths).all()


def test_the_training_split_learns_from_barred_train_galaxies_and_monitors_the_others():
    barred = np.array([True, True, False, True, True, False])
    in_train = np.array([True, True, True, False, True, False])
    learn, monitor = segmentation.training_split(barred, in_train)
    np.testing.assert_array_equal(learn, [True, True, False, False, True, False])
    np.testing.assert_array_equal(monitor, [False, False, False, True, False, False])
    # No barred galaxy outside the train split (a tiny sky): the last barred train galaxy monitors.
    learn, monitor = segmentation.training_split(barred, np.ones(6, dtype=bool))
    np.testing.assert_array_equal(learn, [True, True, False, True, False, False])
    np.testing.assert_array_equal(monitor, [False, False, False, False, True, False])
    with pytest.raises(ValueError, match="1 barred labelled galaxies: the U-Net needs two"):
        segmentation.training_split([False, True, False], [True, True, False])
