"""One model run on a node's decoded frames: pipeline, publishers, runtime thresholds, health.

A :class:`PerceptionTask` belongs to a :class:`~trt_perception.ros.task_node.TaskNode`
and is driven by it: :meth:`~PerceptionTask.configure` loads the model
(:class:`~trt_perception.core.pipeline.Pipeline`) and creates the task's lifecycle publishers,
:meth:`~PerceptionTask.process` runs one frame and publishes its result, stage timings and
statistics, :meth:`~PerceptionTask.release` frees everything. Subclasses (detector, pose) supply
the result message, drawing, markers and their decoder thresholds.

Names: a task made with ``prefix=""`` (detector_node, pose_node) declares its parameters and
topics as they are (``score_threshold``, ``latency``); with ``prefix="detector"`` (the shared
perception_node) its parameters are ``detector.<name>`` and its own topics ``detector/<topic>``,
except the result topic (``detections``, ``skeletons``), which is never prefixed. A task made with
``camera="/cam_a"`` (one per camera in multi_camera_node) publishes in that camera's namespace:
``/cam_a/detections``, ``/cam_a/detector/latency``, ... (what a ``detector_node`` started for that
camera by ``trt-perception run`` or the launch file publishes), and is given the node's shared
pipeline at :meth:`~PerceptionTask.configure` rather than loading its own.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Optional

from rclpy.lifecycle import LifecycleNode
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from trt_perception.core.draw import to_bgr
from trt_perception.core.param_spec import ParamSpec
from trt_perception.core.pipeline import PerceptionPipeline, StageTimes
from trt_perception.core.pipeline_factory import PipelineOptions, create_pipeline
from trt_perception.core.telemetry.health import LATENCY_SOURCES, HealthBounds, Status, latency_status, rate_status
from trt_perception.core.telemetry.latency import STAMP_OK, FrameCounters, StageClock, check_stamp
from trt_perception.core.telemetry.latency_stats import InputStats, TaskStats, WindowSettings, snapshot, totals
from trt_perception.msg import FrameLatency
from trt_perception.ros import parameters
from trt_perception.ros.conversions import bgr_image_msg, frame_latency_msg, stamp_ns
from trt_perception.ros.frame_input import Frame
from trt_perception.ros.resources import share_dir

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


class PerceptionTask(ABC):
    """One model on one node (see the module docstring)."""

    #: the task's name: diagnostic status names ("<node>: <label> latency") and the shared node's prefix
    LABEL = ""
    #: the bundled model configuration used when ``model_config`` is empty (relative to the share dir)
    DEFAULT_MODEL = ""
    #: message type and topic of the task's result
    RESULT_TYPE: Any = None
    RESULT_TOPIC = ""
    #: decoder thresholds, the decoder's declarations (``runtime``, ``from_model``): passed to the
    #: decoder's ``set_params`` once set, the model configuration's values until then
    DECODER_PARAMS: tuple[ParamSpec, ...] = ()
    #: the task's other parameters (the detector's tracker), declared beside TASK_PARAMS
    FEATURE_PARAMS: tuple[ParamSpec, ...] = ()

    def __init__(self, node: LifecycleNode, prefix: str = "", camera: str = "") -> None:
        self.node = node
        self.param_prefix = f"{prefix}." if prefix else ""
        self.topic_prefix = f"{prefix}/" if prefix else ""
        #: topics of a camera's task: ``<camera>/<result>``, ``<camera>/<label>/<topic>``
        self.result_topic = f"{camera}/{self.RESULT_TOPIC}" if camera else self.RESULT_TOPIC
        if camera:
            self.topic_prefix = f"{camera}/{self.LABEL}/"
        self.camera = camera
        #: the task in the log and in diagnostic status names: ``detector``, ``detector /cam_a``
        self.name = f"{self.LABEL} {camera}" if camera else self.LABEL
        self.logger = node.get_logger().get_child(prefix) if prefix else node.get_logger()
        base = TASK_PARAMS + self.DECODER_PARAMS + self.FEATURE_PARAMS
        self.specs = tuple(spec.renamed(self.param_prefix + spec.name) for spec in base)
        self._names = {self.param_prefix + spec.name: spec.name for spec in base}
        self._decoder_names = {spec.name for spec in self.DECODER_PARAMS}
        self.params: dict[str, Any] = {}
        self.node_params: dict[str, Any] = {}
        self.bounds = HealthBounds()
        self.pipeline: Optional[PerceptionPipeline] = None
        self.stats = TaskStats(WindowSettings(), time.monotonic_ns())
        self._publishers: list[Any] = []
        self._result_pub: Any = None
        self._latency_pub: Any = None
        self._debug_pub: Any = None
        self._markers_pub: Any = None
        self._owns_pipeline = True

    # ---- subclass interface -------------------------------------------------------------------

    @abstractmethod
    def result_msg(self, result: Any, header: Any) -> Any:
        """The ``RESULT_TYPE`` message of one frame's result, with the input ``header`` (or the
        message's serialized bytes, which the publisher sends as they are).
        """

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

    def model_config_path(self) -> str:
        """The model configuration the task runs: ``model_config``, or the bundled default."""
        path = self.node.get_parameter(self.param_prefix + "model_config").value
        return str(path or share_dir() / self.DEFAULT_MODEL)

    def configure(self, node_params: dict[str, Any], settings: WindowSettings,
                  pipeline: Optional[PerceptionPipeline] = None) -> None:
        """Read and check the task's parameters, load the model with the node's backend and
        preprocessing options (:func:`~trt_perception.core.pipeline_factory.create_pipeline`), or
        use ``pipeline``, shared with other tasks (not closed by :meth:`release`), create the
        publishers. Raises the node's expected configuration errors (ValueError,
        ModelConfigError, BackendError, ...).
        """
        values = parameters.read(self.node, self.specs)
        self.params = {self._names[name]: value for name, value in values.items()}
        self.bounds = health_bounds(self.params)
        self.node_params = node_params
        self._owns_pipeline = pipeline is None
        if pipeline is None:
            pipeline, why = create_pipeline(self.model_config_path(), PipelineOptions.from_mapping(node_params))
            self.logger.info(why)
        self.pipeline = pipeline
        overrides = {name: self.params[name] for name in self._decoder_names if self.params[name] is not None}
        if overrides:
            self.pipeline.decoder.set_params(self.decoder_params(overrides))
        self._create_publishers()
        self.stats = TaskStats(settings, time.monotonic_ns())

    def unset_decoder_values(self) -> list[tuple[ParamSpec, Any]]:
        """``(declaration, value in use)`` of each decoder threshold whose parameter was unset at
        configure (the model's value runs; the task must be configured).
        """
        assert self.pipeline is not None
        in_use = self.pipeline.decoder.runtime_params()
        return [(spec, in_use[self._names[spec.name]]) for spec in self.specs
                if self._names[spec.name] in self._decoder_names and self.params[self._names[spec.name]] is None]

    def describe(self) -> str:
        """One line for the log: model file, task and backend (the task must be configured)."""
        assert self.pipeline is not None
        return f"{self.pipeline.config.model_path.name} ({self.pipeline.config.task}) on {self.pipeline.backend.name}"

    def release(self) -> None:
        """Destroy the publishers and free the model (idempotent)."""
        for pub in self._publishers:
            self.node.destroy_lifecycle_publisher(pub)
        self._publishers = []
        self._result_pub = self._latency_pub = self._debug_pub = self._markers_pub = None
        if self.pipeline is not None and self._owns_pipeline:
            self.pipeline.close()
        self.pipeline = None

    def _create_publishers(self) -> None:
        def make(msg_type: Any, topic: str, depth: int, wanted: bool = True) -> Any:
            if not wanted:
                return None
            publisher = self.node.create_lifecycle_publisher(msg_type, topic, depth)
            self._publishers.append(publisher)
            return publisher

        self._result_pub = make(self.RESULT_TYPE, self.result_topic, 10)
        self._latency_pub = make(FrameLatency, self.topic_prefix + "latency", 10, self.params["publish_latency"])
        self._debug_pub = make(Image, self.topic_prefix + "debug_image", 1, self.params["publish_debug_image"])
        self._markers_pub = make(MarkerArray, self.topic_prefix + "markers", 1, self.params["publish_markers"])

    # ---- runtime parameters -------------------------------------------------------------------

    def check_changes(self, changes: dict[str, Any]) -> Optional[str]:
        """The reason why runtime ``changes`` (unprefixed names, each value in range) cannot apply
        together with the current values, or None.
        """
        current = {name: self.node.get_parameter(self.param_prefix + name).value for name in HEALTH_PARAMS}
        try:
            health_bounds({**current, **changes})
        except ValueError as exc:
            return self.reason(exc)
        return None

    def reason(self, problem: object) -> str:
        """``problem`` as a parameter-change refusal: named after the task in a shared node."""
        return f"{self.LABEL}: {problem}" if self.param_prefix else str(problem)

    def current_values(self, names: Any) -> dict[str, Any]:
        """The values in effect of the task's (unprefixed) parameters ``names``: a decoder threshold's
        is the decoder's (the model's while the parameter is unset), to restore with
        :meth:`apply_changes`.
        """
        decoder = self.pipeline.decoder.runtime_params() if self.pipeline is not None else {}
        return {name: decoder[name] if name in decoder else self.params[name]
                for name in names if name in decoder or name in self.params}

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
        Inference errors are logged (rate limited) and counted as failed.
        """
        assert self.pipeline is not None  # frames flow only while active
        try:
            finished = self.pipeline.submit(frame, tag=frame)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
            self.stats.failed.record(time.monotonic_ns())
            self.logger.error(f"inference failed ({self.stats.failed.total} so far): {exc}",
                              throttle_duration_sec=5.0)
            return
        for done in finished:
            self.finish(done.tag, done.result, done.times)

    def flush(self) -> None:
        """Publish the results of frames still in flight (a pipeline with depth > 1); at deactivate."""
        if self.pipeline is None:
            return
        try:
            finished = self.pipeline.drain()
        except Exception as exc:  # noqa: BLE001 - deactivation goes on; the frames count as failed
            self.stats.failed.record(time.monotonic_ns())
            self.logger.error(f"frames in flight lost: {exc}")
            return
        for done in finished:
            self.finish(done.tag, done.result, done.times)

    def finish(self, frame: Frame, result: Any, stages: StageTimes, batch_wait_ns: int = 0) -> None:
        """Publish one frame's result and stage timings (``batch_wait_ns``: the time the frame
        waited for its batch, multi_camera_node); record its latencies.
        """
        clock = StageClock(frame.received_ns)
        clock.add_stages({"convert": frame.convert_ns, "batch_wait": batch_wait_ns, "preprocess": stages.preprocess_ns,
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
        """"<label> latency" and "<label> frame rate" statuses over the statistics window
        (``<label> <camera> latency`` ... for a camera's task).
        """
        snap = snapshot(inputs, self.stats, now_ns)
        return [latency_status(f"{self.name} latency", snap, self.bounds),
                rate_status(f"{self.name} frame rate", snap, self.bounds)]
