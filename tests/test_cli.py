"""The mnist-job command line as a person uses it: --json, help, exit codes, and what each command refuses."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, error_line, run_cli

COMMANDS_WITH_JSON = {"models", "train", "evaluate", "score", "cv", "export", "predict", "check"}


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
    code = "import sys, job.plots; print('job.training' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.strip() == "False"


def test_exit_codes_are_documented():
    text = " ".join(run_cli("--help").stdout.split())
    assert ("0 ok, 1 gate failed or a worker lost, 2 usage/input error, 3 some files failed, 130 interrupted"
            in text)
