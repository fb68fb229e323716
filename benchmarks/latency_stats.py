"""Cost of the nodes' statistics: recording per frame (what every frame pays) and one snapshot
(what each diagnostics period pays), for full windows of 1000 and 10000 frames.

Per frame a node records one received event and one processed frame with its seven latencies
(``InputStats.received.record`` + ``TaskStats.record_frame``); a diagnostics period computes one
:func:`~trt_perception.core.telemetry.latency_stats.snapshot` and the health statuses per task.

Prints a table and writes it to ``benchmarks/results/latency_stats.md``.

    .venv/bin/python benchmarks/latency_stats.py [--repeats 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trt_perception.core.telemetry.health import HealthBounds, latency_status, rate_status
from trt_perception.core.telemetry.latency import STAGES
from trt_perception.core.telemetry.latency_stats import InputStats, TaskStats, WindowSettings, snapshot

ROOT = Path(__file__).resolve().parents[1]


def per_frame_us(capacity: int, repeats: int) -> list[float]:
    inputs = InputStats(WindowSettings(3600.0, capacity), 0)
    task = TaskStats(WindowSettings(3600.0, capacity), 0)
    stages = {stage: 1_000_000 for stage in STAGES}
    costs = []
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        now = time.monotonic_ns()
        inputs.received.record(now)
        task.record_frame(time.monotonic_ns(), stages, 5_000_000, 20_000_000)
        costs.append((time.perf_counter_ns() - t0) / 1e3)
    return costs


def snapshot_ms(capacity: int, repeats: int) -> list[float]:
    settings = WindowSettings(3600.0, capacity)
    inputs, task = InputStats(settings, 0), TaskStats(settings, 0)
    rng = np.random.default_rng(0)
    for i in range(capacity):
        inputs.received.record(i * 1000)
        task.record_frame(i * 1000, {s: int(v) for s, v in zip(STAGES, rng.integers(1, 10**7, 5))},
                          int(rng.integers(1, 10**8)), int(rng.integers(1, 10**8)))
    costs = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        snap = snapshot(inputs, task, capacity * 1000)
        latency_status("detector latency", snap, HealthBounds(100.0, 250.0))
        rate_status("detector frame rate", snap, HealthBounds())
        costs.append((time.perf_counter_ns() - t0) / 1e6)
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20000, help="frames recorded per window size")
    parser.add_argument("--snapshots", type=int, default=200, help="snapshots per window size")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latency_stats.md"))
    args = parser.parse_args()
    lines = ["# Statistics cost (core/telemetry/latency_stats.py, core/telemetry/health.py)", "",
             "| window (frames) | record per frame: median us | p99 us | snapshot + statuses: median ms | p99 ms |",
             "|---:|---:|---:|---:|---:|"]
    for capacity in tqdm((1000, 10000), desc="window sizes"):
        record = np.asarray(per_frame_us(capacity, args.repeats))
        snap = np.asarray(snapshot_ms(capacity, args.snapshots))
        lines.append(f"| {capacity} | {np.median(record):.2f} | {np.percentile(record, 99):.2f} | "
                     f"{np.median(snap):.3f} | {np.percentile(snap, 99):.3f} |")
    lines += ["", f"Record: one received event + one processed frame (7 latency values), {args.repeats} times; "
              f"snapshot: one task's snapshot, latency and frame-rate statuses over a full window, "
              f"{args.snapshots} times.",
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}, "
              f"numpy {np.__version__}."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
