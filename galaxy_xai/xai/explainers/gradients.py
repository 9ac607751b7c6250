"""Input-gradient explainers: vanilla gradients and SmoothGrad (the paper's), tf-keras-vis semantics.

Both differentiate the pre-activation score (:func:`~galaxy_xai.xai.explainers.core.score_model`) with
respect to the input and turn the gradient into a map with
:func:`~galaxy_xai.xai.explainers.core.attribution_map`: ``abs_gradient`` (the paper's) is the channel
maximum of |gradient|; ``input_x_gradient`` is max(0, sum_c x_c gradient_c) of the clean input x.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import keras
import numpy as np
import tensorflow as tf

from galaxy_xai.config import SYMMETRIES, XaiConfig
from galaxy_xai.xai.explainers.core import (
    Explainer,
    attribution_map,
    check_attribution,
    check_inputs,
    finish_maps,
    input_gradient,
    map_chunks,
    noise_keys,
    orient,
    progress_bar,
    sample_layout,
    score_model,
    unorient,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Vanilla(Explainer):
    """Vanilla saliency: channel-max |d score / d x| of the clean input (or, with
    ``attribution="input_x_gradient"``, max(0, sum_c x_c d score / d x_c)), normalised per map.

    Deterministic: ``seed`` and ``keys`` are ignored.
    """

    name = "vanilla"
    _: dataclasses.KW_ONLY
    attribution: str = "abs_gradient"

    def __post_init__(self) -> None:
        check_attribution(self.attribution)
        super().__post_init__()

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> Vanilla:
        return cls(index, batch_size=xai.smoothgrad.batch_size, attribution=xai.attribution)

    def explain(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        index, attribution = self.index, self.attribution
        images = check_inputs(model, images, index)
        scores = score_model(model)
        size = min(len(images), self.batch_size)
        spec = tf.TensorSpec((size, *images.shape[1:]), tf.float32)

        @tf.function(input_signature=[spec])
        def chunk_maps(x):
            gradient = input_gradient(scores, index, x)
            return attribution_map(tf.abs(gradient) if attribution == "abs_gradient" else gradient, x, attribution)

        with progress_bar(len(images), "vanilla", progress) as bar:
            maps = map_chunks(chunk_maps, [images], size, bar=bar)
        log.debug("vanilla: compiled function traced %d time(s)", chunk_maps.experimental_get_tracing_count())
        return finish_maps(maps, "vanilla")


STATISTICS = ("abs_gradient", "input_x_gradient", "squared", "variance")
"""What :func:`noisy_gradient_maps` makes of the gradients of the noisy copies: the two SmoothGrad
attributions (mean |g|, channel max; relu(sum_c x_c mean g_c)), SmoothGrad-Squared (mean g^2,
channel max) and VarGrad (variance of g over the copies, channel max)."""


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
    """The compiled sampling loop of one chunk: (images (g, H, W, C), noise keys (g,), output index)
    -> maps (g, H, W) of ``attribution`` (one of :data:`STATISTICS`).

    Cached (a handful of entries, keyed by the model object and the settings) because a trace costs
    seconds and the heatmap, rotation and figure stages explain the same model several times (the
    figure stage for several outputs: the index is an argument, not part of the trace).
    """
    g, height, width, channels = chunk_shape
    scores = score_model(model)
    masked = k * steps != samples
    absolute = attribution == "abs_gradient"
    squared = attribution == "squared"
    variance = attribution == "variance"

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
        turned = [tf.repeat(orient(x, t), k_t, axis=0) for t, k_t in groups]
        sigma_copies = tf.concat([tf.repeat(sigma, k_t) for _, k_t in groups], 0)[:, None, None, None]
        key_copies = tf.concat([tf.repeat(key, k_t) for _, k_t in groups], 0)
        x_copies = tf.concat(turned, 0)  # (g * k, H, W, C)
        if variance:  # shifted sums (shift: the clean image's gradient) keep E[d^2] - E[d]^2 accurate
            shift = input_gradient(scores, index, x)
            shift_copies = tf.concat([tf.repeat(orient(shift, t), k_t, axis=0) for t, k_t in groups], 0)
        total = tf.zeros_like(x)
        total_sq = tf.zeros_like(x)
        for step in tf.range(steps):
            sample = tf.cast(step * k, tf.int64) + tf.range(k, dtype=tf.int64)
            by_group = [sample[t::symmetries] for t, _ in groups]
            seeds = tf.stack([key_copies, tf.concat([tf.tile(s_t, [g]) for s_t in by_group], 0)], axis=1)
            eps = tf.map_fn(
                lambda s: tf.random.stateless_normal((height, width, channels), s),
                seeds,
                fn_output_signature=tf.float32,
            )
            grads = input_gradient(scores, index, x_copies + sigma_copies * eps)
            if absolute:
                grads = tf.abs(grads)
            elif squared:
                grads = tf.square(grads)
            elif variance:
                grads -= shift_copies
            pieces = tf.split(grads, [g * k_t for _, k_t in groups])
            for (t, k_t), s_t, piece in zip(groups, by_group, pieces, strict=True):
                piece = tf.reshape(piece, (g, k_t, height, width, channels))
                if masked:  # the last step's surplus copies are drawn but not counted
                    piece *= tf.cast(s_t < samples, tf.float32)[None, :, None, None, None]
                total += unorient(tf.reduce_sum(piece, axis=1), t)
                if variance:
                    total_sq += unorient(tf.reduce_sum(tf.square(piece), axis=1), t)
        if squared:
            return tf.reduce_max(total / samples, axis=-1)
        if variance:
            mean = total / samples
            return tf.reduce_max(tf.nn.relu(total_sq / samples - tf.square(mean)), axis=-1)
        return attribution_map(total / samples, x, attribution)

    return chunk_maps


def noisy_gradient_maps(
    model: keras.Model,
    images: np.ndarray,
    index: int,
    samples: int,
    noise: float,
    symmetries: int,
    batch_size: int,
    statistic: str,
    what: str,
    seed: int = 0,
    keys: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """The sampling loop SmoothGrad, SmoothGrad-Squared and VarGrad share: raw maps (n, H, W) of
    ``statistic`` (:data:`STATISTICS`) over ``samples`` >= 1 noisy (and, with ``symmetries`` > 1,
    turned) copies of each image, not yet normalised; ``what`` names the maps in messages.

    Copy s of image x is x + e, e ~ Normal(0, sigma^2) per pixel, sigma = ``noise`` * (max(x) -
    min(x)), drawn from TensorFlow's stateless generator keyed by (the image's noise key, s); see
    :class:`SmoothGrad`.
    """
    images = check_inputs(model, images, index)
    n, height, width, channels = images.shape
    name = what.split()[0]  # the explainer's name, e.g. "smoothgrad" of "smoothgrad N=48"
    if symmetries > 1 and height != width:
        raise ValueError(f"{name}: symmetries = {symmetries} needs square images, got {height} x {width}")
    galaxy_keys = noise_keys(keys, n, seed)
    g, k, steps = sample_layout(samples, batch_size, symmetries)
    chunk_maps = _smoothgrad_function(
        model, samples, float(noise), symmetries, (g, height, width, channels), k, steps, statistic
    )
    index = tf.constant(index, tf.int32)
    with progress_bar(n, what, progress) as bar:
        maps = map_chunks(chunk_maps, [images, galaxy_keys], g, [index], bar=bar)
    log.debug(
        "%s: %d galaxies x %d samples per batch, %d step(s); traced %d time(s)",
        name,
        g,
        k,
        steps,
        chunk_maps.experimental_get_tracing_count(),
    )
    return maps


@dataclasses.dataclass(frozen=True)
class SmoothGrad(Explainer):
    """SmoothGrad maps: the gradient averaged over ``samples`` N noisy copies of each image.

    ``noise`` S_noise is the noise sigma as a fraction of each image's value range: copy s of image
    x is x + e, e ~ Normal(0, sigma^2) per pixel, sigma = noise * (max(x) - min(x)). ``samples`` = 0
    is the :class:`Vanilla` map. At most ``batch_size`` noisy copies are in flight at once (this
    bounds peak memory). The noise of copy s of an image comes from TensorFlow's stateless
    generator keyed by (the image's noise key, s), the noise key hashing (``seed``, the image's key;
    default its position; the heatmap stage passes object ids): same (seed, key) -> same map,
    whatever ``batch_size`` and whichever other images are explained with it.

    ``symmetries`` (1, 4 or 8; 1 is the paper's SmoothGrad): noisy copy s is shown to the model
    turned by symmetry s mod ``symmetries`` of the square (quarter turns, then also flips) and its
    gradient turned back, so the N samples also average over orientations at no extra cost. A
    galaxy has no preferred orientation, and the models were trained on rotated copies; averaging
    removes what the explanation owes to the orientation in the frame (exactly, for quarter turns
    when noise = 0). Needs square images.

    ``attribution``: ``"abs_gradient"`` (the paper's, tf-keras-vis's: the mean of |gradient| over
    the copies, channel maximum) or ``"input_x_gradient"`` (the mean *signed* gradient times the
    clean input, summed over channels, positive part).
    """

    name = "smoothgrad"
    samples: int
    noise: float
    _: dataclasses.KW_ONLY
    symmetries: int = 1
    attribution: str = "abs_gradient"

    def __post_init__(self) -> None:
        check_attribution(self.attribution)
        if self.symmetries not in SYMMETRIES:
            raise ValueError(f"smoothgrad: symmetries = {self.symmetries}: expected one of {SYMMETRIES}")
        if self.samples < 0 or not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(
                f"smoothgrad: samples = {self.samples} and noise = {self.noise}: expected samples >= 0 and noise >= 0"
            )
        super().__post_init__()

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> SmoothGrad:
        sg = xai.smoothgrad
        return cls(
            index,
            sg.samples,
            sg.noise,
            batch_size=sg.batch_size,
            symmetries=sg.symmetries,
            attribution=xai.attribution,
        )

    @property
    def stochastic(self) -> bool:
        return self.samples > 0

    def explain(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        if self.samples == 0:
            vanilla = Vanilla(self.index, batch_size=self.batch_size, attribution=self.attribution)
            return vanilla(model, images, progress=progress)
        what = f"smoothgrad N={self.samples}"
        maps = noisy_gradient_maps(
            model,
            images,
            self.index,
            self.samples,
            self.noise,
            self.symmetries,
            self.batch_size,
            self.attribution,
            what,
            seed=seed,
            keys=keys,
            progress=progress,
        )
        return finish_maps(maps, what)
