"""A worker thread that always handles the newest item: a one-item slot, replaced when busy.

Producers :meth:`~LatestWorker.put` items without blocking; the thread takes the item in the slot
and calls ``handle`` on it. An item replaced before the thread took it is *dropped*: ``put``
returns True so that the producer can count it. Used for camera frames, where a late frame is
worth less than the newest one.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")


class LatestWorker(Generic[T]):
    """``handle(item)`` runs in the worker thread, one item at a time. An exception it raises is
    passed to ``on_error`` (the thread keeps serving).
    """

    def __init__(self, handle: Callable[[T], None], on_error: Callable[[BaseException], None], name: str) -> None:
        self._handle = handle
        self._on_error = on_error
        self._name = name
        self._cond = threading.Condition()
        self._slot: Optional[T] = None
        self._has_item = False
        self._running = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start the thread (no-op when running)."""
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Discard the pending item, let the current ``handle`` finish, join the thread (idempotent)."""
        if self._thread is None:
            return
        with self._cond:
            self._running = False
            self._slot, self._has_item = None, False
            self._cond.notify_all()
        self._thread.join()
        self._thread = None

    def put(self, item: T) -> bool:
        """Offer ``item``; True when it replaced an item that was never handled (a drop)."""
        with self._cond:
            dropped = self._has_item
            self._slot, self._has_item = item, True
            self._cond.notify()
        time.sleep(0)  # let the woken worker take the GIL now, not after the producer's next iteration
        return dropped

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._has_item:
                    self._cond.wait()
                if not self._running:
                    return
                item = self._slot
                self._slot, self._has_item = None, False
            try:
                self._handle(item)  # type: ignore[arg-type]  # _has_item was set with an item
            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the worker
                self._on_error(exc)
