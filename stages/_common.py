"""What every stage does first: logging, then the validated config."""

from __future__ import annotations

import argparse
import logging

from galaxy_xai.config import Config, ConfigError, load_config
from galaxy_xai.io import setup_logging


def start(name: str, parser: argparse.ArgumentParser, argv: list[str] | None = None) -> tuple[argparse.Namespace, Config, logging.Logger]:
    """Parse arguments, set up one-line logging and load + validate ``--params`` (params.yaml).

    Exits with status 2 and a one-line message naming the offending key on a bad config, before
    any heavy work starts.
    """
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    setup_logging()
    log = logging.getLogger(name)
    try:
        cfg = load_config(args.params)
    except ConfigError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    return args, cfg, log
