"""A subscription read by a thread of its own, outside the executor, newest messages in batches.

The executor path for a camera frame is long: the executor thread wakes, rebuilds its wait set,
takes and converts the message, runs the callback as a task, and a worker thread must then be woken
to process the frame. Here one thread waits on the subscription alone, takes every message that is
queued (the subscription's QoS depth bounds them), and hands the batch, oldest first, to
``handle(batch, taken_ns)`` in the same thread: one wake-up per frame, and frames that arrived while
``handle`` was busy wait in the middleware's queue instead of being converted and dropped.

The subscription belongs to the node (it shows in the graph, remaps and namespaces apply) but is
in a callback group that rclpy executors never wait on, so only this thread takes from it. The
thread lives as long as the reader, across subscriptions (:meth:`SubscriptionReader.subscribe` /
``unsubscribe``).
``batch`` holds rclpy's ``(message, message_info)`` pairs; ``message_info`` is rclpy's dict
(``publication_sequence_number`` and ``publisher_gid`` where the distribution reports them).
The thread uses rclpy's own wait set, as :func:`rclpy.wait_for_message` does.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from rclpy.callback_groups import CallbackGroup
from rclpy.context import Context
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
        """Never: the executor must not take this group's subscription (the reader thread does)."""
        return False

    def beginning_execution(self, entity: Any) -> bool:
        """Never: the executor must not take this group's subscription (the reader thread does)."""
        return False

    def ending_execution(self, entity: Any) -> None:
        """Nothing to release: no execution ever began."""
        return None


class SubscriptionReader:
    """A thread named ``name`` that reads the subscription :meth:`subscribe` makes, until
    :meth:`close`. The thread outlives subscriptions (a lifecycle node subscribes at every
    activation): one thread, and the memory its allocator arena holds, for the node's life.
    ``handle`` runs in that thread, one batch at a time; an exception it (or a take) raises goes to
    ``on_error`` and the thread keeps reading.
    """

    def __init__(self, node: Node, handle: Callable[[Batch, int], None],
                 on_error: Callable[[BaseException], None], name: str) -> None:
        self._node = node
        self._handle = handle
        self._on_error = on_error
        self._wake = GuardCondition(None, None, context=node.context)
        self._cond = threading.Condition()
        self._subscription: Any = None   # what the thread should read (None: nothing)
        self._in_use: Any = None         # what the thread is waiting on or taking from now
        self._running = True
        self._thread: Optional[threading.Thread] = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def topic_name(self) -> Optional[str]:
        """The resolved topic of the current subscription, or None when not subscribed."""
        subscription = self._subscription
        return None if subscription is None else str(subscription.topic_name)

    def subscribe(self, msg_type: Any, topic: str, qos: QoSProfile, raw: bool = False) -> None:
        """Subscribe the node to ``topic`` and read it (after dropping any previous subscription).
        ``raw``: messages come as their serialized bytes.
        """
        self.unsubscribe()
        subscription = self._node.create_subscription(msg_type, topic, self._executed, qos,
                                                      callback_group=NotExecuted(), raw=raw)
        with self._cond:
            self._subscription = subscription
        self._wake_thread()

    def unsubscribe(self) -> None:
        """Stop reading (a batch being handled finishes first) and destroy the subscription."""
        with self._cond:
            subscription, self._subscription = self._subscription, None
            if subscription is None:
                return
            self._wake_thread()
            while self._in_use is subscription:
                self._cond.wait(POLL_S)
        self._node.destroy_subscription(subscription)

    def close(self) -> None:
        """Unsubscribe and stop the thread. Idempotent; also after the context was shut down (the
        thread then notices within :data:`POLL_S`).
        """
        if self._thread is None:
            return
        self.unsubscribe()
        with self._cond:
            self._running = False
        self._wake_thread()
        self._thread.join()
        self._thread = None
        self._wake.destroy()

    def _wake_thread(self) -> None:
        if self._node.context.ok():  # a guard condition of a shut-down context wakes nobody
            self._wake.trigger()

    def _executed(self, msg: Any) -> None:
        """Only called by an executor that ignores callback groups (rclpy's EventsExecutor)."""
        self._on_error(RuntimeError("the image subscription was taken by the executor, not the node's "
                                    "reader: spin the node with a SingleThreadedExecutor or "
                                    "MultiThreadedExecutor"))

    def _loop(self) -> None:
        context = self._node.context
        assert context is not None, "a node keeps the context it was created in"
        wait_set = _rclpy.WaitSet(1, 1, 0, 0, 0, 0, _context_handle(context))
        try:
            while True:
                with self._cond:
                    self._in_use = None
                    self._cond.notify_all()
                    if not self._running or not context.ok():
                        return
                    subscription = self._in_use = self._subscription
                try:
                    self._wait(wait_set, subscription)
                except Exception as exc:  # noqa: BLE001 - e.g. the context was shut down under us
                    if self._running and context.ok():
                        self._on_error(RuntimeError(f"stopped reading: {exc}"))
                    return
                if subscription is None or self._subscription is not subscription:
                    continue
                try:
                    batch: Batch = []
                    while (taken := subscription.handle.take_message(subscription.msg_type,
                                                                     subscription.raw)) is not None:
                        batch.append(taken)
                    if batch:
                        self._handle(batch, time.perf_counter_ns())
                except Exception as exc:  # noqa: BLE001 - one bad message must not stop the input
                    self._on_error(exc)
        finally:
            with self._cond:
                self._in_use = None
                self._cond.notify_all()

    def _wait(self, wait_set: Any, subscription: Any) -> None:
        """Wait for a message on ``subscription`` (if any), the wake-up or :data:`POLL_S`, holding
        the handles in use while waited on, as rclpy's executors do (without it a context shut
        down meanwhile leaves the wait hanging, or crashes the process).
        """
        context, wake = self._node.context, self._wake
        assert context is not None, "a node keeps the context it was created in"
        with _context_handle(context), wake.handle:
            wait_set.clear_entities()
            wait_set.add_guard_condition(wake.handle)
            if subscription is None:
                wait_set.wait(int(POLL_S * 1e9))  # releases the GIL
                return
            with subscription.handle:
                wait_set.add_subscription(subscription.handle)
                wait_set.wait(int(POLL_S * 1e9))


def _context_handle(context: Context) -> _rclpy.Context:
    """The context's rclpy handle; RuntimeError once the context is destroyed (its handle is then None)."""
    handle = context.handle
    if handle is None:
        raise RuntimeError("the ROS context was destroyed")
    return handle
