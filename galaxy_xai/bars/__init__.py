"""The measurement phase: bar lengths from maps and images, the grid search and the test protocol.

Submodules are imported on use, not here, so that a stage loads (and DVC hashes) only what it runs."""

__all__ = ["algorithm1", "barlength", "gridsearch", "profiles", "protocol", "rotation"]
