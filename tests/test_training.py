"""Training: the run directory, best and last checkpoints, early stopping, determinism, and resume that
continues an unfinished run and refuses anything else."""

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BIN, ROOT, error_line, run_cli, tiny_run

from job.train import rundir
from job.errors import Interrupted, JobError
from job.train.models import ZOO
from job.train.rundir import read_history
from job.data.datasets import load_dataset
from job.train.training import TrainConfig, evaluate, train

pytestmark = pytest.mark.slow  # trains, exports or drives a browser (-m 'not slow' leaves it out)

PLOTS = ("curves.png", "confusion.png", "predictions.png", "confident_errors.png")


def tiny(tmp_path, name, data, **kw):
    cfg = dict(model=name, dataset="mnist", data=str(data), epochs=1, max_train_samples=256, batch_size=64,
               out=str(tmp_path / name), verbose=0)
    return train(TrainConfig(**{**cfg, **kw}))


@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_trains_a_few_steps(tmp_path, npz_path, name):
    run_dir, metrics = tiny(tmp_path, name, npz_path)
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.sum() == len(np.load(npz_path)["y_test"]) and metrics["epochs_run"] == 1
    assert metrics["test_accuracy"] == pytest.approx(confusion.trace() / confusion.sum(), abs=1e-6)
    assert (run_dir / "model.keras").is_file()


def test_run_directory_is_complete(tmp_path, idx_dir):
    run_dir, metrics = tiny(tmp_path, "dense-128", idx_dir, epochs=3)
    for name in ("model.keras", "best.keras", "last.keras", "config.json", "history.csv", "metrics.json",
                 *(f"plots/{p}" for p in PLOTS)):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists() and not (run_dir / "fit.json").exists()  # no resume state left
    recorded = json.loads((run_dir / "metrics.json").read_text())
    assert np.array(recorded["confusion_matrix"]).sum() == 300
    assert len(recorded["per_class_accuracy"]) == 10
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seed"] == 42 and config["labels"][3] == "3" and config["versions"]["keras"]
    assert config["resumes"] == []
    history = read_history(run_dir / "history.csv")
    assert [row["epoch"] for row in history] == ["0", "1", "2"]
    assert all(float(row["learning_rate"]) > 0 and float(row["seconds"]) > 0 for row in history)
    assert recorded["train_seconds"] == pytest.approx(sum(float(row["seconds"]) for row in history), abs=1e-3)
    fresh, recorded = evaluate(run_dir)
    assert fresh["test_accuracy"] == recorded["test_accuracy"]
    assert fresh["test_loss"] == pytest.approx(recorded["test_loss"], abs=1e-6)


def test_metrics_json_holds_the_documented_keys_only(tmp_path, npz_path):
    run_dir, _ = tiny(tmp_path, "dense-128", npz_path)
    written = json.loads((run_dir / "metrics.json").read_text())
    assert set(written) == set(rundir.METRICS_KEYS)
    assert all(not isinstance(v, str) or len(v) < 200 for v in written.values())  # no numpy reprs
    docs = (ROOT / "docs" / "artifacts.md").read_text()
    documented = re.search(r"`metrics.json` keys: (.*?)\n\n", docs, re.S).group(1)
    assert set(re.findall(r"`(\w+)`", documented)) == set(rundir.METRICS_KEYS)


def test_model_keras_is_the_best_epoch_and_says_so(tmp_path, npz_path):
    from job.train.stats import kept_epoch

    run_dir, metrics = tiny(tmp_path, "dense-512", npz_path, epochs=4, learning_rate=0.05, optimizer="sgd")
    scores = [float(row["val_accuracy"]) for row in read_history(run_dir / "history.csv")]
    n_val = json.loads((run_dir / "config.json").read_text())["val_samples"]
    assert metrics["kept"] == "best" and metrics["kept_epoch"] == kept_epoch(scores, n_val)
    assert metrics["val_accuracy"] == pytest.approx(scores[metrics["kept_epoch"] - 1], abs=1e-6)
    from job.train.rundir import load_keras_model

    x = np.random.default_rng(0).uniform(0, 255, (8, 28, 28)).astype(np.float32)
    model, best = load_keras_model(run_dir / "model.keras"), load_keras_model(run_dir / "best.keras")
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(best(x)))


def test_early_stopping_stops_and_keeps_the_best(tmp_path, npz_path):
    # A learning rate this high stops improving at once; three epochs of patience end a 40-epoch schedule.
    from job.train.stats import kept_epoch

    run_dir, metrics = tiny(tmp_path, "dense-128", npz_path, epochs=40, learning_rate=5.0, early_stopping=3)
    assert metrics["stopped_early"] and metrics["epochs_run"] < 40
    scores = [float(row["val_accuracy"]) for row in read_history(run_dir / "history.csv")]
    assert metrics["kept_epoch"] == kept_epoch(scores, json.loads((run_dir / "config.json").read_text())["val_samples"])


def test_same_seed_gives_identical_metrics(tmp_path, npz_path):
    _, a = tiny(tmp_path / "a", "cnn-bn-aug", npz_path, epochs=2)  # augmentation, outliers and dropout included
    _, b = tiny(tmp_path / "b", "cnn-bn-aug", npz_path, epochs=2)
    assert a["test_loss"] == b["test_loss"] and a["confusion_matrix"] == b["confusion_matrix"]
    _, c = tiny(tmp_path / "c", "cnn-bn-aug", npz_path, epochs=2, seed=7)
    assert c["test_loss"] != a["test_loss"]


def test_a_resumed_run_repeats_the_uninterrupted_one_exactly(tmp_path, npz_path, monkeypatch):
    """Stopped before epoch 3 of 4 and resumed: the same losses every epoch and the same test figures, as the
    run that was never stopped (shuffle, augmentation and dropout are drawn from the epoch, not from state)."""
    import job.train.training

    settings = dict(epochs=4, max_train_samples=300)
    _, whole = tiny(tmp_path / "whole", "cnn-bn-aug", npz_path, **settings)  # augmentation, outliers, dropout
    real = job.train.training.epoch_log_callback

    def stopping_before_epoch_3():
        callback = real()
        begin = callback.on_epoch_begin

        def on_epoch_begin(epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt
            begin(epoch, logs)

        callback.on_epoch_begin = on_epoch_begin
        return callback

    monkeypatch.setattr(job.train.training, "epoch_log_callback", stopping_before_epoch_3)
    with pytest.raises(Interrupted, match="epochs 1-2 are kept"):
        tiny(tmp_path / "resumed", "cnn-bn-aug", npz_path, **settings)
    monkeypatch.setattr(job.train.training, "epoch_log_callback", real)
    run = tmp_path / "resumed" / "cnn-bn-aug"
    _, resumed = train(TrainConfig(out=str(run), resume=True, verbose=0))
    losses = [[row[k] for k in ("loss", "val_loss", "val_accuracy")]
              for row in read_history(tmp_path / "whole" / "cnn-bn-aug" / "history.csv")]
    assert [[row[k] for k in ("loss", "val_loss", "val_accuracy")]
            for row in read_history(run / "history.csv")] == losses
    for key in ("test_loss", "test_accuracy", "confusion_matrix", "val_accuracy", "kept_epoch"):
        assert resumed[key] == whole[key], key


def test_real_sample_beats_chance_by_far(tmp_path):
    run_dir, metrics = train(TrainConfig(model="cnn-mit", dataset="mnist-sample", epochs=2,
                                         out=str(tmp_path / "run"), verbose=0))
    assert metrics["test_accuracy"] > 0.9  # chance is 0.1


def start_training(out, data, epochs, *extra):
    return subprocess.Popen([str(BIN / "mnist-job"), "train", "--model", "dense-512", "--data", str(data),
                             "--epochs", str(epochs), "--batch-size", "8", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(out, n, proc, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if (out / "backup").exists() and len(read_history(out / "history.csv")) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail("training did not reach the epoch in time")


def test_kill_9_then_resume_counts_every_epoch_and_second(tmp_path, npz_path):
    out = tmp_path / "run"
    proc = start_training(out, npz_path, epochs=6)
    wait_for_epochs(out, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.keras").exists()
    first = read_history(out / "history.csv")
    assert 2 <= len(first) < 6
    config_before = json.loads((out / "config.json").read_text())
    result = run_cli("train", "--out", out, "--resume", "--json")  # the run's own settings, from config.json
    assert result.returncode == 0, result.stderr[-2000:]
    history = read_history(out / "history.csv")
    assert [int(r["epoch"]) for r in history] == list(range(6))
    assert history[: len(first) - 1] == first[: len(first) - 1]  # it continued, it did not start over
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 6
    assert metrics["train_seconds"] == pytest.approx(sum(float(r["seconds"]) for r in history), abs=1e-3)
    config = json.loads((out / "config.json").read_text())
    assert {k: v for k, v in config.items() if k != "resumes"} == {
        k: v for k, v in config_before.items() if k != "resumes"}
    assert len(config["resumes"]) == 1 and config["resumes"][0]["after_epoch"] >= 2


def _intact_backup(backup):
    """The latest backup's weights open and its metadata parses."""
    import h5py

    try:
        with h5py.File(backup / "latest.weights.h5", "r"):
            pass
        for path in backup.glob("*.json"):
            json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def test_resume_survives_a_backup_truncated_mid_write(tmp_path, npz_path):
    out = tmp_path / "run"
    proc = start_training(out, npz_path, epochs=8)
    wait_for_epochs(out, 3, proc)  # two backups written, so the previous one is kept beside the latest
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    backup = out / "backup"
    latest = backup / "latest.weights.h5"
    # Before overwriting the latest backup in place, Keras copies it (weights and metadata) to its .bkp files.
    # The kill above lands anywhere in an epoch, on a loaded machine during that copy too (CI saw it), and
    # a half-copied .bkp beside the latest is a state a real kill never leaves with a torn latest. So the copy
    # is finished here, as Keras would have, unless the kill already tore the latest backup itself.
    if _intact_backup(backup):
        for path in [p for p in backup.iterdir() if p.suffix != ".bkp"]:
            path.with_name(path.name + ".bkp").write_bytes(path.read_bytes())
    latest.write_bytes(latest.read_bytes()[:96])  # what a kill during Keras's in-place write leaves
    result = run_cli("train", "--model", "dense-512", "--data", npz_path, "--epochs", 8, "--batch-size", 8,
                     "--out", out, "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [int(r["epoch"]) for r in read_history(out / "history.csv")] == list(range(8))


def test_resume_refuses_a_finished_run_and_other_settings(tmp_path, npz_path):
    run_dir, _ = tiny(tmp_path, "cnn-mit", npz_path, epochs=2)
    model_bytes, config_bytes = (run_dir / "model.keras").read_bytes(), (run_dir / "config.json").read_bytes()
    finished = run_cli("train", "--model", "cnn-mit", "--data", npz_path, "--epochs", 1, "--out", run_dir, "--resume")
    assert finished.returncode == 2 and "already finished; nothing to resume" in error_line(finished)
    assert (run_dir / "model.keras").read_bytes() == model_bytes  # the finished model was not replaced
    (run_dir / "model.keras").unlink()  # an unfinished run, now
    for args, named in ((["--model", "dense-512"], "--model dense-512 (the run has cnn-mit)"),
                        (["--learning-rate", "0.5"], "--learning-rate 0.5"),
                        (["--batch-size", "32", "--epochs", "3"], "--epochs 3 (the run has 2); --batch-size 32")):
        result = run_cli("train", "--out", run_dir, "--resume", *args)
        assert result.returncode == 2 and named in error_line(result), result.stderr[-500:]
    assert (run_dir / "config.json").read_bytes() == config_bytes
    with pytest.raises(JobError, match="no config.json"):
        train(TrainConfig(out=str(tmp_path / "never-started"), resume=True))


def test_resume_or_start_starts_a_new_run_and_resumes_an_unfinished_one(tmp_path, npz_path):
    from job.train.rundir import start
    from job.train.run_config import resolve

    fresh = resolve(TrainConfig(out=str(tmp_path / "new"), resume_or_start=True, model="cnn-mit"))
    assert fresh.resume is False and start(fresh.out, fresh.resume).is_dir()
    run_dir, _ = tiny(tmp_path, "cnn-mit", npz_path, epochs=2)
    (run_dir / "model.keras").unlink()  # unfinished now
    again = resolve(TrainConfig(out=str(run_dir), resume_or_start=True))
    assert again.resume is True and again.model == "cnn-mit" and again.epochs == 2
    with pytest.raises(JobError, match="--resume-or-start needs --out"):
        resolve(TrainConfig(resume_or_start=True))


def test_an_interrupt_while_writing_results_leaves_an_unfinished_run_that_resume_finishes(
        tmp_path, npz_path, monkeypatch):
    import job.train.plots

    real = job.train.plots.plot_run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(job.train.plots, "plot_run", interrupted)
    with pytest.raises(Interrupted, match="interrupted while writing the results.*--resume"):
        tiny(tmp_path, "dense-128", npz_path, epochs=2)
    run_dir = tmp_path / "dense-128"
    assert not (run_dir / "model.keras").exists()  # unfinished: an export or evaluate refuses it
    assert run_cli("export", run_dir).returncode == 2
    monkeypatch.setattr(job.train.plots, "plot_run", real)
    _, metrics = train(TrainConfig(out=str(run_dir), resume=True, verbose=0))
    assert metrics["epochs_run"] == 2 and len(read_history(run_dir / "history.csv")) == 2  # nothing retrained
    assert all((run_dir / "plots" / p).is_file() for p in PLOTS) and (run_dir / "model.keras").is_file()


def test_ctrl_c_in_a_later_epoch_keeps_the_backup_and_prints_the_resume_command(tmp_path, npz_path):
    out = tmp_path / "run"
    proc = start_training(out, npz_path, epochs=50)
    wait_for_epochs(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert f"mnist-job train --out {out} --resume" in last and "are kept in" in last
    assert (out / "backup").is_dir() and (out / "last.keras").is_file()


def test_ctrl_c_in_the_first_epoch_does_not_promise_a_backup(tmp_path, npz_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([str(BIN / "mnist-job"), "train", "--model", "dense-512", "--dataset", "mnist-sample",
                             "--epochs", "2", "--batch-size", "8", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # Keras's CSVLogger opens history.csv as fit begins: from then on, epoch 1 runs (5,400 samples at batch 8)
    while not (out / "history.csv").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    # Most often the signal lands while TensorFlow traces the first step, where a raw KeyboardInterrupt
    # came out wrapped in a TF error (exit 1, a traceback) about 1 run in 40
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert "before any epoch finished" in last and "kept in" not in last


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet-9000"], "unknown model 'resnet-9000'"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--val-split", "1.5"], "--val-split must be in (0, 1)"),
    (["--out", "/proc/version/run"], "not writable"),
    (["--data", "/nonexistent/mnist.npz"], "no such file"),
    (["--optimizer", "adamm", "--epochs", "1"], "unknown optimizer 'adamm'"),
    (["--early-stopping", "0"], "--early-stopping must be at least 1"),
])
def test_bad_arguments_are_one_line_exit_2_and_leave_no_run_folder(tmp_path, npz_path, args, message):
    base = ["train", "--data", npz_path, "--out", tmp_path / "r"]
    result = run_cli(*base, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in error_line(result)
    assert not (tmp_path / "r").exists() or "--out" in args


def test_offline_without_local_data_is_one_line_exit_2(tmp_path):
    # A dead proxy makes Keras's download fail at once, with or without internet.
    env = {"MNIST_DATA": "", "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9"}
    result = run_cli("train", "--dataset", "mnist", "--out", tmp_path / "r", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "--data PATH" in error_line(result)
    assert not (tmp_path / "r").exists()


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_the_wrong_dataset_is_refused(tmp_path, npz_path):
    result = run_cli("train", "--dataset", "mnist", "--data", FASHION, "--out", tmp_path / "r")
    assert result.returncode == 2 and "look like Fashion-MNIST" in error_line(result)
    run_dir, _ = tiny(tmp_path, "dense-128", npz_path)
    result = run_cli("evaluate", run_dir, "--data", FASHION)
    assert result.returncode == 2 and "look like Fashion-MNIST" in error_line(result)


def test_evaluate_fails_far_below_the_recorded_accuracy(tmp_path, npz_path):
    from synthetic import write_npz

    run_dir, metrics = tiny(tmp_path, "dense-512", npz_path, epochs=3)
    assert metrics["test_accuracy"] > 0.5
    shuffled = np.load(write_npz(tmp_path / "other.npz", seed=5))
    labels = dict(shuffled)
    labels["y_test"] = (labels["y_test"] + 3) % 10  # right digits, wrong labels
    np.savez(tmp_path / "wrong.npz", **labels)
    result = run_cli("evaluate", run_dir / "model.keras", "--data", tmp_path / "wrong.npz")  # the file is fine too
    assert result.returncode == 1 and "far below" in error_line(result)
    assert run_cli("evaluate", run_dir, "--json").returncode == 0


def test_label_smoothing_and_outlier_loss():
    import keras

    from job.train.losses import DigitAccuracy, SparseSmoothedCrossentropy

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=32).astype(np.float32)
    labels = rng.integers(0, 10, size=32)
    ours = SparseSmoothedCrossentropy(0.1)(labels, probs)
    keras_one_hot = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(10)[labels], probs)
    assert float(ours) == pytest.approx(float(keras_one_hot), rel=1e-6)
    unsmoothed = SparseSmoothedCrossentropy(0.0)(labels, probs)
    assert float(unsmoothed) == pytest.approx(float(keras.losses.SparseCategoricalCrossentropy()(labels, probs)),
                                              rel=1e-6)
    # an outlier (-1) is pulled towards the uniform distribution, which is where its loss is lowest
    uniform, peaked = np.full((1, 10), 0.1, np.float32), np.eye(10, dtype=np.float32)[[3]] * 0.9 + 0.01
    loss = SparseSmoothedCrossentropy(0.1)
    assert float(loss(np.array([-1]), uniform)) < float(loss(np.array([-1]), peaked))
    assert float(loss(np.array([-1]), uniform)) == pytest.approx(np.log(10), rel=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(SparseSmoothedCrossentropy(0.2)))
    assert again.label_smoothing == 0.2  # model.keras files and checkpoints reload with it
    metric = DigitAccuracy()
    metric.update_state(np.array([3, -1, 5]), np.eye(10)[[3, 3, 4]])
    assert float(metric.result()) == 0.5  # the outlier row is not counted


def test_the_distilled_loss_mixes_the_base_where_it_is_right_and_keeps_the_label_elsewhere():
    import keras

    from job.train.losses import DigitAccuracy, DistilledCrossentropy, SparseSmoothedCrossentropy

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=4).astype(np.float32)
    base = rng.dirichlet(np.ones(10), size=4).astype(np.float32)
    labels = base.argmax(axis=1)
    labels[1] = (labels[1] + 1) % 10  # the base is wrong here: a correction
    labels[2] = -1  # an outlier
    rows = np.concatenate([labels[:, None].astype(np.float32), base], axis=1)
    smoothed = 0.9 * np.eye(10)[np.maximum(labels, 0)] + 0.01
    smoothed[2] = 0.1
    target = smoothed.copy()
    target[[0, 3]] = 0.5 * base[[0, 3]] + 0.5 * smoothed[[0, 3]]
    expected = keras.losses.categorical_crossentropy(target, probs)
    ours = DistilledCrossentropy(0.1, 0.5)(rows, probs)
    assert float(ours) == pytest.approx(float(np.mean(expected)), rel=1e-5)
    # with no weight on the base it is the label's loss alone
    plain = SparseSmoothedCrossentropy(0.1)(labels, probs)
    assert float(DistilledCrossentropy(0.1, 0.0)(rows, probs)) == pytest.approx(float(plain), rel=1e-6)
    again = keras.losses.deserialize(keras.losses.serialize(DistilledCrossentropy(0.1, 0.3)))
    assert (again.label_smoothing, again.weight) == (0.1, 0.3)
    metric = DigitAccuracy()
    metric.update_state(rows, np.eye(10)[[labels[0], 0, 0, labels[3]]])
    assert float(metric.result()) == pytest.approx(2 / 3)  # scored on the label column, the outlier left out


def test_a_distilled_pipeline_carries_the_teachers_probabilities_of_each_augmented_image():
    import keras

    from job.train.training import make_dataset

    inputs = keras.Input((28, 28))
    teacher = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Dense(10)(keras.layers.Flatten()(inputs))))
    x = np.random.default_rng(0).integers(0, 255, (20, 28, 28), dtype=np.uint8)
    y = np.arange(20, dtype=np.int32) % 10
    seen = []
    for images, rows in make_dataset(x, y, 8, seed=0, training=True, augment=True, teacher=teacher):
        rows = rows.numpy()
        assert rows.shape[1] == 11
        np.testing.assert_allclose(rows[:, 1:], teacher.predict(images.numpy(), verbose=0), atol=1e-5)
        seen += list(rows[:, 0])
    assert sorted(seen) == sorted(y.astype(float))  # every label once, in the first column


def test_augmentation_flips_clothing_but_never_digits():
    from job.data.augment import augmenter

    images = np.zeros((64, 28, 28), np.float32)
    images[:, 6:22, 3:7] = 255.0  # a bar on the left: a mirror flip moves it to the right half

    def right_half_share(mirror):
        out = np.asarray(augmenter(seed=1, mirror=mirror)(images, np.zeros(64))[0])
        return out[:, :, 14:].sum(axis=(1, 2)) / out.sum(axis=(1, 2))

    digits, clothing = right_half_share(False), right_half_share(True)
    assert digits.max() < 0.05  # shifted and rotated, but still on the left
    assert 10 < (clothing > 0.95).sum() < 54  # about half of them mirrored


def test_robust_augmentation_changes_strokes_not_labels():
    from job.data.augment import augmenter, stretched
    from job.data.datasets import load_dataset

    sample = load_dataset("mnist-sample")
    x = sample.x_train[:64].astype(np.float32)
    out, labels = augmenter(seed=3, robust=True)(x, sample.y_train[:64])
    out = np.asarray(out)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
    assert np.array_equal(np.asarray(labels), sample.y_train[:64])
    ink = lambda a: (a > 64).sum(axis=(1, 2))  # noqa: E731
    change = ink(out) / ink(x)
    assert change.min() < 0.8 and change.max() > 1.2  # some strokes thinner, some thicker
    more, more_labels = stretched(sample.x_train, sample.y_train, 0.01, seed=0)
    assert len(more) == 60 and more.dtype == np.uint8
    rows = (more > 0).any(axis=2)
    assert (rows.sum(axis=1) <= 21).all()  # framed as MNIST frames a digit: at most 20x20 (and its edge)


def test_outliers_are_drawn_as_the_predictor_frames_ink():
    from job.data.outliers import KINDS, make_outliers

    x = make_outliers(50, seed=1)
    assert x.shape == (50, 28, 28) and x.dtype == np.uint8
    assert len({int(a.sum()) for a in x}) == 50  # all different
    framed = [a for k, a in enumerate(x) if KINDS[k % len(KINDS)] in ("scribble", "blob", "texture")]
    for a in framed:
        rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
        assert rows[-1] - rows[0] < 22 and cols[-1] - cols[0] < 22


def test_letters_are_framed_ink_from_printed_fonts_only_and_leave_digit_shaped_letters_out_of_training():
    from job.data import letters

    x = letters.make_letters(40, seed=3)
    assert x.shape == (40, 28, 28) and x.dtype == np.uint8
    assert all(a.max() > 200 for a in x) and len({int(a.sum()) for a in x}) == 40
    for a in x:
        rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
        assert rows[-1] - rows[0] < 22 and cols[-1] - cols[0] < 22
    # the fonts: DejaVu teaches, Liberation measures, nothing handwriting-like
    for role in ("train", "test"):
        assert all(("DejaVu" if role == "train" else "Liberation") in path for path in letters.fonts(role))
    assert not set(letters.TRAIN_CHARACTERS) & letters.DIGIT_SHAPED and not set("0123456789") & set(
        letters.TRAIN_CHARACTERS)
    assert set(letters.PEN_STROKES) <= set(letters.TEST_CHARACTERS)
    pen = letters.make_letters(10, seed=1, role="train", characters="AHK")  # with or without fonts installed
    assert (pen.reshape(10, -1).max(axis=1) > 200).all()


def test_font_digits_are_labelled_framed_digits_from_the_training_fonts(monkeypatch):
    from job.data import letters

    x, y = letters.make_font_digits(60, seed=2)
    assert x.shape == (60, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int32
    assert set(y.tolist()) == set(range(10)) and len({int(a.sum()) for a in x}) == 60
    for a in x:
        rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
        assert a.max() > 200 and rows[-1] - rows[0] < 22 and cols[-1] - cols[0] < 22
    # each is its label as drawn: the same font, pen and wobble draw the same digit again
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 60)
    files = letters.fonts("train")
    assert np.array_equal(x[0], letters.draw_letter(str(labels[0]), rng, files[int(rng.integers(len(files)))]))
    monkeypatch.setitem(letters.FONT_DIRS, "train", ("/nonexistent/*.ttf",))  # no fonts: no digits, not pen strokes
    x, y = letters.make_font_digits(10)
    assert x.shape == (0, 28, 28) and y.shape == (0,)


def test_training_fonts_come_from_matplotlib_where_the_system_has_none(monkeypatch):
    """Dockerfile.gpu's base has no Debian fonts: training there still draws font letters and font digits, from
    the DejaVu faces matplotlib ships (none of its Display faces, which hold no letters), not pen strokes."""
    from job.data import letters

    monkeypatch.setitem(letters.FONT_DIRS, "train", ("/nonexistent/*.ttf", *letters.FONT_DIRS["train"][1:]))
    files = letters.fonts("train")
    assert len(files) >= 12 and all("mpl-data" in path and "DejaVu" in path for path in files)
    assert not any("Display" in path for path in files)
    x, y = letters.make_font_digits(20, seed=4)
    assert x.shape == (20, 28, 28) and (x.reshape(20, -1).max(axis=1) > 200).all()
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, 20)
    assert np.array_equal(x[0], letters.draw_letter(str(labels[0]), rng, files[int(rng.integers(len(files)))]))


def test_font_digits_in_training_teach_hands_other_than_mnists(tmp_path, run_dir, monkeypatch):
    """The same tiny run with and without the font digits (run_dir has them): the one that saw them reads digits
    of fonts it never saw (Liberation) far better (measured: 81% against 65% of 300)."""
    import keras

    from job.data import letters
    from job.train import training

    x, y = letters.make_font_digits(300, seed=7, role="test")
    monkeypatch.setattr(training, "FONT_DIGIT_SHARE", 0.0)
    without = tiny_run(tmp_path / "without", "cnn-bn-aug", None, epochs=4, samples=1080, dataset="mnist-sample")
    right = {}
    for name, run in (("with", run_dir), ("without", without)):
        model = keras.saving.load_model(Path(run) / "model.keras")
        right[name] = float(np.mean(model.predict(x.astype(np.float32), verbose=0).argmax(axis=1) == y))
    assert right["with"] >= right["without"] + 0.08, right


def test_number_strips_touch_when_asked_and_keep_each_digits_box():
    from job.data.number_images import render_number, strip
    from mnist_predict import images

    sample = load_dataset("mnist-sample")
    digits = list(sample.x_test[:4])
    for spacing in ("loose", "tight", "touching", "overlapping"):
        ink, boxes = strip(digits, spacing, np.random.default_rng(0), 4)
        mask = ink > 0.5
        pieces = len(images.components(mask, ink)[1])
        gaps = [b[0] - (a[0] + a[2]) for a, b in zip(boxes, boxes[1:])]
        if spacing in ("loose", "tight"):
            assert min(gaps) > 0 and pieces >= 4
        else:
            assert max(gaps) <= 0 and pieces < 4  # neighbours' ink meets
        for x, y, w, h in boxes:
            assert ink[y:y + h, x:x + w].max() > 0.9
    image, suffix, boxes = render_number(digits, "tight", "phone", seed=2)
    assert suffix == ".jpg" and len(boxes) == 4 and all(0 <= x and x + w <= image.width for x, _, w, _ in boxes)


def test_a_form_draws_its_printed_lines_around_the_digits_and_nowhere_else():
    from job.data.number_images import FORMS, draw_form, strip

    sample = load_dataset("mnist-sample")
    ink, boxes = strip(list(sample.x_test[:3]), "loose", np.random.default_rng(0), 4)
    page = np.zeros((ink.shape[0] + 80, ink.shape[1]), np.float32)
    page[40:40 + ink.shape[0]] = ink
    boxes = [(x, y + 40, w, h) for x, y, w, h in boxes]
    drawn = {}
    for form in FORMS:
        drawn[form] = page.copy()
        draw_form(drawn[form], boxes, form, 4)
        added = (drawn[form] == 1.0) & (page < 1.0)
        rows = np.flatnonzero(added.any(axis=1))
        assert rows[-1] > max(y + h for _, y, _, h in boxes)  # a line under the number
        # the digits' own ink is untouched away from the lines
        assert all((drawn[form][y:y + h, x + w // 3:x + 2 * w // 3] == page[y:y + h, x + w // 3:x + 2 * w // 3]).mean()
                   > 0.9 for x, y, w, h in boxes)
    between = (boxes[0][0] + boxes[0][2] + boxes[1][0]) // 2  # the cell edge between the first two digits
    assert drawn["underline"][:, between].sum() < drawn["comb"][:, between].sum() < drawn["boxes"][:, between].sum()
    assert drawn["boxes"][:boxes[0][1], boxes[0][0]:boxes[-1][0]].max() == 1.0  # a box's top, above the digits
    # a box around the whole number: its top over the cell edge, but no edge down it
    assert drawn["underline"][:, between].sum() < drawn["frame"][:, between].sum() < drawn["boxes"][:, between].sum()
    with pytest.raises(ValueError, match="unknown form"):
        draw_form(page, boxes, "ledger", 4)


def test_segment_crops_are_digits_with_slivers_and_fragments_labelled_as_outliers():
    from job.data.segment_crops import is_outlier, matches, one_shaped, segment_crops

    sample = load_dataset("mnist-sample")
    (x_cut, y_cut), x_fragments = segment_crops(sample.x_train[:300], sample.y_train[:300], 40, 40, seed=0)
    assert x_cut.shape == (40, 28, 28) and y_cut.shape == (40,) and x_fragments.shape == (40, 28, 28)
    assert set(y_cut.tolist()) <= set(range(10)) and len(set(y_cut.tolist())) > 3
    box = (100, 10, 40, 60)
    assert matches((98, 10, 50, 60), box)  # the digit and a sliver of its neighbour
    assert not matches((100, 10, 30, 60), box) and not matches((80, 10, 80, 60), box)
    assert is_outlier((100, 10, 15, 60), [box])  # a fragment
    assert is_outlier((100, 10, 90, 60), [box, (145, 10, 40, 60)])  # two digits framed as one
    assert not is_outlier((100, 10, 36, 60), [box])
    # a fragment shaped like a 1 is no outlier: training would learn to refuse the 1s
    assert not any(one_shaped(pixels) for pixels in x_fragments)
    stroke = np.zeros((28, 28), np.uint8)
    stroke[4:24, 12:16] = 255
    wide = np.zeros((28, 28), np.uint8)
    wide[4:24, 6:20] = 255
    assert one_shaped(stroke) and not one_shaped(wide)
