"""Stage ``figure``: the paper's figures as PNGs, the saliency-vs-control comparison, and report.md.

Figures (``--out``): 1 a galaxy's averaged maps for bar / bulge / arms; 2 learning curves; 3 three
isolated bars with their measured lengths; 4 measured vs catalogue lengths for the saliency method
and the control model; 5 the galaxies where the ensemble disagrees most with the volunteers on
smooth vs features; plus the grid-search heat map and, on the synthetic sky, measured vs true.

``--comparison`` scores both methods on the galaxies they share (the control test split, which
``prepare`` draws inside the XAI test split), each score with its bootstrap interval, and compares
them by a paired bootstrap of the difference. ``--report`` puts Table 1, Table 2 and the headline
numbers of this run, with their intervals, beside the paper's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from galaxy_xai import barlength, evaluation, figures, io, saliency
from galaxy_xai.config import Config
from galaxy_xai.images import load_images
from stages._common import start

PAPER = {"rho": 0.76, "control_rho": 0.59}
FIGURE1_TARGETS = {"bar (Class3.1)": "Class3.1", "bulge (Class5.3)": "Class5.3", "arms (Class11.3)": "Class11.3"}


def save(fig: plt.Figure, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def explainer_name(xai) -> str:
    """The explainer as a figure shows it, e.g. 'smoothgrad (input_x_gradient)'."""
    attribution = saliency.map_attribution(xai)
    return xai.method if attribution == xai.method else f"{xai.method} ({attribution})"


def mean_maps(models: dict[str, keras.Model], images: np.ndarray, target: str, cfg: Config, seed: int) -> np.ndarray:
    """The models' maps of ``target`` averaged and renormalised: (n, H, W) in [0, 1]."""
    maps = [saliency.explain_xai(m, images, cfg.xai, seed, target=target) for m in models.values()]
    return barlength.normalise_maps(np.mean(maps, axis=0))


SHARED_SCORES = {"rho": "rho", "rho_image": "rho_image", "spearman_image": "spearman_image"}
"""Scores of both methods against the catalogue on the shared galaxies (see evaluation.CORRELATION_SCORES)."""


def shared_comparison(
    saliency_rows: pd.DataFrame, control_rows: pd.DataFrame, n_boot: int, rng: np.random.Generator
) -> dict:
    """Both methods scored on the galaxies present in both per-galaxy tables (inner join on objid).

    Each score comes with its 95% bootstrap interval (``<score>_ci95``), and ``difference`` holds, per
    score, saliency minus control from a paired bootstrap over the same resamples of the shared
    galaxies: {score: {difference, ci95, verdict}}, the verdict from ``evaluation.verdict``.
    """
    both = saliency_rows.merge(control_rows, on="objid", suffixes=("_saliency", "_control"))
    out: dict = {"n_shared": len(both)}
    if len(both) < 3:
        return out
    out["resamples"] = int(n_boot)
    factor = both["petror90_r_arcsec_saliency"].to_numpy()
    # One catalogue for both methods: the paired difference needs a common reference.
    references = {key: (both["catalogue_px424_saliency"].to_numpy(), score) for key, score in SHARED_SCORES.items()}
    if "true_px424_saliency" in both and "true_px424_control" in both:
        references["rho_truth_image"] = (both["true_px424_saliency"].to_numpy(), "rho_image")
    measured = {method: both[f"measured_px424_{method}"].to_numpy() for method in ("saliency", "control")}
    for method, lengths in measured.items():
        out[method] = {}
        for key, (reference, score) in references.items():
            out[method].update(evaluation.correlation_scores(lengths, reference, factor, {key: score}, n_boot, rng))
    out["difference"] = {}
    for key, (reference, score) in references.items():
        statistic, scaled = evaluation.CORRELATION_SCORES[score]
        paired = evaluation.paired_bootstrap_difference(
            measured["saliency"], measured["control"], reference, statistic, n_boot, rng, factor if scaled else None
        )
        out["difference"][key] = {"difference": paired.difference, "ci95": list(paired.ci95), "verdict": paired.verdict}
    return evaluation.finite_or_none(out)


VERDICT_WORDS = {"beats": "beats", "ties": "ties with", "loses": "loses to"}
"""How a sentence says evaluation.verdict's outcome of saliency minus control."""


def with_interval(d: dict, key: str) -> str:
    """``d[key]`` and its ``<key>_ci95`` as '0.373 [0.25, 0.48]'; 'n/a' for a missing value or bound."""
    value, interval = d.get(key), d.get(f"{key}_ci95") or [None, None]
    if value is None:
        return "n/a"
    bounds = ", ".join("n/a" if b is None else f"{b:.2f}" for b in interval)
    return f"{value:.3f} [{bounds}]"


def comparison_sentence(convention: str, label: str, shared: dict, key: str) -> str:
    """One sentence, one convention: both scores with their intervals and the paired verdict."""
    sal, con, diff = shared["saliency"], shared["control"], shared["difference"][key]
    lo, hi = ("n/a" if b is None else f"{b:+.2f}" for b in diff["ci95"])
    difference = "n/a" if diff["difference"] is None else f"{diff['difference']:+.3f}"
    because = {"ties": "contains 0", "beats": "lies above 0", "loses": "lies below 0"}[diff["verdict"]]
    return (
        f"{convention}, the saliency method **{VERDICT_WORDS[diff['verdict']]}** the control model on these "
        f"galaxies: {label} {with_interval(sal, key)} vs {with_interval(con, key)}, paired bootstrap difference "
        f"{difference} [{lo}, {hi}], an interval that {because}."
    )


def report_markdown(
    table1: str,
    table2: str,
    morph: dict,
    grid: dict,
    bars: dict,
    control: dict,
    shared: dict,
    rotation: dict,
    attribution: str,
) -> str:
    """report.md: this run's tables and headline numbers beside the paper's."""

    def num(d: dict, key: str) -> str:
        value = d.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    ci = with_interval
    chosen, stability = grid["chosen"], grid["choice_stability"]
    sal, con = shared.get("saliency", {}), shared.get("control", {})
    alternatives = "; ".join(
        f"{a['method']} (X_input = {a['x_input']}, T_c = {a['corr_threshold']:g}, T_l = {a['len_threshold']:g}) "
        f"{a['frequency']:.0%}"
        for a in stability["alternatives"]
    )
    lines = [
        "# Report of the last `dvc repro`",
        "",
        "Written by the `figure` stage from the metrics files of this run; the paper is Bhambra, Joachimi & "
        "Lahav (2022). This run's data are those of `params.yaml` (`data.path`); on the default synthetic sky "
        "the numbers are not the paper's data, model sizes or image sizes, so compare trends, not digits.",
        "",
        "## Table 1: morphology models (RMSE of the 37 vote fractions)",
        "",
        table1.strip(),
        "",
        f"Ensemble test RMSE / training-mean baseline: {morph['test_rmse_over_mean_baseline']['ensemble']:.3f}. "
        + (f"Bar ROC AUC of the ensemble's Class3.1 on true barred vs unbarred disks: {morph['bar_auc']:.3f}." if "bar_auc" in morph else ""),
        "",
        "## Table 2: grid search on the validation split",
        "",
        table2.strip(),
        "",
        f"Chosen: **{chosen['method']}**, X_input = {chosen['x_input']}, T_c = {chosen['corr_threshold']}, "
        f"T_l = {chosen['len_threshold']} (224-px units; {chosen['len_threshold_px']} px here), "
        f"linearity = {grid['linearity']}. The search ranks by rho in image units (no shared PETROR90_R factor); "
        f"this setting's validation rho_image is {ci(chosen, 'rho_image')} (95% bootstrap interval).",
        "",
        f"Choice stability: on {stability['resamples']} bootstrap resamples of the {grid['n']} validation galaxies, "
        f"the search picks {stability['method']} again in {stability['method_frequency']:.0%} of them and this exact "
        f"setting in {stability['setting_frequency']:.0%}. Most frequent alternatives: {alternatives or 'none'}.",
        "",
        "## Headline: bar lengths on the test split",
        "",
        "| quantity | this run | paper |",
        "|---|---:|---:|",
        f"| saliency method rho (paper convention, x PETROR90_R) | {ci(bars, 'rho')} | {PAPER['rho']} |",
        f"| saliency method rho in image units | {ci(bars, 'rho_image')} | not reported |",
        f"| saliency method Spearman (paper convention) | {ci(bars, 'spearman')} | - |",
        f"| saliency method Spearman in image units | {ci(bars, 'spearman_image')} | - |",
        f"| rho that the shared PETROR90_R factor alone gives (permutation null: mean / 95th percentile) | {num(bars, 'rho_null')} / {num(bars, 'rho_null_p95')} | not reported |",
        f"| permutation p-value of rho / of rho_image | {num(bars, 'rho_p_value')} / {num(bars, 'rho_image_p_value')} | - |",
        f"| saliency method rho against the true length (synthetic) | {ci(bars, 'rho_truth')} | - |",
        f"| saliency method rho_image against the true length (synthetic) | {ci(bars, 'rho_truth_image')} | - |",
        f"| slope measured / catalogue (kpc, through the origin) | {num(bars, 'slope')} +- {num(bars, 'slope_err')} | - |",
        f"| control CNN rho (paper convention) | {ci(control, 'rho')} | {PAPER['control_rho']} |",
        f"| control CNN rho in image units | {ci(control, 'rho_image')} | not reported |",
        f"| control CNN rho_image against the true length (synthetic) | {ci(control, 'rho_truth_image')} | - |",
        f"| galaxies (saliency test / control test) | {bars['n']} / {control['n']} | 2100 / 630 |",
        "",
        f"Brackets: 95% percentile bootstrap intervals over {bars['resamples']} resamples of the galaxies "
        "(in the paper's convention each galaxy keeps its PETROR90_R factor).",
        "",
        f"On the {shared.get('n_shared', 0)} galaxies both methods measured (the control test split):",
        "",
        "| method | rho | rho_image | rho_image vs truth |",
        "|---|---:|---:|---:|",
        f"| saliency | {ci(sal, 'rho')} | {ci(sal, 'rho_image')} | {ci(sal, 'rho_truth_image')} |",
        f"| control | {ci(con, 'rho')} | {ci(con, 'rho_image')} | {ci(con, 'rho_truth_image')} |",
        "",
    ]
    if sal and con:
        # One sentence per convention: the paper's rho and rho in image units answer different questions.
        sentences = [
            comparison_sentence("In the paper's convention (both lengths x PETROR90_R)", "rho", shared, "rho")
            + f" The paper reports {PAPER['rho']} vs {PAPER['control_rho']} in this convention.",
            comparison_sentence("In image units", "rho_image", shared, "rho_image"),
        ]
        if "rho_truth_image" in shared["difference"]:
            sentences.append(
                comparison_sentence("Against the true lengths (synthetic sky, image units)", "rho_image", shared, "rho_truth_image")
            )
        sentences.append(
            f"A method \"beats\" the other only when the 95% interval of the paired difference ({shared['resamples']} "
            "resamples of the shared galaxies, both methods on the same resamples) excludes 0."
        )
        lines += [line for sentence in sentences for line in (sentence, "")]
    spread = rotation["median_relative_spread"]
    lines += [
        "",
        "## Rotation stability",
        "",
        f"{rotation['galaxies']} test galaxies turned by {', '.join(f'{a:g}' for a in rotation['angles_deg'])} deg, "
        "maps recomputed, bars measured with the chosen settings: median relative spread (max - min) / mean "
        f"of the length across angles: {spread['abs_pearson']:.1%} with the paper's |Pearson r| rule, "
        f"{spread['elongation']:.1%} with the rotation-invariant elongation rule "
        f"(target {rotation['elongation_target']:.0%}).",
    ]
    noise = rotation["noise_relative_spread"]
    lines.append(
        f"Control: the unturned galaxies on {len(rotation['angles_deg'])} independent SmoothGrad noise draws "
        f"spread by {noise['abs_pearson']:.1%} (|Pearson r|) and {noise['elongation']:.1%} (elongation): "
        "the part of the spread the explainer's sampling noise gives with no rotation at all."
    )
    lines += [
        "",
        "What differs from the paper and why: the default run uses small CPU networks at 64 px on 2,000 "
        "synthetic galaxies (the paper: ImageNet backbones at 224 px on 61,578 real ones), SmoothGrad with "
        f"fewer samples and the `{attribution}` attribution (the paper: `abs_gradient`), and a 300-galaxy "
        "synthetic bar catalogue; `rho` in the paper's convention is inflated by the shared PETROR90_R "
        "factor (see `rho_null`), so `rho_image` is the honest score.",
        "",
        "Figures: `plots/figures/`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models/morphology"))
    parser.add_argument("--heatmaps", type=Path, default=Path("data/heatmaps"))
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--predictions", type=Path, default=Path("data/predictions"))
    parser.add_argument("--metrics-dir", type=Path, default=Path("metrics"))
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"))
    parser.add_argument("--out", type=Path, default=Path("plots/figures"))
    parser.add_argument("--comparison", type=Path, default=Path("metrics/comparison.json"))
    parser.add_argument("--report", type=Path, default=Path("report.md"))
    args, cfg, log = start("figure", parser, argv)
    rng = np.random.default_rng(cfg.seed)
    names = list(cfg.models)

    def metrics(name: str) -> dict:
        return json.loads((args.metrics_dir / name).read_text())

    morph, grid, bars_scores, control_scores, rotation = (
        metrics(f) for f in ("morphology.json", "gridsearch.json", "barlengths.json", "control.json", "rotation.json")
    )
    bars = pd.read_csv(args.prepared / "bars.csv")
    measured = pd.read_csv(args.plots_dir / "barlengths.csv")
    control = pd.read_csv(args.plots_dir / "control" / "predictions.csv")
    models = {n: keras.models.load_model(args.models / f"{n}.keras", compile=False) for n in names}

    # Figure 2: learning curves.
    curves = {n: pd.read_csv(args.plots_dir / "train" / n / "learning_curve.tsv", sep="\t") for n in names}
    save(figures.learning_curves(curves), args.out / "fig2_learning_curves.png")
    log.info("figure 2: learning curves of %s", ", ".join(names))

    # Figure 1: one test galaxy (the longest catalogue bar, where the features are resolved).
    row = bars.loc[bars.loc[bars["xai_split"] == "test", "length_px424"].idxmax()]
    image = load_images([row["image_path"]], cfg.images)
    maps = {label: mean_maps(models, image, target, cfg, cfg.seed)[0] for label, target in FIGURE1_TARGETS.items()}
    save(
        figures.saliency_panels(image[0], maps, f"objid {row['objid']}: {explainer_name(cfg.xai)} maps averaged over {len(names)} models"),
        args.out / "fig1_saliency_maps.png",
    )
    log.info("figure 1: objid %s", row["objid"])

    # Figure 3: two random test galaxies and the worst outlier, as the chosen method saw them.
    chosen = grid["chosen"]
    measured["rel_error"] = (measured["measured_px424"] / measured["catalogue_px424"] - 1).abs()
    worst = int(measured["rel_error"].idxmax())
    picks = [*rng.choice(np.delete(np.arange(len(measured)), worst), size=min(2, len(measured) - 1), replace=False), worst]
    objids = measured["objid"].to_numpy()[picks]
    shown = [chosen["method"]] if chosen["method"] in names else names
    test_maps, grey = barlength.read_heatmaps(args.heatmaps, shown, objids, "test", draw=0)
    chosen_maps = barlength.maps_to_measure(np.mean([test_maps[n] for n in shown], axis=0), grey, chosen["x_input"])
    images = load_images(bars.set_index("objid").loc[objids, "image_path"].tolist(), cfg.images)
    examples = []
    for k, (objid, smap) in enumerate(zip(objids, chosen_maps, strict=True)):
        mask = barlength.isolate_bar(smap, chosen["corr_threshold"], chosen["len_threshold_px"], cfg.xai.linearity)
        p0, p1, _ = barlength.farthest_pair(*np.nonzero(mask))
        m = measured.set_index("objid").loc[objid]
        examples.append({
            "image": images[k], "map": smap, "mask": mask, "endpoints": (p0, p1),
            "title": f"objid {objid}" + (" (worst outlier)" if k == len(objids) - 1 else ""),
            "length_label": f"measured {m['measured_kpc']:.1f}, catalogue {m['catalogue_kpc']:.1f} h^-1 kpc",
        })  # fmt: skip
    save(figures.bar_examples(examples), args.out / "fig3_isolated_bars.png")
    log.info("figure 3: objids %s (%s maps)", ", ".join(map(str, objids)), chosen["method"])

    # Figure 4: measured vs catalogue, saliency and control; and measured vs true on the synthetic sky.
    def panel(frame: pd.DataFrame, scores: dict, label: str, reference: str, yerr: str | None) -> dict:
        return {
            "x": frame[reference], "y": frame["measured_kpc"], "yerr": None if yerr is None else frame[yerr],
            "xerr": evaluation.HOYLE_RELATIVE_ERROR * frame[reference] if reference == "catalogue_kpc" else None,
            "slope": scores.get("slope"), "title": f"{label}: rho = {scores['rho']:.2f}, rho_image = {scores['rho_image']:.2f} (n = {len(frame)})",
        }  # fmt: skip

    save(
        figures.measured_vs_reference(
            [panel(measured, bars_scores, "saliency", "catalogue_kpc", "error_kpc"),
             panel(control, control_scores, "control CNN", "catalogue_kpc", None)],
            "catalogue bar length (h^-1 kpc)", "measured bar length (h^-1 kpc)",
        ),
        args.out / "fig4_measured_vs_catalogue.png",
    )  # fmt: skip
    if "true_kpc" in measured and "true_kpc" in control:
        truth_panels = []
        for frame, scores, label in ((measured, bars_scores, "saliency"), (control, control_scores, "control CNN")):
            p = panel(frame, scores, label, "true_kpc", None)
            p["slope"] = None
            p["title"] = f"{label}: rho_image vs truth = {scores.get('rho_truth_image', float('nan')):.2f}"
            truth_panels.append(p)
        save(
            figures.measured_vs_reference(truth_panels, "true bar length (h^-1 kpc)", "measured bar length (h^-1 kpc)"),
            args.out / "measured_vs_true.png",
        )

    # Figure 5: the ensemble's two largest smooth-vs-features disagreements with the volunteers.
    morph_table = pd.read_csv(args.prepared / "morphology.csv")
    ensemble = pd.read_csv(args.predictions / "ensemble.csv")
    joined = morph_table.merge(ensemble, on="GalaxyID", suffixes=("", "_pred"))
    joined = joined[joined["split"] == "test"]
    joined = joined.assign(gap=(joined["Class1.1_pred"] - joined["Class1.1"]).abs()).nlargest(2, "gap")
    images5 = load_images(joined["image_path"].tolist(), cfg.images)
    smooth = mean_maps(models, images5, "Class1.1", cfg, cfg.seed)
    featured = mean_maps(models, images5, "Class1.2", cfg, cfg.seed)
    examples5 = [
        {
            "image": images5[k],
            "maps": {"smooth (Class1.1)": smooth[k], "features (Class1.2)": featured[k]},
            "title": f"GalaxyID {r['GalaxyID']}\nensemble: smooth {r['Class1.1_pred']:.2f}, features {r['Class1.2_pred']:.2f}\n"
            f"volunteers: smooth {r['Class1.1']:.2f}, features {r['Class1.2']:.2f}",
        }
        for k, (_, r) in enumerate(joined.iterrows())
    ]
    save(figures.disagreements(examples5), args.out / "fig5_disagreements.png")
    log.info("figure 5: GalaxyIDs %s", ", ".join(map(str, joined["GalaxyID"])))

    # The grid search at a glance.
    save(figures.grid_heatmaps(pd.read_csv(args.plots_dir / "gridsearch.csv"), value="rho_image"), args.out / "gridsearch.png")

    shared = shared_comparison(measured, control, cfg.xai.bootstrap, np.random.default_rng(cfg.seed))
    io.write_json(args.comparison, shared)
    io.write_text(
        args.report,
        report_markdown(
            (args.metrics_dir / "table1.md").read_text(), (args.metrics_dir / "table2.md").read_text(),
            morph, grid, bars_scores, control_scores, shared, rotation, cfg.xai.attribution,
        ),
    )  # fmt: skip
    log.info("wrote %s, %s and %s", args.out, args.comparison, args.report)


if __name__ == "__main__":
    main()
