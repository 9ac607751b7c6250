"""Rendering one galaxy: GalSim components, the PSF, neighbours and stars, sky noise, the RGB JPEG.

:func:`render_bands` turns a :class:`~galaxy_xai.data.synthetic.population.Galaxy` into g, r, i
surface-brightness images (float32, shape (3, 424, 424), nanomaggies / arcsec^2, row 0 at the top):
bulge, disk and bar drawn by GalSim at unit flux (:func:`bar_profile`: the bar's full length is the
full width at half maximum of its own profile), logarithmic spiral arms (:func:`spiral_arms`), each
band convolved with a Moffat PSF (:func:`psf_kernel`, :func:`convolve_same`), neighbours and stars
pasted in, and seeded SDSS-like sky noise (:func:`sky_noise` times :func:`sky_sigma`).
:func:`compose_rgb` makes the Lupton et al. (2004) composite of SDSS / GZ2 cutouts (uint8, shape
(424, 424, 3)) and :func:`encode_jpeg` its JPEG bytes. Lengths are 424-px image pixels and angles
position angles in degrees (conventions: :mod:`galaxy_xai.data.synthetic.population`).
"""

from __future__ import annotations

import functools
import io
import math

import galsim
import numpy as np
from PIL import Image
from scipy import fft as sp_fft
from scipy import ndimage

from galaxy_xai.data.synthetic.population import (
    ARM_COLOUR,
    BAR_COLOUR,
    BULGE_COLOUR,
    DISK_COLOUR,
    IMAGE_PX,
    Galaxy,
)

# --- PSF, sky noise and the composite ---------------------------------------------------------------
MOFFAT_BETA = 3.0
# SDSS sky noise per native 0.396" pixel (nanomaggies) in g, r, i (54 s drift scan, dark sky).
SDSS_PIXEL_ARCSEC = 0.396
SKY_SIGMA_NMGY = np.array([0.024, 0.029, 0.041])
COADD_NOISE_FACTOR = 0.3  # Stripe 82 coadds are ~2 mag deeper
# Lupton et al. (2004) composite as in SDSS / GZ2 JPEGs: i -> R, r -> G, g -> B with band weights
# that make an old population yellow and a star-forming one blue; intensities in nmgy / arcsec^2.
RGB_BAND_WEIGHTS = np.array([1.9, 1.3, 1.0])  # g, r, i
LUPTON_STRETCH, LUPTON_Q = 5.0, 8.0  # sky noise ~5 grey levels, as in GZ2 JPEGs

HALF_MAX = 0.5
"""The bar's full length is where its own surface brightness drops to this fraction of its peak."""


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
