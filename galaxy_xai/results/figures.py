"""The paper's figures as pure functions: arrays and tables in, a matplotlib Figure out.

Nothing here reads files, and only :func:`save` writes one (a PNG, atomically); ``stages/figure.py``
gathers the inputs. Besides the figures: :func:`explainer_name` (how a title names the explainer),
:func:`isolated_bar` (what Figure 3 draws for a setting), :func:`scatter_panel` (a Figure 4 panel
from a per-galaxy table) and :func:`largest_disagreements` (Figure 5's galaxies).
Images are (H, W, 3) floats in [0, 1]; maps are (H, W) floats in [0, 1]; lengths carry units in
their names and axis labels.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from galaxy_xai import io  # noqa: E402
from galaxy_xai.bars.algorithm1 import farthest_pair, isolate_bar  # noqa: E402
from galaxy_xai.bars.barlength import ALGORITHM1, Choice  # noqa: E402
from galaxy_xai.results.ensemble import predicted  # noqa: E402
from galaxy_xai.results.paper import HOYLE_RELATIVE_ERROR  # noqa: E402
from galaxy_xai.xai import localisation

MAP_CMAP = "jet"  # the paper's colour scale: red = most important, blue = least


def save(fig: plt.Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG at ``path`` (atomically) and close it."""
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def explainer_name(method: str, attribution: str) -> str:
    """The explainer as a figure shows it, e.g. 'smoothgrad (input_x_gradient)'; the method alone
    when its attribution is itself (e.g. gradcam)."""
    return method if attribution == method else f"{method} ({attribution})"


def _centre_crop(array: np.ndarray, fraction: float) -> np.ndarray:
    """The central ``fraction`` of an image or map along both axes."""
    h, w = array.shape[:2]
    dh, dw = int(round(h * (1 - fraction) / 2)), int(round(w * (1 - fraction) / 2))
    return array[dh : h - dh or None, dw : w - dw or None]


FIGURE1_NOTES = {
    ("integrated_gradients", "axisymmetric"): (
        "Integrated Gradients from the axisymmetric baseline credits only light that is not axisymmetric: the bulge "
        "is part of the baseline, so the bulge answer's map shows the same non-axisymmetric light as the bar's."
    ),
}
"""What figure 1's caption says about an explainer (method, IG baseline or None), where it needs saying."""

SPECKLE_NOTE = (
    "The speckled annulus is where the models' input gradient is large (on average over galaxies) while the light there is "
    "mostly sky noise (positive part of noise x gradient): the models', not the baseline's (docs/science.md)."
)


def figure1_caption(method: str, baseline: str | None) -> str:
    """Figure 1's caption: why the maps of an explainer look as they do (:data:`FIGURE1_NOTES`, and
    :data:`SPECKLE_NOTE` for Integrated Gradients, whatever its baseline)."""
    if method != "integrated_gradients":
        return FIGURE1_NOTES.get((method, None), "")
    return " ".join(note for note in (FIGURE1_NOTES.get((method, baseline), ""), SPECKLE_NOTE) if note)


def saliency_panels(
    image: np.ndarray, maps: Mapping[str, np.ndarray], title: str, crop_fraction: float = 1.0, caption: str = ""
) -> plt.Figure:
    """Figure 1: a galaxy and its averaged saliency maps for several answers, side by side, and
    ``caption`` (wrapped) under them."""
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(3.2 * (1 + len(maps)), 3.9))
    axes[0].imshow(_centre_crop(image, crop_fraction))
    axes[0].set_title("image")
    for ax, (label, smap) in zip(axes[1:], maps.items(), strict=True):
        im = ax.imshow(_centre_crop(smap, crop_fraction), cmap=MAP_CMAP, vmin=0, vmax=1)
        ax.set_title(label)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), fraction=0.02, pad=0.01, label="normalised saliency")
    fig.suptitle(title, y=1.04)
    if caption:
        fig.text(0.45, 0.04, textwrap.fill(caption, 150), ha="center", va="top", fontsize=9)
    return fig


def learning_curves(curves: Mapping[str, pd.DataFrame], paper_note: str = "") -> plt.Figure:
    """Figure 2: training (solid) and validation (dashed) RMSE per epoch for each model.

    Each frame has columns ``epoch``, ``train_rmse`` and ``val_rmse``.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (name, df), colour in zip(curves.items(), plt.cm.tab10.colors, strict=False):
        ax.plot(df["epoch"], df["train_rmse"], "-", color=colour, label=f"{name} train")
        ax.plot(df["epoch"], df["val_rmse"], "--", color=colour, label=f"{name} validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE of the 37 vote fractions")
    ax.set_title("Learning curves" + (f" ({paper_note})" if paper_note else ""))
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def ellipse_outline(length_px424: float, axis_ratio: float, angle_deg: float, map_px: int, crop_px: int | None, oversample: int = 8):
    """(x, y, mask) to draw a bar ellipse's outline with ``plt.contour`` on a map of side ``map_px``:
    the mask at ``oversample`` times the map's resolution, on map-pixel coordinates (pixel centres at
    0 .. map_px - 1)."""
    fine = localisation.bar_masks([length_px424], [axis_ratio], [angle_deg], map_px * oversample, crop_px, min_semi_axis_map_px=0.0)[0]
    coords = (np.arange(map_px * oversample) + 0.5) / oversample - 0.5
    return coords, coords, fine.astype(float)


TRUE_BAR_COLOUR = "cyan"
"""The true bar's ellipse in every figure that draws it (its long axis is the true length)."""


def bar_examples(examples: Sequence[Mapping], measured_as: str = "isolated bar") -> plt.Figure:
    """Figure 3: image, saliency map (as measured), and the isolated bar with its measured length
    (red) and, where known, the true bar (:data:`TRUE_BAR_COLOUR` ellipse, its long axis the true
    length). Every isolated pixel is shown, brighter where the map is.

    Each example maps ``image`` (H, W, 3), ``map`` (H, W), ``mask`` (H, W) bool, ``endpoints``
    ((row0, col0), (row1, col1)) in map pixels, ``title``, ``length_label`` (e.g. 'measured 12.3,
    true 10.1 h^-1 kpc') and optionally ``outline`` (:func:`ellipse_outline` of the true bar).
    ``measured_as`` names the third column (what the estimator kept of the map).
    """
    fig, axes = plt.subplots(len(examples), 3, figsize=(9, 3.2 * len(examples)), squeeze=False)
    for row, ex in zip(axes, examples, strict=True):
        row[0].imshow(ex["image"])
        row[0].set_ylabel(ex["title"], fontsize=9)
        row[1].imshow(ex["map"], cmap=MAP_CMAP, vmin=0, vmax=1)
        # Every isolated pixel visible (a faint one too: the length runs between the farthest two), brighter where the map is.
        row[2].imshow(np.where(ex["mask"], 0.35 + 0.65 * ex["map"], 0.0), cmap="gray", vmin=0, vmax=1)
        (r0, c0), (r1, c1) = ex["endpoints"]
        row[2].plot([c0, c1], [r0, r1], "-", color="tab:red", lw=2)
        if ex.get("outline") is not None:
            for ax in row[1:]:
                ax.contour(*ex["outline"], levels=[0.5], colors=TRUE_BAR_COLOUR, linewidths=1.0)
        row[2].set_xlabel(ex["length_label"], fontsize=9)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    truth = any(ex.get("outline") is not None for ex in examples)
    axes[0, 0].set_title("image", fontsize=10)
    axes[0, 1].set_title("saliency map (bar)\nas measured", fontsize=10)
    axes[0, 2].set_title(f"{measured_as}\nred: measured length" + (f", {TRUE_BAR_COLOUR}: true bar" if truth else ""), fontsize=9)
    return fig


def axis_segment(weights: np.ndarray, half_length_px: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Endpoints ((row0, col0), (row1, col1)) of a segment of ``2 * half_length_px`` map pixels through
    the weighted centre of ``weights`` (H, W) >= 0, along its long axis (the weighted second moments'
    principal direction): how Figure 3 draws a length that no set of isolated pixels defines."""
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    rows, cols = np.indices(weights.shape)
    total = weights.sum() or 1.0
    r0, c0 = (weights * rows).sum() / total, (weights * cols).sum() / total
    dr, dc = rows - r0, cols - c0
    cov = np.array([[(weights * dr * dr).sum(), (weights * dr * dc).sum()],
                    [(weights * dr * dc).sum(), (weights * dc * dc).sum()]]) / total  # fmt: skip
    direction = np.linalg.eigh(cov)[1][:, -1]  # eigenvector of the largest eigenvalue
    step = half_length_px * direction
    return (r0 - step[0], c0 - step[1]), (r0 + step[0], c0 + step[1])


def measured_vs_reference(panels: Sequence[Mapping], xlabel: str, ylabel: str) -> plt.Figure:
    """Figure 4 (and measured vs truth): scatter, weighted fit through the origin, 1:1 line, the
    same axes in every panel.

    Each panel maps ``x`` and ``y`` (n,) lengths in the axis units, optional ``xerr`` / ``yerr``,
    ``slope`` of the fit through the origin, and ``title`` (e.g. 'saliency, rho = 0.76').
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.0), squeeze=False)
    hi = 1.05 * max(float(np.nanmax(np.concatenate([np.asarray(p["x"], float), np.asarray(p["y"], float)]))) for p in panels)
    for ax, p in zip(axes[0], panels, strict=True):
        x, y = np.asarray(p["x"], float), np.asarray(p["y"], float)
        ax.errorbar(x, y, xerr=p.get("xerr"), yerr=p.get("yerr"), fmt="o", ms=3, alpha=0.45,
                    elinewidth=0.5, color="tab:blue")
        ax.plot([0, hi], [0, hi], ":", color="grey", label="one to one")
        if p.get("slope") is not None and np.isfinite(p["slope"]):
            ax.plot([0, hi], [0, p["slope"] * hi], "-", color="tab:red",
                    label=f"weighted fit through 0: slope {p['slope']:.2f}")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(p["title"], fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    return fig


def disagreements(examples: Sequence[Mapping]) -> plt.Figure:
    """Figure 5: galaxies where the ensemble and the volunteers disagree on smooth vs features.

    Each example maps ``image``, ``maps`` ({label: (H, W)}) and ``title`` (both probabilities).
    """
    n_maps = max(len(ex["maps"]) for ex in examples)
    fig, axes = plt.subplots(len(examples), 1 + n_maps, figsize=(3.1 * (1 + n_maps), 3.2 * len(examples)),
                             squeeze=False)
    for row, ex in zip(axes, examples, strict=True):
        row[0].imshow(ex["image"])
        row[0].set_title(ex["title"], fontsize=8)
        for ax, (label, smap) in zip(row[1:], ex["maps"].items(), strict=False):
            ax.imshow(smap, cmap=MAP_CMAP, vmin=0, vmax=1)
            ax.set_title(label, fontsize=9)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def grid_heatmaps(grid: pd.DataFrame, value: str = "rho") -> plt.Figure:
    """T_c x T_l -> rho of Algorithm 1, one panel per (map source, X_input[, mask]): the grid search at a glance.

    ``grid`` has columns ``map_source``, ``x_input``, ``corr_threshold``, ``len_threshold`` and ``value``,
    optionally ``estimator`` (only Algorithm 1's rows have a T_c x T_l plane) and ``mask`` (a panel each).
    """
    if "estimator" in grid:
        grid = grid[grid["estimator"] == "algorithm1"]
    panel_keys = [c for c in ("map_source", "x_input", "mask") if c in grid]
    keys = list(grid.groupby(panel_keys, sort=False).groups)
    ncols = 4 if "mask" in grid else 2
    nrows = int(np.ceil(len(keys) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.8 * ncols, 3.6 * nrows), squeeze=False, layout="constrained"
    )
    lo, hi = float(grid[value].min()), float(grid[value].max())
    for ax, key in zip(axes.ravel(), keys, strict=False):
        sub = grid[(grid[panel_keys] == pd.Series(key, index=panel_keys)).all(axis=1)]
        table = sub.pivot_table(index="corr_threshold", columns="len_threshold", values=value)
        im = ax.imshow(table.to_numpy(), cmap="viridis", vmin=lo, vmax=hi, origin="lower", aspect="auto")
        ax.set_xticks(range(table.shape[1]), [f"{v:g}" for v in table.columns])
        ax.set_yticks(range(table.shape[0]), [f"{v:g}" for v in table.index])
        ax.set_xlabel("T_l (pixels of a 224-px map)")
        ax.set_ylabel("T_c")
        ax.set_title(", ".join(f"{k}={v}" for k, v in zip(panel_keys, key, strict=True)), fontsize=9)
        for (i, j), v in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), label=f"validation {value}")
    return fig


SCORE_LABELS = {
    "spearman_truth_image": "Spearman rho against the true length",
    "spearman_image": "Spearman rho against the catalogue length",
}
"""How an axis names a score of the metrics files (image units: no PETROR90_R factor)."""


def complements(complements: Mapping, score: str | None = None) -> plt.Figure:
    """Two panels of ``comparison.json``'s ``complements`` (:func:`galaxy_xai.results.comparison.complement_comparison`):
    each rank-mean combination's ``score`` with its 95% interval, and each paired difference with
    its interval against 0 (the verdict's picture). ``score`` None: against the truth where the
    complements have it, else against the catalogue."""
    if score is None:
        truth = any("spearman_truth_image" in v for v in complements["scores"].values())
        score = "spearman_truth_image" if truth else "spearman_image"
    scores = {name: v for name, v in complements["scores"].items() if score in v}
    diffs = {name: v[score] for name, v in complements["difference"].items() if score in v}
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 0.45 * max(len(scores), len(diffs)) + 1.9), layout="constrained"
    )
    colours = {"beats": "C2", "ties": "0.5", "loses": "C3"}
    label = SCORE_LABELS.get(score, score)
    for ax, entries, title, xlabel in (
        (left, {k: (v[score], v[f"{score}_ci95"], "C0") for k, v in scores.items()},
         "the lengths combined (mean of their ranks)", label),
        (right, {k: (v["difference"], v["ci95"], colours[v["verdict"]]) for k, v in diffs.items()},
         "paired difference (green: beats, grey: ties, red: loses)", f"difference in {label}"),
    ):  # fmt: skip
        names = list(entries)[::-1]
        y = np.arange(len(names))
        for row, name in zip(y, names, strict=True):
            value, (lo, hi), colour = entries[name]
            ax.errorbar([value], [row], xerr=[[value - lo], [hi - value]], fmt="o", color=colour, capsize=3)
        ax.set_yticks(y, names, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    right.axvline(0, color="k", lw=0.8)
    fig.suptitle(f"What each length adds to the isophote length ({complements['n']} test galaxies, 95% intervals)", fontsize=10)
    return fig


def ensemble_curve(
    curves: Mapping[str, Mapping],
    lines: Mapping[str, Mapping[str, float]] | None = None,
    k_max: int = 64,
    targets: Mapping[str, float] | None = None,
) -> plt.Figure:
    """The saliency length's Spearman rho against the number of models averaged
    (:func:`galaxy_xai.results.ensemble.ensemble_curve`), one panel per reference (``catalogue``, ``truth``):
    the measured r_k with their 95% intervals, the fitted Spearman-Brown curve out to ``k_max``
    models, and the asymptote with its interval (the shaded band). ``lines``: {reference: {label:
    rho}}, horizontal lines in that reference's panel (e.g. the control CNN's score against the same
    reference); ``targets``: {reference: rho}, the study's target in that panel (a dashed red line).
    The y axis shows every line, band and interval with a margin."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.2), layout="constrained", squeeze=False)
    k_fit = np.geomspace(1, k_max, 100)
    for ax, (reference, curve) in zip(axes[0], curves.items(), strict=True):
        # Read from JSON: a score that could not be computed is None (NaN here, and not drawn).
        k = np.asarray(curve["k"])
        r = np.asarray(curve["spearman"], dtype=float)
        lo, hi = np.asarray(curve["spearman_ci95"], dtype=float).T
        # A point can sit outside its percentile interval on few galaxies; matplotlib refuses negative bars.
        ax.errorbar(k, r, yerr=np.clip([r - lo, hi - r], 0, None), fmt="o", color="C0", capsize=3, label="mean of k models' lengths (all k-subsets)")
        a, b, asymptote = (np.nan if curve.get(key) is None else float(curve[key]) for key in ("a", "b", "asymptote"))
        shown = [*lo, *hi]
        if np.isfinite(asymptote):
            ax.plot(k_fit, predicted(a, b, k_fit), color="C0", lw=1, label="Spearman-Brown fit: 1/r^2 = a + b/k")
            interval = np.asarray(curve["asymptote_ci95"], dtype=float)
            if np.all(np.isfinite(interval)):
                ax.axhspan(*interval, color="C0", alpha=0.12, lw=0, label="95% interval of infinitely many")
                shown += list(interval)
            ax.axhline(asymptote, color="C0", ls="--", lw=1, label=f"infinitely many: {asymptote:.2f} "
                       f"[{interval[0]:.2f}, {interval[1]:.2f}]")  # fmt: skip
        for j, (label, value) in enumerate((lines or {}).get(reference, {}).items()):
            ax.axhline(value, color=f"C{j + 1}", lw=1, label=f"{label}: {value:.2f}")
            shown.append(value)
        if (targets or {}).get(reference) is not None:
            ax.axhline(targets[reference], color="tab:red", ls=":", lw=1.5, label=f"target: {targets[reference]:.2f}")
            shown.append(targets[reference])
        shown = np.asarray(shown, dtype=float)
        shown = shown[np.isfinite(shown)]
        if shown.size:
            margin = 0.05 * max(np.ptp(shown), 0.05)
            ax.set_ylim(shown.min() - margin, shown.max() + margin)
        ax.set_xscale("log")
        ax.set_xlabel("models averaged, k")
        ax.set_ylabel(f"Spearman rho against the {reference}")
        ax.set_title(f"against the {reference} ({curve['n']} test galaxies)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Would more models of this recipe measure bars better? (95% intervals)", fontsize=10)
    return fig


def isolated_bar(
    measured_map: np.ndarray, choice: Choice, map_px: int, crop_px: int | None, linearity: str, length_map_px: float
) -> tuple[np.ndarray, tuple]:
    """What Figure 3 draws on a map (H, W) as ``choice`` measured it: (mask (H, W) bool, endpoints).

    Algorithm 1: the isolated bar and its two farthest pixels. Fourier: no isolated pixels, so the map
    above 0 and the measured length (``length_map_px``, map pixels) along the map's long axis
    (:func:`axis_segment`).
    """
    if choice.estimator == ALGORITHM1:
        mask = isolate_bar(measured_map, choice.corr_threshold, choice.len_threshold_px(map_px, crop_px), linearity)
        p0, p1, _ = farthest_pair(*np.nonzero(mask))
        return mask, (p0, p1)
    return measured_map > 0, axis_segment(measured_map, length_map_px / 2)


def scatter_panel(frame: pd.DataFrame, scores: Mapping, label: str, reference: str, yerr: str | None) -> dict:
    """A panel of :func:`measured_vs_reference` from a per-galaxy table (``measured_kpc`` against the
    ``reference`` column, e.g. ``catalogue_kpc`` with the Hoyle error, or ``true_kpc``) and its scores."""
    return {
        "x": frame[reference], "y": frame["measured_kpc"], "yerr": None if yerr is None else frame[yerr],
        "xerr": HOYLE_RELATIVE_ERROR * frame[reference] if reference == "catalogue_kpc" else None,
        "slope": scores.get("slope"), "title": f"{label}: rho = {scores['rho']:.2f}, rho_image = {scores['rho_image']:.2f} (n = {len(frame)})",
    }  # fmt: skip


def truth_panel(frame: pd.DataFrame, scores: Mapping, label: str) -> dict:
    """A measured-vs-true panel of :func:`measured_vs_reference` (synthetic sky): no fit line, and the
    headline's score in the title, the Spearman rho against the true length (image units) with its
    95% interval (``scores``' ``spearman_truth_image`` and ``spearman_truth_image_ci95``)."""
    value, bounds = scores.get("spearman_truth_image"), scores.get("spearman_truth_image_ci95") or [None, None]
    text = " ".join(["n/a" if value is None else f"{value:.2f}", "[" + ", ".join("n/a" if b is None else f"{b:.2f}" for b in bounds) + "]"])
    return {**scatter_panel(frame, scores, label, "true_kpc", None), "slope": None,
            "title": f"{label} (n = {len(frame)})\nSpearman rho vs the true length: {text}"}  # fmt: skip


def largest_disagreements(morphology: pd.DataFrame, ensemble: pd.DataFrame, n: int = 2) -> pd.DataFrame:
    """The ``n`` test galaxies where the ensemble's smooth fraction (``Class1.1_pred``) is farthest from
    the volunteers' (``Class1.1``): rows of the prepared morphology table joined with the predictions."""
    joined = morphology.merge(ensemble, on="GalaxyID", suffixes=("", "_pred"))
    joined = joined[joined["split"] == "test"]
    return joined.assign(gap=(joined["Class1.1_pred"] - joined["Class1.1"]).abs()).nlargest(n, "gap")
