"""The measurement phase: bar lengths from maps and images, the grid search, the test protocol and the
true-axis diagnostic.

Submodules are imported on use, not here, so that a stage loads (and DVC hashes) only what it runs."""

__all__ = ["algorithm1", "barlength", "gridsearch", "profiles", "protocol", "rotation", "true_axis"]
