"""The explainer study in words and pictures: its Markdown table and verdict, and its figures.

:func:`galaxy_xai.xai.explainer_study.run_study` computes the :class:`~galaxy_xai.xai.explainer_study.Study`;
the ``explainers`` stage writes it with the functions here (``metrics/explainers.md``,
``plots/explainers.png``, ``plots/explainers_sanity.png``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from galaxy_xai.bars import barlength
from galaxy_xai.results.figures import MAP_CMAP, ellipse_outline, plt, save
from galaxy_xai.results.formatting import mean_interval, number
from galaxy_xai.xai.explainer_study import RANDOMISATION_KEYS, Study


def best_explainer(results: Mapping[str, Mapping]) -> str:
    """The explainer with the highest Spearman rho of its lengths against the true length."""
    rhos = {name: r["spearman_truth"]["rho"] for name, r in results.items()}
    finite = {k: v for k, v in rhos.items() if np.isfinite(v)}
    if not finite:
        raise ValueError("best_explainer: no explainer has a finite Spearman rho against the truth")
    return max(finite, key=finite.get)


TABLE_HEADER = (
    "| explainer | true resolution | mass in bar | rank accuracy | pointing game | deletion AUC (lower better) "
    "| insertion AUC (higher better) | random-model Spearman of maps | random-model SSIM | Spearman vs true length "
    "| same, randomised model (null 0) | minus default, paired | s (trained + random) |"
)


def verdict_sentence(study: Study) -> str:
    """One plain sentence: which explainer measures bars best and whether the default should change.

    "Best" is the highest Spearman rho of its Algorithm 1 lengths against the true length; the
    default should change only if the paired bootstrap interval of the difference from the default
    excludes 0 (verdict "beats") and the winner's lengths fall to the null when the model is
    randomised (the interval of the randomised model's rho contains 0).
    """
    results, default = study.explainers, study.default
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
            f"On these {study.n} galaxies the default explainer, {default}, measures bars best "
            f"(Spearman {rho:.2f} [{lo:.2f}, {hi:.2f}] against the true length), {survival}; no other explainer "
            "does better, so the default should not change."
        )
    diff = r["minus_default"]
    change = diff["verdict"] == "beats" and null_ok
    caveat = "" if lo > 0 else " (its interval contains 0: on this model no explainer's lengths are shown to follow the truth)"
    return (
        f"On these {study.n} galaxies {best} measures bars best (Spearman {rho:.2f} [{lo:.2f}, {hi:.2f}] against "
        f"the true length{caveat}; the default {default}: {results[default]['spearman_truth']['rho']:.2f}; paired difference "
        f"{diff['difference']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}], {diff['verdict']}), {survival}; "
        f"the default {'should change to ' + best if change else 'should not change on this evidence'}."
    )


def markdown(study: Study, model_name: str, choice: barlength.Choice, steps: int, explained: str = "") -> str:
    """metrics/explainers.md: the table (means or rhos with 95% bootstrap intervals) and the verdict.
    ``explained``: the score every explainer explains, in words (as the heatmap stage's maps)."""
    results = study.explainers
    lines = [
        f"# Explainers against the true bar ({model_name}, {study.n} test galaxies)",
        "",
        (f"Every explainer explains {explained}, as the heatmap stage does. " if explained else "")
        + "Each cell: mean over galaxies (or Spearman rho) [95% bootstrap interval]. Mask = the true bar's ellipse "
        f"at map resolution; a uniform map scores its area fraction "
        f"{mean_interval(study.mask_fraction, digits=3)} on mass and rank accuracy. Deletion / insertion: areas "
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
            f"| {name} | {r['resolution']['note']} | {mean_interval(r['mass_accuracy'])} | {mean_interval(r['rank_accuracy'])} "
            f"| {mean_interval(r['pointing_game'])} | {mean_interval(r['deletion_auc'], digits=3)} "
            f"| {mean_interval(r['insertion_auc'], digits=3)} | {mean_interval(r['spearman_abs'])} | {mean_interval(r['ssim'])} "
            f"| {mean_interval(r['spearman_truth'], 'rho')} | {mean_interval(r['spearman_truth_random'], 'rho')} "
            f"| {diff_text} | {r['seconds']:.1f} + {r['seconds_random']:.1f} |"
        )
    lines += ["", verdict_sentence(study), ""]
    lines += sanity_lines(study)
    return "\n".join(lines)


MODEL_DEPENDENCE_SPEARMAN = 0.5
"""A map whose Spearman rank correlation (of |map|) with the trained model's stays at or above this
after the weights or the labels are randomised is said to depend little on the model (a stated rule
of thumb: Adebayo et al. 2018 judge by eye; their failing maps stay near 0.5-1)."""


def model_independent(results: Mapping[str, Mapping]) -> dict[str, list[str]]:
    """{"random": explainers of ``results`` (a study's ``explainers``) whose maps keep Spearman >=
    :data:`MODEL_DEPENDENCE_SPEARMAN` with the fully randomised model's, "permuted": the same with the
    permuted-label model's (empty if not run)}."""
    out: dict[str, list[str]] = {"random": [], "permuted": []}
    for name, r in results.items():
        if r["spearman_abs"]["mean"] >= MODEL_DEPENDENCE_SPEARMAN:
            out["random"].append(name)
        if "permuted" in r and r["permuted"]["spearman_abs"]["mean"] >= MODEL_DEPENDENCE_SPEARMAN:
            out["permuted"].append(name)
    return out


def sanity_lines(study: Study) -> list[str]:
    """The sanity-check table (cascade, full and data randomisation) and its sentence, as Markdown lines."""
    results, cascade = study.explainers, study.cascade
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
            row += [" / ".join(number(scores[k][d]["mean"], ".2f", "-") for d in picks) for k in RANDOMISATION_KEYS]
        if permuted:
            q = r["permuted"]
            row += [f"{number(q['spearman_abs']['mean'], '.2f', '-')} / {number(q['ssim']['mean'], '.2f', '-')}", mean_interval(q["mass_accuracy"])]
        rhos = [r["spearman_truth"], r["spearman_truth_random"]] + ([r["permuted"]["spearman_truth"]] if permuted else [])
        row.append(" / ".join(number(x["rho"], ".2f", "-") for x in rhos))
        lines.append("| " + " | ".join(row) + " |")
    independent = model_independent(study.explainers)
    sentence = (
        f"Maps that keep Spearman >= {MODEL_DEPENDENCE_SPEARMAN} with the trained model's when every weight is "
        f"re-initialised: {', '.join(independent['random']) or 'none'}"
    )
    if permuted:
        sentence += f"; when the labels are permuted: {', '.join(independent['permuted']) or 'none'}"
    lines += ["", sentence + ". Such maps show the image more than the model (they fail the check).", ""]
    return lines


def sanity_figure(path, study: Study, title: str) -> None:
    """Adebayo et al.'s Fig. 2 for our explainers: map similarity (Spearman of |map|, SSIM) to the trained
    model's after each cascade step, one line per explainer (the permuted-label model's value as a marker
    at the right), and each explainer's length Spearman vs the truth for the trained, randomised and
    permuted-label models with 95% intervals."""
    results, cascade = study.explainers, study.cascade
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


def summary_lines(study: Study) -> list[str]:
    """One log line per explainer: its localisation, faithfulness and randomisation means and its rho."""
    return [
        f"{name:<22} mass {r['mass_accuracy']['mean']:.2f} rank {r['rank_accuracy']['mean']:.2f} "
        f"pointing {r['pointing_game']['mean']:.2f} del {r['deletion_auc']['mean']:.3f} ins {r['insertion_auc']['mean']:.3f} "
        f"random spearman {r['spearman_abs']['mean']:.2f} ssim {r['ssim']['mean']:.2f} "
        f"rho {r['spearman_truth']['rho']:.2f} (random {r['spearman_truth_random']['rho']:.2f})"
        for name, r in study.explainers.items()
    ]
