"""A small Keras U-Net (Ronneberger, Fischer & Brox 2015) that maps a galaxy image to a bar mask.

The segmentation reference (stage ``segment``, :mod:`galaxy_xai.models.segmentation`) follows Walmsley &
Spindler (2023), who segment bars with a U-Net trained on Galaxy Zoo 3D volunteer masks. Here the
network is small enough for a CPU: ``filters`` gives the channels of each level, shallowest first;
every level after the first halves the side (max pooling) on the way down and doubles it back
(transposed convolution, then the level's skip connection) on the way up.

Shapes and units:

* input: (batch, size_px, size_px, channels) float32 in [0, 1], the models' image
  (:func:`galaxy_xai.data.images.load_images`: the centre crop of ``images.crop_px`` 424-px pixels
  resized to ``images.size_px``);
* output: (batch, map_px, map_px, 1) float32 in [0, 1], the probability that each mask pixel lies in
  the bar, with ``map_px = size_px / downsample`` rounded down to a multiple of 2^(levels - 1)
  (:func:`map_side_px`): the input is average-pooled by ``downsample`` first (resized, antialiased,
  when that does not divide evenly), so mask pixel i has its centre where a ``map_px``-side resize
  of the crop puts it (the geometry of :func:`galaxy_xai.xai.localisation.bar_masks`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


def map_side_px(size_px: int, downsample: int, levels: int) -> int:
    """The mask side in pixels for a ``size_px`` input: ``size_px / downsample`` rounded down to a
    multiple of 2^(levels - 1), so that every pooling halves it evenly. ValueError when that is below
    one pixel at the deepest level."""
    step = 2 ** (levels - 1)
    side = (size_px // downsample) // step * step if downsample >= 1 and levels >= 1 else 0
    if side < step or side < 1:
        raise ValueError(
            f"U-Net: size_px = {size_px} / downsample = {downsample} is below 2^(levels - 1) = {step} "
            f"({levels} levels): the deepest level would have no pixel"
        )
    return side


def _conv_block(x, filters: int, seed: int, name: str):
    """Two 3 x 3 convolutions with ReLU, 'same' padding: the side is kept."""
    for i in range(2):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu",
            kernel_initializer=keras.initializers.HeNormal(seed=seed + i), name=f"{name}_conv{i}",
        )(x)  # fmt: skip
    return x


def build_unet(
    size_px: int, filters: Sequence[int] = (16, 32, 64), downsample: int = 2, channels: int = 3, seed: int = 0
) -> keras.Model:
    """An uncompiled U-Net: (batch, size_px, size_px, channels) in [0, 1] -> (batch, map_px, map_px, 1) in [0, 1].

    ``filters`` (k levels, shallowest first), ``downsample`` (input pixels per mask pixel, a side);
    ``map_px``: :func:`map_side_px`. Weights are
    drawn from ``seed``, so two builds with one seed are identical.
    """
    filters = [int(f) for f in filters]
    if not filters or min(filters) < 1:
        raise ValueError(f"U-Net: filters = {filters}: expected one or more positive channel counts")
    map_px = map_side_px(size_px, downsample, len(filters))
    inputs = keras.Input((size_px, size_px, channels), name="image")
    if map_px * downsample == size_px:
        x = keras.layers.AveragePooling2D(downsample, name="to_map_resolution")(inputs) if downsample > 1 else inputs
    else:  # e.g. 71 px: an antialiased resize keeps the half-pixel-centre geometry of bar_masks at map_px
        x = keras.layers.Resizing(map_px, map_px, interpolation="bilinear", antialias=True, name="to_map_resolution")(inputs)
    skips = []
    for level, f in enumerate(filters[:-1]):
        x = _conv_block(x, f, seed + 10 * level, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _conv_block(x, filters[-1], seed + 10 * len(filters), "bottom")
    for level in reversed(range(len(filters) - 1)):
        x = keras.layers.Conv2DTranspose(
            filters[level], 2, strides=2, padding="same",
            kernel_initializer=keras.initializers.HeNormal(seed=seed + 100 + level), name=f"up{level}",
        )(x)  # fmt: skip
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, filters[level], seed + 200 + 10 * level, f"dec{level}")
    outputs = keras.layers.Conv2D(
        1, 1, activation="sigmoid", kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 999), name="mask"
    )(x)
    return keras.Model(inputs, outputs, name="unet")
