"""The explainer study on a tiny model (fast), its table and figure, and the explainers stage's bad inputs."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from galaxy_xai.bars import barlength
from galaxy_xai.config import METHODS, XaiConfig, load_config
from galaxy_xai.results import explainers_report
from galaxy_xai.xai import explainer_study, localisation, sanity
from stages import explainers as stage
from tests.fixtures import params_file

PX, CROP = 32, 160


def bar_images(n: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Images (n, PX, PX, 3) in [0, 1] of a bright elongated Gaussian bar on a faint disk, with its geometry."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(30, 110, n)  # 424-px pixels
    q = rng.uniform(0.2, 0.4, n)
    angle = rng.uniform(0, 180, n)
    centres = localisation.map_pixel_centres_px424(PX, CROP) - localisation.IMAGE_CENTRE_PX424
    rows, cols = centres[:, None], centres[None, :]
    images = np.empty((n, PX, PX, 3), np.float32)
    for i in range(n):
        phi = np.radians(angle[i])
        along = -rows * np.cos(phi) - cols * np.sin(phi)
        across = cols * np.cos(phi) - rows * np.sin(phi)
        a = length[i] / 2
        bar = np.exp(-0.5 * ((along / (a / 1.18)) ** 2 + (across / (q[i] * a / 1.18)) ** 2))
        disk = 0.2 * np.exp(-np.hypot(rows, cols) / 30)
        images[i] = np.clip(bar + disk, 0, 1)[..., None]
    bars = {"length_px424": length, "axis_ratio": q, "angle_deg": angle, "true_length_px424": length}
    return images, bars


XAI = replace(
    XaiConfig(),
    bootstrap=100,
    smoothgrad=replace(XaiConfig().smoothgrad, samples=2, batch_size=64, symmetries=1),
    integrated_gradients=replace(XaiConfig().integrated_gradients, steps=4),
    occlusion=replace(XaiConfig().occlusion, patch=6, stride=3),
)
CHOICE = barlength.Choice("m", False, 0.5, 10.0, mask="none")


@pytest.fixture(scope="module")
def study():
    from galaxy_xai.models.architectures import build_model

    model = build_model("vgg_small", PX, seed=0)
    rng = np.random.default_rng(0)  # weights away from their initial values (positive: every CAM has signal)
    model.set_weights([rng.uniform(0.0, 0.2, w.shape).astype("float32") for w in model.get_weights()])
    images, bars = bar_images(12)
    result = explainer_study.run_study(
        model, explainer_study.Galaxies(images, bars, np.arange(12)), XAI, CHOICE, CROP, 1,
        explainer_study.StudyOptions(n_boot=100, deletion_steps=4, cascade=2),
        permuted_model=model,  # the model itself as its "permuted" twin: a known answer
    )  # fmt: skip
    return model, images, bars, result


def test_every_explainer_is_scored_with_intervals(study):
    model, _, _, result = study
    assert result.n == 12 and result.default == "smoothgrad"
    assert list(result.explainers) == list(METHODS)
    for name, r in result.explainers.items():
        for key in (*explainer_study.LOCALISATION_KEYS, *explainer_study.FAITHFULNESS_KEYS, *explainer_study.RANDOMISATION_KEYS):
            score = r[key]
            lo, hi = score["ci95"]
            assert score["n"] > 0, (name, key)
            assert lo - 1e-12 <= score["mean"] <= hi + 1e-12, (name, key)
        assert 0 <= r["mass_accuracy"]["mean"] <= 1 and 0 <= r["pointing_game"]["mean"] <= 1
        assert -1 <= r["spearman_abs"]["mean"] <= 1 and -1 <= r["ssim"]["mean"] <= 1
        for key in ("spearman_truth", "spearman_truth_random"):
            rho = r[key]["rho"]
            assert math.isnan(rho) or -1 <= rho <= 1
        assert ("minus_default" in r) == (name != "smoothgrad")
        assert result.maps[name].shape == (12, PX, PX)
    assert 0 < result.mask_fraction["mean"] < 1
    json.dumps(result.to_json())  # no arrays left


def test_the_cascade_randomises_every_learnt_layer_output_first(study):
    model, _, _, result = study
    cascade = result.cascade
    assert cascade["layers"] == [layer.name for layer in sanity.learnt_layers(model)] and cascade["n"] == 2
    for name in METHODS:
        for key in explainer_study.RANDOMISATION_KEYS:
            steps = cascade["explainers"][name][key]
            assert len(steps) == len(cascade["layers"])
            assert all(-1 <= s["mean"] <= 1 or s["n"] == 0 for s in steps), (name, key)  # n 0: constant maps
        assert all(s["n"] == 2 for s in cascade["explainers"]["vanilla"]["spearman_abs"])
    # every layer random at the last step: the same weights as the study's fully randomised model
    last = cascade["explainers"]["vanilla"]["spearman_abs"][-1]["mean"]
    full = sanity.spearman_maps(result.maps["vanilla"][:2], result.random_maps["vanilla"][:2]).mean()
    assert last == pytest.approx(full, abs=1e-6)


def test_a_permuted_twin_identical_to_the_model_gives_identical_maps_and_lengths(study):
    *_, result = study
    for name in ("vanilla", "smoothgrad", "gradcam", "occlusion"):
        r = result.explainers[name]
        assert r["permuted"]["spearman_abs"]["mean"] == pytest.approx(1.0, abs=1e-6), name
        assert r["permuted"]["mass_accuracy"]["mean"] == pytest.approx(r["mass_accuracy"]["mean"], abs=1e-6), name
        assert r["permuted"]["spearman_truth"]["rho"] == pytest.approx(r["spearman_truth"]["rho"], nan_ok=True), name


def test_model_independent_applies_the_stated_threshold():
    def entry(random, permuted):
        return {"spearman_abs": {"mean": random}, "permuted": {"spearman_abs": {"mean": permuted}}}

    t = explainers_report.MODEL_DEPENDENCE_SPEARMAN
    results = {"a": entry(t, 0.1), "b": entry(t - 0.01, t + 0.2), "c": entry(0.0, 0.0)}
    assert explainers_report.model_independent(results) == {"random": ["a"], "permuted": ["b"]}


def test_permute_labels_shuffles_whole_rows_within_each_split():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({
        "image_path": [f"{i}.jpg" for i in range(40)], "split": ["train"] * 30 + ["val"] * 10,
        "a": rng.random(40), "b": rng.random(40),
    })  # fmt: skip
    out = sanity.permute_labels(table, ["a", "b"], seed=3)
    pd.testing.assert_frame_equal(out[["image_path", "split"]], table[["image_path", "split"]])
    assert not np.array_equal(out[["a", "b"]].to_numpy(), table[["a", "b"]].to_numpy())
    for split in ("train", "val"):
        rows = table["split"] == split
        before = {tuple(r) for r in table.loc[rows, ["a", "b"]].to_numpy()}
        assert {tuple(r) for r in out.loc[rows, ["a", "b"]].to_numpy()} == before  # whole rows, same split
    pd.testing.assert_frame_equal(out, sanity.permute_labels(table, ["a", "b"], seed=3))
    assert not sanity.permute_labels(table, ["a", "b"], seed=4).equals(out)
    with pytest.raises(ValueError, match="no column"):
        sanity.permute_labels(table, ["a", "zz"], seed=3)


def test_resolution_is_the_last_conv_grid_for_cams(study):
    model, *_ = study
    from galaxy_xai.xai.explainers.core import score_model
    from galaxy_xai.xai.explainers.gradcam import feature_tensor

    grid = int(feature_tensor(score_model(model)).shape[1])
    assert grid < PX
    for name in explainer_study.CAM_METHODS:
        assert explainer_study.resolution(name, model, XAI)["grid_px"] == grid
    assert explainer_study.resolution("smoothgrad", model, XAI)["grid_px"] == PX
    assert explainer_study.resolution("occlusion", model, XAI)["grid_px"] == (PX - 6) // 3 + 1


def test_lengths_of_ideal_bar_maps_follow_the_truth():
    images, bars = bar_images(30, seed=3)
    maps = images[..., 0] * localisation.bar_masks(bars["length_px424"], bars["axis_ratio"], bars["angle_deg"], PX, CROP)
    lengths = explainer_study.bar_lengths_px424(maps, images.mean(-1), CHOICE, CROP, "elongation")
    result = explainer_study.correlation_with_interval(lengths, bars["true_length_px424"], 200, np.random.default_rng(0))
    assert result["rho"] > 0.8 and result["ci95"][0] <= result["rho"] <= result["ci95"][1] and result["n"] == 30
    constant = explainer_study.correlation_with_interval(np.ones(30), bars["true_length_px424"], 200, np.random.default_rng(0))
    assert math.isnan(constant["rho"])


def test_runnable_leaves_out_what_the_settings_cannot_run():
    xai = replace(XaiConfig(), smoothgrad=replace(XaiConfig().smoothgrad, samples=1), occlusion=replace(XaiConfig().occlusion, patch=80))
    names, skipped = explainer_study.runnable(xai, 64)
    assert set(skipped) == {"vargrad", "occlusion"} and "smoothgrad_sq" in names
    assert explainer_study.runnable(XaiConfig(), 64) == (list(METHODS), {})


def test_table_verdict_and_figure(study, tmp_path):
    _, images, bars, result = study
    text = explainers_report.markdown(result, "vgg_small", CHOICE, 4)
    for name in METHODS:
        assert f"| {name} |" in text
    assert text.count("\n|") == 2 * (len(METHODS) + 2)
    sentence = explainers_report.verdict_sentence(result)
    assert sentence in text and explainers_report.best_explainer(result.explainers) in sentence
    assert "Every explainer explains" not in text  # said only when the stage names the score
    assert "Every explainer explains the Class3.1 score minus the Class3.2 score, as" in explainers_report.markdown(
        result, "vgg_small", CHOICE, 4, "the Class3.1 score minus the Class3.2 score"
    )
    assert "should" in sentence
    explainers_report.figure(tmp_path / "f.png", images, result.maps, bars, [0, 1], CROP, "t")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Sanity checks" in text and "permuted labels" in text
    for name in METHODS:
        assert text.count(f"| {name} |") == 2  # the main table and the sanity table
    explainers_report.sanity_figure(tmp_path / "s.png", result, "t")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the stage's bad inputs ------------------------------------------------------------------------------
def cli(tmp_path, params):
    return [
        "--params", str(params), "--models", str(tmp_path / "models"), "--twins", str(tmp_path / "twins"), "--bars", str(tmp_path / "bars.csv"),
        "--gridsearch", str(tmp_path / "g.json"), "--metrics", str(tmp_path / "m.json"), "--timings", str(tmp_path / "s.json"),
        "--table", str(tmp_path / "t.md"), "--figure", str(tmp_path / "f.png"),
        "--sanity-figure", str(tmp_path / "s.png"),
    ]  # fmt: skip


def test_stage_without_truth_writes_skipped(tmp_path):
    """Real data: prepare wrote no true-bar columns into bars.csv (there is no truth.csv)."""
    (tmp_path / "raw").mkdir()
    pd.DataFrame({"objid": [1, 2], "xai_split": ["test", "val"]}).to_csv(tmp_path / "bars.csv", index=False)
    params = params_file(tmp_path / "params.yaml", {"data": {"path": str(tmp_path / "raw")}})
    stage.main(cli(tmp_path, params))
    assert "truth.csv" in json.loads((tmp_path / "m.json").read_text())["skipped"]
    assert "Skipped" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"explainers": {"galaxies": 0}}, "explainers.galaxies = 0: expected an integer in [4, 100000]"),
        ({"explainers": {"model": "nope"}}, "explainers.model = 'nope': expected one of the models"),
        ({"explainers": {"galaxies": 4, "figure_galaxies": 5}}, "explainers.figure_galaxies = 5: expected at most"),
        ({"explainers": {"galaxies": 8, "cascade_galaxies": 9}}, "explainers.cascade_galaxies = 9: expected at most"),
    ],
)
def test_stage_stops_on_bad_params(tmp_path, capfd, change, message):
    params = params_file(tmp_path / "params.yaml", change)
    with pytest.raises(SystemExit) as stop:
        stage.main(cli(tmp_path, params))
    assert stop.value.code == 2
    assert message in capfd.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_committed_params_are_valid():
    cfg = load_config()
    assert cfg.explainers.model is None or cfg.explainers.model in cfg.models
