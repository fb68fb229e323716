"""detector_node's /diagnostics: status names, hardware_id, counts that match the frames sent,
levels against the latency/rate bounds (set at startup and at runtime), rejected frames."""

import time
from pathlib import Path

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from harness import LifecycleClient, wait_for
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from trt_perception.ros.detector_node import DetectorNode

DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = ("/detector_node: detector latency", "/detector_node: detector frame rate", "/detector_node: device")


def start(ros, **params):
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("diagnostics_period", value=0.2)]
    overrides += [Parameter(name, value=value) for name, value in params.items()]
    node = ros.add(DetectorNode(context=ros.context, parameter_overrides=overrides))
    diagnostics, detections = [], []
    ros.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    ros.node.create_subscription(Detection2DArray, "detections", detections.append, 10)
    images = ros.node.create_publisher(Image, "image", 10)
    lifecycle = LifecycleClient(ros, "detector_node")
    assert lifecycle.set("configure") and lifecycle.set("activate")
    assert wait_for(lambda: images.get_subscription_count() > 0)
    return node, lifecycle, images, diagnostics, detections


def frame_msg(stamp_sec=0):
    frame = cv2.imread(str(DATA / "vtest_000.jpg"))
    header = Header(frame_id="cam0")
    header.stamp.sec = stamp_sec
    h, w = frame.shape[:2]
    return Image(header=header, height=h, width=w, encoding="bgr8", step=w * 3, data=frame.tobytes())


def send(images, detections, msg, count):
    """Publish ``count`` frames one at a time, each after the previous one's detections."""
    for i in range(count):
        images.publish(msg)
        assert wait_for(lambda: len(detections) >= i + 1, timeout=15), f"no detections for frame {i}"


def status(array, name):
    return next(s for s in array.status if s.name == name)


def wait_status(diagnostics, name, predicate, timeout=10.0):
    """The first status ``name`` published from now on that satisfies ``predicate``."""
    seen = len(diagnostics)
    found = []

    def check():
        for array in diagnostics[seen:]:
            match = [s for s in array.status if s.name == name and predicate(s)]
            if match:
                found.append(match[0])
                return True
        return False

    assert wait_for(check, timeout=timeout), f"no {name} status as expected; last: {diagnostics[-1:]}"
    return found[0]


def values(diag):
    return {kv.key: kv.value for kv in diag.values}


def test_statuses_names_hardware_id_and_counts_match_the_frames_sent(ros):
    node, _, images, diagnostics, detections = start(ros)
    send(images, detections, frame_msg(), 4)
    rate = wait_status(diagnostics, NAMES[1], lambda s: values(s)["frames processed"] == "4")
    array = diagnostics[-1]
    assert [s.name for s in array.status] == list(NAMES)
    assert array.header.stamp.sec > 0
    for diag in array.status:
        assert diag.hardware_id == node.hardware_id and diag.hardware_id.startswith("onnxruntime on CPU")
    counts = values(rate)
    assert counts["frames received"] == "4" and counts["frames dropped_busy"] == "0"
    assert counts["frames rejected"] == "0" and counts["frames failed"] == "0"
    assert float(counts["output rate (Hz)"]) > 0
    assert rate.level == DiagnosticStatus.OK

    latency = values(status(array, NAMES[0]))
    assert latency["processing count"] == "4" and latency["inference count"] == "4"
    assert 0 < float(latency["inference p50 (ms)"]) <= float(latency["inference max (ms)"])
    assert float(latency["processing p95 (ms)"]) >= float(latency["inference p95 (ms)"])
    assert latency["end_to_end count"] == "0" and latency["stamps flagged in window"] == "4"  # stamp 0
    device = values(status(array, NAMES[2]))
    assert device["device memory used (MiB)"] == "n/a"


def test_hardware_id_parameter_is_used(ros):
    _, _, _, diagnostics, _ = start(ros, hardware_id="front camera computer")
    assert wait_for(lambda: bool(diagnostics))
    assert {s.hardware_id for s in diagnostics[-1].status} == {"front camera computer"}


def test_tight_bounds_warn_and_error_and_runtime_changes_are_validated(ros):
    node, _, images, diagnostics, detections = start(ros, latency_warn_ms=0.001, latency_error_ms=0.0)
    now_sec = int(node.get_clock().now().nanoseconds // 10**9)
    send(images, detections, frame_msg(now_sec), 2)
    warn = wait_status(diagnostics, NAMES[0], lambda s: s.level == DiagnosticStatus.WARN)
    assert "p95 processing latency" in warn.message and "warn bound 0.001 ms" in warn.message

    assert node.set_parameters([Parameter("latency_error_ms", value=0.002)])[0].successful
    error = wait_status(diagnostics, NAMES[0], lambda s: s.level == DiagnosticStatus.ERROR)
    assert "error bound 0.002 ms" in error.message and values(error)["latency error bound (ms)"] == "0.002"

    result = node.set_parameters([Parameter("latency_warn_ms", value=1.0)])[0]  # above the error bound
    assert not result.successful and "must not exceed latency_error_ms" in result.reason
    result = node.set_parameters([Parameter("latency_error_ms", value=-1.0)])[0]
    assert not result.successful and "latency_error_ms" in result.reason
    result = node.set_parameters([Parameter("latency_source", value="median")])[0]
    assert not result.successful and "latency_source" in result.reason

    assert node.set_parameters([Parameter("latency_warn_ms", value=0.0), Parameter("latency_error_ms", value=0.0),
                                Parameter("latency_source", value="end_to_end")])[0].successful
    # a status computed while the three values were being applied may still show the old source
    ok = wait_status(diagnostics, NAMES[0], lambda s: s.level == DiagnosticStatus.OK
                     and values(s)["latency source"] == "end_to_end")
    assert "end-to-end latency" in ok.message


def test_rejected_frames_raise_a_warning_on_the_frame_rate_status(ros):
    node, _, images, diagnostics, detections = start(ros, qos_reliability="reliable", qos_depth=10)
    bad = Image(header=Header(frame_id="cam0"), height=4, width=4, encoding="weird8", step=4, data=bytes(16))
    for _ in range(3):
        images.publish(bad)
    assert wait_for(lambda: node.counters.rejected + node.counters.dropped_busy == 3)
    warn = wait_status(diagnostics, NAMES[1], lambda s: s.level == DiagnosticStatus.WARN)
    rejected = node.counters.rejected
    assert warn.message == f"{rejected} frames rejected (bad input)"
    assert values(warn)["frames rejected"] == str(rejected) and values(warn)["frames received"] == "3"


def test_no_output_below_a_minimum_rate_is_an_error(ros):
    node, _, images, diagnostics, detections = start(ros, min_output_rate_hz=5.0, stats_window=1.0)
    error = wait_status(diagnostics, NAMES[1], lambda s: s.level == DiagnosticStatus.ERROR)
    assert error.message == "no frame processed in the last 1 s"
    send(images, detections, frame_msg(), 2)  # 2 frames in a 1 s window: below 5 Hz
    warn = wait_status(diagnostics, NAMES[1], lambda s: s.level == DiagnosticStatus.WARN)
    assert "below the minimum 5 Hz" in warn.message


def test_diagnostics_only_while_active_and_not_at_all_with_period_zero(ros):
    _, lifecycle, _, diagnostics, _ = start(ros)
    assert wait_for(lambda: bool(diagnostics))
    assert lifecycle.set("deactivate")
    time.sleep(0.5)  # messages published before the deactivation may still be on their way
    seen = len(diagnostics)
    assert not wait_for(lambda: len(diagnostics) > seen, timeout=1.0)
    assert lifecycle.set("cleanup") and lifecycle.set("shutdown")


def test_period_zero_publishes_no_diagnostics(ros):
    node, _, images, diagnostics, detections = start(ros, diagnostics_period=0.0)
    send(images, detections, frame_msg(), 1)
    assert not wait_for(lambda: bool(diagnostics), timeout=1.0)
    assert ["/detector_node: " + s.task for s in node.health_statuses()] == list(NAMES)  # on request


def test_one_line_summary_in_the_log(ros, capfd):
    _, _, images, _, detections = start(ros, log_summary_period=0.3)
    send(images, detections, frame_msg(), 2)
    lines = []

    def logged():
        lines.extend(line for line in capfd.readouterr().err.splitlines() if "Hz in" in line)
        return any("total 2 received, 2 processed" in line for line in lines)

    assert wait_for(logged, timeout=5, period=0.2)
    line = next(line for line in lines if "total 2 received" in line)
    assert "[detector_node]" in line and "detector: " in line and "processing p50/p95" in line


def test_nodes_of_two_cameras_publish_distinct_status_names(ros):
    overrides = [Parameter("backend", value="onnxruntime"), Parameter("threads", value=1),
                 Parameter("diagnostics_period", value=0.2)]
    diagnostics = []
    ros.node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    for camera in ("cam_a", "cam_b"):
        ros.add(DetectorNode(context=ros.context, namespace=camera, parameter_overrides=overrides))
        lifecycle = LifecycleClient(ros, f"{camera}/detector_node")
        assert lifecycle.set("configure") and lifecycle.set("activate")

    def names():
        return {s.name for array in list(diagnostics) for s in array.status}

    expected = {f"/{camera}{name}" for camera in ("cam_a", "cam_b") for name in NAMES}
    assert wait_for(lambda: names() >= expected), names()
    assert names() == expected
