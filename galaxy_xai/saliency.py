"""Saliency maps of one model output: SmoothGrad (the paper's), vanilla gradients and Grad-CAM.

Semantics are tf-keras-vis's ``Saliency`` / ``Gradcam``, which the paper used. For one image x
(float32 (H, W, C) in [0, 1]) and N samples, SmoothGrad

1. draws N noisy copies x + e, e ~ Normal(0, sigma^2) per pixel, sigma = noise * (max(x) - min(x));
2. takes the gradient of the class's *pre-activation* score (the model's ``"logits"`` layer: the
   paper's "last activation made linear") with respect to each noisy copy;
3. averages the absolute gradients over the N copies, takes the maximum over colour channels and
   min-max normalises the map to [0, 1].

N = 0 is the vanilla saliency map (the same on the clean input).

That is ``attribution="abs_gradient"``. ``attribution="input_x_gradient"`` keeps the sign instead:
it averages the signed gradients over the N copies (SmoothGrad combined with Gradient x Input, as
Smilkov et al. 2017 suggest), multiplies them by the clean input, sums over colour channels and
keeps the positive part, ``max(0, sum_c x_c mean_s d score / d x_c)``: the light whose presence
raises the score. For a bar this is the bar's own light, where the absolute gradient also lights
up the dark gaps beside it (a brighter gap is evidence *against* a bar) and whatever the noise
makes the model sensitive to. The normalisation is the exact
(m - min) / (max - min), as the original code applied to tf-keras-vis's output (tf-keras-vis itself
divides by max - min + 1e-7, which shrinks maps whose gradients are small); a constant map is
returned as zeros with a logged warning, never NaN.

The implementation differs from tf-keras-vis where it matters for speed and reproducibility, not
for the result: noisy copies of several galaxies go through the model together in one compiled
function (at most ``batch_size`` copies at a time, so peak memory is set by the batch and not by
N), the absolute gradients are summed on the fly, and the noise comes from TensorFlow's
stateless generator. Each noise sample is keyed by ``(seed, key of the galaxy, sample index)``,
so a galaxy's map depends only on the seed and its key (by default its position), never on
``batch_size`` or on which other galaxies share a batch.
"""

from __future__ import annotations

import functools
import logging
import math
import zlib

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage
from tqdm import tqdm

from galaxy_xai import maps as maps_utils
from galaxy_xai.catalogue import CLASS_COLUMNS
from galaxy_xai.config import ATTRIBUTIONS, METHODS, SYMMETRIES, XaiConfig

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
SCORE_LAYER = "logits"
POOL_LAYER = "pool"

CONSTANT_RTOL = 1e-6
"""A map whose range is at most this fraction of its largest absolute value counts as constant:
below that the 'structure' is float32 rounding, and normalising it would only amplify noise."""


def class_index(target: str) -> int:
    """Column index of a Galaxy Zoo answer (e.g. ``"Class3.1"`` -> 4) in the models' 37 outputs."""
    try:
        return CLASS_COLUMNS.index(target)
    except ValueError:
        raise ValueError(
            f"unknown target {target!r}: expected one of the Galaxy Zoo answers {CLASS_COLUMNS[0]}..{CLASS_COLUMNS[-1]}"
        ) from None


# --- the model's score ----------------------------------------------------------------------------


def score_model(model: keras.Model) -> keras.Model:
    """A model from the same inputs to the pre-activation scores, shape (batch, n_outputs).

    Models built by :mod:`galaxy_xai.models` have a Dense layer named ``"logits"``; its output is
    used directly (no copy of the weights). Any other model is cloned and its last layer's
    activation replaced by the identity, as tf-keras-vis's ``ReplaceToLinear`` does; a last layer
    without an ``activation`` attribute is an error.
    """
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


def _check_inputs(model: keras.Model, images: np.ndarray, index: int) -> np.ndarray:
    """Validate ``images`` (n, H, W, C) against the model input and ``index`` against its outputs."""
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


def _input_gradient(scores: keras.Model, index: int | tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """d score[:, index] / d x for a batch x (b, H, W, C); each image's score depends only on itself."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        score = tf.reduce_sum(scores(x, training=False)[:, index])
    return tape.gradient(score, x)


def _check_attribution(attribution: str) -> None:
    if attribution not in ATTRIBUTIONS:
        raise ValueError(f"attribution = {attribution!r}: expected one of {', '.join(ATTRIBUTIONS)}")


def map_attribution(xai: XaiConfig) -> str:
    """What the maps of ``xai``'s explainer show: its attribution, or "gradcam" (Grad-CAM has its own)."""
    return "gradcam" if xai.method == "gradcam" else xai.attribution


def _pixel_map(gradient: tf.Tensor, x: tf.Tensor, attribution: str) -> tf.Tensor:
    """(b, H, W) map from a batch of (mean) gradients (b, H, W, C) of the clean inputs x.

    ``abs_gradient``: ``gradient`` already holds |gradient|; its channel maximum.
    ``input_x_gradient``: ``gradient`` is signed; max(0, sum_c x_c gradient_c).
    """
    if attribution == "abs_gradient":
        return tf.reduce_max(gradient, axis=-1)
    return tf.nn.relu(tf.reduce_sum(x * gradient, axis=-1))


# --- normalisation ---------------------------------------------------------------------------------


def normalise_maps(maps: np.ndarray) -> tuple[np.ndarray, int]:
    """Min-max normalise each map of (n, H, W) to [0, 1]; constant maps become zeros.

    Returns the float32 maps and how many were constant (range <= CONSTANT_RTOL x max |value|).
    Raises ValueError naming the maps that hold non-finite values (a broken model or input).
    """
    maps = np.asarray(maps, dtype=np.float64)
    bad = ~np.isfinite(maps).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f"non-finite gradients for images {np.flatnonzero(bad)[:10].tolist()} (of {len(maps)})"
        )
    out = maps_utils.normalise_maps(maps, CONSTANT_RTOL).astype(np.float32)
    return out, int(maps_utils.constant_maps(maps, CONSTANT_RTOL).sum())


def _finish(maps: np.ndarray, what: str) -> np.ndarray:
    out, n_constant = normalise_maps(maps)
    if n_constant:
        log.warning(
            "%s: %d of %d maps are constant (no gradient signal); returned as zeros",
            what,
            n_constant,
            len(out),
        )
    return out


# --- chunking --------------------------------------------------------------------------------------


def _chunks(images: np.ndarray, size: int):
    """Yield (start, chunk) with every chunk exactly ``size`` long (the last padded by repeating
    its final image), so one compiled function serves all chunks without retracing."""
    n = len(images)
    for start in range(0, n, size):
        chunk = images[start : start + size]
        if len(chunk) < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
        yield start, chunk


def _progress(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


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


# --- explainers ------------------------------------------------------------------------------------


def vanilla(
    model: keras.Model,
    images: np.ndarray,
    class_index: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    attribution: str = "abs_gradient",
) -> np.ndarray:
    """Vanilla saliency: channel-max |d score / d x| of the clean input (or, with
    ``attribution="input_x_gradient"``, max(0, sum_c x_c d score / d x_c)), normalised per map.

    ``images`` float (n, H, W, C) model inputs; returns float32 (n, H, W) in [0, 1].
    """
    _check_attribution(attribution)
    images = _check_inputs(model, images, class_index)
    scores = score_model(model)
    size = min(len(images), batch_size)
    spec = tf.TensorSpec((size, *images.shape[1:]), tf.float32)

    @tf.function(input_signature=[spec])
    def chunk_maps(x):
        gradient = _input_gradient(scores, class_index, x)
        return _pixel_map(tf.abs(gradient) if attribution == "abs_gradient" else gradient, x, attribution)

    maps = np.empty(images.shape[:3], dtype=np.float32)
    with _progress(len(images), "vanilla", progress) as bar:
        for start, chunk in _chunks(images, size):
            stop = min(start + size, len(images))
            maps[start:stop] = chunk_maps(chunk).numpy()[: stop - start]
            bar.update(stop - start)
    log.debug("vanilla: compiled function traced %d time(s)", chunk_maps.experimental_get_tracing_count())
    return _finish(maps, "vanilla")




def _orient(x: tf.Tensor, t: int) -> tf.Tensor:
    """Symmetry ``t`` of the square applied to a batch (b, H, W, C): flip if t >= 4, then t % 4 quarter turns."""
    if t == 0:
        return x
    if t >= 4:
        x = tf.reverse(x, axis=[2])
    return tf.image.rot90(x, k=t % 4)


def _unorient(x: tf.Tensor, t: int) -> tf.Tensor:
    """The inverse of :func:`_orient`."""
    if t == 0:
        return x
    x = tf.image.rot90(x, k=(4 - t % 4) % 4)
    return tf.reverse(x, axis=[2]) if t >= 4 else x


@functools.lru_cache(maxsize=8)
def _smoothgrad_function(
    model: keras.Model,
    samples: int,
    noise: float,
    symmetries: int,
    chunk_shape: tuple[int, int, int, int],
    k: int,
    steps: int,
    attribution: str = "abs_gradient",
) -> tf.types.experimental.PolymorphicFunction:
    """The compiled SmoothGrad of one chunk: (images (g, H, W, C), noise keys (g,), output index)
    -> maps (g, H, W).

    Cached (a handful of entries, keyed by the model object and the settings) because a trace costs
    seconds and the heatmap, rotation and figure stages explain the same model several times (the
    figure stage for several outputs: the index is an argument, not part of the trace).
    """
    g, height, width, channels = chunk_shape
    scores = score_model(model)
    masked = k * steps != samples
    absolute = attribution == "abs_gradient"

    @tf.function(
        input_signature=[
            tf.TensorSpec(chunk_shape, tf.float32),
            tf.TensorSpec((g,), tf.int64),
            tf.TensorSpec((), tf.int32),
        ]
    )
    def chunk_maps(x, key, index):
        sigma = noise * (tf.reduce_max(x, axis=(1, 2, 3)) - tf.reduce_min(x, axis=(1, 2, 3)))
        # Copy j of a step shows the galaxy turned by symmetry t = j mod m (= its sample index mod m,
        # see sample_layout). The copies are grouped by t (within a group galaxy-major); each group
        # turns the clean images once, and its gradients are summed before being turned back.
        groups = [(t, len(range(t, k, symmetries))) for t in range(min(symmetries, k))]
        turned = [tf.repeat(_orient(x, t), k_t, axis=0) for t, k_t in groups]
        sigma_copies = tf.concat([tf.repeat(sigma, k_t) for _, k_t in groups], 0)[:, None, None, None]
        key_copies = tf.concat([tf.repeat(key, k_t) for _, k_t in groups], 0)
        x_copies = tf.concat(turned, 0)  # (g * k, H, W, C)
        total = tf.zeros_like(x)
        for step in tf.range(steps):
            sample = tf.cast(step * k, tf.int64) + tf.range(k, dtype=tf.int64)
            by_group = [sample[t::symmetries] for t, _ in groups]
            seeds = tf.stack([key_copies, tf.concat([tf.tile(s_t, [g]) for s_t in by_group], 0)], axis=1)
            eps = tf.map_fn(
                lambda s: tf.random.stateless_normal((height, width, channels), s),
                seeds,
                fn_output_signature=tf.float32,
            )
            grads = _input_gradient(scores, index, x_copies + sigma_copies * eps)
            if absolute:
                grads = tf.abs(grads)
            pieces = tf.split(grads, [g * k_t for _, k_t in groups])
            for (t, k_t), s_t, piece in zip(groups, by_group, pieces, strict=True):
                piece = tf.reshape(piece, (g, k_t, height, width, channels))
                if masked:  # the last step's surplus copies are drawn but not counted
                    piece *= tf.cast(s_t < samples, tf.float32)[None, :, None, None, None]
                total += _unorient(tf.reduce_sum(piece, axis=1), t)
        return _pixel_map(total / samples, x, attribution)

    return chunk_maps


def smoothgrad(
    model: keras.Model,
    images: np.ndarray,
    class_index: int,
    samples: int,
    noise: float,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keys: np.ndarray | None = None,
    progress: bool = False,
    symmetries: int = 1,
    attribution: str = "abs_gradient",
) -> np.ndarray:
    """SmoothGrad maps of output ``class_index``: float32 (n, H, W) in [0, 1].

    ``images``: float (n, H, W, C) model inputs. ``samples`` N noisy copies per image (0: vanilla);
    ``noise`` S_noise, the noise sigma as a fraction of each image's value range. At most
    ``batch_size`` noisy copies are in flight at once (this bounds peak memory). ``keys``: one
    non-negative integer per image naming its noise stream (default: its position; the heatmap
    stage passes object ids, so a galaxy's map does not depend on which other galaxies are
    explained). Same (seed, key) -> same map, whatever ``batch_size``.

    ``symmetries`` (1, 4 or 8; 1 is the paper's SmoothGrad): noisy copy s is shown to the model
    turned by symmetry s mod ``symmetries`` of the square (quarter turns, then also flips) and its
    gradient turned back, so the N samples also average over orientations at no extra cost. A
    galaxy has no preferred orientation, and the models were trained on rotated copies; averaging
    removes what the explanation owes to the orientation in the frame (exactly, for quarter turns
    when noise = 0). Needs square images.

    ``attribution``: ``"abs_gradient"`` (the paper's, tf-keras-vis's) or ``"input_x_gradient"``
    (see the module docstring).
    """
    _check_attribution(attribution)
    if symmetries not in SYMMETRIES:
        raise ValueError(f"smoothgrad: symmetries = {symmetries}: expected one of {SYMMETRIES}")
    if samples < 0 or not np.isfinite(noise) or noise < 0:
        raise ValueError(
            f"smoothgrad: samples = {samples} and noise = {noise}: expected samples >= 0 and noise >= 0"
        )
    if batch_size < 1:
        raise ValueError(f"smoothgrad: batch_size = {batch_size}: expected >= 1")
    if samples == 0:
        return vanilla(model, images, class_index, batch_size, progress, attribution)
    images = _check_inputs(model, images, class_index)
    n, height, width, channels = images.shape
    if symmetries > 1 and height != width:
        raise ValueError(f"smoothgrad: symmetries = {symmetries} needs square images, got {height} x {width}")
    galaxy_keys = noise_keys(keys, n, seed)
    g, k, steps = sample_layout(samples, batch_size, symmetries)
    chunk_maps = _smoothgrad_function(
        model, samples, float(noise), symmetries, (g, height, width, channels), k, steps, attribution
    )
    index = tf.constant(class_index, tf.int32)

    maps = np.empty((n, height, width), dtype=np.float32)
    with _progress(n, f"smoothgrad N={samples}", progress) as bar:
        for start, chunk in _chunks(images, g):
            stop = min(start + g, n)
            key = np.resize(galaxy_keys[start:stop], g)  # padding reuses real keys; its maps are dropped
            maps[start:stop] = chunk_maps(chunk, key, index).numpy()[: stop - start]
            bar.update(stop - start)
    log.debug(
        "smoothgrad: %d galaxies x %d samples per batch, %d step(s); traced %d time(s)",
        g,
        k,
        steps,
        chunk_maps.experimental_get_tracing_count(),
    )
    return _finish(maps, f"smoothgrad N={samples}")


def feature_tensor(scores: keras.Model, layer: str | None = None) -> keras.KerasTensor:
    """The feature map Grad-CAM weighs, as a tensor of the model's own graph.

    ``layer`` names a top-level layer; by default the last convolutional block, i.e. the input of
    the global pooling layer ``"pool"`` (this also reaches inside a nested backbone such as the
    keras.applications ones), else the output of the last top-level layer with a 4-D output.
    """
    names = [lay.name for lay in scores.layers]
    if layer is not None:
        if layer not in names:
            raise ValueError(f"gradcam layer = {layer!r}: no such layer in model {scores.name!r}")
        tensor = scores.get_layer(layer).output
    elif POOL_LAYER in names:
        tensor = scores.get_layer(POOL_LAYER).input
    else:
        four_d = [lay.output for lay in scores.layers if len(lay.output.shape) == 4]
        if not four_d:
            raise ValueError(
                f"model {scores.name!r} has no layer with a 4-D (batch, h, w, channels) output for Grad-CAM"
            )
        tensor = four_d[-1]
    if len(tensor.shape) != 4:
        raise ValueError(f"gradcam: the feature map must be 4-D (batch, h, w, channels), got {tensor.shape}")
    return tensor


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    class_index: int,
    layer: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Grad-CAM maps of the pre-activation score: float32 (n, H, W) in [0, 1].

    tf-keras-vis ``Gradcam``'s semantics (checked equal in the tests): the feature map (see
    :func:`feature_tensor`) weighted by its spatially averaged gradient, summed over channels,
    rectified, upsampled to the input size by linear interpolation (``scipy.ndimage.zoom``,
    order 1, as tf-keras-vis does) and normalised per map. Computed here rather than through
    tf-keras-vis, whose layer lookup cannot reach inside a nested backbone.
    """
    images = _check_inputs(model, images, class_index)
    scores = score_model(model)
    both = keras.Model(scores.inputs, [feature_tensor(scores, layer), scores.outputs[0]])
    size = min(len(images), batch_size)

    @tf.function(input_signature=[tf.TensorSpec((size, *images.shape[1:]), tf.float32)])
    def chunk_cams(x):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)  # records the graph from the input on, so the feature map's gradient exists
            features, logits = both(x, training=False)
            score = tf.reduce_sum(logits[:, class_index])
        weights = tf.reduce_mean(tape.gradient(score, features), axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))

    cams = []
    with _progress(len(images), "gradcam", progress) as bar:
        for start, chunk in _chunks(images, size):
            cams.append(chunk_cams(chunk).numpy()[: len(images) - start])
            bar.update(len(cams[-1]))
    cams = np.concatenate(cams)
    factors = (1.0, images.shape[1] / cams.shape[1], images.shape[2] / cams.shape[2])
    return _finish(ndimage.zoom(cams, factors, order=1), "gradcam")


def explain(
    method: str,
    model: keras.Model,
    images: np.ndarray,
    class_index: int,
    samples: int,
    noise: float,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keys: np.ndarray | None = None,
    progress: bool = False,
    symmetries: int = 1,
    attribution: str = "abs_gradient",
) -> np.ndarray:
    """Maps of ``method`` (one of :data:`METHODS`): float32 (n, H, W) in [0, 1].

    ``samples``, ``noise``, ``seed``, ``keys`` and ``symmetries`` only matter for SmoothGrad;
    vanilla and Grad-CAM are deterministic. ``attribution`` (one of :data:`ATTRIBUTIONS`) applies
    to SmoothGrad and vanilla; Grad-CAM has its own (the rectified class activation).
    """
    if method == "smoothgrad":
        return smoothgrad(
            model, images, class_index, samples, noise, seed, batch_size, keys, progress, symmetries, attribution
        )
    if method == "vanilla":
        return vanilla(model, images, class_index, batch_size, progress, attribution)
    if method == "gradcam":
        return gradcam(model, images, class_index, batch_size=batch_size, progress=progress)
    raise ValueError(f"method = {method!r}: expected one of {', '.join(METHODS)}")


def explain_xai(
    model: keras.Model,
    images: np.ndarray,
    xai: XaiConfig,
    seed: int,
    keys: np.ndarray | None = None,
    target: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """:func:`explain` with the explainer and SmoothGrad settings of ``xai``, for its target
    (or ``target``, a Galaxy Zoo answer such as ``"Class5.3"``): float32 (n, H, W) in [0, 1]."""
    sg = xai.smoothgrad
    return explain(
        xai.method,
        model,
        images,
        class_index(target or xai.target),
        sg.samples,
        sg.noise,
        seed=seed,
        batch_size=sg.batch_size,
        keys=keys,
        progress=progress,
        symmetries=sg.symmetries,
        attribution=xai.attribution,
    )


# --- the heatmap set of one model --------------------------------------------------------------------

SPLITS = ("val", "test")


def draw_seed(seed: int, model_name: str, draw: int) -> int:
    """The SmoothGrad seed of one noise draw of one model, from the configured seed.

    The model name enters the seed so that each model gets its own noise, as each model had in the
    paper (independent draws); crc32 keeps it stable across Python processes.
    """
    words = np.random.SeedSequence([int(seed), zlib.crc32(model_name.encode()), int(draw)]).generate_state(1)
    return int(words[0])


def heatmap_set(
    model: keras.Model,
    model_name: str,
    images: np.ndarray,
    objids: np.ndarray,
    splits: np.ndarray,
    xai: XaiConfig,
    seed: int,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Maps of every galaxy for the ``heatmap`` stage: validation once, test twice (two noise draws).

    ``images`` float (n, H, W, 3) model inputs, ``objids`` int (n,), ``splits`` (n,) of 'val' /
    'test'. Draw 0 covers all n galaxies in the given order; draw 1 repeats the test galaxies with
    an independent seed (deterministic methods copy draw 0). Noise streams are keyed by objid.
    Returns the arrays of ``data/heatmaps/<model>.npz``: maps float16 (m, H, W) in [0, 1], objid
    int64, split '<U4', draw int8, grey float16 (m, H, W) (channel mean of the input), and the
    0-d strings model, method and attribution.
    """
    objids = np.asarray(objids, dtype=np.int64)
    unknown = sorted(set(np.asarray(splits, dtype=str).tolist()) - set(SPLITS))
    if unknown:
        raise ValueError(f"splits: unexpected values {unknown}; expected {' / '.join(SPLITS)}")
    splits = np.asarray(splits).astype("<U4")
    if not len(objids) == len(splits) == len(images):
        raise ValueError(
            f"{len(images)} images, {len(objids)} objids and {len(splits)} splits: expected equal lengths"
        )
    sg = xai.smoothgrad

    def draw_maps(draw_images: np.ndarray, draw_objids: np.ndarray, draw: int) -> np.ndarray:
        log.info("%s: %s maps of %d galaxies, draw %d", model_name, xai.method, len(draw_images), draw)
        seed_of_draw = draw_seed(seed, model_name, draw)
        return explain_xai(model, draw_images, xai, seed_of_draw, keys=draw_objids, progress=progress)

    test = np.flatnonzero(splits == "test")
    first = draw_maps(images, objids, 0)
    stochastic = xai.method == "smoothgrad" and sg.samples > 0
    second = draw_maps(images[test], objids[test], 1) if stochastic and len(test) else first[test]
    rows = np.concatenate([np.arange(len(objids)), test])
    grey = np.asarray(images).mean(axis=-1).astype(np.float16)
    return {
        "maps": np.concatenate([first, second]).astype(np.float16),
        "objid": objids[rows],
        "split": splits[rows],
        "draw": np.repeat(np.array([0, 1], dtype=np.int8), [len(objids), len(test)]),
        "grey": grey[rows],
        "model": np.array(model_name),
        "method": np.array(xai.method),
        "attribution": np.array(map_attribution(xai)),
    }
