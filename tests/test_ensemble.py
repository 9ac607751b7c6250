"""The ensemble curve: subsets and their means, the Spearman-Brown fit, its predictions, and the
measure stage's use of it (galaxy_xai.results.ensemble, galaxy_xai.bars.protocol.ensemble_scores)."""

import json

import numpy as np
import pandas as pd
import pytest

from galaxy_xai import statistics
from galaxy_xai.bars import protocol
from galaxy_xai.bars.barlength import ALGORITHM1, MEAN_LENGTH, R90_MASK, Choice
from galaxy_xai.results import ensemble, figures, report
from galaxy_xai.results.evaluation import finite_or_none


def simulated(n: int, n_members: int, shared_sd: float, own_sd: float, seed: int = 0):
    """True lengths and members that see them through a shared error and an error of their own."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    shared = rng.normal(scale=shared_sd, size=(n, 1))
    own = rng.normal(scale=own_sd, size=(n, n_members))
    return truth[:, None] + shared + own, truth


def test_subsets_cover_every_non_empty_subset_by_size():
    assert ensemble.subsets(3) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert len(ensemble.subsets(6)) == 2**6 - 1
    with pytest.raises(ValueError, match="at least 1 member"):
        ensemble.subsets(0)


def test_subset_means_known_answer():
    means, sizes = ensemble.subset_means(np.array([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]]))
    np.testing.assert_allclose(means[0], [1, 2, 6, 1.5, 3.5, 4, 3])
    np.testing.assert_allclose(means[1], [0, 0, 3, 0, 1.5, 1.5, 1])
    np.testing.assert_array_equal(sizes, [1, 1, 1, 2, 2, 2, 3])
    with pytest.raises(ValueError, match=r"\(n galaxies, M members\)"):
        ensemble.subset_means(np.ones(4))


def test_fit_recovers_a_spearman_brown_curve_and_predicts_it():
    a, b = 1.8, 0.9
    k = np.arange(1, 5)
    curve = 1 / np.sqrt(a + b / k)
    fitted_a, fitted_b = ensemble.fit_curve(curve)
    assert fitted_a == pytest.approx(a) and fitted_b == pytest.approx(b)
    assert ensemble.predicted(a, b, 1) == pytest.approx(curve[0])
    assert ensemble.predicted(a, b, np.inf) == pytest.approx(1 / np.sqrt(a))
    np.testing.assert_allclose(ensemble.predicted(a, b, k), curve)
    # Vectorised over bootstrap curves, NaN where a curve cannot be fitted.
    many_a, many_b = ensemble.fit_curve(np.stack([curve, [0.5, -0.1, 0.6, 0.7], [0.5, np.nan, 0.6, 0.7]]))
    assert many_a[0] == pytest.approx(a) and np.isnan(many_a[1:]).all() and np.isnan(many_b[1:]).all()


def test_prediction_is_capped_at_one_and_nan_without_a_fit():
    # a + b / k below 1, or below 0, would mean a correlation above 1.
    np.testing.assert_array_equal(ensemble.predicted(np.array([0.5, -1.0, 4.0]), 0.0, np.inf), [1.0, 1.0, 0.5])
    assert ensemble.predicted(1.0, -2.0, 1) == 1.0
    assert np.isnan(ensemble.predicted(np.nan, np.nan, 4)) and np.isnan(ensemble.predicted(2.0, np.nan, 4))


def test_many_members_are_sampled_per_size_with_the_generator():
    chosen = ensemble.subsets(12, np.random.default_rng(0), max_per_size=20)
    sizes = np.array([len(c) for c in chosen])
    assert [int((sizes == k).sum()) for k in range(1, 13)] == [12, 20, 20, 20, 20, 20, 20, 20, 20, 20, 12, 1]
    assert len(set(chosen)) == len(chosen)
    assert chosen == ensemble.subsets(12, np.random.default_rng(0), max_per_size=20)
    with pytest.raises(ValueError, match="pass rng"):
        ensemble.subsets(12, max_per_size=20)


def test_the_mean_of_all_members_ranks_as_the_headline_mean_does():
    # Quantised lengths tie; a mean summed in another order (the measure stage: models, then draws)
    # differs in the last bits, which must not break the ties in another order.
    rng = np.random.default_rng(5)
    draws = rng.integers(10, 20, size=(2, 500, 3)) / 3.0
    truth = rng.normal(size=500)
    headline = draws.mean(axis=2).mean(axis=0)
    curve = ensemble.ensemble_curve(draws.mean(axis=0), truth, 10, rng)
    assert curve["spearman"][-1] == pytest.approx(statistics.spearman(np.round(headline, 9), truth), abs=1e-12)


def test_identical_members_gain_nothing():
    lengths, truth = simulated(400, 1, 0.0, 1.0)
    curve = ensemble.ensemble_curve(np.repeat(lengths, 3, axis=1), truth, 50, np.random.default_rng(0))
    np.testing.assert_allclose(curve["spearman"], curve["spearman"][0])
    assert curve["asymptote"] == pytest.approx(curve["spearman"][0], abs=1e-9)
    assert curve["b"] == pytest.approx(0.0, abs=1e-9)


def test_asymptote_matches_the_shared_error_it_cannot_average_away():
    shared_sd, own_sd = 0.5, 1.0
    lengths, truth = simulated(20_000, 4, shared_sd, own_sd, seed=1)
    curve = ensemble.ensemble_curve(lengths, truth, 20, np.random.default_rng(2), ["m0", "m1", "m2", "m3"])
    # Gaussian errors: Pearson 1 / sqrt(1 + shared^2 + own^2 / k); Spearman = (6 / pi) asin(Pearson / 2).
    expected = {
        k: 6 / np.pi * np.arcsin(0.5 / np.sqrt(1 + shared_sd**2 + own_sd**2 / k)) for k in (1, 2, 3, 4, 8, np.inf)
    }
    np.testing.assert_allclose(curve["spearman"], [expected[k] for k in (1, 2, 3, 4)], atol=0.01)
    assert curve["doubled_k"] == 8
    assert curve["doubled"] == pytest.approx(expected[8], abs=0.01)
    assert curve["asymptote"] == pytest.approx(expected[np.inf], abs=0.02)
    assert curve["spearman"][-1] < curve["doubled"] < curve["asymptote"] < 1
    lo, hi = curve["asymptote_ci95"]
    assert lo <= curve["asymptote"] <= hi
    assert curve["members"] == ["m0", "m1", "m2", "m3"] and curve["n"] == 20_000 and curve["k"] == [1, 2, 3, 4]
    assert curve["resamples"] == curve["resamples_fitted"] == 20


def test_galaxies_without_a_length_or_reference_are_left_out():
    lengths, truth = simulated(60, 3, 0.3, 0.5)
    lengths[0, 1] = np.nan
    truth[1] = np.nan
    curve = ensemble.ensemble_curve(lengths, truth, 30, np.random.default_rng(0))
    assert curve["n"] == 58 and curve["members"] == ["member 0", "member 1", "member 2"]
    assert np.all(np.isfinite(curve["spearman"]))


@pytest.mark.parametrize(
    ("lengths", "reference", "message"),
    [
        (np.ones((10, 1)), np.arange(10.0), "at least 2 members"),
        (np.ones((10, 3)), np.arange(9.0), r"lengths \(n, M\) and reference \(n,\)"),
        (np.full((10, 2), np.nan), np.arange(10.0), "at least 3 galaxies"),
    ],
)
def test_bad_input_is_refused(lengths, reference, message):
    with pytest.raises(ValueError, match=message):
        ensemble.ensemble_curve(lengths, reference, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="member names"):
        ensemble.ensemble_curve(np.ones((10, 2)), np.arange(10.0), 10, np.random.default_rng(0), ["only one"])


def _settings(models):
    choice = Choice(MEAN_LENGTH, True, 0.9, 20.0, ALGORITHM1, R90_MASK)
    members = tuple(Choice(m, True, 0.9, 20.0, ALGORITHM1, R90_MASK) for m in models)
    return protocol.TestSettings(choice, choice, [], protocol.FOURIER_LIGHT_DEFAULT, members)


def test_ensemble_scores_use_each_models_mean_over_draws():
    models = ["a", "b", "c"]
    settings = _settings(models)
    assert settings.saliency[0] == settings.choice and set(settings.members) <= set(settings.saliency)
    lengths, truth = simulated(80, 3, 0.3, 0.6, seed=3)
    draws = np.zeros((protocol.N_DRAWS, 80, len(settings.saliency)))
    for j, member in enumerate(settings.members):
        column = settings.saliency.index(member)
        draws[0, :, column], draws[1, :, column] = lengths[:, j] - 0.1, lengths[:, j] + 0.1
    np.testing.assert_allclose(protocol.member_lengths(settings, draws), lengths)
    sample = pd.DataFrame({"length_px424": truth + np.random.default_rng(4).normal(scale=0.3, size=80), "true_length_px424": truth})
    scores = protocol.ensemble_scores(settings, draws, sample, 40, np.random.default_rng(0))
    assert set(scores) == {"catalogue", "truth"}
    direct = ensemble.ensemble_curve(lengths, truth, 40, np.random.default_rng(1), models)
    np.testing.assert_allclose(scores["truth"]["spearman"], direct["spearman"])
    # Real data: no true length, so the curve against the catalogue only; one model: no curve.
    assert set(protocol.ensemble_scores(settings, draws, sample.drop(columns="true_length_px424"), 40, np.random.default_rng(0))) == {"catalogue"}
    one = _settings(["a"])
    assert protocol.ensemble_scores(one, np.ones((protocol.N_DRAWS, 80, len(one.saliency))), sample, 40, np.random.default_rng(0)) == {}
    # Too few galaxies with every length and a true length: no curve against the truth, no error.
    few = sample.assign(true_length_px424=np.where(np.arange(80) < 2, truth, np.nan))
    assert set(protocol.ensemble_scores(settings, draws, few, 40, np.random.default_rng(0))) == {"catalogue"}


def test_the_test_settings_measure_each_model_alone_at_the_chosen_setting(tmp_path):
    chosen = Choice(MEAN_LENGTH, True, 0.9, 20.0, ALGORITHM1, R90_MASK)
    image = Choice("image_residual", True, 0.8, 10.0, ALGORITHM1, R90_MASK)
    path = tmp_path / "gridsearch.json"
    path.write_text(json.dumps({"chosen": chosen.to_json(64, 160), "chosen_image": image.to_json(64, 160), "best_per_estimator": []}))
    settings = protocol.TestSettings.read(path, ["a", "b"])
    assert settings.members == (Choice("a", True, 0.9, 20.0, ALGORITHM1, R90_MASK), Choice("b", True, 0.9, 20.0, ALGORITHM1, R90_MASK))
    assert settings.saliency == [chosen, *settings.members]


def test_report_table_and_figure_read_the_stored_curve(tmp_path):
    lengths, truth = simulated(300, 3, 0.4, 0.8)
    curve = ensemble.ensemble_curve(lengths, truth, 100, np.random.default_rng(0), ["x", "y", "z"])
    stored = json.loads(json.dumps(finite_or_none({"truth": curve})))
    lines = report.ensemble_table(stored)
    assert lines[0].startswith("| Spearman rho against | mean of 1 model | mean of 2 models | mean of 3 models | 6 models (predicted)")
    assert lines[2] == f"| truth | {' | '.join(report.with_interval({'r': r, 'r_ci95': c}, 'r') for r, c in zip(curve['spearman'], curve['spearman_ci95'], strict=True))} | {report.with_interval(curve, 'doubled')} | {report.with_interval(curve, 'asymptote')} |"
    assert report.ensemble_table({}) == []
    figures.save(figures.ensemble_curve(stored, {"truth": {"control CNN": 0.5}}), tmp_path / "ensemble.png")
    # A curve that could not be fitted (tiny runs): stored as None, drawn without its fit.
    stored["truth"].update(a=None, b=None, asymptote=None, asymptote_ci95=[None, None])
    figures.save(figures.ensemble_curve(stored), tmp_path / "unfitted.png")
    assert (tmp_path / "ensemble.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "unfitted.png").is_file()
