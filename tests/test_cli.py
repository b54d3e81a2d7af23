"""The mnist-job command line as a person uses it: --json, help, exit codes, and what each command refuses."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, error_line, run_cli

COMMANDS_WITH_JSON = {"models", "train", "evaluate", "score", "cv", "export", "predict", "check"}


@pytest.mark.slow
def test_every_json_option_prints_pure_json(tmp_path, npz_path):
    run = tmp_path / "run"
    outputs = {
        "models": run_cli("models", "--json"),
        "train": run_cli("train", "--model", "dense-128", "--data", npz_path, "--epochs", 2,
                         "--max-train-samples", 200, "--out", run, "--json"),
    }
    outputs["evaluate"] = run_cli("evaluate", run, "--json")
    outputs["cv"] = run_cli("cv", "--model", "dense-128", "--data", npz_path, "--folds", 2, "--epochs", 1,
                            "--max-train-samples", 200, "--out", tmp_path / "cv", "--json")
    outputs["export"] = run_cli("export", run, "--format", "onnx", "--json")
    run_cli("images", "--dataset", "custom", "--data", npz_path, "--limit", 20, "--out", tmp_path / "png")
    outputs["predict"] = run_cli("predict", tmp_path / "png", "--model", run / "export" / "model.onnx",
                                 "--out", tmp_path / "p.csv", "--json")
    outputs["check"] = run_cli("predict", "check", "--model", run / "export" / "model.onnx", "--json")
    outputs["score"] = run_cli("score", tmp_path / "p.csv", "--json")
    assert set(outputs) == COMMANDS_WITH_JSON
    for name, result in outputs.items():
        assert result.returncode in (0, 3), (name, result.stderr[-1000:])
        json.loads(result.stdout)  # the whole of stdout, and nothing else
    assert "Epoch 1/2" in outputs["train"].stderr or "accuracy" in outputs["train"].stderr
    assert "fold 1/2" in outputs["cv"].stderr


def test_help_commands_cover_every_json_command():
    listed = run_cli("--help").stdout
    for name in COMMANDS_WITH_JSON - {"check"}:
        assert name in listed


@pytest.mark.parametrize("command", ["train", "evaluate", "images", "score", "cv", "sweep", "compare", "export",
                                     "models"])
def test_each_command_teaches_by_example(command):
    result = run_cli(command, "-h")
    assert result.returncode == 0
    assert "Example: mnist-job" in " ".join(result.stdout.split())


def test_short_help_works_for_both_programs():
    assert run_cli("-h").returncode == 0
    assert run_cli("-h", tool="mnist-predict").returncode == 0


def test_images_refuse_to_mix_sets_and_render_photos(tmp_path):
    first = run_cli("images", "--limit", 5, "--out", tmp_path / "set")
    assert first.returncode == 0
    again = run_cli("images", "--split", "train", "--limit", 5, "--out", tmp_path / "set")
    assert again.returncode == 2 and "--overwrite" in error_line(again)
    photos = run_cli("images", "--limit", 6, "--condition", "phone", "--layout", "classes", "--out", tmp_path / "ph")
    assert photos.returncode == 0, photos.stderr
    assert len(list((tmp_path / "ph").rglob("*.jpg"))) == 6
    bad = run_cli("images", "--condition", "underwater", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "unknown --condition 'underwater'" in error_line(bad)


def test_score_prints_every_count(tmp_path):
    rows = ["path,label,class_name,status,review"] + [f"d/{k}_{k}.png,{k},{k},ok," for k in range(6)]
    rows += [f"d/{k}_{k}.png,,,error," for k in range(6, 9)] + ["d/photo.png,4,4,ok,"]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    out = run_cli("score", tmp_path / "p.csv").stdout
    assert "9 labelled (1 without a label), 6 predicted, 3 errors" in out
    assert "errors count as wrong): 0.6667 (6/9)" in out and "predicted files: 1.0000 (6/6)" in out


def test_plots_and_training_do_not_import_each_other():
    code = "import sys, job.train.plots; print('job.train.training' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.strip() == "False"


def test_exit_codes_are_documented():
    text = " ".join(run_cli("--help").stdout.split())
    assert ("0 ok, 1 gate failed or a worker lost, 2 usage/input error, 3 some files failed, 130 interrupted"
            in text)


@pytest.mark.slow
def test_data_given_is_used_or_refused(tmp_path):
    import numpy as np
    from PIL import Image

    from job.data.datasets import load_dataset

    sample = load_dataset("mnist-sample")
    part = tmp_path / "part.npz"  # the sample's own digits, a quarter of its test set: other data, same kind
    np.savez(part, x_train=sample.x_train, y_train=sample.y_train, x_test=sample.x_test[:500],
             y_test=sample.y_test[:500])
    refused = run_cli("train", "--dataset", "mnist-sample", "--data", part, "--out", tmp_path / "r")
    assert refused.returncode == 2 and "--dataset mnist-sample is the bundled sample" in error_line(refused)
    assert not (tmp_path / "r").exists()

    run = tmp_path / "run"
    assert run_cli("train", "--model", "dense-128", "--dataset", "mnist-sample", "--epochs", 1,
                   "--max-train-samples", 500, "--out", run).returncode == 0
    result = run_cli("evaluate", run, "--data", part, "--json")
    assert result.returncode == 0, result.stderr[-1500:]
    fresh = json.loads(result.stdout)["fresh"]
    assert fresh["images"] == 500 and str(part) in fresh["data"]  # the file given, not the bundled sample
    assert json.loads((run / "eval-part.npz" / "metrics.json").read_text())["confusion_matrix"] == \
        fresh["confusion_matrix"]

    for kind, colour in (("dark", 40), ("light", 220)):  # a two-class folder of the user's own
        (tmp_path / "own" / kind).mkdir(parents=True)
        for n in range(4):
            canvas = Image.new("L", (40, 40), 255 - colour)
            canvas.paste(colour, (8 + n, 8, 30, 30))
            canvas.save(tmp_path / "own" / kind / f"{n}.png")
    written = run_cli("images", "--data", tmp_path / "own", "--split", "train", "--layout", "classes",
                      "--out", tmp_path / "written", env={"MNIST_JOB_CACHE": str(tmp_path / "cache")})
    assert written.returncode == 0, written.stderr[-1500:]
    assert sorted(p.name for p in (tmp_path / "written").iterdir()) == ["dark", "light"]  # its classes, not 0-9


def test_images_help_states_its_own_default():
    import re

    text = " ".join(re.sub("[│╭╮╰╯─]", " ", run_cli("images", "--help", env={"COLUMNS": "200"}).stdout).split())
    assert "Default: mnist-sample, or mnist with --data" in text and "Default: mnist." not in text


def test_make_demo_and_test_install_the_browser_page_first(tmp_path):
    """WEB_DEPS must be defined before the rules that list it, or make expands it to nothing there."""
    import shutil

    for name in ("Makefile", "pyproject.toml", "requirements/cpu.lock", "deploy/web/package.json",
                 "deploy/web/package-lock.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").touch()  # newer than the files it is made from
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # as when run by hand, not in make test
    for target, first in (("demo", "mnist-job train"), ("test", "-m pytest")):
        dry = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert "npm ci" in dry.stdout, (target, dry.stdout[:2000])
        assert dry.stdout.index("npm ci") < dry.stdout.index(first), dry.stdout


def test_make_help_names_every_export_format():
    help_text = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True).stdout
    line = next(line for line in help_text.splitlines() if line.strip().startswith("export "))
    assert "LiteRT" in line and "ONNX" in line and "SavedModel" in line


def test_the_predictors_help_names_both_runtimes():
    text = " ".join(run_cli("--help", tool="mnist-predict").stdout.split())
    assert "ONNX or LiteRT" in text and "ai-edge-litert" in text and "onnxruntime" in text
