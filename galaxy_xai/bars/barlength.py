"""The study's bar-length measurements: which maps are measured, how, and with which setting.

Algorithm 1 itself is :mod:`galaxy_xai.bars.algorithm1`; this module holds what the study measures with
it and beside it. A measurement *setting* (:class:`Choice`) names:

* the map source (``map_source``): a model's map, :data:`MEAN_MAP` (the mean of the models' maps),
  :data:`MEAN_LENGTH` (the mean of the lengths measured on each model's map), or the image-only
  controls :data:`IMAGE_SOURCES`: :data:`IMAGE`, the grey input with its sky subtracted
  (:func:`image_maps`), :data:`IMAGE_RESIDUAL`, the input minus its axisymmetric part
  (:func:`residual_maps`), and :data:`IMAGE_HIGHPASS`, the input minus its blur (:func:`highpass_maps`):
  what Integrated Gradients' axisymmetric and blurred baselines leave to attribute;
* X_input: the map multiplied by the grey input first (:func:`maps_to_measure`);
* the estimator (:data:`ESTIMATORS`): ``algorithm1`` with its T_c and T_l, or ``fourier``, the radius
  where the map's m = 2 Fourier amplitude falls below a fraction of its peak
  (:func:`fourier_map_lengths`, after zeroing the map below a floor), which one stray pixel barely moves;
* the mask (:data:`MASKS`): ``none`` (the paper), or ``r90``, the map zeroed outside the galaxy's
  Petrosian R90 (20 px of a 64-px map of the 160-px crop) before renormalising, so a neighbour or a
  star in a corner cannot set the length.

:func:`grid_settings` lists the grid search's settings; :func:`setting_lengths` measures any list of
settings, sharing each measured map among them; the paper's configuration is estimators
``[algorithm1]`` and masks ``[none]``, whose lengths are exactly :func:`map_source_lengths`'.
A setting goes to and comes from the grid search's JSON (``metrics/gridsearch.json``) only through
:meth:`Choice.to_json` / :meth:`Choice.from_json`; :func:`read_choice` and :func:`read_settings` read
that file.

(The word "method" in this project means the explainer, ``xai.method``; the grid search's choice of
maps is the map source.)

Shapes: one map is ``(H, W)``; a stack is ``(n, H, W)``. Lengths are in pixels of the map (see
:mod:`galaxy_xai.units` for 424-px pixels and kpc).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from galaxy_xai import units
from galaxy_xai.bars import profiles
from galaxy_xai.bars.algorithm1 import bar_lengths_grid, check_linearity, scale_len_threshold, threshold_grid
from galaxy_xai.config import ESTIMATORS, MASKS, MEAN_SOURCES
from galaxy_xai.io import read_json
from galaxy_xai.xai.maps import normalise_maps, ring_means, within_radius

MEAN_MAP, MEAN_LENGTH = MEAN_SOURCES
"""Map source: Algorithm 1 (or Fourier) on the element-wise mean of the models' maps (``MEAN_MAP``), or the
mean of the lengths measured on each model's map (``MEAN_LENGTH``)."""

# --------------------------------------------------------------------------------------------------
# From stored maps to the maps the estimators measure: sources, X_input and the R90 mask

IMAGE = "image"
"""Source of the image-only control: the grey-scale model input, sky-subtracted, with no saliency."""

IMAGE_RESIDUAL = "image_residual"
"""Source of the image-only control: the positive part of the grey input minus its ring means, the
light that is not axisymmetric (bar, arms, neighbours), with no saliency. Integrated Gradients from
the axisymmetric baseline attributes exactly this light, so this is the control that says whether
the model adds anything to it."""

IMAGE_HIGHPASS = "image_highpass"
"""Source of the image-only control: the positive part of the grey input minus its Gaussian blur
(sigma ``highpass_sigma_px`` map pixels, Integrated Gradients' ``blur_sigma``), the fine structure a
blurred baseline leaves to attribute: the map a model whose gradient is +1 everywhere would give."""

IMAGE_SOURCES = (IMAGE, IMAGE_RESIDUAL, IMAGE_HIGHPASS)
"""The image-only sources: measured like the saliency maps, with no model."""

DEFAULT_HIGHPASS_SIGMA_PX = 4.0
"""The blur of :data:`IMAGE_HIGHPASS` in map pixels unless told (``xai.integrated_gradients.blur_sigma``'s default)."""

ALGORITHM1, FOURIER = ESTIMATORS
NO_MASK, R90_MASK = MASKS

NO_BAR_LENGTH_PX = 1.0
"""Length given to a map with no m = 2 signal at all (a constant map): Algorithm 1's floor."""


def maps_to_measure(maps: np.ndarray, grey: np.ndarray, x_input: bool, radius_px: float | None = None) -> np.ndarray:
    """The maps an estimator is run on: float32 (n, H, W) in [0, 1].

    ``maps``: saliency (n, H, W); ``grey``: the grey-scale model input (n, H, W) in [0, 1]. With
    ``x_input`` the map is multiplied by the input (the paper's X_input); with ``radius_px`` (map
    pixels, e.g. the galaxy's R90) everything outside that circle is zeroed, so a neighbour or a star
    in a corner cannot set the length. Every measured map is then min-max renormalised so the
    0.5-1.0 threshold scan means the same for every map source: a no-op for stored maps already spanning
    [0, 1]; the published code did not rescale the averaged map or the product, whose maxima can fall
    well below 1.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if x_input:
        maps = maps * np.asarray(grey, dtype=np.float32)
    if radius_px is not None:
        maps = np.where(within_radius(maps.shape[-2:], radius_px), maps, np.float32(0.0))
    return normalise_maps(maps)


def image_maps(grey: np.ndarray) -> np.ndarray:
    """The image-only source: each grey-scale input (n, H, W) minus its sky (the median of its
    border pixels), clipped at 0 so it weighs pixels as a saliency map does; float32 (n, H, W)."""
    return profiles.subtract_sky(grey, clip=True).astype(np.float32)


def residual_maps(grey: np.ndarray) -> np.ndarray:
    """The :data:`IMAGE_RESIDUAL` source: max(0, grey - its ring means) of grey-scale inputs (n, H, W),
    float32 (n, H, W): the non-axisymmetric light (:func:`galaxy_xai.xai.maps.ring_means`; the sky, a
    constant, cancels)."""
    grey = np.asarray(grey, dtype=np.float32)
    return np.maximum(grey - ring_means(grey), np.float32(0.0))


def highpass_maps(grey: np.ndarray, sigma_px: float) -> np.ndarray:
    """The :data:`IMAGE_HIGHPASS` source: max(0, grey - its Gaussian blur of ``sigma_px`` map pixels)
    of grey-scale inputs (n, H, W), float32 (n, H, W): the bar's ridge, arms, stars; the smooth disk
    and bulge (and the sky) cancel. The blur is Integrated Gradients' ``blur`` baseline's, so this
    is what that baseline leaves for a map to attribute."""
    grey = np.asarray(grey, dtype=np.float32)
    blurred = ndimage.gaussian_filter(grey, sigma=(0, sigma_px, sigma_px), mode="reflect")
    return np.maximum(grey - blurred, np.float32(0.0))


DERIVED_SOURCES = (MEAN_MAP, *IMAGE_SOURCES)
"""Map sources whose map no single model's heatmap file holds: it is computed from the models' maps or the input."""


def derived_map(
    source: str, model_maps: Mapping[str, np.ndarray], grey: np.ndarray, highpass_sigma_px: float = DEFAULT_HIGHPASS_SIGMA_PX
) -> np.ndarray:
    """The map (n, H, W) of a :data:`DERIVED_SOURCES` source: :data:`MEAN_MAP`, the mean of every map
    of ``model_maps`` ({model: (n, H, W)}), or an image source of the grey inputs ``grey`` (n, H, W)
    (:func:`image_maps`, :func:`residual_maps`, :func:`highpass_maps` with ``highpass_sigma_px``)."""
    if source == MEAN_MAP:
        if not model_maps:
            raise ValueError(f"map source {MEAN_MAP!r}: expected at least one model's maps")
        return np.mean([np.asarray(maps, dtype=np.float32) for maps in model_maps.values()], axis=0)
    if source == IMAGE:
        return image_maps(grey)
    if source == IMAGE_RESIDUAL:
        return residual_maps(grey)
    if source == IMAGE_HIGHPASS:
        return highpass_maps(grey, highpass_sigma_px)
    raise ValueError(f"map source {source!r}: expected one of {', '.join(DERIVED_SOURCES)}")


def source_maps(
    model_maps: Mapping[str, np.ndarray], grey: np.ndarray, source: str, highpass_sigma_px: float = DEFAULT_HIGHPASS_SIGMA_PX
) -> list[np.ndarray]:
    """The raw maps a map source measures, each (n, H, W): every model's for :data:`MEAN_LENGTH` (whose
    lengths are then averaged), else the one map of the source (a model's own, or :func:`derived_map`)."""
    if source == MEAN_LENGTH:
        return [np.asarray(maps, dtype=np.float32) for maps in model_maps.values()]
    if source in DERIVED_SOURCES:
        return [derived_map(source, model_maps, grey, highpass_sigma_px)]
    if source not in model_maps:
        raise ValueError(f"map source {source!r}: expected one of {map_sources(list(model_maps))}")
    return [np.asarray(model_maps[source], dtype=np.float32)]


def fourier_map_lengths(maps: np.ndarray, fractions: Sequence[float], floor: float = 0.0) -> np.ndarray:
    """The ``fourier`` estimator: full lengths in map pixels (n, n_fractions) where the m = 2
    amplitude of each map (n, H, W) in [0, 1] falls below each fraction of its peak
    (:func:`galaxy_xai.bars.profiles.fourier_lengths`).

    ``floor`` (a fraction of the map's maximum, 1) is subtracted first and negatives set to 0: the
    faint speckle of a saliency map fills the outer annuli, where its m = 2 amplitude stays as high as
    the bar's and the length runs to the edge; above a floor an annulus beyond the bar is empty. A map
    with no m = 2 signal gets :data:`NO_BAR_LENGTH_PX`, as Algorithm 1 gives a map with no bar.
    """
    if not 0 <= floor < 1:
        raise ValueError(f"floor = {floor}: expected a fraction of the map's maximum in [0, 1)")
    above = np.clip(np.asarray(maps, dtype=np.float64) - floor, 0.0, None) if floor else maps
    lengths = profiles.fourier_lengths(above, fractions)
    return np.where(np.isnan(lengths), NO_BAR_LENGTH_PX, lengths)


def saliency_sources(models: Sequence[str]) -> list[str]:
    """The grid search's saliency map sources: each model, then :data:`MEAN_MAP` and :data:`MEAN_LENGTH`."""
    return [*models, MEAN_MAP, MEAN_LENGTH]


def map_sources(models: Sequence[str]) -> list[str]:
    """Every map source a setting can measure: the saliency sources, then the :data:`IMAGE_SOURCES` controls."""
    return [*saliency_sources(models), *IMAGE_SOURCES]


# --------------------------------------------------------------------------------------------------
# Measurement settings and the lengths of many settings at once


NOT_APPLICABLE = float("nan")
"""A parameter of a setting that its estimator does not use. One object: settings compare equal
field by field, and NaN equals only itself."""


def _is_nan(value: float) -> bool:
    return isinstance(value, float) and np.isnan(value)


@dataclass(frozen=True)
class Choice:
    """One measurement setting (the grid search's choice is one): the map source, X_input, the
    estimator with its parameters, and the mask.

    ``map_source``: a model, :data:`MEAN_MAP`, :data:`MEAN_LENGTH`, :data:`IMAGE` (never
    multiplied by the input: ``x_input`` is False) or :data:`IMAGE_RESIDUAL`; ``estimator`` one of :data:`ESTIMATORS`;
    ``mask`` one of :data:`MASKS`. Parameters that do not apply are NaN: ``corr_threshold`` (T_c)
    and ``len_threshold`` (T_l, in pixels of the paper's 224-px maps) are Algorithm 1's,
    ``fraction`` and ``floor`` the Fourier amplitude rule's (:func:`fourier_map_lengths`). ValueError
    on anything else.
    """

    map_source: str
    x_input: bool
    corr_threshold: float = NOT_APPLICABLE
    len_threshold: float = NOT_APPLICABLE
    estimator: str = ALGORITHM1
    mask: str = NO_MASK
    fraction: float = NOT_APPLICABLE
    floor: float = NOT_APPLICABLE

    def __post_init__(self) -> None:
        for name in ("corr_threshold", "len_threshold", "fraction", "floor"):
            value = float(getattr(self, name))
            object.__setattr__(self, name, NOT_APPLICABLE if np.isnan(value) else value)
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator = {self.estimator!r}: expected one of {', '.join(ESTIMATORS)}")
        if self.mask not in MASKS:
            raise ValueError(f"mask = {self.mask!r}: expected one of {', '.join(MASKS)}")
        if self.map_source == IMAGE and self.x_input:
            raise ValueError("map source image with x_input = true: the image is never multiplied by itself")
        algorithm1 = self.estimator == ALGORITHM1
        thresholds = (self.corr_threshold, self.len_threshold)
        fourier = (self.fraction, self.floor)
        if algorithm1 and not (
            all(np.isfinite(thresholds)) and self.len_threshold >= 0 and all(_is_nan(f) for f in fourier)
        ):
            raise ValueError(
                f"{self.estimator}: expected finite corr_threshold and len_threshold >= 0, fraction and floor NaN, "
                f"got {self.corr_threshold}, {self.len_threshold}, {self.fraction}, {self.floor}"
            )
        if not algorithm1 and not (0 < self.fraction < 1 and 0 <= self.floor < 1 and all(_is_nan(t) for t in thresholds)):
            raise ValueError(
                f"{self.estimator}: expected a fraction in (0, 1), a floor in [0, 1), corr_threshold and "
                f"len_threshold NaN, got {self.fraction}, {self.floor}, {self.corr_threshold}, {self.len_threshold}"
            )

    def len_threshold_px(self, map_px: int, crop_px: int | None) -> int | None:
        """T_l in pixels of this map (:func:`scale_len_threshold`); None for the Fourier estimator."""
        if self.estimator != ALGORITHM1:
            return None
        return scale_len_threshold(self.len_threshold, map_px, crop_px)

    def radius_px(self, map_px: int, crop_px: int | None) -> float | None:
        """Radius in map pixels outside which the map is zeroed (the galaxy's R90), or None."""
        return units.r90_map_px(map_px, crop_px) if self.mask == R90_MASK else None

    def models_needed(self, models: Sequence[str]) -> list[str]:
        """The models whose files this setting reads: its model, all of them for the mean sources,
        the first for the image sources (the grey input is stored in every file)."""
        if self.map_source in IMAGE_SOURCES:
            return list(models[:1])
        return [self.map_source] if self.map_source in models else list(models)

    def record(self, map_px: int, crop_px: int | None) -> dict:
        """The setting as a row of the grid table: the fields, then ``len_threshold_px`` (T_l in
        pixels of this map); NaN where a parameter does not apply."""
        len_px = self.len_threshold_px(map_px, crop_px)
        return {**asdict(self), "len_threshold_px": NOT_APPLICABLE if len_px is None else len_px}

    def to_json(self, map_px: int | None = None, crop_px: int | None = None) -> dict:
        """The setting as JSON writes it: the fields in order (keys ``map_source``, ``x_input``,
        ``corr_threshold``, ``len_threshold``, ``estimator``, ``mask``, ``fraction``, ``floor``), null
        where a parameter does not apply; given ``map_px``, then ``len_threshold_px`` as :meth:`record`.
        :meth:`from_json` reads it back."""
        record = asdict(self) if map_px is None else self.record(map_px, crop_px)
        return {key: None if _is_nan(value) else value for key, value in record.items()}

    @classmethod
    def from_json(cls, record: Mapping) -> Choice:
        """A setting from a dict with the fields of :class:`Choice` (:meth:`to_json`; extra keys
        ignored; missing ``estimator`` / ``mask`` are the paper's; missing or null parameters are NaN,
        except a Fourier setting's missing floor, 0)."""

        def number(key: str) -> float:
            value = record.get(key)
            return NOT_APPLICABLE if value is None else float(value)

        return cls(
            str(record["map_source"]),
            bool(record["x_input"]),
            number("corr_threshold"),
            number("len_threshold"),
            str(record.get("estimator", ALGORITHM1)),
            str(record.get("mask", NO_MASK)),
            number("fraction"),
            number("floor") if record.get("floor") is not None or record.get("estimator") != FOURIER else 0.0,
        )


def grid_settings(
    sources: Sequence[str],
    estimators: Sequence[str],
    x_inputs: Sequence[bool],
    masks: Sequence[str],
    corr_thresholds: Sequence[float],
    len_thresholds: Sequence[float],
    fractions: Sequence[float],
    floors: Sequence[float] = (0.0,),
) -> list[Choice]:
    """Every setting of the grid search, in table order: map source, estimator, X_input, mask, then T_c
    and T_l (T_l fastest) or floor and fraction (fraction fastest). :data:`IMAGE` is measured without
    X_input only."""
    out = []
    for source, estimator in itertools.product(sources, estimators):
        xs = [False] if source == IMAGE else list(dict.fromkeys(bool(x) for x in x_inputs))
        for x_input, mask in itertools.product(xs, masks):
            if estimator == ALGORITHM1:
                out += [
                    Choice(source, x_input, float(tc), float(tl), estimator, mask)
                    for tc, tl in itertools.product(corr_thresholds, len_thresholds)
                ]
            else:
                out += [
                    Choice(source, x_input, estimator=estimator, mask=mask, fraction=float(f), floor=float(floor))
                    for floor, f in itertools.product(floors, fractions)
                ]
    return out


@dataclass(frozen=True)
class _Group:
    """Settings that share a map source, an estimator, X_input and a mask, so one measured map serves
    all: their parameters form one grid. Lengths of a group: (n, n_Tc, n_Tl) over
    ``corr_thresholds`` x ``len_thresholds_px`` for Algorithm 1, (n, n_floors, n_fractions) over
    ``floors`` x ``fractions`` for Fourier."""

    map_source: str
    estimator: str
    x_input: bool
    mask: str
    corr_thresholds: tuple[float, ...] = ()
    len_thresholds_px: tuple[float, ...] = ()
    fractions: tuple[float, ...] = ()
    floors: tuple[float, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        if self.estimator == ALGORITHM1:
            return (len(self.corr_thresholds), len(self.len_thresholds_px))
        return (len(self.floors), len(self.fractions))


def _estimate(measured: np.ndarray, group: _Group, linearity: str) -> np.ndarray:
    if group.estimator == ALGORITHM1:
        return bar_lengths_grid(measured, group.corr_thresholds, group.len_thresholds_px, linearity)
    return np.stack([fourier_map_lengths(measured, group.fractions, floor) for floor in group.floors], axis=1)


def _group_lengths(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    groups: Sequence[_Group],
    radius_px: Mapping[str, float | None],
    linearity: str,
    chunk_size: int,
    progress: bool,
    highpass_sigma_px: float = DEFAULT_HIGHPASS_SIGMA_PX,
) -> dict[_Group, np.ndarray]:
    """Lengths in map pixels of every group, {group: (n, *group.shape)}.

    Galaxies are processed in chunks of ``chunk_size`` so memory stays small at 224 px. Within a
    chunk each measured map (source, X_input, mask) is made once and each model's lengths are
    estimated once, whether a model's own group or :data:`MEAN_LENGTH` asks for them.
    """
    check_linearity(linearity)
    models = list(model_maps)
    if not models and any(g.map_source not in IMAGE_SOURCES for g in groups):
        raise ValueError("model_maps: expected at least one model (only the image source needs none)")
    grey = np.asarray(grey)
    for name in models:
        if model_maps[name].shape != grey.shape:
            raise ValueError(f"maps of {name}: shape {model_maps[name].shape}, expected {grey.shape} like grey")
    unknown = sorted({g.map_source for g in groups} - set(map_sources(models)))
    if unknown:
        raise ValueError(f"map sources: unknown {unknown}; expected among {map_sources(models)}")
    every_model = any(g.map_source in (MEAN_MAP, MEAN_LENGTH) for g in groups)
    loaded = models if every_model else [m for m in models if m in {g.map_source for g in groups}]
    n = grey.shape[0]
    out = {g: np.empty((n, *g.shape)) for g in groups}
    for start in tqdm(range(0, n, chunk_size), desc="measuring", unit="chunk", disable=not progress):
        rows = slice(start, start + chunk_size)
        chunk = {name: np.asarray(model_maps[name][rows], dtype=np.float32) for name in loaded}
        lengths = _chunk_lengths(
            chunk, np.asarray(grey[rows], dtype=np.float32), models, groups, radius_px, linearity, highpass_sigma_px
        )
        for group in groups:
            out[group][rows] = lengths[group]
    return out


def _chunk_lengths(
    chunk: Mapping[str, np.ndarray],
    grey: np.ndarray,
    models: Sequence[str],
    groups: Sequence[_Group],
    radius_px: Mapping[str, float | None],
    linearity: str,
    highpass_sigma_px: float = DEFAULT_HIGHPASS_SIGMA_PX,
) -> dict[_Group, np.ndarray]:
    """:func:`_group_lengths` of one chunk of galaxies: ``chunk`` {model: (c, H, W)}, ``grey`` (c, H, W)."""
    measured: dict[tuple, np.ndarray] = {}
    estimated: dict[_Group, np.ndarray] = {}
    raws: dict[str, np.ndarray] = {}

    def raw(source: str) -> np.ndarray:
        """The source's map, computed once per chunk whatever the number of views (X_input x mask) on it."""
        if source not in raws:
            every = {m: chunk[m] for m in models} if source == MEAN_MAP else {}
            raws[source] = derived_map(source, every, grey, highpass_sigma_px) if source in DERIVED_SOURCES else chunk[source]
        return raws[source]

    def lengths(group: _Group, source: str) -> np.ndarray:
        key = replace(group, map_source=source)
        if key not in estimated:
            view = (source, group.x_input, group.mask)
            if view not in measured:
                measured[view] = maps_to_measure(raw(source), grey, group.x_input, radius_px[group.mask])
            estimated[key] = _estimate(measured[view], group, linearity)
        return estimated[key]

    return {
        group: np.mean([lengths(group, s) for s in (models if group.map_source == MEAN_LENGTH else [group.map_source])], axis=0)
        for group in groups
    }


def _radii(map_px: int, crop_px: int | None) -> dict[str, float | None]:
    return {NO_MASK: None, R90_MASK: units.r90_map_px(map_px, crop_px)}


def setting_lengths(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    settings: Sequence[Choice],
    crop_px: int | None,
    linearity: str = "abs_pearson",
    chunk_size: int = 64,
    progress: bool = False,
    highpass_sigma_px: float = DEFAULT_HIGHPASS_SIGMA_PX,
) -> np.ndarray:
    """Lengths in map pixels of the galaxies for each setting: (n, S), column s for ``settings[s]``.

    ``model_maps``: {model: (n, H, W)}, the same galaxies in the same order for every model;
    ``grey``: (n, H, W) model inputs; ``crop_px``: the crop (424-px pixels) the maps were made from,
    which sets T_l and R90 in map pixels. :data:`MEAN_LENGTH` averages the lengths of all models
    (for each setting), :data:`MEAN_MAP` measures the mean of all models' maps, :data:`IMAGE` the
    sky-subtracted input (:func:`image_maps`), :data:`IMAGE_RESIDUAL` its non-axisymmetric part
    (:func:`residual_maps`), :data:`IMAGE_HIGHPASS` its structure finer than ``highpass_sigma_px``
    (:func:`highpass_maps`). Settings sharing a measured map are measured together.
    """
    map_px = int(np.shape(grey)[-1])
    members: dict[tuple, list[int]] = {}
    for s, setting in enumerate(settings):
        members.setdefault((setting.map_source, setting.estimator, setting.x_input, setting.mask), []).append(s)
    groups = {}
    for key, columns in members.items():
        chosen = [settings[s] for s in columns]
        if key[1] == ALGORITHM1:
            tcs = tuple(sorted({c.corr_threshold for c in chosen}))
            tls = tuple(sorted({c.len_threshold_px(map_px, crop_px) for c in chosen}))
            groups[key] = _Group(*key, corr_thresholds=tcs, len_thresholds_px=tls)
        else:
            groups[key] = _Group(
                *key, fractions=tuple(sorted({c.fraction for c in chosen})), floors=tuple(sorted({c.floor for c in chosen}))
            )
    lengths = _group_lengths(
        model_maps, grey, list(groups.values()), _radii(map_px, crop_px), linearity, chunk_size, progress,
        highpass_sigma_px,
    )  # fmt: skip
    out = np.empty((np.shape(grey)[0], len(settings)))
    for key, columns in members.items():
        group, values = groups[key], lengths[groups[key]]
        for s in columns:
            c = settings[s]
            if group.estimator == ALGORITHM1:
                i = group.corr_thresholds.index(c.corr_threshold)
                j = group.len_thresholds_px.index(c.len_threshold_px(map_px, crop_px))
                out[:, s] = values[:, i, j]
            else:
                out[:, s] = values[:, group.floors.index(c.floor), group.fractions.index(c.fraction)]
    return out


def map_source_lengths(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    x_inputs: Sequence[bool],
    corr_thresholds: Sequence[float],
    len_thresholds_px: Sequence[float],
    linearity: str = "abs_pearson",
    sources: Sequence[str] | None = None,
    chunk_size: int = 64,
    progress: bool = False,
) -> dict[tuple[str, bool], np.ndarray]:
    """The paper's grid, Algorithm 1 on unmasked maps: {(map source, x_input): lengths in map pixels (n, n_Tc, n_Tl)}.

    ``len_thresholds_px``: T_l already scaled to this map size; ``sources`` defaults to
    :func:`saliency_sources`. The same measurement as :func:`setting_lengths`, in the paper's layout.
    """
    sources = saliency_sources(list(model_maps)) if sources is None else list(sources)
    tc, tl = threshold_grid(corr_thresholds, len_thresholds_px)
    groups = {
        (m, bool(x)): _Group(m, ALGORITHM1, bool(x), NO_MASK, tuple(tc), tuple(tl)) for m in sources for x in x_inputs
    }
    lengths = _group_lengths(
        model_maps, grey, list(groups.values()), _radii(1, None), linearity, chunk_size, progress
    )
    return {key: lengths[group] for key, group in groups.items()}


def _gridsearch_entry(path: str | Path, key: str):
    """``key`` of the gridsearch stage's JSON; ValueError naming the file if it is missing or unreadable."""
    expected = f"the gridsearch stage's JSON with a {key!r} entry"
    document = read_json(path, expected)
    if not isinstance(document, dict) or key not in document:
        raise ValueError(f"{path}: expected {expected}")
    return document[key]


def _setting(path: str | Path, key: str, record, models: Sequence[str]) -> Choice:
    try:
        choice = Choice.from_json(record)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected the gridsearch stage's JSON with a {key!r} entry ({err})") from None
    if choice.map_source not in map_sources(models):
        raise ValueError(f"{path}: {key} map_source {choice.map_source!r} is not one of {map_sources(models)}")
    return choice


def read_choice(path: str | Path, models: Sequence[str], key: str = "chosen") -> Choice:
    """The setting under ``key`` of the gridsearch stage's JSON (``chosen``: the saliency maps',
    ``chosen_image``: the image-only control's); ValueError naming the file if it is missing,
    malformed, or names a source that ``models`` cannot provide."""
    return _setting(path, key, _gridsearch_entry(path, key), models)


def read_settings(path: str | Path, models: Sequence[str], key: str = "best_per_estimator") -> list[tuple[Choice, dict]]:
    """The list of settings under ``key`` of the gridsearch stage's JSON, each with its whole record
    (validation scores included); ValueError naming the file as :func:`read_choice`."""
    entries = _gridsearch_entry(path, key)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list under {key!r}, got {type(entries).__name__}")
    return [(_setting(path, f"{key}[{i}]", record, models), record) for i, record in enumerate(entries)]


def measure_choice(
    model_maps: Mapping[str, np.ndarray],
    grey: np.ndarray,
    choice: Choice,
    crop_px: int | None,
    linearity: str = "abs_pearson",
    progress: bool = False,
) -> np.ndarray:
    """Lengths in map pixels (n,) of the galaxies in ``model_maps`` with one setting (:func:`setting_lengths`)."""
    return setting_lengths(model_maps, grey, [choice], crop_px, linearity, progress=progress)[:, 0]
