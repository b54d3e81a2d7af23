"""The review queue: the rows of a predictions file a person should look at, and their labels back into a
labelled folder that `mnist-job train --data` reads.

    mnist-predict photos/ --model runs/demo/export/model.onnx --out predictions.csv
    mnist-job review export predictions.csv --out queue/ --model runs/demo
    # fill in queue/review.csv's label column, or label queue/tasks.json in Label Studio and export it as JSON
    mnist-job review import queue/review.csv --into corrections/
    mnist-job train --init-from runs/demo --data corrections/ --out runs/demo-corrected

A queue of `read` rows (whole numbers) is labelled with the whole number; its import crops each digit from
the image by the boxes the reading found and files it under its digit, when the label has as many digits as
there are boxes.
"""

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from mnist_predict.batch import boxes_text
from mnist_predict.files import sha256

from job.data.image_sets import folder_name, publish_folder
from job.data.scoring import model_labels, read_rows, recorded_labels
from job.errors import JobError

COLUMNS = ("path", "predicted", "probability", "label", "review", "boxes")
META = "queue.json"  # what the queue came from: its labels, kind and source
SHEET_ROWS = 48  # preview.png shows the head of the queue


def queue_rows(predictions, every=False):
    """(kind, rows): the predictions file's rows as queue rows, flagged ones first, then (with `every`) the
    rest, each group by rising probability. Error rows have no prediction to correct and are left out."""
    rows = read_rows(predictions)
    kind = "read" if rows and "text" in rows[0] else "predict"
    base = Path(predictions).resolve().parent
    out = []
    for row in rows:
        if row.get("status") == "error":
            continue
        flagged = row.get("review") == "yes"
        if not (flagged or every):
            continue
        probability = float(row["confidence" if kind == "read" else "probability"])
        out.append({"path": str(source_path(row["path"], base)), "predicted": row["text" if kind == "read" else "class_name"],
                    "probability": f"{probability:.6f}", "label": "", "review": "yes" if flagged else "",
                    "boxes": as_text(row.get("boxes")) if kind == "read" else ""})
    out.sort(key=lambda r: (r["review"] != "yes", float(r["probability"])))
    return kind, out


def source_path(path, base):
    """A row's image as an absolute path: as given from the working directory, else beside the predictions."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (base / path).exists():
        return path.resolve()
    return (base / path).resolve()


def as_text(boxes):
    """A read row's boxes as its CSV holds them ("x,y,w,h x,y,w,h"), from CSV or JSONL ([[x, y, w, h], ...])."""
    return boxes_text(boxes) if isinstance(boxes, list) else boxes or ""


def parse_boxes(text):
    return [tuple(int(v) for v in box.split(",")) for box in text.split()]


def export_queue(predictions, out, model=None, every=False, overwrite=False):
    """Write QUEUE/review.csv, tasks.json (Label Studio tasks with the prediction as pre-annotation),
    label_config.xml (the Label Studio project they fit), preview.png and queue.json, published whole.
    Returns (out, counts)."""
    labels = model_labels(model) if model else recorded_labels(predictions)
    kind, rows = queue_rows(predictions, every)
    if not rows:
        raise JobError(f"{predictions}: no row to review ({'no readable row' if every else 'none is flagged'}; "
                       "--all queues every row)")

    def fill(tmp):
        with open(tmp / "review.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "tasks.json").write_text(json.dumps(label_studio_tasks(rows, kind), indent=1))
        (tmp / "label_config.xml").write_text(label_config(kind, labels))
        (tmp / META).write_text(json.dumps({"kind": kind, "labels": labels, "predictions": str(Path(predictions).resolve()),
                                            "rows": len(rows)}, indent=1))
        draw_sheet(rows[:SHEET_ROWS], kind, tmp / "preview.png")

    publish_folder(out, fill, overwrite)  # refuses a folder that is not empty: a queue's labels may be in it
    return Path(out), {"rows": len(rows), "flagged": sum(r["review"] == "yes" for r in rows), "kind": kind}


def label_studio_tasks(rows, kind):
    """Label Studio's JSON import format: each image by its local-files URL (start Label Studio with
    LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=/), the
    prediction as a pre-annotation (`predictions`, whose result names label_config.xml's controls)."""
    tasks = []
    for row in rows:
        if kind == "read":
            result = {"from_name": "number", "to_name": "image", "type": "textarea", "value": {"text": [row["predicted"]]}}
        else:
            result = {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [row["predicted"]]}}
        data = {"image": "/data/local-files/?d=" + quote(row["path"].lstrip("/")), "path": row["path"],
                "review": row["review"], **({"boxes": row["boxes"]} if kind == "read" else {})}
        tasks.append({"data": data,
                      "predictions": [{"model_version": "mnist-predict", "score": float(row["probability"]),
                                       "result": [result]}]})
    return tasks


def label_config(kind, labels):
    if kind == "read":
        control = '  <TextArea name="number" toName="image" maxSubmissions="1" placeholder="the whole number"/>'
    else:
        choices = "\n".join(f'    <Choice value="{name}"/>' for name in labels or [])
        control = f'  <Choices name="label" toName="image" choice="single" showInline="true">\n{choices}\n  </Choices>'
    return f'<View>\n  <Image name="image" value="$image" zoom="true"/>\n{control}\n</View>\n'


def draw_sheet(rows, kind, out):
    from mnist_predict.preview import contact_sheet, reading_sheet

    if kind == "read":
        reading_sheet([{"path": row["path"], "status": "ok", "review": row["review"], "text": row["predicted"],
                        "confidence": float(row["probability"]), "boxes": parse_boxes(row["boxes"]), "digits": [],
                        "review_reason": "", "error": ""} for row in rows], out)
    else:
        contact_sheet([{"path": row["path"], "status": "ok", "review": row["review"], "class_name": row["predicted"],
                        "probability": float(row["probability"])} for row in rows], out)


@dataclass
class Imported:
    """What an import did, file by file counted."""
    added: dict = field(default_factory=dict)  # class name: images added
    unlabelled: int = 0
    duplicates: int = 0  # the same content is in the folder already
    conflicts: list = field(default_factory=list)  # (path, label, the class folder that holds it already)
    mismatched: list = field(default_factory=list)  # read rows whose label's length is not the digits found
    missing: list = field(default_factory=list)  # images that are gone or unreadable

    def summary(self):
        return {"added": sum(self.added.values()), "by_class": dict(sorted(self.added.items())),
                "unlabelled": self.unlabelled, "duplicates": self.duplicates, "conflicts": len(self.conflicts),
                "mismatched": len(self.mismatched), "missing": len(self.missing),
                "problems": [f"{p}: {why}" for p, why in self.missing + self.mismatched]
                + [f"{p}: labelled {label}, but the same image is in {where}/ already" for p, label, where in self.conflicts]}


def labelled_rows(source):
    """(kind, [(path, label, boxes)]) from a queue's review.csv or a Label Studio JSON export."""
    source = Path(source)
    if not source.is_file():
        raise JobError(f"{source}: no such file")
    if source.suffix == ".json":
        try:
            tasks = json.loads(source.read_text())
        except ValueError as e:
            raise JobError(f"{source}: not JSON ({e})") from None
        if not isinstance(tasks, list):
            raise JobError(f"{source}: not a Label Studio export (a JSON list of tasks)")
        rows = [(task_path(task, source), annotation(task), task["data"].get("boxes", "")) for task in tasks]
        return ("read" if any("boxes" in task["data"] for task in tasks) else "predict"), rows
    with open(source, newline="") as file:
        reader = csv.DictReader(file)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise JobError(f"{source}: not a review queue (it needs the columns path and label)")
        rows = [(row["path"], (row["label"] or "").strip(), row.get("boxes") or "") for row in reader]
    return ("read" if any(boxes for _, _, boxes in rows) else "predict"), rows


def task_path(task, source):
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict) or not (data.get("path") or data.get("image")):
        raise JobError(f"{source}: a task without data.path or data.image: not a Label Studio export of a queue")
    if data.get("path"):
        return data["path"]
    from urllib.parse import unquote, urlparse

    url = urlparse(data["image"])
    return "/" + unquote(url.query.partition("d=")[2]) if url.query.startswith("d=") else data["image"]


def annotation(task):
    """The label of a task's last annotation that was not cancelled: its choice, or its text; '' if none."""
    for entry in reversed(task.get("annotations") or []):
        if entry.get("was_cancelled"):
            continue
        for result in entry.get("result") or []:
            value = result.get("value") or {}
            found = value.get("choices") or value.get("text")
            if found:
                return str(found[0]).strip()
    return ""


def import_queue(source, into, model=None, new_classes=False):
    """Add each labelled image of `source` (review.csv, or a Label Studio export of tasks.json) to
    INTO/<label>/, named by its content's sha256, so nothing is copied twice and no file is overwritten.
    Every label is checked before anything is copied. Returns Imported."""
    meta = queue_meta(source)
    kind, rows = labelled_rows(source)
    known = [str(d) for d in range(10)] if kind == "read" else model_labels(model) if model else meta.get("labels")
    if known is None and not new_classes:
        raise JobError(f"{source}: which labels does the model know? Pass --model RUN_OR_EXPORT (or --new-classes "
                       "to take every label as it is)")
    given = {label for _, label, _ in rows if label}
    if kind == "read":
        bad = sorted(label for label in given if not label.isdigit())
        if bad:
            raise JobError(f"{source}: a number's label holds digits alone, not {bad[0]!r}; nothing imported")
    elif not new_classes and given - set(known):
        unknown = sorted(given - set(known))
        raise JobError(f"{source}: labels the model does not know: {', '.join(unknown[:8])} (it knows "
                       f"{', '.join(known)}); correct them, or add --new-classes to train new classes; nothing imported")
    into = Path(into)
    present = existing_hashes(into)
    report = Imported()
    for path, label, boxes in rows:
        if not label:
            report.unlabelled += 1
            continue
        try:
            pieces = list(digit_crops(path, label, boxes)) if kind == "read" else [(label, Path(path).read_bytes(),
                                                                                       Path(path).suffix.lower())]
        except MismatchError as e:
            report.mismatched.append((path, str(e)))
            continue
        except OSError as e:
            report.missing.append((path, e.strerror or str(e)))
            continue
        for name, content, suffix in pieces:
            add(into, name, content, suffix, path, present, report)
    return report


class MismatchError(ValueError):
    pass


def queue_meta(source):
    meta = Path(source).with_name(META)
    try:
        return json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}


def existing_hashes(into):
    """{sha256: class folder} of every file already in INTO's class folders."""
    found = {}
    if into.is_dir():
        for path in sorted(into.glob("*/*")):
            if path.is_file() and not path.name.startswith("."):
                found.setdefault(sha256(path), path.parent.name)
    return found


def add(into, label, content, suffix, source, present, report):
    import hashlib

    digest = hashlib.sha256(content).hexdigest()
    folder = folder_name(label)
    if digest in present:
        if present[digest] == folder:
            report.duplicates += 1
        else:
            report.conflicts.append((source, label, present[digest]))
        return
    target = into / folder / f"{digest[:20]}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.write_bytes(content)
    try:
        os.link(temporary, target)  # fails rather than overwrite a file that is there
    except FileExistsError:
        report.duplicates += 1
        return
    finally:
        temporary.unlink()
    present[digest] = folder
    report.added[label] = report.added.get(label, 0) + 1


def digit_crops(path, label, boxes):
    """(digit, PNG bytes, ".png") for each box of a read row: the digit's box in the EXIF-turned original, with
    a margin of a quarter of its height, so the predictor frames it as it framed the digit when it read it."""
    import io

    from PIL import Image, ImageOps

    boxes = parse_boxes(boxes) if isinstance(boxes, str) else boxes
    if len(boxes) != len(label):
        raise MismatchError(f"labelled {label} ({len(label)} digits), but {len(boxes)} were found in it; crop and "
                            "file its digits by hand")
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        image.load()
    for digit, (x, y, w, h) in zip(label, boxes):
        margin = max(2, h // 4)
        crop = image.crop((max(0, x - margin), max(0, y - margin), min(image.width, x + w + margin),
                           min(image.height, y + h + margin)))
        buffer = io.BytesIO()
        crop.save(buffer, "PNG")
        yield digit, buffer.getvalue(), ".png"
