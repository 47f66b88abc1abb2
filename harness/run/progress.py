"""The overall progress line of a multi-run `run`: after each method × seed run, how many are done
and about how long the rest will take.

The estimate of a run still to come is the mean time of the computed runs of the same method spec
(the specs differ by orders of magnitude: a floor takes seconds, SaG minutes), else the mean of all
computed runs; runs found already stored count as done and take no time. Before any run has been
computed there is no estimate, and the line says so.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Optional


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class OverallProgress:
    """Tracks `work`, a list of (dataset, spec, seed), in the order it runs."""

    def __init__(self, work: Iterable[tuple[str, str, int]], clock: Callable[[], float] = time.monotonic):
        self.work = list(work)
        self.clock = clock
        self.started = clock()
        self._last = self.started
        self._seconds: dict[str, list[float]] = {}
        self._finished = 0

    def estimate_left(self) -> Optional[float]:
        """Seconds the runs not yet finished will take, or None before any run was computed."""
        every = [s for times in self._seconds.values() for s in times]
        if not every:
            return None
        overall = sum(every) / len(every)
        left = 0.0
        for _, spec, _ in self.work[self._finished:]:
            times = self._seconds.get(spec)
            left += sum(times) / len(times) if times else overall
        return left

    def finished(self, spec: str, computed: bool) -> str:
        """Record the next run of `work` as finished (computed, or found stored); the line to print."""
        now = self.clock()
        if computed:
            self._seconds.setdefault(spec, []).append(now - self._last)
        self._last = now
        self._finished += 1
        total = len(self.work)
        line = f"overall: {self._finished}/{total} runs finished, {_duration(now - self.started)} elapsed"
        if self._finished == total:
            return line
        left = self.estimate_left()
        if left is None:
            return line + f"; {total - self._finished} to go (no estimate before a run is computed)"
        return line + f"; {total - self._finished} to go, about {_duration(left)} left"
