"""The comparisons and report tables of the figure stage (galaxy_xai.results.comparison, galaxy_xai.results.report):
the saliency method vs the cross-fitted control CNN (all shared test galaxies and the paper's split),
vs each classical control, and every estimator; and the figure helpers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from galaxy_xai.results import comparison as comparisons
from galaxy_xai.results import report as rep
from galaxy_xai.results.report import RunMetrics

N_TEST, N_VAL = 90, 45


def run_metrics() -> RunMetrics:
    """Minimal metrics for the report around a comparison (what each stage writes, cut to what it reads)."""
    scores = {"n": 60, "resamples": 1000, "rho": 0.9, "rho_ci95": [0.8, 0.95], "rho_image": 0.3, "rho_image_ci95": [0.1, 0.5]}
    stability = {
        "resamples": 1000, "map_source": "mean_map", "map_source_frequency": 0.62, "setting_frequency": 0.18,
        "map_sources": {},
        "alternatives": [{"map_source": "resnet_small", "x_input": False, "corr_threshold": 0.9, "len_threshold": 50,
                          "frequency": 0.12}],
    }  # fmt: skip
    chosen = {"map_source": "mean_map", "x_input": False, "corr_threshold": 0.5, "len_threshold": 20, "len_threshold_px": 11,
              "rho_image": 0.435, "rho_image_ci95": [0.27, 0.58]}  # fmt: skip
    spread = {"abs_pearson": 0.1, "elongation": 0.05}
    return RunMetrics(
        table1="", table2="", morphology={"test_rmse_over_mean_baseline": {"ensemble": 0.5}},
        gridsearch={"chosen": chosen, "choice_stability": stability, "linearity": "elongation", "n": 100},
        barlengths=scores, control=scores,
        rotation={"galaxies": 4, "angles_deg": [0, 90], "median_relative_spread": spread,
                  "noise_relative_spread": spread, "elongation_target": 0.1},
    )  # fmt: skip


def test_the_report_says_beats_only_when_the_paired_interval_excludes_zero():
    """The run that said "beats" for 0.307 vs 0.278 on 60 galaxies: the same numbers now tie."""
    rng = np.random.default_rng(18)
    reference = rng.lognormal(0, 0.4, 60)
    error = reference.std() * rng.normal(size=(60, 2))
    rows = {
        method: pd.DataFrame(
            {"objid": np.arange(60), "measured_px424": reference + 3 * error[:, k], "catalogue_px424": reference,
             "petror90_r_arcsec": rng.uniform(3, 12, 60)}
        )
        for k, method in enumerate(("saliency", "control"))
    }  # fmt: skip
    shared = comparisons.shared_comparison(rows["saliency"], rows["control"], 1000, np.random.default_rng(0))
    assert shared["saliency"]["rho_image"] > shared["control"]["rho_image"], "old rule: saliency beats"
    image = shared["difference"]["rho_image"]
    assert image["verdict"] == "ties" and image["ci95"][0] < 0 < image["ci95"][1]
    report = rep.report_markdown(run_metrics(), shared, "input_x_gradient")
    sentences = [line for line in report.splitlines() if "the control model on these galaxies" in line]
    assert len(sentences) == 2 and all("**ties with**" in line for line in sentences)
    assert "beats" not in " ".join(sentences)
    paper, units = sentences
    # One convention per sentence.
    assert "paper's convention" in paper and "image units" not in paper
    assert "image units" in units and "paper" not in units and "PETROR90_R" not in units
    lo, hi = image["ci95"]
    assert f"{image['difference']:+.3f} [{lo:+.2f}, {hi:+.2f}]" in units
    s, c = shared["saliency"], shared["control"]
    assert f"{s['rho_image']:.3f} [{s['rho_image_ci95'][0]:.2f}, {s['rho_image_ci95'][1]:.2f}]" in units
    assert f"{c['rho_image']:.3f} [{c['rho_image_ci95'][0]:.2f}, {c['rho_image_ci95'][1]:.2f}]" in units
    assert "| saliency method rho in image units | 0.300 [0.10, 0.50] |" in report
    assert "picks mean_map again in 62% of them and this exact setting in 18%" in report
    assert "resnet_small (X_input = False, T_c = 0.9, T_l = 50) 12%" in report
    assert "validation rho_image is 0.435 [0.27, 0.58]" in report

    # A clearly better saliency method does beat the control model.
    rows["saliency"]["measured_px424"] = reference + 0.1 * error[:, 0]
    shared = comparisons.shared_comparison(rows["saliency"], rows["control"], 1000, np.random.default_rng(0))
    assert shared["difference"]["rho_image"]["verdict"] == "beats"
    report = rep.report_markdown(run_metrics(), shared, "input_x_gradient")
    assert "In image units, the saliency method **beats** the control model" in report


def test_run_metrics_reads_the_metrics_folder(tmp_path):
    run = run_metrics()
    (tmp_path / "table1.md").write_text("| t1 |")
    (tmp_path / "table2.md").write_text("| t2 |")
    for name, content in (("morphology", run.morphology), ("gridsearch", run.gridsearch), ("barlengths", run.barlengths),
                          ("control", run.control), ("rotation", run.rotation)):
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    read = RunMetrics.read(tmp_path)
    assert read == dataclasses.replace(run, table1="| t1 |", table2="| t2 |")
    (tmp_path / "explainers.md").write_text("# Explainers\n\n| e |\n## Sanity checks\n")
    read = RunMetrics.read(tmp_path)
    assert read.explainers.startswith("# Explainers")
    report = rep.report_markdown(read, {}, "input_x_gradient")
    assert "\n## Explainers\n" in report and "\n### Sanity checks" in report and "plots/explainers_sanity.png" in report


def _tables(saliency_noise: float, control_noise: float, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-galaxy tables as measure (XAI test galaxies) and control (every bar galaxy, out of fold) write them."""
    rng = np.random.default_rng(seed)
    n = N_TEST + N_VAL
    truth = rng.lognormal(3.5, 0.4, n)
    catalogue = truth * rng.lognormal(0, 0.15, n)
    common = {"objid": 1000 + np.arange(n), "catalogue_px424": catalogue, "true_px424": truth,
              "petror90_r_arcsec": rng.uniform(3, 12, n)}  # fmt: skip
    xai_split = np.where(np.arange(n) < N_TEST, "test", "val")
    fold = np.where(np.arange(n) < N_TEST // 5, 0, 1 + np.arange(n) % 4)
    saliency = pd.DataFrame({**common, "measured_px424": truth * rng.lognormal(0, saliency_noise, n)})
    control = pd.DataFrame(
        {**common, "measured_px424": truth * rng.lognormal(0, control_noise, n), "fold": fold, "xai_split": xai_split}
    )
    return saliency[xai_split == "test"].reset_index(drop=True), control


def test_control_comparison_uses_every_shared_test_galaxy_and_the_paper_split():
    saliency, control = _tables(0.1, 0.6)
    shared = comparisons.control_comparisons(saliency, control, 500, np.random.default_rng(0))
    # Every XAI test galaxy (not the control's validation-split predictions), and fold 0 alone.
    assert shared["n_shared"] == N_TEST and shared["n_truth"] == N_TEST
    paper = shared["paper_split"]
    assert paper["n_shared"] == (control.loc[control["xai_split"] == "test", "fold"] == 0).sum() == N_TEST // 5
    for comparison in (shared, paper):
        assert set(comparison["difference"]) == {"rho", "rho_image", "spearman_image", "rho_truth_image", "spearman_truth_image"}
        for key, diff in comparison["difference"].items():
            lo, hi = diff["ci95"]
            assert lo <= diff["difference"] <= hi, key
            assert diff["verdict"] == ("beats" if lo > 0 else "loses" if hi < 0 else "ties"), key
            assert diff["difference"] == pytest.approx(comparison["saliency"][key] - comparison["control"][key])
    # A much better method beats on the 90 galaxies; the same gap on the 18 of the paper split is less sure.
    assert shared["difference"]["spearman_truth_image"]["verdict"] == "beats"
    width = {name: np.diff(c["difference"]["rho_image"]["ci95"])[0] for name, c in (("all", shared), ("paper", paper))}
    assert width["paper"] > width["all"]


def test_control_comparison_of_an_older_control_table_without_folds():
    saliency, control = _tables(0.3, 0.3)
    old = control[control["xai_split"] == "test"].drop(columns=["fold", "xai_split", "true_px424"])
    shared = comparisons.control_comparisons(saliency, old, 200, np.random.default_rng(0))
    assert shared["n_shared"] == N_TEST and "paper_split" not in shared and "n_truth" not in shared
    assert set(shared["difference"]) == {"rho", "rho_image", "spearman_image"}


BARS_EXTRA = {
    "spearman_truth_image": 0.61, "spearman_truth_image_ci95": [0.55, 0.66],
    "estimators": [
        {"map_source": "mean_map", "estimator": "algorithm1", "x_input": False, "mask": "r90", "corr_threshold": 0.5,
         "len_threshold": 20, "fraction": float("nan"), "val_rho_image": 0.45, "val_rho_image_ci95": [0.35, 0.55],
         "rho_image": 0.41, "rho_image_ci95": [0.33, 0.49], "spearman_image": 0.44, "spearman_image_ci95": [0.36, 0.51],
         "spearman_truth_image": 0.61, "spearman_truth_image_ci95": [0.55, 0.66]},
        {"map_source": "image", "estimator": "fourier", "fraction": 0.5, "val_rho_image": 0.3,
         "rho_image": 0.28, "rho_image_ci95": [0.2, 0.36], "spearman_image": 0.3, "spearman_image_ci95": [0.22, 0.38],
         "spearman_truth_image": 0.52, "spearman_truth_image_ci95": [0.45, 0.58]},
    ],
    "controls": {
        "image": {"setting": {"estimator": "fourier", "x_input": False, "mask": "none", "fraction": 0.3},
                  "n": 630, "rho_image": 0.35, "rho_image_ci95": [0.28, 0.42], "spearman_truth_image": 0.5,
                  "spearman_truth_image_ci95": [0.44, 0.56],
                  "difference": {"rho_image": {"difference": 0.06, "ci95": [0.01, 0.11], "verdict": "beats"},
                                 "spearman_truth_image": {"difference": 0.11, "ci95": [-0.02, 0.2], "verdict": "ties"}}},
        "isophote": {"n": 630, "rho_image": 0.2, "rho_image_ci95": [0.12, 0.28]},
    },
}  # fmt: skip
"""What the measure stage adds to barlengths.json for the report (issue #13)."""


def _report(bars_extra: dict) -> tuple[str, dict]:
    saliency, control = _tables(0.1, 0.6)
    shared = comparisons.control_comparisons(saliency, control, 300, np.random.default_rng(0))
    run = run_metrics()
    paper_scores = {"n": 18, "rho": 0.7, "rho_ci95": [0.5, 0.8], "rho_image": 0.2, "rho_image_ci95": [-0.1, 0.5]}
    run = dataclasses.replace(
        run,
        barlengths={**run.barlengths, **bars_extra},
        control={**run.control, "folds": 5, "n_bars": 950, "paper_split": paper_scores},
    )
    return rep.report_markdown(run, shared, "input_x_gradient"), shared


def _row(report: str, first_cell: str) -> list[str]:
    (line,) = [line for line in report.splitlines() if line.startswith(f"| {first_cell} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_report_tables_of_the_controls_the_estimators_and_the_target():
    report, shared = _report(BARS_EXTRA)
    cross = _row(report, "control CNN, cross-fit (every shared XAI test galaxy)")
    diff = shared["difference"]["spearman_truth_image"]
    assert cross[1] == str(N_TEST)
    assert cross[5] == rep.with_interval(shared["control"], "spearman_truth_image")
    assert cross[6] == f"{diff['difference']:+.3f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]"
    assert cross[7] == "**beats**"
    paper = _row(report, "control CNN, paper split (one model, its 20% test fold)")
    assert paper[1] == str(N_TEST // 5)
    image = _row(report, rep.CONTROL_LABELS["image"] + " (estimator fourier, X_input = False, mask none, fraction 0.3)")
    assert image[1:] == ["630", "0.350 [0.28, 0.42]", "+0.060 [+0.01, +0.11]", "**beats**",
                         "0.500 [0.44, 0.56]", "+0.110 [-0.02, +0.20]", "ties with"]  # fmt: skip
    # A control without paired differences (yet) shows n/a, not a verdict.
    assert _row(report, rep.CONTROL_LABELS["isophote"])[2:5] == ["0.200 [0.12, 0.28]", "n/a", "n/a"]
    assert "## Every estimator's test rho" in report
    algorithm1 = _row(report, "mean_map")
    assert algorithm1[1:] == ["algorithm1", "X_input = False, mask r90, T_c = 0.5, T_l = 20",
                              "0.450 [0.35, 0.55]", "0.410 [0.33, 0.49]", "0.440 [0.36, 0.51]", "0.610 [0.55, 0.66]"]  # fmt: skip
    assert _row(report, "image")[2:4] == ["fraction 0.5", "0.300"]
    assert (
        "the Spearman rho of the saliency lengths against the true length (image units, test split) is "
        "0.610 [0.55, 0.66] against the target 0.70: it misses both the target and the floor 0.65."
    ) in report
    assert "| control CNN rho (paper convention), paper split | 0.700 [0.50, 0.80] | 0.59 |" in report
    assert "| galaxies (saliency test / control cross-fit / control paper split) | 60 / 60 / 18 |" in report
    assert "the bar catalogue holds 950 " in report


def test_report_without_the_new_measure_keys_or_truth():
    """Real data (no truth) and an older measure stage: no estimator table, no target line, CNN rows only."""
    saliency, control = _tables(0.3, 0.3)
    shared = comparisons.control_comparisons(saliency, control.drop(columns="true_px424"), 200, np.random.default_rng(0))
    report = rep.report_markdown(run_metrics(), shared, "input_x_gradient")
    assert "## The saliency method vs each control" in report and "## Every estimator's test rho" not in report
    assert "against the target" not in report
    cross = _row(report, "control CNN, cross-fit (every shared XAI test galaxy)")
    assert cross[5:] == ["n/a", "n/a", "n/a"]
    assert not [line for line in report.splitlines() if line.startswith(f"| {rep.CONTROL_LABELS['image']}")]
    # From the measured fraction alone the target line is derived from the shared comparison.
    saliency, control = _tables(0.05, 0.3)
    shared = comparisons.control_comparisons(saliency, control, 200, np.random.default_rng(0))
    assert "it meets the target." in rep.report_markdown(run_metrics(), shared, "input_x_gradient")


def test_the_report_says_when_the_preferred_setting_was_kept_over_a_best_within_the_noise():
    run = run_metrics()
    best = {"map_source": "mean_length", "estimator": "fourier", "x_input": True, "mask": "r90", "fraction": 0.5,
            "floor": 0.2, "rho_image": 0.452}  # fmt: skip
    test = {"difference": 0.008, "ci95": [-0.04, 0.05], "verdict": "ties"}
    preference = {"prefer": {"map_source": "mean_length", "estimator": "algorithm1"}, "best": best,
                  "preferred": run.gridsearch["chosen"], "best_minus_preferred": test, "kept_preferred": True}  # fmt: skip
    run.gridsearch["chosen"] = {**run.gridsearch["chosen"], "preference": preference}
    saliency, control = _tables(0.3, 0.3)
    report = rep.report_markdown(run, comparisons.control_comparisons(saliency, control, 200, np.random.default_rng(0)), "ig")
    (line,) = [line for line in report.splitlines() if line.startswith("Preference rule")]
    assert "the best validation score is mean_length (estimator fourier" in line
    assert "it ties with the best setting of the preferred mean_length, algorithm1 (+0.008 [-0.04, +0.05]" in line
    assert "the preferred setting is kept" in line and "Choice stability among the preferred rows: on 1000" in line
    # Without a preference test (the best was preferred, or no preference) there is no such sentence.
    assert "Preference rule" not in rep.report_markdown(run_metrics(), comparisons.control_comparisons(
        saliency, control, 200, np.random.default_rng(0)), "ig")  # fmt: skip


def test_a_setting_reads_with_only_the_parameters_that_apply():
    fourier = {"map_source": "image", "estimator": "fourier", "x_input": False, "mask": "r90", "corr_threshold": None,
               "len_threshold": float("nan"), "fraction": 0.5, "floor": 0.0}  # fmt: skip
    assert rep.setting_text(fourier) == "estimator fourier, X_input = False, mask r90, fraction 0.5, floor 0"
    assert rep.setting_text({"x_input": True, "corr_threshold": 0.7, "len_threshold": 20}) == "X_input = True, T_c = 0.7, T_l = 20"


def test_axis_segment_lies_along_the_long_axis_of_the_map():
    from galaxy_xai.results import figures

    bar = np.zeros((32, 32))
    bar[15:18, 6:27] = 1.0  # a horizontal bar centred on (16, 16)
    (r0, c0), (r1, c1) = figures.axis_segment(bar, 8.0)
    assert r0 == pytest.approx(16) and r1 == pytest.approx(16)
    assert sorted([c0, c1]) == pytest.approx([8, 24])
    (r0, c0), (r1, c1) = figures.axis_segment(bar.T, 5.0)
    assert c0 == pytest.approx(16) and abs(r1 - r0) == pytest.approx(10)


def test_grid_heatmaps_draw_one_panel_per_source_x_input_and_mask_of_algorithm1_only():
    import matplotlib

    matplotlib.use("Agg")
    from galaxy_xai.results import figures

    rows = [
        {"map_source": m, "x_input": x, "mask": k, "estimator": "algorithm1", "corr_threshold": tc,
         "len_threshold": tl, "rho_image": tc * tl}
        for m in ("a", "b") for x in (False, True) for k in ("none", "r90") for tc in (0.5, 0.7) for tl in (10, 20)
    ] + [{"map_source": "a", "x_input": False, "mask": "none", "estimator": "fourier", "corr_threshold": np.nan,
          "len_threshold": np.nan, "rho_image": 9.0}]  # fmt: skip
    fig = figures.grid_heatmaps(pd.DataFrame(rows), value="rho_image")
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 8  # 2 sources x 2 X_input x 2 masks; the Fourier row has no T_c x T_l plane
    titles = {ax.get_title() for ax in panels}
    assert "map_source=a, x_input=False, mask=r90" in titles
    # No panel averages the two masks: each shows its own four cells.
    first = next(ax for ax in panels if ax.get_title() == "map_source=b, x_input=True, mask=none")
    np.testing.assert_allclose(first.get_images()[0].get_array(), [[5, 10], [7, 14]])


# What each length adds to the isophote length (rank-mean combinations)


def test_rank_mean_known_answer_ties_and_monotone_invariance():
    lengths = np.array([[1.0, 10.0], [2.0, 30.0], [3.0, 20.0], [3.0, 40.0]])
    # Ranks: column 0 -> 1, 2, 3.5, 3.5 (mid-ranks of the tie); column 1 -> 1, 3, 2, 4.
    np.testing.assert_allclose(comparisons.rank_mean(lengths), [1.0, 2.5, 2.75, 3.75])
    # Units and any monotone rescaling of one method change nothing.
    rescaled = np.column_stack([np.log(lengths[:, 0]), 424.0 * lengths[:, 1] ** 2])
    np.testing.assert_array_equal(comparisons.rank_mean(rescaled), comparisons.rank_mean(lengths))
    np.testing.assert_array_equal(comparisons.rank_mean(lengths[:, :1]), [1.0, 2.0, 3.5, 3.5])
    for bad in (np.array([[1.0, np.nan], [2.0, 3.0]]), np.arange(3.0)):
        with pytest.raises(ValueError, match="rank_mean"):
            comparisons.rank_mean(bad)


def _complement_tables(n: int = 400, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The isophote and the control CNN share their errors (the control is the isophote, rescaled); the
    saliency length has its own; the image-only length knows nothing about the bar."""
    rng = np.random.default_rng(seed)
    truth = rng.lognormal(3.5, 0.4, n)
    isophote = truth * rng.lognormal(0, 0.5, n)
    saliency = pd.DataFrame({
        "objid": np.arange(n), "true_px424": truth, "catalogue_px424": truth * rng.lognormal(0, 0.15, n),
        "measured_px424": truth * rng.lognormal(0, 0.5, n), "image_px424": rng.lognormal(3.5, 0.4, n),
        "isophote_px424": isophote, "petror90_r_arcsec": rng.uniform(3, 12, n),
    })  # fmt: skip
    control = saliency[["objid", "catalogue_px424", "petror90_r_arcsec"]].assign(
        measured_px424=2.0 * isophote, xai_split="test"
    )[::-1]
    return saliency, control, truth


def test_complements_add_only_where_the_errors_differ():
    saliency, control, _ = _complement_tables()
    out = comparisons.complement_comparison(saliency, control, 500, np.random.default_rng(0))
    assert out["n"] == 400 and set(out["scores"]) == set(comparisons.COMBINATIONS)
    scores = {name: v["spearman_truth_image"] for name, v in out["scores"].items()}
    # The control repeats the isophote's errors: combining them is the isophote's ranking exactly.
    assert scores["isophote+control"] == pytest.approx(scores["isophote"])
    diff = out["difference"]
    # Independent errors average down: the saliency length adds to the isophote, and to both together.
    for key in ("isophote+saliency - isophote", "isophote+control+saliency - isophote+control"):
        assert diff[key]["spearman_truth_image"]["verdict"] == "beats", key
    # The image-only length here knows nothing: the saliency length adds more than it does.
    for key in ("isophote+saliency - isophote+image", "isophote+control+saliency - isophote+control+image"):
        assert diff[key]["spearman_truth_image"]["verdict"] == "beats", key
    for key, entry in diff.items():
        a, b = key.split(" - ")
        for score, paired in entry.items():
            lo, hi = paired["ci95"]
            assert lo <= paired["difference"] <= hi
            assert paired["difference"] == pytest.approx(out["scores"][a][score] - out["scores"][b][score])


def test_complements_skip_failed_fits_and_work_without_truth():
    saliency, control, _ = _complement_tables(60)
    saliency.loc[[3, 7], "isophote_px424"] = np.nan  # two isophote fits failed
    out = comparisons.complement_comparison(saliency.drop(columns="true_px424"), control, 100, np.random.default_rng(0))
    assert out["n"] == 58
    assert all(set(v) == {"spearman_image", "spearman_image_ci95"} for v in out["scores"].values())
    # control_comparisons adds them only when the measure stage wrote the isophote length.
    shared = comparisons.control_comparisons(saliency, control, 100, np.random.default_rng(0))
    assert shared["complements"]["n"] == 58
    assert "complements" not in comparisons.control_comparisons(
        saliency.drop(columns="isophote_px424"), control, 100, np.random.default_rng(0)
    )


def test_report_table_of_the_complements():
    saliency, control, _ = _complement_tables(120)
    shared = comparisons.control_comparisons(saliency, control, 200, np.random.default_rng(0))
    report = rep.report_markdown(run_metrics(), shared, "integrated_gradients")
    assert "## What each length adds to the classical isophote length" in report
    complements = shared["complements"]
    row = _row(report, "isophote+control+saliency")
    assert row[1:] == [rep.with_interval(complements["scores"]["isophote+control+saliency"], key) for key, _ in rep.COMPLEMENT_SCORES]
    diff = complements["difference"]["isophote+saliency - isophote"]
    assert _row(report, "isophote+saliency - isophote")[1:3] == list(rep.paired_text(diff["spearman_truth_image"]))
    assert "## What each length adds" not in rep.report_markdown(run_metrics(), {}, "integrated_gradients")


def test_the_report_reads_sizes_from_the_run_and_says_when_the_explainer_is_deterministic():
    """Issue #27: no '64 px on 2,000 synthetic galaxies' whatever params.yaml says; no noise draws of a
    deterministic explainer."""
    run = dataclasses.replace(
        run_metrics(),
        morphology={**run_metrics().morphology, "n": {"train": 3400, "val": 200, "test": 400}},
        barlengths={**run_metrics().barlengths, "n_truth": 60},
        control={**run_metrics().control, "n_bars": 1920},
    )
    saliency, control = _tables(0.1, 0.6)
    shared = comparisons.control_comparisons(saliency, control, 100, np.random.default_rng(0))
    report = rep.report_markdown(run, shared, "integrated_gradients (input_x_gradient)",
                                 {"size_px": 96, "archs": ["resnet_small", "vgg_small"]})  # fmt: skip
    assert "this run's models (resnet_small, vgg_small) see 96-px inputs and learn from 4,000 synthetic galaxies" in report
    assert "the bar catalogue holds 1,920 synthetic galaxies" in report and "64 px" not in report
    assert "independent noise draws" in report  # run_metrics' rotation has a noise spread
    still = {**run.rotation, "noise_relative_spread": {"abs_pearson": 0.0, "elongation": 0.0}}
    report = rep.report_markdown(dataclasses.replace(run, rotation=still), shared, "integrated_gradients")
    assert "the explainer is deterministic: no sampling noise" in report and "noise draws" not in report
    assert "learn from 4,000 synthetic galaxies" in report and "see n/a-px inputs" in report


# The report's story: summary, definitions, absolute accuracy, figures (issues #26, #27)


def _accuracy(median_error: float, within: float, ratio: float, reference: str = "truth") -> dict:
    return {f"median_abs_rel_error_{reference}": median_error, f"median_abs_rel_error_{reference}_ci95": [median_error - 0.01, median_error + 0.01],
            f"within_20pct_{reference}": within, f"within_20pct_{reference}_ci95": [within - 0.05, within + 0.05],
            f"median_ratio_{reference}": ratio, f"median_ratio_{reference}_ci95": [ratio - 0.02, ratio + 0.02]}  # fmt: skip


def _twin(score: float, difference: float, ci: list[float], verdict: str, **extra) -> dict:
    return {"n": 60, "setting": None, "spearman_truth_image": score, "spearman_truth_image_ci95": [score - 0.1, score + 0.1],
            "difference": {"spearman_truth_image": {"difference": difference, "ci95": ci, "verdict": verdict}}, **extra}  # fmt: skip


TWINS_BARS = {
    "n": 60, "n_truth": 60, "spearman_truth_image": 0.6, "spearman_truth_image_ci95": [0.5, 0.7], **_accuracy(0.25, 0.4, 1.16),
    "controls": {
        "random_weights": _twin(0.2, 0.4, [0.3, 0.5], "beats", **_accuracy(0.5, 0.1, 1.6)),
        "permuted_labels": _twin(0.55, 0.05, [-0.02, 0.12], "ties"),
        "segmentation": _twin(0.9, -0.3, [-0.4, -0.2], "loses", **_accuracy(0.05, 0.95, 1.01)),
    },
}  # fmt: skip


def test_summary_states_the_twins_the_gap_closed_the_gate_and_the_target():
    run = run_metrics()
    chosen = {**run.gridsearch["chosen"], "gate": {"twins": ["random_weights"], "passed": 7, "of": 40}}
    run = dataclasses.replace(run, barlengths={**run.barlengths, **TWINS_BARS},
                              gridsearch={**run.gridsearch, "chosen": chosen})  # fmt: skip
    assert rep.gap_fraction(run.barlengths, "spearman_truth_image") == pytest.approx((0.6 - 0.2) / (0.9 - 0.2))
    summary = rep.summary_section(run, {}, "integrated_gradients", {"archs": ["vgg_small"]})
    assert summary[0] == "## Summary" and 4 <= sum(line.startswith("- ") for line in summary) <= 7
    text = "\n".join(summary)
    assert "Spearman rho against the true lengths is 0.600 [0.50, 0.70]" in text and "the target 0.70 is not met" in text
    assert "minus the random-weights twins +0.400 [+0.30, +0.50] (the saliency lengths **beat** them)" in text
    assert "minus the permuted-labels twins +0.050 [-0.02, +0.12] (the saliency lengths tie with them)" in text
    assert "(0.600 - 0.200) / (0.900 - 0.200) = 57% of the gap: a point estimate" in text
    assert "Gate: 7 of 40 saliency settings beat the random-weights twins on validation" in text
    # Without the segmentation ceiling the fraction is said to be unavailable, not invented.
    controls = {k: v for k, v in TWINS_BARS["controls"].items() if k != "segmentation"}
    run = dataclasses.replace(run, barlengths={**run.barlengths, "controls": controls})
    assert rep.gap_fraction(run.barlengths, "spearman_truth_image") is None
    text = "\n".join(rep.summary_section(run, {}, "ig"))
    assert "not available in this run" in text and "% of the gap" not in text


def test_summary_of_a_run_without_truth_twins_or_gate():
    run = run_metrics()
    text = "\n".join(rep.summary_section(run, {}, "ig"))
    assert "Pearson rho_image against the catalogue is 0.300 [0.10, 0.50]" in text
    assert "twins" not in text.split("Fraction of the gap")[0] and "Gate" not in text and "target" not in text
    assert rep.gate_sentence(None) == "" and rep.gate_sentence({"twins": [], "passed": 5, "of": 5}).startswith("No gate")
    assert "none of the 9 saliency settings beat" in rep.gate_sentence({"twins": ["random_weights"], "passed": 0, "of": 9})


def test_definitions_state_the_catalogue_noise_and_its_benchmark_when_known():
    text = "\n".join(rep.definitions_section())
    for fragment in ("Pearson correlation", "PETROR90_R", "rank correlation", "exp(0.17 z)", "random_weights",
                     "permuted_labels", "interval above 0", "Why one number has several intervals"):  # fmt: skip
        assert fragment in text, fragment
    assert "the catalogue itself scores" not in text
    benchmark = {"n": 60, "spearman_image": 0.8, "spearman_image_ci95": [0.75, 0.85], "rho_image": 0.81,
                 "rho_image_ci95": [0.76, 0.86], **_accuracy(0.12, 0.75, 0.99)}  # fmt: skip
    text = "\n".join(rep.definitions_section(benchmark))
    assert "On the 60 test galaxies the catalogue itself scores Spearman 0.800 [0.75, 0.85]" in text
    assert "within 20% of it for 75% [70%, 80%] of them" in text


def test_catalogue_benchmark_scores_the_catalogue_against_the_truth():
    saliency, _ = _tables(0.1, 0.6)
    benchmark = comparisons.catalogue_benchmark(saliency, 200, np.random.default_rng(0))
    assert benchmark["n"] == N_TEST and 0.5 < benchmark["spearman_image"] < 1
    expected = np.median(np.abs(saliency["catalogue_px424"] / saliency["true_px424"] - 1))
    assert benchmark["median_abs_rel_error_truth"] == pytest.approx(expected)
    assert comparisons.catalogue_benchmark(saliency.drop(columns="true_px424"), 200, np.random.default_rng(0)) is None


def test_accuracy_table_rows_for_the_method_and_every_control_against_the_truth_else_the_catalogue():
    lines = rep.accuracy_table(TWINS_BARS)
    report = "\n".join(lines)
    assert "median abs(L - L_true) / L_true [95%]" in lines[0]
    assert _row(report, "saliency method")[1:] == ["60", "0.250 [0.24, 0.26]", "0.400 [0.35, 0.45]", "1.160 [1.14, 1.18]"]
    assert _row(report, rep.CONTROL_LABELS["random_weights"])[4] == "1.600 [1.58, 1.62]"
    # A control without accuracy keys (an older run) has no row; no accuracy at all: no table.
    assert not [line for line in lines if line.startswith(f"| {rep.CONTROL_LABELS['permuted_labels']}")]
    assert rep.accuracy_table({"n": 5, "rho": 0.3}) == []
    catalogue = rep.accuracy_table({"n": 5, **_accuracy(0.3, 0.35, 1.2, "catalogue")})
    assert "L_cat" in catalogue[0] and "| saliency method | 5 | 0.300 [0.29, 0.31]" in catalogue[2]


def test_the_report_has_one_title_captions_its_figures_and_explains_the_choice():
    run = run_metrics()
    chosen = {**run.gridsearch["chosen"], "gate": {"twins": ["random_weights"], "passed": 3, "of": 12}}
    run = dataclasses.replace(run, table1="# Table 1: nested\n\n| t |", barlengths={**run.barlengths, **TWINS_BARS},
                              gridsearch={**run.gridsearch, "chosen": chosen}, explainers="# Explainers\n## Sanity")  # fmt: skip
    report = rep.report_markdown(run, {}, "ig")
    assert [line for line in report.splitlines() if line.startswith("# ")] == ["# Report of the last `dvc repro`"]
    assert "\n### Table 1: nested\n" in report
    assert report.index("## Summary") < report.index("## Definitions") < report.index("## Table 1")
    assert "## Absolute accuracy: do the lengths run long?" in report
    assert "Gate: 3 of 12 saliency settings beat the random-weights twins" in report and "one-standard-error rule" in report
    assert "![fig1_saliency_maps](plots/figures/fig1_saliency_maps.png)" in report
    assert "plots/figures/measured_vs_true.png" in report  # a run with truth
    assert "plots/figures/ensemble.png)" not in report and "complements.png)" not in report  # not drawn in this run
    # The twins sit in the controls table beside the classical controls.
    (twin,) = [line for line in report.splitlines() if line.startswith(f"| {rep.CONTROL_LABELS['random_weights']} |")
               and line.count("|") == 9]  # fmt: skip
    assert "| 0.200 [0.10, 0.30] | +0.400 [+0.30, +0.50] | **beats** |" in twin


def test_summary_quotes_the_measured_gap_closed_with_its_joint_interval():
    run = run_metrics()
    bars = {**run.barlengths, **TWINS_BARS, "gap_closed": 0.571, "gap_closed_ci95": [0.45, 0.68]}
    run = dataclasses.replace(run, barlengths=bars)
    text = "\n".join(rep.summary_section(run, {}, "integrated_gradients"))
    assert "= 57% [45%, 68%] of the gap (95% interval: the three lengths resampled jointly)." in text
    assert "point estimate" not in text


def test_the_accuracy_table_has_a_column_for_every_accuracy_score():
    from galaxy_xai.results.report import ACCURACY_COLUMNS
    from galaxy_xai.statistics import ACCURACY_SCORES

    assert [key for key, _ in ACCURACY_COLUMNS] == list(ACCURACY_SCORES)


def test_the_compare_stage_names_a_missing_metrics_file(tmp_path, capfd):
    from stages import compare
    from tests.fixtures import params_file

    params = params_file(tmp_path / "params.yaml", {})
    argv = [
        "--params", str(params), "--barlengths", str(tmp_path / "b.csv"), "--control", str(tmp_path / "c.csv"),
        "--metrics-dir", str(tmp_path), "--comparison", str(tmp_path / "cmp.json"),
        "--benchmark", str(tmp_path / "bench.json"), "--headline", str(tmp_path / "headline"),
    ]  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        compare.main(argv)
    assert stop.value.code == 2
    assert f"{tmp_path / 'table1.md'}: not found" in capfd.readouterr().err
    assert not (tmp_path / "cmp.json").exists() and not (tmp_path / "headline").exists()
