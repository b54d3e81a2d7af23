import numpy as np
import pytest
from synthetic import make_digits

from job.train.models import (
    BEST,
    PARAMS,
    ZOO,
    build_model,
    count_params,
    make_optimizer,
)

ARCHITECTURES = {  # layer types after the input preprocessing, from the zoo table
    "dense-512": ["Flatten", "Dense", "Dense"],
    "dense-128-64": ["Flatten", "Dense", "Dense", "Dense"],
    "dense-128-64-dropout": ["Flatten", "Dense", "Dropout", "Dense", "Dense"],
    "dense-128": ["Flatten", "Dense", "Dense"],
    "cnn-mit": ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"],
    "cnn-2conv-dropout": ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout",
                          "Dense"],
    "cnn-3conv": ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dense", "Dense"],
    "mnist-convnet": ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"],
}
SKIP = {"InputLayer", "Rescaling", "Normalization", "Reshape"}


@pytest.mark.parametrize("name", list(ZOO))
def test_every_model_reads_raw_pixels_and_returns_probabilities(name):
    x, _ = make_digits(8)
    model = build_model(name, x)
    assert model.inputs[0].name == "image" and tuple(model.inputs[0].shape) == (None, 28, 28)
    assert model.layers[-1].name == "probabilities"
    probs = np.asarray(model(x.astype(np.float32), training=False))
    assert probs.shape == (8, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    layer_types = [type(layer).__name__ for layer in model.layers if type(layer).__name__ not in SKIP]
    if name in ARCHITECTURES:
        assert layer_types == ARCHITECTURES[name]
    else:  # the best model: a small CNN with batch norm, and no augmentation layer in the graph
        assert "BatchNormalization" in layer_types and "Conv2D" in layer_types
        assert not any(t.startswith("Random") for t in layer_types)


def test_zoo_defaults_follow_their_sources():
    assert (ZOO["dense-512"].optimizer, ZOO["dense-512"].batch_size, ZOO["dense-512"].epochs) == ("rmsprop", 128, 5)
    assert (ZOO["dense-128"].optimizer, ZOO["dense-128"].learning_rate) == ("sgd", 0.1)
    assert (ZOO["mnist-convnet"].batch_size, ZOO["mnist-convnet"].epochs) == (128, 15)
    spec = ZOO["cnn-2conv-dropout"]
    assert (spec.learning_rate, spec.decay, spec.batch_size, spec.epochs) == (0.01, 0.005, 128, 2)
    assert ZOO[BEST].augment and not any(s.augment for n, s in ZOO.items() if n != BEST)


def test_legacy_decay_is_inverse_time():
    opt = make_optimizer("adam", 0.01, "inverse-time", 0.005)
    for step in (0, 1, 100, 1000):
        assert float(opt.learning_rate_schedule(step) if hasattr(opt, "learning_rate_schedule")
                     else opt._learning_rate(step)) == pytest.approx(0.01 / (1 + 0.005 * step), rel=1e-6)


def test_standardization_is_learnt_from_training_data():
    x, _ = make_digits(64)
    model = build_model("cnn-2conv-dropout", x)
    norm = model.get_layer("standardize")
    out = np.asarray(norm(x.astype(np.float32)))
    assert abs(out.mean()) < 1e-3 and abs(out.std() - 1) < 1e-3


def test_cached_parameter_counts_match_the_models():
    assert set(PARAMS) == set(ZOO)
    for name in ZOO:
        assert PARAMS[name] == count_params(name), name


def test_models_command_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, io, contextlib; from job.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['models', '--json']); assert r.exit_code == 0, r.output; "
            "print('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_output_layer_follows_the_class_count():
    x, _ = make_digits(4)
    assert build_model("dense-128", x, classes=3).output.shape[-1] == 3
