"""The models phase: architectures, training, the control CNN and the segmentation U-Net.

Submodules are imported on use, not here, so that a stage loads (and DVC hashes) only what it runs."""

__all__ = ["architectures", "control", "segmentation", "training", "unet"]
