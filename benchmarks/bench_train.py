"""Training throughput (images/s) of each architecture with the cached, augmented tf.data pipeline.

    python benchmarks/bench_train.py                       # 512 generated JPEGs, the small models
    python benchmarks/bench_train.py --table data/prepared/morphology.csv --size-px 64 --epochs 3
    python benchmarks/bench_train.py --archs xception --size-px 72 --batch-size 8

Reports, per architecture, the first epoch (decode + cache + graph tracing) and the steady-state
images/s (median of the later epochs, training only: no validation pass), with TF op determinism
on or off (``--no-determinism``; the setting is process-wide, so run once per setting).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from galaxy_xai.config import ImagesConfig
from galaxy_xai.data.images import make_dataset
from galaxy_xai.models.architectures import build_model


def generated_paths(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` 424-px JPEGs of smooth random structure (decoding cost like real images)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(coarse).resize((424, 424), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(str(path))
    return paths


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["vgg_small", "resnet_small", "xception_small"])
    parser.add_argument("--table", type=Path, help="a prepared morphology.csv (its train split is used)")
    parser.add_argument("--n-images", type=int, default=512, help="generated images when no --table")
    parser.add_argument("--size-px", type=int, default=64)
    parser.add_argument("--crop-px", type=int, default=212)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--jit", choices=["auto", "on", "off"], default="auto", help="XLA compilation")
    parser.add_argument("--no-determinism", action="store_true")
    args = parser.parse_args()

    if not args.no_determinism:
        tf.config.experimental.enable_op_determinism()
    with tempfile.TemporaryDirectory() as tmp:
        if args.table:
            table = pd.read_csv(args.table)
            paths = table.loc[table["split"] == "train", "image_path"].astype(str).tolist()
        else:
            paths = generated_paths(Path(tmp), args.n_images)
        targets = np.random.default_rng(0).random((len(paths), 37), dtype="float32")
        cfg = ImagesConfig(crop_px=args.crop_px, size_px=args.size_px)
        jit = {"auto": "auto", "on": True, "off": False}[args.jit]
        print(f"{len(paths)} images at {args.size_px} px, batch {args.batch_size}, jit {args.jit}, "
              f"determinism {'off' if args.no_determinism else 'on'}, {tf.config.threading.get_inter_op_parallelism_threads()} inter-op threads")  # fmt: skip
        for arch in args.archs:
            ds = make_dataset(paths, cfg, targets, batch_size=args.batch_size, training=True, seed=0)
            model = build_model(arch, args.size_px)
            model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=jit)
            timer = _EpochTimer()
            model.fit(ds, epochs=args.epochs, callbacks=[timer], verbose=0)
            steady = float(np.median(timer.seconds[1:])) if len(timer.seconds) > 1 else timer.seconds[0]
            print(
                f"{arch:15s} {model.count_params():>10,d} params  first epoch {timer.seconds[0]:6.1f} s  "
                f"steady {len(paths) / steady:7.1f} images/s"
            )


if __name__ == "__main__":
    main()
