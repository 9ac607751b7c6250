"""Compile and fit any model of the registry on any (images, targets) datasets; predict.

Generic on purpose: the morphology models (37 sigmoid outputs) and the control regressor (one
linear output, bar length) both go through :func:`fit`; :func:`cross_fit` trains one model per fold
and predicts every row with the model that did not see it (the control CNN). The recipe is the paper's: Adam, MSE
loss (for the morphology models optionally weighted towards the bar question: ``train.bar_weight``),
RMSE metric, ReduceLROnPlateau (factor 0.5), EarlyStopping with the best weights restored.
Learning curves are logged one line per epoch, to a TSV that ``dvc plots`` draws, and through
DVCLive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from galaxy_xai import io
from galaxy_xai.config import ImagesConfig, ModelConfig, TrainConfig
from galaxy_xai.data import galaxyzoo
from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS
from galaxy_xai.data.images import make_dataset
from galaxy_xai.distribute import select_strategy
from galaxy_xai.models.architectures import build_model, validate

CURVE_COLUMNS = ["epoch", "train_rmse", "val_rmse", "lr", "seconds"]
"""Columns of the learning-curve table (epoch counts from 1; seconds: wall time of the epoch)."""

_LR_FACTOR = 0.5


@dataclass(frozen=True)
class FitResult:
    """What a training run did; ``curve`` has :data:`CURVE_COLUMNS`, one row per epoch."""

    curve: pd.DataFrame
    best_epoch: int
    best_val_rmse: float
    train_seconds: float
    images_per_s: float

    @property
    def epochs_run(self) -> int:
        return len(self.curve)

    @property
    def final_train_rmse(self) -> float:
        return float(self.curve["train_rmse"].iloc[-1])

    def summary(self) -> dict[str, float | int]:
        """The scalars a metrics file reports."""
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_rmse": self.best_val_rmse,
            "final_train_rmse": self.final_train_rmse,
            "train_seconds": round(self.train_seconds, 2),
            "images_per_s": round(self.images_per_s, 1),
        }


def split_inputs(
    table: pd.DataFrame, split: str, target_columns: Sequence[str], split_column: str = "split"
) -> tuple[list[str], np.ndarray]:
    """Image paths and float32 targets (n, len(target_columns)) of the rows of one split.

    Raises ValueError when the split is empty (training needs every split it asks for) or names
    an image that does not exist (rather than a TensorFlow error in the middle of an epoch).
    """
    rows = table[table[split_column] == split]
    if rows.empty:
        raise ValueError(
            f"no rows with {split_column} == {split!r} (found: {sorted(table[split_column].unique())})"
        )
    paths = rows["image_path"].astype(str).tolist()
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} image(s) of the {split} split not found, e.g. {missing[0]}")
    return paths, rows[list(target_columns)].to_numpy(dtype="float32")


@keras.saving.register_keras_serializable(package="galaxy_xai")
class WeightedMSE(keras.losses.Loss):
    """Squared error weighted per output: sum_i w_i (y_i - p_i)^2 / sum_i w_i over the last axis, so
    that any weights keep the loss's scale (all ones: the MSE). Registered, so a model compiled with
    it loads with ``compile=True``."""

    def __init__(self, output_weights: Sequence[float], name: str = "weighted_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.output_weights = [float(w) for w in output_weights]

    def call(self, y_true, y_pred):
        weights = keras.ops.convert_to_tensor(self.output_weights, dtype="float32")
        error = keras.ops.cast(y_true, "float32") - keras.ops.cast(y_pred, "float32")
        return keras.ops.sum(weights * keras.ops.square(error), axis=-1) / keras.ops.sum(weights)

    def get_config(self) -> dict:
        return {**super().get_config(), "output_weights": self.output_weights}


def morphology_loss(bar_weight: float) -> str | WeightedMSE:
    """The morphology models' loss: the paper's plain ``"mse"`` when ``bar_weight`` is 1, else
    :class:`WeightedMSE` with the bar question's answers (:data:`galaxyzoo.BAR_QUESTION`) weighing
    ``bar_weight`` and the other 35 vote fractions 1 (``train.bar_weight``)."""
    if bar_weight == 1.0:
        return "mse"
    bar = set(galaxyzoo.question_columns(galaxyzoo.BAR_QUESTION))
    return WeightedMSE([bar_weight if column in bar else 1.0 for column in CLASS_COLUMNS])


def model_seed(train_cfg: TrainConfig, model_cfg: ModelConfig) -> int:
    """The seed one model trains with: ``train.seed`` plus the model's ``seed_offset``, so entries of
    one architecture with different offsets form a seed ensemble and offset 0 is the default model."""
    return train_cfg.seed + model_cfg.seed_offset


def _shard_by_batch(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` split over workers batch by batch (each worker reads every image, keeps its share).

    The images are decoded from a list of paths, not read by a file dataset that TensorFlow could
    split by file; saying so avoids its failed attempt and warning under multi_worker.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def open_live(live_dir: Path | None, log: logging.Logger):
    """A DVCLive logger writing into ``live_dir``, or None when disabled or unavailable."""
    if live_dir is None:
        return None
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    try:
        return Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    except SCMError as err:
        # dvclive 3.x asks git for HEAD before checking for commits and fails in a repo without
        # any; the learning-curve TSV still records everything.
        log.warning("DVCLive disabled (%s): commit once to enable it; the TSV curve is still written", err)
        return None


class _CurveLogger(keras.callbacks.Callback):
    """One log line per epoch; the curve table rewritten (atomically) each epoch; DVCLive steps."""

    def __init__(self, log: logging.Logger, max_epochs: int, curve_path: Path | None, live) -> None:
        super().__init__()
        self.log, self.max_epochs, self.curve_path, self.live = log, max_epochs, curve_path, live
        self.rows: list[dict[str, float]] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # Read before ReduceLROnPlateau (a later callback) changes it: the rate this epoch used.
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {
            "epoch": epoch + 1,
            "train_rmse": float(logs["rmse"]),
            "val_rmse": float(logs["val_rmse"]),
            "lr": lr,
            "seconds": round(time.perf_counter() - self._start, 3),
        }
        self.rows.append(row)
        self.log.info(
            "epoch %d/%d: train RMSE %.5f, val RMSE %.5f, lr %.2e (%.1f s)",
            row["epoch"],
            self.max_epochs,
            row["train_rmse"],
            row["val_rmse"],
            lr,
            row["seconds"],
        )
        if self.curve_path is not None:
            io.write_csv(self.curve_path, self.frame(), sep="\t")
        if self.live is not None:
            for key in ("train_rmse", "val_rmse", "lr"):
                self.live.log_metric(key, row[key])
            self.live.next_step()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=CURVE_COLUMNS)


def fit(
    build: Callable[[], keras.Model],
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    *,
    n_train: int,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    seed: int,
    curve_path: str | Path | None = None,
    live_dir: str | Path | None = None,
    deterministic: bool = True,
    loss: str | keras.losses.Loss = "mse",
    log: logging.Logger | None = None,
) -> tuple[keras.Model, FitResult]:
    """Build (inside the distribution strategy), compile with ``loss`` and train a model; return it
    with the best validation weights restored, and a :class:`FitResult`.

    ``build`` returns an uncompiled model; ``train_ds``/``val_ds`` yield batches of (images,
    targets) (see :func:`galaxy_xai.data.images.make_dataset`), whose batches are the global batches
    split over the replicas of ``train_cfg.distribute`` (:mod:`galaxy_xai.distribute`); ``n_train``
    is the number of training images (for images/s). Keras and TF are seeded from ``seed``;
    ``deterministic`` also turns on TF op determinism (process-wide, irreversible), so a rerun
    gives the same weights. Under multi_worker every worker calls this with the same datasets and
    should pass its own ``curve_path`` / ``live_dir`` (:func:`galaxy_xai.distribute.worker_paths`).
    """
    log = log or logging.getLogger(__name__)
    strategy = select_strategy(train_cfg.distribute)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        train_ds, val_ds = _shard_by_batch(train_ds), _shard_by_batch(val_ds)
    model = _compiled(build, strategy, model_cfg.learning_rate, train_cfg.mixed_precision, loss)
    log.info(
        "%s: %d parameters, %d training images, strategy %s (%d replica(s)), %s",
        model.name, model.count_params(), n_train, type(strategy).__name__, strategy.num_replicas_in_sync,
        "mixed_float16" if train_cfg.mixed_precision else "float32",
    )  # fmt: skip
    live = open_live(Path(live_dir) if live_dir is not None else None, log)
    curve = _CurveLogger(log, model_cfg.epochs, Path(curve_path) if curve_path is not None else None, live)
    start = time.perf_counter()
    try:
        model.fit(
            train_ds, validation_data=val_ds, epochs=model_cfg.epochs, callbacks=_callbacks(curve, train_cfg),
            shuffle=False, verbose=0,
        )  # fmt: skip
    finally:
        if live is not None:
            live.end()
    result = _fit_result(curve.frame(), n_train, time.perf_counter() - start)
    log.info(
        "%s: %d epochs in %.0f s (%.0f images/s), best val RMSE %.5f at epoch %d (weights restored)",
        model.name, result.epochs_run, result.train_seconds, result.images_per_s, result.best_val_rmse, result.best_epoch,
    )  # fmt: skip
    return model, result


def _compiled(
    build: Callable[[], keras.Model], strategy, learning_rate: float, mixed_precision: bool, loss: str | keras.losses.Loss
) -> keras.Model:
    """``build()`` inside ``strategy``'s scope, compiled with ``loss``, the RMSE metric (unweighted:
    the early stopping's monitor) and Adam."""
    with strategy.scope():
        model = _build_with_policy(build, mixed_precision)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=loss,
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )
    return model


def _callbacks(curve: keras.callbacks.Callback, train_cfg: TrainConfig) -> list[keras.callbacks.Callback]:
    """The learning-curve logger, then the schedule on the validation RMSE: the learning rate falls
    by :data:`_LR_FACTOR` after ``lr_patience`` flat epochs, training stops after ``stop_patience``
    and the best epoch's weights are restored."""
    return [
        curve,
        keras.callbacks.ReduceLROnPlateau(monitor="val_rmse", mode="min", factor=_LR_FACTOR, patience=train_cfg.lr_patience),
        keras.callbacks.EarlyStopping(
            monitor="val_rmse", mode="min", patience=train_cfg.stop_patience, restore_best_weights=True
        ),
    ]


def _fit_result(frame: pd.DataFrame, n_train: int, seconds: float) -> FitResult:
    """The :class:`FitResult` of a learning curve (one row per epoch) that took ``seconds``."""
    best = int(frame["val_rmse"].idxmin())
    return FitResult(
        curve=frame,
        best_epoch=int(frame["epoch"].iloc[best]),
        best_val_rmse=float(frame["val_rmse"].iloc[best]),
        train_seconds=seconds,
        images_per_s=n_train * len(frame) / seconds,
    )


def train_from_table(
    table: pd.DataFrame,
    target_columns: Sequence[str],
    *,
    images_cfg: ImagesConfig,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    seed: int,
    head: str = "sigmoid",
    loss: str | keras.losses.Loss = "mse",
    split_column: str = "split",
    curve_path: str | Path | None = None,
    live_dir: str | Path | None = None,
    log: logging.Logger | None = None,
) -> tuple[keras.Model, FitResult]:
    """Train ``model_cfg.arch`` on the rows of ``table`` whose ``split_column`` is 'train',
    validating on 'val', with ``loss``: the one entry point of the morphology and the control models.

    ``table`` has ``image_path`` and the ``target_columns``; the model gets one output per target
    column with the given ``head`` ('sigmoid' or 'linear'). Training images are augmented.
    """
    validate(model_cfg.arch, images_cfg.size_px, model_cfg.weights, head)
    # tf.data's seeded ops combine their seed with TF's global seed: fix it before building them.
    keras.utils.set_random_seed(seed)
    train_paths, train_y = split_inputs(table, "train", target_columns, split_column)
    val_paths, val_y = split_inputs(table, "val", target_columns, split_column)
    train_ds = make_dataset(
        train_paths, images_cfg, train_y, batch_size=model_cfg.batch_size, training=True, seed=seed
    )
    val_ds = make_dataset(val_paths, images_cfg, val_y, batch_size=model_cfg.batch_size)
    (log or logging.getLogger(__name__)).info(
        "%d training and %d validation images at %d px", len(train_paths), len(val_paths), images_cfg.size_px
    )

    def build() -> keras.Model:
        return build_model(
            model_cfg.arch,
            images_cfg.size_px,
            len(target_columns),
            head=head,
            weights=model_cfg.weights,
            seed=seed,
        )

    return fit(
        build,
        train_ds,
        val_ds,
        n_train=len(train_paths),
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        seed=seed,
        curve_path=curve_path,
        live_dir=live_dir,
        loss=loss,
        log=log,
    )


def train_morphology(
    table: pd.DataFrame,
    model_name: str,
    *,
    images_cfg: ImagesConfig,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    plots_dir: str | Path,
    log: logging.Logger | None = None,
) -> tuple[keras.Model, dict]:
    """Train morphology model ``model_name`` on the 37 vote fractions of ``table`` (its train and val
    splits, see :func:`train_from_table`) with its recipe, seed (:func:`model_seed`) and loss
    (:func:`morphology_loss` of ``train.bar_weight``); the learning
    curves go to ``plots_dir`` (``learning_curve.tsv`` and DVCLive's ``dvclive/``).

    Returns the model and its training record (name, architecture, parameters, split sizes and
    :meth:`FitResult.summary`). The ``train`` stage trains the models with it, the ``twins`` stage
    their permuted-label twins (the same call on a table whose labels are permuted).
    """
    plots_dir = Path(plots_dir)
    model, result = train_from_table(
        table,
        CLASS_COLUMNS,
        images_cfg=images_cfg,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        seed=model_seed(train_cfg, model_cfg),
        loss=morphology_loss(train_cfg.bar_weight),
        curve_path=plots_dir / "learning_curve.tsv",
        live_dir=plots_dir / "dvclive",
        log=log,
    )
    record = {
        "model": model_name,
        "arch": model_cfg.arch,
        "parameters": model.count_params(),
        "n_train": int((table["split"] == "train").sum()),
        "n_val": int((table["split"] == "val").sum()),
        **result.summary(),
    }
    return model, record


def mean_predictor_rmse(table: pd.DataFrame, target_columns: Sequence[str], split_column: str = "split") -> float:
    """RMSE on the 'val' rows of ``table`` of predicting every target as its mean over the 'train' rows:
    what a model that learnt nothing from the images scores (a permuted-label twin should match it)."""
    train, val = (table.loc[table[split_column] == s, list(target_columns)].to_numpy(np.float64) for s in ("train", "val"))
    if not len(train) or not len(val):
        raise ValueError(f"mean_predictor_rmse: expected train and val rows, got {len(train)} and {len(val)}")
    return float(np.sqrt(np.mean((val - train.mean(axis=0)) ** 2)))


def cross_fit(
    table: pd.DataFrame,
    target_columns: Sequence[str],
    roles: Sequence[np.ndarray],
    *,
    images_cfg: ImagesConfig,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    seed: int,
    head: str = "linear",
    curve_dir: str | Path | None = None,
    on_model: Callable[[int, keras.Model], None] | None = None,
    log: logging.Logger | None = None,
) -> tuple[np.ndarray, list[FitResult]]:
    """Out-of-fold predictions of ``model_cfg.arch`` for every row of ``table``: one model per fold.

    ``roles[k]`` (n,) says what each row is to fold k's model (see ``splits.fold_roles``): it
    trains on 'train', stops early on 'val' and predicts 'predict'. Every row must be 'predict' in
    exactly one fold, so each prediction comes from a model that never saw that row. Returns the
    predictions (n, len(target_columns)) float32 and one :class:`FitResult` per fold. Fold k's
    learning curve goes to ``curve_dir/fold<k>/learning_curve.tsv``; ``on_model(k, model)`` gets each
    trained model (e.g. to save it) before the next fold starts.
    """
    log = log or logging.getLogger(__name__)
    roles = [np.asarray(r, dtype=object) for r in roles]
    bad_shape = [k for k, r in enumerate(roles) if r.shape != (len(table),)]
    if bad_shape:
        raise ValueError(f"cross_fit: roles of fold {bad_shape[0]}: expected shape ({len(table)},) like the table")
    times_predicted = np.sum([r == "predict" for r in roles], axis=0) if roles else np.zeros(len(table))
    wrong = np.flatnonzero(times_predicted != 1)
    if len(wrong):
        row = int(wrong[0])
        raise ValueError(
            f"cross_fit: row {row} (image {table['image_path'].iloc[row]}) is 'predict' in {int(times_predicted[row])} "
            f"of the {len(roles)} folds; expected exactly 1"
        )
    predictions = np.full((len(table), len(target_columns)), np.nan, dtype="float32")
    results = []
    for k, role in enumerate(roles):
        # A fresh session per fold: the same layer names in every fold's file, no graphs piling up.
        keras.backend.clear_session()
        rows = np.flatnonzero(role == "predict")
        log.info("fold %d of %d: predicts %d rows", k, len(roles), len(rows))
        model, result = train_from_table(
            table.assign(_fold_role=role),
            target_columns,
            images_cfg=images_cfg,
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            seed=seed,
            head=head,
            split_column="_fold_role",
            curve_path=None if curve_dir is None else Path(curve_dir) / f"fold{k}" / "learning_curve.tsv",
            log=log,
        )
        predictions[rows] = predict(model, table["image_path"].iloc[rows].astype(str).tolist(), images_cfg)
        if on_model is not None:
            on_model(k, model)
        results.append(result)
    return predictions, results


def _build_with_policy(build: Callable[[], keras.Model], mixed_precision: bool) -> keras.Model:
    """Build under the mixed_float16 policy if asked; the global policy is restored afterwards
    (layers keep the policy they were built with; the model's "logits"/"output" are float32)."""
    if not mixed_precision:
        return build()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        return build()
    finally:
        keras.config.set_dtype_policy(previous)


def predict(
    model: keras.Model, paths: Sequence[str], images_cfg: ImagesConfig, batch_size: int = 64
) -> np.ndarray:
    """Model outputs (n, n_outputs) float32 for the images at ``paths`` (unaugmented, in order)."""
    ds = make_dataset(paths, images_cfg, batch_size=batch_size, cache=None)
    return np.asarray(model.predict(ds, verbose=0), dtype="float32")
