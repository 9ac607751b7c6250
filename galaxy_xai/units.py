"""Unit conversions, in one place: map pixels -> 424-px pixels -> arcsec -> h^-1 kpc.

Conventions (the same for the synthetic sky and the real data):

* Galaxy Zoo 2 images are 424 x 424 px at ``0.02 * PETROR90_R`` arcsec per pixel (Willett et al.
  2013), so every galaxy's Petrosian R90 spans ``R90_PX = 50`` pixels whatever its distance.
* A saliency map of side ``map_px`` made from a centre crop of ``crop_px`` 424-px pixels (the whole
  image when ``crop_px`` is None) has ``crop_px / map_px`` 424-px pixels per map pixel.
* Hoyle et al.'s ``length_scaled`` is taken as the bar's full length in units of the galaxy's
  Petrosian diameter ``2 * PETROR90_R``. On a GZ2 image that diameter is ``2 * R90_PX = 100`` px, so
  ``length_px424 = 100 * length_scaled`` independently of the galaxy's size and distance.
* Algorithm 1's pixel-count floor T_l is given, as in the paper, in pixels of 224-px maps of the
  whole image; a count of pixels is an area, so it scales with the area of a map pixel
  (:func:`scale_len_threshold`).
* Physical lengths use the angular-diameter distance of a flat LambdaCDM cosmology with
  H0 = 100 h km/s/Mpc and Omega_m = 0.3, so kpc come out in h^-1 kpc as in the Hoyle catalogue.

The paper multiplies both the measured and the catalogue lengths by PETROR90_R before correlating
them; :mod:`galaxy_xai.results.evaluation` reports that convention and the image-unit one side by side.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

IMAGE_PX = 424
"""Side of a Galaxy Zoo image in pixels."""

ARCSEC_PER_PX_PER_R90 = 0.02
"""GZ2 pixel scale in arcsec per pixel, per arcsec of PETROR90_R."""

R90_PX = 1.0 / ARCSEC_PER_PX_PER_R90
"""Petrosian R90 of every galaxy in 424-px pixels (50)."""

PAPER_MAP_PX = 224
"""Map side for which the paper's T_l grid (10-50 pixels) was chosen (maps of the whole image)."""

OMEGA_M = 0.3


def map_px_to_px424(length_map_px, map_px: int, crop_px: int | None):
    """Length in pixels of a ``map_px``-side map -> length in 424-px image pixels."""
    crop = IMAGE_PX if crop_px is None else crop_px
    return np.asarray(length_map_px, dtype=float) * (crop / map_px)


def px424_to_map_px(length_px424, map_px: int, crop_px: int | None):
    """Length in 424-px image pixels -> pixels of a ``map_px``-side map (inverse of :func:`map_px_to_px424`)."""
    crop = IMAGE_PX if crop_px is None else crop_px
    return np.asarray(length_px424, dtype=float) * (map_px / crop)


def r90_map_px(map_px: int, crop_px: int | None) -> float:
    """Petrosian R90 in pixels of a ``map_px``-side map: the same for every galaxy, as :data:`R90_PX`
    is; 20 px for the default 64-px maps of the 160-px crop."""
    return float(px424_to_map_px(R90_PX, map_px, crop_px))


def px424_to_arcsec(length_px424, petror90_r_arcsec):
    """424-px pixels -> arcsec, with the GZ2 scale of 0.02 x PETROR90_R arcsec per pixel."""
    return np.asarray(length_px424, dtype=float) * ARCSEC_PER_PX_PER_R90 * np.asarray(petror90_r_arcsec, dtype=float)


def scaled_to_px424(length_scaled):
    """Hoyle ``length_scaled`` (units of the Petrosian diameter 2 R90) -> 424-px pixels."""
    return np.asarray(length_scaled, dtype=float) * 2.0 * R90_PX


def px424_to_scaled(length_px424):
    """424-px pixels -> Hoyle ``length_scaled`` (inverse of :func:`scaled_to_px424`)."""
    return np.asarray(length_px424, dtype=float) / (2.0 * R90_PX)


def kpc_per_arcsec(redshift):
    """Proper h^-1 kpc per arcsec at ``redshift`` (flat LambdaCDM, H0 = 100 h, Omega_m = 0.3).

    Shape follows ``redshift``. Uses astropy's cosmology so the numbers match the literature.
    """
    z = np.asarray(redshift, dtype=float)
    if np.any(~np.isfinite(z)) or np.any(z <= 0):
        raise ValueError("kpc_per_arcsec: expected finite redshifts > 0")
    return _cosmology().kpc_proper_per_arcmin(z).value / 60.0


@lru_cache(maxsize=1)
def _cosmology():
    # Building the astropy cosmology costs ~50 ms; the object is immutable, so build it once.
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=100.0, Om0=OMEGA_M)


def px424_to_kpc(length_px424, petror90_r_arcsec, redshift):
    """424-px pixels -> h^-1 kpc for galaxies of the given PETROR90_R (arcsec) and redshift."""
    return px424_to_arcsec(length_px424, petror90_r_arcsec) * kpc_per_arcsec(redshift)


def map_px_to_kpc(length_map_px, map_px: int, crop_px: int | None, petror90_r_arcsec, redshift):
    """Map pixels -> h^-1 kpc: the whole chain in one call."""
    return px424_to_kpc(map_px_to_px424(length_map_px, map_px, crop_px), petror90_r_arcsec, redshift)


def scale_len_threshold(len_threshold_224: float, map_px: int, crop_px: int | None = None) -> int:
    """T_l for our maps from the paper's value for its 224-px maps of the whole 424-px image.

    T_l is a number of pixels, i.e. an area on the sky, so it scales with the area of a map pixel:
    the paper's pixel spans 424 / 224 image pixels, ours ``crop_px / map_px`` (``crop_px`` in 424-px
    pixels, None for the whole image). Rounded, and at least 2 (below two pixels there is no
    correlation to test and no length to measure). For the default 64-px maps of a 160-px crop the
    factor is (64 / 224 x 424 / 160)^2 = 0.57: T_l = 10 -> 6 px.
    """
    crop = IMAGE_PX if crop_px is None else crop_px
    if map_px < 1 or len_threshold_224 < 0 or not 0 < crop <= IMAGE_PX:
        raise ValueError(
            f"scale_len_threshold: expected map_px >= 1, T_l >= 0 and 0 < crop_px <= {IMAGE_PX}, "
            f"got {map_px}, {len_threshold_224}, {crop_px}"
        )
    pixel_area = (map_px / PAPER_MAP_PX * IMAGE_PX / crop) ** 2
    return max(2, round(len_threshold_224 * pixel_area))
