"""SmoothGrad throughput and peak memory: this package against tf-keras-vis, at equal N and model.

Variants (each runs in its own subprocess, so its peak RSS is its own):

* ``ours``       galaxy_xai.xai.explainers' SmoothGrad: noisy copies of several galaxies per compiled batch;
* ``tkv_single`` tf-keras-vis as the original code used it: one galaxy per call, the model's last
                 activation replaced in place, ``clear_session()`` after each galaxy;
* ``tkv_batch``  tf-keras-vis with all galaxies in one call;
* ``floor``      the model's raw input-gradient throughput at the same batch size (a compiled
                 gradient of a fixed batch); maps/s = gradients/s / N, what any SmoothGrad can reach;
* ``baseline``   TensorFlow imported and the model built, nothing explained (the RSS floor).

Targets: ``ours`` at least 15x ``tkv_single`` and 3x ``tkv_batch``, at least 80% of ``floor``, and
under 4 GB peak at 224 px with N = 256.

Throughput is maps per second, the median over ``--rounds`` rounds (each round runs every variant
once, in a fresh process, so a change in the machine's load hits all variants alike) of
``--repeats`` timed runs after ``--warmup`` untimed runs (on the timed galaxies; on two for
``tkv_single``). ``ours`` caches its compiled function per model and settings, so the warm-up pays
its trace, as the first call of a stage does. Peak memory is the largest
``ru_maxrss`` of the variant's processes. Usage::

    python -m benchmarks.bench_saliency                       # the comparison at 64 px, N = 64
    python -m benchmarks.bench_saliency --variants ours baseline --px 224 --samples 256 \\
        --galaxies 64 --rounds 1 --warmup 0                   # the 224-px memory check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.provenance import run_context, save
from galaxy_xai.config import ATTRIBUTIONS

VARIANTS = ("baseline", "ours", "tkv_single", "tkv_batch", "floor")
ROOT = Path(__file__).resolve().parents[1]


def build(args: argparse.Namespace):
    """The benchmark model (random weights: speed does not depend on them) and seeded images."""
    from galaxy_xai.models.architectures import build_model

    model = build_model(args.arch, args.px, seed=0)
    images = np.random.default_rng(0).uniform(size=(args.galaxies, args.px, args.px, 3)).astype("float32")
    return model, images


def timed(run, images: np.ndarray, repeats: int, warmup: int, warmup_images: np.ndarray) -> list[float]:
    """Seconds per ``run(images)``, after ``warmup`` untimed runs of ``run(warmup_images)`` (they pay
    TensorFlow's one-off costs: thread pools, oneDNN primitives, the trace of a compiled function)."""
    for _ in range(warmup):
        run(warmup_images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - start)
    return times


def run_variant(args: argparse.Namespace) -> dict:
    """Run one variant in this process; return its maps/s per repeat and its peak RSS."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    import keras
    import tensorflow as tf

    from galaxy_xai.xai.explainers.core import class_index, finish_maps, input_gradient, score_model
    from galaxy_xai.xai.explainers.gradients import SmoothGrad

    warnings.filterwarnings("ignore", category=UserWarning)  # Keras' chatter on tf-keras-vis's list inputs
    model, images = build(args)
    index = class_index("Class3.1")

    if args.variant == "ours":
        smoothgrad = SmoothGrad(
            index, args.samples, args.noise, batch_size=args.batch_size, attribution=args.attribution
        )

        def run(batch):
            smoothgrad(model, batch, seed=0)

    elif args.variant in ("tkv_single", "tkv_batch"):
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.scores import CategoricalScore

        def make_linear(m):
            m.layers[-1].activation = keras.activations.linear  # the original code's in-place modifier

        def explain(batch):
            maps = Saliency(model, model_modifier=make_linear, clone=False)(
                CategoricalScore(index), batch, smooth_samples=args.samples, smooth_noise=args.noise
            )
            return finish_maps(maps.reshape(len(batch), *maps.shape[-2:]), "tf-keras-vis")

        if args.variant == "tkv_single":
            images = images[: args.per_galaxy]

            def run(batch):
                for image in batch:
                    explain(image[None])
                    keras.backend.clear_session()

        else:
            run = explain
    elif args.variant == "floor":
        scores = score_model(model)
        gradient = tf.function(lambda x: input_gradient(scores, index, x))
        full = tf.constant(np.resize(images, (args.batch_size, *images.shape[1:])))

        def run(batch):
            # The gradients SmoothGrad needs for these maps, as full batches of clean inputs.
            for _ in range(max(1, round(args.samples * len(batch) / args.batch_size))):
                gradient(full).numpy()

    elif args.variant != "baseline":
        raise ValueError(f"unknown variant {args.variant!r}")

    if args.variant == "baseline":
        model(images[:1])
        n_maps, times = 0, []
    else:
        # One galaxy per call pays its one-off costs on any two galaxies; the batched variants
        # compile for the batch they are timed on, as a stage explaining many galaxies does once.
        warmup_images = images[:2] if args.variant == "tkv_single" else images
        times = timed(run, images, args.repeats, args.warmup, warmup_images)
        n_maps = len(images)
        if args.variant == "floor":
            n_maps = max(1, round(args.samples * n_maps / args.batch_size)) * args.batch_size / args.samples
    return {
        "variant": args.variant,
        "maps": n_maps,
        "seconds": times,
        "maps_per_s": [n_maps / t for t in times],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


VARIANT_ARGS = ("arch", "px", "samples", "noise", "galaxies", "per_galaxy", "batch_size", "repeats", "warmup", "attribution")
"""The options every variant's fresh interpreter is given, and the setup the summary reports."""


def spawn(args: argparse.Namespace, variant: str) -> dict:
    """Run one variant in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.bench_saliency", "--variant", variant]
    for key in VARIANT_ARGS:
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(results: dict[str, dict]) -> dict:
    """Medians and the ratios the issue sets targets for (ours / each reference)."""
    median = {v: statistics.median(r["maps_per_s"]) for v, r in results.items() if r["maps_per_s"]}
    ratios = {}
    if "ours" in median:
        for ref, name in (
            ("tkv_single", "vs_tkv_single"),
            ("tkv_batch", "vs_tkv_batch"),
            ("floor", "of_floor"),
        ):
            if ref in median:
                ratios[name] = median["ours"] / median[ref]
    return {
        "median_maps_per_s": median,
        "ratios": ratios,
        "peak_rss_mb": {v: r["peak_rss_mb"] for v, r in results.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--arch", default="vgg_small")
    parser.add_argument("--px", type=int, default=64)
    parser.add_argument("--samples", type=int, default=64, help="SmoothGrad N")
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--galaxies", type=int, default=64)
    parser.add_argument(
        "--per-galaxy", type=int, default=8, help="galaxies timed for tkv_single (it is slow)"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--attribution",
        default="abs_gradient",
        choices=ATTRIBUTIONS,
        help="what ours computes (tf-keras-vis only has abs_gradient; both cost the same)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one process per variant")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per process")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones")
    parser.add_argument("--out", type=Path, help="write the results, with the run's commit and machine, as JSON")
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    context = run_context()
    # Rounds of one run per variant: a change in the machine's load hits every variant alike.
    results: dict[str, dict] = {}
    for round_index in range(args.rounds):
        for variant in args.variants:
            run = spawn(args, variant)
            merged = results.setdefault(variant, {**run, "seconds": [], "maps_per_s": [], "peak_rss_mb": 0.0})
            merged["seconds"] += run["seconds"]
            merged["maps_per_s"] += run["maps_per_s"]
            merged["peak_rss_mb"] = max(merged["peak_rss_mb"], run["peak_rss_mb"])
            rate = ", ".join(f"{x:.2f}" for x in run["maps_per_s"]) or "-"
            print(
                f"round {round_index + 1} {variant:11s} {rate:>8s} maps/s  peak RSS {run['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    for variant, r in results.items():
        rate = statistics.median(r["maps_per_s"]) if r["maps_per_s"] else float("nan")
        print(f"{variant:11s} median {rate:8.3f} maps/s  peak RSS {r['peak_rss_mb']:6.0f} MB")
    summary = summarise(results)
    summary["setup"] = {k: getattr(args, k) for k in (*VARIANT_ARGS, "rounds")}
    for name, ratio in summary["ratios"].items():
        print(f"ours {name}: {ratio:.2f}x")
    if args.out:
        save(args.out, context, {"summary": summary, "runs": results})


if __name__ == "__main__":
    main()
