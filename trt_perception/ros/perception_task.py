"""One model run on a node's decoded frames: pipeline, publishers, runtime thresholds, health.

A :class:`PerceptionTask` belongs to a :class:`~trt_perception.ros.perception_node.PerceptionNode`
and is driven by it: :meth:`~PerceptionTask.configure` loads the model
(:class:`~trt_perception.core.pipeline.Pipeline`) and creates the task's lifecycle publishers,
:meth:`~PerceptionTask.process` runs one frame and publishes its result, stage timings and
statistics, :meth:`~PerceptionTask.release` frees everything. Subclasses (detector, pose) supply
the result message, drawing, markers and their decoder thresholds.

Names: a task made with ``prefix=""`` (detector_node, pose_node) declares its parameters and
topics as they are (``score_threshold``, ``latency``); with ``prefix="detector"`` (the shared
perception_node) its parameters are ``detector.<name>`` and its own topics ``detector/<topic>``,
except the result topic (``detections``, ``skeletons``), which is never prefixed.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Optional

from rclpy.lifecycle import LifecycleNode
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from trt_perception.core.draw import to_bgr
from trt_perception.core.health import LATENCY_SOURCES, HealthBounds, Status, latency_status, rate_status
from trt_perception.core.latency import STAMP_OK, FrameCounters, StageClock, check_stamp
from trt_perception.core.latency_stats import InputStats, TaskStats, WindowSettings, snapshot, totals
from trt_perception.core.pipeline import Pipeline, StageTimes
from trt_perception.msg import FrameLatency
from trt_perception.ros import parameters
from trt_perception.ros.conversions import bgr_image_msg, frame_latency_msg, stamp_ns
from trt_perception.ros.frame_input import Frame
from trt_perception.ros.parameters import ParamSpec
from trt_perception.ros.resources import share_dir

if TYPE_CHECKING:
    from trt_perception.core.gpu.gpu_pipeline import GpuPipeline

#: parameters every task has (prefixed in the shared node); the health bounds change at runtime
TASK_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_config", "", "Model configuration YAML (model file, tensor names, preprocessing, "
              "decoder). Empty: the task's bundled default model."),
    ParamSpec("publish_latency", True, "Publish per-frame stage timings on 'latency'."),
    ParamSpec("publish_debug_image", False, "Publish an annotated bgr8 image on 'debug_image'."),
    ParamSpec("publish_markers", False, "Publish visualization_msgs/MarkerArray on 'markers'."),
    ParamSpec("latency_warn_ms", 100.0, "Diagnostics: WARN when the p95 latency (latency_source) over "
              "the statistics window exceeds this many ms (0 = no bound).", float_range=(0.0, 1e6),
              runtime=True),
    ParamSpec("latency_error_ms", 250.0, "Diagnostics: ERROR when the p95 latency exceeds this many ms "
              "(0 = no bound).", float_range=(0.0, 1e6), runtime=True),
    ParamSpec("latency_source", "processing", "Latency the bounds apply to: processing (message "
              "received -> results published) or end_to_end (publish time - header stamp).",
              choices=LATENCY_SOURCES, runtime=True),
    ParamSpec("min_output_rate_hz", 0.0, "Diagnostics: WARN when fewer frames per second are processed, "
              "ERROR when none in the window (0 = no check).", float_range=(0.0, 1000.0), runtime=True),
)

HEALTH_PARAMS = frozenset(("latency_warn_ms", "latency_error_ms", "latency_source", "min_output_rate_hz"))


def health_bounds(values: dict[str, Any]) -> HealthBounds:
    """Bounds from parameter values; ValueError when the warn bound exceeds the error bound."""
    warn, error = values["latency_warn_ms"], values["latency_error_ms"]
    if warn > 0 and error > 0 and warn > error:
        raise ValueError(f"latency_warn_ms ({warn:g}) must not exceed latency_error_ms ({error:g})")
    return HealthBounds(latency_warn_ms=warn, latency_error_ms=error, latency_source=values["latency_source"],
                        min_output_rate_hz=values["min_output_rate_hz"])


def backend_options(node_params: dict[str, Any], backend: str, config_path: str) -> dict[str, Any]:
    """Constructor options of ``backend`` from the node's parameters."""
    if backend == "tensorrt":
        return {"precision": node_params["precision"], "dla_core": node_params["dla_core"],
                "engine_cache_dir": node_params["engine_cache_dir"] or None,
                "layer_precision_file": node_params["layer_precision_file"] or None,
                "allow_build": node_params["allow_engine_build"], "model_config": config_path}
    return {"threads": node_params["threads"]} if node_params["threads"] else {}


class PerceptionTask(ABC):
    """One model on one node (see the module docstring)."""

    #: the task's name: diagnostic status names ("<node>: <label> latency") and the shared node's prefix
    LABEL = ""
    #: the bundled model configuration used when ``model_config`` is empty (relative to the share dir)
    DEFAULT_MODEL = ""
    #: message type and topic of the task's result
    RESULT_TYPE: Any = None
    RESULT_TOPIC = ""
    #: decoder thresholds (``runtime=True``), passed to the decoder's ``set_params``
    DECODER_PARAMS: tuple[ParamSpec, ...] = ()

    def __init__(self, node: LifecycleNode, prefix: str = "") -> None:
        self.node = node
        self.param_prefix = f"{prefix}." if prefix else ""
        self.topic_prefix = f"{prefix}/" if prefix else ""
        self.logger = node.get_logger().get_child(prefix) if prefix else node.get_logger()
        base = TASK_PARAMS + self.DECODER_PARAMS
        self.specs = tuple(spec.renamed(self.param_prefix + spec.name) for spec in base)
        self._names = {self.param_prefix + spec.name: spec.name for spec in base}
        self._decoder_names = {spec.name for spec in self.DECODER_PARAMS}
        self.params: dict[str, Any] = {}
        self.node_params: dict[str, Any] = {}
        self.bounds = HealthBounds()
        self.pipeline: Optional[Pipeline | GpuPipeline] = None
        self.stats = TaskStats(WindowSettings(), time.monotonic_ns())
        self._publishers: list[Any] = []
        self._result_pub: Any = None
        self._latency_pub: Any = None
        self._debug_pub: Any = None
        self._markers_pub: Any = None

    # ---- subclass interface -------------------------------------------------------------------

    @abstractmethod
    def result_msg(self, result: Any, header: Any) -> Any:
        """The ``RESULT_TYPE`` message of one frame's result, with the input ``header`` (or the
        message's serialized bytes, which the publisher sends as they are)."""

    @abstractmethod
    def draw(self, bgr: Any, result: Any) -> Any:
        """Draw ``result`` onto the uint8[H, W, 3] BGR image (in place) and return it."""

    @abstractmethod
    def markers(self, result: Any, header: Any) -> MarkerArray:
        """RViz markers of ``result`` in image pixel coordinates."""

    def decoder_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Map decoder parameter values to the decoder's ``set_params`` keys (default: same names)."""
        return values

    # ---- lifecycle (called by the node) -------------------------------------------------------

    def own(self, name: str) -> Optional[str]:
        """The task's (unprefixed) name of node parameter ``name``, or None when not the task's."""
        return self._names.get(name)

    def configure(self, node_params: dict[str, Any], backend: str, settings: WindowSettings,
                  preprocess: str = "cpu") -> None:
        """Read and check the task's parameters, load the model (with ``preprocess`` ``gpu``: a
        :class:`~trt_perception.core.gpu.gpu_pipeline.GpuPipeline`), create the publishers. Raises
        the node's expected configuration errors (ValueError, ModelConfigError, BackendError, ...)."""
        values = parameters.read(self.node, self.specs)
        self.params = {self._names[name]: value for name, value in values.items()}
        self.bounds = health_bounds(self.params)
        self.node_params = node_params
        config_path = self.params["model_config"] or str(share_dir() / self.DEFAULT_MODEL)
        options = backend_options(node_params, backend, config_path)
        if preprocess == "gpu":
            from trt_perception.core.gpu.gpu_pipeline import GpuPipeline
            self.pipeline = GpuPipeline.from_config(
                config_path, backend, depth=node_params["pipeline_depth"],
                zero_copy_input=node_params["zero_copy_input"], device_id=node_params["device_id"],
                **(options if backend == "tensorrt" else {}))
        else:
            self.pipeline = Pipeline.from_config(config_path, backend, **options)
        self.pipeline.decoder.set_params(self.decoder_params(
            {name: self.params[name] for name in self._decoder_names}))
        self._create_publishers()
        self.stats = TaskStats(settings, time.monotonic_ns())

    def describe(self) -> str:
        assert self.pipeline is not None
        return f"{self.pipeline.config.model_path.name} ({self.pipeline.config.task}) on {self.pipeline.backend.name}"

    def release(self) -> None:
        """Destroy the publishers and free the model (idempotent)."""
        for pub in self._publishers:
            self.node.destroy_lifecycle_publisher(pub)
        self._publishers = []
        self._result_pub = self._latency_pub = self._debug_pub = self._markers_pub = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    def _create_publishers(self) -> None:
        def make(msg_type: Any, topic: str, depth: int, wanted: bool = True) -> Any:
            if not wanted:
                return None
            publisher = self.node.create_lifecycle_publisher(msg_type, topic, depth)
            self._publishers.append(publisher)
            return publisher

        self._result_pub = make(self.RESULT_TYPE, self.RESULT_TOPIC, 10)
        self._latency_pub = make(FrameLatency, self.topic_prefix + "latency", 10, self.params["publish_latency"])
        self._debug_pub = make(Image, self.topic_prefix + "debug_image", 1, self.params["publish_debug_image"])
        self._markers_pub = make(MarkerArray, self.topic_prefix + "markers", 1, self.params["publish_markers"])

    # ---- runtime parameters -------------------------------------------------------------------

    def check_changes(self, changes: dict[str, Any]) -> Optional[str]:
        """The reason why runtime ``changes`` (unprefixed names, each value in range) cannot apply
        together with the current values, or None."""
        current = {name: self.node.get_parameter(self.param_prefix + name).value for name in HEALTH_PARAMS}
        try:
            health_bounds({**current, **changes})
        except ValueError as exc:
            return self.reason(exc)
        return None

    def reason(self, problem: object) -> str:
        """``problem`` as a parameter-change refusal: named after the task in a shared node."""
        return f"{self.LABEL}: {problem}" if self.param_prefix else str(problem)

    def apply_changes(self, changes: dict[str, Any]) -> None:
        """Apply checked runtime ``changes``; ValueError from the decoder changes nothing."""
        if self.pipeline is None:  # unconfigured: configure reads the parameters
            return
        decoder = {name: value for name, value in changes.items() if name in self._decoder_names}
        if decoder:
            self.pipeline.decoder.set_params(self.decoder_params(decoder))
        self.params.update(changes)
        self.bounds = health_bounds(self.params)

    # ---- frames -------------------------------------------------------------------------------

    def process(self, frame: Frame) -> None:
        """Run the model on ``frame`` and publish the results finished now (this frame's; pipelined
        on the GPU, earlier frames'), debug outputs and stage timings; record the latencies.
        Inference errors are logged (rate limited) and counted as failed."""
        assert self.pipeline is not None  # frames flow only while active
        try:
            if isinstance(self.pipeline, Pipeline):
                finished = [(frame, *self.pipeline.run(*frame.decoded()))]
            else:  # GPU preprocessing: the raw image (compressed ones: decoded, as bgr8/mono8) goes to the GPU
                assert frame.image is not None  # FrameInput.keep_raw is set with GPU preprocessing
                finished = [(done.tag, done.result, done.times)
                            for done in self.pipeline.submit(frame.image, tag=frame)]
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
            self.stats.failed.record(time.monotonic_ns())
            self.logger.error(f"inference failed ({self.stats.failed.total} so far): {exc}",
                              throttle_duration_sec=5.0)
            return
        for done_frame, result, stages in finished:
            self._finish(done_frame, result, stages)

    def flush(self) -> None:
        """Publish the results of frames still in flight (GPU pipeline with depth > 1); at deactivate."""
        if self.pipeline is None or isinstance(self.pipeline, Pipeline):
            return
        try:
            finished = self.pipeline.drain()
        except Exception as exc:  # noqa: BLE001 - deactivation goes on; the frames count as failed
            self.stats.failed.record(time.monotonic_ns())
            self.logger.error(f"frames in flight lost: {exc}")
            return
        for done in finished:
            self._finish(done.tag, done.result, done.times)

    def _finish(self, frame: Frame, result: Any, stages: StageTimes) -> None:
        """Publish one frame's result and stage timings; record its latencies."""
        clock = StageClock(frame.received_ns)
        clock.add_stages({"convert": frame.convert_ns, "preprocess": stages.preprocess_ns,
                          "inference": stages.inference_ns, "postprocess": stages.postprocess_ns})
        self._publish(result, frame)
        clock.mark("publish")
        time.sleep(0)  # results first: let threads waiting for them run before the bookkeeping below
        status, e2e_ns = check_stamp(stamp_ns(frame.header), self.node.get_clock().now().nanoseconds,
                                     self.node_params["stamp_tolerance"], self.node_params["max_stamp_age"])
        self.stats.record_frame(time.monotonic_ns(), clock.stages_ns, clock.last_ns - frame.received_ns,
                                e2e_ns if status == STAMP_OK else None)
        if self._latency_pub is not None:
            self._latency_pub.publish(frame_latency_msg(frame.header, clock, status, e2e_ns))

    def _publish(self, result: Any, frame: Frame) -> None:
        self._result_pub.publish(self.result_msg(result, frame.header))
        if self._debug_pub is not None:
            bgr = self.draw(to_bgr(*frame.decoded()), result)
            self._debug_pub.publish(bgr_image_msg(bgr, frame.header))
        if self._markers_pub is not None:
            self._markers_pub.publish(self.markers(result, frame.header))

    # ---- health -------------------------------------------------------------------------------

    def counters(self, inputs: InputStats) -> FrameCounters:
        """Totals since configure of the frames this task was offered by ``inputs``."""
        return totals(inputs, self.stats)

    def statuses(self, inputs: InputStats, now_ns: int) -> list[Status]:
        """"<label> latency" and "<label> frame rate" statuses over the statistics window."""
        snap = snapshot(inputs, self.stats, now_ns)
        return [latency_status(f"{self.LABEL} latency", snap, self.bounds),
                rate_status(f"{self.LABEL} frame rate", snap, self.bounds)]
