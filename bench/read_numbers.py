"""Reading whole numbers: accuracy per spacing and condition, letters refused, Tesseract side by side, speed.

    .venv/bin/python bench/numbers.py                    # ~4 min on 2 cores, and the best sample model once
    .venv/bin/python bench/numbers.py --full             # ~8 min: 200 numbers a condition, not 100
    .venv/bin/python bench/numbers.py --quick            # ~2 min: 20 images a condition, 3 epochs
    .venv/bin/python bench/numbers.py --model runs/demo/export/model.onnx

(bench/numbers.py runs this file; see there why the code lives here.)

Numbers of 2-8 of the sample's test digits (never trained on) are drawn by `job.data.number_images` with each
spacing of `SPACINGS` (loose, tight, touching, overlapping), as scans (cream paper, JPEG) and as phone
photos (grey paper, light ramp, noise, tilt, JPEG). Each folder goes through `mnist-predict read` as a user
runs it (a subprocess). Per condition: whole-number accuracy (an error row counts as wrong), per-digit
accuracy (digits matched in order), the accepted-wrong rate (rows ok, not flagged for review and wrong)
and the review rate; and the share that single-digit `mnist-predict` gives back ok and unflagged, one digit
of a number as the answer. Numbers written in digits of fonts training never saw (Liberation, in the pen
the letters are drawn with) stand in for a writer other than MNIST's. Numbers on a form's printed lines
(`job.data.number_images.FORMS`: underlined, in a comb field, in score boxes, in a box; half as many a row) are what
a number is written on when it is not blank paper.

Letters and symbols (A-Y, a-y, # + = % & ? @) come from fonts training never saw (Liberation; the model
trains on DejaVu) and from pen-stroke skeletons, drawn as scans and photos by `job.data.photos`. Each goes
through `mnist-predict` (single digits) and its top probability is the score: AUROC and FPR at 95% TPR
against the clean test digits, and the share accepted (ok, not flagged). Letters that are a digit's shape
when handwritten (O, l, S, ...: job.data.letters.DIGIT_SHAPED) are shown apart. Numbers with a letter in them
are read too: the row must be flagged.

Baseline: Tesseract 5 (Debian `tesseract-ocr`) on the same number images, `--psm 7` with a digits
whitelist; skipped with a note where it is not installed (`apt-get install -y tesseract-ocr`).

Speed: images/s of `read` and of `predict` (whole commands, as a user runs them) on the same photos, in turns:
the tight-spacing photo renders above, and 12-megapixel phone JPEGs of numbers. Each command also runs on the
folder's files three times over, and the images/s that twice the files add is the rate past the start: both
commands spend about 0.45 s starting (Python, onnxruntime, the models), which is a third of `predict`'s time
on 100 photos and nothing in a folder of thousands. The target is judged on that rate. Writes
bench/results/numbers.json.
"""

import csv
import difflib
import json
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from common import (BIN, RESULTS, best_sample_model, header, interleaved_medians, num, parse_args, print_table,
                    print_targets, target, write_results)

DEFAULT = {"per_condition": 100, "per_letters": 200, "mixed": 100, "repeats": 2, "photos_12mp": 24}
FULL = {**DEFAULT, "per_condition": 200, "per_letters": 400, "mixed": 200, "repeats": 3}
QUICK = {"per_condition": 20, "per_letters": 40, "mixed": 20, "repeats": 1, "photos_12mp": 4}
SCAN, PHOTO = "off-white", "phone"
# --min-confidence values whose accepted-wrong and review rates are shown: the fixed default (0.8), and the one
# export writes with a fitted confidence (0.97, job.export.reading_calibration.MIN_CONFIDENCE) among them
THRESHOLDS = (0.8, 0.9, 0.95, 0.97, 0.99)
DATA_VERSION = 4  # bump when job.data.number_images or job.data.letters change, so cached renders are made again


def render_number_file(job):
    from job.data.number_images import render_number

    folder, name, glyphs, spacing, condition, seed, *form = job
    image, suffix, _ = render_number(glyphs, spacing, condition, seed=seed, form=form[0] if form else None)
    path = folder / f"{name}{suffix}"
    image.save(path, quality=95) if suffix == ".jpg" else image.save(path)
    return path.name


def render_letter_file(job):
    from job.data.photos import render

    folder, name, glyph, condition, seed = job
    image, suffix = render(glyph, condition, seed=seed)
    path = folder / f"{name}{suffix}"
    image.save(path, quality=95) if suffix == ".jpg" else image.save(path)
    return path.name


def folders(plan):
    """{folder name: (path, {file name: truth})}, rendered once into bench/results/data/numbers-*/."""
    from job.data.datasets import load_dataset
    from job.data.letters import DIGIT_SHAPED, PEN_STROKES, TEST_CHARACTERS, draw_letter, fonts
    from job.data.number_images import FORMS, SPACINGS

    root = RESULTS / "data" / f"numbers-v{DATA_VERSION}-{plan['per_condition']}-{plan['per_letters']}"
    truth_file = root / "truth.json"
    if truth_file.is_file():
        return {name: (root / name, truth) for name, truth in json.loads(truth_file.read_text()).items()}
    shutil.rmtree(root, ignore_errors=True)
    data = load_dataset("mnist-sample")
    x, y = data.x_test, data.y_test
    rng = np.random.default_rng(2026)
    jobs, truths, letter_jobs = [], {}, []
    for spacing in SPACINGS:
        for condition in (SCAN, PHOTO):
            name = f"{spacing}-{'scan' if condition == SCAN else 'photo'}"
            (root / name).mkdir(parents=True)
            truths[name] = {}
            for i in range(plan["per_condition"]):
                idx = rng.integers(0, len(x), int(rng.integers(2, 9)))
                jobs.append((root / name, f"{i:04d}", list(x[idx]), spacing, condition, int(rng.integers(1 << 30))))
                truths[name][f"{i:04d}"] = "".join(map(str, y[idx]))
    # numbers with a letter standing in them: the reading must be flagged
    test_fonts = fonts("test")
    for condition in (SCAN, PHOTO):
        name = f"mixed-{'scan' if condition == SCAN else 'photo'}"
        (root / name).mkdir(parents=True)
        truths[name] = {}
        for i in range(plan["mixed"] // 2):
            idx = rng.integers(0, len(x), int(rng.integers(3, 7)))
            glyphs = list(x[idx])
            where = int(rng.integers(len(glyphs)))
            letters = [c for c in TEST_CHARACTERS if c not in DIGIT_SHAPED]
            char = letters[int(rng.integers(len(letters)))]
            glyphs[where] = draw_letter(char, rng, test_fonts[int(rng.integers(len(test_fonts)))] if test_fonts else None)
            jobs.append((root / name, f"{i:04d}", glyphs, ("loose", "tight")[i % 2], condition,
                         int(rng.integers(1 << 30))))
            text = "".join(map(str, y[idx]))
            truths[name][f"{i:04d}"] = text[:where] + "?" + text[where + 1:]
    # letters alone: fonts training never saw, and pen strokes; the clean digits they are scored against
    for kind, chars, font_files in (("letters-font", TEST_CHARACTERS, test_fonts), ("letters-pen", PEN_STROKES, [])):
        for condition in (SCAN, PHOTO):
            name = f"{kind}-{'scan' if condition == SCAN else 'photo'}"
            (root / name).mkdir(parents=True)
            truths[name] = {}
            for i in range(plan["per_letters"] // 2):
                char = chars[int(rng.integers(len(chars)))]
                glyph = draw_letter(char, rng, font_files[int(rng.integers(len(font_files)))] if font_files else None)
                letter_jobs.append((root / name, f"{i:04d}", glyph, condition, int(rng.integers(1 << 30))))
                truths[name][f"{i:04d}"] = char
    name = "digits-scan"
    (root / name).mkdir(parents=True)
    truths[name] = {}
    for i in range(plan["per_letters"]):
        k = int(rng.integers(len(x)))
        letter_jobs.append((root / name, f"{i:04d}", x[k], SCAN, int(rng.integers(1 << 30))))
        truths[name][f"{i:04d}"] = str(y[k])
    # numbers written in fonts training never saw (Liberation digits, in the letters' pen and wobble): a
    # writer's hand other than MNIST's; drawn from an rng of their own, so the renders above stay as they were
    font_rng = np.random.default_rng(2027)
    for condition in (SCAN, PHOTO) if test_fonts else ():
        name = f"fonts-{'scan' if condition == SCAN else 'photo'}"
        (root / name).mkdir(parents=True)
        truths[name] = {}
        for i in range(plan["per_condition"]):
            text = "".join(str(d) for d in font_rng.integers(0, 10, int(font_rng.integers(2, 9))))
            glyphs = [draw_letter(d, font_rng, test_fonts[int(font_rng.integers(len(test_fonts)))]) for d in text]
            jobs.append((root / name, f"{i:04d}", glyphs, ("loose", "tight")[i % 2], condition,
                         int(font_rng.integers(1 << 30))))
            truths[name][f"{i:04d}"] = text
    # numbers written on a form's printed lines (job.data.number_images.FORMS), half as many a row: the sample's
    # test digits again, from an rng of their own, so the renders above stay as they were
    form_rng = np.random.default_rng(2028)
    for form in FORMS:
        for condition in (SCAN, PHOTO):
            name = f"form-{form}-{'scan' if condition == SCAN else 'photo'}"
            (root / name).mkdir(parents=True)
            truths[name] = {}
            for i in range(plan["per_condition"] // 2):
                idx = form_rng.integers(0, len(x), int(form_rng.integers(2, 9)))
                jobs.append((root / name, f"{i:04d}", list(x[idx]), ("loose", "tight")[i % 2], condition,
                             int(form_rng.integers(1 << 30)), form))
                truths[name][f"{i:04d}"] = "".join(map(str, y[idx]))
    print(f"rendering {len(jobs) + len(letter_jobs):,} images into {root} ...", flush=True)
    with ProcessPoolExecutor() as pool:
        names = list(pool.map(render_number_file, jobs, chunksize=16))
        letter_names = list(pool.map(render_letter_file, letter_jobs, chunksize=16))
    for job, file_name in zip(jobs + letter_jobs, names + letter_names):
        folder_truth = truths[job[0].name]
        folder_truth[file_name] = folder_truth.pop(job[1])
    truth_file.write_text(json.dumps(truths))
    return {name: (root / name, truth) for name, truth in truths.items()}


def phone_photo_file(job):
    from job.data.number_images import render_number
    from job.data.photos import frame_size, full_size

    path, glyphs, seed = job
    small, _, _ = render_number(glyphs, "tight", "phone", seed=seed, scale=6)
    side = frame_size(12)[0] * 0.7 / small.width  # the number across 70% of the frame
    path.write_bytes(full_size(small, np.random.default_rng(seed), 12, side))
    return path.name


def phone_photos(count):
    """`count` 12-megapixel phone JPEGs of numbers (4000x3000, the number across 70% of the frame), once."""
    from job.data.datasets import load_dataset

    folder = RESULTS / "data" / f"numbers-v{DATA_VERSION}-12mp-{count}"
    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    x = load_dataset("mnist-sample").x_test
    rng = np.random.default_rng(12)
    jobs = [(folder / f"{i:03d}.jpg", list(x[rng.integers(0, len(x), int(rng.integers(3, 9)))]), i)
            for i in range(count)]
    print(f"writing {count} 12-megapixel photos of numbers to {folder} ...", flush=True)
    with ProcessPoolExecutor() as pool:
        list(pool.map(phone_photo_file, jobs))
    (folder / ".complete").write_text("")
    return folder


def run_tool(*args):
    result = subprocess.run([str(BIN / "mnist-predict"), *map(str, args)], capture_output=True, text=True)
    if result.returncode not in (0, 3):
        raise SystemExit(f"mnist-predict {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def rows_of(path):
    with open(path, newline="") as file:
        return {Path(row["path"]).name: row for row in csv.DictReader(file)}


def digit_hits(truth, text):
    """Digits read right, matched in order (a dropped or an extra digit costs only itself)."""
    matcher = difflib.SequenceMatcher(None, truth, text, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


def evaluate_reads(model, path, truth, tmp):
    out = tmp / f"{path.name}.csv"
    run_tool("read", path, "--model", model, "--out", out)
    rows = rows_of(out)
    right = accepted_wrong = review = hits = total = 0
    at = {t: [0, 0, 0] for t in THRESHOLDS}  # --min-confidence t: [accepted wrong, flagged, flagged but right]
    for name, want in truth.items():
        row = rows[name]
        text = row["text"] if row["status"] == "ok" else None
        right += text == want
        flagged = row["review"] == "yes" or row["status"] != "ok"
        review += flagged
        accepted_wrong += not flagged and text != want
        hits += digit_hits(want, text or "")
        total += len(want)
        # flagged for a reason other than the confidence (not a digit, a length), or not read at all
        other = row["status"] != "ok" or any(not reason.startswith("confidence below")
                                             for reason in row["review_reason"].split("; ") if reason)
        for t in THRESHOLDS:
            flagged_at = other or float(row["confidence"]) < t
            at[t][0] += not flagged_at and text != want
            at[t][1] += flagged_at
            at[t][2] += flagged_at and text == want
    n = len(truth)
    return {"accuracy": right / n, "digit_accuracy": hits / total, "accepted_wrong": accepted_wrong / n,
            "review_rate": review / n, "files": n,
            "at_threshold": {str(t): {"accepted_wrong": wrong / n, "review_rate": flagged / n,
                                      "flagged_right": flagged_right / n}
                             for t, (wrong, flagged, flagged_right) in at.items()}}


def top_probabilities(model, path, tmp):
    """{file name: (top probability, accepted, label)} of single-digit predict; an error row scores 0."""
    out = tmp / f"{path.name}-predict.csv"
    run_tool(path, "--model", model, "--out", out, "--top-k", "1")
    return {name: (float(row["probability"] or 0), row["status"] == "ok" and row["review"] != "yes", row["label"])
            for name, row in rows_of(out).items()}


def auroc(positive, negative):
    """P(a digit scores above a letter), ties counting half: the Mann-Whitney form of the ROC area."""
    scores = np.concatenate([positive, negative])
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable") + 1.0
    for value in np.unique(scores):  # average ranks for ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fpr_at_95_tpr(positive, negative):
    threshold = np.percentile(positive, 5)  # 95% of digits score at or above it
    return float(np.mean(np.asarray(negative) >= threshold))


def tesseract_one(path):
    result = subprocess.run(["tesseract", str(path), "stdout", "--psm", "7", "-c",
                             "tessedit_char_whitelist=0123456789"], capture_output=True, text=True)
    return "".join(result.stdout.split())


def evaluate_tesseract(path, truth):
    files = sorted(truth)
    with ProcessPoolExecutor() as pool:
        texts = list(pool.map(tesseract_one, [path / f for f in files], chunksize=8))
    right = sum(t == truth[f] for f, t in zip(files, texts))
    hits = sum(digit_hits(truth[f], t) for f, t in zip(files, texts))
    return {"accuracy": right / len(files), "digit_accuracy": hits / sum(len(truth[f]) for f in files)}


def main():
    args = parse_args(__doc__, **{
        "--model": {"help": "the model.onnx to read with [default: cnn-bn-aug trained on the sample, cached]"},
        "--full": {"action": "store_true", "help": "200 numbers a condition and 400 letters a set"}})
    plan = QUICK if args.quick else FULL if args.full else DEFAULT
    header("numbers: reading whole numbers, refusing letters", args.quick)
    model = Path(args.model) if args.model else best_sample_model(args.quick) / "export" / "model.onnx"
    data = folders(plan)
    tmp = Path(tempfile.mkdtemp(prefix="numbers-"))
    numbers_ = [name for name in data if not name.startswith(("letters-", "digits-"))]
    reads = {name: evaluate_reads(model, *data[name], tmp) for name in numbers_}
    # the same numbers through single-digit predict: a row that comes back ok and unflagged is one digit of a
    # number given as the answer (the "42" read as a confident 2)
    as_one = {name: float(np.mean([ok for _, ok, _ in top_probabilities(model, data[name][0], tmp).values()]))
              for name in numbers_ if not name.startswith("mixed-")}
    have_tesseract = shutil.which("tesseract") is not None
    tesseract = {name: evaluate_tesseract(*data[name]) for name in numbers_ if not name.startswith("mixed-")} \
        if have_tesseract else {}

    from job.data.letters import DIGIT_SHAPED
    from mnist_predict import Predictor

    default = Predictor(model).read_min_confidence()  # what `read` flagged below above: the export's, or 0.8

    digits = top_probabilities(model, data["digits-scan"][0], tmp)
    digit_scores = np.array([p for p, _, _ in digits.values()])
    single = float(np.mean([label == data["digits-scan"][1][name] for name, (_, _, label) in digits.items()]))
    letters = {}
    for name in (n for n in data if n.startswith("letters-")):
        found = top_probabilities(model, data[name][0], tmp)
        for file_name, (p, accepted, _) in found.items():
            char = data[name][1][file_name]
            letters.setdefault(name, []).append((char, p, accepted))

    big = phone_photos(plan["photos_12mp"])
    per_second, past_start = {}, {}
    for name, folder in (("tight photos", data["tight-photo"][0]), ("12 MP phone photos", big)):
        files = sorted(folder.glob("*.jpg"))
        thrice = tmp / f"three-times-{len(per_second)}"
        thrice.mkdir()
        for copy in range(3):
            for path in files:
                shutil.copy(path, thrice / f"{copy}-{path.name}")
        runs = {(what, part): partial(run_tool, *first, where, "--model", model, "--out", tmp / f"speed-{what}.csv")
                for what, first in (("read", ["read"]), ("predict", []))
                for part, where in (("once", folder), ("three times", thrice))}
        seconds = interleaved_medians(runs, repeats=plan["repeats"], warmup=1)
        for what in ("read", "predict"):
            per_second[name, what] = len(files) / seconds[what, "once"]
            # what twice the folder's files add: the start (Python, onnxruntime, the models, the decode
            # processes) is in both runs and cancels out, as it does in a folder of thousands
            added = seconds[what, "three times"] - seconds[what, "once"]
            past_start[name, what] = 2 * len(files) / max(added, 1e-9)
    shutil.rmtree(tmp)

    print(f"\n{plan['per_condition']} numbers of 2-8 digits per condition (the sample's test digits); model {model}")
    tesseract_note = "" if have_tesseract else " (Tesseract not installed: apt-get install -y tesseract-ocr)"
    print_table(["numbers", "whole-number", "per digit", "accepted wrong", "review rate", "Tesseract whole",
                 "Tesseract per digit", "predict: ok as one digit"],
                [[name, f"{r['accuracy']:.1%}", f"{r['digit_accuracy']:.1%}", f"{r['accepted_wrong']:.1%}",
                  f"{r['review_rate']:.1%}",
                  f"{tesseract[name]['accuracy']:.1%}" if name in tesseract else "-",
                  f"{tesseract[name]['digit_accuracy']:.1%}" if name in tesseract else "-",
                  f"{as_one[name]:.1%}" if name in as_one else "-"]
                 for name, r in reads.items()])
    print(tesseract_note.strip())
    # what whole numbers would score if every digit were cut perfectly: single digits' accuracy per digit
    ceiling = float(np.mean([single ** len(t) for n in numbers_ if not n.startswith("mixed-")
                             for t in data[n][1].values()]))
    print(f"single scanned digits through predict: {single:.1%} right, so perfect cuts would read "
          f"{ceiling:.1%} of these numbers whole (the ceiling the recogniser sets)")

    # what a stricter --min-confidence buys: fewer wrong readings accepted, more right ones flagged
    print()
    plain = [n for n in numbers_ if n.startswith(("loose-", "tight-"))]
    print_table(["read --min-confidence", "accepted wrong, all numbers", "review rate, all numbers",
                 "review rate, loose and tight", "right but flagged, loose and tight"],
                [[f"{t:g}" + (" (default)" if t == default else ""),
                  f"{np.mean([reads[n]['at_threshold'][str(t)]['accepted_wrong'] for n in numbers_]):.2%}",
                  f"{np.mean([reads[n]['at_threshold'][str(t)]['review_rate'] for n in numbers_]):.1%}",
                  f"{np.mean([reads[n]['at_threshold'][str(t)]['review_rate'] for n in plain]):.1%}",
                  f"{np.mean([reads[n]['at_threshold'][str(t)]['flagged_right'] for n in plain]):.1%}"]
                 for t in THRESHOLDS])

    print()
    letter_rows, summary = [], {}
    for name, items in letters.items():
        for subset, chosen in (("all", items), ("not digit-shaped", [i for i in items if i[0] not in DIGIT_SHAPED]),
                               ("digit-shaped", [i for i in items if i[0] in DIGIT_SHAPED])):
            if not chosen:
                continue
            scores = np.array([p for _, p, _ in chosen])
            accepted = float(np.mean([a for _, _, a in chosen]))
            figures = {"n": len(chosen), "auroc": auroc(digit_scores, scores),
                       "fpr95": fpr_at_95_tpr(digit_scores, scores), "accepted": accepted}
            summary[f"{name} {subset}"] = figures
            letter_rows.append([name, subset, figures["n"], f"{figures['auroc']:.3f}", f"{figures['fpr95']:.1%}",
                                f"{accepted:.1%}"])
    print_table(["letters", "which", "n", "AUROC vs digits", "FPR at 95% TPR", "accepted by predict"], letter_rows)
    digits_accepted = float(np.mean([a for _, a, _ in digits.values()]))
    print(f"clean digits accepted by predict (ok, not flagged): {digits_accepted:.1%} of {len(digits)}")
    worst = sorted(((c, np.mean([a for ch, _, a in sum(letters.values(), []) if ch == c]))
                    for c in {ch for ch, _, _ in sum(letters.values(), [])}), key=lambda t: -t[1])[:10]
    print("most accepted characters: " + ", ".join(f"{c} {a:.0%}" for c, a in worst))

    print()
    print_table(["speed", "read images/s", "predict images/s", "read / predict",
                 "past the start: read, predict images/s", "read / predict"],
                [[name, num(per_second[name, "read"]), num(per_second[name, "predict"]),
                  f"{per_second[name, 'read'] / per_second[name, 'predict']:.2f}x",
                  f"{num(past_start[name, 'read'])}, {num(past_start[name, 'predict'])}",
                  f"{past_start[name, 'read'] / past_start[name, 'predict']:.2f}x"]
                 for name in ("tight photos", "12 MP phone photos")])
    print("(whole commands on the folder; past the start: the images/s that twice its files add, as in a folder "
          "of thousands, where the start of Python, onnxruntime and the models weighs nothing)")

    touching = [n for n in numbers_ if n.startswith("touching-")]
    all_letters = [v for k, v in summary.items() if k.endswith(" all")]
    letters_accepted = float(np.average([v["accepted"] for v in all_letters], weights=[v["n"] for v in all_letters]))
    targets = [target(f"{n}: whole-number accuracy", 100 * reads[n]["accuracy"], 97, unit="%") for n in plain]
    targets += [target(f"{n}: whole-number accuracy", 100 * reads[n]["accuracy"], 90, unit="%") for n in touching]
    targets += [
        target("accepted wrong, all numbers", 100 * np.mean([reads[n]["accepted_wrong"] for n in numbers_]), 1,
               higher=False, unit="%"),
        target("letters and symbols accepted by predict", 100 * letters_accepted, 5, higher=False, unit="%"),
        target("numbers accepted by predict as one digit", 100 * np.mean(list(as_one.values())), 1, higher=False,
               unit="%"),
        target("clean digits accepted by predict", 100 * digits_accepted, 95, unit="%"),
        *[target(f"read images/s against predict's past the start, {name}",
                 past_start[name, "read"] / past_start[name, "predict"], 0.5, unit="x")
          for name in ("tight photos", "12 MP phone photos")]]
    print()
    print_targets(targets)
    write_results("numbers" + ("-quick" if args.quick else ""),
                  {"quick": args.quick, **plan, "model": str(model), "reads": reads, "tesseract": tesseract,
                   "predict_as_one_digit": as_one,
                   "letters": summary, "digits_accepted": digits_accepted,
                  "images_per_second": {f"{name} | {what}": rate for (name, what), rate in per_second.items()},
                  "images_per_second_past_the_start": {f"{name} | {what}": rate
                                                       for (name, what), rate in past_start.items()},
                  "single_digit_accuracy": single, "ceiling": ceiling, "read_min_confidence": default,
                   "targets": targets})


if __name__ == "__main__":
    main()
