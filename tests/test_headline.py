"""The headline rows (galaxy_xai.results.headline): what `dvc metrics show` prints, copied from the detail
files without computing anything; and the timings kept out of the detail files (galaxy_xai.io)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from galaxy_xai import io
from galaxy_xai.results import headline as hl
from galaxy_xai.results.report import RunMetrics

ROOT = Path(__file__).resolve().parents[1]


def paired(difference: float, lo: float, up: float, verdict: str) -> dict:
    return {"difference": difference, "ci95": [lo, up], "verdict": verdict}


def run_metrics(truth: bool = True) -> RunMetrics:
    """A run cut to what the headline reads; ``truth`` False: real data, no true lengths."""
    score = "spearman_truth_image" if truth else "spearman_image"
    bars = {
        "n": 640, "rho": 0.91, "rho_ci95": [0.89, 0.93], "rho_null": 0.83, "spearman_image": 0.50,
        "spearman_image_ci95": [0.43, 0.55],
        **({"spearman_truth_image": 0.61, "spearman_truth_image_ci95": [0.56, 0.67]} if truth else {}),
        "controls": {"isophote": {"n": 637, score: 0.52, f"{score}_ci95": [0.44, 0.59],
                                  "difference": {score: paired(0.09, 0.004, 0.18, "beats")}}},
        "ensemble": {"truth" if truth else "catalogue": {"n": 640, "asymptote": 0.65, "asymptote_ci95": [0.59, 0.70]}},
    }  # fmt: skip
    return RunMetrics(
        table1="", table2="",
        morphology={"n": {"test": 200}, "rmse": {"ensemble": {"test": 0.107}, "baseline_train_mean": {"test": 0.198}},
                    "bar_auc": 0.93},
        gridsearch={"n": 320, "linearity": "elongation", "chosen": {
            "map_source": "mean_length", "estimator": "algorithm1",
            "preference": {"best": {"map_source": "resnet_small", "estimator": "algorithm1"}, "kept_preferred": True}}},
        barlengths=bars, control={},
        rotation={"galaxies": 40, "median_relative_spread": {"elongation": 0.045, "abs_pearson": 0.066},
                  "elongation_target": 0.08},
    )  # fmt: skip


def comparison(score: str = "spearman_truth_image") -> dict:
    return {
        "n_shared": 640,
        "control": {score: 0.58, f"{score}_ci95": [0.52, 0.63]},
        "difference": {score: paired(0.03, -0.03, 0.09, "ties")},
        "complements": {"n": 637, "scores": {
            "isophote+control": {score: 0.649, f"{score}_ci95": [0.59, 0.69]},
            "isophote+control+image": {score: 0.688, f"{score}_ci95": [0.64, 0.73]}},
            "difference": {
                "isophote+control+saliency - isophote+control": {score: paired(0.053, 0.029, 0.077, "beats")},
                "isophote+control+saliency - isophote+control+image": {score: paired(0.014, -0.008, 0.036, "ties")},
                "isophote+control+image - isophote+control": {score: paired(0.04, 0.01, 0.07, "beats")}}},
    }  # fmt: skip


def test_the_headline_copies_each_number_with_its_interval_and_verdict():
    rows = hl.headline(run_metrics(), comparison())
    assert rows["spearman_truth"] == {"value": 0.61, "value_95lo": 0.56, "value_95up": 0.67, "n": 640, "target": 0.7}
    assert rows["vs_isophote"] == {"value": 0.52, "value_95lo": 0.44, "value_95up": 0.59, "gain": 0.09,
                                   "gain_95lo": 0.004, "gain_95up": 0.18, "gain_verdict": "beats", "n": 637}  # fmt: skip
    assert rows["vs_control_cnn"]["gain_verdict"] == "ties" and rows["vs_control_cnn"]["n"] == 640
    # The complements: the rank mean without the saliency length, and the saliency length in place of the image's.
    assert rows["rank_mean_isophote+control"]["value"] == 0.649 and rows["rank_mean_isophote+control"]["gain"] == 0.053
    assert rows["rank_mean_isophote+control+image_swap_image"]["gain_verdict"] == "ties"
    assert not any("image - isophote" in name for name in rows)  # a difference without the saliency length
    assert rows["choice"] == {"value": "mean_length algorithm1", "n": 320}
    assert rows["choice_validation_best"] == {"value": "resnet_small algorithm1"}
    assert rows["rotation_spread"] == {"value": 0.045, "n": 40, "target": 0.08}
    assert rows["k_models_asymptote"]["value_95up"] == 0.70
    assert rows["morphology_rmse"] == {"value": 0.107, "n": 200} and rows["paper_rho_null"] == {"value": 0.83}


def test_without_truth_the_headline_scores_against_the_catalogue_and_drops_what_is_missing():
    rows = hl.headline(run_metrics(truth=False), comparison("spearman_image"))
    assert "spearman_truth" not in rows and rows["spearman_catalogue"]["value"] == 0.50
    assert "target" not in rows["spearman_catalogue"]  # issue #13's target is against the truth
    assert rows["vs_isophote"]["value"] == 0.52 and rows["vs_control_cnn"]["gain"] == 0.03
    bare = RunMetrics("", "", {}, {}, {"n": 10, "spearman_image": float("nan")}, {}, {})
    assert hl.headline(bare, {}) == {}  # a NaN score (JSON has none) is left out like a missing one


def test_the_true_axis_rows_carry_each_sources_score_and_what_the_saliency_length_gains_over_it():
    detail = {"n_test": 640, "rows": {
        "explanation": {"spearman_truth": 0.56, "spearman_truth_ci95": [0.51, 0.62],
                        "explanation_own_minus": paired(-0.03, -0.08, 0.03, "ties")},
        "image": {"spearman_truth": 0.81, "spearman_truth_ci95": [0.78, 0.84],
                  "explanation_own_minus": paired(-0.28, -0.34, -0.21, "loses")}}}  # fmt: skip
    base = run_metrics()
    rows = hl.headline(RunMetrics(**{**base.__dict__, "true_axis": detail}), comparison())
    assert rows["true_axis_image"] == {"value": 0.81, "value_95lo": 0.78, "value_95up": 0.84, "gain": -0.28,
                                       "gain_95lo": -0.34, "gain_95up": -0.21, "gain_verdict": "loses", "n": 640}  # fmt: skip
    assert rows["true_axis_explanation"]["gain_verdict"] == "ties"
    assert not any(name.startswith("true_axis") for name in hl.headline(base, comparison()))  # skipped or absent: no rows
    skipped = RunMetrics(**{**base.__dict__, "true_axis": {"skipped": "real data"}})
    assert not any(name.startswith("true_axis") for name in hl.headline(skipped, comparison()))


@pytest.mark.parametrize(
    "name, row",
    [
        ("isophote+saliency - isophote", "rank_mean_isophote"),
        ("isophote+control+image+saliency - isophote+control+image", "rank_mean_isophote+control+image"),
        ("isophote+saliency - isophote+control", "rank_mean_isophote+control_swap_control"),
        ("isophote+control - isophote", None),
        ("isophote+saliency - isophote+saliency", None),
    ],
)
def test_rank_mean_rows_are_named_by_the_rank_mean_the_saliency_length_is_compared_with(name, row):
    assert hl.rank_mean_row(name) == row


def test_rows_round_trip_through_the_folder_and_stale_rows_go(tmp_path):
    rows = hl.headline(run_metrics(), comparison())
    (tmp_path / "gone.json").write_text("{}")
    hl.write_headline(tmp_path, rows)
    assert hl.read_headline(tmp_path) == dict(sorted(rows.items()))
    assert not (tmp_path / "gone.json").exists()


def test_the_committed_headline_is_what_the_committed_metrics_give():
    """metrics/headline/ is the figure stage's copy of the committed detail files (regenerate with
    ``dvc repro figure``)."""
    run = RunMetrics.read(ROOT / "metrics")
    shared = json.loads((ROOT / "metrics" / "comparison.json").read_text())
    assert hl.read_headline(ROOT / "metrics" / "headline") == dict(sorted(hl.headline(run, shared).items()))


def test_only_the_headline_is_declared_as_metrics():
    """`dvc metrics show` prints the headline rows only: no stage declares another metrics file."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    declared = [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in pipeline["stages"].values()
        for entry in stage.get("do", stage).get("metrics", [])
    ] + pipeline.get("metrics", [])
    assert declared == ["metrics/headline"]


def test_timings_are_split_off_with_their_nesting():
    metrics = {"n": 3, "seconds": 1.5, "explainers": {"a": {"rho": 0.4, "seconds": 2.0, "seconds_random": 1.0}},
               "per_fold": [{"rmse": 0.1, "train_seconds": 4.0, "images_per_s": 300.0}, {"rmse": 0.2}]}  # fmt: skip
    kept, timings = io.split_timings(metrics)
    assert kept == {"n": 3, "explainers": {"a": {"rho": 0.4}}, "per_fold": [{"rmse": 0.1}, {"rmse": 0.2}]}
    assert timings == {"seconds": 1.5, "explainers": {"a": {"seconds": 2.0, "seconds_random": 1.0}},
                       "per_fold": [{"train_seconds": 4.0, "images_per_s": 300.0}, {}]}  # fmt: skip
    assert io.split_timings({"n": 1}) == ({"n": 1}, None)


def test_two_runs_with_other_timings_write_the_same_metrics_file(tmp_path):
    for k, seconds in enumerate((1.0, 2.0)):
        io.write_metrics(tmp_path / f"m{k}.json", tmp_path / f"t{k}.json", {"rho": 0.5, "train_seconds": seconds})
    assert (tmp_path / "m0.json").read_bytes() == (tmp_path / "m1.json").read_bytes()
    assert json.loads((tmp_path / "t1.json").read_text()) == {"train_seconds": 2.0}
