"""Per-image cost of the paper's backbones on this machine, and the paper-scale cost it implies.

For each case (architecture x input side, built by :func:`galaxy_xai.models.architectures.build_model` with
``weights=None``: speed does not depend on the weights) a fresh interpreter times, on one batch of
``--batch`` seeded random images:

* ``forward``   the model's prediction, ``model(x, training=False)`` compiled (predict, control
                predictions, Score-CAM / occlusion passes);
* ``gradient``  the input gradient of the Class3.1 score, forward + backward to the input, compiled
                (one SmoothGrad sample, one Integrated-Gradients step);
* ``train``     one optimiser step, ``train_on_batch`` with Adam and MSE (forward + backward to every
                weight + the update: one training image).

Each is the median of ``--repeats`` timed calls after one untimed warm-up (which pays the trace),
reported in seconds per image; ``peak_rss_mb`` is the child process's largest resident set
(``ru_maxrss``: TensorFlow, the model and the batch's activations). Cases run one after another,
so timings on a shared machine move with its load: compare ratios, rerun on an idle machine for
absolute numbers. Usage::

    python -m benchmarks.bench_backbones                          # vgg16, resnet50v2, xception at 224 px,
                                                                  # resnet50v2 at 64 / 128 px, the paper table
    python -m benchmarks.bench_backbones --archs vgg16 --sizes 224 --repeats 5 --json /tmp/b.json

:func:`paper_scale` turns the measured per-image costs into the paper-scale work of each stage
(the counts in :data:`PAPER`); docs/paper-scale.md holds the table it printed.
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

from benchmarks.provenance import run_context, save

ROOT = Path(__file__).resolve().parents[1]
PAPER_ARCHS = ("vgg16", "resnet50v2", "xception")
SCALING_ARCH = "resnet50v2"
SCALING_SIZES_PX = (64, 128)  # with 224: how the cost grows with the image side

# The paper-scale counts (the real data, the paper's configuration, configs/paper.yaml).
PAPER = {
    "labelled": 61_578,  # training_solutions_rev1.csv rows
    "train_fraction": 0.85,  # 1 - prepare.test_fraction - prepare.val_fraction
    "val_fraction": 0.05,
    "test_fraction": 0.10,
    "epochs": 100,  # models.*.epochs (early stopping may end sooner: an upper bound)
    "bars": 3_150,  # Hoyle catalogue
    "xai_val_fraction": 1 / 3,
    "samples": 256,  # xai.smoothgrad.samples
    "test_draws": 2,  # the test maps are made twice (two noise draws)
    "control_folds": 5,
    "control_train_fraction": 0.64 * 4 / 5,  # each fold trains on 4/5 of the 80% train + val galaxies
    "rotation_maps": 40 * 4 * 2,  # xai.rotation: galaxies x angles x (rotation, noise checks)
}


def run_case(arch: str, px: int, batch: int, repeats: int) -> dict:
    """Time forward, input gradient and training step of one model in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from galaxy_xai.models.architectures import build_model
    from galaxy_xai.xai.explainers.core import class_index, input_gradient, score_model

    model = build_model(arch, px, weights=None, seed=0)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(size=(batch, px, px, 3)).astype("float32"))
    y = tf.constant(rng.uniform(size=(batch, 37)).astype("float32"))
    scores, index = score_model(model), class_index("Class3.1")
    forward = tf.function(lambda images: model(images, training=False))
    gradient = tf.function(lambda images: input_gradient(scores, index, images))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
    calls = {
        "forward": lambda: forward(x).numpy(),
        "gradient": lambda: gradient(x).numpy(),
        "train": lambda: model.train_on_batch(x, y),
    }
    out: dict = {"arch": arch, "px": px, "batch": batch, "params_m": model.count_params() / 1e6}
    for name, call in calls.items():
        call()  # warm-up: the trace and TensorFlow's one-off costs
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out[f"{name}_s_per_image"] = statistics.median(times) / batch
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def spawn(arch: str, px: int, batch: int, repeats: int) -> dict:
    """Run one case in a fresh interpreter (its own peak memory) and parse its JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.bench_backbones", "--case", f"{arch}:{px}",
           "--batch", str(batch), "--repeats", str(repeats)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {arch} at {px} px failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def paper_scale(case: dict, p: dict = PAPER) -> dict[str, dict]:
    """Work of each stage at paper scale for one backbone, from its measured per-image costs.

    Returns {stage: {"images": passes of the network, "kind": which cost, "cpu_hours": passes x
    seconds per image / 3600}}; training counts every epoch (an upper bound: early stopping).
    """
    train_images = p["labelled"] * p["train_fraction"]
    n_val_bars = p["bars"] * p["xai_val_fraction"]
    maps = n_val_bars + (p["bars"] - n_val_bars) * p["test_draws"]
    work = {
        "train": (train_images * p["epochs"], "train"),
        "train (validation passes)": (p["labelled"] * p["val_fraction"] * p["epochs"], "forward"),
        "predict (Table 1)": (p["labelled"] * (p["test_fraction"] + p["val_fraction"]), "forward"),
        "heatmap (SmoothGrad)": (maps * p["samples"], "gradient"),
        "rotation": (p["rotation_maps"] * p["samples"], "gradient"),
        "control (xception only)": (p["bars"] * p["control_train_fraction"] * p["epochs"] * p["control_folds"], "train"),
        # Issue #26's twins: the permuted-labels twin trains as long as its model, and both twins
        # (it and the random-weights copy, which costs nothing to make) are explained like the model.
        "twins: permuted-labels training": (train_images * p["epochs"], "train"),
        "twins: heatmaps (two per backbone)": (2 * maps * p["samples"], "gradient"),
    }
    return {
        stage: {"images": n, "kind": kind, "cpu_hours": n * case[f"{kind}_s_per_image"] / 3600}
        for stage, (n, kind) in work.items()
    }


def table(results: list[dict]) -> str:
    """Markdown: the measured per-image costs, and ratios to the first case of the scaling arch."""
    lines = ["| arch | px | params (M) | forward s/img | gradient s/img | train s/img | gradient / forward | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['arch']} | {r['px']} | {r['params_m']:.1f} | {r['forward_s_per_image']:.4f} | "
            f"{r['gradient_s_per_image']:.4f} | {r['train_s_per_image']:.4f} | "
            f"{r['gradient_s_per_image'] / r['forward_s_per_image']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    scaling = sorted((r for r in results if r["arch"] == SCALING_ARCH), key=lambda r: r["px"])
    if len(scaling) > 1:
        base = scaling[0]
        lines += ["", f"{SCALING_ARCH}: cost relative to {base['px']} px (pixel ratio = (px / {base['px']})^2)", "",
                  "| px | pixel ratio | forward | gradient | train |", "|---|---|---|---|---|"]
        for r in scaling:
            ratio = {k: r[f"{k}_s_per_image"] / base[f"{k}_s_per_image"] for k in ("forward", "gradient", "train")}
            lines.append(f"| {r['px']} | {(r['px'] / base['px']) ** 2:.1f} | {ratio['forward']:.1f} | "
                         f"{ratio['gradient']:.1f} | {ratio['train']:.1f} |")
    return "\n".join(lines)


A100_TRAIN_IMAGES_PER_S = 2_375
"""NVIDIA's published ResNet-50 v1.5 training throughput on one A100 (TensorFlow, mixed precision + XLA,
batch 256; DeepLearningExamples, TensorFlow/Classification/ConvNets/resnet50v1.5/README.md)."""

A100_DERATE = 0.7
"""What we assume our training keeps of it: batch 32, no XLA and a JPEG input pipeline. An assumption."""

FALLBACK_GPU_SPEEDUP = 200
"""One A100 over this CPU when no 224-px ResNet50V2 training step was timed (the earlier machine's ratio)."""


def gpu_speedup(results: list[dict]) -> float:
    """How many times faster one A100 does our passes than the CPU that timed ``results``: NVIDIA's
    training throughput, derated, against the measured 224-px ResNet50V2 training step. Tied to the
    measured CPU, so the GPU hours do not depend on which CPU ran the benchmark."""
    step = next((r["train_s_per_image"] for r in results if r["arch"] == SCALING_ARCH and r["px"] == 224), None)
    return FALLBACK_GPU_SPEEDUP if step is None else A100_TRAIN_IMAGES_PER_S * A100_DERATE * step


GPU_SCALING = 17_400 / (8 * A100_TRAIN_IMAGES_PER_S)
"""Per-GPU efficiency of data-parallel training over 8 GPUs, from the same README (17,400 images/s on
8 A100s); assumed to hold over 4 machines of 8 GPUs too. Heatmap shards are independent: efficiency 1."""

SETUPS = {"1 GPU": 1, "8 GPUs (1 machine)": 8, "4 machines x 8 GPUs": 32}


def paper_table(results: list[dict]) -> str:
    """Markdown: CPU-hours of each stage at paper scale (224-px cases), and the wall-clock hours on GPUs."""
    cases = {r["arch"]: r for r in results if r["px"] == 224}
    if not cases:
        return ""
    costs = {arch: paper_scale(r) for arch, r in cases.items()}
    speedup = gpu_speedup(results)
    stages = list(next(iter(costs.values())))

    def cpu_hours(stage: str, arch: str) -> float:
        # The control CNN is one Xception, not one per backbone.
        return 0.0 if stage.startswith("control") and arch != "xception" else costs[arch][stage]["cpu_hours"]

    lines = ["| stage | network passes per backbone | cost | " + " | ".join(f"{a} CPU-h" for a in costs)
             + " | all CPU-h | " + " | ".join(f"{s} (h)" for s in SETUPS) + " |",
             "|---|---|---|" + "---|" * (len(costs) + 1 + len(SETUPS))]
    totals = dict.fromkeys(["cpu", *SETUPS], 0.0)
    for stage in stages:
        first = next(iter(costs.values()))[stage]
        total = sum(cpu_hours(stage, a) for a in costs)
        efficiency = 1.0 if first["kind"] == "gradient" else GPU_SCALING
        wall = {s: total / speedup / (n if n == 1 else n * efficiency) for s, n in SETUPS.items()}
        totals["cpu"] += total
        for s in SETUPS:
            totals[s] += wall[s]
        lines.append(f"| {stage} | {first['images']:,.0f} | {first['kind']} | "
                     + " | ".join(f"{cpu_hours(stage, a):,.0f}" for a in costs) + f" | {total:,.0f} | "
                     + " | ".join(f"{wall[s]:,.2f}" for s in SETUPS) + " |")
    lines.append("| **total** | | | " + " | " * len(costs) + f"**{totals['cpu']:,.0f}** | "
                 + " | ".join(f"**{totals[s]:,.2f}**" for s in SETUPS) + " |")
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> list[dict]:
    """Time every case, each in a fresh interpreter."""
    cases = [(a, s) for a in args.archs for s in args.sizes]
    cases += [(SCALING_ARCH, s) for s in args.scaling_sizes if (SCALING_ARCH, s) not in cases]
    results = []
    for arch, px in cases:
        results.append(spawn(arch, px, args.batch, args.repeats))
        print(f"{arch} at {px} px: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(PAPER_ARCHS), choices=PAPER_ARCHS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[224], help="input sides (px) of every arch")
    parser.add_argument("--scaling-sizes", nargs="*", type=int, default=list(SCALING_SIZES_PX),
                        help=f"extra input sides (px) for {SCALING_ARCH} only")
    parser.add_argument("--batch", type=int, default=8, help="images per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measure (median)")
    parser.add_argument("--out", "--json", type=Path, help="also write the results and the tables, with the run's "
                        "commit and machine, here (benchmarks/results/backbones.json is the one the docs quote)")
    parser.add_argument("--cases", type=Path, help="an earlier --out file: tabulate its measured cases again, "
                        "timing nothing (after a change to the tables' arithmetic)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child process: arch:px
    args = parser.parse_args(argv)
    if args.case:
        arch, px = args.case.split(":")
        print(json.dumps(run_case(arch, int(px), args.batch, args.repeats)))
        return
    context = run_context()
    if args.cases:
        earlier = json.loads(args.cases.read_text())
        results, context["cases_measured_by"] = earlier["results"]["cases"], earlier["run"]
    else:
        results = measure(args)
    tables = f"{table(results)}\n\n{paper_table(results)}"
    print(tables)
    if args.out:
        assumptions = {"gpu_speedup": gpu_speedup(results), "gpu_scaling": GPU_SCALING, "paper_counts": PAPER,
                       "a100_train_images_per_s": A100_TRAIN_IMAGES_PER_S, "a100_derate": A100_DERATE}
        save(args.out, context, {"cases": results, "tables": tables, "assumptions": assumptions})


if __name__ == "__main__":
    main()
