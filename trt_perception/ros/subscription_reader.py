"""A subscription read by a thread of its own, outside the executor, newest messages in batches.

The executor path for a camera frame is long: the executor thread wakes, rebuilds its wait set,
takes and converts the message, runs the callback as a task, and a worker thread must then be woken
to process the frame. Here one thread waits on the subscription alone, takes every message that is
queued (the subscription's QoS depth bounds them), and hands the batch, oldest first, to
``handle(batch, taken_ns)`` in the same thread: one wake-up per frame, and frames that arrived while
``handle`` was busy wait in the middleware's queue instead of being converted and dropped.

The subscription belongs to the node (it shows in the graph, remaps and namespaces apply) but is
in a callback group that rclpy executors never wait on, so only this thread takes from it.
``batch`` holds rclpy's ``(message, message_info)`` pairs; ``message_info`` is rclpy's dict
(``publication_sequence_number`` and ``publisher_gid`` where the distribution reports them).
The thread uses rclpy's own wait set, as :func:`rclpy.wait_for_message` does.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from rclpy.callback_groups import CallbackGroup
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile

Batch = list[tuple[Any, dict[str, Any]]]

#: longest wait before the thread looks whether the context was shut down (a shutdown does not wake
#: a wait set, and after it a guard condition cannot either)
POLL_S = 0.25


class NotExecuted(CallbackGroup):
    """A callback group whose entities executors never wait on, take from or call back."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        return None


class SubscriptionReader:
    """Subscribe ``node`` to ``topic`` and read it in a thread named ``name`` until :meth:`close`.
    ``handle`` runs in that thread, one batch at a time; an exception it (or a take) raises goes to
    ``on_error`` and the thread keeps reading. ``raw``: messages come as their serialized bytes."""

    def __init__(self, node: Node, msg_type: Any, topic: str, qos: QoSProfile,
                 handle: Callable[[Batch, int], None], on_error: Callable[[BaseException], None],
                 name: str, raw: bool = False) -> None:
        self._node = node
        self._handle = handle
        self._on_error = on_error
        self.subscription = node.create_subscription(msg_type, topic, self._executed, qos,
                                                     callback_group=NotExecuted(), raw=raw)
        self._wake = GuardCondition(None, None, context=node.context)
        self._running = True
        self._thread: Optional[threading.Thread] = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def topic_name(self) -> str:
        return str(self.subscription.topic_name)

    def close(self) -> None:
        """Stop the thread (a batch being handled finishes first), then unsubscribe. Idempotent;
        also after the context was shut down (the thread then notices within :data:`POLL_S`)."""
        if self._thread is None:
            return
        self._running = False
        if self._node.context.ok():  # a guard condition of a shut-down context wakes nobody
            self._wake.trigger()
        self._thread.join()
        self._thread = None
        self._node.destroy_subscription(self.subscription)
        self._wake.destroy()

    def _executed(self, msg: Any) -> None:
        """Only called by an executor that ignores callback groups (rclpy's EventsExecutor)."""
        self._on_error(RuntimeError("the image subscription was taken by the executor, not the node's "
                                    "reader: spin the node with a SingleThreadedExecutor or "
                                    "MultiThreadedExecutor"))

    def _loop(self) -> None:
        subscription, wake, context = self.subscription, self._wake, self._node.context
        wait_set = _rclpy.WaitSet(1, 1, 0, 0, 0, 0, context.handle)
        while True:
            try:
                with context.handle, subscription.handle, wake.handle:  # in use while waited on, as executors do
                    wait_set.clear_entities()
                    wait_set.add_subscription(subscription.handle)
                    wait_set.add_guard_condition(wake.handle)
                    wait_set.wait(int(POLL_S * 1e9))  # releases the GIL
            except Exception as exc:  # noqa: BLE001 - e.g. the context was shut down under us
                if self._running and context.ok():
                    self._on_error(RuntimeError(f"stopped reading {self.topic_name}: {exc}"))
                return
            if not self._running or not context.ok():
                return
            try:
                batch: Batch = []
                while (taken := subscription.handle.take_message(subscription.msg_type, subscription.raw)) is not None:
                    batch.append(taken)
                if batch:
                    self._handle(batch, time.perf_counter_ns())
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the input
                self._on_error(exc)
