"""Stage ``train@<model>``: train one morphology CNN on the 37 Galaxy Zoo vote fractions.

``<model>`` is a key of ``models`` in params.yaml. Reads the prepared morphology table (train and
val splits) and writes the model (``.keras``), a metrics JSON (epochs run, best epoch, best
validation RMSE, final training RMSE), the wall time and images/s apart in ``--timings`` (they
differ between two runs of the same code and data) and its learning curves under ``--plots``:
``learning_curve.tsv`` (epoch, train_rmse, val_rmse, lr, seconds) and DVCLive's files in
``dvclive/``. An unknown model name, or an image size the architecture cannot take, stops the
stage with exit status 2 before any work. Params: ``models.<model>`` (``arch``, ``epochs``,
``batch_size``, ``learning_rate``, ``weights``), ``images`` (every key: crop, size, augmentation)
and ``train`` (``seed``, ``lr_patience``, ``stop_patience``, ``distribute``, ``mixed_precision``).

Under ``train.distribute: multi_worker`` every machine runs this same command with its own
``TF_CONFIG`` (:mod:`galaxy_xai.distribute`); only the chief writes the outputs.
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
from stages._common import exit_on_bad_input, morphology_model_config, start  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a key of models in params.yaml")
    parser.add_argument("--table", type=Path, required=True, help="prepared morphology table")
    parser.add_argument("--out", type=Path, required=True, help="the trained model (.keras)")
    parser.add_argument("--metrics", type=Path, required=True, help="training metrics (JSON)")
    parser.add_argument("--timings", type=Path, required=True, help="training time and speed (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="folder of the learning curves")
    args, cfg, log = start("train", parser, argv)

    with exit_on_bad_input(log):
        # First: a multi-worker strategy must exist before TensorFlow runs any op.
        strategy = distribute.select_strategy(cfg.train.distribute, timeout_s=cfg.limits.worker_timeout_s)
        model_cfg = morphology_model_config(cfg, args.model, args.params)
        table = tables.read_table(args.table, ["image_path", "split", *CLASS_COLUMNS])

    log.info("training %s (%s, up to %d epochs)", args.model, model_cfg.arch, model_cfg.epochs)
    # A non-chief worker runs the same steps (saving too) into a temporary folder.
    with distribute.worker_paths(strategy, args.out, args.metrics, args.timings, args.plots) as (out, metrics, timings, plots):
        model, record = training.train_morphology(
            table, args.model, images_cfg=cfg.images, model_cfg=model_cfg, train_cfg=cfg.train, plots_dir=plots, log=log
        )
        io.save_model(model, out)
        io.write_metrics(metrics, timings, record)
    if distribute.is_chief(strategy):
        log.info("wrote %s and %s", args.out, args.metrics)
    else:
        log.info("not the chief worker: its copies of %s and %s were discarded", args.out, args.metrics)


if __name__ == "__main__":
    main()
