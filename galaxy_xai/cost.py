"""How long a run will take and how much memory it needs, estimated from the params before any stage.

``check_params`` calls :func:`check_budget` after the config is valid: the time of every stage of a
``dvc repro`` from nothing and the peak memory of the largest ones, from the sizes the params imply
(galaxies, epochs, explainer passes, resamples), on the machine the costs were measured on. It logs
the estimate, warns past ``limits.warn_hours``, refuses past ``limits.max_hours`` (``null`` lets a
long run start: the documented switch) and warns when a stage may need more memory than the machine
has. It also refuses what the counts make impossible on the synthetic sky (an empty split, more
explainer galaxies or heatmap shards than test galaxies), which would otherwise stop a stage hours in.

Calibration: the default run on this project's 2-core CPU (AMD EPYC with AVX2), stage by stage in
``records/default-cpu2.json`` (``stage_seconds``, 37 minutes; tests/test_cost.py holds every stage's
estimate to it), with the per-image costs of the paper's backbones of docs/paper-scale.md ("Cost at
scale", ``benchmarks/bench_backbones.py``, measured on an earlier, faster CPU of the same family) and
resampling costs timed here (a correlation of one resampled value: ~15 ns Pearson in the grid search's
wide tables, ~400 ns in the measure stage's Spearman intervals). The estimate counts every epoch (early
stopping may end sooner) and no GPU: on other hardware it is a scale, not a forecast (the paper's
configuration: thousands of CPU-hours here, hours on a GPU).
Light on purpose: no TensorFlow.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from galaxy_xai import statistics
from galaxy_xai.bars import barlength
from galaxy_xai.config import MODEL_KINDS, Config, ConfigError
from galaxy_xai.data import catalogue, splits

SYNTHETIC_SKY = "data/raw"
"""Where the synthesize stage writes the sky (dvc.yaml): ``data.path`` there means its sizes are the params'."""

REAL_SIZES = {"labelled": 61_578, "unlabelled": 79_975, "bars": 3_150}
"""The real catalogues' rows (Kaggle labels and test images, Hoyle bars), for a data folder not yet in place."""


@dataclass(frozen=True)
class ArchCost:
    """What one architecture costs on the calibration CPU, per image at 64 px (seconds) and in memory."""

    forward: float
    gradient: float
    train: float  # one training step's share of an image, augmentation and validation included
    learnt_layers: int  # steps of the explainers stage's cascading randomisation
    last_channels: int  # Score-CAM: forward passes per galaxy
    bytes_per_px: float  # activations of one image's gradient, per input pixel
    base_bytes: float  # the process with TensorFlow and the model


# 225-240 training images/s with augmentation; IG's heatmaps: ~450 gradients/s (records/default-cpu2.json)
_SMALL = {"forward": 0.0008, "gradient": 0.0022, "train": 1 / 240, "bytes_per_px": 120.0, "base_bytes": 1.0e9}
ARCH_COSTS = {
    "vgg_small": ArchCost(**_SMALL, learnt_layers=12, last_channels=160),
    "resnet_small": ArchCost(**_SMALL, learnt_layers=20, last_channels=128),
    "xception_small": ArchCost(**_SMALL, learnt_layers=28, last_channels=256),
    # docs/paper-scale.md: seconds per image at 224 px (at 64 px for resnet50v2), scaled to 64 px
    "vgg16": ArchCost(0.0894 / 4.0, 0.1834 / 4.4, 0.3014 / 4.7, 16, 512, 2000.0, 1.8e9),
    "resnet50v2": ArchCost(0.0075, 0.0151, 0.0280, 110, 2048, 2000.0, 2.3e9),
    "xception": ArchCost(0.0444 / 4.0, 0.0850 / 4.4, 0.1944 / 4.7, 80, 2048, 2000.0, 2.6e9),
}
"""Per-architecture costs; the keys are :data:`galaxy_xai.config.ARCHITECTURES`."""

PIXEL_EXPONENT = 1.2
"""Cost grows as (px / 64)^1.2 with the input side: 4.0-4.7x from 64 to 224 px for ResNet50V2."""

SECONDS = {
    "render": 2 / 50.5,  # synthesize: one galaxy on one core (50.5 galaxies/s on 2)
    "decode": 7 / 3180,  # prepare: one JPEG decoded and checked
    "stage": 10.0,  # start-up of a stage that imports TensorFlow, and DVC hashing its outputs
    "light_stage": 3.0,  # the same for a stage without TensorFlow (DVC's bookkeeping, NumPy, pandas)
    "epoch": 0.2,  # a training epoch's fixed cost (callbacks, validation set-up, logging)
    "explain_call": 0.3,  # the explainers stage: tracing one explainer on one model
    "explainer_score": 3.5,  # the explainers stage: one explainer's deletion / insertion curves and intervals
    "isophote": 0.052,  # measure: the isophote fit of one test galaxy (2 processes)
    "setting_map": 10e-6,  # gridsearch: one setting measured on one 64-px map (Algorithm 1 shares its scan)
    "grid_value": 15e-9,  # one resampled value of the grid search's choice stability (Pearson, wide tables)
    "interval_value": 400e-9,  # one resampled value of an interval (Spearman ranks)
    "permutation_value": 190e-9,  # one permuted value of a null
    "figure": 40.0,  # the figure stage's plots and report
    "axis_map": 0.5e-3,  # true_axis: one map's profiles along its true axis, every strip and fraction
}
"""Seconds of the steps that do not depend on the architecture (calibration CPU)."""

INTERVALS = {"gridsearch": 10, "measure": 80, "true_axis": 11, "compare": 15, "explainers": 70, "segment": 12}
"""Bootstrap intervals per stage, in units of one interval of the stage's galaxies (counted on the default run)."""

CORES = 2
"""Cores of the calibration machine."""

RESAMPLE_BYTES = 3 * 8 * statistics.RESAMPLE_VALUES
"""Memory of one chunk of resamples (indices, gathered values, ranks), whatever xai.bootstrap is."""


@dataclass(frozen=True)
class Sizes:
    """Galaxies of the run, before any drop: labelled (morphology), unlabelled (Kaggle test) and bars."""

    labelled: int
    unlabelled: int
    bars: int
    source: str

    def split(self, total: int, fractions: dict[str, float], what: str) -> dict[str, int]:
        """Galaxies per split as the prepare stage draws them (:func:`galaxy_xai.data.splits.split_sizes`)."""
        try:
            return splits.split_sizes(total, fractions, what)
        except ValueError as err:
            raise ConfigError(f"{err} ({self.source})") from None


@dataclass(frozen=True)
class StageCost:
    """One stage's (or a foreach group's) estimated seconds and peak memory, and what drives them."""

    stage: str
    seconds: float
    peak_bytes: float
    driver: str


def _count_rows(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            return max(sum(1 for _ in f) - 1, 0)
    except OSError:
        return None


def run_sizes(cfg: Config) -> Sizes:
    """The sizes of the run: the params' synthetic sky, or the rows and images of ``data.path``
    (the real catalogues' published sizes where its files are not there yet)."""
    if Path(cfg.data.path) == Path(SYNTHETIC_SKY):
        s = cfg.synthetic
        return Sizes(s.n_labelled, s.n_unlabelled, s.n_bars, f"the synthetic sky of synthetic.n_labelled = {s.n_labelled}, n_bars = {s.n_bars}")
    folder = Path(cfg.data.path)
    labelled = _count_rows(folder / catalogue.LABELS_CSV)
    bars = _count_rows(folder / catalogue.HOYLE_CSV)
    unlabelled = catalogue.count_files(folder / catalogue.TEST_IMAGES)
    if labelled is None or bars is None:
        return Sizes(**REAL_SIZES, source=f"the real catalogues' sizes ({folder} not found)")
    return Sizes(labelled, unlabelled, bars, f"the rows of {folder}")


def _pixels(px: int) -> float:
    return (px / 64) ** PIXEL_EXPONENT


def _arch(cfg: Config, name: str) -> ArchCost:
    return ARCH_COSTS[cfg.models[name].arch]


def gradients_per_map(cfg: Config, method: str, arch: ArchCost) -> float:
    """Network passes of one map of ``method``, in gradient equivalents (a forward pass is half)."""
    xai, px = cfg.xai, cfg.images.size_px
    if method in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        return max(xai.smoothgrad.samples, 1)
    if method == "integrated_gradients":
        return (xai.integrated_gradients.steps + 1) * xai.integrated_gradients.symmetries
    if method == "occlusion":
        patch, stride = min(xai.occlusion.patch, px), xai.occlusion.stride
        return 0.5 * ((px - patch) // stride + 1) ** 2
    if method == "scorecam":
        return 0.5 * arch.last_channels
    return 1.0  # vanilla gradients, Grad-CAM, Grad-CAM++


def _training_cost(cfg: Config, arch: ArchCost, epochs: int, n_train: int, n_val: int, batch: int) -> tuple[float, float]:
    """(seconds, peak bytes) of training one model ``epochs`` epochs at the configured input size."""
    px = cfg.images.size_px
    seconds = epochs * ((n_train * arch.train + n_val * arch.forward) * _pixels(px) + SECONDS["epoch"])
    return seconds, arch.base_bytes + batch * px * px * arch.bytes_per_px


def _interval_seconds(stage: str, boots: int, n: int) -> float:
    return INTERVALS[stage] * boots * n * SECONDS["interval_value"]


def estimate(cfg: Config, sizes: Sizes) -> list[StageCost]:
    """Every stage's estimated cost for ``cfg`` on ``sizes`` (foreach stages summed over their copies)."""
    p, xai, px = cfg.prepare, cfg.xai, cfg.images.size_px
    morph = sizes.split(sizes.labelled, {"train": 1.0, "val": p.val_fraction, "test": p.test_fraction}, "morphology split")
    xai_split = sizes.split(sizes.bars, {"test": 1.0, "val": p.xai_val_fraction}, "bar-catalogue XAI split")
    models = list(cfg.models)
    sky, workers = cfg.synthetic, min(cfg.synthetic.workers, CORES)
    rendered = sky.n_labelled + sky.n_unlabelled + sky.n_bars + 2 * sky.n_coadd_repeats
    decoded = sizes.labelled + sizes.bars
    out = [
        StageCost("synthesize", SECONDS["light_stage"] + rendered * SECONDS["render"] / workers, 0.4e9 * workers,
                  "synthetic.n_labelled + n_unlabelled + n_bars galaxies rendered"),
        StageCost("prepare", SECONDS["light_stage"] + decoded * (SECONDS["decode"] if p.check_images else 1e-4), 1e3 * decoded, "JPEGs decoded"),
    ]  # fmt: skip
    for name in models:
        m = cfg.models[name]
        seconds, peak = _training_cost(cfg, _arch(cfg, name), m.epochs, morph["train"], morph["val"], m.batch_size)
        out.append(StageCost(f"train@{name}", SECONDS["stage"] + seconds, peak,
                             f"models.{name}.epochs = {m.epochs} x {morph['train']} training images"))  # fmt: skip
        # The permuted-labels twin is the same recipe trained again; the random-weights twin is free.
        out.append(StageCost(f"twins@{name}", SECONDS["stage"] + seconds, peak,
                             f"the permuted-labels twin: models.{name}.epochs = {m.epochs} again"))  # fmt: skip
    forward = sum(_arch(cfg, n).forward for n in models) * _pixels(px)
    out.append(StageCost("predict", SECONDS["stage"] + (sizes.labelled + sizes.unlabelled) * forward,
                         max(_arch(cfg, n).base_bytes for n in models), "every labelled and Kaggle test image"))  # fmt: skip
    out += _xai_stages(cfg, xai_split, models)
    out += [_control(cfg, sizes.bars), _segment(cfg, sizes, xai_split), _explainers(cfg, xai_split["test"], models)]
    out.append(StageCost("compare", SECONDS["light_stage"] + _interval_seconds("compare", xai.bootstrap, xai_split["test"]),
                         0.5e9, f"xai.bootstrap = {xai.bootstrap}"))  # fmt: skip
    out.append(StageCost("figure", SECONDS["figure"], _stored_bytes(cfg, xai_split), "the figures' maps of a few galaxies"))
    return out


def _stored_bytes(cfg: Config, xai_split: dict[str, int]) -> float:
    """One model's heatmap file: float16 maps and grey inputs, the validation galaxies once, the test ones twice."""
    return (xai_split["val"] + 2 * xai_split["test"]) * 2 * 2 * cfg.images.size_px**2


def _xai_stages(cfg: Config, xai_split: dict[str, int], models: Sequence[str]) -> list[StageCost]:
    """The heatmap, grid search, measure, true-axis and rotation stages."""
    xai, px = cfg.xai, cfg.images.size_px
    n_val, n_test = xai_split["val"], xai_split["test"]
    stochastic = xai.method in ("smoothgrad", "smoothgrad_sq", "vargrad")
    n_maps = n_val + n_test * (2 if stochastic else 1)  # a deterministic explainer's draw 1 is a copy
    out = []
    heat_seconds, heat_peak = 0.0, 0.0
    kinds = len(MODEL_KINDS)  # every model and its twins are explained alike
    for name in models:
        arch = _arch(cfg, name)
        # each map's heatmap_shard stages, then the heatmap stage joining its shards
        start_up = SECONDS["stage"] * len(cfg.heatmap.shards) + SECONDS["light_stage"]
        heat_seconds += kinds * (start_up + n_maps * gradients_per_map(cfg, xai.method, arch) * arch.gradient * _pixels(px))
        per_shard = math.ceil((n_val + n_test) / len(cfg.heatmap.shards))
        batch = xai.smoothgrad.batch_size * px * px * arch.bytes_per_px
        heat_peak = max(heat_peak, arch.base_bytes + batch + per_shard * px * px * 3 * 4 * 2)
    out.append(StageCost("heatmap", heat_seconds, heat_peak,
                         f"{n_maps} maps x {len(models)} models x {kinds} (the models and their twins) of xai.method = {xai.method}"))  # fmt: skip
    sources = barlength.map_sources(models)
    grid = xai.grid
    settings = len(barlength.grid_settings(sources, grid.estimators, grid.x_input, grid.mask, grid.corr_threshold,
                                           grid.len_threshold, grid.fourier_fraction, grid.fourier_floor))  # fmt: skip
    settings *= kinds  # the saliency settings are measured on the twins' maps too (an upper bound)
    stored = kinds * len(models) * _stored_bytes(cfg, xai_split) + RESAMPLE_BYTES
    boots = xai.bootstrap
    out.append(StageCost(
        "gridsearch",
        SECONDS["light_stage"] + settings * n_val * SECONDS["setting_map"] * _pixels(px) ** 2 + 1.25 * boots * settings * n_val * SECONDS["grid_value"]
        + _interval_seconds("gridsearch", boots, n_val),
        stored, f"{settings} settings x {n_val} validation maps; xai.bootstrap = {boots}"))  # fmt: skip
    out.append(StageCost(
        "measure",
        SECONDS["light_stage"] + n_test * SECONDS["isophote"] * _pixels(px) ** 2 + _interval_seconds("measure", boots, n_test)
        + 2 * xai.permutations * n_test * SECONDS["permutation_value"],
        stored, f"xai.bootstrap = {boots}, xai.permutations = {xai.permutations} on {n_test} test galaxies"))  # fmt: skip
    axis_maps = (n_val + 2 * n_test) * kinds * len(models) + n_val + n_test  # the maps' draws, and the image once
    out.append(StageCost(
        "true_axis", SECONDS["light_stage"] + axis_maps * SECONDS["axis_map"] + _interval_seconds("true_axis", boots, n_test),
        stored, f"{axis_maps} maps along their true axes; xai.bootstrap = {boots}"))  # fmt: skip
    out.append(_rotation(cfg, n_test, models))
    return out


def _rotation(cfg: Config, n_test: int, models: Sequence[str]) -> StageCost:
    rot, px = cfg.xai.rotation, cfg.images.size_px
    maps = min(rot.galaxies, n_test) * len(rot.angles_deg) * 2  # the rotation check and its noise control
    seconds = sum(maps * gradients_per_map(cfg, cfg.xai.method, _arch(cfg, n)) * _arch(cfg, n).gradient for n in models)
    return StageCost("rotation", SECONDS["stage"] + seconds * _pixels(px), max(_arch(cfg, n).base_bytes for n in models),
                     f"xai.rotation.galaxies = {rot.galaxies} x {len(rot.angles_deg)} angles")  # fmt: skip


def _control(cfg: Config, n_bars: int) -> StageCost:
    c = cfg.control
    per_fold = n_bars * (1 - 1 / c.folds)  # each fold's model learns from the other folds' galaxies
    seconds, peak = _training_cost(cfg, ARCH_COSTS[c.model.arch], c.model.epochs, int(per_fold * 0.8),
                                   int(per_fold * 0.2), c.model.batch_size)  # fmt: skip
    return StageCost("control", SECONDS["stage"] + c.folds * seconds, peak,
                     f"control.folds = {c.folds} x control.model.epochs = {c.model.epochs}")  # fmt: skip


SEGMENT_BARRED_FRACTION = 0.22
"""Share of the labelled galaxies with a bar on the synthetic sky (434 of the default 2,000): the U-Net's masks."""

SEGMENT_IMAGE_EPOCH_S = 0.003
"""The segment stage: one training image's share of an epoch (validation included) at 32-px masks with
filters [16, 32, 64] (50 epochs of 374 images in 75 s on the calibration CPU, 0.2 s of each epoch
fixed); grows with the mask's area and the first level's channels squared (the costliest convolutions)."""


def _segment(cfg: Config, sizes: Sizes, xai_split: dict[str, int]) -> StageCost:
    seg, px = cfg.segmentation, cfg.images.size_px
    if Path(cfg.data.path) != Path(SYNTHETIC_SKY):
        # Real data has no truth.csv: the stage writes NaN lengths and "skipped" (it cannot know from
        # the params alone whether a real folder has one; the synthetic sky always does).
        return StageCost("segment", SECONDS["stage"], ARCH_COSTS["vgg_small"].base_bytes, "real data: skipped without truth.csv")
    map_px = px // seg.downsample
    scale = (map_px / 32) ** 2 * (seg.filters[0] / 16) ** 2
    n_train = sizes.labelled * SEGMENT_BARRED_FRACTION * (1 - cfg.prepare.val_fraction - cfg.prepare.test_fraction)
    n_images = sizes.labelled * SEGMENT_BARRED_FRACTION + xai_split["val"] + xai_split["test"]
    seconds = (seg.epochs * (n_train * SEGMENT_IMAGE_EPOCH_S * scale + SECONDS["epoch"])
               + n_images * SECONDS["decode"] + _interval_seconds("segment", cfg.xai.bootstrap, xai_split["test"]))  # fmt: skip
    peak = ARCH_COSTS["vgg_small"].base_bytes + n_images * px * px * 3 * 4 * 2
    return StageCost("segment", SECONDS["stage"] + seconds, peak,
                     f"segmentation.epochs = {seg.epochs} x {int(n_train)} barred training galaxies")  # fmt: skip


def _explainers(cfg: Config, n_test: int, models: Sequence[str]) -> StageCost:
    ex, px = cfg.explainers, cfg.images.size_px
    name = ex.model or models[0]
    arch = _arch(cfg, name)
    passes = sum(gradients_per_map(cfg, method, arch) for method in ex.methods)
    galaxies = min(ex.galaxies, n_test)
    models_explained = len(MODEL_KINDS)  # the model and its two twins (trained by the twins stage)
    steps = models_explained + (arch.learnt_layers if ex.cascade_galaxies else 0)
    explain = (galaxies * models_explained + ex.cascade_galaxies * arch.learnt_layers) * passes
    seconds = (explain * arch.gradient * _pixels(px) + steps * len(ex.methods) * SECONDS["explain_call"]
               + len(ex.methods) * SECONDS["explainer_score"]
               + _interval_seconds("explainers", cfg.xai.bootstrap, galaxies))  # fmt: skip
    peak = arch.base_bytes + galaxies * len(ex.methods) * 3 * px * px * 4 + cfg.xai.smoothgrad.batch_size * px * px * arch.bytes_per_px
    return StageCost("explainers", SECONDS["stage"] + seconds, peak,
                     f"explainers.galaxies = {galaxies} x {len(ex.methods)} explainers x {models_explained} models"
                     f" + cascade {ex.cascade_galaxies} x {arch.learnt_layers} layers")  # fmt: skip


def check_counts(cfg: Config, sizes: Sizes) -> None:
    """What the synthetic sky's counts make impossible, before a stage meets it hours in (ConfigError)."""
    if Path(cfg.data.path) != Path(SYNTHETIC_SKY):
        return  # real data: the prepare stage counts after its drops
    p = cfg.prepare
    xai_split = sizes.split(sizes.bars, {"test": 1.0, "val": p.xai_val_fraction}, "bar-catalogue XAI split")
    sizes.split(sizes.bars, {"train": p.control_train_fraction, "val": p.control_val_fraction,
                             "test": 1 - p.control_train_fraction - p.control_val_fraction}, "bar-catalogue control split")  # fmt: skip
    n_test = xai_split["test"]
    if cfg.explainers.galaxies > n_test:
        raise ConfigError(
            f"explainers.galaxies = {cfg.explainers.galaxies}: expected at most the {n_test} XAI test galaxies of "
            f"{sizes.source} (1 - prepare.xai_val_fraction of them)"
        )
    if len(cfg.heatmap.shards) > sizes.bars:
        raise ConfigError(
            f"heatmap.shards: {len(cfg.heatmap.shards)} shards: expected at most one per bar-catalogue galaxy ({sizes.bars})"
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def physical_memory() -> float | None:
    """Bytes of RAM of this machine, or None where the OS does not say."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def summary(costs: Sequence[StageCost]) -> str:
    """'12.4 min on 2 CPU cores: synthesize 52 s, ...; peak memory 2.1 GB (heatmap)'."""
    total = sum(c.seconds for c in costs)
    largest = max(costs, key=lambda c: c.peak_bytes)
    return (
        f"{_duration(total)} on {CORES} CPU cores: " + ", ".join(f"{c.stage} {_duration(c.seconds)}" for c in costs)
        + f"; peak memory {largest.peak_bytes / 1e9:.1f} GB ({largest.stage})"
    )


def by_family(costs: Sequence[StageCost]) -> list[StageCost]:
    """The costs of a foreach / matrix stage's copies (``train@vgg_small``, ...) summed into one entry
    named ``train@*`` with the first copy's driver: what drives a run is a stage, not one of its copies."""
    families: dict[str, list[StageCost]] = {}
    for c in costs:
        families.setdefault(c.stage.split("@")[0], []).append(c)
    return [
        members[0] if len(members) == 1 else StageCost(
            f"{name}@*", sum(c.seconds for c in members), max(c.peak_bytes for c in members),
            f"{members[0].driver}, x {len(members)} copies",
        )
        for name, members in families.items()
    ]  # fmt: skip


def check_budget(cfg: Config, log: logging.Logger, sizes: Sizes | None = None) -> list[StageCost]:
    """Estimate the run (:func:`estimate`), log it, warn or refuse as the module docstring says.

    Raises ConfigError when the estimate exceeds ``limits.max_hours`` (naming the stages that drive
    it and the switch) or the counts make a stage impossible (:func:`check_counts`).
    """
    sizes = sizes or run_sizes(cfg)
    check_counts(cfg, sizes)
    costs = estimate(cfg, sizes)
    total_h = sum(c.seconds for c in costs) / 3600
    log.info("estimated run (every stage from nothing, %s): %s", sizes.source, summary(costs))
    heaviest = [c for c in sorted(by_family(costs), key=lambda c: -c.seconds)[:2] if c.seconds >= 0.2 * total_h * 3600]
    drivers = "; ".join(f"{c.stage} {_duration(c.seconds)}: {c.driver}" for c in heaviest)
    limits = cfg.limits
    if limits.max_hours is not None and total_h > limits.max_hours:
        raise ConfigError(
            f"limits.max_hours = {limits.max_hours:g}: the run is estimated at {total_h:.1f} h on {CORES} CPU cores "
            f"({drivers}); lower those counts, or set limits.max_hours: null to start it anyway (docs/pipeline.md)"
        )
    if total_h > limits.warn_hours:
        log.warning("the run is estimated at %.1f h on %d CPU cores, over limits.warn_hours = %g (%s)",
                    total_h, CORES, limits.warn_hours, drivers)  # fmt: skip
    ram = physical_memory()
    for c in costs:
        if ram is not None and c.peak_bytes > ram:
            log.warning("%s may need %.1f GB of memory, more than this machine's %.1f GB (%s)",
                        c.stage, c.peak_bytes / 1e9, ram / 1e9, c.driver)  # fmt: skip
    return costs
