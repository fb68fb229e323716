"""LatestWorker: the newest item is handled, replaced items are reported as drops, errors do not
stop the thread."""

import threading
import time

from trt_perception.core.latest_worker import LatestWorker


def test_items_put_while_busy_are_replaced_and_reported():
    handled, errors = [], []
    release = threading.Event()
    started = threading.Event()

    def handle(item):
        started.set()
        release.wait(5)
        handled.append(item)

    worker = LatestWorker(handle, errors.append, "test_worker")
    worker.start()
    assert worker.put(1) is False
    assert started.wait(5)            # the thread is busy with 1
    assert worker.put(2) is False     # waits in the slot
    assert worker.put(3) is True      # replaces 2: a drop
    release.set()
    worker.stop()                     # 1 finishes; 3 may or may not have been taken before stop
    assert handled[0] == 1 and 2 not in handled and set(handled) <= {1, 3}
    assert not errors


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.001)
    return predicate()


def test_every_item_is_handled_when_the_producer_waits_for_the_worker():
    handled = []
    worker = LatestWorker(handled.append, lambda exc: None, "test_worker")
    worker.start()
    for item in range(5):
        assert worker.put(item) is False
        assert wait_until(lambda: len(handled) == item + 1)
    worker.stop()
    assert handled == [0, 1, 2, 3, 4]


def test_an_exception_goes_to_on_error_and_the_worker_keeps_serving():
    errors, handled = [], []
    second = threading.Event()

    def handle(item):
        if item == "bad":
            raise RuntimeError("boom")
        handled.append(item)
        second.set()

    worker = LatestWorker(handle, errors.append, "test_worker")
    worker.start()
    worker.put("bad")
    assert wait_until(lambda: bool(errors))
    worker.put("good")
    assert second.wait(5)
    worker.stop()
    worker.stop()  # idempotent
    assert handled == ["good"] and isinstance(errors[0], RuntimeError)
