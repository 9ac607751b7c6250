"""Explainers (galaxy_xai.xai.explainers): known answers on a linear model, invariants, seeding, tf-keras-vis
equivalence, the registry, the heatmap files and the stage."""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from galaxy_xai.config import METHODS, XaiConfig, config_from_dict
from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS
from galaxy_xai.xai import explainers, heatmaps
from galaxy_xai.xai.explainers.core import class_index, finish_maps, sample_layout, score_model
from galaxy_xai.xai.explainers.gradcam import GradCam
from galaxy_xai.xai.explainers.gradients import SmoothGrad, Vanilla
from stages import heatmap_shard as heatmap_stage
from tests.fixtures import ROOT, write_jpeg
from tests.tiny_models import BAR, PX, galaxies, linear_model, tiny_cnn


def expected_linear_map(weights: np.ndarray, index: int, px: int) -> np.ndarray:
    grad = np.abs(weights[:, index]).reshape(px, px, 3).max(axis=-1)
    return (grad - grad.min()) / (grad.max() - grad.min())



def test_class_index_names_the_column():
    assert CLASS_COLUMNS[class_index("Class3.1")] == "Class3.1"
    assert class_index("Class1.1") == 0
    with pytest.raises(ValueError, match="Class3.9"):
        class_index("Class3.9")


# --- semantics on a linear model -------------------------------------------------------------------


def test_linear_model_vanilla_is_normalised_channel_max_of_abs_weights():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(PX * PX * 3, 3))  # signed, and the largest channel varies per pixel
    maps = Vanilla(2)(linear_model(weights), rng.uniform(size=(3, PX, PX, 3)))
    assert maps.dtype == np.float32 and maps.shape == (3, PX, PX)
    for m in maps:
        np.testing.assert_allclose(m, expected_linear_map(weights, 2, PX), atol=1e-6)


def test_linear_model_smoothgrad_equals_vanilla_for_any_noise():
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(PX * PX * 3, 2))
    model, images = linear_model(weights), rng.uniform(size=(5, PX, PX, 3)).astype("float32")
    for noise in (0.05, 0.5):
        maps = SmoothGrad(1, samples=7, noise=noise, batch_size=8)(model, images, seed=3)
        np.testing.assert_allclose(
            maps, np.broadcast_to(expected_linear_map(weights, 1, PX), maps.shape), atol=1e-5
        )


def expected_linear_input_map(weights: np.ndarray, index: int, image: np.ndarray) -> np.ndarray:
    """max(0, sum_c x_c w_c), min-max normalised: input x gradient of a linear score."""
    m = np.maximum((image * weights[:, index].reshape(image.shape)).sum(axis=-1), 0.0)
    return (m - m.min()) / (m.max() - m.min())


def test_linear_model_input_x_gradient_is_the_positive_evidence_for_any_noise():
    """The signed gradient of a linear score is its weights whatever the noise, so SmoothGrad's
    input x gradient is max(0, sum_c x_c w_c) of the clean image for every S_noise and N; N = 0
    (vanilla) gives the same."""
    rng = np.random.default_rng(12)
    weights = rng.normal(size=(PX * PX * 3, 2))
    model, images = linear_model(weights), rng.uniform(size=(4, PX, PX, 3)).astype("float32")
    expected = np.stack([expected_linear_input_map(weights, 1, image) for image in images])
    assert (expected == 0).mean() > 0.2, "the test needs pixels of negative evidence"
    for samples, noise in ((0, 0.0), (5, 0.05), (9, 0.5)):
        explainer = SmoothGrad(1, samples, noise, batch_size=8, attribution="input_x_gradient")
        maps = explainer(model, images, seed=3)
        np.testing.assert_allclose(maps, expected, atol=1e-5)
    # ... and it is not the paper's map, which ignores both the input and the sign.
    paper = SmoothGrad(1, samples=5, noise=0.05)(model, images, seed=3)
    assert np.abs(paper - expected).max() > 0.3


def test_input_x_gradient_keeps_the_sign_of_the_smoothed_gradient(cnn):
    """On a nonlinear model: the map is relu(sum_c x_c mean_s g_c), not an average of |g| (checked
    against a direct average over the same noisy copies: noise = 0 makes every copy the clean image)."""
    import tensorflow as tf

    images = galaxies(3)
    scores = score_model(cnn)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(scores(x)[:, BAR])
    gradient = tape.gradient(total, x).numpy()
    expected = finish_maps(np.maximum((images * gradient).sum(axis=-1), 0.0), "expected")
    maps = SmoothGrad(BAR, samples=4, noise=0.0, attribution="input_x_gradient")(cnn, images)
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    with pytest.raises(ValueError, match="attribution = 'abs': expected one of abs_gradient, input_x_gradient"):
        SmoothGrad(BAR, 4, 0.1, attribution="abs")


def test_finish_maps_min_max_and_constant_maps(caplog):
    maps = np.array([[[2.0, 4.0], [6.0, 10.0]], [[3.0, 3.0], [3.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]])
    with caplog.at_level(logging.WARNING, logger="galaxy_xai.xai.explainers"):
        out = finish_maps(maps, "test maps")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [[0.0, 0.25], [0.5, 1.0]])
    assert not out[1:].any()
    assert "test maps: 2 of 3 maps are constant (no gradient signal); returned as zeros" in caplog.messages
    with pytest.raises(ValueError, match=r"images \[0\]"):
        finish_maps(np.array([[[np.nan, 1.0]]]), "test maps")


def test_zero_gradient_gives_zero_maps_and_one_warning(caplog):
    weights = np.zeros((PX * PX * 3, 2))
    weights[:, 1] = 1.0  # class 0 has no gradient at all; class 1 a constant one
    model, images = linear_model(weights), galaxies(3)
    with caplog.at_level(logging.WARNING, logger="galaxy_xai.xai.explainers"):
        for index in (0, 1):
            maps = SmoothGrad(index, samples=4, noise=0.2)(model, images)
            assert np.isfinite(maps).all() and not maps.any()
    warnings_ = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("galaxy_xai.xai.explainers")
    ]
    assert (
        warnings_ == ["smoothgrad N=4: 3 of 3 maps are constant (no gradient signal); returned as zeros"] * 2
    )


def test_model_without_logits_layer_uses_the_last_activation_made_linear():
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(PX * PX * 3, 2))
    inputs = keras.Input((PX, PX, 3))
    dense = keras.layers.Dense(2, activation="sigmoid", name="dense_out")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([weights.astype("float32"), np.zeros(2, "float32")])
    # Saturating inputs: through the sigmoid the gradient would vanish; through the logits it does not.
    maps = Vanilla(0)(model, np.full((1, PX, PX, 3), 1.0, "float32") * 50)
    np.testing.assert_allclose(maps[0], expected_linear_map(weights, 0, PX), atol=1e-6)
    assert model.layers[-1].activation is keras.activations.sigmoid  # the original model is untouched


# --- SmoothGrad: seeding, batching, invariants --------------------------------------------------------


def test_smoothgrad_is_seeded_and_independent_of_batching(cnn, caplog):
    images = galaxies(5)
    kwargs = dict(samples=12, noise=0.2)
    with caplog.at_level(logging.DEBUG, logger="galaxy_xai.xai.explainers"):
        a = SmoothGrad(BAR, batch_size=24, **kwargs)(cnn, images, seed=7)  # 2 galaxies per chunk, padded
    assert "traced 1 time(s)" in caplog.text  # padding the last chunk avoids a retrace
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="galaxy_xai.xai.explainers"):
        b = SmoothGrad(BAR, batch_size=24, **kwargs)(cnn, images, seed=7)
        # Another call (other galaxies, another output) reuses the compiled function.
        SmoothGrad(BAR + 1, batch_size=24, **kwargs)(cnn, images[:1], seed=3)
    assert caplog.text.count("traced 1 time(s)") == 2
    c = SmoothGrad(BAR, batch_size=5, **kwargs)(cnn, images, seed=7)  # 3 masked steps of 5
    d = SmoothGrad(BAR, batch_size=24, **kwargs)(cnn, images, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1e-5)
    assert np.abs(a - d).max() > 0.05
    assert a.dtype == np.float32 and a.shape == (5, PX, PX)
    assert np.allclose(a.min(axis=(1, 2)), 0) and np.allclose(a.max(axis=(1, 2)), 1)


def test_smoothgrad_noise_follows_keys_not_positions(cnn):
    images, keys = galaxies(4), np.array([11, 5, 42, 7])
    maps = SmoothGrad(BAR, 6, 0.2)(cnn, images, seed=1, keys=keys)
    order = np.array([2, 0, 3, 1])
    shuffled = SmoothGrad(BAR, 6, 0.2, batch_size=7)(cnn, images[order], seed=1, keys=keys[order])
    np.testing.assert_allclose(shuffled, maps[order], atol=1e-5)
    with pytest.raises(ValueError, match="keys"):
        SmoothGrad(BAR, 6, 0.2)(cnn, images, keys=keys[:3])


def test_sample_layout_bounds_the_batch():
    for samples, batch, multiple in [(256, 256, 1), (32, 256, 8), (300, 256, 4), (7, 3, 1), (5, 100, 1)]:
        g, k, steps = sample_layout(samples, batch, multiple)
        assert g * k <= max(batch, k) and k <= batch and k * steps >= samples and k * (steps - 1) < samples
        assert g >= 1 and (steps == 1 or k % multiple == 0)


def test_bad_inputs_are_named(cnn):
    with pytest.raises(ValueError, match=r"expected shape \(n, 16, 16, 3\)"):
        SmoothGrad(BAR, 4, 0.1)(cnn, np.zeros((2, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="class_index = 37"):
        Vanilla(37)(cnn, galaxies(1))
    with pytest.raises(ValueError, match="method = 'lime'"):
        explainers.from_config(XaiConfig(method="lime"))
    with pytest.raises(ValueError, match="smoothgrad: batch_size = 0"):
        SmoothGrad(BAR, 4, 0.1, batch_size=0)


def test_registry_names_every_method_and_builds_from_the_config():
    assert tuple(explainers.EXPLAINERS) == METHODS
    assert all(cls.name == method for method, cls in explainers.EXPLAINERS.items())
    xai = XaiConfig()
    sg = explainers.from_config(xai)
    assert sg == SmoothGrad(
        class_index(xai.target),
        xai.smoothgrad.samples,
        xai.smoothgrad.noise,
        batch_size=xai.smoothgrad.batch_size,
        symmetries=xai.smoothgrad.symmetries,
        attribution=xai.attribution,
    )
    assert sg.stochastic and sg.attribution == xai.attribution
    assert explainers.from_config(xai, target="Class5.3").index == class_index("Class5.3")
    assert explainers.from_config(XaiConfig(method="vanilla")) == Vanilla(BAR, attribution=xai.attribution)
    cam = explainers.from_config(XaiConfig(method="gradcam"))
    assert cam == GradCam(BAR) and cam.attribution == "gradcam" and not cam.stochastic
    assert not explainers.from_config(replace(xai, smoothgrad=replace(xai.smoothgrad, samples=0))).stochastic


def test_explain_dispatch_and_vanilla_limit(cnn):
    images = galaxies(3)
    van = Vanilla(BAR)(cnn, images)
    from_config = explainers.from_config(XaiConfig(method="vanilla", attribution="abs_gradient"))
    np.testing.assert_array_equal(from_config(cnn, images, seed=4), van)
    np.testing.assert_array_equal(SmoothGrad(BAR, samples=0, noise=0.3)(cnn, images), van)
    # The noise -> 0 limit of SmoothGrad is the vanilla map.
    np.testing.assert_allclose(SmoothGrad(BAR, 3, 1e-6)(cnn, images), van, atol=1e-3)


@pytest.mark.parametrize(
    ("symmetries", "attribution"), [(4, "abs_gradient"), (8, "abs_gradient"), (8, "input_x_gradient")]
)
def test_symmetry_averaged_smoothgrad_is_equivariant(cnn, symmetries, attribution):
    """Without noise, the map of a turned (or mirrored) galaxy is the turned map: exactly what the
    average over the symmetries of the square promises."""
    images = galaxies(2)
    explainer = SmoothGrad(BAR, samples=symmetries, noise=0.0, symmetries=symmetries, attribution=attribution)
    maps = explainer(cnn, images)
    turned = explainer(cnn, np.rot90(images, 1, axes=(1, 2)).copy())
    np.testing.assert_allclose(turned, np.rot90(maps, 1, axes=(1, 2)), atol=1e-5)
    if symmetries == 8:
        mirrored = explainer(cnn, images[:, :, ::-1].copy())
        np.testing.assert_allclose(mirrored, maps[:, :, ::-1], atol=1e-5)
    plain = SmoothGrad(BAR, samples=symmetries, noise=0.0, attribution=attribution)(cnn, images)
    assert np.abs(plain - maps).max() > 1e-3, "averaging over orientations should change the map"


def test_symmetries_one_is_the_papers_smoothgrad_and_bad_values_are_rejected(cnn):
    images = galaxies(2)
    np.testing.assert_array_equal(
        SmoothGrad(BAR, 4, 0.2, symmetries=1)(cnn, images, seed=5),
        SmoothGrad(BAR, 4, 0.2)(cnn, images, seed=5),
    )
    with pytest.raises(ValueError, match="symmetries = 3: expected one of"):
        SmoothGrad(BAR, 4, 0.2, symmetries=3)


# --- equivalence with tf-keras-vis (the paper's implementation) -----------------------------------------


@pytest.fixture(scope="module")
def tkv_saliency(cnn):
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    return Saliency(cnn, model_modifier=ReplaceToLinear(), clone=True)


def _min_max(maps: np.ndarray) -> np.ndarray:
    """What the original code did to tf-keras-vis's output: an exact min-max per map."""
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - lo) / (hi - lo)


def test_vanilla_matches_tf_keras_vis(cnn, tkv_saliency):
    from tf_keras_vis.utils.scores import CategoricalScore

    images = galaxies(4)
    ours = Vanilla(BAR)(cnn, images)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # Keras' input-structure chatter on tf-keras-vis's list input
        raw = tkv_saliency(CategoricalScore(BAR), images, normalize_map=False)
        normalised = tkv_saliency(CategoricalScore(BAR), images)
    np.testing.assert_allclose(ours, _min_max(raw), atol=1e-5)
    # tf-keras-vis divides by (range + 1e-7): it differs from the exact min-max by at most 1e-7 / range.
    span = raw.max(axis=(1, 2)) - raw.min(axis=(1, 2))
    assert np.all(np.abs(ours - normalised).max(axis=(1, 2)) <= 1e-7 / span + 1e-6)


def test_smoothgrad_correlates_with_tf_keras_vis_at_256_samples(cnn, tkv_saliency):
    from tf_keras_vis.utils.scores import CategoricalScore

    images = galaxies(2)
    ours = SmoothGrad(BAR, samples=256, noise=0.15)(cnn, images, seed=0)
    np.random.seed(0)  # noqa: NPY002 -- tf-keras-vis draws from NumPy's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = tkv_saliency(CategoricalScore(BAR), images, smooth_samples=256, smooth_noise=0.15)
    vanilla = Vanilla(BAR)(cnn, images)
    for ours_map, ref_map, van_map in zip(ours, reference, vanilla, strict=True):
        r = np.corrcoef(ours_map.ravel(), ref_map.ravel())[0, 1]
        assert r >= 0.95, r
        # ... and the agreement is not just "both look like the gradient": smoothing changed the map.
        assert r > np.corrcoef(van_map.ravel(), ref_map.ravel())[0, 1]


def test_gradcam_matches_tf_keras_vis(cnn):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    images = galaxies(3)
    maps = GradCam(BAR)(cnn, images)
    assert maps.shape == (3, PX, PX) and maps.dtype == np.float32
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    explainer = Gradcam(score_model(cnn), clone=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = explainer(
            CategoricalScore(BAR),
            images,
            penultimate_layer="features",
            seek_penultimate_conv_layer=False,
            normalize_cam=False,
        )
    np.testing.assert_allclose(maps, _min_max(reference), atol=1e-5)
    np.testing.assert_array_equal(GradCam(BAR, layer="features")(cnn, images), maps)


def test_gradcam_reaches_into_a_nested_backbone(cnn):
    """keras.applications backbones are one nested layer; the default feature map is inside it."""
    inner = keras.Model(cnn.input, cnn.get_layer("features").output, name="backbone")
    inputs = keras.Input((PX, PX, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(inner(inputs))
    logits = keras.layers.Dense(len(CLASS_COLUMNS), name="logits")
    nested = keras.Model(inputs, keras.layers.Activation("sigmoid", name="output")(logits(x)))
    logits.set_weights(cnn.get_layer("logits").get_weights())
    images = galaxies(2)
    np.testing.assert_allclose(
        GradCam(BAR)(nested, images), GradCam(BAR)(cnn, images), atol=1e-6
    )


# --- the heatmap set and the stage -------------------------------------------------------------------


def test_heatmap_set_draws(cnn, tmp_path):
    images, objids = galaxies(5), np.array([10, 11, 12, 13, 14])
    splits = np.array(["val", "test", "val", "test", "test"])
    explainer = explainers.from_config(XaiConfig())
    out = heatmaps.heatmap_set(explainer, cnn, "tiny", images, objids, splits, seed=3)
    np.testing.assert_array_equal(out["objid"], [10, 11, 12, 13, 14, 11, 13, 14])
    np.testing.assert_array_equal(out["draw"], [0, 0, 0, 0, 0, 1, 1, 1])
    first, second = out["maps"][[1, 3, 4]], out["maps"][5:]
    assert np.abs(first.astype(float) - second).max() > 0.05  # independent noise draws...
    assert all(
        np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.5 for a, b in zip(first, second, strict=True)
    )  # ...same galaxy
    other_model = heatmaps.heatmap_set(explainer, cnn, "other", images, objids, splits, seed=3)
    assert np.abs(other_model["maps"].astype(float) - out["maps"]).max() > 0.05  # models get their own noise
    vanilla = explainers.from_config(XaiConfig(method="vanilla"))
    van = heatmaps.heatmap_set(vanilla, cnn, "tiny", images, objids, splits, seed=3)
    np.testing.assert_array_equal(van["maps"][[1, 3, 4]], van["maps"][5:])
    with pytest.raises(ValueError, match="train"):
        heatmaps.heatmap_set(explainer, cnn, "tiny", images, objids, np.array(["train"] * 5), seed=3)
    assert set(out) == set(heatmaps.ARRAYS)
    with pytest.raises(ValueError, match="expected"):
        heatmaps.write_heatmaps(tmp_path / "bad.npz", {k: v for k, v in out.items() if k != "grey"})
    assert not (tmp_path / "bad.npz").exists()


@pytest.fixture
def stage_inputs(tmp_path):
    model = tiny_cnn(px=24, seed=1)
    model.save(tmp_path / "tiny.keras")
    objids = np.array([587722981747982465, 587722981747982466, 587722981747982470, 587722981747982471])
    paths = []
    for i, objid in enumerate(objids):
        path = tmp_path / "images" / f"{objid}.jpg"
        write_jpeg(path, seed=i)
        paths.append(str(path))
    bars = pd.DataFrame(
        {
            "objid": objids,
            "asset_id": np.arange(4),
            "image_path": paths,
            "length_scaled": 0.5,
            "xai_split": ["val", "test", "test", "val"],
            "control_split": "train",
        }
    )
    bars.to_csv(tmp_path / "bars.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["images"]["size_px"] = 24
    params["xai"]["smoothgrad"].update({"samples": 4, "noise": 0.2, "batch_size": 8})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    config_from_dict(params)  # the modified params are valid
    return tmp_path, objids


def run_stage(tmp_path, bars="bars.csv"):
    heatmap_stage.main(
        [
            "--model",
            "tiny",
            "--model-file",
            str(tmp_path / "tiny.keras"),
            "--bars",
            str(tmp_path / bars),
            "--out",
            str(tmp_path / "heatmaps" / "tiny.npz"),
            "--params",
            str(tmp_path / "params.yaml"),
        ]
    )


def test_stage_writes_the_npz_contract(stage_inputs):
    tmp_path, objids = stage_inputs
    run_stage(tmp_path)
    with np.load(tmp_path / "heatmaps" / "tiny.npz") as npz:  # no pickles: plain arrays only
        out = {key: npz[key] for key in npz.files}
    assert set(out) == {"maps", "objid", "split", "draw", "grey", "model", "method", "attribution"}
    assert out["maps"].dtype == np.float16 and out["maps"].shape == (6, 24, 24)
    assert out["grey"].dtype == np.float16 and out["grey"].shape == (6, 24, 24)
    assert (
        out["objid"].dtype == np.int64
        and out["split"].dtype == np.dtype("<U4")
        and out["draw"].dtype == np.int8
    )
    np.testing.assert_array_equal(out["objid"], np.concatenate([objids, objids[[1, 2]]]))
    np.testing.assert_array_equal(out["split"], ["val", "test", "test", "val", "test", "test"])
    np.testing.assert_array_equal(out["draw"], [0, 0, 0, 0, 1, 1])
    # The default of params.yaml: Integrated Gradients, deterministic, so draw 1 repeats draw 0.
    assert str(out["model"]) == "tiny" and str(out["method"]) == "integrated_gradients"
    assert str(out["attribution"]) == "integrated_gradients"
    maps = out["maps"].astype(np.float32)
    np.testing.assert_array_equal(maps[4:], maps[[1, 2]])
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    # The grey image is the input's channel mean: a galaxy image is bright in the centre.
    grey = out["grey"].astype(np.float32)
    assert grey[:, 12, 12].min() > grey[:, 0, 0].max()
    assert not list((tmp_path / "heatmaps").glob(".*"))  # no temporary file left behind


def test_stage_reports_a_missing_column(stage_inputs, capsys):
    tmp_path, _ = stage_inputs
    pd.read_csv(tmp_path / "bars.csv").drop(columns="xai_split").to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:
        run_stage(tmp_path, bars="broken.csv")
    assert exit_info.value.code == 2
    assert "broken.csv: missing column(s) xai_split" in capsys.readouterr().err
    assert not (tmp_path / "heatmaps" / "tiny.npz").exists()


def test_stage_reports_a_missing_model_file_and_needs_every_path(stage_inputs, capsys):
    tmp_path, _ = stage_inputs
    (tmp_path / "tiny.keras").unlink()
    with pytest.raises(SystemExit) as exit_info:
        run_stage(tmp_path)
    assert exit_info.value.code == 2
    assert "tiny.keras: not found; expected a Keras model written by the train stage" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # dvc.yaml passes every path; none has a default
        heatmap_stage.main(["--model", "tiny", "--model-file", "m.keras", "--out", "m.npz"])
    assert exit_info.value.code == 2 and "--bars" in capsys.readouterr().err
