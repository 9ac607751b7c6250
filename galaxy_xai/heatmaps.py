"""The heatmap files ``data/heatmaps/<model>.npz``: the one module that knows their layout.

One file per model, written by the ``heatmap`` stage, holding every bar-catalogue galaxy's map:
the validation galaxies once (draw 0), the test galaxies twice with independent SmoothGrad noise
(draws 0 and 1, the paper's test protocol). Arrays: maps float16 (m, H, W) in [0, 1], objid int64
(m,), split '<U4' (m,) 'val'/'test', draw int8 (m,), grey float16 (m, H, W) (the channel mean of the
model input), and the 0-d strings model, method and attribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def read_heatmaps(
    heatmap_dir: str | Path, models: Sequence[str], objids: Sequence[int], split: str, draw: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Maps of ``models`` for ``objids`` (in that order) of one split and noise draw.

    Returns ({model: maps (n, H, W) float16}, grey (n, H, W) float16 from the first model's file).
    Raises ValueError naming the file when a galaxy is missing or repeated, or shapes disagree.
    """
    objids = np.asarray(objids, dtype=np.int64)
    maps: dict[str, np.ndarray] = {}
    grey = None
    for name in models:
        path = Path(heatmap_dir) / f"{name}.npz"
        if not path.is_file():
            raise ValueError(f"{path}: heatmap file of model {name!r} not found")
        with np.load(path) as npz:
            missing_keys = {"maps", "objid", "split", "draw", "grey"} - set(npz.files)
            if missing_keys:
                raise ValueError(f"{path}: missing arrays {sorted(missing_keys)}")
            select = (npz["split"] == split) & (npz["draw"] == draw)
            ids = npz["objid"][select]
            if np.unique(ids).size != ids.size:
                raise ValueError(f"{path}: objid repeated within split={split!r}, draw={draw}")
            position = {int(o): i for i, o in enumerate(ids)}
            absent = [int(o) for o in objids if int(o) not in position]
            if absent:
                raise ValueError(
                    f"{path}: no {split!r} map (draw {draw}) for {len(absent)} galaxies, e.g. objid {absent[0]}"
                )
            where = np.flatnonzero(select)[[position[int(o)] for o in objids]]
            maps[name] = npz["maps"][where]
            if grey is None:
                grey = npz["grey"][where]
        if maps[name].shape != maps[models[0]].shape:
            raise ValueError(f"{path}: maps of shape {maps[name].shape}, expected {maps[models[0]].shape}")
    if grey is None:
        raise ValueError("read_heatmaps: expected at least one model")
    return maps, grey
