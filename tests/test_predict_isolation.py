"""The predictor never needs TensorFlow (nor keras, tf2onnx or onnx): at run time, in code, in install.

Register the marker used here, or pytest warns about an unknown mark:
    [tool.pytest.ini_options]
    markers = ["slow: creates a venv and installs from PyPI (deselect with -m 'not slow')"]
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import mnist_predict
import pytest
from predict_fixtures import digit_folder, export_dir, glyphs, model_path, read_rows, tflite_export  # noqa: F401

PACKAGE = Path(mnist_predict.__file__).parent
DEPLOY = PACKAGE.parent
FORBIDDEN = ("tensorflow", "keras", "tf2onnx", "onnx")  # onnx too: only onnxruntime is a dependency
BLOCKER = """
import os
with open(os.environ["BLOCKED_IMPORTS_LOG"], "a") as log:
    log.write(__name__ + "\\n")
raise ImportError(__name__ + " is blocked in this test")
"""
API_SCRIPT = """
import sys
from mnist_predict import Predictor
result = Predictor(sys.argv[1]).predict(sys.argv[2:])
print(result.labels.tolist())
assert not [name for name in sys.modules if name.split(".")[0] in {forbidden}]
"""


def test_no_module_imports_tensorflow():
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & set(FORBIDDEN), (source.name, names)


def test_importing_the_cli_leaves_onnxruntime_for_later():
    """`mnist-job --help` mounts this app; it should not pay for onnxruntime, numpy or Pillow."""
    code = "import sys, mnist_predict.cli; print(sorted({'onnxruntime', 'numpy', 'PIL'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def blocked_environment(tmp_path, names=FORBIDDEN, blocker=BLOCKER):
    """(env, log): an environment in which importing any of `names` fails, and logs the attempt."""
    blocked = tmp_path / "blocked"
    for name in names:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(blocker)
    log = tmp_path / "imports.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")]),
        "BLOCKED_IMPORTS_LOG": str(log),
    }
    return env, log


def test_cli_and_api_run_where_tensorflow_cannot_be_imported(tmp_path, digit_folder, export_dir):
    env, log = blocked_environment(tmp_path)
    # The blocker works: importing tensorflow really fails in this environment.
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True)
    assert probe.returncode != 0 and log.read_text() == "tensorflow\n"
    log.unlink()

    model = str(export_dir / "model.onnx")
    out = tmp_path / "p.csv"
    commands = [
        [
            "-m",
            "mnist_predict",
            str(digit_folder),
            "--model",
            model,
            "--out",
            str(out),
            "--workers",
            "2",
            "--batch-size",
            "8",
        ],
        ["-m", "mnist_predict", "check", "--model", model],
        ["-c", API_SCRIPT.format(forbidden=set(FORBIDDEN)), model, str(digit_folder / "07-7.png")],
    ]
    for command in commands:
        result = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[7]"
    assert len(read_rows(out)) == 30
    assert not log.exists(), log.read_text()


@pytest.mark.slow
def test_deploy_installs_alone_without_tensorflow(tmp_path, digit_folder, export_dir, tflite_export):
    """The edge install in a fresh venv, as deploy/Dockerfile does it: deploy/requirements.lock hash-checked,
    then the package: onnxruntime, ai-edge-litert, numpy, Pillow, Typer, Rich, pebble and nothing of TF; it
    predicts with both runtimes."""
    source = shutil.copytree(
        DEPLOY, tmp_path / "deploy", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    pip = [bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--require-hashes", "-r", source / "requirements.lock"], check=True, timeout=1200)
    subprocess.run([*pip, "--no-deps", source], check=True, timeout=600)
    listing = subprocess.run(
        [bin_dir / "python", "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    installed = {package["name"].lower() for package in json.loads(listing.stdout)}
    assert {"onnxruntime", "ai-edge-litert", "numpy", "pillow", "typer", "rich", "mnist-predict"} <= installed
    assert not installed & {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx"}
    for model in (export_dir / "model.onnx", tflite_export / "model.tflite"):
        out = tmp_path / f"{model.suffix}.csv"
        command = [bin_dir / "mnist-predict", digit_folder, "--model", model, "--out", out]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert [row["label"] for row in read_rows(out)] == [row["path"][-5] for row in read_rows(out)]


def test_litert_models_run_where_tensorflow_cannot_be_imported(tmp_path, digit_folder, tflite_export):
    env, log = blocked_environment(tmp_path)
    model = str(tflite_export / "model.tflite")
    out = tmp_path / "p.csv"
    for command in (["-m", "mnist_predict", str(digit_folder), "--model", model, "--out", str(out), "--batch-size", "7"],
                    ["-m", "mnist_predict", "check", "--model", model],
                    ["-c", API_SCRIPT.format(forbidden=set(FORBIDDEN)), model, str(digit_folder / "07-7.png")]):
        result = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[7]"
    rows = read_rows(out)
    assert len(rows) == 30 and all(row["label"] == row["path"][-5] for row in rows)
    assert rows[0]["class_name"] == "zero"  # the labels come from the manifest beside the .tflite
    assert not log.exists(), log.read_text()


def test_a_litert_model_without_the_extra_is_one_line(tmp_path, digit_folder, tflite_export):
    env, _ = blocked_environment(tmp_path, ["ai_edge_litert"], "raise ImportError('not installed')")
    result = subprocess.run([sys.executable, "-m", "mnist_predict", str(digit_folder), "--model",
                             str(tflite_export / "model.tflite")], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: model.tflite is a LiteRT model and needs the LiteRT runtime: pip install './deploy[litert]'   "
        "(or: pip install ai-edge-litert)"]
