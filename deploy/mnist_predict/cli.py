"""`mnist-predict`: batch-predict images with an exported ONNX or LiteRT model, look at what it saw, check its
parity.

`app` is a Typer app whose first argument is a command (`check`, `preview`) or the IMAGES of a prediction,
so both `mnist-predict IMAGES --model ...` and `mnist-predict check --model ...` work, and so does mounting
it elsewhere: `mnist_job_app.add_typer(app, name="predict")` gives `mnist-job predict IMAGES ...`.
Onnxruntime is imported only when a command runs, so `--help` stays fast.
"""

import json
import os
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from .files import MAX_MODEL_MB
from .review import DEFAULT_MIN_CONFIDENCE
from .wording import count

SMALL_RUN = 8  # files: this many or fewer are decoded in the main process

try:  # recent Typer vendors click as typer._click; older releases depend on click itself
    from typer._click.exceptions import ClickException, UsageError as ClickUsageError
except ImportError:
    from click.exceptions import ClickException, UsageError as ClickUsageError

EXIT_CODES = (
    "Exit codes: 0 every file was predicted (check: parity holds); "
    "1 check found a parity mismatch, or the output could not be written; "
    "2 usage error: a bad option, a missing model or one that is not ONNX or LiteRT, a model input other than "
    "(N, 28, 28), "
    "outputs that are not probabilities, a manifest sha256 mismatch, or no files matched; "
    "3 some files failed: each becomes a row with status 'error' and a one-line reason, and the "
    "batch still finishes; "
    "130 interrupted: nothing is written."
)
BAD_FILES = (
    "Zero-byte, truncated, corrupt, non-image and unreadable files, images over 4096x4096 pixels "
    "(decompression bombs), images with no ink (\"no digit found\"), files slower to decode than "
    "--decode-timeout and files whose decoding process dies (out of memory) become error rows. Rows whose "
    "top probability is below --min-confidence get review=yes."
)


class PredictByDefault(TyperGroup):
    """Treats any first argument other than a command name as IMAGES for `predict`. A first argument that
    names both a command and a file or folder here is refused: a folder of bank cheques named `check` must
    not get a parity check instead of its predictions."""

    def parse_args(self, ctx, args):
        if args and args[0] in self.commands and args[0] != "predict" and os.path.lexists(args[0]):
            raise ClickUsageError(f"'{args[0]}' names both a command and a file or folder here: to predict the "
                                  f"folder, write ./{args[0]}; to run the command, run it from another folder")
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["predict", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=PredictByDefault,
    help="Predict digits (or any 28x28 classes) in image files with an exported ONNX or LiteRT model, "
    "without TensorFlow: onnxruntime runs model.onnx, ai-edge-litert (pip install './deploy\\[litert]') runs "
    "model.tflite. `mnist-predict IMAGES --model model.onnx` predicts (photos and scans are cleaned "
    "and framed the MNIST way first); `mnist-predict read IMAGES --model model.onnx` reads whole numbers (a "
    "digit model); `mnist-predict preview IMAGES --model model.onnx` draws what the model saw; "
    "`mnist-predict check --model model.onnx` verifies parity with the export; `mnist-predict merge` joins "
    "the outputs of --shard runs.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    subcommand_metavar="IMAGES... --model MODEL | read IMAGES... --model MODEL | preview IMAGES... --model MODEL | "
    "check --model MODEL | merge SHARD_OUTPUTS... --out FILE",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Invert(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


class Resize(str, Enum):
    mnist = "mnist"
    stretch = "stretch"
    none = "none"


ModelOption = Annotated[
    Path,
    typer.Option(
        "--model", "-m", help="Exported model.onnx or model.tflite (LiteRT, with the litert extra), or its export "
        "folder; a manifest.json beside it is verified."
    ),
]
ImagesArgument = Annotated[
    list[str],
    typer.Argument(metavar="IMAGES...", help="Folders, image files or quoted globs (or the shell's expansion)."),
]
InvertOption = Annotated[
    Invert,
    typer.Option(
        help="Polarity of the ink. auto: judged per image (dark ink on paper, or light on dark); "
        "always: dark ink on light paper (scans, photos); never: light ink on dark, as MNIST."
    ),
]
ResizeOption = Annotated[
    Optional[Resize],
    typer.Option(
        help="mnist: clean photos and scans (paper, light, shadows, rules, specks) and frame the ink as MNIST "
        "did (20x20, centre of mass), passing true 28x28 MNIST digits through; stretch: to 28x28 as is; "
        "none: 28x28 only.",
        show_default="the model's own, from its export: stretch for Fashion-MNIST, else mnist",
    ),
]
PinOption = Annotated[
    Optional[str],
    typer.Option(help="Refuse unless manifest.json has this sha256: pins a known export (the manifest lists every "
                 "file's sha256, so this pins the model too)."),
]
MaxModelOption = Annotated[
    float, typer.Option(min=0.001, help="Refuse a model file larger than this many MB, before loading it.")
]
MinConfidenceOption = Annotated[
    Optional[float],
    typer.Option(min=0.0, max=1.0, help="Flag rows whose top probability is below this for review. [default: the "
                 f"review threshold export chose for the model (--review-data), else {DEFAULT_MIN_CONFIDENCE:g}]"),
]
# The options `predict` and `read` share (their batch runs are one code path, _batch).
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Images per model call.")]
# read: 16 images make about 500 candidate digits, a model call big enough to run at full speed, and the
# last batch's model call and search, which wait for all its images, take little time after the decoding ends
# (with 256, 0.3 s of a 2 s folder of 100 photos ran on one core).
READ_BATCH_SIZE = 16
WorkersOption = Annotated[
    Optional[int],
    typer.Option(min=0, help=f"Decode processes; 0 (or {SMALL_RUN} files or fewer) decodes in this process. "
                 "[default: CPUs]"),
]
RecursiveOption = Annotated[bool, typer.Option(help="Include subfolders (and ** in globs).")]
DecodeTimeoutOption = Annotated[
    Optional[float],
    typer.Option(min=0.1, help="Seconds a file may take to decode; a slower one becomes an error row, and its "
                 "worker is replaced. Needs decode workers: refused with --workers 0. [default: 5]"),
]
ThreadsOption = Annotated[
    Optional[int],
    typer.Option(min=1, help="Inference threads (onnxruntime or LiteRT). [default: CPUs this process may use]"),
]
ShardOption = Annotated[
    Optional[str],
    typer.Option(help="I/N: only this process's share of the files, 0 <= I < N (e.g. a pod index); join the "
                 "outputs with `merge`."),
]
SummaryJsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")]


@app.command(epilog=f"{BAD_FILES} {EXIT_CODES}")
def predict(
    images: ImagesArgument,
    model: ModelOption,
    out: Annotated[
        Optional[Path],
        typer.Option(help="predictions.csv or .jsonl, written atomically [default: predictions.csv]"),
    ] = None,
    batch_size: BatchSizeOption = 256,
    workers: WorkersOption = None,
    recursive: RecursiveOption = False,
    top_k: Annotated[int, typer.Option(min=1, help="Labels with probabilities per row.")] = 3,
    invert: InvertOption = Invert.auto,
    resize: ResizeOption = None,
    min_confidence: MinConfidenceOption = None,
    decode_timeout: DecodeTimeoutOption = None,
    threads: ThreadsOption = None,
    shard: ShardOption = None,
    max_model_mb: MaxModelOption = float(MAX_MODEL_MB),
    manifest_sha256: PinOption = None,
    as_json: SummaryJsonOption = False,
):
    """Predict every image in IMAGES; one row per file, in sorted path order.

    Example: mnist-predict scans/ --model export/model.onnx --out predictions.csv
    """
    options = dict(batch_size=batch_size, invert=invert.value, resize=resize and resize.value, top_k=top_k,
                   min_confidence=min_confidence)
    _batch("predict", images, model, out, options, workers, recursive, decode_timeout, threads, shard, max_model_mb,
           manifest_sha256, as_json)


READ_BAD_FILES = BAD_FILES.replace("no digit found", "no digits found").replace(
    "Rows whose top probability is below --min-confidence get review=yes.",
    "Readings whose confidence is below --min-confidence, that hold a '?' or whose count is outside --length get "
    "review=yes.")


@app.command(epilog=f"{READ_BAD_FILES} {EXIT_CODES}")
def read(
    images: ImagesArgument,
    model: ModelOption,
    out: Annotated[
        Optional[Path],
        typer.Option(help="numbers.csv or .jsonl, written atomically [default: numbers.csv]"),
    ] = None,
    length: Annotated[
        Optional[str],
        typer.Option(help="N or MIN-MAX digits (a meter: 6): readings of that length are preferred, others "
                     "flagged for review. Counts the digits of all lines together."),
    ] = None,
    min_confidence: Annotated[
        Optional[float],
        typer.Option(min=0.0, max=1.0, help="Flag readings whose confidence (the probability that the whole "
                     "number is right) is below this. [default: 0.97 where export fitted the confidence (an "
                     f"export with a line reader), else {DEFAULT_MIN_CONFIDENCE:g}]"),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(min=1, help="Images per model call (each gives the model about 30 candidate digits; small "
                     "batches let the model and the search run while the next images are cut)."),
    ] = READ_BATCH_SIZE,
    workers: WorkersOption = None,
    recursive: RecursiveOption = False,
    invert: InvertOption = Invert.auto,
    decode_timeout: DecodeTimeoutOption = None,
    threads: ThreadsOption = None,
    shard: ShardOption = None,
    max_model_mb: MaxModelOption = float(MAX_MODEL_MB),
    manifest_sha256: PinOption = None,
    as_json: SummaryJsonOption = False,
):
    """Read the whole number in every image of IMAGES: one row per file, in sorted path order.

    Columns: path; text, the digits left to right, leading zeros kept, "?" for ink that is not a digit; confidence,
    the probability that the whole reading is right (the digits' calibrated probabilities, times how sure the
    search is of the cuts; where the export has a line reader, fitted at export from both readers' confidences
    on numbers of held-out digits);
    digits, label:probability per digit; boxes, x,y,w,h per digit in the original image's pixels after its EXIF
    rotation; review (yes when the confidence is below --min-confidence, a piece is not a digit, or the count is
    outside --length) and review_reason; status and error. Ink on several lines is read line by line, top to
    bottom, the lines joined by a space. A blank page is an error row.

    Example: mnist-predict read meters/ --model export/model.onnx --length 6 --out numbers.csv
    """
    from . import numbers
    from .predictor import UsageError

    try:
        parsed = numbers.parse_length(length) if length is not None else None
    except ValueError as error:
        _fail(UsageError(str(error)))
    options = dict(batch_size=batch_size, invert=invert.value, min_confidence=min_confidence, length=parsed)
    _batch("read", images, model, out, options, workers, recursive, decode_timeout, threads, shard, max_model_mb,
           manifest_sha256, as_json)


def _batch(task, images, model, out, options, workers, recursive, decode_timeout, threads, shard, max_model_mb,
           manifest_sha256, as_json):
    """What predict and read share: listing, sharding, the session, progress, the summary and exit codes."""
    from . import batch, shards
    from .predictor import UsageError

    stem = "predictions" if task == "predict" else "numbers"
    try:
        if decode_timeout is not None and workers == 0:
            raise UsageError("--decode-timeout limits the decode workers, and --workers 0 decodes in this process: "
                             "leave one of them out")
        shard_index = shards.parse_shard(shard) if shard else None
        out = out or Path(f"{stem}.shard-{shard.replace('/', '-of-')}.csv" if shard else f"{stem}.csv")
        batch.output_format(out)
        listed, skipped = batch.list_images(images, recursive)
        paths = shards.take_shard(listed, *shard_index) if shard_index else listed
    except UsageError as error:
        _fail(error)
    options["decode_timeout"] = batch.DEFAULT_DECODE_TIMEOUT if decode_timeout is None else decode_timeout
    # a time limit asked for is kept even on a few files, which otherwise decode in this process, unlimited
    with _session(model, threads, workers, paths, max_model_mb, manifest_sha256,
                  keep_pool=decode_timeout is not None) as (predictor, pool):
        try:
            if task == "predict":
                _check_top_k(options["top_k"], predictor)
                if options["min_confidence"] is None:  # recorded as used, so shards merge by what they did
                    options["min_confidence"] = predictor.min_confidence
                options["resize"] = options["resize"] or predictor.resize
            else:
                predictor.check_digits()
                if options["min_confidence"] is None:
                    options["min_confidence"] = predictor.read_min_confidence()
        except UsageError as error:
            _fail(error)
        try:
            summary = _run_with_progress(batch.predict_to_file, predictor, paths, out, pool=pool, skipped=skipped, task=task,
                                         **options)
        except KeyboardInterrupt:
            _fail(f"interrupted; nothing was written to {out}", 130)
        except OSError as error:  # unreadable images are rows, so this is the output file
            _fail(f"cannot write {out}: {error.strerror or error}", 1)
        if shard_index:  # for `mnist-predict merge`
            kept = {name: options[name] for name in shards.ROW_OPTIONS if name in options}
            try:
                shards.write_record(out, shard_index, predictor.path, listed, summary.files,
                                    {**kept, "task": task, "labels": list(predictor.labels)})
            except OSError as error:
                _fail(f"cannot write {out}{shards.RECORD_SUFFIX}: {error.strerror or error}", 1)
    if as_json:
        print(json.dumps({**summary.as_dict(), "model": str(model), "shard": shard}))
    else:
        _print_summary(Console(), summary, task)
    raise typer.Exit(3 if summary.failed else 0)


def _check_top_k(top_k, predictor):
    classes = len(predictor.labels)
    if top_k > classes:
        _fail(f"--top-k {top_k}: the model has {classes} classes, so at most --top-k {classes}")


@contextmanager
def _session(model, threads, workers, paths, max_model_mb=float(MAX_MODEL_MB), manifest_sha256=None, keep_pool=False):
    """The decode pool and the onnxruntime session, with their failures as one-line errors."""
    from . import batch
    from .files import usable_cpus
    from .predictor import Predictor, UsageError

    if workers is None:
        # Every CPU decodes: onnxruntime's share is small, and its idle threads do not spin. Measured on 2
        # cores, 2 workers beat 1 by 40% on 28x28 PNGs and by 2x on phone photos (bench/README.md).
        workers = usable_cpus()
    if len(paths) <= SMALL_RUN:
        # starting worker processes would cost more than they save, unless a per-file time limit needs them
        workers = min(workers, len(paths)) if keep_pool else 0
    # The pool comes before the session: its workers are forked, which is safe only while
    # onnxruntime has not started its threads.
    with batch.decoder_pool(workers) as pool:
        try:
            yield Predictor(model, threads=threads, max_model_mb=max_model_mb, manifest_sha256=manifest_sha256), pool
        except UsageError as error:  # from the session, or the first batch's outputs
            _fail(error)


@app.command(epilog=EXIT_CODES)
def preview(
    images: ImagesArgument,
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="The contact sheet, a PNG written atomically.")] = Path("preview.png"),
    limit: Annotated[int, typer.Option(min=1, help="Images to draw.")] = 48,
    problems: Annotated[
        bool, typer.Option("--problems", help="Draw only rows flagged for review or failed.")
    ] = False,
    columns: Annotated[int, typer.Option(min=1, help="Cells per row.")] = 6,
    recursive: Annotated[bool, typer.Option(help="Include subfolders (and ** in globs).")] = False,
    invert: InvertOption = Invert.auto,
    resize: ResizeOption = None,
    min_confidence: MinConfidenceOption = None,
    workers: Annotated[Optional[int], typer.Option(min=0, help="Decode processes. [default: CPUs]")] = None,
    reading: Annotated[bool, typer.Option("--read", help="Draw readings of whole numbers, as `read` makes "
                                          "them: digit boxes, digits and their probabilities.")] = False,
    length: Annotated[Optional[str], typer.Option(help="With --read: N or MIN-MAX digits, as in `read`.")] = None,
):
    """Draw what the model saw: each original, the 28x28 input it got, the label and its probability; with
    --read, each original with its digit boxes, the digits as read and their probabilities.

    Review rows get an orange frame, error rows a red one and their reason.

    Example: mnist-predict preview photos/ --model export/model.onnx --out sheet.png --problems
    Example: mnist-predict preview --read meters/ --model export/model.onnx --length 6 --out readings.png
    """
    from . import batch, numbers, preview as sheet
    from .predictor import UsageError

    try:
        if Path(out).suffix.lower() != ".png":
            raise UsageError(f"--out must end in .png, got {out}")
        if length is not None and not reading:
            raise UsageError("--length applies to readings: add --read")
        if reading and resize not in (None, Resize.mnist):
            raise UsageError("--resize applies to single digits; --read cleans and cuts every image itself")
        parsed = numbers.parse_length(length) if length is not None else None
        paths = batch.find_images(images, recursive)
    except (UsageError, ValueError) as error:
        _fail(error)
    if not problems:
        paths = paths[:limit]
    with _session(model, None, workers, paths) as (predictor, pool):
        try:
            if reading:
                predictor.check_digits()
                found = batch.read_files(predictor, paths, pool=pool, invert=invert.value, length=parsed,
                                         min_confidence=predictor.read_min_confidence() if min_confidence is None
                                         else min_confidence)
            else:
                resize = resize.value if resize else predictor.resize
                found = batch.predict_files(predictor, paths, pool=pool, invert=invert.value, resize=resize,
                                            min_confidence=min_confidence)
            rows = sheet.pick(found, limit, problems)
        except UsageError as error:
            _fail(error)
        except KeyboardInterrupt:
            _fail(f"interrupted; nothing was written to {out}", 130)
    if not rows:
        print(f"nothing to draw: none of the {len(paths):,} files was flagged for review or failed")
        raise typer.Exit(0)
    try:
        if reading:
            sheet.reading_sheet(rows, out, min(columns, 3) if columns == 6 else columns)
        else:
            sheet.contact_sheet(rows, out, columns, invert.value, resize)
    except OSError as error:
        _fail(f"cannot write {out}: {error.strerror or error}", 1)
    review = sum(row["review"] == "yes" for row in rows)
    failed = sum(row["status"] == "error" for row in rows)
    print(f"{count(len(rows), 'image')} drawn to {out} ({review} flagged for review, {count(failed, 'error')})")


def _run_with_progress(run, predictor, paths, out, **options):
    stderr = Console(stderr=True)
    columns = (
        TextColumn("reading" if options.get("task") == "read" else "predicting"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
    )
    # Only on a terminal: in a log (a pod, a pipe) a progress bar is noise.
    with Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        task = progress.add_task("predict", total=len(paths))
        return run(predictor, paths, out, on_row=lambda row: progress.advance(task), **options)


class RateColumn(ProgressColumn):
    def render(self, task):
        return Text(f"{task.speed or 0:,.0f} images/s")


@app.command(epilog=EXIT_CODES)
def check(
    model: ModelOption,
    manifest_sha256: PinOption = None,
    reference: Annotated[
        Optional[Path], typer.Option(help="Reference from export. [default: parity.npz beside the model]")
    ] = None,
    atol: Annotated[float, typer.Option(help="Largest allowed |difference| for an fp32 model.")] = 1e-5,
    min_agreement: Annotated[
        float, typer.Option(help="Smallest argmax agreement for an int8 (*.int8.onnx) model.")
    ] = 0.99,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Inference threads (onnxruntime or LiteRT).")] = None,
    max_model_mb: MaxModelOption = float(MAX_MODEL_MB),
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
):
    """Compare the runtime's outputs on the export's reference inputs with the recorded Keras outputs; where the
    export holds a line reader (lines.onnx), its outputs on the lines its export gate read too
    (lines-parity.npz, held to --atol, every line read as the same text). Both must pass.

    Example: mnist-predict check --model export/model.onnx --manifest-sha256 3f9a...
    """
    from . import parity
    from .predictor import Predictor, UsageError

    try:
        predictor = Predictor(model, threads=threads, max_model_mb=max_model_mb, manifest_sha256=manifest_sha256)
        result = parity.check(predictor, reference, atol, min_agreement)
        line_reader = parity.check_line_reader_beside(predictor, atol)
    except UsageError as error:
        _fail(error)
    checked = isinstance(line_reader, parity.LineParityResult)
    passed = result.passed and (not checked or line_reader.passed)
    if as_json:
        found = {} if line_reader is None else {
            "line_reader": line_reader.as_dict() if checked else {"checked": False, "reason": line_reader}}
        print(json.dumps({**result.as_dict(), "model": str(model), **found, "passed": passed}))
    else:
        _print_parity(Console(), result, line_reader)
    raise typer.Exit(0 if passed else 1)


@app.command(epilog=EXIT_CODES)
def merge(
    outputs: Annotated[
        list[str],
        typer.Argument(metavar="SHARD_OUTPUTS...", help="The shards' --out files, or quoted globs (expanded here)."),
    ],
    out: Annotated[Path, typer.Option(help="The merged predictions.csv or .jsonl, written atomically.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
):
    """Merge the outputs of `mnist-predict --shard I/N` runs into one file, as one unsharded run writes it.

    Refuses (exit 2) a set with a shard missing or given twice, a path in two shards, or shards made with
    different models, options or file listings (each output's OUT.shard.json records them).

    Example: mnist-predict merge 'out/predictions-*.csv' --out predictions.csv
    """
    from . import shards
    from .predictor import UsageError

    try:
        rows, records = shards.merge(outputs, out)
    except UsageError as error:
        _fail(error)
    except OSError as error:
        _fail(f"cannot write {out}: {error.strerror or error}", 1)
    summary = {"rows": rows, "shards": len(records), "model_sha256": records[0]["model_sha256"],
               "output": str(Path(out).resolve())}
    if as_json:
        print(json.dumps(summary))
    else:
        print(f"{rows:,} rows from {len(records)} shards (model sha256 {records[0]['model_sha256'][:16]}...) -> {out}")


@app.command(epilog="Exit codes: 0 stopped with Ctrl-C; 2 not an export directory, the page or "
                    "onnxruntime-web missing (run `make web`), or the port is taken.")
def web(
    export_dir: Annotated[Path, typer.Argument(help="An export directory: model.onnx, manifest.json, parity.npz.")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens the page to your network.")] = "127.0.0.1",
    verbose: Annotated[bool, typer.Option("--verbose", help="Log every request.")] = False,
):
    """Serve the browser page with this export: draw digits, drop image files, check parity, in WebAssembly.

    The page runs model.onnx in onnxruntime-web and prepares images exactly as mnist-predict does
    (deploy/web/preprocess.js). Open the printed URL; a file:// page cannot load WebAssembly. Needs a checkout
    with `make web` run once (npm ci in deploy/web).

    Example: mnist-predict web runs/demo/export --port 8000
    """
    from . import web as page
    from .predictor import UsageError

    def ready(url):
        print(f"serving {export_dir} at {url}  (Ctrl-C stops)", flush=True)

    try:
        page.serve(export_dir, host=host, port=port, verbose=verbose, ready=ready)
    except UsageError as error:
        _fail(error)
    except OSError as error:
        _fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    except KeyboardInterrupt:
        raise typer.Exit(0)


def _fail(error, code=2):
    _print_error(error)
    raise typer.Exit(code)


def _print_error(message):
    # escape: a message may hold brackets, such as pip's './deploy[litert]', that Rich would take for markup
    Console(stderr=True).print(f"[red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


REVIEW_WHY = {"predict": "top probability below the threshold",
              "read": "low confidence, ink that is not a digit, or a count outside --length"}


def _print_summary(console, summary, task="predict"):
    from . import batch

    _print_pairs(
        console,
        ("files", f"{summary.files:,}"),
        ("succeeded", f"[green]{summary.succeeded:,}[/]"),
        ("review", f"[yellow]{summary.review:,}[/] ({REVIEW_WHY[task]})" if summary.review else "0"),
        ("failed", f"[red]{summary.failed:,}[/]" if summary.failed else "0"),
        ("images/s", f"{summary.images_per_second:,.0f}"),
        ("output", summary.output),
        *([("not listed", escape(batch.describe_skipped(summary.skipped)))] if summary.skipped else []),
    )
    title = "predicted labels" if task == "predict" else "digits per reading"
    histogram = Table("label" if task == "predict" else "read", "files", "", title=title, title_justify="left", box=None)
    most = max(summary.histogram.values(), default=0) or 1
    items = summary.histogram.items() if task == "predict" else sorted(summary.histogram.items(),
                                                                        key=lambda item: int(item[0].split()[0]))
    for name, count in items:
        histogram.add_row(name, f"{count:,}", "[cyan]" + "█" * round(30 * count / most) + "[/]")
    console.print(histogram)


def _print_parity(console, result, line_reader=None):
    fp32_rule, int8_rule = ("shown only", "applies") if result.quantized else ("applies", "shown only")
    pairs = [
        ("reference", f"{result.reference} ({result.rows} rows)"),
        ("max abs diff", f"{result.max_abs_diff:.3g} (atol {result.atol:g}, {fp32_rule})"),
        ("argmax agreement", f"{result.argmax_agreement:.4f} (min {result.min_agreement:g}, {int8_rule})"),
        ("test accuracy", "-" if result.accuracy is None else f"{result.accuracy:.4f}"),
        ("parity", _verdict(result.passed)),
    ]
    if isinstance(line_reader, str):
        pairs.append(("line reader", f"[yellow]{escape(line_reader)}[/]"))
    elif line_reader is not None:
        pairs += [
            ("line reader", f"{escape(line_reader.reference)} ({line_reader.lines} lines)"),
            ("  max abs diff", f"{line_reader.max_abs_diff:.3g} (atol {line_reader.atol:g})"),
            ("  read otherwise", f"{line_reader.texts_differ} of {line_reader.lines} lines"),
            ("  parity", _verdict(line_reader.passed)),
        ]
    _print_pairs(console, *pairs)


def _verdict(passed):
    return "[green]passed[/]" if passed else "[red]FAILED[/]"


def _print_pairs(console, *pairs):
    table = Table(show_header=False, box=None)
    for name, value in pairs:
        table.add_row(name, value)
    console.print(table)


def main(argv=None):
    """Console script: click's usage errors are printed as one line instead of a help panel."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = typer.main.get_command(app).main(args or ["--help"], "mnist-predict", standalone_mode=False)
    except ClickException as error:
        _print_error(error.format_message())
        code = error.exit_code
    except typer.Abort:
        code = 130
    sys.exit(code or 0)
