"""harness/run/progress.py: the overall progress line of a multi-run `run` (issue 22)."""

import contextlib
import io

from harness.cli import main
from harness.run.progress import OverallProgress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_estimate_is_the_mean_time_of_the_same_spec_then_of_every_computed_run():
    clock = FakeClock()
    work = [("synthref", "whole", 0), ("synthref", "sag", 0), ("synthref", "sag", 1), ("synthref", "sag", 2),
            ("synthref", "tseg", 0)]
    progress = OverallProgress(work, clock=clock)

    clock.now += 4           # whole: found stored, takes no time and gives no estimate
    line = progress.finished("whole", computed=False)
    assert line == "overall: 1/5 runs finished, 4s elapsed; 4 to go (no estimate before a run is computed)"
    assert progress.estimate_left() is None

    clock.now += 300         # sag seed 0 computed in 300 s (from the last finish, not from the start)
    line = progress.finished("sag", computed=True)
    # two more sag runs at 300 s, and tseg (never seen) at the mean of computed runs, 300 s
    assert progress.estimate_left() == 900.0
    assert line == "overall: 2/5 runs finished, 5m 04s elapsed; 3 to go, about 15m 00s left"

    clock.now += 100
    progress.finished("sag", computed=True)      # sag mean now 200 s
    assert progress.estimate_left() == 200.0 + 200.0

    clock.now += 3700
    progress.finished("sag", computed=True)      # sag mean (300 + 100 + 3700) / 3
    assert abs(progress.estimate_left() - 4100 / 3) < 1e-9
    clock.now += 5
    assert progress.finished("tseg", computed=True) == "overall: 5/5 runs finished, 1h 08m elapsed"


def test_a_multi_run_run_prints_one_overall_line_per_run(tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--methods", "whole,objects", "--seeds", "0,1", "--splits", "val", "--profile",
                     "smoke", "--no-progress", "--out", str(tmp_path / "runs"), "--limit", "8"])
    assert code == 0
    lines = [l for l in out.getvalue().splitlines() if l.startswith("overall: ")]
    assert [l.split(" runs finished")[0] for l in lines] == [f"overall: {k}/4" for k in (1, 2, 3, 4)]
    assert lines[0].endswith("3 to go, about " + lines[0].split("about ")[1]) and "left" in lines[0]
    assert "to go" not in lines[-1]

    rerun = io.StringIO()
    with contextlib.redirect_stdout(rerun):
        main(["run", "--methods", "whole,objects", "--seeds", "0,1", "--splits", "val", "--profile", "smoke",
              "--no-progress", "--out", str(tmp_path / "runs"), "--limit", "8"])
    assert "no estimate before a run is computed" in rerun.getvalue()
