"""Scores on known inputs, and the gridsearch and measure stages on a small synthetic set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from galaxy_xai import evaluation
from stages import gridsearch, measure

ROOT = Path(__file__).resolve().parents[1]


def test_pearson_and_spearman_known_values():
    x = np.arange(10.0)
    assert evaluation.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert evaluation.pearson(x, -x) == pytest.approx(-1.0)
    assert np.isnan(evaluation.pearson(x, np.ones(10)))
    assert evaluation.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert evaluation.pearson(x, np.exp(x)) < 0.9
    with pytest.raises(ValueError, match="same length"):
        evaluation.pearson(x, x[:5])


def test_pearson_columns_matches_corrcoef():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=50)
    expected = [np.corrcoef(a[:, k], b)[0, 1] for k in range(4)]
    np.testing.assert_allclose(evaluation.pearson_columns(a, b), expected, rtol=1e-12)


def test_rho_paper_multiplies_both_lengths_by_the_factor():
    rng = np.random.default_rng(1)
    m, c, f = rng.random(30), rng.random(30), rng.uniform(1, 10, 30)
    assert evaluation.rho_paper(m, c, f) == pytest.approx(np.corrcoef(m * f, c * f)[0, 1])


def test_slope_through_origin_of_exact_line():
    x = np.array([1.0, 2.0, 4.0, 5.0])
    sigma_x, sigma_y = 0.1 * x, np.full(4, 0.3)
    fit = evaluation.fit_through_origin(x, 2 * x, sigma_x, sigma_y)
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
    fit = evaluation.fit_through_origin(x, y, sx, sy)
    assert abs(fit.slope - 0.7) < 4 * fit.slope_err + 0.02
    assert 0.7 < fit.chi2_dof < 1.3


def test_permutation_null_measures_the_shared_factor():
    rng = np.random.default_rng(3)
    n = 400
    measured, catalogue = rng.lognormal(0, 0.3, n), rng.lognormal(0, 0.3, n)
    factor = rng.lognormal(0, 0.8, n)
    without = evaluation.permutation_null(measured, catalogue, 1.0, 1000, np.random.default_rng(7))
    shared = evaluation.permutation_null(measured, catalogue, factor, 1000, np.random.default_rng(7))
    assert without.shape == (1000,)
    assert abs(without.mean()) < 0.01
    assert shared.mean() > 0.3
    again = evaluation.permutation_null(measured, catalogue, factor, 1000, np.random.default_rng(7))
    np.testing.assert_array_equal(shared, again)


def test_permutation_p_value_known_answers():
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert evaluation.permutation_p_value(0.35, null) == pytest.approx(2 / 5)  # itself + 0.4
    assert evaluation.permutation_p_value(0.9, null) == pytest.approx(1 / 5)  # never 0
    assert evaluation.permutation_p_value(0.0, null) == 1.0
    assert np.isnan(evaluation.permutation_p_value(float("nan"), null))
    with pytest.raises(ValueError, match="non-empty 1-D null"):
        evaluation.permutation_p_value(0.5, np.array([]))


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
    _, const_scores = evaluation.measurement_summary(constant, sample, 999, np.random.default_rng(1))
    _, info_scores = evaluation.measurement_summary(informative, sample, 999, np.random.default_rng(1))
    assert const_scores["rho"] > 0.8 and const_scores["rho_p_value"] > 0.05
    assert abs(const_scores["rho_image"]) < 0.2 and const_scores["rho_image_p_value"] > 0.01
    assert info_scores["rho_image"] > 0.3 and info_scores["rho_image_p_value"] == pytest.approx(1 / 1000)
    assert info_scores["rho_image_null_p95"] < 0.15


def test_decile_errors_known_answer():
    rng = np.random.default_rng(4)
    length = rng.permutation(np.arange(1.0, 21.0))
    abs_diff = length**2
    error = evaluation.decile_errors(length, abs_diff)
    # deciles of 1..20 are (1, 2), (3, 4), ...: mean of k^2 over each pair
    expected = {k: ((2 * ((k - 1) // 2) + 1) ** 2 + (2 * ((k - 1) // 2) + 2) ** 2) / 2 for k in range(1, 21)}
    np.testing.assert_allclose(error, [expected[int(v)] for v in length])
    assert np.unique(evaluation.decile_errors(np.arange(5.0), np.arange(5.0))).size == 5


def test_rmse_helpers():
    y_true = np.array([[0.0, 1.0], [1.0, 1.0]])
    y_pred = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert evaluation.rmse(y_true, y_pred) == pytest.approx(np.sqrt(0.5))
    np.testing.assert_allclose(evaluation.per_column_rmse(y_true, y_pred), [0.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        evaluation.rmse(y_true, y_pred[:1])


def test_median_relative_spread():
    lengths = np.array([[10.0, 10.0, 10.0], [9.0, 10.0, 11.0], [5.0, 10.0, 15.0]])
    assert evaluation.median_relative_spread(lengths) == pytest.approx(0.2)


def test_grid_scores_and_best_per_method():
    catalogue = np.arange(1.0, 11.0)
    factor = np.ones(10)
    noise = np.random.default_rng(5).normal(size=(10, 2, 2))
    lengths = {
        ("a", False): catalogue[:, None, None] + 3 * noise,
        ("a", True): catalogue[:, None, None] + noise,
    }
    lengths[("b", False)] = lengths[("a", True)].copy()
    lengths[("b", False)][:, 1, 0] = catalogue
    table = evaluation.grid_scores(lengths, catalogue, factor, [0.7, 0.8], [10, 20], [2, 3])
    assert len(table) == 12 and set(table.columns) >= {
        "method",
        "x_input",
        "rho",
        "rho_image",
        "len_threshold_px",
    }
    best = evaluation.best_per_method(table).set_index("method")
    assert best.loc["b", "rho_image"] == pytest.approx(1.0)
    assert (
        best.loc["b", "corr_threshold"],
        best.loc["b", "len_threshold"],
        best.loc["b", "len_threshold_px"],
    ) == (0.8, 10, 2)
    assert bool(best.loc["a", "x_input"]) is True


def test_xai_sample_rejects_bad_rows():
    bars = pd.DataFrame(
        {
            "objid": [1, 2, 3],
            "length_px424": [10.0, -1.0, 5.0],
            "length_kpc": [1.0, 2.0, 3.0],
            "PETROR90_R": [5.0, 5.0, 5.0],
            "REDSHIFT": [0.05] * 3,
            "xai_split": ["val", "val", "test"],
        }
    )
    with pytest.raises(ValueError, match="objid 2: length_px424"):
        evaluation.xai_sample(bars, "val")
    assert evaluation.xai_sample(bars, "test")["objid"].tolist() == [3]
    with pytest.raises(ValueError, match="missing columns"):
        evaluation.xai_sample(bars.drop(columns="REDSHIFT"), "test")


def test_paper_table2_lookup():
    assert evaluation.paper_table2_rho("vgg_small", "vgg_small") == 0.68
    assert evaluation.paper_table2_rho("mean_map") == 0.76
    assert evaluation.paper_table2_rho("mine", "custom") is None


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
    """params.yaml, data/prepared/bars.csv and data/heatmaps/<model>.npz for 24 val + 30 test galaxies."""
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
    heatmaps.mkdir(parents=True)
    objid = np.concatenate([bars.objid[:n_val], bars.objid[n_val:], bars.objid[n_val:]])
    split = np.array(["val"] * n_val + ["test"] * 2 * n_test, dtype="<U4")
    draw = np.array([0] * n_val + [0] * n_test + [1] * n_test, dtype=np.int8)
    length_map_px = np.concatenate([true_px424[:n_val], true_px424[n_val:], true_px424[n_val:]]) * size / crop
    for k, model in enumerate(params["models"]):
        maps = render_bars(length_map_px, size, np.random.default_rng(10 + k)).astype(np.float16)
        grey = np.full_like(maps, 0.8)
        np.savez(
            heatmaps / f"{model}.npz",
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
    methods = [*params["models"], "mean_map", "mean_length"]
    table = pd.read_csv(project / "plots/gridsearch.csv")
    assert len(table) == len(methods) * 2 * 5 * 5
    assert sorted(r["method"] for r in grid["table2"]) == sorted(methods)
    chosen = grid["chosen"]
    assert chosen["method"] in methods
    assert chosen["rho_image"] == pytest.approx(table["rho_image"].max())
    crop = params["images"]["crop_px"]
    assert chosen["len_threshold_px"] == max(2, round(chosen["len_threshold"] * (32 / 224 * 424 / crop) ** 2))
    assert chosen["rho_image"] > 0.6
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
    assert result["method"] == chosen["method"] and result["permutations"] == 200
    assert result["rho_image"] > 0.6 and result["rho_truth_image"] > result["rho_image"] - 0.2
    assert 0.5 < result["slope"] < 2.0


def test_measure_rejects_a_missing_chosen_entry(project, tmp_path, capfd):
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        measure.main(["--params", str(project / "params.yaml"), "--gridsearch", str(tmp_path / "bad.json")])
    assert stop.value.code == 2
    assert "bad.json: expected the gridsearch stage's JSON with a 'chosen' entry" in capfd.readouterr().err


def test_gridsearch_names_the_missing_heatmap_file(project):
    shutil.rmtree(project / "data/heatmaps")
    (project / "data/heatmaps").mkdir()
    with pytest.raises(ValueError, match=r"_small\.npz.*not found"):
        gridsearch.main(
            cli(project, params="params.yaml", heatmaps="data/heatmaps", bars="data/prepared/bars.csv")
            + cli(project, metrics="m.json", table="t.csv", table2="t.md")
        )
