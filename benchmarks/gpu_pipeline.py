"""GPU pipeline benchmark and correctness check; runs on a machine with a CUDA GPU and pycuda.

    python benchmarks/gpu_pipeline.py --out benchmarks/results [--repeats 300]

1. Parity: GpuPreprocessor (upload and zero-copy input) against the CPU reference path on every
   parity case (trt_perception.testing.gpu_parity): max abs error per dtype, values that differ.
2. Ceilings: device-to-device copy bandwidth, and the launch time of an empty kernel.
3. Preprocessing of 640x480, 1280x720 and 1920x1080 bgr8 frames to the SSD model's 300x300
   float32 NCHW input: pinned upload, kernel and upload + kernel (CUDA events, each run on a
   freshly uploaded frame; as launched, and GPU-bound), the kernel's floor (max of bytes it must
   move / copy bandwidth and the empty-kernel launch), the whole call on the host clock (frame
   from message bytes or from pinned staging), the zero-copy kernel, and the OpenCV CPU path
   (one thread) on this machine.
4. The detector pipeline without the network (FramePipeline with a ReplayRunner that writes the
   real SSD outputs of a real frame, recorded with ONNX Runtime on the CPU): upload, preprocess,
   outputs to the host and the CPU SsdDecoder, p50/p99 per frame at 1080p, depth 1 and 2, frames
   from message bytes or already in pinned staging; then with the stand-in network busy for
   1.57 ms (the measured ONNX Runtime CUDA time of this model) to show what pipelining hides, and
   with the real network on ONNX Runtime's CUDA provider (OnnxRuntimeBackend with device_buffers)
   where onnxruntime-gpu is.

Prints the tables and writes gpu_pipeline.md and gpu_pipeline.json into --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trt_perception.core.backends.base import BackendError  # noqa: E402
from trt_perception.core.backends.onnxrt import OnnxRuntimeBackend, cuda_provider_available  # noqa: E402
from trt_perception.core.cuda.runtime import gpu_available, load_kernel, shared_device  # noqa: E402
from trt_perception.core.gpu.frame_pipeline import FramePipeline  # noqa: E402
from trt_perception.core.gpu.gpu_preprocess import GpuPreprocessor  # noqa: E402
from trt_perception.core.gpu.preprocess_plan import resize_tables  # noqa: E402
from trt_perception.core.io.atomic_write import atomic_write_text  # noqa: E402
from trt_perception.core.pipeline import outputs_by_role  # noqa: E402
from trt_perception.core.preprocess import allocate_input, preprocess  # noqa: E402
from trt_perception.testing.gpu_parity import SSD_CONFIG, make_frame, max_abs_error, parity_cases, reference  # noqa: E402
from trt_perception.testing.stand_in_network import ReplayRunner  # noqa: E402

SIZES = ((640, 480), (1280, 720), (1920, 1080))
MODEL_CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
TEST_IMAGE = ROOT / "test" / "data" / "vtest_150.jpg"
INFERENCE_US = 1570.0
EMPTY_KERNEL = 'extern "C" __global__ void empty_kernel() {}'


def stats_ms(values_ms: list[float]) -> dict[str, float]:
    data = np.asarray(values_ms, dtype=np.float64)
    return {"p50": float(np.median(data)), "p99": float(np.percentile(data, 99)), "n": int(data.size)}


def event_times(device, stream, steps: list[Callable[[], None]], repeats: int, warmup: int = 20,
                gpu_bound: bool = False) -> list[list[float]]:
    """Run ``steps`` in order on ``stream`` ``repeats`` times; per run, the ms of each step (events).

    ``gpu_bound``: first keep the GPU busy for 200 us (a spinning thread), so every step is queued
    before the GPU reaches it and the events time the GPU work alone, not the host's launch gaps.
    """
    drv = device.driver
    events = [drv.Event() for _ in range(len(steps) + 1)]
    spin = load_kernel(device, "trt_perception.testing", "spin_kernel.cu", "spin")
    runs = []
    for index in range(warmup + repeats):
        if gpu_bound:
            spin(np.uint64(200_000), block=(1, 1, 1), grid=(1, 1), stream=stream)
        events[0].record(stream)
        for step, event in zip(steps, events[1:]):
            step()
            event.record(stream)
        events[-1].synchronize()
        if index >= warmup:
            runs.append([events[i + 1].time_since(events[i]) for i in range(len(steps))])
    return runs


def host_times_ms(fn: Callable[[], Any], repeats: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def check_parity(device) -> dict[str, Any]:
    """Max abs error per (path, dtype) over every parity case, and the count of differing values."""
    rng = np.random.default_rng(2024)
    summary: dict[str, Any] = {}
    for zero_copy in (False, True):
        for case in parity_cases():
            data, layout = make_frame(case, rng)
            pre = GpuPreprocessor(device, zero_copy_input=zero_copy)
            try:
                pre.configure(case.config, layout.encoding, layout.width, layout.height, layout.step,
                              layout.is_bigendian)
                with device.current():
                    device.driver.memset_d8(pre.input_ptr, 0xFF, pre.plan.output_nbytes)  # poison
                pre(data)
                got = pre.download()
            finally:
                pre.release()
            want = reference(case, data, layout)
            key = f"{'zero_copy' if zero_copy else 'upload'} {case.config.dtype}"
            entry = summary.setdefault(key, {"cases": 0, "max_abs_error": 0.0, "values_differing": 0,
                                             "unwritten": 0, "encodings": set()})
            entry["cases"] += 1
            entry["unwritten"] += int(np.isnan(got).sum())
            entry["max_abs_error"] = max(entry["max_abs_error"], max_abs_error(got, want))
            entry["values_differing"] += int(np.count_nonzero(got != want))
            entry["encodings"].add(case.encoding)
    for entry in summary.values():
        entry["encodings"] = sorted(entry["encodings"])
    return summary


def ceilings(device, repeats: int) -> dict[str, float]:
    from pycuda.compiler import SourceModule
    drv = device.driver
    with device.current():
        stream = drv.Stream()
        size = 1 << 30
        a, b = drv.mem_alloc(size), drv.mem_alloc(size)
        drv.memset_d8(a, 1, size)
        copies = event_times(device, stream, [lambda: drv.memcpy_dtod_async(b, a, size, stream)], 20, warmup=3)
        a.free()
        b.free()
        module = SourceModule(EMPTY_KERNEL, no_extern_c=True)
        empty = module.get_function("empty_kernel")
        empty.prepare("")
        grid = (-(-SSD_CONFIG.width // 32), -(-SSD_CONFIG.height // 8), 1)
        steps = [lambda: empty.prepared_async_call(grid, (32, 8, 1), stream)]
        launches = event_times(device, stream, steps, repeats)
        bound = event_times(device, stream, steps, repeats, gpu_bound=True)
    copy_ms = float(np.median([r[0] for r in copies]))
    return {"copy_bandwidth_GBps": 2 * size / (copy_ms * 1e-3) / 1e9,
            "empty_kernel_ms": float(np.median([r[0] for r in launches])),
            "gpu_empty_kernel_ms": float(np.median([r[0] for r in bound]))}


def kernel_bytes(width: int, height: int) -> int:
    """Bytes the kernel must move for a bgr8 frame -> SSD input: the source pixels it samples
    (rows x columns used), each read once, and the float32 output written once.
    """
    cols, rows = resize_tables(width, height, SSD_CONFIG.width, SSD_CONFIG.height)
    used_rows, used_cols = np.unique(rows[:, :2]).size, np.unique(cols[:, :2]).size
    return int(used_rows * used_cols * 3 + 3 * SSD_CONFIG.width * SSD_CONFIG.height * 4)


def bench_preprocess(device, repeats: int, limits: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    cv2.setNumThreads(1)
    rng = np.random.default_rng(7)
    for width, height in SIZES:
        step = width * 3
        frames = [rng.integers(0, 256, size=height * step, dtype=np.uint8).tobytes() for _ in range(4)]
        row: dict[str, Any] = {"source": f"{width}x{height}"}
        pre = GpuPreprocessor(device)
        try:
            pre.configure(SSD_CONFIG, "bgr8", width, height, step)
            pre.host_frame[:] = np.frombuffer(frames[0], np.uint8)
            with device.current():
                steps = [lambda: pre.upload(pre.host_frame), pre.launch]
                runs = event_times(device, pre.stream, steps, repeats)
                bound = event_times(device, pre.stream, steps, repeats, gpu_bound=True)
            row["upload_ms"] = stats_ms([r[0] for r in runs])
            row["kernel_ms"] = stats_ms([r[1] for r in runs])
            row["upload_kernel_ms"] = stats_ms([r[0] + r[1] for r in runs])
            row["gpu_upload_ms"] = stats_ms([r[0] for r in bound])
            row["gpu_kernel_ms"] = stats_ms([r[1] for r in bound])
            row["gpu_upload_kernel_ms"] = stats_ms([r[0] + r[1] for r in bound])
            counter = itertools.count()

            def call_from_bytes() -> None:
                pre(frames[next(counter) % len(frames)])
                pre.synchronize()

            def call_from_staging() -> None:
                pre.wait_frame_free()
                pre(pre.host_frame)
                pre.synchronize()

            row["host_call_bytes_ms"] = stats_ms(host_times_ms(call_from_bytes, repeats))
            row["host_call_staging_ms"] = stats_ms(host_times_ms(call_from_staging, repeats))
        finally:
            pre.release()
        zero = GpuPreprocessor(device, zero_copy_input=True)
        try:
            zero.configure(SSD_CONFIG, "bgr8", width, height, step)
            zero.host_frame[:] = np.frombuffer(frames[1], np.uint8)
            with device.current():
                runs = event_times(device, zero.stream, [zero.launch], repeats)
            row["zero_copy_kernel_ms"] = stats_ms([r[0] for r in runs])
        finally:
            zero.release()
        pixels = np.frombuffer(frames[2], np.uint8).reshape(height, width, 3)
        out = allocate_input(SSD_CONFIG)
        row["opencv_cpu_ms"] = stats_ms(host_times_ms(lambda: preprocess(pixels, "bgr", SSD_CONFIG, out=out),
                                                      repeats))
        moved = kernel_bytes(width, height)
        row["kernel_bytes"] = moved
        row["floor_ms"] = max(moved / (limits["copy_bandwidth_GBps"] * 1e9) * 1e3, limits["empty_kernel_ms"])
        row["gpu_floor_ms"] = max(moved / (limits["copy_bandwidth_GBps"] * 1e9) * 1e3, limits["gpu_empty_kernel_ms"])
        row["gpu_kernel_over_floor"] = row["gpu_kernel_ms"]["p50"] / row["gpu_floor_ms"]
        row["kernel_over_floor"] = row["kernel_ms"]["p50"] / row["floor_ms"]
        row["cpu_over_kernel"] = row["opencv_cpu_ms"]["p50"] / row["kernel_ms"]["p50"]
        row["upload_kernel_over_upload"] = row["upload_kernel_ms"]["p50"] / row["upload_ms"]["p50"]
        row["gpu_upload_kernel_over_upload"] = row["gpu_upload_kernel_ms"]["p50"] / row["gpu_upload_ms"]["p50"]
        rows.append(row)
    return rows


def recorded_ssd(frame_bgr: np.ndarray):
    """(model config, decoder, real SSD outputs by name) for one frame, through ONNX Runtime on the CPU."""
    from trt_perception.core.backends import create_backend
    from trt_perception.core.decode import create_decoder
    from trt_perception.core.model_config import load_model_config
    config = load_model_config(MODEL_CONFIG)
    decoder = create_decoder(config)
    with create_backend("onnxruntime", str(config.model_path), threads=1) as backend:
        tensor, _ = preprocess(frame_bgr, "bgr", config.preprocess)
        outputs = {name: array.copy() for name, array in backend.infer({config.input_name: tensor}).items()}
    return config, decoder, outputs


def same_detections(got, want) -> bool:
    """Equal count, scores within 2e-3 and boxes within 0.5 px (GPU and CPU float32 differ slightly)."""
    return (len(got) == len(want) and bool(np.allclose(got.scores, want.scores, atol=2e-3))
            and bool(np.allclose(got.boxes_xyxy, want.boxes_xyxy, atol=0.5)))


def bench_pipeline(device, repeats: int) -> dict[str, Any]:
    width, height = SIZES[-1]
    frame = cv2.resize(cv2.imread(str(TEST_IMAGE)), (width, height), interpolation=cv2.INTER_LINEAR)
    config, decoder, outputs = recorded_ssd(frame)
    geometry = config.preprocess.geometry(width, height)
    named = outputs_by_role(config, outputs)
    cpu_detections = decoder(named, geometry)

    def decode(outs, geometry):
        return decoder(outputs_by_role(config, outs), geometry)

    data = frame.tobytes()
    results: dict[str, Any] = {"frame": f"{width}x{height} bgr8 ({TEST_IMAGE.name} resized)",
                               "detections": len(cpu_detections), "rows": []}
    def stand_in(busy_us: int = 0) -> tuple[Any, Any]:
        with device.current():
            stream = device.driver.Stream()
        return ReplayRunner(device, outputs, busy_us=busy_us), stream

    def ort_on_device() -> tuple[Any, Any]:
        backend = OnnxRuntimeBackend(config.model_path, device_buffers=True)
        backend.activate()
        return backend, backend.cuda_stream

    runners: list[tuple[str, Callable[[], tuple[Any, Any]]]] = [
        ("stand-in, 0 ms", stand_in),
        (f"stand-in, {INFERENCE_US / 1000:.2f} ms", lambda: stand_in(INFERENCE_US))]
    ort_ok, ort_problem = cuda_provider_available()
    if ort_ok:
        runners.append(("ONNX Runtime CUDA", ort_on_device))
    results["ort_cuda"] = ort_problem or "available"
    for label, make_runner in runners:
        try:
            runner, stream = make_runner()
        except BackendError as exc:   # e.g. the CUDA provider's libraries are missing
            results["ort_cuda"] = f"failed to load: {exc}"
            continue
        try:
            if not isinstance(runner, ReplayRunner):
                results["ort_inference_ms"] = inference_times(device, runner, stream, config, frame, repeats)
            for depth in (1, 2):
                pipeline = FramePipeline(device, config.preprocess, runner, decode, depth=depth,
                                         infer_stream=stream)
                try:
                    pipeline.configure("bgr8", width, height, width * 3)
                    for source in ("bytes", "staging"):
                        row = run_pipeline(pipeline, source, data, repeats, cpu_detections)
                        row.update(runner=label, depth=depth, source=source)
                        results["rows"].append(row)
                finally:
                    pipeline.close()
        finally:
            if isinstance(runner, ReplayRunner):
                runner.free()
            else:
                runner.deactivate()
    results["cpu_decode_ms"] = stats_ms(host_times_ms(lambda: decoder(named, geometry), repeats))
    results["outputs_bytes"] = int(sum(a.nbytes for a in outputs.values()))
    results["outputs_to_host_ms"] = outputs_to_host_times(device, outputs, repeats)
    return results


def run_pipeline(pipeline: FramePipeline, source: str, data: bytes, repeats: int, want) -> dict[str, Any]:
    """Ms per frame (submit call to submit call) and whether every result matched ``want``."""
    if source == "staging":   # the producer wrote the frame into each slot's staging buffer
        for _ in range(pipeline.depth):
            pipeline.next_host_frame()[:] = np.frombuffer(data, np.uint8)
            pipeline.submit(pipeline.next_host_frame())
        pipeline.drain()

    def one() -> list:
        return pipeline.submit(pipeline.next_host_frame() if source == "staging" else data)

    for _ in range(20):
        one()
    pipeline.drain()
    periods, produced = [], []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        produced += one()
        periods.append((time.perf_counter_ns() - start) / 1e6)
    produced += pipeline.drain()
    return {"per_frame_ms": stats_ms(periods), "results": len(produced),
            "detections_equal_cpu": all(same_detections(r.result, want) for r in produced)}


def inference_times(device, runner, stream, config, frame: np.ndarray, repeats: int) -> dict[str, float]:
    """CUDA-event time of one ONNX Runtime CUDA run on device buffers (real input tensor)."""
    tensor, _ = preprocess(frame, "bgr", config.preprocess)
    with device.current():
        drv = device.driver
        source = drv.to_device(np.ascontiguousarray(tensor))
        targets = {name: drv.mem_alloc(spec.dtype.itemsize * int(np.prod(spec.shape)))
                   for name, spec in runner.output_specs().items()}
        pointers = {name: int(buffer) for name, buffer in targets.items()}
        runs = event_times(device, stream, [lambda: runner.enqueue(int(source), pointers, stream)], repeats)
        for buffer in (source, *targets.values()):
            buffer.free()
    return stats_ms([r[0] for r in runs])


def outputs_to_host_times(device, outputs: dict[str, np.ndarray], repeats: int) -> dict[str, float]:
    """CUDA-event time of copying the SSD outputs to pinned host buffers (as the pipeline does)."""
    from trt_perception.core.cuda.device import HostDeviceBuffer
    with device.current():
        stream = device.driver.Stream()
        buffers = [HostDeviceBuffer(device.driver, a.shape, a.dtype) for a in outputs.values()]

        def copy() -> None:
            for buffer in buffers:
                device.driver.memcpy_dtoh_async(buffer.host, buffer.device, stream)

        runs = event_times(device, stream, [copy], repeats)
        for buffer in buffers:
            buffer.free()
    return stats_ms([r[0] for r in runs])


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# GPU pipeline: measured on {report['device']}", "",
             f"Driver/CUDA: {report['cuda']}; host: {report['host']}; {report['date']}.",
             "Produced by `benchmarks/gpu_pipeline.py`; times in ms, p50 (p99) over "
             f"{report['repeats']} runs; GPU times from CUDA events, host times from perf_counter.", "",
             "## Correctness: GPU preprocessing vs the CPU reference path", "",
             "| path, dtype | cases | encodings | max abs error | values differing | never written |",
             "|---|---|---|---|---|---|"]
    for key, entry in report["parity"].items():
        lines.append(f"| {key} | {entry['cases']} | {', '.join(entry['encodings'])} | "
                     f"{entry['max_abs_error']:g} | {entry['values_differing']} | {entry['unwritten']} |")
    lim = report["ceilings"]
    lines += ["", f"Ceilings: device copy bandwidth {lim['copy_bandwidth_GBps']:.0f} GB/s (read + write); "
              f"empty-kernel launch {lim['empty_kernel_ms'] * 1e3:.1f} us (events).", "",
              "## Preprocessing: bgr8 frame -> 300x300 float32 NCHW (SSD input)", "",
              "As launched from Python (events around each step, the host enqueueing them one by one):", "",
              "| source | pinned upload | kernel | upload + kernel | kernel floor | kernel / floor | "
              "(upload+kernel) / upload | zero-copy kernel | OpenCV CPU (1 thread) | CPU / kernel |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(s: dict[str, float]) -> str:
        return f"{s['p50']:.4f} ({s['p99']:.4f})"

    for row in report["preprocess"]:
        lines.append(f"| {row['source']} | {fmt(row['upload_ms'])} | {fmt(row['kernel_ms'])} | "
                     f"{fmt(row['upload_kernel_ms'])} | {row['floor_ms']:.4f} | {row['kernel_over_floor']:.2f} | "
                     f"{row['upload_kernel_over_upload']:.3f} | {fmt(row['zero_copy_kernel_ms'])} | "
                     f"{fmt(row['opencv_cpu_ms'])} | {row['cpu_over_kernel']:.0f}x |")
    lines += ["", "The same with the GPU kept busy (200 us spin) before each run, so that every step is queued "
              "before the GPU reaches it: GPU time alone, without the host's launch gaps. Floor: max(bytes the "
              "kernel must move / copy bandwidth, GPU-bound empty kernel "
              f"{lim['gpu_empty_kernel_ms'] * 1e3:.1f} us).", "",
              "| source | pinned upload | kernel | upload + kernel | bytes moved | kernel floor | kernel / floor | "
              "(upload+kernel) / upload |", "|---|---|---|---|---|---|---|---|"]
    for row in report["preprocess"]:
        lines.append(f"| {row['source']} | {fmt(row['gpu_upload_ms'])} | {fmt(row['gpu_kernel_ms'])} | "
                     f"{fmt(row['gpu_upload_kernel_ms'])} | {row['kernel_bytes'] / 1e6:.2f} MB | "
                     f"{row['gpu_floor_ms']:.4f} | {row['gpu_kernel_over_floor']:.2f} | "
                     f"{row['gpu_upload_kernel_over_upload']:.3f} |")
    lines += ["", "Whole call on the host clock (enqueue and wait): frame from message bytes in pageable memory "
              "(uploaded from there, the driver staging it), or already in the pinned staging buffer.", "",
              "| source | from message bytes | from pinned staging |", "|---|---|---|"]
    for row in report["preprocess"]:
        lines.append(f"| {row['source']} | {fmt(row['host_call_bytes_ms'])} | {fmt(row['host_call_staging_ms'])} |")
    pipe = report["pipeline"]
    lines += ["", f"## Detector pipeline at 1080p ({pipe['frame']}, {pipe['detections']} detections)", "",
              "Per frame: upload (from message bytes, or from pinned staging), fused preprocessing, the network, "
              f"outputs to the host ({pipe['outputs_bytes']} bytes, {fmt(pipe['outputs_to_host_ms'])} alone), CPU "
              f"SsdDecoder ({fmt(pipe['cpu_decode_ms'])} alone). The stand-in network is a device copy of the real "
              "SSD outputs of this frame (recorded with ONNX Runtime on the CPU), optionally after a busy wait; "
              f"ONNX Runtime CUDA: {pipe['ort_cuda']}"
              + (f", one run alone {fmt(pipe['ort_inference_ms'])} (events)." if "ort_inference_ms" in pipe else "."),
              "", "| network | depth | frame from | ms per frame p50 (p99) | detections equal CPU path |",
              "|---|---|---|---|---|"]
    for row in pipe["rows"]:
        lines.append(f"| {row['runner']} | {row['depth']} | {row['source']} | {fmt(row['per_frame_ms'])} | "
                     f"{row['detections_equal_cpu']} ({row['results']} frames) |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu_pipeline.md/.json")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    ok, reason = gpu_available()
    if not ok:
        print(f"no usable GPU: {reason}", file=sys.stderr)
        return 2
    import pycuda
    device = shared_device(0)
    report: dict[str, Any] = {
        "device": reason, "repeats": args.repeats,
        "cuda": f"driver {device.driver.get_driver_version()}, pycuda {pycuda.VERSION_TEXT}",
        "host": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
                f"OpenCV {cv2.__version__}, numpy {np.__version__}",
        "date": time.strftime("%Y-%m-%d")}
    stages: list[tuple[str, Callable[[], Any]]] = [
        ("parity", lambda: check_parity(device)),
        ("ceilings", lambda: ceilings(device, args.repeats)),
        ("preprocess", lambda: bench_preprocess(device, args.repeats, report["ceilings"])),
        ("pipeline", lambda: bench_pipeline(device, args.repeats))]
    for name, stage in stages:
        started = time.perf_counter()
        report[name] = stage()
        print(f"[{name}] done in {time.perf_counter() - started:.1f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "gpu_pipeline.json", json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    atomic_write_text(args.out / "gpu_pipeline.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
