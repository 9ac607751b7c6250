"""End to end: the real ``dvc repro`` on a tiny configuration in a temporary copy of the repo.

One module-scoped build; the tests then change one param at a time and check that exactly the
stages depending on it rerun.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.e2e import TINY_PARAMS, make_repo, read_params, repro, run, stage_names, write_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("e2e") / "repo", TINY_PARAMS)
    ran, log = repro(path)
    assert ran == set(stage_names(path)), log
    return path


def test_outputs_exist_and_pipeline_is_clean(repo):
    raw = repo / "data" / "raw"
    for name in ("training_solutions_rev1.csv", "gz2_filename_mapping.csv", "gz2sample.csv",
                 "hoyle_barlengths.csv", "truth.csv"):
        assert (raw / name).is_file(), name
    morph = pd.read_csv(repo / "data/prepared/morphology.csv")
    bars = pd.read_csv(repo / "data/prepared/bars.csv")
    assert len(morph) == TINY_PARAMS["synthetic"]["n_labelled"]
    assert set(morph["split"]) == {"train", "val", "test"}
    assert 0 < len(bars) <= TINY_PARAMS["synthetic"]["n_bars"]
    counts = json.loads((repo / "metrics/data.json").read_text())
    assert counts, "metrics/data.json is empty"
    status = run(repo, "dvc", "status")
    assert "up to date" in status.stdout, status.stdout
    assert (repo / "dvc.lock").is_file()


def test_every_figure_and_the_report_agree_with_the_metrics(repo):
    figures = repo / "plots" / "figures"
    for name in ("fig1_saliency_maps", "fig2_learning_curves", "fig3_isolated_bars",
                 "fig4_measured_vs_catalogue", "fig5_disagreements", "gridsearch", "measured_vs_true"):
        png = figures / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (repo / "report.md").read_text()
    bars = json.loads((repo / "metrics/barlengths.json").read_text())
    control = json.loads((repo / "metrics/control.json").read_text())
    assert f"| saliency method rho (paper convention, x PETROR90_R) | {bars['rho']:.3f} |" in report
    assert f"| saliency method rho in image units | {bars['rho_image']:.3f} |" in report
    assert f"| control CNN rho (paper convention) | {control['rho']:.3f} |" in report
    for key in ("rho", "rho_image", "rho_null", "spearman", "n", "slope", "slope_err", "rho_truth"):
        assert key in bars, key
    rotation = json.loads((repo / "metrics/rotation.json").read_text())
    spread = rotation["median_relative_spread"]
    assert set(spread) == {"abs_pearson", "elongation"} and all(v >= 0 for v in spread.values()), rotation
    assert f"{spread['elongation']:.1%} with the rotation-invariant elongation rule" in report
    noise = rotation["noise_relative_spread"]
    assert set(noise) == set(spread) and f"{noise['elongation']:.1%} (elongation)" in report, rotation
    table = pd.read_csv(repo / "plots/rotation.csv")
    # Two rules x two checks (rotation, noise draws) x galaxies x angles.
    assert len(table) == 2 * 2 * rotation["galaxies"] * len(TINY_PARAMS["xai"]["rotation"]["angles_deg"])
    assert set(table["check"]) == {"rotation", "noise"}
    heatmap = np.load(repo / "data/heatmaps/vgg_small.npz")
    size = TINY_PARAMS["images"]["size_px"]
    assert heatmap["maps"].dtype == np.float16 and heatmap["maps"].shape[1:] == (size, size)
    assert set(heatmap["draw"][heatmap["split"] == "test"]) == {0, 1}


def test_changing_smoothgrad_noise_reruns_heatmaps_and_after_never_training(repo):
    params = read_params(repo)
    params["xai"]["smoothgrad"]["noise"] = 0.2
    write_params(repo, params)
    ran, log = repro(repo)
    assert {s for s in ran if s.startswith("heatmap@")} == {f"heatmap@{m}" for m in params["models"]}, log
    assert {"gridsearch", "measure", "rotation", "figure"} <= ran, log
    assert not any(s.startswith(("train", "synthesize", "prepare", "predict", "control")) for s in ran), log


def test_changing_the_grid_reruns_gridsearch_and_measure_not_heatmap(repo):
    params = read_params(repo)
    params["xai"]["grid"]["corr_threshold"] = [0.6, 0.8]
    write_params(repo, params)
    ran, log = repro(repo)
    assert {"gridsearch", "measure"} <= ran, log
    assert not any(s.startswith(("heatmap", "train")) for s in ran), log


def test_changing_one_model_reruns_only_that_model(repo):
    params = read_params(repo)
    params["models"]["vgg_small"]["learning_rate"] = 0.001
    write_params(repo, params)
    ran, log = repro(repo)
    assert "train@vgg_small" in ran and "heatmap@vgg_small" in ran, log
    assert not {"train@resnet_small", "train@xception_small", "heatmap@resnet_small"} & ran, log
    assert "control" not in ran, log


def test_a_bad_param_stops_before_work_naming_the_key(repo):
    params = read_params(repo)
    params["xai"]["smoothgrad"]["noise"] = 3
    write_params(repo, params)
    proc = run(repo, "dvc", "repro", "heatmap@vgg_small", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "params.yaml: xai.smoothgrad.noise = 3.0: expected a number in [0.0, 1.0]" in out, out[-3000:]
    assert "smoothgrad maps of" not in out, "the stage started work before validating its params"
    params["xai"]["smoothgrad"]["noise"] = 0.2
    write_params(repo, params)


def test_changing_a_synthetic_param_reruns_synthesize_and_prepare(repo):
    params = read_params(repo)
    params["synthetic"]["n_unlabelled"] += 1
    write_params(repo, params)
    ran, log = repro(repo, "prepare")
    assert {"synthesize", "prepare"} <= ran, log
    assert not any(s.startswith("train") for s in ran), log
    status = run(repo, "dvc", "status", "prepare")
    assert "up to date" in status.stdout, status.stdout
