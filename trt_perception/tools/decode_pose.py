"""``trt-perception decode-pose``: decode saved cmap / paf arrays into skeletons -> JSON.

Input: ``--cmap`` float32[N, C, H, W] and ``--paf`` float32[N, 2L, H, W] ``.npy`` files (trt_pose
model outputs), a topology (``--topology``, trt_pose's JSON format; COCO 18 parts by default).
Output (written atomically), one entry per image, people by decreasing score::

    {"images": [{"skeletons": [
        {"score": float,
         "keypoints": [{"part": int, "name": str, "x": float, "y": float, "score": float}],
         "links": [[part_a, part_b], ...]}]}]}

x, y are map cells: the centre of cell (row i, column j) is (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import numpy as np

from trt_perception.core.decode.pose import COCO18, PoseParams, PoseParser, Skeleton, Topology, load_topology
from trt_perception.core.io.atomic_write import atomic_write_text


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the ``decode-pose`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "decode-pose", help="decode saved trt_pose cmap/paf arrays into skeletons (JSON)",
        description="Decode confidence maps and part affinity fields saved as .npy files into "
                    "skeletons, in map cells, and write them to a JSON file.")
    parser.add_argument("--cmap", required=True, help="float32 [N, C, H, W] confidence maps (.npy)")
    parser.add_argument("--paf", required=True, help="float32 [N, 2L, H, W] part affinity fields (.npy)")
    parser.add_argument("--topology", help="topology JSON in trt_pose's format (default: COCO 18 parts, "
                                           "21 links, as trt_pose's human_pose.json)")
    parser.add_argument("--json", required=True, help="output JSON file")
    defaults = PoseParams()
    for field in dataclasses.fields(PoseParams):
        default = getattr(defaults, field.name)
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(default), default=default,
                            metavar="N" if isinstance(default, int) else "X",
                            help=f"decoder parameter (default {default})")
    parser.set_defaults(func=run)


def skeleton_to_json(skeleton: Skeleton, topology: Topology) -> dict[str, Any]:
    """The JSON object of one skeleton (see the module docstring)."""
    return {
        "score": round(skeleton.score, 6),
        "keypoints": [{"part": part, "name": topology.parts[part], "x": round(x, 4), "y": round(y, 4),
                       "score": round(score, 6)}
                      for part, (x, y), score in zip(skeleton.parts.tolist(), skeleton.xy.tolist(),
                                                     skeleton.scores.tolist())],
        "links": skeleton.links.tolist(),
    }


def _load(path: str, name: str) -> np.ndarray:
    try:
        array: np.ndarray = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read --{name} {path}: {exc}") from exc
    if array.ndim != 4:
        raise ValueError(f"--{name} {path} must hold a [N, channels, H, W] array, got shape {list(array.shape)}")
    return array


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception decode-pose`` with the parsed ``args``; returns the process exit status."""
    try:
        topology = load_topology(args.topology) if args.topology else COCO18
        params = PoseParams.from_dict({f.name: getattr(args, f.name) for f in dataclasses.fields(PoseParams)})
        cmap, paf = _load(args.cmap, "cmap"), _load(args.paf, "paf")
        if cmap.shape[0] != paf.shape[0]:
            raise ValueError(f"--cmap holds {cmap.shape[0]} images but --paf holds {paf.shape[0]}")
        parser = PoseParser(topology, params)
        images = [{"skeletons": [skeleton_to_json(s, topology)
                                 for s in parser(cmap[n], paf[n]).skeletons(topology)]}
                  for n in range(cmap.shape[0])]
    except ValueError as exc:
        print(f"decode-pose: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(args.json, json.dumps({"images": images}, indent=1) + "\n")
    people = sum(len(image["skeletons"]) for image in images)
    print(f"decoded {len(images)} image(s), {people} skeleton(s) -> {args.json}")
    return 0
