"""Rolling latency statistics and rates: known inputs, numpy as the reference, injected clocks."""

import math

import numpy as np
import pytest

from trt_perception.core.telemetry.latency import STAGES
from trt_perception.core.telemetry.latency_stats import (
    LATENCY_SERIES,
    InputStats,
    RollingWindow,
    SeriesStats,
    TaskStats,
    WindowSettings,
    snapshot,
    totals,
)

S = 1_000_000_000  # ns per second


def test_percentiles_match_numpy_on_a_synthetic_series():
    rng = np.random.default_rng(0)
    values_ns = rng.lognormal(mean=16.0, sigma=0.5, size=500)  # ~9 ms, skewed
    window = RollingWindow(capacity=1000, window_s=100.0, columns=1)
    for i, value in enumerate(values_ns):
        window.record(i * S // 10, [value])
    (stats,) = window.column_stats(now_ns=50 * S)
    ms = values_ns / 1e6
    assert stats.count == 500
    assert stats.mean == pytest.approx(ms.mean(), rel=1e-12)
    assert (stats.p50, stats.p95, stats.p99) == pytest.approx(tuple(np.percentile(ms, [50, 95, 99])), rel=1e-12)
    assert stats.max == pytest.approx(ms.max(), rel=1e-12)


def test_capacity_keeps_only_the_newest_frames():
    window = RollingWindow(capacity=10, window_s=1000.0, columns=1)
    for i in range(25):  # values 0..24 ms; only 15..24 are kept
        window.record(i * S, [i * 1e6])
    (stats,) = window.column_stats(now_ns=25 * S)
    assert window.total == 25
    assert stats.count == 10 and stats.max == 24.0 and stats.mean == pytest.approx(19.5)
    assert stats.p50 == pytest.approx(np.percentile(np.arange(15, 25), 50))


def test_time_window_evicts_old_frames():
    window = RollingWindow(capacity=100, window_s=2.0, columns=1)
    for t, value in [(0, 100.0), (1, 200.0), (3, 1.0), (4, 3.0)]:  # seconds, ms
        window.record(t * S, [value * 1e6])
    (stats,) = window.column_stats(now_ns=4 * S + S // 2)  # window [2.5 s, 4.5 s]
    assert stats.count == 2 and stats.mean == pytest.approx(2.0) and stats.max == pytest.approx(3.0)
    assert window.count(now_ns=10 * S) == 0
    assert window.column_stats(now_ns=10 * S)[0].count == 0


def test_nan_values_are_left_out_of_their_series_only():
    window = RollingWindow(capacity=10, window_s=10.0, columns=2)
    window.record(1 * S, [1e6, math.nan])
    window.record(2 * S, [3e6, 5e6])
    first, second = window.column_stats(now_ns=3 * S)
    assert first.count == 2 and first.mean == pytest.approx(2.0)
    assert second.count == 1 and second.p99 == pytest.approx(5.0)


def test_empty_series_reports_nan():
    stats = SeriesStats.of(np.array([]))
    assert stats.count == 0 and math.isnan(stats.p95) and math.isnan(stats.mean)


def test_rate_over_a_full_window():
    window = RollingWindow(capacity=1000, window_s=10.0)
    for i in range(400):  # 20 Hz for 20 s
        window.record(i * S // 20)
    assert window.rate(now_ns=20 * S) == pytest.approx(20.0)
    assert window.count(now_ns=20 * S) == 200


def test_rate_since_start_is_over_the_time_since_start():
    window = RollingWindow(capacity=1000, window_s=10.0, now_ns=100 * S)
    for i in range(30):  # 30 Hz for 1 s after activation at 100 s
        window.record(100 * S + i * S // 30)
    assert window.rate(now_ns=101 * S) == pytest.approx(30.0)


def test_start_excludes_events_before_activation_from_the_window_not_the_total():
    window = RollingWindow(capacity=100, window_s=10.0)
    for i in range(5):
        window.record(i * S)
    window.start(6 * S)
    window.record(7 * S)
    assert window.total == 6 and window.count(now_ns=8 * S) == 1
    assert window.rate(now_ns=8 * S) == pytest.approx(0.5)  # one event in the 2 s since start


def test_rate_when_the_window_holds_more_events_than_the_capacity():
    window = RollingWindow(capacity=50, window_s=10.0)
    for i in range(1000):  # 100 Hz for 10 s; only the last 50 (0.5 s) are kept
        window.record(i * S // 100)
    now = 10 * S
    assert window.rate(now_ns=now) == pytest.approx(100.0, rel=0.03)


def test_rate_drops_to_zero_when_events_stop():
    window = RollingWindow(capacity=100, window_s=5.0)
    for i in range(10):
        window.record(i * S)
    assert window.rate(now_ns=10 * S + S // 2) == pytest.approx(4 / 5)  # events at 6, 7, 8, 9 s
    assert window.rate(now_ns=30 * S) == 0.0


def test_clear_forgets_everything():
    window = RollingWindow(capacity=10, window_s=10.0, columns=1)
    window.record(S, [1.0])
    window.clear(2 * S)
    assert window.total == 0 and window.count(3 * S) == 0


def test_bad_window_settings_are_refused():
    with pytest.raises(ValueError):
        RollingWindow(capacity=0, window_s=1.0)
    with pytest.raises(ValueError):
        RollingWindow(capacity=10, window_s=0.0)


def test_snapshot_combines_input_and_task_events():
    settings = WindowSettings(window_s=10.0, capacity=100)
    inputs, task = InputStats(settings, 0), TaskStats(settings, 0)
    for i in range(10):  # 10 frames at 1 Hz: 1 dropped at the input, 1 rejected, 1 dropped by the
        t = i * S        # task, 1 failed, 6 processed with 10 ms stages and 60 ms end to end
        inputs.received.record(t)
        if i == 0:
            inputs.dropped.record(t)
        elif i == 1:
            inputs.rejected.record(t)
        elif i == 2:
            task.dropped.record(t)
        elif i == 3:
            task.failed.record(t)
        else:
            task.record_frame(t, {stage: 10_000_000 for stage in STAGES}, 50_000_000,
                              None if i == 9 else 60_000_000)
    snap = snapshot(inputs, task, now_ns=10 * S)
    assert snap.totals == totals(inputs, task)
    assert (snap.totals.received, snap.totals.processed, snap.totals.dropped_busy, snap.totals.rejected,
            snap.totals.failed) == (10, 6, 2, 1, 1)
    assert snap.in_window == snap.totals
    assert snap.input_rate_hz == pytest.approx(1.0) and snap.output_rate_hz == pytest.approx(0.6)
    assert set(snap.latency) == set(LATENCY_SERIES)
    assert snap.latency["inference"].p95 == pytest.approx(10.0)
    assert snap.latency["processing"].mean == pytest.approx(50.0)
    assert snap.latency["end_to_end"].count == 5 and snap.stamps_flagged == 1
    later = snapshot(inputs, task, now_ns=15 * S)  # window [5 s, 15 s]: frames 5..9
    assert later.in_window.received == 5 and later.in_window.processed == 5 and later.in_window.failed == 0
    assert later.totals == snap.totals


def test_many_events_at_once_count_fully_and_fill_at_most_the_ring():
    window = RollingWindow(capacity=5, window_s=10.0)
    window.record(1_000, count=3)
    window.record(2_000, count=0)           # nothing happened
    assert window.total == 3 and window.count(3_000) == 3
    window.record(4_000, count=1_000_000)   # a huge gap: bounded work, every event counted
    assert window.total == 1_000_003
    assert window.count(5_000) == 5         # the ring holds the newest 5, all at 4_000
    assert window.rate(5_000) == 5 * 1e9 / (5_000 - 4_000)


def test_snapshot_totals_and_window_counts_agree_while_frames_are_recorded():
    """Each window is read once: a frame recorded between reading the totals and the window
    statistics cannot make ``processed`` exceed the window's count (all frames are in the window)."""
    import threading
    import time

    settings = WindowSettings(window_s=3600.0, capacity=20000)
    inputs, task = InputStats(settings, 0), TaskStats(settings, 0)
    stop = threading.Event()

    def record():
        for _ in range(settings.capacity - 1):   # every frame stays in the window
            if stop.is_set():
                return
            now = time.monotonic_ns()
            inputs.received.record(now)
            task.record_frame(now, {}, 1, 1)

    thread = threading.Thread(target=record)
    thread.start()
    try:
        for _ in range(200):
            snap = snapshot(inputs, task, time.monotonic_ns() + S)
            assert snap.totals.processed == snap.in_window.processed == snap.latency["processing"].count
            assert snap.totals.received == snap.in_window.received
    finally:
        stop.set()
        thread.join()
    assert task.frames.total > 0
