"""What the ``prepare`` stage leaves out of the prepared tables, and why.

Galaxies that cannot be used (a repeated ID, labels that break the decision tree, no mapping, no
photometry, no usable JPEG, ...) are not errors: every drop is a row (id, file, reason, detail) of
a drop table (:data:`DROP_COLUMNS`), with the reason one of :data:`MORPHOLOGY_DROP_REASONS` or
:data:`BARS_DROP_REASONS` (explained by :data:`DROP_REASON_TEXT`). The repeated rows of the GZ2
mapping and of ``gz2sample.csv`` are resolved here too, never by file order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_xai.catalogue import (
    GZ2_MAPPING_CSV,
    GZ2_SAMPLE_CSV,
    GZ2_SAMPLE_USED,
    HOYLE_CSV,
    IMAGE_REASONS,
    LABELS_CSV,
)
from galaxy_xai.units import IMAGE_PX

SAMPLE_PREFERENCE = ("original", "extra")
"""GZ2 mapping samples in order of preference when an objid has several rows (others come last)."""
MORPHOLOGY_DROP_REASONS = ("duplicate_id", "tree_violation", *IMAGE_REASONS)
BARS_DROP_REASONS = (
    "duplicate_objid",
    "bad_length_scaled",
    "implausible_length",
    "no_mapping",
    "conflicting_gz2sample_rows",
    "not_in_gz2sample",
    "bad_petror90_r",
    "bad_redshift",
    *IMAGE_REASONS,
)
DROP_COLUMNS = ["id", "file", "reason", "detail"]
"""Columns of a drop table."""

DROP_REASON_TEXT = {
    "duplicate_id": f"GalaxyID repeated in {LABELS_CSV} (first row kept)",
    "tree_violation": "rows breaking the Galaxy Zoo decision tree by more than prepare.tree_tolerance = {tolerance:g}",
    "missing_image": "no JPEG at the expected path",
    "not_a_jpeg": "the image file is not a JPEG",
    "corrupt_image": "the JPEG does not decode (e.g. truncated)",
    "wrong_image_size": f"the JPEG is not {IMAGE_PX} x {IMAGE_PX} px",
    "duplicate_objid": f"objid repeated in {HOYLE_CSV} (first row kept)",
    "bad_length_scaled": "length_scaled empty, not finite or not positive",
    "implausible_length": f"length_scaled puts the bar beyond the {IMAGE_PX}-px image (length_px424 > {IMAGE_PX})",
    "no_mapping": f"objid not in {GZ2_MAPPING_CSV}",
    "conflicting_gz2sample_rows": f"OBJID repeated in {GZ2_SAMPLE_CSV} with different PETROR90_R or REDSHIFT",
    "not_in_gz2sample": f"objid not in {GZ2_SAMPLE_CSV}",
    "bad_petror90_r": "PETROR90_R empty, not finite or not positive",
    "bad_redshift": "REDSHIFT empty, not finite or not positive",
    "not_a_galaxy_id": "the file name is not <GalaxyID>.jpg (a positive integer without leading zeros)",
}
"""What each drop reason means, for error messages; ``{tolerance}`` is ``prepare.tree_tolerance``."""


def drop_rows(
    frame: pd.DataFrame,
    reasons: np.ndarray,
    id_column: str,
    file: str | np.ndarray,
    details: np.ndarray | list | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` by a per-row ``reasons`` array ('' keeps the row).

    ``file`` (one name or one per row) and ``details`` (one per row) describe the dropped rows.
    Returns the kept rows (index reset) and a drop table with :data:`DROP_COLUMNS` for the others.
    """
    n = len(frame)
    reasons = np.asarray(reasons, dtype=object)
    bad = reasons != ""
    files = np.broadcast_to(np.asarray(file, dtype=object), (n,))
    details = np.full(n, "", dtype=object) if details is None else np.asarray(details, dtype=object)
    dropped = pd.DataFrame(
        {
            "id": frame[id_column].to_numpy()[bad],
            "file": files[bad],
            "reason": reasons[bad],
            "detail": details[bad],
        },
        columns=DROP_COLUMNS,
    )
    return frame.loc[~bad].reset_index(drop=True), dropped


def flag(mask: np.ndarray, reason: str) -> np.ndarray:
    """Per-row reasons for :func:`drop_rows`: ``reason`` where ``mask`` (n,) is true, '' elsewhere."""
    return np.where(np.asarray(mask, dtype=bool), reason, "").astype(object)


def dedupe_mapping(mapping: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One mapping row per objid: prefer :data:`SAMPLE_PREFERENCE`, then sample name, then asset_id.

    Returns (kept rows sorted by objid, the other rows). The choice does not depend on row order.
    """
    rank = (
        mapping["sample"].map({s: i for i, s in enumerate(SAMPLE_PREFERENCE)}).fillna(len(SAMPLE_PREFERENCE))
    )
    ordered = (
        mapping.assign(_rank=rank.to_numpy())
        .sort_values(["objid", "_rank", "sample", "asset_id"], kind="stable")
        .drop(columns="_rank")
    )
    first = ~ordered["objid"].duplicated().to_numpy()
    return ordered[first].reset_index(drop=True), ordered[~first].reset_index(drop=True)


def dedupe_gz2sample(gz2sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One ``gz2sample.csv`` row per OBJID, never chosen by file order.

    Rows repeating an OBJID with the same PETROR90_R and REDSHIFT (empty cells equal) collapse to
    one. An OBJID whose rows disagree has no usable photometry: it is left out of the kept rows and
    returned in the conflicts table (OBJID, detail naming each column's distinct values in file
    order, e.g. ``PETROR90_R = 10.2 | 11; REDSHIFT = 0.05``). Returns (kept rows, conflicts).
    """
    distinct = gz2sample.drop_duplicates(GZ2_SAMPLE_USED)
    conflicting = distinct["OBJID"].duplicated(keep=False).to_numpy()
    details = (
        distinct[conflicting]
        .groupby("OBJID", sort=True)
        .agg(lambda values: " | ".join(str(float(v)) for v in pd.unique(values)))  # exact, unlike :g
    )
    conflicts = pd.DataFrame(
        {
            "OBJID": details.index.to_numpy(dtype=np.int64),
            "detail": pd.Series(
                [
                    "; ".join(f"{column} = {row[column]}" for column in ("PETROR90_R", "REDSHIFT"))
                    for _, row in details.iterrows()
                ],
                dtype=object,
            ),
        }
    )
    return distinct[~conflicting].reset_index(drop=True), conflicts


def drop_summary(dropped: pd.DataFrame, tree_tolerance: float) -> str:
    """'90 tree_violation: <what it means>; 3 missing_image: ...' for a drop table, most frequent first."""
    counts = sorted(dropped["reason"].value_counts().items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(
        f"{n} {reason}: {DROP_REASON_TEXT[reason].format(tolerance=tree_tolerance)}" for reason, n in counts
    )


def mapping_drops(repeated: pd.DataFrame) -> pd.DataFrame:
    """Drop table of the mapping rows :func:`dedupe_mapping` set aside."""
    return pd.DataFrame(
        {
            "id": repeated["objid"].to_numpy(),
            "file": GZ2_MAPPING_CSV,
            "reason": "duplicate_mapping_row",
            "detail": (
                "sample=" + repeated["sample"] + " asset_id=" + repeated["asset_id"].astype(str)
            ).to_numpy(),
        },
        columns=DROP_COLUMNS,
    )


def ids_by_reason(dropped: pd.DataFrame, reasons: tuple[str, ...]) -> dict[str, list[int]]:
    """The dropped IDs of each reason, ascending (every reason listed, [] included)."""
    return {r: sorted(int(i) for i in dropped.loc[dropped["reason"] == r, "id"]) for r in reasons}


