"""A tiny data folder in the real Kaggle + GZ2 + Hoyle layout, for tests of any stage.

:func:`make_data_folder` writes CSVs with pandas and 424 x 424 JPEGs with Pillow, laid out as
:data:`galaxy_xai.data.catalogue.EXPECTED_LAYOUT` says, with the quirks real files have (repeated objids
in the mapping, extra columns, objids that need all 18 digits) but no broken rows: tests add those.
Building one takes well under a second; copy it with ``shutil.copytree`` for per-test changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from galaxy_xai import units
from galaxy_xai.data import catalogue as cat
from galaxy_xai.data import galaxyzoo
from tests.e2e import complete

ROOT = Path(__file__).resolve().parents[1]

REAL_LABEL_ROWS = {
    100008: "0.383147,0.616853,0,0,0.616853,0.038452149,0.578400851,0.418397819,0.198455181,0,0.104752126,"
    "0.512100874,0,0.054453,0.945547,0.201462524,0.181684476,0,0,0.0272265,0,0.0272265,0,0,0,0,0,0,"
    "0.279952491,0.138445328,0,0,0.092885571,0,0,0,0.325512248",
    135453: "0.360342,0.098619,0.541039,0,0.098619,0,0.098619,0,0.098619,0,0,0,0.098619,0.12106,0.87894,"
    "0.256566747,0.103775253,0,0,0,0.12106,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0",
}
"""Two rows of the real training_solutions_rev1.csv (issue 2): they must pass every check."""

FIRST_OBJID = 587722981747982465
"""A real SDSS objid: 18 digits, more than float64 holds exactly."""


@dataclass(frozen=True)
class DataFolder:
    """Where the fixture is and which IDs it holds (all rows are valid)."""

    path: Path
    galaxy_ids: np.ndarray  # labelled Kaggle GalaxyIDs, int64
    objids: np.ndarray  # Hoyle objids, int64
    asset_ids: np.ndarray  # the 'original' GZ2 asset of each objid, int64
    coadd_objids: np.ndarray  # objids that also have a stripe82_coadd_1 row (listed first, no image)


def tree_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 37) vote fractions in CLASS_COLUMNS order that obey the decision tree exactly."""
    index = {c: i for i, c in enumerate(galaxyzoo.CLASS_COLUMNS)}
    values = np.zeros((n, len(galaxyzoo.CLASS_COLUMNS)))
    for q, parent in galaxyzoo.PARENT.items():  # parents come before their children in this order
        reach = 1.0 if parent is None else values[:, index[parent]][:, None]
        share = rng.dirichlet(np.ones(galaxyzoo.N_ANSWERS[q]), size=n)
        values[:, [index[c] for c in galaxyzoo.question_columns(q)]] = reach * share
    return values


def galaxy_image(seed: int, px: int = units.IMAGE_PX) -> np.ndarray:
    """A cheap galaxy-like RGB image (px, px, 3) uint8: an elliptical blob on a dark sky."""
    small = 53  # drawn coarse and upsampled: a fixture image must cost milliseconds, not tens
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:small, :small] - small / 2
    angle = rng.uniform(0, np.pi)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    blob = np.exp(-((u / 5) ** 2 + (v / 2) ** 2))
    rgb = np.clip(np.stack([blob * 220, blob * 190, blob * 160], axis=-1) + 10, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((px, px), Image.Resampling.BILINEAR))


def write_jpeg(path: Path, seed: int, px: int = units.IMAGE_PX) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(galaxy_image(seed, px)).save(path, format="JPEG", quality=80)


def truncate(path: Path) -> None:
    """Cut a file to half its bytes: a JPEG cut short, as an interrupted download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_data_folder(
    root: Path,
    n_labelled: int = 40,
    n_bars: int = 30,
    n_unlabelled: int = 2,
    n_coadd: int = 3,
    truth: bool = True,
    seed: int = 0,
) -> DataFolder:
    """Write a valid data folder under ``root`` (created) and describe it.

    ``n_labelled`` includes the two :data:`REAL_LABEL_ROWS`. With ``truth`` a synthetic-style
    ``truth.csv`` is written too (gz2 rows carry the noise-free bar lengths).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    # Kaggle labels: generated rows plus the two real ones, in the file's column order.
    galaxy_ids = np.concatenate([200000 + 7 * np.arange(n_labelled - 2), list(REAL_LABEL_ROWS)]).astype(
        np.int64
    )
    real = np.array([[float(v) for v in row.split(",")] for row in REAL_LABEL_ROWS.values()])
    labels = pd.DataFrame(np.vstack([tree_labels(n_labelled - 2, rng), real]), columns=galaxyzoo.CLASS_COLUMNS)
    labels.insert(0, "GalaxyID", galaxy_ids)
    labels.to_csv(root / cat.LABELS_CSV, index=False)
    for gid in galaxy_ids:
        write_jpeg(root / cat.TRAIN_IMAGES / f"{gid}.jpg", int(gid))
    for k in range(n_unlabelled):
        write_jpeg(root / cat.TEST_IMAGES / f"{900000 + k}.jpg", k)

    # GZ2: Hoyle objids and a few other galaxies; coadd repeats listed before the original row.
    objids = FIRST_OBJID + 1000 * np.arange(n_bars, dtype=np.int64)
    others = FIRST_OBJID + 1000 * np.arange(n_bars, n_bars + 5, dtype=np.int64) + 1
    asset_ids = 10_000 + np.arange(n_bars, dtype=np.int64)
    coadd = objids[:n_coadd]
    mapping = pd.concat(
        [
            pd.DataFrame(
                {"objid": coadd, "sample": "stripe82_coadd_1", "asset_id": 50_000 + np.arange(n_coadd)}
            ),
            pd.DataFrame({"objid": objids, "sample": "original", "asset_id": asset_ids}),
            pd.DataFrame({"objid": others, "sample": "extra", "asset_id": 20_000 + np.arange(len(others))}),
        ],
        ignore_index=True,
    )
    mapping.to_csv(root / cat.GZ2_MAPPING_CSV, index=False)
    for asset in asset_ids:
        write_jpeg(root / cat.GZ2_IMAGES / f"{asset}.jpg", int(asset))

    all_objids = np.concatenate([objids, others])
    petror90_arcsec = rng.uniform(5, 20, len(all_objids))
    redshift = rng.uniform(0.02, 0.1, len(all_objids))
    pd.DataFrame(
        {  # upper-case columns in a different order than the pipeline reads them, plus extras
            "OBJID": all_objids,
            "RUN": 752,
            "RA": rng.uniform(0, 360, len(all_objids)),
            "DEC": rng.uniform(-10, 60, len(all_objids)),
            "REDSHIFT": redshift,
            "PETROR50_R": petror90_arcsec / 2.5,
            "PETROR90_R": petror90_arcsec,
            "PETROMAG_R": rng.uniform(14, 17, len(all_objids)),
        }
    ).to_csv(root / cat.GZ2_SAMPLE_CSV, index=False)

    true_scaled = rng.uniform(0.3, 0.66, n_bars)
    true_px424 = units.scaled_to_px424(true_scaled)
    true_kpc = units.px424_to_kpc(true_px424, petror90_arcsec[:n_bars], redshift[:n_bars])
    scatter = rng.lognormal(0, 0.17, n_bars)
    pd.DataFrame(
        {
            "objid": objids,
            "ra": rng.uniform(0, 360, n_bars),
            "dec": rng.uniform(-10, 60, n_bars),
            "length_avg": true_kpc * scatter,
            "length_stdev": 0.1 * true_kpc,
            "width_avg": 0.3 * true_kpc,
            "width_stdev": 0.05 * true_kpc,
            "length_scaled": true_scaled * scatter,
            "bar_meas": rng.integers(3, 12, n_bars),
        }
    ).to_csv(root / cat.HOYLE_CSV, index=False)

    if truth:
        n_gal = len(galaxy_ids)
        table = pd.DataFrame(
            {
                "set": ["training"] * n_gal + ["gz2"] * n_bars,
                "id": np.concatenate([galaxy_ids, objids]),
                "kind": "disk",
                "has_bar": np.r_[np.zeros(n_gal, int), np.ones(n_bars, int)],
                "bar_length_px424": np.r_[np.full(n_gal, np.nan), true_px424],
                "bar_length_kpc": np.r_[np.full(n_gal, np.nan), true_kpc],
                "bar_angle_deg": np.r_[np.full(n_gal, np.nan), rng.uniform(0, 180, n_bars)],
                "bar_axis_ratio": np.r_[np.full(n_gal, np.nan), np.full(n_bars, 0.3)],
                "petror90_r": np.r_[np.full(n_gal, 10.0), petror90_arcsec[:n_bars]],
                "redshift": np.r_[np.full(n_gal, 0.05), redshift[:n_bars]],
            }
        )
        # Columns the pipeline does not read get plain defaults, in the contract's order.
        defaults = {
            "has_arms": 0,
            "n_arms": 0,
            "bulge_fraction": 0.2,
            "disk_axis_ratio": 0.8,
            "position_angle_deg": 0.0,
        }
        table.assign(**defaults)[cat.TRUTH_COLUMNS].to_csv(root / cat.TRUTH_CSV, index=False)
    return DataFolder(
        path=root, galaxy_ids=galaxy_ids, objids=objids, asset_ids=asset_ids, coadd_objids=coadd
    )


def params_file(path: Path, change: dict) -> Path:
    """Write the project's params.yaml with ``change`` deep-merged in (a full, valid params file)."""
    path.write_text(yaml.safe_dump(complete(change), sort_keys=False))
    return path
