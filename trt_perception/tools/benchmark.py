"""``trt-perception benchmark``: a trtexec-like latency benchmark of a model config on any backend.

Runs the whole :class:`~trt_perception.core.pipeline.Pipeline` (preprocess -> inference ->
postprocess) ``--warmup`` times unmeasured, then ``--iterations`` times measured, on frames of
``--input`` (cycled; default a synthetic noise frame). Reports per stage the mean, median, p90,
p99, min and max latency in milliseconds (host wall clock), the throughput of the whole pipeline
(frames per second, one frame at a time), and, for a backend that times the GPU with CUDA events
(``device_timings_ms()``, the tensorrt backend), the same statistics of H2D copy, engine compute
and D2H copy. ``--json`` writes everything, plus the setup, to a file.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from trt_perception.core.backends import BACKENDS, BackendError, resolve_backend
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import FrameSourceError, open_frames
from trt_perception.core.model_config import ModelConfigError
from trt_perception.core.pipeline import Pipeline
from trt_perception.tools.build_engine import add_tensorrt_arguments, tensorrt_options

STAGES = ("preprocess", "inference", "postprocess", "total")
MAX_INPUT_FRAMES = 64


def latency_stats(values_ms: Sequence[float]) -> dict[str, float]:
    """mean, median, p90, p99 (linear interpolation), min and max of latencies in ms."""
    if not len(values_ms):
        raise ValueError("no latencies to summarize")
    data = np.asarray(values_ms, dtype=np.float64)
    return {"mean": float(data.mean()), "median": float(np.median(data)),
            "p90": float(np.percentile(data, 90)), "p99": float(np.percentile(data, 99)),
            "min": float(data.min()), "max": float(data.max())}


def format_table(rows: Mapping[str, Mapping[str, float]], title: str) -> str:
    """A fixed-width table of :func:`latency_stats` rows."""
    columns = ("mean", "median", "p90", "p99", "min", "max")
    lines = [f"{title:<14}" + "".join(f"{c:>10}" for c in columns) + "   (ms)"]
    for name, stats in rows.items():
        lines.append(f"{name:<14}" + "".join(f"{stats[c]:>10.3f}" for c in columns))
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``benchmark`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "benchmark", help="measure pipeline latency and throughput of a model on a backend",
        description="trtexec-like benchmark: warm-up, N measured iterations of preprocess + inference "
                    "+ postprocess; mean/median/p90/p99 per stage, throughput, CUDA-event GPU times.")
    parser.add_argument("--config", required=True, help="model config YAML")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="default auto")
    parser.add_argument("--iterations", type=int, default=200, metavar="N", help="measured runs (default 200)")
    parser.add_argument("--warmup", type=int, default=20, metavar="N", help="unmeasured runs first (default 20)")
    parser.add_argument("--input", help=f"video, image folder or image; its first {MAX_INPUT_FRAMES} frames are "
                                        "cycled (default: one synthetic noise frame)")
    parser.add_argument("--size", default="1280x720", metavar="WxH", help="synthetic frame size (default 1280x720)")
    parser.add_argument("--threads", type=int, default=0, metavar="N", help="onnxruntime intra-op threads")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    add_tensorrt_arguments(parser)
    parser.set_defaults(func=run)


def _frames(args: argparse.Namespace) -> tuple[list[np.ndarray], str]:
    if args.input:
        frames = [pixels for _, pixels in islice(open_frames(args.input), MAX_INPUT_FRAMES)]
        if not frames:
            raise FrameSourceError(f"{args.input} yielded no frames")
        return frames, f"{args.input} ({len(frames)} frames, {frames[0].shape[1]}x{frames[0].shape[0]})"
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
        if width < 1 or height < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"--size must be WxH with positive integers, got {args.size!r}") from None
    noise = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [noise], f"synthetic noise {width}x{height}"


def measure(pipeline: Pipeline, frames: Sequence[np.ndarray], iterations: int, warmup: int,
            device_timings: Optional[Callable[[], Mapping[str, float]]] = None
            ) -> tuple[dict[str, list[float]], dict[str, list[float]], float]:
    """Run the pipeline; returns (host stage times in ms, GPU stage times in ms, wall seconds)."""
    for pixels in islice(cycle(frames), warmup):
        pipeline.run(pixels, "bgr")
    host: dict[str, list[float]] = {stage: [] for stage in STAGES}
    device: dict[str, list[float]] = {}
    start = time.perf_counter()
    for pixels in islice(cycle(frames), iterations):
        _, times = pipeline.run(pixels, "bgr")
        for stage, ns in (("preprocess", times.preprocess_ns), ("inference", times.inference_ns),
                          ("postprocess", times.postprocess_ns), ("total", times.total_ns)):
            host[stage].append(ns / 1e6)
        if device_timings is not None:
            for stage, ms in device_timings().items():
                device.setdefault(stage, []).append(ms)
    return host, device, time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception benchmark`` with the parsed ``args``; returns the process exit status."""
    try:
        if args.iterations < 1 or args.warmup < 0:
            raise ValueError(f"--iterations must be >= 1 and --warmup >= 0, got {args.iterations}, {args.warmup}")
        frames, input_text = _frames(args)
        backend = resolve_backend(args.backend)
        options = {"threads": args.threads} if backend == "onnxruntime" else tensorrt_options(args)
        pipeline = Pipeline.from_config(args.config, backend, **options)
    except (ValueError, FrameSourceError, ModelConfigError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with pipeline:
        timer = getattr(pipeline.backend, "device_timings_ms", None)
        host, device, wall = measure(pipeline, frames, args.iterations, args.warmup, timer)
    host_stats = {stage: latency_stats(values) for stage, values in host.items()}
    device_stats = {stage: latency_stats(values) for stage, values in device.items()}
    throughput = args.iterations / wall
    print(f"{args.config} on {backend}: {args.iterations} iterations after {args.warmup} warm-up, input {input_text}")
    print(format_table(host_stats, "host stage"))
    if device_stats:
        print(format_table(device_stats, "GPU (events)"))
    print(f"throughput: {throughput:.1f} frames/s (one frame at a time, whole pipeline)")
    if args.json:
        result: dict[str, Any] = {
            "config": str(Path(args.config).resolve()), "backend": backend,
            "backend_options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()},
            "iterations": args.iterations, "warmup": args.warmup, "input": input_text,
            "latency_ms": host_stats, "gpu_latency_ms": device_stats or None,
            "throughput_fps": throughput, "wall_seconds": wall,
            "machine": {"platform": platform.platform(), "processor": platform.machine(),
                        "python": platform.python_version()},
        }
        atomic_write_text(Path(args.json), json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
