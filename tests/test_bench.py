"""The cheap helpers of bench/common.py; the benchmarks themselves are run by `make bench`, never by tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from common import interleaved_medians, median_time, num, print_table, target  # noqa: E402


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def spend(self, seconds):
        self.now += seconds


def test_median_time_skips_warmup_and_takes_the_median():
    clock, durations = FakeClock(), iter([100.0, 3.0, 1.0, 2.0])  # the first is the warm-up
    assert median_time(lambda: clock.spend(next(durations)), repeats=3, warmup=1, clock=clock) == 2.0


def test_interleaved_medians_take_turns():
    calls = []
    medians = interleaved_medians({"a": lambda: calls.append("a") or 1.0, "b": lambda: calls.append("b") or 5.0},
                                  repeats=2, warmup=1, self_timed=True)
    assert calls == ["a", "b"] * 3
    assert medians == {"a": 1.0, "b": 5.0}


def test_targets_say_met_or_missed_by_how_much():
    assert target("speed", 1.5, 1.3, unit="x")["verdict"] == "met"
    assert target("ratio", 0.5, 1.0)["verdict"] == "MISSED by 50%"
    assert target("seconds", 120, 90, higher=False, unit=" s") == {
        "target": "seconds", "measured": "120 s", "goal": "<= 90 s", "met": False, "verdict": "MISSED by 33%"}
    assert target("never", None, 90, higher=False)["verdict"] == "MISSED (not reached)"


def test_numbers_and_table(capsys):
    assert [num(12345.6), num(12.34), num(1.234), num(0.000123)] == ["12,346", "12.3", "1.23", "0.000123"]
    print_table(["model", "images/s"], [["dense-512", "1,000"], ["cnn", "5"]])
    assert capsys.readouterr().out.splitlines() == [
        "    model  images/s",
        "---------  --------",
        "dense-512     1,000",
        "      cnn         5",
    ]


QUOTED = "<!-- quoted from bench/latest.json -->"
ROOT = Path(__file__).resolve().parent.parent


def quoted_rows(markdown):
    """The rows of every table that follows the QUOTED marker: [cells, ...] per row, header and rule left out."""
    rows, inside = [], False
    for line in markdown.splitlines():
        if line.strip() == QUOTED:
            inside, header = True, True
            continue
        if inside and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not header and not set("".join(cells)) <= set("-: "):
                rows.append(cells)
            header = False
        elif inside and line.strip():
            inside = False
    return rows


def test_every_figure_the_readmes_quote_from_the_bench_is_in_its_last_record():
    """bench/run_all.py writes bench/latest.json; the READMEs' tables marked as quoted from it must be rows of
    it, figure for figure, so that a README cannot keep a figure the bench no longer measures."""
    import json

    record = json.loads((ROOT / "bench" / "latest.json").read_text())
    recorded = {(r["benchmark"], r["target"], r["measured"], r["goal"], r["verdict"]) for r in record["targets"]}
    quoted = {path: quoted_rows((ROOT / path).read_text()) for path in ("README.md", "bench/README.md")}
    assert quoted["bench/README.md"], "bench/README.md's Latest results are not marked as quoted"
    for path, rows in quoted.items():
        for cells in rows:
            assert tuple(cells) in recorded, f"{path} quotes a row bench/latest.json does not hold: {cells}"
    assert not record["quick"] and record["commit"], "bench/latest.json is a quick run, or names no commit"


def test_quoted_rows_are_read_from_marked_tables_only():
    text = "| a | b |\n| --- | --- |\n| 1 | 2 |\n\n" + QUOTED + "\n| a | b |\n| --- | --- |\n| 3 | 4 |\n| 5 | 6 |\n\nafter\n| 7 | 8 |\n"
    assert quoted_rows(text) == [["3", "4"], ["5", "6"]]
