"""Which explanation measures bars? Every explainer on one model and one set of galaxies, scored
against the true bar (issue #15).

For one trained model and a fixed subset of test galaxies with known bars (the synthetic sky's
``truth.csv``), :func:`run_study` runs every explainer of :data:`galaxy_xai.explainers.EXPLAINERS`
and scores its maps on the same galaxies:

* **localisation** (:mod:`galaxy_xai.localisation`): the relevance mass inside the true bar ellipse,
  the relevance rank accuracy and the pointing game (each galaxy's mask at map resolution; the
  mask's mean area fraction is what a uniform map scores);
* **faithfulness** (:mod:`galaxy_xai.faithfulness`, Petsiuk et al. 2018): the areas under the
  deletion curve (pixels replaced by the sky level, :func:`~galaxy_xai.faithfulness.sky_baseline`;
  smaller is more faithful) and the insertion curve (pixels put back into a blurred copy,
  :func:`~galaxy_xai.faithfulness.blurred_baseline`; larger is more faithful), in units of the
  model's bar vote fraction (the sigmoid output of the explained answer), on ``steps`` steps;
* **randomisation** (:mod:`galaxy_xai.sanity`, Adebayo et al. 2018): the Spearman rank correlation
  (of |map|) and the SSIM of each map of the *fully randomised* model (every learnt layer
  re-initialised, seeded) against the trained model's map; 1 means the map ignores the model.
  The cascade (:func:`cascade_scores`): the same similarities after each learnt layer is
  re-initialised, output first, cumulatively, on the first ``cascade`` galaxies;
* **data randomisation** (Adebayo et al. 2018, Sec. 4; optional): the same model recipe trained on
  permuted labels (the stage trains it); its maps' similarity to the trained model's, their mass in
  the bar and their lengths' rho against the truth, which must fall to the null;
* **bar length**: Spearman's rho of the length Algorithm 1 reads off each map (the grid search's
  setting, :mod:`galaxy_xai.barlength`) against the true length, for the trained model's maps and
  for the randomised model's maps. An explainer whose randomised-model lengths keep a correlation
  measures the image (its light), not the model; the null is 0.

Every per-galaxy score is summarised by its mean with a 95% percentile bootstrap interval over the
galaxies (:func:`galaxy_xai.localisation.mean_intervals`), the correlations by their bootstrap
interval (:func:`galaxy_xai.statistics.bootstrap_ci`).

Each explainer's *true* resolution (:func:`resolution`) is reported with it: the gradient methods
resolve single input pixels; occlusion resolves its stride (patches of ``patch`` px); the
class-activation maps (Grad-CAM, Grad-CAM++, Score-CAM) have the resolution of the last
convolution grid (2 x 2 for xception_small at 64 px), upsampled.

Shapes and units: images float32 (n, H, W, C) in [0, 1] (model inputs); maps float32 (n, H, W) in
[0, 1]; masks bool (n, H, W); lengths in 424-px image pixels; true bar geometry as in
:mod:`galaxy_xai.localisation` (length in 424-px pixels, axis ratio, angle in degrees).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np

from galaxy_xai import barlength, explainers, faithfulness, localisation, sanity, statistics, units
from galaxy_xai.config import METHODS, XaiConfig
from galaxy_xai.explainers.core import score_model
from galaxy_xai.explainers.gradcam import feature_tensor
from galaxy_xai.figures import MAP_CMAP, ellipse_outline, plt, save

log = logging.getLogger(__name__)

CAM_METHODS = ("gradcam", "gradcam_pp", "scorecam")
"""Explainers whose maps are class-activation maps at the last convolution grid's resolution."""

LOCALISATION_KEYS = ("mass_accuracy", "rank_accuracy", "pointing_game")
FAITHFULNESS_KEYS = ("deletion_auc", "insertion_auc")
RANDOMISATION_KEYS = ("spearman_abs", "ssim")


def resolution(name: str, model: keras.Model, xai: XaiConfig) -> dict:
    """The resolution an explainer really has on ``model``: {"grid_px": side of its own grid, "note"}.

    Gradient methods: the input grid (one value per input pixel). Occlusion: one value per patch
    position, ``(H - patch) // stride + 1`` a side (then spread over each patch). CAM methods: the
    spatial size of the last convolutional feature map (:func:`~galaxy_xai.explainers.gradcam.feature_tensor`).
    """
    side = int(model.input_shape[1])
    if name in CAM_METHODS:
        grid = tuple(int(s) for s in feature_tensor(score_model(model)).shape[1:3])
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
    index: int,
    seed: int,
    keys: np.ndarray,
    names: Sequence[str] = METHODS,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Maps of every explainer in ``names``: ({name: float32 (n, H, W) in [0, 1]}, {name: seconds}).

    Each explainer is built with ``xai``'s settings (:meth:`Explainer.from_config`) for output
    ``index``; stochastic ones use ``seed`` and the per-galaxy noise ``keys`` (n,).
    """
    maps, seconds = {}, {}
    for name in names:
        explainer = explainers.EXPLAINERS[name].from_config(xai, index)
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


def run_study(
    model: keras.Model,
    images: np.ndarray,
    bars: Mapping[str, np.ndarray],
    xai: XaiConfig,
    choice: barlength.Choice,
    crop_px: int | None,
    seed: int,
    keys: np.ndarray,
    n_boot: int,
    deletion_steps: int = 16,
    names: Sequence[str] = METHODS,
    cascade: int = 0,
    random_model: keras.Model | None = None,
    permuted_model: keras.Model | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Every explainer's scores against the true bars of ``images`` (n, H, W, C).

    ``bars``: {"length_px424", "axis_ratio", "angle_deg", "true_length_px424"} (n,) each: the true
    bar's ellipse and the true length the lengths are correlated with (the same in the synthetic
    sky). ``choice``: the Algorithm 1 (or Fourier) setting the lengths are measured with;
    ``keys`` (n,): the galaxies' noise keys; ``seed`` seeds the explainers' noise, the random
    model when ``random_model`` is None (``sanity.randomised_copy``; the ``twins`` stage's
    random-weights twin otherwise), the tie-breaks of the perturbation curves and the bootstrap.

    Returns {"explainers": {name: {"resolution", "seconds", <score>: {"mean", "ci95", "n"} for the
    localisation, faithfulness and randomisation scores, "spearman_truth", "spearman_truth_random":
    {"rho", "ci95", "n"}, "minus_default": the paired difference of that rho from the default
    explainer's (``xai.method``) {"difference", "ci95", "verdict"}, with ``permuted_model``
    "permuted": {"spearman_abs", "ssim", "mass_accuracy": {"mean", "ci95", "n"}, "spearman_truth":
    {"rho", "ci95", "n"}}}}, "mask_fraction": {"mean", "ci95", "n"} (a uniform map's mass and rank
    accuracy), "n", "default", "maps", "random_maps": {name: (n, H, W)}, "lengths_px424",
    "random_lengths_px424": {name: (n,)}, "masks": (n, H, W) bool, with ``cascade`` > 0
    "cascade" (:func:`cascade_scores` on the first ``cascade`` galaxies)}.
    """
    say = progress or log.info
    images = np.asarray(images, dtype=np.float32)
    n, map_px = len(images), images.shape[1]
    index = explainers.class_index(xai.target)
    rng = np.random.default_rng(seed)
    masks = localisation.bar_masks(bars["length_px424"], bars["axis_ratio"], bars["angle_deg"], map_px, crop_px)
    truth = np.asarray(bars["true_length_px424"], dtype=np.float64)
    grey = images.mean(axis=-1)

    say(f"explaining {n} galaxies with the trained model: {', '.join(names)}")
    maps, seconds = explain_all(model, images, xai, index, seed, keys, names)
    if random_model is None:
        random_model = sanity.randomised_copy(model, None, seed)
    say("explaining them again with the fully randomised model")
    random_maps, random_seconds = explain_all(random_model, images, xai, index, seed, keys, names)
    permuted_maps: dict[str, np.ndarray] = {}
    if permuted_model is not None:
        say("explaining them again with the model trained on permuted labels")
        permuted_maps = explain_all(permuted_model, images, xai, index, seed, keys, names)[0]

    score = vote_score(model, index)
    deletion_base, insertion_base = faithfulness.sky_baseline(images), faithfulness.blurred_baseline(images)
    lengths = {name: bar_lengths_px424(maps[name], grey, choice, crop_px, xai.linearity) for name in names}
    random_lengths = {name: bar_lengths_px424(random_maps[name], grey, choice, crop_px, xai.linearity) for name in names}
    default = xai.method if xai.method in names else names[0]
    out: dict = {}
    for name in names:
        say(f"scoring {name}")
        per_galaxy = {k: v for k, v in localisation.localisation_scores(maps[name], masks).items() if k in LOCALISATION_KEYS}
        curves = faithfulness.deletion_insertion(
            images, maps[name], score, deletion_base, insertion_base, steps=deletion_steps, seed=seed
        )
        per_galaxy.update({k: curves[k] for k in FAITHFULNESS_KEYS})
        per_galaxy.update(sanity.map_similarity(maps[name], random_maps[name]))
        entry = {
            "resolution": resolution(name, model, xai),
            "seconds": seconds[name],
            "seconds_random": random_seconds[name],
            **localisation.mean_intervals(per_galaxy, n_boot, rng),
            "spearman_truth": correlation_with_interval(lengths[name], truth, n_boot, rng),
            "spearman_truth_random": correlation_with_interval(random_lengths[name], truth, n_boot, rng),
        }
        if name != default:
            known = np.isfinite(truth) & np.isfinite(lengths[name]) & np.isfinite(lengths[default])
            entry["minus_default"] = statistics.paired_bootstrap_difference(
                lengths[name][known], lengths[default][known], truth[known], "spearman", n_boot, rng
            ).to_json()
        if permuted_maps:
            entry["permuted"] = {
                **localisation.mean_intervals(
                    {
                        **sanity.map_similarity(maps[name], permuted_maps[name]),
                        "mass_accuracy": localisation.localisation_scores(permuted_maps[name], masks)["mass_accuracy"],
                    },
                    n_boot,
                    rng,
                ),
                "spearman_truth": correlation_with_interval(
                    bar_lengths_px424(permuted_maps[name], grey, choice, crop_px, xai.linearity), truth, n_boot, rng
                ),
            }
        out[name] = entry
    study = {
        "n": n,
        "explainers": out,
        "mask_fraction": localisation.mean_intervals({"m": masks.mean(axis=(1, 2))}, n_boot, rng)["m"],
        "default": default,
        "maps": maps,
        "random_maps": random_maps,
        "lengths_px424": lengths,
        "random_lengths_px424": random_lengths,
        "masks": masks,
    }
    if cascade > 0:
        m = min(int(cascade), n)
        say(f"cascading randomisation on {m} galaxies, every learnt layer, output first")
        reference = {name: maps[name][:m] for name in names}
        study["cascade"] = cascade_scores(model, images[:m], reference, xai, index, seed, keys[:m], n_boot, rng, say)
    return study


def cascade_scores(
    model: keras.Model,
    images: np.ndarray,
    reference: Mapping[str, np.ndarray],
    xai: XaiConfig,
    index: int,
    seed: int,
    keys: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Adebayo et al.'s cascading randomisation of ``model`` for every explainer of ``reference``.

    ``images`` (m, H, W, C); ``reference``: {name: the trained model's maps (m, H, W)}. After each
    learnt layer is re-initialised (:func:`galaxy_xai.sanity.cascading_randomisation`, output first,
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
        maps = explain_all(randomised, images, xai, index, seed, keys, names)[0]
        layers.append(layer)
        for name in names:
            for key, value in localisation.mean_intervals(sanity.map_similarity(reference[name], maps[name]), n_boot, rng).items():
                scores[name][key].append(value)
        say(f"cascade step {depth + 1}: {layer} randomised")
    return {"layers": layers, "n": len(images), "explainers": scores}


def best_explainer(results: Mapping[str, Mapping]) -> str:
    """The explainer with the highest Spearman rho of its lengths against the true length."""
    rhos = {name: r["spearman_truth"]["rho"] for name, r in results.items()}
    finite = {k: v for k, v in rhos.items() if np.isfinite(v)}
    if not finite:
        raise ValueError("best_explainer: no explainer has a finite Spearman rho against the truth")
    return max(finite, key=finite.get)


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


def to_json(study: Mapping) -> dict:
    """The JSON-able part of :func:`run_study`'s result (no maps or per-galaxy arrays)."""
    return {k: v for k, v in study.items() if k in ("n", "default", "explainers", "mask_fraction", "cascade")}


def _number(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` decimals, "-" when it is not finite (e.g. a similarity of constant maps)."""
    return f"{value:.{digits}f}" if np.isfinite(value) else "-"


def _interval(score: Mapping, key: str = "mean", digits: int = 2) -> str:
    value, (lo, hi) = score[key], score["ci95"]
    if not np.isfinite(value):
        return "-"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


TABLE_HEADER = (
    "| explainer | true resolution | mass in bar | rank accuracy | pointing game | deletion AUC (lower better) "
    "| insertion AUC (higher better) | random-model Spearman of maps | random-model SSIM | Spearman vs true length "
    "| same, randomised model (null 0) | minus default, paired | s (trained + random) |"
)


def verdict_sentence(study: Mapping) -> str:
    """One plain sentence: which explainer measures bars best and whether the default should change.

    "Best" is the highest Spearman rho of its Algorithm 1 lengths against the true length; the
    default should change only if the paired bootstrap interval of the difference from the default
    excludes 0 (verdict "beats") and the winner's lengths fall to the null when the model is
    randomised (the interval of the randomised model's rho contains 0).
    """
    results, default = study["explainers"], study["default"]
    best = best_explainer(results)
    r = results[best]
    rho, (lo, hi) = r["spearman_truth"]["rho"], r["spearman_truth"]["ci95"]
    random = r["spearman_truth_random"]
    null_ok = bool(np.isfinite(random["ci95"][0]) and random["ci95"][0] <= 0 <= random["ci95"][1])
    survival = (
        "its lengths fall to the null when the model is randomised"
        if null_ok
        else (
            f"but its lengths keep Spearman {random['rho']:.2f} [{random['ci95'][0]:.2f}, {random['ci95'][1]:.2f}] on the "
            "fully randomised model, so much of what it measures is the image's light, not the model"
        )
    )
    if best == default:
        return (
            f"On these {study['n']} galaxies the default explainer, {default}, measures bars best "
            f"(Spearman {rho:.2f} [{lo:.2f}, {hi:.2f}] against the true length), {survival}; no other explainer "
            "does better, so the default should not change."
        )
    diff = r["minus_default"]
    change = diff["verdict"] == "beats" and null_ok
    caveat = "" if lo > 0 else " (its interval contains 0: on this model no explainer's lengths are shown to follow the truth)"
    return (
        f"On these {study['n']} galaxies {best} measures bars best (Spearman {rho:.2f} [{lo:.2f}, {hi:.2f}] against "
        f"the true length{caveat}; the default {default}: {results[default]['spearman_truth']['rho']:.2f}; paired difference "
        f"{diff['difference']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}], {diff['verdict']}), {survival}; "
        f"the default {'should change to ' + best if change else 'should not change on this evidence'}."
    )


def markdown(study: Mapping, model_name: str, choice: barlength.Choice, steps: int) -> str:
    """metrics/explainers.md: the table (means or rhos with 95% bootstrap intervals) and the verdict."""
    results = study["explainers"]
    lines = [
        f"# Explainers against the true bar ({model_name}, {study['n']} test galaxies)",
        "",
        f"Each cell: mean over galaxies (or Spearman rho) [95% bootstrap interval]. Mask = the true bar's ellipse "
        f"at map resolution; a uniform map scores its area fraction "
        f"{_interval(study['mask_fraction'], digits=3)} on mass and rank accuracy. Deletion / insertion: areas "
        f"under the bar vote-fraction curve over {steps} steps (sky-level / blurred baselines). Random model: "
        f"every learnt layer re-initialised. Lengths: Algorithm 1 with the grid search's setting "
        f"(T_c = {choice.corr_threshold:g}, T_l = {choice.len_threshold:g} px of 224, mask {choice.mask}, "
        f"X_input {str(choice.x_input).lower()}) on this model's maps.",
        "",
        TABLE_HEADER,
        "|" + "---|" * TABLE_HEADER.count(" | ") + "---|",
    ]
    for name, r in results.items():
        diff = r.get("minus_default")
        diff_text = (
            "(default)" if diff is None
            else f"{diff['difference']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}] {diff['verdict']}"
        )  # fmt: skip
        lines.append(
            f"| {name} | {r['resolution']['note']} | {_interval(r['mass_accuracy'])} | {_interval(r['rank_accuracy'])} "
            f"| {_interval(r['pointing_game'])} | {_interval(r['deletion_auc'], digits=3)} "
            f"| {_interval(r['insertion_auc'], digits=3)} | {_interval(r['spearman_abs'])} | {_interval(r['ssim'])} "
            f"| {_interval(r['spearman_truth'], 'rho')} | {_interval(r['spearman_truth_random'], 'rho')} "
            f"| {diff_text} | {r['seconds']:.1f} + {r['seconds_random']:.1f} |"
        )
    lines += ["", verdict_sentence(study), ""]
    lines += sanity_lines(study)
    return "\n".join(lines)


MODEL_DEPENDENCE_SPEARMAN = 0.5
"""A map whose Spearman rank correlation (of |map|) with the trained model's stays at or above this
after the weights or the labels are randomised is said to depend little on the model (a stated rule
of thumb: Adebayo et al. 2018 judge by eye; their failing maps stay near 0.5-1)."""


def model_independent(study: Mapping) -> dict[str, list[str]]:
    """{"random": explainers whose maps keep Spearman >= :data:`MODEL_DEPENDENCE_SPEARMAN` with the
    fully randomised model's, "permuted": the same with the permuted-label model's (empty if not run)}."""
    out: dict[str, list[str]] = {"random": [], "permuted": []}
    for name, r in study["explainers"].items():
        if r["spearman_abs"]["mean"] >= MODEL_DEPENDENCE_SPEARMAN:
            out["random"].append(name)
        if "permuted" in r and r["permuted"]["spearman_abs"]["mean"] >= MODEL_DEPENDENCE_SPEARMAN:
            out["permuted"].append(name)
    return out


def sanity_lines(study: Mapping) -> list[str]:
    """The sanity-check table (cascade, full and data randomisation) and its sentence, as Markdown lines."""
    results, cascade = study["explainers"], study.get("cascade")
    permuted = any("permuted" in r for r in results.values())
    if cascade is None and not permuted:
        return []
    lines = ["## Sanity checks (Adebayo et al. 2018)", ""]
    header, picks = ["explainer"], []
    if cascade is not None:
        n_layers = len(cascade["layers"])
        picks = sorted({0, n_layers // 2 - 1 if n_layers > 2 else 0, n_layers - 1})
        steps = " / ".join(f"top {d + 1}" for d in picks)
        header += [f"cascade Spearman of maps ({steps} of {n_layers} layers)", f"cascade SSIM ({steps})"]
        lines.append(
            f"Cascade: the learnt layers re-initialised from the output down, cumulatively ({', '.join(cascade['layers'])}), "
            f"on {cascade['n']} of the galaxies; each cell the mean similarity to the trained model's maps. "
        )
    if permuted:
        header += ["permuted labels: Spearman / SSIM of maps", "permuted labels: mass in bar"]
        lines.append(
            "Data randomisation: the same recipe trained on permuted vote fractions, on every galaxy of the table; "
            "its maps should share nothing with the trained model's and its lengths should fall to the null."
        )
    header.append("length Spearman vs truth: trained / random weights / permuted labels")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results.items():
        row = [name]
        if cascade is not None:
            scores = cascade["explainers"][name]
            row += [" / ".join(_number(scores[k][d]["mean"]) for d in picks) for k in RANDOMISATION_KEYS]
        if permuted:
            q = r["permuted"]
            row += [f"{_number(q['spearman_abs']['mean'])} / {_number(q['ssim']['mean'])}", _interval(q["mass_accuracy"])]
        rhos = [r["spearman_truth"], r["spearman_truth_random"]] + ([r["permuted"]["spearman_truth"]] if permuted else [])
        row.append(" / ".join(_number(x["rho"]) for x in rhos))
        lines.append("| " + " | ".join(row) + " |")
    independent = model_independent(study)
    sentence = (
        f"Maps that keep Spearman >= {MODEL_DEPENDENCE_SPEARMAN} with the trained model's when every weight is "
        f"re-initialised: {', '.join(independent['random']) or 'none'}"
    )
    if permuted:
        sentence += f"; when the labels are permuted: {', '.join(independent['permuted']) or 'none'}"
    lines += ["", sentence + ". Such maps show the image more than the model (they fail the check).", ""]
    return lines


def sanity_figure(path, study: Mapping, title: str) -> None:
    """Adebayo et al.'s Fig. 2 for our explainers: map similarity (Spearman of |map|, SSIM) to the trained
    model's after each cascade step, one line per explainer (the permuted-label model's value as a marker
    at the right), and each explainer's length Spearman vs the truth for the trained, randomised and
    permuted-label models with 95% intervals."""
    results, cascade = study["explainers"], study.get("cascade")
    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colours = plt.get_cmap("tab10")(np.arange(len(names)) % 10)
    for ax, key, label in zip(axes[:2], RANDOMISATION_KEYS, ("Spearman of |map|", "SSIM"), strict=True):
        if cascade is not None:
            x = np.arange(len(cascade["layers"]) + 1)
            for name, colour in zip(names, colours, strict=True):
                y = [1.0] + [step["mean"] for step in cascade["explainers"][name][key]]
                ax.plot(x, y, "-o", ms=3, color=colour, label=name)
                if "permuted" in results[name]:
                    ax.plot(x[-1] + 1.5, results[name]["permuted"][key]["mean"], "s", color=colour)
            ticks = ["trained"] + cascade["layers"] + (["permuted\nlabels"] if "permuted" in results[names[0]] else [])
            positions = list(x) + ([x[-1] + 1.5] if len(ticks) > len(x) else [])
            ax.set_xticks(positions, ticks, rotation=60, ha="right", fontsize=7)
            ax.set_xlabel("learnt layers re-initialised, output first (cumulative)")
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_ylabel(f"{label} to the trained model's map")
        ax.set_ylim(-0.3, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    ax = axes[2]
    kinds = [("spearman_truth", "trained"), ("spearman_truth_random", "random weights")]
    if "permuted" in results[names[0]]:
        kinds.append(("permuted", "permuted labels"))
    width = 0.8 / len(kinds)
    for k, (key, label) in enumerate(kinds):
        scores = [results[name]["permuted"]["spearman_truth"] if key == "permuted" else results[name][key] for name in names]
        rho = np.array([s["rho"] for s in scores])
        lo = np.array([s["ci95"][0] for s in scores])
        hi = np.array([s["ci95"][1] for s in scores])
        # a percentile interval need not contain the estimate: clip the bars at the point
        ax.errorbar(np.arange(len(names)) + (k - (len(kinds) - 1) / 2) * width, rho,
                    yerr=[np.clip(rho - lo, 0, None), np.clip(hi - rho, 0, None)],
                    fmt="o", ms=4, capsize=2, label=label)  # fmt: skip
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("Spearman of lengths vs true length")
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save(fig, path)


def figure(
    path,
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    bars: Mapping[str, np.ndarray],
    rows: Sequence[int],
    crop_px: int | None,
    title: str,
) -> None:
    """The galaxies ``rows`` (the input, then one column per explainer) with the true bar ellipse
    drawn, a colour bar of the normalised maps, and "empty" written on a map with no positive
    evidence at all (all zero: e.g. Grad-CAM when the weighted feature maps sum below 0 everywhere)."""
    names = list(maps)
    map_px = images.shape[1]
    fig, axes = plt.subplots(len(rows), len(names) + 1, figsize=(1.6 * (len(names) + 1) + 0.6, 1.7 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        outline = ellipse_outline(bars["length_px424"][i], bars["axis_ratio"][i], bars["angle_deg"][i], map_px, crop_px)
        panels = [("input", images[i])] + [(name, maps[name][i]) for name in names]
        for c, (name, panel) in enumerate(panels):
            ax = axes[r, c]
            shown = ax.imshow(panel, cmap=None if panel.ndim == 3 else MAP_CMAP, vmin=0, vmax=1, interpolation="nearest")
            if panel.ndim == 2:
                image = shown
                if not np.any(panel > 0):
                    ax.text(0.5, 0.12, "empty: no positive\nevidence (all 0)", color="white", fontsize=6,
                            ha="center", va="center", transform=ax.transAxes)  # fmt: skip
            ax.contour(*outline, levels=[0.5], colors="cyan", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
    if names:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01, label="normalised map (each map min-max scaled)")
    fig.suptitle(title, fontsize=9)
    save(fig, path)


def placeholder_figure(path, message: str) -> None:
    """A figure holding only ``message`` (the stage's output when it is skipped)."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, wrap=True)
    save(fig, path)
