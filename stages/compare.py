"""Stage ``compare``: the saliency lengths against the control CNN's, the catalogue against the truth,
and the headline rows.

``--comparison``: :func:`galaxy_xai.results.comparison.control_comparisons` of the measure stage's
per-galaxy lengths and the control stage's predictions (paired, on the galaxies both measured);
``--benchmark``: the catalogue's own scores against the true lengths on the test galaxies
(:func:`galaxy_xai.results.comparison.catalogue_benchmark`; ``{}`` on real data, which has no truth);
``--headline``: the folder of the run's headline rows (:func:`galaxy_xai.results.headline.headline`,
the only files dvc.yaml declares as metrics).

Params read: ``seed`` (each bootstrap starts from it) and ``xai.bootstrap`` (resamples).

    python -m stages.compare --barlengths plots/barlengths.csv --control plots/control/predictions.csv \
        --metrics-dir metrics --comparison metrics/comparison.json \
        --benchmark metrics/catalogue_benchmark.json --headline metrics/headline
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from galaxy_xai import io
from galaxy_xai.results import comparison, headline
from galaxy_xai.results.evaluation import finite_or_none
from galaxy_xai.results.report import RunMetrics
from stages._common import exit_on_bad_input, start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--barlengths", type=Path, required=True, help="the measure stage's per-galaxy lengths (CSV)")
    parser.add_argument("--control", type=Path, required=True, help="the control stage's predictions (CSV)")
    parser.add_argument("--metrics-dir", type=Path, required=True, help="folder of the run's metrics")
    parser.add_argument("--comparison", type=Path, required=True, help="saliency vs control CNN (JSON)")
    parser.add_argument("--benchmark", type=Path, required=True, help="the catalogue against the truth (JSON)")
    parser.add_argument("--headline", type=Path, required=True, help="folder of the headline rows (JSON)")
    args, cfg, log = start("compare", parser, argv)

    with exit_on_bad_input(log):
        run = RunMetrics.read(args.metrics_dir)
        measured = io.read_csv(args.barlengths, "the measure stage's per-galaxy lengths")
        control = io.read_csv(args.control, "the control stage's predictions")
    # Each comparison draws its own resamples from the seed, so adding one never moves another.
    shared = comparison.control_comparisons(measured, control, cfg.xai.bootstrap, np.random.default_rng(cfg.seed))
    benchmark = comparison.catalogue_benchmark(measured, cfg.xai.bootstrap, np.random.default_rng(cfg.seed))
    rows = headline.headline(run, shared)

    io.write_json(args.comparison, shared)
    io.write_json(args.benchmark, finite_or_none(benchmark or {}))
    headline.write_headline(args.headline, rows)
    log.info(
        "%d galaxies shared with the control CNN; catalogue vs truth on %s galaxies; %d headline rows",
        shared.get("n_shared", 0), (benchmark or {}).get("n", "no"), len(rows),
    )  # fmt: skip


if __name__ == "__main__":
    main()
