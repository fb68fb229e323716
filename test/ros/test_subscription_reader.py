"""SubscriptionReader: a subscription read by its own thread while the node is spun by an executor,
and FrameInput's accounting on top of it (frames discarded by a full queue are counted)."""

import threading
import time

from harness import wait_for
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from trt_perception.ros.frame_input import FrameInput
from trt_perception.ros.serialized import reads_images
from trt_perception.ros.subscription_reader import SubscriptionReader

RELIABLE_10 = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


def make_reader(ros, handle, errors, topic="reader_test"):
    reader = SubscriptionReader(ros.node, handle, errors.append, name="test_reader")
    reader.subscribe(String, topic, RELIABLE_10)
    return reader


def test_the_reader_gets_every_message_in_order_and_the_executor_none(ros):
    batches, errors = [], []
    reader = make_reader(ros, lambda batch, taken_ns: batches.append([m.data for m, _ in batch]), errors)
    publisher = ros.node.create_publisher(String, "reader_test", RELIABLE_10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)
    for i in range(20):
        publisher.publish(String(data=str(i)))
        assert wait_for(lambda: sum(len(b) for b in batches) == i + 1), f"message {i} not read"
    assert [m for b in batches for m in b] == [str(i) for i in range(20)]
    assert errors == []  # the executor (spinning this node) never ran the subscription's callback
    reader.close()


def test_messages_wait_in_the_queue_while_the_handler_is_busy(ros):
    release, entered = threading.Event(), threading.Event()
    batches, errors = [], []

    def handle(batch, taken_ns):
        batches.append([m.data for m, _ in batch])
        entered.set()
        release.wait(10)

    reader = make_reader(ros, handle, errors)
    publisher = ros.node.create_publisher(String, "reader_test", RELIABLE_10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)
    publisher.publish(String(data="first"))
    assert entered.wait(10)
    for data in ("a", "b", "c"):
        publisher.publish(String(data=data))
    release.set()
    assert wait_for(lambda: len(batches) == 2)
    assert batches == [["first"], ["a", "b", "c"]]  # one batch, oldest first
    assert errors == []
    reader.close()


def test_an_error_is_reported_and_reading_goes_on(ros):
    handled, errors = [], []

    def handle(batch, taken_ns):
        if batch[0][0].data == "bad":
            raise ValueError("boom")
        handled.append(batch[0][0].data)

    reader = make_reader(ros, handle, errors)
    publisher = ros.node.create_publisher(String, "reader_test", RELIABLE_10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)
    publisher.publish(String(data="bad"))
    assert wait_for(lambda: len(errors) == 1)
    publisher.publish(String(data="good"))
    assert wait_for(lambda: handled == ["good"])
    assert isinstance(errors[0], ValueError)
    reader.close()


def test_one_thread_reads_one_subscription_after_another(ros):
    received, errors = [], []
    reader = make_reader(ros, lambda batch, taken_ns: received.extend(m.data for m, _ in batch), errors)
    thread = reader._thread
    first = ros.node.create_publisher(String, "reader_test", RELIABLE_10)
    assert wait_for(lambda: first.get_subscription_count() == 1)
    first.publish(String(data="a"))
    assert wait_for(lambda: received == ["a"])
    reader.unsubscribe()
    assert wait_for(lambda: first.get_subscription_count() == 0) and reader.topic_name is None
    first.publish(String(data="not read"))
    reader.subscribe(String, "reader_test_2", RELIABLE_10)   # as at the next activation
    second = ros.node.create_publisher(String, "reader_test_2", RELIABLE_10)
    assert wait_for(lambda: second.get_subscription_count() == 1)
    second.publish(String(data="b"))
    assert wait_for(lambda: received == ["a", "b"])
    assert reader._thread is thread and thread.is_alive() and errors == []
    reader.close()
    assert not thread.is_alive()


def test_close_stops_the_thread_and_unsubscribes(ros):
    reader = make_reader(ros, lambda batch, taken_ns: None, [])
    publisher = ros.node.create_publisher(String, "reader_test", RELIABLE_10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)
    thread = reader._thread
    reader.close()
    reader.close()  # idempotent
    assert not thread.is_alive()
    assert wait_for(lambda: publisher.get_subscription_count() == 0)


def test_frames_discarded_by_the_full_queue_are_counted_as_dropped(ros):
    release, entered = threading.Event(), threading.Event()
    frames = []

    def sink(frame):
        frames.append(frame.header.stamp.sec)
        entered.set()
        release.wait(10)

    frame_input = FrameInput(ros.node, sink)
    frame_input.start("raw", QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                                        reliability=ReliabilityPolicy.BEST_EFFORT))
    publisher = ros.node.create_publisher(Image, "image", 10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)

    def image(sec):
        msg = Image(height=2, width=2, encoding="bgr8", step=6, data=bytes(12))
        msg.header.stamp.sec = sec
        return msg

    publisher.publish(image(1))
    assert entered.wait(10)
    for sec in range(2, 7):   # the node is busy: a one-deep queue keeps only the newest
        publisher.publish(image(sec))
    release.set()
    assert wait_for(lambda: len(frames) == 2)
    stats = frame_input.stats
    assert frames == [1, 6]
    assert (stats.received.total, stats.dropped.total, stats.converted) == (6, 4, 2)
    frame_input.close()


def test_close_after_the_context_was_shut_down_returns():
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    context = Context()
    rclpy.init(context=context)
    node = Node("reader_shutdown_test", context=context)
    errors = []
    reader = SubscriptionReader(node, lambda batch, taken_ns: None, errors.append, name="test_reader")
    reader.subscribe(String, "reader_test", RELIABLE_10)
    thread = reader._thread
    rclpy.shutdown(context=context)   # Ctrl-C: the context goes first, the node is closed after
    closer = threading.Thread(target=reader.close)
    closer.start()
    closer.join(timeout=5)
    assert not closer.is_alive() and not thread.is_alive()
    assert errors == []               # stopping on purpose is not an error
    node.destroy_node()


def test_gaps_while_idle_count_as_lost_in_transport_not_dropped(ros):
    """Messages really taken from a subscription, handed to FrameInput as its reader would, with
    publication sequence numbers that skip (as a lossy link leaves them) while the node was idle."""
    taken = []
    reader = SubscriptionReader(ros.node, lambda batch, taken_ns: taken.extend(batch), [].append, name="probe")
    reader.subscribe(Image, "image", QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST), raw=reads_images())
    publisher = ros.node.create_publisher(Image, "image", 10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)
    publisher.publish(Image(height=2, width=2, encoding="bgr8", step=6, data=bytes(12)))
    assert wait_for(lambda: len(taken) == 1)
    reader.close()
    msg, info = taken[0]
    assert info["publication_sequence_number"] >= 1 and info["received_timestamp"] > 0

    frames = []
    frame_input = FrameInput(ros.node, frames.append)
    frame_input.start("raw", QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                                        reliability=ReliabilityPolicy.BEST_EFFORT))
    for sequence in (1, 2, 5, 6, 10):   # 3, 4 and 7-9 never arrived; each arrived after the last was handled
        arrival = dict(info, publication_sequence_number=sequence, received_timestamp=time.time_ns())
        frame_input._on_messages([(msg, arrival)], time.perf_counter_ns())
    stats = frame_input.stats
    assert (stats.received.total, stats.dropped.total, stats.lost.total, stats.converted) == (5, 0, 5, 5)
    assert len(frames) == 5
    frame_input.close()
