"""The explanation phase: the explainers, their heatmap files, and the checks that a map explains the model.

Submodules are imported on use, not here, so that a stage loads (and DVC hashes) only what it runs."""

__all__ = ["explainer_study", "explainers", "faithfulness", "heatmaps", "localisation", "maps", "sanity"]
