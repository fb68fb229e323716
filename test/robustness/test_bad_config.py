"""Bad configuration of detector_node: broken model files and configs, refused parameter values at
startup and at runtime, damaged engine cache entries.

A broken model or config fails configure with the reason in the log (lifecycle FAILURE, not ERROR),
leaves the node unconfigured, and configure succeeds once the files are fixed. A startup parameter
value that rclpy refuses fails configure with the reason until it is corrected; a runtime change is
refused with its reason and changes nothing. Nothing here may bring the process down.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
from pathlib import Path

import cv2
import pytest
from harness import LifecycleClient, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rcl_interfaces.msg import Log
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from trt_perception.ros.detector_node import DEFAULT_MODEL, DetectorNode
from trt_perception.ros.resources import share_dir

DATA = Path(__file__).resolve().parents[1] / "data"
BUNDLED = (share_dir() / DEFAULT_MODEL).parent
MODEL = "ssdlite_pedestrian_raw_nchw.onnx"
CONFIG = "ssdlite_pedestrian.yaml"
NAMES = itertools.count()
#: /rosout keeps recent messages for late subscribers (transient local): none is lost to discovery
ROSOUT = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def errors_of(ros, node_name: str) -> list[str]:
    """ERROR messages the node ``node_name`` logs (collected from /rosout)."""
    got: list[str] = []
    ros.node.create_subscription(
        Log, "/rosout", lambda log: got.append(log.msg) if log.name == node_name and log.level >= Log.ERROR else None,
        ROSOUT)
    return got


def start(ros, *overrides: Parameter) -> tuple[DetectorNode, LifecycleClient, list[str]]:
    """A detector node, its lifecycle client and its ERROR log messages.

    Each node gets a name of its own: rcl routes the /rosout messages of a logger name through the
    first node of that name in the process, and a node of an earlier test may still be finalizing.
    """
    name = f"detector_{next(NAMES)}"
    errors = errors_of(ros, name)
    node = ros.add(DetectorNode(name, context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("threads", value=1), *overrides]))
    return node, LifecycleClient(ros, name), errors


def assert_configure_fails(lifecycle: LifecycleClient, node: DetectorNode, errors: list[str], reason: str) -> None:
    logged = len(errors)
    assert not lifecycle.set("configure")
    assert lifecycle.state() == "unconfigured" and node.pipeline is None
    assert wait_for(lambda: any(reason in e for e in errors[logged:])), (reason, errors)
    failed = [e for e in errors[logged:] if e.startswith("configure failed")]
    assert failed and not any("unexpectedly" in e for e in failed), failed  # FAILURE, not ERROR


@pytest.fixture
def model_dir(tmp_path):
    """A copy of the bundled model's directory (config, labels, ONNX model)."""
    for name in (CONFIG, MODEL, "ssdlite_pedestrian.labels"):
        shutil.copy(BUNDLED / name, tmp_path / name)
    return tmp_path


def break_model(how: str):
    def apply(model: Path) -> None:
        model.unlink()
        if how == "directory":
            model.mkdir()
        elif how == "garbage":
            model.write_bytes(b"\x08\x07garbage, not a protobuf" * 50)
        elif how == "truncated":
            model.write_bytes((BUNDLED / MODEL).read_bytes()[:4_000_000])
        elif how == "empty":
            model.write_bytes(b"")
    return apply


def fix_model(model: Path) -> None:
    if model.is_dir():
        model.rmdir()
    shutil.copy(BUNDLED / MODEL, model)


def edit_config(old: str, new: str):
    def apply(config: Path) -> None:
        config.write_text(config.read_text().replace(old, new))
    return apply


def fix_config(config: Path) -> None:
    shutil.copy(BUNDLED / CONFIG, config)


CASES = {  # name: (file, break it, fix it, reason in the log)
    "missing model": (MODEL, break_model("missing"), fix_model, f"model file {{dir}}/{MODEL} does not exist"),
    "directory as model": (MODEL, break_model("directory"), fix_model, f"{MODEL} is a directory, not a model file"),
    "garbage model": (MODEL, break_model("garbage"), fix_model, "cannot load ONNX model"),
    "truncated model": (MODEL, break_model("truncated"), fix_model, "INVALID_PROTOBUF"),
    "empty model": (MODEL, break_model("empty"), fix_model, "cannot load ONNX model"),
    "wrong input name": (CONFIG, edit_config("input: normalized_input_image_tensor", "input: images"), fix_config,
                         "model has no input 'images'"),
    "wrong input size": (CONFIG, edit_config("width: 300", "width: 320"), fix_config,
                         "has shape [?, 3, 300, 300] but the preprocess section makes [1, 3, 300, 320]"),
    "wrong input dtype": (CONFIG, edit_config("dtype: float32", "dtype: float16"), fix_config,
                          "is float32 but preprocess.dtype is float16"),
    "wrong output name": (CONFIG, edit_config("box_encodings: box_encodings", "box_encodings: boxes"), fix_config,
                          "output 'boxes' (role 'box_encodings') is not a model output"),
    "unknown task": (CONFIG, edit_config("task: ssd", "task: segmentation"), fix_config, "task must be one of"),
    "invalid yaml": (CONFIG, edit_config("task: ssd", "task: [ssd"), fix_config, "is not valid YAML"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_model_or_config_fails_configure_with_the_reason_and_a_retry_succeeds_once_fixed(ros, model_dir, case):
    name, damage, repair, reason = CASES[case]
    damage(model_dir / name)
    node, lifecycle, errors = start(ros, Parameter("model_config", value=str(model_dir / CONFIG)))
    assert_configure_fails(lifecycle, node, errors, reason.format(dir=model_dir))
    assert_configure_fails(lifecycle, node, errors, reason.format(dir=model_dir))  # a retry fails the same way
    repair(model_dir / name)
    assert lifecycle.set("configure") and lifecycle.state() == "inactive"
    assert node.pipeline is not None and node.pipeline.config.model_path == model_dir / MODEL


def test_an_unreadable_model_fails_configure_with_the_reason(ros, model_dir):
    if os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop reading (the directory, empty, garbage and "
                    "truncated model cases cover unreadable models)")
    (model_dir / MODEL).chmod(0)
    node, lifecycle, errors = start(ros, Parameter("model_config", value=str(model_dir / CONFIG)))
    assert_configure_fails(lifecycle, node, errors, "cannot load ONNX model")
    (model_dir / MODEL).chmod(0o644)
    assert lifecycle.set("configure")


def test_after_a_failed_configure_the_fixed_node_detects(ros, model_dir):
    (model_dir / MODEL).unlink()
    node, lifecycle, errors = start(ros, Parameter("model_config", value=str(model_dir / CONFIG)))
    assert_configure_fails(lifecycle, node, errors, "does not exist")
    fix_model(model_dir / MODEL)
    detections: list[Detection2DArray] = []
    ros.node.create_subscription(Detection2DArray, "detections", detections.append, 10)
    images = ros.node.create_publisher(Image, "image", qos_profile_sensor_data)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    frame = cv2.imread(str(DATA / "vtest_000.jpg"))
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="bgr8", step=frame.shape[1] * 3,
                data=frame.tobytes())
    assert wait_for(lambda: (images.publish(msg), bool(detections))[1], timeout=15, period=0.2)
    assert len(detections[0].detections) >= 1


STARTUP = [  # (override, reason in the log, a valid value when the parameter may change at runtime)
    (Parameter("threads", value="two"), "threads: the value given at startup was refused", None),
    (Parameter("threads", value=100), "Parameter threads out of range", None),
    (Parameter("qos_depth", value=0), "Parameter qos_depth out of range", None),
    (Parameter("input_type", value="video"), "input_type must be one of raw, compressed, got 'video'", None),
    (Parameter("backend", value="cuda"), "backend must be one of", None),
    (Parameter("stamp_tolerance", value=math.inf), "stamp_tolerance", None),
    (Parameter("score_threshold", value=math.nan), "Parameter score_threshold out of range", 0.4),
    (Parameter("score_threshold", value=1), "expecting type 'DOUBLE'", 0.4),
    (Parameter("nms_iou_threshold", value=-0.5), "nms_iou_threshold", 0.5),
    (Parameter("top_k", value=True), "expecting type 'INTEGER'", 20),
    (Parameter("class_filter", value=[1, 2]), "class_filter: the value given at startup was refused", ["pedestrian"]),
    (Parameter("class_filter", value=["bicycle"]), "bicycle", ["1"]),
]


@pytest.mark.parametrize("override, reason, valid", STARTUP, ids=[f"{o.name}={o.value}" for o, _, _ in STARTUP])
def test_a_bad_startup_parameter_fails_configure_until_corrected(ros, override, reason, valid):
    node, lifecycle, errors = start(ros, override)
    assert_configure_fails(lifecycle, node, errors, reason)
    assert_configure_fails(lifecycle, node, errors, reason)
    result = node.set_parameters([Parameter(override.name, value=valid if valid is not None else override.value)])[0]
    if valid is None:  # read only: only a restart with a corrected value helps; the node keeps serving services
        assert not result.successful
        assert_configure_fails(lifecycle, node, errors, reason)
    else:
        assert result.successful, result.reason
        assert lifecycle.set("configure") and lifecycle.state() == "inactive"
        assert node.get_parameter(override.name).value == valid


RUNTIME = [
    ("score_threshold", math.nan), ("score_threshold", math.inf), ("score_threshold", -math.inf),
    ("score_threshold", -0.1), ("score_threshold", "high"), ("score_threshold", 1), ("nms_iou_threshold", math.nan),
    ("nms_iou_threshold", 1.01), ("top_k", 0), ("top_k", 2**40), ("top_k", 1.5), ("pre_nms_top_k", -1),
    ("class_filter", ["bicycle"]), ("class_filter", [1]), ("latency_warn_ms", math.nan),
    ("latency_warn_ms", 500.0), ("min_output_rate_hz", -1.0), ("latency_source", "gpu"),
    ("threads", 2), ("model_config", "/elsewhere.yaml"), ("backend", "tensorrt"),
]


def test_runtime_changes_that_are_not_valid_are_refused_with_a_reason_and_change_nothing(ros):
    node, lifecycle, _ = start(ros)
    assert lifecycle.set("configure") and lifecycle.set("activate")
    before = dict(node.pipeline.decoder.runtime_params())
    client = ros.node.create_client(SetParameters, f"/{node.get_name()}/set_parameters")
    for name, value in RUNTIME:  # through the service, as `ros2 param set` does it
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        result = ros.call_idempotent(client, request).results[0]   # refused: sending it again is safe
        assert not result.successful and result.reason, (name, value)
    assert node.pipeline.decoder.runtime_params() == before
    assert lifecycle.state() == "active"
    for name in ("score_threshold", "top_k"):  # still the model configuration's values, not the user's
        assert node.get_parameter(name).value == before[name]
        assert name in node.model_values.shown


# ---- engine cache -----------------------------------------------------------------------------------

ENGINE = bytes(range(256)) * 40


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(engine_damage=st.sampled_from(["none", "truncate", "extend", "flip", "empty", "directory", "other engine"]),
       sidecar_damage=st.sampled_from(["none", "truncate", "not json", "field", "drop field", "directory", "empty"]),
       field=st.sampled_from(["key", "engine_sha256", "engine_bytes", "format"]), value=json_values,
       position=st.integers(0, len(ENGINE) - 1))
def test_a_damaged_cache_entry_is_never_loaded(engine_cache, engine_damage, sidecar_damage, field, value, position):
    """Whatever happened to the files of an entry, lookup never raises and returns either exactly
    the stored engine or no engine with the reason; get_or_build then rebuilds a usable entry."""
    cache, key, _ = engine_cache
    cache.store(key, ENGINE)
    engine, sidecar = cache.engine_path(key), cache.sidecar_path(key)
    good_sidecar = json.loads(sidecar.read_text())
    if engine_damage == "truncate":
        engine.write_bytes(ENGINE[:position])
    elif engine_damage == "extend":
        engine.write_bytes(ENGINE + b"\0")
    elif engine_damage == "flip":
        engine.write_bytes(ENGINE[:position] + bytes([ENGINE[position] ^ 1]) + ENGINE[position + 1:])
    elif engine_damage == "empty":
        engine.write_bytes(b"")
    elif engine_damage == "directory":
        engine.unlink()
        engine.mkdir()
    elif engine_damage == "other engine":
        engine.write_bytes(ENGINE[::-1])
    if sidecar_damage == "truncate":
        sidecar.write_text(sidecar.read_text()[:position % 200])
    elif sidecar_damage == "not json":
        sidecar.write_bytes(b"\xff\xfe not json")
    elif sidecar_damage == "field":
        sidecar.write_text(json.dumps(dict(good_sidecar, **{field: value})))
    elif sidecar_damage == "drop field":
        sidecar.write_text(json.dumps({k: v for k, v in good_sidecar.items() if k != field}))
    elif sidecar_damage == "directory":
        sidecar.unlink()
        sidecar.mkdir()
    elif sidecar_damage == "empty":
        sidecar.write_text("")

    found = cache.lookup(key)
    intact = engine_damage == "none" and (sidecar_damage == "none" or (
        sidecar_damage in ("field", "drop field") and field == "format"))
    if intact:
        assert found.engine == ENGINE
    else:
        assert found.engine is None and found.reason.split(":")[0] in ("missing", "corrupt", "foreign")
    for path in (engine, sidecar):  # a directory in the way is the operator's to remove
        if path.is_dir():
            path.rmdir()
    rebuilt = cache.get_or_build(key, lambda: b"rebuilt")
    assert rebuilt.engine == (ENGINE if intact else b"rebuilt")
    assert cache.lookup(key).engine == rebuilt.engine


def test_a_corrupt_engine_fails_configure_when_building_is_off_and_a_rebuilt_one_configures(ros, tmp_path):
    from trt_perception.core.backends import create_backend, tensorrt_available

    if not tensorrt_available():
        pytest.skip("TensorRT and pycuda are not installed: no engine to corrupt at node level (the cache "
                    "layer's integrity check is tested above without them)")
    cache_dir = tmp_path / "engines"
    options = dict(precision="fp16", engine_cache_dir=str(cache_dir), model_config=str(BUNDLED / CONFIG))
    builder = create_backend("tensorrt", str(BUNDLED / MODEL), **options)
    builder.activate()
    builder.deactivate()
    [engine] = cache_dir.glob("*.engine")
    engine.write_bytes(engine.read_bytes()[:-1] + b"?")
    node, lifecycle, errors = start(ros, Parameter("backend", value="tensorrt"), Parameter("precision", value="fp16"),
                            Parameter("engine_cache_dir", value=str(cache_dir)),
                            Parameter("allow_engine_build", value=False))
    assert_configure_fails(lifecycle, node, errors, "corrupt")
    builder.activate()  # the cache rebuilds the corrupt entry
    builder.deactivate()
    assert lifecycle.set("configure") and node.pipeline.backend.name == "tensorrt"
