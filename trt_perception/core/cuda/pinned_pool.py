"""PinnedBufferPool: page-locked host buffers of one size, lent out and taken back automatically.

A frame copied into page-locked (pinned) memory uploads to the GPU asynchronously at the bus's full
speed; from ordinary (pageable) memory the driver must stage it first, on the host, while the
caller waits. Allocating page-locked memory is slow (milliseconds), so buffers are allocated once
and reused: :meth:`PinnedBufferPool.acquire` lends a buffer as a ``uint8[nbytes]`` array and the
buffer returns to the pool when that array is garbage-collected (whoever holds the array, e.g. a
frame waiting for its batch or an upload in flight, keeps the buffer). At most ``limit`` buffers
exist; past that :meth:`~PinnedBufferPool.acquire` returns None and the caller keeps its pageable
bytes (slower, never wrong). Thread-safe: producers' threads acquire, any thread returns.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Optional

import numpy as np

from trt_perception.core.cuda.device import CudaDevice


class PinnedBufferPool:
    """``limit`` page-locked buffers of ``nbytes`` bytes on ``device`` at most (module docstring)."""

    def __init__(self, device: CudaDevice, nbytes: int, limit: int) -> None:
        if nbytes < 1 or limit < 1:
            raise ValueError(f"nbytes and limit must be >= 1, got {nbytes} and {limit}")
        self.device = device
        self.nbytes = int(nbytes)
        self.limit = int(limit)
        self._free: list[Any] = []        # pycuda page-locked allocations' arrays not lent out
        self._count = 0                   # buffers allocated (free + lent out)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def allocated(self) -> int:
        """Buffers allocated so far (free and lent out)."""
        return self._count

    def acquire(self) -> Optional[np.ndarray]:
        """A free buffer as ``uint8[nbytes]`` (allocated if none is free and fewer than ``limit``
        exist), or None when all ``limit`` are lent out or the pool is closed. The buffer comes
        back when the returned array is garbage-collected: keep that array itself (not only a view
        of it, which numpy links to the allocation, not to the loan) for as long as the bytes are
        used, an asynchronous upload from them included.
        """
        with self._lock:
            if self._closed:
                return None
            if self._free:
                base = self._free.pop()
            elif self._count < self.limit:
                with self.device.current():
                    base = self.device.driver.pagelocked_empty(self.nbytes, np.uint8)
                self._count += 1
            else:
                return None
        lent: np.ndarray = base[:]        # a new array object: its lifetime is the loan's
        weakref.finalize(lent, self._give_back, base)
        return lent

    def _give_back(self, base: Any) -> None:
        with self._lock:
            if not self._closed:
                self._free.append(base)
                return
        self._count -= 1                  # closed: the allocation is freed with its last reference

    def close(self) -> None:
        """Free the buffers not lent out; those still lent are freed when they come back."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
            self._count -= len(free)
        with self.device.current():
            for base in free:
                base.base.free()
