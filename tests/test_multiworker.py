"""Multi-worker training with real processes over loopback: MultiWorkerMirroredStrategy end to end.

Two workers on the bundled sample train one run (the chief writes it, the other leaves nothing), a worker
killed mid-training stops the other within seconds and --resume finishes the run, and a worker whose peer
never comes fails with one line naming it. The Kubernetes side (TF_CONFIG from an Indexed Job) is unit-tested.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import BIN, error_line, run_cli

from job.distributed import multiworker
from job.distributed.launcher import free_ports, worker_args
from job.errors import JobError

pytestmark = pytest.mark.slow  # trains, exports or drives a browser (-m 'not slow' leaves it out)

SUMMARY = re.compile(r"worker (\d) of 2: trained epochs (\d+)-(\d+), losses \[([^\]]*)\], weights sha256 (\w+)")
# A worker that hangs instead of failing would stall the suite: this bounds it (it is not a speed check).
HANG = 300


def summaries(stderr):
    """{worker: (first epoch, last epoch, losses, weights fingerprint)} from the workers' closing lines."""
    return {int(m[1]): (int(m[2]), int(m[3]), m[4], m[5]) for m in SUMMARY.finditer(stderr)}


def start_worker(index, addresses, *args, env=None):
    tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    return subprocess.Popen([BIN / "mnist-job", "train", "--strategy", "multiworker", *map(str, args)],
                            env={**os.environ, **(env or {}), "TF_CONFIG": json.dumps(tf_config)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_local_workers_train_one_run_with_identical_weights(tmp_path):
    run, scratch = tmp_path / "run", tmp_path / "tmp"
    scratch.mkdir()
    # The default model (batch norm and augmentation, which must stay in step across workers) on 1,200 digits
    result = run_cli("train", "--dataset", "mnist-sample", "--epochs", 2, "--max-train-samples", 1200, "--out", run,
                     "--local-workers", 2, env={"TMPDIR": str(scratch)}, timeout=HANG)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"model.keras", "metrics.json", "config.json", "history.csv", "plots"} <= set(os.listdir(run))
    assert not (run / "backup").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == "multiworker" and config["replicas"] == 2
    assert config["global_batch_size"] == 2 * config["batch_size"]
    assert len((run / "history.csv").read_text().splitlines()) == 3  # header and 2 epochs
    assert json.loads((run / "metrics.json").read_text())["test_accuracy"] > 0.8  # chance is 0.1
    assert sorted(os.listdir(tmp_path)) == ["run", "tmp"]
    assert not [name for name in os.listdir(scratch) if "worker" in name]  # worker 1 removed its directory
    # Both workers saw the same losses and ended with the same weights: their gradients were all-reduced.
    workers = summaries(result.stderr)
    assert set(workers) == {0, 1} and workers[0] == workers[1], result.stderr[-3000:]
    assert workers[0][:2] == (1, 2) and len(workers[0][2].split(",")) == 2
    assert "[worker 1] worker 1 of 2: this process is task 1" in result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(f"-> {run}")


def test_a_killed_worker_stops_the_other_and_resume_finishes_the_run(tmp_path):
    run = tmp_path / "run"
    args = ("--dataset", "mnist-sample", "--model", "cnn-bn-aug", "--epochs", 4, "--max-train-samples", 600,
            "--out", run, "--connect-timeout", 120)
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = [start_worker(i, addresses, *args) for i in range(2)]
    deadline = time.monotonic() + HANG
    while _epochs(run) < 2:
        assert time.monotonic() < deadline and workers[0].poll() is None, workers[0].stderr.read()[-3000:]
        time.sleep(0.2)
    workers[1].send_signal(signal.SIGKILL)
    _, stderr = workers[0].communicate(timeout=HANG)
    message = error_line(subprocess.CompletedProcess([], workers[0].returncode, "", stderr))
    assert workers[0].returncode == 1, stderr[-3000:]
    assert f"worker 1 at {addresses[1]} stopped answering" in message and "with --resume" in message
    assert not (run / "model.keras").exists() and (run / "backup").is_dir()
    done = _epochs(run)
    workers[1].communicate()

    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = [start_worker(i, addresses, "--out", run, "--resume", "--connect-timeout", 120) for i in range(2)]
    outputs = [worker.communicate(timeout=HANG) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    history = (run / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in history] == [0, 1, 2, 3]
    assert json.loads((run / "config.json").read_text())["resumes"][0]["after_epoch"] == done
    assert (run / "model.keras").is_file() and not (run / "backup").exists()
    first, second = (summaries(err) for _, err in outputs)
    assert first[0] == second[1] and first[0][:2] == (done + 1, 4)
    assert "this worker is done; worker 0 writes the run to" in outputs[1][0]


def _epochs(run):
    try:
        return len((run / "history.csv").read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


def test_a_worker_whose_peer_never_comes_fails_with_one_line(tmp_path):
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    worker = start_worker(0, addresses, "--dataset", "mnist-sample", "--model", "dense-128", "--out",
                          tmp_path / "run", "--connect-timeout", 5)
    _, stderr = worker.communicate(timeout=HANG)
    assert worker.returncode == 1
    line = error_line(subprocess.CompletedProcess([], 1, "", stderr))
    assert line.startswith("mnist-job: error: worker 0 of 2: the cluster did not form within 5 s")
    assert f"could not reach worker 1 at {addresses[1]} (Connection refused)" in line


def test_the_launcher_stops_when_a_worker_fails(tmp_path):
    result = run_cli("train", "--dataset", "mnist-sample", "--epochs", 0, "--out", tmp_path / "run",
                     "--local-workers", 2, timeout=HANG)
    assert result.returncode == 2
    assert "--epochs must be a positive integer" in result.stderr
    assert not (tmp_path / "run").exists()


def test_worker_args_run_the_same_command_as_multiworker():
    assert worker_args(["train", "--local-workers", "2", "--epochs", "3"], "runs/x") == [
        "train", "--epochs", "3", "--strategy", "multiworker", "--out", "runs/x"]
    assert worker_args(["train", "--local-workers=2", "--out", "r", "--strategy", "multiworker"], "runs/x") == [
        "train", "--out", "r", "--strategy", "multiworker"]
    with pytest.raises(JobError, match="--local-workers runs --strategy multiworker, not --strategy mirrored"):
        worker_args(["train", "--local-workers", "2", "--strategy", "mirrored"], "runs/x")


def test_tf_config_from_a_kubernetes_indexed_job(monkeypatch):
    pattern = "mnist-train-mw-{i}.mnist-train-mw:2222"
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    config = multiworker.indexed_job_tf_config(3, pattern)
    assert config == {"cluster": {"worker": [f"mnist-train-mw-{i}.mnist-train-mw:2222" for i in range(3)]},
                      "task": {"type": "worker", "index": 2}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    worker = multiworker.this_worker()
    assert (worker.index, worker.count, worker.is_chief, str(worker)) == (2, 3, False, "worker 2 of 3")
    for count, host, index, message in (
            (3, pattern, "3", "JOB_COMPLETION_INDEX=3 is outside the 3 workers"),
            (3, pattern, "x", "JOB_COMPLETION_INDEX must be an integer"),
            (3, "mnist-train-mw-0:2222", "0", "--worker-host must hold {i} and a port"),
            (3, "mnist-train-mw-{i}", "0", "--worker-host must hold {i} and a port"),
            (3, pattern, None, "JOB_COMPLETION_INDEX is not set")):
        if index is None:
            monkeypatch.delenv("JOB_COMPLETION_INDEX")
        else:
            monkeypatch.setenv("JOB_COMPLETION_INDEX", index)
        with pytest.raises(JobError, match=re.escape(message)):
            multiworker.indexed_job_tf_config(count, host)


def test_the_cli_sets_tf_config_from_the_indexed_job(tmp_path):
    env = {"JOB_COMPLETION_INDEX": "5"}
    result = run_cli("train", "--workers-from-indexed-job", 2, "--worker-host", "w-{i}.svc:2222", "--out",
                     tmp_path / "run", env=env)
    assert result.returncode == 2 and "JOB_COMPLETION_INDEX=5 is outside the 2 workers" in error_line(result)
    result = run_cli("train", "--workers-from-indexed-job", 2, "--out", tmp_path / "run")
    assert result.returncode == 2 and "go together" in error_line(result)


@pytest.mark.parametrize("raw, message", [
    ("{", "TF_CONFIG is not a valid cluster spec"),
    ("not json", "TF_CONFIG is not a valid cluster spec"),
    ('{"cluster": {}}', "TF_CONFIG is not a valid cluster spec"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task index 1 is outside the 1"),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}}',
     "a cluster of workers only"),
])
def test_bad_tf_config_is_one_line(monkeypatch, raw, message):
    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(JobError, match=re.escape(message)):
        multiworker.this_worker()


def test_lost_peer_names_the_worker_from_tensorflows_message():
    worker = multiworker.Worker(0, ("127.0.0.1:1", "127.0.0.1:2"))
    # As TensorFlow 2.21 words it when worker 1's heartbeats stop (captured from a real run).
    heartbeat = ("{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/replica:0/task:0/"
                 "device:CPU:0}} Collective ops is aborted by: Error reported from /job:worker/task:1: The following "
                 "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have "
                 "crashed.")
    assert "worker 1 at 127.0.0.1:2 stopped answering" in str(multiworker.lost_peer(worker, RuntimeError(heartbeat)))
    # ... and when a loaded machine reconnects to the killed worker's port before the heartbeat runs out (CI)
    refused = ("{{function_node __wrapped__X}} Collective ops is aborted by: failed to connect to all addresses; "
               "last error: UNKNOWN: ipv4:127.0.0.1:2: Failed to connect to remote host: Connection refused")
    assert "worker 1 at 127.0.0.1:2 stopped answering" in str(multiworker.lost_peer(worker, RuntimeError(refused)))
    # ... and when the killed worker's socket closes first (CI): with two workers, it can only be the other one
    closed = "{{function_node __wrapped__X}} Collective ops is aborted by: Socket closed"
    assert "worker 1 at 127.0.0.1:2 stopped answering" in str(multiworker.lost_peer(worker, RuntimeError(closed)))
    three = multiworker.Worker(0, ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))
    assert "another worker closed its connection" in str(multiworker.lost_peer(three, RuntimeError(closed)))
    other = str(multiworker.lost_peer(worker, ValueError("{{node x}} something else\nmore")))
    assert "ValueError: something else." in other and "\n" not in other


def test_free_ports_are_distinct():
    assert len(set(free_ports(4))) == 4


def test_the_keras_patch_refuses_a_keras_it_was_not_written_for(monkeypatch):
    import keras
    from keras.src.backend.tensorflow import trainer

    monkeypatch.setattr(keras, "__version__", "3.99.0")
    monkeypatch.setattr(trainer, "_mnist_job_patched", False, raising=False)
    with pytest.raises(JobError, match=r"patches Keras 3\.15's trainer .* Keras 3\.99\.0 is installed"):
        multiworker.patch_keras()
    assert trainer.reduce_per_replica.__module__ == trainer.__name__  # left unpatched
