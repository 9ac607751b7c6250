"""The data phase: the real layout's readers, the synthetic sky, and the prepared, split tables.

Submodules are imported on use, not here, so that a stage loads (and DVC hashes) only what it runs."""

__all__ = ["catalogue", "drops", "galaxyzoo", "images", "preparation", "splits", "synthetic", "tables"]
