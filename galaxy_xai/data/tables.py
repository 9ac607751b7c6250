"""The prepared tables (``data/prepared/``): the one place that writes and reads them.

``morphology.csv`` (one row per labelled galaxy: GalaxyID, image_path, split, the 37 vote
fractions) and ``bars.csv`` (one row per bar-catalogue galaxy: the columns of
:data:`galaxy_xai.data.preparation.BARS_COLUMNS`, plus true_length_px424 / true_length_kpc on the synthetic
sky) are written by the ``prepare`` stage and read by every later stage through the functions here,
so a column added or renamed changes one module. Every reader raises ``ValueError`` naming the file
(and the first bad objid) rather than failing later in the middle of an epoch or a correlation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_xai.io import read_csv, write_csv

MORPHOLOGY_CSV = "morphology.csv"
BARS_CSV = "bars.csv"
DROPPED_CSV = "dropped.csv"

XAI_COLUMNS = ("objid", "length_px424", "length_kpc", "PETROR90_R", "REDSHIFT", "xai_split")
"""What a bar-length comparison needs of a bar-catalogue row."""


def write_prepared(
    out_dir: str | Path, morphology: pd.DataFrame, bars: pd.DataFrame, dropped: pd.DataFrame
) -> None:
    """Write the three prepared tables into ``out_dir`` (each atomically)."""
    out_dir = Path(out_dir)
    write_csv(out_dir / MORPHOLOGY_CSV, morphology)
    write_csv(out_dir / BARS_CSV, bars)
    write_csv(out_dir / DROPPED_CSV, dropped)


def read_table(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """A prepared table checked to have ``columns`` (extra columns are kept) and at least one row."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: prepared table not found (run the prepare stage first)")
    table = read_csv(path, "a table written by the prepare stage")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if table.empty:
        raise ValueError(f"{path}: no rows")
    return table


def xai_rows(bars: pd.DataFrame, split: str, source: str = BARS_CSV) -> pd.DataFrame:
    """Rows of the bar catalogue in XAI split ``split`` ('val' or 'test'), checked, index 0..n-1.

    Raises ValueError naming ``source`` and the first bad objid on missing columns, an empty split,
    repeated objids or non-finite / non-positive lengths, PETROR90_R or REDSHIFT.
    """
    missing = [c for c in XAI_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}; expected {list(XAI_COLUMNS)}")
    rows = bars[bars["xai_split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"{source}: no rows with xai_split == {split!r}")
    if rows["objid"].duplicated().any():
        raise ValueError(f"{source}: objid {rows.loc[rows['objid'].duplicated(), 'objid'].iloc[0]} repeated")
    for column in ("length_px424", "length_kpc", "PETROR90_R", "REDSHIFT"):
        values = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            raise ValueError(
                f"{source}: objid {rows['objid'].iloc[np.argmax(bad)]}: {column} = {rows[column].iloc[np.argmax(bad)]!r}; "
                "expected a positive number"
            )
    return rows


def read_bars(
    path: str | Path, split: str | None = None, columns: Sequence[str] = ("objid", "xai_split")
) -> pd.DataFrame:
    """The bar catalogue ``bars.csv``: every row (checked to have ``columns``), or with ``split``
    ('val' / 'test') the checked rows of that XAI split (see :func:`xai_rows`)."""
    bars = read_table(path, columns)
    return bars if split is None else xai_rows(bars, split, str(path))
