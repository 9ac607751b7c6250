"""Galaxies per second of the synthetic-sky generator, for 1 and 2 worker processes.

    python -m benchmarks.bench_synthesize [--n 60] [--repeats 3]

Writes a small sky (``n`` labelled galaxies plus n/3 bar-catalogue galaxies) into a temporary folder
``repeats`` times per worker count and prints the median rate (the whole write_sky, pool start-up
and file writing included) and the 2-worker / 1-worker ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.provenance import run_context, save
from galaxy_xai.data.synthetic import write_sky


def rate(n_labelled: int, n_bars: int, workers: int, repeats: int) -> float:
    """Median galaxies per second over ``repeats`` runs."""
    rates = []
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            write_sky(
                Path(tmp) / "raw",
                seed=repeat,
                n_labelled=n_labelled,
                n_unlabelled=0,
                n_bars=n_bars,
                n_coadd_repeats=0,
                workers=workers,
            )
            rates.append((n_labelled + n_bars) / (time.perf_counter() - started))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="labelled galaxies per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the rates, with the run's commit and machine, as JSON here")
    args = parser.parse_args(argv)
    context = run_context()
    results = {w: rate(args.n, max(1, args.n // 3), w, args.repeats) for w in (1, 2)}
    for workers, value in results.items():
        print(f"workers={workers}: {value:.1f} galaxies/s")
    print(f"ratio 2/1: {results[2] / results[1]:.2f}")
    if args.out:
        save(args.out, context, {"galaxies_per_s": {f"workers_{w}": v for w, v in results.items()},
                                 "ratio_2_over_1": results[2] / results[1]})


if __name__ == "__main__":
    main()
