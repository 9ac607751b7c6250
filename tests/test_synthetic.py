"""The synthetic sky: real layout, decision tree, determinism, and bars drawn at their true length."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from galaxy_xai import units
from galaxy_xai.data import catalogue, galaxyzoo
from galaxy_xai.data.synthetic import population, render, volunteers
from galaxy_xai.data.synthetic.sky import write_sky
from stages import synthesize
from tests.fixtures import params_file

SIZES = dict(n_labelled=8, n_unlabelled=2, n_bars=5, n_coadd_repeats=2)


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """A tiny sky written by the stage (1 worker) and the same sky from write_sky (2 workers)."""
    root = tmp_path_factory.mktemp("sky")
    params = root / "params.yaml"
    params_file(params, {"seed": 11, "synthetic": {"n_labelled": 8, "n_unlabelled": 2, "n_bars": 5, "n_coadd_repeats": 2, "workers": 1}})
    synthesize.main(["--out", str(root / "one"), "--params", str(params)])
    write_sky(root / "two", seed=11, workers=2, **SIZES)
    return root


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_whatever_the_workers(sky):
    one, two = _files(sky / "one"), _files(sky / "two")
    assert one.keys() == two.keys()
    assert [k for k in one if one[k] != two[k]] == []
    assert not list(sky.glob(".*")), "temporary folders left behind"


def test_another_seed_gives_another_sky(tmp_path, sky):
    write_sky(tmp_path / "other", seed=12, workers=1, **SIZES)
    assert (tmp_path / "other" / catalogue.LABELS_CSV).read_bytes() != (
        sky / "one" / catalogue.LABELS_CSV
    ).read_bytes()


def test_real_layout_columns_and_id_types(sky):
    d = sky / "one"
    labels = pd.read_csv(d / catalogue.LABELS_CSV)
    assert list(labels.columns) == galaxyzoo.LABEL_COLUMNS
    assert labels["GalaxyID"].dtype == np.int64 and labels["GalaxyID"].between(100_000, 999_999).all()
    assert labels["GalaxyID"].is_monotonic_increasing and len(labels) == SIZES["n_labelled"]
    assert all(
        np.issubdtype(labels[c].dtype, np.number) for c in galaxyzoo.CLASS_COLUMNS
    )  # "0" columns read as int

    mapping = pd.read_csv(d / catalogue.GZ2_MAPPING_CSV)
    assert list(mapping.columns) == catalogue.GZ2_MAPPING_COLUMNS
    assert mapping["objid"].dtype == np.int64 and (mapping["objid"].astype(str).str.len() == 18).all()
    assert mapping["asset_id"].is_unique
    assert set(mapping["sample"]) <= {"original", "extra", "stripe82_coadd_1", "stripe82_coadd_2"}

    sample = pd.read_csv(d / catalogue.GZ2_SAMPLE_CSV)
    assert set(catalogue.GZ2_SAMPLE_REQUIRED) <= set(sample.columns)
    assert all(c == c.upper() for c in sample.columns) and len(sample) == SIZES["n_bars"]
    assert (sample["PETROR50_R"] < sample["PETROR90_R"]).all()

    hoyle = pd.read_csv(d / catalogue.HOYLE_CSV)
    assert list(hoyle.columns) == catalogue.HOYLE_COLUMNS
    assert hoyle["bar_meas"].between(3, 11).all() and hoyle["bar_meas"].dtype == np.int64
    assert set(hoyle["objid"]) == set(sample["OBJID"]) == set(mapping["objid"])

    names = {
        catalogue.TRAIN_IMAGES: labels["GalaxyID"],
        catalogue.GZ2_IMAGES: mapping["asset_id"],
    }
    for folder, ids in names.items():
        assert sorted(p.name for p in (d / folder).glob("*.jpg")) == sorted(f"{i}.jpg" for i in ids)
    assert len(list((d / catalogue.TEST_IMAGES).glob("*.jpg"))) == SIZES["n_unlabelled"]
    for path in list((d / catalogue.GZ2_IMAGES).glob("*.jpg"))[:3]:
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (424, 424))


def test_coadd_objids_repeat_with_their_own_images(sky):
    mapping = pd.read_csv(sky / "one" / catalogue.GZ2_MAPPING_CSV)
    repeated = mapping[mapping["objid"].duplicated(keep=False)]
    assert repeated["objid"].nunique() == SIZES["n_coadd_repeats"]
    for _, rows in repeated.groupby("objid"):
        primary, *coadds = sorted(rows["sample"])
        assert primary in {"original", "extra"} and coadds == ["stripe82_coadd_1", "stripe82_coadd_2"]
    images = [(sky / "one" / catalogue.GZ2_IMAGES / f"{a}.jpg").read_bytes() for a in repeated["asset_id"]]
    assert len(set(images)) == len(images), "a coadd is a new (deeper) image of the same galaxy"


def test_every_label_row_obeys_the_tree(sky):
    labels = pd.read_csv(sky / "one" / catalogue.LABELS_CSV)
    assert catalogue.tree_violation(labels[galaxyzoo.CLASS_COLUMNS].to_numpy()).max() <= 1e-6
    text = (sky / "one" / catalogue.LABELS_CSV).read_text().splitlines()[1]
    assert all(len(v.split(".")[-1]) <= 6 for v in text.split(",")[1:]), (
        "at most 6 decimals, as in the real file"
    )


def test_votes_obey_the_tree_for_many_galaxies():
    rng = np.random.default_rng(0)
    galaxies = [population.draw_galaxy(rng, "training") for _ in range(300)]
    probs = volunteers.answer_probabilities(volunteers.morphology_features(galaxies), rng)
    raw = volunteers.simulate_votes(probs, rng, n_volunteers=35)
    assert catalogue.tree_violation(raw).max() < 1e-12
    micro = volunteers.round_tree(raw)
    parsed = volunteers.format_micro(micro).astype(float)
    assert catalogue.tree_violation(parsed).max() <= 1e-6
    assert np.abs(parsed - raw).max() <= 4e-6


def test_round_tree_known_answer():
    row = np.zeros(37)
    index = {c: i for i, c in enumerate(galaxyzoo.CLASS_COLUMNS)}
    for column, value in {"Class1.1": 1 / 3, "Class1.2": 2 / 3, "Class6.2": 1.0}.items():
        row[index[column]] = value
    for column, value in {"Class2.2": 2 / 3, "Class3.2": 2 / 3, "Class4.2": 2 / 3, "Class5.2": 2 / 3}.items():
        row[index[column]] = value
    for column in ("Class7.1", "Class7.2", "Class7.3"):
        row[index[column]] = 1 / 9
    micro = volunteers.round_tree(row[None, :])[0]
    assert micro[index["Class1.1"]] + micro[index["Class1.2"]] == 1_000_000
    assert sorted(micro[[index[c] for c in ("Class7.1", "Class7.2", "Class7.3")]]) == [111111, 111111, 111111]
    assert list(volunteers.format_micro(np.array([0, 1_000_000, 383147, 50]))) == [
        "0",
        "1",
        "0.383147",
        "0.00005",
    ]


def test_volunteers_see_what_is_there():
    rng = np.random.default_rng(1)
    galaxies = [population.draw_galaxy(rng, "training") for _ in range(400)]
    m = volunteers.morphology_features(galaxies)
    votes = volunteers.simulate_votes(volunteers.answer_probabilities(m, rng), rng)
    col = {c: votes[:, i] for i, c in enumerate(galaxyzoo.CLASS_COLUMNS)}
    assert col["Class1.1"][m["smooth"] == 1].mean() > col["Class1.1"][m["smooth"] == 0].mean() + 0.3
    assert col["Class2.1"][m["edgeon"] == 1].mean() > 0.4 > col["Class2.1"][m["edgeon"] == 0].mean()
    disks = (m["smooth"] == 0) & (m["edgeon"] == 0)
    bar_share = col["Class3.1"] / np.maximum(col["Class2.2"], 1e-9)
    barred, unbarred = disks & (m["has_bar"] == 1), disks & (m["has_bar"] == 0)
    assert bar_share[barred].mean() > bar_share[unbarred].mean() + 0.25
    long_bright = m["bar_length_scaled"] * m["bar_fraction"]
    assert np.corrcoef(long_bright[barred], bar_share[barred])[0, 1] > 0.2
    spiral_share = col["Class4.1"] / np.maximum(col["Class2.2"], 1e-9)
    assert (
        spiral_share[disks & (m["has_arms"] == 1)].mean()
        > spiral_share[disks & (m["has_arms"] == 0)].mean() + 0.3
    )
    kinds = np.array([g.kind for g in galaxies])
    assert 0.25 < (kinds == "smooth").mean() < 0.45 and 0.05 < (kinds == "edgeon").mean() < 0.16


def test_truth_matches_the_catalogues(sky):
    d = sky / "one"
    truth = catalogue.read_truth(d)
    assert list(truth.columns) == catalogue.TRUTH_COLUMNS
    assert len(truth) == SIZES["n_labelled"] + SIZES["n_unlabelled"] + SIZES["n_bars"]
    gz2 = truth[truth["set"] == "gz2"].set_index("id")
    assert (gz2["has_bar"] == 1).all() and gz2["bar_length_px424"].notna().all()
    hoyle = pd.read_csv(d / catalogue.HOYLE_CSV).set_index("objid").loc[gz2.index]
    sample = pd.read_csv(d / catalogue.GZ2_SAMPLE_CSV).set_index("OBJID").loc[gz2.index]
    assert np.allclose(sample["PETROR90_R"], gz2["petror90_r"], rtol=1e-6)
    kpc_per_scaled = units.px424_to_kpc(units.scaled_to_px424(1.0), sample["PETROR90_R"], sample["REDSHIFT"])
    assert np.allclose(hoyle["length_avg"], hoyle["length_scaled"] * kpc_per_scaled, rtol=1e-5)
    true_kpc = units.px424_to_kpc(gz2["bar_length_px424"], gz2["petror90_r"], gz2["redshift"])
    assert np.allclose(gz2["bar_length_kpc"], true_kpc, rtol=1e-5)
    volunteer_factor = hoyle["length_scaled"] / units.px424_to_scaled(gz2["bar_length_px424"])
    assert (np.abs(np.log(volunteer_factor)) < 5 * population.VOLUNTEER_LOG_SIGMA).all()
    assert not np.allclose(volunteer_factor, 1.0), "the catalogue is noisy, the truth is not"
    no_bar = truth[truth["has_bar"] == 0]
    assert (
        no_bar[["bar_length_px424", "bar_length_kpc", "bar_angle_deg", "bar_axis_ratio"]].isna().all().all()
    )
    assert catalogue.read_truth(d.parent) is None


def test_bar_catalogue_matches_the_real_distribution():
    rng = np.random.default_rng(2)
    true = population.draw_bar_length_scaled(rng, 4000)
    measured = volunteers.volunteer_bar_measurements(true, np.full(4000, 0.25), rng)
    q10, q50, q90 = np.quantile(measured["length_scaled"], [0.1, 0.5, 0.9])
    assert abs(q50 - 0.45) < 0.02 and abs(q10 - 0.30) < 0.025 and abs(q90 - 0.66) < 0.035
    assert np.std(np.log(measured["length_scaled"] / true)) == pytest.approx(0.17, abs=0.01)
    assert 3 <= measured["bar_meas"].min() and measured["bar_meas"].max() <= 11
    assert np.mean(measured["bar_meas"] <= 5) > 0.85
    spread = np.median(measured["length_stdev_scaled"] / measured["length_scaled"])
    assert 0.1 < spread < 0.2  # real catalogue: 0.15
    assert np.median(measured["width_scaled"] / measured["length_scaled"]) == pytest.approx(0.25, abs=0.02)


def test_galaxy_r90_is_50_pixels():
    # Petrosian concentrations R90 / R50 of an exponential and a de Vaucouleurs profile (Strateva et al. 2001).
    r50, r90 = population.petrosian_radii(0.0, 4.0, 1.0, 1.0)
    assert r90 / r50 == pytest.approx(2.3, abs=0.05)
    r50, r90 = population.petrosian_radii(1.0, 4.0, 1.0, 1.0)
    assert r90 / r50 == pytest.approx(3.3, abs=0.15)
    assert population.petrosian_radii(0.3, 2.0, 6.0, 20.0)[1] == pytest.approx(
        2 * population.petrosian_radii(0.3, 2.0, 3.0, 10.0)[1], rel=1e-6
    )
    rng = np.random.default_rng(3)
    for _ in range(10):
        g = population.draw_galaxy(rng, "training")
        bulge_share = g.bulge_fraction / (1 - g.bar_fraction)
        if g.kind == "smooth":
            _, r90 = population.petrosian_radii(1.0, g.bulge_n, g.bulge_re_px, 1.0)
        else:
            _, r90 = population.petrosian_radii(bulge_share, g.bulge_n, g.bulge_re_px, g.disk_scale_px)
        assert r90 == pytest.approx(units.R90_PX, rel=1e-6)


def test_projection_of_a_bar_in_an_inclined_disk():
    # Along the line of nodes: full length, minor axis foreshortened; across it: foreshortened length.
    assert population.project_disk_ellipse(0.3, 0.0, 20.0, 0.5) == pytest.approx((1.0, 0.15, 20.0))
    assert population.project_disk_ellipse(0.3, 90.0, 20.0, 0.5) == pytest.approx((0.5, 0.6, 110.0))
    assert population.project_disk_ellipse(0.3, 30.0, 20.0, 1.0) == pytest.approx((1.0, 0.3, 50.0))
    rng = np.random.default_rng(6)
    for _ in range(20):
        g = population.draw_galaxy(rng, "gz2")
        assert 0 < g.bar_axis_ratio <= 1 and 0 <= g.bar_angle_deg < 180


def _face_on_barred(length_px: float, angle_deg: float, bar_n: float) -> population.Galaxy:
    return population.Galaxy(
        kind="disk",
        petror90_arcsec=15.0,
        petror50_arcsec=7.0,
        redshift=0.04,
        petromag_r=14.5,
        seeing_fwhm_arcsec=1.4,
        position_angle_deg=10.0,
        disk_axis_ratio=1.0,
        inclination_deg=0.0,
        disk_scale_px=13.0,
        disk_thickness=0.1,
        bulge_fraction=0.1,
        bulge_n=2.0,
        bulge_re_px=4.0,
        bar_length_px=length_px,
        bar_axis_ratio=0.3,
        bar_angle_deg=angle_deg,
        bar_n=bar_n,
        bar_fraction=0.25,
    )


def _profile(image: np.ndarray, angle_deg: float, radii: np.ndarray) -> np.ndarray:
    """Mean of the two sides of a cut through the image centre at position angle ``angle_deg``."""
    centre = (image.shape[0] - 1) / 2
    d_row, d_col = -math.cos(math.radians(angle_deg)), -math.sin(math.radians(angle_deg))
    both = [
        ndimage.map_coordinates(image, [centre + s * radii * d_row, centre + s * radii * d_col], order=1)
        for s in (1, -1)
    ]
    return np.mean(both, axis=0)


def _half_max_length(profile: np.ndarray, radii: np.ndarray) -> float:
    """Twice the outermost radius where ``profile`` is still above half its maximum (interpolated)."""
    level = 0.5 * profile.max()
    last = np.nonzero(profile >= level)[0].max()
    r0, r1, p0, p1 = radii[last], radii[last + 1], profile[last], profile[last + 1]
    return 2 * (r0 + (p0 - level) * (r1 - r0) / (p0 - p1))


@pytest.mark.parametrize(
    ("length_px", "angle_deg", "bar_n"), [(30.0, 30.0, 0.3), (45.0, 100.0, 0.3), (75.0, 160.0, 0.3)]
)
def test_bar_in_the_image_has_its_true_length(length_px, angle_deg, bar_n):
    """Measure the bar on a noise-free face-on render: cut along the bar minus the cut across it.

    The cut across the bar still holds the bar's centre, so the excess peaks a little below the
    bar's own peak: the simple method reads flat (n = 0.3) bars to ~5 %, rounder ends up to ~15 %
    long; the next test checks every bar index exactly.
    """
    g = _face_on_barred(length_px, angle_deg, bar_n)
    r_band = render.render_bands(g, None, arms=False, neighbours=False)[1]
    radii = np.arange(0, 150, 0.25)
    excess = _profile(r_band, angle_deg, radii) - _profile(r_band, angle_deg + 90, radii)
    # The angles are not symmetric under a flip, so a wrong orientation convention fails here too.
    assert _half_max_length(excess, radii) == pytest.approx(length_px, rel=0.12)


@pytest.mark.parametrize(("length_px", "bar_n"), [(25.0, 0.5), (50.0, 0.6), (90.0, 0.3)])
def test_bar_component_half_maximum_is_the_true_length(length_px, bar_n):
    """With and without the bar: their difference is the PSF-convolved bar, whose FWHM is its length."""
    g = _face_on_barred(length_px, 55.0, bar_n)
    with_bar = render.render_bands(g, None, arms=False, neighbours=False)[1]
    without = render.render_bands(g, None, arms=False, neighbours=False, components=("bulge", "disk"))[1]
    radii = np.arange(0, 150, 0.25)
    assert _half_max_length(_profile(with_bar - without, 55.0, radii), radii) == pytest.approx(
        length_px, rel=0.05
    )


def test_render_is_a_424_rgb_jpeg_and_noise_is_seeded():
    g = population.draw_galaxy(np.random.default_rng(4), "gz2")
    a, b = (render.render_bands(g, 99) for _ in range(2))
    assert a.shape == (3, 424, 424) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, render.render_bands(g, 100))
    rgb = render.compose_rgb(a)
    assert rgb.shape == (424, 424, 3) and rgb.dtype == np.uint8
    with Image.open(io.BytesIO(render.encode_jpeg(rgb, 90))) as image:
        assert (image.mode, image.size) == ("RGB", (424, 424))
    # Colours: an old bulge is redder than star-forming arms (i -> R, g -> B).
    assert (
        population.BULGE_COLOUR[2] / population.BULGE_COLOUR[0]
        > population.ARM_COLOUR[2] / population.ARM_COLOUR[0]
    )


def test_composite_is_astropys_lupton_rgb():
    from astropy.visualization import make_lupton_rgb

    g = population.draw_galaxy(np.random.default_rng(5), "training")
    bands = render.render_bands(g, 7)
    w = render.RGB_BAND_WEIGHTS
    expected = make_lupton_rgb(
        bands[2] * w[2],
        bands[1] * w[1],
        bands[0] * w[0],
        minimum=0,
        stretch=render.LUPTON_STRETCH,
        Q=render.LUPTON_Q,
    )
    difference = np.abs(render.compose_rgb(bands).astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-4  # float32 vs float64 rounding


def test_write_sky_replaces_the_old_folder(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    write_sky(out, seed=1, n_labelled=1, n_unlabelled=0, n_bars=1, n_coadd_repeats=0, workers=1)
    assert not (out / "stale.txt").exists() and (out / catalogue.TRUTH_CSV).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_labelled=899_999, n_unlabelled=2), "900000"),
        (dict(n_bars=2, n_coadd_repeats=3), "n_coadd_repeats"),
        (dict(workers=0), "workers"),
        (dict(jpeg_quality=0), "jpeg_quality"),
    ],
)
def test_bad_sizes_are_refused_before_any_work(tmp_path, kwargs, message):
    args = dict(seed=0, n_labelled=2, n_unlabelled=1, n_bars=2, n_coadd_repeats=1, workers=1) | kwargs
    with pytest.raises(ValueError, match=message):
        write_sky(tmp_path / "raw", **args)
    assert not any(tmp_path.iterdir())


def test_bad_galaxy_parameters_are_named():
    g = _face_on_barred(40.0, 0.0, 0.4)
    with pytest.raises(ValueError, match="kind"):
        population.Galaxy(**{**_fields(g), "kind": "spiral"})
    with pytest.raises(ValueError, match="bar_length_px"):
        population.Galaxy(**{**_fields(g), "bar_length_px": 500.0})
    with pytest.raises(ValueError, match="fractions"):
        population.Galaxy(**{**_fields(g), "bulge_fraction": 0.9})
    with pytest.raises(ValueError, match="components"):
        render.render_bands(g, components=("halo",))
    with pytest.raises(ValueError, match="set_name"):
        population.draw_galaxy(np.random.default_rng(0), "validation")


def _fields(g: population.Galaxy) -> dict:
    import dataclasses

    return {f.name: getattr(g, f.name) for f in dataclasses.fields(g)}
