"""A run directory's files, read and written in one place (docs/artifacts.md documents each file and key).

A run is finished when model.keras exists. `train` writes it last, by an atomic rename, after metrics.json
and the plots, so a run killed at any earlier moment is unfinished, and `--resume` completes it:
- backup/ (Keras BackupAndRestore) holds the last finished epoch while training is under way;
- fit.json appears once training has ended (all epochs, or early stopping), before the results are written.

    from job.train import rundir
    rundir.is_finished("runs/demo"), rundir.read_history("runs/demo/history.csv")
"""

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

from mnist_predict.files import MAX_MODEL_MB, atomic_file, atomic_path, first_sentence

from job.errors import JobError

CONFIG, HISTORY, METRICS, MODEL = "config.json", "history.csv", "metrics.json", "model.keras"
LAST, BEST, BACKUP, FIT, PLOTS = "last.keras", "best.keras", "backup", "fit.json", "plots"
BASE = "base.keras"  # a fine-tuned run's starting model, a candidate for the kept one
# metrics.json holds these keys and no others (docs/artifacts.md lists them; a test compares).
METRICS_KEYS = ("test_loss", "test_accuracy", "per_class_accuracy", "confusion_matrix", "train_seconds",
                "samples_per_second", "epochs_run", "kept", "kept_epoch", "val_accuracy", "stopped_early",
                "params", "device")


def is_finished(run_dir):
    return (Path(run_dir) / MODEL).is_file()


def write_json(path, obj):
    """Write JSON by renaming a complete temporary file into place: never half written."""
    with atomic_file(path) as file:
        file.write(json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise JobError(f"{path}: missing") from None
    except ValueError as e:
        raise JobError(f"{path}: not valid JSON ({e})") from None


def read_history(path):
    """history.csv as a list of dicts (strings), one per epoch; [] when there is none yet."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def dedupe_history(path):
    """A kill between the CSV row and the backup repeats an epoch on resume; keep its last row."""
    rows = read_history(path)
    by_epoch = {row["epoch"]: row for row in rows}
    if len(by_epoch) == len(rows):
        return rows
    rows = sorted(by_epoch.values(), key=lambda r: int(r["epoch"]))
    with atomic_file(path) as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def save_model(model, path):
    """model.save to a temporary name, then rename: a kill leaves the old file or the new one."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def start(out, resume=False):
    """The run directory `out`, created and checked writable; refuses one that holds a finished run, or an
    unfinished one unless resuming it."""
    out = Path(out)
    if is_finished(out) and not resume:
        raise JobError(f"{out}: already holds a finished run; choose another --out")
    if (out / CONFIG).exists() and not resume:
        raise JobError(f"{out}: holds an unfinished run; add --resume to continue it, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise JobError(f"--out {out}: not writable ({e.strerror or e})") from None
    return out


def default_out(model):
    return Path("runs") / f"{model}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


def latest_unfinished(model=None):
    candidates = sorted(p.parent for p in Path("runs").glob(f"{model or '*'}-*/{CONFIG}")
                        if not is_finished(p.parent))
    if not candidates:
        raise JobError(f"--resume: no unfinished run{f' of {model}' if model else ''} under runs/; pass --out RUN_DIR")
    return candidates[-1]


def load_keras_model(path):
    """A .keras file, loaded for inference, with Keras's safe mode on (a Python lambda in a Lambda layer is
    refused: it could run any code); a bad file is a one-line JobError."""
    import zipfile

    import keras

    import job.train.losses  # noqa: F401  (registers the custom loss and metric the file may name)

    megabytes = Path(path).stat().st_size / 1e6 if Path(path).is_file() else 0
    if megabytes > MAX_MODEL_MB:
        raise JobError(f"{path} is {megabytes:,.0f} MB, over the {MAX_MODEL_MB} MB limit for a model")
    if not zipfile.is_zipfile(path):  # Keras would call a truncated file "not found"
        raise JobError(f"{path}: corrupt, not a complete .keras (zip) archive")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:
        raise JobError(f"{path}: cannot load Keras model: {first_sentence(e)}") from None


def load_run(run_dir):
    """A finished run's config, metrics and history, for comparisons; JobError when unfinished."""
    run_dir = Path(run_dir)
    if not is_finished(run_dir) or not (run_dir / METRICS).is_file():
        raise JobError(f"{run_dir}: not a finished run directory (no {MODEL} or {METRICS})")
    return {"dir": run_dir, "config": read_json(run_dir / CONFIG), "metrics": read_json(run_dir / METRICS),
            "history": read_history(run_dir / HISTORY)}


def run_dir_of(path):
    """A run directory given as itself or as its model.keras."""
    path = Path(path)
    return path.parent if path.name == MODEL and path.is_file() else path
