"""galaxy_xai: explain galaxy-morphology CNNs with saliency maps and measure bars from them.

The package reads like the pipeline, one subpackage per phase:

* :mod:`galaxy_xai.data`: the real data layout, the synthetic sky and the prepared, split tables;
* :mod:`galaxy_xai.models`: the morphology CNNs, their training, the control CNN and the U-Net;
* :mod:`galaxy_xai.xai`: the explainers, their heatmap files and the checks that a map explains the model;
* :mod:`galaxy_xai.bars`: bar lengths from maps and images, the grid search and the test protocol;
* :mod:`galaxy_xai.results`: scores, comparisons, the headline, the figures and report.md;

and, shared by every phase, :mod:`~galaxy_xai.config` (the one typed config from params.yaml),
:mod:`~galaxy_xai.units`, :mod:`~galaxy_xai.statistics`, :mod:`~galaxy_xai.io`, :mod:`~galaxy_xai.cost`,
:mod:`~galaxy_xai.distribute` and :mod:`~galaxy_xai.watchdog`.

The science lives here as small, pure functions; the DVC stages in ``stages/`` are thin wrappers
that parse arguments, read files, call into this package and write outputs atomically.
"""

__version__ = "0.1.0"

__all__ = ["bars", "config", "cost", "data", "distribute", "io", "models", "results", "statistics", "units", "watchdog", "xai"]
