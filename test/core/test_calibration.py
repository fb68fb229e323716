"""Calibration data: frame sources -> preprocessed tensors -> batches; settings and identity."""

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from trt_perception.core.io.bag_frame_reader import RosbagFrames
from trt_perception.core.io.frame_sources import ImageFolderFrames
from trt_perception.core.preprocess import PreprocessConfig, preprocess
from trt_perception.core.tensorrt.calibration import (
    CalibrationBatches,
    CalibrationError,
    CalibrationSettings,
    has_qdq_nodes,
    open_source,
    preprocessed_frames,
    with_calibration_id,
)
from trt_perception.core.tensorrt.options import BuildOptions

DATA = Path(__file__).resolve().parents[1] / "data"
CFG = PreprocessConfig(width=64, height=48, mean=(127.5,) * 3, std=(127.5,) * 3)


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("vtest_000.jpg", "vtest_150.jpg", "vtest_300.jpg"):
        shutil.copy(DATA / name, folder / name)
    return folder


def tensors(n, shape=(1, 3, 2, 2)):
    return [np.full(shape, i, np.float32) for i in range(n)]


def test_batches_stack_frames_in_order_and_drop_the_partial_tail():
    batches = CalibrationBatches(tensors(5), batch_size=2, frames=5)
    assert batches.expected_batches == 2
    out = list(batches)
    assert [b.shape for b in out] == [(2, 3, 2, 2), (2, 3, 2, 2)]
    assert [float(b[k, 0, 0, 0]) for b in out for k in range(2)] == [0, 1, 2, 3]
    assert all(b.flags.c_contiguous for b in out)


def test_batches_reject_bad_tensors():
    with pytest.raises(CalibrationError, match="differ"):
        list(CalibrationBatches([np.zeros((1, 3, 2, 2), np.float32), np.zeros((1, 3, 4, 4), np.float32)], 2))
    with pytest.raises(CalibrationError, match="batch dimension of 1"):
        list(CalibrationBatches([np.zeros((2, 3, 2, 2), np.float32)], 1))
    with pytest.raises(CalibrationError, match="no calibration frames"):
        list(CalibrationBatches([], 1))
    with pytest.raises(CalibrationError, match="batch size"):
        CalibrationBatches([], 0)


def test_frames_are_preprocessed_like_inference(image_folder):
    got = list(preprocessed_frames([ImageFolderFrames(image_folder)], CFG, max_frames=2))
    assert len(got) == 2
    for tensor, name in zip(got, ("vtest_000.jpg", "vtest_150.jpg")):
        want, _ = preprocess(cv2.imread(str(image_folder / name)), "bgr", CFG)
        np.testing.assert_array_equal(tensor, want)
        assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == np.float32


def test_settings_batches_count_frames_of_every_source(image_folder):
    settings = CalibrationSettings(sources=(str(image_folder), str(DATA / "vtest_450.jpg")), max_frames=None)
    batches = settings.batches(CFG, batch_size=2)
    assert batches.expected_batches == 2
    assert [b.shape for b in batches] == [(2, 3, 48, 64), (2, 3, 48, 64)]


def test_settings_validation():
    with pytest.raises(CalibrationError, match="list of paths"):
        CalibrationSettings(sources="video.avi")
    with pytest.raises(CalibrationError, match="every"):
        CalibrationSettings(every=0)
    with pytest.raises(CalibrationError, match="max_frames"):
        CalibrationSettings(max_frames=0)


def test_identity_prefers_an_existing_cache(tmp_path):
    cache = tmp_path / "calib.cache"
    settings = CalibrationSettings(sources=("a.avi", "bag#/cam"), every=4, max_frames=50, cache=cache)
    assert settings.identity() == "frames:a.avi|bag#/cam;every=4;max=50"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n")
    digest = hashlib.sha256(cache.read_bytes()).hexdigest()[:16]
    assert settings.identity() == f"cache:{digest}"
    with pytest.raises(CalibrationError, match="needs calibration frames"):
        CalibrationSettings(cache=tmp_path / "missing.cache").identity()


def _tiny_model(path, quantized):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("z", TensorProto.INT8, [], [0])
    if quantized:
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    else:
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[scale, zero] if quantized else [])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_qdq_detection_and_calibration_id(tmp_path):
    qdq = _tiny_model(tmp_path / "qdq.onnx", quantized=True)
    plain = _tiny_model(tmp_path / "plain.onnx", quantized=False)
    assert has_qdq_nodes(qdq) and not has_qdq_nodes(plain)
    settings = CalibrationSettings(sources=("frames/",))
    int8 = BuildOptions(precision="int8")
    assert with_calibration_id(plain, int8, settings).calibration_id == "frames:frames/;every=1;max=500"
    assert with_calibration_id(qdq, int8, settings).calibration_id == ""
    assert with_calibration_id(plain, BuildOptions(precision="fp16", calibration_id="x"), settings).calibration_id == ""
    with pytest.raises(CalibrationError, match="needs calibration frames"):
        with_calibration_id(plain, int8, None)


def test_source_specs(tmp_path, image_folder):
    assert isinstance(open_source(str(image_folder)), ImageFolderFrames)
    with pytest.raises(Exception, match="does not exist"):
        open_source(str(tmp_path / "no_bag") + "#/camera/image")
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    types = get_typestore(Stores.LATEST)
    with Writer(tmp_path / "bag", version=9) as writer:
        writer.add_connection("/camera/image", "sensor_msgs/msg/Image", typestore=types)
    source = open_source(str(tmp_path / "bag") + "#/camera/image", every=3)
    assert isinstance(source, RosbagFrames) and source.topic == "/camera/image" and source.every == 3
