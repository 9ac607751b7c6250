"""Who the synthetic galaxies are: the :class:`Galaxy` record, the population's fitted constants, the draws.

:func:`draw_galaxy` draws one galaxy of a set (kind, size, distance, brightness, seeing, bulge, disk,
bar, arms, neighbours and stars) from a NumPy generator, using the constants below (each with where
its number comes from); :func:`petrosian_radii` makes its Petrosian R90 50 px and
:func:`project_disk_ellipse` projects the bar lying in the disk onto the sky. The components' colours
(g, r, i flux ratios) live here too: the renderer and the gz2 magnitudes both use them.

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
  with soft ends, like observed bars; :func:`galaxy_xai.data.synthetic.render.bar_profile`),
  ``I(r) = I0 exp(-(r / a0)^(1/n))``, whose surface brightness falls to half its central value at
  ``a0 (ln 2)^n`` = half the full length. The bar lies in the
  disk plane (random azimuth, intrinsic axis ratio ~0.25) and is seen projected
  (:func:`project_disk_ellipse`); its *projected* full length is drawn from the catalogue's
  distribution and is the true length in truth.csv: what a measurement on the image can recover.
* Angles (``position_angle_deg``, ``bar_angle_deg``) are astronomical position angles in [0, 180):
  degrees counter-clockwise from "up" in the displayed JPEG (north up, east left as in SDSS
  cutouts). A major axis at angle ``phi`` points along (d_row, d_col) = (-cos phi, -sin phi).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from galaxy_xai import units

SETS = ("training", "test", "gz2")
KINDS = ("smooth", "disk", "edgeon")
IMAGE_PX = units.IMAGE_PX

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

# --- photometry: g, r, i -----------------------------------------------------------------------------
# Flux ratios (g, r, i) / r of each component, from typical SDSS colours: old bulges and bars
# (g - r ~ 0.75, r - i ~ 0.37), disks (0.4, 0.2), star-forming arms (0.05, 0.0).
BULGE_COLOUR = np.array([0.50, 1.0, 1.40])
BAR_COLOUR = np.array([0.55, 1.0, 1.35])
DISK_COLOUR = np.array([0.70, 1.0, 1.20])
ARM_COLOUR = np.array([0.95, 1.0, 1.00])


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
