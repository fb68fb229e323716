"""Pipeline on real frames with the shipped model; task-agnostic decoders; ownership; timings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import pytest

from trt_perception.core.backends.onnxrt import OnnxRuntimeBackend
from trt_perception.core.decode import create_decoder
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.image import decode_image
from trt_perception.core.model_config import ModelConfigError, load_model_config
from trt_perception.core.pipeline import Pipeline, StageTimes

ROOT = Path(__file__).resolve().parents[2]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
DATA = ROOT / "test" / "data"

# Every person visible in the frames, (xmin, ymin, xmax, ymax) in pixels, marked by hand on
# enlarged crops with a 20-pixel grid (independently of any detector output), and the people
# standing apart from others, whom the detector must find with IoU >= 0.5.
PEOPLE = {
    "vtest_000.jpg": [(253, 220, 283, 307), (500, 157, 529, 233), (639, 240, 684, 320)],
    "vtest_150.jpg": [(389, 195, 416, 279), (434, 194, 464, 275), (444, 179, 469, 254),
                      (637, 107, 655, 165), (658, 112, 678, 168), (712, 111, 728, 175),
                      (590, 229, 626, 315), (70, 90, 88, 129)],
    "vtest_300.jpg": [(187, 159, 218, 233), (243, 159, 268, 222), (298, 159, 322, 231),
                      (313, 210, 344, 296), (583, 160, 610, 235), (620, 161, 642, 233)],
    "vtest_450.jpg": [(311, 207, 337, 288), (486, 184, 515, 259), (559, 243, 593, 337)],
}
ISOLATED = {
    "vtest_000.jpg": [(253, 220, 283, 307), (500, 157, 529, 233)],
    "vtest_150.jpg": [],
    "vtest_300.jpg": [(187, 159, 218, 233), (583, 160, 610, 235)],
    "vtest_450.jpg": [(311, 207, 337, 288), (486, 184, 515, 259), (559, 243, 593, 337)],
}
MIN_PEOPLE = {"vtest_000.jpg": 2, "vtest_150.jpg": 3, "vtest_300.jpg": 3, "vtest_450.jpg": 3}


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


@pytest.fixture(scope="module")
def pipeline():
    with Pipeline.from_config(MODEL_YAML, "onnxruntime", threads=1) as p:
        yield p


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_finds_the_people_in_real_frames(pipeline: Pipeline, name: str) -> None:
    frame = cv2.imread(str(DATA / name))
    detections, times = pipeline.run(frame, "bgr")
    assert len(detections) >= MIN_PEOPLE[name]
    assert set(detections.labels) == {"pedestrian"} and np.all(detections.scores > 0.5)
    for box in detections.boxes_xyxy.tolist():            # every detection is on a person
        best = max(_iou(box, person) for person in PEOPLE[name])
        centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        near = any(p[0] - 10 <= centre_x <= p[2] + 10 and p[1] - 10 <= centre_y <= p[3] + 10
                   for p in PEOPLE[name])
        assert best >= 0.15 and near, f"{name}: detection {box} is on nobody"
    for person in ISOLATED[name]:                          # people standing apart are found
        assert max(_iou(box, person) for box in detections.boxes_xyxy.tolist()) >= 0.5, person
    assert isinstance(times, StageTimes)
    assert min(times.preprocess_ns, times.inference_ns, times.postprocess_ns) > 0
    assert times.total_ns == times.preprocess_ns + times.inference_ns + times.postprocess_ns


def test_raw_image_buffers_give_the_same_detections(pipeline: Pipeline) -> None:
    """A padded rgb8 camera buffer (as in a sensor_msgs/Image) -> the same result as the BGR frame."""
    bgr = cv2.imread(str(DATA / "vtest_300.jpg"))
    height, width = bgr.shape[:2]
    rows = np.zeros((height, width * 3 + 16), np.uint8)
    rows[:, :width * 3] = bgr[:, :, ::-1].reshape(height, -1)
    from_buffer, _ = pipeline.run(*decode_image(rows.tobytes(), "rgb8", width, height, width * 3 + 16))
    from_frame, _ = pipeline.run(bgr, "bgr")
    np.testing.assert_array_equal(from_buffer.boxes_xyxy, from_frame.boxes_xyxy)
    np.testing.assert_array_equal(from_buffer.scores, from_frame.scores)


class TopScoreDecoder:
    """A second, task-agnostic use of Pipeline: the best non-background sigmoid score of an image."""

    roles = ("class_predictions",)

    def __call__(self, outputs: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> float:
        return float(1 / (1 + np.exp(-outputs["class_predictions"][0, :, 1:].max())))

    def runtime_params(self) -> dict[str, Any]:
        return {}

    def set_params(self, params: Mapping[str, Any]) -> None:
        if params:
            raise ValueError(f"no runtime parameters, got {sorted(params)}")


def test_any_decoder_plugs_in_and_a_given_backend_is_borrowed(pipeline: Pipeline) -> None:
    frame = cv2.imread(str(DATA / "vtest_000.jpg"))
    config = load_model_config(MODEL_YAML)
    with OnnxRuntimeBackend(config.model_path, threads=1) as backend:
        top = Pipeline(config, backend, TopScoreDecoder())
        score, _ = top.run(frame, "bgr")
        detections, _ = pipeline.run(frame, "bgr")
        assert score == pytest.approx(float(detections.scores[0]), rel=1e-5)
        top.close()
        assert backend.is_active                          # borrowed: the caller deactivates it


def test_from_config_owns_its_backend() -> None:
    with Pipeline.from_config(MODEL_YAML, "onnxruntime", threads=1) as owned:
        assert owned.backend.is_active
    assert not owned.backend.is_active
    owned.close()                                         # twice is fine


def test_decoder_roles_must_be_mapped_in_the_config() -> None:
    config = load_model_config(MODEL_YAML)
    config.outputs.pop("class_predictions")
    with OnnxRuntimeBackend(config.model_path, threads=1) as backend:
        with pytest.raises(ModelConfigError, match=r"lacks \['class_predictions'\]"):
            Pipeline(config, backend, create_decoder(load_model_config(MODEL_YAML)))
