"""GpuBatchPipeline (fused GPU preprocessing into the rows of one batch tensor, ONNX Runtime's CUDA
provider on a batch-dynamic model) against the CPU pipeline frame by frame, on the real SSD and real
frames of several resolutions and encodings (skipped without a GPU, pycuda or onnxruntime-gpu's CUDA
provider)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trt_perception.core.backends.onnxrt import cuda_provider_available
from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.image import ImageError, RawImage
from trt_perception.core.pipeline import Pipeline, SourceFrame
from trt_perception.core.pipeline_factory import PipelineOptions, create_batch_pipeline

ROOT = Path(__file__).resolve().parents[2]
MODEL_CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
FRAMES = sorted((ROOT / "test" / "data").glob("vtest_*.jpg"))

GPU_OK, GPU_REASON = gpu_available()
CUDA_OK, CUDA_REASON = cuda_provider_available()
pytestmark = [pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_REASON}"),
              pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)]


def _raw(image: np.ndarray, encoding: str, size: tuple[int, int], pad: int = 0) -> RawImage:
    """``image`` (BGR) resized to ``size`` as a raw message buffer of ``encoding`` (bgr8, rgb8 or
    mono8) with ``pad`` bytes after each row.
    """
    pixels = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if encoding == "rgb8":
        pixels = pixels[:, :, ::-1]
    elif encoding == "mono8":
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    height, width = pixels.shape[:2]
    row = pixels.reshape(height, -1)
    rows = np.zeros((height, row.shape[1] + pad), np.uint8)
    rows[:, :row.shape[1]] = row
    return RawImage.create_from(rows.reshape(-1), encoding, width, height, row.shape[1] + pad)


def _cameras() -> list[list[RawImage]]:
    """Four cameras of different formats, each a frame per test image."""
    images = [cv2.imread(str(path)) for path in FRAMES]
    formats = [("bgr8", (1920, 1080), 0), ("rgb8", (640, 480), 64), ("mono8", (1280, 720), 0),
               ("bgr8", (768, 576), 0)]
    return [[_raw(image, *fmt) for image in images] for fmt in formats]


@pytest.mark.parametrize("depth", [1, 2])
def test_batched_gpu_results_equal_the_cpu_pipeline_per_frame(depth: int) -> None:
    """Batches of 4, 3 (a camera missing) and 1 frames of cameras with different resolutions and
    encodings: each frame's detections equal the CPU pipeline's for that frame, in each camera's
    own source pixels, results in submission order; one inference call per batch."""
    from trt_perception.core.gpu.gpu_batch_pipeline import GpuBatchPipeline
    assert FRAMES, "test/data/vtest_*.jpg are missing"
    cameras = _cameras()
    batches = []
    for index in range(len(FRAMES)):
        present = [0, 1, 2, 3] if index % 3 == 0 else [0, 2, 3] if index % 3 == 1 else [1]
        batches.append([(camera, cameras[camera][index]) for camera in present])
    with Pipeline.from_config(MODEL_CONFIG, "onnxruntime", threads=1) as cpu:
        want = {(camera, id(image)): cpu.run(*image.decode())[0] for batch in batches for camera, image in batch}
    pipeline, why = create_batch_pipeline(MODEL_CONFIG, PipelineOptions(backend="onnxruntime", preprocess="gpu",
                                                                        pipeline_depth=depth), 4)
    results = []
    try:
        assert isinstance(pipeline, GpuBatchPipeline) and pipeline.takes_raw_images and "GPU" in why
        for batch in batches:
            results += pipeline.submit_batch([(SourceFrame(image=image), (camera, id(image)))
                                              for camera, image in batch])
        results += pipeline.drain()
    finally:
        pipeline.close()
    assert [r.tag for r in results] == [(camera, id(image)) for batch in batches for camera, image in batch]
    assert sum(len(d) for d in want.values()) > 0, "the CPU pipeline found nobody: the comparison would be empty"
    for result in results:
        expected = want[result.tag]
        got = result.result
        assert len(got) == len(expected), result.tag
        np.testing.assert_allclose(got.scores, expected.scores, atol=2e-3)
        np.testing.assert_allclose(got.boxes_xyxy, expected.boxes_xyxy, atol=0.5)
        assert result.times.preprocess_ns > 0 and result.times.inference_ns > 0
    sizes = [r.times.batch_size for r in results]
    assert sizes == [len(batch) for batch in batches for _ in batch]


def test_a_bad_frame_fails_its_batch_and_keeps_earlier_results() -> None:
    """With depth 2 a batch in flight finishes even when the next batch has a frame too short for
    its layout (ImageError): its results come with the next call; the pipeline keeps working."""
    cameras = _cameras()
    pipeline, _ = create_batch_pipeline(MODEL_CONFIG, PipelineOptions(backend="onnxruntime", preprocess="gpu",
                                                                      pipeline_depth=2), 2)
    good = [(SourceFrame(image=cameras[0][0]), "a0"), (SourceFrame(image=cameras[1][0]), "b0")]
    image = cameras[1][1]
    short = RawImage(image.encoding, image.width, image.height, image.step, image.is_bigendian,
                     data=np.asarray(image.data)[:100])   # shorter than its layout (create_from refuses it)
    try:
        first = pipeline.submit_batch(good)
        first += pipeline.submit_batch(good[:1])
        with pytest.raises(ImageError):
            pipeline.submit_batch([(SourceFrame(image=cameras[0][1]), "a1"), (SourceFrame(image=short), "b1")])
        rest = pipeline.submit_batch([(SourceFrame(image=cameras[0][2]), "a2")]) + pipeline.drain()
        with pytest.raises(ValueError, match="raw images"):
            pipeline.submit_batch([(SourceFrame(pixels=np.zeros((4, 4, 3), np.uint8), order="bgr"), "x")])
    finally:
        pipeline.close()
    assert [r.tag for r in first + rest] == ["a0", "b0", "a0", "a2"]


def test_pinned_pool_lends_up_to_its_limit_and_takes_buffers_back_when_released() -> None:
    import gc

    from trt_perception.core.cuda.pinned_pool import PinnedBufferPool
    from trt_perception.core.cuda.runtime import shared_device
    pool = PinnedBufferPool(shared_device(0), 1000, limit=2)
    first, second = pool.acquire(), pool.acquire()
    assert first is not None and second is not None and first.size == 1000 and first.dtype == np.uint8
    assert pool.acquire() is None and pool.allocated == 2
    first[:] = 7
    del first
    gc.collect()
    again = pool.acquire()
    assert again is not None and pool.allocated == 2   # the same buffer, lent again
    pool.close()
    assert pool.acquire() is None
    del again, second
    gc.collect()
    assert pool.allocated == 0


def test_staged_frames_give_the_same_results_and_their_buffers_come_back() -> None:
    """stage() copies each frame into page-locked memory; batches of staged frames give the results of
    the unstaged ones, and after many batches no more buffers exist than the pool's limit."""
    import gc
    cameras = _cameras()[:2]
    pipeline, _ = create_batch_pipeline(MODEL_CONFIG, PipelineOptions(backend="onnxruntime", preprocess="gpu",
                                                                      pipeline_depth=2), 2)
    try:
        frames = [SourceFrame(image=cameras[c][i]) for i in range(len(FRAMES)) for c in range(2)]
        plain = pipeline.submit_batch([(frame, n) for n, frame in enumerate(frames)][:2]) + pipeline.drain()
        for _ in range(6):
            staged = [pipeline.stage(frame) for frame in frames[:2]]
            assert all(s.image is not None and s.image.data is not f.image.data for s, f in zip(staged, frames))
            assert np.array_equal(staged[0].image.data, np.asarray(frames[0].image.data).reshape(-1))
            results = pipeline.submit_batch([(frame, n) for n, frame in enumerate(staged)]) + pipeline.drain()
            del staged
            gc.collect()
            for got, want in zip(results, plain):
                assert got.tag == want.tag and len(got.result) == len(want.result)
                np.testing.assert_allclose(got.result.boxes_xyxy, want.result.boxes_xyxy, atol=1e-3)
        pools = list(pipeline._pools.values())
        assert pools and all(pool.allocated <= 2 for pool in pools)   # reused, not one per frame
    finally:
        pipeline.close()
