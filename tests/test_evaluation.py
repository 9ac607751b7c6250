"""Scores on known inputs, and the gridsearch and measure stages on a small synthetic set."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from galaxy_xai import statistics
from galaxy_xai.bars import barlength
from galaxy_xai.bars.barlength import IMAGE_SOURCES
from galaxy_xai.config import MODEL_KINDS, MORPHOLOGY
from galaxy_xai.results import evaluation, paper
from stages import gridsearch, measure

ROOT = Path(__file__).resolve().parents[1]


def test_pearson_and_spearman_known_values():
    x = np.arange(10.0)
    assert statistics.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert statistics.pearson(x, -x) == pytest.approx(-1.0)
    assert np.isnan(statistics.pearson(x, np.ones(10)))
    assert statistics.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert statistics.pearson(x, np.exp(x)) < 0.9
    with pytest.raises(ValueError, match="same length"):
        statistics.pearson(x, x[:5])


def test_pearson_columns_matches_corrcoef():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=50)
    expected = [np.corrcoef(a[:, k], b)[0, 1] for k in range(4)]
    np.testing.assert_allclose(statistics.pearson_columns(a, b), expected, rtol=1e-12)


def test_rho_paper_multiplies_both_lengths_by_the_factor():
    rng = np.random.default_rng(1)
    m, c, f = rng.random(30), rng.random(30), rng.uniform(1, 10, 30)
    assert statistics.rho_paper(m, c, f) == pytest.approx(np.corrcoef(m * f, c * f)[0, 1])


def test_slope_through_origin_of_exact_line():
    x = np.array([1.0, 2.0, 4.0, 5.0])
    sigma_x, sigma_y = 0.1 * x, np.full(4, 0.3)
    fit = statistics.fit_through_origin(x, 2 * x, sigma_x, sigma_y)
    assert fit.slope == pytest.approx(2.0, rel=1e-12)
    w = 1 / (sigma_y**2 + 4 * sigma_x**2)
    assert fit.slope_err == pytest.approx(1 / np.sqrt((w * x * x).sum()))
    assert fit.chi2_dof == pytest.approx(0.0, abs=1e-20)


def test_slope_through_origin_recovers_slope_with_errors_on_both_axes():
    rng = np.random.default_rng(2)
    truth = rng.uniform(5, 20, 4000)
    sx, sy = 0.17 * truth, np.full(truth.size, 1.0)
    x = truth + rng.normal(0, sx)
    y = 0.7 * truth + rng.normal(0, sy)
    fit = statistics.fit_through_origin(x, y, sx, sy)
    assert abs(fit.slope - 0.7) < 4 * fit.slope_err + 0.02
    assert 0.7 < fit.chi2_dof < 1.3


def test_permutation_null_measures_the_shared_factor():
    rng = np.random.default_rng(3)
    n = 400
    measured, catalogue = rng.lognormal(0, 0.3, n), rng.lognormal(0, 0.3, n)
    factor = rng.lognormal(0, 0.8, n)
    without = statistics.permutation_null(measured, catalogue, 1.0, 1000, np.random.default_rng(7))
    shared = statistics.permutation_null(measured, catalogue, factor, 1000, np.random.default_rng(7))
    assert without.shape == (1000,)
    assert abs(without.mean()) < 0.01
    assert shared.mean() > 0.3
    again = statistics.permutation_null(measured, catalogue, factor, 1000, np.random.default_rng(7))
    np.testing.assert_array_equal(shared, again)


def test_permutation_p_value_known_answers():
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert statistics.permutation_p_value(0.35, null) == pytest.approx(2 / 5)  # itself + 0.4
    assert statistics.permutation_p_value(0.9, null) == pytest.approx(1 / 5)  # never 0
    assert statistics.permutation_p_value(0.0, null) == 1.0
    assert np.isnan(statistics.permutation_p_value(float("nan"), null))
    with pytest.raises(ValueError, match="non-empty 1-D null"):
        statistics.permutation_p_value(0.5, np.array([]))


def test_a_constant_measurement_wins_the_paper_rho_but_not_its_permutation_test():
    """The flaw of the paper's convention on known inputs: a measurement that ignores the galaxy
    (a constant) gets a high rho from the shared factor alone, and its p-value shows it; an
    informative one can have a lower rho and still a tiny p-value."""
    rng = np.random.default_rng(5)
    n = 300
    catalogue = rng.lognormal(0, 0.3, n)
    factor = rng.lognormal(0, 0.5, n)
    sample = pd.DataFrame(
        {
            "objid": np.arange(n),
            "length_px424": catalogue,
            "length_kpc": catalogue * factor,
            "PETROR90_R": factor,
            "REDSHIFT": np.full(n, 0.05),
        }
    )
    constant = np.full((2, n), 5.0) + rng.normal(0, 1e-3, (2, n))
    informative = np.vstack([catalogue * rng.lognormal(0, 0.6, n)] * 2)
    _, const_scores = evaluation.measurement_summary(constant, sample, 999, np.random.default_rng(1), 200)
    _, info_scores = evaluation.measurement_summary(informative, sample, 999, np.random.default_rng(1), 200)
    assert const_scores["rho"] > 0.8 and const_scores["rho_p_value"] > 0.05
    assert abs(const_scores["rho_image"]) < 0.2 and const_scores["rho_image_p_value"] > 0.01
    assert info_scores["rho_image"] > 0.3 and info_scores["rho_image_p_value"] == pytest.approx(1 / 1000)
    assert info_scores["rho_image_null_p95"] < 0.15


# --------------------------------------------------------------------------------------------------
# Bootstrap intervals, the paired comparison and the stability of the grid-search choice


def correlated(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference (n,) and a measurement of it with Gaussian noise of ``noise`` times its spread."""
    rng = np.random.default_rng(seed)
    reference = rng.lognormal(0, 0.4, n)
    return reference, reference + noise * reference.std() * rng.normal(size=n)


def test_resampled_correlations_match_a_loop_over_resamples():
    reference, measured = correlated(40, 1.0, 0)
    columns = np.column_stack([measured, measured**2, -measured])
    indices = statistics.bootstrap_indices(40, 7, np.random.default_rng(1))
    for statistic, one in (("pearson", statistics.pearson), ("spearman", statistics.spearman)):
        # max_values small enough to cut the 7 resamples into several chunks
        got = statistics.resampled_correlations(columns, reference, indices, statistic, max_values=250)
        expected = [[one(columns[idx, k], reference[idx]) for k in range(3)] for idx in indices]
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_bootstrap_ci_contains_the_estimate_and_is_seeded():
    reference, measured = correlated(150, 1.0, 1)
    for statistic, one in (("pearson", statistics.pearson), ("spearman", statistics.spearman)):
        lo, hi = statistics.bootstrap_ci(measured, reference, statistic, 1000, np.random.default_rng(2))
        assert lo < one(measured, reference) < hi and hi - lo < 0.4
        again = statistics.bootstrap_ci(measured, reference, statistic, 1000, np.random.default_rng(2))
        assert again == (lo, hi)
        other = statistics.bootstrap_ci(measured, reference, statistic, 1000, np.random.default_rng(3))
        assert other != (lo, hi)


def test_bootstrap_ci_known_answers():
    x = np.arange(1.0, 31.0)
    factor = np.random.default_rng(4).uniform(3, 12, 30)
    for statistic in ("pearson", "spearman"):
        lo, hi = statistics.bootstrap_ci(x, 2 * x + 1, statistic, 1000, np.random.default_rng(0))
        assert lo == pytest.approx(1.0, abs=1e-12) and hi == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(5)
    lo, hi = statistics.bootstrap_ci(rng.normal(size=3000), rng.normal(size=3000), "pearson", 1000, rng)
    assert lo < 0 < hi and hi - lo < 0.1
    # The paper's rho: each galaxy keeps its factor in the resamples, so the interval is that of x f, y f.
    reference, measured = correlated(30, 1.0, 6)
    paper = statistics.bootstrap_ci(measured, reference, "pearson", 1000, np.random.default_rng(7), factor=factor)
    scaled = statistics.bootstrap_ci(measured * factor, reference * factor, "pearson", 1000, np.random.default_rng(7))
    assert paper == scaled
    assert paper[0] < statistics.rho_paper(measured, reference, factor) < paper[1]
    with pytest.raises(ValueError, match="n_boot = 0"):
        statistics.bootstrap_ci(x, x, "pearson", 0, rng)
    with pytest.raises(ValueError, match="statistic = 'kendall'"):
        statistics.bootstrap_ci(x, x, "kendall", 10, rng)


def test_verdict_needs_an_interval_that_excludes_zero():
    assert statistics.verdict((0.01, 0.2)) == "beats"
    assert statistics.verdict((-0.2, -0.01)) == "loses"
    assert statistics.verdict((-0.16, 0.23)) == "ties"
    assert statistics.verdict((0.0, 0.0)) == "ties"
    assert statistics.verdict((float("nan"), float("nan"))) == "ties"


def test_paired_difference_of_a_method_with_itself_is_exactly_zero():
    reference, measured = correlated(60, 1.0, 8)
    factor = np.random.default_rng(9).uniform(3, 12, 60)
    for statistic in ("pearson", "spearman"):
        for f in (None, factor):
            paired = statistics.paired_bootstrap_difference(
                measured, measured, reference, statistic, 1000, np.random.default_rng(0), f
            )
            assert paired == (0.0, (0.0, 0.0), "ties")


def test_paired_difference_of_a_clearly_better_method():
    reference, good = correlated(200, 0.3, 10)
    _, bad = correlated(200, 3.0, 10)
    better = statistics.paired_bootstrap_difference(good, bad, reference, "pearson", 1000, np.random.default_rng(1))
    assert better.verdict == "beats" and better.ci95[0] > 0
    assert better.difference == pytest.approx(statistics.pearson(good, reference) - statistics.pearson(bad, reference))
    assert better.ci95[0] < better.difference < better.ci95[1]
    worse = statistics.paired_bootstrap_difference(bad, good, reference, "spearman", 1000, np.random.default_rng(1))
    assert worse.verdict == "loses" and worse.ci95[1] < 0


def test_the_pairing_cancels_the_scatter_both_methods_share():
    """Two methods that err the same way, one a little more: their own intervals overlap widely, but on the
    same resamples the better one is better every time, which only a paired bootstrap sees."""
    rng = np.random.default_rng(11)
    reference = rng.lognormal(0, 0.4, 80)
    error = reference.std() * rng.normal(size=80)
    a, b = reference + error, reference + 1.2 * error
    lo_a, hi_a = statistics.bootstrap_ci(a, reference, "pearson", 1000, np.random.default_rng(1))
    lo_b, hi_b = statistics.bootstrap_ci(b, reference, "pearson", 1000, np.random.default_rng(1))
    assert lo_a < hi_b and lo_b < hi_a, "the unpaired intervals overlap"
    assert statistics.paired_bootstrap_difference(a, b, reference, "pearson", 1000, np.random.default_rng(1)).verdict == "beats"


def test_choose_setting_is_best_per_method_then_the_best_of_those():
    rng = np.random.default_rng(12)
    for _ in range(50):
        # Few distinct scores so that ties within and across map sources are common; NaN scores too.
        scores = rng.choice([0.1, 0.5, 0.9, np.nan], size=12)
        table = pd.DataFrame({"map_source": rng.choice(["b", "a", "c"], size=12), "rho_image": scores})
        best = evaluation.best_per_method(table)
        expected = best.loc[best["rho_image"].fillna(-np.inf).idxmax()]
        chosen = table.iloc[evaluation.choose_setting(table)]
        assert chosen["map_source"] == expected["map_source"]
        assert chosen["rho_image"] == expected["rho_image"] or np.isnan(expected["rho_image"])


def grid_of(columns: np.ndarray) -> pd.DataFrame:
    """A grid-search table naming ``columns.shape[1]`` settings of two map sources."""
    s = columns.shape[1]
    return pd.DataFrame(
        {
            "map_source": ["m0"] * (s // 2) + ["m1"] * (s - s // 2),
            "estimator": "algorithm1",
            "x_input": [False] * s,
            "mask": "none",
            "corr_threshold": np.linspace(0.5, 0.9, s),
            "len_threshold": [20.0] * s,
            "fraction": np.nan,
            "floor": np.nan,
        }
    )


def test_choice_stability_of_a_dominant_setting_is_one():
    reference, sharp = correlated(100, 0.1, 13)
    noise = np.random.default_rng(14).normal(size=(100, 5))
    columns = np.column_stack([noise[:, :3], sharp, noise[:, 3:]])
    stability = evaluation.choice_stability(grid_of(columns), columns, reference, 1000, np.random.default_rng(0))
    assert stability["resamples"] == 1000 and stability["map_source"] == "m1"
    assert stability["map_source_frequency"] == stability["setting_frequency"] == 1.0
    assert stability["map_sources"] == {"m1": 1.0} and stability["alternatives"] == []


def test_choice_stability_of_two_equal_settings_is_below_one():
    rng = np.random.default_rng(15)
    reference = rng.lognormal(0, 0.4, 100)
    # Two errors of the same size, uncorrelated with the reference: the same rho on these very galaxies.
    basis, _ = np.linalg.qr(np.column_stack([np.ones(100), reference, rng.normal(size=(100, 2))]))
    twins = reference[:, None] + 10 * reference.std() * basis[:, 2:]
    assert statistics.pearson(twins[:, 0], reference) == pytest.approx(statistics.pearson(twins[:, 1], reference))
    columns = np.column_stack([twins[:, 0], rng.normal(size=(100, 2)), twins[:, 1]])
    table = grid_of(columns)
    stability = evaluation.choice_stability(table, columns, reference, 1000, np.random.default_rng(0))
    chosen = evaluation.choose_setting(table.assign(rho_image=statistics.pearson_columns(columns, reference)))
    assert stability["map_source"] == table["map_source"].iloc[chosen]
    assert 0.1 < stability["setting_frequency"] < 0.9
    (other,) = [a for a in stability["alternatives"] if a["frequency"] > 0.05]
    assert other["corr_threshold"] == table["corr_threshold"].iloc[3 - chosen]
    assert stability["setting_frequency"] + other["frequency"] > 0.95
    assert sum(stability["map_sources"].values()) == pytest.approx(1.0)
    again = evaluation.choice_stability(table, columns, reference, 1000, np.random.default_rng(0))
    assert again == stability


def test_measurement_summary_gives_every_correlation_its_interval():
    reference, measured = correlated(120, 1.0, 16)
    rng = np.random.default_rng(17)
    factor = rng.uniform(3, 12, 120)
    sample = pd.DataFrame(
        {
            "objid": np.arange(120),
            "length_px424": reference,
            "length_kpc": reference * factor,
            "PETROR90_R": factor,
            "REDSHIFT": np.full(120, 0.05),
            "true_length_px424": np.where(np.arange(120) < 100, reference * 1.1, np.nan),
        }
    )
    _, scores = evaluation.measurement_summary(np.vstack([measured, measured]), sample, 99, rng, 1000)
    for key in ("rho", "rho_image", "spearman", "spearman_image", "rho_truth", "rho_truth_image"):
        lo, hi = scores[f"{key}_ci95"]
        assert lo < scores[key] < hi, key
    assert scores["resamples"] == 1000 and scores["n_truth"] == 100
    assert scores["rho"] == statistics.rho_paper(measured, reference, factor)
    assert scores["spearman_image"] == statistics.spearman(measured, reference)


def test_finite_or_none_clears_nan_inside_lists():
    assert evaluation.finite_or_none({"a": float("nan"), "b": [1.0, np.float64("inf")], "c": (2, "x")}) == {
        "a": None,
        "b": [1.0, None],
        "c": [2, "x"],
    }


def test_decile_errors_known_answer():
    rng = np.random.default_rng(4)
    length = rng.permutation(np.arange(1.0, 21.0))
    abs_diff = length**2
    error = statistics.decile_errors(length, abs_diff)
    # deciles of 1..20 are (1, 2), (3, 4), ...: mean of k^2 over each pair
    expected = {k: ((2 * ((k - 1) // 2) + 1) ** 2 + (2 * ((k - 1) // 2) + 2) ** 2) / 2 for k in range(1, 21)}
    np.testing.assert_allclose(error, [expected[int(v)] for v in length])
    assert np.unique(statistics.decile_errors(np.arange(5.0), np.arange(5.0))).size == 5


def test_rmse_helpers():
    y_true = np.array([[0.0, 1.0], [1.0, 1.0]])
    y_pred = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert statistics.rmse(y_true, y_pred) == pytest.approx(np.sqrt(0.5))
    np.testing.assert_allclose(statistics.per_column_rmse(y_true, y_pred), [0.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        statistics.rmse(y_true, y_pred[:1])


def test_median_relative_spread():
    lengths = np.array([[10.0, 10.0, 10.0], [9.0, 10.0, 11.0], [5.0, 10.0, 15.0]])
    assert evaluation.median_relative_spread(lengths) == pytest.approx(0.2)


def test_grid_scores_and_best_per_method():
    catalogue = np.arange(1.0, 11.0)
    factor = np.random.default_rng(6).uniform(3, 12, 10)
    noise = np.random.default_rng(5).normal(size=(10, 6))
    settings = barlength.grid_settings(["a", "b"], ["algorithm1"], [False], ["none"], [0.7, 0.8], [10], [0.5])
    settings += barlength.grid_settings(["a"], ["fourier"], [True], ["r90"], [0.7], [10], [0.5])
    frame = pd.DataFrame([c.record(64, 160) for c in settings])
    lengths = catalogue[:, None] + 3 * noise[:, : len(settings)]
    lengths[:, 2] = catalogue  # b at T_c = 0.7 is exact
    lengths[:, 4] = catalogue + 0.1 * noise[:, 4]  # the Fourier setting of a beats a's others
    table = evaluation.grid_scores(frame, lengths, catalogue, factor)
    assert len(table) == 5 and list(table.columns[: frame.shape[1]]) == list(frame.columns)
    np.testing.assert_allclose(table["rho_image"], statistics.pearson_columns(lengths, catalogue))
    assert table["rho"].iloc[1] == pytest.approx(statistics.rho_paper(lengths[:, 1], catalogue, factor))
    assert (table["n"] == 10).all()
    best = evaluation.best_per_method(table).set_index("map_source")
    assert best.loc["b", "rho_image"] == pytest.approx(1.0)
    assert (best.loc["b", "corr_threshold"], best.loc["b", "len_threshold"], best.loc["b", "len_threshold_px"]) == (0.7, 10, 6)
    assert best.loc["a", "estimator"] == "fourier" and best.loc["a", "fraction"] == 0.5
    assert np.isnan(best.loc["a", "corr_threshold"]) and bool(best.loc["a", "x_input"]) is True
    per_estimator = evaluation.best_per(table, ["map_source", "estimator"])
    assert list(zip(per_estimator["map_source"], per_estimator["estimator"], strict=True)) == [
        ("a", "algorithm1"), ("b", "algorithm1"), ("a", "fourier")
    ]
    with pytest.raises(ValueError, match=r"expected lengths \(10, 5\)"):
        evaluation.grid_scores(frame, lengths[:, :4], catalogue, factor)


def test_choice_stability_names_the_new_setting_columns_and_writes_null_for_nan():
    """Alternatives carry every column of a setting; parameters that do not apply are None (JSON null)."""
    rng = np.random.default_rng(19)
    reference = rng.lognormal(0, 0.4, 100)
    settings = barlength.grid_settings(["m"], ["algorithm1", "fourier"], [False], ["none"], [0.7], [10], [0.3, 0.5])
    table = pd.DataFrame([c.record(64, 160) for c in settings])
    # Three settings equally good on these galaxies: the choice flips among them under the bootstrap.
    columns = reference[:, None] + reference.std() * rng.normal(size=(100, 3))
    stability = evaluation.choice_stability(table, columns, reference, 300, np.random.default_rng(0))
    assert stability["alternatives"]
    for alternative in stability["alternatives"]:
        assert set(alternative) == {*evaluation.SETTING, "frequency"}
        if alternative["estimator"] == "fourier":
            assert alternative["corr_threshold"] is None and alternative["fraction"] in (0.3, 0.5)
        else:
            assert alternative["fraction"] is None
    json.dumps(stability, allow_nan=False)


def test_paper_table2_lookup():
    assert paper.table2_rho("vgg_small", "vgg_small") == 0.68
    assert paper.table2_rho("mean_map") == 0.76
    assert paper.table2_rho("mine", "custom") is None


# --------------------------------------------------------------------------------------------------
# The stages on a small synthetic set: bar maps whose length follows the catalogue length


def render_bars(length_px: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Noisy Gaussian bars of full length ~``length_px`` map pixels at random angles, (n, size, size)."""
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    maps = np.empty((length_px.size, size, size))
    for i, length in enumerate(length_px):
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        cam = np.exp(-0.5 * ((u / (length / 2.4)) ** 2 + (v / 1.5) ** 2)) + rng.normal(0, 0.03, (size, size))
        maps[i] = (cam - cam.min()) / np.ptp(cam)
    return maps


@pytest.fixture
def project(tmp_path):
    """params.yaml, data/prepared/bars.csv and data/heatmaps/<kind>/<model>.npz for 24 val + 30 test
    galaxies: the models' maps show the bars, their twins' maps are noise."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["images"]["size_px"] = 32
    params["xai"]["permutations"] = 200
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rng = np.random.default_rng(0)
    n_val, n_test, size, crop = 24, 30, 32, params["images"]["crop_px"]
    n = n_val + n_test
    true_px424 = rng.uniform(40, 150, n)
    bars = pd.DataFrame(
        {
            "objid": np.arange(1000, 1000 + n),
            "length_px424": true_px424 * rng.normal(1, 0.1, n),
            "PETROR90_R": rng.uniform(4, 15, n),
            "REDSHIFT": rng.uniform(0.02, 0.08, n),
            "xai_split": ["val"] * n_val + ["test"] * n_test,
            "true_length_px424": true_px424,
        }
    )
    bars["length_kpc"] = bars["length_px424"] * 0.02 * bars["PETROR90_R"] * 0.5
    bars["true_length_kpc"] = bars["true_length_px424"] * 0.02 * bars["PETROR90_R"] * 0.5
    (tmp_path / "data/prepared").mkdir(parents=True)
    bars.to_csv(tmp_path / "data/prepared/bars.csv", index=False)
    heatmaps = tmp_path / "data/heatmaps"
    objid = np.concatenate([bars.objid[:n_val], bars.objid[n_val:], bars.objid[n_val:]])
    split = np.array(["val"] * n_val + ["test"] * 2 * n_test, dtype="<U4")
    draw = np.array([0] * n_val + [0] * n_test + [1] * n_test, dtype=np.int8)
    length_map_px = np.concatenate([true_px424[:n_val], true_px424[n_val:], true_px424[n_val:]]) * size / crop
    # The grey input shows the same bars on a sky of 0.05: the image-only control can measure them too.
    grey = (0.05 + 0.5 * render_bars(length_map_px, size, np.random.default_rng(9))).astype(np.float16)
    for (k, model), kind in itertools.product(enumerate(params["models"]), MODEL_KINDS):
        if kind == MORPHOLOGY:
            maps = render_bars(length_map_px, size, np.random.default_rng(10 + k)).astype(np.float16)
        else:
            maps = np.random.default_rng(20 + k).uniform(0, 1, (len(objid), size, size)).astype(np.float16)
        (heatmaps / kind).mkdir(parents=True, exist_ok=True)
        np.savez(
            heatmaps / kind / f"{model}.npz",
            maps=maps,
            objid=objid,
            split=split,
            draw=draw,
            grey=grey,
            model=model,
            method="smoothgrad",
        )
    return tmp_path


def cli(root: Path, **paths: str) -> list[str]:
    """``--key root/value`` arguments (underscores in keys become dashes)."""
    return [arg for key, rel in paths.items() for arg in (f"--{key.replace('_', '-')}", str(root / rel))]


def run_stages(root: Path) -> tuple[dict, dict]:
    common = cli(root, params="params.yaml", heatmaps="data/heatmaps", bars="data/prepared/bars.csv")
    gridsearch.main(
        common
        + cli(
            root, metrics="metrics/gridsearch.json", table="plots/gridsearch.csv", table2="metrics/table2.md"
        )
    )
    measure.main(
        common
        + cli(
            root,
            gridsearch="metrics/gridsearch.json",
            metrics="metrics/barlengths.json",
            table="plots/barlengths.csv",
        )
    )
    return tuple(
        json.loads((root / f"metrics/{name}.json").read_text()) for name in ("gridsearch", "barlengths")
    )


@pytest.mark.parametrize("linearity", ["abs_pearson", "elongation"])
def test_gridsearch_and_measure_stages(project, linearity):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["xai"]["linearity"] = linearity
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    grid, result = run_stages(project)
    assert grid["linearity"] == result["linearity"] == linearity
    map_sources = [*params["models"], "mean_map", "mean_length"]
    table = pd.read_csv(project / "plots/gridsearch.csv")
    # Per source, estimator, X_input and mask: 5 x 5 (T_c, T_l) for Algorithm 1, 4 floors x 3 fractions
    # for Fourier; the image only without X_input, its non-axisymmetric residual and high-pass with and without.
    per_view = 5 * 5 + 4 * 3
    assert len(table) == (len(map_sources) + 2) * 2 * 2 * per_view + 2 * per_view == grid["settings"]
    assert sorted(r["map_source"] for r in grid["table2"]) == sorted([*map_sources, *IMAGE_SOURCES])
    fourier = table["estimator"] == "fourier"
    assert table.loc[fourier, ["corr_threshold", "len_threshold", "len_threshold_px"]].isna().all().all()
    assert table.loc[~fourier, ["fraction", "floor"]].isna().all().all()
    assert not table.loc[~fourier, "corr_threshold"].isna().any() and not table.loc[fourier, "floor"].isna().any()
    assert not table.loc[table["map_source"] == "image", "x_input"].any()
    chosen, chosen_image = grid["chosen"], grid["chosen_image"]
    assert chosen["map_source"] in map_sources and chosen_image["map_source"] in IMAGE_SOURCES
    is_image = table["map_source"].isin(IMAGE_SOURCES)
    # The best score, unless it ties with the best of the preferred rows (params: mean_length, algorithm1).
    preference = chosen["preference"]
    saliency = table[~is_image]
    preferred = saliency[(saliency["map_source"] == "mean_length") & (saliency["estimator"] == "algorithm1")]
    kept = preference is not None and preference["kept_preferred"]
    assert preference is None or preference["best"]["rho_image"] == pytest.approx(saliency["rho_image"].max())
    assert chosen["rho_image"] == pytest.approx((preferred if kept else saliency)["rho_image"].max())
    assert kept == (preference is not None and preference["best_minus_preferred"]["ci95"][0] <= 0)
    image_preference = chosen_image["preference"]
    image_best = table.loc[is_image, "rho_image"].max()
    assert chosen_image["rho_image"] == pytest.approx(image_best) or image_preference["kept_preferred"]
    crop = params["images"]["crop_px"]
    algorithm1 = table[~fourier].iloc[0]
    assert algorithm1["len_threshold_px"] == max(2, round(algorithm1["len_threshold"] * (32 / 224 * 424 / crop) ** 2))
    assert chosen["rho_image"] > 0.6
    best = pd.DataFrame(grid["best_per_estimator"])
    assert len(best) == (len(map_sources) + 3) * 2 and not best.duplicated(["map_source", "estimator"]).any()
    image_stability = grid["choice_stability_image"]["map_sources"]
    assert set(image_stability) <= set(IMAGE_SOURCES) and sum(image_stability.values()) == pytest.approx(1.0)
    assert "| mean_map | 0.76 |" in (project / "metrics/table2.md").read_text()

    per_galaxy = pd.read_csv(project / "plots/barlengths.csv")
    assert len(per_galaxy) == result["n"] == 30
    np.testing.assert_allclose(
        per_galaxy["measured_px424"],
        (per_galaxy["measured_draw0_px424"] + per_galaxy["measured_draw1_px424"]) / 2,
    )
    keys = (
        "rho rho_image rho_null rho_null_p95 rho_p_value rho_image_null_p95 rho_image_p_value spearman slope "
        "slope_err rho_truth rho_truth_image"
    )
    for key in keys.split():
        assert np.isfinite(result[key]), key
    assert result["map_source"] == chosen["map_source"] and result["permutations"] == 200
    for key in ("rho", "rho_image", "spearman", "spearman_image", "rho_truth", "rho_truth_image"):
        lo, hi = result[f"{key}_ci95"]
        assert lo <= result[key] <= hi, key
    assert result["resamples"] == params["xai"].get("bootstrap", 1000)
    lo, hi = chosen["rho_image_ci95"]
    assert lo <= chosen["rho_image"] <= hi and chosen["rho_ci95"][0] <= chosen["rho"] <= chosen["rho_ci95"][1]
    stability = grid["choice_stability"]
    assert stability["map_source"] == chosen["map_source"] and stability["resamples"] == result["resamples"]
    assert 0 < stability["setting_frequency"] <= stability["map_source_frequency"] <= 1
    assert sum(stability["map_sources"].values()) == pytest.approx(1.0)
    assert result["rho_image"] > 0.6 and result["rho_truth_image"] > result["rho_image"] - 0.2
    assert 0.5 < result["slope"] < 2.0
    assert result["estimator"] == chosen["estimator"] and result["mask"] == chosen["mask"]

    # The controls, on the same galaxies.
    assert {"image_px424", "isophote_px424", "fourier_light_px424", "true_px424"} <= set(per_galaxy.columns)
    assert result["spearman_truth_image"] == pytest.approx(
        statistics.spearman(per_galaxy["measured_px424"], per_galaxy["true_px424"])
    )
    image = result["controls"]["image"]
    assert image["setting"]["map_source"] in IMAGE_SOURCES and image["n"] == 30
    assert image["spearman_truth_image"] == pytest.approx(
        statistics.spearman(per_galaxy["image_px424"], per_galaxy["true_px424"])
    )
    assert image["spearman_truth_image"] > 0.6  # the grey input shows the bars
    for name in ("image", "isophote", "fourier_light"):
        control = result["controls"][name]
        assert control["n"] + control["n_failed"] == 30
        for key in ("rho_image", "spearman_truth_image"):
            difference = control["difference"][key]
            assert difference["verdict"] in statistics.VERDICTS and difference["n"] == control["n"]
    assert result["controls"]["isophote"]["setting"] is None
    assert len(result["estimators"]) == len(best)
    for row, val in zip(result["estimators"], grid["best_per_estimator"], strict=True):
        assert (row["map_source"], row["estimator"], row["val_rho_image"]) == (val["map_source"], val["estimator"], val["rho_image"])
        lo, hi = row["spearman_truth_image_ci95"]
        assert lo <= row["spearman_truth_image"] <= hi
    chosen_row = next(r for r in result["estimators"] if (r["map_source"], r["estimator"]) == (chosen["map_source"], chosen["estimator"]))
    assert chosen_row["rho_image"] == pytest.approx(result["rho_image"])

    # The twins: every saliency setting measured on their (noise) maps too; the gate passes settings
    # that beat the random-weights twin, and the chosen one is among them.
    saliency_rows = table[~is_image]
    for kind in ("random_weights", "permuted_labels"):
        assert saliency_rows[f"rho_image_{kind}"].notna().all() and table.loc[is_image, f"rho_image_{kind}"].isna().all()
        np.testing.assert_allclose(saliency_rows[f"minus_{kind}"], saliency_rows["rho_image"] - saliency_rows[f"rho_image_{kind}"])
    gate = chosen["gate"]
    assert gate["twins"] == ["random_weights"] and gate["of"] == len(saliency_rows)
    assert gate["passed"] == int((saliency_rows["minus_random_weights_low"] > 0).sum()) > 0
    assert chosen["minus_random_weights_low"] > 0
    for kind in ("random_weights", "permuted_labels"):
        twin = result["controls"][kind]
        assert twin["setting"]["map_source"] == chosen["map_source"] and twin["n"] == 30
        assert twin["spearman_truth_image"] == pytest.approx(statistics.spearman(per_galaxy[f"{kind}_px424"], per_galaxy["true_px424"]))
        assert twin["difference"]["spearman_truth_image"]["verdict"] == "beats"  # noise maps measure nothing
    # Absolute accuracy beside the ranks.
    for reference in ("catalogue", "truth"):
        for key in ("median_abs_rel_error", "within_20pct", "median_ratio"):
            lo, hi = result[f"{key}_{reference}_ci95"]
            assert lo <= result[f"{key}_{reference}"] <= hi

    # The segmentation ceiling: a row only when its lengths are given, paired on the same galaxies.
    assert "segmentation" not in result["controls"]
    ceiling = per_galaxy["true_px424"].to_numpy() * np.linspace(0.9, 1.3, 30)  # every length within 30%
    pd.DataFrame({"objid": per_galaxy["objid"], "split": "test", "length_px424": ceiling}).to_csv(project / "seg.csv", index=False)
    measure.main(
        cli(project, params="params.yaml", heatmaps="data/heatmaps", bars="data/prepared/bars.csv", gridsearch="metrics/gridsearch.json",
            metrics="metrics/barlengths.json", table="plots/barlengths.csv", segmentation="seg.csv")
    )  # fmt: skip
    with_ceiling = json.loads((project / "metrics/barlengths.json").read_text())
    segmented = with_ceiling["controls"]["segmentation"]
    assert segmented["setting"] is None and segmented["n"] == 30
    assert segmented["spearman_truth_image"] == pytest.approx(statistics.spearman(ceiling, per_galaxy["true_px424"]))
    assert segmented["median_ratio_truth"] == pytest.approx(np.median(np.linspace(0.9, 1.3, 30)))
    np.testing.assert_allclose(pd.read_csv(project / "plots/barlengths.csv")["segmentation_px424"], ceiling)
    assert with_ceiling["spearman_truth_image"] == result["spearman_truth_image"]  # the saliency row is unchanged
    floor = with_ceiling["controls"]["random_weights"]["spearman_truth_image"]
    expected = (result["spearman_truth_image"] - floor) / (segmented["spearman_truth_image"] - floor)
    assert with_ceiling["gap_closed"] == pytest.approx(expected) and with_ceiling["gap_closed_n"] == 30
    assert "gap_closed" not in result


def test_gap_closed_is_zero_at_the_floor_one_at_the_ceiling_and_resamples_jointly():
    rng = np.random.default_rng(3)
    truth = rng.uniform(10, 100, 200)
    floor, ceiling = rng.uniform(10, 100, 200), truth + rng.normal(0, 5, 200)
    at_floor = evaluation.gap_closed(floor, floor, ceiling, truth, 300, np.random.default_rng(1))
    at_ceiling = evaluation.gap_closed(ceiling, floor, ceiling, truth, 300, np.random.default_rng(1))
    assert at_floor["gap_closed"] == pytest.approx(0.0, abs=1e-12) and at_ceiling["gap_closed"] == pytest.approx(1.0)
    assert at_floor["gap_closed_ci95"] == pytest.approx([0.0, 0.0], abs=1e-12)  # same resamples for all three
    halfway = truth + rng.normal(0, 40, 200)
    half = evaluation.gap_closed(halfway, floor, ceiling, truth, 300, np.random.default_rng(1))
    lo, hi = half["gap_closed_ci95"]
    assert 0 < lo <= half["gap_closed"] <= hi < 1 and half["gap_closed_n"] == 200
    with_nan = np.where(np.arange(200) < 5, np.nan, halfway)
    assert evaluation.gap_closed(with_nan, floor, ceiling, truth, 50, np.random.default_rng(1))["gap_closed_n"] == 195
    assert evaluation.gap_closed(halfway[:2], floor[:2], ceiling[:2], truth[:2], 50, np.random.default_rng(1)) == {}


def test_measure_rejects_a_missing_chosen_entry(project, tmp_path, capfd):
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        measure.main(
            cli(project, params="params.yaml", heatmaps="data/heatmaps", bars="data/prepared/bars.csv")
            + ["--gridsearch", str(tmp_path / "bad.json")]
            + cli(tmp_path, metrics="m.json", table="t.csv")
        )
    assert stop.value.code == 2
    assert "bad.json: expected the gridsearch stage's JSON with a 'chosen' entry" in capfd.readouterr().err
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "t.csv").exists()


def test_gridsearch_names_the_missing_heatmap_file(project, capfd):
    shutil.rmtree(project / "data/heatmaps")
    (project / "data/heatmaps/morphology").mkdir(parents=True)
    with pytest.raises(SystemExit) as stop:
        gridsearch.main(
            cli(project, params="params.yaml", heatmaps="data/heatmaps", bars="data/prepared/bars.csv")
            + cli(project, metrics="m.json", table="t.csv", table2="t.md")
        )
    assert stop.value.code == 2
    # The stage's logging (force=True) replaces caplog's handler: its one line goes to stderr.
    assert re.search(r"heatmaps/morphology/\w+_small\.npz: heatmap file of model '\w+_small' not found", capfd.readouterr().err)
    assert not any((project / name).exists() for name in ("m.json", "t.csv", "t.md"))


def _break_heatmaps(path: Path, how: str) -> None:
    """Make one heatmap file truncated, or give one test galaxy's map a NaN (issue #28)."""
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:50_000])
        return
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["maps"][-1, 3, 4] = np.nan  # the last test galaxy, draw 1
    np.savez(path, **arrays)


@pytest.mark.parametrize("how", ["truncated", "nan"])
def test_gridsearch_and_measure_name_a_broken_heatmap_file(project, capfd, how):
    common = cli(project, params="params.yaml", heatmaps="data/heatmaps", bars="data/prepared/bars.csv")
    gridsearch.main(common + cli(project, metrics="g.json", table="g.csv", table2="g.md"))
    model = next(iter(yaml.safe_load((project / "params.yaml").read_text())["models"]))
    path = project / "data/heatmaps/morphology" / f"{model}.npz"
    _break_heatmaps(path, how)
    capfd.readouterr()
    with pytest.raises(SystemExit) as stop:
        measure.main(common + cli(project, gridsearch="g.json", metrics="m.json", table="t.csv"))
    assert stop.value.code == 2
    err = capfd.readouterr().err
    expected = {
        "truncated": f"{path}: not a zip archive (truncated, or another format); expected a heatmap file (.npz) "
        "written by the heatmap stage",
        "nan": f"{path}: 1 maps with NaN or infinite values, first objid 1053 (split 'test', draw 1); expected finite values",
    }[how]
    assert expected in err and "Traceback" not in err
    assert not (project / "m.json").exists()


# --- resampling in bounded memory (issue #28: 10^7 permutations or resamples asked for 47.7 GiB) -------


@pytest.mark.parametrize("n", [2, 7, 320, 640, 100_003])
@pytest.mark.parametrize("rows_per_chunk", [1, 3, 64, 999])
def test_numpy_draws_in_consecutive_chunks_equal_one_draw(n, rows_per_chunk):
    """What chunked resampling relies on: the Generator gives the same numbers, and leaves the same
    state, whether rows of indices or of permutations are drawn at once or chunk by chunk."""
    rows, width = 1000, min(n, 50)
    one = np.random.default_rng(5)
    chunked = np.random.default_rng(5)
    whole = one.integers(0, n, size=(rows, width))
    parts = [chunked.integers(0, n, size=(s.stop - s.start, width))
             for s in statistics.row_chunks(rows, width, rows_per_chunk * width)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    values = np.arange(width, dtype=np.float64)
    whole = one.permuted(np.broadcast_to(values, (rows, width)), axis=1)
    parts = [chunked.permuted(np.broadcast_to(values, (s.stop - s.start, width)), axis=1)
             for s in statistics.row_chunks(rows, width, rows_per_chunk * width)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert one.random() == chunked.random()


def _resampled_results(rng_seed: int = 3) -> dict:
    """Every resampling of the study on one small set of galaxies, from one seed."""
    reference, measured = correlated(60, 0.8, 21)
    other = measured + np.random.default_rng(22).normal(size=60)
    factor = np.random.default_rng(23).lognormal(0, 0.3, 60)
    columns = np.column_stack([measured, other, reference + np.random.default_rng(24).normal(size=60)])
    rng = np.random.default_rng(rng_seed)
    from galaxy_xai.results import ensemble
    from galaxy_xai.xai import localisation

    return {
        "null": statistics.permutation_null(measured, reference, factor, 500, rng),
        "ci": statistics.bootstrap_ci(measured, reference, "spearman", 400, rng, factor),
        "paired": statistics.paired_bootstrap_difference(measured, other, reference, "pearson", 400, rng),
        "stability": evaluation.choice_stability(grid_of(columns), columns, reference, 300, rng),
        "ensemble": ensemble.ensemble_curve(columns, reference, 300, rng),
        "means": localisation.mean_intervals({"a": measured, "b": other}, 300, rng),
    }


def test_resampling_in_small_chunks_gives_the_results_of_one_chunk(monkeypatch):
    whole = _resampled_results()
    monkeypatch.setattr(statistics, "RESAMPLE_VALUES", 130)  # a few resamples per chunk
    chunked = _resampled_results()
    np.testing.assert_array_equal(chunked.pop("null"), whole.pop("null"))
    assert chunked == whole


def test_resampling_memory_stays_flat_however_many_resamples(monkeypatch):
    """10^7 permutations of 640 galaxies asked for a (10^7, 640) array; now a chunk at a time."""
    import tracemalloc

    monkeypatch.setattr(statistics, "RESAMPLE_VALUES", 20_000)
    reference, measured = correlated(400, 1.0, 4)
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        null = statistics.permutation_null(measured, reference, 1.0, 20_000, rng)  # 64 MB at once
        statistics.bootstrap_ci(measured, reference, "pearson", 20_000, rng)  # 64 MB of indices at once
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert null.shape == (20_000,)
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"
