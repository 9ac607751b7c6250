"""Stage ``heatmap``: one model's heatmap file from its shards, as one unsharded run would write it.

Reads the shard files ``--shards/<i>.npz`` of the ``heatmap_shard`` stages for i = 0, ..., n - 1
(n = len(``heatmap.shards``)), checks each against its block of the bar catalogue ``--bars``
(present, shard i of n, same model / method / attribution / map shape, exactly its galaxies) and
writes ``--out`` (:mod:`galaxy_xai.xai.heatmaps`): every galaxy at draw 0 in catalogue order, then the
test galaxies at draw 1. Other ``.npz`` files in ``--shards`` (left by a run with more shards) are
ignored with a warning.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from galaxy_xai.data.tables import read_bars
from galaxy_xai.xai import heatmaps
from stages._common import exit_on_bad_input, start

SHARD_FILE = re.compile(r"\d+\.npz")
"""The names of shard files: ``<i>.npz``."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model name (a key of params.yaml models)")
    parser.add_argument("--shards", type=Path, required=True, help="folder of the model's shard files <i>.npz")
    parser.add_argument("--bars", type=Path, required=True, help="bar catalogue (data/prepared/bars.csv)")
    parser.add_argument("--out", type=Path, required=True, help="output array file (.npz)")
    args, cfg, log = start("heatmap", parser, argv)

    with exit_on_bad_input(log):
        paths = [args.shards / f"{i}.npz" for i in range(len(cfg.heatmap.shards))]
        others = sorted(
            p.name for p in args.shards.glob("*.npz") if SHARD_FILE.fullmatch(p.name) and p not in paths
        )
        if others:
            log.warning("%s: ignoring %s (not among the %d shards of heatmap.shards)", args.shards, others, len(paths))
        bars = read_bars(args.bars, columns=("objid", "xai_split"))
        shards = [(str(path), heatmaps.read_heatmap_shard(path)) for path in paths]
        arrays = heatmaps.merge_shards(shards, bars["objid"].to_numpy(), bars["xai_split"].to_numpy())
        if str(arrays["model"]) != args.model:
            raise ValueError(f"{paths[0]}: maps of model {str(arrays['model'])!r}, expected {args.model!r}")
    heatmaps.write_heatmaps(args.out, arrays)
    log.info("wrote %s: %d maps merged from %d shard(s) in %s", args.out, len(arrays["maps"]), len(paths), args.shards)


if __name__ == "__main__":
    main()
