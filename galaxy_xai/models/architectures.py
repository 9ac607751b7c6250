"""Architecture registry: the paper's ImageNet backbones and small CPU variants of the same families.

Every model built here has the same interface, so training, prediction and the explainers never
look at the architecture:

* input ``(size_px, size_px, 3)`` float32 in [0, 1] (backbone-specific preprocessing is a layer
  inside the model, so every caller feeds the same [0, 1] images);
* a head of global average pooling, one hidden dense layer and dropout;
* a Dense layer named ``"logits"`` (the linear, pre-activation score the explainers differentiate)
  followed by an Activation layer named ``"output"`` (sigmoid for vote fractions, linear for a
  regressor), kept in float32 under mixed precision.

The paper's backbones (``vgg16``, ``resnet50v2``, ``xception``) come from ``keras.applications``
with ``include_top=False``; ``vgg_small``, ``resnet_small`` and ``xception_small`` are ~0.3M-parameter
versions of the same designs (plain conv stack; pre-activation residual blocks; depthwise-separable
residual blocks) that train on a laptop CPU. Each downsamples early, so their cost is dominated by
a few layers at 1/4 of the input side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from galaxy_xai.config import ARCHITECTURES, MIN_INPUT_PX, WEIGHTS

HEADS = ("sigmoid", "linear")


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about one architecture."""

    family: str
    hidden_units: int
    dropout: float
    pretrained: bool  # ImageNet weights available
    min_input_px: int  # declared once, in config.MIN_INPUT_PX (the config checks images.size_px)


def _spec(arch: str, family: str, hidden_units: int, dropout: float, pretrained: bool) -> ArchSpec:
    return ArchSpec(family, hidden_units, dropout, pretrained, MIN_INPUT_PX[arch])


SPECS: dict[str, ArchSpec] = {
    "vgg16": _spec("vgg16", "vgg", 256, 0.3, True),
    "resnet50v2": _spec("resnet50v2", "resnet", 256, 0.3, True),
    "xception": _spec("xception", "xception", 256, 0.3, True),
    "vgg_small": _spec("vgg_small", "vgg", 128, 0.2, False),
    "resnet_small": _spec("resnet_small", "resnet", 128, 0.2, False),
    "xception_small": _spec("xception_small", "xception", 128, 0.2, False),
}
assert tuple(SPECS) == ARCHITECTURES, "the registry and config.ARCHITECTURES must list the same names"


def validate(arch: str, input_px: int, weights: str | None = None, head: str = "sigmoid") -> ArchSpec:
    """Check a model request before any work; raise ValueError naming what is allowed.

    ``input_px`` is the side of the square model input in pixels.
    """
    if arch not in SPECS:
        raise ValueError(f"unknown architecture {arch!r}; allowed: {', '.join(SPECS)}")
    spec = SPECS[arch]
    if input_px < spec.min_input_px:
        allowed = ", ".join(f"{a} >= {s.min_input_px}" for a, s in SPECS.items())
        raise ValueError(
            f"{arch} needs an input of at least {spec.min_input_px} px, got images.size_px = {input_px} "
            f"(minimum input per architecture: {allowed})"
        )
    if weights not in WEIGHTS:
        raise ValueError(f"weights = {weights!r}: expected null or 'imagenet'")
    if weights is not None and not spec.pretrained:
        pretrained = ", ".join(a for a, s in SPECS.items() if s.pretrained)
        raise ValueError(f"{arch} has no pretrained weights; weights='imagenet' is for {pretrained}")
    if head not in HEADS:
        raise ValueError(f"head = {head!r}: expected one of {', '.join(HEADS)}")
    return spec


def build_model(
    arch: str,
    input_px: int,
    n_outputs: int = 37,
    head: str = "sigmoid",
    weights: str | None = None,
    seed: int = 0,
) -> keras.Model:
    """Build a functional model for ``(input_px, input_px, 3)`` images in [0, 1].

    ``head='sigmoid'`` predicts vote fractions; ``'linear'`` is a plain regressor (the control
    model). ``weights='imagenet'`` downloads pretrained backbone weights (paper backbones only).
    Weight initialisation is seeded by ``seed`` through Keras' global seed.
    """
    spec = validate(arch, input_px, weights, head)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_px, input_px, 3), dtype="float32", name="image")
    features = _BACKBONES[arch](inputs, weights)
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dense(spec.hidden_units, activation="relu", name="hidden")(x)
    x = layers.Dropout(spec.dropout, seed=seed, name="dropout")(x)
    logits = layers.Dense(n_outputs, dtype="float32", name="logits")(x)
    outputs = layers.Activation(head, dtype="float32", name="output")(logits)
    return keras.Model(inputs, outputs, name=arch)


# --- preprocessing layers: [0, 1] in, what each ImageNet backbone expects out --------------------

# keras.applications' "caffe" mode: RGB -> BGR, 0-255, minus the ImageNet channel means (BGR order).
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype="float32")


def _caffe_preprocess(x: keras.KerasTensor) -> keras.KerasTensor:
    """VGG16's preprocessing as one frozen Dense layer (built-in, so the saved model needs no custom code).

    The kernel is 255 x the RGB->BGR permutation, the bias minus the channel means.
    """
    layer = layers.Dense(3, trainable=False, name="caffe_preprocess")
    y = layer(x)
    layer.set_weights([255.0 * np.eye(3, dtype="float32")[::-1], -_CAFFE_MEAN_BGR])
    return y


def _tf_preprocess(x: keras.KerasTensor) -> keras.KerasTensor:
    """ResNet50V2/Xception's "tf" mode: [0, 1] -> [-1, 1]."""
    return layers.Rescaling(2.0, offset=-1.0, name="tf_preprocess")(x)


def _application(factory: Callable, preprocess: Callable) -> Callable:
    def backbone(inputs: keras.KerasTensor, weights: str | None) -> keras.KerasTensor:
        base = factory(include_top=False, weights=weights, input_shape=tuple(inputs.shape[1:]))
        return base(preprocess(inputs))

    return backbone


# --- small CPU variants --------------------------------------------------------------------------

_BN_MOMENTUM = 0.9
"""Faster-moving batch statistics than Keras' 0.99: a short training run has few steps."""


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, name=name)


def _conv_bn_relu(x, filters: int, name: str, strides: int = 1):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _stem(inputs):
    """Shared by the small models: per-image standardisation, then one full-resolution conv + pool.

    Standardising each image (zero mean, unit variance over its pixels) gives faint and bright
    galaxies the same contrast; the first convolution sees thin features (bars a few pixels wide)
    before any downsampling, and is narrow so it stays cheap.
    """
    x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, name="standardise")(inputs)
    x = _conv_bn_relu(x, 16, "stem")
    return layers.MaxPooling2D(name="stem_pool")(x)


def _vgg_small(inputs, weights=None):
    """A plain VGG-style stack: 3x3 convolutions and max pooling, widths doubling per stage."""
    x = _stem(inputs)
    for stage, (filters, n_convs) in enumerate(((32, 1), (64, 1), (128, 1)), start=1):
        for i in range(n_convs):
            x = _conv_bn_relu(x, filters, f"block{stage}{'ab'[i]}")
        x = layers.MaxPooling2D(name=f"block{stage}_pool")(x)
    return _conv_bn_relu(x, 160, "block4a")


def _projection(x, filters: int, strides: int, name: str):
    """The shortcut of a block that downsamples or widens: average pooling, then a 1x1 conv.

    A strided 1x1 convolution (the textbook projection) reads only one pixel in ``strides**2``;
    its input gradient is zero elsewhere, which prints a grid on saliency maps. Pooling first
    (as in ResNet-D) lets every pixel through.
    """
    if strides != 1:
        # "same" rounds odd sides up, as the main paths' pooling does.
        x = layers.AveragePooling2D(strides, padding="same", name=f"{name}_shortcut_pool")(x)
    return layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_shortcut")(x)


def _preact_block(x, filters: int, strides: int, name: str):
    """ResNet-v2 basic block: BN-ReLU-conv-BN-ReLU-conv plus an identity (or projection) shortcut.

    Downsampling blocks average-pool after the first convolution instead of striding it: a strided
    3x3 convolution reaches some input pixels through one window and others through four, which
    prints a checkerboard on input gradients (saliency maps).
    """
    pre = _bn(f"{name}_preact_bn")(x)
    pre = layers.Activation("relu", name=f"{name}_preact_relu")(pre)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _projection(pre, filters, strides, name)
    else:
        shortcut = x
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(pre)
    if strides != 1:
        y = layers.AveragePooling2D(strides, padding="same", name=f"{name}_pool")(y)
    y = _bn(f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def _resnet_small(inputs, weights=None):
    """Pre-activation residual network: the stem, a conv and pooling, then one residual block per stage."""
    x = layers.Conv2D(32, 3, padding="same", name="stage0_conv")(_stem(inputs))
    x = layers.AveragePooling2D(2, padding="same", name="stage0_pool")(x)
    for stage, (filters, strides) in enumerate(((32, 1), (64, 2), (128, 2)), start=1):
        x = _preact_block(x, filters, strides, f"stage{stage}")
    x = _bn("post_bn")(x)
    return layers.Activation("relu", name="post_relu")(x)


def _sep_bn(x, filters: int, name: str, relu_first: bool = True):
    if relu_first:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv")(x)
    return _bn(f"{name}_bn")(x)


def _xception_small(inputs, weights=None):
    """Xception in miniature: the stem, depthwise-separable residual blocks, an identity middle block."""
    x = _conv_bn_relu(_stem(inputs), 32, "entry")
    x = layers.MaxPooling2D(name="entry_pool")(x)
    for i, filters in enumerate((64, 128, 256), start=1):
        # Downsampling block: two separable convs + max pool, pooled projection shortcut.
        shortcut = _bn(f"down{i}_proj_bn")(_projection(x, filters, 2, f"down{i}"))
        y = _sep_bn(x, filters, f"down{i}a", relu_first=i > 1)
        y = _sep_bn(y, filters, f"down{i}b")
        y = layers.MaxPooling2D(3, strides=2, padding="same", name=f"down{i}_pool")(y)
        x = layers.Add(name=f"down{i}_add")([shortcut, y])
    y = _sep_bn(x, 256, "middle_a")
    y = _sep_bn(y, 256, "middle_b")
    x = layers.Add(name="middle_add")([x, y])
    return layers.Activation("relu", name="exit_relu")(x)


_BACKBONES: dict[str, Callable] = {
    "vgg16": _application(keras.applications.VGG16, _caffe_preprocess),
    "resnet50v2": _application(keras.applications.ResNet50V2, _tf_preprocess),
    "xception": _application(keras.applications.Xception, _tf_preprocess),
    "vgg_small": _vgg_small,
    "resnet_small": _resnet_small,
    "xception_small": _xception_small,
}
