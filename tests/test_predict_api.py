"""The Python API: `Predictor(model_path).predict(images)`, the code the CLI runs too."""

import os

import numpy as np
import pytest
from mnist_predict import Predictor, UsageError
from mnist_predict.predictor import available_cpus
from PIL import Image
from predict_fixtures import LABELS, export_dir, glyphs, model_path  # noqa: F401


def test_predicts_uint8_and_float_arrays(model_path, glyphs):
    predictor = Predictor(model_path)
    for batch in (glyphs, glyphs.astype(np.float32), glyphs.astype(np.float64)):
        result = predictor.predict(batch)
        assert result.labels.tolist() == list(range(10))
        assert result.probabilities.shape == (10, 10) and result.probabilities.dtype == np.float32
        np.testing.assert_allclose(result.probabilities.sum(axis=1), 1, rtol=1e-5)
        assert result.names == LABELS


def test_predicts_one_image_and_in_chunks(model_path, glyphs):
    predictor = Predictor(model_path)
    assert predictor.predict(glyphs[4]).labels.tolist() == [4]
    many = np.repeat(glyphs, 7, axis=0)
    np.testing.assert_array_equal(predictor.predict(many, batch_size=16).labels, np.repeat(np.arange(10), 7))
    assert predictor.predict(np.zeros((0, 28, 28))).probabilities.shape == (0, 10)


def test_predicts_paths_with_the_cli_decoding(tmp_path, model_path, glyphs):
    paths = []
    for digit in (2, 9):
        paths.append(tmp_path / f"{digit}.png")
        Image.fromarray(255 - glyphs[digit]).save(paths[-1])  # dark on light: inverted by default
    predictor = Predictor(model_path)
    assert predictor.predict(paths).labels.tolist() == [2, 9]
    assert predictor.predict(str(paths[1])).labels.tolist() == [9]
    assert predictor.predict([paths[0]], invert="never").labels.tolist() != [2]


def test_bad_inputs_raise(tmp_path, model_path):
    predictor = Predictor(model_path)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        predictor.predict(np.zeros((3, 32, 32)))
    (tmp_path / "bad.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        predictor.predict([tmp_path / "bad.png"])
    with pytest.raises(UsageError, match="model not found"):
        Predictor(tmp_path / "absent.onnx")


def test_threads_follow_the_cpu_affinity(model_path):
    assert available_cpus() == len(os.sched_getaffinity(0))
    options = Predictor(model_path).session.get_session_options()
    assert options.intra_op_num_threads == available_cpus()
    assert Predictor(model_path, threads=1).session.get_session_options().intra_op_num_threads == 1


def test_labels_come_from_the_model_metadata(model_path):
    assert Predictor(model_path).labels == LABELS
