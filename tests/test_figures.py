"""What the figures say (issue #27): titles and captions that match the headline, lines and bands a
reader needs, axis labels in words, the true bar drawn. Drawn on small synthetic inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.contour import ContourSet

from galaxy_xai.results import figures


def texts(fig) -> str:
    """Every title, label, legend entry and free text of a figure, one string."""
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)]
        if ax.get_legend():
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(out)


def curve() -> dict:
    return {"n": 640, "k": [1, 2, 3], "spearman": [0.55, 0.59, 0.61], "spearman_ci95": [[0.50, 0.60], [0.54, 0.64], [0.56, 0.66]],
            "a": 2.36, "b": 0.92, "asymptote": 0.65, "asymptote_ci95": [0.59, 0.70]}  # fmt: skip


def test_the_ensemble_figure_draws_the_target_and_the_band_and_shows_all_of_them():
    fig = figures.ensemble_curve({"truth": curve()}, {"truth": {"control CNN": 0.58}}, targets={"truth": 0.70})
    words = texts(fig)
    assert "target: 0.70" in words and "95% interval of infinitely many" in words and "control CNN: 0.58" in words
    lo, hi = fig.axes[0].get_ylim()
    assert hi > 0.70 and lo < 0.50  # the target, the band's top and the lowest interval are inside, with a margin
    figures.plt.close(fig)


def test_the_complements_figure_names_the_score_in_words():
    scores = {"isophote": {"spearman_truth_image": 0.52, "spearman_truth_image_ci95": [0.44, 0.59]}}
    diff = {"isophote+saliency - isophote": {"spearman_truth_image": {"difference": 0.15, "ci95": [0.1, 0.19], "verdict": "beats"}}}
    fig = figures.complements({"n": 637, "scores": scores, "difference": diff})
    words = texts(fig)
    assert "spearman_truth_image" not in words and "Spearman rho against the true length" in words
    figures.plt.close(fig)


def test_the_truth_panels_quote_the_headline_spearman_with_its_interval():
    frame = pd.DataFrame({"true_kpc": [1.0, 2.0, 3.0], "measured_kpc": [1.5, 2.0, 3.5]})
    scores = {"rho": 0.9, "rho_image": 0.5, "spearman_truth_image": 0.6126, "spearman_truth_image_ci95": [0.558, 0.665]}
    panel = figures.truth_panel(frame, scores, "saliency")
    assert panel["title"] == "saliency (n = 3)\nSpearman rho vs the true length: 0.61 [0.56, 0.67]" and panel["slope"] is None
    assert "n/a [n/a, n/a]" in figures.truth_panel(frame, {"rho": 0.9, "rho_image": 0.5}, "control CNN")["title"]
    fig = figures.measured_vs_reference([panel, panel], "true", "measured")
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim()  # the same axes in every panel
    assert not [c for ax in fig.axes for c in ax.collections if isinstance(c, ContourSet)]  # no unexplained contour
    figures.plt.close(fig)


def test_figure1_says_why_the_bar_and_bulge_maps_look_alike_and_what_the_annulus_is():
    caption = figures.figure1_caption("integrated_gradients", "axisymmetric")
    assert "bulge is part of the baseline" in caption and "speckled annulus" in caption
    assert "bulge" not in figures.figure1_caption("integrated_gradients", "blur") and figures.figure1_caption("smoothgrad", None) == ""
    maps = {"bar": np.zeros((8, 8)), "bulge": np.ones((8, 8))}
    fig = figures.saliency_panels(np.zeros((8, 8, 3)), maps, "title", caption=caption)
    assert caption.split()[0] in texts(fig)
    figures.plt.close(fig)


def test_figure3_names_every_column_and_draws_the_true_bar():
    mask = np.zeros((16, 16), bool)
    mask[8, 4:12] = True
    outline = figures.ellipse_outline(60.0, 0.3, 0.0, 16, 160)
    example = {"image": np.zeros((16, 16, 3)), "map": mask * 0.2, "mask": mask, "endpoints": ((8, 4), (8, 11)),
               "title": "objid 1", "length_label": "measured 5.0, catalogue 4.0, true 4.5 h^-1 kpc", "outline": outline}  # fmt: skip
    fig = figures.bar_examples([example], "isolated bar (Algorithm 1)")
    row = fig.axes[:3]
    assert all(ax.get_title() for ax in row) and "cyan: true bar" in row[2].get_title()
    assert len(row[1].collections) and len(row[2].collections)  # the ellipse's contour on the map and the isolated bar
    shown = row[2].images[0].get_array()
    assert shown[8, 4:12].min() >= 0.35  # every isolated pixel visible, even where the map is faint
    assert outline[2].sum() > 0
    figures.plt.close(fig)
