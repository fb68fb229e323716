"""Track ids on a real street video (no ground truth): what the tracker does with the detector's output.

Runs the bundled SSDLite pedestrian detector (ONNX Runtime, CPU) once over a video, keeps its
detections, then tracks them with several tracker settings and reports per setting: ids given,
track lengths (frames with the id), detections published with an id, tracks re-found after a gap,
and "jumps": consecutive boxes of one id that do not overlap (IoU < 0.1 between the last and the
next box of the id), the visible kind of identity switch. Without ground truth, switches between
two overlapping pedestrians are not counted: the numbers describe behaviour, they do not score it.

Stamps: frame index / the video's frame rate (``--fps`` to override; data/vtest_sample.mp4 holds
every 3rd frame of vtest.avi at 10 frames/s in its header, so ``--fps 3.333`` gives real time).
Run: ``.venv/bin/python benchmarks/tracking_vtest.py [--input data/vtest_sample.mp4] [--fps X]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.pipeline import Pipeline
from trt_perception.core.tracking import Tracker, TrackerParams
from trt_perception.core.tracking.association import iou_matrix

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "tracking_vtest"


def detect_all(path: Path, score_threshold: float) -> tuple[list[Detections], float]:
    """The detector's output for every frame of ``path`` and the video's frame rate."""
    frames = open_frames(path)
    out = []
    with Pipeline.from_config(MODEL_YAML, "onnxruntime", threads=0) as pipeline:
        pipeline.decoder.set_params({"score_threshold": score_threshold})
        for _, pixels in tqdm(frames, total=len(frames), unit="frame", disable=None):
            out.append(pipeline.run(pixels, "bgr")[0])
    return out, float(getattr(frames, "fps", 0.0))


def describe(dets: list[Detections], fps: float, params: TrackerParams) -> dict[str, Any]:
    """Track statistics of one tracker setting (module docstring)."""
    tracker = Tracker(params)
    seen: dict[str, list[tuple[int, np.ndarray]]] = {}
    published = with_id = 0
    for index, frame in enumerate(dets):
        out = tracker.update(frame, round(index * 1e9 / fps))
        assert out.ids is not None
        published += len(out)
        for box, track_id in zip(out.boxes_xyxy, out.ids):
            if track_id:
                with_id += 1
                seen.setdefault(track_id, []).append((index, box))
    lengths = np.array([len(v) for v in seen.values()]) if seen else np.zeros(1, int)
    refound = jumps = 0
    for history in seen.values():
        for (i0, b0), (i1, b1) in zip(history, history[1:]):
            refound += i1 - i0 > 1
            jumps += iou_matrix(b0[None], b1[None])[0, 0] < 0.1
    return {"ids": len(seen), "published": published, "with_id": with_id,
            "length_median": float(np.median(lengths)), "length_max": int(lengths.max()),
            "length_mean": float(lengths.mean()), "tracks_10_frames": int((lengths >= 10).sum()),
            "refound": int(refound), "jumps": int(jumps)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=ROOT / "data" / "vtest_sample.mp4")
    parser.add_argument("--fps", type=float, help="frame rate of the stamps (default: the video's)")
    parser.add_argument("--score-threshold", type=float, default=0.3,
                        help="decoder threshold: the tracker's low-score detections lie between it and "
                             "high_threshold (default 0.3)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    dets, video_fps = detect_all(args.input, args.score_threshold)
    fps = args.fps or video_fps or 10.0
    variants = {"default": TrackerParams(), "no motion gate": TrackerParams(motion_gate=False),
                "min_hits 2": TrackerParams(min_hits=2)}
    results = {name: describe(dets, fps, params) for name, params in variants.items()}
    name = args.input.name
    shown = args.input.relative_to(ROOT) if args.input.is_relative_to(ROOT) else args.input
    lines = [
        f"## {name} ({len(dets)} frames, stamps at {fps:g} frames/s, decoder score_threshold "
        f"{args.score_threshold})",
        "",
        f"`benchmarks/tracking_vtest.py --input {shown}"
        f"{f' --fps {args.fps:g}' if args.fps else ''}`. No ground truth: behaviour, not a score "
        "(see the script's docstring).",
        "",
        "| tracker | ids | detections published | with an id | track length median / mean / max | "
        "tracks >= 10 frames | re-found after a gap | jumps (IoU < 0.1) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {n} | {r['ids']} | {r['published']} | {r['with_id'] / max(r['published'], 1):.0%} | "
          f"{r['length_median']:g} / {r['length_mean']:.1f} / {r['length_max']} | {r['tracks_10_frames']} | "
          f"{r['refound']} | {r['jumps']} |" for n, r in results.items()],
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    stem = args.output.with_name(f"{args.output.name}_{args.input.stem}")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines))
    atomic_write_text(stem.with_suffix(".json"), json.dumps(
        {"input": name, "frames": len(dets), "fps": fps, "score_threshold": args.score_threshold,
         "results": results}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
