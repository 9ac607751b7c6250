"""Does a map depend on the model? Cascading parameter randomisation and map similarity (Adebayo et al. 2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim (2018, NeurIPS, "Sanity checks for saliency maps",
Sec. 3): re-initialise the model's learnt layers from the top (output) down, cumulatively, explain
the same images with each partly random model and compare the maps with the trained model's. A map
that barely changes when the weights that produced the prediction are destroyed explains the image,
not the model.

* :func:`learnt_layers` lists the layers with trainable weights, nested models flattened, top down.
  Layers whose weights are all frozen (``trainable=False``: e.g. ``models``' fixed VGG preprocessing
  ``caffe_preprocess``) hold no learnt parameters and are kept, unless ``include_frozen``.
* :func:`reinitialise_layer` redraws every variable of a layer, trainable or not (BatchNorm's moving
  statistics too), with the layer's own initializer for that variable (``kernel`` ->
  ``kernel_initializer``, ``depthwise_kernel`` -> ``depthwise_initializer``, ``gamma`` ->
  ``gamma_initializer``, ...) re-seeded, else with a seeded normal (mean 0, standard deviation 0.05,
  Keras' ``RandomNormal`` default). Layer ``d`` of the top-down order gets the seed
  ``SeedSequence([seed, d])``, so a step's weights do not depend on how it was reached.
* :func:`cascading_randomisation` yields ``(layer name, model)`` after each layer is randomised, on
  one copy of the model (the original is never touched); :func:`randomised_copy` makes one step's
  model directly.
* :func:`permute_labels` is the data randomisation test's input (Adebayo et al. 2018, Sec. 4): the
  same images with their label rows shuffled among the galaxies of each split, so a model trained on
  them can learn nothing that links a galaxy's appearance to its votes.
* Similarity of two stacks of maps (n, H, W), per map: :func:`spearman_maps`, the Spearman rank
  correlation of the pixels' absolute values (the paper's "rank correlation (ABS)"; ``absolute=False``
  its "no ABS" variant), and :func:`ssim_maps`, the structural similarity of Wang, Bovik, Sheikh &
  Simoncelli (2004, IEEE TIP 13, 600): Gaussian windows (sigma 1.5 px, 11 x 11), K1 = 0.01,
  K2 = 0.03, the mean over the pixels whose window lies inside the map. Both are 1 for identical
  maps; SSIM is negative for anti-correlated structure (a map against its negative).
  A map's scale carries no meaning, so ``ssim_maps`` min-max rescales each map to [0, 1]
  (:func:`galaxy_xai.xai.maps.normalise_maps`) and uses a dynamic range L = 1 unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import pandas as pd
from scipy import ndimage

from galaxy_xai import statistics
from galaxy_xai.xai import maps as map_utils

FALLBACK_STDDEV = 0.05
"""Standard deviation of the seeded normal used for a variable without its own initializer."""

SSIM_SIGMA_PX, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03
"""Wang et al. (2004): Gaussian window of sigma 1.5 px cut at 3.5 sigma (11 x 11 px), K1, K2."""


# --- randomising a model ---------------------------------------------------------------------------------
def _leaves(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaves(layer)
        else:
            yield layer


def learnt_layers(model: keras.Model, include_frozen: bool = False) -> list[keras.layers.Layer]:
    """The model's layers that hold learnt weights, output first (nested models flattened).

    A layer counts when it has trainable weights (or any weights, with ``include_frozen``).
    """
    layers = [layer for layer in _leaves(model) if (layer.weights if include_frozen else layer.trainable_weights)]
    return layers[::-1]


def copy_model(model: keras.Model) -> keras.Model:
    """A new model of the same architecture and the same weights (``keras.models.clone_model``)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _initializer(layer: keras.layers.Layer, name: str):
    """The layer's own initializer for its variable ``name``, or None."""
    candidates = [f"{name}_initializer"]
    if name.endswith("_kernel"):
        candidates.append(f"{name[: -len('_kernel')]}_initializer")  # depthwise_kernel -> depthwise_initializer
    if name == "kernel":
        candidates.append("depthwise_initializer")  # DepthwiseConv2D names its kernel "kernel"
    for attribute in candidates:
        initializer = getattr(layer, attribute, None)
        if initializer is not None:
            return keras.initializers.get(initializer)
    return None


def _seeded(initializer, seed: int):
    config = initializer.get_config()
    if "seed" not in config:
        return initializer  # deterministic (zeros, ones, constant)
    return initializer.__class__.from_config({**config, "seed": seed})


def _seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0] >> 1)  # a non-negative int32


def reinitialise_layer(layer: keras.layers.Layer, seed: int) -> list[str]:
    """Redraw every variable of ``layer`` in place, seeded; returns the variables' names and how
    each was drawn, e.g. ``"kernel: GlorotUniform"`` or ``"w: normal(0.05)"``."""
    drawn = []
    for index, variable in enumerate(layer.weights):
        name = variable.name.split("/")[-1]
        seed_i = _seed(seed, index)
        initializer = _initializer(layer, name)
        if initializer is None:
            initializer = keras.initializers.RandomNormal(stddev=FALLBACK_STDDEV, seed=seed_i)
            how = f"normal({FALLBACK_STDDEV})"
        else:
            initializer = _seeded(initializer, seed_i)
            how = type(initializer).__name__
        variable.assign(keras.ops.cast(initializer(tuple(variable.shape), dtype=variable.dtype), variable.dtype))
        drawn.append(f"{name}: {how}")
    return drawn


def cascading_randomisation(
    model: keras.Model, seed: int, include_frozen: bool = False
) -> Iterator[tuple[str, keras.Model]]:
    """Adebayo et al.'s cascade: yield ``(layer name, model)`` after re-initialising each learnt layer,
    output first, cumulatively (step ``d`` has the top ``d + 1`` layers random).

    Every step yields the *same* copy of ``model``, randomised one layer further (so a compiled
    explainer traced on it keeps working); copy it (:func:`copy_model`) to keep a step. ``model``
    itself is not changed.
    """
    clone = copy_model(model)
    for depth, layer in enumerate(learnt_layers(clone, include_frozen)):
        reinitialise_layer(layer, _seed(seed, depth))
        yield layer.name, clone


def randomised_copy(model: keras.Model, n_layers: int | None, seed: int, include_frozen: bool = False) -> keras.Model:
    """A copy of ``model`` with its top ``n_layers`` learnt layers re-initialised (None: all of them),
    identical to step ``n_layers - 1`` of :func:`cascading_randomisation` with the same seed."""
    clone = copy_model(model)
    layers = learnt_layers(clone, include_frozen)
    for depth, layer in enumerate(layers[: len(layers) if n_layers is None else n_layers]):
        reinitialise_layer(layer, _seed(seed, depth))
    return clone


def permute_labels(table: pd.DataFrame, columns: Sequence[str], seed: int, split_column: str = "split") -> pd.DataFrame:
    """A copy of ``table`` whose rows of ``columns`` (the labels, e.g. the 37 vote fractions) are
    permuted among the rows of each ``split_column`` value, seeded; every other column is unchanged.

    Each label row stays whole (a valid answer-tree vector) and each split keeps its label distribution.
    """
    missing = [c for c in (*columns, split_column) if c not in table.columns]
    if missing:
        raise ValueError(f"permute_labels: the table has no column(s) {', '.join(missing)}")
    rng = np.random.default_rng(seed)
    out = table.copy()
    labels = table[list(columns)].to_numpy()
    shuffled = labels.copy()
    for split in sorted(table[split_column].astype(str).unique()):
        rows = np.flatnonzero(table[split_column].astype(str).to_numpy() == split)
        shuffled[rows] = labels[rng.permutation(rows)]
    out[list(columns)] = shuffled
    return out


# --- similarity of maps ------------------------------------------------------------------------------------
def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"expected two stacks of maps of one shape (n, H, W); got {a.shape}, {b.shape}")
    return a, b


def spearman_maps(a, b, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation of the pixels of each pair of maps (n, H, W): (n,) in [-1, 1].

    ``absolute`` ranks |map| (Adebayo et al.'s "ABS" variant). NaN where a map is constant.
    """
    a, b = _pair(a, b)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    n = len(a)
    return statistics.spearman_columns(a.reshape(n, -1).T, b.reshape(n, -1).T)


def ssim_maps(
    a,
    b,
    normalise: bool = True,
    data_range: float | None = None,
    sigma_px: float = SSIM_SIGMA_PX,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> np.ndarray:
    """Mean structural similarity (Wang et al. 2004) of each pair of maps (n, H, W): (n,) in [-1, 1].

    ``normalise`` rescales each map to [0, 1] first (dynamic range L = 1); otherwise L is
    ``data_range`` or, if None, each pair's joint range (max - min over both maps). Local means,
    variances and the covariance use a Gaussian window of ``sigma_px`` (truncated at 3.5 sigma,
    reflecting edges); the mean skips the border of ``round(3.5 sigma)`` px where the window
    leaves the map, when the map is larger than two such borders.
    """
    a, b = _pair(a, b)
    if normalise:
        a, b = map_utils.normalise_maps(a), map_utils.normalise_maps(b)
        span = np.ones(len(a))
    elif data_range is not None:
        span = np.full(len(a), float(data_range))
    else:
        span = np.maximum(a.max(axis=(1, 2)), b.max(axis=(1, 2))) - np.minimum(a.min(axis=(1, 2)), b.min(axis=(1, 2)))
    c1 = ((k1 * span) ** 2)[:, None, None]
    c2 = ((k2 * span) ** 2)[:, None, None]

    def local_mean(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=(0, sigma_px, sigma_px), truncate=SSIM_TRUNCATE, mode="reflect")

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a**2
    var_b = local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    border = int(SSIM_TRUNCATE * sigma_px + 0.5)
    if min(a.shape[1:]) > 2 * border:
        index = index[:, border:-border, border:-border]
    return index.mean(axis=(1, 2))


def map_similarity(reference, other) -> dict[str, np.ndarray]:
    """Both similarities of each map to its reference (n, H, W): {"spearman_abs", "ssim": (n,)}."""
    return {"spearman_abs": spearman_maps(reference, other), "ssim": ssim_maps(reference, other)}


def cascade_similarity(
    model: keras.Model,
    explain: Callable[[keras.Model, np.ndarray], np.ndarray],
    images: np.ndarray,
    seed: int,
    include_frozen: bool = False,
) -> dict:
    """Run the cascade and compare each step's maps with the trained model's.

    ``explain(model, images)`` -> maps (n, H, W). Returns {"layers": [names, output first],
    "spearman_abs", "ssim": (n_layers, n) arrays, row d after randomising layers 0..d}.
    """
    reference = np.asarray(explain(model, images))
    names, spearman, ssim = [], [], []
    for name, randomised in cascading_randomisation(model, seed, include_frozen):
        similarity = map_similarity(reference, explain(randomised, images))
        names.append(name)
        spearman.append(similarity["spearman_abs"])
        ssim.append(similarity["ssim"])
    return {"layers": names, "spearman_abs": np.array(spearman), "ssim": np.array(ssim)}
