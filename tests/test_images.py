"""The tf.data pipeline: decoding, centre crop, ranges, augmentation (train only), determinism."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from galaxy_xai.config import ImagesConfig
from galaxy_xai.data.images import load_images, make_dataset

NO_AUGMENTATION = dict(rotation=False, flip=False, shift=0.0, brightness_min=1.0, brightness_max=1.0)


def _write(path, array, quality=95):
    Image.fromarray(array).save(path, format="JPEG", quality=quality)
    return str(path)


def _square(px=424, inner=212, value=255):
    """Black image with a bright centred square of side ``inner``."""
    a = np.zeros((px, px, 3), np.uint8)
    lo = (px - inner) // 2
    a[lo : lo + inner, lo : lo + inner] = value
    return a


@pytest.fixture(scope="module")
def noise_paths(tmp_path_factory):
    """Six 424-px JPEGs of smooth random structure (so augmentations change pixel values)."""
    folder = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((424, 424), Image.Resampling.BICUBIC))
        paths.append(_write(folder / f"{1000 + i}.jpg", image))
    return paths


def test_load_images_shape_dtype_range(noise_paths):
    images = load_images(noise_paths, ImagesConfig(size_px=40))
    assert images.shape == (6, 40, 40, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05


def test_centre_crop_in_424_px_units(tmp_path):
    full = _write(tmp_path / "full.jpg", _square())
    # The same field of view at half resolution: crop_px is in 424-px pixels, so it scales.
    half = _write(tmp_path / "half.jpg", _square(px=212, inner=106))
    cropped = load_images([full, half], ImagesConfig(crop_px=212, size_px=32))
    assert cropped.min() > 0.95, "the crop should be exactly the bright square"
    whole = load_images([full], ImagesConfig(crop_px=None, size_px=32))[0].mean(axis=-1)
    # Without the crop the square covers the central half of the side: a quarter of the area.
    assert whole[16, 16] > 0.95 and whole[0, 0] < 0.05 and whole[:, 0].max() < 0.05
    assert abs((whole > 0.5).mean() - 0.25) < 0.02
    larger = load_images([full], ImagesConfig(crop_px=318, size_px=30))[0].mean(axis=-1)
    assert larger[15, 15] > 0.95 and larger[0, 0] < 0.05  # a 318-px crop shows dark margins


def test_crop_matches_numpy_reference(noise_paths):
    """decode_and_crop_jpeg + antialiased resize == PIL decode, slice, same resize (JPEG decoders agree)."""
    import tensorflow as tf

    reference = np.asarray(Image.open(noise_paths[0]).convert("RGB"))[106:318, 106:318].astype("float32")
    reference = tf.image.resize(reference, (53, 53), antialias=True).numpy() / 255.0
    ours = load_images(noise_paths[:1], ImagesConfig(crop_px=212, size_px=53))[0]
    assert np.abs(ours - reference).max() < 3 / 255


def test_greyscale_jpeg_becomes_rgb(tmp_path):
    grey = np.full((424, 424), 128, np.uint8)
    path = str(tmp_path / "grey.jpg")
    Image.fromarray(grey).save(path)
    image = load_images([path], ImagesConfig(size_px=16))
    assert image.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(image, 128 / 255, atol=2 / 255)


def _epoch(ds):
    batches = list(ds.as_numpy_iterator())
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_evaluation_pipeline_is_load_images(noise_paths):
    cfg = ImagesConfig(size_px=24)
    targets = np.arange(6, dtype="float32")[:, None]
    images, y = _epoch(make_dataset(noise_paths, cfg, targets, batch_size=4))
    np.testing.assert_array_equal(images, load_images(noise_paths, cfg))
    np.testing.assert_array_equal(y, targets)


def test_training_shuffles_pairs_and_augments_only_when_training(noise_paths):
    clean = load_images(noise_paths, ImagesConfig(size_px=24))
    targets = np.arange(6, dtype="float32")[:, None]
    off = ImagesConfig(size_px=24, **NO_AUGMENTATION)
    images, y = _epoch(make_dataset(noise_paths, off, targets, batch_size=4, training=True, seed=1))
    order = y[:, 0].astype(int)
    assert sorted(order) == list(range(6)) and list(order) != list(range(6))
    np.testing.assert_allclose(
        images, clean[order], atol=1e-6
    )  # identity transform: image stays with its target
    augmented, y = _epoch(
        make_dataset(noise_paths, ImagesConfig(size_px=24), targets, batch_size=4, training=True, seed=1)
    )
    assert augmented.min() >= 0 and augmented.max() <= 1
    assert np.abs(augmented - clean[y[:, 0].astype(int)]).mean() > 0.02


def test_flips_are_exact_mirror_images(noise_paths):
    cfg = ImagesConfig(size_px=24, **{**NO_AUGMENTATION, "flip": True})
    clean = load_images(noise_paths, cfg)
    images, y = _epoch(
        make_dataset(noise_paths, cfg, np.arange(6.0)[:, None], batch_size=6, training=True, seed=5)
    )
    kinds = set()
    for image, i in zip(images, y[:, 0].astype(int), strict=True):
        src = clean[i]
        candidates = {"none": src, "lr": src[:, ::-1], "ud": src[::-1], "both": src[::-1, ::-1]}
        match = [k for k, c in candidates.items() if np.abs(image - c).max() < 1e-5]
        assert match, f"image {i} is not a flip of its source"
        kinds.add(match[0])
    assert len(kinds) >= 2, "six images should not all get the same flip"


def test_brightness_is_a_clipped_factor_in_range(noise_paths):
    cfg = ImagesConfig(size_px=24, **{**NO_AUGMENTATION, "brightness_min": 0.7, "brightness_max": 1.3})
    clean = load_images(noise_paths, cfg)
    images, y = _epoch(
        make_dataset(noise_paths, cfg, np.arange(6.0)[:, None], batch_size=3, training=True, seed=2)
    )
    for image, i in zip(images, y[:, 0].astype(int), strict=True):
        src = clean[i]
        unclipped = (image < 1) & (src > 0.05)
        factor = np.median(image[unclipped] / src[unclipped])
        assert 0.7 - 1e-4 <= factor <= 1.3 + 1e-4
        np.testing.assert_allclose(image, np.clip(src * factor, 0, 1), atol=1e-5)


def test_rotation_keeps_centre_and_fills_by_reflection(tmp_path):
    """A bright centred disk stays put under any rotation; reflection fill leaves no black corners."""
    yy, xx = np.mgrid[:424, :424] - 211.5
    image = np.where((xx**2 + yy**2 < 80**2)[..., None], 230, 60).astype(np.uint8).repeat(3, axis=-1)
    paths = [_write(tmp_path / f"{i}.jpg", image) for i in range(4)]
    cfg = ImagesConfig(crop_px=None, size_px=32, **{**NO_AUGMENTATION, "rotation": True})
    clean = load_images(paths[:1], cfg)[0]
    images, _ = _epoch(make_dataset(paths, cfg, np.zeros((4, 1)), batch_size=4, training=True, seed=3))
    for rotated in images:
        np.testing.assert_allclose(rotated[13:19, 13:19], clean[13:19, 13:19], atol=0.02)
        assert rotated[[0, 0, -1, -1], [0, -1, 0, -1]].min() > 0.15  # no zero fill


def test_augmentation_is_seeded_and_differs_per_epoch(noise_paths):
    cfg = ImagesConfig(size_px=24)
    targets = np.zeros((6, 1))

    def two_epochs(seed):
        ds = make_dataset(noise_paths, cfg, targets, batch_size=4, training=True, seed=seed)
        return _epoch(ds)[0], _epoch(ds)[0]

    a1, a2 = two_epochs(7)
    b1, b2 = two_epochs(7)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert np.abs(a1 - a2).mean() > 0.01, "each epoch must draw new augmentations"
    assert np.abs(two_epochs(8)[0] - a1).mean() > 0.01


def test_dataset_errors(noise_paths):
    with pytest.raises(ValueError, match="6 paths but 5 target rows"):
        make_dataset(noise_paths, ImagesConfig(), np.zeros((5, 37)), batch_size=2)
    with pytest.raises(ValueError, match="no image paths"):
        make_dataset([], ImagesConfig(), batch_size=2)


def test_rotation_turns_the_galaxy_counter_clockwise_before_the_crop(tmp_path):
    """A bar along +x (to the right of the centre only) must point up (-row) after +90 deg."""
    a = np.zeros((424, 424, 3), np.uint8)
    a[206:218, 212:330] = 255  # an arm from the centre to the right, reaching outside a 212-px crop
    path = _write(tmp_path / "arm.jpg", a)
    cfg = ImagesConfig(crop_px=212, size_px=53)
    still = load_images([path], cfg)[0].mean(axis=-1)
    turned = load_images([path], cfg, rotation_deg=90)[0].mean(axis=-1)
    assert still[26, 45] > 0.9 and still[10, 26] < 0.05  # right of centre, nothing above it
    assert turned[10, 26] > 0.9 and turned[26, 45] < 0.05  # now above the centre, nothing right
    np.testing.assert_allclose(turned, np.rot90(still, k=1), atol=0.06)
    half_turn = load_images([path], cfg, rotation_deg=180)[0]
    np.testing.assert_allclose(half_turn, load_images([path], cfg)[0][::-1, ::-1], atol=0.06)


def test_rotation_by_zero_is_the_plain_decode(noise_paths):
    cfg = ImagesConfig(size_px=24)
    np.testing.assert_array_equal(load_images(noise_paths, cfg, rotation_deg=0.0), load_images(noise_paths, cfg))
