"""Stage ``figure``: the paper's figures as PNGs and report.md.

Figures (``--out``): 1 a test galaxy's maps for bar / bulge / arms, averaged over the models: the
``xai.target`` panel is the heatmap stage's stored map (draw 0, the map that was measured), the other
answers recomputed as the heatmap stage computes them (a sampling explainer with its seeds and noise
keys); 2 learning curves; 3 three isolated
bars with their measured lengths; 4 measured vs catalogue lengths for the saliency maps and the control
model; 5 the galaxies where the ensemble disagrees most with the volunteers on smooth vs features; plus
the grid-search heat map, on the synthetic sky measured vs true, ``complements.png``: what each
length adds to the isophote length (:func:`galaxy_xai.results.figures.complements`), and ``ensemble.png``:
the saliency length against the number of models averaged (:func:`galaxy_xai.results.figures.ensemble_curve`).

What each figure shows is computed by :mod:`galaxy_xai.results.panels` and drawn by
:mod:`galaxy_xai.results.figures`. ``--report``: :func:`galaxy_xai.results.report.report_markdown` of the
run's metrics, with the compare stage's ``comparison.json`` and ``catalogue_benchmark.json`` and the
recorded runs (``--records``): the default configuration on other training seeds, and the other recipes tried.

Params read: ``seed`` (figure 3's random galaxies and the seeds of a sampling explainer in figures 1
and 5), ``images`` (``crop_px``, ``size_px`` and the rest of the
decoding of ``load_images``), ``models`` (the model names), ``xai.method``, ``xai.attribution``,
``xai.integrated_gradients`` / ``xai.smoothgrad`` / ``xai.occlusion`` (the explainer of figures 1 and 5),
``xai.target`` (figure 1's stored panel) and ``xai.linearity`` (figure 3's isolated bars).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from galaxy_xai import io
from galaxy_xai.bars import barlength
from galaxy_xai.data import tables
from galaxy_xai.data.images import load_images
from galaxy_xai.results import figures, panels, report, runs
from galaxy_xai.xai import explainers
from stages._common import exit_on_bad_input, start


def arguments() -> argparse.ArgumentParser:
    """The stage's command line (``--params`` is added by :func:`stages._common.start`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder of <model>.keras")
    parser.add_argument("--heatmaps", type=Path, required=True, help="folder of <model>.npz saliency maps")
    parser.add_argument("--prepared", type=Path, required=True, help="folder of the prepared tables")
    parser.add_argument("--predictions", type=Path, required=True, help="folder of the predict stage's tables")
    parser.add_argument("--metrics-dir", type=Path, required=True, help="folder of the run's metrics")
    parser.add_argument("--plots-dir", type=Path, required=True, help="folder of the run's plot tables")
    parser.add_argument("--out", type=Path, required=True, help="folder of the PNGs")
    parser.add_argument("--records", type=Path, required=True, help="folder of the experiment records (records/)")
    parser.add_argument("--report", type=Path, required=True, help="report (Markdown)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, cfg, log = start("figure", arguments(), argv)
    names = list(cfg.models)

    with exit_on_bad_input(log):
        run = report.RunMetrics.read(args.metrics_dir)
        shared = io.read_json(args.metrics_dir / "comparison.json", "the compare stage's comparison")
        benchmark = io.read_json(args.metrics_dir / "catalogue_benchmark.json", "the compare stage's benchmark") or None
        choice = barlength.read_choice(args.metrics_dir / "gridsearch.json", names)
        bars = tables.read_bars(args.prepared / "bars.csv", columns=("objid", "image_path", "xai_split", "length_px424"))
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

    figures.save(figures.learning_curves(curves), args.out / "fig2_learning_curves.png")
    log.info("figure 2: learning curves of %s", ", ".join(names))

    row = panels.figure1_galaxy(bars)
    image = load_images([row["image_path"]], cfg.images)
    figures.save(
        figures.saliency_panels(
            image[0], panels.figure1_maps(models, image, int(row["objid"]), args.heatmaps, cfg),
            f"objid {row['objid']}: {explainer} maps averaged over {len(names)} models\n{panels.figure1_subtitle(cfg)}",
            caption=figures.figure1_caption(cfg.xai.method, cfg.xai.integrated_gradients.baseline),
        ),
        args.out / "fig1_saliency_maps.png",
    )  # fmt: skip
    log.info("figure 1: objid %s (%s stored, the other answers recomputed)", row["objid"], cfg.xai.target)

    objids = panels.figure3_objids(measured, np.random.default_rng(cfg.seed))
    examples = panels.figure3_examples(objids, measured, bars, args.heatmaps, names, choice, cfg)
    measured_as = "isolated bar (Algorithm 1)" if choice.estimator == barlength.ALGORITHM1 else f"map above 0 ({choice.estimator})"
    figures.save(figures.bar_examples(examples, measured_as), args.out / "fig3_isolated_bars.png")
    log.info("figure 3: objids %s (%s maps)", ", ".join(map(str, objids)), choice.map_source)

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

    disagreements = figures.largest_disagreements(morphology, ensemble)
    figures.save(figures.disagreements(panels.figure5_examples(models, disagreements, cfg)), args.out / "fig5_disagreements.png")
    log.info("figure 5: GalaxyIDs %s", ", ".join(map(str, disagreements["GalaxyID"])))

    figures.save(figures.grid_heatmaps(grid, value="rho_image"), args.out / "gridsearch.png")
    if shared.get("complements", {}).get("scores"):
        figures.save(figures.complements(shared["complements"]), args.out / "complements.png")
    if run.barlengths.get("ensemble"):
        targets = {"truth": report.SPEARMAN_TRUTH_TARGET["target"]}
        lines = panels.ensemble_lines(run.barlengths, shared)
        figures.save(figures.ensemble_curve(run.barlengths["ensemble"], lines, targets=targets), args.out / "ensemble.png")

    setup = {"size_px": cfg.images.size_px, "archs": sorted({m.arch for m in cfg.models.values()})}
    seed_runs, lever_runs = runs.seed_records(args.records), runs.lever_records(args.records)
    io.write_text(args.report, report.report_markdown(run, shared, explainer, setup, benchmark, seed_runs, lever_runs))
    log.info("wrote %s and %s", args.out, args.report)


if __name__ == "__main__":
    main()
