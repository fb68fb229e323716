"""Names that were given but are not known, each with the closest known name (ROS-free).

Used for parameter overrides a node does not declare: rclpy keeps them aside and ignores them, so
a misspelt parameter in a parameter file would otherwise go unnoticed.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Optional


def unknown_names(given: Iterable[str], known: Iterable[str]) -> list[tuple[str, Optional[str]]]:
    """``(name, closest known name or None)`` for each name of ``given`` not in ``known``, sorted
    by name; "closest" as :func:`difflib.get_close_matches` (similarity ratio >= 0.6, e.g.
    ``score_treshold`` -> ``score_threshold``).
    """
    known = list(known)
    known_set = set(known)
    out = []
    for name in sorted(set(given) - known_set):
        match = difflib.get_close_matches(name, known, n=1)
        out.append((name, match[0] if match else None))
    return out


def describe(unknown: Iterable[tuple[str, Optional[str]]]) -> str:
    """``"a (did you mean b?), c"`` for :func:`unknown_names`' result."""
    return ", ".join(f"{name} (did you mean {close}?)" if close else name for name, close in unknown)
