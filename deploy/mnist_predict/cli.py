"""`mnist-predict`: batch-predict images with an exported ONNX model, and check its parity.

`app` is a Typer app whose first argument is either `check` or the IMAGES of a prediction, so both
`mnist-predict IMAGES --model ...` and `mnist-predict check --model ...` work, and so does mounting it
elsewhere: `mnist_job_app.add_typer(app, name="predict")` gives `mnist-job predict IMAGES ...`.
Onnxruntime is imported only when a command runs, so `--help` stays fast.
"""

import json
import sys
from concurrent.futures.process import BrokenProcessPool
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
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

try:  # recent Typer vendors click as typer._click; older releases depend on click itself
    from typer._click.exceptions import ClickException
except ImportError:
    from click.exceptions import ClickException

EXIT_CODES = (
    "Exit codes: 0 every file was predicted (check: parity holds); "
    "1 check found a parity mismatch, or the run failed (a decode worker died, the output could not be "
    "written); "
    "2 usage error: a bad option, a missing or non-ONNX model, a model input other than (N, 28, 28), "
    "a manifest sha256 mismatch, or no files matched; "
    "3 some files failed: each becomes a row with status 'error' and a one-line reason, and the "
    "batch still finishes."
)
BAD_FILES = (
    "Zero-byte, truncated, corrupt, non-image and unreadable files, and images over 4096x4096 pixels "
    "(decompression bombs), become error rows."
)


class PredictByDefault(TyperGroup):
    """Treats any first argument other than a command name as IMAGES for `predict`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["predict", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=PredictByDefault,
    help="Predict digits (or any 28x28 classes) in image files with an exported ONNX model, "
    "without TensorFlow. `mnist-predict IMAGES --model model.onnx` predicts; "
    "`mnist-predict check --model model.onnx` verifies parity with the export.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    subcommand_metavar="IMAGES --model MODEL | check --model MODEL",
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
    Path, typer.Option("--model", "-m", help="Exported model.onnx; a manifest.json beside it is verified.")
]


@app.command(epilog=f"{BAD_FILES} {EXIT_CODES}")
def predict(
    images: Annotated[
        str, typer.Argument(metavar="IMAGES", help="A folder, a single image file, or a quoted glob.")
    ],
    model: ModelOption,
    out: Annotated[
        Optional[Path],
        typer.Option(help="predictions.csv or .jsonl, written atomically [default: predictions.csv]"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per onnxruntime call.")] = 256,
    workers: Annotated[
        Optional[int],
        typer.Option(
            min=0,
            help="Decode processes; 0 (or a single batch) decodes in this process. [default: CPUs - 1]",
        ),
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Include subfolders (and ** in globs).")] = False,
    top_k: Annotated[int, typer.Option(min=1, help="Labels with probabilities per row.")] = 3,
    invert: Annotated[
        Invert, typer.Option(help="auto inverts dark digits on a light background, judged by the border.")
    ] = Invert.auto,
    resize: Annotated[
        Resize,
        typer.Option(help="mnist: crop, fit 20x20, centre of mass; stretch: to 28x28; none: 28x28 only."),
    ] = Resize.mnist,
    threads: Annotated[
        Optional[int], typer.Option(min=1, help="onnxruntime threads. [default: CPUs this process may use]")
    ] = None,
    shard: Annotated[
        Optional[str],
        typer.Option(help="I/N: only this process's share of the files, 0 <= I < N (e.g. a pod index)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
):
    """Predict every image in IMAGES; one row per file, in sorted path order."""
    from . import batch
    from .predictor import Predictor, UsageError, available_cpus

    try:
        shard_index = batch.parse_shard(shard) if shard else None
        out = out or Path(
            f"predictions.shard-{shard.replace('/', '-of-')}.csv" if shard else "predictions.csv"
        )
        batch.output_format(out)
        paths = batch.find_images(images, recursive)
        if shard_index:
            paths = batch.take_shard(paths, *shard_index)
    except UsageError as error:
        _fail(error)
    if workers is None:  # one CPU stays with this process, for onnxruntime and the output
        workers = available_cpus() - 1
    if len(paths) <= batch_size:
        workers = 0  # one batch: starting worker processes would cost more than they save
    # The pool comes before the session: its workers are forked, which is safe only while
    # onnxruntime has not started its threads.
    with batch.decoder_pool(workers) as pool:
        try:
            predictor = Predictor(model, threads=threads)
        except UsageError as error:
            _fail(error)
        try:
            summary = _run_with_progress(
                batch.run,
                predictor,
                paths,
                out,
                pool=pool,
                batch_size=batch_size,
                invert=invert.value,
                resize=resize.value,
                top_k=top_k,
            )
        except BrokenProcessPool:
            _fail("a decode worker died (out of memory?); --workers 0 decodes in one process", 1)
        except OSError as error:  # unreadable images are rows, so this is the output file
            _fail(f"cannot write {out}: {error.strerror or error}", 1)
    if as_json:
        print(json.dumps({**summary.as_dict(), "model": str(model), "shard": shard}))
    else:
        _print_summary(Console(), summary)
    raise typer.Exit(3 if summary.failed else 0)


def _run_with_progress(run, predictor, paths, out, **options):
    stderr = Console(stderr=True)
    columns = (
        TextColumn("predicting"),
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
    reference: Annotated[
        Optional[Path], typer.Option(help="Reference from export. [default: parity.npz beside the model]")
    ] = None,
    atol: Annotated[float, typer.Option(help="Largest allowed |difference| for an fp32 model.")] = 1e-5,
    min_agreement: Annotated[
        float, typer.Option(help="Smallest argmax agreement for an int8 (*.int8.onnx) model.")
    ] = 0.99,
    threads: Annotated[Optional[int], typer.Option(min=1, help="onnxruntime threads.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
):
    """Compare onnxruntime's outputs on the export's reference inputs with the recorded Keras outputs."""
    from . import parity
    from .predictor import Predictor, UsageError

    try:
        result = parity.check(Predictor(model, threads=threads), reference, atol, min_agreement)
    except UsageError as error:
        _fail(error)
    if as_json:
        print(json.dumps({**result.as_dict(), "model": str(model)}))
    else:
        _print_parity(Console(), result)
    raise typer.Exit(0 if result.passed else 1)


def _fail(error, code=2):
    _print_error(error)
    raise typer.Exit(code)


def _print_error(message):
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)


def _print_summary(console, summary):
    _print_pairs(
        console,
        ("files", f"{summary.files:,}"),
        ("succeeded", f"[green]{summary.succeeded:,}[/]"),
        ("failed", f"[red]{summary.failed:,}[/]" if summary.failed else "0"),
        ("images/s", f"{summary.images_per_second:,.0f}"),
        ("output", summary.output),
    )
    histogram = Table("label", "files", "", title="predicted labels", title_justify="left", box=None)
    most = max(summary.histogram.values(), default=0) or 1
    for name, count in summary.histogram.items():
        histogram.add_row(name, f"{count:,}", "[cyan]" + "█" * round(30 * count / most) + "[/]")
    console.print(histogram)


def _print_parity(console, result):
    fp32_rule, int8_rule = ("shown only", "applies") if result.quantized else ("applies", "shown only")
    _print_pairs(
        console,
        ("reference", f"{result.reference} ({result.rows} rows)"),
        ("max abs diff", f"{result.max_abs_diff:.3g} (atol {result.atol:g}, {fp32_rule})"),
        ("argmax agreement", f"{result.argmax_agreement:.4f} (min {result.min_agreement:g}, {int8_rule})"),
        ("test accuracy", "-" if result.accuracy is None else f"{result.accuracy:.4f}"),
        ("parity", "[green]passed[/]" if result.passed else "[red]FAILED[/]"),
    )


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
