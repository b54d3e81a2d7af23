"""Prediction across processes or pods: take a shard of the files, record what made it, merge the shards.

    mnist-predict photos/ --model export/model.onnx --shard 0/4 --out out/p-0.csv    # ... through 3/4
    mnist-predict merge out/p-*.csv --out predictions.csv

Each shard's output gets a record beside it, `<out>.shard.json`: the shard I/N, the model's sha256, the
number of files listed before sharding and a sha256 of that listing, the rows written and the options that
shape a row. `merge` refuses a set that is incomplete, mixes models, options or listings, or holds a path
twice, and checks every output against its record: as many rows as it says, each of a file that hashes to
that shard. It writes the rows in the order one unsharded run writes them (sorted by path): byte for byte
the same file.
"""

import csv
import glob
import hashlib
import heapq
import json
import os
import zlib

from . import batch
from .files import atomic_file, sha256
from .predictor import UsageError

RECORD_SUFFIX = ".shard.json"
# What shapes a row: shards that differ in these cannot be one file.
ROW_OPTIONS = ("invert", "resize", "top_k", "min_confidence", "length", "labels")


def parse_shard(text):
    """'I/N' -> (I, N), with 0 <= I < N, as a Kubernetes Indexed Job numbers its pods."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like I/N, e.g. 0/4, got {text!r}") from None
    if not 0 <= index < count:
        raise UsageError(f"--shard I/N needs 0 <= I < N, got {text}")
    return index, count


def take_shard(paths, index, count):
    """The files whose name hashes to `index`: every file lands in exactly one shard.

    The hash depends on the file name alone, not on listing order or mount point, so pods that see
    the folder at different paths, or list it at different moments, still agree.
    """
    return [path for path in paths if shard_of(path, count) == index]


def shard_of(path, count):
    return zlib.crc32(os.fsencode(os.path.basename(path))) % count


def listing_sha256(paths):
    """A fingerprint of the listing, by file name (as the shards are drawn), whatever the mount point."""
    return hashlib.sha256("\n".join(sorted(os.path.basename(p) for p in paths)).encode()).hexdigest()


def write_record(out, shard, model_path, listed, rows, options):
    """Write `<out>.shard.json` (atomically, after `out` itself); `listed` is the listing before sharding."""
    index, count = shard
    record = {"shard": index, "of": count, "model_sha256": sha256(model_path), "model": str(model_path),
              "listed": len(listed), "listing_sha256": listing_sha256(listed), "rows": rows, "options": options}
    path = f"{out}{RECORD_SUFFIX}"
    with atomic_file(path) as file:
        json.dump(record, file, indent=2)
    return path


def find_outputs(specs):
    """Shard outputs named by files or globs (expanded here too, for pods without a shell)."""
    paths = []
    for spec in specs:
        matches = [spec] if os.path.isfile(spec) else sorted(glob.glob(spec))
        matches = [m for m in matches if not m.endswith(RECORD_SUFFIX)]
        if not matches:
            raise UsageError(f"no shard outputs matched {spec}")
        paths += matches
    return sorted(set(paths))


def read_records(outputs):
    """The record of every output, checked to form one complete set; returns them in shard order."""
    records = []
    for output in outputs:
        try:
            with open(f"{output}{RECORD_SUFFIX}", encoding="utf-8") as file:
                records.append({**json.load(file), "output": output})
        except FileNotFoundError:
            raise UsageError(f"{output}: no {os.path.basename(output)}{RECORD_SUFFIX} beside it: not the output of "
                             "`mnist-predict --shard`, or its run did not finish") from None
        except (OSError, ValueError) as error:
            raise UsageError(f"{output}{RECORD_SUFFIX}: unreadable ({error})") from None
    first = records[0]
    for record in records[1:]:
        for key, what in (("of", "shard counts"), ("model_sha256", "models"), ("listed", "file listings"),
                          ("listing_sha256", "file listings"), ("options", "options")):
            if record.get(key) != first.get(key):
                raise UsageError(f"{record['output']} and {first['output']} differ in {what} "
                                 f"({_difference(record.get(key), first.get(key))}): they are not shards of one run")
    seen = {}
    for record in records:
        if record["shard"] in seen:
            raise UsageError(f"{record['output']} and {seen[record['shard']]} are both shard "
                             f"{record['shard']}/{record['of']}")
        seen[record["shard"]] = record["output"]
    missing = sorted(set(range(first["of"])) - set(seen))
    if missing:
        raise UsageError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {first['of']} "
                         "missing: merge needs every shard's output")
    if sum(r["rows"] for r in records) != first["listed"]:
        raise UsageError(f"the shards hold {sum(r['rows'] for r in records)} rows, but {first['listed']} files were "
                         "listed: an output was changed after it was written")
    return sorted(records, key=lambda r: r["shard"])


def _difference(a, b):
    """What differs, named: `top_k 5 vs 3` for two option sets, else the two values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return ", ".join(f"{key} {_short(a.get(key))} vs {_short(b.get(key))}"
                         for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key))
    return f"{_short(a)} vs {_short(b)}"


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:16] + "..."


def merge(specs, out):
    """Merge shard outputs into `out` in single-run order. Returns (rows, shard records)."""
    outputs = find_outputs(specs)
    records = read_records(outputs)
    kind = batch.output_format(out)
    for record in records:
        if batch.output_format(record["output"]) != kind:
            raise UsageError(f"{record['output']}: a {batch.output_format(record['output'])} shard cannot be merged "
                             f"into {kind} {out}")
    read = _csv_rows if kind == "csv" else _jsonl_rows
    counted = [0] * len(records)
    streams = [_checked(read(record["output"]), record, counted, k) for k, record in enumerate(records)]
    header = [next(stream) for stream in streams][0]
    rows, previous = 0, None
    with atomic_file(out) as file:  # an error below leaves no output behind
        if header is not None:
            file.write(header)
        for path, line in heapq.merge(*streams, key=lambda item: item[0]):
            if path == previous:
                raise UsageError(f"{path} appears in more than one shard")
            previous = path
            file.write(line)
            rows += 1
        for record, n in zip(records, counted):
            if n != record["rows"]:
                raise UsageError(f"{record['output']} holds {n} rows, but its record says {record['rows']}: the "
                                 "output was changed after it was written (rows lost or added); predict that "
                                 "shard again")
    return rows, records


def _checked(stream, record, counted, k):
    """The stream's header, then its rows, each checked to belong to the record's shard, and counted."""
    yield next(stream)
    for path, line in stream:
        if shard_of(path, record["of"]) != record["shard"]:
            raise UsageError(f"{record['output']}: {path} is not a file of shard {record['shard']}/{record['of']}: "
                             "the output was changed after it was written")
        counted[k] += 1
        yield path, line


def _csv_rows(output):
    """Yield the header line, then (path, line) in file order, checked to be sorted by path."""
    with _open(output) as file:
        reader = csv.reader(file)
        text = _csv_line(next(reader, None) or [])
        if text not in (_csv_line(batch.COLUMNS), _csv_line(batch.READ_COLUMNS)):
            raise UsageError(f"{output}: not a predictions or numbers CSV (its header is neither "
                             f"{','.join(batch.COLUMNS)} nor {','.join(batch.READ_COLUMNS)})")
        yield text
        yield from _sorted_rows(output, ((row[0], _csv_line(row)) for row in reader))


def _csv_line(row):
    # csv.writer's own quoting and line ending, exactly as the predictions were written.
    line = []
    csv.writer(_Collect(line)).writerow(row)
    return line[0]


class _Collect:
    def __init__(self, into):
        self.write = into.append


def _jsonl_rows(output):
    with _open(output) as file:
        yield None  # JSON Lines has no header
        yield from _sorted_rows(output, ((_path_of(output, line), line) for line in file))


def _path_of(output, line):
    try:
        return json.loads(line)["path"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{output}: not a predictions JSON Lines file (a line without a path)") from None


def _open(output):
    try:
        return open(output, newline="", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{output}: unreadable ({error.strerror or error})") from None


def _sorted_rows(output, rows):
    previous = None
    for path, line in rows:
        if previous is not None and path < previous:
            raise UsageError(f"{output}: rows are not in path order, as mnist-predict writes them")
        previous = path
        yield path, line
