"""The architecture registry: every model builds with the shared interface; bad requests fail early."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from galaxy_xai.config import ARCHITECTURES
from galaxy_xai.models import architectures

SMALL = ("vgg_small", "resnet_small", "xception_small")
PAPER = ("vgg16", "resnet50v2", "xception")


def test_registry_matches_config():
    assert set(architectures.SPECS) == set(ARCHITECTURES) == set(SMALL) | set(PAPER)


@pytest.mark.parametrize("arch", SMALL)
def test_small_models_interface_and_size(arch):
    model = architectures.build_model(arch, 64)
    n_params = model.count_params()
    print(f"{arch}: {n_params} parameters")
    assert 200_000 <= n_params <= 500_000
    assert model.input_shape == (None, 64, 64, 3)
    assert model.output_shape == (None, 37)
    logits, output = model.get_layer("logits"), model.get_layer("output")
    assert isinstance(logits, keras.layers.Dense)
    assert isinstance(output, keras.layers.Activation)
    assert model.layers[-1] is output and output.input is logits.output
    y = model.predict(np.random.default_rng(0).random((2, 64, 64, 3), dtype="float32"), verbose=0)
    assert y.shape == (2, 37) and np.all((y > 0) & (y < 1))


def test_linear_head_regressor():
    model = architectures.build_model("xception_small", 48, n_outputs=1, head="linear")
    assert model.output_shape == (None, 1)
    assert model.get_layer("output").get_config()["activation"] == "linear"
    x = np.random.default_rng(1).random((3, 48, 48, 3), dtype="float32")
    logits = keras.Model(model.input, model.get_layer("logits").output).predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), logits, rtol=1e-6)


def test_build_is_seeded():
    a, b, c = (architectures.build_model("resnet_small", 32, seed=s) for s in (3, 3, 4))
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights(), strict=True))


def test_saved_model_loads_without_custom_objects(tmp_path):
    model = architectures.build_model("vgg_small", 32)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(2).random((2, 32, 32, 3), dtype="float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_unknown_architecture_lists_allowed():
    with pytest.raises(ValueError, match="unknown architecture 'resnet18'.*vgg16.*xception_small"):
        architectures.build_model("resnet18", 64)


@pytest.mark.parametrize(
    ("arch", "too_small"), [("xception", 70), ("vgg16", 31), ("resnet50v2", 31), ("vgg_small", 15)]
)
def test_input_below_minimum(arch, too_small):
    minimum = architectures.SPECS[arch].min_input_px
    with pytest.raises(ValueError, match=rf"{arch} needs an input of at least {minimum} px.*xception >= 71"):
        architectures.validate(arch, too_small)
    assert architectures.validate(arch, minimum) is architectures.SPECS[arch]


def test_imagenet_weights_only_for_paper_backbones():
    with pytest.raises(ValueError, match="no pretrained weights.*vgg16, resnet50v2, xception"):
        architectures.validate("vgg_small", 64, weights="imagenet")
    assert architectures.validate("xception", 224, weights="imagenet").pretrained
    with pytest.raises(ValueError, match="head"):
        architectures.validate("vgg_small", 64, head="softmax")


def _preprocess_model(fn):
    inputs = keras.Input((4, 4, 3))
    return keras.Model(inputs, fn(inputs))


def test_in_model_preprocessing_matches_keras_applications():
    """Callers feed [0, 1]; the layers inside reproduce what each ImageNet backbone expects."""
    x = np.random.default_rng(3).random((2, 4, 4, 3), dtype="float32")
    caffe = _preprocess_model(architectures._caffe_preprocess).predict(x, verbose=0)
    expected = keras.applications.vgg16.preprocess_input(255.0 * x.copy())
    np.testing.assert_allclose(caffe, expected, rtol=1e-5, atol=1e-3)
    tf_mode = _preprocess_model(architectures._tf_preprocess).predict(x, verbose=0)
    np.testing.assert_allclose(
        tf_mode, keras.applications.xception.preprocess_input(255.0 * x.copy()), atol=1e-5
    )


@pytest.mark.paper
@pytest.mark.parametrize("arch", PAPER)
def test_paper_backbone_one_training_step(arch):
    """The paper path is never dead code: each ImageNet backbone (random init, no download) builds
    at its smallest input with the shared interface and takes one optimisation step (eagerly:
    tracing these graphs costs more than the step)."""
    px = architectures.SPECS[arch].min_input_px if arch == "xception" else 48
    model = architectures.build_model(arch, px, seed=0)
    print(f"{arch}: {model.count_params()} parameters")
    assert model.get_layer("output").input is model.get_layer("logits").output
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse", run_eagerly=True)
    rng = np.random.default_rng(0)
    x, y = rng.random((2, px, px, 3), dtype="float32"), rng.random((2, 37), dtype="float32")
    before = [w.copy() for w in model.get_layer("logits").get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert not np.array_equal(before[0], model.get_layer("logits").get_weights()[0])


@pytest.mark.parametrize("arch", SMALL)
@pytest.mark.parametrize("px", [16, 40, 50, 71])
def test_small_models_build_at_any_side_above_the_minimum(arch, px):
    """Odd feature-map sides on the way down must not break the residual additions."""
    model = architectures.build_model(arch, px)
    assert model.output_shape == (None, 37)
    assert model(np.zeros((1, px, px, 3), "float32")).shape == (1, 37)
