"""Fixed-rate trials and the peak-rate search of ``trt-perception replay`` (ros2_benchmark's method).

A *trial* publishes every camera's images at ``rate_hz`` for a few seconds and records which
frames were answered (:class:`~trt_perception.tools.replay_report.ReplayedFrame`). Per camera
(input topic) :func:`trial_stats` reports published / answered frames, the unanswered fraction,
the round trip (published -> last result received, ms: count, mean, p50, p95, p99, max) and the
*jitter* of the answers: the standard deviation, and the largest deviation from the publish
period, of the intervals between successive answered frames' results (ms). With a node's pid, the
node process's CPU use (percent of one core over the trial, from ``/proc/<pid>/stat``) and its
largest sampled RSS.

:func:`find_peak` searches the highest publish rate at which no camera leaves more than
``max_unanswered`` (default 5 %) of its frames unanswered: a rate passes when all of its
``repeats`` trials pass; the search tries ``high``, then ``low``, then bisects the interval
between the best passing and the lowest failing rate ``steps`` times.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from trt_perception.tools.replay_report import ReplayedFrame, series_stats

PEAK_MAX_UNANSWERED = 0.05


@dataclass(frozen=True)
class CameraTrial:
    """One camera's frames in a trial (module docstring); times in ms."""

    published: int
    answered: int
    round_trip_ms: Mapping[str, Any]
    jitter_std_ms: Optional[float]
    jitter_max_ms: Optional[float]

    @property
    def unanswered(self) -> float:
        """Fraction of the published frames without every result (0 when none was published)."""
        return (self.published - self.answered) / self.published if self.published else 0.0


@dataclass(frozen=True)
class TrialStats:
    """A trial at ``rate_hz`` per camera lasting ``wall_s``: its cameras by input topic, and the
    node process's ``cpu_percent`` (of one core) and ``rss_mib`` (largest sample), None unknown.
    """

    rate_hz: float
    wall_s: float
    cameras: Mapping[str, CameraTrial]
    cpu_percent: Optional[float] = None
    rss_mib: Optional[float] = None

    @property
    def unanswered(self) -> float:
        """The largest unanswered fraction of any camera."""
        return max((c.unanswered for c in self.cameras.values()), default=1.0)

    def passes(self, max_unanswered: float = PEAK_MAX_UNANSWERED) -> bool:
        """Whether every camera left at most ``max_unanswered`` of its frames unanswered."""
        return bool(self.cameras) and self.unanswered <= max_unanswered

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the trial's fields, ``unanswered`` overall and per camera."""
        out = asdict(self)
        out["unanswered"] = self.unanswered
        for topic, camera in self.cameras.items():
            out["cameras"][topic]["unanswered"] = camera.unanswered
        return out


def _answered_ns(frame: ReplayedFrame, topics: Sequence[str]) -> Optional[int]:
    """When the last of ``frame``'s expected result ``topics`` arrived; None when one is missing."""
    wanted = [t for t in frame.expected if t in topics]
    if not wanted or any(t not in frame.results for t in wanted):
        return None
    return max(frame.results[t].received_ns for t in wanted)


def trial_stats(frames: Sequence[ReplayedFrame], result_topics: Sequence[str], rate_hz: float, wall_s: float,
                cpu_percent: Optional[float] = None, rss_mib: Optional[float] = None) -> TrialStats:
    """:class:`TrialStats` of the ``frames`` published in one trial; ``result_topics``: the
    outputs that make a frame answered (detections, skeletons; not latency topics).
    """
    cameras = {}
    for topic in sorted({f.input_topic for f in frames}):
        mine = [f for f in frames if f.input_topic == topic]
        done = [(f, ns) for f in mine if (ns := _answered_ns(f, result_topics)) is not None]
        round_trips = [(ns - f.published_ns) / 1e6 for f, ns in done]
        arrivals = np.sort(np.array([ns for _, ns in done], dtype=np.float64)) / 1e6
        intervals = np.diff(arrivals)
        std = float(intervals.std()) if intervals.size >= 2 else None
        worst = float(np.abs(intervals - 1e3 / rate_hz).max()) if intervals.size >= 1 else None
        cameras[topic] = CameraTrial(len(mine), len(done), series_stats(round_trips), std, worst)
    return TrialStats(rate_hz, wall_s, cameras, cpu_percent, rss_mib)


@dataclass
class PeakSearch:
    """What :func:`find_peak` found: ``peak_hz`` (None: even ``low`` failed) and every trial run."""

    peak_hz: Optional[float] = None
    trials: list[TrialStats] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``peak_hz`` and every trial."""
        return {"peak_hz": self.peak_hz, "trials": [t.as_dict() for t in self.trials]}


def find_peak(trial: Callable[[float], TrialStats], low_hz: float, high_hz: float, steps: int = 5,
              repeats: int = 2, max_unanswered: float = PEAK_MAX_UNANSWERED) -> PeakSearch:
    """The highest rate in [``low_hz``, ``high_hz``] that passes (module docstring); ``trial(rate)``
    runs one trial. Raises ValueError for a bad range, steps < 0 or repeats < 1.
    """
    if not 0 < low_hz <= high_hz or not math.isfinite(high_hz):
        raise ValueError(f"the peak search needs 0 < low <= high rates, got {low_hz}, {high_hz}")
    if steps < 0 or repeats < 1 or not 0 <= max_unanswered < 1:
        raise ValueError(f"need steps >= 0, repeats >= 1 and max_unanswered in [0, 1), got {steps}, {repeats}, "
                         f"{max_unanswered}")
    search = PeakSearch()

    def passes(rate: float) -> bool:
        for _ in range(repeats):
            stats = trial(rate)
            search.trials.append(stats)
            if not stats.passes(max_unanswered):
                return False
        return True

    if passes(high_hz):
        search.peak_hz = high_hz
        return search
    if low_hz == high_hz or not passes(low_hz):
        return search
    good, bad = low_hz, high_hz
    for _ in range(steps):
        middle = (good + bad) / 2
        if passes(middle):
            good = middle
        else:
            bad = middle
    search.peak_hz = good
    return search


def format_trials(trials: Sequence[TrialStats]) -> str:
    """One table row per trial and camera: rate, frames, unanswered %, round trip p50/p95/p99/max,
    jitter std/max (ms), CPU % and RSS MiB of the node.
    """
    header = (f"{'rate Hz':>8} {'camera':<28} {'pub':>5} {'ans':>5} {'unans%':>7} {'p50':>8} {'p95':>8} "
              f"{'p99':>8} {'max':>8} {'jit sd':>7} {'jit max':>8} {'cpu%':>6} {'rss MiB':>8}")

    def num(value: Optional[float], width: int, digits: int = 2) -> str:
        return f"{value:>{width}.{digits}f}" if value is not None and math.isfinite(value) else f"{'-':>{width}}"

    lines = [header]
    for stats in trials:
        for topic, camera in stats.cameras.items():
            rt = camera.round_trip_ms
            lines.append(f"{stats.rate_hz:>8.1f} {topic:<28} {camera.published:>5} {camera.answered:>5} "
                         f"{100 * camera.unanswered:>7.1f} {num(rt['p50'], 8)} {num(rt['p95'], 8)} "
                         f"{num(rt['p99'], 8)} {num(rt['max'], 8)} {num(camera.jitter_std_ms, 7)} "
                         f"{num(camera.jitter_max_ms, 8)} {num(stats.cpu_percent, 6, 1)} {num(stats.rss_mib, 8, 1)}")
    return "\n".join(lines)
