"""SmoothGrad-Squared and VarGrad: other statistics of SmoothGrad's noisy gradients.

Both draw exactly SmoothGrad's noisy (and, with ``symmetries`` > 1, turned) copies of each image
through the same compiled sampling loop (:func:`~galaxy_xai.xai.explainers.gradients.noisy_gradient_maps`):
copy s of image x is x + e, e ~ Normal(0, sigma^2) per pixel, sigma = ``noise`` * (max(x) - min(x)),
keyed by (seed, the image's key, s). With the same settings, seed and keys they see the same
copies as :class:`~galaxy_xai.xai.explainers.gradients.SmoothGrad`; only the statistic differs. Let g_s
be d score / d x of copy s (the class's pre-activation score, shape (H, W, C)):

* SmoothGrad-Squared (Hooker, Erhan, Kindermans & Kim 2019, *A benchmark for interpretability
  methods in deep neural networks*, NeurIPS, the ROAR paper): mean_s g_s^2.
* VarGrad (Adebayo, Gilmer, Goodfellow & Kim 2018, *Local explanation methods for deep neural
  networks lack sensitivity to parameter values*, ICLR workshop; also in Hooker et al. 2019):
  the population variance over the copies, mean_s g_s^2 - (mean_s g_s)^2, accumulated as sums of
  g_s - g_clean (the clean image's gradient, one extra gradient per image) so that a model whose
  gradient does not change with the noise (a linear one) gives exactly 0, not float32 rounding.

Either is then reduced over colour channels by the maximum (as the paper's abs_gradient SmoothGrad)
and min-max normalised per map: float32 (n, H, W) in [0, 1], full input resolution, units of
(score / input unit)^2 before normalisation. ``xai.attribution`` does not apply (the squares
discard the sign); a map is the attribution ``"smoothgrad_sq"`` or ``"vargrad"``. Captum calls the
three statistics NoiseTunnel's smoothgrad, smoothgrad_sq and vargrad; tf-keras-vis has neither
(its ``Saliency`` is SmoothGrad only), so there is no library reference to check against.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from galaxy_xai.config import SYMMETRIES, XaiConfig
from galaxy_xai.xai.explainers.core import Explainer, finish_maps
from galaxy_xai.xai.explainers.gradients import noisy_gradient_maps


@dataclasses.dataclass(frozen=True)
class SmoothGradSquared(Explainer):
    """SmoothGrad-Squared maps: channel max of mean_s g_s^2 over ``samples`` N >= 1 noisy copies.

    ``samples``, ``noise``, ``symmetries`` and ``batch_size`` mean what they mean for
    :class:`~galaxy_xai.xai.explainers.gradients.SmoothGrad` (and are read from ``xai.smoothgrad``).
    Seeded: same (seed, key) -> same map, whatever ``batch_size``.
    """

    name = "smoothgrad_sq"
    statistic = "squared"
    min_samples = 1
    samples: int
    noise: float
    _: dataclasses.KW_ONLY
    symmetries: int = 1

    def __post_init__(self) -> None:
        if self.symmetries not in SYMMETRIES:
            raise ValueError(f"{self.name}: symmetries = {self.symmetries}: expected one of {SYMMETRIES}")
        if self.samples < self.min_samples or not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(
                f"{self.name}: samples = {self.samples} and noise = {self.noise}: "
                f"expected samples >= {self.min_samples} and noise >= 0"
            )
        super().__post_init__()

    @classmethod
    def from_config(cls, xai: XaiConfig, index: int) -> SmoothGradSquared:
        sg = xai.smoothgrad
        return cls(index, sg.samples, sg.noise, batch_size=sg.batch_size, symmetries=sg.symmetries)

    @property
    def stochastic(self) -> bool:
        return True

    def raw(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        """The maps before normalisation, float32 (n, H, W)."""
        return noisy_gradient_maps(
            model,
            images,
            self.index,
            self.samples,
            self.noise,
            self.symmetries,
            self.batch_size,
            self.statistic,
            f"{self.name} N={self.samples}",
            seed=seed,
            keys=keys,
            progress=progress,
        )

    def explain(self, model, images, seed=0, keys=None, progress=False) -> np.ndarray:
        maps = self.raw(model, images, seed=seed, keys=keys, progress=progress)
        return finish_maps(maps, f"{self.name} N={self.samples}")


@dataclasses.dataclass(frozen=True)
class VarGrad(SmoothGradSquared):
    """VarGrad maps: channel max of the variance of g_s over ``samples`` N >= 2 noisy copies.

    Settings as :class:`SmoothGradSquared`. A model whose gradient does not depend on the input
    (linear) has zero variance: its maps are zeros (constant maps, with a logged warning).
    """

    name = "vargrad"
    statistic = "variance"
    min_samples = 2
