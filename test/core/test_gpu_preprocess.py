"""GpuPreprocessor on a real GPU against the CPU reference path (skipped without pycuda or a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.image import ImageError
from trt_perception.testing.gpu_parity import (
    LETTERBOX_CONFIG,
    SSD_CONFIG,
    ParityCase,
    make_frame,
    parity_cases,
    reference,
)

GPU_OK, GPU_REASON = gpu_available()
pytestmark = pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_REASON}")


@pytest.fixture(scope="module")
def device():
    from trt_perception.core.cuda.runtime import shared_device
    return shared_device(0)


def _poison(device, preprocessor) -> None:
    """Fill the input tensor with 0xFF bytes (NaN in float32 and float16) before a run."""
    with device.current():
        preprocessor.stream.synchronize()
        device.driver.memset_d8(preprocessor.input_ptr, 0xFF, preprocessor.plan.output_nbytes)


def _run(device, preprocessor, case: ParityCase, data: bytes) -> np.ndarray:
    layout = case.layout
    preprocessor.configure(case.config, layout.encoding, layout.width, layout.height, layout.step,
                           layout.is_bigendian)
    _poison(device, preprocessor)
    preprocessor(data)
    return preprocessor.download()


def _assert_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert not np.isnan(got).any(), "some output elements were never written"
    differ = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
    assert differ.size == 0, f"{differ.size} of {got.size} values differ from the CPU reference"


@pytest.mark.parametrize("zero_copy", [False, True], ids=["upload", "zero_copy"])
@pytest.mark.parametrize("case", parity_cases(), ids=str)
def test_gpu_preprocessing_equals_cpu_reference(device, case: ParityCase, zero_copy: bool) -> None:
    from trt_perception.core.gpu.gpu_preprocess import GpuPreprocessor
    rng = np.random.default_rng(abs(hash((str(case), zero_copy))) % 2**32)
    data, layout = make_frame(case, rng)
    preprocessor = GpuPreprocessor(device, zero_copy_input=zero_copy)
    try:
        _assert_equal(_run(device, preprocessor, case, data), reference(case, data, layout))
    finally:
        preprocessor.release()


def test_buffers_are_reused_and_host_frame_skips_the_copy(device) -> None:
    from trt_perception.core.gpu.gpu_preprocess import GpuPreprocessor
    case = ParityCase("bgr8", 640, 480, 0, SSD_CONFIG)
    rng = np.random.default_rng(5)
    preprocessor = GpuPreprocessor(device)
    try:
        layout = case.layout
        preprocessor.configure(case.config, "bgr8", 640, 480, layout.step)
        pointer, staging = preprocessor.input_ptr, preprocessor.host_frame
        for _ in range(3):
            data, _ = make_frame(case, rng)
            preprocessor.wait_frame_free()
            preprocessor.host_frame[:] = np.frombuffer(data, np.uint8)
            preprocessor(preprocessor.host_frame)
            _assert_equal(preprocessor.download(), reference(case, data, layout))
            assert preprocessor.input_ptr == pointer and preprocessor.host_frame is staging
    finally:
        preprocessor.release()


def test_writes_into_a_given_device_buffer(device) -> None:
    from trt_perception.core.gpu.gpu_preprocess import GpuPreprocessor
    case = ParityCase("nv12", 320, 240, 0, LETTERBOX_CONFIG)
    data, layout = make_frame(case, np.random.default_rng(6))
    with device.current():
        target = device.driver.mem_alloc(LETTERBOX_CONFIG.width * LETTERBOX_CONFIG.height * 3 * 2)
    preprocessor = GpuPreprocessor(device)
    try:
        preprocessor.configure(case.config, "nv12", 320, 240, layout.step, output_ptr=int(target))
        assert preprocessor.input_ptr == int(target)
        preprocessor(data)
        got = np.empty(LETTERBOX_CONFIG.input_shape, np.float16)
        with device.current():
            preprocessor.stream.synchronize()
            device.driver.memcpy_dtoh(got, target)
        _assert_equal(got, reference(case, data, layout))
    finally:
        preprocessor.release()
        with device.current():
            target.free()


def test_bad_frames_are_rejected(device) -> None:
    from trt_perception.core.gpu.gpu_preprocess import GpuPreprocessor
    preprocessor = GpuPreprocessor(device)
    with pytest.raises(RuntimeError, match="configure"):
        preprocessor(b"\0" * 10)
    try:
        preprocessor.configure(SSD_CONFIG, "rgb8", 4, 4, 12)
        with pytest.raises(ImageError, match="needs 48 bytes"):
            preprocessor(b"\0" * 47)
        with pytest.raises(ImageError, match="not supported by the GPU"):
            preprocessor.configure(SSD_CONFIG, "bayer_rggb8", 4, 4, 4)
    finally:
        preprocessor.release()

