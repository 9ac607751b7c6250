"""The whole synthetic sky: catalogue IDs, one galaxy start to finish, the tables, :func:`write_sky`.

One call, :func:`write_sky`, writes a folder that :mod:`galaxy_xai.data.catalogue` reads exactly like the
real data (file names, columns, ID types, 424 x 424 RGB JPEGs), plus ``truth.csv`` with what real
data cannot give: every galaxy's true morphology and, for barred galaxies, the true bar length.

Sets: ``training`` (labelled, ``training_solutions_rev1.csv`` + ``images_training_rev1/``), ``test``
(unlabelled Kaggle-test-style images) and ``gz2`` (the Hoyle-style bar catalogue: GZ2 images,
``gz2_filename_mapping.csv``, ``gz2sample.csv``, ``hoyle_barlengths.csv``; every galaxy barred).
Each galaxy is drawn by :mod:`~galaxy_xai.data.synthetic.population` (whose docstring gives the length,
pixel and angle conventions), voted on by :mod:`~galaxy_xai.data.synthetic.volunteers` and rendered by
:mod:`~galaxy_xai.data.synthetic.render`, in worker processes (:func:`make_galaxy`).

truth.csv (one row per galaxy of every set)
------------------------------------------
``set``            'training' | 'test' | 'gz2'
``id``             GalaxyID (training, test) or SDSS objid (gz2)
``kind``           'smooth' (elliptical), 'disk' (not edge-on) or 'edgeon'
``has_bar``        1 if the galaxy has a bar (all gz2 galaxies do)
``bar_length_px424``  true full bar length in 424-px image pixels (NaN without a bar)
``bar_length_kpc``    the same in h^-1 kpc (``units.px424_to_kpc`` with petror90_r and redshift)
``bar_angle_deg``  position angle of the bar's major axis (convention: the population docstring)
``bar_axis_ratio`` minor / major axis of the bar's isophotes in the image
``has_arms``       1 if logarithmic spiral arms are drawn; ``n_arms`` their number (0 without)
``bulge_fraction`` bulge flux / total flux in r (1 for smooth galaxies)
``disk_axis_ratio``  apparent minor / major axis ratio of the main body (the inclined, thick disk;
                   the isophotes of a smooth galaxy)
``position_angle_deg``  position angle of the main body's major axis
``petror90_r``     Petrosian R90 in arcsec (= PETROR90_R of gz2sample.csv for gz2 galaxies)
``redshift``       redshift (= REDSHIFT of gz2sample.csv)

The noise-free truth is also what the catalogues are drawn from: ``hoyle_barlengths.csv`` holds the
true lengths times one 17 % log-normal "volunteer" factor per galaxy (Hoyle et al. 2011's
reproducibility), and the vote fractions come from simulated volunteers
(:func:`~galaxy_xai.data.synthetic.volunteers.simulate_votes`).

Determinism: galaxy ``i`` of set ``s`` is drawn from ``SeedSequence([seed, s, i])`` alone (its sky
noise from ``SeedSequence([seed, s, i, 1 + epoch])``), so the output bytes do not depend on the
number of worker processes, and the first galaxies do not change when a set is made bigger.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from galaxy_xai import config, units
from galaxy_xai.data import catalogue, galaxyzoo
from galaxy_xai.data.synthetic.population import (
    ARM_COLOUR,
    BAR_COLOUR,
    BULGE_COLOUR,
    DISK_COLOUR,
    SETS,
    Galaxy,
    draw_galaxy,
)
from galaxy_xai.data.synthetic.render import COADD_NOISE_FACTOR, compose_rgb, encode_jpeg, render_bands
from galaxy_xai.data.synthetic.volunteers import (
    answer_probabilities,
    format_micro,
    morphology_features,
    round_tree,
    simulate_votes,
    volunteer_bar_measurements,
)
from galaxy_xai.io import write_bytes, write_csv

IDS_STREAM = (len(SETS), 1)
"""SeedSequence suffix of the catalogue-level draws (IDs, samples, coordinates); no galaxy uses it."""

GZ2_SAMPLE_COLUMNS = [
    "OBJID",
    "RUN",
    "RERUN",
    "CAMCOL",
    "FIELD",
    "OBJ",
    "RA",
    "DEC",
    "PETROR50_R",
    "PETROR90_R",
    "PETROMAG_G",
    "PETROMAG_R",
    "PETROMAG_I",
    "REDSHIFT",
]


# --- catalogue-level draws: IDs, samples, coordinates ----------------------------------------------------
def sdss_objid(run, rerun, camcol, field, obj) -> np.ndarray:
    """SDSS DR7 objID bit layout (skyVersion 1, as in the real GZ2 objids' top bits)."""
    run, rerun, camcol, field, obj = (np.asarray(v, dtype=np.int64) for v in (run, rerun, camcol, field, obj))
    return (np.int64(1) << 59) | (rerun << 48) | (run << 32) | (camcol << 29) | (field << 16) | obj


def check_sizes(n_labelled: int, n_unlabelled: int, n_bars: int, n_coadd_repeats: int) -> None:
    """Raise ValueError naming the parameter if the requested sky cannot be made."""
    if n_labelled < 1 or n_unlabelled < 0 or n_bars < 1 or n_coadd_repeats < 0:
        raise ValueError(
            "synthetic: expected n_labelled >= 1, n_unlabelled >= 0, n_bars >= 1, n_coadd_repeats >= 0; "
            f"got {n_labelled}, {n_unlabelled}, {n_bars}, {n_coadd_repeats}"
        )
    config.check_synthetic_sizes(n_labelled, n_unlabelled, n_bars, n_coadd_repeats)  # a ConfigError (ValueError)


def draw_catalogue_ids(
    seed: int, n_labelled: int, n_unlabelled: int, n_bars: int, n_coadd_repeats: int
) -> dict:
    """GalaxyIDs (sorted, disjoint train / test), gz2 objids, asset_ids, samples, sky positions."""
    check_sizes(n_labelled, n_unlabelled, n_bars, n_coadd_repeats)
    rng = np.random.default_rng(np.random.SeedSequence([seed, *IDS_STREAM]))
    galaxy_ids = rng.choice(900_000, size=n_labelled + n_unlabelled, replace=False) + 100_000
    # SDSS imaging fields; a repeated (run, camcol, field, obj) is redrawn so objids are unique.
    run = rng.integers(94, 8163, n_bars)
    camcol = rng.integers(1, 7, n_bars)
    field = rng.integers(11, 800, n_bars)
    obj = rng.integers(1, 2048, n_bars)
    objid = sdss_objid(run, 40, camcol, field, obj)  # DR7 objids carry rerun 40 in their bits
    while len(np.unique(objid)) < n_bars:
        repeated = np.nonzero(pd.Series(objid).duplicated().to_numpy())[0]
        obj[repeated] = rng.integers(2048, 65536, len(repeated))
        objid = sdss_objid(run, 40, camcol, field, obj)
    coadd = np.sort(rng.choice(n_bars, n_coadd_repeats, replace=False))
    asset_ids = rng.choice(400_000 + 3 * n_bars, n_bars + 2 * n_coadd_repeats, replace=False) + 1
    sample = np.where(rng.random(n_bars) < 0.12, "extra", "original")
    # Legacy survey north galactic cap; Stripe 82 (dec within 1.25 deg of the equator) for coadds.
    ra = rng.uniform(110, 260, n_bars)
    dec = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(-5)), math.sin(math.radians(68)), n_bars)))
    ra[coadd] = rng.uniform(-50, 59, n_coadd_repeats) % 360
    dec[coadd] = rng.uniform(-1.25, 1.25, n_coadd_repeats)
    return {
        "training": np.sort(galaxy_ids[:n_labelled]),
        "test": np.sort(galaxy_ids[n_labelled:]),
        "objid": objid,
        "run": run,
        "camcol": camcol,
        "field": field,
        "obj": obj,
        "asset_id": asset_ids[:n_bars],
        "coadd_index": coadd,
        "coadd_asset_id": asset_ids[n_bars:].reshape(2, n_coadd_repeats),
        "sample": sample,
        "ra": ra,
        "dec": dec,
    }


# --- one galaxy, start to finish (runs in the worker processes) -------------------------------------------
@dataclass(frozen=True)
class Task:
    seed: int
    set_index: int
    galaxy_index: int
    epochs: int  # images to render: 1, or 3 for a Stripe 82 galaxy with two coadds
    jpeg_quality: int


def _noise_seed(task: Task, epoch: int) -> int:
    state = np.random.SeedSequence([task.seed, task.set_index, task.galaxy_index, 1 + epoch]).generate_state(
        2
    )
    return int(state[0]) << 32 | int(state[1])


def make_galaxy(task: Task) -> dict:
    """Draw, vote on and render one galaxy: its Galaxy, votes (37 millionths), Hoyle draws, JPEGs."""
    rng = np.random.default_rng(np.random.SeedSequence([task.seed, task.set_index, task.galaxy_index]))
    set_name = SETS[task.set_index]
    galaxy = draw_galaxy(rng, set_name)
    features = morphology_features([galaxy])
    votes = round_tree(simulate_votes(answer_probabilities(features, rng), rng, 30 + int(rng.poisson(14))))[0]
    measured = None
    if galaxy.has_bar:
        measured = {
            k: v[0]
            for k, v in volunteer_bar_measurements(
                [features["bar_length_scaled"][0]], [galaxy.bar_axis_ratio], rng
            ).items()
        }
    jpegs = []
    for epoch in range(task.epochs):
        bands = render_bands(
            galaxy, _noise_seed(task, epoch), noise_factor=1.0 if epoch == 0 else COADD_NOISE_FACTOR
        )
        jpegs.append(encode_jpeg(compose_rgb(bands), task.jpeg_quality))
    return {"galaxy": galaxy, "votes": votes, "measured": measured, "jpegs": jpegs}


def _map(tasks: list[Task], workers: int, desc: str):
    """Yield make_galaxy(task) in order, in ``workers`` processes, with a progress bar."""
    bar = tqdm(total=len(tasks), desc=desc, unit="gal", mininterval=2.0)
    if workers == 1 or len(tasks) < 2:
        for task in tasks:
            yield make_galaxy(task)
            bar.update()
    else:
        context = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        )
        with context.Pool(min(workers, len(tasks))) as pool:
            for record in pool.imap(
                make_galaxy, tasks, chunksize=max(1, min(8, len(tasks) // (4 * workers)))
            ):
                yield record
                bar.update()
    bar.close()


# --- tables ---------------------------------------------------------------------------------------------
def truth_rows(set_name: str, ids, galaxies: list[Galaxy]) -> pd.DataFrame:
    """truth.csv rows (see the module docstring) for one set."""
    g = galaxies
    length_px = np.array([x.bar_length_px if x.has_bar else np.nan for x in g])
    r90 = np.array([x.petror90_arcsec for x in g])
    z = np.array([x.redshift for x in g])
    return pd.DataFrame(
        {
            "set": set_name,
            "id": np.asarray(ids, dtype=np.int64),
            "kind": [x.kind for x in g],
            "has_bar": [int(x.has_bar) for x in g],
            "bar_length_px424": length_px,
            "bar_length_kpc": units.px424_to_kpc(length_px, r90, z),
            "bar_angle_deg": [x.bar_angle_deg if x.has_bar else np.nan for x in g],
            "bar_axis_ratio": [x.bar_axis_ratio if x.has_bar else np.nan for x in g],
            "has_arms": [int(x.has_arms) for x in g],
            "n_arms": [x.n_arms if x.has_arms else 0 for x in g],
            "bulge_fraction": [x.bulge_fraction for x in g],
            "disk_axis_ratio": [x.disk_axis_ratio for x in g],
            "position_angle_deg": [x.position_angle_deg for x in g],
            "petror90_r": r90,
            "redshift": z,
        },
        columns=catalogue.TRUTH_COLUMNS,
    )


def labels_table(ids, votes: np.ndarray) -> pd.DataFrame:
    """training_solutions_rev1.csv: GalaxyID + the 37 fractions written as in the real file."""
    text = format_micro(votes)
    frame = pd.DataFrame(text, columns=galaxyzoo.CLASS_COLUMNS)
    frame.insert(0, "GalaxyID", np.asarray(ids, dtype=np.int64))
    return frame


def gz2_tables(ids: dict, galaxies: list[Galaxy], measured: list[dict]) -> dict[str, pd.DataFrame]:
    """gz2_filename_mapping.csv, gz2sample.csv and hoyle_barlengths.csv for the bar catalogue."""
    coadd = ids["coadd_index"]
    mapping = pd.DataFrame(
        {
            "objid": np.concatenate([ids["objid"], ids["objid"][coadd], ids["objid"][coadd]]),
            "sample": np.concatenate(
                [
                    ids["sample"],
                    np.full(len(coadd), "stripe82_coadd_1"),
                    np.full(len(coadd), "stripe82_coadd_2"),
                ]
            ),
            "asset_id": np.concatenate([ids["asset_id"], *ids["coadd_asset_id"]]),
        },
        columns=catalogue.GZ2_MAPPING_COLUMNS,
    ).sort_values("asset_id", kind="stable")
    r90 = np.array([g.petror90_arcsec for g in galaxies])
    z = np.array([g.redshift for g in galaxies])
    colour = np.array(
        [
            g.bulge_fraction * BULGE_COLOUR
            + g.disk_fraction * DISK_COLOUR
            + g.bar_fraction * BAR_COLOUR
            + g.arm_fraction * ARM_COLOUR
            for g in galaxies
        ]
    )
    mag_r = np.array([g.petromag_r for g in galaxies])
    sample = pd.DataFrame(
        {
            "OBJID": ids["objid"],
            "RUN": ids["run"],
            "RERUN": 301,
            "CAMCOL": ids["camcol"],
            "FIELD": ids["field"],
            "OBJ": ids["obj"],
            "RA": ids["ra"],
            "DEC": ids["dec"],
            "PETROR50_R": [g.petror50_arcsec for g in galaxies],
            "PETROR90_R": r90,
            "PETROMAG_G": mag_r - 2.5 * np.log10(colour[:, 0]),
            "PETROMAG_R": mag_r,
            "PETROMAG_I": mag_r - 2.5 * np.log10(colour[:, 2]),
            "REDSHIFT": z,
        },
        columns=GZ2_SAMPLE_COLUMNS,
    )
    m = {k: np.array([row[k] for row in measured]) for k in measured[0]}

    def kpc(scaled):
        return units.px424_to_kpc(units.scaled_to_px424(scaled), r90, z)

    hoyle = pd.DataFrame(
        {
            "objid": ids["objid"],
            "ra": ids["ra"],
            "dec": ids["dec"],
            "length_avg": kpc(m["length_scaled"]),
            "length_stdev": kpc(m["length_stdev_scaled"]),
            "width_avg": kpc(m["width_scaled"]),
            "width_stdev": kpc(m["width_stdev_scaled"]),
            "length_scaled": m["length_scaled"],
            "bar_meas": m["bar_meas"].astype(np.int64),
        },
        columns=catalogue.HOYLE_COLUMNS,
    )
    return {catalogue.GZ2_MAPPING_CSV: mapping, catalogue.GZ2_SAMPLE_CSV: sample, catalogue.HOYLE_CSV: hoyle}


# --- the whole sky ----------------------------------------------------------------------------------------
def write_sky(
    out: str | os.PathLike,
    seed: int,
    n_labelled: int,
    n_unlabelled: int,
    n_bars: int,
    n_coadd_repeats: int,
    workers: int = 1,
    jpeg_quality: int = 90,
    log: logging.Logger | None = None,
) -> dict:
    """Write the synthetic sky into ``out`` (replaced atomically: built in a sibling, then renamed).

    Returns counts and timings. Same arguments -> the same bytes, whatever ``workers``.
    """
    log = log or logging.getLogger(__name__)
    if workers < 1:
        raise ValueError(f"synthetic.workers = {workers}: expected >= 1")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"synthetic.jpeg_quality = {jpeg_quality}: expected 1 - 100")
    started = time.perf_counter()
    ids = draw_catalogue_ids(seed, n_labelled, n_unlabelled, n_bars, n_coadd_repeats)
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        folders = {
            "training": catalogue.TRAIN_IMAGES,
            "test": catalogue.TEST_IMAGES,
            "gz2": catalogue.GZ2_IMAGES,
        }
        truth, counts = [], {}
        for set_index, set_name in enumerate(SETS):
            n = {"training": n_labelled, "test": n_unlabelled, "gz2": n_bars}[set_name]
            coadd = set(ids["coadd_index"].tolist()) if set_name == "gz2" else set()
            tasks = [Task(seed, set_index, i, 3 if i in coadd else 1, jpeg_quality) for i in range(n)]
            log.info("rendering %d %s galaxies with %d worker(s)", n, set_name, workers)
            folder = tmp / folders[set_name]
            folder.mkdir(parents=True, exist_ok=True)
            names = ids[set_name] if set_name != "gz2" else ids["asset_id"]
            coadd_names = (
                dict(zip(ids["coadd_index"].tolist(), ids["coadd_asset_id"].T.tolist(), strict=True))
                if coadd
                else {}
            )
            galaxies, votes, measured = [], [], []
            for i, record in enumerate(_map(tasks, workers, set_name)):
                galaxies.append(record["galaxy"])
                votes.append(record["votes"])
                measured.append(record["measured"])
                for name, data in zip([names[i], *coadd_names.get(i, [])], record["jpegs"], strict=True):
                    write_bytes(folder / f"{int(name)}.jpg", data)
            counts[set_name] = n
            truth.append(truth_rows(set_name, ids[set_name] if set_name != "gz2" else ids["objid"], galaxies))
            if set_name == "training":
                log.info("writing %s", catalogue.LABELS_CSV)
                write_csv(tmp / catalogue.LABELS_CSV, labels_table(ids["training"], np.array(votes)))
            if set_name == "gz2":
                for name, frame in gz2_tables(ids, galaxies, measured).items():
                    log.info("writing %s (%d rows)", name, len(frame))
                    write_csv(tmp / name, frame, float_format="%.8g")
        log.info("writing %s", catalogue.TRUTH_CSV)
        write_csv(tmp / catalogue.TRUTH_CSV, pd.concat(truth, ignore_index=True), float_format="%.8g")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    n_images = n_labelled + n_unlabelled + n_bars + 2 * n_coadd_repeats
    log.info(
        "wrote %s: %d galaxies, %d images in %.1f s (%.1f galaxies/s)",
        out,
        sum(counts.values()),
        n_images,
        seconds,
        sum(counts.values()) / seconds,
    )
    return {"galaxies": counts, "images": n_images, "seconds": seconds}


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` onto ``target``, removing the old ``target`` only once ``new`` is in place."""
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old)
    else:
        os.replace(new, target)
