"""`mnist-predict IMAGES ...` and `mnist-predict check ...`: output, order, sharding, exit codes."""

import json
import os
import shutil

import numpy as np
import pytest
import typer
from mnist_predict.cli import app
from PIL import Image
from predict_fixtures import (  # noqa: F401
    LABELS,
    build_model,
    digit_folder,
    export_dir,
    fresh_export,
    glyphs,
    model_path,
    predict_cli,
    read_rows,
    template_weights,
    write_export,
)
from typer.testing import CliRunner


def expected_label(path):
    return int(os.path.splitext(path)[0][-1])  # digits/NN-D.png


def test_predicts_a_folder_into_sorted_csv_rows(tmp_path, digit_folder, model_path, predict_cli):
    out = tmp_path / "out" / "predictions.csv"
    result = predict_cli(digit_folder, "--model", model_path, "--out", out)
    assert result.code == 0, result.err
    rows = read_rows(out)
    assert [row["path"] for row in rows] == sorted(str(path) for path in digit_folder.iterdir())
    for row in rows:
        label = expected_label(row["path"])
        assert row["label"] == str(label) and row["class_name"] == LABELS[label]
        assert float(row["probability"]) > 0.9 and row["status"] == "ok" and row["error"] == ""
        top = row["top_k"].split()
        assert len(top) == 3 and top[0] == f"{LABELS[label]}:{row['probability']}"  # names, not indices
    for words in ("files", "succeeded", "failed", "images/s", "predicted labels", "three"):
        assert words in result.out
    assert os.listdir(out.parent) == ["predictions.csv"]  # the temporary file was renamed, not left


def test_jsonl_rows_top_k_and_json_summary(tmp_path, digit_folder, model_path, predict_cli):
    out = tmp_path / "rows.jsonl"
    result = predict_cli(digit_folder, "-m", model_path, "--out", out, "--top-k", "2", "--json")
    assert result.code == 0
    summary = json.loads(result.out)
    assert summary["files"] == summary["succeeded"] == 30 and summary["failed"] == 0
    assert summary["histogram"] == {name: 3 for name in LABELS}
    assert summary["images_per_second"] > 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30 and all(len(row["top_k"]) == 2 for row in rows)
    assert rows[0]["top_k"][0] == {"label": 0, "class_name": "zero", "probability": rows[0]["probability"]}


def test_output_order_is_the_same_for_any_number_of_workers(tmp_path, digit_folder, model_path, predict_cli):
    outputs = []
    for workers in (0, 1, 2):
        outputs.append(tmp_path / f"workers-{workers}.csv")
        args = ("--workers", workers, "--batch-size", 4, "--out", outputs[-1])
        assert predict_cli(digit_folder, "--model", model_path, *args).code == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes() == outputs[2].read_bytes()


@pytest.mark.parametrize("cores, files", [(2, 150), (2, 256), (4, 100), (16, 256)])
def test_a_batch_is_shared_evenly_between_the_decode_workers(cores, files, monkeypatch):
    """Tasks go to the workers in turns, so the busiest worker decodes whole tasks beyond its fair share: with
    32-file tasks, 150 photos on 2 cores were 5 tasks, and one worker decoded 96 of them while the other
    waited. Now no worker gets more than 15% over its share, and no task more than an eighth of a batch."""
    from mnist_predict import batch, files as files_module

    monkeypatch.setattr(files_module, "usable_cpus", lambda: cores)
    chunk = batch.chunk_size(files, 256)
    tasks = [min(chunk, files - start) for start in range(0, files, chunk)]
    busiest = max(sum(tasks[worker::cores]) for worker in range(cores))
    assert 1 <= chunk <= 256 // 8 and busiest <= 1.15 * files / cores, (chunk, busiest)


def test_shards_are_complete_and_disjoint(tmp_path, digit_folder, model_path, predict_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shards = []
    for index in range(3):
        assert predict_cli(digit_folder, "--model", model_path, "--shard", f"{index}/3").code == 0
        shards.append({row["path"] for row in read_rows(f"predictions.shard-{index}-of-3.csv")})
    assert sum(len(shard) for shard in shards) == 30
    assert set.union(*shards) == {str(path) for path in digit_folder.iterdir()}
    assert all(shards)  # 30 files over 3 shards: none is empty
    # The same shard again, from a copy at another path, gets the same files: names decide.
    copy = shutil.copytree(digit_folder, tmp_path / "elsewhere")
    predict_cli(copy, "--model", model_path, "--shard", "1/3", "--out", "again.csv")
    assert {os.path.basename(row["path"]) for row in read_rows("again.csv")} == {
        os.path.basename(path) for path in shards[1]
    }


@pytest.mark.parametrize("shard", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_is_a_usage_error(digit_folder, model_path, predict_cli, shard):
    result = predict_cli(digit_folder, "--model", model_path, "--shard", shard)
    assert result.code == 2 and "--shard" in result.err


def test_single_file_glob_and_recursive(tmp_path, digit_folder, model_path, predict_cli):
    nested = digit_folder / "more"
    nested.mkdir()
    shutil.copy(digit_folder / "03-3.png", nested / "extra-3.png")
    (digit_folder / "readme.txt").write_text("not an image, and skipped: wrong suffix")
    (digit_folder / ".hidden.png").write_text("hidden files are skipped")
    out = tmp_path / "p.csv"
    cases = [
        ((digit_folder / "04-4.png",), 1),
        ((str(digit_folder / "1*.png"),), 10),
        ((digit_folder,), 30),
        ((digit_folder, "--recursive"), 31),
        ((str(digit_folder / "**" / "*-3.png"), "--recursive"), 4),
    ]
    for args, count in cases:
        assert predict_cli(*args, "--model", model_path, "--out", out).code == 0, args
        assert len(read_rows(out)) == count, args


@pytest.mark.parametrize("images", ["nothing-here-*.png", "missing-folder"])
def test_no_files_matched_is_a_usage_error(tmp_path, model_path, predict_cli, images):
    result = predict_cli(tmp_path / images, "--model", model_path)
    assert result.code == 2 and "no files matched" in result.err


def test_empty_folder_is_a_usage_error(tmp_path, model_path, predict_cli):
    (tmp_path / "empty").mkdir()
    result = predict_cli(tmp_path / "empty", "--model", model_path)
    assert result.code == 2 and "--recursive" in result.err


def test_unsupported_output_suffix_is_a_usage_error(tmp_path, digit_folder, model_path, predict_cli):
    result = predict_cli(digit_folder, "--model", model_path, "--out", tmp_path / "p.txt")
    assert result.code == 2 and ".csv or .jsonl" in result.err


def one_line_error(result, code=2):
    lines = result.err.strip().splitlines()
    return (
        result.code == code
        and len(lines) == 1
        and lines[0].startswith("error:")
        and "Traceback" not in result.err
    )


def test_manifest_mismatch_is_refused(tmp_path, digit_folder, fresh_export, predict_cli):
    manifest = json.loads((fresh_export / "manifest.json").read_text())
    manifest["files"]["model.onnx"]["sha256"] = "0" * 64
    (fresh_export / "manifest.json").write_text(json.dumps(manifest))
    result = predict_cli(digit_folder, "--model", fresh_export / "model.onnx", "--out", tmp_path / "p.csv")
    assert one_line_error(result) and "sha256" in result.err
    assert not (tmp_path / "p.csv").exists()


def test_model_edited_after_export_is_refused(digit_folder, fresh_export, predict_cli):
    with open(fresh_export / "model.onnx", "ab") as model:
        model.write(b"\0")
    assert "does not match manifest.json" in predict_cli(digit_folder, "--model", fresh_export / "model.onnx").err


def test_missing_non_onnx_and_wrong_shape_models_are_usage_errors(tmp_path, digit_folder, predict_cli):
    (tmp_path / "text.onnx").write_text("not a protobuf")
    weights, bias = np.zeros((784, 10)), np.zeros(10)
    build_model(tmp_path / "flat.onnx", weights, bias, input_shape=("N", 784))
    build_model(tmp_path / "channels.onnx", weights, bias, input_shape=("N", 28, 28, 1))
    cases = {
        "missing.onnx": "model not found",
        "text.onnx": "not a loadable ONNX model",
        "flat.onnx": "must be (N, 28, 28)",
        "channels.onnx": "must be (N, 28, 28)",
    }
    for name, words in cases.items():
        result = predict_cli(digit_folder, "--model", tmp_path / name)
        assert one_line_error(result) and words in result.err, (name, result.err)


def test_bad_option_is_a_one_line_usage_error(digit_folder, model_path, predict_cli):
    assert one_line_error(predict_cli(digit_folder, "--model", model_path, "--invert", "sometimes"))
    assert one_line_error(predict_cli(digit_folder, "--model", model_path, "--batch-size", "0"))
    assert one_line_error(predict_cli(digit_folder))  # --model is required


def test_some_failed_files_exit_3(tmp_path, digit_folder, model_path, predict_cli):
    (digit_folder / "99-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = predict_cli(digit_folder, "--model", model_path, "--out", tmp_path / "p.csv", "--json")
    assert result.code == 3
    assert json.loads(result.out)["failed"] == 1
    assert read_rows(tmp_path / "p.csv")[-1]["status"] == "error"


def test_labels_default_to_digits_without_metadata(tmp_path, glyphs, digit_folder, predict_cli):
    weights, bias = template_weights(glyphs)
    build_model(tmp_path / "plain.onnx", weights, bias, labels=None)
    assert predict_cli(digit_folder, "--model", tmp_path / "plain.onnx", "--out", tmp_path / "p.csv").code == 0
    assert {row["class_name"] for row in read_rows(tmp_path / "p.csv")} == {str(d) for d in range(10)}


def test_help_documents_exit_codes(predict_cli):
    for args in ((), ("predict",), ("check",)):
        result = predict_cli(*args, "--help")
        text = " ".join(result.out.split())  # Rich wraps the epilog
        assert result.code == 0
        assert "Exit codes: 0" in text and "2 usage error" in text and "3 some files failed" in text
    assert "decompression bombs" in " ".join(predict_cli("predict", "--help").out.split())


def test_check_passes_on_the_export(export_dir, predict_cli):
    result = predict_cli("check", "--model", export_dir / "model.onnx")
    assert result.code == 0, result.err
    for words in ("max abs diff", "argmax agreement", "atol 1e-05", "min 0.99", "passed"):
        assert words in result.out
    parity = json.loads(predict_cli("check", "--model", export_dir / "model.onnx", "--json").out)
    assert parity["passed"] and parity["argmax_agreement"] == 1.0 and parity["accuracy"] == 1.0


def perturbed(tmp_path, export_dir, glyphs, name, shift):
    """A copy of the model with one bias moved, beside the original's parity.npz and no manifest."""
    directory = tmp_path / name
    directory.mkdir(parents=True)
    shutil.copy(export_dir / "parity.npz", directory)
    weights, bias = template_weights(glyphs)
    build_model(directory / name, weights, bias + np.eye(10)[0] * shift)
    return directory / name


def test_check_fails_on_a_perturbed_model(tmp_path, export_dir, glyphs, predict_cli):
    model = perturbed(tmp_path, export_dir, glyphs, "model.onnx", shift=0.01)
    result = predict_cli("check", "--model", model, "--json")
    assert result.code == 1
    assert json.loads(result.out)["max_abs_diff"] > 1e-5
    assert predict_cli("check", "--model", model, "--atol", "0.1").code == 0


def test_int8_models_are_judged_by_argmax_agreement(tmp_path, export_dir, glyphs, predict_cli):
    close = perturbed(tmp_path, export_dir, glyphs, "model.int8.onnx", shift=0.01)
    result = predict_cli("check", "--model", close)
    assert result.code == 0 and "applies" in result.out  # diff above atol, argmax unchanged
    far = perturbed(tmp_path / "far", export_dir, glyphs, "model.int8.onnx", shift=1000)
    assert predict_cli("check", "--model", far).code == 1  # everything is now predicted "zero"
    assert predict_cli("check", "--model", far, "--min-agreement", "0.05").code == 0


def test_check_without_reference_is_a_usage_error(tmp_path, glyphs, predict_cli):
    model = write_export(tmp_path / "export", glyphs)
    (tmp_path / "export" / "parity.npz").unlink()
    result = predict_cli("check", "--model", model)
    assert one_line_error(result) and "reference not found" in result.err
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert (
        "not a parity reference"
        in predict_cli("check", "--model", model, "--reference", tmp_path / "junk.npz").err
    )


def test_app_mounts_as_a_subcommand(tmp_path, digit_folder, export_dir):
    """How job/cli.py exposes it: `mnist-job predict IMAGES ...` and `mnist-job predict check ...`."""
    parent = typer.Typer()

    @parent.command()
    def train():
        """Stands in for mnist-job's own commands."""

    parent.add_typer(app, name="predict")
    runner = CliRunner()
    model = str(export_dir / "model.onnx")
    result = runner.invoke(
        parent, ["predict", str(digit_folder), "--model", model, "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    assert len(read_rows(tmp_path / "p.csv")) == 30
    assert runner.invoke(parent, ["predict", "check", "--model", model]).exit_code == 0
    assert "Exit codes" in runner.invoke(parent, ["predict", "--help"]).output


def test_a_folder_named_check_is_still_checked_by_the_check_command(
    tmp_path, model_path, predict_cli, monkeypatch
):
    # `check` is reserved for the command; a folder of that name is reached as ./check
    monkeypatch.chdir(tmp_path)
    (tmp_path / "check").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "check" / "blank.png")
    result = predict_cli("./check", "--model", model_path, "--out", "p.csv")
    assert result.code == 3 and read_rows(tmp_path / "p.csv")[0]["error"] == "no digit found"
    # `check` alone, with such a folder here, could mean either: refused, with both spellings, never guessed
    result = predict_cli("check", "--model", model_path)
    assert one_line_error(result) and "names both a command and a file or folder" in result.err
    assert "./check" in result.err


def test_what_a_folder_holds_besides_images_is_counted(tmp_path, digit_folder, model_path, predict_cli):
    (digit_folder / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (digit_folder / "IMG_0002.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (digit_folder / "scan").write_bytes((digit_folder / "03-3.png").read_bytes())  # no suffix
    (digit_folder / "notes.txt").write_text("not an image")
    (digit_folder / "more").mkdir()
    result = predict_cli(digit_folder, "--model", model_path, "--out", tmp_path / "p.csv", "--json")
    assert result.code == 0 and len(read_rows(tmp_path / "p.csv")) == 30
    assert json.loads(result.out)["skipped"] == {"heic": 2, "no-suffix": 1, "other": 1, "subfolder": 1}
    result = predict_cli(digit_folder, "--model", model_path, "--out", tmp_path / "p.csv")
    text = " ".join(result.out.split())
    assert "2 HEIC photos (pip install pillow-heif to read them)" in text
    assert "1 subfolder (add --recursive to include them)" in text and "1 file without a suffix" in text
    # named on the command line, a file is taken whatever its name, and counts as a row
    result = predict_cli(digit_folder / "scan", "--model", model_path, "--out", tmp_path / "one.csv", "--json")
    assert result.code == 0 and json.loads(result.out)["skipped"] == {}
    assert read_rows(tmp_path / "one.csv")[0]["label"] == "3"


def test_a_glob_that_needs_recursive_says_so(tmp_path, digit_folder, model_path, predict_cli):
    nested = digit_folder / "more"
    nested.mkdir()
    shutil.copy(digit_folder / "03-3.png", nested / "extra-3.png")
    # without --recursive, ** is *, one level: digits/**/*.png would quietly miss digits/*.png
    result = predict_cli(str(digit_folder / "**" / "*.png"), "--model", model_path)
    assert result.code == 2 and "** reaches into subfolders only with --recursive" in " ".join(result.err.split())
    assert predict_cli(str(digit_folder / "**" / "*.png"), "--model", model_path, "--recursive",
                   "--out", tmp_path / "p.csv").code == 0
    assert len(read_rows(tmp_path / "p.csv")) == 31


def test_a_model_folder_finds_litert_and_a_run_folder_gets_a_hint(tmp_path, export_dir, predict_cli):
    from mnist_predict.predictor import model_file

    litert = tmp_path / "litert-only"
    litert.mkdir()
    (litert / "model.tflite").write_bytes(b"TFL3")
    assert model_file(litert) == litert / "model.tflite"
    run = tmp_path / "run"
    shutil.copytree(export_dir, run / "export")
    result = predict_cli(export_dir / "model.onnx", "--model", run)
    assert result.code == 2 and f"looks like a run directory: pass its export, {run / 'export'}" in \
        " ".join(result.err.split())


def test_options_that_cannot_apply_are_refused(digit_folder, model_path, predict_cli):
    result = predict_cli(digit_folder, "--model", model_path, "--workers", "0", "--decode-timeout", "1")
    assert one_line_error(result) and "--decode-timeout" in result.err and "--workers 0" in result.err
    result = predict_cli(digit_folder, "--model", model_path, "--top-k", "20")
    assert one_line_error(result) and "--top-k 20: the model has 10 classes" in result.err
    assert predict_cli(digit_folder, "--model", model_path, "--top-k", "10", "--out", digit_folder / "p.csv").code == 0


def test_a_time_limit_asked_for_holds_on_a_few_files_too(tmp_path, digit_folder, model_path, predict_cli, monkeypatch):
    import functools

    from mnist_predict import images

    # 3 files decode in this process by default, where no time limit can apply; asked for, it applies
    monkeypatch.setattr(images, "decode", functools.wraps(images.decode)(_misbehave))
    few = tmp_path / "few"
    few.mkdir()
    for name in ("04-4.png", "05-5.png", "06-6.png"):
        shutil.copy(digit_folder / name, few / name)
    result = predict_cli(few, "--model", model_path, "--decode-timeout", "1", "--out", tmp_path / "p.csv")
    rows = read_rows(tmp_path / "p.csv")
    assert result.code == 3 and [row["status"] for row in rows] == ["ok", "error", "ok"]
    assert rows[1]["error"] == "decode timed out after 1 s"


def _misbehave(path, **options):
    """A decoder that dies on one file, hangs on another and asks for 8 GB on a third."""
    import time

    from mnist_predict import images

    name = os.path.basename(path)
    if name == "03-3.png":
        os._exit(1)  # a decoder crash, or the OOM killer, in a worker process
    if name == "05-5.png":
        time.sleep(600)
    if name == "07-7.png":
        bytearray(8 * 1024**3)
    return images.decode.__wrapped__(path, **options)


def test_a_hung_or_dead_decoder_costs_one_row_and_the_batch_goes_on(
    tmp_path, digit_folder, model_path, predict_cli, monkeypatch
):
    import functools

    from mnist_predict import images

    wrapped = functools.wraps(images.decode)(_misbehave)
    monkeypatch.setattr(images, "decode", wrapped)  # the forked workers inherit the patch
    result = predict_cli(digit_folder, "--model", model_path, "--workers", 2, "--batch-size", 8,
                     "--decode-timeout", 1, "--out", tmp_path / "p.csv")
    assert result.code == 3, result.err
    rows = {os.path.basename(row["path"]): row for row in read_rows(tmp_path / "p.csv")}
    assert len(rows) == 30
    assert rows["03-3.png"]["error"] == "the decoding process died (exit code 1)"
    assert rows["05-5.png"]["error"] == "decode timed out after 1 s"
    assert rows["07-7.png"]["error"] == "MemoryError"  # the worker's address space is capped
    ok = [row for name, row in rows.items() if name not in ("03-3.png", "05-5.png", "07-7.png")]
    assert len(ok) == 27 and all(row["status"] == "ok" and row["label"] == row["path"][-5] for row in ok)


def test_unwritable_output_is_a_one_line_error(tmp_path, digit_folder, model_path, predict_cli):
    (tmp_path / "file").write_text("a file where a folder should be")
    result = predict_cli(digit_folder, "--model", model_path, "--out", tmp_path / "file" / "p.csv")
    assert one_line_error(result, code=1) and "cannot write" in result.err


def test_an_unquoted_glob_expanded_by_the_shell_is_many_paths(tmp_path, digit_folder, model_path, predict_cli):
    files = sorted(str(p) for p in digit_folder.glob("1*.png"))
    result = predict_cli(*files, digit_folder / "00-0.png", "--model", model_path, "--out", tmp_path / "p.csv")
    assert result.code == 0, result.err
    assert [row["path"] for row in read_rows(tmp_path / "p.csv")] == sorted(files + [str(digit_folder / "00-0.png")])


@pytest.mark.slow
def test_ctrl_c_says_nothing_was_written(tmp_path, glyphs, model_path):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    page = Image.fromarray(255 - glyphs[3]).resize((900, 900))
    for k in range(400):  # big pages take a while: the interrupt lands mid-batch
        page.save(folder / f"{k:04d}.png")
    out = tmp_path / "p.csv"
    proc = subprocess.Popen([sys.executable, "-m", "mnist_predict", str(folder), "--model", str(model_path),
                             "--out", str(out), "--workers", "1", "--batch-size", "16"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def writing():  # the temporary output has its first block of rows: mid-run, most files still to come
        return any(p.stat().st_size for p in tmp_path.glob(".p.tmp-*") if p.exists())

    deadline = time.monotonic() + 120
    while not writing() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"error: interrupted; nothing was written to {out}"
    assert not out.exists() and not list(tmp_path.glob(".*tmp-*"))


def test_help_keeps_the_litert_extra_that_rich_would_read_as_markup(predict_cli):
    result = predict_cli("--help")
    assert result.code == 0 and "pip install './deploy[litert]'" in " ".join(result.out.split())
