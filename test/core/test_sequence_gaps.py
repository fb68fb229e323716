"""SequenceGaps: messages skipped between a publisher's sequence numbers, per publisher."""

from trt_perception.core.telemetry.sequence_gaps import Arrival, LossCounter, Losses, SequenceGaps


def test_first_message_sets_the_baseline_and_gaps_are_counted():
    gaps = SequenceGaps()
    assert gaps.missed(b"a", 5) == 0          # the subscriber may have joined late: nothing lost yet
    assert gaps.missed(b"a", 6) == 0
    assert gaps.missed(b"a", 9) == 2          # 7 and 8 never arrived
    assert gaps.missed(b"a", 10) == 0


def test_publishers_are_tracked_separately():
    gaps = SequenceGaps()
    assert [gaps.missed(p, s) for p, s in [(b"a", 1), (b"b", 40), (b"a", 3), (b"b", 41), (b"b", 45)]] == \
        [0, 0, 1, 0, 3]


def test_unknown_numbers_and_restarts_count_nothing():
    gaps = SequenceGaps()
    assert gaps.missed(None, 3) == 0 and gaps.missed(b"a", None) == 0 and gaps.missed(b"a", 0) == 0
    assert gaps.missed(b"a", 10) == 0
    assert gaps.missed(b"a", 10) == 0         # repeated: not a gap
    assert gaps.missed(b"a", 2) == 0          # went back (restarted publisher): new baseline
    assert gaps.missed(b"a", 4) == 1


# ---- LossCounter: dropped because busy vs lost in transport --------------------------------------

def arrivals(*items):
    return [Arrival(publisher, sequence, received) for publisher, sequence, received in items]


def test_gap_while_idle_is_lost_in_transport_and_while_busy_dropped():
    losses = LossCounter(depth=1)
    assert losses.count(arrivals((b"a", 1, 100)), idle_since_ns=None) == Losses()      # baseline
    # 2 and 3 missing; 4 arrived at 250, after the node went idle at 200: nothing could overflow
    assert losses.count(arrivals((b"a", 4, 250)), idle_since_ns=200) == Losses(0, 2)
    # 5 and 6 missing; 7 was waiting (received at 300, the node idle only from 350): queue discards
    assert losses.count(arrivals((b"a", 7, 300)), idle_since_ns=350) == Losses(2, 0)


def test_a_batch_below_the_depth_never_overflowed_and_gaps_inside_a_batch_are_transport():
    losses = LossCounter(depth=4)
    losses.count(arrivals((b"a", 1, 10)), idle_since_ns=None)
    # waiting when the node came back, but 3 messages in a 4-deep queue: no discard happened
    assert losses.count(arrivals((b"a", 3, 20), (b"a", 4, 21), (b"a", 5, 22)), idle_since_ns=30) == Losses(0, 1)
    # a full batch that waited: the gap before it is the queue's; the gap inside it (9) is transport
    batch = arrivals((b"a", 7, 40), (b"a", 8, 41), (b"a", 10, 42), (b"a", 11, 43))
    assert losses.count(batch, idle_since_ns=50) == Losses(1, 1)


def test_each_publishers_first_message_of_a_full_batch_may_follow_queue_discards():
    losses = LossCounter(depth=2)
    losses.count(arrivals((b"a", 1, 1), (b"b", 1, 2)), idle_since_ns=None)
    assert losses.count(arrivals((b"a", 5, 10), (b"b", 3, 11)), idle_since_ns=20) == Losses(4, 0)


def test_unknown_reception_time_or_publisher():
    losses = LossCounter(depth=1)
    losses.count(arrivals((b"a", 1, None)), idle_since_ns=None)
    # reception time unknown: a full queue may have overflowed (the count before this split)
    assert losses.count(arrivals((b"a", 3, None)), idle_since_ns=5) == Losses(1, 0)
    assert losses.count(arrivals((None, 9, 1)), idle_since_ns=0) == Losses()           # publisher unknown
    assert losses.count([], idle_since_ns=0) == Losses()
