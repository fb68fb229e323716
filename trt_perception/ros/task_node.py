"""TaskNode, the base class of the package's lifecycle nodes: one image input feeding one or more
perception tasks (the executables ``detector_node``, ``pose_node`` and ``perception_node`` run its
subclasses DetectorNode, PoseNode and SharedPerceptionNode).

A node is a composition: a :class:`~trt_perception.ros.frame_input.FrameInput` (subscription
read by its own thread, newest frame, decoding once) and
:class:`~trt_perception.ros.perception_task.PerceptionTask` objects (model, publishers, thresholds,
statistics), listed in ``TASKS``. ``detector_node`` and ``pose_node`` have one task, whose
parameters and topics are not prefixed; the shared ``perception_node`` has two, prefixed
``detector.`` / ``pose.`` (see perception_task).

Resource split (each transition logs what it did):

* ``__init__``: declares every parameter (nothing is loaded).
* configure: validates parameters, loads each task's model and checks its inputs/outputs against
  the model config, creates the lifecycle publishers (each task's result, ``latency``, optional
  ``debug_image`` and ``markers``; ``/diagnostics``) and resets the statistics.
  An expected problem (missing model, bad parameter, mismatched I/O) logs the reason and returns
  FAILURE: the node stays unconfigured and configure can be retried. Anything unexpected logs the
  traceback and returns ERROR (``on_error`` frees what was made; the node ends unconfigured).
* activate: publishers start publishing; subscribes to the image topic, starts the input's reader
  thread (and the task workers), the diagnostics and log-summary timers.
* deactivate: stops the timers, stops reading and unsubscribes, stops the workers and publishes the
  results of the frames still in flight (GPU pipeline); then the publishers stop. cleanup: frees
  the models and publishers. shutdown: whatever is still held is freed (idempotent).

Frames: with one task the input's reader thread runs it on each decoded frame; with several, each
task has its own worker thread and newest-frame slot, so a slow task drops frames (counted per
task) without holding back the others. Diagnostics are computed and published only while active (the
timers exist only then); statistics are reset at configure.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Optional, Sequence

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from trt_perception.core.backends import BACKENDS, BackendError
from trt_perception.core.latest_worker import LatestWorker
from trt_perception.core.model_config import ModelConfigError
from trt_perception.core.param_spec import ParamSpec
from trt_perception.core.pipeline import PerceptionPipeline
from trt_perception.core.telemetry.device_info import GpuMemoryProbe, describe_hardware, memory_probe
from trt_perception.core.telemetry.health import Status, device_status, summary_line
from trt_perception.core.telemetry.latency import FrameCounters
from trt_perception.core.telemetry.latency_stats import InputStats, WindowSettings, snapshot
from trt_perception.ros import parameters
from trt_perception.ros.diagnostics import TOPIC as DIAGNOSTICS_TOPIC
from trt_perception.ros.diagnostics import diagnostic_array
from trt_perception.ros.frame_input import Frame, FrameInput
from trt_perception.ros.model_values import ModelValues
from trt_perception.ros.parameter_overrides import check_undeclared_overrides
from trt_perception.ros.perception_task import PerceptionTask

COMMON_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("backend", "auto", "Inference backend; auto = tensorrt when tensorrt and pycuda import, "
              "else onnxruntime.", choices=BACKENDS),
    ParamSpec("threads", 0, "CPU threads for ONNX Runtime (0 = its default).", int_range=(0, 64)),
    ParamSpec("precision", "fp16", "TensorRT engine precision (int8: the model should be a Q/DQ ONNX "
              "from trt-perception quantize).", choices=("fp32", "fp16", "int8")),
    ParamSpec("dla_core", -1, "TensorRT: DLA core to build for, -1 = GPU (layers the DLA cannot run "
              "fall back to the GPU).", int_range=(-1, 7)),
    ParamSpec("engine_cache_dir", "", "TensorRT engine cache directory; empty: $TRT_PERCEPTION_CACHE "
              "or ~/.cache/trt_perception/engines."),
    ParamSpec("layer_precision_file", "", "TensorRT: layer precision file pinning layers to FP32/FP16 "
              "(trt-perception fp16-check --write-layers, quantize --target-recall); empty: none."),
    ParamSpec("allow_engine_build", True, "TensorRT: build the engine at configure when the cache has "
              "none for this model, TensorRT version, GPU and options (false: configure fails)."),
    ParamSpec("preprocess", "auto", "Where preprocessing runs. gpu: one fused CUDA kernel from the "
              "message bytes to the network input on the device (needs pycuda, a GPU and a network on "
              "it: backend tensorrt, or onnxruntime with its CUDA provider); auto: gpu when all of "
              "that is present, else cpu.", choices=("auto", "gpu", "cpu")),
    ParamSpec("zero_copy_input", False, "GPU preprocessing: the kernel reads the frame from mapped "
              "pinned memory without an upload (for integrated GPUs: Jetson, DRIVE); single-camera "
              "nodes (multi_camera_node stages each frame into page-locked memory as it arrives)."),
    ParamSpec("pipeline_depth", 1, "GPU preprocessing: frames (multi_camera_node: batches) in flight; 2 overlaps the "
              "upload and "
              "preprocessing of a frame with the network's run of the previous one (results stay in "
              "order, one frame later).", int_range=(1, 8)),
    ParamSpec("device_id", 0, "CUDA device of the GPU preprocessing.", int_range=(0, 15)),
    ParamSpec("input_type", "raw", "raw: subscribe sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage on 'image/compressed'.", choices=("raw", "compressed")),
    ParamSpec("qos_depth", 1, "Depth of the image subscription queue: frames that wait while the model "
              "runs (the newest is processed, the others counted as dropped).", int_range=(1, 100)),
    ParamSpec("qos_reliability", "best_effort", "Reliability of the image subscription "
              "(best_effort = sensor-data QoS).", choices=("best_effort", "reliable")),
    ParamSpec("stamp_tolerance", 0.5, "Seconds a header stamp may lie in the future before the "
              "end-to-end latency is flagged instead of reported.", float_range=(0.0, 60.0)),
    ParamSpec("max_stamp_age", 10.0, "Seconds after which a header stamp is flagged as stale.",
              float_range=(0.0, 3600.0)),
    ParamSpec("diagnostics_period", 1.0, "Seconds between DiagnosticArray messages on /diagnostics "
              "(0 = no diagnostics).", float_range=(0.0, 3600.0)),
    ParamSpec("hardware_id", "", "hardware_id of the diagnostic statuses; empty: the backend and "
              "device, e.g. 'tensorrt on Orin (CUDA device 0)'."),
    ParamSpec("log_summary_period", 30.0, "Seconds between one-line statistics summaries in the log "
              "(0 = none).", float_range=(0.0, 86400.0)),
    ParamSpec("stats_window", 10.0, "Statistics (latency percentiles, rates, counts in diagnostics) "
              "cover the frames of the last this many seconds...", float_range=(0.1, 3600.0)),
    ParamSpec("stats_window_frames", 1000, "... and at most this many frames.", int_range=(10, 100000)),
    ParamSpec("strict_parameters", False, "Parameters given (files, launch, -p) that the node does not "
              "declare, e.g. misspelt: false = a warning at configure naming each with the closest "
              "declared name; true = configure fails."),
)

#: Expected configuration problems: FAILURE with the reason, not ERROR.
CONFIG_ERRORS = (ModelConfigError, BackendError, ValueError, FileNotFoundError, PermissionError)


class TaskNode(LifecycleNode):
    """Base of the package's nodes; subclasses list their tasks (see the module docstring)."""

    #: (task class, prefix) of each task; prefix "" keeps parameter and topic names as they are
    TASKS: tuple[tuple[type[PerceptionTask], str], ...] = ()

    #: node name unless the constructor (or a launch/--ros-args remap) gives another
    NODE_NAME = ""

    #: parameters of the node besides COMMON_PARAMS and its tasks' (declared, checked on change)
    EXTRA_PARAMS: tuple[ParamSpec, ...] = ()

    def __init__(self, node_name: str = "", **kwargs: Any) -> None:
        super().__init__(node_name or self.NODE_NAME, **kwargs)
        self.tasks = [task_type(self, prefix) for task_type, prefix in self.TASKS]
        parameters.declare(self, COMMON_PARAMS + self.EXTRA_PARAMS)
        for task in self.tasks:
            parameters.declare(self, task.specs)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        #: the decoder thresholds left unset show the model's values while configured
        self.model_values = ModelValues(self)
        self.params: dict[str, Any] = {}
        self.input = FrameInput(self, self._dispatch)
        self.hardware_id = ""
        self._memory_probe: Optional[GpuMemoryProbe] = None
        self._diagnostics_pub: Any = None
        self._timers: list[Any] = []
        self._task_workers: list[LatestWorker[Frame]] = []

    @property
    def pipeline(self) -> Optional[PerceptionPipeline]:
        """The first (for detector_node and pose_node: only) task's pipeline; None when unconfigured."""
        return self.tasks[0].pipeline if self.tasks else None

    @property
    def counters(self) -> FrameCounters:
        """Frame counts since configure of the first (for detector_node and pose_node: only) task."""
        return self.tasks[0].counters(self.input_stats(self.tasks[0]))

    # ---- hooks of a node with other inputs (multi_camera_node) --------------------------------

    def input_stats(self, task: PerceptionTask) -> InputStats:
        """The statistics of the input that feeds ``task``."""
        return self.input.stats

    def _configure_tasks(self, settings: WindowSettings) -> None:
        """Reset the input statistics and configure every task (models, publishers)."""
        self.input.reset(settings)
        for task in self.tasks:
            task.configure(self.params, settings)
        self.input.keep_raw = any(task.pipeline is not None and task.pipeline.takes_raw_images
                                  for task in self.tasks)

    def _start_input(self) -> str:
        """Start the task workers (several tasks) and the image input; what it subscribed to, for the log."""
        if len(self.tasks) > 1:
            self._task_workers = [LatestWorker(task.process, self._on_worker_error, f"{self.get_name()}_{task.LABEL}")
                                  for task in self.tasks]
            for worker in self._task_workers:
                worker.start()
        self.input.start(self.params["input_type"], self._image_qos())
        return str(self.input.topic_name)

    def _stop_input(self) -> None:
        """Stop reading (a frame being handled finishes), stop the task workers."""
        self.input.stop()
        for worker in self._task_workers:
            worker.stop()
        self._task_workers = []

    def _close_input(self) -> None:
        """End the input's reader thread (at the node's end)."""
        self.input.close()

    # ---- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and check the parameters, load the models and create publishers; FAILURE (logged reason) leaves the
        node unconfigured.
        """
        try:
            self.params = parameters.read(self, COMMON_PARAMS)
            check_undeclared_overrides(self, self.params["strict_parameters"])
            settings = WindowSettings(self.params["stats_window"], self.params["stats_window_frames"])
            self._configure_tasks(settings)
            self.model_values.show(value for task in self.tasks for value in task.unset_decoder_values())
            self._setup_diagnostics()
        except CONFIG_ERRORS as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            self.model_values.clear()
            return TransitionCallbackReturn.FAILURE
        except Exception:  # noqa: BLE001 - unexpected: report with traceback, go through on_error
            self.get_logger().error(f"configure failed unexpectedly:\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR
        self.get_logger().info("configured: " + "; ".join(dict.fromkeys(task.describe() for task in self.tasks)))
        return TransitionCallbackReturn.SUCCESS

    def _setup_diagnostics(self) -> None:
        assert self.pipeline is not None  # the tasks were configured just before
        backend = self.pipeline.backend
        self.hardware_id = self.params["hardware_id"] or describe_hardware(backend)
        self._memory_probe = memory_probe(backend)
        if self.params["diagnostics_period"] > 0:
            self._diagnostics_pub = self.create_lifecycle_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Activate the publishers, start the statistics windows and the image input."""
        result = super().on_activate(state)  # publishers first, so that no result is lost
        now = time.monotonic_ns()
        for task in self.tasks:
            task.stats.start(now)
        subscribed = self._start_input()
        if self._diagnostics_pub is not None:
            self._timers.append(self.create_timer(self.params["diagnostics_period"], self.publish_diagnostics))
        if self.params["log_summary_period"] > 0:
            self._timers.append(self.create_timer(self.params["log_summary_period"], self._log_summary))
        self.get_logger().info(f"active: subscribed to {subscribed}")
        return result

    def _image_qos(self) -> QoSProfile:
        return QoSProfile(
            depth=self.params["qos_depth"], history=HistoryPolicy.KEEP_LAST,
            durability=DurabilityPolicy.VOLATILE,
            reliability=(ReliabilityPolicy.BEST_EFFORT if self.params["qos_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE))

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the image input (frames in flight still publish), log each task's counters."""
        self._stop()  # before the publishers stop: frames still in flight publish their results
        for task in self.tasks:
            self.get_logger().info(f"inactive: {task.name}: {task.counters(self.input_stats(task)).summary()}")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the models and publishers; the node is unconfigured."""
        self._release()
        self.model_values.clear()
        self.get_logger().info("cleaned up: models and publishers freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop and free everything (:meth:`close`)."""
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop input (ending its thread) and free the models and publishers, whatever the state
        (idempotent).
        """
        self._stop()
        self._close_input()
        self._release()

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover from a failed transition: free everything, back to unconfigured."""
        self.close()
        self.model_values.clear()
        self.get_logger().error("recovered from an error: everything freed, node is unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        self._stop_input()
        for task in self.tasks:
            task.flush()

    def _release(self) -> None:
        for task in self.tasks:
            task.release()
        if self._diagnostics_pub is not None:
            self.destroy_lifecycle_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        self._memory_probe = None

    # ---- frames -------------------------------------------------------------------------------

    def _dispatch(self, frame: Frame) -> None:
        """Input reader: run the only task here, or hand the frame to each task's worker."""
        if not self._task_workers:
            self.tasks[0].process(frame)
            return
        now = time.monotonic_ns()
        for task, worker in zip(self.tasks, self._task_workers):
            if worker.put(frame):
                task.stats.dropped.record(now)

    def _on_worker_error(self, exc: BaseException) -> None:
        self.get_logger().error(f"frame handling failed: {exc!r}", throttle_duration_sec=5.0)

    # ---- diagnostics --------------------------------------------------------------------------

    def health_statuses(self, now_ns: Optional[int] = None) -> list[Status]:
        """Every task's latency and frame-rate statuses, then the device's (see core.health)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        statuses = [status for task in self.tasks for status in task.statuses(self.input_stats(task), now)]
        memory = None
        if self._memory_probe is not None:
            try:
                memory = self._memory_probe()
            except Exception as exc:  # noqa: BLE001 - diagnostics must not stop the node
                self.get_logger().warning(f"cannot read GPU memory, no longer reported: {exc}")
                self._memory_probe = None
        return statuses + [device_status(self.hardware_id, memory)]

    def publish_diagnostics(self) -> None:
        """Publish the current statuses on /diagnostics (timer callback while active)."""
        if self._diagnostics_pub is not None:
            self._diagnostics_pub.publish(diagnostic_array(
                self.get_fully_qualified_name(), self.hardware_id, self.health_statuses(),
                self.get_clock().now().to_msg()))

    def _log_summary(self) -> None:
        now = time.monotonic_ns()
        for task in self.tasks:
            self.get_logger().info(summary_line(task.name, snapshot(self.input_stats(task), task.stats, now)))

    # ---- parameters at runtime ----------------------------------------------------------------

    def _on_set_parameters(self, params: Sequence[Any]) -> SetParametersResult:
        """Validate every change (ranges, choices, bounds consistency), then apply the tasks'
        runtime parameters; a decoder's refusal undoes what was applied and fails the whole set.
        A set that succeeds makes the values the user's (:meth:`ModelValues.forget`); the model
        values shown or cleared by :attr:`model_values` pass unchecked.
        """
        if self.model_values.setting:
            return SetParametersResult(successful=True)
        specs = {s.name: s for s in COMMON_PARAMS + self.EXTRA_PARAMS}
        for task in self.tasks:
            specs.update({s.name: s for s in task.specs})
        changed: dict[str, Any] = {}
        for param in params:
            spec = specs.get(param.name)
            if spec is None:
                continue
            value = parameters.plain(param.value)
            problem = spec.check(value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            if spec.runtime:
                changed[param.name] = value
        by_task: list[tuple[PerceptionTask, dict[str, Any]]] = []
        for task in self.tasks:
            changes = {own: value for name, value in changed.items() if (own := task.own(name)) is not None}
            if changes:
                by_task.append((task, changes))
        for task, changes in by_task:
            problem = task.check_changes(changes)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        applied: list[tuple[PerceptionTask, dict[str, Any]]] = []
        for task, changes in by_task:
            previous = task.current_values(changes)
            try:
                task.apply_changes(changes)
            except ValueError as exc:
                for done, old in applied:
                    done.apply_changes(old)
                return SetParametersResult(successful=False, reason=task.reason(exc))
            applied.append((task, previous))
        if changed:
            self.get_logger().info(f"runtime parameters changed: {changed}")
        self.model_values.forget(param.name for param in params)
        return SetParametersResult(successful=True)
