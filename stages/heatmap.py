"""Stage ``heatmap``: one model's saliency maps of every bar-catalogue galaxy, in one array file.

Explains ``xai.target`` (Class3.1, "bar") with ``xai.method`` (SmoothGrad by default, with
``xai.smoothgrad.samples`` / ``noise`` / ``batch_size`` / ``symmetries``) and ``xai.attribution``,
noise seeded by ``seed``, on the model inputs ``images.crop_px`` / ``images.size_px``: the
validation galaxies once and the test galaxies twice with independent noise draws (the paper's test
protocol). Writes ``--out``, the heatmap file of :mod:`galaxy_xai.heatmaps` (npz): maps float16
(n, H, W) in [0, 1], objid, split, draw, grey (the grey-scale input), model, method, attribution.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

from galaxy_xai import explainers, heatmaps
from galaxy_xai.images import load_images
from galaxy_xai.prepared import read_bars
from stages._common import exit_on_bad_input, start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model name (a key of params.yaml models)")
    parser.add_argument("--model-file", type=Path, required=True, help="trained model (.keras)")
    parser.add_argument("--bars", type=Path, required=True, help="bar catalogue (data/prepared/bars.csv)")
    parser.add_argument("--out", type=Path, required=True, help="output array file (.npz)")
    args, cfg, log = start("heatmap", parser, argv)

    with exit_on_bad_input(log):
        if not args.model_file.is_file():
            raise ValueError(f"{args.model_file}: model file not found (run the train stage first)")
        explainer = explainers.from_config(cfg.xai)
        bars = read_bars(args.bars, columns=("objid", "image_path", "xai_split"))
        model = keras.models.load_model(args.model_file, compile=False)
        log.info("loaded %s (%s, %d parameters)", args.model_file, model.name, model.count_params())
        images = load_images(bars["image_path"].tolist(), cfg.images)
        log.info("decoded %d bar-catalogue images %s from %s", len(images), images.shape[1:], args.bars)
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
    heatmaps.write_heatmaps(args.out, arrays)
    log.info(
        "wrote %s: %d maps (%d val, %d test x 2 draws)",
        args.out,
        len(arrays["maps"]),
        (bars["xai_split"] == "val").sum(),
        (bars["xai_split"] == "test").sum(),
    )


if __name__ == "__main__":
    main()
