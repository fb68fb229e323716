"""Messages that never reached a subscriber, from the gaps in each publisher's sequence numbers.

A DDS writer numbers its samples 1, 2, 3, ...; a subscriber that sees 7 after 4 from the same
publisher has lost 5 and 6 (discarded by a full subscription queue while the node was busy, or
lost on a best-effort link). :class:`SequenceGaps` turns (publisher, sequence number) pairs into
those counts. A publisher's first message only sets its baseline; a number that does not advance
(a restarted publisher reusing an id) starts a new baseline rather than counting anything.
Middlewares that do not report sequence numbers give ``None`` or 0: nothing is counted.
"""

from __future__ import annotations

from typing import Hashable, Optional


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
