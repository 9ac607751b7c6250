"""Benchmark of Algorithm 1: the published implementation vs galaxy_xai.bars.algorithm1, in one run.

1. speed per 224-px map, one (T_c, T_l) pair: the literal published code (threshold loop + O(n^2)
   Python double loop) on a few maps vs :func:`galaxy_xai.bars.algorithm1.bar_length_px`;
2. agreement: bit-for-bit equal lengths on N maps against the published code. The oracle keeps the
   published threshold loop literally and computes the same per-pair ``sqrt(dx^2 + dy^2)`` with NumPy
   broadcasting instead of the double loop (same floats, see tests/oracle.py);
3. the paper-scale grid search: 1,050 galaxies x 3 models of 224-px maps, 5 map sources x 2 X_input x
   25 (T_c, T_l) with :func:`galaxy_xai.bars.barlength.map_source_lengths` (target: under 60 s).

Maps are saliency-like: an elongated Gaussian bar, often a bulge, smoothed noise, normalised; half
are rounded to float16 like the heatmap files.

    python -m benchmarks.bench_barlength --out benchmarks/bench_barlength.json
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from tqdm import tqdm

from benchmarks.provenance import run_context, save
from galaxy_xai.bars.algorithm1 import bar_length_px, scale_len_threshold
from galaxy_xai.bars.barlength import map_source_lengths
from galaxy_xai.io import setup_logging
from tests.oracle import bar_like_map, published_bar_length

T_C = [0.7, 0.75, 0.8, 0.85, 0.9]
T_L_224 = [10, 20, 30, 40, 50]

log = logging.getLogger("bench_barlength")


def saliency_maps(n: int, size: int, seed: int) -> np.ndarray:
    """(n, size, size) bar-like maps; odd ones rounded to float16."""
    rng = np.random.default_rng(seed)
    maps = np.stack([bar_like_map(size, rng) for _ in range(n)])
    maps[1::2] = maps[1::2].astype(np.float16)
    return maps


def speed(n_literal: int, n_fast: int, seed: int) -> dict:
    maps = saliency_maps(max(n_literal, n_fast), 224, seed)
    c_t, l_t = 0.8, 30
    literal = []
    for cam in tqdm(maps[:n_literal], desc="literal", unit="map"):
        start = time.perf_counter()
        published_bar_length(cam, c_t, l_t, literal=True)
        literal.append(time.perf_counter() - start)
    fast = []
    for cam in maps[:n_fast]:
        start = time.perf_counter()
        bar_length_px(cam, c_t, l_t)
        fast.append(time.perf_counter() - start)
    fast_same = np.median(fast[:n_literal])
    return {
        "map_px": 224,
        "corr_threshold": c_t,
        "len_threshold": l_t,
        "literal_median_s": float(np.median(literal)),
        "literal_maps": n_literal,
        "fast_median_s": float(np.median(fast)),
        "fast_maps": n_fast,
        "fast_median_same_maps_s": float(fast_same),
        "speedup_same_maps": float(np.median(literal) / fast_same),
        "speedup": float(np.median(literal) / np.median(fast)),
    }


def agreement(n: int, size: int, seed: int) -> dict:
    maps = saliency_maps(n, size, seed)
    rng = np.random.default_rng(seed + 1)
    pairs = [
        (float(rng.choice(T_C)), scale_len_threshold(float(rng.choice(T_L_224)), size)) for _ in range(n)
    ]
    diffs = np.empty(n)
    for i, (cam, (c_t, l_t)) in enumerate(
        tqdm(zip(maps, pairs, strict=True), total=n, desc=f"oracle {size}px")
    ):
        diffs[i] = abs(bar_length_px(cam, c_t, l_t) - published_bar_length(cam, c_t, l_t))
    return {
        "maps": n,
        "map_px": size,
        "bit_for_bit_fraction": float(np.mean(diffs == 0)),
        "max_abs_diff_px": float(diffs.max()),
        "within_1e-6_fraction": float(np.mean(diffs <= 1e-6)),
    }


def paper_scale_search(n: int, seed: int) -> dict:
    """1,050 galaxies: three models' maps of the same bar (independent noise) and a grey input."""
    size = 224
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    models = {
        name: np.empty((n, size, size), dtype=np.float16) for name in ("vgg16", "resnet50v2", "xception")
    }
    grey = np.empty((n, size, size), dtype=np.float16)
    for i in tqdm(range(n), desc="making maps", unit="galaxy"):
        angle = rng.uniform(0, 180)
        for k, name in enumerate(models):
            models[name][i] = bar_like_map(size, np.random.default_rng([seed, i, k]), angle_deg=angle)
        disk = np.exp(-np.hypot(xx, yy) / rng.uniform(15, 40))
        grey[i] = np.clip(disk + 0.3 * models["vgg16"][i] + rng.normal(0, 0.02, (size, size)), 0, 1)
    len_px = [scale_len_threshold(t, size) for t in T_L_224]
    start = time.perf_counter()
    lengths = map_source_lengths(models, grey, [False, True], T_C, len_px, progress=True)
    elapsed = time.perf_counter() - start
    return {
        "galaxies": n,
        "map_px": size,
        "map_sources": sorted({m for m, _ in lengths}),
        "x_input": [False, True],
        "pairs": len(T_C) * len(T_L_224),
        "maps_measured": n * (len(models) + 1) * 2,
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--literal-maps", type=int, default=5)
    parser.add_argument("--fast-maps", type=int, default=200)
    parser.add_argument("--agree-maps", type=int, default=2000)
    parser.add_argument("--agree-px", type=int, default=64, help="map side of the agreement run")
    parser.add_argument("--agree-maps-224", type=int, default=100, help="extra agreement maps at 224 px")
    parser.add_argument("--search-galaxies", type=int, default=1050)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results, with the run's commit and machine, as JSON here")
    args = parser.parse_args(argv)
    setup_logging()
    context = run_context()
    results = {}
    results["speed"] = speed(args.literal_maps, args.fast_maps, args.seed)
    log.info("speed: %s", results["speed"])
    results["search"] = paper_scale_search(args.search_galaxies, args.seed + 2)
    log.info("paper-scale search: %s", results["search"])
    results["agreement"] = [agreement(args.agree_maps, args.agree_px, args.seed + 3)]
    if args.agree_maps_224:
        results["agreement"].append(agreement(args.agree_maps_224, 224, args.seed + 4))
    log.info("agreement: %s", results["agreement"])
    if args.out:
        save(args.out, context, results)


if __name__ == "__main__":
    main()
