"""Saliency maps of one model output: SmoothGrad (the paper's) and nine other explainers.

Every explainer is a small frozen object (:class:`~galaxy_xai.xai.explainers.core.Explainer`) built
from the typed ``xai`` config and called on a model and its inputs::

    explainer = explainers.from_config(cfg.xai)              # or from_config(cfg.xai, target="Class5.3")
    maps = explainer(model, images, seed=seed, keys=objids)  # float32 (n, H, W) in [0, 1]

``images`` are float (n, H, W, C) model inputs in [0, 1]. Every explainer differentiates the
class's *pre-activation* score (the model's ``"logits"`` layer: the paper's "last activation made
linear") and min-max normalises each map exactly, (m - min) / (max - min), as the original code
applied to tf-keras-vis's output (tf-keras-vis itself divides by max - min + 1e-7, which shrinks
maps whose gradients are small); a constant map is returned as zeros with a logged warning, never
NaN.

The explainers (``xai.method``, :data:`EXPLAINERS`):

* ``smoothgrad`` (:class:`~galaxy_xai.xai.explainers.gradients.SmoothGrad`): the gradient averaged over
  N = ``xai.smoothgrad.samples`` noisy copies x + e of each image, e ~ Normal(0, sigma^2) per
  pixel, sigma = ``noise`` * (max(x) - min(x)); with ``symmetries`` 4 or 8 (params.yaml: 8; the
  paper's SmoothGrad: 1) copy s is also turned by symmetry s mod ``symmetries`` of the square and
  its gradient turned back. How the gradients become a map is ``xai.attribution``:

  - ``input_x_gradient`` (the default of params.yaml and XaiConfig; the explainer classes on their
    own default to the paper's abs_gradient and symmetries 1): the mean *signed* gradient over the
    copies, times the clean input, summed over colour channels, positive part:
    ``max(0, sum_c x_c mean_s d score / d x_c)`` (SmoothGrad combined with Gradient x Input, as
    Smilkov et al. 2017 suggest): the light whose presence raises the score. For a bar this is
    the bar's own light, where the absolute gradient also lights up the dark gaps beside it (a
    brighter gap is evidence *against* a bar) and whatever the noise makes the model sensitive to.
  - ``abs_gradient`` (the paper's, tf-keras-vis ``Saliency``'s): the mean of |gradient| over the
    copies, then the maximum over colour channels.

  N = 0 is the vanilla map.
* ``vanilla`` (:class:`~galaxy_xai.xai.explainers.gradients.Vanilla`): the same attribution of the
  gradient of the clean input.
* ``gradcam`` (:class:`~galaxy_xai.xai.explainers.gradcam.GradCam`): tf-keras-vis ``Gradcam``'s map;
  its attribution is its own (the rectified class activation), ``xai.attribution`` does not apply.
* ``smoothgrad_sq`` and ``vargrad`` (:mod:`~galaxy_xai.xai.explainers.noisetunnel`): the mean of the
  squared gradients and their variance over SmoothGrad's own noisy copies (``xai.smoothgrad``).
* ``integrated_gradients`` (:mod:`~galaxy_xai.xai.explainers.integrated`): path integral from the
  ``xai.integrated_gradients.baseline`` image, summed over channels, positive part.
* ``occlusion`` (:mod:`~galaxy_xai.xai.explainers.occlusion`): the drop of the score when a sliding
  ``xai.occlusion.patch`` is filled with the sky level.
* ``gradcam_pp`` and ``scorecam`` (:mod:`~galaxy_xai.xai.explainers.gradcampp`,
  :mod:`~galaxy_xai.xai.explainers.scorecam`): class-activation maps like Grad-CAM, at the resolution of
  the last convolution grid (4 x 4 for the small CPU models at 64 px, 2 x 2 for xception_small; 7 x 7
  for the paper's backbones at 224 px).
* ``layercam`` (:class:`~galaxy_xai.xai.explainers.gradcam.LayerCam`, Jiang et al. 2021): a class-activation
  map whose weights are the positive gradients pixel by pixel, so it can be read off an earlier,
  finer feature map: ``xai.cam.grid_px`` (16 or 32 at 64 px input) picks the model's last layer of
  that grid for every CAM method (null: the last conv grid).

The implementation differs from tf-keras-vis where it matters for speed and reproducibility, not
for the result: noisy copies of several galaxies go through the model together in one compiled
function (at most ``batch_size`` copies at a time, so peak memory is set by the batch and not by
N), the gradients are summed on the fly, and the noise comes from TensorFlow's stateless
generator. Each noise sample is keyed by ``(seed, key of the galaxy, sample index)``, so a
galaxy's map depends only on the seed and its key (by default its position), never on
``batch_size`` or on which other galaxies share a batch.

With ``xai.contrast`` (e.g. Class3.2, "no bar") every explainer explains the target's score minus
the contrast's (:func:`~galaxy_xai.xai.explainers.core.contrastive`): what makes the model say "bar"
rather than "no bar".

A new explainer is a module with an :class:`~galaxy_xai.xai.explainers.core.Explainer` subclass (its
``name``, ``from_config`` and ``explain``) and one entry in :data:`EXPLAINERS` (and its name in
:data:`galaxy_xai.config.METHODS`); the shared pieces are in :mod:`galaxy_xai.xai.explainers.core`.
"""

from __future__ import annotations

import dataclasses

from galaxy_xai.config import METHODS, XaiConfig
from galaxy_xai.xai.explainers.core import Explainer, class_index
from galaxy_xai.xai.explainers.gradcam import GradCam, LayerCam
from galaxy_xai.xai.explainers.gradcampp import GradCamPlusPlus
from galaxy_xai.xai.explainers.gradients import SmoothGrad, Vanilla
from galaxy_xai.xai.explainers.integrated import IntegratedGradients
from galaxy_xai.xai.explainers.noisetunnel import SmoothGradSquared, VarGrad
from galaxy_xai.xai.explainers.occlusion import Occlusion
from galaxy_xai.xai.explainers.scorecam import ScoreCam

EXPLAINERS: dict[str, type[Explainer]] = {
    "smoothgrad": SmoothGrad,
    "vanilla": Vanilla,
    "gradcam": GradCam,
    "smoothgrad_sq": SmoothGradSquared,
    "vargrad": VarGrad,
    "integrated_gradients": IntegratedGradients,
    "occlusion": Occlusion,
    "gradcam_pp": GradCamPlusPlus,
    "scorecam": ScoreCam,
    "layercam": LayerCam,
}
"""Each ``xai.method`` (:data:`galaxy_xai.config.METHODS`, in that order) -> its explainer class."""


def from_config(xai: XaiConfig, target: str | None = None, method: str | None = None) -> Explainer:
    """The explainer of ``method`` (default ``xai.method``) with the settings of ``xai``, explaining
    ``xai.target`` against ``xai.contrast`` (if set), or ``target`` alone (another Galaxy Zoo answer
    such as ``"Class5.3"``). Every stage builds its explainers here, so all explain the same score."""
    method = method or xai.method
    if method not in EXPLAINERS:
        raise ValueError(f"method = {method!r}: expected one of {', '.join(METHODS)}")
    explainer = EXPLAINERS[method].from_config(xai, class_index(target or xai.target))
    if xai.contrast is None or (target or xai.target) != xai.target:
        return explainer  # the contrast is the target's: another answer (figure 1's) is explained alone
    return dataclasses.replace(explainer, contrast=class_index(xai.contrast))


def explained_score(xai: XaiConfig) -> str:
    """What the maps of ``xai`` explain, in words: ``"the Class3.1 score minus the Class3.2 score"``
    with a contrast, ``"the Class3.1 score"`` without (pre-activation scores)."""
    if xai.contrast is None:
        return f"the {xai.target} score"
    return f"the {xai.target} score minus the {xai.contrast} score"
