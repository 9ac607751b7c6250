"""Unit conversions: known answers, inverses, shapes, and the cosmology against an independent integral."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from galaxy_xai import units

C_KM_S = 299_792.458
ARCSEC_RAD = np.pi / (180 * 3600)


def kpc_per_arcsec_by_integral(z: float, omega_m: float = 0.3) -> float:
    """Proper h^-1 kpc per arcsec in flat LambdaCDM, H0 = 100 h, from the comoving-distance integral."""
    hubble_distance_mpc = C_KM_S / 100.0
    comoving, _ = quad(lambda zz: 1.0 / np.sqrt(omega_m * (1 + zz) ** 3 + 1 - omega_m), 0.0, z)
    angular_diameter_mpc = hubble_distance_mpc * comoving / (1 + z)
    return angular_diameter_mpc * 1000.0 * ARCSEC_RAD


def test_length_scaled_is_one_hundredth_of_the_424px_length():
    # Hoyle lengths are in units of the Petrosian diameter, 2 x R90 = 100 px on every GZ2 image.
    assert units.R90_PX == 50
    np.testing.assert_allclose(units.scaled_to_px424([0.45, 0.3, 1.0]), [45.0, 30.0, 100.0])
    scaled = np.random.default_rng(0).uniform(0, 2, (3, 4))
    np.testing.assert_allclose(units.px424_to_scaled(units.scaled_to_px424(scaled)), scaled, rtol=1e-15)
    assert units.scaled_to_px424(scaled).shape == (3, 4)


def test_r90_spans_fifty_pixels_in_arcsec():
    r90_arcsec = np.array([5.0, 12.5, 30.0])
    np.testing.assert_allclose(units.px424_to_arcsec(50.0, r90_arcsec), r90_arcsec)
    np.testing.assert_allclose(units.px424_to_arcsec(424.0, 10.0), 84.8)  # 0.2 arcsec/px at R90 = 10"


@pytest.mark.parametrize(
    ("map_px", "crop_px", "per_map_px"), [(64, 212, 212 / 64), (224, None, 424 / 224), (424, None, 1.0)]
)
def test_map_pixels_to_424px_pixels(map_px, crop_px, per_map_px):
    lengths = np.array([[1.0, 10.0], [33.0, 0.0]])
    out = units.map_px_to_px424(lengths, map_px, crop_px)
    assert out.shape == lengths.shape
    np.testing.assert_allclose(out, lengths * per_map_px)


@pytest.mark.parametrize("z", [0.01, 0.05, 0.1, 0.3])
def test_kpc_per_arcsec_matches_the_distance_integral(z):
    assert units.kpc_per_arcsec(z) == pytest.approx(kpc_per_arcsec_by_integral(z), rel=1e-6)


def test_kpc_per_arcsec_known_values():
    # Hubble's law at tiny z: D_A ~ cz / H0 = 2.998 h^-1 Mpc at z = 0.001 -> 0.01453 h^-1 kpc/arcsec.
    assert units.kpc_per_arcsec(0.001) == pytest.approx(C_KM_S * 0.001 / 100 * 1000 * ARCSEC_RAD, rel=2e-3)
    # z = 0.05, H0 = 70, Omega_m = 0.3 gives 0.977 kpc/arcsec (e.g. Wright's cosmology calculator);
    # in h^-1 kpc that is 0.977 x 0.7.
    assert units.kpc_per_arcsec(0.05) == pytest.approx(0.977 * 0.7, rel=1e-3)


def test_kpc_per_arcsec_is_vectorised_and_rejects_bad_redshifts():
    z = np.array([[0.02, 0.04], [0.08, 0.16]])
    out = units.kpc_per_arcsec(z)
    assert out.shape == z.shape
    assert np.all(np.diff(out.ravel()) > 0)  # grows with z below z ~ 1.6
    for bad in (0.0, -0.1, np.nan, [0.05, np.inf]):
        with pytest.raises(ValueError, match="redshift"):
            units.kpc_per_arcsec(bad)


def test_the_kpc_chain_is_the_product_of_its_steps():
    rng = np.random.default_rng(1)
    length_map_px = rng.uniform(1, 40, 5)
    r90_arcsec, z = rng.uniform(5, 20, 5), rng.uniform(0.01, 0.1, 5)
    px424 = units.map_px_to_px424(length_map_px, 64, 212)
    expected = px424 * 0.02 * r90_arcsec * units.kpc_per_arcsec(z)
    np.testing.assert_allclose(units.px424_to_kpc(px424, r90_arcsec, z), expected, rtol=1e-12)
    np.testing.assert_allclose(
        units.map_px_to_kpc(length_map_px, 64, 212, r90_arcsec, z), expected, rtol=1e-12
    )
    # A bar of length_scaled s in a galaxy of R90 arcsec is 2 s R90 arcsec long.
    np.testing.assert_allclose(
        units.px424_to_kpc(units.scaled_to_px424(0.45), r90_arcsec, z),
        2 * 0.45 * r90_arcsec * units.kpc_per_arcsec(z),
        rtol=1e-12,
    )
