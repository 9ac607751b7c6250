"""Stage ``figure``: the paper's figures as PNGs, the saliency-vs-control comparison, and report.md.

Figures (``--out``): 1 a test galaxy's maps for bar / bulge / arms, averaged over the models: the
``xai.target`` panel is the heatmap stage's stored map (draw 0, the map that was measured), the other
answers recomputed as the heatmap stage computes them (a sampling explainer with its seeds and noise
keys); 2 learning curves; 3 three isolated
bars with their measured lengths; 4 measured vs catalogue lengths for the saliency maps and the control
model; 5 the galaxies where the ensemble disagrees most with the volunteers on smooth vs features; plus
the grid-search heat map, on the synthetic sky measured vs true, ``complements.png``: what each
length adds to the isophote length (:func:`galaxy_xai.figures.complements`), and ``ensemble.png``:
the saliency length against the number of models averaged (:func:`galaxy_xai.figures.ensemble_curve`).

``--comparison``: :func:`galaxy_xai.comparison.control_comparisons`; ``--headline``: the folder of
the run's headline rows (:func:`galaxy_xai.headline.headline`, the only files dvc.yaml declares as
metrics); ``--report``: :func:`galaxy_xai.report.report_markdown`, with the catalogue's own scores
against the true lengths on the test galaxies (:func:`galaxy_xai.comparison.catalogue_benchmark`,
synthetic sky only).

Params read: ``seed`` (figure 3's random galaxies, the comparison's bootstrap, and the seeds of a
sampling explainer in figures 1 and 5), ``images`` (``crop_px``, ``size_px`` and the rest of the
decoding of ``load_images``), ``models`` (the model names), ``xai.method``, ``xai.attribution``,
``xai.integrated_gradients`` / ``xai.smoothgrad`` / ``xai.occlusion`` (the explainer of figures 1 and 5),
``xai.target`` (figure 1's stored panel), ``xai.linearity`` (figure 3's isolated bars) and
``xai.bootstrap`` (the comparison).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from galaxy_xai import (
    barlength,
    catalogue,
    comparison,
    explainers,
    figures,
    headline,
    heatmaps,
    io,
    prepared,
    report,
    units,
)
from galaxy_xai.config import Config
from galaxy_xai.images import load_images
from galaxy_xai.maps import normalise_maps
from stages._common import exit_on_bad_input, start

FIGURE1_TARGETS = {"bar (Class3.1)": "Class3.1", "bulge (Class5.3)": "Class5.3", "arms (Class11.3)": "Class11.3"}


def mean_maps(models: dict[str, keras.Model], images: np.ndarray, target: str, cfg: Config, seed: int) -> np.ndarray:
    """The models' maps of ``target`` averaged and renormalised: (n, H, W) in [0, 1]."""
    explainer = explainers.from_config(cfg.xai, target=target)
    maps = [explainer(m, images, seed=seed) for m in models.values()]
    return normalise_maps(np.mean(maps, axis=0))


def figure1_maps(
    models: dict[str, keras.Model], image: np.ndarray, objid: int, heatmap_dir: Path, cfg: Config
) -> dict[str, np.ndarray]:
    """{panel label: (H, W) map averaged over the models} of one test galaxy for figure 1.

    ``xai.target``: the stored maps (draw 0) of the heatmap files, as measured; the other answers of
    :data:`FIGURE1_TARGETS`: recomputed as the heatmap stage computes draw 0 (each model's
    ``draw_seed(seed, model, 0)``, noise keyed by the objid), so they are the maps it would have stored.
    """
    stored, _ = heatmaps.read_heatmaps(heatmap_dir, list(models), [objid], "test", draw=0)
    targets = FIGURE1_TARGETS if cfg.xai.target in FIGURE1_TARGETS.values() else {cfg.xai.target: cfg.xai.target, **FIGURE1_TARGETS}
    out = {}
    for label, target in targets.items():
        if target == cfg.xai.target:
            maps = [np.asarray(stored[name], dtype=np.float32) for name in models]
            # The stored maps explain the target minus the contrast answer, when there is one.
            shown = label.replace(target, f"{target} - {cfg.xai.contrast}") if cfg.xai.contrast else label
            out[f"{shown}\nstored"] = normalise_maps(np.mean(maps, axis=0))[0]
        else:
            explainer = explainers.from_config(cfg.xai, target=target)
            maps = [
                explainer(m, image, seed=heatmaps.draw_seed(cfg.seed, name, 0), keys=np.array([objid]))
                for name, m in models.items()
            ]
            out[f"{label}\nrecomputed"] = normalise_maps(np.mean(maps, axis=0))[0]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of <model>.keras")
    parser.add_argument("--heatmaps", type=Path, required=True, help="folder of <model>.npz saliency maps")
    parser.add_argument("--prepared", type=Path, required=True, help="folder of the prepared tables")
    parser.add_argument("--predictions", type=Path, required=True, help="folder of the predict stage's tables")
    parser.add_argument("--metrics-dir", type=Path, required=True, help="folder of the run's metrics")
    parser.add_argument("--plots-dir", type=Path, required=True, help="folder of the run's plot tables")
    parser.add_argument("--out", type=Path, required=True, help="folder of the PNGs")
    parser.add_argument("--comparison", type=Path, required=True, help="saliency vs control CNN (JSON)")
    parser.add_argument("--headline", type=Path, required=True, help="folder of the headline rows (JSON)")
    parser.add_argument("--report", type=Path, required=True, help="report (Markdown)")
    args, cfg, log = start("figure", parser, argv)
    rng = np.random.default_rng(cfg.seed)
    names = list(cfg.models)

    with exit_on_bad_input(log):
        run = report.RunMetrics.read(args.metrics_dir)
        choice = barlength.read_choice(args.metrics_dir / "gridsearch.json", names)
        bars = prepared.read_bars(args.prepared / "bars.csv", columns=("objid", "image_path", "xai_split", "length_px424"))
        models = {n: io.load_model(args.models / f"{n}.keras", compile=False) for n in names}
        measured = io.read_csv(args.plots_dir / "barlengths.csv", "the measure stage's per-galaxy lengths")
        control_all = io.read_csv(args.plots_dir / "control" / "predictions.csv", "the control stage's predictions")
        curves = {
            n: io.read_csv(args.plots_dir / "train" / n / "learning_curve.tsv", "a train stage's learning curve", sep="\t")
            for n in names
        }
        morphology = io.read_csv(args.prepared / "morphology.csv", "the prepare stage's morphology table")
        ensemble = io.read_csv(args.predictions / "ensemble.csv", "the predict stage's ensemble predictions")
        grid = io.read_csv(args.plots_dir / "gridsearch.csv", "the gridsearch stage's table")
    # Every bar galaxy has an out-of-fold prediction; the figures show the XAI test galaxies, as for the saliency maps.
    control = control_all[control_all["xai_split"] == "test"] if "xai_split" in control_all else control_all
    explainer = figures.explainer_name(cfg.xai.method, explainers.from_config(cfg.xai).attribution)

    # Figure 2: learning curves.
    figures.save(figures.learning_curves(curves), args.out / "fig2_learning_curves.png")
    log.info("figure 2: learning curves of %s", ", ".join(names))

    # Figure 1: one test galaxy (the longest catalogue bar, where the features are resolved).
    row = bars.loc[bars.loc[bars["xai_split"] == "test", "length_px424"].idxmax()]
    image = load_images([row["image_path"]], cfg.images)
    stored = (
        "stored = the heatmap files (draw 0, as measured); recomputed = the same seeds and noise keys"
        if explainers.from_config(cfg.xai).stochastic
        else "stored = the heatmap files (as measured); recomputed = the same explainer for the other answers"
    )
    figures.save(
        figures.saliency_panels(
            image[0], figure1_maps(models, image, int(row["objid"]), args.heatmaps, cfg),
            f"objid {row['objid']}: {explainer} maps averaged over {len(names)} models\n{stored}",
            caption=figures.figure1_caption(cfg.xai.method, cfg.xai.integrated_gradients.baseline),
        ),
        args.out / "fig1_saliency_maps.png",
    )  # fmt: skip
    log.info("figure 1: objid %s (%s stored, the other answers recomputed)", row["objid"], cfg.xai.target)

    # Figure 3: two random test galaxies and the worst outlier, as the chosen setting saw them.
    measured["rel_error"] = (measured["measured_px424"] / measured["catalogue_px424"] - 1).abs()
    worst = int(measured["rel_error"].idxmax())
    picks = [*rng.choice(np.delete(np.arange(len(measured)), worst), size=min(2, len(measured) - 1), replace=False), worst]
    objids = measured["objid"].to_numpy()[picks]
    shown = choice.models_needed(names)
    test_maps, grey = heatmaps.read_heatmaps(args.heatmaps, shown, objids, "test", draw=0)
    map_px, crop_px = grey.shape[-1], cfg.images.crop_px
    # The maps exactly as measured: the chosen mask (e.g. R90) applied before isolating the bar.
    chosen_maps = barlength.maps_to_measure(
        np.mean([test_maps[n] for n in shown], axis=0), grey, choice.x_input, choice.radius_px(map_px, crop_px)
    )
    images = load_images(bars.set_index("objid").loc[objids, "image_path"].tolist(), cfg.images)
    with exit_on_bad_input(log):
        truth = catalogue.read_truth(cfg.data.path)  # the true bars' ellipses (synthetic sky only)
    true_bars = None if truth is None else truth[truth["set"] == "gz2"].set_index("id")
    examples = []
    for k, (objid, smap) in enumerate(zip(objids, chosen_maps, strict=True)):
        m = measured.set_index("objid").loc[objid]
        length_map_px = units.px424_to_map_px(m["measured_px424"], cfg.images.size_px, crop_px)
        mask, endpoints = figures.isolated_bar(smap, choice, map_px, crop_px, cfg.xai.linearity, length_map_px)
        true = true_bars.loc[objid] if true_bars is not None and objid in true_bars.index else None
        has_true_bar = true is not None and np.isfinite(true["bar_length_px424"])
        examples.append({
            "image": images[k], "map": smap, "mask": mask, "endpoints": endpoints,
            "title": f"objid {objid}" + (" (worst outlier)" if k == len(objids) - 1 else ""),
            "length_label": f"measured {m['measured_kpc']:.1f}, catalogue {m['catalogue_kpc']:.1f}"
            + (f", true {m['true_kpc']:.1f}" if "true_kpc" in m else "") + " h^-1 kpc",
            "outline": figures.ellipse_outline(true["bar_length_px424"], true["bar_axis_ratio"], true["bar_angle_deg"],
                                               map_px, crop_px) if has_true_bar else None,
        })  # fmt: skip
    measured_as = "isolated bar (Algorithm 1)" if choice.estimator == barlength.ALGORITHM1 else f"map above 0 ({choice.estimator})"
    figures.save(figures.bar_examples(examples, measured_as), args.out / "fig3_isolated_bars.png")
    log.info("figure 3: objids %s (%s maps)", ", ".join(map(str, objids)), choice.map_source)

    # Figure 4: measured vs catalogue, saliency and control; and measured vs true on the synthetic sky.
    figures.save(
        figures.measured_vs_reference(
            [figures.scatter_panel(measured, run.barlengths, "saliency", "catalogue_kpc", "error_kpc"),
             figures.scatter_panel(control, run.control, "control CNN", "catalogue_kpc", None)],
            "catalogue bar length (h^-1 kpc)", "measured bar length (h^-1 kpc)",
        ),
        args.out / "fig4_measured_vs_catalogue.png",
    )  # fmt: skip
    if "true_kpc" in measured and "true_kpc" in control:
        truth_panels = [figures.truth_panel(measured, run.barlengths, "saliency"), figures.truth_panel(control, run.control, "control CNN")]
        figures.save(
            figures.measured_vs_reference(truth_panels, "true bar length (h^-1 kpc)", "measured bar length (h^-1 kpc)"),
            args.out / "measured_vs_true.png",
        )

    # Figure 5: the ensemble's two largest smooth-vs-features disagreements with the volunteers.
    joined = figures.largest_disagreements(morphology, ensemble)
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
    figures.save(figures.disagreements(examples5), args.out / "fig5_disagreements.png")
    log.info("figure 5: GalaxyIDs %s", ", ".join(map(str, joined["GalaxyID"])))

    # The grid search at a glance.
    figures.save(figures.grid_heatmaps(grid, value="rho_image"), args.out / "gridsearch.png")

    shared = comparison.control_comparisons(measured, control_all, cfg.xai.bootstrap, np.random.default_rng(cfg.seed))
    io.write_json(args.comparison, shared)
    headline.write_headline(args.headline, headline.headline(run, shared))
    if shared.get("complements", {}).get("scores"):
        figures.save(figures.complements(shared["complements"]), args.out / "complements.png")
    if run.barlengths.get("ensemble"):
        # The controls' scores against the same reference, as horizontal lines.
        others = {"control CNN": shared.get("control", {}), "image-only length": run.barlengths["controls"]["image"]}
        lines = {
            reference: {label: scores[key] for label, scores in others.items() if scores.get(key) is not None}
            for reference, key in (("catalogue", "spearman_image"), ("truth", "spearman_truth_image"))
        }
        targets = {"truth": report.SPEARMAN_TRUTH_TARGET["target"]}
        figures.save(figures.ensemble_curve(run.barlengths["ensemble"], lines, targets=targets), args.out / "ensemble.png")
    setup = {"size_px": cfg.images.size_px, "archs": sorted({m.arch for m in cfg.models.values()})}
    benchmark = comparison.catalogue_benchmark(measured, cfg.xai.bootstrap, np.random.default_rng(cfg.seed))
    io.write_text(args.report, report.report_markdown(run, shared, explainer, setup, benchmark))
    log.info("wrote %s, %s, %s and %s", args.out, args.comparison, args.headline, args.report)


if __name__ == "__main__":
    main()
