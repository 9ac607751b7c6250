"""Cascading randomisation on a tiny model, and the map similarities' known answers."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_xai.xai import sanity

LEARNT_TOP_DOWN = ["logits", "hidden", "bn", "dw", "sep"]


@pytest.fixture(scope="module")
def tiny():
    """A tiny "trained" model: a frozen preprocessing layer, conv layers, BatchNorm, two Dense layers;
    every weight set away from its initial value, as training would."""
    import keras
    from keras import layers

    inputs = keras.Input((8, 8, 3))
    x = layers.Dense(3, trainable=False, name="fixed")(inputs)
    x = layers.SeparableConv2D(4, 3, padding="same", name="sep")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    x = layers.Dense(5, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, layers.Dense(2, name="logits")(x))
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.2, 0.8, w.shape).astype("float32") for w in model.get_weights()])
    images = rng.random((4, 8, 8, 3)).astype("float32")
    return model, images


def _weights(layer):
    return [np.array(w) for w in layer.get_weights()]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_learnt_layers_are_listed_output_first_without_frozen_ones(tiny):
    model, _ = tiny
    assert [layer.name for layer in sanity.learnt_layers(model)] == LEARNT_TOP_DOWN
    assert [layer.name for layer in sanity.learnt_layers(model, include_frozen=True)][-1] == "fixed"


def test_the_cascade_randomises_from_the_top_down_cumulatively(tiny):
    model, images = tiny
    original = {layer.name: _weights(layer) for layer in sanity.learnt_layers(model, include_frozen=True)}
    before = np.array(model(images))
    steps = []
    for depth, (name, randomised) in enumerate(sanity.cascading_randomisation(model, seed=7)):
        steps.append(name)
        now = {layer.name: _weights(layer) for layer in sanity.learnt_layers(randomised, include_frozen=True)}
        changed = [n for n in now if not _same(now[n], original[n])]
        assert changed == LEARNT_TOP_DOWN[: depth + 1], name
    assert steps == LEARNT_TOP_DOWN
    after = np.array(randomised(images))
    assert np.isfinite(before).all() and np.isfinite(after).all()
    assert not np.allclose(after, before, atol=1e-3)  # the outputs changed
    assert _same(_weights(model.get_layer("logits")), original["logits"])  # the original is untouched
    assert np.array_equal(np.array(model(images)), before)


def test_layers_are_redrawn_with_their_own_initializers_and_seeded(tiny):
    model, images = tiny
    one = sanity.randomised_copy(model, None, seed=3)
    two = sanity.randomised_copy(model, None, seed=3)
    other = sanity.randomised_copy(model, None, seed=4)
    assert _same(one.get_weights(), two.get_weights())
    assert not _same(one.get_weights(), other.get_weights())
    gamma, beta, mean, variance = _weights(one.get_layer("bn"))
    assert np.all(gamma == 1) and np.all(beta == 0) and np.all(mean == 0) and np.all(variance == 1)
    kernel, bias = _weights(one.get_layer("logits"))
    assert np.all(bias == 0) and np.abs(kernel).max() <= np.sqrt(6 / (5 + 2))  # Glorot uniform's limit
    drawn = sanity.reinitialise_layer(sanity.copy_model(model).get_layer("sep"), seed=1)
    assert drawn == ["depthwise_kernel: GlorotUniform", "pointwise_kernel: GlorotUniform", "bias: Zeros"]
    # The cascade's last step equals randomising everything at once with the same seed.
    *_, (_, last) = sanity.cascading_randomisation(model, seed=3)
    assert _same(last.get_weights(), one.get_weights())


def test_identical_maps_are_similar_one_and_a_negative_map_has_negative_ssim():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 24, 24))
    same = sanity.map_similarity(maps, maps.copy())
    assert same["spearman_abs"] == pytest.approx(np.ones(3)) and same["ssim"] == pytest.approx(np.ones(3))
    assert np.all(sanity.ssim_maps(maps, -maps) < 0)
    assert sanity.spearman_maps(maps, -maps) == pytest.approx(np.ones(3))  # |map| is the same
    assert sanity.spearman_maps(maps, -maps, absolute=False) == pytest.approx(-np.ones(3))
    unrelated = rng.normal(size=maps.shape)
    assert np.all(np.abs(sanity.spearman_maps(maps, unrelated)) < 0.2)
    assert np.all(np.abs(sanity.ssim_maps(maps, unrelated)) < 0.2)


def test_ssim_falls_as_a_map_is_perturbed_and_ignores_the_maps_scale():
    rng = np.random.default_rng(1)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(2, 32, 32)), axis=1), axis=2)
    noise = rng.normal(size=smooth.shape) * smooth.std()
    values = [sanity.ssim_maps(smooth, smooth + level * noise) for level in (0.05, 0.2, 0.8)]
    assert np.all(values[0] > values[1]) and np.all(values[1] > values[2])
    assert sanity.ssim_maps(smooth, 3 * smooth + 2) == pytest.approx(np.ones(2))
    with pytest.raises(ValueError, match="one shape"):
        sanity.ssim_maps(smooth, smooth[:1])


def test_cascade_similarity_of_a_gradient_free_explainer(tiny):
    """An "explainer" that ignores the model (the image's brightness) passes no sanity check: its maps
    stay identical however much of the model is randomised."""
    model, images = tiny

    def brightness(_model, x):
        return x.sum(axis=-1)

    out = sanity.cascade_similarity(model, brightness, images, seed=0)
    assert out["layers"] == LEARNT_TOP_DOWN
    assert out["ssim"].shape == out["spearman_abs"].shape == (len(LEARNT_TOP_DOWN), len(images))
    assert out["ssim"] == pytest.approx(1.0) and out["spearman_abs"] == pytest.approx(1.0)
