"""The browser page (deploy/web) in a real browser: headless Debian Chromium driven by playwright-core.

One module-scoped run of tests/web/drive.mjs serves a real export with `mnist-predict web`, draws digits with
the mouse, runs the parity set, predicts 200 MNIST test PNGs and 200 photo-like PNGs one by one through
window.mnist.predictImage, and predicts the photos again as dropped files. The tests compare all of it with
the Python predictor on the same files. Another test runs deploy/web/preprocess.js under node on images of
every photo condition and compares it with mnist_predict.images pixel by pixel. For numbers, a second run
(tests/web/read.mjs, a digit model) draws a number with the mouse and reads number images one by one and as
dropped files, against `mnist-predict read`; and deploy/web/numbers.js runs under node on numbers of every
spacing, as scans and photos, against mnist_predict.numbers, candidate for candidate and pixel for pixel.

Needs node, /usr/bin/chromium (apt-get install chromium) and `make web` (npm ci in deploy/web); .ci/run
installs them.
"""

import base64
import io
import gzip
import json
import re
import shutil
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, error_line, run_cli
from job.data.datasets import read_idx
from job.data.number_images import render_number
from job.data.photos import CONDITIONS, phone_photo, render
from mnist_predict import Predictor, images, lines, numbers, reading_confidence
from predict_fixtures import (digit_export, digit_templates, draw_number, export_dir, fake_line_reader,  # noqa: F401
                              glyphs, outputs_reading, pen_number, read_rows, touching, two_pens)
from PIL import Image

pytestmark = pytest.mark.slow  # trains, exports or drives a browser (-m 'not slow' leaves it out)

PAGE = ROOT / "deploy" / "web"
CHROMIUM = "/usr/bin/chromium"
SAMPLE = ROOT / "job" / "data" / "sample" / "t10k-images-idx3-ubyte.gz"
ARTIFACTS = ROOT / "tests" / "artifacts"  # the screenshot, kept after the run (git-ignored)
PNG_CONDITIONS = [c for c in CONDITIONS if c not in ("off-white", "heavy-jpeg", "phone")]  # these are JPEGs


def require_browser():
    missing = [what for what, ok in (
        ("node", shutil.which("node")),
        (f"{CHROMIUM} (apt-get install chromium)", Path(CHROMIUM).exists()),
        ("deploy/web/node_modules (make web)", (PAGE / "node_modules" / "playwright-core").is_dir()),
    ) if not ok]
    if missing:
        pytest.fail("the browser tests need " + ", ".join(missing))


def write_pngs(folder, digits):
    folder.mkdir()
    for i, digit in enumerate(digits):
        Image.fromarray(digit).save(folder / f"{i:03d}.png")


def photo_pngs(digits, count):
    """count photo-like PNGs of the given digits, across the conditions that are saved losslessly."""
    out = []
    for i in range(count):
        image, suffix = render(digits[i], PNG_CONDITIONS[i % len(PNG_CONDITIONS)], seed=i)
        assert suffix == ".png" and image.mode in ("L", "RGB")
        out.append(np.asarray(image))
    return out


class Server:
    """`mnist-predict web EXPORT --port 0` in the background; its URL is the line it prints."""

    def __init__(self, export):
        self.process = subprocess.Popen([sys.executable, "-m", "mnist_predict", "web", str(export), "--port", "0"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if " at http" not in line:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {line}{self.process.stderr.read()}")
        self.url = line.split(" at ", 1)[1].split()[0]

    def get(self, path, headers=None):
        try:
            request = urllib.request.Request(self.url + path.lstrip("/"), headers=headers or {})
            with urllib.request.urlopen(request) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, b""

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def server(export_dir):
    server = Server(export_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory, server, export_dir):
    require_browser()
    tmp = tmp_path_factory.mktemp("web")
    sample = read_idx(SAMPLE)
    write_pngs(tmp / "digits", sample[:200])
    write_pngs(tmp / "photos", photo_pngs(sample[200:], 200))
    (tmp / "chosen").mkdir()  # a folder of subfolders whose files share names, as cameras name them
    write_pngs(tmp / "chosen" / "a", sample[400:403])
    write_pngs(tmp / "chosen" / "b", sample[403:405])
    (tmp / "chosen" / "b" / "notes.txt").write_text("not an image")
    (tmp / "out").mkdir()
    drive = subprocess.run(["node", str(ROOT / "tests" / "web" / "drive.mjs"), server.url, str(tmp / "out"),
                            str(tmp / "photos"), str(tmp / "chosen"), str(tmp / "digits"), str(tmp / "photos")],
                           capture_output=True, text=True, timeout=600)
    assert drive.returncode == 0, drive.stderr[-3000:]
    result = json.loads(drive.stdout)
    cli = {}
    for name in ("digits", "photos"):
        done = run_cli(tmp / name, "--model", export_dir / "model.onnx", "--out", tmp / f"{name}.csv",
                       tool="mnist-predict")
        assert done.returncode in (0, 3), done.stderr
        cli[name] = {Path(row["path"]).name: row for row in read_rows(tmp / f"{name}.csv")}
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp / "out" / "web-page.png", ARTIFACTS / "web-page.png")
    page_bytes = sum(size for path, size in result["downloads"].items() if path != "/export/parity.json")
    print(f"\nweb: ready {result['ready_ms']:.0f} ms, first prediction {result['first_prediction_ms']:.0f} ms after "
          f"navigation; parity max abs diff {result['parity']['max_abs_diff']:.3g}, agreement "
          f"{result['parity']['argmax_agreement']}; dropped files {result['dropped']['images_per_second']:.0f} "
          f"images/s; page download {page_bytes / 1e6:.2f} MB; screenshot {ARTIFACTS / 'web-page.png'}")
    return {**result, "tmp": tmp, "cli": cli, "page_bytes": page_bytes}


def test_the_page_loads_the_export_with_threads_and_no_errors(browser_run, export_dir):
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert browser_run["console_errors"] == []
    assert browser_run["cross_origin_isolated"] is True  # COOP/COEP from the server: threads are allowed
    assert "WebAssembly" in browser_run["status_line"]
    info = browser_run["model_info"]
    assert manifest["files"]["model.onnx"]["sha256"] in info and "matches the manifest" in info
    assert ", ".join(manifest["labels"]) in info  # names apart, for names with spaces too
    # a model of other classes than digits is asked for them (this one's labels are "zero", "one", ...)
    assert browser_run["draw_heading"] == "Draw one of: " + ", ".join(manifest["labels"])
    # everything came from the local server, nothing from a CDN
    assert {"/ort/ort.wasm.min.mjs", "/export/model.onnx", "/export/manifest.json"} <= set(browser_run["downloads"])


def test_a_digit_drawn_with_the_mouse_is_recognised(browser_run):
    assert browser_run["drawn"] == {"zero": "zero", "one": "one"}
    assert browser_run["zero_bars"].startswith("zero")  # one bar per label, in the manifest's names
    screenshot = Image.open(ARTIFACTS / "web-page.png").convert("L")
    assert screenshot.width >= 1000 and np.asarray(screenshot).std() > 10  # a rendered page, not a blank one


def test_parity_in_the_browser_matches_keras(browser_run, export_dir):
    parity = browser_run["parity"]
    with np.load(export_dir / "parity.npz") as reference:
        assert parity["rows"] == len(reference["inputs"])
    assert parity["max_abs_diff"] <= 1e-4, parity  # WebAssembly float may differ from native in the last bits
    assert parity["argmax_agreement"] == 1.0
    assert "argmax agreement 1.0000" in browser_run["parity_shown"]


@pytest.mark.parametrize("folder", ["digits", "photos"])
def test_the_page_prepares_and_labels_pngs_as_mnist_predict_does(browser_run, folder):
    """200 MNIST test PNGs and 200 photo-like PNGs: the same 28x28 input, pixel for pixel, and the same label."""
    page, cli = browser_run["images"][folder], browser_run["cli"][folder]
    names = sorted(p.name for p in (browser_run["tmp"] / folder).iterdir())
    assert len(names) == 200 and set(cli) == set(names)
    for name in names:
        row, result = cli[name], page[name]
        if row["status"] == "error":
            assert result["label"] is None and result["error"] == row["error"], name
            continue
        assert str(result["label"]) == row["label"], name
        expected = images.load(browser_run["tmp"] / folder / name)
        assert np.array_equal(np.array(result["digit"], np.uint8).reshape(28, 28), expected), name


def test_dropped_files_give_the_predictors_rows(browser_run):
    dropped = browser_run["dropped"]
    assert dropped["rows"] == dropped["files"] == 200
    lines = dropped["csv"].split("\r\n")
    assert lines[0] == "path,label,class_name,probability,top_k,status,review,error"
    rows = {row["path"]: row for row in (dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:-1])}
    cli = browser_run["cli"]["photos"]
    assert set(rows) == set(cli)
    for name, row in rows.items():
        assert (row["label"], row["class_name"], row["status"]) == (cli[name]["label"], cli[name]["class_name"],
                                                                    cli[name]["status"]), name
        if row["status"] == "ok":  # WebAssembly's float may move the 6th decimal
            assert abs(float(row["probability"]) - float(cli[name]["probability"])) <= 1e-5, name
            assert row["review"] == cli[name]["review"], name
            names = [entry.rsplit(":", 1)[0] for entry in row["top_k"].split(" ")]
            assert names == [entry.rsplit(":", 1)[0] for entry in cli[name]["top_k"].split(" ")], name
            assert names[0] == row["class_name"]  # class names, as the CLI's CSV has them, not indices


def test_a_chosen_folder_keeps_its_subfolders_in_the_paths(browser_run):
    lines = browser_run["folder"]["csv"].split("\r\n")
    paths = [line.split(",")[0] for line in lines[1:-1]]
    assert paths == ["chosen/a/000.png", "chosen/a/001.png", "chosen/a/002.png", "chosen/b/000.png",
                     "chosen/b/001.png"]  # sorted, each once, and notes.txt not listed
    assert "5 of 5 files, 0 errors" in browser_run["folder"]["stats"] and "1 file not listed" in \
        browser_run["folder"]["stats"]


def test_preprocess_js_matches_mnist_predict_images_pixel_for_pixel():
    """Every photo condition, JPEGs included (decoded here by Pillow, so both see the same pixels), numbers, a
    tall and a wide crop, a 28x28 true MNIST digit and a blank page, through node and through Python."""
    sample = read_idx(SAMPLE)
    grays = [images.to_grayscale(render(sample[i], condition, seed=i)[0])
             for i in range(6) for condition in CONDITIONS]
    # numbers, loose and tight, as scans and photos: the digits beside the heaviest are kept (images._beside)
    grays += [images.to_grayscale(render_number(sample[3 * i:3 * i + 2 + i % 3], spacing, condition, seed=i)[0])
              for i, (spacing, condition) in enumerate(product(("loose", "tight"), ("off-white", "phone")))]
    # digits in a fine pen beside one in a felt pen: kept though light (images.KEEP_MASS)
    grays += [np.asarray(two_pens(text)) for text in ("602", "41")]
    # a note on a darker desk, whose polarity the tails of two paper estimates decide (images._dark_ink)
    grays += [images.to_grayscale(Image.open(io.BytesIO(phone_photo(sample[i], seed=i, megapixels=0.3))))
              for i in (12, 20)]
    grays += [sample[0], sample[1][:, 4:24], np.pad(sample[2], ((0, 0), (60, 60))), np.full((50, 40), 200, np.uint8)]
    results = node_prepare(grays)
    for i, (gray, result) in enumerate(zip(grays, results)):
        try:
            expected = images.prepare(gray)
        except images.NoDigit:
            assert result[0] == 1, i
            continue
        assert result[0] == 0 and np.array_equal(result[1:].reshape(28, 28), expected), i
    assert results[-1][0] == 1  # the blank page has no digit


def node_prepare(grays, mode="mnist"):
    """preprocess.js's prepare(gray, mode) on each image, in node: (status byte, 784 pixels) per image."""
    if not shutil.which("node"):
        pytest.fail("needs node")
    blob = b"".join(struct.pack("<II", g.shape[1], g.shape[0]) + np.ascontiguousarray(g).tobytes() for g in grays)
    done = subprocess.run(["node", str(ROOT / "tests" / "web" / "preprocess_cli.mjs"), mode], input=blob,
                          capture_output=True, timeout=300)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode()[-2000:]
    return np.frombuffer(done.stdout, np.uint8).reshape(len(grays), 1 + 28 * 28)


def test_preprocess_js_stretch_matches_mnist_predict_images_pixel_for_pixel():
    """A Fashion-MNIST export's preprocessing: photos, a 28x28 array either way round, thin strips."""
    sample = read_idx(SAMPLE)
    grays = [images.to_grayscale(render(sample[i], condition, seed=i)[0])
             for i in range(2) for condition in CONDITIONS]
    grays += [sample[0], 255 - sample[1], sample[2][:, 4:24], np.full((1, 50), 200, np.uint8),
              np.tile(np.arange(60, dtype=np.uint8)[:, None] * 4, (1, 1))]
    results = node_prepare(grays, "stretch")
    for i, (gray, result) in enumerate(zip(grays, results)):
        expected = images.prepare(gray, resize="stretch")
        assert result[0] == 0 and np.array_equal(result[1:].reshape(28, 28), expected), i
    assert np.array_equal(results[len(grays) - 4][1:], sample[1].ravel())  # the light background turned dark


def test_an_export_whose_preprocess_is_stretch_gets_files_as_they_are_on_the_page(tmp_path, export_dir):
    """A Fashion-MNIST export says preprocess "stretch" (docs/artifacts.md): the page's own thread and its
    preparing workers both send each file to the model resized as is, as mnist-predict --resize stretch does."""
    require_browser()
    export = tmp_path / "export"
    shutil.copytree(export_dir, export)
    manifest = json.loads((export / "manifest.json").read_text())
    (export / "manifest.json").write_text(json.dumps({**manifest, "preprocess": "stretch"}))
    write_pngs(tmp_path / "photos", photo_pngs(read_idx(SAMPLE)[600:], 12))
    server = Server(export)
    try:
        done = subprocess.run(["node", str(ROOT / "tests" / "web" / "prepare.mjs"), server.url, str(tmp_path / "photos")],
                              capture_output=True, text=True, timeout=300)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["console_errors"] == [] and "(stretch)" in result["model_info"]
    cli = run_cli(tmp_path / "photos", "--model", export / "model.onnx", "--resize", "stretch", "--out",
                  tmp_path / "p.csv", tool="mnist-predict")
    assert cli.returncode == 0, cli.stderr
    rows = {Path(row["path"]).name: row for row in read_rows(tmp_path / "p.csv")}
    lines = result["csv"].split("\r\n")
    dropped = {Path(row["path"]).name: row for row in (dict(zip(lines[0].split(","), line.split(",")))
                                                       for line in lines[1:-1])}
    assert set(dropped) == set(rows) == set(result["images"]) and len(rows) == 12
    cleaned = 0
    for name, row in rows.items():
        digit = np.array(result["images"][name]["digit"], np.uint8).reshape(28, 28)
        assert np.array_equal(digit, images.load(tmp_path / "photos" / name, resize="stretch")), name
        assert str(result["images"][name]["label"]) == row["label"] == dropped[name]["label"], name
        cleaned += not np.array_equal(digit, images.load(tmp_path / "photos" / name))
    assert cleaned == 12  # the digit cleaning would have given other inputs


def test_the_server_sends_wasm_and_isolation_headers_and_nothing_else(server, export_dir):
    status, headers, body = server.get("/ort/ort-wasm-simd-threaded.wasm")
    assert status == 200 and headers["Content-Type"] == "application/wasm" and body[:4] == b"\0asm"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert server.get("/ort/ort.wasm.min.mjs")[1]["Content-Type"] == "text/javascript"
    assert server.get("/export/model.onnx")[2] == (export_dir / "model.onnx").read_bytes()
    for path in ("/export/parity.npz", "/../README.md", "/ort/../package.json", "/export/../manifest.json",
                 "/node_modules/onnxruntime-web/package.json", "/package.json"):
        assert server.get(path)[0] == 404, path
    # parity.json, made from parity.npz for an export that has none
    parity = json.loads(server.get("/export/parity.json")[2])
    with np.load(export_dir / "parity.npz") as reference:
        inputs = np.frombuffer(base64.b64decode(parity["inputs"]), "<f4")
        assert np.array_equal(inputs.reshape(reference["inputs"].shape), reference["inputs"])
        assert parity["kinds"] == list(reference["kinds"])


def test_the_wasm_goes_gzipped_to_a_browser_that_takes_gzip(server):
    wasm = PAGE / "node_modules" / "onnxruntime-web" / "dist" / "ort-wasm-simd-threaded.wasm"
    status, headers, body = server.get("/ort/ort-wasm-simd-threaded.wasm", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["Content-Type"] == "application/wasm"
    assert int(headers["Content-Length"]) == len(body) < wasm.stat().st_size / 3
    assert gzip.decompress(body) == wasm.read_bytes()
    assert "Content-Encoding" not in server.get("/ort/ort-wasm-simd-threaded.wasm")[1]  # asked for nothing


def test_web_refuses_a_folder_that_is_not_an_export(tmp_path):
    result = run_cli("web", tmp_path, "--port", "0", tool="mnist-predict")
    assert result.returncode == 2
    assert "is not an export directory: it needs model.onnx and manifest.json" in error_line(result)


# ---- numbers ----------------------------------------------------------------------------------------------

def number_grays():
    """Numbers of MNIST digits at every spacing as scans and photos, numbers drawn in the templates' font with
    gaps and touching, two lines, a true 28x28 digit and a blank page: 2-D uint8 arrays."""
    from job.data.number_images import SPACINGS, render_number

    sample = read_idx(SAMPLE)
    rng = np.random.default_rng(7)
    grays = []
    for k, spacing in enumerate(SPACINGS):
        for condition in ("off-white", "phone"):
            idx = rng.integers(0, len(sample), int(rng.integers(2, 9)))
            grays.append(images.to_grayscale(render_number(list(sample[idx]), spacing, condition, seed=k)[0]))
    grays += [np.asarray(draw_number("90210", 25)[0]), np.asarray(touching("7777")[0])]
    # on a form: score boxes (their edges go with the rules), a comb field, an underline
    for k, form in enumerate(("boxes", "boxes", "comb", "underline")):
        idx = rng.integers(0, len(sample), int(rng.integers(3, 8)))
        grays.append(images.to_grayscale(render_number(list(sample[idx]), "tight", "off-white", seed=k, form=form)[0]))
    # two digits in a box too short to be a rule: the box is a piece, and goes (numbers.is_frame)
    grays.append(images.to_grayscale(render_number(list(sample[[5, 9]]), "tight", "off-white", seed=0, form="frame")[0]))
    # a photo's box, broken into five pieces that the grown mask joins into one box (numbers.without_frames)
    grays.append(images.to_grayscale(render_number(list(sample[[1751, 803, 1629]]), "loose", "phone", seed=1050311507,
                                                   form="frame")[0]))
    two = Image.new("L", (500, 330), 255)
    two.paste(draw_number("12", 25, margin=20)[0], (0, 0))
    two.paste(draw_number("345", 25, margin=20)[0], (0, 170))
    grays += [np.asarray(two), sample[3], np.full((80, 240), 225, np.uint8)]
    return grays


CALIBRATION = {"agree": [0.5, 0.8, 0.6], "differ": [-1.0, 0.7, -0.4, 0.3]}  # weights as export fits them


def test_numbers_js_matches_mnist_predict_numbers_pixel_for_pixel(digit_export, tmp_path):
    """Each image's candidates (atoms, runs, boxes, priors, framed pixels), its line images, its reading, and
    its reading weighed with a line reader's, through node and through Python, with the same model outputs.
    The line readers (a sure one and an unsure one reading ink as 1, a sure one reading it as "?", and outputs
    that read the search's own text, unsure, or another, very unsure) take turns, so that each way of weighing
    happens; the odd images are weighed with a reading calibration (the manifest's), the even ones without."""
    if not shutil.which("node"):
        pytest.fail("needs node")
    predictor = Predictor(digit_export / "model.onnx")
    readers = []
    for k, (sharp, char) in enumerate(((6.0, "1"), (6.0, "?"), (1.0, "1"))):
        (tmp_path / str(k)).mkdir()
        readers.append(lines.LineReader(fake_line_reader(tmp_path / str(k), sharp, char)))
    grays, expected, blob, recalibrated = number_grays(), [], b"", []
    for k, gray in enumerate(grays):
        length = (4, 4) if k == 0 else None
        line_outputs = []
        try:
            layout = numbers.layout_of(gray, for_line_reader=True)
            probabilities = predictor.run(layout.inputs)
            reading = numbers.choose(layout, probabilities, length)
            line_outputs = readers[k % 4 % 3].run([image for image, _ in layout.lines])
            if k % 4 == 3:  # the search's text, unsure; or another text, more unsure than the search
                line_outputs = [outputs_reading(text if k % 8 == 3 else "7" * len(text),
                                                sure=0.3 if k % 8 == 3 else 0.15) for text in reading.text.split(" ")]
            expected.append((layout, reading, numbers.with_line_reading(reading, layout, probabilities, line_outputs,
                                                                        length, CALIBRATION if k % 2 else None)))
            if k % 2:
                recalibrated.append((numbers.with_line_reading(reading, layout, probabilities, line_outputs, length),
                                     expected[-1][2]))
        except numbers.NoNumber:
            probabilities = np.zeros((0, 10), np.float32)
            expected.append(None)
        blob += (struct.pack("<II", gray.shape[1], gray.shape[0]) + np.ascontiguousarray(gray).tobytes() +
                 struct.pack("<I", len(probabilities)) + probabilities.astype("<f4").tobytes() +
                 struct.pack("<ii", *(length or (0, 0))) + struct.pack("<I", len(line_outputs)) +
                 b"".join(struct.pack("<II", *out.shape) + out.astype("<f4").tobytes() for out in line_outputs))
    done = subprocess.run(["node", str(ROOT / "tests" / "web" / "numbers_cli.mjs"), json.dumps(CALIBRATION)],
                          input=blob, capture_output=True, timeout=300)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode()[-2000:]
    results = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(results) == len(grays)
    for k, (result, want) in enumerate(zip(results, expected)):
        if want is None:
            assert result["status"] == "no number", k
            continue
        layout, reading, weighed = want
        assert result["status"] == "ok" and result["atoms"] == layout.atoms, k
        pixels = np.frombuffer(base64.b64decode(result["inputs"]), np.uint8).reshape(-1, 28, 28)
        assert np.array_equal(pixels, layout.inputs), k
        for candidate, js in zip(layout.candidates, result["candidates"]):
            assert (js["line"], js["start"], js["stop"], js["box"]) == (
                candidate.line, candidate.start, candidate.stop, [int(v) for v in candidate.box]), k
            assert js["prior"] == pytest.approx(candidate.prior, abs=1e-12), k
        js = result["reading"]
        assert js["text"] == reading.text and js["review"] == reading.review, k
        assert js["boxes"] == [[int(v) for v in box] for box in reading.boxes], k
        assert js["confidence"] == pytest.approx(reading.confidence, rel=1e-9), k
        assert len(result["lines"]) == len(layout.lines), k
        for js, (image, place) in zip(result["lines"], layout.lines):
            pixels = np.frombuffer(base64.b64decode(js["pixels"]), np.uint8).reshape(lines.HEIGHT, js["width"])
            assert np.array_equal(pixels, image), k
            assert js["place"] == pytest.approx(list(place), rel=1e-12), k
        js = result["weighed"]
        assert (js["text"], js["review"]) == (weighed.text, weighed.review), k
        assert js["boxes"] == [[int(v) for v in box] for box in weighed.boxes], k
        assert [label for label, _ in js["digits"]] == [label for label, _ in weighed.digits], k
        assert [p for _, p in js["digits"]] == pytest.approx([p for _, p in weighed.digits], rel=1e-6), k
        # a logit near 1 magnifies the last bits of a confidence that the two computed in another order
        assert js["confidence"] == pytest.approx(weighed.confidence, rel=1e-6 if k % 2 else 1e-9, abs=1e-12), k
    assert results[-1]["status"] == "no number" and expected[-3][1].text == "12 345"
    # each way of weighing happened: agreed (as sure as the less sure reader); the search's text kept, flagged; the line reader's text taken, with
    # the search's count of digits (from the cuts) and with another (from its columns); a "?" of the line reader's;
    # the line reader's digits where the search read "?"
    # the calibration gives other confidences to the same texts and flags
    assert all((c.text, c.review) == (b.text, b.review) for b, c in recalibrated)
    assert any(abs(c.confidence - b.confidence) > 0.01 for b, c in recalibrated)
    pairs = [want[1:] for want in expected if want]
    ways = {"agreed": [r.text == w.text and r.review == w.review for r, w in pairs],
            "agreed, less sure": [r.text == w.text and r.review == w.review and w.confidence < r.confidence
                                  for r, w in pairs],
            "kept": [r.text == w.text and r.review != w.review for r, w in pairs],
            "from cuts": [r.text != w.text and len(r.digits) == len(w.digits) for r, w in pairs],
            "from columns": [r.text != w.text and len(r.digits) != len(w.digits) for r, w in pairs],
            "its ?": [w.text.count("?") > r.text.count("?") for r, w in pairs],
            "over the search's ?": [w.text.count("?") < r.text.count("?") for r, w in pairs]}
    assert all(any(happened) for happened in ways.values()), ([way for way, happened in ways.items() if not any(happened)], [(r.text, round(r.confidence, 4), w.text, round(w.confidence, 4)) for r, w in pairs])


@pytest.fixture(scope="module")
def reading_run(tmp_path_factory, digit_export):
    """The page with a digit model and a line reader (an unsure one that reads ink as 1s, so that the digit
    search's text mostly stands, flagged): a number drawn with the mouse, number images read one by one and
    dropped, and `mnist-predict read` on the same export."""
    require_browser()
    tmp = tmp_path_factory.mktemp("read")
    folder = tmp / "numbers"
    folder.mkdir()
    for k, gray in enumerate(number_grays()):
        Image.fromarray(gray).save(folder / f"{k:02d}.png")  # PNG: the page and Pillow decode the same pixels
    (tmp / "strokes.json").write_text(json.dumps(pen_number("4710")))
    (tmp / "out").mkdir()
    export = shutil.copytree(digit_export, tmp / "export")  # with a review threshold export chose for digits
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["review_threshold"] = {"threshold": 0.95, "max_error": 0.01, "delta": 0.05, "n": 800,
                                    "method": "learn-then-test"}
    (export / "manifest.json").write_text(json.dumps(manifest))
    fake_line_reader(export, sharp=1.0)
    server = Server(export)
    try:
        drive = subprocess.run(["node", str(ROOT / "tests" / "web" / "read.mjs"), server.url, str(tmp / "out"),
                                str(tmp / "strokes.json"), str(folder)], capture_output=True, text=True, timeout=600)
    finally:
        server.stop()
    assert drive.returncode == 0, drive.stderr[-3000:]
    done = run_cli("read", folder, "--model", export, "--out", tmp / "numbers.csv", tool="mnist-predict")
    assert done.returncode in (0, 3), done.stderr
    cli = {Path(row["path"]).name: row for row in read_rows(tmp / "numbers.csv")}
    return {**json.loads(drive.stdout), "cli": cli, "folder": folder}


def test_the_page_takes_the_exported_review_threshold_for_digits_and_keeps_0_8_for_numbers(reading_run):
    """As mnist-predict does: the threshold export chose (with its guarantee) flags digits; a number's
    confidence is flagged below 0.8 (the dropped readings' review column matches `read`'s, below)."""
    assert reading_run["threshold"] == "0.95"
    assert "0.95: at most 0.01 of unflagged answers wrong, with probability 0.95" in reading_run["model_info"]
    assert "lines.onnx, weighed against the digit search" in reading_run["model_info"]


def test_a_number_drawn_with_the_mouse_is_read(reading_run):
    assert reading_run["console_errors"] == []
    assert reading_run["draw_heading"] == "Draw a digit or a number"
    assert reading_run["drawn"] == "4710", reading_run["reading_shown"]
    assert "Number: 4710" in reading_run["reading_shown"]


def test_the_page_reads_number_images_as_mnist_predict_read_does(reading_run):
    page, cli = reading_run["images"], reading_run["cli"]
    assert set(page) == set(cli) and len(page) == 19
    for name, row in cli.items():
        result = page[name]
        if row["status"] == "error":
            assert result["text"] is None and result["error"] == row["error"], name
            continue
        assert result["text"] == row["text"], name
        assert " ".join(",".join(map(str, box)) for box in result["boxes"]) == row["boxes"], name
        assert result["confidence"] == pytest.approx(float(row["confidence"]), abs=2e-6), name
        assert "; ".join(result["reasons"]) == row["review_reason"], name
        layout = numbers.layout_of(images.to_grayscale(Image.open(reading_run["folder"] / name)))
        assert np.array_equal(np.array(result["inputs"], np.uint8).reshape(-1, 28, 28), layout.inputs), name
    assert cli["16.png"]["text"] == "12 345"  # two lines
    # the line reader ran on both sides, and where it differs from the search the reasons name the other reading
    assert sum("the line reader reads" in row["review_reason"] or "the digit search reads" in row["review_reason"]
               for row in cli.values()) >= 10


def test_the_page_shows_what_the_models_saw_of_each_reading(reading_run):
    """Beside the pad, the page shows the digit model's input for each digit of a reading, or, where the line
    reader's text was read in its columns (no cut holds its digits), the line images the line reader read:
    never fewer digit inputs than the reading has digits."""
    kinds = {}
    for name, result in reading_run["images"].items():
        if result["text"] is None:
            continue
        seen = result["seen"]
        kinds.setdefault(seen["kind"], []).append(name)
        if seen["kind"] == "digits":
            assert seen["sizes"] == [[28, 28]] * len(result["digits"]), name
        else:
            assert len(seen["sizes"]) == len(result["text"].split(" ")), name  # one image a line
            assert all(height == lines.HEIGHT for _, height in seen["sizes"]), name
    assert kinds.get("digits") and kinds.get("lines"), kinds


def test_dropped_files_are_read_in_the_columns_of_read(reading_run):
    lines = reading_run["dropped"]["csv"].split("\r\n")
    assert lines[0] == "path,text,confidence,digits,boxes,review,status,error,review_reason"
    assert reading_run["dropped"]["rows"] == 19
    import csv

    rows = {row["path"]: row for row in csv.DictReader(lines[1:-1], fieldnames=lines[0].split(","))}
    for name, row in reading_run["cli"].items():
        assert (rows[name]["text"], rows[name]["status"], rows[name]["review"]) == (row["text"], row["status"],
                                                                                   row["review"]), name


JS_ONLY = {"PRECISION_BITS"}  # Pillow's fixed-point resampling: in Python, mnist_predict.resampling's (checked below)


@pytest.mark.parametrize("script, module", [("preprocess.js", images), ("numbers.js", numbers), ("lines.js", lines)],
                         ids=["images", "numbers", "lines"])
def test_the_js_twin_holds_the_same_tuning_constants(script, module):
    """Every numeric constant at the top of the twin has the Python module's name and value, and every one
    of the module's has its twin there (numbers.WORK is images.WORK, imported on both sides); so do the
    strings of both (lines.CLASSES, the order of the line reader's outputs)."""
    text = (PAGE / script).read_text()
    js = {}
    for line in re.findall(r"^(?:export )?const ([A-Z][A-Z0-9_]* = .+);$", text, re.M):
        for part in re.split(r",\s*(?=[A-Z][A-Z0-9_]* = )", line):
            name, expression = part.split(" = ", 1)
            try:
                js[name] = eval(expression, {"__builtins__": {}}, {**vars(images), **js})
            except (NameError, SyntaxError):
                continue  # an object or a function: not a tuning number
    strings = {name: value for name, value in js.items() if isinstance(value, str)}
    js = {name: value for name, value in js.items() if name not in strings}
    # numbers.js holds reading_confidence's twin too (the weighed reading's confidence)
    constants = {**vars(module), **(vars(reading_confidence) if module is numbers else {})}
    assert strings == {name: value for name, value in constants.items() if name.isupper() and isinstance(value, str)}
    python = {name: value for name, value in constants.items()
              if name.isupper() and isinstance(value, (int, float)) and not isinstance(value, bool)}
    imported = {"WORK", "DEFAULT_MIN_CONFIDENCE"} if module is numbers else set()
    assert set(js) - JS_ONLY == set(python) - imported, (sorted(set(js) ^ set(python)))
    assert {name: js[name] for name in set(js) & set(python)} == {name: python[name] for name in set(js) & set(python)}
    if script == "preprocess.js":
        from mnist_predict import resampling

        assert js["PRECISION_BITS"] == resampling.PRECISION_BITS
