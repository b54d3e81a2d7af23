"""Run a multi-worker training on this machine: N worker processes on loopback ports, for tests and for users
without a cluster. Each worker gets its TF_CONFIG and its own share of the CPU cores.

    mnist-job train --model cnn-bn-aug --dataset mnist-sample --out runs/mw --local-workers 2
    make train-multiworker-local WORKERS=2

The chief's output (worker 0) streams as it is; the other workers' lines go to stderr prefixed with
"[worker i]". When any worker fails, the others are stopped, and the exit code is the failed worker's.
"""

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from job.errors import JobError

STOP_GRACE = 10.0  # seconds between SIGINT and SIGKILL (TensorFlow catches SIGTERM and carries on)


def worker_args(args, out):
    """The command line of one worker: `args` without --local-workers, with --strategy multiworker and --out."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--local-workers":
            skip = True
        elif not arg.startswith("--local-workers="):
            kept.append(arg)
    strategy = _value(kept, "--strategy")
    if strategy not in (None, "multiworker"):
        raise JobError(f"--local-workers runs --strategy multiworker, not --strategy {strategy}")
    if strategy is None:
        kept += ["--strategy", "multiworker"]
    if _value(kept, "--out") is None:
        kept += ["--out", str(out)]
    return kept


def _value(args, option):
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def free_ports(count):
    """`count` TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch(args, count, out):
    """Start `count` workers running `mnist-job <args>` and wait for them all. Returns the exit code."""
    if count < 1:
        raise JobError(f"--local-workers must be at least 1, got {count}")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    command = [sys.executable, "-m", "job.cli", *worker_args(args, out)]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(f"mnist-job: {count} local workers on {', '.join(addresses)}; the run goes to {_value(command, '--out')}"
          + ("; lines of workers 1+ are prefixed [worker i]" if count > 1 else ""), file=sys.stderr, flush=True)
    workers = []
    for index in range(count):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        # Each worker on its own cores, as on separate machines; with more workers than cores, they share.
        own = cores[index::count] if cores and count <= len(cores) else None
        start = functools.partial(os.sched_setaffinity, 0, own) if own else None
        if index == 0:
            workers.append(subprocess.Popen(command, env=env, preexec_fn=start))
            continue
        worker = subprocess.Popen(command, env=env, preexec_fn=start, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        threading.Thread(target=_prefix, args=(worker.stdout, f"[worker {index}] "), daemon=True).start()
        workers.append(worker)
    return _wait(workers)


def _prefix(stream, prefix):
    for line in stream:
        sys.stderr.write(prefix + line.decode(errors="replace"))
        sys.stderr.flush()


def _wait(workers):
    try:
        while True:
            codes = [worker.poll() for worker in workers]
            failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
            if failed is not None:
                running = [w for w in workers if w.poll() is None]
                if running:
                    print(f"mnist-job: error: worker {failed} exited with code {codes[failed]}; stopping the other "
                          "workers", file=sys.stderr, flush=True)
                _stop(running)
                code = codes[failed]
                return code if code > 0 else 1  # killed by a signal: the run failed
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        # Ctrl-C reached every worker too (one process group): each stops and says what it kept.
        deadline = time.monotonic() + STOP_GRACE
        for worker in workers:
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        _stop([w for w in workers if w.poll() is None])
        return 130


def _stop(workers):
    for worker in workers:
        worker.send_signal(signal.SIGINT)  # Python stops at its next bytecode and removes its temporary files
    deadline = time.monotonic() + STOP_GRACE
    for worker in workers:
        try:
            worker.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
