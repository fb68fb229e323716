"""Latency accounting: per-frame stage times, end-to-end latency checks and frame counters.

Times are integers in nanoseconds from :func:`time.perf_counter_ns` (monotonic) for stages, and
from the ROS clock (wall or sim time, nanoseconds since the epoch) for end-to-end latency, which is
publish time minus the input header stamp.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

STAGES = ("convert", "batch_wait", "preprocess", "inference", "postprocess", "publish")

STAMP_OK = 0
STAMP_FUTURE = 1
STAMP_STALE = 2
STAMP_MISSING = 3


@dataclass
class FrameCounters:
    """What happened to every received frame: received = processed + dropped_busy + rejected
    + failed (+ at most one frame in flight); and the frames published that never arrived
    (``lost_in_transport``: not part of ``received``).
    """

    received: int = 0
    processed: int = 0
    dropped_busy: int = 0
    rejected: int = 0
    failed: int = 0
    lost_in_transport: int = 0

    def summary(self) -> str:
        """The counters as one log line (received, processed, dropped busy, rejected, failed)."""
        return (f"{self.received} frames received, {self.processed} processed, "
                f"{self.dropped_busy} dropped (busy), {self.rejected} rejected (bad input), "
                f"{self.failed} failed, {self.lost_in_transport} lost in transport")


@dataclass
class StageClock:
    """Times consecutive stages of one frame from ``start_ns`` (when the frame was received)."""

    start_ns: int
    stages_ns: dict[str, int] = field(default_factory=dict)
    last_ns: int = 0

    def __post_init__(self) -> None:
        self.last_ns = self.start_ns

    def mark(self, stage: str) -> None:
        """Record that ``stage`` ended now: it took the time since the previous mark."""
        now = time.perf_counter_ns()
        self.stages_ns[stage] = now - self.last_ns
        self.last_ns = now

    def add_stages(self, stages_ns: Mapping[str, int]) -> None:
        """Record stages timed elsewhere (e.g. by the pipeline) that ended now."""
        self.stages_ns.update(stages_ns)
        self.last_ns = time.perf_counter_ns()

    def stage_ns(self, stage: str) -> int:
        """This frame's time in ``stage``, in nanoseconds (0 when the stage did not run)."""
        return self.stages_ns.get(stage, 0)


def check_stamp(stamp_ns: int, now_ns: int, future_tolerance_s: float,
                max_age_s: float) -> tuple[int, int]:
    """(status, end-to-end ns) of a header stamp read at ``now_ns``.

    A zero stamp is STAMP_MISSING; one more than ``future_tolerance_s`` ahead of now is
    STAMP_FUTURE; one older than ``max_age_s`` is STAMP_STALE; those report 0 latency rather than
    garbage. A stamp slightly ahead (within the tolerance, clock skew) reports 0 with STAMP_OK.
    """
    if stamp_ns <= 0:
        return STAMP_MISSING, 0
    latency = now_ns - stamp_ns
    if latency < -future_tolerance_s * 1e9:
        return STAMP_FUTURE, 0
    if latency > max_age_s * 1e9:
        return STAMP_STALE, 0
    return STAMP_OK, max(latency, 0)
