import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from synthetic import write_dataset, write_npz  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx")
    write_dataset(folder, n_train=1200, n_test=300)
    return folder


@pytest.fixture(scope="session")
def npz_path(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("npz") / "mnist.npz", n_train=1200, n_test=300)


def tiny_run(path, model, data, epochs=1, samples=256, dataset="mnist"):
    from job.train.training import TrainConfig, train

    run_dir, _ = train(TrainConfig(model=model, dataset=dataset, data=data and str(data), epochs=epochs,
                                   max_train_samples=samples, batch_size=64, out=str(path), verbose=0))
    return run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A digit run that tests export, fine-tune and review: cnn-bn-aug has everything a converter can trip on
    (Normalization constants, BatchNormalization, Dropout, augmentation in its training pipeline).
    Trained far enough to be sure of its answers: int8 must keep them (an untrained model's near-ties flip).
    On the sample's real digits, with its 600 validation images: label smoothing leaves the model less sure
    than it is right, by more than those images' uncertainty, so export calibrates it."""
    return tiny_run(tmp_path_factory.mktemp("runs") / "cnn", "cnn-bn-aug", None, epochs=4, samples=1080,
                    dataset="mnist-sample")


def run_cli(*args, cwd=None, env=None, timeout=600, tool="mnist-job"):
    """Run a console script as a user would; returns CompletedProcess with text output."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([str(BIN / tool), *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def error_line(result):
    """The one error line a failing command printed (and proof there was no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1] if lines else ""
