"""BatchGatherer: batch formation by completeness or timeout, superseded counting, dead cameras."""

import threading
import time

import pytest

from trt_perception.core.batching.batch_stats import BatchStats
from trt_perception.core.batching.gatherer import BatchGatherer, CameraCounts
from trt_perception.core.telemetry.latency_stats import WindowSettings

MS = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def make(cameras=("a", "b", "c"), timeout_ms=50.0):
    clock = Clock()
    return BatchGatherer(list(cameras), timeout_ms, clock=clock), clock


def test_batch_forms_when_every_camera_has_a_new_frame():
    gatherer, clock = make()
    gatherer.put("b", "b0")
    clock.now = 3 * MS
    gatherer.put("a", "a0")
    assert gatherer.poll() == []
    clock.now = 10 * MS
    gatherer.put("c", "c0")
    batch = gatherer.poll()
    assert [(g.camera, g.frame, g.wait_ns) for g in batch] == [("a", "a0", 7 * MS), ("b", "b0", 10 * MS),
                                                              ("c", "c0", 0)]
    assert gatherer.poll() == []   # the slots were emptied


def test_timeout_counts_from_the_first_frame_and_a_dead_camera_never_stalls():
    gatherer, clock = make(timeout_ms=50)
    for step in range(3):           # camera c never sends
        start = step * 100 * MS
        clock.now = start
        gatherer.put("a", f"a{step}")
        clock.now = start + 20 * MS
        gatherer.put("b", f"b{step}")
        clock.now = start + 49 * MS
        assert gatherer.poll() == []
        clock.now = start + 50 * MS
        batch = gatherer.poll()
        assert [(g.camera, g.frame, g.wait_ns) for g in batch] == [("a", f"a{step}", 50 * MS),
                                                                  ("b", f"b{step}", 30 * MS)]
    assert gatherer.counts()["c"] == CameraCounts(0, 0, 0)
    assert gatherer.counts()["a"] == CameraCounts(3, 3, 0)


def test_superseded_frames_are_counted_per_camera_and_the_newest_is_kept():
    gatherer, clock = make(cameras=("fast", "slow"), timeout_ms=100)
    for i in range(5):
        clock.now = i * 10 * MS
        gatherer.put("fast", i)
    assert gatherer.poll() == []
    clock.now = 45 * MS
    gatherer.put("slow", "s")
    batch = gatherer.poll()
    assert [(g.camera, g.frame) for g in batch] == [("fast", 4), ("slow", "s")]
    assert batch[0].wait_ns == 5 * MS   # from the put of the newest frame, not the first
    counts = gatherer.counts()
    assert counts["fast"] == CameraCounts(received=5, batched=1, superseded=4)
    assert counts["slow"] == CameraCounts(received=1, batched=1, superseded=0)


def test_timeout_of_a_superseding_camera_runs_from_its_first_waiting_frame():
    gatherer, clock = make(cameras=("a", "b"), timeout_ms=30)
    gatherer.put("a", 0)
    clock.now = 20 * MS
    gatherer.put("a", 1)            # replaces frame 0; the batch still started at 0 ms
    clock.now = 30 * MS
    assert [g.frame for g in gatherer.poll()] == [1]


def test_zero_timeout_hands_out_each_frame_at_once():
    gatherer, _ = make(timeout_ms=0)
    gatherer.put("c", "x")
    assert [g.camera for g in gatherer.poll()] == ["c"]


def test_frames_of_any_kind_and_size_pass_through_untouched():
    import numpy as np
    gatherer, _ = make(cameras=("mono", "rgb"))
    mono = np.zeros((480, 640), np.uint8)
    jpeg = b"\xff\xd8 compressed bytes"
    gatherer.put("mono", (mono, "mono"))
    gatherer.put("rgb", jpeg)
    batch = gatherer.poll()
    assert batch[0].frame[0] is mono and batch[1].frame is jpeg


def test_take_blocks_until_complete_and_returns_after_the_timeout_without_a_dead_camera():
    gatherer = BatchGatherer(["a", "b"], batch_timeout_ms=80)
    got = []
    taker = threading.Thread(target=lambda: got.append(gatherer.take(timeout_s=5)))
    taker.start()
    time.sleep(0.05)
    gatherer.put("a", 1)
    gatherer.put("b", 2)
    taker.join(5)
    assert [g.frame for g in got[0]] == [1, 2]
    gatherer.put("a", 3)              # b is now dead
    t0 = time.monotonic()
    batch = gatherer.take(timeout_s=5)
    assert [g.frame for g in batch] == [3]
    assert 0.07 <= time.monotonic() - t0 < 2.0
    assert gatherer.take(timeout_s=0.05) == []   # nothing waiting: empty after its own timeout


def test_close_wakes_take_and_counts_waiting_frames_as_superseded():
    gatherer = BatchGatherer(["a", "b"], batch_timeout_ms=10_000)
    gatherer.put("a", 1)
    got = []
    taker = threading.Thread(target=lambda: got.append(gatherer.take()))
    taker.start()
    time.sleep(0.05)
    gatherer.close()
    taker.join(5)
    assert got == [[]]
    gatherer.put("b", 2)
    assert gatherer.counts() == {"a": CameraCounts(1, 0, 1), "b": CameraCounts(1, 0, 1)}


def test_concurrent_puts_lose_no_frame_from_the_counts():
    gatherer = BatchGatherer(["a", "b", "c", "d"], batch_timeout_ms=1)
    taken = {c: 0 for c in "abcd"}
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            for g in gatherer.take(timeout_s=0.01):
                taken[g.camera] += 1

    def produce(camera):
        for i in range(500):
            gatherer.put(camera, i)

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(c,)) for c in "abcd"]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    stop.set()
    consumer.join(5)
    gatherer.close()                  # a frame still waiting counts as superseded
    for camera, counts in gatherer.counts().items():
        assert counts.received == 500
        assert counts.batched == taken[camera]
        assert counts.batched + counts.superseded == 500


@pytest.mark.parametrize("cameras, timeout, message", [
    ([], 10, "at least one"), (["a", "a"], 10, "distinct"), (["a"], -1, "batch_timeout_ms"),
    (["a"], True, "batch_timeout_ms"),
])
def test_bad_settings_are_refused(cameras, timeout, message):
    with pytest.raises(ValueError, match=message):
        BatchGatherer(cameras, timeout)


def test_unknown_camera_is_refused():
    gatherer, _ = make()
    with pytest.raises(ValueError, match="unknown camera 'z'"):
        gatherer.put("z", 1)


def test_put_and_close_say_which_frames_they_dropped():
    gatherer, _ = make(cameras=("a", "b"))
    assert gatherer.put("a", 1) is False
    assert gatherer.put("a", 2) is True        # frame 1 superseded
    assert gatherer.put("b", 3) is False
    assert [g.frame for g in gatherer.poll()] == [2, 3]
    assert gatherer.put("b", 4) is False
    assert gatherer.close() == ["b"]           # frame 4 was waiting
    assert gatherer.put("a", 5) is True        # after close: dropped
    assert gatherer.counts()["a"] == CameraCounts(received=3, batched=1, superseded=2)


def test_batch_stats_histogram_and_status():
    stats = BatchStats(3, WindowSettings(window_s=10.0, capacity=100), now_ns=0)
    stats.record(1 * 10**9, size=3, gather_wait_ns=2 * MS, inference_ns=30 * MS)
    stats.record(2 * 10**9, size=1, gather_wait_ns=20 * MS, inference_ns=10 * MS)
    assert stats.sizes() == {1: 1, 2: 0, 3: 1}
    status = stats.status("batches", 3 * 10**9)
    values = dict(status.values)
    assert values["batches"] == "2" and values["mean batch size"] == "2.00" and values["batches of 2"] == "0"
    assert float(values["gather wait mean (ms)"]) == pytest.approx(11.0)
    assert float(values["inference mean (ms)"]) == pytest.approx(20.0)
    assert "2 batches, mean size 2.00 of 3" in status.message
