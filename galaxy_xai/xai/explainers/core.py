"""What every explainer shares: the score it explains, input checks, the attribution map, the final
normalisation, chunking, and SmoothGrad's sample layout, noise keys and orientations.

An explainer (see :class:`Explainer`) turns float model inputs (n, H, W, C) in [0, 1] into maps
float32 (n, H, W) in [0, 1] of one model output's *pre-activation* score (:func:`score_model`).

The gradient explainers run their compiled chunk function through :func:`map_chunks`: called inside
a ``tf.distribute`` strategy's ``scope()`` (see :mod:`galaxy_xai.distribute`), it sends one chunk
to each replica at a time, with the same maps as one device.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from galaxy_xai.config import ATTRIBUTIONS, XaiConfig
from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS
from galaxy_xai.xai import maps as maps_utils

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
SCORE_LAYER = "logits"

CONSTANT_RTOL = 1e-6
"""A map whose range is at most this fraction of its largest absolute value counts as constant:
below that the 'structure' is float32 rounding, and normalising it would only amplify noise."""


def class_index(target: str) -> int:
    """Column index of a Galaxy Zoo answer (e.g. ``"Class3.1"`` -> 5) in the models' 37 outputs."""
    try:
        return CLASS_COLUMNS.index(target)
    except ValueError:
        raise ValueError(
            f"unknown target {target!r}: expected one of the Galaxy Zoo answers {CLASS_COLUMNS[0]}..{CLASS_COLUMNS[-1]}"
        ) from None


# --- the explainer interface ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Explainer:
    """Maps of model output ``index`` (a column of the models' outputs, see :func:`class_index`).

    Subclasses set :attr:`name` (their ``xai.method`` value), implement ``__call__`` and
    :meth:`from_config`, and are listed in :data:`galaxy_xai.xai.explainers.EXPLAINERS`. ``batch_size``:
    the most images (or noisy copies) that go through the model at once; it bounds peak memory and
    never changes a map. ``contrast``: an output index whose pre-activation score is subtracted from
    the explained one (``xai.contrast``; None: the output alone).
    """

    name: ClassVar[str]
    index: int
    _: dataclasses.KW_ONLY
    batch_size: int = DEFAULT_BATCH_SIZE
    contrast: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"{self.name}: batch_size = {self.batch_size}: expected >= 1")

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> Explainer:
        """The explainer of output ``index`` with the settings of ``xai``."""
        raise NotImplementedError

    @property
    def attribution(self) -> str:
        """What the maps show (the ``attribution`` array of the heatmap files)."""
        return self.name

    @property
    def stochastic(self) -> bool:
        """Whether the maps depend on ``seed`` and ``keys`` (independent noise draws differ)."""
        return False

    def __call__(
        self,
        model: keras.Model,
        images: np.ndarray,
        seed: int = 0,
        keys: np.ndarray | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Maps float32 (n, H, W) in [0, 1] of ``images`` float (n, H, W, C) model inputs.

        ``seed`` and ``keys`` (one non-negative integer per image naming its noise stream) only
        matter to stochastic explainers; ``progress`` shows a progress bar. With a ``contrast``
        answer the explained score is the target's minus the contrast's (:func:`contrastive`).
        """
        return self.explain(contrastive(model, self.contrast), images, seed=seed, keys=keys, progress=progress)

    def explain(
        self,
        model: keras.Model,
        images: np.ndarray,
        seed: int = 0,
        keys: np.ndarray | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """The maps of :meth:`__call__` for ``model`` as given (subclasses implement it)."""
        raise NotImplementedError


# --- the model's score ----------------------------------------------------------------------------

CONTRAST_LAYER = "contrast_logits"
"""The last layer of a :func:`contrastive` model: its outputs already are the scores to explain."""


@functools.lru_cache(maxsize=16)
def contrastive(model: keras.Model, contrast: int | None) -> keras.Model:
    """``model`` whose pre-activation scores are each minus output ``contrast``'s, or ``model`` itself
    for None.

    Column i of the new scores is logit_i - logit_contrast: with the bar answer (Class3.1) and the
    no-bar answer (Class3.2) the map shows what makes the model say "bar" rather than "disk without
    a bar", removing what the two answers share (both grow with the probability of a face-on disk,
    their sum being Class2.2 in the decision tree). The model's layers are shared, not copied, so
    Grad-CAM finds its feature maps; cached per model object, so compiled explainers are traced once.
    """
    if contrast is None:
        return model
    logits = score_model(model).outputs[0]
    n_outputs = logits.shape[-1]
    if not 0 <= contrast < n_outputs:
        raise ValueError(f"contrast = {contrast}: expected an output index in [0, {n_outputs - 1}]")
    difference = keras.layers.Lambda(lambda z: z - z[:, contrast : contrast + 1], name=CONTRAST_LAYER)(logits)
    return keras.Model(model.inputs, difference, name=f"{model.name}_contrast{contrast}")



def score_model(model: keras.Model) -> keras.Model:
    """A model from the same inputs to the pre-activation scores, shape (batch, n_outputs).

    Models built by :mod:`galaxy_xai.models.architectures` have a Dense layer named ``"logits"``; its output is
    used directly (no copy of the weights). Any other model is cloned and its last layer's
    activation replaced by the identity, as tf-keras-vis's ``ReplaceToLinear`` does; a last layer
    without an ``activation`` attribute is an error.
    """
    if model.layers[-1].name == CONTRAST_LAYER:
        return model  # already the scores (:func:`contrastive`)
    names = {layer.name for layer in model.layers}
    if SCORE_LAYER in names:
        return keras.Model(model.inputs, model.get_layer(SCORE_LAYER).output, name=f"{model.name}_logits")
    last = model.layers[-1]
    if not hasattr(last, "activation"):
        raise ValueError(
            f"model {model.name!r} has no layer named {SCORE_LAYER!r} and its last layer {last.name!r} has no "
            "activation to make linear: cannot define the pre-activation score"
        )
    log.warning(
        "model %r has no %r layer: explaining a copy with the last activation made linear",
        model.name,
        SCORE_LAYER,
    )
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.layers[-1].activation = keras.activations.linear
    return clone


def check_inputs(model: keras.Model, images: np.ndarray, index: int) -> np.ndarray:
    """Validate ``images`` (n, H, W, C) against the model input and ``index`` against its outputs;
    returns the images as float32."""
    images = np.asarray(images)
    expected = tuple(model.input_shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"images: expected shape (n, {', '.join(map(str, expected))}), got {images.shape}")
    if len(images) == 0:
        raise ValueError("images: expected at least one image, got none")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images: expected float model inputs in [0, 1], got dtype {images.dtype}")
    if not np.all(np.isfinite(images)):
        raise ValueError(
            f"images: non-finite values in images {np.flatnonzero(~np.isfinite(images).all(axis=(1, 2, 3)))[:10].tolist()}"
        )
    n_outputs = model.output_shape[-1]
    if not 0 <= index < n_outputs:
        raise ValueError(f"class_index = {index}: expected an output index in [0, {n_outputs - 1}]")
    return images.astype(np.float32, copy=False)


def input_gradient(scores: keras.Model, index: int | tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """d score[:, index] / d x for a batch x (b, H, W, C); each image's score depends only on itself."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        score = tf.reduce_sum(scores(x, training=False)[:, index])
    return tape.gradient(score, x)


# --- from gradients to a map -----------------------------------------------------------------------


def check_attribution(attribution: str) -> None:
    """ValueError unless ``attribution`` is one of :data:`galaxy_xai.config.ATTRIBUTIONS`."""
    if attribution not in ATTRIBUTIONS:
        raise ValueError(f"attribution = {attribution!r}: expected one of {', '.join(ATTRIBUTIONS)}")


def attribution_map(gradient: tf.Tensor, x: tf.Tensor, attribution: str) -> tf.Tensor:
    """(b, H, W) map from a batch of (mean) gradients (b, H, W, C) of the clean inputs x.

    ``abs_gradient``: ``gradient`` already holds |gradient|; its channel maximum.
    ``input_x_gradient``: ``gradient`` is signed; max(0, sum_c x_c gradient_c).
    """
    if attribution == "abs_gradient":
        return tf.reduce_max(gradient, axis=-1)
    return tf.nn.relu(tf.reduce_sum(x * gradient, axis=-1))


def finish_maps(maps: np.ndarray, what: str) -> np.ndarray:
    """Raw maps (n, H, W) -> float32 maps min-max normalised to [0, 1] (:func:`galaxy_xai.xai.maps.normalise_maps`).

    Constant maps (range <= :data:`CONSTANT_RTOL` x max |value|) become zeros, with one logged
    warning naming ``what`` made them. Raises ValueError naming the maps that hold non-finite
    values (a broken model or input).
    """
    maps = np.asarray(maps, dtype=np.float64)
    bad = ~np.isfinite(maps).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f"non-finite gradients for images {np.flatnonzero(bad)[:10].tolist()} (of {len(maps)})"
        )
    out = maps_utils.normalise_maps(maps, CONSTANT_RTOL).astype(np.float32)
    n_constant = int(maps_utils.constant_maps(maps, CONSTANT_RTOL).sum())
    if n_constant:
        log.warning(
            "%s: %d of %d maps are constant (no gradient signal); returned as zeros",
            what,
            n_constant,
            len(out),
        )
    return out


# --- chunking --------------------------------------------------------------------------------------


def chunks(images: np.ndarray, size: int):
    """Yield (start, chunk) with every chunk exactly ``size`` long (the last padded by repeating
    its final image), so one compiled function serves all chunks without retracing."""
    n = len(images)
    for start in range(0, n, size):
        chunk = images[start : start + size]
        if len(chunk) < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
        yield start, chunk


def map_chunks(
    fn: Callable[..., tf.Tensor],
    rows: Sequence[np.ndarray],
    size: int,
    args: Sequence[tf.Tensor] = (),
    bar: tqdm | None = None,
) -> np.ndarray:
    """``fn`` over consecutive chunks of ``size`` rows: the outputs (n, ...) of the n rows.

    ``fn(*row_chunks, *args)`` is a compiled function of one chunk of each array of ``rows`` (all
    (n, ...), chunked alike by :func:`chunks`) returning (size, ...); ``args`` are passed whole.
    Inside a ``tf.distribute`` strategy's ``scope()`` with R replicas, each step gives replica r
    the r-th of R consecutive chunks (``strategy.run``) and gathers the outputs in replica order:
    each replica runs the same ``fn`` on the same chunk shape, so the outputs are those of one
    device; every worker of a multi-worker strategy must call this with the same rows. Outside a
    strategy scope, the chunks go one by one to ``fn``. ``bar`` advances by the rows done.
    """
    n = len(rows[0])
    strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    if strategy is None:
        per_step = size

        def step(row_chunks, args):
            return fn(*row_chunks, *args)

    else:
        per_step = size * strategy.num_replicas_in_sync
        step = _replicated(fn, strategy, size)
    out = None
    for parts in zip(*(chunks(r, per_step) for r in rows), strict=True):
        start, stop = parts[0][0], min(parts[0][0] + per_step, n)
        result = np.asarray(step([chunk for _, chunk in parts], tuple(args)))[: stop - start]
        if out is None:
            out = np.empty((n, *result.shape[1:]), dtype=result.dtype)
        out[start:stop] = result
        if bar is not None:
            bar.update(stop - start)
    return out


@functools.lru_cache(maxsize=8)
def _replicated(
    fn: Callable[..., tf.Tensor], strategy: tf.distribute.Strategy, size: int
) -> Callable[..., tf.Tensor]:
    """``fn`` of one chunk of ``size`` rows -> a function of (arrays of R = replicas consecutive
    chunks, R * size rows each, and whole arguments) that runs chunk r on replica r and gathers
    the outputs.

    Cached (like the chunk functions it wraps) so that repeated calls reuse one trace.
    """
    devices = strategy.extended.worker_devices  # this worker's replicas (all of them but under multi_worker)

    def replica_fn(*inputs):
        # A plain Python function: strategy.run would hand a tf.function fn its PerReplica inputs whole.
        return fn(*inputs)

    @tf.function
    def gathered(per_replica, args):
        return strategy.gather(strategy.run(replica_fn, args=(*per_replica, *args)), axis=0)

    def slice_for(array: np.ndarray, ctx: tf.distribute.experimental.ValueContext) -> tf.Tensor:
        replica = ctx.replica_id_in_sync_group  # global: slice the chunk this replica owns
        with tf.device(devices[replica % len(devices)]):
            return tf.constant(array[replica * size : (replica + 1) * size])

    def run(arrays: Sequence[np.ndarray], args: tuple) -> tf.Tensor:
        per_replica = tuple(
            strategy.experimental_distribute_values_from_function(functools.partial(slice_for, a)) for a in arrays
        )
        return gathered(per_replica, args)

    return run


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    """A per-image progress bar (hidden unless ``enabled``; removed when done)."""
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


# --- noisy copies: layout, noise streams, orientations -----------------------------------------------


def sample_layout(samples: int, batch_size: int, multiple: int = 1) -> tuple[int, int, int]:
    """(galaxies per chunk g, samples per step k, steps) with g * k <= batch_size and k * steps >= samples.

    Samples are spread evenly over the steps (the surplus k * steps - samples copies are drawn and
    masked out); the rest of the batch is filled with other galaxies. ``k`` is a multiple of
    ``multiple`` whenever there are several steps, so sample s sits at position s mod ``multiple``
    of its step's block whatever the batch size. The layout does not depend on how many galaxies
    are explained, so one compiled function serves every call with the same settings (a trace
    costs seconds; padding a short call to a full chunk costs a fraction of that).
    """
    if samples < 1 or batch_size < multiple or multiple < 1:
        raise ValueError(
            f"sample_layout: samples = {samples}, batch_size = {batch_size}, multiple = {multiple}: "
            "expected samples >= 1 and batch_size >= multiple >= 1"
        )
    steps = math.ceil(samples / min(samples, batch_size - batch_size % multiple))
    per_step = math.ceil(samples / steps)
    if steps > 1:
        per_step = math.ceil(per_step / multiple) * multiple
    return max(1, batch_size // per_step), per_step, steps


def noise_keys(keys: np.ndarray | None, n: int, seed: int) -> np.ndarray:
    """One int64 noise key per image from the seed and the image's key (default: its position).

    Hashing (seed, key) with NumPy's SeedSequence keeps the streams of different seeds and keys
    independent (no overlap as with seed + key arithmetic).
    """
    keys = np.arange(n, dtype=np.int64) if keys is None else np.asarray(keys)
    if keys.shape != (n,) or not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(
            f"keys: expected {n} integers (one per image), got shape {keys.shape} dtype {keys.dtype}"
        )
    if seed < 0 or (keys < 0).any():
        raise ValueError(f"seed = {seed} and keys: expected non-negative integers")
    words = [np.random.SeedSequence([int(seed), int(k)]).generate_state(1, np.uint64)[0] for k in keys]
    return np.asarray(words, dtype=np.uint64).view(np.int64)


def orient(x: tf.Tensor, t: int) -> tf.Tensor:
    """Symmetry ``t`` of the square applied to a batch (b, H, W, C): flip if t >= 4, then t % 4 quarter turns."""
    if t == 0:
        return x
    if t >= 4:
        x = tf.reverse(x, axis=[2])
    return tf.image.rot90(x, k=t % 4)


def unorient(x: tf.Tensor, t: int) -> tf.Tensor:
    """The inverse of :func:`orient`."""
    if t == 0:
        return x
    x = tf.image.rot90(x, k=(4 - t % 4) % 4)
    return tf.reverse(x, axis=[2]) if t >= 4 else x
