"""The ros2_benchmark-style part of ``trt-perception replay``: fixed-rate runs (``--rate-hz``) and
the peak-rate search (``--find-peak``), with the node process's CPU use and RSS (``--node-pid``).

See :mod:`trt_perception.tools.rate_benchmark` for what a trial measures and how the peak is found.
Each trial publishes every camera of the bag at the trial's rate for ``--trial-s`` seconds (cycling
through the bag), then waits up to ``--timeout`` seconds for the last answers.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from trt_perception.core.io.bag_message_reader import BagImage
from trt_perception.core.telemetry.process_stats import cpu_seconds, sample
from trt_perception.tools.rate_benchmark import (
    PEAK_MAX_UNANSWERED,
    PeakSearch,
    TrialStats,
    find_peak,
    format_trials,
    trial_stats,
)
from trt_perception.tools.replay_report import RESULT_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the rate-benchmark options (``--rate-hz``, ``--find-peak``, ...) to ``replay``'s ``parser``."""
    group = parser.add_argument_group("rate benchmark (ros2_benchmark method)")
    group.add_argument("--rate-hz", metavar="HZ,HZ,...",
                       help="fixed-rate runs: publish every camera at each of these rates (e.g. 10,30) and "
                            "report unanswered frames, round-trip percentiles and jitter per camera")
    group.add_argument("--find-peak", action="store_true",
                       help="search the highest rate at which at most --max-unanswered of each camera's "
                            "frames go unanswered")
    group.add_argument("--peak-range", default="1,60", metavar="LOW,HIGH",
                       help="rates the peak search covers, Hz (default 1,60)")
    group.add_argument("--peak-steps", type=int, default=5, metavar="N",
                       help="bisection steps of the peak search (default 5)")
    group.add_argument("--repeats", type=int, default=2, metavar="N",
                       help="trials per rate in the peak search; a rate passes when all do (default 2)")
    group.add_argument("--max-unanswered", type=float, default=PEAK_MAX_UNANSWERED, metavar="F",
                       help="largest unanswered fraction per camera of a passing trial "
                            f"(default {PEAK_MAX_UNANSWERED})")
    group.add_argument("--trial-s", type=float, default=5.0, metavar="S",
                       help="seconds of publishing per trial (default 5)")
    group.add_argument("--node-pid", type=int, metavar="PID",
                       help="the node process: report its CPU use (percent of one core) and RSS per trial")


def wanted(args: argparse.Namespace) -> bool:
    """Whether the arguments ask for the rate benchmark instead of a plain replay."""
    return bool(args.rate_hz) or args.find_peak


def parse_rates(args: argparse.Namespace) -> tuple[list[float], tuple[float, float]]:
    """(fixed rates, peak range) from the arguments; raises ValueError naming the bad one."""
    def floats(text: str, option: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{option} takes numbers separated by commas, got {text!r}") from None
        if not values or min(values) <= 0:
            raise ValueError(f"{option} takes rates > 0 Hz, got {text!r}")
        return values

    rates = floats(args.rate_hz, "--rate-hz") if args.rate_hz else []
    low_high = floats(args.peak_range, "--peak-range")
    if len(low_high) != 2 or low_high[0] > low_high[1]:
        raise ValueError(f"--peak-range takes LOW,HIGH with LOW <= HIGH, got {args.peak_range!r}")
    if args.trial_s <= 0 or args.peak_steps < 0 or args.repeats < 1 or not 0 <= args.max_unanswered < 1:
        raise ValueError("--trial-s must be > 0, --peak-steps >= 0, --repeats >= 1, --max-unanswered in [0, 1)")
    if args.node_pid is not None:
        try:
            sample(args.node_pid)
        except OSError:
            raise ValueError(f"--node-pid {args.node_pid}: no such process readable in /proc") from None
    return rates, (low_high[0], low_high[1])


def trial_runner(replayer: Any, messages: Sequence[BagImage], args: argparse.Namespace,
                 remaps: Mapping[str, str]) -> Callable[[float], TrialStats]:
    """``trial(rate_hz)``: one trial with ``replayer`` (connected), as the module docstring says."""
    result_topics = [t for t, msgtype in replayer.outputs.items() if msgtype in RESULT_TYPES]
    pid: Optional[int] = args.node_pid

    def trial(rate_hz: float) -> TrialStats:
        replayer.take_frames()
        rss = [sample(pid).rss_mib] if pid is not None else []
        cpu0, t0 = (cpu_seconds(pid) if pid is not None else 0.0), time.monotonic()
        replayer.play_at(messages, rate_hz, args.trial_s, remaps=remaps)
        if pid is not None:
            rss.append(sample(pid).rss_mib)
        replayer.drain(args.timeout)
        wall = time.monotonic() - t0
        cpu = 100 * (cpu_seconds(pid) - cpu0) / wall if pid is not None else None
        if pid is not None:
            rss.append(sample(pid).rss_mib)
        stats = trial_stats(replayer.take_frames(), result_topics, rate_hz, wall, cpu, max(rss) if rss else None)
        print("\n".join(format_trials([stats]).splitlines()[1:]), flush=True)   # its rows, as it ends
        return stats

    return trial


def run_benchmark(trial: Callable[[float], TrialStats], rates: Sequence[float],
                  peak_range: Optional[tuple[float, float]],
                  args: argparse.Namespace) -> tuple[list[TrialStats], Optional[PeakSearch]]:
    """The fixed-rate trials, then (with ``peak_range``) the peak search."""
    print(format_trials([]), flush=True)   # the header of the rows each trial prints
    fixed = [trial(rate) for rate in rates]
    peak = None
    if peak_range is not None:
        peak = find_peak(trial, peak_range[0], peak_range[1], args.peak_steps, args.repeats, args.max_unanswered)
    return fixed, peak


def benchmark_report(fixed: Sequence[TrialStats], peak: Optional[PeakSearch],
                     settings: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready report: settings, fixed-rate trials, peak search."""
    return {"settings": dict(settings), "fixed_rate": [t.as_dict() for t in fixed],
            "peak": peak.as_dict() if peak is not None else None}


def format_benchmark(fixed: Sequence[TrialStats], peak: Optional[PeakSearch], max_unanswered: float) -> str:
    """The printed summary: the fixed-rate table (round trip and jitter in ms), then the peak."""
    lines = []
    if fixed:
        lines += ["fixed-rate runs (round trip and jitter in ms):", format_trials(fixed)]
    if peak is not None:
        found = f"{peak.peak_hz:.2f} Hz" if peak.peak_hz is not None else "none (even the lowest rate failed)"
        lines.append(f"peak rate with <= {100 * max_unanswered:g} % unanswered per camera: {found} "
                     f"({len(peak.trials)} trials)")
    return "\n".join(lines)


def plot_series(fixed: Sequence[TrialStats], peak: Optional[PeakSearch]) -> dict[str, list[float]]:
    """PNG series: round-trip p50/p95/p99 per camera over the fixed rates (x: trial), or, with only a
    peak search, the unanswered percentage and the rate of each trial.
    """
    if fixed:
        series: dict[str, list[float]] = {}
        for stats in fixed:
            for topic, camera in stats.cameras.items():
                for key in ("p50", "p99"):
                    value = camera.round_trip_ms[key]
                    series.setdefault(f"{key} {topic}", []).append(float("nan") if value is None else value)
        return series
    trials = peak.trials if peak is not None else []
    return {"unanswered % (worst camera)": [100 * t.unanswered for t in trials],
            "rate Hz": [t.rate_hz for t in trials]}
