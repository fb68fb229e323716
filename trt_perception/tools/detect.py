"""``trt-perception detect``: run an SSD model over a video, an image folder or an image -> JSON.

Output (written atomically)::

    {"frames": {"<frame index>": {"detections": [
        {"label": str, "class_id": int, "score": float,
         "box_normalized": [ymin, xmin, ymax, xmax],   # fractions of the source image size
         "box_pixels": [xmin, ymin, xmax, ymax]}]}}}   # source pixels, edges at 0 and W/H

Frame indices count frames of the whole input from 0 (for a folder: position in the sorted file
list); with ``--every N`` frames 0, N, 2N, ... are processed and listed, each even when empty.

With ``--track`` every detection also has ``"id"`` (its track id, "" for a detection of no
confirmed track; :mod:`trt_perception.core.tracking`) and every frame ``"stamp"`` (seconds): frame
index / frame rate, the rate being the video's own (``--fps`` for image folders and for videos
whose header states none, default 10), so skipped frames (``--every``) are gaps in time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from tqdm import tqdm

from trt_perception.core.backends import BACKENDS, BackendError, resolve_backend
from trt_perception.core.decode.ssd import Detections
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.model_config import ModelConfigError, load_model_config
from trt_perception.core.pipeline import Pipeline
from trt_perception.core.tracking import Tracker

DEFAULT_FPS = 10.0


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the ``detect`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "detect", help="run an SSD detector over a video, image folder or image and write JSON",
        description="Run an SSD model over a video, an image folder or an image and write the "
                    "detections of every processed frame to a JSON file.")
    parser.add_argument("--config", required=True, help="model config YAML (task: ssd)")
    parser.add_argument("--input", required=True, help="video file, folder of images, or one image")
    parser.add_argument("--json", required=True, help="output JSON file")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="process every N-th frame, starting with frame 0 (default 1)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="inference backend (default auto: TensorRT when available)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="ONNX Runtime intra-op threads (default 0: one per core)")
    parser.add_argument("--score-threshold", type=float, metavar="X",
                        help="override the config's score threshold, in [0, 1)")
    parser.add_argument("--track", action="store_true",
                        help="give each detection a track id across frames (\"id\" in the JSON)")
    parser.add_argument("--fps", type=float, metavar="X",
                        help=f"frame rate for the tracker's stamps of image frames (default: the "
                             f"video's own, else {DEFAULT_FPS:g})")
    parser.set_defaults(func=run)


def detections_to_json(detections: Detections, width: int, height: int) -> list[dict[str, Any]]:
    """The JSON list of one frame's detections (see the module docstring)."""
    items = []
    for k, ((x0, y0, x1, y1), score, class_id, label) in enumerate(zip(detections.boxes_xyxy.tolist(),
                                                                       detections.scores.tolist(),
                                                                       detections.class_ids.tolist(),
                                                                       detections.labels)):
        item: dict[str, Any] = {
            "label": label,
            "class_id": int(class_id),
            "score": round(score, 6),
            "box_normalized": [round(y0 / height, 6), round(x0 / width, 6),
                               round(y1 / height, 6), round(x1 / width, 6)],
            "box_pixels": [round(x0, 3), round(y0, 3), round(x1, 3), round(y1, 3)],
        }
        if detections.ids is not None:
            item["id"] = detections.ids[k]
        items.append(item)
    return items


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception detect`` with the parsed ``args``; returns the process exit status."""
    try:
        if args.every < 1:
            raise ValueError(f"--every must be >= 1, got {args.every}")
        if args.fps is not None and not args.fps > 0:
            raise ValueError(f"--fps must be > 0, got {args.fps}")
        config = load_model_config(args.config)
        if config.task != "ssd":
            raise ModelConfigError(f"{args.config} is a {config.task!r} model; detect needs task: ssd")
        frames = open_frames(args.input, every=args.every)
        fps = args.fps or getattr(frames, "fps", 0.0) or DEFAULT_FPS
        tracker = Tracker() if args.track else None
        backend = resolve_backend(args.backend)
        options = {"threads": args.threads} if backend == "onnxruntime" else {}
        with Pipeline.from_config(args.config, backend, **options) as pipeline:
            if args.score_threshold is not None:
                pipeline.decoder.set_params({"score_threshold": args.score_threshold})
            results: dict[str, Any] = {}
            times = []
            for index, pixels in tqdm(frames, total=len(frames), unit="frame", disable=None):
                detections, stage_times = pipeline.run(pixels, "bgr")
                height, width = pixels.shape[:2]
                entry: dict[str, Any] = {}
                if tracker is not None:
                    entry["stamp"] = round(index / fps, 6)
                    detections = tracker.update(detections, round(index * 1e9 / fps))
                entry["detections"] = detections_to_json(detections, width, height)
                results[str(index)] = entry
                times.append(stage_times)
        atomic_write_text(args.json, json.dumps({"frames": results}, indent=1) + "\n")
    except (ValueError, BackendError, OSError) as exc:   # config, input, backend, output file
        print(f"trt-perception detect: error: {exc}", file=sys.stderr)
        return 1
    count = sum(len(frame["detections"]) for frame in results.values())
    medians = [statistics.median(getattr(t, field) for t in times) / 1e6
               for field in ("preprocess_ns", "inference_ns", "postprocess_ns")]
    tracks = f", {tracker.stats.confirmed} tracks" if tracker is not None else ""
    print(f"{len(results)} frames, {count} detections{tracks} -> {args.json}; median ms per frame: "
          f"preprocess {medians[0]:.2f}, inference {medians[1]:.2f}, postprocess {medians[2]:.2f}")
    return 0
