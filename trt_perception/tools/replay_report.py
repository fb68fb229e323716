"""What a bag replay measured: frames in and out, drops, latencies, objects per frame (ROS-free).

The replay records one :class:`ReplayedFrame` per published image and, inside it, one
:class:`OutputResult` per output topic that answered it (matched by header stamp and frame_id).
Output topics are *result* topics (``Detection2DArray``, ``Skeleton2DArray``: ``objects`` is the
number of detections / skeletons) or *latency* topics (``FrameLatency``: ``stages_ms`` holds the
node's stage durations, and ``end_to_end`` when the stamp status was OK).

Times: ``published_ns`` / ``received_ns`` are :func:`time.monotonic_ns` of the replay process;
``round trip`` = received - published, in ms: the latency a consumer of the replay sees
(transport both ways included). Statistics are :func:`series_stats` (count, mean, p50, p95, p99,
max in ms). A frame is *out* when every result topic expected to answer it did; the others are
*dropped* (busy node, rejected frame, lost message, or a timeout in as-fast-as-processed mode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from trt_perception.core.telemetry.latency import STAGES
from trt_perception.core.telemetry.latency_stats import SeriesStats

LATENCY_TYPE = "trt_perception/msg/FrameLatency"
RESULT_TYPES = ("vision_msgs/msg/Detection2DArray", "trt_perception/msg/Skeleton2DArray")
STAMP_STATUS = ("ok", "future", "stale", "missing")   # FrameLatency.STAMP_* by value


@dataclass(frozen=True)
class OutputResult:
    """One output message that answered a frame (see the module docstring)."""

    received_ns: int
    objects: Optional[int] = None
    stages_ms: Optional[Mapping[str, float]] = None
    stamp_status: Optional[int] = None


@dataclass
class ReplayedFrame:
    """One published image: where it came from, when it went out, which outputs answered it."""

    input_topic: str
    loop: int
    index: int
    stamp_ns: int
    frame_id: str
    published_ns: int
    expected: tuple[str, ...]
    results: dict[str, OutputResult] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every expected output topic answered."""
        return all(topic in self.results for topic in self.expected)

    def round_trip_ms(self, topic: str) -> float:
        """Milliseconds from this frame's publication to its result on ``topic`` (NaN when none came)."""
        result = self.results.get(topic)
        return math.nan if result is None else (result.received_ns - self.published_ns) / 1e6


def series_stats(values_ms: Sequence[float]) -> dict[str, Any]:
    """:class:`SeriesStats` of ``values_ms`` (NaN left out) as a JSON-ready dict: count, mean, p50,
    p95, p99, max, each None when no value is left.
    """
    stats = asdict(SeriesStats.of(np.asarray(values_ms, dtype=np.float64)))
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in stats.items()}


def _output_section(topic: str, msgtype: str, frames: Sequence[ReplayedFrame], unmatched: int) -> dict[str, Any]:
    answered = [f for f in frames if topic in f.results]
    section: dict[str, Any] = {"type": msgtype, "expected": len(frames), "answered": len(answered),
                               "missing": len(frames) - len(answered), "unmatched": unmatched,
                               "round_trip_ms": series_stats([f.round_trip_ms(topic) for f in answered])}
    results = [f.results[topic] for f in answered]
    if msgtype == LATENCY_TYPE:
        stages = STAGES + ("end_to_end",)
        section["stages_ms"] = {s: series_stats([(r.stages_ms or {}).get(s, math.nan) for r in results])
                                for s in stages}
        statuses = [r.stamp_status for r in results]
        section["stamp_status"] = {name: statuses.count(value) for value, name in enumerate(STAMP_STATUS)}
    else:
        objects = [r.objects for r in results if r.objects is not None]
        section["objects_per_frame"] = ({"mean": float(np.mean(objects)), "min": min(objects),
                                         "max": max(objects), "total": sum(objects)} if objects else {})
    return section


def replay_report(frames: Sequence[ReplayedFrame], outputs: Mapping[str, str], unmatched: Mapping[str, int],
                  wall_s: float, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready report of a replay: ``outputs`` maps each recorded output topic to its type,
    ``unmatched`` counts output messages per topic that answered no published frame, ``settings``
    (bag, rate, loops...) is copied in.
    """
    inputs = sorted({f.input_topic for f in frames})
    result_topics = [t for t, msgtype in outputs.items() if msgtype in RESULT_TYPES]
    out = [f for f in frames if all(t in f.results for t in f.expected if t in result_topics)]
    report: dict[str, Any] = {
        "settings": dict(settings),
        "wall_s": wall_s,
        "frames_in": len(frames),
        "frames_out": len(out),
        "dropped": len(frames) - len(out),
        "output_rate_hz": len(out) / wall_s if wall_s > 0 else 0.0,
        "inputs": {t: {"published": sum(f.input_topic == t for f in frames),
                       "incomplete": sum(f.input_topic == t and not f.complete for f in frames)} for t in inputs},
        "outputs": {t: _output_section(t, msgtype, [f for f in frames if t in f.expected], unmatched.get(t, 0))
                    for t, msgtype in sorted(outputs.items())},
        "frames": [{"input": f.input_topic, "loop": f.loop, "index": f.index,
                    "stamp": f"{f.stamp_ns // 10**9}.{f.stamp_ns % 10**9:09d}", "frame_id": f.frame_id,
                    "results": {t: ({"objects": r.objects} if r.objects is not None else {}) |
                                {"round_trip_ms": round(f.round_trip_ms(t), 3)} for t, r in f.results.items()}}
                   for f in frames],
    }
    return report


def _stats_row(name: str, stats: Mapping[str, Any]) -> str:
    values = "".join(f"{stats[k]:>9.2f}" if stats[k] is not None else f"{'-':>9}"
                     for k in ("mean", "p50", "p95", "p99", "max"))
    return f"  {name:<24}{stats['count']:>7}{values}"


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text: totals, then per output topic its counts and latency table (ms)."""
    lines = [f"frames in {report['frames_in']}, out {report['frames_out']}, dropped {report['dropped']} "
             f"in {report['wall_s']:.1f} s ({report['output_rate_hz']:.1f} frames/s out)"]
    for topic, section in report["inputs"].items():
        lines.append(f"  {topic}: {section['published']} published, {section['incomplete']} not fully answered")
    header = f"  {'latency (ms)':<24}{'count':>7}" + "".join(f"{k:>9}" for k in ("mean", "p50", "p95", "p99", "max"))
    for topic, section in report["outputs"].items():
        lines.append(f"{topic} ({section['type'].split('/')[-1]}): {section['answered']}/{section['expected']} "
                     f"frames answered, {section['missing']} missing, {section['unmatched']} unmatched")
        objects = section.get("objects_per_frame")
        if objects:
            lines.append(f"  objects per frame: mean {objects['mean']:.2f}, min {objects['min']}, "
                         f"max {objects['max']}, total {objects['total']}")
        lines.append(header)
        lines.append(_stats_row("round trip (replay)", section["round_trip_ms"]))
        for stage, stats in section.get("stages_ms", {}).items():
            lines.append(_stats_row(stage, stats))
        if "stamp_status" in section:
            lines.append("  stamp status: " + ", ".join(f"{k} {v}" for k, v in section["stamp_status"].items()))
    return "\n".join(lines)
