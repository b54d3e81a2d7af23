"""Batch prediction of many files: discovery, parallel decoding, ordered atomic output (shards: shards.py).

Memory stays flat with folder size: only the path list, a few batches of 28x28 pixels and one row at a
time are held; rows go straight to a temporary file that is renamed into place at the end.
"""

import csv
import glob
import json
import multiprocessing
import os
import resource
import signal
import sys
import time
from collections import Counter, deque
from concurrent.futures import TimeoutError
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pebble
from pebble import ProcessExpired

from . import files, numbers
from . import images as image_io
from .predictor import UsageError
from .review import DEFAULT_MIN_CONFIDENCE
from .wording import count

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
HEIC_SUFFIXES = (".heic", ".heif")  # iPhone photos: read when pillow-heif is installed (the `heic` extra)
COLUMNS = ("path", "label", "class_name", "probability", "top_k", "status", "review", "error")
READ_COLUMNS = ("path", "text", "confidence", "digits", "boxes", "review", "status", "error", "review_reason")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Batches decoded ahead of the one onnxruntime is running: enough to keep it busy, few enough that
# memory does not grow when decoding outpaces inference.
PREFETCH = 2
DEFAULT_DECODE_TIMEOUT = 5.0  # seconds a file may take to decode (a 12 MP JPEG takes 0.03)
WORKER_MEMORY = 2 * 1024**3  # address space a decode worker may add to what it was forked with
CHUNKS_PER_CORE = 4  # decode tasks per core in a batch, at the least: see chunk_size


def find_images(specs, recursive=False):
    """Sorted paths for folders (image suffixes only), files and glob patterns, each path once.

    Several specs arrive when the shell has expanded an unquoted glob."""
    return list_images(specs, recursive)[0]


def list_images(specs, recursive=False):
    """(sorted paths, Counter of what a folder held that is not listed, by reason): find_images, with the
    files and folders it leaves out counted, so that a summary can say so."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    skipped = Counter()
    paths = sorted({path for spec in specs for path in _find(os.fspath(spec), recursive, skipped)})
    return paths, skipped


def image_suffixes():
    """The suffixes a folder is listed by: HEIC too once pillow-heif is there to decode it."""
    return IMAGE_SUFFIXES + HEIC_SUFFIXES if image_io.heic_support() else IMAGE_SUFFIXES


def _find(spec, recursive, skipped):
    if os.path.isdir(spec):
        try:
            paths = sorted(_walk(spec, recursive, skipped, image_suffixes()))
        except OSError as error:
            raise UsageError(f"cannot list {error.filename or spec}: {error.strerror}") from None
        if not paths:
            hint = "" if recursive else "; add --recursive to look in subfolders"
            left = f" ({describe_skipped(skipped)})" if skipped else ""
            raise UsageError(f"no {'/'.join(image_suffixes())} files in {spec}{left}{hint}")
        return paths
    if os.path.lexists(spec):
        return [spec]  # named explicitly, so taken whatever its suffix
    if "**" in spec and not recursive:  # glob would take it for *, one level only: a quietly partial listing
        raise UsageError(f"{spec}: ** reaches into subfolders only with --recursive (without it, it matches one "
                         "level, as * does): add --recursive")
    paths = sorted(path for path in glob.glob(spec, recursive=recursive) if not os.path.isdir(path))
    if not paths:
        raise UsageError(f"no files matched {spec}")
    return paths


# What a listed folder can hold besides images: the summary counts each kind (noun, plural, why).
SKIPPED = {
    "subfolder": ("subfolder", "subfolders", "add --recursive to include them"),
    "unreadable": ("unreadable entry", "unreadable entries", "permissions?"),
    "heic": ("HEIC photo", "HEIC photos", "pip install pillow-heif to read them"),
    "no-suffix": ("file without a suffix", "files without a suffix", "rename them with their image type"),
    "other": ("file of another type", "files of other types", "not images"),
}


def _walk(folder, recursive, skipped, suffixes):
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden files, such as macOS's ._x.png resource forks, are not images
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                skipped["unreadable"] += 1
                continue
            if is_dir:
                if not recursive:
                    skipped["subfolder"] += 1
                    continue
                try:
                    yield from _walk(entry.path, recursive, skipped, suffixes)
                except PermissionError:
                    skipped["unreadable"] += 1
            elif entry.name.lower().endswith(suffixes):
                yield entry.path  # includes broken symlinks, which become error rows
            else:
                suffix = os.path.splitext(entry.name)[1].lower()
                skipped["heic" if suffix in HEIC_SUFFIXES else "other" if suffix else "no-suffix"] += 1


def describe_skipped(skipped):
    """'2 subfolders (add --recursive to include them), 1 HEIC photo (...)': a clause per kind left out."""
    return ", ".join(f"{count(n, *SKIPPED[kind][:2])} ({SKIPPED[kind][2]})"
                     for kind, n in skipped.items() if n)


def decoder_pool(workers):
    """`workers` processes that decode images (a pebble.ProcessPool), or a null context for decoding here
    (workers=0, and then without a time limit per file).

    Create it before the onnxruntime session: on Linux the workers are forked, which starts them in
    milliseconds without re-importing anything, and forking is safest before onnxruntime starts its
    threads. Pebble replaces a worker that times out or dies, and reports it for the one task it ran.
    """
    if workers == 0:
        return nullcontext()
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = pebble.ProcessPool(max_workers=workers, initializer=_worker_limits, context=context)
    for future in [pool.schedule(abs, args=(0,)) for _ in range(workers)]:  # start every worker now
        future.result()
    return pool


def _worker_limits():
    # Ctrl-C reaches the whole process group; only the parent should handle it (and stop the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # libtiff and libjpeg print their complaints about a broken file to stderr from C, a line each; the
    # file's row already holds the reason. (A worker that dies is reported by the parent.)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    image_io.limit_decompression()
    if hasattr(resource, "RLIMIT_AS"):  # a file that needs gigabytes fails alone, as MemoryError
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _address_space() + WORKER_MEMORY
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _address_space():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _decode_files(paths, invert, resize):
    return [image_io.decode(path, invert=invert, resize=resize) for path in paths]


def _layout_files(paths, invert, for_line_reader):
    return [numbers.decode(path, invert, for_line_reader) for path in paths]


def predict_files(predictor, paths, pool=None, batch_size=256, invert="auto", resize=None, top_k=3,
                  min_confidence=None, decode_timeout=DEFAULT_DECODE_TIMEOUT):
    """Yield one row per path, in the order of `paths`, however many processes decode them. `min_confidence`
    None: the model's review threshold (Predictor.min_confidence); `resize` None: the model's preprocessing
    (Predictor.resize)."""
    min_confidence = predictor.min_confidence if min_confidence is None else min_confidence
    decode = partial(_decode_files, invert=invert, resize=resize or predictor.resize)
    infer = partial(_infer, top_k=top_k, min_confidence=min_confidence)
    yield from _pipeline(predictor, paths, pool, batch_size, decode, infer, decode_timeout)


def read_files(predictor, paths, pool=None, batch_size=256, invert="auto", min_confidence=DEFAULT_MIN_CONFIDENCE,
               length=None, decode_timeout=DEFAULT_DECODE_TIMEOUT):
    """Yield one reading row per path (mnist_predict.numbers), in the order of `paths`: the decode processes
    clean and cut each image into candidate digits, this one runs the model on them and picks the cuts."""
    decode = partial(_layout_files, invert=invert, for_line_reader=predictor.line_reader() is not None)
    infer = partial(read_batch, min_confidence=min_confidence, length=length)
    yield from _pipeline(predictor, paths, pool, batch_size, decode, infer, decode_timeout)


def _pipeline(predictor, paths, pool, batch_size, decode_files, infer, decode_timeout):
    decode = partial(_decode_batch, pool, decode_files=decode_files, timeout=decode_timeout)
    pending = deque()
    for start in range(0, len(paths), batch_size):
        batch = paths[start : start + batch_size]
        pending.append((batch, decode(batch, chunk=chunk_size(len(batch), batch_size))))
        if len(pending) > PREFETCH:
            yield from infer(predictor, *pending.popleft())
    while pending:
        yield from infer(predictor, *pending.popleft())


def chunk_size(count, batch_size):
    """Files per decode task: at most an eighth of a batch, so that a task's hand-off costs little beside
    its decoding, and small enough that every core gets several tasks of this batch. With chunks of 32, a
    folder of 150 photos made 5 tasks, and one of 2 workers decoded 3 of them while the other waited."""
    return max(1, min(batch_size // 8, -(-count // (CHUNKS_PER_CORE * files.usable_cpus()))))


def _decode_batch(pool, batch, decode_files, timeout, chunk):
    """A function returning the batch's (decoded, error) pairs; in a pool, the decoding starts at once."""
    if pool is None:
        return lambda: decode_files(batch)
    chunks = [batch[i : i + chunk] for i in range(0, len(batch), chunk)]
    # One task per chunk, each held to the per-file limit: a chunk of ordinary files ends far sooner.
    futures = [pool.schedule(decode_files, args=(part,), timeout=timeout) for part in chunks]

    def results():
        decoded = []
        for part, future in zip(chunks, futures):
            try:
                decoded += future.result()
            except (TimeoutError, ProcessExpired, Exception):
                # A file in the chunk hung or killed its worker: each file again, alone, so only it fails.
                decoded += [_decode_alone(pool, path, decode_files, timeout) for path in part]
        return decoded

    return results


def _decode_alone(pool, path, decode_files, timeout):
    future = pool.schedule(decode_files, args=([path],), timeout=timeout)
    try:
        return future.result()[0]
    except TimeoutError:
        return None, f"decode timed out after {timeout:g} s"
    except ProcessExpired as error:
        return None, f"the decoding process died ({_death(error.exitcode)})"
    except Exception as error:  # MemoryError under the worker's limit arrives here
        return None, image_io.describe(error)


def _death(exitcode):
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"{name}: out of memory?" if name == "SIGKILL" else name
    return f"exit code {exitcode}"


def _infer(predictor, batch, decoded, top_k, min_confidence):
    decoded = list(decoded())
    good = [pixels for pixels, _ in decoded if pixels is not None]
    probabilities = predictor.run(np.stack(good)) if good else np.zeros((0, len(predictor.labels)))
    ranked = iter(zip(np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k], probabilities))
    for path, (pixels, error) in zip(batch, decoded):
        if pixels is None:
            yield {"path": path, "top_k": [], "status": "error", "review": "", "error": error}
            continue
        order, row = next(ranked)
        top = [(int(label), predictor.labels[label], float(row[label])) for label in order]
        label, name, probability = top[0]
        yield {
            "path": path,
            "label": label,
            "class_name": name,
            "probability": probability,
            "top_k": top,
            "status": "ok",
            "review": "yes" if probability < min_confidence else "",
            "error": "",
        }


def read_batch(predictor, batch, decoded, min_confidence, length):
    """Rows of the readings of a batch: `decoded()` gives its (layout, error) pairs; every layout's candidates
    go to the model in one call. Predictor.read calls it too."""
    decoded = list(decoded())
    layouts = [layout for layout, _ in decoded if layout is not None]
    probabilities = predictor.run(np.concatenate([layout.inputs for layout in layouts])) if layouts else None
    reader = predictor.line_reader()
    line_outputs = iter(reader.run([image for layout in layouts for image, _ in layout.lines]) if reader else [])
    offset = 0
    for path, (layout, error) in zip(batch, decoded):
        if layout is None:
            yield {"path": path, "digits": [], "boxes": [], "status": "error", "review": "", "error": error}
            continue
        mine = probabilities[offset:offset + len(layout.inputs)]
        reading = numbers.choose(layout, mine, length)
        offset += len(layout.inputs)
        if reader:
            reading = numbers.with_line_reading(reading, layout, mine, [next(line_outputs) for _ in layout.lines],
                                                length, reader.calibration)
        yield reading_row(path, reading, min_confidence)


def reading_row(path, reading, min_confidence=DEFAULT_MIN_CONFIDENCE):
    """A row of `read`'s output for one numbers.Reading."""
    reasons = list(reading.review)
    if reading.confidence < min_confidence:
        reasons.insert(0, f"confidence below {min_confidence:g}")
    return {"path": path, "text": reading.text, "confidence": reading.confidence, "digits": reading.digits,
            "boxes": reading.boxes, "review": "yes" if reasons else "", "review_reason": "; ".join(reasons),
            "status": "ok", "error": ""}


def output_format(path):
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"--out must end in .csv or .jsonl, got {path}")
    return FORMATS[suffix]


@contextmanager
def atomic_writer(path, task="predict"):
    """Yield a write(row) function for `predict` or `read` rows; `path` appears only once complete, so it is
    never half written."""
    csv_file = output_format(path) == "csv"
    encode = {("predict", True): _csv_writer, ("predict", False): _jsonl_writer,
              ("read", True): _csv_reading_writer, ("read", False): _jsonl_reading_writer}[task, csv_file]
    with files.atomic_file(path) as file:
        yield encode(file)


def _csv_writer(file):
    writer = csv.DictWriter(file, COLUMNS)
    writer.writeheader()

    def write(row):
        # class names, not indices: "B:0.912345 8:0.051234" reads as the model's classes
        top = " ".join(f"{name}:{probability:.6f}" for _, name, probability in row["top_k"])
        probability = row.get("probability")
        writer.writerow(
            {**row, "top_k": top, "probability": "" if probability is None else f"{probability:.6f}"}
        )

    return write


def _jsonl_writer(file):
    def write(row):
        top = [
            {"label": label, "class_name": name, "probability": round(p, 6)}
            for label, name, p in row["top_k"]
        ]
        probability = row.get("probability")
        rounded = None if probability is None else round(probability, 6)
        record = {**dict.fromkeys(COLUMNS), **row, "probability": rounded, "top_k": top}
        file.write(json.dumps(record) + "\n")

    return write


def _csv_reading_writer(file):
    writer = csv.DictWriter(file, READ_COLUMNS)
    writer.writeheader()

    def write(row):
        confidence = row.get("confidence")
        writer.writerow({
            **dict.fromkeys(READ_COLUMNS, ""), **row,
            "confidence": "" if confidence is None else f"{confidence:.6f}",
            "digits": " ".join(f"{label}:{p:.6f}" for label, p in row["digits"]),
            "boxes": boxes_text(row["boxes"]),
        })

    return write


def boxes_text(boxes):
    """Digit boxes as a CSV cell: "x,y,w,h x,y,w,h"."""
    return " ".join(",".join(str(int(v)) for v in box) for box in boxes)


def _jsonl_reading_writer(file):
    def write(row):
        confidence = row.get("confidence")
        record = {**dict.fromkeys(READ_COLUMNS), **row,
                  "confidence": None if confidence is None else round(confidence, 6),
                  "digits": [{"label": label, "probability": round(p, 6)} for label, p in row["digits"]],
                  "boxes": [[int(v) for v in box] for box in row["boxes"]]}
        file.write(json.dumps(record) + "\n")

    return write


@dataclass
class Summary:
    files: int
    output: str
    succeeded: int = 0
    failed: int = 0
    review: int = 0  # succeeded, but flagged for review
    seconds: float = 0.0
    histogram: Counter = field(default_factory=Counter)  # class name -> files predicted as it
    skipped: Counter = field(default_factory=Counter)  # reason -> entries of the folders left out of `files`

    @property
    def images_per_second(self):
        return self.files / self.seconds if self.seconds else 0.0

    def as_dict(self):
        return {
            "files": self.files,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "review": self.review,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "histogram": dict(self.histogram),
            "skipped": dict(self.skipped),
            "output": self.output,
        }


def predict_to_file(predictor, paths, out, on_row=None, skipped=None, task="predict", **options):
    """Predict (task="read": read numbers in) `paths` into the file `out` and return the summary; options
    go to predict_files (read_files), and `skipped` (from list_images) goes into the summary. A reading's
    histogram counts its digits."""
    histogram = Counter(dict.fromkeys(predictor.labels, 0)) if task == "predict" else Counter()
    summary = Summary(len(paths), os.path.abspath(out), histogram=histogram, skipped=Counter(skipped or {}))
    start = time.perf_counter()
    rows = (predict_files if task == "predict" else read_files)(predictor, paths, **options)
    with atomic_writer(out, task) as write:
        for row in rows:
            write(row)
            if row["status"] == "ok":
                summary.succeeded += 1
                summary.review += row["review"] == "yes"
                summary.histogram[row["class_name"] if task == "predict" else count(len(row["digits"]), "digit")] += 1
            else:
                summary.failed += 1
            if on_row:
                on_row(row)
    summary.seconds = time.perf_counter() - start
    return summary
