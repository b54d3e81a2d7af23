import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import BIN, error_line, run_cli

from job.models import ZOO
from job.training import TrainConfig, evaluate, read_history, train


def tiny(tmp_path, name, data, **kw):
    cfg = dict(model=name, dataset="mnist", data=str(data), epochs=1, max_train_samples=256, batch_size=64,
               out=str(tmp_path / name), verbose=0)
    return train(TrainConfig(**{**cfg, **kw}))


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_trains_a_few_steps(tmp_path, npz_path, name):
    run_dir, metrics = tiny(tmp_path, name, npz_path)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["epochs_run"] == 1
    assert (run_dir / "model.keras").is_file()


def test_run_directory_is_complete(tmp_path, idx_dir):
    run_dir, metrics = tiny(tmp_path, "dense-128", idx_dir, epochs=2)
    for name in ("model.keras", "config.json", "history.csv", "metrics.json", "checkpoint.keras",
                 "plots/curves.png", "plots/confusion.png", "plots/predictions.png", "plots/confident_errors.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists()  # a finished run leaves no resume state
    recorded = json.loads((run_dir / "metrics.json").read_text())
    assert np.array(recorded["confusion_matrix"]).sum() == 300
    assert len(recorded["per_class_accuracy"]) == 10
    for key in ("train_seconds", "samples_per_second", "device", "test_loss", "val_accuracy"):
        assert key in recorded
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seed"] == 42 and config["labels"][3] == "3" and config["versions"]["keras"]
    assert [row["epoch"] for row in read_history(run_dir / "history.csv")] == ["0", "1"]
    fresh, recorded = evaluate(run_dir)
    assert fresh["test_accuracy"] == recorded["test_accuracy"]
    assert fresh["test_loss"] == pytest.approx(recorded["test_loss"], abs=1e-6)


def test_same_seed_gives_identical_metrics(tmp_path, npz_path):
    _, a = tiny(tmp_path / "a", "cnn-bn-aug", npz_path, epochs=2)  # augmentation and dropout included
    _, b = tiny(tmp_path / "b", "cnn-bn-aug", npz_path, epochs=2)
    assert a["test_loss"] == b["test_loss"] and a["confusion_matrix"] == b["confusion_matrix"]
    _, c = tiny(tmp_path / "c", "cnn-bn-aug", npz_path, epochs=2, seed=7)
    assert c["test_loss"] != a["test_loss"]


def test_real_sample_beats_chance_by_far(tmp_path):
    run_dir, metrics = train(TrainConfig(model="cnn-mit", dataset="mnist-sample", epochs=2,
                                         out=str(tmp_path / "run"), verbose=0))
    assert metrics["test_accuracy"] > 0.9  # chance is 0.1


def start_training(out, data, epochs):
    return subprocess.Popen([str(BIN / "mnist-job"), "train", "--model", "dense-512", "--data", str(data),
                             "--epochs", str(epochs), "--batch-size", "8", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(out, n, proc, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if (out / "backup").exists() and (out / "history.csv").exists() \
                and len(read_history(out / "history.csv")) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail("training did not reach the epoch in time")


def test_kill_9_then_resume_ends_with_requested_epochs(tmp_path, npz_path):
    out = tmp_path / "run"
    proc = start_training(out, npz_path, epochs=6)
    wait_for_epochs(out, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.keras").exists()
    done = len(read_history(out / "history.csv"))
    assert done < 6
    result = run_cli("train", "--model", "dense-512", "--data", npz_path, "--epochs", 6, "--batch-size", 8,
                     "--out", out, "--resume", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [int(r["epoch"]) for r in read_history(out / "history.csv")] == list(range(6))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] <= 6 - (done - 1)  # it continued, it did not start over


def test_resume_survives_a_backup_truncated_mid_write(tmp_path, npz_path):
    out = tmp_path / "run"
    proc = start_training(out, npz_path, epochs=8)
    wait_for_epochs(out, 3, proc)  # two backups written, so the previous one is kept beside the latest
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = out / "backup" / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[:96])  # what a kill during Keras's in-place write leaves
    result = run_cli("train", "--model", "dense-512", "--data", npz_path, "--epochs", 8, "--batch-size", 8,
                     "--out", out, "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [int(r["epoch"]) for r in read_history(out / "history.csv")] == list(range(8))


def test_ctrl_c_keeps_checkpoint_and_prints_resume_command(tmp_path, npz_path):
    out = tmp_path / "run"
    proc = start_training(out, npz_path, epochs=50)
    wait_for_epochs(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "--resume" in stderr.splitlines()[-1] and f"--out {out}" in stderr
    assert (out / "backup").is_dir() and (out / "checkpoint.keras").is_file()


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet-9000"], "unknown model 'resnet-9000'"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--val-split", "1.5"], "--val-split must be in (0, 1)"),
    (["--out", "/proc/version/run"], "not writable"),
    (["--data", "/nonexistent/mnist.npz"], "no such file"),
    (["--optimizer", "bogus", "--epochs", "1"], "unknown optimizer 'bogus'"),
])
def test_bad_arguments_are_one_line_exit_2(tmp_path, npz_path, args, message):
    base = ["train", "--data", npz_path, "--out", tmp_path / "r"]
    result = run_cli(*base, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in error_line(result)


def test_offline_without_local_data_is_one_line_exit_2(tmp_path):
    # A dead proxy makes Keras's download fail at once, with or without internet.
    env = {"MNIST_DATA": "", "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9"}
    result = run_cli("train", "--dataset", "mnist", "--out", tmp_path / "r", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "--data PATH" in error_line(result)
    assert not (tmp_path / "r").exists()


def test_help_is_instant_and_imports_no_tensorflow():
    code = ("import sys; from typer.testing import CliRunner; from job.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "assert 'train' in r.output; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_label_smoothing_loss_equals_keras_on_one_hot_labels():
    import keras

    from job.losses import SparseSmoothedCrossentropy

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=32).astype(np.float32)
    labels = rng.integers(0, 10, size=32)
    ours = SparseSmoothedCrossentropy(0.1)(labels, probs)
    keras_one_hot = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(10)[labels], probs)
    assert float(ours) == pytest.approx(float(keras_one_hot), rel=1e-6)
    unsmoothed = SparseSmoothedCrossentropy(0.0)(labels, probs)
    assert float(unsmoothed) == pytest.approx(float(keras.losses.SparseCategoricalCrossentropy()(labels, probs)),
                                              rel=1e-6)
    again = keras.losses.deserialize(keras.losses.serialize(SparseSmoothedCrossentropy(0.2)))
    assert again.label_smoothing == 0.2  # model.keras files and checkpoints reload with it


def test_augmentation_flips_clothing_but_never_digits():
    from job.training import augmenter

    images = np.zeros((64, 28, 28), np.float32)
    images[:, 6:22, 3:7] = 255.0  # a bar on the left: a mirror flip moves it to the right half

    def right_half_share(mirror):
        out = np.asarray(augmenter(seed=1, mirror=mirror)(images, np.zeros(64))[0])
        return out[:, :, 14:].sum(axis=(1, 2)) / out.sum(axis=(1, 2))

    digits, clothing = right_half_share(False), right_half_share(True)
    assert digits.max() < 0.05  # shifted and rotated, but still on the left
    assert 10 < (clothing > 0.95).sum() < 54  # about half of them mirrored
