"""Which ``tf.distribute`` strategy training and explaining run under, and which worker writes files.

``train.distribute`` (:data:`galaxy_xai.config.DISTRIBUTE`) names the strategy:

* ``none``: TensorFlow's default strategy, one device;
* ``mirrored``: ``MirroredStrategy``, synchronous data parallelism over every visible GPU of one
  machine (over the CPU when there is none);
* ``multi_worker``: ``MultiWorkerMirroredStrategy``, the same over several machines. Every machine
  runs the same command with the standard ``TF_CONFIG`` environment variable naming the cluster and
  its own task, e.g. on the first of two machines
  ``TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'``
  (the second has ``"index": 1``). Task 0 of ``worker`` (or the one ``chief`` task, if the cluster
  names one) is the chief;
* ``auto``: ``multi_worker`` when ``TF_CONFIG`` names several tasks, else ``mirrored`` when several
  GPUs are visible, else ``none``.

The batch size of a model is the *global* batch: each step splits it over the replicas and sums
their gradients, so a distributed run follows the single-device run with the same batch (up to
float rounding; tests/test_distribute.py). Under ``multi_worker`` every worker runs the whole stage,
since the collective ops need all of them, but only the chief's files are outputs
(:func:`worker_paths`).

TensorFlow's start-up of ``multi_worker`` waits for every worker in native code, without a time
limit, and takes SIGTERM over: a worker that never started left a stage silent and unkillable but
by SIGKILL. Here the start-up waits at most ``limits.worker_timeout_s`` and then stops naming the
workers that do not answer, and a SIGTERM stops it at once (:func:`peers_deadline`, with the
watchdog process of :mod:`galaxy_xai.watchdog`); once started, SIGTERM ends the stage as usual.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import tensorflow as tf

from galaxy_xai import watchdog
from galaxy_xai.config import DISTRIBUTE

log = logging.getLogger(__name__)

TASK_TYPES = ("chief", "worker")
"""The ``TF_CONFIG`` task types that train under MultiWorkerMirroredStrategy (at most one chief)."""

_TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'


def cluster_tasks(tf_config: str | None) -> int:
    """Number of training tasks (chief + workers) the ``TF_CONFIG`` JSON text names; 0 when it is
    unset or blank.

    Raises ValueError, naming what is wrong, when the text is not a MultiWorkerMirroredStrategy
    cluster: not JSON, no ``cluster.worker`` list of ``host:port`` addresses, more than one chief,
    or a ``task`` whose ``type`` is not in :data:`TASK_TYPES` or whose ``index`` is not one of its
    type's addresses.
    """
    if tf_config is None or not tf_config.strip():
        return 0
    where = f"TF_CONFIG = {tf_config!r}"
    try:
        spec = json.loads(tf_config)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err}); expected e.g. {_TF_CONFIG_EXAMPLE}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"{where}: expected an object with 'cluster' and 'task', e.g. {_TF_CONFIG_EXAMPLE}")
    addresses = {kind: cluster.get(kind, []) for kind in TASK_TYPES}
    if not all(isinstance(a, list) and all(isinstance(h, str) and ":" in h for h in a) for a in addresses.values()):
        raise ValueError(f"{where}: cluster.chief and cluster.worker must be lists of 'host:port' addresses")
    if not addresses["worker"] or len(addresses["chief"]) > 1:
        raise ValueError(f"{where}: expected at least one cluster.worker address and at most one cluster.chief")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in TASK_TYPES or not isinstance(index, int) or not 0 <= index < len(addresses[kind]):
        raise ValueError(
            f"{where}: task must be {{'type': one of {', '.join(TASK_TYPES)}, 'index': a position in that "
            f"cluster list}}, got {task}"
        )
    return len(addresses["chief"]) + len(addresses["worker"])


def cluster_peers(tf_config: str | None) -> list[tuple[str, str]]:
    """The other tasks of the ``TF_CONFIG`` JSON text (checked by :func:`cluster_tasks`) as
    (name, "host:port"), e.g. ``[("worker 1", "host2:2222")]``; [] when it names no cluster."""
    if not cluster_tasks(tf_config):
        return []
    spec = json.loads(tf_config)
    own = (spec["task"]["type"], spec["task"].get("index", 0))
    return [
        (f"{kind} {index}", address)
        for kind in TASK_TYPES
        for index, address in enumerate(spec["cluster"].get(kind, []))
        if (kind, index) != own
    ]


@contextlib.contextmanager
def peers_deadline(timeout_s: float | None, key: str, tf_config: str | None = None) -> Iterator[None]:
    """Bound the wait for the other workers of ``TF_CONFIG`` that the block starts (the creation of a
    MultiWorkerMirroredStrategy): after ``timeout_s`` seconds, or on a SIGTERM, a watchdog process
    (:mod:`galaxy_xai.watchdog`) prints one line naming the parameter ``key`` and the workers that do
    not answer and kills this process. Afterwards SIGTERM has its default action again (TensorFlow
    installs a handler that swallows it). The SIGTERM check needs the stage to have called
    :func:`galaxy_xai.watchdog.hold_sigterm` before importing TensorFlow (stages/train.py and
    stages/heatmap_shard.py do). ``timeout_s`` None or no other worker: the block runs unguarded.
    """
    peers = cluster_peers(os.environ.get("TF_CONFIG") if tf_config is None else tf_config)
    if timeout_s is None or not peers or threading.current_thread() is not threading.main_thread():
        yield
        return
    log.info(
        "%s = multi_worker: waiting up to %g s (limits.worker_timeout_s) for %s",
        key, timeout_s, ", ".join(f"{name} ({address})" for name, address in peers),
    )  # fmt: skip
    guard = subprocess.Popen(
        [sys.executable, watchdog.__file__, str(os.getpid()), str(timeout_s), key, json.dumps(peers)],
        stdin=subprocess.PIPE,
    )
    try:
        yield
    finally:
        guard.stdin.close()  # the wait is over: the watchdog exits
        guard.wait()
        watchdog.release_sigterm(default_action=True)


def strategy_name(distribute: str, env: Mapping[str, str] = os.environ, key: str = "train.distribute") -> str:
    """The strategy ``distribute`` (a :data:`DISTRIBUTE` value) resolves to: ``none``,
    ``mirrored`` or ``multi_worker`` (see the module docstring for ``auto``).

    Raises ValueError, naming the parameter ``key``, for an unknown value, for ``multi_worker``
    without a valid ``TF_CONFIG`` in ``env``, and for a set but invalid ``TF_CONFIG`` under ``auto``.
    """
    if distribute not in DISTRIBUTE:
        raise ValueError(f"{key} = {distribute!r}: expected one of {', '.join(DISTRIBUTE)}")
    if distribute in ("auto", "multi_worker"):
        try:
            n_tasks = cluster_tasks(env.get("TF_CONFIG"))
        except ValueError as err:
            raise ValueError(f"{key} = {distribute}: {err}") from None
        if distribute == "multi_worker" and n_tasks == 0:
            raise ValueError(
                f"{key} = multi_worker: the TF_CONFIG environment variable is not set; every "
                f"machine needs one naming the cluster and its own task, e.g. TF_CONFIG='{_TF_CONFIG_EXAMPLE}'"
            )
        if distribute == "multi_worker" or n_tasks > 1:
            return "multi_worker"
    if distribute == "mirrored" or (distribute == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return "mirrored"
    return "none"


def on_one_machine(distribute: str, key: str = "train.distribute") -> str:
    """``distribute`` for small models trained on one machine after TensorFlow has run ops (the
    control stage's cross-fit, the explainers stage's permuted-label model): ``none`` where it
    resolves to ``multi_worker`` (that strategy must start before any op, and every worker would
    write), else ``distribute`` itself."""
    return "none" if strategy_name(distribute, key=key) == "multi_worker" else distribute


def select_strategy(
    distribute: str, key: str = "train.distribute", timeout_s: float | None = None
) -> tf.distribute.Strategy:
    """The strategy of the parameter ``key`` = ``distribute`` (:func:`strategy_name`).

    ``mirrored`` uses every visible GPU, else the CPU's logical devices. A process has one
    strategy of each kind: later calls return the same one (two strategies would number their
    collective ops alike and clash). ``multi_worker`` must be selected before TensorFlow runs its
    first op (TensorFlow configures its collective ops at start-up), e.g. first thing in a stage;
    its start-up waits at most ``timeout_s`` seconds (``limits.worker_timeout_s``) for the other
    workers (:func:`peers_deadline`; None: as long as TensorFlow waits).
    """
    name = strategy_name(distribute, key=key)
    if name == "multi_worker":
        if _multi_worker_strategy.cache_info().currsize:
            return _multi_worker_strategy()
        with peers_deadline(timeout_s, key):
            return _multi_worker_strategy()
    if threading.current_thread() is threading.main_thread():
        watchdog.release_sigterm()  # held for a multi-worker start that is not happening
    if name == "mirrored":
        return _mirrored_strategy()
    return tf.distribute.get_strategy()


@functools.cache
def _mirrored_strategy() -> tf.distribute.Strategy:
    """The process's MirroredStrategy over every GPU or, without one, every logical CPU device
    (MirroredStrategy() alone would take CPU:0 only, not a CPU split with
    ``tf.config.set_logical_device_configuration``)."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy(None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")])


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    With more than one worker, Keras 3's ``fit`` fails (keras-team/keras#20585, tensorflow#72388):
    it reduces its first (images, targets) batch as one tuple, and each step's scalar loss and
    metrics along an axis 0 they do not have. Here a structure is reduced value by value, and a
    scalar across the replicas: what Keras does on one worker (mean of the replicas' scalars).
    """

    def reduce(self, reduce_op, value, axis):
        if tf.nest.is_nested(value):  # a tuple or dict of values (a PerReplica value is a leaf)
            return tf.nest.map_structure(lambda v: self.reduce(reduce_op, v, axis), value)
        per_replica = value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
        if axis is not None and getattr(per_replica, "shape", None) is not None and per_replica.shape.rank == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


@functools.cache
def _multi_worker_strategy() -> tf.distribute.Strategy:
    """The process's MultiWorkerMirroredStrategy (TensorFlow configures one per process)."""
    try:
        return _MultiWorkerMirroredStrategy()
    except RuntimeError as err:
        if "program startup" not in str(err):
            raise
        raise RuntimeError(
            "distribute = multi_worker: the strategy must be selected before TensorFlow runs any op; "
            "call galaxy_xai.distribute.select_strategy first thing in the process (stages/train.py does)"
        ) from err


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the outputs: always, except on the non-chief workers of a
    multi-worker strategy."""
    return bool(strategy.extended.should_checkpoint)


@contextlib.contextmanager
def worker_paths(strategy: tf.distribute.Strategy, *paths: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """``paths`` on the chief; on another worker the same names in a temporary folder removed on exit.

    Every worker must run the same code, writing included (saving a model reads variables that
    are summed over the workers), but only the chief's files are a stage's outputs.
    """
    paths = tuple(Path(p) for p in paths)
    if is_chief(strategy):
        yield paths
        return
    with tempfile.TemporaryDirectory(prefix="galaxy_xai_worker_") as folder:
        yield tuple(Path(folder) / str(i) / p.name for i, p in enumerate(paths))
