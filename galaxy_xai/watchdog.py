"""A watchdog process for a wait that happens inside native code, where Python cannot stop it.

A ``multi_worker`` stage (:mod:`galaxy_xai.distribute`) creates TensorFlow's
MultiWorkerMirroredStrategy, whose C++ start-up waits for every worker ``TF_CONFIG`` names while
holding Python's interpreter lock, with no time limit, and installs a SIGTERM handler of its own: a
worker that never starts left the stage silent and deaf to SIGTERM (issue #28). No thread of the
stage can run meanwhile, so the stage starts this small process (standard library only) first::

    python galaxy_xai/watchdog.py PARENT_PID TIMEOUT_S KEY PEERS_JSON

It watches its parent until the parent closes the watchdog's stdin (the wait is over) and kills
the parent (SIGKILL, the one signal native code cannot take over), after one line on stderr, when

* the wait lasts longer than ``TIMEOUT_S`` seconds: the line names the peers (``PEERS_JSON``: a
  list of [name, "host:port"]) whose address does not answer, i.e. the workers that never started;
* a SIGTERM is pending for the parent (Linux only: elsewhere only the time limit applies).

For the last point the stage blocks SIGTERM (:func:`hold_sigterm`) before it imports TensorFlow:
TensorFlow's threads inherit the block, so its handler never sees the signal, which stays pending
where the watchdog reads it (``/proc/<pid>/status``). Once the strategy exists, :func:`release_sigterm`
gives SIGTERM back its default action: it ends the stage again.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Sequence

POLL_S = 0.2
"""How often the watchdog looks at its parent (seconds)."""


def names_a_cluster(tf_config: str | None) -> bool:
    """Whether the ``TF_CONFIG`` JSON text names several tasks (a multi-worker cluster may start)."""
    try:
        cluster = json.loads(tf_config or "{}").get("cluster", {})
        return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) > 1
    except (ValueError, AttributeError, TypeError):
        return False  # galaxy_xai.distribute names what is wrong with it


def hold_sigterm(environ=os.environ) -> bool:
    """Under a ``TF_CONFIG`` cluster, block SIGTERM in the calling (main) thread, so that every thread
    started later (TensorFlow's) inherits the block; whether it did. Call it before TensorFlow is
    imported; :func:`release_sigterm` undoes it."""
    if not names_a_cluster(environ.get("TF_CONFIG")):
        return False
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    return True


def release_sigterm(default_action: bool = False) -> None:
    """Unblock SIGTERM in the main thread (a pending one then acts at once); with
    ``default_action``, first take SIGTERM back from a handler TensorFlow installed: it ends the process."""
    if default_action:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def pending_signals(pid: int) -> int | None:
    """The signals pending for process ``pid`` (process-wide and its main thread's) as a bit mask
    (bit ``n - 1`` for signal ``n``), or None where ``/proc`` does not say."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)
    except (OSError, KeyError, ValueError):
        return None


def sigterm_pending(pid: int) -> bool:
    mask = pending_signals(pid)
    return mask is not None and bool(mask >> (signal.SIGTERM - 1) & 1)


def unreachable(peers: Sequence[Sequence[str]], timeout_s: float = 1.0) -> list[tuple[str, str]]:
    """The (name, "host:port") of ``peers`` whose address refuses or ignores a TCP connection."""
    missing = []
    for name, address in peers:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                pass
        except (OSError, ValueError):
            missing.append((name, address))
    return missing


def timeout_message(key: str, timeout_s: float, peers: Sequence[Sequence[str]]) -> str:
    """Why the wait for the other workers failed, naming those that do not answer."""
    missing = unreachable(peers)
    if missing:
        who = ", ".join(f"{name} ({address})" for name, address in missing)
        return (
            f"{key} = multi_worker: no answer from {who} within limits.worker_timeout_s = {timeout_s:g} s; "
            "start the same stage there with its own TF_CONFIG task, or raise limits.worker_timeout_s"
        )
    return (
        f"{key} = multi_worker: the workers of TF_CONFIG did not form a cluster within limits.worker_timeout_s = "
        f"{timeout_s:g} s, though every address answers; check that each runs the same stage with its own task"
    )


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} distribute | {message}", file=sys.stderr, flush=True)


def watch(parent: int, timeout_s: float, key: str, peers: Sequence[Sequence[str]], stdin=None) -> int:
    """Watch ``parent`` as the module docstring says; 0 when it ended the wait, 2 when it was killed."""
    stdin = sys.stdin if stdin is None else stdin
    deadline = time.monotonic() + timeout_s
    while True:
        ready, _, _ = select.select([stdin], [], [], POLL_S)
        if ready:  # the parent closed the pipe (or died): the wait is over
            return 0
        if sigterm_pending(parent):
            _say(f"{key} = multi_worker: SIGTERM while waiting for the other workers of TF_CONFIG; stopping")
        elif time.monotonic() > deadline:
            _say(timeout_message(key, timeout_s, peers))
        else:
            continue
        try:
            os.kill(parent, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parent, timeout_s, key, peers = (sys.argv[1:] if argv is None else list(argv))
    return watch(int(parent), float(timeout_s), key, json.loads(peers))


if __name__ == "__main__":
    sys.exit(main())
