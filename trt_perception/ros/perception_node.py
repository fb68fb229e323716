"""The lifecycle node that the detector and pose nodes share: parameters, QoS, frames, lifecycle.

Resource split (each transition logs what it did):

* ``__init__``: declares every parameter (nothing is loaded).
* configure: validates parameters, loads the model (:class:`~trt_perception.core.pipeline.Pipeline`),
  checks its inputs/outputs against the model config, creates the lifecycle publishers: the
  task's result, ``latency``, and optionally ``debug_image`` and ``markers``.
  An expected problem (missing model, bad parameter, mismatched I/O) logs the reason and returns
  FAILURE: the node stays unconfigured and configure can be retried. Anything unexpected logs the
  traceback and returns ERROR (``on_error`` frees what was made; the node ends unconfigured).
* activate: subscribes to the image topic and starts the worker thread; publishers start publishing.
* deactivate: unsubscribes and stops the worker. cleanup: frees the model and publishers.
  shutdown: whatever is still held is freed (idempotent).

Frames: the subscription callback only stores the newest message; one worker thread processes
it. A frame replaced before the worker took it is *dropped because busy*; a frame that cannot be
decoded is *rejected* (a warning, rate limited); both are counted in :class:`FrameCounters`.
"""

from __future__ import annotations

import threading
import time
import traceback
from abc import abstractmethod
from typing import Any, Optional, Sequence

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from trt_perception.core.backends import BACKENDS, BackendError, resolve_backend
from trt_perception.core.draw import to_bgr
from trt_perception.core.image import ImageError, decode_compressed_image, decode_image
from trt_perception.core.latency import FrameCounters, StageClock
from trt_perception.core.model_config import ModelConfigError
from trt_perception.core.pipeline import Pipeline
from trt_perception.msg import FrameLatency
from trt_perception.ros import parameters
from trt_perception.ros.conversions import bgr_image_msg, frame_latency_msg
from trt_perception.ros.parameters import ParamSpec
from trt_perception.ros.resources import share_dir

COMMON_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_config", "", "Model configuration YAML (model file, tensor names, preprocessing, "
              "decoder). Empty: the node's bundled default model."),
    ParamSpec("backend", "auto", "Inference backend; auto = tensorrt when tensorrt and pycuda import, "
              "else onnxruntime.", choices=BACKENDS),
    ParamSpec("threads", 0, "CPU threads for ONNX Runtime (0 = its default).", int_range=(0, 64)),
    ParamSpec("precision", "fp16", "TensorRT engine precision (int8: the model should be a Q/DQ ONNX "
              "from trt-perception quantize).", choices=("fp32", "fp16", "int8")),
    ParamSpec("dla_core", -1, "TensorRT: DLA core to build for, -1 = GPU (layers the DLA cannot run "
              "fall back to the GPU).", int_range=(-1, 7)),
    ParamSpec("engine_cache_dir", "", "TensorRT engine cache directory; empty: $TRT_PERCEPTION_CACHE "
              "or ~/.cache/trt_perception/engines."),
    ParamSpec("allow_engine_build", True, "TensorRT: build the engine at configure when the cache has "
              "none for this model, TensorRT version, GPU and options (false: configure fails)."),
    ParamSpec("input_type", "raw", "raw: subscribe sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage on 'image/compressed'.", choices=("raw", "compressed")),
    ParamSpec("qos_depth", 1, "Depth of the image subscription queue.", int_range=(1, 100)),
    ParamSpec("qos_reliability", "best_effort", "Reliability of the image subscription "
              "(best_effort = sensor-data QoS).", choices=("best_effort", "reliable")),
    ParamSpec("publish_latency", True, "Publish per-frame stage timings on 'latency'."),
    ParamSpec("publish_debug_image", False, "Publish an annotated bgr8 image on 'debug_image'."),
    ParamSpec("publish_markers", False, "Publish visualization_msgs/MarkerArray on 'markers'."),
    ParamSpec("stamp_tolerance", 0.5, "Seconds a header stamp may lie in the future before the "
              "end-to-end latency is flagged instead of reported.", float_range=(0.0, 60.0)),
    ParamSpec("max_stamp_age", 10.0, "Seconds after which a header stamp is flagged as stale.",
              float_range=(0.0, 3600.0)),
)

#: Expected configuration problems: FAILURE with the reason, not ERROR.
CONFIG_ERRORS = (ModelConfigError, BackendError, ValueError, FileNotFoundError, PermissionError)


class PerceptionNode(LifecycleNode):
    """Base of the detector and pose nodes; subclasses supply the task-specific parts."""

    #: parameters of the subclass (thresholds with ``runtime=True`` go to the decoder live)
    TASK_PARAMS: tuple[ParamSpec, ...] = ()

    #: node name unless the constructor (or a launch/--ros-args remap) gives another
    NODE_NAME = ""

    def __init__(self, node_name: str = "", **kwargs: Any) -> None:
        super().__init__(node_name or self.NODE_NAME, **kwargs)
        self._specs = COMMON_PARAMS + self.TASK_PARAMS
        self._runtime_names = {s.name for s in self._specs if s.runtime}
        parameters.declare(self, self._specs)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pipeline: Optional[Pipeline] = None
        self.params: dict[str, Any] = {}
        self.counters = FrameCounters()
        self._publishers: list[Any] = []
        self._result_pub: Any = None
        self._latency_pub: Any = None
        self._debug_pub: Any = None
        self._markers_pub: Any = None
        self._subscription: Any = None
        self._worker: Optional[threading.Thread] = None
        self._slot_lock = threading.Condition()
        self._slot: Optional[tuple[Any, int]] = None
        self._running = False

    # ---- subclass interface -------------------------------------------------------------------

    #: the bundled model configuration used when ``model_config`` is empty (relative to the share dir)
    DEFAULT_MODEL = ""

    #: message type and topic of the task's result
    RESULT_TYPE: Any = None
    RESULT_TOPIC = ""

    @abstractmethod
    def result_msg(self, result: Any, header: Any) -> Any:
        """The ``RESULT_TYPE`` message of one frame's result, with the input ``header``."""

    @abstractmethod
    def draw(self, bgr: Any, result: Any) -> Any:
        """Draw ``result`` onto the uint8[H, W, 3] BGR image (in place) and return it."""

    @abstractmethod
    def markers(self, result: Any, header: Any) -> MarkerArray:
        """RViz markers of ``result`` in image pixel coordinates."""

    def decoder_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Map runtime parameter values to the decoder's ``set_params`` keys (default: same names)."""
        return values

    # ---- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.params = parameters.read(self, self._specs)
            config_path = self.params["model_config"] or str(share_dir() / self.DEFAULT_MODEL)
            backend = resolve_backend(self.params["backend"])
            self.pipeline = Pipeline.from_config(config_path, backend, **self._backend_options(backend, config_path))
            self.pipeline.decoder.set_params(self.decoder_params(
                {name: self.params[name] for name in self._runtime_names}))
            self._create_publishers()
        except CONFIG_ERRORS as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        except Exception:  # noqa: BLE001 - unexpected: report with traceback, go through on_error
            self.get_logger().error(f"configure failed unexpectedly:\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR
        self.counters = FrameCounters()
        self.get_logger().info(f"configured: {self.pipeline.config.model_path.name} ({self.pipeline.config.task}) "
                               f"on {self.pipeline.backend.name}")
        return TransitionCallbackReturn.SUCCESS

    def _backend_options(self, backend: str, config_path: str) -> dict[str, Any]:
        if backend == "tensorrt":
            return {"precision": self.params["precision"], "dla_core": self.params["dla_core"],
                    "engine_cache_dir": self.params["engine_cache_dir"] or None,
                    "allow_build": self.params["allow_engine_build"], "model_config": config_path}
        return {"threads": self.params["threads"]} if self.params["threads"] else {}

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = QoSProfile(
            depth=self.params["qos_depth"], history=HistoryPolicy.KEEP_LAST,
            durability=DurabilityPolicy.VOLATILE,
            reliability=(ReliabilityPolicy.BEST_EFFORT if self.params["qos_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE))
        if self.params["input_type"] == "compressed":
            self._subscription = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, qos)
        else:
            self._subscription = self.create_subscription(Image, "image", self._on_image, qos)
        self._running = True
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"active: subscribed to {self._subscription.topic_name}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self.get_logger().info(f"inactive: {self.counters.summary()}")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model and publishers freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop input and free the model and publishers, whatever the state (idempotent)."""
        self._stop_input()
        self._release()

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        self.get_logger().error("recovered from an error: everything freed, node is unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def _stop_input(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._worker is not None:
            with self._slot_lock:
                self._running = False
                self._slot = None
                self._slot_lock.notify_all()
            self._worker.join()
            self._worker = None

    def _create_publishers(self) -> None:
        def make(msg_type: Any, topic: str, depth: int, wanted: bool = True) -> Any:
            if not wanted:
                return None
            publisher = self.create_lifecycle_publisher(msg_type, topic, depth)
            self._publishers.append(publisher)
            return publisher

        self._result_pub = make(self.RESULT_TYPE, self.RESULT_TOPIC, 10)
        self._latency_pub = make(FrameLatency, "latency", 10, self.params["publish_latency"])
        self._debug_pub = make(Image, "debug_image", 1, self.params["publish_debug_image"])
        self._markers_pub = make(MarkerArray, "markers", 1, self.params["publish_markers"])

    def _publish(self, result: Any, header: Any, pixels: Any, order: str) -> None:
        self._result_pub.publish(self.result_msg(result, header))
        if self._debug_pub is not None:
            self._debug_pub.publish(bgr_image_msg(self.draw(to_bgr(pixels, order), result), header))
        if self._markers_pub is not None:
            self._markers_pub.publish(self.markers(result, header))

    def _release(self) -> None:
        for pub in self._publishers:
            self.destroy_lifecycle_publisher(pub)
        self._publishers = []
        self._result_pub = self._latency_pub = self._debug_pub = self._markers_pub = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    # ---- parameters at runtime ----------------------------------------------------------------

    def _on_set_parameters(self, params: Sequence[Any]) -> SetParametersResult:
        specs = {s.name: s for s in self._specs}
        changes = {}
        for param in params:
            spec = specs.get(param.name)
            if spec is None:
                continue
            value = parameters.plain(param.value)
            problem = spec.check(value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            if param.name in self._runtime_names:
                changes[param.name] = value
        if changes and self.pipeline is not None:
            try:
                self.pipeline.decoder.set_params(self.decoder_params(changes))
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            self.params.update(changes)
            self.get_logger().info(f"runtime parameters changed: {changes}")
        return SetParametersResult(successful=True)

    # ---- frames -------------------------------------------------------------------------------

    def _on_image(self, msg: Any) -> None:
        received = time.perf_counter_ns()
        with self._slot_lock:
            self.counters.received += 1
            if self._slot is not None:
                self.counters.dropped_busy += 1
            self._slot = (msg, received)
            self._slot_lock.notify()

    def _work(self) -> None:
        while True:
            with self._slot_lock:
                while self._running and self._slot is None:
                    self._slot_lock.wait()
                if not self._running:
                    return
                msg, received = self._slot
                self._slot = None
            self._process(msg, received)

    def _process(self, msg: Any, received_ns: int) -> None:
        clock = StageClock(received_ns)
        try:
            if isinstance(msg, CompressedImage):
                pixels, order = decode_compressed_image(msg.data, msg.format)
            else:
                pixels, order = decode_image(msg.data, msg.encoding, msg.width, msg.height,
                                             msg.step, msg.is_bigendian)
        except ImageError as exc:
            self.counters.rejected += 1
            self.get_logger().warning(f"rejected frame ({self.counters.rejected} so far): {exc}",
                                      throttle_duration_sec=5.0)
            return
        clock.mark("convert")
        try:  # the worker runs only while active, so the pipeline exists
            result, stages = self.pipeline.run(pixels, order)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
            self.counters.failed += 1
            self.get_logger().error(f"inference failed ({self.counters.failed} so far): {exc}",
                                    throttle_duration_sec=5.0)
            return
        clock.add_stages({"preprocess": stages.preprocess_ns, "inference": stages.inference_ns,
                          "postprocess": stages.postprocess_ns})
        self._publish(result, msg.header, pixels, order)
        clock.mark("publish")
        self.counters.processed += 1
        if self._latency_pub is not None:
            self._latency_pub.publish(frame_latency_msg(
                msg.header, clock, self.get_clock().now().nanoseconds,
                self.params["stamp_tolerance"], self.params["max_stamp_age"]))
