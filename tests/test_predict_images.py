"""Decoding: every format, mode and size the predictor accepts, inversion, and each kind of bad file."""

import os

import numpy as np
import pytest
from mnist_predict import Predictor, images
from PIL import Image
from predict_fixtures import (  # noqa: F401
    export_dir,
    glyphs,
    model_path,
    predict_cli,
    read_rows,
    render,
)


def in_mode(glyph, mode):
    """A white-on-black glyph as a Pillow image in `mode`, keeping the content meaningful."""
    if mode == "1":
        return Image.fromarray(glyph > 100)
    if mode == "I;16":
        return Image.fromarray(glyph.astype(np.uint16) * 257)  # full 16-bit range
    if mode == "I":
        return Image.fromarray(glyph.astype(np.int32) * 257)
    if mode == "LA":  # black ink drawn through alpha on a transparent canvas
        return Image.merge("LA", [Image.new("L", glyph.shape[::-1], 0), Image.fromarray(glyph)])
    if mode == "RGBA":  # white ink on a transparent canvas
        return Image.merge("RGBA", [Image.new("L", glyph.shape[::-1], 255)] * 3 + [Image.fromarray(glyph)])
    tinted = np.stack([glyph, glyph * 0.8, glyph * 0.6], axis=-1).astype(np.uint8)  # amber ink
    if mode == "P":
        return Image.fromarray(tinted).quantize(64)
    return Image.fromarray(tinted if mode == "RGB" else glyph)


# (format, mode written, mode Pillow reads back): every format, and every mode in a format that keeps it.
CASES = [
    ("png", "L", "L"),
    ("png", "LA", "LA"),
    ("png", "RGB", "RGB"),
    ("png", "RGBA", "RGBA"),
    ("png", "P", "P"),
    ("png", "1", "1"),
    ("png", "I;16", "I;16"),
    ("tiff", "L", "L"),
    ("tiff", "LA", "LA"),
    ("tiff", "RGB", "RGB"),
    ("tiff", "RGBA", "RGBA"),
    ("tiff", "P", "P"),
    ("tiff", "1", "1"),
    ("tiff", "I;16", "I;16"),
    ("tiff", "I", "I"),
    ("jpeg", "L", "L"),
    ("jpeg", "RGB", "RGB"),
    ("bmp", "L", "L"),
    ("bmp", "RGB", "RGB"),
    ("bmp", "P", "P"),
    ("bmp", "1", "1"),
    ("gif", "P", "P"),
    ("webp", "RGB", "RGB"),
    ("webp", "RGBA", "RGBA"),
]


@pytest.mark.parametrize(("fmt", "mode", "read_mode"), CASES, ids=[f"{f}-{m}" for f, m, _ in CASES])
def test_every_format_and_mode_is_recognised(tmp_path, glyphs, model_path, fmt, mode, read_mode):
    digit = CASES.index((fmt, mode, read_mode)) % 10
    path = tmp_path / f"digit.{fmt}"
    in_mode(glyphs[digit], mode).save(path, **({"lossless": True} if fmt == "webp" else {}))
    with Image.open(path) as image:
        assert image.mode == read_mode  # the test really exercises this mode
    pixels = images.load(path)
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    if mode in ("L", "LA", "RGBA", "I;16", "I") and fmt != "jpeg":  # the others are tinted or lossy
        np.testing.assert_allclose(pixels, glyphs[digit], atol=2)
    assert Predictor(model_path).predict([path]).labels.tolist() == [digit]


def test_cases_cover_every_required_format_and_mode():
    assert {fmt for fmt, _, _ in CASES} >= {"png", "jpeg", "bmp", "gif", "tiff", "webp"}
    assert {read for _, _, read in CASES} >= {"L", "LA", "RGB", "RGBA", "P", "1", "I;16", "I"}


def test_gif_uses_its_first_frame(tmp_path, glyphs, model_path):
    frames = [Image.fromarray(glyphs[3]), Image.fromarray(glyphs[5])]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert Predictor(model_path).predict(tmp_path / "anim.gif").labels.tolist() == [3]


def test_sixteen_bit_values_are_scaled_not_clipped(glyphs):
    half = Image.fromarray(glyphs[8].astype(np.uint16) * 128)  # a dim 16-bit image: max 32640
    np.testing.assert_allclose(images.to_grayscale(half), glyphs[8] * 128.0 / 257, atol=1)


def test_transparent_palette_is_composited(tmp_path, glyphs):
    image = Image.fromarray(glyphs[2]).convert("P")
    image.info["transparency"] = 0  # black, the background, becomes transparent
    image.save(tmp_path / "clear.png")
    np.testing.assert_allclose(images.load(tmp_path / "clear.png"), glyphs[2], atol=2)


@pytest.mark.parametrize("size", [(300, 200), (160, 72), (72, 120)])
def test_bigger_and_non_square_images_are_normalised_like_mnist(size):
    from job.data.datasets import load_dataset

    digits = load_dataset("mnist-sample").x_test[:20]
    similarity = []
    for digit in digits:
        # the MNIST digit drawn large on a canvas of this size, off centre: normalising must give it back
        canvas = Image.new("L", size)
        big = Image.fromarray(digit).resize((min(size),) * 2, Image.Resampling.BICUBIC)
        canvas.paste(big, (size[0] - min(size), 0))
        similarity.append(correlation(images.prepare(np.asarray(canvas)), digit))
    assert min(similarity) > 0.7 and np.median(similarity) > 0.9, np.round(similarity, 2)


def correlation(a, b):
    a, b = a.astype(float) - a.mean(), b.astype(float) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_mnist_normalisation_fits_20x20_and_centres_by_mass():
    wide = np.zeros((50, 200), np.uint8)
    wide[10:30, 20:180] = 255  # a bar far from the centre
    pixels = images.mnist_normalize(wide)
    rows, cols = np.nonzero(pixels > 64)
    assert cols.max() - cols.min() + 1 <= 20 and rows.max() - rows.min() + 1 <= 20
    mass = pixels.astype(float) / pixels.sum()
    centre = (mass.sum(axis=1) @ np.arange(28), mass.sum(axis=0) @ np.arange(28))
    np.testing.assert_allclose(centre, (14, 14), atol=0.6)  # where MNIST's own centres sit


def test_blank_images_are_no_digit_and_a_dot_is_not_a_crash():
    for blank in (np.zeros((40, 30), np.uint8), np.full((28, 28), 255, np.uint8), np.full((300, 200), 140, np.uint8)):
        with pytest.raises(images.NoDigit, match="no digit found"):
            images.prepare(blank)
    dot = np.zeros((40, 30), np.uint8)
    dot[5:8, 7:10] = 200
    assert images.mnist_normalize(dot).max() > 0


def test_stretch_and_none(tmp_path, glyphs, model_path):
    stretched = Image.fromarray(glyphs[6]).resize((56, 84), Image.Resampling.BILINEAR)
    stretched.save(tmp_path / "tall.png")
    assert Predictor(model_path).predict([tmp_path / "tall.png"], resize="stretch").labels.tolist() == [6]
    assert images.load(tmp_path / "tall.png", resize="stretch").shape == (28, 28)
    with pytest.raises(ValueError, match="56x84, not 28x28"):
        images.load(tmp_path / "tall.png", resize="none")
    Image.fromarray(glyphs[6]).save(tmp_path / "exact.png")
    np.testing.assert_array_equal(images.load(tmp_path / "exact.png", resize="none"), glyphs[6])


def test_dark_digits_on_light_background_are_inverted(tmp_path, glyphs, model_path):
    paper = tmp_path / "paper.png"
    Image.fromarray(255 - glyphs[7]).save(paper)
    Image.fromarray(255 - render(4)).save(tmp_path / "big-paper.png")
    np.testing.assert_array_equal(images.load(paper), glyphs[7])
    np.testing.assert_array_equal(images.load(paper, invert="always"), glyphs[7])
    with pytest.raises(images.NoDigit):  # told the ink is light: on white paper there is none
        images.load(paper, invert="never")
    np.testing.assert_array_equal(images.load(tmp_path / "big-paper.png"), images.prepare(render(4)))
    result = Predictor(model_path).predict([paper, tmp_path / "big-paper.png"])
    assert result.labels.tolist() == [7, 4]


def test_invert_always_inverts_white_on_black_as_is_without_cleaning(tmp_path, glyphs):
    Image.fromarray(glyphs[1]).save(tmp_path / "one.png")
    np.testing.assert_array_equal(images.load(tmp_path / "one.png", invert="always", resize="none"), 255 - glyphs[1])


def bad_files(folder):
    """Write one file of each bad kind; returns {name: expected words in the reason}."""
    good = folder / "good.png"
    Image.fromarray(render(3)).save(good)
    data = good.read_bytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    flipped = bytes(byte ^ 0xFF for byte in data[60:200])  # inside the compressed pixels
    (folder / "corrupt.png").write_bytes(data[:60] + flipped + data[200:])
    (folder / "notes.png").write_text("these are not pixels\n")
    (folder / "missing.png").symlink_to(folder / "does-not-exist.png")
    Image.new("1", (5000, 5000)).save(folder / "bomb.png")  # 25M pixels, a few kB on disk
    expected = {
        "empty.png": "empty file",
        "truncated.png": "truncated or corrupt",
        "corrupt.png": "broken data stream",
        "notes.png": "not an image",
        "missing.png": "No such file",
        "bomb.png": "decompression bomb",
    }
    if os.geteuid() != 0:  # root reads files whatever their permissions
        locked = folder / "locked.png"
        locked.write_bytes(data)
        locked.chmod(0)
        expected["locked.png"] = "Permission denied"
    return expected


def test_each_bad_file_has_a_one_line_reason(tmp_path):
    for name, words in bad_files(tmp_path).items():
        pixels, reason = images.decode(tmp_path / name)
        assert pixels is None and words in reason and "\n" not in reason, name
    assert images.decode(tmp_path / "good.png")[1] is None


def test_bad_files_become_error_rows_and_the_batch_finishes(tmp_path, model_path, predict_cli):
    folder = tmp_path / "mixed"
    folder.mkdir()
    expected = bad_files(folder)
    result = predict_cli(folder, "--model", model_path, "--out", tmp_path / "out.csv", "--batch-size", "3")
    assert result.code == 3
    rows = {os.path.basename(row["path"]): row for row in read_rows(tmp_path / "out.csv")}
    assert rows.pop("good.png")["label"] == "3"
    assert set(rows) == set(expected)
    for name, row in rows.items():
        assert row["status"] == "error" and expected[name] in row["error"], row
        assert row["label"] == row["probability"] == ""


@pytest.mark.parametrize("k", [1, 3, 5, 7, 19, 33])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, bool])
def test_rank_filter_is_the_k_wide_max_and_min_with_edges_repeated(k, dtype):
    """The doubling rank filter against its definition, pixel by pixel: the max (min) of the k pixels around
    each one along an axis, the edge pixel standing in beyond the edge."""
    rng = np.random.default_rng(k)
    a = (rng.random((23, 41)) * 255).astype(dtype) if dtype is not bool else rng.random((23, 41)) > 0.8
    for op in (np.maximum, np.minimum):
        for axis in (0, 1):
            n = a.shape[axis]
            index = np.clip(np.arange(n)[:, None] + np.arange(k) - k // 2, 0, n - 1)  # (n, k) neighbours
            windows = a[index] if axis == 0 else a[:, index]
            expected = op.reduce(windows, axis=axis + 1)
            got = images.rank_filter(a, k, op, (axis,))
            assert got.dtype == a.dtype and np.array_equal(got, expected), (op.__name__, axis)


@pytest.mark.parametrize("content", ["noise", "strokes", "block"])
def test_lanczos_framing_is_pillows_resize_exactly(content):
    """resampling.lanczos, which frames every candidate digit, against Pillow's own resize (images.resize: one
    axis at a time, reducing_gap 3) on random images and sizes: downscales that reduce first, mild ones,
    upscales, one-pixel sides."""
    from mnist_predict import resampling

    rng = np.random.default_rng(["noise", "strokes", "block"].index(content))
    for _ in range(300):
        height, width = (int(side) for side in rng.integers(1, 300, 2))
        if content == "noise":
            gray = rng.integers(0, 256, (height, width)).astype(np.uint8)
        elif content == "strokes":
            gray = ((rng.random((height, width)) < 0.3) * 255).astype(np.uint8)
        else:
            gray = np.zeros((height, width), np.uint8)
            gray[height // 4:3 * height // 4 + 1, width // 3:2 * width // 3 + 1] = rng.integers(1, 256)
        size = tuple(int(side) for side in rng.integers(1, 40, 2))
        pillow = np.asarray(images.resize(Image.fromarray(gray), size, Image.Resampling.LANCZOS, reducing_gap=3.0))
        assert np.array_equal(resampling.lanczos(gray, size), pillow), (gray.shape, size)


def test_cuts_take_the_path_of_least_ink_ties_going_left_then_straight():
    """numbers.seams against the plain dynamic programme it implements: per row, the cheapest of arriving from
    the left, straight above or the right (ties: left, then straight), then back from the cheapest end."""
    from mnist_predict import numbers

    rng = np.random.default_rng(3)
    for _ in range(40):
        rows, width = (int(side) for side in rng.integers(5, 60, 2))
        region = rng.random((rows, width)) < rng.uniform(0.1, 0.6)
        reach = int(rng.integers(2, 12))
        starts = [(int(column), stiffness) for column in rng.integers(0, width, 3) for stiffness in (0.05, 0.5)]
        for (column, stiffness), got in zip(starts, numbers.seams(region, starts, reach)):
            xs = column + np.arange(-reach, reach + 1)
            inside = (xs >= 1) & (xs < width - 1)
            if not inside.any():
                assert (got == column).all()
                continue
            cost = region[:, np.clip(xs, 0, width - 1)].astype(np.float32) + \
                stiffness * np.abs(np.arange(-reach, reach + 1)) / reach
            cost[:, ~inside] = np.inf
            total, back = cost[0].copy(), []
            for y in range(1, rows):
                options = [np.r_[np.inf, total[:-1] + numbers.DIAGONAL], total, np.r_[total[1:] + numbers.DIAGONAL, np.inf]]
                step = np.argmin(options, axis=0)
                back.append(step - 1)
                total = cost[y] + np.choose(step, options)
            path = [int(np.argmin(total))]
            for step in reversed(back):
                path.append(path[-1] + int(step[path[-1]]))
            assert np.array_equal(got, xs[path[::-1]]), (rows, width, column, stiffness)


def test_otsu_counts_values_as_numpys_histogram_does():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(5000, dtype=np.float32) ** 3, np.float32([0, 1, 0.5, 255 / 256, 1 / 256])])
    counts, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    between = [(counts[:i + 1].sum() * counts[i + 1:].sum()) * ((counts[:i + 1] * centres[:i + 1]).sum() /
               counts[:i + 1].sum() - (counts[i + 1:] * centres[i + 1:]).sum() / max(counts[i + 1:].sum(), 1)) ** 2
               for i in range(255)]
    assert images.otsu(values) == edges[int(np.argmax(between)) + 1]


def test_components_are_the_8_connected_pieces_labelled_by_their_first_run_with_exact_masses():
    """images.components against a flood fill: every 8-connected piece of ink (diagonal steps join, a gap of
    one pixel does not), labelled 1 + the row-major index of its first run of ink, its stats, and its mass
    the exact sum of its float32 weights (math.fsum)."""
    import math
    from collections import deque

    rng = np.random.default_rng(5)
    for case in range(200):
        height, width = (int(side) for side in rng.integers(1, 70, 2))
        if case % 2:  # long snakes, which join by a corner and take many rounds to label
            mask = np.zeros((height, width), bool)
            for _ in range(int(rng.integers(1, 4))):
                y, x = int(rng.integers(height)), int(rng.integers(width))
                for _ in range(int(rng.integers(1, 400))):
                    mask[y, x] = True
                    y, x = (min(height - 1, max(0, y + int(rng.integers(-1, 2)))),
                            min(width - 1, max(0, x + int(rng.integers(-1, 2)))))
        else:
            mask = rng.random((height, width)) < rng.uniform(0.05, 0.7)
        weight = (rng.random((height, width)) * 255).astype(np.float32)
        labels, stats = images.components(mask, weight)
        runs = [(y, x) for y in range(height) for x in range(width) if mask[y, x] and (x == 0 or not mask[y, x - 1])]
        expected, seen = {}, np.zeros(mask.shape, bool)
        for index, (y, x) in enumerate(runs):
            if seen[y, x]:
                continue
            piece, queue = [], deque([(y, x)])
            seen[y, x] = True
            while queue:
                cy, cx = queue.popleft()
                piece.append((cy, cx))
                for ny in range(max(0, cy - 1), min(height, cy + 2)):
                    for nx in range(max(0, cx - 1), min(width, cx + 2)):
                        if mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            queue.append((ny, nx))
            ys, xs = np.array(piece).T
            expected[index + 1] = {"area": len(piece), "mass": math.fsum(weight[ys, xs].tolist()),
                                   "top": int(ys.min()), "bottom": int(ys.max()) + 1, "left": int(xs.min()),
                                   "right": int(xs.max()) + 1}
            assert (labels[ys, xs] == index + 1).all(), case
        assert list(stats) == list(expected) and stats == expected, case
        assert (labels[~mask] == 0).all()
