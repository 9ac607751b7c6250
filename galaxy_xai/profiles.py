"""Bar lengths from radial profiles of a centred galaxy: the astronomer's methods, for maps or images.

Two classical estimators of a bar's extent (Athanassoula & Misiriotis 2002; Aguerri et al. 2000;
Erwin 2005), usable on a saliency map as well as on the galaxy's light:

* **m = 2 Fourier profile** (:func:`fourier_profiles`, :func:`fourier_bar_length`): in annuli of
  1 px around the centre, the amplitude of the m = 2 azimuthal mode relative to m = 0,
  ``A2(r) = |sum I exp(-2i theta)| / sum I``, and its phase. A bar is a region of large, constant-phase
  A2; its end is where A2 falls below ``fraction`` of its peak (``rule="amplitude"``) or where the
  m = 2 phase turns by more than ``max_phase_deg`` from its value at the peak (``rule="phase"``).
  Both are robust to a stray bright pixel far from the centre, which sets Algorithm 1's largest
  distance: one pixel barely moves an annulus's mode.
* **isophote ellipticity peak** (:func:`isophote_bar_length`): photutils' ``isophote.Ellipse`` fit;
  the bar's half length is the semi-major axis of the most elongated isophote inside ``r_max_px``.

Lengths are FULL lengths (twice the half length) in pixels of the array given (map pixels for a
64-px map; see :mod:`galaxy_xai.units` for 424-px pixels and kpc). Shapes: one map ``(H, W)``, a
stack ``(n, H, W)``; profiles ``(n, k)`` over ``k`` radii.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

START_ELLIPTICITIES = (0.2, 0.5)
START_ANGLES_DEG = (0.0, 45.0, 90.0, 135.0)
"""Ellipticities and position angles the isophote fit starts from, in turn, until one fits."""

GOOD_STOP_CODES = (0, 1, 2)
"""photutils isophote stop codes kept: converged, some samples off the image, or out of iterations;
3-5 mean too few samples or a failed fit, whose ellipticity means nothing."""

FOURIER_RULES = ("amplitude", "phase")
"""How the m = 2 profile's bar end is found: where A2 falls below a fraction of its peak, or
where the m = 2 phase stops being constant."""


@dataclass(frozen=True)
class FourierProfiles:
    """m = 2 profiles of a stack of maps around one centre.

    ``radius_px`` (k,): centre of each 1-px annulus; ``amplitude`` (n, k): A2 = |I2| / I0 (0 where an
    annulus holds no weight); ``phase_rad`` (n, k): the m = 2 position angle arg(I2) / 2, in
    (-pi/2, pi/2]; ``weight`` (n, k): I0, the annulus's total weight.
    """

    radius_px: np.ndarray
    amplitude: np.ndarray
    phase_rad: np.ndarray
    weight: np.ndarray


def _as_stack(maps: np.ndarray) -> np.ndarray:
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"maps: expected (H, W) or (n, H, W) with no empty axis, got shape {np.shape(maps)}")
    if not np.isfinite(arr).all():
        raise ValueError("maps: expected finite values")
    if (arr < 0).any():
        raise ValueError("maps: expected non-negative weights (a saliency map or a sky-subtracted image)")
    return arr


def fourier_profiles(maps: np.ndarray, r_max_px: float | None = None, m: int = 2) -> FourierProfiles:
    """The m-th azimuthal Fourier mode of each map in 1-px annuli around the array centre.

    ``maps``: non-negative (n, H, W) or (H, W); ``r_max_px``: outermost radius (default: half the
    shorter side, the largest circle inside the array). Vectorised: one matrix product per stack.
    """
    stack = _as_stack(maps)
    n, height, width = stack.shape
    r_max = min(height, width) / 2 if r_max_px is None else float(r_max_px)
    if not r_max > 1:
        raise ValueError(f"r_max_px = {r_max_px}: expected more than 1 pixel")
    rows, cols = np.mgrid[0:height, 0:width]
    dy, dx = (height - 1) / 2 - rows, cols - (width - 1) / 2  # y up, x right
    radius = np.hypot(dx, dy).ravel()
    theta = np.arctan2(dy, dx).ravel()
    inside = radius < r_max
    annulus = np.floor(radius[inside]).astype(np.int64)
    k = int(annulus.max()) + 1
    one_hot = np.zeros((k, int(inside.sum())))
    one_hot[annulus, np.arange(annulus.size)] = 1.0
    flat = stack.reshape(n, -1)[:, inside]
    weight = flat @ one_hot.T
    mode = flat @ (one_hot * np.exp(1j * m * theta[inside])).T
    with np.errstate(invalid="ignore", divide="ignore"):
        amplitude = np.where(weight > 0, np.abs(mode) / weight, 0.0)
    return FourierProfiles(np.arange(k) + 0.5, amplitude, np.angle(mode) / m, weight)


def _crossing(radius: np.ndarray, values: np.ndarray, level: np.ndarray, start: np.ndarray, below: bool) -> np.ndarray:
    """First radius after index ``start`` (n,) where ``values`` (n, k) crosses ``level`` (n,),
    interpolated linearly between the last inside and the first outside annulus; the last radius if
    it never does."""
    n, k = values.shape
    index = np.arange(k)[None, :]
    outside = (values < level[:, None]) if below else (values > level[:, None])
    outside &= index > start[:, None]
    found = outside.any(axis=1)
    j = np.where(found, np.argmax(outside, axis=1), k - 1)
    i = np.maximum(j - 1, 0)
    rows = np.arange(n)
    v0, v1 = values[rows, i], values[rows, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(np.where(v0 != v1, (v0 - level) / (v0 - v1), 0.0), 0.0, 1.0)
    interpolated = radius[i] + t * (radius[j] - radius[i])
    return np.where(found, interpolated, radius[-1])


def fourier_bar_length(
    maps: np.ndarray,
    rule: str = "amplitude",
    fraction: float = 0.5,
    max_phase_deg: float = 15.0,
    r_min_px: float = 1.0,
    r_max_px: float | None = None,
) -> np.ndarray:
    """Full bar length in pixels (n,) from the m = 2 profile of each map (n, H, W) or (H, W).

    The peak of A2 is searched at radii >= ``r_min_px`` (the central pixels have too few samples
    for a mode). ``rule="amplitude"``: the bar ends where A2 first falls below ``fraction`` x its
    peak beyond the peak; ``rule="phase"``: where the m = 2 phase first differs from the phase at
    the peak by more than ``max_phase_deg``. Maps with no m = 2 signal (A2 = 0 everywhere) give NaN.
    """
    if rule not in FOURIER_RULES:
        raise ValueError(f"rule = {rule!r}: expected one of {', '.join(FOURIER_RULES)}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction = {fraction}: expected a number in (0, 1)")
    if not 0 < max_phase_deg < 90:
        raise ValueError(f"max_phase_deg = {max_phase_deg}: expected degrees in (0, 90)")
    prof = fourier_profiles(maps, r_max_px)
    amplitude = np.where(prof.radius_px[None, :] >= r_min_px, prof.amplitude, 0.0)
    peak = np.argmax(amplitude, axis=1)
    rows = np.arange(len(peak))
    peak_amplitude = amplitude[rows, peak]
    if rule == "amplitude":
        half = _crossing(prof.radius_px, amplitude, fraction * peak_amplitude, peak, below=True)
    else:
        turn = np.abs(np.angle(np.exp(2j * (prof.phase_rad - prof.phase_rad[rows, peak][:, None])))) / 2
        half = _crossing(prof.radius_px, np.degrees(turn), np.full(len(peak), max_phase_deg), peak, below=False)
    return np.where(peak_amplitude > 0, 2.0 * half, np.nan)


def isophote_bar_length(image: np.ndarray, r_max_px: float, sma0_px: float | None = None) -> float:
    """Full bar length in pixels from the most elongated isophote of ``image`` (H, W) inside ``r_max_px``.

    Fits ellipses with photutils' ``isophote.Ellipse`` (centre fixed at the array centre, where the
    galaxy is) from ``sma0_px`` (default r_max_px / 4) outwards and inwards; returns twice the
    semi-major axis of the isophote of largest ellipticity with sma <= ``r_max_px``. NaN when the
    fit finds no isophote (e.g. a flat image).
    """
    from photutils.isophote import Ellipse, EllipseGeometry

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or not np.isfinite(image).all():
        raise ValueError(f"image: expected a finite 2-D array, got shape {image.shape}")
    height, width = image.shape
    sma0 = r_max_px / 4 if sma0_px is None else sma0_px
    isophotes = []
    # The fit starts from one guessed isophote and gives up when that one fails: try starting
    # shapes in turn (the bar's angle and elongation are unknown).
    for eps0, pa0 in itertools.product(START_ELLIPTICITIES, np.radians(START_ANGLES_DEG)):
        geometry = EllipseGeometry((width - 1) / 2, (height - 1) / 2, sma=sma0, eps=eps0, pa=pa0, fix_center=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # photutils warns for every isophote it cannot fit
            try:
                isophotes = Ellipse(image, geometry).fit_image(
                    sma0=sma0, minsma=1.0, maxsma=r_max_px, step=0.1, fix_center=True
                )
            except (ValueError, IndexError, RuntimeError, TypeError) as err:
                log.debug("isophote fit failed: %s", err)
                continue
        if len(isophotes):
            break
    if not len(isophotes):
        return float("nan")
    sma = np.asarray(isophotes.sma, dtype=np.float64)
    eps = np.asarray(isophotes.eps, dtype=np.float64)
    usable = np.isfinite(eps) & (sma > 0) & (sma <= r_max_px) & np.isin(isophotes.stop_code, GOOD_STOP_CODES)
    if not usable.any():
        return float("nan")
    return float(2.0 * sma[usable][np.argmax(eps[usable])])
