"""Time for the live loop: the wall clock, or a simulated one that skips idle waits (for benchmarks
that run an hour of live mode in minutes)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol


class Clock(Protocol):
    """Time for the live loop: real, or simulated (waits skipped) for long benchmarks."""

    def now(self) -> float: ...

    def sleep_until(self, moment: float) -> None: ...

    def wait(self, condition: threading.Condition, ready: Callable[[], bool], until: float) -> None:
        """With `condition` held: return when `ready()` or at `until`."""


class RealClock:
    """The wall clock (monotonic)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, moment: float) -> None:
        delay = moment - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def wait(self, condition: threading.Condition, ready: Callable[[], bool], until: float) -> None:
        condition.wait_for(ready, timeout=max(0.0, until - time.monotonic()))


class SimulatedClock:
    """Real time plus every wait skipped: work takes as long as it really does, idle time takes none.

    Used by the soak benchmark to run an hour of live mode in minutes; only paced sources (which
    push from `poll`) work with it, since a thread waiting on the real clock would never catch up."""

    def __init__(self) -> None:
        self._skipped = 0.0

    def now(self) -> float:
        return time.monotonic() + self._skipped

    def sleep_until(self, moment: float) -> None:
        self._skipped += max(0.0, moment - self.now())

    def wait(self, condition: threading.Condition, ready: Callable[[], bool], until: float) -> None:
        if not ready():
            self.sleep_until(until)
