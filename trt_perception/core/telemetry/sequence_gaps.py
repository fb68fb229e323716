"""Messages that never reached a subscriber, from the gaps in each publisher's sequence numbers.

A DDS writer numbers its samples 1, 2, 3, ...; a subscriber that sees 7 after 4 from the same
publisher has lost 5 and 6 (discarded by a full subscription queue while the node was busy, or
lost in transport, e.g. on a best-effort link). :class:`SequenceGaps` turns (publisher, sequence number) pairs into
those counts. A publisher's first message only sets its baseline; a number that does not advance
(a restarted publisher reusing an id) starts a new baseline rather than counting anything.
Middlewares that do not report sequence numbers give ``None`` or 0: nothing is counted.
:class:`LossCounter` tells the two causes apart (dropped because busy, lost in transport).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Optional, Sequence


class SequenceGaps:
    """Per-publisher last sequence number; :meth:`missed` counts what was skipped since."""

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}

    def missed(self, publisher: Optional[Hashable], sequence: Optional[int]) -> int:
        """Messages of ``publisher`` numbered between its previous message and ``sequence``
        (0 when either is unknown, for its first message, or when the number did not advance).
        """
        if publisher is None or not sequence:
            return 0
        last = self._last.get(publisher)
        self._last[publisher] = sequence
        if last is None or sequence <= last:
            return 0
        return sequence - last - 1


@dataclass(frozen=True)
class Arrival:
    """One message as the subscription took it: its publisher (any hashable id; None unknown), the
    publisher's sequence number (None or 0 unknown) and when the middleware received it
    (``received_ns``: nanoseconds of the system clock; None unknown).
    """

    publisher: Optional[Hashable]
    sequence: Optional[int]
    received_ns: Optional[int]


@dataclass(frozen=True)
class Losses:
    """Messages missing before a batch: ``dropped_busy`` were received but discarded by the full
    subscription queue while the node was busy; ``lost_in_transport`` never reached the
    subscription (e.g. a best-effort link losing fragments of large images).
    """

    dropped_busy: int = 0
    lost_in_transport: int = 0


class LossCounter:
    """Splits the gaps of :class:`SequenceGaps` by cause, for a KEEP_LAST queue of ``depth``.

    A KEEP_LAST queue discards its oldest message when a new one arrives and it is full, so the
    messages it hands over are consecutive among those received: a gap *between* two messages of
    one publisher within a batch was lost in transport. A gap before a publisher's first message of
    a batch is a queue discard only if the queue could have overflowed: the batch fills the queue
    (``depth`` messages) and its first message was already waiting when the node finished handling
    the previous batch (received at or before ``idle_since_ns``; or either time unknown). Otherwise
    the node was idle while the missing messages would have arrived: lost in transport. A full
    queue that also lost messages in transport cannot be told apart: those count as dropped (busy).
    """

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"a queue depth is at least 1, got {depth}")
        self.depth = depth
        self._gaps = SequenceGaps()

    def count(self, batch: Sequence[Arrival], idle_since_ns: Optional[int]) -> Losses:
        """The messages missing before and within ``batch`` (oldest first); ``idle_since_ns``:
        when the node finished handling its previous batch (system clock ns; None: unknown).
        """
        if not batch:
            return Losses()
        first = batch[0].received_ns
        may_overflow = len(batch) >= self.depth and (
            idle_since_ns is None or first is None or first <= idle_since_ns)
        busy = lost = 0
        seen: set[Hashable] = set()
        for arrival in batch:
            missed = self._gaps.missed(arrival.publisher, arrival.sequence)
            if arrival.publisher is not None and arrival.publisher not in seen and may_overflow:
                busy += missed
            else:
                lost += missed
            if arrival.publisher is not None:
                seen.add(arrival.publisher)
        return Losses(busy, lost)
