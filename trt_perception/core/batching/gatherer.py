"""BatchGatherer: the newest frame of each camera, handed out together as one batch.

Each camera has one slot holding its newest frame not yet handed out. Input threads call
:meth:`BatchGatherer.put`; a frame that replaces one still waiting in its slot is *superseded*
and counted for its camera (the frame is dropped: the model never sees it). A batch is ready when

- every camera has a new frame, or
- ``batch_timeout_ms`` has passed since the first frame of the batch arrived (the oldest frame
  waiting in any slot),

so a slow or dead camera delays the others by at most ``batch_timeout_ms`` and never stalls them.
:meth:`take` blocks until a batch is ready and empties the slots; :meth:`poll` does the same
without blocking. A batch lists its frames in the order of ``cameras``, each with the time it
waited in its slot (put -> batch formed).

Times come from ``clock`` (integer nanoseconds, ``time.monotonic_ns`` by default); a test may pass
its own clock and call :meth:`poll`. Cameras may differ in rate, resolution and encoding: a frame
is any object, the gatherer never looks into it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, Optional, Sequence, TypeVar

Frame = TypeVar("Frame")


@dataclass(frozen=True)
class GatheredFrame(Generic[Frame]):
    """One camera's frame in a batch; ``wait_ns``: nanoseconds from its :meth:`~BatchGatherer.put`
    to the batch being formed.
    """

    camera: str
    frame: Frame
    wait_ns: int


@dataclass(frozen=True)
class CameraCounts:
    """Frames of one camera so far: ``received`` by :meth:`~BatchGatherer.put`, ``batched`` (handed
    out in a batch), ``superseded`` (replaced in their slot by a newer frame before a batch took
    them: dropped). ``received == batched + superseded + waiting`` (waiting is 0 or 1).
    """

    received: int = 0
    batched: int = 0
    superseded: int = 0


class _Slot(Generic[Frame]):
    __slots__ = ("frame", "put_ns", "received", "batched", "superseded")

    def __init__(self) -> None:
        self.frame: Optional[Frame] = None
        self.put_ns = 0
        self.received = self.batched = self.superseded = 0


class BatchGatherer(Generic[Frame]):
    """Newest-frame slots of ``cameras`` (distinct names, at least one) and the batch rule of the
    module docstring. Thread-safe: any number of threads may :meth:`put`, one thread takes.
    """

    def __init__(self, cameras: Sequence[str], batch_timeout_ms: float,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        cameras = list(cameras)
        if not cameras:
            raise ValueError("cameras must name at least one camera")
        duplicates = sorted({c for c in cameras if cameras.count(c) > 1})
        if duplicates:
            raise ValueError(f"cameras must be distinct, {duplicates} appear more than once")
        if isinstance(batch_timeout_ms, bool) or not isinstance(batch_timeout_ms, (int, float)) \
                or not 0 <= batch_timeout_ms < 1e6:
            raise ValueError(f"batch_timeout_ms must be a number of milliseconds in [0, 1e6), got {batch_timeout_ms!r}")
        self.cameras = tuple(cameras)
        self.timeout_ns = round(batch_timeout_ms * 1e6)
        self._clock = clock
        self._slots: dict[str, _Slot[Frame]] = {c: _Slot() for c in cameras}
        self._waiting = 0            # slots holding a frame
        self._first_ns = 0           # put time of the oldest waiting frame (valid when _waiting > 0)
        self._closed = False
        self._changed = threading.Condition()

    def put(self, camera: str, frame: Frame) -> bool:
        """Store ``frame`` as ``camera``'s newest; a frame still waiting in the slot is superseded.
        True when a frame was dropped by this put (the superseded one, or ``frame`` after :meth:`close`).

        Raises ValueError for a camera not in ``cameras``; frames put after :meth:`close` are
        counted as received and superseded (nothing takes them).
        """
        slot = self._slots.get(camera)
        if slot is None:
            raise ValueError(f"unknown camera {camera!r}; cameras are {list(self.cameras)}")
        with self._changed:
            now = self._clock()
            slot.received += 1
            if self._closed:
                slot.superseded += 1
                return True
            superseded = slot.frame is not None
            if superseded:
                slot.superseded += 1
            else:
                if self._waiting == 0:
                    self._first_ns = now
                self._waiting += 1
            slot.frame, slot.put_ns = frame, now
            if self._waiting == len(self._slots) or self._waiting == 1:
                self._changed.notify_all()   # complete, or the timeout starts running
            return superseded

    def poll(self) -> list[GatheredFrame[Frame]]:
        """The ready batch (emptying the slots), or ``[]`` when none is ready. Never blocks."""
        with self._changed:
            return self._take_if_ready(self._clock())

    def take(self, timeout_s: Optional[float] = None) -> list[GatheredFrame[Frame]]:
        """Block until a batch is ready and return it; ``[]`` after ``timeout_s`` seconds (None:
        no limit) without a batch, or once :meth:`close` was called.

        The waiting uses real time (``threading.Condition``) even with an injected clock; the
        readiness test uses the clock.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._changed:
            while not self._closed:
                now = self._clock()
                batch = self._take_if_ready(now)
                if batch:
                    return batch
                waits = []
                if self._waiting:
                    waits.append((self._first_ns + self.timeout_ns - now) / 1e9)
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return []
                    waits.append(left)
                self._changed.wait(max(min(waits), 1e-4) if waits else None)
            return []

    def close(self) -> list[str]:
        """Wake :meth:`take` (it returns ``[]``); frames still waiting are counted as superseded.
        Returns the cameras whose waiting frame was dropped so. Safe to call twice.
        """
        with self._changed:
            self._closed = True
            dropped = []
            for camera, slot in self._slots.items():
                if slot.frame is not None:
                    slot.frame, slot.superseded = None, slot.superseded + 1
                    dropped.append(camera)
            self._waiting = 0
            self._changed.notify_all()
            return dropped

    def counts(self) -> dict[str, CameraCounts]:
        """Each camera's :class:`CameraCounts`, in the order of ``cameras``."""
        with self._changed:
            return {c: CameraCounts(s.received, s.batched, s.superseded) for c, s in self._slots.items()}

    def _take_if_ready(self, now: int) -> list[GatheredFrame[Frame]]:
        if self._waiting == 0 or (self._waiting < len(self._slots) and now - self._first_ns < self.timeout_ns):
            return []
        batch = []
        for camera, slot in self._slots.items():
            if slot.frame is not None:
                batch.append(GatheredFrame(camera, slot.frame, now - slot.put_ns))
                slot.frame, slot.batched = None, slot.batched + 1
        self._waiting = 0
        return batch
