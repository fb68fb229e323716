"""Does post-processing or the frame copy pay on the GPU? Measurements behind docs/gpu.md's choices.

    python benchmarks/gpu_decode.py --out benchmarks/results [--repeats 300]

Runs on a machine with a CUDA GPU, pycuda and nvcc. The kernels here are experiments, kept with the
benchmark so that the measurement can be repeated; the package ships what the numbers favour.

1. SSD candidates: the real SSD outputs of a real frame (ONNX Runtime CPU) in device memory. CPU
   path as shipped: both outputs to the host, then the whole SsdDecoder. GPU variant: a kernel
   keeps the (anchor, class) pairs whose logit passes the score bound and compacts them with their
   box encodings (atomic counter), only those come back; the host still decodes boxes and runs NMS
   (the decoder's time minus its candidate selection, measured on the same outputs).
2. Pose peaks: synthesised 18x56x56 confidence maps (5 people) in device memory. CPU path: the
   maps to the host, pad, find_peaks. GPU variant: one thread per cell tests its 3x3 window (same
   tie rule), compacts the peaks, only they come back. The PAF (2L x 56 x 56) must come back in
   both cases for the link scoring, so it is not counted in either.
3. Message bytes to the GPU (1920x1080 bgr8): a pageable upload (the driver stages it), versus
   page-locking the message's memory for the upload (cuMemHostRegister, async copy, unregister),
   versus copying into pinned staging on the host (1 or 4 threads, in chunks, each chunk's
   asynchronous upload enqueued as soon as it is copied).

Host clock (perf_counter) around each whole variant, p50 and p99 over --repeats runs.
"""

from __future__ import annotations

import argparse
import array
import json
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpu_pipeline import host_times_ms, stats_ms  # noqa: E402  (benchmarks/, the script's directory)

from trt_perception.core.cuda.runtime import gpu_available, shared_device  # noqa: E402
from trt_perception.core.decode.pose.find_peaks import find_peaks, pad_maps  # noqa: E402
from trt_perception.core.io.atomic_write import atomic_write_text  # noqa: E402
from trt_perception.core.pipeline import outputs_by_role  # noqa: E402
from trt_perception.core.preprocess import preprocess  # noqa: E402
from trt_perception.testing.pose_fields import random_scene  # noqa: E402

MODEL_CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
TEST_IMAGE = ROOT / "test" / "data" / "vtest_150.jpg"
MAX_CANDIDATES = 1024

KERNELS = r"""
extern "C" __global__ void ssd_candidates(const float* logits, const float* encodings, int anchors,
                                          int columns, int first_class, float bound, int max_out,
                                          int* count, float* out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= anchors * columns) return;
    int anchor = i / columns, column = i % columns;
    if (column < first_class) return;
    float logit = logits[i];
    if (!(logit > bound)) return;
    int k = atomicAdd(count, 1);
    if (k >= max_out) return;
    float* o = out + 7 * k;
    o[0] = (float)anchor; o[1] = (float)column; o[2] = logit;
    for (int j = 0; j < 4; ++j) o[3 + j] = encodings[4 * anchor + j];
}

extern "C" __global__ void cmap_peaks(const float* cmap, int parts, int height, int width,
                                      float threshold, int max_out, int* count, int* out)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    int part = blockIdx.z;
    if (x >= width || y >= height) return;
    const float* map = cmap + (size_t)part * height * width;
    float v = map[y * width + x];
    if (!(v > threshold)) return;
    for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
            int yy = y + dy, xx = x + dx;
            if ((dy == 0 && dx == 0) || yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
            float n = map[yy * width + xx];
            bool before = dy < 0 || (dy == 0 && dx < 0);      // raster order: ties go to the first cell
            if (before ? !(v > n) : !(v >= n)) return;
        }
    int k = atomicAdd(count, 1);
    if (k < max_out) { out[2 * k] = part; out[2 * k + 1] = y * width + x; }
}
"""


class Compacted:
    """A compacting kernel's output: an atomic row counter and up to MAX_CANDIDATES rows of ``columns``
    values in device memory, and their pinned host copies.
    """

    def __init__(self, drv, columns: int, dtype) -> None:
        self.drv = drv
        self.d_count, self.h_count = drv.mem_alloc(4), drv.pagelocked_empty(1, np.int32)
        self.h_rows = drv.pagelocked_empty((MAX_CANDIDATES, columns), dtype)
        self.d_rows = drv.mem_alloc(self.h_rows.nbytes)

    def run(self, stream, launch: Callable[[Any, Any], None]) -> np.ndarray:
        """Reset the counter, ``launch(counter, rows)`` on ``stream``, copy both back and wait; the
        rows written.
        """
        self.drv.memset_d32_async(self.d_count, 0, 1, stream)
        launch(self.d_count, self.d_rows)
        self.drv.memcpy_dtoh_async(self.h_count, self.d_count, stream)
        self.drv.memcpy_dtoh_async(self.h_rows, self.d_rows, stream)
        stream.synchronize()
        return self.h_rows[:min(int(self.h_count[0]), MAX_CANDIDATES)]


def ssd_outputs():
    """(decoder, geometry, outputs by role) of the real model on a 1080p frame, via ONNX Runtime CPU."""
    from trt_perception.core.backends import create_backend
    from trt_perception.core.decode import create_decoder
    from trt_perception.core.model_config import load_model_config
    config = load_model_config(MODEL_CONFIG)
    decoder = create_decoder(config)
    frame = cv2.resize(cv2.imread(str(TEST_IMAGE)), (1920, 1080))
    with create_backend("onnxruntime", str(config.model_path), threads=1) as backend:
        tensor, geometry = preprocess(frame, "bgr", config.preprocess)
        raw = backend.infer({config.input_name: tensor})
        outputs = {role: array.copy() for role, array in outputs_by_role(config, raw).items()}
    return decoder, geometry, outputs


def bench_ssd(device, module, repeats: int) -> dict[str, Any]:
    drv = device.driver
    decoder, geometry, outputs = ssd_outputs()
    logits = np.ascontiguousarray(outputs["class_predictions"], np.float32)
    encodings = np.ascontiguousarray(outputs["box_encodings"], np.float32)
    anchors = decoder.anchors.shape[0]
    columns = logits.size // anchors
    selector = decoder._selector(decoder._state, columns)
    stream = drv.Stream()
    d_logits, d_enc = drv.to_device(logits), drv.to_device(encodings)
    h_logits, h_enc = drv.pagelocked_empty_like(logits), drv.pagelocked_empty_like(encodings)
    candidates = Compacted(drv, 7, np.float32)
    kernel = module.get_function("ssd_candidates")
    kernel.prepare("PPiiifiPP")
    total = anchors * columns
    grid = ((total + 255) // 256, 1)

    def cpu_path():
        drv.memcpy_dtoh_async(h_logits, d_logits, stream)
        drv.memcpy_dtoh_async(h_enc, d_enc, stream)
        stream.synchronize()
        return decoder({"class_predictions": h_logits, "box_encodings": h_enc}, geometry)

    def gpu_candidates():
        return candidates.run(stream, lambda count, rows: kernel.prepared_async_call(
            grid, (256, 1, 1), stream, d_logits, d_enc, anchors, columns, decoder.first_class,
            np.float32(selector._bound), MAX_CANDIDATES, count, rows))

    want_rows, want_ids, _ = selector(logits.reshape(anchors, columns))
    got = gpu_candidates()
    order = np.lexsort((got[:, 1], got[:, 0]))
    same = (np.array_equal(got[order, 0].astype(np.int64), want_rows)
            and np.array_equal(got[order, 1].astype(np.int64), want_ids))
    cpu = host_times_ms(cpu_path, repeats)
    gpu = host_times_ms(gpu_candidates, repeats)
    selection = host_times_ms(lambda: selector(logits.reshape(anchors, columns)), repeats)
    decode_all = host_times_ms(lambda: decoder(outputs, geometry), repeats)
    rest = max(np.median(decode_all) - np.median(selection), 0.0)
    return {"anchors": anchors, "columns": columns, "candidates": int(len(want_rows)), "same_candidates": bool(same),
            "detections": len(cpu_path()), "cpu_path": stats_ms(cpu), "gpu_candidates": stats_ms(gpu),
            "host_selection": stats_ms(selection), "host_decoder": stats_ms(decode_all),
            "gpu_path_p50_estimate": float(np.median(gpu) + rest)}


def bench_peaks(device, module, repeats: int) -> dict[str, Any]:
    drv = device.driver
    rng = np.random.default_rng(0)
    cmap = np.ascontiguousarray(random_scene(rng, 5).cmap, np.float32)
    parts, height, width = cmap.shape
    threshold = 0.1
    stream = drv.Stream()
    d_cmap = drv.to_device(cmap)
    h_cmap = drv.pagelocked_empty_like(cmap)
    peak_cells = Compacted(drv, 2, np.int32)
    kernel = module.get_function("cmap_peaks")
    kernel.prepare("PiiifiPP")
    block = (32, 8, 1)
    grid = ((width + 31) // 32, (height + 7) // 8, parts)
    padded = [None]

    def cpu_path():
        drv.memcpy_dtoh_async(h_cmap, d_cmap, stream)
        stream.synchronize()
        padded[0] = pad_maps(h_cmap, 1, padded[0])
        return find_peaks(padded[0], 1, threshold, 100)

    def gpu_path():
        return peak_cells.run(stream, lambda count, rows: kernel.prepared_async_call(
            grid, block, stream, d_cmap, parts, height, width, np.float32(threshold), MAX_CANDIDATES, count, rows))

    peaks = cpu_path()
    padded_w = width + 2
    cpu_cells = {(int(p), int((i % ((height + 2) * padded_w)) // padded_w - 1) * width
                  + int(i % padded_w - 1)) for p, i in zip(peaks.part, peaks.index)}
    gpu_cells = {(int(p), int(i)) for p, i in gpu_path()}
    return {"maps": [parts, height, width], "peaks": len(cpu_cells), "same_peaks": cpu_cells == gpu_cells,
            "cpu_path": stats_ms(host_times_ms(cpu_path, repeats)),
            "gpu_path": stats_ms(host_times_ms(gpu_path, repeats))}


def bench_bytes(device, repeats: int) -> dict[str, Any]:
    drv = device.driver
    frame = np.random.default_rng(1).integers(0, 256, 1920 * 1080 * 3, dtype=np.uint8)
    message = array.array("B", frame.tobytes())   # a message's data as rclpy gives it: pageable memory
    source = np.frombuffer(message, np.uint8)
    staging = drv.pagelocked_empty(source.size, np.uint8)
    d_frame = drv.mem_alloc(source.size)
    stream = drv.Stream()
    pool = ThreadPoolExecutor(4)

    def pageable():
        drv.memcpy_htod_async(d_frame, source, stream)
        stream.synchronize()

    def chunked(threads: int, chunks: int) -> Callable[[], None]:
        edges = np.linspace(0, source.size, chunks + 1).astype(int)
        pieces = list(zip(edges[:-1], edges[1:]))

        def copy(piece):
            a, b = piece
            np.copyto(staging[a:b], source[a:b])
            return piece

        def run():
            if threads == 1:
                done = map(copy, pieces)
            else:
                done = pool.map(copy, pieces)
            for a, b in done:
                drv.memcpy_htod_async(int(d_frame) + int(a), staging[a:b], stream)
            stream.synchronize()
        return run

    def registered():
        """Page-lock the message's own memory for this frame, upload asynchronously, unlock."""
        locked = drv.register_host_memory(source)
        drv.memcpy_htod_async(d_frame, locked, stream)
        stream.synchronize()
        locked.base.unregister()

    result: dict[str, Any] = {"bytes": int(source.size), "pageable_upload": stats_ms(host_times_ms(pageable, repeats))}
    try:
        result["register_upload_unregister"] = stats_ms(host_times_ms(registered, repeats))
    except Exception as exc:  # noqa: BLE001 - a variant that cannot run is reported, not fatal
        result["register_error"] = repr(exc)
    for threads, chunks in ((1, 1), (1, 4), (4, 4), (4, 8)):
        result[f"staged_{threads}threads_{chunks}chunks"] = stats_ms(host_times_ms(chunked(threads, chunks), repeats))
    check = drv.from_device(d_frame, (source.size,), np.uint8)
    result["uploaded_equal"] = bool(np.array_equal(check, source))
    pool.shutdown()
    return result


def markdown(report: dict[str, Any]) -> str:
    def cell(s: dict[str, float]) -> str:
        return f"{s['p50']:.4f} ({s['p99']:.4f})"
    ssd, peaks, up = report["ssd"], report["peaks"], report["bytes"]
    lines = [f"# GPU post-processing and frame copy: measured on {report['gpu']}", "",
             f"{report['host']}; {report['date']}. `benchmarks/gpu_decode.py`; host-clock ms, p50 (p99) "
             f"over {ssd['cpu_path']['n']} runs.", "",
             "## SSD candidates on the GPU?", "",
             f"{ssd['anchors']} anchors x {ssd['columns']} columns, {ssd['candidates']} candidates, "
             f"{ssd['detections']} detections; GPU kernel selects the same candidates as the CPU: "
             f"{ssd['same_candidates']}.", "",
             "| variant | ms |", "|---|---|",
             f"| CPU (shipped): outputs to host + SsdDecoder | {cell(ssd['cpu_path'])} |",
             f"| GPU: candidate kernel + compacted copy | {cell(ssd['gpu_candidates'])} |",
             f"| host: SsdDecoder alone / its candidate selection | {cell(ssd['host_decoder'])} / "
             f"{cell(ssd['host_selection'])} |",
             f"| GPU variant, whole (estimate, p50) | {ssd['gpu_path_p50_estimate']:.4f} |", "",
             "## Pose peaks on the GPU?", "",
             f"Maps {peaks['maps']}, {peaks['peaks']} peaks; GPU peaks equal CPU peaks: {peaks['same_peaks']}.", "",
             "| variant | ms |", "|---|---|",
             f"| CPU (shipped): maps to host + pad + find_peaks | {cell(peaks['cpu_path'])} |",
             f"| GPU: peak kernel + compacted copy | {cell(peaks['gpu_path'])} |", "",
             "## 1080p message bytes to the GPU", "",
             f"{up['bytes']} bytes from pageable memory; result equal: {up['uploaded_equal']}"
             f"{'; page-locking failed: ' + up['register_error'] if 'register_error' in up else ''}.", "",
             "| variant | ms |", "|---|---|"]
    lines += [f"| {name.replace('_', ' ')} | {cell(value)} |" for name, value in up.items()
              if isinstance(value, dict)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    ok, name = gpu_available()
    if not ok:
        print(f"no usable GPU: {name}", file=sys.stderr)
        return 1
    from pycuda.compiler import SourceModule
    device = shared_device(0)
    with device.current():
        module = SourceModule(KERNELS, no_extern_c=True)
        report = {"gpu": name, "host": f"{platform.machine()}, Python {platform.python_version()}",
                  "date": time.strftime("%Y-%m-%d"),
                  "ssd": bench_ssd(device, module, args.repeats),
                  "peaks": bench_peaks(device, module, args.repeats),
                  "bytes": bench_bytes(device, args.repeats)}
    text = markdown(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "gpu_decode.md", text)
    atomic_write_text(args.out / "gpu_decode.json", json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
