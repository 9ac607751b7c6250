"""Stage ``prepare``: validated, joined, split tables from a folder in the real layout.

Reads ``data.path`` (the synthetic sky or the real Kaggle + GZ2 + Hoyle files) and writes
``<out>/morphology.csv``, ``<out>/bars.csv``, ``<out>/dropped.csv`` (every dropped row and why) and
the counts to ``--metrics``. Params: ``data.path``, ``seed`` (every split), ``prepare``
(``test_fraction``, ``val_fraction``, ``xai_val_fraction``, ``control_train_fraction``,
``control_val_fraction``, ``tree_tolerance``, ``check_images``) and ``images.crop_px`` (a catalogue
bar longer than the crop the models see is dropped as ``implausible_length``). A missing file or column, or a
value that is not a number, stops the stage with exit status 2 and a message naming the file, line
and column; so does a split that the drops leave empty, with how many rows were dropped and why.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from galaxy_xai.data import catalogue, preparation
from galaxy_xai.data.tables import write_prepared
from galaxy_xai.io import write_json
from stages._common import exit_on_bad_input, start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the prepared tables")
    parser.add_argument("--metrics", type=Path, required=True, help="counts (JSON)")
    args, cfg, log = start("prepare", parser, argv)

    data_dir = Path(cfg.data.path)
    with exit_on_bad_input(log):  # catalogue.DataError is a ValueError
        # truth.csv exists only in the synthetic sky; with it bars.csv also gets the true lengths.
        truth = catalogue.read_truth(data_dir)
        prepared = preparation.prepare_data(
            data_dir, cfg.prepare, cfg.seed, truth=truth, log=log, crop_px=cfg.images.crop_px
        )

    write_prepared(args.out, prepared.morphology, prepared.bars, prepared.dropped)
    write_json(args.metrics, prepared.metrics)
    log.info(
        "wrote %s: %d morphology rows %s, %d bar rows (XAI %s, control %s), %d dropped rows",
        args.out,
        len(prepared.morphology),
        prepared.metrics["morphology"]["split"],
        len(prepared.bars),
        prepared.metrics["bars"]["xai_split"],
        prepared.metrics["bars"]["control_split"],
        len(prepared.dropped),
    )


if __name__ == "__main__":
    main()
