"""One typed, validated configuration object built from ``params.yaml``.

Every stage calls :func:`load_config` first, so a typo, a wrong type, an out-of-range value, a
missing key or a broken rule between keys stops the run before any heavy work, with a message
naming the key and what was expected::

    ConfigError: params.yaml: xai.smoothgrad.noise = 2.0: expected a number in [0, 1]

The dataclasses below are the params reference: each field's ``help`` metadata is what
docs/params.md lists. The values live in ``params.yaml`` (and ``configs/paper.yaml``), which give
every key: the code only validates, and a key left out is an error, never a silent default. (The
dataclasses' own defaults serve code and tests that build one section directly; a params file never
falls back on them.) Nothing else in the package reads ``params.yaml``; the config object is passed down.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from galaxy_xai.data.galaxyzoo import CLASS_COLUMNS
from galaxy_xai.units import IMAGE_PX, PAPER_MAP_PX, scale_len_threshold


class ConfigError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


def _f(
    default: Any,
    help: str,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple | None = None,
    allow_empty: bool = False,
) -> Any:
    """A dataclass field with its documentation, an inclusive numeric range and allowed values (a
    list must have an item unless ``allow_empty``)."""
    meta = {"help": help, "lo": lo, "hi": hi, "choices": choices, "allow_empty": allow_empty}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


MIN_INPUT_PX: dict[str, int] = {
    "vgg16": 32,
    "resnet50v2": 32,
    "xception": 71,
    "vgg_small": 16,
    "resnet_small": 16,
    "xception_small": 16,
}
"""Smallest model input side (pixels) each architecture accepts: keras.applications' limits for the
paper's backbones, the downsampling of the small variants. The config checks ``images.size_px``
against it; :mod:`galaxy_xai.models.architectures` builds its registry from it."""

ARCHITECTURES = tuple(MIN_INPUT_PX)

MAX_GALAXY_IDS = 900_000
"""GalaxyIDs are 6-digit integers (100000-999999): the most galaxies a synthetic sky can name."""

ATTRIBUTIONS = ("abs_gradient", "input_x_gradient")
"""How gradients become a saliency map: the paper's channel maximum of |gradient|, or the positive
part of the channel sum of input x gradient (see :mod:`galaxy_xai.xai.explainers`)."""

METHODS = ("smoothgrad", "vanilla", "gradcam", "smoothgrad_sq", "vargrad", "integrated_gradients", "occlusion", "gradcam_pp", "scorecam", "layercam")
"""Explainers (``xai.method``), see :mod:`galaxy_xai.xai.explainers` (its EXPLAINERS lists them in this order)."""

SYMMETRIES = (1, 4, 8)
"""Orientations SmoothGrad's samples average over: none (paper), quarter turns, quarter turns and flips."""

LINEARITIES = ("abs_pearson", "elongation")
"""Algorithm 1's stopping rule: the paper's |Pearson r| of the kept pixels, or the rotation-invariant
elongation (see :mod:`galaxy_xai.bars.barlength`)."""

WEIGHTS = (None, "imagenet")
"""Initial weights of a model: random (no network needed) or ImageNet (downloaded by Keras)."""

DISTRIBUTE = ("auto", "none", "mirrored", "multi_worker")
"""tf.distribute strategies (see :mod:`galaxy_xai.distribute`): auto (multi_worker if TF_CONFIG names
several tasks, else mirrored if several GPUs), one device, MirroredStrategy (the GPUs of one machine),
MultiWorkerMirroredStrategy (several machines, configured by TF_CONFIG)."""


@dataclass(frozen=True)
class DataConfig:
    path: str = _f("data/raw", "folder in the real Kaggle/GZ2/Hoyle layout (the synthetic sky by default)")


@dataclass(frozen=True)
class SyntheticConfig:
    n_labelled: int = _f(2000, "labelled galaxies (training_solutions_rev1.csv + images)", 1, 10_000_000)
    n_unlabelled: int = _f(200, "unlabelled Kaggle-test-style images", 0, 10_000_000)
    n_bars: int = _f(300, "barred galaxies of the Hoyle-style bar catalogue (GZ2 images)", 1, 10_000_000)
    n_coadd_repeats: int = _f(10, "GZ2 objids repeated under a stripe82_coadd_* sample", 0, 10_000_000)
    workers: int = _f(2, "rendering processes (output bytes do not depend on it)", 1, 256)
    jpeg_quality: int = _f(90, "JPEG quality of the written images", 50, 100)


@dataclass(frozen=True)
class PrepareConfig:
    test_fraction: float = _f(0.10, "labelled galaxies held out as the morphology test split", 0.0, 0.9)
    val_fraction: float = _f(0.05, "labelled galaxies used for validation (the paper's 5%)", 0.0, 0.9)
    xai_val_fraction: float = _f(1 / 3, "bar-catalogue galaxies in the XAI validation split (paper 1/3)", 0.05, 0.95)
    control_train_fraction: float = _f(0.64, "bar-catalogue galaxies to train the control model on", 0.05, 0.9)
    control_val_fraction: float = _f(0.16, "bar-catalogue galaxies to validate the control model on", 0.01, 0.9)
    tree_tolerance: float = _f(1e-3, "largest decision-tree violation accepted in a label row", 0.0, 1.0)
    check_images: bool = _f(True, "decode every JPEG and drop the corrupt ones")


@dataclass(frozen=True)
class ImagesConfig:
    crop_px: int | None = _f(160, "centre crop in 424-px pixels before resizing; null keeps the whole image", 16, 424)
    size_px: int = _f(64, "side of the model input in pixels (paper: 224)", 16, 1024)
    rotation: bool = _f(True, "random rotations 0-360 deg (reflection fill) on the training split")
    flip: bool = _f(True, "random horizontal and vertical flips on the training split")
    shift: float = _f(0.05, "random shifts as a fraction of the image side", 0.0, 0.5)
    brightness_min: float = _f(0.7, "lowest random brightness factor", 0.0, 10.0)
    brightness_max: float = _f(1.3, "highest random brightness factor", 0.0, 10.0)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = _f("vgg_small", f"architecture, one of {', '.join(ARCHITECTURES)}", choices=ARCHITECTURES)
    epochs: int = _f(30, "maximum epochs (early stopping may end sooner)", 1, 10_000)
    batch_size: int = _f(32, "training batch size", 1, 4096)
    learning_rate: float = _f(1e-3, "initial Adam learning rate", 1e-7, 1.0)
    weights: str | None = _f(None, "null (random init, no network) or 'imagenet' (downloads)", choices=WEIGHTS)
    seed_offset: int = _f(0, "added to train.seed for this model: entries of one arch with different offsets form a seed ensemble", 0, 1_000_000)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = _f(42, "seeds model initialisation, shuffling and augmentation of every CNN (the sky, the splits and the SmoothGrad noise use the top-level seed): change it to see what a conclusion owes to one training run", 0, 2**31 - 1)
    lr_patience: int = _f(5, "ReduceLROnPlateau patience in epochs (factor 0.5)", 1, 1000)
    stop_patience: int = _f(10, "EarlyStopping patience in epochs (best weights restored)", 1, 1000)
    distribute: str = _f("auto", "auto (multi_worker if TF_CONFIG names several tasks, else mirrored if several GPUs), none, mirrored (GPUs of one machine) or multi_worker (machines named by TF_CONFIG)", choices=DISTRIBUTE)
    mixed_precision: bool = _f(False, "train in mixed_float16 (GPU)")
    bar_weight: float = _f(1.0, "loss weight of the bar question's answers (Class3.1, Class3.2) in the morphology models' MSE, each other vote fraction weighing 1: 1 is the paper's plain MSE, 5 asks the models to learn bars first (their twins use it too; the control CNN has one output)", 0.0, 1000.0)


@dataclass(frozen=True)
class SmoothGradConfig:
    samples: int = _f(96, "SmoothGrad samples N (paper: 256); 0 gives the vanilla map", 0, 100_000)
    noise: float = _f(0.05, "S_noise: sigma as a fraction of each image's value range", 0.0, 1.0)
    batch_size: int = _f(256, "noisy copies per gradient batch (bounds peak memory)", 1, 1_000_000)
    symmetries: int = _f(8, "orientations the samples also average over: 1 (paper), 4 quarter turns, 8 with flips", choices=SYMMETRIES)


ESTIMATORS = ("algorithm1", "fourier")
"""How a bar length is read off a map: Algorithm 1 of the paper (thresholds T_c, T_l) or the radius
where the map's m = 2 Fourier amplitude falls to a fraction of its peak (see :mod:`galaxy_xai.bars.barlength`)."""

MASKS = ("none", "r90")
"""What is measured of a map: all of it, or only the pixels within the galaxy's Petrosian R90."""

MEAN_SOURCES = ("mean_map", "mean_length")
"""The saliency map sources that combine the models (:data:`galaxy_xai.bars.barlength.MEAN_MAP`, ``MEAN_LENGTH``)."""


MODEL_KINDS = ("morphology", "random_weights", "permuted_labels")
"""The models whose maps are made and measured: the trained morphology models and their two
randomisation twins (Adebayo et al. 2018; stage ``twins``): every learnt weight re-drawn, and the
same recipe trained on permuted vote fractions. Folders ``models/<kind>/`` and ``data/heatmaps/<kind>/``."""

MORPHOLOGY = MODEL_KINDS[0]
TWINS = MODEL_KINDS[1:]


@dataclass(frozen=True)
class GridConfig:
    estimators: list[str] = _f(list(ESTIMATORS), f"bar-length estimators searched, among {', '.join(ESTIMATORS)} (paper: algorithm1)", choices=ESTIMATORS)
    mask: list[str] = _f(list(MASKS), "none: measure the whole map (paper); r90: zero the map outside the galaxy's Petrosian R90 first", choices=MASKS)
    x_input: list[bool] = _f([False, True], "multiply the map by the grey-scale input before measuring")
    corr_threshold: list[float] = _f([0.5, 0.6, 0.7, 0.8, 0.9], "T_c: linearity above which the bar is isolated (paper: 0.7-0.9 by 0.05)", 0.0, 1.0)
    len_threshold: list[int] = _f([10, 20, 30, 40, 50], "T_l: pixel-count floor, in pixels of the paper's 224-px maps of the whole image (scaled to the area of our map pixels)", 1, 1_000_000)
    fourier_fraction: list[float] = _f([0.3, 0.5, 0.7], "fourier estimator: the bar ends where the m = 2 amplitude falls below this fraction of its peak", 0.01, 0.99)
    fourier_floor: list[float] = _f([0.0, 0.2, 0.3, 0.4], "fourier estimator: the map below this fraction of its maximum is set to 0 first (speckle fills the outer annuli)", 0.0, 0.95)
    prefer_map_source: str | None = _f("mean_length", "the saliency choice keeps this map source (a model, mean_map or mean_length) unless another beats its best setting on validation by a paired bootstrap 95% interval above 0; null: the plain best score")
    prefer_estimator: str | None = _f("algorithm1", "both choices (saliency and image-only) keep this estimator unless another beats its best setting on validation by a paired bootstrap 95% interval above 0; null: the plain best score", choices=(None, *ESTIMATORS))
    gate: list[str] = _f(["random_weights"], "twins a saliency setting's lengths must beat on validation (rho_image, paired bootstrap 95% interval above 0) to be chosen: the model-attributable part; []: no gate (the paper)", choices=TWINS, allow_empty=True)


@dataclass(frozen=True)
class RotationConfig:
    galaxies: int = _f(20, "test galaxies measured again after turning the image (rotation stability)", 2, 100_000)
    angles_deg: list[float] = _f([0, 45, 90, 135], "rotations in degrees (counter-clockwise) of each galaxy", -360.0, 360.0)


IG_BASELINES = ("blur", "black", "sky", "axisymmetric")
"""Integrated Gradients' reference image: the image Gaussian-blurred, all zeros, each channel's median
(the sky), or each channel's ring means (its axisymmetric part)."""

CONTROL_TARGETS = ("catalogue", "truth")
"""What the control CNN learns (``control.target``): see :mod:`galaxy_xai.models.control`."""


@dataclass(frozen=True)
class IntegratedGradientsConfig:
    steps: int = _f(8, "Integrated Gradients: path steps m (trapezoid rule, m + 1 gradients per image and orientation)", 1, 10_000)
    baseline: str = _f("axisymmetric", "Integrated Gradients' reference: axisymmetric (the image averaged around circles about its centre: no bar, arms or neighbours), blur (Gaussian-blurred image), black or sky (channel median)", choices=IG_BASELINES)
    blur_sigma: float = _f(4.0, "Integrated Gradients: sigma of the blur baseline in map pixels", 0.01, 1024.0)
    symmetries: int = _f(4, "Integrated Gradients: orientations averaged over: 1, 4 quarter turns, 8 with flips", choices=SYMMETRIES)


@dataclass(frozen=True)
class OcclusionConfig:
    patch: int = _f(8, "occlusion: side of the square patch in map pixels (filled with the channel median)", 1, 1024)
    stride: int = _f(4, "occlusion: step between patches in map pixels (at most the patch)", 1, 1024)


@dataclass(frozen=True)
class CamConfig:
    grid_px: int | None = _f(None, "class-activation maps (gradcam, gradcam_pp, scorecam, layercam): the feature map of this many pixels a side they weigh (the model's last layer of that grid; 16 or 32 at 64 px input); null: the last conv grid (Grad-CAM's)", 1, 4096)

    def __post_init__(self) -> None:
        if self.grid_px is not None and self.grid_px & (self.grid_px - 1):
            raise ConfigError(f"grid_px = {self.grid_px}: expected a power of 2 (the models halve their grid at each stage)")


@dataclass(frozen=True)
class XaiConfig:
    method: str = _f("smoothgrad", f"explainer: {', '.join(METHODS)}", choices=METHODS)
    target: str = _f("Class3.1", "Galaxy Zoo answer explained (Class3.1: bar)", choices=tuple(CLASS_COLUMNS))
    contrast: str | None = _f(None, "an answer whose pre-activation score is subtracted from the target's (Class3.2: explain 'bar' rather than 'no bar'); null: the target alone (paper)", choices=(None, *CLASS_COLUMNS))
    attribution: str = _f("input_x_gradient", "how gradients become a map: abs_gradient (paper: channel max of abs) or input_x_gradient (positive part of input x gradient)", choices=ATTRIBUTIONS)
    linearity: str = _f("elongation", "Algorithm 1 stopping rule: abs_pearson (paper) or elongation (rotation-invariant)", choices=LINEARITIES)
    permutations: int = _f(1000, "shuffles for the rho null baseline", 1, 10_000_000)
    bootstrap: int = _f(1000, "resamples of the galaxies for bootstrap confidence intervals", 100, 10_000_000)
    smoothgrad: SmoothGradConfig = field(default_factory=SmoothGradConfig)
    integrated_gradients: IntegratedGradientsConfig = field(default_factory=IntegratedGradientsConfig)
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
    cam: CamConfig = field(default_factory=CamConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    rotation: RotationConfig = field(default_factory=RotationConfig)


@dataclass(frozen=True)
class HeatmapConfig:
    shards: list[int] = _f([0], "heatmap shards per model: the indices 0, 1, ..., n - 1 of the n heatmap_shard stages "
                           "(a list because DVC's matrix needs one); n > 1 splits the bar catalogue into n contiguous "
                           "blocks that separate machines can compute, merged by the heatmap stage into the same maps", 0, 100_000)
    distribute: str = _f("auto", "tf.distribute strategy of each heatmap stage's gradient batches, values as train.distribute "
                         "(the maps do not depend on it, so no stage lists it)", choices=DISTRIBUTE)


@dataclass(frozen=True)
class ControlConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(arch="xception_small", epochs=60))
    folds: int = _f(5, "cross-fitting folds of the control CNN: each bar galaxy is predicted by the model of its fold, "
                    "trained on the others; fold 0 is the paper's single split's test set", 2, 20)
    target: str = _f("catalogue", "what the control CNN learns: catalogue (the Hoyle volunteers' length, the paper's control) or truth "
                     "(the true length, synthetic sky only: the supervised ceiling of what the images tell)", choices=CONTROL_TARGETS)


@dataclass(frozen=True)
class ExplainersConfig:
    model: str | None = _f(None, "explainers stage: the model (a key of models) every explainer is compared on; null: the first model")
    galaxies: int = _f(64, "explainers stage: test galaxies with a known bar (a seeded pick) every explainer explains", 4, 100_000)
    methods: list[str] = _f(list(METHODS), "explainers stage: the explainers compared (Score-CAM costs a forward pass per channel of the last conv layer per galaxy: 160 for vgg_small, 512 for VGG16, 2,048 for ResNet50V2 / Xception)", choices=METHODS)
    deletion_steps: int = _f(16, "explainers stage: steps of the deletion and insertion curves", 1, 1024)
    figure_galaxies: int = _f(4, "explainers stage: galaxies shown under every explainer in plots/explainers.png", 1, 12)
    cascade_galaxies: int = _f(
        8, "explainers stage: galaxies (the first of the pick) explained after each step of the cascading "
        "randomisation (every learnt layer, output first); 0: no cascade", 0, 100_000)


DOWNSAMPLES = (1, 2, 4)
"""How many model-input pixels a side of one segmentation-mask pixel spans (``segmentation.downsample``)."""


@dataclass(frozen=True)
class SegmentationConfig:
    filters: list[int] = _f(
        [16, 32, 64], "segment stage: U-Net filters per level, shallowest first (each level after the first halves "
        "the mask side; Walmsley & Spindler 2023 segment bars with a U-Net, the upper reference)", 1, 1024)
    downsample: int = _f(
        2, "segment stage: the masks have images.size_px / downsample pixels a side (the U-Net average-pools its "
        "input first)", choices=DOWNSAMPLES)
    epochs: int = _f(50, "segment stage: maximum epochs (early stopping may end sooner)", 1, 10_000)
    batch_size: int = _f(32, "segment stage: training batch size", 1, 4096)
    learning_rate: float = _f(4e-3, "segment stage: Adam learning rate", 1e-7, 1.0)
    stop_patience: int = _f(15, "segment stage: EarlyStopping patience in epochs on the validation loss (best weights restored)", 1, 1000)
    seed: int = _f(42, "segment stage: seeds the U-Net's initialisation, shuffling and augmentation", 0, 2**31 - 1)


@dataclass(frozen=True)
class LimitsConfig:
    warn_hours: float = _f(
        1.0, "check_params warns when its estimate of the whole run (every stage from nothing, on the 2-core CPU "
        "it is calibrated on; docs/pipeline.md) is longer than this many hours", 0.0, 1e6)
    max_hours: float | None = _f(
        24.0, "check_params refuses a run estimated longer than this many hours, before any stage starts; "
        "null: no limit (the switch for a long run on purpose, or on GPUs, where the CPU estimate does not apply)",
        0.0, 1e6)
    worker_timeout_s: float = _f(
        300.0, "multi_worker (train.distribute, heatmap.distribute): seconds to wait for every worker TF_CONFIG "
        "names before stopping with the address of the missing one", 1.0, 86_400.0)


@dataclass(frozen=True)
class Config:
    seed: int = _f(42, "seeds the synthetic sky, the splits, the SmoothGrad noise and the resamples of the statistics (training: train.seed)", 0, 2**31 - 1)
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    xai: XaiConfig = field(default_factory=XaiConfig)
    heatmap: HeatmapConfig = field(default_factory=HeatmapConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    explainers: ExplainersConfig = field(default_factory=ExplainersConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)


# ---------------------------------------------------------------------------------------------
# Generic validation: walks the dataclass fields, so adding a param is adding one field above.


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, key: str, meta: dict) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:  # X | None: X's message (with its range), "or null"
            try:
                return _convert(value, others[0], key, meta)
            except ConfigError as err:
                raise ConfigError(f"{err} or null") from None
        for arg in others:
            try:
                return _convert(value, arg, key, meta)
            except ConfigError:
                pass
        raise ConfigError(f"{key} = {value!r}: expected {_type_name(tp)}")
    if origin is list:
        if not isinstance(value, list) or not (value or meta.get("allow_empty")):
            raise ConfigError(f"{key} = {value!r}: expected a {'' if meta.get('allow_empty') else 'non-empty '}list")
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{key}[{i}]", meta) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a mapping")
        _, item_tp = typing.get_args(tp)
        return {str(k): _convert(v, item_tp, f"{key}.{k}", {}) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key} = {value!r}: expected a finite number")
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: expected a string")
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, (int, float)) and (
        (lo is not None and value < lo) or (hi is not None and value > hi)
    ):
        raise ConfigError(f"{key} = {value!r}: expected {_type_name(tp)} in [{lo}, {hi}]")
    return value


def _missing_key(key: str, f: dataclasses.Field, tp: Any) -> ConfigError:
    """The error for a key a params file leaves out: what it is and where its value belongs."""
    what = f.metadata.get("help") or ("a section" if dataclasses.is_dataclass(tp) else _type_name(tp))
    return ConfigError(
        f"{key}: missing key ({what}); a params file gives every key, with no default in the code: "
        "copy it from the committed params.yaml (docs/params.md lists them all)"
    )


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix or "the top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)  # YAML keys may be true/1, not only strings
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{key}: unknown key; allowed keys of {where}: {', '.join(fields)}")
    missing = [name for name in fields if name not in raw]
    if missing:
        raise _missing_key(f"{prefix}.{missing[0]}" if prefix else missing[0], fields[missing[0]], hints[missing[0]])
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        value = _convert(raw[name], hints[name], key, dict(f.metadata))
        choices = f.metadata.get("choices")
        # A list's choices constrain each item (e.g. xai.grid.estimators).
        items = [(f"{key}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [(key, value)]
        for item_key, item in items:
            if choices is not None and item not in choices:
                allowed = ", ".join("null" if c is None else str(c) for c in choices)
                raise ConfigError(f"{item_key} = {item!r}: expected one of {allowed}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def check_synthetic_sizes(n_labelled: int, n_unlabelled: int, n_bars: int, n_coadd_repeats: int) -> None:
    """The synthetic sky's cross-key rules (counts of galaxies); raise ConfigError naming the keys."""
    if n_labelled + n_unlabelled > MAX_GALAXY_IDS:
        raise ConfigError(
            f"synthetic.n_labelled + synthetic.n_unlabelled = {n_labelled + n_unlabelled}: "
            f"expected at most {MAX_GALAXY_IDS} (GalaxyIDs are 6-digit integers)"
        )
    if n_coadd_repeats > n_bars:
        raise ConfigError(
            f"synthetic.n_coadd_repeats = {n_coadd_repeats}: expected at most synthetic.n_bars = {n_bars} "
            "(each repeat is one of the bar-catalogue galaxies)"
        )


def _check_explainer(cfg: Config) -> None:
    """Settings the explainers need: enough noise samples, an occlusion patch that fits, a CAM grid a model has."""
    xai = cfg.xai
    fewest = {"smoothgrad_sq": 1, "vargrad": 2}.get(xai.method, 0)
    if xai.smoothgrad.samples < fewest:
        raise ConfigError(
            f"xai.smoothgrad.samples = {xai.smoothgrad.samples}: xai.method = {xai.method} needs at least {fewest}"
        )
    grid = xai.cam.grid_px
    if grid is not None and grid > cfg.images.size_px // 2:
        # Every architecture's stem halves the input, so no feature map is finer than that.
        raise ConfigError(
            f"xai.cam.grid_px = {grid}: expected at most images.size_px / 2 = {cfg.images.size_px // 2} (the finest feature map)"
        )
    if xai.method == "occlusion":
        patch, stride = xai.occlusion.patch, xai.occlusion.stride
        if stride > patch or patch > cfg.images.size_px:
            raise ConfigError(
                f"xai.occlusion: stride = {stride}, patch = {patch}: expected stride <= patch <= images.size_px = {cfg.images.size_px}"
            )


def _check_model_inputs(cfg: Config) -> None:
    """``images.size_px`` is at most the crop's pixels and at least every architecture's minimum."""
    size, crop = cfg.images.size_px, cfg.images.crop_px
    # Upsampling adds no detail, only cost: SmoothGrad's memory grows as size_px^2 (a 1024-px input
    # of the whole image took over 14 GB for one small model and was killed).
    if size > (IMAGE_PX if crop is None else crop):
        source = (f"the whole image (images.crop_px = null) is {IMAGE_PX} px" if crop is None
                  else f"the crop spans images.crop_px = {crop} image pixels")
        raise ConfigError(
            f"images.size_px = {size}: expected at most {IMAGE_PX if crop is None else crop}: {source}, "
            "and a larger model input only interpolates them (memory grows as size_px^2)"
        )
    named = [(f"models.{name}", m) for name, m in cfg.models.items()] + [("control.model", cfg.control.model)]
    for where, model in named:
        need = MIN_INPUT_PX[model.arch]
        if size < need:
            raise ConfigError(
                f"images.size_px = {size}: {where}.arch = {model.arch} needs an input of at least {need} px"
            )


def _check_explainers_study(cfg: Config) -> None:
    """The explainers stage's model is one of ``models``; its figure and its cascade use at most its galaxies."""
    ex = cfg.explainers
    if ex.model is not None and ex.model not in cfg.models:
        raise ConfigError(f"explainers.model = {ex.model!r}: expected one of the models: {', '.join(cfg.models)}")
    if not ex.methods or len(set(ex.methods)) != len(ex.methods):
        raise ConfigError(f"explainers.methods = {ex.methods}: expected one or more distinct explainers of {', '.join(METHODS)}")
    for key in ("figure_galaxies", "cascade_galaxies"):
        if getattr(ex, key) > ex.galaxies:
            raise ConfigError(f"explainers.{key} = {getattr(ex, key)}: expected at most explainers.galaxies = {ex.galaxies}")


def _check_grid_preference(cfg: Config) -> None:
    """The preferred map source and estimator of the grid search are among those it searches."""
    grid = cfg.xai.grid
    sources = [*cfg.models, *MEAN_SOURCES]
    if grid.prefer_map_source is not None and grid.prefer_map_source not in sources:
        raise ConfigError(
            f"xai.grid.prefer_map_source = {grid.prefer_map_source!r}: expected null or a saliency map source: {', '.join(sources)}"
        )
    if grid.prefer_estimator is not None and grid.prefer_estimator not in grid.estimators:
        raise ConfigError(
            f"xai.grid.prefer_estimator = {grid.prefer_estimator!r}: expected null or one of xai.grid.estimators: "
            f"{', '.join(grid.estimators)}"
        )


def max_len_threshold(map_px: int, crop_px: int | None) -> int:
    """The largest T_l (pixels of the paper's 224-px maps of the whole image) whose scaled value
    (:func:`galaxy_xai.units.scale_len_threshold`) is below the ``map_px`` x ``map_px`` pixels of a map.

    A larger floor exceeds every candidate count, so Algorithm 1 would stop at its first threshold
    on every map: the bar is never isolated, yet the setting would be scored and could be chosen.
    """
    crop = IMAGE_PX if crop_px is None else crop_px
    most = int(map_px * map_px / (map_px / PAPER_MAP_PX * IMAGE_PX / crop) ** 2) + 2
    while most > 0 and scale_len_threshold(most, map_px, crop_px) >= map_px * map_px:
        most -= 1
    return most


def _check_pixel_sizes(cfg: Config) -> None:
    """Thresholds and lengths in map pixels fit the maps of ``images.size_px`` pixels."""
    size, crop = cfg.images.size_px, cfg.images.crop_px
    grid = cfg.xai.grid
    if "algorithm1" in grid.estimators:
        most = max_len_threshold(size, crop)
        for i, t_l in enumerate(grid.len_threshold):
            if t_l > most:
                raise ConfigError(
                    f"xai.grid.len_threshold[{i}] = {t_l}: expected at most {most}: T_l is scaled from the paper's "
                    f"224-px maps of the whole image to {scale_len_threshold(t_l, size, crop)} pixels of our "
                    f"{size} x {size} maps (images.size_px = {size}, images.crop_px = {crop}), which have {size * size}: "
                    "Algorithm 1 would stop at its first threshold on every map"
                )
    sigma = cfg.xai.integrated_gradients.blur_sigma
    if sigma > size:
        raise ConfigError(
            f"xai.integrated_gradients.blur_sigma = {sigma!r}: expected at most images.size_px = {size} map pixels "
            "(a wider blur is the image's flat mean)"
        )


def _check_segmentation(cfg: Config) -> None:
    """The U-Net's deepest level keeps a pixel: ``images.size_px / segmentation.downsample`` is at least
    2^(levels - 1) (the mask side, rounded down to a multiple of it: :func:`galaxy_xai.models.unet.map_side_px`)."""
    seg, size = cfg.segmentation, cfg.images.size_px
    step = 2 ** (len(seg.filters) - 1)
    if size // seg.downsample < step:
        raise ConfigError(
            f"segmentation.filters = {seg.filters}, segmentation.downsample = {seg.downsample}: images.size_px = {size} "
            f"/ downsample must be at least 2^(levels - 1) = {step} (the U-Net halves the mask side at each level after "
            "the first)"
        )


def _check_heatmap(cfg: Config) -> None:
    """``heatmap.shards`` names each shard once, in order: 0, 1, ..., n - 1."""
    shards = cfg.heatmap.shards
    if shards != list(range(len(shards))):
        raise ConfigError(
            f"heatmap.shards = {shards}: expected the shard indices 0, 1, ..., n - 1 in order, e.g. [0, 1, 2, 3] for 4 shards"
        )


SPLIT_NEEDS = {
    "test_fraction": "the predict stage scores Table 1 on the morphology test split",
    "val_fraction": "the train stage stops early on the morphology validation split",
}
"""Why each morphology split fraction must be above 0 (the bar-catalogue fractions have positive minima)."""


def _check_splits(p: PrepareConfig) -> None:
    """Every split gets a positive fraction, and the fractions of one table leave room for each other."""
    for key, why in SPLIT_NEEDS.items():
        if getattr(p, key) <= 0:
            raise ConfigError(f"prepare.{key} = {getattr(p, key)!r}: expected a number above 0: {why}")
    if p.test_fraction + p.val_fraction >= 1:
        raise ConfigError("prepare.test_fraction + prepare.val_fraction: expected a sum below 1")
    if p.control_train_fraction + p.control_val_fraction >= 1:
        raise ConfigError(
            "prepare.control_train_fraction + prepare.control_val_fraction: expected a sum below 1"
        )
    if 1 - p.control_train_fraction - p.control_val_fraction > 1 - p.xai_val_fraction + 1e-9:
        raise ConfigError(
            "prepare.control_*_fraction: the control test split must fit inside the XAI test split "
            f"(1 - xai_val_fraction = {1 - p.xai_val_fraction:.3f})"
        )


def _check(cfg: Config) -> None:
    """Rules that involve several keys."""
    s = cfg.synthetic
    check_synthetic_sizes(s.n_labelled, s.n_unlabelled, s.n_bars, s.n_coadd_repeats)
    _check_splits(cfg.prepare)
    im = cfg.images
    if im.brightness_min > im.brightness_max:
        raise ConfigError("images.brightness_min: expected at most images.brightness_max")
    if not cfg.models:
        raise ConfigError("models: expected at least one model, e.g. models: {vgg_small: {arch: vgg_small}}")
    for name in cfg.models:
        if not name.replace("_", "").isalnum():
            raise ConfigError(f"models.{name}: expected a name of letters, digits and underscores")
    _check_model_inputs(cfg)
    _check_pixel_sizes(cfg)
    _check_explainer(cfg)
    _check_explainers_study(cfg)
    _check_grid_preference(cfg)
    _check_heatmap(cfg)
    _check_segmentation(cfg)


def config_from_dict(raw: dict, source: str = "params") -> Config:
    """Validate a params mapping and return the typed :class:`Config`."""
    try:
        cfg = _build(Config, raw, "")
        _check(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a mapping key given twice: plain YAML keeps the last one silently,
    so a second ``xai:`` block would replace the first."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # ``<<: *anchor`` merges defaults that explicit keys may override
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # construct_mapping reports it
        line = key_node.start_mark.line + 1
        if key in first_line:
            raise ConfigError(
                f"line {line}: duplicate key {key!r} (first given on line {first_line[key]}); "
                "give each key once (YAML would silently keep the last)"
            )
        first_line[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def read_params_text(path: Path) -> str:
    """The text of a params file; ConfigError naming the file and the first bad byte if not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: byte {err.start} (0x{data[err.start]:02x}, line {line}) "
            f"is not valid UTF-8 ({err.reason}); save the file as UTF-8"
        ) from None


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate ``params.yaml`` (UTF-8, every key once)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the project root)")
    text = read_params_text(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return config_from_dict(raw or {}, source=str(path))


def params_reference() -> list[tuple[str, str, str]]:
    """(key, default, help) for every leaf parameter, for the params reference (docs/params.md)."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], key + ".")
            elif "help" in f.metadata:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                rows.append((key, "null" if default is None else repr(default), f.metadata["help"]))

    walk(Config, "")
    walk(ModelConfig, "models.<name>.")
    return rows


def _value_at(cfg: Config, key: str) -> Any:
    """The value of a dotted key in ``cfg`` (``models.<name>.*`` keys: the first model's)."""
    node: Any = cfg
    for part in key.split("."):
        node = next(iter(node.values())) if part == "<name>" else getattr(node, part)
    return node


def params_markdown(cfg: Config) -> str:
    """docs/params.md: every key with its value in ``cfg`` (the committed params.yaml) and meaning.

    ``python -m galaxy_xai.config > docs/params.md`` regenerates it; a test keeps the two equal.
    """
    lines = [
        "# Params reference",
        "",
        "[Back to the README](../README.md)",
        "",
        "Every key of `params.yaml`, with its value in the committed file (`models.<name>` rows: the first "
        "model's) and its meaning, generated from `galaxy_xai/config.py` by `python -m galaxy_xai.config > "
        "docs/params.md`. `check_params` validates them all before any stage works: an unknown or missing key "
        "(the values live in params.yaml, the code has no defaults), a wrong type, an out-of-range value, a "
        "duplicate key or a broken cross-key rule stops `dvc repro` with `params.yaml: <key> = <value>: expected "
        "...`; then it estimates the run's time and memory (`limits`, docs/pipeline.md).",
        "",
        "| key | in params.yaml | meaning |",
        "|---|---|---|",
    ]
    for key, _, help_text in params_reference():
        value = _value_at(cfg, key)
        lines.append(f"| `{key}` | `{'null' if value is None else repr(value)}` | {help_text} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(params_markdown(load_config()), end="")
