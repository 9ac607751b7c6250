"""Validate params.yaml before any other stage: ``python -m stages.check_params --out data/params.ok``.

This stage depends on params.yaml as a whole file, so any edit (even a misspelt top-level section
that no other stage tracks, like ``xia:``) reruns it and a bad key stops ``dvc repro`` here, with
the config's message naming the key. Then it estimates the run's time and memory from the sizes
the params imply (:func:`galaxy_xai.cost.check_budget`): it logs the estimate, warns past
``limits.warn_hours`` and stops past ``limits.max_hours`` (``null``: no limit), before any work. It also
warns when ``control.folds`` trains the cross-fitted control CNN on less than the paper's split
(:func:`galaxy_xai.data.splits.fold_learning_share`): a weakened control, allowed for quick tests.
Its output has constant content, so every other stage can depend on it without rerunning when a
param they do not read changes: a rerun writes the same bytes, and DVC compares hashes. Light on
purpose: no TensorFlow import.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from galaxy_xai import cost
from galaxy_xai.config import ConfigError
from galaxy_xai.data import splits
from galaxy_xai.io import write_text
from stages._common import start

OK_TEXT = "params.yaml passed validation (galaxy_xai.config)\n"
"""The whole output; constant, whatever the params are."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="marker file to write, e.g. data/params.ok")
    args, cfg, log = start("check_params", parser, argv)
    fold_share, paper_share, enough = splits.fold_learning_share(
        cfg.prepare.control_train_fraction, cfg.prepare.control_val_fraction, cfg.control.folds
    )
    if fold_share < paper_share - 1e-9:
        folds = cfg.control.folds
        log.warning(
            "control.folds = %d: the control model of %s learns from %.0f%% of the bar catalogue, less than the "
            "paper split's %.0f%%: a weaker control CNN than the paper's (%d folds or more give it as much)",
            folds, "fold 1" if folds == 2 else f"each of folds 1-{folds - 1}", 100 * fold_share, 100 * paper_share, enough,
        )  # fmt: skip
    try:
        cost.check_budget(cfg, log)
    except ConfigError as err:
        log.error("%s: %s", args.params, err)
        raise SystemExit(2) from None
    write_text(args.out, OK_TEXT)
    log.info("%s: valid; wrote %s", args.params, args.out)


if __name__ == "__main__":
    main()
