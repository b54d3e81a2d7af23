import gzip
import json

import numpy as np
import pytest
from conftest import error_line, run_cli
from synthetic import make_digits, write_dataset, write_idx

from job.data.datasets import canonical_name, load_dataset, read_idx, split_validation
from job.errors import JobError


def test_bundled_sample_is_real_mnist():
    ds = load_dataset("mnist-sample")
    assert ds.x_train.shape == (6000, 28, 28) and ds.x_test.shape == (2000, 28, 28)
    # Class counts from the sample's README.
    assert np.bincount(ds.y_train).tolist() == [591, 655, 588, 619, 593, 521, 609, 660, 560, 604]
    assert np.bincount(ds.y_test).tolist() == [193, 242, 191, 238, 200, 179, 199, 195, 169, 194]
    assert ds.x_train.dtype == np.uint8 and ds.labels == [str(d) for d in range(10)]


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_raw_and_gzip(tmp_path, gz):
    x_train, y_train, x_test, y_test = write_dataset(tmp_path, n_train=50, n_test=20, gz=gz)
    ds = load_dataset("mnist", str(tmp_path))
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_test, y_test)


def test_npz_and_env_variable(tmp_path, monkeypatch, npz_path):
    ds = load_dataset("mnist", str(npz_path))
    assert ds.x_train.shape == (1200, 28, 28)
    monkeypatch.setenv("MNIST_DATA", str(npz_path))
    assert load_dataset("custom").source == str(npz_path)
    assert canonical_name("fashion-mnist") == "fashion_mnist"


def test_digits_passed_as_fashion_mnist_are_refused(npz_path):
    with pytest.raises(JobError, match=r"look like MNIST digits \(\d+% black pixels\), not --dataset fashion_mnist"):
        load_dataset("fashion_mnist", str(npz_path))
    assert load_dataset("custom", str(npz_path)).labels == [str(d) for d in range(10)]


def test_explicit_path_beats_env(tmp_path, monkeypatch, npz_path):
    write_dataset(tmp_path, n_train=30, n_test=10)
    monkeypatch.setenv("MNIST_DATA", str(npz_path))
    assert len(load_dataset("mnist", str(tmp_path)).x_train) == 30


def corrupt(folder, stem, mutate):
    path = folder / (stem + ".gz")
    path.write_bytes(mutate(path.read_bytes()))
    return path


@pytest.mark.parametrize("stem,mutate,fault", [
    ("train-images-idx3-ubyte", lambda b: b[: len(b) // 2], "corrupt or truncated gzip"),
    ("train-labels-idx1-ubyte", lambda b: b"not gzip at all", "corrupt or truncated gzip"),
    ("t10k-images-idx3-ubyte",
     lambda b: gzip.compress(b"\x00\x00\x08\x04" + gzip.decompress(b)[4:]), "wrong magic number 2052"),
    ("t10k-labels-idx1-ubyte", lambda b: gzip.compress(gzip.decompress(b)[:-3]), "length mismatch"),
])
def test_corrupt_files_name_the_file_and_fault(tmp_path, stem, mutate, fault):
    write_dataset(tmp_path, n_train=40, n_test=20)
    path = corrupt(tmp_path, stem, mutate)
    with pytest.raises(JobError) as err:
        load_dataset("mnist", str(tmp_path))
    message = str(err.value)
    assert str(path) in message and fault in message and "\n" not in message


def test_count_mismatch_and_bad_labels(tmp_path):
    write_dataset(tmp_path, n_train=40, n_test=20)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(39, dtype=np.uint8))
    with pytest.raises(JobError, match="40 train images but 39 labels"):
        load_dataset("mnist", str(tmp_path))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(40, 11, dtype=np.uint8))
    with pytest.raises(JobError, match="labels outside 0-9"):
        load_dataset("mnist", str(tmp_path))


def test_wrong_dimensions_and_missing_file(tmp_path):
    write_idx(tmp_path / "imgs", np.zeros((3, 32, 32), dtype=np.uint8))
    with pytest.raises(JobError, match="32x32, expected 28x28"):
        read_idx(tmp_path / "imgs.gz")
    with pytest.raises(JobError, match="missing train-images-idx3-ubyte"):
        load_dataset("mnist", str(tmp_path))
    with pytest.raises(JobError, match="no such file"):
        load_dataset("mnist", str(tmp_path / "nope.npz"))
    with pytest.raises(JobError, match="unknown dataset"):
        load_dataset("cifar10")


@pytest.mark.slow  # waits out a download that cannot connect
def test_offline_download_is_one_line(monkeypatch, tmp_path):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://example: [Errno -2] Name or service not known")

    monkeypatch.delenv("MNIST_DATA", raising=False)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(JobError) as err:
        load_dataset("mnist")
    assert "--data PATH" in str(err.value) and "\n" not in str(err.value)


def test_validation_split_is_seeded_and_disjoint():
    x, y = make_digits(500)
    x = x.copy()
    x[:, 0, 0] = np.arange(500) % 256  # tag rows so the split can be checked
    x[:, 0, 1] = np.arange(500) // 256
    a = split_validation(x, y, 0.1, seed=7)
    b = split_validation(x, y, 0.1, seed=7)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    ids = lambda arr: set((arr[:, 0, 1].astype(int) * 256 + arr[:, 0, 0]).tolist())  # noqa: E731
    assert len(a[2]) == 50 and not ids(a[0]) & ids(a[2]) and len(ids(a[0]) | ids(a[2])) == 500
    with pytest.raises(JobError):
        split_validation(x, y, 1.0, seed=7)


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not __import__("os").path.isdir(FASHION), reason="apt-get install dataset-fashion-mnist")
def test_full_fashion_mnist_from_debian_idx_files():
    ds = load_dataset("fashion_mnist", FASHION)
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10 and np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.labels[0] == "T-shirt/top"


def test_images_round_trip_in_both_layouts(tmp_path):
    from PIL import Image

    from job.data.image_sets import write_images

    x, y = make_digits(12)
    assert write_images(x, y, [str(d) for d in range(10)], tmp_path / "png", limit=10) == 10
    first = sorted((tmp_path / "png").iterdir())[0]
    np.testing.assert_array_equal(np.asarray(Image.open(first)), x[0])
    names = ["T-shirt/top"] + [f"class {k}" for k in range(1, 10)]
    write_images(x, y, names, tmp_path / "classes", layout="classes")
    folders = {p.name for p in (tmp_path / "classes").iterdir()}
    assert folders == {("T-shirt-top" if k == 0 else f"class {k}") for k in set(y.tolist())}
    assert sum(1 for _ in (tmp_path / "classes").rglob("*.png")) == 12


def test_images_refuse_a_non_empty_folder_and_replace_it_whole(tmp_path):
    from job.data.image_sets import write_images

    x, y = make_digits(5)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(JobError, match="not empty: pass --overwrite"):
        write_images(x, y, [str(d) for d in range(10)], tmp_path / "out")
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep me"
    write_images(x, y, [str(d) for d in range(10)], tmp_path / "out", overwrite=True)
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".png"] * 5  # one set, not two mixed
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_score_counts_errors_and_unlabelled_files(tmp_path):
    from job.data.scoring import score_predictions

    rows = ["path,label,class_name,status,review"]
    rows += [f"d/{k:03d}_{k % 10}.png,{k % 10},{k % 10},ok," for k in range(6)]  # six right
    rows += [f"d/{k:03d}_{k % 10}.png,,,error," for k in range(6, 9)]  # three errors
    rows += ["d/photo.png,4,4,ok,"]  # no label in its name
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    s = score_predictions(tmp_path / "p.csv")
    assert (s["files"], s["labelled"], s["unlabelled"], s["predicted"], s["errors"]) == (10, 9, 1, 6, 3)
    assert s["accuracy_predicted"] == 1.0 and s["accuracy_labelled"] == pytest.approx(6 / 9, abs=1e-6)
    # a labelled folder: the class is the folder; "other" beside the class folders is a class the model lacks
    from job.data.datasets import FASHION

    rows = ["path,label,class_name,status,review", "c/Bag/1.png,8,Bag,ok,", "c/Bag/2.png,0,T-shirt/top,ok,yes",
            "c/T-shirt-top/3.png,0,T-shirt/top,ok,", "c/other/4.png,8,Bag,ok,"]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    s = score_predictions(tmp_path / "c.csv", FASHION)
    assert (s["labelled"], s["correct"], s["unlabelled"], s["review"]) == (3, 2, 0, 1)
    assert s["unknown_class"] == 1 and s["unknown_folders"] == ["other"] and s["accuracy_unflagged"] == 1.0
    with pytest.raises(JobError, match=r"class folders \(other\) that name no class predicted.*--model"):
        score_predictions(tmp_path / "c.csv")  # without the label set: refused, not guessed


def test_images_writes_numbers_named_by_their_digits_and_score_reads_whole_numbers(tmp_path):
    from job.data.scoring import score_predictions

    result = run_cli("images", "--numbers", "--limit", "5", "--spacing", "touching", "--out", tmp_path / "n")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "n").iterdir())
    assert len(names) == 5 and all(2 <= len(n.split("_")[1].split(".")[0]) <= 8 for n in names)
    assert error_line(run_cli("images", "--spacing", "loose", "--out", tmp_path / "x")).endswith("add --numbers")
    rows = ["path,text,confidence,digits,boxes,review,status,error,review_reason",
            "n/00000_0427.jpg,0427,0.99,,,,ok,,", "n/00001_315.jpg,316,0.95,,,,ok,,",  # accepted, wrong
            "n/00002_88.jpg,8,0.4,,,yes,ok,,confidence below 0.8", "n/00003_7.jpg,,,,,,error,no digits found,",
            "n/photo.jpg,12,0.9,,,,ok,,"]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    s = score_predictions(tmp_path / "r.csv")
    assert (s["files"], s["labelled"], s["unlabelled"], s["read"], s["errors"], s["correct"]) == (5, 4, 1, 3, 1, 1)
    assert s["accuracy_labelled"] == 0.25 and s["accepted_wrong"] == 0.25 and s["accuracy_unflagged"] == 0.5
    assert s["digit_accuracy"] == pytest.approx((4 + 2 + 1) / 10)


def letters_predictions(path):
    """150 files in A/ ... O/, 10 each, from a model that never predicts B, D, E or G (it says A for them)."""
    letters = [chr(ord("A") + k) for k in range(15)]
    rows = ["path,label,class_name,status,review"]
    for k, letter in enumerate(letters):
        said = 0 if letter in "BDEG" else k
        rows += [f"letters/{letter}/{n:04d}.png,{said},{letters[said]},ok," for n in range(10)]
    path.write_text("\n".join(rows) + "\n")
    return letters


def test_score_counts_class_folders_the_model_never_predicts(tmp_path):
    from job.data.scoring import score_predictions

    letters = letters_predictions(tmp_path / "p.csv")
    s = score_predictions(tmp_path / "p.csv", letters)
    assert (s["labelled"], s["correct"], s["accuracy_labelled"]) == (150, 110, round(110 / 150, 6))
    with pytest.raises(JobError, match="name no class predicted in this file"):
        score_predictions(tmp_path / "p.csv")  # B, D, E, G are never predicted: the label set must be given


def test_score_takes_the_label_set_from_the_model_or_the_shard_record(tmp_path):
    letters = letters_predictions(tmp_path / "p.csv")
    refused = run_cli("score", tmp_path / "p.csv")
    assert refused.returncode == 2 and "--model" in error_line(refused)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "manifest.json").write_text(json.dumps({"labels": letters}))
    done = run_cli("score", tmp_path / "p.csv", "--model", tmp_path / "export", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["labelled"] == 150
    (tmp_path / "p.csv.shard.json").write_text(json.dumps({"options": {"labels": letters}}))
    assert json.loads(run_cli("score", tmp_path / "p.csv", "--json").stdout)["labelled"] == 150


def test_a_class_folder_beats_a_number_in_the_file_name(tmp_path):
    from job.data.scoring import score_predictions

    rows = ["path,label,class_name,status,review", "photos/3/IMG_0065.jpg,3,3,ok,", "photos/5/IMG_0066.jpg,5,5,ok,",
            "flat/00012_7.png,7,7,ok,", "flat/DSC_0042.jpg,4,4,ok,", "flat/00013_65.png,6,6,ok,"]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    s = score_predictions(tmp_path / "p.csv", [str(d) for d in range(10)])
    # 3/IMG_0065 is a 3 (not label 65); _0042 is a camera counter and _65 no label of ten: neither is scored
    assert (s["labelled"], s["correct"], s["unlabelled"]) == (3, 3, 2)


def test_score_says_one_error_not_one_errors(tmp_path):
    rows = ["path,label,class_name,status,review", "d/0_0.png,0,0,ok,", "d/1_1.png,,,error,"]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    out = run_cli("score", tmp_path / "p.csv").stdout
    assert "1 predicted, 1 error, 0 flagged" in out
