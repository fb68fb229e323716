"""Benchmark: N cameras through one BatchPipeline call vs N single-frame Pipeline runs (CPU, ORT).

For N = 1, 2, 4 cameras (frames of ``vtest.avi``, 768x576 BGR), alternating rounds in one
process: the time of one ``BatchPipeline.submit_batch`` of N frames vs N ``Pipeline.run`` calls
(same model file, same thread count; which goes first alternates). Reports the medians and the
ratio batched / separate per N. Writes ``benchmarks/results/batch_pipeline.md`` and ``.json``.

    .venv/bin/python benchmarks/batch_pipeline.py [--rounds 12] [--per-round 5] [--threads 1]
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

from trt_perception.core.batching.batch_pipeline import BatchPipeline
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.pipeline import Pipeline, SourceFrame

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
DEFAULT_VIDEO = Path("/work/shared/data/vtest.avi")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "batch_pipeline")
    args = parser.parse_args()

    frames = []
    for _, pixels in open_frames(str(args.video), every=50):
        frames.append(pixels)
        if len(frames) == 4:
            break
    rows = {}
    with Pipeline.from_config(MODEL_YAML, "onnxruntime", threads=args.threads) as single, \
            BatchPipeline.from_config(MODEL_YAML, max_batch=4, backend_kind="onnxruntime",
                                      threads=args.threads) as batched:
        def separate(n: int) -> None:
            for pixels in frames[:n]:
                single.run(pixels, "bgr")

        def together(n: int) -> None:
            batched.submit_batch([(SourceFrame(pixels, "bgr"), i) for i, pixels in enumerate(frames[:n])])

        for n in (1, 2, 4):
            separate(n), together(n)   # warm-up
            times: dict[str, list[float]] = {"separate": [], "batched": []}
            for r in range(args.rounds):
                order = [("separate", separate), ("batched", together)]
                for label, run in (order if r % 2 == 0 else order[::-1]):
                    for _ in range(args.per_round):
                        t0 = time.perf_counter_ns()
                        run(n)
                        times[label].append((time.perf_counter_ns() - t0) / 1e6)
            sep, bat = float(np.median(times["separate"])), float(np.median(times["batched"]))
            rows[n] = {"separate_ms": sep, "batched_ms": bat, "ratio_batched_over_separate": bat / sep}
            print(f"N={n}: separate {sep:.1f} ms, batched {bat:.1f} ms, ratio {bat / sep:.3f}", flush=True)

    machine = (f"{platform.machine()}, {os.cpu_count()} cores, load average "
               + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    lines = ["# Batched vs separate CPU inference (ONNX Runtime)", "",
             f"N frames of `vtest.avi` (768x576) per step: one `BatchPipeline.submit_batch` vs N "
             f"`Pipeline.run`, end to end (preprocess, inference, decode); {args.rounds} alternating rounds "
             f"x {args.per_round} steps, {args.threads} thread(s), one process.", "",
             "| N | separate ms | batched ms | batched / separate |", "|---:|---:|---:|---:|",
             *(f"| {n} | {r['separate_ms']:.1f} | {r['batched_ms']:.1f} | {r['ratio_batched_over_separate']:.3f} |"
               for n, r in rows.items()), "",
             f"Machine: {machine} (shared with other work); onnxruntime {onnxruntime.__version__}.", ""]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.output.with_suffix(".md"), text)
    atomic_write_text(args.output.with_suffix(".json"),
                      json.dumps({"rows": rows, "machine": machine, "threads": args.threads,
                                  "rounds": args.rounds, "per_round": args.per_round}, indent=2) + "\n")


if __name__ == "__main__":
    main()
