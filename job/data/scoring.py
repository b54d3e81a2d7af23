"""`mnist-job score`: the accuracy of a predictions file against the labels its file paths carry.

How a row's true class is found, first rule that applies:
1. Class folder: the file lies directly in a folder named as one of the model's classes (`B/x.png`, or
   `T-shirt-top/x.png` for "T-shirt/top"), as `mnist-job images --layout classes` and `train --data FOLDER`
   lay them out. A class folder beats a number in the file name: `3/IMG_0065.jpg` is a 3.
2. Name ending: the file's name ends in `_<label index>` (`00042_7.png`), as `mnist-job images` names
   them; the index must be one of the model's (with leading zeros it is a camera counter, not a label).
3. Otherwise the row has no label and is not scored, but counted.

A folder beside class folders that is not itself a class (`Z/` beside `A/` ... `Y/` for a model that knows
A-Y) holds images of a class the model does not know: counted and named, never scored as right.

The class folders are told apart by the model's label set, which comes from `--model` (an export folder, its
manifest or model file, or a run directory), or from the `<predictions>.shard.json` that `--shard` writes.
Without it, rows in folders that name no class predicted anywhere in the file are ambiguous (a class the
model never predicts, or an ordinary folder?), and `score` refuses rather than guess.

A file of `mnist-predict read` (a `text` column) is scored against the number its file name ends in,
`_<digits>` (`00007_04127.jpg` is 04127, as `mnist-job images --numbers` names them): whole numbers, and
digits matched in order.

    mnist-job score predictions.csv --model runs/demo/export
    mnist-job score numbers.csv
"""

import csv
import difflib
import json
from pathlib import Path

from job.data.image_sets import folder_name
from job.errors import JobError


def read_rows(path):
    path = Path(path)
    if not path.is_file():
        raise JobError(f"{path}: no such predictions file")
    try:
        with open(path, newline="") as f:
            rows = [json.loads(line) for line in f if line.strip()] if path.suffix in (".jsonl", ".ndjson") \
                else list(csv.DictReader(f))
    except (ValueError, csv.Error, UnicodeDecodeError) as e:
        raise JobError(f"{path}: not a predictions file ({e})") from None
    if rows and (not isinstance(rows[0], dict) or "path" not in rows[0]):
        raise JobError(f"{path}: not a predictions file (no 'path' column)")
    return rows


def model_labels(model):
    """The class names of a model: an export folder, a manifest.json, a model file with a manifest beside it,
    or a run directory (its config.json, or its export's manifest)."""
    path = Path(model)
    candidates = ([path] if path.name.endswith(".json") else
                  [path / "manifest.json", path / "export" / "manifest.json", path / "config.json"] if path.is_dir()
                  else [path.with_name("manifest.json")])
    for candidate in candidates:
        if candidate.is_file():
            try:
                labels = json.loads(candidate.read_text()).get("labels")
            except (ValueError, AttributeError):
                raise JobError(f"{candidate}: not valid JSON") from None
            if isinstance(labels, list) and labels:
                return [str(label) for label in labels]
    if path.suffix == ".onnx" and path.is_file():
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if "labels" in props:
            return [str(label) for label in json.loads(props["labels"])]
    raise JobError(f"--model {model}: no labels found (looked for a manifest.json, a run's config.json, or an "
                   "ONNX file's labels metadata)")


def recorded_labels(path):
    """The label set that `mnist-predict --shard` recorded beside its output, or None."""
    record = Path(f"{path}.shard.json")
    try:
        labels = json.loads(record.read_text())["options"]["labels"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [str(label) for label in labels] if isinstance(labels, list) else None


def index_ending(file, classes):
    """The label index in a name ending `_<n>`, or None: n is written without leading zeros, and is one of
    the model's `classes` label indices when they are known."""
    ending = Path(file).stem.rsplit("_", 1)
    if len(ending) != 2 or not ending[1].isdigit() or (len(ending[1]) > 1 and ending[1][0] == "0"):
        return None
    index = int(ending[1])
    return index if classes is None or index < classes else None


def truths(rows, labels):
    """(kind, value) for each row: ("class", name), ("index", n), ("unknown", folder) or None.

    `labels` is the model's label set, or None when unknown: then a folder is a class folder only if the file
    predicts that class somewhere, and JobError is raised where that leaves a row's label open."""
    folders = {folder_name(name): name for name in (labels or [])}
    if labels is None:
        folders = {folder_name(row["class_name"]): row["class_name"] for row in rows if row.get("class_name")}
    parents = {Path(row["path"]).parent for row in rows}
    # folders that hold class folders: any other folder in them is a class folder too, of a class unknown here
    homes = {parent.parent for parent in parents if parent.name in folders}
    out, ambiguous = [], set()
    for row in rows:
        folder = Path(row["path"]).parent
        index = index_ending(row["path"], len(labels) if labels else None)
        if folder.name in folders:
            out.append(("class", folders[folder.name]))
        elif folder.parent in homes and folder != folder.parent:
            if labels is None:
                ambiguous.add(folder.name)
            out.append(("unknown", folder.name))
        elif index is not None:
            out.append(("index", index))
        else:
            out.append(None)
    if ambiguous:
        names = ", ".join(sorted(ambiguous)[:5]) + (", ..." if len(ambiguous) > 5 else "")
        raise JobError(f"rows lie in class folders ({names}) that name no class predicted in this file: a class "
                       "the model never predicts, or not a class at all? Pass --model EXPORT_DIR (its manifest "
                       "lists the model's labels) so that score can tell")
    return out


def score_predictions(path, labels=None):
    """Accuracy of a predictions CSV or JSONL against the labels in its file paths (see the module's rules).

    `labels`: the model's class names; default: those recorded beside the file by --shard, if any. Returns a
    dict: files, labelled, unlabelled, unknown_class (files in folders of classes the model does not know,
    not scored) and its folders, predicted (ok rows with a label), errors (labelled error rows), review,
    correct, accuracy_predicted (over the predicted rows), accuracy_labelled (over every labelled file, an
    error counting as wrong) and accuracy_unflagged (over the predicted rows not flagged for review)."""
    rows = read_rows(path)
    if rows and "text" in rows[0]:
        return score_readings(path, rows)
    labels = labels or recorded_labels(path)
    counts = dict(files=len(rows), labelled=0, unknown_class=0, predicted=0, errors=0, review=0, correct=0,
                  unflagged=0, unflagged_correct=0)
    unknown = set()
    for row, right in zip(rows, truths(rows, labels)):
        if right is None:
            continue
        kind, value = right
        if kind == "unknown":
            counts["unknown_class"] += 1
            unknown.add(value)
            continue
        counts["labelled"] += 1
        if row.get("status") != "ok":
            counts["errors"] += 1
            continue
        counts["predicted"] += 1
        hit = value == (int(row["label"]) if kind == "index" else row["class_name"])
        counts["correct"] += hit
        if row.get("review") == "yes":
            counts["review"] += 1
        else:
            counts["unflagged"] += 1
            counts["unflagged_correct"] += hit
    if not counts["labelled"]:
        raise JobError(f"{path}: no row lies in a class folder or has a name ending in _<label>")
    ratio = lambda a, b: round(a / b, 6) if b else None  # noqa: E731
    return {**{k: v for k, v in counts.items() if k != "unflagged_correct"},
            "unlabelled": counts["files"] - counts["labelled"] - counts["unknown_class"],
            "unknown_folders": sorted(unknown), "labels": labels,
            "accuracy_predicted": ratio(counts["correct"], counts["predicted"]),
            "accuracy_labelled": ratio(counts["correct"], counts["labelled"]),
            "accuracy_unflagged": ratio(counts["unflagged_correct"], counts["unflagged"])}


def score_readings(path, rows):
    """Whole-number accuracy of `mnist-predict read` rows against the number in each file name
    (`<anything>_<digits>.<suffix>`). Returns a dict: files, labelled, read (ok rows), errors, review,
    correct, accuracy_labelled (an error counts as wrong), accuracy_read, accuracy_unflagged, accepted_wrong
    (ok, not flagged and wrong, a share of the labelled rows) and digit_accuracy (digits right in order)."""
    counts = dict(files=len(rows), labelled=0, read=0, errors=0, review=0, correct=0, unflagged=0,
                  unflagged_correct=0, accepted_wrong=0, digits=0, digits_correct=0)
    for row in rows:
        truth = Path(row["path"]).stem.rpartition("_")[2]
        if "_" not in Path(row["path"]).stem or not truth.isdigit():
            continue
        counts["labelled"] += 1
        counts["digits"] += len(truth)
        if row.get("status") != "ok":
            counts["errors"] += 1
            continue
        text = row.get("text") or ""
        counts["read"] += 1
        hit = text == truth
        counts["correct"] += hit
        matcher = difflib.SequenceMatcher(None, truth, text, autojunk=False)
        counts["digits_correct"] += sum(block.size for block in matcher.get_matching_blocks())
        if row.get("review") == "yes":
            counts["review"] += 1
        else:
            counts["unflagged"] += 1
            counts["unflagged_correct"] += hit
            counts["accepted_wrong"] += not hit
    if not counts["labelled"]:
        raise JobError(f"{path}: no row has a file name ending in _<number>, as `mnist-job images --numbers` names them")
    ratio = lambda a, b: round(a / b, 6) if b else None  # noqa: E731
    return {"kind": "numbers", **{k: counts[k] for k in ("files", "labelled", "read", "errors", "review", "correct",
                                                         "unflagged")},
            "unlabelled": counts["files"] - counts["labelled"],
            "accuracy_labelled": ratio(counts["correct"], counts["labelled"]),
            "accuracy_read": ratio(counts["correct"], counts["read"]),
            "accuracy_unflagged": ratio(counts["unflagged_correct"], counts["unflagged"]),
            "accepted_wrong": ratio(counts["accepted_wrong"], counts["labelled"]),
            "digit_accuracy": ratio(counts["digits_correct"], counts["digits"])}
