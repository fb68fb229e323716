"""Replaying a bag's image topics into running nodes and collecting what they answer.

A :class:`Replayer` is a plain rclpy node (``bag_replay_<pid>``) spun in a background thread:

* :meth:`Replayer.connect` creates a reliable publisher per image topic (the bag's name, or its
  remap) and waits until the nodes subscribe; then finds the nodes' output topics (given, or every
  ``Detection2DArray`` / ``Skeleton2DArray`` / ``FrameLatency`` topic whose camera namespace holds
  an input, see :func:`~trt_perception.ros.system.answers`), subscribes to them as serialized
  messages and waits until they are matched.
* :meth:`Replayer.play` publishes the messages' original bytes (header stamps kept): at the bag's
  pace times ``rate``, or with ``rate`` 0 each frame only after every output expected for it
  arrived (or ``timeout`` passed, counted), which makes a replay deterministic. Outputs are matched
  to published frames by header stamp and frame_id among the frames of the inputs in the output's
  camera namespace, so cameras with equal stamps and frame_ids are told apart; ``recorder`` (if given) gets every output
  message's bytes as they arrive, from the executor thread.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from trt_perception.core.io.bag_message_reader import BagImage
from trt_perception.core.telemetry.latency import STAGES, STAMP_OK
from trt_perception.ros.conversions import stamp_ns
from trt_perception.ros.system import answers
from trt_perception.tools.replay_report import LATENCY_TYPE, RESULT_TYPES, OutputResult, ReplayedFrame

#: input publishers: reliable (matches best-effort and reliable subscriptions), volatile
INPUT_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
#: output subscriptions: reliable, deep enough for bursts at high rates
OUTPUT_QOS = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)

Recorder = Callable[[str, str, bytes, int], None]   # (topic, msgtype, serialized message, receive ns)


class ReplayError(RuntimeError):
    """The replay cannot go on (no subscriber, no outputs found), with what to do."""


def message_class(msgtype: str) -> Any:
    """The rclpy message class of ``pkg/msg/Name``."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def _duration_ms(duration: Any) -> float:
    return float(duration.sec * 1e3 + duration.nanosec / 1e6)


def output_result(msg: Any, msgtype: str, received_ns: int) -> OutputResult:
    """The :class:`OutputResult` of a deserialized output message."""
    if msgtype == LATENCY_TYPE:
        stages = {stage: _duration_ms(getattr(msg, stage)) for stage in STAGES}
        if msg.stamp_status == STAMP_OK:
            stages["end_to_end"] = _duration_ms(msg.end_to_end)
        return OutputResult(received_ns, stages_ms=stages, stamp_status=int(msg.stamp_status))
    objects = msg.detections if hasattr(msg, "detections") else msg.skeletons
    return OutputResult(received_ns, objects=len(objects))


@dataclass
class _Matcher:
    """Published frames waiting for outputs, by (header stamp, frame_id); thread safe."""

    pending: dict[tuple[int, str], list[ReplayedFrame]] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, frame: ReplayedFrame) -> None:
        with self.changed:
            self.pending.setdefault((frame.stamp_ns, frame.frame_id), []).append(frame)

    def answer(self, topic: str, key: tuple[int, str], result: OutputResult) -> None:
        with self.changed:
            for frame in reversed(self.pending.get(key, ())):   # loops repeat stamps: the latest frame
                if topic in frame.expected and topic not in frame.results:
                    frame.results[topic] = result
                    self.changed.notify_all()
                    return
            self.unmatched[topic] = self.unmatched.get(topic, 0) + 1

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(done, timeout)


class Replayer:
    """See the module docstring. ``context``: an initialized rclpy context."""

    def __init__(self, context: Context, recorder: Optional[Recorder] = None) -> None:
        self.node = Node(f"bag_replay_{os.getpid()}", context=context)
        self.recorder = recorder
        self.publishers: dict[str, Any] = {}      # input topic (as published) -> publisher
        self.outputs: dict[str, str] = {}         # output topic -> message type
        self._named_outputs = False               # --outputs given: every frame expects every output
        self._subscriptions: list[Any] = []
        self._matcher = _Matcher()
        self.frames: list[ReplayedFrame] = []
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="bag_replay", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:   # Ctrl-C: the main thread stops too
            pass

    # ---- connecting -------------------------------------------------------------------------

    def connect(self, inputs: Mapping[str, str], outputs: Iterable[str] = (), wait: float = 60.0) -> None:
        """Publishers for ``inputs`` (topic -> message type), then subscriptions to ``outputs``
        (empty: discovered). Raises :class:`ReplayError` when an input gets no subscriber or no
        output is found or matched within ``wait`` seconds.
        """
        for topic, msgtype in inputs.items():
            self.publishers[topic] = self.node.create_publisher(message_class(msgtype), topic, INPUT_QOS)
        deadline = time.monotonic() + wait
        unheard = self._wait_until(lambda: [t for t, p in self.publishers.items() if not p.get_subscription_count()],
                                   deadline)
        if unheard:
            raise ReplayError(f"no node subscribes to {', '.join(unheard)} after {wait:g} s: start the nodes "
                              "(trt-perception run, with --input-type compressed for CompressedImage topics) "
                              "or remap the bag topics with --remap")
        wanted = list(outputs)
        self._named_outputs = bool(wanted)
        found = self._discover(wanted, deadline)
        missing = ([t for t in wanted if t not in found] if wanted
                   else [t for t in inputs if not any(answers(o, t) for o in found)])
        if missing:
            raise ReplayError(f"no output found for {', '.join(missing)} after {wait:g} s (outputs seen: "
                              f"{', '.join(found) or 'none'}); name them with --outputs")
        for topic, msgtype in sorted(found.items()):
            self._subscribe(topic, msgtype)
        unmatched = self._wait_until(lambda: [s.topic_name for s in self._subscriptions if not s.get_publisher_count()],
                                     deadline)
        if unmatched:
            raise ReplayError(f"could not connect to the publishers of {', '.join(unmatched)} in {wait:g} s")

    @staticmethod
    def _wait_until(pending: Callable[[], list[str]], deadline: float) -> list[str]:
        """Poll ``pending`` until it is empty or ``deadline``; returns what is still pending."""
        while (left := pending()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def _discover(self, wanted: list[str], deadline: float, settle: float = 1.0) -> dict[str, str]:
        """Output topics and types: ``wanted`` ones, or those that answer an input; polled until the
        set has not changed for ``settle`` seconds (nodes of one camera start one after another).
        """
        types = RESULT_TYPES + (LATENCY_TYPE,)
        found: dict[str, str] = {}
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            graph = {name: kinds[0] for name, kinds in self.node.get_topic_names_and_types() if kinds}
            now = ({t: graph[t] for t in wanted if t in graph} if wanted else
                   {t: k for t, k in graph.items() if k in types and any(answers(t, i) for i in self.publishers)})
            if now != found:
                found, stable_since = now, time.monotonic()
            elif found and time.monotonic() - stable_since >= settle and (not wanted or len(found) == len(wanted)):
                break
            time.sleep(0.1)
        return found

    def _subscribe(self, topic: str, msgtype: str) -> None:
        cls = message_class(msgtype)

        def on_message(raw: bytes) -> None:
            received = time.monotonic_ns()
            msg = deserialize_message(raw, cls)
            if self.recorder is not None:
                self.recorder(topic, msgtype, raw, time.time_ns())
            key = (stamp_ns(msg.header), msg.header.frame_id)
            self._matcher.answer(topic, key, output_result(msg, msgtype, received))

        self.outputs[topic] = msgtype
        self._subscriptions.append(self.node.create_subscription(cls, topic, on_message, OUTPUT_QOS, raw=True))

    # ---- playing ----------------------------------------------------------------------------

    def play(self, messages: Iterable[BagImage], rate: float, loop: int = 0, timeout: float = 5.0,
             remaps: Optional[Mapping[str, str]] = None) -> int:
        """Publish ``messages`` (one pass; ``loop`` numbers it in the records) and return how many
        frames timed out (rate 0). ``rate`` > 0: at the bag's receive-time pace times ``rate``;
        0: as fast as processed, waiting up to ``timeout`` s for each frame's outputs.
        """
        remaps = remaps or {}
        timeouts = 0
        start_wall: Optional[float] = None
        start_log = 0
        for image in messages:
            topic = remaps.get(image.topic, image.topic)
            if rate > 0:
                if start_wall is None:
                    start_wall, start_log = time.monotonic(), image.log_ns
                delay = start_wall + (image.log_ns - start_log) / 1e9 / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            frame = self._publish(image, topic, loop)
            if rate == 0 and not self._matcher.wait(lambda: frame.complete, timeout):
                timeouts += 1
        return timeouts

    def play_at(self, messages: Sequence[BagImage], rate_hz: float, duration_s: float, loop: int = 0,
                remaps: Optional[Mapping[str, str]] = None) -> None:
        """Publish at a fixed rate for ``duration_s`` seconds: every ``1 / rate_hz`` s the next
        frame of each camera (image topic) goes out, each camera cycling through its own frames
        (each pass numbered from ``loop``), so every camera is published at ``rate_hz``.
        """
        remaps = remaps or {}
        cameras: dict[str, list[BagImage]] = {}
        for image in messages:
            cameras.setdefault(image.topic, []).append(image)
        if not cameras or not rate_hz > 0:
            raise ReplayError(f"a fixed-rate run needs images and a rate > 0, got {len(cameras)} topics and {rate_hz}")
        start = time.monotonic()
        for k in range(max(1, round(duration_s * rate_hz))):
            delay = start + k / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for topic, images in cameras.items():
                self._publish(images[k % len(images)], remaps.get(topic, topic), loop + k // len(images))

    def _publish(self, image: BagImage, topic: str, loop: int) -> ReplayedFrame:
        """Publish ``image`` on ``topic`` and record it as a frame waiting for its outputs."""
        frame = ReplayedFrame(topic, loop, image.index, image.stamp_ns, image.frame_id, 0, self._expected(topic))
        self._matcher.add(frame)   # before publishing: an answer may come at once
        self.frames.append(frame)
        frame.published_ns = time.monotonic_ns()
        self.publishers[topic].publish(image.cdr)
        return frame

    def take_frames(self) -> list[ReplayedFrame]:
        """The frames published so far, forgetting them: outputs that still come for them count as
        unmatched (a new trial starts clean).
        """
        with self._matcher.changed:
            frames, self.frames = self.frames, []
            self._matcher.pending.clear()
        return frames

    def _expected(self, topic: str) -> tuple[str, ...]:
        """The outputs that answer a frame of input ``topic``: those in its camera namespace; with
        ``--outputs`` outside every input's namespace (a custom layout), all of them.
        """
        own = tuple(t for t in self.outputs if answers(t, topic))
        return own if own or not self._named_outputs else tuple(self.outputs)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the outputs of every published frame; True when all came."""
        return self._matcher.wait(lambda: all(f.complete for f in self.frames), timeout)

    @property
    def unmatched(self) -> dict[str, int]:
        """Output messages per topic that answered no published frame."""
        with self._matcher.changed:
            return dict(self._matcher.unmatched)

    def close(self) -> None:
        """Stop the executor (no output callback runs after this returns) and destroy the node."""
        self.executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()
