"""galaxy_xai: explain galaxy-morphology CNNs with saliency maps and measure bars from them.

The science lives here as small, pure functions; the DVC stages in ``stages/`` are thin wrappers
that parse arguments, read files, call into this package and write outputs atomically.
"""

__version__ = "0.1.0"
