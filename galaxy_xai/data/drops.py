"""What the ``prepare`` stage leaves out of the prepared tables, and why.

Galaxies that cannot be used (a repeated ID, labels that break the decision tree, no mapping, no
photometry, no usable JPEG, ...) are not errors: every drop is a row (id, file, reason, detail) of
a drop table (:data:`DROP_COLUMNS`), with the reason one of :data:`MORPHOLOGY_DROP_REASONS` or
:data:`BARS_DROP_REASONS` (explained by :data:`DROP_REASON_TEXT`). Repeated rows are resolved here
too, never by file order: the GZ2 mapping's by sample preference; in the labels, the Hoyle catalogue
and ``gz2sample.csv`` an exact repeat is kept once and an ID whose rows disagree is dropped, with
every value it was given (:func:`dedupe_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from galaxy_xai.data.catalogue import (
    CLASS_COLUMNS,
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
    "duplicate_id": f"GalaxyID repeated in {LABELS_CSV} with different vote fractions (exact repeats are kept once)",
    "tree_violation": "rows breaking the Galaxy Zoo decision tree by more than prepare.tree_tolerance = {tolerance:g}",
    "missing_image": "no JPEG at the expected path",
    "not_a_jpeg": "the image file is not a JPEG",
    "corrupt_image": "the JPEG does not decode (e.g. truncated)",
    "wrong_image_size": f"the JPEG is not {IMAGE_PX} x {IMAGE_PX} px",
    "duplicate_objid": f"objid repeated in {HOYLE_CSV} with different lengths (exact repeats are kept once)",
    "bad_length_scaled": "length_scaled empty, not finite or not positive",
    "implausible_length": f"length_scaled puts the bar beyond the image the models see (length_px424 > images.crop_px, "
    f"or > {IMAGE_PX} without a crop)",
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


def dedupe_rows(
    frame: pd.DataFrame, id_column: str, columns: Sequence[str], only_differing: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per ``id_column`` value of ``frame``, never chosen by file order.

    Rows repeating an ID with the same ``columns`` (empty cells equal) are kept once (the first).
    An ID whose rows disagree cannot be resolved: it is left out of the kept rows and returned in
    the conflicts table (``id_column``, ``detail`` naming each column's distinct values in file
    order, e.g. ``PETROR90_R = 10.2 | 11; REDSHIFT = 0.05``; with ``only_differing`` only the
    columns that disagree). Returns (kept rows in file order, conflicts sorted by ID).
    """
    distinct = frame.drop_duplicates([id_column, *columns])
    conflicting = distinct[id_column].duplicated(keep=False).to_numpy()
    details = (
        distinct[conflicting][[id_column, *columns]]
        .groupby(id_column, sort=True)
        .agg(lambda values: " | ".join(str(float(v)) for v in pd.unique(values)))  # exact, unlike :g
    )
    conflicts = pd.DataFrame(
        {
            id_column: details.index.to_numpy(dtype=np.int64),
            "detail": pd.Series(
                [
                    "; ".join(
                        f"{column} = {row[column]}" for column in columns if not only_differing or " | " in row[column]
                    )
                    for _, row in details.iterrows()
                ],
                dtype=object,
            ),
        }
    )
    return distinct[~conflicting].reset_index(drop=True), conflicts


KEYED_FILES = {
    LABELS_CSV: ("GalaxyID", list(CLASS_COLUMNS), "conflicting_galaxy_ids"),
    HOYLE_CSV: ("objid", ["length_avg", "length_scaled"], "conflicting_objids"),
    GZ2_SAMPLE_CSV: ("OBJID", [c for c in GZ2_SAMPLE_USED if c != "OBJID"], "conflicting_objids"),
}
"""The raw files with one row per ID: (the ID column, the columns a repeated row must agree on,
the name of the count of IDs whose rows disagree in ``metrics/data.json``)."""


def dedupe_file(frame: pd.DataFrame, file: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`dedupe_rows` of the rows of one of :data:`KEYED_FILES` (as its reader returns them);
    the details of a label row name only the vote fractions that disagree (there are 37)."""
    id_column, columns, _ = KEYED_FILES[file]
    return dedupe_rows(frame, id_column, columns, only_differing=len(columns) > 2)


def repeat_counts(frame: pd.DataFrame, file: str) -> dict[str, int]:
    """Rows of one of :data:`KEYED_FILES` that repeat an earlier ID, and IDs whose rows disagree."""
    id_column, _, conflicting = KEYED_FILES[file]
    return {
        "duplicate_rows": int(frame[id_column].duplicated().sum()),
        conflicting: len(dedupe_file(frame, file)[1]),
    }


def dedupe_gz2sample(gz2sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One ``gz2sample.csv`` row per OBJID (:func:`dedupe_rows`): an OBJID whose rows disagree on
    PETROR90_R or REDSHIFT has no usable photometry. Returns (kept rows, conflicts)."""
    return dedupe_file(gz2sample, GZ2_SAMPLE_CSV)


def conflict_drops(conflicts: pd.DataFrame, id_column: str, reason: str, file: str) -> pd.DataFrame:
    """Drop table of the IDs :func:`dedupe_rows` found in conflict: one row each, the values in its detail."""
    return pd.DataFrame(
        {"id": conflicts[id_column].to_numpy(), "file": file, "reason": reason, "detail": conflicts["detail"].to_numpy()},
        columns=DROP_COLUMNS,
    )


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


