"""Training as one of N worker processes with tf.distribute's MultiWorkerMirroredStrategy.

Every worker runs the same `mnist-job train ... --strategy multiworker --out RUN` with its own TF_CONFIG.
Worker 0, the chief, writes the run directory; the others train into a temporary directory of their own
(checkpoints and backups, as the TensorFlow multi-worker guide prescribes) and remove it at the end. On
--resume they first copy the chief's backup, so every worker restarts from the same epoch: the run directory
must be on storage that all workers see (one machine, or a shared volume).

    mnist-job train --model cnn-bn-aug --dataset mnist-sample --out runs/mw --local-workers 2   # job.distributed.launcher
    TF_CONFIG='{"cluster": {"worker": ["h0:2222", "h1:2222"]}, "task": {"type": "worker", "index": 1}}' \\
        mnist-job train --strategy multiworker --out /shared/runs/mw
    mnist-job train --workers-from-indexed-job 4 --worker-host 'mnist-train-{i}.mnist-train:2222' --out /runs/mw

A worker that cannot reach the others within --connect-timeout fails with one line naming the addresses
that did not answer. A worker that dies mid-training is noticed by TensorFlow's coordination service (its
heartbeats stop, within about 10 s) and the others fail with one line; restart all of them with --resume.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mnist_predict.files import first_sentence

from job.errors import ClusterError, JobError

log = logging.getLogger(__name__)
DEFAULT_CONNECT_TIMEOUT = 600.0  # seconds: long enough for pods to pull a GPU image and start
INDEX_VARIABLE = "JOB_COMPLETION_INDEX"  # set by Kubernetes in the pods of an Indexed Job


@dataclass(frozen=True)
class Worker:
    index: int
    addresses: tuple  # host:port of every worker, in index order

    @property
    def count(self):
        return len(self.addresses)

    @property
    def is_chief(self):
        return self.index == 0

    def __str__(self):
        return f"worker {self.index} of {self.count}"


def this_worker():
    """This process's place in the cluster, from TF_CONFIG (a cluster of one without it)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return Worker(0, ("localhost:0",))
    try:
        config = json.loads(raw)
        addresses = tuple(config["cluster"]["worker"])
        index = int(config["task"]["index"])
        kind = config["task"].get("type", "worker")
    except (ValueError, KeyError, TypeError) as e:
        raise JobError(f"TF_CONFIG is not a valid cluster spec ({type(e).__name__}: {e}); expected "
                       '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
                       ) from None
    if kind != "worker" or set(config["cluster"]) != {"worker"}:
        raise JobError(f"TF_CONFIG: mnist-job runs a cluster of workers only (worker 0 is the chief), got task type "
                       f"{kind!r} and jobs {sorted(config['cluster'])}")
    if not 0 <= index < len(addresses):
        raise JobError(f"TF_CONFIG: task index {index} is outside the {len(addresses)} workers")
    return Worker(index, addresses)


def indexed_job_tf_config(count, host_pattern, index=None):
    """TF_CONFIG for pod `index` (default: $JOB_COMPLETION_INDEX) of a Kubernetes Indexed Job of `count` pods,
    pod i being reachable at host_pattern.format(i=i), e.g. 'mnist-train-{i}.mnist-train:2222'."""
    if count < 1:
        raise JobError(f"--workers-from-indexed-job must be at least 1, got {count}")
    if "{i}" not in host_pattern or ":" not in host_pattern:
        raise JobError(f"--worker-host must hold {{i}} and a port, as in 'JOB-{{i}}.SERVICE:2222', got {host_pattern!r}")
    if index is None:
        raw = os.environ.get(INDEX_VARIABLE)
        if raw is None:
            raise JobError(f"--workers-from-indexed-job: ${INDEX_VARIABLE} is not set; it is set in the pods of a "
                           "Kubernetes Indexed Job (completionMode: Indexed)")
        try:
            index = int(raw)
        except ValueError:
            raise JobError(f"${INDEX_VARIABLE} must be an integer, got {raw!r}") from None
    if not 0 <= index < count:
        raise JobError(f"${INDEX_VARIABLE}={index} is outside the {count} workers of --workers-from-indexed-job")
    workers = [host_pattern.format(i=i) for i in range(count)]
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}


def reachable(address, timeout=2.0):
    """'' when a TCP connection to host:port opens, else the reason it did not."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return ""
    except (OSError, ValueError) as e:
        return getattr(e, "strerror", None) or str(e) or type(e).__name__


@contextlib.contextmanager
def connect_watchdog(worker, timeout):
    """Fail with one line, exit code 1, if the cluster has not formed within `timeout` seconds.

    TensorFlow waits for missing workers forever, inside C++ that holds the GIL (no Python thread runs) and
    that catches SIGTERM. So a small watchdog process names the workers that do not answer, and faulthandler's
    C thread ends this process a moment later."""
    import faulthandler
    import subprocess

    import tensorflow as tf

    watchdog = subprocess.Popen([sys.executable, "-m", "job.distributed.multiworker", f"{timeout:g}", str(worker.index),
                                 *worker.addresses], stdin=subprocess.PIPE, stderr=_stderr_fd())
    faulthandler.dump_traceback_later(timeout + WATCHDOG_GRACE, exit=True, file=_devnull())
    try:
        yield
    except tf.errors.OpError as e:  # TensorFlow gave up first (a worker's registration deadline)
        raise ClusterError(f"{worker}: could not join the cluster at {', '.join(worker.addresses)}: "
                           f"{type(e).__name__}: {first_line(e)}") from None
    finally:
        faulthandler.cancel_dump_traceback_later()
        watchdog.communicate(b"formed")


WATCHDOG_GRACE = 5.0  # seconds the watchdog has to probe the peers and print, before this process exits


def _stderr_fd():
    try:
        return sys.stderr.fileno()  # the terminal, not TensorFlow's filtered fd 2 (job.native_logs)
    except (AttributeError, OSError, ValueError):
        return None


def _devnull():
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = open(os.devnull, "w")  # faulthandler writes its traceback here: the watchdog said it all
    return _DEVNULL


_DEVNULL = None


def _watch(timeout, index, addresses):
    """The watchdog process: wait for "formed" on stdin; at the timeout, print which workers do not answer."""
    import select

    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if ready:
        return  # formed, or the worker ended (EOF) and said why itself
    worker = Worker(index, tuple(addresses))
    peers = [(i, a) for i, a in enumerate(addresses) if i != index]
    silent = [f"worker {i} at {a} ({why})" for i, a in peers if (why := reachable(a, timeout=1.0))]
    if silent:
        problem = f"could not reach {', '.join(silent)}"
    else:
        problem = (f"the workers at {', '.join(a for _, a in peers)} accept connections but did not join; check that "
                   "every worker has the same cluster in TF_CONFIG")
    print(f"mnist-job: error: {worker}: the cluster did not form within {timeout:g} s: {problem}. Start every "
          "worker, or raise --connect-timeout", file=sys.stderr, flush=True)


def join_cluster(strategy):
    """Return once every worker has joined: the first collective needs all of them."""
    import tensorflow as tf

    def one():
        return tf.constant(1.0)

    @tf.function(autograph=False)  # in a graph: eagerly, TensorFlow warns of its overhead
    def count_workers():
        return strategy.reduce("SUM", strategy.run(one), axis=None)

    count_workers()


def lost_peer(worker, error):
    """A one-line ClusterError for a collective that failed because a worker died or stopped answering."""
    import re

    message = str(getattr(error, "message", None) or error)
    others = [(i, address) for i, address in enumerate(worker.addresses) if i != worker.index]
    lost = None  # the workers that stopped answering, when TensorFlow's message says which
    closed = "Socket closed" in message or "Connection reset" in message  # a peer's connection went
    if "unhealthy" in message or "heartbeat" in message:  # the coordination service noticed (the chief's side)
        tasks = {int(t) for t in re.findall(r"/job:worker/(?:replica:\d+/)?task:(\d+)", message)}
        lost = [(i, address) for i, address in others if i in tasks]
    elif "failed to connect" in message.lower() or "Connection refused" in message:  # a peer's port is gone
        named = [(i, address) for i, address in others
                 if re.search(rf":{re.escape(address.rsplit(':', 1)[-1])}\b", message)]
        lost = named or (others if len(others) == 1 else [])
    elif closed and len(others) == 1:
        lost = others  # TensorFlow does not say whose connection went, but with two workers only one could
    if lost is not None:
        who = ", ".join(f"worker {i} at {address}" for i, address in lost) or "a worker"
        reason = f"{who} stopped answering (crashed or killed)"
    elif closed:  # one of several peers: which, TensorFlow does not say
        reason = "another worker closed its connection (crashed or killed)"
    else:
        reason = f"{type(error).__name__}: {re.sub(r'{{[^}]*}} *', '', first_line(error))}"
    return ClusterError(f"{worker}: training stopped: {reason}. Restart every worker with --resume to continue "
                        "from the last finished epoch")


def first_line(error):
    """The first line of a TensorFlow error (the rest is its C++ trace), as one sentence-cut line."""
    message = str(getattr(error, "message", None) or error)
    return first_sentence(next((line for line in message.splitlines() if line.strip()), type(error).__name__))


def train_other_worker(cfg, worker, setup, run_dir, fit_worker):
    """What workers 1+ do in a multi-worker run: fit in step with the chief, in a scratch directory of their
    own (the chief writes the run), unless the chief's run has already fitted."""
    from job.train import rundir

    work = work_dir(worker, run_dir, cfg.resume)
    try:
        if not (run_dir / rundir.FIT).is_file():  # the chief's: every worker fits, or none
            fit_worker(cfg, worker, setup, work, rundir.read_history(work / rundir.HISTORY))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def work_dir(worker, run_dir, resume):
    """Where this worker writes its checkpoints: the run directory for the chief, a new temporary directory
    for the others, holding a copy of the chief's backup (and history) when resuming."""
    if worker.is_chief:
        return Path(run_dir)
    from job.train import rundir

    # Named after the run, so that a worker restarted after a crash replaces what the crashed one left.
    run_id = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    scratch = Path(tempfile.gettempdir()) / f"mnist-job-{run_id}-worker{worker.index}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    if resume:
        for name in (rundir.BACKUP, rundir.HISTORY):
            source = Path(run_dir) / name
            if source.is_dir():
                shutil.copytree(source, scratch / name)
            elif source.is_file():
                shutil.copy2(source, scratch / name)
    return scratch


def weights_fingerprint(model):
    """sha256 of the model's weights: equal on every worker when their gradients were synchronised."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


KERAS_PATCHED = "3.15"  # the Keras minor release patch_keras was written against (pyproject.toml pins it)


def patch_keras():
    """Let Keras 3's model.fit run under MultiWorkerMirroredStrategy (keras-team/keras#20585, open).

    Keras 3.15 fails on two lines with more than one worker: the symbolic build averages the first batch
    across workers (a strategy.reduce of a tuple, which cannot be converted), and the train and test steps
    reduce each scalar log with axis=0. Both become what they mean: the build takes this worker's batch for
    its shapes, and the logs are averaged across replicas with axis=None. Applied only for this strategy."""
    import keras
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_mnist_job_patched", False):
        return
    internals = ("reduce_per_replica", "_collective_all_reduce_multi_worker")
    if not keras.__version__.startswith(KERAS_PATCHED + ".") or not all(hasattr(trainer, name) for name in internals) \
            or not hasattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build"):
        raise JobError(f"--strategy multiworker patches Keras {KERAS_PATCHED}'s trainer (keras-team/keras#20585), but "
                       f"Keras {keras.__version__} is installed: install keras=={KERAS_PATCHED}.* as pyproject.toml "
                       "pins it, or check job/distributed/multiworker.py's patch against this release")
    reduce_per_replica = trainer.reduce_per_replica

    def reduce_logs(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and self._distribute_strategy is not None:
            local = self.distribute_strategy.experimental_local_results
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda v: local(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v, next(batches))
                break
        return symbolic_build(self, data_batch=data_batch)

    trainer.reduce_per_replica = reduce_logs
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._mnist_job_patched = True


if __name__ == "__main__":
    _watch(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
