"""ONNX Runtime backend: the shipped model, options, and clear errors for bad models and configs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from trt_perception.core.backends import BackendError, create_backend
from trt_perception.core.backends.onnxrt import OnnxRuntimeBackend
from trt_perception.core.model_config import ModelConfigError, load_model_config
from trt_perception.core.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "ssdlite_pedestrian"
MODEL = MODEL_DIR / "ssdlite_pedestrian_raw_nchw.onnx"
INPUT = "normalized_input_image_tensor"


def _identity_model(path: Path, shape: Sequence[Optional[int]], name: str = "image") -> Path:
    """A one-node ONNX model out = Identity(in) with the given input/output shape."""
    dims = [d if d is not None else "n" for d in shape]
    graph = helper.make_graph([helper.make_node("Identity", [name], ["out"])], "identity",
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, dims)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def test_shipped_model_specs_and_inference() -> None:
    backend = create_backend("onnxruntime", str(MODEL), threads=1)
    assert isinstance(backend, OnnxRuntimeBackend) and not backend.is_active
    with backend:
        inputs, outputs = backend.input_specs(), backend.output_specs()
        assert list(inputs) == [INPUT] and inputs[INPUT].shape == (None, 3, 300, 300)  # batch-dynamic
        assert inputs[INPUT].dtype == np.float32
        assert {n: s.shape for n, s in outputs.items()} == {"box_encodings": (None, 1917, 4),
                                                            "class_predictions": (None, 1917, 2)}
        x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)
        first = {k: v.copy() for k, v in backend.infer({INPUT: x}).items()}
        assert first["box_encodings"].shape == (1, 1917, 4) and np.isfinite(first["box_encodings"]).all()
        np.testing.assert_array_equal(backend.infer({INPUT: x})["class_predictions"],
                                      first["class_predictions"])
    assert not backend.is_active
    with pytest.raises(BackendError, match="not active"):
        backend.infer({INPUT: x})


def test_io_binding_gives_the_same_outputs_in_reused_buffers() -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 300, 300)).astype(np.float32)
    with OnnxRuntimeBackend(MODEL, threads=1) as plain, \
            OnnxRuntimeBackend(MODEL, threads=1, io_binding=True) as bound:
        expected = plain.infer({INPUT: x})
        got = bound.infer({INPUT: x})
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
        again = bound.infer({INPUT: np.zeros_like(x)})
        assert again["box_encodings"] is got["box_encodings"]          # the same buffer, rewritten
        assert not np.array_equal(again["class_predictions"], expected["class_predictions"])


def test_feeds_that_do_not_fit_the_model_are_rejected() -> None:
    with OnnxRuntimeBackend(MODEL, threads=1) as backend:
        with pytest.raises(BackendError, match=r"must have shape \[\?, 3, 300, 300\], got \[1, 3, 300, 301\]"):
            backend.infer({INPUT: np.zeros((1, 3, 300, 301), np.float32)})
        with pytest.raises(BackendError, match="must be float32, got float64"):
            backend.infer({INPUT: np.zeros((1, 3, 300, 300))})
        with pytest.raises(BackendError, match=r"missing \['normalized_input_image_tensor'\]"):
            backend.infer({"image": np.zeros((1, 3, 300, 300), np.float32)})


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        OnnxRuntimeBackend(tmp_path / "nothing.onnx").activate()
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(MODEL.read_bytes()[:5000])                   # a truncated copy
    backend = OnnxRuntimeBackend(corrupt)
    with pytest.raises(BackendError, match="cannot load ONNX model .*corrupt.onnx"):
        backend.activate()
    assert not backend.is_active


def test_bad_options() -> None:
    with pytest.raises(BackendError, match="threads must be an integer >= 0"):
        OnnxRuntimeBackend(MODEL, threads=-1)
    with pytest.raises(BackendError, match=r"\['NoSuchExecutionProvider'\] are not available"):
        OnnxRuntimeBackend(MODEL, providers=["NoSuchExecutionProvider"]).activate()


def test_io_binding_needs_static_output_shapes(tmp_path: Path) -> None:
    model = _identity_model(tmp_path / "dynamic.onnx", [None, 3, 8, 8])
    with OnnxRuntimeBackend(model) as backend:                      # plain run: dynamic is fine
        assert backend.input_specs()["image"].shape == (None, 3, 8, 8)
        x = np.ones((2, 3, 8, 8), np.float32)
        np.testing.assert_array_equal(backend.infer({"image": x})["out"], x)
    with pytest.raises(BackendError, match=r"io_binding needs static output shapes; \['out'\]"):
        OnnxRuntimeBackend(model, io_binding=True).activate()


def test_cuda_provider_when_available() -> None:
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider here (needs onnxruntime-gpu and a GPU)")
    x = np.zeros((1, 3, 300, 300), np.float32)
    with OnnxRuntimeBackend(MODEL, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]) as gpu, \
            OnnxRuntimeBackend(MODEL) as cpu:
        np.testing.assert_allclose(gpu.infer({INPUT: x})["box_encodings"],
                                   cpu.infer({INPUT: x})["box_encodings"], atol=1e-3)


def _config_for(tmp_path: Path, model: Path, input_name: str = INPUT, width: int = 300,
                outputs: Optional[dict] = None) -> Path:
    text = (MODEL_DIR / "ssdlite_pedestrian.yaml").read_text()
    text = text.replace("model: ssdlite_pedestrian_raw_nchw.onnx", f"model: {model}")
    text = text.replace(f"input: {INPUT}", f"input: {input_name}")
    text = text.replace("  width: 300", f"  width: {width}")
    text = text.replace("labels: ssdlite_pedestrian.labels", f"labels: {MODEL_DIR / 'ssdlite_pedestrian.labels'}")
    if outputs is not None:
        text = text.replace("  box_encodings: box_encodings", f"  box_encodings: {outputs['box_encodings']}")
    path = tmp_path / "model.yaml"
    path.write_text(text)
    return path


def test_wrong_model_for_the_config(tmp_path: Path) -> None:
    other = _identity_model(tmp_path / "other.onnx", [1, 3, 64, 64])
    with pytest.raises(ModelConfigError) as info:
        Pipeline.from_config(_config_for(tmp_path, other), "onnxruntime")
    message = str(info.value)
    assert "other.onnx does not match its configuration" in message
    assert f"model has no input '{INPUT}'" in message
    assert "output 'box_encodings' (role 'box_encodings') is not a model output" in message


def test_config_with_wrong_input_size_or_output_name(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match=r"has shape \[\?, 3, 300, 300\] but the preprocess section "
                                               r"makes \[1, 3, 300, 320\]"):
        Pipeline.from_config(_config_for(tmp_path, MODEL, width=320), "onnxruntime")
    with pytest.raises(ModelConfigError, match="output 'boxes' .* is not a model output"):
        Pipeline.from_config(_config_for(tmp_path, MODEL, outputs={"box_encodings": "boxes"}), "onnxruntime")
    config = load_model_config(_config_for(tmp_path, MODEL))
    with OnnxRuntimeBackend(config.model_path) as backend:           # the matching config passes
        config.check_io(backend.input_specs(), backend.output_specs())


@pytest.mark.parametrize("io_binding", [False, True])
def test_outputs_reused_says_what_infer_does(tmp_path: Path, io_binding: bool) -> None:
    """Review defect 4: ``outputs_reused`` is the contract callers copy by; it must be True exactly
    when the next call overwrites the arrays a call returned."""
    model = _identity_model(tmp_path / "identity.onnx", [1, 4])
    with OnnxRuntimeBackend(model, threads=1, io_binding=io_binding) as backend:
        first = backend.infer({"image": np.ones((1, 4), np.float32)})["out"]
        kept = first.copy()
        backend.infer({"image": np.full((1, 4), 2.0, np.float32)})
        overwritten = not np.array_equal(first, kept)
        assert backend.outputs_reused == overwritten, (
            f"outputs_reused={backend.outputs_reused} but the first result was "
            f"{'overwritten' if overwritten else 'kept'} by the second call")


def test_on_the_cpu_the_backend_does_not_run_on_device_buffers() -> None:
    with OnnxRuntimeBackend(MODEL, threads=1) as backend:
        assert not backend.runs_on_device
        with pytest.raises(BackendError, match="does not run on device buffers"):
            backend.enqueue(0, {}, None)
        with pytest.raises(BackendError, match="does not run on device buffers"):
            _ = backend.cuda_stream


def test_device_buffers_options_are_checked() -> None:
    with pytest.raises(BackendError, match="device_buffers runs on CUDAExecutionProvider"):
        OnnxRuntimeBackend(MODEL, providers=["CPUExecutionProvider"], device_buffers=True)
    with pytest.raises(BackendError, match="device_id must be an integer >= 0"):
        OnnxRuntimeBackend(MODEL, device_id=-1)
    backend = OnnxRuntimeBackend(MODEL, device_buffers=True, device_id=1)
    assert backend.providers == ["CUDAExecutionProvider"] and backend.runs_on_device and backend.device_id == 1
