"""``multi_camera_node``: the detector on several cameras, one inference call per batch of frames.

Each camera of the ``cameras`` parameter (a namespace such as ``/cam_a``) has its own image input
(:class:`~trt_perception.ros.frame_input.FrameInput`: subscription, reader thread, decoding,
counts), subscribing ``<camera>/<image_topic>`` (``input_type: raw``) or
``<camera>/<image_topic>/compressed``. Decoded frames go to a
:class:`~trt_perception.core.batching.gatherer.BatchGatherer` (the newest frame of each camera; a
batch when every camera has a new frame or ``batch_timeout_ms`` after the first one arrived); one
batch thread runs each batch through one
:class:`~trt_perception.core.batching.batch_pipeline.BatchPipeline` call (CPU preprocessing), or
:class:`~trt_perception.core.gpu.gpu_batch_pipeline.GpuBatchPipeline` call (each camera's raw frame
copied into page-locked memory by its reader thread as it arrives, then uploaded and preprocessed by
the fused kernel into its row of the batch tensor; ``pipeline_depth``
2 overlaps a batch's uploads with the previous batch's inference, its results then published one
batch later, the last ones at deactivation), as
:func:`~trt_perception.core.pipeline_factory.create_batch_pipeline` chooses from ``preprocess`` and
``backend`` (boxes in each camera's own source pixels), and hands each frame's result to that camera's
:class:`~trt_perception.ros.detector_node.DetectorTask`, which publishes in the camera's namespace
with the frame's input header, as a ``detector_node`` per camera (started by ``trt-perception
run`` or the launch file) would: ``<camera>/detections``, ``<camera>/detector/latency``,
optionally ``<camera>/detector/debug_image`` and ``<camera>/detector/markers``.

Counts per camera (``/diagnostics``: "/multi_camera_node: detector <camera> latency" and "...
frame rate"): *received*, *dropped* (older messages of the subscription queue, and frames
superseded in the camera's slot while a batch ran), *rejected* (undecodable), *lost in transport*
(see :mod:`~trt_perception.ros.frame_input`), *failed* (inference errors), processed. A bad
frame of one camera never stalls the others: decoding errors are that camera's, and a batch whose
inference fails is retried frame by frame so only the frame that fails is counted as failed.
Each ``FrameLatency`` carries the batch's stages (preprocess, inference, postprocess of the whole
batch) and ``batch_wait``, the time the frame waited in its slot. The status
"/multi_camera_node: batches" gives the batch size histogram, gather wait and inference time.

Parameters: :data:`~trt_perception.ros.task_node.COMMON_PARAMS`, :data:`MULTI_CAMERA_PARAMS`, and
the detector's (:data:`~trt_perception.ros.perception_task.TASK_PARAMS`, the SSD thresholds),
shared by every camera.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from trt_perception.core.batching.batch_pipeline import BatchPipeline
from trt_perception.core.batching.batch_stats import BatchStats
from trt_perception.core.batching.gatherer import BatchGatherer, GatheredFrame
from trt_perception.core.param_spec import ParamSpec
from trt_perception.core.pipeline import FrameResult
from trt_perception.core.pipeline_factory import PipelineOptions, create_batch_pipeline
from trt_perception.core.telemetry.health import Status
from trt_perception.core.telemetry.latency_stats import InputStats, WindowSettings
from trt_perception.ros import parameters
from trt_perception.ros.detector_node import DetectorTask
from trt_perception.ros.frame_input import Frame, FrameInput
from trt_perception.ros.node_main import run_node
from trt_perception.ros.perception_task import TASK_PARAMS, PerceptionTask
from trt_perception.ros.system import camera_namespaces
from trt_perception.ros.task_node import TaskNode

if TYPE_CHECKING:
    from trt_perception.core.gpu.gpu_batch_pipeline import GpuBatchPipeline

MULTI_CAMERA_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("cameras", ["/camera"], "Camera namespaces (absolute, distinct); each camera's images "
              "are read from <camera>/<image_topic> and its results published in its namespace."),
    ParamSpec("image_topic", "image_raw", "Image topic relative to each camera namespace "
              "(input_type compressed: <camera>/<image_topic>/compressed)."),
    ParamSpec("batch_timeout_ms", 20.0, "A batch runs when every camera has a new frame, or this many ms "
              "after the first frame of the batch arrived (a slow or dead camera delays the others by "
              "at most this).", float_range=(0.0, 10000.0)),
)


def camera_list(values: Sequence[str]) -> list[str]:
    """The ``cameras`` parameter as namespaces (``cam_a`` -> ``/cam_a``); ValueError for none, a
    repeated or invalid name, or the root namespace.
    """
    cameras = camera_namespaces([str(v) for v in values if str(v).strip()] or ["/"])
    if "" in cameras:
        raise ValueError("cameras: every camera needs a namespace of its own (e.g. /cam_a), not the root")
    return cameras


def check_image_topic(topic: str) -> str:
    """``image_topic`` stripped; ValueError unless it is a relative topic name."""
    topic = topic.strip().strip("/") if not topic.startswith("/") else topic
    if not topic or topic.startswith("/") or topic.endswith("/"):
        raise ValueError(f"image_topic must be a topic name relative to the camera namespaces, got {topic!r}")
    return topic


class MultiCameraNode(TaskNode):
    """The detector on several cameras with batched inference (see the module docstring)."""

    NODE_NAME = "multi_camera_node"
    TASK_TYPE = DetectorTask
    EXTRA_PARAMS = MULTI_CAMERA_PARAMS + TASK_PARAMS + DetectorTask.DECODER_PARAMS + DetectorTask.FEATURE_PARAMS

    def __init__(self, node_name: str = "", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.cameras: list[str] = []
        self.inputs: dict[str, FrameInput] = {}
        self.batch_pipeline: Optional[Union[BatchPipeline, "GpuBatchPipeline"]] = None
        self.batch_stats = BatchStats(1, WindowSettings(), time.monotonic_ns())
        self._task_of: dict[str, PerceptionTask] = {}
        self._gatherer: Optional[BatchGatherer[Frame]] = None
        self._batch_thread: Optional[threading.Thread] = None

    # ---- TaskNode hooks -----------------------------------------------------------------------

    def input_stats(self, task: PerceptionTask) -> InputStats:
        """The statistics of ``task``'s camera input."""
        return self.inputs[task.camera].stats

    def _configure_tasks(self, settings: WindowSettings) -> None:
        """Cameras, the shared batch pipeline, one detector task (publishers) and input per camera."""
        extra = parameters.read(self, MULTI_CAMERA_PARAMS)
        cameras = camera_list(extra["cameras"])
        self.params.update(extra, cameras=cameras, image_topic=check_image_topic(extra["image_topic"]))
        self.tasks = [self.TASK_TYPE(self, camera=camera) for camera in cameras]
        self._task_of = {task.camera: task for task in self.tasks}
        self.batch_pipeline, why = create_batch_pipeline(self.tasks[0].model_config_path(),
                                                         PipelineOptions.from_mapping(self.params), len(cameras))
        self.get_logger().info(why)
        for task in self.tasks:
            task.configure(self.params, settings, pipeline=self.batch_pipeline)
        if cameras != self.cameras:   # reader threads live as long as the node unless the cameras change
            self._close_input()
            self.inputs = {camera: FrameInput(self, self._sink(camera), name=f"input{camera.replace('/', '_')}")
                           for camera in cameras}
            self.cameras = cameras
        for frame_input in self.inputs.values():
            frame_input.reset(settings)
            frame_input.keep_raw = self.batch_pipeline.takes_raw_images
        self.batch_stats = BatchStats(len(cameras), settings, time.monotonic_ns())

    def _start_input(self) -> str:
        """Start the batch thread, then every camera's input; the topics, for the log."""
        self.batch_stats.start(time.monotonic_ns())
        self._gatherer = BatchGatherer(self.cameras, self.params["batch_timeout_ms"])
        self._batch_thread = threading.Thread(target=self._run_batches, args=(self._gatherer,),
                                              name=f"{self.get_name()}_batches", daemon=True)
        self._batch_thread.start()
        qos = self._image_qos()
        for camera, frame_input in self.inputs.items():
            frame_input.start(self.params["input_type"], qos, f"{camera}/{self.params['image_topic']}")
        return ", ".join(str(frame_input.topic_name) for frame_input in self.inputs.values())

    def _stop_input(self) -> None:
        """Stop reading every camera, let the running batch finish; frames left waiting are dropped."""
        for frame_input in self.inputs.values():
            frame_input.stop()
        if self._gatherer is not None:
            now = time.monotonic_ns()
            for camera in self._gatherer.close():
                self._task_of[camera].stats.dropped.record(now)
        if self._batch_thread is not None:
            self._batch_thread.join()
        self._gatherer = self._batch_thread = None
        if self.batch_pipeline is not None:   # batches still in flight (pipeline_depth > 1): publish them
            try:
                self._publish(self.batch_pipeline.drain())
            except Exception as exc:  # noqa: BLE001 - deactivation goes on
                self.get_logger().error(f"batches in flight lost: {exc!r}")

    def _close_input(self) -> None:
        """End every camera's reader thread."""
        for frame_input in self.inputs.values():
            frame_input.close()
        self.inputs = {}
        self.cameras = []

    def _release(self) -> None:
        super()._release()
        if self.batch_pipeline is not None:
            self.batch_pipeline.close()
            self.batch_pipeline = None
        self.tasks = []

    def health_statuses(self, now_ns: Optional[int] = None) -> list[Status]:
        """Every camera's statuses, the batches' (sizes, gather wait, inference), the device's."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        statuses = super().health_statuses(now)
        return statuses[:-1] + [self.batch_stats.status("batches", now), statuses[-1]]

    # ---- frames -------------------------------------------------------------------------------

    def _sink(self, camera: str) -> Any:
        """The input reader's callback of ``camera``: the frame into its slot (a superseded frame
        is dropped for the camera).
        """
        def put(frame: Frame) -> None:
            gatherer, pipeline = self._gatherer, self.batch_pipeline
            if pipeline is not None:   # GPU: into page-locked memory now, while the batch gathers
                staged = pipeline.stage(frame)
                frame = staged if isinstance(staged, Frame) else frame
            if gatherer is None or gatherer.put(camera, frame):
                self._task_of[camera].stats.dropped.record(time.monotonic_ns())
        return put

    def _run_batches(self, gatherer: BatchGatherer[Frame]) -> None:
        """The batch thread: take each batch, run it, publish each camera's result; until closed."""
        while True:
            batch = gatherer.take()
            if not batch:
                return
            try:
                self._run_batch(batch)
            except Exception as exc:  # noqa: BLE001 - publishing failed: log, keep serving the cameras
                self.get_logger().error(f"batch handling failed: {exc!r}", throttle_duration_sec=5.0)

    def _run_batch(self, batch: list[GatheredFrame[Frame]]) -> None:
        assert self.batch_pipeline is not None  # batches run only while active
        self._publish(self._infer(batch))

    def _publish(self, results: list[FrameResult]) -> None:
        """Record each batch among ``results`` (pipelined: possibly an earlier batch's, or two) and
        publish every frame's result through its camera's task.
        """
        batches: dict[int, list[FrameResult]] = {}
        for done in results:   # the frames of one batch share its stage times
            batches.setdefault(id(done.times), []).append(done)
        for members in batches.values():
            self.batch_stats.record(time.monotonic_ns(), len(members), max(m.tag.wait_ns for m in members),
                                    members[0].times.inference_ns)
        for done in results:   # one frame that cannot be published must not cost the others theirs
            gathered: GatheredFrame[Frame] = done.tag
            task = self._task_of[gathered.camera]
            try:
                task.finish(gathered.frame, done.result, done.times, gathered.wait_ns)
            except Exception as exc:  # noqa: BLE001 - counted as failed for its camera, logged
                task.stats.failed.record(time.monotonic_ns())
                task.logger.error(f"{gathered.camera}: publishing failed ({task.stats.failed.total} so far): "
                                  f"{exc!r}", throttle_duration_sec=5.0)

    def _infer(self, batch: list[GatheredFrame[Frame]]) -> list[FrameResult]:
        """Results of ``batch``; when the batch fails, each frame alone, so that only a failing
        frame is lost (counted as failed for its camera).
        """
        assert self.batch_pipeline is not None
        try:
            return self.batch_pipeline.submit_batch([(g.frame, g) for g in batch])
        except Exception as exc:  # noqa: BLE001 - one bad frame must not cost the other cameras theirs
            if len(batch) > 1:
                return [result for gathered in batch for result in self._infer([gathered])]
            task = self._task_of[batch[0].camera]
            task.stats.failed.record(time.monotonic_ns())
            task.logger.error(f"{batch[0].camera}: inference failed ({task.stats.failed.total} so far): {exc}",
                              throttle_duration_sec=5.0)
            return []


def main(args: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``multi_camera_node`` executable."""
    return run_node(MultiCameraNode, args)
