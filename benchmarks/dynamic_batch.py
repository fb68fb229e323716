"""Benchmark: the shipped SSD with a fixed batch of 1 vs its batch-dynamic edit (ONNX Runtime, CPU).

Both models are loaded in one process and timed in alternating rounds (which one goes first
alternates too), so machine load hits both alike; the result is the ratio of the medians of
batch-1 inference times, dynamic / fixed. Then the dynamic model's time per image at batch 1, 2
and 4 (one ``infer`` per batch), on frames of ``vtest.avi`` preprocessed as the pipeline does.
Writes ``benchmarks/results/dynamic_batch.md`` and ``.json``.

    .venv/bin/python benchmarks/dynamic_batch.py --fixed OLD.onnx --dynamic NEW.onnx [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime

from trt_perception.core.backends.onnxrt import OnnxRuntimeBackend
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.model_config import load_model_config
from trt_perception.core.preprocess import preprocess

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
DEFAULT_VIDEO = Path("/work/shared/data/vtest.avi")


def _frames(video: Path, count: int) -> np.ndarray:
    config = load_model_config(MODEL_YAML)
    tensors = []
    for _, pixels in open_frames(str(video), every=25):
        tensors.append(preprocess(pixels, "bgr", config.preprocess)[0].copy())
        if len(tensors) == count:
            break
    return np.concatenate(tensors)


def _time(backend: OnnxRuntimeBackend, name: str, batch: np.ndarray, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        backend.infer({name: batch})
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", type=Path, required=True, help="model with the batch fixed to 1")
    parser.add_argument("--dynamic", type=Path, required=True, help="its batch-dynamic edit")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=10, help="inferences per model per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "dynamic_batch")
    args = parser.parse_args()

    name = load_model_config(MODEL_YAML).input_name
    frames = _frames(args.video, 4)
    fixed = OnnxRuntimeBackend(args.fixed, threads=args.threads)
    dynamic = OnnxRuntimeBackend(args.dynamic, threads=args.threads)
    with fixed, dynamic:
        for backend in (fixed, dynamic):
            _time(backend, name, frames[:1], 5)   # warm-up
        samples: dict[str, list[float]] = {"fixed": [], "dynamic": []}
        round_ratios = []
        for r in range(args.rounds):
            order = [("fixed", fixed), ("dynamic", dynamic)]
            medians = {}
            for label, backend in (order if r % 2 == 0 else order[::-1]):
                t = _time(backend, name, frames[r % 4:r % 4 + 1], args.per_round)
                samples[label] += t
                medians[label] = float(np.median(t))
            round_ratios.append(medians["dynamic"] / medians["fixed"])
        per_image = {}
        for r in range(max(4, args.rounds // 4)):
            for batch in (1, 2, 4):
                t = _time(dynamic, name, frames[:batch], args.per_round)
                per_image.setdefault(batch, []).extend(v / batch for v in t)

    fixed_ms, dynamic_ms = float(np.median(samples["fixed"])), float(np.median(samples["dynamic"]))
    result = {
        "fixed_batch1_median_ms": fixed_ms, "dynamic_batch1_median_ms": dynamic_ms,
        "ratio_dynamic_over_fixed": dynamic_ms / fixed_ms,
        "round_ratios_min_median_max": [min(round_ratios), float(np.median(round_ratios)), max(round_ratios)],
        "dynamic_ms_per_image_by_batch": {b: float(np.median(v)) for b, v in per_image.items()},
        "rounds": args.rounds, "per_round": args.per_round, "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average "
                   + ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "onnxruntime": onnxruntime.__version__,
    }
    lines = [
        "# Fixed-batch vs batch-dynamic SSD (ONNX Runtime, CPU)", "",
        f"`{args.fixed.name}` (batch fixed to 1) vs its `trt-perception dynamic-batch` edit, batch-1 "
        f"inference, {args.rounds} alternating rounds x {args.per_round} runs each, "
        f"{args.threads} thread(s), one process.",
        "", "| model | median ms (batch 1) |", "|---|---:|",
        f"| fixed batch 1 | {fixed_ms:.3f} |", f"| dynamic batch | {dynamic_ms:.3f} |", "",
        f"Ratio dynamic / fixed: **{dynamic_ms / fixed_ms:.3f}** (per-round ratios min "
        f"{min(round_ratios):.3f}, median {np.median(round_ratios):.3f}, max {max(round_ratios):.3f}).",
        "", "Dynamic model, time per image by batch size (one inference per batch):", "",
        "| batch | ms per image |", "|---:|---:|",
        *(f"| {b} | {float(np.median(v)):.3f} |" for b, v in per_image.items()), "",
        f"Machine: {result['machine']} (shared with other work); onnxruntime {onnxruntime.__version__}.", "",
    ]
    text = "\n".join(lines)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output.with_suffix(".md"), text)
    atomic_write_text(args.output.with_suffix(".json"), json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
