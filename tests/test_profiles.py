"""Known answers of the classical (profile-based) bar lengths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from galaxy_xai.bars import algorithm1, profiles
from tests.oracle import ideal_bar_maps


def test_a_pure_m2_pattern_has_its_amplitude_and_phase():
    """I = 1 + a cos 2(theta - phi): A2 = a / 2 and phase phi in every annulus (away from the centre)."""
    size, a, phi = 65, 0.6, np.radians(30)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    theta = np.arctan2(-yy, xx)
    prof = profiles.fourier_profiles(1 + a * np.cos(2 * (theta - phi)))
    ring = (prof.radius_px > 5) & (prof.radius_px < 30)
    # One-pixel annuli sample the pattern unevenly: each is within a few per cent, their mean exact.
    np.testing.assert_allclose(prof.amplitude[0, ring], a / 2, atol=0.03)
    assert abs(prof.amplitude[0, ring].mean() - a / 2) < 0.003
    np.testing.assert_allclose(prof.phase_rad[0, ring], phi, atol=0.06)
    assert abs(prof.phase_rad[0, ring].mean() - phi) < 0.005


def test_a_round_map_has_no_m2_and_no_length():
    size = 33
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    blob = np.exp(-(xx**2 + yy**2) / 20.0)
    # The centre pixel alone (annulus 0) has a direction; every ring around it is round.
    assert profiles.fourier_profiles(blob).amplitude[:, 1:].max() < 1e-12
    assert np.isnan(profiles.fourier_bar_length(np.zeros((16, 16))))[0]


@pytest.mark.parametrize("rule", profiles.FOURIER_RULES)
def test_fourier_lengths_track_ideal_bars(rule):
    maps, truth = ideal_bar_maps(120, 64, np.random.default_rng(3))
    lengths = profiles.fourier_bar_length(maps, rule=rule)
    assert spearmanr(lengths, truth)[0] > 0.95
    assert 0.7 < np.median(lengths / truth) < 1.6


def test_fourier_length_ignores_a_stray_pixel_that_breaks_the_largest_distance():
    """One bright pixel in a corner sets Algorithm 1's length; an annulus's m = 2 mode barely moves."""
    maps, truth = ideal_bar_maps(80, 64, np.random.default_rng(5))
    stray = maps.copy()
    stray[:, 2, 2] = 1.0
    fourier = profiles.fourier_bar_length(stray)
    isolated = algorithm1.bar_lengths_grid(stray, [0.6], [6], "elongation")[:, 0, 0]
    assert spearmanr(fourier, truth)[0] > 0.95
    assert spearmanr(isolated, truth)[0] < spearmanr(fourier, truth)[0] - 0.1
    np.testing.assert_allclose(fourier, profiles.fourier_bar_length(maps), rtol=0.1)


def test_fourier_length_is_rotation_invariant_under_quarter_turns():
    maps, _ = ideal_bar_maps(20, 48, np.random.default_rng(7))
    np.testing.assert_allclose(
        profiles.fourier_bar_length(maps), profiles.fourier_bar_length(np.rot90(maps, axes=(1, 2))), rtol=1e-9
    )


def test_bad_inputs_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="non-negative"):
        profiles.fourier_profiles(-np.ones((8, 8)))
    with pytest.raises(ValueError, match="finite"):
        profiles.fourier_profiles(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="rule"):
        profiles.fourier_bar_length(np.ones((8, 8)), rule="bogus")
    with pytest.raises(ValueError, match="fraction"):
        profiles.fourier_bar_length(np.ones((8, 8)), fraction=1.5)


def test_isophote_length_of_an_elliptical_galaxy_with_a_bar():
    """An exponential disk plus a bar of half length 12 px: the most elongated isophote lies inside
    the bar's end (the ellipticity peak is known to underestimate bars somewhat)."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    disk = np.exp(-np.hypot(xx, yy) / 8.0)
    bar = 0.5 * np.exp(-((np.abs(xx) / 12.0) ** 4 + (yy / 3.5) ** 2))
    length = profiles.isophote_bar_length(disk + bar, r_max_px=28)
    assert 12 < length < 30, length
    assert np.isnan(profiles.isophote_bar_length(np.zeros((32, 32)), r_max_px=12))


def test_fourier_lengths_of_several_fractions_share_one_profile():
    maps, _ = ideal_bar_maps(30, 64, np.random.default_rng(9))
    lengths = profiles.fourier_lengths(maps, [0.3, 0.5, 0.7])
    for k, fraction in enumerate((0.3, 0.5, 0.7)):
        np.testing.assert_array_equal(lengths[:, k], profiles.fourier_bar_length(maps, fraction=fraction))
    # A lower fraction of the peak is reached farther out.
    assert (lengths[:, 0] >= lengths[:, 1]).all() and (lengths[:, 1] >= lengths[:, 2]).all()
    with pytest.raises(ValueError, match="fraction"):
        profiles.fourier_lengths(maps, [0.5, 0.0])


def test_subtract_sky_removes_the_median_of_the_border():
    image = np.full((5, 5), 2.0)
    image[0, 0] = image[4, 4] = 50.0  # a star on the edge does not move the median of 16 border pixels
    image[2, 2] = 7.0
    image[1, 1] = 1.0
    assert profiles.border_pixels(image[None]).shape == (1, 16)
    out = profiles.subtract_sky(image)
    assert out[2, 2] == 5.0 and out[1, 1] == -1.0 and out[3, 3] == 0.0
    clipped = profiles.subtract_sky(np.stack([image, image + 3.0]), clip=True)
    np.testing.assert_array_equal(clipped[0], clipped[1])
    assert clipped[0, 1, 1] == 0.0 and clipped.min() == 0.0
    with pytest.raises(ValueError, match="H, W >= 2"):
        profiles.border_pixels(np.ones((1, 1, 5)))


def test_isophote_lengths_of_a_stack_do_not_depend_on_the_processes():
    size = 48
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    disk = np.exp(-np.hypot(xx, yy) / 6.0)
    images = np.stack([disk + 0.5 * np.exp(-((np.abs(xx) / half) ** 4 + (yy / 3.0) ** 2)) for half in (6.0, 10.0, 14.0)])
    serial = profiles.isophote_bar_lengths(images, r_max_px=20)
    np.testing.assert_array_equal(profiles.isophote_bar_lengths(images, r_max_px=20, workers=2), serial)
    assert np.isfinite(serial).all() and serial[0] < serial[2]
