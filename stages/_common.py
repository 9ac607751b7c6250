"""What every stage does first (logging, then the validated config) and how it stops on bad input."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator

from galaxy_xai.config import Config, ConfigError, ModelConfig, load_config
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


def morphology_model_config(cfg: Config, model: str, params: str) -> ModelConfig:
    """The recipe of morphology model ``model`` (a key of ``models``), checked against the image size
    before any work; ValueError naming the key and what was expected (``params``: the params file)."""
    from galaxy_xai.models.architectures import validate  # TensorFlow: only the stages that train load it

    if model not in cfg.models:
        raise ValueError(f"--model {model}: not a key of models in {params}; allowed: {', '.join(cfg.models)}")
    model_cfg = cfg.models[model]
    try:
        validate(model_cfg.arch, cfg.images.size_px, model_cfg.weights)
    except ValueError as err:
        raise ValueError(f"models.{model}: {err}") from None
    return model_cfg


def cpu_workers() -> int:
    """Processes a stage may start: the CPUs this process may run on (its affinity mask, which
    containers and ``taskset`` narrow), else every CPU of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
