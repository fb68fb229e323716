"""Health levels and messages from rolling statistics against bounds."""

import pytest

from trt_perception.core.telemetry.health import (
    ERROR,
    OK,
    WARN,
    HealthBounds,
    device_status,
    latency_status,
    rate_status,
    summary_line,
)
from trt_perception.core.telemetry.latency import STAGES
from trt_perception.core.telemetry.latency_stats import InputStats, TaskStats, WindowSettings, snapshot

S = 1_000_000_000


def run(frames=20, processing_ms=20.0, e2e_ms=30.0, rejected=0, failed=0, rate_hz=10.0):
    """Statistics of ``frames`` frames at ``rate_hz``, read one period after the last."""
    settings = WindowSettings(window_s=100.0, capacity=1000)
    inputs, task = InputStats(settings, 0), TaskStats(settings, 0)
    period = int(S / rate_hz)
    for i in range(frames):
        inputs.received.record(i * period)
        task.record_frame(i * period, {stage: 1_000_000 for stage in STAGES}, int(processing_ms * 1e6),
                          None if e2e_ms is None else int(e2e_ms * 1e6))
    for i in range(rejected):
        inputs.received.record(i * period)
        inputs.rejected.record(i * period)
    for i in range(failed):
        inputs.received.record(i * period)
        task.failed.record(i * period)
    return snapshot(inputs, task, now_ns=frames * period)


def values(status):
    return dict(status.values)


def test_latency_within_bounds_is_ok_with_every_statistic():
    status = latency_status("detector latency", run(), HealthBounds(100.0, 250.0))
    assert status.level == OK and "p95 20.0 ms" in status.message
    keys = values(status)
    assert keys["processing p95 (ms)"] == "20.000" and keys["end_to_end p50 (ms)"] == "30.000"
    assert keys["inference count"] == "20" and keys["stamps flagged in window"] == "0"


@pytest.mark.parametrize("bounds, level", [
    (HealthBounds(10.0, 250.0), WARN), (HealthBounds(5.0, 10.0), ERROR), (HealthBounds(0.0, 10.0), ERROR),
    (HealthBounds(0.0, 0.0), OK), (HealthBounds(25.0, 50.0), OK)])
def test_latency_levels_against_the_bounds(bounds, level):
    status = latency_status("detector latency", run(processing_ms=20.0), bounds)
    assert status.level == level
    if level != OK:
        assert "p95 processing latency 20.0 ms above the" in status.message


def test_latency_bound_on_end_to_end():
    bounds = HealthBounds(25.0, 100.0, latency_source="end_to_end")
    status = latency_status("pose latency", run(processing_ms=20.0, e2e_ms=30.0), bounds)
    assert status.level == WARN and "end-to-end latency 30.0 ms above the warn bound 25 ms" in status.message


def test_flagged_stamps_warn_and_end_to_end_without_stamps_is_unknown():
    snap = run(e2e_ms=None)
    status = latency_status("detector latency", snap, HealthBounds(100.0, 250.0))
    assert status.level == WARN and "20 of 20 frames with a flagged header stamp" in status.message
    status = latency_status("detector latency", snap, HealthBounds(100.0, 250.0, latency_source="end_to_end"))
    assert status.level == WARN and "end-to-end latency unknown" in status.message


def test_rate_ok_reports_counts_and_rates():
    status = rate_status("detector frame rate", run(rate_hz=10.0), HealthBounds(min_output_rate_hz=5.0))
    assert status.level == OK
    keys = values(status)
    assert float(keys["input rate (Hz)"]) == pytest.approx(10.0)
    assert float(keys["output rate (Hz)"]) == pytest.approx(10.0)
    assert keys["frames received"] == "20" and keys["frames processed in window"] == "20"


def test_rate_below_the_minimum_warns_and_no_output_is_an_error():
    status = rate_status("detector frame rate", run(rate_hz=10.0), HealthBounds(min_output_rate_hz=15.0))
    assert status.level == WARN and "below the minimum 15 Hz" in status.message
    status = rate_status("detector frame rate", run(frames=0), HealthBounds(min_output_rate_hz=1.0))
    assert status.level == ERROR and "no frame processed" in status.message


def test_rejected_frames_warn_failed_frames_are_errors_worst_first():
    status = rate_status("detector frame rate", run(rejected=3), HealthBounds())
    assert status.level == WARN and status.message == "3 frames rejected (bad input)"
    status = rate_status("detector frame rate", run(rejected=3, failed=2), HealthBounds())
    assert status.level == ERROR
    assert status.message == "inference failed on 2 frames; 3 frames rejected (bad input)"


def test_device_status_with_and_without_a_gpu():
    cpu = device_status("onnxruntime on CPU (x86_64)", None)
    assert cpu.level == OK and dict(cpu.values)["device memory used (MiB)"] == "n/a"
    gpu = device_status("tensorrt on H100", (2 * 1024**3, 80 * 1024**3))
    assert dict(gpu.values)["device memory used (MiB)"] == "2048"
    assert dict(gpu.values)["device memory total (MiB)"] == "81920"


def test_summary_line_names_rates_percentiles_and_counts():
    line = summary_line("detector", run(rejected=2))
    assert line.startswith("detector: 11.0 Hz in, 10.0 Hz out; processing p50/p95 20.000/20.000 ms")
    assert "2 rejected" in line and "22 received, 20 processed" in line
