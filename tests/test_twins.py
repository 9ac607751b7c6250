"""The randomisation twins: the grid search's gate (a setting is chosen only if its lengths beat those
measured on the twins' maps), absolute accuracy, and the twins' recipe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_xai import statistics
from galaxy_xai.bars import gridsearch
from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS
from galaxy_xai.models import training

N = 300


def catalogue(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(3.0, 0.3, N)


def noisy(reference: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return reference * np.exp(np.random.default_rng(seed).normal(0.0, sigma, reference.size))


def test_twin_differences_are_the_paired_bootstrap_of_each_setting():
    cat = catalogue()
    model = np.column_stack([noisy(cat, 0.1, 1), noisy(cat, 0.4, 2)])
    twin = np.column_stack([noisy(cat, 0.6, 3), noisy(cat, 0.4, 4)])
    got = gridsearch.twin_differences(model, twin, cat, 1000, np.random.default_rng(5))
    for s in range(2):
        expected = statistics.paired_bootstrap_difference(
            model[:, s], twin[:, s], cat, "pearson", 1000, np.random.default_rng(5)
        )
        assert got["minus_twin"].iloc[s] == pytest.approx(expected.difference)
        assert got["twin"].iloc[s] == pytest.approx(statistics.pearson(twin[:, s], cat))
        # One draw of resamples for all settings: the first setting's interval is the single-setting one.
        if s == 0:
            assert [got["minus_twin_low"].iloc[0], got["minus_twin_high"].iloc[0]] == pytest.approx(list(expected.ci95))
    assert got["minus_twin_low"].iloc[0] > 0  # a clear gain over the twin
    assert got["minus_twin_low"].iloc[1] < 0 < got["minus_twin_high"].iloc[1]  # the same noise: a tie


def table_with_twin(model: np.ndarray, twin: np.ndarray, cat: np.ndarray) -> pd.DataFrame:
    s = model.shape[1]
    table = pd.DataFrame({"map_source": ["mean_length"] * s, "rho_image": statistics.pearson_columns(model, cat)})
    return gridsearch.with_twins(table, model, {"random_weights": twin}, cat, 1000, np.random.default_rng(0))


def test_the_gate_passes_only_settings_that_beat_the_twin():
    cat = catalogue()
    model = np.column_stack([noisy(cat, 0.1, 1), noisy(cat, 0.4, 2), noisy(cat, 0.3, 6)])
    twin = np.column_stack([noisy(cat, 0.6, 3), noisy(cat, 0.4, 4), noisy(cat, 0.05, 7)])
    table = table_with_twin(model, twin, cat)
    assert list(gridsearch.passes_gate(table, ["random_weights"])) == [True, False, False]
    assert gridsearch.passes_gate(table, []).all()  # no gate: the paper's plain choice
    with pytest.raises(ValueError, match="no 'permuted_labels' twin maps"):
        gridsearch.passes_gate(table, ["permuted_labels"])


def test_a_model_identical_to_its_twin_never_passes():
    """The rule a random network cannot pass: the same lengths as the twin's give a difference of 0."""
    cat = catalogue()
    model = np.column_stack([noisy(cat, 0.1, 1), noisy(cat, 0.2, 2)])
    table = table_with_twin(model, model.copy(), cat)
    assert not gridsearch.passes_gate(table, ["random_weights"]).any()
    assert table["minus_random_weights"].to_numpy() == pytest.approx([0.0, 0.0])


def test_gate_text_says_how_many_passed():
    assert "none of the 8" in gridsearch.gate_text({"twins": ["random_weights"], "passed": 0, "of": 8})
    assert "3 of 8" in gridsearch.gate_text({"twins": ["random_weights"], "passed": 3, "of": 8})
    assert gridsearch.gate_text({"twins": [], "passed": 8, "of": 8}).startswith("no gate")


def test_accuracy_scores_known_answers():
    reference = np.array([10.0, 20.0, 40.0, 50.0])
    measured = np.array([11.0, 30.0, 40.0, 45.0])  # relative errors 0.1, 0.5, 0, 0.1; ratios 1.1, 1.5, 1, 0.9
    got = statistics.accuracy_scores(measured, reference, 200, np.random.default_rng(0), "_truth")
    assert got["median_abs_rel_error_truth"] == pytest.approx(0.1)
    assert got["within_20pct_truth"] == pytest.approx(0.75)
    assert got["median_ratio_truth"] == pytest.approx(1.05)
    lo, hi = got["median_ratio_truth_ci95"]
    assert 0.9 <= lo <= 1.05 <= hi <= 1.5
    exact = statistics.accuracy_scores(reference, reference, 50, np.random.default_rng(0))
    assert exact["median_abs_rel_error"] == 0 and exact["within_20pct"] == 1 and exact["median_ratio"] == 1
    assert exact["median_ratio_ci95"] == [1.0, 1.0]


def test_accuracy_scores_refuse_a_non_positive_reference():
    with pytest.raises(ValueError, match="reference lengths > 0"):
        statistics.accuracy_scores([1.0, 2.0], [0.0, 2.0], 10, np.random.default_rng(0))


def test_a_length_that_runs_long_by_a_constant_factor_has_a_perfect_rank_but_not_a_perfect_ratio():
    cat = catalogue()
    got = statistics.accuracy_scores(1.16 * cat, cat, 100, np.random.default_rng(0))
    assert got["median_ratio"] == pytest.approx(1.16) and got["within_20pct"] == 1.0
    assert statistics.spearman(1.16 * cat, cat) == pytest.approx(1.0)


def test_mean_predictor_rmse_is_what_a_model_that_learnt_nothing_scores():
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 1, (40, len(CLASS_COLUMNS)))
    table = pd.DataFrame(labels, columns=CLASS_COLUMNS).assign(split=["train"] * 30 + ["val"] * 10)
    expected = np.sqrt(np.mean((labels[30:] - labels[:30].mean(axis=0)) ** 2))
    assert training.mean_predictor_rmse(table, CLASS_COLUMNS) == pytest.approx(expected)
    with pytest.raises(ValueError, match="expected train and val rows"):
        training.mean_predictor_rmse(table.assign(split="train"), CLASS_COLUMNS)


def test_percentile_intervals_are_columnwise_and_nan_for_empty_columns():
    draws = np.column_stack([np.arange(1001.0), np.full(1001, np.nan)])
    lo, hi = statistics.percentile_intervals(draws)
    assert lo[0] == pytest.approx(25.0) and hi[0] == pytest.approx(975.0)
    assert np.isnan(lo[1]) and np.isnan(hi[1])
