"""SequenceGaps: messages skipped between a publisher's sequence numbers, per publisher."""

from trt_perception.core.telemetry.sequence_gaps import SequenceGaps


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
