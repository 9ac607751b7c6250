"""End to end: the real ``dvc repro`` on a tiny configuration in a temporary copy of the repo.

One module-scoped build; the tests then change one param at a time and check that exactly the
stages depending on it rerun: by running ``dvc repro`` where the change travels through outputs (a
model's recipe), else by DVC's plan (``dvc repro --dry``: the stages that read the param, from its
hashes, without minutes of rerunning; params.yaml restored after each).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from galaxy_xai.config import MODEL_KINDS
from galaxy_xai.results import comparison as comparisons
from tests.e2e import (
    TINY_PARAMS,
    failed_repro,
    make_repo,
    planned_repro,
    read_params,
    repro,
    run,
    stage_names,
    write_params,
)

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
                 "fig4_measured_vs_catalogue", "fig5_disagreements", "gridsearch", "measured_vs_true", "complements", "ensemble"):
        png = figures / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (repo / "report.md").read_text()
    bars = json.loads((repo / "metrics/barlengths.json").read_text())
    control = json.loads((repo / "metrics/control.json").read_text())
    grid = json.loads((repo / "metrics/gridsearch.json").read_text())
    shared = json.loads((repo / "metrics/comparison.json").read_text())

    def shown(scores: dict, key: str) -> str:
        lo, hi = scores[f"{key}_ci95"]
        assert lo <= scores[key] <= hi, (key, scores)
        return f"{scores[key]:.3f} [{lo:.2f}, {hi:.2f}]"

    assert f"| saliency method rho (paper convention, x PETROR90_R) | {shown(bars, 'rho')} |" in report
    assert f"| saliency method rho in image units | {shown(bars, 'rho_image')} |" in report
    assert f"| saliency method Spearman in image units | {shown(bars, 'spearman_image')} |" in report
    assert f"| saliency method rho_image against the true length (synthetic) | {shown(bars, 'rho_truth_image')} |" in report
    assert f"| control CNN rho (paper convention), cross-fit | {shown(control, 'rho')} |" in report
    assert f"| control CNN rho in image units, cross-fit | {shown(control, 'rho_image')} |" in report
    paper = control["paper_split"]
    assert f"| control CNN rho (paper convention), paper split | {shown(paper, 'rho')} | 0.59 |" in report
    # The cross-fitted control predicts every bar galaxy out of fold: both methods on every XAI test galaxy.
    bar_table = pd.read_csv(repo / "data/prepared/bars.csv")
    predictions = pd.read_csv(repo / "plots/control/predictions.csv")
    assert sorted(predictions["objid"]) == sorted(bar_table["objid"])
    n_test = int((bar_table["xai_split"] == "test").sum())
    assert control["n"] == bars["n"] == shared["n_shared"] == n_test
    assert paper["n"] == shared["paper_split"]["n_shared"] == int((bar_table["control_split"] == "test").sum())
    assert len(control["per_fold"]) == control["folds"] == len(list((repo / "models/control").glob("fold*.keras")))
    assert f"| galaxies (saliency test / control cross-fit / control paper split) | {n_test} / {n_test} / {paper['n']} |" in report
    for key in ("rho_image", "spearman_truth_image"):
        for comparison in (shared, shared["paper_split"]):
            diff = comparison["difference"][key]
            assert diff["verdict"] == ("beats" if diff["ci95"][0] > 0 else "loses" if diff["ci95"][1] < 0 else "ties")
    assert "## The saliency method vs each control" in report and "against the target 0.70" in report
    # The complements: every combination on the galaxies every method measured, shown in the report.
    complements = shared["complements"]
    assert 0 < complements["n"] <= n_test
    assert set(complements["difference"]) == {f"{a} - {b}" for a, b in comparisons.COMBINATION_COMPARISONS}
    assert f"| isophote+control+saliency | {shown(complements['scores']['isophote+control+saliency'], 'spearman_truth_image')} |" in report
    # The ensemble curve: the chosen setting on each model alone, against the catalogue and the truth.
    curves = bars["ensemble"]
    assert set(curves) == {"catalogue", "truth"}
    for curve in curves.values():
        assert curve["members"] == list(TINY_PARAMS["models"]) and curve["n"] == n_test and curve["k"] == [1, 2, 3]
    if bars["map_source"] == "mean_length":
        # All the models' mean is the saliency length itself (ties of quantised lengths aside).
        assert curves["truth"]["spearman"][-1] == pytest.approx(bars["spearman_truth_image"], abs=0.01)
    assert "## Would more models measure bars better?" in report
    assert f"| truth | {curves['truth']['spearman'][0]:.3f} [" in report
    for key in ("rho", "rho_image", "rho_null", "spearman", "n", "slope", "slope_err", "rho_truth"):
        assert key in bars, key
    for scores in (bars, control, control["paper_split"]):
        for key in ("rho", "rho_image", "spearman", "spearman_image", "rho_truth", "rho_truth_image"):
            shown(scores, key)
        assert scores["resamples"] >= 1000
    # The comparison on the shared galaxies: a paired bootstrap, and a verdict only where its interval allows.
    words = {"beats": "**beats**", "ties": "**ties with**", "loses": "**loses to**"}
    for key, convention in (("rho", "In the paper's convention"), ("rho_image", "In image units")):
        diff = shared["difference"][key]
        lo, hi = diff["ci95"]
        assert diff["verdict"] == ("beats" if lo > 0 else "loses" if hi < 0 else "ties"), diff
        (sentence,) = [line for line in report.splitlines() if line.startswith(convention)]
        assert words[diff["verdict"]] in sentence and f"{diff['difference']:+.3f} [{lo:+.2f}, {hi:+.2f}]" in sentence
        assert shown(shared["saliency"], key) in sentence and shown(shared["control"], key) in sentence
        assert ("image units" in sentence) != ("paper's convention" in sentence), sentence
    assert "beats the control model on these shared galaxies" not in report
    stability = grid["choice_stability"]
    assert stability["map_source"] == grid["chosen"]["map_source"] and stability["resamples"] >= 1000
    assert (
        f"the search picks {stability['map_source']} again in {stability['map_source_frequency']:.0%} of them "
        f"and this exact setting in {stability['setting_frequency']:.0%}"
    ) in report
    assert f"validation rho_image is {shown(grid['chosen'], 'rho_image')}" in report
    rotation = json.loads((repo / "metrics/rotation.json").read_text())
    spread = rotation["median_relative_spread"]
    assert set(spread) == {"abs_pearson", "elongation"} and all(v >= 0 for v in spread.values()), rotation
    assert f"{spread['elongation']:.1%} with the rotation-invariant elongation rule" in report
    noise = rotation["noise_relative_spread"]
    assert set(noise) == set(spread), rotation
    if any(noise.values()):
        assert f"{noise['elongation']:.1%} (elongation)" in report, rotation
    else:  # a deterministic explainer (the default): no sampling noise to report
        assert "the explainer is deterministic: no sampling noise" in report, rotation
    table = pd.read_csv(repo / "plots/rotation.csv")
    # Two rules x two checks (rotation, noise draws) x galaxies x angles.
    assert len(table) == 2 * 2 * rotation["galaxies"] * len(TINY_PARAMS["xai"]["rotation"]["angles_deg"])
    assert set(table["check"]) == {"rotation", "noise"}
    heatmap = np.load(repo / "data/heatmaps/morphology/vgg_small.npz")
    size = TINY_PARAMS["images"]["size_px"]
    assert heatmap["maps"].dtype == np.float16 and heatmap["maps"].shape[1:] == (size, size)
    assert set(heatmap["draw"][heatmap["split"] == "test"]) == {0, 1}


def test_the_explainers_stage_scores_every_explainer(repo):
    from galaxy_xai.config import METHODS

    study = json.loads((repo / "metrics/explainers.json").read_text())
    assert study["n"] == TINY_PARAMS["explainers"]["galaxies"] and list(study["explainers"]) == list(METHODS)
    for r in study["explainers"].values():
        assert {"mass_accuracy", "deletion_auc", "ssim", "spearman_truth", "spearman_truth_random", "permuted"} <= set(r)
    cascade = study["cascade"]
    assert cascade["n"] == TINY_PARAMS["explainers"]["cascade_galaxies"] and len(cascade["layers"]) >= 4
    assert all(len(c["ssim"]) == len(cascade["layers"]) for c in cascade["explainers"].values())
    table = (repo / "metrics/explainers.md").read_text()
    assert all(table.count(f"| {name} |") == 2 for name in METHODS) and study["verdict"] in table
    assert "## Explainers against the true bar" in (repo / "report.md").read_text()  # the table, in the report
    for png in ("explainers.png", "explainers_sanity.png"):
        assert (repo / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_true_axis_stage_measures_every_source_along_the_true_axes(repo):
    result = json.loads((repo / "metrics/true_axis.json").read_text())
    bars = pd.read_csv(repo / "data/prepared/bars.csv")
    assert result["n_test"] == int((bars["xai_split"] == "test").sum())
    assert list(result["rows"]) == ["explanation", "random_weights", "permuted_labels", "image"]
    measured = json.loads((repo / "metrics/barlengths.json").read_text())
    for name, row in result["rows"].items():
        assert -1 <= row["spearman_truth"] <= 1 and row["fraction"] in result["fractions"], name
        assert row["minus_own_estimator"]["verdict"] in ("beats", "ties", "loses"), name
    # Its own estimator's score is the measure stage's, on the same galaxies.
    own = measured["controls"]["random_weights"]["spearman_truth_image"]
    assert result["rows"]["random_weights"]["own_estimator_spearman_truth"] == pytest.approx(own)
    assert "## What the maps hold: lengths along the TRUE bar axis" in (repo / "report.md").read_text()
    headline_row = json.loads((repo / "metrics/headline/true_axis_image.json").read_text())
    assert headline_row["value"] == pytest.approx(result["rows"]["image"]["spearman_truth"])


def test_a_team_shares_one_run_through_a_dvc_remote(repo, tmp_path):
    """docs/team.md's local recipe: push the run, clone afresh, pull: up to date, nothing reruns.

    Runs before the tests below change params, while the fixture's run is complete.
    """
    assert "up to date" in run(repo, "dvc", "status").stdout
    remote = tmp_path / "remote"
    run(repo, "dvc", "remote", "add", "--default", "team", str(remote))
    run(repo, "git", "add", "-A")  # dvc.lock, .dvc/config, the .gitignore files and the uncached metrics
    run(repo, "git", "commit", "-q", "-m", "run")
    run(repo, "dvc", "push")
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote"

    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "models" / "morphology").exists()  # git has only the pointers: models come from the remote
    run(clone, "dvc", "pull")
    for model in sorted((repo / "models" / "morphology").glob("*.keras")):
        assert (clone / "models" / "morphology" / model.name).read_bytes() == model.read_bytes(), model.name
    status = run(clone, "dvc", "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    ran, log = repro(clone)
    assert not ran, f"dvc repro in the fresh clone reran {sorted(ran)}:\n{log[-3000:]}"


def test_changing_an_explainer_param_reruns_heatmaps_and_after_never_training(repo):
    params = read_params(repo)
    assert params["xai"]["method"] == "integrated_gradients"  # the default: change one of its knobs
    params["xai"]["integrated_gradients"]["steps"] += 1
    ran, log = planned_repro(repo, params)
    # DVC's plan lists the stages that read the param; what reads their outputs follows by hash.
    # The models' maps and their twins' (explained alike), and the stages that explain again; no training.
    expected = {f"heatmap_shard@{m}-{kind}-{i}" for m in params["models"] for kind in MODEL_KINDS for i in params["heatmap"]["shards"]}
    assert {s for s in ran if s.startswith("heatmap")} == expected, log
    assert {"rotation", "explainers"} <= ran, log
    assert not any(s.startswith(("train", "twins", "synthesize", "prepare", "predict", "control", "segment")) for s in ran), log


def test_changing_the_grid_reruns_gridsearch_and_measure_not_heatmap(repo):
    params = read_params(repo)
    params["xai"]["grid"]["corr_threshold"] = [0.6, 0.8]
    ran, log = planned_repro(repo, params)
    assert {"gridsearch", "measure"} <= ran, log
    assert not any(s.startswith(("heatmap", "train")) for s in ran), log


def test_changing_one_model_reruns_only_that_model(repo):
    params = read_params(repo)
    params["models"]["vgg_small"]["learning_rate"] = 0.001
    write_params(repo, params)
    ran, log = repro(repo)  # run, not planned: the change reaches the maps through the model file
    assert {"train@vgg_small", "twins@vgg_small", "heatmap@vgg_small-morphology", "heatmap@vgg_small-permuted_labels"} <= ran, log
    assert not {"train@resnet_small", "twins@resnet_small", "heatmap@resnet_small-morphology"} & ran, log
    assert "control" not in ran, log


def test_a_bad_param_stops_before_work_naming_the_key(repo):
    params = read_params(repo)
    params["xai"]["smoothgrad"]["noise"] = 3
    write_params(repo, params)
    proc = run(repo, "dvc", "repro", "heatmap@vgg_small-morphology", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "params.yaml: xai.smoothgrad.noise = 3.0: expected a number in [0.0, 1.0]" in out, out[-3000:]
    assert f"{params['xai']['method']} maps of" not in out, "the stage started work before validating its params"
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


# --- params.yaml is validated under `dvc repro`, whatever is wrong with it --------------------------
# The check_params stage depends on the whole file, so even a section no stage reads reruns it.


def test_a_misspelt_top_level_section_stops_the_whole_repro_at_check_params(repo):
    text = (repo / "params.yaml").read_text().replace("\nxai:\n", "\nxia:\n")
    assert "\nxia:\n" in text
    ran, log = failed_repro(repo, text.encode())
    assert "params.yaml: xia: unknown key; allowed keys of the top level:" in log, log[-3000:]
    assert ran == {"check_params"}, log[-3000:]


def test_a_duplicate_key_in_params_stops_repro_naming_the_key(repo):
    # DVC reads params.yaml itself (for ${models}) with ruamel.yaml, which refuses the file before
    # any stage starts: 'found duplicate key "epochs" with value "3" (original value: "2")' and the
    # line. load_config gives the same verdict when a stage is run by hand.
    text = (repo / "params.yaml").read_text()
    doubled = text.replace("    epochs: 2\n", "    epochs: 2\n    epochs: 3\n", 1)
    assert doubled != text
    ran, log = failed_repro(repo, doubled.encode())
    assert 'found duplicate key "epochs"' in log, log[-3000:]
    assert not ran, log[-3000:]


def test_a_params_file_that_is_not_utf8_stops_repro_with_the_byte(repo):
    # Once dvc.lock records params, DVC decodes params.yaml itself and stops first: "unable to
    # read: 'params.yaml', is not valid utf-8: 'utf-8' codec can't decode byte 0xe9 in position
    # 1447"; otherwise check_params stops it with load_config's "not UTF-8 text: byte 1447 (0xe9, ...)".
    text = (repo / "params.yaml").read_text() + "# d\u00e9mo\n"  # a comment saved as Latin-1
    offset = len(text.encode("latin-1")) - len("mo\n") - 1
    ran, log = failed_repro(repo, text.encode("latin-1"))
    assert "Traceback" not in log, log[-3000:]
    assert (
        f"params.yaml: not UTF-8 text: byte {offset} (0xe9" in log
        or f"'params.yaml', is not valid utf-8: 'utf-8' codec can't decode byte 0xe9 in position {offset}" in log
    ), log[-3000:]
    assert ran <= {"check_params"}, log[-3000:]
