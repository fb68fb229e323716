"""The replay report (frames in/out, drops, latency statistics, objects per frame) and its plot,
on hand-made records with known answers."""

import json

import cv2
import numpy as np
import pytest

from trt_perception.tools.latency_plot import COLOURS, draw_plot, write_plot
from trt_perception.tools.replay_report import OutputResult, ReplayedFrame, format_report, replay_report

DETECTIONS, LATENCY = "/cam/detections", "/cam/detector/latency"
OUTPUTS = {DETECTIONS: "vision_msgs/msg/Detection2DArray", LATENCY: "trt_perception/msg/FrameLatency"}
MS = 1_000_000


def frames():
    """Five frames published 100 ms apart; frame k answered after (10 + k) ms with k objects,
    except frame 3 (no detections, latency only) and frame 4 (nothing)."""
    out = []
    for k in range(5):
        frame = ReplayedFrame("/cam/image_raw", 0, k, 1_700_000_000 * 10**9 + k, "cam", 100 * k * MS,
                              (DETECTIONS, LATENCY))
        received = frame.published_ns + (10 + k) * MS
        if k < 3:
            frame.results[DETECTIONS] = OutputResult(received, objects=k)
        if k < 4:
            stages = {"convert": 1.0, "preprocess": 2.0, "inference": 5.0 + k, "postprocess": 1.0, "publish": 0.5}
            if k == 0:
                stages["end_to_end"] = 40.0
            frame.results[LATENCY] = OutputResult(received + MS, stages_ms=stages, stamp_status=0 if k == 0 else 2)
        out.append(frame)
    return out


def test_counts_drops_and_objects():
    report = replay_report(frames(), OUTPUTS, {DETECTIONS: 2}, wall_s=0.5, settings={"rate": 0.0})
    assert (report["frames_in"], report["frames_out"], report["dropped"]) == (5, 3, 2)
    assert report["output_rate_hz"] == pytest.approx(6.0)
    assert report["inputs"] == {"/cam/image_raw": {"published": 5, "incomplete": 2}}
    detections = report["outputs"][DETECTIONS]
    assert (detections["answered"], detections["missing"], detections["unmatched"]) == (3, 2, 2)
    assert detections["objects_per_frame"] == {"mean": 1.0, "min": 0, "max": 2, "total": 3}
    assert report["outputs"][LATENCY]["stamp_status"] == {"ok": 1, "future": 0, "stale": 3, "missing": 0}
    assert report["settings"] == {"rate": 0.0}
    assert [f["results"].get(DETECTIONS) for f in report["frames"]] == [
        {"objects": 0, "round_trip_ms": 10.0}, {"objects": 1, "round_trip_ms": 11.0},
        {"objects": 2, "round_trip_ms": 12.0}, None, None]
    assert report["frames"][1]["stamp"] == "1700000000.000000001"
    json.dumps(report, allow_nan=False)   # strict JSON: absent statistics are null, not NaN


def test_latency_statistics_per_stage():
    report = replay_report(frames(), OUTPUTS, {}, wall_s=1.0, settings={})
    stages = report["outputs"][LATENCY]["stages_ms"]
    inference = stages["inference"]     # 5, 6, 7, 8
    assert inference["count"] == 4 and inference["mean"] == pytest.approx(6.5)
    assert inference["p50"] == pytest.approx(6.5) and inference["max"] == pytest.approx(8.0)
    assert inference["p95"] == pytest.approx(5 + 0.95 * 3)       # linear interpolation
    assert stages["end_to_end"]["count"] == 1                     # flagged stamps are left out
    assert report["outputs"][DETECTIONS]["round_trip_ms"]["p50"] == pytest.approx(11.0)
    assert report["outputs"][LATENCY]["round_trip_ms"]["max"] == pytest.approx(14.0)


def test_text_report_names_every_output_and_its_drops():
    text = format_report(replay_report(frames(), OUTPUTS, {}, wall_s=0.5, settings={}))
    assert text.splitlines()[0] == "frames in 5, out 3, dropped 2 in 0.5 s (6.0 frames/s out)"
    assert f"{DETECTIONS} (Detection2DArray): 3/5 frames answered, 2 missing, 0 unmatched" in text
    assert "objects per frame: mean 1.00, min 0, max 2, total 3" in text
    assert "stamp status: ok 1, future 0, stale 3, missing 0" in text


def test_empty_series_report_nothing_instead_of_numbers():
    frame = ReplayedFrame("/cam/image_raw", 0, 0, 1, "cam", 0, (DETECTIONS,))
    report = replay_report([frame], {DETECTIONS: OUTPUTS[DETECTIONS]}, {}, wall_s=1.0, settings={})
    assert report["outputs"][DETECTIONS]["round_trip_ms"] == {
        "count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    assert "round trip (replay)           0        -        -" in format_report(report)


def colour_mask(image, colour):
    return np.all(np.abs(image.astype(int) - colour) < 40, axis=-1)


def test_plot_draws_each_series_where_its_values_are_with_gaps():
    values = [50.0] * 11
    values[4:7] = [np.nan] * 3
    image = draw_plot({"flat": values, "rising": np.linspace(0, 100, 11)}, "t", "frame", "ms", size=(1000, 560))
    assert image.shape == (560, 1000, 3)
    # plot area: x 70..980 for frames 0..10, y 40..450 for 100..0 ms (the ceiling of 100 is 100)
    flat = colour_mask(image, COLOURS[0])
    rows = np.flatnonzero(flat[:, 100:300].any(axis=1))
    assert abs(rows.mean() - (40 + 410 * 0.5)) <= 2                  # y = 50 ms at mid height
    gap = slice(70 + int(910 * 0.45), 70 + int(910 * 0.55))          # frames 4.5..5.5: missing
    assert not flat[40:450, gap].any()
    rising = colour_mask(image, COLOURS[1])
    assert rising[440:452, 70:80].any() and rising[38:50, 960:982].any()   # (0, 0) and (10, 100)


def test_plot_file_is_a_png(tmp_path):
    write_plot(tmp_path / "p.png", {"a": [1.0, 2.0]}, "t", "x", "y")
    assert cv2.imread(str(tmp_path / "p.png")).shape == (560, 1000, 3)
