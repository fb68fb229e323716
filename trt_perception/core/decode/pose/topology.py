"""Pose topology: part names and the links (limbs) between them, in trt_pose's file format.

A topology file is a COCO keypoint category, as trt_pose's ``tasks/human_pose/human_pose.json``::

    {"keypoints": ["nose", "left_eye", ...],        # C part names, cmap channel c = part c
     "skeleton": [[16, 14], [14, 12], ...]}         # L links [part_a, part_b], 1-based

Link k (0-based, in file order) goes from ``part_a`` to ``part_b`` and owns two PAF channels, in
trt_pose's order: channel ``2k`` holds the **y** component (along rows, i) and channel ``2k + 1``
the **x** component (along columns, j) of the unit vector pointing from part_a to part_b.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trt_perception.core.config_files import read_mapping

#: COCO's 17 keypoints plus neck, and trt_pose's 21 links (1-based), as in ``human_pose.json``.
COCO18_CATEGORY: dict[str, Any] = {
    "supercategory": "person", "id": 1, "name": "person",
    "keypoints": ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                  "neck"],
    "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 8], [7, 9], [8, 10],
                 [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7], [18, 1],
                 [18, 6], [18, 7], [18, 12], [18, 13]],
}


class TopologyError(ValueError):
    """A topology that cannot be used, with the reason."""


@dataclass(frozen=True)
class Topology:
    """C named parts and L directed links.

    parts: the C part names (cmap channel order). links: int64[L, 2] (part_a, part_b), 0-based.
    """

    parts: tuple[str, ...]
    links: np.ndarray

    def __post_init__(self) -> None:
        links = np.asarray(self.links)
        num_parts = len(self.parts)
        if num_parts == 0:
            raise TopologyError("topology has no parts")
        if len(set(self.parts)) != num_parts:
            raise TopologyError(f"topology part names must be unique, got {list(self.parts)}")
        if links.ndim != 2 or links.shape[1] != 2 or links.shape[0] == 0:
            raise TopologyError(f"topology links must be a non-empty list of [part_a, part_b] pairs, "
                                f"got shape {list(links.shape)}")
        if links.min() < 0 or links.max() >= num_parts:
            raise TopologyError(f"topology links must name parts 0..{num_parts - 1}, "
                                f"got values {links.min()}..{links.max()}")
        if np.any(links[:, 0] == links[:, 1]):
            raise TopologyError("a topology link must join two different parts")
        links = links.astype(np.int64)
        links.flags.writeable = False
        object.__setattr__(self, "links", links)
        object.__setattr__(self, "parts", tuple(self.parts))

    @property
    def num_parts(self) -> int:
        """C: number of part types (cmap channels)."""
        return len(self.parts)

    @property
    def num_links(self) -> int:
        """L: number of link types (PAF channels / 2)."""
        return int(self.links.shape[0])

    @classmethod
    def from_coco_category(cls, category: Mapping[str, Any]) -> "Topology":
        """From a COCO keypoint category (``keypoints`` names, 1-based ``skeleton`` pairs)."""
        try:
            parts = [str(name) for name in category["keypoints"]]
            links = np.asarray(category["skeleton"], dtype=np.int64).reshape(-1, 2) - 1
        except (KeyError, TypeError, ValueError) as exc:
            raise TopologyError(f"a topology needs 'keypoints' (part names) and 'skeleton' "
                                f"(1-based [part_a, part_b] pairs): {exc}") from exc
        return cls(tuple(parts), links)

    def to_coco_category(self) -> dict[str, Any]:
        """The COCO keypoint category of this topology (inverse of :meth:`from_coco_category`)."""
        return {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(self.parts),
                "skeleton": (self.links + 1).tolist()}


def load_topology(path: str | Path) -> Topology:
    """Read a trt_pose topology JSON file; errors name the file and the problem."""
    path = Path(path)
    category = read_mapping(path, "topology file", json.loads, "JSON", (json.JSONDecodeError,), TopologyError)
    try:
        return Topology.from_coco_category(category)
    except TopologyError as exc:
        raise TopologyError(f"topology file {path}: {exc}") from exc


#: The default topology: trt_pose's human_pose.json (COCO 18 parts, 21 links).
COCO18 = Topology.from_coco_category(COCO18_CATEGORY)
