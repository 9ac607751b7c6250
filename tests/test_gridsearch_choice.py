"""The grid search's choice: the best validation score, unless it does not beat the preferred rows'
best (the models' mean length, the paper's Algorithm 1) by more than a paired bootstrap's noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_xai import statistics
from galaxy_xai.bars import gridsearch
from galaxy_xai.results import evaluation, report

N = 300


def validation(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"length_px424": rng.lognormal(3.0, 0.3, N), "PETROR90_R": rng.lognormal(2.0, 0.2, N)})


def table_of(sources: list[str], estimators: list[str], lengths: np.ndarray, sample: pd.DataFrame) -> pd.DataFrame:
    """A grid-search table of one setting per column of ``lengths`` (n, S), scored against ``sample``."""
    s = len(sources)
    settings = pd.DataFrame(
        {
            "map_source": sources,
            "estimator": estimators,
            "x_input": [True] * s,
            "mask": ["r90"] * s,
            "corr_threshold": [0.9 if e == "algorithm1" else np.nan for e in estimators],
            "len_threshold": [20.0 if e == "algorithm1" else np.nan for e in estimators],
            "fraction": [np.nan if e == "algorithm1" else 0.5 for e in estimators],
            "floor": [np.nan if e == "algorithm1" else 0.2 for e in estimators],
            "len_threshold_px": [11.0 if e == "algorithm1" else np.nan for e in estimators],
        }
    )
    return evaluation.grid_scores(settings, lengths, sample["length_px424"], sample["PETROR90_R"])


def noisy(truth: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``truth`` times log-normal scatter of ``sigma`` dex-like width."""
    return truth * np.exp(np.random.default_rng(seed).normal(0.0, sigma, truth.size))


SOURCES = ["vgg_small", "mean_length", "mean_length", "image_residual"]
ESTIMATORS = ["algorithm1", "algorithm1", "fourier", "algorithm1"]
PREFER = {"map_source": "mean_length", "estimator": "algorithm1"}


def choose(lengths: np.ndarray, prefer: dict, seed: int = 0) -> tuple[dict, dict, pd.DataFrame]:
    sample = validation()
    table = table_of(SOURCES, ESTIMATORS, lengths, sample)
    saliency = (table["map_source"] != "image_residual").to_numpy()
    chosen, stability = gridsearch.choose(table, lengths, saliency, prefer, sample, 1000, np.random.default_rng(seed))
    return chosen, stability, table


def lengths_with(preferred_sigma: float, fourier_sigma: float) -> np.ndarray:
    truth = validation()["length_px424"].to_numpy()
    return np.column_stack(
        [noisy(truth, 0.6, 1), noisy(truth, preferred_sigma, 2), noisy(truth, fourier_sigma, 3), noisy(truth, 0.2, 4)]
    )


def near_twins() -> np.ndarray:
    """Lengths whose Fourier setting (column 2) has errors of the same size as the preferred one's,
    drawn independently, ordered so that it scores higher on these galaxies (by chance alone)."""
    lengths = lengths_with(0.30, 0.30)
    rho = statistics.pearson_columns(lengths, validation()["length_px424"])
    return lengths if rho[2] > rho[1] else lengths[:, [0, 2, 1, 3]]


def test_a_best_within_the_noise_of_the_preferred_setting_keeps_the_preferred():
    chosen, stability, table = choose(near_twins(), PREFER)
    assert table["rho_image"].iloc[2] > table["rho_image"].iloc[1] > table["rho_image"].iloc[0]
    assert (chosen["map_source"], chosen["estimator"]) == ("mean_length", "algorithm1")
    assert chosen["rho_image"] == pytest.approx(table["rho_image"].iloc[1])
    preference = chosen["preference"]
    assert preference["kept_preferred"] and preference["best"]["estimator"] == "fourier"
    assert preference["prefer"] == PREFER
    test = preference["best_minus_preferred"]
    assert test["difference"] == pytest.approx(table["rho_image"].iloc[2] - table["rho_image"].iloc[1])
    assert test["ci95"][0] <= 0 < test["ci95"][1] and test["verdict"] == "ties"
    # The choice was made among the preferred rows (one setting here): it is always made again.
    assert stability["map_source"] == "mean_length" and stability["setting_frequency"] == 1.0


def test_a_best_that_beats_the_preferred_setting_by_more_than_the_noise_is_chosen():
    chosen, stability, table = choose(lengths_with(0.6, 0.1), PREFER)
    assert (chosen["map_source"], chosen["estimator"]) == ("mean_length", "fourier")
    preference = chosen["preference"]
    assert not preference["kept_preferred"] and preference["best_minus_preferred"]["verdict"] == "beats"
    assert preference["best_minus_preferred"]["ci95"][0] > 0
    # Chosen among every saliency row: the image-only row is not a candidate.
    assert set(stability["map_sources"]) <= {"vgg_small", "mean_length"}


def test_a_preferred_best_or_no_preference_is_the_plain_best_score():
    lengths = lengths_with(0.1, 0.6)
    chosen, _, table = choose(lengths, PREFER)
    assert chosen["preference"] is None and chosen["estimator"] == "algorithm1"
    assert chosen["rho_image"] == pytest.approx(table["rho_image"].iloc[:3].max())
    plain, _, table = choose(lengths_with(0.30, 0.29), {"map_source": None, "estimator": None})
    assert plain["preference"] is None
    assert plain["rho_image"] == pytest.approx(table["rho_image"].iloc[:3].max())


def test_the_preference_test_is_the_paired_bootstrap_of_the_two_settings():
    lengths = lengths_with(0.35, 0.3)
    chosen, _, _ = choose(lengths, PREFER, seed=7)
    sample = validation()
    expected = statistics.paired_bootstrap_difference(
        lengths[:, 2], lengths[:, 1], sample["length_px424"], "pearson", 1000, np.random.default_rng(7)
    )
    assert chosen["preference"]["best_minus_preferred"] == expected.to_json()


def test_the_log_line_and_the_report_say_how_the_preference_decided():
    chosen, stability, _ = choose(near_twins(), PREFER)
    line = gridsearch.describe(chosen, stability)
    assert "the best score was mean_length fourier" in line and "kept the preferred setting" in line
    sentence = report.preference_sentence(chosen)
    assert sentence.startswith("Preference rule: the best validation score is mean_length")
    assert "preferred mean_length, algorithm1" in sentence and "validation cannot tell them apart" in sentence
    assert report.preference_sentence({"preference": None}) == ""
