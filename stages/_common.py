"""What every stage does first (logging, then the validated config) and how it stops on bad input."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator

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


@contextlib.contextmanager
def exit_on_bad_input(log: logging.Logger) -> Iterator[None]:
    """Inside this block a ``ValueError`` (the library's bad-input error: its message names the file,
    row or key and what was expected) becomes one logged line and exit status 2, with no traceback.

    Stages write their outputs after the block, so a failure leaves nothing half-written.
    """
    try:
        yield
    except ValueError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
