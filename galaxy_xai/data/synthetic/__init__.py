"""The embedded synthetic Galaxy Zoo sky: GalSim galaxies written in the real Kaggle / GZ2 / Hoyle layout.

Stages call :func:`write_sky` (the one name this package exports); everything else is imported from
its module:

* :mod:`.population`: the :class:`Galaxy` record, the population's fitted constants (each with its
  source), :func:`draw_galaxy` and the other draws, Petrosian radii; the length, pixel and angle
  conventions.
* :mod:`.render`: GalSim components, spiral arms, the PSF and convolution, neighbours and stars, sky
  noise, the RGB composite and JPEG encoding.
* :mod:`.volunteers`: morphology features, answer probabilities, simulated votes rounded to the real
  file's millionths, and the Hoyle catalogue's bar measurements.
* :mod:`.sky`: catalogue IDs, one galaxy start to finish (the worker-process task), the tables (it
  defines every ``truth.csv`` column) and :func:`write_sky`.
"""

from galaxy_xai.data.synthetic.sky import write_sky

__all__ = ["write_sky"]
