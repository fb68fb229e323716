"""TensorRTBackend: argument validation (no TensorRT needed) and, where TensorRT and a GPU are
present, engine building, caching and inference against ONNX Runtime."""

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from trt_perception.core.backends import BackendError, create_backend
from trt_perception.core.backends.tensorrt import TensorRTBackend, import_tensorrt

REPO = Path(__file__).resolve().parents[2]
SSD_ONNX = REPO.parent / "shared" / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian_raw_nchw.onnx"


def tensorrt_ready():
    """None when TensorRT, pycuda and a GPU are usable, else why not."""
    try:
        import_tensorrt()
    except BackendError as exc:
        return str(exc)
    try:
        driver = importlib.import_module("pycuda.driver")
        driver.init()
        if driver.Device.count() == 0:
            return "no CUDA device"
    except Exception as exc:  # noqa: BLE001 - any failure means: cannot run here
        return f"pycuda/CUDA unusable: {exc}"
    return None


def needs_tensorrt():
    reason = tensorrt_ready()
    if reason:
        pytest.skip(f"needs TensorRT and a GPU: {reason}")


@pytest.mark.parametrize("kwargs, fragment", [
    ({"precision": "fp64"}, "precision must be one of"),
    ({"precision": "fp32", "dla_core": 0}, "DLA runs only FP16 or INT8"),
    ({"min_batch": 4, "max_batch": 2}, "min <= opt <= max"),
    ({"workspace_mb": -5}, "workspace_mb"),
    ({"allow_build": "no"}, "allow_build must be true or false"),
    ({"cuda_graph": 1}, "cuda_graph must be true or false"),
    ({"device_id": -1}, "device_id must be an integer >= 0"),
    ({"calibration_sources": "frames/"}, "list of paths"),
    ({"calibration_every": 0}, "every"),
    ({"model_config": 3}, "model_config must be"),
])
def test_constructor_validates_without_tensorrt(kwargs, fragment):
    with pytest.raises(BackendError, match=fragment):
        TensorRTBackend("model.onnx", **kwargs)


def test_batch_defaults_follow_min_batch():
    backend = TensorRTBackend("model.onnx", min_batch=2)
    assert (backend.options.min_batch, backend.options.opt_batch, backend.options.max_batch) == (2, 2, 2)
    backend = TensorRTBackend("model.onnx", max_batch=8)
    assert (backend.options.min_batch, backend.options.opt_batch, backend.options.max_batch) == (1, 1, 8)


def test_create_backend_passes_options_and_nothing_is_loaded(tmp_path):
    backend = create_backend("tensorrt", "model.engine", engine_cache_dir=tmp_path, precision="int8",
                             calibration_cache=tmp_path / "calib.cache")
    assert isinstance(backend, TensorRTBackend) and not backend.is_active
    assert backend.is_engine_file and backend.cache.directory == tmp_path
    with pytest.raises(BackendError, match="not active"):
        backend.input_specs()


def test_activation_without_tensorrt_says_so():
    if tensorrt_ready() is None:
        pytest.skip("TensorRT is installed here")
    backend = TensorRTBackend(SSD_ONNX)
    with pytest.raises(BackendError, match="TensorRT is not installed|pycuda|not TensorRT"):
        backend.activate()
    assert not backend.is_active


# ---- with TensorRT and a GPU (skipped elsewhere) ------------------------------------------------

def ssd_input(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)


def ort_outputs(feed):
    backend = create_backend("onnxruntime", str(SSD_ONNX))
    with backend:
        return {k: v.copy() for k, v in backend.infer({"normalized_input_image_tensor": feed}).items()}


@pytest.mark.parametrize("precision, atol", [("fp32", 2e-3), ("fp16", 5e-2)])
def test_engine_matches_onnxruntime(tmp_path, precision, atol):
    needs_tensorrt()
    feed = ssd_input()
    want = ort_outputs(feed)
    with TensorRTBackend(SSD_ONNX, engine_cache_dir=tmp_path, precision=precision) as backend:
        assert backend.input_specs()["normalized_input_image_tensor"].shape == (1, 3, 300, 300)
        got = backend.infer({"normalized_input_image_tensor": feed})
        for name in ("box_encodings", "class_predictions"):
            np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=0)
        assert set(backend.device_timings_ms()) == {"h2d", "compute", "d2h"}


def test_second_activation_loads_the_cached_engine(tmp_path):
    needs_tensorrt()
    with TensorRTBackend(SSD_ONNX, engine_cache_dir=tmp_path, precision="fp16") as backend:
        path = backend.engine_path
    mtime = path.stat().st_mtime_ns
    with TensorRTBackend(SSD_ONNX, engine_cache_dir=tmp_path, precision="fp16", allow_build=False) as backend:
        assert backend.engine_path == path
    assert path.stat().st_mtime_ns == mtime


def test_missing_engine_without_building_is_an_error(tmp_path):
    needs_tensorrt()
    with pytest.raises(BackendError, match="Building is disabled"):
        TensorRTBackend(SSD_ONNX, engine_cache_dir=tmp_path, allow_build=False).activate()


def test_cuda_graph_and_device_inputs_give_the_same_outputs(tmp_path):
    needs_tensorrt()
    import pycuda.driver as driver

    from trt_perception.core.tensorrt.io_plan import DeviceTensor
    feed = ssd_input(1)
    with TensorRTBackend(SSD_ONNX, engine_cache_dir=tmp_path, precision="fp32") as plain:
        want = {k: v.copy() for k, v in plain.infer({"normalized_input_image_tensor": feed}).items()}
    with TensorRTBackend(SSD_ONNX, engine_cache_dir=tmp_path, precision="fp32", cuda_graph=True) as graphed:
        for _ in range(3):
            got = graphed.infer({"normalized_input_image_tensor": feed})
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
        with graphed._device.current():
            memory = driver.mem_alloc(feed.nbytes)
            driver.memcpy_htod(memory, feed)
        try:
            got = graphed.infer_device({"normalized_input_image_tensor": DeviceTensor(int(memory), feed.shape,
                                                                                      feed.dtype)})
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
        finally:
            with graphed._device.current():
                memory.free()


def test_engine_file_is_loaded_directly(tmp_path):
    needs_tensorrt()
    with TensorRTBackend(SSD_ONNX, engine_cache_dir=tmp_path / "cache", precision="fp16") as backend:
        cached = backend.engine_path
    engine = tmp_path / "ssd.engine"
    shutil.copy(cached, engine)
    with TensorRTBackend(engine) as backend:
        assert backend.engine_path == engine
        assert set(backend.output_specs()) == {"box_encodings", "class_predictions"}
