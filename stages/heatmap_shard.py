"""Stage ``heatmap_shard``: one model's saliency maps of the bar-catalogue galaxies (all, or one shard).

Explains ``xai.target`` (Class3.1, "bar") with ``xai.method`` (by default Integrated Gradients
from the axisymmetric baseline, ``xai.integrated_gradients``; the paper's SmoothGrad with
``xai.smoothgrad.samples`` / ``noise`` / ``symmetries``; ``xai.smoothgrad.batch_size`` bounds the
gradients in flight for every method) and ``xai.attribution``, on the model inputs
``images.crop_px`` / ``images.size_px``: the validation galaxies once and the test galaxies twice
(the paper's test protocol). A sampling explainer (SmoothGrad) draws independent noise for the two
test draws, seeded by ``seed``; a deterministic one (Integrated Gradients, occlusion, Grad-CAM)
gives the same map twice. Writes ``--out``, the heatmap file of :mod:`galaxy_xai.xai.heatmaps` (npz): maps float16
(n, H, W) in [0, 1], objid, split, draw, grey (the grey-scale input), model, method, attribution.

With ``--shard i`` it explains only shard i of the n = len(``heatmap.shards``) contiguous blocks
of the catalogue and writes a shard file (:func:`galaxy_xai.xai.heatmaps.write_heatmap_shard`); the
``heatmap`` stage (:mod:`stages.heatmap`) merges the shards. ``heatmap.distribute`` spreads
the gradient batches over a ``tf.distribute`` strategy's replicas (:mod:`galaxy_xai.distribute`;
the same maps as one device); under ``multi_worker`` only the chief writes.
"""

from __future__ import annotations

from galaxy_xai.watchdog import hold_sigterm

hold_sigterm()  # before TensorFlow starts its threads: a multi-worker start-up stays stoppable by SIGTERM

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from galaxy_xai import distribute  # noqa: E402
from galaxy_xai.data.images import load_images  # noqa: E402
from galaxy_xai.data.tables import read_bars  # noqa: E402
from galaxy_xai.io import load_model  # noqa: E402
from galaxy_xai.xai import explainers, heatmaps  # noqa: E402
from stages._common import exit_on_bad_input, start  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model name (a key of params.yaml models)")
    parser.add_argument("--model-file", type=Path, required=True, help="trained model (.keras)")
    parser.add_argument("--bars", type=Path, required=True, help="bar catalogue (data/prepared/bars.csv)")
    parser.add_argument("--out", type=Path, required=True, help="output array file (.npz)")
    parser.add_argument(
        "--shard", type=int, help="explain only this shard (0 .. n - 1, n = len(heatmap.shards)); default: every galaxy"
    )
    args, cfg, log = start("heatmap_shard", parser, argv)

    with exit_on_bad_input(log):
        # First: a multi-worker strategy must exist before TensorFlow runs any op.
        strategy = distribute.select_strategy(
            cfg.heatmap.distribute, key="heatmap.distribute", timeout_s=cfg.limits.worker_timeout_s
        )
        explainer = explainers.from_config(cfg.xai)
        bars = read_bars(args.bars, columns=("objid", "image_path", "xai_split"))
        n_shards = len(cfg.heatmap.shards)
        if args.shard is not None:
            bars = bars.iloc[heatmaps.shard_rows(len(bars), args.shard, n_shards)]
            log.info("shard %d of %d: %d of the bar-catalogue galaxies", args.shard, n_shards, len(bars))
        with strategy.scope():  # the model's variables on every replica's device
            model = load_model(args.model_file, compile=False)
        log.info("loaded %s (%s, %d parameters)", args.model_file, model.name, model.count_params())
        images = load_images(bars["image_path"].tolist(), cfg.images)
        log.info("decoded %d bar-catalogue images %s from %s", len(images), images.shape[1:], args.bars)
        with strategy.scope():  # the gradient batches spread over the replicas
            arrays = heatmaps.heatmap_set(
                explainer,
                model,
                args.model,
                images,
                bars["objid"].to_numpy(),
                bars["xai_split"].to_numpy(),
                cfg.seed,
                progress=True,
            )
    if not distribute.is_chief(strategy):
        log.info("not the chief worker: %s is the chief's to write", args.out)
        return
    if args.shard is None:
        heatmaps.write_heatmaps(args.out, arrays)
    else:
        heatmaps.write_heatmap_shard(args.out, arrays, args.shard, n_shards)
    log.info(
        "wrote %s: %d maps (%d val, %d test x 2 draws)",
        args.out,
        len(arrays["maps"]),
        (bars["xai_split"] == "val").sum(),
        (bars["xai_split"] == "test").sum(),
    )


if __name__ == "__main__":
    main()
