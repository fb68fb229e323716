"""The pycuda layer of the TensorRT backend: device identity, buffers, CUDA graph capture.

Needs pycuda and a CUDA GPU (skipped elsewhere); TensorRT is not needed.
"""

import numpy as np
import pytest

from trt_perception.core.backends.base import BackendError


@pytest.fixture
def device():
    try:
        import pycuda.driver as driver
        driver.init()
        if driver.Device.count() == 0:
            pytest.skip("no CUDA device")
    except Exception as exc:  # noqa: BLE001 - missing pycuda or driver: cannot run here
        pytest.skip(f"needs pycuda and a CUDA GPU: {exc}")
    from trt_perception.core.cuda.device import CudaDevice
    dev = CudaDevice(0)
    yield dev
    dev.release()


def test_identity_and_bad_device_id(device):
    identity = device.identity()
    major, minor = (int(p) for p in identity.compute_capability.split("."))
    assert identity.name and major >= 3 and minor >= 0
    from trt_perception.core.cuda.device import CudaDevice
    with pytest.raises(BackendError, match="device_id 99 does not exist"):
        CudaDevice(99)


def test_buffers_round_trip_and_views(device):
    from trt_perception.core.cuda.device import HostDeviceBuffer
    with device.current():
        buffer = HostDeviceBuffer(device.driver, (4, 3, 2), np.dtype(np.float32))
        try:
            view = buffer.host_view((2, 3, 2))
            assert view.base is not None and view.flags.c_contiguous
            view[...] = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
            device.driver.memcpy_htod(buffer.device, buffer.host)
            back = np.zeros((4, 3, 2), np.float32)
            device.driver.memcpy_dtoh(back, buffer.device)
            np.testing.assert_array_equal(back[:2], view)
            with pytest.raises(BackendError, match="does not fit"):
                buffer.host_view((5, 3, 2))
        finally:
            buffer.free()


def test_graph_replays_the_captured_copy(device):
    from trt_perception.core.cuda.device import CudaGraph, HostDeviceBuffer
    driver = device.driver
    with device.current():
        src = HostDeviceBuffer(driver, (256,), np.dtype(np.float32))
        dst = HostDeviceBuffer(driver, (256,), np.dtype(np.float32))
        stream = driver.Stream()
        try:
            graph = CudaGraph(int(stream.handle),
                              lambda: driver.memcpy_dtod_async(dst.device, src.device, src.host.nbytes, stream))
            for value in (1.0, 2.0, 3.0):
                src.host[:] = value
                driver.memcpy_htod(src.device, src.host)
                graph.launch()
                stream.synchronize()
                driver.memcpy_dtoh(dst.host, dst.device)
                assert np.all(dst.host == value)
            graph.destroy()
            graph.destroy()  # idempotent
        finally:
            src.free()
            dst.free()


def test_failed_capture_leaves_the_stream_usable(device):
    from trt_perception.core.cuda.device import CudaGraph

    def broken():
        raise RuntimeError("enqueue failed")

    with device.current():
        stream = device.driver.Stream()
        with pytest.raises(RuntimeError, match="enqueue failed"):
            CudaGraph(int(stream.handle), broken)
        stream.synchronize()
