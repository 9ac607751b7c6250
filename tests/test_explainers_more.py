"""The explainers of issue #15 (SmoothGrad-Squared, VarGrad, Integrated Gradients, occlusion,
Grad-CAM++, Score-CAM): known answers on linear models, tf-keras-vis equivalence, seeding,
batch-size invariance, shapes and ranges. Tiny models only (16 px): the file runs in well under a minute."""

from __future__ import annotations

import dataclasses
import logging
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from galaxy_xai.config import XaiConfig, load_config
from galaxy_xai.xai import explainers
from galaxy_xai.xai.explainers.core import contrastive, finish_maps, score_model
from galaxy_xai.xai.explainers.gradcam import GradCam, LayerCam
from galaxy_xai.xai.explainers.gradcampp import GradCamPlusPlus
from galaxy_xai.xai.explainers.gradients import Vanilla
from galaxy_xai.xai.explainers.integrated import IntegratedGradients, baselines, integrated_gradients
from galaxy_xai.xai.explainers.noisetunnel import SmoothGradSquared, VarGrad
from galaxy_xai.xai.explainers.occlusion import Occlusion, patch_masks
from galaxy_xai.xai.explainers.scorecam import ScoreCam, interpolation_matrix
from tests.fixtures import ROOT
from tests.tiny_models import BAR, PX, galaxies, linear_model, tiny_cnn


def _min_max(maps: np.ndarray) -> np.ndarray:
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - lo) / (hi - lo)


def _clean_gradient(model, images, index):
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(score_model(model)(x)[:, index])
    return tape.gradient(total, x).numpy()


# --- SmoothGrad-Squared and VarGrad ------------------------------------------------------------------


def test_smoothgrad_squared_of_a_linear_model_is_the_squared_weights():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(PX * PX * 3, 2))
    model, images = linear_model(weights), rng.uniform(size=(3, PX, PX, 3)).astype("float32")
    raw = SmoothGradSquared(1, samples=5, noise=0.3, batch_size=8).raw(model, images, seed=2)
    expected = (weights[:, 1].reshape(PX, PX, 3) ** 2).max(axis=-1)
    np.testing.assert_allclose(raw, np.broadcast_to(expected, raw.shape), rtol=1e-5)


def test_vargrad_of_a_linear_model_is_exactly_zero(caplog):
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(PX * PX * 3, 2))
    model, images = linear_model(weights), rng.uniform(size=(3, PX, PX, 3)).astype("float32")
    explainer = VarGrad(0, samples=6, noise=0.5, batch_size=8)
    assert not explainer.raw(model, images, seed=1).any()  # the gradient never changes: variance 0
    with caplog.at_level(logging.WARNING, logger="galaxy_xai.xai.explainers"):
        assert not explainer(model, images, seed=1).any()
    assert "vargrad N=6: 3 of 3 maps are constant" in caplog.text


def test_without_noise_smoothgrad_squared_is_the_squared_gradient_and_vargrad_vanishes(cnn):
    images = galaxies(3)
    squared = (_clean_gradient(cnn, images, BAR) ** 2).max(axis=-1)
    maps = SmoothGradSquared(BAR, 4, 0.0)(cnn, images)
    np.testing.assert_allclose(maps, finish_maps(squared, "g^2"), atol=1e-5)
    assert np.abs(VarGrad(BAR, 4, 0.0).raw(cnn, images)).max() <= 1e-6 * squared.max()


@pytest.mark.parametrize("cls", [SmoothGradSquared, VarGrad])
def test_noise_tunnel_is_seeded_keyed_and_batch_invariant(cnn, cls):
    images, keys = galaxies(4), np.array([11, 5, 42, 7])
    a = cls(BAR, 10, 0.2, batch_size=24)(cnn, images, seed=7, keys=keys)
    np.testing.assert_array_equal(a, cls(BAR, 10, 0.2, batch_size=24)(cnn, images, seed=7, keys=keys))
    order = np.array([2, 0, 3, 1])
    shuffled = cls(BAR, 10, 0.2, batch_size=5)(cnn, images[order], seed=7, keys=keys[order])
    np.testing.assert_allclose(shuffled, a[order], atol=1e-5)
    assert np.abs(a - cls(BAR, 10, 0.2, batch_size=24)(cnn, images, seed=8, keys=keys)).max() > 0.05
    assert a.dtype == np.float32 and a.shape == (4, PX, PX)
    assert np.allclose(a.min(axis=(1, 2)), 0) and np.allclose(a.max(axis=(1, 2)), 1)
    turned = cls(BAR, 8, 0.0, symmetries=4)  # orientation-averaged like SmoothGrad: equivariant without noise
    rotated = turned(cnn, np.rot90(images, 1, axes=(1, 2)).copy())
    np.testing.assert_allclose(rotated, np.rot90(turned(cnn, images), 1, axes=(1, 2)), atol=1e-4)


def test_noise_tunnel_rejects_too_few_samples():
    with pytest.raises(ValueError, match="vargrad: samples = 1 and noise = 0.1: expected samples >= 2"):
        VarGrad(BAR, 1, 0.1)
    with pytest.raises(ValueError, match="smoothgrad_sq: samples = 0"):
        SmoothGradSquared(BAR, 0, 0.1)


# --- Integrated Gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["blur", "black", "sky", "axisymmetric"])
def test_integrated_gradients_of_a_linear_model_is_the_difference_times_the_weights(baseline):
    """IG of a linear score is (x - x') w exactly, for any number of steps; completeness holds."""
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(PX * PX * 3, 2))
    model, images = linear_model(weights), rng.uniform(size=(3, PX, PX, 3)).astype("float32")
    base = baselines(images, baseline, 2.0)
    w = weights[:, 1].reshape(PX, PX, 3)
    for steps in (1, 6):
        explainer = IntegratedGradients(1, steps=steps, baseline=baseline, blur_sigma=2.0, batch_size=5)
        ig = explainer.attributions(model, images)
        np.testing.assert_allclose(ig, (images - base) * w, atol=1e-5)
        score = lambda x: x.reshape(len(x), -1) @ weights[:, 1]  # noqa: E731
        np.testing.assert_allclose(ig.sum(axis=(1, 2, 3)), score(images) - score(base), rtol=1e-4, atol=1e-4)
    maps = IntegratedGradients(1, steps=3, baseline=baseline, blur_sigma=2.0)(model, images)
    expected = finish_maps(np.maximum(((images - base) * w).sum(-1), 0), "ig")
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_integrated_gradients_is_complete_on_a_cnn_and_batch_invariant(cnn):
    images = galaxies(3)
    base = baselines(images, "blur", 3.0)
    ig = integrated_gradients(cnn, images, base, BAR, steps=48, batch_size=256)
    scores = score_model(cnn)
    delta = (scores.predict_on_batch(images) - scores.predict_on_batch(base))[:, BAR]
    np.testing.assert_allclose(ig.sum(axis=(1, 2, 3)), delta, rtol=0.03, atol=1e-3)
    small = integrated_gradients(cnn, images, base, BAR, steps=48, batch_size=7)  # 7 steps of 7, masked
    np.testing.assert_allclose(small, ig, atol=1e-5)
    explainer = IntegratedGradients(BAR, steps=8)
    maps = explainer(cnn, images, seed=1)
    np.testing.assert_array_equal(maps, explainer(cnn, images, seed=2))  # deterministic
    assert maps.shape == (3, PX, PX) and maps.dtype == np.float32
    assert maps.min() == 0 and np.allclose(maps.max((1, 2)), 1)
    with pytest.raises(ValueError, match="baseline = 'grey'"):
        IntegratedGradients(BAR, baseline="grey")
    with pytest.raises(ValueError, match="symmetries = 3: expected one of"):
        IntegratedGradients(BAR, symmetries=3)


def _symmetry(images: np.ndarray, t: int) -> np.ndarray:
    """Symmetry t of the square (flip if t >= 4, then t % 4 quarter turns) of a stack (n, H, W, ...)."""
    turned = images[:, :, ::-1] if t >= 4 else images
    return np.rot90(turned, t % 4, axes=(1, 2)).copy()


def test_the_axisymmetric_baseline_keeps_ring_constant_light_removes_the_rest_and_commutes_with_turns():
    rows, cols = np.indices((24, 24))
    radius = np.hypot(rows - 11.5, cols - 11.5)
    ring_constant = np.exp(-np.floor(radius / 0.5) * 0.5 / 4.0)  # a bulge, constant on each ring
    angle = np.arctan2(rows - 11.5, cols - 11.5)
    bar = np.cos(2 * (angle - 0.4)) * np.exp(-radius / 6.0)  # m = 2: averages to ~0 on every ring
    images = np.stack([np.stack([ring_constant, ring_constant + bar, bar], axis=-1)], 0).astype("float32")
    ring_means = lambda x: baselines(x, "axisymmetric", 1.0)  # noqa: E731  (maps.ring_means of each channel)
    means = ring_means(images)
    assert means.shape == images.shape and means.dtype == np.float32
    np.testing.assert_allclose(means[..., 0], images[..., 0], atol=1e-6)  # its own baseline
    np.testing.assert_allclose(means[..., 1], images[..., 0], atol=0.05)  # the bar is removed...
    assert np.abs(images[..., 1] - means[..., 1]).max() > 0.5  # ...and kept in x - x'
    np.testing.assert_allclose(ring_means(means), means, atol=1e-6)  # idempotent
    ring = (radius / 0.5).astype(int)
    for j in (3, 10, 20):  # every ring keeps its total light
        np.testing.assert_allclose(means[0, ring == j, 2].sum(), images[0, ring == j, 2].sum(), atol=1e-5)
    noise = np.random.default_rng(4).uniform(size=(2, 24, 24, 3)).astype("float32")
    for t in range(8):
        np.testing.assert_allclose(ring_means(_symmetry(noise, t)), _symmetry(ring_means(noise), t), atol=1e-6)


def test_orientation_averaged_integrated_gradients_are_equivariant_and_complete_on_average(cnn):
    """Averaged over the square's symmetries, IG of a turned galaxy is the turned IG (any model), and
    the attributions sum to the mean over the orientations of score(x) - score(x')."""
    images = galaxies(2)
    explainer = IntegratedGradients(BAR, steps=16, baseline="axisymmetric", symmetries=8, batch_size=40)
    ig = explainer.attributions(cnn, images)
    scale = np.abs(ig).max()
    for t in (1, 6):
        turned = explainer.attributions(cnn, _symmetry(images, t))
        np.testing.assert_allclose(turned, _symmetry(ig, t), atol=1e-4 * scale)
    scores, base = score_model(cnn), baselines(images, "axisymmetric", 1.0)
    delta = np.mean(
        [(scores.predict_on_batch(_symmetry(images, t)) - scores.predict_on_batch(_symmetry(base, t)))[:, BAR] for t in range(8)],
        axis=0,
    )
    np.testing.assert_allclose(ig.sum(axis=(1, 2, 3)), delta, atol=0.03 * np.abs(delta).max())  # quadrature error
    one = IntegratedGradients(BAR, steps=16, baseline="axisymmetric", symmetries=1)
    assert np.abs(one.attributions(cnn, images) - ig).max() > 0.05 * scale  # the tiny CNN is not equivariant


# --- occlusion ---------------------------------------------------------------------------------------


def test_patch_masks_cover_every_pixel_and_reach_the_edges():
    masks = patch_masks(16, 12, 6, 4)
    assert masks.shape == (4 * 3, 16, 12)  # corners 0, 4, 8 and the edge's 10 down; 0, 4, 6 across
    assert masks.sum(axis=0).min() >= 1 and masks[:, -1, -1].sum() == 1
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), 36)
    np.testing.assert_array_equal(masks[1, :6, 4:10], 1)  # row-major: the second position is (0, 4)


def test_occlusion_of_a_model_that_reads_one_region_lights_that_region():
    rows, cols = slice(4, 8), slice(9, 13)
    weights = np.zeros((PX, PX, 3, 2))
    weights[rows, cols, :, 1] = 1.0  # the score is the region's light
    model, images = linear_model(weights.reshape(-1, 2)), galaxies(3)
    images[:, rows, cols] += 0.3  # brighter than the sky: covering it lowers the score
    explainer = Occlusion(1, patch=4, stride=2, batch_size=10)
    drops = explainer.drops(model, images)
    # Known answer: each patch's drop is the region's light above the sky level it covers.
    masks = patch_masks(PX, PX, 4, 2)
    sky = np.median(images, axis=(1, 2), keepdims=True)
    w = weights[..., 1]
    expected = np.einsum("phw,nhwc,hwc->np", masks, images - sky, w)
    np.testing.assert_allclose(drops, np.einsum("np,phw->nhw", expected, masks) / masks.sum(0), atol=1e-4)
    maps = explainer(model, images)
    region = np.zeros((PX, PX), bool)
    region[rows, cols] = True
    near = ndimage.binary_dilation(region, np.ones((3, 3)), iterations=3)  # patches reach 3 px out
    for m in maps:
        assert region[np.unravel_index(m.argmax(), m.shape)] and np.abs(m[~near]).max() < 1e-5
    one_chunk = Occlusion(1, patch=4, stride=2, batch_size=256)(model, images)
    np.testing.assert_allclose(one_chunk, maps, atol=1e-5)


def test_occlusion_on_a_cnn_is_deterministic_and_normalised(cnn):
    images = galaxies(3)
    maps = Occlusion(BAR, patch=6, stride=3, batch_size=7)(cnn, images)
    assert maps.shape == (3, PX, PX) and maps.dtype == np.float32 and maps.min() >= 0
    # Another batch size changes only float32 rounding of the score differences.
    np.testing.assert_allclose(Occlusion(BAR, patch=6, stride=3)(cnn, images, seed=5), maps, atol=1e-3)
    with pytest.raises(ValueError, match="expected 1 <= stride <= patch"):
        Occlusion(BAR, patch=4, stride=5)
    with pytest.raises(ValueError, match="exceeds the image"):
        Occlusion(BAR, patch=20, stride=4)(cnn, images)


# --- Grad-CAM++ and Score-CAM ------------------------------------------------------------------------


def test_interpolation_matrix_is_scipy_zoom_order_1():
    a = np.random.default_rng(4).normal(size=(5, 3))
    up = interpolation_matrix(16, 5) @ a @ interpolation_matrix(12, 3).T
    np.testing.assert_allclose(up, ndimage.zoom(a, (16 / 5, 12 / 3), order=1), atol=1e-5)


def test_gradcam_pp_matches_tf_keras_vis(cnn):
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.utils.scores import CategoricalScore

    images = galaxies(3)
    explainer = GradCamPlusPlus(BAR, batch_size=2)
    maps = explainer(cnn, images)
    assert explainer.cams(cnn, images).shape == (3, PX // 2, PX // 2)  # the conv grid: the true resolution
    assert maps.shape == (3, PX, PX) and maps.dtype == np.float32
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = GradcamPlusPlus(score_model(cnn), clone=False)(
            CategoricalScore(BAR),
            images,
            penultimate_layer="features",
            seek_penultimate_conv_layer=False,
            normalize_cam=False,
        )
    np.testing.assert_allclose(maps, _min_max(reference), atol=1e-4)
    np.testing.assert_allclose(GradCamPlusPlus(BAR, layer="features")(cnn, images), maps, atol=1e-6)


def test_scorecam_matches_tf_keras_vis_on_a_two_way_softmax(cnn):
    """tf-keras-vis weighs by a softmax over the outputs; on [S/2, -S/2] that is sigmoid(S), our
    model's own output for the class, so both must give the same map."""
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    images = galaxies(3)
    explainer = ScoreCam(BAR, batch_size=20)  # 12 channels: 1 galaxy per chunk, padded
    maps = explainer(cnn, images)
    assert explainer.cams(cnn, images).shape == (3, PX // 2, PX // 2)
    assert maps.shape == (3, PX, PX) and maps.dtype == np.float32
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    logits = score_model(cnn).output[:, BAR : BAR + 1]
    two_way = keras.Model(cnn.inputs, keras.layers.Concatenate()([logits / 2, -logits / 2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = Scorecam(two_way, clone=False)(
            CategoricalScore(0),
            images,
            penultimate_layer="features",
            seek_penultimate_conv_layer=False,
            normalize_cam=False,
            batch_size=64,
        )
    np.testing.assert_allclose(maps, _min_max(reference), atol=1e-4)
    np.testing.assert_allclose(ScoreCam(BAR, batch_size=5)(cnn, images), maps, atol=1e-5)  # 3 masked steps


def test_cams_reach_into_a_nested_backbone_and_survive_large_logits(cnn):
    """tf-keras-vis fails on both: its layer lookup cannot enter a nested backbone (the paper's
    keras.applications models), and Grad-CAM++'s exp(score) overflows to NaN above a logit of ~88."""
    inner = keras.Model(cnn.input, cnn.get_layer("features").output, name="backbone")
    inputs = keras.Input((PX, PX, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(inner(inputs))
    logits = keras.layers.Dense(cnn.output_shape[-1], name="logits")
    nested = keras.Model(inputs, keras.layers.Activation("sigmoid", name="output")(logits(x)))
    logits.set_weights(cnn.get_layer("logits").get_weights())
    images = galaxies(2)
    for cls in (GradCamPlusPlus, ScoreCam):
        np.testing.assert_allclose(cls(BAR)(nested, images), cls(BAR)(cnn, images), atol=1e-5)
    weights, bias = cnn.get_layer("logits").get_weights()
    bias[BAR] += 120.0
    logits.set_weights([weights, bias])
    maps = GradCamPlusPlus(BAR)(nested, images)
    assert np.isfinite(maps).all() and np.allclose(maps.max(axis=(1, 2)), 1)


def test_every_new_explainer_builds_from_the_config():
    xai = XaiConfig()
    built = [
        SmoothGradSquared.from_config(xai, BAR),
        VarGrad.from_config(xai, BAR),
        IntegratedGradients.from_config(xai, BAR),
        Occlusion.from_config(xai, BAR),
        GradCamPlusPlus.from_config(xai, BAR),
        ScoreCam.from_config(xai, BAR),
    ]
    names = ["smoothgrad_sq", "vargrad", "integrated_gradients", "occlusion", "gradcam_pp", "scorecam"]
    assert [e.name for e in built] == names
    assert [e.attribution for e in built] == [e.name for e in built]
    assert [e.stochastic for e in built] == [True, True, False, False, False, False]
    assert built[0].samples == xai.smoothgrad.samples and built[1].symmetries == xai.smoothgrad.symmetries
    assert built[2] == IntegratedGradients(BAR, steps=8, baseline="axisymmetric", blur_sigma=4.0, symmetries=4)
    assert built[3] == Occlusion(BAR, patch=8, stride=4)


# --- the contrastive target (xai.contrast) ----------------------------------------------------------


def test_a_contrastive_model_scores_each_answer_minus_the_contrast():
    model = tiny_cnn()
    images = np.random.default_rng(0).uniform(0, 1, (4, *model.input_shape[1:])).astype(np.float32)
    contrasted = contrastive(model, 1)
    plain = score_model(model)(images).numpy()
    np.testing.assert_allclose(score_model(contrasted)(images).numpy(), plain - plain[:, 1:2], atol=1e-6)
    assert contrastive(model, 1) is contrasted and contrastive(model, None) is model  # cached: one trace per model
    with pytest.raises(ValueError, match="contrast = 99: expected an output index"):
        contrastive(model, 99)


@pytest.mark.parametrize("explainer", [IntegratedGradients(0, steps=4, baseline="black"), GradCam(0), Vanilla(0)], ids=lambda e: e.name)
def test_every_explainer_explains_the_contrast_when_asked(explainer):
    model = tiny_cnn()
    images = np.random.default_rng(1).uniform(0, 1, (3, *model.input_shape[1:])).astype(np.float32)
    with_contrast = dataclasses.replace(explainer, contrast=1)
    np.testing.assert_array_equal(with_contrast(model, images), explainer(contrastive(model, 1), images))
    assert not np.array_equal(with_contrast(model, images), explainer(model, images))


def test_the_contrast_applies_to_the_target_only():
    xai = load_config(ROOT / "params.yaml").xai
    xai = dataclasses.replace(xai, method="vanilla", contrast="Class3.2")
    assert explainers.from_config(xai).contrast == explainers.class_index("Class3.2")
    assert explainers.from_config(xai, target="Class5.3").contrast is None  # figure 1's other answers: alone
    assert explainers.from_config(dataclasses.replace(xai, contrast=None)).contrast is None


def test_the_explainer_study_explains_what_the_heatmap_stage_explains():
    """Every stage builds its explainers through explainers.from_config, so the explainers stage's
    default map is the heatmap stage's map of the same galaxy (with the contrast), not the target alone."""
    from galaxy_xai.xai import explainer_study

    model = tiny_cnn()
    images = galaxies(3)
    xai = dataclasses.replace(
        load_config(ROOT / "params.yaml").xai, method="integrated_gradients", contrast="Class3.2",
        integrated_gradients=dataclasses.replace(XaiConfig().integrated_gradients, steps=2, baseline="blur", symmetries=1),
    )  # fmt: skip
    keys = np.arange(3)
    maps = explainer_study.explain_all(model, images, xai, 0, keys, ["integrated_gradients", "vanilla"])[0]
    np.testing.assert_array_equal(maps["integrated_gradients"], explainers.from_config(xai)(model, images, seed=0, keys=keys))
    alone = explainers.from_config(dataclasses.replace(xai, contrast=None), method="vanilla")(model, images)
    assert not np.allclose(maps["vanilla"], alone)  # the contrast changed the map


# --- Layer-CAM and the CAM grid (xai.cam.grid_px) ----------------------------------------------------


def test_layercam_matches_tf_keras_vis(cnn):
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.utils.scores import CategoricalScore

    images = galaxies(3)
    for layer, grid in (("conv1", PX), ("features", PX // 2)):
        explainer = LayerCam(BAR, batch_size=2, layer=layer)
        assert explainer.cams(cnn, images).shape == (3, grid, grid)  # the layer's own grid
        maps = explainer(cnn, images)
        assert maps.shape == (3, PX, PX) and maps.dtype == np.float32
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = Layercam(score_model(cnn), clone=False)(
                CategoricalScore(BAR), images, penultimate_layer=layer, seek_penultimate_conv_layer=False, normalize_cam=False
            )
        np.testing.assert_allclose(maps, _min_max(reference), atol=1e-4)


def test_layercam_weights_each_pixel_by_its_own_positive_gradient():
    """relu(sum_k relu(dS/dA^k_ij) A^k_ij): with one channel and a linear head, the map is A where the
    head's weight is positive and 0 where it is negative (Grad-CAM would weigh every pixel alike)."""
    inputs = keras.Input((4, 4, 1))
    features = keras.layers.Conv2D(1, 1, use_bias=False, name="features")(inputs)
    logits = keras.layers.Dense(1, name="logits")(keras.layers.Flatten()(features))
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="output")(logits))
    model.get_layer("features").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    head = np.where(np.arange(16) % 2 == 0, 1.0, -1.0).astype(np.float32)[:, None]
    model.get_layer("logits").set_weights([head, np.zeros(1, np.float32)])
    image = np.linspace(0.1, 1.0, 16, dtype=np.float32).reshape(1, 4, 4, 1)
    cams = LayerCam(0, layer="features").cams(model, image)
    np.testing.assert_allclose(cams[0].ravel(), np.where(head[:, 0] > 0, image.ravel(), 0.0), atol=1e-6)


def test_the_cam_grid_picks_the_last_layer_of_that_size(cnn):
    from galaxy_xai.xai.explainers.gradcam import grid_layer

    assert grid_layer(cnn, PX) == "conv1" and grid_layer(cnn, PX // 2) == "features"
    with pytest.raises(ValueError, match=r"grid_px = 4: model .* has no 4 x 4 feature map \(its grids: 16, 8\)"):
        grid_layer(cnn, 4)
    images = galaxies(2)
    for cls in (GradCam, GradCamPlusPlus, LayerCam):
        np.testing.assert_array_equal(cls(BAR, grid_px=PX)(cnn, images), cls(BAR, layer="conv1")(cnn, images))
    with pytest.raises(ValueError, match="not both"):
        LayerCam(BAR, layer="conv1", grid_px=PX)
    xai = dataclasses.replace(XaiConfig(), method="layercam", cam=dataclasses.replace(XaiConfig().cam, grid_px=8))
    assert explainers.from_config(xai) == LayerCam(explainers.class_index(xai.target), batch_size=xai.smoothgrad.batch_size, grid_px=8)


def test_layercam_is_grad_cam_plus_plus_on_the_map_before_global_pooling(cnn):
    """Before global average pooling dS/dA^k is the same at every pixel, so Grad-CAM++'s alphas are
    uniform and its weight is relu(g_k): Layer-CAM's map. Finer maps are where the two differ."""
    images = galaxies(3)
    np.testing.assert_allclose(LayerCam(BAR).cams(cnn, images), GradCamPlusPlus(BAR).cams(cnn, images), rtol=1e-5, atol=1e-7)
    assert not np.allclose(LayerCam(BAR, layer="conv1")(cnn, images), GradCamPlusPlus(BAR, layer="conv1")(cnn, images), atol=1e-3)
