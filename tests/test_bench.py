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
