"""JPEG files -> model inputs: one tf.data pipeline for training, prediction and explaining.

Decoding is the same for every caller (:func:`decode_image`): decode the JPEG, take an optional
centre crop given in pixels of the 424-px Galaxy Zoo frame, resize (antialiased) to the model's
side and round to uint8. The uint8 images are what is cached, so an epoch never re-decodes and
the cache takes a quarter of the memory of float32; models see ``uint8 / 255`` (float32 in
[0, 1]).

Training batches are augmented as in the paper (rotation 0-360 deg with reflection fill,
horizontal/vertical flips, small shifts, brightness x [0.7, 1.3]) with one projective transform
per image, drawn with stateless random ops from a per-batch seed. The seeds come from a seeded
``tf.data.Dataset.random`` that is re-randomised each epoch, so every epoch differs, and the
whole sequence of epochs is a function of the configured seed only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from galaxy_xai.config import ImagesConfig
from galaxy_xai.units import IMAGE_PX  # ImagesConfig.crop_px is given in pixels of this frame

_PREDICT_BATCH = 64


def decode_image(path: tf.Tensor, crop_px: int | None, size_px: int, rotation_deg: float = 0.0) -> tf.Tensor:
    """Read one JPEG: centre crop, resize to ``(size_px, size_px, 3)``, round to uint8.

    ``crop_px`` is the crop side in 424-px pixels (scaled to the file's actual size, so a
    downsampled copy of the data gives the same field of view); ``None`` keeps the whole image.
    Grey-scale JPEGs are expanded to RGB. ``rotation_deg`` (counter-clockwise, degrees) rotates
    the whole decoded image about its centre (bilinear, reflection fill) before the crop: the
    rotation-stability check sees the galaxy turned, with real pixels in the crop's corners.
    """
    data = tf.io.read_file(path)
    if crop_px is None and rotation_deg == 0:
        image = tf.io.decode_jpeg(data, channels=3)
    elif rotation_deg == 0:
        # Only the crop window is decoded: cheaper than decoding all 424 x 424 pixels.
        image = tf.io.decode_and_crop_jpeg(data, _crop_window(tf.io.extract_jpeg_shape(data), crop_px), channels=3)
    else:
        image = _rotate(tf.io.decode_jpeg(data, channels=3), rotation_deg)
        if crop_px is not None:
            window = _crop_window(tf.shape(image), crop_px)
            image = tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])
    image = tf.image.resize(image, (size_px, size_px), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _crop_window(shape: tf.Tensor, crop_px: int) -> tf.Tensor:
    """[top, left, side, side] of the centre crop of ``crop_px`` 424-px pixels in an image of ``shape``."""
    height, width = shape[0], shape[1]
    short_px = tf.minimum(height, width)
    side = tf.cast(tf.round(crop_px / IMAGE_PX * tf.cast(short_px, tf.float32)), tf.int32)
    side = tf.clip_by_value(side, 1, short_px)
    return tf.stack([(height - side) // 2, (width - side) // 2, side, side])


def _rotate(image: tf.Tensor, rotation_deg: float) -> tf.Tensor:
    """A uint8 (H, W, 3) image turned ``rotation_deg`` counter-clockwise about its centre, float32."""
    angle = math.radians(rotation_deg)
    one, zero = tf.ones((1,)), tf.zeros((1,))
    cos, sin = tf.constant([math.cos(angle)], tf.float32), tf.constant([math.sin(angle)], tf.float32)
    return _project(tf.cast(image, tf.float32)[None], cos, sin, one, one, zero, zero)[0]


def _project(
    images: tf.Tensor,
    cos: tf.Tensor,
    sin: tf.Tensor,
    flip_x: tf.Tensor,
    flip_y: tf.Tensor,
    shift_x: tf.Tensor,
    shift_y: tf.Tensor,
) -> tf.Tensor:
    """Turn, flip and shift each image of a float batch (b, H, W, C) about its centre in one
    bilinear interpolation with reflection fill.

    Per-image vectors (b,): ``cos``/``sin`` of the counter-clockwise angle on screen, flips +-1,
    shifts in pixels. Output pixel p samples input pixel c + M (p - c) - shift, with
    M = rotation @ diag(flips) and c the image centre in pixel-index coordinates ((W - 1) / 2 keeps
    an unrotated flip exact; rows grow downwards).
    """
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    m00, m01 = cos * flip_x, -sin * flip_y
    m10, m11 = sin * flip_x, cos * flip_y
    cx, cy = (width - 1) / 2, (height - 1) / 2
    offset_x = cx - m00 * cx - m01 * cy - shift_x
    offset_y = cy - m10 * cx - m11 * cy - shift_y
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([m00, m01, offset_x, m10, m11, offset_y, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def to_unit(images: tf.Tensor) -> tf.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return tf.cast(images, tf.float32) / 255.0


def augment_batch(images: tf.Tensor, images_cfg: ImagesConfig, seed: tf.Tensor) -> tf.Tensor:
    """Randomly rotate, flip, shift and brighten a batch of float images in [0, 1].

    ``images`` has shape (batch, H, W, 3); ``seed`` is a stateless-random seed, shape (2,) int.
    Rotation, flips and shift are combined into one projective transform per image (one
    interpolation, reflection fill); brightness multiplies by a factor drawn uniformly from
    [brightness_min, brightness_max], then the result is clipped to [0, 1].
    """
    batch = tf.shape(images)[0]
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, num=6)

    def uniform(i: int, lo: float, hi: float) -> tf.Tensor:
        return tf.random.stateless_uniform((batch,), seeds[i], lo, hi)

    def sign(i: int) -> tf.Tensor:
        return tf.where(uniform(i, 0.0, 1.0) < 0.5, -1.0, 1.0)

    ones, zeros = tf.ones((batch,)), tf.zeros((batch,))
    angle = uniform(0, 0.0, 2 * math.pi) if images_cfg.rotation else zeros
    flip_x, flip_y = (sign(1), sign(2)) if images_cfg.flip else (ones, ones)
    shift_x = uniform(3, -images_cfg.shift, images_cfg.shift) * width
    shift_y = uniform(4, -images_cfg.shift, images_cfg.shift) * height
    brightness = uniform(5, images_cfg.brightness_min, images_cfg.brightness_max)

    moved = _project(images, tf.cos(angle), tf.sin(angle), flip_x, flip_y, shift_x, shift_y)
    return tf.clip_by_value(moved * brightness[:, None, None, None], 0.0, 1.0)


def make_dataset(
    paths: Sequence[str],
    images_cfg: ImagesConfig,
    targets: np.ndarray | None = None,
    *,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    cache: str | None = "",
    shuffle_buffer: int = 20_000,
    rotation_deg: float = 0.0,
) -> tf.data.Dataset:
    """Batches of ``(images, targets)`` (or images alone) from JPEG ``paths``.

    Images are float32 (batch, size_px, size_px, 3) in [0, 1]; ``targets`` (n, k) are passed
    through as float32. ``training=True`` shuffles (seeded, a new order each epoch) and augments;
    otherwise the order of ``paths`` is kept and images are exactly those of :func:`load_images`.
    The shuffle order and augmentations are a function of ``seed`` and TF's global seed (set it,
    e.g. with ``keras.utils.set_random_seed``, before calling this for reproducible epochs).
    ``cache``: ``""`` caches decoded images in memory, a file name caches on disk (datasets larger
    than memory), ``None`` decodes every epoch. ``rotation_deg`` turns every image before the crop
    (see :func:`decode_image`).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("make_dataset: no image paths given")
    if targets is not None:
        targets = np.asarray(targets, dtype="float32")
        if len(targets) != len(paths):
            raise ValueError(f"make_dataset: {len(paths)} paths but {len(targets)} target rows")

    crop_px, size_px = images_cfg.crop_px, images_cfg.size_px
    ds = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda p: decode_image(p, crop_px, size_px, rotation_deg), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if targets is not None:
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(targets))
    if cache is not None:
        ds = ds.cache(cache)
    if training:
        ds = ds.shuffle(min(len(paths), shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training:
        batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, batch_seeds)

        def augment(element, batch_seed):
            images = element[0] if targets is not None else element
            images = augment_batch(to_unit(images), images_cfg, batch_seed)
            return (images, element[1]) if targets is not None else images

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    elif targets is not None:
        ds = ds.map(lambda images, y: (to_unit(images), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(to_unit, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_images(paths: Sequence[str], images_cfg: ImagesConfig, rotation_deg: float = 0.0) -> np.ndarray:
    """Decode ``paths`` exactly as the model sees them: float32 (n, size_px, size_px, 3) in [0, 1].

    ``rotation_deg`` turns each galaxy counter-clockwise about the image centre before the crop.
    """
    ds = make_dataset(paths, images_cfg, batch_size=_PREDICT_BATCH, cache=None, rotation_deg=rotation_deg)
    return np.concatenate(list(ds.as_numpy_iterator()), axis=0)
