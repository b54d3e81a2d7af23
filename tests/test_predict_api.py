"""The Python API: `Predictor(model_path).predict(images)`, the code the CLI runs too."""

import os

import numpy as np
import pytest
from mnist_predict import Predictor, UsageError
from mnist_predict.files import usable_cpus
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
    with pytest.raises(ValueError, match="no digit found"):  # light ink asked for: white paper has none
        predictor.predict([paths[0]], invert="never")
    assert predictor.predict([paths[0]], invert="never", resize="none").labels.tolist() != [2]


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
    assert usable_cpus() == len(os.sched_getaffinity(0))
    options = Predictor(model_path).session.get_session_options()
    assert options.intra_op_num_threads == usable_cpus()
    assert Predictor(model_path, threads=1).session.get_session_options().intra_op_num_threads == 1


def test_labels_come_from_the_model_metadata(model_path):
    assert Predictor(model_path).labels == LABELS


def test_every_bad_file_raises_one_documented_exception_naming_the_file(tmp_path, model_path):
    from mnist_predict import ImageError

    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not pixels")
    Image.new("L", (80, 60), 230).save(tmp_path / "blank.png")
    predictor = Predictor(model_path)
    for name, reason in (("empty.png", "empty file"), ("notes.png", "not an image"),
                         ("missing.png", "No such file"), ("blank.png", "no digit found")):
        with pytest.raises(ImageError) as error:
            predictor.predict([tmp_path / name])
        assert str(error.value).startswith(str(tmp_path / name)) and reason in str(error.value)
        assert isinstance(error.value, ValueError)


def test_arrays_scaled_to_0_1_are_refused(model_path, glyphs):
    with pytest.raises(ValueError, match=r"scaled to 0-1 .* images \* 255"):
        Predictor(model_path).predict(glyphs / 255.0)
    assert Predictor(model_path).predict(np.zeros((1, 28, 28), np.float32)).labels.shape == (1,)  # black is fine


def test_a_model_that_outputs_logits_is_refused(tmp_path, glyphs):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Reshape", ["image", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "weights"], ["probabilities"])]  # 5 raw scores, no softmax
    graph = helper.make_graph(nodes, "logits", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 5])],
                              [numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
                               numpy_helper.from_array(np.ones((784, 5), np.float32), "weights")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              tmp_path / "logits.onnx")
    with pytest.raises(UsageError, match="does not output probabilities"):
        Predictor(tmp_path / "logits.onnx").predict(glyphs)


def test_an_export_folder_is_taken_as_its_model_onnx(export_dir, glyphs, tmp_path):
    assert Predictor(export_dir).path == export_dir / "model.onnx"
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UsageError, match="folder without a model.onnx"):
        Predictor(tmp_path / "nothing")


def test_a_bad_file_can_be_a_row_of_its_own(tmp_path, model_path, glyphs):
    paths = []
    for digit in range(10):
        paths.append(tmp_path / f"{digit}.png")
        Image.fromarray(255 - glyphs[digit]).save(paths[-1])
    Image.new("L", (64, 64), 255).save(tmp_path / "blank.png")
    (tmp_path / "empty.png").write_bytes(b"")
    paths[3:3] = [tmp_path / "blank.png"]
    paths.append(tmp_path / "empty.png")
    predictor = Predictor(model_path)
    with pytest.raises(ValueError, match="blank.png: no digit found"):  # today's contract, unchanged
        predictor.predict(paths)
    result = predictor.predict(paths, on_error="row")
    assert result.labels.tolist() == [0, 1, 2, -1, 3, 4, 5, 6, 7, 8, 9, -1]
    assert result.ok.tolist() == [True] * 3 + [False] + [True] * 7 + [False]
    assert result.errors[3] == "no digit found" and result.errors[-1] == "empty file"
    assert result.errors.count(None) == 10 and result.names[3] is None and result.names[4] == LABELS[3]
    assert np.isnan(result.probabilities[3]).all() and not np.isnan(result.probabilities[result.ok]).any()
    assert not result.review[3]
    good = predictor.predict([p for k, p in enumerate(paths) if result.ok[k]])
    np.testing.assert_array_equal(good.probabilities, result.probabilities[result.ok])
    assert predictor.predict(glyphs).ok.all()
    with pytest.raises(ValueError, match="on_error"):
        predictor.predict(paths, on_error="skip")
