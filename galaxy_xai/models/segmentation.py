"""The segmentation reference: a U-Net trained on the true bar masks, its masks and their lengths.

Walmsley & Spindler (2023) segment bars with a U-Net trained on Galaxy Zoo 3D volunteer masks and
reach Pearson r = 0.91 against Hoyle et al.'s lengths: the best system doing the job the saliency
maps are asked to do, so its score is the upper reference beside the control CNN. Here the masks
are the synthetic sky's true bar ellipses (:func:`galaxy_xai.xai.localisation.bar_masks`, the
half-maximum isophote of each bar) of the labelled (morphology) galaxies with a bar; the U-Net
(:mod:`galaxy_xai.models.unet`) learns them and is then measured on the bar catalogue's XAI test galaxies,
which it never saw.

Conventions: images (n, size_px, size_px, 3) float32 in [0, 1] as the models see them; masks and
probabilities (n, map_px, map_px) at the U-Net's output resolution, whose pixel centres are those
of :func:`galaxy_xai.xai.localisation.map_pixel_centres_px424` (the centre crop of ``crop_px`` 424-px
pixels resized to ``map_px``); lengths are full bar lengths, in map pixels or 424-px pixels as
their names say (:func:`galaxy_xai.units.map_px_to_px424`).

Length from a mask (:func:`mask_lengths_map_px`): the probabilities above 0.5, their 8-connected
components, the largest component with a pixel within :data:`CENTRE_RADIUS_MAP_PX` of the galaxy
centre (a bar is centred on its galaxy; a blob on an arm or a neighbour is not the bar), and its
extent along its own principal axis: the span of its pixel centres' projections plus one pixel
(each pixel's own width). A drawn ellipse of length L gives L within a pixel; no such component: NaN.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from galaxy_xai import io, statistics, units
from galaxy_xai.results import evaluation
from galaxy_xai.xai import localisation

MASK_THRESHOLD = 0.5
"""A mask pixel is in the bar when the U-Net's probability is above this."""

CENTRE_RADIUS_MAP_PX = 2.0
"""A component is the bar only if it has a pixel centre within this many map pixels of the galaxy
centre: the four central pixels of an even map (0.71 px away) and their eight neighbours (1.58 px)."""

LENGTHS_COLUMNS = ("objid", "split", "length_px424")
"""Columns of the segment stage's lengths table (plots/segmentation/lengths.csv)."""

CURVE_COLUMNS = ["epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds"]
"""Columns of the U-Net's learning-curve table (epoch counts from 1)."""

_EPSILON = 1.0
"""Smoothing of the soft Dice ratio, in pixels: an empty target and an empty prediction agree (loss 0)."""


# --- targets ---------------------------------------------------------------------------------------
def truth_geometry(ids, truth: pd.DataFrame, set_name: str) -> pd.DataFrame:
    """The true bar of each galaxy ``ids`` (n,) of truth.csv's set ``set_name`` ('training' for the
    labelled galaxies, 'gz2' for the bar catalogue): columns length_px424, axis_ratio, angle_deg, in
    the order of ``ids``, NaN for a galaxy without a bar or absent from the truth table."""
    rows = truth.loc[truth["set"] == set_name].drop_duplicates("id").set_index("id")
    found = rows.reindex(np.asarray(ids, dtype=np.int64))
    return pd.DataFrame(
        {
            "length_px424": found["bar_length_px424"].to_numpy(dtype=np.float64),
            "axis_ratio": found["bar_axis_ratio"].to_numpy(dtype=np.float64),
            "angle_deg": found["bar_angle_deg"].to_numpy(dtype=np.float64),
        }
    )


def training_split(barred, in_train) -> tuple[np.ndarray, np.ndarray]:
    """Which labelled galaxies (n,) the U-Net learns from and which stop it early: (learn, monitor) bool (n,).

    ``barred`` (n,) bool: the galaxy has a true bar; ``in_train`` (n,) bool: it is in the morphology
    train split. The barred train galaxies learn, the barred others monitor. A sky too small to leave
    a barred galaxy outside the train split (the tests' tiny ones) monitors its last barred train
    galaxy instead, so that both sets are non-empty whenever there are two barred galaxies; ValueError
    when there are fewer.
    """
    barred, in_train = np.asarray(barred, dtype=bool), np.asarray(in_train, dtype=bool)
    learn, monitor = barred & in_train, barred & ~in_train
    if not monitor.any() and learn.sum() >= 2:
        last = np.flatnonzero(learn)[-1]
        learn[last], monitor[last] = False, True
    if not learn.any() or not monitor.any():
        raise ValueError(
            f"{int(barred.sum())} barred labelled galaxies: the U-Net needs two (one to learn from, one to stop early)"
        )
    return learn, monitor


def target_masks(geometry: pd.DataFrame, map_px: int, crop_px: int | None) -> np.ndarray:
    """The true bar masks of :func:`truth_geometry` rows at the U-Net's resolution: (n, map_px, map_px) bool
    (empty without a bar)."""
    return localisation.bar_masks(
        geometry["length_px424"], geometry["axis_ratio"], geometry["angle_deg"], map_px, crop_px
    )


# --- lengths ---------------------------------------------------------------------------------------
def _centre_offsets_map_px(map_px: int, crop_px: int | None) -> np.ndarray:
    """Offset of each map row's (or column's) pixel centre from the galaxy centre, in map pixels: (map_px,)."""
    to_map = float(units.px424_to_map_px(1.0, map_px, crop_px))
    return (localisation.map_pixel_centres_px424(map_px, crop_px) - localisation.IMAGE_CENTRE_PX424) * to_map


def bar_components(probabilities, crop_px: int | None, threshold: float = MASK_THRESHOLD,
                   centre_radius_map_px: float = CENTRE_RADIUS_MAP_PX) -> np.ndarray:  # fmt: skip
    """The bar of each mask: the largest 8-connected component above ``threshold`` with a pixel centre
    within ``centre_radius_map_px`` of the galaxy centre. (n, H, W) probabilities -> (n, H, W) bool
    (empty where no component reaches the centre)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 3 or p.shape[1] != p.shape[2]:
        raise ValueError(f"bar_components: expected square masks (n, H, H), got shape {p.shape}")
    n, side = p.shape[0], p.shape[1]
    # One labelling of the whole stack: a structure with no links between slices keeps images apart.
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    labels, n_labels = ndimage.label(p > threshold, structure=structure)
    offset = _centre_offsets_map_px(side, crop_px)
    central = offset[:, None] ** 2 + offset[None, :] ** 2 <= centre_radius_map_px**2
    sizes = np.bincount(labels.ravel(), minlength=n_labels + 1)
    touches = np.zeros(n_labels + 1, dtype=bool)
    touches[labels[:, central]] = True
    touches[0] = False
    image_of = np.zeros(n_labels + 1, dtype=np.int64)
    image_of[labels.ravel()] = np.repeat(np.arange(n), side * side)
    # The largest central component per image: the maximum of size * (n_labels + 1) + label.
    key = sizes * (n_labels + 1) + np.arange(n_labels + 1)
    best = np.full(n, -1, dtype=np.int64)
    candidates = np.flatnonzero(touches)
    np.maximum.at(best, image_of[candidates], key[candidates])
    best_label = np.where(best >= 0, best % (n_labels + 1), -1)
    return labels == best_label[:, None, None]


def mask_lengths_map_px(probabilities, crop_px: int | None, threshold: float = MASK_THRESHOLD,
                        centre_radius_map_px: float = CENTRE_RADIUS_MAP_PX) -> np.ndarray:  # fmt: skip
    """Full bar length of each mask in map pixels: (n, H, H) probabilities -> (n,) float, NaN without a bar.

    The extent of :func:`bar_components`' component along its principal axis (the major axis of its
    pixel centres' second moments): max minus min projection, plus one pixel for the pixels' own width.
    ``crop_px`` places the galaxy centre (it only matters for the centre test).
    """
    bar = bar_components(probabilities, crop_px, threshold, centre_radius_map_px)
    side = bar.shape[1]
    offset = _centre_offsets_map_px(side, crop_px)
    rows = np.broadcast_to(offset[None, :, None], bar.shape)
    cols = np.broadcast_to(offset[None, None, :], bar.shape)
    count = bar.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_r = np.where(bar, rows, 0).sum(axis=(1, 2)) / count
        mean_c = np.where(bar, cols, 0).sum(axis=(1, 2)) / count
        dr, dc = rows - mean_r[:, None, None], cols - mean_c[:, None, None]
        s_rr = np.where(bar, dr * dr, 0).sum(axis=(1, 2))
        s_cc = np.where(bar, dc * dc, 0).sum(axis=(1, 2))
        s_rc = np.where(bar, dr * dc, 0).sum(axis=(1, 2))
    alpha = 0.5 * np.arctan2(2 * s_rc, s_rr - s_cc)  # the major axis: (cos alpha, sin alpha) in (row, col)
    along = rows * np.cos(alpha)[:, None, None] + cols * np.sin(alpha)[:, None, None]
    top = np.where(bar, along, -np.inf).max(axis=(1, 2))
    bottom = np.where(bar, along, np.inf).min(axis=(1, 2))
    return np.where(count > 0, top - bottom + 1.0, np.nan)


def mask_lengths_px424(probabilities, crop_px: int | None, **kwargs) -> np.ndarray:
    """:func:`mask_lengths_map_px` converted to 424-px pixels (the map side is the masks' side): (n,)."""
    side = np.shape(probabilities)[-1]
    return units.map_px_to_px424(mask_lengths_map_px(probabilities, crop_px, **kwargs), side, crop_px)


def dice_scores(predicted, true) -> np.ndarray:
    """Dice coefficient 2 |A n B| / (|A| + |B|) of each pair of boolean masks (n, H, W): (n,), NaN when both are empty."""
    a, b = np.asarray(predicted, dtype=bool), np.asarray(true, dtype=bool)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"dice_scores: expected two (n, H, W) stacks of one shape, got {a.shape}, {b.shape}")
    overlap = (a & b).sum(axis=(1, 2))
    total = a.sum(axis=(1, 2)) + b.sum(axis=(1, 2))
    return np.divide(2.0 * overlap, total, out=np.full(len(a), np.nan), where=total > 0)


# --- the lengths table -------------------------------------------------------------------------------
def lengths_table(objids, split, length_px424) -> pd.DataFrame:
    """The stage's lengths table (:data:`LENGTHS_COLUMNS`), sorted by objid; (n,) columns."""
    table = pd.DataFrame({"objid": np.asarray(objids, dtype=np.int64), "split": np.asarray(split, dtype=object),
                          "length_px424": np.asarray(length_px424, dtype=np.float64)})  # fmt: skip
    return table.sort_values("objid", kind="stable").reset_index(drop=True)


def read_lengths(path: str | Path, objids) -> np.ndarray:
    """The segmentation lengths (424-px pixels) of ``objids`` (n,) from the segment stage's table: (n,),
    NaN where a galaxy is absent or was not measured. ValueError naming the file on missing columns."""
    path = Path(path)
    table = io.read_csv(path, "the segment stage's lengths table (plots/segmentation/lengths.csv)")
    missing = [c for c in LENGTHS_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(LENGTHS_COLUMNS)}")
    if table["objid"].duplicated().any():
        raise ValueError(f"{path}: objid {table.loc[table['objid'].duplicated(), 'objid'].iloc[0]} repeated")
    lengths = pd.to_numeric(table["length_px424"], errors="coerce").to_numpy(dtype=np.float64)
    by_objid = pd.Series(lengths, index=table["objid"].to_numpy(dtype=np.int64))
    return by_objid.reindex(np.asarray(objids, dtype=np.int64)).to_numpy(dtype=np.float64)


def test_scores(length_px424, test_rows: pd.DataFrame, dice, n_boot: int, rng: np.random.Generator) -> dict:
    """The segmentation lengths (n,) of the XAI test galaxies ``test_rows`` (:func:`galaxy_xai.data.tables.xai_rows`
    rows, with ``true_length_px424`` on the synthetic sky) scored as the other length rows are.

    :func:`galaxy_xai.results.evaluation.length_scores` (against the catalogue and the truth, with the accuracy
    scores), then ``spearman_truth`` and ``pearson_truth`` (image units, the true length) with their
    ``_ci95`` 95% bootstrap intervals (``n_boot`` resamples from ``rng``), and the mean Dice of the
    masks ``dice`` (n,) with its interval.
    """
    measured = np.asarray(length_px424, dtype=np.float64)
    scores = evaluation.length_scores(measured, test_rows, n_boot, rng)
    truth = evaluation.true_lengths(test_rows)
    known = np.isfinite(measured) & np.isfinite(truth)
    names = statistics.score_keys("spearman_truth", "pearson_truth")
    if known.sum() >= 2:
        scores.update(statistics.correlation_scores(measured[known], truth[known], None, names, n_boot, rng))
    else:
        scores.update({k: v for key in names for k, v in ((key, np.nan), (f"{key}_ci95", [np.nan, np.nan]))})
    dice_interval = localisation.mean_intervals({"dice": np.asarray(dice, dtype=np.float64)}, n_boot, rng)["dice"]
    scores.update(mean_dice=dice_interval["mean"], mean_dice_ci95=dice_interval["ci95"])
    return scores


# --- training (TensorFlow from here on, imported inside: the readers above stay light) -----------------
def dice_bce_loss(y_true, y_pred):
    """Soft Dice loss plus binary cross-entropy per image: (batch, H, W, 1) targets and probabilities -> (batch,).

    The Dice term weighs the bar against the much larger background (a bar covers a few per cent of
    the mask); the cross-entropy gives every pixel a gradient from the first step.
    """
    import keras

    y_true = keras.ops.cast(y_true, "float32")
    overlap = keras.ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = keras.ops.sum(y_true, axis=(1, 2, 3)) + keras.ops.sum(y_pred, axis=(1, 2, 3))
    dice_loss = 1.0 - (2.0 * overlap + _EPSILON) / (total + _EPSILON)
    bce = keras.ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    return dice_loss + bce


def soft_dice(y_true, y_pred):
    """Dice of the thresholded prediction per image (a metric): (batch, H, W, 1) -> (batch,); 1 when both are empty."""
    import keras

    y_true = keras.ops.cast(y_true, "float32")
    hard = keras.ops.cast(y_pred > MASK_THRESHOLD, "float32")
    overlap = keras.ops.sum(y_true * hard, axis=(1, 2, 3))
    total = keras.ops.sum(y_true, axis=(1, 2, 3)) + keras.ops.sum(hard, axis=(1, 2, 3))
    return (2.0 * overlap + 1e-6) / (total + 1e-6)


def _dihedral(image, mask, seed):
    """The same random quarter turn and flip of one image (H, W, C) and its mask (h, w, 1): exact on the
    pixel grid about the centre, where the galaxy and its bar are centred."""
    import tensorflow as tf

    k = tf.random.stateless_uniform((), seed, 0, 4, dtype=tf.int32)
    flip = tf.random.stateless_uniform((), seed[::-1], 0, 2, dtype=tf.int32) > 0
    image, mask = tf.image.rot90(image, k), tf.image.rot90(mask, k)
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    mask = tf.cond(flip, lambda: tf.image.flip_left_right(mask), lambda: mask)
    return image, mask


def mask_dataset(images: np.ndarray, masks: np.ndarray, batch_size: int, seed: int = 0, training: bool = False):
    """Batches of (images (b, S, S, C), masks (b, h, h, 1)) float32 in order; with ``training``, shuffled
    each epoch from ``seed`` and each pair turned and flipped alike (:func:`_dihedral`), seeded per element."""
    import tensorflow as tf

    pairs = tf.data.Dataset.from_tensor_slices((images.astype("float32"), masks[..., None].astype("float32")))
    if training:
        pairs = pairs.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        pairs = tf.data.Dataset.zip(pairs, seeds).map(lambda pair, s: _dihedral(pair[0], pair[1], s))
    return pairs.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train_unet(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    filters: Sequence[int],
    downsample: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    stop_patience: int,
    seed: int,
    live_dir: str | Path | None = None,
    log: logging.Logger | None = None,
):
    """Train a U-Net (:func:`galaxy_xai.models.unet.build_unet`) on (images (n, S, S, 3), masks (n, h, h) bool) pairs.

    Adam at ``learning_rate``, :func:`dice_bce_loss`, the training pairs turned and flipped at random;
    EarlyStopping on the validation loss (``stop_patience`` epochs, best weights restored). Keras,
    TensorFlow and the data order are seeded from ``seed`` and ops are deterministic, so a rerun gives
    the same weights. One log line per epoch; DVCLive steps in ``live_dir`` when given.
    Returns (model, learning curve (:data:`CURVE_COLUMNS`), summary dict).
    """
    import keras
    import tensorflow as tf

    from galaxy_xai.models.training import open_live  # the morphology models' DVCLive set-up, same fallbacks
    from galaxy_xai.models.unet import build_unet

    log = log or logging.getLogger(__name__)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    (x_train, y_train), (x_val, y_val) = train, val
    model = build_unet(x_train.shape[1], filters, downsample, x_train.shape[-1], seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=dice_bce_loss, metrics=[soft_dice])
    log.info("U-Net %s: %d parameters, %d training and %d validation masks of %d px", list(filters),
             model.count_params(), len(x_train), len(x_val), y_train.shape[1])  # fmt: skip
    rows: list[dict] = []
    live = open_live(Path(live_dir) if live_dir is not None else None, log)
    began = [0.0]

    def on_epoch_end(epoch, logs):
        row = {"epoch": epoch + 1, "train_loss": float(logs["loss"]), "val_loss": float(logs["val_loss"]),
               "val_dice": float(logs["val_soft_dice"]), "lr": float(learning_rate),
               "seconds": round(time.perf_counter() - began[0], 3)}  # fmt: skip
        rows.append(row)
        log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val Dice %.3f (%.1f s)", row["epoch"], epochs,
                 row["train_loss"], row["val_loss"], row["val_dice"], row["seconds"])  # fmt: skip
        if live is not None:
            for key in ("train_loss", "val_loss", "val_dice"):
                live.log_metric(key, row[key])
            live.next_step()

    callbacks = [
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: began.__setitem__(0, time.perf_counter()),
                                       on_epoch_end=on_epoch_end),  # fmt: skip
        keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=stop_patience, restore_best_weights=True),
    ]
    start = time.perf_counter()
    try:
        model.fit(
            mask_dataset(x_train, y_train, batch_size, seed, training=True),
            validation_data=mask_dataset(x_val, y_val, batch_size),
            epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0,
        )  # fmt: skip
    finally:
        if live is not None:
            live.end()
    seconds = time.perf_counter() - start
    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    summary = _training_summary(curve, int(model.count_params()), seconds)
    log.info("U-Net: %d epochs in %.0f s, best val loss %.4f (Dice %.3f) at epoch %d (weights restored)",
             summary["epochs_run"], seconds, summary["best_val_loss"], summary["best_val_dice"], summary["best_epoch"])  # fmt: skip
    return model, curve, summary


def _training_summary(curve: pd.DataFrame, parameters: int, seconds: float) -> dict:
    """The U-Net's training in numbers: its size, epochs run and the best epoch's validation loss and Dice."""
    best = int(curve["val_loss"].idxmin())
    return {
        "parameters": parameters,
        "epochs_run": len(curve),
        "best_epoch": int(curve["epoch"].iloc[best]),
        "best_val_loss": float(curve["val_loss"].iloc[best]),
        "best_val_dice": float(curve["val_dice"].iloc[best]),
        "train_seconds": round(seconds, 2),
    }


def predict_masks(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The U-Net's bar probabilities for ``images`` (n, S, S, C): (n, map_px, map_px) float32 in [0, 1]."""
    return np.asarray(model.predict(images.astype("float32"), batch_size=batch_size, verbose=0), dtype="float32")[..., 0]
