"""The true-axis diagnostic: profiles along a given axis (known answers on drawn bars), the choice of
strip and fraction on validation, the paired table, and the stage's handling of real data and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_xai import statistics
from galaxy_xai.bars import barlength, profiles, true_axis
from galaxy_xai.bars.barlength import Choice
from galaxy_xai.xai import localisation

MAP_PX = 64


def drawn_bars(lengths_map_px, axis_ratio: float, angles_deg) -> np.ndarray:
    """Flat bars (1 inside the ellipse, 0 outside) of the given full lengths (map px) and position angles:
    (n, 64, 64) float, drawn by the localisation module's geometry (its angle convention is tested there)."""
    lengths = np.asarray(lengths_map_px, dtype=float)
    px424 = lengths * 424 / MAP_PX  # crop_px None: the map covers the whole 424-px image
    return localisation.bar_masks(px424, np.full(len(lengths), axis_ratio), angles_deg, MAP_PX, None).astype(float)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 90.0, 137.0])
@pytest.mark.parametrize("length_map_px", [10.0, 24.0])
def test_a_drawn_bar_measures_its_length_along_its_axis_and_its_width_across(length_map_px, angle_deg):
    bar = drawn_bars([length_map_px], 0.3, [angle_deg])
    along = profiles.axis_lengths(bar, [angle_deg], [0.5], [0.5])[0, 0, 0]
    across = profiles.axis_lengths(bar, [angle_deg + 90.0], [0.5], [0.5])[0, 0, 0]
    assert along == pytest.approx(length_map_px, abs=1.5)
    assert across == pytest.approx(0.3 * length_map_px, abs=1.5)


def test_lengths_of_a_stack_are_those_of_each_map_and_rank_the_bars():
    lengths = np.array([8.0, 14.0, 20.0, 30.0])
    angles = np.array([10.0, 75.0, 120.0, 170.0])
    stack = drawn_bars(lengths, 0.25, angles)
    measured = profiles.axis_lengths(stack, angles, [0.3, 0.5], [0.5, 1.0, 2.0], r_max_px=25.0)
    assert measured.shape == (4, 3, 2)
    one_by_one = np.concatenate([profiles.axis_lengths(stack[i], angles[i], [0.3, 0.5], [0.5, 1.0, 2.0], 25.0) for i in range(4)])
    np.testing.assert_array_equal(measured, one_by_one)
    assert (np.diff(measured[:, 0, 1]) > 0).all()  # longer bars, longer lengths
    # A bar longer than the profile's reach ends at the reach.
    assert profiles.axis_lengths(drawn_bars([40.0], 0.25, [0.0]), [0.0], [0.5], [0.5], r_max_px=10.0)[0, 0, 0] == 20.0


def test_a_map_with_nothing_along_the_axis_has_no_length_and_the_diagnostic_gives_it_the_floor():
    empty = np.zeros((1, MAP_PX, MAP_PX))
    assert np.isnan(profiles.axis_lengths(empty, [0.0], [0.5], [1.0])).all()
    setting = Choice("vgg_small", False, estimator=barlength.ALGORITHM1, mask=barlength.R90_MASK, corr_threshold=0.9, len_threshold=20.0)
    lengths = true_axis.source_axis_lengths({"vgg_small": empty}, empty, setting, np.array([0.0]), 20.0)
    assert lengths.shape == (1, len(true_axis.HALF_WIDTHS_PX), len(true_axis.FRACTIONS))
    assert (lengths == barlength.NO_BAR_LENGTH_PX).all()


def test_mean_length_averages_each_models_true_axis_lengths():
    angles = np.array([20.0, 100.0])
    maps = {"a": drawn_bars([10.0, 16.0], 0.3, angles), "b": drawn_bars([14.0, 26.0], 0.3, angles)}
    grey = np.zeros_like(maps["a"])
    setting = Choice(barlength.MEAN_LENGTH, False, estimator=barlength.ALGORITHM1, mask=barlength.R90_MASK, corr_threshold=0.9, len_threshold=20.0)
    both = true_axis.source_axis_lengths(maps, grey, setting, angles, 20.0)
    each = [true_axis.source_axis_lengths(maps, grey, Choice(m, False, estimator=barlength.ALGORITHM1, mask=barlength.R90_MASK,
                                                              corr_threshold=0.9, len_threshold=20.0), angles, 20.0) for m in maps]  # fmt: skip
    np.testing.assert_allclose(both, np.mean(each, axis=0))


def test_bad_angles_widths_and_fractions_are_rejected_with_the_reason():
    bar = drawn_bars([10.0], 0.3, [0.0])
    with pytest.raises(ValueError, match="angle_deg"):
        profiles.axis_lengths(bar, [np.nan], [0.5], [1.0])
    with pytest.raises(ValueError, match="half_width_px"):
        profiles.axis_profiles(bar, [0.0], -1.0)
    with pytest.raises(ValueError, match="fraction"):
        profiles.axis_lengths(bar, [0.0], [1.5], [1.0])
    with pytest.raises(ValueError, match="r_max_px"):
        profiles.axis_profiles(bar, [0.0], 1.0, r_max_px=0.1)


def grid_lengths(truth: np.ndarray, best: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Lengths (n, n_half_widths, n_fractions): noise everywhere except ``best``, which is the truth plus a little noise."""
    out = rng.normal(size=(len(truth), len(true_axis.HALF_WIDTHS_PX), len(true_axis.FRACTIONS)))
    out[:, best[0], best[1]] = truth + 0.01 * rng.normal(size=len(truth))
    return out


def test_validation_picks_the_strip_and_fraction_that_rank_the_truth_best():
    rng = np.random.default_rng(0)
    truth = rng.uniform(20, 80, 200)
    pick = true_axis.choose_on_validation(grid_lengths(truth, (2, 5), rng), truth)
    assert (pick.half_width_index, pick.fraction_index) == (2, 5) and pick.val_spearman > 0.99
    assert pick.to_json()["half_width_px"] == true_axis.HALF_WIDTHS_PX[2]
    with pytest.raises(ValueError, match="no .* finite"):
        true_axis.choose_on_validation(np.ones((10, 3, 8)), truth[:10])


def test_a_paired_difference_read_the_other_way_round_is_b_minus_a_on_the_same_draws():
    rng = np.random.default_rng(4)
    truth = rng.uniform(20, 80, 200)
    good, bad = truth + rng.normal(0, 3, 200), truth + rng.normal(0, 30, 200)
    better = statistics.paired_bootstrap_difference(good, bad, truth, "spearman", 500, np.random.default_rng(1))
    worse = statistics.paired_bootstrap_difference(bad, good, truth, "spearman", 500, np.random.default_rng(1))
    assert better.verdict == "beats" and true_axis.swapped(better).verdict == "loses"
    assert true_axis.swapped(true_axis.swapped(better)) == better
    assert true_axis.swapped(better).difference == pytest.approx(worse.difference)
    np.testing.assert_allclose(true_axis.swapped(better).ci95, worse.ci95)  # the same resamples, the same interval


def test_the_table_pairs_every_source_with_its_own_estimator_and_with_the_explanation():
    rng = np.random.default_rng(1)
    val_truth, test_truth = rng.uniform(20, 80, 150), rng.uniform(20, 80, 300)
    setting = Choice(barlength.MEAN_LENGTH, False, estimator=barlength.ALGORITHM1, mask=barlength.R90_MASK, corr_threshold=0.9, len_threshold=20.0)
    sources = {
        # the explanation: its true-axis lengths follow the truth, its own estimator's do not
        "explanation": true_axis.AxisSource(setting, grid_lengths(val_truth, (1, 2), rng), grid_lengths(test_truth, (1, 2), rng),
                                            rng.normal(size=300)),  # fmt: skip
        # a twin: noise along the axis, and its own estimator follows the truth
        "random_weights": true_axis.AxisSource(setting, rng.normal(size=(150, 3, 8)), rng.normal(size=(300, 3, 8)), test_truth),
    }
    result = true_axis.true_axis_rows(sources, val_truth, test_truth, 200, np.random.default_rng(2))
    rows, versus = result["rows"], result["explanation_minus"]
    assert list(rows) == ["explanation", "random_weights"] and list(versus) == ["random_weights"]
    assert rows["explanation"]["spearman_truth"] > 0.99 and rows["explanation"]["minus_own_estimator"]["verdict"] == "beats"
    assert rows["random_weights"]["minus_own_estimator"]["verdict"] == "loses"
    assert versus["random_weights"]["verdict"] == "beats"
    # the reference's own row: its headline gain is its true-axis pair read the other way round
    own, axis = rows["explanation"]["explanation_own_minus"], rows["explanation"]["minus_own_estimator"]
    assert own["difference"] == -axis["difference"] and own["ci95"] == [-axis["ci95"][1], -axis["ci95"][0]]
    assert own["verdict"] == "loses"
    lo, hi = rows["explanation"]["spearman_truth_ci95"]
    assert lo <= rows["explanation"]["spearman_truth"] <= hi
    table = true_axis.true_axis_markdown({"n_val": 150, "n_test": 300, **result})
    assert table.count("\n| the ") == 2 and "beats" in table
    with pytest.raises(ValueError, match="reference"):
        true_axis.true_axis_rows(sources, val_truth, test_truth, 10, rng, reference="image")


REPO = Path(__file__).resolve().parents[1]


def stage_args(tmp_path: Path, bars: pd.DataFrame, barlengths: pd.DataFrame) -> list[str]:
    bars.to_csv(tmp_path / "bars.csv", index=False)
    barlengths.to_csv(tmp_path / "barlengths.csv", index=False)
    return ["--heatmaps", str(tmp_path / "heatmaps"), "--bars", str(tmp_path / "bars.csv"),
            "--gridsearch", str(REPO / "metrics/gridsearch.json"), "--barlengths", str(tmp_path / "barlengths.csv"),
            "--metrics", str(tmp_path / "true_axis.json"), "--markdown", str(tmp_path / "true_axis.md"),
            "--params", str(REPO / "params.yaml")]  # fmt: skip


def test_on_real_data_the_stage_says_it_skipped_and_writes_an_empty_section(tmp_path):
    from stages import true_axis as stage

    bars = pd.DataFrame({"objid": [1, 2, 3], "xai_split": ["val", "test", "test"]})
    stage.main(stage_args(tmp_path, bars, pd.DataFrame({"objid": [2, 3]})))
    assert "no true_length_px424, true_angle_deg" in json.loads((tmp_path / "true_axis.json").read_text())["skipped"]
    assert (tmp_path / "true_axis.md").read_text() == ""


def test_a_measure_table_missing_a_test_galaxy_stops_the_stage_naming_the_file_and_galaxy(tmp_path, capfd):
    from stages import true_axis as stage

    bars = pd.DataFrame({"objid": [1, 2, 3], "xai_split": ["val", "test", "test"], "length_px424": [30.0, 40.0, 50.0],
                         "length_kpc": [3.0, 4.0, 5.0], "PETROR90_R": [5.0, 6.0, 7.0], "REDSHIFT": [0.05, 0.06, 0.07],
                         "true_length_px424": [30.0, 40.0, 50.0], "true_angle_deg": [10.0, 20.0, 30.0]})  # fmt: skip
    own = {column: [1.0] for column in stage.OWN_COLUMNS.values()}
    with pytest.raises(SystemExit) as stop:
        stage.main(stage_args(tmp_path, bars, pd.DataFrame({"objid": [2], **own})))
    assert stop.value.code == 2
    assert "barlengths.csv: no row for test galaxy objid 3" in capfd.readouterr().err
    assert not (tmp_path / "true_axis.json").exists()  # nothing half-written
