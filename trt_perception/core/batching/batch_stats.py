"""Statistics of the batches a multi-camera node runs: sizes, gather wait, inference time.

Each batch is recorded with its size (frames), its gather wait (nanoseconds from the first frame
entering its slot to the batch being formed: the longest wait of its frames) and the time of its
inference call(s) (nanoseconds). :meth:`BatchStats.status` summarizes them as a diagnostic
:class:`~trt_perception.core.telemetry.health.Status`: the histogram of batch sizes since
configure, and mean/p95 of gather wait and inference over the statistics window. ROS-free.
"""

from __future__ import annotations

import threading
from collections import Counter

from trt_perception.core.telemetry.health import OK, Status
from trt_perception.core.telemetry.latency_stats import RollingWindow, WindowSettings


class BatchStats:
    """Batches of a node with ``cameras`` cameras over a window of ``settings``; thread-safe."""

    def __init__(self, cameras: int, settings: WindowSettings, now_ns: int) -> None:
        self.cameras = cameras
        self._window = RollingWindow(settings.capacity, settings.window_s, columns=2, now_ns=now_ns)
        self._sizes: Counter[int] = Counter()
        self._lock = threading.Lock()

    def start(self, now_ns: int) -> None:
        """Start the window at ``now_ns`` (activation); the size histogram keeps counting."""
        self._window.start(now_ns)

    def record(self, now_ns: int, size: int, gather_wait_ns: int, inference_ns: int) -> None:
        """One batch of ``size`` frames."""
        with self._lock:
            self._sizes[size] += 1
        self._window.record(now_ns, (float(gather_wait_ns), float(inference_ns)))

    def sizes(self) -> dict[int, int]:
        """Batches since configure by size (frames), for sizes 1..cameras (zeros included)."""
        with self._lock:
            return {size: self._sizes.get(size, 0) for size in range(1, max(self.cameras, *self._sizes, 1) + 1)}

    def status(self, name: str, now_ns: int) -> Status:
        """The ``name`` status (always OK: the per-camera statuses judge health)."""
        sizes = self.sizes()
        total = sum(sizes.values())
        wait, infer = self._window.column_stats(now_ns)
        rate = self._window.rate(now_ns)
        mean_size = sum(size * count for size, count in sizes.items()) / total if total else 0.0
        values = [("batches", str(total)), ("batch rate (Hz)", f"{rate:.2f}"),
                  ("mean batch size", f"{mean_size:.2f}")]
        values += [(f"batches of {size}", str(count)) for size, count in sizes.items()]
        values += [("gather wait mean (ms)", f"{wait.mean:.3f}"), ("gather wait p95 (ms)", f"{wait.p95:.3f}"),
                   ("inference mean (ms)", f"{infer.mean:.3f}"), ("inference p95 (ms)", f"{infer.p95:.3f}")]
        message = (f"{total} batches, mean size {mean_size:.2f} of {self.cameras}, "
                   f"gather wait p95 {wait.p95:.1f} ms, inference p95 {infer.p95:.1f} ms")
        return Status(name, OK, message, tuple(values))
