"""BatchPipeline on the shipped (batch-dynamic) SSD: batched results == per-frame Pipeline results
for cameras of different sizes and colour orders; fixed-batch models; the batch plan."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trt_perception.core.backends.base import BackendError
from trt_perception.core.backends.onnxrt import OnnxRuntimeBackend
from trt_perception.core.batching.batch_pipeline import BatchPipeline, BatchStageTimes
from trt_perception.core.batching.batch_plan import BatchCalls, BatchPlanError, plan_engine_batches
from trt_perception.core.cuda.runtime import gpu_available
from trt_perception.core.decode import create_decoder
from trt_perception.core.model_config import load_model_config
from trt_perception.core.pipeline import Pipeline, SourceFrame
from trt_perception.core.pipeline_factory import PipelineOptions, batch_backend_options, create_batch_pipeline
from trt_perception.core.tensorrt.options import BuildOptions

ROOT = Path(__file__).resolve().parents[2]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
DATA = ROOT / "test" / "data"


def camera_frames():
    """Four cameras: full-size BGR, half-size RGB, a 300x300 crop, and grey (mono)."""
    frames = [cv2.imread(str(p)) for p in sorted(DATA.glob("vtest_*.jpg"))]
    return [(SourceFrame(frames[0], "bgr"), "cam_a"),
            (SourceFrame(cv2.cvtColor(cv2.resize(frames[1], (384, 288)), cv2.COLOR_BGR2RGB), "rgb"), "cam_b"),
            (SourceFrame(np.ascontiguousarray(frames[2][100:400, 200:500]), "bgr"), "cam_c"),
            (SourceFrame(cv2.cvtColor(frames[3], cv2.COLOR_BGR2GRAY), "mono"), "cam_d")]


@pytest.fixture(scope="module")
def single():
    with Pipeline.from_config(MODEL_YAML, "onnxruntime", threads=1) as pipeline:
        pipeline.decoder.set_params({"score_threshold": 0.3})
        yield pipeline


def assert_same(batched, alone):
    assert batched.labels == alone.labels
    np.testing.assert_array_equal(batched.class_ids, alone.class_ids)
    np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5)
    np.testing.assert_allclose(batched.boxes_xyxy, alone.boxes_xyxy, atol=1e-3)


@pytest.mark.parametrize("cameras", [1, 2, 4])
def test_batched_results_equal_per_frame_results_in_each_cameras_own_pixels(single, cameras):
    items = camera_frames()[:cameras]
    with BatchPipeline.from_config(MODEL_YAML, max_batch=4, backend_kind="onnxruntime", threads=1) as batch:
        batch.decoder.set_params({"score_threshold": 0.3})
        assert batch.calls == BatchCalls(4)
        results = batch.submit_batch(items)
        assert batch.drain() == []
    assert [r.tag for r in results] == [tag for _, tag in items]
    found = 0
    for result, (frame, _) in zip(results, items):
        pixels, order = frame.decoded()
        alone, _ = single.run(pixels, order)
        assert_same(result.result, alone)
        assert result.geometry.src_w == pixels.shape[1] and result.geometry.src_h == pixels.shape[0]
        if len(alone):
            assert result.result.boxes_xyxy[:, 2].max() <= pixels.shape[1]
        found += len(alone)
        assert isinstance(result.times, BatchStageTimes) and result.times.batch_size == cameras
        assert result.times.inference_ns > 0 and result.times is results[0].times
    assert found >= cameras          # real frames with people: not a comparison of empty results


def test_a_fixed_batch_model_pads_and_splits(single, tmp_path):
    """A model fixed to batch 1 runs a batch of 3 in 3 calls with the same results."""
    onnx = pytest.importorskip("onnx", reason="pinning the batch of the model needs the onnx package")
    config = load_model_config(MODEL_YAML)
    model = onnx.load(str(config.model_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "fixed.onnx"
    onnx.save(model, str(path))
    items = camera_frames()[:3]
    with OnnxRuntimeBackend(path, threads=1) as backend:
        batch = BatchPipeline(config, backend, create_decoder(config), max_batch=4)
        batch.decoder.set_params({"score_threshold": 0.3})
        assert batch.calls == BatchCalls(1, fixed=True)
        results = batch.submit_batch(items)
    for result, (frame, _) in zip(results, items):
        pixels, order = frame.decoded()
        assert_same(result.result, single.run(pixels, order)[0])
    assert results[0].times.batch_size == 3


def test_bad_pixels_are_refused_before_inference():
    with BatchPipeline.from_config(MODEL_YAML, max_batch=2, backend_kind="onnxruntime", threads=1) as batch:
        with pytest.raises(ValueError, match="pixels must be uint8"):
            batch.submit_batch([(SourceFrame(np.zeros((10, 10, 3), np.float32), "bgr"), "a")])
        assert batch.submit_batch([]) == []
    with pytest.raises(ValueError, match="max_batch"):
        BatchPipeline.from_config(MODEL_YAML, max_batch=0, backend_kind="onnxruntime")


@pytest.mark.parametrize("calls, frames, expected", [
    (BatchCalls(4), 3, [(3, 3)]),
    (BatchCalls(4), 6, [(4, 4), (2, 2)]),
    (BatchCalls(4, fixed=True), 3, [(3, 4)]),
    (BatchCalls(2, fixed=True), 5, [(2, 2), (2, 2), (1, 2)]),
    (BatchCalls(2), 0, []),
])
def test_batch_calls(calls, frames, expected):
    assert calls.calls(frames) == expected


def test_gpu_engine_profile_is_one_to_n_cameras_and_keeps_the_other_options():
    plan = plan_engine_batches(4, BuildOptions(precision="int8", workspace_mb=512))
    assert (plan.options.min_batch, plan.options.opt_batch, plan.options.max_batch) == (1, 4, 4)
    assert plan.options.precision == "int8" and plan.options.workspace_mb == 512
    assert plan.calls == BatchCalls(4) and plan.note == ""
    other = plan_engine_batches(2, BuildOptions(precision="int8", workspace_mb=512))
    assert other.options.key_fields() != plan.options.key_fields()   # its own engine in the cache


def test_dla_engine_has_a_fixed_batch_clamped_to_the_dla_limit_with_a_note():
    plan = plan_engine_batches(3, BuildOptions(dla_core=0))
    assert (plan.options.min_batch, plan.options.max_batch) == (3, 3) and plan.calls == BatchCalls(3, fixed=True)
    assert "padded" in plan.note
    plan = plan_engine_batches(8, BuildOptions(dla_core=1), dla_batch_limit=4)
    assert (plan.options.min_batch, plan.options.opt_batch, plan.options.max_batch) == (4, 4, 4)
    assert plan.calls.calls(8) == [(4, 4), (4, 4)]
    assert "exceed the DLA batch limit 4" in plan.note and "2 calls" in plan.note
    assert plan_engine_batches(1, BuildOptions(dla_core=0)).note == ""


@pytest.mark.parametrize("cameras, limit", [(0, None), (True, None), (2, 0)])
def test_bad_plans_are_refused(cameras, limit):
    with pytest.raises(BatchPlanError):
        plan_engine_batches(cameras, BuildOptions(dla_core=0), dla_batch_limit=limit)


def test_batch_backend_options_build_tensorrt_for_the_cameras_and_free_onnxruntime_batches_on_the_gpu():
    kwargs, note = batch_backend_options(PipelineOptions(precision="fp16"), "tensorrt", "gpu", 4, "model.yaml")
    assert (kwargs["min_batch"], kwargs["opt_batch"], kwargs["max_batch"]) == (1, 4, 4) and note == ""
    assert kwargs["precision"] == "fp16" and kwargs["model_config"] == "model.yaml"
    dla, note = batch_backend_options(PipelineOptions(dla_core=0), "tensorrt", "cpu", 3)
    assert (dla["min_batch"], dla["opt_batch"], dla["max_batch"]) == (3, 3, 3) and "padded" in note
    assert batch_backend_options(PipelineOptions(threads=2), "onnxruntime", "cpu", 4) == ({"threads": 2}, "")
    gpu, note = batch_backend_options(PipelineOptions(device_id=1), "onnxruntime", "gpu", 4)
    assert gpu == {"device_buffers": True, "device_id": 1, "device_batch": True} and note == ""


def test_create_batch_pipeline_runs_onnxruntime_on_the_cpu():
    pipeline, why = create_batch_pipeline(MODEL_YAML, PipelineOptions(backend="onnxruntime", preprocess="cpu",
                                                                      threads=1), 3)
    with pipeline:
        assert isinstance(pipeline, BatchPipeline) and not pipeline.takes_raw_images
        assert pipeline.calls == BatchCalls(3) and "3 camera(s)" in why


@pytest.mark.skipif(gpu_available()[0], reason="checks the refusal where no GPU can be used")
def test_create_batch_pipeline_refuses_gpu_preprocessing_without_a_gpu_with_the_reason():
    with pytest.raises(BackendError, match="preprocess: gpu was asked for but"):
        create_batch_pipeline(MODEL_YAML, PipelineOptions(backend="onnxruntime", preprocess="gpu"), 2)
