"""N cameras on one GPU: batched inference (GpuBatchPipeline) vs N sequential batch-1 calls (GpuPipeline).

    python benchmarks/gpu_batch.py --out DIR [--cameras 1,2,4,8] [--rounds 50] [--reps 4]

Needs a CUDA GPU, pycuda and onnxruntime-gpu's CUDA provider (scripts/device_run.sh --batch runs it
on the lent GPU machine). Every camera sends 1920x1080 bgr8 frames (the test images
``test/data/vtest_*.jpg`` resized; camera i of round k gets image (i + k) mod 4) as message bytes in
ordinary (pageable) memory, as a ROS subscription hands them over. A *round* is one frame of every
camera:

- ``sequential, depth D``: the single-camera GPU pipeline (fused preprocessing, the batch-1 network on
  ONNX Runtime's CUDA provider on device buffers, outputs to the host, the CPU SsdDecoder) called
  for each camera's frame in turn; depth 2 overlaps a frame's upload with the previous frame's
  network;
- ``batched, depth D``: the multi-camera GPU pipeline: each camera's frame uploaded and written by
  the fused kernel into its row of one batch tensor, one network call for the round's N frames,
  each frame decoded on its own; depth 2 overlaps a batch's uploads with the previous batch's
  network;
- ``batched, staged, depth D``: the same, each frame first copied into page-locked memory by
  ``GpuBatchPipeline.stage`` -- what multi_camera_node's reader threads do as each frame arrives,
  while the batch gathers -- so the batch uploads asynchronously; the staging copies are timed
  apart (ms per frame) and not inside the round.

The four ways alternate in blocks of ``--rounds`` rounds, ``--reps`` times per camera count (after
a warm-up, which also lets ONNX Runtime pick its kernels for each batch size). Measured per way:
frames per second over all blocks (N x rounds / the blocks' wall time, pipelined results drained
inside each block), wall time per round p50 / p99 on the host clock, and for the batched ways the
GPU time of the batch's uploads + kernels and of its network + output copies (CUDA events, p50).
Correctness: each round's batched detections equal the sequential ones (same frames).

Targets (issue 14): at N = 8 the batched pipeline processes >= 3x the frames per second of
sequential batch-1 calls, and one 8-camera batch completes in < 2x the time of one batch-1 frame
(round p50 of ``batched, depth 1`` at N = 8 vs ``sequential, depth 1`` at N = 1). Writes
gpu_batch.md and gpu_batch.json into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trt_perception.core.backends.onnxrt import cuda_provider_available  # noqa: E402
from trt_perception.core.cuda.runtime import gpu_available  # noqa: E402
from trt_perception.core.image import RawImage  # noqa: E402
from trt_perception.core.io.atomic_write import atomic_write_text  # noqa: E402
from trt_perception.core.pipeline import FrameResult, SourceFrame  # noqa: E402
from trt_perception.core.pipeline_factory import PipelineOptions, create_batch_pipeline, create_pipeline  # noqa: E402

MODEL_CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
IMAGES = sorted((ROOT / "test" / "data").glob("vtest_*.jpg"))
WAYS = ("sequential, depth 1", "sequential, depth 2", "batched, depth 1", "batched, depth 2",
        "batched, staged, depth 1", "batched, staged, depth 2")


def frames_1080p() -> list[RawImage]:
    """The test images as 1920x1080 bgr8 message bytes."""
    frames = []
    for path in IMAGES:
        pixels = cv2.resize(cv2.imread(str(path)), (1920, 1080), interpolation=cv2.INTER_LINEAR)
        frames.append(RawImage.create_from(np.ascontiguousarray(pixels).reshape(-1), "bgr8", 1920, 1080, 1920 * 3))
    return frames


def round_frames(frames: list[RawImage], cameras: int, k: int) -> list[SourceFrame]:
    """Round ``k``'s frame of each camera."""
    return [SourceFrame(image=frames[(i + k) % len(frames)]) for i in range(cameras)]


def run_block(way: str, pipeline: Any, frames: list[RawImage], cameras: int, rounds: int,
              start: int) -> tuple[list[float], list[FrameResult], float, list[float]]:
    """``rounds`` rounds through ``pipeline``; per-round wall ms, every result, block wall s (staging
    excluded), staging ms per frame (staged ways).
    """
    times, results, staging = [], [], []
    wall = 0.0
    for k in range(start, start + rounds):
        items = round_frames(frames, cameras, k)
        if "staged" in way:
            for i, frame in enumerate(items):
                t0 = time.perf_counter()
                items[i] = pipeline.stage(frame)
                staging.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        if way.startswith("batched"):
            results += pipeline.submit_batch([(frame, (k, i)) for i, frame in enumerate(items)])
        else:
            for i, frame in enumerate(items):
                results += pipeline.submit(frame, (k, i))
        times.append((time.perf_counter() - t0) * 1e3)
        wall += times[-1] / 1e3
    t0 = time.perf_counter()
    results += pipeline.drain()
    return times, results, wall + time.perf_counter() - t0, staging


def pct(values: list[float], q: float) -> float:
    """The ``q`` percentile of ``values`` (nan for none)."""
    return float(np.percentile(values, q)) if values else float("nan")


def same_detections(a: Any, b: Any) -> bool:
    """Equal detections: same count, scores within 2e-3, boxes within 0.5 px."""
    return (len(a) == len(b) and np.allclose(a.scores, b.scores, atol=2e-3)
            and np.allclose(a.boxes_xyxy, b.boxes_xyxy, atol=0.5))


def main() -> int:
    """Run the benchmark (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cameras", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=50, help="rounds per block (default 50)")
    parser.add_argument("--reps", type=int, default=4, help="blocks per way and camera count (default 4)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up rounds per pipeline (default 20)")
    args = parser.parse_args()
    for ok, why in (gpu_available(), cuda_provider_available()):
        if not ok:
            print(f"skipped: {why}")
            return 2
    counts = [int(c) for c in args.cameras.split(",")]
    frames = frames_1080p()
    sequential = {depth: create_pipeline(MODEL_CONFIG, PipelineOptions(backend="onnxruntime", preprocess="gpu",
                                                                       pipeline_depth=depth))[0]
                  for depth in (1, 2)}
    batched = {(n, depth): create_batch_pipeline(MODEL_CONFIG, PipelineOptions(
        backend="onnxruntime", preprocess="gpu", pipeline_depth=depth), n)[0] for n in counts for depth in (1, 2)}

    def pipeline_of(way: str, n: int) -> Any:
        depth = int(way[-1])   # staged ways share the batched pipelines
        return batched[(n, depth)] if way.startswith("batched") else sequential[depth]

    for n in counts:
        for way in WAYS:
            run_block(way, pipeline_of(way, n), frames, n, args.warmup, 0)
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    mismatches = 0
    compared = 0
    for rep in range(args.reps):
        for n in counts:
            order = WAYS[rep % len(WAYS):] + WAYS[:rep % len(WAYS)]
            by_way: dict[str, dict[tuple[int, int], Any]] = {}
            for way in order:
                times, results, wall, staging = run_block(way, pipeline_of(way, n), frames, n, args.rounds,
                                                          rep * args.rounds)
                row = rows.setdefault((n, way), {"round_ms": [], "frames": 0, "wall_s": 0.0, "gpu_pre_ms": [],
                                                 "gpu_infer_ms": [], "staging_ms": []})
                row["round_ms"] += times
                row["staging_ms"] += staging
                row["frames"] += len(results)
                row["wall_s"] += wall
                if way.startswith("batched"):
                    row["gpu_pre_ms"] += [r.times.preprocess_ns / 1e6 for r in results]
                    row["gpu_infer_ms"] += [r.times.inference_ns / 1e6 for r in results]
                by_way[way] = {r.tag: r.result for r in results}
            reference = by_way["sequential, depth 1"]
            for way in WAYS[1:]:
                for tag, result in by_way[way].items():
                    compared += 1
                    mismatches += not same_detections(result, reference[tag])
            print(f"rep {rep + 1}/{args.reps}, {n} camera(s): "
                  + ", ".join(f"{way} {rows[(n, way)]['frames'] / rows[(n, way)]['wall_s']:.0f} fps" for way in WAYS),
                  flush=True)
    for pipeline in (*sequential.values(), *batched.values()):
        pipeline.close()
    summary = {f"{n}|{way}": {"cameras": n, "way": way, "fps": row["frames"] / row["wall_s"],
                              "round_p50_ms": pct(row["round_ms"], 50), "round_p99_ms": pct(row["round_ms"], 99),
                              "gpu_preprocess_p50_ms": pct(row["gpu_pre_ms"], 50),
                              "gpu_inference_p50_ms": pct(row["gpu_infer_ms"], 50),
                              "staging_p50_ms_per_frame": pct(row["staging_ms"], 50), "frames": row["frames"]}
               for (n, way), row in rows.items()}
    write_results(args, summary, counts, compared, mismatches)
    return 0


def write_results(args: argparse.Namespace, summary: dict[str, dict[str, Any]], counts: list[int],
                  compared: int, mismatches: int) -> None:
    """The table, the targets and the environment: gpu_batch.md and gpu_batch.json in ``args.out``."""
    def row(n: int, way: str) -> dict[str, Any]:
        return summary[f"{n}|{way}"]

    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    import onnxruntime
    lines = [f"# N cameras on one GPU: batched vs sequential batch-1 ({gpu})", "",
             f"`benchmarks/gpu_batch.py --rounds {args.rounds} --reps {args.reps} --warmup {args.warmup}`; "
             f"{platform.machine()}, Python {platform.python_version()}, onnxruntime {onnxruntime.__version__} "
             "(CUDA provider, TF32 off), SSDLite pedestrian detector (300x300, batch-dynamic ONNX); "
             f"{time.strftime('%Y-%m-%d')}.", "",
             "Frames: 1920x1080 bgr8 message bytes in pageable memory (the test images resized). Round: one frame "
             "of each camera. The ways alternate in blocks (method: the script's docstring). fps over all "
             "blocks; round wall time on the host clock; GPU times from CUDA events (batched ways: uploads + "
             "kernels of the batch, network + output copies).", "",
             "| cameras | way | frames/s | round p50 (ms) | round p99 (ms) | GPU uploads+kernels p50 (ms) "
             "| GPU network+copies p50 (ms) | staging on arrival p50 (ms per frame) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for n in counts:
        for way in WAYS:
            r = row(n, way)
            gpu_cols = (f"{r['gpu_preprocess_p50_ms']:.3f} | {r['gpu_inference_p50_ms']:.3f}"
                        if way.startswith("batched") else "- | -")
            staging = f"{r['staging_p50_ms_per_frame']:.3f}" if "staged" in way else "-"
            lines.append(f"| {n} | {way} | {r['fps']:.0f} | {r['round_p50_ms']:.3f} | {r['round_p99_ms']:.3f} "
                         f"| {gpu_cols} | {staging} |")
    best = max(counts)
    batched_fps = max(row(best, w)["fps"] for w in WAYS if w.startswith("batched"))
    sequential_fps = max(row(best, w)["fps"] for w in WAYS if w.startswith("sequential"))
    speedup = batched_fps / sequential_fps
    lines += ["", "Ratios by camera count (best batched way / best sequential way, frames per second):", "",
              "| cameras | batched / sequential fps |", "|---:|---:|"]
    for n in counts:
        ratio = (max(row(n, w)["fps"] for w in WAYS if w.startswith("batched"))
                 / max(row(n, w)["fps"] for w in WAYS if w.startswith("sequential")))
        lines.append(f"| {n} | {ratio:.2f} |")
    lines += [""]
    targets = {"fps_ratio_at_max": speedup}
    if 1 in counts:
        one = row(1, "sequential, depth 1")["round_p50_ms"]
        for way in ("batched, depth 1", "batched, staged, depth 1"):
            batch = row(best, way)["round_p50_ms"]
            targets[f"batch_time_ratio ({way})"] = batch / one
            lines.append(f"- One {best}-camera batch ({way}, round p50) {batch:.3f} ms vs one batch-1 frame "
                         f"(sequential, depth 1, 1 camera) {one:.3f} ms: {batch / one:.2f}x (target < 2: "
                         f"{'met' if batch / one < 2 else 'NOT met'}).")
        network = row(best, "batched, depth 1")["gpu_inference_p50_ms"] / row(1, "batched, depth 1")[
            "gpu_inference_p50_ms"]
        targets["network_time_ratio"] = network
        lines.append(f"- The network call alone (GPU network + output copies, batched, depth 1): {best} frames take "
                     f"{network:.2f}x the time of 1.")
    lines.append(f"- At {best} cameras the batched pipeline runs {speedup:.2f}x the frames per second of sequential "
                 f"batch-1 calls (target >= 3: {'met' if speedup >= 3 else 'NOT met'}).")
    lines.append(f"- Detections of the batched and pipelined ways equal the sequential ones: {compared - mismatches}"
                 f" of {compared} frames.")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "gpu_batch.md", text)
    atomic_write_text(args.out / "gpu_batch.json", json.dumps(
        {"rows": list(summary.values()), "targets": targets, "compared": compared, "mismatches": mismatches,
         "gpu": gpu, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
