"""The real data layout: file names, columns, the Galaxy Zoo decision tree, and their readers.

This is the only module that knows how the Kaggle, Galaxy Zoo 2 and Hoyle files are laid out
(see docs/real-data.md); the synthetic sky is written in exactly this layout. It reads and
validates the raw files (labels, GZ2 mapping, gz2sample, Hoyle, truth), checks JPEGs and scans the
optional Kaggle test folder. What the ``prepare`` stage does with the rows lives in
:mod:`galaxy_xai.data.preparation` (joins and the prepared tables), :mod:`galaxy_xai.data.drops` (what is
dropped and why, de-duplication) and :mod:`galaxy_xai.data.splits` (the random splits and control folds).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from galaxy_xai.io import read_csv
from galaxy_xai.units import IMAGE_PX

# --- file layout, relative to ``data.path`` -------------------------------------------------------
LABELS_CSV = "training_solutions_rev1.csv"
TRAIN_IMAGES = "images_training_rev1"
TEST_IMAGES = "images_test_rev1/images"
GZ2_MAPPING_CSV = "gz2_filename_mapping.csv"
GZ2_IMAGES = "images_gz2/images"
GZ2_SAMPLE_CSV = "gz2sample.csv"
HOYLE_CSV = "hoyle_barlengths.csv"
TRUTH_CSV = "truth.csv"  # synthetic sky only

EXPECTED_LAYOUT = f"""\
<data.path>/
  {LABELS_CSV}        GalaxyID,Class1.1,...,Class11.6
  {TRAIN_IMAGES}/<GalaxyID>.jpg
  {TEST_IMAGES}/<GalaxyID>.jpg          (optional)
  {GZ2_MAPPING_CSV}          objid,sample,asset_id
  {GZ2_IMAGES}/<asset_id>.jpg
  {GZ2_SAMPLE_CSV}                   OBJID,...,PETROR90_R,...,REDSHIFT
  {HOYLE_CSV}           objid,ra,dec,length_avg,length_stdev,width_avg,width_stdev,length_scaled,bar_meas"""

GZ2_MAPPING_COLUMNS = ["objid", "sample", "asset_id"]
HOYLE_COLUMNS = [
    "objid",
    "ra",
    "dec",
    "length_avg",
    "length_stdev",
    "width_avg",
    "width_stdev",
    "length_scaled",
    "bar_meas",
]
GZ2_SAMPLE_REQUIRED = ["OBJID", "RA", "DEC", "PETROR50_R", "PETROR90_R", "REDSHIFT"]

# The Galaxy Zoo 2 decision tree (its columns, questions, answers) is galaxyzoo.py's.
from galaxy_xai.data.galaxyzoo import (  # noqa: E402
    CLASS_COLUMNS,
    LABEL_COLUMNS,
    PARENT,
    question_columns,
)


def tree_violation(values: np.ndarray) -> np.ndarray:
    """Largest decision-tree violation of each label row.

    ``values`` has shape (n, 37) in :data:`CLASS_COLUMNS` order. For every question, the answers
    must sum to the fraction of the answer that leads to it (1 for questions 1 and 6). Returns
    shape (n,): the largest absolute deviation over the 11 questions, also counting negative
    fractions or fractions above 1 by how far they are outside [0, 1].
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(CLASS_COLUMNS):
        raise ValueError(f"tree_violation: expected shape (n, {len(CLASS_COLUMNS)}), got {values.shape}")
    index = {c: i for i, c in enumerate(CLASS_COLUMNS)}
    worst = np.maximum(np.clip(-values, 0, None), np.clip(values - 1, 0, None)).max(axis=1)
    for q, parent in PARENT.items():
        cols = [index[c] for c in question_columns(q)]
        total = values[:, cols].sum(axis=1)
        expected = 1.0 if parent is None else values[:, index[parent]]
        worst = np.maximum(worst, np.abs(total - expected))
    return worst


# ==================================================================================================
# Reading and validating the data folder (the raw files of the ``prepare`` stage).
#
# Every reader checks the file and the columns it needs, ignores extra columns, accepts any column
# order and parses IDs exactly (as text -> int64: an 18-digit SDSS objid does not survive float64).
# A file or value that cannot be used raises DataError naming the file, line and column. Galaxies
# that cannot be used (no PETROR90_R, no image, a corrupt JPEG, labels that break the tree) are not
# errors: the ``prepare`` stage drops them (:mod:`galaxy_xai.data.drops`).

GZ2_SAMPLE_USED = ["OBJID", "PETROR90_R", "REDSHIFT"]
"""Columns of ``gz2sample.csv`` the pipeline reads (the real file has many more)."""

HOYLE_USED = ["objid", "length_avg", "length_scaled"]
"""Columns of ``hoyle_barlengths.csv`` the pipeline reads."""

IMAGE_REASONS = ("missing_image", "not_a_jpeg", "corrupt_image", "wrong_image_size")
"""Why a JPEG is unusable (:func:`image_problem`); also drop reasons of the prepared tables."""
KAGGLE_SKIP_REASONS = ("not_a_galaxy_id", *IMAGE_REASONS)
"""Why a file of the optional Kaggle test folder is not predicted."""


class DataError(ValueError):
    """A data file, folder, column or value is missing or is not what the real layout holds."""


def layout_error(message: str) -> DataError:
    """A DataError whose ``message`` is followed by the expected layout of ``data.path``."""
    return DataError(f"{message}\nexpected layout of data.path:\n{EXPECTED_LAYOUT}")


def require_path(data_dir: str | os.PathLike, name: str, kind: str = "file") -> Path:
    """``data_dir / name``, checked to be an existing ``kind`` ('file' or 'folder')."""
    path = Path(data_dir) / name
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise layout_error(f"{path}: required {kind} not found")
    return path


def _read_csv(path: Path, columns: list[str], text_columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of a CSV in that order (extra columns ignored); ``text_columns`` read as text."""
    expected = f"a CSV with columns {', '.join(columns[:6])}{', ...' if len(columns) > 6 else ''}"
    try:
        header = [str(c) for c in read_csv(path, expected, nrows=0).columns]
        missing = [c for c in columns if c not in header]
        if missing:
            raise layout_error(
                f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header[:12])}"
                f"{', ...' if len(header) > 12 else ''})"
            )
        frame = read_csv(path, expected, usecols=columns, dtype={c: str for c in text_columns})
    except DataError:
        raise
    except ValueError as err:  # the reader's message names the file and what was expected
        raise DataError(str(err)) from None
    return frame[columns].reset_index(drop=True)


def _row_error(path: Path, row: int, column: str, value: object, expected: str) -> DataError:
    # Line numbers count the header as line 1, so data row i (from 0) is on line i + 2.
    return DataError(
        f"{path}: line {row + 2} (data row {row + 1}): {column} = {value!r}: expected {expected}"
    )


def _parse_ids(values: pd.Series, path: Path, column: str) -> np.ndarray:
    """Text IDs -> int64 (n,), exactly; a value that is not an integer raises DataError naming its row."""
    text = values.astype("string").str.strip()
    ok = text.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(dtype=bool)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise _row_error(path, row, column, values.iloc[row], "an integer")
    try:
        return text.astype("int64").to_numpy()
    except (OverflowError, ValueError):
        big = np.flatnonzero(text.str.lstrip("+-").str.len().to_numpy() > 18)
        row = int(big[0]) if len(big) else 0
        raise _row_error(path, row, column, values.iloc[row], "an integer within the int64 range") from None


def _parse_floats(values: pd.Series, path: Path, column: str, allow_missing: bool) -> np.ndarray:
    """Numbers -> float64 (n,). Text that is not a number raises; empty cells are NaN if allowed."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()).to_numpy(dtype=bool)
    if not allow_missing:
        bad = bad | ~np.isfinite(numbers.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _row_error(
            path, row, column, values.iloc[row], "a number" if allow_missing else "a finite number"
        )
    return numbers.to_numpy(dtype=float)


def read_labels(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``training_solutions_rev1.csv`` -> GalaxyID (int64) and the 37 vote fractions (float64).

    Columns come back in :data:`LABEL_COLUMNS` order whatever the file's order; every fraction must
    be a finite number (an empty or non-numeric cell raises DataError naming the file and line).
    """
    path = require_path(data_dir, LABELS_CSV)
    raw = _read_csv(path, LABEL_COLUMNS, text_columns=["GalaxyID"])
    out = {"GalaxyID": _parse_ids(raw["GalaxyID"], path, "GalaxyID")}
    for column in CLASS_COLUMNS:
        out[column] = _parse_floats(raw[column], path, column, allow_missing=False)
    return pd.DataFrame(out)


def read_mapping(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``gz2_filename_mapping.csv`` -> objid (int64), sample (str), asset_id (int64), all rows."""
    path = require_path(data_dir, GZ2_MAPPING_CSV)
    raw = _read_csv(path, GZ2_MAPPING_COLUMNS, text_columns=GZ2_MAPPING_COLUMNS)
    return pd.DataFrame(
        {
            "objid": _parse_ids(raw["objid"], path, "objid"),
            "sample": raw["sample"].fillna("").astype(str).str.strip().to_numpy(),
            "asset_id": _parse_ids(raw["asset_id"], path, "asset_id"),
        }
    )


def read_gz2sample(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``gz2sample.csv`` -> OBJID (int64), PETROR90_R (arcsec), REDSHIFT; empty cells become NaN."""
    path = require_path(data_dir, GZ2_SAMPLE_CSV)
    raw = _read_csv(path, GZ2_SAMPLE_USED, text_columns=["OBJID"])
    return pd.DataFrame(
        {
            "OBJID": _parse_ids(raw["OBJID"], path, "OBJID"),
            "PETROR90_R": _parse_floats(raw["PETROR90_R"], path, "PETROR90_R", allow_missing=True),
            "REDSHIFT": _parse_floats(raw["REDSHIFT"], path, "REDSHIFT", allow_missing=True),
        }
    )


def read_hoyle(data_dir: str | os.PathLike) -> pd.DataFrame:
    """``hoyle_barlengths.csv`` -> objid (int64), length_avg (h^-1 kpc), length_scaled (units of 2 R90)."""
    path = require_path(data_dir, HOYLE_CSV)
    raw = _read_csv(path, HOYLE_USED, text_columns=["objid"])
    return pd.DataFrame(
        {
            "objid": _parse_ids(raw["objid"], path, "objid"),
            "length_avg": _parse_floats(raw["length_avg"], path, "length_avg", allow_missing=True),
            "length_scaled": _parse_floats(raw["length_scaled"], path, "length_scaled", allow_missing=True),
        }
    )


def count_files(folder: str | os.PathLike, suffix: str = ".jpg") -> int:
    """Number of ``*suffix`` files directly in ``folder`` (0 if it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(suffix))
    except FileNotFoundError:
        return 0


# --- images ---------------------------------------------------------------------------------------


def image_problem(path: str, decode: bool = True, expected_px: int = IMAGE_PX) -> str:
    """Why the JPEG at ``path`` is unusable, as one of :data:`IMAGE_REASONS`, or '' if it is fine.

    Without ``decode`` only existence is checked. With it the whole file is decoded, so a truncated
    file fails here (Pillow refuses truncated data) rather than in the middle of training.
    """
    if not os.path.isfile(path):
        return "missing_image"
    if not decode:
        return ""
    try:
        with Image.open(path) as image:
            image.load()
            fmt, size = image.format, image.size
    except (OSError, SyntaxError, ValueError):
        return "corrupt_image"
    if fmt != "JPEG":
        return "not_a_jpeg"
    if size != (expected_px, expected_px):
        return "wrong_image_size"
    return ""


def check_jpegs(
    paths: list[str],
    decode: bool = True,
    expected_px: int = IMAGE_PX,
    workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """:func:`image_problem` of every path, shape (n,) of str ('' where fine), in input order.

    Decoding runs in a thread pool: Pillow releases the GIL while decoding, so threads use every
    core without the start-up cost of processes.
    """
    if not decode:
        return np.array([image_problem(p, decode=False) for p in paths], dtype=object)
    workers = workers or min(16, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: image_problem(p, True, expected_px), paths)
        problems = list(
            tqdm(results, total=len(paths), desc="decode JPEGs", unit="img", disable=not progress)
        )
    return np.array(problems, dtype=object)


# --- the optional Kaggle test folder --------------------------------------------------------------

_GALAXY_ID_STEM = re.compile(r"[1-9][0-9]{0,17}")  # at most 18 digits: always within int64

KAGGLE_SKIPPED_COLUMNS = ["file", "reason"]


def galaxy_id_from_filename(path: str | os.PathLike) -> int | None:
    """The GalaxyID of an image named ``<GalaxyID>.jpg`` in any folder, or None if the name is not one.

    A GalaxyID is a positive integer written without sign or leading zeros (so two file names never
    name the same galaxy); Kaggle's have 6 digits.
    """
    stem = Path(path).stem
    return int(stem) if _GALAXY_ID_STEM.fullmatch(stem) else None


@dataclass(frozen=True)


class KaggleTestImages:
    """The JPEGs of the optional Kaggle test folder: those to predict, and those skipped with why."""

    folder: Path
    n_files: int
    """``*.jpg`` files found in ``folder``."""
    galaxy_ids: np.ndarray
    """(n,) int64 GalaxyIDs of the usable files, ascending."""
    paths: list[str]
    """(n,) paths of the usable files, aligned with ``galaxy_ids``."""
    skipped: pd.DataFrame
    """One row per skipped file (:data:`KAGGLE_SKIPPED_COLUMNS`; reason one of :data:`KAGGLE_SKIP_REASONS`)."""

    @property
    def counts(self) -> dict:
        """Files found, files predicted (the usable ones) and files skipped per reason (0 included)."""
        return {
            "images": self.n_files,
            "predicted": len(self.paths),
            "skipped": reason_counts(self.skipped, KAGGLE_SKIP_REASONS),
        }


def kaggle_test_images(
    data_dir: str | os.PathLike, decode: bool = True, progress: bool = True
) -> KaggleTestImages | None:
    """Scan ``<data_dir>/images_test_rev1/images/*.jpg``; None if that (optional) folder is absent.

    A file is skipped when its name is not a GalaxyID (:func:`galaxy_id_from_filename`) or, with
    ``decode``, when the whole file does not decode to a 424-px JPEG (:func:`image_problem`), so
    prediction never meets a file it cannot read. Skipped files are listed by file name.
    """
    folder = Path(data_dir) / TEST_IMAGES
    if not folder.is_dir():
        return None
    files = sorted(str(p) for p in folder.glob("*.jpg"))
    ids = [galaxy_id_from_filename(f) for f in files]
    reasons = np.array(["not_a_galaxy_id" if i is None else "" for i in ids], dtype=object)
    named = np.flatnonzero(reasons == "")
    reasons[named] = check_jpegs([files[k] for k in named], decode=decode, progress=progress)
    usable = np.flatnonzero(reasons == "")
    usable = usable[np.argsort([ids[k] for k in usable], kind="stable")]
    bad = np.flatnonzero(reasons != "")
    return KaggleTestImages(
        folder=folder,
        n_files=len(files),
        galaxy_ids=np.array([ids[k] for k in usable], dtype=np.int64),
        paths=[files[k] for k in usable],
        skipped=pd.DataFrame(
            {"file": [files[k] for k in bad], "reason": reasons[bad]}, columns=KAGGLE_SKIPPED_COLUMNS
        ),
    )


def reason_counts(dropped: pd.DataFrame, reasons: tuple[str, ...]) -> dict[str, int]:
    """Rows dropped per reason, every known reason listed (0 included) so metrics diffs line up."""
    counts = dropped["reason"].value_counts()
    return {r: int(counts.get(r, 0)) for r in reasons}



TRUTH_COLUMNS = [
    "set",
    "id",
    "kind",
    "has_bar",
    "bar_length_px424",
    "bar_length_kpc",
    "bar_angle_deg",
    "bar_axis_ratio",
    "has_arms",
    "n_arms",
    "bulge_fraction",
    "disk_axis_ratio",
    "position_angle_deg",
    "petror90_r",
    "redshift",
]
"""truth.csv columns, written by :mod:`galaxy_xai.data.synthetic` (whose docstring defines each one)."""


def read_truth(data_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The synthetic sky's ``truth.csv`` (one row per galaxy of every set), or None if absent (real data).

    ``id`` is int64 (GalaxyID or objid), ``set`` / ``kind`` strings, the rest numbers (bar_* NaN
    without a bar). Raises DataError naming the file if a column is missing.
    """
    path = Path(data_dir) / TRUTH_CSV
    if not path.is_file():
        return None
    truth = read_csv(path, "the synthetic sky's truth table", dtype={"set": str, "id": np.int64, "kind": str})
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(TRUTH_COLUMNS)}"
        )
    return truth
