"""detector_node's ``preprocess`` parameter on this machine: GPU preprocessing where it can run, a
clear configure failure where it cannot, and compressed frames turned into raw images for the GPU."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import LifecycleClient
from rclpy.parameter import Parameter

from trt_perception.core.image import decode_compressed_image
from trt_perception.core.pipeline_factory import choose_preprocess
from trt_perception.ros.detector_node import DetectorNode
from trt_perception.ros.frame_input import raw_image_of

DATA = Path(__file__).resolve().parents[1] / "data"


def test_preprocess_gpu_without_a_usable_gpu_fails_configure_and_auto_runs_on_the_cpu(ros):
    try:
        mode, _ = choose_preprocess("gpu", "onnxruntime")
    except Exception:  # noqa: BLE001 - the failure this test is about
        mode = "cpu"
    if mode == "gpu":
        pytest.skip("GPU preprocessing can run here: this checks the failure path without it")
    gpu = ros.add(DetectorNode("detector_gpu", context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("preprocess", value="gpu")]))
    lifecycle = LifecycleClient(ros, "detector_gpu")
    assert not lifecycle.set("configure")
    assert lifecycle.state() == "unconfigured" and gpu.pipeline is None
    auto = ros.add(DetectorNode("detector_auto", context=ros.context, parameter_overrides=[
        Parameter("backend", value="onnxruntime"), Parameter("preprocess", value="auto")]))
    assert LifecycleClient(ros, "detector_auto").set("configure")
    assert not auto.input.keep_raw and type(auto.pipeline).__name__ == "Pipeline"


@pytest.mark.parametrize("read", [cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE], ids=["bgr", "mono"])
def test_compressed_frame_as_raw_image_decodes_to_the_same_pixels(read):
    pixels = cv2.imread(str(DATA / "vtest_150.jpg"), read)
    ok, png = cv2.imencode(".png", pixels)
    assert ok
    decoded, order = decode_compressed_image(png.tobytes(), "png")
    image = raw_image_of(decoded, order)
    again, again_order = image.decode()
    assert again_order == order and image.encoding in ("bgr8", "mono8")
    np.testing.assert_array_equal(again, pixels)
