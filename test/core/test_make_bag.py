"""make-bag: frames -> rosbag2 image bag and back (sqlite3 and mcap, raw and compressed)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from trt_perception.cli import main
from trt_perception.core.io.bag_frame_reader import RosbagFrames
from trt_perception.core.io.bag_writer import BagWriteError, package_typestore
from trt_perception.core.io.frame_sources import FrameSourceError
from trt_perception.core.io.frames_to_bag import ImageBagOptions, write_image_bag

START_NS = 1_700_000_000_250_000_000


def frames(count=4, h=24, w=32):
    """Smooth BGR test frames that differ per index (JPEG keeps them close)."""
    out = []
    for index in range(count):
        bgr = np.zeros((h, w, 3), np.uint8)
        bgr[..., 0] = 30 * index
        bgr[..., 1] = np.linspace(0, 200, w, dtype=np.uint8)[None, :]
        bgr[..., 2] = 200 - 20 * index
        out.append((index, bgr))
    return out


def headers(bag, topic):
    with AnyReader([Path(bag)], default_typestore=package_typestore(())) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(connections=conns)]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "rgba8", "mono8"])
def test_raw_round_trip_keeps_pixels_stamps_and_frame_id(tmp_path, storage, encoding):
    options = ImageBagOptions(topic="/cam/image_raw", frame_id="cam_optical", rate=4.0,
                              start_ns=START_NS, encoding=encoding, storage=storage)
    assert write_image_bag(frames(), tmp_path / "bag", options) == 4
    source = RosbagFrames(tmp_path / "bag", "/cam/image_raw")
    assert source.msgtype == "sensor_msgs/msg/Image"
    for (index, got), (_, want) in zip(source, frames()):
        if encoding == "mono8":
            want = cv2.cvtColor(cv2.cvtColor(want, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        np.testing.assert_array_equal(got, want, err_msg=f"frame {index}")
    messages = headers(tmp_path / "bag", "/cam/image_raw")
    assert [m.encoding for _, m in messages] == [encoding] * 4
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in messages]
    assert stamps == [START_NS + k * 250_000_000 for k in range(4)]
    assert [t for t, _ in messages] == stamps                      # log time = header stamp
    assert {m.header.frame_id for _, m in messages} == {"cam_optical"}


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip(tmp_path, storage, fmt):
    options = ImageBagOptions(topic="/cam/image_raw/compressed", start_ns=START_NS, compressed=fmt,
                              storage=storage)
    write_image_bag(frames(), tmp_path / "bag", options)
    source = RosbagFrames(tmp_path / "bag", "/cam/image_raw/compressed")
    assert source.msgtype == "sensor_msgs/msg/CompressedImage"
    for (_, got), (_, want) in zip(source, frames()):
        if fmt == "png":
            np.testing.assert_array_equal(got, want)
        else:
            assert np.abs(got.astype(int) - want).mean() < 3
    assert {m.format for _, m in headers(tmp_path / "bag", "/cam/image_raw/compressed")} == \
        {f"bgr8; {fmt} compressed bgr8"}


def test_existing_output_is_refused_and_untouched(tmp_path):
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "keep.txt").write_text("mine")
    with pytest.raises(BagWriteError, match="exists already"):
        write_image_bag(frames(), tmp_path / "bag", ImageBagOptions(start_ns=START_NS))
    assert (tmp_path / "bag" / "keep.txt").read_text() == "mine"


def test_a_failing_source_leaves_no_bag_behind(tmp_path):
    def broken():
        yield from frames(2)
        raise FrameSourceError("frame 2 is damaged")

    with pytest.raises(FrameSourceError, match="damaged"):
        write_image_bag(broken(), tmp_path / "bag", ImageBagOptions(start_ns=START_NS))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, problem", [
    (ImageBagOptions(topic="camera", start_ns=START_NS), "absolute"),
    (ImageBagOptions(rate=0.0, start_ns=START_NS), "rate"),
    (ImageBagOptions(start_ns=0), "start stamp"),
    (ImageBagOptions(start_ns=START_NS, encoding="yuv422"), "encoding"),
    (ImageBagOptions(start_ns=START_NS, storage="rosbag1"), "storage"),
])
def test_bad_options_are_named(tmp_path, options, problem):
    with pytest.raises(ValueError, match=problem):
        write_image_bag(frames(), tmp_path / "bag", options)
    assert not (tmp_path / "bag").exists()


def test_cli_from_an_image_folder(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for index, bgr in frames(5):
        cv2.imwrite(str(folder / f"{index:03d}.png"), bgr)
    code = main(["make-bag", "--input", str(folder), "--output", str(tmp_path / "bag"), "--every", "2",
                 "--first", "1", "--max-frames", "2", "--compressed", "png", "--topic", "/front/image_raw",
                 "--start", "1700000000", "--rate", "5", "--storage", "mcap"])
    assert code == 0
    assert "2 frames" in capsys.readouterr().out
    source = RosbagFrames(tmp_path / "bag", "/front/image_raw/compressed")
    got = list(source)
    assert len(got) == 2
    np.testing.assert_array_equal(got[0][1], frames(5)[2][1])   # every 2nd input frame from 1: 2, 4
    np.testing.assert_array_equal(got[1][1], frames(5)[4][1])
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec / 1e9
              for _, m in headers(tmp_path / "bag", "/front/image_raw/compressed")]
    assert stamps == pytest.approx([1700000000.0, 1700000000.2])


def test_cli_reports_a_missing_input(tmp_path, capsys):
    assert main(["make-bag", "--input", str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "bag")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()

