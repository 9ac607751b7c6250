"""Which explanation measures bars? Every explainer on one model and one set of galaxies, scored
against the true bar (issue #15).

For one trained model and a fixed subset of test galaxies with known bars (the synthetic sky's
``truth.csv``), :func:`run_study` runs every explainer of :data:`galaxy_xai.xai.explainers.EXPLAINERS`
and scores its maps on the same galaxies:

* **localisation** (:mod:`galaxy_xai.xai.localisation`): the relevance mass inside the true bar ellipse,
  the relevance rank accuracy and the pointing game (each galaxy's mask at map resolution; the
  mask's mean area fraction is what a uniform map scores);
* **faithfulness** (:mod:`galaxy_xai.xai.faithfulness`, Petsiuk et al. 2018): the areas under the
  deletion curve (pixels replaced by the sky level, :func:`~galaxy_xai.xai.faithfulness.sky_baseline`;
  smaller is more faithful) and the insertion curve (pixels put back into a blurred copy,
  :func:`~galaxy_xai.xai.faithfulness.blurred_baseline`; larger is more faithful), in units of the
  model's bar vote fraction (the sigmoid output of the explained answer), on ``steps`` steps;
* **randomisation** (:mod:`galaxy_xai.xai.sanity`, Adebayo et al. 2018): the Spearman rank correlation
  (of |map|) and the SSIM of each map of the *fully randomised* model (every learnt layer
  re-initialised, seeded) against the trained model's map; 1 means the map ignores the model.
  The cascade (:func:`cascade_scores`): the same similarities after each learnt layer is
  re-initialised, output first, cumulatively, on the first ``cascade`` galaxies;
* **data randomisation** (Adebayo et al. 2018, Sec. 4; optional): the same model recipe trained on
  permuted labels (the stage trains it); its maps' similarity to the trained model's, their mass in
  the bar and their lengths' rho against the truth, which must fall to the null;
* **bar length**: Spearman's rho of the length Algorithm 1 reads off each map (the grid search's
  setting, :mod:`galaxy_xai.bars.barlength`) against the true length, for the trained model's maps and
  for the randomised model's maps. An explainer whose randomised-model lengths keep a correlation
  measures the image (its light), not the model; the null is 0.

Every per-galaxy score is summarised by its mean with a 95% percentile bootstrap interval over the
galaxies (:func:`galaxy_xai.xai.localisation.mean_intervals`), the correlations by their bootstrap
interval (:func:`galaxy_xai.statistics.bootstrap_ci`).

Each explainer's *true* resolution (:func:`resolution`) is reported with it: the gradient methods
resolve single input pixels; occlusion resolves its stride (patches of ``patch`` px); the
class-activation maps (Grad-CAM, Grad-CAM++, Score-CAM) have the resolution of the last
convolution grid (2 x 2 for xception_small at 64 px), upsampled.

Shapes and units: images float32 (n, H, W, C) in [0, 1] (model inputs); maps float32 (n, H, W) in
[0, 1]; masks bool (n, H, W); lengths in 424-px image pixels; true bar geometry as in
:mod:`galaxy_xai.xai.localisation` (length in 424-px pixels, axis ratio, angle in degrees).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from galaxy_xai import statistics, units
from galaxy_xai.bars import barlength
from galaxy_xai.config import METHODS, XaiConfig
from galaxy_xai.xai import explainers, faithfulness, localisation, sanity
from galaxy_xai.xai.explainers.core import score_model
from galaxy_xai.xai.explainers.gradcam import feature_tensor

log = logging.getLogger(__name__)

CAM_METHODS = ("gradcam", "gradcam_pp", "scorecam", "layercam")
"""Explainers whose maps are class-activation maps at a convolution grid's resolution (``xai.cam.grid_px``)."""

LOCALISATION_KEYS = ("mass_accuracy", "rank_accuracy", "pointing_game")
FAITHFULNESS_KEYS = ("deletion_auc", "insertion_auc")
RANDOMISATION_KEYS = ("spearman_abs", "ssim")


def resolution(name: str, model: keras.Model, xai: XaiConfig) -> dict:
    """The resolution an explainer really has on ``model``: {"grid_px": side of its own grid, "note"}.

    Gradient methods: the input grid (one value per input pixel). Occlusion: one value per patch
    position, ``(H - patch) // stride + 1`` a side (then spread over each patch). CAM methods: the
    spatial size of the feature map they weigh (``xai.cam.grid_px``'s, else the last convolutional
    one, :func:`~galaxy_xai.xai.explainers.gradcam.feature_tensor`).
    """
    side = int(model.input_shape[1])
    if name in CAM_METHODS:
        scores = score_model(model)
        layer = explainers.from_config(xai, method=name).feature_layer(scores)  # the layer the maps were read off
        grid = tuple(int(s) for s in feature_tensor(scores, layer).shape[1:3])
        return {"grid_px": grid[0], "note": f"{grid[0]}x{grid[1]} conv grid, upsampled to {side}x{side}"}
    if name == "occlusion":
        patch, stride = xai.occlusion.patch, xai.occlusion.stride
        grid = (side - patch) // stride + 1
        return {"grid_px": grid, "note": f"{grid}x{grid} patch positions ({patch} px patch, stride {stride})"}
    return {"grid_px": side, "note": f"{side}x{side} input pixels"}


def explain_all(
    model: keras.Model,
    images: np.ndarray,
    xai: XaiConfig,
    seed: int,
    keys: np.ndarray,
    names: Sequence[str] = METHODS,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Maps of every explainer in ``names``: ({name: float32 (n, H, W) in [0, 1]}, {name: seconds}).

    Each explainer is built with ``xai``'s settings as the heatmap stage builds its one
    (:func:`galaxy_xai.xai.explainers.from_config`: ``xai.target`` against ``xai.contrast``), so the
    default explainer's maps here are the heatmap stage's; stochastic ones use ``seed`` and the
    per-galaxy noise ``keys`` (n,).
    """
    maps, seconds = {}, {}
    for name in names:
        explainer = explainers.from_config(xai, method=name)
        began = time.perf_counter()
        maps[name] = np.asarray(explainer(model, images, seed=seed, keys=keys), dtype=np.float32)
        seconds[name] = time.perf_counter() - began
    return maps, seconds


def vote_score(model: keras.Model, index: int) -> Callable[[np.ndarray], np.ndarray]:
    """images (b, H, W, C) -> the model's output ``index`` (the answer's vote fraction) (b,) float64."""

    def score(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False))[:, index].astype(np.float64)

    return score


def bar_lengths_px424(maps: np.ndarray, grey: np.ndarray, choice: barlength.Choice, crop_px: int | None, linearity: str) -> np.ndarray:
    """Bar lengths (n,) in 424-px pixels of maps (n, H, W) with one setting ``choice``.

    The setting's map source is replaced by a single source (these maps): the grid search's mean
    sources (``mean_map``, ``mean_length``) reduce to the one model's map.
    """
    one = dataclasses.replace(choice, map_source="study")
    lengths = barlength.measure_choice({"study": maps}, grey, one, crop_px, linearity)
    return units.map_px_to_px424(lengths, grey.shape[-1], crop_px)


def correlation_with_interval(measured: np.ndarray, truth: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict:
    """Spearman rho of ``measured`` and ``truth`` (n,) and its 95% bootstrap interval: {"rho", "ci95", "n"}."""
    ok = np.isfinite(measured) & np.isfinite(truth)
    x, y = measured[ok], truth[ok]
    if x.size < 3 or np.ptp(x) == 0:
        return {"rho": float("nan"), "ci95": [float("nan"), float("nan")], "n": int(x.size)}
    return {
        "rho": statistics.spearman(x, y),
        "ci95": list(statistics.bootstrap_ci(x, y, "spearman", n_boot, rng)),
        "n": int(x.size),
    }


@dataclass(frozen=True)
class Galaxies:
    """The galaxies of the study: ``images`` float32 (n, H, W, C) in [0, 1]; ``bars``:
    {"length_px424", "axis_ratio", "angle_deg", "true_length_px424"} (n,) each, the true bar's
    ellipse and the true length the lengths are correlated with (the same on the synthetic sky);
    ``keys`` (n,): their noise keys."""

    images: np.ndarray
    bars: Mapping[str, np.ndarray]
    keys: np.ndarray


@dataclass(frozen=True)
class StudyOptions:
    """``n_boot``: bootstrap resamples of every interval; ``deletion_steps``: steps of the deletion and
    insertion curves; ``names``: the explainers; ``cascade``: galaxies of the cascading randomisation
    (0: none)."""

    n_boot: int
    deletion_steps: int = 16
    names: Sequence[str] = METHODS
    cascade: int = 0


@dataclass
class Study:
    """What :func:`run_study` found.

    ``explainers``: {name: {"resolution", "seconds", "seconds_random", <score>: {"mean", "ci95", "n"}
    for the localisation, faithfulness and randomisation scores, "spearman_truth",
    "spearman_truth_random": {"rho", "ci95", "n"}, "minus_default": the paired difference of that rho
    from the default explainer's {"difference", "ci95", "verdict"}, with a permuted-label model
    "permuted": {"spearman_abs", "ssim", "mass_accuracy": {"mean", "ci95", "n"}, "spearman_truth":
    {"rho", "ci95", "n"}}}}; ``mask_fraction``: {"mean", "ci95", "n"} (a uniform map's mass and rank
    accuracy); ``default``: the default explainer (``xai.method``); ``maps``, ``random_maps``: {name:
    (n, H, W)}; ``lengths_px424``, ``random_lengths_px424``: {name: (n,)}; ``masks``: (n, H, W) bool;
    ``cascade``: :func:`cascade_scores` on the first ``cascade`` galaxies, or None.
    """

    n: int
    explainers: dict[str, dict]
    mask_fraction: dict
    default: str
    maps: dict[str, np.ndarray]
    random_maps: dict[str, np.ndarray]
    lengths_px424: dict[str, np.ndarray]
    random_lengths_px424: dict[str, np.ndarray]
    masks: np.ndarray
    cascade: dict | None = None

    def to_json(self) -> dict:
        """The JSON-able part (no maps or per-galaxy arrays)."""
        out = {"n": self.n, "explainers": self.explainers, "mask_fraction": self.mask_fraction, "default": self.default}
        return out if self.cascade is None else {**out, "cascade": self.cascade}


@dataclass(frozen=True)
class _Scorer:
    """What scoring every explainer's maps shares: the galaxies, their true bars and the setting."""

    images: np.ndarray
    grey: np.ndarray
    deletion_base: np.ndarray
    insertion_base: np.ndarray
    masks: np.ndarray
    truth: np.ndarray
    score: Callable[[np.ndarray], np.ndarray]
    choice: barlength.Choice
    crop_px: int | None
    linearity: str
    deletion_steps: int
    seed: int
    n_boot: int

    def lengths(self, maps: np.ndarray) -> np.ndarray:
        return bar_lengths_px424(maps, self.grey, self.choice, self.crop_px, self.linearity)

    def entry(self, maps: np.ndarray, random_maps: np.ndarray, lengths: np.ndarray, random_lengths: np.ndarray,
              rng: np.random.Generator) -> dict:  # fmt: skip
        """One explainer's localisation, faithfulness and randomisation summaries and its lengths' rho."""
        per_galaxy = {k: v for k, v in localisation.localisation_scores(maps, self.masks).items() if k in LOCALISATION_KEYS}
        curves = faithfulness.deletion_insertion(
            self.images, maps, self.score, self.deletion_base, self.insertion_base, steps=self.deletion_steps, seed=self.seed
        )
        per_galaxy.update({k: curves[k] for k in FAITHFULNESS_KEYS})
        per_galaxy.update(sanity.map_similarity(maps, random_maps))
        return {
            **localisation.mean_intervals(per_galaxy, self.n_boot, rng),
            "spearman_truth": correlation_with_interval(lengths, self.truth, self.n_boot, rng),
            "spearman_truth_random": correlation_with_interval(random_lengths, self.truth, self.n_boot, rng),
        }

    def minus(self, lengths: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> dict:
        """The paired bootstrap difference of the two lengths' Spearman rho against the truth."""
        known = np.isfinite(self.truth) & np.isfinite(lengths) & np.isfinite(reference)
        return statistics.paired_bootstrap_difference(
            lengths[known], reference[known], self.truth[known], "spearman", self.n_boot, rng
        ).to_json()

    def permuted(self, maps: np.ndarray, permuted_maps: np.ndarray, rng: np.random.Generator) -> dict:
        """How the permuted-label model's maps compare: similarity, mass in the bar, their lengths' rho."""
        similarity = {
            **sanity.map_similarity(maps, permuted_maps),
            "mass_accuracy": localisation.localisation_scores(permuted_maps, self.masks)["mass_accuracy"],
        }
        return {
            **localisation.mean_intervals(similarity, self.n_boot, rng),
            "spearman_truth": correlation_with_interval(self.lengths(permuted_maps), self.truth, self.n_boot, rng),
        }


def run_study(
    model: keras.Model,
    galaxies: Galaxies,
    xai: XaiConfig,
    choice: barlength.Choice,
    crop_px: int | None,
    seed: int,
    options: StudyOptions,
    random_model: keras.Model | None = None,
    permuted_model: keras.Model | None = None,
    progress: Callable[[str], None] | None = None,
) -> Study:
    """Every explainer of ``options.names`` on ``galaxies``, scored against their true bars.

    ``choice``: the Algorithm 1 (or Fourier) setting the lengths are measured with; ``seed`` seeds
    the explainers' noise, the random model when ``random_model`` is None
    (``sanity.randomised_copy``; the ``twins`` stage's random-weights twin otherwise), the
    tie-breaks of the perturbation curves and the bootstrap. With ``permuted_model`` every explainer
    is also compared with that model's maps (data randomisation).
    """
    say = progress or log.info
    images, keys, names = np.asarray(galaxies.images, dtype=np.float32), galaxies.keys, list(options.names)
    n, map_px = len(images), images.shape[1]
    index = explainers.class_index(xai.target)
    rng = np.random.default_rng(seed)
    bars = galaxies.bars
    masks = localisation.bar_masks(bars["length_px424"], bars["axis_ratio"], bars["angle_deg"], map_px, crop_px)

    say(f"explaining {n} galaxies with the trained model: {', '.join(names)}")
    maps, seconds = explain_all(model, images, xai, seed, keys, names)
    if random_model is None:
        random_model = sanity.randomised_copy(model, None, seed)
    say("explaining them again with the fully randomised model")
    random_maps, random_seconds = explain_all(random_model, images, xai, seed, keys, names)
    permuted_maps: dict[str, np.ndarray] = {}
    if permuted_model is not None:
        say("explaining them again with the model trained on permuted labels")
        permuted_maps = explain_all(permuted_model, images, xai, seed, keys, names)[0]

    scorer = _Scorer(
        images, images.mean(axis=-1), faithfulness.sky_baseline(images), faithfulness.blurred_baseline(images), masks,
        np.asarray(bars["true_length_px424"], dtype=np.float64), vote_score(model, index), choice, crop_px,
        xai.linearity, options.deletion_steps, seed, options.n_boot,
    )  # fmt: skip
    lengths = {name: scorer.lengths(maps[name]) for name in names}
    random_lengths = {name: scorer.lengths(random_maps[name]) for name in names}
    default = xai.method if xai.method in names else names[0]
    results: dict[str, dict] = {}
    for name in names:
        say(f"scoring {name}")
        entry = {
            "resolution": resolution(name, model, xai),
            "seconds": seconds[name],
            "seconds_random": random_seconds[name],
            **scorer.entry(maps[name], random_maps[name], lengths[name], random_lengths[name], rng),
        }
        if name != default:
            entry["minus_default"] = scorer.minus(lengths[name], lengths[default], rng)
        if permuted_maps:
            entry["permuted"] = scorer.permuted(maps[name], permuted_maps[name], rng)
        results[name] = entry
    mask_fraction = localisation.mean_intervals({"m": masks.mean(axis=(1, 2))}, options.n_boot, rng)["m"]
    study = Study(n, results, mask_fraction, default, maps, random_maps, lengths, random_lengths, masks)
    if options.cascade > 0:
        m = min(int(options.cascade), n)
        say(f"cascading randomisation on {m} galaxies, every learnt layer, output first")
        reference = {name: maps[name][:m] for name in names}
        study.cascade = cascade_scores(model, images[:m], reference, xai, seed, keys[:m], options.n_boot, rng, say)
    return study


def cascade_scores(
    model: keras.Model,
    images: np.ndarray,
    reference: Mapping[str, np.ndarray],
    xai: XaiConfig,
    seed: int,
    keys: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Adebayo et al.'s cascading randomisation of ``model`` for every explainer of ``reference``.

    ``images`` (m, H, W, C); ``reference``: {name: the trained model's maps (m, H, W)}. After each
    learnt layer is re-initialised (:func:`galaxy_xai.xai.sanity.cascading_randomisation`, output first,
    cumulatively, seeded by ``seed``) every explainer explains ``images`` again (noise ``seed`` and
    ``keys``, as the reference) and its maps are compared with the reference.

    Returns {"layers": [names, output first], "n": m, "explainers": {name: {"spearman_abs", "ssim":
    [{"mean", "ci95", "n"} after layer 0, 1, ...]}}}.
    """
    say = progress or log.info
    names = list(reference)
    layers: list[str] = []
    scores: dict[str, dict[str, list]] = {name: {k: [] for k in RANDOMISATION_KEYS} for name in names}
    for depth, (layer, randomised) in enumerate(sanity.cascading_randomisation(model, seed)):
        maps = explain_all(randomised, images, xai, seed, keys, names)[0]
        layers.append(layer)
        for name in names:
            for key, value in localisation.mean_intervals(sanity.map_similarity(reference[name], maps[name]), n_boot, rng).items():
                scores[name][key].append(value)
        say(f"cascade step {depth + 1}: {layer} randomised")
    return {"layers": layers, "n": len(images), "explainers": scores}


def runnable(xai: XaiConfig, size_px: int, names: Sequence[str] = METHODS) -> tuple[list[str], dict[str, str]]:
    """The explainers of ``names`` that ``xai``'s settings allow, and {name: why not} for the others.

    VarGrad needs ``xai.smoothgrad.samples`` >= 2 and SmoothGrad-Squared >= 1; occlusion needs
    ``stride <= patch <= size_px``.
    """
    ok, skipped = [], {}
    samples = xai.smoothgrad.samples
    patch, stride = xai.occlusion.patch, xai.occlusion.stride
    for name in names:
        fewest = {"smoothgrad_sq": 1, "vargrad": 2}.get(name, 0)
        if samples < fewest:
            skipped[name] = f"xai.smoothgrad.samples = {samples} < {fewest}"
        elif name == "occlusion" and not stride <= patch <= size_px:
            skipped[name] = f"xai.occlusion stride {stride}, patch {patch}, input {size_px} px"
        else:
            ok.append(name)
    return ok, skipped
