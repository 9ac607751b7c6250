"""Stage ``synthesize``: write the embedded synthetic Galaxy Zoo sky in the real data layout.

    python -m stages.synthesize --out data/raw

Reads params ``seed`` and ``synthetic``; see :mod:`galaxy_xai.data.synthetic.sky` for what is written.
"""

from __future__ import annotations

import argparse

from galaxy_xai.data.synthetic import write_sky
from stages._common import start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to (re)create, e.g. data/raw")
    args, cfg, log = start("synthesize", parser, argv)
    s = cfg.synthetic
    write_sky(
        args.out,
        seed=cfg.seed,
        n_labelled=s.n_labelled,
        n_unlabelled=s.n_unlabelled,
        n_bars=s.n_bars,
        n_coadd_repeats=s.n_coadd_repeats,
        workers=s.workers,
        jpeg_quality=s.jpeg_quality,
        log=log,
    )


if __name__ == "__main__":
    main()
