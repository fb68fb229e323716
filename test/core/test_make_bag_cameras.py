"""make-bag with several camera topics: one input per camera, or one input with per-camera
offsets; stamps shared, messages in stamp order, each camera's frames where they belong."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from trt_perception.cli import main
from trt_perception.core.io.bag_frame_reader import RosbagFrames
from trt_perception.core.io.bag_writer import package_typestore
from trt_perception.core.io.frames_to_bag import ImageBagOptions, write_image_topics

START = 1_700_000_000.0
START_NS = 1_700_000_000_000_000_000


def write_frames(folder: Path, count: int, size=(32, 24), base=0) -> Path:
    """An image folder of ``count`` PNGs, frame i of uniform blue value base + 10 * i."""
    folder.mkdir()
    for i in range(count):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[..., 0] = base + 10 * i
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return folder


def messages(bag):
    with AnyReader([Path(bag)], default_typestore=package_typestore(())) as reader:
        return [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]


def test_one_input_with_offsets_gives_each_camera_its_own_frames(tmp_path):
    source = write_frames(tmp_path / "frames", 10)
    bag = tmp_path / "bag"
    assert main(["make-bag", "--input", str(source), "--output", str(bag), "--cameras", "/cam_a,/cam_b",
                 "--offsets", "0,3", "--max-frames", "4", "--rate", "5", "--start", str(START)]) == 0
    written = messages(bag)
    assert [topic for topic, _, _ in written] == ["/cam_a/image_raw", "/cam_b/image_raw"] * 4   # stamp order
    for camera, first in (("cam_a", 0), ("cam_b", 3)):
        mine = [(t, m) for topic, t, m in written if topic == f"/{camera}/image_raw"]
        assert [t for t, _ in mine] == [START_NS + k * 200_000_000 for k in range(4)]
        assert {m.header.frame_id for _, m in mine} == {camera}
        blues = [int(pixels[0, 0, 0]) for _, pixels in RosbagFrames(bag, f"/{camera}/image_raw")]
        assert blues == [10 * (first + k) for k in range(4)]


def test_one_input_per_camera_of_different_sizes_compressed(tmp_path):
    small = write_frames(tmp_path / "small", 3, size=(32, 24))
    large = write_frames(tmp_path / "large", 5, size=(64, 48), base=100)
    bag = tmp_path / "bag"
    assert main(["make-bag", "--input", str(small), "--input", str(large), "--output", str(bag),
                 "--cameras", "/front/left,/rear", "--compressed", "png", "--start", str(START)]) == 0
    written = messages(bag)
    counts = {topic: sum(t == topic for t, _, _ in written) for topic in {t for t, _, _ in written}}
    assert counts == {"/front/left/image_raw/compressed": 3, "/rear/image_raw/compressed": 5}
    assert [t for _, t, _ in written] == sorted(t for _, t, _ in written)
    rear = [pixels for _, pixels in RosbagFrames(bag, "/rear/image_raw/compressed")]
    assert rear[0].shape == (48, 64, 3) and int(rear[4][0, 0, 0]) == 140
    assert {m.header.frame_id for t, _, m in written if t.startswith("/front")} == {"front_left"}


@pytest.mark.parametrize("extra, message", [
    (["--cameras", "cam_a"], "absolute camera namespaces"),
    (["--cameras", "/a,/b", "--offsets", "0"], "needs 2 integers"),
    (["--cameras", "/a,/b", "--offsets", "0,x"], "takes integers"),
    (["--offsets", "0"], "need --cameras"),
    (["--cameras", "/a,/b,/c", "--input", "other"], "one --input for all cameras or one per camera"),
])
def test_bad_camera_options_are_refused(tmp_path, capsys, extra, message):
    source = write_frames(tmp_path / "frames", 2)
    assert main(["make-bag", "--input", str(source), "--output", str(tmp_path / "bag"), *extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()


def test_topics_must_be_distinct():
    options = ImageBagOptions(topic="/a/image_raw", start_ns=START_NS)
    with pytest.raises(ValueError, match="distinct"):
        write_image_topics([(options, []), (options, [])], "/nonexistent/bag")
