"""Frames from rosbag2 image topics (sqlite3 and mcap; Image and CompressedImage)."""

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from trt_perception.core.io.bag_frame_reader import RosbagFrames
from trt_perception.core.io.frame_sources import FrameSourceError

TYPES = get_typestore(Stores.LATEST)
Image = TYPES.types["sensor_msgs/msg/Image"]
CompressedImage = TYPES.types["sensor_msgs/msg/CompressedImage"]
Header = TYPES.types["std_msgs/msg/Header"]
Time = TYPES.types["builtin_interfaces/msg/Time"]
String = TYPES.types["std_msgs/msg/String"]


def frame(index, h=6, w=8):
    """A BGR test frame that differs per index (smooth, so JPEG keeps it close)."""
    bgr = np.zeros((h, w, 3), np.uint8)
    bgr[..., 0] = 20 * index
    bgr[..., 1] = 100
    bgr[..., 2] = 200 - 10 * index
    return bgr


def header(i):
    return Header(stamp=Time(sec=i, nanosec=0), frame_id="camera")


def raw_rgb(i):
    rgb = frame(i)[:, :, ::-1]
    return Image(header=header(i), height=6, width=8, encoding="rgb8", is_bigendian=0, step=24,
                 data=np.ascontiguousarray(rgb).reshape(-1))


def compressed(i):
    ok, data = cv2.imencode(".png", frame(i))
    assert ok
    return CompressedImage(header=header(i), format="png", data=data.reshape(-1))


def write_bag(path, storage, messages, topic="/camera/image", msgtype="sensor_msgs/msg/Image"):
    with Writer(path, version=9, storage_plugin=storage) as writer:
        conn = writer.add_connection(topic, msgtype, typestore=TYPES)
        other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=TYPES)
        for i, msg in enumerate(messages):
            writer.write(conn, (i + 1) * 1_000_000, TYPES.serialize_cdr(msg, msgtype))
            writer.write(other, (i + 1) * 1_000_000 + 1, TYPES.serialize_cdr(String(data="hi"), "std_msgs/msg/String"))
    return path


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_raw_images_come_back_as_bgr_in_order(tmp_path, storage):
    bag = write_bag(tmp_path / "bag", storage, [raw_rgb(i) for i in range(5)])
    source = RosbagFrames(bag, "/camera/image")
    assert len(source) == 5
    frames = list(source)
    assert [index for index, _ in frames] == [0, 1, 2, 3, 4]
    for index, pixels in frames:
        np.testing.assert_array_equal(pixels, frame(index))


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_compressed_images_with_a_stride(tmp_path, storage):
    bag = write_bag(tmp_path / "bag", storage, [compressed(i) for i in range(5)],
                    msgtype="sensor_msgs/msg/CompressedImage")
    source = RosbagFrames(bag, "/camera/image", every=2)
    assert len(source) == 3
    frames = list(source)
    assert [index for index, _ in frames] == [0, 2, 4]
    for index, pixels in frames:
        np.testing.assert_array_equal(pixels, frame(index))  # PNG is lossless


def test_mono_image_becomes_three_channels(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    msg = Image(header=header(0), height=6, width=8, encoding="mono8", is_bigendian=0, step=8, data=grey.reshape(-1))
    bag = write_bag(tmp_path / "bag", StoragePlugin.SQLITE3, [msg])
    (_, pixels), = list(RosbagFrames(bag, "/camera/image"))
    assert pixels.shape == (6, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], grey)


def test_missing_topic_lists_the_image_topics(tmp_path):
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, [raw_rgb(0)])
    with pytest.raises(FrameSourceError, match=r"no topic '/front'; image topics: \['/camera/image'\]"):
        RosbagFrames(bag, "/front")
    with pytest.raises(FrameSourceError, match="carries std_msgs/msg/String"):
        RosbagFrames(bag, "/chatter")


def test_bad_inputs(tmp_path):
    with pytest.raises(FrameSourceError, match="does not exist"):
        RosbagFrames(tmp_path / "nope", "/camera/image")
    not_a_bag = tmp_path / "empty_dir"
    not_a_bag.mkdir()
    with pytest.raises(FrameSourceError, match="cannot open bag"):
        RosbagFrames(not_a_bag, "/camera/image")
    with pytest.raises(FrameSourceError, match="every must be"):
        RosbagFrames(tmp_path, "/x", every=0)


def test_undecodable_message_names_its_index(tmp_path):
    broken = Image(header=header(1), height=6, width=8, encoding="rgb8", is_bigendian=0, step=24,
                   data=np.zeros(10, np.uint8))
    bag = write_bag(tmp_path / "bag", StoragePlugin.SQLITE3, [raw_rgb(0), broken])
    with pytest.raises(FrameSourceError, match="message 1 of /camera/image.*truncated"):
        list(RosbagFrames(bag, "/camera/image"))
