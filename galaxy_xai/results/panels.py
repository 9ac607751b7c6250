"""What each figure shows, computed from the run's models, maps and tables: the panels that
:mod:`galaxy_xai.results.figures` draws.

The ``figure`` stage reads the files and calls one function here per figure, then hands the result
to the matching drawing function. Maps are (H, W) or (n, H, W) in [0, 1]; lengths in 424-px pixels
(``_px424``) or h^-1 kpc (``_kpc``), as in the measure stage's per-galaxy table.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from galaxy_xai import units
from galaxy_xai.bars import barlength
from galaxy_xai.bars.barlength import Choice
from galaxy_xai.config import Config
from galaxy_xai.data.images import load_images
from galaxy_xai.results import figures
from galaxy_xai.xai import explainers, heatmaps
from galaxy_xai.xai.maps import normalise_maps

FIGURE1_TARGETS = {"bar (Class3.1)": "Class3.1", "bulge (Class5.3)": "Class5.3", "arms (Class11.3)": "Class11.3"}
"""Figure 1's panels: label -> the Galaxy Zoo answer explained."""


def mean_maps(models: dict[str, keras.Model], images: np.ndarray, target: str, cfg: Config, seed: int) -> np.ndarray:
    """The models' maps of ``target`` averaged and renormalised: (n, H, W) in [0, 1]."""
    explainer = explainers.from_config(cfg.xai, target=target)
    maps = [explainer(m, images, seed=seed) for m in models.values()]
    return normalise_maps(np.mean(maps, axis=0))


def figure1_galaxy(bars: pd.DataFrame) -> pd.Series:
    """Figure 1's galaxy: the test galaxy with the longest catalogue bar, where the features are resolved."""
    return bars.loc[bars.loc[bars["xai_split"] == "test", "length_px424"].idxmax()]


def figure1_maps(
    models: dict[str, keras.Model], image: np.ndarray, objid: int, heatmap_dir: Path, cfg: Config
) -> dict[str, np.ndarray]:
    """{panel label: (H, W) map averaged over the models} of one test galaxy for figure 1.

    ``xai.target``: the stored maps (draw 0) of the heatmap files, as measured; the other answers of
    :data:`FIGURE1_TARGETS`: recomputed as the heatmap stage computes draw 0 (each model's
    ``draw_seed(seed, model, 0)``, noise keyed by the objid), so they are the maps it would have stored.
    """
    stored, _ = heatmaps.read_heatmaps(heatmap_dir, list(models), [objid], "test", draw=0)
    targets = FIGURE1_TARGETS if cfg.xai.target in FIGURE1_TARGETS.values() else {cfg.xai.target: cfg.xai.target, **FIGURE1_TARGETS}
    out = {}
    for label, target in targets.items():
        if target == cfg.xai.target:
            maps = [np.asarray(stored[name], dtype=np.float32) for name in models]
            # The stored maps explain the target minus the contrast answer, when there is one.
            shown = label.replace(target, f"{target} - {cfg.xai.contrast}") if cfg.xai.contrast else label
            out[f"{shown}\nstored"] = normalise_maps(np.mean(maps, axis=0))[0]
        else:
            explainer = explainers.from_config(cfg.xai, target=target)
            maps = [
                explainer(m, image, seed=heatmaps.draw_seed(cfg.seed, name, 0), keys=np.array([objid]))
                for name, m in models.items()
            ]
            out[f"{label}\nrecomputed"] = normalise_maps(np.mean(maps, axis=0))[0]
    return out


def figure1_subtitle(cfg: Config) -> str:
    """What 'stored' and 'recomputed' mean under figure 1's panels, for this run's explainer."""
    if explainers.from_config(cfg.xai).stochastic:
        return "stored = the heatmap files (draw 0, as measured); recomputed = the same seeds and noise keys"
    return "stored = the heatmap files (as measured); recomputed = the same explainer for the other answers"


def figure3_objids(measured: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Figure 3's galaxies: two random test galaxies and, last, the worst outlier (the largest
    relative difference between the measured and the catalogue length)."""
    rel_error = (measured["measured_px424"] / measured["catalogue_px424"] - 1).abs().reset_index(drop=True)
    worst = int(rel_error.idxmax())  # NaN (a failed fit) is skipped
    others = np.delete(np.arange(len(measured)), worst)
    picks = [*rng.choice(others, size=min(2, len(measured) - 1), replace=False), worst]
    return measured["objid"].to_numpy()[picks]


def figure3_examples(
    objids: np.ndarray, measured: pd.DataFrame, bars: pd.DataFrame, heatmap_dir: Path, models: list[str], choice: Choice, cfg: Config
) -> list[dict]:
    """Figure 3's panels (:func:`galaxy_xai.results.figures.bar_examples`): each galaxy of ``objids``
    as the chosen setting saw it (the map with the chosen mask, e.g. R90, applied before isolating
    the bar), the isolated bar, its measured length, and the true bar's ellipse where bars.csv has
    it (synthetic sky)."""
    shown = choice.models_needed(models)
    test_maps, grey = heatmaps.read_heatmaps(heatmap_dir, shown, objids, "test", draw=0)
    map_px, crop_px = grey.shape[-1], cfg.images.crop_px
    chosen_maps = barlength.maps_to_measure(
        np.mean([test_maps[n] for n in shown], axis=0), grey, choice.x_input, choice.radius_px(map_px, crop_px)
    )
    rows = bars.set_index("objid").loc[objids]
    images = load_images(rows["image_path"].tolist(), cfg.images)
    per_galaxy = measured.set_index("objid")
    examples = []
    for k, (objid, smap) in enumerate(zip(objids, chosen_maps, strict=True)):
        m, true = per_galaxy.loc[objid], rows.loc[objid]
        length_map_px = units.px424_to_map_px(m["measured_px424"], cfg.images.size_px, crop_px)
        mask, endpoints = figures.isolated_bar(smap, choice, map_px, crop_px, cfg.xai.linearity, length_map_px)
        has_true_bar = "true_axis_ratio" in true and np.isfinite(true["true_length_px424"])
        examples.append({
            "image": images[k], "map": smap, "mask": mask, "endpoints": endpoints,
            "title": f"objid {objid}" + (" (worst outlier)" if k == len(objids) - 1 else ""),
            "length_label": f"measured {m['measured_kpc']:.1f}, catalogue {m['catalogue_kpc']:.1f}"
            + (f", true {m['true_kpc']:.1f}" if "true_kpc" in m else "") + " h^-1 kpc",
            "outline": figures.ellipse_outline(true["true_length_px424"], true["true_axis_ratio"], true["true_angle_deg"],
                                               map_px, crop_px) if has_true_bar else None,
        })  # fmt: skip
    return examples


def figure5_examples(models: dict[str, keras.Model], disagreements: pd.DataFrame, cfg: Config) -> list[dict]:
    """Figure 5's panels (:func:`galaxy_xai.results.figures.disagreements`): each galaxy of
    ``disagreements`` (:func:`galaxy_xai.results.figures.largest_disagreements`) with the models'
    maps of 'smooth' and of 'features', and what the ensemble and the volunteers said."""
    images = load_images(disagreements["image_path"].tolist(), cfg.images)
    smooth = mean_maps(models, images, "Class1.1", cfg, cfg.seed)
    featured = mean_maps(models, images, "Class1.2", cfg, cfg.seed)
    return [
        {
            "image": images[k],
            "maps": {"smooth (Class1.1)": smooth[k], "features (Class1.2)": featured[k]},
            "title": f"GalaxyID {r['GalaxyID']}\nensemble: smooth {r['Class1.1_pred']:.2f}, features {r['Class1.2_pred']:.2f}\n"
            f"volunteers: smooth {r['Class1.1']:.2f}, features {r['Class1.2']:.2f}",
        }
        for k, (_, r) in enumerate(disagreements.iterrows())
    ]


def ensemble_lines(barlengths: dict, comparison: dict) -> dict[str, dict[str, float]]:
    """The controls' Spearman scores drawn as horizontal lines on the ensemble curve:
    {reference ('catalogue' / 'truth'): {label: score}}, for the control CNN (on the shared galaxies)
    and the image-only length."""
    others = {"control CNN": comparison.get("control", {}), "image-only length": barlengths["controls"]["image"]}
    return {
        reference: {label: scores[key] for label, scores in others.items() if scores.get(key) is not None}
        for reference, key in (("catalogue", "spearman_image"), ("truth", "spearman_truth_image"))
    }
