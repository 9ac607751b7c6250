"""The embedded synthetic Galaxy Zoo sky: GalSim galaxies written in the real Kaggle / GZ2 / Hoyle layout.

One call, :func:`write_sky`, writes a folder that :mod:`galaxy_xai.catalogue` reads exactly like the
real data (file names, columns, ID types, 424 x 424 RGB JPEGs), plus ``truth.csv`` with what real
data cannot give: every galaxy's true morphology and, for barred galaxies, the true bar length.

Sets: ``training`` (labelled, ``training_solutions_rev1.csv`` + ``images_training_rev1/``), ``test``
(unlabelled Kaggle-test-style images) and ``gz2`` (the Hoyle-style bar catalogue: GZ2 images,
``gz2_filename_mapping.csv``, ``gz2sample.csv``, ``hoyle_barlengths.csv``; every galaxy barred).

Lengths, sizes and pixels (all conversions live in :mod:`galaxy_xai.units`)
-----------------------------------------------------------------------------
* Each image is 424 x 424 px at ``0.02 * PETROR90_R`` arcsec per pixel, as GZ2 cutouts are, so the
  galaxy's Petrosian R90 is ``units.R90_PX = 50`` px. The galaxy is built so that this holds: the
  SDSS Petrosian R90 (eta = 0.2, 2 Petrosian radii) of its axisymmetric bulge + disk light is
  computed exactly (:func:`petrosian_radii`) and the disk scale length set to make it 50 px.
  ``PETROR50_R`` comes from the same calculation. The bar and arms move R90 by a few per cent.
* The galaxy is centred on array pixel (211.5, 211.5) (0-based row, column): the image centre.
* ``length_scaled`` is the bar's full length in units of the Petrosian diameter ``2 * PETROR90_R``,
  hence ``length_px424 = units.scaled_to_px424(length_scaled) = 100 * length_scaled`` for every
  galaxy, and ``length_kpc = units.px424_to_kpc(length_px424, PETROR90_R, REDSHIFT)`` (h^-1 kpc,
  flat LambdaCDM, H0 = 100 h km/s/Mpc). ``PETROR90_R`` (arcsec) follows from a physical R90 in
  h^-1 kpc and the redshift, so the catalogue's ``length_avg / length_scaled = 2 R90`` in h^-1 kpc
  has the real catalogue's distribution (median 18.8, inter-quartile range 14.4 - 23.8).
* The bar's *full length* is the full width at half maximum of its own (unconvolved) surface
  brightness along its major axis: the bar is an elliptical Sersic profile of index 0.3 - 0.6 (flat
  with soft ends, like observed bars), ``I(r) = I0 exp(-(r / a0)^(1/n))``, whose surface brightness
  falls to half its central value at ``a0 (ln 2)^n`` = half the full length. The bar lies in the
  disk plane (random azimuth, intrinsic axis ratio ~0.25) and is seen projected
  (:func:`project_disk_ellipse`); its *projected* full length is drawn from the catalogue's
  distribution and is the true length in truth.csv: what a measurement on the image can recover.
* Angles (``position_angle_deg``, ``bar_angle_deg``) are astronomical position angles in [0, 180):
  degrees counter-clockwise from "up" in the displayed JPEG (north up, east left as in SDSS
  cutouts). A major axis at angle ``phi`` points along (d_row, d_col) = (-cos phi, -sin phi).

truth.csv (one row per galaxy of every set)
------------------------------------------
``set``            'training' | 'test' | 'gz2'
``id``             GalaxyID (training, test) or SDSS objid (gz2)
``kind``           'smooth' (elliptical), 'disk' (not edge-on) or 'edgeon'
``has_bar``        1 if the galaxy has a bar (all gz2 galaxies do)
``bar_length_px424``  true full bar length in 424-px image pixels (NaN without a bar)
``bar_length_kpc``    the same in h^-1 kpc (``units.px424_to_kpc`` with petror90_r and redshift)
``bar_angle_deg``  position angle of the bar's major axis (convention above)
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
reproducibility), and the vote fractions come from simulated volunteers (:func:`simulate_votes`).

Determinism: galaxy ``i`` of set ``s`` is drawn from ``SeedSequence([seed, s, i])`` alone (its sky
noise from ``SeedSequence([seed, s, i, 1 + epoch])``), so the output bytes do not depend on the
number of worker processes, and the first galaxies do not change when a set is made bigger.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import math
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
import pandas as pd
from PIL import Image
from scipy import fft as sp_fft
from scipy import ndimage, optimize, special
from tqdm import tqdm

from galaxy_xai import catalogue, config, units
from galaxy_xai.io import write_bytes, write_csv

SETS = ("training", "test", "gz2")
KINDS = ("smooth", "disk", "edgeon")
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

# --- population: where each number comes from ------------------------------------------------------
# Labelled / unlabelled morphology mix (roughly Galaxy Zoo 2's): smooth, disk (not edge-on), edge-on.
KIND_MIX = {"smooth": 0.35, "disk": 0.55, "edgeon": 0.10}
BAR_PROBABILITY = 0.40  # of disks; every gz2 galaxy is barred
ARM_PROBABILITY = 0.60  # of disks
ARM_NUMBER_PROBABILITY = {1: 0.05, 2: 0.60, 3: 0.20, 4: 0.15}

# Bar lengths, fitted to the real Hoyle et al. (2011) catalogue (3150 bars,
# ../shared/data/hoyle_barlengths.csv; not read at run time): length_scaled has quantiles
# 10/50/90 % = 0.301 / 0.452 / 0.661, a log-normal of median 0.452 and sigma
# ln(0.661 / 0.301) / (2 * 1.2816) = 0.307. That sigma includes the catalogue's 17 % volunteer
# scatter, which hoyle_barlengths.csv gets back, so the true lengths have sqrt(0.307^2 - 0.17^2).
BAR_LENGTH_SCALED_MEDIAN = 0.452
VOLUNTEER_LOG_SIGMA = 0.17
BAR_LENGTH_LOG_SIGMA = math.sqrt(0.307**2 - VOLUNTEER_LOG_SIGMA**2)
BAR_LENGTH_SCALED_RANGE = (0.12, 1.1)
# Real width_avg / length_avg: median 0.236, inter-quartile 0.20 - 0.28.
BAR_AXIS_RATIO_MEDIAN, BAR_AXIS_RATIO_LOG_SIGMA, BAR_AXIS_RATIO_RANGE = 0.25, 0.22, (0.15, 0.45)
BAR_SERSIC_N = (0.3, 0.4, 0.5, 0.6)
BAR_FRACTION_RANGE = {"training": (0.06, 0.30), "test": (0.06, 0.30), "gz2": (0.15, 0.35)}
# Real bar_meas (number of volunteers who measured the bar) counts for 3, 4, ..., 11.
BAR_MEAS_COUNTS = np.array([989, 1023, 916, 195, 5, 11, 6, 4, 1])
# Per-volunteer scatter reproducing the real length_stdev / length_avg (median 0.15) and
# width_stdev / width_avg (median 0.37) for 3 - 5 volunteers.
VOLUNTEER_LENGTH_LOG_SIGMA, VOLUNTEER_WIDTH_LOG_SIGMA = 0.16, 0.42

# Sizes and distances. Real catalogue: length_avg / length_scaled = 2 R90 (h^-1 kpc): median 18.8,
# inter-quartile 14.4 - 23.8, i.e. R90 log-normal with median 9.4 h^-1 kpc and sigma 0.37; redshifts
# 0.01 - 0.06 (volume-limited Hoyle sample). Labelled galaxies reach a little further.
R90_KPC_MEDIAN, R90_KPC_LOG_SIGMA, R90_KPC_RANGE = 9.4, 0.37, (2.5, 40.0)
REDSHIFT_RANGE = {"training": (0.01, 0.08), "test": (0.01, 0.08), "gz2": (0.01, 0.06)}
# Absolute magnitude M_r - 5 log10 h grows with size (roughly constant mean surface brightness);
# Galaxy Zoo 2's main sample stops at r = 17.77.
ABS_MAG_R_AT_MEDIAN, ABS_MAG_R_PER_DEX_SIZE, ABS_MAG_R_SCATTER = -20.4, -4.0, 0.5
PETROMAG_R_RANGE = (10.0, 17.77)
SEEING_FWHM_MEDIAN_ARCSEC, SEEING_LOG_SIGMA, SEEING_RANGE_ARCSEC = 1.4, 0.15, (0.9, 2.2)
MOFFAT_BETA = 3.0

# --- photometry: g, r, i -----------------------------------------------------------------------------
# Flux ratios (g, r, i) / r of each component, from typical SDSS colours: old bulges and bars
# (g - r ~ 0.75, r - i ~ 0.37), disks (0.4, 0.2), star-forming arms (0.05, 0.0).
BULGE_COLOUR = np.array([0.50, 1.0, 1.40])
BAR_COLOUR = np.array([0.55, 1.0, 1.35])
DISK_COLOUR = np.array([0.70, 1.0, 1.20])
ARM_COLOUR = np.array([0.95, 1.0, 1.00])
# SDSS sky noise per native 0.396" pixel (nanomaggies) in g, r, i (54 s drift scan, dark sky).
SDSS_PIXEL_ARCSEC = 0.396
SKY_SIGMA_NMGY = np.array([0.024, 0.029, 0.041])
COADD_NOISE_FACTOR = 0.3  # Stripe 82 coadds are ~2 mag deeper
# Lupton et al. (2004) composite as in SDSS / GZ2 JPEGs: i -> R, r -> G, g -> B with band weights
# that make an old population yellow and a star-forming one blue; intensities in nmgy / arcsec^2.
RGB_BAND_WEIGHTS = np.array([1.9, 1.3, 1.0])  # g, r, i
LUPTON_STRETCH, LUPTON_Q = 5.0, 8.0  # sky noise ~5 grey levels, as in GZ2 JPEGs

IMAGE_PX = units.IMAGE_PX
HALF_MAX = 0.5
"""The bar's full length is where its own surface brightness drops to this fraction of its peak."""


# --- one galaxy ----------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Galaxy:
    """Everything needed to render one galaxy and to write its catalogue and truth rows.

    Lengths in 424-px image pixels (``_px``) unless named ``_arcsec`` / ``_kpc``; angles are position
    angles in degrees (see the module docstring); fluxes are fractions of the galaxy's r-band flux.
    ``neighbours`` has shape (k, 8): x_px, y_px (0-based column, row of GalSim's y-up frame),
    half-light radius_px, Sersic n, axis ratio, position angle deg, flux fraction, redness in [0, 1].
    ``stars`` has shape (k, 4): x_px, y_px, flux fraction, g/r flux ratio.
    """

    kind: str
    petror90_arcsec: float
    petror50_arcsec: float
    redshift: float
    petromag_r: float
    seeing_fwhm_arcsec: float
    position_angle_deg: float
    disk_axis_ratio: float
    inclination_deg: float = math.nan
    disk_scale_px: float = math.nan
    disk_thickness: float = math.nan
    bulge_fraction: float = 1.0
    bulge_n: float = 4.0
    bulge_re_px: float = 10.0
    bulge_axis_ratio: float = 1.0
    bar_length_px: float = math.nan
    bar_axis_ratio: float = math.nan
    bar_angle_deg: float = math.nan
    bar_n: float = 0.5
    bar_fraction: float = 0.0
    n_arms: int = 0
    arm_pitch_deg: float = 20.0
    arm_fraction: float = 0.0
    arm_phase_deg: float = 0.0
    arm_sharpness: int = 4
    arm_start_px: float = 10.0
    neighbours: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 8)))
    stars: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4)))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Galaxy.kind = {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not (self.petror90_arcsec > 0 and self.redshift > 0):
            raise ValueError(
                f"Galaxy: petror90_arcsec = {self.petror90_arcsec}, redshift = {self.redshift}: expected > 0"
            )
        fractions = (self.bulge_fraction, self.bar_fraction, self.arm_fraction)
        if min(fractions) < 0 or sum(fractions) > 1 + 1e-9:
            raise ValueError(
                f"Galaxy: bulge/bar/arm flux fractions {fractions}: expected >= 0 with a sum <= 1"
            )
        if self.has_bar and not (0 < self.bar_length_px < IMAGE_PX and 0 < self.bar_axis_ratio <= 1):
            raise ValueError(
                f"Galaxy: bar_length_px = {self.bar_length_px}, bar_axis_ratio = {self.bar_axis_ratio}: "
                f"expected a length in (0, {IMAGE_PX}) px and an axis ratio in (0, 1]"
            )
        if self.kind != "smooth" and not self.disk_scale_px > 0:
            raise ValueError(f"Galaxy: disk_scale_px = {self.disk_scale_px}: expected > 0 for a {self.kind}")
        if not 0 <= self.n_arms <= 6:
            raise ValueError(f"Galaxy.n_arms = {self.n_arms}: expected 0 - 6")

    @property
    def has_bar(self) -> bool:
        return self.bar_fraction > 0

    @property
    def has_arms(self) -> bool:
        return self.n_arms > 0 and self.arm_fraction > 0

    @property
    def disk_fraction(self) -> float:
        return 1.0 - self.bulge_fraction - self.bar_fraction - self.arm_fraction

    @property
    def arcsec_per_px(self) -> float:
        return units.ARCSEC_PER_PX_PER_R90 * self.petror90_arcsec

    @property
    def has_companion(self) -> bool:
        """A neighbour close and bright enough to look like an interaction (more 'odd' votes)."""
        nb = self.neighbours
        if len(nb) == 0:
            return False
        centre = (IMAGE_PX - 1) / 2
        dist_px = np.hypot(nb[:, 0] - centre, nb[:, 1] - centre)
        return bool(np.any((dist_px < 2.6 * units.R90_PX) & (nb[:, 6] > 0.08)))


def petrosian_radii(
    bulge_fraction: float, bulge_n: float, bulge_re: float, disk_scale: float
) -> tuple[float, float]:
    """SDSS Petrosian R50 and R90 of a circular Sersic bulge + exponential disk.

    SDSS definition: the Petrosian ratio (mean surface brightness in the annulus 0.8 - 1.25 r over the
    mean within r) is 0.2 at the Petrosian radius r_P; R50 / R90 enclose 50 / 90 % of the flux within
    2 r_P. Uses the exact enclosed-light curves (regularised incomplete gamma functions). Lengths in
    the unit of ``bulge_re`` and ``disk_scale`` (``disk_scale`` is ignored when ``bulge_fraction`` is 1).
    """
    if not 0 <= bulge_fraction <= 1 or bulge_re <= 0 or (bulge_fraction < 1 and disk_scale <= 0):
        raise ValueError(
            f"petrosian_radii: bulge_fraction = {bulge_fraction}, bulge_re = {bulge_re}, "
            f"disk_scale = {disk_scale}: expected a fraction in [0, 1] and positive radii"
        )
    b_n = special.gammaincinv(2 * bulge_n, 0.5)

    def enclosed(r: float) -> float:
        bulge = (
            special.gammainc(2 * bulge_n, b_n * (r / bulge_re) ** (1 / bulge_n)) if bulge_fraction else 0.0
        )
        disk = special.gammainc(2, r / disk_scale) if bulge_fraction < 1 else 0.0
        return bulge_fraction * bulge + (1 - bulge_fraction) * disk

    def petrosian_ratio(r: float) -> float:
        return (enclosed(1.25 * r) - enclosed(0.8 * r)) / ((1.25**2 - 0.8**2) * enclosed(r)) - 0.2

    scale = bulge_re if bulge_fraction == 1 else max(disk_scale, bulge_re)
    r_petro = optimize.brentq(petrosian_ratio, 1e-3 * scale, 100 * scale, xtol=1e-9 * scale)
    flux = enclosed(2 * r_petro)
    r50, r90 = (
        optimize.brentq(lambda r, f=f: enclosed(r) - f * flux, 1e-6 * scale, 2 * r_petro, xtol=1e-9 * scale)
        for f in (0.5, 0.9)
    )
    return float(r50), float(r90)


def distance_modulus(redshift):
    """m - M (with M - 5 log10 h), from the angular-diameter distance of :mod:`galaxy_xai.units`."""
    z = np.asarray(redshift, dtype=float)
    d_angular_pc = units.kpc_per_arcsec(z) * 1e3 / (math.pi / 648_000)
    return 5 * np.log10(d_angular_pc * (1 + z) ** 2 / 10)


def _truncated_lognormal(
    rng: np.random.Generator, median: float, sigma: float, lo: float, hi: float
) -> float:
    return float(np.clip(median * np.exp(sigma * rng.standard_normal()), lo, hi))


def draw_bar_length_scaled(rng: np.random.Generator, size=None):
    """True bar lengths in units of 2 PETROR90_R (log-normal fitted to the Hoyle catalogue)."""
    draws = BAR_LENGTH_SCALED_MEDIAN * np.exp(BAR_LENGTH_LOG_SIGMA * rng.standard_normal(size))
    return np.clip(draws, *BAR_LENGTH_SCALED_RANGE)


def draw_galaxy(rng: np.random.Generator, set_name: str) -> Galaxy:
    """Draw one galaxy of ``set_name`` ('training', 'test' or 'gz2': barred disks only)."""
    if set_name not in SETS:
        raise ValueError(f"draw_galaxy: set_name = {set_name!r}: expected one of {', '.join(SETS)}")
    barred_catalogue = set_name == "gz2"
    kind = "disk" if barred_catalogue else str(rng.choice(list(KIND_MIX), p=list(KIND_MIX.values())))

    redshift = rng.uniform(*REDSHIFT_RANGE[set_name])
    r90_kpc = _truncated_lognormal(rng, R90_KPC_MEDIAN, R90_KPC_LOG_SIGMA, *R90_KPC_RANGE)
    r90_arcsec = float(r90_kpc / units.kpc_per_arcsec(redshift))
    abs_mag_r = (
        ABS_MAG_R_AT_MEDIAN
        + ABS_MAG_R_PER_DEX_SIZE * math.log10(r90_kpc / R90_KPC_MEDIAN)
        + ABS_MAG_R_SCATTER * rng.standard_normal()
    )
    petromag_r = float(np.clip(abs_mag_r + distance_modulus(redshift), *PETROMAG_R_RANGE))
    seeing = _truncated_lognormal(rng, SEEING_FWHM_MEDIAN_ARCSEC, SEEING_LOG_SIGMA, *SEEING_RANGE_ARCSEC)
    position_angle = rng.uniform(0, 180)
    common = dict(
        kind=kind,
        petror90_arcsec=r90_arcsec,
        redshift=float(redshift),
        petromag_r=petromag_r,
        seeing_fwhm_arcsec=seeing,
        position_angle_deg=float(position_angle),
        neighbours=_draw_neighbours(rng),
        stars=_draw_stars(rng),
    )

    if kind == "smooth":
        sersic_n = float(rng.choice([2.5, 3.0, 3.5, 4.0, 4.5, 5.0]))
        axis_ratio = float(np.clip(rng.beta(5.0, 1.6), 0.3, 1.0))
        r50, r90 = petrosian_radii(1.0, sersic_n, 1.0, 1.0)
        return Galaxy(
            **common,
            petror50_arcsec=r90_arcsec * r50 / r90,
            disk_axis_ratio=axis_ratio,
            bulge_fraction=1.0,
            bulge_n=sersic_n,
            bulge_re_px=units.R90_PX / r90,
            bulge_axis_ratio=axis_ratio,
        )

    # Disks: random orientations (uniform cos i), thick enough that edge-on ones look like needles.
    if kind == "edgeon":
        cos_i, thickness = rng.uniform(0.0, 0.1), rng.uniform(0.10, 0.20)
    else:
        cos_i, thickness = rng.uniform(0.5 if barred_catalogue else 0.3, 1.0), rng.uniform(0.08, 0.15)
    inclination = math.acos(cos_i)
    axis_ratio = math.sqrt(cos_i**2 + (thickness * math.sin(inclination)) ** 2)
    bulge_fraction = 0.6 * rng.beta(1.5, 3.5)
    bulge_n = float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]))
    bulge_re_over_h = rng.uniform(0.15, 0.45)
    bulge_axis_ratio = max(rng.uniform(0.75, 1.0), axis_ratio)

    has_bar = kind == "disk" and (barred_catalogue or rng.random() < BAR_PROBABILITY)
    has_arms = kind == "disk" and rng.random() < ARM_PROBABILITY
    # Bars of the bar catalogue are the obvious ones; labelled disks also get weak bars.
    bar_fraction = rng.uniform(*BAR_FRACTION_RANGE[set_name]) if has_bar else 0.0
    arm_fraction = rng.uniform(0.08, 0.30) if has_arms else 0.0
    bulge_fraction = min(bulge_fraction, 0.8 - bar_fraction - arm_fraction)
    bar, bar_azimuth_deg, intrinsic_length_px = {}, 0.0, 0.0
    if has_bar:
        # The bar lies in the disk plane; its projection on the sky has the catalogue's length.
        length_px = float(units.scaled_to_px424(draw_bar_length_scaled(rng)))
        intrinsic_q = _truncated_lognormal(
            rng, BAR_AXIS_RATIO_MEDIAN, BAR_AXIS_RATIO_LOG_SIGMA, *BAR_AXIS_RATIO_RANGE
        )
        bar_azimuth_deg = float(rng.uniform(0, 180))
        stretch, axis_ratio_sky, angle_sky = project_disk_ellipse(
            intrinsic_q, bar_azimuth_deg, position_angle, cos_i
        )
        intrinsic_length_px = length_px / stretch
        bar = dict(
            bar_length_px=length_px,
            bar_axis_ratio=axis_ratio_sky,
            bar_angle_deg=angle_sky,
            bar_n=float(rng.choice(BAR_SERSIC_N)),
        )
    arm_draws = dict(
        n_arms=int(rng.choice(list(ARM_NUMBER_PROBABILITY), p=list(ARM_NUMBER_PROBABILITY.values()))),
        arm_pitch_deg=float(rng.uniform(8, 35)),
        arm_phase_deg=float(rng.uniform(0, 360)),
        arm_sharpness=int(rng.integers(3, 9)),
    )
    # The Petrosian radius of the axisymmetric light (disk + arms counted as disk) sets the scale.
    bulge_share = bulge_fraction / (1 - bar_fraction)
    r50_h, r90_h = petrosian_radii(bulge_share, bulge_n, bulge_re_over_h, 1.0)
    disk_scale_px = units.R90_PX / r90_h
    arms = {}
    if has_arms:
        # Arms start at the bar's ends (grand-design barred spirals) or around one scale length.
        start = 0.5 * intrinsic_length_px if has_bar else rng.uniform(0.6, 1.3) * disk_scale_px
        arms = dict(arm_draws, arm_fraction=arm_fraction, arm_start_px=float(start))
        if has_bar:
            arms["arm_phase_deg"] = bar_azimuth_deg
    return Galaxy(
        **common,
        petror50_arcsec=r90_arcsec * r50_h / r90_h,
        disk_axis_ratio=float(axis_ratio),
        inclination_deg=math.degrees(inclination),
        disk_scale_px=float(disk_scale_px),
        disk_thickness=float(thickness),
        bulge_fraction=float(bulge_fraction),
        bulge_n=bulge_n,
        bulge_re_px=float(bulge_re_over_h * disk_scale_px),
        bulge_axis_ratio=float(bulge_axis_ratio),
        bar_fraction=float(bar_fraction),
        **bar,
        **arms,
    )


def project_disk_ellipse(
    axis_ratio: float, azimuth_deg: float, position_angle_deg: float, cos_i: float
) -> tuple[float, float, float]:
    """Project an ellipse lying in an inclined disk onto the sky.

    The ellipse (major semi-axis 1, minor ``axis_ratio``) has its major axis at ``azimuth_deg`` from
    the disk's line of nodes, in the disk plane; the disk has position angle ``position_angle_deg``
    and inclination ``arccos(cos_i)``. Returns the sky ellipse's major semi-axis (so intrinsic
    length = sky length / it), axis ratio and position angle in degrees [0, 180). Exact: a linear
    map turns an elliptical profile into an elliptical profile of the same radial shape.
    """

    def rotation(deg: float) -> np.ndarray:
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        return np.array([[c, -s], [s, c]])

    # Columns: where the disk-plane unit vectors along the ellipse's axes land in GalSim's frame.
    to_sky = (
        rotation(position_angle_deg + 90.0)
        @ np.diag([1.0, cos_i])
        @ rotation(azimuth_deg)
        @ np.diag([1.0, axis_ratio])
    )
    u, singular, _ = np.linalg.svd(to_sky)
    angle_galsim = math.degrees(math.atan2(u[1, 0], u[0, 0]))
    return float(singular[0]), float(singular[1] / singular[0]), float((angle_galsim - 90.0) % 180.0)


def _draw_neighbours(rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(0.9)
    centre = (IMAGE_PX - 1) / 2
    close = rng.random(n) < 0.25
    radius = np.where(close, rng.uniform(65, 125, n), rng.uniform(90, 300, n))
    azimuth = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack(
        [
            centre + radius * np.cos(azimuth),
            centre + radius * np.sin(azimuth),
            np.clip(8.0 * np.exp(0.5 * rng.standard_normal(n)), 2.0, 30.0),
            rng.choice([1.0, 4.0], n),
            rng.uniform(0.3, 1.0, n),
            rng.uniform(0, 180, n),
            np.exp(rng.uniform(np.log(0.01), np.log(0.5), n)),
            rng.random(n),
        ]
    )


def _draw_stars(rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(1.2)
    centre = (IMAGE_PX - 1) / 2
    radius = rng.uniform(45, 300, n)
    azimuth = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack(
        [
            centre + radius * np.cos(azimuth),
            centre + radius * np.sin(azimuth),
            np.exp(rng.uniform(np.log(0.003), np.log(0.4), n)),
            rng.uniform(0.3, 1.2, n),
        ]
    )


# --- rendering ------------------------------------------------------------------------------------------
def _galsim_angle(position_angle_deg: float) -> galsim.Angle:
    """Astronomical position angle (from up) -> GalSim's angle (from +x, counter-clockwise)."""
    return (position_angle_deg + 90.0) * galsim.degrees


def _draw_no_pixel(
    profile: galsim.GSObject, stamp_px: int, oversample: int = 1, extent_px: float | None = None
) -> np.ndarray:
    """Sample ``profile`` (unit flux, centred) on an even ``stamp_px`` square stamp.

    ``oversample`` sub-samples each pixel (integrates a cusp over it); a compact profile whose light
    lies within ``extent_px`` of the centre is drawn on a smaller square and padded, which is faster.
    """
    side = stamp_px if extent_px is None else int(min(stamp_px, 2 * math.ceil(extent_px)))
    side += (stamp_px - side) % 2  # keep the centre where the stamp's is
    image = profile.drawImage(
        nx=side * oversample, ny=side * oversample, scale=1.0 / oversample, method="no_pixel"
    ).array
    if oversample > 1:
        image = image.reshape(side, oversample, side, oversample).sum(axis=(1, 3))
    pad = (stamp_px - side) // 2
    return np.pad(image.astype(np.float64), pad)


def bar_profile(length_px: float, axis_ratio: float, angle_deg: float, sersic_n: float) -> galsim.GSObject:
    """The bar as a unit-flux elliptical Sersic whose full length at half maximum is ``length_px``.

    ``I(r) = I0 exp(-(r / a0)^(1/n))`` is half its peak at ``a0 (ln 2)^n``; GalSim's shear keeps the
    area, so the circular scale radius ``a0 sqrt(q)`` becomes ``a0`` along the major axis.
    """
    a0 = 0.5 * length_px / math.log(1 / HALF_MAX) ** sersic_n
    return galsim.Sersic(n=sersic_n, scale_radius=a0 * math.sqrt(axis_ratio)).shear(
        q=axis_ratio, beta=_galsim_angle(angle_deg)
    )


def spiral_arms(galaxy: Galaxy, stamp_px: int) -> np.ndarray:
    """Unit-flux image of logarithmic spiral arms (no PSF), shape (stamp_px, stamp_px).

    The disk's exponential surface brightness, in disk-plane polar coordinates (r, theta), times
    ``[(1 + cos(m (theta - ln(r / r0) / tan(pitch) - phase))) / 2] ** sharpness`` and a smooth inner
    cut-off at ``arm_start_px``; rows and columns are those of GalSim's y-up stamp.
    """
    centre = (stamp_px - 1) / 2
    y, x = np.mgrid[0:stamp_px, 0:stamp_px].astype(np.float32) - np.float32(centre)
    major = math.radians(galaxy.position_angle_deg + 90.0)
    along = x * math.cos(major) + y * math.sin(major)
    across = (-x * math.sin(major) + y * math.cos(major)) / max(
        math.cos(math.radians(galaxy.inclination_deg)), 0.05
    )
    r = np.hypot(along, across) + 1e-6
    theta = np.arctan2(across, along)
    r0 = galaxy.arm_start_px
    winding = np.log(r / r0) / math.tan(math.radians(galaxy.arm_pitch_deg))
    phase = galaxy.n_arms * (theta - winding - math.radians(galaxy.arm_phase_deg))
    pattern = (0.5 * (1 + np.cos(phase))) ** int(galaxy.arm_sharpness)  # integer powers are fast
    envelope = np.exp(-r / galaxy.disk_scale_px) * (1 - np.exp(-((r / r0) ** 4)))
    arms = (pattern * envelope).astype(np.float64)
    return arms / arms.sum()


@functools.lru_cache(maxsize=8)
def psf_kernel(fwhm_px: float, half_px: int | None = None) -> np.ndarray:
    """Moffat PSF convolved with the pixel, unit sum, side ``2 half_px + 1`` (default: > 99 % of the flux).

    Cached: a galaxy's stars and neighbours reuse its kernel. Treat the result as read-only.
    """
    half = max(4, int(math.ceil(4 * fwhm_px))) if half_px is None else half_px
    # Sampled 2 x 2 per pixel and summed: the pixel response without GalSim's slower FFT drawing.
    side = 2 * half + 1
    moffat = galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm_px)
    kernel = moffat.drawImage(nx=2 * side, ny=2 * side, scale=0.5, method="no_pixel").array
    kernel = kernel.reshape(side, 2, side, 2).sum(axis=(1, 3)).astype(np.float64)
    return kernel / kernel.sum()


def convolve_same(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each image of a stack (..., H, W) with an odd square ``kernel``; output shape = input's.

    float32 FFTs padded to a multiple of 32 px (fast sizes for pocketfft); relative error ~1e-6.
    """
    height, width = images.shape[-2:]
    k = kernel.shape[0]
    size = -(-(max(height, width) + k - 1) // 32) * 32
    product = sp_fft.rfft2(np.asarray(images, dtype=np.float32), s=(size, size)) * sp_fft.rfft2(
        np.asarray(kernel, dtype=np.float32), s=(size, size)
    )
    c = k // 2
    return sp_fft.irfft2(product, s=(size, size))[..., c : c + height, c : c + width]


def render_bands(
    galaxy: Galaxy,
    noise_seed: int | None = None,
    *,
    noise_factor: float = 1.0,
    psf: bool = True,
    arms: bool = True,
    neighbours: bool = True,
    components: tuple[str, ...] = ("bulge", "disk", "bar", "arms"),
) -> np.ndarray:
    """Render one galaxy as g, r, i surface-brightness images (nanomaggies / arcsec^2).

    Returns float32 of shape (3, 424, 424) in display orientation (row 0 at the top). Each component
    is drawn once at unit flux (GalSim, no PSF), the three bands are per-component-colour linear
    combinations, each band is convolved with the PSF (GalSim Moffat kernel), neighbours and stars
    are added, and, when ``noise_seed`` is given, Gaussian sky noise seeded by it.
    ``psf=False``, ``arms=False``, ``neighbours=False``, ``noise_seed=None`` and ``components``
    switch parts off (tests measure the bar on such renders).
    """
    unknown = set(components) - {"bulge", "disk", "bar", "arms"}
    if unknown:
        raise ValueError(
            f"render_bands: unknown components {sorted(unknown)}; expected bulge, disk, bar, arms"
        )
    pixel_area = galaxy.arcsec_per_px**2
    flux_r = 10 ** (-0.4 * (galaxy.petromag_r - 22.5))  # nanomaggies
    stamp_px = 352 if galaxy.kind == "smooth" else 256
    fwhm_px = galaxy.seeing_fwhm_arcsec / galaxy.arcsec_per_px

    layers: list[tuple[np.ndarray, float, np.ndarray]] = []  # (unit-flux image, flux fraction, colour)
    if "bulge" in components and galaxy.bulge_fraction > 0:
        bulge = galsim.Sersic(n=galaxy.bulge_n, half_light_radius=galaxy.bulge_re_px).shear(
            q=galaxy.bulge_axis_ratio, beta=_galsim_angle(galaxy.position_angle_deg)
        )
        oversample = 4 if galaxy.bulge_re_px < 4 else 2 if galaxy.bulge_re_px < 12 else 1
        # A disk's bulge is compact: its light beyond ~15 r_e is negligible next to the disk's.
        extent = None if galaxy.kind == "smooth" else 15 * galaxy.bulge_re_px + 8
        layers.append(
            (_draw_no_pixel(bulge, stamp_px, oversample, extent), galaxy.bulge_fraction, BULGE_COLOUR)
        )
    if "disk" in components and galaxy.kind != "smooth":
        if galaxy.kind == "edgeon":
            disk = galsim.InclinedExponential(
                inclination=galaxy.inclination_deg * galsim.degrees,
                scale_radius=galaxy.disk_scale_px,
                scale_h_over_r=galaxy.disk_thickness,
            ).rotate(_galsim_angle(galaxy.position_angle_deg))
        else:
            # Away from edge-on a thick disk looks like a flattened exponential of the same apparent
            # axis ratio, which GalSim draws in real space ~4x faster than an InclinedExponential.
            q = galaxy.disk_axis_ratio
            disk = galsim.Exponential(scale_radius=galaxy.disk_scale_px * math.sqrt(q)).shear(
                q=q, beta=_galsim_angle(galaxy.position_angle_deg)
            )
        layers.append((_draw_no_pixel(disk, stamp_px), galaxy.disk_fraction, DISK_COLOUR))
    if "bar" in components and galaxy.has_bar:
        bar = bar_profile(galaxy.bar_length_px, galaxy.bar_axis_ratio, galaxy.bar_angle_deg, galaxy.bar_n)
        # The bar falls to 1e-3 of its peak at (ln 1000 / ln 2)^n half-lengths.
        extent = 0.5 * galaxy.bar_length_px * (math.log(1000) / math.log(2)) ** galaxy.bar_n + 8
        layers.append((_draw_no_pixel(bar, stamp_px, 2, extent), galaxy.bar_fraction, BAR_COLOUR))
    if arms and "arms" in components and galaxy.has_arms:
        layers.append((spiral_arms(galaxy, stamp_px), galaxy.arm_fraction, ARM_COLOUR))

    # One stamp per band: the components are shared, only their colours differ.
    stamp = np.zeros((3, stamp_px, stamp_px), dtype=np.float32)
    for image, fraction, colour in layers:
        stamp += ((fraction * flux_r / pixel_area) * colour[:, None, None]).astype(np.float32) * image.astype(
            np.float32
        )
    kernel = psf_kernel(fwhm_px) if psf else None
    if kernel is not None:
        stamp = convolve_same(stamp, kernel)

    frame = np.zeros((3, IMAGE_PX, IMAGE_PX), dtype=np.float32)
    corner = (IMAGE_PX - stamp_px) // 2
    frame[:, corner : corner + stamp_px, corner : corner + stamp_px] = stamp
    if neighbours:
        _add_neighbours_and_stars(frame, galaxy, flux_r / pixel_area, fwhm_px if psf else None)
    if noise_seed is not None:
        sigma = sky_sigma(galaxy.arcsec_per_px) * noise_factor
        frame += sigma[:, None, None] * sky_noise(noise_seed, galaxy.arcsec_per_px)
    return frame[:, ::-1, :]


def sky_noise(seed: int, arcsec_per_px: float) -> np.ndarray:
    """Unit sky-noise images (3, 424, 424) float32 as a cutout resampled from SDSS pixels shows it.

    White where a cutout pixel averages several 0.396" pixels; where it is smaller, one native pixel
    spans ``w`` cutout pixels and the noise is correlated over them: white noise box-smoothed over
    ``w`` pixels and rescaled to unit variance. (NumPy's generator: ~4x faster than GalSim's here.)
    """
    noise = np.random.default_rng(seed).standard_normal((3, IMAGE_PX, IMAGE_PX), dtype=np.float32)
    width = int(round(SDSS_PIXEL_ARCSEC / arcsec_per_px))
    if width >= 2:
        noise = ndimage.uniform_filter1d(noise, width, axis=1, mode="wrap")
        noise = ndimage.uniform_filter1d(noise, width, axis=2, mode="wrap")
        noise *= np.float32(width)  # a box mean of w x w unit variables has variance 1 / w^2
    return noise


def sky_sigma(arcsec_per_px: float) -> np.ndarray:
    """Per-pixel sky noise (g, r, i) in nmgy / arcsec^2 of an image resampled to ``arcsec_per_px``.

    Resampling to pixels larger than SDSS's 0.396" averages several native pixels (less noise per
    pixel); smaller pixels interpolate (the same noise, correlated).
    """
    native_area = SDSS_PIXEL_ARCSEC**2
    averaged = min(1.0, SDSS_PIXEL_ARCSEC / arcsec_per_px)
    return SKY_SIGMA_NMGY / native_area * averaged


def _add_neighbours_and_stars(
    frame: np.ndarray, galaxy: Galaxy, sb_per_unit_flux: float, fwhm_px: float | None
) -> None:
    """Add neighbour galaxies and stars (PSF-convolved, clipped at the frame edge) in place.

    Positions are rounded to whole pixels: nothing is measured on them.
    """
    for x, y, hlr, n, q, angle, flux, redness in galaxy.neighbours:
        profile = galsim.Sersic(n=n, half_light_radius=hlr).shear(q=q, beta=_galsim_angle(angle))
        image = _draw_no_pixel(profile, 2 * int(6 * hlr + 8), 2 if hlr < 6 else 1)
        if fwhm_px:
            image = convolve_same(image, psf_kernel(fwhm_px))
        colour = redness * BULGE_COLOUR + (1 - redness) * ARM_COLOUR
        _paste(frame, (flux * sb_per_unit_flux) * colour[:, None, None] * image, x, y)
    for x, y, flux, g_over_r in galaxy.stars:
        peak = flux * sb_per_unit_flux * (MOFFAT_BETA - 1) / (np.pi * (fwhm_px or 1.0) ** 2)
        # Moffat wings fall as r^-2beta: size the stamp so they end below a tenth of the sky noise.
        half = int(
            np.clip(
                (fwhm_px or 1.0)
                * (peak / (0.1 * sky_sigma(galaxy.arcsec_per_px)[1])) ** (1 / (2 * MOFFAT_BETA)),
                4,
                150,
            )
        )
        image = psf_kernel(fwhm_px, half) if fwhm_px else _point(half)
        _paste(
            frame,
            (flux * sb_per_unit_flux) * np.array([g_over_r, 1.0, g_over_r**-0.6])[:, None, None] * image,
            x,
            y,
        )


def _point(half: int) -> np.ndarray:
    image = np.zeros((2 * half + 1, 2 * half + 1))
    image[half, half] = 1.0
    return image


def _paste(frame: np.ndarray, stamp: np.ndarray, x: float, y: float) -> None:
    """Add ``stamp`` (3, h, w) to ``frame`` (3, H, W) centred near column ``x``, row ``y``; clip at edges."""
    h, w = stamp.shape[1:]
    row0, col0 = int(round(y - (h - 1) / 2)), int(round(x - (w - 1) / 2))
    rows = slice(max(row0, 0), min(row0 + h, frame.shape[1]))
    cols = slice(max(col0, 0), min(col0 + w, frame.shape[2]))
    if rows.start < rows.stop and cols.start < cols.stop:
        frame[:, rows, cols] += stamp[
            :, rows.start - row0 : rows.stop - row0, cols.start - col0 : cols.stop - col0
        ]


def compose_rgb(bands: np.ndarray) -> np.ndarray:
    """g, r, i surface-brightness images (3, H, W) -> uint8 RGB (H, W, 3): the Lupton et al. (2004)
    asinh composite of SDSS / GZ2 JPEGs (i -> R, r -> G, g -> B).

    The same mapping as ``astropy.visualization.make_lupton_rgb(i, r, g, minimum=0, stretch, Q)``
    (the tests check it), computed in float32 in one pass: ~4x faster, and this runs per image.
    The intensity is the mean of the three bands, scaled by ``asinh(Q I / stretch) / I``; a pixel
    whose brightest band would exceed 1 keeps its colour and is scaled down.
    """
    weights = RGB_BAND_WEIGHTS[::-1, None, None].astype(np.float32)
    rgb = np.asarray(bands, dtype=np.float32)[::-1] * weights
    intensity = rgb.mean(axis=0)
    slope = np.float32(0.1 / np.arcsinh(0.1 * LUPTON_Q))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(
            intensity <= 0,
            0,
            slope * np.arcsinh(np.float32(LUPTON_Q / LUPTON_STRETCH) * intensity) / intensity,
        )
        rgb = np.clip(rgb * ratio, 0.0, None)
        brightest = rgb.max(axis=0)
        rgb = np.where(brightest > 1, rgb / brightest, rgb)
    return np.ascontiguousarray((rgb * 255).astype(np.uint8).transpose(1, 2, 0))


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """uint8 (H, W, 3) -> JPEG bytes (deterministic for a given array and quality)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"encode_jpeg: quality = {quality}: expected 1 - 100")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --- volunteers: vote fractions ----------------------------------------------------------------------
def morphology_features(galaxies: list[Galaxy]) -> dict[str, np.ndarray]:
    """The true properties the simulated volunteers react to, as arrays of shape (n,)."""

    def col(fn) -> np.ndarray:
        return np.array([fn(g) for g in galaxies], dtype=float)

    return {
        "smooth": col(lambda g: g.kind == "smooth"),
        "edgeon": col(lambda g: g.kind == "edgeon"),
        "axis_ratio": col(lambda g: g.disk_axis_ratio),
        "bulge_fraction": col(lambda g: g.bulge_fraction),
        "has_bar": col(lambda g: g.has_bar),
        "bar_length_scaled": col(lambda g: units.px424_to_scaled(g.bar_length_px) if g.has_bar else 0.0),
        "bar_fraction": col(lambda g: g.bar_fraction),
        "has_arms": col(lambda g: g.has_arms),
        "arm_fraction": col(lambda g: g.arm_fraction),
        "n_arms": col(lambda g: g.n_arms),
        "pitch_deg": col(lambda g: g.arm_pitch_deg),
        "petromag_r": col(lambda g: g.petromag_r),
        "companion": col(lambda g: g.has_companion),
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def answer_probabilities(
    m: dict[str, np.ndarray], rng: np.random.Generator, perception_sigma: float = 0.4
) -> dict[int, np.ndarray]:
    """Probability that a volunteer picks each answer of each question: {question: (n, answers)}.

    Driven by the true morphology ``m`` (from :func:`morphology_features`): visible structure pulls
    votes to "features", thin disks to "edge-on", a bar earns more "bar" votes the longer and
    brighter it is, arms to "spiral", bulge_fraction sets the bulge prominence, the axis ratio the
    roundness, pitch angle the arm tightness, a close companion the "odd / merger" answers; fainter
    galaxies look smoother. Each galaxy's crowd also shares a random perception offset per answer
    (log-odds, sigma ``perception_sigma``).
    """
    n = len(m["smooth"])
    disk = 1 - m["smooth"]
    faint = np.clip(m["petromag_r"] - 15.5, 0, None)
    structure = (
        2.5 * (1 - m["bulge_fraction"]) + 5 * m["arm_fraction"] + 7 * m["bar_fraction"] + 2.5 * m["edgeon"]
    )
    logits = {
        1: np.column_stack(
            [np.zeros(n), disk * (structure - 1.0) - 2.8 * m["smooth"] - 0.6 * faint, np.full(n, -4.5)]
        ),
        2: np.column_stack([10 * (0.3 - m["axis_ratio"]), np.zeros(n)]),
        3: np.column_stack(
            [
                m["has_bar"]
                * (
                    -1.2
                    + 6 * (m["bar_length_scaled"] - 0.3)
                    + 14 * m["bar_fraction"]
                    - 2.5 * (1 - m["axis_ratio"])
                )
                - 2.3 * (1 - m["has_bar"]),
                np.zeros(n),
            ]
        ),
        4: np.column_stack(
            [m["has_arms"] * (0.3 + 9 * m["arm_fraction"]) - 1.8 * (1 - m["has_arms"]), np.zeros(n)]
        ),
        5: -((np.arange(4)[None, :] - 3 * np.clip(m["bulge_fraction"] / 0.45, 0, 1)[:, None]) ** 2) / 0.8,
        6: np.column_stack([-2.2 + 2.6 * m["companion"], np.zeros(n)]),
        7: -(((m["axis_ratio"][:, None] - np.array([0.92, 0.65, 0.35])[None, :]) / 0.15) ** 2),
        8: np.array([0.0, -0.3, -0.5, -0.8, 0.8, -1.2, -1.2])[None, :]
        + m["companion"][:, None] * np.array([0, 0, 1.0, 0, 0, 2.8, 0])[None, :]
        + m["edgeon"][:, None] * np.array([0, 0, 0, 0, 0, 0, 1.8])[None, :],
        9: np.column_stack(
            [6 * (m["bulge_fraction"] - 0.1), np.full(n, -1.0), 6 * (0.1 - m["bulge_fraction"])]
        ),
        10: m["has_arms"][:, None]
        * (-(((m["pitch_deg"][:, None] - np.array([10.0, 20.0, 30.0])[None, :]) / 7.0) ** 2)),
        11: np.column_stack(
            [
                m["has_arms"][:, None] * 2.5 * (np.arange(1, 6)[None, :] == m["n_arms"][:, None]),
                0.5 + 2.0 * (1 - m["has_arms"]) - 4 * m["arm_fraction"],
            ]
        ),
    }
    probs = {}
    for q, lg in logits.items():
        lg = np.asarray(lg, dtype=float)
        probs[q] = _softmax(lg + perception_sigma * rng.standard_normal(lg.shape))
    return probs


def simulate_votes(
    probs: dict[int, np.ndarray], rng: np.random.Generator, n_volunteers: int = 40
) -> np.ndarray:
    """Weighted vote fractions (n, 37) in CLASS_COLUMNS order from volunteers walking the tree.

    Every volunteer answers question 1 and then only the questions its answers lead to
    (:data:`catalogue.PARENT`), plus question 6 and, after "odd", question 8. Volunteers carry
    consistency weights (most 1, some down-weighted, as in Galaxy Zoo's debiasing), and an answer's
    fraction is the weight of the volunteers who gave it over the total weight. So every question's
    answers sum exactly to the fraction of its parent answer: the tree holds by construction.
    """
    n = len(probs[1])
    weights = np.where(rng.random((n, n_volunteers)) < 0.85, 1.0, rng.uniform(0.1, 1.0, (n, n_volunteers)))
    index = {c: i for i, c in enumerate(catalogue.CLASS_COLUMNS)}
    chose = np.zeros((n, n_volunteers, len(catalogue.CLASS_COLUMNS)), dtype=bool)
    for q in sorted(catalogue.PARENT):  # parents come before their children
        parent = catalogue.PARENT[q]
        reached = np.ones((n, n_volunteers), dtype=bool) if parent is None else chose[:, :, index[parent]]
        cumulative = np.cumsum(probs[q], axis=1)
        answer = (rng.random((n, n_volunteers, 1)) > cumulative[:, None, :-1]).sum(axis=2)
        for a, column in enumerate(catalogue.question_columns(q)):
            chose[:, :, index[column]] = reached & (answer == a)
    return np.einsum("nv,nvc->nc", weights, chose) / weights.sum(axis=1, keepdims=True)


MICRO = 1_000_000


def round_tree(fractions: np.ndarray) -> np.ndarray:
    """Round vote fractions (n, 37) to integer millionths that obey the tree exactly.

    Questions 1 and 6 share out 10^6; each child question shares out its parent's rounded value in
    proportion to its raw fractions (largest-remainder rounding), so every constraint holds to the
    last digit and each value moves by at most ~1e-6.
    """
    fractions = np.asarray(fractions, dtype=float)
    index = {c: i for i, c in enumerate(catalogue.CLASS_COLUMNS)}
    micro = np.zeros(fractions.shape, dtype=np.int64)
    for q in sorted(catalogue.PARENT):
        parent = catalogue.PARENT[q]
        cols = [index[c] for c in catalogue.question_columns(q)]
        total = np.full(len(fractions), MICRO, dtype=np.int64) if parent is None else micro[:, index[parent]]
        raw = np.clip(fractions[:, cols], 0, None)
        raw_sum = raw.sum(axis=1, keepdims=True)
        share = np.divide(raw, raw_sum, out=np.zeros_like(raw), where=raw_sum > 0) * total[:, None]
        base = np.floor(share).astype(np.int64)
        remainder = total - base.sum(axis=1)
        rank = np.argsort(np.argsort(-(share - base), axis=1, kind="stable"), axis=1, kind="stable")
        micro[:, cols] = base + (rank < remainder[:, None])
    return micro


def format_micro(micro: np.ndarray) -> np.ndarray:
    """Integer millionths -> the real file's number style ('0', '1', '0.383147')."""
    text = np.char.mod("%.6f", np.asarray(micro) / MICRO)
    return np.char.rstrip(np.char.rstrip(text, "0"), ".")


# --- the Hoyle catalogue's volunteers ------------------------------------------------------------------
def volunteer_bar_measurements(
    length_scaled_true, bar_axis_ratio, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Hoyle-style measurements of bars of known true length, arrays of shape (n,).

    One shared log-normal factor (sigma 0.17, Hoyle et al.'s reproducibility) multiplies each
    galaxy's true length; widths are the axis ratio times the true length with their own factor;
    ``bar_meas`` (3 - 11) follows the real catalogue, and the standard deviations are the sample
    spread of that many volunteers' individual measurements. Returns length_scaled, width_scaled,
    length_stdev_scaled, width_stdev_scaled and bar_meas (all lengths in units of 2 PETROR90_R).
    """
    true = np.asarray(length_scaled_true, dtype=float)
    q = np.asarray(bar_axis_ratio, dtype=float)
    n = len(true)
    bar_meas = rng.choice(np.arange(3, 12), size=n, p=BAR_MEAS_COUNTS / BAR_MEAS_COUNTS.sum())
    length = true * np.exp(VOLUNTEER_LOG_SIGMA * rng.standard_normal(n))
    width = q * true * np.exp(VOLUNTEER_LOG_SIGMA * rng.standard_normal(n))

    def spread(log_sigma: float) -> np.ndarray:
        individual = np.exp(log_sigma * rng.standard_normal((n, 11)))
        used = np.arange(11)[None, :] < bar_meas[:, None]
        mean = (individual * used).sum(1) / bar_meas
        return np.sqrt((((individual - mean[:, None]) ** 2) * used).sum(1) / (bar_meas - 1))

    return {
        "length_scaled": length,
        "width_scaled": width,
        "length_stdev_scaled": length * spread(VOLUNTEER_LENGTH_LOG_SIGMA),
        "width_stdev_scaled": width * spread(VOLUNTEER_WIDTH_LOG_SIGMA),
        "bar_meas": bar_meas,
    }


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
    frame = pd.DataFrame(text, columns=catalogue.CLASS_COLUMNS)
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
