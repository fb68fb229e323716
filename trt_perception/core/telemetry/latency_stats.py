"""Rolling statistics of frame latencies and event rates over a sliding window (ROS-free).

A :class:`RollingWindow` keeps the times (and optionally a row of values) of the last
``capacity`` events in preallocated numpy ring buffers; the *window* is the events of the last
``window_s`` seconds among those, and never reaches back before :meth:`RollingWindow.start`
(activation). Recording writes one row under a lock (about a microsecond); statistics are computed
on demand, once per diagnostics period, with numpy.

Times are integer nanoseconds of a monotonic clock (:func:`time.monotonic_ns` by default; every
method takes ``now_ns`` so that tests can inject time). Latency values are recorded in
nanoseconds and reported in milliseconds; NaN marks a value that is absent for that frame (e.g.
the end-to-end latency of a frame whose header stamp was flagged) and is left out of its series.

Rate = events in the window / the window's span, where the span is ``window_s``, or less when
the window started (activation) more recently, or when more than ``capacity`` events fell in it
(the span then runs from the oldest event kept).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from trt_perception.core.telemetry.latency import STAGES, FrameCounters

#: latency series of a task: the stages, ``processing`` (message received -> results published,
#: waiting included) and ``end_to_end`` (publish time - header stamp; NaN when the stamp is flagged)
LATENCY_SERIES = STAGES + ("processing", "end_to_end")

PERCENTILES = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class SeriesStats:
    """Summary of one series in the window, in milliseconds (NaN when ``count`` is 0)."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values_ms: np.ndarray) -> "SeriesStats":
        """Statistics of float[N] values (NaN ignored); percentiles as :func:`numpy.percentile`
        (linear interpolation).
        """
        values = values_ms[~np.isnan(values_ms)]
        if values.size == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        p50, p95, p99 = np.percentile(values, PERCENTILES).tolist()
        return cls(int(values.size), float(values.mean()), p50, p95, p99, float(values.max()))


class RollingWindow:
    """Ring buffer of the last ``capacity`` events: int64 times and float64[columns] values.

    Thread-safe: :meth:`record` may run in one thread while another reads statistics.
    """

    def __init__(self, capacity: int, window_s: float, columns: int = 0, now_ns: int = 0) -> None:
        if capacity < 1 or not window_s > 0:
            raise ValueError(f"a window needs capacity >= 1 and window_s > 0, got {capacity}, {window_s}")
        self.capacity = capacity
        self.window_ns = int(window_s * 1e9)
        self._times = np.zeros(capacity, np.int64)
        self._values = np.full((capacity, columns), np.nan)
        self._lock = threading.Lock()
        self._total = 0
        self._since_ns = now_ns

    @property
    def total(self) -> int:
        """Events recorded since construction (or :meth:`clear`), in or out of the window."""
        return self._total

    def clear(self, now_ns: int) -> None:
        """Forget every event; the window starts at ``now_ns``."""
        with self._lock:
            self._total = 0
            self._since_ns = now_ns

    def start(self, now_ns: int) -> None:
        """Start the window at ``now_ns`` (activation): older events stay in :attr:`total` only."""
        with self._lock:
            self._since_ns = now_ns

    def record(self, now_ns: int, values: Sequence[float] = (), count: int = 1) -> None:
        """``count`` events at ``now_ns``, each with the row of ``columns`` values (none for pure
        events); at most ``capacity`` rows are written, whatever ``count``.
        """
        with self._lock:
            for i in range(min(count, self.capacity)):
                row = (self._total + i) % self.capacity
                self._times[row] = now_ns
                if values:
                    self._values[row] = values
            self._total += max(count, 0)

    def view(self, now_ns: int) -> "WindowView":
        """The total and the window's events at ``now_ns``, read together under the lock (a
        frame recorded meanwhile is in both or in neither).
        """
        with self._lock:
            total = self._total
            kept = min(total, self.capacity)
            times = self._times[:kept].copy()
            values = self._values[:kept].copy()
            since = self._since_ns
        lower = max(now_ns - self.window_ns, since)
        mask = (times >= lower) & (times <= now_ns)
        times = times[mask]
        span = now_ns - lower
        if times.size == self.capacity:  # the window may hold more events than were kept
            span = min(span, now_ns - int(times.min()))
        return WindowView(total, int(times.size), times.size * 1e9 / span if span > 0 else 0.0, values[mask])

    def count(self, now_ns: int) -> int:
        """Events in the window."""
        return self.view(now_ns).count

    def rate(self, now_ns: int) -> float:
        """Events per second over the window (0 when the window has no span yet)."""
        return self.view(now_ns).rate_hz

    def column_stats(self, now_ns: int, scale: float = 1e-6) -> list[SeriesStats]:
        """:class:`SeriesStats` of each value column in the window, values times ``scale``
        (default: nanoseconds to milliseconds).
        """
        return self.view(now_ns).column_stats(scale)


@dataclass(frozen=True)
class WindowView:
    """One consistent reading of a :class:`RollingWindow`: events since construction/clear
    (``total``), in the window (``count``, ``rate_hz``) and their value rows (float[count, columns]).
    """

    total: int
    count: int
    rate_hz: float
    values: np.ndarray

    def column_stats(self, scale: float = 1e-6) -> list[SeriesStats]:
        """:class:`SeriesStats` of each value column, values times ``scale``."""
        return [SeriesStats.of(self.values[:, i] * scale) for i in range(self.values.shape[1])]


@dataclass(frozen=True)
class WindowSettings:
    """How far back statistics look: at most ``window_s`` seconds and ``capacity`` frames."""

    window_s: float = 10.0
    capacity: int = 1000


class InputStats:
    """Events of one image input, shared by the tasks it feeds: frames received, dropped before
    decoding because the decoder was busy, rejected as bad input, lost in transport (published,
    never received: see :mod:`~trt_perception.core.telemetry.sequence_gaps`); and frames decoded
    (total).
    """

    def __init__(self, settings: WindowSettings, now_ns: int) -> None:
        self.received = RollingWindow(settings.capacity, settings.window_s, now_ns=now_ns)
        self.dropped = RollingWindow(settings.capacity, settings.window_s, now_ns=now_ns)
        self.rejected = RollingWindow(settings.capacity, settings.window_s, now_ns=now_ns)
        self.lost = RollingWindow(settings.capacity, settings.window_s, now_ns=now_ns)
        self.converted = 0

    def start(self, now_ns: int) -> None:
        """Start every window at ``now_ns`` (monotonic nanoseconds), forgetting what they held."""
        for window in (self.received, self.dropped, self.rejected, self.lost):
            window.start(now_ns)


class TaskStats:
    """Frames of one task: per-frame latencies of processed frames (:data:`LATENCY_SERIES`), frames
    dropped because the task was busy, frames whose inference failed.
    """

    def __init__(self, settings: WindowSettings, now_ns: int) -> None:
        self.frames = RollingWindow(settings.capacity, settings.window_s, len(LATENCY_SERIES), now_ns)
        self.dropped = RollingWindow(settings.capacity, settings.window_s, now_ns=now_ns)
        self.failed = RollingWindow(settings.capacity, settings.window_s, now_ns=now_ns)
        self.window_s = settings.window_s

    def start(self, now_ns: int) -> None:
        """Start every window at ``now_ns`` (monotonic nanoseconds), forgetting what they held."""
        for window in (self.frames, self.dropped, self.failed):
            window.start(now_ns)

    def record_frame(self, now_ns: int, stages_ns: Mapping[str, int], processing_ns: int,
                     end_to_end_ns: Optional[int]) -> None:
        """A processed frame: its stage durations, processing time and end-to-end latency
        (None when the header stamp was flagged).
        """
        row = [float(stages_ns.get(stage, 0)) for stage in STAGES]
        row += [float(processing_ns), math.nan if end_to_end_ns is None else float(end_to_end_ns)]
        self.frames.record(now_ns, row)


@dataclass(frozen=True)
class StatsSnapshot:
    """One task's health at one time: totals since configure, counts and rates in the window,
    latency statistics (ms) by series name.
    """

    window_s: float
    totals: FrameCounters
    in_window: FrameCounters
    input_rate_hz: float
    output_rate_hz: float
    latency: Mapping[str, SeriesStats]

    @property
    def stamps_flagged(self) -> int:
        """Processed frames in the window without an end-to-end latency (stamp flagged)."""
        return self.in_window.processed - self.latency["end_to_end"].count


def _counters(inputs: InputStats, task: TaskStats, count: Callable[[RollingWindow], int]) -> FrameCounters:
    return FrameCounters(received=count(inputs.received), processed=count(task.frames),
                         dropped_busy=count(inputs.dropped) + count(task.dropped),
                         rejected=count(inputs.rejected), failed=count(task.failed),
                         lost_in_transport=count(inputs.lost))


def totals(inputs: InputStats, task: TaskStats) -> FrameCounters:
    """One task's frame counts since configure; frames dropped at the input count for the task."""
    return _counters(inputs, task, lambda window: window.total)


def snapshot(inputs: InputStats, task: TaskStats, now_ns: int) -> StatsSnapshot:
    """One task's totals, counts and rates in the window, and latency statistics at ``now_ns``.
    Each window is read once (:meth:`RollingWindow.view`), so its total and its window count agree
    even while frames are recorded.
    """
    windows = (inputs.received, inputs.dropped, inputs.rejected, inputs.lost, task.frames, task.dropped, task.failed)
    views = {id(window): window.view(now_ns) for window in windows}
    received, frames = views[id(inputs.received)], views[id(task.frames)]
    return StatsSnapshot(window_s=task.window_s, totals=_counters(inputs, task, lambda w: views[id(w)].total),
                         in_window=_counters(inputs, task, lambda w: views[id(w)].count),
                         input_rate_hz=received.rate_hz, output_rate_hz=frames.rate_hz,
                         latency=dict(zip(LATENCY_SERIES, frames.column_stats())))
