"""`mnist-predict web EXPORT_DIR`: the browser page (deploy/web) and one export, over HTTP on localhost.

The page runs the export's model.onnx in onnxruntime-web (WebAssembly) and prepares images with
deploy/web/preprocess.js, a port of `mnist_predict.images`. Browsers refuse to load WebAssembly modules from
file:// pages, so the page needs a server; any static server works if it sends `.wasm` as application/wasm
and, for threads, the cross-origin isolation headers below. The stdlib server here does both.

    mnist-predict web runs/demo/export --port 8000      # then open http://127.0.0.1:8000/
"""

import base64
import functools
import gzip
import json
import os
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from . import formats, lines
from .predictor import UsageError

# deploy/web beside this package in a checkout; MNIST_PREDICT_WEB names another copy of it.
PAGE = Path(os.environ.get("MNIST_PREDICT_WEB", Path(__file__).resolve().parent.parent / "web"))
PAGE_FILES = ("index.html", "app.js", "preprocess.js", "numbers.js", "lines.js", "decode.js", "prepare_worker.js",
              "style.css")
ORT = Path("node_modules", "onnxruntime-web", "dist")
MODEL = formats.by_key(formats.ONNX).file  # the page runs it in onnxruntime-web
EXPORT_FILES = (MODEL, "manifest.json", "parity.json", lines.FILE)  # lines.onnx where the export has a line reader
TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
         ".json": "application/json", ".onnx": "application/octet-stream", ".css": "text/css",
         ".html": "text/html; charset=utf-8"}


def parity_json(reference):
    """parity.npz's arrays as the page reads them: float32 little-endian in base64, and the row kinds."""
    inputs = np.asarray(reference["inputs"], "<f4")
    probabilities = np.asarray(reference["probabilities"], "<f4")
    return {
        "rows": len(inputs),
        "inputs": base64.b64encode(inputs.tobytes()).decode(),
        "probabilities": base64.b64encode(probabilities.tobytes()).decode(),
        "kinds": [str(kind) for kind in reference["kinds"]],
    }


@functools.lru_cache(maxsize=4)
def _gzipped(path, mtime_ns):
    """A file's bytes gzipped, once per version of the file: onnxruntime-web's 14 MB wasm goes as 3.7 MB."""
    return gzip.compress(Path(path).read_bytes(), compresslevel=6, mtime=0)


@functools.lru_cache(maxsize=2)
def _parity_from_npz(path, mtime_ns):
    """parity.json made from an older export's parity.npz, once per version of the file."""
    with np.load(path, allow_pickle=False) as reference:
        return json.dumps(parity_json(reference)).encode()


def check(export_dir, page=PAGE):
    """One-line UsageErrors for what the page cannot do without; returns the resolved export directory."""
    export_dir = Path(export_dir)
    if not (export_dir / MODEL).is_file() or not (export_dir / "manifest.json").is_file():
        raise UsageError(f"{export_dir} is not an export directory: it needs {MODEL} and manifest.json "
                         "(mnist-job export RUN --format onnx writes them)")
    if not all((page / name).is_file() for name in PAGE_FILES):
        raise UsageError(f"the page is not at {page}: run from a checkout, or set MNIST_PREDICT_WEB to deploy/web")
    if not (page / ORT / "ort.wasm.min.mjs").is_file():
        raise UsageError(f"onnxruntime-web is not installed in {page}: run `make web` (npm ci there)")
    if not (export_dir / "parity.json").is_file() and not (export_dir / "parity.npz").is_file():
        raise UsageError(f"{export_dir} has neither parity.json nor parity.npz for the page's parity check")
    return export_dir.resolve()


class Handler(SimpleHTTPRequestHandler):
    """Serves exactly the page's files, onnxruntime-web's dist/ under /ort/, and the export's files under
    /export/; nothing else on the disk is reachable."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def __init__(self, *args, export_dir, page, **kwargs):
        self.export_dir, self.page = export_dir, page
        super().__init__(*args, directory=str(page), **kwargs)

    def translate_path(self, path):
        path = path.split("?", 1)[0].split("#", 1)[0]
        name = path.rsplit("/", 1)[-1]
        if path == "/":
            return str(self.page / "index.html")
        if path.startswith("/ort/") and "/" not in path[5:] and (self.page / ORT / name).is_file():
            return str(self.page / ORT / name)
        if path.startswith("/export/") and name in EXPORT_FILES and path == f"/export/{name}":
            return str(self.export_dir / name)
        if path.lstrip("/") in PAGE_FILES:
            return str(self.page / name)
        return str(self.page / "missing")  # a 404

    def do_GET(self):
        npz = self.export_dir / "parity.npz"
        if self.path.split("?", 1)[0] == "/export/parity.json" and not (self.export_dir / "parity.json").is_file():
            return self._send(_parity_from_npz(npz, npz.stat().st_mtime_ns), TYPES[".json"])
        wasm = Path(self.translate_path(self.path))
        if wasm.suffix == ".wasm" and wasm.is_file() and "gzip" in self.headers.get("Accept-Encoding", ""):
            # the page's largest download by far, and it compresses 4:1; the browser inflates it as it streams
            return self._send(_gzipped(wasm, wasm.stat().st_mtime_ns), TYPES[".wasm"], encoding="gzip")
        return super().do_GET()

    def _send(self, body, content_type, encoding=None):
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self):
        # Cross-origin isolation lets onnxruntime-web use threads (SharedArrayBuffer); no-cache makes a new
        # export show up on reload.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        if self.server.verbose:
            super().log_message(format, *args)


def serve(export_dir, host="127.0.0.1", port=8000, verbose=False, ready=None):
    """Serve until interrupted. `ready(url)` is called once the socket listens (port 0 picks a free one)."""
    export_dir = check(export_dir)
    wasm = PAGE / ORT / "ort-wasm-simd-threaded.wasm"
    if wasm.is_file():  # gzipped while the browser starts, not when it asks (half a second)
        threading.Thread(target=_gzipped, args=(wasm, wasm.stat().st_mtime_ns), daemon=True).start()
    handler = functools.partial(Handler, export_dir=export_dir, page=PAGE)
    with ThreadingHTTPServer((host, port), handler) as server:
        server.verbose = verbose
        if ready:
            ready(f"http://{host}:{server.server_address[1]}/")
        server.serve_forever()
