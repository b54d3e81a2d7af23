"""Sharded prediction end to end: 4 `mnist-predict --shard i/4` processes, then `mnist-predict merge`."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import BIN
from PIL import Image
from predict_fixtures import (  # noqa: F401
    build_model,
    export_dir,
    glyphs,
    predict_cli,
    template_weights,
)


@pytest.fixture
def mixed_folder(tmp_path, glyphs):
    """60 files: rendered digits of three sizes, photo-like noisy copies, and two broken files."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for index in range(58):
        digit = glyphs[index % 10].astype(np.float64)
        if index % 3 == 1:  # dark ink on light, noisy and larger, as a scan
            digit = np.kron(255 - digit, np.ones((4, 4))) + rng.normal(0, 12, (112, 112))
        name = f"{index:02d}-{index % 10}.{'jpg' if index % 3 == 2 else 'png'}"
        Image.fromarray(np.clip(digit, 0, 255).astype(np.uint8)).save(folder / name)
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((folder / "02-2.jpg").read_bytes()[:200])
    return folder


def predict_shards(folder, model, out_dir, count, *options, suffix="csv"):
    """Run `count` shards as parallel processes, as the pods of an Indexed Job run."""
    processes = [subprocess.Popen([BIN / "mnist-predict", folder, "--model", model, "--shard", f"{i}/{count}",
                                   "--out", out_dir / f"p-{i}.{suffix}", "--workers", "1", *options],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for i in range(count)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode in (0, 3), err  # 3: the shard holds one of the broken files
    return [out_dir / f"p-{i}.{suffix}" for i in range(count)]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_four_shards_merge_into_the_single_run_byte_for_byte(tmp_path, mixed_folder, export_dir, predict_cli, suffix):
    model = export_dir / "model.onnx"
    single = tmp_path / f"single.{suffix}"
    assert predict_cli(mixed_folder, "--model", model, "--out", single).code == 3
    shards = predict_shards(mixed_folder, model, tmp_path, 4, suffix=suffix)
    records = [json.loads((tmp_path / f"p-{i}.{suffix}.shard.json").read_text()) for i in range(4)]
    assert [r["rows"] for r in records] and sum(r["rows"] for r in records) == 60
    assert all(r["rows"] < 60 for r in records) and {r["listed"] for r in records} == {60}

    merged = tmp_path / f"merged.{suffix}"
    result = predict_cli("merge", str(tmp_path / f"p-*.{suffix}"), "--out", merged, "--json")  # a glob, unexpanded
    assert result.code == 0, result.err
    assert json.loads(result.out)["rows"] == 60 and json.loads(result.out)["shards"] == 4
    assert merged.read_bytes() == single.read_bytes()
    text = single.read_text()
    assert text.count("empty.png") == 1 and text.count("truncated.jpg") == 1 and "error" in text
    assert len({p.read_bytes() for p in shards}) == 4  # four different shards, each a part


def test_merge_refuses_sets_that_are_not_one_run(tmp_path, mixed_folder, export_dir, predict_cli, glyphs):
    model = export_dir / "model.onnx"
    shards = predict_shards(mixed_folder, model, tmp_path, 3)

    def refused(*paths, out="merged.csv"):
        result = predict_cli("merge", *paths, "--out", tmp_path / out)
        assert result.code == 2 and not (tmp_path / out).exists()
        return " ".join(result.err.split())

    assert "shard 1 of 3 missing" in refused(shards[0], shards[2])
    # A shard made with another model: same predictions here, but another file, so another sha256.
    other = tmp_path / "other"
    other.mkdir()
    weights, bias = template_weights(glyphs)
    build_model(other / "model.onnx", weights * 1.0001, bias)
    (tmp_path / "again").mkdir()
    subprocess.run([BIN / "mnist-predict", mixed_folder, "--model", other / "model.onnx", "--shard", "1/3",
                    "--out", tmp_path / "again" / "p-1.csv"], capture_output=True, check=False)
    assert "differ in models" in refused(shards[0], tmp_path / "again" / "p-1.csv", shards[2])
    # Other options shape other rows.
    subprocess.run([BIN / "mnist-predict", mixed_folder, "--model", model, "--shard", "2/3", "--top-k", "2",
                    "--out", tmp_path / "again" / "p-2.csv"], capture_output=True, check=False)
    assert re.search(r"differ in options \(top_k (2 vs 3|3 vs 2)\)",  # the option that differs, named
                     refused(shards[0], shards[1], tmp_path / "again" / "p-2.csv"))
    # The same shard under two names.
    shutil.copy(shards[1], tmp_path / "copy.csv")
    shutil.copy(f"{shards[1]}.shard.json", tmp_path / "copy.csv.shard.json")
    assert "are both shard 1/3" in refused(*shards, tmp_path / "copy.csv")
    # A path in two shards: a record edited to pass for shard 2, rows and all; its rows are shard 1's files.
    record = json.loads((tmp_path / "copy.csv.shard.json").read_text())
    rows_of_2 = json.loads((tmp_path / "p-2.csv.shard.json").read_text())["rows"]
    (tmp_path / "copy.csv.shard.json").write_text(json.dumps({**record, "shard": 2, "rows": rows_of_2}))
    assert "is not a file of shard 2/3" in refused(shards[0], shards[1], tmp_path / "copy.csv")
    (tmp_path / "copy.csv.shard.json").write_text(json.dumps({**record, "shard": 2}))
    assert "an output was changed after it was written" in refused(shards[0], shards[1], tmp_path / "copy.csv")
    # An output without its record, and a folder listed differently.
    assert "no p-0.csv.shard.json beside it" in refused(_without_record(tmp_path, shards[0]), *shards[1:])
    (mixed_folder / "99-9.png").write_bytes((mixed_folder / "09-9.png").read_bytes())
    subprocess.run([BIN / "mnist-predict", mixed_folder, "--model", model, "--shard", "0/3",
                    "--out", tmp_path / "again" / "p-0.csv"], capture_output=True, check=False)
    assert "differ in file listings" in refused(tmp_path / "again" / "p-0.csv", *shards[1:])
    assert "--out must end in .csv or .jsonl" in refused(*shards, out="merged.txt")


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_merge_counts_every_output_against_its_record(tmp_path, mixed_folder, export_dir, predict_cli, suffix):
    shards = predict_shards(mixed_folder, export_dir / "model.onnx", tmp_path, 4, suffix=suffix)
    lines = shards[2].read_text().splitlines(keepends=True)
    shards[2].write_text("".join(lines[:-1]))  # one data row deleted: one file lost
    result = predict_cli("merge", *shards, "--out", tmp_path / f"merged.{suffix}")
    assert result.code == 2 and not (tmp_path / f"merged.{suffix}").exists()
    expected = json.loads((tmp_path / f"p-2.{suffix}.shard.json").read_text())["rows"]
    assert f"holds {expected - 1} rows, but its record says {expected}" in " ".join(result.err.split())
    # a row swapped for another shard's: as many rows, but one of a file that is not this shard's
    other = shards[0].read_text().splitlines(keepends=True)[-1]
    header, rows = (lines[:1], lines[1:-1]) if suffix == "csv" else ([], lines[:-1])
    path = (lambda line: line.split(",")[0]) if suffix == "csv" else (lambda line: json.loads(line)["path"])
    shards[2].write_text("".join(header + sorted(rows + [other], key=path)))
    result = predict_cli("merge", *shards, "--out", tmp_path / f"merged.{suffix}")
    assert result.code == 2 and "is not a file of shard 2/4" in " ".join(result.err.split())


def _without_record(tmp_path, shard):
    bare = tmp_path / "bare"
    bare.mkdir(exist_ok=True)
    return shutil.copy(shard, bare / shard.name)
