"""Benchmark of the SSD detector core on real street frames (CPU, ONNX Runtime).

Runs the shipped SSDLite pedestrian model through :class:`Pipeline` on frames of OpenCV's
``vtest.avi`` (768x576), then re-runs the decoder alone on the recorded model outputs. Prints a
table and writes it as Markdown to ``benchmarks/results/detector_core.md``.

Stages (medians and p99 over frames, milliseconds):

- preprocess: resize 768x576 -> 300x300, RGB, normalize into the NCHW input buffer;
- inference: ONNX Runtime, CPU execution provider, ``--threads`` intra-op threads (default 1);
- postprocess (pipeline): the decoder right after inference, as a node sees it (caches cold);
- postprocess (decoder alone): the same decoder re-run back to back on the recorded outputs, at the
  shipped score threshold 0.5 and at 0.05 (many candidates: the stress case for NMS).

    .venv/bin/python benchmarks/detector_core.py [--video PATH] [--every 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnxruntime

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.pipeline import Pipeline
from trt_perception.core.preprocess import preprocess

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
DEFAULT_VIDEO = Path("/work/shared/data/vtest.avi")
TEST_FRAMES = ROOT / "test" / "data"


def _stats_ms(samples_ns: list[int]) -> tuple[float, float]:
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return float(np.median(values)), float(np.percentile(values, 99))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _time_decoder(decoder: Any, recorded: Sequence[tuple[Mapping[str, np.ndarray], Any]],
                  repeats: int) -> tuple[list[int], int]:
    """Decoder alone, back to back on each recorded output; (times ns, detections per pass)."""
    times, found = [], 0
    for outputs, geometry in recorded:
        decoder(outputs, geometry)                               # warm-up for this frame
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            result = decoder(outputs, geometry)
            times.append(time.perf_counter_ns() - t0)
        found += len(result)
    return times, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO,
                        help="video or image folder (default: vtest.avi, else test/data frames)")
    parser.add_argument("--every", type=int, default=4, help="use every N-th frame (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    parser.add_argument("--repeats", type=int, default=20, help="decoder-alone runs per frame")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detector_core.md")
    args = parser.parse_args()

    source = args.video if args.video.exists() else TEST_FRAMES
    frames = open_frames(source, every=args.every if source.is_file() else 1)
    stages: dict[str, list[int]] = {"preprocess": [], "inference": [], "postprocess": []}
    recorded = []
    detections = 0
    with Pipeline.from_config(MODEL_YAML, "onnxruntime", threads=args.threads) as pipeline:
        config = pipeline.config
        for _, pixels in frames:
            result, times = pipeline.run(pixels, "bgr")
            detections += len(result)
            stages["preprocess"].append(times.preprocess_ns)
            stages["inference"].append(times.inference_ns)
            stages["postprocess"].append(times.postprocess_ns)
            tensor, geometry = preprocess(pixels, "bgr", config.preprocess)
            outputs = pipeline.backend.infer({config.input_name: tensor})
            recorded.append(({role: outputs[name].copy() for role, name in config.outputs.items()},
                             geometry))
        decoder = pipeline.decoder
        alone_05, found_05 = _time_decoder(decoder, recorded, args.repeats)
        decoder.set_params({"score_threshold": 0.05})
        alone_005, found_005 = _time_decoder(decoder, recorded, args.repeats)

    count = len(recorded)
    rows = [
        ("preprocess (768x576 -> 1x3x300x300 float32)", *_stats_ms(stages["preprocess"])),
        (f"inference (ORT CPU EP, {args.threads} thread{'s' * (args.threads != 1)})",
         *_stats_ms(stages["inference"])),
        ("postprocess in pipeline (score 0.5)", *_stats_ms(stages["postprocess"])),
        ("postprocess, decoder alone (score 0.5)", *_stats_ms(alone_05)),
        ("postprocess, decoder alone (score 0.05, stress)", *_stats_ms(alone_005)),
    ]
    table = ["| stage | median ms | p99 ms |", "|---|---:|---:|"]
    table += [f"| {name} | {median:.3f} | {p99:.3f} |" for name, median, p99 in rows]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    notes = [
        f"Frames: {count} ({source.name}, every {args.every if source.is_file() else 1}), "
        f"{detections} detections at score 0.5 ({detections / max(count, 1):.1f} per frame); "
        f"{found_005 / max(count, 1):.1f} per frame at score 0.05.",
        f"Machine: {_cpu_name()}, {os.cpu_count()} cores, load average {load} (shared with other work); "
        f"Python {platform.python_version()}, numpy {np.__version__}, onnxruntime {onnxruntime.__version__}.",
        "`postprocess in pipeline` runs right after inference, when the interpreter's and numpy's "
        "working set has been evicted from the caches by the convolutions; `decoder alone` re-runs "
        f"the same decoder {args.repeats} times per frame on the recorded outputs (warm).",
    ]
    text = "# Detector core benchmark\n\n" + "\n".join(table) + "\n\n" + "\n\n".join(notes) + "\n"
    print("\n".join(table))
    print("\n".join(notes))
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
