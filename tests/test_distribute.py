"""tf.distribute (galaxy_xai.distribute): TF_CONFIG checks, and distributed runs on this CPU that give
the single-device answers: training losses with the same global batch, and SmoothGrad maps.

The distributed runs need TensorFlow set up before it starts (two logical CPU devices; a
MultiWorkerMirroredStrategy before the first op), so each runs in a fresh process of this file
(``python -m tests.test_distribute <mode> <out>``): one process with the CPU split into two logical
devices trains and explains on one device and with MirroredStrategy, and two worker processes on
localhost train and explain with MultiWorkerMirroredStrategy. They start together, once per module
(44-59 s on this 2-core machine shared with other jobs); deselect them with ``-m 'not distributed'``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_xai import distribute

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, GLOBAL_BATCH, N_TRAIN, N_VAL, PX = 3, 8, 32, 16, 8
N_MAPS = 7  # not a multiple of the chunk: the last chunk of every run is padded
LOSS_RTOL = 1e-5
"""Per-epoch RMSE of a distributed run vs one device: the replicas' gradients are summed in
another order, float32 rounding of ~1e-7 per step over 12 steps (measured: <= 1e-7 relative; final
weights within 6e-8)."""
MAPS_ATOL = 1e-6
"""SmoothGrad maps in [0, 1]: each replica runs the same compiled chunk function on the same chunk
shape, so they are expected equal to float rounding (measured: identical)."""


# --- TF_CONFIG and the choice of strategy (no TensorFlow work) -------------------------------------


def _tf_config(n_workers: int = 2, task: dict | None = None, chief: bool = False) -> str:
    cluster = {"worker": [f"localhost:{2222 + i}" for i in range(n_workers)]}
    if chief:
        cluster["chief"] = ["localhost:2221"]
    return json.dumps({"cluster": cluster, "task": task or {"type": "worker", "index": 0}})


def test_cluster_tasks_counts_chief_and_workers():
    assert distribute.cluster_tasks(None) == 0 and distribute.cluster_tasks("  ") == 0
    assert distribute.cluster_tasks(_tf_config(1)) == 1
    assert distribute.cluster_tasks(_tf_config(3)) == 3
    assert distribute.cluster_tasks(_tf_config(2, {"type": "chief", "index": 0}, chief=True)) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{cluster", "not JSON"),
        ('{"cluster": {"worker": ["localhost:1"]}}', "with 'cluster' and 'task'"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "at least one cluster.worker"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "'host:port'"),
        (_tf_config(2, {"type": "worker", "index": 2}), "'index': a position"),
        (_tf_config(2, {"type": "ps", "index": 0}), "one of chief, worker"),
        (_tf_config(2, {"type": "chief", "index": 0}), "'index': a position"),  # no chief in the cluster
    ],
)
def test_cluster_tasks_rejects_bad_tf_config(text, message):
    with pytest.raises(ValueError, match="TF_CONFIG") as err:
        distribute.cluster_tasks(text)
    assert message in str(err.value)


def test_strategy_name_reads_tf_config():
    two = {"TF_CONFIG": _tf_config(2)}
    assert distribute.strategy_name("auto", two) == "multi_worker"  # several tasks: multi-worker
    assert distribute.strategy_name("multi_worker", {"TF_CONFIG": _tf_config(1)}) == "multi_worker"
    assert distribute.strategy_name("auto", {"TF_CONFIG": _tf_config(1)}) == "none"  # one task, no GPU here
    assert distribute.strategy_name("auto", {}) == "none"
    assert distribute.strategy_name("none", two) == "none" and distribute.strategy_name("mirrored", two) == "mirrored"
    with pytest.raises(ValueError, match="multi_worker: the TF_CONFIG environment variable is not set"):
        distribute.strategy_name("multi_worker", {})
    with pytest.raises(ValueError, match="train.distribute = auto: TF_CONFIG .*not JSON"):
        distribute.strategy_name("auto", {"TF_CONFIG": "workers: 2"})
    with pytest.raises(ValueError, match="expected one of auto, none, mirrored, multi_worker"):
        distribute.strategy_name("tpu", {})
    with pytest.raises(ValueError, match="^xai.distribute = multi_worker: the TF_CONFIG"):
        distribute.strategy_name("multi_worker", {}, key="xai.distribute")


def test_select_strategy_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable is not set"):
        distribute.select_strategy("multi_worker")


def test_single_device_strategy_is_the_chief():
    strategy = distribute.select_strategy("none")
    assert distribute.is_chief(strategy)
    with distribute.worker_paths(strategy, "a/model.keras", "b") as paths:
        assert paths == (Path("a/model.keras"), Path("b"))


# --- a worker that never starts: bounded wait, SIGTERM (issue #28) ------------------------------------


def test_cluster_peers_are_the_other_tasks():
    assert distribute.cluster_peers(None) == []
    assert distribute.cluster_peers(_tf_config(3, {"type": "worker", "index": 1})) == [
        ("worker 0", "localhost:2222"), ("worker 2", "localhost:2224")]
    assert distribute.cluster_peers(_tf_config(1, {"type": "chief", "index": 0}, chief=True)) == [
        ("worker 0", "localhost:2222")]


def _sleeper(block_sigterm: bool) -> subprocess.Popen:
    """A stand-in for a stage stuck in native code: sleeps (blocking SIGTERM, as a held stage does)."""
    code = "import signal, time\n"
    if block_sigterm:
        code += "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def _watch(parent: subprocess.Popen, timeout_s: float, peers: list) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "galaxy_xai" / "watchdog.py"), str(parent.pid), str(timeout_s), "train.distribute",
         json.dumps(peers)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_the_watchdog_stops_a_wait_past_its_time_naming_the_worker_that_does_not_answer():
    port = _free_ports(1)[0]
    listening = socket.socket()
    listening.bind(("localhost", 0))
    listening.listen()
    peers = [["worker 0", f"localhost:{listening.getsockname()[1]}"], ["worker 2", f"localhost:{port}"]]
    stuck = _sleeper(block_sigterm=False)
    try:
        guard = _watch(stuck, 1.0, peers)
        assert guard.wait(timeout=30) == 2 and stuck.wait(timeout=10) == -9
    finally:
        stuck.kill()
        listening.close()
    assert guard.stderr.read().rstrip().endswith(
        f"distribute | train.distribute = multi_worker: no answer from worker 2 (localhost:{port}) within "
        "limits.worker_timeout_s = 1 s; start the same stage there with its own TF_CONFIG task, or raise "
        "limits.worker_timeout_s"
    )


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="pending signals are read from /proc (Linux)")
def test_the_watchdog_stops_the_wait_on_sigterm_and_lets_a_finished_wait_go():
    stuck = _sleeper(block_sigterm=True)  # as TensorFlow's threads, which inherit the held SIGTERM
    try:
        guard = _watch(stuck, 600.0, [["worker 1", "localhost:1"]])
        time.sleep(0.5)
        stuck.terminate()
        assert guard.wait(timeout=30) == 2 and stuck.wait(timeout=10) == -9
        assert "SIGTERM while waiting for the other workers of TF_CONFIG; stopping" in guard.stderr.read()
    finally:
        stuck.kill()
    running = _sleeper(block_sigterm=False)
    try:
        guard = _watch(running, 600.0, [["worker 1", "localhost:1"]])
        guard.stdin.close()  # the strategy started: the watchdog goes, the stage lives on
        assert guard.wait(timeout=30) == 0 and running.poll() is None
    finally:
        running.kill()


def test_sigterm_is_held_only_under_a_cluster():
    from galaxy_xai import watchdog

    assert not watchdog.hold_sigterm({}) and not watchdog.hold_sigterm({"TF_CONFIG": _tf_config(1)})
    assert not watchdog.hold_sigterm({"TF_CONFIG": "{not json"})
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        assert watchdog.hold_sigterm({"TF_CONFIG": _tf_config(2)})
        assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        watchdog.release_sigterm()
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def _lonely_worker(tmp_path: Path, timeout_s: float) -> tuple[subprocess.Popen, int]:
    """``python -m stages.train`` as worker 0 of a two-worker TF_CONFIG whose worker 1 never starts."""
    from tests.fixtures import params_file

    params = params_file(tmp_path / "params.yaml", {"train": {"distribute": "multi_worker"},
                                                    "limits": {"worker_timeout_s": timeout_s}})  # fmt: skip
    ports = _free_ports(2)
    cluster = {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(cluster), "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train", "--params", str(params), "--model", "vgg_small",
         "--table", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "m.keras"),
         "--metrics", str(tmp_path / "m.json"), "--timings", str(tmp_path / "t.json"), "--plots", str(tmp_path / "plots")],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc, ports[1]


@pytest.mark.distributed
def test_a_worker_that_never_starts_stops_the_stage_naming_it(tmp_path):
    """Issue #28: train printed nothing and was still waiting after 10 minutes."""
    proc, port = _lonely_worker(tmp_path, 2.0)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert f"train.distribute = multi_worker: waiting up to 2 s (limits.worker_timeout_s) for worker 1 (localhost:{port})" in err
    assert f"no answer from worker 1 (localhost:{port}) within limits.worker_timeout_s = 2 s" in err
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.distributed
def test_sigterm_stops_a_stage_waiting_for_its_workers(tmp_path):
    """Issue #28: the waiting stage ignored SIGTERM (TensorFlow's handler took it): kill -9 was needed."""
    proc, _ = _lonely_worker(tmp_path, 600.0)
    lines = []
    try:
        for line in proc.stderr:  # until the stage says it waits
            lines.append(line)
            if "waiting up to 600 s" in line:
                break
        assert "waiting up to 600 s" in lines[-1], "".join(lines)
        time.sleep(1.0)
        began = time.monotonic()
        proc.terminate()
        lines += proc.stderr.readlines()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - began < 10 and proc.returncode != 0
    assert "SIGTERM while waiting for the other workers of TF_CONFIG; stopping" in "".join(lines)


# --- the distributed runs (subprocesses) --------------------------------------------------------------


def _data() -> tuple[np.ndarray, ...]:
    """Synthetic images (n, PX, PX, 3) in [0, 1] and targets (n, 3) of a learnable rule."""
    rng = np.random.default_rng(0)
    x = rng.random((N_TRAIN + N_VAL, PX, PX, 3), dtype=np.float32)
    y = np.stack([x[..., 0].mean((1, 2)), x[:, : PX // 2].mean((1, 2, 3)), x[..., 2].max((1, 2))], axis=1)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _build():
    """A tiny CNN with the project's interface (logits, output), no dropout, seeded initial weights."""
    import keras

    init = keras.initializers.GlorotUniform(seed=1)
    inputs = keras.Input((PX, PX, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(3, kernel_initializer=init, name="logits")(x)
    return keras.Model(inputs, keras.layers.Activation("sigmoid", name="output")(logits))


def _fit(distribute_value: str, curve_path: Path | None = None):
    """training.fit of the tiny CNN, ``EPOCHS`` epochs of global batch ``GLOBAL_BATCH``: the
    learning curve, the final weights (flat) and how many images the last validation counted
    (over all replicas: ``N_VAL`` if the batches were split, more if the replicas repeated them)."""
    import tensorflow as tf

    from galaxy_xai.config import ModelConfig, TrainConfig
    from galaxy_xai.models import training

    x, y, x_val, y_val = _data()
    model, result = training.fit(
        _build,
        tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH),
        tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(GLOBAL_BATCH),
        n_train=N_TRAIN,
        model_cfg=ModelConfig(epochs=EPOCHS, batch_size=GLOBAL_BATCH, learning_rate=0.05),
        train_cfg=TrainConfig(distribute=distribute_value),
        seed=0,
        curve_path=curve_path,
    )
    counted = float(next(np.asarray(v) for v in model.metrics[0].variables if v.path == "loss/count"))
    return result.curve, np.concatenate([w.ravel() for w in model.get_weights()]), counted


def _maps(strategy=None) -> np.ndarray:
    """SmoothGrad maps of output 1 of the untrained tiny CNN (built in ``strategy``'s scope, and
    explained there, when given): 2 galaxies x 8 samples per chunk, 4 orientations."""
    import contextlib

    from galaxy_xai.xai.explainers.gradients import SmoothGrad

    images = _data()[2][:N_MAPS]
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = _build()
        return SmoothGrad(1, 8, 0.1, batch_size=16, symmetries=4)(model, images, seed=3, keys=np.arange(N_MAPS) * 7)


def _worker(mode: str, out: Path) -> None:
    """One distributed run; writes its curves, final weights and maps to ``out`` (npz)."""
    import tensorflow as tf

    if mode == "two_cpus":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        mirrored = distribute.select_strategy("mirrored")
        none_curve, none_weights, none_counted = _fit("none")
        mirrored_curve, mirrored_weights, mirrored_counted = _fit("mirrored")
        mirrored_maps = _maps(mirrored)
        np.savez(
            out,
            replicas=mirrored.num_replicas_in_sync,
            counted=[none_counted, mirrored_counted],
            replicated_fns=_replicated_functions(),
            none_curve=none_curve.to_numpy(),
            mirrored_curve=mirrored_curve.to_numpy(),
            none_weights=none_weights,
            mirrored_weights=mirrored_weights,
            none_maps=_maps(),
            mirrored_maps=mirrored_maps,
        )
    else:  # a worker of TF_CONFIG's cluster; its strategy first, before TensorFlow runs an op
        # With a time limit, as the stages start it: the watchdog goes once both workers have joined.
        strategy = distribute.select_strategy("multi_worker", timeout_s=240)
        shared = out.parent / "curve.tsv"  # the stage's output: only the chief's stays
        with distribute.worker_paths(strategy, shared) as (curve_path,):
            curve, weights, counted = _fit("multi_worker", curve_path)
        maps = _maps(strategy)
        np.savez(
            out,
            replicas=strategy.num_replicas_in_sync,
            counted=counted,
            replicated_fns=_replicated_functions(),
            chief=distribute.is_chief(strategy),
            curve_path=str(curve_path),
            curve=curve.to_numpy(),
            weights=weights,
            maps=maps,
        )


def _replicated_functions() -> int:
    """How many chunk functions map_chunks has wrapped for a strategy's replicas so far."""
    from galaxy_xai.xai.explainers import core

    return core._replicated.cache_info().currsize


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Start the two-CPU process and the two workers together; their npz files, once done."""
    folder = tmp_path_factory.mktemp("distribute")
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    base.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    jobs = {"two_cpus": base}
    for i in range(2):
        task = {"cluster": cluster, "task": {"type": "worker", "index": i}}
        jobs[f"worker{i}"] = {**base, "TF_CONFIG": json.dumps(task)}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tests.test_distribute", name, str(folder / f"{name}.npz")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, env in jobs.items()
    }
    try:
        logs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name} failed:\n{logs[name][-4000:]}"
    return {"folder": folder, **{name: dict(np.load(folder / f"{name}.npz")) for name in jobs}}


@pytest.mark.distributed
def test_mirrored_over_two_cpus_gives_the_single_device_losses(runs):
    two = runs["two_cpus"]
    assert int(two["replicas"]) == 2
    none, mirrored = two["none_curve"], two["mirrored_curve"]  # rows: epoch, train_rmse, val_rmse, lr, s
    assert none.shape == (EPOCHS, 5)
    assert np.ptp(none[:, 1]) > 1e-3  # the losses move: equality is not trivial
    np.testing.assert_array_equal(two["counted"], [N_VAL, N_VAL])  # each replica saw half a batch
    np.testing.assert_allclose(mirrored[:, 1:4], none[:, 1:4], rtol=LOSS_RTOL)
    np.testing.assert_allclose(two["mirrored_weights"], two["none_weights"], atol=1e-5)


@pytest.mark.distributed
def test_two_workers_give_the_single_device_losses_and_only_the_chief_writes(runs):
    none = runs["two_cpus"]["none_curve"]
    chief, other = runs["worker0"], runs["worker1"]
    assert int(chief["replicas"]) == int(other["replicas"]) == 2
    assert float(chief["counted"]) == float(other["counted"]) == N_VAL  # each worker saw half a batch
    for worker in (chief, other):
        np.testing.assert_allclose(worker["curve"][:, 1:4], none[:, 1:4], rtol=LOSS_RTOL)
        np.testing.assert_allclose(worker["weights"], runs["two_cpus"]["none_weights"], atol=1e-5)
    # Worker 0 is the chief: the shared curve file is its own; worker 1 wrote to a removed temp folder.
    assert bool(chief["chief"]) and not bool(other["chief"])
    shared = runs["folder"] / "curve.tsv"
    assert str(chief["curve_path"]) == str(shared)
    assert str(other["curve_path"]) != str(shared) and not Path(str(other["curve_path"])).exists()
    written = pd.read_csv(shared, sep="\t").to_numpy()
    np.testing.assert_allclose(written[:, 1:4], chief["curve"][:, 1:4], rtol=1e-6)


@pytest.mark.distributed
def test_smoothgrad_maps_over_replicas_equal_the_single_device_maps(runs):
    two = runs["two_cpus"]
    reference = two["none_maps"]
    assert reference.shape == (N_MAPS, PX, PX) and np.ptp(reference) > 0.5
    assert int(two["replicated_fns"]) == int(runs["worker0"]["replicated_fns"]) == 1  # the replicas ran them
    np.testing.assert_allclose(two["mirrored_maps"], reference, atol=MAPS_ATOL)
    for worker in ("worker0", "worker1"):  # every worker gathers all the maps
        np.testing.assert_allclose(runs[worker]["maps"], reference, atol=MAPS_ATOL)


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
