"""Tracker parameters: one immutable object, and the same table as ParamSpec rows for the node layer.

:class:`TrackerParams`' fields are the single source of every parameter's name, type, default,
range and description; :data:`PARAM_ROWS` lists them as
:class:`~trt_perception.core.param_spec.ParamSpec` rows (all runtime) for the node layer to declare.
All may change while running: the tracker swaps the whole :class:`TrackerParams` object in one
assignment, so a frame never sees half an update.
:data:`ENABLE_ROW` is the switch a node declares beside them (``tracking: false`` by default).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

from trt_perception.core.param_spec import ParamSpec

ENABLE_ROW = ParamSpec("tracking", False,
                       "give each published detection a stable per-camera track id (Detection2D.id)")


def _param(default: Any, range_: Optional[tuple[Any, Any]], description: str) -> Any:
    """A field of :class:`TrackerParams` carrying its row's range and description."""
    return dataclasses.field(default=default, metadata={"range": range_, "description": description})


@dataclasses.dataclass(frozen=True)
class TrackerParams:
    """Validated tracker parameters (each field's metadata holds its range and description).

    Constructing one with a value of the wrong type or out of range raises ValueError naming
    every problem.
    """

    high_threshold: float = _param(0.5, (0.0, 1.0), "detections scoring at least this are matched "
                                   "first; lower ones are published only when they continue a track")
    low_threshold: float = _param(0.1, (0.0, 1.0), "detections below this are ignored by the tracker "
                                  "and not published")
    new_track_threshold: float = _param(0.6, (0.0, 1.0), "an unmatched detection scoring at least "
                                        "this starts a track")
    match_iou: float = _param(0.2, (0.0, 1.0), "least IoU of a confirmed track's predicted box with a "
                              "high-score detection")
    low_match_iou: float = _param(0.5, (0.0, 1.0), "least IoU of a track's predicted box with a "
                                  "low-score detection")
    tentative_match_iou: float = _param(0.3, (0.0, 1.0), "least IoU of an unconfirmed track's "
                                        "predicted box with a detection")
    min_hits: int = _param(3, (1, 100), "frames with a detection before a track is confirmed and "
                           "gets an id (1: at once)")
    max_lost: float = _param(2.0, (0.0, 60.0), "seconds a confirmed track is kept without detections "
                             "before it is dropped")
    motion_gate: bool = _param(True, None, "also require a detection within the 95 % Kalman gate of "
                               "the track's predicted box, and match by Kalman likelihood instead of IoU")

    def __post_init__(self) -> None:
        problems = []
        for row in param_rows():
            value = getattr(self, row.name)
            kind = type(row.default)
            limits = row.int_range or row.float_range
            if kind is bool:
                ok = isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok:
                problems.append(f"{row.name} must be {kind.__name__}, got {value!r}")
            elif limits is not None and not limits[0] <= value <= limits[1]:
                problems.append(f"{row.name} must be in [{limits[0]}, {limits[1]}], got {value!r}")
            elif kind is float:
                object.__setattr__(self, row.name, float(value))
        if not problems and self.low_threshold > self.high_threshold:
            problems.append(f"low_threshold ({self.low_threshold}) must not exceed high_threshold "
                            f"({self.high_threshold})")
        if problems:
            raise ValueError("invalid tracker parameters: " + "; ".join(problems))

    def replaced(self, values: Mapping[str, Any]) -> "TrackerParams":
        """A copy with ``values`` changed; unknown names and invalid values raise ValueError."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown tracker parameters {sorted(unknown)}; known: {known}")
        return dataclasses.replace(self, **dict(values))

    def as_dict(self) -> dict[str, Any]:
        """The parameters by field name."""
        return dataclasses.asdict(self)


def param_rows() -> tuple[ParamSpec, ...]:
    """The rows of :class:`TrackerParams`' fields, all runtime-tunable (an int field's range as
    ``int_range``, a float field's as ``float_range``).
    """
    rows = []
    for f in dataclasses.fields(TrackerParams):
        limits = f.metadata["range"]
        is_int = type(f.default) is int
        rows.append(ParamSpec(f.name, f.default, f.metadata["description"],
                              int_range=limits if is_int else None,
                              float_range=None if is_int or limits is None else (float(limits[0]), float(limits[1])),
                              runtime=True))
    return tuple(rows)


#: the tracker's parameters as ParamSpec rows, for the node layer to declare
PARAM_ROWS: tuple[ParamSpec, ...] = param_rows()
