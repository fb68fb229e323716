"""Health of a task from its rolling statistics: levels, messages and key/value pairs (ROS-free).

The statuses follow diagnostic_updater's conventions (the ROS layer publishes them as
``diagnostic_msgs/DiagnosticStatus``): level OK / WARN / ERROR, a message naming the problems
worst first ("; "-separated; a short summary when all is well), and every statistic as a
key/value string pair. Checks:

* latency: the p95 of ``latency_source`` (``processing`` or ``end_to_end``) over the window above
  ``latency_error_ms`` is ERROR, above ``latency_warn_ms`` WARN (0 disables a bound); frames whose
  header stamp was flagged (missing, future, stale) are WARN; with ``end_to_end`` as the source
  and no valid stamp in the window, WARN.
* frame rate (as diagnostic_updater's FrequencyStatus): with ``min_output_rate_hz`` > 0, no frame
  published in the window is ERROR and an output rate below the bound WARN; frames whose inference
  failed are ERROR; frames rejected as bad input are WARN; frames lost in transport (published but
  never received: a lossy best-effort link) are WARN. Frames dropped because the task was busy
  are reported, not judged (the nodes always process the newest frame by design).
* device: GPU memory in use (OK; "n/a" without a GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from trt_perception.core.telemetry.latency_stats import LATENCY_SERIES, StatsSnapshot

OK, WARN, ERROR = 0, 1, 2
LATENCY_SOURCES = ("processing", "end_to_end")
MIB = 1024 * 1024


@dataclass(frozen=True)
class HealthBounds:
    """Bounds of one task (0 disables a bound). Latencies in ms, rates in Hz."""

    latency_warn_ms: float = 0.0
    latency_error_ms: float = 0.0
    latency_source: str = "processing"
    min_output_rate_hz: float = 0.0


@dataclass(frozen=True)
class Status:
    """One diagnostic task's result: ``task`` names it (e.g. "detector latency")."""

    task: str
    level: int
    message: str
    values: tuple[tuple[str, str], ...]


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _summary(task: str, problems: list[tuple[int, str]], ok_message: str,
             values: list[tuple[str, str]]) -> Status:
    problems.sort(key=lambda p: -p[0])
    level = problems[0][0] if problems else OK
    message = "; ".join(text for _, text in problems) if problems else ok_message
    return Status(task, level, message, tuple(values))


def latency_status(task: str, snap: StatsSnapshot, bounds: HealthBounds) -> Status:
    """The task's latency statistics (every series, ms) judged against ``bounds``."""
    values = [("latency source", bounds.latency_source), ("window (s)", f"{snap.window_s:g}"),
              ("latency warn bound (ms)", f"{bounds.latency_warn_ms:g}"),
              ("latency error bound (ms)", f"{bounds.latency_error_ms:g}"),
              ("stamps flagged in window", str(snap.stamps_flagged))]
    for series in LATENCY_SERIES:
        stats = snap.latency[series]
        values.append((f"{series} count", str(stats.count)))
        values += [(f"{series} {name} (ms)", _ms(getattr(stats, name)))
                   for name in ("mean", "p50", "p95", "p99", "max")]

    problems: list[tuple[int, str]] = []
    judged = snap.latency[bounds.latency_source]
    p95 = judged.p95
    name = bounds.latency_source.replace("_", "-")
    for level, bound, word in ((ERROR, bounds.latency_error_ms, "error"), (WARN, bounds.latency_warn_ms, "warn")):
        if bound > 0 and judged.count and p95 > bound:
            problems.append((level, f"p95 {name} latency {p95:.1f} ms above the {word} bound {bound:g} ms"))
            break
    flagged = (f"{snap.stamps_flagged} of {snap.in_window.processed} frames with a flagged header stamp "
               "(missing, future or stale)")
    if bounds.latency_source == "end_to_end" and snap.in_window.processed and not judged.count:
        problems.append((WARN, f"end-to-end latency unknown: {flagged}"))
    elif snap.stamps_flagged:
        problems.append((WARN, flagged))
    if judged.count:
        ok = f"p50 {judged.p50:.1f} ms, p95 {p95:.1f} ms {name} latency"
    else:
        ok = "no frames in the window"
    return _summary(task, problems, ok, values)


def rate_status(task: str, snap: StatsSnapshot, bounds: HealthBounds) -> Status:
    """The task's frame counts and rates judged against ``bounds``."""
    values = [("window (s)", f"{snap.window_s:g}"), ("input rate (Hz)", f"{snap.input_rate_hz:.3f}"),
              ("output rate (Hz)", f"{snap.output_rate_hz:.3f}"),
              ("min output rate (Hz)", f"{bounds.min_output_rate_hz:g}")]
    for field in ("received", "processed", "dropped_busy", "rejected", "failed", "lost_in_transport"):
        values.append((f"frames {field}", str(getattr(snap.totals, field))))
        values.append((f"frames {field} in window", str(getattr(snap.in_window, field))))

    window = snap.in_window
    problems: list[tuple[int, str]] = []
    if bounds.min_output_rate_hz > 0:
        if window.processed == 0:
            problems.append((ERROR, f"no frame processed in the last {snap.window_s:g} s"))
        elif snap.output_rate_hz < bounds.min_output_rate_hz:
            problems.append((WARN, f"output rate {snap.output_rate_hz:.1f} Hz below the minimum "
                                   f"{bounds.min_output_rate_hz:g} Hz"))
    if window.failed:
        problems.append((ERROR, f"inference failed on {window.failed} frames"))
    if window.rejected:
        problems.append((WARN, f"{window.rejected} frames rejected (bad input)"))
    if window.lost_in_transport:
        problems.append((WARN, f"{window.lost_in_transport} frames lost in transport (published, never "
                               "received: see qos_reliability)"))
    ok = f"{snap.input_rate_hz:.1f} Hz in, {snap.output_rate_hz:.1f} Hz out"
    return _summary(task, problems, ok, values)


def device_status(hardware: str, memory: Optional[tuple[int, int]]) -> Status:
    """GPU memory in use and total (bytes) of the device, or "n/a" without a GPU."""
    if memory is None:
        values = (("hardware", hardware), ("device memory used (MiB)", "n/a"), ("device memory total (MiB)", "n/a"))
        return Status("device", OK, "no GPU in use", values)
    used, total = memory
    values = (("hardware", hardware), ("device memory used (MiB)", f"{used / MIB:.0f}"),
              ("device memory total (MiB)", f"{total / MIB:.0f}"))
    return Status("device", OK, f"GPU memory {used / MIB:.0f} of {total / MIB:.0f} MiB in use", values)


def summary_line(task: str, snap: StatsSnapshot) -> str:
    """One log line: rates, processing and end-to-end p50/p95, drops, rejects and failures."""
    proc, e2e = snap.latency["processing"], snap.latency["end_to_end"]
    window = snap.in_window
    return (f"{task}: {snap.input_rate_hz:.1f} Hz in, {snap.output_rate_hz:.1f} Hz out; processing "
            f"p50/p95 {_ms(proc.p50)}/{_ms(proc.p95)} ms; end-to-end p50/p95 {_ms(e2e.p50)}/{_ms(e2e.p95)} ms; "
            f"last {snap.window_s:g} s: {window.dropped_busy} dropped (busy), {window.lost_in_transport} "
            f"lost in transport, {window.rejected} rejected, {window.failed} failed; "
            f"total {snap.totals.received} received, {snap.totals.processed} processed")
