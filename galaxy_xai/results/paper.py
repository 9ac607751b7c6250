"""The published numbers this study is compared with, in one place.

Bhambra, Joachimi & Lahav (2022) (MNRAS 511, 5032) on real Galaxy Zoo 2 images at 224 px with
ImageNet-pretrained backbones, and Hoyle et al. (2011) for the volunteers' bar lengths. Nothing here is
computed: a number enters this module only with the table or sentence of the paper it comes from.
"""

from __future__ import annotations

TABLE1_TEST_RMSE = {
    "vgg": ("VGG16", 0.07939),
    "resnet": ("ResNet50V2", 0.08110),
    "xception": ("Xception", 0.07933),
}
"""Table 1: test RMSE over the 37 vote fractions of each backbone family (keyed by architecture family)."""

TABLE1_ENSEMBLE_RMSE = 0.07747
"""Table 1: the test RMSE of the three backbones' mean."""

KAGGLE_RMSE = {"winner": 0.07492, "central_pixel": 0.16194, "all_zeros": 0.27160}
"""Table 1's references from the Galaxy Zoo Kaggle challenge: its winner and two benchmarks."""

TABLE2_RHO = {"vgg": 0.68, "resnet": 0.71, "xception": 0.67, "mean_map": 0.76, "mean_length": 0.75}
"""Table 2: validation rho of the saliency lengths per model (keyed by architecture family) and of
the two ways of combining the models."""

SALIENCY_RHO = 0.76
"""The headline: Pearson rho of the saliency bar lengths with Hoyle et al.'s, both x PETROR90_R."""

CONTROL_RHO = 0.59
"""The same rho for the control CNN that predicts the bar length straight from the image."""

HOYLE_RELATIVE_ERROR = 0.17
"""Relative error of the Hoyle et al. (2011) volunteer bar lengths used by the paper's regression."""


def table2_rho(method: str, arch: str | None = None) -> float | None:
    """The paper's validation rho for a method (a model of architecture ``arch``, or a mean method)."""
    if method in TABLE2_RHO:
        return TABLE2_RHO[method]
    family = next((f for f in TABLE2_RHO if arch and arch.startswith(f)), None)
    return TABLE2_RHO.get(family) if family else None
