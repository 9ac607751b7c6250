"""Stage ``twins@<model>``: the two randomisation twins of one morphology model (Adebayo et al. 2018).

An explanation explains the model only if a model that learnt nothing cannot give it. Each twin is
explained and measured exactly like its model (``heatmap_shard``, ``gridsearch``, ``measure``):

* ``random_weights`` (model randomisation): the trained model with every learnt layer re-initialised
  (:func:`galaxy_xai.xai.sanity.randomised_copy`), seeded by the model's training seed
  (``train.seed`` + ``seed_offset``): the architecture and the image with no learning;
* ``permuted_labels`` (data randomisation): the model's recipe (architecture, seed, epochs,
  augmentation, learning rate) trained on the morphology table with its 37 vote fractions permuted
  among the galaxies of each split (:func:`galaxy_xai.xai.sanity.permute_labels`, the same seed): what
  training gives when a galaxy's appearance says nothing about its votes.

Writes ``--out-random`` and ``--out-permuted`` (``.keras``), ``--metrics`` (the permuted twin's
training record beside the validation RMSE of the training mean, which it should match, and how
many layers the random twin re-drew; its wall time and speed go to ``--timings``) and the permuted
twin's learning curves under ``--plots``.
Params: those of ``train@<model>`` (``images``, ``train``, ``models.<model>``).
"""

from __future__ import annotations

from galaxy_xai.watchdog import hold_sigterm

hold_sigterm()  # before TensorFlow starts its threads: a multi-worker start-up stays stoppable by SIGTERM

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from galaxy_xai import distribute, io  # noqa: E402
from galaxy_xai.data import tables  # noqa: E402
from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS  # noqa: E402
from galaxy_xai.models import training  # noqa: E402
from galaxy_xai.xai import sanity  # noqa: E402
from stages._common import exit_on_bad_input, morphology_model_config, start  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a key of models in params.yaml")
    parser.add_argument("--trained", type=Path, required=True, help="the trained model (.keras)")
    parser.add_argument("--table", type=Path, required=True, help="prepared morphology table")
    parser.add_argument("--out-random", type=Path, required=True, help="the random-weights twin (.keras)")
    parser.add_argument("--out-permuted", type=Path, required=True, help="the permuted-labels twin (.keras)")
    parser.add_argument("--metrics", type=Path, required=True, help="the twins' record (JSON)")
    parser.add_argument("--timings", type=Path, required=True, help="the permuted twin's training time and speed (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="folder of the permuted twin's learning curves")
    args, cfg, log = start("twins", parser, argv)

    with exit_on_bad_input(log):
        # First: a multi-worker strategy must exist before TensorFlow runs any op.
        strategy = distribute.select_strategy(cfg.train.distribute, timeout_s=cfg.limits.worker_timeout_s)
        model_cfg = morphology_model_config(cfg, args.model, args.params)
        table = tables.read_table(args.table, ["image_path", "split", *CLASS_COLUMNS])
        trained = io.load_model(args.trained, compile=False)
    seed = training.model_seed(cfg.train, model_cfg)

    random_twin = sanity.randomised_copy(trained, None, seed)
    n_layers = len(sanity.learnt_layers(random_twin))
    log.info("random-weights twin of %s: %d learnt layers re-drawn (seed %d)", args.model, n_layers, seed)

    permuted_table = sanity.permute_labels(table, CLASS_COLUMNS, seed)
    log.info("permuted-labels twin of %s: %s's recipe on vote fractions permuted within each split", args.model, model_cfg.arch)
    paths = (args.out_permuted, args.metrics, args.timings, args.plots)
    with distribute.worker_paths(strategy, *paths) as (out, metrics, timings, plots):
        permuted, record = training.train_morphology(
            permuted_table, args.model, images_cfg=cfg.images, model_cfg=model_cfg, train_cfg=cfg.train,
            plots_dir=plots, log=log,
        )  # fmt: skip
        io.save_model(permuted, out)
        io.write_metrics(
            metrics,
            timings,
            {
                "model": args.model,
                "seed": seed,
                "random_weights": {"layers_redrawn": n_layers},
                "permuted_labels": {**record, "val_rmse_of_training_mean": training.mean_predictor_rmse(table, CLASS_COLUMNS)},
            },
        )
    if distribute.is_chief(strategy):
        io.save_model(random_twin, args.out_random)
        log.info("wrote %s, %s and %s", args.out_random, args.out_permuted, args.metrics)


if __name__ == "__main__":
    main()
